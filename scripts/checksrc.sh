#!/usr/bin/env bash
# Source checks that `make test` runs (as curl's checksrc): exit 1 with one line per finding.
#
#   scripts/checksrc.sh [SRC_DIR]     check SRC_DIR/src (default: this tree)
#   scripts/checksrc.sh --self-test   prove that each check catches what it should
#
# 1. Banned functions: no bounds (strcpy, strcat, sprintf, vsprintf, gets, stpcpy), surprising
#    truncation or termination (strncpy, strncat), hidden state (strtok), no error report
#    (atoi, atol, atoll), races (tmpnam, mktemp), unbounded stack (alloca). Use snprintf,
#    memcpy with a checked length, strtoul & co., mkstemp / mkdtemp.
# 2. Allocation goes through the project's allocator (src/core/util.h): no malloc, calloc,
#    realloc, strdup, strndup, asprintf or vasprintf outside src/core/util.c.
# 3. Layers: a folder of src/ includes only the folders it may call (docs/ARCHITECTURE.md).
#    config depends on core only, so the layers that read their own settings may include it.
# Comments are not checked; a line may opt out with "/* checksrc: allow */" and a reason.
set -euo pipefail

declare -A ALLOWED=(
  [core]=""
  [storage]="core config"
  [registry]="core storage"
  [config]="core"
  [auth]="core config"
  [proxy]="core registry storage"
  [api]="core registry auth http notify proxy"
  [notify]="core config"
  [http]="core config"
  [cli]="core config registry storage http"
  [ui]="core config auth registry http api"
)

BANNED='strcpy|strcat|strncpy|strncat|stpcpy|sprintf|vsprintf|gets|strtok|atoi|atol|atoll|tmpnam|mktemp|alloca'
ALLOC='malloc|calloc|realloc|strdup|strndup|asprintf|vasprintf'

# Code lines of a C file as "LINE:TEXT", without comments and string literals (lines that opt
# out come empty).
code_lines() {
  awk '
    {
      line = $0; out = ""
      if (index(line, "checksrc: allow")) line = ""
      while (length(line) > 0) {
        if (in_comment) {
          i = index(line, "*/")
          if (i == 0) { line = ""; break }
          line = substr(line, i + 2); in_comment = 0; continue
        }
        if (match(line, /\/\*|\/\/|"([^"\\]|\\.)*"/) == 0) { out = out line; break }
        out = out substr(line, 1, RSTART - 1)
        tok = substr(line, RSTART, RLENGTH)
        line = substr(line, RSTART + RLENGTH)
        if (tok == "/*") in_comment = 1
        else if (tok == "//") line = ""
        else out = out "\"\""
      }
      print NR ":" out
    }' "$1"
}

# check_file FILE REL: prints findings for one file.
check_file() {
  local file=$1 rel=$2 layer
  { code_lines "$file" | grep -E "($BANNED|$ALLOC)" || true; } | while IFS= read -r entry; do
    local n=${entry%%:*} code=${entry#*:}
    if [[ $code =~ (^|[^A-Za-z0-9_])($BANNED)[[:space:]]*\( ]]; then
      echo "$rel:$n: banned function ${BASH_REMATCH[2]}()"
    fi
    if [[ $rel != src/core/util.c && $code =~ (^|[^A-Za-z0-9_.>])($ALLOC)[[:space:]]*\( ]]; then
      echo "$rel:$n: ${BASH_REMATCH[2]}() outside the project's allocator (use berth_${BASH_REMATCH[2]/vasprintf/asprintf} from core/util.h)"
    fi
  done
  layer=${rel#src/}
  layer=${layer%%/*}
  [[ $layer == *.c || $layer == *.h ]] && return 0 # src/main.c may include anything
  [ -n "${ALLOWED[$layer]+set}" ] || { echo "$rel: folder src/$layer has no layer rule in scripts/checksrc.sh"; return 0; }
  { grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z0-9_]*/' "$file" || true; } | while IFS= read -r inc; do
    local n=${inc%%:*} target
    target=$(sed 's/.*"\([a-z0-9_]*\)\/.*/\1/' <<<"$inc")
    [ "$target" = "$layer" ] && continue
    [[ " ${ALLOWED[$layer]} " == *" $target "* ]] ||
      echo "$rel:$n: $layer may not include $target/ (layers: docs/ARCHITECTURE.md)"
  done
}

check_tree() {
  local root=$1 file out=""
  while IFS= read -r file; do
    out+=$(check_file "$file" "${file#"$root"/}")
    out+=$'\n'
  done < <(find "$root/src" -name '*.[ch]' | sort)
  out=$(grep -v '^$' <<<"$out" || true)
  if [ -n "$out" ]; then
    echo "$out"
    echo "checksrc: $(wc -l <<<"$out") finding(s)" >&2
    return 1
  fi
  echo "checksrc: $(find "$root/src" -name '*.[ch]' | wc -l) files clean"
}

self_test() {
  local t
  t=$(mktemp -d)
  trap 'rm -rf "$t"' RETURN
  mkdir -p "$t/src/core" "$t/src/registry" "$t/src/storage"
  cat >"$t/src/registry/bad.c" <<'EOF'
#include "core/util.h"
#include "api/api.h"
/* strcpy(a, b) in a comment is fine, and so is "sprintf(" in a string */
static void f(char *a, const char *b) { strcpy(a, b); }
static int g(const char *s) { return atoi(s); }
static char *h(const char *s) { return strdup(s); }
static void ok(char *a) { snprintf(a, 4, "%s", "x"); char *p = berth_strdup("y"); free(p); }
static void allowed(char *a) { strcat(a, "z"); /* checksrc: allow - a test of the opt-out */ }
EOF
  printf '#include "storage/driver.h"\nvoid *x(void) { return malloc(1); }\n' >"$t/src/core/util.c"
  local out
  out=$(check_tree "$t" 2>/dev/null) && { echo "self-test: a bad tree passed"; return 1; }
  local want=(
    "src/registry/bad.c:2: registry may not include api/"
    "src/registry/bad.c:4: banned function strcpy()"
    "src/registry/bad.c:5: banned function atoi()"
    "src/registry/bad.c:6: strdup() outside the project's allocator"
    "src/core/util.c:1: core may not include storage/"
  )
  local w
  for w in "${want[@]}"; do
    grep -qF "$w" <<<"$out" || { echo "self-test: missing finding: $w"; echo "$out"; return 1; }
  done
  [ "$(wc -l <<<"$out")" -eq "${#want[@]}" ] || { echo "self-test: unexpected findings:"; echo "$out"; return 1; }
  echo "checksrc: self-test passed"
}

if [ "${1:-}" = "--self-test" ]; then
  self_test
else
  check_tree "${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
fi
