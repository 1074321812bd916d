"""Writes tests/fixtures/ops_rest.safetensors: inputs, outputs and gradients
of convolution, max pooling, embedding, L2 normalisation and the losses as
PyTorch computes them (torch.nn.functional, in float64 from float32
inputs), for tests/check_ops_rest.c.

Each backward is the gradient of sum(out * R) for a stored random R (for a
loss, of loss * R with a scalar R). Shapes here must match the C test.
Run from the source root: /usr/bin/python3 tests/reference/ops_rest_fixtures.py"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

torch.manual_seed(0)
out = {}


def leaf(t):
    """A float32 input, and its float64 twin that takes gradients."""
    t = t.float()
    return t, t.double().requires_grad_(True)


def put(prefix, **tensors):
    for k, v in tensors.items():
        v = v.detach()
        out[f"{prefix}.{k}"] = v.float() if v.is_floating_point() else v


def conv_case(name, N, C, H, W, OC, K, stride, pad, groups, src_nhwc, dst_nhwc):
    x, xd = leaf(torch.randn(N, C, H, W))
    w, wd = leaf(torch.randn(OC, C // groups, K, K) * 0.3)
    b, bd = leaf(torch.randn(OC))
    y = F.conv2d(xd, wd, bd, stride=stride, padding=pad, groups=groups)
    if dst_nhwc:
        y = y.permute(0, 2, 3, 1)
    R = torch.randn(y.shape)
    (y * R.double()).sum().backward()
    dx = xd.grad
    if src_nhwc:
        x, dx = x.permute(0, 2, 3, 1), dx.permute(0, 2, 3, 1)
    put(name, x=x.contiguous(), w=w, b=b, R=R, y=y.contiguous(), dx=dx.contiguous(),
        dw=wd.grad, db=bd.grad)


# a padded grouped conv; a depthwise one on NHWC; a patch embedding whose
# output is [N, patches, channels]
conv_case("conv_grouped", 2, 4, 9, 8, 6, 3, 2, 1, 2, False, False)
conv_case("conv_depthwise", 1, 4, 7, 7, 4, 3, 1, 1, 4, True, True)
conv_case("conv_patch", 2, 3, 32, 32, 16, 8, 8, 0, 1, False, True)

for name, k, s in (("maxpool_2s2", 2, 2), ("maxpool_3s2", 3, 2)):
    x, xd = leaf(torch.randn(2, 3, 8, 9))
    y = F.max_pool2d(xd, k, s)
    R = torch.randn(y.shape)
    (y * R.double()).sum().backward()
    put(name, x=x, R=R, y=y, dx=xd.grad)

ids = torch.randint(0, 11, (23,), dtype=torch.int64)
table, tabled = leaf(torch.randn(11, 70))
y = F.embedding(ids, tabled)
R = torch.randn(y.shape)
(y * R.double()).sum().backward()
put("embedding", ids=ids, table=table, R=R, y=y, dtable=tabled.grad)

x, xd = leaf(torch.randn(5, 33))
y = F.normalize(xd, p=2.0, dim=1, eps=1e-12)
R = torch.randn(y.shape)
(y * R.double()).sum().backward()
put("l2norm", x=x, R=R, y=y, dx=xd.grad)

logits, ld = leaf(torch.randn(7, 10) * 3)
labels = torch.randint(0, 10, (7,), dtype=torch.int64)
labels[2] = -100
loss = F.cross_entropy(ld, labels, ignore_index=-100)
R = torch.tensor([0.75])
(loss * R.double()).sum().backward()
put("cross_entropy", logits=logits, labels=labels, R=R, loss=loss.reshape(1), dlogits=ld.grad)

logits, ld = leaf(torch.randn(4, 9) * 4)
targets = torch.rand(4, 9)
loss = F.binary_cross_entropy_with_logits(ld, targets.double())
R = torch.tensor([1.5])
(loss * R.double()).sum().backward()
put("bce", logits=logits, targets=targets, R=R, loss=loss.reshape(1), dlogits=ld.grad)

pred, pd = leaf(torch.randn(31))
target = torch.randn(31)
loss = F.mse_loss(pd, target.double())
R = torch.tensor([-0.5])
(loss * R.double()).sum().backward()
put("mse", pred=pred, target=target, R=R, loss=loss.reshape(1), dpred=pd.grad)

path = os.path.join("tests", "fixtures", "ops_rest.safetensors")
st.save(path, out, {"generator": "tests/reference/ops_rest_fixtures.py",
                    "torch": torch.__version__})
print(f"wrote {path}: {len(out)} tensors")
