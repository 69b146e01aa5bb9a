#!/usr/bin/python3
"""Create the Quiet-STaR step fixtures in tests/fixtures/quietstar/<name>/.

Each directory holds
    model/config.json, model/model.safetensors   a tiny random Llama (HF names, F32)
                                                 + start/end embeddings + talk head
    batch.safetensors                            input_ids, [attention_mask], thought_ids
    args.txt                                     one line of CLI flags for the step
    expected.safetensors                         quietstar_ref.py's output for them

Every tensor is random and non-zero (talk_head.0.4 included, start/end too), so every
gradient path is live.  Deterministic (numpy RandomState per configuration).

    /usr/bin/python3 tests/reference/make_quietstar_fixtures.py [--out DIR] [--no-run]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

CONFIGS = {
    # a) tied embeddings, no padding (no attention_mask tensor at all)
    "a_tied": dict(seed=101, H=16, I=32, L=2, nh=2, nkv=2, V=64, tied=True,
                   theta=10000.0, eps=1e-5, B=2, T=8, n_ahead=5, n_talk=2, P=2,
                   pad_rows={}, ids_dtype=np.int64, extra=[]),
    # b) untied head, GQA (4 heads, 2 kv heads), right padding in row 1
    "b_gqa_pad": dict(seed=202, H=24, I=40, L=2, nh=4, nkv=2, V=72, tied=False,
                      theta=500000.0, eps=1e-6, B=2, T=10, n_ahead=6, n_talk=4, P=2,
                      pad_rows={1: 7}, ids_dtype=np.int64, extra=[]),
    # c) learned-pause baseline: start+end only, no sampled tokens, no policy loss
    "c_pause": dict(seed=303, H=16, I=24, L=2, nh=2, nkv=1, V=80, tied=False,
                    theta=10000.0, eps=1e-5, B=2, T=8, n_ahead=3, n_talk=1, P=1,
                    pad_rows={}, ids_dtype=np.int32, extra=[]),
    # d) (extra) non-default options, so the policy part does not swamp the LM part
    #    (beta 1), 3 passes, negative advantages kept, sigmoid mixing, padding in row 0
    "d_options": dict(seed=404, H=16, I=32, L=2, nh=4, nkv=2, V=64, tied=True,
                      theta=10000.0, eps=1e-5, B=2, T=9, n_ahead=4, n_talk=2, P=3,
                      pad_rows={0: 6}, ids_dtype=np.int64,
                      extra=["--policy-beta", "1", "--no-clamp", "--mixing", "sigmoid",
                             "--tau-rl", "2", "--base-loss-weight", "0.3",
                             "--embedding-scale", "50"]),
    # e) (extra) like b (GQA, padding, untied, n_talk 4) but one pass (no baseline, so
    #    the nll_0 part of the reward reaches the gradient) and policy beta 1, so the
    #    language-model gradients through thoughts, hb and the mixing head are not
    #    swamped by the 1e6-scaled policy term as in a) and b)
    "e_single_pass": dict(seed=505, H=16, I=24, L=2, nh=4, nkv=2, V=61, tied=False,
                          theta=10000.0, eps=1e-6, B=3, T=10, n_ahead=6, n_talk=4, P=1,
                          pad_rows={0: 8, 2: 6}, ids_dtype=np.int64,
                          extra=["--policy-beta", "1"]),
    # f) (extra) Mistral sliding window 4 < T = 10: prefix keys more than 3 position ids
    #    behind a query (thought queries at i+d included) are hidden; padding in row 1
    "f_window": dict(seed=606, H=16, I=24, L=2, nh=4, nkv=2, V=61, tied=False,
                     theta=10000.0, eps=1e-6, B=2, T=10, n_ahead=6, n_talk=2, P=2,
                     pad_rows={1: 8}, ids_dtype=np.int64, window=4,
                     extra=["--policy-beta", "1"]),
}


def make_model(c, rs):
    H, I, L, V = c["H"], c["I"], c["L"], c["V"]
    hd = H // c["nh"]
    f = lambda *shape, std: (rs.randn(*shape) * std).astype(np.float32)  # noqa: E731
    t = {"model.embed_tokens.weight": f(V, H, std=0.5)}
    for l in range(L):
        pre = f"model.layers.{l}."
        t[pre + "self_attn.q_proj.weight"] = f(c["nh"] * hd, H, std=1.5 / np.sqrt(H))
        t[pre + "self_attn.k_proj.weight"] = f(c["nkv"] * hd, H, std=1.5 / np.sqrt(H))
        t[pre + "self_attn.v_proj.weight"] = f(c["nkv"] * hd, H, std=1.0 / np.sqrt(H))
        t[pre + "self_attn.o_proj.weight"] = f(H, c["nh"] * hd, std=1.0 / np.sqrt(H))
        t[pre + "mlp.gate_proj.weight"] = f(I, H, std=1.0 / np.sqrt(H))
        t[pre + "mlp.up_proj.weight"] = f(I, H, std=1.0 / np.sqrt(H))
        t[pre + "mlp.down_proj.weight"] = f(H, I, std=1.0 / np.sqrt(I))
        t[pre + "input_layernorm.weight"] = (1 + f(H, std=0.1)).astype(np.float32)
        t[pre + "post_attention_layernorm.weight"] = (1 + f(H, std=0.1)).astype(np.float32)
    t["model.norm.weight"] = (1 + f(H, std=0.1)).astype(np.float32)
    if not c["tied"]:
        t["lm_head.weight"] = f(V, H, std=2.0 / np.sqrt(H))
    # Quiet-STaR tensors (released names/shapes); start/end used as scale * row 0
    t["start_embedding"] = f(2, H, std=0.005)
    t["end_embedding"] = f(2, H, std=0.005)
    t["talk_head.0.0.weight"] = f(H, 2 * H, std=1.0 / np.sqrt(2 * H))
    t["talk_head.0.0.bias"] = f(H, std=0.1)
    t["talk_head.0.2.weight"] = f(H, H, std=1.0 / np.sqrt(H))
    t["talk_head.0.2.bias"] = f(H, std=0.1)
    t["talk_head.0.4.weight"] = f(1, H, std=1.0 / np.sqrt(H))
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": H, "intermediate_size": I, "num_hidden_layers": L,
        "num_attention_heads": c["nh"], "num_key_value_heads": c["nkv"],
        "vocab_size": V, "rope_theta": c["theta"], "rms_norm_eps": c["eps"],
        "tie_word_embeddings": c["tied"], "max_position_embeddings": 64,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    }
    if c.get("window"):
        cfg.update(architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=c["window"])
    return cfg, t


def make_batch(c, rs):
    B, T, V, P = c["B"], c["T"], c["V"], c["P"]
    ids = rs.randint(3, V, size=(B, T))
    b = {}
    if c["pad_rows"]:
        m = np.ones((B, T), np.int64)
        for r, n_real in c["pad_rows"].items():
            m[r, n_real:] = 0
            ids[r, n_real:] = 2  # pad = eos, as the released training script
        b["attention_mask"] = m
    b = {"input_ids": ids.astype(c["ids_dtype"]), **b}
    b["thought_ids"] = rs.randint(0, V, size=(B * P, c["n_ahead"] - 3, T)).astype(np.int64)
    return b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "quietstar"))
    ap.add_argument("--no-run", action="store_true", help="do not run the reference")
    ap.add_argument("--only", default=None, help="comma-separated configuration names")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="shift every configuration's seed: fresh random models and batches")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(CONFIGS)
    for name in names:
        c = CONFIGS[name]
        rs = np.random.RandomState(c["seed"] + a.seed_offset)
        d = os.path.join(a.out, name)
        os.makedirs(os.path.join(d, "model"), exist_ok=True)
        cfg, tensors = make_model(c, rs)
        with open(os.path.join(d, "model", "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        st.save(os.path.join(d, "model", "model.safetensors"), tensors)
        st.save(os.path.join(d, "batch.safetensors"), make_batch(c, rs))
        flags = ["--n-ahead", str(c["n_ahead"]), "--n-talk", str(c["n_talk"]),
                 "--n-passes", str(c["P"])] + c["extra"]
        with open(os.path.join(d, "args.txt"), "w") as f:
            f.write(" ".join(flags) + "\n")
        if not a.no_run:
            subprocess.run([sys.executable, os.path.join(HERE, "quietstar_ref.py"),
                            "--model", os.path.join(d, "model"),
                            "--batch", os.path.join(d, "batch.safetensors"),
                            "--out", os.path.join(d, "expected.safetensors")] + flags,
                           check=True)
        size = sum(os.path.getsize(os.path.join(dp, fn))
                   for dp, _, fns in os.walk(d) for fn in fns)
        print(f"{name}: {size} bytes")


if __name__ == "__main__":
    main()
