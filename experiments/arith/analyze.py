#!/usr/bin/env python3
"""Measurements of experiment.py -> OUT/results.json, OUT/plots/*.png, OUT/report.md.

Every number is a mean over the seeds with a 95% t-interval (half-width),
except where a single seed is all there is (then the interval is n/a).
Answer tokens are the digits after "A: " in the held-out answer-only text.
"""
import argparse
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # gen.py is imported: no __pycache__ in the source tree

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def ci(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return dict(mean=None, ci95=None, n=0, values=[])
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return dict(mean=m, ci95=None, n=1, values=xs)
    v = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    t = T95.get(len(xs) - 1, 1.96)
    return dict(mean=m, ci95=t * math.sqrt(v / len(xs)), n=len(xs), values=xs)


def fmt(c, digits=4, pct=False):
    if c["mean"] is None:
        return "n/a"
    k = 100.0 if pct else 1.0
    s = ("%." + str(digits) + "f") % (c["mean"] * k)
    return s + (" ± " + ("%." + str(digits) + "f") % (c["ci95"] * k) if c["ci95"] is not None else " (1 seed)")


def tokens(path):
    """Per-token records with a type: 'answer' (digits after 'A: ') or 'rest'."""
    out, buf, in_ans, last_w = [], "", False, None
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            if t["window"] != last_w:
                last_w = t["window"]
            txt = t["text"]
            if in_ans and not txt.isdigit():
                in_ans = False
            if not in_ans and buf.endswith("A: ") and txt.isdigit():
                in_ans = True
            t["type"] = "answer" if in_ans else "rest"
            out.append(t)
            buf = (buf + txt)[-8:]
    return out


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def nll_stats(path):
    toks = tokens(path)
    ans = [t for t in toks if t["type"] == "answer"]
    rest = [t for t in toks if t["type"] == "rest"]
    r = dict(n_answer=len(ans), ans_base=mean(t["nll_base"] for t in ans))
    if ans and ans[0].get("nll_think") is not None:
        r["ans_think"] = mean(t["nll_think"] for t in ans)
        r["ans_gap"] = r["ans_base"] - r["ans_think"]
        r["rest_gap"] = mean(t["nll_base"] - t["nll_think"] for t in rest)
        r["ans_mix"] = mean(t["mix"] for t in ans)
    return r, toks


MODES = ("", "_at")
EM_KEYS = ("em_think", "em_nothink", "em_pause_tokens", "em_random", "em_think_at", "em_pause_tokens_at", "em_random_at")


def by_digit(toks):
    """Mean base and think NLL of the k-th answer digit (k = 1, 2, ...)."""
    cols, k = {}, 0
    for t in toks:
        k = k + 1 if t["type"] == "answer" else 0
        if k:
            cols.setdefault(k, []).append(t)
    return [dict(base=mean(t["nll_base"] for t in cols[j]), think=mean(t["nll_think"] for t in cols[j]), n=len(cols[j]))
            for j in sorted(cols)]


def deciles(toks):
    ts = sorted(toks, key=lambda t: t["nll_base"])
    n = len(ts)
    out = []
    for k in range(10):
        part = ts[k * n // 10:(k + 1) * n // 10]
        out.append(mean(t["nll_base"] - t["nll_think"] for t in part) if part else float("nan"))
    return out


def entropy_curve(toks, xs):
    """Answer-token NLL when thinking only where the base entropy exceeds x (offline, same thoughts)."""
    ans = [t for t in toks if t["type"] == "answer"]
    out = []
    for x in xs:
        on = [t["entropy"] > x for t in ans]
        out.append(dict(threshold=x, think_frac=mean(on), ans_nll=mean(t["nll_think"] if o else t["nll_base"] for t, o in zip(ans, on))))
    return out


def load_json(p):
    with open(p) as f:
        return json.load(f)


def precondition_summary(sd):
    """One seed's precondition rates from its precondition.json (greedy generation)
    and precondition_protocol.json (digit-restricted protocol, when present)."""
    pre = load_json(os.path.join(sd, "precondition.json"))
    pp = os.path.join(sd, "precondition_protocol.json")
    return dict(direct=mean(x["direct_ok"] for x in pre), scratch_answer=mean(x["scratch_answer_ok"] for x in pre),
                scratch_steps=mean(x["scratch_ok"] for x in pre), direct_opened_scratch=mean(x["direct_opened_scratch"] for x in pre),
                n=len(pre), samples=pre[:5], direct_protocol=load_json(pp)["exact_match"] if os.path.exists(pp) else None)


def answer_start_thoughts(path, settings):
    """The thoughts right before each held-out answer's first digit (the one after
    "A: "): how often the thought is the problem's exact scratch-pad (what the
    pretraining documents would write after "A: ("), and the gain (base - think
    NLL of that digit) when it is and when it is not. None without the file."""
    if not os.path.exists(path):
        return None
    import gen  # the testbed's own scratch-pad rule (sys.path[0] is this directory)
    gen.OP, gen.FIXED, gen.REVERSE = settings.get("op", "add"), bool(settings.get("fixed_width")), bool(settings.get("reverse_answer"))
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    right, wrong, mix, ans_right, ans_wrong = [], [], [], [], []
    for k in range(4, len(rows)):
        if "".join(r["text"] for r in rows[k - 3:k]) != "A: " or not rows[k]["text"].isdigit() or "thought_text" not in rows[k]:
            continue
        j, q = k - 4, ""  # the question: the characters before "\nA: " back to "Q: "
        while j >= 0 and rows[j]["text"] != " ":
            q, j = rows[j]["text"] + q, j - 1
        m = re.fullmatch(r"\n?(\d+)([*+])(\d+)\n", q)
        if not m or j < 1 or rows[j - 1]["text"] != ":":
            continue
        want = gen.scratch(int(m.group(1)), int(m.group(3)))[1:-1]  # inside the parentheses
        ok = rows[k]["thought_text"].startswith(want)
        (right if ok else wrong).append(rows[k]["nll_base"] - rows[k]["nll_think"])
        j, g = k, 0.0  # the whole answer's gain (its digits' summed base - think NLL)
        while j < len(rows) and rows[j]["text"].isdigit():
            g, j = g + rows[j]["nll_base"] - rows[j]["nll_think"], j + 1
        (ans_right if ok else ans_wrong).append(g)
        mix.append(rows[k].get("mix", 0.0))
    n = len(right) + len(wrong)
    if not n:
        return None
    return dict(n=n, right=len(right) / n, gain_right=mean(right) if right else None,
                gain_wrong=mean(wrong) if wrong else None, mix=mean(mix),
                answer_gain_right=mean(ans_right) if ans_right else None,
                answer_gain_wrong=mean(ans_wrong) if ans_wrong else None)


def load_settings(root):
    p = os.path.join(root, "settings.json")
    return load_json(p) if os.path.exists(p) else {}


def analyze(root):
    seeds = sorted(glob.glob(os.path.join(root, "seed*")))
    settings = load_settings(root)
    listed = settings.get("seeds")
    if listed:  # only the run's own seeds (other seed directories may be left from another run)
        seeds = [os.path.join(root, "seed%s" % x.strip()) for x in str(listed).split(",")]
        missing = [sd for sd in seeds if not os.path.isdir(sd)]
        if missing:
            raise SystemExit("analyze.py: %s lists seeds %s, but %s is missing" % (os.path.join(root, "settings.json"), listed, missing[0]))
    per = {}
    for sd in seeds:
        s = os.path.basename(sd)
        r = per[s] = {}
        r["precondition"] = precondition_summary(sd)
        over = []
        for p in sorted(glob.glob(os.path.join(sd, "eval", "main_step*", "think.tokens.jsonl")),
                        key=lambda p: int(p.split("main_step")[1].split("/")[0])):
            st, _ = nll_stats(p)
            pa = p.replace("think.tokens.jsonl", "think_at.tokens.jsonl")
            if os.path.exists(pa):
                sa, _ = nll_stats(pa)
                st.update(ans_think_at=sa["ans_think"], ans_gap_at=sa["ans_gap"])
            over.append(dict(step=int(p.split("main_step")[1].split("/")[0]), **st))
        r["over_training"] = over
        r["variants"] = {}
        for ev in sorted(glob.glob(os.path.join(sd, "eval", "*", "gen.json"))):
            name = os.path.basename(os.path.dirname(ev))
            e = os.path.dirname(ev)
            v = {}
            v["think"], toks = nll_stats(os.path.join(e, "think.tokens.jsonl"))
            v["pause_tokens"], _ = nll_stats(os.path.join(e, "pause.tokens.jsonl"))
            v["random"], _ = nll_stats(os.path.join(e, "random.tokens.jsonl"))
            if os.path.exists(os.path.join(e, "think_at.tokens.jsonl")):  # thinking once at the answer's start
                v["think_at"], toks_at = nll_stats(os.path.join(e, "think_at.tokens.jsonl"))
                v["pause_tokens_at"], _ = nll_stats(os.path.join(e, "pause_at.tokens.jsonl"))
                v["random_at"], _ = nll_stats(os.path.join(e, "random_at.tokens.jsonl"))
                v["deciles_answer_at"] = deciles([t for t in toks_at if t["type"] == "answer"])
                v["by_answer_digit_at"] = by_digit(toks_at)
            g = load_json(ev)
            v["em"] = {k: g[k]["acc"] for k in EM_KEYS if k in g}
            v["think_when_gen"] = g["think_when"]
            v["gsm8k_protocol"] = g["gsm8k_protocol"]
            v["deciles_all"] = deciles(toks)
            v["deciles_answer"] = deciles([t for t in toks if t["type"] == "answer"])
            v["entropy_curve"] = entropy_curve(toks, [0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0])
            if name == "main":
                v["answer_start"] = answer_start_thoughts(os.path.join(e, "think.tokens.jsonl"), settings)
                if "think_at" in v:
                    v["answer_start_at"] = answer_start_thoughts(os.path.join(e, "think_at.tokens.jsonl"), settings)
                v["sample_thoughts"] = [dict(text=t["text"], thought=t.get("thought_text"), gain=t["nll_base"] - t["nll_think"])
                                        for t in toks if t["type"] == "answer"][:12]
            r["variants"][name] = v
    # across seeds
    agg = {}
    names = sorted({n for s in per.values() for n in s["variants"]})
    for n in names:
        vs = [s["variants"][n] for s in per.values() if n in s["variants"]]
        a = agg[n] = {}
        a["ans_nll_nothink"] = ci([v["think"]["ans_base"] for v in vs])
        for x in MODES:  # "" = a thought before every token, "_at" = once at the answer's start
            vx = [v for v in vs if "think" + x in v]
            if not vx:
                continue
            a["ans_nll_think" + x] = ci([v["think" + x]["ans_think"] for v in vx])
            a["ans_gap" + x] = ci([v["think" + x]["ans_gap"] for v in vx])
            a["ans_rel_gain" + x] = ci([v["think" + x]["ans_gap"] / v["think" + x]["ans_base"] for v in vx if v["think" + x]["ans_base"]])
            a["rest_gap" + x] = ci([v["think" + x]["rest_gap"] for v in vx])
            a["ans_mix" + x] = ci([v["think" + x]["ans_mix"] for v in vx])
            a["ans_gap_no_thought_tokens" + x] = ci([v["pause_tokens" + x]["ans_gap"] for v in vx])
            a["ans_gap_random_thoughts" + x] = ci([v["random" + x]["ans_gap"] for v in vx])
            a["ans_nll_no_thought_tokens" + x] = ci([v["pause_tokens" + x]["ans_think"] for v in vx])
            a["ans_nll_random_thoughts" + x] = ci([v["random" + x]["ans_think"] for v in vx])
            a["content_gain_vs_no_tokens" + x] = ci([v["think" + x]["ans_gap"] - v["pause_tokens" + x]["ans_gap"] for v in vx])
            a["content_gain_vs_random" + x] = ci([v["think" + x]["ans_gap"] - v["random" + x]["ans_gap"] for v in vx])
        for k in EM_KEYS:
            if all(k in v["em"] for v in vs):
                a[k] = ci([v["em"][k] for v in vs])
        a["em_gain"] = ci([v["em"]["em_think"] - v["em"]["em_nothink"] for v in vs])
        a["deciles_all"] = [ci([v["deciles_all"][k] for v in vs]) for k in range(10)]
        a["deciles_answer"] = [ci([v["deciles_answer"][k] for v in vs]) for k in range(10)]
        if all("deciles_answer_at" in v for v in vs):
            a["deciles_answer_at"] = [ci([v["deciles_answer_at"][k] for v in vs]) for k in range(10)]
            nd = min(len(v["by_answer_digit_at"]) for v in vs)
            a["by_answer_digit_at"] = [{k: ci([v["by_answer_digit_at"][j][k] for v in vs]) for k in ("base", "think")}
                                       for j in range(nd)]
    for x in MODES:
        pr = paired(per, x)
        if pr and "main" in agg:
            agg["main"]["paired" + x] = pr
    took = {sd: took_off(s["variants"]["main"]) for sd, s in per.items() if "main" in s["variants"]}
    took_at = {sd: took_off(s["variants"]["main"], "_at") for sd, s in per.items()
               if "main" in s["variants"] and "think_at" in s["variants"]["main"]}
    valid = {sd: precondition_holds(s["precondition"]) for sd, s in per.items()}
    pre = {k: ci([s["precondition"][k] for s in per.values()])
           for k in ("direct", "direct_protocol", "scratch_answer", "scratch_steps", "direct_opened_scratch")}
    steps = sorted({o["step"] for s in per.values() for o in s["over_training"]})
    over = [dict(step=st, **{k: ci([o[k] for s in per.values() for o in s["over_training"] if o["step"] == st and k in o])
                            for k in ("ans_base", "ans_think", "ans_gap", "ans_think_at", "ans_gap_at")}) for st in steps]
    return dict(per_seed=per, aggregate=agg, precondition=pre, over_training=over, seeds=len(per), took_off=took,
                took_off_at=took_at, precondition_holds=valid)


PRECONDITION_MARGIN = 0.30


def precondition_holds(p):
    """The testbed can test the hypothesis on this seed: the pretrained model's
    own scratch-pad gives the right answer clearly more often (by 30 points) than
    its direct answer, by either measure of the direct answer."""
    direct = max(x for x in (p.get("direct"), p.get("direct_protocol")) if x is not None)
    return bool(p["scratch_answer"] - direct >= PRECONDITION_MARGIN)


def took_off(v, x=""):
    """One seed's main run meets the target margins on its own (x: "" thinking
    before every token, "_at" once at the answer's start): answer NLL with
    thoughts >= 10% below without, exact match with thoughts >= 5 points above
    --no-think, and the thoughts' content beats both controls (their gains)."""
    t, e = v.get("think" + x, {}), v["em"]
    return bool(t.get("ans_gap") is not None and t["ans_base"] and t["ans_gap"] / t["ans_base"] >= 0.10
                and e.get("em_think" + x, 0) - e["em_nothink"] >= 0.05
                and t["ans_gap"] > v["pause_tokens" + x].get("ans_gap", 0) and t["ans_gap"] > v["random" + x].get("ans_gap", 0))


def gnuplot(out, name, script, data):
    """Runs one gnuplot script (PNG) with its data file; returns the PNG name or None."""
    dat = os.path.join(out, name + ".dat")
    with open(dat, "w") as f:
        f.write(data)
    png = name + ".png"
    full = ('set terminal pngcairo size 760,420 noenhanced\nset output "%s"\nset grid ytics\nset key outside bottom center horizontal\n'
            % os.path.join(out, png)) + script.replace("DAT", '"%s"' % dat)
    p = subprocess.run(["gnuplot"], input=full, text=True, capture_output=True)
    if p.returncode != 0:
        full = full.replace("pngcairo", "png")
        p = subprocess.run(["gnuplot"], input=full, text=True, capture_output=True)
    return png if p.returncode == 0 else None


def plots(res, out):
    if not shutil.which("gnuplot"):
        return ["gnuplot not installed (apt-get install gnuplot-nox): no plots"]
    os.makedirs(out, exist_ok=True)
    made = []
    agg = res["aggregate"]

    def val(c):
        return (c["mean"] if c["mean"] is not None else float("nan")), (c["ci95"] or 0.0)

    def bars(name, keys, labels, title, ylabel):
        rows = []
        for n in agg:
            cells = []
            for k in keys:
                m, e = val(agg[n][k])
                cells += ["%g" % m, "%g" % e]
            rows.append(n + " " + " ".join(cells))
        cols = " ".join("DAT using %d:%d:xtic(1) title '%s'%s" % (2 + 2 * j, 3 + 2 * j, labels[j], "," if j + 1 < len(keys) else "")
                        for j in range(len(keys)))
        script = ("set title '%s'\nset ylabel '%s'\nset style data histogram\nset style histogram errorbars gap 1 lw 1\n"
                  "set style fill solid 0.6\nset xtics rotate by -20\nplot %s\n" % (title, ylabel, cols.replace(",", ", ")))
        return gnuplot(out, name, script, "\n".join(rows) + "\n")

    at = all("ans_nll_think_at" in agg[n] and "em_think_at" in agg[n] for n in agg)
    made.append(bars("answer_nll", ["ans_nll_nothink", "ans_nll_think"] + (["ans_nll_think_at"] if at else []),
                     ["no thoughts", "thoughts before every token", "one thought at the answer's start"],
                     "held-out answer-token NLL (mean and 95% CI over seeds)", "nats/token"))
    made.append(bars("content_controls", ["ans_gap", "ans_gap_no_thought_tokens", "ans_gap_random_thoughts"],
                     ["its thoughts", "no thought tokens (n_ahead 3)", "random thought tokens"],
                     "answer-token gain (base - think NLL) and content controls", "nats/token"))
    made.append(bars("exact_match", ["em_nothink", "em_think", "em_pause_tokens", "em_random"],
                     ["--no-think", "--think", "--n-ahead 3", "--random-thoughts"], "exact match, greedy generation", "accuracy"))
    if at:
        made.append(bars("exact_match_at", ["em_nothink", "em_think_at", "em_pause_tokens_at", "em_random_at"],
                         ["--no-think", "--think-at", "--think-at --n-ahead 3", "--think-at --random-thoughts"],
                         "exact match, greedy, one thought at the answer's start", "accuracy"))
    ov = res["over_training"]
    if ov:
        data = "\n".join("%d %g %g %g %g %g %g" % ((o["step"],) + val(o["ans_base"]) + val(o["ans_think"]) + val(o["ans_think_at"]))
                         for o in ov) + "\n"
        made.append(gnuplot(out, "over_training", "set title 'main run: held-out answer-token NLL over training'\n"
                            "set xlabel 'Quiet-STaR step'\nset ylabel 'nats/token'\n"
                            "plot DAT using 1:2:3 with yerrorlines title 'no thoughts', DAT using 1:4:5 with yerrorlines title "
                            "'thoughts before every token', DAT using 1:6:7 with yerrorlines title 'one thought at the answer start'\n", data))
    if "main" in agg:
        data = "\n".join("%d %g %g %g %g" % ((k + 1,) + val(agg["main"]["deciles_all"][k]) + val(agg["main"]["deciles_answer"][k]))
                         for k in range(10)) + "\n"
        made.append(gnuplot(out, "gain_by_decile", "set title 'main run: thought gain by base-NLL decile'\n"
                            "set xlabel 'decile of base NLL (1 = easiest)'\nset ylabel 'gain, nats/token'\n"
                            "plot DAT using 1:2:3 with yerrorlines title 'all tokens', DAT using 1:4:5 with yerrorlines title 'answer digits'\n", data))
        first = next(iter(res["per_seed"].values()))
        tw = [x for x in first["variants"]["main"]["think_when_gen"] if x["tok_per_s"]]
        data = "\n".join("%g %g %s" % (x["tok_per_s"], x["acc"], x["threshold"]) for x in tw) + "\n"
        made.append(gnuplot(out, "think_when", "set title '--think-when entropy>X: speed vs exact match (first seed)'\n"
                            "set xlabel 'generation tokens/s'\nset ylabel 'exact match'\n"
                            "plot DAT using 1:2 with linespoints title 'X', DAT using 1:2:3 with labels offset 1,1 notitle\n", data))
    return [m for m in made if m]


MODE_NAMES = {"": "a thought before every token (the paper's evaluation: each token from the thought just before it)",
              "_at": "one thought at the answer's start (`--think-at \"A: \"`: its talk passes give the answer digits, "
                     "as training scores a thought)"}


def sep(a, b):
    """a clearly above b: both intervals known and apart."""
    if not a or not b or a["mean"] is None or b["mean"] is None or a["ci95"] is None or b["ci95"] is None:
        return False
    return a["mean"] - a["ci95"] > b["mean"] + b["ci95"]


COMPARISONS = ("no thoughts", "the pause run", "no thought tokens", "random thought tokens")


def paired(per, x):
    """Per seed, the main run's thoughts (way x) against each comparison: the
    relative answer-NLL gain 1 - think/other and the exact-match difference
    think - other, as mean and 95% interval over seeds (the comparisons are
    paired: the same pretrained model and held-out problems). None if unmeasured."""
    rel = {c: [] for c in COMPARISONS}
    dem = {c: [] for c in COMPARISONS}
    for s in per.values():
        v, pv = s["variants"].get("main"), s["variants"].get("pause")
        if not v or "think" + x not in v:
            return None
        th, e = v["think" + x]["ans_think"], v["em"].get("em_think" + x)
        others = {"no thoughts": (v["think" + x]["ans_base"], v["em"].get("em_nothink")),
                  "the pause run": ((pv or {}).get("think" + x, {}).get("ans_think"), (pv or {}).get("em", {}).get("em_think" + x)),
                  "no thought tokens": (v["pause_tokens" + x].get("ans_think"), v["em"].get("em_pause_tokens" + x)),
                  "random thought tokens": (v["random" + x].get("ans_think"), v["em"].get("em_random" + x))}
        for c, (o_nll, o_em) in others.items():
            if o_nll:
                rel[c].append(1 - th / o_nll)
            if e is not None and o_em is not None:
                dem[c].append(e - o_em)
    return {c: dict(nll_rel=ci(rel[c]), em_diff=ci(dem[c])) for c in COMPARISONS}


def mode_checks(agg, x):
    """The target margins in one way of thinking (x: "" or "_at"), each against
    the main run's thoughts: answer NLL >= 10% lower and accuracy >= 5 points
    higher, over no thoughts, the pause run at equal steps and the two content
    controls on the same checkpoint. "Intervals not overlapping" is read for
    these paired comparisons as: the 95% interval of the per-seed difference
    excludes 0 (the verdict); whether the two means' own intervals are apart
    is printed beside it. [(what, met, text)]."""
    m, p = agg["main"], agg.get("pause", {})
    th, em = m.get("ans_nll_think" + x), m.get("em_think" + x)
    pr = m.get("paired" + x) or {}
    out = []

    def nll(name, other):
        d = (pr.get(name) or {}).get("nll_rel")
        if not th or not other or th["mean"] is None or other["mean"] is None or not d or d["mean"] is None:
            out.append((name, False, "answer NLL vs %s: not measured" % name))
            return
        ok = d["mean"] >= 0.10 and d["ci95"] is not None and d["mean"] - d["ci95"] > 0
        out.append((name, ok, "answer NLL vs %s: %s vs %s, per seed %s%% lower (>= 10%%, interval above 0: %s; "
                    "the means' intervals apart: %s)" % (name, fmt(th), fmt(other), fmt(d, 1, True),
                                                         "yes" if ok else "no", "yes" if sep(other, th) else "no")))

    def acc(name, other):
        d = (pr.get(name) or {}).get("em_diff")
        if not em or not other or em["mean"] is None or other["mean"] is None or not d or d["mean"] is None:
            out.append((name, False, "exact match vs %s: not measured" % name))
            return
        ok = d["mean"] >= 0.05 and d["ci95"] is not None and d["mean"] - d["ci95"] > 0
        out.append((name, ok, "exact match vs %s: %s vs %s, per seed %s points (>= +5, interval above 0: %s; "
                    "the means' intervals apart: %s)" % (name, fmt(em, 1, True), fmt(other, 1, True), fmt(d, 1, True),
                                                         "yes" if ok else "no", "yes" if sep(em, other) else "no")))
    nll("no thoughts", m["ans_nll_nothink"])
    acc("no thoughts", m.get("em_nothink"))
    nll("the pause run", p.get("ans_nll_think" + x))
    acc("the pause run", p.get("em_think" + x))
    nll("no thought tokens", m.get("ans_nll_no_thought_tokens" + x))
    acc("no thought tokens", m.get("em_pause_tokens" + x))
    nll("random thought tokens", m.get("ans_nll_random_thoughts" + x))
    acc("random thought tokens", m.get("em_random" + x))
    return out


def margins_met_mode(agg, x):
    return "main" in agg and ("ans_nll_think" + x) in agg["main"] and all(ok for _, ok, _ in mode_checks(agg, x))


def verdict(agg, took=None, valid=None, took_at=None):
    m = agg.get("main")
    if not m or m["ans_gap"]["mean"] is None:
        return "no main run"
    lines = []
    if valid:
        bad = [k for k, x in valid.items() if not x]
        lines.append("- precondition (own scratch-pad right >= %d points more often than the direct answer, measured "
                     "before Quiet-STaR) held on **%d of %d seeds**%s" % (
                         100 * PRECONDITION_MARGIN, len(valid) - len(bad), len(valid),
                         "" if not bad else "; on %s the pretrained model already answers directly, so thinking has "
                         "nothing to add there and the testbed cannot test the hypothesis on that seed" % ", ".join(bad)))
    for x in MODES:
        if ("ans_nll_think" + x) not in m:
            continue
        lines.append("- thinking with %s:" % MODE_NAMES[x])
        lines += ["  - %s" % t for _, _, t in mode_checks(agg, x)]
        tk = took if x == "" else took_at
        if tk:
            lines.append("  - thinking took off (that seed's main run alone: answer NLL >= 10%% lower, exact match "
                         ">= +5 points, gain above both content controls) on **%d of %d seeds** (%s)"
                         % (sum(tk.values()), len(tk), ", ".join("%s %s" % (k, "yes" if v else "no") for k, v in tk.items())))
        lines.append("  - **verdict: %s**" % ("the target margins are met" if margins_met_mode(agg, x) else
                     "the target margins are NOT met"))
    return "\n".join(lines)


def per_seed_table(res):
    """Every seed on its own: with 3 seeds a mean and its interval can hide a
    bimodal outcome (thinking takes off on one seed and not on the others)."""
    L = ["## Every seed on its own (answer tokens; EM in %)", "",
         "| seed | run | NLL no thoughts | NLL thoughts | gain | gain, no thought tokens | gain, random thoughts | mix weight | EM --no-think | EM --think | EM n_ahead 3 | EM random |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for sd, s in res["per_seed"].items():
        for name, v in s["variants"].items():
            t, e = v.get("think", {}), v.get("em", {})
            p, r = v.get("pause_tokens", {}), v.get("random", {})
            if "ans_base" not in t:
                continue
            pct = lambda x: "-" if x is None else "%.0f" % (100 * x)
            L.append("| %s | %s | %.4f | %.4f | %+.4f | %s | %s | %.3f | %s | %s | %s | %s |" % (
                sd, name, t["ans_base"], t["ans_think"], t["ans_gap"],
                "%+.4f" % p["ans_gap"] if "ans_gap" in p else "-", "%+.4f" % r["ans_gap"] if "ans_gap" in r else "-",
                t.get("ans_mix", float("nan")), pct(e.get("em_nothink")), pct(e.get("em_think")),
                pct(e.get("em_pause_tokens")), pct(e.get("em_random"))))
    rows = [(sd, name, v) for sd, s in res["per_seed"].items() for name, v in s["variants"].items() if "think_at" in v]
    if rows:
        L += ["", "One thought at the answer's start (`--think-at \"A: \"`):", "",
              "| seed | run | NLL no thoughts | NLL thought | gain | gain, no thought tokens | gain, random thoughts | mix weight | EM --no-think | EM --think-at | EM n_ahead 3 | EM random |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        pct = lambda x: "-" if x is None else "%.0f" % (100 * x)
        for sd, name, v in rows:
            t, p, r, e = v["think_at"], v["pause_tokens_at"], v["random_at"], v.get("em", {})
            L.append("| %s | %s | %.4f | %.4f | %+.4f | %+.4f | %+.4f | %.3f | %s | %s | %s | %s |" % (
                sd, name, t["ans_base"], t["ans_think"], t["ans_gap"], p["ans_gap"], r["ans_gap"], t.get("ans_mix", float("nan")),
                pct(e.get("em_nothink")), pct(e.get("em_think_at")), pct(e.get("em_pause_tokens_at")), pct(e.get("em_random_at"))))
    return L + [""]


def report(res, made, out, settings, extra=()):
    agg = res["aggregate"]
    L = ["# qstar thinking experiment: report", "",
         "Generated by `experiments/arith/analyze.py` from the runs in this directory (%d seed(s)); "
         "every number is mean ± 95%% t-interval half-width over seeds. Exact reproduction: `commands.sh`. "
         "Settings: `settings.json`." % res["seeds"], ""]
    if settings.get("quick"):
        L += ["**QUICK MODE (CI): tiny sizes, the numbers mean nothing; this run only checks that every step works.**", ""]
    tm = settings.get("_timing")
    if tm:
        L += ["Wall time of `make experiment`: **%.0f s (%.1f min)** with %s seed(s) in parallel x %s thread(s) on %s CPUs "
              "(load average %s at the start, %s at the end)." % (tm["seconds"], tm["seconds"] / 60, tm["jobs"], tm["threads"],
                                                                   tm["cpus"], tm["load_start"], tm["load_end"]), ""]
    if settings.get("digits"):
        task = ("multiplication of a %s-digit number by one digit (2-9)" if settings.get("op") == "mul"
                else "addition of two %s-digit numbers") % settings["digits"]
        L += ["Testbed: %s; %d%% of pretraining problems show a scratch-pad; Quiet-STaR problems %s; "
              "%d pretraining steps of a %d-layer, dim-%d Llama." % (
                  task, round(100 * settings.get("scratch_frac", 0)),
                  "from a reserved pool of %d that pretraining never shows" % settings["qstar_pool"]
                  if settings.get("qstar_pool") else "drawn apart from the held-out ones",
                  settings.get("pre_steps", 0), settings.get("layers", 0), settings.get("dim", 0)), ""]
    L += ["## Verdict", "", verdict(agg, res.get("took_off"), res.get("precondition_holds"), res.get("took_off_at")), "",
          "## Precondition (before Quiet-STaR)", "",
          "Greedy generation by the pretrained model on held-out problems: its own scratch-pad (prompt ends with `A: (`) "
          "against its direct answer (prompt ends with `A:`).", "",
          "| measure | value |", "|---|---|"]
    pre = res["precondition"]
    L += ["| direct answer correct (greedy, no scratch-pad opened) | %s |" % fmt(pre["direct"], 1, True),
          "| direct answer correct (digit-restricted argmax, `eval --task gsm8k --no-think`) | %s |" % fmt(pre["direct_protocol"], 1, True),
          "| answer after its own scratch-pad correct | %s |" % fmt(pre["scratch_answer"], 1, True),
          "| scratch-pad steps all correct | %s |" % fmt(pre["scratch_steps"], 1, True),
          "| direct prompt opened a scratch-pad itself | %s |" % fmt(pre["direct_opened_scratch"], 1, True), ""]
    L += ["| seed | direct (greedy) | direct (protocol) | after own scratch-pad | precondition |", "|---|---|---|---|---|"]
    for sd, s in res["per_seed"].items():
        p = s["precondition"]
        pc = lambda x: "-" if x is None else "%.0f%%" % (100 * x)
        L.append("| %s | %s | %s | %s | %s |" % (sd, pc(p["direct"]), pc(p.get("direct_protocol")), pc(p["scratch_answer"]),
                                                "holds" if res.get("precondition_holds", {}).get(sd) else "**fails**"))
    L += [""]
    L += ["## Held-out answer tokens, every run (NLL in nats/token, exact match in %)", "",
          "| run | NLL no thoughts | NLL thoughts | gain | gain, no thought tokens | gain, random thoughts | mix weight | EM --no-think | EM --think | EM n_ahead 3 | EM random |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, a in agg.items():
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            n, fmt(a["ans_nll_nothink"]), fmt(a["ans_nll_think"]), fmt(a["ans_gap"]), fmt(a["ans_gap_no_thought_tokens"]),
            fmt(a["ans_gap_random_thoughts"]), fmt(a["ans_mix"], 3), fmt(a["em_nothink"], 1, True), fmt(a["em_think"], 1, True),
            fmt(a["em_pause_tokens"], 1, True), fmt(a["em_random"], 1, True)))
    L += ["", "Runs: `main` (n_ahead %s), `pause` (n_ahead 3: start and end only, equal steps), `n_ahead*` (length sweep), "
          "`ema` (RLP-style EMA reward baseline, 1 pass), `curriculum` (%s). The \"no thought tokens\" and \"random thoughts\" "
          "columns evaluate the same checkpoint with `--n-ahead 3` and `--random-thoughts`." % (settings.get("n_ahead"), settings.get("curriculum")), ""]
    if any("ans_nll_think_at" in a for a in agg.values()):
        L += ["## Held-out answer tokens, one thought at the answer's start (`--think-at \"A: \"`)", "",
              "The same checkpoints, thinking once where an answer starts: the thought's end state predicts the first "
              "answer digit and its talk passes (the digits after it fed after the thought) the next n_talk-1, mixed "
              "with the base prediction by the head, exactly as the training loss and reward score a thought; every "
              "other token takes the base prediction. Controls on the same checkpoint in the same mode.", "",
              "| run | NLL no thoughts | NLL thoughts | gain | NLL, no thought tokens | NLL, random thoughts | mix weight | EM --no-think | EM --think-at | EM n_ahead 3 | EM random |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for n, a in agg.items():
            if "ans_nll_think_at" not in a:
                continue
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                n, fmt(a["ans_nll_nothink"]), fmt(a["ans_nll_think_at"]), fmt(a["ans_gap_at"]),
                fmt(a["ans_nll_no_thought_tokens_at"]), fmt(a["ans_nll_random_thoughts_at"]), fmt(a["ans_mix_at"], 3),
                fmt(a["em_nothink"], 1, True), fmt(a.get("em_think_at", dict(mean=None)), 1, True),
                fmt(a.get("em_pause_tokens_at", dict(mean=None)), 1, True), fmt(a.get("em_random_at", dict(mean=None)), 1, True)))
        if "by_answer_digit_at" in agg.get("main", {}):
            L += ["", "Main run, by answer digit (least significant first; digit 1 is predicted from the thought's end, "
                  "digit k from its talk pass k-1):", "", "| answer digit | NLL no thoughts | NLL thought at the start |", "|---|---|---|"]
            for j, c in enumerate(agg["main"]["by_answer_digit_at"]):
                L.append("| %d | %s | %s |" % (j + 1, fmt(c["base"]), fmt(c["think"])))
        L += [""]
    L += per_seed_table(res)
    L += list(extra)
    L += ["## Over training (main run)", "", "| step | NLL no thoughts | NLL thoughts (before every token) | gain | "
          "NLL, one thought at the answer's start | gain |", "|---|---|---|---|---|---|"]
    for o in res["over_training"]:
        L.append("| %d | %s | %s | %s | %s | %s |" % (o["step"], fmt(o["ans_base"]), fmt(o["ans_think"]), fmt(o["ans_gap"]),
                                                    fmt(o["ans_think_at"]), fmt(o["ans_gap_at"])))
    if "main" in agg:
        da = agg["main"].get("deciles_answer_at")
        L += ["", "## Where the gain sits (main run)", "", "| base-NLL decile | gain, all tokens | gain, answer digits | "
              "gain, answer digits, one thought at the answer's start |", "|---|---|---|---|"]
        for k in range(10):
            L.append("| %d | %s | %s | %s |" % (k + 1, fmt(agg["main"]["deciles_all"][k]), fmt(agg["main"]["deciles_answer"][k]),
                                               fmt(da[k]) if da else "-"))
        L += ["", "## Thinking only where it pays (`--think-when entropy>X`, main run, first seed)", "",
              "| X | thought at | exact match | tokens/s |", "|---|---|---|---|"]
        first = next(iter(res["per_seed"].values()))
        for x in first["variants"]["main"]["think_when_gen"]:
            L.append("| %s | %s | %.1f%% | %.0f |" % (x["threshold"], "-" if x["think_frac"] is None else "%.0f%%" % (100 * x["think_frac"]),
                                                   100 * x["acc"], x["tok_per_s"]))
        L += ["", "Answer-token NLL when thinking only above X (offline from the same thoughts):", "", "| X | thought at | answer NLL |", "|---|---|---|"]
        for x in first["variants"]["main"]["entropy_curve"]:
            L.append("| %g | %.0f%% | %.4f |" % (x["threshold"], 100 * x["think_frac"], x["ans_nll"]))
        rows = [(sd, v["variants"]["main"].get("answer_start")) for sd, v in res["per_seed"].items() if "main" in v["variants"]]
        if any(a for _, a in rows):
            g = lambda x: "-" if x is None else "%+.4f" % x
            L += ["", "## What the thoughts say at the answer's start (main run)", "",
                  "The thought right before each held-out answer's first digit (after `A: `), against the problem's own "
                  "scratch-pad (what a pretraining document would write after `A: (`): how often it is exactly that "
                  "scratch-pad, and the gain (base - think NLL) of that digit and of the whole answer (its digits' sum) "
                  "when it is and when it is not; rows marked `--think-at` score the whole answer from that one thought. "
                  "Right scratch-pads with no gain mean the information is in the thoughts but is not used.", "",
                  "| seed | answers | thought = right scratch-pad | first digit gain when right | when not | "
                  "answer gain when right | when not | mix weight there |", "|---|---|---|---|---|---|---|---|"]
            at_rows = [(sd + ", `--think-at`", v["variants"]["main"].get("answer_start_at"))
                       for sd, v in res["per_seed"].items() if "main" in v["variants"]]
            for sd, a in rows + at_rows:
                if a:
                    L.append("| %s | %d | %.0f%% | %s | %s | %s | %s | %+.3f |" % (
                        sd, a["n"], 100 * a["right"], g(a["gain_right"]), g(a["gain_wrong"]), g(a.get("answer_gain_right")),
                        g(a.get("answer_gain_wrong")), a["mix"]))
        L += ["", "## Sample thoughts at answer positions (main run, first seed)", "", "| answer token | thought before it | gain |", "|---|---|---|"]
        for t in first["variants"]["main"].get("sample_thoughts", []):
            L.append("| `%s` | `%s` | %+.3f |" % (t["text"], (t["thought"] or "").replace("\n", "\\n").replace("|", "/"), t["gain"]))
    L += ["", "## Plots", ""] + ["![%s](plots/%s)" % (p, p) if p.endswith(".png") else p for p in made]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")


COMPARED = ("ans_nll_nothink", "ans_nll_think", "ans_gap", "ans_gap_no_thought_tokens", "ans_gap_random_thoughts",
            "em_nothink", "em_think", "em_pause_tokens", "em_random", "ans_nll_think_at", "ans_gap_at",
            "ans_gap_no_thought_tokens_at", "ans_gap_random_thoughts_at", "em_think_at", "em_pause_tokens_at", "em_random_at")


def margins_met(res):
    """The verdicts of both ways of thinking: (before every token, at the answer's start)."""
    return tuple(margins_met_mode(res["aggregate"], x) for x in MODES)


def compare(res, ref, ref_name):
    """Does this run reproduce the conclusions of ref (another SEED's results.json)
    within the reported intervals? Each mean of each run present in both is checked
    against the other's mean +- 95% interval, both ways; and the verdicts compared."""
    L = ["## Reproduction against %s" % ref_name, "",
         "Each mean of this run against the other run's mean ± 95% interval, and the other way round "
         "(\"inside\": within the reported interval).", "",
         "| run | measure | this run | %s | this inside other | other inside this |" % ref_name, "|---|---|---|---|---|---|"]
    inside = total = 0
    for n in sorted(set(res["aggregate"]) & set(ref["aggregate"])):
        for k in COMPARED:
            a, b = res["aggregate"][n].get(k), ref["aggregate"][n].get(k)
            if not a or not b or a["mean"] is None or b["mean"] is None:
                continue
            ab = b["ci95"] is not None and abs(a["mean"] - b["mean"]) <= b["ci95"]
            ba = a["ci95"] is not None and abs(a["mean"] - b["mean"]) <= a["ci95"]
            inside += ab and ba
            total += 1
            pct = k.startswith("em_")
            L.append("| %s | %s | %s | %s | %s | %s |" % (n, k, fmt(a, 1 if pct else 4, pct), fmt(b, 1 if pct else 4, pct),
                                                      "yes" if ab else "**no**", "yes" if ba else "**no**"))
    # the measures the verdicts rest on: the main run's per-seed (paired) gains over each comparison
    L += ["", "The main run's gains per seed over each comparison (what the verdicts rest on), both ways:", "",
          "| way of thinking | over | measure | this run | %s | this inside other | other inside this |" % ref_name,
          "|---|---|---|---|---|---|---|"]
    h_in = h_tot = 0
    for x in MODES:
        pa, pb = res["aggregate"].get("main", {}).get("paired" + x), ref["aggregate"].get("main", {}).get("paired" + x)
        if not pa or not pb:
            continue
        for c in COMPARISONS:
            for k, unit in (("nll_rel", "answer NLL, % lower"), ("em_diff", "exact match, points")):
                a, b = pa[c][k], pb[c][k]
                if a["mean"] is None or b["mean"] is None:
                    continue
                ab = b["ci95"] is not None and abs(a["mean"] - b["mean"]) <= b["ci95"]
                ba = a["ci95"] is not None and abs(a["mean"] - b["mean"]) <= a["ci95"]
                h_in += ab and ba
                h_tot += 1
                L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    "before every token" if x == "" else "at the answer's start", c, unit, fmt(a, 1, True), fmt(b, 1, True),
                    "yes" if ab else "**no**", "yes" if ba else "**no**"))

    def holds(r):
        return r.get("precondition_holds") or {sd: precondition_holds(x["precondition"]) for sd, x in r.get("per_seed", {}).items()}
    p1, p2 = holds(res), holds(ref)
    v1, v2 = margins_met(res), margins_met(ref)
    parts = []
    for j, x in enumerate(MODES):
        key = "took_off" + x
        t1 = res.get(key, {})
        t2 = ref.get(key) or ({sd: took_off(y["variants"]["main"], x) for sd, y in ref.get("per_seed", {}).items()
                               if "main" in y["variants"] and "think" + x in y["variants"]["main"]})
        parts.append("%s: margins %s here, %s there (%s), took off on %d of %d seeds here, %d of %d there"
                     % ("before every token" if x == "" else "at the answer's start", "met" if v1[j] else "NOT met",
                        "met" if v2[j] else "NOT met", "same conclusion" if v1[j] == v2[j] else "DIFFERENT conclusion",
                        sum(t1.values()), len(t1), sum(t2.values()), len(t2)))
    summary = ("the main run's per-seed gains: %d of %d inside each other's intervals; all means: %d of %d; thinking %s; "
               "the precondition held on %d of %d seeds here, %d of %d there"
               % (h_in, h_tot, inside, total, "; thinking ".join(parts), sum(p1.values()), len(p1), sum(p2.values()), len(p2)))
    return L + ["", "**" + summary + "**", ""], summary


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/experiment")
    p.add_argument("--compare", help="another run's directory or results.json (e.g. another SEED): a reproduction section")
    a = p.parse_args()
    res = analyze(a.out)
    if not res["seeds"]:
        raise SystemExit("analyze.py: %s: no seed*/ directories (run experiment.py first)" % a.out)
    settings = load_settings(a.out)
    tp = os.path.join(a.out, "timing.json")
    if os.path.exists(tp):
        settings["_timing"] = load_json(tp)
    made = plots(res, os.path.join(a.out, "plots"))
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(dict(res, settings=settings), f, indent=1)
    extra = []
    if a.compare:
        rp = a.compare if a.compare.endswith(".json") else os.path.join(a.compare, "results.json")
        try:
            ref = load_json(rp)
        except (OSError, ValueError) as e:
            raise SystemExit("analyze.py: --compare %s: %s" % (rp, e))
        extra, summary = compare(res, ref, os.path.relpath(os.path.dirname(os.path.abspath(rp))))
        print("reproduction: " + summary)
    report(res, made, a.out, settings, extra)
    print("wrote %s/report.md, results.json, plots/ (%d)" % (a.out, len([m for m in made if m.endswith(".png")])))


if __name__ == "__main__":
    main()
