#!/usr/bin/python3
"""Independent, direct implementation of SPEC.md sections 1-3 (one Quiet-STaR step).

A self-check for quietstar_ref.py (the port of the released code): no dense masks, no
KV-cache concatenation, no rolling; every attention is a loop over query positions
that gathers exactly the keys SPEC lists, and every loss is the SPEC formula.  Clarity
over speed.  Same command line and output as quietstar_ref.py / `qstar dump-step`.
float64 inside, F32 out.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qs_common as qc  # noqa: E402
from llama_ref import scaled_inv_freq  # noqa: E402  (HF rope_scaling: linear, llama3)

DT = qc.DT


def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta, scaling=None):
    """HF rotate-half RoPE: dims j and j+hd/2 form a pair rotated by pos*theta^(-2j/hd)
    (inverse frequencies rescaled as HF's rope_scaling says).
    x [..., n_heads, hd]; pos: integer tensor broadcastable to x[..., 0, 0]."""
    hd = x.shape[-1]
    half = hd // 2
    j = torch.arange(half, dtype=DT)
    ang = pos.to(DT)[..., None, None] * scaled_inv_freq(theta ** (-2.0 * j / hd), scaling)  # [..., 1, half]
    c, s = torch.cos(ang), torch.sin(ang)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


class Model:
    def __init__(self, cfg, p, tied):
        self.p = p
        self.H = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg["num_key_value_heads"]
        self.hd = self.H // self.nh
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg["rms_norm_eps"]
        self.theta = float(cfg["rope_theta"])
        self.window = cfg.get("sliding_window") if cfg.get("model_type") == "mistral" else None
        self.scaling = cfg.get("rope_scaling")
        self.E = p["model.embed_tokens.weight"]
        self.W_out = self.E if tied else p["lm_head.weight"]

    def logits(self, h):
        return h @ self.W_out.t()

    def run_pass(self, d, X, m, cache):
        """Pass d over all (r,i) at once. X [R,T,H] inputs, positions i+d.
        cache[l][d'] = (K, V) [R,T,nkv,hd] of earlier passes, filled in here for pass d.
        Query (d,r,i) attends to: pass-0 keys at j <= i with m[r,j] = 1, and for d >= 1
        the keys of passes 1..d at the same (r,i)."""
        p = self.p
        R, T, H = X.shape
        pos = torch.arange(T) + d
        h = X
        grp = self.nh // self.nkv
        W = self.window
        for l in range(self.L):
            pre = f"model.layers.{l}."
            x = rmsnorm(h, p[pre + "input_layernorm.weight"], self.eps)
            def lin(name):  # q/k/v biases: Qwen2
                y = x @ p[pre + name + ".weight"].t()
                return y + p[pre + name + ".bias"] if pre + name + ".bias" in p else y
            Q = lin("self_attn.q_proj").view(R, T, self.nh, self.hd)
            K = lin("self_attn.k_proj").view(R, T, self.nkv, self.hd)
            Vv = lin("self_attn.v_proj").view(R, T, self.nkv, self.hd)
            Q = rope(Q, pos[None, :], self.theta, self.scaling)
            K = rope(K, pos[None, :], self.theta, self.scaling)
            cache[l].append((K, Vv))
            rows = []
            for r in range(R):
                outs = []
                for i in range(T):
                    # Mistral sliding window: key at position id q is visible from
                    # position id i+d only if i+d-q < W (prefix key j: id j; pass e: i+e)
                    js = [j for j in range(i + 1) if m[r, j] and (not W or i + d - j < W)]
                    es = [e for e in range(1, d + 1) if not W or d - e < W]
                    if not js and not es:  # no visible key: zero output
                        outs.append(torch.zeros(self.nh * self.hd, dtype=X.dtype))
                        continue
                    ks = [cache[l][0][0][r, j] for j in js] + [cache[l][e][0][r, i] for e in es]
                    vs = [cache[l][0][1][r, j] for j in js] + [cache[l][e][1][r, i] for e in es]
                    ks = torch.stack(ks)  # [n, nkv, hd]
                    vs = torch.stack(vs)
                    head_out = []
                    for hh in range(self.nh):
                        g = hh // grp  # GQA: query head hh uses kv head hh // (nh/nkv)
                        sc = (ks[:, g, :] @ Q[r, i, hh]) / math.sqrt(self.hd)
                        pr = torch.softmax(sc, dim=0)
                        head_out.append(pr @ vs[:, g, :])
                    outs.append(torch.cat(head_out))
                rows.append(torch.stack(outs))
            att = torch.stack(rows)  # [R,T,H]
            h = h + att @ p[pre + "self_attn.o_proj.weight"].t()
            x = rmsnorm(h, p[pre + "post_attention_layernorm.weight"], self.eps)
            gate = x @ p[pre + "mlp.gate_proj.weight"].t()
            up = x @ p[pre + "mlp.up_proj.weight"].t()
            h = h + (gate * torch.sigmoid(gate) * up) @ p[pre + "mlp.down_proj.weight"].t()
        return rmsnorm(h, p["model.norm.weight"], self.eps)


class GPT2Model:
    """GPT2LMHeadModel (HF, eval mode) with the same interface as Model: the input of
    (d, r, i) is X + wpe[i + d] (the position ids continue through the thought as for
    RoPE models), LayerNorm, fused Conv1D c_attn [H, 3H] (q | k | v), gelu_new MLP,
    biases everywhere, final ln_f; the same visible keys as Model (no window)."""

    def __init__(self, cfg, p, tied):
        self.p = p
        self.H = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.hd = self.H // self.nh
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg["layer_norm_epsilon"]
        self.E = p["transformer.wte.weight"]
        self.W_out = self.E if tied else p["lm_head.weight"]

    def logits(self, h):
        return h @ self.W_out.t()

    def ln(self, x, name):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.p[name + ".weight"] + self.p[name + ".bias"]

    def conv1d(self, x, name):  # Conv1D: weight stored [in, out]
        return x @ self.p[name + ".weight"] + self.p[name + ".bias"]

    def run_pass(self, d, X, m, cache):
        p, H, nh, hd = self.p, self.H, self.nh, self.hd
        R, T, _ = X.shape
        h = X + p["transformer.wpe.weight"][torch.arange(T) + d][None]
        for l in range(self.L):
            pre = f"transformer.h.{l}."
            qkv = self.conv1d(self.ln(h, pre + "ln_1"), pre + "attn.c_attn")
            Q, K, Vv = (qkv[..., k * H:(k + 1) * H].reshape(R, T, nh, hd) for k in range(3))
            cache[l].append((K, Vv))
            att = torch.zeros(R, T, H, dtype=X.dtype)
            for r in range(R):
                for i in range(T):
                    js = [j for j in range(i + 1) if m[r, j]]
                    ks = torch.stack([cache[l][0][0][r, j] for j in js] + [cache[l][e][0][r, i] for e in range(1, d + 1)])
                    vs = torch.stack([cache[l][0][1][r, j] for j in js] + [cache[l][e][1][r, i] for e in range(1, d + 1)])
                    outs = [torch.softmax(ks[:, hh] @ Q[r, i, hh] / math.sqrt(hd), dim=0) @ vs[:, hh] for hh in range(nh)]
                    att[r, i] = torch.cat(outs)
            h = h + self.conv1d(att, pre + "attn.c_proj")
            a = self.conv1d(self.ln(h, pre + "ln_2"), pre + "mlp.c_fc")
            a = 0.5 * a * (1 + torch.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))
            h = h + self.conv1d(a, pre + "mlp.c_proj")
        return self.ln(h, "transformer.ln_f")


def mix_head(p, hb, hd_, sigmoid):
    z = torch.cat([hb, hd_], dim=-1)
    # nn.ReLU (torch.relu: gradient 0 at exactly 0; clamp(min=0) would pass it there)
    z = torch.relu(z @ p["talk_head.0.0.weight"].t() + p["talk_head.0.0.bias"])
    z = torch.relu(z @ p["talk_head.0.2.weight"].t() + p["talk_head.0.2.bias"])
    w = (z @ p["talk_head.0.4.weight"].t())[..., 0]
    return torch.sigmoid(w) if sigmoid else w


def nll(logits, target):
    return -(torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1))[..., 0])


def step(cfg, p, tied, ids_b, m_b, t, a):
    M = GPT2Model(cfg, p, tied) if qc.is_gpt2(cfg) else Model(cfg, p, tied)
    P, n_ahead, n_talk = a.n_passes, a.n_ahead, a.n_talk
    n_thought = n_ahead - 3
    D = n_ahead + n_talk - 1
    x = ids_b.repeat_interleave(P, dim=0)   # row r = b*P + p holds row b
    m = m_b.repeat_interleave(P, dim=0)
    R, T = x.shape
    H = M.H
    s = a.embedding_scale * p["start_embedding"][0]
    e = a.embedding_scale * p["end_embedding"][0]

    cache = [[] for _ in range(M.L)]
    h = []   # h[d] [R,T,H]
    z = {}   # z[d] = lm_head(h_d) for the sampling passes d = 1..n_thought
    for d in range(D):
        if d == 0:
            X = M.E[x]
        elif d == 1:
            X = s.expand(R, T, H)
        elif d <= n_ahead - 2:
            X = M.E[t[:, d - 2, :]]           # thought token sampled at pass d-1 (forced)
        elif d == n_ahead - 1:
            X = e.expand(R, T, H)
        else:
            k = d - (n_ahead - 1)             # true token x[r,i+k]; pad where i+k >= T
            X = torch.zeros(R, T, H, dtype=DT)  # pad: a zero vector (reaches no loss)
            X = torch.cat([M.E[x[:, k:]], X[:, :k]], dim=1)
        h.append(M.run_pass(d, X, m, cache))
        if 1 <= d <= n_thought:
            z[d] = M.logits(h[d])

    # ---- base and talk NLLs (section 3) -----------------------------------------------
    # An NLL whose target is padding is 0 (it enters no mean, and counts 0 in the reward;
    # SPEC does not say what a padded term of R is, the release's ignore_index gives 0).
    valid0 = m[:, 1:].to(DT)                                     # target x[i+1] real
    nll0 = nll(M.logits(h[0][:, :T - 1]), x[:, 1:]) * valid0     # [R, T-1]
    nllk, validk, wk = [], [], []
    mix_w = torch.zeros(n_talk, R, T, dtype=DT)
    for k in range(n_talk):
        d = n_ahead - 1 + k
        n = T - 1 - k                                            # i = 0..T-2-k
        hb = h[0][:, k:k + n]                                    # h_0[r, i+k]
        ht = h[d][:, :n]
        w = mix_head(p, hb, ht, a.mixing == "sigmoid")
        y = M.logits((1 - w)[..., None] * hb + w[..., None] * ht)
        vk = m[:, k + 1:].to(DT)                                 # target x[i+k+1] real
        nllk.append(nll(y, x[:, k + 1:]) * vk)
        validk.append(vk)
        mix_w[k, :, :n] = torch.where(vk > 0, w.detach(), torch.zeros_like(vk))
    mean0 = nll0.sum() / valid0.sum()
    meank = [nllk[k].sum() / validk[k].sum() for k in range(n_talk)]
    bw = a.base_loss_weight
    L_lm = bw * mean0 + (1 - bw) * sum(meank) / n_talk

    # ---- reward, baseline, clamp --------------------------------------------------------
    nr = T - 1 - n_talk                                          # i = 0..T-2-n_talk
    Rw = torch.zeros(R, nr, dtype=DT)
    for k in range(n_talk):
        Rw = Rw + (nll0[:, k:k + nr] - nllk[k][:, :nr]).detach()
    A = Rw.clone()
    if P > 1:
        for b in range(R // P):
            A[b * P:(b + 1) * P] = Rw[b * P:(b + 1) * P] - Rw[b * P:(b + 1) * P].mean(0)
    if not a.no_clamp:
        A = torch.clamp(A, min=0)

    # ---- policy loss ----------------------------------------------------------------------
    if n_thought > 0:
        terms = []
        for u in range(n_thought):
            lp = torch.log_softmax(z[u + 1][:, :nr] / a.tau_rl, dim=-1)
            logp = lp.gather(-1, t[:, u, :nr].unsqueeze(-1))[..., 0]
            terms.append((-A * logp).mean())
        L_pol = sum(terms) / n_thought
    else:
        L_pol = torch.zeros((), dtype=DT)
    L = L_lm + a.policy_beta * L_pol
    L.backward()
    return {
        "loss": L.detach(), "loss_lm": L_lm.detach(), "loss_base": mean0.detach(),
        "policy_loss": L_pol.detach(), "loss_talk": torch.stack(meank).detach(),
        "reward": Rw, "advantage": A, "mix_weight": mix_w,
        "mix_weight_valid": qc.mix_valid_mask(m, n_talk),
    }


def main(argv=None):
    a = qc.parse_args(argv, prog="quietstar_spec.py")
    cfg, params, tied = qc.load_model(a.model, a)
    V = params[qc.embed_name(cfg)].shape[0]
    ids, m, th = qc.load_batch(a.batch, a, V)
    res = step(cfg, params, tied, ids, m, th, a)
    qc.write_out(a.out, res, params)


if __name__ == "__main__":
    main()
