# qstar.Tokenizer (python/qstar/tokenizer.py over the tokenizer API) against
# the qstar tokenize CLI (independent entry point, same library): ids with and
# without --special, --decode text, round trips, errors.
import os

import pytest

import qstar

TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outside."
UTEXT = "Hello world: café, naïve € 100 😀 -- ok"


def cli_ids(cli, tok, text, *extra):
    return [int(x) for x in cli("tokenize", "--tokenizer", tok, "--text", text, *extra).stdout.split()]


def test_llama2c_equals_cli(cli, stories):
    t = qstar.Tokenizer(stories["tok"])
    assert (t.vocab_size, t.bos_id, t.eos_id, t.kind) == (512, 1, 2, "llama2c")
    ids = t.encode(TEXT)
    assert ids == cli_ids(cli, stories["tok"], TEXT)
    assert t.encode(TEXT, special=True) == cli_ids(cli, stories["tok"], TEXT, "--special")
    assert t.encode(TEXT, special=True)[0] == 1
    assert t.decode(t.encode(TEXT, add_bos=True)) == TEXT
    want = cli("tokenize", "--tokenizer", stories["tok"], "--decode", "--text", " ".join(map(str, ids))).stdout
    assert t.decode(ids, specials=True) + "\n" == want


def test_bytelevel_equals_cli(cli):
    d = os.environ.get("QSTAR_DATA")
    path = os.path.join(d or "", "tokenizers", "hf-json", "gpt2")
    if not d or not os.path.exists(os.path.join(path, "tokenizer.json")):
        pytest.skip("QSTAR_DATA lacks tokenizers/hf-json/gpt2")
    with qstar.Tokenizer(path) as t:
        assert t.kind == "bpe-bytelevel" and len(t) == 50257
        ids = t.encode(UTEXT)
        assert ids == cli_ids(cli, path, UTEXT)
        assert t.decode(ids) == UTEXT
        assert t.decode(t.encode(UTEXT[:7])) + t.decode(t.encode(UTEXT[7:])) == UTEXT


def test_errors(stories):
    with pytest.raises(qstar.Error, match="/nonexistent/tok.bin"):
        qstar.Tokenizer("/nonexistent/tok.bin")
    t = qstar.Tokenizer(stories["tok"])
    with pytest.raises(ValueError, match="512"):
        t.decode([5, 512])
    t.close()
    with pytest.raises(qstar.Error, match="close"):
        t.encode("x")
