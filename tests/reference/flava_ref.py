"""Independent plain-torch reference of the pinned FLAVA model (DESIGN.md s.2).

Written from the spec and from reading HuggingFace transformers'
modeling_flava.py; nothing is imported or copied from it. The module tree
reproduces the state_dict keys and shapes of HF `FlavaForPreTraining`, so a
state_dict from one loads into the other. Config dicts use HF `FlavaConfig`
field names (see `make_config`).

Semantics, each with where HF decides it (modeling_flava.py):
- FlavaLayer: pre-LN, x += attn(LN_before(x)); x += mlp(LN_after(x)); exact
  (erf) GELU ("gelu" in ACT2FN); all LayerNorms eps = layer_norm_eps 1e-12.
- Attention mask (get_extended_attention_mask): (1 - mask) * finfo.min is
  ADDED to the scaled scores, on keys only; padded queries still produce
  outputs (they appear in text_embeddings).
- FlavaImageEmbeddings.forward: patch conv (kernel = stride = patch); where
  bool_masked_pos, emb = emb*(1-m) + mask_token*m, THEN cls_token is
  prepended, THEN position_embeddings (P+1 rows) are added.
- FlavaTextEmbeddings: word + token_type + position (arange(T)), LayerNorm.
  word_embeddings has padding_idx = pad_token_id: its row never receives a
  gradient (nn.Embedding semantics).
- Image/Text/Multimodal model: encoder, final `layernorm`; pooler =
  tanh(dense(h[:, 0])) on the post-LN sequence. `*_embeddings` outputs are
  the whole post-LN sequence (FlavaModel: image_output[0]), not the pooler.
- FlavaModel.forward: the multimodal input projects hidden_states[-1] of each
  unimodal encoder, i.e. the output of the last layer BEFORE the final
  layernorm ("these states don't use final layernorm"); sequence is
  [cls_token_M; image (CLS_I + P patches); text (T)]; key mask =
  ones(1 + P + 1) ++ attention_mask (only when attention_mask is given).
- FlavaForPreTraining.forward: pass 1 (unmasked: input_ids, no
  bool_masked_pos, multimodal encoder skipped when
  skip_unmasked_multimodal_encoder) feeds only the contrastive loss; pass 2
  (masked: input_ids_masked, bool_masked_pos) feeds MIM/MLM/ITM/MMM.
  See `forward_pretraining` for the loss rules.
- FlavaImageCodebook: DALL-E dVAE encoder, see `ImageCodebook`.
- FlavaPreTrainedModel._init_weights: see `init_weights`.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# HF defaults (configuration_flava.py). FLAVA-full = these values.
IMAGE_DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, initializer_range=0.02,
                      layer_norm_eps=1e-12, image_size=224, patch_size=16, num_channels=3,
                      qkv_bias=True, mask_token=True, vocab_size=8192)
TEXT_DEFAULTS = dict(vocab_size=30522, type_vocab_size=2, max_position_embeddings=512,
                     position_embedding_type="absolute", hidden_size=768, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0, qkv_bias=True)
MULTIMODAL_DEFAULTS = dict(hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
                           intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, initializer_range=0.02,
                           layer_norm_eps=1e-12, qkv_bias=True, use_cls_token=True)
CODEBOOK_DEFAULTS = dict(num_groups=4, input_channels=3, num_blocks_per_group=2, hidden_size=256,
                         vocab_size=8192, freeze=True, initializer_range=0.02)
TOP_DEFAULTS = dict(hidden_size=768, layer_norm_eps=1e-12, projection_dim=768, init_codebook=True,
                    logit_scale_init_value=2.6592, initializer_range=0.02, ce_ignore_index=-100,
                    mim_weight=1.0, mlm_weight=1.0, global_contrastive_weight=1.0, itm_weight=1.0,
                    mmm_image_weight=1.0, mmm_text_weight=1.0, global_backprop_contrastive=True,
                    skip_unmasked_multimodal_encoder=True, return_loss=True)

# FlavaForPreTraining clamps logit_scale.data to [0, 4.6052] in training mode
# (LOGIT_SCALE_CLAMP_MAX is the rounded ln 100 = 4.60517...).
LOGIT_SCALE_MIN = 0.0
LOGIT_SCALE_MAX = 4.6052


def make_config(image_config=None, text_config=None, multimodal_config=None,
                image_codebook_config=None, **top):
    """A full FlavaConfig dict: HF defaults overridden by the given fields."""
    cfg = dict(TOP_DEFAULTS)
    cfg.update(top)
    cfg["image_config"] = {**IMAGE_DEFAULTS, **(image_config or {})}
    cfg["text_config"] = {**TEXT_DEFAULTS, **(text_config or {})}
    cfg["multimodal_config"] = {**MULTIMODAL_DEFAULTS, **(multimodal_config or {})}
    cfg["image_codebook_config"] = {**CODEBOOK_DEFAULTS, **(image_codebook_config or {})}
    return cfg


def extended_mask(mask, dtype):
    """(B, S) 1/0 key mask -> additive (B, 1, 1, S) bias, as HF does it."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.query = nn.Linear(h, h, bias=c["qkv_bias"])
        self.key = nn.Linear(h, h, bias=c["qkv_bias"])
        self.value = nn.Linear(h, h, bias=c["qkv_bias"])

    def forward(self, x, bias):
        b, s, h = x.shape
        d = h // self.heads

        def split(t):
            return t.view(b, s, self.heads, d).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        if bias is not None:
            scores = scores + bias
        ctx = torch.softmax(scores, dim=-1) @ v
        return ctx.transpose(1, 2).reshape(b, s, h)


class Dense(nn.Module):
    """Holds one Linear under `.dense`, the HF naming of output/intermediate."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = SelfAttention(c)
        self.output = Dense(c["hidden_size"], c["hidden_size"])

    def forward(self, x, bias):
        return self.output.dense(self.attention(x, bias))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, eps = c["hidden_size"], c["layer_norm_eps"]
        self.attention = Attention(c)
        self.intermediate = Dense(h, c["intermediate_size"])
        self.output = Dense(c["intermediate_size"], h)
        self.layernorm_before = nn.LayerNorm(h, eps=eps)
        self.layernorm_after = nn.LayerNorm(h, eps=eps)

    def forward(self, x, bias):
        x = x + self.attention(self.layernorm_before(x), bias)
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, x, bias):
        for lyr in self.layer:
            x = lyr(x, bias)
        return x


class Pooler(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.dense = nn.Linear(h, h)

    def forward(self, seq):
        return torch.tanh(self.dense(seq[:, 0]))


class PatchEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        p = c["patch_size"]
        self.projection = nn.Conv2d(c["num_channels"], c["hidden_size"], kernel_size=p, stride=p)

    def forward(self, pixels):
        return self.projection(pixels).flatten(2).transpose(1, 2)  # (B, P, H), row-major grid


class ImageEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        n = (c["image_size"] // c["patch_size"]) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, h))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, h))
        self.patch_embeddings = PatchEmbeddings(c)
        self.position_embeddings = nn.Parameter(torch.zeros(1, n + 1, h))

    def forward(self, pixels, bool_masked_pos=None):
        e = self.patch_embeddings(pixels)
        b = e.shape[0]
        if bool_masked_pos is not None:
            m = bool_masked_pos.reshape(b, -1, 1).to(e.dtype)
            e = e * (1.0 - m) + self.mask_token * m
        e = torch.cat([self.cls_token.expand(b, -1, -1), e], dim=1)
        return e + self.position_embeddings


class TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.pad = c["pad_token_id"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], h, padding_idx=self.pad)
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], h)
        self.LayerNorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])

    def forward(self, input_ids, token_type_ids=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        pos = torch.arange(input_ids.shape[1])
        e = (F.embedding(input_ids, self.word_embeddings.weight, padding_idx=self.pad)
             + self.token_type_embeddings(token_type_ids) + self.position_embeddings(pos)[None])
        return self.LayerNorm(e)


class UnimodalModel(nn.Module):
    """FlavaImageModel / FlavaTextModel: returns (post-LN sequence, last layer
    output before the final LN, pooled)."""

    def __init__(self, c, embeddings):
        super().__init__()
        self.embeddings = embeddings
        self.encoder = Encoder(c)
        self.layernorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.pooler = Pooler(c["hidden_size"])

    def run(self, x, bias):
        last = self.encoder(x, bias)
        seq = self.layernorm(last)
        return seq, last, self.pooler(seq)


class ImageModel(UnimodalModel):
    def __init__(self, c):
        super().__init__(c, ImageEmbeddings(c))

    def forward(self, pixel_values, bool_masked_pos=None):
        return self.run(self.embeddings(pixel_values, bool_masked_pos), None)


class TextModel(UnimodalModel):
    def __init__(self, c):
        super().__init__(c, TextEmbeddings(c))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        x = self.embeddings(input_ids, token_type_ids)
        bias = None if attention_mask is None else extended_mask(attention_mask, x.dtype)
        return self.run(x, bias)


class MultimodalModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, h))
        self.encoder = Encoder(c)
        self.layernorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])
        self.pooler = Pooler(h)

    def forward(self, x, mask=None):
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        bias = None if mask is None else extended_mask(mask, x.dtype)
        seq = self.layernorm(self.encoder(x, bias))
        return seq, self.pooler(seq)


class FlavaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ic, tc, mc = cfg["image_config"], cfg["text_config"], cfg["multimodal_config"]
        self.text_model = TextModel(tc)
        self.image_model = ImageModel(ic)
        self.multimodal_model = MultimodalModel(mc)
        self.image_projection = nn.Linear(ic["hidden_size"], cfg["projection_dim"])
        self.text_projection = nn.Linear(tc["hidden_size"], cfg["projection_dim"])
        self.logit_scale = nn.Parameter(torch.tensor(cfg["logit_scale_init_value"]))
        self.image_to_mm_projection = nn.Linear(ic["hidden_size"], mc["hidden_size"])
        self.text_to_mm_projection = nn.Linear(tc["hidden_size"], mc["hidden_size"])

    def forward(self, input_ids=None, pixel_values=None, attention_mask=None,
                token_type_ids=None, bool_masked_pos=None, skip_multimodal_encoder=False):
        """One pass of HF FlavaModel: dict with image/text/multimodal sequences."""
        out = dict(image=None, text=None, multimodal=None)
        img_mm = txt_mm = None
        if pixel_values is not None:
            seq, last, _ = self.image_model(pixel_values, bool_masked_pos)
            out["image"] = seq
            img_mm = self.image_to_mm_projection(last)
        if input_ids is not None:
            seq, last, _ = self.text_model(input_ids, attention_mask, token_type_ids)
            out["text"] = seq
            txt_mm = self.text_to_mm_projection(last)
        if img_mm is not None and txt_mm is not None and not skip_multimodal_encoder:
            mask = None
            if attention_mask is not None:
                b, n_img = img_mm.shape[0], img_mm.shape[1] + 1  # + CLS_M
                mask = torch.cat([torch.ones(b, n_img, dtype=attention_mask.dtype),
                                  attention_mask], dim=1)
            out["multimodal"], _ = self.multimodal_model(torch.cat([img_mm, txt_mm], dim=1), mask)
        return out


class CodebookResPath(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        hid = n_out // 4
        self.path = nn.Sequential()
        self.path.add_module("relu_1", nn.ReLU())
        self.path.add_module("conv_1", nn.Conv2d(n_in, hid, 3, padding=1))
        self.path.add_module("relu_2", nn.ReLU())
        self.path.add_module("conv_2", nn.Conv2d(hid, hid, 3, padding=1))
        self.path.add_module("relu_3", nn.ReLU())
        self.path.add_module("conv_3", nn.Conv2d(hid, hid, 3, padding=1))
        self.path.add_module("relu_4", nn.ReLU())
        self.path.add_module("conv_4", nn.Conv2d(hid, n_out, 1))


class CodebookBlock(nn.Module):
    """id_path(x) + res_path(x) / n_layers^2; id_path is a 1x1 conv only when
    the channel count changes (otherwise identity, no parameters)."""

    def __init__(self, n_in, n_out, n_layers):
        super().__init__()
        self.post_gain = 1.0 / n_layers ** 2
        self.id_path = nn.Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.res_path = CodebookResPath(n_in, n_out)

    def forward(self, x):
        return self.id_path(x) + self.post_gain * self.res_path.path(x)


class CodebookGroup(nn.Module):
    def __init__(self, n_blocks, n_layers, n_in, n_out, pool):
        super().__init__()
        self.group = nn.Sequential()
        for i in range(n_blocks):
            self.group.add_module(f"block_{i + 1}",
                                  CodebookBlock(n_in if i == 0 else n_out, n_out, n_layers))
        if pool:
            self.group.add_module("pool", nn.MaxPool2d(kernel_size=2))

    def forward(self, x):
        return self.group(x)


class ImageCodebook(nn.Module):
    """FlavaImageCodebook (DALL-E dVAE encoder). Input: codebook_pixel_values
    already mapped 0.8*x + 0.1 (FlavaImageProcessor does it, x in [0, 1]).
    input conv 7x7 pad 3 -> h; group_1 h->h, group_2 h->2h, group_3 2h->4h
    (each n blocks, then 2x2 max-pool), group_4 4h->8h (no pool);
    output = ReLU, 1x1 conv 8h->vocab. Blocks: ReLU,3x3,ReLU,3x3,ReLU,3x3,
    ReLU,1x1 with hid = out/4, post_gain 1/(num_groups*blocks)^2.
    Labels = argmax over the vocab channel, (B, H/8, W/8) flattened row-major."""

    def __init__(self, c):
        super().__init__()
        h, nb = c["hidden_size"], c["num_blocks_per_group"]
        n_layers = c["num_groups"] * nb
        self.blocks = nn.Sequential()
        self.blocks.add_module("input", nn.Conv2d(c["input_channels"], h, 7, padding=3))
        self.blocks.add_module("group_1", CodebookGroup(nb, n_layers, h, h, True))
        self.blocks.add_module("group_2", CodebookGroup(nb, n_layers, h, 2 * h, True))
        self.blocks.add_module("group_3", CodebookGroup(nb, n_layers, 2 * h, 4 * h, True))
        self.blocks.add_module("group_4", CodebookGroup(nb, n_layers, 4 * h, 8 * h, False))
        out = nn.Sequential()
        out.add_module("relu", nn.ReLU())
        out.add_module("conv", nn.Conv2d(8 * h, c["vocab_size"], 1))
        self.blocks.add_module("output", out)
        for p in self.parameters():
            p.requires_grad_(not c["freeze"])

    def forward(self, pixels):
        return self.blocks(pixels)

    def indices(self, pixels):
        return self.blocks(pixels).argmax(dim=1).flatten(1)


class PredictionHeadTransform(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])


class MaskedPredictionHead(nn.Module):
    """dense -> GELU -> LayerNorm -> decoder. `bias` and `decoder.bias` are one
    Parameter (HF ties them), so the state_dict carries it under both keys."""

    def __init__(self, c):
        super().__init__()
        self.transform = PredictionHeadTransform(c)
        self.decoder = nn.Linear(c["hidden_size"], c["vocab_size"])
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))
        self.decoder.bias = self.bias

    def forward(self, x):
        t = self.transform
        h = F.gelu(t.dense(x))
        # no-op in f32/f64; under torch 1.13's CPU bf16 autocast LayerNorm
        # refuses a bf16 input with f32 weights
        return self.decoder(t.LayerNorm(h.to(t.LayerNorm.weight.dtype)))


class ITMHead(nn.Module):
    """Its OWN pooler (itm_head.pooler), not multimodal_model.pooler."""

    def __init__(self, h):
        super().__init__()
        self.pooler = Pooler(h)
        self.seq_relationship = nn.Linear(h, 2)

    def forward(self, seq):
        return self.seq_relationship(self.pooler(seq))


class FlavaForPreTraining(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.flava = FlavaModel(cfg)
        self.image_codebook = ImageCodebook(cfg["image_codebook_config"]) \
            if cfg["init_codebook"] else None
        # HF builds the masked heads from the unimodal configs, so mmm_image_head
        # uses image_config (hidden, vocab) on multimodal states and mmm_text_head
        # text_config: multimodal hidden must equal both; itm_head uses the
        # top-level hidden_size.
        self.mim_head = MaskedPredictionHead(cfg["image_config"])
        self.mlm_head = MaskedPredictionHead(cfg["text_config"])
        self.itm_head = ITMHead(cfg["hidden_size"])
        self.mmm_image_head = MaskedPredictionHead(cfg["image_config"])
        self.mmm_text_head = MaskedPredictionHead(cfg["text_config"])


def init_weights(model, cfg, generator=None):
    """FlavaPreTrainedModel._init_weights applied to every module of
    FlavaForPreTraining (std = top-level initializer_range, 0.02):
    Linear and Conv2d weights ~ N(0, std), biases 0 (the codebook's convs
    included); Embedding ~ N(0, std) with the padding_idx row zeroed;
    LayerNorm weight 1, bias 0; masked-prediction head `bias` 0;
    image cls_token, mask_token, position_embeddings 0 and multimodal
    cls_token 0 (plain N(0, std), not truncated, despite the config's
    "truncated_normal" wording); logit_scale = logit_scale_init_value."""
    std = cfg["initializer_range"]
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                mod.weight.normal_(0.0, std, generator=generator)
                if mod.bias is not None:
                    mod.bias.zero_()
            elif isinstance(mod, nn.Embedding):
                mod.weight.normal_(0.0, std, generator=generator)
                if mod.padding_idx is not None:
                    mod.weight[mod.padding_idx].zero_()
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
        emb = model.flava.image_model.embeddings
        for p in (emb.cls_token, emb.mask_token, emb.position_embeddings,
                  model.flava.multimodal_model.cls_token):
            p.zero_()
        model.flava.logit_scale.fill_(cfg["logit_scale_init_value"])


def no_decay(name):
    """Parameters excluded from AdamW weight decay: biases, every LayerNorm,
    the nn.Embedding tables (word/position/token_type), the image
    position_embeddings, CLS/mask tokens and logit_scale. Decayed: every
    Linear/Conv2d weight, the patch projection included."""
    last = name.split(".")[-1]
    return (last == "bias" or "LayerNorm." in name or "layernorm" in name
            or name.endswith("_embeddings.weight")
            or last in ("cls_token", "mask_token", "position_embeddings", "logit_scale"))


def _masked_ce(head, seq, labels, ignore, vocab):
    """HF's masked-prediction pattern: keep positions whose label != ignore,
    row-major over (batch, position); logits (n_kept, vocab); mean CE."""
    keep = labels.ne(ignore)
    logits = head(seq[keep])
    return logits, F.cross_entropy(logits.view(-1, vocab), labels[keep].view(-1))


def forward_pretraining(model, input_ids=None, input_ids_masked=None, pixel_values=None,
                        codebook_pixel_values=None, attention_mask=None, token_type_ids=None,
                        bool_masked_pos=None, mlm_labels=None, mim_labels=None, itm_labels=None,
                        skip_unmasked_multimodal_encoder=None, unimodal_on_paired=False):
    """HF FlavaForPreTraining.forward with return_loss=True in training mode.
    Returns a flat dict: FlavaForPreTrainingOutput field names, losses as
    loss_info.<name>, plus `codebook_labels` when the codebook ran.
    `unimodal_on_paired` (not HF; benchmark only) also computes MIM/MLM on
    the masked unimodal outputs of a paired batch."""
    cfg = model.cfg
    ign = cfg["ce_ignore_index"]
    iv, tv = cfg["image_config"]["vocab_size"], cfg["text_config"]["vocab_size"]
    if skip_unmasked_multimodal_encoder is None:
        skip_unmasked_multimodal_encoder = cfg["skip_unmasked_multimodal_encoder"]
    if input_ids_masked is None and input_ids is not None:
        input_ids_masked = input_ids
    fl = model.flava
    if model.training:
        with torch.no_grad():
            fl.logit_scale.clamp_(LOGIT_SCALE_MIN, LOGIT_SCALE_MAX)
    un = fl(input_ids, pixel_values, attention_mask, token_type_ids, None,
            skip_unmasked_multimodal_encoder)
    ma = fl(input_ids_masked, pixel_values, attention_mask, token_type_ids, bool_masked_pos)
    out = {"image_embeddings": un["image"], "text_embeddings": un["text"],
           "multimodal_embeddings": un["multimodal"], "image_masked_embeddings": ma["image"],
           "text_masked_embeddings": ma["text"]}
    mm_masked = ma["multimodal"]
    losses = {}

    if (ma["image"] is not None or mm_masked is not None) and mim_labels is None:
        with torch.no_grad():
            mim_labels = model.image_codebook.indices(codebook_pixel_values)
        out["codebook_labels"] = mim_labels
    if mim_labels is not None:
        b = mim_labels.shape[0]
        mim_labels = mim_labels.reshape(b, -1).clone()
        bool_masked_pos = bool_masked_pos.reshape(b, -1)
        # HF: labels of unmasked patches are forced to ignore_index
        mim_labels[~bool_masked_pos.bool()] = ign
    if mlm_labels is not None:
        mlm_labels = mlm_labels.reshape(mlm_labels.shape[0], -1)

    unimodal = mm_masked is None or unimodal_on_paired
    if cfg["mim_weight"] > 0 and ma["image"] is not None and unimodal and mim_labels is not None:
        seq = ma["image"][:, -mim_labels.shape[1]:]  # the P patch positions, CLS_I dropped
        out["mim_logits"], loss = _masked_ce(model.mim_head, seq, mim_labels, ign, iv)
        losses["mim"] = loss * cfg["mim_weight"]
    if cfg["mlm_weight"] > 0 and ma["text"] is not None and unimodal and mlm_labels is not None:
        seq = ma["text"][:, -mlm_labels.shape[1]:]
        out["mlm_logits"], loss = _masked_ce(model.mlm_head, seq, mlm_labels, ign, tv)
        losses["mlm"] = loss * cfg["mlm_weight"]

    pos_mask = None
    if cfg["itm_weight"] > 0 and mm_masked is not None:
        out["itm_logits"] = model.itm_head(mm_masked)
        if itm_labels is not None:
            pos = itm_labels.ne(0)
            # no positive pair at all: HF keeps every pair
            pos_mask = pos if bool(pos.any()) else torch.ones_like(pos)
            losses["itm"] = F.cross_entropy(out["itm_logits"], itm_labels) * cfg["itm_weight"]
            mm_masked = mm_masked[pos_mask]
            if mlm_labels is not None:
                mlm_labels = mlm_labels[pos_mask]
            if mim_labels is not None:
                mim_labels = mim_labels[pos_mask]
    out["multimodal_masked_embeddings"] = mm_masked

    if mm_masked is not None and cfg["mmm_image_weight"] > 0 and mim_labels is not None:
        n_patch = ma["image"].shape[1] - 1
        seq = mm_masked[:, 2:2 + n_patch]  # skip CLS_M and CLS_I
        out["mmm_image_logits"], loss = _masked_ce(model.mmm_image_head, seq, mim_labels, ign, iv)
        losses["mmm_image"] = loss * cfg["mmm_image_weight"]
    if mm_masked is not None and cfg["mmm_text_weight"] > 0 and mlm_labels is not None:
        seq = mm_masked[:, -ma["text"].shape[1]:]
        out["mmm_text_logits"], loss = _masked_ce(model.mmm_text_head, seq, mlm_labels, ign, tv)
        losses["mmm_text"] = loss * cfg["mmm_text_weight"]

    if un["image"] is not None and un["text"] is not None and cfg["global_contrastive_weight"] > 0:
        img = F.normalize(fl.image_projection(un["image"][:, 0]), dim=-1)
        txt = F.normalize(fl.text_projection(un["text"][:, 0]), dim=-1)
        scale = fl.logit_scale.exp()
        per_image = img @ txt.t() * scale
        per_text = txt @ img.t() * scale
        labels = torch.arange(img.shape[0])
        if pos_mask is not None:
            # rows only: every text/image of the batch stays a candidate column
            per_image, per_text, labels = per_image[pos_mask], per_text[pos_mask], labels[pos_mask]
        out["contrastive_logits_per_image"] = per_image
        out["contrastive_logits_per_text"] = per_text
        losses["global_contrastive"] = (F.cross_entropy(per_image, labels)
                                        + F.cross_entropy(per_text, labels)) / 2 \
            * cfg["global_contrastive_weight"]

    for k, v in losses.items():
        out["loss_info." + k] = v
    if losses:
        out["loss"] = sum(losses.values())
    return {k: v for k, v in out.items() if v is not None}
