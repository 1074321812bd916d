# Sourced by the pretraining shell tests: a scratch folder with 64 scenes,
# their captions as a text corpus, and `run` = flava pretrain of the tiny
# config (configs/tiny-pretrain.cfg) on them.
flava="${FLAVA_BUILDDIR:-.}/flava"
src="${FLAVA_SRCDIR:-..}"
dir=$(mktemp -d "${TMPDIR:-/tmp}/pretrain.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
"$flava" data scenes --train 64 --test 0 --seed 5 --out "$dir/scenes" > /dev/null
tail -n +2 "$dir/scenes/train/captions.tsv" | cut -f2 > "$dir/texts.txt"
cfg="$src/configs/tiny-pretrain.cfg"
launch=  # `exec` makes a background run's pid flava's own
run() { # run COMMAND RUN_DIR [ARGS...]
  cmd=$1 rd=$2
  shift 2
  $launch "$flava" "$cmd" -c "$cfg" -s run.dir="$dir/$rd" -s data.scenes.path="$dir/scenes/train/captions.tsv" \
    -s data.text.path="$dir/texts.txt" -s pretrain.tokenizer="$src/tests/fixtures/tok/spm_unigram.model" "$@"
}
# The metrics lines without the timing, one per step, for comparing runs.
losses() { sed 's/, "samples_per_s": [^,}]*//' "$1/metrics.jsonl"; }
