#!/usr/bin/env bash
# Tokenization throughput on $QSTAR_DATA/tinystories/valid.txt for the four
# Hugging Face tokenizer.json files (GPT-2, Llama-2, Llama-3, Qwen3) and the
# Llama-2 SentencePiece tokenizer.model: qstar
# (`qstar tokenize --time`, encoding only) next to the transformers.js peer
# (@lenml/tokenizers in build/tokref, installed with npm when missing; Python
# SentencePiece for tokenizer.model), in
# MB/s, with the ratio and whether both give the same number of tokens.
# Called by scripts/bench.sh; skips (exit 0) with a message when data is absent.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
QSTAR=$here/$build/qstar
D=${QSTAR_DATA:-}
TXT=$D/tinystories/valid.txt
H=$D/tokenizers/hf-json
if [ -z "$D" ] || [ ! -f "$TXT" ] || [ ! -d "$H" ]; then
  echo "bench_tok.sh: QSTAR_DATA lacks tinystories/valid.txt or tokenizers/hf-json; skipping the tokenizer benchmark"
  exit 0
fi
REF=$here/build/tokref
peer=1
if [ ! -d "$REF/node_modules/@lenml/tokenizers" ]; then
  mkdir -p "$REF"
  command -v npm >/dev/null && (cd "$REF" && timeout 300 npm install --no-audit --no-fund @lenml/tokenizers >/dev/null 2>&1) || peer=0
fi
[ "$peer" -eq 1 ] || echo "bench_tok.sh: npm unreachable; printing qstar's numbers only"
echo "tokenization of tinystories/valid.txt ($(wc -c <"$TXT") bytes)"
printf '%-8s %12s %14s %8s %10s\n' tokenizer "qstar MB/s" "peer MB/s" ratio "tokens"
for d in gpt2 llama2 llama3 qwen3; do
  q=$("$QSTAR" tokenize --tokenizer "$H/$d" --file "$TXT" --time 2>&1 >/dev/null | sed -n 's/^encode: [0-9]* bytes, \([0-9]*\) tokens, \([0-9.]*\) MB\/s$/\2 \1/p')
  qm=${q% *}; qn=${q#* }
  pm="-"; ratio="-"; same=""
  if [ "$peer" -eq 1 ]; then
    p=$(TOKREF=$REF timeout 600 node "$here/tests/fixtures/tok_peer.mjs" bench "$H/$d" "$TXT" 2>/dev/null)
    if [ -n "$p" ]; then
      pm=${p% *}; pn=${p#* }
      ratio=$(awk -v a="$qm" -v b="$pm" 'BEGIN { printf "%.1fx", a / b }')
      [ "$pn" = "$qn" ] && same=" (same)" || same=" (peer: $pn)"
    fi
  fi
  printf '%-8s %12s %14s %8s %10s%s\n' "$d" "$qm" "$pm" "$ratio" "$qn" "$same"
done
# SentencePiece tokenizer.model (Llama-2), next to Python SentencePiece (Debian python3-sentencepiece)
SPM=$D/tokenizers/llama2/tokenizer.model
if [ -f "$SPM" ]; then
  q=$("$QSTAR" tokenize --tokenizer "$SPM" --file "$TXT" --time 2>&1 >/dev/null | sed -n 's/^encode: [0-9]* bytes, \([0-9]*\) tokens, \([0-9.]*\) MB\/s$/\2 \1/p')
  qm=${q% *}; qn=${q#* }
  pm="-"; ratio="-"; same=""
  p=$(/usr/bin/python3 - "$SPM" "$TXT" 2>/dev/null <<'PYEOF'
import sys, time
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
text = open(sys.argv[2], encoding="utf-8").read()
t0 = time.time(); ids = sp.encode(text); dt = time.time() - t0
print(f"{len(text.encode()) / 1e6 / dt:.3f} {len(ids)}")
PYEOF
)
  if [ -n "$p" ]; then
    pm=${p% *}; pn=${p#* }
    ratio=$(awk -v a="$qm" -v b="$pm" 'BEGIN { printf "%.1fx", a / b }')
    [ "$pn" = "$qn" ] && same=" (same)" || same=" (peer: $pn)"
  else
    echo "bench_tok.sh: python3-sentencepiece missing; no peer for tokenizer.model"
  fi
  printf '%-8s %12s %14s %8s %10s%s\n' "llama2.model" "$qm" "$pm" "$ratio" "$qn" "$same"
  echo "(llama2.model: peer = Python SentencePiece)"
fi
