#!/usr/bin/env bash
# CLI test: small or sparse adversarial files fail fast and cheaply. Each case
# must exit 1 with one line naming the file and the field/problem, in under
# 2 s and 300 MB of peak RSS: a tiny config.json whose vocab_size (2^24) does
# not match the weights (shapes are compared before anything is allocated),
# integers and floats out of range ("out of range", not "must be an integer";
# rope_theta 1e55 would be written back as inf), 2 GiB config / tokenizer /
# text / JSONL files (sparse: size caps and bounded line reads), a
# safetensors shape whose byte count overflows (never a wrapped number).
# Env: QSTAR = path of the qstar binary, QSTAR_DATA = shared data directory.
. "$(dirname "$0")/common.bash"

command -v "$PY" >/dev/null 2>&1 || { echo "SKIP: $PY not found (it measures time and peak RSS)"; exit 77; }

# cheap RC PATTERN CMD...: exit code RC, stderr holds PATTERN on one line, < 2 s, < 300 MB peak RSS
cheap() {
  local want=$1 pat=$2; shift 2
  "$PY" - "$want" "$pat" "$@" <<'EOF' || fail "cheap: $*"
import resource, subprocess, sys, time
want, pat, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
t0 = time.time()
p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.time() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # MB
err = p.stderr.decode(errors="replace").strip()
ok = p.returncode == want and pat in err and "\n" not in err and dt < 2 and rss < 300
print(f"  {'ok ' if ok else 'BAD'} {dt:5.2f} s {rss:6.1f} MB  rc {p.returncode}  {err}")
sys.exit(0 if ok else 1)
EOF
}

# --- no data needed ---------------------------------------------------------------
cfg() { # cfg FILE KEY=VALUE...: a Llama config.json of the stories260K shape with overrides
  local f=$1; shift
  "$PY" - "$f" "$@" <<'EOF'
import json, sys
c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
     "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
     "max_position_embeddings": 512, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    c[k] = json.loads(v)
open(sys.argv[1], "w").write(json.dumps(c))
EOF
}
mkdir -p "$tmp/big"
cfg "$tmp/big/config.json" hidden_size=2147483648
cheap 1 "config.json: field 'hidden_size' = 2147483648 is out of range" "$QSTAR" finetune --config "$tmp/big/config.json" --data /dev/null --out "$tmp/r1"
cfg "$tmp/big/config.json" vocab_size=-99999999999
cheap 1 "field 'vocab_size' = -99999999999 is out of range" "$QSTAR" finetune --config "$tmp/big/config.json" --data /dev/null --out "$tmp/r1"
cfg "$tmp/big/config.json" rope_theta=1e55
cheap 1 "config.json: field 'rope_theta' = 1e+55 is out of range" "$QSTAR" finetune --config "$tmp/big/config.json" --data /dev/null --out "$tmp/r1"
cfg "$tmp/big/config.json" rms_norm_eps=-1e300
cheap 1 "field 'rms_norm_eps' = -1e+300 is out of range" "$QSTAR" finetune --config "$tmp/big/config.json" --data /dev/null --out "$tmp/r1"
cfg "$tmp/big/config.json" 'rope_scaling={"rope_type":"linear","factor":1e39}'
cheap 1 "field 'rope_scaling.factor' = 1e+39 is out of range" "$QSTAR" finetune --config "$tmp/big/config.json" --data /dev/null --out "$tmp/r1"
truncate -s 2G "$tmp/big/huge.json"
cheap 1 "huge.json: 2147483648 bytes, larger than the 16 MiB limit for a config file" "$QSTAR" finetune --config "$tmp/big/huge.json" --data /dev/null --out "$tmp/r1"
# a safetensors shape whose byte count does not fit: no wrapped number in the message
"$PY" - "$tmp/wrap.safetensors" <<'EOF'
import json, struct, sys
h = json.dumps({"w": {"dtype": "F32", "shape": [4503599627370496, 2048], "data_offsets": [0, 0]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h)
EOF
mkdir -p "$tmp/wrapdir" && cfg "$tmp/wrapdir/config.json" && mv "$tmp/wrap.safetensors" "$tmp/wrapdir/model.safetensors"
cheap 1 "tensor 'w': shape holds" "$QSTAR" eval --model "$tmp/wrapdir" --data /dev/null
grep -q "need 0" "$tmp/out" 2>/dev/null && fail "wrapped byte count printed"

need_data "bounded-cost" stories260K/stories260K.bin stories260K/tok512.bin
M=$QSTAR_DATA/stories260K
"$QSTAR" convert --model "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --out "$tmp/m" 2>/dev/null || fail "convert"
# a tiny config.json with vocab_size 2^24 beside the 1 MB weights: the shapes are compared first
mkdir -p "$tmp/v24" && cp "$tmp/m/model.safetensors" "$tmp/m/tokenizer.bin" "$tmp/v24/"
cfg "$tmp/v24/config.json" vocab_size=16777216
[ "$(stat -c %s "$tmp/v24/config.json")" -lt 500 ] || fail "test setup: config.json is not small"
cheap 1 "model.safetensors: tensor 'model.embed_tokens.weight' has shape [512,64] but the config implies [16777216,64]" \
  "$QSTAR" eval --model "$tmp/v24" --data /dev/null
cfg "$tmp/v24/config.json" intermediate_size=1048576
cheap 1 "has shape [64,172] but the config implies [64,1048576]" "$QSTAR" eval --model "$tmp/v24" --data /dev/null
# 2 GiB tokenizer, text and JSONL files
truncate -s 2G "$tmp/big/tok.bin"
cheap 1 "tok.bin: tokenizer is larger than" "$QSTAR" eval --model "$tmp/m" --tokenizer "$tmp/big/tok.bin" --data /dev/null
truncate -s 2G "$tmp/big/text.txt"
cheap 1 "text.txt:1: line longer than 16 MiB" "$QSTAR" eval --model "$tmp/m" --data "$tmp/big/text.txt"
"$PY" -c "import sys; f=open(sys.argv[1],'wb'); f.write(b'a'*(20<<20)); f.close()" "$tmp/big/long.txt"
cheap 1 "long.txt:1: line longer than 16 MiB" "$QSTAR" eval --model "$tmp/m" --data "$tmp/big/long.txt"
truncate -s 2G "$tmp/big/data.jsonl"
cheap 1 "data.jsonl:1: line longer than 16 MiB" "$QSTAR" eval --model "$tmp/m" --data "$tmp/big/data.jsonl"
truncate -s 2G "$tmp/big/model.bin"
cheap 1 "model.bin: hidden size 0 out of range" "$QSTAR" eval --model "$tmp/big/model.bin" --data /dev/null

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "bounded: all checks passed"
