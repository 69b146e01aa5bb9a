#!/usr/bin/env bash
# CLI test of `qstar tokenize` on SentencePiece tokenizer.model files and on
# the tokenizer stored in GGUF files:
#   - llama.cpp's expected ids on the 46 strings of the llama-spm vocab test,
#     through the GGUF, Llama-2's tokenizer.model and the tokenizer inside the
#     shared llama2-tiny-random model GGUF; the gpt-2 vocab
#     test through the GGUF (byte-level BPE with merges);
#   - the same ids as the independent Python SentencePiece (Debian
#     python3-sentencepiece) for Llama-2's and Mistral's tokenizer.model on the
#     428 texts of tests/fixtures/tok_texts.py, and for small models trained by
#     SentencePiece itself (user-defined symbols, no byte fallback so unknown
#     characters become unk, remove_extra_whitespaces, the nmt_nfkc normalizer)
#     on those texts and on 600 random strings of whitespace, compatibility and
#     combining characters;
#   - `--decode` round-trips every text;
#   - `--export DIR` of the llama-spm GGUF writes a tokenizer.model that Python
#     SentencePiece loads and encodes like the original Llama-2 model; of the
#     gpt-2 GGUF, a tokenizer.json that encodes like the GGUF and like the real
#     Hugging Face GPT-2 tokenizer.json;
#   - bad files (truncated tokenizer.model, a UNIGRAM model, GGUF with
#     an unknown tokenizer model or pre name, no tokenizer) exit 1 with one
#     line naming the file and the field.
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

# --- checks that need no data ------------------------------------------------
# mkgguf FILE KEY=TYPE:VALUE...: a GGUF v3 with only metadata (types: str, u32, bool, strs, f32s, i32s)
mkgguf() {
  "$PY" - "$@" <<'PYEOF'
import struct, sys
path, items = sys.argv[1], sys.argv[2:]
def s(x): b = x.encode(); return struct.pack("<Q", len(b)) + b
out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(items))
for it in items:
    key, rest = it.split("=", 1); typ, val = rest.split(":", 1)
    out += s(key)
    if typ == "str": out += struct.pack("<I", 8) + s(val)
    elif typ == "u32": out += struct.pack("<II", 4, int(val))
    elif typ == "bool": out += struct.pack("<IB", 7, int(val))
    elif typ == "i32s":
        v = [int(x) for x in val.split(",")]
        out += struct.pack("<IIQ", 9, 5, len(v)) + b"".join(struct.pack("<i", x) for x in v)
    elif typ == "strs":
        v = val.split(",") if val else []
        out += struct.pack("<IIQ", 9, 8, len(v)) + b"".join(s(x) for x in v)
    elif typ == "f32s":
        v = [float(x) for x in val.split(",")]
        out += struct.pack("<IIQ", 9, 6, len(v)) + b"".join(struct.pack("<f", x) for x in v)
open(path, "wb").write(out)
PYEOF
}
mkgguf "$tmp/t5.gguf" tokenizer.ggml.model=str:t5 tokenizer.ggml.tokens=strs:a,b
expect_rc 1 "$tmp/t5.gguf: tokenizer.ggml.model \"t5\" is not supported" "$QSTAR" tokenize --tokenizer "$tmp/t5.gguf" --text hi
mkgguf "$tmp/pre.gguf" tokenizer.ggml.model=str:gpt2 tokenizer.ggml.tokens=strs:a,b tokenizer.ggml.merges=strs:a\ b tokenizer.ggml.pre=str:klingon
expect_rc 1 "$tmp/pre.gguf: tokenizer.ggml.pre \"klingon\"" "$QSTAR" tokenize --tokenizer "$tmp/pre.gguf" --text hi
mkgguf "$tmp/none.gguf" general.architecture=str:llama
expect_rc 1 "$tmp/none.gguf: tokenizer.ggml.model is missing" "$QSTAR" tokenize --tokenizer "$tmp/none.gguf" --text hi
mkgguf "$tmp/scores.gguf" tokenizer.ggml.model=str:llama tokenizer.ggml.tokens=strs:a,b tokenizer.ggml.scores=f32s:0
expect_rc 1 "$tmp/scores.gguf: tokenizer.ggml.scores has 1 entries for 2 tokens" "$QSTAR" tokenize --tokenizer "$tmp/scores.gguf" --text hi
mkgguf "$tmp/bos.gguf" tokenizer.ggml.model=str:llama tokenizer.ggml.tokens=strs:a,b tokenizer.ggml.scores=f32s:0,0 tokenizer.ggml.bos_token_id=u32:7
expect_rc 1 "$tmp/bos.gguf: tokenizer.ggml.bos_token_id = 7" "$QSTAR" tokenize --tokenizer "$tmp/bos.gguf" --text hi
# a tiny llama GGUF vocabulary: ▁ h i hi ▁hi
mkgguf "$tmp/tiny.gguf" tokenizer.ggml.model=str:llama "tokenizer.ggml.tokens=strs:<unk>,▁,h,i,hi,▁hi" \
  tokenizer.ggml.scores=f32s:0,-1,-2,-3,-0.5,-0.25
[ "$("$QSTAR" tokenize --tokenizer "$tmp/tiny.gguf" --text "hi ih")" = "5 1 3 2" ] ||
  fail "tiny llama GGUF: got '$("$QSTAR" tokenize --tokenizer "$tmp/tiny.gguf" --text "hi ih" 2>&1)', want '5 1 3 2'"
# a tiny gpt2 GGUF (llama-bpe regexes, a user-defined and a control token, BOS added)
# and its export as tokenizer.json: the same ids, --special included
mkgguf "$tmp/bpe.gguf" tokenizer.ggml.model=str:gpt2 tokenizer.ggml.pre=str:llama-bpe \
  "tokenizer.ggml.tokens=strs:H,e,l,o,Ġ,He,ll,llo,<|bos|>,<u>,Ġw,r,d,w" tokenizer.ggml.token_type=i32s:1,1,1,1,1,1,1,1,3,4,1,1,1,1 \
  "tokenizer.ggml.merges=strs:H e,l l,ll o,Ġ w" tokenizer.ggml.bos_token_id=u32:8 tokenizer.ggml.add_bos_token=bool:1
"$QSTAR" tokenize --tokenizer "$tmp/bpe.gguf" --export "$tmp/bpe-ex" 2>"$tmp/err" || { fail "--export of a tiny gpt2 GGUF"; cat "$tmp/err"; }
for text in "Hello<u> world" "Hello" "<u><u>ld"; do
  a=$("$QSTAR" tokenize --tokenizer "$tmp/bpe.gguf" --text "$text" --special 2>&1)
  b=$("$QSTAR" tokenize --tokenizer "$tmp/bpe-ex" --text "$text" --special 2>&1)
  [ "$a" = "$b" ] && [ "${a%% *}" = 8 ] || fail "tiny gpt2 GGUF vs its tokenizer.json on '$text': '$a' / '$b' (want BOS 8 first)"
done
[ "$("$QSTAR" tokenize --tokenizer "$tmp/bpe.gguf" --text "Hello<u> world")" = "5 7 9 10 3 11 2 12" ] ||
  fail "tiny gpt2 GGUF: got '$("$QSTAR" tokenize --tokenizer "$tmp/bpe.gguf" --text "Hello<u> world" 2>&1)'"

# a hand-made tokenizer.model: the same vocabulary as a protobuf ModelProto
"$PY" - "$tmp/tiny.model" <<'PYEOF'
import struct, sys
def v(n):
    out = b""
    while True:
        b = n & 0x7F; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def ld(field, b): return v(field << 3 | 2) + v(len(b)) + b
def piece(p, score, typ=1):
    m = ld(1, p.encode()) + v(2 << 3 | 5) + struct.pack("<f", score)
    return ld(1, m + (v(3 << 3) + v(typ) if typ != 1 else b""))
body = piece("<unk>", 0, 2) + piece("\u2581", -1) + piece("h", -2) + piece("i", -3) + piece("hi", -0.5) + piece("\u2581hi", -0.25)
body += ld(2, v(3 << 3) + v(2) + v(41 << 3) + v(2**64 - 1) + v(42 << 3) + v(2**64 - 1))  # BPE, no bos/eos
body += ld(3, ld(1, b"identity") + v(4 << 3) + v(0))
open(sys.argv[1], "wb").write(body)
PYEOF
[ "$("$QSTAR" tokenize --tokenizer "$tmp/tiny.model" --text "hi ih")" = "5 1 3 2" ] ||
  fail "tiny tokenizer.model: got '$("$QSTAR" tokenize --tokenizer "$tmp/tiny.model" --text "hi ih" 2>&1)', want '5 1 3 2'"
[ "$("$QSTAR" tokenize --tokenizer "$tmp/tiny.model" --decode --text "5 1 3 2")" = "hi ih" ] || fail "tiny tokenizer.model --decode"
head -c 30 "$tmp/tiny.model" >"$tmp/trunc.model"
expect_rc 1 "$tmp/trunc.model: ModelProto.pieces[" "$QSTAR" tokenize --tokenizer "$tmp/trunc.model" --text hi

need_data "tokenizer.model / GGUF tokenizer" tokenizers/llama-spm/ggml-vocab-llama-spm.gguf tokenizers/llama2/tokenizer.model \
  tokenizers/mistral/tokenizer.model.v1 tokenizers/gpt2/ggml-vocab-gpt-2.gguf tokenizers/hf-json/gpt2/tokenizer.json
T=$QSTAR_DATA/tokenizers
SPM_GGUF=$T/llama-spm/ggml-vocab-llama-spm.gguf
GPT2_GGUF=$T/gpt2/ggml-vocab-gpt-2.gguf

# --- llama.cpp vocab tests: 46/46 each --------------------------------------
vectors() { # vectors NAME TOKENIZER INP OUT
  "$PY" - "$QSTAR" "$@" <<'PYEOF' || fail "llama.cpp vectors $1"
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
vectors "llama-spm (GGUF)" "$SPM_GGUF" "$SPM_GGUF.inp" "$SPM_GGUF.out"
vectors "llama-spm (Llama-2 tokenizer.model)" "$T/llama2/tokenizer.model" "$SPM_GGUF.inp" "$SPM_GGUF.out"
vectors "gpt-2 (GGUF)" "$GPT2_GGUF" "$GPT2_GGUF.inp" "$GPT2_GGUF.out"
# the tokenizer inside the shared tiny random Llama GGUF model
TINY=$QSTAR_DATA/models/llama2-tiny-random/llama-2-tiny-random.gguf
[ -f "$TINY" ] && vectors "llama-spm (llama2-tiny-random model GGUF)" "$TINY" "$SPM_GGUF.inp" "$SPM_GGUF.out"

# --special: the GGUF's add_bos_token (true for llama-spm)
[ "$("$QSTAR" tokenize --tokenizer "$SPM_GGUF" --text hi --special)" = "1 $("$QSTAR" tokenize --tokenizer "$SPM_GGUF" --text hi)" ] ||
  fail "--special with the llama-spm GGUF should prepend BOS 1"

# --- export: the GGUF's tokenizer as a Hugging Face directory ---------------
"$QSTAR" tokenize --tokenizer "$SPM_GGUF" --export "$tmp/ex-spm" 2>"$tmp/err" || { fail "--export llama-spm"; cat "$tmp/err"; }
"$QSTAR" tokenize --tokenizer "$GPT2_GGUF" --export "$tmp/ex-gpt2" 2>"$tmp/err" || { fail "--export gpt-2"; cat "$tmp/err"; }
[ -f "$tmp/ex-spm/tokenizer.model" ] && [ -f "$tmp/ex-spm/tokenizer_config.json" ] || fail "--export llama-spm: files missing"
[ -f "$tmp/ex-gpt2/tokenizer.json" ] && [ -f "$tmp/ex-gpt2/tokenizer_config.json" ] || fail "--export gpt-2: files missing"
vectors "llama-spm (exported tokenizer.model)" "$tmp/ex-spm" "$SPM_GGUF.inp" "$SPM_GGUF.out"
vectors "gpt-2 (exported tokenizer.json)" "$tmp/ex-gpt2" "$GPT2_GGUF.inp" "$GPT2_GGUF.out"
[ "$("$QSTAR" tokenize --tokenizer "$tmp/ex-spm" --text hi --special)" = "1 $("$QSTAR" tokenize --tokenizer "$tmp/ex-spm" --text hi)" ] ||
  fail "exported tokenizer_config.json should keep add_bos_token"
expect_rc 1 "$T/llama2/tokenizer.model" "$QSTAR" tokenize --tokenizer "$T/llama2/tokenizer.model" --export "$tmp/ex-bad"

# --- the 428 texts: round trips, exported vs GGUF ---------------------------
"$PY" "$here/tests/fixtures/tok_texts.py" >"$tmp/texts.jsonl"
enc() { "$QSTAR" tokenize --tokenizer "$1" --file "$tmp/texts.jsonl" --jsonl >"$2" 2>"$tmp/err" || { fail "encode texts with $1"; cat "$tmp/err"; }; }
enc "$SPM_GGUF" "$tmp/q_spmgguf"
enc "$T/llama2/tokenizer.model" "$tmp/q_llama2"
enc "$T/mistral/tokenizer.model.v1" "$tmp/q_mistral"
enc "$GPT2_GGUF" "$tmp/q_gpt2gguf"
enc "$tmp/ex-gpt2" "$tmp/q_gpt2ex"
enc "$T/hf-json/gpt2" "$tmp/q_gpt2hf"
cmp -s "$tmp/q_spmgguf" "$tmp/q_llama2" || fail "the llama-spm GGUF and Llama-2's tokenizer.model encode the texts differently"
cmp -s "$tmp/q_gpt2ex" "$tmp/q_gpt2hf" || fail "the exported gpt-2 tokenizer.json and the real GPT-2 tokenizer.json encode the texts differently"
# the GGUF (llama.cpp semantics) does not match control tokens in the text; tokenizer.json does
"$PY" - "$tmp/texts.jsonl" "$tmp/q_gpt2gguf" "$tmp/q_gpt2ex" <<'PYEOF' || fail "gpt-2 GGUF vs its exported tokenizer.json"
import json, sys
texts = [json.loads(l) for l in open(sys.argv[1])]
a, b = open(sys.argv[2]).read().split("\n"), open(sys.argv[3]).read().split("\n")
idx = [i for i, t in enumerate(texts) if "<|endoftext|>" not in t]
bad = [i for i in idx if a[i] != b[i]]
print(f"gpt-2: GGUF and exported tokenizer.json agree on {len(idx) - len(bad)}/{len(idx)} texts without <|endoftext|>")
sys.exit(1 if bad or len(idx) < 300 else 0)
PYEOF
for k in spmgguf:$SPM_GGUF llama2:$T/llama2/tokenizer.model mistral:$T/mistral/tokenizer.model.v1 gpt2gguf:$GPT2_GGUF; do
  name=${k%%:*} tok=${k#*:}
  "$QSTAR" tokenize --tokenizer "$tok" --file "$tmp/q_$name" --jsonl --decode >"$tmp/rt_$name" 2>"$tmp/err" || { fail "decode texts with $name"; cat "$tmp/err"; continue; }
  "$PY" - "$name" "$tmp/texts.jsonl" "$tmp/rt_$name" <<'PYEOF' || fail "--decode round trip with $name"
import json, sys
d, a, b = sys.argv[1:4]
texts = [json.loads(l) for l in open(a)]
back = [json.loads(l) for l in open(b)]
# SentencePiece: a U+2581 of the text is a space
want = [t if d.startswith("gpt2") else t.replace("\u2581", " ") for t in texts]
bad = [i for i in range(len(texts)) if i >= len(back) or back[i] != want[i]]
print(f"{d}: --decode round-trips {len(texts) - len(bad)}/{len(texts)} texts")
for i in bad[:3]: print(f"  {texts[i]!r} -> {back[i] if i < len(back) else None!r}")
sys.exit(1 if bad else 0)
PYEOF
done

# --- Python SentencePiece as the reference -----------------------------------
if ! "$PY" -c "import sentencepiece" 2>/dev/null; then
  echo "SKIP: python3-sentencepiece is not installed (apt-get install python3-sentencepiece); skipping the SentencePiece comparisons"
  [ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
  exit 77
fi
spcmp() { # spcmp NAME MODEL QSTAR_IDS [REFERENCE_MODEL]: Python SentencePiece's ids == qstar's
  "$PY" - "$@" "$tmp/texts.jsonl" <<'PYEOF' || fail "ids differ from Python SentencePiece: $1"
import json, sys
import sentencepiece as spm
name, model, ids = sys.argv[1:4]
ref = sys.argv[4] if len(sys.argv) > 5 else None
texts = [json.loads(l) for l in open(sys.argv[-1], encoding="utf-8")]
got = open(ids).read().split("\n")
sp = spm.SentencePieceProcessor(model_file=model)
want = [" ".join(map(str, sp.encode(t))) for t in texts]
bad = [i for i in range(len(texts)) if i >= len(got) or got[i] != want[i]]
print(f"{name}: {len(texts) - len(bad)}/{len(texts)} texts give the same ids as Python SentencePiece")
for i in bad[:3]: print(f"  {texts[i]!r}: qstar {got[i] if i < len(got) else None} / sentencepiece {want[i]}")
if ref:
    sr = spm.SentencePieceProcessor(model_file=ref)
    diff = sum(1 for t in texts if sr.encode(t) != sp.encode(t))
    print(f"{name}: Python SentencePiece encodes {len(texts) - diff}/{len(texts)} texts the same with it and with {ref.split('/')[-1]}")
    if diff: bad.append(-1)
sys.exit(1 if bad else 0)
PYEOF
}
spcmp "Llama-2 tokenizer.model" "$T/llama2/tokenizer.model" "$tmp/q_llama2"
spcmp "Mistral tokenizer.model.v1" "$T/mistral/tokenizer.model.v1" "$tmp/q_mistral"
# the exported tokenizer.model loads in SentencePiece, encodes like the GGUF and like Llama-2's own
spcmp "tokenizer.model exported from the llama-spm GGUF" "$tmp/ex-spm/tokenizer.model" "$tmp/q_spmgguf" "$T/llama2/tokenizer.model"

# a long text in one piece (qstar merges word by word when the vocabulary allows it)
if [ -f "$QSTAR_DATA/tinystories/valid.txt" ]; then
  "$QSTAR" tokenize --tokenizer "$T/llama2/tokenizer.model" --file "$QSTAR_DATA/tinystories/valid.txt" >"$tmp/q_long" 2>"$tmp/err" || fail "encode valid.txt"
  "$PY" - "$T/llama2/tokenizer.model" "$QSTAR_DATA/tinystories/valid.txt" "$tmp/q_long" <<'PYEOF' || fail "valid.txt: ids differ from Python SentencePiece"
import sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
want = sp.encode(open(sys.argv[2], encoding="utf-8").read())
got = list(map(int, open(sys.argv[3]).read().split()))
print(f"tinystories/valid.txt as one text: {len(got)} ids, {'the same as' if got == want else 'DIFFERENT from'} Python SentencePiece's {len(want)}")
sys.exit(0 if got == want else 1)
PYEOF
fi

# small models trained by SentencePiece itself
"$PY" - "$tmp" "$T/gpt2/corpus.en" <<'PYEOF' || fail "training small SentencePiece models"
import sys
import sentencepiece as spm
d, corpus = sys.argv[1:3]
for name, mt, norm in [("bpe", "bpe", "identity"), ("unigram", "unigram", "identity"), ("nfkc", "bpe", "nmt_nfkc")]:
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=f"{d}/sp_{name}", model_type=mt, vocab_size=300,
                                   normalization_rule_name=norm, user_defined_symbols=["<ud>", "foo bar"],
                                   hard_vocab_limit=False, minloglevel=2)
PYEOF
enc "$tmp/sp_bpe.model" "$tmp/q_spbpe"
spcmp "small BPE model (user-defined symbols, unk, remove_extra_whitespaces)" "$tmp/sp_bpe.model" "$tmp/q_spbpe"
enc "$tmp/sp_nfkc.model" "$tmp/q_spnfkc"
spcmp "small BPE model with the nmt_nfkc normalizer (precompiled charsmap)" "$tmp/sp_nfkc.model" "$tmp/q_spnfkc"
expect_rc 1 "$tmp/sp_unigram.model: trainer_spec.model_type 1 (UNIGRAM) is not supported" "$QSTAR" tokenize --tokenizer "$tmp/sp_unigram.model" --text hi
# UNUSED pieces: merged into, then split back into the pair that formed them (resegmentation)
"$PY" - "$tmp/unused.model" "$tmp/unused.jsonl" <<'PYEOF'
import json, random, struct, sys
def v(n):
    out = b""
    while True:
        b = n & 0x7F; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def ld(field, b): return v(field << 3 | 2) + v(len(b)) + b
def piece(p, score, typ=1):
    m = ld(1, p.encode()) + v(2 << 3 | 5) + struct.pack("<f", score)
    return ld(1, m + (v(3 << 3) + v(typ) if typ != 1 else b""))
P = [("<unk>", 0, 2), ("\u2581", -1, 1), ("a", -2, 1), ("b", -3, 1), ("c", -4, 1), ("ab", -0.1, 5), ("abc", -0.2, 1),
     ("bc", -0.5, 1), ("\u2581a", -0.3, 1), ("ca", -0.15, 5), ("cab", -0.05, 1), ("\u2581ab", -0.4, 5)]
body = b"".join(piece(*x) for x in P)
body += ld(2, v(3 << 3) + v(2) + v(41 << 3) + v(2**64 - 1) + v(42 << 3) + v(2**64 - 1))  # BPE, no bos/eos
body += ld(3, ld(1, b"identity") + v(4 << 3) + v(0))
open(sys.argv[1], "wb").write(body)
random.seed(3)
texts = ["abc", "ab", "abab", "cab", "bcab"] + ["".join(random.choice("abc ") for _ in range(random.randint(0, 14))) for _ in range(1000)]
open(sys.argv[2], "w").write("".join(json.dumps(t) + "\n" for t in texts))
PYEOF
cp "$tmp/unused.jsonl" "$tmp/texts.jsonl"
enc "$tmp/unused.model" "$tmp/q_unused"
spcmp "model with UNUSED pieces (resegmentation)" "$tmp/unused.model" "$tmp/q_unused"

# random strings of whitespace, compatibility and combining characters through the normalizers
"$PY" - >"$tmp/texts.jsonl" <<'PYEOF'
import json, random
random.seed(7)
pool = list("abc xyz THE the  \t\n\r") + ["\u3000", "\u00a0", "\u2002", "\ufb00", "\ufb01", "\u2126", "\u212b", "e\u0301", "\u2460",
        "\u337f", "\uff76", "\uff9e", "\u216b", "\u200b", "\ufeff", "\u2581", "<ud>", "foo bar", "\U0001f999", "\u65e5", "\u00df", "\u0130", "\x7f", "\u0085"]
for _ in range(600): print(json.dumps("".join(random.choice(pool) for _ in range(random.randint(0, 12)))))
PYEOF
for m in bpe nfkc; do
  enc "$tmp/sp_$m.model" "$tmp/q_r$m"
  spcmp "small $m model on 600 random strings" "$tmp/sp_$m.model" "$tmp/q_r$m"
done

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "tokenize_spm: all checks passed"
