#!/usr/bin/env bash
# End-to-end: one berth caching two upstreams (proxy.upstreams, two Debian docker-registry
# instances on loopback) beside hosted repositories: skopeo pulls through both prefixes byte for
# byte (docker.io/alpine is library/alpine upstream, as Docker names it), a hosted repository takes
# pushes while a push or delete under a prefix is 405 UNSUPPORTED, containerd pulls through berth
# as a hosts.toml mirror (?ns=HOST picks the upstream), the catalog lists what is stored, and bad
# combinations of keys are refused at start-up by name.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_berth

step "generate test images"
IMG="$WORK/img"
E2E_BIG_SIZE=${E2E_BIG_SIZE:-1048576} make_images "$IMG"

# pull_check IMAGE REF [copy args]: skopeo pulls REF into a dir: copy byte-identical to IMAGE.
n_pull=0
pull_check() {
  local img=$1 ref=$2
  shift 2
  n_pull=$((n_pull + 1))
  mkdir -p "$WORK/pull"
  sk_copy "docker://$ref" "dir:$WORK/pull/$n_pull" --preserve-digests "$@"
  assert_same_image "$img" "$WORK/pull/$n_pull"
}

step "two upstreams: A holds e2e/* and library/alpine, B holds e2e/*"
start_distribution "$WORK/upA"
UP_A=$DIST_HOST
UP_A_LOG=$DIST_LOG
UP_A_PID=$DIST_PID
push_test_images "$UP_A" e2e
sk_copy "$(img_ref "$IMG/docker")" "docker://$UP_A/library/alpine:v1" --preserve-digests
start_distribution "$WORK/upB"
UP_B=$DIST_HOST
for i in multi multiarch; do
  all=()
  [ "$i" = multiarch ] && all=(--all)
  sk_copy "$(img_ref "$IMG/$i")" "docker://$UP_B/e2e/$i:v1" --preserve-digests "${all[@]}"
done

step "refused at start-up by name: upstreams with remoteurl, overlapping prefixes, a missing remoteurl"
refused_config() { # KEY YAML: berth serve exits 1 naming KEY
  local key=$1 dir="$WORK/bad.$RANDOM"
  mkdir -p "$dir"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/root\n%s\n' "$dir" "$2" >"$dir/config.yml"
  local rc=0
  timeout 10 "$BERTH_BIN" serve "$dir/config.yml" --addr 127.0.0.1:0 >"$dir/out" 2>&1 || rc=$?
  [ "$rc" = 1 ] || fail "berth serve with $key exited $rc (want 1): $(cat "$dir/out")"
  grep -qF "$key" "$dir/out" || fail "the refusal does not name $key: $(cat "$dir/out")"
}
refused_config 'proxy.upstreams' "proxy:
  remoteurl: http://$UP_A
  upstreams:
    - prefix: docker.io
      remoteurl: http://$UP_A"
refused_config 'proxy.upstreams[1].prefix' "proxy:
  upstreams:
    - prefix: mirror
      remoteurl: http://$UP_A
    - prefix: mirror/b
      remoteurl: http://$UP_B"
refused_config 'proxy.upstreams[0].remoteurl' "proxy:
  upstreams:
    - prefix: docker.io"
refused_config 'proxy.upstreams[0].prefix' "proxy:
  upstreams:
    - prefix: Not/A/Name
      remoteurl: http://$UP_A"

step "one berth: docker.io -> A, quay.test -> B, everything else hosted"
ROOT="$WORK/berth"
DEBUG_PORT=$(free_port)
cat >"$WORK/berth.yml" <<YML
version: 0.1
http:
  debug:
    addr: 127.0.0.1:$DEBUG_PORT
    prometheus:
      enabled: true
storage:
  filesystem:
    rootdirectory: $ROOT
proxy:
  upstreams:
    - prefix: docker.io
      remoteurl: http://$UP_A
      ttl: 1h
    - prefix: quay.test
      remoteurl: http://$UP_B
YML
BERTH_CONFIG="$WORK/berth.yml" start_berth "$ROOT"
P=$BERTH_HOST

step "skopeo pulls through both prefixes, stored under the prefixed names"
pull_check "$IMG/multi" "$P/docker.io/e2e/multi:v1"
eventually assert_repo_layout "$ROOT" docker.io/e2e/multi v1 "$IMG/multi"
pull_check "$IMG/docker" "$P/docker.io/alpine:v1"
pull_check "$IMG/multiarch" "$P/quay.test/e2e/multiarch:v1" --all
eventually assert_repo_layout "$ROOT" quay.test/e2e/multiarch v1 "$IMG/multiarch"
grep -q 'uri="\?/v2/library/alpine/manifests/' "$UP_A_LOG" ||
  fail "docker.io/alpine was not asked upstream as library/alpine"
# B does not hold e2e/big: unknown under B's prefix, though A has it.
[ "$(http_code "http://$P/v2/quay.test/e2e/big/manifests/v1")" = 404 ] || fail "quay.test/e2e/big should be unknown"

step "a hosted repository takes pushes; a push or delete under a prefix is 405 UNSUPPORTED"
sk_copy "$(img_ref "$IMG/multi")" "docker://$P/team/app:v1" --preserve-digests
pull_check "$IMG/multi" "$P/team/app:v1"
assert_repo_layout "$ROOT" team/app v1 "$IMG/multi"
code=$(curl -s -o "$WORK/push.json" -w '%{http_code}' -X POST "http://$P/v2/docker.io/team/app/blobs/uploads/")
[ "$code" = 405 ] && grep -q UNSUPPORTED "$WORK/push.json" || fail "a push under docker.io answered $code $(cat "$WORK/push.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE \
  "http://$P/v2/quay.test/e2e/multiarch/manifests/$(img_digest "$IMG/multiarch")")
[ "$code" = 405 ] || fail "a delete under quay.test answered $code"
# A prefix holds whole components: quay.testing/app is hosted, pushes accepted.
[ "$(http_code -X POST "http://$P/v2/quay.testing/app/blobs/uploads/")" = 202 ] || fail "quay.testing/app is hosted"

step "?ns=HOST picks the upstream by its prefix"
got=$(curl -sf -D - -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$P/v2/e2e/docker/manifests/v1?ns=docker.io" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
[ "$got" = "$(img_digest "$IMG/docker")" ] || fail "?ns=docker.io answered digest '$got'"
eventually test -e "$ROOT/docker/registry/v2/repositories/docker.io/e2e/docker/_manifests/tags/v1" ||
  fail "?ns=docker.io did not store under docker.io/e2e/docker"

step "the catalog lists what is stored"
catalog_has() { curl -sf "http://$P/v2/_catalog" >"$WORK/catalog.json" && grep -qF "\"$1\"" "$WORK/catalog.json"; }
for r in docker.io/alpine docker.io/e2e/multi docker.io/e2e/docker quay.test/e2e/multiarch team/app; do
  eventually catalog_has "$r" || fail "catalog lacks $r: $(cat "$WORK/catalog.json")"
done

step "containerd pulls through berth as a hosts.toml mirror (?ns=)"
if command -v ctr >/dev/null && command -v containerd >/dev/null && start_containerd; then
  for host in docker.io quay.test; do
    mkdir -p "$WORK/hosts/$host"
    printf 'server = "https://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
      "$host" "$P" >"$WORK/hosts/$host/hosts.toml"
  done
  ctr_pull() {
    ctr --address "$CTRD_SOCK" --namespace e2e images pull --hosts-dir "$WORK/hosts" --snapshotter native "$1" \
      >"$WORK/last-ctr.out" 2>&1 || { cat "$WORK/last-ctr.out" >&2; fail "ctr pull $1 failed"; }
    ctr --address "$CTRD_SOCK" --namespace e2e images ls "name==$1" | awk 'NR > 1 { print $3 }'
  }
  prefetches() {
    curl -sf "http://127.0.0.1:$DEBUG_PORT/metrics" | awk -v m="berth_proxy_prefetches_total{result=\"$1\"}" '$1 == m { print $2 }'
  }
  # An image with a 4 MiB layer: its prefetch holds at the fetch's 1 MiB ring for a first reader,
  # so containerd's GET of it joins the prefetch (a small blob's is stored before it asks).
  E2E_BIG_SIZE=$((4 << 20)) make_images "$WORK/ctrbig" --only big --salt ctr
  sk_copy "$(img_ref "$WORK/ctrbig/big")" "docker://$UP_A/e2e/ctrbig:v1" --preserve-digests
  started=$(prefetches started)
  joined=$(prefetches joined)
  [ "$(ctr_pull docker.io/library/alpine:v1)" = "$(img_digest "$IMG/docker")" ] || fail "docker.io/library/alpine"
  [ "$(ctr_pull quay.test/e2e/multi:v1)" = "$(img_digest "$IMG/multi")" ] || fail "quay.test/e2e/multi"
  [ "$(ctr_pull docker.io/e2e/ctrbig:v1)" = "$(img_digest "$WORK/ctrbig/big")" ] || fail "docker.io/e2e/ctrbig"
  # containerd resolves a tag with a HEAD, then GETs the manifest by digest: that GET starts the
  # prefetch of the blobs, which its blob GETs then join (or, stored already, read).
  [ "$(prefetches started)" -gt "$started" ] || fail "containerd's pulls (HEAD by tag, GET by digest) prefetched nothing"
  [ "$(prefetches joined)" -gt "$joined" ] || fail "containerd's blob GETs joined no prefetch"
  log "containerd's pulls: $(($(prefetches started) - started)) prefetches started, $(($(prefetches joined) - joined)) joined by its blob GETs"
  grep -q 'ns=quay.test' "$BERTH_LOG" || fail "no ?ns=quay.test request reached berth"
  eventually test -e "$ROOT/docker/registry/v2/repositories/docker.io/library/alpine/_manifests/tags/v1" ||
    fail "containerd's pull is not stored under docker.io/library/alpine"
else
  log "containerd unavailable here: its part is skipped"
fi

step "upstream down: after 3 calls without an answer its circuit opens and a cached tag is served at once"
stop_server "$UP_A_PID"
tag_get() { # prints the seconds a GET of the cached docker.io/e2e/multi:v1 took; it must be 200
  local out
  out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 30 \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$P/v2/docker.io/e2e/multi/manifests/v1")
  [ "${out%% *}" = 200 ] || fail "the cached tag answered ${out%% *} with the upstream down"
  echo "${out#* }"
}
for i in 1 2 3; do log "with the circuit closed: $(tag_get) s"; done
grep -q 'upstream docker.io: 3 calls in a row without an answer: circuit open' "$BERTH_LOG" || fail "no log line on open"
# "At once" without a clock: with the circuit open nothing is asked upstream (no request counted),
# and each GET is refused by the circuit (one error counted each) yet answered from the cache.
upstream_metric() {
  curl -sf "http://127.0.0.1:$DEBUG_PORT/metrics" | awk -v m="$1{upstream=\"docker.io\"}" '$1 == m { print $2 }'
}
requests_before=$(upstream_metric berth_proxy_upstream_requests_total)
errors_before=$(upstream_metric berth_proxy_upstream_errors_total)
for i in 1 2 3; do log "with the circuit open: $(tag_get) s"; done
[ "$(upstream_metric berth_proxy_upstream_requests_total)" = "$requests_before" ] ||
  fail "with the circuit open berth still asked the upstream"
[ "$(upstream_metric berth_proxy_upstream_errors_total)" = "$((errors_before + 3))" ] ||
  fail "the circuit did not refuse the 3 calls: errors $errors_before -> $(upstream_metric berth_proxy_upstream_errors_total)"
curl -sf "http://127.0.0.1:$DEBUG_PORT/metrics" | grep -qx 'berth_proxy_upstream_circuit_opens_total{upstream="docker.io"} 1' ||
  fail "berth_proxy_upstream_circuit_opens_total{upstream=\"docker.io\"} is not 1"
# The other upstream is not affected.
[ "$(http_code "http://$P/v2/quay.test/e2e/multi/manifests/v1" -H 'Accept: application/vnd.oci.image.manifest.v1+json')" = 200 ] ||
  fail "quay.test suffered from docker.io's circuit"
