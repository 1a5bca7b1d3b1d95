#!/usr/bin/env bash
# End-to-end: berth as a pull-through cache gives its upstream's credentials only to a token realm
# inside the upstream's trust boundary (Distribution's rule, registry/proxy/proxyauth.go). Debian's
# docker-registry on 127.0.0.1 as the upstream, the project's token server on 127.0.0.2 as its
# realm (Linux answers on all of 127.0.0.0/8): the realm is refused the credentials, with
# proxy.username/password and with a credential helper (which is not even run); the token is
# asked anonymously (the token server's log shows no Authorization header), berth warns once
# naming the realm's host, and the pull fails with the spec's error JSON. The same token server
# on 127.0.0.1 (the upstream's host, another port) gets the credentials and the pull works.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_cmd openssl
need_berth

HELPER="$BERTH_SRC/tests/fixtures/proxy/credhelper.sh"
IMG="$WORK/img"
make_images "$IMG" --only multi

step "the upstream holds the test image"
start_upstream "$WORK/up"
sk_copy "$(img_ref "$IMG/multi")" "docker://$UP_HOST/e2e/multi:v1" --preserve-digests
stop_server "$UP_PID"

# refused_pull NAME: two pulls of e2e/multi through berth fail, the manifest with the spec's error
# JSON; the token server was asked (its log from line TOKEN_LOG_FROM on), never with an
# Authorization header; berth warned once.
refused_pull() {
  local tokens="$WORK/tokens-$1"
  sk_copy_try "docker://$BERTH_HOST/e2e/multi:v1" "dir:$WORK/pull-$1" && fail "the pull succeeded with an anonymous token"
  local code
  code=$(curl -s -o "$WORK/body-$1" -w '%{http_code}' --max-time 60 "http://$BERTH_HOST/v2/e2e/multi/manifests/v1" || true)
  case $code in 4* | 5*) ;; *) fail "the manifest answered $code" ;; esac
  "$PY" -c 'import json, sys; e = json.load(open(sys.argv[1]))["errors"]; assert e and e[0]["code"], e' \
    "$WORK/body-$1" || fail "the manifest's $code is not the spec's error JSON: $(cat "$WORK/body-$1")"
  tail -n +"$TOKEN_LOG_FROM" "$WORK/tokenserver.log" >"$tokens"
  grep -q 'GET /token?.*scope=repository%3Ae2e%2Fmulti%3Apull' "$tokens" || fail "no token was asked (log: $(cat "$tokens"))"
  ! grep 'GET /token?' "$tokens" | grep -v 'authorization=none$' ||
    fail "the token server outside the trust boundary was sent credentials"
  local n
  n=$(grep -c "token realm host '127.0.0.2:[0-9]*' is outside the upstream's trust boundary" "$BERTH_LOG" || true)
  [ "$n" = 1 ] || fail "berth logged the refused realm $n times (want 1): $(grep -i realm "$BERTH_LOG")"
}

step "realm on 127.0.0.2, upstream on 127.0.0.1: username and password are withheld"
start_token_upstream '{"e2e/multi": ["pull"]}' 127.0.0.2
start_proxy "$WORK/proxy1" "http://$UP_HOST" "  username: mirror
  password: mirror pass"
TOKEN_LOG_FROM=1
refused_pull userpass
stop_berth_cleanly

step "realm on 127.0.0.2: a credential helper is not run for it"
HDIR="$WORK/helper"
mkdir -p "$HDIR"
printf 'mirror' >"$HDIR/user"
printf 'mirror pass' >"$HDIR/secret"
TOKEN_LOG_FROM=$(($(wc -l <"$WORK/tokenserver.log") + 1))
CREDHELPER_DIR=$HDIR start_proxy "$WORK/proxy2" "http://$UP_HOST" "  exec:
    command: $HELPER"
refused_pull exec
[ ! -s "$HDIR/runs" ] || fail "the credential helper was run: $(cat "$HDIR/runs")"
stop_berth_cleanly
stop_server "$UP_PID"
stop_server "$TOKEN_PID"

step "realm on 127.0.0.1, another port than the upstream's: the credentials are sent, the pull works"
start_token_upstream '{"e2e/multi": ["pull"]}' 127.0.0.1
start_proxy "$WORK/proxy3" "http://$UP_HOST" "  username: mirror
  password: mirror pass"
mkdir -p "$WORK/pull"
sk_copy "docker://$BERTH_HOST/e2e/multi:v1" "dir:$WORK/pull/trusted" --preserve-digests
assert_same_image "$IMG/multi" "$WORK/pull/trusted"
grep -q 'GET /token?.*scope=repository%3Ae2e%2Fmulti%3Apull.* authorization=basic$' "$WORK/tokenserver.log" ||
  fail "the token was not asked with the credentials (log: $(cat "$WORK/tokenserver.log"))"
! grep -q 'outside the upstream.s trust boundary' "$BERTH_LOG" || fail "berth refused a realm on the upstream's host"
stop_berth_cleanly
