#!/usr/bin/env bash
# CLI test: no command silently replaces work. convert, viz, eval --out,
# dump-step --out, plot and train/finetune --out refuse to replace a model
# directory, a checkpoint file or a non-empty run directory without --force
# (exit 1, one line naming the path, the originals byte-identical); with
# --force a directory is replaced whole (no stale train_state); outputs that
# cannot be written fail before any work; --resume refuses a checkpoint whose
# weights or settings are not the ones its train_state was saved with; a live
# lock on --out refuses a second run, a stale one (dead pid) is taken over.
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
same_tree() { [ "$(sums "$1")" = "$2" ] || fail "$3: $1 changed"; }

# --- no data needed ---------------------------------------------------------------
mkdir -p "$tmp/full" && echo x >"$tmp/full/a"
expect_rc 1 "$tmp/full: already holds files; pass --force" "$QSTAR" plot /dev/null --out "$tmp/full"
expect_rc 1 "$tmp/nodir/x.json: cannot write there" "$QSTAR" eval --task csqa --model "$tmp/none" --out "$tmp/nodir/x.json"

need_data "overwrite" stories260K/stories260K.bin stories260K/tok512.bin tinystories/valid.txt
M=$QSTAR_DATA/stories260K
DATA=$QSTAR_DATA/tinystories/valid.txt
TRAIN=(--steps 2 --batch 1 --seq-len 16 --n-ahead 4 --n-talk 1 --eval-batches 1 --eval-every 0)

# --- convert ---------------------------------------------------------------------
"$QSTAR" convert --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --out "$tmp/model" 2>"$tmp/err" || fail "convert: $(cat "$tmp/err")"
before=$(sums "$tmp/model")
expect_rc 1 "$tmp/model: already holds a model directory; pass --force" \
  "$QSTAR" convert --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --out "$tmp/model" --add-quietstar
same_tree "$tmp/model" "$before" "convert without --force"

# a training checkpoint: refused, then replaced whole with --force (no stale train_state)
"$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/run1" >"$tmp/out" 2>&1 || fail "train run1: $(cat "$tmp/out")"
[ -f "$tmp/run1/ckpt/train_state.safetensors" ] || fail "run1 has no checkpoint"
[ -e "$tmp/run1/qstar.lock" ] && fail "a finished run left its lock"
before=$(sums "$tmp/run1")
expect_rc 1 "$tmp/run1/ckpt: already holds a training checkpoint; pass --force" \
  "$QSTAR" convert --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --out "$tmp/run1/ckpt"
same_tree "$tmp/run1" "$before" "convert onto a checkpoint"

# viz / eval / dump-step onto files of a checkpoint: refused before loading anything
expect_rc 1 "$tmp/run1/ckpt/model.safetensors: exists and holds part of a model directory; pass --force" \
  "$QSTAR" viz --model "$tmp/run1/ckpt" --text "$DATA" --out "$tmp/run1/ckpt/model.safetensors"
expect_rc 1 "$tmp/run1/ckpt/config.json: exists" \
  "$QSTAR" eval --task nll --model "$tmp/run1/ckpt" --data "$DATA" --out "$tmp/run1/ckpt/config.json"
expect_rc 1 "$tmp/run1/log.jsonl: exists and holds a model, checkpoint or log" \
  "$QSTAR" eval --task nll --model "$tmp/run1/ckpt" --data "$DATA" --tokens-out "$tmp/run1/log.jsonl"
expect_rc 1 "$tmp/run1/ckpt/train_state.safetensors: exists" \
  "$QSTAR" dump-step --model "$tmp/run1/ckpt" --batch /nonexistent --out "$tmp/run1/ckpt/train_state.safetensors"
expect_rc 1 "$tmp/run1: already holds a training run" "$QSTAR" plot "$tmp/run1/log.jsonl" --out "$tmp/run1"
expect_rc 1 "$tmp/run1: already holds a training run" "$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/run1"
expect_rc 1 "$tmp/run1: already holds a training run" "$QSTAR" finetune --model "$tmp/model" --data "$DATA" --steps 1 --out "$tmp/run1"
expect_rc 1 "$tmp/run1/log.jsonl: exists and holds a model, checkpoint or log; pass --force" \
  "$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/run9" --log "$tmp/run1/log.jsonl"
[ -e "$tmp/run9" ] && fail "a refused --log left $tmp/run9"
same_tree "$tmp/run1" "$before" "refused writes"

# a plain file (not a model) may be replaced; a directory never is
echo old >"$tmp/page.html"
"$QSTAR" viz --model "$tmp/run1/ckpt" --text "$DATA" --max-tokens 20 --out "$tmp/page.html" 2>"$tmp/err" || fail "viz over a plain file: $(cat "$tmp/err")"
grep -q "<html" "$tmp/page.html" || fail "viz did not write the page"
expect_rc 1 "$tmp/full: is a directory" "$QSTAR" viz --model "$tmp/run1/ckpt" --text "$DATA" --out "$tmp/full" --force

# unwritable outputs fail before the work, naming the path
expect_rc 1 "$tmp/nodir/r.json: cannot write there: directory $tmp/nodir does not exist" \
  "$QSTAR" eval --task nll --model "$tmp/run1/ckpt" --data "$DATA" --out "$tmp/nodir/r.json"
expect_rc 1 "$tmp/page.html/x: cannot write there: a part of the path is not a directory" \
  "$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/page.html/x"
if [ "$(id -u)" != 0 ]; then
  mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
  expect_rc 1 "$tmp/ro/run: cannot write in $tmp/ro" "$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/ro/run"
  chmod 755 "$tmp/ro"
fi

# --force: convert replaces the checkpoint directory whole
"$QSTAR" convert --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --out "$tmp/run1/ckpt" --force 2>"$tmp/err" ||
  fail "convert --force: $(cat "$tmp/err")"
[ -e "$tmp/run1/ckpt/train_state.safetensors" ] && fail "convert --force left a stale train_state"
[ -e "$tmp/run1/ckpt/train_args.json" ] && fail "convert --force left a stale train_args.json"
[ "$(ls "$tmp/run1/ckpt" | sort | tr '\n' ' ')" = "config.json model.safetensors tokenizer.bin " ] || fail "convert --force: $(ls "$tmp/run1/ckpt")"
ls "$tmp/run1" | grep -q tmp-convert && fail "convert --force left its temp directory"
cmp -s "$tmp/run1/ckpt/model.safetensors" "$tmp/model/model.safetensors" || fail "convert --force wrote other weights"
expect_rc 1 "no checkpoint found" "$QSTAR" train --resume "$tmp/run1" --steps 3
# --force: viz replaces a model file when told to
"$QSTAR" viz --model "$tmp/model" --text "$DATA" --max-tokens 20 --out "$tmp/run1/ckpt/tokenizer.bin" --force 2>/dev/null &&
  fail "viz on a model without Quiet-STaR tensors should fail" # (and must not have touched the file)
cmp -s "$tmp/run1/ckpt/tokenizer.bin" "$M/tok512.bin" || fail "a failed viz changed its --out"
# --force: train starts afresh in a used run directory; its checkpoint is complete and resumable
"$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/run2" >/dev/null 2>&1 || fail "train run2"
"$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --seed 7 --out "$tmp/run2" --force >"$tmp/out" 2>&1 || fail "train --force: $(cat "$tmp/out")"
"$QSTAR" train --resume "$tmp/run2" --steps 3 >"$tmp/out" 2>&1 || fail "resume after train --force: $(cat "$tmp/out")"
grep -q "resuming .* at step 2 of 3" "$tmp/out" || fail "resume after --force: $(cat "$tmp/out")"

# --force: viz and eval replace a file of a checkpoint when told to, completely, leaving no temp file
cp -r "$tmp/run2/ckpt" "$tmp/victim"
"$QSTAR" viz --model "$tmp/run2/ckpt" --text "$DATA" --max-tokens 20 --out "$tmp/victim/model.safetensors" --force 2>"$tmp/err" ||
  fail "viz --force: $(cat "$tmp/err")"
head -c 200 "$tmp/victim/model.safetensors" | grep -q "<!DOCTYPE html\|<html" || fail "viz --force did not write the page"
"$QSTAR" eval --task nll --model "$tmp/run2/ckpt" --data "$DATA" --limit-tokens 300 --out "$tmp/victim/config.json" --force \
  >/dev/null 2>"$tmp/err" || fail "eval --force: $(cat "$tmp/err")"
grep -q '"nll_base"' "$tmp/victim/config.json" || fail "eval --force did not write its results"
grep -q "ETA" "$tmp/err" || fail "eval --task nll prints no ETA: $(cat "$tmp/err")"
ls "$tmp/victim" | grep -q "\.tmp" && fail "a temp file was left: $(ls "$tmp/victim")"

# dump-step onto a checkpoint file: refused, then replaced with --force
"$PY" - "$tmp/batch.safetensors" <<'EOF'
import json, struct, sys
ids = [1, 403, 261, 378, 300, 289, 319, 422, 267, 270, 13, 2]
h = json.dumps({"input_ids": {"dtype": "I32", "shape": [1, len(ids)], "data_offsets": [0, 4 * len(ids)]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + struct.pack("<%di" % len(ids), *ids))
EOF
cp -r "$tmp/run2/ckpt" "$tmp/victim2"
before=$(sums "$tmp/victim2")
expect_rc 1 "$tmp/victim2/model.safetensors: exists and holds part of a model directory; pass --force" \
  "$QSTAR" dump-step --model "$tmp/run2/ckpt" --batch "$tmp/batch.safetensors" --out "$tmp/victim2/model.safetensors"
same_tree "$tmp/victim2" "$before" "dump-step without --force"
"$QSTAR" dump-step --model "$tmp/run2/ckpt" --batch "$tmp/batch.safetensors" --out "$tmp/victim2/model.safetensors" --force \
  >/dev/null 2>"$tmp/err" || fail "dump-step --force: $(cat "$tmp/err")"
grep -qa '"loss_talk"' "$tmp/victim2/model.safetensors" || fail "dump-step --force did not write its tensors"
ls "$tmp/victim2" | grep -q "\.tmp" && fail "dump-step left a temp file"
# plot: a directory of charts is refused, then replaced with --force
if command -v gnuplot >/dev/null 2>&1; then
  "$QSTAR" plot "$tmp/run2/log.jsonl" --out "$tmp/charts" >/dev/null 2>&1 || fail "plot"
  before=$(sums "$tmp/charts")
  expect_rc 1 "$tmp/charts: already holds files; pass --force" "$QSTAR" plot "$tmp/run2/log.jsonl" --out "$tmp/charts"
  same_tree "$tmp/charts" "$before" "plot without --force"
  "$QSTAR" plot "$tmp/run2/log.jsonl" --out "$tmp/charts" --force >/dev/null 2>&1 || fail "plot --force"
fi

# --- --resume of a mixed-up checkpoint --------------------------------------------
"$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/runA" >/dev/null 2>&1 || fail "train runA"
"$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --seed 9 --lr 1e-2 --out "$tmp/runB" >/dev/null 2>&1 || fail "train runB"
cp -r "$tmp/runA" "$tmp/runC"
cp "$tmp/runB/ckpt/model.safetensors" "$tmp/runA/ckpt/model.safetensors"
expect_rc 1 "$tmp/runA/ckpt: the weights or settings" "$QSTAR" train --resume "$tmp/runA" --steps 3
sed -i 's/"rope_theta":[[:space:]]*10000/"rope_theta": 10001/' "$tmp/runC/ckpt/config.json"
grep -q 10001 "$tmp/runC/ckpt/config.json" || fail "test setup: config.json not edited"
expect_rc 1 "refusing to resume from a mixed-up checkpoint" "$QSTAR" train --resume "$tmp/runC" --steps 3

# --- locks ----------------------------------------------------------------------------
sleep 60 & live=$!
echo $live >"$tmp/run2/qstar.lock"
before=$(sums "$tmp/run2")
expect_rc 1 "$tmp/run2: in use by another qstar run (pid $live" "$QSTAR" train --resume "$tmp/run2" --steps 4
mkdir "$tmp/run3" && echo $live >"$tmp/run3/qstar.lock"
expect_rc 1 "$tmp/run3: in use by another qstar run (pid $live" "$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/run3"
same_tree "$tmp/run2" "$before" "a refused run on a locked directory"
kill $live; wait $live 2>/dev/null
# the same directories with a stale lock (its process is gone): taken over
"$QSTAR" train --resume "$tmp/run2" --steps 4 >"$tmp/out" 2>&1 || fail "resume on a stale lock: $(cat "$tmp/out")"
"$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/run3" >"$tmp/out" 2>&1 || fail "train on a stale lock: $(cat "$tmp/out")"
[ -e "$tmp/run2/qstar.lock" ] || [ -e "$tmp/run3/qstar.lock" ] && fail "stale locks not released"
# two concurrent runs on one --out: exactly one runs
"$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --steps 40 --out "$tmp/run4" >"$tmp/c1" 2>&1 & p1=$!
for _ in $(seq 200); do [ -e "$tmp/run4/qstar.lock" ] && break; sleep 0.05; done
"$QSTAR" train --model "$tmp/model" --data "$DATA" "${TRAIN[@]}" --out "$tmp/run4" >"$tmp/c2" 2>&1; rc2=$?
wait $p1; rc1=$?
[ $rc1 -eq 0 ] || fail "first concurrent run: $(cat "$tmp/c1")"
[ $rc2 -eq 1 ] && grep -q "in use by another qstar run (pid $p1" "$tmp/c2" || fail "second concurrent run: rc $rc2: $(cat "$tmp/c2")"

# a failed fresh run leaves no directory behind
"$QSTAR" train --model "$tmp/model" --data /nonexistent "${TRAIN[@]}" --out "$tmp/run5" >"$tmp/out" 2>&1 && fail "train on missing data"
grep -q "/nonexistent: cannot open" "$tmp/out" || fail "missing data: $(cat "$tmp/out")"
[ -e "$tmp/run5" ] && fail "a failed run left $tmp/run5"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "overwrite: all checks passed"
