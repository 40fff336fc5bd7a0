#!/usr/bin/env bash
# Installs what Dure's tests need on a fresh Debian machine. Idempotent: a step whose result is
# already there does nothing. Run as root (apt-get) from anywhere:
#
#   infra/install-test-deps.sh            # every step
#   infra/install-test-deps.sh js         # only the named steps
#
# Steps, in order (add new ones to STEPS and write a step_NAME function):
#   node  node >= 18 and npm, from Debian's packages if missing
#   js    tests/js/node_modules from the committed lockfile (npm ci), if missing or stale
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEPS=(node js)
MIN_NODE_MAJOR=18

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

APT_UPDATED=0
# apt_install PKG...: installs Debian packages, running apt-get update once per run.
apt_install() {
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install $* (rerun as root)"
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    || die "apt-get install $* failed"
}

step_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  command -v node >/dev/null || die "node still missing after installing nodejs"
  command -v npm >/dev/null || die "npm still missing after installing npm"
  local version major
  version="$(node --version)" || die "node --version failed"
  major="${version#v}"
  major="${major%%.*}"
  [[ $major =~ ^[0-9]+$ && $major -ge $MIN_NODE_MAJOR ]] \
    || die "node $version is too old: the JS test clients need node >= $MIN_NODE_MAJOR"
  log "node $version, npm $(npm --version) ok"
}

# The lockfile hash recorded after a successful `npm ci`; node_modules is stale when it differs.
lock_hash() { sha256sum "$1/package-lock.json" | cut -d' ' -f1; }

step_js() {
  local dir="$ROOT/tests/js" stamp
  stamp="$dir/node_modules/.dure-lock-sha256"
  [[ -f $dir/package-lock.json ]] || die "$dir/package-lock.json is missing"
  command -v npm >/dev/null || die "npm missing: run the node step first"
  if [[ -f $stamp && "$(cat "$stamp")" == "$(lock_hash "$dir")" ]]; then
    log "tests/js/node_modules up to date"
    return
  fi
  log "npm ci in tests/js"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) \
    || die "npm ci in $dir failed"
  lock_hash "$dir" >"$stamp"
  log "tests/js/node_modules installed"
}

main() {
  local steps=("$@") step
  [[ ${#steps[@]} -gt 0 ]] || steps=("${STEPS[@]}")
  for step in "${steps[@]}"; do
    declare -F "step_$step" >/dev/null || die "unknown step '$step' (known: ${STEPS[*]})"
  done
  for step in "${steps[@]}"; do
    "step_$step"
  done
  log "done"
}

main "$@"
