# evaltasks_common.sh - sourced by tests/eval_tasks.sh and
# tests/finetune_tasks.sh: tiny data made here (IDX from the first 64
# Fashion-MNIST items, scenes, texts in GLUE layouts whose words the test
# vocabulary knows) and the tiny random FLAVA checkpoint of the model
# fixtures, plus helpers to read results.json and expect errors.
set -eu
# absolute, as the example configs run from another directory
flava="$(cd "${FLAVA_BUILDDIR:-.}" && pwd)/flava"
src="$(cd "${FLAVA_SRCDIR:-..}" && pwd)"
fm=/usr/share/datasets/fashion-mnist
[ -f "$fm/t10k-images-idx3-ubyte.gz" ] || { echo "SKIP: no Fashion-MNIST in $fm"; exit 77; }
out=$(mktemp -d "${TMPDIR:-/tmp}/evaltasks.XXXXXX")
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ckpt="$src/tests/fixtures/flava_tiny_model.safetensors"
vocab="$src/tests/fixtures/tok/vocab.txt"

# 64 items of a Fashion-MNIST split as plain IDX files: PREFIX-images.idx, -labels.idx
make_idx() {
  printf '\000\000\010\003\000\000\000\100\000\000\000\034\000\000\000\034' > "$2-images.idx"
  gunzip -c "$fm/$1-images-idx3-ubyte.gz" | tail -c +17 | head -c $((64 * 784)) >> "$2-images.idx"
  printf '\000\000\010\001\000\000\000\100' > "$2-labels.idx"
  gunzip -c "$fm/$1-labels-idx1-ubyte.gz" | tail -c +9 | head -c 64 >> "$2-labels.idx"
}

# The VQA fine-tune of the tiny checkpoint on the scenes in $out/scenes
# (`flava data scenes`), STEPS steps, into RUN_DIR: vqa_cfg FILE RUN_DIR STEPS
vqa_cfg() {
  cat > "$1" <<CFG
[run]
task = vqa
dir = $2
threads = 1
[model]
checkpoint = $ckpt
[train]
steps = $3
batch_size = 8
lr = 1e-3
log_every = 1
[vqa]
tokenizer = $vocab
train_questions = $out/scenes/train/questions.json
train_annotations = $out/scenes/train/annotations.json
train_images = $out/scenes/train/images
questions = $out/scenes/test/questions.json
annotations = $out/scenes/test/annotations.json
images = $out/scenes/test/images
max_text_len = 16
CFG
}

# A number of RUN/results.json: `value` or one of its metrics.
num() {
  grep -o "\"$2\":[[:space:]]*[-0-9.e+]*[0-9]" "$1/results.json" | head -1 | sed 's/.*:[[:space:]]*//'
}
# Asserts an awk condition on numbers: check 'a <= b' 0.1 0.2
check() {
  cond="$1"; shift
  awk -v a="$1" -v b="${2:-0}" -v c="${3:-0}" "BEGIN { exit !($cond) }" ||
    fail "expected $cond with a=$1 b=${2:-} c=${3:-}"
}
# First and last `loss` of RUN/metrics.jsonl.
losses() {
  grep -o '"loss":[[:space:]]*[-0-9.e+]*' "$1/metrics.jsonl" | sed 's/.*:[[:space:]]*//' |
    sed -n '1p;$p' | tr '\n' ' '
}
expect_error() {
  want="$1"; shift
  if "$flava" "$@" 2> "$out/err"; then fail "'$*' succeeded"; fi
  grep -q -- "$want" "$out/err" || fail "'$*': message lacks '$want': $(cat "$out/err")"
}
