// The meeting page, `/m/{slug}` (docs/realtime.md): device check → join → lobby (if the server
// says so) → the room; and the end states (denied, removed, ended, left). The invite secret
// comes in the URL fragment (#invite=…), is taken out of the address bar at once and is only
// ever sent in meet.join.

import { h } from '../dom';
import { meetErrorText, t } from '../i18n';
import { LocalMedia } from '../meet/media';
import { preJoin, type PreJoin } from '../meet/prejoin';
import { Room, type Joined } from '../meet/room';
import { RtSocket, type Hello } from '../rt/socket';
import { brand, langSwitch } from '../ui/chrome';
import type { Page } from './page';

type State = 'prejoin' | 'joining' | 'lobby' | 'joined' | 'over';

/** Takes `#invite=SECRET` out of the address (so it is not bookmarked, shared or logged). */
function takeInvite(): string | null {
  const m = /(?:^#|&)invite=([^&]+)/.exec(location.hash);
  if (!m?.[1]) return null;
  history.replaceState(history.state, '', location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

export function meetPage(slug: string): Page {
  const invite = takeInvite();
  const media = new LocalMedia();
  const main = h('main', { id: 'main', class: 'meet-main', tabindex: -1 });
  const banner = h('div', { class: 'notice notice-info meet-banner', role: 'status', hidden: true });
  const titleEl = h('span', { class: 'meet-title' }, t('meetTitle'));
  const el = h(
    'div',
    { class: 'app meet-page' },
    h('header', { class: 'topbar' }, brand(), titleEl, h('div', { class: 'spacer' }), langSwitch()),
    banner,
    main,
  );
  let state: State = 'prejoin';
  let name: string | null = null;
  let room: Room | null = null;
  /** Events that came before the room existed (the join reply and the first roster race). */
  let early: [string, unknown][] = [];

  const show = (...children: HTMLElement[]): void => {
    main.replaceChildren(...children);
  };
  const over = (text: string, rejoin: boolean): void => {
    if (state === 'over') return;
    state = 'over';
    room?.destroy();
    room = null;
    media.stop();
    rt.close();
    show(
      h(
        'div',
        { class: 'card center-card meet-over', 'data-testid': 'meet-over' },
        h('p', {}, text),
        rejoin ? h('button', { class: 'btn btn-primary', type: 'button', onclick: () => location.reload() }, t('meetRejoin')) : null,
        h('a', { class: 'btn', href: '/', 'data-link': true }, t('goToDocuments')),
      ),
    );
  };

  const leave = (): void => {
    // Closing right after the request could drop it; the server also lets go of a closed
    // socket's seat when the resume window passes, but leaving should show at once.
    void rt
      .send('meet.leave', {})
      .catch(() => {})
      .finally(() => over(t('meetLeft'), true));
  };

  const enterRoom = (info: Omit<Joined, 'me'>, me: Joined['me']): void => {
    state = 'joined';
    pre.destroy();
    room?.destroy();
    room = new Room(rt, media, { ...info, me }, leave);
    exposeForTests(room, me.id);
    show(room.el);
    const queued = early;
    early = [];
    for (const [type, data] of queued) room.onEvent(type, data);
  };

  let meeting: Omit<Joined, 'me'> = { slug, title: '', locked: false, conversation: null };
  let me: Joined['me'] | null = null;
  /** Who the socket says we are (hello): our account's id, unless we are a guest. */
  let you: Hello['you'] | null = null;

  const join = async (): Promise<void> => {
    state = 'joining';
    pre.status(t('meetJoining'), true);
    try {
      const r = await rt.send('meet.join', { slug, invite, name });
      meeting = {
        slug,
        title: String(r.meeting?.title ?? ''),
        locked: !!r.meeting?.locked,
        conversation: typeof r.conversation === 'string' ? r.conversation : null,
      };
      me = r.participant ? { ...r.participant, user_id: r.participant.guest ? null : (r.participant.user_id ?? you?.user_id ?? null) } : null;
      titleEl.textContent = meeting.title || t('meetTitle');
      document.title = `${meeting.title || t('meetTitle')} — ${t('appName')}`;
      if (r.state === 'lobby') {
        state = 'lobby';
        show(
          h(
            'div',
            { class: 'card center-card meet-lobby', 'data-testid': 'lobby-wait', role: 'status' },
            h('h1', {}, t('meetLobbyTitle')),
            h('p', { class: 'muted' }, t('meetLobbyLead')),
            h('button', { class: 'btn', type: 'button', 'data-testid': 'leave-lobby', onclick: leave }, t('meetLeave')),
          ),
        );
      } else if (me) {
        enterRoom(meeting, me);
      }
    } catch (err) {
      const e = err as { code?: string; message?: string };
      if (e.code === 'ended' || e.code === 'removed' || e.code === 'denied') return over(meetErrorText(e.code, e.message ?? ''), false);
      state = 'prejoin';
      pre.status(meetErrorText(e.code ?? '', e.message ?? ''), false);
    }
  };

  const onEvent = (type: string, data: any): void => {
    // A signed-in participant's socket also carries messaging (msg.*, conv.*, presence): the
    // meeting's chat comes as meet.chat, and nothing else is for this page.
    if (!type.startsWith('meet.')) return;
    if (type === 'meet.admitted') {
      if (me) enterRoom(meeting, me);
      return;
    }
    if (type === 'meet.denied') return over(t('meetDenied'), false);
    if (type === 'meet.removed') return over(data.reason ? `${t('meetRemoved')} (${String(data.reason)})` : t('meetRemoved'), false);
    if (type === 'meet.ended') return over(t('meetEnded'), false);
    if (room) room.onEvent(type, data);
    else if (state === 'joining' || state === 'lobby') early.push([type, data]);
  };

  const rt = new RtSocket({
    event: onEvent,
    ready(hello: Hello) {
      banner.hidden = true;
      you = hello.you;
      // An invite makes a guest (in local mode too): a guest needs a name.
      if (state === 'prejoin') pre.setGuest(hello.you.guest || invite !== null, hello.you.name);
      // A fresh session after a long drop: the server let us go; join again with what we had.
      if (!hello.resumed && (state === 'joined' || state === 'lobby')) {
        room?.destroy();
        room = null;
        void join();
      }
    },
    closed(code) {
      if (state === 'over') return;
      over(code === 1000 ? t('meetEnded') : code === 4403 ? t('meetRemoved') : t('meetClosed'), code !== 4403);
    },
    state(s) {
      if (s === 'reconnecting' && state !== 'prejoin') {
        banner.textContent = t('meetReconnecting');
        banner.hidden = false;
      }
    },
  });

  const pre: PreJoin = preJoin('', media, (n) => {
    name = n;
    void join();
  });
  show(pre.el);
  rt.connect();
  document.title = `${t('meetTitle')} — ${t('appName')}`;

  return {
    el,
    relabel() {
      // Rebuilding would drop the call: relabel what can be relabelled in place.
      room?.relabel();
    },
    destroy() {
      if (state === 'joined' || state === 'lobby') void rt.send('meet.leave', {}).catch(() => {});
      room?.destroy();
      pre.destroy();
      media.stop();
      rt.close();
    },
  };
}

/**
 * Browser tests read the peer connections through `window.__dureMeet`, only when
 * `localStorage['dure:debug']` is '1' (never set by the app itself).
 */
function exposeForTests(room: Room, myId: string): void {
  if (localStorage.getItem('dure:debug') !== '1') return;
  (window as unknown as { __dureMeet: unknown }).__dureMeet = {
    me: () => myId,
    peers: () => [...room.mesh.peers.keys()],
    /** Frames decoded from each peer's video, by participant id. */
    async framesDecoded(): Promise<Record<string, number>> {
      const out: Record<string, number> = {};
      for (const [id, p] of room.mesh.peers) {
        let n = 0;
        (await p.pc.getStats()).forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') n = Math.max(n, s.framesDecoded ?? 0);
        });
        out[id] = n;
      }
      return out;
    },
  };
}
