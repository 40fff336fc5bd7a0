import type { Editor } from '@tiptap/core';
import { ApiError, api, cacheGet, cachePut, type DocMeta, type Role } from '../api';
import { h, icon, replace } from '../dom';
import { DocConnection, type SaveState } from '../editor/connection';
import { presence } from '../editor/presence';
import { FIELD, createEditor } from '../editor/setup';
import { toolbar } from '../editor/toolbar';
import { errorText, t, type Key } from '../i18n';
import { navigate } from '../router';
import { loginUrl, session } from '../session';
import { openShareDialog } from '../share';
import { startMeeting } from '../meet/start';
import { MI } from '../meet/icons';
import { MESSAGES_ICON } from '../msg/badge';
import { openShareToConversation } from '../msg/share';
import { downloadExport } from '../transfer';
import { colorFor } from '../ui/avatar';
import { langSwitch, userMenu } from '../ui/chrome';
import { promptText } from '../ui/dialog';
import { I } from '../ui/icons';
import { menuButton, type MenuItem } from '../ui/menu';
import { roleBadge } from '../ui/role';
import { toast } from '../ui/toast';
import type { Page } from './page';

const STATUS: Record<Exclude<SaveState['kind'], 'final'>, { label: Key; hint: Key; icon: string }> = {
  connecting: { label: 'statusConnecting', hint: 'statusSavingHint', icon: I.clock },
  saving: { label: 'statusSaving', hint: 'statusSavingHint', icon: I.clock },
  saved: { label: 'statusSaved', hint: 'statusSavedHint', icon: I.saved },
  offline: { label: 'statusOffline', hint: 'statusOfflineHint', icon: I.offline },
};

/**
 * Role changes are not pushed to the app (the server only enforces them on the socket): an
 * open document asks again this often while visible, and when the window gets the focus or
 * someone clicks into a read-only editor (at most once per ROLE_CHECK_GAP_MS).
 */
const ROLE_CHECK_INTERVAL_MS = 60_000;
const ROLE_CHECK_GAP_MS = 1_000;

/**
 * Documents reopened from the server's copy after it refused local edits, and when: the
 * reopened page keeps the notice, and never discards again right away (no loop if the local
 * copy could not be deleted).
 */
const refusedAt = new Map<string, number>();
const REFUSAL_LOOP_MS = 10_000;

/**
 * The editor (editors, owners) or the live read-only view (viewers). `reopen` builds the page
 * again (a fresh connection), after the local copy was discarded.
 */
export function docPage(id: string, reopen: () => void): Page {
  const me = session.me;
  const metaKey = `meta:${me.id}:${id}`;
  let meta: DocMeta | null = cacheGet<DocMeta>(metaKey);
  let role: Role = meta?.role ?? 'editor';
  const reopenedAfterRefusal = refusedAt.get(id);
  let denied = reopenedAfterRefusal !== undefined && Date.now() - reopenedAfterRefusal < REFUSAL_LOOP_MS;
  let discarding = false;
  let shown = true;
  const conn = new DocConnection(id, me.id);

  // In local mode every tab is the same user: colour each tab apart so carets can be told apart.
  const color = session.config.mode === 'local' ? colorFor(String(conn.doc.clientID)) : colorFor(me.id);
  const host = h('div', { class: 'editor-host', 'data-testid': 'editor' });
  const paper = h('article', { class: 'paper' }, host);
  const notices = h('div', { class: 'doc-notices' });
  const topbar = h('header', { class: 'topbar doc-topbar' });
  const toolbarSlot = h('div', { class: 'toolbar-wrap' });
  const statusEl = h('span', { class: 'save-status', role: 'status', 'aria-live': 'polite', 'data-testid': 'save-status' });
  const titleInput = h('input', { class: 'title-input', type: 'text', maxlength: 200, spellcheck: 'false', 'data-testid': 'doc-title' });
  let bar: { el: HTMLElement; update: () => void } | null = null;

  const openLink = async (): Promise<void> => {
    if (!editor.isEditable) return;
    const current = (editor.getAttributes('link') as { href?: string }).href ?? '';
    const href = await promptText(t('link'), t('linkPrompt'), current, t('save'));
    if (href === null) return;
    const chain = editor.chain().focus().extendMarkRange('link');
    if (href === '') chain.unsetLink().run();
    else chain.setLink({ href }).run();
  };

  const editor: Editor = createEditor({
    element: host,
    conn,
    user: { id: me.id, name: me.name, color },
    editable: role !== 'viewer',
    onLinkShortcut: () => void openLink(),
  });
  editor.on('transaction', () => bar?.update());

  const pres = presence(conn);

  const editable = (): boolean => role !== 'viewer' && !denied && conn.state.kind !== 'final';

  const renderStatus = (): void => {
    const s = conn.state;
    statusEl.dataset['state'] = s.kind;
    if (s.kind === 'final') {
      statusEl.title = finalText(s.code, s.reason, conn.everSynced);
      replace(statusEl, icon(I.alert, 16), h('span', {}, t(closeStatus(s.code))));
      return;
    }
    if (role === 'viewer' && s.kind !== 'offline') {
      statusEl.dataset['state'] = 'view-only';
      statusEl.title = t('readOnlyNotice');
      replace(statusEl, icon(I.lock, 16), h('span', {}, t('statusViewOnly')));
      return;
    }
    const info = STATUS[s.kind];
    statusEl.title = t(info.hint);
    replace(statusEl, icon(info.icon, 16), h('span', { class: 'save-label' }, t(info.label)));
  };

  const renderNotices = (): void => {
    const s = conn.state;
    const items: HTMLElement[] = [];
    if (s.kind === 'final') {
      const action =
        s.code === 4401
          ? h('a', { class: 'btn btn-small btn-primary', href: loginUrl() }, t('signInAgain'))
          : h('a', { class: 'btn btn-small', href: '/', 'data-link': true }, t('goToDocuments'));
      items.push(
        h('div', { class: 'notice notice-error', role: 'alert' }, icon(I.alert), h('span', {}, finalText(s.code, s.reason, conn.everSynced)), action),
      );
    } else if (denied) {
      items.push(h('div', { class: 'notice notice-warn', role: 'alert' }, icon(I.lock), h('span', {}, t('permissionDenied'))));
    } else if (role === 'viewer') {
      items.push(h('div', { class: 'notice notice-info' }, icon(I.lock), h('span', {}, t('readOnlyNotice'))));
    }
    replace(notices, items);
  };

  const applyEditable = (): void => {
    const want = editable();
    if (editor.isEditable !== want) editor.setEditable(want);
    titleInput.readOnly = role === 'viewer' || conn.state.kind === 'final';
    bar?.update();
  };

  const setTitle = (title: string): void => {
    titleInput.value = title;
    titleInput.placeholder = t('untitled');
    document.title = `${title || t('untitled')} — ${t('appName')}`;
  };

  const saveTitle = async (): Promise<void> => {
    const next = titleInput.value.trim();
    if (!meta || next === meta.title || role === 'viewer') return;
    try {
      meta = await api.rename(id, next);
      cachePut(metaKey, meta);
      setTitle(meta.title);
    } catch (err) {
      toast(t('serverError', { message: (err as Error).message }));
      setTitle(meta.title);
    }
  };
  titleInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      editor.commands.focus('start');
    } else if (e.key === 'Escape') {
      setTitle(meta?.title ?? '');
      titleInput.blur();
    }
  });
  titleInput.addEventListener('change', () => void saveTitle());

  const moreItems = (): MenuItem[] => {
    const title = meta?.title ?? '';
    const dl = (format: 'md' | 'html' | 'txt') => () =>
      void downloadExport(id, title, format).catch((err: unknown) => toast(t('exportFailed', { message: (err as Error).message })));
    const items: MenuItem[] = [
      { label: `${t('export')}: ${t('exportMd')}`, icon: icon(I.download, 16), run: dl('md') },
      { label: `${t('export')}: ${t('exportHtml')}`, icon: icon(I.download, 16), run: dl('html') },
      { label: `${t('export')}: ${t('exportTxt')}`, icon: icon(I.download, 16), run: dl('txt') },
    ];
    if (role === 'owner') {
      items.push({
        label: t('moveToTrash'),
        icon: icon(I.trash, 16),
        danger: true,
        run: () =>
          void api.trash(id).then(
            () => {
              toast(t('movedToTrash', { title: title || t('untitled') }));
              navigate('/');
            },
            (err: unknown) => toast(t('serverError', { message: (err as Error).message })),
          ),
      });
    }
    return items;
  };

  const renderChrome = (): void => {
    // Closed for good (signed out, no access, deleted): no editing tools, nobody "here".
    const closed = conn.state.kind === 'final';
    titleInput.setAttribute('aria-label', t('documentTitle'));
    setTitle(titleInput.value || meta?.title || '');
    const shareBtn =
      role === 'owner' && meta && !closed
        ? h(
            'button',
            {
              class: 'btn btn-primary share-btn',
              type: 'button',
              'data-testid': 'share',
              onclick: () => {
                if (meta) openShareDialog(meta, (m) => {
                  meta = m;
                  cachePut(metaKey, m);
                });
              },
            },
            icon(I.share, 16),
            h('span', { class: 'hide-narrow' }, t('share')),
          )
        : null;
    const meetBtn =
      (role === 'owner' || role === 'editor') && !closed
        ? h(
            'button',
            {
              class: 'btn meet-btn',
              type: 'button',
              'data-testid': 'meet',
              'aria-label': t('meet'),
              title: t('meet'),
              onclick: () => void startMeeting(t('meetDocTitle', { title: titleInput.value || meta?.title || t('untitled') }), id),
            },
            icon(MI.video, 16),
            h('span', { class: 'hide-narrow' }, t('meet')),
          )
        : null;
    // Anyone who can open the document may post its link; readers get its title only if
    // they may open it too.
    const sendBtn = !closed
      ? h(
          'button',
          {
            class: 'btn send-doc-btn',
            type: 'button',
            'data-testid': 'share-to-conversation',
            'aria-label': t('msgShareDoc'),
            title: t('msgShareDoc'),
            onclick: () => openShareToConversation(id, titleInput.value || meta?.title || ''),
          },
          icon(MESSAGES_ICON, 16),
          h('span', { class: 'hide-narrow' }, t('msgShareDocShort')),
        )
      : null;
    replace(
      topbar,
      h('a', { class: 'icon-btn back-btn', href: '/', 'data-link': true, 'aria-label': t('backToDocuments'), title: t('backToDocuments') }, icon(I.back, 20)),
      h('a', { class: 'brand-mark brand-mark-small', href: '/', 'data-link': true, 'aria-hidden': 'true', tabindex: -1 }, '두'),
      h('div', { class: 'doc-heading' }, titleInput, h('div', { class: 'doc-meta-line' }, statusEl, role !== 'owner' && meta && !closed ? roleBadge(role) : null)),
      h('div', { class: 'spacer' }),
      closed ? null : pres.el,
      meetBtn,
      sendBtn,
      shareBtn,
      menuButton(h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('more'), title: t('more'), 'data-testid': 'more' }, icon(I.more, 20)), moreItems),
      langSwitch(),
      userMenu(),
    );
    bar = toolbar(editor, () => void openLink());
    replace(toolbarSlot, role === 'viewer' || closed ? null : bar.el);
    // Refused before any content arrived: there is nothing to show but the notice.
    paper.hidden = closed && !conn.everSynced;
    pres.el.setAttribute('aria-label', t('presence'));
    renderStatus();
    renderNotices();
    applyEditable();
  };

  let closedShown = false;
  conn.onChange(() => {
    if (conn.state.kind === 'final' && !closedShown) {
      closedShown = true;
      renderChrome();
      return;
    }
    renderStatus();
    renderNotices();
    applyEditable();
  });
  conn.onPermissionDenied(() => {
    denied = true;
    renderNotices();
    applyEditable();
    // The server refused edits made here (we were made a viewer meanwhile). It will never take
    // them, and edits built on them would apply nowhere: start again from the server's copy.
    const last = refusedAt.get(id);
    if (discarding || (last !== undefined && Date.now() - last < REFUSAL_LOOP_MS)) return;
    discarding = true;
    void (async () => {
      await loadMeta();
      await conn.discardLocalCopy();
      refusedAt.set(id, Date.now());
      if (shown) reopen();
    })();
  });

  let lastCheck = 0;
  const loadMeta = async (): Promise<void> => {
    lastCheck = Date.now();
    try {
      const fresh = await api.get(id);
      const roleChanged = fresh.role !== role || !meta;
      meta = fresh;
      role = fresh.role;
      cachePut(metaKey, fresh);
      // Never under the cursor of someone typing a new title.
      if (document.activeElement !== titleInput) setTitle(fresh.title);
      if (roleChanged && role !== 'viewer') denied = false;
      if (roleChanged) renderChrome();
    } catch (err) {
      // The socket is the authority on access (it closes with 4403/4404): metadata failures
      // only leave the cached title in place.
      if (err instanceof ApiError && !err.offline && ![401, 403, 404].includes(err.status)) console.warn('metadata', err);
    }
  };

  // Asks for the role again (see ROLE_CHECK_INTERVAL_MS); a change re-renders the page.
  const recheck = (): void => {
    if (discarding || conn.state.kind === 'final' || Date.now() - lastCheck < ROLE_CHECK_GAP_MS) return;
    void loadMeta();
  };
  const onVisible = (): void => {
    if (document.visibilityState === 'visible') recheck();
  };
  window.addEventListener('focus', recheck);
  document.addEventListener('visibilitychange', onVisible);
  // Someone told they may edit now clicks into the text: the editor follows at once.
  host.addEventListener('pointerdown', () => {
    if (!editor.isEditable) recheck();
  });
  const roleTimer = window.setInterval(onVisible, ROLE_CHECK_INTERVAL_MS);

  renderChrome();
  void loadMeta();
  exposeForTests(conn);

  const el = h(
    'div',
    { class: 'app doc-app' },
    topbar,
    toolbarSlot,
    h('main', { id: 'main', class: 'doc-scroll', tabindex: -1 }, notices, paper),
  );
  // Clicking the empty page below the text puts the caret at the end, like a word processor.
  el.querySelector('.paper')?.addEventListener('mousedown', (e) => {
    if (e.target === e.currentTarget && editor.isEditable) {
      e.preventDefault();
      editor.commands.focus('end');
    }
  });

  return {
    el,
    relabel: renderChrome,
    destroy: () => {
      shown = false;
      clearInterval(roleTimer);
      window.removeEventListener('focus', recheck);
      document.removeEventListener('visibilitychange', onVisible);
      pres.destroy();
      editor.destroy();
      conn.destroy();
    },
  };
}

/**
 * Browser tests read the document and the save counters through `window.__dure`, only when
 * `localStorage['dure:debug']` is '1' (never set by the app itself).
 */
function exposeForTests(conn: DocConnection): void {
  if (localStorage.getItem('dure:debug') !== '1') return;
  (window as unknown as { __dure: unknown }).__dure = {
    xml: () => conn.doc.getXmlFragment(FIELD).toString(),
    counters: () => ({ sent: conn.sent, acked: conn.acked, state: conn.state.kind }),
  };
}

/** A final close, explained: 4401/4403/4404 by their code, others by their reason code. */
function finalText(code: number | 'other', reason: string, everSynced: boolean): string {
  const known = t(closeMessage(code, everSynced));
  return code === 'other' ? errorText(reason, known) : known;
}

/** What a final close means. A 4403 before any content: this person never had access. */
function closeMessage(code: number | 'other', everSynced: boolean): Key {
  if (code === 4403) return everSynced ? 'closed4403' : 'noAccess';
  return code === 4401 ? 'closed4401' : 'closed4404';
}

/** The same, short, for the status line under the title. */
function closeStatus(code: number | 'other'): Key {
  return code === 4401 ? 'statusSignedOut' : code === 4403 ? 'statusNoAccess' : 'statusGone';
}
