#!/usr/bin/env bash
# qstar train (Quiet-STaR training): bad flags and files (exit codes,
# messages), then with $QSTAR_DATA on the stories260K model in tiny settings:
# a short run that logs every Quiet-STaR quantity (all finite, one record per
# step) and reports base and thought-mixed held-out NLL side by side; exact
# resume (20 steps == 10 + --resume 10 == SIGINT + --resume, byte-identical
# model.safetensors); a fresh run from a checkpoint keeps its learned meta
# embeddings and mixing head (and its quietstar settings under new flags);
# --preset paper sets SPEC section 4 values. Well under a minute.
. "$(dirname "$0")/train_common.bash"

# --- usage and bad flags (no data needed: rejected before anything is loaded)
echo "hello world" > "$tmp/data.txt"
no=(--model "$tmp/none.bin" --data "$tmp/data.txt" --out "$tmp/o")
expect 0 "--help" -- "$Q" train --help
[[ "$out" == *usage*--preset*--n-ahead*--n-talk* ]] || bad "--help text: $out"
expect 2 "--n-ahead 2" -- "$Q" train "${no[@]}" --n-ahead 2
[[ "$out" == *--n-ahead* ]] || bad "--n-ahead 2 message: $out"
expect 2 "--preset bogus" -- "$Q" train "${no[@]}" --preset bogus
[[ "$out" == *--preset*bogus* ]] || bad "--preset bogus message: $out"
expect 2 "--preset without value" -- "$Q" train "${no[@]}" --preset
expect 2 "--n-talk too long for --seq-len" -- "$Q" train "${no[@]}" --seq-len 8 --n-talk 7
[[ "$out" == *--seq-len*--n-talk* ]] || bad "--n-talk vs --seq-len message: $out"
expect 2 "--n-talk 0" -- "$Q" train "${no[@]}" --n-talk 0
expect 2 "--n-passes 0" -- "$Q" train "${no[@]}" --n-passes 0
expect 2 "--mixing bogus" -- "$Q" train "${no[@]}" --mixing bogus
expect 2 "--policy-beta beyond range" -- "$Q" train "${no[@]}" --policy-beta 1e13
expect 2 "unknown flag" -- "$Q" train "${no[@]}" --bogus
expect 2 "no model" -- "$Q" train --data "$tmp/data.txt" --out "$tmp/o"
expect 1 "missing model" -- "$Q" train "${no[@]}"
[[ "$out" == *none.bin* ]] || bad "missing model message does not name the file: $out"

D=${QSTAR_DATA:-}
if [ -z "$D" ] || [ ! -f "$D/stories260K/stories260K.bin" ] || [ ! -f "$D/tinystories/valid.txt" ]; then
  echo "SKIP: QSTAR_DATA is not set (or lacks stories260K/, tinystories/): training checks not run"
  [ $fail -eq 0 ] && echo "train.sh: flag checks passed"
  exit $fail
fi
MODEL=$D/stories260K/stories260K.bin
TOK=$D/stories260K/tok512.bin
head -n 1500 "$D/tinystories/valid.txt" > "$tmp/stories.txt"
m=(--model "$MODEL" --tokenizer "$TOK")

expect 1 "data file missing" -- "$Q" train "${m[@]}" --data "$tmp/nodata.txt" --out "$tmp/o"
[[ "$out" == *nodata.txt* ]] || bad "missing data message does not name the file: $out"
expect 2 "--n-talk too long for the default --seq-len" -- "$Q" train "${m[@]}" --data "$tmp/stories.txt" --out "$tmp/o" --n-talk 64 --seq-len 40
[[ "$out" == *too\ short*n-talk* ]] || bad "--n-talk 64 message: $out"
[ -e "$tmp/o" ] && bad "a rejected run created its --out directory"

# every number of every record finite (null = non-finite), one record per step
check_log() { # LOG N_STEPS N_TALK
  "$PY" - "$@" <<'EOF'
import json, math, sys
path, n, n_talk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def bad_const(c): raise ValueError(f"non-JSON constant {c}")
steps, evals = [], []
for ln, line in enumerate(open(path), 1):
    r = json.loads(line, parse_constant=bad_const)
    def walk(x, where):
        if x is None: raise ValueError(f"line {ln}: {where} is null (non-finite)")
        if isinstance(x, float) and not math.isfinite(x): raise ValueError(f"line {ln}: {where} = {x}")
        if isinstance(x, dict):
            for k, v in x.items(): walk(v, f"{where}.{k}")
        if isinstance(x, list):
            for i, v in enumerate(x): walk(v, f"{where}[{i}]")
    walk(r, "record")
    if r.get("type") == "eval":
        assert {"val_nll_base", "val_nll_think"} <= r.keys(), f"line {ln}: eval keys {sorted(r)}"
        evals.append(r)
        continue
    want = {"step", "loss", "lr", "grad_norm", "tok_per_s", "loss_lm", "loss_base", "loss_talk", "policy_loss",
            "reward_mean", "advantage_mean", "mix_mean", "mix_std", "thoughts", "skipped"}
    assert want <= r.keys(), f"line {ln}: missing {sorted(want - r.keys())}"
    assert len(r["loss_talk"]) == n_talk, f"line {ln}: loss_talk {r['loss_talk']}"
    assert r["thoughts"] and all({"row", "pos", "after", "thought"} <= t.keys() for t in r["thoughts"]), line
    assert r["skipped"] is False, f"line {ln}: skipped"
    steps.append(r["step"])
    last = r
assert steps == list(range(1, n + 1)), f"step records {steps}, want 1..{n}"
assert evals, "no eval records"
print(f"log: {len(steps)} steps, {len(evals)} evals, every value finite; last step: loss_lm {last['loss_lm']:.4f}, "
      f"loss_talk {last['loss_talk']}, thought {last['thoughts'][0]['thought']!r}; "
      f"last eval: base {evals[-1]['val_nll_base']:.4f}, think {evals[-1]['val_nll_think']:.4f}")
EOF
}

# --- (1) a short run logs every quantity, all finite; eval reports base and think NLL
tiny=(--data "$tmp/stories.txt" --batch 2 --seq-len 32 --eval-batches 2 --threads 2)
expect 0 "short run" -- "$Q" train "${m[@]}" "${tiny[@]}" --n-ahead 6 --n-talk 2 --steps 6 --eval-every 3 --print-every 2 --out "$tmp/r1"
[[ "$out" == *"n_ahead 6 (n_thought 3), n_talk 2, n_passes 2"* ]] || bad "settings line: $out"
[[ "$out" == *", beta 1 (small-model default),"* ]] || bad "the run header should say beta 1 (small-model default): $out"
[[ "$out" == *"step 6/6 | loss_lm"*"| base"*"talk"*"| reward"*"| mix"*"tok/s"* ]] || bad "progress line: $out"
grep -q "^step 6/6: held-out NLL base [0-9.]* | with thoughts [0-9.]* (gain [-+][0-9.]*)" <<< "$out" || bad "eval line: $out"
# one sign convention: gain = base - think
sed -n 's/^step 6\/6: held-out NLL base \([0-9.]*\) | with thoughts \([0-9.]*\) (gain \([-+][0-9.]*\)).*/\1 \2 \3/p' <<< "$out" |
  awk '{ d = $1 - $2 - $3; exit !(NF == 3 && d < 2e-4 && d > -2e-4) }' || bad "eval line gain is not base - think: $out"
[[ "$out" == *"steps: 6 of 6 (6 in this run, 0 skipped)"* ]] || bad "summary: $out"
check_log "$tmp/r1/log.jsonl" 6 2 || bad "log of the short run"
grep -q '"quietstar"' "$tmp/r1/ckpt/config.json" || bad "checkpoint config.json has no quietstar block"

# --- (2) exact resume: 20 steps == 10 + resume 10 == SIGINT + resume
run=("${m[@]}" "${tiny[@]}" --n-ahead 5 --n-talk 2 --steps 20 --eval-every 5 --save-every 7 --seed 5)
expect 0 "straight 20 steps" -- "$Q" train "${run[@]}" --out "$tmp/a"
expect 0 "first 10 steps" -- "$Q" train "${run[@]}" --out "$tmp/b" --stop-after 10
[[ "$out" == *"steps: 10 of 20"* ]] || bad "--stop-after 10: $out"
expect 0 "resume 10 more" -- "$Q" train --resume "$tmp/b"
[[ "$out" == *"steps: 20 of 20 (10 in this run"* ]] || bad "resume: $out"
[[ "$out" == *initialised* ]] && bad "resume re-initialised Quiet-STaR tensors: $out"
cmp "$tmp/a/ckpt/model.safetensors" "$tmp/b/ckpt/model.safetensors" || bad "20 steps != 10 + resume 10 (model)"
# the EMA reward baseline resumes exactly too: its copy of the weights is in the checkpoint
ema=("${m[@]}" "${tiny[@]}" --n-ahead 5 --n-talk 2 --n-passes 1 --reward-baseline ema --ema-decay 0.5 --steps 8
     --eval-every 0 --save-every 0 --seed 5)
expect 0 "EMA baseline: straight 8 steps" -- "$Q" train "${ema[@]}" --out "$tmp/ea"
expect 0 "EMA baseline: first 4 steps" -- "$Q" train "${ema[@]}" --out "$tmp/eb" --stop-after 4
[ -f "$tmp/eb/ckpt/ema.safetensors" ] || bad "the EMA baseline's checkpoint holds no ema.safetensors"
expect 0 "EMA baseline: resume 4 more" -- "$Q" train --resume "$tmp/eb"
[[ "$out" == *"no EMA copy"* ]] && bad "resume did not find the EMA copy: $out"
cmp "$tmp/ea/ckpt/model.safetensors" "$tmp/eb/ckpt/model.safetensors" || bad "EMA baseline: 8 steps != 4 + resume 4 (model)"
cmp "$tmp/ea/ckpt/ema.safetensors" "$tmp/eb/ckpt/ema.safetensors" || bad "EMA baseline: 8 steps != 4 + resume 4 (EMA copy)"
cmp "$tmp/a/ckpt/train_state.safetensors" "$tmp/b/ckpt/train_state.safetensors" || bad "20 steps != 10 + resume 10 (state)"
check_log "$tmp/b/log.jsonl" 20 2 > /dev/null || bad "log of the resumed run"

long=("${m[@]}" --data "$tmp/stories.txt" --batch 1 --seq-len 16 --n-ahead 4 --n-talk 2 --threads 2 --eval-batches 1
      --steps 150 --eval-every 0 --save-every 0 --seed 9)
expect 0 "straight 150 steps" -- "$Q" train "${long[@]}" --out "$tmp/c"
interrupt_run train 150 "$tmp/d" "${long[@]}"
grep -q "stopped early; continue with: qstar train --resume" "$tmp/d.out" || bad "SIGINT message: $(cat "$tmp/d.out")"
expect 0 "resume after SIGINT" -- "$Q" train --resume "$tmp/d"
cmp "$tmp/c/ckpt/model.safetensors" "$tmp/d/ckpt/model.safetensors" || bad "SIGINT + resume != straight run"

# --- (4) a fresh run from a checkpoint starts from its meta embeddings and mixing head
st_cmp() { # A B: Quiet-STaR tensors of two model.safetensors; prints same/differ
  "$PY" - "$@" <<'EOF'
import json, struct, sys
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    out = {}
    for k, v in h.items():
        if k.startswith(("start_embedding", "end_embedding", "talk_head.")):
            assert v["dtype"] == "F32", (k, v["dtype"])
            b, e = v["data_offsets"]
            out[k] = struct.unpack(f"<{(e - b) // 4}f", raw[8 + n + b:8 + n + e])
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert sorted(a) == sorted(b) and len(a) == 7, (sorted(a), sorted(b))
close = all(abs(x - y) <= 1e-6 * max(abs(x), abs(y)) for k in a for x, y in zip(a[k], b[k]))
print("same" if close else "differ")
EOF
}
nll() { sed -n "s/^step $1\/[0-9]*: held-out NLL base \([0-9.]*\) | with thoughts \([0-9.]*\).*/\1 \2/p" <<< "$2"; }
expect 0 "final eval of the trained run" -- "$Q" train --resume "$tmp/a"
trained=$(nll 20 "$out")
# lr 1e-30: the one step leaves every weight as loaded
frozen=(--data "$tmp/stories.txt" --batch 2 --seq-len 32 --eval-batches 2 --threads 2 --steps 1 --lr 1e-30
        --weight-decay 0 --warmup 0 --seed 5)
expect 0 "fresh run from the checkpoint" -- "$Q" train --model "$tmp/a/ckpt" "${frozen[@]}" --out "$tmp/f"
[[ "$out" == *initialised* ]] && bad "loading the checkpoint re-initialised Quiet-STaR tensors: $out"
[[ "$out" == *"n_ahead 5 (n_thought 2), n_talk 2"* ]] || bad "quietstar settings not taken from the checkpoint: $out"
again=$(nll 0 "$out")
echo "held-out NLL (base, think): end of the trained run $trained; fresh run from its checkpoint $again"
[ -n "$trained" ] && [ "$trained" = "$again" ] || bad "checkpoint reloaded with other Quiet-STaR tensors: '$trained' vs '$again'"
[ "$(st_cmp "$tmp/a/ckpt/model.safetensors" "$tmp/f/ckpt/model.safetensors")" = same ] \
  || bad "start/end embeddings or talk head changed when loading the checkpoint"
expect 0 "fresh run from the .bin" -- "$Q" train "${m[@]}" --n-ahead 5 --n-talk 2 "${frozen[@]}" --out "$tmp/g"
[[ "$out" == *"initialised start end talk head"* ]] || bad "a model without Quiet-STaR tensors was not initialised: $out"
[ "$(st_cmp "$tmp/a/ckpt/model.safetensors" "$tmp/g/ckpt/model.safetensors")" = differ ] \
  || bad "trained Quiet-STaR tensors equal freshly initialised ones"
# a flag changes only its own setting: the rest of the checkpoint's quietstar block stays
expect 0 "checkpoint + --n-talk 1" -- "$Q" train --model "$tmp/a/ckpt" "${frozen[@]}" --n-talk 1 --out "$tmp/h"
[[ "$out" == *"n_ahead 5 (n_thought 2), n_talk 1,"* ]] || bad "--n-talk over a checkpoint dropped its other settings: $out"

# --- (5) --preset paper: SPEC section 4 values (flags given override them), then one tiny step
expect 0 "--preset paper" -- "$Q" train "${m[@]}" --data "$tmp/stories.txt" --preset paper --batch 1 --seq-len 16 \
  --eval-batches 1 --threads 2 --stop-after 1 --out "$tmp/p"
[[ "$out" == *"n_ahead 12 (n_thought 9), n_talk 4, n_passes 2"* ]] || bad "preset quietstar settings: $out"
[[ "$out" == *", beta 1e+06 (--preset paper),"* ]] || bad "the run header should say beta 1e6 from --preset paper: $out"
[[ "$out" == *"100 steps x 1 x 16 x 1 tokens, lr 1e-06 -> 1e-06, warmup 20"* ]] || bad "preset schedule: $out"
[[ "$out" == *"betas (0.9, 0.999), eps 1e-08, weight decay 0.001, grad-norm clip 1 (--preset paper"* ]] \
  || bad "preset optimizer: $out"
"$PY" - "$tmp/p/ckpt" <<'EOF' || bad "preset values in train_args.json / config.json"
import json, sys
a = json.load(open(sys.argv[1] + "/train_args.json"))
q = json.load(open(sys.argv[1] + "/config.json"))["quietstar"]
want = {"steps": 100, "batch": 1, "seq-len": 16, "grad-accum": 1, "warmup": 20, "lr": 1e-6, "min-lr": 1e-6,
        "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight-decay": 0.001, "clip": 1.0}
for k, v in want.items():
    assert abs(a[k] - v) <= 1e-6 * v, f"train_args.json {k} = {a[k]}, want {v}"
for k, v in {"n_ahead": 12, "n_thought": 9, "n_talk": 4, "n_passes": 2, "policy_beta": 1e6, "tau_rl": 3,
             "base_loss_weight": 0.5, "embedding_scale": 100, "clamp_negative_rewards": True,
             "mixing": "linear"}.items():
    assert q[k] == v, f"config.json quietstar {k} = {q[k]}, want {v}"
EOF
expect 0 "--preset paper --n-talk 2" -- "$Q" train "${m[@]}" --data "$tmp/stories.txt" --preset paper --n-talk 2 \
  --batch 1 --seq-len 16 --eval-batches 1 --threads 2 --stop-after 1 --out "$tmp/p2"
[[ "$out" == *"n_ahead 12 (n_thought 9), n_talk 2, n_passes 2"* ]] || bad "--n-talk over the preset: $out"

[ $fail -eq 0 ] && echo "train.sh: all checks passed"
exit $fail
