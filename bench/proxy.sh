#!/usr/bin/env bash
# The pull-through cache, berth beside Distribution (docker-registry with a proxy section), both
# caching the same docker-registry upstream on loopback, in the same run (bench/README.md):
#   - skopeo pulls of a small (~20 KiB) and a 100 MiB image: straight from the upstream, then
#     through each cache cold (nothing cached) and warm (everything cached);
#   - a burst of 20 concurrent cold pulls of the 100 MiB image through each cache, and how many
#     times the upstream was asked for its big layer (its access log).
#   bench/proxy.sh [RUNS]    (default 3; BERTH_BIN=path, default build/berth)
# Prints a markdown table of medians (min-max) in seconds. Needs skopeo and docker-registry.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
RUNS=${1:-3}
BERTH_BIN=${BERTH_BIN:-$repo/build/berth}
E2E_NAME=bench-proxy
# shellcheck source=tests/e2e/lib.sh
source "$repo/tests/e2e/lib.sh"
e2e_init
need_cmd skopeo
need_cmd docker-registry
need_berth

IMG="$WORK/img"
E2E_BIG_SIZE=104857600 make_images "$IMG" --only multi,big
big_layer=$(img_blobs "$IMG/big" | awk '$1 == "L" {print $2}' | while read -r d; do
  f=$(img_blobs "$IMG/big" | awk -v d="$d" '$2 == d {print $3}')
  printf '%s %s\n' "$(stat -c %s "$f")" "$d"
done | sort -n | tail -n1 | cut -d' ' -f2)

# A docker-registry on ROOT with its access log on, and PROXY_URL's proxy section when given.
# Sets SRV_HOST, SRV_PID, SRV_LOG.
start_registry() {
  local root=$1 proxy=${2:-} port cfg
  port=$(free_port)
  cfg="$WORK/reg-$port.yml"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$root" "$port" >"$cfg"
  [ -z "$proxy" ] || printf 'proxy:\n  remoteurl: %s\n' "$proxy" >>"$cfg"
  SRV_LOG="$WORK/reg-$port.log"
  _start_server docker-registry "$SRV_LOG" "$port" docker-registry serve "$cfg" || fail "docker-registry would not start"
  SRV_HOST=127.0.0.1:$port
  SRV_PID=$SERVER_PID
}
start_berth_cache() {
  printf 'version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nproxy:\n  remoteurl: %s\n' \
    "$1" "$2" >"$WORK/berth-cache.yml"
  BERTH_CONFIG="$WORK/berth-cache.yml" start_berth "$1"
}

start_registry "$WORK/up"
UP=$SRV_HOST
UP_LOG=$SRV_LOG
sk_copy "$(img_ref "$IMG/multi")" "docker://$UP/b/small:v1" --preserve-digests
sk_copy "$(img_ref "$IMG/big")" "docker://$UP/b/big:v1" --preserve-digests

# pull HOST REPO: seconds of one skopeo pull into a fresh dir: copy.
pull() {
  local out="$WORK/out.$RANDOM" s e
  s=$(date +%s.%N)
  sk_copy "docker://$1/b/$2:v1" "dir:$out"
  e=$(date +%s.%N)
  rm -rf "$out"
  echo "$e - $s" | bc
}
# burst HOST: seconds for 20 concurrent pulls of the big image.
burst() {
  local s e i pids=()
  s=$(date +%s.%N)
  for i in $(seq 20); do
    _sk copy --src-tls-verify=false --retry-times 0 "docker://$1/b/big:v1" "dir:$WORK/burst.$i" >/dev/null 2>&1 &
    pids+=("$!")
  done
  for i in "${pids[@]}"; do wait "$i" || fail "a pull of the burst failed"; done
  e=$(date +%s.%N)
  rm -rf "$WORK"/burst.*
  echo "$e - $s" | bc
}
upstream_gets() { grep -c "\"GET /v2/b/big/blobs/$big_layer " "$UP_LOG" || true; }

declare -A T
add() { T[$1]="${T[$1]:-} $2"; }
for run in $(seq "$RUNS"); do
  log "run $run of $RUNS"
  add "small direct" "$(pull "$UP" small)"
  add "big direct" "$(pull "$UP" big)"
  for who in berth distribution; do
    rm -rf "$WORK/cache"
    if [ $who = berth ]; then start_berth_cache "$WORK/cache" "http://$UP"; H=$BERTH_HOST; P=$BERTH_PID
    else start_registry "$WORK/cache" "http://$UP"; H=$SRV_HOST; P=$SRV_PID; fi
    add "small $who cold" "$(pull "$H" small)"
    add "small $who warm" "$(pull "$H" small)"
    add "big $who cold" "$(pull "$H" big)"
    add "big $who warm" "$(pull "$H" big)"
    stop_server "$P"
    rm -rf "$WORK/cache"
    if [ $who = berth ]; then start_berth_cache "$WORK/cache" "http://$UP"; H=$BERTH_HOST; P=$BERTH_PID
    else start_registry "$WORK/cache" "http://$UP"; H=$SRV_HOST; P=$SRV_PID; fi
    g0=$(upstream_gets)
    add "burst $who" "$(burst "$H")"
    add "burst $who upstream GETs" "$(($(upstream_gets) - g0))"
    stop_server "$P"
  done
done

stats() { # median (min-max) of the numbers given
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.2f (%.2f-%.2f)", a[int((NR+1)/2)], a[1], a[NR]}'
}
printf '\n| pull (%s runs) | direct from upstream | berth cold | berth warm | Distribution cold | Distribution warm |\n|---|---|---|---|---|---|\n' "$RUNS"
for size in small big; do
  # shellcheck disable=SC2086
  printf '| %s image, s | %s | %s | %s | %s | %s |\n' "$size" "$(stats ${T["$size direct"]})" \
    "$(stats ${T["$size berth cold"]})" "$(stats ${T["$size berth warm"]})" \
    "$(stats ${T["$size distribution cold"]})" "$(stats ${T["$size distribution warm"]})"
done
# shellcheck disable=SC2086
printf '\n| 20 concurrent cold pulls of the 100 MiB image | berth | Distribution |\n|---|---|---|\n| seconds | %s | %s |\n| upstream GETs of the 100 MiB layer | %s | %s |\n' \
  "$(stats ${T["burst berth"]})" "$(stats ${T["burst distribution"]})" \
  "$(stats ${T["burst berth upstream GETs"]})" "$(stats ${T["burst distribution upstream GETs"]})"
