#!/usr/bin/env bash
# End-to-end with Docker as the client: the docker CLI and a private dockerd (Debian's
# docker.io; its own data root, exec root and socket, on a private containerd, no networking, the
# vfs storage driver), as CI pipelines push and pull. dockerd has its own registry client:
# uploads stream the layer in one PATCH with a chunked body, pushes mount layers across
# repositories, pushes re-create each layer's compressed blob from the unpacked image, and it
# logs in with HTTP basic auth.
#
# Checked: pulls by tag and by digest of OCI and Docker manifests, an OCI index and a Docker
# list (the image ID is the pushed config digest); a push to another repository mounts its
# layers; pushes to an empty registry come back whole (skopeo) and pull again to the same image
# ID; a Docker list made and pushed by `docker manifest`; login, push, logout and a refused
# pull against htpasswd auth; and login, push (with a mount), pull and a refused push against
# token auth (tests/fixtures/auth/tokenserver.py).
#
#   bash tests/e2e/test_docker.sh           (BERTH_BIN=path/to/berth)
#   E2E_TARGET=distribution bash tests/e2e/test_docker.sh   (same checks but the auth steps,
#       against docker-registry)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd skopeo
need_cmd curl
need_cmd containerd containerd
need_cmd ctr containerd
need_cmd dockerd docker.io
TARGET=${E2E_TARGET:-berth}
E2E_BIG_SIZE=${E2E_BIG_SIZE:-$((24 << 20))}
# The CLI that came with this dockerd, when there is one.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=docker

step "start a private dockerd"
start_containerd || skip "containerd is installed but does not start in this environment (see above)"
DK="$WORK/docker"
# Sockets live under the exec root, whose paths must fit in 108 bytes.
EXEC="$WORK/dx"
[ ${#EXEC} -lt 60 ] || EXEC=$(mktemp -d /tmp/berth-dx.XXXXXX)
mkdir -p "$DK/data" "$EXEC" "$WORK/docker-cli"
printf '{}\n' >"$DK/daemon.json"
export DOCKER_CONFIG="$WORK/docker-cli"
DOCKER_SOCK="$EXEC/docker.sock"
guard=()
if setpriv --help 2>/dev/null | grep -q pdeathsig; then guard=(setpriv --pdeathsig TERM --); fi
"${guard[@]}" dockerd --config-file "$DK/daemon.json" --data-root "$DK/data" --exec-root "$EXEC" \
  --pidfile "$DK/dockerd.pid" --host "unix://$DOCKER_SOCK" --containerd "$CTRD_SOCK" \
  --containerd-namespace e2e-docker --containerd-plugins-namespace e2e-docker-plugins \
  --iptables=false --ip6tables=false --bridge=none --storage-driver vfs >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
SERVER_PIDS+=("$DOCKERD_PID")
SERVER_LOGS+=("$WORK/dockerd.log")
ready=
for _ in $(seq 150); do
  kill -0 "$DOCKERD_PID" 2>/dev/null || break
  if "$DOCKER" -H "unix://$DOCKER_SOCK" version >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  tail -n 20 "$WORK/dockerd.log" >&2
  skip "dockerd is installed but does not start in this environment (see above)"
fi
log "dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) pid $DOCKERD_PID"

dk() { "$DOCKER" -H "unix://$DOCKER_SOCK" "$@"; }
# dx ARGS...: a registry-facing docker command; output in $WORK/last-docker.out, failing the
# test with it if docker fails.
dx() {
  if ! dk "$@" >"$WORK/last-docker.out" 2>&1; then
    cat "$WORK/last-docker.out" >&2
    fail "docker $* failed"
  fi
}
image_id() { dk image inspect --format '{{.Id}}' "$1"; }
cfg_of() { # cfg_of IMAGE [MANIFEST_DIGEST]: config digest = docker's image ID
  json_get "$(img_manifest_file "$@")" 'j["config"]["digest"]'
}
case $(uname -m) in x86_64) ARCH=amd64 ;; aarch64) ARCH=arm64 ;; *) ARCH=$(uname -m) ;; esac
child_of() { # child_of IMAGE: digest of this machine's instance of an index
  json_get "$(img_manifest_file "$1")" "[x['digest'] for x in j['manifests'] if x['platform']['architecture'] == '$ARCH'][0]"
}
# pushed_digest: the manifest digest `docker push` reported.
pushed_digest() { sed -n 's/.*: digest: \(sha256:[0-9a-f]*\) size: .*/\1/p' "$WORK/last-docker.out"; }
# check_pushed REF DIGEST: the registry serves REF as DIGEST, and skopeo pulls it whole (every
# blob hashes to its digest).
check_pushed() {
  local ref=$1 want=$2 out="$WORK/check-$RANDOM"
  sk_inspect --raw "docker://$ref" >"$out.json" || fail "skopeo inspect --raw $ref failed"
  [ "sha256:$(sha256sum <"$out.json" | cut -d' ' -f1)" = "$want" ] ||
    fail "manifest served for $ref does not hash to the digest docker pushed ($want)"
  sk_copy "docker://$ref" "dir:$out" --preserve-digests
  img_blobs "$out" >/dev/null || fail "$ref cannot be pulled completely"
  local f
  for f in "$out"/*; do
    case "$(basename "$f")" in version | manifest.json) continue ;; esac
    [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "blob $(basename "$f") of $ref is corrupt"
  done
  rm -rf "$out" "$out.json"
}

step "generate test images, push them with skopeo"
IMG="$WORK/img"
make_images "$IMG"
start_target "$WORK/root"
SRC=$H
push_test_images "$SRC" e2e

step "docker pulls by tag: OCI and Docker manifests, an OCI index and a Docker list"
for i in multi big docker multiarch dockerlist; do
  dx pull "$SRC/e2e/$i:v1"
  case $i in
  multiarch | dockerlist) want=$(cfg_of "$IMG/$i" "$(child_of "$IMG/$i")") ;;
  *) want=$(cfg_of "$IMG/$i") ;;
  esac
  [ "$(image_id "$SRC/e2e/$i:v1")" = "$want" ] || fail "docker pull e2e/$i:v1: image ID $(image_id "$SRC/e2e/$i:v1"), want the config $want"
  dk image inspect --format '{{join .RepoDigests " "}}' "$SRC/e2e/$i:v1" | grep -q "$SRC/e2e/$i@$(img_digest "$IMG/$i")" ||
    fail "docker pull e2e/$i:v1 did not record the pushed manifest digest"
done

step "docker pulls by digest"
d=$(img_digest "$IMG/multi")
dx pull "$SRC/e2e/multi@$d"
[ "$(image_id "$SRC/e2e/multi@$d")" = "$(cfg_of "$IMG/multi")" ] || fail "docker pull by digest: wrong image"

step "docker pushes to another repository of the same registry: layers are mounted"
dx tag "$SRC/e2e/docker:v1" "$SRC/dk/mounted:v1"
dx push "$SRC/dk/mounted:v1"
grep -q "Mounted from e2e/docker" "$WORK/last-docker.out" || { cat "$WORK/last-docker.out" >&2; fail "docker push dk/mounted did not mount layers from e2e/docker"; }
check_pushed "$SRC/dk/mounted:v1" "$(pushed_digest)"

step "docker pushes to an empty registry (layers re-compressed, uploaded), pulls back"
start_target "$WORK/root2"
DST=$H
declare -A ID
for i in multi big docker multiarch; do
  ID[$i]=$(image_id "$SRC/e2e/$i:v1")
  dx tag "$SRC/e2e/$i:v1" "$DST/dk/$i:v1"
  dx push "$DST/dk/$i:v1"
  check_pushed "$DST/dk/$i:v1" "$(pushed_digest)"
  dk rmi "$DST/dk/$i:v1" >/dev/null
done
dk rmi -f $(dk images -q) >/dev/null 2>&1 || true
[ -z "$(dk images -q)" ] || fail "docker rmi left images behind: $(dk images)"
for i in multi big docker multiarch; do
  dx pull "$DST/dk/$i:v1"
  [ "$(image_id "$DST/dk/$i:v1")" = "${ID[$i]}" ] || fail "docker pull dk/$i:v1 from the second registry: another image ID"
done

step "docker manifest create and push: a Docker list of two images from other repositories"
dx manifest create --insecure "$DST/dk/list:v1" "$DST/dk/multi:v1" "$DST/dk/docker:v1"
dx manifest annotate "$DST/dk/list:v1" "$DST/dk/docker:v1" --arch arm64 --variant v8
dx manifest push --insecure "$DST/dk/list:v1"
list_digest=$(grep -o 'sha256:[0-9a-f]\{64\}' "$WORK/last-docker.out" | tail -n1)
sk_inspect --raw "docker://$DST/dk/list:v1" >"$WORK/list.json" || fail "skopeo inspect --raw dk/list:v1 failed"
[ "sha256:$(sha256sum <"$WORK/list.json" | cut -d' ' -f1)" = "$list_digest" ] ||
  fail "the list served for dk/list:v1 does not hash to the digest docker manifest push printed ($list_digest)"
[ "$(json_get "$WORK/list.json" 'j["mediaType"]')" = application/vnd.docker.distribution.manifest.list.v2+json ] ||
  fail "dk/list:v1 is not a Docker manifest list"
[ "$(json_get "$WORK/list.json" 'len(j["manifests"])')" = 2 ] || fail "dk/list:v1 does not list two images"
rm -rf "$WORK/list-copy"
sk_copy "docker://$DST/dk/list:v1" "dir:$WORK/list-copy" --all
img_blobs "$WORK/list-copy" >/dev/null || fail "dk/list:v1 cannot be pulled completely with --all"
dx pull --platform linux/arm64/v8 "$DST/dk/list:v1"
[ "$(image_id "$DST/dk/list:v1")" = "${ID[docker]}" ] || fail "docker pull --platform linux/arm64/v8 dk/list:v1: not the docker image"

if [ "$TARGET" = berth ]; then
  step "docker login with htpasswd auth: push, logout, pull refused, login, pull"
  start_berth_htpasswd "$WORK/root3" ci-bot 's3cret pass'
  A=$BERTH_HOST
  [ "$(http_code "http://$A/v2/")" = 401 ] || fail "GET /v2/ without credentials is not 401"
  dx tag "$DST/dk/multi:v1" "$A/dk/private:v1"
  if dk push "$A/dk/private:v1" >"$WORK/last-docker.out" 2>&1; then fail "docker push without login succeeded"; fi
  grep -qi "no basic auth credentials\|unauthorized" "$WORK/last-docker.out" || { cat "$WORK/last-docker.out" >&2; fail "docker push without login: unexpected error"; }
  if printf 'wrong\n' | dk login -u ci-bot --password-stdin "$A" >"$WORK/last-docker.out" 2>&1; then fail "docker login with a wrong password succeeded"; fi
  printf 's3cret pass\n' | dx login -u ci-bot --password-stdin "$A"
  grep -q "Login Succeeded" "$WORK/last-docker.out" || fail "docker login did not succeed"
  dx push "$A/dk/private:v1"
  d=$(pushed_digest)
  dx logout "$A"
  dk rmi "$A/dk/private:v1" >/dev/null
  if dk pull "$A/dk/private:v1" >"$WORK/last-docker.out" 2>&1; then fail "docker pull after logout succeeded"; fi
  printf 's3cret pass\n' | dx login -u ci-bot --password-stdin "$A"
  dx pull "$A/dk/private@$d"
  [ "$(image_id "$A/dk/private@$d")" = "$(cfg_of "$IMG/multi")" ] || fail "docker pull dk/private after login: wrong image"

  step "docker login with token auth: push (layers mounted), pull, refused push where the token grants only pull"
  start_berth_token "$WORK/root4" dk
  B=$BERTH_HOST
  printf 's3cret pass\n' | dx login -u ci-bot --password-stdin "$B"
  dx tag "$DST/dk/docker:v1" "$B/dk/base:v1"
  dx push "$B/dk/base:v1"
  check_token_push() { # the pushed image pulls back whole with the same credentials
    local ref=$1 want=$2
    sk_copy "docker://$ref" "dir:$WORK/token-back" --preserve-digests --src-creds "ci-bot:s3cret pass"
    [ "sha256:$(sha256sum <"$WORK/token-back/manifest.json" | cut -d' ' -f1)" = "$want" ] || fail "$ref: another manifest than docker pushed"
    rm -rf "$WORK/token-back"
  }
  check_token_push "$B/dk/base:v1" "$(pushed_digest)"
  # Same layers into another repository: docker asks for a token over both and mounts.
  dx tag "$DST/dk/docker:v1" "$B/dk/app:v1"
  dx push "$B/dk/app:v1"
  grep -q "Mounted from dk/base" "$WORK/last-docker.out" || { cat "$WORK/last-docker.out" >&2; fail "docker push dk/app did not mount layers from dk/base"; }
  check_token_push "$B/dk/app:v1" "$(pushed_digest)"
  dk rmi "$B/dk/app:v1" >/dev/null
  dx pull "$B/dk/app:v1"
  [ "$(image_id "$B/dk/app:v1")" = "${ID[docker]}" ] || fail "docker pull dk/app through the token flow: another image ID"
  dx tag "$DST/dk/docker:v1" "$B/dk/other:v1"
  if dk push "$B/dk/other:v1" >"$WORK/last-docker.out" 2>&1; then fail "docker pushed to dk/other, where the token server grants only pull"; fi
  [ ! -e "$WORK/root4/docker/registry/v2/repositories/dk/other" ] || fail "a refused push created repositories/dk/other"
fi

log "all docker checks passed against $TARGET"
