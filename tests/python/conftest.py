# Shared fixtures of the Python binding tests: the qstar CLI, stories260K from
# $QSTAR_DATA (skipped with a message when absent) and a Quiet-STaR checkpoint.
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))


def _qstar_bin():
    return os.environ.get("QSTAR") or os.path.join(ROOT, "build", "qstar")


@pytest.fixture(scope="session")
def cli():
    exe = _qstar_bin()
    if not os.path.exists(exe):
        pytest.skip(f"no qstar binary at {exe} (run make)")

    def run(*args, check=True):
        r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                           env=dict(os.environ, OMP_WAIT_POLICY="passive"))
        if check and r.returncode != 0:
            raise AssertionError(f"qstar {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}")
        return r
    return run


@pytest.fixture(scope="session")
def stories():
    d = os.environ.get("QSTAR_DATA")
    m = os.path.join(d or "", "stories260K")
    if not d or not os.path.exists(os.path.join(m, "stories260K.bin")):
        pytest.skip("QSTAR_DATA is not set (or lacks stories260K/): the binding checks need stories260K")
    return {"bin": os.path.join(m, "stories260K.bin"), "tok": os.path.join(m, "tok512.bin"),
            "valid": os.path.join(d, "tinystories", "valid.txt")}


@pytest.fixture(scope="session")
def qs_ckpt(cli, stories, tmp_path_factory):
    """stories260K with fresh Quiet-STaR tensors (n_ahead 6, a non-zero mixing head)."""
    out = tmp_path_factory.mktemp("ck") / "ck"
    cli("convert", "--model", stories["bin"], "--tokenizer", stories["tok"], "--out", out,
        "--add-quietstar", "--n-ahead", "6", "--talk-head-std", "1")
    return str(out)
