#!/usr/bin/env bash
# CLI test of `qstar convert`: stories260K.bin + tok512.bin -> a qstar model
# directory that generates and evaluates exactly like the .bin (greedy text,
# seeded samples, NLL); the tokenizer is copied byte for byte; converting the
# directory again reproduces the same files; bad input gives the right exit codes.
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

# --- checks that need no data ------------------------------------------------
"$QSTAR" convert --help >"$tmp/out" 2>&1 && grep -q "usage: qstar convert" "$tmp/out" || fail "convert --help"
expect_rc 2 "--model is required" "$QSTAR" convert --out "$tmp/o"
expect_rc 2 "--out is required" "$QSTAR" convert --model x
expect_rc 2 "--out needs a value" "$QSTAR" convert --model x --out
expect_rc 2 "unknown option '--bogus'" "$QSTAR" convert --model x --out "$tmp/o" --bogus
expect_rc 1 "$tmp/no-such-model.bin" "$QSTAR" convert --model "$tmp/no-such-model.bin" --out "$tmp/o"
[ ! -e "$tmp/o" ] || fail "a failed convert created its output directory"

need_data "conversion" stories260K/stories260K.bin
M=$QSTAR_DATA/stories260K
BIN=$M/stories260K.bin
TOK=$M/tok512.bin
D=$tmp/stories260K

"$QSTAR" convert --model "$BIN" --tokenizer "$TOK" --out "$D" 2>"$tmp/err" || { fail "convert"; cat "$tmp/err"; }
for f in config.json model.safetensors tokenizer.bin; do [ -s "$D/$f" ] || fail "$D/$f missing"; done
cmp -s "$TOK" "$D/tokenizer.bin" || fail "tokenizer.bin is not a byte copy of tok512.bin"
ls "$D" | grep -q '\.tmp$' && fail "temporary files left in $D"
grep -q '"LlamaForCausalLM"' "$D/config.json" || fail "config.json lacks LlamaForCausalLM"

# same text from the directory (tokenizer found inside) as from the .bin
same_gen() {
  local name=$1; shift
  "$QSTAR" generate --model "$BIN" --tokenizer "$TOK" "$@" >"$tmp/a" 2>/dev/null || fail "$name: generate from .bin"
  "$QSTAR" generate --model "$D" "$@" >"$tmp/b" 2>"$tmp/err" || { fail "$name: generate from dir"; cat "$tmp/err"; }
  [ -s "$tmp/a" ] || fail "$name: empty output"
  cmp -s "$tmp/a" "$tmp/b" || { fail "$name: directory and .bin differ"; diff -u "$tmp/a" "$tmp/b"; }
}
same_gen greedy --temperature 0 --max-tokens 256
same_gen greedy-prompt --temperature 0 --prompt "Tom had a red" --max-tokens 256
same_gen sampled --temperature 1 --top-p 0.9 --seed 42 --max-tokens 200

# same NLL from the directory as from the .bin
if [ -f "$QSTAR_DATA/tinystories/valid.txt" ]; then
  head -n 100 "$QSTAR_DATA/tinystories/valid.txt" >"$tmp/v.txt"
  a=$("$QSTAR" eval --model "$BIN" --tokenizer "$TOK" --data "$tmp/v.txt" --seq-len 256 2>/dev/null) || fail "eval .bin"
  b=$("$QSTAR" eval --model "$D" --data "$tmp/v.txt" --seq-len 256 2>/dev/null) || fail "eval dir"
  [ -n "$a" ] && [ "$a" = "$b" ] || { fail "eval: directory and .bin differ"; echo "$a"; echo "$b"; }
fi

# directory -> directory: identical files (its own tokenizer.bin is used)
"$QSTAR" convert --model "$D" --out "$tmp/again" 2>"$tmp/err" || { fail "convert dir -> dir"; cat "$tmp/err"; }
for f in config.json model.safetensors tokenizer.bin; do
  cmp -s "$D/$f" "$tmp/again/$f" || fail "re-converted $f differs"
done
# converting onto itself: refused without --force; with it, it keeps it intact
"$QSTAR" convert --model "$D" --out "$D" 2>"$tmp/err" && fail "convert onto itself without --force"
grep -q "$D: already holds a model directory; pass --force" "$tmp/err" || fail "convert onto itself: $(cat "$tmp/err")"
"$QSTAR" convert --model "$D" --out "$D" --force 2>/dev/null || fail "convert dir onto itself"
cmp -s "$tmp/again/model.safetensors" "$D/model.safetensors" || fail "convert onto itself changed the weights"
cmp -s "$TOK" "$D/tokenizer.bin" || fail "convert onto itself changed tokenizer.bin"

# --- bad input -------------------------------------------------------------------
expect_rc 1 "tokenizer" "$QSTAR" convert --model "$BIN" --out "$tmp/o"
expect_rc 1 "$tmp/no-tok.bin" "$QSTAR" convert --model "$BIN" --tokenizer "$tmp/no-tok.bin" --out "$tmp/o"
head -c 1000 "$TOK" >"$tmp/trunc-tok.bin"
expect_rc 1 "$tmp/trunc-tok.bin" "$QSTAR" convert --model "$BIN" --tokenizer "$tmp/trunc-tok.bin" --out "$tmp/o"
head -c 5000 "$BIN" >"$tmp/trunc.bin"
expect_rc 1 "$tmp/trunc.bin" "$QSTAR" convert --model "$tmp/trunc.bin" --tokenizer "$TOK" --out "$tmp/o"
[ ! -e "$tmp/o" ] || fail "a failed convert created its output directory"
: >"$tmp/afile"
expect_rc 1 "$tmp/afile" "$QSTAR" convert --model "$BIN" --tokenizer "$TOK" --out "$tmp/afile"
# a directory with a broken model.safetensors
mkdir -p "$tmp/broken" && cp "$D/config.json" "$D/tokenizer.bin" "$tmp/broken/"
head -c 3000 "$D/model.safetensors" >"$tmp/broken/model.safetensors"
expect_rc 1 "$tmp/broken" "$QSTAR" convert --model "$tmp/broken" --out "$tmp/o2"
expect_rc 1 "$tmp/broken" "$QSTAR" generate --model "$tmp/broken"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "convert: all checks passed"
