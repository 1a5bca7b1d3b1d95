#!/usr/bin/env bash
# End-to-end: Debian's docker-registry package config (/etc/docker/registry/config.yml, or the
# copy in tests/fixtures/config when the package is not installed) run by berth unchanged, with
# only REGISTRY_* variables on top, and real pushes and pulls with skopeo.
#
# The file enables htpasswd auth with `path: /etc/docker/registry` (a directory: no user can log
# in, with docker-registry either), so an operator sets one more variable:
#   REGISTRY_AUTH=none                       no authentication (docker-registry reads it so too)
#   REGISTRY_AUTH_HTPASSWD_PATH=FILE         real users (bcrypt htpasswd file)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
need_cmd skopeo
need_cmd curl

CFG=/etc/docker/registry/config.yml
[ -f "$CFG" ] || CFG="$BERTH_SRC/tests/fixtures/config/debian-docker-registry.yml"
log "config $CFG"

step "test image"
IMG="$WORK/img"
make_images "$IMG" --only multi,multiarch

# start_debian NAME VAR=VALUE...: berth serve $CFG with REGISTRY_HTTP_ADDR and
# REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY set (plus the given variables). Sets PORT, PID, LOGF,
# H, ROOT. Returns 1 when berth exited at start (the log is in $LOGF).
start_debian() {
  local name=$1 i
  shift
  local guard=()
  if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
  ROOT="$WORK/$name-root"
  for _ in 1 2 3; do
    PORT=$(free_port)
    LOGF="$WORK/$name-$PORT.log"
    # shellcheck disable=SC2046
    "${guard[@]}" env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') \
      REGISTRY_HTTP_ADDR="127.0.0.1:$PORT" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$ROOT" "$@" \
      "$BERTH_BIN" serve "$CFG" >"$LOGF" 2>&1 &
    PID=$!
    SERVER_PIDS+=("$PID")
    SERVER_LOGS+=("$LOGF")
    for ((i = 0; i < 200; i++)); do
      kill -0 "$PID" 2>/dev/null || break
      if [ "$(http_code "http://127.0.0.1:$PORT/v2/")" != 000 ]; then
        H="127.0.0.1:$PORT"
        log "berth ($name) pid $PID on $H (log $LOGF)"
        return 0
      fi
      sleep 0.05
    done
    kill -0 "$PID" 2>/dev/null && fail "berth ($name) not answering after 10s (log $LOGF)"
    wait "$PID" 2>/dev/null || true
    grep -q 'cannot listen' "$LOGF" || return 1
  done
  fail "berth ($name) could not get a port"
}

hdr() { curl -s -D - -o /dev/null --max-time 5 "$@"; }

# stop_checked PID LOG: SIGTERM, and berth must exit 0 (a sanitizer build exits 23 on a leak)
stop_checked() {
  local pid=$1 logf=$2 rc=0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || rc=$?
  [ "$rc" -eq 0 ] || { tail -n 30 "$logf" >&2; fail "berth exited with status $rc after SIGTERM"; }
}

# ---------------------------------------------------------------------------------------------
step "REGISTRY_AUTH=none: push, pull, inspect, delete"
start_debian none REGISTRY_AUTH=none || { cat "$LOGF" >&2; fail "berth refused Debian's config"; }
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/debian/multi:v1" --preserve-digests
assert_repo_layout "$ROOT" debian/multi v1 "$IMG/multi"
sk_copy "$(img_ref "$IMG/multiarch")" "docker://$H/debian/multiarch:latest" --preserve-digests --all
assert_repo_layout "$ROOT" debian/multiarch latest "$IMG/multiarch"
rm -rf "$WORK/pulled"
sk_copy "docker://$H/debian/multi:v1" "dir:$WORK/pulled" --preserve-digests
assert_same_image "$IMG/multi" "$WORK/pulled"
grep -qi '^X-Content-Type-Options: nosniff' <<<"$(hdr "http://$H/v2/")" ||
  fail "the file's http.headers X-Content-Type-Options is missing"
grep -q 'service="registry"' "$LOGF" || fail "the file's log.fields service: registry is not logged"
# storage.delete.enabled: true in the file
sk_delete "docker://$H/debian/multi:v1" || fail "skopeo delete failed (delete is enabled in the file)"
[ "$(http_code -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$H/v2/debian/multi/manifests/v1")" = 404 ] ||
  fail "debian/multi:v1 still there after delete"
stop_checked "$PID" "$LOGF"

# ---------------------------------------------------------------------------------------------
step "unchanged: the htpasswd section applies (401 Basic realm=basic-realm, like docker-registry)"
start_debian unchanged || { cat "$LOGF" >&2; fail "berth refused Debian's config unchanged"; }
h=$(hdr "http://$H/v2/")
grep -q '^HTTP/1.1 401' <<<"$h" || fail "unchanged Debian config: GET /v2/ is not 401: $h"
grep -qi '^WWW-Authenticate: Basic realm="basic-realm"' <<<"$h" || fail "no Basic challenge: $h"
if sk_copy_try "$(img_ref "$IMG/multi")" "docker://$H/debian/anon:v1"; then
  fail "an anonymous push succeeded with htpasswd auth configured"
fi
stop_checked "$PID" "$LOGF"

step "REGISTRY_AUTH_HTPASSWD_PATH: push and pull as a user"
if command -v htpasswd >/dev/null 2>&1; then
  htpasswd -nbB deb s3cret >"$WORK/htpasswd"
else
  "$PY" -W ignore -c 'import crypt; print("deb:" + crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
    >"$WORK/htpasswd" 2>/dev/null || skip "no way to make a bcrypt htpasswd entry"
fi
start_debian htpasswd REGISTRY_AUTH_HTPASSWD_PATH="$WORK/htpasswd" || { cat "$LOGF" >&2; fail "berth did not start"; }
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/debian/user:v1" --preserve-digests --dest-creds deb:s3cret
assert_repo_layout "$ROOT" debian/user v1 "$IMG/multi"
rm -rf "$WORK/pulled"
sk_copy "docker://$H/debian/user:v1" "dir:$WORK/pulled" --preserve-digests --src-creds deb:s3cret
assert_same_image "$IMG/multi" "$WORK/pulled"
if sk_copy_try "$(img_ref "$IMG/multi")" "docker://$H/debian/wrong:v1" --dest-creds deb:wrong; then
  fail "a push with a wrong password succeeded"
fi
stop_checked "$PID" "$LOGF"
