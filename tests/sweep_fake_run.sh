#!/bin/sh
# Plays `flava pretrain|finetune|eval -c CFG -s k=v ... [--resume]` for
# tests/sweep.sh: writes RUN_DIR/results.json from its arguments.
#   -s fake.fail=1      exit 3 after printing a last line
#   -s fake.sleep=S     sleep S seconds first (default 0.3)
#   -s fake.value=V     the metric's value (default: the value of optim.lr,
#                       else 0.5)
# The task is the config file's name without .cfg; every start is
# appended to $FAKE_RUN_LOG (one line: run.dir and flags) when it is set.
set -eu
command=$1
shift
config= dir= fail=0 sleep=0.3 value= lr= resume=no
while [ $# -gt 0 ]; do
    case $1 in
    -c) config=$2; shift ;;
    -s)
        case $2 in
        run.dir=*) dir=${2#run.dir=} ;;
        fake.fail=*) fail=${2#fake.fail=} ;;
        fake.sleep=*) sleep=${2#fake.sleep=} ;;
        fake.value=*) value=${2#fake.value=} ;;
        optim.lr=*) lr=${2#optim.lr=} ;;
        esac
        shift ;;
    --resume) resume=yes ;;
    *) echo "fake run: unexpected argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -f "$config" ] || { echo "fake run: no config $config" >&2; exit 2; }
[ -n "$dir" ] || { echo "fake run: no run.dir" >&2; exit 2; }
[ -n "${FAKE_RUN_LOG:-}" ] && echo "$(basename "$dir") resume=$resume" >> "$FAKE_RUN_LOG"
echo "fake $command of $config into $dir"
sleep "$sleep"
if [ "$fail" = 1 ]; then
    echo "step 3: loss is NaN | giving up"
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
