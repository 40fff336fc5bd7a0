// Dure's service worker: keeps the app shell (index.html and the hashed assets) so the app
// opens without network after one visit. Documents themselves live in IndexedDB (y-indexeddb)
// and API answers are never cached here. Generated into dist/sw.js by vite.config.js.
const VERSION = '61a6aa74cc71c300';
const SHELL = ["/assets/index-BXAjTU1o.css","/assets/index-DVFxM4Wg.js","/favicon.svg","/"];
const CACHE = 'dure-shell-' + VERSION;
const API = /^\/(api|auth|ws|healthz|readyz|metrics)(\/|$)/;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('dure-shell-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || API.test(url.pathname)) return;
  if (req.mode === 'navigate') {
    // Network first, so a new version is picked up at once; the cached shell when offline.
    event.respondWith(
      fetch(req).catch(() => caches.match('/', { ignoreVary: true, cacheName: CACHE }).then((r) => r || Response.error())),
    );
    return;
  }
  if (url.pathname.startsWith('/assets/')) {
    // Hashed names never change content: the cache is always right.
    // Matched by URL alone: module scripts are requested in CORS mode with an Origin header,
    // and a Vary header from a proxy must not turn a cached asset into a miss.
    event.respondWith(caches.match(url.pathname, { ignoreVary: true, ignoreSearch: true }).then((hit) => hit || fetch(req)));
  }
});
