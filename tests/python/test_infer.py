# The inference options of the Python bindings against the qstar CLI (the same
# library, an independent entry point): generation with --think-when /
# --random-thoughts / --precision, Model.eval_nll against `qstar eval --task
# nll` and `qstar eval --data` (one function: the printed numbers agree), the
# per-token file, Model.viz against `qstar viz` (byte-identical page).
import json
import math
import re

import pytest

import qstar

PROMPT = "Once upon a time"
TEXT = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
        "One day, she saw a big red ball in the park and ran to get it.")


def cli_text(r):
    assert r.stdout.endswith("\n")
    return r.stdout[:-1]


@pytest.mark.parametrize("flags,kw", [
    (["--think-when", "entropy>1.5"], dict(think_when="entropy>1.5")),
    (["--random-thoughts"], dict(random_thoughts=True)),
    (["--think-when", "entropy>1.0", "--random-thoughts", "--precision", "bf16"],
     dict(think_when=1.0, random_thoughts=True, precision="bf16")),
    (["--think-at", " a", "--n-talk", "2"], dict(think_at=" a", n_talk=2)),
])
def test_generate_options_equal_cli(cli, qs_ckpt, flags, kw):
    m = qstar.Model(qs_ckpt)
    st = {}
    got = m.generate(PROMPT, max_tokens=40, seed=5, stats=st, **kw)
    r = cli("generate", "--model", qs_ckpt, "--prompt", PROMPT, "--max-tokens", 40, "--seed", 5, *flags)
    assert got == cli_text(r)
    k, n = map(int, re.search(r"^thoughts: (\d+) of (\d+) generated tokens$", r.stderr, re.M).groups())
    assert (st["n_thoughts"], st["n_generated"]) == (k, n)
    assert st["think"] == 1 and st["n_ahead"] == 6 and st["n_positions"] <= 40
    if "think_when" in kw or "think_at" in kw:
        assert 0 < k < n  # thinks at some tokens, not all
    shown = m.generate(PROMPT, max_tokens=40, seed=5, show_thoughts=True, **kw)
    assert shown.count("[") == k


def test_think_when_errors(stories):
    m = qstar.Model(stories["bin"], tokenizer=stories["tok"])
    with pytest.raises(qstar.Error, match="entropy>X"):
        m.generate(PROMPT, think_when="entropy<2")
    with pytest.raises(qstar.Error, match="Quiet-STaR"):
        m.generate(PROMPT, think_when="entropy>2")
    with pytest.raises(qstar.Error, match="bf17"):
        m.generate(PROMPT, precision="bf17")


def table(out):
    rows = {}
    for name in ("all tokens", "hardest 20%", "hardest 10%"):
        f = re.search(r"^" + re.escape(name) + r" +(\S+) +(\S+) +(\S+)$", out, re.M).groups()
        rows[name] = f
    return rows


@pytest.mark.parametrize("think", [False, True, "at"])
def test_eval_nll_equals_cli(cli, qs_ckpt, tmp_path, think):
    data = tmp_path / "doc.txt"
    data.write_text(TEXT + "\n\n" + TEXT.replace("Lily", "Tom") + "\n")
    m = qstar.Model(qs_ckpt)
    at = dict(think_at=" a", n_talk=3) if think == "at" else {}
    res = m.eval_nll(str(data), seq_len=24, think=bool(think), tokens_out=str(tmp_path / "py.jsonl"), **at)
    r = cli("eval", "--task", "nll", "--model", qs_ckpt, "--data", data, "--seq-len", 24,
            "--tokens-out", tmp_path / "cli.jsonl", *([] if think else ["--no-think"]),
            *(["--think-at", " a", "--n-talk", 3] if at else []))
    if at:  # thoughts only after " a", each scoring the 3 tokens after it
        assert f"{100 * res['think_frac']:.1f}% of tokens scored after a thought" in r.stdout
        assert 0 < res["think_frac"] < 1
    assert int(re.search(r"^tokens: (\d+) ", r.stdout, re.M).group(1)) == res["n_tokens"]
    rows = table(r.stdout)
    assert rows["all tokens"][0] == f"{res['nll_base']:.4f}"
    assert rows["hardest 10%"][0] == f"{res['hard10_base']:.4f}"
    if think:
        assert rows["all tokens"][1] == f"{res['nll_think']:.4f}"
        g = re.search(r"thought gain \(base - think\): (\S+) nats/token, 95% interval \[(\S+), (\S+)\]", r.stdout)
        assert g.group(1) == f"{res['gain']:+.4f}"
        assert g.group(3) == f"{res['gain'] + res['gain_ci95']:+.4f}"
    else:
        assert math.isnan(res["nll_think"]) and rows["all tokens"][1] == "-"
    # the per-token files are the same, line for line
    a = [json.loads(x) for x in (tmp_path / "py.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "cli.jsonl").read_text().splitlines()]
    assert a == b and len(a) == res["n_tokens"]
    if at:
        assert {t["talk"] for t in a} == {-1, 0, 1, 2}
        assert all(t["nll_think"] == t["nll_base"] for t in a if t["talk"] < 0)
    # without thoughts, `qstar eval --data` (the plain command) prints the same NLL: the same function
    if not think:
        p = cli("eval", "--model", qs_ckpt, "--data", data, "--seq-len", 24)
        assert re.search(r"^nll: (\S+) nats/token$", p.stdout, re.M).group(1) == f"{res['nll_base']:.4f}"
        assert re.search(r"^tokens: (\d+)$", p.stdout, re.M).group(1) == str(res["n_tokens"])


def test_viz_equals_cli(cli, qs_ckpt, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(TEXT + "\n")
    m = qstar.Model(qs_ckpt)
    res = m.viz(TEXT, str(tmp_path / "py.html"), title="text.txt", seed=9, max_tokens=30)
    r = cli("viz", "--model", qs_ckpt, "--text", text, "--out", tmp_path / "cli.html", "--seed", 9,
            "--max-tokens", 30)
    assert (tmp_path / "py.html").read_bytes() == (tmp_path / "cli.html").read_bytes()
    assert res["n_tokens"] == 29 and res["n_ahead"] == 6
    assert f"gain {res['gain']:+.4f}" in r.stderr
    assert abs(res["gain"] - (res["nll_base"] - res["nll_think"])) < 1e-9
    with pytest.raises(qstar.Error, match="is a directory"):
        m.viz(TEXT, str(tmp_path), force=True)
