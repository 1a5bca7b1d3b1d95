#!/usr/bin/env bash
# run-tests.sh BUILD_DIR [CTEST ARGS...]: runs the suite with a temporary directory of its own
# (TMPDIR), then fails if any test left something in it: every test cleans up after itself.
# Used by `make test` and `make test-sanitize`.
set -uo pipefail
build=${1:?usage: run-tests.sh BUILD_DIR [CTEST ARGS...]}
shift
# Short, so that socket paths and podman's runroot below it stay within their limits.
tmp=$(mktemp -d /tmp/bt.XXXXXX) || exit 1
(cd "$build" && TMPDIR="$tmp" ctest "$@")
rc=$?
left=$(cd "$tmp" && find . -mindepth 1 -maxdepth 2 | sort | head -n 20)
if [ -n "$left" ]; then
  printf 'run-tests: the tests left these behind in their TMPDIR (%s):\n%s\n' "$tmp" "$left" >&2
  [ "$rc" -ne 0 ] || rc=1
fi
rm -rf "$tmp"
exit "$rc"
