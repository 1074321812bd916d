"""Writes tests/fixtures/encoder_postln.safetensors: the generic encoder of
src/encoder.h in the configuration FLAVA does not use (post-LN blocks as in
BERT, ReLU, causal attention with a key mask, no final LayerNorm), so the
other branch of the block is checked against PyTorch too.

Run: /usr/bin/python3 tests/reference/encoder_fixtures.py (PyTorch 1.13).

Block (post-LN): r1 = x + proj(attn(qkv(x))); m = LN1(r1);
r2 = m + fc2(relu(fc1(m))); y = LN2(r2). Attention: scores / sqrt(d),
keys with key_mask 0 or after the query removed, softmax. Parameter names
follow flava_encoder_names_hf_vit with prefix "enc" (ln1 = layernorm_before,
ln2 = layernorm_after). Stored: every parameter, x, key_mask, dout, the
output y, dx = d(sum(y*dout))/dx and grad.<name>; computed in float64.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402

L, C, NH, FF, B, T, EPS = 2, 8, 2, 16, 2, 5, 1e-5


def main():
    g = torch.Generator().manual_seed(7)
    params = {}

    def p(name, *shape, scale=0.3, base=0.0):
        params[name] = (base + scale * torch.randn(*shape, generator=g, dtype=torch.float64)
                        ).requires_grad_()
        return params[name]

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
    allowed = (key_mask[:, None, None, :] > 0) & torch.ones(T, T).tril().bool()[None, None]

    h = x
    d = C // NH
    for w in layers:
        def heads(t):
            return t.view(B, T, NH, d).transpose(1, 2)
        q, k, v = (heads(F.linear(h, *w[n])) for n in ("query", "key", "value"))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        s = s.masked_fill(~allowed, float("-inf"))
        ctx = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, C)
        m = F.layer_norm(h + F.linear(ctx, *w["proj"]), (C,), *w["ln1"], eps=EPS)
        h = F.layer_norm(m + F.linear(F.relu(F.linear(m, *w["fc1"])), *w["fc2"]), (C,),
                         *w["ln2"], eps=EPS)
    (h * dout).sum().backward()
    out = {k: v.detach().float() for k, v in params.items()}
    out.update({"grad." + k: v.grad.float() for k, v in params.items()})
    out.update(x=x.detach().float(), key_mask=key_mask.float(), dout=dout.float(),
               out=h.detach().float(), dx=x.grad.float())
    st.save(os.path.join(HERE, "..", "fixtures", "encoder_postln.safetensors"), out)
    print("encoder_postln: out[0,0,:3] =", h[0, 0, :3].tolist())


if __name__ == "__main__":
    main()
