#!/usr/bin/python3
"""Tiny random Hugging Face model directories of each family qstar supports, each
with a REAL tokenizer (copied from $QSTAR_DATA/tokenizers/hf-json), for the
end-to-end family test (tests/cli/families.sh).

    /usr/bin/python3 tests/reference/make_family_models.py --data $QSTAR_DATA --out DIR

writes DIR/<family>/model/{config.json,model.safetensors,tokenizer.json,
tokenizer_config.json}, DIR/<family>/batch.safetensors (input_ids, thought_ids)
and DIR/<family>/args.txt (the Quiet-STaR flags for dump-step and the references).

Families (the shapes are tiny; the vocabularies are the real ones):
    llama3   LlamaForCausalLM, GQA, rope_scaling llama3, untied; Llama-3 tokenizer.json
    mistral  MistralForCausalLM, sliding_window 6 (< T, so the window is exercised);
             Llama-2 tokenizer.json (SentencePiece-style BPE with byte fallback)
    qwen2    Qwen2ForCausalLM, q/k/v biases, tied, vocab padded past the tokenizer
             (151936 > 151669, as real Qwen checkpoints); Qwen3 tokenizer.json
    gpt2     GPT2LMHeadModel (LayerNorm, GELU, learned positions, Conv1D weights
             stored [in, out], biases, tied head); GPT-2 tokenizer.json
    released the released Quiet-STaR checkpoint layout (ezelikman/quietstar-8-ahead):
             MistralForCausalLM, sliding_window 4096, vocabulary extended to 32002
             (Llama-2 tokenizer.json + added special tokens <|endthought|> = 32000,
             <|startthought|> = 32001, also in tokenizer_config.json), the config
             keys of the authors' configuration_mistral.py (max_thoughts = n_ahead +
             n_ahead_talk + 1 = 13, the head-variant booleans as quiet-star-train.py
             sets them), no "quietstar" block, weights stored as BF16 (row 1 of
             start/end_embedding holds a log-std as in the release; unused)
Every model carries the Quiet-STaR tensors under the released names.
`--only fake-gpt2` (or the default list) also writes DIR/fake-gpt2/{batch.safetensors,
args.txt} for the shared $QSTAR_DATA/models/fake-gpt2 (its model is used in place).
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402

FAMILIES = {
    "llama3": dict(tok="llama3", V=128256, H=16, I=32, L=2, nh=4, nkv=2, tied=False, seed=11),
    "mistral": dict(tok="llama2", V=32000, H=16, I=24, L=2, nh=4, nkv=1, tied=False, seed=12,
                    window=6),
    "qwen2": dict(tok="qwen3", V=151936, H=16, I=24, L=2, nh=2, nkv=1, tied=True, seed=13),
    "gpt2": dict(tok="gpt2", V=50257, H=16, I=64, L=2, nh=2, nkv=2, tied=True, seed=14),
    "released": dict(tok="llama2", V=32002, H=16, I=24, L=2, nh=4, nkv=2, tied=False, seed=15,
                     window=4096),
}
META = {"<|endthought|>": 32000, "<|startthought|>": 32001}  # the released vocabulary's order
B, T, N_AHEAD, N_TALK, P = 2, 12, 5, 2, 2


def rnd(rs, *shape, std):
    return (rs.randn(*shape) * std).astype(np.float32)


def quietstar_tensors(rs, H):
    return {
        "start_embedding": rnd(rs, 2, H, std=0.005),
        "end_embedding": rnd(rs, 2, H, std=0.005),
        "talk_head.0.0.weight": rnd(rs, H, 2 * H, std=1.0 / np.sqrt(2 * H)),
        "talk_head.0.0.bias": rnd(rs, H, std=0.1),
        "talk_head.0.2.weight": rnd(rs, H, H, std=1.0 / np.sqrt(H)),
        "talk_head.0.2.bias": rnd(rs, H, std=0.1),
        "talk_head.0.4.weight": rnd(rs, 1, H, std=1.0 / np.sqrt(H)),
    }


def llama_like(name, c, rs, bos, eos):
    H, I, L, V, nh, nkv = c["H"], c["I"], c["L"], c["V"], c["nh"], c["nkv"]
    hd = H // nh
    t = {"model.embed_tokens.weight": rnd(rs, V, H, std=0.5)}
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "self_attn.q_proj.weight"] = rnd(rs, nh * hd, H, std=1.5 / np.sqrt(H))
        t[p + "self_attn.k_proj.weight"] = rnd(rs, nkv * hd, H, std=1.5 / np.sqrt(H))
        t[p + "self_attn.v_proj.weight"] = rnd(rs, nkv * hd, H, std=1.0 / np.sqrt(H))
        if name == "qwen2":
            t[p + "self_attn.q_proj.bias"] = rnd(rs, nh * hd, std=0.1)
            t[p + "self_attn.k_proj.bias"] = rnd(rs, nkv * hd, std=0.1)
            t[p + "self_attn.v_proj.bias"] = rnd(rs, nkv * hd, std=0.1)
        t[p + "self_attn.o_proj.weight"] = rnd(rs, H, nh * hd, std=1.0 / np.sqrt(H))
        t[p + "mlp.gate_proj.weight"] = rnd(rs, I, H, std=1.0 / np.sqrt(H))
        t[p + "mlp.up_proj.weight"] = rnd(rs, I, H, std=1.0 / np.sqrt(H))
        t[p + "mlp.down_proj.weight"] = rnd(rs, H, I, std=1.0 / np.sqrt(I))
        t[p + "input_layernorm.weight"] = 1 + rnd(rs, H, std=0.1)
        t[p + "post_attention_layernorm.weight"] = 1 + rnd(rs, H, std=0.1)
    t["model.norm.weight"] = 1 + rnd(rs, H, std=0.1)
    if not c["tied"]:
        t["lm_head.weight"] = rnd(rs, V, H, std=2.0 / np.sqrt(H))
    arch = {"llama3": ("LlamaForCausalLM", "llama"), "mistral": ("MistralForCausalLM", "mistral"),
            "released": ("MistralForCausalLM", "mistral"), "qwen2": ("Qwen2ForCausalLM", "qwen2")}[name]
    cfg = {
        "architectures": [arch[0]], "model_type": arch[1], "hidden_act": "silu",
        "hidden_size": H, "intermediate_size": I, "num_hidden_layers": L,
        "num_attention_heads": nh, "num_key_value_heads": nkv, "vocab_size": V,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": c["tied"],
        "max_position_embeddings": 256, "bos_token_id": bos, "eos_token_id": eos,
        "torch_dtype": "float32", "attention_dropout": 0.0,
        "transformers_version": "4.44.0",
    }
    if name == "llama3":
        cfg["rope_theta"] = 500000.0
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 64}
    elif name in ("mistral", "released"):
        cfg["rope_theta"] = 10000.0
        cfg["sliding_window"] = c["window"]
        if name == "released":  # configuration_mistral.py keys, values of quiet-star-train.py
            cfg.update(max_thoughts=8 + 4 + 1, merged_talk_heads=True, merged_lm_and_talk_heads=False,
                       merged_lm_and_think_heads=True, use_concat_talk_head=True, use_shallow_think=True,
                       use_shallow_talk=False, use_complex_think_head=False, use_complex_talk_head=True,
                       use_weighted_talk_head=True, torch_dtype="bfloat16", pad_token_id=None,
                       transformers_version="4.37.0.dev0")
    else:
        cfg["rope_theta"] = 1000000.0
        cfg["use_sliding_window"] = False
        cfg["sliding_window"] = None
        cfg["max_window_layers"] = L
    return cfg, t


def gpt2(c, rs, bos, eos):
    H, I, L, V = c["H"], c["I"], c["L"], c["V"]
    n_pos = 128
    t = {"transformer.wte.weight": rnd(rs, V, H, std=0.5),
         "transformer.wpe.weight": rnd(rs, n_pos, H, std=0.1)}
    for l in range(L):
        p = f"transformer.h.{l}."
        t[p + "ln_1.weight"] = 1 + rnd(rs, H, std=0.1)
        t[p + "ln_1.bias"] = rnd(rs, H, std=0.1)
        t[p + "attn.c_attn.weight"] = rnd(rs, H, 3 * H, std=1.5 / np.sqrt(H))  # Conv1D [in, out]
        t[p + "attn.c_attn.bias"] = rnd(rs, 3 * H, std=0.1)
        t[p + "attn.c_proj.weight"] = rnd(rs, H, H, std=1.0 / np.sqrt(H))
        t[p + "attn.c_proj.bias"] = rnd(rs, H, std=0.1)
        t[p + "ln_2.weight"] = 1 + rnd(rs, H, std=0.1)
        t[p + "ln_2.bias"] = rnd(rs, H, std=0.1)
        t[p + "mlp.c_fc.weight"] = rnd(rs, H, I, std=1.0 / np.sqrt(H))
        t[p + "mlp.c_fc.bias"] = rnd(rs, I, std=0.1)
        t[p + "mlp.c_proj.weight"] = rnd(rs, I, H, std=1.0 / np.sqrt(I))
        t[p + "mlp.c_proj.bias"] = rnd(rs, H, std=0.1)
    t["transformer.ln_f.weight"] = 1 + rnd(rs, H, std=0.1)
    t["transformer.ln_f.bias"] = rnd(rs, H, std=0.1)
    cfg = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "activation_function": "gelu_new", "n_embd": H, "n_layer": L, "n_head": c["nh"],
        "n_inner": I, "n_positions": n_pos, "n_ctx": n_pos, "vocab_size": V,
        "layer_norm_epsilon": 1e-5, "bos_token_id": bos, "eos_token_id": eos,
        "attn_pdrop": 0.1, "embd_pdrop": 0.1, "resid_pdrop": 0.1,
        "scale_attn_weights": True, "torch_dtype": "float32",
        "transformers_version": "4.36.2",
    }
    return cfg, t


def special_ids(tok_dir):
    """bos/eos ids of a tokenizer.json + tokenizer_config.json (None if absent)."""
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    with open(os.path.join(tok_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        tc = json.load(f)
    ids = {a["content"]: a["id"] for a in tj.get("added_tokens", [])}
    ids.update(tj["model"]["vocab"])

    def tid(k):
        v = tc.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        return ids.get(v) if v is not None else None
    return tid("bos_token"), tid("eos_token")


def meta_dominates(t, c):
    """Makes <|endthought|> / <|startthought|> the most likely tokens everywhere, so
    that any sampling step that fails to ban them picks them: hidden dimension 0 is
    a constant 4 in every input embedding (token rows, start, end) and no layer
    writes to it (o_proj and down_proj row 0 zero), so it stays positive after the
    final norm; the two meta rows of lm_head are 8 * e_0 (logit ~ 30 against ~5
    for ordinary tokens); the talk head's output layer is small so the mixed hidden
    state keeps dimension 0 positive."""
    t["model.embed_tokens.weight"][:, 0] = 4.0
    for l in range(c["L"]):
        t[f"model.layers.{l}.self_attn.o_proj.weight"][0, :] = 0.0
        t[f"model.layers.{l}.mlp.down_proj.weight"][0, :] = 0.0
    t["model.norm.weight"][0] = 1.0
    for nm in ("start_embedding", "end_embedding"):
        t[nm][0, 0] = 4.0 / 100.0  # used as 100 * row 0
    for i in META.values():
        t["lm_head.weight"][i, :] = 0.0
        t["lm_head.weight"][i, 0] = 8.0
    t["talk_head.0.4.weight"] *= 0.05


def to_bf16(a):
    """float32 -> bfloat16 bit patterns (uint16, round to nearest even), as torch does."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def save_bf16(path, tensors):
    """Every tensor stored as BF16 (st.py writes numpy dtypes only)."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        data = to_bf16(a).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(np.shape(a)), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(hj).to_bytes(8, "little"))
        f.write(hj)
        for d in blobs:
            f.write(d)


def released_tokenizer(src, d):
    """Llama-2 tokenizer.json + the two meta tokens, as the released checkpoint has them."""
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    with open(os.path.join(src, "tokenizer_config.json"), encoding="utf-8") as f:
        tc = json.load(f)
    for content, i in sorted(META.items(), key=lambda kv: kv[1]):
        tok = {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True}
        tj["added_tokens"].append(tok)
        tc["added_tokens_decoder"][str(i)] = {k: v for k, v in tok.items() if k != "id"}
    tc["additional_special_tokens"] = ["<|startthought|>", "<|endthought|>"]
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tc, f, ensure_ascii=False, indent=2)
    with open(os.path.join(d, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"additional_special_tokens": tc["additional_special_tokens"], "bos_token": "<s>",
                   "eos_token": "</s>", "unk_token": "<unk>"}, f, indent=2)


def write_batch(rs, out, name):
    n_tok = 32000  # ids of ordinary (non-special) tokens in every one of these vocabularies
    os.makedirs(os.path.join(out, name), exist_ok=True)
    ids = rs.randint(300, n_tok, size=(B, T)).astype(np.int64)
    batch = {"input_ids": ids, "thought_ids": rs.randint(300, n_tok, size=(B * P, N_AHEAD - 3, T)).astype(np.int64)}
    st.save(os.path.join(out, name, "batch.safetensors"), batch)
    with open(os.path.join(out, name, "args.txt"), "w") as f:
        f.write(f"--n-ahead {N_AHEAD} --n-talk {N_TALK} --n-passes {P} --policy-beta 1\n")


def make(name, data, out):
    if name == "fake-gpt2":  # the shared model is used in place: only a batch
        write_batch(np.random.RandomState(16), out, name)
        return
    c = FAMILIES[name]
    rs = np.random.RandomState(c["seed"])
    src = os.path.join(data, "tokenizers", "hf-json", c["tok"])
    bos, eos = special_ids(src)
    d = os.path.join(out, name, "model")
    os.makedirs(d, exist_ok=True)
    cfg, t = gpt2(c, rs, bos, eos) if name == "gpt2" else llama_like(name, c, rs, bos, eos)
    t.update(quietstar_tensors(rs, c["H"]))
    if name == "released":
        meta_dominates(t, c)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if name == "released":
        save_bf16(os.path.join(d, "model.safetensors"), t)
        released_tokenizer(src, d)
    else:
        st.save(os.path.join(d, "model.safetensors"), t)
        for fn in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(src, fn), os.path.join(d, fn))
    write_batch(rs, out, name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("QSTAR_DATA", ""))
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=None, help="comma-separated family names")
    a = ap.parse_args()
    if not a.data or not os.path.isdir(os.path.join(a.data, "tokenizers", "hf-json")):
        sys.exit("make_family_models.py: need --data (or QSTAR_DATA) with tokenizers/hf-json/")
    for name in (a.only.split(",") if a.only else list(FAMILIES) + ["fake-gpt2"]):
        make(name, a.data, a.out)
        print(name)


if __name__ == "__main__":
    main()
