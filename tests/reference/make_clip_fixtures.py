"""Writes the CLIP parity fixtures tests/fixtures/clip_tiny_<act>_{model,io}.safetensors.

Run:  /usr/bin/python3 tests/reference/make_clip_fixtures.py   (PyTorch 1.13,
seeded; a second run rewrites identical files). The model is
tests/reference/clip_ref.py, this project's plain-torch CLIP (HF CLIPModel
semantics, see its docstring).

Two tiny configs, each a model file and an io file:
- quick_gelu: hidden_act quick_gelu in both towers, text eos_token_id 2 (the
  original checkpoints' config: pooled at argmax(input_ids)).
- gelu: hidden_act gelu, eos_token_id 3 = the pad id too (pooled at the
  FIRST eos, as later HF configs do; BOS 48 is the largest id, so argmax
  pooling would differ).
model file: every parameter under its HF name (F32), the config JSON (HF
CLIPConfig fields, model_type "clip") in __metadata__["config"]. Weights are
HF's init drawn from a torch.Generator, then biases, LayerNorms and
logit_scale perturbed so no term is trivially constant.
io file: input_ids (I64, right-padded, attention_mask 0 on padding),
attention_mask (I64), pixel_values (F32), the outputs text_embeds,
image_embeds (L2-normalised), logits_per_image, logits_per_text, loss, and
grad.<name> = d loss / d parameter for every parameter; all computed in
float64 from the stored F32 values, stored F32. __metadata__["init"] is the
HF init rule of every tensor as JSON {name: ["normal", std] | ["const", v]}.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_ref  # noqa: E402
import st  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def config(act, eos):
    tower = {"hidden_act": act, "layer_norm_eps": 1e-5, "initializer_range": 0.02}
    return {
        "model_type": "clip",
        "projection_dim": 16,
        "logit_scale_init_value": 2.6592,
        "initializer_factor": 1.0,
        "text_config": dict(tower, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                            num_attention_heads=4, vocab_size=50, max_position_embeddings=12,
                            pad_token_id=1, bos_token_id=48, eos_token_id=eos),
        "vision_config": dict(tower, hidden_size=24, intermediate_size=40, num_hidden_layers=2,
                              num_attention_heads=2, image_size=16, patch_size=4,
                              num_channels=3),
    }


def inputs(gen, eos_pool):
    """4 captions of T=9 with lengths 9, 5, 7, 3: BOS (48), words, EOS,
    padding. With eos_pool 2 (legacy) the EOS is the largest id, 49, and
    padding is 0; else EOS = pad = eos_pool and words avoid it."""
    B, T, lengths = 4, 9, [9, 5, 7, 3]
    ids = torch.zeros(B, T, dtype=torch.int64)
    mask = torch.zeros(B, T, dtype=torch.int64)
    eos = 49 if eos_pool == 2 else eos_pool
    pad = 0 if eos_pool == 2 else eos
    for b, n in enumerate(lengths):
        words = torch.randint(2 if eos_pool == 2 else eos + 1, 48, (n - 2,), generator=gen)
        ids[b] = pad
        ids[b, 0] = 48
        ids[b, 1:n - 1] = words
        ids[b, n - 1] = eos
        mask[b, :n] = 1
    pixels = torch.randn(B, 3, 16, 16, generator=gen).float()
    return ids, mask, pixels


def make(act, eos_pool, seed):
    gen = torch.Generator().manual_seed(seed)
    cfg = config(act, eos_pool)
    P = clip_ref.perturb(clip_ref.init_params(cfg, gen), gen)
    P = {k: v.float().double().requires_grad_(True) for k, v in P.items()}
    ids, mask, pixels = inputs(gen, eos_pool)
    out = clip_ref.clip_forward(P, cfg, ids, mask, pixels.double())
    out["loss"].backward()
    tag = f"clip_tiny_{act}"
    st.save(os.path.join(OUT, f"{tag}_model.safetensors"),
            {k: v.detach().float() for k, v in P.items()},
            {"config": json.dumps(cfg, sort_keys=True)})
    io = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}
    io.update({k: v.detach().float() for k, v in out.items()})
    io.update({f"grad.{k}": v.grad.float() for k, v in P.items()})
    rules = {k: list(clip_ref.init_rule(cfg, k)) for k in P}
    st.save(os.path.join(OUT, f"{tag}_io.safetensors"), io,
            {"init": json.dumps(rules, sort_keys=True)})
    print(f"{tag}: loss {out['loss'].item():.6f}, logit scale "
          f"{P['logit_scale'].exp().item():.4f}, {sum(v.numel() for v in P.values())} "
          f"parameters")


if __name__ == "__main__":
    torch.set_num_threads(2)
    make("quick_gelu", 2, 1234)
    make("gelu", 3, 4321)
