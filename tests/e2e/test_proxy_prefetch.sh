#!/usr/bin/env bash
# End-to-end: berth as a pull-through cache starts fetching an image's blobs (config and layers)
# when it fetches its manifest for a GET (proxy.prefetch, on by default), so that the client's
# blob GETs join fetches under way instead of each waiting for its own upstream round trip.
# Checked in the upstream's access log (docker-registry) and in berth's metrics (counted before
# any answer), never timed: each wait is for a condition, not for a duration.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_berth

step "generate test images (an 8 MiB layer: larger than the fetch's 1 MiB ring); the upstream holds them"
IMG="$WORK/img"
E2E_BIG_SIZE=$((8 << 20)) make_images "$IMG" --only multi,docker,multiarch,big
ALONE="$WORK/alone"
E2E_BIG_SIZE=$((8 << 20)) make_images "$ALONE" --only big --salt alone
STOP="$WORK/stop"
E2E_BIG_SIZE=$((8 << 20)) make_images "$STOP" --only big --salt stop
start_distribution "$WORK/up"
UP_LOG=$DIST_LOG
for r in multi:multi docker:docker big:big multi:headonly multi:headget multi:warm multi:off multi:on; do
  sk_copy "$(img_ref "$IMG/${r%%:*}")" "docker://$DIST_HOST/e2e/${r#*:}:v1" --preserve-digests
done
sk_copy "$(img_ref "$IMG/multiarch")" "docker://$DIST_HOST/e2e/multiarch:v1" --preserve-digests --all
sk_copy "$(img_ref "$ALONE/big")" "docker://$DIST_HOST/e2e/alone:v1" --preserve-digests
sk_copy "$(img_ref "$STOP/big")" "docker://$DIST_HOST/e2e/stop:v1" --preserve-digests

# start_cache ROOT [PROXY_YAML]: berth caching the upstream (PROXY_YAML: the proxy section's
# lines, two spaces deep; default its remoteurl), with its metrics on the debug server. Sets
# what start_berth sets and DEBUG_PORT.
start_cache() {
  local dir="$WORK/cache.$RANDOM" proxy=${2:-"  remoteurl: http://$DIST_HOST"}
  mkdir -p "$dir"
  DEBUG_PORT=$(free_port)
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nproxy:\n%s\nhttp:\n  debug:\n    addr: 127.0.0.1:%s\n    prometheus:\n      enabled: true\n' \
    "$1" "$proxy" "$DEBUG_PORT" >"$dir/config.yml"
  BERTH_CONFIG="$dir/config.yml" start_berth "$1"
}

# metric NAME_AND_LABELS: the value of one of berth's metrics.
metric() {
  curl -sf "http://127.0.0.1:$DEBUG_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
prefetches() { metric "berth_proxy_prefetches_total{result=\"$1\"}"; }
misses() { metric 'berth_proxy_requests_total{kind="blob",result="miss"}'; }

# berth_asked METHOD URI_REGEX: how many such requests berth made to the upstream so far.
berth_asked() {
  grep 'msg="response completed' "$UP_LOG" | grep 'http.request.useragent="\?berth/' |
    grep "http.request.method=\"\?$1\"\? " | grep -c "http.request.uri=\"\?$2\"\? " || true
}
asked_once() { [ "$(berth_asked GET "$1")" -eq 1 ]; }

# tag_stored ROOT REPO: the cache on ROOT has stored REPO's tag v1 (berth_proxy_prefetch runs
# before the manifest's store, so its prefetches are counted by then).
tag_stored() { test -f "$1/docker/registry/v2/repositories/$2/_manifests/tags/v1/current/link"; }

# get_manifest REPO [METHOD]: the manifest of REPO:v1 through berth (GET or HEAD).
get_manifest() {
  local accept='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json'
  if [ "${2:-GET}" = HEAD ]; then
    curl -sfI -H "Accept: $accept" -o /dev/null "http://$BERTH_HOST/v2/$1/manifests/v1" || fail "HEAD of $1:v1 through berth"
  else
    curl -sf -H "Accept: $accept" -o /dev/null "http://$BERTH_HOST/v2/$1/manifests/v1" || fail "GET of $1:v1 through berth"
  fi
}

# head_digest REPO: the digest berth answers a HEAD of REPO:v1 with (as containerd and Docker
# resolve a tag).
head_digest() {
  curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$BERTH_HOST/v2/$1/manifests/v1" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}'
}

# get_by_digest REPO DIGEST: a GET of REPO's manifest DIGEST through berth.
get_by_digest() {
  curl -sf -o /dev/null "http://$BERTH_HOST/v2/$1/manifests/$2" || fail "GET of $1@$2 through berth"
}

# pull_blobs REPO IMAGE: each blob of IMAGE (a generated image) through berth's REPO, byte for byte.
pull_blobs() {
  local d got
  for d in $(img_blobs "$2" | awk '$1 == "L" {print $2}'); do
    got=$(curl -sf "http://$BERTH_HOST/v2/$1/blobs/$d" | sha256sum | cut -d' ' -f1)
    [ "sha256:$got" = "$d" ] || fail "blob $d of $1 through berth: got sha256:$got"
  done
}

# assert_fetched_once REPO IMAGE: the upstream saw exactly one GET of each blob of IMAGE in REPO.
assert_fetched_once() {
  local d n
  for d in $(img_blobs "$2" | awk '$1 == "L" {print $2}'); do
    eventually asked_once "/v2/$1/blobs/$d" || true
    n=$(berth_asked GET "/v2/$1/blobs/$d")
    [ "$n" -eq 1 ] || fail "the upstream saw $n GETs of blob $d of $1, not 1"
  done
}

CACHE="$WORK/cache"
start_cache "$CACHE"

step "a prefetched 8 MiB layer nobody asks for is stored alone once its hold for a reader ends"
# Started first: its fetch holds at the ring's end for a first reader (10 s), then goes on alone.
get_manifest e2e/alone
ALONE_LAYER=$(img_blobs "$ALONE/big" | awk '$1 == "L" {print $2}' | tail -n1)

step "a GET of a manifest not cached starts the fetches of its config and layers, no client asking"
started=$(prefetches started)
for r in multi docker; do
  get_manifest "e2e/$r"
  for d in $(img_blobs "$IMG/$r" | awk '$1 == "L" {print $2}'); do
    eventually asked_once "/v2/e2e/$r/blobs/$d" || fail "berth did not prefetch blob $d of e2e/$r"
  done
done
n_multi=$(img_blobs "$IMG/multi" | grep -c '^L ')
n_docker=$(img_blobs "$IMG/docker" | grep -c '^L ')
[ "$(prefetches started)" -eq $((started + n_multi + n_docker)) ] ||
  fail "berth counted $(prefetches started) prefetches started, want $((started + n_multi + n_docker))"
[ "$(misses)" -eq 0 ] || fail "a blob miss before any client asked for a blob"

step "the client's blob GETs then get the right bytes, with one upstream GET per blob"
for r in multi docker; do
  pull_blobs "e2e/$r" "$IMG/$r"
  assert_fetched_once "e2e/$r" "$IMG/$r"
done
[ "$(misses)" -eq 0 ] || fail "a client's blob GET made its own upstream fetch ($(misses) misses)"

step "a HEAD of a manifest not cached prefetches nothing; nor does an index"
started=$(prefetches started)
get_manifest e2e/headonly HEAD
get_manifest e2e/multiarch
eventually tag_stored "$CACHE" e2e/headonly || fail "the HEAD's manifest was not stored"
eventually tag_stored "$CACHE" e2e/multiarch || fail "the index was not stored"
[ "$(prefetches started)" -eq "$started" ] || fail "a HEAD or an index started prefetches"
[ "$(berth_asked GET '/v2/e2e/headonly/blobs/.*')" -eq 0 ] || fail "a HEAD of a manifest prefetched blobs"
pull_blobs e2e/headonly "$IMG/multi"
assert_fetched_once e2e/headonly "$IMG/multi"
[ "$(misses)" -eq "$n_multi" ] || fail "the HEAD's blobs: $(misses) misses, want $n_multi (the client's own fetches)"

step "a HEAD by tag then a GET by digest (containerd's and Docker's pulls) prefetches before the client asks"
started=$(prefetches started)
misses_before=$(misses)
digest=$(head_digest e2e/headget)
[ "$digest" = "$(img_digest "$IMG/multi")" ] || fail "HEAD of e2e/headget:v1 answered digest '$digest'"
eventually tag_stored "$CACHE" e2e/headget || fail "the HEAD's manifest was not stored"
[ "$(prefetches started)" -eq "$started" ] || fail "a HEAD by tag alone started prefetches"
get_by_digest e2e/headget "$digest"
for d in $(img_blobs "$IMG/multi" | awk '$1 == "L" {print $2}'); do
  eventually asked_once "/v2/e2e/headget/blobs/$d" || fail "the GET by digest after a HEAD did not prefetch blob $d"
done
[ "$(prefetches started)" -eq $((started + n_multi)) ] ||
  fail "$(prefetches started) prefetches started, want $((started + n_multi))"
pull_blobs e2e/headget "$IMG/multi"
assert_fetched_once e2e/headget "$IMG/multi"
[ "$(misses)" -eq "$misses_before" ] || fail "a client's blob GET after the HEAD and GET made its own upstream fetch"
started=$(prefetches started)
get_by_digest e2e/headget "$digest"
[ "$(prefetches started)" -eq "$started" ] || fail "a second GET by digest started prefetches"

step "a HEAD by tag whose GET by digest never comes (an update checker) leaves nothing behind at the next start"
# e2e/warm's manifest is cached by a cold HEAD; its GET by digest comes to a new berth on the same
# root (no mark: as any GET by digest of a manifest cached) and is prefetched nothing; nor after
# a warm HEAD (the tag cached, same digest: nothing fetched).
warm_digest=$(head_digest e2e/warm)
eventually tag_stored "$CACHE" e2e/warm || fail "e2e/warm's manifest was not stored"

step "an 8 MiB layer prefetched, then pulled: right bytes, one upstream GET"
misses_before=$(misses)
started=$(prefetches started)
get_manifest e2e/big
eventually tag_stored "$CACHE" e2e/big || fail "e2e/big's manifest was not stored"
[ "$(prefetches started)" -eq $((started + 2)) ] || fail "the big image's config and layer were not both prefetched"
pull_blobs e2e/big "$IMG/big"
assert_fetched_once e2e/big "$IMG/big"
# Joined along, or (had the client come after the fetch's hold) served from storage: never a
# fetch of its own.
[ "$(misses)" -eq "$misses_before" ] || fail "the client's GET of the big layer made its own upstream fetch"
log "prefetches joined by a client: $(prefetches joined)"

step "the layer nobody asked for was stored, verified, with one upstream GET"
eventually assert_blob_data "$CACHE" "$ALONE_LAYER"
eventually test -f "$CACHE/docker/registry/v2/repositories/e2e/alone/_layers/sha256/${ALONE_LAYER#sha256:}/link" ||
  fail "the prefetched layer nobody asked for was not linked"
assert_fetched_once e2e/alone "$ALONE/big"
[ "$(prefetches failed)" -eq 0 ] || fail "$(prefetches failed) prefetches failed"

step "stopping berth while a prefetch holds for a reader: stopped, nothing partial linked"
get_manifest e2e/stop
STOP_LAYER=$(img_blobs "$STOP/big" | awk '$1 == "L" {print $2}' | tail -n1)
STOP_CONFIG=$(img_blobs "$STOP/big" | awk '$1 == "L" {print $2}' | head -n1)
# The config (small) is stored in whole; then the layer's fetch is the one holding.
eventually test -f "$CACHE/docker/registry/v2/repositories/e2e/stop/_layers/sha256/${STOP_CONFIG#sha256:}/link" ||
  fail "the stop image's config was not prefetched"
# The layer's upload session (opened past its first 64 KiB; the config's is gone once linked):
# its prefetch is under way, well inside its 10 s hold.
uploads_open() { [ -n "$(ls -A "$CACHE/docker/registry/v2/repositories/e2e/stop/_uploads" 2>/dev/null)" ]; }
eventually uploads_open || fail "the stop image's layer prefetch opened no upload session"
kill "$BERTH_PID"
# Dropped at once: a stop that let the prefetch run would take its 10 s hold, then the blob.
running() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat")" != Z ]; } # not yet waited for: a zombie
for _ in $(seq 50); do running "$BERTH_PID" || break; sleep 0.1; done
running "$BERTH_PID" && fail "berth still running 5 s after its stop: the prefetch held it"
wait "$BERTH_PID" || fail "berth exited with status $? while a prefetch held"
grep -q 'berth stopped' "$BERTH_LOG" || fail "berth did not log its stop"
[ ! -e "$CACHE/docker/registry/v2/repositories/e2e/stop/_layers/sha256/${STOP_LAYER#sha256:}/link" ] ||
  fail "the prefetch dropped at stop linked its layer"
uploads_open && fail "the dropped prefetch left an upload session"

step "a GET by digest of a manifest cached, with no cold HEAD before it, prefetches nothing"
start_cache "$CACHE"
get_by_digest e2e/warm "$warm_digest"
[ "$(head_digest e2e/warm)" = "$warm_digest" ] || fail "a warm HEAD of e2e/warm:v1 answered another digest"
get_by_digest e2e/warm "$warm_digest"
[ "$(prefetches started)" -eq 0 ] || fail "a GET by digest of a cached manifest started $(prefetches started) prefetches"
[ "$(berth_asked GET '/v2/e2e/warm/blobs/.*')" -eq 0 ] || fail "a GET by digest of a cached manifest fetched blobs"
pull_blobs e2e/warm "$IMG/multi"
assert_fetched_once e2e/warm "$IMG/multi"
stop_server "$BERTH_PID"

step "proxy.prefetch: false (and an upstream's own prefetch: true over it)"
CACHE2="$WORK/cache2"
start_cache "$CACHE2" "$(printf '  prefetch: false\n  upstreams:\n    - prefix: off\n      remoteurl: http://%s\n    - prefix: on\n      remoteurl: http://%s\n      prefetch: true' "$DIST_HOST" "$DIST_HOST")"
get_manifest off/e2e/off
eventually tag_stored "$CACHE2" off/e2e/off || fail "off/e2e/off's manifest was not stored"
[ "$(prefetches started)" -eq 0 ] || fail "prefetch: false started prefetches"
[ "$(berth_asked GET '/v2/e2e/off/blobs/.*')" -eq 0 ] || fail "prefetch: false: a blob GET reached the upstream before the client's"
pull_blobs off/e2e/off "$IMG/multi"
assert_fetched_once e2e/off "$IMG/multi"
get_manifest on/e2e/on
eventually tag_stored "$CACHE2" on/e2e/on || fail "on/e2e/on's manifest was not stored"
[ "$(prefetches started)" -eq "$n_multi" ] || fail "an upstream's prefetch: true did not prefetch ($(prefetches started) started)"
pull_blobs on/e2e/on "$IMG/multi"
assert_fetched_once e2e/on "$IMG/multi"
stop_server "$BERTH_PID"

step "at most 8 prefetches at once: an image of 12 blobs larger than the ring starts 8, the clients fetch the rest"
# Every blob (config too) is 1.5 MiB of random bytes: each prefetch holds at its ring's end for a
# client, so none ends while the manifest's blobs are gone through, and exactly 8 start.
"$PY" - "$DIST_HOST" "$WORK/many" <<'PY' || fail "cannot push the 12-blob image to the upstream"
import hashlib, json, os, sys, urllib.request
host, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
def push(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with urllib.request.urlopen(urllib.request.Request("http://%s/v2/e2e/many/blobs/uploads/" % host, method="POST")) as r:
        loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = "http://" + host + loc
    req = urllib.request.Request(loc + ("&" if "?" in loc else "?") + "digest=" + d, data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req).close()
    open(os.path.join(out, d[7:]), "wb").write(data)
    return {"mediaType": "application/octet-stream", "digest": d, "size": len(data)}
blobs = [push(os.urandom(3 << 19)) for _ in range(12)]
for b in blobs[1:]:
    b["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
blobs[0]["mediaType"] = "application/vnd.oci.image.config.v1+json"
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": blobs[0], "layers": blobs[1:]}).encode()
urllib.request.urlopen(urllib.request.Request("http://%s/v2/e2e/many/manifests/v1" % host, data=m, method="PUT",
    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})).close()
PY
CACHE3="$WORK/cache3"
start_cache "$CACHE3" # no other prefetch running: all 8 slots free
get_manifest e2e/many
eventually tag_stored "$CACHE3" e2e/many || fail "e2e/many's manifest was not stored"
[ "$(prefetches started)" -eq 8 ] || fail "$(prefetches started) prefetches started for 12 blobs, want 8 (the bound)"
for f in "$WORK"/many/*; do
  got=$(curl -sf "http://$BERTH_HOST/v2/e2e/many/blobs/sha256:${f##*/}" | sha256sum | cut -d' ' -f1)
  [ "$got" = "${f##*/}" ] || fail "blob sha256:${f##*/} of e2e/many through berth: got sha256:$got"
  eventually asked_once "/v2/e2e/many/blobs/sha256:${f##*/}" || fail "the upstream did not see one GET of sha256:${f##*/}"
done
[ "$(misses)" -eq 4 ] || fail "the clients made $(misses) fetches of their own, want 4 (the blobs past the bound)"
stop_server "$BERTH_PID"

step "stopping berth while a prefetch is still downloading (its ring not full yet): stopped at once"
# An upstream that sends a 64 MiB layer's first 128 KiB, then 8 KiB every 0.1 s: the ring fills
# (and the prefetch would hold for a reader, which the stop wakes) only after some 12 s.
cat >"$WORK/slow_upstream.py" <<'PY'
import hashlib, http.server, json, sys, time
LAYER_SIZE = 64 << 20
layer_digest = "sha256:" + hashlib.sha256(bytes(LAYER_SIZE)).hexdigest()
config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": LAYER_SIZE}]}).encode()
manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def send(self, body, ct, digest):
        self.send_response(200)
        self.send_header("Content-Type", ct)
        self.send_header("Content-Length", str(len(body)))
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)
    def do_HEAD(self):
        self.do_GET()
    def do_GET(self):
        if self.path == "/v2/":
            return self.send(b"{}", "application/json", None)
        if self.path in ("/v2/e2e/slow/manifests/v1", "/v2/e2e/slow/manifests/" + manifest_digest):
            return self.send(manifest, "application/vnd.oci.image.manifest.v1+json", manifest_digest)
        if self.path == "/v2/e2e/slow/blobs/" + config_digest:
            return self.send(config, "application/octet-stream", config_digest)
        if self.path != "/v2/e2e/slow/blobs/" + layer_digest:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(LAYER_SIZE))
        self.end_headers()
        try:
            self.wfile.write(bytes(128 << 10))
            for _ in range((LAYER_SIZE - (128 << 10)) // (8 << 10)):
                self.wfile.flush()
                time.sleep(0.1)
                self.wfile.write(bytes(8 << 10))
        except (BrokenPipeError, ConnectionResetError):
            pass
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
SLOW_PORT=$(free_port)
_start_server slow-upstream "$WORK/slow.log" "$SLOW_PORT" "$PY" "$WORK/slow_upstream.py" "$SLOW_PORT"
CACHE4="$WORK/cache4"
start_cache "$CACHE4" "  remoteurl: http://127.0.0.1:$SLOW_PORT"
get_manifest e2e/slow
SLOW_UPLOADS="$CACHE4/docker/registry/v2/repositories/e2e/slow/_uploads"
layer_uploading() { grep -q "GET /v2/e2e/slow/blobs/sha256:" "$WORK/slow.log" && [ -n "$(ls -A "$SLOW_UPLOADS" 2>/dev/null)" ]; }
eventually layer_uploading || fail "the slow layer's prefetch opened no upload session"
kill "$BERTH_PID"
for _ in $(seq 50); do running "$BERTH_PID" || break; sleep 0.1; done
running "$BERTH_PID" && fail "berth still running 5 s after its stop: the downloading prefetch held it"
wait "$BERTH_PID" || fail "berth exited with status $? while a prefetch downloaded"
[ -z "$(ls -A "$SLOW_UPLOADS" 2>/dev/null)" ] || fail "the prefetch dropped at stop left an upload session"
SLOW_LAYER=$(head -c $((64 << 20)) /dev/zero | sha256sum | cut -d' ' -f1)
[ ! -e "$CACHE4/docker/registry/v2/repositories/e2e/slow/_layers/sha256/$SLOW_LAYER/link" ] ||
  fail "the prefetch dropped at stop linked its layer"

step "a bad proxy.prefetch is refused at start-up by name"
mkdir -p "$WORK/bad"
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nproxy:\n  remoteurl: http://%s\n  prefetch: sometimes\n' \
  "$WORK/bad/root" "$DIST_HOST" >"$WORK/bad/config.yml"
if "$BERTH_BIN" serve "$WORK/bad/config.yml" --addr "127.0.0.1:$(free_port)" >"$WORK/bad/out" 2>&1; then
  fail "berth started with proxy.prefetch: sometimes"
fi
grep -q 'proxy.prefetch' "$WORK/bad/out" || fail "the refusal does not name proxy.prefetch: $(cat "$WORK/bad/out")"
