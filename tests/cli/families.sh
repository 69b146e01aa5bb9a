#!/usr/bin/env bash
# End to end on every model family with its real tokenizer (issue 8), on tiny
# random Hugging Face directories (tests/reference/make_family_models.py):
#   llama3    Llama, rope_scaling llama3, GQA; Llama-3 tokenizer.json
#   mistral   Mistral, sliding_window 6 (< T); Llama-2 tokenizer.json
#   qwen2     Qwen2, q/k/v biases, padded vocabulary; Qwen3 tokenizer.json
#   gpt2      GPT-2, 2 layers, H 16; GPT-2 tokenizer.json
#   fake-gpt2 the shared $QSTAR_DATA/models/fake-gpt2 (+ Quiet-STaR tensors by convert)
#   released  the released Quiet-STaR checkpoint layout (vocab 32002 with the meta
#             tokens, configuration_mistral.py keys, BF16 weights)
# For each: dump-step against both PyTorch references (quietstar_ref.py, the port
# of the released code, and quietstar_spec.py, the SPEC reading; both have a
# GPT-2 model), qstar train 20 steps, generate --think --show-thoughts, eval
# --task nll|gsm8k|csqa --limit 20, viz; the checkpoint holds the tokenizer files
# and keeps the original config.json keys; it loads again with identical outputs
# (dump-step bit for bit against a re-saved copy), and a --dtype bf16 copy
# computes exactly what the bf16-rounded weights (rounded in numpy) compute.
source "$(dirname "$0")/common.bash"
need_data "model family" tokenizers/hf-json/llama3/tokenizer.json tokenizers/hf-json/llama2/tokenizer.json \
  tokenizers/hf-json/qwen3/tokenizer.json tokenizers/hf-json/gpt2/tokenizer.json models/fake-gpt2/config.json \
  tinystories/valid.txt gsm8k/test.jsonl csqa/dev_rand_split.jsonl
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "SKIP: python3-torch not installed; model family checks not run"; exit 77
fi
D=$QSTAR_DATA
R=$here/tests/reference
head -c 12000 "$D/tinystories/valid.txt" > "$tmp/text.txt"
head -c 1500 "$D/tinystories/valid.txt" > "$tmp/viz.txt"
"$PY" "$R/make_family_models.py" --data "$D" --out "$tmp/fam" >/dev/null || { echo "FAIL: make_family_models.py"; exit 1; }

run() { # run NAME CMD...: the command must succeed; its stderr is shown on failure
  local what=$1; shift
  if ! "$@" >"$tmp/out" 2>"$tmp/err"; then fail "$what: $*"; sed 's/^/  /' "$tmp/err" | tail -5; return 1; fi
}

# dump-step against the port of the released code and the SPEC implementation
dump_vs_refs() { # NAME MODEL BATCH ARGS
  local n=$1 m=$2 b=$3 args=$4 ref
  # shellcheck disable=SC2086
  run "$n dump-step" "$QSTAR" dump-step --model "$m" --batch "$b" --out "$tmp/$n.c.st" $args || return
  for ref in quietstar_ref quietstar_spec; do
    # shellcheck disable=SC2086
    run "$n $ref.py" "$PY" "$R/$ref.py" --model "$m" --batch "$b" --out "$tmp/$n.$ref.st" $args || continue
    if "$PY" "$R/compare_st.py" "$tmp/$n.$ref.st" "$tmp/$n.c.st" >"$tmp/cmp" 2>&1; then
      echo "$n: dump-step vs $ref.py: $(tail -1 "$tmp/cmp")"
    else
      fail "$n: dump-step differs from $ref.py"; tail -5 "$tmp/cmp"
    fi
  done
}

# The checkpoint holds the source's tokenizer files (byte for byte) and every key of
# the source config.json; harmless keys keep their values; torch_dtype names the dtype.
check_ckpt_files() { # NAME SRC_DIR CKPT_DIR DTYPE
  local n=$1 src=$2 ck=$3 dt=$4 f
  for f in tokenizer.json tokenizer_config.json special_tokens_map.json; do
    [ -f "$src/$f" ] || continue
    cmp -s "$src/$f" "$ck/$f" || fail "$n: checkpoint lacks $f of the source (or it differs)"
  done
  "$PY" - "$src/config.json" "$ck/config.json" "$dt" <<'EOF' || fail "$n: checkpoint config.json lost keys of the source"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
missing = [k for k in a if k not in b]
same = ["architectures", "model_type", "transformers_version", "bos_token_id", "eos_token_id", "rope_scaling",
        "max_thoughts", "use_concat_talk_head", "use_weighted_talk_head", "merged_talk_heads", "_name_or_path",
        "task_specific_params", "sliding_window", "pad_token_id"]
changed = [k for k in same if k in a and k != "max_thoughts" and a[k] != b.get(k)]
bad_dtype = b.get("torch_dtype") != sys.argv[3]
if missing or changed or bad_dtype:
    print("  missing", missing, "changed", changed, "torch_dtype", b.get("torch_dtype"))
    sys.exit(1)
EOF
}

family() { # NAME MODEL_DIR BATCH ARGS
  local n=$1 m=$2 b=$3 args=$4
  local r=$tmp/run_$n
  echo "== $n"
  dump_vs_refs "$n" "$m" "$b" "$args"
  run "$n train" "$QSTAR" train --model "$m" --data "$tmp/text.txt" --out "$r" --steps 20 --batch 1 --seq-len 12 \
    --n-ahead 4 --n-talk 2 --eval-every 0 --eval-batches 1 --threads 2 || return
  grep -q '"step":20' "$r/log.jsonl" || fail "$n: train log has no step 20"
  local dt=float32
  [ "$n" = released ] && dt=bfloat16 # default: the input's dtype
  check_ckpt_files "$n" "$m" "$r/ckpt" "$dt"
  run "$n generate" "$QSTAR" generate --model "$r/ckpt" --think --show-thoughts --prompt "Once upon a time" \
    --max-tokens 10 --seed 7 --temperature 0.8 && echo "$n: generate: $(head -c 160 "$tmp/out" | tr '\n' ' ')"
  run "$n eval nll" "$QSTAR" eval --task nll --model "$r/ckpt" --data "$tmp/viz.txt" --seq-len 16 --limit-tokens 64
  run "$n eval gsm8k" "$QSTAR" eval --task gsm8k --model "$r/ckpt" --limit 20
  run "$n eval csqa" "$QSTAR" eval --task csqa --model "$r/ckpt" --limit 20
  run "$n viz" "$QSTAR" viz --model "$r/ckpt" --text "$tmp/viz.txt" --out "$tmp/$n.html" --max-tokens 16
  [ -s "$tmp/$n.html" ] || fail "$n: viz wrote nothing"
  # the saved checkpoint loads again and computes exactly what it computed before
  # saving again (f32 copy), and the bf16 copy what the bf16-rounded weights compute
  run "$n convert f32" "$QSTAR" convert --model "$r/ckpt" --out "$tmp/${n}_f32" --dtype f32 || return
  run "$n convert bf16" "$QSTAR" convert --model "$r/ckpt" --out "$tmp/${n}_bf16" --dtype bf16 || return
  "$PY" - "$r/ckpt" "$tmp/${n}_bf16" "$tmp/${n}_rounded" <<'EOF' || fail "$n: bf16 copy is not the RNE rounding of the weights"
import json, os, shutil, sys
sys.path.insert(0, os.environ["R"])
import numpy as np, st
from make_family_models import to_bf16
ck, c16, out = sys.argv[1:4]
src = os.path.join(ck, "master_weights.safetensors")
w = st.load(src if os.path.exists(src) else os.path.join(ck, "model.safetensors"))
h = st.load(os.path.join(c16, "model.safetensors"))
raw = open(os.path.join(c16, "model.safetensors"), "rb").read()
hdr = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
assert all(v["dtype"] == "BF16" for k, v in hdr.items() if k != "__metadata__"), "not BF16"
assert json.load(open(os.path.join(c16, "config.json")))["torch_dtype"] == "bfloat16"
r = {k: (to_bf16(v).astype(np.uint32) << 16).view(np.float32) for k, v in w.items()}
for k in w:
    assert np.array_equal(r[k].view(np.uint32), h[k].view(np.uint32)), k
os.makedirs(out)
for f in os.listdir(c16):
    if f != "model.safetensors":
        shutil.copy(os.path.join(c16, f), os.path.join(out, f))
st.save(os.path.join(out, "model.safetensors"), r)  # F32 holding the bf16-rounded values
EOF
  local k
  for k in ckpt f32 bf16 rounded; do
    local dir=$tmp/${n}_$k
    [ $k = ckpt ] && dir=$r/ckpt
    # shellcheck disable=SC2086
    run "$n dump $k" "$QSTAR" dump-step --model "$dir" --batch "$b" --out "$tmp/$n.$k.st" $args || return
  done
  cmp -s "$tmp/$n.ckpt.st" "$tmp/$n.f32.st" && echo "$n: saved checkpoint reloads with identical outputs" \
    || fail "$n: re-saved checkpoint computes different outputs"
  cmp -s "$tmp/$n.bf16.st" "$tmp/$n.rounded.st" && echo "$n: bf16 copy = bf16-rounded weights, identical outputs" \
    || fail "$n: the bf16 copy computes something else than the bf16-rounded weights"
}
export R

for n in llama3 mistral qwen2 gpt2 released; do
  family "$n" "$tmp/fam/$n/model" "$tmp/fam/$n/batch.safetensors" "$(cat "$tmp/fam/$n/args.txt")"
done
# the shared fake-gpt2 (no Quiet-STaR tensors): convert adds them (non-zero mixing head)
if run "fake-gpt2 convert" "$QSTAR" convert --model "$D/models/fake-gpt2" --out "$tmp/fake-gpt2" --add-quietstar \
    --talk-head-std 0.5; then
  check_ckpt_files fake-gpt2 "$D/models/fake-gpt2" "$tmp/fake-gpt2" float32
  family fake-gpt2 "$tmp/fake-gpt2" "$tmp/fam/fake-gpt2/batch.safetensors" "$(cat "$tmp/fam/fake-gpt2/args.txt")"
fi

# released layout: a 16-bit training checkpoint keeps exact fp32 master weights, and
# the meta tokens (which dominate every logit of this model) are never sampled
[ -f "$tmp/run_released/ckpt/master_weights.safetensors" ] || fail "released: bf16 checkpoint has no master weights"
# ... so that a bf16 run stopped and resumed ends exactly where an uninterrupted one does
tr_args=(--data "$tmp/text.txt" --steps 6 --batch 1 --seq-len 8 --n-ahead 4 --n-talk 2 --eval-every 0 --eval-batches 1
         --threads 2)
if run "released train 6" "$QSTAR" train --model "$tmp/fam/released/model" --out "$tmp/ra" "${tr_args[@]}" &&
   run "released train 3" "$QSTAR" train --model "$tmp/fam/released/model" --out "$tmp/rb" "${tr_args[@]}" --stop-after 3 &&
   run "released resume" "$QSTAR" train --resume "$tmp/rb" --data "$tmp/text.txt"; then
  if cmp -s "$tmp/ra/ckpt/master_weights.safetensors" "$tmp/rb/ckpt/master_weights.safetensors" &&
     cmp -s "$tmp/ra/ckpt/model.safetensors" "$tmp/rb/ckpt/model.safetensors"; then
    echo "released: bf16 checkpoint resumes exactly (master and bf16 weights identical to an uninterrupted run)"
  else
    fail "released: resuming a bf16 checkpoint is not exact"
  fi
fi
# (they print as their text, <|startthought|> and <|endthought|>: with the ban
# removed from the thought sampler both runs below are full of them. An earlier
# check looked for empty thoughts "[]" instead, which the ban mutation did not trip,
# and which failed once on a time-based seed whose thought held the token " [],")
for mode in "--seed 1" "--greedy-thoughts"; do
  # shellcheck disable=SC2086
  if run "released greedy $mode" "$QSTAR" generate --model "$tmp/fam/released/model" --think --show-thoughts \
      --prompt "Once upon a time" --max-tokens 8 --temperature 0 $mode; then
    out=$(cat "$tmp/out")
    if [ "${#out}" -gt 40 ] && ! grep -qE '<\|(start|end)thought\|>' "$tmp/out"; then
      echo "released ($mode): meta tokens banned: $(head -c 120 "$tmp/out" | tr '\n' ' ')"
    else
      fail "released ($mode): generation sampled the meta tokens (or printed little): $out"
    fi
  fi
done

# bad input: an unknown --dtype (usage error), a released config with another head variant
expect_rc 2 "--dtype expects bf16, f16 or f32" "$QSTAR" convert --model "$tmp/fam/gpt2/model" --out "$tmp/x" --dtype int8
expect_rc 2 "--dtype expects bf16, f16 or f32" "$QSTAR" train --model "$tmp/fam/gpt2/model" --data "$tmp/text.txt" \
  --out "$tmp/x" --dtype fp8
cp -r "$tmp/fam/released/model" "$tmp/badhead"
sed -i 's/"use_shallow_talk": false/"use_shallow_talk": true/' "$tmp/badhead/config.json"
expect_rc 1 "config.json: use_shallow_talk true is not supported" "$QSTAR" convert --model "$tmp/badhead" --out "$tmp/x"
[ -e "$tmp/x" ] && fail "a refused convert left $tmp/x behind"

[ "$fails" -eq 0 ] && echo "model families: all checks passed"
[ "$fails" -eq 0 ]
