// Messaging in the browser app (docs/messaging.md), two people signed in through the test
// OpenID provider, each in a browser context of their own. node messages.mjs SCENARIO BASE_URL
// ARTIFACTS_DIR. tests/tests/web_messages.rs starts the provider and dure and calls it, then
// checks what the server kept against the RESULT line.
import { deflateSync } from 'node:zlib';
import { artifacts, ask, assert, createDoc, log, main, person, result, waitFor } from './lib.mjs';

const [, , name, base, artifactDir = 'target/e2e-artifacts'] = process.argv;
const shot = artifacts(artifactDir);

/** Display names the provider gives (tests/src/idp.rs USERS). */
const NAMES = { alice: 'Alice Kim', bob: 'Bob Lee', carol: 'Carol Park' };
const UI_MS = 15000;

/**
 * A new browser context signed in as `user` through the provider, on `returnTo`; `prepare`
 * gets the context before its first page loads (permissions, init scripts, a fake clock).
 */
async function signIn(browser, user, { returnTo = '/', prepare = null, ...opts } = {}) {
  const who = await person(browser, { lang: 'en', ...opts });
  if (prepare) await prepare(who.context);
  await who.page.goto(`${base}/auth/login?login_hint=${user}&return_to=${encodeURIComponent(returnTo)}`);
  await who.page.waitForURL((u) => u.origin === base && u.pathname === returnTo);
  await who.page.getByRole('button', { name: `Account: ${NAMES[user]}` }).waitFor();
  return who;
}

/** An API call from the page (same origin: the session cookie and the Origin header go along). */
function call(page, method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const init = { method, headers: {} };
      if (body !== null) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      const res = await fetch(path, init);
      return { status: res.status, text: await res.text() };
    },
    [method, path, body ?? null],
  );
}

// ----- a small PNG, made here -----

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** A w×h RGB PNG: a blue square with a yellow diagonal. */
function png(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      const diag = Math.abs(x - y) < 3;
      raw[o] = diag ? 250 : 40;
      raw[o + 1] = diag ? 210 : 90;
      raw[o + 2] = diag ? 20 : 220;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ----- the page -----

const messages = (page) => page.locator('[data-testid=message]');
const messageWith = (page, text) => messages(page).filter({ hasText: text });
const convItem = (page, conv) => page.locator(`[data-testid=conv-item][data-conv-id="${conv}"]`);
const headerUnread = (page) => page.getByTestId('messages-unread');

/** Types into the composer like a person and sends with Enter. */
async function say(page, text) {
  const input = page.getByTestId('composer-input');
  await input.click();
  await page.keyboard.type(text, { delay: 5 });
  await page.keyboard.press('Enter');
  // Shown for good once the server's own message replaced the "Sending…" line.
  await messageWith(page, text).first().waitFor({ timeout: UI_MS });
  await waitFor('no message left sending', async () => (await page.getByTestId('pending').count()) === 0, UI_MS);
}

/**
 * Posts `n` messages into `conv` as `page`'s user over a socket of its own (paced by the
 * server's rate limit: a refused one is sent again a second later).
 */
function seed(page, conv, n, prefix) {
  return page.evaluate(
    async ([conv, n, prefix]) => {
      const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/rt`);
      await new Promise((ok, err) => {
        ws.onopen = ok;
        ws.onerror = err;
      });
      let id = 0;
      const waits = new Map();
      ws.onmessage = (ev) => {
        const f = JSON.parse(ev.data);
        if (f.re) waits.get(f.re)?.(f);
      };
      const req = (type, data) =>
        new Promise((ok) => {
          const key = String(++id);
          waits.set(key, ok);
          ws.send(JSON.stringify({ v: 1, type, id: key, data }));
        });
      await req('hello', { features: ['msg'], resume: null });
      for (let i = 1; i <= n; i++) {
        const r = await req('msg.send', { conversation: conv, text: `${prefix} ${i}`, client_ref: null, reply_to: null, mentions: [], docs: [], attachments: [] });
        if (r.type === 'ok') continue;
        if (r.data?.code !== 'rate_limited') throw new Error(`msg.send: ${JSON.stringify(r)}`);
        await new Promise((s) => setTimeout(s, 1000));
        i--;
      }
      ws.close();
    },
    [conv, n, prefix],
  );
}

async function hoverAction(row, action) {
  await row.hover();
  await row.getByTestId(action).click();
}

/** Drops `files` ({name, mimeType, base64}) on the conversation as a drag from the desktop would. */
async function dropFiles(page, files) {
  await page.locator('.conv-main').evaluate((zone, files) => {
    const dt = new DataTransfer();
    for (const f of files) {
      const bytes = Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], f.name, { type: f.mimeType }));
    }
    for (const type of ['dragenter', 'dragover', 'drop']) {
      zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
    }
  }, files);
}

// ----- a background tab, notifications and presence -----

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Longer than the 300 ms notify() waits for a mention to follow its msg.new, with margin. */
const NOTIFY_SETTLE_MS = 1500;

/**
 * Init script: every notification the page makes is recorded ({title, body, tag} in
 * window.__shown, the objects in window.__notes) by a subclass of the browser's own
 * Notification, so the real constructor still runs and `permission` / `requestPermission`
 * are the browser's, inherited by the subclass.
 */
function recordNotifications() {
  const Real = window.Notification;
  if (!Real) return;
  window.__shown = [];
  window.__notes = [];
  window.Notification = class Recorded extends Real {
    constructor(title, options = {}) {
      window.__shown.push({ title: String(title), body: String(options.body ?? ''), tag: String(options.tag ?? '') });
      super(title, options);
      window.__notes.push(this);
    }
  };
}

/**
 * Init script: headless Chromium reports every page visible, so a background tab is emulated:
 * `document.visibilityState` / `document.hidden` follow a flag that window.__setHidden(bool)
 * flips, announcing it with `visibilitychange` as the browser would.
 */
function emulateVisibility() {
  let hidden = false;
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
  window.__setHidden = (h) => {
    hidden = h;
    document.dispatchEvent(new Event('visibilitychange'));
  };
}

async function setHidden(page, hidden) {
  await page.evaluate((h) => window.__setHidden(h), hidden);
  assert((await page.evaluate(() => document.visibilityState)) === (hidden ? 'hidden' : 'visible'), `the page reports itself ${hidden ? 'hidden' : 'visible'}`);
}

const shownNotes = (page) => page.evaluate(() => window.__shown.slice());

/**
 * Waits until `page` has recorded `n` notifications, then a little longer (a second one for
 * the same message would come within notify()'s 300 ms), and returns them all.
 */
async function notesSettled(page, n, what) {
  await waitFor(what, async () => (await shownNotes(page)).length >= n, UI_MS);
  await sleep(NOTIFY_SETTLE_MS);
  return shownNotes(page);
}

/** Bob's presence as Alice's page shows it: the list's dot, the header's dot and its label. */
async function shownPresence(page, conv) {
  return {
    list: await convItem(page, conv).locator('[data-presence]').getAttribute('data-presence'),
    head: await page.locator('.conv-head [data-presence]').getAttribute('data-presence'),
    label: await page.getByTestId('conv-sub').textContent(),
  };
}

const PRESENCE_LABEL = { online: 'Online', away: 'Away' };

/** Waits until every place on Alice's page shows `state` for the partner of `conv`. */
async function waitPresence(page, conv, state, what) {
  await waitFor(
    what,
    async () => {
      const p = await shownPresence(page, conv);
      return p.list === state && p.head === state && p.label === PRESENCE_LABEL[state] ? p : false;
    },
    UI_MS,
  );
}

/** Still `state` everywhere after `ms`: nothing changed it meanwhile. */
async function keepsPresence(page, conv, state, ms, what) {
  await sleep(ms);
  const p = await shownPresence(page, conv);
  assert(p.list === state && p.head === state && p.label === PRESENCE_LABEL[state], `${what}: ${JSON.stringify(p)}`);
}

const SCENARIOS = {
  /**
   * Alice starts a direct conversation with Bob; text both ways live (unread badges, typing,
   * reply, mention, edit, delete), a picture dropped in and downloaded, a refused upload, and a
   * document shared from its page: a bare link until Bob may open it, its title after.
   */
  async direct(browser) {
    const a = await signIn(browser, 'alice');
    // Bob signs in once, so that the people search finds him; he waits on the document list.
    const b = await signIn(browser, 'bob');

    // Alice: Messages from the list's top bar, "New", the person search.
    await a.page.getByTestId('messages-link').click();
    await a.page.waitForURL((u) => u.pathname === '/messages');
    await a.page.getByTestId('no-conversations').waitFor({ timeout: UI_MS });
    await a.page.getByTestId('new-conversation').click();
    const dialog = a.page.locator('dialog[open]');
    await dialog.getByTestId('person-search').first().fill('bob');
    await dialog.getByTestId('person-option').filter({ hasText: NAMES.bob }).click();
    await a.page.waitForURL(/\/messages\/d[0-9a-f]{32}$/);
    const conv = new URL(a.page.url()).pathname.split('/').pop();
    log(`conversation ${conv}`);
    await waitFor('the header names Bob', async () => (await a.page.getByTestId('conv-name').textContent()) === NAMES.bob, UI_MS);
    await convItem(a.page, conv).waitFor({ timeout: UI_MS });

    const first = 'Hello Bob, here is the first message.';
    await say(a.page, first);

    // Bob, on the document list: the top bar counts it, live.
    await waitFor('Bob\'s header badge shows 1', async () => (await headerUnread(b.page).isVisible()) && (await headerUnread(b.page).textContent()) === '1', UI_MS);
    await b.page.getByTestId('messages-link').click();
    await b.page.waitForURL((u) => u.pathname === '/messages');
    const bItem = convItem(b.page, conv);
    await bItem.waitFor({ timeout: UI_MS });
    assert((await bItem.getByTestId('unread-badge').textContent()) === '1', 'Bob\'s conversation shows 1 unread');
    assert((await bItem.getByTestId('conv-title').textContent()) === NAMES.alice, 'a direct conversation is named after the other person');
    assert((await bItem.getByTestId('conv-preview').textContent()).includes(first), 'the preview shows the last message');
    // Alice is online: her dot in Bob's list says so.
    await waitFor('Alice shows online to Bob', async () => (await bItem.locator('[data-presence]').getAttribute('data-presence')) === 'online', UI_MS);
    await shot(b.page, 'messages-unread');

    // Opening it reads it: the badges go, on this device and in the top bar.
    await bItem.click();
    await b.page.waitForURL((u) => u.pathname === `/messages/${conv}`);
    await messageWith(b.page, first).waitFor({ timeout: UI_MS });
    await waitFor('Bob\'s unread badge goes', async () => (await bItem.getByTestId('unread-badge').count()) === 0, UI_MS);
    await waitFor('Bob\'s header badge goes', async () => !(await headerUnread(b.page).isVisible()), UI_MS);

    // Bob replies to the first message; Alice sees him typing, then the reply with its quote.
    await hoverAction(messageWith(b.page, first), 'reply');
    await b.page.getByTestId('reply-bar').waitFor();
    await b.page.getByTestId('composer-input').click();
    await b.page.keyboard.type('Hi Alice,', { delay: 20 });
    await waitFor('Alice sees Bob typing', async () => (await a.page.getByTestId('typing').textContent()) === `${NAMES.bob} is typing…`, UI_MS);
    const reply = 'Hi Alice, got it.';
    await b.page.keyboard.type(' got it.', { delay: 5 });
    await b.page.keyboard.press('Enter');
    const aReply = messageWith(a.page, reply);
    await aReply.waitFor({ timeout: UI_MS });
    assert((await aReply.getByTestId('quote').textContent()).includes(first), 'the reply quotes its target');
    await waitFor('the typing line clears', async () => (await a.page.getByTestId('typing').textContent()) === '', UI_MS);
    // Alice has the conversation open: Bob's reply counts as read for her.
    await waitFor('Alice has nothing unread', async () => (await convItem(a.page, conv).getAttribute('data-unread')) === '0', UI_MS);

    // A mention through the @ completion.
    await a.page.getByTestId('composer-input').click();
    await a.page.keyboard.type('@Bo', { delay: 20 });
    await a.page.getByTestId('mention-option').filter({ hasText: NAMES.bob }).waitFor({ timeout: UI_MS });
    await a.page.keyboard.press('Enter');
    await a.page.keyboard.type('please look at the picture.', { delay: 5 });
    await a.page.keyboard.press('Enter');
    const mention = `@${NAMES.bob} please look at the picture.`;
    await messageWith(a.page, mention).waitFor({ timeout: UI_MS });
    const bMention = messageWith(b.page, mention);
    await bMention.waitFor({ timeout: UI_MS });
    assert((await bMention.locator('.mention-me').textContent()) === `@${NAMES.bob}`, 'Bob sees himself mentioned');

    // A picture dropped on the conversation: uploaded, then sent as an attachment.
    const picture = png(48, 32);
    await dropFiles(a.page, [{ name: 'diagram.png', mimeType: 'image/png', base64: picture.toString('base64') }]);
    await waitFor('the upload is ready', async () => (await a.page.getByTestId('composer-file').getAttribute('data-state')) === 'ready', UI_MS);
    await a.page.getByTestId('send').click();
    const bImage = b.page.getByTestId('attachment-image');
    await bImage.waitFor({ timeout: UI_MS });
    await waitFor('Bob\'s thumbnail decodes', () => bImage.locator('img').evaluate((img) => img.complete && img.naturalWidth > 0), UI_MS);
    const thumb = await bImage.locator('img').evaluate((img) => ({ w: img.naturalWidth, h: img.naturalHeight, src: img.getAttribute('src') }));
    assert(thumb.src.endsWith('/thumbnail'), `the picture shows its thumbnail: ${thumb.src}`);
    assert(thumb.w <= 320 && thumb.h <= 320 && Math.abs(thumb.w / thumb.h - 1.5) < 0.1, `the thumbnail keeps the picture's shape within 320×320: ${thumb.w}×${thumb.h}`);
    const fileId = await bImage.getAttribute('data-file');
    // Clicking downloads it, named as it was sent.
    const [download] = await Promise.all([b.page.waitForEvent('download', { timeout: UI_MS }), bImage.click()]);
    assert(download.suggestedFilename() === 'diagram.png', `download named ${download.suggestedFilename()}`);
    const got = await bImage.evaluate(async (a) => {
      const res = await fetch(a.href);
      const bytes = new Uint8Array(await res.arrayBuffer());
      return {
        status: res.status,
        disposition: res.headers.get('content-disposition'),
        type: res.headers.get('content-type'),
        nosniff: res.headers.get('x-content-type-options'),
        cache: res.headers.get('cache-control'),
        csp: res.headers.get('content-security-policy'),
        base64: btoa(String.fromCharCode(...bytes)),
      };
    });
    assert(got.status === 200, `download status ${got.status}`);
    assert(/^attachment;/.test(got.disposition ?? '') && got.disposition.includes("filename*=UTF-8''diagram.png"), `Content-Disposition ${got.disposition}`);
    assert(got.type === 'image/png', `Content-Type ${got.type}`);
    assert(got.nosniff === 'nosniff', `X-Content-Type-Options ${got.nosniff}`);
    assert((got.cache ?? '').includes('no-store'), `Cache-Control ${got.cache}`);
    assert((got.csp ?? '').includes('sandbox'), `Content-Security-Policy ${got.csp}`);
    assert(got.base64 === picture.toString('base64'), 'the downloaded bytes are the picture');
    await shot(b.page, 'messages-picture');

    // A file that is not what it claims: refused, and said so in the user's language.
    await a.page.getByTestId('file-input').setInputFiles({ name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('these are plain words, not a picture\n') });
    const refused = a.page.locator('[data-testid=composer-file][data-state=error]');
    await refused.waitFor({ timeout: UI_MS });
    const why = await refused.textContent();
    assert(why.includes('“notes.png” is not what its name or type says it is.'), `refusal shown as: ${why}`);
    assert(await a.page.getByTestId('send').isDisabled(), 'nothing to send with only a refused file');
    await refused.getByRole('button').click();

    // Edit and delete one's own messages.
    const typo = 'Teh meeting is at 3.';
    await say(a.page, typo);
    await messageWith(b.page, typo).waitFor({ timeout: UI_MS });
    await hoverAction(messageWith(a.page, typo), 'edit');
    const box = a.page.getByTestId('edit-box');
    await box.fill('The meeting is at 3.');
    await box.press('Enter');
    const bEdited = messageWith(b.page, 'The meeting is at 3.');
    await bEdited.getByTestId('edited').waitFor({ timeout: UI_MS });
    const oops = 'Sent to the wrong person.';
    await say(a.page, oops);
    await messageWith(b.page, oops).waitFor({ timeout: UI_MS });
    a.page.once('dialog', (d) => d.accept());
    await hoverAction(messageWith(a.page, oops), 'delete');
    await waitFor('Bob sees it deleted', async () => (await messageWith(b.page, oops).count()) === 0 && (await b.page.getByTestId('deleted').count()) === 1, UI_MS);

    // A document, sent from its page into the conversation.
    const docTitle = 'Quarterly plan';
    const doc = await createDoc(a.page, base, docTitle);
    await a.page.getByTestId('share-to-conversation').click();
    const picker = a.page.locator('dialog[open]');
    await picker.locator(`[data-testid=share-target][data-conv-id="${conv}"]`).click();
    await a.page.getByText(`Sent to ${NAMES.bob}.`).waitFor({ timeout: UI_MS });
    const url = `${base}/d/${doc}`;
    // Bob may not open it: the bare link, no title.
    const bLink = b.page.locator(`[data-testid=doc-link][data-doc-id="${doc}"]`);
    await bLink.waitFor({ timeout: UI_MS });
    // doc.titles answered (data-title leaves "pending") with no title for him.
    await waitFor('doc.titles answers Bob', async () => (await bLink.getAttribute('data-title')) !== 'pending', UI_MS);
    assert((await bLink.getAttribute('data-title')) === 'none', 'Bob got a title for a document he may not open');
    assert((await bLink.getAttribute('data-titled')) === 'false', 'Bob\'s link is marked titled');
    assert((await bLink.textContent()) === url, `Bob's link reads ${await bLink.textContent()}`);
    assert(!(await b.page.getByTestId('msg-log').textContent()).includes(docTitle), 'the title shows somewhere for Bob');
    await shot(b.page, 'messages-doc-untitled');
    // Alice may: her conversation shows the title.
    await a.page.goto(`${base}/messages/${conv}`);
    const aLink = a.page.locator(`[data-testid=doc-link][data-doc-id="${doc}"]`);
    await waitFor('Alice sees the title', async () => (await aLink.getAttribute('data-titled')) === 'true' && (await aLink.textContent()) === docTitle, UI_MS);

    // Shared with Bob: after a reload, his link carries the title.
    const res = await call(a.page, 'POST', `/api/docs/${doc}/shares`, { kind: 'user', id: 'bob', role: 'viewer' });
    assert(res.status === 200, `share: ${res.status} ${res.text}`);
    await b.page.reload();
    await waitFor('Bob sees the title', async () => (await bLink.getAttribute('data-titled')) === 'true' && (await bLink.textContent()) === docTitle, UI_MS);
    // The link opens the document in the app.
    await bLink.click();
    await b.page.waitForURL((u) => u.pathname === `/d/${doc}`);
    await waitFor('Bob\'s document has the title', async () => (await b.page.getByTestId('doc-title').inputValue()) === docTitle, UI_MS);
    await b.page.goBack();
    await messageWith(b.page, reply).waitFor({ timeout: UI_MS });
    await shot(b.page, 'messages-doc-titled');

    // Switched to Korean, the same page speaks Korean.
    await b.page.getByRole('button', { name: 'Switch to Korean' }).click();
    await b.page.getByRole('heading', { name: '메시지' }).waitFor({ timeout: UI_MS });
    assert((await b.page.getByTestId('composer-input').getAttribute('placeholder')) === `${NAMES.alice}에게 메시지 보내기`, 'the composer speaks Korean');
    await b.page.getByTestId('deleted').filter({ hasText: '삭제된 메시지입니다.' }).waitFor({ timeout: UI_MS });
    await shot(b.page, 'messages-ko');

    result({
      conv,
      doc,
      file: fileId,
      picture: picture.toString('base64'),
      first,
      reply,
      mention,
      edited: 'The meeting is at 3.',
      link: url,
    });
  },

  /**
   * A group: Alice creates it with Bob and Carol, makes Bob an admin, renames it, removes
   * Carol (her open page says so), Bob archives it and leaves; every change shows live.
   */
  async group(browser) {
    const a = await signIn(browser, 'alice');
    const b = await signIn(browser, 'bob', { returnTo: '/messages' });
    const c = await signIn(browser, 'carol', { returnTo: '/messages' });

    await a.page.goto(`${base}/messages`);
    await a.page.getByTestId('new-conversation').click();
    const dialog = a.page.locator('dialog[open]');
    await dialog.getByTestId('kind-group').click();
    await dialog.getByTestId('group-title-input').fill('Budget 2027');
    const search = dialog.getByTestId('person-search').nth(1);
    for (const who of ['bob', 'carol']) {
      await search.fill(who);
      await dialog.getByTestId('person-option').filter({ hasText: NAMES[who] }).click();
    }
    assert((await dialog.getByTestId('group-people').textContent()).includes(NAMES.carol), 'both people are listed');
    await dialog.getByTestId('create-group').click();
    await a.page.waitForURL(/\/messages\/g[0-9a-f]{32}$/);
    const conv = new URL(a.page.url()).pathname.split('/').pop();
    log(`group ${conv}`);

    // Bob and Carol see it arrive in their lists.
    for (const p of [b.page, c.page]) {
      const item = convItem(p, conv);
      await item.waitFor({ timeout: UI_MS });
      await waitFor('the group\'s title', async () => (await item.getByTestId('conv-title').textContent()) === 'Budget 2027', UI_MS);
      await item.click();
      await p.waitForURL((u) => u.pathname === `/messages/${conv}`);
    }
    await say(a.page, 'Welcome to the budget group.');
    await messageWith(b.page, 'Welcome to the budget group.').waitFor({ timeout: UI_MS });
    await messageWith(c.page, 'Welcome to the budget group.').waitFor({ timeout: UI_MS });

    // More than a page of history: Carol, coming back, gets the newest page and the older
    // ones as she scrolls up, down to the beginning.
    await seed(a.page, conv, 70, 'Budget line');
    await messageWith(c.page, 'Budget line 70').waitFor({ timeout: UI_MS });
    await c.page.reload();
    await messageWith(c.page, 'Budget line 70').waitFor({ timeout: UI_MS });
    const shown = await messages(c.page).count();
    assert(shown < 71, `the first page holds the newest entries only (${shown} messages shown)`);
    await waitFor('Carol scrolls back to the beginning', async () => {
      await c.page.getByTestId('msg-scroll').evaluate((s) => s.scrollBy(0, -100000));
      return (await messageWith(c.page, 'Welcome to the budget group.').count()) === 1;
    }, UI_MS, 300);
    assert((await messages(c.page).count()) === 71, `all 71 messages after scrolling up: ${await messages(c.page).count()}`);
    await c.page.getByText('This is the beginning of the conversation.').waitFor();
    await c.page.getByTestId('msg-scroll').evaluate((s) => s.scrollBy(0, 100000));

    // Alice makes Bob an admin from the members panel; Bob's panel follows.
    await a.page.getByTestId('toggle-members').click();
    const panel = a.page.getByTestId('members-panel');
    await panel.locator('[data-testid=member][data-user=carol]').waitFor();
    assert((await panel.locator('[data-testid=member][data-user=alice]').getAttribute('data-role')) === 'admin', 'the creator is admin');
    await panel.getByRole('button', { name: `Actions for ${NAMES.bob}` }).click();
    await a.page.getByRole('menuitem', { name: `Make ${NAMES.bob} an admin` }).click();
    await b.page.getByTestId('toggle-members').click();
    const bPanel = b.page.getByTestId('members-panel');
    await waitFor('Bob is shown admin', async () => (await bPanel.locator('[data-testid=member][data-user=bob]').getAttribute('data-role')) === 'admin', UI_MS);
    await bPanel.getByTestId('rename').waitFor({ timeout: UI_MS });
    await messages(b.page).first().waitFor();
    await b.page.getByTestId('event').filter({ hasText: `${NAMES.alice} made ${NAMES.bob} an admin` }).waitFor({ timeout: UI_MS });

    // Alice renames it: the header and the log say so everywhere.
    await panel.getByTestId('rename').click();
    const prompt = a.page.locator('dialog[open]');
    await prompt.locator('input').fill('Budget 2027 (final)');
    await prompt.locator('input').press('Enter');
    await waitFor('Carol\'s header is renamed', async () => (await c.page.getByTestId('conv-name').textContent()) === 'Budget 2027 (final)', UI_MS);
    await c.page.getByTestId('event').filter({ hasText: `${NAMES.alice} renamed the conversation to “Budget 2027 (final)”` }).waitFor({ timeout: UI_MS });

    // Alice removes Carol: Carol's open conversation says so, and her list lets it go.
    a.page.once('dialog', (d) => d.accept());
    await panel.getByRole('button', { name: `Actions for ${NAMES.carol}` }).click();
    await a.page.getByRole('menuitem', { name: `Remove ${NAMES.carol}` }).click();
    await c.page.getByTestId('conv-notice').filter({ hasText: 'You were removed from this conversation.' }).waitFor({ timeout: UI_MS });
    assert(await c.page.getByTestId('composer-input').isHidden(), 'Carol can still write');
    await waitFor('Carol\'s list drops it', async () => (await convItem(c.page, conv).count()) === 0, UI_MS);
    await waitFor('Alice lists two members', async () => (await panel.getByTestId('member').count()) === 2, UI_MS);
    await b.page.getByTestId('event').filter({ hasText: `${NAMES.alice} removed ${NAMES.carol}` }).waitFor({ timeout: UI_MS });
    await shot(a.page, 'messages-group');

    // Bob archives it (for himself), then leaves; Alice sees him go.
    await bPanel.getByTestId('archive').click();
    await waitFor('Bob\'s inbox drops it', async () => (await convItem(b.page, conv).count()) === 0, UI_MS);
    await b.page.getByTestId('tab-archived').click();
    await convItem(b.page, conv).waitFor({ timeout: UI_MS });
    assert((await convItem(a.page, conv).count()) === 1, 'archiving is for Bob only');
    b.page.once('dialog', (d) => d.accept());
    await bPanel.getByTestId('leave').click();
    await b.page.getByTestId('conv-notice').filter({ hasText: 'You left this conversation.' }).waitFor({ timeout: UI_MS });
    await a.page.getByTestId('event').filter({ hasText: `${NAMES.bob} left` }).waitFor({ timeout: UI_MS });
    await waitFor('Alice lists one member', async () => (await panel.getByTestId('member').count()) === 1, UI_MS);
    result({ conv });
  },

  /**
   * Bob's browser notifications and presence: none while his tab is visible, one per message
   * by someone else while it is hidden (direct, group, and a mention shown once, as a
   * mention), a click opening the conversation; then, on a fake clock, "away" after 5 minutes
   * without input or hidden, and online again at the next input or when visible, as Alice's
   * page shows and as the server tells a watcher (ASK presence bob STATE).
   */
  async alerts(browser) {
    const a = await signIn(browser, 'alice', { returnTo: '/messages' });
    const b = await signIn(browser, 'bob', {
      returnTo: '/messages',
      prepare: async (context) => {
        await context.grantPermissions(['notifications'], { origin: base });
        await context.addInitScript(recordNotifications);
        await context.addInitScript(emulateVisibility);
      },
    });
    // The recorder is in place and the browser's permission shows through it; only Alice,
    // who was never asked, is offered to enable notifications.
    const api = await b.page.evaluate(() => ({ name: Notification.name, permission: Notification.permission, request: typeof Notification.requestPermission }));
    assert(api.name === 'Recorded' && api.permission === 'granted' && api.request === 'function', `Bob's Notification: ${JSON.stringify(api)}`);
    await a.page.getByTestId('enable-notifications').waitFor({ timeout: UI_MS });
    assert((await b.page.getByTestId('enable-notifications').count()) === 0, 'Bob, who granted it, is offered to enable notifications');

    // Alice starts the direct conversation from "New"; Bob opens it from his list.
    await a.page.getByTestId('new-conversation').click();
    let dialog = a.page.locator('dialog[open]');
    await dialog.getByTestId('person-search').first().fill('bob');
    await dialog.getByTestId('person-option').filter({ hasText: NAMES.bob }).click();
    await a.page.waitForURL(/\/messages\/d[0-9a-f]{32}$/);
    const conv = new URL(a.page.url()).pathname.split('/').pop();
    log(`conversation ${conv}`);
    await convItem(b.page, conv).click();
    await b.page.waitForURL((u) => u.pathname === `/messages/${conv}`);

    // Visible: the message shows, nothing pops up.
    const seen = 'Are you there, Bob?';
    await say(a.page, seen);
    await messageWith(b.page, seen).waitFor({ timeout: UI_MS });
    await sleep(NOTIFY_SETTLE_MS);
    assert((await shownNotes(b.page)).length === 0, `a notification while Bob's tab is visible: ${JSON.stringify(await shownNotes(b.page))}`);

    // Hidden: one notification, from Alice, with the text cut at 200 characters, tagged with
    // the message's id; the message is not read while nobody can see it.
    await setHidden(b.page, true);
    const long = `The room moved to the fourth floor, ${'next to the kitchen and the big window, '.repeat(5)}see you there.`;
    assert(long.length > 200, 'the text is longer than a notification shows');
    await say(a.page, long);
    const longRow = messageWith(b.page, 'The room moved to the fourth floor');
    await longRow.waitFor({ timeout: UI_MS });
    const longId = await longRow.getAttribute('data-id');
    let notes = await notesSettled(b.page, 1, 'Bob\'s first notification');
    assert(notes.length === 1, `one notification for one message: ${JSON.stringify(notes)}`);
    assert(notes[0].title === NAMES.alice, `titled with the author's name: ${notes[0].title}`);
    assert(notes[0].body === long.slice(0, 200), `the text's first 200 characters: ${notes[0].body}`);
    assert(notes[0].tag === longId, `tagged with the message id ${longId}: ${notes[0].tag}`);
    assert((await convItem(b.page, conv).getAttribute('data-unread')) === '1', 'a message read while Bob\'s tab is hidden');
    // Visible again: read then.
    await setHidden(b.page, false);
    await waitFor('Bob reads it once visible', async () => (await convItem(b.page, conv).getAttribute('data-unread')) === '0', UI_MS);

    // A group, hidden again: "author · group" for a message, and a mention shown once, as one.
    await a.page.getByTestId('new-conversation').click();
    dialog = a.page.locator('dialog[open]');
    await dialog.getByTestId('kind-group').click();
    await dialog.getByTestId('group-title-input').fill('Launch crew');
    await dialog.getByTestId('person-search').nth(1).fill('bob');
    await dialog.getByTestId('person-option').filter({ hasText: NAMES.bob }).click();
    await dialog.getByTestId('create-group').click();
    await a.page.waitForURL(/\/messages\/g[0-9a-f]{32}$/);
    const group = new URL(a.page.url()).pathname.split('/').pop();
    log(`group ${group}`);
    const gItem = convItem(b.page, group);
    await gItem.waitFor({ timeout: UI_MS });
    await waitFor('Bob\'s list names the group', async () => (await gItem.getByTestId('conv-title').textContent()) === 'Launch crew', UI_MS);
    await setHidden(b.page, true);
    const plain = 'The launch list is in the shared folder.';
    await say(a.page, plain);
    const plainId = await messageWith(a.page, plain).getAttribute('data-id');
    notes = await notesSettled(b.page, 2, 'Bob\'s group notification');
    assert(notes.length === 2, `one more notification: ${JSON.stringify(notes)}`);
    assert(notes[1].title === `${NAMES.alice} · Launch crew` && notes[1].body === plain && notes[1].tag === plainId, `the group message's notification: ${JSON.stringify(notes[1])}`);
    await a.page.getByTestId('composer-input').click();
    await a.page.keyboard.type('@Bo', { delay: 20 });
    await a.page.getByTestId('mention-option').filter({ hasText: NAMES.bob }).waitFor({ timeout: UI_MS });
    await a.page.keyboard.press('Enter');
    await a.page.keyboard.type('please check the launch list.', { delay: 5 });
    await a.page.keyboard.press('Enter');
    const mention = `@${NAMES.bob} please check the launch list.`;
    await messageWith(a.page, mention).waitFor({ timeout: UI_MS });
    await waitFor('Alice\'s mention is sent', async () => (await a.page.getByTestId('pending').count()) === 0, UI_MS);
    const mentionId = await messageWith(a.page, mention).getAttribute('data-id');
    // msg.new and msg.mention both came: one notification, the mention's.
    notes = await notesSettled(b.page, 3, 'Bob\'s mention notification');
    assert(notes.length === 3, `a mention notifies once: ${JSON.stringify(notes)}`);
    assert(notes[2].title === `${NAMES.alice} mentioned you` && notes[2].body === mention && notes[2].tag === mentionId, `the mention's notification: ${JSON.stringify(notes[2])}`);
    // Clicking it opens the group.
    const made = await b.page.evaluate(() => window.__notes.length);
    assert(made === 3, `the browser made ${made} of the 3 notifications`);
    await b.page.evaluate(() => window.__notes[2].dispatchEvent(new Event('click')));
    await b.page.waitForURL((u) => u.pathname === `/messages/${group}`, { timeout: UI_MS });
    await messageWith(b.page, mention).waitFor({ timeout: UI_MS });
    await setHidden(b.page, false);
    const shown = await shownNotes(b.page);

    // ----- presence -----
    // Bob again, in a fresh context whose clock is Playwright's: installed before the app
    // loads, so its 15 s activity check and its Date.now() are fake and fastForward reaches
    // 5 minutes at once. The clock keeps running at the real pace between jumps, so the
    // socket's 20 s pings still go out in time for the server (real clock, closes after 60 s
    // of silence); a jump fires each due timer once (one extra ping, one activity check).
    const b2 = await signIn(browser, 'bob', {
      returnTo: `/messages/${conv}`,
      prepare: async (context) => {
        await context.clock.install();
        await context.addInitScript(emulateVisibility);
      },
    });
    await messageWith(b2.page, long.slice(0, 40)).waitFor({ timeout: UI_MS });
    const t0 = await b2.page.evaluate(() => Date.now());
    await sleep(1000);
    const ran = (await b2.page.evaluate(() => Date.now())) - t0;
    assert(ran >= 900 && ran < 5000, `Bob's fake clock runs at the real pace between jumps (${ran} ms in 1 s)`);
    // His first context goes: its socket would say nothing more (a session in its resume
    // window keeps Bob from showing online, but the new socket does).
    await b.context.close();
    await convItem(a.page, conv).click();
    await a.page.waitForURL((u) => u.pathname === `/messages/${conv}`);
    const saw = [];
    await waitPresence(a.page, conv, 'online', 'Alice sees Bob online');
    saw.push('online');
    await ask('presence bob online');

    // Idle: 4 minutes without input are not enough; 5½ are.
    await b2.page.clock.fastForward('04:00');
    await keepsPresence(a.page, conv, 'online', 2000, 'Bob shows away after 4 idle minutes');
    await b2.page.clock.fastForward('01:30');
    await waitPresence(a.page, conv, 'away', 'Alice sees Bob away after idling');
    saw.push('away');
    await ask('presence bob away');
    // He moves the mouse: online at once.
    await b2.page.mouse.move(300, 300);
    await b2.page.mouse.move(340, 320, { steps: 4 });
    await waitPresence(a.page, conv, 'online', 'Alice sees Bob back online after he moved the mouse');
    saw.push('online');
    await ask('presence bob online');

    // Hidden, but with input meanwhile: away 5 minutes after he hid the tab, not before.
    await setHidden(b2.page, true);
    await b2.page.clock.fastForward('03:00');
    await b2.page.mouse.move(200, 250, { steps: 4 });
    await keepsPresence(a.page, conv, 'online', 2000, 'Bob shows away 3 minutes after hiding the tab');
    await b2.page.clock.fastForward('02:30');
    await waitPresence(a.page, conv, 'away', 'Alice sees Bob away with his tab hidden for 5½ minutes');
    saw.push('away');
    await ask('presence bob away');
    // The tab is shown again: online.
    await setHidden(b2.page, false);
    await waitPresence(a.page, conv, 'online', 'Alice sees Bob online once his tab shows');
    saw.push('online');
    await ask('presence bob online');

    result({
      conv,
      group,
      seen,
      long,
      plain,
      mention,
      ids: { long: longId, plain: plainId, mention: mentionId },
      notifications: shown,
      presence: saw,
    });
  },
};

await main(SCENARIOS, name, artifactDir);
