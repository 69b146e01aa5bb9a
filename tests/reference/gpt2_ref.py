#!/usr/bin/python3
"""gpt2_ref.py: plain language-model reference fixtures for qstar's GPT-2.

Builds small random GPT2LMHeadModel checkpoints in pure PyTorch (no
`transformers`), computing exactly what Hugging Face's GPT2LMHeadModel
computes (eval mode, no dropout):

  h = wte[x] + wpe[0..T-1]
  per block:  a = LayerNorm(h; ln_1.weight, ln_1.bias, eps=layer_norm_epsilon)
              [q|k|v] = a @ c_attn.weight + c_attn.bias   (Conv1D: weight [in, out])
              multi-head attention, causal mask + key padding mask (right
              padding), scale 1/sqrt(hd)
              h = h + att @ attn.c_proj.weight + attn.c_proj.bias
              m = LayerNorm(h; ln_2)
              h = h + gelu_new(m @ c_fc.weight + c_fc.bias) @ mlp.c_proj.weight + mlp.c_proj.bias
  logits = LayerNorm(h; ln_f) @ head^T   (head = wte when tied, else lm_head.weight)
  gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  loss = mean over (b,i), i < T-1, mask[b,i+1] == 1 of CE(logits[b,i], x[b,i+1])

then 3 AdamW steps exactly as tests/reference/llama_ref.py (decay on wte,
wpe and the Conv1D/lm_head matrices; none on LayerNorm weights and biases).
Same precision scheme and self-checks as llama_ref.py (float64 with float32
parameters; finite differences; padding invariance; float32 conditioning).

The fixtures go next to the Llama ones (tests/fixtures/llama/gpt2_*), so
tests/test_reference.c checks them the same way. One fixture stores its
checkpoint as old GPT-2 files do: names without "transformer.", plus the
attn.bias / attn.masked_bias buffers (the loader must skip them).

Usage: /usr/bin/python3 tests/reference/gpt2_ref.py [OUT_DIR]
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402
from llama_ref import ATOL, HP as LLAMA_HP, RTOL, TOL_MARGIN, f32, make_batch  # noqa: E402

# AdamW eps 1e-3 instead of 1e-8: the key part of c_attn.bias has an exactly zero
# gradient (it adds q.b_k to every score of a query: softmax is shift invariant),
# so with eps 1e-8 Adam would turn float32 rounding noise (~1e-9) into full-size
# steps of that bias and no float32 implementation could match. With 1e-3 the
# other parameters (gradients 1e-3..1e-1) still take genuine Adam steps.
HP = dict(LLAMA_HP, eps=1e-3)

CONFIGS = [
    dict(name="gpt2_tied", B=2, T=7, H=16, F=None, L=2, nh=4, V=67, P=16, tied=True, eps=1e-5,
         lengths=None, id_max=None, legacy=False, act="gelu_new", seed=4004),
    dict(name="gpt2_untied_pad", B=3, T=9, H=24, F=40, L=2, nh=3, V=53, P=12, tied=False, eps=1e-5,
         lengths=[9, 6, 4], id_max=None, legacy=False, act="gelu_pytorch_tanh", seed=5005),
    # odd head size (5), padded vocabulary (ids < 40 of 72), old names + mask buffers
    dict(name="gpt2_legacy_padvocab", B=2, T=8, H=15, F=None, L=2, nh=3, V=72, P=10, tied=True, eps=1e-6,
         lengths=[8, 5], id_max=40, legacy=True, act="gelu_new", seed=6006),
]


def ffn(c):
    return c["F"] if c["F"] else 4 * c["H"]


def param_specs(c):
    """(name, shape, kind) in HF order; kind in {embed, matrix, norm, bias}."""
    H, F = c["H"], ffn(c)
    s = [("transformer.wte.weight", (c["V"], H), "embed"), ("transformer.wpe.weight", (c["P"], H), "embed")]
    for l in range(c["L"]):
        p = "transformer.h.%d." % l
        s += [(p + "ln_1.weight", (H,), "norm"), (p + "ln_1.bias", (H,), "bias"),
              (p + "attn.c_attn.weight", (H, 3 * H), "matrix"), (p + "attn.c_attn.bias", (3 * H,), "bias"),
              (p + "attn.c_proj.weight", (H, H), "matrix"), (p + "attn.c_proj.bias", (H,), "bias"),
              (p + "ln_2.weight", (H,), "norm"), (p + "ln_2.bias", (H,), "bias"),
              (p + "mlp.c_fc.weight", (H, F), "matrix"), (p + "mlp.c_fc.bias", (F,), "bias"),
              (p + "mlp.c_proj.weight", (F, H), "matrix"), (p + "mlp.c_proj.bias", (H,), "bias")]
    s += [("transformer.ln_f.weight", (H,), "norm"), ("transformer.ln_f.bias", (H,), "bias")]
    if not c["tied"]:
        s.append(("lm_head.weight", (c["V"], H), "matrix"))
    return s


def init_params(c, gen):
    out = {}
    for name, shape, kind in param_specs(c):
        r = torch.randn(shape, generator=gen, dtype=torch.float64)
        if kind == "embed":
            w = r * 0.5
        elif kind == "matrix":  # Conv1D [in, out]; lm_head [V, H]
            w = r / math.sqrt(shape[0] if name != "lm_head.weight" else shape[1])
        elif kind == "norm":
            w = 1.0 + 0.2 * r
        else:
            w = 0.2 * r
        out[name] = w.float().double().requires_grad_(True)
    return out


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def block(P, c, l, h, allowed):
    """One GPT-2 block on h [B,T,H] with attention visibility allowed [B,1,Tq,Tk]."""
    B, T, H = h.shape
    nh = c["nh"]
    hd = H // nh
    p = "transformer.h.%d." % l
    a = layer_norm(h, P[p + "ln_1.weight"], P[p + "ln_1.bias"], c["eps"])
    qkv = a @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]
    q, k, v = (t.view(B, T, nh, hd).transpose(1, 2) for t in qkv.split(H, dim=-1))
    s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    s = s.masked_fill(~allowed, float("-inf"))
    att = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H)
    h = h + att @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
    m = layer_norm(h, P[p + "ln_2.weight"], P[p + "ln_2.bias"], c["eps"])
    f = gelu_new(m @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"])
    return h + f @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]


def forward(P, c, ids, mask):
    B, T = ids.shape
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    allowed = causal[None, None] & (mask[:, None, None, :] != 0)
    h = P["transformer.wte.weight"][ids] + P["transformer.wpe.weight"][torch.arange(T)][None]
    for l in range(c["L"]):
        h = block(P, c, l, h, allowed)
    h = layer_norm(h, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], c["eps"])
    head = P["transformer.wte.weight"] if c["tied"] else P["lm_head.weight"]
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


def check_finite_differences(c, P, ids, mask):
    _, loss = forward(P, c, ids, mask)
    grads = dict(zip(P, torch.autograd.grad(loss, list(P.values()))))
    gen = torch.Generator().manual_seed(c["seed"] + 7)
    eps, worst = 1e-6, 0.0
    with torch.no_grad():
        for n in P:  # every tensor, 2 elements each
            flat = P[n].view(-1)
            picks = torch.randint(0, flat.numel(), (2,), generator=gen).tolist()
            if n == "transformer.wte.weight":
                picks[0] = int(ids[0, 0]) * P[n].shape[1]
            if n == "transformer.wpe.weight":
                picks[0] = 1 * P[n].shape[1]
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
        ratio = ((got[name].double() - r).abs() / (ATOL + RTOL * r.abs())).max().item()
        if ratio > worst:
            worst_name, worst = name, ratio
    assert worst < TOL_MARGIN, "float32 emulation uses %.3f of the tolerance on %s" % (worst, worst_name)
    return worst_name, worst


def hf_config(c):
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": c["act"],
        "n_embd": c["H"],
        "n_layer": c["L"],
        "n_head": c["nh"],
        "n_inner": c["F"],
        "n_positions": c["P"],
        "n_ctx": c["P"],
        "vocab_size": c["V"],
        "layer_norm_epsilon": c["eps"],
        "tie_word_embeddings": c["tied"],
        "bos_token_id": c["V"] - 1,
        "eos_token_id": c["V"] - 1,
        "attn_pdrop": 0.1, "embd_pdrop": 0.1, "resid_pdrop": 0.1,
        "scale_attn_weights": True,
        "summary_type": "cls_index", "summary_use_proj": True, "summary_activation": None,
        "summary_proj_to_labels": True, "summary_first_dropout": 0.1,
        "initializer_range": 0.02, "use_cache": True, "torch_dtype": "float32",
    }


def checkpoint_tensors(c, init):
    """The file's tensors: HF names, or (legacy) old names + causal-mask buffers."""
    if not c["legacy"]:
        return {n: f32(t) for n, t in init.items()}
    out = {}
    P = c["P"]
    for n, t in init.items():
        out[n[len("transformer."):] if n.startswith("transformer.") else n] = f32(t)
    for l in range(c["L"]):
        out["h.%d.attn.bias" % l] = f32(torch.tril(torch.ones(P, P)).view(1, 1, P, P))
        out["h.%d.attn.masked_bias" % l] = f32(torch.tensor(-1e4))
    return out


def build(c, root):
    gen = torch.Generator().manual_seed(c["seed"])
    P = init_params(c, gen)
    ids, mask = make_batch(c, gen)
    if c["id_max"]:
        ids = ids % c["id_max"]
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
    stio.save(os.path.join(d, "model", "model.safetensors"), checkpoint_tensors(c, init), metadata={"format": "pt"})
    stio.save(os.path.join(d, "batch.safetensors"),
              {"input_ids": ids.to(torch.int32).numpy(), "attention_mask": mask.to(torch.int32).numpy()})
    stio.save(os.path.join(d, "expected.safetensors"), {n: f32(t) for n, t in ref.items()})
    with open(os.path.join(d, "hparams.txt"), "w") as f:
        f.write("# written by tests/reference/gpt2_ref.py: torch.optim.AdamW settings for step<k>.*\n")
        f.write("# (no weight decay on LayerNorm weights and biases; clip_grad_norm_ before each step;\n")
        f.write("#  the same batch every step; loss_step<k> is the loss before step k)\n")
        for k in ("lr", "beta1", "beta2", "eps", "weight_decay", "clip_grad_norm", "steps"):
            f.write("%s %r\n" % (k, HP[k]))
    size = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(d) for fn in fns)
    print("%-22s loss %.6f -> %.6f (after %d steps)  fd max err %.1e  float32 uses %.3f of tol (%s)  %d bytes"
          % (c["name"], ref["loss"].item(), ref["loss_step%d" % HP["steps"]].item(), HP["steps"], fd_err,
             worst, worst_name, size))


def main():
    torch.set_num_threads(1)
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "fixtures", "llama")
    for c in CONFIGS:
        assert c["H"] % c["nh"] == 0 and c["T"] <= c["P"]
        build(c, os.path.normpath(root))


if __name__ == "__main__":
    main()
