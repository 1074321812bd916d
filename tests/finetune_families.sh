#!/bin/sh
# `flava finetune` of CLIP and ALIGN: each family pretrains two steps on
# generated scenes (the pretrained checkpoint), then fine-tunes its
# classifier (classifier.* added to the family's table, the towers trained
# through their feature gradients) on 64 Fashion-MNIST items (image_cls,
# the image features) and on a two-class corpus in SST-2 layout (glue, the
# text features): the loss falls, results.json is written, and `flava
# eval` of the fine-tuned checkpoint reproduces the run's metric.
. "${FLAVA_SRCDIR:-..}/tests/families_data.sh"
. "$src/tests/evaltasks_common.sh"
trap 'rm -rf "$out" "$dir"' EXIT

make_idx train "$out/tr"
make_idx t10k "$out/te"
# caption words, the label in the words top / bottom, the nouns on both sides
mkdir -p "$out/two"
{
  printf 'sentence\tlabel\n'
  for noun in sandal coat bag; do
    for i in 1 2; do
      printf 'a %s in the top left\t1\na %s in the bottom right\t0\n' $noun $noun
      printf 'a %s in the top right\t1\na %s in the bottom left\t0\n' $noun $noun
    done
  done
} > "$out/two/train.tsv"
{
  printf 'sentence\tlabel\n'
  printf 'a dress in the top left\t1\na dress in the bottom right\t0\n'
  printf 'a sneaker in the top right\t1\na sneaker in the bottom left\t0\n'
} > "$out/two/dev.tsv"

for fam in clip align; do
  tok="$bpe"
  [ $fam = align ] && tok="$dir/vocab.txt"
  "$flava" pretrain -c "$src/configs/tiny-$fam.cfg" -s run.dir="$out/pre-$fam" -s run.threads=1 \
    -s data.scenes.path="$dir/scenes/train/captions.tsv" -s pretrain.tokenizer="$tok" \
    -s train.steps=2 2> "$out/err" || fail "$fam pretraining: $(cat "$out/err")"
  ck="$out/pre-$fam/checkpoints/final.safetensors"

  cat > "$out/ic-$fam.cfg" <<CFG
[run]
task = image_cls
dir = $out/ic-$fam
threads = 1
[model]
checkpoint = $ck
[train]
steps = 8
batch_size = 16
lr = 2e-3
log_every = 1
[image_cls]
images = $out/tr-images.idx
labels = $out/tr-labels.idx
test_images = $out/te-images.idx
test_labels = $out/te-labels.idx
CFG
  "$flava" finetune -c "$out/ic-$fam.cfg" 2> "$out/err" || fail "$fam image_cls: $(cat "$out/err")"
  grep -q "finetune image_cls: $fam," "$out/ic-$fam/log.txt" || fail "$fam: the log names no family"
  acc=$(num "$out/ic-$fam" accuracy)
  check 'a >= 0 && a <= 1' "$acc"
  [ "$(num "$out/ic-$fam" images)" = 64 ] || fail "$fam image_cls images"
  check 'a > b' $(losses "$out/ic-$fam")
  echo "$fam image_cls: loss $(losses "$out/ic-$fam"), accuracy $acc"
  "$flava" info "$out/ic-$fam/checkpoints/final.safetensors" |
    grep -q "classifier.decoder.weight .*\[10, " || fail "$fam: no classifier in the checkpoint"
  "$flava" eval -c "$out/ic-$fam.cfg" -s run.dir="$out/ic-$fam-eval" \
    -s model.checkpoint="$out/ic-$fam/checkpoints/final.safetensors" 2> "$out/err" ||
    fail "$fam image_cls eval: $(cat "$out/err")"
  [ "$(num "$out/ic-$fam-eval" accuracy)" = "$acc" ] ||
    fail "$fam image_cls eval $(num "$out/ic-$fam-eval" accuracy) differs from $acc"

  cat > "$out/glue-$fam.cfg" <<CFG
[run]
task = glue
dir = $out/glue-$fam
threads = 1
[model]
checkpoint = $ck
[train]
steps = 40
batch_size = 8
lr = 5e-3
log_every = 1
[glue]
task = sst2
dir = $out/two
tokenizer = $tok
max_text_len = 32
metric = accuracy
CFG
  "$flava" finetune -c "$out/glue-$fam.cfg" 2> "$out/err" || fail "$fam glue: $(cat "$out/err")"
  acc=$(num "$out/glue-$fam" accuracy)
  check 'a > b' $(losses "$out/glue-$fam")
  check 'a >= 0.75' "$acc"
  echo "$fam glue: loss $(losses "$out/glue-$fam"), accuracy $acc"
  "$flava" eval -c "$out/glue-$fam.cfg" -s run.dir="$out/glue-$fam-eval" \
    -s model.checkpoint="$out/glue-$fam/checkpoints/final.safetensors" 2> "$out/err" ||
    fail "$fam glue eval: $(cat "$out/err")"
  [ "$(num "$out/glue-$fam-eval" accuracy)" = "$acc" ] || fail "$fam glue eval differs"

  # errors: the image classifier's checkpoint for a text task, the
  # pretrained one (no classifier) for eval
  expect_error "classifier has 10 labels on the image" eval -c "$out/glue-$fam.cfg" \
    -s run.dir="$out/e1-$fam" -s model.checkpoint="$out/ic-$fam/checkpoints/final.safetensors"
  expect_error "classifier has 0 labels" eval -c "$out/glue-$fam.cfg" -s run.dir="$out/e2-$fam"
done
echo "finetune families: OK"
