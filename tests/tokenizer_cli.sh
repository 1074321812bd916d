#!/bin/sh
# tokenizer_cli.sh - `flava tokenizer train|encode|decode` end to end, and
# its error paths.
set -u
src=${FLAVA_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
flava=${FLAVA_BUILDDIR:-.}/flava
fix=$src/tests/fixtures/tok
tmp=$(mktemp -d /tmp/flava_tokcli_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0

expect() { # expect NAME WANTED GOT
  if [ "$2" != "$3" ]; then echo "FAIL $1: expected '$2', got '$3'"; fail=1; else echo "ok $1"; fi
}
expect_error() { # expect_error NAME MESSAGE-PART CMD...
  name=$1 part=$2; shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err"; then echo "FAIL $name: succeeded"; fail=1; return; fi
  if grep -qF -- "$part" "$tmp/err"; then echo "ok $name"; else
    echo "FAIL $name: stderr lacks '$part':"; cat "$tmp/err"; fail=1; fi
}

# WordPiece
expect wp-encode "13 10 14 12" "$("$flava" tokenizer encode --model "$fix/vocab.txt" --text 'Hello, World!')"
expect wp-pieces "un ##aff ##able" "$("$flava" tokenizer encode --model "$fix/vocab.txt" --pieces --text Unaffable)"
expect wp-pair "input_ids: 2 13 3 16 15 3 0 0
token_type_ids: 0 0 0 1 1 1 0 0
attention_mask: 1 1 1 1 1 1 0 0" \
  "$("$flava" tokenizer encode --model "$fix/vocab.txt" --text hello --pair plays --max-len 8)"
expect wp-stdin "5 6
13" "$(printf 'the cafe\nHELLO\n' | "$flava" tokenizer encode --model "$fix/vocab.txt")"
expect wp-decode "unaffable world" "$("$flava" tokenizer decode --model "$fix/vocab.txt" 2 7 8 9 14 3 0)"
expect wp-decode-keep "[CLS] hello [SEP]" "$("$flava" tokenizer decode --model "$fix/vocab.txt" --keep-special 2 13 3)"

# SentencePiece: a model trained here encodes as the Python-trained one
"$flava" tokenizer train --input "$fix/spm_train.txt" --out "$tmp/m" --vocab-size 300 >/dev/null ||
  { echo "FAIL spm-train"; fail=1; }
expect spm-encode "$(sed -n 1p "$fix/spm_expected_unigram.txt")" \
  "$("$flava" tokenizer encode --model "$tmp/m.model" --text "$(sed -n 1p "$fix/spm_texts.txt")")"
expect spm-roundtrip "The image encoder takes conv patch embeddings." \
  "$("$flava" tokenizer encode --model "$tmp/m.model" --text 'The image encoder takes conv patch embeddings.' |
     "$flava" tokenizer decode --model "$tmp/m.model")"

# Errors
expect_error no-verb "train, encode or decode" "$flava" tokenizer
expect_error bad-verb "unknown verb 'split'" "$flava" tokenizer split
expect_error no-model "needs --model" "$flava" tokenizer encode --text hi
expect_error bad-max-len "--max-len expects an integer >= 2, got 'x'" \
  "$flava" tokenizer encode --model "$fix/vocab.txt" --text hi --max-len x
expect_error bad-type "--type expects unigram or bpe" \
  "$flava" tokenizer train --input "$fix/spm_train.txt" --out "$tmp/x" --type wordpiece
expect_error missing-vocab "cannot open vocabulary $tmp/none.txt" \
  "$flava" tokenizer encode --model "$tmp/none.txt" --text hi
expect_error bad-utf8 "standard input line 2: invalid UTF-8 at byte offset 3" \
  sh -c "printf 'ok\nabc\377\n' | '$flava' tokenizer encode --model '$fix/vocab.txt'"
expect_error bad-id "id 99 is outside the vocabulary (size 42)" \
  "$flava" tokenizer decode --model "$fix/vocab.txt" 5 99
exit $fail
