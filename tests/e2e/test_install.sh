#!/usr/bin/env bash
# `cmake --install` (what `make install` runs) into a temporary prefix and a DESTDIR staging:
# the binary, the systemd unit naming that binary with the hardening the README promises, the
# sysusers entry, the example configuration; `systemd-analyze verify` accepts the unit; the
# installed binary serves with the installed example configuration.
#
#   bash tests/e2e/test_install.sh           (BERTH_BIN=path/to/build/berth)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
need_cmd cmake
need_cmd curl
BUILD_DIR=$(dirname "$BERTH_BIN")
[ -f "$BUILD_DIR/cmake_install.cmake" ] || skip "$BUILD_DIR is not a CMake build directory"

step "cmake --install --prefix"
P="$WORK/prefix"
cmake --install "$BUILD_DIR" --prefix "$P" >"$WORK/install.out" 2>&1 || { cat "$WORK/install.out" >&2; fail "cmake --install failed"; }
for f in bin/berth lib/systemd/system/berth.service lib/sysusers.d/berth.conf share/doc/berth/config.yml share/doc/berth/README.md; do
  [ -f "$P/$f" ] || fail "$f was not installed"
done
[ -x "$P/bin/berth" ] || fail "bin/berth is not executable"
"$P/bin/berth" --version | grep -q '^berth ' || fail "the installed berth does not run"

step "the unit"
U="$P/lib/systemd/system/berth.service"
grep -qx "ExecStart=$P/bin/berth serve /etc/berth/config.yml" "$U" || fail "ExecStart does not name the installed binary: $(grep ExecStart "$U")"
for line in 'User=berth' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/berth' \
  'StateDirectory=berth' 'Restart=on-failure' 'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qxF "$line" "$U" || fail "the unit lacks '$line'"
done
grep -q '^u berth ' "$P/lib/sysusers.d/berth.conf" || fail "sysusers.d entry does not create user berth"
if command -v systemd-analyze >/dev/null 2>&1; then
  # (verify wants the binary at the path the unit names, which it is)
  systemd-analyze verify "$U" >"$WORK/verify.out" 2>&1 || { cat "$WORK/verify.out" >&2; fail "systemd-analyze verify $U failed"; }
  [ ! -s "$WORK/verify.out" ] || { cat "$WORK/verify.out" >&2; fail "systemd-analyze verify complained"; }
else
  log "systemd-analyze is not installed: unit syntax not verified"
fi

step "DESTDIR staging keeps DESTDIR out of the unit"
DESTDIR="$WORK/stage" cmake --install "$BUILD_DIR" --prefix /usr >"$WORK/stage.out" 2>&1 || { cat "$WORK/stage.out" >&2; fail "DESTDIR install failed"; }
grep -qx 'ExecStart=/usr/bin/berth serve /etc/berth/config.yml' "$WORK/stage/usr/lib/systemd/system/berth.service" ||
  fail "staged unit: $(grep ExecStart "$WORK/stage/usr/lib/systemd/system/berth.service")"
[ -x "$WORK/stage/usr/bin/berth" ] || fail "staged binary missing"

step "the installed berth serves the example configuration"
ROOT="$WORK/root"
sed "s#/var/lib/berth#$ROOT#" "$P/share/doc/berth/config.yml" >"$WORK/config.yml"
BERTH_BIN="$P/bin/berth" BERTH_CONFIG="$WORK/config.yml" start_berth "$ROOT"
[ "$(http_code "http://$BERTH_HOST/")" = 200 ] || fail "GET / did not answer 200"
[ "$(http_code "http://$BERTH_HOST/v2/")" = 200 ] || fail "GET /v2/ did not answer 200"
