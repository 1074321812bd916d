#!/bin/sh
# Data-parallel training over MPI (src/dist.h): two ranks with one
# micro-batch each train as one process with grad_accum 2 does (same
# batches, masks and negatives; the gradients summed in another order, so
# the numbers agree to float rounding), for a pretraining without the
# contrastive loss and a VQA fine-tune; the contrastive loss (FLAVA's,
# CLIP's), gathered over the ranks, trains as one process with the ranks'
# batches in one;
# rank 0 alone writes the run; --resume continues a data-parallel run bit
# for bit, also after Ctrl-C; a sweep starts a run on ranks; the other
# commands (`flava eval`, `flava data`) refuse to run on ranks.
. "${FLAVA_SRCDIR:-..}/tests/evaltasks_common.sh"
command -v mpirun > /dev/null || { echo "SKIP: no mpirun (apt-get install mpi-default-bin)"; exit 77; }
# Open MPI refuses root without these; two ranks on however many cores.
# Its libraries leave allocations at exit (thousands, in its dlopened
# modules): in a sanitizer build LeakSanitizer would report theirs, so leak
# detection is off here (the address and undefined-behaviour checks stay
# on, and every other test checks flava's own leaks).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}detect_leaks=0"
mpi() { mpirun --oversubscribe -np 2 "$@"; }

# Every number of each metrics line, relative differences up to 1e-5.
same_metrics() {
  [ "$(wc -l < "$1/metrics.jsonl")" -eq "$(wc -l < "$2/metrics.jsonl")" ] ||
    fail "$2: $(wc -l < "$2/metrics.jsonl") metrics lines, $1 has $(wc -l < "$1/metrics.jsonl")"
  paste -d '\n' "$1/metrics.jsonl" "$2/metrics.jsonl" | sed 's/, "samples_per_s": [^,}]*//' |
    awk 'NR % 2 == 1 { a = $0; next }
         { n = split(a, x, /[,:{} ]+/); m = split($0, y, /[,:{} ]+/);
           if (n != m) { print "lines differ: " a " / " $0; bad = 1; next }
           for (i = 1; i <= n; i++) {
             if (x[i] ~ /^-?[0-9]/) {
               d = x[i] - y[i]; if (d < 0) d = -d; s = x[i] < 0 ? -x[i] : x[i];
               if (d > 1e-5 * (s > 1 ? s : 1)) { print "differ: " x[i] " / " y[i] " in " a; bad = 1 }
             } else if (x[i] != y[i]) { print "keys differ: " x[i] " / " y[i]; bad = 1 }
           } }
         END { exit bad }' || fail "$2 does not train as $1"
}

# Pretraining on one image-text source: every head that source feeds but
# the contrastive one (ITM, MMM).
"$flava" data scenes --train 64 --test 0 --seed 5 --out "$out/pre" > /dev/null
sed '/^\[data.fmnist\]/,$d' "$src/configs/tiny-pretrain.cfg" > "$out/dp.cfg"
# pretrain6 LAUNCHER CONFIG TOKENIZER [ARGS...]: 6 steps on the scenes, a
# thread per process; LAUNCHER is `mpi` or `exec`
pretrain6() {
  launcher=$1 config=$2 tokenizer=$3
  shift 3
  ($launcher "$flava" pretrain -c "$config" -s data.scenes.path="$out/pre/train/captions.tsv" \
    -s pretrain.tokenizer="$tokenizer" -s run.threads=1 -s train.steps=6 "$@")
}
pre() { # pre LAUNCHER [ARGS...]
  launcher=$1
  shift
  pretrain6 "$launcher" "$out/dp.cfg" "$src/tests/fixtures/tok/spm_unigram.model" "$@"
}
pre exec -s run.dir="$out/one" -s train.grad_accum=2 -s heads.global_contrastive=0 2> /dev/null ||
  fail "one process"
pre mpi -s run.dir="$out/two" -s heads.global_contrastive=0 2> "$out/err" ||
  { cat "$out/err"; fail "two ranks"; }
same_metrics "$out/one" "$out/two"
[ "$(grep -c 'saved checkpoint step-6' "$out/two/log.txt")" -eq 1 ] || fail "rank 0 alone logs"
[ -f "$out/two/results.json" ] && [ -f "$out/two/checkpoints/final.safetensors" ] ||
  fail "no results or final checkpoint from two ranks"

# The contrastive loss alone: two ranks of 8 pairs, one process of 16.
only_con="-s heads.itm=0 -s heads.mmm_image=0 -s heads.mmm_text=0"
# shellcheck disable=SC2086 # $only_con is a list of arguments
pre exec -s run.dir="$out/con1" -s train.batch_size=16 $only_con 2> /dev/null || fail "one process"
# shellcheck disable=SC2086
pre mpi -s run.dir="$out/con2" $only_con 2> "$out/err" || { cat "$out/err"; fail "two ranks"; }
same_metrics "$out/con1" "$out/con2"

# CLIP's contrastive loss the same way (ALIGN's image tower normalises its
# batches per rank, as DistributedDataParallel without SyncBatchNorm does,
# so it is not the one-process run).
clip() { # clip LAUNCHER [ARGS...]
  launcher=$1
  shift
  pretrain6 "$launcher" "$src/configs/tiny-clip.cfg" "$src/tests/fixtures/clip_bpe" "$@"
}
clip exec -s run.dir="$out/clip1" 2> /dev/null || fail "CLIP in one process"
clip mpi -s run.dir="$out/clip2" -s train.batch_size=8 2> "$out/err" ||
  { cat "$out/err"; fail "CLIP on two ranks"; }
same_metrics "$out/clip1" "$out/clip2"

# Resume: stopped after step 3 and resumed, the same lines as straight.
pre mpi -s run.dir="$out/split" -s heads.global_contrastive=0 -s train.stop_after=3 2> /dev/null ||
  fail "stop after 3"
pre mpi -s run.dir="$out/split" -s heads.global_contrastive=0 --resume 2> /dev/null ||
  fail "resume on two ranks"
cmp -s "$out/two/checkpoints/final.safetensors" "$out/split/checkpoints/final.safetensors" ||
  fail "a resumed data-parallel run ends with other weights"
sed 's/, "samples_per_s": [^,}]*//' "$out/two/metrics.jsonl" > "$out/want"
sed 's/, "samples_per_s": [^,}]*//' "$out/split/metrics.jsonl" > "$out/got"
cmp -s "$out/want" "$out/got" || { diff "$out/want" "$out/got"; fail "resumed losses differ"; }
# on another number of ranks the steps would read other batches
pre mpi -s run.dir="$out/split" -s heads.global_contrastive=0 -s train.steps=8 --resume \
  > /dev/null 2>&1 || fail "resume on two ranks to step 8"
if pre exec -s run.dir="$out/split" -s train.steps=10 --resume 2> "$out/err"; then
  fail "a two-rank run resumed in one process"
fi
grep -q "was written by a run on 2 ranks, this one has 1: resume it on 2" "$out/err" ||
  fail "resume on 1 rank: $(cat "$out/err")"

# Ctrl-C on mpirun (it sends the ranks SIGTERM): every rank stops after
# the same step, rank 0 saves it, and the run resumes from there.
(pre mpi -s run.dir="$out/int" -s train.steps=100000 > /dev/null 2> "$out/int.err") &
pid=$!
i=0
while [ "$(cat "$out/int/metrics.jsonl" 2> /dev/null | wc -l)" -lt 3 ] && [ $i -lt 300 ]; do
  sleep 0.1; i=$((i + 1))
done
pkill -INT -f "^mpirun .*run.dir=$out/int" || fail "no mpirun to interrupt"
wait "$pid" && fail "an interrupted run exited with status 0"
[ "$(grep -c 'interrupted after step' "$out/int.err")" -eq 2 ] || fail "both ranks: $(cat "$out/int.err")"
n=$(ls "$out/int/checkpoints" | sed -n 's/^step-\([0-9]*\)\.optim\.safetensors$/\1/p')
[ -n "$n" ] || fail "Ctrl-C: no checkpoint"
pre mpi -s run.dir="$out/int" -s train.steps=$((n + 2)) --resume 2> /dev/null || fail "resume after Ctrl-C"
[ -f "$out/int/checkpoints/final.safetensors" ] || fail "the resumed run did not finish"

# A fine-tune: VQA from the tiny checkpoint (the head initialised fresh).
"$flava" data scenes --train 32 --test 8 --seed 5 --out "$out/scenes" > /dev/null
vqa_cfg "$out/vqa.cfg" "$out/vqa" 4
"$flava" finetune -c "$out/vqa.cfg" -s run.dir="$out/vqa1" -s train.grad_accum=2 2> /dev/null ||
  fail "VQA in one process"
mpi "$flava" finetune -c "$out/vqa.cfg" -s run.dir="$out/vqa2" 2> "$out/err" ||
  { cat "$out/err"; fail "VQA on two ranks"; }
same_metrics "$out/vqa1" "$out/vqa2"
cmp -s "$out/vqa1/answers.txt" "$out/vqa2/answers.txt" || fail "answer vocabularies differ"

# A sweep starts a run of 2 ranks through mpirun.
cat > "$out/dp-sweep.cfg" <<CFG
[sweep]
out = $out/sw
mpirun = mpirun --oversubscribe
threads = 2
[run.vqa]
command = finetune
config = $out/vqa.cfg
ranks = 2
CFG
"$flava" sweep -c "$out/dp-sweep.cfg" > /dev/null 2> "$out/err" || { cat "$out/err"; fail "sweep of 2 ranks"; }
grep -q '^mpirun --oversubscribe -np 2 ' "$out/sw/vqa/command.txt" || fail "sweep: $(cat "$out/sw/vqa/command.txt")"
same_metrics "$out/vqa2" "$out/sw/vqa"

# Evaluations and the other commands run in one process.
if mpi "$flava" eval -c "$out/vqa.cfg" -s run.task=vqa -s run.dir="$out/ev" \
  -s model.checkpoint="$out/vqa1/checkpoints/final.safetensors" > "$out/err" 2>&1; then
  fail "flava eval ran on two ranks"
fi
grep -q "runs in one process, not in 2 MPI ranks" "$out/err" || fail "eval: $(cat "$out/err")"
if mpi "$flava" data scenes --train 4 --test 0 --out "$out/twice" > "$out/err" 2>&1; then
  fail "flava data ran on two ranks"
fi
grep -q "flava data runs in one process" "$out/err" || fail "data: $(cat "$out/err")"
exit 0
