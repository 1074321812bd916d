"""A plain-torch CLIP (HF CLIPModel semantics), written for this project's
parity fixtures: no transformers import, parameters held in one dict under
HF's state_dict names, so the same dict is what the C side loads.

Semantics, as HF's modeling_clip.py runs CLIPModel.forward(return_loss=True):
- Encoder layer (both towers), pre-LN:
    x = x + out_proj(attention(layer_norm1(x)))
    x = x + fc2(act(fc1(layer_norm2(x))))
  q/k/v/out_proj with bias; q scaled by head_dim**-0.5 before q.k; act is
  quick_gelu (x * sigmoid(1.702 x)) or exact erf gelu; LayerNorm eps from
  the tower's layer_norm_eps.
- Text: token_embedding[ids] + position_embedding[0..T-1] (no LayerNorm),
  additive causal mask (keys after the query) plus additive padding mask
  (keys whose attention_mask is 0), both as the dtype's min value;
  final_layer_norm on every position; pooled = the state at the EOS
  position: argmax(input_ids) when eos_token_id == 2 (the original
  checkpoints), else the first position where input_ids == eos_token_id.
- Vision: patch_embedding conv (kernel = stride = patch, no bias),
  flattened row-major over the grid, class_embedding prepended,
  position_embedding added, pre_layrnorm, the encoder, pooled =
  post_layernorm(state[:, 0]) (the sequence itself stays un-normed).
- text_embeds = text_projection(pooled_text), image_embeds =
  visual_projection(pooled_image) (no biases), each divided by its L2 norm;
  logits_per_text = exp(logit_scale) * text_embeds @ image_embeds.T,
  logits_per_image = its transpose; loss = (CE(logits_per_text, arange) +
  CE(logits_per_image, arange)) / 2.
"""
import torch
import torch.nn.functional as F


def tower_names(prefix, layers):
    """The names of one encoder's tensors (param_shapes gives their shapes)."""
    out = []
    for i in range(layers):
        p = f"{prefix}.encoder.layers.{i}"
        for lin in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                    "self_attn.out_proj", "mlp.fc1", "mlp.fc2"):
            out += [f"{p}.{lin}.weight", f"{p}.{lin}.bias"]
        for ln in ("layer_norm1", "layer_norm2"):
            out += [f"{p}.{ln}.weight", f"{p}.{ln}.bias"]
    return out


def param_shapes(cfg):
    """{HF name: shape} of CLIPModel's state_dict (position_ids buffers aside)."""
    t, v = cfg["text_config"], cfg["vision_config"]
    Ct, Cv, D = t["hidden_size"], v["hidden_size"], cfg["projection_dim"]
    side = v["image_size"] // v["patch_size"]
    shapes = {
        "text_model.embeddings.token_embedding.weight": (t["vocab_size"], Ct),
        "text_model.embeddings.position_embedding.weight": (t["max_position_embeddings"], Ct),
        "text_model.final_layer_norm.weight": (Ct,),
        "text_model.final_layer_norm.bias": (Ct,),
        "vision_model.embeddings.class_embedding": (Cv,),
        "vision_model.embeddings.patch_embedding.weight":
            (Cv, v["num_channels"], v["patch_size"], v["patch_size"]),
        "vision_model.embeddings.position_embedding.weight": (side * side + 1, Cv),
        "vision_model.pre_layrnorm.weight": (Cv,),
        "vision_model.pre_layrnorm.bias": (Cv,),
        "vision_model.post_layernorm.weight": (Cv,),
        "vision_model.post_layernorm.bias": (Cv,),
        "visual_projection.weight": (D, Cv),
        "text_projection.weight": (D, Ct),
        "logit_scale": (),
    }
    for prefix, tc in (("text_model", t), ("vision_model", v)):
        C, FF = tc["hidden_size"], tc["intermediate_size"]
        for name in tower_names(prefix, tc["num_hidden_layers"]):
            stem = name.rsplit(".", 1)[0]
            is_w = name.endswith(".weight")
            if "layer_norm" in stem:
                shapes[name] = (C,)
            elif stem.endswith("fc1"):
                shapes[name] = (FF, C) if is_w else (FF,)
            elif stem.endswith("fc2"):
                shapes[name] = (C, FF) if is_w else (C,)
            else:
                shapes[name] = (C, C) if is_w else (C,)
    return shapes


def activation(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: F.gelu(x)
    raise ValueError(f"hidden_act {name}")


def encoder(P, prefix, tc, x, mask):
    """The CLIP encoder stack; mask is additive [B,1,T,T] or None."""
    B, T, C = x.shape
    H = tc["num_attention_heads"]
    hd = C // H
    eps = tc["layer_norm_eps"]
    act = activation(tc["hidden_act"])
    for i in range(tc["num_hidden_layers"]):
        p = f"{prefix}.encoder.layers.{i}"

        def lin(h, stem):
            return F.linear(h, P[f"{p}.{stem}.weight"], P[f"{p}.{stem}.bias"])

        h = F.layer_norm(x, (C,), P[f"{p}.layer_norm1.weight"], P[f"{p}.layer_norm1.bias"], eps)
        q = lin(h, "self_attn.q_proj") * hd ** -0.5
        k = lin(h, "self_attn.k_proj")
        v = lin(h, "self_attn.v_proj")
        q, k, v = (z.view(B, T, H, hd).transpose(1, 2) for z in (q, k, v))
        w = q @ k.transpose(-1, -2)
        if mask is not None:
            w = w + mask
        a = torch.softmax(w, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, T, C)
        x = x + lin(a, "self_attn.out_proj")
        h = F.layer_norm(x, (C,), P[f"{p}.layer_norm2.weight"], P[f"{p}.layer_norm2.bias"], eps)
        x = x + lin(act(lin(h, "mlp.fc1")), "mlp.fc2")
    return x


def text_tower(P, cfg, input_ids, attention_mask):
    tc = cfg["text_config"]
    B, T = input_ids.shape
    x = P["text_model.embeddings.token_embedding.weight"][input_ids] + \
        P["text_model.embeddings.position_embedding.weight"][:T]
    lowest = torch.finfo(x.dtype).min
    causal = torch.triu(torch.full((T, T), lowest, dtype=x.dtype), diagonal=1)
    mask = causal.expand(B, 1, T, T)
    if attention_mask is not None:
        pad = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * lowest
        mask = mask + pad
    x = encoder(P, "text_model", tc, x, mask)
    x = F.layer_norm(x, (x.shape[-1],), P["text_model.final_layer_norm.weight"],
                     P["text_model.final_layer_norm.bias"], tc["layer_norm_eps"])
    if tc["eos_token_id"] == 2:
        pos = input_ids.to(torch.int).argmax(dim=-1)
    else:
        pos = (input_ids.to(torch.int) == tc["eos_token_id"]).int().argmax(dim=-1)
    return x[torch.arange(B), pos]


def vision_tower(P, cfg, pixel_values):
    vc = cfg["vision_config"]
    B = pixel_values.shape[0]
    C = vc["hidden_size"]
    patches = F.conv2d(pixel_values, P["vision_model.embeddings.patch_embedding.weight"],
                       stride=vc["patch_size"])
    patches = patches.flatten(2).transpose(1, 2)
    cls = P["vision_model.embeddings.class_embedding"].expand(B, 1, -1)
    x = torch.cat([cls, patches], dim=1) + P["vision_model.embeddings.position_embedding.weight"]
    eps = vc["layer_norm_eps"]
    x = F.layer_norm(x, (C,), P["vision_model.pre_layrnorm.weight"],
                     P["vision_model.pre_layrnorm.bias"], eps)
    x = encoder(P, "vision_model", vc, x, None)
    return F.layer_norm(x[:, 0], (C,), P["vision_model.post_layernorm.weight"],
                        P["vision_model.post_layernorm.bias"], eps)


def clip_forward(P, cfg, input_ids, attention_mask, pixel_values):
    """Returns dict: text_embeds, image_embeds, logits_per_text,
    logits_per_image, loss (as CLIPModel.forward with return_loss)."""
    image = F.linear(vision_tower(P, cfg, pixel_values), P["visual_projection.weight"])
    text = F.linear(text_tower(P, cfg, input_ids, attention_mask), P["text_projection.weight"])
    image = image / image.norm(p=2, dim=-1, keepdim=True)
    text = text / text.norm(p=2, dim=-1, keepdim=True)
    logits_per_text = text @ image.t() * P["logit_scale"].exp()
    logits_per_image = logits_per_text.t()
    labels = torch.arange(len(text))
    loss = (F.cross_entropy(logits_per_text, labels) +
            F.cross_entropy(logits_per_image, labels)) / 2
    return {"text_embeds": text, "image_embeds": image, "logits_per_text": logits_per_text,
            "logits_per_image": logits_per_image, "loss": loss}


def init_rule(cfg, name):
    """HF CLIPPreTrainedModel._init_weights for one tensor: ("const", value)
    or ("normal", std)."""
    f = cfg.get("initializer_factor", 1.0)
    tc = cfg["vision_config"] if name.startswith("vision_model.") else cfg["text_config"]
    C, L2 = tc["hidden_size"], 2 * tc["num_hidden_layers"]
    if name == "logit_scale":
        return "const", cfg.get("logit_scale_init_value", 2.6592)
    if name.endswith(".bias"):
        return "const", 0.0
    if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
        return "const", 1.0
    if "token_embedding" in name or name.startswith("text_model.embeddings.position"):
        return "normal", 0.02 * f
    if name.endswith("class_embedding"):
        return "normal", C ** -0.5 * f
    if "patch_embedding" in name or "position_embedding" in name:
        return "normal", cfg["vision_config"].get("initializer_range", 0.02) * f
    if any(s in name for s in ("q_proj", "k_proj", "v_proj", "fc2")):
        return "normal", C ** -0.5 * L2 ** -0.5 * f
    if "out_proj" in name:
        return "normal", C ** -0.5 * f
    if "fc1" in name:
        return "normal", (2 * C) ** -0.5 * f
    if name == "text_projection.weight":
        return "normal", cfg["text_config"]["hidden_size"] ** -0.5 * f
    if name == "visual_projection.weight":
        return "normal", cfg["vision_config"]["hidden_size"] ** -0.5 * f
    raise KeyError(name)


def init_params(cfg, gen, dtype=torch.float64):
    """Parameters drawn by init_rule with a torch.Generator."""
    out = {}
    for name, shape in param_shapes(cfg).items():
        kind, v = init_rule(cfg, name)
        out[name] = torch.full(shape, v, dtype=dtype) if kind == "const" else \
            torch.randn(shape, generator=gen, dtype=dtype) * v
    return out


def perturb(P, gen, scale=0.1):
    """Moves biases, LayerNorms and logit_scale off their init constants."""
    for name, v in P.items():
        if name.endswith(".bias") or "norm" in name:
            P[name] = v + scale * torch.randn(v.shape, generator=gen, dtype=v.dtype)
    P["logit_scale"] = P["logit_scale"] + 0.3
    return P

