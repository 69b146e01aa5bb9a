"""stio.py: a tiny safetensors reader/writer (numpy only; no `safetensors` package).

Format: 8-byte little-endian header length N, N bytes of JSON header
({name: {"dtype", "shape", "data_offsets": [begin, end]}, optional "__metadata__"}),
then the raw little-endian data section. The header is padded with spaces to a
multiple of 8 bytes, as the reference implementation does.
"""
import json
import struct

import numpy as np

_DT = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U8": np.uint8, "BOOL": np.bool_,
}
_NAME = {np.dtype(v).newbyteorder("<"): k for k, v in _DT.items()}


def _dtype_name(a):
    dt = a.dtype.newbyteorder("<")
    if dt not in _NAME:
        raise ValueError("unsupported dtype %s" % a.dtype)
    return _NAME[dt]


def save(path, tensors, metadata=None):
    """Writes `tensors` (dict name -> numpy array, insertion order kept) to `path`."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        b = a.tobytes()
        header[name] = {"dtype": _dtype_name(a), "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    """Reads a safetensors file into a dict name -> numpy array (validated)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("%s: too short" % path)
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError("%s: header length %d beyond file" % (path, n))
    header = json.loads(buf[8:8 + n].decode())
    data = buf[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = np.dtype(_DT[info["dtype"]]).newbyteorder("<")
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        if not (0 <= b <= e <= len(data)) or (e - b) != dt.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise ValueError("%s: tensor %s has a bad byte range" % (path, name))
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).copy()
    return out
