#!/bin/sh
# `flava data scenes`: generates a tiny set, checks the files and the error
# paths of the command line. (tests/check_data reads generated scenes back
# through the readers; this tests the command itself.)
set -eu
flava="${FLAVA_BUILDDIR:-.}/flava"
out=$(mktemp -d "${TMPDIR:-/tmp}/scenes.XXXXXX")
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$flava" data scenes --train 4 --test 2 --seed 3 --size 56 --out "$out/a"
for split in train test; do
  for f in captions.tsv questions.json annotations.json classes.txt; do
    [ -s "$out/a/$split/$f" ] || fail "missing $split/$f"
  done
done
[ "$(ls "$out/a/train/images" | wc -l)" -eq 4 ] || fail "expected 4 train images"
[ "$(ls "$out/a/test/images" | wc -l)" -eq 2 ] || fail "expected 2 test images"
[ "$(wc -l < "$out/a/train/captions.tsv")" -eq 5 ] || fail "expected a header and 4 captions"
head -1 "$out/a/train/captions.tsv" | grep -q '^filepath	title$' || fail "TSV header"
grep -q '^Ankle boot$' "$out/a/test/classes.txt" || fail "classes.txt"
[ "$(grep -o '"answer":' "$out/a/train/annotations.json" | wc -l)" -eq 120 ] ||
  fail "expected 4 scenes x 3 questions x 10 answers"

# same seed, same files; another seed, other captions
"$flava" data scenes --train 4 --test 2 --seed 3 --out "$out/b"
diff -r "$out/a" "$out/b" > /dev/null || fail "same seed gave different files"
"$flava" data scenes --train 4 --test 0 --seed 4 --out "$out/c"
cmp -s "$out/a/train/captions.tsv" "$out/c/train/captions.tsv" && fail "seed ignored"
[ -d "$out/c/test" ] && fail "--test 0 wrote a test split"

# errors: non-zero exit and a message naming the problem
expect_error() {
  want="$1"; shift
  if "$flava" "$@" 2> "$out/err"; then fail "'$*' succeeded"; fi
  grep -q -- "$want" "$out/err" || fail "'$*': message lacks '$want': $(cat "$out/err")"
}
expect_error "--out DIR is required" data scenes --train 1
expect_error "unknown option '--colour'" data scenes --colour red --out "$out/d"
expect_error "--train 'many'" data scenes --train many --out "$out/d"
expect_error "--size '30'" data scenes --size 30 --out "$out/d"
expect_error "unknown verb 'paint'" data paint
expect_error "missing verb" data
expect_error "train-images-idx3-ubyte.gz" data scenes --fashion-mnist "$out" --out "$out/d"
"$flava" data --help | grep -q scenes || fail "data --help lists no scenes verb"
echo "scenes.sh: ok"
