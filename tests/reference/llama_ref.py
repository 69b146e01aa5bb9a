#!/usr/bin/python3
"""llama_ref.py: plain language-model reference fixtures for qstar.

Builds small random Llama-family models in pure PyTorch (no `transformers`),
computing exactly what Hugging Face's LlamaForCausalLM / Qwen2ForCausalLM
compute:

  h = embed_tokens[x]
  per layer:  a = RMSNorm(h) (input_layernorm)
              q,k,v = a W^T (+ b for Qwen2); rotate-half RoPE on q,k with
              inv_freq = 1/theta^(arange(0,hd,2)/hd), positions 0..T-1
              grouped-query attention (query head h uses kv head h // (nh/nkv)),
              causal mask + key padding mask (right padding), scale 1/sqrt(hd)
              h = h + o_proj(attn)
              h = h + down(silu(gate(RMSNorm(h))) * up(RMSNorm(h)))
  logits = lm_head(RMSNorm(h))   (lm_head tied to embed_tokens or separate)
  RMSNorm(x) = x * rsqrt(mean(x^2) + eps) * w
  loss = mean over (b,i), i < T-1, mask[b,i+1] == 1 of CE(logits[b,i], x[b,i+1])

Then 3 AdamW steps on the same batch (torch.optim.AdamW, decoupled weight
decay, no decay for norm weights and biases, clip_grad_norm_ before each step).

Precision: parameters are drawn, rounded to float32 (so the float32 file holds
the exact model), then everything (forward, autograd, AdamW) runs in float64
and the results are rounded to float32 when saved. The fixtures are therefore
the exact-arithmetic answer to ~1e-7 relative, not a float32 answer; a correct
float32 implementation differs from them only by its own rounding.

Self-checks (assertions, run every time):
  * autograd gradients against central finite differences (float64) for a
    few elements of several tensors;
  * padding invariance: a padded row's logits at real positions equal those
    of the same row run alone, truncated to its length;
  * conditioning: the same computation in float32 (as the C code does it)
    matches the float64 fixture within the C test's tolerances with a wide
    margin, for logits, loss, every gradient and the parameters after every
    AdamW step.

Usage: /usr/bin/python3 tests/reference/llama_ref.py [OUT_DIR]
       (default OUT_DIR: tests/fixtures/llama relative to the repo root)
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

HP = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, clip_grad_norm=1.0, steps=3)
# Tolerances of tests/test_reference.c (atol + rtol*|ref|); the float32
# emulation below must stay under TOL_MARGIN of them.
ATOL, RTOL, TOL_MARGIN = 1e-5, 1e-4, 0.25

CONFIGS = [
    dict(name="tied_mha", arch="llama", B=2, T=7, H=16, F=24, L=2, nh=4, nkv=4, V=67,
         tied=True, bias=False, theta=10000.0, eps=1e-5, lengths=None, seed=1001),
    dict(name="untied_gqa_pad", arch="llama", B=3, T=9, H=24, F=16, L=2, nh=6, nkv=2, V=53,
         tied=False, bias=False, theta=500000.0, eps=1e-5, lengths=[9, 6, 4], seed=2002),
    dict(name="qwen2_bias", arch="qwen2", B=2, T=6, H=16, F=24, L=2, nh=4, nkv=2, V=61,
         tied=False, bias=True, theta=10000.0, eps=1e-6, lengths=None, seed=3003),
    # Mistral sliding window 6 < T = 11 (HF: query i sees keys j with i - j < W)
    dict(name="mistral_window", arch="mistral", B=2, T=11, H=16, F=24, L=2, nh=4, nkv=2, V=59,
         tied=False, bias=False, theta=10000.0, eps=1e-5, lengths=[11, 8], seed=4004, window=6),
    # Llama-3.x rope_scaling "llama3": hd 8, theta 5e5 -> wavelengths 6.3 (kept), 167
    # (interpolated band [64, 256]), 4443 and 1.2e5 (divided by factor)
    dict(name="llama3_rope", arch="llama", B=2, T=8, H=16, F=24, L=2, nh=2, nkv=1, V=57,
         tied=True, bias=False, theta=500000.0, eps=1e-5, lengths=None, seed=5005,
         rope=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=256)),
    dict(name="linear_rope", arch="llama", B=1, T=8, H=16, F=16, L=2, nh=2, nkv=2, V=41,
         tied=True, bias=False, theta=10000.0, eps=1e-5, lengths=None, seed=6006,
         rope=dict(type="linear", factor=4.0)),
]


# ----------------------------------------------------------------------------- model

def param_specs(c):
    """(name, shape, kind) in HF order; kind in {embed, matrix, norm, bias}."""
    H, F, hd = c["H"], c["F"], c["H"] // c["nh"]
    qd, kvd = c["nh"] * hd, c["nkv"] * hd
    s = [("model.embed_tokens.weight", (c["V"], H), "embed")]
    for l in range(c["L"]):
        p = "model.layers.%d." % l
        s.append((p + "input_layernorm.weight", (H,), "norm"))
        s.append((p + "self_attn.q_proj.weight", (qd, H), "matrix"))
        s.append((p + "self_attn.k_proj.weight", (kvd, H), "matrix"))
        s.append((p + "self_attn.v_proj.weight", (kvd, H), "matrix"))
        if c["bias"]:
            s.append((p + "self_attn.q_proj.bias", (qd,), "bias"))
            s.append((p + "self_attn.k_proj.bias", (kvd,), "bias"))
            s.append((p + "self_attn.v_proj.bias", (kvd,), "bias"))
        s.append((p + "self_attn.o_proj.weight", (H, qd), "matrix"))
        s.append((p + "post_attention_layernorm.weight", (H,), "norm"))
        s.append((p + "mlp.gate_proj.weight", (F, H), "matrix"))
        s.append((p + "mlp.up_proj.weight", (F, H), "matrix"))
        s.append((p + "mlp.down_proj.weight", (H, F), "matrix"))
    s.append(("model.norm.weight", (H,), "norm"))
    if not c["tied"]:
        s.append(("lm_head.weight", (c["V"], H), "matrix"))
    return s


def init_params(c, gen):
    """Random parameters, rounded to float32 then held as float64 leaves."""
    out = {}
    for name, shape, kind in param_specs(c):
        if kind == "embed":
            w = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.5
        elif kind == "matrix":
            w = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[1])
        elif kind == "norm":  # around 1, not exactly 1, so their gradients are tested
            w = 1.0 + 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:  # bias
            w = 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)
        out[name] = w.float().double().requires_grad_(True)
    return out


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def scaled_inv_freq(inv_freq, rope):
    """HF's rope_scaling (modeling_rope_utils): linear divides every inverse
    frequency by factor; llama3 divides those with wavelength above
    original_max / low_freq_factor, keeps those below original_max /
    high_freq_factor and interpolates the band between."""
    if not rope:
        return inv_freq
    kind = rope.get("rope_type", rope.get("type"))
    factor = rope["factor"]
    if kind == "linear":
        return inv_freq / factor
    assert kind == "llama3"
    old = rope["original_max_position_embeddings"]
    lo, hi = rope["low_freq_factor"], rope["high_freq_factor"]
    low_wl, high_wl = old / lo, old / hi
    wavelen = 2 * math.pi / inv_freq
    out = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
    return torch.where(medium, smoothed, out)


def rope_cos_sin(T, hd, theta, dtype, rope=None):
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    inv_freq = scaled_inv_freq(inv_freq, rope)
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def forward(P, c, ids, mask):
    """ids, mask: int64 [B,T]. Returns logits [B,T,V] and the mean loss."""
    B, T = ids.shape
    nh, nkv = c["nh"], c["nkv"]
    hd = c["H"] // nh
    rep = nh // nkv
    dtype = P["model.embed_tokens.weight"].dtype
    cos, sin = rope_cos_sin(T, hd, c["theta"], dtype, c.get("rope"))
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    if c.get("window"):  # HF Mistral sliding window: key j visible from query i iff i - j < W
        ar = torch.arange(T)
        causal = causal & ((ar[:, None] - ar[None, :]) < c["window"])
    allowed = causal[None, None] & (mask[:, None, None, :] != 0)  # [B,1,Tq,Tk]

    def lin(x, name, with_bias=False):
        y = x @ P[name + ".weight"].t()
        if with_bias:
            y = y + P[name + ".bias"]
        return y

    h = P["model.embed_tokens.weight"][ids]
    for l in range(c["L"]):
        p = "model.layers.%d." % l
        a = rmsnorm(h, P[p + "input_layernorm.weight"], c["eps"])
        q = lin(a, p + "self_attn.q_proj", c["bias"]).view(B, T, nh, hd).transpose(1, 2)
        k = lin(a, p + "self_attn.k_proj", c["bias"]).view(B, T, nkv, hd).transpose(1, 2)
        v = lin(a, p + "self_attn.v_proj", c["bias"]).view(B, T, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # HF repeat_kv: kv head j serves query heads j*rep .. j*rep+rep-1
        k = k[:, :, None].expand(B, nkv, rep, T, hd).reshape(B, nh, T, hd)
        v = v[:, :, None].expand(B, nkv, rep, T, hd).reshape(B, nh, T, hd)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~allowed, float("-inf"))
        att = torch.softmax(s, dim=-1) @ v
        att = att.transpose(1, 2).reshape(B, T, nh * hd)
        h = h + lin(att, p + "self_attn.o_proj")
        m = rmsnorm(h, P[p + "post_attention_layernorm.weight"], c["eps"])
        g = lin(m, p + "mlp.gate_proj")
        u = lin(m, p + "mlp.up_proj")
        h = h + lin(torch.nn.functional.silu(g) * u, p + "mlp.down_proj")
    h = rmsnorm(h, P["model.norm.weight"], c["eps"])
    head = P["model.embed_tokens.weight"] if c["tied"] else P["lm_head.weight"]
    logits = h @ head.t()
    sel = mask[:, 1:] != 0
    loss = torch.nn.functional.cross_entropy(logits[:, :-1][sel], ids[:, 1:][sel])
    return logits, loss


def make_optimizer(c, P):
    kinds = {n: k for n, _, k in param_specs(c)}
    decay = [P[n] for n in P if kinds[n] in ("embed", "matrix")]
    nodecay = [P[n] for n in P if kinds[n] in ("norm", "bias")]
    return torch.optim.AdamW(
        [dict(params=decay, weight_decay=HP["weight_decay"]), dict(params=nodecay, weight_decay=0.0)],
        lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]), eps=HP["eps"])


def run(c, P, ids, mask):
    """Logits, loss, grads, then HP['steps'] AdamW steps. Returns a dict of
    float tensors keyed by fixture name (in the dtype of P)."""
    out = {}
    logits, loss = forward(P, c, ids, mask)
    grads = torch.autograd.grad(loss, list(P.values()))
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for n, g in zip(P, grads):
        out["grad." + n] = g.detach()
    opt = make_optimizer(c, P)
    params = list(P.values())
    for k in range(1, HP["steps"] + 1):
        opt.zero_grad()
        _, loss = forward(P, c, ids, mask)
        out["loss_step%d" % k] = loss.detach().reshape(1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, HP["clip_grad_norm"])
        opt.step()
        for n in P:
            out["step%d.%s" % (k, n)] = P[n].detach().clone()
    return out


# ----------------------------------------------------------------------------- checks

def check_finite_differences(c, P, ids, mask):
    _, loss = forward(P, c, ids, mask)
    grads = dict(zip(P, torch.autograd.grad(loss, list(P.values()))))
    gen = torch.Generator().manual_seed(c["seed"] + 7)
    names = ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
             "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
             "model.layers.1.self_attn.v_proj.weight", "model.layers.1.mlp.down_proj.weight",
             "model.layers.1.post_attention_layernorm.weight", "model.norm.weight"]
    names += [n for n in P if n.endswith(".bias") or n == "lm_head.weight"]
    eps, worst = 1e-6, 0.0
    with torch.no_grad():
        for n in names:
            w = P[n]
            flat = w.view(-1)
            picks = torch.randint(0, flat.numel(), (3,), generator=gen).tolist()
            if n == "model.embed_tokens.weight":  # an element of a row that is used
                picks[0] = int(ids[0, 0]) * w.shape[1]
            for i in picks:
                old = flat[i].item()
                flat[i] = old + eps
                lp = forward(P, c, ids, mask)[1].item()
                flat[i] = old - eps
                lm = forward(P, c, ids, mask)[1].item()
                flat[i] = old
                fd = (lp - lm) / (2 * eps)
                ag = grads[n].view(-1)[i].item()
                err = abs(fd - ag)
                assert err <= 1e-8 + 1e-6 * abs(ag), "%s[%d]: fd %.12g autograd %.12g" % (n, i, fd, ag)
                worst = max(worst, err)
    return worst


def check_padding_invariance(c, P, ids, mask):
    with torch.no_grad():
        full, _ = forward(P, c, ids, mask)
        for b in range(ids.shape[0]):
            n = int(mask[b].sum())
            alone, _ = forward(P, c, ids[b:b + 1, :n], mask[b:b + 1, :n])
            d = (full[b, :n] - alone[0]).abs().max().item()
            assert d < 1e-12, "padding changed row %d logits by %g" % (b, d)


def check_float32_conditioning(c, P, ids, mask, ref):
    P32 = {n: p.detach().float().requires_grad_(True) for n, p in P.items()}
    got = run(c, P32, ids, mask)
    worst_name, worst = None, 0.0
    for name, r in ref.items():
        g = got[name].double()
        ratio = ((g - r).abs() / (ATOL + RTOL * r.abs())).max().item()
        if ratio > worst:
            worst_name, worst = name, ratio
    assert worst < TOL_MARGIN, ("float32 emulation uses %.3f of the tolerance on %s: fixture is ill-conditioned"
                                % (worst, worst_name))
    return worst_name, worst


# ----------------------------------------------------------------------------- output

def hf_config(c):
    archs = {"qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM", "llama": "LlamaForCausalLM"}
    j = {
        "architectures": [archs[c["arch"]]],
        "model_type": c["arch"],
        "hidden_size": c["H"],
        "intermediate_size": c["F"],
        "num_hidden_layers": c["L"],
        "num_attention_heads": c["nh"],
        "num_key_value_heads": c["nkv"],
        "vocab_size": c["V"],
        "max_position_embeddings": 64,
        "rope_theta": c["theta"],
        "rms_norm_eps": c["eps"],
        "tie_word_embeddings": c["tied"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    }
    if c["arch"] == "qwen2":
        j["use_sliding_window"] = False
    else:
        j["attention_bias"] = False
    if c["arch"] == "mistral":
        j["sliding_window"] = c.get("window")
    if c.get("rope"):
        j["rope_scaling"] = c["rope"]
    return j


def make_batch(c, gen):
    B, T = c["B"], c["T"]
    ids = torch.randint(0, c["V"], (B, T), generator=gen)
    lengths = c["lengths"] or [T] * B
    mask = torch.zeros(B, T, dtype=torch.int64)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1  # right padding; padded ids stay random: they must be ignored
    return ids, mask


def f32(t):
    return t.detach().to(torch.float32).numpy()


def build(c, root):
    gen = torch.Generator().manual_seed(c["seed"])
    P = init_params(c, gen)
    ids, mask = make_batch(c, gen)

    fd_err = check_finite_differences(c, P, ids, mask)
    check_padding_invariance(c, P, ids, mask)
    init = {n: p.detach().clone() for n, p in P.items()}
    ref = run(c, P, ids, mask)
    P0 = {n: t.clone().requires_grad_(True) for n, t in init.items()}
    worst_name, worst = check_float32_conditioning(c, P0, ids, mask, ref)

    d = os.path.join(root, c["name"])
    os.makedirs(os.path.join(d, "model"), exist_ok=True)
    with open(os.path.join(d, "model", "config.json"), "w") as f:
        json.dump(hf_config(c), f, indent=2)
        f.write("\n")
    stio.save(os.path.join(d, "model", "model.safetensors"), {n: f32(t) for n, t in init.items()},
              metadata={"format": "pt"})
    stio.save(os.path.join(d, "batch.safetensors"),
              {"input_ids": ids.to(torch.int32).numpy(), "attention_mask": mask.to(torch.int32).numpy()})
    stio.save(os.path.join(d, "expected.safetensors"), {n: f32(t) for n, t in ref.items()})
    with open(os.path.join(d, "hparams.txt"), "w") as f:
        f.write("# written by tests/reference/llama_ref.py: torch.optim.AdamW settings for step<k>.*\n")
        f.write("# (no weight decay on norm weights and biases; clip_grad_norm_ before each step;\n")
        f.write("#  the same batch every step; loss_step<k> is the loss before step k)\n")
        for k in ("lr", "beta1", "beta2", "eps", "weight_decay", "clip_grad_norm", "steps"):
            f.write("%s %r\n" % (k, HP[k]))
    size = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(d) for fn in fns)
    print("%-16s loss %.6f -> %.6f (after %d steps)  fd max err %.1e  float32 uses %.3f of tol (%s)  %d bytes"
          % (c["name"], ref["loss"].item(), ref["loss_step%d" % HP["steps"]].item(), HP["steps"], fd_err,
             worst, worst_name, size))


def main():
    torch.set_num_threads(1)
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "fixtures", "llama")
    only = os.environ.get("LLAMA_REF_ONLY")  # comma-separated fixture names (default: all)
    for c in CONFIGS:
        if only and c["name"] not in only.split(","):
            continue
        assert c["H"] % c["nh"] == 0 and c["nh"] % c["nkv"] == 0 and (c["H"] // c["nh"]) % 2 == 0
        build(c, os.path.normpath(root))


if __name__ == "__main__":
    main()
