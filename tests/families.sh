#!/bin/sh
# CLIP and ALIGN beside FLAVA: a tiny CLIP and a tiny ALIGN pretrain
# contrastively on generated scenes through `flava pretrain` (the loss
# falls), are evaluated zero-shot, by retrieval and by a linear probe with
# the same `flava eval` configs as FLAVA's, resume, and `flava forward`
# reproduces the PyTorch fixtures of both families.
. "${FLAVA_SRCDIR:-..}/tests/families_data.sh"

# mean loss of the first and the last five steps of RUN; the second must be
# below `ratio` times the first
falls() {
  awk -F'"loss": ' -v r="$2" '{ split($2, a, ","); l[NR] = a[1] }
    END { for (i = 1; i <= 5; i++) { s += l[i]; e += l[NR - 5 + i] }
          printf "%s: first five steps %.3f, last five %.3f\n", FILENAME, s / 5, e / 5
          exit !(e < r * s) }' "$1/metrics.jsonl"
}

for fam in clip align; do
  tok="$bpe"
  [ $fam = align ] && tok="$dir/vocab.txt"
  "$flava" pretrain -c "$src/configs/tiny-$fam.cfg" -s run.dir="$dir/$fam" \
    -s data.scenes.path="$dir/scenes/train/captions.tsv" -s pretrain.tokenizer="$tok" \
    2> "$dir/err" || { cat "$dir/err"; fail "$fam pretraining"; }
  grep -q "pretrain: $fam," "$dir/$fam/log.txt" || fail "$fam: the log names no family"
  grep -q '"loss_info.global_contrastive": ' "$dir/$fam/metrics.jsonl" ||
    fail "$fam: no contrastive loss in metrics.jsonl"
  grep -q '"loss_info.mlm"' "$dir/$fam/metrics.jsonl" && fail "$fam: a FLAVA head ran"
  falls "$dir/$fam" 0.9 || fail "$fam: the loss did not fall"
  "$flava" info "$dir/$fam/checkpoints/final.safetensors" | grep -q "^family: $fam$" ||
    fail "$fam: flava info does not name the family"

  # zero-shot by the same eval config as FLAVA's; the family comes from
  # the checkpoint
  "$flava" eval -c "$dir/zeroshot.cfg" -s run.dir="$dir/zs-$fam" -s zeroshot.tokenizer="$tok" \
    -s model.checkpoint="$dir/$fam/checkpoints/final.safetensors" 2> "$dir/err" ||
    { cat "$dir/err"; fail "$fam zero-shot"; }
  grep -o '"accuracy":[[:space:]]*[0-9.e-]*' "$dir/zs-$fam/results.json" | sed "s/^/$fam zero-shot /"
  grep -q '"images":[[:space:]]*200' "$dir/zs-$fam/results.json" || fail "$fam zero-shot images"
done
# CLIP learns the class words from the scenes: above chance (0.1)
awk -v a="$(grep -o '"accuracy":[[:space:]]*[0-9.e-]*' "$dir/zs-clip/results.json" |
  sed 's/.*:[[:space:]]*//')" 'BEGIN { exit !(a > 0.12) }' || fail "CLIP zero-shot at chance"

# retrieval on the training scenes and a linear probe on Fashion-MNIST
# items, each family's checkpoint by the same two configs
cat > "$dir/rt.cfg" <<CFG
[run]
task = retrieval
threads = 2
[retrieval]
captions = $dir/scenes/train/captions.tsv
max_text_len = 32
batch_size = 16
CFG
cat > "$dir/lp.cfg" <<CFG
[run]
task = linprobe
threads = 2
[linprobe]
images = $fm/t10k-images-idx3-ubyte.gz
labels = $fm/t10k-labels-idx1-ubyte.gz
test_images = $fm/train-images-idx3-ubyte.gz
test_labels = $fm/train-labels-idx1-ubyte.gz
train_limit = 128
test_limit = 128
feature = pooled
c_min = 0.1
c_max = 1
c_steps = 2
batch_size = 64
CFG
for fam in clip align; do
  tok="$bpe"
  [ $fam = align ] && tok="$dir/vocab.txt"
  ck="$dir/$fam/checkpoints/final.safetensors"
  "$flava" eval -c "$dir/rt.cfg" -s run.dir="$dir/rt-$fam" -s model.checkpoint="$ck" \
    -s retrieval.tokenizer="$tok" 2> "$dir/err" || { cat "$dir/err"; fail "$fam retrieval"; }
  grep -o '"i2t_r5":[[:space:]]*[0-9.e-]*' "$dir/rt-$fam/results.json" | sed "s/^/$fam retrieval /"
  "$flava" eval -c "$dir/lp.cfg" -s run.dir="$dir/lp-$fam" -s model.checkpoint="$ck" \
    2> "$dir/err" || { cat "$dir/err"; fail "$fam linear probe"; }
  grep -o '"accuracy":[[:space:]]*[0-9.e-]*' "$dir/lp-$fam/results.json" | sed "s/^/$fam linear probe /"
done
# ALIGN's EfficientNet has no CLS state to probe
if "$flava" eval -c "$dir/lp.cfg" -s run.dir="$dir/lp-x" -s linprobe.feature=cls \
   -s model.checkpoint="$dir/align/checkpoints/final.safetensors" 2> "$dir/err"; then
  fail "an ALIGN CLS probe ran"; fi
grep -q "no CLS state" "$dir/err" || fail "ALIGN CLS message: $(cat "$dir/err")"

# resume: a CLIP run stopped after step 12 and resumed ends where the
# straight one did (the logit_scale clamp and the optimizer state included)
run_clip() {
  rd=$1
  shift
  "$flava" pretrain -c "$src/configs/tiny-clip.cfg" -s run.dir="$dir/$rd" -s train.steps=24 \
    -s data.scenes.path="$dir/scenes/train/captions.tsv" -s pretrain.tokenizer="$bpe" "$@"
}
run_clip r1 -s train.stop_after=12 2> /dev/null || fail "CLIP stop_after"
run_clip r1 --resume 2> /dev/null || fail "CLIP --resume"
run_clip r2 2> /dev/null || fail "CLIP straight run"
for r in r1 r2; do
  sed 's/, "samples_per_s": [^,}]*//' "$dir/$r/metrics.jsonl" | tail -1 > "$dir/$r.last"
done
cmp -s "$dir/r1.last" "$dir/r2.last" || fail "the resumed CLIP run differs: $(cat "$dir/r1.last" "$dir/r2.last")"

# a family the checkpoint is not; an unknown family; a misspelt key
zs_clip() { "$flava" eval -c "$dir/zeroshot.cfg" -s run.dir="$dir/zs-x" -s zeroshot.tokenizer="$bpe" \
  -s model.checkpoint="$dir/clip/checkpoints/final.safetensors" "$@"; }
if zs_clip -s model.family=align 2> "$dir/err"; then
  fail "a CLIP checkpoint ran as ALIGN"; fi
grep -q "is a clip model" "$dir/err" || fail "mismatch message: $(cat "$dir/err")"
if zs_clip -s model.family=bert 2> "$dir/err"; then
  fail "an unknown family ran"; fi
grep -q "expected flava, clip or align" "$dir/err" || fail "unknown family message: $(cat "$dir/err")"
if "$flava" pretrain -c "$src/configs/tiny-clip.cfg" -s run.dir="$dir/bad2" \
   -s model.text_config.hiden_size=8 2> "$dir/err"; then fail "a misspelt CLIP key ran"; fi
grep -q "model.text_config.hiden_size is not a field of the CLIP config" "$dir/err" ||
  fail "misspelt key message: $(cat "$dir/err")"
if "$flava" pretrain -c "$src/configs/tiny-clip.cfg" -s run.dir="$dir/bad3" \
   -s train.image_position_init=sincos 2> "$dir/err"; then fail "sin-cos positions ran on CLIP"; fi
grep -q "train.image_position_init = sincos: FLAVA models only, this is clip" "$dir/err" ||
  fail "sin-cos on CLIP message: $(cat "$dir/err")"

# flava forward on the PyTorch fixtures of both families
for v in quick_gelu gelu; do
  "$flava" forward --model "$fx/clip_tiny_${v}_model.safetensors" \
    --inputs "$fx/clip_tiny_${v}_io.safetensors" --out "$dir/o.safetensors" --grads \
    --compare "$fx/clip_tiny_${v}_io.safetensors" || fail "CLIP ($v) forward"
done
"$flava" forward --model "$fx/align_tiny_model.safetensors" --inputs "$fx/align_tiny_inputs.safetensors" \
  --out "$dir/o.safetensors" --compare "$fx/align_tiny_eval.safetensors" || fail "ALIGN forward"
if "$flava" forward --model "$fx/clip_tiny_gelu_model.safetensors" --inputs "$fx/clip_tiny_gelu_io.safetensors" \
   --out "$dir/o.safetensors" --compare "$fx/clip_tiny_quick_gelu_io.safetensors" 2> "$dir/err"; then
  fail "the wrong CLIP reference matched"; fi
grep -q "relative error" "$dir/err" || fail "no comparison error: $(cat "$dir/err")"
echo "families: ok"
