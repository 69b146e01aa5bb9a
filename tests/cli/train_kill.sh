#!/usr/bin/env bash
# qstar train under SIGKILL: a tiny Quiet-STaR run that checkpoints after every
# step is killed at random moments (many of them land inside a checkpoint
# write); after every kill the checkpoint as the kill left it must load as a
# thinking model (`qstar generate --think`), resume for one step (at most one
# step lost) and load again. Then the states a kill can leave around the swap
# of a checkpoint (exchange, or two renames where the file system cannot
# exchange) are built by hand and resumed too; the log of the killed run must
# end up with exactly one record per step; and a non-finite loss / gradient
# skips the update with a warning and never reaches a checkpoint.
# Needs $QSTAR_DATA (stories260K, TinyStories); about a minute.
. "$(dirname "$0")/train_common.bash"

D=${QSTAR_DATA:-}
if [ -z "$D" ] || [ ! -f "$D/stories260K/stories260K.bin" ] || [ ! -f "$D/tinystories/valid.txt" ]; then
  echo "SKIP: QSTAR_DATA is not set (or lacks stories260K/, tinystories/): kill tests not run"
  exit 0
fi
head -n 300 "$D/tinystories/valid.txt" > "$tmp/stories.txt"
R=$tmp/run
args=(--model "$D/stories260K/stories260K.bin" --tokenizer "$D/stories260K/tok512.bin" --data "$tmp/stories.txt"
      --batch 1 --seq-len 16 --n-ahead 4 --n-talk 1 --save-every 1 --eval-every 0 --eval-batches 1
      --threads 1 --steps 1000000 --print-every 1000000 --show-thoughts 1 --seed 3)

last_step() { # last step record in the log (0 if none)
  sed -n 's/^{"step":\([0-9]*\),.*/\1/p' "$R/log.jsonl" 2>/dev/null | tail -n 1 | grep . || echo 0
}

# resume_one WHAT: resume the run for exactly one step (--stop-after 1 stops after
# the first step it runs), check that it started where expected, then load the
# checkpoint as a thinking model
resume_one() {
  local what=$1 lo=$2 hi=$3 out rc s
  out=$("$Q" train --resume "$R" --stop-after 1 2>&1); rc=$?
  if [ $rc -ne 0 ]; then bad "$what: resume exit $rc: $out"; return 1; fi
  s=$(sed -n 's/^resuming .* at step \([0-9]*\) of.*/\1/p' <<< "$out")
  if [ -z "$s" ] || [ "$s" -lt "$lo" ] || [ "$s" -gt "$hi" ]; then
    bad "$what: resumed at step '${s}', want $lo..$hi: $out"; return 1
  fi
  [[ "$out" == *"steps: $((s + 1)) of 1000000 (1 in this run"* ]] || bad "$what: no step after resume: $out"
  [ -e "$R/ckpt.tmp" ] || [ -e "$R/ckpt.old" ] && bad "$what: ckpt.tmp / ckpt.old left after a clean exit: $(ls "$R")"
  out=$("$Q" generate --model "$R/ckpt" --think --prompt "Once" --max-tokens 6 --seed 1 2>&1) \
    || bad "$what: generate --think on the checkpoint: $out"
  resumed=$((s + 1))
}

# --- random kills
kills=0 in_write=0 in_swap=0 in_partial=0 before_first=0 t0=$SECONDS
started=0 resumed=0
for i in $(seq 1 24); do
  if [ $started -eq 0 ]; then
    rm -rf "$R"
    "$Q" train "${args[@]}" --out "$R" > "$tmp/bg.out" 2>&1 &
  else
    "$Q" train --resume "$R" > "$tmp/bg.out" 2>&1 &
  fi
  pid=$!
  # 0.05 .. 0.85 s: start-up, evaluation, steps and checkpoint writes all get hit
  sleep "$(printf '0.%02d' $((5 + RANDOM % 80)))"
  kill -KILL $pid 2>/dev/null
  wait $pid 2>/dev/null
  kills=$((kills + 1))
  [ -e "$R/ckpt.tmp" ] && in_write=$((in_write + 1))
  [ -e "$R/ckpt.old" ] && in_swap=$((in_swap + 1))
  [ -e "$R/ckpt.tmp" ] && [ ! -f "$R/ckpt.tmp/train_args.json" ] && in_partial=$((in_partial + 1))
  if [ ! -e "$R/ckpt" ] && [ ! -e "$R/ckpt.old" ]; then
    # killed before the first checkpoint: nothing to resume, and resume says so
    before_first=$((before_first + 1))
    out=$("$Q" train --resume "$R" 2>&1) && bad "kill $i: resume without a checkpoint succeeded: $out"
    started=0
    continue
  fi
  # the checkpoint lags the log by at most one step (the record is written before
  # the save); a resumed run starts from its own checkpoint at least
  [ $started -eq 0 ] && resumed=0
  # the checkpoint as the kill left it loads as a thinking model (RUN/ckpt is replaced in one
  # atomic exchange; only where that is unavailable can a kill leave just RUN/ckpt.old)
  ck=$R/ckpt; [ -e "$ck" ] || ck=$R/ckpt.old
  out=$("$Q" generate --model "$ck" --think --prompt "Once" --max-tokens 6 --seed 1 2>&1) \
    || bad "kill $i: generate --think on $ck as left by the kill: $out"
  L=$(last_step)
  lo=$((L - 1)); [ $lo -lt $resumed ] && lo=$resumed
  hi=$((L > resumed ? L : resumed))
  resume_one "kill $i (log at step $L, state: $(ls "$R" | tr '\n' ' '))" "$lo" "$hi" || { started=0; continue; }
  started=1
done
echo "SIGKILL: $kills kills ($in_write left ckpt.tmp: $in_partial of them mid-write; $in_swap left ckpt.old;" \
     "$before_first before the first checkpoint), every one loaded and resumed: $((SECONDS - t0)) s"
[ $((in_write + in_swap)) -ge 2 ] || echo "note: few kills landed in a checkpoint write this time ($in_write + $in_swap)"

# the killed-and-resumed run's log: one record per step 1..N, no partial lines
if [ $started -eq 1 ]; then
  "$PY" - "$R/log.jsonl" <<'EOF' || bad "log of the killed run"
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if '"type"' not in l]
assert steps == list(range(1, len(steps) + 1)), f"step records not 1..N: {steps}"
print(f"log: {len(steps)} step records, 1..{len(steps)}, each once")
EOF
fi

# --- the states a kill can leave, built by hand from a good checkpoint
rm -rf "$R"
out=$("$Q" train "${args[@]}" --out "$R" --stop-after 3 2>&1) || bad "setup run: $out"
resumed=3
# (a) between the renames: ckpt -> ckpt.old done, complete ckpt.tmp not yet renamed
mv "$R/ckpt" "$R/ckpt.old"; cp -r "$R/ckpt.old" "$R/ckpt.tmp"
resume_one "between the renames" 3 3
# (b) new ckpt in place, ckpt.old not yet (or partly) removed
cp -r "$R/ckpt" "$R/ckpt.old"; rm "$R/ckpt.old/model.safetensors"
resume_one "partly removed ckpt.old" 4 4
# (c) killed while writing ckpt.tmp: partial directory, partial file
mkdir -p "$R/ckpt.tmp"; cp "$R/ckpt/config.json" "$R/ckpt.tmp/"
head -c 1000 "$R/ckpt/model.safetensors" > "$R/ckpt.tmp/model.safetensors"
resume_one "partial ckpt.tmp" 5 5
# (d) only ckpt.old survives, beside a ckpt that is not a checkpoint (a removal cut short)
mv "$R/ckpt" "$R/ckpt.old"; mkdir "$R/ckpt"; cp "$R/ckpt.old/model.safetensors" "$R/ckpt/"
resume_one "ckpt.old beside an incomplete ckpt" 6 6
# (e) ckpt.old only, no ckpt.tmp (the first rename done, the write before it lost)
mv "$R/ckpt" "$R/ckpt.old"
resume_one "ckpt.old only" 7 7
# (f) after the exchange, before the removal: ckpt.tmp holds the previous (complete) checkpoint
cp -r "$R/ckpt" "$tmp/prev"
out=$("$Q" train --resume "$R" --stop-after 1 2>&1) || bad "setup (f): $out"
mv "$tmp/prev" "$R/ckpt.tmp"
resume_one "stale complete ckpt.tmp" 9 9
# a fresh run must not clobber a run that survives only as ckpt.old
mv "$R/ckpt" "$R/ckpt.old"
out=$("$Q" train "${args[@]}" --out "$R" --stop-after 1 2>&1) && bad "fresh run over ckpt.old: $out"
[[ "$out" == *--resume* ]] || bad "fresh run over ckpt.old message: $out"
resume_one "ckpt.old only, after a refused fresh run" 10 10

# --- non-finite loss / gradient: the update is skipped with a warning, nothing non-finite is saved
# (lr 100 with weight decay 100 blows the weights up until the gradient is NaN)
rm -rf "$R"
out=$("$Q" train "${args[@]}" --out "$R" --lr 100 --weight-decay 100 --warmup 0 --steps 12 2>&1) \
  || bad "absurd lr: exit $?: $out"
n_skip=$(sed -n 's/^steps: 12 of 12 (12 in this run, \([0-9]*\) skipped).*/\1/p' <<< "$out")
[ -n "$n_skip" ] && [ "$n_skip" -gt 0 ] || bad "absurd lr: no update skipped: $out"
grep -q "warning: step [0-9]*: non-finite .*update skipped" <<< "$out" || bad "absurd lr: no warning: $out"
"$PY" - "$R" "${n_skip:-0}" <<'EOF' || bad "absurd lr: log or checkpoint"
import json, math, struct, sys
run, n_skip = sys.argv[1], int(sys.argv[2])
recs = [json.loads(l, parse_constant=lambda c: 1 / 0) for l in open(run + "/log.jsonl")]
skipped = [r["step"] for r in recs if r.get("skipped")]
assert len(skipped) == n_skip, (skipped, n_skip)
raw = open(run + "/ckpt/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
for k, v in json.loads(raw[8:8 + n]).items():
    if k == "__metadata__": continue
    b, e = v["data_offsets"]
    assert v["dtype"] == "F32", (k, v["dtype"])
    assert all(math.isfinite(x) for x in struct.unpack(f"<{(e - b) // 4}f", raw[8 + n + b:8 + n + e])), k
print(f"absurd lr: steps {skipped} skipped with a warning (log values null), checkpoint all finite")
EOF
out=$("$Q" train --resume "$R" --steps 13 --lr 1e-4 --weight-decay 0 2>&1) || bad "resume after skipped steps: $out"

[ $fail -eq 0 ] && echo "train_kill.sh: all checks passed"
exit $fail
