"""Writes tests/fixtures/st_reference.safetensors: one tensor per dtype with
values the C test recomputes from the same formulas, plus metadata.
Run from the source root: /usr/bin/python3 tests/reference/st_fixture.py"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402

k6 = torch.arange(6, dtype=torch.float64)
k24 = torch.arange(24, dtype=torch.float64)
tensors = {
    # f32: (k - 11.5) / 7 rounded to float, shape [2, 3, 4]
    "a.f32": ((k24 - 11.5) / 7).to(torch.float32).reshape(2, 3, 4),
    # bf16 of sin(k): torch rounds to nearest even; the F32 copy of the
    # rounded values is what the C conversion must give back.
    "b.bf16": torch.sin(k24).to(torch.bfloat16).reshape(4, 6),
    "b.bf16_as_f32": torch.sin(k24).to(torch.bfloat16).to(torch.float32).reshape(4, 6),
    # i64: values beyond int32 in "c.i64_big", small ones in "c.i64"
    "c.i64": (torch.arange(6, dtype=torch.int64) * 1000 - 2500).reshape(3, 2),
    "c.i64_big": torch.tensor([1, -(1 << 40)], dtype=torch.int64),
    "d.i32": (torch.arange(5, dtype=torch.int32) * -7 + 3),
    "e.u8": (torch.arange(10, dtype=torch.int32) * 29 % 256).to(torch.uint8),
    "f.bool": (k6 % 3 == 0).reshape(2, 3),
    "g.scalar": torch.tensor(2.6592, dtype=torch.float32),
    "h.empty": torch.zeros(0, 3, dtype=torch.float32),
}
meta = {"config": '{"hidden_size": 8, "name": "tiny \\"quoted\\""}', "format": "pt"}
st.save("tests/fixtures/st_reference.safetensors", tensors, meta)
