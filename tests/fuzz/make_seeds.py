#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer harnesses (tests/fuzz/fuzz_*.c) into
OUT/<target>/: small valid (and a few almost-valid) inputs of every format, made
here from scratch (nothing fetched, nothing committed). With QSTAR_DATA set,
real files from it are added when small enough (stories260K tokenizer, a few
GSM8K / CSQA lines, the start of TinyStories).

usage: make_seeds.py OUT   (the train_state seed is written by seed_train_state.c)
"""
import json, os, struct, sys

out = sys.argv[1]


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, meta=True):
    """tensors: [(name, dtype, shape, bytes)] -> safetensors bytes."""
    hdr, off, blob = {}, 0, b""
    if meta:
        hdr["__metadata__"] = {"format": "pt"}
    for name, dt, shape, data in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(vals):
    return struct.pack("<%df" % len(vals), *vals)


# --- safetensors ---------------------------------------------------------------
put("safetensors", "f32", safetensors([("a", "F32", [2, 3], f32(range(6))), ("b", "F32", [], f32([1.5]))]))
put("safetensors", "mixed", safetensors([("x.weight", "F16", [4], b"\x00\x3c" * 4), ("y", "BF16", [2], b"\x80\x3f" * 2),
                                          ("i", "I64", [2], struct.pack("<2q", 3, -4)), ("j", "I32", [1], struct.pack("<i", 7)),
                                          ("d", "F64", [1], struct.pack("<d", 2.5)), ("u", "U8", [3], b"abc"),
                                          ("z", "F32", [0, 5], b"")]))
put("safetensors", "empty", safetensors([], meta=False))
put("safetensors", "overlap", safetensors([("a", "F32", [1], f32([1])), ("b", "F32", [1], f32([2]))]).replace(b"[4, 8]", b"[0, 4]"))

# --- config.json -----------------------------------------------------------------
llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
         "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
         "max_position_embeddings": 512, "rope_theta": 10000.0, "rms_norm_eps": 1e-05, "tie_word_embeddings": True,
         "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "rope_scaling": None}
qs_block = {"n_ahead": 6, "n_talk": 2, "n_passes": 2, "base_loss_weight": 0.5, "policy_beta": 1, "tau_sample": 1,
            "tau_rl": 3, "clamp_negative_rewards": True, "embedding_scale": 100, "mixing": "linear",
            "greedy_thoughts": False, "thought_init": "---"}
put("config", "llama.json", json.dumps(llama, indent=2))
put("config", "llama_qs.json", json.dumps(dict(llama, quietstar=qs_block)))
put("config", "llama3_rope.json", json.dumps(dict(llama, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64})))
put("config", "linear_rope.json", json.dumps(dict(llama, rope_scaling={"type": "linear", "factor": 2.0})))
put("config", "mistral.json", json.dumps(dict(llama, architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=16)))
put("config", "qwen2.json", json.dumps(dict(llama, architectures=["Qwen2ForCausalLM"], model_type="qwen2", use_sliding_window=False,
                                             eos_token_id=[2, 3], tie_word_embeddings=False)))
put("config", "gpt2.json", json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 32, "n_layer": 2,
                                       "n_head": 4, "n_positions": 64, "n_ctx": 64, "vocab_size": 100, "n_inner": None,
                                       "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "quietstar": qs_block}))
put("config", "params.json", json.dumps(dict(llama, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})))

# --- quietstar block ---------------------------------------------------------------------
put("quietstar_opts", "default.json", json.dumps(qs_block))
put("quietstar_opts", "sigmoid.json", json.dumps(dict(qs_block, mixing="sigmoid", n_ahead=12, thought_init="Q:")))
put("quietstar_opts", "empty.json", "{}")
# train_args.json of a run (the options table's stored settings), as qstar train writes it
train_args = {"data": "/data/stories.txt", "dtype": "bf16", "precision": "fp32", "steps": 100, "batch": 4,
              "seq-len": 128, "grad-accum": 1, "lr": 0.0001, "min-lr": 1e-05, "warmup": 10, "weight-decay": 0.001,
              "beta1": 0.9, "beta2": 0.95, "eps": 1e-08, "clip": 1, "seed": 1337, "threads": 2, "val-frac": 0.05,
              "eval-every": 50, "eval-batches": 8, "save-every": 500}
put("train_args", "run.json", json.dumps(train_args, indent=2))
put("train_args", "bad_enum.json", json.dumps(dict(train_args, precision="fp64")))
put("train_args", "fraction_steps.json", json.dumps(dict(train_args, steps=1.5)))

# --- llama2.c model: a tiny valid checkpoint (dim 8, hidden 12, 1 layer, 2 heads, 1 kv head, vocab 16, seq 4)
def llama2c(dim=8, hidden=12, layers=1, heads=2, kv=1, vocab=16, seq=4, shared=True):
    hd = dim // heads
    n = vocab * dim + layers * (dim + dim * dim + 2 * dim * kv * hd + dim * dim + dim + 3 * dim * hidden) + dim + seq * hd
    if not shared:
        n += vocab * dim
    hdr = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq)
    return hdr + f32([((i * 7919) % 101 - 50) / 100.0 for i in range(n)])
put("llama2c_model", "tiny.bin", llama2c())
put("llama2c_model", "untied.bin", llama2c(shared=False, layers=2))

# --- llama2.c tokenizer: max_token_length, then (score float, len int, bytes) per piece
def tok_bin(pieces):
    b = struct.pack("<i", max(len(p) for p in pieces))
    for i, p in enumerate(pieces):
        p = p.encode()
        b += struct.pack("<fi", -float(i), len(p)) + p
    return b
pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(10)] + [" ", "a", "e", "t", "on", " t", "ce", "up", "Once", " upon", "1", "2"]
put("llama2c_tokenizer", "small", bytes([0]) + tok_bin(pieces))
put("llama2c_tokenizer", "sized", bytes([len(pieces) % 64]) + tok_bin(pieces))

# --- tokenizer.json: tiny byte-level BPE and SentencePiece-style BPE
bl = {"version": "1.0", "added_tokens": [{"id": 5, "content": "<s>", "special": True, "single_word": False, "lstrip": False,
                                          "rstrip": False, "normalized": False}],
      "normalizer": {"type": "NFC"},
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+|\\s+"}, "behavior": "Isolated", "invert": False},
          {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                         "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [5], "tokens": ["<s>"]}}},
      "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
      "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "He": 4, "<s>": 5, "ll": 6, "Hell": 7, "Hello": 8, "\u0120": 9},
                "merges": ["H e", "l l", "He ll", "Hell o"]}}
put("tokenizer_json", "bytelevel.json", json.dumps(bl))
spm = {"version": "1.0", "added_tokens": [], "normalizer": {"type": "Sequence", "normalizers": [
          {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
       "pre_tokenizer": None, "post_processor": None,
       "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
       "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True,
                 "vocab": dict([("<unk>", 0), ("<s>", 1), ("</s>", 2)] + [("<0x%02X>" % i, 3 + i) for i in range(256)] +
                               [("\u2581", 259), ("H", 260), ("e", 261), ("\u2581H", 262)]),
                 "merges": [["\u2581", "H"]]}}
put("tokenizer_json", "spm.json", json.dumps(spm))

# --- datasets (first byte: bit 0 JSONL, bit 1 nested field "a.b", bits 2.. held-out fraction)
put("dataset", "text", bytes([0x20]) + b"Once upon a time.\nThere was a cat.\n\nSecond story.\n<|endoftext|>\nThird.\n")
put("dataset", "jsonl", bytes([0x21]) + b'{"text": "one"}\n\n{"text": "two \\u00e9"}\n{"text": "three"}\n')
put("dataset", "nested", bytes([0x23]) + b'{"a": {"b": "deep"}}\n{"a.b": "flat"}\n')

# --- GSM8K / CSQA records (first byte: bit 0 CSQA)
put("task", "gsm8k", b"\x00" + json.dumps({"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"}).encode())
put("task", "gsm8k_commas", b"\x00" + json.dumps({"question": "Big?", "answer": "#### 1,234,567 "}).encode())
put("task", "csqa", b"\x01" + json.dumps({"answerKey": "B", "id": "x", "question": {"question_concept": "c", "stem": "Where?", "choices": [
    {"label": l, "text": t} for l, t in zip("ABCDE", ["home", "park", "shop", "sea", "sky"])]}}).encode())

# --- model directory: 2-byte config length, config.json, model.safetensors
def model_dir(cfg, tensors):
    c = json.dumps(cfg).encode()
    return struct.pack("<H", len(c)) + c + safetensors(tensors)
tiny = dict(llama, hidden_size=8, intermediate_size=12, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            vocab_size=16, max_position_embeddings=16)
def zeros(*shape):
    n = 1
    for s in shape:
        n *= s
    return f32([0.0] * n)
L = "model.layers.0."
tens = [("model.embed_tokens.weight", "F32", [16, 8], zeros(16, 8)), ("model.norm.weight", "F32", [8], zeros(8)),
        (L + "input_layernorm.weight", "F32", [8], zeros(8)), (L + "post_attention_layernorm.weight", "F32", [8], zeros(8)),
        (L + "self_attn.q_proj.weight", "F32", [8, 8], zeros(8, 8)), (L + "self_attn.k_proj.weight", "F32", [4, 8], zeros(4, 8)),
        (L + "self_attn.v_proj.weight", "F32", [4, 8], zeros(4, 8)), (L + "self_attn.o_proj.weight", "F32", [8, 8], zeros(8, 8)),
        (L + "mlp.gate_proj.weight", "F32", [12, 8], zeros(12, 8)), (L + "mlp.up_proj.weight", "F32", [12, 8], zeros(12, 8)),
        (L + "mlp.down_proj.weight", "F32", [8, 12], zeros(8, 12))]
put("model_dir", "tiny", model_dir(tiny, tens))
put("model_dir", "vocab24", model_dir(dict(tiny, vocab_size=1 << 24), tens))
put("model_dir", "qs", model_dir(dict(tiny, quietstar=qs_block), tens + [("start_embedding", "F32", [1, 8], zeros(8)),
                                                                       ("end_embedding", "F32", [1, 8], zeros(8))]))

# --- real files, when the data is at hand and small
data = os.environ.get("QSTAR_DATA", "")
def real(target, name, path, prefix=b"", limit=1 << 20):
    p = os.path.join(data, path)
    if data and os.path.isfile(p) and os.path.getsize(p) <= limit:
        put(target, name, prefix + open(p, "rb").read())
real("llama2c_tokenizer", "tok512", "stories260K/tok512.bin", prefix=b"\x00")
real("tokenizer_json", "gpt2", "tokenizers/hf-json/gpt2/tokenizer.json", limit=4 << 20)
for task, prefix, path in (("gsm8k", b"\x00", "gsm8k/test.jsonl"), ("csqa", b"\x01", "csqa/dev_rand_split.jsonl")):
    p = os.path.join(data, path)
    if data and os.path.isfile(p):
        for i, line in enumerate(open(p, "rb")):
            if i >= 3:
                break
            put("task", "%s%d" % (task, i), prefix + line.rstrip(b"\n"))
p = os.path.join(data, "tinystories/valid.txt")
if data and os.path.isfile(p):
    put("dataset", "tinystories", b"\x20" + open(p, "rb").read(8192))

# --- token directories (qstar prepare): meta.json, valid and near-valid
meta = dict(format="qstar-tokens", version=1, dtype="uint16", vocab_size=512, n_tokens=1000, n_docs=10,
            train_docs=9, train_tokens=900)
put("shards_meta", "valid", json.dumps(meta).encode())
put("shards_meta", "u32", json.dumps(dict(meta, dtype="uint32", vocab_size=100000)).encode())
put("shards_meta", "docs_gt_tokens", json.dumps(dict(meta, n_docs=2000)).encode())
real("spm_model", "llama2", "tokenizers/llama2/tokenizer.model")
