#!/usr/bin/env bash
# End-to-end: push/pull real images to a berth server with skopeo and check that everything
# comes back byte-identical, and that the storage left on disk is Distribution's layout.
#
#   bash tests/e2e/test_skopeo.sh           (BERTH_BIN=path/to/berth)
#   E2E_TARGET=distribution bash tests/e2e/test_skopeo.sh
#       runs the same checks against docker-registry (CNCF Distribution) instead: the reference
#       behaviour the test was written against.
#   E2E_STORAGE=s3 bash tests/e2e/test_skopeo.sh
#       berth serves an S3 bucket: the one S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION,
#       S3_BUCKET name (tests/e2e/test_s3_suites.sh runs it so), else a radosgw of its own
#       (tests/fixtures/s3/). The layout checks then read a copy of the bucket's objects
#       (tests/fixtures/s3/s3mirror.py: the keys are the paths), taken before each check.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd skopeo
need_cmd curl
TARGET=${E2E_TARGET:-berth}

step "generate test images"
IMG="$WORK/img"
make_images "$IMG"
ROOT="$WORK/root"

# view_root: on S3, makes $ROOT a copy of what the bucket holds below berth's rootdirectory
# (and $WORK/open-uploads the multipart uploads left open there); nothing on a filesystem.
view_root() { :; }
if [ "${E2E_STORAGE:-filesystem}" = s3 ]; then
  [ "$TARGET" = berth ] || fail "E2E_STORAGE=s3 is for berth"
  [ -n "${S3_ENDPOINT:-}" ] || start_rgw skopeo
  S3_ROOT="skopeo-$$-$RANDOM"
  {
    echo "version: 0.1"
    s3_storage_yaml "/$S3_ROOT"
    printf '  redirect:\n    disable: true\n'
  } >"$WORK/berth-s3.yml"
  view_root() {
    mkdir -p "$ROOT"
    "$PY" "$BERTH_SRC/tests/fixtures/s3/s3mirror.py" "$S3_ROOT" "$ROOT" >"$WORK/open-uploads" ||
      fail "cannot copy the bucket's objects"
  }
fi

if [ "$TARGET" = distribution ]; then
  need_cmd docker-registry
  start_distribution "$ROOT"
  H=$DIST_HOST
elif [ "${E2E_STORAGE:-filesystem}" = s3 ]; then
  need_berth
  H=""
  for _ in 1 2 3; do
    BERTH_PORT=$(free_port)
    BERTH_LOG="$WORK/berth-$BERTH_PORT.log"
    # As start_berth: no REGISTRY_* variable leaks in.
    # shellcheck disable=SC2046
    if _start_server berth "$BERTH_LOG" "$BERTH_PORT" env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') \
      "$BERTH_BIN" serve "$WORK/berth-s3.yml" --addr "127.0.0.1:$BERTH_PORT" --delete; then
      H=127.0.0.1:$BERTH_PORT
      break
    fi
  done
  [ -n "$H" ] || fail "berth would not start on s3 (see $BERTH_LOG)"
  log "berth on $H serving bucket $S3_BUCKET below /$S3_ROOT at $S3_ENDPOINT"
else
  need_berth
  start_berth "$ROOT" --delete
  H=$BERTH_HOST
fi

# pull_check IMAGE REPO:TAG|REPO@DIGEST [copy args]: pull to a fresh oci: (OCI images only) and
# dir: copy, both byte-identical to IMAGE.
n_pull=0
pull_check() {
  local img=$1 ref=$2
  shift 2
  n_pull=$((n_pull + 1))
  local out="$WORK/pull/$n_pull"
  mkdir -p "$out"
  if [ -f "$img/oci-layout" ]; then
    sk_copy "docker://$H/$ref" "oci:$out/oci:latest" --preserve-digests "$@"
    assert_same_image "$img" "$out/oci"
  fi
  sk_copy "docker://$H/$ref" "dir:$out/dir" --preserve-digests "$@"
  assert_same_image "$img" "$out/dir"
  rm -rf "$out"
}

# check_inspect IMAGE REPO:TAG: inspect --raw is the pushed manifest byte for byte; inspect
# reports its digest and layers; inspect --config --raw is the pushed config.
check_inspect() {
  local img=$1 ref=$2 top mf
  top=$(img_digest "$img")
  mf=$(img_manifest_file "$img")
  sk_inspect --raw "docker://$H/$ref" >"$WORK/raw" || fail "skopeo inspect --raw docker://$H/$ref failed"
  cmp -s "$mf" "$WORK/raw" || {
    diff <(cat "$mf") <(cat "$WORK/raw") | head -20 >&2 || true
    fail "inspect --raw $ref is not byte-identical to the pushed manifest $top"
  }
  local m mtype
  m=$mf
  mtype=$(json_get "$mf" 'j.get("mediaType", "")')
  if [[ "$mtype" == *index* || "$mtype" == *list* ]]; then
    # skopeo inspect (not raw) resolves a list to the amd64 instance.
    local child
    child=$(json_get "$mf" '[x["digest"] for x in j["manifests"] if x["platform"]["architecture"] == "amd64"][0]')
    m=$(img_manifest_file "$img" "$child")
  fi
  sk_inspect --override-arch amd64 --override-os linux "docker://$H/$ref" >"$WORK/inspect.json" ||
    fail "skopeo inspect docker://$H/$ref failed"
  local got_digest got_layers want_layers
  got_digest=$(json_get "$WORK/inspect.json" 'j["Digest"]')
  [ "$got_digest" = "$top" ] || fail "skopeo inspect $ref: Digest $got_digest, want $top"
  got_layers=$(json_get "$WORK/inspect.json" 'j["Layers"]')
  want_layers=$(json_get "$m" '[l["digest"] for l in j["layers"]]')
  [ "$got_layers" = "$want_layers" ] || fail "skopeo inspect $ref: Layers $got_layers, want $want_layers"
  sk_inspect --config --raw --override-arch amd64 --override-os linux "docker://$H/$ref" >"$WORK/cfg.blob" ||
    fail "skopeo inspect --config --raw $ref failed"
  local cfgd
  cfgd=$(json_get "$m" 'j["config"]["digest"]')
  [ "sha256:$(sha256sum <"$WORK/cfg.blob" | cut -d' ' -f1)" = "$cfgd" ] ||
    fail "skopeo inspect --config --raw $ref: config does not hash to $cfgd"
}

# list_tags REPO: sorted tags, one per line
list_tags() {
  sk_list_tags "docker://$H/$1" >"$WORK/tags.json" || fail "skopeo list-tags docker://$H/$1 failed"
  local repo
  repo=$(json_get "$WORK/tags.json" 'j["Repository"]')
  [ "$repo" = "$H/$1" ] || fail "list-tags $1: Repository is '$repo', want '$H/$1'"
  json_get "$WORK/tags.json" '"\n".join(sorted(j["Tags"] or []))'
}

assert_tags() {
  local repo=$1 want got
  shift
  want=$(printf '%s\n' "$@" | sort)
  got=$(list_tags "$repo")
  [ "$got" = "$want" ] || fail "list-tags $repo: got [${got//$'\n'/ }], want [${want//$'\n'/ }]"
}

# ---------------------------------------------------------------------------------------------
# name  repo                tag     extra copy args
PUSHES=(
  "multi     multi               v1"
  "multi     team/app/img        v1"
  "big       big                 latest"
  "multiarch multiarch           latest --all"
  "docker    docker              latest"
  "dockerlist dockerlist         latest --all"
)

for p in "${PUSHES[@]}"; do
  read -r name repo tag args <<<"$p"
  step "push $name -> $repo:$tag ${args:-}"
  # shellcheck disable=SC2086
  sk_copy "$(img_ref "$IMG/$name")" "docker://$H/$repo:$tag" --preserve-digests $args
  view_root
  assert_repo_layout "$ROOT" "$repo" "$tag" "$IMG/$name"
done

for p in "${PUSHES[@]}"; do
  read -r name repo tag args <<<"$p"
  step "pull back $repo:$tag ${args:-}"
  # shellcheck disable=SC2086
  pull_check "$IMG/$name" "$repo:$tag" $args
  step "inspect $repo:$tag"
  check_inspect "$IMG/$name" "$repo:$tag"
  step "pull $repo by digest"
  rm -rf "$WORK/bydigest"
  # shellcheck disable=SC2086
  sk_copy "docker://$H/$repo@$(img_digest "$IMG/$name")" "dir:$WORK/bydigest" --preserve-digests $args
  assert_same_image "$IMG/$name" "$WORK/bydigest"
done

step "pull one platform of the multiarch index (no --all)"
for plat in "amd64 -" "arm64 v8" "s390x -"; do
  read -r arch variant <<<"$plat"
  child=$(json_get "$(img_manifest_file "$IMG/multiarch")" \
    "[x['digest'] for x in j['manifests'] if x['platform']['architecture'] == '$arch'][0]")
  vargs=(--override-arch "$arch" --override-os linux)
  [ "$variant" = - ] || vargs+=(--override-variant "$variant")
  rm -rf "$WORK/plat"
  _sk "${vargs[@]}" copy --src-tls-verify=false --src-authfile "$WORK/auth.json" --preserve-digests \
    "docker://$H/multiarch:latest" "oci:$WORK/plat:latest" >"$WORK/last-copy.out" 2>&1 ||
    { cat "$WORK/last-copy.out" >&2; fail "copy of the $arch instance of multiarch:latest failed"; }
  assert_same_image "$IMG/multiarch" "$WORK/plat" "$child"
done

step "push with --format v2s2 (OCI -> Docker schema2 conversion)"
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/converted:v2s2" --format v2s2
sk_inspect --raw "docker://$H/converted:v2s2" >"$WORK/conv.json" || fail "inspect --raw converted:v2s2 failed"
mt=$(json_get "$WORK/conv.json" 'j["mediaType"]')
[ "$mt" = application/vnd.docker.distribution.manifest.v2+json ] || fail "converted:v2s2 has mediaType $mt"
got=$(json_get "$WORK/conv.json" '[l["digest"] for l in j["layers"]]')
want=$(json_get "$(img_manifest_file "$IMG/multi")" '[l["digest"] for l in j["layers"]]')
[ "$got" = "$want" ] || fail "converted:v2s2 layers $got, want the original layers $want"
rm -rf "$WORK/conv"
sk_copy "docker://$H/converted:v2s2" "dir:$WORK/conv" --preserve-digests
cmp -s "$WORK/conv.json" "$WORK/conv/manifest.json" || fail "dir: pull of converted:v2s2 differs from inspect --raw"
img_blobs "$WORK/conv" >/dev/null || fail "dir: pull of converted:v2s2 is incomplete"
for f in "$WORK/conv"/*; do
  case "$(basename "$f")" in version | manifest.json) continue ;; esac
  [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "converted blob $f corrupt"
done
check_inspect "$WORK/conv" converted:v2s2

step "second and third tag; list-tags"
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/multi:v2" --preserve-digests
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/multi:latest" --preserve-digests
assert_tags multi latest v1 v2
assert_tags team/app/img v1
assert_tags multiarch latest
assert_tags dockerlist latest
view_root
assert_link "$ROOT/docker/registry/v2/repositories/multi/_manifests/tags/v2/current/link" "$(img_digest "$IMG/multi")"

step "re-push the same image (all blobs deduplicated)"
view_root
nblobs=$(find "$ROOT/docker/registry/v2/blobs" -name data | wc -l)
E2E_DEBUG=1 sk_copy "$(img_ref "$IMG/multi")" "docker://$H/multi:v1" --preserve-digests
u=$(copy_uploads)
[ "$u" -eq 0 ] || fail "re-push of multi:v1 uploaded $u blobs again (HEAD /v2/multi/blobs/<digest> should have said they exist)"
view_root
[ "$(find "$ROOT/docker/registry/v2/blobs" -name data | wc -l)" -eq "$nblobs" ] || fail "re-push created new blob data files"
pull_check "$IMG/multi" multi:v1
assert_repo_layout "$ROOT" multi v1 "$IMG/multi"

step "copy between repositories of the same registry (cross-repo blob mount)"
E2E_DEBUG=1 sk_copy "docker://$H/multi:v1" "docker://$H/mounted/multi:v1" --preserve-digests
m=$(copy_mounts)
u=$(copy_uploads)
# skopeo mounts the 4 layers (POST /v2/mounted/multi/blobs/uploads/?mount=<digest>&from=multi
# answered 201) and uploads the config normally.
[ "$m" -eq 4 ] || fail "cross-repo copy: $m of 4 layer mounts succeeded (POST ...?mount=&from=multi should answer 201 Created); $u blobs uploaded"
[ "$u" -le 1 ] || fail "cross-repo copy uploaded $u blobs (expected only the config)"
view_root
[ "$(find "$ROOT/docker/registry/v2/blobs" -name data | wc -l)" -eq "$nblobs" ] || fail "cross-repo copy created new blob data files"
assert_repo_layout "$ROOT" mounted/multi v1 "$IMG/multi"
pull_check "$IMG/multi" mounted/multi:v1
sk_copy "docker://$H/multiarch:latest" "docker://$H/mounted/multiarch:latest" --all --preserve-digests
view_root
assert_repo_layout "$ROOT" mounted/multiarch latest "$IMG/multiarch"
pull_check "$IMG/multiarch" mounted/multiarch:latest --all

step "delete a tag's manifest; the other tag survives"
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/del/test:keep" --preserve-digests
sk_copy "$(img_ref "$IMG/docker")" "docker://$H/del/test:gone" --preserve-digests
assert_tags del/test gone keep
sk_delete "docker://$H/del/test:gone" || fail "skopeo delete docker://$H/del/test:gone failed"
gone=$(img_digest "$IMG/docker")
if sk_inspect --raw "docker://$H/del/test:gone" >/dev/null 2>&1; then fail "del/test:gone still inspects after delete"; fi
if sk_inspect --raw "docker://$H/del/test@$gone" >/dev/null 2>&1; then fail "del/test@$gone still inspects after delete"; fi
assert_tags del/test keep
pull_check "$IMG/multi" del/test:keep
check_inspect "$IMG/multi" del/test:keep
view_root
R="$ROOT/docker/registry/v2/repositories/del/test"
[ ! -e "$R/_manifests/tags/gone" ] || fail "tag directory $R/_manifests/tags/gone still exists after delete"
[ ! -e "$R/_manifests/revisions/sha256/${gone#sha256:}/link" ] || fail "revision link of deleted manifest $gone still exists"
assert_repo_layout "$ROOT" del/test keep "$IMG/multi"
# The same image elsewhere is untouched.
pull_check "$IMG/docker" docker:latest

step "delete a manifest that two tags point to: both tags go (Distribution semantics)"
sk_copy "$(img_ref "$IMG/docker")" "docker://$H/del/same:a" --preserve-digests
sk_copy "$(img_ref "$IMG/docker")" "docker://$H/del/same:b" --preserve-digests
sk_copy "$(img_ref "$IMG/multi")" "docker://$H/del/same:c" --preserve-digests
sk_delete "docker://$H/del/same:a" || fail "skopeo delete docker://$H/del/same:a failed"
for t in a b; do
  if sk_inspect --raw "docker://$H/del/same:$t" >/dev/null 2>&1; then fail "del/same:$t still inspects after deleting its manifest via :a"; fi
done
assert_tags del/same c
pull_check "$IMG/multi" del/same:c

step "delete a multiarch index"
sk_copy "docker://$H/multiarch:latest" "docker://$H/del/multiarch:latest" --all --preserve-digests
sk_delete "docker://$H/del/multiarch:latest" || fail "skopeo delete del/multiarch:latest failed"
if sk_inspect --raw "docker://$H/del/multiarch:latest" >/dev/null 2>&1; then fail "del/multiarch:latest still inspects after delete"; fi
pull_check "$IMG/multiarch" multiarch:latest --all

step "concurrent pushes of the same new blobs to several repositories"
IMG2="$WORK/img2"
E2E_BIG_SIZE=$((16 << 20)) make_images "$IMG2" --only multi,big,multiarch --salt race
pids=()
for i in 1 2 3; do
  for name in multi big multiarch; do
    ( _sk copy --dest-tls-verify=false --dest-authfile "$WORK/auth.json" --retry-times 0 --preserve-digests --all \
        "$(img_ref "$IMG2/$name")" "docker://$H/race$i/$name:latest" >"$WORK/race-$i-$name.out" 2>&1 ) &
    pids+=($!)
  done
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { cat "$WORK"/race-*.out >&2; fail "a concurrent push failed (see skopeo output above)"; }
done
view_root
for i in 1 2 3; do
  for name in multi big multiarch; do
    assert_repo_layout "$ROOT" "race$i/$name" latest "$IMG2/$name"
  done
  pull_check "$IMG2/multiarch" "race$i/multiarch:latest" --all
done
pull_check "$IMG2/big" race2/big:latest

step "no upload leftovers"
view_root
left=$(find "$ROOT/docker/registry/v2/repositories" -path '*/_uploads/*' -mindepth 1 2>/dev/null | head -5)
[ -z "$left" ] || fail "upload state left behind after completed pushes: $left"
[ ! -s "$WORK/open-uploads" ] || fail "multipart uploads left open after completed pushes: $(head -3 "$WORK/open-uploads")"

log "all skopeo checks passed against $TARGET ($n_pull pulls)"
