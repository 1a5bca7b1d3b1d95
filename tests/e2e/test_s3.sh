#!/usr/bin/env bash
# End-to-end: berth on an S3 bucket (Ceph's RADOS Gateway on loopback, tests/fixtures/s3/), next
# to Debian's docker-registry (Distribution 2.8.2) and its s3 driver on the same bucket.
#
# Checks: `berth serve` starts on storage.s3 (its storage calls run on the storage workers,
# tests/api/test_s3_serve.py); storage.s3 keys berth does not implement, a missing bucket
# and refused credentials are each one clear line at start-up; `berth garbage-collect` on a
# bucket filled by Distribution (--dry-run deletes nothing and announces what the real run
# deletes; the real run deletes the blobs of a deleted image, keeps every byte of the tagged
# one, which Distribution then serves, and leaves nothing for Distribution's own collector).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd skopeo
need_cmd curl
need_cmd docker-registry
need_berth
command -v radosgw >/dev/null 2>&1 && command -v ceph-mon >/dev/null 2>&1 ||
  skip "radosgw and ceph-mon are not installed (scripts/install-deps.sh installs them)"

step "start radosgw"
RGW_DIR="$WORK/rgw"
# Stop the gateway before lib.sh's cleanup removes $WORK, keeping the test's status.
trap '_rc=$?; "$BERTH_SRC/tests/fixtures/s3/rgw-down.sh" "$RGW_DIR" >/dev/null 2>&1; (exit $_rc); _e2e_cleanup' EXIT
eval "$("$BERTH_SRC/tests/fixtures/s3/rgw-test-up.sh" "$RGW_DIR" registry)"
log "radosgw at $S3_ENDPOINT, bucket $S3_BUCKET"

# s3_config FILE [extra storage.s3 lines...]: a Distribution config on the test bucket.
s3_config() {
  local f=$1 port
  shift
  port=$(free_port)
  {
    cat <<CFG
version: 0.1
log:
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: $S3_ACCESS_KEY
    secretkey: ${S3_SECRET_OVERRIDE:-$S3_SECRET_KEY}
    region: $S3_REGION
    regionendpoint: $S3_ENDPOINT
    bucket: ${S3_BUCKET_OVERRIDE:-$S3_BUCKET}
    rootdirectory: /e2e
    secure: false
    chunksize: 5242880
CFG
    for l in "$@"; do printf '    %s\n' "$l"; done
    cat <<CFG
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
CFG
  } >"$f"
  echo "$port"
}

step "berth serve starts on storage.s3"
serve_port=$(s3_config "$WORK/berth.yml")
env -u AWS_CA_BUNDLE "$BERTH_BIN" serve "$WORK/berth.yml" >"$WORK/serve.out" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$serve_port/v2/" >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$WORK/serve.out" >&2; fail "berth serve exited on storage.s3"; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$serve_port/v2/" >/dev/null || fail "berth serve on storage.s3 does not answer"
kill -TERM "$serve_pid"
wait "$serve_pid" || fail "berth serve on storage.s3 did not stop cleanly"

# gc_refuses WHAT PATTERN [extra s3 lines]: garbage-collect stops at start-up with PATTERN.
gc_refuses() {
  local what=$1 pattern=$2
  shift 2
  s3_config "$WORK/bad.yml" "$@" >/dev/null
  set +e
  "$BERTH_BIN" garbage-collect --dry-run "$WORK/bad.yml" >"$WORK/bad.out" 2>&1
  local rc=$?
  set -e
  [ "$rc" -eq 1 ] || { cat "$WORK/bad.out" >&2; fail "$what: exit $rc, want 1"; }
  grep -q -- "$pattern" "$WORK/bad.out" || { cat "$WORK/bad.out" >&2; fail "$what: no '$pattern'"; }
  [ "$(wc -l <"$WORK/bad.out")" -eq 1 ] || { cat "$WORK/bad.out" >&2; fail "$what: not one line"; }
}
step "start-up refusals: unimplemented keys, missing bucket, refused credentials"
gc_refuses "usedualstack" "storage.s3.usedualstack is not supported" "usedualstack: true"
gc_refuses "v4auth false" "storage.s3.v4auth: only true is supported" "v4auth: false"
gc_refuses "concurrency" "storage.s3.multipartcopymaxconcurrency is not supported" "multipartcopymaxconcurrency: 8"
gc_refuses "chunksize" "storage.s3.chunksize: expected bytes" "chunksize: 1000"
S3_BUCKET_OVERRIDE=nosuchbucket gc_refuses "missing bucket" "bucket 'nosuchbucket' does not exist"
S3_SECRET_OVERRIDE=wrong gc_refuses "bad secret" "credentials refused"

step "fill the bucket through Distribution's s3 driver"
IMG="$WORK/img"
make_images "$IMG" --only multi
make_images "$WORK/img-gone" --only multi --salt gone
DIST_PORT=$(s3_config "$WORK/dist.yml")
# Distribution 2.8.2's s3 driver panics at start-up with AWS_CA_BUNDLE set.
_start_server docker-registry "$WORK/dist.log" "$DIST_PORT" env -u AWS_CA_BUNDLE docker-registry serve "$WORK/dist.yml" ||
  fail "docker-registry would not start on s3"
DIST_PID=$SERVER_PID
H=127.0.0.1:$DIST_PORT
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/s3/keep:v1" --preserve-digests
sk_copy "$(img_ref "$WORK/img-gone/multi")" "docker://$H/s3/gone:v1" --preserve-digests
GONE_DIGEST=$(img_digest "$WORK/img-gone/multi")
sk_delete "docker://$H/s3/gone@$GONE_DIGEST"
mapfile -t GONE_BLOBS < <(img_blobs "$WORK/img-gone/multi" | awk '$1 == "L" {print $2}')
mapfile -t KEEP_BLOBS < <(img_blobs "$IMG/multi" | awk '$1 == "L" {print $2}')
[ ${#GONE_BLOBS[@]} -gt 0 ] || fail "no blobs in the image to collect"
stop_server "$DIST_PID"

step "berth garbage-collect --dry-run on the bucket deletes nothing"
"$BERTH_BIN" garbage-collect --dry-run "$WORK/berth.yml" >"$WORK/dry.out" 2>"$WORK/dry.err" ||
  { cat "$WORK/dry.err" >&2; fail "dry run failed"; }
grep '^blob eligible for deletion' "$WORK/dry.out" >"$WORK/dry.blobs" || true
for b in "${GONE_BLOBS[@]}"; do
  grep -q "$b" "$WORK/dry.blobs" || { cat "$WORK/dry.out" >&2; fail "dry run does not announce $b"; }
done
for b in "${KEEP_BLOBS[@]}"; do
  if grep -q "$b" "$WORK/dry.blobs"; then cat "$WORK/dry.out" >&2; fail "dry run would delete $b of a tagged image"; fi
done

step "berth garbage-collect on the bucket"
"$BERTH_BIN" garbage-collect "$WORK/berth.yml" >"$WORK/gc.out" 2>"$WORK/gc.err" ||
  { cat "$WORK/gc.err" >&2; fail "garbage-collect failed"; }
diff <(grep 'eligible\|delet' "$WORK/dry.out" | grep -o 'sha256:[0-9a-f]*' | sort -u) \
  <(grep 'eligible\|delet' "$WORK/gc.out" | grep -o 'sha256:[0-9a-f]*' | sort -u) ||
  fail "the real run deleted something else than the dry run announced"

step "Distribution serves the kept image byte for byte; the collected blobs are gone"
_start_server docker-registry "$WORK/dist2.log" "$DIST_PORT" env -u AWS_CA_BUNDLE docker-registry serve "$WORK/dist.yml" ||
  fail "docker-registry would not start again"
DIST_PID=$SERVER_PID
sk_copy "docker://$H/s3/keep:v1" "$(img_ref "$WORK/pulled")" --preserve-digests
assert_same_image "$IMG/multi" "$WORK/pulled"
for b in "${GONE_BLOBS[@]}"; do
  code=$(http_code -I "http://$H/v2/s3/gone/blobs/$b")
  [ "$code" = 404 ] || fail "blob $b of the deleted image answers $code after gc, want 404"
done
stop_server "$DIST_PID"

step "Distribution's own collector finds nothing left to delete"
env -u AWS_CA_BUNDLE docker-registry garbage-collect --dry-run "$WORK/dist.yml" >"$WORK/dist-gc.out" 2>&1 ||
  { tail "$WORK/dist-gc.out" >&2; fail "docker-registry garbage-collect failed"; }
grep -q '0 blobs and 0 manifests eligible for deletion' "$WORK/dist-gc.out" ||
  { tail "$WORK/dist-gc.out" >&2; fail "Distribution would still delete something"; }
