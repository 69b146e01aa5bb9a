"""ctypes declarations of libqstar's public API (include/qstar.h)."""
import ctypes as C
import os

c_float_p = C.POINTER(C.c_float)
c_int_p = C.POINTER(C.c_int)


class ModelParams(C.Structure):
    _fields_ = [("tokenizer_path", C.c_char_p), ("n_threads", C.c_int)]


class Config(C.Structure):
    _fields_ = [("arch", C.c_char_p), ("dim", C.c_int), ("hidden_dim", C.c_int), ("n_layers", C.c_int),
                ("n_heads", C.c_int), ("n_kv_heads", C.c_int), ("head_dim", C.c_int), ("vocab_size", C.c_int),
                ("max_seq_len", C.c_int), ("bos_id", C.c_int), ("eos_id", C.c_int), ("n_params", C.c_size_t),
                ("has_quietstar", C.c_int), ("n_ahead", C.c_int)]


class GenParams(C.Structure):
    _fields_ = [("max_tokens", C.c_int), ("temperature", C.c_float), ("top_p", C.c_float),
                ("seed", C.c_uint64), ("think", C.c_int), ("n_ahead", C.c_int), ("tau_sample", C.c_float),
                ("greedy_thoughts", C.c_int), ("think_min_entropy", C.c_float), ("random_thoughts", C.c_int),
                ("precision", C.c_int), ("no_stop", C.c_int)]


class Token(C.Structure):
    _fields_ = [("token", C.c_int), ("text", C.c_char_p), ("thought", c_int_p), ("n_thought", C.c_int),
                ("thought_text", C.c_char_p), ("mix_weight", C.c_float), ("generated", C.c_int),
                ("prev", C.c_int)]


class GenStats(C.Structure):
    _fields_ = [("n_positions", C.c_int), ("n_generated", C.c_int), ("n_thoughts", C.c_int), ("think", C.c_int),
                ("n_ahead", C.c_int), ("seconds", C.c_double), ("tok_per_s", C.c_double)]


TOKEN_CB = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(Token))


class ScoreParams(C.Structure):
    _fields_ = [("think", C.c_int), ("n_ahead", C.c_int), ("tau_sample", C.c_float),
                ("greedy_thoughts", C.c_int), ("seed", C.c_uint64), ("seq_len", C.c_int), ("batch", C.c_int),
                ("precision", C.c_int)]


class VizParams(C.Structure):
    _fields_ = [("max_tokens", C.c_int), ("n_ahead", C.c_int), ("tau_sample", C.c_float),
                ("greedy_thoughts", C.c_int), ("seed", C.c_uint64), ("precision", C.c_int), ("title", C.c_char_p),
                ("force", C.c_int)]


class VizResult(C.Structure):
    _fields_ = [("n_tokens", C.c_int), ("n_ahead", C.c_int), ("nll_base", C.c_double), ("nll_think", C.c_double),
                ("gain", C.c_double)]


class ScoreOut(C.Structure):
    _fields_ = [("nll_base", c_float_p), ("nll_think", c_float_p), ("mix_weight", c_float_p),
                ("thoughts", c_int_p), ("thought_cap", C.c_int), ("n_thought", C.c_int), ("n_scored", C.c_int),
                ("mean_base", C.c_double), ("mean_think", C.c_double)]


class Progress(C.Structure):
    _fields_ = [("kind", C.c_int), ("step", C.c_long), ("total", C.c_long), ("loss", C.c_float),
                ("lr", C.c_float), ("grad_norm", C.c_float), ("skipped", C.c_int), ("val_nll", C.c_double),
                ("val_nll_think", C.c_double), ("loss_lm", C.c_float), ("loss_base", C.c_float),
                ("policy_loss", C.c_float), ("reward_mean", C.c_float), ("mix_mean", C.c_float),
                ("message", C.c_char_p), ("tok_per_s", C.c_double), ("elapsed", C.c_double),
                ("eta", C.c_double), ("val_tokens", C.c_long), ("loss_talk", C.c_float)]


PROGRESS_CB = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(Progress))


class TrainParams(C.Structure):
    _fields_ = [("quietstar", C.c_int), ("model_path", C.c_char_p), ("config_path", C.c_char_p),
                ("resume_dir", C.c_char_p), ("tokenizer_path", C.c_char_p), ("data_path", C.c_char_p),
                ("data_field", C.c_char_p), ("out_dir", C.c_char_p), ("val_frac", C.c_double),
                ("seed", C.c_uint64), ("n_threads", C.c_int), ("steps", C.c_long), ("batch", C.c_int),
                ("seq_len", C.c_int), ("grad_accum", C.c_int), ("lr", C.c_float), ("min_lr", C.c_float),
                ("weight_decay", C.c_float), ("beta1", C.c_float), ("beta2", C.c_float), ("eps", C.c_float),
                ("clip", C.c_float), ("warmup", C.c_long), ("eval_every", C.c_long), ("save_every", C.c_long),
                ("eval_batches", C.c_int), ("n_ahead", C.c_int), ("n_talk", C.c_int), ("n_passes", C.c_int),
                ("policy_beta", C.c_float), ("thought_init", C.c_char_p), ("progress", PROGRESS_CB),
                ("progress_user", C.c_void_p), ("options", C.c_void_p)]


class TaskParams(C.Structure):
    _fields_ = [("task", C.c_char_p), ("data_path", C.c_char_p), ("limit", C.c_long), ("think", C.c_int),
                ("n_ahead", C.c_int), ("tau_sample", C.c_float), ("greedy_thoughts", C.c_int),
                ("seed", C.c_uint64), ("precision", C.c_int), ("out_path", C.c_char_p), ("force", C.c_int)]


class TaskResult(C.Structure):
    _fields_ = [("n", C.c_long), ("accuracy", C.c_double), ("exact_match", C.c_double),
                ("first_token_prob", C.c_double), ("truncated", C.c_long), ("off_set", C.c_long),
                ("think", C.c_int), ("n_ahead", C.c_int), ("tau_sample", C.c_float), ("mixing", C.c_char_p),
                ("accuracy_chance", C.c_double), ("first_token_chance", C.c_double)]


TASK_CB = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_long, C.c_double, C.c_int)


class EvalProgress(C.Structure):
    _fields_ = [("windows_done", C.c_size_t), ("windows_total", C.c_size_t), ("n_tokens", C.c_long),
                ("nll_base", C.c_double), ("prepared", C.c_int), ("heldout", C.c_int), ("n_docs", C.c_size_t),
                ("n_stream_tokens", C.c_size_t)]


EVAL_CB = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(EvalProgress))


class EvalParams(C.Structure):
    _fields_ = [("data_path", C.c_char_p), ("data_field", C.c_char_p), ("limit_tokens", C.c_long),
                ("seq_len", C.c_int), ("batch", C.c_int), ("think", C.c_int), ("n_ahead", C.c_int),
                ("tau_sample", C.c_float), ("greedy_thoughts", C.c_int), ("seed", C.c_uint64),
                ("think_min_entropy", C.c_float), ("random_thoughts", C.c_int), ("think_at", C.c_char_p),
                ("n_talk", C.c_int), ("precision", C.c_int),
                ("out_path", C.c_char_p), ("tokens_path", C.c_char_p), ("force", C.c_int),
                ("progress", EVAL_CB), ("progress_user", C.c_void_p)]


class EvalResult(C.Structure):
    _fields_ = [("n_tokens", C.c_long), ("seq_len", C.c_int), ("batch", C.c_int), ("think", C.c_int),
                ("n_ahead", C.c_int), ("tau_sample", C.c_float), ("mixing", C.c_char_p), ("nll_base", C.c_double),
                ("nll_think", C.c_double), ("hard20_base", C.c_double), ("hard20_think", C.c_double),
                ("hard10_base", C.c_double), ("hard10_think", C.c_double), ("mix_mean", C.c_double),
                ("think_frac", C.c_double), ("gain", C.c_double), ("gain_ci95", C.c_double),
                ("gain_windows", C.c_long), ("seconds", C.c_double)]


def _candidates():
    env = os.environ.get("QSTAR_LIB")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "..", "..", "build", "libqstar.so")      # a checkout: python/qstar -> build/
    yield os.path.join(here, "..", "..", "..", "libqstar.so")         # PREFIX/lib/python3/dist-packages/qstar
    yield os.path.join(here, "..", "..", "..", "libqstar.so.0")
    yield "libqstar.so.0"                                              # the system's search path


def load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            continue
        try:
            lib = C.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
            continue
        _declare(lib)
        return lib
    raise OSError("libqstar.so not found (set QSTAR_LIB to its path, or build it with make): "
                  + "; ".join(errors))


def _declare(lib):
    P = C.c_void_p
    st = C.c_int
    sig = {
        "qstar_last_error": (C.c_char_p, []),
        "qstar_version": (C.c_char_p, []),
        "qstar_model_params_default": (ModelParams, []),
        "qstar_model_load": (st, [C.c_char_p, C.POINTER(ModelParams), C.POINTER(P)]),
        "qstar_model_save": (st, [P, C.c_char_p]),
        "qstar_model_free": (None, [P]),
        "qstar_model_config": (st, [P, C.POINTER(Config)]),
        "qstar_tokenize": (st, [P, C.c_char_p, C.c_int, c_int_p, C.c_int, c_int_p]),
        "qstar_detokenize": (st, [P, c_int_p, C.c_int, C.c_char_p, C.c_size_t, C.POINTER(C.c_size_t)]),
        "qstar_token_text": (C.c_char_p, [P, C.c_int, C.c_int]),
        "qstar_gen_params_default": (GenParams, []),
        "qstar_generate": (st, [P, C.c_char_p, C.POINTER(GenParams), TOKEN_CB, C.c_void_p]),
        "qstar_generate_ex": (st, [P, C.c_char_p, C.POINTER(GenParams), TOKEN_CB, C.c_void_p, C.POINTER(GenStats)]),
        "qstar_think_when_parse": (st, [C.c_char_p, C.POINTER(C.c_float)]),
        "qstar_precision_parse": (st, [C.c_char_p, c_int_p]),
        "qstar_viz_params_default": (VizParams, []),
        "qstar_viz_check": (st, [C.c_char_p, C.POINTER(VizParams)]),
        "qstar_viz_write": (st, [P, C.c_char_p, C.POINTER(VizParams), C.c_char_p, C.POINTER(VizResult)]),
        "qstar_eval_params_default": (EvalParams, []),
        "qstar_eval_check": (st, [C.POINTER(EvalParams)]),
        "qstar_eval_nll": (st, [P, C.POINTER(EvalParams), C.POINTER(EvalResult)]),
        "qstar_task_check": (st, [C.POINTER(TaskParams)]),
        "qstar_task_count": (st, [C.POINTER(TaskParams), C.POINTER(C.c_long)]),
        "qstar_score_params_default": (ScoreParams, []),
        "qstar_score": (st, [P, c_int_p, C.c_int, C.POINTER(ScoreParams), C.POINTER(ScoreOut)]),
        "qstar_train_params_default": (TrainParams, []),
        "qstar_train_params_set": (st, [C.POINTER(TrainParams), C.c_char_p, C.c_char_p]),
        "qstar_train_params_free": (None, [C.POINTER(TrainParams)]),
        "qstar_train_option_kind": (C.c_int, [C.c_char_p]),
        "qstar_trainer_create": (st, [C.POINTER(TrainParams), C.POINTER(P)]),
        "qstar_trainer_step": (st, [P, C.POINTER(Progress)]),
        "qstar_trainer_eval": (st, [P, C.POINTER(C.c_double), C.POINTER(C.c_double)]),
        "qstar_trainer_save": (st, [P, C.c_char_p, C.c_char_p, C.c_size_t]),
        "qstar_trainer_resume": (st, [P, C.c_char_p]),
        "qstar_trainer_run": (st, [P]),
        "qstar_trainer_steps_done": (C.c_long, [P]),
        "qstar_trainer_model": (P, [P]),
        "qstar_trainer_free": (None, [P]),
        "qstar_task_params_default": (TaskParams, []),
        "qstar_eval_task": (st, [P, C.POINTER(TaskParams), TASK_CB, C.c_void_p, C.POINTER(TaskResult)]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
