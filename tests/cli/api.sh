#!/usr/bin/env bash
# libqstar as an installed library: `make install PREFIX=$tmp/prefix`, then the
# examples built against it with pkg-config (shared and static): libqstar.so
# exports only qstar_* symbols; examples/generate prints stories260K's greedy
# continuation exactly as `qstar generate --temperature 0` does, and with
# --think from a Quiet-STaR checkpoint and a fixed seed the CLI's text;
# examples/train trains a few steps and writes a checkpoint the CLI reads.
# Skipped under the sanitizer build (the install is of the normal build).
. "$(dirname "$0")/common.bash"
build=$(cd "$(dirname "$QSTAR")" && pwd)
case "$build" in *build-san*) echo "SKIP: the install test runs in the normal build, not under sanitizers"; exit 77 ;; esac
pre=$tmp/prefix
mk() { env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -C "$here" "$@"; }
mk install PREFIX="$pre" >"$tmp/install.log" 2>&1 || { fail "make install"; tail "$tmp/install.log"; exit 1; }
for f in lib/libqstar.a lib/libqstar.so lib/libqstar.so.0 include/qstar.h bin/qstar lib/pkgconfig/qstar.pc \
         lib/python3/dist-packages/qstar/__init__.py; do
  [ -e "$pre/$f" ] || fail "make install did not install $f"
done
# only the public API is exported, under a versioned soname
bad=$(nm -D --defined-only "$pre/lib/libqstar.so" | awk '{print $3}' | grep -v '^qstar_' | head -5)
[ -z "$bad" ] || fail "libqstar.so exports non-qstar_ symbols: $bad"
nm -D --defined-only "$pre/lib/libqstar.so" | grep -q ' qstar_model_load$' || fail "qstar_model_load is not exported"
readelf -d "$pre/lib/libqstar.so" | grep -q 'SONAME.*libqstar.so.0' || fail "libqstar.so has no versioned soname"
mk examples PREFIX="$pre" EXDIR="$tmp/ex" >"$tmp/ex.log" 2>&1 || { fail "make examples"; cat "$tmp/ex.log"; exit 1; }
# the acceptance line as written: cc examples/generate.c $(pkg-config ...)
PKG_CONFIG_PATH=$pre/lib/pkgconfig cc "$here/examples/generate.c" \
  $(PKG_CONFIG_PATH=$pre/lib/pkgconfig pkg-config --cflags --libs qstar) -o "$tmp/gen_pc" || fail "cc with pkg-config"

need_data "installed library" stories260K/stories260K.bin stories260K/tok512.bin tinystories/valid.txt
BIN=$QSTAR_DATA/stories260K/stories260K.bin TOK=$QSTAR_DATA/stories260K/tok512.bin
P="Once upon a time"
"$QSTAR" generate --model "$BIN" --tokenizer "$TOK" --prompt "$P" --max-tokens 60 --temperature 0 >"$tmp/cli.txt" 2>/dev/null
[ "$(wc -c <"$tmp/cli.txt")" -gt 80 ] || fail "the CLI printed too little"
for g in "$tmp/ex/generate" "$tmp/ex/generate-static" "$tmp/gen_pc"; do
  LD_LIBRARY_PATH=$pre/lib "$g" "$BIN" "$TOK" --prompt "$P" --max-tokens 60 --temperature 0 >"$tmp/ex.txt" 2>"$tmp/ex.err" \
    || { fail "$(basename "$g") failed"; cat "$tmp/ex.err"; }
  cmp -s "$tmp/cli.txt" "$tmp/ex.txt" || { fail "$(basename "$g"): greedy text differs from qstar generate"; diff "$tmp/cli.txt" "$tmp/ex.txt" | head -4; }
done
ldd "$tmp/ex/generate" | grep -q 'libqstar.so.0' || fail "examples/generate is not linked with libqstar.so"
ldd "$tmp/ex/generate-static" | grep -q 'libqstar' && fail "examples/generate-static needs libqstar.so"
# thinking: a Quiet-STaR checkpoint and a fixed seed
CK=$tmp/ck
qs_checkpoint "$CK"
"$QSTAR" generate --model "$CK" --think --seed 11 --prompt "$P" --max-tokens 40 >"$tmp/cli_t.txt" 2>/dev/null
for g in "$tmp/ex/generate" "$tmp/ex/generate-static"; do
  "$g" "$CK" --think --seed 11 --prompt "$P" --max-tokens 40 >"$tmp/ex_t.txt" 2>"$tmp/ex.err" || { fail "$(basename "$g") --think"; cat "$tmp/ex.err"; }
  cmp -s "$tmp/cli_t.txt" "$tmp/ex_t.txt" || { fail "$(basename "$g") --think: text differs from the CLI's"; diff "$tmp/cli_t.txt" "$tmp/ex_t.txt" | head -4; }
done
"$tmp/ex/generate" "$CK" --think --seed 11 --prompt "$P" --max-tokens 40 --show-thoughts >"$tmp/ex_s.txt" 2>/dev/null
[ "$(grep -o '\[' "$tmp/ex_s.txt" | wc -l)" -ge 20 ] || fail "--show-thoughts printed too few thoughts"
# errors: one line, non-zero, no crash
"$tmp/ex/generate" "$tmp/none.bin" "$TOK" >/dev/null 2>"$tmp/err"; rc=$?
[ "$rc" -eq 1 ] && grep -q "none.bin" "$tmp/err" || fail "a missing model: exit $rc, $(cat "$tmp/err")"
# training through the library: a checkpoint qstar reads
head -n 300 "$QSTAR_DATA/tinystories/valid.txt" >"$tmp/stories.txt"
"$tmp/ex/train" "$BIN" "$TOK" "$tmp/stories.txt" "$tmp/run" 3 >"$tmp/train.out" 2>"$tmp/train.err" \
  || { fail "examples/train"; cat "$tmp/train.err"; }
grep -q "^held-out NLL: .* (with thoughts" "$tmp/train.out" || fail "examples/train output: $(cat "$tmp/train.out")"
[ "$(grep -c '^step ' "$tmp/train.err")" -eq 3 ] || fail "examples/train: expected 3 progress lines"
"$QSTAR" generate --model "$tmp/run/ckpt" --max-tokens 20 --seed 1 >/dev/null 2>&1 || fail "qstar cannot read the example's checkpoint"
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "api: all checks passed"
