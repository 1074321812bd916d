"""Writes the FLAVA parity fixtures (tests/fixtures/flava_tiny_*.safetensors).

Run:  /usr/bin/python3 tests/reference/make_flava_fixtures.py   (PyTorch 1.13,
seeded, deterministic; a second run rewrites identical files). The model is
tests/reference/flava_ref.py, this project's plain-torch re-implementation of
HF FlavaForPreTraining (read its docstring for the semantics and where in
HF's modeling_flava.py each comes from).

Conventions shared by every file
--------------------------------
- Everything is computed in float64 from the F32 weights and F32 pixel inputs
  stored here (F32 -> F64 is exact), then rounded to F32 on saving: the
  fixtures are the exact answer for the stored inputs, not an f32 run.
- Tensor names are HF names. Integer inputs are I64 (HF LongTensor),
  bool_masked_pos is BOOL, attention_mask is I64 (1 = token, 0 = padding).
- Loss rules (HF FlavaForPreTraining.forward, return_loss, training mode):
  pass 1 = unmasked (input_ids, no bool_masked_pos); pass 2 = masked
  (input_ids_masked, bool_masked_pos). The multimodal encoder runs on pass 2
  only (HF skip_unmasked_multimodal_encoder = True) -- the fixtures also carry
  the pass-1 multimodal_embeddings for testing, it feeds no loss.
  * image-only batch: loss_info.mim only. MIM labels are forced to -100 where
    bool_masked_pos == 0 (the given labels there are arbitrary codes on
    purpose: the C side must apply this rule). mim_logits = mim_head on the
    patch positions (CLS_I dropped) of image_masked_embeddings, kept where
    the label != -100, row-major over (batch, patch): shape (n_masked, 64).
  * text-only batch: loss_info.mlm only. mlm_logits likewise over
    text_masked_embeddings, positions with mlm_labels != -100, row-major:
    (n_labelled, 100).
  * image-text batch: loss_info.itm, .global_contrastive, .mmm_image,
    .mmm_text (no unimodal mim/mlm on paired data). itm_labels = [1, 0, 1]:
    - itm_logits (3, 2) on ALL pairs: itm_head.pooler (its own dense+tanh,
      NOT multimodal_model.pooler) on CLS_M of the post-LN masked multimodal
      sequence, then seq_relationship; itm loss = mean CE over all 3 pairs.
    - pos_mask = itm_labels != 0 (if no pair were positive HF would keep all).
      multimodal_masked_embeddings is stored AFTER filtering: (2, 1+17+10, 32)
      = rows 0 and 2. mlm_labels, codebook MIM labels and bool_masked_pos are
      filtered the same way.
    - mmm_image_logits: mmm_image_head on positions 2 .. 2+16 of the filtered
      multimodal sequence (0 = CLS_M, 1 = CLS_I), kept where
      bool_masked_pos, row-major; mmm_text_logits: mmm_text_head on the last
      10 positions where mlm_labels != -100. Each loss is a mean CE.
    - contrastive: image_projection / text_projection of the CLS row of the
      post-LN unmasked image / text sequence, L2-normalised (F.normalize,
      eps 1e-12), logits = dot * exp(logit_scale) (logit_scale clamped in
      place to [0, 4.6052] before the forward). logits_per_image = I T^T,
      logits_per_text = T I^T, both (3, 3); then ROWS are filtered by
      pos_mask: both stored tensors are (2, 3) -- every image / text of the
      batch, the negative's included, stays a candidate column; targets are
      arange(3)[pos_mask] = [0, 2]. loss = (CE(per_image) + CE(per_text)) / 2.
    - MIM labels come from the codebook on codebook_pixel_values (no
      mim_labels input); the raw argmax indices are stored as
      `codebook_labels` (3, 16) I64, and the codebook logits (3, 64, 4, 4)
      as `codebook_logits`. The smallest top-1 minus top-2 gap over the 48
      positions is 0.0030 (logits within -6.8 .. 4.8; the script prints it):
      an f32 codebook must be accurate to ~1e-3 to reproduce every label.
  Every weight is 1.0, so loss = the sum of the loss_info entries.
- grad.<name>: d loss / d parameter for every trainable parameter (the codebook
  is frozen: no grads). Parameters no loss reaches have an all-zero grad
  (unimodal and multimodal `pooler`s always; mim_head/mlm_head on the paired
  batch; the multimodal side and the other modality on unimodal batches). The
  row pad_token_id = 0 of word_embeddings gets zero gradient (nn.Embedding
  padding_idx). X_head.bias and X_head.decoder.bias are ONE tensor: the grad is
  stored under both names.

Files
-----
flava_tiny_model.safetensors: every state_dict tensor of FlavaForPreTraining
  (HF names, F32, codebook included, the tied bias under both names);
  __metadata__["config"] = the FlavaConfig JSON (HF field names, every field
  of the four sub-configs and the top level), __metadata__["special_tokens"] =
  {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}; ordinary
  words are ids 5..99. Tiny config: hidden 32 everywhere (top-level hidden_size 32),
  2 heads, MLP 64, 2 image + 2 text + 1 multimodal layers, projection_dim 24,
  image 32x32 patch 8 (16 patches, sequence 17), image vocab 64, text vocab
  100, max positions 16, text length 10, codebook hidden 8, 2 blocks per
  group, vocab 64, input 32x32 (3 max-pools: 4x4 = 16 labels).
  The weights are NOT an HF init (that would leave tokens, position
  embeddings and LayerNorms at 0/1 and hide bugs): Linear/Conv/Embedding
  weights ~ N(0, 0.2^2) (head decoders too), biases and tokens/position
  embeddings ~ N(0, 0.1^2), LayerNorm weights 1 + N(0, 0.1^2), logit_scale
  2.6592; codebook convs ~ N(0, 2/fan_in), biases N(0, 0.01^2).
flava_tiny_{image_text,image,text}_inputs.safetensors: the HF forward args.
flava_tiny_{image_text,image,text}_outputs.safetensors: the output fields
  present for that batch (FlavaForPreTrainingOutput names: image_embeddings,
  text_embeddings, multimodal_embeddings, image/text/multimodal_masked_
  embeddings = whole post-LN sequences (B, S, 32); *_logits; loss_info.<name>;
  loss), codebook_labels/codebook_logits (image-text), grad.<name>.
flava_tiny_adamw.safetensors: 3 AdamW steps on the image-text batch from the
  model file (torch.optim.AdamW: lr 1e-3, betas 0.9/0.999, eps 1e-8,
  weight_decay 0.01 decoupled: p *= 1 - lr*wd, then with t = 1, 2, 3:
  m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2,
  p -= lr * (m / (1 - 0.9^t)) / (sqrt(v) / sqrt(1 - 0.999^t) + eps); no decay for flava_ref.no_decay names: biases, LayerNorms,
  word/position/token_type embeddings, image position_embeddings, cls/mask
  tokens, logit_scale). Every trainable parameter steps, even with a zero
  gradient (so unused decayed weights shrink by lr*wd each step); the frozen
  codebook does not. logit_scale is clamped before each forward.
  `loss` (3,) = the total loss of the forward before step 1, 2, 3;
  `loss_info.<name>` (3,) likewise; `param.<name>` = every trainable
  parameter after the 3 steps.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flava_ref as R  # noqa: E402
import st  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)

TINY = R.make_config(
    image_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, image_size=32, patch_size=8, vocab_size=64),
    text_config=dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=16),
    multimodal_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64),
    image_codebook_config=dict(hidden_size=8, num_blocks_per_group=2, vocab_size=64),
    hidden_size=32, projection_dim=24)
T = 10


def fixture_weights(model, g):
    """HF init, then every tensor made informative (see the file notes)."""
    R.init_weights(model, model.cfg, g)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("image_codebook."):
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_(torch.randn(p.shape, generator=g) *
                        ((2.0 / fan_in) ** 0.5 if p.dim() > 1 else 0.01))
            elif name == "flava.logit_scale":
                continue
            elif "LayerNorm.weight" in name or "layernorm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2 and not name.endswith(("cls_token", "mask_token",
                                                      "position_embeddings")):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def images(g, b):
    """Smooth random RGB images in [0,1] -> (pixel_values, codebook_pixel_values)."""
    coarse = torch.rand(b, 3, 4, 4, generator=g)
    u = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    u = (u + 0.15 * torch.rand(b, 3, 32, 32, generator=g)).clamp(0, 1)
    return (u - CLIP_MEAN) / CLIP_STD, 0.8 * u + 0.1


def texts(g, lengths):
    """[CLS] w.. [SEP] [PAD].. plus BERT-style corruption of half of the
    words (at least one): the 1st, 4th.. become [MASK], the 2nd, 5th.. a random
    word, the 3rd, 6th.. stay; all of them are labelled."""
    b = len(lengths)
    ids = torch.full((b, T), PAD, dtype=torch.long)
    mask = torch.zeros(b, T, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, 0] = CLS
        ids[i, 1:n - 1] = torch.randint(5, 100, (n - 2,), generator=g)
        ids[i, n - 1] = SEP
        mask[i, :n] = 1
    masked = ids.clone()
    labels = torch.full((b, T), -100, dtype=torch.long)
    for i, n in enumerate(lengths):
        picks = torch.randperm(n - 2, generator=g)[:max(1, (n - 2) // 2)] + 1
        for j, k in enumerate(picks.tolist()):
            labels[i, k] = ids[i, k]
            if j % 3 == 0:
                masked[i, k] = MASK
            elif j % 3 == 1:
                masked[i, k] = int(torch.randint(5, 100, (1,), generator=g))
    return ids, mask, masked, labels


def patch_mask(g, b, n_masked):
    m = torch.zeros(b, 16, dtype=torch.bool)
    for i in range(b):
        m[i, torch.randperm(16, generator=g)[:n_masked[i]]] = True
    return m


def make_batches(g):
    pix, cb = images(g, 3)
    ids, am, idm, lab = texts(g, [10, 7, 5])
    tt = torch.zeros_like(ids)
    tt[1, 4:7] = 1  # a second segment, so token_type_embeddings row 1 is exercised
    image_text = dict(pixel_values=pix, codebook_pixel_values=cb, input_ids=ids,
                      input_ids_masked=idm, attention_mask=am, token_type_ids=tt,
                      mlm_labels=lab, bool_masked_pos=patch_mask(g, 3, [6, 5, 7]),
                      itm_labels=torch.tensor([1, 0, 1]))
    pix, _ = images(g, 2)
    image = dict(pixel_values=pix, bool_masked_pos=patch_mask(g, 2, [5, 8]),
                 mim_labels=torch.randint(0, 64, (2, 16), generator=g))
    ids, am, idm, lab = texts(g, [10, 6])
    text = dict(input_ids=ids, input_ids_masked=idm, attention_mask=am,
                token_type_ids=torch.zeros_like(ids), mlm_labels=lab)
    return dict(image_text=image_text, image=image, text=text)


def as_f64(batch):
    return {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}


def trainable(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def tied_names(model):
    """{param name: every state_dict key that holds the same tensor}."""
    sd = model.state_dict(keep_vars=True)
    names = {}
    for n, p in model.named_parameters():
        names[n] = [k for k, v in sd.items() if v is p]
    return names


def zero_grads(model):
    """Zeros, not None: unused parameters then report (and AdamW steps) a zero grad."""
    for _, p in trainable(model):
        p.grad = torch.zeros_like(p)


def run_batch(model, batch):
    zero_grads(model)
    out = R.forward_pretraining(model, skip_unmasked_multimodal_encoder=False, **as_f64(batch))
    out["loss"].backward()
    saved = {k: v.detach().float() if v.is_floating_point() else v for k, v in out.items()}
    if "codebook_labels" in out:
        with torch.no_grad():
            logits = model.image_codebook(batch["codebook_pixel_values"].double())
        top2 = logits.topk(2, dim=1).values
        gap = (top2[:, 0] - top2[:, 1]).min().item()
        print(f"  codebook: min top-1/top-2 gap {gap:.4g} (logit range "
              f"{logits.min().item():.3g} .. {logits.max().item():.3g})")
        saved["codebook_logits"] = logits.float()
    for n, p in trainable(model):
        for key in TIED[n]:
            saved["grad." + key] = p.grad.float()
    return out, saved


def adamw_run(model, batch, steps=3):
    decay = [p for n, p in trainable(model) if not R.no_decay(n)]
    keep = [p for n, p in trainable(model) if R.no_decay(n)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.01),
                             dict(params=keep, weight_decay=0.0)],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    hist = {}
    for _ in range(steps):
        zero_grads(model)
        out = R.forward_pretraining(model, **as_f64(batch))
        out["loss"].backward()
        for k, v in out.items():
            if k == "loss" or k.startswith("loss_info."):
                hist.setdefault(k, []).append(v.item())
        opt.step()
    res = {k: torch.tensor(v, dtype=torch.float32) for k, v in hist.items()}
    for n, p in trainable(model):
        for key in TIED[n]:
            res["param." + key] = p.detach().float()
    return res


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(20261127)
    model = R.FlavaForPreTraining(TINY)
    fixture_weights(model, g)
    model.train()
    global TIED
    TIED = tied_names(model)
    os.makedirs(OUT, exist_ok=True)
    tokens = {"[PAD]": PAD, "[UNK]": UNK, "[CLS]": CLS, "[SEP]": SEP, "[MASK]": MASK}
    st.save(os.path.join(OUT, "flava_tiny_model.safetensors"),
            {k: v.float() for k, v in model.state_dict().items()},
            {"config": json.dumps(TINY, sort_keys=True), "special_tokens": json.dumps(tokens)})
    batches = make_batches(g)
    model.double()
    for name, batch in batches.items():
        batch = {k: v.float() if v.is_floating_point() else v for k, v in batch.items()}
        batches[name] = batch
        st.save(os.path.join(OUT, f"flava_tiny_{name}_inputs.safetensors"), batch)
        out, saved = run_batch(model, batch)
        st.save(os.path.join(OUT, f"flava_tiny_{name}_outputs.safetensors"), saved)
        print(f"{name}: " + ", ".join(f"{k}={v.item():.6f}" for k, v in out.items()
                                       if k.startswith("loss")))
    res = adamw_run(model, batches["image_text"])
    st.save(os.path.join(OUT, "flava_tiny_adamw.safetensors"), res,
            {"optimizer": "AdamW lr=1e-3 betas=(0.9,0.999) eps=1e-8 weight_decay=0.01",
             "batch": "flava_tiny_image_text_inputs.safetensors"})
    print("adamw losses:", [round(x, 6) for x in res["loss"].tolist()])


TIED = {}

if __name__ == "__main__":
    main()
