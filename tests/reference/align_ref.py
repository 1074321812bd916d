"""This project's own plain-torch ALIGN (HF `AlignModel`), written from the
semantics of HF's modeling_align.py / configuration_align.py, for the parity
fixtures of src/align.c. transformers is not imported.

The model is functional: `params` maps HF state_dict keys to tensors (leaves
that may require grad), `buffers` maps the batch-norm buffer keys
(running_mean, running_var, num_batches_tracked) to tensors updated in place
in training mode. Every rule below names the HF class it comes from.

Vision tower (AlignVisionModel, an EfficientNet without the top conv):
- round_filters(c) = max(d, int(c*w + d/2) // d * d), plus d if that is below
  0.9*c*w (w = width_coefficient, d = depth_divisor); a stage repeats
  ceil(depth_coefficient * n) times.
- stem (AlignVisionEmbeddings): ZeroPad2d((0,1,0,1)) -> 3x3 conv stride 2
  "valid", no bias, round_filters(32) channels -> BatchNorm2d(momentum =
  batch_norm_momentum) -> activation (swish).
- block j of stage i: stride = strides[i] and id_skip for j == 0 (else 1 and
  not id_skip); in = round_filters(in_channels[i]) for j == 0 else out.
  * expansion (expand_ratio != 1): 1x1 conv in -> in*ratio, no bias,
    BatchNorm2d with torch's DEFAULT momentum 0.1 (HF passes no momentum
    here), swish.
  * depthwise: stride 2 -> ZeroPad2d(correct_pad(k, adjust)) then "valid"
    conv: adjust -> (left k//2-1, right k//2, top k//2-1, bottom k//2), else
    k//2 all round; adjust is False iff the block's global index is in
    depthwise_padding. Stride 1 -> "same" (k//2 each side, k odd). groups =
    channels, no bias; BatchNorm2d(batch_norm_momentum); swish.
  * squeeze-excite: mean over HxW -> 1x1 conv (bias) to
    max(1, int(in * squeeze_expansion_ratio)) (in = the block's input
    channels, not the expanded ones) -> swish -> 1x1 conv (bias) back ->
    sigmoid -> multiply.
  * projection: 1x1 conv to out, no bias, BatchNorm2d(batch_norm_momentum);
    when stride == 1 and not id_skip: Dropout(p = drop_connect_rate * b /
    num_blocks) (b = global block index; element-wise nn.Dropout, not
    per-sample drop connect) and the residual add. No residual otherwise.
- pooler: AvgPool2d(hidden_dim, ceil_mode=True) = mean over HxW while H, W
  <= hidden_dim; pooled [B, C_last] is image_embeds (no projection).
- BatchNorm2d in torch's convention: running = (1 - m) running + m batch,
  with the unbiased batch variance; HF passes batch_norm_momentum = 0.99
  straight in (so the batch statistic gets weight 0.99).

Text tower (AlignTextModel = BERT, post-LN): word + position + token type
embeddings -> LayerNorm(layer_norm_eps); each layer: x = LN(x + o(attn(x)));
x = LN(x + fc2(gelu(fc1(x)))); attention keys masked by attention_mask with
finfo.min. The pooler (dense+tanh) exists in the state_dict but AlignModel
does not use it: text_embeds = text_projection(h[:, 0, :]).

Head (AlignModel.forward): both embeddings L2-normalised (x / ||x||),
logits_per_text = T I^T / temperature, logits_per_image its transpose; loss
= (CE(logits_per_text, arange, label_smoothing=0.1) + CE(logits_per_image,
arange, label_smoothing=0.1)) / 2.

Dropout masks: torch's RNG cannot be reproduced in C, so the masks are
rng_ref.dropout_scale's (src/ops/dropout.c): image block b's over its
branch output in NCHW order from (seed, b); the text tower's from the seed
flava_rng_init(seed, 2^64 - 1)'s first draw, at the sites of
src/encoder.h (stream 0 the embeddings after their LayerNorm; 1 + 3l,
2 + 3l, 3 + 3l layer l's attention probabilities, attention output before
its residual LayerNorm, MLP output before its residual LayerNorm).
"""
import math

import torch
import torch.nn.functional as F

from rng_ref import M64, Rng, dropout_scale


# ---------------------------------------------------------------- structure
def round_filters(vc, c):
    d = vc["depth_divisor"]
    c = c * vc["width_coefficient"]
    new = max(d, int(c + d / 2) // d * d)
    if new < 0.9 * c:
        new += d
    return int(new)


def vision_blocks(vc):
    reps = [int(math.ceil(vc["depth_coefficient"] * n)) for n in vc["num_block_repeats"]]
    total = sum(reps)
    out = []
    for i in range(len(vc["in_channels"])):
        cin = round_filters(vc, vc["in_channels"][i])
        cout = round_filters(vc, vc["out_channels"][i])
        for j in range(reps[i]):
            b = len(out)
            stride = vc["strides"][i] if j == 0 else 1
            ind = cin if j == 0 else cout
            ratio = vc["expand_ratios"][i]
            out.append(dict(index=b, in_dim=ind, out_dim=cout, stride=stride,
                            k=vc["kernel_sizes"][i], ratio=ratio,
                            exp_dim=ind * ratio if ratio != 1 else ind,
                            se_dim=max(1, int(ind * vc["squeeze_expansion_ratio"])),
                            residual=(stride == 1 and j > 0),
                            adjust=b not in vc["depthwise_padding"],
                            drop=vc["drop_connect_rate"] * b / total))
    return out


def param_shapes(cfg):
    """HF AlignModel state_dict: {key: shape}, trainable parameters only,
    and the batch-norm prefixes (their buffers) in order."""
    tc, vc = cfg["text_config"], cfg["vision_config"]
    shapes, bns = {}, []

    def conv(name, o, i, k, bias):
        shapes[name + ".weight"] = (o, i, k, k)
        if bias:
            shapes[name + ".bias"] = (o,)

    def bn(name, c):
        shapes[name + ".weight"] = (c,)
        shapes[name + ".bias"] = (c,)
        bns.append((name, c))

    v = "vision_model."
    stem = round_filters(vc, 32)
    conv(v + "embeddings.convolution", stem, vc["num_channels"], 3, False)
    bn(v + "embeddings.batchnorm", stem)
    for blk in vision_blocks(vc):
        p = v + "encoder.blocks.%d." % blk["index"]
        e = blk["exp_dim"]
        if blk["ratio"] != 1:
            conv(p + "expansion.expand_conv", e, blk["in_dim"], 1, False)
            bn(p + "expansion.expand_bn", e)
        conv(p + "depthwise_conv.depthwise_conv", e, 1, blk["k"], False)
        bn(p + "depthwise_conv.depthwise_norm", e)
        conv(p + "squeeze_excite.reduce", blk["se_dim"], e, 1, True)
        conv(p + "squeeze_excite.expand", e, blk["se_dim"], 1, True)
        conv(p + "projection.project_conv", blk["out_dim"], e, 1, False)
        bn(p + "projection.project_bn", blk["out_dim"])

    C, FF = tc["hidden_size"], tc["intermediate_size"]
    t = "text_model."
    shapes[t + "embeddings.word_embeddings.weight"] = (tc["vocab_size"], C)
    shapes[t + "embeddings.position_embeddings.weight"] = (tc["max_position_embeddings"], C)
    shapes[t + "embeddings.token_type_embeddings.weight"] = (tc["type_vocab_size"], C)
    shapes[t + "embeddings.LayerNorm.weight"] = (C,)
    shapes[t + "embeddings.LayerNorm.bias"] = (C,)
    for l in range(tc["num_hidden_layers"]):
        p = t + "encoder.layer.%d." % l
        for name, o, i in (("attention.self.query", C, C), ("attention.self.key", C, C),
                           ("attention.self.value", C, C), ("attention.output.dense", C, C),
                           ("intermediate.dense", FF, C), ("output.dense", C, FF)):
            shapes[p + name + ".weight"] = (o, i)
            shapes[p + name + ".bias"] = (o,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + name + ".weight"] = (C,)
            shapes[p + name + ".bias"] = (C,)
    shapes[t + "pooler.dense.weight"] = (C, C)
    shapes[t + "pooler.dense.bias"] = (C,)
    shapes["text_projection.weight"] = (cfg["projection_dim"], C)
    shapes["text_projection.bias"] = (cfg["projection_dim"],)
    shapes["temperature"] = ()
    return shapes, bns


# ---------------------------------------------------------------- forward
def _bn(x, P, B, name, train, momentum, eps):
    y = F.batch_norm(x, B[name + ".running_mean"], B[name + ".running_var"],
                     P[name + ".weight"], P[name + ".bias"], training=train,
                     momentum=momentum, eps=eps)
    if train:
        B[name + ".num_batches_tracked"] += 1
    return y


def vision_forward(P, B, vc, pixel_values, train, dropout_seed):
    act = F.silu  # hidden_act "swish"
    eps, mom = vc["batch_norm_eps"], vc["batch_norm_momentum"]
    v = "vision_model."
    x = F.pad(pixel_values, (0, 1, 0, 1))
    x = F.conv2d(x, P[v + "embeddings.convolution.weight"], stride=2)
    x = act(_bn(x, P, B, v + "embeddings.batchnorm", train, mom, eps))
    for blk in vision_blocks(vc):
        p = v + "encoder.blocks.%d." % blk["index"]
        inp = x
        if blk["ratio"] != 1:
            x = F.conv2d(x, P[p + "expansion.expand_conv.weight"])
            x = act(_bn(x, P, B, p + "expansion.expand_bn", train, 0.1, eps))
        k = blk["k"]
        if blk["stride"] == 2:
            if blk["adjust"]:
                pad = (k // 2 - 1, k // 2, k // 2 - 1, k // 2)
            else:
                pad = (k // 2,) * 4
            x = F.pad(x, pad)
            x = F.conv2d(x, P[p + "depthwise_conv.depthwise_conv.weight"], stride=2,
                         groups=x.shape[1])
        else:
            x = F.conv2d(x, P[p + "depthwise_conv.depthwise_conv.weight"], padding=k // 2,
                         groups=x.shape[1])
        x = act(_bn(x, P, B, p + "depthwise_conv.depthwise_norm", train, mom, eps))
        s = x.mean(dim=(2, 3), keepdim=True)
        s = act(F.conv2d(s, P[p + "squeeze_excite.reduce.weight"],
                         P[p + "squeeze_excite.reduce.bias"]))
        s = torch.sigmoid(F.conv2d(s, P[p + "squeeze_excite.expand.weight"],
                                   P[p + "squeeze_excite.expand.bias"]))
        x = x * s
        x = F.conv2d(x, P[p + "projection.project_conv.weight"])
        x = _bn(x, P, B, p + "projection.project_bn", train, mom, eps)
        if blk["residual"]:
            if train and blk["drop"] > 0:
                x = x * dropout_scale(x.shape, blk["drop"], dropout_seed, blk["index"])
            x = x + inp
    H, W = x.shape[2:]
    assert H <= vc["hidden_dim"] and W <= vc["hidden_dim"]
    pooled = F.avg_pool2d(x, vc["hidden_dim"], ceil_mode=True)
    return pooled.reshape(x.shape[:2])


def text_forward(P, tc, input_ids, attention_mask, token_type_ids, train=False,
                 dropout_seed=0):
    t = "text_model."
    seed = Rng(dropout_seed, M64).u64()

    def drop(h, p, stream):
        return h * dropout_scale(h.shape, p, seed, stream).to(h.dtype) if train and p > 0 else h
    ph, pa = tc["hidden_dropout_prob"], tc["attention_probs_dropout_prob"]
    Bn, T = input_ids.shape
    C, NH, eps = tc["hidden_size"], tc["num_attention_heads"], tc["layer_norm_eps"]
    x = (P[t + "embeddings.word_embeddings.weight"][input_ids]
         + P[t + "embeddings.token_type_embeddings.weight"][token_type_ids]
         + P[t + "embeddings.position_embeddings.weight"][:T][None])
    x = drop(F.layer_norm(x, (C,), P[t + "embeddings.LayerNorm.weight"],
                          P[t + "embeddings.LayerNorm.bias"], eps), ph, 0)
    mask = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * torch.finfo(x.dtype).min

    def lin(name, h):
        return F.linear(h, P[name + ".weight"], P[name + ".bias"])

    for l in range(tc["num_hidden_layers"]):
        p = t + "encoder.layer.%d." % l

        def heads(h):
            return h.view(Bn, T, NH, C // NH).permute(0, 2, 1, 3)
        q = heads(lin(p + "attention.self.query", x))
        k = heads(lin(p + "attention.self.key", x))
        v = heads(lin(p + "attention.self.value", x))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C // NH) + mask, dim=-1)
        ctx = (drop(a, pa, 1 + 3 * l) @ v).permute(0, 2, 1, 3).reshape(Bn, T, C)
        x = F.layer_norm(drop(lin(p + "attention.output.dense", ctx), ph, 2 + 3 * l) + x, (C,),
                         P[p + "attention.output.LayerNorm.weight"],
                         P[p + "attention.output.LayerNorm.bias"], eps)
        h = F.gelu(lin(p + "intermediate.dense", x))
        x = F.layer_norm(drop(lin(p + "output.dense", h), ph, 3 + 3 * l) + x, (C,),
                         P[p + "output.LayerNorm.weight"], P[p + "output.LayerNorm.bias"], eps)
    return x


def align_forward(P, B, cfg, inputs, train, dropout_seed=0):
    """Returns dict(text_embeds, image_embeds, logits_per_image,
    logits_per_text, loss) -- the embeds normalised, as AlignOutput has them."""
    image = vision_forward(P, B, cfg["vision_config"], inputs["pixel_values"], train,
                           dropout_seed)
    h = text_forward(P, cfg["text_config"], inputs["input_ids"], inputs["attention_mask"],
                     inputs["token_type_ids"], train, dropout_seed)
    text = F.linear(h[:, 0, :], P["text_projection.weight"], P["text_projection.bias"])
    image = image / image.norm(p=2, dim=-1, keepdim=True)
    text = text / text.norm(p=2, dim=-1, keepdim=True)
    per_text = text @ image.t() / P["temperature"]
    target = torch.arange(len(per_text))
    loss = (F.cross_entropy(per_text, target, label_smoothing=0.1)
            + F.cross_entropy(per_text.t(), target, label_smoothing=0.1)) / 2.0
    return dict(text_embeds=text, image_embeds=image, logits_per_image=per_text.t(),
                logits_per_text=per_text, loss=loss)
