#!/bin/sh
# Plays `flava pretrain|finetune|eval -c CFG -s k=v ... [--resume]` for
# tests/sweep.sh: writes RUN_DIR/results.json from its arguments.
#   -s fake.fail=1      exit 3 after printing a last line
#   -s fake.sleep=S     sleep S seconds first (default 0.3)
#   -s fake.value=V     the metric's value (default: the value of optim.lr,
#                       else 0.5)
#   -s fake.deaf=1      ignore Ctrl-C (SIGINT)
# The task is the config file's name without .cfg. When $FAKE_RUN_LOG is
# set, each run appends "start NAME resume=yes|no" and "end NAME" to it.
set -eu
command=$1
shift
config= dir= threads=unset fail=0 sleep=0.3 value= lr= resume=no deaf=0
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
