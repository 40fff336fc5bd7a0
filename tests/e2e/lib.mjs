// Helpers for Dure's browser tests: Debian's Chromium through playwright-core, and a line
// protocol with the Rust runner (tests/tests/web_e2e.rs):
//   stdout "ASK <what>"      the runner does <what> (e.g. pause the store), then writes "ok"
//   stdout "RESULT <json>"   a value for the runner to check against the server
//   exit code 0              the scenario passed; anything else failed (reason on stderr)
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.DURE_CHROMIUM || '/usr/bin/chromium';

export async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // playwright-core gives every launch a fresh temporary profile (--user-data-dir).
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      '--font-render-hinting=none',
      ...extraArgs,
    ],
  });
}

/** A browser context as one person: debug hook on, language and window size chosen. */
export async function person(browser, { locale = 'en-GB', width = 1360, height = 860, lang } = {}) {
  const context = await browser.newContext({
    locale,
    viewport: { width, height },
    deviceScaleFactor: 1,
    serviceWorkers: 'allow',
  });
  await context.addInitScript((l) => {
    localStorage.setItem('dure:debug', '1');
    if (l) localStorage.setItem('dure:lang', l);
  }, lang ?? null);
  const page = await context.newPage();
  page.on('pageerror', (err) => log(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') log(`console ${msg.type()}: ${msg.text()}`);
  });
  return { context, page };
}

export function log(...args) {
  console.error('[e2e]', ...args);
}

const lines = createInterface({ input: process.stdin });
const waiting = [];
lines.on('line', (line) => waiting.shift()?.(line));

/** Asks the runner to do something (pause the store…) and waits until it has. */
export function ask(what) {
  return new Promise((resolve) => {
    waiting.push(resolve);
    process.stdout.write(`ASK ${what}\n`);
  });
}

export function result(value) {
  process.stdout.write(`RESULT ${JSON.stringify(value)}\n`);
}

export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

export async function waitFor(what, fn, timeout = 15000, interval = 100) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export const saveState = (page) => page.locator('[data-testid=save-status]').getAttribute('data-state');
export const docXml = (page) => page.evaluate(() => window.__dure.xml());
export const editorText = (page) => page.locator('.ProseMirror').innerText();

export async function waitSaved(page, timeout = 15000) {
  await waitFor('"Saved"', async () => (await saveState(page)) === 'saved', timeout);
}

/** Puts the caret at the end of the document and types like a person. */
export async function typeAtEnd(page, text) {
  await page.locator('.ProseMirror').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type(text, { delay: 8 });
}

export async function createDoc(page, base, title) {
  await page.goto(base + '/');
  await page.getByTestId('new-doc').click();
  await page.waitForURL(/\/d\/[A-Za-z0-9_-]+$/);
  await page.locator('.ProseMirror').waitFor();
  if (title) {
    const input = page.getByTestId('doc-title');
    await input.fill(title);
    // Saved when the field loses the focus (Enter moves it to the text): wait for the server.
    const renamed = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.ok());
    await input.press('Enter');
    await renamed;
  }
  return new URL(page.url()).pathname.split('/').pop();
}

export function artifacts(dir) {
  mkdirSync(dir, { recursive: true });
  return (page, name, opts = {}) => page.screenshot({ path: `${dir}/${name}.png`, ...opts });
}

/**
 * Runs `scenarios[name](browser)` in a fresh Chromium and exits: 0 when it passed, 1 with the
 * reason on stderr and a screenshot of every open page (NAME-failure-I-J.png) when it failed.
 * `browserArgs` are more Chromium flags (meetings: fake camera and microphone).
 */
export async function main(scenarios, name, artifactDir, browserArgs = []) {
  const scenario = scenarios[name];
  if (!scenario) {
    console.error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
  }
  const started = Date.now();
  const browser = await launch(browserArgs);
  try {
    await scenario(browser);
    log(`${name}: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (err) {
    log(`${name}: FAILED: ${err.stack || err}`);
    for (const [i, ctx] of browser.contexts().entries()) {
      for (const [j, p] of ctx.pages().entries()) {
        await p.screenshot({ path: `${artifactDir}/${name}-failure-${i}-${j}.png` }).catch(() => {});
      }
    }
    process.exitCode = 1;
  } finally {
    await browser.close();
    process.exit();
  }
}
