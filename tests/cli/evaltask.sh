#!/usr/bin/env bash
# CLI test of `qstar eval --task gsm8k|csqa|nll` (SPEC section 5) on a small
# Quiet-STaR checkpoint made in a temp dir from stories260K: with and without
# thoughts on the first examples, the JSON results (task, n, accuracy = mean
# of the per-example scores, exact_match, think, n_ahead), --limit N giving the
# first N of a longer run, the NLL table and per-token output, bad input;
# --think-at STR [--n-talk K]: thoughts only after STR, the next K tokens
# scored from talk passes 0..K-1 (per-token "talk"), talk 0 equal to always
# thinking's record, the rest the base prediction.
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

# --- no data needed -------------------------------------------------------------
"$QSTAR" eval --help >"$tmp/out" 2>&1 && grep -q -- "--task gsm8k" "$tmp/out" || fail "eval --help lacks --task"
expect_rc 2 "--task expects gsm8k, csqa or nll" "$QSTAR" eval --task bogus --model x
expect_rc 2 "--model is required" "$QSTAR" eval --task csqa
expect_rc 2 "--task nll needs --data" "$QSTAR" eval --task nll --model x
expect_rc 2 "--limit" "$QSTAR" eval --task csqa --model x --limit 0
expect_rc 2 "for --task nll" "$QSTAR" eval --task csqa --model x --tokens-out y
expect_rc 2 "contradict --no-think" "$QSTAR" eval --task csqa --model x --no-think --n-ahead 8
expect_rc 2 "unknown option '--bogus'" "$QSTAR" eval --task gsm8k --model x --bogus
expect_rc 2 "--n-talk is for --think-at" "$QSTAR" eval --task nll --model x --data y --n-talk 3
expect_rc 2 "--think-at and --think-when exclude each other" "$QSTAR" eval --task nll --model x --data y --think-at "A: " --think-when "entropy>1"
expect_rc 2 "contradict --no-think" "$QSTAR" eval --task nll --model x --data y --think-at "A: " --no-think
expect_rc 2 "--think-at needs a non-empty text" "$QSTAR" eval --task nll --model x --data y --think-at ""
expect_rc 2 "are for --task nll" "$QSTAR" eval --task csqa --model x --think-at "A: "
expect_rc 2 "--n-talk" "$QSTAR" eval --task nll --model x --data y --think-at "A: " --n-talk 0
expect_rc 2 "--n-talk" "$QSTAR" eval --task nll --model x --data y --think-at "A: " --n-talk 65

need_data "evaluation" stories260K/stories260K.bin gsm8k/test.jsonl csqa/dev_rand_split.jsonl
CK=$tmp/ck
qs_checkpoint "$CK"

for task in gsm8k csqa; do
  for th in --think --no-think; do
    if ! "$QSTAR" eval --task "$task" --model "$CK" $th --limit 5 --seed 3 --out "$tmp/$task$th.json" >"$tmp/out" 2>"$tmp/err"; then
      fail "eval --task $task $th"; cat "$tmp/err"; continue
    fi
    grep -q "^paper score (mean product of the restricted answer-token probabilities, the paper's metric): 0\.[0-9]* (uniform chance 0\.[0-9]*)$" "$tmp/out" || { fail "$task $th: no paper score line"; cat "$tmp/out"; }
    grep -q "^\(letter-only\|first-digit\) probability (restricted, first answer token alone): 0\.[0-9]* (uniform chance 0\.[0-9]*)$" "$tmp/out" || fail "$task $th: no letter-only line"
    grep -q "^exact match (restricted argmax right at every answer token): [01]\.[0-9]*$" "$tmp/out" || fail "$task $th: no exact match line"
    grep -q "accuracy" "$tmp/out" && fail "$task $th: the paper score is still called accuracy"
  done
  # the default data path is $QSTAR_DATA/...
  "$QSTAR" eval --task "$task" --model "$CK" --limit 7 --seed 3 --out "$tmp/$task-7.json" >/dev/null 2>&1 ||
    fail "eval --task $task with the default data"
done
if command -v "$PY" >/dev/null 2>&1; then
  "$PY" - "$tmp" <<'EOF' || fail "JSON results"
import json, sys, math
d = sys.argv[1]
bad = 0
def check(cond, msg):
    global bad
    if not cond:
        print("  JSON:", msg); bad += 1
for task in ("gsm8k", "csqa"):
    r = {}
    for th in ("--think", "--no-think"):
        j = json.load(open(f"{d}/{task}{th}.json"))
        r[th] = j
        check(j["task"] == task, f"{task}{th}: task {j['task']}")
        check(j["n"] == 5 and len(j["examples"]) == 5, f"{task}{th}: n {j['n']}")
        check(j["think"] == (th == "--think"), f"{task}{th}: think flag")
        check((j["n_ahead"] == 6) if th == "--think" else j["n_ahead"] is None, f"{task}{th}: n_ahead {j['n_ahead']}")
        s = [e["score"] for e in j["examples"]]
        check(all(0 <= x <= 1 for x in s), f"{task}{th}: scores out of [0,1]")
        check(abs(sum(s) / 5 - j["accuracy"]) < 1e-9, f"{task}{th}: accuracy is not the mean score")
        check(j["paper_score"] == j["accuracy"], f"{task}{th}: paper_score")
        # uniform chance: (1/n_valid)^n_answer_tokens averaged; the valid set holds at least the 6 or 11 characters
        nv = 6 if task == "csqa" else 11
        check(0 < j["first_token_chance"] <= 1 / nv, f"{task}{th}: first_token_chance {j['first_token_chance']}")
        want = sum(j["first_token_chance"] ** len(e["token_probs"]) for e in j["examples"]) / 5
        check(abs(j["paper_score_chance"] - want) < 1e-12, f"{task}{th}: paper_score_chance {j['paper_score_chance']} != {want}")
        check(abs(sum(e["exact"] for e in j["examples"]) / 5 - j["exact_match"]) < 1e-9, f"{task}{th}: exact_match")
        for e in j["examples"]:
            p = 1.0
            for x in e["token_probs"]: p *= x
            check(abs(p - e["score"]) <= 1e-9 * max(p, 1e-300) + 1e-300, f"{task}{th}: score != product of token probs")
            check(len(e["token_probs"]) == (2 if task == "csqa" else len(e["answer"]) + 1), f"{task}{th}: answer tokens {e}")
    # thoughts change the scores of this checkpoint (non-zero talk head)
    check(any(abs(a["score"] - b["score"]) > 1e-12 for a, b in zip(r["--think"]["examples"], r["--no-think"]["examples"])),
          f"{task}: thoughts changed nothing")
    # --limit 5 scores the first 5 of a longer run identically (per-example thought streams)
    j7 = json.load(open(f"{d}/{task}-7.json"))
    check(j7["n"] == 7 and j7["think"], f"{task}: default run")
    check([e["score"] for e in j7["examples"][:5]] == [e["score"] for e in r["--think"]["examples"]], f"{task}: --limit 5 != first 5 of 7")
sys.exit(1 if bad else 0)
EOF
else
  echo "SKIP: $PY not found; JSON checks not run"
fi
# the default of a plain model is no thoughts; --think on it is an error
"$QSTAR" eval --task csqa --model "$BIN" --tokenizer "$TOK" --limit 3 >"$tmp/out" 2>/dev/null || fail "csqa on a plain model"
grep -q "thoughts: off" "$tmp/out" || fail "a plain model should be evaluated without thoughts"
expect_rc 1 "Quiet-STaR" "$QSTAR" eval --task csqa --model "$BIN" --tokenizer "$TOK" --think --limit 3
# a bad record names file and line
printf '{"question": "q", "answer": "#### 1"}\n{"question": "no answer"}\n' >"$tmp/bad.jsonl"
expect_rc 1 "bad.jsonl:2:" "$QSTAR" eval --task gsm8k --model "$CK" --data "$tmp/bad.jsonl"
expect_rc 1 "$tmp/none.jsonl" "$QSTAR" eval --task gsm8k --model "$CK" --data "$tmp/none.jsonl"

# --- nll with and without thoughts --------------------------------------------
if [ -f "$QSTAR_DATA/tinystories/valid.txt" ]; then
  head -n 40 "$QSTAR_DATA/tinystories/valid.txt" >"$tmp/v.txt"
  if "$QSTAR" eval --task nll --model "$CK" --data "$tmp/v.txt" --seq-len 128 --tokens-out "$tmp/tok.jsonl" \
       --out "$tmp/nll.json" >"$tmp/out" 2>"$tmp/err"; then
    grep -q "^NLL (nats) *base *think *gain$" "$tmp/out" || fail "nll table header: $(cat "$tmp/out")"
    for row in "all tokens" "hardest 20%" "hardest 10%"; do
      grep -q "^$row  *[0-9.]*  *[0-9.]*  *[-+][0-9.]*$" "$tmp/out" || { fail "nll table lacks '$row'"; cat "$tmp/out"; }
      # one sign convention: gain = base - think (positive = the thoughts help)
      awk -v r="$row" 'index($0, r) == 1 { n = split($0, f, " +"); d = f[n-2] - f[n-1] - f[n]; exit !(d < 1e-4 && d > -1e-4) }' \
        "$tmp/out" || fail "'$row': gain is not base - think: $(grep "^$row" "$tmp/out")"
    done
    "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(abs(j['gain']-(j['nll_base']-j['nll_think']))>1e-12)" \
      "$tmp/nll.json" 2>/dev/null || fail "JSON gain is not nll_base - nll_think"
    n=$(sed -n 's/^tokens: \([0-9]*\) .*/\1/p' "$tmp/out")
    [ -n "$n" ] && [ "$(wc -l <"$tmp/tok.jsonl")" -eq "$n" ] || fail "--tokens-out has not one line per token ($n)"
    head -n 1 "$tmp/tok.jsonl" | grep -q '"nll_think":.*"thought":\[' || fail "--tokens-out lacks thoughts"
  else
    fail "eval --task nll"; cat "$tmp/err"
  fi
  # without thoughts the base NLL is the plain eval's
  "$QSTAR" eval --task nll --model "$CK" --data "$tmp/v.txt" --seq-len 128 --no-think >"$tmp/out2" 2>/dev/null || fail "nll --no-think"
  a=$(sed -n 's/^all tokens *\([0-9.]*\) .*/\1/p' "$tmp/out2")
  b=$("$QSTAR" eval --model "$BIN" --tokenizer "$TOK" --data "$tmp/v.txt" --seq-len 128 2>/dev/null | sed -n 's/^nll: \([0-9.]*\) .*/\1/p')
  [ -n "$a" ] && [ "$a" = "$b" ] || fail "nll --no-think ($a) != plain eval ($b)"
  # `eval --data` and `eval --task nll` run one function: the same model and file give the same NLL
  # and token count (batch sizes differ: 4096/T vs 1024/T thinking, here both given)
  for T in 128 40; do
    p=$("$QSTAR" eval --model "$CK" --data "$tmp/v.txt" --seq-len $T --batch 3 2>/dev/null)
    t=$("$QSTAR" eval --task nll --model "$CK" --data "$tmp/v.txt" --seq-len $T --batch 5 --no-think 2>/dev/null)
    pn=$(sed -n 's/^nll: \([0-9.]*\) .*/\1/p' <<<"$p"); tn=$(sed -n 's/^all tokens *\([0-9.]*\) .*/\1/p' <<<"$t")
    pc=$(sed -n 's/^tokens: \([0-9]*\)$/\1/p' <<<"$p"); tc=$(sed -n 's/^tokens: \([0-9]*\) .*/\1/p' <<<"$t")
    [ -n "$pn" ] && [ "$pn" = "$tn" ] && [ -n "$pc" ] && [ "$pc" = "$tc" ] ||
      fail "T=$T: eval --data ($pn, $pc tokens) != eval --task nll --no-think ($tn, $tc tokens)"
  done
  c=$(sed -n 's/^all tokens *\([0-9.]*\) .*/\1/p' "$tmp/out")
  [ "$a" = "$c" ] || fail "base NLL with thoughts ($c) != without ($a)"
  # --think-at ".": a thought after each ".", the next 2 tokens scored from its talk passes 0 and 1; the
  # same seed and batches sample the same thoughts as always thinking ($tmp/tok.jsonl), so talk 0 is its record
  if "$QSTAR" eval --task nll --model "$CK" --data "$tmp/v.txt" --seq-len 128 --think-at . --n-talk 2 \
       --tokens-out "$tmp/at.jsonl" --out "$tmp/at.json" >"$tmp/out3" 2>"$tmp/err"; then
    frac=$(sed -n 's/^thinking: a sampled thought after each "\.", the next 2 tokens from its talk passes; \([0-9.]*\)% of tokens scored after a thought$/\1/p' "$tmp/out3")
    [ -n "$frac" ] || { fail "--think-at: no 'thinking: a sampled thought after each' line"; cat "$tmp/out3"; }
    c3=$(sed -n 's/^all tokens *\([0-9.]*\) .*/\1/p' "$tmp/out3")
    [ "$a" = "$c3" ] || fail "--think-at: base NLL ($c3) != without thoughts ($a)"
    "$PY" - "$tmp/at.jsonl" "$tmp/tok.jsonl" "$tmp/at.json" "${frac:-nan}" <<'PYEOF' || fail "--think-at per-token records"
import json, sys
at = [json.loads(l) for l in open(sys.argv[1])]
alw = {(r["window"], r["pos"]): r for r in map(json.loads, open(sys.argv[2]))}
res = json.load(open(sys.argv[3]))
bad = []
def check(cond, msg):
    if not cond and len(bad) < 10: bad.append(msg)
check(len(at) == len(alw) == res["n"], "record counts %d %d %d" % (len(at), len(alw), res["n"]))
check(res["think_at"] == "." and res["n_talk"] == 2, "results JSON think_at/n_talk")
check(all(r["talk"] == 0 and r["thought_on"] for r in alw.values()), "always thinking: talk 0 everywhere")
# the anchors from the token texts: a position whose text ends with "." (position 0 of a window has no
# record: it is an anchor when position 1 is talk 0); each record's talk = positions since the last
# anchor, when below 2; -1 and the base prediction otherwise
wins = {}
for r in at: wins.setdefault(r["window"], {})[r["pos"]] = r
n_on = n_k0 = 0
for w, recs in wins.items():
    last = 0 if 1 in recs and recs[1]["talk"] == 0 else None
    for p in sorted(recs):
        r = recs[p]
        k = p - 1 - last if last is not None and p - 1 - last < 2 else -1
        check(r["talk"] == k, "window %d pos %d: talk %s, want %d" % (w, p, r["talk"], k))
        check(r["thought_on"] == (k >= 0), "window %d pos %d: thought_on" % (w, p))
        check(r["nll_base"] == alw[(w, p)]["nll_base"], "window %d pos %d: nll_base" % (w, p))
        if k < 0:
            check(r["nll_think"] == r["nll_base"] and r["mix"] == 0, "window %d pos %d: not the base prediction" % (w, p))
        else:
            n_on += 1
            # one thought for the anchor's tokens; talk 0 is always thinking's record at that position
            if p - k in recs: check(r["thought"] == recs[p - k]["thought"], "window %d pos %d: thought" % (w, p))
            if k == 0:
                a, n_k0 = alw[(w, p)], n_k0 + 1
                check(r["nll_think"] == a["nll_think"] and r["mix"] == a["mix"] and r["thought"] == a["thought"],
                      "window %d pos %d: talk 0 differs from always thinking" % (w, p))
        if r["text"].endswith("."): last = p
check(n_k0 > 20 and n_on > n_k0, "only %d anchors, %d tokens after them" % (n_k0, n_on))
check(abs(100.0 * n_on / len(at) - float(sys.argv[4])) < 0.051, "printed %s%% of tokens, counted %d of %d" % (sys.argv[4], n_on, len(at)))
check(abs(res["think_frac"] - n_on / len(at)) < 1e-12, "think_frac %s" % res["think_frac"])
for b in bad: print("  think-at:", b)
sys.exit(1 if bad else 0)
PYEOF
  else
    fail "eval --task nll --think-at"; cat "$tmp/err"
  fi
  # generate --think-at ".": the prompt ends with ".", so the first two generated tokens come from one
  # thought (its end, then its talk pass 1), shown twice; every thought follows a "."
  if "$QSTAR" generate --model "$CK" --prompt "Lily went home." --max-tokens 60 --seed 5 --think-at . --n-talk 2 \
       --show-thoughts >"$tmp/gat" 2>"$tmp/gerr"; then
    "$PY" - "$tmp/gat" "$tmp/gerr" <<'PYEOF' || fail "generate --think-at"
import re, sys
out, err = open(sys.argv[1]).read(), open(sys.argv[2]).read()
k, n = map(int, re.search(r"^thoughts: (\d+) of (\d+) generated tokens$", err, re.M).groups())
assert out.startswith("Lily went home.["), out[:80]
parts = re.findall(r"\[([^\]]*)\]", out)
assert len(parts) == k and 2 <= k < n, (k, n, len(parts))
assert parts[0] == parts[1], parts[:2]
# a thought is new right after a "." (talk 0) or repeats the one before it (its talk pass 1); after every
# "." that is followed by more text comes a thought
prev = None
for m in re.finditer(r"\[([^\]]*)\]", out):
    before = re.sub(r"\[[^\]]*\]", "", out[:m.start()])
    assert before.endswith(".") or m.group(1) == prev, (before[-30:], m.group(1), prev)
    prev = m.group(1)
assert re.search(r"\.[^\[]", out.rstrip("\n")) is None, out
PYEOF
  else
    fail "generate --think-at"; cat "$tmp/gerr"
  fi
fi
expect_rc 2 "--n-talk is for --think-at" "$QSTAR" generate --model x --n-talk 3
expect_rc 2 "--think-at and --think-when exclude each other" "$QSTAR" generate --model x --think-at "A: " --think-when "entropy>1"
expect_rc 2 "need thinking" "$QSTAR" generate --model x --think-at "A: " --no-think
expect_rc 2 "--think-at needs a non-empty text" "$QSTAR" generate --model x --think-at ""

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "evaltask: all checks passed"
