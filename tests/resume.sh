#!/bin/sh
# --resume continues bit for bit: a run stopped after step 5 and resumed to
# 12 logs the same losses (and ends with the same weights) as a straight
# run of 12, with and without gradient accumulation (and one-item scenes
# and dropout); Ctrl-C saves a checkpoint, exits non-zero, and the run
# resumes from it.
set -eu
. "${FLAVA_SRCDIR:-..}/tests/pretrain_data.sh"

# With grad_accum 2 the idx source shows its items as one-item scenes, whose
# cells the run seed draws, and every encoder drops out with masks drawn
# from the run seed and the forward's count: the resumed run must draw the
# same.
dropout="-s model.image_config.hidden_dropout_prob=0.1 -s model.text_config.hidden_dropout_prob=0.1
  -s model.multimodal_config.hidden_dropout_prob=0.1 -s model.image_config.attention_probs_dropout_prob=0.1
  -s model.text_config.attention_probs_dropout_prob=0.1 -s model.multimodal_config.attention_probs_dropout_prob=0.1"
for accum in 1 2; do
  scenes=0 extra=
  [ $accum -eq 1 ] || { scenes=56 extra=$dropout; }
  # shellcheck disable=SC2086 # $extra is a list of arguments
  run pretrain straight$accum -s train.steps=12 -s train.grad_accum=$accum \
    -s data.fmnist.scene_size=$scenes $extra 2> /dev/null || fail "straight run (grad_accum $accum)"
  # shellcheck disable=SC2086
  run pretrain split$accum -s train.steps=12 -s train.grad_accum=$accum -s train.stop_after=5 \
    -s data.fmnist.scene_size=$scenes $extra 2> /dev/null || fail "run stopped after 5 (grad_accum $accum)"
  [ -f "$dir/split$accum/checkpoints/step-5.optim.safetensors" ] || fail "no checkpoint at step 5"
  [ -f "$dir/split$accum/checkpoints/final.safetensors" ] && fail "a stopped run wrote final"
  # shellcheck disable=SC2086
  run pretrain split$accum -s train.steps=12 -s train.grad_accum=$accum \
    -s data.fmnist.scene_size=$scenes $extra --resume 2> "$dir/err" ||
    { cat "$dir/err"; fail "--resume (grad_accum $accum)"; }
  grep -q 'resuming from step-5 at step 5' "$dir/split$accum/log.txt" || fail "did not resume at 5"
  losses "$dir/straight$accum" > "$dir/want"
  losses "$dir/split$accum" > "$dir/got"
  [ "$(wc -l < "$dir/got")" -eq 12 ] || fail "expected 12 metrics lines after resuming"
  cmp -s "$dir/want" "$dir/got" || { diff "$dir/want" "$dir/got" | head; fail "resumed losses differ (grad_accum $accum)"; }
  cmp -s "$dir/straight$accum/checkpoints/final.safetensors" "$dir/split$accum/checkpoints/final.safetensors" ||
    fail "resumed final weights differ (grad_accum $accum)"
done
cmp -s "$dir/straight1/metrics.jsonl" "$dir/straight2/metrics.jsonl" && fail "grad_accum ignored"
# the same first step without dropout gives another loss
run pretrain nodrop2 -s train.steps=1 -s train.grad_accum=2 -s data.fmnist.scene_size=56 \
  2> /dev/null || fail "the run without dropout"
[ "$(losses "$dir/nodrop2" | head -1)" = "$(losses "$dir/straight2" | head -1)" ] &&
  fail "dropout did not change the first step's loss"

# Ctrl-C: a checkpoint at the step it stopped after, exit status 1.
(launch=exec; run pretrain int -s train.steps=5000 -s train.log_every=1 2> "$dir/int.err") &
pid=$!
i=0
while [ "$(cat "$dir/int/metrics.jsonl" 2> /dev/null | wc -l)" -lt 3 ] && [ $i -lt 200 ]; do
  sleep 0.1; i=$((i + 1))
done
kill -INT $pid
status=0
wait $pid || status=$?
[ -f "$dir/int/checkpoints/final.safetensors" ] && fail "Ctrl-C: the run was not interrupted"
[ $status -eq 1 ] || fail "Ctrl-C: exit status $status, expected 1"
grep -q 'interrupted after step' "$dir/int.err" || fail "Ctrl-C: no message"
n=$(ls "$dir/int/checkpoints" | sed -n 's/^step-\([0-9]*\)\.optim\.safetensors$/\1/p')
[ -n "$n" ] || fail "Ctrl-C: no checkpoint"
run pretrain int -s train.steps=$((n + 2)) --resume 2> /dev/null || fail "resume after Ctrl-C"
grep -q "resuming from step-$n at step $n" "$dir/int/log.txt" || fail "did not resume at $n"
[ -f "$dir/int/checkpoints/final.safetensors" ] || fail "the resumed run did not finish"
exit 0
