#!/usr/bin/env bash
# End-to-end: a pull-through cache of an upstream served over HTTPS (Debian's docker-registry
# with a certificate from a throw-away CA made here with openssl). berth verifies the upstream:
# with the CA not trusted the pull fails with a clear error in the log; trusted through
# SSL_CERT_FILE or SSL_CERT_DIR (as Go, and so Distribution, reads them; checked side by side
# with docker-registry as the cache) the pull works byte for byte. An SSL_CERT_FILE that cannot
# be read is refused at start-up. Nothing is installed in the system's trust store.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
need_cmd openssl
need_berth

IMG="$WORK/img"
E2E_BIG_SIZE=1048576 make_images "$IMG"

step "a throw-away CA and a certificate for 127.0.0.1 signed by it"
PKI="$WORK/pki"
mkdir -p "$PKI/certs"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.pem" -days 2 \
  -subj "/CN=berth e2e throw-away CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$PKI/server.key" -out "$PKI/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$PKI/ext.cnf"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
  -extfile "$PKI/ext.cnf" -out "$PKI/server.pem" 2>/dev/null
# SSL_CERT_DIR is read as OpenSSL reads a directory: certificates under their hash names.
cp "$PKI/ca.pem" "$PKI/certs/"
openssl rehash "$PKI/certs" 2>/dev/null || ln -s ca.pem "$PKI/certs/$(openssl x509 -hash -noout -in "$PKI/ca.pem").0"

step "the upstream over HTTPS holds a test image"
for _ in 1 2 3; do
  port=$(free_port)
  cat >"$WORK/upstream.yml" <<YML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $WORK/up
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $PKI/server.pem
    key: $PKI/server.key
YML
  guard=()
  if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
  # shellcheck disable=SC2046
  "${guard[@]}" env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') docker-registry serve "$WORK/upstream.yml" \
    >"$WORK/upstream.log" 2>&1 &
  UP_PID=$!
  SERVER_PIDS+=("$UP_PID")
  SERVER_LOGS+=("$WORK/upstream.log")
  for _ in $(seq 200); do
    kill -0 "$UP_PID" 2>/dev/null || break
    [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.pem" "https://127.0.0.1:$port/v2/")" = 200 ] && break
    sleep 0.05
  done
  kill -0 "$UP_PID" 2>/dev/null && break
done
UP="https://127.0.0.1:$port"
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.pem" "$UP/v2/")" = 200 ] || fail "the HTTPS upstream does not answer"
sk_copy "$(img_ref "$IMG/multi")" "docker://127.0.0.1:$port/e2e/multi:v1" --preserve-digests

# start_proxy NAME: berth on $WORK/NAME caching $UP (with whatever SSL_CERT_* the caller set).
start_proxy() {
  mkdir -p "$WORK/$1"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/root\nproxy:\n  remoteurl: %s\n' "$WORK/$1" "$UP" \
    >"$WORK/$1/config.yml"
  BERTH_CONFIG="$WORK/$1/config.yml" start_berth "$WORK/$1/root"
}

pull_check() { # REF: skopeo pulls REF, byte for byte the multi image
  rm -rf "$WORK/pull"
  sk_copy "docker://$1" "dir:$WORK/pull" --preserve-digests
  assert_same_image "$IMG/multi" "$WORK/pull"
}

step "the CA not trusted: the pull fails, the log says why"
unset SSL_CERT_FILE SSL_CERT_DIR
start_proxy untrusted
code=$(http_code "http://$BERTH_HOST/v2/e2e/multi/manifests/v1")
[ "$code" = 503 ] || fail "a manifest from an untrusted upstream answered $code, want 503"
grep -q "upstream $UP: cannot get tag e2e/multi:v1: SSL certificate problem: unable to get local issuer certificate" "$BERTH_LOG" ||
  fail "the log does not say the upstream's certificate is not trusted: $(tail -n 5 "$BERTH_LOG")"
[ -z "$(ls "$WORK/untrusted/root/docker/registry/v2/repositories" 2>/dev/null)" ] || fail "something was cached"
stop_server "$BERTH_PID"

step "SSL_CERT_FILE names the CA: the pull works"
export SSL_CERT_FILE="$PKI/ca.pem"
start_proxy file
unset SSL_CERT_FILE
pull_check "$BERTH_HOST/e2e/multi:v1"
assert_repo_layout "$WORK/file/root" e2e/multi v1 "$IMG/multi"
stop_server "$BERTH_PID"

step "SSL_CERT_DIR names a directory holding it: the pull works"
export SSL_CERT_DIR="/nonexistent:$PKI/certs"
start_proxy dir
unset SSL_CERT_DIR
pull_check "$BERTH_HOST/e2e/multi:v1"
stop_server "$BERTH_PID"

step "an SSL_CERT_FILE that cannot be read is refused at start-up"
mkdir -p "$WORK/badca"
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/root\nproxy:\n  remoteurl: %s\n' "$WORK/badca" "$UP" \
  >"$WORK/badca/config.yml"
rc=0
SSL_CERT_FILE="$WORK/nonexistent.pem" timeout 10 "$BERTH_BIN" serve "$WORK/badca/config.yml" --addr 127.0.0.1:0 \
  >"$WORK/badca/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "berth with an unreadable SSL_CERT_FILE exited $rc: $(cat "$WORK/badca/out")"
grep -qF "SSL_CERT_FILE '$WORK/nonexistent.pem': no such file or directory" "$WORK/badca/out" ||
  fail "the refusal does not name SSL_CERT_FILE: $(cat "$WORK/badca/out")"

step "side by side: docker-registry as the cache refuses the untrusted upstream, and trusts it through SSL_CERT_FILE"
# Distribution asks the upstream for /v2/ as it starts: untrusted, it does not start.
dist_cache() { # ROOT PORT ENV...: docker-registry as a cache of $UP on PORT
  local root=$1 dport=$2
  shift 2
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\nproxy:\n  remoteurl: %s\n' \
    "$root" "$dport" "$UP" >"$root.yml"
  # shellcheck disable=SC2046
  _start_server docker-registry "$root.log" "$dport" env -u SSL_CERT_DIR -u SSL_CERT_FILE "$@" \
    $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') docker-registry serve "$root.yml"
}
if dist_cache "$WORK/dist-untrusted" "$(free_port)" 2>/dev/null; then
  fail "docker-registry started as a cache of an untrusted upstream"
fi
grep -q 'x509: certificate signed by unknown authority' "$WORK/dist-untrusted.log" ||
  fail "docker-registry failed otherwise: $(tail -n 3 "$WORK/dist-untrusted.log")"
dport=$(free_port)
dist_cache "$WORK/dist-trusted" "$dport" "SSL_CERT_FILE=$PKI/ca.pem" || fail "docker-registry with SSL_CERT_FILE would not start"
code=$(http_code -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$dport/v2/e2e/multi/manifests/v1")
[ "$code" = 200 ] || fail "docker-registry with SSL_CERT_FILE answered $code"
stop_server "$SERVER_PID"
