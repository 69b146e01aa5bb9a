#!/usr/bin/python3
"""External check of the reference's Llama forward (RoPE, GQA, RMSNorm, SwiGLU).

Loads stories260K (llama2.c legacy checkpoint; q/k rows permuted from the interleaved
RoPE layout to HF rotate-half), decodes greedily with quietstar_ref.Llama and with the
pass-0 attention of quietstar_spec.Model, and compares with the text llama2.c's `run`
prints (data/stories260K/stories260K.md).
    /usr/bin/python3 tests/reference/check_llama_stories.py [DATA_DIR]   (default $QSTAR_DATA)
"""
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import quietstar_ref as ref  # noqa: E402
import quietstar_spec as spec  # noqa: E402

EXPECT = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
          "in the park. One day, she saw a big, red ball.")


def load_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, L, nh, nkv, V, seq = struct.unpack("<7i", raw[:28])
    shared = V > 0
    V = abs(V)
    a = np.frombuffer(raw, dtype="<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = a[off:off + n].reshape(shape)
        off += n
        return torch.tensor(t.astype(np.float64))
    hd = dim // nh
    kvd = nkv * hd

    def permute(w, n):  # interleaved (2j,2j+1) pairs -> rotate-half (j, j+hd/2)
        return w.view(n, hd // 2, 2, dim).transpose(1, 2).reshape(n * hd, dim)
    p = {"model.embed_tokens.weight": take(V, dim)}
    att = take(L, dim)
    wq, wk, wv, wo = take(L, dim, dim), take(L, kvd, dim), take(L, kvd, dim), take(L, dim, dim)
    ffn = take(L, dim)
    w1, w2, w3 = take(L, hidden, dim), take(L, dim, hidden), take(L, hidden, dim)
    p["model.norm.weight"] = take(dim)
    take(seq, hd // 2)
    take(seq, hd // 2)
    if not shared:
        p["lm_head.weight"] = take(V, dim)
    for l in range(L):
        pre = f"model.layers.{l}."
        p[pre + "input_layernorm.weight"] = att[l]
        p[pre + "self_attn.q_proj.weight"] = permute(wq[l], nh)
        p[pre + "self_attn.k_proj.weight"] = permute(wk[l], nkv)
        p[pre + "self_attn.v_proj.weight"] = wv[l]
        p[pre + "self_attn.o_proj.weight"] = wo[l]
        p[pre + "post_attention_layernorm.weight"] = ffn[l]
        p[pre + "mlp.gate_proj.weight"] = w1[l]
        p[pre + "mlp.down_proj.weight"] = w2[l]
        p[pre + "mlp.up_proj.weight"] = w3[l]
    cfg = {"hidden_size": dim, "num_attention_heads": nh, "num_key_value_heads": nkv,
           "num_hidden_layers": L, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}
    return cfg, p, shared


def load_vocab(path, V):
    raw = open(path, "rb").read()
    off = 4
    toks = []
    for _ in range(V):
        _, n = struct.unpack("<fi", raw[off:off + 8])
        toks.append(raw[off + 8:off + 8 + n])
        off += 8 + n
    return toks


def decode(toks, ids):
    out = b""
    prev = 1
    for t in ids:
        piece = toks[t]
        if prev == 1 and piece.startswith(b" "):
            piece = piece[1:]
        if piece.startswith(b"<0x") and piece.endswith(b">") and len(piece) == 6:
            piece = bytes([int(piece[3:5], 16)])
        out += piece
        prev = t
    return out.decode("utf-8", "replace")


def greedy(forward_logits, n):
    ids = [1]
    for _ in range(n):
        ids.append(int(forward_logits(torch.tensor([ids]))[0, -1].argmax()))
    return ids[1:]


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("QSTAR_DATA")
    if not data:
        print("check_llama_stories: no data dir (set QSTAR_DATA); skipped")
        return 0
    cfg, p, tied = load_llama2c(os.path.join(data, "stories260K", "stories260K.bin"))
    toks = load_vocab(os.path.join(data, "stories260K", "tok512.bin"), 512)
    n = 40
    m_ref = ref.Llama(cfg, p, tied)

    def f_ref(ids):
        m = torch.ones_like(ids)
        h, _ = m_ref.forward(m_ref.embed[ids], ref.prepare_4d_causal_attention_mask(m),
                             torch.arange(ids.shape[1])[None], None)
        return m_ref.lm_head(h)
    m_spec = spec.Model(cfg, p, tied)

    def f_spec(ids):
        cache = [[] for _ in range(m_spec.L)]
        return m_spec.logits(m_spec.run_pass(0, m_spec.E[ids], torch.ones_like(ids), cache))
    ok = True
    for name, f in (("ref", f_ref), ("spec", f_spec)):
        with torch.no_grad():
            text = decode(toks, greedy(f, n))
        good = text.startswith(EXPECT[:len(text)]) and len(text) > 60
        ok &= good
        print(f"check_llama_stories {name}: {'ok' if good else 'FAIL'}: {text!r}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
