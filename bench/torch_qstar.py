#!/usr/bin/python3
"""torch_qstar.py: the PyTorch side of benchmark 2 (scripts/bench.sh).

One full Quiet-STaR training step with the reference port of the released code,
tests/reference/quietstar_ref.py (dense growing attention masks, one full
forward per pass, lm_head at every pass, autograd backward), switched from its
float64 to float32, followed by global grad-norm clipping (1.0) and a
torch.optim.AdamW update with the released run's hyper-parameters (lr 1e-6,
betas 0.9/0.999, eps 1e-8, weight decay 0.001 except norms, biases and the
meta embeddings).  The model is read from a model directory written by
`bench_qstar save`, so both sides use identical weights.  Thought tokens are
drawn uniformly at random and forced (the reference takes them from the batch;
its lm_head logits at every thinking pass are computed all the same).

Prints ONE line of JSON on stdout (same keys as `bench_qstar step`).

Usage:
  torch_qstar.py --model DIR --B 1 --T 64 [--n-ahead 12 --n-talk 4 --n-passes 2
                 --warmup 1 --iters 3 --threads 2]
  torch_qstar.py --estimate --model DIR|--shape 135m|260k --B .. --T .. [...]
      prints the estimated peak memory of a step (no run), see estimate_bytes().
"""
import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "tests", "reference")

SHAPES = {  # hidden, mlp, layers, heads, kv heads, vocab
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, vocab_size=49152),
    "260k": dict(hidden_size=64, intermediate_size=172, num_hidden_layers=5, num_attention_heads=8,
                 num_key_value_heads=4, vocab_size=512),
}


def estimate_bytes(cfg, B, T, n_ahead, n_talk, n_passes):
    """Rough peak memory (bytes, float32) of one reference step: what autograd keeps
    alive until the backward, summed over the D = n_ahead + n_talk - 1 passes.
    Pass d (keys: T*(d+1)) keeps per layer the attention probabilities
    [R,nh,T,T(d+1)], the repeated keys/values [R,nh,T(d+1),hd] x2, the query and
    ~14 token-wise activations of width H or F; per pass ~4 logits-sized tensors
    [R,T,V] (log-softmax of the CE, the head logits, the mixed logits, the
    policy log-softmax); plus the additive mask [R,1,T,T(d+1)], the model,
    gradients and AdamW moments (4x params), and ~0.3 GB of interpreter/torch."""
    H, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    nh, V = cfg["num_attention_heads"], cfg["vocab_size"]
    hd = H // nh
    R = B * n_passes
    D = n_ahead + n_talk - 1
    params = V * H + L * (2 * H * H + 2 * H * (H // nh) * cfg["num_key_value_heads"] + 3 * H * F + 2 * H) + H
    total = 0
    for d in range(D):
        keys = T * (d + 1)
        per_layer = R * nh * T * keys + 2 * R * nh * keys * hd + R * T * (10 * H + 4 * F)
        total += L * per_layer + 4 * R * T * V + R * T * keys
    return 4 * (total + 4 * params) + 300 * 2 ** 20


def cur_rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model")
    p.add_argument("--shape", choices=sorted(SHAPES))
    p.add_argument("--B", type=int, default=1)
    p.add_argument("--T", type=int, default=64)
    p.add_argument("--n-ahead", type=int, default=12)
    p.add_argument("--n-talk", type=int, default=4)
    p.add_argument("--n-passes", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--estimate", action="store_true")
    a = p.parse_args()

    if a.estimate:
        if a.model:
            with open(os.path.join(a.model, "config.json")) as f:
                cfg = json.load(f)
        else:
            cfg = SHAPES[a.shape]
        est = estimate_bytes(cfg, a.B, a.T, a.n_ahead, a.n_talk, a.n_passes)
        print(json.dumps(dict(mode="estimate", B=a.B, T=a.T, n_ahead=a.n_ahead, n_talk=a.n_talk,
                              n_passes=a.n_passes, est_bytes=est)))
        return

    import torch
    sys.path.insert(0, REF)
    import qs_common as qc
    import quietstar_ref as qr

    # The reference computes in float64 for exactness; the benchmark runs it in
    # float32 like qstar (module-level dtype switches, nothing else changes).
    qc.DT = torch.float32
    qr.DT = torch.float32
    qr.NEG = torch.finfo(torch.float32).min
    torch.set_num_threads(a.threads)

    args = qc.parse_args(["--model", a.model, "--batch", "-", "--out", "-", "--n-ahead", str(a.n_ahead),
                          "--n-talk", str(a.n_talk), "--n-passes", str(a.n_passes)])
    cfg, params, tied = qc.load_model(a.model, args)
    V = params["model.embed_tokens.weight"].shape[0]
    gen = torch.Generator().manual_seed(a.seed)
    R, nth = a.B * a.n_passes, a.n_ahead - 3
    ids = torch.randint(0, V, (a.B, a.T), generator=gen)
    m = torch.ones(a.B, a.T, dtype=torch.int64)
    th = torch.randint(0, V, (R, nth, a.T), generator=gen)

    def no_decay(n):
        return "norm" in n or n.endswith(".bias") or n in ("start_embedding", "end_embedding")

    plist = list(params.values())
    opt = torch.optim.AdamW(
        [dict(params=[t for n, t in params.items() if not no_decay(n)], weight_decay=1e-3),
         dict(params=[t for n, t in params.items() if no_decay(n)], weight_decay=0.0)],
        lr=1e-6, betas=(0.9, 0.999), eps=1e-8)
    nparams = sum(t.numel() for t in plist)
    rss_load = cur_rss_kb()
    tt, ts, to, cpu = [], [], [], []
    res = None
    for it in range(a.warmup + a.iters):
        t0, c0 = time.perf_counter(), time.process_time()
        for t in plist:
            t.grad = None
        res = qr.quietstar_step(cfg, params, tied, ids, m, th, args)  # forward + loss.backward()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(plist, 1.0)
        opt.step()
        t2 = time.perf_counter()
        tag = "warmup" if it < a.warmup else "iter"
        print("  torch step %s %d: %.3f s (fwd+bwd %.3f, clip+adamw %.3f)  loss %.4f"
              % (tag, it if it < a.warmup else it - a.warmup, t2 - t0, t1 - t0, t2 - t1,
                 res["loss_lm"].item()), file=sys.stderr, flush=True)
        if it >= a.warmup:
            tt.append(t2 - t0), ts.append(t1 - t0), to.append(t2 - t1)
            cpu.append(time.process_time() - c0)
    out = dict(mode="step", impl="torch", B=a.B, T=a.T, n_ahead=a.n_ahead, n_talk=a.n_talk,
               n_passes=a.n_passes, params=nparams, times=tt, cpu_times=cpu, median_s=median(tt),
               fwd_bwd_median_s=median(ts), adamw_median_s=median(to), loss_lm=res["loss_lm"].item(),
               threads=torch.get_num_threads(), rss_after_load_kb=rss_load,
               peak_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               est_bytes=estimate_bytes(cfg, a.B, a.T, a.n_ahead, a.n_talk, a.n_passes))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
