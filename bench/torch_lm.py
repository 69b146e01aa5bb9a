#!/usr/bin/python3
"""torch_lm.py: the PyTorch side of benchmark 1 (scripts/bench.sh).

Language-model forward + backward (autograd) of a Llama-family model in
float32, using the model of tests/reference/llama_ref.py (plain PyTorch: RMSNorm,
rotate-half RoPE, grouped-query attention as matmul + masked softmax, SwiGLU,
tied or untied head, mean next-token cross-entropy).  Parameters are random,
N(0, 0.02) matrices and unit norms, as qs_model_init_random.

Prints ONE line of JSON on stdout (same keys as `bench_qstar lm`); progress on
stderr.  Threads: torch.set_num_threads(--threads); the caller also sets
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS.

Usage: torch_lm.py --shape 135m|260k --B 4 --T 256 [--warmup 1 --iters 3 --threads 2]
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import llama_ref  # noqa: E402

SHAPES = {
    "135m": dict(name="135m", arch="llama", H=576, F=1536, L=30, nh=9, nkv=3, V=49152, tied=True,
                 bias=False, theta=10000.0, eps=1e-5),
    "260k": dict(name="260k", arch="llama", H=64, F=172, L=5, nh=8, nkv=4, V=512, tied=True,
                 bias=False, theta=10000.0, eps=1e-5),
}


def cur_rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="135m", choices=sorted(SHAPES))
    p.add_argument("--B", type=int, default=4)
    p.add_argument("--T", type=int, default=256)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    c = SHAPES[a.shape]
    gen = torch.Generator().manual_seed(a.seed)
    P = {}
    for name, shape, kind in llama_ref.param_specs(c):
        if kind == "norm":
            w = torch.ones(shape)
        elif kind == "bias":
            w = torch.zeros(shape)
        else:
            w = torch.randn(shape, generator=gen) * 0.02
        P[name] = w.requires_grad_(True)
    params = list(P.values())
    nparams = sum(t.numel() for t in params)
    ids = torch.randint(0, c["V"], (a.B, a.T), generator=gen)
    mask = torch.ones(a.B, a.T, dtype=torch.int64)
    rss_load = cur_rss_kb()
    times, cpu = [], []
    loss = None
    for it in range(a.warmup + a.iters):
        for t in params:
            t.grad = None
        t0, c0 = time.perf_counter(), time.process_time()
        _, loss = llama_ref.forward(P, c, ids, mask)
        loss.backward()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        tag = "warmup" if it < a.warmup else "iter"
        print("  torch lm %s %d: %.3f s  loss %.4f" % (tag, it if it < a.warmup else it - a.warmup, dt,
                                                       loss.item()), file=sys.stderr, flush=True)
        if it >= a.warmup:
            times.append(dt)
            cpu.append(dc)
    med = sorted(times)[len(times) // 2] if len(times) % 2 else \
        0.5 * (sorted(times)[len(times) // 2 - 1] + sorted(times)[len(times) // 2])
    out = dict(mode="lm", impl="torch", B=a.B, T=a.T, params=nparams, times=times, cpu_times=cpu, median_s=med,
               tokens_per_s=a.B * a.T / med, loss=loss.item(), threads=torch.get_num_threads(),
               torch=torch.__version__, rss_after_load_kb=rss_load,
               peak_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
