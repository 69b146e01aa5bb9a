#!/usr/bin/env bash
# qstar dump-step against an independent implementation of SPEC sections 1-3
# (tests/reference/quietstar_spec.py) on FRESH random models and batches
# (a new seed every run), plus bad-input checks.
set -u
Q=${QSTAR:-build/qstar}
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
if "$PY" -c 'import torch, numpy' 2>/dev/null; then
  seed=${QS_SEED:-$(( (RANDOM << 8) ^ $$ ))}
  echo "fresh fixtures with seed offset $seed"
  "$PY" tests/reference/make_quietstar_fixtures.py --out "$tmp/fx" --seed-offset "$seed" --no-run >/dev/null
  for d in "$tmp"/fx/*/; do
    n=$(basename "$d"); args=$(cat "$d/args.txt")
    # shellcheck disable=SC2086
    "$Q" dump-step --model "$d/model" --batch "$d/batch.safetensors" --out "$tmp/$n.c.st" $args 2>/dev/null \
      || { echo "FAIL $n: dump-step failed"; fail=1; continue; }
    # shellcheck disable=SC2086
    "$PY" tests/reference/quietstar_spec.py --model "$d/model" --batch "$d/batch.safetensors" --out "$tmp/$n.spec.st" $args \
      || { echo "FAIL $n: quietstar_spec.py failed"; fail=1; continue; }
    printf '%s: ' "$n"
    "$PY" tests/reference/compare_st.py "$tmp/$n.spec.st" "$tmp/$n.c.st" | tail -1
    "$PY" tests/reference/compare_st.py "$tmp/$n.spec.st" "$tmp/$n.c.st" >/dev/null || { echo "FAIL $n (seed $seed)"; fail=1; }
  done
else
  echo "SKIP: python3-torch not installed; dump-step vs SPEC implementation not run"
fi
# bad inputs: clear message, non-zero exit
fx=tests/fixtures/quietstar/a_tied
out=$("$Q" dump-step --model /nonexistent --batch "$fx/batch.safetensors" --out "$tmp/x" 2>&1); rc=$?
[ $rc -ne 0 ] && [[ "$out" == *nonexistent* ]] || { echo "FAIL: missing model: rc=$rc: $out"; fail=1; }
head -c 100 "$fx/batch.safetensors" > "$tmp/trunc.st"
out=$("$Q" dump-step --model "$fx/model" --batch "$tmp/trunc.st" --out "$tmp/x" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *trunc.st* ]] || { echo "FAIL: truncated batch: rc=$rc: $out"; fail=1; }
out=$("$Q" dump-step --model "$fx/model" --batch "$fx/batch.safetensors" --out "$tmp/x" --n-ahead 2 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: --n-ahead 2 accepted: rc=$rc: $out"; fail=1; }
out=$("$Q" dump-step --model "$fx/model" --batch "$fx/batch.safetensors" --out "$tmp/x" --bogus 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: unknown flag accepted: rc=$rc"; fail=1; }
# thought_ids of the wrong shape (n_ahead 6 needs 3 thought tokens, fixture has 2)
out=$("$Q" dump-step --model "$fx/model" --batch "$fx/batch.safetensors" --out "$tmp/x" --n-ahead 6 --n-talk 2 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *thought_ids* ]] || { echo "FAIL: wrong thought shape: rc=$rc: $out"; fail=1; }
[ $fail -eq 0 ] && echo "dump-step: all checks passed"
exit $fail
