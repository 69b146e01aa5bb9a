#!/usr/bin/env bash
# Runs every test binary given on the command line, then the CLI tests, and
# prints one closing line "N passed, N failed, N skipped" (N = test
# binaries/scripts). A test that exits 77 skipped; its SKIP: lines give why.
set -u
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
here=$(cd "$(dirname "$0")/.." && pwd)
pass=0; fail=0; skip=0; failed=(); skipped=()
# record NAME RC OUTFILE: counts the result; a skip keeps its first SKIP: reason.
# A unit-test binary that passes with some cases skipped (cmocka "[  SKIPPED ] N
# test(s)") counts as passed, and its skipped cases are counted and listed too.
cases=0; partial=0
record() {
  if [ "$2" -eq 0 ]; then pass=$((pass+1))
    local k
    k=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s).*/\1/p' "$3" | head -1)
    if [ -n "$k" ] && [ "$k" -gt 0 ]; then
      cases=$((cases+k))
      skipped+=("$(basename "$1"): $k case(s) ($(grep -m1 -o 'SKIP  *\].*' "$3" | sed 's/^SKIP  *\] *//'))")
    elif grep -q '^SKIP:' "$3"; then # a script that passed what it could run
      partial=$((partial+1))
      skipped+=("$(basename "$1"): partly ($(grep -m1 -o 'SKIP:.*' "$3" | cut -c7-))")
    fi
  elif [ "$2" -eq 77 ]; then skip=$((skip+1)); skipped+=("$(basename "$1") ($(grep -m1 -o 'SKIP:.*' "$3" | cut -c7-))")
  else fail=$((fail+1)); failed+=("$1"); fi
}
for t in "$@"; do
  echo "== $t"
  "$t" >"${TMPDIR:-/tmp}/qs_test_out.$$" 2>&1; rc=$?
  cat "${TMPDIR:-/tmp}/qs_test_out.$$"
  record "$t" "$rc" "${TMPDIR:-/tmp}/qs_test_out.$$"
done
for t in "$here"/tests/cli/*.sh; do
  [ -f "$t" ] || continue
  echo "== $t"
  QSTAR="$here/${BUILD:-build}/qstar" bash "$t" >"${TMPDIR:-/tmp}/qs_test_out.$$" 2>&1; rc=$?
  cat "${TMPDIR:-/tmp}/qs_test_out.$$"
  record "$t" "$rc" "${TMPDIR:-/tmp}/qs_test_out.$$"
done
rm -f "${TMPDIR:-/tmp}/qs_test_out.$$"
[ ${#skipped[@]} -gt 0 ] && printf 'SKIPPED: %s\n' "${skipped[@]}"
[ ${#failed[@]} -gt 0 ] && printf 'FAILED: %s\n' "${failed[@]}"
extra=()
[ $cases -gt 0 ] && extra+=("$cases unit-test cases skipped inside passing binaries")
[ $partial -gt 0 ] && extra+=("$partial scripts passed with parts skipped")
echo "$pass passed, $fail failed, $skip skipped$([ ${#extra[@]} -gt 0 ] && printf ' (and %s)' "$(IFS=';'; echo "${extra[*]}" | sed 's/;/, /g')")$([ $((skip+cases+partial)) -gt 0 ] && echo "; reasons above (SKIPPED:)")"
[ "$fail" -eq 0 ]
