#!/usr/bin/env bash
# Part of `make bench` (scripts/bench.sh): Quiet-STaR training steps/s with
# 1 process x 2 threads against 2 MPI processes x 1 thread (`mpirun -np 2`),
# same global batch (--batch B --grad-accum 2), on the stories260K model and
# on a random 135M-shaped one (SmolLM-135M: 30 layers, d 576, vocab 49152).
# Prints one line per model with both rates and their ratio (the goal:
# MPI >= 0.85 x threads on a 2-core box). Skips with a message without
# mpirun, an MPI build or $QSTAR_DATA.
#   BENCH_QUICK=1: the stories260K model only, fewer steps.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
Q=$here/$build/qstar
D=${QSTAR_DATA:-}
PY=${PYTHON:-python3}
echo "== data parallel: Quiet-STaR train, 1 process x 2 threads vs mpirun -np 2 x 1 thread"
if ! command -v mpirun >/dev/null; then echo "   skipped: no mpirun (apt-get install openmpi-bin libopenmpi-dev)"; exit 0; fi
if ! "$Q" train --help | grep -q "this build: with MPI"; then echo "   skipped: $Q was built without MPI"; exit 0; fi
if [ -z "$D" ] || [ ! -f "$D/stories260K/stories260K.bin" ]; then echo "   skipped: QSTAR_DATA not set"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -n 4000 "$D/tinystories/valid.txt" > "$tmp/s.txt"

# steps/s of a finished run: from the last step record's tokens/s (training time only, no evaluation)
rate() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
last = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][-1]
print("%.4f" % (last["tok_per_s"] / float(sys.argv[2])))
EOF
}

# bench LABEL STEPS B T MODEL-ARGS...
bench() {
  local label=$1 steps=$2 B=$3 T=$4; shift 4
  local a=("$@" --data "$tmp/s.txt" --batch "$B" --seq-len "$T" --grad-accum 2 --n-ahead 4 --n-talk 2
           --steps "$steps" --warmup 0 --eval-every 0 --eval-batches 1 --save-every 0 --print-every 1000000)
  local tokens=$((B * T * 2)) r1 r2
  rm -rf "$tmp/t" "$tmp/m"
  if ! "$Q" train "${a[@]}" --threads 2 --out "$tmp/t" > "$tmp/t.out" 2>&1; then
    echo "   $label: the threaded run failed: $(tail -2 "$tmp/t.out")"; return 1
  fi
  if ! OMP_WAIT_POLICY=passive mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none \
       "$Q" train "${a[@]}" --threads 1 --out "$tmp/m" > "$tmp/m.out" 2>&1; then
    echo "   $label: the MPI run failed: $(tail -2 "$tmp/m.out")"; return 1
  fi
  r1=$(rate "$tmp/t/log.jsonl" "$tokens"); r2=$(rate "$tmp/m/log.jsonl" "$tokens")
  "$PY" -c "import sys; a, b = float(sys.argv[2]), float(sys.argv[3]); print('   %-26s 1x2 threads %8.3f steps/s | 2x1 MPI %8.3f steps/s | MPI/threads %.2f (goal >= 0.85)' % (sys.argv[1], a, b, b / a if a else 0))" \
    "$label (B$B T$T x2)" "$r1" "$r2"
}

if [ "${BENCH_QUICK:-0}" = 1 ]; then
  bench "stories260K" 20 2 64 --model "$D/stories260K/stories260K.bin" --tokenizer "$D/stories260K/tok512.bin"
  exit 0
fi
bench "stories260K" 60 4 128 --model "$D/stories260K/stories260K.bin" --tokenizer "$D/stories260K/tok512.bin"
# 135M shape: random weights (bench_qstar save) and a llama2.c tokenizer of 49152 pieces whose
# first 512 are stories260K's (the text encodes to those ids; the rest only name sampled thoughts)
if [ -x "$here/$build/bench_qstar" ] && "$here/$build/bench_qstar" save --shape 135m --out "$tmp/m135" >/dev/null; then
  "$PY" - "$D/stories260K/tok512.bin" "$tmp/m135/tokenizer.bin" 49152 <<'EOF'
import struct, sys
src = open(sys.argv[1], 'rb').read(); n = int(sys.argv[3])
maxlen = struct.unpack('<i', src[:4])[0]; pos = 4; out = [b'']
for _ in range(512):
    score, ln = struct.unpack('<fi', src[pos:pos + 8]); out.append(src[pos:pos + 8 + ln]); pos += 8 + ln
for i in range(512, n):
    piece = b'<x%d>' % i; out.append(struct.pack('<fi', -1e9, len(piece)) + piece)
out[0] = struct.pack('<i', max(maxlen, 8))
open(sys.argv[2], 'wb').write(b''.join(out))
EOF
  bench "SmolLM-135M shape" 3 1 64 --model "$tmp/m135"
else
  echo "   135M shape: skipped ($build/bench_qstar missing or failed)"
fi
