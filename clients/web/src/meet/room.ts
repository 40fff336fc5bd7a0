// The meeting once joined: the video grid, the control bar (microphone, camera, screen, chat,
// people, host tools, leave), the chat and people panels, and the mesh of peer connections.

import { ApiError, api } from '../api';
import { h, icon, replace } from '../dom';
import { meetErrorText, t } from '../i18n';
import { promptText } from '../ui/dialog';
import { I } from '../ui/icons';
import { menuButton, type MenuItem } from '../ui/menu';
import { toast } from '../ui/toast';
import { Chat } from './chat';
import { MI } from './icons';
import type { LocalMedia } from './media';
import { Mesh, type SignalKind } from './mesh';
import { isHost, shownName, type ChatMessage, type Participant, type Waiting } from './participant';
import { People } from './people';
import { setToggle } from './prejoin';
import type { RtSocket } from '../rt/socket';
import { Grid } from './tiles';

export interface Joined {
  slug: string;
  title: string;
  locked: boolean;
  /** The meeting's conversation (messaging on), from the join answer. */
  conversation: string | null;
  /** `user_id`: our account, null for a guest. */
  me: { id: string; name: string; role: string; guest: boolean; user_id: string | null };
}

type Panel = 'chat' | 'people' | null;

export class Room {
  readonly el: HTMLElement;
  readonly mesh: Mesh;
  private grid = new Grid();
  private chat: Chat;
  private people: People;
  private roster: Participant[] = [];
  private waiting: Waiting[] = [];
  private panel: Panel = null;
  private unread = false;
  private locked: boolean;
  private controls = h('div', { class: 'meet-controls', role: 'toolbar' });
  private side = h('aside', { class: 'meet-side', hidden: true });

  constructor(
    private readonly rt: RtSocket,
    private readonly media: LocalMedia,
    private readonly info: Joined,
    private readonly onLeave: () => void,
  ) {
    this.locked = info.locked;
    this.mesh = new Mesh(info.me.id, media, (to, kind, payload) => rt.send('meet.signal', { to, kind, payload }));
    this.mesh.onChange = () => this.renderGrid();
    this.chat = new Chat(
      (text, client_ref) => rt.send('meet.chat.send', { text, client_ref }),
      () => ({ participant: this.info.me.id, user_id: this.info.me.user_id }),
    );
    // Guests are no members of the conversation: the Messages page is not theirs.
    this.chat.showConversation(info.me.guest || !info.me.user_id ? null : info.conversation);
    this.chat.onUnread = () => {
      if (this.panel !== 'chat') {
        this.unread = true;
        this.renderControls();
      }
    };
    this.people = new People({
      admit: (participant) => this.host('meet.admit', { participant }),
      deny: (participant) => this.host('meet.deny', { participant }),
      admitAll: () => this.host('meet.admit_all', {}),
      remove: (participant) => this.host('meet.remove', { participant, reason: null }),
      askMute: (participant) => this.host('meet.mute_request', { participant, kind: 'audio' }),
      setRole: (participant, role) => this.host('meet.role', { participant, role }),
    });
    media.changed = () => {
      this.mesh.tracksChanged();
      this.sendMedia();
      this.renderGrid();
      this.renderControls();
    };
    this.el = h('div', { class: 'meet-room', 'data-testid': 'meet-room', 'data-participant': info.me.id }, h('div', { class: 'meet-stage' }, this.grid.el, this.side), this.controls);
    this.renderControls();
    this.sendMedia();
  }

  // ----- server events -----

  onEvent(type: string, d: any): void {
    switch (type) {
      case 'meet.roster': {
        this.roster = (d.participants as Participant[]) ?? [];
        const mine = this.roster.find((p) => p.id === this.info.me.id);
        if (mine && mine.role !== this.info.me.role) {
          this.info.me.role = mine.role;
          this.renderControls();
        }
        this.mesh.roster(this.roster.map((p) => p.id));
        this.renderPeople();
        break;
      }
      case 'meet.lobby': {
        const before = new Set(this.waiting.map((w) => w.id));
        this.waiting = (d.waiting as Waiting[]) ?? [];
        for (const w of this.waiting) if (!before.has(w.id)) toast(t('meetSomeoneWaiting', { name: w.name }), { label: t('meetAdmit'), run: () => this.host('meet.admit', { participant: w.id }) }, 10000);
        this.renderPeople();
        this.renderControls();
        break;
      }
      case 'meet.turn':
        this.mesh.setIceServers((d.ice_servers as RTCIceServer[]) ?? []);
        break;
      case 'meet.signal':
        this.mesh.signal(String(d.from), d.kind as SignalKind, d.payload);
        break;
      case 'meet.chat':
        this.chat.event(d as ChatMessage);
        break;
      case 'meet.chat.backlog':
        this.chat.backlog((d.messages as ChatMessage[]) ?? []);
        break;
      case 'meet.locked':
        this.locked = !!d.locked;
        toast(t(this.locked ? 'meetLocked' : 'meetUnlocked'));
        this.renderControls();
        break;
      case 'meet.role':
        if (d.participant === this.info.me.id) {
          this.info.me.role = String(d.role);
          this.renderControls();
          this.renderPeople();
        }
        break;
      case 'meet.mute_request': {
        const sender = this.roster.find((p) => p.id === d.by);
        const by = sender ? shownName(sender) : String(d.by ?? '');
        if (d.kind === 'video') toast(t('meetMuteRequestVideo', { by }), { label: t('meetCameraOffNow'), run: () => void this.media.setCam(false) }, 15000);
        else toast(t('meetMuteRequestAudio', { by }), { label: t('meetMuteNow'), run: () => this.media.setMic(false) }, 15000);
        break;
      }
      default:
        // Not the meeting's: a signed-in participant's socket also carries msg.*, conv.*, presence.
        break;
    }
  }

  relabel(): void {
    this.renderControls();
    this.renderPeople();
    this.renderGrid();
  }

  destroy(): void {
    this.media.changed = () => {};
    this.mesh.close();
    this.grid.clear();
  }

  // ----- actions -----

  private sendMedia(): void {
    const m = this.media;
    void this.rt
      .send('meet.media', { audio: !!m.audio && m.micOn, video: !!m.camera && m.camOn, screen: !!m.screen })
      .catch(() => {});
  }

  private host(type: string, data: object): void {
    this.rt.send(type, data).catch((e: { code?: string; message?: string }) =>
      toast(t('meetActionFailed', { message: meetErrorText(e.code ?? '', e.message ?? '') })),
    );
  }

  private async invite(): Promise<void> {
    let link: string;
    try {
      link = (await api.createInvite(this.info.slug)).link;
    } catch (err) {
      // Invites need guest access; a host asking for one means to allow it.
      if (!(err instanceof ApiError && err.code === 'conflict')) return void toast(t('meetInviteFailed', { message: (err as Error).message }));
      try {
        await api.updateMeeting(this.info.slug, { access: 'guests' });
        link = (await api.createInvite(this.info.slug)).link;
      } catch (again) {
        return void toast(t('meetInviteFailed', { message: (again as Error).message }));
      }
    }
    try {
      await navigator.clipboard.writeText(link);
      toast(t('meetInviteCopied'));
    } catch {
      await promptText(t('meetInvite'), t('meetInviteShow'), link, t('close'));
    }
  }

  private togglePanel(p: Panel): void {
    this.panel = this.panel === p ? null : p;
    if (this.panel === 'chat') this.unread = false;
    this.side.hidden = this.panel === null;
    replace(this.side, this.panel === 'chat' ? this.chat.el : this.panel === 'people' ? this.people.el : null);
    this.renderControls();
    if (this.panel === 'chat') this.chat.el.querySelector('textarea')?.focus();
  }

  // ----- rendering -----

  private renderGrid(): void {
    const streams = new Map<string, MediaStream>([[this.info.me.id, this.media.stream]]);
    for (const [id, p] of this.mesh.peers) streams.set(id, p.stream);
    const shown = this.roster;
    const me = shown.find((p) => p.id === this.info.me.id);
    this.grid.update(me ? [me, ...shown.filter((p) => p !== me)] : shown, this.info.me.id, streams);
  }

  private renderPeople(): void {
    this.people.render(this.roster, this.waiting, this.info.me.id, this.info.me.role);
    this.renderGrid();
  }

  private renderControls(): void {
    const m = this.media;
    const mic = h('button', { class: 'round-btn', type: 'button', 'data-testid': 'mic', disabled: !m.audio, onclick: () => m.setMic(!m.micOn) });
    setToggle(mic, m.micOn && !!m.audio, MI.mic, MI.micOff, t('meetMicOn'), t('meetMicOff'));
    const cam = h('button', { class: 'round-btn', type: 'button', 'data-testid': 'cam', onclick: () => void m.setCam(!m.camOn) });
    setToggle(cam, m.camOn && !!m.camera, MI.cam, MI.camOff, t('meetCamOn'), t('meetCamOff'));
    const sharing = !!m.screen;
    const screen = h(
      'button',
      {
        class: 'round-btn' + (sharing ? ' active' : ''),
        type: 'button',
        'data-testid': 'screen',
        'aria-label': sharing ? t('meetStopShare') : t('meetShareScreen'),
        title: sharing ? t('meetStopShare') : t('meetShareScreen'),
        hidden: !navigator.mediaDevices?.getDisplayMedia,
        onclick: () => {
          if (sharing) m.stopScreen();
          else void m.shareScreen().then((ok) => ok || toast(t('meetShareFailed')));
        },
      },
      icon(MI.screen, 20),
    );
    const host = isHost(this.info.me.role);
    const chatBtn = h(
      'button',
      { class: 'round-btn' + (this.panel === 'chat' ? ' active' : '') + (this.unread ? ' unread' : ''), type: 'button', 'aria-label': t('meetChat'), title: t('meetChat'), 'aria-expanded': String(this.panel === 'chat'), 'data-testid': 'toggle-chat', onclick: () => this.togglePanel('chat') },
      icon(MI.chat, 20),
    );
    const peopleLabel = t('meetPeople', { n: this.roster.length });
    const peopleBtn = h(
      'button',
      { class: 'round-btn' + (this.panel === 'people' ? ' active' : '') + (host && this.waiting.length ? ' unread' : ''), type: 'button', 'aria-label': peopleLabel, title: peopleLabel, 'aria-expanded': String(this.panel === 'people'), 'data-testid': 'toggle-people', onclick: () => this.togglePanel('people') },
      icon(MI.people, 20),
    );
    const hostItems = (): MenuItem[] => [
      { label: t('meetInvite'), icon: icon(MI.link, 16), run: () => void this.invite() },
      { label: this.locked ? t('meetUnlock') : t('meetLock'), icon: icon(I.lock, 16), run: () => this.host('meet.lock', { locked: !this.locked }) },
      {
        label: t('meetEnd'),
        icon: icon(I.close, 16),
        danger: true,
        run: () => {
          if (confirm(t('meetEndConfirm'))) this.host('meet.end', {});
        },
      },
    ];
    const hostMenu = host ? menuButton(h('button', { class: 'round-btn', type: 'button', 'aria-label': t('more'), title: t('more'), 'data-testid': 'host-menu' }, icon(I.more, 20)), hostItems, 'left') : null;
    const leave = h(
      'button',
      { class: 'btn btn-danger leave-btn', type: 'button', 'aria-label': t('meetLeave'), 'data-testid': 'leave', onclick: () => this.onLeave() },
      icon(MI.leave, 18),
      h('span', {}, t('meetLeave')),
    );
    this.controls.setAttribute('aria-label', t('meetControls'));
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.['testid'];
    replace(this.controls, h('div', { class: 'controls-group' }, mic, cam, screen), h('div', { class: 'controls-group' }, chatBtn, peopleBtn, hostMenu), leave);
    // Re-rendering must not lose the keyboard focus.
    if (focused) (this.controls.querySelector(`[data-testid="${focused}"]`) as HTMLElement | null)?.focus();
  }
}
