#!/usr/bin/env bash
# The memory plan (qstar train --plan, issue 10): --plan prints the peak of
# one process by term and the FLOPs per step and writes nothing; every run
# prints the planned peak in its header; a run whose plan exceeds the
# available memory stops before allocating, with one error line naming the
# largest term and the flags that shrink it (exit 1), and leaves no output
# directory behind; --act-budget-mb 0 keeps no layer's activations and gives
# the same losses; the planned peak of a real run is within 15% of its
# measured peak RSS.
. "$(dirname "$0")/common.bash"
need_data "memory plan" stories260K/stories260K.bin stories260K/tok512.bin tinystories/valid.txt
head -n 2000 "$QSTAR_DATA/tinystories/valid.txt" > "$tmp/s.txt"
base=(--model "$QSTAR_DATA/stories260K/stories260K.bin" --tokenizer "$QSTAR_DATA/stories260K/tok512.bin"
      --data "$tmp/s.txt" --batch 2 --seq-len 64 --n-ahead 6 --warmup 0 --eval-batches 1 --save-every 0 --threads 1)

# --plan: the table, nothing written
expect_rc 0 "" "$QSTAR" train "${base[@]}" --plan --out "$tmp/p"
grep -q "peak memory (one process)" "$tmp/out" || fail "--plan prints no peak: $(tail -3 "$tmp/out")"
for term in "KV cache of all passes" "activations kept for the backward" "AdamW moments" "weights (fp32 masters)" \
            "logits chunk" "held-out evaluation step" "FLOPs per optimizer step"; do
  grep -qF "$term" "$tmp/out" || fail "--plan lacks '$term'"
done
[ -e "$tmp/p" ] && fail "--plan created its --out directory"
# bf16 adds its terms
expect_rc 0 "" "$QSTAR" train "${base[@]}" --plan --precision bf16 --out "$tmp/p"
grep -q "bf16 copy of the weights" "$tmp/out" || fail "--plan --precision bf16 lacks the bf16 weight copy"

# a run that cannot fit: stops at once, one line, exit 1, nothing left behind
# (the setup notes come first: "data: ...", "quietstar: ..."; the error is the one "qstar train:" line)
QSTAR_MEM_AVAILABLE_MB=20 "$QSTAR" train "${base[@]}" --steps 2 --out "$tmp/nofit" 2>"$tmp/err"; rc=$?
[ "$rc" -eq 1 ] || fail "a run that cannot fit exits $rc, not 1"
[ "$(grep -c '^qstar train:' "$tmp/err")" -eq 1 ] || fail "not one error line: $(cat "$tmp/err")"
tail -1 "$tmp/err" | grep -q "^qstar train: the run needs .* at its peak but .* is available; the largest term is .*: shrink it with --" ||
  fail "the error does not name the largest term and its flags: $(tail -1 "$tmp/err")"
grep -q "training step\|loss" "$tmp/err" && fail "a run that cannot fit started training"
[ -e "$tmp/nofit" ] && fail "a run that did not fit left $tmp/nofit behind"

# header line; --act-budget-mb 0 recomputes every layer with the same losses
expect_rc 0 "" "$QSTAR" train "${base[@]}" --steps 2 --eval-every 0 --out "$tmp/a"
grep -q "memory plan: peak .* activations of 5 of 5 layers kept" "$tmp/err" || fail "header: $(grep 'memory plan' "$tmp/err")"
expect_rc 0 "" "$QSTAR" train "${base[@]}" --steps 2 --eval-every 0 --act-budget-mb 0 --out "$tmp/b"
grep -q "activations of 0 of 5 layers kept" "$tmp/err" || fail "--act-budget-mb 0: $(grep 'memory plan' "$tmp/err")"
"$PY" - "$tmp/a/log.jsonl" "$tmp/b/log.jsonl" <<'EOF' || fail "--act-budget-mb 0 changed the losses"
import json, sys
a, b = ([json.loads(l) for l in open(p) if '"loss"' in l] for p in sys.argv[1:3])
assert len(a) == len(b) == 2, (len(a), len(b))
for x, y in zip(a, b):
    assert abs(x["loss"] - y["loss"]) <= 1e-5 * abs(x["loss"]), (x["loss"], y["loss"])
EOF

# planned peak vs the measured peak RSS of the same run (within 15%); not under
# AddressSanitizer, whose shadow memory and redzones are not the program's
if [ "${BUILD:-build}" = build-san ]; then
  echo "plan.sh: the peak RSS comparison is skipped under ASan (make SAN=1)"
else
"$PY" - "$QSTAR" "$tmp" "${base[@]}" <<'EOF' || fail "planned and measured peak differ by more than 15%"
import re, resource, subprocess, sys
q, tmp, args = sys.argv[1], sys.argv[2], sys.argv[3:]
p = subprocess.run([q, "train", *args, "--steps", "2", "--eval-every", "1", "--out", tmp + "/m"],
                   capture_output=True, text=True)
assert p.returncode == 0, p.stderr[-400:]
m = re.search(r"memory plan: peak ([\d.]+) (GB|MB|kB)", p.stderr)
planned = float(m.group(1)) * {"GB": 1e9, "MB": 1e6, "kB": 1e3}[m.group(2)]
measured = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024.0
print("plan.sh: planned peak %.0f MB, measured %.0f MB (ratio %.3f)" % (planned / 1e6, measured / 1e6, measured / planned))
assert abs(measured / planned - 1) <= 0.15
EOF
fi

[ "$fails" -eq 0 ] && echo "plan: all checks passed" || { echo "$fails check(s) failed"; exit 1; }
