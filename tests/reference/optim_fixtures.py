"""Writes tests/fixtures/optim_reference.safetensors: five steps of
torch.optim.AdamW with a no-decay parameter group, gradient clipping by
torch.nn.utils.clip_grad_norm_ and the learning rate from LambdaLR with HF's
cosine-with-warmup factor; plus that schedule over 40 steps.
Run from the source root: /usr/bin/python3 tests/reference/optim_fixtures.py"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

torch.manual_seed(0)
# The flat layout on the C side: w, b, w2, ln (b and ln get no decay).
shapes = {"w": (4, 5), "b": (5,), "w2": (3, 4), "ln": (5,)}
params = {k: torch.nn.Parameter(torch.randn(*s)) for k, s in shapes.items()}
order = ["w", "b", "w2", "ln"]


def flat(ts):
    return torch.cat([t.detach().reshape(-1) for t in ts])


def cosine_with_warmup(warmup, total):
    """HF transformers get_cosine_schedule_with_warmup's lambda (num_cycles 0.5)."""
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    return f


LR, WD, MAX_NORM, STEPS, WARMUP = 0.05, 0.1, 1.0, 5, 2
opt = torch.optim.AdamW([
    {"params": [params["w"], params["w2"]], "weight_decay": WD},
    {"params": [params["b"], params["ln"]], "weight_decay": 0.0},
], lr=LR, betas=(0.9, 0.95), eps=1e-6)
sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(WARMUP, STEPS))

out = {"params0": flat(params[k] for k in order)}
grads, norms, lrs, after = [], [], [], []
# Gradient scales: some steps are clipped (norm > 1), some are not.
scales = [3.0, 0.05, 1.5, 0.1, 10.0]
for step in range(STEPS):
    for k in order:
        params[k].grad = torch.randn(*shapes[k]) * scales[step]
    grads.append(flat(params[k].grad for k in order))
    norms.append(float(torch.nn.utils.clip_grad_norm_([params[k] for k in order], MAX_NORM)))
    lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
    after.append(flat(params[k] for k in order))
out["grads"] = torch.stack(grads)
out["norms"] = torch.tensor(norms, dtype=torch.float32)
out["lrs"] = torch.tensor(lrs, dtype=torch.float32)
out["params"] = torch.stack(after)
out["exp_avg"] = flat(opt.state[params[k]]["exp_avg"] for k in order)
out["exp_avg_sq"] = flat(opt.state[params[k]]["exp_avg_sq"] for k in order)

# The schedule alone: warmup 7, 30 training steps, read at steps 0..30.
probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
ls = torch.optim.lr_scheduler.LambdaLR(probe, cosine_with_warmup(7, 30))
sched_lrs = []
for _ in range(31):
    sched_lrs.append(probe.param_groups[0]["lr"])
    probe.step()
    ls.step()
out["schedule"] = torch.tensor(sched_lrs, dtype=torch.float32)

meta = {"lr": LR, "weight_decay": WD, "max_norm": MAX_NORM, "betas": "0.9,0.95", "eps": 1e-6,
        "warmup": WARMUP, "total": STEPS, "layout": "w[4,5] b[5] w2[3,4] ln[5]"}
st.save("tests/fixtures/optim_reference.safetensors", out, meta)
print("norms", norms)
print("lrs", lrs)
