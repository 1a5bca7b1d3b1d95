#!/usr/bin/env bash
# End-to-end: berth's auth providers through the real binary and real clients.
#
#   htpasswd  skopeo pushes and pulls with --dest-creds/--src-creds; no, wrong or malformed
#             credentials get 401 with `WWW-Authenticate: Basic realm="..."` and Distribution's
#             UNAUTHORIZED body, and a refused push writes nothing; users added to or removed
#             from the file take effect without a restart.
#   token     a Docker token server (tests/fixtures/auth/tokenserver.py, python3 stdlib, tokens
#             signed with the openssl CLI) with a per-user access table; skopeo goes through the
#             whole bearer flow unmodified; a token for one repository can neither read nor write
#             another (401 insufficient_scope, nothing on disk); expired, not yet valid, wrongly
#             signed, wrong-audience, wrong-issuer, untrusted-chain, alg-none and malformed tokens
#             get 401 invalid_token and write nothing; RS256 (kid and x5c) and ES256 tokens pass.
# Also: no password ever shows up in berth's log.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
need_cmd skopeo
need_cmd curl
need_cmd openssl
need_cmd htpasswd apache2-utils

TOKENSRV="$BERTH_SRC/tests/fixtures/auth/tokenserver.py"
V2=docker/registry/v2

step "generate test images"
IMG="$WORK/img"
E2E_BIG_SIZE=65536 make_images "$IMG" --only multi,docker

# start_berth_auth ROOT AUTH_YAML: berth with a config.yml holding AUTH_YAML (an `auth:` block).
# Ready when GET /v2/ answers 401. Sets BERTH_PORT, BERTH_PID, BERTH_LOG, BERTH_HOST.
start_berth_auth() {
  local root=$1 auth=$2 cfg pid i guard=()
  mkdir -p "$root"
  if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
  for _ in 1 2 3; do
    BERTH_PORT=$(free_port)
    cfg="$WORK/berth-$BERTH_PORT.yml"
    cat >"$cfg" <<EOF
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
  addr: 127.0.0.1:$BERTH_PORT
$auth
EOF
    BERTH_LOG="$WORK/berth-$BERTH_PORT.log"
    # (Word splitting intended: one "-u NAME" pair per REGISTRY_* variable.)
    # shellcheck disable=SC2046
    "${guard[@]}" env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') \
      "$BERTH_BIN" serve "$cfg" >"$BERTH_LOG" 2>&1 &
    pid=$!
    SERVER_PIDS+=("$pid")
    SERVER_LOGS+=("$BERTH_LOG")
    for ((i = 0; i < 200; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      if [ "$(http_code "http://127.0.0.1:$BERTH_PORT/v2/")" = 401 ]; then
        BERTH_PID=$pid
        BERTH_HOST="127.0.0.1:$BERTH_PORT"
        log "berth pid $BERTH_PID on $BERTH_HOST with $cfg (log $BERTH_LOG)"
        return 0
      fi
      sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  fail "berth with auth would not start (see $BERTH_LOG)"
}

# req URL [curl args...]: one request; sets CODE, and the response headers and body in
# $WORK/h and $WORK/b.
req() {
  local url=$1
  shift
  CODE=$(curl -s -D "$WORK/h" -o "$WORK/b" -w '%{http_code}' --max-time 10 "$@" "$url" || true)
}

# The WWW-Authenticate value of the last response.
challenge() { sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: *//p' "$WORK/h" | tr -d '\r'; }

# expect_401 WHAT WANT_CHALLENGE: the last response was a 401 with exactly that challenge and
# Distribution's UNAUTHORIZED error body.
expect_401() {
  local what=$1 want=$2 got code
  [ "$CODE" = 401 ] || fail "$what: status $CODE, want 401 (body: $(head -c 300 "$WORK/b"))"
  got=$(challenge)
  [ "$got" = "$want" ] || fail "$what: WWW-Authenticate is '$got', want '$want'"
  code=$(json_get "$WORK/b" 'j["errors"][0]["code"]') || fail "$what: body is not an error JSON: $(head -c 300 "$WORK/b")"
  [ "$code" = UNAUTHORIZED ] || fail "$what: error code $code, want UNAUTHORIZED"
}

# count_entries DIR: how many entries DIR holds (0 when it does not exist).
count_entries() {
  [ -d "$1" ] || { echo 0; return; }
  find "$1" -mindepth 1 -maxdepth 1 | wc -l
}

# wait_code WANT URL [curl args...]: polls (up to 5 s) until the status is WANT.
wait_code() {
  local want=$1 url=$2 i
  shift 2
  for ((i = 0; i < 50; i++)); do
    [ "$(http_code "$@" "$url")" = "$want" ] && return 0
    sleep 0.1
  done
  fail "GET $url did not answer $want within 5 s"
}

# ---------------------------------------------------------------- htpasswd

step "htpasswd: start berth"
HTP="$WORK/auth/htpasswd"
mkdir -p "$WORK/auth"
htpasswd -B -C 5 -b -c "$HTP" alice alice-pw 2>/dev/null
ROOT1="$WORK/root-htpasswd"
start_berth_auth "$ROOT1" "auth:
  htpasswd:
    realm: basic-realm
    path: $HTP"
H=$BERTH_HOST
BASIC='Basic realm="basic-realm"'

step "htpasswd: 401 + Basic challenge + UNAUTHORIZED body"
req "http://$H/v2/"
expect_401 "GET /v2/ without credentials" "$BASIC"
req "http://$H/v2/" -u alice:wrong-pw
expect_401 "GET /v2/ with a wrong password" "$BASIC"
req "http://$H/v2/" -u mallory:alice-pw
expect_401 "GET /v2/ as an unknown user" "$BASIC"
req "http://$H/v2/" -H 'Authorization: Basic !!not-base64!!'
expect_401 "GET /v2/ with malformed Basic credentials" "$BASIC"
req "http://$H/v2/" -H 'Authorization: Bearer abc.def.ghi'
expect_401 "GET /v2/ with a bearer token" "$BASIC"
req "http://$H/v2/team/app/tags/list"
expect_401 "GET tags/list without credentials" "$BASIC"
req "http://$H/v2/" -u alice:alice-pw
[ "$CODE" = 200 ] || fail "GET /v2/ as alice: status $CODE, want 200"

step "htpasswd: skopeo push and pull with credentials"
sk_copy "oci:$IMG/multi:latest" "docker://$H/team/app:v1" --preserve-digests --dest-creds alice:alice-pw
assert_repo_layout "$ROOT1" team/app v1 "$IMG/multi"
sk_copy "docker://$H/team/app:v1" "dir:$WORK/pull-htpasswd" --preserve-digests --src-creds alice:alice-pw
assert_same_image "$IMG/multi" "$WORK/pull-htpasswd"

step "htpasswd: skopeo without or with wrong credentials is refused and writes nothing"
if sk_copy_try "oci:$IMG/multi:latest" "docker://$H/team/denied:v1" --dest-creds alice:wrong-pw; then
  fail "skopeo pushed with a wrong password"
fi
grep -qiE 'unauthorized|401' "$WORK/last-copy.out" || { cat "$WORK/last-copy.out" >&2; fail "skopeo's failure is not an authentication error"; }
if sk_copy_try "oci:$IMG/multi:latest" "docker://$H/team/denied:v1"; then
  fail "skopeo pushed without credentials"
fi
if sk_copy_try "docker://$H/team/app:v1" "dir:$WORK/pull-denied"; then
  fail "skopeo pulled without credentials"
fi
[ ! -e "$ROOT1/$V2/repositories/team/denied" ] || fail "a refused push created $ROOT1/$V2/repositories/team/denied"

step "htpasswd: the file is re-read when it changes"
req "http://$H/v2/" -u bob:bob-pw
expect_401 "bob before he is added" "$BASIC"
htpasswd -B -C 5 -b "$HTP" bob bob-pw 2>/dev/null
wait_code 200 "http://$H/v2/" -u bob:bob-pw
req "http://$H/v2/team/app/tags/list" -u bob:bob-pw
[ "$CODE" = 200 ] || fail "bob's GET tags/list: status $CODE, want 200"
htpasswd -D "$HTP" alice 2>/dev/null
wait_code 401 "http://$H/v2/" -u alice:alice-pw
grep -qF -e alice-pw -e bob-pw "$BERTH_LOG" && fail "a password shows up in berth's log $BERTH_LOG"
stop_server "$BERTH_PID"

# ---------------------------------------------------------------- token

step "token: keys, certificates and the token server"
cd "$WORK/auth"
for k in rsa rogue; do
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k.key" 2>/dev/null
  openssl req -x509 -new -key "$k.key" -subj "/CN=e2e token signer" -days 2 -out "$k.crt" 2>/dev/null
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null
openssl req -x509 -new -key ec.key -subj "/CN=e2e ec token signer" -days 2 -out ec.crt 2>/dev/null
cat rsa.crt ec.crt >bundle.pem
cat >users.json <<'EOF'
{"alice": {"password": "alice-pw", "access": {"repo-a": ["pull", "push"]}},
 "bob":   {"password": "bob-pw",   "access": {"repo-b": ["pull", "push"], "repo-a": ["pull"]}}}
EOF
cd - >/dev/null
A="$WORK/auth"
start_token_server "$A/rsa.key" "$A/rsa.crt" "$A/users.json"
TS=$TOKEN_URL
REALM="$TS/token"
SERVICE=berth-e2e

step "token: start berth"
ROOT2="$WORK/root-token"
start_berth_auth "$ROOT2" "auth:
  token:
    realm: $REALM
    service: $SERVICE
    issuer: e2e-issuer
    rootcertbundle: $A/bundle.pem"
H=$BERTH_HOST
BEARER="Bearer realm=\"$REALM\",service=\"$SERVICE\""

step "token: challenges without a token"
req "http://$H/v2/"
expect_401 "GET /v2/ without a token" "$BEARER"
req "http://$H/v2/repo-a/tags/list"
expect_401 "GET tags/list without a token" "$BEARER,scope=\"repository:repo-a:pull\""
req "http://$H/v2/repo-a/blobs/uploads/" -X POST
expect_401 "POST uploads without a token" "$BEARER,scope=\"repository:repo-a:pull,push\""

step "token: skopeo push and pull through the bearer flow"
sk_copy "oci:$IMG/multi:latest" "docker://$H/repo-a:v1" --preserve-digests --dest-creds alice:alice-pw
assert_repo_layout "$ROOT2" repo-a v1 "$IMG/multi"
sk_copy "docker://$H/repo-a:v1" "dir:$WORK/pull-token" --preserve-digests --src-creds alice:alice-pw
assert_same_image "$IMG/multi" "$WORK/pull-token"
sk_copy "dir:$IMG/docker" "docker://$H/repo-b:v1" --preserve-digests --dest-creds bob:bob-pw
assert_repo_layout "$ROOT2" repo-b v1 "$IMG/docker"
# bob may pull repo-a but not push to it.
sk_copy "docker://$H/repo-a:v1" "dir:$WORK/pull-bob" --preserve-digests --src-creds bob:bob-pw
assert_same_image "$IMG/multi" "$WORK/pull-bob"

step "token: skopeo is refused where the token server grants nothing"
if sk_copy_try "oci:$IMG/multi:latest" "docker://$H/repo-c:v1" --dest-creds alice:alice-pw; then
  fail "alice pushed to repo-c, which her access table does not list"
fi
if sk_copy_try "dir:$IMG/docker" "docker://$H/repo-a:bob" --dest-creds bob:bob-pw; then
  fail "bob pushed to repo-a, where he may only pull"
fi
if sk_copy_try "oci:$IMG/multi:latest" "docker://$H/repo-a:v2" --dest-creds alice:wrong-pw; then
  fail "skopeo pushed with a password the token server refuses"
fi
[ ! -e "$ROOT2/$V2/repositories/repo-c" ] || fail "a refused push created repositories/repo-c"
[ ! -e "$ROOT2/$V2/repositories/repo-a/_manifests/tags/bob" ] || fail "bob's refused push tagged repo-a:bob"
[ ! -e "$ROOT2/$V2/repositories/repo-a/_manifests/tags/v2" ] || fail "a refused push tagged repo-a:v2"

step "token: a token for repo-a can neither read nor write repo-b"
curl -s -u alice:alice-pw "$TS/token?service=$SERVICE&scope=repository:repo-a:pull,push" >"$WORK/tok.json"
TOKEN_A=$(json_get "$WORK/tok.json" 'j["token"]')
[ "$(json_get "$WORK/tok.json" 'j["access_token"]')" = "$TOKEN_A" ] || fail "token and access_token differ"
AUTH_A=(-H "Authorization: Bearer $TOKEN_A")
req "http://$H/v2/repo-a/tags/list" "${AUTH_A[@]}"
[ "$CODE" = 200 ] || fail "GET repo-a tags/list with repo-a's token: status $CODE, want 200"
req "http://$H/v2/" "${AUTH_A[@]}"
[ "$CODE" = 200 ] || fail "GET /v2/ with a valid token: status $CODE, want 200"
req "http://$H/v2/repo-b/tags/list" "${AUTH_A[@]}"
expect_401 "GET repo-b tags/list with repo-a's token" \
  "$BEARER,scope=\"repository:repo-b:pull\",error=\"insufficient_scope\""
BLOB_B=$(img_blobs "$IMG/docker" | awk '$1 == "L" {print $2; exit}')
req "http://$H/v2/repo-b/blobs/$BLOB_B" "${AUTH_A[@]}"
expect_401 "GET a repo-b blob with repo-a's token" \
  "$BEARER,scope=\"repository:repo-b:pull\",error=\"insufficient_scope\""
req "http://$H/v2/repo-b/blobs/uploads/" -X POST "${AUTH_A[@]}"
expect_401 "POST repo-b uploads with repo-a's token" \
  "$BEARER,scope=\"repository:repo-b:pull,push\",error=\"insufficient_scope\""
req "http://$H/v2/repo-b/manifests/evil" -X PUT "${AUTH_A[@]}" \
  -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @"$(img_manifest_file "$IMG/multi")"
expect_401 "PUT a repo-b manifest with repo-a's token" \
  "$BEARER,scope=\"repository:repo-b:pull,push\",error=\"insufficient_scope\""
# Mounting a repo-b blob into repo-a needs pull on repo-b too. Without it the mount cannot be
# done, and the POST starts a plain upload in repo-a (202), as the spec answers a mount that
# cannot be done (Distribution answers 401, on which containerd 1.6 aborts the whole push).
uploads_a=$(count_entries "$ROOT2/$V2/repositories/repo-a/_uploads")
req "http://$H/v2/repo-a/blobs/uploads/?mount=$BLOB_B&from=repo-b" -X POST "${AUTH_A[@]}"
[ "$CODE" = 202 ] || fail "mount from repo-b with repo-a's token: status $CODE, want 202 (a plain upload)"
grep -qi '^location: /v2/repo-a/blobs/uploads/' "$WORK/h" || fail "mount from repo-b with repo-a's token: no upload location in repo-a"
[ "$(count_entries "$ROOT2/$V2/repositories/repo-a/_uploads")" = $((uploads_a + 1)) ] ||
  fail "mount from repo-b with repo-a's token did not start one upload in repo-a"
# Nor may it take the blob from wherever it is, by leaving out `from`.
req "http://$H/v2/repo-a/blobs/uploads/?mount=$BLOB_B" -X POST "${AUTH_A[@]}"
[ "$CODE" = 202 ] || fail "mount without from with repo-a's token: status $CODE, want 202 (a plain upload)"
req "http://$H/v2/_catalog" "${AUTH_A[@]}"
expect_401 "GET /v2/_catalog with repo-a's token" "$BEARER,scope=\"registry:catalog:*\",error=\"insufficient_scope\""
[ ! -e "$ROOT2/$V2/repositories/repo-b/_manifests/tags/evil" ] || fail "repo-a's token tagged repo-b:evil"
[ ! -e "$ROOT2/$V2/repositories/repo-a/_layers/sha256/${BLOB_B#sha256:}" ] || fail "repo-a's token mounted a repo-b blob"
[ "$(count_entries "$ROOT2/$V2/repositories/repo-b/_uploads")" = 0 ] || fail "repo-a's token started an upload in repo-b"

step "token: bad tokens get 401 invalid_token and write nothing"
mint() { "$PY" "$TOKENSRV" mint --key "$A/rsa.key" --cert "$A/rsa.crt" --issuer e2e-issuer --aud "$SERVICE" \
  --scope repository:repo-a:pull,push "$@"; }
uploads_before=$(count_entries "$ROOT2/$V2/repositories/repo-a/_uploads")
# alg_none TOKEN: the token with its header's alg replaced by "none", signature kept.
alg_none() {
  "$PY" - "$1" <<'EOF'
import base64, json, sys
h, c, s = sys.argv[1].split(".")
head = json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))
head["alg"] = "none"
print(base64.urlsafe_b64encode(json.dumps(head).encode()).rstrip(b"=").decode() + "." + c + "." + s)
EOF
}
ALG_NONE=$(alg_none "$(mint)")
BIG=$(head -c 5700 /dev/zero | tr '\0' 'A')
declare -A BAD=(
  [expired]="$(mint --exp -600 --nbf -900)"
  [not-yet-valid]="$(mint --nbf 600 --exp 900)"
  [wrongly-signed]="$(mint --key "$A/rogue.key")"
  [wrong-audience]="$(mint --aud other-registry)"
  [wrong-issuer]="$(mint --issuer evil-issuer)"
  [untrusted-x5c]="$("$PY" "$TOKENSRV" mint --key "$A/rogue.key" --cert "$A/rogue.crt" --x5c --issuer e2e-issuer \
    --aud "$SERVICE" --scope repository:repo-a:pull,push)"
  [alg-none]="$ALG_NONE"
  [alg-none-unsigned]="${ALG_NONE%.*}."
  [truncated]="${TOKEN_A:0:${#TOKEN_A}-10}"
  [three-garbage-parts]="abc.def.ghi"
  [not-a-jwt]="not-a-jwt"
  [huge]="$BIG.$BIG.$BIG"
)
for name in "${!BAD[@]}"; do
  req "http://$H/v2/repo-a/blobs/uploads/" -X POST -H "Authorization: Bearer ${BAD[$name]}"
  expect_401 "POST repo-a uploads with a $name token" \
    "$BEARER,scope=\"repository:repo-a:pull,push\",error=\"invalid_token\""
done
uploads_after=$(count_entries "$ROOT2/$V2/repositories/repo-a/_uploads")
[ "$uploads_after" = "$uploads_before" ] || fail "bad tokens started uploads ($uploads_before -> $uploads_after)"

step "token: good tokens of every kind the bundle allows"
GOOD_RS=$(mint)
GOOD_X5C=$(mint --x5c)
GOOD_ES=$("$PY" "$TOKENSRV" mint --key "$A/ec.key" --cert "$A/ec.crt" --alg ES256 --issuer e2e-issuer \
  --aud "$SERVICE" --scope repository:repo-a:pull,push)
for t in "$GOOD_RS" "$GOOD_X5C" "$GOOD_ES"; do
  req "http://$H/v2/repo-a/tags/list" -H "Authorization: Bearer $t"
  [ "$CODE" = 200 ] || fail "a good token was refused: status $CODE, $(challenge)"
done
req "http://$H/v2/repo-a/blobs/uploads/" -X POST -H "Authorization: Bearer $GOOD_ES"
[ "$CODE" = 202 ] || fail "POST repo-a uploads with a good ES256 token: status $CODE, want 202"

step "token: repository delete (berth-specific route) needs the delete action"
req "http://$H/v2/_berth/repositories/repo-a" -X DELETE -H "Authorization: Bearer $GOOD_RS"
expect_401 "DELETE /v2/_berth/repositories/repo-a with a pull,push token" \
  "$BEARER,scope=\"repository:repo-a:delete\",error=\"insufficient_scope\""
req "http://$H/v2/_berth/repositories/repo-a" -X DELETE -H "Authorization: Bearer $(mint --scope repository:repo-a:delete)"
# past the authorisation: this berth has storage.delete off, so 405 and repo-a stays
[ "$CODE" = 405 ] || fail "DELETE /v2/_berth/repositories/repo-a with a delete token: status $CODE, want 405"
[ -e "$ROOT2/$V2/repositories/repo-a/_manifests" ] || fail "a refused repository delete removed repo-a"
grep -qF -e alice-pw -e bob-pw -e "$TOKEN_A" "$BERTH_LOG" && fail "a password or token shows up in berth's log $BERTH_LOG"
log "all auth checks passed"
