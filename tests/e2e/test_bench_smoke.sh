#!/usr/bin/env bash
# The benchmark keeps working: `bench/run.sh --smoke` runs every workload once, with tiny sizes
# and durations, against berth, Distribution (docker-registry) and nginx, and writes its report.
#
# Checks (no timing is asserted: CI machines are noisy, and bench/RESULTS.md holds the numbers
# of a full run):
#   - the script exits 0 and writes the report, with the machine, results and targets sections;
#   - every workload of the full benchmark has its row, and each row has a number for berth
#     and for Distribution (a run that failed shows "failed" there);
#   - the pull-through cache rows have their references (straight from the upstream, hosted),
#     and the burst of concurrent cold pulls made one upstream GET per blob through berth (a
#     count from the upstream's access log, not a timing);
#   - no run failed and the mixed push/pull rows saw no error (the report's notes say so).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init
need_berth
for cmd in docker-registry wrk ab skopeo nginx openssl; do
  command -v "$cmd" >/dev/null 2>&1 && continue
  [ "$(id -u)" -eq 0 ] || skip "$cmd is missing and only root may install it (bench/run.sh installs it as root)"
done

step "bench/run.sh --smoke"
if ! BERTH="$BERTH_BIN" "$BERTH_SRC/bench/run.sh" --smoke --workdir "$WORK/bench" \
    --out "$WORK/RESULTS-smoke.md" >"$WORK/bench.log" 2>&1; then
  tail -n 40 "$WORK/bench.log" >&2
  fail "bench/run.sh --smoke failed"
fi
[ -s "$WORK/RESULTS-smoke.md" ] || fail "no report written"

step "every workload has its row, with numbers for both registries"
"$PY" - "$WORK/RESULTS-smoke.md" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for section in ("## Machine", "## Results", "## Targets"):
    assert section in text, "no %r section" % section
rows = {}
for line in text[text.index("## Results"):].splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) >= 6 and cells[2].split(" ")[0] in ("req/s", "MB/s", "s", "ms", "MiB", "images/s", "GETs"):
        rows.setdefault(cells[0], cells)
want = ["GET /v2/", "manifest GET by tag", "manifest GET by digest", "manifest HEAD by tag",
        "manifest HEAD by digest", "blob HEAD", "blob GET", "blob ranged GET", "monolithic upload",
        "chunked upload", "skopeo push, small image", "skopeo pull, small image",
        "skopeo push, big image", "skopeo pull, big image", "mixed pulls/pushes", "catalog page",
        "catalog, full paginated listing", "tag list", "idle RSS, empty store", "peak RSS",
        "start-up to first 200", "pull-through cache, cold pull, small image",
        "pull-through cache, warm pull, small image", "pull-through cache, cold pull, big image",
        "pull-through cache, warm pull, big image", "pull-through cache, 4 concurrent cold pulls",
        "pull-through cache, upstream GETs of one blob"]
problems = []
for w in want:
    hits = [r for name, r in rows.items() if name.startswith(w)]
    if not hits:
        problems.append("no row for %r" % w)
    for r in hits:
        for who, cell in (("berth", r[3]), ("Distribution", r[4])):
            if not re.match(r"^[0-9][0-9,.]*", cell):
                problems.append("%s: %s has %r" % (r[0], who, cell))
# the pull-through rows' references: straight from the upstream, and hosted
refs = [line for line in text.splitlines() if re.match(r"^\| (small|big) \|", line)]
if len(refs) != 2 or any("–" in line for line in refs):
    problems.append("pull-through reference table: %r" % refs)
for target in ("burst of 4 cold pulls: each blob fetched from the upstream once",):
    if not re.search(r"^- met pull-through %s" % re.escape(target), text, re.M):
        problems.append("target not met or missing: %s" % target)
notes = text[text.index("## Targets"):]
for m in re.finditer(r"^.*(?: failed: |\d+ errors).*$", notes, re.M):
    problems.append("note: " + m.group(0)[:200])
if problems:
    sys.exit("\n".join(problems))
print("%d result rows, all with numbers" % len(rows))
EOF
