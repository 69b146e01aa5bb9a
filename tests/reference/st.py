"""Minimal safetensors reader/writer (numpy only), for the qstar reference scripts.

Format: 8-byte little-endian u64 N, then N bytes of JSON header
{name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
then the raw little-endian data; offsets are relative to the byte after the header.

Usage as a library:
    tensors = st.load("file.safetensors")          # dict name -> numpy array
    st.save("file.safetensors", {"x": arr, ...})  # arrays keep their dtype
"""
import json
import struct

import numpy as np

_DT = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NAME = {v: k for k, v in _DT.items()}


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for safetensors")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} beyond end of file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], [int(s) for s in info["shape"]]
        b, e = info["data_offsets"]
        if not (0 <= b <= e <= len(raw) - base):
            raise ValueError(f"{path}: {name}: bad data_offsets {b},{e}")
        buf = raw[base + b:base + e]
        count = int(np.prod(shape)) if shape else 1
        if dtype == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
            esz = 2
        elif dtype in _DT:
            arr = np.frombuffer(buf, dtype=_DT[dtype])
            esz = _DT[dtype].itemsize
        else:
            raise ValueError(f"{path}: {name}: unsupported dtype {dtype}")
        if len(buf) != count * esz:
            raise ValueError(f"{path}: {name}: {len(buf)} bytes for shape {shape} {dtype}")
        out[name] = np.array(arr).reshape(shape)
    return out


def save(path, tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name in tensors:  # keep insertion order
        a = np.asarray(tensors[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt not in _NAME:
            raise ValueError(f"{name}: unsupported dtype {a.dtype}")
        data = np.ascontiguousarray(a, dtype=dt).tobytes()
        header[name] = {"dtype": _NAME[dt], "shape": list(a.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)  # pad so data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for d in blobs:
            f.write(d)
