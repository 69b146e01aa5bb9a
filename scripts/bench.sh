#!/usr/bin/env bash
# `make bench`: qstar against the PyTorch reference (float32, 2 threads each).
# Builds build/bench_qstar from bench/*.c with the library's flags, then runs
# bench/run_bench.py, which prints the tables and writes build/bench.json.
#   scripts/bench.sh [--quick]     (or BENCH_QUICK=1: small configs, < 2 min)
# Needs `make all` first (the Makefile's bench target does it). The reference
# side needs Debian's python3-torch ($PYTHON, default /usr/bin/python3); without
# it only qstar's numbers are printed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build=${BUILD:-build}
[ -f "$build/libqstar.a" ] || { echo "bench.sh: $build/libqstar.a missing; run make first" >&2; exit 1; }
for a in "$@"; do
  case $a in
    --quick) export BENCH_QUICK=1 ;;
    *) echo "usage: scripts/bench.sh [--quick]" >&2; exit 2 ;;
  esac
done
CC=${CC:-cc}
CFLAGS="-std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O3 -march=native -g -fopenmp"
pkgs="openblas libcjson libpcre2-8 libutf8proc"
dnnl=""  # a library built with oneDNN (QS_HAVE_DNNL) needs it at link time too
# (grep without -q reads all of nm's output: with -q, nm dies of SIGPIPE and pipefail says "no")
if nm "$build/libqstar.a" 2>/dev/null | grep " U dnnl_" >/dev/null; then dnnl="-ldnnl"; fi
# a library built with MPI (src/train/dist.c) links with it
[ "${NOMPI:-0}" != 1 ] && pkg-config --exists ompi-c 2>/dev/null && pkgs="$pkgs ompi-c"
for src in bench/*.c; do
  out="$build/$(basename "${src%.c}")"
  if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ "$build/libqstar.a" -nt "$out" ]; then
    echo "bench.sh: building $out"
    # shellcheck disable=SC2046
    $CC $CFLAGS -Iinclude $(pkg-config --cflags $pkgs) "$src" "$build/libqstar.a" \
        $(pkg-config --libs $pkgs) $dnnl -lm -o "$out"
  fi
done
py=${PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
BUILD=$build scripts/bench_tok.sh
BUILD=$build scripts/bench_mpi.sh || echo "bench.sh: the data-parallel comparison failed (see above)"
BUILD=$build exec "$py" bench/run_bench.py
