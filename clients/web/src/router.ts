// History-API routing. Paths: `/` and `/docs` (the list, `?scope=&q=`), `/d/{id}` (a document),
// `/m/{slug}` (a meeting), `/messages` and `/messages/{conversation}` (messaging).

import { CONVERSATION_ID } from './msg/types';

export type Route =
  | { name: 'list'; scope: string; q: string }
  | { name: 'doc'; id: string }
  | { name: 'meet'; slug: string }
  | { name: 'messages'; conv: string | null }
  | { name: 'notfound' };

const DOC_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** Meeting slugs are 13 characters shown with hyphens (docs/realtime.md); allow some slack. */
const MEET_SLUG = /^[a-z0-9-]{1,40}$/;

export function parse(loc: Location | URL = location): Route {
  const path = loc.pathname.replace(/\/+$/, '') || '/';
  if (path === '/' || path === '/docs') {
    const params = new URLSearchParams(loc.search);
    return { name: 'list', scope: params.get('scope') ?? 'all', q: params.get('q') ?? '' };
  }
  const m = /^\/d\/([^/]+)$/.exec(path);
  if (m?.[1]) {
    const id = decodeURIComponent(m[1]);
    if (DOC_ID.test(id)) return { name: 'doc', id };
  }
  const meet = /^\/m\/([^/]+)$/.exec(path);
  if (meet?.[1]) {
    const slug = decodeURIComponent(meet[1]);
    if (MEET_SLUG.test(slug)) return { name: 'meet', slug };
  }
  if (path === '/messages') return { name: 'messages', conv: null };
  const conv = /^\/messages\/([^/]+)$/.exec(path);
  if (conv?.[1] && CONVERSATION_ID.test(conv[1])) return { name: 'messages', conv: conv[1] };
  return { name: 'notfound' };
}

let onChange: () => void = () => {};

export function startRouter(render: () => void): void {
  onChange = render;
  window.addEventListener('popstate', () => onChange());
  // Same-origin links marked data-link navigate without a page load (modified clicks still
  // open new tabs as usual).
  document.addEventListener('click', (e) => {
    const a = (e.target as Element | null)?.closest?.('a[data-link]');
    if (!(a instanceof HTMLAnchorElement)) return;
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(a.pathname + a.search);
  });
  render();
}

export function navigate(path: string, replace = false): void {
  if (path === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  onChange();
}

export function docPath(id: string): string {
  return '/d/' + encodeURIComponent(id);
}

export function meetPath(slug: string): string {
  return '/m/' + encodeURIComponent(slug);
}

export function messagesPath(conv: string | null): string {
  return conv ? '/messages/' + encodeURIComponent(conv) : '/messages';
}
