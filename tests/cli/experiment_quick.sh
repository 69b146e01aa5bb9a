#!/usr/bin/env bash
# The thinking experiment in quick mode (make experiment QUICK=1: tiny sizes,
# three seeds, every step: testbed generator, pretraining, precondition,
# Quiet-STaR main run in chunks, pause baseline, length sweep, EMA reward
# baseline, curriculum, every evaluation, report/results.json/plots), plus the
# CLI of the levers on its checkpoints:
#  - --think-when entropy>X above every entropy == --no-think, below every
#    entropy == always thinking (generate text; eval --task nll numbers);
#  - eval --task nll --think-at "A: " --n-talk 2: per-token "talk" 0/1 right
#    after each "A: ", the base prediction elsewhere;
#  - the curriculum's stages chain (stage 2 starts from stage 1's weights:
#    its first held-out NLL equals stage 1's last) with each stage's n_ahead;
#  - the EMA run's checkpoint records reward_baseline "ema";
#  - help lines and bad values (exit 2, one line).
# Needs python3 (no data from QSTAR_DATA). Env: QSTAR = path of the qstar binary.
. "$(dirname "$0")/common.bash"

"$QSTAR" train --help >"$tmp/h" 2>&1
for f in --curriculum --reward-baseline --ema-decay; do grep -q -- "$f" "$tmp/h" || fail "train --help lacks $f"; done
"$QSTAR" generate --help >"$tmp/h" 2>&1; grep -q -- "--think-when entropy>X" "$tmp/h" || fail "generate --help lacks --think-when"
"$QSTAR" eval --help >"$tmp/h" 2>&1; grep -q -- "--random-thoughts" "$tmp/h" || fail "eval --help lacks --random-thoughts"
expect_rc 2 "--think-when expects" "$QSTAR" generate --model x --think-when entropy
expect_rc 2 "--think-when expects" "$QSTAR" eval --task nll --model x --data y --think-when "entropy>1x"
expect_rc 2 "contradict --no-think" "$QSTAR" eval --task nll --model x --data y --no-think --think-when "entropy>1"
# train's bad-flag errors add a "(see qstar train --help)" line
bad_train() {
  "$QSTAR" train --model x --data y --out z "${@:2}" >/dev/null 2>"$tmp/err"; local rc=$?
  [ "$rc" -eq 2 ] && grep -qF -- "$1" "$tmp/err" || { fail "train ${*:2}: exit $rc"; cat "$tmp/err"; }
}
bad_train "--reward-baseline expects" --reward-baseline median
bad_train "--ema-decay" --ema-decay 1
expect_rc 2 "curriculum stage 1" "$QSTAR" train --model x --data y --out z --curriculum "12:4:1e-4"
expect_rc 2 "curriculum stage 2" "$QSTAR" train --model x --data y --out z --curriculum "12:4:1e-4:5,2:4:1e-4:5"
expect_rc 2 "drop --n-ahead" "$QSTAR" train --model x --data y --out z --curriculum "12:4:1e-4:5" --n-ahead 6

command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
# the testbed generator: multiplication scratch-pads and answers are arithmetic,
# the reserved Quiet-STaR pool never occurs in pretraining nor in the held-out set
gen=$here/experiments/arith/gen.py
python3 "$gen" --out "$tmp/gm" --seed 3 --op mul --digits 3 --fixed-width --reverse-answer \
  --n-pretrain 3000 --n-qstar 500 --n-test 300 --qstar-pool 200 || fail "gen.py --op mul"
python3 - "$tmp/gm" <<'PY' || fail "gen.py --op mul: wrong testbed"
import json, re, sys
d = sys.argv[1]
def problems(name):
    out = []
    for line in open("%s/%s" % (d, name)):
        out += re.findall(r"Q: (\d+)\*(\d)\nA: (\([0-9,]*\))?(\d+)\n", json.loads(line)["text"])
    return out
sets = {}
for name in ("pretrain.jsonl", "qstar.jsonl", "heldout.jsonl"):
    ps = problems(name)
    assert ps, name
    for a, b, scr, ans in ps:
        a, b = int(a), int(b)
        assert 100 <= a <= 999 and 2 <= b <= 9 and ans == str(a * b)[::-1], (a, b, ans)
        if scr:  # column k: a_k*b + carry, two digits
            cols, carry = [], 0
            for c in str(a)[::-1]:
                cols.append("%02d" % (int(c) * b + carry))
                carry = (int(c) * b + carry) // 10
            assert scr == "(" + ",".join(cols) + ")", (a, b, scr)
    sets[name] = {(a, b) for a, b, _, _ in ps}
assert any(scr for _, _, scr, _ in problems("pretrain.jsonl"))
assert not any(scr for _, _, scr, _ in problems("qstar.jsonl") + problems("heldout.jsonl"))
assert len(sets["qstar.jsonl"]) <= 200 and not sets["qstar.jsonl"] & sets["pretrain.jsonl"]
assert not sets["heldout.jsonl"] & (sets["pretrain.jsonl"] | sets["qstar.jsonl"])
assert open(d + "/tokenizer.bin", "rb").read().count(b"*") == 1
PY
python3 "$gen" --out "$tmp/gx" --op mul --digits 3 --n-test 7000 --qstar-pool 500 >/dev/null 2>"$tmp/err" \
  && fail "gen.py accepted more held-out and pool problems than exist"
grep -q "only 7200 distinct problems" "$tmp/err" || { fail "gen.py error does not say why"; cat "$tmp/err"; }
out=$tmp/exp
t0=$(date +%s)
QSTAR=$QSTAR QUICK=1 OUT=$out THREADS=1 bash "$here/experiments/arith/run.sh" >"$tmp/run.log" 2>&1 \
  || { fail "make experiment QUICK=1"; tail -20 "$tmp/run.log"; }
echo "quick experiment: $(( $(date +%s) - t0 )) s"
grep -q "^seed 1: direct answer [0-9]*% (protocol [0-9]*%), after its own scratch-pad [0-9]*%: precondition \(holds\|FAILS\)" \
  "$tmp/run.log" || fail "the run does not print each seed's precondition"
for f in report.md results.json commands.sh settings.json timing.json; do [ -s "$out/$f" ] || fail "no $f"; done
grep -q '"seeds": "1,2,3"' "$out/settings.json" || fail "settings.json does not record the three seeds"
grep -q "^Wall time of \`make experiment\`: \*\*[0-9]* s" "$out/report.md" || fail "report lacks the wall time"
[ "$(grep -c "^  - thinking took off .* on \*\*[0-3] of 3 seeds\*\*" "$out/report.md")" -eq 2 ] \
  || fail "report lacks the take-off counts of both ways of thinking"
[ "$(grep -c "^  - \*\*verdict: the target margins are \(NOT \)\?met\*\*$" "$out/report.md")" -eq 2 ] \
  || fail "report lacks the verdicts of both ways of thinking"
grep -q "^## Held-out answer tokens, one thought at the answer's start" "$out/report.md" || fail "report lacks the --think-at table"
grep -q '"em_think_at"' "$out/results.json" || fail "results.json lacks the --think-at exact match"
grep -q -- '--think-at' "$out/commands.sh" || fail "commands.sh ran no --think-at evaluation"
# the verdict's margins on made-up per-seed numbers: met only when every paired margin holds (mean
# >= 10% / +5 points, the per-seed difference's interval above 0), measured in that way of thinking
python3 - "$here/experiments/arith" <<'PY' || fail "analyze.mode_checks"
import sys
sys.path.insert(0, sys.argv[1]); sys.dont_write_bytecode = True
import analyze
def per(think=(0.50, 0.55, 0.45), em=(0.60, 0.70, 0.65), ctrl=1.0, base=(1.0, 0.8, 1.2), no_em=(0.1, 0.3, 0.05)):
    out = {}
    for k in range(3):
        st = lambda t: dict(ans_base=base[k], ans_think=t, ans_gap=base[k] - t)
        main = dict(think_at=st(think[k]), pause_tokens_at=st(ctrl * base[k]), random_at=st(1.1 * base[k]),
                    em=dict(em_think_at=em[k], em_nothink=no_em[k], em_pause_tokens_at=no_em[k], em_random_at=no_em[k]))
        pause = dict(think_at=st(0.98 * base[k]), em=dict(em_think_at=no_em[k] + 0.01))
        out["seed%d" % k] = dict(variants=dict(main=main, pause=pause))
    return out
def met(p):
    agg = dict(main=dict(ans_nll_think_at=analyze.ci([v["variants"]["main"]["think_at"]["ans_think"] for v in p.values()]),
                         ans_nll_nothink=analyze.ci([v["variants"]["main"]["think_at"]["ans_base"] for v in p.values()]),
                         em_think_at=analyze.ci([v["variants"]["main"]["em"]["em_think_at"] for v in p.values()]),
                         em_nothink=analyze.ci([v["variants"]["main"]["em"]["em_nothink"] for v in p.values()]),
                         ans_nll_no_thought_tokens_at=analyze.ci([1.0]), em_pause_tokens_at=analyze.ci([0.1]),
                         ans_nll_random_thoughts_at=analyze.ci([1.0]), em_random_at=analyze.ci([0.1]),
                         paired_at=analyze.paired(p, "_at")),
               pause=dict(ans_nll_think_at=analyze.ci([1.0]), em_think_at=analyze.ci([0.1])))
    return analyze.margins_met_mode(agg, "_at")
assert met(per())
assert not met(per(think=(0.95, 0.74, 1.12)))        # about 6% lower only
assert not met(per(em=(0.12, 0.33, 0.09)))           # +3 points only
assert not met(per(ctrl=0.5))                         # a content control as good as the thoughts
assert not met(per(em=(0.9, 0.3, 0.05)))             # one seed gains 80 points, two none: interval spans 0
assert analyze.paired(per(), "") is None             # that way of thinking was not measured
PY
grep -q "^- precondition .* held on \*\*[0-3] of 3 seeds\*\*" "$out/report.md" || fail "report lacks the precondition count"
[ "$(grep -c '^| seed[1-3] | [0-9]*% | .* | \(holds\|\*\*fails\*\*\) |$' "$out/report.md")" -eq 3 ] \
  || fail "report lacks the per-seed precondition table"
grep -q "^## What the thoughts say at the answer's start" "$out/report.md" || fail "report lacks the answer-start thoughts"
# analyze.answer_start_thoughts on a hand-made token file: "Q: 12*3\nA: 63" twice, the thought before
# the first answer digit once the right scratch-pad (06,03) with gain 0.5, once wrong with gain -0.1
python3 - "$here/experiments/arith" "$tmp/toks.jsonl" <<'PY' || fail "answer_start_thoughts"
import json, sys
sys.path.insert(0, sys.argv[1]); sys.dont_write_bytecode = True
import analyze
rows = []
for thought, base, think in (("06,03", 1.0, 0.5), ("06,04", 1.0, 1.1)):
    for ch in "Q: 12*3\nA: 63\n":
        rows.append(dict(text=ch, nll_base=0.1, nll_think=0.1, mix=0.0, thought_text="zz"))
    first = len(rows) - 3  # "6"
    rows[first].update(nll_base=base, nll_think=think, thought_text=thought, mix=0.2)
with open(sys.argv[2], "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rows))
a = analyze.answer_start_thoughts(sys.argv[2], dict(op="mul", fixed_width=True, reverse_answer=True))
assert a["n"] == 2 and a["right"] == 0.5, a
assert abs(a["gain_right"] - 0.5) < 1e-9 and abs(a["gain_wrong"] + 0.1) < 1e-9 and abs(a["mix"] - 0.2) < 1e-9, a
PY
# a rerun with the same settings resumes; with other settings it is refused, naming
# the seed directory and the setting, and the finished run stays as it was
QSTAR=$QSTAR QUICK=1 OUT=$out THREADS=1 bash "$here/experiments/arith/run.sh" >"$tmp/rerun.log" 2>&1 \
  || { fail "rerun of a finished quick experiment"; tail -5 "$tmp/rerun.log"; }
before=$(cat "$out/results.json" "$out/seed1/settings.json" "$out/seed1/pretrain/ckpt/model.safetensors" | md5sum)
python3 "$here/experiments/arith/experiment.py" --qstar "$QSTAR" --out "$out" --quick --seeds 1,2,3 --set scratch_frac=0.5 \
  >/dev/null 2>"$tmp/err" && fail "experiment.py reused seed directories made with other settings"
grep -q "seed1 was made with other settings: scratch_frac 0.7 there, 0.5 now" "$tmp/err" || { fail "settings mismatch error"; cat "$tmp/err"; }
[ "$(cat "$out/results.json" "$out/seed1/settings.json" "$out/seed1/pretrain/ckpt/model.safetensors" | md5sum)" = "$before" ] \
  || fail "the refused run changed the finished one"
# the report covers the run's own seeds only, not a stray seed directory
mkdir -p "$out/seed9" && cp -r "$out/seed1/." "$out/seed9/"
python3 "$here/experiments/arith/analyze.py" --out "$out" >/dev/null 2>&1 || fail "analyze.py with a stray seed directory"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['seeds']==3 and 'seed9' not in r['per_seed']" "$out/results.json" \
  || fail "analyze.py counted a seed directory the run does not list"
rm -rf "$out/seed9"
# reproduction against another run (here itself): every mean inside, same conclusion
python3 "$here/experiments/arith/analyze.py" --out "$out" --compare "$out" >"$tmp/cmp" 2>&1 || fail "analyze.py --compare"
grep -q "^reproduction: the main run's per-seed gains: \([0-9]*\) of \1 inside each other's intervals; all means: \([0-9]*\) of \2; .*(same conclusion).*(same conclusion).*precondition held" "$tmp/cmp" \
  || { fail "self-comparison is not a reproduction"; cat "$tmp/cmp"; }
grep -q "^## Reproduction against" "$out/report.md" || fail "report lacks the reproduction section"
python3 "$here/experiments/arith/analyze.py" --out "$out" --compare "$tmp/nowhere" >/dev/null 2>"$tmp/cmp" \
  && fail "analyze.py --compare of a missing run succeeded"
grep -q "nowhere/results.json" "$tmp/cmp" || fail "analyze.py --compare error does not name the file"
grep -q "QUICK MODE" "$out/report.md" || fail "the quick report does not say it is quick"
grep -q "^## Precondition" "$out/report.md" || fail "report lacks the precondition"
if command -v gnuplot >/dev/null; then
  n=$(ls "$out"/plots/*.png 2>/dev/null | wc -l)
  [ "$n" -ge 6 ] || fail "expected 6 plots, got $n"
fi
python3 - "$out/results.json" <<'PY' || fail "results.json incomplete"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["seeds"] == 3, r["seeds"]
for v in ("main", "pause", "ema", "curriculum"):
    a = r["aggregate"][v]
    for k in ("ans_nll_nothink", "ans_nll_think", "ans_gap", "ans_gap_no_thought_tokens", "ans_gap_random_thoughts",
              "em_think", "em_nothink", "em_pause_tokens", "em_random"):
        assert a[k]["n"] == 3 and a[k]["ci95"] is not None, (v, k, a[k])
assert len(r["over_training"]) == 2 and len(r["aggregate"]["main"]["deciles_all"]) == 10
assert r["precondition"]["direct"]["n"] == 3
s = r["per_seed"]["seed1"]["variants"]["main"]
assert s["think_when_gen"][-2]["threshold"] == "always" and s["sample_thoughts"]
PY

# the levers on the quick checkpoints
CK=$out/seed1/runs/main/ckpt
P=$(printf 'Q: 12*3\nA:')
g() { "$QSTAR" generate --model "$CK" --prompt "$P" --max-tokens 24 --temperature 0.8 --seed 5 "$@" 2>/dev/null; }
g --no-think >"$tmp/g_none"; g --think >"$tmp/g_always"
g --think-when "entropy>1e9" >"$tmp/g_hi"; g --think-when "entropy>-1" >"$tmp/g_lo"
cmp -s "$tmp/g_hi" "$tmp/g_none" || fail "generate --think-when entropy>1e9 differs from --no-think"
cmp -s "$tmp/g_lo" "$tmp/g_always" || fail "generate --think-when entropy>-1 differs from --think"
"$QSTAR" generate --model "$CK" --prompt "$P" --max-tokens 24 --seed 5 --think-when "entropy>1e9" 2>"$tmp/e" >/dev/null
grep -q "^thoughts: 0 of" "$tmp/e" || { fail "no 'thoughts: 0 of N' line"; cat "$tmp/e"; }
H=$out/seed1/heldout_small.jsonl
e() { "$QSTAR" eval --task nll --model "$CK" --data "$H" --seq-len 32 --seed 3 "$@" 2>/dev/null; }
e >"$tmp/e_always"; e --think-when "entropy>-1" >"$tmp/e_lo"; e --think-when "entropy>1e9" >"$tmp/e_hi"
grep '^all tokens' "$tmp/e_always" >"$tmp/a1"; grep '^all tokens' "$tmp/e_lo" >"$tmp/a2"
cmp -s "$tmp/a1" "$tmp/a2" || fail "eval --think-when entropy>-1 differs from always thinking"
awk '/^all tokens/ { if ($3 != $4 || $5 + 0 != 0) exit 1 }' "$tmp/e_hi" || fail "eval --think-when entropy>1e9: think != base"
grep -q "^thought gain (base - think): .*95% interval" "$tmp/e_always" || fail "eval prints no gain interval"
grep -q "^thought gain: .*noise" "$tmp/e_always" || fail "eval does not say whether the gain is within noise"
# --think-at "A: " (thoughts before the answer only): the next 2 tokens are scored from that thought's talk
# passes 0 and 1, every other token from the base prediction; anchors from the token texts (BOS adds no text)
e --think-at "A: " --n-talk 2 --tokens-out "$tmp/at.jsonl" >"$tmp/e_at" || fail "eval --think-at"
grep -q '^thinking: a sampled thought after each "A: ", the next 2 tokens from its talk passes; [0-9.]*% of tokens scored after a thought$' \
  "$tmp/e_at" || { fail "eval --think-at: no 'thinking: a sampled thought after each' line"; cat "$tmp/e_at"; }
python3 - "$tmp/at.jsonl" <<'PYEOF' || fail "eval --think-at per-token records"
import json, sys
wins = {}
for r in map(json.loads, open(sys.argv[1])): wins.setdefault(r["window"], {})[r["pos"]] = r
n = [0, 0, 0]
for w, recs in wins.items():
    # text: of positions 1..p-1 (position 0 has no record), lens[q]: its length through q; whether q is
    # an anchor is known once lens[q] >= 3, and p's talk once that holds for p-2 (or an anchor is found)
    text, last, lens = "", None, {0: 0}
    for p in sorted(recs):
        r = recs[p]
        k = p - 1 - last if last is not None and p - 1 - last < 2 else -1
        if k >= 0 or lens.get(max(p - 2, 0), 0) >= 3:
            assert r["talk"] == k, (w, p, r["talk"], k, text[-12:])
        assert r["thought_on"] == (r["talk"] >= 0), (w, p)
        if r["talk"] < 0: assert r["nll_think"] == r["nll_base"] and r["mix"] == 0, (w, p)
        n[r["talk"] + 1] += 1
        piece = "" if r["text"] in ("\n<s>\n", "\n</s>\n") else r["text"]
        text += piece
        lens[p] = len(text)
        if piece and text.endswith("A: "): last = p
assert n[1] > 5 and n[2] > 5 and n[0] > n[1], n
PYEOF
# curriculum: stage 2 starts where stage 1 ended, each with its own n_ahead
C=$out/seed1/runs/curriculum
grep -q '"n_ahead":[[:space:]]*5' "$C/stage1/ckpt/config.json" || fail "curriculum stage 1 is not n_ahead 5"
grep -q '"n_ahead":[[:space:]]*8' "$C/stage2/ckpt/config.json" || fail "curriculum last stage is not n_ahead 8"
last1=$(grep '"type":"eval"' "$C/stage1/log.jsonl" | tail -1 | sed 's/.*"val_nll":\([^,]*\),.*/\1/')
first2=$(grep '"type":"eval"' "$C/stage2/log.jsonl" | head -1 | sed 's/.*"val_nll":\([^,]*\),.*/\1/')
[ -n "$last1" ] && [ "$last1" = "$first2" ] || fail "curriculum stage 2 did not start from stage 1 ($last1 vs $first2)"
grep -q '"thought_init_end":[[:space:]]*")"' "$CK/config.json" || fail "main run's checkpoint lacks thought_init_end"
grep -q '"reward_baseline":[[:space:]]*"ema"' "$out/seed1/runs/ema/ckpt/config.json" || fail "EMA run's checkpoint lacks reward_baseline ema"
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "experiment_quick: all checks passed"
