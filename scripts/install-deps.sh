#!/usr/bin/env bash
# Installs the Debian packages berth builds and tests with, when they are missing.
# Only acts as root; otherwise it says what is missing and carries on.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libssl-dev libcmocka-dev libyaml-dev libcrypt-dev
      libcurl4-openssl-dev libhiredis-dev
      python3 curl skopeo docker-registry
      # a real S3 server for the tests (tests/fixtures/s3/): Ceph's RADOS Gateway, and Redis
      ceph-mon ceph-osd radosgw redis-server)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (run as root to install): ${missing[*]}" >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
"$(dirname "$0")/apt-install.sh" "${missing[@]}"
