import { ApiError, api, cacheGet, cachePut, type DocMeta, type Scope } from '../api';
import { h, icon, replace } from '../dom';
import { fullTime, relativeTime, t, type Key } from '../i18n';
import { docPath, navigate } from '../router';
import { session } from '../session';
import { brand, langSwitch, userMenu } from '../ui/chrome';
import { promptText } from '../ui/dialog';
import { I } from '../ui/icons';
import { menuButton, type MenuItem } from '../ui/menu';
import { toast } from '../ui/toast';
import { roleBadge } from '../ui/role';
import { pickMarkdownFile } from '../transfer';
import type { Page } from './page';
import { MI } from '../meet/icons';
import { startMeeting } from '../meet/start';
import { messagesLink } from '../msg/badge';

const TABS: { scope: Scope; label: Key; empty: Key }[] = [
  { scope: 'all', label: 'tabRecent', empty: 'emptyRecent' },
  { scope: 'mine', label: 'tabMine', empty: 'emptyMine' },
  { scope: 'shared', label: 'tabShared', empty: 'emptyShared' },
  { scope: 'org', label: 'tabOrg', empty: 'emptyOrg' },
  { scope: 'trash', label: 'tabTrash', empty: 'emptyTrash' },
];

function toScope(s: string): Scope {
  return TABS.some((tab) => tab.scope === s) ? (s as Scope) : 'all';
}

function listUrl(scope: Scope, q: string): string {
  const params = new URLSearchParams();
  if (scope !== 'all') params.set('scope', scope);
  if (q) params.set('q', q);
  const qs = params.toString();
  return '/docs' + (qs ? '?' + qs : '');
}

export function listPage(scopeParam: string, initialQ: string): Page {
  const scope = toScope(scopeParam);
  let q = initialQ;
  const results = h('div', { class: 'doc-list', 'aria-live': 'polite', 'aria-busy': 'true' });
  let generation = 0;

  const load = async (): Promise<void> => {
    const mine = ++generation;
    results.setAttribute('aria-busy', 'true');
    const cacheKey = `list:${session.me.id}:${scope}`;
    try {
      const { docs } = await api.list(scope, q);
      if (mine !== generation) return;
      if (!q) cachePut(cacheKey, docs);
      render(docs, null);
    } catch (err) {
      if (mine !== generation) return;
      const e = err instanceof ApiError ? err : new ApiError(0, 'offline', String(err));
      if (e.status === 401) return; // the sign-in page takes over
      const cached = e.offline ? cacheGet<DocMeta[]>(cacheKey) : null;
      if (cached) {
        const needle = q.toLowerCase();
        render(cached.filter((d) => d.title.toLowerCase().includes(needle)), t('offlineList'));
      } else {
        replace(
          results,
          h(
            'div',
            { class: 'notice notice-warn', role: 'alert' },
            icon(e.offline ? I.offline : I.alert),
            h('span', {}, e.offline ? t('offlineNoList') : t('loadFailed', { message: e.message })),
            h('button', { class: 'btn btn-small', type: 'button', onclick: () => void load() }, t('retry')),
          ),
        );
      }
    } finally {
      if (mine === generation) results.setAttribute('aria-busy', 'false');
    }
  };

  const render = (docs: DocMeta[], banner: string | null): void => {
    const tab = TABS.find((x) => x.scope === scope) ?? TABS[0];
    const rows = docs.map((d) => row(d, scope, load));
    replace(
      results,
      banner ? h('div', { class: 'notice notice-info' }, icon(I.offline), h('span', {}, banner)) : null,
      scope === 'trash' && docs.length > 0 ? h('p', { class: 'muted small' }, t('trashNote')) : null,
      docs.length === 0
        ? h(
            'div',
            { class: 'empty' },
            h('div', { class: 'empty-art', 'aria-hidden': 'true' }, icon(scope === 'trash' ? I.trash : I.doc, 32)),
            h('p', {}, q ? t('emptySearch', { q }) : t(tab?.empty ?? 'emptyRecent')),
          )
        : h(
            'div',
            { class: 'doc-table', role: 'table', 'aria-label': t('documents') },
            h(
              'div',
              { class: scope === 'trash' ? 'doc-row doc-row-head trash-row' : 'doc-row doc-row-head', role: 'row' },
              h('span', { role: 'columnheader', class: 'col-title' }, t('colTitle')),
              h('span', { role: 'columnheader', class: 'col-owner' }, t('colOwner')),
              h('span', { role: 'columnheader', class: 'col-time' }, scope === 'trash' ? t('colDeleted') : t('colUpdated')),
              h('span', { role: 'columnheader', class: 'col-actions' }, h('span', { class: 'sr-only' }, t('more'))),
            ),
            rows,
          ),
    );
  };

  let searchTimer = 0;
  const search = h('input', {
    class: 'input search-input',
    type: 'search',
    placeholder: t('searchTitles'),
    'aria-label': t('searchTitles'),
    value: q,
    oninput: () => {
      clearTimeout(searchTimer);
      searchTimer = window.setTimeout(() => {
        q = search.value.trim();
        history.replaceState(null, '', listUrl(scope, q));
        void load();
      }, 200);
    },
  });

  const create = async (): Promise<void> => {
    try {
      const doc = await api.create('');
      navigate(docPath(doc.id));
    } catch (err) {
      toast(t('serverError', { message: (err as Error).message }));
    }
  };

  const importMd = async (): Promise<void> => {
    const file = await pickMarkdownFile();
    if (!file) return;
    try {
      const doc = await api.importMarkdown(file.title, file.text);
      toast(t('imported', { title: doc.title || t('untitled') }));
      navigate(docPath(doc.id));
    } catch (err) {
      toast(t('importFailed', { message: (err as Error).message }));
    }
  };

  const messages = messagesLink();
  const el = h(
    'div',
    { class: 'app' },
    h('header', { class: 'topbar' }, brand(), messages.el, h('div', { class: 'spacer' }), langSwitch(), userMenu()),
    h(
      'main',
      { id: 'main', class: 'page list-page', tabindex: -1 },
      h(
        'div',
        { class: 'list-head' },
        h('h1', {}, t('documents')),
        h(
          'div',
          { class: 'list-actions' },
          h(
            'button',
            { class: 'btn', type: 'button', onclick: () => void startMeeting(t('meetDefaultTitle'), null), 'data-testid': 'new-meeting', 'aria-label': t('newMeeting') },
            icon(MI.video, 16),
            h('span', { class: 'hide-narrow' }, t('newMeeting')),
          ),
          h(
            'button',
            { class: 'btn', type: 'button', onclick: () => void importMd() },
            icon(I.upload, 16),
            h('span', { class: 'hide-narrow' }, t('importMarkdown')),
          ),
          h(
            'button',
            { class: 'btn btn-primary', type: 'button', onclick: () => void create(), 'data-testid': 'new-doc' },
            icon(I.plus, 16),
            h('span', {}, t('newDocument')),
          ),
        ),
      ),
      h(
        'div',
        { class: 'list-toolbar' },
        h(
          'nav',
          { class: 'tabs', 'aria-label': t('documents') },
          TABS.map((tab) =>
            h(
              'a',
              {
                class: 'tab',
                href: listUrl(tab.scope, ''),
                'data-link': true,
                'aria-current': tab.scope === scope ? 'page' : null,
              },
              t(tab.label),
            ),
          ),
        ),
        h('div', { class: 'search' }, icon(I.search, 16), search),
      ),
      results,
    ),
  );

  replace(results, h('p', { class: 'muted loading' }, t('loading')));
  void load();
  return { el, destroy: messages.destroy };
}

function row(d: DocMeta, scope: Scope, reload: () => Promise<void>): HTMLElement {
  const title = d.title || t('untitled');
  const ownerName = d.owner.id === session.me.id ? t('you') : d.owner.name;
  const when = scope === 'trash' ? (d.deleted_at ?? d.updated_at) : d.updated_at;
  const actions: () => MenuItem[] = () => {
    if (scope === 'trash') {
      return [{ label: t('restore'), icon: icon(I.restore, 16), run: () => void restore(d, reload) }];
    }
    const items: MenuItem[] = [{ label: t('open'), icon: icon(I.doc, 16), run: () => navigate(docPath(d.id)) }];
    if (d.role !== 'viewer') {
      items.push({ label: t('rename'), icon: icon(I.edit, 16), run: () => void rename(d, reload) });
    }
    if (d.role === 'owner') {
      items.push({ label: t('moveToTrash'), icon: icon(I.trash, 16), danger: true, run: () => void trash(d, reload) });
    }
    return items;
  };
  const titleCell =
    scope === 'trash'
      ? h('span', { class: 'doc-link' }, icon(I.doc, 18), h('span', { class: 'doc-title' }, title))
      : h('a', { class: 'doc-link', href: docPath(d.id), 'data-link': true }, icon(I.doc, 18), h('span', { class: 'doc-title' }, title));
  return h(
    'div',
    { class: scope === 'trash' ? 'doc-row trash-row' : 'doc-row', role: 'row', 'data-doc-id': d.id },
    h(
      'span',
      { role: 'cell', class: 'col-title' },
      titleCell,
      d.role !== 'owner' ? roleBadge(d.role) : null,
      h('span', { class: 'row-sub' }, `${ownerName} · ${relativeTime(when)}`),
    ),
    h('span', { role: 'cell', class: 'col-owner' }, ownerName),
    h(
      'span',
      {
        role: 'cell',
        class: 'col-time',
        // In the trash, when the document goes for good is one hover away.
        title: scope === 'trash' && d.purge_at ? t('purgeAt', { when: fullTime(d.purge_at) }) : fullTime(when),
      },
      relativeTime(when),
    ),
    h(
      'span',
      { role: 'cell', class: 'col-actions' },
      scope === 'trash'
        ? h('button', { class: 'btn btn-small', type: 'button', onclick: () => void restore(d, reload) }, icon(I.restore, 16), h('span', { class: 'hide-narrow' }, t('restore')))
        : menuButton(
            h('button', { class: 'icon-btn', type: 'button', 'aria-label': t('actionsFor', { title }) }, icon(I.more, 18)),
            actions,
          ),
    ),
  );
}

async function rename(d: DocMeta, reload: () => Promise<void>): Promise<void> {
  const next = await promptText(t('rename'), t('renamePrompt'), d.title, t('save'));
  if (next === null || next === d.title) return;
  try {
    await api.rename(d.id, next);
    await reload();
  } catch (err) {
    toast(t('serverError', { message: (err as Error).message }));
  }
}

async function trash(d: DocMeta, reload: () => Promise<void>): Promise<void> {
  try {
    await api.trash(d.id);
    await reload();
    toast(t('movedToTrash', { title: d.title || t('untitled') }), {
      label: t('undo'),
      run: () => void restore(d, reload),
    });
  } catch (err) {
    toast(t('serverError', { message: (err as Error).message }));
  }
}

async function restore(d: DocMeta, reload: () => Promise<void>): Promise<void> {
  try {
    await api.restore(d.id);
    await reload();
    toast(t('restored', { title: d.title || t('untitled') }));
  } catch (err) {
    toast(t('serverError', { message: (err as Error).message }));
  }
}
