#!/usr/bin/env bash
# The CLI and the bench are on the public API alone (flag parsing and
# printing over include/qstar.h): every tools/*.c compiles with only include/
# and tools/ on the include path (bench/bench_qstar.c with include/ only) and
# includes no internal header; the Makefile's CLI line and scripts/bench.sh
# use no -Isrc; src/model/ includes nothing from src/quietstar/; libqstar.so
# exports only qstar_ symbols. Needs no data.
# Env: QSTAR = path of the qstar binary.
. "$(dirname "$0")/common.bash"

CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || { echo "SKIP: no C compiler ($CC)"; exit 77; }
for f in "$here"/tools/*.c "$here"/bench/*.c; do
  rel=${f#"$here"/}
  grep -nE '#include *"(cli_internal\.h|\.\./src|(api|core|data|io|model|ops|quietstar|tokenizer|train)/)' "$f" &&
    fail "$rel includes an internal header"
  inc=(-I"$here/include"); [[ $rel == tools/* ]] && inc+=(-I"$here/tools")
  # the feature macros are the Makefiles (PUBCFLAGS)
  "$CC" -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror "${inc[@]}" -fsyntax-only "$f" 2>"$tmp/err" ||
    { fail "$rel does not compile on the public API alone"; cat "$tmp/err"; }
done
# the build lines of the CLI and the bench
grep -A1 '^$(BIN):' "$here/Makefile" | grep -q -- '-Isrc\|\$(CFLAGS)' && fail "the Makefile builds the CLI with the internal headers"
grep -n -- '-Isrc\|\.\./src' "$here/scripts/bench.sh" && fail "scripts/bench.sh builds the bench with the internal headers"
grep -n '#include *"quietstar/' "$here"/src/model/*.[ch] && fail "src/model includes src/quietstar"
so=$(dirname "$QSTAR")/libqstar.so
if [ -f "$so" ] && command -v nm >/dev/null 2>&1; then
  nm -D --defined-only "$so" | awk '{print $NF}' | grep -v '^qstar_' >"$tmp/extra"
  [ -s "$tmp/extra" ] && { fail "libqstar.so exports symbols without the qstar_ prefix"; head "$tmp/extra"; }
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "public_cli: every command and the bench are on the public API alone"
