#!/usr/bin/env bash
# End-to-end: `berth fsck [--repair] ROOT` on stores written by real clients.
#
# Checks:
#   - a store filled by skopeo through berth (OCI and Docker images, a multi-arch index, a
#     Docker manifest list) is clean: exit 0, "no problems found"; and so is one written by
#     Debian's docker-registry (Distribution 2.8), when installed;
#   - a plain check changes nothing (the whole tree is compared before and after);
#   - damage is found, one line per problem with the right kind, exit 1: a layer whose bytes
#     were altered (corrupt-blob), a blob deleted by hand (dangling-link, missing-reference),
#     a link holding garbage (bad-link), a temp file left by an interrupted write (temp-file),
#     an upload directory without startedat (stale-upload), a blob nothing links (orphan-blob);
#   - --repair moves the corrupt blob to docker/registry/v2/lost+found/ with its bytes intact,
#     removes the dangling links, the temp file and the stale upload, rewrites the bad link,
#     and leaves the orphan alone; a second check then reports only what repair may not fix
#     (the manifests missing their blobs, and the orphan);
#   - pushing the images again through berth fills the holes: fsck reports only the orphan,
#     and every image pulls back byte-identical;
#   - usage errors exit 2, a missing root exits 1.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_cmd skopeo
need_cmd curl
need_berth

V2=docker/registry/v2

step "generate test images"
IMG="$WORK/img"
make_images "$IMG" --only multi,multiarch,docker,dockerlist

# fsck_run ROOT [args...]: runs berth fsck, output in $WORK/fsck.out, status in FSCK_RC.
fsck_run() {
  local root=$1
  shift
  FSCK_RC=0
  "$BERTH_BIN" fsck "$@" "$root" >"$WORK/fsck.out" 2>"$WORK/fsck.err" || FSCK_RC=$?
  log "berth fsck $* -> $FSCK_RC: $(tail -n 1 "$WORK/fsck.out")"
}
# kinds: the sorted problem kinds of the last run, one per line ("kind count").
kinds() { grep -v '^fsck:' "$WORK/fsck.out" | cut -d' ' -f1 | sort | uniq -c | awk '{print $2, $1}'; }
expect_kinds() {
  local want=$1 got
  got=$(kinds | tr '\n' ' ' | sed 's/ $//')
  [ "$got" = "$want" ] || {
    cat "$WORK/fsck.out" >&2
    fail "fsck problems: got '$got', want '$want'"
  }
}
snapshot() { (cd "$1" && find . -printf '%p %y %s %T@\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

PUSHES=(
  "$IMG/multi       one/multi    v1"
  "$IMG/docker      one/docker   v1"
  "$IMG/multiarch   two/arch     latest  --all"
  "$IMG/dockerlist  two/list     v1      --all"
)
push_all() {
  local h=$1 p img repo tag args
  for p in "${PUSHES[@]}"; do
    read -r img repo tag args <<<"$p"
    # shellcheck disable=SC2086
    sk_copy "$(img_ref "$img")" "docker://$h/$repo:$tag" --preserve-digests $args
  done
}
pull_all() {
  local h=$1 p img repo tag args n=0
  for p in "${PUSHES[@]}"; do
    read -r img repo tag args <<<"$p"
    n=$((n + 1))
    rm -rf "$WORK/pull/$n"
    mkdir -p "$WORK/pull/$n"
    # shellcheck disable=SC2086
    sk_copy "docker://$h/$repo:$tag" "dir:$WORK/pull/$n/dir" --preserve-digests $args
    assert_same_image "$img" "$WORK/pull/$n/dir"
  done
}

# ---------------------------------------------------------------------------------------------
step "usage"
rc1=0 rc2=0 rc3=0 rc4=0 rc5=0
"$BERTH_BIN" fsck >/dev/null 2>&1 || rc1=$?
"$BERTH_BIN" fsck --bogus "$WORK" >/dev/null 2>&1 || rc2=$?
"$BERTH_BIN" fsck "$WORK" "$WORK" >/dev/null 2>&1 || rc3=$?
"$BERTH_BIN" fsck "$WORK/no/such/dir" >/dev/null 2>&1 || rc4=$?
"$BERTH_BIN" fsck --help >/dev/null 2>&1 || rc5=$?
[ "$rc1 $rc2 $rc3 $rc4 $rc5" = "2 2 2 1 0" ] || fail "exit statuses $rc1 $rc2 $rc3 $rc4 $rc5, want 2 2 2 1 0"
[ ! -e "$WORK/no" ] || fail "fsck created the missing root"

step "a store written by berth is clean"
ROOT="$WORK/root"
start_berth "$ROOT" --delete
push_all "$BERTH_HOST"
stop_server "$BERTH_PID"
snapshot "$ROOT" >"$WORK/before"
fsck_run "$ROOT"
[ "$FSCK_RC" -eq 0 ] || { cat "$WORK/fsck.out" "$WORK/fsck.err" >&2; fail "fsck of a fresh store: exit $FSCK_RC"; }
grep -q '^fsck: no problems found$' "$WORK/fsck.out" || fail "no 'no problems found' summary"
grep -Eq '^fsck: checked [1-9][0-9]* blobs .* 4 repositories' "$WORK/fsck.out" || fail "summary: $(head -1 "$WORK/fsck.out")"
snapshot "$ROOT" >"$WORK/after"
cmp -s "$WORK/before" "$WORK/after" || fail "a plain fsck changed the store: $(diff "$WORK/before" "$WORK/after" | head)"

if command -v docker-registry >/dev/null 2>&1; then
  step "a store written by Distribution (docker-registry) is clean"
  DROOT="$WORK/droot"
  start_distribution "$DROOT"
  push_all "$DIST_HOST"
  stop_server "$DIST_PID"
  fsck_run "$DROOT"
  [ "$FSCK_RC" -eq 0 ] || { cat "$WORK/fsck.out" >&2; fail "fsck of a Distribution store: exit $FSCK_RC"; }
else
  log "docker-registry not installed: Distribution store not checked"
fi

# ---------------------------------------------------------------------------------------------
step "damage the store"
blobfile() { local h=${1#sha256:}; printf '%s/%s/blobs/sha256/%s/%s/data' "$ROOT" "$V2" "${h:0:2}" "$h"; }
R="$ROOT/$V2/repositories"
# a layer of the multi image, altered in place (same size)
CORRUPT=$(img_blobs "$IMG/multi" | awk '$1 == "L"' | sed -n 2p | cut -d' ' -f2)
printf 'X' | dd of="$(blobfile "$CORRUPT")" bs=1 seek=10 conv=notrunc status=none
cp "$(blobfile "$CORRUPT")" "$WORK/corrupt.bytes"
# a layer of the docker image, deleted
GONE=$(img_blobs "$IMG/docker" | awk '$1 == "L"' | sed -n 2p | cut -d' ' -f2)
rm -r "$(dirname "$(blobfile "$GONE")")"
# the config link of the arch index's first child holding garbage
BADLINK=$(find "$R/two/arch/_layers/sha256" -name link | head -n 1)
printf 'sha256:garbage' >"$BADLINK"
# leftovers of interrupted writes
printf 'sha256:' >"$R/one/multi/_manifests/tags/v1/current/.tmp~Xy12Ab"
mkdir -p "$R/one/multi/_uploads/6b0f6d6e-45a4-4bbd-9a77-5f3c0e6fbb0b"
printf 'partial' >"$R/one/multi/_uploads/6b0f6d6e-45a4-4bbd-9a77-5f3c0e6fbb0b/data"
# a blob no repository links
ORPHAN_HEX=$(printf 'nobody links me' | sha256sum | cut -d' ' -f1)
mkdir -p "$ROOT/$V2/blobs/sha256/${ORPHAN_HEX:0:2}/$ORPHAN_HEX"
printf 'nobody links me' >"$ROOT/$V2/blobs/sha256/${ORPHAN_HEX:0:2}/$ORPHAN_HEX/data"

step "fsck finds every problem"
snapshot "$ROOT" >"$WORK/before"
fsck_run "$ROOT"
[ "$FSCK_RC" -eq 1 ] || fail "fsck of a damaged store: exit $FSCK_RC, want 1"
expect_kinds "bad-link 1 corrupt-blob 1 dangling-link 1 missing-reference 1 orphan-blob 1 stale-upload 1 temp-file 1"
grep -q "^corrupt-blob .*${CORRUPT#sha256:}/data: " "$WORK/fsck.out" || fail "corrupt blob not named"
grep -q "^dangling-link .*/one/docker/_layers/sha256/${GONE#sha256:}/link: " "$WORK/fsck.out" || fail "dangling link not named"
grep -q "^orphan-blob .*$ORPHAN_HEX" "$WORK/fsck.out" || fail "orphan not named"
snapshot "$ROOT" >"$WORK/after"
cmp -s "$WORK/before" "$WORK/after" || fail "a plain fsck changed the store"

step "fsck -q prints only the summary"
fsck_run "$ROOT" -q
[ "$FSCK_RC" -eq 1 ] || fail "fsck -q of a damaged store: exit $FSCK_RC, want 1"
if grep -v '^fsck: ' "$WORK/fsck.out"; then fail "fsck -q printed more than the summary"; fi
grep -q '^fsck: 7 problems: ' "$WORK/fsck.out" || fail "fsck -q: no problem count: $(cat "$WORK/fsck.out")"
[ ! -s "$WORK/fsck.err" ] || fail "fsck -q wrote to stderr: $(head -3 "$WORK/fsck.err")"

step "fsck --repair"
fsck_run "$ROOT" --repair
[ "$FSCK_RC" -eq 1 ] || fail "fsck --repair: exit $FSCK_RC, want 1"
grep -q '^fsck: .* repaired' "$WORK/fsck.out" || fail "no repair summary"
LF="$ROOT/$V2/lost+found/sha256/${CORRUPT#sha256:}"
[ -f "$LF" ] || fail "the corrupt blob is not in lost+found ($LF)"
cmp -s "$LF" "$WORK/corrupt.bytes" || fail "lost+found does not hold the corrupt bytes"
[ ! -e "$(blobfile "$CORRUPT")" ] || fail "the corrupt blob is still served from blobs/"
[ ! -e "$R/one/multi/_manifests/tags/v1/current/.tmp~Xy12Ab" ] || fail "temp file not removed"
[ ! -e "$R/one/multi/_uploads/6b0f6d6e-45a4-4bbd-9a77-5f3c0e6fbb0b" ] || fail "stale upload not removed"
[ "$(cat "$BADLINK")" = "sha256:$(basename "$(dirname "$BADLINK")")" ] || fail "bad link not rewritten: $(cat "$BADLINK")"
[ -f "$ROOT/$V2/blobs/sha256/${ORPHAN_HEX:0:2}/$ORPHAN_HEX/data" ] || fail "repair removed an orphan blob"
if grep -q '^orphan-blob .*\[repaired' "$WORK/fsck.out"; then fail "repair claims to have touched an orphan"; fi

step "after repair only the unrepairable is left"
fsck_run "$ROOT"
expect_kinds "missing-reference 2 orphan-blob 1"

step "pushing again fills the holes"
start_berth "$ROOT" --delete
push_all "$BERTH_HOST"
pull_all "$BERTH_HOST"
stop_server "$BERTH_PID"
fsck_run "$ROOT"
expect_kinds "orphan-blob 1"

step "progress lines show the total"
PROOT="$WORK/many"
python3 - "$PROOT/$V2/blobs/sha256" <<'PY'
import hashlib, os, sys
for i in range(1001):
    data = b"blob %d" % i
    h = hashlib.sha256(data).hexdigest()
    d = os.path.join(sys.argv[1], h[:2], h)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "data"), "wb") as f:
        f.write(data)
PY
fsck_run "$PROOT"
grep -q '^fsck: 1000 of 1001 blobs hashed' "$WORK/fsck.err" || fail "no progress line with the total: $(head -3 "$WORK/fsck.err")"
fsck_run "$PROOT" -q
[ ! -s "$WORK/fsck.err" ] || fail "fsck -q printed progress"

log "PASS"
