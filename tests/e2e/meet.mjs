// Meeting scenarios: two people in one meeting through the app's meeting page, with Chromium's
// fake camera and microphone. node meet.mjs SCENARIO BASE_URL ARTIFACTS_DIR
// tests/tests/web_meet.rs starts dure (local mode: every socket is the local user, who hosts
// every meeting, so joins go straight in) and calls them.
import { artifacts, assert, createDoc, log, main, person, result, waitFor } from './lib.mjs';

const [, , name, base, artifactDir = 'target/e2e-artifacts'] = process.argv;
const shot = artifacts(artifactDir);

/** Media needs more time than text on a loaded two-core machine. */
const MEDIA_MS = 30000;
const UI_MS = 15000;

const MEDIA_FLAGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--auto-select-desktop-capture-source=Entire screen',
  // Real host addresses in candidates (mDNS names would need multicast resolution here).
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

async function attendee(browser) {
  const who = await person(browser, { lang: 'en' });
  await who.context.grantPermissions(['camera', 'microphone']);
  return who;
}

/** Joins from the pre-join screen; returns this page's participant id. */
async function join(page) {
  await page.getByTestId('prejoin').waitFor();
  // The preview shows the (fake) camera before joining.
  await waitFor('camera preview', () => page.getByTestId('preview').evaluate((v) => v.videoWidth > 0), UI_MS);
  await page.getByTestId('join').click();
  await page.getByTestId('meet-room').waitFor({ timeout: UI_MS });
  return page.getByTestId('meet-room').getAttribute('data-participant');
}

/** The frames this page decoded from `from`'s video (0 without a connection). */
const framesFrom = (page, from) => page.evaluate(async (id) => (await window.__dureMeet.framesDecoded())[id] ?? 0, from);

/** The tile of `id` on `page` (its roster state is in data-audio / data-video). */
const tile = (page, id) => page.locator(`.tile[data-participant="${id}"]`);

async function openChat(page) {
  await page.getByTestId('toggle-chat').click();
  await page.getByTestId('chat-input').waitFor();
}

async function say(page, text) {
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-input').press('Enter');
}

const chatTexts = (page) => page.getByTestId('chat-msg').allInnerTexts();

const SCENARIOS = {
  /** Two people meet: video both ways, chat both ways, mute shown to the other, leave. */
  async pair(browser) {
    const a = await attendee(browser);
    const b = await attendee(browser);

    // A starts a meeting from the document list.
    await a.page.goto(base + '/');
    await a.page.getByTestId('new-meeting').click();
    await a.page.waitForURL(/\/m\/[a-z0-9-]+$/);
    const slug = new URL(a.page.url()).pathname.split('/').pop();
    log(`meeting ${slug}`);
    await b.page.goto(`${base}/m/${slug}`);

    const ida = await join(a.page);
    const idb = await join(b.page);
    assert(ida && idb && ida !== idb, `participant ids ${ida} ${idb}`);

    // Each decodes the other's video.
    await waitFor('A decodes B', async () => (await framesFrom(a.page, idb)) > 0, MEDIA_MS);
    await waitFor('B decodes A', async () => (await framesFrom(b.page, ida)) > 0, MEDIA_MS);
    for (const [who, p, other] of [['A', a.page, idb], ['B', b.page, ida]]) {
      await tile(p, other).waitFor({ timeout: UI_MS });
      const playing = await waitFor(`${who} plays the other's video`, () =>
        tile(p, other).locator('video').evaluate((v) => v.videoWidth > 0 && !v.paused), MEDIA_MS);
      assert(playing, `${who}: remote video not playing`);
    }
    // Still flowing, not one frame and stuck.
    const before = await framesFrom(a.page, idb);
    await waitFor('A keeps decoding B', async () => (await framesFrom(a.page, idb)) > before + 10, MEDIA_MS);
    await shot(a.page, 'meet-two-people');

    // Chat both ways (each message once, also on the sender's page).
    await openChat(a.page);
    await openChat(b.page);
    await say(a.page, 'Hello from A');
    await waitFor('B sees A\'s message', async () => (await chatTexts(b.page)).some((t) => t.includes('Hello from A')), UI_MS);
    await say(b.page, 'Hello from B');
    await waitFor('A sees B\'s message', async () => (await chatTexts(a.page)).some((t) => t.includes('Hello from B')), UI_MS);
    await waitFor('A has both messages', async () => (await chatTexts(a.page)).length === 2, UI_MS);
    const onA = await chatTexts(a.page);
    const onB = await chatTexts(b.page);
    assert(onA.length === 2 && onB.length === 2, `messages A ${JSON.stringify(onA)} B ${JSON.stringify(onB)}`);
    assert(onA[0].includes('Hello from A') && onA[1].includes('Hello from B'), `order on A ${JSON.stringify(onA)}`);

    // A mutes: B's roster and tile say so; A unmutes: back on.
    assert((await tile(b.page, ida).getAttribute('data-audio')) === 'true', 'A starts unmuted on B');
    await a.page.getByTestId('mic').click();
    await waitFor('B sees A muted', async () => (await tile(b.page, ida).getAttribute('data-audio')) === 'false', UI_MS);
    await b.page.getByTestId('toggle-people').click();
    await waitFor('B\'s people panel shows A muted', async () =>
      (await b.page.locator(`.people-list .person[data-participant="${ida}"]`).getAttribute('data-audio')) === 'false', UI_MS);
    await tile(b.page, ida).getByTestId('muted-icon').waitFor({ timeout: UI_MS });
    await shot(b.page, 'meet-other-muted');
    await a.page.getByTestId('mic').click();
    await waitFor('B sees A unmuted', async () => (await tile(b.page, ida).getAttribute('data-audio')) === 'true', UI_MS);

    // A's camera off and on again: B sees the state, and A's video flows again afterwards
    // (a new camera track on the same sender, no renegotiation).
    await a.page.getByTestId('cam').click();
    await waitFor('B sees A\'s camera off', async () => (await tile(b.page, ida).getAttribute('data-video')) === 'false', UI_MS);
    await a.page.getByTestId('cam').click();
    await waitFor('B sees A\'s camera on', async () => (await tile(b.page, ida).getAttribute('data-video')) === 'true', UI_MS);
    const resumed = await framesFrom(b.page, ida);
    await waitFor('B decodes A again', async () => (await framesFrom(b.page, ida)) > resumed + 10, MEDIA_MS);

    // A shares the screen (it replaces the camera on the same sender), then stops.
    await a.page.getByTestId('screen').click();
    await waitFor('B sees A sharing', async () => (await tile(b.page, ida).getAttribute('data-screen')) === 'true', UI_MS);
    const sharing = await framesFrom(b.page, ida);
    await waitFor('B decodes A\'s screen', async () => (await framesFrom(b.page, ida)) > sharing + 5, MEDIA_MS);
    await shot(b.page, 'meet-screen-share');
    await a.page.getByTestId('screen').click();
    await waitFor('B sees A stop sharing', async () => (await tile(b.page, ida).getAttribute('data-screen')) === 'false', UI_MS);

    // B leaves: A's grid loses B's tile and the connection; B sees that it left.
    assert((await a.page.getByTestId('tile-remote').count()) === 1, 'A shows one remote tile');
    await b.page.getByTestId('leave').click();
    await b.page.getByTestId('meet-over').waitFor({ timeout: UI_MS });
    await waitFor('A no longer shows B', async () => (await a.page.getByTestId('tile-remote').count()) === 0, UI_MS);
    await waitFor('A closed the connection to B', async () =>
      (await a.page.evaluate(() => window.__dureMeet.peers().length)) === 0, UI_MS);

    // From a document: "Meet" starts a meeting linked to it.
    const doc = await createDoc(a.page, base, 'Meeting notes');
    await a.page.getByTestId('meet').click();
    await a.page.waitForURL(/\/m\/[a-z0-9-]+$/);
    const docSlug = new URL(a.page.url()).pathname.split('/').pop();
    await a.page.getByTestId('prejoin').waitFor();
    await waitFor('camera preview', () => a.page.getByTestId('preview').evaluate((v) => v.videoWidth > 0), UI_MS);
    await shot(a.page, 'meet-prejoin');
    assert(docSlug !== slug, 'a new meeting');
    result({ slug, doc, doc_slug: docSlug, a: ida, b: idb });
  },

  /**
   * A guest with an invite link (in local mode a socket with an invite is a guest): the host
   * copies the link, the guest names themself and waits in the lobby, the host admits them,
   * then removes them.
   */
  async lobby(browser) {
    const host = await attendee(browser);
    await host.context.grantPermissions(['camera', 'microphone', 'clipboard-read', 'clipboard-write'], { origin: base });
    const guest = await attendee(browser);
    await host.page.goto(base + '/');
    await host.page.getByTestId('new-meeting').click();
    await host.page.waitForURL(/\/m\/[a-z0-9-]+$/);
    const slug = new URL(host.page.url()).pathname.split('/').pop();
    const hostId = await join(host.page);

    await host.page.getByTestId('host-menu').click();
    await host.page.getByRole('menuitem', { name: 'Copy invite link' }).click();
    await host.page.getByText('Invite link copied').waitFor({ timeout: UI_MS });
    const link = await host.page.evaluate(() => navigator.clipboard.readText());
    assert(link.includes(`/m/${slug}#invite=`), `invite link ${link}`);
    const secret = link.split('#invite=')[1];

    // The guest opens it: the secret leaves the address bar at once; a name is needed.
    const u = new URL(link);
    await guest.page.goto(base + u.pathname + u.hash);
    await guest.page.getByTestId('prejoin').waitFor();
    assert(!guest.page.url().includes(secret) && !guest.page.url().includes('#'), `address still has the secret: ${guest.page.url()}`);
    await guest.page.getByTestId('guest-name').waitFor({ timeout: UI_MS });
    await guest.page.getByTestId('guest-name').fill('');
    await guest.page.getByTestId('join').click();
    await guest.page.getByText('Enter your name to join.').waitFor({ timeout: UI_MS });
    await guest.page.getByTestId('guest-name').fill('Gina Guest');
    await guest.page.getByTestId('join').click();
    await guest.page.getByTestId('lobby-wait').waitFor({ timeout: UI_MS });

    // The host sees them waiting and lets them in.
    await host.page.getByTestId('toggle-people').click();
    await host.page.getByTestId('waiting').filter({ hasText: 'Gina Guest' }).waitFor({ timeout: UI_MS });
    assert((await guest.page.getByTestId('meet-room').count()) === 0, 'guest in the room before admission');
    await host.page.getByRole('button', { name: 'Admit Gina Guest' }).click();
    await guest.page.getByTestId('meet-room').waitFor({ timeout: UI_MS });
    const guestId = await guest.page.getByTestId('meet-room').getAttribute('data-participant');
    await waitFor('host decodes the guest', async () => (await framesFrom(host.page, guestId)) > 0, MEDIA_MS);
    await waitFor('guest decodes the host', async () => (await framesFrom(guest.page, hostId)) > 0, MEDIA_MS);
    await host.page.locator('.people-list .person').filter({ hasText: 'Gina Guest' }).waitFor({ timeout: UI_MS });
    await waitFor('the lobby is empty', async () => (await host.page.getByTestId('waiting').count()) === 0, UI_MS);
    await shot(host.page, 'meet-host-with-guest');

    // The host removes the guest: the guest is told, the host's grid loses the tile.
    await host.page.locator('.people-list .person').filter({ hasText: 'Gina Guest' }).getByTestId('person-actions').click();
    await host.page.getByRole('menuitem', { name: 'Remove Gina Guest' }).click();
    await guest.page.getByTestId('meet-over').filter({ hasText: 'You were removed' }).waitFor({ timeout: UI_MS });
    await waitFor('host no longer shows the guest', async () => (await host.page.getByTestId('tile-remote').count()) === 0, UI_MS);
    result({ slug, host: hostId, guest: guestId });
  },
};

await main(SCENARIOS, name, artifactDir, MEDIA_FLAGS);
