// The conversation list: newest activity first, unread count and mention marker per
// conversation, the last message's preview, presence dots for direct partners.

import { h, icon } from '../dom';
import { lang, t } from '../i18n';
import { MI } from '../meet/icons';
import { I } from '../ui/icons';
import type { MsgClient } from './client';
import { authorName, personAvatar } from './people';
import { isGroupLike, type Conversation, type Message } from './types';

export function memberCount(n: number): string {
  return n === 1 ? t('msgMemberOne') : t('msgMemberCount', { n });
}

/** Asked before leaving: a meeting's chat comes back when one joins the meeting again. */
export function leaveQuestion(c: Pick<Conversation, 'kind'>, title: string): string {
  return t(c.kind === 'meeting' ? 'msgLeaveMeetingConfirm' : 'msgLeaveConfirm', { title });
}

export function unreadText(n: number, more?: boolean): string {
  return more || n > 999 ? '999+' : String(n);
}

/** "14:05" today, "Mon" this week, else a short date. */
export function shortTime(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const locale = lang() === 'ko' ? 'ko-KR' : 'en-GB';
  const today = new Date(now);
  if (d.toDateString() === today.toDateString()) return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(d);
  if (now - ms < 6 * 86_400_000) return new Intl.DateTimeFormat(locale, { weekday: 'short' }).format(d);
  return new Intl.DateTimeFormat(locale, { month: 'short', day: 'numeric', year: d.getFullYear() === today.getFullYear() ? undefined : 'numeric' }).format(d);
}

/** The picture of a conversation that is not a direct one: people, or a camera for a meeting. */
export function convIcon(c: Pick<Conversation, 'kind'>): string {
  return c.kind === 'meeting' ? MI.video : I.group;
}

export function preview(m: Message | null, me: string, kind: Conversation['kind']): string {
  if (!m) return t('msgNoMessages');
  const mine = !!m.author.user_id && m.author.user_id === me;
  const who = mine ? t('you') : authorName(m.author);
  const body = m.deleted
    ? t('msgDeleted')
    : m.text
      ? m.text.replace(/\s+/g, ' ').slice(0, 120)
      : m.attachments.length
        ? t('msgFiles', { n: m.attachments.length })
        : '';
  // In a direct conversation the other person's own lines need no name.
  return mine || isGroupLike({ kind }) ? `${who}: ${body}` : body;
}

export function conversationItem(c: Conversation, client: MsgClient, active: boolean): HTMLElement {
  const title = client.title(c);
  const partner = client.partner(c);
  const art =
    c.kind === 'direct' && partner
      ? personAvatar(partner, title, client.presence.get(partner) ?? 'offline')
      : h('span', { class: 'avatar-wrap' }, h('span', { class: 'avatar avatar-md avatar-group', 'aria-hidden': 'true' }, icon(convIcon(c), 18)));
  const when = c.last_at ?? c.created_at;
  const unread = c.unread > 0;
  return h(
    'li',
    { class: 'conv-item-wrap' },
    h(
      'a',
      {
        class: 'conv-item' + (active ? ' active' : '') + (unread ? ' has-unread' : ''),
        href: '/messages/' + c.id,
        'data-link': true,
        'data-testid': 'conv-item',
        'data-conv-id': c.id,
        'data-unread': String(c.unread),
        'aria-current': active ? 'page' : null,
      },
      art,
      h(
        'span',
        { class: 'conv-body' },
        h('span', { class: 'conv-line' }, h('span', { class: 'conv-title', 'data-testid': 'conv-title' }, title), h('time', { class: 'conv-time' }, shortTime(when))),
        h(
          'span',
          { class: 'conv-line' },
          h('span', { class: 'conv-preview', 'data-testid': 'conv-preview' }, preview(c.last_message, client.me, c.kind)),
          c.unread_mentions > 0 ? h('span', { class: 'mention-mark', title: t('msgMentioned'), 'aria-label': t('msgMentioned'), 'data-testid': 'mention-mark' }, '@') : null,
          unread
            ? h('span', { class: 'count-badge', 'data-testid': 'unread-badge', 'aria-label': t('msgUnreadCount', { n: unreadText(c.unread, c.unread_more) }) }, unreadText(c.unread, c.unread_more))
            : null,
        ),
      ),
    ),
  );
}
