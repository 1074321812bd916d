"""Writes the image fixtures of tests/check_data.c with PIL, the library
HF FlavaImageProcessor resizes with: a few source images (a real
Fashion-MNIST item as gray PNG, an RGB PNG, an RGB JPEG, a palette PNG and
an RGBA PNG) and what PIL makes of them (decoded RGB pixels, BICUBIC and
LANCZOS resizes) saved as lossless RGB PNGs.

Run from the source tree: /usr/bin/python3 tests/reference/image_fixtures.py
"""
import gzip
import os

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "image")
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def smooth_noise(rng, h, w):
    """RGB with both smooth gradients and pixel noise, so that resampling
    errors of any kind show up."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(x / 17.0 + c) * np.cos(y / 11.0 - c) for c in range(3)], -1)
    img = base + rng.normal(0, 40, (h, w, 3))
    img[h // 3: h // 3 + 10, :, :] = 255  # hard edges: overshoot must clip
    img[:, w // 2: w // 2 + 7, 1] = 0
    return np.clip(img, 0, 255).astype(np.uint8)


def save_rgb(img, name):
    img.convert("RGB").save(os.path.join(OUT, name))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)

    with gzip.open(FMNIST, "rb") as f:
        raw = f.read()
    item = np.frombuffer(raw[16 + 28 * 28 * 5: 16 + 28 * 28 * 6], np.uint8).reshape(28, 28)
    gray = Image.fromarray(item, "L")
    gray.save(os.path.join(OUT, "gray28.png"))
    save_rgb(gray.convert("RGB").resize((224, 224), Image.BICUBIC), "gray28_bicubic224.png")
    save_rgb(gray.convert("RGB").resize((112, 112), Image.LANCZOS), "gray28_lanczos112.png")

    rgb = Image.fromarray(smooth_noise(rng, 256, 320), "RGB")
    rgb.save(os.path.join(OUT, "rgb320x256.png"))
    save_rgb(rgb.resize((224, 224), Image.BICUBIC), "rgb_bicubic224.png")
    save_rgb(rgb.resize((112, 112), Image.LANCZOS), "rgb_lanczos112.png")
    # shorter side to 224 (320*224/256 = 280), then the centre 224x224 as HF crops it
    short = rgb.resize((280, 224), Image.BICUBIC)
    left = (280 - 224) // 2
    save_rgb(short.crop((left, 0, left + 224, 224)), "rgb_crop224.png")

    Image.fromarray(smooth_noise(rng, 80, 96), "RGB").save(os.path.join(OUT, "rgb96x80.jpg"),
                                                           quality=90)
    jpg = Image.open(os.path.join(OUT, "rgb96x80.jpg"))
    save_rgb(jpg, "jpeg_decoded.png")
    save_rgb(jpg.convert("RGB").resize((224, 224), Image.BICUBIC), "jpeg_bicubic224.png")

    pal = Image.fromarray(smooth_noise(rng, 30, 40), "RGB").quantize(colors=16)
    pal.save(os.path.join(OUT, "palette40x30.png"))
    save_rgb(pal, "palette_rgb.png")
    rgba = np.concatenate([smooth_noise(rng, 30, 40), rng.integers(0, 256, (30, 40, 1),
                                                                   dtype=np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "rgba40x30.png"))
    save_rgb(Image.fromarray(rgba, "RGBA"), "rgba_rgb.png")


if __name__ == "__main__":
    main()
