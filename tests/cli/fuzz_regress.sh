#!/usr/bin/env bash
# CLI test: every libFuzzer harness (tests/fuzz/fuzz_*.c), built with the
# ordinary compiler and tests/fuzz/replay.c instead of libFuzzer, replays
# every past finding (tests/fuzz/regress/<name>/) and its seed corpus
# (tests/fuzz/make_seeds.py) without a crash or a failed round trip. (The
# fuzzing itself is `make fuzz`, which needs clang.)
. "$(dirname "$0")/common.bash"
CC=${CC:-cc}
LIB=$here/${BUILD:-build}/libqstar.a
[ -f "$LIB" ] || { echo "SKIP: $LIB not built"; exit 77; }
command -v "$PY" >/dev/null 2>&1 || { echo "SKIP: $PY not found (it writes the seed corpora)"; exit 77; }
flags=$(pkg-config --cflags openblas libcjson libpcre2-8 libutf8proc)
# the library's own link line (make test passes it: MPI and oneDNN when built with them)
libs=${QSTAR_LDLIBS:-"$(pkg-config --libs openblas libcjson libpcre2-8 libutf8proc) -lm -fopenmp"}
san=""
[ "${BUILD:-build}" = build-san ] && san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
"$PY" "$here/tests/fuzz/make_seeds.py" "$tmp/seeds" || fail "make_seeds.py"
# shellcheck disable=SC2086
$CC -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -O1 -fopenmp $san -I"$here/include" -I"$here/src" -I"$here/tests/fuzz" \
  $flags "$here/tests/fuzz/seed_train_state.c" "$LIB" $libs -o "$tmp/seed_train_state" && mkdir -p "$tmp/seeds/train_state" &&
  "$tmp/seed_train_state" "$tmp/seeds/train_state/seed" || fail "seed_train_state"
n=0
for src in "$here"/tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c); name=${name#fuzz_}
  bin=$tmp/fuzz_$name
  # shellcheck disable=SC2086
  if ! $CC -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -O1 -g -fopenmp $san -I"$here/include" -I"$here/src" \
       -I"$here/tests/fuzz" $flags "$src" "$here/tests/fuzz/replay.c" "$LIB" $libs -o "$bin" 2>"$tmp/cc.err"; then
    fail "$name: does not build"; cat "$tmp/cc.err"; continue
  fi
  files=()
  [ -d "$here/tests/fuzz/regress/$name" ] && files+=("$here"/tests/fuzz/regress/"$name"/*)
  [ -d "$tmp/seeds/$name" ] && files+=("$tmp"/seeds/"$name"/*)
  if [ ${#files[@]} -eq 0 ]; then # a harness without seeds here yet: at least the empty input
    echo "note: $name has no seeds in make_seeds.py and no regressions; replaying the empty input"
    : >"$tmp/empty"; files=("$tmp/empty")
  fi
  "$bin" "${files[@]}" >"$tmp/run.out" 2>&1 || { fail "$name: an input fails"; tail -20 "$tmp/run.out"; }
  n=$((n + ${#files[@]}))
done
[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "fuzz_regress: $n inputs replayed through $(ls "$here"/tests/fuzz/fuzz_*.c | wc -l) harnesses, all passed"
