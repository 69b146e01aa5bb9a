#!/bin/sh
# Self-check of the Quiet-STaR reference: on every fixture in tests/fixtures/quietstar,
#  1. quietstar_ref.py (port of the released code) reproduces expected.safetensors, and
#  2. quietstar_spec.py (independent direct reading of SPEC.md) agrees with it,
# per tensor within 1e-5 + 1e-3 * max|ref|.  Exit status 1 on any disagreement.
#   sh tests/reference/check_ref.sh [-v]
set -u
PY=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX="$HERE/../fixtures/quietstar"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
n=0
for d in "$FIX"/*/; do
    name=$(basename "$d")
    args=$(cat "$d/args.txt")
    n=$((n + 1))
    for impl in ref spec; do
        script="$HERE/quietstar_$impl.py"
        # shellcheck disable=SC2086
        if ! "$PY" "$script" --model "$d/model" --batch "$d/batch.safetensors" \
                --out "$TMP/$name.$impl.safetensors" $args; then
            echo "FAIL $name: quietstar_$impl.py crashed"; fail=1; continue
        fi
        printf '%s %-5s vs expected: ' "$name" "$impl"
        "$PY" "$HERE/compare_st.py" "$d/expected.safetensors" \
            "$TMP/$name.$impl.safetensors" "$@" || fail=1
    done
done
[ "$n" -gt 0 ] || { echo "no fixtures in $FIX"; exit 1; }
# the reference's Llama forward against llama2.c's greedy stories260K text (needs data)
if [ -n "${QSTAR_DATA:-}" ]; then
    "$PY" "$HERE/check_llama_stories.py" "$QSTAR_DATA" || fail=1
else
    echo "check_llama_stories: QSTAR_DATA not set, skipped"
fi
[ $fail -eq 0 ] && echo "check_ref: all $n fixtures agree" || echo "check_ref: FAILED"
exit $fail
