#!/usr/bin/env bash
# `make run` as a new user types it: it asks only for the packages running needs (not skopeo,
# docker-registry, cmocka or the container tools), builds only the server, and prints one line
# before berth's "listening" line. Runs in the build directory of the binary under test, where
# the build is up to date, so it takes a second.
#
#   bash tests/e2e/test_make_run.sh           (BERTH_BIN=path/to/build/berth)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
need_cmd make
need_cmd curl
BUILD_DIR=$(cd "$(dirname "$BERTH_BIN")" && pwd)
grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$BERTH_SRC" "$BUILD_DIR/CMakeCache.txt" 2>/dev/null ||
  skip "$BUILD_DIR is not a CMake build directory of $BERTH_SRC"

step "install-deps.sh run names only what building and running need"
# As a user who may not install, with every package missing: it lists what it would install.
mkdir -p "$WORK/fakebin"
printf '#!/bin/sh\nexit 1\n' >"$WORK/fakebin/dpkg-query"
printf '#!/bin/sh\necho 1000\n' >"$WORK/fakebin/id"
chmod +x "$WORK/fakebin/dpkg-query" "$WORK/fakebin/id"
run_list=$(PATH="$WORK/fakebin:$PATH" bash "$BERTH_SRC/scripts/install-deps.sh" run 2>&1)
test_list=$(PATH="$WORK/fakebin:$PATH" bash "$BERTH_SRC/scripts/install-deps.sh" test 2>&1)
for p in libmicrohttpd-dev libjansson-dev libssl-dev libyaml-dev cmake; do
  grep -qw -- "$p" <<<"$run_list" || fail "install-deps.sh run does not install $p: $run_list"
done
for p in skopeo docker-registry libcmocka-dev podman buildah; do
  grep -qw -- "$p" <<<"$run_list" && fail "install-deps.sh run would install $p: $run_list"
  grep -qw -- "$p" <<<"$test_list" || fail "install-deps.sh test does not install $p: $test_list"
done

step "make run: builds the server, one line, then listening"
# The directory's own build type (a sanitizer build is Debug): make run must not change it.
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
PORT=$(free_port)
OUT="$WORK/make-run.out"
guard=()
if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
"${guard[@]}" make -C "$BERTH_SRC" --no-print-directory run BUILD="$BUILD_DIR" BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  ADDR="127.0.0.1:$PORT" ROOT="$WORK/root" JOBS=1 >"$OUT" 2>&1 &
MAKE_PID=$!
SERVER_PIDS+=("$MAKE_PID")
SERVER_LOGS+=("$OUT")
for _ in $(seq 1 600); do
  grep -q 'listening on' "$OUT" && break
  kill -0 "$MAKE_PID" 2>/dev/null || { cat "$OUT" >&2; fail "make run exited"; }
  sleep 0.1
done
grep -q 'listening on' "$OUT" || fail "no listening line after 60s"
# berth is make's child: it is stopped by its pid, as make does not pass signals on
BERTH_PID=$(pgrep -P "$MAKE_PID" || true)
[ -n "$BERTH_PID" ] && SERVER_PIDS+=("$BERTH_PID")
before=$(sed -n '/listening on/q;p' "$OUT")
[ "$(grep -c . <<<"$before")" -le 1 ] || fail "make run printed more than one line before listening:
$before"
[ "$(http_code "http://127.0.0.1:$PORT/v2/")" = 200 ] || fail "GET /v2/ did not answer 200"
[ -d "$WORK/root" ] || fail "ROOT= was not used"
grep -qx "CMAKE_BUILD_TYPE:STRING=${BUILD_TYPE:-RelWithDebInfo}" "$BUILD_DIR/CMakeCache.txt" ||
  fail "make run changed the build type of $BUILD_DIR"
[ -n "$BERTH_PID" ] || fail "no berth process under make"
kill "$BERTH_PID"
wait "$MAKE_PID" 2>/dev/null || true
grep -q 'berth stopped' "$OUT" || fail "berth did not stop cleanly: $(tail -3 "$OUT")"
