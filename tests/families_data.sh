# families_data.sh - sourced by tests/families.sh and tests/families_sweep.sh:
# 64 generated scenes, their captions as a text corpus and as a WordPiece
# vocabulary (the specials and every caption word, for ALIGN), and
# zeroshot.cfg, one zero-shot evaluation on Fashion-MNIST test items for
# every family (model.checkpoint, zeroshot.tokenizer and run.dir set with -s).
set -eu
flava="$(cd "${FLAVA_BUILDDIR:-.}" && pwd)/flava"
src="$(cd "${FLAVA_SRCDIR:-..}" && pwd)"
fm=/usr/share/datasets/fashion-mnist
[ -f "$fm/t10k-images-idx3-ubyte.gz" ] || { echo "SKIP: no Fashion-MNIST in $fm"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/families.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
fx="$src/tests/fixtures"
spm="$fx/tok/spm_unigram.model"
bpe="$fx/clip_bpe"

"$flava" data scenes --train 64 --test 0 --seed 5 --out "$dir/scenes" > /dev/null
tail -n +2 "$dir/scenes/train/captions.tsv" | cut -f2 > "$dir/texts.txt"
{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n-\n/\n,\n'
  tr 'A-Z' 'a-z' < "$dir/texts.txt" | tr -c 'a-z\n' '\n' | grep . | sort -u; } > "$dir/vocab.txt"
cat > "$dir/zeroshot.cfg" <<CFG
[run]
task = zeroshot
threads = 2
[zeroshot]
classes = $dir/scenes/train/classes.txt
templates = a {} in the top left., a {} in the bottom right.
images = $fm/t10k-images-idx3-ubyte.gz
labels = $fm/t10k-labels-idx1-ubyte.gz
limit = 200
max_text_len = 32
batch_size = 50
CFG
