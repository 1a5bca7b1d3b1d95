#!/usr/bin/env bash
# Installs the Debian packages berth needs, when they are missing:
#   install-deps.sh run    to build and run berth (what `make run` needs)
#   install-deps.sh [test] to build and test it too (`make test`): cmocka, python3, skopeo,
#                          docker-registry, podman and buildah for the end-to-end tests
# Only acts as root; otherwise it says what is missing and carries on.
set -euo pipefail
RUN_PKGS=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libssl-dev libyaml-dev libcrypt-dev
          libcurl4-openssl-dev libhiredis-dev libpsl-dev)
TEST_PKGS=(libcmocka-dev python3 curl openssl skopeo docker-registry podman buildah
           # a real S3 server (tests/fixtures/s3/): Ceph's RADOS Gateway; and Redis; boto3 for
           # s3check.py and bench/s3.py
           ceph-mon ceph-osd radosgw redis-server python3-boto3
           # the web interface's browser test (tests/e2e/test_ui.sh; its npm packages: npm ci there)
           chromium apache2-utils)
# Node.js may come from elsewhere (NodeSource's nodejs bundles npm): Debian's npm only without one.
command -v npm >/dev/null 2>&1 || TEST_PKGS+=(npm)
case "${1:-test}" in
  run) PKGS=("${RUN_PKGS[@]}") ;;
  test) PKGS=("${RUN_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  *) echo "usage: install-deps.sh [run|test]" >&2; exit 2 ;;
esac
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
