#!/usr/bin/env bash
# End-to-end with podman as the client: pull images skopeo pushed, push images from podman's own
# storage (podman re-compresses layers, so the blobs are new to the registry), pull them back,
# pick platforms out of an index, push a manifest list built by podman, search the catalog.
#
# Only image transfer is tested: running containers does not work in this sandbox (crun cannot
# set RLIMIT_NOFILE), and is not the registry's business anyway. Storage is vfs under the temp
# dir, with private storage.conf/containers.conf/registries.conf/policy, so the machine's podman
# state is neither used nor touched.
#
#   bash tests/e2e/test_podman.sh           (BERTH_BIN=path/to/berth)
#   E2E_TARGET=distribution bash tests/e2e/test_podman.sh   (same checks against docker-registry)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd skopeo
need_cmd curl
need_cmd podman
TARGET=${E2E_TARGET:-berth}

# Private podman configuration.
PS="$WORK/podman"
mkdir -p "$PS/graph"
set_podman_runroot "$PS"
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$PS/graph"
runroot = "$RUNROOT"
EOF
cat >"$WORK/containers.conf" <<EOF
[engine]
events_logger = "none"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf"

pm() {
  podman --root "$PS/graph" --runroot "$RUNROOT" --storage-driver vfs --events-backend none \
    --cgroup-manager cgroupfs "$@"
}
# pm_x SUBCOMMAND ARGS...: registry-facing podman command with the private policy/auth, output
# in $WORK/last-podman.out, failing the test with that output if podman fails.
pm_x() {
  local sub=("$1")
  shift
  if [ "${sub[0]}" = manifest ]; then sub+=("$1"); shift; fi
  local extra=(--tls-verify=false --authfile "$WORK/auth.json")
  # (podman manifest push has no --signature-policy: it uses the policy of the podman package.)
  case "${sub[*]}" in pull | push) extra+=(--signature-policy "$WORK/policy.json") ;; esac
  if ! pm "${sub[@]}" "${extra[@]}" "$@" >"$WORK/last-podman.out" 2>&1; then
    cat "$WORK/last-podman.out" >&2
    fail "podman ${sub[*]} $* failed"
  fi
}
image_id() { pm image inspect --format '{{.Id}}' "$1"; }

step "check that podman works here"
if ! pm info >"$WORK/podman-info.out" 2>&1; then
  cat "$WORK/podman-info.out" >&2
  skip "podman is installed but 'podman info' fails in this environment (see above)"
fi

step "generate test images"
IMG="$WORK/img"
make_images "$IMG" --only multi,multiarch,docker
ROOT="$WORK/root"
if [ "$TARGET" = distribution ]; then
  need_cmd docker-registry
  start_distribution "$ROOT"
  H=$DIST_HOST
else
  need_berth
  start_berth "$ROOT" --delete
  H=$BERTH_HOST
fi

cfg_of() { # cfg_of IMAGE [MANIFEST_DIGEST]: config digest hex = podman image ID
  json_get "$(img_manifest_file "$@")" 'j["config"]["digest"].split(":")[1]'
}
child_of() { # child_of IMAGE ARCH: digest of the ARCH instance of an index
  json_get "$(img_manifest_file "$1")" "[x['digest'] for x in j['manifests'] if x['platform']['architecture'] == '$2'][0]"
}

step "podman pulls what skopeo pushed"
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/multi:v1" --preserve-digests
sk_copy "$(img_ref "$IMG/docker")" "docker://$H/docker:v1" --preserve-digests
sk_copy "$(img_ref "$IMG/multiarch")" "docker://$H/multiarch:latest" --preserve-digests --all
pm_x pull "$H/multi:v1"
[ "$(image_id "$H/multi:v1")" = "$(cfg_of "$IMG/multi")" ] || fail "podman pull multi:v1: image ID is not the pushed config digest"
pm_x pull "$H/docker:v1"
[ "$(image_id "$H/docker:v1")" = "$(cfg_of "$IMG/docker")" ] || fail "podman pull docker:v1: image ID is not the pushed config digest"
pm_x pull "$H/multi@$(img_digest "$IMG/multi")"
for arch in amd64 arm64 s390x; do
  variant=()
  [ "$arch" = arm64 ] && variant=(--variant v8)
  pm_x pull --arch "$arch" "${variant[@]}" "$H/multiarch:latest"
  id=$(image_id "$H/multiarch:latest")
  want=$(cfg_of "$IMG/multiarch" "$(child_of "$IMG/multiarch" "$arch")")
  [ "$id" = "$want" ] || fail "podman pull --arch $arch multiarch:latest: image ID $id, want the $arch config $want"
done

step "podman push (re-compressed layers), pull back"
pm tag "$H/multi:v1" localhost/e2e/local:1
pm_x push --digestfile "$WORK/pushed.digest" localhost/e2e/local:1 "docker://$H/podman/pushed:v1"
pushed=$(cat "$WORK/pushed.digest")
assert_link "$ROOT/docker/registry/v2/repositories/podman/pushed/_manifests/tags/v1/current/link" "$pushed"
sk_inspect --raw "docker://$H/podman/pushed:v1" >"$WORK/pushed.json" || fail "skopeo inspect --raw podman/pushed:v1 failed"
[ "sha256:$(sha256sum <"$WORK/pushed.json" | cut -d' ' -f1)" = "$pushed" ] ||
  fail "manifest served for podman/pushed:v1 does not hash to the digest podman pushed ($pushed)"
rm -rf "$WORK/pushed-copy"
sk_copy "docker://$H/podman/pushed:v1" "dir:$WORK/pushed-copy" --preserve-digests
img_blobs "$WORK/pushed-copy" >/dev/null || fail "podman/pushed:v1 cannot be pulled completely"
for f in "$WORK/pushed-copy"/*; do
  case "$(basename "$f")" in version | manifest.json) continue ;; esac
  [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "blob $(basename "$f") of podman/pushed:v1 is corrupt"
done
pm rmi -a -f >/dev/null 2>&1 || true
[ -z "$(pm images -q)" ] || fail "podman rmi -a left images behind: $(pm images)"
pm_x pull "$H/podman/pushed:v1"
[ "$(image_id "$H/podman/pushed:v1")" = "$(cfg_of "$IMG/multi")" ] ||
  fail "podman pull podman/pushed:v1: image ID differs from the image podman pushed"
pm_x push --format v2s2 "$H/podman/pushed:v1" "docker://$H/podman/pushed:v2s2"
mt=$(sk_inspect --raw "docker://$H/podman/pushed:v2s2" | json_get - 'j["mediaType"]')
[ "$mt" = application/vnd.docker.distribution.manifest.v2+json ] || fail "podman push --format v2s2 stored mediaType $mt"
pm_x pull "$H/podman/pushed:v2s2"

step "podman manifest list: create, add, push --all"
pm manifest create localhost/e2e/list >/dev/null
pm_x manifest add --all localhost/e2e/list "docker://$H/multiarch:latest"
pm_x manifest add localhost/e2e/list "docker://$H/docker:v1"
pm_x manifest push --all localhost/e2e/list "docker://$H/podman/list:latest"
sk_inspect --raw "docker://$H/podman/list:latest" >"$WORK/list.json" || fail "skopeo inspect --raw podman/list:latest failed"
count=$(json_get "$WORK/list.json" 'len(j["manifests"])')
[ "$count" -eq 4 ] || fail "podman/list:latest has $count instances, want 4"
rm -rf "$WORK/list-copy"
sk_copy "docker://$H/podman/list:latest" "dir:$WORK/list-copy" --all
img_blobs "$WORK/list-copy" >/dev/null || fail "podman/list:latest cannot be pulled completely with --all"
pm_x pull --arch arm64 --variant v8 "$H/podman/list:latest"

step "podman search (catalog) and search --list-tags"
pm_x search "$H/"
for r in multi docker multiarch podman/pushed podman/list; do
  grep -q "$H/$r\b" "$WORK/last-podman.out" || { cat "$WORK/last-podman.out" >&2; fail "podman search $H/ does not list $r"; }
done
pm_x search --list-tags "$H/podman/pushed"
for t in v1 v2s2; do
  grep -Eq "$H/podman/pushed +$t\$" "$WORK/last-podman.out" || { cat "$WORK/last-podman.out" >&2; fail "podman search --list-tags podman/pushed lacks tag $t"; }
done

log "all podman checks passed against $TARGET"
