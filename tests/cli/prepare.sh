#!/usr/bin/env bash
# qstar prepare: a generated corpus (TinyStories stories repeated, a few MB)
# tokenized into a token directory; training from it (Quiet-STaR `train` and
# plain `finetune`) must draw the same batches as training from the text
# file with the same seed: byte-identical checkpoints. The directory's own
# counts are checked against `qstar tokenize`; broken directories give a
# one-line error naming the file. Needs $QSTAR_DATA. About 15 s.
. "$(dirname "$0")/train_common.bash"

D=${QSTAR_DATA:-}
if [ -z "$D" ] || [ ! -f "$D/stories260K/stories260K.bin" ] || [ ! -f "$D/tinystories/valid.txt" ]; then
  echo "SKIP: QSTAR_DATA is not set (or lacks stories260K/, tinystories/): prepare tests not run"; exit 77
fi
TOK=$D/stories260K/tok512.bin
# ~2 MB: the first 2000 lines of valid.txt, 4 times, every copy with its stories in another order
head -n 2000 "$D/tinystories/valid.txt" > "$tmp/part.txt"
for s in 1 2 3 4; do
  "$PY" - "$tmp/part.txt" "$s" >> "$tmp/corpus.txt" <<'EOF'
import random, sys
docs = [d for d in open(sys.argv[1], encoding='utf-8').read().split('\n\n') if d.strip()]
random.Random(int(sys.argv[2])).shuffle(docs)
sys.stdout.write('\n\n'.join(docs) + '\n\n')
EOF
done
expect 0 "prepare" -- "$Q" prepare --tokenizer "$TOK" --data "$tmp/corpus.txt" --out "$tmp/tk" --threads 2
echo "$out" | tail -2
[[ "$out" == *"tok/s"* ]] || bad "prepare printed no tokens/s: $out"
for f in meta.json tokens.bin docs.idx; do [ -f "$tmp/tk/$f" ] || bad "prepare wrote no $f"; done
n_docs=$(sed -n 's/.*"n_docs": \([0-9]*\).*/\1/p' "$tmp/tk/meta.json")
n_tok=$(sed -n 's/.*"n_tokens": \([0-9]*\).*/\1/p' "$tmp/tk/meta.json")
[ "$(stat -c %s "$tmp/tk/tokens.bin")" = $((2 * n_tok)) ] || bad "tokens.bin is not n_tokens uint16"
[ "$(stat -c %s "$tmp/tk/docs.idx")" = $((8 * n_docs)) ] || bad "docs.idx is not n_docs uint64"
# the first document's ids equal qstar tokenize's (BOS first)
first=$(awk 'BEGIN{RS=""} NR==1{print; exit}' "$tmp/corpus.txt")
want="1 $("$Q" tokenize --tokenizer "$TOK" --text "$first" | tr -s ' \n' ' ' | sed 's/ $//')"
end=$("$PY" -c "import struct,sys; d=open(sys.argv[1],'rb').read(); print(struct.unpack('<Q', d[8:16])[0])" "$tmp/tk/docs.idx")
got=$("$PY" -c "import struct,sys; d=open(sys.argv[1],'rb').read(); n=int(sys.argv[2]); print(' '.join(map(str, struct.unpack('<%dH' % n, d[:2*n]))))" "$tmp/tk/tokens.bin" "$end")
[ "$got" = "$want" ] || bad "first document: prepare gives '$got', tokenize '$want'"

M=(--model "$D/stories260K/stories260K.bin" --tokenizer "$TOK" --threads 1 --seed 9 --steps 6 --eval-every 3
   --eval-batches 2 --print-every 100)
expect 0 "train from the text" -- "$Q" train "${M[@]}" --batch 2 --seq-len 32 --n-ahead 4 --n-talk 2 --grad-accum 2 --data "$tmp/corpus.txt" --out "$tmp/a"
expect 0 "train from the directory" -- "$Q" train "${M[@]}" --batch 2 --seq-len 32 --n-ahead 4 --n-talk 2 --grad-accum 2 --data "$tmp/tk" --out "$tmp/b"
cmp "$tmp/a/ckpt/model.safetensors" "$tmp/b/ckpt/model.safetensors" || bad "train: text and directory give different weights"
# the same optimizer and sampler state; only model.fingerprint differs (it covers train_args.json,
# which names the data path)
"$PY" - "$tmp/a/ckpt/train_state.safetensors" "$tmp/b/ckpt/train_state.safetensors" <<'PYEOF' ||
import json, struct, sys
def tensors(path):  # name -> (dtype, shape, bytes), without model.fingerprint
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
    return {k: (v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in h.items() if k not in ("__metadata__", "model.fingerprint")}
sys.exit(0 if tensors(sys.argv[1]) == tensors(sys.argv[2]) else 1)
PYEOF
  bad "train: different optimizer/sampler states"
diff <(sed 's/"tok_per_s":[^,]*,"elapsed":[^,]*,//; s/"elapsed":[^,}]*//' "$tmp/a/log.jsonl") \
     <(sed 's/"tok_per_s":[^,]*,"elapsed":[^,]*,//; s/"elapsed":[^,}]*//' "$tmp/b/log.jsonl") >/dev/null \
  || bad "train: the logs (losses, thoughts, held-out NLL) differ"
expect 0 "finetune from the text" -- "$Q" finetune "${M[@]}" --batch 4 --seq-len 64 --data "$tmp/corpus.txt" --out "$tmp/c"
expect 0 "finetune from the directory" -- "$Q" finetune "${M[@]}" --batch 4 --seq-len 64 --data "$tmp/tk" --out "$tmp/d"
cmp "$tmp/c/ckpt/model.safetensors" "$tmp/d/ckpt/model.safetensors" || bad "finetune: text and directory give different weights"

# --- eval of a directory scores its held-out split: the same as eval of those documents as text
n_train_docs=$(sed -n 's/.*"train_docs": \([0-9]*\).*/\1/p' "$tmp/tk/meta.json")
awk -v k="$n_train_docs" 'BEGIN{RS="";ORS="\n\n"} NR>k' "$tmp/corpus.txt" > "$tmp/val.txt"
E=(--model "$D/stories260K/stories260K.bin" --tokenizer "$TOK" --seq-len 64)
expect 0 "eval of the directory" -- "$Q" eval "${E[@]}" --data "$tmp/tk"; e1=$(grep -E "^(nll|tokens):" <<< "$out")
expect 0 "eval of the held-out text" -- "$Q" eval "${E[@]}" --data "$tmp/val.txt"; e2=$(grep -E "^(nll|tokens):" <<< "$out")
[ -n "$e1" ] && [ "$e1" = "$e2" ] || bad "eval: directory '$e1' vs held-out text '$e2'"

# --- errors: one line naming the file, non-zero exit
expect 1 "prepare into a prepared directory" -- "$Q" prepare --tokenizer "$TOK" --data "$tmp/part.txt" --out "$tmp/tk"
[[ "$out" == *"already holds a prepared corpus"* ]] || bad "no refusal to overwrite: $out"
expect 1 "prepare of a missing file" -- "$Q" prepare --tokenizer "$TOK" --data "$tmp/nope.txt" --out "$tmp/tk2"
[[ "$out" == *"nope.txt"* ]] || bad "missing input not named: $out"
cp -r "$tmp/tk" "$tmp/bad1"; truncate -s 100 "$tmp/bad1/tokens.bin"
expect 1 "truncated tokens.bin" -- "$Q" finetune "${M[@]}" --data "$tmp/bad1" --out "$tmp/e1"
[[ "$out" == *"tokens.bin"*"meta.json says"* ]] || bad "truncated tokens.bin not reported: $out"
cp -r "$tmp/tk" "$tmp/bad2"; sed -i 's/"n_docs": [0-9]*/"n_docs": -3/' "$tmp/bad2/meta.json"
expect 1 "bad meta.json" -- "$Q" finetune "${M[@]}" --data "$tmp/bad2" --out "$tmp/e2"
[[ "$out" == *"meta.json"*"n_docs"* ]] || bad "bad n_docs not reported: $out"
cp -r "$tmp/tk" "$tmp/bad3"; printf '\xff\xff\xff\x7f\x00\x00\x00\x00' | dd of="$tmp/bad3/docs.idx" bs=1 seek=8 conv=notrunc status=none
expect 1 "document table out of order" -- "$Q" finetune "${M[@]}" --data "$tmp/bad3" --out "$tmp/e3"
[[ "$out" == *"docs.idx"* ]] || bad "bad docs.idx not reported: $out"
[ "$(wc -l <<< "$out")" -le 2 ] || bad "error is not short: $out"
# an id outside the model's vocabulary (last held-out token): found when that batch is read
cp -r "$tmp/tk" "$tmp/bad4"; printf '\xff\xff' | dd of="$tmp/bad4/tokens.bin" bs=1 seek=$((2 * n_tok - 2)) conv=notrunc status=none
expect 1 "id outside the vocabulary" -- "$Q" finetune "${M[@]}" --eval-batches 0 --data "$tmp/bad4" --out "$tmp/e4"
[[ "$out" == *"token id 65535"* ]] || bad "bad id not reported: $out"

[ $fail -eq 0 ] && echo "prepare: all checks passed"
exit $fail
