#!/usr/bin/env bash
# End-to-end: berth as a pull-through cache asks its upstream's /v2/ as it starts, as
# Distribution's proxy does (Debian's docker-registry on loopback as the upstream): the request is
# in the upstream's access log before any client asked anything; behind the project's token
# server the first pull's first call carries its token (the only 401 berth meets is the ping's);
# an upstream down at start-up is one warning and the pull works once it is up; berth stopped
# while the ping waits on an upstream that never answers exits at once, cleanly (in a sanitizer
# build, without a report).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_berth

step "generate a test image"
IMG="$WORK/img"
make_images "$IMG" --only multi

# berth_calls LOG: the upstream's access-log lines of berth's requests ("GET /v2/ ..." lines).
berth_calls() { grep '^[0-9.]* - .*"berth/' "$1" || true; }

step "upstream holds the test image"
start_upstream "$WORK/up"
sk_copy "$(img_ref "$IMG/multi")" "docker://$UP_HOST/e2e/multi:v1" --preserve-digests
UP_PORT=${UP_HOST##*:}
UP_CFG="$WORK/upstream-$UP_PORT.yml"

step "berth asks its upstream's /v2/ as it starts, before any client request"
start_proxy "$WORK/proxy1" "http://$UP_HOST"
eventually grep -q '"GET /v2/ HTTP/1.1" 200 .*"berth/' "$UP_LOG" || fail "berth did not ask the upstream's /v2/ at start-up"
n=$(berth_calls "$UP_LOG" | wc -l)
[ "$n" = 1 ] || fail "berth made $n requests to the upstream at start-up (want the one GET /v2/): $(berth_calls "$UP_LOG")"
stop_berth_cleanly

step "upstream down at start-up: berth starts, says so once, and pulls once it is up"
stop_server "$UP_PID"
DEBUG_PORT=$(free_port)
start_proxy "$WORK/proxy2" "http://$UP_HOST" "http:
  debug:
    addr: 127.0.0.1:$DEBUG_PORT
    prometheus:
      enabled: true"
eventually grep -q "upstream http://$UP_HOST: no answer to /v2/ at start-up" "$BERTH_LOG" ||
  fail "berth did not log the upstream it could not reach at start-up"
n=$(grep -c "upstream http://$UP_HOST" "$BERTH_LOG" || true)
[ "$n" = 1 ] || fail "berth logged $n lines about the upstream down at start-up (want 1): $(cat "$BERTH_LOG")"
# The ping is tried once, and its failure is not an upstream error.
curl -sf "http://127.0.0.1:$DEBUG_PORT/metrics" >"$WORK/metrics" || fail "no metrics"
for family in errors retries; do
  v=$(grep -F "berth_proxy_upstream_${family}_total{upstream=\"http://$UP_HOST\"} " "$WORK/metrics" | awk '{print $2}')
  [ "$v" = 0 ] || fail "berth_proxy_upstream_${family}_total is '$v' after the ping's failure (want 0)"
done
# The same upstream, on the same port, comes up.
# shellcheck disable=SC2046
_start_server docker-registry "$WORK/upstream-again.log" "$UP_PORT" \
  env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') docker-registry serve "$UP_CFG" ||
  fail "the upstream would not start again on port $UP_PORT"
UP_PID=$SERVER_PID
mkdir -p "$WORK/pull"
sk_copy "docker://$BERTH_HOST/e2e/multi:v1" "dir:$WORK/pull/after-down" --preserve-digests
assert_same_image "$IMG/multi" "$WORK/pull/after-down"
stop_berth_cleanly
stop_server "$UP_PID"

step "upstream behind the token server: the first pull's first call carries its token"
start_token_upstream '{"e2e/multi": ["pull"]}'
start_proxy "$WORK/proxy3" "http://$UP_HOST" "  username: mirror
  password: mirror pass"
# docker-registry logs a request it refuses as "error authorizing context", with its URI and
# user agent: the ping's 401 taught berth the realm.
eventually grep -q 'error authorizing context.*http.request.uri=/v2/ .*useragent="\?berth/' "$UP_LOG" ||
  fail "berth's ping at start-up did not meet the upstream's 401"
sk_copy "docker://$BERTH_HOST/e2e/multi:v1" "dir:$WORK/pull/token" --preserve-digests
assert_same_image "$IMG/multi" "$WORK/pull/token"
n=$(grep 'error authorizing context' "$UP_LOG" | grep 'useragent="\?berth/' | grep -vc 'http.request.uri=/v2/ ' || true)
[ "$n" = 0 ] || fail "the pull's calls met $n 401 answers from the upstream (want none): $(grep 'error authorizing context' "$UP_LOG" | grep 'berth/')"
n=$(grep 'error authorizing context' "$UP_LOG" | grep -c 'useragent="\?berth/' || true)
[ "$n" = 1 ] || fail "berth met $n 401 answers from the upstream (want 1, the ping's): $(grep 'error authorizing context' "$UP_LOG")"
n=$(grep -c "GET /token?.*scope=repository%3Ae2e%2Fmulti%3Apull" "$WORK/tokenserver.log" || true)
[ "$n" = 1 ] || fail "the token server was asked $n times for e2e/multi (log: $(cat "$WORK/tokenserver.log"))"
n=$(grep -c "GET /token?" "$WORK/tokenserver.log" || true)
[ "$n" = 1 ] || fail "the token server was asked $n times in all (want 1: the pull's pre-fetch; the ping asks none) (log: $(cat "$WORK/tokenserver.log"))"
stop_berth_cleanly

step "berth stopped while its ping waits on an upstream that never answers: exits at once, cleanly"
# A listener that accepts and never answers (stops by itself after 120 s).
portf="$WORK/silent.port"
"$PY" -c '
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
s.settimeout(120)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
try:
    while True:
        c, _ = s.accept()
        held.append(c)
        with open(sys.argv[2], "a") as f:
            f.write("accepted\n")
except socket.timeout:
    pass
' "$portf" "$WORK/silent.accepted" &
SILENT_PID=$!
SERVER_PIDS+=("$SILENT_PID")
eventually test -s "$portf" || fail "the silent listener did not start"
start_proxy "$WORK/proxy4" "http://127.0.0.1:$(cat "$portf")"
eventually test -s "$WORK/silent.accepted" || fail "berth did not connect to its upstream at start-up"
stop_berth_cleanly
! grep -q "no answer to /v2/" "$BERTH_LOG" || fail "the ping cancelled by the shutdown was logged as a failure"
