"""Tiny-config fixture for the image codebook (the DALL-E dVAE encoder that
HF FLAVA ships as `image_codebook`), written from the HF semantics in plain
torch: four groups at widths h, 2h, 4h, 8h; each block adds
id_path(x) + post_gain * res_path(x) with post_gain = 1 / (num_groups *
num_blocks_per_group)^2; res_path = relu, 3x3, relu, 3x3, relu, 3x3, relu,
1x1 (hidden width out/4); id_path a 1x1 conv only where the width changes;
2x2 max-pool after groups 1-3; then relu and a 1x1 conv to vocab logits.

Writes tests/fixtures/codebook_tiny.safetensors: the weights under HF names
(image_codebook.blocks...), `codebook_pixel_values` (already mapped 0.8x+0.1,
as FlavaImageProcessor does), `logits` [B,vocab,h,w] and `ids` [B,h*w].
Run with Debian's /usr/bin/python3 from the source root."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

CFG = dict(num_groups=4, input_channels=3, num_blocks_per_group=2, hidden_size=8, vocab_size=32)
B, H, W = 2, 32, 32
PREFIX = "image_codebook.blocks."


def conv_param(params, name, cin, cout, k, gen):
    # PyTorch's default Conv2d init bound: 1/sqrt(fan_in), for weight and bias.
    bound = 1.0 / (cin * k * k) ** 0.5
    params[name + ".weight"] = (torch.rand(cout, cin, k, k, generator=gen) * 2 - 1) * bound
    params[name + ".bias"] = (torch.rand(cout, generator=gen) * 2 - 1) * bound


def widths(cfg):
    h = cfg["hidden_size"]
    return [(h, h), (h, 2 * h), (2 * h, 4 * h), (4 * h, 8 * h)]


def make_params(cfg, gen):
    p = {}
    conv_param(p, PREFIX + "input", cfg["input_channels"], cfg["hidden_size"], 7, gen)
    for g, (cin, cout) in enumerate(widths(cfg), 1):
        for b in range(1, cfg["num_blocks_per_group"] + 1):
            bin_ = cin if b == 1 else cout
            base = f"{PREFIX}group_{g}.group.block_{b}."
            if bin_ != cout:
                conv_param(p, base + "id_path", bin_, cout, 1, gen)
            hid = cout // 4
            conv_param(p, base + "res_path.path.conv_1", bin_, hid, 3, gen)
            conv_param(p, base + "res_path.path.conv_2", hid, hid, 3, gen)
            conv_param(p, base + "res_path.path.conv_3", hid, hid, 3, gen)
            conv_param(p, base + "res_path.path.conv_4", hid, cout, 1, gen)
    conv_param(p, PREFIX + "output.conv", 8 * cfg["hidden_size"], cfg["vocab_size"], 1, gen)
    return p


def conv(p, name, x):
    w = p[name + ".weight"]
    return F.conv2d(x, w, p[name + ".bias"], padding=w.shape[-1] // 2)


def forward(cfg, p, x):
    post_gain = 1.0 / (cfg["num_groups"] * cfg["num_blocks_per_group"]) ** 2
    x = conv(p, PREFIX + "input", x)
    for g, (cin, cout) in enumerate(widths(cfg), 1):
        for b in range(1, cfg["num_blocks_per_group"] + 1):
            base = f"{PREFIX}group_{g}.group.block_{b}."
            idx = conv(p, base + "id_path", x) if base + "id_path.weight" in p else x
            r = x
            for i in range(1, 5):
                r = conv(p, f"{base}res_path.path.conv_{i}", F.relu(r))
            x = idx + post_gain * r
        if g < 4:
            x = F.max_pool2d(x, 2)
    return conv(p, PREFIX + "output.conv", F.relu(x))


def main():
    gen = torch.Generator().manual_seed(1234)
    p = make_params(CFG, gen)
    # Pixels in [0,1] mapped as the processor does: (1 - 2*0.1) x + 0.1.
    pixels = 0.8 * torch.rand(B, CFG["input_channels"], H, W, generator=gen) + 0.1
    with torch.no_grad():
        logits = forward(CFG, {k: v.double() for k, v in p.items()}, pixels.double())
    ids = logits.argmax(dim=1).reshape(B, -1).to(torch.int32)
    out = dict(p)
    out["codebook_pixel_values"] = pixels
    out["logits"] = logits.float()
    out["ids"] = ids
    top2 = logits.topk(2, dim=1).values
    gap = (top2[:, 0] - top2[:, 1]).min().item()
    path = os.path.join("tests", "fixtures", "codebook_tiny.safetensors")
    st.save(path, out, metadata={k: v for k, v in CFG.items()})
    print(f"wrote {path}: {sum(v.numel() for v in p.values())} params, "
          f"logits {tuple(logits.shape)}, |logit| max {logits.abs().max():.4g}, "
          f"smallest top-2 gap {gap:.3g}")


if __name__ == "__main__":
    main()
