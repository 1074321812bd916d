#!/bin/sh
# `flava info` on the PyTorch-written fixture, then on broken input: each
# error exits non-zero with a message that names the file.
set -u
flava="${FLAVA_BUILDDIR:-.}/flava"
fixture="${FLAVA_SRCDIR:-..}/tests/fixtures/st_reference.safetensors"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$flava" info "$fixture") || fail "flava info $fixture exited with $?"
echo "$out"
echo "$out" | grep -q '^  config = {"hidden_size": 8' || fail "metadata 'config' not listed"
echo "$out" | grep -q '^  format = pt$' || fail "metadata 'format' not listed"
echo "$out" | grep -Eq '^  a\.f32 +F32 +\[2, 3, 4\] +24$' || fail "a.f32 not listed"
echo "$out" | grep -Eq '^  g\.scalar +F32 +\[\] +1$' || fail "the scalar not listed"
echo "$out" | grep -Eq '^  h\.empty +F32 +\[0, 3\] +0$' || fail "the empty tensor not listed"
echo "$out" | grep -q '^total: 10 tensors, 102 parameters, 344 bytes$' || fail "wrong totals"

# expect_error NAME PATTERN ARGS...: non-zero exit, stderr matching PATTERN
expect_error() {
  what=$1 pattern=$2
  shift 2
  if "$flava" info "$@" >"$tmp/out" 2>"$tmp/err"; then fail "$what: exit status 0"; fi
  cat "$tmp/err"
  grep -q -- "$pattern" "$tmp/err" || fail "$what: stderr does not match '$pattern'"
}

head -c 100 "$fixture" >"$tmp/cut.safetensors"
expect_error truncated "error: $tmp/cut.safetensors: header length .* runs past the end" "$tmp/cut.safetensors"
printf 'not a safetensors file at all' >"$tmp/text.safetensors"
expect_error garbage "$tmp/text.safetensors: header length .* is absurd" "$tmp/text.safetensors"
expect_error missing "cannot open $tmp/absent.safetensors" "$tmp/absent.safetensors"
expect_error no-argument "usage: flava info"
"$flava" info --help | grep -q "usage: flava info" || fail "--help"
echo PASS
