#!/bin/sh
# Every error path of flava pretrain|finetune|eval names what is wrong: a
# config key (with the nearest known one), a file, a checkpoint tensor, the
# step and head of a non-finite loss; and fails with status 1. --check stops
# after reading the configuration.
set -eu
. "${FLAVA_SRCDIR:-..}/tests/pretrain_data.sh"

# expect MESSAGE COMMAND RUN_DIR [ARGS...]: fails with status 1, saying MESSAGE.
expect() {
  msg=$1
  shift
  status=0
  run "$@" > /dev/null 2> "$dir/err" || status=$?
  [ $status -eq 1 ] || { cat "$dir/err"; fail "'$*': status $status, expected 1"; }
  grep -qF -- "$msg" "$dir/err" || { cat "$dir/err"; fail "'$*': no '$msg'"; }
}

sed 's/^batch_size = 8$/bach_size = 8/' "$cfg" > "$dir/typo.cfg"
status=0
"$flava" pretrain -c "$dir/typo.cfg" 2> "$dir/err" || status=$?
[ $status -eq 1 ] || fail "a typo in the file: status $status"
grep -qF "typo.cfg:33: unknown key 'bach_size' in [train]; nearest known key: train.batch_size" "$dir/err" ||
  { cat "$dir/err"; fail "a typo in the file is not named with its line and nearest key"; }
sed 's/^\[train\]$/[trian]/' "$cfg" > "$dir/sec.cfg"
"$flava" pretrain -c "$dir/sec.cfg" 2> "$dir/err" && fail "an unknown section passed"
grep -qF "unknown section [trian]; nearest known section: [train]" "$dir/err" || fail "unknown section"

expect "unknown key 'stpes' in [train]; nearest known key: train.steps" pretrain e -s train.stpes=3
expect "unknown key 'pth' in [data.scenes]; nearest known key: data.scenes.path" pretrain e -s data.scenes.pth=x
expect "train.steps = 'abc': expected" pretrain e -s train.steps=abc
expect "train.image_position_init = 'sin': expected zeros or sincos" pretrain e -s train.image_position_init=sin
expect "model.text_config.hiden_size" pretrain e -s model.text_config.hiden_size=32
expect "/nonexistent/captions.tsv" pretrain e -s data.scenes.path=/nonexistent/captions.tsv
expect "/nonexistent.model" pretrain e -s pretrain.tokenizer=/nonexistent.model
expect "data.fmnist.kind = 'images': expected idx, imagetext or text" pretrain e -s data.fmnist.kind=images
expect "data.fmnist.scene_size 30: expected 0 (no scenes) or an even side of at least twice the 28x28" \
  pretrain e -s data.fmnist.scene_size=30
expect "data.scenes.scene_size = 56 needs kind = idx" pretrain e -s data.scenes.scene_size=56
expect "data.scenes.heads: 'contrast' is not an enabled pretraining head" pretrain e \
  -s data.scenes.heads=contrast
expect "data.scenes.heads: 'itm' is not an enabled pretraining head" pretrain e -s heads.itm=0 \
  -s data.scenes.heads=itm
expect "no column 'nope' in the header" pretrain e -s data.text.path="$dir/scenes/train/captions.tsv" \
  -s data.text.column=nope
expect "pretrain.mix = 'sizes': expected size, ratio or round_robin" pretrain e -s pretrain.mix=sizes
expect "run.task = 'vqa' is not a task of flava pretrain (tasks: pretrain)" pretrain e -s run.task=vqa
expect "run.task = 'pretrain' is not a task of flava finetune" finetune e
expect "every head this task uses has weight 0" pretrain e -s heads.mim=0 -s heads.mlm=0 \
  -s heads.itm=0 -s heads.global_contrastive=0 -s heads.mmm_image=0 -s heads.mmm_text=0
expect "no checkpoint to resume from" pretrain e --resume

# --check reads the configuration and the settings and stops there: nothing
# is run or written; the errors are those of a run.
run pretrain checked --check > "$dir/out" 2> "$dir/err" || { cat "$dir/err"; fail "--check of a good config"; }
grep -qF "task pretrain of flava pretrain: every section and key is known" "$dir/out" ||
  fail "--check: $(cat "$dir/out")"
[ ! -e "$dir/checked" ] || fail "--check wrote the run directory"
expect "unknown key 'stpes' in [train]; nearest known key: train.steps" pretrain checked --check \
  -s train.stpes=3
expect "run.task = 'vqa' is not a task of flava pretrain" pretrain checked --check -s run.task=vqa
[ ! -e "$dir/checked" ] || fail "a failed --check wrote the run directory"
status=0
"$flava" pretrain -c "$dir/none.cfg" 2> "$dir/err" || status=$?
[ $status -eq 1 ] && grep -qF "none.cfg" "$dir/err" || fail "a missing config file"
"$flava" pretrain 2> "$dir/err" && fail "no -c passed"
grep -qF -- "-c run.cfg is required" "$dir/err" || fail "no -c: message"

# A run directory with checkpoints is not overwritten; resuming checks the seed.
run pretrain ok -s train.steps=2 2> /dev/null || fail "a good run failed"
expect "already holds checkpoints (step 2)" pretrain ok
expect "written with seed 1, the run has seed 2" pretrain ok -s train.steps=3 -s run.seed=2 --resume

# A checkpoint of another shape is refused, naming a tensor.
expect "flava.text_model.embeddings.word_embeddings.weight" pretrain e2 \
  -s model.checkpoint="$dir/ok/checkpoints/final.safetensors" -s model.text_config.vocab_size=400
expect "/nonexistent.safetensors" pretrain e3 -s model.checkpoint=/nonexistent.safetensors

# A loss that overflows stops the run, naming the step and the heads.
expect "the loss is" pretrain nan -s train.lr=1e30 -s train.max_grad_norm=0 -s train.warmup_steps=0
grep -Eq 'step [0-9]+: the loss is (nan|inf|-nan) \((mim|mlm|itm|global_contrastive|mmm_image|mmm_text) = ' "$dir/err" ||
  { cat "$dir/err"; fail "the non-finite loss does not name its step and head"; }
exit 0
