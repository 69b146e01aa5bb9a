#!/usr/bin/env python3
"""Notebook-style tour of qstar from Python: load a Quiet-STaR checkpoint,
generate with its thoughts, and plot how much each token's thought helped.

    PYTHONPATH=python python3 examples/thoughts.py CKPT [--text FILE] [--out gain.png]

CKPT is a `qstar train` checkpoint (runs/demo/ckpt after `make demo`) or any
model with Quiet-STaR tensors (`qstar convert --add-quietstar`). Needs NumPy
and matplotlib (Debian: python3-numpy python3-matplotlib).
"""
import argparse
import sys

import numpy as np

import qstar

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("model")
ap.add_argument("--tokenizer", default=None)
ap.add_argument("--prompt", default="Once upon a time")
ap.add_argument("--text", default=None, help="text file to score (default: the generated story)")
ap.add_argument("--out", default="thought_gain.png")
ap.add_argument("--seed", type=int, default=42)
args = ap.parse_args()

# %% load: any format the CLI takes; errors are qstar.Error with the library's message
try:
    m = qstar.Model(args.model, tokenizer=args.tokenizer)
except qstar.Error as e:
    sys.exit(f"thoughts.py: {e}")
print(f"model: {m.config['arch']}, {m.config['n_params']} parameters, can think: {m.can_think}")
if not m.can_think:
    sys.exit("thoughts.py: this model has no Quiet-STaR tensors (train one with qstar train)")

# %% generate, one token at a time, each with the thought that produced it
story = []
for tok in m.generate_iter(args.prompt, max_tokens=64, temperature=0.8, seed=args.seed):
    story.append(tok.text)
    if tok.generated:
        print(f"{tok.text!r:>12}  <- thought {tok.thought_text!r:<28} mixing weight {tok.mix_weight:+.3f}")
text = "".join(story)
print("\n" + text + "\n")

# %% score: per-token NLL without and with thoughts (as qstar viz / eval --task nll)
if args.text:
    with open(args.text) as f:
        text = f.read()
s = m.score(text, seed=args.seed)
ok = ~np.isnan(s.nll_think)
print(f"{ok.sum()} tokens: NLL base {np.nanmean(s.nll_base):.4f}, with thoughts {np.nanmean(s.nll_think):.4f}")
order = np.argsort(-np.where(ok, s.gain, -np.inf))[:5]
for i in order:
    print(f"  thought helped {s.texts[i]!r} most: gain {s.gain[i]:+.4f} nats, thought "
          f"{m.detokenize(s.thoughts[i])!r}")

# %% plot the gain per token
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

idx = np.flatnonzero(ok)
fig, ax = plt.subplots(figsize=(max(8, len(idx) * 0.18), 4))
gain = s.gain[idx]
ax.bar(np.arange(len(idx)), gain, color=np.where(gain >= 0, "tab:green", "tab:red"))
ax.set_xticks(np.arange(len(idx)))
ax.set_xticklabels([s.texts[i].replace("\n", "\\n") for i in idx], rotation=90, fontsize=7)
ax.axhline(0, color="black", lw=0.5)
ax.set_ylabel("NLL base - NLL with thought (nats)")
ax.set_title("How much each token's thought helped")
fig.tight_layout()
fig.savefig(args.out, dpi=120)
print(f"wrote {args.out}")
