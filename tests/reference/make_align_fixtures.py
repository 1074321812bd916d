"""Writes the ALIGN parity fixtures (tests/fixtures/align_tiny_*.safetensors).

Run:  /usr/bin/python3 tests/reference/make_align_fixtures.py   (PyTorch 1.13;
seeded, deterministic). The model is tests/reference/align_ref.py.

- align_tiny_model: the weights under HF AlignModel keys (batch-norm buffers
  included: running stats random, num_batches_tracked I64 = 5), the HF config
  JSON in __metadata__["config"]. Weights are random at scales that keep every
  path alive (not HF's init, whose 0.02 std would make gradients tiny).
- align_tiny_inputs: pixel_values (3,3,33,33) F32, input_ids,
  attention_mask (row 1 padded), token_type_ids (I64).
- align_tiny_train / align_tiny_eval: one forward in training mode
  (batch statistics, running-stat update, the image blocks' and the text
  tower's dropout, 0.1 as in align-base, masks from splitmix64 with seed
  `dropout_seed` = 1234 in metadata) / inference mode (running
  stats, no dropout): text_embeds, image_embeds (normalised), logits_per_image,
  loss, grad.<key> of d loss / d parameter for every trainable parameter
  (zero for the unused text pooler), and, for train, the buffers after
  the step under their keys (running_mean/var, num_batches_tracked = 6).
Computed in float64 from the F32 weights and inputs, stored as F32.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import align_ref  # noqa: E402
import st  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
DROPOUT_SEED = 1234

CONFIG = {
    "model_type": "align",
    "projection_dim": 16,
    "temperature_init_value": 1.0,
    "initializer_range": 0.02,
    "text_config": {
        "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 48, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 16, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
    },
    "vision_config": {
        "num_channels": 3, "image_size": 33, "width_coefficient": 0.25,
        "depth_coefficient": 1.5, "depth_divisor": 4, "kernel_sizes": [3, 5, 3],
        "in_channels": [32, 16, 32], "out_channels": [16, 32, 64],
        "depthwise_padding": [4], "strides": [1, 2, 2], "num_block_repeats": [1, 1, 1],
        "expand_ratios": [1, 4, 2], "squeeze_expansion_ratio": 0.25, "hidden_act": "swish",
        "hidden_dim": 8, "pooling_type": "mean", "initializer_range": 0.02,
        "batch_norm_eps": 0.001, "batch_norm_momentum": 0.99, "drop_connect_rate": 0.6,
    },
}


def make_weights(g):
    shapes, bns = align_ref.param_shapes(CONFIG)
    P = {}
    for name, shape in shapes.items():
        if name == "temperature":
            P[name] = torch.tensor(0.2)
        elif name.endswith("LayerNorm.weight") or any(name == b + ".weight" for b, _ in bns):
            P[name] = 1.0 + 0.2 * torch.randn(shape, generator=g)
        elif name.endswith(".bias"):
            P[name] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            P[name] = torch.randn(shape, generator=g) * (1.5 / fan_in ** 0.5)
        else:
            fan_in = shape[-1]
            P[name] = torch.randn(shape, generator=g) * (1.0 / fan_in ** 0.5)
    P["text_model.embeddings.word_embeddings.weight"][0] = 0.0  # padding row, as HF inits it
    B = {}
    for name, c in bns:
        B[name + ".running_mean"] = 0.3 * torch.randn(c, generator=g)
        B[name + ".running_var"] = 0.5 + torch.rand(c, generator=g)
        B[name + ".num_batches_tracked"] = torch.tensor(5, dtype=torch.int64)
    return {k: v.float() for k, v in P.items()}, B


def run(P32, B32, inputs, train):
    P = {k: v.double().requires_grad_(True) for k, v in P32.items()}
    B = {k: (v.double() if v.dtype != torch.int64 else v.clone()) for k, v in B32.items()}
    out = align_ref.align_forward(P, B, CONFIG, inputs, train, DROPOUT_SEED)
    out["loss"].backward()
    res = {k: out[k].detach().float() for k in ("text_embeds", "image_embeds",
                                                 "logits_per_image", "loss")}
    for k, p in P.items():
        res["grad." + k] = (p.grad if p.grad is not None else torch.zeros_like(p)).float()
    if train:
        for k, v in B.items():
            res[k] = v.float() if v.dtype != torch.int64 else v
    return res, out


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(20260127)
    P, B = make_weights(g)
    meta = {"config": json.dumps(CONFIG), "format": "pt"}
    st.save(os.path.join(OUT, "align_tiny_model.safetensors"), {**P, **B}, meta)

    ids = torch.tensor([[2, 11, 17, 5, 29, 3, 1], [2, 40, 8, 3, 0, 0, 0],
                        [2, 7, 7, 33, 49, 21, 3]], dtype=torch.int64)
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0] * 7, [0, 0, 0, 1, 1, 1, 1]],
                         dtype=torch.int64)
    pixels = torch.randn(3, 3, 33, 33, generator=g).float()
    inputs = {"pixel_values": pixels, "input_ids": ids, "attention_mask": mask,
              "token_type_ids": types}
    st.save(os.path.join(OUT, "align_tiny_inputs.safetensors"), inputs)
    inputs64 = dict(inputs, pixel_values=pixels.double())

    for name, train in (("train", True), ("eval", False)):
        res, out = run(P, B, inputs64, train)
        st.save(os.path.join(OUT, "align_tiny_%s.safetensors" % name), res,
                {"dropout_seed": str(DROPOUT_SEED)})
        print(name, "loss %.6f" % out["loss"].item(),
              "logits", [round(x, 4) for x in out["logits_per_image"].flatten().tolist()])
    blocks = align_ref.vision_blocks(CONFIG["vision_config"])
    print("blocks", [(b["in_dim"], b["exp_dim"], b["out_dim"], b["stride"], b["k"],
                      b["residual"], round(b["drop"], 3)) for b in blocks])


if __name__ == "__main__":
    main()
