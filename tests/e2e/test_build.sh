#!/usr/bin/env bash
# The build configurations berth promises (README "Set-up"), built from scratch in a temporary
# directory (about 10 s on 2 cores):
#   - `cmake -DCMAKE_BUILD_TYPE=Release` builds the server with warnings as errors (GCC's
#     optimiser sees more, e.g. -Wformat-truncation, than the default RelWithDebInfo build);
#   - -DBERTH_WERROR=OFF (for packagers) compiles without -Werror, the default with it;
#   - the layers are enforced by the build: a file including a folder its layer may not call
#     does not compile (one CMake library per folder, docs/ARCHITECTURE.md).
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

step "an include that climbs a layer fails the build"
mkdir -p "$WORK/layers"
cp -r "$BERTH_SRC/CMakeLists.txt" "$BERTH_SRC/src" "$BERTH_SRC/packaging" "$BERTH_SRC/README.md" "$WORK/layers/"
cmake -S "$WORK/layers" -B "$WORK/layers/build" -DBERTH_TESTS=OFF >"$WORK/layers.log" 2>&1 ||
  { cat "$WORK/layers.log" >&2; fail "cmake (layers) failed"; }
make -C "$WORK/layers/build" src/registry/link.o >>"$WORK/layers.log" 2>&1 ||
  { tail -20 "$WORK/layers.log" >&2; fail "registry/link.c does not compile as it is"; }
sed -i '1i #include "api/api.h"' "$WORK/layers/src/registry/link.c"   # registry may not call api
if make -C "$WORK/layers/build" src/registry/link.o >>"$WORK/layers.log" 2>&1; then
  fail "registry/link.c including api/api.h compiled"
fi
grep -q 'api/api.h: No such file' "$WORK/layers.log" || { tail -20 "$WORK/layers.log" >&2; fail "not refused for the include"; }
sed -i '1d' "$WORK/layers/src/registry/link.c"
sed -i '1i #include "registry/registry.h"' "$WORK/layers/src/http/range.c"  # http knows no registry
if make -C "$WORK/layers/build" src/http/range.o >>"$WORK/layers.log" 2>&1; then
  fail "http/range.c including registry/registry.h compiled"
fi

log "PASS"
