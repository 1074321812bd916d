#!/bin/sh
# flava report: curves and summary from a metrics file; error paths.
set -eu
flava="${FLAVA_BUILDDIR:-.}/flava"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$dir/metrics.jsonl" <<'JSON'
{"step": 0, "loss": 4.0, "lr": 0.0, "split": "train"}
{"step": 10, "loss": 3.0, "lr": 0.001}
{"step": 20, "loss": 2.5, "lr": 0.001, "eval.accuracy": 0.5}
JSON
"$flava" report "$dir" > /dev/null || fail "report on a good run failed"
grep -q '<polyline' "$dir/report.svg" || fail "no curve in the SVG"
[ "$(grep -c '<polyline' "$dir/report.svg")" -eq 3 ] || fail "expected 3 panels (loss, lr, eval.accuracy)"
grep -q '| loss | 3 | 4 | 2.5 | 2.5 | 4 |' "$dir/report.md" || fail "summary row for loss is wrong"
grep -q '| eval.accuracy | 1 | 0.5 | 0.5 | 0.5 | 0.5 |' "$dir/report.md" || fail "summary row for eval.accuracy"

# A malformed line names the file and line.
printf '{"step": 1, "loss": 1}\nnot json\n' > "$dir/metrics.jsonl"
if "$flava" report "$dir" 2> "$dir/err"; then fail "malformed metrics accepted"; fi
grep -q 'metrics.jsonl:2' "$dir/err" || fail "error does not name metrics.jsonl:2: $(cat "$dir/err")"

# A folder without metrics.
if "$flava" report "$dir/nowhere" 2> "$dir/err"; then fail "missing run dir accepted"; fi
grep -q 'nowhere/metrics.jsonl' "$dir/err" || fail "error does not name the missing file"
echo "report.sh: ok"
