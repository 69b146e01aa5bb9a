#!/usr/bin/env bash
# CLI test of `qstar generate --think` (SPEC section 6) on a Quiet-STaR
# checkpoint made from stories260K with `qstar convert --add-quietstar`
# (talk head with a non-zero output layer, so that thoughts change the text):
# --show-thoughts prints the thoughts inline ([...] when piped) before the
# text, which is the same with and without --show-thoughts for a seed; meta
# tokens of a vocabulary that has them are never emitted; --think on a model
# without Quiet-STaR tensors fails with exit 1; --compare prints the overhead.
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

"$QSTAR" generate --help >"$tmp/out" 2>&1 && grep -q -- "--show-thoughts" "$tmp/out" || fail "generate --help lacks --show-thoughts"
expect_rc 2 "--n-ahead" "$QSTAR" generate --model x --n-ahead 2
expect_rc 2 "need thinking" "$QSTAR" generate --model x --no-think --show-thoughts

need_data "thinking" stories260K/stories260K.bin
CK=$tmp/ck
qs_checkpoint "$CK"
grep -q '"quietstar"' "$CK/config.json" || fail "checkpoint config.json has no quietstar block"
grep -q '"n_ahead":[[:space:]]*6' "$CK/config.json" || fail "quietstar block lacks n_ahead 6"

gen() { "$QSTAR" generate --model "$CK" --seed 7 --max-tokens 48 --prompt "Once upon a time" "$@"; }
gen --think --show-thoughts >"$tmp/shown" 2>"$tmp/err" || { fail "generate --think --show-thoughts"; cat "$tmp/err"; }
gen --think >"$tmp/plain" 2>"$tmp/err2" || { fail "generate --think"; cat "$tmp/err2"; }
gen >"$tmp/default" 2>/dev/null || fail "generate (default: think)"
gen --no-think >"$tmp/nothink" 2>/dev/null || fail "generate --no-think"
grep -q "^achieved tok/s: .*thinking" "$tmp/err" || { fail "no tok/s line for thinking"; cat "$tmp/err"; }
# one bracketed thought per generated token
n_th=$(grep -o '\[[^]]*\]' "$tmp/shown" | wc -l)
[ "$n_th" -ge 30 ] || fail "expected about 40 thoughts, got $n_th"
# removing the thoughts gives the text printed without them
sed 's/\[[^]]*\]//g' "$tmp/shown" >"$tmp/stripped"
cmp -s "$tmp/stripped" "$tmp/plain" || { fail "text differs with --show-thoughts"; diff "$tmp/stripped" "$tmp/plain" | head; }
cmp -s "$tmp/default" "$tmp/plain" || fail "a Quiet-STaR checkpoint should think by default"
grep -q "^Once upon a time" "$tmp/plain" || fail "generated text lacks the prompt"
[ "$(wc -c <"$tmp/nothink")" -gt 20 ] || fail "--no-think printed no text"
# the thought-free text of this checkpoint is stories260K's own
"$QSTAR" generate --model "$BIN" --tokenizer "$TOK" --seed 7 --max-tokens 48 --prompt "Once upon a time" >"$tmp/base" 2>/dev/null
cmp -s "$tmp/base" "$tmp/nothink" || { fail "--no-think differs from the base model"; diff "$tmp/base" "$tmp/nothink" | head -4; }

# --think on a model without Quiet-STaR tensors
expect_rc 1 "Quiet-STaR" "$QSTAR" generate --model "$BIN" --tokenizer "$TOK" --think
expect_rc 1 "Quiet-STaR" "$QSTAR" generate --model "$BIN" --tokenizer "$TOK" --show-thoughts

# --compare prints the overhead relative to the same checkpoint without thoughts
gen --compare >/dev/null 2>"$tmp/err" || fail "generate --compare"
grep -q "^thought overhead: [0-9.]*x time per token (ideal n_ahead = 6)" "$tmp/err" || { fail "no overhead line"; cat "$tmp/err"; }

# meta tokens in the vocabulary are never emitted: rename two frequent pieces
# (" the" and ".") of the tokenizer to <|startthought|> / <|endthought|>
if command -v "$PY" >/dev/null 2>&1; then
  "$PY" - "$TOK" "$tmp/meta_tok.bin" <<'EOF'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
b = open(src, 'rb').read()
mtl = struct.unpack_from('<i', b, 0)[0]
off, toks = 4, []
while off < len(b):
    score, n = struct.unpack_from('<fi', b, off); off += 8
    toks.append([score, b[off:off + n]]); off += n
for t in toks:
    if t[1] == b' the': t[1] = b'<|startthought|>'
    elif t[1] == b'.': t[1] = b'<|endthought|>'
out = [struct.pack('<i', max(mtl, 16))]
for s, p in toks: out += [struct.pack('<fi', s, len(p)), p]
open(dst, 'wb').write(b''.join(out))
EOF
  for flags in "--think --show-thoughts" "--no-think"; do
    # shellcheck disable=SC2086
    "$QSTAR" generate --model "$CK" --tokenizer "$tmp/meta_tok.bin" --seed 3 --max-tokens 120 $flags >"$tmp/meta" 2>"$tmp/err" ||
      { fail "generate with meta tokens ($flags)"; cat "$tmp/err"; }
    grep -q "thought|>" "$tmp/meta" && fail "a meta token was emitted ($flags)"
    [ "$(wc -c <"$tmp/meta")" -gt 50 ] || fail "no text with a meta-token vocabulary ($flags)"
  done
  # the same vocabulary without banning would have produced them: the plain model emits " the" and "."
  grep -q " the" "$tmp/base" || echo "note: the base text has no ' the'"
else
  echo "SKIP: $PY not found; meta-token check not run"
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "think: all checks passed"
