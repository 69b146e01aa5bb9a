# common.bash: sourced by the CLI tests (not a test itself: the runner takes *.sh).
# Sets: here (repo root), QSTAR (binary), PY (python), tmp (removed on exit),
# fails (count) and the helpers fail and expect_rc.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QSTAR=${QSTAR:-$here/build/qstar}
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }

# expect_rc RC PATTERN CMD...: runs CMD, checks the exit code and that stderr
# contains PATTERN (fixed string; empty = anything); an error is one line.
expect_rc() {
  local want=$1 pat=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ "$rc" -ne "$want" ]; then fail "exit $rc (want $want): $*"; sed 's/^/  stderr: /' "$tmp/err"; return; fi
  if [ -n "$pat" ] && ! grep -qF -- "$pat" "$tmp/err"; then fail "stderr of '$*' lacks '$pat'"; sed 's/^/  stderr: /' "$tmp/err"; fi
  if [ "$want" -ne 0 ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; then fail "'$*' should print one error line"; sed 's/^/  stderr: /' "$tmp/err"; fi
}
