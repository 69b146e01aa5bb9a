# train_common.bash: sourced by the training CLI tests (train.sh, finetune.sh,
# train_kill.sh; not a test itself). Sets Q (the binary, absolute), PY, tmp
# (removed on exit), fail (0 until a check fails) and the helpers bad, expect
# and interrupt_run. Runs from the repository root.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
Q=${QSTAR:-build/qstar}
case "$Q" in /*) ;; *) Q="$PWD/$Q" ;; esac
PY=${PYTHON:-python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# expect RC DESCRIPTION -- command...: checks the exit code, keeps output in $out
expect() {
  local want=$1 what=$2; shift 3
  out=$("$@" 2>&1); rc=$?
  [ "$rc" -eq "$want" ] || bad "$what: exit $rc (want $want): $out"
}

# interrupt_run SUBCMD TOTAL DIR ARGS...: starts `qstar SUBCMD ARGS --out DIR`
# (a run of TOTAL steps), sends SIGINT once its log holds 5 step records and
# checks that it exits 0. Its output is left in DIR.out; sets `stopped` to the
# step it stopped at.
interrupt_run() {
  local sub=$1 total=$2 dir=$3; shift 3
  "$Q" "$sub" "$@" --out "$dir" > "$dir.out" 2>&1 &
  local pid=$! rc
  for _ in $(seq 500); do
    [ "$(grep -c '"loss"' "$dir/log.jsonl" 2>/dev/null)" -ge 5 ] 2>/dev/null && break
    sleep 0.02
  done
  kill -INT $pid 2>/dev/null
  wait $pid; rc=$?
  [ $rc -eq 0 ] || bad "SIGINT: exit $rc: $(cat "$dir.out")"
  stopped=$(sed -n "s/^steps: \([0-9]*\) of $total.*/\1/p" "$dir.out")
  echo "SIGINT stopped the run at step $stopped of $total"
}
