"""Benchmark (not a test): PyTorch samples/s of one FLAVA pretraining step of
the config bench-small, the yardstick for `flava bench`.

bench-small: hidden 384 in the image, text and multimodal encoders (and the
top-level hidden_size), 6 image + 6 text + 3 multimodal layers, 6 heads,
MLP 1536, 224x224 images with patch 16 (196 patches), 32 text tokens, text
vocab 30522, image vocab 8192, projection_dim 768 (HF default), batch 16.

One step = forward_pretraining on one image-text batch (unmasked and masked
passes; the unmasked multimodal pass skipped as in HF) with all six losses:
ITM, contrastive, MMM-image, MMM-text, plus MIM and MLM on the masked
unimodal outputs of the same batch (flava_ref's unimodal_on_paired; HF itself
computes MIM/MLM only on unimodal batches). MIM labels are given (no
codebook); 40% of patches and 15% of tokens masked; one ITM negative in
four. Then backward and one AdamW step (lr 1e-3, wd 0.01 on the decayed
group). Threads: 2. Precision: f32, and bf16 autocast (torch.autocast('cpu',
dtype=torch.bfloat16): matmuls/convs in bf16, f32 master weights).

Run: /usr/bin/python3 tests/reference/bench_ref.py [--steps N] [--warmup N]
         [--precision f32|bf16|both]
Prints, per precision, the median step time and samples/s over N steps
after the warm-up (defaults 1 + 3 steps each).

Caveat: Debian's torch 1.13 is built without MKL (BLAS_INFO=generic, GEMMs
through OpenBLAS); its f32 torch.bmm -- the attention products -- falls back
to a slow kernel (measured ~1-3 GFLOP/s against ~80 for a Linear), so the
f32 figure understates what PyTorch does elsewhere. bf16 bmm goes through
oneDNN and does not suffer from this.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flava_ref as R  # noqa: E402

H, T, B = 384, 32, 16
BENCH_SMALL = R.make_config(
    image_config=dict(hidden_size=H, num_hidden_layers=6, num_attention_heads=6,
                      intermediate_size=4 * H),
    text_config=dict(hidden_size=H, num_hidden_layers=6, num_attention_heads=6,
                     intermediate_size=4 * H),
    multimodal_config=dict(hidden_size=H, num_hidden_layers=3, num_attention_heads=6,
                           intermediate_size=4 * H),
    hidden_size=H, init_codebook=False)


def make_batch(g):
    n_patch = (224 // 16) ** 2
    ids = torch.randint(5, 30522, (B, T), generator=g)
    ids[:, 0] = 101
    mask = torch.ones(B, T, dtype=torch.long)
    for i in range(B):
        mask[i, T - i % 8:] = 0  # some padding
    ids = ids * mask
    pick = (torch.rand(B, T, generator=g) < 0.15) & mask.bool()
    pick[:, 1] = True
    masked = torch.where(pick, torch.full_like(ids, 103), ids)
    labels = torch.where(pick, ids, torch.full_like(ids, -100))
    bmp = torch.rand(B, n_patch, generator=g) < 0.4
    return dict(pixel_values=torch.randn(B, 3, 224, 224, generator=g), input_ids=ids,
                input_ids_masked=masked, attention_mask=mask,
                token_type_ids=torch.zeros_like(ids), bool_masked_pos=bmp,
                mlm_labels=labels, mim_labels=torch.randint(0, 8192, (B, n_patch), generator=g),
                itm_labels=(torch.arange(B) % 4 != 3).long())


def step(model, opt, batch, bf16):
    opt.zero_grad(set_to_none=False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = R.forward_pretraining(model, unimodal_on_paired=True, **batch)
    out["loss"].backward()
    opt.step()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--precision", choices=("f32", "bf16", "both"), default="both")
    args = ap.parse_args()
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = R.FlavaForPreTraining(BENCH_SMALL)
    R.init_weights(model, BENCH_SMALL, g)
    model.train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [dict(params=[p for n, p in named if not R.no_decay(n)], weight_decay=0.01),
         dict(params=[p for n, p in named if R.no_decay(n)], weight_decay=0.0)],
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    batch = make_batch(g)
    n_params = sum(p.numel() for _, p in named)
    print(f"bench-small: {n_params / 1e6:.1f}M trainable parameters, batch {B}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    for bf16 in {"f32": (False,), "bf16": (True,), "both": (False, True)}[args.precision]:
        times, cpu = [], []
        for i in range(args.warmup + args.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            out = step(model, opt, batch, bf16)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        med = statistics.median(times)
        losses = " ".join(f"{k[10:]}={v.item():.3f}" for k, v in out.items()
                          if k.startswith("loss_info."))
        # CPU seconds tell how much of the 2 cores the step got on a shared machine
        print(f"{'bf16' if bf16 else 'f32 '}: median step {med:.3f} s "
              f"(CPU {statistics.median(cpu):.1f} s) over {len(times)} steps -> "
              f"{B / med:.2f} samples/s   ({losses})")


if __name__ == "__main__":
    main()
