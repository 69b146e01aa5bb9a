#!/usr/bin/env bash
# CLI test of `qstar tokenize`: llama.cpp's expected ids on the 46 strings of
# the gpt-2, llama-bpe and qwen2 vocab tests (through the Hugging Face
# tokenizer.json files of GPT-2, Llama-3 and Qwen3); the same ids as the
# transformers.js peer (@lenml/tokenizers from npm, installed in
# build/tokref; skipped with a message when npm is unreachable) on the 428
# texts of tests/fixtures/tok_texts.py for all four hf-json tokenizers;
# --decode round-trips every text; bad tokenizer files and bad text give a
# one-line error naming the file and the field.
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

# --- checks that need no data ------------------------------------------------
"$QSTAR" tokenize --help >"$tmp/out" 2>&1 && grep -q "usage: qstar tokenize" "$tmp/out" || fail "tokenize --help"
expect_rc 2 "--tokenizer FILE_OR_DIR is required" "$QSTAR" tokenize --text hi
expect_rc 2 "exactly one of --text" "$QSTAR" tokenize --tokenizer x
expect_rc 1 "$tmp/none.json" "$QSTAR" tokenize --tokenizer "$tmp/none.json" --text hi

# a tiny byte-level BPE tokenizer.json, then broken variants of it
mk() { # mk FILE MODEL_TYPE MERGES_JSON REGEX
  "$PY" - "$@" <<'PYEOF'
import json, sys
path, mtype, merges, regex = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + n); n += 1
vocab = {chr(c): i for i, c in enumerate(sorted(cs))}
vocab["Ġh"] = 256; vocab["Ġhi"] = 257
j = {"version": "1.0", "added_tokens": [{"id": 258, "content": "<|end|>", "special": True, "lstrip": False, "rstrip": False, "single_word": False, "normalized": False}],
     "normalizer": None,
     "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
                                                             {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
     "post_processor": None, "decoder": {"type": "ByteLevel"},
     "model": {"type": mtype, "vocab": vocab}}
if merges != "none": j["model"]["merges"] = json.loads(merges)
json.dump(j, open(path, "w"))
PYEOF
}
mk "$tmp/good.json" BPE '["Ġ h", ["Ġh", "i"]]' " ?\\p{L}+|\\s+|."
"$QSTAR" tokenize --tokenizer "$tmp/good.json" --text " hi hi<|end|>!" >"$tmp/out" 2>"$tmp/err" || { fail "tiny tokenizer"; cat "$tmp/err"; }
[ "$(cat "$tmp/out")" = "257 257 258 0" ] || fail "tiny tokenizer: got '$(cat "$tmp/out")', want '257 257 258 0'"
"$QSTAR" tokenize --tokenizer "$tmp/good.json" --decode --text "257 257 258 0" >"$tmp/out" || fail "tiny decode"
[ "$(cat "$tmp/out")" = " hi hi<|end|>!" ] || fail "tiny decode: got '$(cat "$tmp/out")'"
mk "$tmp/unigram.json" Unigram '[]' "."
expect_rc 1 "$tmp/unigram.json: model.type \"Unigram\" is not supported" "$QSTAR" tokenize --tokenizer "$tmp/unigram.json" --text hi
mk "$tmp/nomerges.json" BPE none "."
expect_rc 1 "$tmp/nomerges.json: model.merges is missing" "$QSTAR" tokenize --tokenizer "$tmp/nomerges.json" --text hi
mk "$tmp/badmerge.json" BPE '["Ġ zz"]' "."
expect_rc 1 "$tmp/badmerge.json: merges[0]" "$QSTAR" tokenize --tokenizer "$tmp/badmerge.json" --text hi
mk "$tmp/badregex.json" BPE '[]' "(\\p{L}+"
expect_rc 1 "$tmp/badregex.json: pre_tokenizer regex" "$QSTAR" tokenize --tokenizer "$tmp/badregex.json" --text hi
head -c 300 "$tmp/good.json" >"$tmp/trunc.json"
expect_rc 1 "$tmp/trunc.json: invalid JSON near byte offset" "$QSTAR" tokenize --tokenizer "$tmp/trunc.json" --text hi
printf 'ok \xff\xfe bad' >"$tmp/bad.txt"
expect_rc 1 "invalid UTF-8 at byte offset 3" "$QSTAR" tokenize --tokenizer "$tmp/good.json" --file "$tmp/bad.txt"
expect_rc 1 "is not a token id" "$QSTAR" tokenize --tokenizer "$tmp/good.json" --decode --text "1 99999"

need_data "tokenizer" tokenizers/hf-json/gpt2/tokenizer.json tokenizers/hf-json/llama3/tokenizer.json \
  tokenizers/hf-json/qwen3/tokenizer.json tokenizers/hf-json/llama2/tokenizer.json
T=$QSTAR_DATA/tokenizers
H=$T/hf-json

# --- llama.cpp vocab tests: 46/46 each --------------------------------------
vectors() { # vectors NAME TOKENIZER INP OUT
  "$PY" - "$QSTAR" "$@" <<'PYEOF' || fail "llama.cpp vectors $2"
import json, subprocess, sys
qstar, name, tok, inp, out = sys.argv[1:6]
cases = open(inp, encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
if cases and cases[-1] == "": cases = cases[:-1]
exp = open(out).read().split("\n")
lines = "".join(json.dumps(c) + "\n" for c in cases)
r = subprocess.run([qstar, "tokenize", "--tokenizer", tok, "--file", "-", "--jsonl"], input=lines, capture_output=True, text=True)
got = r.stdout.split("\n")
ok = sum(1 for i in range(len(cases)) if i < len(got) and got[i].split() == exp[i].split())
print(f"{name}: {ok}/{len(cases)} llama.cpp vectors match")
for i in range(len(cases)):
    if i >= len(got) or got[i].split() != exp[i].split():
        print(f"  case {i} {cases[i][:40]!r}: got {got[i] if i < len(got) else r.stderr!r}, want {exp[i]}"); break
sys.exit(0 if ok == len(cases) == 46 else 1)
PYEOF
}
vectors gpt-2 "$H/gpt2" "$T/gpt2/ggml-vocab-gpt-2.gguf.inp" "$T/gpt2/ggml-vocab-gpt-2.gguf.out"
vectors llama-bpe "$H/llama3" "$T/llama3/ggml-vocab-llama-bpe.gguf.inp" "$T/llama3/ggml-vocab-llama-bpe.gguf.out"
vectors qwen2 "$H/qwen3/tokenizer.json" "$T/qwen2/ggml-vocab-qwen2.gguf.inp" "$T/qwen2/ggml-vocab-qwen2.gguf.out"

# --special: what each configuration adds
[ "$("$QSTAR" tokenize --tokenizer "$H/llama2" --text hi --special)" = "$("$QSTAR" tokenize --tokenizer "$H/llama2" --text hi | sed 's/^/1 /')" ] ||
  fail "--special with Llama-2 (add_bos_token) should prepend BOS 1"
[ "$("$QSTAR" tokenize --tokenizer "$H/qwen3" --text hi --special)" = "$("$QSTAR" tokenize --tokenizer "$H/qwen3" --text hi)" ] ||
  fail "--special with Qwen3 (no BOS) should add nothing"

# --- round trip and the transformers.js peer --------------------------------
"$PY" "$here/tests/fixtures/tok_texts.py" >"$tmp/texts.jsonl"
for d in gpt2 llama3 qwen3 llama2; do
  "$QSTAR" tokenize --tokenizer "$H/$d" --file "$tmp/texts.jsonl" --jsonl >"$tmp/q_$d" 2>"$tmp/err" || { fail "encode texts with $d"; cat "$tmp/err"; continue; }
  "$QSTAR" tokenize --tokenizer "$H/$d" --file "$tmp/q_$d" --jsonl --decode >"$tmp/rt_$d" 2>"$tmp/err" || { fail "decode texts with $d"; cat "$tmp/err"; continue; }
  # the exact text back; Qwen3 normalizes to NFC, SentencePiece-style BPE turns U+2581 into spaces
  "$PY" - "$d" "$tmp/texts.jsonl" "$tmp/rt_$d" <<'PYEOF' || fail "--decode round trip with $d"
import json, sys, unicodedata
d, a, b = sys.argv[1:4]
texts = [json.loads(l) for l in open(a)]
back = [json.loads(l) for l in open(b)]
want = [unicodedata.normalize("NFC", t) if d == "qwen3" else t.replace("\u2581", " ") if d == "llama2" else t for t in texts]
bad = [i for i in range(len(texts)) if i >= len(back) or back[i] != want[i]]
print(f"{d}: --decode round-trips {len(texts) - len(bad)}/{len(texts)} texts")
for i in bad[:3]: print(f"  {texts[i]!r} -> {back[i] if i < len(back) else None!r}")
sys.exit(1 if bad else 0)
PYEOF
done

REF=$here/build/tokref
if [ ! -d "$REF/node_modules/@lenml/tokenizers" ]; then
  mkdir -p "$REF"
  if ! command -v npm >/dev/null || ! (cd "$REF" && timeout 300 npm install --no-audit --no-fund @lenml/tokenizers >"$tmp/npm.log" 2>&1); then
    echo "SKIP: npm (or the registry) is unreachable; skipping the transformers.js peer comparison"
    [ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
    exit 77
  fi
fi
for d in gpt2 llama3 qwen3 llama2; do
  TOKREF=$REF node "$here/tests/fixtures/tok_peer.mjs" encode "$H/$d" "$tmp/texts.jsonl" >"$tmp/p_$d" 2>"$tmp/err" ||
    { fail "transformers.js peer on $d"; cat "$tmp/err"; continue; }
  "$PY" - "$d" "$tmp/texts.jsonl" "$tmp/q_$d" "$tmp/p_$d" <<'PYEOF' || fail "ids differ from transformers.js with $d"
import json, sys
d, t, q, p = sys.argv[1:5]
texts = [json.loads(l) for l in open(t)]
qs, ps = open(q).read().split("\n"), open(p).read().split("\n")
bad = [i for i in range(len(texts)) if qs[i] != ps[i]]
print(f"{d}: {len(texts) - len(bad)}/{len(texts)} texts give the same ids as transformers.js")
for i in bad[:3]: print(f"  {texts[i]!r}: qstar {qs[i]} / peer {ps[i]}")
sys.exit(1 if bad else 0)
PYEOF
done

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "tokenize: all checks passed"
