#!/usr/bin/env bash
# End-to-end: berth on an S3 bucket (Ceph's RADOS Gateway on loopback, tests/fixtures/s3/), next
# to Debian's docker-registry (Distribution 2.8.2) and its s3 driver on the same bucket.
#
# Checks: storage.s3 keys berth does not implement, a missing bucket
# and refused credentials are each one clear line at start-up; `berth garbage-collect` on a
# bucket filled by Distribution (--dry-run deletes nothing and announces what the real run
# deletes; the real run deletes the blobs of a deleted image, keeps every byte of the tagged
# one, which Distribution then serves, and leaves nothing for Distribution's own collector).
# Then berth serving the bucket: skopeo pushes and pulls every kind of test image byte for
# byte (a 12 MiB layer spans three 5 MiB parts); Distribution and berth on the same bucket and
# rootdirectory, each pulling what the other pushed; faults: a proxy answering 503 SlowDown to
# every third S3 request (clients see nothing), the S3 server killed mid-push (503 with the
# spec's error body, nothing partial linked or lost, the push goes on once it is back).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_berth

step "start radosgw"
start_rgw registry

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
    regionendpoint: ${S3_ENDPOINT_OVERRIDE:-$S3_ENDPOINT}
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

s3_config "$WORK/berth.yml" >/dev/null

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

# ---------- berth serving the bucket ----------

# pull_same HOST REF IMAGE [copy args]: skopeo pulls HOST/REF into a dir: copy identical to IMAGE.
n_pull=0
pull_same() {
  n_pull=$((n_pull + 1))
  mkdir -p "$WORK/pull"
  sk_copy "docker://$1/$2" "dir:$WORK/pull/$n_pull" --preserve-digests "${@:4}"
  assert_same_image "$3" "$WORK/pull/$n_pull"
  rm -rf "$WORK/pull/$n_pull"
}
# pull_all HOST PREFIX IMGDIR: pull_same of every test image pushed by push_test_images.
pull_all() {
  local i all
  for i in multi big docker multiarch dockerlist; do
    all=()
    case $i in multiarch | dockerlist) all=(--all) ;; esac
    pull_same "$1" "$2/$i:v1" "$3/$i" "${all[@]}"
  done
}
# start_berth_s3 CONFIG PORT LOG: berth serve CONFIG; sets BERTH_PID.
start_berth_s3() {
  _start_server berth "$3" "$2" env -u AWS_CA_BUNDLE "$BERTH_BIN" serve "$1" || fail "berth would not start on s3 (log $3)"
  BERTH_PID=$SERVER_PID
}

step "berth on s3: skopeo pushes and pulls every kind of image byte for byte"
IMG="$WORK/img-berth"
make_images "$IMG" --big-size $((12 << 20)) --salt berth
BERTH_PORT=$(s3_config "$WORK/berth-serve.yml")
start_berth_s3 "$WORK/berth-serve.yml" "$BERTH_PORT" "$WORK/berth.log"
BH=127.0.0.1:$BERTH_PORT
push_test_images "$BH" b
pull_all "$BH" b "$IMG"

step "interop: Distribution 2.8.2 on the same bucket pulls what berth pushed"
_start_server docker-registry "$WORK/dist3.log" "$DIST_PORT" env -u AWS_CA_BUNDLE docker-registry serve "$WORK/dist.yml" ||
  fail "docker-registry would not start again"
DH=127.0.0.1:$DIST_PORT
pull_all "$DH" b "$IMG"

step "interop: Distribution serves the blobs berth stored straight at their keys (monolithic uploads)"
"$PY" -c 'import os,sys; sys.stdout.buffer.write(os.urandom(int(sys.argv[1])))' $((12 << 20)) >"$WORK/mono"
MONO_DIGEST=sha256:$(sha256sum "$WORK/mono" | cut -d' ' -f1)
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/octet-stream' \
  --data-binary @"$WORK/mono" "http://$BH/v2/b/mono/blobs/uploads/?digest=$MONO_DIGEST")
[ "$code" = 201 ] || fail "monolithic POST to berth answered $code"
head -c $((7 << 20)) "$WORK/mono" >"$WORK/mono2"
MONO2_DIGEST=sha256:$(sha256sum "$WORK/mono2" | cut -d' ' -f1)
LOC=$(curl -s -D - -o /dev/null -X POST "http://$BH/v2/b/mono/blobs/uploads/" | tr -d '\r' | sed -n 's/^Location: //Ip')
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
  --data-binary @"$WORK/mono2" "http://$BH$LOC?digest=$MONO2_DIGEST")
[ "$code" = 201 ] || fail "POST then PUT to berth answered $code"
for got in "$MONO_DIGEST mono" "$MONO2_DIGEST mono2"; do
  set -- $got
  curl -sL -o "$WORK/mono.got" "http://$DH/v2/b/mono/blobs/$1"
  cmp -s "$WORK/$2" "$WORK/mono.got" || fail "Distribution serves $1 differently from what berth stored"
done
open_uploads=$(curl -s --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
  -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT/$S3_BUCKET/?prefix=e2e%2Fdocker%2Fregistry%2Fv2%2Fblobs%2F&uploads=" |
  { grep -o '<Upload>' || true; } | wc -l)
[ "$open_uploads" = 0 ] || fail "$open_uploads multipart uploads left open on blob keys after the monolithic uploads"

step "interop: berth pulls what Distribution pushed"
IMG="$WORK/img-dist"
make_images "$IMG" --big-size $((12 << 20)) --salt dist
push_test_images "$DH" d
pull_all "$BH" d "$IMG"
[ "$(curl -s "http://$BH/v2/d/multi/tags/list")" = '{"name":"d/multi","tags":["v1"]}' ] ||
  fail "berth does not list the tag Distribution pushed"

step "faults: 503 SlowDown on every third S3 request: pushes and pulls go through"
"$PY" "$BERTH_SRC/tests/fixtures/s3/faultproxy.py" --upstream "$S3_ENDPOINT" --every 3 \
  --port-file "$WORK/proxy.port" --count-file "$WORK/proxy.faults" --max-seconds 600 &
PROXY_PID=$!
SERVER_PIDS+=("$PROXY_PID")
for _ in $(seq 100); do [ -s "$WORK/proxy.port" ] && break; sleep 0.05; done
[ -s "$WORK/proxy.port" ] || fail "faultproxy did not start"
FAULTY_PORT=$(S3_ENDPOINT_OVERRIDE="http://127.0.0.1:$(cat "$WORK/proxy.port")" s3_config "$WORK/berth-faulty.yml")
start_berth_s3 "$WORK/berth-faulty.yml" "$FAULTY_PORT" "$WORK/berth-faulty.log"
FH=127.0.0.1:$FAULTY_PORT
IMG="$WORK/img-berth"
for i in multi big; do sk_copy "$(img_ref "$IMG/$i")" "docker://$FH/f/$i:v1" --preserve-digests; done
pull_same "$FH" f/multi:v1 "$IMG/multi"
pull_same "$FH" f/big:v1 "$IMG/big"
faults=$(cat "$WORK/proxy.faults")
[ "$faults" -ge 10 ] || fail "only $faults requests were answered SlowDown"
log "$faults S3 requests answered 503 SlowDown, all retried"
if grep -q 'level=error' "$WORK/berth-faulty.log"; then
  grep 'level=error' "$WORK/berth-faulty.log" | head -5 >&2
  fail "berth logged errors although every request went through on a retry"
fi
stop_server "$SERVER_PID"

step "faults: the S3 server killed mid-push answers 503 with the error body, nothing partial stays"
RGW_PID=$(cat "$RGW_DIR/run/client.rgw.pid")
"$PY" -c 'import os,sys; sys.stdout.buffer.write(os.urandom(int(sys.argv[1])))' $((9 << 20)) >"$WORK/blob"
BLOB_DIGEST=sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)
head -c $((6 << 20)) "$WORK/blob" >"$WORK/blob.a"
tail -c +$(((6 << 20) + 1)) "$WORK/blob" >"$WORK/blob.b"
LOC=$(curl -s -D - -o /dev/null -X POST "http://$BH/v2/k/blob/blobs/uploads/" | tr -d '\r' | sed -n 's/^Location: //Ip')
[ -n "$LOC" ] || fail "no upload location"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/octet-stream' \
  -H "Content-Range: 0-$(((6 << 20) - 1))" --data-binary @"$WORK/blob.a" "http://$BH$LOC")
[ "$code" = 202 ] || fail "first PATCH answered $code"
kill -9 "$RGW_PID"
code=$(curl -s -o "$WORK/err.json" -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
  --data-binary @"$WORK/blob.b" "http://$BH$LOC?digest=$BLOB_DIGEST")
[ "$code" = 503 ] || { cat "$WORK/err.json" >&2; fail "the PUT with S3 down answered $code, want 503"; }
json_get "$WORK/err.json" 'j["errors"][0]["code"]' | grep -qx UNAVAILABLE ||
  { cat "$WORK/err.json" >&2; fail "no UNAVAILABLE error body"; }
sk_copy_try "$(img_ref "$IMG/multi")" "docker://$BH/k/multi:v1" --preserve-digests &&
  fail "skopeo pushed with the S3 server down"
log "skopeo with the S3 server down: $(tail -n 1 "$WORK/last-copy.out")"

step "faults: once the S3 server is back the push goes on where it was"
CEPH_CONF="$RGW_DIR/ceph.conf" radosgw -n client.rgw
for _ in $(seq 300); do [ "$(http_code "$S3_ENDPOINT/")" = 200 ] && break; sleep 0.1; done
[ "$(http_code -I "http://$BH/v2/k/blob/blobs/$BLOB_DIGEST")" = 404 ] || fail "a blob was linked by the failed PUT"
range=$(curl -s -D - -o /dev/null "http://$BH$LOC" | tr -d '\r' | sed -n 's/^Range: //Ip')
[ "$range" = "0-$(((6 << 20) - 1))" ] || fail "the upload's status after the fault is '$range'"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
  --data-binary @"$WORK/blob.b" "http://$BH$LOC?digest=$BLOB_DIGEST")
[ "$code" = 201 ] || fail "the PUT once S3 is back answered $code"
curl -s -o "$WORK/blob.got" "http://$BH/v2/k/blob/blobs/$BLOB_DIGEST"
cmp -s "$WORK/blob" "$WORK/blob.got" || fail "the blob pulled differs from the one pushed"
sk_copy "$(img_ref "$IMG/multi")" "docker://$BH/k/multi:v1" --preserve-digests
pull_same "$BH" k/multi:v1 "$IMG/multi"
