#!/usr/bin/env bash
# End-to-end: `berth garbage-collect` on a store filled by skopeo through a berth server.
#
# The store: two repositories sharing an image's layers, a Docker image, an OCI multi-arch
# index and a Docker manifest list (children untagged, as always), a tag overwritten by another
# image (the old manifest becomes untagged), a tag deleted (DELETE by tag: manifest untagged),
# an image deleted by digest (skopeo delete), an OCI 1.1 referrer (subject = a tagged image) and
# a blob uploaded but never referenced.
#
# Checks: --dry-run changes no file at all and announces exactly what the real run deletes; a
# real run (default mode, via a Distribution config.yml) and a --delete-untagged run (via
# --root) each leave a store from which berth serves every tagged image byte-identical, the
# referrer and (default mode) the untagged manifests, with the freed blobs gone from disk and no
# layer link left to a deleted blob; Debian's docker-registry garbage-collect on copies of the
# same store keeps the same blobs (default mode), and in --delete-untagged mode exactly the same
# plus what Distribution 2.8 is known to lose (the configs and layers of index/list children,
# which it deletes as "untagged", and referrers).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd skopeo
need_cmd curl
need_berth
HAVE_DIST=1
command -v docker-registry >/dev/null 2>&1 || HAVE_DIST=0

V2=docker/registry/v2

step "generate test images"
IMG="$WORK/img"
make_images "$IMG" --only multi,multiarch,docker,dockerlist
for salt in old tagdel gone; do
  make_images "$WORK/img-$salt" --only multi --salt "$salt"
done
digest_of() { img_digest "$1"; }

# ---- helpers ----

# blob_set ROOT: sorted digests of every blob data file.
blob_set() {
  find "$1/$V2/blobs" -type f -name data 2>/dev/null |
    sed -E 's#.*/blobs/([a-z0-9]+)/[0-9a-f]{2}/([0-9a-f]+)/data$#\1:\2#' | sort
}
# revision_set ROOT: sorted "repo digest" of every revision link.
revision_set() {
  (cd "$1/$V2/repositories" && find . -path '*/_manifests/revisions/*/link' -type f) |
    sed -E 's#^\./(.*)/_manifests/revisions/([a-z0-9]+)/([0-9a-f]+)/link$#\1 \2:\3#' | sort
}
# snapshot ROOT: every path with its type, size and content hash.
snapshot() {
  (cd "$1" && find . -printf '%p %y %s\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
# blob_kids IMAGE: digests of the configs and layers of an image (all children of an index).
blob_kids() { img_blobs "$1" | awk '$1 == "L" {print $2}'; }
child_manifests() { img_blobs "$1" | awk '$1 == "M" {print $2}' | tail -n +2; }

# Pushes blobs and a manifest with the registry API (stdlib only). Commands:
#   blob REPO FILE                 -> prints digest
#   manifest REPO REF TYPE FILE    -> prints digest
#   referrer REPO SUBJECT_DIGEST SUBJECT_SIZE OUTDIR -> prints "manifest config layer" digests
API=$(cat <<'EOF'
import hashlib, json, os, sys, urllib.request, urllib.parse
host = os.environ["H"]
def req(method, url, data=None, headers=None):
    r = urllib.request.Request(url if url.startswith("http") else "http://" + host + url, data=data,
                               method=method, headers=headers or {})
    with urllib.request.urlopen(r) as resp:
        return resp.status, resp.headers
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
def blob(repo, data):
    d = sha(data)
    st, h = req("POST", "/v2/%s/blobs/uploads/" % repo)
    loc = urllib.parse.urljoin("http://%s/" % host, h["Location"])
    loc += ("&" if "?" in loc else "?") + "digest=" + urllib.parse.quote(d)
    st, h = req("PUT", loc, data, {"Content-Type": "application/octet-stream"})
    assert st == 201, st
    return d
def manifest(repo, ref, mt, data):
    st, h = req("PUT", "/v2/%s/manifests/%s" % (repo, ref), data, {"Content-Type": mt})
    assert st == 201, st
    return h["Docker-Content-Digest"]
cmd, a = sys.argv[1], sys.argv[2:]
if cmd == "blob":
    print(blob(a[0], open(a[1], "rb").read()))
elif cmd == "referrer":
    repo, subj, subj_size, out = a
    cfg = b"{}"
    layer = b"berth gc e2e signature payload\n"
    c, l = blob(repo, cfg), blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "artifactType": "application/vnd.example.signature",
         "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": c, "size": len(cfg)},
         "layers": [{"mediaType": "application/vnd.example.signature.v1", "digest": l, "size": len(layer)}],
         "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subj, "size": int(subj_size)}}
    body = json.dumps(m, separators=(",", ":")).encode()
    open(os.path.join(out, "referrer.json"), "wb").write(body)
    d = manifest(repo, sha(body), m["mediaType"], body)
    assert d == sha(body), (d, sha(body))
    print(d, c, l)
EOF
)
api() { H=$H "$PY" -c "$API" "$@"; }

# pull_ok IMAGE REF [copy args]: REF pulls back byte-identical to IMAGE.
n_pull=0
pull_ok() {
  local img=$1 ref=$2
  shift 2
  n_pull=$((n_pull + 1))
  local out="$WORK/pull/$n_pull"
  mkdir -p "$out"
  sk_copy "docker://$H/$ref" "dir:$out/dir" --preserve-digests "$@"
  assert_same_image "$img" "$out/dir"
  rm -rf "$out"
}

# ---- fill the store ----

ROOT="$WORK/root"
start_berth "$ROOT" --delete
H=$BERTH_HOST

step "push images"
# name              repo          tag     copy args
PUSHES=(
  "$IMG/multi       shared/one    v1"
  "$IMG/multi       shared/two    v1"
  "$IMG/docker      shared/two    d"
  "$IMG/multiarch   arch          latest  --all"
  "$WORK/img-old/multi app        v1"
  "$IMG/dockerlist  app           v1      --all"
  "$WORK/img-tagdel/multi tagdel  t1"
  "$WORK/img-gone/multi gone      x"
)
for p in "${PUSHES[@]}"; do
  read -r img repo tag args <<<"$p"
  # shellcheck disable=SC2086
  sk_copy "$(img_ref "$img")" "docker://$H/$repo:$tag" --preserve-digests $args
done

step "untag, delete, add a referrer and a dangling blob"
OLD=$(digest_of "$WORK/img-old/multi")     # app:v1 was overwritten: untagged in app
TAGDEL=$(digest_of "$WORK/img-tagdel/multi")
GONE=$(digest_of "$WORK/img-gone/multi")
MULTI=$(digest_of "$IMG/multi")
[ "$(http_code -X DELETE "http://$H/v2/tagdel/manifests/t1")" = 202 ] || fail "DELETE tagdel:t1 (tag) was not accepted"
sk_delete "docker://$H/gone:x" || fail "skopeo delete gone:x failed"
read -r REF REF_CFG REF_LAYER < <(api referrer shared/one "$MULTI" "$(wc -c <"$(img_manifest_file "$IMG/multi")")" "$WORK") ||
  fail "pushing the referrer failed"
head -c 4096 /dev/urandom >"$WORK/dangling"
DANGLING=$(api blob shared/one "$WORK/dangling") || fail "uploading the dangling blob failed"
stop_server "$BERTH_PID"

# What each mode must free (blobs found nowhere else).
GONE_BLOBS=$(img_blobs "$WORK/img-gone/multi" | awk '{print $2}' | sort)
UNTAGGED_BLOBS=$( (img_blobs "$WORK/img-old/multi"; img_blobs "$WORK/img-tagdel/multi") | awk '{print $2}' | sort)

blob_set "$ROOT" >"$WORK/blobs.before"
for d in $GONE_BLOBS $UNTAGGED_BLOBS $DANGLING $REF $REF_LAYER; do
  grep -qx "$d" "$WORK/blobs.before" || fail "setup: blob $d is not in the store"
done
cp -a "$ROOT" "$WORK/root-default"
cp -a "$ROOT" "$WORK/root-untagged"
if [ "$HAVE_DIST" = 1 ]; then
  cp -a "$ROOT" "$WORK/dist-default"
  cp -a "$ROOT" "$WORK/dist-untagged"
fi

# ---- command line ----

step "usage and errors"
"$BERTH_BIN" garbage-collect --help >"$WORK/help.out" || fail "garbage-collect --help failed"
grep -q -- --delete-untagged "$WORK/help.out" || fail "--help does not mention --delete-untagged"
set +e
"$BERTH_BIN" garbage-collect >/dev/null 2>&1; rc1=$?
"$BERTH_BIN" garbage-collect --bogus "$ROOT" >/dev/null 2>&1; rc2=$?
"$BERTH_BIN" garbage-collect --root "$WORK/no-such-dir" >/dev/null 2>&1; rc3=$?
set -e
[ "$rc1" = 2 ] || fail "garbage-collect without arguments exited $rc1, want 2"
[ "$rc2" = 2 ] || fail "garbage-collect --bogus exited $rc2, want 2"
[ "$rc3" = 1 ] || fail "garbage-collect on a missing root exited $rc3, want 1"
[ ! -e "$WORK/no-such-dir" ] || fail "garbage-collect created the missing root"

# ---- dry runs ----

snapshot "$ROOT" >"$WORK/snap.before"
for mode in "" -m; do
  step "garbage-collect --dry-run $mode changes nothing"
  # shellcheck disable=SC2086
  "$BERTH_BIN" garbage-collect --dry-run $mode --root "$ROOT" >"$WORK/dry$mode.out" 2>"$WORK/dry$mode.err" ||
    { cat "$WORK/dry$mode.err" >&2; fail "garbage-collect --dry-run $mode failed"; }
  snapshot "$ROOT" >"$WORK/snap.after"
  cmp -s "$WORK/snap.before" "$WORK/snap.after" || {
    diff "$WORK/snap.before" "$WORK/snap.after" | head -20 >&2
    fail "garbage-collect --dry-run $mode changed the store"
  }
  grep -q '^[0-9]* blobs marked, [0-9]* blobs eligible for deletion, would free [0-9]* bytes$' "$WORK/dry$mode.out" ||
    fail "dry run $mode: no summary line (stdout: $(tail -n 3 "$WORK/dry$mode.out"))"
  sed -n 's/^blob eligible for deletion: //p' "$WORK/dry$mode.out" | sort >"$WORK/eligible$mode"
done

step "berth fsck's orphans are exactly the blobs garbage-collect deletes"
FSCK_RC=0
"$BERTH_BIN" fsck "$ROOT" >"$WORK/fsck.out" 2>"$WORK/fsck.err" || FSCK_RC=$?
[ "$FSCK_RC" = 1 ] || { cat "$WORK/fsck.out" >&2; fail "fsck of the store with garbage exited $FSCK_RC, want 1"; }
if grep -v '^fsck:' "$WORK/fsck.out" | grep -v '^orphan-blob '; then fail "fsck found more than orphans"; fi
sed -n 's#^orphan-blob .*/blobs/\([a-z0-9]*\)/../\([0-9a-f]*\)/data: .*#\1:\2#p' "$WORK/fsck.out" | sort >"$WORK/orphans"
cmp -s "$WORK/orphans" "$WORK/eligible" || {
  diff "$WORK/orphans" "$WORK/eligible" | head -20 >&2
  fail "fsck's orphans (<) and garbage-collect's eligible blobs (>) differ"
}

# check_common ROOT: what every mode guarantees.
check_common() {
  local root=$1 d
  blob_set "$root" >"$WORK/blobs.now"
  for d in $GONE_BLOBS $DANGLING; do
    ! grep -qx "$d" "$WORK/blobs.now" || fail "blob $d should have been freed"
  done
  [ ! -e "$root/$V2/repositories/shared/one/_layers/sha256/${DANGLING#sha256:}" ] ||
    fail "the dangling blob's layer link is still there"
  # No layer link may be left naming a deleted blob.
  local link
  while IFS= read -r link; do
    d=$(cat "$link")
    grep -qx "$d" "$WORK/blobs.now" || fail "layer link $link names deleted blob $d"
  done < <(find "$root/$V2/repositories" -path '*/_layers/*/link' -type f)
}

# serve_check ROOT MODE: a berth on ROOT serves every tagged image byte-identical.
serve_check() {
  local root=$1 mode=$2
  start_berth "$root"
  H=$BERTH_HOST
  pull_ok "$IMG/multi" shared/one:v1
  pull_ok "$IMG/multi" shared/two:v1
  pull_ok "$IMG/docker" shared/two:d
  pull_ok "$IMG/multiarch" arch:latest --all
  pull_ok "$IMG/dockerlist" app:v1 --all
  # The referrer survives in both modes, and is listed for its subject.
  [ "$(http_code "http://$H/v2/shared/one/manifests/$REF")" = 200 ] || fail "$mode: the referrer $REF is gone"
  curl -sf "http://$H/v2/shared/one/referrers/$MULTI" | grep -q "$REF" || fail "$mode: referrers of $MULTI no longer list $REF"
  [ "$(http_code "http://$H/v2/shared/one/blobs/$REF_LAYER")" = 200 ] || fail "$mode: the referrer's layer is gone"
  [ "$(http_code "http://$H/v2/gone/manifests/$GONE")" = 404 ] || fail "$mode: gone@$GONE still answers"
  [ "$(http_code "http://$H/v2/shared/one/blobs/$DANGLING")" = 404 ] || fail "$mode: the dangling blob still answers"
  if [ "$mode" = default ]; then
    pull_ok "$WORK/img-old/multi" "app@$OLD"
    pull_ok "$WORK/img-tagdel/multi" "tagdel@$TAGDEL"
  else
    [ "$(http_code "http://$H/v2/app/manifests/$OLD")" = 404 ] || fail "$mode: app@$OLD (untagged) still answers"
    [ "$(http_code "http://$H/v2/tagdel/manifests/$TAGDEL")" = 404 ] || fail "$mode: tagdel@$TAGDEL (untagged) still answers"
  fi
  stop_server "$BERTH_PID"
}

# dist_gc ROOT [-m]: Distribution's garbage-collect on ROOT.
dist_gc() {
  local root=$1
  shift
  cat >"$WORK/dist-gc.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $root
EOF
  # docker-registry reads REGISTRY_* variables as configuration: none may leak in.
  # shellcheck disable=SC2046
  env $(env | sed -n 's/^\(REGISTRY_[A-Za-z0-9_]*\)=.*/-u \1/p') \
    docker-registry garbage-collect "$@" "$WORK/dist-gc.yml" >"$WORK/dist-gc.out" 2>&1 ||
    { tail -n 20 "$WORK/dist-gc.out" >&2; fail "docker-registry garbage-collect $* failed"; }
}

# ---- default mode ----

step "garbage-collect CONFIG.yml (default mode)"
R="$WORK/root-default"
cat >"$WORK/berth-gc.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $R   # the copy
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
EOF
"$BERTH_BIN" garbage-collect "$WORK/berth-gc.yml" >"$WORK/gc.out" 2>"$WORK/gc.err" ||
  { cat "$WORK/gc.err" >&2; fail "garbage-collect (default mode) failed"; }
grep -q '^[0-9]* blobs marked, [0-9]* blobs eligible for deletion, freed [0-9]* bytes$' "$WORK/gc.out" ||
  fail "no summary line on stdout"
grep -q '^shared/one: marking manifest sha256:' "$WORK/gc.out" || fail "no 'marking manifest' lines on stdout"
blob_set "$R" >"$WORK/blobs.default"
comm -23 "$WORK/blobs.before" "$WORK/blobs.default" >"$WORK/freed.default"
cmp -s "$WORK/freed.default" "$WORK/eligible" ||
  fail "the dry run announced $(wc -l <"$WORK/eligible") blobs, the real run freed $(wc -l <"$WORK/freed.default"): $(diff "$WORK/eligible" "$WORK/freed.default" | head -5)"
check_common "$R"
for d in $UNTAGGED_BLOBS $REF $REF_CFG $REF_LAYER; do
  grep -qx "$d" "$WORK/blobs.default" || fail "default mode freed $d (an untagged manifest's or the referrer's blob)"
done
log "default mode freed $(wc -l <"$WORK/freed.default") blobs"

step "garbage-collect again: nothing left to free"
"$BERTH_BIN" garbage-collect -q --root "$R" >"$WORK/gc2.out" 2>"$WORK/gc2.err" || fail "second garbage-collect failed"
grep -q ' 0 blobs eligible for deletion, freed 0 bytes$' "$WORK/gc2.out" || fail "second run still found garbage: $(cat "$WORK/gc2.out")"
[ ! -s "$WORK/gc2.err" ] || fail "--quiet still printed on stderr: $(head -3 "$WORK/gc2.err")"
[ "$(wc -l <"$WORK/gc2.out")" -le 3 ] || fail "--quiet printed more than the summary"
grep -Eq '^took mark [0-9.]+s, manifests [0-9.]+s, scan [0-9.]+s, blobs [0-9.]+s, layer links [0-9.]+s$' "$WORK/gc2.out" ||
  fail "the summary has no phase times: $(cat "$WORK/gc2.out")"

step "berth serves the collected store (default mode)"
serve_check "$R" default

if [ "$HAVE_DIST" = 1 ]; then
  step "docker-registry garbage-collect keeps the same blobs (default mode)"
  dist_gc "$WORK/dist-default"
  blob_set "$WORK/dist-default" >"$WORK/blobs.dist-default"
  cmp -s "$WORK/blobs.default" "$WORK/blobs.dist-default" || {
    diff "$WORK/blobs.default" "$WORK/blobs.dist-default" | head -20 >&2
    fail "berth and docker-registry keep different blobs (< berth, > docker-registry)"
  }

  step "berth fsck finds the store collected by docker-registry clean"
  # Distribution deletes the blobs but leaves their _layers links: not problems.
  left=$(find "$WORK/dist-default/$V2/repositories" -path '*/_layers/*/link' -type f | while IFS= read -r link; do
    d=$(cat "$link"); grep -qx "$d" "$WORK/blobs.dist-default" || echo "$link"; done | wc -l)
  [ "$left" -gt 0 ] || fail "setup: docker-registry garbage-collect left no layer link behind"
  FSCK_RC=0
  "$BERTH_BIN" fsck "$WORK/dist-default" >"$WORK/fsck.out" 2>"$WORK/fsck.err" || FSCK_RC=$?
  [ "$FSCK_RC" = 0 ] || { cat "$WORK/fsck.out" >&2; fail "fsck after docker-registry garbage-collect exited $FSCK_RC"; }
  grep -q "^fsck: $left layer links\{0,1\} to blobs garbage collection deleted" "$WORK/fsck.out" ||
    fail "fsck does not count the $left layer links left behind: $(cat "$WORK/fsck.out")"
  "$BERTH_BIN" fsck --repair -q "$WORK/dist-default" >/dev/null || fail "fsck --repair after docker-registry garbage-collect"
  "$BERTH_BIN" garbage-collect -q --root "$WORK/dist-default" >/dev/null || fail "berth garbage-collect after docker-registry's"
  check_common "$WORK/dist-default"
else
  log "docker-registry not installed: comparison with Distribution skipped"
fi

# ---- --delete-untagged ----

step "garbage-collect --delete-untagged --root"
R="$WORK/root-untagged"
"$BERTH_BIN" garbage-collect --delete-untagged --root "$R" >"$WORK/gcm.out" 2>"$WORK/gcm.err" ||
  { cat "$WORK/gcm.err" >&2; fail "garbage-collect --delete-untagged failed"; }
blob_set "$R" >"$WORK/blobs.untagged"
comm -23 "$WORK/blobs.before" "$WORK/blobs.untagged" >"$WORK/freed.untagged"
cmp -s "$WORK/freed.untagged" "$WORK/eligible-m" || fail "the dry run -m announced other blobs than the real run freed"
check_common "$R"
for d in $UNTAGGED_BLOBS; do
  ! grep -qx "$d" "$WORK/blobs.untagged" || fail "--delete-untagged kept $d (an untagged manifest's blob)"
done
for d in $REF $REF_CFG $REF_LAYER $(child_manifests "$IMG/multiarch") $(blob_kids "$IMG/multiarch") \
  $(child_manifests "$IMG/dockerlist") $(blob_kids "$IMG/dockerlist"); do
  grep -qx "$d" "$WORK/blobs.untagged" || fail "--delete-untagged freed $d (referrer, or part of a tagged index)"
done
[ ! -e "$R/$V2/repositories/app/_manifests/revisions/sha256/${OLD#sha256:}" ] ||
  fail "--delete-untagged left app's revision of the overwritten manifest $OLD"
[ ! -e "$R/$V2/repositories/tagdel/_manifests/revisions/sha256/${TAGDEL#sha256:}" ] ||
  fail "--delete-untagged left the revision of the untagged $TAGDEL"
[ ! -e "$R/$V2/repositories/app/_manifests/tags/v1/index/sha256/${OLD#sha256:}" ] ||
  fail "--delete-untagged left app's tag index entry for the overwritten manifest"
[ -e "$R/$V2/repositories/app/_manifests/tags/v1/index/sha256/$(digest_of "$IMG/dockerlist" | cut -d: -f2)/link" ] ||
  fail "--delete-untagged removed the tag index entry of the current app:v1"
log "--delete-untagged freed $(wc -l <"$WORK/freed.untagged") blobs"

step "berth serves the collected store (--delete-untagged)"
serve_check "$R" delete-untagged

if [ "$HAVE_DIST" = 1 ]; then
  step "docker-registry garbage-collect --delete-untagged: same blobs, but for 2.8's known losses"
  dist_gc "$WORK/dist-untagged" --delete-untagged
  blob_set "$WORK/dist-untagged" >"$WORK/blobs.dist-untagged"
  # Distribution 2.8 deletes untagged children of indexes (then their configs and layers: fixed
  # in 3.0) and untagged referrers; berth keeps both. Everything else must agree.
  { cat "$WORK/blobs.dist-untagged"
    blob_kids "$IMG/multiarch"; blob_kids "$IMG/dockerlist"
    printf '%s\n' "$REF" "$REF_CFG" "$REF_LAYER"; } | sort -u >"$WORK/blobs.expected-untagged"
  cmp -s "$WORK/blobs.untagged" "$WORK/blobs.expected-untagged" || {
    diff "$WORK/blobs.untagged" "$WORK/blobs.expected-untagged" | head -20 >&2
    fail "berth -m keeps other blobs than docker-registry -m plus index children and referrer (< berth, > expected)"
  }
  extra=$(comm -23 "$WORK/blobs.untagged" "$WORK/blobs.dist-untagged" | wc -l)
  log "berth -m kept $extra blobs docker-registry 2.8 -m deleted (index children's configs/layers, referrer)"
fi
