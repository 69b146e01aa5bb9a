"""Shared plumbing for the two Quiet-STaR reference implementations.

Only I/O lives here (command line, model directory, batch file, output file); the
algorithm itself is written twice, independently, in quietstar_ref.py (port of the
released code) and quietstar_spec.py (direct reading of SPEC.md).

Precision: everything is computed in float64 (model weights are converted on load), and
the outputs are rounded to F32 only when written.  float64 makes the reference itself
exact to ~1e-12 relative, so any mismatch against the C (float32) implementation is the
C side's rounding or a bug, never the reference's.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

DT = torch.float64

QS_NAMES = ["start_embedding", "end_embedding",
            "talk_head.0.0.weight", "talk_head.0.0.bias",
            "talk_head.0.2.weight", "talk_head.0.2.bias",
            "talk_head.0.4.weight"]


def parse_args(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description="One Quiet-STaR training step: "
                                "losses, rewards, mixing weights and all parameter gradients "
                                "(same interface as `qstar dump-step`).")
    p.add_argument("--model", required=True, help="HF-layout model directory")
    p.add_argument("--batch", required=True, help="input_ids, [attention_mask], thought_ids")
    p.add_argument("--out", required=True, help="output .safetensors (F32)")
    p.add_argument("--n-ahead", type=int, default=12)
    p.add_argument("--n-talk", type=int, default=4)
    p.add_argument("--n-passes", type=int, default=2)
    p.add_argument("--base-loss-weight", type=float, default=0.5)
    p.add_argument("--policy-beta", type=float, default=1e6)
    p.add_argument("--tau-rl", type=float, default=3.0)
    p.add_argument("--embedding-scale", type=float, default=100.0)
    p.add_argument("--no-clamp", action="store_true", help="do not clamp negative advantages")
    p.add_argument("--mixing", choices=["linear", "sigmoid"], default="linear",
                   help="linear: released unbounded w; sigmoid: w = sigmoid(head)")
    p.add_argument("--thought-init-id", type=int, default=None,
                   help="token whose embedding/scale initialises absent start/end "
                        "embeddings (default: the mean embedding row)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for initialising an absent talk head (N(0,0.02))")
    a = p.parse_args(argv)
    if a.n_ahead < 3:
        p.error("--n-ahead must be >= 3 (start, end, and n_ahead-3 sampled tokens)")
    if a.n_talk < 1 or a.n_passes < 1:
        p.error("--n-talk and --n-passes must be >= 1")
    return a


def is_gpt2(cfg):
    return cfg.get("model_type") == "gpt2" or "GPT2LMHeadModel" in (cfg.get("architectures") or [])


def embed_name(cfg):
    return "transformer.wte.weight" if is_gpt2(cfg) else "model.embed_tokens.weight"


def load_model(model_dir, args):
    """Returns (cfg dict, params dict name -> float64 leaf tensor requiring grad, tied).
    A GPT2LMHeadModel config gets the Llama key names too (hidden_size = n_embd, ...;
    tensors named transformer.* as HF writes them)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    raw = st.load(os.path.join(model_dir, "model.safetensors"))
    if is_gpt2(cfg):
        cfg.update(model_type="gpt2", hidden_size=cfg["n_embd"], num_attention_heads=cfg["n_head"],
                   num_key_value_heads=cfg["n_head"], num_hidden_layers=cfg["n_layer"],
                   tie_word_embeddings=cfg.get("tie_word_embeddings", True))
        cfg.setdefault("layer_norm_epsilon", 1e-5)
    H = cfg["hidden_size"]
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("rms_norm_eps", 1e-6)
    tied = bool(cfg.get("tie_word_embeddings", False))
    if not tied and "lm_head.weight" not in raw:
        raise SystemExit("model.safetensors has no lm_head.weight and config is not tied")
    params = {}
    for name, arr in raw.items():
        if tied and name == "lm_head.weight":
            continue  # HF ties: the embedding is the head
        if not np.issubdtype(arr.dtype, np.floating):
            continue
        params[name] = torch.tensor(arr, dtype=DT)
    E = params[embed_name(cfg)]
    # Absent Quiet-STaR tensors: SPEC init.  start/end = E[id("---")] / scale; with no
    # tokenizer here, --thought-init-id picks the row, default the mean embedding row
    # (SPEC's own fallback).  Row 1 (unused by qstar; the released code stored a log-std
    # there) is set to 0.
    for nm in ("start_embedding", "end_embedding"):
        if nm not in params:
            row = E[args.thought_init_id] if args.thought_init_id is not None else E.mean(0)
            t = torch.zeros(2, H, dtype=DT)
            t[0] = row / args.embedding_scale
            params[nm] = t
    if "talk_head.0.0.weight" not in params:
        # W1, W2 ~ N(0, 0.02), biases 0, W3 = 0 (SPEC 2).  RNG-dependent: a C run will
        # only match if it draws the same numbers; fixtures always store the head.
        print("warning: talk head absent, initialising with torch RNG seed", args.seed,
              file=sys.stderr)
        g = torch.Generator().manual_seed(args.seed)
        params["talk_head.0.0.weight"] = torch.randn(H, 2 * H, generator=g, dtype=DT) * 0.02
        params["talk_head.0.0.bias"] = torch.zeros(H, dtype=DT)
        params["talk_head.0.2.weight"] = torch.randn(H, H, generator=g, dtype=DT) * 0.02
        params["talk_head.0.2.bias"] = torch.zeros(H, dtype=DT)
        params["talk_head.0.4.weight"] = torch.zeros(1, H, dtype=DT)
    for nm in QS_NAMES:
        if nm not in params:
            raise SystemExit(f"model.safetensors: missing {nm} (partial talk head)")
    for t in params.values():
        t.requires_grad_(True)
    return cfg, params, tied


def load_batch(path, args, V):
    b = st.load(path)
    ids = b["input_ids"].astype(np.int64)
    if ids.ndim != 2:
        raise SystemExit("input_ids must be [B,T]")
    B, T = ids.shape
    if "attention_mask" in b:
        m = (b["attention_mask"] != 0).astype(np.int64)
        if m.shape != (B, T):
            raise SystemExit("attention_mask must be [B,T]")
    else:
        m = np.ones((B, T), np.int64)
    # SPEC assumes right padding; require it (a row must start with a real token and
    # never return to real tokens after padding), so both implementations are defined.
    for r in range(B):
        if m[r, 0] == 0 or np.any(np.diff(m[r]) > 0):
            raise SystemExit(f"attention_mask row {r} is not right padding")
    R, nth = B * args.n_passes, args.n_ahead - 3
    if "thought_ids" in b:
        th = b["thought_ids"].astype(np.int64)
    elif nth == 0:
        th = np.zeros((R, 0, T), np.int64)
    else:
        raise SystemExit("batch has no thought_ids")
    if th.shape != (R, nth, T):
        raise SystemExit(f"thought_ids shape {th.shape}, expected {(R, nth, T)}")
    if ids.min() < 0 or ids.max() >= V or (th.size and (th.min() < 0 or th.max() >= V)):
        raise SystemExit("token id out of range")
    if T < args.n_talk + 2:
        raise SystemExit("T must be >= n_talk + 2 (at least one rewarded position)")
    return torch.tensor(ids), torch.tensor(m), torch.tensor(th)


def grad_names(params):
    """Trainable tensors in output order: the model file's own, then Quiet-STaR's."""
    base = sorted(n for n in params if n not in QS_NAMES)
    return base + QS_NAMES


def write_out(path, res, params):
    out = {}
    for k in ["loss", "loss_lm", "loss_base", "policy_loss", "loss_talk",
              "reward", "advantage", "mix_weight", "mix_weight_valid"]:
        v = res[k].detach()
        if v.dim() == 0:
            v = v.reshape(1)
        out[k] = v.numpy().astype(np.float32)
    for n in grad_names(params):
        g = params[n].grad
        if g is None:
            g = torch.zeros_like(params[n])
        out["grad." + n] = g.detach().numpy().astype(np.float32)
    st.save(path, out)


def mix_valid_mask(m, n_talk):
    """[n_talk, R, T] 1 where talk k at position i has a real target x[i+k+1].

    mix_weight is written only there (0 elsewhere): at other positions it is not used by
    any loss and depends on conventions (the released code wraps hb around the end of the
    sequence and feeds pad tokens), so it is not part of the checked result.
    """
    R, T = m.shape
    v = torch.zeros(n_talk, R, T, dtype=DT)
    for k in range(n_talk):
        v[k, :, :T - 1 - k] = m[:, k + 1:].to(DT)
    return v
