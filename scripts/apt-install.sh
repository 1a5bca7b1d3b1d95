#!/usr/bin/env bash
# apt-install.sh PACKAGE...: installs Debian packages as root, quietly, waiting for the dpkg lock
# rather than failing on it (the tests run in parallel and several may install at once), and
# refreshing the package lists once if the first attempt fails. Exits non-zero if they could not
# be installed; prints apt's error then.
set -uo pipefail
[ $# -gt 0 ] || exit 0
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends "$@"; }
out=$(apt_get install "$@" 2>&1 >/dev/null) && exit 0
apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
out=$(apt_get install "$@" 2>&1 >/dev/null) && exit 0
printf 'apt-install: could not install %s:\n%s\n' "$*" "$out" >&2
exit 1
