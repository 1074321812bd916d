#!/bin/sh
# The eval tasks end to end on tiny data with the tiny random checkpoint:
# zero-shot, retrieval, linear probe (both also on one-item scenes); their
# numbers in range and ordered; the error paths (missing class file, no
# checkpoint, bad options).
# One thread: on a loaded machine OpenMP barriers of tiny problems cost
# seconds each (the numbers do not depend on it).
. "${FLAVA_SRCDIR:-..}/tests/evaltasks_common.sh"

make_idx train "$out/tr"
make_idx t10k "$out/te"
"$flava" data scenes --train 4 --test 12 --seed 5 --out "$out/scenes" > /dev/null
# class names the test vocabulary knows, so the prompts differ
printf 'hello\nworld\ncafe\nnaive\nuber\nplay\nresume\nx\ndon\nstra\n' > "$out/classes.txt"

cat > "$out/zs.cfg" <<CFG
[run]
task = zeroshot
dir = $out/zs
threads = 1
[model]
checkpoint = $ckpt
[zeroshot]
tokenizer = $vocab
classes = $out/classes.txt
templates = {} in the top left., a photo of {}.
images = $out/te-images.idx
labels = $out/te-labels.idx
max_text_len = 16
batch_size = 24
CFG
"$flava" eval -c "$out/zs.cfg" 2> /dev/null
acc=$(num "$out/zs" accuracy); top5=$(num "$out/zs" top5_accuracy)
check 'a >= 0 && a <= b && b <= 1' "$acc" "$top5"
[ "$(num "$out/zs" value)" = "$acc" ] || fail "zeroshot value is not its accuracy"
[ "$(num "$out/zs" images)" = 64 ] || fail "zeroshot images"
grep -q '"metric":[[:space:]]*"accuracy"' "$out/zs/results.json" || fail "zeroshot metric"
# limit; the same model and data give the same numbers
"$flava" eval -c "$out/zs.cfg" -s run.dir="$out/zs2" -s zeroshot.limit=10 2> /dev/null
[ "$(num "$out/zs2" images)" = 10 ] || fail "zeroshot.limit"
"$flava" eval -c "$out/zs.cfg" -s run.dir="$out/zs3" 2> /dev/null
[ "$(num "$out/zs3" top5_accuracy)" = "$top5" ] || fail "zeroshot not reproducible"

# One-item scenes: the test items drawn into the top right cell of a 56-px
# scene (28 -> 28 px: a copy) score exactly as the same scenes composed here.
# top_right_scenes IN OUT: the 64 items of IDX file IN so composed.
top_right_scenes() {
  printf '\000\000\010\003\000\000\000\100\000\000\000\070\000\000\000\070' > "$2"
  tail -c +17 "$1" | od -An -v -tu1 -w784 | LC_ALL=C awk '{
    for (y = 0; y < 56; y++) for (x = 0; x < 56; x++)
      printf "%c", (y < 28 && x >= 28) ? $(1 + y * 28 + x - 28) : 0 }' >> "$2"
  [ "$(wc -c < "$2")" = $((16 + 64 * 56 * 56)) ] || fail "scene IDX size"
}
top_right_scenes "$out/te-images.idx" "$out/sc1-images.idx"
"$flava" eval -c "$out/zs.cfg" -s run.dir="$out/zsa" -s zeroshot.scene_size=56 \
  -s "zeroshot.scene_cells=top right" 2> /dev/null
"$flava" eval -c "$out/zs.cfg" -s run.dir="$out/zsb" -s zeroshot.images="$out/sc1-images.idx" \
  2> /dev/null
for k in accuracy top5_accuracy; do
  [ "$(num "$out/zsa" $k)" = "$(num "$out/zsb" $k)" ] || fail "zeroshot.scene_size: $k differs"
done
"$flava" eval -c "$out/zs.cfg" -s run.dir="$out/zsc" -s zeroshot.scene_size=56 \
  -s "zeroshot.scene_cells=top left, bottom right" 2> /dev/null
[ "$(num "$out/zsc" images)" = 64 ] || fail "zeroshot over two cells: images"
check 'a >= 0 && a <= b && b <= 1' "$(num "$out/zsc" accuracy)" "$(num "$out/zsc" top5_accuracy)"

cat > "$out/rt.cfg" <<CFG
[run]
task = retrieval
dir = $out/rt
threads = 1
[model]
checkpoint = $ckpt
[retrieval]
tokenizer = $vocab
captions = $out/scenes/test/captions.tsv
max_text_len = 16
batch_size = 5
CFG
"$flava" eval -c "$out/rt.cfg" 2> /dev/null
for way in i2t t2i; do
  check 'a >= 0 && a <= b && b <= c && c <= 1' "$(num "$out/rt" ${way}_r1)" \
    "$(num "$out/rt" ${way}_r5)" "$(num "$out/rt" ${way}_r10)"
done
check 'a == (b + c) / 2' "$(num "$out/rt" r1_mean)" "$(num "$out/rt" i2t_r1)" "$(num "$out/rt" t2i_r1)"
[ "$(num "$out/rt" images)" = 12 ] || fail "retrieval images"
# a caption repeated for the same image: 12 images, 24 texts
{ cat "$out/scenes/test/captions.tsv"; tail -n +2 "$out/scenes/test/captions.tsv"; } > "$out/scenes/test/twice.tsv"
"$flava" eval -c "$out/rt.cfg" -s run.dir="$out/rt2" -s retrieval.captions="$out/scenes/test/twice.tsv" 2> /dev/null
[ "$(num "$out/rt2" images)" = 12 ] && [ "$(num "$out/rt2" texts)" = 24 ] || fail "retrieval grouping"

cat > "$out/lp.cfg" <<CFG
[run]
task = linprobe
dir = $out/lp
threads = 1
[model]
checkpoint = $ckpt
[linprobe]
images = $out/tr-images.idx
labels = $out/tr-labels.idx
test_images = $out/te-images.idx
test_labels = $out/te-labels.idx
c_min = 0.01
c_max = 1
c_steps = 3
batch_size = 32
CFG
"$flava" eval -c "$out/lp.cfg" 2> /dev/null
check 'a >= 0 && a <= 1' "$(num "$out/lp" accuracy)"
c=$(num "$out/lp" C)
check 'a == 0.01 || a == 0.1 || a == 1' "$c"
[ "$(num "$out/lp" train_images)" = 64 ] || fail "linprobe train images"
"$flava" eval -c "$out/lp.cfg" -s run.dir="$out/lp2" -s linprobe.feature=pooled 2> /dev/null
check 'a >= 0 && a <= 1' "$(num "$out/lp2" accuracy)"
"$flava" eval -c "$out/lp.cfg" -s run.dir="$out/lp3" -s linprobe.feature=mean 2> /dev/null
check 'a >= 0 && a <= 1' "$(num "$out/lp3" accuracy)"
# The probe on one-item scenes (train and test items in the top right cell)
# gives what it gives on the scenes composed here; a cell listed twice
# averages equal features; two cells run.
top_right_scenes "$out/tr-images.idx" "$out/sc1-train.idx"
"$flava" eval -c "$out/lp.cfg" -s run.dir="$out/lpa" -s linprobe.scene_size=56 \
  -s "linprobe.scene_cells=top right" 2> /dev/null
"$flava" eval -c "$out/lp.cfg" -s run.dir="$out/lpb" -s linprobe.images="$out/sc1-train.idx" \
  -s linprobe.test_images="$out/sc1-images.idx" 2> /dev/null
"$flava" eval -c "$out/lp.cfg" -s run.dir="$out/lpc" -s linprobe.scene_size=56 \
  -s "linprobe.scene_cells=top right, top right" 2> /dev/null
check 'a >= 0 && a <= 1' "$(num "$out/lpa" accuracy)"
for k in accuracy C holdout_accuracy; do
  [ "$(num "$out/lpa" $k)" = "$(num "$out/lpb" $k)" ] || fail "linprobe.scene_size: $k differs"
  [ "$(num "$out/lpc" $k)" = "$(num "$out/lpa" $k)" ] || fail "linprobe over a cell twice: $k differs"
done
"$flava" eval -c "$out/lp.cfg" -s run.dir="$out/lpd" -s linprobe.scene_size=56 \
  -s "linprobe.scene_cells=top left, bottom right" 2> /dev/null
check 'a >= 0 && a <= 1' "$(num "$out/lpd" accuracy)"
[ "$(num "$out/lpd" train_images)" = 64 ] && [ "$(num "$out/lpd" test_images)" = 64 ] ||
  fail "linprobe over two cells: images"

# the example configs run as written, on tiny overrides (relative paths
# resolve in the run's directory, where the scenes are)
cfgs="$src/configs"
(
  cd "$out"
  "$flava" eval -c "$cfgs/zeroshot-fashion-mnist.cfg" -s run.dir="$out/c1" -s run.threads=1 \
    -s model.checkpoint="$ckpt" -s zeroshot.tokenizer="$vocab" -s zeroshot.limit=8 \
    -s zeroshot.max_text_len=16 -s zeroshot.classes="$cfgs/fashion-mnist-phrases.txt" 2> /dev/null
  "$flava" eval -c "$cfgs/retrieval-scenes.cfg" -s run.dir="$out/c2" -s run.threads=1 \
    -s model.checkpoint="$ckpt" -s retrieval.tokenizer="$vocab" -s retrieval.max_text_len=16 2> /dev/null
  "$flava" eval -c "$cfgs/linprobe-fashion-mnist.cfg" -s run.dir="$out/c3" -s run.threads=1 \
    -s model.checkpoint="$ckpt" -s linprobe.train_limit=40 -s linprobe.test_limit=8 2> /dev/null
) || fail "an example config failed"
for r in c1 c2 c3; do [ -s "$out/$r/results.json" ] || fail "example config: no $r/results.json"; done

# errors
expect_error "cannot open $out/none.txt" eval -c "$out/zs.cfg" -s run.dir="$out/e1" \
  -s zeroshot.classes="$out/none.txt"
expect_error "exactly one {}" eval -c "$out/zs.cfg" -s run.dir="$out/e2" -s zeroshot.templates=photo
expect_error "set model.checkpoint" eval -c "$out/zs.cfg" -s run.dir="$out/e3" -s model.checkpoint=
expect_error "names 3 classes" eval -c "$out/zs.cfg" -s run.dir="$out/e4" \
  -s zeroshot.classes="$src/tests/fixtures/glue/sst2/dev.tsv"
expect_error "scene_cells: 'middle'" eval -c "$out/zs.cfg" -s run.dir="$out/e8" \
  -s zeroshot.scene_size=56 -s zeroshot.scene_cells=middle
expect_error "scene_size 30" eval -c "$out/zs.cfg" -s run.dir="$out/e9" -s zeroshot.scene_size=30
expect_error "linprobe.scene_cells: 'middle'" eval -c "$out/lp.cfg" -s run.dir="$out/e10" \
  -s linprobe.scene_size=56 -s linprobe.scene_cells=middle
expect_error "linprobe.scene_size 57" eval -c "$out/lp.cfg" -s run.dir="$out/e11" \
  -s linprobe.scene_size=57
expect_error "expected cls, pooled or mean" eval -c "$out/lp.cfg" -s run.dir="$out/e5" -s linprobe.feature=max
expect_error "too few to choose C" eval -c "$out/lp.cfg" -s run.dir="$out/e6" -s linprobe.train_limit=2
expect_error "no column 'caption'" eval -c "$out/rt.cfg" -s run.dir="$out/e7" -s retrieval.caption_key=caption
echo "eval tasks: OK"
