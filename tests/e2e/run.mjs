// Runs one browser scenario against a running dure: node run.mjs SCENARIO BASE_URL ARTIFACTS_DIR
// Scenarios are listed in SCENARIOS below; tests/tests/web_e2e.rs starts dure and calls them.
import {
  artifacts, ask, assert, createDoc, docXml, editorText, main, person, result, saveState, typeAtEnd,
  waitFor, waitSaved,
} from './lib.mjs';

const [, , name, base, artifactDir = 'target/e2e-artifacts'] = process.argv;
const shot = artifacts(artifactDir);

const SCENARIOS = {
  /** Two people edit one document: each sees the other's text and caret; all agree. */
  async collab(browser) {
    const a = await person(browser);
    const b = await person(browser);
    const id = await createDoc(a.page, base, 'Weekly planning');
    await typeAtEnd(a.page, 'Alpha writes here.');
    await b.page.goto(`${base}/d/${id}`);
    await b.page.locator('.ProseMirror').waitFor();
    await waitFor('B sees A', async () => (await editorText(b.page)).includes('Alpha writes here.'));
    await b.page.locator('.ProseMirror').click();
    await b.page.keyboard.press('Control+End');
    await b.page.keyboard.press('Enter');
    await b.page.keyboard.type('Bravo answers.', { delay: 8 });
    await waitFor('A sees B', async () => (await editorText(a.page)).includes('Bravo answers.'));
    // Each sees the other's caret with a name label.
    for (const [who, p] of [['A', a.page], ['B', b.page]]) {
      await waitFor(`${who} shows the other's caret`, () => p.locator('.collaboration-carets__label').count());
      await waitFor(`${who} lists the other in presence`, () => p.locator('.presence .avatar').count());
    }
    await waitSaved(a.page);
    await waitSaved(b.page);
    const [xa, xb] = [await docXml(a.page), await docXml(b.page)];
    assert(xa === xb, `documents differ:\nA ${xa}\nB ${xb}`);
    result({ doc: id, xml: xa });
  },

  /** "Saved" only once the store has the edit: the runner pauses S3 while we type. */
  async saved(browser) {
    const a = await person(browser);
    const id = await createDoc(a.page, base, 'Saved means stored');
    await typeAtEnd(a.page, 'Before the outage. ');
    await waitSaved(a.page);
    await ask('pause');
    await typeAtEnd(a.page, 'Typed while the store is down.');
    const since = Date.now();
    while (Date.now() - since < 6000) {
      const s = await saveState(a.page);
      assert(s === 'saving', `status is ${s} while the store is paused (want saving)`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const label = await a.page.getByTestId('save-status').innerText();
    assert(/Saving/.test(label), `label ${label}`);
    await shot(a.page, 'saving-while-store-paused');
    await ask('resume');
    await waitSaved(a.page, 60000);
    result({ doc: id, xml: await docXml(a.page) });
  },

  /** Offline: edits survive a reload without network, then reach the server and others. */
  async offline(browser) {
    const a = await person(browser);
    const b = await person(browser);
    const id = await createDoc(a.page, base, 'Offline notes');
    await typeAtEnd(a.page, 'Written online.');
    await waitSaved(a.page);
    // The app shell must be cached before the network goes.
    await a.page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
    await waitFor('service worker controls the page', () => a.page.evaluate(() => !!navigator.serviceWorker.controller), 10000)
      .catch(async () => {
        // The first load happened before the worker existed: a reload puts it in charge.
        await a.page.reload();
        await a.page.locator('.ProseMirror').waitFor();
      });
    await b.page.goto(`${base}/d/${id}`);
    await waitFor('B has the text', async () => (await editorText(b.page)).includes('Written online.'));

    await a.context.setOffline(true);
    await waitFor('status offline', async () => (await saveState(a.page)) === 'offline');
    await typeAtEnd(a.page, ' Written offline.');
    await shot(a.page, 'offline-editing');
    const failed = await a.page.evaluate(() => fetch('/api/me').then(() => false, () => true));
    assert(failed, 'the API still answered while offline');

    await a.page.reload();
    await a.page.locator('.ProseMirror').waitFor({ timeout: 15000 });
    await waitFor('offline edit restored from this device', async () => (await editorText(a.page)).includes('Written offline.'));
    assert((await saveState(a.page)) === 'offline', 'status after offline reload');
    assert(!(await editorText(b.page)).includes('Written offline.'), 'B saw an edit made offline');

    await a.context.setOffline(false);
    await waitSaved(a.page, 30000);
    await waitFor('B receives the offline edit', async () => (await editorText(b.page)).includes('Written offline.'));
    await waitSaved(b.page);
    const [xa, xb] = [await docXml(a.page), await docXml(b.page)];
    assert(xa === xb, `documents differ:\nA ${xa}\nB ${xb}`);
    result({ doc: id, xml: xa });
  },

  /** The list: create, search, rename, trash and restore; the language switch sticks. */
  async documents(browser) {
    // No language chosen: English from the browser's locale, until the switch says otherwise.
    const a = await person(browser);
    const p = a.page;
    const first = await createDoc(p, base, 'Annual report');
    const second = await createDoc(p, base, 'Parking rules');
    await p.goto(`${base}/`);
    const row = (id) => p.locator(`.doc-row[data-doc-id="${id}"]`);
    await row(first).waitFor();
    await row(second).waitFor();

    await p.getByLabel('Search titles').fill('parking');
    await waitFor('search filters', async () => (await row(first).count()) === 0 && (await row(second).count()) === 1);
    await p.getByLabel('Search titles').fill('');
    await row(first).waitFor();

    await row(first).getByRole('button', { name: 'Actions for Annual report' }).click();
    await p.getByRole('menuitem', { name: 'Rename' }).click();
    const input = p.locator('dialog[open] input');
    await input.fill('Annual report 2026');
    await input.press('Enter');
    await waitFor('renamed', async () => (await row(first).innerText()).includes('Annual report 2026'));

    await row(second).getByRole('button', { name: 'Actions for Parking rules' }).click();
    await p.getByRole('menuitem', { name: 'Move to trash' }).click();
    await waitFor('gone from the list', async () => (await row(second).count()) === 0);
    await p.getByRole('link', { name: 'Trash' }).click();
    await row(second).waitFor();
    await shot(p, 'trash');
    await row(second).getByRole('button', { name: 'Restore' }).click();
    await waitFor('restored out of the trash', async () => (await row(second).count()) === 0);
    await p.getByRole('link', { name: 'Recent' }).click();
    await row(second).waitFor();

    await p.getByRole('button', { name: 'Switch to Korean' }).first().click();
    await waitFor('Korean', async () => (await p.locator('h1').innerText()) === '문서');
    assert((await p.locator('html').getAttribute('lang')) === 'ko', 'lang attribute after switching');
    await p.reload();
    await waitFor('still Korean after reload', async () => (await p.locator('h1').innerText()) === '문서');
    result({ docs: [first, second] });
  },

  /** Screenshots for people to look at: list, editor with two cursors, sharing, Korean, narrow. */
  async tour(browser) {
    const a = await person(browser, { lang: 'en' });
    const titles = ['Budget 2027 — draft', 'Team meeting notes', 'Procurement checklist', 'Citizen service survey'];
    const ids = [];
    for (const t of titles) ids.push(await createDoc(a.page, base, t));
    const id = ids[1];
    await a.page.goto(`${base}/d/${id}`);
    await a.page.locator('.ProseMirror').click();
    const k = a.page.keyboard;
    await k.type('# Team meeting notes\n', { delay: 2 });
    await k.type('Agenda for Thursday and decisions from last week.\n', { delay: 2 });
    await k.type('## Decisions\n', { delay: 2 });
    await k.type('- Move the budget review to **Friday**\nPublish the survey results on the intranet\n\n', { delay: 2 });
    await k.type('## Action items\n', { delay: 2 });
    await k.type('[ ] Send the draft to the finance team\nBook the large meeting room\n\n', { delay: 2 });
    await k.type('> Keep every decision in this document so that everyone can find it.\n', { delay: 2 });
    await waitSaved(a.page);

    const b = await person(browser, { lang: 'en' });
    await b.page.goto(`${base}/d/${id}`);
    await waitFor('B synced', async () => (await editorText(b.page)).includes('Action items'));
    await b.page.getByText('Publish the survey results').click();
    await b.page.keyboard.press('End');
    await b.page.keyboard.down('Shift');
    for (let i = 0; i < 8; i++) await b.page.keyboard.press('ArrowLeft');
    await b.page.keyboard.up('Shift');
    await a.page.getByText('Agenda for Thursday').click();
    await waitFor('carets', () => a.page.locator('.collaboration-carets__label').count());
    await waitSaved(a.page);
    await shot(a.page, 'editor-two-cursors');

    await a.page.getByTestId('share').click();
    await a.page.locator('dialog[open]').waitFor();
    await a.page.waitForTimeout(400); // let the opening animation finish
    // Local mode has no people, groups or organisation: the dialog offers the link only.
    await a.page.getByTestId('share-local-note').waitFor();
    for (const absent of ['.share-org', '.share-list', 'dialog[open] input']) {
      assert((await a.page.locator(absent).count()) === 0, `local-mode share dialog shows ${absent}`);
    }
    await shot(a.page, 'sharing-dialog');
    await a.page.keyboard.press('Escape');

    await a.page.goto(`${base}/`);
    await a.page.locator('.doc-row[data-doc-id]').first().waitFor();
    await shot(a.page, 'document-list');

    const ko = await person(browser, { locale: 'ko-KR', lang: 'ko' });
    await ko.page.goto(`${base}/`);
    await ko.page.locator('.doc-row[data-doc-id]').first().waitFor();
    assert((await ko.page.locator('html').getAttribute('lang')) === 'ko', 'lang attribute');
    await shot(ko.page, 'document-list-ko');
    await ko.page.goto(`${base}/d/${id}`);
    await waitSaved(ko.page);
    // The local user is named in Korean too (the server's "Local user" is English).
    const koHtml = await ko.page.content();
    assert(!koHtml.includes('Local user'), 'English "Local user" in the Korean UI');
    assert(koHtml.includes('로컬 사용자'), 'the local user is named in Korean');
    await shot(ko.page, 'editor-ko');

    const narrow = await person(browser, { width: 390, height: 780 });
    await narrow.page.goto(`${base}/`);
    await narrow.page.locator('.doc-row[data-doc-id]').first().waitFor();
    await shot(narrow.page, 'narrow-list');
    await narrow.page.goto(`${base}/d/${id}`);
    await waitSaved(narrow.page);
    await shot(narrow.page, 'narrow-editor');

    // The sign-in page, as a signed-out person sees it in OIDC mode (answers stubbed here:
    // the sign-in flow itself is tested with the test identity provider).
    const out = await person(browser, { lang: 'ko', locale: 'ko-KR' });
    await out.context.route('**/api/config', (r) => r.fulfill({ json: { mode: 'oidc', login: '/auth/login' } }));
    await out.context.route('**/api/me', (r) => r.fulfill({ status: 401, json: { error: 'unauthenticated', login: '/auth/login' } }));
    await out.page.goto(`${base}/d/${id}`);
    const signIn = out.page.getByTestId('sign-in');
    await signIn.waitFor();
    const href = await signIn.getAttribute('href');
    assert(href === `/auth/login?return_to=${encodeURIComponent(`/d/${id}`)}`, `sign-in link ${href}`);
    await shot(out.page, 'sign-in-ko');
    result({ docs: ids });
  },
};

await main(SCENARIOS, name, artifactDir);
