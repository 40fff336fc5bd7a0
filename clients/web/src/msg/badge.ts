// The "Messages" link of the top bar, with the total of unread messages.

import { h, icon } from '../dom';
import { t } from '../i18n';
import { msg } from './client';
import { unreadText } from './list';

export const MESSAGES_ICON = 'M4 5h16v11H9l-5 4z|M8 9h8|M8 12h5';

/** The link and a function that stops its updates (call it when the page goes). */
export function messagesLink(current = false): { el: HTMLElement; destroy: () => void } {
  const badge = h('span', { class: 'count-badge', 'data-testid': 'messages-unread', hidden: true });
  const el = h(
    'a',
    {
      class: 'btn btn-ghost messages-link',
      href: '/messages',
      'data-link': true,
      'data-testid': 'messages-link',
      'aria-current': current ? 'page' : null,
    },
    icon(MESSAGES_ICON, 18),
    h('span', { class: 'hide-narrow' }, t('messages')),
    badge,
  );
  const update = (): void => {
    const { n, more } = msg.totalUnread();
    badge.hidden = n === 0 || msg.state === 'unavailable';
    badge.textContent = unreadText(n, more);
    el.setAttribute('aria-label', n ? `${t('messages')} (${t('msgUnreadCount', { n: unreadText(n, more) })})` : t('messages'));
  };
  const unsub = msg.subscribe((c) => {
    if (c.kind === 'list' || c.kind === 'state') update();
  });
  msg.start();
  if (!msg.listLoaded) void msg.loadList(false).catch(() => {});
  update();
  return { el, destroy: unsub };
}
