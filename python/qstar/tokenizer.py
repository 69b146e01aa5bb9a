"""qstar.Tokenizer: a tokenizer on its own (include/qstar.h "Tokenizers on their own").

    tok = qstar.Tokenizer("tokenizer.json")       # or tokenizer.model, tok512.bin, a .gguf, a model directory
    ids = tok.encode("Once upon a time", add_bos=True)
    text = tok.decode(ids)                         # BOS/EOS give no text: text == "Once upon a time"

The same library code as `qstar tokenize` (encode(text, special=True) adds BOS/EOS as
the tokenizer's configuration says, like --special).
"""
import ctypes as C

from . import Error, _b, _check, _lib


class TokenizerParams(C.Structure):
    _fields_ = [("vocab_size", C.c_int)]


class TokenizerInfo(C.Structure):
    _fields_ = [("vocab_size", C.c_int), ("bos_id", C.c_int), ("eos_id", C.c_int), ("add_bos", C.c_int),
                ("add_eos", C.c_int), ("kind", C.c_char_p)]


def _declare(lib):
    P, st, ip = C.c_void_p, C.c_int, C.POINTER(C.c_int)
    sig = {
        "qstar_tokenizer_params_default": (TokenizerParams, []),
        "qstar_tokenizer_load": (st, [C.c_char_p, C.POINTER(TokenizerParams), C.POINTER(P)]),
        "qstar_tokenizer_free": (None, [P]),
        "qstar_tokenizer_get_info": (st, [P, C.POINTER(TokenizerInfo)]),
        "qstar_tokenizer_encode_alloc": (st, [P, C.c_char_p, C.c_int, C.c_int, C.POINTER(ip), ip]),
        "qstar_tokenizer_ids_free": (None, [ip]),
        "qstar_decoder_create": (st, [P, C.c_int, C.POINTER(P)]),
        "qstar_decoder_push": (st, [P, C.c_int, C.c_char_p, C.c_size_t, C.POINTER(C.c_size_t)]),
        "qstar_decoder_flush": (st, [P, C.c_char_p, C.c_size_t, C.POINTER(C.c_size_t)]),
        "qstar_decoder_free": (None, [P]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args


_declare(_lib)
_PIECE_CAP = 1 << 16  # >= 64 + the longest piece of any vocabulary qstar reads


class Tokenizer:
    """A tokenizer from any source qstar reads (see the module docstring).

    Attributes: vocab_size, bos_id, eos_id (-1: none), add_bos, add_eos (what
    special=True adds), kind ("llama2c", "spm", "bpe-bytelevel", "bpe-spm")."""

    def __init__(self, path, vocab_size=0):
        p = _lib.qstar_tokenizer_params_default()
        p.vocab_size = int(vocab_size)
        h = C.c_void_p()
        _check(_lib.qstar_tokenizer_load(_b(path), C.byref(p), C.byref(h)))
        self._h = h
        info = TokenizerInfo()
        _check(_lib.qstar_tokenizer_get_info(h, C.byref(info)))
        self.vocab_size, self.bos_id, self.eos_id = info.vocab_size, info.bos_id, info.eos_id
        self.add_bos, self.add_eos = bool(info.add_bos), bool(info.add_eos)
        self.kind = info.kind.decode()

    def _handle(self):
        if not self._h:
            raise Error("qstar.Tokenizer: used after close()")
        return self._h

    def encode(self, text, add_bos=False, add_eos=False, special=False):
        """UTF-8 text -> list of ids (special=True: BOS/EOS as the configuration says)."""
        if special:
            add_bos, add_eos = self.add_bos, self.add_eos
        ids, n = C.POINTER(C.c_int)(), C.c_int()
        _check(_lib.qstar_tokenizer_encode_alloc(self._handle(), str(text).encode("utf-8"), int(bool(add_bos)),
                                                 int(bool(add_eos)), C.byref(ids), C.byref(n)))
        try:
            return ids[:n.value]
        finally:
            _lib.qstar_tokenizer_ids_free(ids)

    def decode(self, ids, specials=False):
        """ids -> text, as `qstar tokenize --decode` prints it when specials=True
        (special tokens give their text); by default BOS/EOS and other special
        tokens give none, so decode(encode(s, add_bos=True)) == s."""
        ids = [int(i) for i in ids]
        for k, i in enumerate(ids):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} (item {k}) is not a token id in [0, {self.vocab_size})")
        d = C.c_void_p()
        _check(_lib.qstar_decoder_create(self._handle(), int(bool(specials)), C.byref(d)))
        buf, n, out = C.create_string_buffer(_PIECE_CAP), C.c_size_t(), []
        try:
            for i in ids:
                _check(_lib.qstar_decoder_push(d, i, buf, _PIECE_CAP, C.byref(n)))
                out.append(buf.raw[:n.value])
            _check(_lib.qstar_decoder_flush(d, buf, _PIECE_CAP, C.byref(n)))
            out.append(buf.raw[:n.value])
        finally:
            _lib.qstar_decoder_free(d)
        return b"".join(out).decode("utf-8")

    def __len__(self):
        return self.vocab_size

    def close(self):
        if getattr(self, "_h", None):
            _lib.qstar_tokenizer_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


