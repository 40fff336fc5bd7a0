// The messages page, `/messages` and `/messages/{conversation}` (docs/messaging.md): the
// conversation list (or the archived ones) beside the open conversation. Moving between
// conversations happens in place (no new page), so the list keeps its scroll and the socket
// its subscriptions.

import { h, icon, replace } from '../dom';
import { t } from '../i18n';
import { msg, type Change, type MsgError } from '../msg/client';
import { messagesLink, MESSAGES_ICON } from '../msg/badge';
import { msgErrorText } from '../msg/errors';
import { conversationItem, unreadText } from '../msg/list';
import { openNewConversation } from '../msg/newconv';
import { ConversationView } from '../msg/view';
import type { Route } from '../router';
import { brand, langSwitch, userMenu } from '../ui/chrome';
import { I } from '../ui/icons';
import type { Page } from './page';

const BELL = 'M6 16V11a6 6 0 0 1 12 0v5l2 2H4z|M10 20a2 2 0 0 0 4 0';

export function messagesPage(initial: string | null): Page & { reroute(route: Route): boolean } {
  let archived = false;
  let current: string | null = null;
  let view: ConversationView | null = null;
  let shown = false;
  const link = messagesLink(true);
  const banner = h('div', { class: 'msg-banner', 'data-testid': 'msg-banner' });
  const list = h('ul', { class: 'conv-list', 'data-testid': 'conv-list', 'aria-busy': 'true' });
  const notifySlot = h('div', { class: 'notify-slot' });
  const tabs = h('div', { class: 'segmented msg-tabs', role: 'radiogroup', 'aria-label': t('messages') });
  const mainEl = h('main', { id: 'main', class: 'msg-main', tabindex: -1 });
  const layout = h(
    'div',
    { class: 'msg-layout' },
    h(
      'aside',
      { class: 'msg-sidebar', 'aria-label': t('msgConversations') },
      h(
        'div',
        { class: 'msg-side-head' },
        h('h1', {}, t('messages')),
        h(
          'button',
          { class: 'btn btn-primary btn-small', type: 'button', 'data-testid': 'new-conversation', onclick: () => openNewConversation(msg) },
          icon(I.plus, 16),
          h('span', {}, t('msgNew')),
        ),
      ),
      tabs,
      notifySlot,
      banner,
      list,
    ),
    mainEl,
  );
  const el = h(
    'div',
    { class: 'app msg-app' },
    h('header', { class: 'topbar' }, brand(), link.el, h('div', { class: 'spacer' }), langSwitch(), userMenu()),
    layout,
  );

  const renderTabs = (): void => {
    replace(
      tabs,
      ([false, true] as const).map((arch) =>
        h(
          'button',
          {
            type: 'button',
            role: 'radio',
            class: 'seg',
            'aria-checked': String(arch === archived),
            'data-testid': arch ? 'tab-archived' : 'tab-inbox',
            onclick: () => {
              if (archived === arch) return;
              archived = arch;
              renderTabs();
              renderList();
              if (arch && !msg.archivedLoaded) void msg.loadList(true).catch(listFailed);
            },
          },
          arch ? t('msgArchivedTab') : t('msgInbox'),
        ),
      ),
    );
  };

  const listFailed = (e: MsgError): void => {
    replace(list, h('li', { class: 'notice notice-warn' }, h('span', {}, t('loadFailed', { message: msgErrorText(e.code, e.message) }))));
  };

  const renderList = (): void => {
    const convs = msg.list(archived);
    const loaded = archived ? msg.archivedLoaded : msg.listLoaded;
    list.setAttribute('aria-busy', String(!loaded));
    replace(
      list,
      convs.length
        ? convs.map((c) => conversationItem(c, msg, c.id === current))
        : h('li', { class: 'muted empty-small', 'data-testid': 'no-conversations' }, !loaded ? t('loading') : archived ? t('msgNoArchived') : t('msgNoConversations')),
    );
    // Dots for the people of direct conversations.
    msg.watch('list', msg.list(false).map((c) => msg.partner(c)).filter((u): u is string => !!u));
    const { n, more } = msg.totalUnread();
    document.title = `${n ? `(${unreadText(n, more)}) ` : ''}${t('messages')} — ${t('appName')}`;
  };

  const renderBanner = (): void => {
    const s = msg.state;
    const text = s === 'reconnecting' ? t('msgReconnecting') : s === 'unavailable' ? t('msgUnavailable') : s === 'closed' ? t('msgClosed') : '';
    replace(
      banner,
      text
        ? h(
            'div',
            { class: 'notice ' + (s === 'reconnecting' ? 'notice-info' : 'notice-warn'), role: 'status' },
            icon(s === 'reconnecting' ? I.offline : I.alert, 16),
            h('span', {}, text),
            s === 'closed' ? h('button', { class: 'btn btn-small', type: 'button', onclick: () => location.reload() }, t('retry')) : null,
          )
        : null,
    );
  };

  const renderNotify = (): void => {
    if (typeof Notification === 'undefined') return replace(notifySlot);
    const p = Notification.permission;
    replace(
      notifySlot,
      p === 'default'
        ? h(
            'button',
            {
              class: 'btn btn-small btn-ghost notify-btn',
              type: 'button',
              'data-testid': 'enable-notifications',
              onclick: () => void Notification.requestPermission().then(renderNotify, renderNotify),
            },
            icon(BELL, 16),
            h('span', {}, t('msgEnableNotifications')),
          )
        : p === 'denied'
          ? h('p', { class: 'muted small' }, t('msgNotificationsBlocked'))
          : null,
    );
  };

  const open = (conv: string | null): void => {
    if (shown && conv === current) return;
    shown = true;
    current = conv;
    view?.destroy();
    view = null;
    layout.classList.toggle('has-conv', !!conv);
    if (conv) {
      view = new ConversationView(msg, conv);
      replace(mainEl, view.el);
      queueMicrotask(() => view?.focus());
    } else {
      replace(
        mainEl,
        h(
          'div',
          { class: 'msg-empty' },
          h('div', { class: 'empty-art', 'aria-hidden': 'true' }, icon(MESSAGES_ICON, 32)),
          h('p', { class: 'muted' }, t('msgPick')),
        ),
      );
    }
    renderList();
  };

  const unsub = msg.subscribe((c: Change) => {
    if (c.kind === 'list' || c.kind === 'presence') renderList();
    if (c.kind === 'state') {
      renderBanner();
      renderList();
    }
  });

  msg.start();
  renderTabs();
  renderNotify();
  renderBanner();
  open(initial);
  void msg.loadList(false).catch(listFailed);

  return {
    el,
    reroute(route: Route): boolean {
      if (route.name !== 'messages') return false;
      open(route.conv);
      return true;
    },
    destroy() {
      unsub();
      link.destroy();
      view?.destroy();
      msg.watch('list', []);
    },
  };
}
