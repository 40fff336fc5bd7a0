import './styles.css';
import { ApiError, api, cacheGet, cachePut, setUnauthenticatedHandler, type Config, type Me } from './api';
import { h, replace } from './dom';
import { onLangChange, t } from './i18n';
import { registerServiceWorker } from './offline';
import { docPage } from './pages/doc';
import { listPage } from './pages/list';
import { meetPage } from './pages/meet';
import { messagesPage } from './pages/messages';
import type { Page } from './pages/page';
import { messagePage, notFoundPage, signInPage } from './pages/simple';
import { parse, startRouter } from './router';
import { session } from './session';

const root = document.getElementById('app') ?? document.body;
let page: Page | null = null;
let build: () => Page = () => messagePage(t('loading'));
let signedOut = false;

/** Shows the page `make` builds; a language change calls it again (or relabels in place). */
function show(make: () => Page): void {
  build = make;
  page?.destroy?.();
  page = make();
  replace(root, h('a', { class: 'skip-link', href: '#main' }, t('skipToContent')), page.el);
}

onLangChange(() => {
  if (page?.relabel) page.relabel();
  else show(build);
});

function render(): void {
  if (signedOut) {
    show(() => signInPage(true));
    return;
  }
  // Moving between conversations keeps the messages page (and its list) in place.
  if (page?.reroute?.(parse())) return;
  show(routePage);
}

function routePage(): Page {
  const route = parse();
  if (route.name === 'list') return listPage(route.scope, route.q);
  if (route.name === 'doc') return docPage(route.id, () => show(build));
  if (route.name === 'meet') return meetPage(route.slug);
  if (route.name === 'messages') return messagesPage(route.conv);
  return notFoundPage();
}

/** Config and identity; cached so that the app starts offline after one visit. */
async function start(): Promise<void> {
  try {
    session.config = await api.config();
    cachePut('config', session.config);
  } catch (err) {
    const cached = cacheGet<Config>('config');
    if (!cached) return fail(err);
    session.config = cached;
  }
  try {
    session.me = await api.me();
    cachePut('me', session.me);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      // Guests with an invite join meetings without an account.
      if (parse().name === 'meet') return startRouter(() => show(routePage));
      show(() => signInPage());
      return;
    }
    const cached = cacheGet<Me>('me');
    if (!(err instanceof ApiError && err.offline) || !cached) return fail(err);
    session.me = cached;
  }
  setUnauthenticatedHandler(() => {
    if (signedOut) return;
    signedOut = true;
    render();
  });
  startRouter(render);
}

function fail(err: unknown): void {
  const offline = err instanceof ApiError && err.offline;
  show(() => messagePage(offline ? t('offlineStart') : t('serverError', { message: (err as Error).message }), () => location.reload()));
}

registerServiceWorker();
void start();
