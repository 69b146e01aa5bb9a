#!/usr/bin/python3
"""gguf_ref.py: an independent GGUF reader (numpy) and Llama forward (PyTorch)
to check qstar's GGUF support. Nothing here uses qstar code.

GGUF (v2/v3, little-endian): "GGUF", u32 version, u64 tensor count, u64 kv
count; kv = string key, u32 type, value (string = u64 length + bytes, array =
u32 element type + u64 count + elements); tensor info = name, u32 n_dims, u64
dims (ne0 = contiguous), u32 ggml type, u64 offset; the data section starts at
the next multiple of general.alignment (default 32).

Dequantisation is written from the block layouts (vectorised numpy):
  Q8_0  [f16 d][i8 q x32]                     x = d*q
  Q4_0  [f16 d][u8 x16]                       x[j] = d*(lo_j - 8), x[16+j] = d*(hi_j - 8)
  Q4_K  [f16 d][f16 dmin][u8 scales x12][u8 qs x128]: 8 sub-blocks of 32 with
        6-bit scale sc and min m packed in `scales`; qs chunk c (32 bytes) holds
        sub-block 2c in the low nibbles, 2c+1 in the high; x = d*sc*q - dmin*m
  Q6_K  [u8 ql x128][u8 qh x64][i8 scales x16][f16 d]: element e of a 128-half
        takes 4 low bits from ql and 2 high bits from qh; x = d*scales[e//16]*(q - 32)
The Llama q/k rows of llama.cpp files are in the interleaved RoPE order (the
converter's permute); they are put back into rotate-half order with the
inverse reshape, then llama_ref.forward (HF LlamaForCausalLM maths, float64)
gives the logits.

Usage:
  gguf_ref.py logits FILE.gguf OUT.json [--ids "1 2 3"]
      summary of the logits on fixed ids: per position argmax, logsumexp,
      sum, sum of squares and the logits at 256 probe ids
  gguf_ref.py compare FILE.gguf MODEL.safetensors
      the dequantised, un-permuted weights must equal qstar's converted file
  gguf_ref.py llama2c-tokenizer FILE.gguf OUT.bin
      the GGUF's SentencePiece vocabulary (tokens, scores) as a llama2.c
      tokenizer.bin (as llama2.c's tokenizer.py exports one: U+2581 -> space,
      BOS/EOS as "\n<s>\n"/"\n</s>\n"), so that every command can run on the GGUF
      with a tokenizer the llama2.c loader reads
  gguf_ref.py quant-fixture OUT_DIR
      writes quant.gguf (v2; every metadata type; F32/F16/BF16/Q8_0/Q4_0/Q4_K/
      Q6_K tensors of random blocks) and quant_expected.safetensors (F32)
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

VT = dict(U8=0, I8=1, U16=2, I16=3, U32=4, I32=5, F32=6, BOOL=7, STRING=8, ARRAY=9, U64=10, I64=11, F64=12)
VT_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
# ggml type -> (name, elements per block, bytes per block)
GT = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2), 8: ("Q8_0", 32, 34), 2: ("Q4_0", 32, 18),
      12: ("Q4_K", 256, 144), 14: ("Q6_K", 256, 210)}
DEFAULT_IDS = [1, 15043, 3186, 29892, 920, 526, 366, 29973]  # a fixed Llama-2 token id sequence


# ----------------------------------------------------------------------------- reading

class Reader:
    def __init__(self, buf):
        self.b, self.p = buf, 0

    def take(self, n):
        if self.p + n > len(self.b):
            raise ValueError("truncated at offset %d" % self.p)
        s = self.b[self.p:self.p + n]
        self.p += n
        return s

    def fmt(self, f):
        return struct.unpack(f, self.take(struct.calcsize(f)))[0]

    def string(self):
        return self.take(self.fmt("<Q")).decode("utf-8", "surrogateescape")

    def value(self, t):
        if t == VT["STRING"]:
            return self.string()
        if t == VT["ARRAY"]:
            et, n = self.fmt("<I"), self.fmt("<Q")
            return [self.value(et) for _ in range(n)]
        return self.fmt(VT_FMT[t])


def read_gguf(path):
    with open(path, "rb") as f:
        buf = f.read()
    r = Reader(buf)
    assert r.take(4) == b"GGUF", "bad magic"
    version = r.fmt("<I")
    assert version in (2, 3), version
    nt, nkv = r.fmt("<Q"), r.fmt("<Q")
    meta = {}
    for _ in range(nkv):
        k = r.string()
        meta[k] = r.value(r.fmt("<I"))
    infos = []
    for _ in range(nt):
        name = r.string()
        nd = r.fmt("<I")
        dims = [r.fmt("<Q") for _ in range(nd)]
        infos.append((name, dims, r.fmt("<I"), r.fmt("<Q")))
    align = meta.get("general.alignment", 32)
    start = (r.p + align - 1) // align * align
    tensors = {}
    for name, dims, t, off in infos:
        _, blk, nbytes = GT[t]
        n = int(np.prod(dims))
        raw = np.frombuffer(buf, np.uint8, n // blk * nbytes, start + off)
        # numpy shape: reversed ggml dims (ne0 is the last, contiguous axis)
        tensors[name] = dequant(t, raw, n).reshape(list(reversed(dims)))
    return meta, tensors


def f16(b2):  # [..., 2] uint8 -> float32
    return np.ascontiguousarray(b2).view("<f2").astype(np.float32)[..., 0]


def dequant(t, raw, n):
    name = GT[t][0]
    if name == "F32":
        return raw.view("<f4").astype(np.float32)
    if name == "F16":
        return raw.view("<f2").astype(np.float32)
    if name == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    blk, nbytes = GT[t][1], GT[t][2]
    b = raw.reshape(n // blk, nbytes)
    if name == "Q8_0":
        return (f16(b[:, 0:2])[:, None] * b[:, 2:].view(np.int8).astype(np.float32)).reshape(-1)
    if name == "Q4_0":
        q = np.concatenate([b[:, 2:] & 15, b[:, 2:] >> 4], axis=1).astype(np.float32) - 8
        return (f16(b[:, 0:2])[:, None] * q).reshape(-1)
    if name == "Q4_K":
        return dequant_q4_k(b).reshape(-1)
    return dequant_q6_k(b).reshape(-1)


def dequant_q4_k(b):
    d, dmin, s = f16(b[:, 0:2]), f16(b[:, 2:4]), b[:, 4:16].astype(np.int32)
    sc = np.zeros((len(b), 8), np.int32)
    mn = np.zeros((len(b), 8), np.int32)
    sc[:, :4], mn[:, :4] = s[:, 0:4] & 63, s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    qs = b[:, 16:].reshape(len(b), 4, 32)
    q = np.stack([qs & 15, qs >> 4], axis=2).reshape(len(b), 8, 32).astype(np.float32)  # sub-block 2c+h
    scale = d[:, None] * sc.astype(np.float32)
    mins = dmin[:, None] * mn.astype(np.float32)
    return scale[:, :, None] * q - mins[:, :, None]


def dequant_q6_k(b):
    ql, qh = b[:, 0:128].astype(np.int32), b[:, 128:192].astype(np.int32)
    sc, d = b[:, 192:208].view(np.int8).astype(np.float32), f16(b[:, 208:210])
    halves = []
    for h in range(2):
        L, H = ql[:, 64 * h:64 * h + 64], qh[:, 32 * h:32 * h + 32]
        halves += [(L[:, :32] & 15) | ((H & 3) << 4), (L[:, 32:] & 15) | (((H >> 2) & 3) << 4),
                   (L[:, :32] >> 4) | (((H >> 4) & 3) << 4), (L[:, 32:] >> 4) | (((H >> 6) & 3) << 4)]
    q = np.concatenate(halves, axis=1).astype(np.float32) - 32  # [nb, 256]
    scale = d[:, None] * np.repeat(sc, 16, axis=1)
    return scale * q


# ----------------------------------------------------------------------------- model

def unpermute(w, n_head):
    """Inverse of llama.cpp's q/k permute: interleaved rows -> rotate-half rows."""
    rows, cols = w.shape
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


NAMES = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
         "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
         "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def hf_weights(meta, tensors):
    a = meta["general.architecture"]
    assert a == "llama", a
    nh = meta[a + ".attention.head_count"]
    nkv = meta.get(a + ".attention.head_count_kv", nh)
    out = {}
    for name, w in tensors.items():
        if name == "token_embd.weight":
            hf = "model.embed_tokens.weight"
        elif name == "output_norm.weight":
            hf = "model.norm.weight"
        elif name == "output.weight":
            hf = "lm_head.weight"
        else:
            _, l, kind, wb = name.split(".")
            hf = "model.layers.%s.%s.%s" % (l, NAMES[kind], wb)
            if kind == "attn_q":
                w = unpermute(w, nh)
            elif kind == "attn_k":
                w = unpermute(w, nkv)
        out[hf] = w
    c = dict(H=meta[a + ".embedding_length"], nh=nh, nkv=nkv, L=meta[a + ".block_count"],
             theta=meta.get(a + ".rope.freq_base", 10000.0), eps=meta[a + ".attention.layer_norm_rms_epsilon"],
             bias=False, tied="lm_head.weight" not in out)
    return out, c


def cmd_logits(path, out, ids):
    import torch
    import llama_ref
    meta, tensors = read_gguf(path)
    W, c = hf_weights(meta, tensors)
    P = {k: torch.from_numpy(np.ascontiguousarray(v)).double() for k, v in W.items()}
    x = torch.tensor([ids], dtype=torch.int64)
    with torch.no_grad():
        logits, _ = llama_ref.forward(P, c, x, torch.ones_like(x))
    lg = logits[0].numpy()
    V = lg.shape[1]
    probe = sorted(set(np.random.default_rng(8).choice(V, 256, replace=False).tolist()) | set(ids))
    pos = []
    for i in range(len(ids)):
        row = lg[i]
        m = row.max()
        pos.append(dict(argmax=int(row.argmax()), lse=float(m + np.log(np.exp(row - m).sum())),
                        sum=float(row.sum()), sumsq=float((row * row).sum()),
                        probe=[float(row[j]) for j in probe]))
    with open(out, "w") as f:
        json.dump(dict(ids=ids, vocab=V, probe_ids=probe, positions=pos), f)
    print("gguf_ref: %s: %d positions, vocab %d, argmax %s" % (os.path.basename(path), len(ids), V,
                                                             [p["argmax"] for p in pos]))


def cmd_compare(path, st_path):
    meta, tensors = read_gguf(path)
    W, _ = hf_weights(meta, tensors)
    got = stio.load(st_path)
    bad = 0
    for k, v in W.items():
        g = got.get(k)
        if g is None or g.shape != v.shape or not np.array_equal(g.astype(np.float32), v.astype(np.float32)):
            print("MISMATCH %s" % k)
            bad += 1
    extra = set(got) - set(W)
    if extra:
        print("EXTRA tensors in qstar's file: %s" % sorted(extra))
        bad += 1
    print("gguf_ref: %d tensors compared, %d mismatches" % (len(W), bad))
    return 1 if bad else 0


# ----------------------------------------------------------------------------- fixture

def enc_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def enc_kv(key, t, v, et=None):
    out = enc_str(key) + struct.pack("<I", t)
    if t == VT["STRING"]:
        return out + enc_str(v)
    if t == VT["ARRAY"]:
        out += struct.pack("<IQ", et, len(v))
        return out + b"".join(enc_str(x) if et == VT["STRING"] else struct.pack(VT_FMT[et], x) for x in v)
    return out + struct.pack(VT_FMT[t], v)


def random_blocks(rng, t, nblocks):
    """Random bytes for nblocks blocks of type t with finite f16 scales."""
    _, blk, nbytes = GT[t]
    b = rng.integers(0, 256, size=(nblocks, nbytes), dtype=np.uint8)
    scale_at = {8: [0], 2: [0], 12: [0, 2], 14: [208]}[t]
    for o in scale_at:
        b[:, o:o + 2] = (rng.uniform(-0.05, 0.05, nblocks).astype("<f2")).view(np.uint8).reshape(nblocks, 2)
    return b.reshape(-1)


def cmd_quant_fixture(out_dir):
    rng = np.random.default_rng(20261205)
    os.makedirs(out_dir, exist_ok=True)
    kvs = [enc_kv("general.architecture", VT["STRING"], "qstar-test"),
           enc_kv("general.alignment", VT["U32"], 64),
           enc_kv("t.u8", VT["U8"], 200), enc_kv("t.i8", VT["I8"], -100), enc_kv("t.u16", VT["U16"], 60000),
           enc_kv("t.i16", VT["I16"], -30000), enc_kv("t.u32", VT["U32"], 4000000000),
           enc_kv("t.i32", VT["I32"], -2000000000), enc_kv("t.f32", VT["F32"], 0.5),
           enc_kv("t.bool", VT["BOOL"], True), enc_kv("t.u64", VT["U64"], 2 ** 63 + 5),
           enc_kv("t.i64", VT["I64"], -(2 ** 62)), enc_kv("t.f64", VT["F64"], -2.25),
           enc_kv("t.strs", VT["ARRAY"], ["a", "", "héllo"], VT["STRING"]),
           enc_kv("t.f32s", VT["ARRAY"], [1.5, -2.0, 0.25], VT["F32"]),
           enc_kv("t.i32s", VT["ARRAY"], [3, -4, 5], VT["I32"])]
    specs = [("f32", 0, [5, 3]), ("f16", 1, [7, 2]), ("bf16", 30, [6]), ("q8_0", 8, [64, 2]),
             ("q4_0", 2, [32, 3]), ("q4_k", 12, [256, 2]), ("q6_k", 14, [512])]
    infos, blobs, expected, off = [], [], {}, 0
    for name, t, dims in specs:
        n = int(np.prod(dims))
        _, blk, nbytes = GT[t]
        if t in (0, 1, 30):
            vals = rng.standard_normal(n).astype(np.float32)
            raw = {0: vals.astype("<f4"), 1: vals.astype("<f2"),
                   30: (vals.view(np.uint32) >> 16).astype("<u2")}[t].view(np.uint8)
        else:
            raw = random_blocks(rng, t, n // blk)
        expected[name] = dequant(t, raw, n).reshape(list(reversed(dims))).astype(np.float32)
        infos.append(enc_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
                     + struct.pack("<IQ", t, off))
        pad = (-len(raw)) % 64
        blobs.append(raw.tobytes() + b"\0" * pad)
        off += len(raw) + pad
    head = b"GGUF" + struct.pack("<IQQ", 2, len(specs), len(kvs)) + b"".join(kvs) + b"".join(infos)
    head += b"\0" * ((-len(head)) % 64)
    with open(os.path.join(out_dir, "quant.gguf"), "wb") as f:
        f.write(head + b"".join(blobs))
    stio.save(os.path.join(out_dir, "quant_expected.safetensors"), expected)
    # self-check: the reader gets back what was written
    meta, back = read_gguf(os.path.join(out_dir, "quant.gguf"))
    assert meta["t.strs"] == ["a", "", "héllo"] and meta["t.u64"] == 2 ** 63 + 5
    for k, v in expected.items():
        assert np.array_equal(back[k], v), k
    print("gguf_ref: wrote %s/quant.gguf (%d tensors) and quant_expected.safetensors" % (out_dir, len(specs)))


def cmd_llama2c_tokenizer(path, out):
    meta, _ = read_gguf(path)
    toks, scores = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.scores"]
    bos, eos = meta.get("tokenizer.ggml.bos_token_id", 1), meta.get("tokenizer.ggml.eos_token_id", 2)
    enc = []
    for i, t in enumerate(toks):
        t = "\n<s>\n" if i == bos else "\n</s>\n" if i == eos else t
        enc.append(t.replace("\u2581", " ").encode("utf-8", "surrogateescape"))
    with open(out, "wb") as f:
        f.write(struct.pack("<i", max(len(b) for b in enc)))
        for b, sc in zip(enc, scores):
            f.write(struct.pack("<fi", sc, len(b)) + b)
    print("gguf_ref: wrote %s (%d tokens)" % (out, len(enc)))


def main(argv):
    if len(argv) >= 3 and argv[0] == "logits":
        ids = DEFAULT_IDS
        if len(argv) >= 5 and argv[3] == "--ids":
            ids = [int(x) for x in argv[4].split()]
        cmd_logits(argv[1], argv[2], ids)
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return cmd_compare(argv[1], argv[2])
    if len(argv) == 3 and argv[0] == "llama2c-tokenizer":
        cmd_llama2c_tokenizer(argv[1], argv[2])
        return 0
    if len(argv) == 2 and argv[0] == "quant-fixture":
        cmd_quant_fixture(argv[1])
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
