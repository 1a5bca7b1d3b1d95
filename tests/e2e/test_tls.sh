#!/usr/bin/env bash
# End-to-end: berth serving HTTPS from http.tls.certificate/key, and mutual TLS with
# http.tls.clientcas, checked with curl and skopeo the way an operator would set them up.
#
# Certificates are made here with the openssl CLI: a server CA and a server certificate for
# 127.0.0.1 and localhost; a separate client CA with a client certificate; and a "rogue" client
# certificate signed by the server CA (a CA berth is not told to trust for clients).
# skopeo reads a --*-cert-dir the way containers/image does: *.crt are CA certificates,
# NAME.cert + NAME.key a client certificate.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
need_cmd skopeo
need_cmd curl
need_cmd openssl

C="$WORK/certs"
mkdir -p "$C"

# mk_ca NAME: self-signed CA certificate $C/NAME.crt with key $C/NAME.key
mk_ca() {
  printf '[req]\ndistinguished_name=dn\nx509_extensions=ext\n[dn]\n[ext]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' >"$C/$1.cnf"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=berth e2e $1" -config "$C/$1.cnf" -keyout "$C/$1.key" -out "$C/$1.crt" 2>"$C/$1.err" ||
    { cat "$C/$1.err" >&2; fail "openssl: cannot make CA $1"; }
}

# mk_cert CA NAME CN EXTENSIONS: $C/NAME.crt (signed by CA) and $C/NAME.key
mk_cert() {
  local ca=$1 name=$2 cn=$3 ext=$4
  printf '%b' "$ext" >"$C/$name.ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$cn" \
    -keyout "$C/$name.key" -out "$C/$name.csr" 2>"$C/$name.err" &&
    openssl x509 -req -in "$C/$name.csr" -CA "$C/$ca.crt" -CAkey "$C/$ca.key" -CAcreateserial \
      -days 2 -extfile "$C/$name.ext" -out "$C/$name.crt" 2>>"$C/$name.err" ||
    { cat "$C/$name.err" >&2; fail "openssl: cannot make certificate $name"; }
}

step "certificates"
mk_ca server-ca
mk_ca client-ca
mk_cert server-ca server 127.0.0.1 \
  'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
mk_cert client-ca client 'berth e2e client' \
  'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
mk_cert server-ca rogue 'berth e2e rogue client' \
  'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
openssl verify -CAfile "$C/server-ca.crt" "$C/server.crt" >/dev/null || fail "server certificate does not verify"
openssl verify -CAfile "$C/client-ca.crt" "$C/client.crt" >/dev/null || fail "client certificate does not verify"

# skopeo certificate directories
mkdir -p "$WORK/cd-ca" "$WORK/cd-client" "$WORK/cd-rogue" "$WORK/cd-empty"
cp "$C/server-ca.crt" "$WORK/cd-ca/ca.crt"
cp "$C/server-ca.crt" "$WORK/cd-client/ca.crt"
cp "$C/client.crt" "$WORK/cd-client/client.cert"
cp "$C/client.key" "$WORK/cd-client/client.key"
cp "$C/server-ca.crt" "$WORK/cd-rogue/ca.crt"
cp "$C/rogue.crt" "$WORK/cd-rogue/client.cert"
cp "$C/rogue.key" "$WORK/cd-rogue/client.key"

step "test image"
IMG="$WORK/img"
make_images "$IMG" --only multi

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_tls NAME TLS_YAML [VAR=VALUE...]: berth with a config whose http.tls section is TLS_YAML
# (already indented under http:), and the given environment variables. Sets PORT, PID, LOGF.
# Ready when the port accepts connections (lib's start_berth probes plain HTTP, which a TLS port
# does not answer).
start_tls() {
  local name=$1 tls=$2 cfg i
  shift 2
  local guard=()
  if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
  for _ in 1 2 3; do
    PORT=$(free_port)
    cfg="$WORK/$name.yml"
    LOGF="$WORK/$name-$PORT.log"
    cat >"$cfg" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $WORK/$name-root
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
$tls
EOF
    # shellcheck disable=SC2046
    "${guard[@]}" env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') "$@" \
      "$BERTH_BIN" serve "$cfg" >"$LOGF" 2>&1 &
    PID=$!
    SERVER_PIDS+=("$PID")
    SERVER_LOGS+=("$LOGF")
    for ((i = 0; i < 200; i++)); do
      kill -0 "$PID" 2>/dev/null || break
      if port_open "$PORT"; then
        sleep 0.05
        kill -0 "$PID" 2>/dev/null || break
        log "berth ($name) pid $PID on https://127.0.0.1:$PORT (log $LOGF)"
        return 0
      fi
      sleep 0.05
    done
    kill -0 "$PID" 2>/dev/null && fail "berth ($name) not listening after 10s (log $LOGF)"
    wait "$PID" 2>/dev/null || true
    grep -q 'cannot listen' "$LOGF" || { cat "$LOGF" >&2; fail "berth ($name) exited at start"; }
  done
  fail "berth ($name) could not get a port"
}

# code URL [curl args]: the HTTP status curl got, 000 when there was no HTTP answer
code() {
  local url=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url" || true
}

# sk_tls_copy SRC DST [args]: skopeo copy with TLS verification on (lib's sk_copy turns it off)
sk_tls_copy() {
  local src=$1 dst=$2
  shift 2
  _sk copy --src-authfile "$WORK/auth.json" --dest-authfile "$WORK/auth.json" --retry-times 0 \
    "$@" "$src" "$dst" >"$WORK/last-copy.out" 2>&1
}

# stop_checked PID LOG: SIGTERM, and berth must exit 0 (a sanitizer build exits 23 on a leak)
stop_checked() {
  local pid=$1 logf=$2 rc=0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || rc=$?
  [ "$rc" -eq 0 ] || { tail -n 30 "$logf" >&2; fail "berth exited with status $rc after SIGTERM"; }
}

# ---------------------------------------------------------------------------------------------
step "TLS server (http.tls.certificate/key)"
start_tls tls "  tls:
    certificate: $C/server.crt
    key: $C/server.key"
H="127.0.0.1:$PORT"
grep -q 'listening on https://' "$LOGF" || fail "berth does not say it listens on https://"

step "curl with the CA: 127.0.0.1 and localhost"
[ "$(code "https://$H/v2/" --cacert "$C/server-ca.crt")" = 200 ] || fail "curl --cacert https://$H/v2/ is not 200"
[ "$(code "https://localhost:$PORT/v2/" --cacert "$C/server-ca.crt")" = 200 ] ||
  fail "curl --cacert https://localhost:$PORT/v2/ is not 200 (SAN DNS:localhost)"
hdr=$(curl -s -D - -o /dev/null --max-time 10 --cacert "$C/server-ca.crt" "https://$H/v2/")
grep -qi '^Docker-Distribution-API-Version: registry/2.0' <<<"$hdr" || fail "no API version header over TLS: $hdr"

step "curl without the CA fails verification"
rc=0
curl -s -o /dev/null --max-time 10 "https://$H/v2/" || rc=$?
[ "$rc" -ne 0 ] || fail "curl trusted berth's certificate without being given its CA"

step "plain HTTP to the TLS port gets a 400 that says so (as from Distribution's Go server)"
body=$(curl -s --max-time 10 -w ' %{http_code}' "http://$H/v2/" || true)
[ "$body" = "Client sent an HTTP request to an HTTPS server.
 400" ] || fail "plain HTTP to the TLS port got: $body"

step "skopeo push with --dest-cert-dir (tls-verify on)"
sk_tls_copy "$(img_ref "$IMG/multi")" "docker://$H/tls/multi:v1" --dest-tls-verify=true \
  --dest-cert-dir "$WORK/cd-ca" --preserve-digests ||
  { cat "$WORK/last-copy.out" >&2; fail "skopeo push over TLS with the CA in --dest-cert-dir failed"; }
assert_repo_layout "$WORK/tls-root" tls/multi v1 "$IMG/multi"

step "skopeo push without the CA fails (tls-verify on)"
if sk_tls_copy "$(img_ref "$IMG/multi")" "docker://$H/tls/unverified:v1" --dest-tls-verify=true \
  --dest-cert-dir "$WORK/cd-empty"; then
  fail "skopeo pushed over TLS without the CA and with verification on"
fi
grep -qiE 'x509|certificate' "$WORK/last-copy.out" ||
  { cat "$WORK/last-copy.out" >&2; fail "skopeo failed, but not on the certificate"; }
[ ! -d "$WORK/tls-root/docker/registry/v2/repositories/tls/unverified" ] ||
  fail "the unverified push reached the storage"

step "skopeo pull and inspect with --src-cert-dir"
sk_tls_copy "docker://$H/tls/multi:v1" "dir:$WORK/pulled" --src-tls-verify=true \
  --src-cert-dir "$WORK/cd-ca" --preserve-digests ||
  { cat "$WORK/last-copy.out" >&2; fail "skopeo pull over TLS failed"; }
assert_same_image "$IMG/multi" "$WORK/pulled"
d=$(_sk inspect --tls-verify=true --cert-dir "$WORK/cd-ca" --authfile "$WORK/auth.json" \
  --format '{{.Digest}}' "docker://localhost:$PORT/tls/multi:v1") || fail "skopeo inspect via localhost failed"
[ "$d" = "$(img_digest "$IMG/multi")" ] || fail "inspect over TLS: digest $d"

step "certificate renewal, as certbot's deploy hook does it: new files, then SIGHUP"
# served_cn: the CN of the certificate berth presents to a new connection
served_cn() {
  openssl s_client -connect "$H" -servername 127.0.0.1 </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null | sed -n 's/.*CN *= *//p'
}
[ "$(served_cn)" = 127.0.0.1 ] || fail "before the renewal berth serves CN '$(served_cn)'"
mk_cert server-ca renewed renewed.127.0.0.1 \
  'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
cp "$C/renewed.crt" "$C/server.crt.new" && mv "$C/server.crt.new" "$C/server.crt"
cp "$C/renewed.key" "$C/server.key.new" && mv "$C/server.key.new" "$C/server.key"
kill -HUP "$PID"
for ((i = 0; i < 100; i++)); do [ "$(served_cn)" = renewed.127.0.0.1 ] && break; sleep 0.05; done
[ "$(served_cn)" = renewed.127.0.0.1 ] || fail "after SIGHUP berth still serves CN '$(served_cn)'"
grep -q 'TLS certificate reloaded' "$LOGF" || fail "no reload line in the log"
kill -0 "$PID" 2>/dev/null || fail "berth exited on SIGHUP"
sk_tls_copy "docker://$H/tls/multi:v1" "dir:$WORK/pulled-renewed" --src-tls-verify=true \
  --src-cert-dir "$WORK/cd-ca" --preserve-digests ||
  { cat "$WORK/last-copy.out" >&2; fail "skopeo pull after the renewal failed"; }
assert_same_image "$IMG/multi" "$WORK/pulled-renewed"
stop_checked "$PID" "$LOGF"

# ---------------------------------------------------------------------------------------------
step "mutual TLS server (http.tls.clientcas)"
start_tls mtls "  tls:
    certificate: $C/server.crt
    key: $C/server.key
    clientcas:
      - $C/client-ca.crt"
H="127.0.0.1:$PORT"

step "curl without a client certificate is refused"
c=$(code "https://$H/v2/" --cacert "$C/server-ca.crt")
[ "$c" = 401 ] || [ "$c" = 000 ] || fail "no client certificate: got $c, want 401 or a TLS failure"
c=$(code "https://$H/v2/x/manifests/latest" --cacert "$C/server-ca.crt")
[ "$c" = 401 ] || [ "$c" = 000 ] || fail "no client certificate (manifest): got $c"

step "curl with a client certificate from another CA is refused"
c=$(code "https://$H/v2/" --cacert "$C/server-ca.crt" --cert "$C/rogue.crt" --key "$C/rogue.key")
[ "$c" = 401 ] || [ "$c" = 000 ] || fail "client certificate not signed by a clientca: got $c"

step "curl with the client certificate works"
c=$(code "https://$H/v2/" --cacert "$C/server-ca.crt" --cert "$C/client.crt" --key "$C/client.key")
[ "$c" = 200 ] || fail "client certificate signed by the clientca: got $c, want 200"

step "skopeo with client.cert/client.key in its cert dir"
sk_tls_copy "$(img_ref "$IMG/multi")" "docker://$H/mtls/multi:v1" --dest-tls-verify=true \
  --dest-cert-dir "$WORK/cd-client" --preserve-digests ||
  { cat "$WORK/last-copy.out" >&2; fail "skopeo push with a client certificate failed"; }
assert_repo_layout "$WORK/mtls-root" mtls/multi v1 "$IMG/multi"
rm -rf "$WORK/pulled"
sk_tls_copy "docker://$H/mtls/multi:v1" "dir:$WORK/pulled" --src-tls-verify=true \
  --src-cert-dir "$WORK/cd-client" --preserve-digests ||
  { cat "$WORK/last-copy.out" >&2; fail "skopeo pull with a client certificate failed"; }
assert_same_image "$IMG/multi" "$WORK/pulled"

step "skopeo without a client certificate, or with the rogue one, fails"
for cd in cd-ca cd-rogue; do
  if sk_tls_copy "$(img_ref "$IMG/multi")" "docker://$H/mtls/$cd:v1" --dest-tls-verify=true \
    --dest-cert-dir "$WORK/$cd"; then
    fail "skopeo pushed to the mutual-TLS server with $cd"
  fi
  grep -qiE '401|unauthorized|certificate|tls' "$WORK/last-copy.out" ||
    { cat "$WORK/last-copy.out" >&2; fail "skopeo with $cd failed, but not for want of a client certificate"; }
  log "$cd: $(tail -n 1 "$WORK/last-copy.out" | cut -c1-200)"
  [ ! -d "$WORK/mtls-root/docker/registry/v2/repositories/mtls/$cd" ] ||
    fail "the push with $cd reached the storage"
done
stop_checked "$PID" "$LOGF"

# ---------------------------------------------------------------------------------------------
step "mutual TLS configured by REGISTRY_HTTP_TLS_* variables only"
start_tls envtls "" REGISTRY_HTTP_TLS_CERTIFICATE="$C/server.crt" REGISTRY_HTTP_TLS_KEY="$C/server.key" \
  REGISTRY_HTTP_TLS_CLIENTCAS_0="$C/client-ca.crt"
H="127.0.0.1:$PORT"
c=$(code "https://$H/v2/" --cacert "$C/server-ca.crt" --cert "$C/client.crt" --key "$C/client.key")
[ "$c" = 200 ] || fail "TLS from the environment, with the client certificate: got $c, want 200"
c=$(code "https://$H/v2/" --cacert "$C/server-ca.crt")
[ "$c" = 401 ] || [ "$c" = 000 ] || fail "REGISTRY_HTTP_TLS_CLIENTCAS_0 ignored: no client certificate got $c"
c=$(code "http://$H/v2/")
case "$c" in 2* | 3*) fail "REGISTRY_HTTP_TLS_CERTIFICATE ignored: plain HTTP answered $c" ;; esac
stop_checked "$PID" "$LOGF"
