#!/usr/bin/env bash
# Installs what Dure's tests need on a fresh Debian machine. Idempotent: a step whose result is
# already there does nothing. Run as root (apt-get) from anywhere:
#
#   infra/install-test-deps.sh            # every step
#   infra/install-test-deps.sh js         # only the named steps
#
# Steps, in order (add new ones to STEPS and write a step_NAME function):
#   node  node >= 20 and npm, from Debian's packages if missing
#   js    tests/js/node_modules from the committed lockfile (npm ci), if missing or stale
#   s3    moto's S3 server (pinned) in a Python venv at $TOOLS/venv-moto (about 1.5 min)
#   s3s   s3s-fs (pinned), the signature-checking S3 server, into $TOOLS/cargo
#         (compiled by cargo install: about 8 min on 2 cores)
#   web   clients/web/node_modules (npm ci): to check the committed app bundle (check-bundle.sh)
#   e2e   Debian's chromium (and Korean fonts) if missing, tests/e2e/node_modules (playwright-core)
#   rtjs  tests/richtext-js/node_modules (npm ci): TipTap + y-prosemirror for collab's richtext_js test
#   turn  Debian's coturn (turnserver), the TURN relay for the WebRTC tests (tests/src/turn.rs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Test tools live outside the checkout, so that a fresh clone (CI) reuses them: building
# s3s-fs takes minutes. Override with DURE_TEST_TOOLS (tests/src/s3.rs reads the same).
TOOLS="${DURE_TEST_TOOLS:-${HOME:-/root}/.cache/dure-test-tools}"
STEPS=(node js s3 s3s web e2e rtjs turn)
# 20: npm oidc-provider 9 (tests/js/idp.mjs, the test OpenID provider) needs node >= 20.18.
MIN_NODE_MAJOR=20
MOTO_VERSION=5.2.5
# Newer s3s-fs versions need a newer rustc than this project's toolchain.
S3S_FS_VERSION=0.14.1

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

# npm_ci_once DIR: npm ci from DIR's lockfile unless node_modules already matches it.
npm_ci_once() {
  local dir="$ROOT/$1" stamp
  stamp="$dir/node_modules/.dure-lock-sha256"
  [[ -f $dir/package-lock.json ]] || die "$dir/package-lock.json is missing"
  command -v npm >/dev/null || die "npm missing: run the node step first"
  if [[ -f $stamp && "$(cat "$stamp")" == "$(lock_hash "$dir")" ]]; then
    log "$1/node_modules up to date"
    return
  fi
  log "npm ci in $1"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) \
    || die "npm ci in $dir failed"
  lock_hash "$dir" >"$stamp"
  log "$1/node_modules installed"
}

step_js() {
  npm_ci_once tests/js
}

step_web() {
  npm_ci_once clients/web
}

step_e2e() {
  # playwright-core cannot download browsers here: it drives Debian's chromium. Korean fonts
  # so that the Korean UI renders (and its screenshots show text, not boxes).
  if [[ ! -x /usr/bin/chromium ]] || ! fc-list 2>/dev/null | grep -qi nanum; then
    apt_install chromium fonts-nanum fonts-noto-core
  fi
  [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium still missing after installing chromium"
  npm_ci_once tests/e2e
}

step_rtjs() {
  npm_ci_once tests/richtext-js
}

step_turn() {
  # tests/src/turn.rs runs turnserver in the foreground with its own config file: Debian's
  # service (disabled by default in /etc/default/coturn) is never started.
  if ! command -v turnserver >/dev/null; then
    apt_install coturn
  fi
  command -v turnserver >/dev/null || die "turnserver still missing after installing coturn"
  log "turnserver ok ($(command -v turnserver))"
}

step_s3() {
  local venv="$TOOLS/venv-moto" stamp want="moto[server]==$MOTO_VERSION"
  stamp="$venv/.dure-installed"
  if [[ -x $venv/bin/moto_server && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    log "moto $MOTO_VERSION up to date in $TOOLS/venv-moto"
    return
  fi
  command -v python3 >/dev/null || apt_install python3 python3-venv
  # Debian splits venv/ensurepip into python3-venv.
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  log "installing $want into $TOOLS/venv-moto (about 1.5 min; pip shows its progress)"
  python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  # Not --quiet: a newcomer's first run must show that something is happening.
  "$venv/bin/pip" install --progress-bar off --disable-pip-version-check "$want" \
    || die "pip install $want failed"
  [[ -x $venv/bin/moto_server ]] || die "moto_server missing from $venv after installing $want"
  printf '%s' "$want" >"$stamp"
  log "moto $MOTO_VERSION installed"
}

step_s3s() {
  local root="$TOOLS/cargo"
  if [[ -x $root/bin/s3s-fs ]] \
    && grep -q "\"s3s-fs $S3S_FS_VERSION " "$root/.crates.toml" 2>/dev/null; then
    log "s3s-fs $S3S_FS_VERSION up to date in $TOOLS/cargo"
    return
  fi
  command -v cargo >/dev/null || die "cargo missing: install the Rust toolchain first"
  log "cargo install s3s-fs@$S3S_FS_VERSION (compiles; about 8 minutes on 2 cores; cargo shows its progress)"
  # Not --quiet: cargo's "Compiling …" lines are the only sign of progress for minutes.
  cargo install "s3s-fs@$S3S_FS_VERSION" --features binary --locked --root "$root" \
    || die "cargo install s3s-fs@$S3S_FS_VERSION failed"
  log "s3s-fs $S3S_FS_VERSION installed"
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
