#!/usr/bin/python3
"""Compare two safetensors files tensor by tensor.

    compare_st.py REF.safetensors GOT.safetensors [--atol 1e-5] [--rtol 1e-3] [-v]

Passes when, for every tensor of REF, GOT has it with the same shape and
max|GOT-REF| <= atol + rtol * max|REF| (rtol scaled by the tensor's largest entry).
Exit status 1 on any failure.  Prints the worst tensor (diff / tolerance).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("got")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("-v", action="store_true", help="one line per tensor")
    a = ap.parse_args()
    ref, got = st.load(a.ref), st.load(a.got)
    bad, worst = 0, (0.0, None, 0.0, 0.0)
    for name, r in ref.items():
        if name not in got:
            print(f"FAIL {name}: missing"); bad += 1; continue
        g = got[name]
        if g.shape != r.shape:
            print(f"FAIL {name}: shape {g.shape} != {r.shape}"); bad += 1; continue
        r64, g64 = r.astype(np.float64), g.astype(np.float64)
        scale = float(np.abs(r64).max()) if r64.size else 0.0
        diff = float(np.abs(g64 - r64).max()) if r64.size else 0.0
        if not np.all(np.isfinite(g64)):
            diff = float("inf")
        tol = a.atol + a.rtol * scale
        ratio = diff / tol
        if ratio > worst[0] or worst[1] is None:
            worst = (ratio, name, diff, scale)
        if a.v or ratio > 1:
            print(f"{'FAIL' if ratio > 1 else 'ok  '} {name:48s} max|ref| {scale:.3e}  "
                  f"max|diff| {diff:.3e}  diff/tol {ratio:.2e}")
        if ratio > 1:
            bad += 1
    extra = sorted(set(got) - set(ref))
    if extra:
        print("note: extra tensors in", a.got, ":", ", ".join(extra))
    print(f"{len(ref) - bad}/{len(ref)} tensors agree; worst {worst[1]}: "
          f"max|diff| {worst[2]:.3e} (max|ref| {worst[3]:.3e}, diff/tol {worst[0]:.2e})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
