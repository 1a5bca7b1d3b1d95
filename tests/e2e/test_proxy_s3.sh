#!/usr/bin/env bash
# End-to-end: berth as a pull-through cache (proxy.remoteurl, Debian's docker-registry upstream)
# on S3 storage with the Redis blob descriptor cache, two instances on one bucket root and one
# Redis: skopeo pulls through both at once (the same blobs fetched by both at the same time) byte
# for byte; the bucket holds Distribution's layout, no open multipart upload, and in its
# scheduler-state.json what either instance fetched; with the upstream stopped, cached images
# pull from the bucket and the tag list is the bucket's; a short TTL expires what was fetched
# (in the bucket as Distribution leaves it, and in Redis); an upstream dying mid-blob leaves
# nothing linked or stored on S3, and the next pull succeeds; a HEAD of a blob not cached asks
# the upstream; a client leaving mid-blob does not stop the blob being stored; every instance
# stops cleanly (no sanitizer report in a sanitizer build).
#
# A radosgw of its own (tests/fixtures/s3/), or the one S3_ENDPOINT ... S3_BUCKET name (as
# rgw-test-up.sh prints them). Not a step of test_s3_suites.sh: that one already takes most of
# its 15 minutes in a loaded make test.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_berth
need_cmd redis-server
[ -n "${S3_ENDPOINT:-}" ] || start_rgw proxy

step "generate test images; the upstream holds them; Redis"
IMG="$WORK/img"
# 12 MiB: the big layer is three 5 MiB parts of a multipart upload.
E2E_BIG_SIZE=${E2E_BIG_SIZE:-$((12 << 20))} make_images "$IMG"
start_distribution "$WORK/up"
UP=$DIST_HOST
UP_PID=$DIST_PID
for i in multi big; do
  sk_copy "$(img_ref "$IMG/$i")" "docker://$UP/e2e/$i:v1" --preserve-digests
done
REDIS_PORT=$(free_port)
"$BERTH_SRC/tests/fixtures/s3/redis-up.sh" "$WORK/redis" "$REDIS_PORT"
SERVER_PIDS+=("$(cat "$WORK/redis/redis.pid")")

# The big image's largest layer and its file.
big_layer=$(img_blobs "$IMG/big" | awk '$1 == "L" {print $2}' | while read -r d; do
  f=$(img_blobs "$IMG/big" | awk -v d="$d" '$2 == d {print $3}')
  printf '%s %s\n' "$(stat -c %s "$f")" "$d"
done | sort -n | tail -n1 | cut -d' ' -f2)
hex=${big_layer#sha256:}
big_file=$(img_blobs "$IMG/big" | awk -v d="$big_layer" '$2 == d {print $3}')

BERTH_PIDS=()
# start_proxy S3_ROOT REMOTE [TTL] [DB]: berth on S3 below /S3_ROOT with the Redis cache (Redis
# database DB, default 0: one per store, as the cache describes one store), caching REMOTE
# (host:port) for TTL (default 1h), blob GETs of what is cached redirected to the bucket
# (Distribution's default). Sets BERTH_HOST, BERTH_PID, BERTH_LOG.
start_proxy() {
  local cfg="$WORK/proxy-$1-$RANDOM.yml"
  {
    echo "version: 0.1"
    s3_storage_yaml "/$1"
    cat <<CFG
  cache:
    blobdescriptor: redis
redis:
  addr: 127.0.0.1:$REDIS_PORT
  db: ${4:-0}
proxy:
  remoteurl: http://$2
  ttl: ${3:-1h}
CFG
  } >"$cfg"
  BERTH_HOST=""
  for _ in 1 2 3; do
    BERTH_PORT=$(free_port)
    BERTH_LOG="$WORK/berth-$BERTH_PORT.log"
    # As start_berth: no REGISTRY_* variable leaks in.
    # shellcheck disable=SC2046
    if _start_server berth "$BERTH_LOG" "$BERTH_PORT" env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') \
      "$BERTH_BIN" serve "$cfg" --addr "127.0.0.1:$BERTH_PORT"; then
      BERTH_HOST=127.0.0.1:$BERTH_PORT
      BERTH_PID=$SERVER_PID
      BERTH_PIDS+=("$SERVER_PID")
      break
    fi
  done
  [ -n "$BERTH_HOST" ] || fail "berth would not start (see $BERTH_LOG)"
  log "berth pid $BERTH_PID on $BERTH_HOST caching $2 on bucket $S3_BUCKET below /$1 (log $BERTH_LOG)"
}

# try_view_root S3_ROOT DIR: DIR becomes a copy of the bucket's objects below /S3_ROOT;
# $WORK/open-uploads lists the multipart uploads open there. Fails when an object listed is
# gone before it is read (an upload session removed meanwhile): for polling while berth works.
try_view_root() {
  mkdir -p "$2"
  "$PY" "$BERTH_SRC/tests/fixtures/s3/s3mirror.py" "$1" "$2" >"$WORK/open-uploads" 2>"$WORK/s3mirror.err"
}
# view_root S3_ROOT DIR: try_view_root once berth is done writing there.
view_root() {
  try_view_root "$1" "$2" || fail "cannot copy the bucket's objects: $(cat "$WORK/s3mirror.err")"
}

n_pull=0
mkdir -p "$WORK/pull"
# pull HOST IMAGE: skopeo pulls HOST/e2e/IMAGE:v1 into a dir: copy, which must be byte-identical.
pull() {
  n_pull=$((n_pull + 1))
  sk_copy "docker://$1/e2e/$2:v1" "dir:$WORK/pull/$n_pull" --preserve-digests
  assert_same_image "$IMG/$2" "$WORK/pull/$n_pull"
  rm -rf "$WORK/pull/$n_pull"
}

step "two instances on one bucket root and one Redis pull through the cache, both at once"
S3_ROOT="proxy-$$-$RANDOM"
start_proxy "$S3_ROOT" "$UP"
A=$BERTH_HOST
start_proxy "$S3_ROOT" "$UP"
B=$BERTH_HOST
B_LOG=$BERTH_LOG
pull "$A" multi
# The same uncached blobs fetched from the upstream by both instances at the same time: each
# into its own multipart upload, the links written twice with the same bytes.
pids=()
for h in "$A" "$B"; do
  (n_pull=$((100 + ${#pids[@]})); pull "$h" big) &
  pids+=("$!")
done
for pid in "${pids[@]}"; do wait "$pid" || fail "a concurrent pull through one of the instances failed"; done
# Once more through each: served from the bucket (GETs redirected to it).
pull "$B" big
pull "$A" big

step "the bucket holds Distribution's layout, scheduler-state.json and no open upload"
ROOT="$WORK/view"
state="$ROOT/scheduler-state.json"
# Each instance merges what the other saved into its own and writes it back (every 5 s): what
# only A fetched (e2e/multi) and what both did (e2e/big) end up in it, whoever writes last.
multi_top=$(img_digest "$IMG/multi")
for _ in $(seq 100); do
  try_view_root "$S3_ROOT" "$ROOT" || { sleep 0.2; continue; }
  [ -s "$state" ] && grep -q "e2e/big@$big_layer" "$state" && grep -q "e2e/multi@$multi_top" "$state" && break
  sleep 0.2
done
assert_repo_layout "$ROOT" e2e/multi v1 "$IMG/multi"
assert_repo_layout "$ROOT" e2e/big v1 "$IMG/big"
[ ! -s "$WORK/open-uploads" ] || fail "multipart uploads left open: $(cat "$WORK/open-uploads")"
[ -z "$(find "$ROOT/docker/registry/v2/repositories" -path '*/_uploads/*' -type f)" ] ||
  fail "upload sessions left: $(find "$ROOT/docker/registry/v2/repositories" -path '*/_uploads/*' -type f)"
"$PY" - "$state" "$big_layer" "$multi_top" <<'PYEOF' || fail "scheduler-state.json: $(cat "$state")"
import json, sys, datetime
state, layer, top = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
for k, v in state.items():
    assert set(v) == {"Key", "ExpiryData", "EntryType"} and v["Key"] == k, v
    assert v["EntryType"] in (0, 1), v
    expiry = datetime.datetime.fromisoformat(v["ExpiryData"].replace("Z", "+00:00"))
    assert expiry > datetime.datetime.now(datetime.timezone.utc), v
assert state.get("e2e/big@" + layer, {}).get("EntryType") == 0, state
assert state.get("e2e/multi@" + top, {}).get("EntryType") == 1, state
PYEOF

step "a short TTL expires what was fetched from the bucket and from Redis"
TTL_ROOT="proxyttl-$$-$RANDOM"
start_proxy "$TTL_ROOT" "$UP" 3s 1
T=$BERTH_HOST
pull "$T" multi
multi_layer=$(img_blobs "$IMG/multi" | awk '$1 == "L" {print $2; exit}')
# A HEAD puts the layer's descriptor in Redis for this repository.
[ "$(http_code -I "http://$T/v2/e2e/multi/blobs/$multi_layer")" = 200 ] || fail "HEAD of a cached layer"
TTL_VIEW="$WORK/ttlview"
r="$TTL_VIEW/docker/registry/v2/repositories/e2e/multi"
# Every layer link, not only the first blob's: with prefetch the blobs are stored in no set order,
# so each expires at its own time.
for _ in $(seq 60); do
  try_view_root "$TTL_ROOT" "$TTL_VIEW" && [ -z "$(find "$r/_layers" -name link 2>/dev/null)" ] &&
    [ ! -e "$r/_manifests/revisions/sha256/${multi_top#sha256:}" ] && break
  sleep 0.2
done
view_root "$TTL_ROOT" "$TTL_VIEW"
[ -z "$(find "$r/_layers" -name link)" ] || fail "layer links left after expiry: $(find "$r/_layers" -name link)"
[ ! -e "$r/_manifests/revisions/sha256/${multi_top#sha256:}" ] || fail "the manifest did not expire"
# The blobs' data went with them; the manifest's bytes stay, as Distribution leaves the store.
left="docker/registry/v2/blobs/sha256/${multi_top:7:2}/${multi_top#sha256:}/data"
[ "$(cd "$TTL_VIEW" && find docker/registry/v2/blobs -type f)" = "$left" ] ||
  fail "blob data after expiry: $(cd "$TTL_VIEW" && find docker/registry/v2/blobs -type f)"

step "the upstream stopped: cached images pull from the bucket, the tag list is the bucket's"
tags=$(curl -sf "http://$B/v2/e2e/multi/tags/list") || fail "tag list through the cache failed"
[ "$tags" = '{"name":"e2e/multi","tags":["v1"]}' ] || fail "tag list from the upstream: $tags"
stop_server "$UP_PID"
tags=$(curl -sf "http://$B/v2/e2e/multi/tags/list") || fail "tag list with the upstream down failed"
[ "$tags" = '{"name":"e2e/multi","tags":["v1"]}' ] || fail "tag list from the bucket: $tags"
pull "$B" multi
pull "$B" big
grep -q "serving cached e2e/multi:v1" "$B_LOG" || fail "the stale tag was not logged"
code=$(http_code "http://$B/v2/e2e/nothere/manifests/v1")
[ "$code" = 503 ] || fail "an uncached tag with the upstream down answered $code, want 503"
# The expired layer is not served from a stale Redis entry: it is not cached any more, and the
# upstream cannot be asked.
code=$(http_code -I "http://$T/v2/e2e/multi/blobs/$multi_layer")
[ "$code" = 503 ] || fail "HEAD of an expired layer with the upstream down answered $code, want 503"

step "the upstream dies mid-blob: nothing linked or stored on S3, the next pull succeeds"
start_distribution "$WORK/up"
CUT_PORTF="$WORK/cut.port"
"$PY" "$BERTH_SRC/tests/fixtures/proxy/cutproxy.py" "$DIST_HOST" "$big_layer" "$CUT_PORTF" >"$WORK/cut.log" 2>&1 &
SERVER_PIDS+=("$!")
for _ in $(seq 100); do [ -s "$CUT_PORTF" ] && break; sleep 0.05; done
[ -s "$CUT_PORTF" ] || fail "the cutting proxy did not start (log: $(cat "$WORK/cut.log"))"
CUT_ROOT="proxycut-$$-$RANDOM"
start_proxy "$CUT_ROOT" "127.0.0.1:$(cat "$CUT_PORTF")" 1h 2
# The layer alone: its body breaks off, so the client's transfer fails.
got=$(curl -s -o "$WORK/cut.blob" -w '%{size_download}' "http://$BERTH_HOST/v2/e2e/big/blobs/$big_layer" || true)
[ "$got" -lt "$(stat -c %s "$big_file")" ] ||
  fail "a blob cut off upstream reached the client whole ($got bytes)"
# The fetch's cancel (the multipart upload aborted, the session removed) may still be under way.
CUT_VIEW="$WORK/cutview"
for _ in $(seq 50); do
  try_view_root "$CUT_ROOT" "$CUT_VIEW" || { sleep 0.2; continue; }
  [ ! -s "$WORK/open-uploads" ] && [ -z "$(find "$CUT_VIEW" -path '*/_uploads/*' -type f 2>/dev/null)" ] && break
  sleep 0.1
done
[ ! -e "$CUT_VIEW/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex" ] || fail "a partial blob was stored"
[ ! -e "$CUT_VIEW/docker/registry/v2/repositories/e2e/big/_layers/sha256/$hex" ] || fail "a partial blob was linked"
[ ! -s "$WORK/open-uploads" ] || fail "the broken fetch left its multipart upload open: $(cat "$WORK/open-uploads")"
[ -z "$(find "$CUT_VIEW" -path '*/_uploads/*' -type f 2>/dev/null)" ] || fail "the broken fetch left its upload session"
pull "$BERTH_HOST" big
view_root "$CUT_ROOT" "$CUT_VIEW"
assert_repo_layout "$CUT_VIEW" e2e/big v1 "$IMG/big"

step "a client leaving mid-blob does not stop the fetch: the blob is stored on S3 all the same"
QUIT_ROOT="proxyquit-$$-$RANDOM"
start_proxy "$QUIT_ROOT" "$DIST_HOST" 1h 3
# A HEAD of a blob not cached asks the upstream for its size and stores nothing.
curl -sfI "http://$BERTH_HOST/v2/e2e/big/blobs/$big_layer" >"$WORK/head" || fail "HEAD of an uncached blob failed"
grep -qi "^content-length: $(stat -c %s "$big_file")" "$WORK/head" || fail "HEAD of an uncached blob: $(cat "$WORK/head")"
(curl -s "http://$BERTH_HOST/v2/e2e/big/blobs/$big_layer" | head -c 1048576 >/dev/null) || true
QUIT_VIEW="$WORK/quitview"
link="$QUIT_VIEW/docker/registry/v2/repositories/e2e/big/_layers/sha256/$hex/link"
for _ in $(seq 50); do
  try_view_root "$QUIT_ROOT" "$QUIT_VIEW" && [ -s "$link" ] && [ ! -s "$WORK/open-uploads" ] && break
  sleep 0.2
done
view_root "$QUIT_ROOT" "$QUIT_VIEW"
assert_link "$link" "$big_layer"
assert_blob_data "$QUIT_VIEW" "$big_layer" "$big_file"
[ ! -s "$WORK/open-uploads" ] || fail "multipart uploads left open: $(cat "$WORK/open-uploads")"

step "every berth stops cleanly (in a sanitizer build, without a report)"
for pid in "${BERTH_PIDS[@]}"; do
  kill "$pid" 2>/dev/null || true
  rc=0
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || fail "berth pid $pid exited with status $rc"
done
if grep -l -e 'Sanitizer' -e 'runtime error' "$WORK"/berth-*.log >&2; then fail "sanitizer reports in berth's logs"; fi
