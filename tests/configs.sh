#!/bin/sh
# Every configuration shipped in configs/ checks (`flava COMMAND -c CFG
# --check`: its sections, keys and task are known), and so does every run of
# the quickstart's sweep with its settings (`flava sweep --dry-run`), so that
# a typo there fails here rather than minutes into the quickstart.
set -eu
flava="${FLAVA_BUILDDIR:-.}/flava"
src=$(cd "${FLAVA_SRCDIR:-..}" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

n=0
for cfg in "$src"/configs/*.cfg; do
  case $cfg in *-sweep.cfg) continue ;; esac
  ok=
  for command in pretrain finetune eval; do
    if "$flava" "$command" -c "$cfg" --check > /dev/null 2> "$dir/err.$command"; then
      ok=$command
      break
    fi
  done
  [ -n "$ok" ] || { cat "$dir"/err.*; fail "$cfg does not check"; }
  n=$((n + 1))
done
[ $n -ge 10 ] || fail "only $n configurations found in $src/configs"

"$flava" sweep -c "$src/configs/quickstart-sweep.cfg" -s sweep.out="$dir/out" --dry-run \
  > "$dir/runs" 2> "$dir/err" || { cat "$dir/err"; fail "the quickstart's sweep does not check"; }
[ "$(grep -c pending "$dir/runs")" -eq 5 ] || fail "quickstart sweep runs: $(cat "$dir/runs")"

# a typo in a run's settings is caught by the dry run
"$flava" sweep -c "$src/configs/quickstart-sweep.cfg" -s sweep.out="$dir/out" --dry-run \
  -s "run.spam.set=glue.max_txt_len=512" > /dev/null 2> "$dir/err" && fail "a typo passed the dry run"
grep -qF "nearest known key: glue.max_text_len" "$dir/err" &&
  grep -qF "1 run of the sweep does not check (spam): no run was started" "$dir/err" ||
  fail "typo: $(cat "$dir/err")"
echo "configs.sh: ok"
