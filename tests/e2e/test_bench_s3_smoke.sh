#!/usr/bin/env bash
# The S3 benchmark keeps working: `bench/s3.py --smoke` starts its own radosgw (tests/fixtures/s3/),
# runs every S3 workload once with tiny sizes against berth and Distribution (docker-registry) on
# one bucket, measures the plain-client ceiling and writes its report.
#
# Checks (no timing is asserted; bench/RESULTS-s3.md holds the numbers of a full run):
#   - the script exits 0 and writes the report, with the machine, results and targets sections;
#   - every workload has its row with a number for berth and for Distribution, and the two
#     ceiling rows have theirs;
#   - no run failed (the notes say so) and every target line has data.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
for cmd in docker-registry wrk ab skopeo radosgw ceph-mon redis-server; do
  command -v "$cmd" >/dev/null 2>&1 || skip "$cmd is missing (scripts/install-deps.sh and bench/run.sh install it)"
done
"$PY" -c 'import boto3' 2>/dev/null || skip "python3-boto3 is missing (scripts/install-deps.sh installs it)"

step "bench/s3.py --smoke"
if ! "$PY" "$BERTH_SRC/bench/s3.py" --smoke --berth "$BERTH_BIN" --workdir "$WORK/bench" \
    --out "$WORK/RESULTS-s3-smoke.md" >"$WORK/bench.log" 2>&1; then
  tail -n 40 "$WORK/bench.log" >&2
  fail "bench/s3.py --smoke failed"
fi
[ -s "$WORK/RESULTS-s3-smoke.md" ] || fail "no report written"

step "every workload has its row, with numbers for both registries"
"$PY" - "$WORK/RESULTS-s3-smoke.md" <<'PYEOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for section in ("## Machine", "## Results", "## Targets"):
    assert section in text, "no %r section" % section
rows = {}
for line in text[text.index("## Results"):text.index("## Targets")].splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) >= 5 and cells[2].split(" ")[0] in ("req/s", "MB/s", "s", "ms"):
        rows[cells[0]] = cells
want = ["manifest GET by tag", "manifest GET by digest", "blob HEAD", "blob GET", "monolithic upload",
        "chunked upload", "skopeo push, small image", "skopeo pull, small image", "skopeo push, big image",
        "skopeo pull, big image", "catalog page", "catalog, full paginated listing", "tag list",
        "3 concurrent monolithic uploads"]
problems = []
for w in want:
    hits = [r for name, r in rows.items() if name.startswith(w)]
    if not hits:
        problems.append("no row for %r" % w)
    for r in hits:
        for who, cell in (("berth", r[3]), ("Distribution", r[4])):
            if not re.match(r"^[0-9][0-9,.]*", cell) or "errors" in cell:
                problems.append("%s: %s has %r" % (r[0], who, cell))
for c in ("ceiling: boto3 multipart upload", "ceiling: boto3 GET"):
    if c not in rows or not re.match(r"^[0-9]", rows[c][3]) or rows[c][3].startswith("0.000"):
        problems.append("no number for %r" % c)
rest = text[text.index("## Targets"):]
for m in re.finditer(r"^.*(?: failed: | failed, |no data).*$", rest, re.M):
    problems.append(m.group(0)[:200])
if problems:
    sys.exit("\n".join(problems))
print("%d result rows, all with numbers" % len(rows))
PYEOF
