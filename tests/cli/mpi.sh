#!/usr/bin/env bash
# Data-parallel Quiet-STaR training under MPI (`mpirun -np 2`, 1 thread per
# rank) on stories260K, against the single-process run with the same global
# batch (--batch 2 --grad-accum 4) and seed:
#   - the first step's loss parts equal (1e-6), the weights after 10 steps
#     within 1e-4 (max abs difference of each tensor / its max abs value),
#     with 2 and with 4 ranks (the balanced micro-batch sum makes them
#     equal bit for bit in practice: reported, not required);
#   - the same (1e-4) with --precision bf16 and with the EMA reward baseline
#     (the bf16 weight copy and the EMA model follow each update);
#   - two -np 2 runs byte-identical; --zero 1 byte-identical to the default;
#   - -np 2 stopped at step 5, then --resume in one process, ends at the
#     weights of the uninterrupted -np 2 run (1e-4);
#   - SIGKILL of rank 1 ends mpirun within 30 s, non-zero, with a message
#     naming the rank; the last checkpoint resumes;
#   - Ctrl-C (SIGINT to mpirun) saves a checkpoint that resumes.
# Skips when mpirun, an MPI build or $QSTAR_DATA is missing. About 30 s.
. "$(dirname "$0")/train_common.bash"

D=${QSTAR_DATA:-}
if [ -z "$D" ] || [ ! -f "$D/stories260K/stories260K.bin" ] || [ ! -f "$D/tinystories/valid.txt" ]; then
  echo "SKIP: QSTAR_DATA is not set (or lacks stories260K/, tinystories/): MPI tests not run"; exit 77
fi
if ! command -v mpirun >/dev/null; then
  echo "SKIP: mpirun not found (apt-get install openmpi-bin libopenmpi-dev, then rebuild): MPI tests not run"; exit 77
fi
if ! "$Q" train --help | grep -q "this build: with MPI"; then
  echo "SKIP: $Q was built without MPI (install libopenmpi-dev and rebuild): MPI tests not run"; exit 77
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # Open MPI's own allocations under `make SAN=1`
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none # containers often forbid cross-memory attach
MPI=(mpirun -np 2 --oversubscribe --allow-run-as-root)
head -n 400 "$D/tinystories/valid.txt" > "$tmp/s.txt"
A=(--model "$D/stories260K/stories260K.bin" --tokenizer "$D/stories260K/tok512.bin" --data "$tmp/s.txt"
   --batch 2 --grad-accum 4 --seq-len 32 --n-ahead 4 --n-talk 2 --steps 10 --warmup 2 --lr 1e-3
   --eval-every 5 --eval-batches 3 --threads 1 --seed 5 --print-every 1)

# close A B TOL: every tensor of two safetensors files within TOL (relative to its max abs)
close() {
  "$PY" - "$@" <<'EOF'
import array, json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        assert v['dtype'] == 'F32', (k, v['dtype'])
        s, e = v['data_offsets']; a = array.array('f'); a.frombytes(b[8 + n + s:8 + n + e]); out[k] = a
    return out
a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())
worst, wk = 0.0, None
for k in a:
    m = max(abs(x) for x in a[k]) or 1.0
    d = max(abs(x - y) for x, y in zip(a[k], b[k])) / m
    if d > worst: worst, wk = d, k
print("max relative difference %.3g (%s), %d tensors" % (worst, wk, len(a)))
sys.exit(0 if worst <= tol else 1)
EOF
}

# --- one process vs two ranks, same global batch
expect 0 "single process" -- "$Q" train "${A[@]}" --out "$tmp/r1"
expect 0 "mpirun -np 2" -- "${MPI[@]}" "$Q" train "${A[@]}" --out "$tmp/r2"
[[ "$out" == *"data parallel: 2 ranks"* && "$out" == *"all-reduce per step:"* ]] || bad "no data-parallel header: $out"
n_init=$(grep -c "initial held-out NLL" <<< "$out")
[ "$n_init" = 1 ] || bad "rank 0 alone should print the summary (printed $n_init times)"
"$PY" - "$tmp/r1/log.jsonl" "$tmp/r2/log.jsonl" <<'EOF' || bad "first-step loss parts differ"
import json, sys
def first(p):
    for line in open(p):
        r = json.loads(line)
        if r.get('step') == 1 and 'loss' in r: return r
a, b = first(sys.argv[1]), first(sys.argv[2])
keys = ['loss', 'loss_lm', 'loss_base', 'policy_loss', 'reward_mean', 'advantage_mean', 'mix_mean', 'grad_norm']
bad = [(k, a[k], b[k]) for k in keys if abs(a[k] - b[k]) > 1e-6]
bad += [('loss_talk', a['loss_talk'], b['loss_talk'])] if any(abs(x - y) > 1e-6 for x, y in zip(a['loss_talk'], b['loss_talk'])) else []
print("first step: loss %.7f / %.7f, loss_talk %s / %s" % (a['loss'], b['loss'], a['loss_talk'], b['loss_talk']))
sys.exit(1 if bad else 0)
EOF
[ "$(grep -c '"step"' "$tmp/r1/log.jsonl")" = "$(grep -c '"step"' "$tmp/r2/log.jsonl")" ] || bad "logs differ in length"
close "$tmp/r1/ckpt/model.safetensors" "$tmp/r2/ckpt/model.safetensors" 1e-4 || bad "-np 2 weights not within 1e-4 of one process"
expect 0 "mpirun -np 4" -- mpirun -np 4 --oversubscribe --allow-run-as-root "$Q" train "${A[@]}" --out "$tmp/r4"
close "$tmp/r1/ckpt/model.safetensors" "$tmp/r4/ckpt/model.safetensors" 1e-4 || bad "-np 4 weights not within 1e-4 of one process"
for n in 2 4; do
  cmp -s "$tmp/r1/ckpt/model.safetensors" "$tmp/r$n/ckpt/model.safetensors" && echo "-np $n: weights bit for bit those of one process" \
    || echo "-np $n: weights within 1e-4 of one process, not bit for bit"
done

# --- bf16 and the EMA reward baseline: what follows each update (the bf16 copy of the
# weights, the EMA model) must follow it under MPI too, so -np 2 stays one process's run
for v in "bf16:--precision bf16" "ema:--reward-baseline ema --ema-decay 0.5"; do
  name=${v%%:*}; read -r -a X <<< "${v#*:}"
  expect 0 "single process, $name" -- "$Q" train "${A[@]}" "${X[@]}" --out "$tmp/${name}1"
  expect 0 "mpirun -np 2, $name" -- "${MPI[@]}" "$Q" train "${A[@]}" "${X[@]}" --out "$tmp/${name}2"
  close "$tmp/${name}1/ckpt/model.safetensors" "$tmp/${name}2/ckpt/model.safetensors" 1e-4 \
    || bad "$name: -np 2 weights not within 1e-4 of one process"
done

# --- finetune (plain LM) the same way, from a `qstar prepare` directory
expect 0 "prepare" -- "$Q" prepare --tokenizer "$D/stories260K/tok512.bin" --data "$tmp/s.txt" --out "$tmp/tk"
F=(--model "$D/stories260K/stories260K.bin" --tokenizer "$D/stories260K/tok512.bin" --data "$tmp/tk" --batch 4
   --grad-accum 2 --seq-len 64 --steps 10 --eval-every 5 --eval-batches 3 --threads 1 --seed 5)
expect 0 "finetune, one process" -- "$Q" finetune "${F[@]}" --out "$tmp/f1"
expect 0 "finetune, mpirun -np 2" -- "${MPI[@]}" "$Q" finetune "${F[@]}" --out "$tmp/f2"
close "$tmp/f1/ckpt/model.safetensors" "$tmp/f2/ckpt/model.safetensors" 1e-4 || bad "finetune -np 2 not within 1e-4"
grep '"val_nll"' "$tmp/f1/log.jsonl" | sed 's/"elapsed":[^,}]*//' > "$tmp/f1.ev"
grep '"val_nll"' "$tmp/f2/log.jsonl" | sed 's/"elapsed":[^,}]*//' > "$tmp/f2.ev"
[ -s "$tmp/f1.ev" ] && cmp -s "$tmp/f1.ev" "$tmp/f2.ev" || bad "sharded held-out evaluation differs: $(cat "$tmp/f1.ev" "$tmp/f2.ev")"

# --- same N: byte-identical; --zero 1: byte-identical to the default
expect 0 "mpirun -np 2 again" -- "${MPI[@]}" "$Q" train "${A[@]}" --out "$tmp/r2b"
cmp "$tmp/r2/ckpt/model.safetensors" "$tmp/r2b/ckpt/model.safetensors" || bad "two -np 2 runs differ"
cmp "$tmp/r2/ckpt/train_state.safetensors" "$tmp/r2b/ckpt/train_state.safetensors" || bad "two -np 2 runs: optimizer states differ"
expect 0 "mpirun -np 2 --zero 1" -- "${MPI[@]}" "$Q" train "${A[@]}" --zero 1 --out "$tmp/rz"
[[ "$out" == *"AdamW moments sharded"* ]] || bad "--zero 1 not reported: $out"
cmp "$tmp/r2/ckpt/model.safetensors" "$tmp/rz/ckpt/model.safetensors" || bad "--zero 1 weights differ from the default"
cmp "$tmp/r2/ckpt/train_state.safetensors" "$tmp/rz/ckpt/train_state.safetensors" || bad "--zero 1 moments differ"

# --- -np 2 for 5 steps, then --resume in one process
expect 0 "mpirun -np 2 --stop-after 5" -- "${MPI[@]}" "$Q" train "${A[@]}" --stop-after 5 --out "$tmp/ra"
expect 0 "resume with one process" -- "$Q" train --resume "$tmp/ra"
[[ "$out" == *"steps: 10 of 10 (5 in this run"* ]] || bad "resume did not run steps 6..10: $out"
close "$tmp/r2/ckpt/model.safetensors" "$tmp/ra/ckpt/model.safetensors" 1e-4 || bad "-np 2 + resume -np 1 differs"
[ "$(grep -c '"loss"' "$tmp/ra/log.jsonl")" = 10 ] || bad "resumed log should hold 10 step records"

# --- SIGKILL of rank 1 mid-run
K=(--steps 1000000 --save-every 2 --eval-every 0 --print-every 1000000)
"${MPI[@]}" "$Q" train "${A[@]}" "${K[@]}" --out "$tmp/rk" > "$tmp/rk.out" 2>&1 &
mp=$!
for _ in $(seq 300); do [ -d "$tmp/rk/ckpt" ] && [ "$(grep -c '"loss"' "$tmp/rk/log.jsonl" 2>/dev/null)" -ge 6 ] 2>/dev/null && break; sleep 0.1; done
victim=
for p in $(pgrep -P "$mp"); do
  tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
done
if [ -z "$victim" ]; then
  bad "rank 1 of the kill run not found"; kill "$mp"; wait "$mp"
else
  t0=$SECONDS
  kill -9 "$victim"
  for _ in $(seq 300); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$mp" 2>/dev/null; then bad "mpirun still running 30 s after rank 1 was killed"; kill -9 "$mp"; fi
  wait "$mp"; rc=$?
  echo "rank 1 killed: mpirun ended after $((SECONDS - t0)) s with exit $rc"
  [ "$rc" -ne 0 ] || bad "mpirun exited 0 after a rank was killed"
  grep -q "rank 1" "$tmp/rk.out" || bad "no message naming rank 1: $(tail -5 "$tmp/rk.out")"
  # mpirun is gone; rank 0 may still be on its way out (it holds the run's lock until then)
  lp=$(cat "$tmp/rk/qstar.lock" 2>/dev/null || true)
  for _ in $(seq 100); do [ -n "$lp" ] && kill -0 "$lp" 2>/dev/null || break; sleep 0.1; done
  expect 0 "resume after the kill" -- "$Q" train --resume "$tmp/rk" --stop-after 1
  [[ "$out" == *"resuming"* ]] || bad "no resume after the kill: $out"
fi

# --- Ctrl-C: mpirun hands SIGTERM to the ranks; they agree on the step, rank 0 saves
"${MPI[@]}" "$Q" train "${A[@]}" "${K[@]}" --save-every 0 --out "$tmp/ri" > "$tmp/ri.out" 2>&1 &
mp=$!
for _ in $(seq 300); do [ "$(grep -c '"loss"' "$tmp/ri/log.jsonl" 2>/dev/null)" -ge 4 ] 2>/dev/null && break; sleep 0.1; done
kill -INT "$mp"
wait "$mp"
grep -q "stopped early; continue with" "$tmp/ri.out" || bad "Ctrl-C: no checkpoint message: $(tail -5 "$tmp/ri.out")"
expect 0 "resume after Ctrl-C" -- "$Q" train --resume "$tmp/ri" --stop-after 1

[ $fail -eq 0 ] && echo "mpi: all checks passed"
exit $fail
