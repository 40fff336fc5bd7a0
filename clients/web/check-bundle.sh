#!/usr/bin/env bash
# Checks that the committed bundle (clients/web/dist, embedded in the dure binary) is what the
# sources build to: type-checks, rebuilds into a temporary directory and compares every file.
# Needs clients/web/node_modules (infra/install-test-deps.sh web). After changing the app,
# run `npm run build` here and commit dist/ with the sources.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -d node_modules ]]; then
  echo "check-bundle: clients/web/node_modules missing: run infra/install-test-deps.sh web" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

npx --no-install tsc --noEmit
npx --no-install vite build --outDir "$tmp/dist" --emptyOutDir --logLevel warn

if ! diff -r dist "$tmp/dist" >"$tmp/diff" 2>&1; then
  echo "check-bundle: clients/web/dist is stale (differs from a fresh build):" >&2
  head -n 40 "$tmp/diff" >&2
  echo "check-bundle: run 'npm run build' in clients/web and commit dist/" >&2
  exit 1
fi
echo "check-bundle: clients/web/dist matches its sources"
