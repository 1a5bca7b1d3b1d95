#!/usr/bin/env bash
# Benchmarks berth side by side with CNCF Distribution (see bench/README.md).
#   bench/run.sh            full run, writes bench/RESULTS.md (about 25 minutes)
#   bench/run.sh --smoke    every workload once with tiny sizes (well under a minute)
#   BENCH_S3=1 bench/run.sh [--smoke]   the same on one S3 server (bench/s3.py, RESULTS-s3.md)
# Other options are passed to bench/bench.py (--runs, --duration, --conns, --only, ...).
# Installs what it needs from Debian's packages when missing and running as root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

# package -> a command it provides
declare -A PKGS=([docker-registry]=docker-registry [wrk]=wrk [apache2-utils]=ab [skopeo]=skopeo
                 [nginx-light]=nginx [openssl]=openssl [python3]=python3)
missing=()
for p in "${!PKGS[@]}"; do
  command -v "${PKGS[$p]}" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "bench: installing ${missing[*]}" >&2
    "$(dirname "$0")/../scripts/apt-install.sh" "${missing[@]}"
    # Debian's packages start services on install where they can; the benchmark runs its own.
    for p in "${missing[@]}"; do
      case "$p" in nginx-light) svc=nginx ;; docker-registry) svc=docker-registry ;; *) continue ;; esac
      command -v service >/dev/null && service "$svc" stop >/dev/null 2>&1 || true
    done
  else
    echo "bench: missing ${missing[*]} (run as root to install them); the rows that need them are skipped" >&2
  fi
fi

berth="${BERTH:-$repo/build/berth}"
if [ ! -x "$berth" ]; then
  echo "bench: building berth" >&2
  make -C "$repo" build >/dev/null
fi
if [ -n "${BENCH_S3:-}" ]; then
  # radosgw, ceph-mon and python3-boto3 come with scripts/install-deps.sh (the S3 tests need them too)
  exec python3 "$here/s3.py" --berth "$berth" "$@"
fi
exec python3 "$here/bench.py" --berth "$berth" "$@"
