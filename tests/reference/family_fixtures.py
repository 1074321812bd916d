"""Writes tests/fixtures/family_preprocess.safetensors: the pixel_values the
HF image processors of the three families make of tests/fixtures/image/
rgb320x256.png, computed here with PIL and numpy as those processors
document their steps:
  flava: resize to 28x28 BICUBIC, x/255, CLIP mean/std;
  clip:  shorter side to 28 BICUBIC (int(28 * long / short) for the other),
         centre crop 28 ((h - 28) // 2 from the top), x/255, CLIP mean/std;
  align: resize to 34x34 BILINEAR (346/289 of 28), centre crop 28,
         x/127.5 - 1 (kakaobrain/align-base: rescale_offset, no normalize).
Run from the source tree: PYTHONPATH=tests/reference /usr/bin/python3
tests/reference/family_fixtures.py"""
import numpy as np
import torch
from PIL import Image

import st

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
S = 28


def crop(a, size):
    h, w = a.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return a[top:top + size, left:left + size]


def chw(a):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


img = Image.open("tests/fixtures/image/rgb320x256.png").convert("RGB")
w, h = img.size
flava = np.asarray(img.resize((S, S), Image.BICUBIC), dtype=np.float32) / 255.0
flava = (flava - MEAN) / STD
short = min(w, h)
cw, ch = (S, int(S * h / w)) if w <= h else (int(S * w / h), S)
clip = np.asarray(img.resize((cw, ch), Image.BICUBIC), dtype=np.float32)
clip = (crop(clip, S) / 255.0 - MEAN) / STD
R = int(round(S * 346 / 289))
align = np.asarray(img.resize((R, R), Image.BILINEAR), dtype=np.float32)
align = crop(align, S) / 127.5 - 1.0
st.save("tests/fixtures/family_preprocess.safetensors",
        {"flava": chw(flava), "clip": chw(clip), "align": chw(align)})
