#!/bin/sh
# make experiment: the whole thinking experiment, then its report.
#   SEED=S    first seed (the three seeds are S, S+1, S+2; default 1)
#   QUICK=1   tiny sizes (CI): every step in a minute or two; numbers meaningless
#   OUT=DIR   output directory (default runs/experiment, quick: runs/experiment-quick)
#   JOBS=N    seeds run in parallel (default 3, each qstar command with THREADS threads)
#   THREADS=N threads per qstar command (default 1)
#   COMPARE=D another run's directory or results.json (e.g. another SEED's):
#             the report gains a section saying whether this run reproduces its
#             conclusions within the reported intervals
set -eu
here=$(dirname "$0")
root=$(cd "$here/../.." && pwd)
seed=${SEED:-1}
seeds="$seed,$((seed + 1)),$((seed + 2))"
quick=""
out=${OUT:-runs/experiment}
if [ "${QUICK:-0}" = 1 ]; then
  quick="--quick"
  out=${OUT:-runs/experiment-quick}
fi
start=$(date +%s)
python3 "$here/experiment.py" --qstar "${QSTAR:-$root/build/qstar}" --out "$out" --seeds "$seeds" \
  --threads "${THREADS:-1}" --jobs "${JOBS:-3}" $quick
python3 "$here/analyze.py" --out "$out" ${COMPARE:+--compare "$COMPARE"}
echo "experiment: $out/report.md ($(( $(date +%s) - start )) s)"
