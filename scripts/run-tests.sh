#!/usr/bin/env bash
# Runs every test binary given on the command line, then the CLI tests, and
# prints one closing line "N passed, N failed" (N = test binaries/scripts).
set -u
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
here=$(cd "$(dirname "$0")/.." && pwd)
pass=0; fail=0; failed=()
for t in "$@"; do
  echo "== $t"
  if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$t"); fi
done
for t in "$here"/tests/cli/*.sh; do
  [ -f "$t" ] || continue
  echo "== $t"
  if QSTAR="$here/${BUILD:-build}/qstar" bash "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$t"); fi
done
[ ${#failed[@]} -gt 0 ] && printf 'FAILED: %s\n' "${failed[@]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
