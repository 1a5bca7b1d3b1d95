#!/usr/bin/env bash
# End-to-end with containerd as the client: the runtime Kubernetes nodes pull with. A private
# containerd daemon (its own root, state and socket under the temp dir; the CRI plugin off) is
# driven with `ctr`, whose pulls and pushes go through containerd's own resolver, fetcher and
# pusher (HEAD by tag, GET by digest, blob existence checks, cross-repository mounts, uploads).
#
# Checked: pulls by tag and by digest, unpacked into a snapshot (containerd checks each layer's
# uncompressed digest against the config's diff IDs), of OCI and Docker manifests, an OCI index
# and a Docker manifest list for every platform; pushes to another repository of the same
# registry (blobs mounted, not uploaded again) and to an empty registry, pulled back by skopeo
# byte for byte; and the registry used as a mirror of another host, as a node's hosts.toml does
# (containerd then adds ?ns=HOST to every request); and, with credentials (ctr --user), pushes
# and pulls against htpasswd and token auth, refused without them or beyond the token's grant.
#
#   bash tests/e2e/test_containerd.sh           (BERTH_BIN=path/to/berth)
#   E2E_TARGET=distribution bash tests/e2e/test_containerd.sh   (same checks against docker-registry)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd skopeo
need_cmd curl
need_cmd containerd containerd
need_cmd ctr containerd
TARGET=${E2E_TARGET:-berth}
E2E_BIG_SIZE=${E2E_BIG_SIZE:-$((24 << 20))}

step "start a private containerd"
start_containerd || skip "containerd is installed but does not start in this environment (see above)"

# cx SUBCOMMAND ARGS...: ctr against the private daemon, in namespace e2e; output in
# $WORK/last-ctr.out, failing the test with it if ctr fails.
cx() {
  if ! ctr --address "$CTRD_SOCK" --namespace e2e "$@" >"$WORK/last-ctr.out" 2>&1; then
    cat "$WORK/last-ctr.out" >&2
    fail "ctr $* failed"
  fi
}
# The native snapshotter unpacks anywhere (overlayfs may not mount in a container).
pull() { cx images pull --plain-http --snapshotter native "$@"; }
push() { cx images push --plain-http "$@"; }
# image_digest REF: the digest containerd recorded for REF (its top manifest or index).
image_digest() {
  cx images ls "name==$1"
  awk 'NR > 1 { print $3 }' "$WORK/last-ctr.out"
}
# refused SUBCOMMAND ARGS...: ctr fails (output in $WORK/last-ctr.out).
refused() {
  if ctr --address "$CTRD_SOCK" --namespace e2e "$@" >"$WORK/last-ctr.out" 2>&1; then
    fail "ctr $* succeeded; it should have been refused"
  fi
}
# content_has DIGEST...: every DIGEST is in containerd's content store.
content_has() {
  cx content ls -q
  local d
  for d in "$@"; do
    grep -qx "$d" "$WORK/last-ctr.out" || fail "containerd's content store lacks $d"
  done
}

step "generate test images, push them with skopeo"
IMG="$WORK/img"
make_images "$IMG"
ROOT="$WORK/root"
start_target "$ROOT"
SRC=$H SRC_LOG=$REG_LOG
push_test_images "$SRC" e2e

step "containerd pulls by tag and unpacks: OCI and Docker manifests"
for i in multi big docker; do
  pull "$SRC/e2e/$i:v1"
  got=$(image_digest "$SRC/e2e/$i:v1")
  [ "$got" = "$(img_digest "$IMG/$i")" ] || fail "containerd resolved e2e/$i:v1 to $got, pushed $(img_digest "$IMG/$i")"
  # shellcheck disable=SC2046
  content_has $(img_blobs "$IMG/$i" | cut -d' ' -f2)
done

step "containerd pulls by digest"
d=$(img_digest "$IMG/multi")
pull "$SRC/e2e/multi@$d"
[ "$(image_digest "$SRC/e2e/multi@$d")" = "$d" ] || fail "pull by digest recorded another digest"

step "containerd pulls an OCI index and a Docker manifest list for all platforms"
for i in multiarch dockerlist; do
  pull --all-platforms "$SRC/e2e/$i:v1"
  [ "$(image_digest "$SRC/e2e/$i:v1")" = "$(img_digest "$IMG/$i")" ] || fail "containerd resolved e2e/$i:v1 to another digest"
  # shellcheck disable=SC2046
  content_has $(img_blobs "$IMG/$i" | cut -d' ' -f2)
done
pull --platform linux/arm64/v8 "$SRC/e2e/dockerlist:v1"

step "containerd pushes to another repository of the same registry: blobs are mounted"
cx images tag "$SRC/e2e/big:v1" "$SRC/ctr/big:v1"
push "$SRC/ctr/big:v1"
if [ "$TARGET" = berth ]; then
  layer=$(json_get "$(img_manifest_file "$IMG/big")" 'j["layers"][0]["digest"]')
  grep -q "uri=\"/v2/ctr/big/blobs/uploads/?mount=$layer&from=e2e/big\" .*status=201" "$SRC_LOG" ||
    fail "containerd's push of ctr/big did not mount the layer from e2e/big"
  assert_link "$ROOT/docker/registry/v2/repositories/ctr/big/_layers/${layer/://}/link" "$layer"
fi
rm -rf "$WORK/mounted"
sk_copy "docker://$SRC/ctr/big:v1" "dir:$WORK/mounted" --preserve-digests
assert_same_image "$IMG/big" "$WORK/mounted"

step "containerd pushes every image to an empty registry; skopeo pulls them back byte for byte"
start_target "$WORK/root2"
DST=$H
for i in multi big docker multiarch dockerlist; do
  cx images tag "$SRC/e2e/$i:v1" "$DST/ctr/$i:v1"
  push "$DST/ctr/$i:v1"
  all=()
  case $i in multiarch | dockerlist) all=(--all) ;; esac
  rm -rf "$WORK/back-$i"
  sk_copy "docker://$DST/ctr/$i:v1" "dir:$WORK/back-$i" --preserve-digests "${all[@]}"
  assert_same_image "$IMG/$i" "$WORK/back-$i"
done

step "containerd pulls through the registry as a mirror of another host (hosts.toml)"
mkdir -p "$WORK/hosts/upstream.invalid"
cat >"$WORK/hosts/upstream.invalid/hosts.toml" <<EOF
server = "https://upstream.invalid"

[host."http://$SRC"]
  capabilities = ["pull", "resolve"]
EOF
cx images pull --hosts-dir "$WORK/hosts" --snapshotter native upstream.invalid/e2e/multi:v1
[ "$(image_digest upstream.invalid/e2e/multi:v1)" = "$(img_digest "$IMG/multi")" ] || fail "mirror pull resolved another digest"
grep -q 'ns=upstream.invalid' "$SRC_LOG" || fail "no request with ?ns=upstream.invalid reached the registry: was the mirror used?"

if [ "$TARGET" = berth ]; then
  step "containerd with credentials against htpasswd auth: refused without, push and pull with"
  CREDS='ci-bot:s3cret pass'
  start_berth_htpasswd "$WORK/root3" ci-bot 's3cret pass'
  A=$BERTH_HOST
  cx images tag "$SRC/e2e/multi:v1" "$A/ctr/private:v1"
  refused images push --plain-http "$A/ctr/private:v1"
  refused images push --plain-http --user 'ci-bot:wrong' "$A/ctr/private:v1"
  push --user "$CREDS" "$A/ctr/private:v1"
  cx images rm "$A/ctr/private:v1"
  refused images pull --plain-http --snapshotter native "$A/ctr/private:v1"
  pull --user "$CREDS" "$A/ctr/private:v1"
  [ "$(image_digest "$A/ctr/private:v1")" = "$(img_digest "$IMG/multi")" ] || fail "pull with credentials resolved another digest"

  step "containerd with credentials against token auth: push, pull, refused push where the token grants only pull"
  start_berth_token "$WORK/root4" ctr
  B=$BERTH_HOST
  for r in base app; do
    cx images tag "$SRC/e2e/big:v1" "$B/ctr/$r:v1"
    push --user "$CREDS" "$B/ctr/$r:v1"
  done
  # containerd tries to mount each layer from the repository it pulled the image from (e2e/big),
  # which the token does not grant: berth answers with a plain upload (202), not the 401 on
  # which containerd before 2.1 aborts the whole push.
  if grep 'uri="/v2/ctr/base/blobs/uploads/?mount=' "$BERTH_LOG" | grep -qv 'status=202'; then
    fail "a mount from a repository the token does not grant was not answered with a plain upload (202)"
  fi
  rm -rf "$WORK/token-back"
  sk_copy "docker://$B/ctr/app:v1" "dir:$WORK/token-back" --preserve-digests --src-creds "$CREDS"
  assert_same_image "$IMG/big" "$WORK/token-back"
  cx images rm "$B/ctr/app:v1"
  refused images pull --plain-http --snapshotter native "$B/ctr/app:v1"
  pull --user "$CREDS" "$B/ctr/app:v1"
  [ "$(image_digest "$B/ctr/app:v1")" = "$(img_digest "$IMG/big")" ] || fail "pull through the token flow resolved another digest"
  cx images tag "$SRC/e2e/big:v1" "$B/ctr/other:v1"
  refused images push --plain-http --user "$CREDS" "$B/ctr/other:v1"
  [ ! -e "$WORK/root4/docker/registry/v2/repositories/ctr/other" ] || fail "a refused push created repositories/ctr/other"
fi

log "all containerd checks passed against $TARGET"
