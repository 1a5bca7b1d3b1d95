#!/usr/bin/env bash
# End-to-end interoperability: CNCF Distribution (docker-registry) and berth serve the SAME
# storage root on two ports. What one writes the other must read byte for byte, and deletes
# through one must be seen by the other.
#
#   bash tests/e2e/test_interop.sh          (BERTH_BIN=path/to/berth)
#   E2E_TARGET=distribution bash tests/e2e/test_interop.sh
#       uses a second docker-registry in place of berth (a self-check of the test itself).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init_skopeo_distribution
TARGET=${E2E_TARGET:-berth}

step "generate test images"
IMG="$WORK/img"
make_images "$IMG"
ROOT="$WORK/root"

start_distribution "$ROOT"
D=$DIST_HOST
if [ "$TARGET" = distribution ]; then
  start_distribution "$ROOT"
  B=$DIST_HOST
else
  need_berth
  start_berth "$ROOT" --delete
  B=$BERTH_HOST
fi
declare -A NAME_OF=([$D]=docker-registry [$B]="$TARGET")

# pull_from HOST IMAGE REF [copy args]: pull REF from HOST to fresh oci: (OCI images) and dir:
# copies, both byte-identical to IMAGE.
n=0
pull_from() {
  local host=$1 img=$2 ref=$3
  shift 3
  n=$((n + 1))
  local out="$WORK/pull/$n"
  mkdir -p "$out"
  if [ -f "$img/oci-layout" ]; then
    sk_copy "docker://$host/$ref" "oci:$out/oci:latest" --preserve-digests "$@"
    assert_same_image "$img" "$out/oci"
  fi
  sk_copy "docker://$host/$ref" "dir:$out/dir" --preserve-digests "$@"
  assert_same_image "$img" "$out/dir"
  rm -rf "$out"
}

# raw_equal IMAGE REF: inspect --raw through both servers gives the pushed manifest bytes.
raw_equal() {
  local img=$1 ref=$2 host mf
  mf=$(img_manifest_file "$img")
  for host in "$D" "$B"; do
    sk_inspect --raw "docker://$host/$ref" >"$WORK/raw" || fail "skopeo inspect --raw via ${NAME_OF[$host]} of $ref failed"
    cmp -s "$mf" "$WORK/raw" || fail "inspect --raw via ${NAME_OF[$host]} of $ref is not the pushed manifest $(img_digest "$img")"
  done
}

# tags_via HOST REPO: "ok TAG..." (sorted) or "error" when list-tags fails
tags_via() {
  if sk_list_tags "docker://$1/$2" >"$WORK/tags.json" 2>"$WORK/tags.err"; then
    echo "ok $(json_get "$WORK/tags.json" '" ".join(sorted(j["Tags"] or []))')"
  else
    echo error
  fi
}

# tags_equal REPO [TAG...]: both servers list exactly these tags.
tags_equal() {
  local repo=$1 want host got
  shift
  want="ok $(printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//')"
  for host in "$D" "$B"; do
    got=$(tags_via "$host" "$repo")
    [ "$got" = "$want" ] || fail "list-tags $repo via ${NAME_OF[$host]}: got '$got', want '$want'"
  done
}

# gone_via HOST REF: REF must no longer inspect through HOST.
gone_via() {
  if sk_inspect --raw "docker://$1/$2" >/dev/null 2>&1; then
    fail "$2 still inspects via ${NAME_OF[$1]} after it was deleted"
  fi
}

# same_answer PATH: GET PATH answers the same status and body on both servers.
same_answer() {
  local p=$1 cd cb
  cd=$(curl -s --max-time 20 -o "$WORK/ans.d" -w '%{http_code}' "http://$D$p")
  cb=$(curl -s --max-time 20 -o "$WORK/ans.b" -w '%{http_code}' "http://$B$p")
  [ "$cd" = "$cb" ] || fail "GET $p: docker-registry answers $cd, $TARGET answers $cb ($(head -c 300 "$WORK/ans.b"))"
  if [ "$cd" = 200 ]; then
    # Distribution 2.8 answers "tags":null for a repository whose tags were all deleted; an
    # empty list means the same thing, so the two are treated as equal.
    local norm='dict(j, tags=j["tags"] or []) if "tags" in j else j'
    [ "$(json_get "$WORK/ans.d" "$norm")" = "$(json_get "$WORK/ans.b" "$norm")" ] ||
      fail "GET $p: bodies differ: docker-registry $(cat "$WORK/ans.d"), $TARGET $(cat "$WORK/ans.b")"
  fi
}

# ---------------------------------------------------------------------------------------------
step "push through docker-registry"
sk_copy "$(img_ref "$IMG/multi")" "docker://$D/a/multi:v1" --preserve-digests
sk_copy "$(img_ref "$IMG/multiarch")" "docker://$D/a/multiarch:latest" --preserve-digests --all
sk_copy "$(img_ref "$IMG/docker")" "docker://$D/a/docker:latest" --preserve-digests
sk_copy "$(img_ref "$IMG/dockerlist")" "docker://$D/a/dockerlist:latest" --preserve-digests --all

step "pull through $TARGET what docker-registry pushed"
pull_from "$B" "$IMG/multi" a/multi:v1
pull_from "$B" "$IMG/multi" "a/multi@$(img_digest "$IMG/multi")"
pull_from "$B" "$IMG/multiarch" a/multiarch:latest --all
pull_from "$B" "$IMG/docker" a/docker:latest
pull_from "$B" "$IMG/dockerlist" a/dockerlist:latest --all
raw_equal "$IMG/multi" a/multi:v1
raw_equal "$IMG/multiarch" a/multiarch:latest
raw_equal "$IMG/docker" a/docker:latest
raw_equal "$IMG/dockerlist" a/dockerlist:latest
tags_equal a/multi v1
tags_equal a/multiarch latest

step "push through $TARGET"
sk_copy "$(img_ref "$IMG/multi")" "docker://$B/b/multi:v1" --preserve-digests
sk_copy "$(img_ref "$IMG/big")" "docker://$B/b/big:latest" --preserve-digests
sk_copy "$(img_ref "$IMG/multiarch")" "docker://$B/b/multiarch:latest" --preserve-digests --all
sk_copy "$(img_ref "$IMG/docker")" "docker://$B/b/docker:latest" --preserve-digests
sk_copy "$(img_ref "$IMG/dockerlist")" "docker://$B/b/dockerlist:latest" --preserve-digests --all
for r in "b/multi v1 multi" "b/big latest big" "b/multiarch latest multiarch" "b/docker latest docker" "b/dockerlist latest dockerlist"; do
  read -r repo tag name <<<"$r"
  assert_repo_layout "$ROOT" "$repo" "$tag" "$IMG/$name"
done

step "pull through docker-registry what $TARGET pushed"
pull_from "$D" "$IMG/multi" b/multi:v1
pull_from "$D" "$IMG/big" b/big:latest
pull_from "$D" "$IMG/multiarch" b/multiarch:latest --all
pull_from "$D" "$IMG/multiarch" "b/multiarch@$(img_digest "$IMG/multiarch")" --all
pull_from "$D" "$IMG/docker" b/docker:latest
pull_from "$D" "$IMG/dockerlist" b/dockerlist:latest --all
raw_equal "$IMG/multi" b/multi:v1
raw_equal "$IMG/big" b/big:latest
raw_equal "$IMG/multiarch" b/multiarch:latest
raw_equal "$IMG/dockerlist" b/dockerlist:latest
tags_equal b/multi v1
tags_equal b/big latest

step "tags added through one server to a repository created through the other"
sk_copy "$(img_ref "$IMG/docker")" "docker://$B/a/multi:v2" --preserve-digests
sk_copy "$(img_ref "$IMG/multi")" "docker://$D/b/multi:v2" --preserve-digests
tags_equal a/multi v1 v2
tags_equal b/multi v1 v2
pull_from "$D" "$IMG/docker" a/multi:v2
pull_from "$B" "$IMG/multi" b/multi:v2

step "same answers to tags/list and _catalog"
for repo in a/multi a/multiarch a/docker a/dockerlist b/multi b/big b/multiarch b/docker b/dockerlist; do
  same_answer "/v2/$repo/tags/list"
done
same_answer "/v2/nosuch/repo/tags/list"
same_answer "/v2/_catalog"

ACCEPT="application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
# head_of HOST METHOD PATH: status and the headers that matter to clients, one per line.
head_of() {
  local out
  local how=(-D - -o "$WORK/body")
  if [ "$2" = HEAD ]; then how=(-I); fi
  out=$(curl -s --max-time 20 "${how[@]}" ${3:+-H "Accept: $ACCEPT"} "http://$1$4" | tr -d '\r') || true
  {
    sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/status \1/p' <<<"$out"
    # Error answers: only the status and type count (the error detail text may differ).
    if grep -q '^HTTP/[0-9.]* [45]' <<<"$out"; then
      grep -i -E '^content-type:' <<<"$out" | tr '[:upper:]' '[:lower:]' || true
    else
      grep -i -E '^(content-type|content-length|docker-content-digest):' <<<"$out" | tr '[:upper:]' '[:lower:]' | sort
      if [ "$2" = GET ]; then echo "body sha256:$(sha256sum <"$WORK/body" | cut -d' ' -f1)"; fi
    fi
  } | sed 's/; *charset=utf-8//'
}
# same_headers METHOD PATH [accept]: same status, Content-Type, Content-Length,
# Docker-Content-Digest (and body for GET) from both servers.
same_headers() {
  local hd hb
  hd=$(head_of "$D" "$1" "${3:-}" "$2")
  hb=$(head_of "$B" "$1" "${3:-}" "$2")
  [ "$hd" = "$hb" ] || fail "$1 $2: answers differ. docker-registry: [${hd//$'\n'/; }]  $TARGET: [${hb//$'\n'/; }]"
}

step "same status and headers for manifests and blobs"
for r in "multi v1" "multiarch latest" "docker latest" "dockerlist latest"; do
  read -r name tag <<<"$r"
  dg=$(img_digest "$IMG/$name")
  for ref in "$tag" "$dg"; do
    same_headers GET "/v2/b/$name/manifests/$ref" accept
    same_headers HEAD "/v2/b/$name/manifests/$ref" accept
  done
  while read -r kind d f; do
    [ "$kind" = L ] || continue
    same_headers HEAD "/v2/b/$name/blobs/$d"
  done < <(img_blobs "$IMG/$name")
done
cfg=$(json_get "$(img_manifest_file "$IMG/multi")" 'j["config"]["digest"]')
same_headers GET "/v2/b/multi/blobs/$cfg"
same_headers HEAD "/v2/b/multi/manifests/nosuchtag" accept
same_headers HEAD "/v2/b/multi/blobs/sha256:$(printf x | sha256sum | cut -d' ' -f1)"

step "cross-repository mount through $TARGET of blobs docker-registry wrote"
E2E_DEBUG=1 sk_copy "docker://$B/a/multi:v1" "docker://$B/c/mounted:v1" --preserve-digests
m=$(copy_mounts)
[ "$m" -eq 4 ] || fail "cross-repo copy a/multi -> c/mounted through ${NAME_OF[$B]}: $m of 4 layer mounts succeeded"
assert_repo_layout "$ROOT" c/mounted v1 "$IMG/multi"
pull_from "$D" "$IMG/multi" c/mounted:v1

step "delete through $TARGET, verify through docker-registry"
sk_delete "docker://$B/b/docker:latest" || fail "skopeo delete via $TARGET of b/docker:latest failed"
gone_via "$D" b/docker:latest
gone_via "$D" "b/docker@$(img_digest "$IMG/docker")"
gone_via "$B" b/docker:latest
[ "$(tags_via "$D" b/docker)" = "$(tags_via "$B" b/docker)" ] ||
  fail "list-tags b/docker after delete: docker-registry '$(tags_via "$D" b/docker)', $TARGET '$(tags_via "$B" b/docker)'"
same_answer "/v2/b/docker/tags/list"
sk_delete "docker://$B/b/multiarch:latest" || fail "skopeo delete via $TARGET of b/multiarch:latest failed"
gone_via "$D" b/multiarch:latest
# The same manifests in other repositories are untouched.
pull_from "$D" "$IMG/docker" a/docker:latest
pull_from "$D" "$IMG/multiarch" a/multiarch:latest --all

step "delete through docker-registry, verify through $TARGET"
sk_delete "docker://$D/a/multiarch:latest" || fail "skopeo delete via docker-registry of a/multiarch:latest failed"
gone_via "$B" a/multiarch:latest
# By digest too: docker-registry removed _manifests/revisions/sha256/<hex>/link, so the manifest
# is gone from the repository even though its blob stays. (Distribution re-reads the revision
# link on every GET by digest, even with its in-memory descriptor cache enabled; a server that
# caches the link answers 200 here until restarted.)
gone_via "$B" "a/multiarch@$(img_digest "$IMG/multiarch")"
same_answer "/v2/a/multiarch/tags/list"
sk_delete "docker://$D/b/multi:v1" || fail "skopeo delete via docker-registry of b/multi:v1 failed"
# b/multi:v1 and :v2 were the same manifest: both tags are gone.
gone_via "$B" b/multi:v1
gone_via "$B" b/multi:v2
same_answer "/v2/b/multi/tags/list"
pull_from "$B" "$IMG/multi" a/multi:v1
pull_from "$B" "$IMG/big" b/big:latest

step "re-push through $TARGET what was deleted through docker-registry"
sk_copy "$(img_ref "$IMG/multiarch")" "docker://$B/a/multiarch:latest" --preserve-digests --all
pull_from "$D" "$IMG/multiarch" a/multiarch:latest --all
tags_equal a/multiarch latest

step "with Debian's default descriptor cache (storage.cache.blobdescriptor: inmemory)"
# Debian's /etc/docker/registry/config.yml enables the cache. Distribution still re-reads the
# revision link on GET/HEAD by digest, so a manifest deleted by another process on the same
# storage is gone at once; berth with the same configuration must behave the same.
cat >"$WORK/cached.yml" <<EOF
version: 0.1
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $ROOT
  delete:
    enabled: true
http:
  addr: 127.0.0.1:1
EOF
if [ "$TARGET" = distribution ]; then
  sed -i "s/127.0.0.1:1\$/127.0.0.1:$(free_port)/" "$WORK/cached.yml"
  C=$(sed -n 's/^  addr: //p' "$WORK/cached.yml")
  _start_server docker-registry "$WORK/cached.log" "${C##*:}" docker-registry serve "$WORK/cached.yml" ||
    fail "docker-registry with the cache config would not start"
else
  BERTH_CONFIG="$WORK/cached.yml" start_berth "$ROOT" --delete
  C=$BERTH_HOST
fi
NAME_OF[$C]="$TARGET (descriptor cache on)"
sk_copy "$(img_ref "$IMG/multi")" "docker://$D/e/cached:v1" --preserve-digests
sk_copy "$(img_ref "$IMG/docker")" "docker://$D/e/cached:v2" --preserve-digests
for dg in "$(img_digest "$IMG/multi")" "$(img_digest "$IMG/docker")"; do
  # Twice, so that whatever can be cached is.
  for _ in 1 2; do
    sk_inspect --raw "docker://$C/e/cached@$dg" >/dev/null || fail "e/cached@$dg does not inspect via ${NAME_OF[$C]}"
  done
done
sk_delete "docker://$D/e/cached:v1" || fail "skopeo delete via docker-registry of e/cached:v1 failed"
gone_via "$D" "e/cached@$(img_digest "$IMG/multi")"
gone_via "$C" e/cached:v1
gone_via "$C" "e/cached@$(img_digest "$IMG/multi")"
if [ "$(http_code -I -H "Accept: $ACCEPT" "http://$C/v2/e/cached/manifests/$(img_digest "$IMG/multi")")" != 404 ]; then
  fail "HEAD /v2/e/cached/manifests/<deleted digest> via ${NAME_OF[$C]} does not answer 404"
fi
pull_from "$C" "$IMG/docker" e/cached:v2

if [ "$TARGET" = berth ]; then
  # berth's own objects (the catalog's generations) lie outside repositories/ and blobs/:
  # Distribution's catalog (compared above), its garbage collection and berth fsck ignore them.
  step "Distribution's garbage collection and berth fsck leave _berth/ alone"
  GEN="$ROOT/docker/registry/v2/_berth/catalog/generation"
  [ -f "$GEN" ] || fail "berth wrote no catalog generation ($GEN)"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n' "$ROOT" >"$WORK/gc.yml"
  docker-registry garbage-collect "$WORK/gc.yml" >"$WORK/gc.out" 2>&1 ||
    fail "docker-registry garbage-collect failed: $(tail -n 5 "$WORK/gc.out")"
  [ -f "$GEN" ] || fail "docker-registry garbage-collect removed $GEN"
  if grep -q _berth "$WORK/gc.out"; then fail "docker-registry garbage-collect mentions _berth: $(grep _berth "$WORK/gc.out")"; fi
  rc=0
  "$BERTH_BIN" fsck "$ROOT" >"$WORK/fsck.out" 2>&1 || rc=$?
  [ "$rc" -le 1 ] || fail "berth fsck exited $rc: $(tail -n 5 "$WORK/fsck.out")"
  if grep -q _berth "$WORK/fsck.out"; then fail "berth fsck reports _berth: $(grep _berth "$WORK/fsck.out")"; fi
fi

log "all interop checks passed ($TARGET <-> docker-registry, $n pulls)"
