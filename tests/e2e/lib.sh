# shellcheck shell=bash
# Shared helpers for berth's end-to-end tests (sourced by tests/e2e/test_*.sh).
#
# Environment:
#   BERTH_BIN   path of the berth binary (set by CTest)
#   BERTH_SRC   repo root (set by CTest; defaults to two levels above this file)
#   E2E_KEEP=1  keep the temp dir (images, storage roots, server logs) after the run
#   E2E_DEBUG=1 pass --debug to skopeo
#   E2E_BIG_SIZE  payload bytes of the "big" test image (default 64 MiB)
#
# Everything a test creates lives under one temp dir ($WORK) in ${TMPDIR:-/tmp}; every
# server started with start_berth/start_distribution is killed on exit, whatever happens.
# skopeo runs with a private policy, registries.conf, registries.d and auth file in $WORK, so
# nothing from the machine's or the user's container configuration leaks in.

set -euo pipefail

BERTH_SRC=${BERTH_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
E2E_NAME=${E2E_NAME:-$(basename "${0%.sh}")}
SERVER_PIDS=()
SERVER_LOGS=()
E2E_EXTRA_DIRS=() # directories outside $WORK removed at exit
E2E_STEP=""
# The system interpreter when there is one: a pyenv shim costs ~0.3 s per call.
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

log()  { printf '[%s %s] %s\n' "$E2E_NAME" "$(date +%T)" "$*" >&2; }
step() { E2E_STEP="$*"; log "== $*"; }
fail() {
  E2E_FAILURE="FAIL${E2E_STEP:+ (in step: $E2E_STEP)}: $*"
  printf '[%s] %s\n' "$E2E_NAME" "$E2E_FAILURE" >&2
  exit 1
}
_e2e_err() {
  case $- in *e*) ;; *) return 0 ;; esac # under set +e a failing command is expected
  if [ -z "${E2E_FAILURE:-}" ]; then
    E2E_FAILURE="FAIL${E2E_STEP:+ (in step: $E2E_STEP)}: command failed with status $1 at $(basename "$2"):$3: $4"
    printf '[%s] %s\n' "$E2E_NAME" "$E2E_FAILURE" >&2
  fi
}
# A skipped test exits 77, which CTest reports as skipped (SKIP_RETURN_CODE), not as passed. In CI
# (CI=true) every tool a test needs is installed and must run, so a skip there is a failure.
skip() {
  if [ "${CI:-}" = true ]; then fail "would skip in CI: $*"; fi
  printf '[%s] SKIP: %s\n' "$E2E_NAME" "$*" >&2; E2E_SKIPPED=1; exit 77
}

_e2e_cleanup() {
  local rc=$?
  trap - ERR
  set +e
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${SERVER_PIDS[@]}"; do
    # Give each server a moment to exit, then force it.
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "$rc" -ne 0 ] && [ -z "${E2E_SKIPPED:-}" ]; then
    local l
    for l in "${SERVER_LOGS[@]}"; do
      [ -s "$l" ] || continue
      printf '\n----- last 30 lines of %s -----\n' "$l" >&2
      tail -n 30 "$l" | cut -c1-600 >&2
    done
    printf '\n[%s] FAILED (exit %s)%s\n' "$E2E_NAME" "$rc" "${E2E_FAILURE:+: $E2E_FAILURE}" >&2
  elif [ -z "${E2E_SKIPPED:-}" ]; then
    printf '[%s] PASSED\n' "$E2E_NAME" >&2
  fi
  local d
  for d in "${E2E_EXTRA_DIRS[@]}"; do rm -rf "$d"; done
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
    if [ -n "${E2E_KEEP:-}" ]; then
      printf '[%s] kept work dir %s\n' "$E2E_NAME" "$WORK" >&2
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}

# e2e_init: temp dir, traps, private container-tools configuration.
e2e_init() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-e2e-${E2E_NAME}.XXXXXX")
  trap _e2e_cleanup EXIT
  # A command that fails outside fail() (set -e) still says where and what it was.
  set -E
  trap '_e2e_err $? "${BASH_SOURCE[0]}" "$LINENO" "$BASH_COMMAND"' ERR
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$WORK/home" "$WORK/run" "$WORK/config" "$WORK/registries.d" "$WORK/tmp" "$WORK/sigstore"
  chmod 700 "$WORK/run"
  cat >"$WORK/policy.json" <<'EOF'
{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]}}}
EOF
  printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' >"$WORK/registries.conf"
  printf '{"auths":{}}\n' >"$WORK/auth.json"
  # Signatures are looked up (and would be stored) in a private lookaside dir, not the machine's.
  printf 'default-docker:\n  lookaside: file://%s/sigstore\n' "$WORK" >"$WORK/registries.d/default.yaml"
  export HOME="$WORK/home" XDG_RUNTIME_DIR="$WORK/run" XDG_CONFIG_HOME="$WORK/config"
  # skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF; the wrappers pass --registries-conf (podman
  # honours the variable). Not REGISTRY_AUTH_FILE: docker-registry reads REGISTRY_* variables as
  # configuration; the skopeo wrappers pass --authfile instead.
  export CONTAINERS_REGISTRIES_CONF="$WORK/registries.conf"
  export TMPDIR="$WORK/tmp"
  # Avoid any proxy configured on the machine for loopback traffic.
  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
  export no_proxy='*' NO_PROXY='*'
  log "work dir $WORK"
}

# e2e_init_skopeo_distribution: e2e_init, then the tools of a test that copies images with skopeo
# and runs Debian's docker-registry (skipped when one is missing).
e2e_init_skopeo_distribution() {
  e2e_init
  need_cmd skopeo
  need_cmd curl
  need_cmd docker-registry
}

# start_rgw BUCKET: Ceph's RADOS Gateway in $WORK/rgw (tests/fixtures/s3/rgw-test-up.sh) with
# BUCKET, stopped before the cleanup removes $WORK, keeping the test's status; skipped when
# radosgw is not installed. Sets RGW_DIR and exports S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY,
# S3_REGION, S3_BUCKET.
start_rgw() {
  command -v radosgw >/dev/null 2>&1 && command -v ceph-mon >/dev/null 2>&1 ||
    skip "radosgw and ceph-mon are not installed (scripts/install-deps.sh installs them)"
  RGW_DIR="$WORK/rgw"
  trap '_rc=$?; "$BERTH_SRC/tests/fixtures/s3/rgw-down.sh" "$RGW_DIR" >/dev/null 2>&1; (exit $_rc); _e2e_cleanup' EXIT
  eval "$("$BERTH_SRC/tests/fixtures/s3/rgw-test-up.sh" "$RGW_DIR" "$1")"
  export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY S3_REGION S3_BUCKET
  log "radosgw at $S3_ENDPOINT, bucket $S3_BUCKET"
}

# s3_storage_yaml ROOTDIR: the first lines of a storage section on the bucket start_rgw made (or
# the S3_* variables name), below ROOTDIR, in 5 MiB parts (the smallest S3 takes, so that a few
# MiB already span parts). More storage keys may follow, two spaces deep.
s3_storage_yaml() {
  cat <<CFG
storage:
  s3:
    accesskey: $S3_ACCESS_KEY
    secretkey: $S3_SECRET_KEY
    region: $S3_REGION
    regionendpoint: $S3_ENDPOINT
    bucket: $S3_BUCKET
    rootdirectory: $1
    chunksize: 5242880
CFG
}

# set_podman_runroot DIR: sets RUNROOT, a podman runroot for storage under DIR. podman refuses a
# runroot of 50 characters or more, so under a long TMPDIR it is a short directory in /tmp,
# removed at exit.
set_podman_runroot() {
  RUNROOT="$1/run"
  if [ ${#RUNROOT} -ge 50 ]; then
    RUNROOT=$(mktemp -d /tmp/berth-pm.XXXXXX)
    E2E_EXTRA_DIRS+=("$RUNROOT")
  fi
  mkdir -p "$RUNROOT"
}

# need_cmd CMD PACKAGE: make sure CMD exists, apt-get installing PACKAGE when root; else skip.
need_cmd() {
  local cmd=$1 pkg=${2:-$1}
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing $pkg"
    "$BERTH_SRC/scripts/apt-install.sh" "$pkg" || true
  fi
  command -v "$cmd" >/dev/null 2>&1 || skip "$cmd is not installed and could not be installed (package $pkg)"
}

need_berth() {
  [ -n "${BERTH_BIN:-}" ] || fail "BERTH_BIN is not set (path of the berth binary)"
  [ -x "$BERTH_BIN" ] || fail "BERTH_BIN=$BERTH_BIN is not an executable file"
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }

# _start_server NAME LOGFILE PORT CMD...: launch in background, wait for GET /v2/ to answer 200 (or 401).
# Sets SERVER_PID. Returns 1 if the process died before getting ready (e.g. port taken).
_start_server() {
  local name=$1 logf=$2 port=$3
  shift 3
  # With setpriv --pdeathsig the server gets SIGTERM even if this shell is SIGKILLed (say, by
  # a CTest timeout), so no server outlives its test.
  local guard=()
  if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
  "${guard[@]}" "$@" >"$logf" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  SERVER_LOGS+=("$logf")
  local i
  for ((i = 0; i < 200; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" 2>/dev/null || true
      log "$name exited before it was ready; its log:"
      tail -n 20 "$logf" >&2
      return 1
    fi
    # (401: up, with auth configured.)
    case "$(http_code "http://127.0.0.1:$port/v2/")" in 200 | 401) return 0 ;; esac
    sleep 0.05
  done
  fail "$name did not answer GET http://127.0.0.1:$port/v2/ with 200 or 401 within 10s (log: $logf)"
}

# start_berth ROOT [extra berth args...]: sets BERTH_PORT, BERTH_PID, BERTH_LOG, BERTH_HOST.
# With BERTH_CONFIG=FILE in the environment, runs `berth serve FILE --addr ... --root ROOT ...`.
start_berth() {
  local root=$1
  shift
  mkdir -p "$root"
  local cfgarg=()
  if [ -n "${BERTH_CONFIG:-}" ]; then cfgarg=("$BERTH_CONFIG"); fi

  for _ in 1 2 3; do
    BERTH_PORT=$(free_port)
    BERTH_LOG="$WORK/berth-$BERTH_PORT.log"
    # berth, like docker-registry, reads REGISTRY_* variables as configuration: none leak in.
    # shellcheck disable=SC2046
    if _start_server berth "$BERTH_LOG" "$BERTH_PORT" env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') \
      "$BERTH_BIN" serve "${cfgarg[@]}" --addr "127.0.0.1:$BERTH_PORT" --root "$root" "$@"; then
      BERTH_PID=$SERVER_PID
      BERTH_HOST="127.0.0.1:$BERTH_PORT"
      log "berth pid $BERTH_PID on $BERTH_HOST root $root ${cfgarg[*]} $* (log $BERTH_LOG)"
      return 0
    fi
  done
  fail "berth would not start (see $BERTH_LOG)"
}

# start_proxy ROOT URL [PROXY_YAML_LINES]: berth on ROOT caching URL. Sets what start_berth sets.
start_proxy() {
  local root=$1 url=$2 extra=${3:-} dir="$WORK/proxy.$RANDOM"
  mkdir -p "$dir"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nproxy:\n  remoteurl: %s\n%s\n' \
    "$root" "$url" "$extra" >"$dir/config.yml"
  BERTH_CONFIG="$dir/config.yml" start_berth "$root"
}

# start_distribution ROOT: CNCF Distribution (docker-registry) with delete enabled on ROOT.
# Sets DIST_PORT, DIST_PID, DIST_LOG, DIST_HOST.
start_distribution() {
  local root=$1
  mkdir -p "$root"
  local cfg
  for _ in 1 2 3; do
    DIST_PORT=$(free_port)
    cfg="$WORK/distribution-$DIST_PORT.yml"
    cat >"$cfg" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $root
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$DIST_PORT
EOF
    DIST_LOG="$WORK/distribution-$DIST_PORT.log"
    # (Word splitting intended: one "-u NAME" pair per REGISTRY_* variable.)
    # shellcheck disable=SC2046
    if _start_server docker-registry "$DIST_LOG" "$DIST_PORT" \
      env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') docker-registry serve "$cfg"; then
      DIST_PID=$SERVER_PID
      DIST_HOST="127.0.0.1:$DIST_PORT"
      log "docker-registry pid $DIST_PID on $DIST_HOST root $root (log $DIST_LOG)"
      return 0
    fi
  done
  fail "docker-registry would not start (see $DIST_LOG)"
}

# start_upstream ROOT [AUTH_YAML]: docker-registry on ROOT as a pull-through cache's upstream (its
# access log on, no deletes; the auth section AUTH_YAML indented under auth:). Sets UP_HOST,
# UP_PID, UP_LOG.
start_upstream() {
  local root=$1 auth=${2:-} cfg port
  mkdir -p "$root"
  for _ in 1 2 3; do
    port=$(free_port)
    cfg="$WORK/upstream-$port.yml"
    cat >"$cfg" <<YML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $root
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
YML
    [ -z "$auth" ] || printf 'auth:\n%s\n' "$auth" >>"$cfg"
    UP_LOG="$WORK/upstream-$port.log"
    # shellcheck disable=SC2046
    if _start_server docker-registry "$UP_LOG" "$port" \
      env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') docker-registry serve "$cfg"; then
      UP_PID=$SERVER_PID
      UP_HOST=127.0.0.1:$port
      log "upstream docker-registry pid $UP_PID on $UP_HOST (log $UP_LOG)"
      return 0
    fi
  done
  fail "docker-registry would not start"
}

# start_token_upstream ACCESS_JSON [ADDR]: a token server (start_token_server, on ADDR) with a
# fresh signer in $WORK/token and one user, mirror with password "mirror pass", whose access is
# ACCESS_JSON ({"REPO": ["pull"], ...}), and the upstream on $WORK/up (start_upstream) trusting
# it as service upstream-e2e. Sets TOKEN_URL and what start_upstream sets.
start_token_upstream() {
  local dir="$WORK/token"
  make_token_signer "$dir"
  printf '{"mirror": {"password": "mirror pass", "access": %s}}\n' "$1" >"$dir/users.json"
  start_token_server "$dir/rsa.key" "$dir/rsa.crt" "$dir/users.json" "${2:-}"
  start_upstream "$WORK/up" "  token:
    realm: $TOKEN_URL/token
    service: upstream-e2e
    issuer: e2e-issuer
    rootcertbundle: $dir/rsa.crt"
}

# start_target ROOT: the registry under test on ROOT, berth (with deletes on) or, with
# E2E_TARGET=distribution, docker-registry. Sets H (host:port) and REG_LOG.
start_target() {
  if [ "${E2E_TARGET:-berth}" = distribution ]; then
    need_cmd docker-registry
    start_distribution "$1"
    H=$DIST_HOST
    REG_LOG=$DIST_LOG
  else
    need_berth
    start_berth "$1" --delete
    H=$BERTH_HOST
    REG_LOG=$BERTH_LOG
  fi
}

# push_test_images HOST PREFIX: skopeo pushes every image of $IMG (make_images) to
# HOST/PREFIX/NAME:v1, digests preserved, indexes with all their instances.
push_test_images() {
  local i all
  for i in multi big docker multiarch dockerlist; do
    all=()
    case $i in multiarch | dockerlist) all=(--all) ;; esac
    sk_copy "$(img_ref "$IMG/$i")" "docker://$1/$2/$i:v1" --preserve-digests "${all[@]}"
  done
}

# make_token_signer DIR [CN]: DIR (created) with a fresh RSA key, rsa.key, and a certificate for
# it, rsa.crt, subject CN (default "e2e token signer"): what start_token_server signs with.
make_token_signer() {
  need_cmd openssl
  mkdir -p "$1"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1/rsa.key" 2>/dev/null
  openssl req -x509 -new -key "$1/rsa.key" -subj "/CN=${2:-e2e token signer}" -days 2 -out "$1/rsa.crt" 2>/dev/null
}

# start_token_server KEY CERT USERS_JSON [ADDR]: tests/fixtures/auth/tokenserver.py signing RS256
# tokens for issuer e2e-issuer with KEY/CERT, users and access from USERS_JSON, listening on ADDR
# (default 127.0.0.1). Sets TOKEN_URL (its base URL; the realm is $TOKEN_URL/token) and TOKEN_PID.
start_token_server() {
  local portf="$WORK/tokensrv.$RANDOM.port" guard=() i addr=${4:-127.0.0.1}
  if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
  "${guard[@]}" "$PY" "$BERTH_SRC/tests/fixtures/auth/tokenserver.py" serve --key "$1" --cert "$2" --alg RS256 \
    --issuer e2e-issuer --users "$3" --port-file "$portf" --host "$addr" >"$WORK/tokenserver.log" 2>&1 &
  TOKEN_PID=$!
  SERVER_PIDS+=("$TOKEN_PID")
  SERVER_LOGS+=("$WORK/tokenserver.log")
  for ((i = 0; i < 100; i++)); do [ -s "$portf" ] && break; sleep 0.05; done
  [ -s "$portf" ] || fail "the token server did not start (log $WORK/tokenserver.log)"
  TOKEN_URL="http://$addr:$(cat "$portf")"
}

# _start_berth_auth DIR ROOT AUTH_YAML: berth on ROOT with the auth section AUTH_YAML (indented
# under auth:), its configuration written to DIR/config.yml.
_start_berth_auth() {
  cat >"$1/config.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $2
auth:
$3
EOF
  BERTH_CONFIG="$1/config.yml" start_berth "$2"
}

# start_berth_htpasswd ROOT USER PASSWORD: berth on ROOT behind htpasswd auth with one user
# (bcrypt). Sets what start_berth sets.
start_berth_htpasswd() {
  need_cmd htpasswd apache2-utils
  local dir="$WORK/htpasswd.$RANDOM"
  mkdir -p "$dir"
  htpasswd -Bbc "$dir/htpasswd" "$2" "$3" 2>/dev/null
  _start_berth_auth "$dir" "$1" "  htpasswd:
    realm: berth-e2e
    path: $dir/htpasswd"
}

# start_berth_token ROOT PREFIX: a token server (start_token_server) with a fresh RSA key and
# certificate, and berth on ROOT trusting it (service berth-e2e). One user, ci-bot with password
# "s3cret pass", may pull and push PREFIX/app and PREFIX/base and only pull PREFIX/other. Sets
# TOKEN_URL and what start_berth sets.
start_berth_token() {
  local dir="$WORK/token.$RANDOM"
  make_token_signer "$dir"
  printf '{"ci-bot": {"password": "s3cret pass", "access": {"%s/app": ["pull", "push"], "%s/base": ["pull", "push"], "%s/other": ["pull"]}}}\n' \
    "$2" "$2" "$2" >"$dir/users.json"
  start_token_server "$dir/rsa.key" "$dir/rsa.crt" "$dir/users.json"
  _start_berth_auth "$dir" "$1" "  token:
    realm: $TOKEN_URL/token
    service: berth-e2e
    issuer: e2e-issuer
    rootcertbundle: $dir/rsa.crt"
}

# start_containerd [DIR]: a private containerd daemon (its own root, state and sockets under DIR,
# default $WORK/containerd, the CRI plugin off, killed on exit like the servers). Sets CTRD_SOCK
# and CTRD_PID; returns 1, with the tail of its log on stderr, if it does not answer within 10 s.
start_containerd() {
  local dir=${1:-$WORK/containerd}
  local sock_dir=$dir
  # A unix socket path must fit in 108 bytes, and TMPDIR may be long.
  [ ${#sock_dir} -lt 80 ] || sock_dir=$(mktemp -d /tmp/berth-ctrd.XXXXXX)
  mkdir -p "$dir/root" "$dir/state"
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock_dir/ctrd.sock"
[ttrpc]
  address = "$sock_dir/ctrd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
EOF
  CTRD_SOCK="$sock_dir/ctrd.sock"
  local guard=()
  if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
  "${guard[@]}" containerd --config "$dir/config.toml" >"$dir.log" 2>&1 &
  CTRD_PID=$!
  SERVER_PIDS+=("$CTRD_PID")
  SERVER_LOGS+=("$dir.log")
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$CTRD_PID" 2>/dev/null || break
    if ctr --address "$CTRD_SOCK" version >/dev/null 2>&1; then
      log "containerd $(containerd --version | awk '{print $3}') pid $CTRD_PID socket $CTRD_SOCK"
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$dir.log" >&2
  return 1
}

# stop_server PID
stop_server() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# stop_berth_cleanly: SIGTERM to $BERTH_PID, then berth must exit 0 within 30 s (a call left
# waiting on an upstream would keep it 60 s and more) and $BERTH_LOG hold no sanitizer report (in
# a sanitizer build, a leak on the way out shows here).
stop_berth_cleanly() {
  kill "$BERTH_PID"
  local i
  for ((i = 0; i < 300; i++)); do kill -0 "$BERTH_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$BERTH_PID" 2>/dev/null && fail "berth did not stop within 30 s of SIGTERM"
  local rc=0
  wait "$BERTH_PID" || rc=$?
  [ "$rc" = 0 ] || fail "berth exited with status $rc"
  if grep -e 'Sanitizer' -e 'runtime error' "$BERTH_LOG" >&2; then fail "sanitizer report in berth's log"; fi
}

# ---------- skopeo ----------

_sk() {
  local dbg=()
  [ -n "${E2E_DEBUG:-}" ] && dbg=(--debug)
  skopeo "${dbg[@]}" --policy "$WORK/policy.json" --registries.d "$WORK/registries.d" \
    --registries-conf "$WORK/registries.conf" --tmpdir "$WORK/tmp" "$@"
}

# sk_copy SRC DST [extra copy args...]; output goes to $WORK/last-copy.out (and stderr on failure)
sk_copy() {
  local src=$1 dst=$2
  shift 2
  if ! _sk copy --src-tls-verify=false --dest-tls-verify=false --src-authfile "$WORK/auth.json" \
    --dest-authfile "$WORK/auth.json" --retry-times 0 "$@" "$src" "$dst" >"$WORK/last-copy.out" 2>&1; then
    cat "$WORK/last-copy.out" >&2
    fail "skopeo copy $* $src $dst failed"
  fi
}
# sk_copy_try SRC DST [args]: like sk_copy but returns skopeo's status instead of failing.
sk_copy_try() {
  local src=$1 dst=$2
  shift 2
  _sk copy --src-tls-verify=false --dest-tls-verify=false --src-authfile "$WORK/auth.json" \
    --dest-authfile "$WORK/auth.json" --retry-times 0 "$@" "$src" "$dst" >"$WORK/last-copy.out" 2>&1
}
sk_inspect()   { _sk inspect --tls-verify=false --authfile "$WORK/auth.json" --retry-times 0 "$@"; }
sk_list_tags() { _sk list-tags --tls-verify=false --authfile "$WORK/auth.json" "$@"; }
sk_delete()    { _sk delete --tls-verify=false --authfile "$WORK/auth.json" "$@"; }

# After a copy run with E2E_DEBUG=1: how many blob uploads it started (plain POST .../uploads/),
# and how many cross-repository mounts succeeded.
copy_uploads() { grep -c 'msg="POST http[^"?]*/blobs/uploads/"' "$WORK/last-copy.out" || true; }
copy_mounts()  { grep -c 'msg="\.\.\. mount OK"' "$WORK/last-copy.out" || true; }

# ---------- OCI layout / blob helpers ----------

# Path of the test image generator output: make_images DIR [--big-size N]
make_images() {
  local out=$1
  shift
  "$PY" "$BERTH_SRC/scripts/make-test-images.py" "$out" --big-size "${E2E_BIG_SIZE:-67108864}" "$@" >"$out.digests" ||
    fail "make-test-images.py failed"
}

# Test images (scripts/make-test-images.py) come in two formats: OCI image layouts (multi, big,
# multiarch; skopeo ref oci:PATH:latest) and skopeo dir: directories (docker, dockerlist; the
# oci: transport refuses Docker media types). The helpers below accept either, and the copies
# skopeo pulls back (oci:COPY:latest or dir:COPY).

# img_ref PATH: skopeo reference for a test image or a pulled copy.
img_ref() {
  if [ -f "$1/oci-layout" ]; then printf 'oci:%s:latest' "$1"; else printf 'dir:%s' "$1"; fi
}

# The image walking/comparing logic, in Python (stdlib): run as "$PY" -c "$IMGTOOL" CMD ARGS.
#   blobs PATH [DIGEST]     print "KIND DIGEST FILE" per blob of the image (from its top
#                           manifest, or from manifest DIGEST): KIND M = manifest (top first),
#                           L = layer/config
#   same EXPECTED GOT [DIGEST]  exit 1 with a message unless GOT holds exactly that image
IMGTOOL=$(cat <<'EOF'
import hashlib, json, os, sys

def load(path):
    """(top digest, file_of(digest, is_manifest)) for an OCI layout or a skopeo dir: copy."""
    oci = os.path.exists(os.path.join(path, "oci-layout"))
    if oci:
        top = json.load(open(os.path.join(path, "index.json")))["manifests"][0]["digest"]
    else:
        top = "sha256:" + hashlib.sha256(open(os.path.join(path, "manifest.json"), "rb").read()).hexdigest()
    def file_of(d, manifest=False):
        h = d.split(":", 1)[1]
        if oci:
            return os.path.join(path, "blobs", "sha256", h)
        if d == top:
            return os.path.join(path, "manifest.json")
        return os.path.join(path, h + (".manifest.json" if manifest else ""))
    return oci, top, file_of

def blobs(path, start=""):
    oci, top, file_of = load(path)
    out, seen = [], set()
    def walk(d):
        f = file_of(d, True)
        if not os.path.exists(f):
            sys.exit("manifest %s not found in %s" % (d, path))
        if d not in seen:
            seen.add(d); out.append(("M", d, f))
        m = json.load(open(f, "rb"))
        if "manifests" in m:
            for c in m["manifests"]:
                walk(c["digest"])
        else:
            for b in [m["config"]] + m["layers"]:
                f = file_of(b["digest"])
                if not os.path.exists(f):
                    sys.exit("blob %s not found in %s" % (b["digest"], path))
                if b["digest"] not in seen:
                    seen.add(b["digest"]); out.append(("L", b["digest"], f))
    walk(start or top)
    return out

def sha(f):
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()

def same(exp, got, start=""):
    want = blobs(exp, start)
    have = blobs(got)
    if want[0][1] != have[0][1]:
        sys.exit("manifest digest differs: pushed %s, pulled back %s (%s)" % (want[0][1], have[0][1], got))
    ws, hs = {(k, d) for k, d, _ in want}, {(k, d) for k, d, _ in have}
    if ws != hs:
        sys.exit("blob sets differ: only in pushed %s: %s; only in pulled %s: %s"
                 % (exp, sorted(ws - hs), got, sorted(hs - ws)))
    hf = {d: f for _, d, f in have}
    for _, d, fw in want:
        fh = hf[d]
        if sha(fh) != d:
            sys.exit("pulled blob %s does not hash to %s" % (fh, d))
        if open(fw, "rb").read() != open(fh, "rb").read():
            sys.exit("blob %s differs between pushed (%s) and pulled (%s)" % (d, fw, fh))
    if os.path.exists(os.path.join(got, "oci-layout")):
        files = os.listdir(os.path.join(got, "blobs", "sha256"))
    else:
        files = [f for f in os.listdir(got) if f != "version"]
    if len(files) != len(want):
        sys.exit("pulled copy %s has %d blob files, expected %d" % (got, len(files), len(want)))

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "blobs":
    for k, d, f in blobs(*args):
        print(k, d, f)
elif cmd == "same":
    same(*args)
EOF
)

# img_blobs PATH [DIGEST]: see IMGTOOL blobs.
img_blobs() { "$PY" -c "$IMGTOOL" blobs "$@"; }

# img_digest PATH: digest of the image's top manifest.
img_digest() {
  local b
  b=$(img_blobs "$1") || return 1
  head -n1 <<<"$b" | cut -d' ' -f2
}

# img_manifest_file PATH [DIGEST]: file holding the top manifest (or manifest DIGEST).
img_manifest_file() {
  local b
  b=$(img_blobs "$1" "${2:-}") || return 1
  head -n1 <<<"$b" | cut -d' ' -f3
}

# assert_same_image EXPECTED GOT [DIGEST]: GOT (a pulled oci: or dir: copy) holds exactly the
# image EXPECTED (or, with DIGEST, the sub-image of EXPECTED rooted at manifest DIGEST):
# same top manifest digest, same set of blobs, every blob byte-identical, nothing extra.
assert_same_image() {
  local msg
  msg=$("$PY" -c "$IMGTOOL" same "$@" 2>&1) || fail "${msg:-comparing $1 and $2 failed}"
}

# json_get FILE|- PYEXPR: evaluate PYEXPR with `j` bound to the parsed JSON, print result.
json_get() {
  local src=$1 expr=$2
  "$PY" -c '
import json, sys
src, expr = sys.argv[1], sys.argv[2]
j = json.load(sys.stdin if src == "-" else open(src))
r = eval(expr)
print(r if isinstance(r, str) else json.dumps(r, sort_keys=True))
' "$src" "$expr"
}

# ---------- Distribution storage layout checks ----------

# assert_link FILE DIGEST: FILE holds exactly DIGEST, no trailing newline.
assert_link() {
  local f=$1 want=$2
  [ -f "$f" ] || fail "missing link file $f"
  local got
  got=$(od -An -c "$f" | tr -d ' \n')
  [ "$(cat "$f")" = "$want" ] || fail "link $f holds '$(cat "$f")', want '$want'"
  [ "$(wc -c <"$f")" -eq "${#want}" ] || fail "link $f has extra bytes (expected exactly '$want', no newline): $got"
}

# assert_blob_data STORAGE_ROOT DIGEST [EXPECTED_FILE]
assert_blob_data() {
  local root=$1 d=$2 hex=${2#sha256:}
  local f="$root/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
  [ -f "$f" ] || fail "blob data file missing: $f"
  [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$hex" ] || fail "blob data $f does not hash to $d"
  if [ -n "${3:-}" ]; then cmp -s "$3" "$f" || fail "blob data $f differs from $3"; fi
}

# assert_repo_layout STORAGE_ROOT REPO TAG IMAGE: Distribution's on-disk layout for a pushed
# image: tag current/index links, a revision link per manifest (children of an index too), a
# layer link per layer/config, and blob data files byte-identical to the pushed blobs.
# eventually CMD [ARGS...]: runs CMD (a check that fails, e.g. assert_link) until it passes, for
# up to E2E_SETTLE seconds (default 60), then once more for the verdict. For what a server
# finishes after its answer: the pull-through cache stores a manifest and links a blob once its
# clients have them, so a pull can end a moment before the store shows it.
eventually() {
  local deadline=$((SECONDS + ${E2E_SETTLE:-60}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ("$@") >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  "$@"
}
assert_repo_layout() {
  local root=$1 repo=$2 tag=$3 img=$4
  local r="$root/docker/registry/v2/repositories/$repo"
  [ -d "$r" ] || fail "repository directory $r missing"
  local blobs top
  blobs=$(img_blobs "$img") || fail "cannot read $img"
  top=$(head -n1 <<<"$blobs" | cut -d' ' -f2)
  assert_link "$r/_manifests/tags/$tag/current/link" "$top"
  assert_link "$r/_manifests/tags/$tag/index/sha256/${top#sha256:}/link" "$top"
  local kind d f
  while read -r kind d f; do
    if [ "$kind" = M ]; then
      assert_link "$r/_manifests/revisions/sha256/${d#sha256:}/link" "$d"
    else
      assert_link "$r/_layers/sha256/${d#sha256:}/link" "$d"
    fi
    assert_blob_data "$root" "$d" "$f"
  done <<<"$blobs"
}
