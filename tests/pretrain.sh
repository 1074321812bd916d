#!/bin/sh
# flava pretrain on tiny data: all five objectives over image-text, image
# and text sources; the loss falls over 30 steps; the run directory holds
# what it should; an idx source as one-item scenes; help config and bench.
set -eu
. "${FLAVA_SRCDIR:-..}/tests/pretrain_data.sh"

run pretrain a 2> "$dir/err" || { cat "$dir/err"; fail "pretrain failed"; }
for f in config.ini log.txt metrics.jsonl results.json kmeans.safetensors \
         checkpoints/step-30.safetensors checkpoints/step-30.optim.safetensors \
         checkpoints/final.safetensors; do
  [ -s "$dir/a/$f" ] || fail "missing $f"
done
[ "$(wc -l < "$dir/a/metrics.jsonl")" -eq 30 ] || fail "expected 30 metrics lines (log_every 1)"
for k in loss lr grad_norm samples_per_s loss_info.mim loss_info.mlm loss_info.itm \
         loss_info.global_contrastive loss_info.mmm_image loss_info.mmm_text; do
  grep -q "\"$k\": " "$dir/a/metrics.jsonl" || fail "metrics.jsonl has no $k"
done
# Round robin over three sources: steps 1-6 and 25-30 each see every source
# twice; the loss must fall by at least 5%.
awk -F'"loss": ' '{ split($2, a, ","); l[NR] = a[1] }
  END { for (i = 1; i <= 6; i++) { s += l[i]; e += l[24 + i] }
        printf "first six steps %.3f, last six %.3f\n", s, e; exit !(e < 0.95 * s) }' \
  "$dir/a/metrics.jsonl" || fail "the loss did not fall"
grep -q '"metric":	"loss"' "$dir/a/results.json" || fail "results.json names no metric"
grep -q '"dataset":	"scenes+fmnist+text"' "$dir/a/results.json" || fail "results.json dataset"
grep -q 'k-means MIM codebook: 32 centroids' "$dir/a/log.txt" || fail "no k-means fit logged"

# The resolved config.ini runs again as it is (a fresh directory).
"$flava" pretrain -c "$dir/a/config.ini" -s run.dir="$dir/again" -s train.steps=2 2> "$dir/err" ||
  { cat "$dir/err"; fail "config.ini does not load back"; }
head -1 "$dir/again/metrics.jsonl" | sed 's/, "samples_per_s": [^,}]*//' > "$dir/again1"
head -1 "$dir/a/metrics.jsonl" | sed 's/, "samples_per_s": [^,}]*//; s/"lr": [^,]*/"lr": 0/' > "$dir/a1"
sed -i 's/"lr": [^,]*/"lr": 0/' "$dir/again1"
cmp -s "$dir/a1" "$dir/again1" || fail "the same config gave another first step"

# The idx source's items as one-item 56-px scenes (round robin: step 1 reads
# the image-text scenes, step 2 the items): step 1's contrastive loss as
# before (its MIM targets change with the k-means codebook, which is fitted
# on every source's images), step 2's loss another.
"$flava" pretrain -c "$dir/a/config.ini" -s run.dir="$dir/sc" -s train.steps=2 \
  -s data.fmnist.scene_size=56 2> "$dir/err" || { cat "$dir/err"; fail "pretraining on one-item scenes"; }
grep -q '\[data.fmnist\]: 512 items as one-item 56x56 scenes' "$dir/sc/log.txt" ||
  fail "no one-item scenes logged"
losses "$dir/sc" > "$dir/sc.l"
losses "$dir/again" > "$dir/again.l"
contrastive() { sed -n 1p "$1" | grep -o '"loss_info.global_contrastive": [^,}]*'; }
[ -n "$(contrastive "$dir/sc.l")" ] && [ "$(contrastive "$dir/sc.l")" = "$(contrastive "$dir/again.l")" ] ||
  fail "scene_size changed the image-text batch of step 1"
[ "$(sed -n 2p "$dir/sc.l")" != "$(sed -n 2p "$dir/again.l")" ] || fail "scene_size had no effect"

# Per-source objectives: the image-text source feeding the contrastive loss
# alone (step 1 of the round robin) runs no ITM, MMM or masked pass and draws
# no ITM negatives, so its loss is that of a run with every other head off;
# the other sources keep theirs.
run pretrain ph -s data.scenes.heads=global_contrastive -s train.steps=3 2> "$dir/err" ||
  { cat "$dir/err"; fail "per-source heads"; }
losses "$dir/ph" > "$dir/ph.l"
sed -n 1p "$dir/ph.l" | grep -Eq 'loss_info\.(itm|mmm_image|mmm_text|mim|mlm)' &&
  fail "the contrastive-only source ran other heads"
sed -n 2,3p "$dir/ph.l" | grep -q 'loss_info.mim' || fail "the image source lost its MIM"
run pretrain c1 -s heads.mim=0 -s heads.mlm=0 -s heads.itm=0 -s heads.mmm_image=0 \
  -s heads.mmm_text=0 -s train.steps=1 2> "$dir/err" || { cat "$dir/err"; fail "contrastive-only run"; }
[ -n "$(contrastive "$dir/ph.l")" ] &&
  [ "$(contrastive "$dir/ph.l")" = "$(losses "$dir/c1" | contrastive /dev/stdin)" ] ||
  fail "a contrastive-only source's step differs from a contrastive-only run's"
grep -q '^heads = global_contrastive$' "$dir/ph/config.ini" || fail "config.ini lacks the source's heads"
# k-means reads the images that get MIM targets: here the image source's only
grep -q 'k-means MIM codebook: 32 centroids on .* of 64 images (fmnist) in' "$dir/ph/log.txt" ||
  fail "k-means read a source without MIM: $(grep k-means "$dir/ph/log.txt")"
grep -q 'of 64 images (scenes, fmnist) in' "$dir/a/log.txt" || fail "k-means sources of run a"

# Starting from the trained weights ([model] checkpoint): the first step's
# loss is the trained model's, below the fresh model's.
run pretrain warm -s model.checkpoint="$dir/a/checkpoints/final.safetensors" -s train.steps=1 \
  2> /dev/null || fail "pretraining from a checkpoint"
awk -F'"loss": ' 'FNR == 1 { split($2, a, ","); l[++n] = a[1] }
  END { printf "first step: fresh %.3f, from the checkpoint %.3f\n", l[1], l[2]; exit !(l[2] < l[1] - 0.5) }' "$dir/a/metrics.jsonl" "$dir/warm/metrics.jsonl" ||
  fail "the checkpoint's weights were not loaded"

# Sin-cos image positions (train.image_position_init) start a fresh model
# elsewhere, but leave a checkpoint's own positions alone.
first_loss() { sed -n 1p "$1/metrics.jsonl" | grep -o '"loss": [^,]*'; }
run pretrain sincos -s train.image_position_init=sincos -s train.steps=1 2> "$dir/err" ||
  { cat "$dir/err"; fail "sin-cos positions"; }
[ -n "$(first_loss "$dir/sincos")" ] && [ "$(first_loss "$dir/sincos")" != "$(first_loss "$dir/a")" ] ||
  fail "sin-cos positions did not change the first step"
run pretrain warm-sincos -s model.checkpoint="$dir/a/checkpoints/final.safetensors" -s train.steps=1 \
  -s train.image_position_init=sincos 2> /dev/null || fail "sin-cos positions from a checkpoint"
[ "$(first_loss "$dir/warm-sincos")" = "$(first_loss "$dir/warm")" ] ||
  fail "sin-cos positions overwrote the checkpoint's"

# Only MLM on text alone: one head, one source.
run pretrain mlm -s heads.mim=0 -s heads.itm=0 -s heads.global_contrastive=0 \
  -s heads.mmm_image=0 -s heads.mmm_text=0 -s train.steps=3 2> /dev/null || fail "MLM-only run"
grep -q 'loss_info.mim' "$dir/mlm/metrics.jsonl" && fail "a disabled head ran"
grep -q 'loss_info.mlm' "$dir/mlm/metrics.jsonl" || fail "MLM did not run"

# A text source read from a TSV column (the captions), mixed by size.
run pretrain col -s data.text.path="$dir/scenes/train/captions.tsv" -s data.text.column=title \
  -s pretrain.mix=size -s train.steps=2 2> /dev/null || fail "a text source from a TSV column"

# help config lists every key, the templates included.
"$flava" help config > "$dir/help"
for k in '\[run\]' '\[model\]' '\[train\]' '\[heads\]' '\[pretrain\]' '\[data\.\*\]' \
         'checkpoint =' 'grad_accum = 1' 'mix = size' 'kind = (required)' 'global_contrastive = 1' \
         'stop_after = 0'; do
  grep -q "$k" "$dir/help" || fail "help config lacks $k"
done
"$flava" help nothing 2> /dev/null && fail "help with an unknown topic succeeded"

# bench: a timing line with samples/s and GFLOP/s.
run bench x --steps 2 > "$dir/bench" 2> /dev/null || fail "bench failed"
grep -Eq 'samples/s, [0-9.]+ GFLOP/s' "$dir/bench" || fail "bench printed no rate"
exit 0
