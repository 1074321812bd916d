"""Minimal safetensors writer/reader for the fixture scripts (plain Python +
torch, so the fixtures need nothing beyond Debian's python3-torch)."""
import json
import struct

import torch

_DTYPES = {
    torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64",
    torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL",
}
_TORCH = {v: k for k, v in _DTYPES.items()}


def save(path, tensors, metadata=None):
    """Writes {name: tensor} to `path`, names sorted, offsets packed."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        # flattened first: a 0-d tensor cannot be viewed as bytes
        flat = t.reshape(-1)
        raw = flat.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else \
            flat.to(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def load(path):
    """Reads a safetensors file into ({name: tensor}, metadata)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        dtype = _TORCH[h["dtype"]]
        if a == b:  # frombuffer refuses an empty buffer
            out[name] = torch.empty(h["shape"], dtype=dtype)
            continue
        raw = torch.frombuffer(bytearray(data[a:b]), dtype=torch.uint8)
        if dtype == torch.bool:
            t = raw.to(torch.bool)
        else:
            t = raw.view(dtype)
        out[name] = t.reshape(h["shape"])
    return out, meta
