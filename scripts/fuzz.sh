#!/usr/bin/env bash
# Runs the libFuzzer harnesses given on the command line (build-fuzz/fuzz_<name>)
# one after another: first over tests/fuzz/regress/<name>/ (every past finding
# must pass), then FUZZ_SECONDS seconds each from a seed corpus made by
# tests/fuzz/make_seeds.py (build-fuzz/corpus/<name>, kept between runs).
# Prints executions and coverage per target and a summary; exit 1 on any finding
# (the input is kept as build-fuzz/artifacts/<name>-crash-*).
set -u
secs=${FUZZ_SECONDS:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
mkdir -p build-fuzz/artifacts build-fuzz/corpus build-fuzz/logs
python3 tests/fuzz/make_seeds.py build-fuzz/corpus || { echo "fuzz: cannot make the seed corpora"; exit 1; }
mkdir -p build-fuzz/corpus/train_state
build-fuzz/seed_train_state build-fuzz/corpus/train_state/seed || { echo "fuzz: cannot write the train_state seed"; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rows=(); bad=0; total_execs=0
for bin in "$@"; do
  name=$(basename "$bin"); name=${name#fuzz_}
  corpus=build-fuzz/corpus/$name; mkdir -p "$corpus"
  log=build-fuzz/logs/$name.log
  # past findings first
  reg=tests/fuzz/regress/$name
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    if ! "$bin" -runs=0 "$reg"/* >"$log.regress" 2>&1; then
      echo "fuzz $name: a regression input fails again (see $log.regress)"; tail -20 "$log.regress"
      rows+=("$(printf '%-20s %12s %8s %8s  %s' "$name" - - - "REGRESSION FAILS")"); bad=1; continue
    fi
  fi
  # -rss_limit_mb: a parser that takes more than 2 GB on a small input is a finding too
  "$bin" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -artifact_prefix="build-fuzz/artifacts/$name-" "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  n_in=$(ls "$corpus" | wc -l)
  status=ok
  if [ $rc -ne 0 ]; then status="FINDING (exit $rc; $(ls -t build-fuzz/artifacts/$name-* 2>/dev/null | head -1))"; bad=1
    grep -m3 -E "ERROR|runtime error|round trip" "$log"; fi
  printf 'fuzz %-18s %10s execs  cov %6s  ft %6s  corpus %5s  %s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$n_in" "$status"
  rows+=("$(printf '%-20s %12s %8s %8s  %s' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$status")")
  total_execs=$((total_execs + ${execs:-0}))
done
echo
echo "fuzz summary ($secs s per target)"
printf '%-20s %12s %8s %8s  %s\n' target executions coverage features result
printf '%s\n' "${rows[@]}"
echo "${#rows[@]} targets, $total_execs executions, $([ $bad -eq 0 ] && echo "no findings" || echo "FINDINGS: see above")"
exit $bad
