import { errorText } from './i18n';
// The HTTP API (docs/api.md). Same origin, session cookie sent automatically; a 401 anywhere
// means the session is gone, which the app turns into the sign-in page.

export type Role = 'owner' | 'editor' | 'viewer';
export type Scope = 'all' | 'mine' | 'shared' | 'org' | 'trash';

export interface Config {
  mode: 'oidc' | 'local';
  login: string | null;
}

export interface Me {
  id: string;
  name: string;
  email?: string | null;
  groups: string[];
  admin: boolean;
  mode: 'oidc' | 'local';
}

export type Share =
  | { kind: 'user'; id: string; name?: string; email?: string; role: Role }
  | { kind: 'group'; id: string; name?: string; role: Role }
  | { kind: 'org'; role: Role };

export interface DocMeta {
  id: string;
  title: string;
  owner: { id: string; name: string };
  role: Role;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
  purge_at?: string | null;
  org_wide?: boolean;
  shares?: Share[];
}

/** A meeting as the HTTP API shows it (docs/realtime.md). */
export interface MeetingView {
  slug: string;
  url: string;
  title: string;
  access: 'invited' | 'organisation' | 'guests';
  doc_id: string | null;
  role: 'host' | 'participant';
  ended: boolean;
}

export interface MeetingInvite {
  id: string;
  secret: string;
  link: string;
  expires_at: string;
}

export interface User {
  id: string;
  name: string;
  email?: string | null;
}

/** An answer other than 2xx, or no answer at all (`offline`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  get offline(): boolean {
    return this.status === 0;
  }
}

let onUnauthenticated: () => void = () => {};
/** What to do when any call answers 401 (the app shows the sign-in page). */
export function setUnauthenticatedHandler(fn: () => void): void {
  onUnauthenticated = fn;
}

async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  let res: Response;
  const init: RequestInit = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    if (typeof body === 'string') {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
    }
  }
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'offline', navigator.onLine ? 'the server did not answer' : 'offline');
  }
  if (res.status === 401) {
    onUnauthenticated();
  }
  if (!res.ok) {
    let code = 'http_' + res.status;
    let message = res.statusText || code;
    try {
      const err = (await res.json()) as { error?: string; message?: string };
      if (err.error) code = err.error;
      if (err.message) message = err.message;
    } catch {
      // not JSON: keep the status text
    }
    // The server's sentence is generic English; the app shows its own translation.
    throw new ApiError(res.status, code, errorText(code, message));
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

const enc = encodeURIComponent;

export const api = {
  config: () => call<Config>('GET', '/api/config'),
  me: () => call<Me>('GET', '/api/me'),
  logout: () => call<{ redirect: string | null }>('POST', '/auth/logout'),
  list: (scope: Scope, q: string) =>
    call<{ docs: DocMeta[] }>('GET', `/api/docs?scope=${scope}${q ? '&q=' + enc(q) : ''}`),
  get: (id: string) => call<DocMeta>('GET', `/api/docs/${enc(id)}`),
  create: (title: string) => call<DocMeta>('POST', '/api/docs', { title }),
  rename: (id: string, title: string) => call<DocMeta>('PATCH', `/api/docs/${enc(id)}`, { title }),
  trash: (id: string) => call<unknown>('DELETE', `/api/docs/${enc(id)}`),
  restore: (id: string) => call<DocMeta>('POST', `/api/docs/${enc(id)}/restore`),
  share: (id: string, share: { kind: 'user' | 'group' | 'org'; id?: string; role: Role }) =>
    call<DocMeta>('POST', `/api/docs/${enc(id)}/shares`, share),
  revoke: (id: string, kind: 'user' | 'group' | 'org', subject?: string) =>
    call<DocMeta>(
      'DELETE',
      kind === 'org' ? `/api/docs/${enc(id)}/shares/org` : `/api/docs/${enc(id)}/shares/${kind}/${enc(subject ?? '')}`,
    ),
  users: (q: string) => call<{ users: User[] }>('GET', `/api/users?q=${enc(q)}`),
  createMeeting: (title: string, docId: string | null) =>
    call<MeetingView>('POST', '/api/meetings', { title, doc_id: docId }),
  updateMeeting: (slug: string, fields: { access?: MeetingView['access'] }) =>
    call<MeetingView>('PATCH', `/api/meetings/${enc(slug)}`, fields),
  createInvite: (slug: string) => call<MeetingInvite>('POST', `/api/meetings/${enc(slug)}/invites`, {}),
  importMarkdown: (title: string, markdown: string) =>
    call<DocMeta>('POST', `/api/docs/import?title=${enc(title)}`, markdown, {
      'Content-Type': 'text/markdown; charset=utf-8',
    }),
};

/** URL of the server-side export (a download; the browser sends the cookie). */
export function exportUrl(id: string, format: 'md' | 'html' | 'txt'): string {
  return `/api/docs/${enc(id)}/export?format=${format}`;
}

// Small offline cache of API answers in localStorage, so that the list and a document's title
// still show after a reload without network. Keyed per user: a shared computer must not show
// one person's list to the next.
const CACHE_PREFIX = 'dure:cache:';

export function cachePut(key: string, value: unknown): void {
  try {
    localStorage.setItem(CACHE_PREFIX + key, JSON.stringify(value));
  } catch {
    // quota or private mode: the cache is only a convenience
  }
}

export function cacheGet<T>(key: string): T | null {
  const raw = localStorage.getItem(CACHE_PREFIX + key);
  if (raw === null) return null;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return null;
  }
}
