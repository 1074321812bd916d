"""Writes tests/fixtures/ops_dense.safetensors: inputs, outputs and input
gradients of the dense ops (linear, linear+GELU, attention with a key mask
and causal, softmax, layer norm, GELU/tanh/ReLU) from plain torch autograd,
computed in float64 from float32 inputs and stored as float32. Each backward
is that of loss = sum(out * dout).
Run from the source root: /usr/bin/python3 tests/reference/ops_dense_fixtures.py"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

torch.manual_seed(0)
out = {}


def leaf(name, *shape, scale=1.0):
    """A float32 input, saved, returned as a float64 leaf."""
    t = (torch.randn(*shape) * scale).float()
    out[name] = t
    return t.double().requires_grad_(True)


def backward(prefix, y, inputs):
    """Saves y and the gradients of sum(y * dout) for the named inputs."""
    dout = torch.randn(*y.shape).float()
    out[prefix + ".out"] = y.detach().float()
    out[prefix + ".dout"] = dout
    grads = torch.autograd.grad((y * dout.double()).sum(), [t for _, t in inputs])
    for (name, _), g in zip(inputs, grads):
        out[prefix + ".d" + name] = g.float()


# linear: N=7, C=12, OC=5
x, w, b = leaf("linear.inp", 7, 12), leaf("linear.w", 5, 12, scale=0.3), leaf("linear.b", 5)
y = F.linear(x, w, b)
backward("linear", y, [("inp", x), ("w", w), ("b", b)])
out["linear.gelu_out"] = F.gelu(y).detach().float()

# attention: B=2, T=6, C=8, NH=2 on qkv[B,T,3C]; batch 1 has its last two keys padded
B, T, C, NH = 2, 6, 8, 2
hs = C // NH
mask = torch.ones(B, T)
mask[1, 4:] = 0
out["attention.mask"] = mask


def attention(qkv, key_mask, causal):
    q, k, v = qkv.split(C, dim=2)
    q, k, v = (t.reshape(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(hs)
    if key_mask is not None:
        s = s.masked_fill(key_mask[:, None, None, :] == 0, float("-inf"))
    if causal:
        s = s.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
    p = torch.softmax(s, dim=-1)
    return (p @ v).transpose(1, 2).reshape(B, T, C), p


qkv = leaf("attention.qkv", B, T, 3 * C)
y, p = attention(qkv, mask, False)
backward("attention", y, [("qkv", qkv)])
out["attention.att"] = p.detach().float()
y, p = attention(qkv, None, True)
backward("attention_causal", y, [("qkv", qkv)])
out["attention_causal.att"] = p.detach().float()

# softmax: 4 rows of 9
x = leaf("softmax.inp", 4, 9, scale=2.0)
backward("softmax", torch.softmax(x, dim=-1), [("inp", x)])

# layer norm: N=5, C=16, eps 1e-12 as FLAVA
x = leaf("layernorm.inp", 5, 16, scale=2.0)
w, b = leaf("layernorm.w", 16), leaf("layernorm.b", 16)
backward("layernorm", F.layer_norm(x, (16,), w, b, eps=1e-12), [("inp", x), ("w", w), ("b", b)])
out["layernorm.mean"] = x.detach().mean(-1).float()
out["layernorm.var"] = x.detach().var(-1, unbiased=False).float()

# activations over 50 values (kept away from ReLU's kink)
for name, f in (("gelu", F.gelu), ("tanh", torch.tanh), ("relu", F.relu)):
    x = leaf(name + ".inp", 50, scale=2.0)
    with torch.no_grad():
        x[x.abs() < 1e-3] = 0.5
        out[name + ".inp"] = x.detach().float()
    backward(name, f(x), [("inp", x)])

path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ops_dense.safetensors")
st.save(path, out, {"source": "tests/reference/ops_dense_fixtures.py", "torch": torch.__version__})
print(f"wrote {path}: {len(out)} tensors")
