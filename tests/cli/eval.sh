#!/usr/bin/env bash
# CLI test of `qstar eval`: mean NLL of stories260K on TinyStories text equals
# an independent computation (llama2.c's run.c forward, one position at a time,
# over the same packed stream: paragraphs with BOS, non-overlapping windows),
# does not depend on the batch size, reads JSONL like text, and bad input gives
# the right exit codes. The whole-file evaluation (~385K tokens, 30-60 s) runs
# only with QSTAR_FULL_EVAL=1.
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

# --- checks that need no data ------------------------------------------------
"$QSTAR" eval --help >"$tmp/out" 2>&1 && grep -q "usage: qstar eval" "$tmp/out" || fail "eval --help"
expect_rc 2 "--model is required" "$QSTAR" eval --data x
expect_rc 2 "--data is required" "$QSTAR" eval --model x
expect_rc 2 "unknown option '--bogus'" "$QSTAR" eval --model x --data y --bogus
expect_rc 2 "--seq-len" "$QSTAR" eval --model x --data y --seq-len abc
expect_rc 2 "--seq-len" "$QSTAR" eval --model x --data y --seq-len 1
expect_rc 2 "--batch" "$QSTAR" eval --model x --data y --batch 0
expect_rc 2 "--limit-tokens" "$QSTAR" eval --model x --data y --limit-tokens -5
expect_rc 1 "$tmp/no-such-model" "$QSTAR" eval --model "$tmp/no-such-model" --data y

need_data "evaluation" stories260K/stories260K.bin tinystories/valid.txt
M=$QSTAR_DATA/stories260K
BIN=$M/stories260K.bin
TOK=$M/tok512.bin
VALID=$QSTAR_DATA/tinystories/valid.txt
ev() { "$QSTAR" eval --model "$BIN" --tokenizer "$TOK" "$@" 2>"$tmp/err"; }

# check_eval NAME WANT_NLL WANT_TOKENS ARGS...: exact printed values
check_eval() {
  local name=$1 nll=$2 ntok=$3; shift 3
  local got
  if ! got=$(ev "$@"); then fail "$name: eval failed"; cat "$tmp/err"; return; fi
  local want
  want=$(printf 'nll: %s nats/token\nppl: %s\ntokens: %s' "$nll" "$(awk -v x="$nll" 'BEGIN{printf "%.4f", exp(x)}')" "$ntok")
  # ppl is printed from the unrounded mean: compare nll and tokens exactly, ppl loosely
  local gn gt gp
  gn=$(printf '%s\n' "$got" | sed -n 's/^nll: \([0-9.]*\) nats\/token$/\1/p')
  gp=$(printf '%s\n' "$got" | sed -n 's/^ppl: \([0-9.]*\)$/\1/p')
  gt=$(printf '%s\n' "$got" | sed -n 's/^tokens: \([0-9]*\)$/\1/p')
  if [ "$gn" != "$nll" ] || [ "$gt" != "$ntok" ] || [ -z "$gp" ] ||
     ! awk -v p="$gp" -v n="$nll" 'BEGIN{exit !(p > exp(n - 0.0001) && p < exp(n + 0.0001))}'; then
    fail "$name: got"; printf '%s\n' "$got" | sed 's/^/    /'; echo "  want (ppl about):"; printf '%s\n' "$want" | sed 's/^/    /'
  fi
}

# Reference values from run.c's forward over the same stream (see header).
# The first 600 lines hold more than 8192 tokens; reading less keeps the test fast.
head -n 600 "$VALID" >"$tmp/head.txt"
check_eval "T=512 first 8192 tokens" 1.3922 8176 --data "$tmp/head.txt" --seq-len 512 --limit-tokens 8192
check_eval "T=128 first 5000 tokens" 1.4070 4960 --data "$tmp/head.txt" --seq-len 128 --limit-tokens 5000
check_eval "T=128 batch 1" 1.4070 4960 --data "$tmp/head.txt" --seq-len 128 --limit-tokens 5000 --batch 1
check_eval "T=128 batch 7" 1.4070 4960 --data "$tmp/head.txt" --seq-len 128 --limit-tokens 5000 --batch 7
if [ "${QSTAR_FULL_EVAL:-0}" = 1 ]; then
  check_eval "whole valid.txt, T=512" 1.6775 384202 --data "$VALID" --seq-len 512
fi

# JSONL (--field) gives the same numbers as the same documents in a text file
awk 'BEGIN{RS=""} NR<=15 {t=$0; printf "%s\n\n", t > "'"$tmp"'/p.txt";
     gsub(/\\/,"\\\\",t); gsub(/"/,"\\\"",t); gsub(/\t/,"\\t",t); gsub(/\n/,"\\n",t);
     printf "{\"id\": %d, \"story\": \"%s\"}\n", NR, t > "'"$tmp"'/p.jsonl"}' "$VALID"
a=$(ev --data "$tmp/p.txt" --seq-len 128) || fail "eval of text excerpt"
b=$(ev --data "$tmp/p.jsonl" --field story --seq-len 128) || { fail "eval of JSONL excerpt"; cat "$tmp/err"; }
[ -n "$a" ] && [ "$a" = "$b" ] || { fail "JSONL and text disagree"; echo "$a"; echo "$b"; }

# --- bad input -------------------------------------------------------------------
expect_rc 1 "$tmp/nope.txt" "$QSTAR" eval --model "$BIN" --tokenizer "$TOK" --data "$tmp/nope.txt"
printf 'good line\n\nbad \xff byte\n' >"$tmp/bad.txt"
expect_rc 1 "$tmp/bad.txt" "$QSTAR" eval --model "$BIN" --tokenizer "$TOK" --data "$tmp/bad.txt"
: >"$tmp/empty.txt"
expect_rc 1 "$tmp/empty.txt" "$QSTAR" eval --model "$BIN" --tokenizer "$TOK" --data "$tmp/empty.txt"
expect_rc 1 "$tmp/p.jsonl" "$QSTAR" eval --model "$BIN" --tokenizer "$TOK" --data "$tmp/p.jsonl" --field nosuchfield
expect_rc 2 "--seq-len 1000" "$QSTAR" eval --model "$BIN" --tokenizer "$TOK" --data "$VALID" --seq-len 1000
expect_rc 1 "tokenizer" "$QSTAR" eval --model "$BIN" --data "$VALID"
head -c 5000 "$BIN" >"$tmp/trunc.bin"
expect_rc 1 "$tmp/trunc.bin" "$QSTAR" eval --model "$tmp/trunc.bin" --tokenizer "$TOK" --data "$VALID"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "eval: all checks passed"
