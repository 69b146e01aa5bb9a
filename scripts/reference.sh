#!/usr/bin/env bash
# Regenerates the PyTorch reference fixtures under tests/fixtures/ (`make reference`).
# Needs Debian's python3-torch and python3-numpy (no transformers / safetensors
# packages: tests/reference/ carries its own safetensors reader/writer).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
  echo "reference.sh: PyTorch/numpy not importable by $py; run: sudo apt-get install -y python3-torch python3-numpy" >&2
  exit 1
fi
cd "$here"
echo "== plain language model: tests/fixtures/llama/"
"$py" tests/reference/llama_ref.py tests/fixtures/llama
echo "== plain language model, GPT-2: tests/fixtures/llama/gpt2_*"
"$py" tests/reference/gpt2_ref.py tests/fixtures/llama
if [ -f tests/reference/make_quietstar_fixtures.py ]; then
  echo "== Quiet-STaR step: tests/reference/make_quietstar_fixtures.py"
  "$py" tests/reference/make_quietstar_fixtures.py
fi
