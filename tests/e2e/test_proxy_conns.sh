#!/usr/bin/env bash
# End-to-end: berth as a pull-through cache keeps its upstream connections between calls,
# whichever of its threads makes them. Cold calls one after the other go over one connection;
# a cold skopeo pull makes fewer connections than calls. Counted in the upstream's log (each
# request's remote address and port), never timed.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_berth

step "generate test images; the upstream holds them"
IMG="$WORK/img"
E2E_BIG_SIZE=1048576 make_images "$IMG"
start_distribution "$WORK/up"
UP_LOG=$DIST_LOG
for i in multi docker; do
  sk_copy "$(img_ref "$IMG/$i")" "docker://$DIST_HOST/e2e/$i:v1" --preserve-digests
done

# start_cache ROOT: berth caching the upstream, without prefetch (a manifest's blobs fetched at
# once, each on its connection: the calls counted here are the clients' own, one after the
# other). Sets what start_berth sets.
start_cache() {
  local dir="$WORK/cache.$RANDOM"
  mkdir -p "$dir"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nproxy:\n  remoteurl: http://%s\n  prefetch: false\n' \
    "$1" "$DIST_HOST" >"$dir/config.yml"
  BERTH_CONFIG="$dir/config.yml" start_berth "$1"
}

# berth_calls: "REQUESTS CONNECTIONS" berth made to the upstream so far (its user agent; one
# connection per remote port).
berth_calls() {
  grep 'msg="response completed' "$UP_LOG" | grep 'http.request.useragent="\?berth/' |
    sed -n 's/.*http.request.remoteaddr="\{0,1\}\([^" ]*\).*/\1/p' | sort | uniq -c |
    awk '{r += $1; c++} END {print r + 0, c + 0}'
}

# berth_asked METHOD URI_REGEX: how many such requests berth made to the upstream so far.
berth_asked() {
  grep 'msg="response completed' "$UP_LOG" | grep 'http.request.useragent="\?berth/' |
    grep "http.request.method=\"\?$1\"\? " | grep -c "http.request.uri=\"\?$2\"\? " || true
}

step "cold calls one after the other share one upstream connection"
start_cache "$WORK/cache1"
ACCEPT='application/vnd.oci.image.manifest.v1+json'
curl -sf -H "Accept: $ACCEPT" -o "$WORK/manifest" "http://$BERTH_HOST/v2/e2e/multi/manifests/v1" ||
  fail "manifest by tag through berth"
n=1
for d in $(img_blobs "$IMG/multi" | awk '$1 == "L" {print $2}'); do
  got=$(curl -sf "http://$BERTH_HOST/v2/e2e/multi/blobs/$d" | sha256sum | cut -d' ' -f1)
  [ "sha256:$got" = "$d" ] || fail "blob $d through berth: got sha256:$got"
  n=$((n + 1))
done
[ "$n" -ge 4 ] || fail "the multi image has $((n - 1)) blobs: too few to tell"
# The upstream logs a request after its last byte went out, which berth may already have passed
# on: wait for the lines rather than read the log at once.
calls_at_least() { local r c; read -r r c < <(berth_calls); [ "$r" -ge "$1" ]; }
eventually calls_at_least "$n" || true
read -r requests conns < <(berth_calls)
log "$n cold calls: $requests upstream requests on $conns connections"
[ "$requests" -ge "$n" ] || fail "berth made $requests upstream requests for $n cold calls"
[ "$conns" -eq 1 ] || fail "berth opened $conns upstream connections for $requests requests made one after the other"
# A tag not cached is one GET (no HEAD for its digest: nothing cached to compare it with).
[ "$(berth_asked HEAD '/v2/e2e/multi/manifests/v1')" -eq 0 ] || fail "berth asked for the digest of a tag not cached"
[ "$(berth_asked GET '/v2/e2e/multi/manifests/v1')" -eq 1 ] || fail "berth did not GET the cold tag once"

step "a cached tag is asked with a HEAD: no manifest transfer when it has not moved"
# (The first answer does not wait for the store: the tag is cached once its link is written.)
eventually test -f "$WORK/cache1/docker/registry/v2/repositories/e2e/multi/_manifests/tags/v1/current/link"
curl -sf -H "Accept: $ACCEPT" -o "$WORK/manifest2" "http://$BERTH_HOST/v2/e2e/multi/manifests/v1" ||
  fail "cached tag through berth"
cmp -s "$WORK/manifest" "$WORK/manifest2" || fail "the cached tag's manifest differs from the first answer"
[ "$(berth_asked HEAD '/v2/e2e/multi/manifests/v1')" -ge 1 ] || fail "berth did not ask the upstream for a cached tag's digest"
[ "$(berth_asked GET '/v2/e2e/multi/manifests/v1')" -eq 1 ] || fail "berth fetched a cached tag's manifest again"
[ "$(berth_asked GET '/v2/e2e/multi/manifests/sha256:[0-9a-f]*')" -eq 0 ] || fail "berth fetched a cached manifest by digest"
read -r requests conns < <(berth_calls)
stop_server "$BERTH_PID"

step "a cold skopeo pull makes fewer connections than requests"
start_cache "$WORK/cache2"
mkdir -p "$WORK/pull"
sk_copy "docker://$BERTH_HOST/e2e/docker:v1" "dir:$WORK/pull/docker" --preserve-digests
assert_same_image "$IMG/docker" "$WORK/pull/docker"
read -r requests2 conns2 < <(berth_calls)
requests2=$((requests2 - requests))
conns2=$((conns2 - conns))
log "cold skopeo pull: $requests2 upstream requests on $conns2 connections"
# The tag's HEAD and GET come one after the other: at least those two share one.
[ "$conns2" -ge 1 ] && [ "$conns2" -lt "$requests2" ] ||
  fail "berth opened $conns2 upstream connections for $requests2 requests of a cold pull"

step "blobs not cached of no byte and of less than the first wake-up: answered whole and cached"
# The upload session is opened once the clients have the first 64 KiB, or the whole blob when
# smaller: an empty blob (no body at all) and a small one must still be verified and linked.
EMPTY=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
head -c 1000 /dev/urandom >"$WORK/small.bin"
SMALL="sha256:$(sha256sum "$WORK/small.bin" | cut -d' ' -f1)"
for pair in "$EMPTY:/dev/null" "$SMALL:$WORK/small.bin"; do
  d=${pair%:*}
  f=${pair##*:}
  loc=$(curl -sf -X POST -D - -o /dev/null "http://$DIST_HOST/v2/e2e/docker/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case "$loc" in http*) ;; *) loc="http://$DIST_HOST$loc" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$f" \
    "$loc&digest=$d" -o /dev/null || fail "cannot push blob $d to the upstream"
done
start_cache "$WORK/cache3"
for pair in "$EMPTY:/dev/null" "$SMALL:$WORK/small.bin"; do
  d=${pair%:*}
  f=${pair##*:}
  code=$(curl -s -o "$WORK/got.bin" -w '%{http_code}' "http://$BERTH_HOST/v2/e2e/docker/blobs/$d")
  [ "$code" = 200 ] || fail "blob $d not cached through berth: $code"
  cmp -s "$WORK/got.bin" "$f" || fail "blob $d through berth: other bytes"
  eventually test -f "$WORK/cache3/docker/registry/v2/repositories/e2e/docker/_layers/sha256/${d#sha256:}/link" ||
    fail "blob $d was not cached"
done
stop_server "$BERTH_PID"

step "a blob the ring holds whole reaches the client before any upload session is made"
# A blob of 1 MiB or less is checked against its digest from memory and the client has its last
# byte before the cache opens an upload session for it: with no session to be had (a file where
# the repository's _uploads directory goes), it is still answered whole, only not cached.
mkdir -p "$WORK/cache4/docker/registry/v2/repositories/e2e/docker"
: >"$WORK/cache4/docker/registry/v2/repositories/e2e/docker/_uploads"
start_cache "$WORK/cache4"
curl -sf -o "$WORK/got.bin" "http://$BERTH_HOST/v2/e2e/docker/blobs/$SMALL" ||
  fail "blob $SMALL through berth with no upload session to be had: not answered whole"
cmp -s "$WORK/got.bin" "$WORK/small.bin" || fail "blob $SMALL through berth: other bytes"
eventually grep -q "cannot cache blob e2e/docker@$SMALL" "$BERTH_LOG" ||
  fail "berth did not say it could not cache $SMALL (was an upload session made after all?)"
[ ! -e "$WORK/cache4/docker/registry/v2/repositories/e2e/docker/_layers/sha256/${SMALL#sha256:}/link" ] ||
  fail "blob $SMALL was linked without an upload session"
stop_server "$BERTH_PID"

# assert_mismatch_refused CODE BODY ROOT REPO DIGEST: a client's answer (status CODE, body in
# file BODY) for blob DIGEST of REPO not matching its digest was a 503 UNAVAILABLE, berth logged
# the mismatch, and the cache on ROOT did not link it.
assert_mismatch_refused() {
  [ "$1" = 503 ] || fail "blob $5 not matching its digest through berth: status $1, not 503"
  grep -q '"UNAVAILABLE"' "$2" || fail "blob $5 not matching its digest: no UNAVAILABLE error body"
  eventually grep -q "blob $4@$5 does not match its digest" "$BERTH_LOG" ||
    fail "berth did not log the mismatch of $5"
  [ ! -e "$3/docker/registry/v2/repositories/$4/_layers/sha256/${5#sha256:}/link" ] ||
    fail "blob $5 was linked though it does not match its digest"
}

step "a blob the ring holds whole that does not match its digest: an error status, no byte, nothing linked"
# Its client is answered only once the blob is verified, so a mismatch is told as a status (503)
# rather than as a 200 cut short.
head -c 1000 /dev/urandom >"$WORK/bad.bin"
BAD="sha256:$(sha256sum "$WORK/bad.bin" | cut -d' ' -f1)"
loc=$(curl -sf -X POST -D - -o /dev/null "http://$DIST_HOST/v2/e2e/docker/blobs/uploads/" |
  tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
case "$loc" in http*) ;; *) loc="http://$DIST_HOST$loc" ;; esac
curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/bad.bin" \
  "$loc&digest=$BAD" -o /dev/null || fail "cannot push blob $BAD to the upstream"
hex=${BAD#sha256:}
head -c 1000 /dev/urandom >"$WORK/up/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data" # other bytes upstream
start_cache "$WORK/cache5"
code=$(curl -s -o "$WORK/got.bin" -w '%{http_code}' "http://$BERTH_HOST/v2/e2e/docker/blobs/$BAD" || true)
assert_mismatch_refused "$code" "$WORK/got.bin" "$WORK/cache5" e2e/docker "$BAD"
[ -z "$(ls -A "$WORK/cache5/docker/registry/v2/repositories/e2e/docker/_uploads" 2>/dev/null)" ] ||
  fail "an upload session was left for blob $BAD"
stop_server "$BERTH_PID"

step "a client joining a small blob's fetch held mid-way, the blob not matching its digest: 503 for both, nothing linked"
# The joining client waits for the verdict as the first does: with the headers alone it would get
# a 200 that the mismatch then cuts short. The upstream (a small Python server) sends half the
# body and holds the rest until told: the second client joins while the first half is in.
HELD="sha256:$(printf 'not these bytes' | sha256sum | cut -d' ' -f1)"
HOLD_PORT=$(free_port)
"$PY" - "$HOLD_PORT" "$WORK/held.sent" "$WORK/held.go" <<'PY' >"$WORK/held.log" 2>&1 &
import http.server, os, sys, time
port, sent, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if "/blobs/" not in self.path:
            body = b"{}"
            self.send_response(200 if self.path == "/v2/" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(os.urandom(500))
        self.wfile.flush()
        open(sent, "w").close()
        while not os.path.exists(go):  # held until the test says: no timing in what is checked
            time.sleep(0.05)
        self.wfile.write(os.urandom(500))
        self.wfile.flush()
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
HOLD_PID=$!
SERVER_PIDS+=("$HOLD_PID") # stopped at exit whatever happens
DEBUG_PORT=$(free_port)
mkdir -p "$WORK/cache7cfg"
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nproxy:\n  remoteurl: http://127.0.0.1:%s\nhttp:\n  debug:\n    addr: 127.0.0.1:%s\n    prometheus:\n      enabled: true\n' \
  "$WORK/cache7" "$HOLD_PORT" "$DEBUG_PORT" >"$WORK/cache7cfg/config.yml"
BERTH_CONFIG="$WORK/cache7cfg/config.yml" start_berth "$WORK/cache7"
curl -s -o "$WORK/held1.body" -w '%{http_code}' "http://$BERTH_HOST/v2/e2e/held/blobs/$HELD" >"$WORK/held1.code" &
C1=$!
SERVER_PIDS+=("$C1")
eventually test -e "$WORK/held.sent" || fail "the held upstream never sent the first half of $HELD"
curl -s -o "$WORK/held2.body" -w '%{http_code}' "http://$BERTH_HOST/v2/e2e/held/blobs/$HELD" >"$WORK/held2.code" &
C2=$!
SERVER_PIDS+=("$C2")
shared() { curl -sf "http://127.0.0.1:$DEBUG_PORT/metrics" | grep -q '^berth_proxy_requests_total{kind="blob",result="shared"} 1$'; }
eventually shared || fail "the second client did not join the fetch of $HELD"
: >"$WORK/held.go"
wait "$C1" || true
wait "$C2" || true
for i in 1 2; do
  log "client $i of the held blob"
  assert_mismatch_refused "$(cat "$WORK/held$i.code")" "$WORK/held$i.body" "$WORK/cache7" e2e/held "$HELD"
done
stop_server "$BERTH_PID"
stop_server "$HOLD_PID"

step "what is fetched is stored on threads nicer than those serving"
# The store's new files, writes and syncs come after the clients' answers: on a busy machine the
# pulls under way go first (each thread's nice value, /proc/PID/task/TID/stat field 19).
start_cache "$WORK/cache6"
nice_of() { sed 's/^.*) //' "$1/stat" | awk '{print $17}'; }
serving="" store_nices=""
for t in /proc/"$BERTH_PID"/task/*; do
  case "$(cat "$t/comm")" in
    MHD-*) serving=$(nice_of "$t") ;;
    store-*) store_nices="$store_nices $(nice_of "$t")" ;;
  esac
done
[ -n "$serving" ] || fail "no libmicrohttpd polling thread found in berth (pid $BERTH_PID)"
[ -n "$store_nices" ] || fail "berth has no store threads"
want=$((serving + 10 > 19 ? 19 : serving + 10))
for n in $store_nices; do
  [ "$n" -eq "$want" ] || fail "a store thread runs at nice $n, serving at $serving (want $want)"
done
log "store threads at nice$store_nices, serving at nice $serving"
stop_server "$BERTH_PID"
