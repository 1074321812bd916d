"""Writes tests/fixtures/ops_family.safetensors: inputs, outputs and input
gradients of the CLIP/ALIGN ops (batch norm in training mode with the
running-stat update and in inference mode, SiLU, sigmoid, CLIP's quick
GELU, global average pooling, the squeeze-and-excitation scale, and
convolutions behind HF's ZeroPad2d: the stem's (0, 1, 0, 1) and a depthwise stride-2 layer's
correct_pad(5, adjust=True) = (1, 2, 1, 2)) from plain torch autograd in
float64 on float32 inputs, stored as float32. Each backward is that of
loss = sum(out * dout).
Run from the source root: /usr/bin/python3 tests/reference/ops_family_fixtures.py"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

torch.manual_seed(0)
out = {}


def randn(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape) * scale + shift).float()


def record(prefix, fn, **inputs):
    """Saves the float32 inputs as prefix.<name>, fn of their float64 leaves
    as prefix.out, a random prefix.dout and, for each input, the gradient
    of sum(out * dout) as prefix.d<name>."""
    leaves = {}
    for name, t in inputs.items():
        out[f"{prefix}.{name}"] = t
        leaves[name] = t.double().requires_grad_(True)
    y = fn(**leaves)
    dout = torch.randn(*y.shape).float()
    out[prefix + ".out"] = y.detach().float()
    out[prefix + ".dout"] = dout
    grads = torch.autograd.grad((y * dout.double()).sum(), list(leaves.values()))
    for name, g in zip(leaves, grads):
        out[f"{prefix}.d{name}"] = g.float()


# batch norm, training mode: N=3 C=5 H=4 W=3; torch's momentum 0.1 and
# ALIGN's configured 0.99 (HF passes batch_norm_momentum straight to torch)
for tag, momentum in (("bn_train", 0.1), ("bn_train99", 0.99)):
    rm, rv = randn(5, scale=0.3), (torch.rand(5) + 0.5).float()
    out[tag + ".running_mean_in"], out[tag + ".running_var_in"] = rm, rv
    rm64, rv64 = rm.double(), rv.double()  # updated in place by F.batch_norm

    def bn_train(inp, w, b):
        out[tag + ".mean"] = inp.detach().mean((0, 2, 3)).float()
        out[tag + ".var"] = inp.detach().var((0, 2, 3), unbiased=False).float()
        return F.batch_norm(inp, rm64, rv64, w, b, training=True, momentum=momentum, eps=1e-3)

    record(tag, bn_train, inp=randn(3, 5, 4, 3, scale=2.0, shift=0.5), w=randn(5), b=randn(5))
    out[tag + ".running_mean_out"], out[tag + ".running_var_out"] = rm64.float(), rv64.float()

# batch norm, inference mode (running statistics): N=2 C=4 H=3 W=5
rm, rv = randn(4, scale=0.3), (torch.rand(4) + 0.5).float()
out["bn_eval.running_mean"], out["bn_eval.running_var"] = rm, rv
record("bn_eval", lambda inp, w, b: F.batch_norm(inp, rm.double(), rv.double(), w, b,
                                                 training=False, eps=1e-3),
       inp=randn(2, 4, 3, 5), w=randn(4), b=randn(4))

# SiLU, sigmoid and CLIP's quick GELU over 37 values
record("silu", lambda inp: F.silu(inp), inp=randn(37, scale=3.0))
record("sigmoid", lambda inp: torch.sigmoid(inp), inp=randn(37, scale=3.0))
record("quick_gelu", lambda inp: inp * torch.sigmoid(1.702 * inp), inp=randn(37, scale=3.0))

# global average pooling [2,3,5,7] -> [2,3]
record("avgpool", lambda inp: F.adaptive_avg_pool2d(inp, 1).flatten(1), inp=randn(2, 3, 5, 7))

# squeeze-and-excitation scale [2,4,3,5] * [2,4]
record("se", lambda inp, s: inp * s[:, :, None, None], inp=randn(2, 4, 3, 5), s=randn(2, 4))

# stem: ZeroPad2d((0, 1, 0, 1)) then a 3x3 stride-2 "valid" conv, no bias
record("conv_stem", lambda inp, w: F.conv2d(F.pad(inp, (0, 1, 0, 1)), w, stride=2),
       inp=randn(2, 3, 9, 8), w=randn(4, 3, 3, 3, scale=0.5))

# depthwise 5x5 stride 2 behind ZeroPad2d(correct_pad(5, adjust=True)) = (1, 2, 1, 2)
record("conv_dw", lambda inp, w: F.conv2d(F.pad(inp, (1, 2, 1, 2)), w, stride=2, groups=6),
       inp=randn(2, 6, 8, 7), w=randn(6, 1, 5, 5, scale=0.5))

st.save(os.path.join("tests", "fixtures", "ops_family.safetensors"), out)
