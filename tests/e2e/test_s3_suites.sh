#!/usr/bin/env bash
# The black-box API suite (tests/api) and the skopeo end-to-end suite (test_skopeo.sh) against
# berth on S3: one RADOS Gateway on loopback (tests/fixtures/s3/) for the whole run, each
# started server below a rootdirectory of its own in one bucket (berthtest.py's
# BERTH_STORAGE=s3, test_skopeo.sh's E2E_STORAGE=s3), with 5 MiB parts.
#
# The modules run are those whose requests reach storage; the others would only test HTTP
# handling or the configuration again (or start filesystem servers of their own: test_crash,
# test_validation, test_policies, test_repo_delete). Tests that read or write the storage
# directory behind the server's back are skipped by name, each with its reason (SKIPS below;
# test_instances skips its own: two instances on one bucket and one Redis there).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
need_cmd curl
need_cmd skopeo

MODULES=(test_base test_blobs test_uploads test_s3_uploads test_manifests test_persistence
  test_errors test_tags_catalog test_referrers test_distribution_answers test_answers
  test_concurrency test_instances test_s3_fsck test_gc_instances test_s3_catalog)

SKIPS="
test_tags_catalog.TagListFreshnessTest.test_incomplete_tag_listed_once_complete writes tag files into the filesystem root as another process would
test_tags_catalog.TagListFreshnessTest.test_tag_moved_in_place_by_another_process writes tag files into the filesystem root as another process would
test_tags_catalog.TagListFreshnessTest.test_tags_written_by_another_process writes tag files into the filesystem root as another process would
test_answers.Schema1Test.test_stored_schema1_is_served_as_schema1 plants a schema1 manifest in the filesystem root
"

step "start radosgw"
start_rgw api
export BERTH_STORAGE=s3 BERTH_SKIP_TESTS="$SKIPS"

failed=()
for m in "${MODULES[@]}"; do
  step "$m on s3"
  if ! "$PY" "$BERTH_SRC/tests/api/$m.py" >"$WORK/$m.out" 2>&1; then
    grep -E '^(FAIL|ERROR):|SERVER PROBLEM' "$WORK/$m.out" >&2 || true
    tail -n 40 "$WORK/$m.out" >&2
    failed+=("$m")
  fi
  log "$(tail -n 1 "$WORK/$m.out")"
done

step "test_skopeo.sh on s3"
# A 16 MiB big layer (four parts) instead of 64: the part logic is the same, the run shorter.
if ! E2E_STORAGE=s3 E2E_BIG_SIZE=$((16 << 20)) E2E_NAME=test_skopeo_s3 bash "$BERTH_SRC/tests/e2e/test_skopeo.sh" \
  >"$WORK/skopeo.out" 2>&1; then
  tail -n 40 "$WORK/skopeo.out" >&2
  failed+=(test_skopeo.sh)
fi
log "$(tail -n 1 "$WORK/skopeo.out")"
[ ${#failed[@]} -eq 0 ] || fail "on s3: ${failed[*]}"
