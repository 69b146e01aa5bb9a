#!/usr/bin/env bash
# qstar finetune: flag and file errors (exit codes, messages), then with
# $QSTAR_DATA: a short random-init run that learns, a tiny-lr run from the
# stories260K checkpoint that does not get worse, the JSONL log, and exact
# resume (20 steps == 10 + --resume 10 == SIGINT + --resume, byte-identical
# model.safetensors). Everything uses small models / data: well under a minute.
. "$(dirname "$0")/train_common.bash"

cat > "$tmp/tiny.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
 "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 64,
 "rope_theta": 10000.0, "rms_norm_eps": 1e-05, "tie_word_embeddings": true,
 "bos_token_id": 1, "eos_token_id": 2}
EOF
echo "hello world" > "$tmp/data.txt"

# --- usage and bad inputs (no data needed)
expect 0 "--help" -- "$Q" finetune --help
[[ "$out" == *usage*--resume* ]] || bad "--help text: $out"
expect 2 "unknown flag" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o" --bogus
expect 2 "--steps 0" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o" --steps 0
expect 2 "--batch 0" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o" --batch 0
expect 2 "negative lr" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o" --lr -0.001
expect 2 "--lr 0" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o" --lr 0
expect 2 "--lr without value" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o" --lr
expect 2 "--val-frac 1" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o" --val-frac 1
expect 2 "no model" -- "$Q" finetune --data "$tmp/data.txt" --out "$tmp/o"
expect 2 "--model and --config" -- "$Q" finetune --model "$tmp" --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o"
expect 2 "no --data" -- "$Q" finetune --config "$tmp/tiny.json" --out "$tmp/o"
expect 2 "no --out" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt"
expect 2 "seq-len beyond max positions" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/data.txt" --out "$tmp/o" --seq-len 65
expect 1 "missing model" -- "$Q" finetune --model "$tmp/nonexistent.bin" --data "$tmp/data.txt" --out "$tmp/o"
[[ "$out" == *nonexistent.bin* ]] || bad "missing model message does not name the file: $out"
echo '{"architectures": ["LlamaForCausalLM"], "hidden_size": ' > "$tmp/broken.json"
expect 1 "broken config" -- "$Q" finetune --config "$tmp/broken.json" --data "$tmp/data.txt" --out "$tmp/o"
[[ "$out" == *broken.json* ]] || bad "broken config message does not name the file: $out"
expect 1 "missing tokenizer file" -- "$Q" finetune --config "$tmp/tiny.json" --tokenizer "$tmp/none.bin" --data "$tmp/data.txt" --out "$tmp/o"
[[ "$out" == *none.bin* ]] || bad "missing tokenizer message does not name the file: $out"
expect 1 "resume without checkpoint" -- "$Q" finetune --resume "$tmp" --data "$tmp/data.txt"
[[ "$out" == *"$tmp"* ]] || bad "resume message does not name the directory: $out"

D=${QSTAR_DATA:-}
if [ -z "$D" ] || [ ! -f "$D/stories260K/tok512.bin" ] || [ ! -f "$D/tinystories/valid.txt" ]; then
  echo "SKIP: QSTAR_DATA is not set (or lacks stories260K/, tinystories/): training checks not run"
  [ $fail -eq 0 ] && echo "finetune.sh: flag checks passed"
  exit $fail
fi
TOK=$D/stories260K/tok512.bin
head -n 1500 "$D/tinystories/valid.txt" > "$tmp/stories.txt"
printf 'ok\n\xff\xfe bad bytes\n' > "$tmp/badutf8.txt"

expect 1 "data file missing" -- "$Q" finetune --config "$tmp/tiny.json" --tokenizer "$TOK" --data "$tmp/nodata.txt" --out "$tmp/o"
[[ "$out" == *nodata.txt* ]] || bad "missing data message does not name the file: $out"
expect 1 "invalid UTF-8 data" -- "$Q" finetune --config "$tmp/tiny.json" --tokenizer "$TOK" --data "$tmp/badutf8.txt" --out "$tmp/o"
[[ "$out" == *badutf8.txt* ]] || bad "bad data message does not name the file: $out"
expect 2 "no tokenizer for a config" -- "$Q" finetune --config "$tmp/tiny.json" --data "$tmp/stories.txt" --out "$tmp/o"

nll() { sed -n "s/^$1 held-out NLL: *\([0-9.]*\).*/\1/p" <<< "$2"; }

# --- (1) random init learns (small: tiny model, 60 steps)
common=(--tokenizer "$TOK" --data "$tmp/stories.txt" --batch 8 --seq-len 64 --threads 1)
expect 0 "random-init run" -- "$Q" finetune --config "$tmp/tiny.json" "${common[@]}" --out "$tmp/r1" --steps 60 --lr 1e-2 --eval-every 30
i=$(nll initial "$out"); f=$(nll final "$out")
echo "random init (tiny, 60 steps): held-out NLL $i -> $f"
awk -v i="$i" -v f="$f" 'BEGIN { exit !(i > 5.9 && i < 6.6 && f < i - 1.0) }' || bad "random init did not learn: $i -> $f: $out"
[ -f "$tmp/r1/ckpt/model.safetensors" ] && [ -f "$tmp/r1/ckpt/train_state.safetensors" ] && [ -f "$tmp/r1/ckpt/tokenizer.bin" ] \
  || bad "checkpoint files missing: $(ls -R "$tmp/r1")"
[ -e "$tmp/r1/ckpt.tmp" ] || [ -e "$tmp/r1/ckpt.old" ] && bad "temporary checkpoint directories left behind"
steps=$(grep -c '"loss"' "$tmp/r1/log.jsonl"); evals=$(grep -c '"val_nll"' "$tmp/r1/log.jsonl")
[ "$steps" -eq 60 ] && [ "$evals" -eq 3 ] || bad "log.jsonl has $steps step and $evals eval records (want 60, 3)"
grep -q '^{"step":60,"loss":[0-9.e-]*,"lr":[0-9.e-]*,"grad_norm":[0-9.e-]*,"tok_per_s":[0-9.e+-]*,"elapsed":[0-9.e-]*,"skipped":false}$' "$tmp/r1/log.jsonl" \
  || bad "step record format: $(grep '"step":60,' "$tmp/r1/log.jsonl")"
# the trained checkpoint is a model directory the other commands accept (and it refuses to be clobbered)
expect 1 "existing checkpoint without --resume" -- "$Q" finetune --config "$tmp/tiny.json" "${common[@]}" --out "$tmp/r1" --steps 5
[[ "$out" == *--resume* ]] || bad "clobber message: $out"

# --- (2) from the stories260K checkpoint, a tiny lr does not make held-out NLL worse
expect 0 "fine-tune stories260K" -- "$Q" finetune --model "$D/stories260K/stories260K.bin" "${common[@]}" --out "$tmp/r2" --steps 20 --lr 1e-5 --eval-every 0
i=$(nll initial "$out"); f=$(nll final "$out")
echo "stories260K, 20 steps at lr 1e-5: held-out NLL $i -> $f"
awk -v i="$i" -v f="$f" 'BEGIN { exit !(i > 0 && i < 2.5 && f <= i + 1e-3) }' || bad "fine-tuning made NLL worse: $i -> $f"

# --- (3) exact resume: 20 steps == 10 + resume 10 == SIGINT + resume
run=(--config "$tmp/tiny.json" "${common[@]}" --steps 20 --eval-every 5 --save-every 7 --seed 5)
expect 0 "straight 20 steps" -- "$Q" finetune "${run[@]}" --out "$tmp/a"
expect 0 "first 10 steps" -- "$Q" finetune "${run[@]}" --out "$tmp/b" --stop-after 10
[[ "$out" == *"steps: 10 of 20"* ]] || bad "--stop-after 10: $out"
expect 0 "resume 10 more" -- "$Q" finetune --resume "$tmp/b"
[[ "$out" == *"steps: 20 of 20 (10 in this run"* ]] || bad "resume: $out"
cmp "$tmp/a/ckpt/model.safetensors" "$tmp/b/ckpt/model.safetensors" || bad "20 steps != 10 + resume 10 (model)"
cmp "$tmp/a/ckpt/train_state.safetensors" "$tmp/b/ckpt/train_state.safetensors" || bad "20 steps != 10 + resume 10 (optimizer state)"
[ "$(grep -c '"loss"' "$tmp/b/log.jsonl")" -eq 20 ] || bad "resumed log does not hold 20 step records"
# resume from the checkpoint directory itself, into another run directory (nothing left to do)
expect 0 "resume a finished run" -- "$Q" finetune --resume "$tmp/b/ckpt" --out "$tmp/b2"
cmp "$tmp/a/ckpt/model.safetensors" "$tmp/b/ckpt/model.safetensors" || bad "finished run changed by a no-op resume"

# SIGINT: finish the step, checkpoint, exit 0; resume gives the same model as a straight run
long=(--config "$tmp/tiny.json" "${common[@]}" --steps 400 --eval-every 0 --save-every 0 --seed 9)
expect 0 "straight 400 steps" -- "$Q" finetune "${long[@]}" --out "$tmp/c"
interrupt_run finetune 400 "$tmp/d" "${long[@]}"
expect 0 "resume after SIGINT" -- "$Q" finetune --resume "$tmp/d"
cmp "$tmp/c/ckpt/model.safetensors" "$tmp/d/ckpt/model.safetensors" || bad "SIGINT + resume != straight run"

# a state file of another model is refused with a clear message
sed 's/"intermediate_size": 32/"intermediate_size": 48/' "$tmp/tiny.json" > "$tmp/tiny48.json"
expect 0 "other model" -- "$Q" finetune --config "$tmp/tiny48.json" "${common[@]}" --out "$tmp/e" --steps 2 --eval-every 0
cp "$tmp/e/ckpt/train_state.safetensors" "$tmp/a/ckpt/train_state.safetensors"
expect 1 "mismatched state" -- "$Q" finetune --resume "$tmp/a" --steps 30
# (the fingerprint check finds it first: the weights beside it are not the ones it was saved with)
[[ "$out" == *train_state.safetensors*mixed-up* ]] || bad "mismatched state message: $out"

[ $fail -eq 0 ] && echo "finetune.sh: all checks passed"
exit $fail
