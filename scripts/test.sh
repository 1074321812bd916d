#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs `make check`,
# and ends with one line "N passed, N failed" (Check tests and shell tests).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
scripts/build.sh "$@" || exit 1
cd build
make -j"$(nproc)" check
status=$?
for trs in tests/*.trs; do
  log="${trs%.trs}.log"
  if grep -q '^:test-result: \(FAIL\|ERROR\)' "$trs"; then echo "== $log"; tail -40 "$log"; fi
done
# A Check suite counts its tests ("100%: Checks: 12, Failures: 0, Errors: 0");
# a shell test counts as one.
counts=$(for trs in tests/*.trs; do
  log="${trs%.trs}.log"
  line=$(grep -h '^[0-9]*%: Checks:' "$log" 2>/dev/null | tail -1)
  if [ -n "$line" ]; then
    echo "$line" | tr -d ',' | awk '{print $3-$5-$7, $5+$7}'
  elif grep -q '^:test-result: PASS' "$trs"; then echo "1 0"; else echo "0 1"; fi
done | awk '{p+=$1; f+=$2} END {print p+0, f+0}')
set -- $counts
echo "$1 passed, $2 failed"
exit $status
