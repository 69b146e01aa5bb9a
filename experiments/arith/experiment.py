#!/usr/bin/env python3
"""The qstar thinking experiment, end to end with qstar's own commands.

For each seed: generate the testbed (gen.py), pretrain a small Llama from
scratch (`qstar finetune --config`), measure the precondition (does the
pretrained model's own scratch-pad beat its direct answer?), train
Quiet-STaR on answer-only text (the main run, in chunks with --stop-after /
--resume so that answer-token NLL can be measured over training), the
learned-pause baseline (--n-ahead 3) at equal steps, a thought-length sweep,
the EMA reward baseline and a curriculum variant; then evaluate every
checkpoint on held-out answer-only problems. analyze.py turns the
measurements into results.json, plots and report.md.

    python3 experiments/arith/experiment.py --qstar build/qstar --out runs/experiment [--quick] [--seeds 1,2,3]

Every command run is appended to OUT/commands.sh (the exact reproduction).
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from analyze import precondition_holds, precondition_summary  # noqa: E402  (one rule, shared with the report)

FULL = dict(op="mul", qstar_pool=1200, digits="3", fixed_width=True, reverse_answer=True, scratch_frac=0.7, n_pretrain=60000, n_qstar=20000, n_test=1000, per_doc=4,
            dim=128, layers=4, heads=4, max_len=128,
            pre_steps=2000, pre_batch=16, pre_seq=128, pre_lr=3e-3,
            qs_steps=160, qs_chunks=4, qs_batch=4, qs_seq=64, qs_lr=3e-4, n_ahead=11, n_talk=4, beta=1.0,
            sweep=[3, 7, 11], n_em=100, n_pre=100, n_nll_docs=200,
            curriculum="7:4:3e-4:80,11:4:3e-4:80", ema_decay=0.99, thought_init="(", thought_init_end=")",
            think_when=[0.2, 0.5, 1.0], n_tw=40)
QUICK = dict(op="mul", qstar_pool=100, digits="2", fixed_width=True, reverse_answer=True, scratch_frac=0.7, n_pretrain=600, n_qstar=200, n_test=40, per_doc=4,
             dim=32, layers=2, heads=2, max_len=64,
             pre_steps=30, pre_batch=8, pre_seq=64, pre_lr=3e-3,
             qs_steps=4, qs_chunks=2, qs_batch=2, qs_seq=32, qs_lr=1e-4, n_ahead=8, n_talk=2, beta=1.0,
             sweep=[3, 8], n_em=6, n_pre=6, n_nll_docs=10,
             curriculum="5:2:1e-4:2,8:2:1e-4:2", ema_decay=0.9, thought_init="(", thought_init_end=")",
             think_when=[0.1, 1.0], n_tw=4)


ANCHOR = "A: "  # where an answer starts: --think-at thinks there once


class Runner:
    def __init__(self, qstar, out, threads):
        self.qstar, self.out, self.threads = qstar, out, threads
        self.log = open(os.path.join(out, "commands.sh"), "a")

    def run(self, args, stdout=None, check=True, quiet=False):
        cmd = [self.qstar] + [str(a) for a in args]
        self.log.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
        self.log.flush()
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if check and p.returncode != 0:
            sys.stderr.write(p.stderr)
            raise SystemExit("command failed (%d): %s" % (p.returncode, " ".join(cmd)))
        if stdout:
            with open(stdout, "w") as f:
                f.write(p.stdout)
        return p


def gen_data(cfg, seed, d):
    if os.path.exists(os.path.join(d, "meta.json")):
        return
    args = [sys.executable, os.path.join(HERE, "gen.py"), "--out", d, "--seed", str(seed), "--digits", cfg["digits"],
            "--scratch-frac", str(cfg["scratch_frac"]), "--n-pretrain", str(cfg["n_pretrain"]),
            "--n-qstar", str(cfg["n_qstar"]), "--n-test", str(cfg["n_test"]), "--per-doc", str(cfg["per_doc"]),
            "--dim", str(cfg["dim"]), "--layers", str(cfg["layers"]), "--heads", str(cfg["heads"]),
            "--max-len", str(cfg["max_len"]), "--op", cfg.get("op", "add"), "--qstar-pool", str(cfg.get("qstar_pool", 0))]
    args += (["--fixed-width"] if cfg.get("fixed_width") else []) + (["--reverse-answer"] if cfg.get("reverse_answer") else [])
    subprocess.run(args, check=True)


def problems(d, n):
    out = []
    with open(os.path.join(d, "test_qa.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            out.append((e["question"], e["answer"].split("#### ")[1], e["scratch"]))
            if len(out) == n:
                break
    return out


def greedy(R, model, prompt, extra, max_new=24):
    p = R.run(["generate", "--model", model, "--prompt", prompt, "--temperature", 0, "--seed", 1,
               "--max-tokens", len(prompt) + 2 + max_new] + extra)
    text = p.stdout
    m = re.search(r"tok/s: ([0-9.]+)", p.stderr)
    return text[len(prompt):] if text.startswith(prompt) else text, float(m.group(1)) if m else 0.0, p.stderr


def parse_answer(cont):
    """The answer in a continuation of '...A:' or '...A: (': digits after an optional scratch-pad."""
    line = cont.split("\n")[0].strip()
    scratch = None
    if ")" in line:
        scratch, line = line.split(")", 1)
        scratch = scratch.lstrip("(").strip()
        line = line.strip()
    m = re.match(r"\d+", line)
    return (m.group(0) if m else None), scratch


def precondition(R, model, probs, out):
    """The pretrained model's own scratch-pad (prompt forced to open it) vs its direct answer."""
    rows = []
    for q, ans, scr in probs:
        direct, _, _ = greedy(R, model, "Q: %s\nA:" % q, [])
        sp, _, _ = greedy(R, model, "Q: %s\nA: (" % q, [], max_new=24)
        d_ans, d_scr = parse_answer(direct)
        s_ans, s_scr = parse_answer("(" + sp)
        # direct: the answer given without opening a scratch-pad
        rows.append(dict(q=q, answer=ans, direct=direct.split("\n")[0], direct_ok=d_ans == ans and d_scr is None,
                         direct_opened_scratch=d_scr is not None, scratch=sp.split("\n")[0],
                         scratch_ok=s_scr == scr.strip("()"), scratch_answer_ok=s_ans == ans))
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)
    return rows


def exact_match(R, model, probs, extra):
    ok, speeds, thoughts = 0, [], []
    rows = []
    for q, ans, _ in probs:
        cont, tps, err = greedy(R, model, "Q: %s\nA:" % q, extra, max_new=8)
        a, _ = parse_answer(cont)
        ok += a == ans
        speeds.append(tps)
        m = re.search(r"thoughts: (\d+) of (\d+)", err)
        if m and int(m.group(2)) > 0:
            thoughts.append(int(m.group(1)) / int(m.group(2)))
        rows.append(dict(q=q, answer=ans, out=cont.split("\n")[0], ok=a == ans))
    return dict(acc=ok / max(1, len(probs)), n=len(probs), tok_per_s=sum(speeds) / max(1, len(speeds)),
                think_frac=(sum(thoughts) / len(thoughts)) if thoughts else None, rows=rows)


def nll_eval(R, model, data, out_prefix, extra, seq):
    R.run(["eval", "--task", "nll", "--model", model, "--data", data, "--seq-len", seq, "--seed", 7,
           "--out", out_prefix + ".json", "--tokens-out", out_prefix + ".tokens.jsonl"] + extra,
          stdout=out_prefix + ".txt")


def evaluate(R, cfg, d, model, edir, probs, full):
    """Every held-out measurement of one checkpoint into edir."""
    os.makedirs(edir, exist_ok=True)
    res = {}
    heldout = os.path.join(os.path.dirname(d), "heldout_small.jsonl")
    # two ways to think: before every token (each token from the thought just before it, the paper's
    # evaluation), and once at the answer's start (--think-at "A: "), whose thought then also gives the
    # next n_talk answer tokens through its talk passes, as training scores a thought
    at = ["--think-at", ANCHOR]
    nll_eval(R, model, heldout, os.path.join(edir, "think"), [], cfg["qs_seq"])
    nll_eval(R, model, heldout, os.path.join(edir, "think_at"), at, cfg["qs_seq"])
    if not full:
        return
    for name, extra in (("pause", ["--n-ahead", 3]), ("random", ["--random-thoughts"])):
        nll_eval(R, model, heldout, os.path.join(edir, name), extra, cfg["qs_seq"])
        nll_eval(R, model, heldout, os.path.join(edir, name + "_at"), extra + at, cfg["qs_seq"])
    res["em_think"] = exact_match(R, model, probs, ["--think"])
    res["em_nothink"] = exact_match(R, model, probs, ["--no-think"])
    res["em_pause_tokens"] = exact_match(R, model, probs, ["--think", "--n-ahead", 3])
    res["em_random"] = exact_match(R, model, probs, ["--think", "--random-thoughts"])
    res["em_think_at"] = exact_match(R, model, probs, ["--think"] + at)
    res["em_pause_tokens_at"] = exact_match(R, model, probs, ["--think", "--n-ahead", 3] + at)
    res["em_random_at"] = exact_match(R, model, probs, ["--think", "--random-thoughts"] + at)
    tw = []
    for x in cfg["think_when"]:
        r = exact_match(R, model, probs[:cfg["n_tw"]], ["--think", "--think-when", "entropy>%g" % x])
        tw.append(dict(threshold=x, acc=r["acc"], tok_per_s=r["tok_per_s"], think_frac=r["think_frac"]))
    sub = probs[:cfg["n_tw"]]
    tw.append(dict(threshold="always", **{k: v for k, v in exact_match(R, model, sub, ["--think"]).items() if k in ("acc", "tok_per_s", "think_frac")}))
    tw.append(dict(threshold="never", **{k: v for k, v in exact_match(R, model, sub, ["--no-think"]).items() if k in ("acc", "tok_per_s", "think_frac")}))
    res["think_when"] = tw
    gs = {}
    for name, extra in (("think", ["--think"]), ("nothink", ["--no-think"])):
        R.run(["eval", "--task", "gsm8k", "--model", model, "--data", os.path.join(d, "test_qa.jsonl"),
                   "--limit", cfg["n_em"], "--seed", 7, "--out", os.path.join(edir, "gsm8k_%s.json" % name)] + extra)
        with open(os.path.join(edir, "gsm8k_%s.json" % name)) as f:
            j = json.load(f)
        gs[name] = dict(accuracy=j["accuracy"], exact_match=j["exact_match"])
    res["gsm8k_protocol"] = gs
    with open(os.path.join(edir, "gen.json"), "w") as f:
        json.dump(res, f, indent=1)


def qs_train(R, cfg, pre, d, out, n_ahead, extra=(), steps=None, chunks=1, on_chunk=None):
    steps = steps or cfg["qs_steps"]
    base = ["train", "--data", os.path.join(d, "qstar.jsonl"), "--out", out, "--steps", steps,
            "--batch", cfg["qs_batch"], "--seq-len", cfg["qs_seq"], "--lr", cfg["qs_lr"], "--warmup", max(1, steps // 10),
            "--n-talk", cfg["n_talk"], "--policy-beta", cfg["beta"], "--eval-every", max(1, steps // 4),
            "--eval-batches", 4, "--save-every", 0, "--print-every", 10, "--seed", R.seed, "--threads", R.threads,
            "--thought-init", cfg["thought_init"]] + (["--thought-init-end", cfg["thought_init_end"]] if cfg["thought_init_end"] else [])
    if n_ahead is not None:
        base += ["--n-ahead", n_ahead]
    base += list(extra)
    if os.path.exists(os.path.join(out, "done")):
        return
    shutil.rmtree(out, ignore_errors=True)  # an unfinished run starts again
    for c in range(1, chunks + 1):
        stop = steps * c // chunks
        if c == 1:
            args = base[:1] + ["--model", pre] + base[1:]
        else:
            args = ["train", "--resume", out]
        if c < chunks:
            args += ["--stop-after", stop]
        R.run(args)
        if on_chunk:
            on_chunk(stop)
    open(os.path.join(out, "done"), "w").close()


def seed_mismatch(root, seed, cfg):
    """Why ROOT/seedN cannot be resumed with cfg (None if it can: absent, empty, or made with cfg)."""
    sd = os.path.join(root, "seed%d" % seed)
    if not os.path.isdir(sd) or not os.listdir(sd):
        return None
    path = os.path.join(sd, "settings.json")
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return "%s holds a run without a readable settings.json (an older version's, or not this experiment's)" % sd
    diff = ["%s %s there, %s now" % (k, json.dumps(old.get(k)), json.dumps(cfg.get(k)))
            for k in sorted(set(old) | set(cfg)) if old.get(k) != cfg.get(k)]
    return "%s was made with other settings: %s" % (sd, "; ".join(diff)) if diff else None


def one_seed(R, cfg, seed, root, quick, until=None):
    sd = os.path.join(root, "seed%d" % seed)
    d = os.path.join(sd, "data")
    os.makedirs(sd, exist_ok=True)
    with open(os.path.join(sd, "settings.json"), "w") as f:  # what seed_mismatch checks on a rerun
        json.dump(cfg, f, indent=1)
    R.seed = seed
    gen_data(cfg, seed, d)
    # a smaller held-out NLL set (the first n_nll_docs documents)
    with open(os.path.join(d, "heldout.jsonl")) as f, open(os.path.join(sd, "heldout_small.jsonl"), "w") as g:
        for k, line in enumerate(f):
            if k < cfg["n_nll_docs"]:
                g.write(line)
    pre = os.path.join(sd, "pretrain")
    if not os.path.exists(os.path.join(pre, "ckpt", "config.json")):
        R.run(["finetune", "--config", os.path.join(d, "config.json"), "--tokenizer", os.path.join(d, "tokenizer.bin"),
               "--data", os.path.join(d, "pretrain.jsonl"), "--out", pre, "--steps", cfg["pre_steps"],
               "--batch", cfg["pre_batch"], "--seq-len", cfg["pre_seq"], "--lr", cfg["pre_lr"], "--warmup", max(1, cfg["pre_steps"] // 25),
               "--eval-every", max(1, cfg["pre_steps"] // 4), "--save-every", 0, "--seed", seed, "--threads", R.threads])
    pre_ck = os.path.join(pre, "ckpt")
    probs = problems(d, cfg["n_em"])
    t0 = time.time()
    precondition(R, pre_ck, probs[:cfg["n_pre"]], os.path.join(sd, "precondition.json"))
    # the direct answer by the digit-restricted protocol (a scratch-pad cannot be opened)
    R.run(["eval", "--task", "gsm8k", "--model", pre_ck, "--data", os.path.join(d, "test_qa.jsonl"),
           "--limit", cfg["n_em"], "--out", os.path.join(sd, "precondition_protocol.json")])
    print("seed %d: precondition measured (%.0f s)" % (seed, time.time() - t0), file=sys.stderr)
    p = precondition_summary(sd)
    print("seed %d: direct answer %.0f%% (protocol %.0f%%), after its own scratch-pad %.0f%%: precondition %s"
          % (seed, 100 * p["direct"], 100 * p["direct_protocol"], 100 * p["scratch_answer"],
             "holds" if precondition_holds(p) else "FAILS"), file=sys.stderr)
    if until == "precondition":
        return
    runs = os.path.join(sd, "runs")
    os.makedirs(runs, exist_ok=True)
    # the main run, evaluated after every chunk (answer-token NLL over training)
    main = os.path.join(runs, "main")
    def at(step):
        evaluate(R, cfg, d, os.path.join(main, "ckpt"), os.path.join(sd, "eval", "main_step%d" % step), probs, False)
    if not os.path.exists(os.path.join(main, "done")):
        qs_train(R, cfg, pre_ck, d, main, cfg["n_ahead"], chunks=cfg["qs_chunks"], on_chunk=at)
    variants = {"main": (main, None)}
    for na in cfg["sweep"]:
        if na == cfg["n_ahead"]:
            continue
        name = "pause" if na == 3 else "n_ahead%d" % na
        variants[name] = (os.path.join(runs, name), na)
        qs_train(R, cfg, pre_ck, d, os.path.join(runs, name), na)
    variants["ema"] = (os.path.join(runs, "ema"), cfg["n_ahead"])
    qs_train(R, cfg, pre_ck, d, os.path.join(runs, "ema"), cfg["n_ahead"],
             extra=["--reward-baseline", "ema", "--ema-decay", cfg["ema_decay"], "--n-passes", 1])
    cur = os.path.join(runs, "curriculum")
    if not os.path.exists(os.path.join(cur, "done")):
        shutil.rmtree(cur, ignore_errors=True)
        R.run(["train", "--model", pre_ck, "--data", os.path.join(d, "qstar.jsonl"), "--out", cur,
               "--curriculum", cfg["curriculum"], "--batch", cfg["qs_batch"], "--seq-len", cfg["qs_seq"],
               "--policy-beta", cfg["beta"], "--eval-every", 0, "--eval-batches", 4, "--save-every", 0,
               "--thought-init", cfg["thought_init"]] + (["--thought-init-end", cfg["thought_init_end"]] if cfg["thought_init_end"] else []) + [
               "--seed", seed, "--threads", R.threads])
        open(os.path.join(cur, "done"), "w").close()
    # the result of a curriculum is its last stage
    variants["curriculum"] = (os.path.join(cur, "stage%d" % len(cfg["curriculum"].split(","))), None)
    for name, (rd, _) in variants.items():
        evaluate(R, cfg, d, os.path.join(rd, "ckpt"), os.path.join(sd, "eval", name), probs, True)
    # thoughts of the main run at answer positions are in eval/main/think.tokens.jsonl
    with open(os.path.join(sd, "variants.json"), "w") as f:
        json.dump({k: dict(dir=v[0], n_ahead=v[1]) for k, v in variants.items()}, f, indent=1)


def main():
    p = argparse.ArgumentParser(description="qstar thinking experiment (see experiments/arith/README.md)")
    p.add_argument("--qstar", default="build/qstar")
    p.add_argument("--out", default="runs/experiment")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--quick", action="store_true", help="tiny sizes: exercises every step in about a minute")
    p.add_argument("--threads", type=int, default=2, help="threads per qstar command")
    p.add_argument("--jobs", type=int, default=1, help="seeds run in parallel (each a process; use --threads 1)")
    p.add_argument("--set", action="append", default=[], help="override a setting: key=value (JSON value)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one seed of a parallel run
    p.add_argument("--until", choices=["precondition"],
                   help="stop each seed after pretraining and the precondition (check a testbed before Quiet-STaR)")
    a = p.parse_args()
    cfg = dict(QUICK if a.quick else FULL)
    for kv in a.set:
        k, v = kv.split("=", 1)
        if k not in cfg:
            raise SystemExit("unknown setting %s" % k)
        if isinstance(cfg[k], str):  # a text setting stays text (digits=4 is "4", not 4)
            cfg[k] = v
            continue
        try:
            cfg[k] = json.loads(v)
        except json.JSONDecodeError:
            raise SystemExit("--set %s: %r is not a JSON value (the setting is %s)" % (k, v, type(cfg[k]).__name__))
    os.makedirs(a.out, exist_ok=True)
    seeds = [int(x) for x in a.seeds.split(",")]
    if not a.child:
        stale = [m for m in (seed_mismatch(a.out, s, cfg) for s in seeds) if m]
        if stale:  # finished parts are reused, so they must come from these settings
            raise SystemExit("experiment.py: %s\n(its finished parts would be reused; remove it or choose another --out)"
                             % "\n".join(stale))
        # the whole run's settings (a seed's own process leaves them alone)
        with open(os.path.join(a.out, "settings.json"), "w") as f:
            json.dump(dict(cfg, quick=a.quick, seeds=a.seeds), f, indent=1)
    t0 = time.time()
    load0 = os.getloadavg()[0]

    def timing():  # the wall time of the whole run, with the machine's load, for the report
        if a.child:
            return
        with open(os.path.join(a.out, "timing.json"), "w") as f:
            json.dump(dict(seconds=round(time.time() - t0, 1), jobs=a.jobs, threads=a.threads, cpus=os.cpu_count(),
                           load_start=round(load0, 2), load_end=round(os.getloadavg()[0], 2)), f, indent=1)
    if a.jobs > 1 and len(seeds) > 1:  # one process per seed, at most a.jobs at a time
        base = [sys.executable, os.path.abspath(__file__), "--qstar", a.qstar, "--out", a.out, "--threads", str(a.threads),
                "--child"]
        base += (["--quick"] if a.quick else []) + sum((["--set", kv] for kv in a.set), [])
        base += ["--until", a.until] if a.until else []
        running, rc = [], 0
        for s in seeds:
            while len(running) >= a.jobs:
                rc |= running.pop(0).wait()
            running.append(subprocess.Popen(base + ["--seeds", str(s)]))
        for p_ in running:
            rc |= p_.wait()
        if rc:
            raise SystemExit("a seed failed")
        print("all seeds done (%.0f s)" % (time.time() - t0), file=sys.stderr)
        timing()
        return
    R = Runner(os.path.abspath(a.qstar), a.out, a.threads)
    for s in seeds:
        one_seed(R, cfg, s, a.out, a.quick, a.until)
        print("seed %d done (%.0f s)" % (s, time.time() - t0), file=sys.stderr)
    timing()


if __name__ == "__main__":
    main()
