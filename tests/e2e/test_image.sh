#!/usr/bin/env bash
# The container image, built offline: what the Dockerfile makes, assembled by buildah from
# scratch out of the binary under test, the libraries ldd lists for it and
# packaging/image-config.yml (Distribution's registry:2 configuration), run with podman on
# loopback with a host directory as /var/lib/registry; skopeo pushes images through it and pulls
# them back byte for byte, podman pulls one, and the container stops cleanly on `podman stop`.
#
# Containers run here with --network host and rlimits no higher than this process's own: the
# sandbox refuses to raise them (runc: "error setting rlimits ... operation not permitted").
#
#   bash tests/e2e/test_image.sh           (BERTH_BIN=path/to/berth)
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
need_cmd skopeo
need_cmd curl
need_cmd ldd libc-bin
need_cmd buildah
need_cmd podman

# Private container storage and configuration, removed with $WORK.
PS="$WORK/podman"
mkdir -p "$PS/graph"
set_podman_runroot "$PS"
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s/graph"\nrunroot = "%s"\n' "$PS" "$RUNROOT" >"$WORK/storage.conf"
printf '[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\n' >"$WORK/containers.conf"
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf"
BA=(buildah --root "$PS/graph" --runroot "$RUNROOT" --storage-driver vfs)
pm() {
  podman --root "$PS/graph" --runroot "$RUNROOT" --storage-driver vfs --events-backend none \
    --cgroup-manager cgroupfs "$@"
}
IMAGE=localhost/berth-e2e:test
CTR=berth-e2e-$$
cleanup_container() {
  pm rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
}
trap 'cleanup_container; _e2e_cleanup' EXIT

step "assemble the image root: the binary, its libraries (ldd), the configuration"
RFS="$WORK/rootfs"
mkdir -p "$RFS/usr/bin" "$RFS/etc/docker/registry" "$RFS/var/lib/registry" "$RFS/tmp"
cp "$BERTH_BIN" "$RFS/usr/bin/berth"
cp "$BERTH_SRC/packaging/image-config.yml" "$RFS/etc/docker/registry/config.yml"
ldd "$BERTH_BIN" >"$WORK/ldd.out" || fail "ldd $BERTH_BIN failed"
libs=$(grep -o '/[^ ]*' "$WORK/ldd.out" | sort -u)
[ -n "$libs" ] || fail "ldd lists no libraries for $BERTH_BIN (a static binary needs none, but berth is not one)"
for lib in $libs; do
  mkdir -p "$RFS$(dirname "$lib")"
  cp -L "$lib" "$RFS$lib"
done
# Owned by nobody, whom the container runs as; the name resolves without an /etc/passwd entry.
printf 'nobody:x:65534:65534:nobody:/var/lib/registry:/usr/sbin/nologin\n' >"$RFS/etc/passwd"
printf 'nogroup:x:65534:\n' >"$RFS/etc/group"
chmod 1777 "$RFS/tmp"
log "$(echo "$libs" | wc -l) libraries from ldd"

step "buildah from scratch, commit"
ctr=$("${BA[@]}" from scratch) || fail "buildah from scratch failed"
"${BA[@]}" copy "$ctr" "$RFS" / >/dev/null || fail "buildah copy failed"
"${BA[@]}" config --entrypoint '["/usr/bin/berth", "serve"]' --cmd /etc/docker/registry/config.yml \
  --port 5000 --volume /var/lib/registry --user 65534:65534 \
  --label org.opencontainers.image.title=berth "$ctr" || fail "buildah config failed"
"${BA[@]}" commit --quiet "$ctr" "$IMAGE" >/dev/null || fail "buildah commit failed"
"${BA[@]}" rm "$ctr" >/dev/null

step "check that podman can run a container here"
# Modest rlimits, none above this process's: podman would otherwise ask for its defaults
# (1048576 files), which the sandbox forbids; here even nproc at its hard limit was refused.
lim() { local hard=$1 want=$2; if [ "$hard" = unlimited ] || [ "$hard" -gt "$want" ]; then echo "$want"; else echo "$hard"; fi; }
NOFILE=$(lim "$(ulimit -Hn)" 8192)
NPROC=$(lim "$(ulimit -Hu)" 4096)
RUN=(run --rm --network host --ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC")
if ! pm "${RUN[@]}" --entrypoint /usr/bin/berth "$IMAGE" --version >"$WORK/version.out" 2>&1; then
  cat "$WORK/version.out" >&2
  # Only the container runtime refusing to start anything is a reason to skip; anything else
  # (the image, its libraries, berth) is a failure.
  grep -qE 'OCI runtime|runc|crun|cgroup|namespace|operation not permitted|permission denied' "$WORK/version.out" ||
    fail "podman could not run the image (see above)"
  skip "podman cannot run a container in this environment (see above)"
fi
grep -q '^berth ' "$WORK/version.out" || fail "berth --version in the image said: $(cat "$WORK/version.out")"

step "run the image: registry:2's configuration, a host directory as /var/lib/registry"
ROOT="$WORK/root"
mkdir -p "$ROOT"
chown 65534:65534 "$ROOT"
PORT=$(free_port)
H="127.0.0.1:$PORT"
# REGISTRY_HTTP_ADDR overrides the image's :5000, as with Distribution's image: the container
# shares the host's network here, and loopback only.
_start_server berth-image "$WORK/image.log" "$PORT" podman --root "$PS/graph" --runroot "$RUNROOT" \
  --storage-driver vfs --events-backend none --cgroup-manager cgroupfs "${RUN[@]}" --name "$CTR" \
  -e REGISTRY_HTTP_ADDR="$H" -v "$ROOT:/var/lib/registry" "$IMAGE" ||
  fail "the berth image did not start (log: $WORK/image.log)"
grep -q 'listening on' "$WORK/image.log" || fail "no listening line in the container's log"
grep -q 'service="registry"' "$WORK/image.log" || fail "the image's configuration (log field service) was not used"
[ "$(http_code "http://$H/")" = 200 ] || fail "GET / through the container did not answer 200"

step "push through the container, pull back byte for byte"
IMG="$WORK/img"
make_images "$IMG" --only multi,docker
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/image/multi:v1" --preserve-digests
sk_copy "$(img_ref "$IMG/docker")" "docker://$H/image/docker:v1" --preserve-digests
for i in multi docker; do
  rm -rf "$WORK/pulled-$i"
  sk_copy "docker://$H/image/$i:v1" "dir:$WORK/pulled-$i" --preserve-digests
  assert_same_image "$IMG/$i" "$WORK/pulled-$i"
done
# What the container wrote is in the host directory, in Distribution's layout, owned by nobody.
assert_link "$ROOT/docker/registry/v2/repositories/image/multi/_manifests/tags/v1/current/link" "$(img_digest "$IMG/multi")"
[ "$(stat -c %u "$ROOT/docker/registry/v2/repositories/image/multi/_manifests/tags/v1/current/link")" = 65534 ] ||
  fail "the container did not write as nobody (65534)"

step "podman pulls through it"
pm pull --tls-verify=false --signature-policy "$WORK/policy.json" "$H/image/multi:v1" >"$WORK/pull.out" 2>&1 ||
  { cat "$WORK/pull.out" >&2; fail "podman pull $H/image/multi:v1 failed"; }

step "podman stop: berth drains and says it stopped"
pm stop -t 20 "$CTR" >/dev/null || fail "podman stop failed"
for _ in $(seq 1 100); do grep -q 'berth stopped' "$WORK/image.log" && break; sleep 0.1; done
grep -q 'berth stopped' "$WORK/image.log" || fail "no 'berth stopped' line after podman stop"
pm rmi -f "$IMAGE" >/dev/null 2>&1 || true
