#!/bin/sh
# flava sweep end to end, with tests/sweep_fake_run.sh playing the runs:
# two at a time, a failed run in the table, the exit status, a restart that
# skips the complete runs, resume, Ctrl-C, and a config error or a run
# that does not check stopping everything before it starts.
set -eu
flava="${FLAVA_BUILDDIR:-.}/flava"
fake="$(cd "${FLAVA_SRCDIR:-..}/tests" && pwd)/sweep_fake_run.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export FAKE_RUN_LOG="$dir/starts"
wait_for_start() { # NAME: until the fake run NAME has started, 10 s at most
    i=0
    until grep -q "start $1" "$FAKE_RUN_LOG"; do
        i=$((i + 1))
        [ $i -lt 100 ] || fail "run $1 never started"
        sleep 0.1
    done
}

touch "$dir/zeroshot.cfg" "$dir/vqa.cfg"
cat > "$dir/s.cfg" <<EOF
[sweep]
out = out
parallel = 2
program = $fake

[run.zs]
command = eval
config = zeroshot.cfg
set = fake.value=0.812, fake.sleep=0.5

[run.bad]
command = eval
config = zeroshot.cfg
set = fake.fail=1

[grid.lr]
command = finetune
config = vqa.cfg
vary = optim.lr=0.25|0.5, train.seed=0|1
EOF

# --- first pass: one run fails, the others go on; the sweep exits 1
status=0
"$flava" sweep -c "$dir/s.cfg" -s sweep.threads=3 > "$dir/stdout" 2> "$dir/stderr" || status=$?
[ "$status" -eq 1 ] || fail "exit status $status with a failed run, expected 1: $(cat "$dir/stderr")"
grep -q '1 of 6 runs failed' "$dir/stderr" || fail "no failure count: $(cat "$dir/stderr")"
md="$dir/out/results.md"
[ -f "$md" ] && [ -f "$dir/out/results.csv" ] && [ -f "$dir/out/results.json" ] || fail "tables missing"
cmp -s "$md" "$dir/stdout" || tail -n +2 "$dir/stdout" | cmp -s "$md" - || fail "stdout is not the table"
# rows in the sweep file's order, grid points first axis slowest
rows=$(awk -F' [|] ' 'NR > 2 { sub(/^[|] /, "", $1); printf "%s ", $1 }' "$md")
[ "$rows" = "zs bad lr-lr=0.25-seed=0 lr-lr=0.25-seed=1 lr-lr=0.5-seed=0 lr-lr=0.5-seed=1 " ] ||
    fail "rows: $rows"
grep -q '^| zs | zeroshot | fashion-mnist | accuracy | 0.812 |  |  | ok | 1.5 s |$' "$md" ||
    fail "zs row: $(cat "$md")"
grep -q '^| bad |  |  |  |  |  |  | failed: exit status 3: flava eval: error: step 3: loss is NaN \\| giving up | ' "$md" ||
    fail "bad row: $(cat "$md")"
grep -q '^| lr-lr=0.5-seed=1 | vqa | fashion-mnist | accuracy | 0.5 | 0.5 | 1 | ok | 1.5 s |$' "$md" ||
    fail "grid row: $(cat "$md")"
grep -q '^bad,eval,,,,,,,failed,exit status 3: flava eval: error: step 3: loss is NaN | giving up,' "$dir/out/results.csv" ||
    fail "bad row in CSV: $(cat "$dir/out/results.csv")"
grep -q 'step 3: loss is NaN' "$dir/out/bad/output.log" || fail "the run's output is not in its log"
grep -q '^threads 3$' "$dir/out/bad/output.log" || fail "run.threads is not sweep.threads"
grep -q "^'\?/.*sweep_fake_run.sh'\? eval -c $dir/zeroshot.cfg -s run.threads=3 -s fake.value=0.812 -s fake.sleep=0.5 -s run.dir=$dir/out/zs\$" \
    "$dir/out/zs/command.txt" || fail "command.txt: $(cat "$dir/out/zs/command.txt")"
# two at a time: at most two runs between their start and end, and two at once
conc=$(awk '$1 == "start" { n++; if (n > max) max = n } $1 == "end" { n-- } END { print max }' "$FAKE_RUN_LOG")
[ "$conc" -eq 2 ] || fail "at most $conc runs at once, expected 2: $(cat "$FAKE_RUN_LOG")"
[ "$(grep -c '^start' "$FAKE_RUN_LOG")" -eq 6 ] || fail "expected 6 starts: $(cat "$FAKE_RUN_LOG")"

# --- restart (with other threads, which do not make the runs new): only the
# failed run runs again, in an emptied folder
: > "$FAKE_RUN_LOG"
touch "$dir/out/bad/stale"
status=0
"$flava" sweep -c "$dir/s.cfg" > "$dir/stdout" 2> "$dir/stderr" || status=$?
[ "$status" -eq 1 ] || fail "second pass: exit status $status, expected 1"
[ "$(cat "$FAKE_RUN_LOG")" = "start bad resume=no
end bad" ] || fail "second pass ran: $(cat "$FAKE_RUN_LOG")"
grep -q '6 runs, 5 complete already' "$dir/stderr" || fail "second pass: $(cat "$dir/stderr")"
[ ! -e "$dir/out/bad/stale" ] || fail "the incomplete run's folder was not cleared"
grep -q '^| zs | zeroshot | fashion-mnist | accuracy | 0.812 |' "$dir/out/results.md" ||
    fail "complete run missing from the second table"

# --- the failed run fixed with -s: all complete, exit 0; a third pass runs nothing
: > "$FAKE_RUN_LOG"
"$flava" sweep -c "$dir/s.cfg" -s run.bad.set=fake.value=0.25 > "$dir/stdout" 2> "$dir/stderr" ||
    fail "fixed sweep failed: $(cat "$dir/stderr")"
grep -q '^| bad | zeroshot | fashion-mnist | accuracy | 0.25 |' "$dir/out/results.md" ||
    fail "fixed run: $(cat "$dir/out/results.md")"
"$flava" sweep -c "$dir/s.cfg" -s run.bad.set=fake.value=0.25 > /dev/null 2>&1 || fail "third pass failed"
[ "$(grep -c '^start' "$FAKE_RUN_LOG")" -eq 1 ] || fail "third pass ran again: $(cat "$FAKE_RUN_LOG")"
# ... but a complete run's settings cannot change under it
status=0
"$flava" sweep -c "$dir/s.cfg" -s run.bad.set=fake.value=0.3 > /dev/null 2> "$dir/stderr" || status=$?
[ "$status" -ne 0 ] && grep -q 'run bad is complete but was run with another command' "$dir/stderr" ||
    fail "changed settings of a complete run accepted: $(cat "$dir/stderr")"

# --- resume = true: the incomplete run goes on with --resume in its folder
cat > "$dir/r.cfg" <<EOF
[sweep]
program = $fake
[run.res]
command = pretrain
config = vqa.cfg
resume = true
EOF
: > "$FAKE_RUN_LOG"
"$flava" sweep -c "$dir/r.cfg" -s run.res.set=fake.fail=1 > /dev/null 2>&1 && fail "failing run passed"
touch "$dir/sweep-out/res/checkpoint"
"$flava" sweep -c "$dir/r.cfg" > /dev/null 2>&1 || fail "resumed run failed"
[ "$(grep '^start' "$FAKE_RUN_LOG")" = "start res resume=no
start res resume=yes" ] || fail "resume: $(cat "$FAKE_RUN_LOG")"
[ -e "$dir/sweep-out/res/checkpoint" ] || fail "resume cleared the run folder"

# --- Ctrl-C: no new runs, the running one stops (killed after grace when
# it ignores the interrupt), the partial table, exit non-zero
cat > "$dir/c.cfg" <<EOF
[sweep]
out = cout
program = $fake
grace = 0.5
[run.long]
command = eval
config = zeroshot.cfg
set = fake.sleep=30, fake.deaf=1
[run.later]
command = eval
config = zeroshot.cfg
EOF
: > "$FAKE_RUN_LOG"
"$flava" sweep -c "$dir/c.cfg" > "$dir/stdout" 2> "$dir/stderr" &
pid=$!
wait_for_start long
kill -INT $pid
status=0
wait $pid || status=$?
[ "$status" -ne 0 ] || fail "an interrupted sweep exited 0"
grep -q 'interrupted: 0 of 2 runs complete' "$dir/stderr" || fail "interrupt: $(cat "$dir/stderr")"
grep -q '^| long |.*| interrupted: killed at the end of the grace period | ' "$dir/cout/results.md" || fail "partial table: $(cat "$dir/cout/results.md")"
grep -q '^| later |.*| not run |' "$dir/cout/results.md" || fail "partial table: $(cat "$dir/cout/results.md")"
grep -q 'later' "$FAKE_RUN_LOG" && fail "a run started after Ctrl-C"
# a run that listens stops at the forwarded interrupt, long before grace
: > "$FAKE_RUN_LOG"
rm -rf "$dir/cout"
"$flava" sweep -c "$dir/c.cfg" -s run.long.set=fake.sleep=30 -s sweep.grace=60 > /dev/null 2> "$dir/stderr" &
pid=$!
wait_for_start long
start=$(date +%s)
kill -INT $pid
wait $pid && fail "an interrupted sweep exited 0"
[ $(($(date +%s) - start)) -lt 20 ] || fail "the interrupt did not reach the run"
grep -q '^| long |.*| interrupted | ' "$dir/cout/results.md" || fail "partial table: $(cat "$dir/cout/results.md")"

# --- a typo fails before anything starts, naming file and line
cat > "$dir/bad.cfg" <<EOF
[sweep]
out = badout
program = $fake
[run.a]
command = eval
config = zeroshot.cfg
[run.b]
command = eval
config = zeroshot.cgf
EOF
status=0
"$flava" sweep -c "$dir/bad.cfg" > /dev/null 2> "$dir/stderr" || status=$?
[ "$status" -ne 0 ] || fail "a missing config was accepted"
grep -q "bad.cfg:9: run.b.config: cannot read .*zeroshot.cgf" "$dir/stderr" || fail "typo: $(cat "$dir/stderr")"
[ ! -e "$dir/badout" ] || fail "runs started despite the typo"

# --- a run whose settings do not check (its command with --check) stops the
# sweep before any run starts; complete runs are not checked again
cat > "$dir/k.cfg" <<EOF
[sweep]
out = kout
program = $fake
[run.first]
command = eval
config = zeroshot.cfg
[run.second]
command = finetune
config = vqa.cfg
set = fake.typo=1
EOF
: > "$FAKE_RUN_LOG"
export FAKE_CHECK_LOG="$dir/checks"
status=0
"$flava" sweep -c "$dir/k.cfg" > /dev/null 2> "$dir/stderr" || status=$?
[ "$status" -ne 0 ] || fail "a run that does not check was accepted"
grep -q 'unknown key (did you mean fake.typo?)' "$dir/stderr" &&
    grep -q "run second (.*k.cfg:7) does not check: its error is above" "$dir/stderr" &&
    grep -q '1 run of the sweep does not check (second): no run was started' "$dir/stderr" ||
    fail "check: $(cat "$dir/stderr")"
[ ! -s "$FAKE_RUN_LOG" ] || fail "runs started despite a failed check: $(cat "$FAKE_RUN_LOG")"
[ "$(cat "$FAKE_CHECK_LOG")" = "check first
check second" ] || fail "checks: $(cat "$FAKE_CHECK_LOG")"
: > "$FAKE_CHECK_LOG"
"$flava" sweep -c "$dir/k.cfg" -s run.second.set=fake.typo=0 > /dev/null 2>&1 || fail "fixed sweep failed"
[ "$(grep -c '^start' "$FAKE_RUN_LOG")" -eq 2 ] || fail "fixed sweep: $(cat "$FAKE_RUN_LOG")"
: > "$FAKE_CHECK_LOG"
"$flava" sweep -c "$dir/k.cfg" -s run.second.set=fake.typo=0 > /dev/null 2>&1 || fail "third pass failed"
[ ! -s "$FAKE_CHECK_LOG" ] || fail "complete runs checked again: $(cat "$FAKE_CHECK_LOG")"
unset FAKE_CHECK_LOG

# --- a run of 2 ranks: started by sweep.mpirun (here a fake that logs its
# arguments and runs what follows -np N once) with half the threads each;
# its check and an evaluation are not launched so
cat > "$dir/fake_mpirun" <<'EOF'
#!/bin/sh
echo "launch $*" >> "$FAKE_LAUNCH_LOG"
[ "$1" = --opt ] && shift
[ "$1" = -np ] || exit 9
shift 2
exec "$@"
EOF
chmod +x "$dir/fake_mpirun"
export FAKE_LAUNCH_LOG="$dir/launches"
cat > "$dir/r.cfg" <<EOF
[sweep]
out = rout
program = $fake
mpirun = $dir/fake_mpirun --opt
threads = 4
[run.dp]
command = finetune
config = vqa.cfg
ranks = 2
[run.single]
command = eval
config = zeroshot.cfg
EOF
"$flava" sweep -c "$dir/r.cfg" > /dev/null 2> "$dir/stderr" || fail "ranks: $(cat "$dir/stderr")"
[ "$(wc -l < "$FAKE_LAUNCH_LOG")" -eq 1 ] && grep -q "^launch --opt -np 2 $fake finetune " "$FAKE_LAUNCH_LOG" ||
    fail "launches: $(cat "$FAKE_LAUNCH_LOG")"
grep -qx 'threads 2' "$dir/rout/dp/output.log" || fail "a rank's threads: $(cat "$dir/rout/dp/output.log")"
grep -qx 'threads 4' "$dir/rout/single/output.log" || fail "single: $(cat "$dir/rout/single/output.log")"
grep -q "^$dir/fake_mpirun --opt -np 2 .* finetune " "$dir/rout/dp/command.txt" ||
    fail "command.txt: $(cat "$dir/rout/dp/command.txt")"
status=0
"$flava" sweep -c "$dir/r.cfg" -s run.single.ranks=2 > /dev/null 2> "$dir/stderr" || status=$?
[ "$status" -ne 0 ] && grep -q 'run.single.ranks = 2: expected 1 to 4096, and 1 for eval' "$dir/stderr" ||
    fail "ranks for eval: $(cat "$dir/stderr")"

"$flava" sweep --help | grep -q 'vary = (required)' || fail "--help does not list the keys"
echo "sweep.sh: ok"
