#!/bin/sh
# forward.sh - `flava forward` on the PyTorch reference fixtures: every
# output and parameter gradient of the three batches must match, and bad
# invocations must fail with a message.
set -eu
src=${FLAVA_SRCDIR:-$(dirname "$0")/..}
build=${FLAVA_BUILDDIR:-.}
flava="$build/flava"
fx="$src/tests/fixtures"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for batch in image_text image text; do
    "$flava" forward --model "$fx/flava_tiny_model.safetensors" \
        --inputs "$fx/flava_tiny_${batch}_inputs.safetensors" --out "$tmp/$batch.safetensors" \
        -s skip_unmasked_multimodal_encoder=false --grads \
        --compare "$fx/flava_tiny_${batch}_outputs.safetensors"
done

# the outputs carry HF names
"$flava" info "$tmp/image_text.safetensors" > "$tmp/info.txt"
for name in loss loss_info.itm loss_info.global_contrastive loss_info.mmm_image \
    loss_info.mmm_text itm_logits contrastive_logits_per_image mmm_text_logits \
    multimodal_masked_embeddings grad.mlm_head.decoder.bias; do
    grep -q " $name " "$tmp/info.txt" || { echo "no $name in the outputs"; exit 1; }
done

# a wrong reference fails: compare the image batch's outputs with the text fixture
if "$flava" forward --model "$fx/flava_tiny_model.safetensors" \
    --inputs "$fx/flava_tiny_image_inputs.safetensors" --out "$tmp/x.safetensors" \
    --compare "$fx/flava_tiny_text_outputs.safetensors" 2> "$tmp/err.txt"; then
    echo "comparing against the wrong fixture succeeded"; exit 1
fi
grep -q "relative error" "$tmp/err.txt"

# errors: missing arguments, a missing file, an unknown config key
if "$flava" forward --model "$fx/flava_tiny_model.safetensors" 2> "$tmp/err.txt"; then
    echo "missing --inputs accepted"; exit 1
fi
grep -q "required" "$tmp/err.txt"
if "$flava" forward --model "$tmp/none.safetensors" --inputs "$fx/flava_tiny_image_inputs.safetensors" \
    --out "$tmp/x.safetensors" 2> "$tmp/err.txt"; then
    echo "a missing model accepted"; exit 1
fi
grep -q "none.safetensors" "$tmp/err.txt"
if "$flava" forward --model "$fx/flava_tiny_model.safetensors" -s text_config.hiden_size=3 \
    --inputs "$fx/flava_tiny_image_inputs.safetensors" --out "$tmp/x.safetensors" 2> "$tmp/err.txt"; then
    echo "an unknown config key accepted"; exit 1
fi
grep -q "hiden_size" "$tmp/err.txt"
echo "forward.sh: ok"
