#!/usr/bin/python3
"""PyTorch reference for one Quiet-STaR training step (Llama family; GPT-2 too).

A port, written for qstar, of the algorithm in the authors' release
(github.com/ezelikman/quiet-star, modeling_mistral.py, MistralForCausalLM.forward with
the settings of quiet-star-train.py: use_concat_talk_head, use_complex_talk_head,
use_weighted_talk_head, no_residual, first_and_last_mode, trice_mode,
remove_negative_rewards, gumbel_detach, use_start/end_thought_token), following its
structure on purpose: one full-sequence forward per pass, a KV cache concatenated
across passes, a dense additive attention mask over T*(d+1) keys that grows by one
diagonal block per pass, position ids +1 per pass, rolled base hidden states at the
talk passes, a loss list with first_and_last_mode, and rewards accumulated over the
n_ahead_talk talk passes.  Differences from the release follow SPEC.md ([qstar]) and
are marked "SPEC:" below; places where the release had to be interpreted are marked
"INTERPRETATION:".

Run with Debian's torch:
    /usr/bin/python3 tests/reference/quietstar_ref.py --model DIR --batch IN.safetensors \
        --out OUT.safetensors [--n-ahead 12 --n-talk 4 --n-passes 2 ...]
Output as `qstar dump-step` (DESIGN.md), plus mix_weight_valid (see qs_common.py).
Everything is float64 inside (see qs_common.py), written as F32.

Summary of the choices (details at the marked places):
  SPEC: thought tokens forced from thought_ids (release: gumbel_softmax draws); start/end
        = scale * separate [2,H] parameters' row 0, no meta rows in the vocabulary, so
        no -1e10 logit masking; own thought keys visible at every position (release hides
        them at padding positions: unobservable, see below); optional sigmoid mixing.
  INTERPRETATION: targets ignored by attention_mask, not by comparing with a pad id;
        released nonzero-mean == SPEC's mean over real targets (asserted); talk inputs past
        the end use eos (release: tokenizer pad = eos; unobservable); an NLL with a padded
        target counts 0 in the reward (release: ignore_index); policy_loss is written
        before the beta factor (loss = loss_lm + beta * policy_loss); reward is the raw
        accumulated R, advantage the value after baseline and clamp (also written when
        n_ahead = 3, where no policy loss exists and policy_loss = 0); mix_weight is
        written only where its talk target is a real token (0 elsewhere, see
        mix_weight_valid); the release's `mean(logp) < -1e4: break` is not ported.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qs_common as qc  # noqa: E402
from llama_ref import scaled_inv_freq  # noqa: E402  (HF rope_scaling: linear, llama3)

DT = qc.DT
NEG = torch.finfo(DT).min  # HF fills masked logits with finfo(dtype).min


# --------------------------------------------------------------------------- Llama model
# Same computations as HF LlamaModel / MistralModel (eager attention).

def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * w


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(hd, theta, n, rope=None):
    # HF computes inv_freq in fp32; here in fp64 (the reference is fp64 throughout).
    inv_freq = scaled_inv_freq(1.0 / (theta ** (torch.arange(0, hd, 2, dtype=DT) / hd)), rope)
    t = torch.arange(n, dtype=DT)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def repeat_kv(x, n_rep):
    b, nkv, s, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None].expand(b, nkv, n_rep, s, hd).reshape(b, nkv * n_rep, s, hd)


class Llama:
    def __init__(self, cfg, p, tied):
        self.cfg, self.p = cfg, p
        self.H = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg["num_key_value_heads"]
        self.hd = self.H // self.nh
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg["rms_norm_eps"]
        self.theta = cfg["rope_theta"]
        self.embed = p["model.embed_tokens.weight"]
        self.lm_head_w = self.embed if tied else p["lm_head.weight"]

    def lm_head(self, h):
        return h @ self.lm_head_w.t()

    def proj(self, x, name):
        """Linear layer; Qwen2's q/k/v have biases (present in the file)."""
        y = x @ self.p[name + ".weight"].t()
        return y + self.p[name + ".bias"] if name + ".bias" in self.p else y

    def forward(self, inputs_embeds, attention_mask, position_ids, past):
        """inputs_embeds [R,T,H]; attention_mask additive [R,1,T,Tk]; position_ids [1,T];
        past: None or list over layers of (k, v) [R,nkv,Tpast,hd] (post-RoPE, as HF's
        DynamicCache).  Returns (final-normed hidden [R,T,H], new past)."""
        p = self.p
        R, T, H = inputs_embeds.shape
        cos, sin = rope_tables(self.hd, self.theta, int(position_ids.max()) + 1, self.cfg.get("rope_scaling"))
        W = self.cfg.get("sliding_window") if self.cfg.get("model_type") == "mistral" else None
        if W:
            # Mistral sliding window on position ids: the keys are T per pass so
            # far, key kk at position kk % T + kk // T; hidden when q_pos - k_pos >= W
            kk = torch.arange(attention_mask.shape[-1])
            far = (position_ids[0][:, None] - (kk % T + kk // T)[None, :]) >= W
            attention_mask = attention_mask.masked_fill(far[None, None], NEG)
        cos = cos[position_ids].unsqueeze(1)
        sin = sin[position_ids].unsqueeze(1)
        h = inputs_embeds
        new_past = []
        for l in range(self.L):
            pre = f"model.layers.{l}."
            x = rms_norm(h, p[pre + "input_layernorm.weight"], self.eps)
            q = self.proj(x, pre + "self_attn.q_proj").view(R, T, self.nh, self.hd).transpose(1, 2)
            k = self.proj(x, pre + "self_attn.k_proj").view(R, T, self.nkv, self.hd).transpose(1, 2)
            v = self.proj(x, pre + "self_attn.v_proj").view(R, T, self.nkv, self.hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if past is not None:  # DynamicCache.update: concatenate along the key axis
                k = torch.cat([past[l][0], k], dim=-2)
                v = torch.cat([past[l][1], v], dim=-2)
            new_past.append((k, v))
            kr = repeat_kv(k, self.nh // self.nkv)
            vr = repeat_kv(v, self.nh // self.nkv)
            att = q @ kr.transpose(2, 3) / math.sqrt(self.hd)
            assert attention_mask.shape == (R, 1, T, kr.shape[-2])
            att = torch.softmax(att + attention_mask, dim=-1)
            o = (att @ vr).transpose(1, 2).reshape(R, T, H)
            h = h + o @ p[pre + "self_attn.o_proj.weight"].t()
            x = rms_norm(h, p[pre + "post_attention_layernorm.weight"], self.eps)
            g = x @ p[pre + "mlp.gate_proj.weight"].t()
            u = x @ p[pre + "mlp.up_proj.weight"].t()
            h = h + (F.silu(g) * u) @ p[pre + "mlp.down_proj.weight"].t()
        return rms_norm(h, p["model.norm.weight"], self.eps), new_past


class GPT2:
    """HF GPT2LMHeadModel (eval mode) behind Llama's interface, for Quiet-STaR on
    GPT-2 (not part of the release, which is Mistral-only): learned positions wpe
    added to inputs_embeds at position_ids (continued through the thought passes as
    RoPE positions are), LayerNorm, fused Conv1D c_attn (weight [in, out]: q | k | v),
    gelu_new MLP, biases, the same additive mask and concatenated KV cache."""

    def __init__(self, cfg, p, tied):
        self.cfg, self.p = cfg, p
        self.H = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.hd = self.H // self.nh
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg["layer_norm_epsilon"]
        self.embed = p["transformer.wte.weight"]
        self.lm_head_w = self.embed if tied else p["lm_head.weight"]

    def lm_head(self, h):
        return h @ self.lm_head_w.t()

    def forward(self, inputs_embeds, attention_mask, position_ids, past):
        p = self.p
        R, T, H = inputs_embeds.shape
        ln = lambda x, n: F.layer_norm(x, (H,), p[n + ".weight"], p[n + ".bias"], self.eps)  # noqa: E731
        conv = lambda x, n: torch.addmm(p[n + ".bias"], x.reshape(-1, x.shape[-1]), p[n + ".weight"]).view(  # noqa: E731
            *x.shape[:-1], -1)
        h = inputs_embeds + p["transformer.wpe.weight"][position_ids]
        new_past = []
        for l in range(self.L):
            pre = f"transformer.h.{l}."
            q, k, v = conv(ln(h, pre + "ln_1"), pre + "attn.c_attn").split(H, dim=2)
            q, k, v = (t.view(R, T, self.nh, self.hd).transpose(1, 2) for t in (q, k, v))
            if past is not None:
                k = torch.cat([past[l][0], k], dim=-2)
                v = torch.cat([past[l][1], v], dim=-2)
            new_past.append((k, v))
            att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(self.hd) + attention_mask, dim=-1)
            o = (att @ v).transpose(1, 2).reshape(R, T, H)
            h = h + conv(o, pre + "attn.c_proj")
            a = conv(ln(h, pre + "ln_2"), pre + "mlp.c_fc")
            a = 0.5 * a * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * torch.pow(a, 3.0))))
            h = h + conv(a, pre + "mlp.c_proj")
        return ln(h, "transformer.ln_f"), new_past


def prepare_4d_causal_attention_mask(m):
    """HF _prepare_4d_causal_attention_mask for a 2-D padding mask, no past:
    0 where key j <= query i and m[r,j] = 1, finfo.min elsewhere.  [R,1,T,T]"""
    R, T = m.shape
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    ok = causal[None] & m.bool()[:, None, :]
    out = torch.full((R, 1, T, T), NEG, dtype=DT)
    out[ok[:, None]] = 0.0
    return out


def talk_head(p, x):
    # nn.Sequential(Linear(2H,H), ReLU, Linear(H,H), ReLU, Linear(H,1,bias=False))
    x = torch.relu(x @ p["talk_head.0.0.weight"].t() + p["talk_head.0.0.bias"])
    x = torch.relu(x @ p["talk_head.0.2.weight"].t() + p["talk_head.0.2.bias"])
    return x @ p["talk_head.0.4.weight"].t()


# --------------------------------------------------------------------------- the step

def quietstar_step(cfg, p, tied, input_ids, m, thought_ids, a):
    model = GPT2(cfg, p, tied) if qc.is_gpt2(cfg) else Llama(cfg, p, tied)
    n_ahead, n_ahead_talk, n_passes = a.n_ahead, a.n_talk, a.n_passes
    original_loss_weight = a.base_loss_weight
    V = model.embed.shape[0]

    # rows repeated in place: r = b*P + p  (none_repeat_interleave)
    input_ids = input_ids.repeat_interleave(n_passes, dim=0)
    attention_mask = m.repeat_interleave(n_passes, dim=0)
    batch_size, seq_len = input_ids.shape
    # INTERPRETATION: the release's labels are input_ids with the tokenizer's pad id
    # (= eos in quiet-star-train.py) turned into -100 before every CrossEntropyLoss.
    # Here labels are ignored where attention_mask is 0 (SPEC: "entries whose target is a
    # real token"), so a real token equal to the pad id is not dropped.
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    # INTERPRETATION: the release pads the shifted talk inputs with
    # tokenizer.pad_token_id (= eos); we use config eos_token_id, else 0.  Those inputs
    # only reach positions i with i+k >= T, which no loss reads (SPEC: "pad where
    # i+k >= T").
    pad_token_id = cfg.get("eos_token_id", 0)
    if not isinstance(pad_token_id, int) or not 0 <= pad_token_id < V:
        pad_token_id = 0

    # SPEC: [qstar] start/end are separate parameters used as scale*param[0]; the
    # vocabulary has no meta tokens, so nothing is masked to -1e10 below.
    start_embedding = p["start_embedding"][0].unsqueeze(0) * a.embedding_scale
    end_embedding = p["end_embedding"][0].unsqueeze(0) * a.embedding_scale

    def ce_unreduced(logits, lab):
        return F.cross_entropy(logits.reshape(-1, V), lab.reshape(-1), reduction="none",
                               ignore_index=-100)

    def loss_mean(x):
        # INTERPRETATION: released loss_mean: sum / count of nonzero entries.  SPEC: mean
        # over entries with a real target.  Identical unless a real-target NLL is exactly 0; assert that.
        return x.sum() / (x != 0).sum()

    loss_list, dqn_loss_list, action_loglikelihoods_list = [], [], []
    policy_reward = None
    mix_weights = []
    past_key_values = None
    position_ids = torch.arange(seq_len).unsqueeze(0)
    attention_mask4 = prepare_4d_causal_attention_mask(attention_mask)
    inputs_embeds = model.embed[input_ids]
    probabilities_2d = prev_probabilities_2d = None  # here: the sampled token ids
    sample_probs = prev_sample_probs = None
    skip_sampling = did_skip_sampling = None
    hidden_states = None

    fwd_iters = n_ahead + n_ahead_talk - 1
    for ahead_idx in range(fwd_iters):
        hidden_states, past_key_values = model.forward(
            inputs_embeds, attention_mask4, position_ids, past_key_values)

        if ahead_idx == 0:
            logits = model.lm_head(hidden_states)
            base_hidden_states = hidden_states.clone()  # NOT detached (released)
            initial_loss_logits = logits.clone()
        else:
            talk_hidden_states = hidden_states
            if ahead_idx > n_ahead - 1:
                # rolled base: position i gets h_0[i+k] (wrapping around at the end)
                s = ahead_idx - n_ahead + 1
                cur_base_hidden = torch.cat([base_hidden_states[..., s:, :],
                                             base_hidden_states[..., :s, :]], dim=-2)
            else:
                cur_base_hidden = base_hidden_states
            head_input_hidden_states = torch.cat([cur_base_hidden, talk_hidden_states], dim=-1)
            w = talk_head(p, head_input_hidden_states)
            if a.mixing == "sigmoid":  # SPEC: [qstar] option; released is unbounded
                w = torch.sigmoid(w)
            residual_logits = cur_base_hidden * (1 - w) + talk_hidden_states * w
            residual_logits = model.lm_head(residual_logits)
            logits = residual_logits  # no_residual
            # The release also mixes at the thinking passes 1..n_ahead-2 (those losses are
            # NaN'd out by first_and_last_mode and their rewards multiplied by 0): kept.
            if ahead_idx >= n_ahead - 1:
                mix_weights.append(w[..., 0])

        # ---- next input (the "rm" head on the thought hidden state) -----------------
        rm_logits = model.lm_head(hidden_states)
        prev_probabilities_2d = probabilities_2d
        did_skip_sampling = skip_sampling
        skip_sampling = False
        prev_sample_probs = sample_probs
        sample_probs = rm_logits
        if ahead_idx == 0:
            inputs_embeds = start_embedding.unsqueeze(0).repeat(batch_size, seq_len, 1)
            skip_sampling = True
            probabilities_2d = None
        elif ahead_idx == n_ahead - 2:
            inputs_embeds = end_embedding.unsqueeze(0).repeat(batch_size, seq_len, 1)
            skip_sampling = True
            probabilities_2d = None
        elif ahead_idx >= n_ahead - 1:
            # talk phase: teacher-force the true tokens x[i+cur_talk_n], pad at the end
            cur_talk_n = ahead_idx - (n_ahead - 1) + 1
            new_rm_tokens = torch.cat([
                input_ids[..., cur_talk_n:],
                torch.full_like(input_ids[..., :cur_talk_n], pad_token_id)], dim=-1)
            # INTERPRETATION: the release builds these from `labels` (pad id there, not
            # -100); with our -100 labels we take input_ids, which is the same thing.
            inputs_embeds = model.embed[new_rm_tokens]  # == one_hot @ E
            skip_sampling = True
            probabilities_2d = None
        else:
            # SPEC: thinking pass: the release draws gumbel_softmax(rm_logits, hard=True)
            # and detaches it; SPEC/DESIGN: the draw is forced from the batch file.
            # thought_ids[:, u] is the token sampled at pass u+1 (fed at pass u+2).
            tok = thought_ids[:, ahead_idx - 1, :]
            probabilities_2d = tok
            inputs_embeds = model.embed[tok]  # == one_hot(tok) @ E: grad reaches E rows

        # SPEC: grow the mask by one diagonal block: the new pass sees its own position.
        # Released: eye * (pass-0 block == allowed), i.e. the own key is hidden at padding
        # positions.  SPEC: "the keys/values of passes 1..d at the same (r,i)", always.
        # The two differ only in outputs at padding positions, which no loss, reward,
        # gradient or valid mix_weight reads; SPEC's version is used.
        new_attention = torch.full((batch_size, 1, seq_len, seq_len), NEG, dtype=DT)
        new_attention[:, :, torch.arange(seq_len), torch.arange(seq_len)] = 0.0
        attention_mask4 = torch.cat([attention_mask4, new_attention], dim=-1)
        position_ids = position_ids + 1

        # ---- losses ------------------------------------------------------------------
        shift_idx = 1 + max(0, ahead_idx - (n_ahead - 1))
        unreduced_loss = ce_unreduced(logits[..., :-shift_idx, :], labels[..., shift_idx:])
        if torch.any(unreduced_loss != unreduced_loss):
            raise ValueError("NaN loss")
        unreduced_loss = unreduced_loss.reshape(batch_size, -1)
        assert not torch.any((unreduced_loss == 0) & (labels[..., shift_idx:] != -100))
        loss_list.append(unreduced_loss)

        if ahead_idx > 1:  # use_policy_loss and use_start_thought_token
            previous_loss = loss_list[-2]
            if ahead_idx < n_ahead - 1:
                shift_amount = 0
                original_dqn_reward = (previous_loss - unreduced_loss).detach()
                original_dqn_reward = original_dqn_reward * 0.0  # first_and_last_mode
            else:
                shift_amount = max(0, ahead_idx - (n_ahead - 1))
                cur_policy_shift_logits = initial_loss_logits[..., shift_amount:-1, :].contiguous().detach()
                cur_policy_shift_labels = labels[..., 1 + shift_amount:]
                cur_policy_reward_base_loss = ce_unreduced(
                    cur_policy_shift_logits, cur_policy_shift_labels).reshape(batch_size, -1)
                original_dqn_reward = cur_policy_reward_base_loss.detach() - unreduced_loss

            if not did_skip_sampling:
                # log-likelihood of the token drawn at the previous pass, temperature tau_rl
                # (the release gathers at prev_probabilities_2d.nonzero(); same thing)
                lp = F.log_softmax(prev_sample_probs / a.tau_rl, dim=-1)
                action_loglikelihoods = lp.gather(-1, prev_probabilities_2d.unsqueeze(-1))[..., 0]
                action_loglikelihoods_2d = action_loglikelihoods.reshape(batch_size, -1)[:, :-1 - shift_amount]
                action_loglikelihoods_list.append(action_loglikelihoods_2d)
            if policy_reward is None:
                policy_reward = original_dqn_reward[:, :-(n_ahead_talk - shift_amount)]
            else:
                if n_ahead_talk > shift_amount:
                    added_reward = original_dqn_reward[:, :-(n_ahead_talk - shift_amount)]
                else:
                    added_reward = original_dqn_reward
                policy_reward = policy_reward + added_reward  # released: in-place +=

        if ahead_idx == n_ahead + n_ahead_talk - 2:
            # INTERPRETATION: the release's `if mean(logp) < -1e4: break` guards against a
            # forced meta token as the action; qstar has no meta tokens in the vocabulary:
            # not ported.
            for action_loglikelihoods_2d in action_loglikelihoods_list:
                train_policy_reward = policy_reward
                if n_passes > 1:  # trice_mode: baseline = mean over the passes
                    batched = train_policy_reward.reshape(-1, n_passes, train_policy_reward.shape[-1])
                    train_policy_reward = (batched - batched.mean(dim=1, keepdim=True)).reshape(
                        -1, train_policy_reward.shape[-1])
                if not a.no_clamp:  # remove_negative_rewards
                    fixed_policy_reward = train_policy_reward.detach().clamp(min=0)
                else:
                    fixed_policy_reward = train_policy_reward.detach()
                actor_loss = -fixed_policy_reward * action_loglikelihoods_2d[:, :policy_reward.shape[-1]]
                dqn_loss_list.append(actor_loss.mean())

    # first_and_last_mode
    loss_talk = [loss_mean(loss_list[-(i + 1)]) for i in range(n_ahead_talk)][::-1]
    talk_term = sum(loss_talk) * (1 - original_loss_weight) / n_ahead_talk
    loss_base = loss_mean(loss_list[0])
    loss = talk_term + loss_base * original_loss_weight  # base_loss_beta = 1
    loss_lm = loss
    if dqn_loss_list:
        dqn_loss = sum(dqn_loss_list) / len(dqn_loss_list)
        loss = loss + dqn_loss * a.policy_beta
    else:  # n_ahead == 3: no sampled tokens, no policy loss
        dqn_loss = torch.zeros((), dtype=DT)
        # the reward still exists (accumulated above); the advantage is computed for output
    # advantage for output (what multiplied every logp): baseline + clamp
    A = policy_reward.detach()
    if n_passes > 1:
        bp = A.reshape(-1, n_passes, A.shape[-1])
        A = (bp - bp.mean(dim=1, keepdim=True)).reshape(-1, A.shape[-1])
    if not a.no_clamp:
        A = A.clamp(min=0)

    loss.backward()

    valid = qc.mix_valid_mask(attention_mask, n_ahead_talk)
    mw = torch.where(valid > 0, torch.stack([w.detach() for w in mix_weights]), torch.zeros_like(valid))
    return {
        "loss": loss.detach(), "loss_lm": loss_lm.detach(), "loss_base": loss_base.detach(),
        "policy_loss": dqn_loss.detach(), "loss_talk": torch.stack(loss_talk).detach(),
        "reward": policy_reward.detach(), "advantage": A, "mix_weight": mw,
        "mix_weight_valid": valid,
    }


def main(argv=None):
    a = qc.parse_args(argv, prog="quietstar_ref.py")
    cfg, params, tied = qc.load_model(a.model, a)
    V = params[qc.embed_name(cfg)].shape[0]
    ids, m, th = qc.load_batch(a.batch, a, V)
    res = quietstar_step(cfg, params, tied, ids, m, th, a)
    qc.write_out(a.out, res, params)


if __name__ == "__main__":
    main()
