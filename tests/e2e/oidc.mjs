// Signed-in browser scenarios: dure with single sign-on through the test OpenID provider
// (tests/js/idp.mjs). node oidc.mjs SCENARIO BASE_URL ARTIFACTS_DIR [FIXTURE.md]
// tests/tests/web_e2e_oidc.rs starts the provider and dure (public URL BASE_URL) and calls them.
//
// The provider signs in whoever `login_hint` names, without a page: dure's
// /auth/login?login_hint=alice&return_to=/d/ID passes the hint on, so a navigation there goes
// through the real redirect flow (dure, the provider's authorization and interaction, dure's
// callback) and lands signed in, with the session cookie.
import { readFileSync } from 'node:fs';
import {
  artifacts, assert, createDoc, docXml, main, person, result, saveState, typeAtEnd,
  waitFor, waitSaved,
} from './lib.mjs';

const [, , name, base, artifactDir = 'target/e2e-artifacts', fixture] = process.argv;
const shot = artifacts(artifactDir);

/** Display names the provider gives (tests/src/idp.rs USERS). */
const NAMES = { alice: 'Alice Kim', bob: 'Bob Lee', carol: 'Carol Park', admin: 'Admin Choi' };

/** A new browser context signed in as `user` through the provider, on `returnTo`. */
async function signIn(browser, user, { returnTo = '/', ...opts } = {}) {
  const who = await person(browser, { lang: 'en', ...opts });
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

async function share(page, id, kind, subject, role) {
  const res = await call(page, 'POST', `/api/docs/${id}/shares`, { kind, id: subject, role });
  assert(res.status === 200, `share ${kind} ${subject} ${role}: ${res.status} ${res.text}`);
}

/** The server's export of the document, as `page`'s user. */
async function exported(page, id, format) {
  const res = await call(page, 'GET', `/api/docs/${id}/export?format=${format}`);
  assert(res.status === 200, `export ${format}: ${res.status} ${res.text}`);
  return res.text;
}

/** The editor's text, blocks separated by a blank line, without the other people's carets. */
const plainText = (page) =>
  page.evaluate(() => {
    const root = document.querySelector('.ProseMirror').cloneNode(true);
    for (const caret of root.querySelectorAll('.collaboration-carets__caret')) caret.remove();
    return Array.from(root.children, (el) => el.textContent).join('\n\n');
  });

const editable = async (page) => (await page.locator('.ProseMirror').getAttribute('contenteditable')) === 'true';
const caretNames = (page) => page.locator('.collaboration-carets__label').allTextContents();
const counters = (page) => page.evaluate(() => window.__dure.counters());

/** Tries to change the document as a person would: typing, deleting, a new paragraph. */
async function tryToType(page, text) {
  await page.locator('.ProseMirror').click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type(text, { delay: 8 });
  await page.keyboard.press('Backspace');
  await page.keyboard.press('Enter');
}

const SCENARIOS = {
  /** Alice and Bob, signed in, edit one document: each sees the other's text and named caret. */
  async collab(browser) {
    const a = await signIn(browser, 'alice');
    const b = await signIn(browser, 'bob');
    const id = await createDoc(a.page, base, 'Budget 2027 — notes');
    await share(a.page, id, 'user', 'bob', 'editor');
    await typeAtEnd(a.page, 'Alice drafts the first line.');

    await b.page.goto(`${base}/d/${id}`);
    await waitFor('Bob sees Alice\'s text', async () => (await plainText(b.page)).includes('Alice drafts the first line.'));
    await waitFor('Bob sees the title', async () => (await b.page.getByTestId('doc-title').inputValue()) === 'Budget 2027 — notes');
    assert(await editable(b.page), 'Bob, an editor, got a read-only editor');
    // Let Bob's editor settle on the synced document (his handshake acknowledged) before he
    // types: typing into the editor's provisional empty paragraph put his line first.
    await waitSaved(b.page);
    await typeAtEnd(b.page, '');
    await b.page.keyboard.press('Enter');
    await b.page.keyboard.type('Bob adds a second line.', { delay: 8 });
    await waitFor('Alice sees Bob\'s text', async () => (await plainText(a.page)).includes('Bob adds a second line.'));

    // Carets and presence carry the names the provider gave.
    await a.page.locator('.ProseMirror').click();
    await a.page.keyboard.press('Control+Home');
    await waitFor('Alice sees Bob\'s named caret', async () => (await caretNames(a.page)).includes(NAMES.bob));
    await waitFor('Bob sees Alice\'s named caret', async () => (await caretNames(b.page)).includes(NAMES.alice));
    await waitFor('Alice lists Bob', async () => (await a.page.locator('.presence').getAttribute('aria-label'))?.includes(NAMES.bob));
    await waitFor('Bob lists Alice', async () => (await b.page.locator('.presence').getAttribute('aria-label'))?.includes(NAMES.alice));

    await waitSaved(a.page);
    await waitSaved(b.page);
    const [xa, xb] = [await docXml(a.page), await docXml(b.page)];
    assert(xa === xb, `documents differ:\nAlice ${xa}\nBob   ${xb}`);
    const [ta, tb] = [await plainText(a.page), await plainText(b.page)];
    assert(ta === tb, `editors show different text:\nAlice ${JSON.stringify(ta)}\nBob   ${JSON.stringify(tb)}`);
    // What the server stored, read back as Alice.
    const text = await exported(a.page, id, 'txt');
    // The text export leaves out empty paragraphs (two editors opening an empty document at
    // once can each add one); the exact structure is compared on the Rust side (stored XML).
    const lines = (t) => t.split('\n').filter((l) => l !== '').join('\n');
    assert(lines(text) === lines(ta), `the server's text differs from the editors':\nserver ${JSON.stringify(text)}\neditor ${JSON.stringify(ta)}`);
    await shot(a.page, 'oidc-two-people');
    result({ doc: id, xml: xa, text, markdown: await exported(a.page, id, 'md') });
  },

  /** Carol, a viewer: follows Alice live, and nothing she types changes anything anywhere. */
  async viewer(browser) {
    const a = await signIn(browser, 'alice');
    const c = await signIn(browser, 'carol');
    const id = await createDoc(a.page, base, 'Staff handbook');
    await typeAtEnd(a.page, 'Everyone may read this handbook.');
    await waitSaved(a.page);
    await share(a.page, id, 'user', 'carol', 'viewer');

    await c.page.goto(`${base}/d/${id}`);
    await waitFor('Carol sees the text', async () => (await plainText(c.page)).includes('Everyone may read this handbook.'));
    await waitFor('"View only"', async () => (await saveState(c.page)) === 'view-only');
    assert(!(await editable(c.page)), 'a viewer got an editable editor');
    assert((await c.page.locator('.toolbar').count()) === 0, 'a viewer got the formatting toolbar');
    assert(await c.page.getByText('You can view this document but not change it.').isVisible(), 'no read-only notice');
    assert(await c.page.getByTestId('doc-title').evaluate((e) => e.readOnly), 'a viewer can edit the title');
    await a.page.locator('.ProseMirror').click();
    await waitFor('Carol sees Alice\'s caret', async () => (await caretNames(c.page)).includes(NAMES.alice));
    await shot(c.page, 'oidc-viewer');

    const before = { xml: await docXml(c.page), sent: (await counters(c.page)).sent };
    await tryToType(c.page, 'Carol tries to write.');
    await c.page.getByTestId('doc-title').click();
    await c.page.keyboard.type('Carol', { delay: 8 });
    await c.page.waitForTimeout(1000);
    assert((await docXml(c.page)) === before.xml, `a viewer's typing changed her document: ${await docXml(c.page)}`);
    assert((await counters(c.page)).sent === before.sent, 'a viewer\'s browser sent an update');
    assert((await c.page.getByTestId('doc-title').inputValue()) === 'Staff handbook', 'a viewer changed the title');

    // Alice's edits reach her live.
    await typeAtEnd(a.page, ' Updated while Carol reads.');
    await waitFor('Carol sees Alice\'s edit live', async () => (await plainText(c.page)).includes('Updated while Carol reads.'));
    await waitSaved(a.page);
    const [xa, xc] = [await docXml(a.page), await docXml(c.page)];
    assert(xa === xc, `documents differ:\nAlice ${xa}\nCarol ${xc}`);
    assert(!(await plainText(a.page)).includes('Carol tries'), 'Alice sees what Carol typed');
    const text = await exported(a.page, id, 'txt');
    assert(text === 'Everyone may read this handbook. Updated while Carol reads.\n', `server text ${JSON.stringify(text)}`);
    result({ doc: id, xml: xa, text });
  },

  /**
   * Alice shares from the dialog (Bob found by name, a group), Bob edits, his role changes live
   * both ways, and when Alice removes him his open editor shows the no-access state.
   */
  async sharing(browser) {
    const a = await signIn(browser, 'alice');
    // Bob has signed in once, so the dialog can find him.
    const b = await signIn(browser, 'bob');
    const id = await createDoc(a.page, base, 'Procurement plan');
    await typeAtEnd(a.page, 'Alice starts the plan.');
    await waitSaved(a.page);

    // Not shared yet: Bob is refused.
    await b.page.goto(`${base}/d/${id}`);
    await waitFor('Bob is refused', async () => (await saveState(b.page)) === 'final');
    assert(!(await plainText(b.page)).includes('Alice'), 'Bob saw the text before it was shared');
    await b.page.getByText('You do not have access to this document. Ask its owner to share it with you.').waitFor();
    assert(!(await editable(b.page)), 'Bob got an editable editor without access');
    assert(await b.page.getByTestId('doc-title').evaluate((e) => e.readOnly), 'Bob may type a title without access');
    await shot(b.page, 'oidc-never-shared');

    const dialog = a.page.locator('dialog[open]');
    const openDialog = async () => {
      await a.page.getByTestId('share').click();
      await dialog.waitFor();
    };
    await openDialog();
    await dialog.getByRole('combobox', { name: 'Name or e-mail' }).fill('bob');
    await dialog.getByRole('option', { name: /Bob Lee/ }).click();
    await dialog.getByLabel('Role for', { exact: true }).selectOption('editor');
    await dialog.getByRole('button', { name: 'Add', exact: true }).click();
    const bobRole = dialog.getByLabel(`Role for ${NAMES.bob}`);
    await bobRole.waitFor();
    assert((await bobRole.inputValue()) === 'editor', 'Bob was not added as an editor');
    // A group too (typed by name).
    await dialog.getByRole('radio', { name: 'Group' }).click();
    await dialog.getByRole('combobox', { name: 'Group name' }).fill('hr');
    await dialog.getByLabel('Role for', { exact: true }).selectOption('viewer');
    await dialog.getByRole('button', { name: 'Add', exact: true }).click();
    await dialog.getByLabel('Role for hr').waitFor();
    await a.page.waitForTimeout(300); // the dialog's opening animation
    await shot(a.page, 'oidc-sharing-dialog');
    await dialog.getByRole('button', { name: 'Done' }).click();

    // Bob opens the link again and edits.
    await b.page.goto(`${base}/d/${id}`);
    await waitFor('Bob sees the text', async () => (await plainText(b.page)).includes('Alice starts the plan.'));
    await waitFor('Bob may edit', () => editable(b.page));
    await typeAtEnd(b.page, ' Bob adds the budget.');
    await waitFor('Alice sees Bob\'s edit', async () => (await plainText(a.page)).includes('Bob adds the budget.'));
    await waitSaved(b.page);

    // Alice makes him a viewer while he types: the server refuses his edit, and his editor
    // turns into the viewer's, from the server's copy (the refused text gone).
    await openDialog();
    await bobRole.selectOption('viewer');
    await waitFor('the server has Bob as a viewer', async () => (await call(b.page, 'GET', `/api/docs/${id}`)).text.includes('"role":"viewer"'));
    // He goes on typing where he was (no click, no focus change: nothing makes the app look
    // at his role first; the server's refusal is what tells it).
    await b.page.keyboard.type(' Refused.', { delay: 8 });
    await waitFor('"View only"', async () => (await saveState(b.page)) === 'view-only');
    await b.page.getByText('Your last changes were refused: you may only view this document.').waitFor();
    assert(!(await editable(b.page)), 'Bob, now a viewer, can still type');
    await waitFor('the refused edit is gone from Bob\'s editor', async () => !(await plainText(b.page)).includes('Ref'));
    assert((await docXml(b.page)) === (await docXml(a.page)), 'Bob kept what the server refused');
    assert(!(await plainText(a.page)).includes('Ref'), 'a refused edit reached Alice');

    // And an editor again: Bob clicks into the text and may write.
    await bobRole.selectOption('editor');
    await waitFor('the server has Bob as an editor', async () => (await call(b.page, 'GET', `/api/docs/${id}`)).text.includes('"role":"editor"'));
    await waitFor('Bob\'s editor is editable again once he clicks into it', async () => {
      await b.page.locator('.ProseMirror').click();
      return editable(b.page);
    }, 15000, 400);
    await typeAtEnd(b.page, ' Bob again.');
    await waitFor('Alice sees Bob again', async () => (await plainText(a.page)).includes('Bob again.'));
    await waitSaved(b.page);
    assert((await docXml(a.page)) === (await docXml(b.page)), 'Alice and Bob disagree after the role changes');

    // Alice removes Bob: his socket is closed (4403) and his editor says so.
    await dialog.getByRole('button', { name: `Remove access for ${NAMES.bob}` }).click();
    await waitFor('Bob gone from the dialog', async () => (await bobRole.count()) === 0);
    await dialog.getByRole('button', { name: 'Done' }).click();
    await waitFor('Bob\'s editor closed', async () => (await saveState(b.page)) === 'final');
    assert(await b.page.getByText('You no longer have access to this document.').first().isVisible(), 'no no-access notice');
    assert(!(await editable(b.page)), 'Bob can still type after losing access');
    await shot(b.page, 'oidc-no-access');
    // ...and nothing of the document is left on his device.
    await waitFor('Bob\'s local copy deleted', async () =>
      !(await b.page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name))).some((n) => n.includes(id)),
    );

    // Nothing syncs any more, either way.
    const bobXml = await docXml(b.page);
    await typeAtEnd(a.page, ' Alice continues alone.');
    await waitSaved(a.page);
    await tryToType(b.page, 'Bob after removal.');
    await b.page.waitForTimeout(1500);
    assert(!(await plainText(b.page)).includes('Alice continues alone.'), 'Bob still receives edits');
    assert((await docXml(b.page)) === bobXml, 'Bob\'s document changed after removal');
    assert(!(await plainText(a.page)).includes('Bob after removal'), 'Alice received Bob\'s edit after removal');
    result({ doc: id, xml: await docXml(a.page), text: await exported(a.page, id, 'txt') });
  },

  /**
   * The every-node document: imported through the list, opened in the editor (which drops what
   * its schema rejects), one word typed, exported through the menu: the fixture plus that word.
   */
  async everynode(browser) {
    const markdown = readFileSync(fixture, 'utf8');
    const a = await signIn(browser, 'alice');
    const chooser = a.page.waitForEvent('filechooser');
    await a.page.getByRole('button', { name: 'Import Markdown' }).click();
    await (await chooser).setFiles({ name: 'Every node.md', mimeType: 'text/markdown', buffer: Buffer.from(markdown) });
    await a.page.waitForURL(/\/d\/[A-Za-z0-9_-]+$/);
    const id = new URL(a.page.url()).pathname.split('/').pop();
    await a.page.locator('.ProseMirror table').waitFor();
    await waitSaved(a.page);
    await a.page.locator('.ProseMirror img').scrollIntoViewIfNeeded();
    await shot(a.page, 'oidc-every-node');
    assert((await a.page.getByTestId('doc-title').inputValue()) === 'Every node', 'title from the file name');

    await a.page.locator('.ProseMirror > p', { hasText: /^# not a heading$/ }).click();
    await a.page.keyboard.press('End');
    await a.page.keyboard.type(' Dure', { delay: 8 });
    await waitSaved(a.page);
    await a.page.waitForTimeout(300);

    const download = a.page.waitForEvent('download');
    await a.page.getByTestId('more').click();
    await a.page.getByRole('menuitem', { name: 'Download: Markdown (.md)' }).click();
    const file = await download;
    const text = readFileSync(await file.path(), 'utf8');
    result({ doc: id, filename: file.suggestedFilename(), markdown: text });
  },

  /**
   * Signing in from the app's sign-in page, signing out from the user menu (the provider's
   * session ends too), and an open tab of the same person told to sign in again (4401).
   */
  async signout(browser) {
    const p = await person(browser, { lang: 'en' });
    // The provider asks nobody: the hint says who signs in (a real one would show its page).
    await p.context.route(
      (u) => u.origin === base && u.pathname === '/auth/login',
      (route) => route.continue({ url: `${route.request().url()}&login_hint=alice` }),
    );
    await p.page.goto(`${base}/`);
    const signInBtn = p.page.getByTestId('sign-in');
    await signInBtn.waitFor();
    assert((await signInBtn.getAttribute('href')) === '/auth/login?return_to=%2F', `sign-in link ${await signInBtn.getAttribute('href')}`);
    await shot(p.page, 'oidc-sign-in');
    await signInBtn.click();
    await p.page.waitForURL((u) => u.origin === base && u.pathname === '/');
    await p.page.getByRole('button', { name: `Account: ${NAMES.alice}` }).waitFor();
    await p.page.getByTestId('new-doc').waitFor();
    await shot(p.page, 'oidc-signed-in');

    const id = await createDoc(p.page, base, 'Signed in and out');
    await typeAtEnd(p.page, 'Written before signing out.');
    await waitSaved(p.page);
    const other = await p.context.newPage();
    await other.goto(`${base}/d/${id}`);
    await waitFor('the other tab has the text', async () => (await plainText(other)).includes('Written before signing out.'));

    await p.page.getByRole('button', { name: `Account: ${NAMES.alice}` }).click();
    await p.page.getByRole('menuitem', { name: 'Sign out' }).click();
    await p.page.getByTestId('sign-in').waitFor({ timeout: 20000 });
    assert(new URL(p.page.url()).origin === base, `after sign-out the browser is at ${p.page.url()}`);
    const me = await call(p.page, 'GET', '/api/me');
    assert(me.status === 401, `/api/me after sign-out: ${me.status}`);
    // Nothing of Alice's is left in this browser (the server's configuration is no one's).
    const cached = await p.page.evaluate(() =>
      Object.keys(localStorage).filter((k) => k.startsWith('dure:cache:') && k !== 'dure:cache:config'),
    );
    assert(cached.length === 0, `cached answers left after sign-out: ${cached}`);
    await waitFor('Alice\'s local copies deleted', async () =>
      !(await p.page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name))).some((n) => n.startsWith('dure:alice:')),
    );

    // The other tab's socket is closed (4401): it offers to sign in again, back to the document.
    await waitFor('the other tab is told', async () => (await saveState(other)) === 'final');
    const again = other.getByRole('link', { name: 'Sign in again' });
    await again.waitFor();
    assert((await again.getAttribute('href')) === `/auth/login?return_to=${encodeURIComponent(`/d/${id}`)}`, 'sign-in-again link');
    assert((await other.locator('.presence').count()) === 0, 'a closed document still shows people in it');
    assert((await other.locator('.toolbar').count()) === 0, 'a closed document still shows the formatting toolbar');
    await shot(other, 'oidc-signed-out-elsewhere');
    await again.click();
    await other.waitForURL((u) => u.origin === base && u.pathname === `/d/${id}`);
    await waitFor('the document is back', async () => (await plainText(other)).includes('Written before signing out.'));
    await waitFor('editable again', () => editable(other));
    await typeAtEnd(other, ' And after signing in again.');
    await waitSaved(other);
    result({ doc: id, text: await exported(other, id, 'txt') });
  },
};

await main(SCENARIOS, name, artifactDir);
