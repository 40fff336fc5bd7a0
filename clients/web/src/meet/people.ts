// The participants panel: everyone in the roster with their audio/video state; for hosts and
// co-hosts, the lobby (admit, deny, admit all) and per-person controls.

import { h, icon, replace } from '../dom';
import { t } from '../i18n';
import { avatar, colorFor } from '../ui/avatar';
import { I } from '../ui/icons';
import { menuButton, type MenuItem } from '../ui/menu';
import { MI } from './icons';
import { isHost, shownName, type Participant, type Waiting } from './participant';

export interface HostActions {
  admit(id: string): void;
  deny(id: string): void;
  admitAll(): void;
  remove(id: string): void;
  askMute(id: string): void;
  setRole(id: string, role: 'cohost' | 'participant'): void;
}

export class People {
  readonly el = h('section', { class: 'meet-panel people-panel', 'data-testid': 'people' });

  constructor(private readonly actions: HostActions) {}

  render(people: Participant[], waiting: Waiting[], myId: string, myRole: string): void {
    const host = isHost(myRole);
    const lobby =
      host && waiting.length
        ? h(
            'div',
            { class: 'lobby-list', 'data-testid': 'lobby' },
            h(
              'div',
              { class: 'people-head' },
              h('h3', {}, t('meetWaiting', { n: waiting.length })),
              h('button', { class: 'btn btn-small', type: 'button', onclick: () => this.actions.admitAll(), 'data-testid': 'admit-all' }, t('meetAdmitAll')),
            ),
            h(
              'ul',
              {},
              waiting.map((w) =>
                h(
                  'li',
                  { class: 'person', 'data-testid': 'waiting' },
                  avatar(w.name, colorFor(w.id), 'sm'),
                  h('span', { class: 'person-name' }, w.name, w.guest ? h('span', { class: 'badge' }, t('meetGuest')) : null),
                  h('button', { class: 'btn btn-small btn-primary', type: 'button', 'aria-label': t('meetAdmitName', { name: w.name }), onclick: () => this.actions.admit(w.id), 'data-testid': 'admit' }, t('meetAdmit')),
                  h('button', { class: 'btn btn-small', type: 'button', 'aria-label': t('meetDenyName', { name: w.name }), onclick: () => this.actions.deny(w.id) }, t('meetDeny')),
                ),
              ),
            ),
          )
        : null;
    replace(
      this.el,
      h('h2', {}, t('meetPeople', { n: people.length })),
      lobby,
      h(
        'ul',
        { class: 'people-list', 'data-testid': 'roster' },
        people.map((p) => this.row(p, p.id === myId, host)),
      ),
    );
  }

  private row(p: Participant, mine: boolean, host: boolean): HTMLElement {
    const name = mine ? t('meetMe', { name: shownName(p) }) : shownName(p);
    const badge = p.role === 'host' ? t('meetHost') : p.role === 'cohost' ? t('meetCohost') : p.guest ? t('meetGuest') : null;
    const items = (): MenuItem[] => {
      const list: MenuItem[] = [];
      if (p.audio) list.push({ label: t('meetAskMute', { name: p.name }), icon: icon(MI.micOff, 16), run: () => this.actions.askMute(p.id) });
      if (p.role === 'participant') list.push({ label: t('meetMakeCohost', { name: p.name }), icon: icon(MI.people, 16), run: () => this.actions.setRole(p.id, 'cohost') });
      if (p.role === 'cohost') list.push({ label: t('meetUnmakeCohost', { name: p.name }), icon: icon(MI.people, 16), run: () => this.actions.setRole(p.id, 'participant') });
      list.push({ label: t('meetRemove', { name: p.name }), icon: icon(I.close, 16), danger: true, run: () => this.actions.remove(p.id) });
      return list;
    };
    return h(
      'li',
      { class: 'person', 'data-participant': p.id, 'data-audio': String(p.audio), 'data-video': String(p.video) },
      avatar(shownName(p), colorFor(p.user_id ?? p.id), 'sm'),
      h('span', { class: 'person-name' }, name, badge ? h('span', { class: 'badge' }, badge) : null),
      h('span', { class: 'person-state', title: p.audio ? t('meetMicrophone') : t('meetMuted') }, icon(p.audio ? MI.mic : MI.micOff, 16), h('span', { class: 'sr-only' }, p.audio ? '' : t('meetMuted'))),
      h('span', { class: 'person-state', title: p.video ? t('meetCamera') : t('meetCamStopped') }, icon(p.video ? MI.cam : MI.camOff, 16), h('span', { class: 'sr-only' }, p.video ? '' : t('meetCamStopped'))),
      host && !mine && p.role !== 'host'
        ? menuButton(h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('meetActionsFor', { name: p.name }), 'data-testid': 'person-actions' }, icon(I.more, 18)), items)
        : null,
    );
  }
}
