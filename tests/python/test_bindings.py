# The Python bindings against the qstar CLI (independent entry point, same
# library): generation text, per-token scores, 10 training steps, errors.
import json
import math
import os

import numpy as np
import pytest

import qstar

PROMPT = "Once upon a time"
TEXT = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
        "One day, she saw a big red ball in the park and ran to get it.")


def cli_text(r):
    assert r.stdout.endswith("\n")
    return r.stdout[:-1]


def test_greedy_text_equals_cli(cli, stories):
    m = qstar.Model(stories["bin"], tokenizer=stories["tok"])
    got = m.generate(PROMPT, max_tokens=40, temperature=0)
    want = cli_text(cli("generate", "--model", stories["bin"], "--tokenizer", stories["tok"], "--prompt", PROMPT,
                        "--max-tokens", 40, "--temperature", 0))
    assert got == want
    assert got.startswith(PROMPT) and len(got) > len(PROMPT) + 20


def test_think_text_equals_cli(cli, qs_ckpt):
    m = qstar.Model(qs_ckpt)
    assert m.can_think and m.config["n_ahead"] == 6
    got = m.generate(PROMPT, max_tokens=32, seed=7, think=True)
    want = cli_text(cli("generate", "--model", qs_ckpt, "--prompt", PROMPT, "--max-tokens", 32, "--seed", 7, "--think"))
    assert got == want
    shown = m.generate(PROMPT, max_tokens=32, seed=7, think=True, show_thoughts=True)
    assert shown.count("[") >= 20  # a thought before every generated token
    # the iterator gives the same tokens, each generated one with its thought and mixing weight
    toks = list(m.generate_iter(PROMPT, max_tokens=32, seed=7, think=True))
    assert "".join(t.text for t in toks) == got
    gen = [t for t in toks if t.generated]
    assert gen and all(len(t.thought) == 3 for t in gen) and all(math.isfinite(t.mix_weight) for t in gen)
    assert any(t.mix_weight != 0 for t in gen)
    # without thoughts the checkpoint is stories260K
    plain = m.generate(PROMPT, max_tokens=32, seed=7, think=False)
    assert plain == cli_text(cli("generate", "--model", qs_ckpt, "--prompt", PROMPT, "--max-tokens", 32, "--seed", 7,
                                 "--no-think"))


def tokens_out(cli, model, tmp_path, extra):
    data = tmp_path / "doc.txt"
    data.write_text(TEXT + "\n")
    out = tmp_path / "tokens.jsonl"
    cli("eval", "--task", "nll", "--model", model, "--data", data, "--tokens-out", out, *extra)
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("think", [False, True])
def test_score_equals_eval_nll(cli, stories, qs_ckpt, tmp_path, think):
    m = qstar.Model(qs_ckpt)
    T = 24  # several windows
    s = m.score(TEXT, think=think, seq_len=T)
    recs = tokens_out(cli, qs_ckpt, tmp_path, ["--seq-len", T] + ([] if think else ["--no-think"]))
    assert len(recs) == int(np.sum(~np.isnan(s.nll_base))) > 20
    for r in recs:
        i = r["window"] * T + r["pos"]
        assert s.tokens[i] == r["id"]
        assert abs(s.nll_base[i] - r["nll_base"]) <= 1e-5
        if think:
            assert abs(s.nll_think[i] - r["nll_think"]) <= 1e-5
            assert abs(s.mix_weight[i] - r["mix"]) <= 1e-5
            assert list(s.thoughts[i]) == r["thought"]
        else:
            assert r["nll_think"] is None and math.isnan(s.nll_think[i])
    assert math.isnan(s.nll_base[0]) and math.isnan(s.nll_base[T])  # window starts are not predicted
    assert abs(s.mean_base - np.nanmean(s.nll_base)) < 1e-4


def train_settings(stories, tmp_path):
    data = tmp_path / "stories.txt"
    with open(stories["valid"]) as f:
        data.write_text("".join(f.readline() for _ in range(300)))
    return data


@pytest.mark.parametrize("quietstar", [False, True])
def test_trainer_matches_cli(cli, stories, tmp_path, quietstar):
    if not os.path.exists(stories["valid"]):
        pytest.skip("QSTAR_DATA lacks tinystories/valid.txt")
    data = train_settings(stories, tmp_path)
    flags = dict(steps=10, batch=2, seq_len=48, lr=1e-3, seed=5, threads=1, eval_batches=1)
    if quietstar:
        flags.update(n_ahead=5, n_talk=2)
    args = []
    for k, v in flags.items():
        args += ["--" + k.replace("_", "-"), v]
    cli("train" if quietstar else "finetune", "--model", stories["bin"], "--tokenizer", stories["tok"],
        "--data", data, "--out", tmp_path / "cli", *args)
    events = []
    tr = qstar.Trainer(quietstar=quietstar, model=stories["bin"], tokenizer=stories["tok"], data=str(data),
                       out=str(tmp_path / "py"), progress=events.append, **flags)
    losses = [tr.step()["loss"] for _ in range(10)]
    assert all(math.isfinite(x) for x in losses) and len(events) == 10 and tr.steps_done == 10
    nll, nll_think = tr.eval()
    assert math.isfinite(nll) and (math.isfinite(nll_think) if quietstar else math.isnan(nll_think))
    ck = tr.save()
    a = (tmp_path / "cli" / "ckpt" / "model.safetensors").read_bytes()
    b = open(os.path.join(ck, "model.safetensors"), "rb").read()
    assert a == b, "the Python Trainer's weights differ from qstar's after 10 steps"
    # the trained model is usable from the trainer
    assert len(tr.model.generate(PROMPT, max_tokens=12, temperature=0)) > len(PROMPT)


def test_errors_are_qstar_error(stories, tmp_path):
    with pytest.raises(qstar.Error, match="nonexistent"):
        qstar.Model("/nonexistent/model.bin")
    with pytest.raises(qstar.Error, match="tokenizer"):
        qstar.Model(stories["bin"])  # a .bin has no tokenizer beside it
    with pytest.raises(qstar.Error, match="nope.bin"):
        qstar.Model(stories["bin"], tokenizer=str(tmp_path / "nope.bin"))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x01\x02\x03")
    with pytest.raises(qstar.Error, match="bad.bin"):
        qstar.Model(str(bad), tokenizer=stories["tok"])
    m = qstar.Model(stories["bin"], tokenizer=stories["tok"])
    with pytest.raises(qstar.Error, match="outside vocabulary"):
        m.score(np.array([1, 5, 100000], dtype=np.int32))
    with pytest.raises(qstar.Error, match="Quiet-STaR"):
        m.generate(PROMPT, think=True)
    with pytest.raises(qstar.Error, match="missing.txt"):
        qstar.Trainer(model=stories["bin"], tokenizer=stories["tok"], data=str(tmp_path / "missing.txt"))
    with pytest.raises(qstar.Error):
        qstar.Trainer(data="x.txt")  # no model
    with pytest.raises(TypeError):
        qstar.Trainer(model=stories["bin"], bogus=1)
    # still alive and usable after all of that
    assert m.generate(PROMPT, max_tokens=8, temperature=0).startswith(PROMPT)


def test_trainer_bad_option_is_library_error():
    """Keywords go through the library's options table: its range checks and messages."""
    with pytest.raises(qstar.Error, match=r"--lr expects a number in \[0, 100\], got '-1.0'") as e:
        qstar.Trainer(model="m.bin", data="x.txt", lr=-1.0)
    assert e.value.status == 3  # QS_ERR_ARG
    with pytest.raises(qstar.Error, match="--reward-baseline expects mean or ema, got 'bogus'"):
        qstar.Trainer(quietstar=True, model="m.bin", data="x.txt", reward_baseline="bogus")
    with pytest.raises(qstar.Error, match=r"--n-ahead expects an integer in \[3, 256\], got '2'"):
        qstar.Trainer(quietstar=True, model="m.bin", data="x.txt", n_ahead=2)
    with pytest.raises(qstar.Error, match="unknown option '--n-talk'"):
        qstar.Trainer(model="m.bin", data="x.txt", n_talk=2)  # a Quiet-STaR setting in plain LM mode


def test_thoughts_example(qs_ckpt, tmp_path):
    pytest.importorskip("matplotlib")
    import subprocess
    import sys
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    out = tmp_path / "gain.png"
    r = subprocess.run([sys.executable, os.path.join(root, "examples", "thoughts.py"), qs_ckpt, "--out", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.path.join(root, "python")))
    assert r.returncode == 0, r.stderr
    assert "NLL base" in r.stdout and "mixing weight" in r.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trainer_defaults_and_resume_match_cli(cli, stories, tmp_path):
    """The API's defaults are the CLI's (compared through the train_args.json both
    write), and a Python Trainer resuming a CLI run stopped at step 3 ends with the
    weights of the CLI's uninterrupted 6 steps."""
    if not os.path.exists(stories["valid"]):
        pytest.skip("QSTAR_DATA lacks tinystories/valid.txt")
    data = train_settings(stories, tmp_path)
    base = ["--model", stories["bin"], "--tokenizer", stories["tok"], "--data", data]
    for quietstar in (False, True):
        cmd = "train" if quietstar else "finetune"
        cli(cmd, *base, "--out", tmp_path / f"d{cmd}", "--stop-after", 1, "--threads", 1)
        tr = qstar.Trainer(quietstar=quietstar, model=stories["bin"], tokenizer=stories["tok"], data=str(data),
                           threads=1)
        ck = tr.save(str(tmp_path / f"p{cmd}"))
        a = json.loads((tmp_path / f"d{cmd}" / "ckpt" / "train_args.json").read_text())
        b = json.loads(open(os.path.join(ck, "train_args.json")).read())
        for k in ("steps", "batch", "seq-len", "grad-accum", "warmup", "eval-every", "eval-batches", "save-every",
                  "lr", "min-lr", "weight-decay", "beta1", "beta2", "eps", "clip", "val-frac", "seed"):
            assert a[k] == pytest.approx(b[k], rel=1e-6), f"{cmd}: default {k} differs: CLI {a[k]}, API {b[k]}"
        tr.close()
    small = ["--steps", 6, "--batch", 2, "--seq-len", 32, "--n-ahead", 4, "--n-talk", 1, "--eval-batches", 1,
             "--threads", 1, "--seed", 9]
    cli("train", *base, "--out", tmp_path / "full", *small)
    cli("train", *base, "--out", tmp_path / "half", *small, "--stop-after", 3)
    tr = qstar.Trainer(quietstar=True, resume=str(tmp_path / "half"))
    assert tr.steps_done == 3
    while tr.steps_done < 6:
        tr.step()
    ck = tr.save(str(tmp_path / "py"))
    assert (tmp_path / "full" / "ckpt" / "model.safetensors").read_bytes() == \
        open(os.path.join(ck, "model.safetensors"), "rb").read()


@pytest.mark.parametrize("task,think", [("gsm8k", False), ("csqa", True)])
def test_eval_task_equals_cli(cli, stories, qs_ckpt, tmp_path, task, think):
    d = os.environ["QSTAR_DATA"]
    data = os.path.join(d, "gsm8k/test.jsonl" if task == "gsm8k" else "csqa/dev_rand_split.jsonl")
    if not os.path.exists(data):
        pytest.skip(f"QSTAR_DATA lacks {data}")
    out = tmp_path / "r.json"
    cli("eval", "--task", task, "--model", qs_ckpt, "--data", data, "--limit", 6, "--seed", 3, "--out", out,
        "--think" if think else "--no-think")
    want = json.loads(out.read_text())
    got = qstar.Model(qs_ckpt).eval_task(task, data=data, limit=6, think=think, seed=3)
    assert got["n"] == want["n"] == 6 and got["think"] == int(think)
    for k in ("accuracy", "exact_match", "first_token_prob"):
        assert got[k] == pytest.approx(want[k], abs=1e-12), k
    with pytest.raises(qstar.Error, match="task"):
        qstar.Model(qs_ckpt).eval_task("bogus")
