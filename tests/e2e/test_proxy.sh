#!/usr/bin/env bash
# End-to-end: berth as a pull-through cache (proxy.remoteurl) of Debian's docker-registry on
# loopback, anonymous, behind htpasswd and behind the project's token server: skopeo pulls
# through berth byte for byte, the store is Distribution's layout, cached images still pull with
# the upstream stopped, push and delete answer 405 UNSUPPORTED, an upstream dying mid-blob leaves
# nothing linked (and the next pull succeeds), a short TTL expires what was fetched, leaving the
# store as Distribution leaves it and its scheduler-state.json.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_berth

step "generate test images"
IMG="$WORK/img"
E2E_BIG_SIZE=${E2E_BIG_SIZE:-104857600} make_images "$IMG"

n_pull=0
# pull_check IMAGE REF [copy args]: skopeo pulls REF (through berth) into a dir: copy that must
# be byte-identical to IMAGE.
pull_check() {
  local img=$1 ref=$2
  shift 2
  n_pull=$((n_pull + 1))
  local out="$WORK/pull/$n_pull"
  mkdir -p "$out"
  sk_copy "docker://$ref" "dir:$out/dir" --preserve-digests "$@"
  assert_same_image "$img" "$out/dir"
  rm -rf "$out"
}

# The big image's largest layer (the 100 MiB one) and its file.
big_layer=$(img_blobs "$IMG/big" | awk '$1 == "L" {print $2}' | while read -r d; do
  f=$(img_blobs "$IMG/big" | awk -v d="$d" '$2 == d {print $3}')
  printf '%s %s\n' "$(stat -c %s "$f")" "$d"
done | sort -n | tail -n1 | cut -d' ' -f2)
big_file=$(img_blobs "$IMG/big" | awk -v d="$big_layer" '$2 == d {print $3}')

step "upstream holds the test images"
start_upstream "$WORK/up"
push_test_images "$UP_HOST" e2e
UP_ANON=$UP_HOST

step "pull through berth (anonymous upstream): bytes match, Distribution's layout"
PROOT="$WORK/proxy1"
DEBUG_PORT=$(free_port)
start_proxy "$PROOT" "http://$UP_HOST" "http:
  debug:
    addr: 127.0.0.1:$DEBUG_PORT
    prometheus:
      enabled: true"
P1=$BERTH_HOST
P1_PID=$BERTH_PID
P1_LOG=$BERTH_LOG
for i in multi big docker; do
  pull_check "$IMG/$i" "$P1/e2e/$i:v1"
  eventually assert_repo_layout "$PROOT" "e2e/$i" v1 "$IMG/$i"
done
pull_check "$IMG/multiarch" "$P1/e2e/multiarch:v1" --all
eventually assert_repo_layout "$PROOT" e2e/multiarch v1 "$IMG/multiarch"
# A second pull is served from the cache: the same bytes.
pull_check "$IMG/big" "$P1/e2e/big:v1"
curl -sf "http://127.0.0.1:$DEBUG_PORT/metrics" >"$WORK/metrics" || fail "no metrics"
# (The blobs not cached were prefetched with their manifests, proxy.prefetch being on: the
# clients joined those fetches, so they count as prefetches rather than as misses.)
for series in 'berth_proxy_requests_total{kind="blob",result="hit"}' 'berth_proxy_prefetches_total{result="started"}' \
  'berth_proxy_requests_total{kind="manifest",result="miss"}' "berth_proxy_upstream_bytes_total{upstream=\"http://$UP_HOST\"}"; do
  v=$(grep -F "$series " "$WORK/metrics" | awk '{print $2}')
  [ -n "$v" ] && [ "$v" -gt 0 ] || fail "metric $series is '$v'"
done

step "ten concurrent pulls of one uncached 100 MiB layer: one upstream GET, every client served"
PC="$WORK/proxyc"
start_proxy "$PC" "http://$UP_HOST"
gets() { grep -c "\"GET /v2/e2e/big/blobs/$big_layer " "$UP_LOG" || true; }
before=$(gets)
url="http://$BERTH_HOST/v2/e2e/big/blobs/$big_layer"
pids=()
# One client that goes away after a megabyte must not abort the fetch for the others.
(curl -s "$url" | head -c 1048576 >/dev/null || true) &
quitter=$!
for i in $(seq 10); do
  curl -sf -o "$WORK/c$i" "$url" &
  pids+=("$!")
done
# One that comes late, once the others are well past the first megabyte, at a slower pace.
(sleep 0.3; curl -sf -o "$WORK/c-late" "$url") &
pids+=("$!")
for pid in "${pids[@]}"; do wait "$pid" || fail "a concurrent pull failed"; done
wait "$quitter"
for f in "$WORK"/c[0-9]* "$WORK/c-late"; do
  cmp -s "$f" "$big_file" || fail "$(basename "$f") got other bytes than the layer"
  rm -f "$f"
done
[ "$(($(gets) - before))" = 1 ] || fail "$(($(gets) - before)) upstream GETs of the layer, want 1"
hex=${big_layer#sha256:}
eventually assert_blob_data "$PC" "$big_layer" "$big_file"
eventually assert_link "$PC/docker/registry/v2/repositories/e2e/big/_layers/sha256/$hex/link" "$big_layer"
stop_server "$BERTH_PID"

step "podman pulls an image not cached yet through berth"
if command -v podman >/dev/null 2>&1; then
  PS="$WORK/podman"
  mkdir -p "$PS/graph"
  set_podman_runroot "$PS"
  pm() {
    podman --root "$PS/graph" --runroot "$RUNROOT" --storage-driver vfs --events-backend none \
      --cgroup-manager cgroupfs "$@"
  }
  if pm info >"$WORK/podman-info.out" 2>&1; then
    pm pull --tls-verify=false --authfile "$WORK/auth.json" --signature-policy "$WORK/policy.json" \
      "$P1/e2e/dockerlist:v1" >"$WORK/podman.out" 2>&1 || { cat "$WORK/podman.out" >&2; fail "podman pull through berth failed"; }
    got=$(pm image inspect --format '{{.Digest}}' "$P1/e2e/dockerlist:v1")
    [ "$got" = "$(img_digest "$IMG/dockerlist")" ] || fail "podman pulled digest $got, want $(img_digest "$IMG/dockerlist")"
    # podman verified every blob's digest as it pulled; the cache holds the list byte for byte.
    eventually assert_link "$PROOT/docker/registry/v2/repositories/e2e/dockerlist/_manifests/tags/v1/current/link" "$got"
  elif [ "${CI:-}" = true ]; then
    cat "$WORK/podman-info.out" >&2
    fail "podman info fails in CI"
  else
    log "podman info fails here: podman step skipped"
  fi
elif [ "${CI:-}" = true ]; then
  fail "podman is not installed in CI"
else
  log "podman is not installed: podman step skipped"
fi

step "answers for what is not cached: HEAD from the upstream, unknown names 404"
PH="$WORK/proxyh"
start_proxy "$PH" "http://$UP_HOST"
cfg_blob=$(img_blobs "$IMG/docker" | awk '$1 == "L" {print $2; exit}')
cfg_file=$(img_blobs "$IMG/docker" | awk '$1 == "L" {print $3; exit}')
curl -sfI "http://$BERTH_HOST/v2/e2e/docker/blobs/$cfg_blob" >"$WORK/head" || fail "HEAD of an uncached blob failed"
grep -qi "^content-length: $(stat -c %s "$cfg_file")" "$WORK/head" || fail "HEAD of an uncached blob: $(cat "$WORK/head")"
grep -qi "^docker-content-digest: $cfg_blob" "$WORK/head" || fail "HEAD of an uncached blob: $(cat "$WORK/head")"
[ ! -e "$PH/docker/registry/v2/repositories/e2e/docker/_layers" ] || fail "a HEAD stored something"
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' "http://$BERTH_HOST/v2/e2e/docker/blobs/sha256:$(printf '%064d' 0)")
[ "$code" = 404 ] && grep -q BLOB_UNKNOWN "$WORK/resp" || fail "an unknown blob answered $code $(cat "$WORK/resp")"
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' "http://$BERTH_HOST/v2/e2e/docker/manifests/nosuchtag")
[ "$code" = 404 ] && grep -q MANIFEST_UNKNOWN "$WORK/resp" || fail "an unknown tag answered $code $(cat "$WORK/resp")"
# A manifest is answered before it is stored: one the cache cannot store (a file where its
# _manifests directory goes) is still served, and the failure logged.
ACCEPT='Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'
mkdir -p "$PH/docker/registry/v2/repositories/e2e/multiarch"
: >"$PH/docker/registry/v2/repositories/e2e/multiarch/_manifests"
code=$(curl -s -o "$WORK/resp" -w '%{http_code}' -H "$ACCEPT" "http://$BERTH_HOST/v2/e2e/multiarch/manifests/v1")
[ "$code" = 200 ] || fail "a manifest the cache cannot store answered $code $(cat "$WORK/resp")"
[ "sha256:$(sha256sum <"$WORK/resp" | cut -d' ' -f1)" = "$(img_digest "$IMG/multiarch")" ] ||
  fail "a manifest the cache cannot store was served with other bytes"
eventually grep -q "cannot store manifest e2e/multiarch@" "$BERTH_LOG" || fail "the store's failure was not logged"
# ... and while it is stored, a pull asking for it again (a HEAD by tag, then a GET by digest, as
# containerd pulls) is served from the cache, never fetched from the upstream again.
top=$(img_digest "$IMG/multi")
mgets() { grep -c "\"GET /v2/e2e/multi/manifests/" "$UP_LOG" || true; }
before=$(mgets)
curl -sf -o /dev/null -I -H "$ACCEPT" "http://$BERTH_HOST/v2/e2e/multi/manifests/v1" || fail "HEAD by tag failed"
curl -sf -o "$WORK/resp" -H "$ACCEPT" "http://$BERTH_HOST/v2/e2e/multi/manifests/$top" || fail "GET by digest failed"
[ "sha256:$(sha256sum <"$WORK/resp" | cut -d' ' -f1)" = "$top" ] || fail "GET by digest: other bytes"
[ "$(($(mgets) - before))" = 1 ] || fail "$(($(mgets) - before)) upstream GETs of the manifest, want 1"
stop_server "$BERTH_PID"

step "tag list comes from the upstream"
tags=$(curl -sf "http://$P1/v2/e2e/multi/tags/list")
[ "$tags" = '{"name":"e2e/multi","tags":["v1"]}' ] || fail "tag list: $tags"

step "push and delete answer 405 UNSUPPORTED"
top=$(img_digest "$IMG/multi")
for req in "POST /v2/e2e/multi/blobs/uploads/" "DELETE /v2/e2e/multi/manifests/$top" \
  "PUT /v2/e2e/multi/manifests/v2" "DELETE /v2/e2e/multi/blobs/$top" "POST /v2/e2e/new/blobs/uploads/"; do
  code=$(curl -s -o "$WORK/resp" -w '%{http_code}' -X "${req%% *}" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary '{}' "http://$P1${req#* }")
  [ "$code" = 405 ] || fail "$req answered $code, want 405"
  grep -q '"UNSUPPORTED"' "$WORK/resp" || fail "$req: $(cat "$WORK/resp")"
done
sk_copy_try "dir:$IMG/docker" "docker://$P1/e2e/pushed:v1" && fail "a push through the cache succeeded"

step "the upstream stopped: cached images still pull"
stop_server "$UP_PID"
pull_check "$IMG/multi" "$P1/e2e/multi:v1"
pull_check "$IMG/multiarch" "$P1/e2e/multiarch:v1" --all
grep -q "serving cached e2e/multi:v1" "$P1_LOG" || fail "the stale tag was not logged"
# Not cached and the upstream down: 503 UNAVAILABLE, not a hang or a crash.
code=$(http_code "http://$P1/v2/e2e/nothere/manifests/v1")
[ "$code" = 503 ] || fail "an uncached tag with the upstream down answered $code, want 503"
stop_server "$P1_PID"

step "the upstream dies mid-blob: nothing linked, the next pull succeeds"
start_upstream "$WORK/up"
CUT_PORTF="$WORK/cut.port"
"$PY" "$BERTH_SRC/tests/fixtures/proxy/cutproxy.py" "$UP_HOST" "$big_layer" "$CUT_PORTF" >"$WORK/cut.log" 2>&1 &
SERVER_PIDS+=("$!")
for _ in $(seq 100); do [ -s "$CUT_PORTF" ] && break; sleep 0.05; done
PROOT2="$WORK/proxy2"
start_proxy "$PROOT2" "http://127.0.0.1:$(cat "$CUT_PORTF")"
sk_copy_try "docker://$BERTH_HOST/e2e/big:v1" "dir:$WORK/cutpull" && fail "a pull across a broken upstream succeeded"
hex=${big_layer#sha256:}
[ ! -e "$PROOT2/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex" ] || fail "a partial blob was stored"
[ ! -e "$PROOT2/docker/registry/v2/repositories/e2e/big/_layers/sha256/$hex" ] || fail "a partial blob was linked"
rm -rf "$WORK/cutpull"
pull_check "$IMG/big" "$BERTH_HOST/e2e/big:v1"
eventually assert_repo_layout "$PROOT2" e2e/big v1 "$IMG/big"
stop_server "$BERTH_PID"

step "a short TTL expires what was fetched; the state is Distribution's scheduler-state.json"
PROOT3="$WORK/proxy3"
start_proxy "$PROOT3" "http://$UP_HOST" "  ttl: 8s"
pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
state="$PROOT3/scheduler-state.json"
for _ in $(seq 60); do [ -s "$state" ] && break; sleep 0.1; done
[ -s "$state" ] || fail "no scheduler-state.json after 6 s"
"$PY" - "$state" "$IMG/multi" <<'PYEOF' || fail "scheduler-state.json: $(cat "$state")"
import json, sys, datetime
state = json.load(open(sys.argv[1]))
assert state, "no entries"
for k, v in state.items():
    assert set(v) == {"Key", "ExpiryData", "EntryType"}, v
    assert v["Key"] == k and k.startswith("e2e/multi@sha256:"), v
    assert v["EntryType"] in (0, 1), v
    datetime.datetime.fromisoformat(v["ExpiryData"].replace("Z", "+00:00"))
assert sorted(v["EntryType"] for v in state.values()).count(1) == 1, state
PYEOF
r="$PROOT3/docker/registry/v2/repositories/e2e/multi"
top=$(img_digest "$IMG/multi")
for _ in $(seq 100); do
  [ -e "$r/_manifests/revisions/sha256/${top#sha256:}" ] || break
  sleep 0.1
done
[ ! -e "$r/_manifests/revisions/sha256/${top#sha256:}" ] || fail "the manifest did not expire"
# Expired blobs go with their data; the manifest's bytes stay for the garbage collection, and
# the tag link stays (naming a revision that is gone): as Distribution leaves the store.
left="docker/registry/v2/blobs/sha256/${top:7:2}/${top#sha256:}/data"
for _ in $(seq 50); do [ "$(cd "$PROOT3" && find docker/registry/v2/blobs -type f)" = "$left" ] && break; sleep 0.1; done
[ "$(cd "$PROOT3" && find docker/registry/v2/blobs -type f)" = "$left" ] ||
  fail "blob data after expiry: $(find "$PROOT3/docker/registry/v2/blobs" -type f)"
[ -z "$(ls "$r/_layers/sha256")" ] || fail "layer links left after expiry"
assert_link "$r/_manifests/tags/v1/current/link" "$top"
for _ in $(seq 80); do [ "$(cat "$state")" = "{}" ] && break; sleep 0.1; done
[ "$(cat "$state")" = "{}" ] || fail "expired entries stay in the state: $(cat "$state")"
# And the next pull fetches it again.
pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
stop_server "$BERTH_PID"

step "upstream behind htpasswd: berth pulls with proxy.username and proxy.password"
stop_server "$UP_PID"
need_cmd htpasswd apache2-utils
htpasswd -Bbc "$WORK/up.htpasswd" mirror 'mirror pass' 2>/dev/null
start_upstream "$WORK/up" "  htpasswd:
    realm: upstream
    path: $WORK/up.htpasswd"
start_proxy "$WORK/proxy4" "http://$UP_HOST" "  username: mirror
  password: mirror pass"
pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
eventually assert_repo_layout "$WORK/proxy4" e2e/multi v1 "$IMG/multi"
stop_server "$BERTH_PID"
# Wrong credentials: the upstream refuses, and berth says it cannot get the image.
start_proxy "$WORK/proxy5" "http://$UP_HOST" "  username: mirror
  password: wrong"
sk_copy_try "docker://$BERTH_HOST/e2e/multi:v1" "dir:$WORK/refused" && fail "a pull with wrong upstream credentials succeeded"
stop_server "$BERTH_PID"
stop_server "$UP_PID"

step "upstream behind the token server: berth follows the Bearer flow and reuses its token"
start_token_upstream '{"e2e/multi": ["pull"], "e2e/big": ["pull"]}'
start_proxy "$WORK/proxy6" "http://$UP_HOST" "  username: mirror
  password: mirror pass"
pull_check "$IMG/multi" "$BERTH_HOST/e2e/multi:v1"
pull_check "$IMG/big" "$BERTH_HOST/e2e/big:v1"
eventually assert_repo_layout "$WORK/proxy6" e2e/big v1 "$IMG/big"
# One token per repository, reused for every call of both pulls.
for repo in multi big; do
  n=$(grep -c "GET /token?.*scope=repository%3Ae2e%2F$repo%3Apull" "$WORK/tokenserver.log" || true)
  [ "$n" = 1 ] || fail "the token server was asked $n times for e2e/$repo (log: $(cat "$WORK/tokenserver.log"))"
done
# Only the very first call met a 401 (its challenge named the realm): the second repository's
# token was asked of that realm before its first call, not after a 401 of its own.
# (docker-registry logs a request it refuses as "error authorizing context", with its user agent.)
n=$(grep 'error authorizing context' "$UP_LOG" | grep -c 'useragent="\?berth/' || true)
[ "$n" = 1 ] || fail "berth met $n 401 answers from the upstream for two repositories (want 1)"
# A repository the account may not pull: the upstream refuses, nothing is served.
code=$(http_code "http://$BERTH_HOST/v2/e2e/docker/manifests/v1")
[ "$code" = 503 ] || fail "a manifest the upstream refuses answered $code"

step "the token server down: the token not had is logged; the upstream down too: no token asked before each call"
stop_server "$TOKEN_PID"
# The token asked for before the call (the realm known from another repository's 401) fails: said
# in the log, as the 401 that follows names the same realm and is not asked again.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 "http://$BERTH_HOST/v2/e2e/notoken1/manifests/v1" || true)
[ "$code" != 200 ] || fail "a manifest with no token to be had answered 200"
grep -q "no token for e2e/notoken1" "$BERTH_LOG" || fail "berth did not log the token it could not get for e2e/notoken1"
stop_server "$UP_PID"
# The first call after the upstream stops still asks for its token first (the last call had an
# answer); once a call had none, the next goes straight to its own tries.
curl -s -o /dev/null --max-time 60 "http://$BERTH_HOST/v2/e2e/notoken2/manifests/v1" || true
grep -q "no token for e2e/notoken2" "$BERTH_LOG" || fail "berth did not ask a token for e2e/notoken2 (the upstream's last call had an answer)"
curl -s -o /dev/null --max-time 60 "http://$BERTH_HOST/v2/e2e/notoken3/manifests/v1" || true
! grep -q "no token for e2e/notoken3" "$BERTH_LOG" ||
  fail "berth asked a token for e2e/notoken3 before its call though the upstream's last call had no answer"
stop_server "$BERTH_PID"
