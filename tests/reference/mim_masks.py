#!/usr/bin/python3
"""Writes tests/fixtures/tok/mim_masks.txt: block-wise MIM masks drawn by
BEiT's MaskingGenerator algorithm (as in BEiT's masking_generator.py and
HF's FlavaMaskingGenerator), with Python's `random` replaced by a port of
flava's splitmix64 stream (src/rng.c) so that the C masks can be compared
patch for patch.

Run from the source root: /usr/bin/python3 tests/reference/mim_masks.py"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rng_ref import Rng  # noqa: E402


class MaskingGenerator:
    def __init__(self, rng, input_size, num_masking_patches, min_num_patches=16,
                 max_num_patches=None, min_aspect=0.3, max_aspect=None):
        self.rng = rng
        self.height, self.width = input_size
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))

    def _mask(self, mask, max_mask_patches):
        delta = 0
        for _ in range(10):
            target_area = self.rng.uniform(self.min_num_patches, max_mask_patches)
            aspect_ratio = math.exp(self.rng.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < self.width and h < self.height:
                top = self.rng.randint(0, self.height - h)
                left = self.rng.randint(0, self.width - w)
                num_masked = sum(mask[i][j] for i in range(top, top + h)
                                 for j in range(left, left + w))
                if 0 < h * w - num_masked <= max_mask_patches:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i][j] == 0:
                                mask[i][j] = 1
                                delta += 1
                if delta > 0:
                    break
        return delta

    def __call__(self):
        mask = [[0] * self.width for _ in range(self.height)]
        mask_count = 0
        while mask_count < self.num_masking_patches:
            max_mask_patches = self.num_masking_patches - mask_count
            max_mask_patches = min(max_mask_patches, self.max_num_patches)
            delta = self._mask(mask, max_mask_patches)
            if delta == 0:
                break
            mask_count += delta
        return mask, mask_count


def scaled(h, w):
    # flava_mim_default_config: FLAVA's 75 and 16 of 196, rounded half up
    p = h * w
    return int(math.floor(75 * p / 196 + 0.5)), max(1, int(math.floor(16 * p / 196 + 0.5)))


with open('tests/fixtures/tok/mim_masks.txt', 'w') as out:
    out.write('# height width num_masked min_block seed count mask(row-major)\n')
    for h, w in [(14, 14), (7, 7), (8, 16), (28, 28)]:
        num, min_block = scaled(h, w)
        for seed in range(6):
            mask, count = MaskingGenerator(Rng(seed, 0), (h, w), num, min_block)()
            bits = ''.join(str(b) for row in mask for b in row)
            out.write(f'{h} {w} {num} {min_block} {seed} {count} {bits}\n')
