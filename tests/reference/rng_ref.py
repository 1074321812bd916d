"""flava's random numbers (src/rng.c, splitmix64) and dropout masks
(src/ops/dropout.c), ported so that the reference scripts draw what the C
code draws: torch's RNG cannot be reproduced in C."""
import numpy as np
import torch

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _mix_np(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class Rng:
    """flava_rng_init(seed, stream) and what is drawn from it."""

    def __init__(self, seed, stream):
        self.state = mix(seed ^ mix((stream + GOLDEN) & M64))

    def u64(self):
        self.state = (self.state + GOLDEN) & M64
        return mix(self.state)

    def random(self):  # uniform in [0, 1)
        return (self.u64() >> 11) * 2.0 ** -53

    def uniform(self, a, b):  # as random.uniform
        return a + (b - a) * self.random()

    def randint(self, a, b):  # as random.randint, inclusive
        n = b - a + 1
        return a + (((self.u64() >> 32) * n) >> 32)


def dropout_scale(shape, p, seed, stream):
    """The dropout of a site as src/ops/dropout.c draws it: element i (in
    row-major order) takes draw i // 2 of flava_rng_init(seed, stream), its
    high 32 bits for even i and its low 32 bits for odd i, and is kept,
    scaled by 1/(1-p) (p in float32, as in C), where those bits are at least
    floor(p * 2^32); 0 elsewhere. A float64 tensor of `shape`."""
    n = int(np.prod(shape))
    p32 = np.float32(p)
    threshold = np.uint64(int(float(p32) * 2.0 ** 32))
    state = np.uint64(Rng(seed, stream).state)
    k = np.arange(1, (n + 1) // 2 + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        draws = _mix_np(state + k * np.uint64(GOLDEN))
    bits = np.stack([draws >> np.uint64(32), draws & np.uint64(0xFFFFFFFF)], 1).reshape(-1)[:n]
    keep = float(np.float32(1.0) / (np.float32(1.0) - p32))
    scale = np.where(bits >= threshold, keep, 0.0)
    return torch.from_numpy(scale).view(*shape)
