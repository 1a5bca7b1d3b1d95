#!/usr/bin/env bash
# The build configurations berth promises (README "Set-up"), built from scratch in a temporary
# directory (about 10 s on 2 cores):
#   - `cmake -DCMAKE_BUILD_TYPE=Release` builds the server with warnings as errors (GCC's
#     optimiser sees more, e.g. -Wformat-truncation, than the default RelWithDebInfo build);
#   - -DBERTH_WERROR=OFF (for packagers) compiles without -Werror, the default with it.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd cmake

step "Release build, warnings as errors"
cmake -S "$BERTH_SRC" -B "$WORK/release" -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$WORK/release.log" 2>&1 ||
  { cat "$WORK/release.log" >&2; fail "cmake (Release) failed"; }
cmake --build "$WORK/release" -j 2 --target berth >>"$WORK/release.log" 2>&1 ||
  { grep -E 'error|warning' "$WORK/release.log" | head -20 >&2; fail "the Release build failed"; }
grep -q -- '-Werror' "$WORK/release/compile_commands.json" || fail "the default build does not use -Werror"
"$WORK/release/berth" --version | grep -q '^berth ' || fail "the Release binary does not run"

step "-DBERTH_WERROR=OFF drops -Werror"
cmake -S "$BERTH_SRC" -B "$WORK/packager" -DCMAKE_BUILD_TYPE=Release -DBERTH_WERROR=OFF \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$WORK/packager.log" 2>&1 || fail "cmake -DBERTH_WERROR=OFF failed"
if grep -q -- '-Werror' "$WORK/packager/compile_commands.json"; then fail "-DBERTH_WERROR=OFF still uses -Werror"; fi

log "PASS"
