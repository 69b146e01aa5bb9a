#!/usr/bin/env python3
"""Testbed generator for the qstar thinking experiment (no downloads).

Multi-digit addition (--op add) or multiplication by one digit (--op mul).
Pretraining documents hold several problems each; a fraction of the problems
shows a compact worked scratch-pad of column results, least significant first,
each including the carry, before the answer:

    Q: 347+285
    A: (12,13,6)632

(7+5=12, 4+8+1=13, 3+2+1=6 -> 632), the others only the answer:

    Q: 347+285
    A: 632

With --op mul the columns are a_k*b + carry: "Q: 347*8" has the scratch-pad
(56,37,27) (7*8=56, 4*8+5=37, 3*8+3=27 -> 2776).

The Quiet-STaR training set and every held-out set are answer-only. The
scratch-pad of a d-digit problem is 2d+1..3d+1 tokens, so a thought of
n_ahead-3 >= 3d+1 tokens can carry it. The format is the GSM8K prompt of
`qstar eval --task gsm8k` ("Q: question\\nA: number\\n"), so that protocol
scores the held-out problems too.

Writes into OUT:
  tokenizer.bin      llama2.c tokenizer: <unk>, <s>, </s>, then one token per character
  config.json        Llama config for `qstar finetune --config` (sizes from the flags)
  pretrain.jsonl     pretraining docs ({"text": ...}), scratch-pads in a fraction
  qstar.jsonl        answer-only docs for Quiet-STaR training (other problems)
  heldout.jsonl      answer-only docs of held-out problems (NLL evaluation)
  test_qa.jsonl      the held-out problems one per line, GSM8K-style
                     {"question": "347+285", "answer": "#### 632"}
  meta.json          the settings
Problems are split by value: no held-out problem occurs in any training file.
"""
import argparse
import json
import os
import random
import struct

CHARS = " \n0123456789QA:+(),"  # "*" appended for --op mul


FIXED = False  # --fixed-width: every column sum written with two digits
REVERSE = False  # --reverse-answer: answers written least significant digit first
OP = "add"  # --op: "add" (a+b, both d digits) or "mul" (a*b, a with d digits, b in 2..9)


def scratch(a, b):
    """Column results least significant first, carry included: a_k+b_k+c (add) or a_k*b+c (mul)."""
    sa, sb = str(a)[::-1], str(b)[::-1]
    out, carry = [], 0
    for k in range(len(sa) if OP == "mul" else max(len(sa), len(sb))):
        if OP == "mul":
            s = int(sa[k]) * b + carry
        else:
            s = (int(sa[k]) if k < len(sa) else 0) + (int(sb[k]) if k < len(sb) else 0) + carry
        out.append("%02d" % s if FIXED else str(s))
        carry = s // 10
    return "(" + ",".join(out) + ")"


def result(a, b):
    return a * b if OP == "mul" else a + b


def question(a, b):
    return "%d%s%d" % (a, "*" if OP == "mul" else "+", b)


def answer(a, b):
    return str(result(a, b))[::-1] if REVERSE else str(result(a, b))


def problem(a, b, with_scratch):
    return "Q: %s\nA: %s%s\n" % (question(a, b), scratch(a, b) if with_scratch else "", answer(a, b))


def draw(rng, digits):
    d = rng.choice(digits)
    lo = 10 ** (d - 1) if d > 1 else 0
    if OP == "mul":
        return rng.randint(lo, 10 ** d - 1), rng.randint(2, 9)
    return rng.randint(lo, 10 ** d - 1), rng.randint(lo, 10 ** d - 1)


def write_tokenizer(path):
    vocab = ["<unk>", "\n<s>\n", "\n</s>\n"] + list(CHARS)
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max(len(v.encode()) for v in vocab)))
        for v in vocab:
            b = v.encode()
            f.write(struct.pack("<fi", 0.0, len(b)))
            f.write(b)
    return len(vocab)


def write_config(path, vocab, a):
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": a.dim, "intermediate_size": a.ffn or (8 * a.dim // 3 + 7) // 8 * 8,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "num_key_value_heads": a.heads,
        "vocab_size": vocab, "max_position_embeddings": a.max_len, "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "torch_dtype": "float32",
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def docs(rng, probs, per_doc, frac):
    out = []
    for k in range(0, len(probs), per_doc):
        out.append("".join(problem(a, b, rng.random() < frac) for a, b in probs[k:k + per_doc]))
    return out


def write_jsonl(path, texts):
    with open(path, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--digits", default="2,3", help="operand digit counts, drawn uniformly (2,3)")
    p.add_argument("--scratch-frac", type=float, default=0.4, help="pretraining problems with a scratch-pad")
    p.add_argument("--n-pretrain", type=int, default=60000, help="pretraining problems")
    p.add_argument("--n-qstar", type=int, default=20000, help="Quiet-STaR training problems")
    p.add_argument("--n-test", type=int, default=1000, help="held-out problems")
    p.add_argument("--per-doc", type=int, default=4, help="problems per document")
    p.add_argument("--op", choices=["add", "mul"], default="add",
                   help="add: a+b, both operands with --digits digits; mul: a*b, a with --digits digits, b in 2..9")
    p.add_argument("--qstar-pool", type=int, default=0,
                   help="if > 0: Quiet-STaR problems come from a pool of this many distinct problems that "
                        "pretraining never shows (for small problem spaces, where pretraining repeats problems)")
    p.add_argument("--reverse-answer", action="store_true",
                   help="answers least significant digit first (the digit the scratch-pad's first column gives)")
    p.add_argument("--fixed-width", action="store_true",
                   help="column sums with two digits ((12,13,06)): a d-digit scratch-pad is always 3d-1 tokens between the parentheses")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=0)
    p.add_argument("--max-len", type=int, default=128)
    a = p.parse_args()
    global FIXED, REVERSE, OP
    FIXED, REVERSE, OP = a.fixed_width, a.reverse_answer, a.op
    digits = [int(x) for x in a.digits.split(",")]
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    global CHARS
    if a.op == "mul":
        CHARS += "*"
    sizes = [9 * 10 ** (d - 1) if d > 1 else 10 for d in set(digits)]
    space = sum(sizes) * 8 if a.op == "mul" else sum(n * n for n in sizes)
    if a.n_test + a.qstar_pool >= space:
        p.error("--n-test %d plus --qstar-pool %d leave no pretraining problems (only %d distinct problems)"
                % (a.n_test, a.qstar_pool, space))
    seen = set()
    def draw_unseen(n, distinct):  # n problems outside `seen`; distinct: each new one joins `seen`
        out = []
        while len(out) < n:
            ab = draw(rng, digits)
            if ab not in seen:
                if distinct:
                    seen.add(ab)
                out.append(ab)
        return out
    # held-out problems first, then the Quiet-STaR pool; training problems never repeat them
    test = draw_unseen(a.n_test, True)
    pool = draw_unseen(a.qstar_pool, True)
    pre = draw_unseen(a.n_pretrain, False)
    qs = [rng.choice(pool) for _ in range(a.n_qstar)] if pool else draw_unseen(a.n_qstar, False)
    vocab = write_tokenizer(os.path.join(a.out, "tokenizer.bin"))
    write_config(os.path.join(a.out, "config.json"), vocab, a)
    write_jsonl(os.path.join(a.out, "pretrain.jsonl"), docs(rng, pre, a.per_doc, a.scratch_frac))
    write_jsonl(os.path.join(a.out, "qstar.jsonl"), docs(rng, qs, a.per_doc, 0.0))
    write_jsonl(os.path.join(a.out, "heldout.jsonl"), docs(rng, test, a.per_doc, 0.0))
    with open(os.path.join(a.out, "test_qa.jsonl"), "w") as f:
        for x, y in test:
            f.write(json.dumps({"question": question(x, y), "answer": "#### %s" % answer(x, y),
                                "scratch": scratch(x, y)}) + "\n")
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(vars(a) | {"vocab_size": vocab, "chars": CHARS}, f, indent=2)


if __name__ == "__main__":
    main()
