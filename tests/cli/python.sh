#!/usr/bin/env bash
# The Python bindings (python/qstar over build/libqstar.so): runs the pytest
# suite tests/python (greedy and thinking text equal to qstar generate, score
# equal to qstar eval --task nll per token, a Trainer's 10 steps byte-identical
# to qstar train / finetune, qstar.Error on bad paths). Needs python3-pytest
# and python3-numpy; skipped under the sanitizer build (a Python interpreter
# cannot load an ASan-instrumented library) and without $QSTAR_DATA.
. "$(dirname "$0")/common.bash"
build=$(cd "$(dirname "$QSTAR")" && pwd)
case "$build" in *build-san*) echo "SKIP: the Python bindings are tested in the normal build, not under sanitizers"; exit 77 ;; esac
[ -f "$build/libqstar.so" ] || { echo "FAIL: no $build/libqstar.so"; exit 1; }
"$PY" -c "import pytest, numpy" 2>/dev/null || { echo "SKIP: python3-pytest / python3-numpy not installed"; exit 77; }
need_data "Python binding" stories260K/stories260K.bin stories260K/tok512.bin tinystories/valid.txt
cd "$tmp" && QSTAR_LIB="$build/libqstar.so" QSTAR="$QSTAR" "$PY" -m pytest -q -p no:cacheprovider "$here/tests/python" || exit 1
echo "python: all checks passed"
