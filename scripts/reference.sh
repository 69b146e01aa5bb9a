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
echo "== GGUF: tests/fixtures/gguf/ (quantised blocks; the shared tiny Llama-2 GGUF's logits when QSTAR_DATA has it)"
"$py" tests/reference/gguf_ref.py quant-fixture tests/fixtures/gguf
gguf_model=${QSTAR_DATA:-/nonexistent}/models/llama2-tiny-random/llama-2-tiny-random.gguf
if [ -f "$gguf_model" ]; then
  "$py" tests/reference/gguf_ref.py logits "$gguf_model" tests/fixtures/gguf/llama2_tiny_logits.json
fi
