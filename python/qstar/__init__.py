"""qstar: Python bindings of libqstar (Quiet-STaR in C) over ctypes.

    import qstar
    m = qstar.Model("stories260K.bin", tokenizer="tok512.bin")
    print(m.generate("Once upon a time", max_tokens=40, temperature=0))
    for t in m.generate_iter("Once upon a time", max_tokens=40):   # tokens with their thoughts
        print(t.text, t.thought_text, t.mix_weight)
    s = m.score("Once upon a time there was a cat.")                 # per-token NumPy arrays
    print(s.nll_base, s.nll_think, s.gain)

    tr = qstar.Trainer(model="stories260K.bin", tokenizer="tok512.bin", data="stories.txt",
                       quietstar=True, steps=10, out="runs/x")
    for _ in range(10):
        tr.step()
    print(tr.eval()); tr.save()

Errors are raised as qstar.Error carrying the library's one-line message.
The shared library is found through $QSTAR_LIB, then ../build/libqstar.so of a
checkout, then the installed prefix, then the system's search path.
"""
import ctypes as C
import queue
import threading

import numpy as np

from . import _lib as L

__all__ = ["Error", "Model", "Trainer", "Token", "Scores", "version"]

_lib = L.load()


class Error(Exception):
    """A libqstar failure: str(e) is the library's message, e.status its qs_status code."""

    def __init__(self, message, status=0):
        super().__init__(message)
        self.status = status


def _check(status):
    if status != 0:
        raise Error(_lib.qstar_last_error().decode("utf-8", "replace"), status)


def _b(s):
    return None if s is None else str(s).encode("utf-8")


def version():
    return _lib.qstar_version().decode()


def _think_when(v):
    """think_when= of generate/eval_nll: None/"always", "entropy>X", or a number X (nats)."""
    if v is None:
        return float("-inf")
    if isinstance(v, (int, float)):
        return float(v)
    x = C.c_float()
    _check(_lib.qstar_think_when_parse(_b(v), C.byref(x)))
    return x.value


def _precision(v):
    x = C.c_int()
    _check(_lib.qstar_precision_parse(_b(v or "fp32"), C.byref(x)))
    return x.value


class Token:
    """One generated token: id, text, thought (ids), thought_text, mix_weight, generated."""
    __slots__ = ("id", "text", "thought", "thought_text", "mix_weight", "generated")

    def __init__(self, t):
        self.id = t.token
        self.text = (t.text or b"").decode("utf-8", "replace")
        self.thought = [t.thought[i] for i in range(t.n_thought)] if t.n_thought > 0 else []
        self.thought_text = (t.thought_text or b"").decode("utf-8", "replace")
        self.mix_weight = float(t.mix_weight)
        self.generated = bool(t.generated)

    def __repr__(self):
        return f"Token({self.id}, {self.text!r}, thought={self.thought_text!r}, mix={self.mix_weight:.3f})"


class Scores:
    """Per-token results of Model.score: arrays of len(tokens); entry i is tokens[i]
    predicted from the tokens before it (NaN where nothing predicts it: i = 0)."""

    def __init__(self, tokens, texts, nll_base, nll_think, mix_weight, thoughts, mean_base, mean_think):
        self.tokens, self.texts = tokens, texts
        self.nll_base, self.nll_think, self.mix_weight, self.thoughts = nll_base, nll_think, mix_weight, thoughts
        self.mean_base, self.mean_think = mean_base, mean_think

    @property
    def gain(self):
        """How much the thought helped each token: nll_base - nll_think (nats)."""
        return self.nll_base - self.nll_think

    def __len__(self):
        return len(self.tokens)


def _escape_thought(s):
    return s.replace("\n", "\\n").replace("\r", " ").replace("\t", " ")


class Model:
    """A model in any format the qstar CLI reads (model directory, llama2.c .bin, ...).
    tokenizer= is the CLI's --tokenizer (required for a llama2.c .bin)."""

    def __init__(self, path, tokenizer=None, threads=0, _handle=None, _owner=None):
        self._h = None
        self._owner = _owner
        if _handle is not None:
            self._h = _handle
        else:
            p = _lib.qstar_model_params_default()
            p.tokenizer_path = _b(tokenizer)
            p.n_threads = int(threads)
            h = C.c_void_p()
            _check(_lib.qstar_model_load(_b(path), C.byref(p), C.byref(h)))
            self._h = h
        c = L.Config()
        _check(_lib.qstar_model_config(self._h, C.byref(c)))
        self.config = {k: (getattr(c, k).decode() if k == "arch" else getattr(c, k)) for k, _ in L.Config._fields_}

    def close(self):
        if self._h is not None and self._owner is None:
            _lib.qstar_model_free(self._h)
        self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _handle(self):
        if self._h is None:
            raise Error("the model is closed")
        return self._h

    @property
    def can_think(self):
        return bool(self.config["has_quietstar"])

    def tokenize(self, text, bos=True):
        """Token ids of text (with the tokenizer's BOS first when bos)."""
        b = _b(text)
        cap = len(b) + 8
        while True:
            ids = (C.c_int * cap)()
            n = C.c_int()
            st = _lib.qstar_tokenize(self._handle(), b, int(bool(bos)), ids, cap, C.byref(n))
            if st != 0 and n.value > cap:
                cap = n.value
                continue
            _check(st)
            return np.array(ids[:n.value], dtype=np.int32)

    def detokenize(self, ids):
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int32))
        arr = ids.ctypes.data_as(L.c_int_p)
        cap = 64 + 32 * len(ids)
        while True:
            buf = C.create_string_buffer(cap)
            n = C.c_size_t()
            _check(_lib.qstar_detokenize(self._handle(), arr, len(ids), buf, cap, C.byref(n)))
            if n.value < cap - 1:
                return buf.value.decode("utf-8", "replace")
            cap *= 4

    def _gen_params(self, max_tokens, temperature, top_p, seed, think, n_ahead, tau_sample, greedy_thoughts,
                    think_when=None, random_thoughts=False, precision="fp32", think_at=None, n_talk=0):
        p = _lib.qstar_gen_params_default()
        p.max_tokens, p.temperature, p.top_p, p.seed = int(max_tokens), float(temperature), float(top_p), int(seed)
        p.think = -1 if think is None else int(bool(think))
        p.n_ahead, p.tau_sample, p.greedy_thoughts = int(n_ahead), float(tau_sample), int(bool(greedy_thoughts))
        p.think_min_entropy = _think_when(think_when)
        p.random_thoughts = int(bool(random_thoughts))
        p.think_at, p.n_talk = _b(think_at), int(n_talk)
        p.precision = _precision(precision)
        return p

    def generate(self, prompt="", max_tokens=256, temperature=1.0, top_p=0.9, think=None, show_thoughts=False,
                 seed=0, n_ahead=0, tau_sample=0.0, greedy_thoughts=False, think_when=None, random_thoughts=False,
                 precision="fp32", stats=None, think_at=None, n_talk=0):
        """The text `qstar generate` prints (prompt included), thoughts in [brackets] with
        show_thoughts. think=None thinks when the model is a Quiet-STaR checkpoint.
        think_when="entropy>X" thinks only where the base prediction's entropy exceeds X nats
        ("always" or None: before every token); random_thoughts=True draws thought tokens
        uniformly (a content control); think_at="A: " thinks only where the text so far ends with
        that string, and that thought also produces the next n_talk tokens (0: the checkpoint's
        n_talk) through its talk passes; precision "fp32" or "bf16". A dict passed as stats
        receives tok_per_s, n_positions, n_generated, n_thoughts, think, n_ahead, seconds."""
        p = self._gen_params(max_tokens, temperature, top_p, seed, think, n_ahead, tau_sample, greedy_thoughts,
                             think_when, random_thoughts, precision, think_at, n_talk)
        out, err = [], []

        def cb(_user, tp):
            try:
                t = tp.contents
                if show_thoughts and t.n_thought > 0:
                    out.append("[" + _escape_thought((t.thought_text or b"").decode("utf-8", "replace")) + "]")
                out.append((t.text or b"").decode("utf-8", "replace"))
                return 0
            except BaseException as e:  # never let an exception cross the C frames
                err.append(e)
                return 1

        fn = L.TOKEN_CB(cb)
        gs = L.GenStats()
        _check(_lib.qstar_generate_ex(self._handle(), _b(prompt), C.byref(p), fn, None, C.byref(gs)))
        if err:
            raise err[0]
        if stats is not None:
            stats.update({k: getattr(gs, k) for k, _ in L.GenStats._fields_})
        return "".join(out)

    def generate_iter(self, prompt="", max_tokens=256, temperature=1.0, top_p=0.9, think=None, seed=0, n_ahead=0,
                      tau_sample=0.0, greedy_thoughts=False, think_when=None, random_thoughts=False, precision="fp32"):
        """Yields a Token (text, thought, thought_text, mix_weight) as each is generated."""
        p = self._gen_params(max_tokens, temperature, top_p, seed, think, n_ahead, tau_sample, greedy_thoughts,
                             think_when, random_thoughts, precision)
        q = queue.Queue(maxsize=16)
        stop = threading.Event()
        done = object()

        def cb(_user, tp):
            if stop.is_set():
                return 1
            q.put(Token(tp.contents))
            return 0

        fn = L.TOKEN_CB(cb)
        status = []

        def work():
            try:
                status.append(_lib.qstar_generate(self._handle(), _b(prompt), C.byref(p), fn, None))
                status.append(_lib.qstar_last_error().decode("utf-8", "replace"))
            finally:
                q.put(done)

        th = threading.Thread(target=work, daemon=True)
        th.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                yield item
        finally:
            stop.set()
            while th.is_alive():  # drain so the worker can finish
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            th.join()
        if status and status[0] != 0:
            raise Error(status[1], status[0])

    def score(self, text, think=None, seed=1234, seq_len=0, batch=0, n_ahead=0, tau_sample=0.0,
              greedy_thoughts=False, precision="fp32"):
        """Per-token NLL without and with thoughts of `text` (one document, BOS first, as
        `qstar eval --task nll --data FILE` reads a file holding it) or of a token array."""
        if isinstance(text, str):
            toks = self.tokenize(text.strip(), bos=True)
        else:
            toks = np.ascontiguousarray(np.asarray(text, dtype=np.int32))
        n = len(toks)
        p = _lib.qstar_score_params_default()
        p.think = -1 if think is None else int(bool(think))
        p.seed, p.seq_len, p.batch = int(seed), int(seq_len), int(batch)
        p.n_ahead, p.tau_sample, p.greedy_thoughts = int(n_ahead), float(tau_sample), int(bool(greedy_thoughts))
        p.precision = _precision(precision)
        cap = max(1, (n_ahead or self.config["n_ahead"] or 3) - 3) if self.can_think else 1
        nb = np.full(n, np.nan, np.float32)
        nt = np.full(n, np.nan, np.float32)
        mw = np.zeros(n, np.float32)
        th = np.full((n, cap), -1, np.int32)
        o = L.ScoreOut()
        o.nll_base, o.nll_think = nb.ctypes.data_as(L.c_float_p), nt.ctypes.data_as(L.c_float_p)
        o.mix_weight, o.thoughts, o.thought_cap = mw.ctypes.data_as(L.c_float_p), th.ctypes.data_as(L.c_int_p), cap
        _check(_lib.qstar_score(self._handle(), toks.ctypes.data_as(L.c_int_p), n, C.byref(p), C.byref(o)))
        texts, prev = [], -1
        for t in toks:
            texts.append((_lib.qstar_token_text(self._handle(), prev, int(t)) or b"").decode("utf-8", "replace"))
            prev = int(t)
        return Scores(toks, texts, nb, nt, mw, th[:, :o.n_thought], o.mean_base, o.mean_think)

    def save(self, directory):
        _check(_lib.qstar_model_save(self._handle(), _b(directory)))

    def eval_task(self, task, data=None, limit=0, think=None, seed=1234, n_ahead=0, tau_sample=0.0,
                  greedy_thoughts=False, precision="fp32", out=None, force=False):
        """GSM8K / CommonsenseQA zero-shot (as `qstar eval --task`): a dict of the aggregates;
        out= also writes the CLI's results JSON there."""
        p = _lib.qstar_task_params_default()
        p.task, p.data_path, p.limit = _b(task), _b(data), int(limit)
        p.think = -1 if think is None else int(bool(think))
        p.seed, p.n_ahead, p.tau_sample, p.greedy_thoughts = int(seed), int(n_ahead), float(tau_sample), int(bool(greedy_thoughts))
        p.precision, p.out_path, p.force = _precision(precision), _b(out), int(bool(force))
        r = L.TaskResult()
        _check(_lib.qstar_eval_task(self._handle(), C.byref(p), L.TASK_CB(), None, C.byref(r)))
        d = {k: getattr(r, k) for k, _ in L.TaskResult._fields_}
        d["mixing"] = (r.mixing or b"").decode()
        return d

    def eval_nll(self, data, field=None, seq_len=0, batch=0, limit_tokens=0, think=None, seed=1234, n_ahead=0,
                 tau_sample=0.0, greedy_thoughts=False, think_when=None, random_thoughts=False, precision="fp32",
                 out=None, tokens_out=None, force=False, think_at=None, n_talk=0):
        """Held-out NLL of a text/JSONL file or `qstar prepare` directory without and with thoughts
        (the function behind `qstar eval --data` and `qstar eval --task nll`): a dict of nll_base,
        nll_think, hard20/hard10 means, gain and its 95% half-width gain_ci95, n_tokens, ...;
        out= / tokens_out= write the CLI's results JSON / per-token JSON lines; think_at="A: " thinks
        only after that text and scores the next n_talk tokens from that thought's talk passes."""
        p = _lib.qstar_eval_params_default()
        p.data_path, p.data_field, p.limit_tokens = _b(data), _b(field), int(limit_tokens)
        p.seq_len, p.batch, p.think = int(seq_len), int(batch), -1 if think is None else int(bool(think))
        p.seed, p.n_ahead, p.tau_sample, p.greedy_thoughts = int(seed), int(n_ahead), float(tau_sample), int(bool(greedy_thoughts))
        p.think_min_entropy, p.random_thoughts = _think_when(think_when), int(bool(random_thoughts))
        p.think_at, p.n_talk = _b(think_at), int(n_talk)
        p.precision, p.out_path, p.tokens_path, p.force = _precision(precision), _b(out), _b(tokens_out), int(bool(force))
        r = L.EvalResult()
        _check(_lib.qstar_eval_nll(self._handle(), C.byref(p), C.byref(r)))
        d = {k: getattr(r, k) for k, _ in L.EvalResult._fields_}
        d["mixing"] = (r.mixing or b"").decode()
        return d

    def viz(self, text, out, max_tokens=0, seed=1234, n_ahead=0, tau_sample=0.0, greedy_thoughts=False, title=None,
            force=False, precision="fp32"):
        """Writes `qstar viz`'s HTML page of text to out; returns the means (nll_base, nll_think, gain)."""
        p = _lib.qstar_viz_params_default()
        p.max_tokens, p.seed, p.n_ahead, p.tau_sample = int(max_tokens), int(seed), int(n_ahead), float(tau_sample)
        p.greedy_thoughts, p.title, p.force = int(bool(greedy_thoughts)), _b(title), int(bool(force))
        p.precision = _precision(precision)
        r = L.VizResult()
        _check(_lib.qstar_viz_write(self._handle(), _b(text), C.byref(p), _b(out), C.byref(r)))
        return {k: getattr(r, k) for k, _ in L.VizResult._fields_}


class Trainer:
    """Plain LM (quietstar=False, `qstar finetune`) or Quiet-STaR (`qstar train`) training
    with the CLI's code and defaults. Every keyword is a CLI flag with dashes written as
    underscores (the library's one options table, qstar_train_params_set): model=/config=/
    resume=, tokenizer=, data=, field=, out=, force=True, steps=, batch=, seq_len=, lr=,
    precision=, log=, n_ahead=, n_talk=, reward_baseline=, no_clamp=True, ... (see
    `qstar train --help`); a bad value raises qstar.Error with the library's message, an
    unknown name TypeError. progress=callable(dict) receives step/eval/warn/save records
    (and the setup's "note" lines with notes=True). With out= the run writes out/log.jsonl
    and holds out/qstar.lock like the CLI."""

    def __init__(self, quietstar=False, progress=None, notes=False, **kw):
        self._h = None
        p = _lib.qstar_train_params_default()
        p.quietstar = int(bool(quietstar))
        try:
            for k, v in kw.items():
                name = k.replace("_", "-")
                kind = _lib.qstar_train_option_kind(name.encode())
                if kind < 0:
                    raise TypeError(f"Trainer: unknown setting {k!r}")
                if v is None or v is False:
                    continue
                if kind == 0:
                    value = None
                elif isinstance(v, float):
                    value = repr(v).encode()
                else:
                    value = _b(v)
                _check(_lib.qstar_train_params_set(C.byref(p), name.encode(), value))
            self._create(p, progress, notes)
        finally:
            _lib.qstar_train_params_free(C.byref(p))

    def _create(self, p, progress, notes):
        self._progress = progress
        if progress is not None:
            def cb(_user, pp):
                try:
                    if pp.contents.kind != 4 or notes:
                        progress(_progress_dict(pp.contents))
                except BaseException:
                    return 1
                return 0
            self._cb = L.PROGRESS_CB(cb)
            p.progress = self._cb
        h = C.c_void_p()
        _check(_lib.qstar_trainer_create(C.byref(p), C.byref(h)))
        self._h = h
        self.model = Model(None, _handle=C.c_void_p(_lib.qstar_trainer_model(h)), _owner=self)

    def close(self):
        if self._h is not None:
            _lib.qstar_trainer_free(self._h)
        self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _handle(self):
        if self._h is None:
            raise Error("the trainer is closed")
        return self._h

    @property
    def steps_done(self):
        return _lib.qstar_trainer_steps_done(self._handle())

    def step(self):
        """One optimizer step; returns its record (loss, lr, grad_norm, ...)."""
        pr = L.Progress()
        _check(_lib.qstar_trainer_step(self._handle(), C.byref(pr)))
        return _progress_dict(pr)

    def eval(self):
        """Held-out NLL: (base, with thoughts) -- the second is NaN in plain LM mode."""
        a, b = C.c_double(), C.c_double()
        _check(_lib.qstar_trainer_eval(self._handle(), C.byref(a), C.byref(b)))
        return a.value, b.value

    def save(self, directory=None):
        """Checkpoint to DIR/ckpt (default: out=); returns the checkpoint directory."""
        buf = C.create_string_buffer(4096)
        _check(_lib.qstar_trainer_save(self._handle(), _b(directory), buf, 4096))
        return buf.value.decode()

    def resume(self, directory):
        _check(_lib.qstar_trainer_resume(self._handle(), _b(directory)))

    def run(self):
        """To the end like the CLI: evaluations, checkpoints and progress."""
        _check(_lib.qstar_trainer_run(self._handle()))


_KINDS = {0: "step", 1: "eval", 2: "warn", 3: "save", 4: "note"}


def _progress_dict(p):
    d = {k: getattr(p, k) for k, _ in L.Progress._fields_}
    d["kind"] = _KINDS.get(p.kind, p.kind)
    d["message"] = (p.message or b"").decode("utf-8", "replace")
    return d

from .tokenizer import Tokenizer  # noqa: E402  (uses _lib and _check above)

__all__.append("Tokenizer")
