#!/bin/sh
# flava sweep over the three families: each pretrains on the same tiny
# scenes (FLAVA with all its objectives, CLIP and ALIGN contrastively) and
# is evaluated zero-shot by one eval config; the table holds the six runs
# side by side.
set -eu
flava="$(cd "${FLAVA_BUILDDIR:-.}" && pwd)/flava"
src="$(cd "${FLAVA_SRCDIR:-..}" && pwd)"
fm=/usr/share/datasets/fashion-mnist
[ -f "$fm/t10k-images-idx3-ubyte.gz" ] || { echo "SKIP: no Fashion-MNIST in $fm"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/families_sweep.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$flava" data scenes --train 64 --test 0 --seed 5 --out "$dir/scenes" > /dev/null
tail -n +2 "$dir/scenes/train/captions.tsv" | cut -f2 > "$dir/texts.txt"
{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n-\n/\n,\n'
  tr 'A-Z' 'a-z' < "$dir/texts.txt" | tr -c 'a-z\n' '\n' | grep . | sort -u; } > "$dir/vocab.txt"
spm="$src/tests/fixtures/tok/spm_unigram.model"
bpe="$src/tests/fixtures/clip_bpe"
cat > "$dir/zeroshot.cfg" <<CFG
[run]
task = zeroshot
threads = 1
[zeroshot]
classes = $dir/scenes/train/classes.txt
templates = a {} in the top left., a {} in the bottom right.
images = $fm/t10k-images-idx3-ubyte.gz
labels = $fm/t10k-labels-idx1-ubyte.gz
limit = 200
max_text_len = 24
batch_size = 50
CFG
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
config = zeroshot.cfg
set = model.checkpoint=$dir/out/flava/checkpoints/final.safetensors, zeroshot.tokenizer=$spm

[run.clip-zeroshot]
command = eval
config = zeroshot.cfg
set = model.checkpoint=$dir/out/clip/checkpoints/final.safetensors, zeroshot.tokenizer=$bpe

[run.align-zeroshot]
command = eval
config = zeroshot.cfg
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
