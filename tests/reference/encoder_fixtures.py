"""Writes the fixtures of the generic encoder of src/encoder.h:

- tests/fixtures/encoder_postln.safetensors: the configuration FLAVA does
  not use (post-LN blocks as in BERT, ReLU, causal attention with a key
  mask, no final LayerNorm), so the other branch of the block is checked
  against PyTorch too;
- tests/fixtures/encoder_dropout_preln.safetensors and
  encoder_dropout_postln.safetensors: a training pass with dropout where
  HF's layers have it (FlavaLayer / ViTLayer pre-LN with GELU and a final
  LayerNorm; BertLayer post-LN), on the input (the embeddings' dropout),
  the attention probabilities, and the attention projection's and the
  MLP's outputs before their residual add.

Run: /usr/bin/python3 tests/reference/encoder_fixtures.py (PyTorch 1.13).

Blocks: pre-LN r1 = x + drop(proj(attn(qkv(LN1(x))))); y = r1 +
drop(fc2(act(fc1(LN2(r1))))). Post-LN r1 = x + drop(proj(attn(qkv(x))));
m = LN1(r1); r2 = m + drop(fc2(act(fc1(m)))); y = LN2(r2). Attention:
scores / sqrt(d), keys with key_mask 0 (or after the query, if causal)
removed, softmax, dropped out, times v. Parameter names follow
flava_encoder_names_hf_vit with prefix "enc" (ln1 = layernorm_before, ln2 =
layernorm_after). Stored: every parameter, x, key_mask, dout, the output y,
dx = d(sum(y*dout))/dx and grad.<name>; computed in float64.

Dropout masks: rng_ref.dropout_scale, as src/ops/dropout.c draws them, for
the sites of src/encoder.h (stream 0 the input, 1 + 3l, 2 + 3l, 3 + 3l
layer l's attention probabilities, attention output, MLP output).
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
from rng_ref import dropout_scale  # noqa: E402

L, C, NH, FF, B, T, EPS = 2, 8, 2, 16, 2, 5, 1e-5
SEED, P_HIDDEN, P_ATT = 1234, 0.2, 0.3

def make(name, pre_ln, act, causal, final_ln, dropout):
    g = torch.Generator().manual_seed(7)
    params = {}

    def p(pname, *shape, scale=0.3, base=0.0):
        params[pname] = (base + scale * torch.randn(*shape, generator=g, dtype=torch.float64)
                         ).requires_grad_()
        return params[pname]

    layers = []
    for i in range(L):
        pre = f"enc.encoder.layer.{i}."
        w = {}
        for k in ("query", "key", "value"):
            w[k] = (p(pre + f"attention.attention.{k}.weight", C, C),
                    p(pre + f"attention.attention.{k}.bias", C, scale=0.1))
        w["proj"] = (p(pre + "attention.output.dense.weight", C, C),
                     p(pre + "attention.output.dense.bias", C, scale=0.1))
        w["fc1"] = (p(pre + "intermediate.dense.weight", FF, C),
                    p(pre + "intermediate.dense.bias", FF, scale=0.1))
        w["fc2"] = (p(pre + "output.dense.weight", C, FF),
                    p(pre + "output.dense.bias", C, scale=0.1))
        w["ln1"] = (p(pre + "layernorm_before.weight", C, scale=0.1, base=1.0),
                    p(pre + "layernorm_before.bias", C, scale=0.1))
        w["ln2"] = (p(pre + "layernorm_after.weight", C, scale=0.1, base=1.0),
                    p(pre + "layernorm_after.bias", C, scale=0.1))
        layers.append(w)
    x = torch.randn(B, T, C, generator=g, dtype=torch.float64).requires_grad_()
    key_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0]], dtype=torch.float64)
    dout = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    if final_ln:
        fln = (p("enc.layernorm.weight", C, scale=0.1, base=1.0),
               p("enc.layernorm.bias", C, scale=0.1))
    allowed = (key_mask[:, None, None, :] > 0).expand(B, 1, T, T)
    if causal:
        allowed = allowed & torch.ones(T, T).tril().bool()[None, None]

    def drop(t, prob, stream):
        return t * dropout_scale(t.shape, prob, SEED, stream) if dropout else t

    h = drop(x, P_HIDDEN, 0)
    d = C // NH
    for i, w in enumerate(layers):
        def heads(t):
            return t.view(B, T, NH, d).transpose(1, 2)
        a_in = F.layer_norm(h, (C,), *w["ln1"], eps=EPS) if pre_ln else h
        q, k, v = (heads(F.linear(a_in, *w[n])) for n in ("query", "key", "value"))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        s = s.masked_fill(~allowed, float("-inf"))
        probs = drop(torch.softmax(s, -1), P_ATT, 1 + 3 * i)
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, C)
        r1 = h + drop(F.linear(ctx, *w["proj"]), P_HIDDEN, 2 + 3 * i)
        m = F.layer_norm(r1, (C,), *w["ln2" if pre_ln else "ln1"], eps=EPS)
        mlp = drop(F.linear(act(F.linear(m, *w["fc1"])), *w["fc2"]), P_HIDDEN, 3 + 3 * i)
        h = r1 + mlp if pre_ln else F.layer_norm(m + mlp, (C,), *w["ln2"], eps=EPS)
    if final_ln:
        h = F.layer_norm(h, (C,), *fln, eps=EPS)
    (h * dout).sum().backward()
    out = {k: v.detach().float() for k, v in params.items()}
    out.update({"grad." + k: v.grad.float() for k, v in params.items()})
    out.update(x=x.detach().float(), key_mask=key_mask.float(), dout=dout.float(),
               out=h.detach().float(), dx=x.grad.float())
    meta = {"dropout_seed": str(SEED), "hidden_dropout": str(P_HIDDEN),
            "attention_dropout": str(P_ATT)} if dropout else None
    st.save(os.path.join(HERE, "..", "fixtures", name + ".safetensors"), out, meta)
    print(name + ": out[0,0,:3] =", h[0, 0, :3].tolist())


def main():
    make("encoder_postln", pre_ln=False, act=F.relu, causal=True, final_ln=False, dropout=False)
    make("encoder_dropout_preln", pre_ln=True, act=F.gelu, causal=False, final_ln=True,
         dropout=True)
    make("encoder_dropout_postln", pre_ln=False, act=F.gelu, causal=False, final_ln=False,
         dropout=True)


if __name__ == "__main__":
    main()
