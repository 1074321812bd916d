#!/bin/sh
# Plays `flava pretrain|finetune|eval -c CFG -s k=v ... [--resume | --check]`
# for tests/sweep.sh: writes RUN_DIR/results.json from its arguments; with
# --check it only checks them (exit 0, or 2 with fake.typo=1).
#   -s fake.fail=1      exit 3 after printing a last line
#   -s fake.sleep=S     sleep S seconds first (default 0.3)
#   -s fake.value=V     the metric's value (default: the value of optim.lr,
#                       else 0.5)
#   -s fake.deaf=1      ignore Ctrl-C (SIGINT)
#   -s fake.typo=1      fail the check as flava does on an unknown key
# The task is the config file's name without .cfg. When $FAKE_RUN_LOG is
# set, each run appends "start NAME resume=yes|no" and "end NAME" to it.
set -eu
command=$1
shift
config= dir= threads=unset fail=0 sleep=0.3 value= lr= resume=no deaf=0 check=no typo=0
while [ $# -gt 0 ]; do
    case $1 in
    -c) config=$2; shift ;;
    -s)
        case $2 in
        run.dir=*) dir=${2#run.dir=} ;;
        run.threads=*) threads=${2#run.threads=} ;;
        fake.fail=*) fail=${2#fake.fail=} ;;
        fake.sleep=*) sleep=${2#fake.sleep=} ;;
        fake.value=*) value=${2#fake.value=} ;;
        fake.deaf=*) deaf=${2#fake.deaf=} ;;
        fake.typo=*) typo=${2#fake.typo=} ;;
        optim.lr=*) lr=${2#optim.lr=} ;;
        esac
        shift ;;
    --resume) resume=yes ;;
    --check) check=yes ;;
    *) echo "fake run: unexpected argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -f "$config" ] || { echo "fake run: no config $config" >&2; exit 2; }
[ -n "$dir" ] || { echo "fake run: no run.dir" >&2; exit 2; }
if [ "$check" = yes ]; then
    [ -n "${FAKE_CHECK_LOG:-}" ] && echo "check $(basename "$dir")" >> "$FAKE_CHECK_LOG"
    if [ "$typo" = 1 ]; then
        echo "flava $command: error: -s fake.typ: unknown key (did you mean fake.typo?)" >&2
        exit 2
    fi
    exit 0
fi
[ "$deaf" = 1 ] && trap '' INT
name=$(basename "$dir")
log() { if [ -n "${FAKE_RUN_LOG:-}" ]; then echo "$*" >> "$FAKE_RUN_LOG"; fi; }
log "start $name resume=$resume"
echo "fake $command of $config into $dir"
echo "threads $threads"
sleep "$sleep"
log "end $name"
if [ "$fail" = 1 ]; then
    echo "flava $command: error: step 3: loss is NaN | giving up" >&2
    echo "  (raised at src/train.c:42)" >&2
    exit 3
fi
[ -n "$value" ] || value=${lr:-0.5}
task=$(basename "$config" .cfg)
cat > "$dir/results.json" <<EOF
{"command": "$command", "task": "$task", "dataset": "fashion-mnist",
 "metric": "accuracy", "value": $value,
 "metrics": {"accuracy": $value, "top5": 0.97}, "wall_seconds": 1.5}
EOF
echo "done"
