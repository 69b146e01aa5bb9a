# common.bash: sourced by the CLI tests (not a test itself: the runner takes *.sh).
# Sets: here (repo root), QSTAR (binary), PY (python), tmp (removed on exit),
# fails (count) and the helpers fail and expect_rc.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QSTAR=${QSTAR:-$here/build/qstar}
PY=${PYTHON:-/usr/bin/python3}  # Debian python3-torch lives there, not in a pyenv python
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

# need_data WHAT FILE...: unless every FILE (relative to $QSTAR_DATA) exists,
# prints a SKIP line for WHAT and exits (1 if checks already failed, else 77,
# which the runner counts as skipped).
need_data() {
  local what=$1; shift
  local f ok=1
  [ -n "${QSTAR_DATA:-}" ] || ok=0
  for f in "$@"; do [ "$ok" -eq 1 ] && [ ! -f "$QSTAR_DATA/$f" ] && ok=0; done
  if [ "$ok" -eq 0 ]; then
    echo "SKIP: QSTAR_DATA is not set (or lacks $*); skipping the $what checks"
    [ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
    exit 77
  fi
}

# qs_checkpoint DIR: stories260K with fresh Quiet-STaR tensors (n_ahead 6,
# a non-zero mixing head) written to DIR; sets M, BIN, TOK.
qs_checkpoint() {
  M=$QSTAR_DATA/stories260K
  BIN=$M/stories260K.bin
  TOK=$M/tok512.bin
  "$QSTAR" convert --model "$BIN" --tokenizer "$TOK" --out "$1" --add-quietstar --n-ahead 6 --talk-head-std 1 \
    2>"$tmp/err" || { fail "convert --add-quietstar"; cat "$tmp/err"; }
}
