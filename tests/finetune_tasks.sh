#!/bin/sh
# The fine-tune tasks end to end on tiny data from the tiny random
# checkpoint (new heads initialised fresh): VQA on scenes (per answer type,
# the prior baseline, predictions.json), a GLUE-layout
# spam-like corpus (F1), STS-B (regression), image classification; losses
# fall, learnable data is learnt, `flava eval` of the fine-tuned checkpoint
# reproduces the fine-tuning run's final evaluation; the error paths
# (checkpoint without the head, bad split, unknown metric). One thread, as
# in eval_tasks.sh.
. "${FLAVA_SRCDIR:-..}/tests/evaltasks_common.sh"

"$flava" data scenes --train 24 --test 12 --seed 5 --out "$out/scenes" > /dev/null
make_idx train "$out/tr"
make_idx t10k "$out/te"

vqa_cfg "$out/vqa.cfg" "$out/vqa" 6
"$flava" finetune -c "$out/vqa.cfg" 2> /dev/null
acc=$(num "$out/vqa" vqa_accuracy)
check 'a >= 0 && a <= 1' "$acc"
check 'a > b' $(losses "$out/vqa")
[ "$(num "$out/vqa" questions)" = 36 ] || fail "vqa questions"
[ -s "$out/vqa/answers.txt" ] || fail "no answers.txt"
grep -qx 'nothing' "$out/vqa/answers.txt" || fail "answers.txt lacks a scene answer"
"$flava" eval -c "$out/vqa.cfg" -s run.dir="$out/vqa-eval" \
  -s model.checkpoint="$out/vqa/checkpoints/final.safetensors" \
  -s vqa.answers="$out/vqa/answers.txt" 2> /dev/null
[ "$(num "$out/vqa-eval" vqa_accuracy)" = "$acc" ] || fail "vqa eval differs from the fine-tuning run"
# per answer type (the scenes ask one question of each type per image), the
# prior baseline, predictions.json in the official results format
for t in number other yes_no; do
  [ "$(num "$out/vqa" questions_$t)" = 12 ] || fail "vqa: questions_$t is not 12"
  check 'a >= 0 && a <= 1' "$(num "$out/vqa" vqa_accuracy_$t)"
  [ "$(num "$out/vqa-eval" vqa_accuracy_$t)" = "$(num "$out/vqa" vqa_accuracy_$t)" ] ||
    fail "vqa eval: vqa_accuracy_$t differs from the fine-tuning run"
done
check 'a + b + c == 36' "$(num "$out/vqa" questions_number)" "$(num "$out/vqa" questions_other)" \
  "$(num "$out/vqa" questions_yes_no)"
check 'a >= 0 && a <= 1' "$(num "$out/vqa" prior_accuracy)"
[ "$(num "$out/vqa-eval" prior_accuracy)" = "$(num "$out/vqa" prior_accuracy)" ] ||
  fail "vqa eval: prior_accuracy differs from the fine-tuning run"
grep -q "vqa: accuracy .*; number .* (12), other .* (12), yes/no .* (12); question-type prior" \
  "$out/vqa/log.txt" || fail "vqa: no per-type line in the log"
cmp -s "$out/vqa/predictions.json" "$out/vqa-eval/predictions.json" ||
  fail "vqa eval: predictions.json differs from the fine-tuning run's"
[ "$(grep -o '"question_id":' "$out/vqa/predictions.json" | wc -l)" = 36 ] ||
  fail "vqa: predictions.json does not hold 36 answers"
[ ! -e "$out/vqa/predictions.json.tmp" ] || fail "vqa: predictions.json.tmp left behind"
# the figures again from predictions.json and the scene files, where Python is at hand (the
# scenes' ten answers agree and are in normal form, so a question scores 1 or 0)
if command -v python3 > /dev/null; then
  python3 - "$out/scenes" "$out/vqa" <<'PY' || fail "vqa: results.json disagrees with predictions.json"
import collections, json, sys
scenes, run = sys.argv[1:]
pred = json.load(open(run + "/predictions.json"))
ann = {a["question_id"]: a for a in json.load(open(scenes + "/test/annotations.json"))["annotations"]}
train = json.load(open(scenes + "/train/annotations.json"))["annotations"]
assert sorted(p["question_id"] for p in pred) == sorted(ann) and len(pred) == 36
by_qtype = collections.defaultdict(collections.Counter)
for a in train:
    by_qtype[a["question_type"]][a["multiple_choice_answer"]] += 1
prior = {t: min(c, key=lambda x: (-c[x], x)) for t, c in by_qtype.items()}
got = json.load(open(run + "/results.json"))["metrics"]
hits, counts, prior_hits = collections.Counter(), collections.Counter(), 0
for p in pred:
    a = ann[p["question_id"]]
    key = a["answer_type"].replace("/", "_")
    counts[key] += 1
    hits[key] += p["answer"] == a["multiple_choice_answer"]
    prior_hits += prior[a["question_type"]] == a["multiple_choice_answer"]
for t in counts:
    assert abs(got["vqa_accuracy_" + t] - hits[t] / counts[t]) < 1e-12, t
    assert got["questions_" + t] == counts[t], t
assert abs(got["vqa_accuracy"] - sum(hits.values()) / 36) < 1e-12
assert abs(got["prior_accuracy"] - prior_hits / 36) < 1e-12
PY
fi
# eval without training annotations: no prior; with them but no questions: an error
"$flava" eval -c "$out/vqa.cfg" -s run.dir="$out/vqa-eval2" -s vqa.train_annotations= \
  -s model.checkpoint="$out/vqa/checkpoints/final.safetensors" \
  -s vqa.answers="$out/vqa/answers.txt" 2> /dev/null
[ -z "$(num "$out/vqa-eval2" prior_accuracy)" ] || fail "vqa eval: prior without train annotations"
[ "$(num "$out/vqa-eval2" questions_other)" = 12 ] || fail "vqa eval2: questions_other"
expect_error "needs vqa.train_questions" eval -c "$out/vqa.cfg" -s run.dir="$out/vqa-eval3" \
  -s vqa.train_questions= -s model.checkpoint="$out/vqa/checkpoints/final.safetensors" \
  -s vqa.answers="$out/vqa/answers.txt"
# annotations without answer_type load (the questions count in no type); answer types
# that make the same metric name are an error
sed 's/"answer_type":"other",//g' "$out/scenes/test/annotations.json" > "$out/untyped.json"
"$flava" eval -c "$out/vqa.cfg" -s run.dir="$out/vqa-eval4" -s vqa.annotations="$out/untyped.json" \
  -s model.checkpoint="$out/vqa/checkpoints/final.safetensors" \
  -s vqa.answers="$out/vqa/answers.txt" 2> /dev/null
[ "$(num "$out/vqa-eval4" questions_untyped)" = 12 ] || fail "vqa: questions_untyped is not 12"
[ -z "$(num "$out/vqa-eval4" questions_other)" ] || fail "vqa: untyped questions counted as other"
[ "$(num "$out/vqa-eval4" vqa_accuracy)" = "$acc" ] || fail "vqa: untyped questions change the accuracy"
sed 's/"answer_type":"yes\/no"/"answer_type":"yes_no"/' "$out/scenes/test/annotations.json" \
  > "$out/clash.json"
expect_error "the metric name vqa_accuracy_yes_no comes twice" eval -c "$out/vqa.cfg" \
  -s run.dir="$out/vqa-eval5" -s vqa.annotations="$out/clash.json" \
  -s model.checkpoint="$out/vqa/checkpoints/final.safetensors" -s vqa.answers="$out/vqa/answers.txt"

# a two-class corpus in SST-2 layout (as the spam quickstart), learnable in a few steps
mkdir -p "$out/spam"
{
  printf 'sentence\tlabel\n'
  for i in 1 2 3 4 5 6; do
    printf 'hello world play\t1\nplay world hello !\t1\nnaive cafe resume\t0\nresume naive uber .\t0\n'
  done
} > "$out/spam/train.tsv"
printf 'sentence\tlabel\nworld play hello\t1\nhello play\t1\ncafe naive\t0\nuber resume cafe .\t0\n' \
  > "$out/spam/dev.tsv"
cat > "$out/glue.cfg" <<CFG
[run]
task = glue
dir = $out/glue
threads = 1
[model]
checkpoint = $ckpt
[train]
steps = 12
batch_size = 8
lr = 2e-3
log_every = 1
[glue]
task = sst2
dir = $out/spam
tokenizer = $vocab
max_text_len = 16
metric = f1
dataset = spam
CFG
"$flava" finetune -c "$out/glue.cfg" 2> /dev/null
grep -q '"metric":[[:space:]]*"f1"' "$out/glue/results.json" || fail "spam metric"
grep -q '"dataset":[[:space:]]*"spam"' "$out/glue/results.json" || fail "spam dataset"
check 'a == 1 && b == 1' "$(num "$out/glue" f1)" "$(num "$out/glue" accuracy)"
check 'a > b' $(losses "$out/glue")
"$flava" eval -c "$out/glue.cfg" -s run.dir="$out/glue-eval" \
  -s model.checkpoint="$out/glue/checkpoints/final.safetensors" 2> /dev/null
[ "$(num "$out/glue-eval" f1)" = 1 ] || fail "glue eval of the fine-tuned checkpoint"
# SST-2's own metric by default
"$flava" eval -c "$out/glue.cfg" -s run.dir="$out/glue-eval2" -s glue.metric= \
  -s model.checkpoint="$out/glue/checkpoints/final.safetensors" 2> /dev/null
grep -q '"metric":[[:space:]]*"accuracy"' "$out/glue-eval2/results.json" || fail "sst2 metric"

# STS-B layout: regression (MSE), Pearson and Spearman
mkdir -p "$out/stsb"
{
  printf 'index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n'
  for i in 0 1 2 3 4 5 6 7 8 9; do
    printf '%d\tg\tf\ty\to\tn\tn\thello world\thello world\t5.000\n' $((2 * i))
    printf '%d\tg\tf\ty\to\tn\tn\thello world\tnaive cafe\t%d.000\n' $((2 * i + 1)) $((i % 3))
  done
} > "$out/stsb/train.tsv"
cp "$out/stsb/train.tsv" "$out/stsb/dev.tsv"
"$flava" finetune -c "$out/glue.cfg" -s run.dir="$out/stsb-run" -s glue.task=stsb \
  -s glue.dir="$out/stsb" -s glue.metric= -s glue.dataset= -s train.steps=60 2> /dev/null
grep -q '"metric":[[:space:]]*"pearson"' "$out/stsb-run/results.json" || fail "stsb metric"
check 'a > 0.5 && b > 0.5 && a <= 1 && b <= 1' "$(num "$out/stsb-run" pearson)" \
  "$(num "$out/stsb-run" spearman)"

cat > "$out/ic.cfg" <<CFG
[run]
task = image_cls
dir = $out/ic
threads = 1
[model]
checkpoint = $ckpt
[train]
steps = 6
batch_size = 16
lr = 1e-3
log_every = 1
[image_cls]
images = $out/tr-images.idx
labels = $out/tr-labels.idx
test_images = $out/te-images.idx
test_labels = $out/te-labels.idx
CFG
"$flava" finetune -c "$out/ic.cfg" 2> /dev/null
check 'a >= 0 && a <= 1' "$(num "$out/ic" accuracy)"
[ "$(num "$out/ic" images)" = 64 ] || fail "image_cls images"
check 'a > b' $(losses "$out/ic")

# the example configs run as written, on tiny overrides (relative paths
# resolve in the run's directory, where the scenes and the corpus are)
cfgs="$src/configs"
(
  cd "$out"
  "$flava" finetune -c "$cfgs/vqa-scenes.cfg" -s run.dir="$out/c1" -s run.threads=1 \
    -s model.checkpoint="$ckpt" -s vqa.tokenizer="$vocab" -s vqa.max_text_len=16 \
    -s train.steps=2 -s train.batch_size=4 -s vqa.limit=8 2> /dev/null
  "$flava" finetune -c "$cfgs/glue-spam.cfg" -s run.dir="$out/c2" -s run.threads=1 \
    -s model.checkpoint="$ckpt" -s glue.tokenizer="$vocab" -s glue.max_text_len=16 \
    -s train.steps=2 -s train.batch_size=4 2> /dev/null
  "$flava" finetune -c "$cfgs/glue-sst2.cfg" -s run.dir="$out/c3" -s run.threads=1 \
    -s model.checkpoint="$ckpt" -s glue.tokenizer="$vocab" -s glue.max_text_len=16 \
    -s glue.dir="$src/tests/fixtures/glue/sst2" -s train.steps=1 -s train.batch_size=2 2> /dev/null
  "$flava" finetune -c "$cfgs/image-cls-fashion-mnist.cfg" -s run.dir="$out/c4" -s run.threads=1 \
    -s model.checkpoint="$ckpt" -s train.steps=1 -s train.batch_size=4 -s image_cls.limit=8 2> /dev/null
) || fail "an example config failed"
for r in c1 c2 c3 c4; do [ -s "$out/$r/results.json" ] || fail "example config: no $r/results.json"; done

# errors
expect_error "no VQA head" eval -c "$out/vqa.cfg" -s run.dir="$out/e1" \
  -s vqa.answers="$out/vqa/answers.txt"
expect_error "set vqa.answers" eval -c "$out/vqa.cfg" -s run.dir="$out/e2" \
  -s model.checkpoint="$out/vqa/checkpoints/final.safetensors"
expect_error "classifier has 0 labels" eval -c "$out/glue.cfg" -s run.dir="$out/e3"
expect_error "has no split 'nosuch'" finetune -c "$out/glue.cfg" -s run.dir="$out/e4" -s glue.eval_split=nosuch
expect_error "has no labels" finetune -c "$out/glue.cfg" -s run.dir="$out/e5" -s glue.eval_split=test \
  -s glue.dir="$src/tests/fixtures/glue/sst2"
expect_error "metric 'pearson' is not one" finetune -c "$out/glue.cfg" -s run.dir="$out/e6" \
  -s glue.metric=pearson -s train.steps=1
expect_error "image_cls.num_labels is 3" finetune -c "$out/ic.cfg" -s run.dir="$out/e7" \
  -s image_cls.num_labels=3
# a classifier checkpoint that lacks the classifier weights
"$flava" eval -c "$out/vqa.cfg" -s run.dir="$out/e8" -s model.checkpoint="$ckpt" \
  -s model.vqa_num_answers="$(wc -l < "$out/vqa/answers.txt")" -s vqa.answers="$out/vqa/answers.txt" \
  2> "$out/err" && fail "eval without head weights succeeded"
grep -q "vqa_head" "$out/err" || fail "missing head weights: $(cat "$out/err")"
echo "finetune tasks: OK"
