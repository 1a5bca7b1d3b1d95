#!/usr/bin/env bash
# End-to-end notifications: skopeo push, pull, a copy between repositories that mounts the
# layers, and delete, then (when containerd runs here) a containerd pull and a push to another
# repository that mounts the layers, against berth and against Debian's docker-registry
# (Distribution 2.8), each with a notifications endpoint on a local sink. Both must send the same
# set of events (action, repository, target media type, digest, tag, fromRepository), and each
# kind of event must have the same fields.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd skopeo
need_cmd curl
need_cmd docker-registry
need_berth

step "generate a test image"
IMG="$WORK/img"
make_images "$IMG"

# start_sink NAME: a recording webhook sink; sets SINK_URL and SINK_OUT (one event per line).
start_sink() {
  local portf="$WORK/$1.port"
  SINK_OUT="$WORK/$1.events"
  : >"$SINK_OUT"
  "$PY" "$BERTH_SRC/tests/api/notify_sink.py" "$portf" "$SINK_OUT" >"$WORK/$1.sink.log" 2>&1 &
  SERVER_PIDS+=("$!")
  local i
  for ((i = 0; i < 100; i++)); do [ -f "$portf" ] && break; sleep 0.05; done
  [ -f "$portf" ] || fail "the sink did not start"
  SINK_URL="http://127.0.0.1:$(cat "$portf")/events"
}

notifications_yaml() {
  cat <<EOT
notifications:
  endpoints:
    - name: e2e
      url: $1
      timeout: 2s
      threshold: 3
      backoff: 200ms
EOT
}

CTR='' CTRD_N=1 CTRD_USED=''
if command -v ctr >/dev/null && command -v containerd >/dev/null; then
  if start_containerd "$WORK/containerd-1"; then CTR=1; else log "containerd does not start here: its steps are left out"; fi
fi
cx() {
  if ! ctr --address "$CTRD_SOCK" --namespace e2e "$@" >"$WORK/last-ctr.out" 2>&1; then
    cat "$WORK/last-ctr.out" >&2
    fail "ctr $* failed"
  fi
}

# fresh_containerd: the next registry's pull must fetch every blob, so it gets a new containerd
# with an empty root (the one used so far is stopped). Emptying the store through ctr was not
# enough (a make test once saw berth's pull fetch no blob): `ctr content rm` drops the metadata
# at once but the blob files (and snapshots) only at containerd's next garbage collection, and
# a pull before that can find them and fetch nothing.
fresh_containerd() {
  stop_server "$CTRD_PID"
  CTRD_N=$((CTRD_N + 1))
  start_containerd "$WORK/containerd-$CTRD_N" || fail "a second containerd did not start"
  cx content ls -q
  [ ! -s "$WORK/last-ctr.out" ] || fail "a new containerd holds content already: $(cat "$WORK/last-ctr.out")"
}

# steps HOST: the client side, the same against both registries.
steps() {
  local h=$1
  sk_copy "$(img_ref "$IMG/multi")" "docker://$h/e2e/app:v1" --preserve-digests
  sk_copy "docker://$h/e2e/app:v1" "dir:$WORK/pulled-$h" --preserve-digests
  sk_copy "docker://$h/e2e/app:v1" "docker://$h/e2e/other:v1" --preserve-digests
  sk_delete "docker://$h/e2e/app:v1"
  if [ -n "$CTR" ]; then
    [ -z "$CTRD_USED" ] || fresh_containerd
    CTRD_USED=1
    cx images pull --plain-http --snapshotter native "$h/e2e/other:v1"
    cx images tag "$h/e2e/other:v1" "$h/ctr/app:v1"
    cx images push --plain-http "$h/ctr/app:v1"
  fi
}

# summary FILE: the events as sorted unique lines of the compared fields, then for each kind of
# event (action, method, what the URL names) which fields it has.
summary() {
  "$PY" - "$1" <<'EOT'
import json, sys
rows, shapes = set(), set()
for line in open(sys.argv[1]):
    e = json.loads(line)
    t = e["target"]
    rows.add("%s %s %s %s %s %s" % (e["action"], t.get("repository", ""), t.get("mediaType", "") or "-",
                                    t.get("digest", "") or "-", t.get("tag", "-"), t.get("fromRepository", "-")))
    kind = "manifests" if "/manifests/" in t.get("url", "") else "blobs" if t.get("url") else "-"
    fields = ",".join("%s{%s}" % (k, ",".join(sorted(v))) if isinstance(v, dict) else k
                      for k, v in sorted(e.items()))
    shapes.add("fields of %s %s %s: %s" % (e["action"], e["request"]["method"], kind, fields))
print("\n".join(sorted(rows) + sorted(shapes)))
EOT
}

wait_quiet() { # FILE: until no new event for a second
  local n=-1 m
  for _ in $(seq 1 40); do
    m=$(wc -l <"$1")
    [ "$m" = "$n" ] && [ "$m" -gt 0 ] && return 0
    n=$m
    sleep 0.5
  done
}

step "docker-registry with a notifications endpoint"
start_sink dist
DIST_SINK=$SINK_OUT
DROOT="$WORK/droot"
mkdir -p "$DROOT"
DIST_PORT=$(free_port)
cat >"$WORK/dist.yml" <<EOT
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $DROOT
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$DIST_PORT
$(notifications_yaml "$SINK_URL")
EOT
# shellcheck disable=SC2046
_start_server docker-registry "$WORK/dist.log" "$DIST_PORT" \
  env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') docker-registry serve "$WORK/dist.yml" ||
  fail "docker-registry would not start"
steps "127.0.0.1:$DIST_PORT"

step "berth with a notifications endpoint"
start_sink berth
BERTH_SINK=$SINK_OUT
{ printf "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n" "$WORK/broot"; notifications_yaml "$SINK_URL"; } >"$WORK/berth.yml"
BERTH_CONFIG="$WORK/berth.yml" start_berth "$WORK/broot" --delete
steps "$BERTH_HOST"

step "compare the events"
wait_quiet "$DIST_SINK"
wait_quiet "$BERTH_SINK"
summary "$DIST_SINK" >"$WORK/dist.summary"
summary "$BERTH_SINK" >"$WORK/berth.summary"
if ! diff -u "$WORK/dist.summary" "$WORK/berth.summary" >&2; then
  fail "berth's events differ from docker-registry's (- docker-registry, + berth)"
fi
grep -q '"action": "mount"' "$BERTH_SINK" || fail "no mount event: the copy between repositories did not mount"
if [ -n "$CTR" ]; then
  grep -q '"fromRepository": "e2e/other"' "$BERTH_SINK" || fail "no mount event from containerd's push"
fi
log "same $(wc -l <"$WORK/berth.summary") distinct events from both"
