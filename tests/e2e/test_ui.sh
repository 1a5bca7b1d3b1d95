#!/usr/bin/env bash
# The web interface in a real browser: Debian's chromium, headless, driven by playwright-core
# (tests/ui/ui_test.mjs) against berth with htpasswd auth, deletes and ui.enabled, its storage
# holding 10,000 more repositories; then against berth with token auth (the fixture token
# server). Screenshots go to ui-screenshots/ in the build's tests dir.
source "$(dirname "$0")/lib.sh"
e2e_init
need_berth
need_cmd chromium chromium
need_cmd npm npm
need_cmd htpasswd apache2-utils

step "playwright-core (npm ci, once per lock file)"
# Installed beside the build, not in the source tree; again only when the lock file changes.
NODE_DIR="$PWD/ui-node"
if ! cmp -s "$BERTH_SRC/tests/ui/package-lock.json" "$NODE_DIR/package-lock.json" 2>/dev/null ||
  [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
  mkdir -p "$NODE_DIR"
  cp "$BERTH_SRC/tests/ui/package.json" "$BERTH_SRC/tests/ui/package-lock.json" "$NODE_DIR/"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2 || skip "npm ci failed (is the npm registry reachable?)"
fi
cp "$BERTH_SRC/tests/ui/ui_test.mjs" "$NODE_DIR/"

step "berth with htpasswd, deletes and the web interface"
ROOT="$WORK/root"
# 10,000 repositories beside the test's own, to page and filter through (a repository is a
# directory holding _manifests, as in Distribution's catalog walk).
REPOS="$ROOT/docker/registry/v2/repositories/load"
mkdir -p "$REPOS"
(cd "$REPOS" && seq -f 'r%05g/_manifests' 0 9999 | xargs mkdir -p)
dir="$WORK/htpasswd"
mkdir -p "$dir"
htpasswd -Bbc "$dir/htpasswd" alice 'wonder land' 2>/dev/null
cat >"$dir/config.yml" <<CFG
version: 0.1
storage:
  filesystem:
    rootdirectory: $ROOT
  delete:
    enabled: true
auth:
  htpasswd:
    realm: berth-ui
    path: $dir/htpasswd
ui:
  enabled: true
CFG
BERTH_CONFIG="$dir/config.yml" start_berth "$ROOT" --no-access-log
[ "$(http_code "http://$BERTH_HOST/ui/")" = 200 ] || fail "GET /ui/ did not answer 200"

step "the browser test"
SHOTS="$PWD/ui-screenshots"
rm -rf "$SHOTS"
(cd "$NODE_DIR" && timeout 120 node ui_test.mjs htpasswd "http://$BERTH_HOST" alice 'wonder land' "$SHOTS") ||
  fail "the browser test failed (screenshots so far in $SHOTS)"

step "token auth: berth forwards the page's token requests"
TROOT="$WORK/token-root"
tdir="$WORK/token"
make_token_signer "$tdir" "ui token signer"
printf '{"ci-bot": {"password": "s3cret pass", "access": {"tok/app": ["pull", "push"], "tok/other": ["pull"]}}}\n' >"$tdir/users.json"
start_token_server "$tdir/rsa.key" "$tdir/rsa.crt" "$tdir/users.json"
cat >"$tdir/config.yml" <<CFG
version: 0.1
storage:
  filesystem:
    rootdirectory: $TROOT
auth:
  token:
    realm: $TOKEN_URL/token
    service: berth-ui
    issuer: e2e-issuer
    rootcertbundle: $tdir/rsa.crt
ui:
  enabled: true
CFG
BERTH_CONFIG="$tdir/config.yml" start_berth "$TROOT" --no-access-log
(cd "$NODE_DIR" && timeout 120 node ui_test.mjs token "http://$BERTH_HOST" ci-bot 's3cret pass' "$SHOTS") ||
  fail "the browser test with token auth failed (screenshots so far in $SHOTS)"
log "screenshots in $SHOTS"
