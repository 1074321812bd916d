#!/bin/sh
# flava sweep over the three families: each pretrains on the same tiny
# scenes (FLAVA with all its objectives, CLIP and ALIGN contrastively) and
# is evaluated zero-shot by one eval config; the table holds the six runs
# side by side.
. "${FLAVA_SRCDIR:-..}/tests/families_data.sh"
data="data.scenes.path=$dir/scenes/train/captions.tsv"
cat > "$dir/sweep.cfg" <<CFG
[sweep]
out = out
parallel = 1
threads = 1

[run.flava]
command = pretrain
config = $src/configs/tiny-pretrain.cfg
set = $data, data.text.path=$dir/texts.txt, pretrain.tokenizer=$spm

[run.clip]
command = pretrain
config = $src/configs/tiny-clip.cfg
set = $data, pretrain.tokenizer=$bpe

[run.align]
command = pretrain
config = $src/configs/tiny-align.cfg
set = $data, pretrain.tokenizer=$dir/vocab.txt

[run.flava-zeroshot]
command = eval
config = $dir/zeroshot.cfg
set = model.checkpoint=$dir/out/flava/checkpoints/final.safetensors, zeroshot.tokenizer=$spm

[run.clip-zeroshot]
command = eval
config = $dir/zeroshot.cfg
set = model.checkpoint=$dir/out/clip/checkpoints/final.safetensors, zeroshot.tokenizer=$bpe

[run.align-zeroshot]
command = eval
config = $dir/zeroshot.cfg
set = model.checkpoint=$dir/out/align/checkpoints/final.safetensors, zeroshot.tokenizer=$dir/vocab.txt
CFG
"$flava" sweep -c "$dir/sweep.cfg" > "$dir/table.txt" 2> "$dir/err" ||
  { cat "$dir/err" "$dir/table.txt"; for f in "$dir"/out/*/output.log; do tail -3 "$f"; done; fail "the sweep failed"; }
cat "$dir/out/results.md"
for fam in flava clip align; do
  grep -q "^| $fam .*| pretrain .*| loss " "$dir/out/results.md" || fail "no $fam pretraining row"
  grep -q "^| $fam-zeroshot .*| zeroshot .*| accuracy " "$dir/out/results.md" ||
    fail "no $fam zero-shot row"
done
[ "$(grep -c '| ok ' "$dir/out/results.md")" -eq 6 ] || fail "not six complete runs"
# sweep.threads reaches each run over its config's own threads = 2
grep -q '^threads = 1$' "$dir/out/clip/config.ini" || fail "the run did not take sweep.threads = 1"
