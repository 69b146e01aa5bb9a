#!/usr/bin/env bash
# The commands that are on the public API alone (flag parsing and printing
# over include/qstar.h): each compiles with only include/ and tools/ on the
# include path, includes no internal header, and libqstar.so exports only
# qstar_ symbols. Needs no data.
# Env: QSTAR = path of the qstar binary.
. "$(dirname "$0")/common.bash"

CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || { echo "SKIP: no C compiler ($CC)"; exit 77; }
for c in generate eval viz; do
  f=$here/tools/cmd_$c.c
  grep -nE '#include *"(cli_internal\.h|\.\./src|(api|core|data|io|model|ops|quietstar|tokenizer|train)/)' "$f" &&
    fail "tools/cmd_$c.c includes an internal header"
  "$CC" -std=c11 -Wall -Wextra -Werror -I"$here/include" -I"$here/tools" -fsyntax-only "$f" 2>"$tmp/err" ||
    { fail "tools/cmd_$c.c does not compile on the public API alone"; cat "$tmp/err"; }
done
so=$(dirname "$QSTAR")/libqstar.so
if [ -f "$so" ] && command -v nm >/dev/null 2>&1; then
  nm -D --defined-only "$so" | awk '{print $NF}' | grep -v '^qstar_' >"$tmp/extra"
  [ -s "$tmp/extra" ] && { fail "libqstar.so exports symbols without the qstar_ prefix"; head "$tmp/extra"; }
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "public_cli: generate, eval and viz are on the public API alone"
