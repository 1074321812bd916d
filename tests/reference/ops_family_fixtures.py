"""Writes tests/fixtures/ops_family.safetensors: inputs, outputs and input
gradients of the ALIGN/EfficientNet ops (batch norm in training mode with
the running-stat update and in inference mode, SiLU, sigmoid, global
average pooling, the squeeze-and-excitation scale, and convolutions behind
HF's ZeroPad2d: the stem's (0, 1, 0, 1) and a depthwise stride-2 layer's
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


def leaf(name, *shape, scale=1.0, shift=0.0):
    """A float32 input, saved, returned as a float64 leaf."""
    t = (torch.randn(*shape) * scale + shift).float()
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


# batch norm, training mode: N=3 C=5 H=4 W=3; torch's momentum 0.1 and
# ALIGN's configured 0.99 (HF passes batch_norm_momentum straight to torch)
for tag, momentum in (("bn_train", 0.1), ("bn_train99", 0.99)):
    x = leaf(tag + ".inp", 3, 5, 4, 3, scale=2.0, shift=0.5)
    w, b = leaf(tag + ".w", 5), leaf(tag + ".b", 5)
    rm = (torch.randn(5) * 0.3).float()
    rv = (torch.rand(5) + 0.5).float()
    out[tag + ".running_mean_in"], out[tag + ".running_var_in"] = rm, rv
    rm64, rv64 = rm.double(), rv.double()
    y = F.batch_norm(x, rm64, rv64, w, b, training=True, momentum=momentum, eps=1e-3)
    out[tag + ".running_mean_out"], out[tag + ".running_var_out"] = rm64.float(), rv64.float()
    out[tag + ".mean"] = x.detach().mean((0, 2, 3)).float()
    out[tag + ".var"] = x.detach().var((0, 2, 3), unbiased=False).float()
    backward(tag, y, [("inp", x), ("w", w), ("b", b)])

# batch norm, inference mode (running statistics): N=2 C=4 H=3 W=5
x = leaf("bn_eval.inp", 2, 4, 3, 5)
w, b = leaf("bn_eval.w", 4), leaf("bn_eval.b", 4)
rm, rv = (torch.randn(4) * 0.3).float(), (torch.rand(4) + 0.5).float()
out["bn_eval.running_mean"], out["bn_eval.running_var"] = rm, rv
y = F.batch_norm(x, rm.double(), rv.double(), w, b, training=False, eps=1e-3)
backward("bn_eval", y, [("inp", x), ("w", w), ("b", b)])

# SiLU and sigmoid over 37 values
x = leaf("silu.inp", 37, scale=3.0)
backward("silu", F.silu(x), [("inp", x)])
x = leaf("sigmoid.inp", 37, scale=3.0)
backward("sigmoid", torch.sigmoid(x), [("inp", x)])

# global average pooling [2,3,5,7] -> [2,3]
x = leaf("avgpool.inp", 2, 3, 5, 7)
backward("avgpool", F.adaptive_avg_pool2d(x, 1).flatten(1), [("inp", x)])

# squeeze-and-excitation scale [2,4,3,5] * [2,4]
x, s = leaf("se.inp", 2, 4, 3, 5), leaf("se.s", 2, 4)
backward("se", x * s[:, :, None, None], [("inp", x), ("s", s)])

# stem: ZeroPad2d((0, 1, 0, 1)) then a 3x3 stride-2 "valid" conv, no bias
x, w = leaf("conv_stem.inp", 2, 3, 9, 8), leaf("conv_stem.w", 4, 3, 3, 3, scale=0.5)
backward("conv_stem", F.conv2d(F.pad(x, (0, 1, 0, 1)), w, stride=2), [("inp", x), ("w", w)])

# depthwise 5x5 stride 2 behind ZeroPad2d(correct_pad(5, adjust=True)) = (1, 2, 1, 2)
x, w = leaf("conv_dw.inp", 2, 6, 8, 7), leaf("conv_dw.w", 6, 1, 5, 5, scale=0.5)
y = F.conv2d(F.pad(x, (1, 2, 1, 2)), w, stride=2, groups=6)
backward("conv_dw", y, [("inp", x), ("w", w)])

st.save(os.path.join("tests", "fixtures", "ops_family.safetensors"), out)
