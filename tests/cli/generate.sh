#!/usr/bin/env bash
# CLI test of `qstar generate`: greedy output of stories260K equals llama2.c's
# run.c token for token (expected texts below were produced by run.c built from
# karpathy/llama2.c, `./run stories260K.bin -z tok512.bin -t 0.0 -n N -i PROMPT`),
# sampling is deterministic for a seed, and bad input gives the right exit codes.
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

# --- checks that need no data ------------------------------------------------
"$QSTAR" generate --help >"$tmp/out" 2>&1 && grep -q "usage: qstar generate" "$tmp/out" || fail "generate --help"
expect_rc 2 "--model is required" "$QSTAR" generate
expect_rc 2 "unknown option '--bogus'" "$QSTAR" generate --model x --bogus
expect_rc 2 "--temperature" "$QSTAR" generate --model x --temperature -1
expect_rc 2 "--max-tokens" "$QSTAR" generate --model x --max-tokens abc
expect_rc 2 "--top-p" "$QSTAR" generate --model x --top-p 1.5
expect_rc 2 "--seed" "$QSTAR" generate --model x --seed
expect_rc 1 "$tmp/no-such-model" "$QSTAR" generate --model "$tmp/no-such-model"

need_data "stories260K generation" stories260K/stories260K.bin
M=$QSTAR_DATA/stories260K
BIN=$M/stories260K.bin
TOK=$M/tok512.bin

# check_text NAME EXPECTED ARGS...: greedy generation must print EXPECTED exactly
check_text() {
  local name=$1 want=$2; shift 2
  printf '%s\n' "$want" >"$tmp/want"
  if ! "$QSTAR" generate --model "$BIN" --tokenizer "$TOK" --temperature 0 "$@" >"$tmp/got" 2>"$tmp/err"; then
    fail "$name: generate failed"; cat "$tmp/err"; return
  fi
  if ! cmp -s "$tmp/want" "$tmp/got"; then fail "$name: output differs from run.c"; diff -u "$tmp/want" "$tmp/got"; fi
  grep -q "^achieved tok/s: " "$tmp/err" || fail "$name: no 'achieved tok/s' on stderr"
}

# --- greedy texts from run.c --------------------------------------------------
# run.c with no prompt, -n 256 (also the text in stories260K.md)
EMPTY=$(cat <<'EXPECTED'
Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find it."
Lily was sad and didn't know what to do. She said, "I'm sorry, Lily. I didn't know what to do."
Lily didn't want to help her mom, so she said, "I'm sorry, mom. I didn't know what to do." Her mom said, "Don't worry, Lily. We can help you.
EXPECTED
)
# -n 256 -i "Tom had a red"
TOM=$(cat <<'EXPECTED'
Tom had a red ball. He liked to play with his toys. He liked to play with his toys. He liked to play with his toys. One day, he saw a big ball. He wanted to play with it.
Tom wanted to play with the ball. He wanted to play with the ball. He wanted to play with the ball. He put the ball in the ball and put it in the ball. He put it on his ball and put it in the ball.
Tom was sad. He wanted to play with the ball. He wanted to play with the ball. He thought it was a ball. He wanted to play with the ball. He thought it was a ball. He wanted to play with the ball.
Tom said, "I want to play with the ball. I will find it."
Tom and the ball went to the ball. They saw a big ball. They were happy. They wanted to play with
EXPECTED
)
# -n 256 -i "The cat"
CAT=$(cat <<'EXPECTED'
The cat and a boy were playing in the park. They liked to play with their toys and run around the park. They liked to play with their toys and seek.
One day, a little boy named Tim came to the park. He saw a big box with a big box. Tim wanted to play with the box. He said, "I want to play with it!"
Tim said, "Yes, I can play with you." They played together and had fun. Tim was happy to have a new friend.
Tim and his friends played together. They played together every day. They had lots of fun. Tim and the boy were happy. They played together every day.
EXPECTED
)
# -n 128 -i "Lily and Ben went to the beach. They saw a big"
BEACH=$(cat <<'EXPECTED'
Lily and Ben went to the beach. They saw a big box with a big box. They wanted to play with it. They wanted to play with the box. They wanted to play with the box.
"Look, Ben, I found a box. It is a big box." Lily said.
"OK, it is not a box. It is a box. It is a box. It is not a
EXPECTED
)
# -n 64 -i "Tom had a red <U+1F388 balloon emoji> and <e-acute>" (byte-fallback tokens; run.c's
# safe_printf drops the unprintable single bytes of the emoji)
UNI=$(cat <<'EXPECTED'
Tom had a red  and é. He was very small and scared. He wanted to see whatter. He wanted to see whatter the rest.
Tom said, "L
EXPECTED
)

check_text empty "$EMPTY" --max-tokens 256
check_text default-steps "$EMPTY"
check_text tom "$TOM" --prompt "Tom had a red" --max-tokens 256
check_text cat "$CAT" --prompt "The cat" --max-tokens 256
check_text beach "$BEACH" --prompt "Lily and Ben went to the beach. They saw a big" --max-tokens 128
check_text unicode "$UNI" --prompt "Tom had a red $(printf '\360\237\216\210') and $(printf '\303\251')" --max-tokens 64

# the README's greedy block of stories260K.md agrees with run.c's text above
if [ -f "$M/stories260K.md" ]; then
  awk '/-t 0.0$/{f=1; next} f && /^```/{exit} f' "$M/stories260K.md" >"$tmp/md"
  printf '%s\n' "$EMPTY" | cmp -s - "$tmp/md" || { fail "stories260K.md greedy block differs"; printf '%s\n' "$EMPTY" | diff -u "$tmp/md" -; }
fi

# --- sampling: deterministic per seed ----------------------------------------
g() { "$QSTAR" generate --model "$BIN" --tokenizer "$TOK" --max-tokens 80 "$@" 2>/dev/null; }
a=$(g --seed 7) || fail "sampled generate failed"
b=$(g --seed 7)
c=$(g --seed 8)
d=$(g --seed 7 --temperature 0.8 --top-p 0.5)
[ "$a" = "$b" ] || fail "same seed gave different text"
[ "$a" != "$c" ] || fail "different seeds gave the same text"
[ "$a" != "$d" ] || fail "different temperature/top-p gave the same text"
[ -n "$a" ] || fail "sampled text is empty"
# --max-tokens larger than max_seq_len is clamped (like run.c)
"$QSTAR" generate --model "$BIN" --tokenizer "$TOK" --temperature 0 --max-tokens 100000 >/dev/null 2>&1 || fail "--max-tokens 100000"

# --- bad files -------------------------------------------------------------------
expect_rc 1 "tokenizer" "$QSTAR" generate --model "$BIN"
expect_rc 1 "$tmp/no-tok.bin" "$QSTAR" generate --model "$BIN" --tokenizer "$tmp/no-tok.bin"
head -c 5000 "$BIN" >"$tmp/trunc.bin"
expect_rc 1 "$tmp/trunc.bin" "$QSTAR" generate --model "$tmp/trunc.bin" --tokenizer "$TOK"
head -c 20 "$BIN" >"$tmp/short.bin"
expect_rc 1 "$tmp/short.bin" "$QSTAR" generate --model "$tmp/short.bin" --tokenizer "$TOK"
head -c 1000 "$TOK" >"$tmp/trunc-tok.bin"
expect_rc 1 "$tmp/trunc-tok.bin" "$QSTAR" generate --model "$BIN" --tokenizer "$tmp/trunc-tok.bin"
mkdir -p "$tmp/emptydir"
expect_rc 1 "$tmp/emptydir" "$QSTAR" generate --model "$tmp/emptydir" --tokenizer "$TOK"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "generate: all checks passed"
