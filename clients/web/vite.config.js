// Vite build for the browser app. The output (dist/) is committed and embedded in the dure
// binary, so the build must be reproducible: content-hashed names, no timestamps, and a
// service worker whose cache list and version are derived from the files themselves.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { defineConfig } from 'vite';

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]))
    .sort();
}

/** Writes dist/sw.js from src/sw.template.js: the app shell list and a content version. */
function serviceWorker() {
  let outDir = 'dist';
  return {
    name: 'dure-service-worker',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      const files = filesUnder(outDir)
        .map((f) => '/' + relative(outDir, f).split(sep).join('/'))
        .filter((f) => f !== '/sw.js');
      const hash = createHash('sha256');
      for (const f of files) hash.update(f).update('\0').update(readFileSync(join(outDir, f)));
      const template = readFileSync(new URL('./src/sw.template.js', import.meta.url), 'utf8');
      const sw = template
        .replace('__VERSION__', hash.digest('hex').slice(0, 16))
        .replace('__SHELL__', JSON.stringify(files.map((f) => (f === '/index.html' ? '/' : f))));
      writeFileSync(join(outDir, 'sw.js'), sw);
    },
  };
}

const DURE = process.env.DURE_URL || 'http://127.0.0.1:8080';

/** Presents proxied requests as coming from dure's own origin. */
function sameOrigin(proxy) {
  const origin = new URL(DURE).origin;
  proxy.on('proxyReq', (req) => req.getHeader('origin') && req.setHeader('origin', origin));
  proxy.on('proxyReqWs', (req) => req.setHeader('origin', origin));
}

export default defineConfig({
  plugins: [serviceWorker()],
  build: {
    target: 'es2022',
    sourcemap: false,
    // One predictable layout: assets/[name]-[hash].ext, hashes from content only.
    assetsDir: 'assets',
    chunkSizeWarningLimit: 1200,
    modulePreload: { polyfill: false },
  },
  server: {
    // `npm run dev` against a local `dure` (cargo run --release, port 8080): the API and the
    // sockets are proxied, with the Origin dure expects (it refuses foreign origins).
    proxy: Object.fromEntries(
      ['/api', '/auth', '/ws'].map((path) => [path, { target: DURE, ws: path === '/ws', configure: sameOrigin }]),
    ),
  },
});
