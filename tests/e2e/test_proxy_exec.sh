#!/usr/bin/env bash
# End-to-end: the pull-through cache's credential helper (proxy.exec, and exec in an entry of
# proxy.upstreams), with Debian's docker-registry as the upstream behind htpasswd and behind the
# project's token server, and tests/fixtures/proxy/credhelper.sh as the helper (it counts its
# runs in a file). Pulls work with what the helper prints; it runs once without a lifetime, again
# once its lifetime has passed; it is told the upstream's host (the token realm's host for a
# token); a failing helper gives the client what wrong credentials give, is logged, and is run
# again on the next pull; a hanging one is killed at the timeout; the configuration refusals.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_cmd htpasswd apache2-utils
need_cmd openssl
need_berth

HELPER="$BERTH_SRC/tests/fixtures/proxy/credhelper.sh"
IMG="$WORK/img"
E2E_BIG_SIZE=1048576 make_images "$IMG"

# helper_dir NAME: a fresh directory for the helper (user, secret, mode, runs). Sets HDIR.
helper_dir() {
  HDIR="$WORK/helper-$1"
  mkdir -p "$HDIR"
  printf 'mirror' >"$HDIR/user"
  printf 'mirror pass' >"$HDIR/secret"
  printf 'ok' >"$HDIR/mode"
}
runs() { if [ -f "$HDIR/runs" ]; then wc -l <"$HDIR/runs"; else echo 0; fi; }

# start_exec_proxy NAME PROXY_YAML: berth on $WORK/NAME with the proxy section PROXY_YAML (indented
# under proxy:), its helper's directory HDIR. Sets what start_berth sets.
start_exec_proxy() {
  local dir="$WORK/$1"
  mkdir -p "$dir"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/root\nproxy:\n%s\n' "$dir" "$2" >"$dir/config.yml"
  CREDHELPER_DIR=$HDIR BERTH_CONFIG="$dir/config.yml" start_berth "$dir/root"
}

n_pull=0
pull_check() { # IMAGE REF: skopeo pulls REF, byte for byte IMAGE
  n_pull=$((n_pull + 1))
  sk_copy "docker://$2" "dir:$WORK/pull$n_pull" --preserve-digests
  assert_same_image "$1" "$WORK/pull$n_pull"
  rm -rf "$WORK/pull$n_pull"
}

# error_of URL: "<status> <first error code>" of a GET.
error_of() {
  local code
  code=$(curl -s --max-time 120 -o "$WORK/resp" -w '%{http_code}' "$1" || true)
  printf '%s %s' "$code" "$(json_get "$WORK/resp" 'j["errors"][0]["code"]' 2>/dev/null || echo none)"
}

step "upstream behind htpasswd holds the test images"
start_upstream "$WORK/up"
for i in multi docker; do sk_copy "$(img_ref "$IMG/$i")" "docker://$UP_HOST/e2e/$i:v1" --preserve-digests; done
stop_server "$UP_PID"
htpasswd -Bbc "$WORK/up.htpasswd" mirror 'mirror pass' 2>/dev/null
start_upstream "$WORK/up" "  htpasswd:
    realm: upstream
    path: $WORK/up.htpasswd"
[ "$(http_code "http://$UP_HOST/v2/")" = 401 ] || fail "the upstream does not ask for credentials"

step "no lifetime: the helper runs once, told the upstream's host, and its credentials pull"
helper_dir once
start_exec_proxy once "  remoteurl: http://$UP_HOST
  exec:
    command: $HELPER"
pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
pull_check "$IMG/docker" "$BERTH_HOST/e2e/docker:v1"
[ "$(cat "$HDIR/runs")" = "get $UP_HOST" ] || fail "helper runs: $(cat "$HDIR/runs"), want one 'get $UP_HOST'"
stop_server "$BERTH_PID"

step "a lifetime: the helper runs again once it has passed"
helper_dir lifetime
start_exec_proxy lifetime "  remoteurl: http://$UP_HOST
  exec:
    command: $HELPER
    lifetime: 2s"
pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
before=$(runs)
[ "$before" -ge 1 ] || fail "the helper did not run"
sleep 2.2
pull_check "$IMG/docker" "$BERTH_HOST/e2e/docker:v1"
[ "$(runs)" -gt "$before" ] || fail "the helper did not run again after its lifetime ($(runs) runs)"
stop_server "$BERTH_PID"

step "what wrong credentials give the client"
helper_dir static
start_exec_proxy wrong "  remoteurl: http://$UP_HOST
  username: mirror
  password: wrong"
refused=$(error_of "http://$BERTH_HOST/v2/e2e/multi/manifests/v1")
log "wrong credentials: $refused"
stop_server "$BERTH_PID"

# children PID: the processes whose parent is PID (read from /proc: procps may be missing).
children() {
  local f st ppid
  for f in /proc/[0-9]*/stat; do
    st=$(cat "$f" 2>/dev/null) || continue
    read -r _ ppid _ <<<"${st##*) }"
    [ "$ppid" != "$1" ] || { f=${f#/proc/}; printf '%s ' "${f%/stat}"; }
  done
}

# failing_helper MODE LOGGED: a berth whose helper answers as MODE; a manifest gets what wrong
# credentials get, the log has LOGGED; then the helper is fixed and the next pull works.
failing_helper() {
  helper_dir "$1"
  printf '%s' "$1" >"$HDIR/mode"
  start_exec_proxy "$1" "  remoteurl: http://$UP_HOST
  exec:
    command: $HELPER"
  local got
  got=$(error_of "http://$BERTH_HOST/v2/e2e/multi/manifests/v1")
  [ "$got" = "$refused" ] || fail "a helper in mode $1 answered '$got', wrong credentials '$refused'"
  grep -qF "credential helper '$HELPER get' for $UP_HOST: $2" "$BERTH_LOG" || fail "not logged: $2"
  kill -0 "$BERTH_PID" || fail "berth died"
  [ -z "$(children "$BERTH_PID")" ] || fail "a helper is left running: pid $(children "$BERTH_PID")"
  printf 'ok' >"$HDIR/mode"
  pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
  stop_server "$BERTH_PID"
}

step "a failing helper: the same answer, logged, run again on the next pull"
failing_helper fail "exit status 1: credentials not found in native keychain"

step "a hanging helper is killed after 10 s: the same answer, berth goes on"
failing_helper hang "it did not finish within 10000 ms: killed"

step "proxy.upstreams: an entry's exec, told that upstream's host"
helper_dir upstreams
start_exec_proxy upstreams "  upstreams:
    - prefix: mirror
      remoteurl: http://$UP_HOST
      exec:
        command: $HELPER
        lifetime: 1h"
pull_check "$IMG/multi" "$BERTH_HOST/mirror/e2e/multi:v1"
[ "$(cat "$HDIR/runs")" = "get $UP_HOST" ] || fail "helper runs: $(cat "$HDIR/runs")"
stop_server "$BERTH_PID"
stop_server "$UP_PID"

step "upstream behind the token server: the helper is told the realm's host"
start_token_upstream '{"e2e/multi": ["pull"]}'
helper_dir token
start_exec_proxy token "  remoteurl: http://$UP_HOST
  exec:
    command: $HELPER"
pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
[ "$(cat "$HDIR/runs")" = "get ${TOKEN_URL#http://}" ] || fail "helper runs: $(cat "$HDIR/runs"), want 'get ${TOKEN_URL#http://}'"
grep -q 'GET /token?.*scope=repository%3Ae2e%2Fmulti%3Apull' "$WORK/tokenserver.log" || fail "no token asked"
stop_server "$BERTH_PID"

step "refused at start-up by name; exec beside username and password warns"
refused_config() { # KEY YAML: berth serve exits 1 naming KEY
  local dir="$WORK/bad.$RANDOM" rc=0
  mkdir -p "$dir"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/root\nproxy:\n%s\n' "$dir" "$2" >"$dir/config.yml"
  timeout 10 "$BERTH_BIN" serve "$dir/config.yml" --addr 127.0.0.1:0 >"$dir/out" 2>&1 || rc=$?
  [ "$rc" = 1 ] || fail "berth serve with $1 exited $rc (want 1): $(cat "$dir/out")"
  grep -qF "$1" "$dir/out" || fail "the refusal does not name $1: $(cat "$dir/out")"
}
refused_config 'proxy.exec.command: required with proxy.exec.lifetime' "  remoteurl: http://$UP_HOST
  exec:
    lifetime: 1h"
refused_config 'proxy.upstreams: cannot be combined with' "  exec:
    command: $HELPER
  upstreams:
    - prefix: a
      remoteurl: http://$UP_HOST"
helper_dir warn
start_exec_proxy warn "  remoteurl: http://$UP_HOST
  username: nobody
  password: wrong
  exec:
    command: $HELPER"
grep -qF 'warning: proxy.username and proxy.password are ignored: proxy.exec.command gives the credentials' "$BERTH_LOG" ||
  fail "no warning about the ignored username and password"
pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
stop_server "$BERTH_PID"
