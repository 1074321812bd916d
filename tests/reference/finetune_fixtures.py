"""Writes the fine-tuning head fixtures (tests/fixtures/finetune_tiny_*.safetensors).

Run:  /usr/bin/python3 tests/reference/finetune_fixtures.py   (PyTorch 1.13;
seeded, deterministic). Uses the tiny FLAVA of flava_tiny_model.safetensors
through flava_ref.py and adds the fine-tuning heads as heads/mlp.h defines
them (MMF-style classifier on a pooled output):

  logits = decoder(LayerNorm(gelu(dense(pooled))))   dense: C -> 2C,
  LayerNorm eps 1e-12, decoder: 2C -> K; parameters PREFIX.dense.*,
  PREFIX.LayerNorm.*, PREFIX.decoder.*.

Cases (no masking: one pass, as fine-tuning runs):
- vqa: image-text batch, PREFIX vqa_head, K = 5 answers, on the multimodal
  pooler output (multimodal_model.pooler on the post-LN multimodal
  sequence); loss = BCE-with-logits (mean over B*K) * K (MMF's logit_bce);
  inputs add vqa_targets (B, K) soft scores.
- classify: image-only batch, PREFIX classifier on the image pooler, K = 4,
  cross-entropy against labels (I64).
- regress: text-only batch, PREFIX classifier on the text pooler, K = 1,
  MSE against labels (F32), as STS-B.

Each file: the HF-named inputs, param.<name> for the head's weights,
`logits`, `loss`, grad.<name> for the head's parameters and the pooler and
embedding weights the loss reaches (float64 computation, stored as F32).
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import flava_ref as R  # noqa: E402
import st  # noqa: E402

FIX = os.path.join(HERE, "..", "fixtures")


class MLPHead(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.dense = nn.Linear(c, 2 * c)
        self.LayerNorm = nn.LayerNorm(2 * c, eps=1e-12)
        self.decoder = nn.Linear(2 * c, k)

    def forward(self, x):
        return self.decoder(self.LayerNorm(F.gelu(self.dense(x))))


def load_model():
    tensors, meta = st.load(os.path.join(FIX, "flava_tiny_model.safetensors"))
    cfg = json.loads(meta["config"])
    cfg.pop("vocab", None)
    model = R.FlavaForPreTraining(cfg)
    state = model.state_dict()
    model.load_state_dict({k: tensors[k] for k in state})
    return model.double(), cfg


def images(g, b):
    return torch.randn(b, 3, 32, 32, generator=g)


def texts(g, lengths, t=10):
    ids = torch.zeros(len(lengths), t, dtype=torch.long)
    mask = torch.zeros(len(lengths), t, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, 0] = 2
        ids[i, 1:n - 1] = torch.randint(5, 100, (n - 2,), generator=g)
        ids[i, n - 1] = 3
        mask[i, :n] = 1
    return ids, mask


def pooled(model, source, batch):
    fl = model.flava
    if source == "image":
        return fl.image_model(batch["pixel_values"].double())[2]
    if source == "text":
        return fl.text_model(batch["input_ids"], batch["attention_mask"],
                             batch["token_type_ids"])[2]
    _, last_i, _ = fl.image_model(batch["pixel_values"].double())
    _, last_t, _ = fl.text_model(batch["input_ids"], batch["attention_mask"],
                                 batch["token_type_ids"])
    img_mm, txt_mm = fl.image_to_mm_projection(last_i), fl.text_to_mm_projection(last_t)
    am = batch["attention_mask"]
    mask = torch.cat([torch.ones(am.shape[0], img_mm.shape[1] + 1, dtype=am.dtype), am], 1)
    return fl.multimodal_model(torch.cat([img_mm, txt_mm], 1), mask)[1]


POOLERS = {"image": "flava.image_model.pooler", "text": "flava.text_model.pooler",
           "multimodal": "flava.multimodal_model.pooler"}


def run(name, prefix, source, k, batch, loss_fn, g):
    model, _ = load_model()
    head = MLPHead(32, k).double()
    with torch.no_grad():
        for n, p in head.named_parameters():
            if n.startswith("LayerNorm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_((0.2 if p.dim() > 1 else 0.1) * torch.randn(p.shape, generator=g))
    logits = head(pooled(model, source, batch))
    loss = loss_fn(logits)
    loss.backward()
    out = dict(batch)
    for n, p in head.named_parameters():
        out[f"param.{prefix}.{n}"] = p.detach().float()
        out[f"grad.{prefix}.{n}"] = p.grad.float()
    reached = [POOLERS[source] + ".dense.weight", POOLERS[source] + ".dense.bias"]
    reached += {"image": ["flava.image_model.embeddings.patch_embeddings.projection.weight",
                          "flava.image_model.embeddings.cls_token"],
                "text": ["flava.text_model.embeddings.word_embeddings.weight",
                         "flava.text_model.encoder.layer.1.output.dense.weight"],
                "multimodal": ["flava.multimodal_model.cls_token",
                               "flava.image_to_mm_projection.weight",
                               "flava.text_to_mm_projection.weight",
                               "flava.text_model.embeddings.word_embeddings.weight"]}[source]
    params = dict(model.named_parameters())
    for n in reached:
        out["grad." + n] = params[n].grad.float()
    out["logits"] = logits.detach().float()
    out["loss"] = loss.detach().float()
    st.save(os.path.join(FIX, f"finetune_tiny_{name}.safetensors"), out)
    print(f"{name}: loss {loss.item():.6f}")


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(20261128)
    ids, am = texts(g, [10, 8, 6])
    vqa = dict(pixel_values=images(g, 3), input_ids=ids, attention_mask=am,
               token_type_ids=torch.zeros_like(ids),
               vqa_targets=torch.tensor([[1.0, 0.3, 0, 0, 0], [0, 0, 0.6, 0.9, 0],
                                         [0, 0, 0, 0, 0.3]]))
    run("vqa", "vqa_head", "multimodal", 5, vqa,
        lambda z: F.binary_cross_entropy_with_logits(z, vqa["vqa_targets"].double()) * 5, g)
    cls = dict(pixel_values=images(g, 3), labels=torch.tensor([3, 0, 2]))
    run("classify", "classifier", "image", 4, cls, lambda z: F.cross_entropy(z, cls["labels"]), g)
    ids, am = texts(g, [9, 10, 4, 7])
    reg = dict(input_ids=ids, attention_mask=am, token_type_ids=torch.zeros_like(ids),
               labels=torch.tensor([0.5, 4.2, 2.0, 3.1]))
    run("regress", "classifier", "text", 1, reg,
        lambda z: F.mse_loss(z[:, 0], reg["labels"].double()), g)


if __name__ == "__main__":
    main()
