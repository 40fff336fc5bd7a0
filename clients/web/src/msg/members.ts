// The members panel: for a group its title (admins rename), the members with their roles and
// presence, adding people (admins), removing people and making admins (admins), leaving; for a
// meeting's chat its title, the people (its signed-in participants, who come with the meeting:
// nothing to manage here), a link into the meeting and leaving; for every kind archiving (for
// oneself).

import { h, icon, replace } from '../dom';
import { lang, t } from '../i18n';
import { displayName } from '../session';
import { promptText } from '../ui/dialog';
import { MI } from '../meet/icons';
import { meetPath } from '../router';
import { I } from '../ui/icons';
import { menuButton, type MenuItem } from '../ui/menu';
import { toast } from '../ui/toast';
import type { MsgClient, MsgError } from './client';
import { msgErrorText } from './errors';
import { personAvatar, personSearch, presenceLabel } from './people';
import { leaveQuestion, memberCount } from './list';
import { isGroupLike, type Conversation } from './types';

export class MembersPanel {
  readonly el: HTMLElement;
  private body = h('div', { class: 'members-body' });
  private titleSlot = h('div');
  private listSlot = h('div', { class: 'stack' });
  private actionsSlot = h('div', { class: 'members-actions' });
  /** Kept across renders: presence and list updates must not take the focus from it. */
  private add: HTMLElement;

  constructor(
    private readonly client: MsgClient,
    private readonly id: string,
    onClose: () => void,
  ) {
    this.el = h(
      'section',
      { class: 'members-panel' },
      h(
        'header',
        { class: 'members-head' },
        h('h3', {}, t('msgDetails')),
        h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('close'), title: t('close'), onclick: onClose }, icon(I.close, 18)),
      ),
      this.body,
    );
    const search = personSearch(
      (u) => this.act('conv.add', { users: [u.id] }),
      () => this.client.convs.get(this.id)?.members.map((m) => m.user_id) ?? [],
    );
    this.add = h('div', { class: 'stack members-add', hidden: true }, h('h4', { class: 'section-label' }, t('addPeople')), search.el);
    this.body.append(this.titleSlot, this.listSlot, this.add, this.actionsSlot);
  }

  private act(type: Parameters<MsgClient['act']>[0], data: object): void {
    void this.client.act(type, { conversation: this.id, ...data }).catch((e: MsgError) => toast(t('msgActionFailed', { message: msgErrorText(e.code, e.message) })));
  }

  /** A group's title, with renaming for its admins. */
  private groupTitle(c: Conversation, admin: boolean): HTMLElement {
    return h(
      'div',
      { class: 'members-title' },
      h('strong', { 'data-testid': 'group-title' }, this.client.title(c)),
      admin
        ? h(
            'button',
            {
              class: 'btn btn-small',
              type: 'button',
              'data-testid': 'rename',
              onclick: async () => {
                const next = await promptText(t('msgRename'), t('msgGroupTitle'), c.title ?? '', t('save'));
                if (next && next !== c.title) this.act('conv.rename', { title: next });
              },
            },
            icon(I.edit, 14),
            h('span', {}, t('rename')),
          )
        : null,
    );
  }

  /** A meeting chat's title and the way into the meeting (its people come and go with it). */
  private meetingTitle(c: Conversation): HTMLElement {
    return h(
      'div',
      { class: 'members-title' },
      h('strong', { 'data-testid': 'meeting-title' }, this.client.title(c)),
      c.meeting
        ? h(
            'a',
            { class: 'btn btn-small', href: meetPath(c.meeting), 'data-link': true, 'data-testid': 'conv-join-meeting' },
            icon(MI.video, 14),
            h('span', {}, t('msgJoinMeeting')),
          )
        : null,
    );
  }

  /** What the last render showed: unchanged state is not rebuilt (an open menu stays open). */
  private shown = '';

  render(): void {
    if (!this.el.isConnected) return;
    const c = this.client.convs.get(this.id);
    const sig = JSON.stringify([
      lang(),
      c ? [c.kind, c.meeting, c.title, c.role, c.archived, c.members.map((m) => [m.user_id, m.name, m.role, this.client.presence.get(m.user_id) ?? ''])] : null,
    ]);
    if (sig === this.shown) return;
    this.shown = sig;
    if (!c) {
      replace(this.titleSlot);
      replace(this.listSlot);
      replace(this.actionsSlot);
      this.add.hidden = true;
      return;
    }
    const admin = c.kind === 'group' && c.role === 'admin';
    const admins = c.members.filter((m) => m.role === 'admin').length;
    const title = c.kind === 'meeting' ? this.meetingTitle(c) : c.kind === 'group' ? this.groupTitle(c, admin) : null;
    const rows = [...c.members]
      .sort((a, b) => (a.role === b.role ? a.name.localeCompare(b.name) : a.role === 'admin' ? -1 : 1))
      .map((m) => {
        const me = m.user_id === this.client.me;
        const name = displayName(m.user_id, m.name);
        const state = me ? 'online' : (this.client.presence.get(m.user_id) ?? 'offline');
        const items = (): MenuItem[] => {
          const out: MenuItem[] = [];
          if (m.role === 'admin') {
            if (admins > 1) out.push({ label: t('msgMakeMember', { name }), run: () => this.act('conv.role', { user: m.user_id, role: 'member' }) });
          } else {
            out.push({ label: t('msgMakeAdmin', { name }), run: () => this.act('conv.role', { user: m.user_id, role: 'admin' }) });
          }
          if (!me && !(m.role === 'admin' && admins <= 1)) {
            out.push({
              label: t('msgRemoveMember', { name }),
              icon: icon(I.close, 16),
              danger: true,
              run: () => {
                if (confirm(t('msgRemoveConfirm', { name }))) this.act('conv.remove', { user: m.user_id });
              },
            });
          }
          return out;
        };
        return h(
          'li',
          { class: 'member', 'data-testid': 'member', 'data-user': m.user_id, 'data-role': m.role },
          personAvatar(m.user_id, m.name, state, 'sm'),
          h('span', { class: 'member-who' }, h('span', { class: 'member-name' }, me ? t('meetMe', { name }) : name), h('span', { class: 'muted small' }, presenceLabel(state))),
          c.kind === 'group' && m.role === 'admin' ? h('span', { class: 'badge badge-editor' }, t('msgAdmin')) : null,
          admin && items().length
            ? menuButton(h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('meetActionsFor', { name }), 'data-testid': 'member-menu' }, icon(I.more, 16)), items)
            : null,
        );
      });
    replace(this.titleSlot, title);
    replace(
      this.listSlot,
      h('h4', { class: 'section-label' }, isGroupLike(c) ? memberCount(c.members.length) : t('msgPeople')),
      h('ul', { class: 'member-list' }, rows),
    );
    this.add.hidden = !admin;
    replace(
      this.actionsSlot,
      h(
        'button',
        {
          class: 'btn',
          type: 'button',
          'data-testid': 'archive',
          onclick: () => this.act('conv.archive', { archived: !c.archived }),
        },
        c.archived ? t('msgUnarchive') : t('msgArchive'),
      ),
      isGroupLike(c)
        ? h(
            'button',
            {
              class: 'btn btn-danger-ghost',
              type: 'button',
              'data-testid': 'leave',
              onclick: () => {
                if (confirm(leaveQuestion(c, this.client.title(c)))) this.act('conv.leave', {});
              },
            },
            icon(I.logout, 16),
            h('span', {}, t('msgLeave')),
          )
        : null,
    );
  }
}
