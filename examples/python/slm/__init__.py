"""slm from Python: small language models through the slm shared library.

Pure ctypes, no third-party packages, Python 3.8+.

    import slm
    with slm.Model("tests/data/demo/kjv-1m-q8_0.gguf") as model:
        with model.session(n_ctx=256) as s:
            for piece in s.stream("And the LORD said", max_tokens=32, temperature=0):
                print(piece, end="", flush=True)

The library is looked for in $SLM_LIBRARY, next to this package, in the
repository's build/ (``make`` builds build/libslm.so), in ./build/ and last
through the system's library search. Every failure of the library raises an
SlmError subclass carrying the status code and the library's message.
"""

import ctypes
import os
import atexit
import queue
import signal
import threading
import weakref
from ctypes import POINTER, byref, c_char_p, c_double, c_float, c_int, c_int32, c_int64, c_size_t, c_void_p

from . import _lib

__all__ = [
    "Model", "Session", "Sampler", "SamplerParams", "Generation", "Stream", "Chat", "ModelInfo", "TensorInfo",
    "SlmError", "InvalidArgumentError", "SlmIOError", "FormatError", "UnsupportedError", "OutOfMemoryError",
    "ContextFullError", "NotFoundError", "MetadataTypeError", "BufferTooSmallError", "LibraryError",
    "version", "build_info", "library_path", "chat_format", "chat_families", "quantize", "cosine", "POOLINGS",
    "STOP_NONE", "STOP_EOG", "STOP_MAX_TOKENS", "STOP_STRING", "STOP_CALLBACK", "STOP_CONTEXT_FULL",
    "STOP_GRAMMAR", "Grammar", "json_schema_to_grammar", "JSON_GRAMMAR",
]

__version__ = "0.1.0"

STOP_NONE, STOP_EOG, STOP_MAX_TOKENS, STOP_STRING, STOP_CALLBACK, STOP_CONTEXT_FULL = 0, 1, 2, 3, 4, 5
STOP_GRAMMAR = 6
STOP_NAMES = {0: "none", 1: "eog", 2: "max_tokens", 3: "stop_string", 4: "callback", 5: "context_full",
              6: "grammar"}

POOLINGS = ("none", "mean", "cls", "last")

KV_TYPES = {"f16": _lib.SLM_TYPE_F16, "f32": _lib.SLM_TYPE_F32, "q8_0": _lib.SLM_TYPE_Q8_0}


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class SlmError(Exception):
    """A call into slm failed. `status` is the slm_status code (negative; None
    for errors of the binding itself), `message` the library's one-line
    explanation (slm_error.message) or the status name."""

    status = None

    def __init__(self, message, status=None):
        Exception.__init__(self, message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(SlmError, ValueError):
    status = _lib.SLM_ERR_INVALID_ARG


class SlmIOError(SlmError):
    """The file could not be opened or read."""
    status = _lib.SLM_ERR_IO


class FormatError(SlmError):
    """Not a well-formed GGUF file."""
    status = _lib.SLM_ERR_FORMAT


class UnsupportedError(SlmError):
    status = _lib.SLM_ERR_UNSUPPORTED


class OutOfMemoryError(SlmError):
    status = _lib.SLM_ERR_NOMEM


class ContextFullError(SlmError):
    status = _lib.SLM_ERR_CONTEXT_FULL


class NotFoundError(SlmError, LookupError):
    status = _lib.SLM_ERR_NOT_FOUND


class MetadataTypeError(SlmError, TypeError):
    status = _lib.SLM_ERR_TYPE


class BufferTooSmallError(SlmError):
    status = _lib.SLM_ERR_BUFFER


class LibraryError(SlmError):
    """The shared library is missing, or its structs differ from this binding's."""


_ERRORS = {c.status: c for c in (InvalidArgumentError, SlmIOError, FormatError, UnsupportedError,
                                 OutOfMemoryError, ContextFullError, NotFoundError, MetadataTypeError,
                                 BufferTooSmallError)}


def _status_name(status):
    s = _L.slm_status_string(status)
    return s.decode() if s else "status %d" % status


def _raise(status, err=None, what=None):
    msg = ""
    if err is not None and err.message:
        msg = err.message.decode("utf-8", "replace")
    if not msg:
        msg = _status_name(status)
    if what:
        msg = "%s: %s" % (what, msg)
    raise _ERRORS.get(status, SlmError)(msg, status)


def _check(status, err=None, what=None):
    if status != _lib.SLM_OK:
        _raise(status, err, what)


# ---------------------------------------------------------------------------
# The library
# ---------------------------------------------------------------------------

try:
    _L, _PATH = _lib.load_library()
except _lib.LibraryNotFound as _e:
    raise ImportError(str(_e))
_lib.declare(_L)
_problems = _lib.check_layouts(_L)
if _problems:
    raise LibraryError("the slm library at %s does not match this binding's struct layouts (slm.h %d.%d): %s"
                       % (_PATH, _lib.API_VERSION[0], _lib.API_VERSION[1], "; ".join(_problems)))
del _problems


def version():
    """The library's version string ("0.1.0")."""
    return _L.slm_version().decode()


def build_info():
    """The library's configuration: the kernel sets compiled in, the best
    one this CPU supports, OpenMP, ..."""
    return _L.slm_build_info().decode()


def isas():
    """Names of the instruction sets this build has and this CPU runs
    (a Model's `isa` argument), best first."""
    best_first = (4, 3, 2, 9, 8, 5, 6, 7, 1)  # avx512 avx2 sse4 i8mm dotprod neon rvv mve scalar
    return [_L.slm_isa_name(i).decode() for i in best_first if _L.slm_isa_available(i)]


def library_path():
    """The path the shared library was loaded from."""
    return _PATH


def _enc(s):
    if isinstance(s, bytes):
        return s
    return str(s).encode("utf-8")


def _dec(b):
    return b.decode("utf-8", "replace")


def _ids_array(tokens):
    tokens = list(tokens)
    return (c_int32 * max(len(tokens), 1))(*tokens), len(tokens)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

class _Closeable(object):
    """close() on `with` exit and on garbage collection (also at interpreter
    exit, when module globals may already be gone)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _Handle(_Closeable):
    """An object owning a library handle in self._handle."""

    @property
    def closed(self):
        return not self._handle


class ModelInfo(object):
    """slm_model_info as a plain object (same field names)."""

    __slots__ = [f for f, _ in _lib.slm_model_info._fields_]

    def __init__(self, c):
        for f in self.__slots__:
            v = getattr(c, f)
            if f in ("arch", "name"):
                v = _dec(v or b"")
            setattr(self, f, v)

    def as_dict(self):
        return {f: getattr(self, f) for f in self.__slots__}

    def __repr__(self):
        return "ModelInfo(%s)" % ", ".join("%s=%r" % kv for kv in self.as_dict().items())


class TensorInfo(object):
    __slots__ = ["name", "type", "type_name", "n_dims", "shape", "offset", "nbytes"]

    def __init__(self, c):
        self.name = _dec(c.name)
        self.type = c.type
        t = _L.slm_type_name(c.type)
        self.type_name = t.decode() if t else str(c.type)
        self.n_dims = c.n_dims
        self.shape = tuple(c.ne[i] for i in range(c.n_dims))
        self.offset = c.offset
        self.nbytes = c.nbytes

    def __repr__(self):
        return "TensorInfo(%r, %s, %r)" % (self.name, self.type_name, self.shape)


_LOG_LEVELS = {0: "error", 1: "warn", 2: "info", 3: "debug"}


def _model_params(use_mmap, vocab_only, repack, log, isa=None):
    p = _lib.slm_model_params()
    _L.slm_model_params_init(byref(p))
    if isa is not None:
        n = _L.slm_isa_from_name(str(isa).encode())
        if n < 0:
            raise ValueError("isa: unknown instruction set %r (see slm.isas())" % (isa,))
        p.isa = n
    p.use_mmap = 1 if use_mmap else 0
    p.vocab_only = 1 if vocab_only else 0
    p.repack = 1 if repack else 0
    cb = None
    if log is not None:
        def _log(user, level, message, _log=log):
            try:
                _log(_LOG_LEVELS.get(level, str(level)), _dec(message or b""))
            except Exception:  # never let an exception cross into C
                pass
        cb = _lib.LOG_FN(_log)
        p.log = cb
    return p, cb


class Model(_Handle):
    """A loaded GGUF model (read-only; may be shared by many sessions).

    Model(path, use_mmap=True, vocab_only=False, repack=True, log=None, isa=None)
    Model.from_bytes(data, ...) loads from memory (the buffer is kept
    referenced and must not change while the model lives).
    `log` is an optional callable(level_name, message) for the library's
    warnings. `isa` names the kernels to use ("avx2", "scalar", ...; None:
    the best this CPU supports); `model.isa` says which it uses. Close with close() or a with-block; also freed when collected.
    """

    _handle = None

    def __init__(self, path, use_mmap=True, vocab_only=False, repack=True, log=None, isa=None):
        self._init_common()
        p, self._log_cb = _model_params(use_mmap, vocab_only, repack, log, isa)
        err = _lib.slm_error()
        h = c_void_p()
        st = _L.slm_model_load_file(os.fsencode(path), byref(p), byref(h), byref(err))
        _check(st, err)
        self._handle = h
        self.path = os.fspath(path)

    @property
    def isa(self):
        """The instruction set whose kernels this model runs with ("avx2", ...)."""
        return _L.slm_isa_name(_L.slm_model_isa(self._h())).decode()

    def _init_common(self):
        self._buffer = None
        self._log_cb = None
        self._sessions = weakref.WeakSet()
        self._info = None
        self.path = None

    @classmethod
    def from_bytes(cls, data, vocab_only=False, log=None):
        """Load a model from bytes or any buffer (bytearray, mmap, memoryview).
        The weights are used in place: the buffer must stay unchanged while
        the model lives (the model keeps a reference to it)."""
        self = cls.__new__(cls)
        self._init_common()
        p, self._log_cb = _model_params(False, vocab_only, False, log)
        if isinstance(data, bytes):
            keep = data
            ptr = c_char_p(data)
            size = len(data)
        else:
            mv = memoryview(data).cast("B")
            if mv.readonly:
                keep = mv.tobytes()  # read-only buffers other than bytes: one copy
                ptr, size = c_char_p(keep), len(keep)
            else:
                keep = (ctypes.c_char * mv.nbytes).from_buffer(mv)
                ptr, size = keep, mv.nbytes
        err = _lib.slm_error()
        h = c_void_p()
        st = _L.slm_model_load_memory(ctypes.cast(ptr, c_void_p), size, byref(p), byref(h), byref(err))
        _check(st, err)
        self._buffer = keep
        self._handle = h
        return self

    # -- lifetime -----------------------------------------------------------

    def _h(self):
        if not self._handle:
            raise InvalidArgumentError("the model is closed", _lib.SLM_ERR_INVALID_ARG)
        return self._handle

    def close(self):
        """Free the model (and close its sessions first). Idempotent."""
        if self._handle:
            for s in list(self._sessions):
                s.close()
            h, self._handle = self._handle, None
            _L.slm_model_free(h)
            self._buffer = None


    # -- info and metadata --------------------------------------------------

    @property
    def info(self):
        """ModelInfo: architecture, sizes, parameter count, load time."""
        if self._info is None:
            c = _lib.slm_model_info()
            _L.slm_model_get_info(self._h(), byref(c))
            self._info = ModelInfo(c)
        return self._info

    @property
    def arch(self):
        return self.info.arch

    @property
    def name(self):
        return self.info.name

    @property
    def n_vocab(self):
        """Length of a logits row (slm_model_info.n_vocab)."""
        return self.info.n_vocab

    def meta_keys(self):
        h = self._h()
        return [_dec(_L.slm_meta_key(h, i)) for i in range(_L.slm_meta_count(h))]

    def _meta_scalar(self, i, t, elem):
        h = self._h()
        if t == _lib.SLM_META_STRING:
            p, n = c_void_p(), c_size_t()
            _check(_L.slm_meta_get_string(h, i, elem, byref(p), byref(n)))
            return _dec(ctypes.string_at(p, n.value))
        if t in (_lib.SLM_META_F32, _lib.SLM_META_F64):
            d = c_double()
            _check(_L.slm_meta_get_float(h, i, elem, byref(d)))
            return d.value
        v = c_int64()
        _check(_L.slm_meta_get_int(h, i, elem, byref(v)))
        return bool(v.value) if t == _lib.SLM_META_BOOL else v.value

    _MISSING = object()

    def meta(self, key, default=_MISSING):
        """The value of a metadata key: int, float, bool, str, or a list for
        arrays. KeyError (or `default`) if the key is absent."""
        h = self._h()
        i = _L.slm_meta_find(h, _enc(key))
        if i < 0:
            if default is Model._MISSING:
                raise KeyError(key)
            return default
        t = _L.slm_meta_type(h, i)
        if t == _lib.SLM_META_ARRAY:
            at = _L.slm_meta_array_type(h, i)
            if at == _lib.SLM_META_ARRAY:  # nested arrays: not readable through the API
                return None
            return [self._meta_scalar(i, at, e) for e in range(_L.slm_meta_array_count(h, i))]
        return self._meta_scalar(i, t, -1)

    def metadata(self):
        """All metadata as a dict (large arrays such as the vocabulary included)."""
        return {k: self.meta(k) for k in self.meta_keys()}

    def tensors(self):
        h = self._h()
        out = []
        for i in range(_L.slm_tensor_count(h)):
            c = _lib.slm_tensor_info()
            _check(_L.slm_tensor_get_info(h, i, byref(c)))
            out.append(TensorInfo(c))
        return out

    # -- tokenizer ----------------------------------------------------------

    @property
    def vocab_size(self):
        return _L.slm_vocab_size(self._h())

    def _tok(self, fn):
        t = fn(self._h())
        return None if t < 0 else t

    @property
    def bos(self):
        """BOS id, or None."""
        return self._tok(_L.slm_token_bos)

    @property
    def eos(self):
        return self._tok(_L.slm_token_eos)

    @property
    def eot(self):
        return self._tok(_L.slm_token_eot)

    def is_eog(self, token):
        """True if the token ends generation (EOS, EOT, <|im_end|>, ...)."""
        return bool(_L.slm_token_is_eog(self._h(), token))

    def token_text(self, token):
        """The raw vocabulary piece (SentencePiece spaces as U+2581)."""
        n = c_size_t()
        p = _L.slm_token_text(self._h(), token, byref(n))
        if not p:
            raise InvalidArgumentError("token %d is out of range" % token, _lib.SLM_ERR_INVALID_ARG)
        return _dec(ctypes.string_at(p, n.value))

    def token_to_piece(self, token, special=False):
        """The bytes one token decodes to."""
        h = self._h()
        buf = ctypes.create_string_buffer(64)
        n = c_size_t()
        st = _L.slm_token_to_piece(h, token, int(special), buf, len(buf), byref(n))
        if st == _lib.SLM_ERR_BUFFER:
            buf = ctypes.create_string_buffer(n.value)
            st = _L.slm_token_to_piece(h, token, int(special), buf, len(buf), byref(n))
        _check(st)
        return buf.raw[:n.value]

    def tokenize(self, text, add_special=True, parse_special=False):
        """Text (str or bytes) -> list of token ids. add_special adds BOS/EOS as
        the model asks; parse_special turns control-token text ("<s>") into
        those tokens."""
        h = self._h()
        data = _enc(text)
        cap = len(data) + 8
        out = (c_int32 * cap)()
        n = c_int32()
        err = _lib.slm_error()
        st = _L.slm_tokenize(h, data, len(data), int(add_special), int(parse_special), out, cap, byref(n),
                             byref(err))
        if st == _lib.SLM_ERR_BUFFER:
            cap = n.value
            out = (c_int32 * cap)()
            st = _L.slm_tokenize(h, data, len(data), int(add_special), int(parse_special), out, cap, byref(n),
                                 byref(err))
        _check(st, err)
        return out[:n.value]

    def detokenize_bytes(self, tokens, remove_special=False, unparse_special=False):
        h = self._h()
        arr, n = _ids_array(tokens)
        err = _lib.slm_error()
        need = c_size_t()
        buf = ctypes.create_string_buffer(16 * n + 16)
        st = _L.slm_detokenize(h, arr, n, int(remove_special), int(unparse_special), buf, len(buf), byref(need),
                               byref(err))
        if st == _lib.SLM_ERR_BUFFER:
            buf = ctypes.create_string_buffer(need.value + 1)
            st = _L.slm_detokenize(h, arr, n, int(remove_special), int(unparse_special), buf, len(buf),
                                   byref(need), byref(err))
        _check(st, err)
        return buf.raw[:need.value]

    def detokenize(self, tokens, remove_special=False, unparse_special=False):
        """Token ids -> text, as llama.cpp's detokenizer (invalid UTF-8 is
        replaced; detokenize_bytes gives the raw bytes)."""
        return _dec(self.detokenize_bytes(tokens, remove_special, unparse_special))

    # -- chat ---------------------------------------------------------------

    def chat_family(self):
        """(family name, fallback): the model's chat template family; fallback
        is True when the file has no template slm recognizes (ChatML then)."""
        fb = c_int()
        fam = _L.slm_chat_model_family(self._h(), byref(fb))
        return _L.slm_chat_family_name(fam).decode(), bool(fb.value)

    def chat_format(self, messages, add_generation_prompt=True, template=None, n_past=0, enable_thinking=True):
        """Format messages (dicts with "role" and "content") as prompt text
        in the model's chat template (or `template`: a family name such as
        "chatml" or "llama3")."""
        return chat_format(messages, add_generation_prompt, template, n_past, model=self,
                           enable_thinking=enable_thinking)

    # -- sessions -----------------------------------------------------------

    def session(self, n_ctx=0, n_threads=0, n_batch=0, kv_type="f16", logits_all=False):
        """A new Session (one conversation). n_ctx 0: min(training context,
        4096); n_threads 0: the default (one per performance core, at
        most 8); kv_type "f16", "f32" or "q8_0"."""
        return Session(self, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, kv_type=kv_type,
                       logits_all=logits_all)

    def generate(self, prompt, n_ctx=0, n_threads=0, **kwargs):
        """One-shot generation in a fresh session; returns a Generation."""
        with self.session(n_ctx=n_ctx, n_threads=n_threads) as s:
            return s.generate(prompt, **kwargs)

    # -- embeddings ---------------------------------------------------------

    @property
    def pooling(self):
        """The model's pooling from its file: "none", "mean", "cls" or "last"."""
        return _dec(_L.slm_pooling_name(_L.slm_model_pooling(self._h())))

    @property
    def n_embd_out(self):
        """Floats per embedding vector."""
        return _L.slm_model_n_embd_out(self._h())

    @property
    def is_encoder(self):
        """True for encoders (bert, nomic-bert, gemma-embedding): they embed only."""
        return bool(_L.slm_model_is_encoder(self._h()))

    def embed(self, texts, n_ctx=0, n_threads=0, kv_type="f16", **kwargs):
        """Embed in a fresh session; see Session.embed."""
        with self.session(n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type) as s:
            return s.embed(texts, **kwargs)

    def __repr__(self):
        if not self._handle:
            return "<slm.Model closed>"
        i = self.info
        return "<slm.Model %s %r: %d layers, %d params>" % (i.arch, i.name, i.n_layer, i.n_params)


# ---------------------------------------------------------------------------
# Chat formatting
# ---------------------------------------------------------------------------

def chat_families():
    """The names of the template families slm renders."""
    out = []
    for i in range(1, 64):
        n = _L.slm_chat_family_name(i)
        if not n:
            break
        out.append(n.decode())
    return out


def _family(template):
    if template is None or template == 0 or template == "auto":
        return 0
    if isinstance(template, int):
        return template
    f = _L.slm_chat_family_from_name(_enc(template))
    if not f:
        raise InvalidArgumentError("unknown chat template %r (known: %s)" % (template, ", ".join(chat_families())),
                                   _lib.SLM_ERR_INVALID_ARG)
    return f


def _messages(messages):
    msgs = list(messages)
    arr = (_lib.slm_chat_message * max(len(msgs), 1))()
    keep = []
    for i, m in enumerate(msgs):
        try:
            role, content = m["role"], m["content"]
        except (KeyError, TypeError):
            raise InvalidArgumentError("message %d: a dict with 'role' and 'content' is needed" % i,
                                       _lib.SLM_ERR_INVALID_ARG)
        r, c = _enc(role), _enc(content)
        keep.append((r, c))
        arr[i].role = r
        arr[i].content = c
    return arr, len(msgs), keep


def chat_format(messages, add_generation_prompt=True, template=None, n_past=0, model=None, enable_thinking=True):
    """Format a conversation (dicts with "role" and "content") as prompt text.
    With model=None a template family name is needed. enable_thinking=False:
    the template's no-thinking form where it has one (Qwen3/3.5, SmolLM3)."""
    fam = _family(template)
    gen = (1 if add_generation_prompt else 0) | (0 if enable_thinking else 2)  # SLM_CHAT_GEN, SLM_CHAT_NO_THINK
    h = model._h() if model is not None else None
    arr, n, keep = _messages(messages)
    err = _lib.slm_error()
    need = c_size_t()
    st = _L.slm_chat_format(h, fam, arr, n, n_past, gen, None, 0, byref(need), None,
                            byref(err))
    if st not in (_lib.SLM_OK, _lib.SLM_ERR_BUFFER):
        _raise(st, err)
    buf = ctypes.create_string_buffer(need.value + 1)
    st = _L.slm_chat_format(h, fam, arr, n, n_past, gen, buf, len(buf), byref(need), None,
                            byref(err))
    _check(st, err)
    del keep
    return _dec(buf.raw[:need.value])


# ---------------------------------------------------------------------------
# Grammars
# ---------------------------------------------------------------------------

JSON_GRAMMAR = _dec(_L.slm_grammar_json())


def json_schema_to_grammar(schema):
    """GBNF text for a JSON Schema (a dict, or its JSON text). Unsupported
    keywords raise UnsupportedError naming them."""
    if not isinstance(schema, (str, bytes)):
        import json
        schema = json.dumps(schema)
    b = _enc(schema)
    need = c_size_t(0)
    err = _lib.slm_error()
    st = _L.slm_json_schema_to_grammar(b, len(b), None, 0, byref(need), byref(err))
    if st != _lib.SLM_ERR_BUFFER:
        _check(st, err)
    buf = ctypes.create_string_buffer(need.value + 1)
    _check(_L.slm_json_schema_to_grammar(b, len(b), buf, need.value + 1, byref(need), byref(err)), err)
    return _dec(buf.raw[:need.value])


class Grammar(_Handle):
    """A GBNF grammar compiled for a model's vocabulary (slm_grammar). Pass
    it as grammar= to Sampler, SamplerParams or generate(); it may serve
    many samplers. Grammar.json(model) is the built-in JSON grammar,
    Grammar.from_schema(model, schema) converts a JSON Schema."""

    _handle = None

    def __init__(self, model, text, root=None):
        b = _enc(text)
        h = c_void_p()
        err = _lib.slm_error()
        _check(_L.slm_grammar_create(model._h(), b, len(b), _enc(root) if root else None, byref(h), byref(err)), err)
        self._handle = h
        self.text = text if isinstance(text, str) else _dec(text)
        self.model = model  # the grammar was made for its vocabulary

    @classmethod
    def json(cls, model):
        return cls(model, JSON_GRAMMAR)

    @classmethod
    def from_schema(cls, model, schema):
        return cls(model, json_schema_to_grammar(schema))

    def close(self):
        if self._handle:
            h, self._handle = self._handle, None
            _L.slm_grammar_free(h)


GRAMMAR_STATES = {0: "none", 1: "active", 2: "complete", 3: "done", 4: "failed"}


# ---------------------------------------------------------------------------
# Sampler
# ---------------------------------------------------------------------------

class SamplerParams(object):
    """slm_sampler_params with the library's defaults; keyword arguments
    override fields (temperature <= 0 is greedy; grammar: a Grammar)."""

    __slots__ = [f for f, _ in _lib.slm_sampler_params._fields_]

    def __init__(self, **kwargs):
        c = _lib.slm_sampler_params()
        _L.slm_sampler_params_init(byref(c))
        for f in self.__slots__:
            setattr(self, f, getattr(c, f))
        for k, v in kwargs.items():
            if k not in self.__slots__:
                raise TypeError("unknown sampler parameter %r (known: %s)" % (k, ", ".join(self.__slots__)))
            setattr(self, k, v)

    def _c(self):
        c = _lib.slm_sampler_params()
        for f in self.__slots__:
            v = getattr(self, f)
            if f == "grammar":
                if v is not None and not isinstance(v, Grammar):
                    raise TypeError("grammar must be a Grammar (or None)")
                if v is not None and not v._handle:
                    raise InvalidArgumentError("the grammar is closed", _lib.SLM_ERR_INVALID_ARG)
                v = v._handle if v is not None else None
            setattr(c, f, v)
        return c

    def __repr__(self):
        return "SamplerParams(%s)" % ", ".join("%s=%r" % (f, getattr(self, f)) for f in self.__slots__)


class Sampler(_Handle):
    """A token sampler for logits rows of n_vocab floats (slm_sampler)."""

    _handle = None

    def __init__(self, n_vocab, params=None, **kwargs):
        if isinstance(n_vocab, Model):
            n_vocab = n_vocab.n_vocab
        self.params = params if params is not None else SamplerParams(**kwargs)
        self.n_vocab = n_vocab
        c = self.params._c()
        h = c_void_p()
        err = _lib.slm_error()
        _check(_L.slm_sampler_create(byref(c), n_vocab, None, byref(h), byref(err)), err)
        self._handle = h

    def sample(self, logits):
        """Choose a token from a logits row: a Session (its last logits), a
        memoryview/array of floats or a list. Does not accept the token."""
        if isinstance(logits, Session):
            ptr = logits._logits_ptr(-1)
        elif isinstance(logits, (list, tuple)):
            if len(logits) < self.n_vocab:
                raise InvalidArgumentError("a logits row has %d values" % self.n_vocab, _lib.SLM_ERR_INVALID_ARG)
            ptr = (c_float * self.n_vocab)(*logits[:self.n_vocab])
        else:
            mv = memoryview(logits).cast("B")
            if mv.nbytes < 4 * self.n_vocab:
                raise InvalidArgumentError("a logits row has %d values" % self.n_vocab, _lib.SLM_ERR_INVALID_ARG)
            ptr = (c_float * self.n_vocab).from_buffer_copy(mv[:4 * self.n_vocab])
        if not self._handle:
            raise InvalidArgumentError("the sampler is closed", _lib.SLM_ERR_INVALID_ARG)
        return _L.slm_sampler_sample(self._handle, ctypes.cast(ptr, POINTER(c_float)))

    def accept(self, token):
        """Record a generated token (penalty window; advances the grammar)."""
        _L.slm_sampler_accept(self._handle, token)

    @property
    def grammar_state(self):
        """"none", "active", "complete" (may end), "done" (must end) or
        "failed" (a token the grammar does not allow was accepted)."""
        return GRAMMAR_STATES.get(_L.slm_sampler_grammar_state(self._handle), "?")

    def reset(self, seed=None):
        _L.slm_sampler_reset(self._handle, self.params.seed if seed is None else seed)

    def close(self):
        if self._handle:
            h, self._handle = self._handle, None
            _L.slm_sampler_free(h)


# ---------------------------------------------------------------------------
# Session and generation
# ---------------------------------------------------------------------------

class Generation(object):
    """What Session.generate returns: the text, the generated ids, why it
    stopped and the timings (slm_generate_result)."""

    __slots__ = ["text", "tokens", "stop_reason", "n_prompt", "n_generated", "load_ms", "prompt_ms", "prompt_tps",
                 "gen_ms", "gen_tps"]

    def __init__(self, text, tokens, r):
        self.text = text
        self.tokens = tokens
        for f in self.__slots__[2:]:
            setattr(self, f, getattr(r, f))

    @property
    def stop(self):
        """The stop reason as a name: "eog", "max_tokens", "stop_string", ..."""
        return STOP_NAMES.get(self.stop_reason, str(self.stop_reason))

    def __str__(self):
        return self.text

    def __repr__(self):
        return "Generation(%r, stop=%s, n_prompt=%d, n_generated=%d)" % (self.text, self.stop, self.n_prompt,
                                                                         self.n_generated)


class Session(_Handle):
    """One conversation with a model: the KV cache, the position, the
    logits. Used by one thread at a time."""

    _handle = None

    def __init__(self, model, n_ctx=0, n_threads=0, n_batch=0, kv_type="f16", logits_all=False):
        for name, v in (("n_ctx", n_ctx), ("n_threads", n_threads), ("n_batch", n_batch)):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 2147483647:
                raise InvalidArgumentError("%s must be an integer from 0 (the default) to 2147483647, not %r"
                                           % (name, v), _lib.SLM_ERR_INVALID_ARG)
        p = _lib.slm_session_params()
        _L.slm_session_params_init(byref(p))
        p.n_ctx = n_ctx
        p.n_threads = n_threads
        p.n_batch = n_batch
        if isinstance(kv_type, str):
            if kv_type.lower() not in KV_TYPES:
                raise InvalidArgumentError("kv_type: one of %s" % ", ".join(KV_TYPES), _lib.SLM_ERR_INVALID_ARG)
            kv_type = KV_TYPES[kv_type.lower()]
        p.kv_type = kv_type
        p.logits_all = 1 if logits_all else 0
        h = c_void_p()
        err = _lib.slm_error()
        _check(_L.slm_session_create(model._h(), byref(p), byref(h), byref(err)), err)
        self.model = model  # keeps the model alive
        self._handle = h
        self._stream = None
        self._n_vocab = model.n_vocab
        model._sessions.add(self)

    def _h(self, owner=None):
        if not self._handle:
            raise InvalidArgumentError("the session is closed", _lib.SLM_ERR_INVALID_ARG)
        if self._stream is not None and self._stream is not owner:
            raise SlmError("the session is busy: a stream is generating (finish or close it first)")
        return self._handle

    def close(self):
        if self._handle:
            w = self._stream
            if w is not None:
                # a stream still generating: stop it (its Stream may be gone)
                w.finish()
                self._stream = None
            h, self._handle = self._handle, None
            _L.slm_session_free(h)


    # -- state --------------------------------------------------------------

    @property
    def pos(self):
        """Tokens in the context so far."""
        return _L.slm_session_pos(self._h())

    @property
    def n_ctx(self):
        return _L.slm_session_n_ctx(self._h())

    def rewind(self, pos=0):
        """Forget everything from position `pos` on (0 clears the conversation)."""
        _check(_L.slm_session_rewind(self._h(), pos), what="rewind to %d" % pos)

    def set_threads(self, n_threads):
        _L.slm_session_set_threads(self._h(), n_threads)

    def save_state(self, path=None, tokens=None):
        """Save the session's state (KV cache, position, last logits) with
        optional token ids: to the file `path` (replaced safely: written to
        a temporary file, then renamed), or returned as bytes when path is
        None. load_state restores it into a session of the same model and
        KV type."""
        arr, n = _ids_array(tokens or [])
        err = _lib.slm_error()
        h = self._h()
        if path is not None:
            _check(_L.slm_session_state_save_file(h, os.fsencode(path), arr if n else None, n, byref(err)), err)
            return None
        size = _L.slm_session_state_size(h, n)
        buf = ctypes.create_string_buffer(max(size, 1))
        written = c_size_t()
        _check(_L.slm_session_state_save(h, arr if n else None, n, buf, size, byref(written), byref(err)), err)
        return buf.raw[:written.value]

    def load_state(self, source):
        """Restore a state saved by save_state: `source` is the bytes or a
        file path. Returns the token ids saved with it (a list). A state of
        another model or KV type, or a damaged one, raises an SlmError and
        leaves the session as it was."""
        h = self._h()
        err = _lib.slm_error()
        n = c_int32()
        cap = max(_L.slm_session_n_ctx(h), 1)
        ids = (c_int32 * cap)()
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            _check(_L.slm_session_state_load(h, data, len(data), ids, cap, byref(n), byref(err)), err)
        else:
            _check(_L.slm_session_state_load_file(h, os.fsencode(source), ids, cap, byref(n), byref(err)), err)
        return ids[:n.value]

    # -- decode and logits --------------------------------------------------

    def decode(self, tokens):
        """Append token ids at the current position and run the model over them."""
        arr, n = _ids_array(tokens)
        err = _lib.slm_error()
        _check(_L.slm_decode(self._h(), arr, n, byref(err)), err)

    def _logits_ptr(self, i):
        p = _L.slm_session_logits(self._h(), i)
        if not p:
            raise InvalidArgumentError("no logits for token %d (no decode yet, or not kept: logits_all)" % i,
                                       _lib.SLM_ERR_INVALID_ARG)
        return p

    def logits(self, i=-1):
        """The logits (n_vocab floats) of token i of the last decode as a list."""
        return self._logits_ptr(i)[:self._n_vocab]

    def logits_view(self, i=-1):
        """The same without a copy: a memoryview of format 'f' on the
        session's buffer. Valid only until the next decode, generate, rewind
        or close."""
        p = self._logits_ptr(i)
        arr = (c_float * self._n_vocab).from_address(ctypes.addressof(p.contents))
        return memoryview(arr).cast("B").cast("f")

    def argmax(self, i=-1):
        row = self.logits(i)
        return max(range(len(row)), key=row.__getitem__)

    # -- embeddings ---------------------------------------------------------

    def embed(self, texts, pooling=None, normalize=False, add_special=True, parse_special=True, as_array=False):
        """Embedding vectors of a text (str or bytes) or of a list of texts,
        each its own sequence, reusing this session. pooling: None (the
        model's), "none", "mean", "cls" or "last". Returns a list of floats
        per text (pooling "none": a list of per-token lists), or with
        as_array=True array.array('f') buffers (numpy.frombuffer takes them).
        A single text gives one result, a list a list of results."""
        import array
        single = isinstance(texts, (str, bytes))
        items = [texts] if single else list(texts)
        p = _lib.slm_embed_params()
        _L.slm_embed_params_init(byref(p))
        if pooling is not None:
            code = _L.slm_pooling_from_name(_enc(pooling)) if isinstance(pooling, str) else int(pooling)
            if code < 0:
                raise InvalidArgumentError("pooling: one of %s" % ", ".join(POOLINGS), _lib.SLM_ERR_INVALID_ARG)
            p.pooling = code
        p.normalize = 1 if normalize else 0
        p.add_special = 1 if add_special else 0
        p.parse_special = 1 if parse_special else 0
        dim = _L.slm_model_n_embd_out(self.model._h())
        pool = p.pooling if p.pooling >= 0 else _L.slm_model_pooling(self.model._h())
        rows_max = self.n_ctx if pool == _lib.SLM_POOLING_NONE else 1
        buf = (c_float * (rows_max * dim))()
        rows = c_int32()
        err = _lib.slm_error()
        out = []
        for t in items:
            b = _enc(t)
            tp = (c_char_p * 1)(b)
            ln = (c_size_t * 1)(len(b))
            _check(_L.slm_embed(self._h(), tp, ln, 1, byref(p), buf, len(buf), byref(rows), byref(err)), err)
            n = rows.value * dim
            if as_array:
                a = array.array("f")
                a.frombytes(bytes(memoryview(buf).cast("B")[:n * 4]))
                vecs = a if pool != _lib.SLM_POOLING_NONE else [a[i * dim:(i + 1) * dim] for i in range(rows.value)]
            else:
                flat = buf[:n]
                vecs = flat if pool != _lib.SLM_POOLING_NONE else [flat[i * dim:(i + 1) * dim]
                                                                    for i in range(rows.value)]
            out.append(vecs)
        return out[0] if single else out

    def embed_tokens(self, tokens, pooling=None, normalize=False):
        """Embedding of one sequence of token ids (used as given)."""
        p = _lib.slm_embed_params()
        _L.slm_embed_params_init(byref(p))
        if pooling is not None:
            code = _L.slm_pooling_from_name(_enc(pooling))
            if code < 0:
                raise InvalidArgumentError("pooling: one of %s" % ", ".join(POOLINGS), _lib.SLM_ERR_INVALID_ARG)
            p.pooling = code
        p.normalize = 1 if normalize else 0
        arr, n = _ids_array(tokens)
        dim = _L.slm_model_n_embd_out(self.model._h())
        pool = p.pooling if p.pooling >= 0 else _L.slm_model_pooling(self.model._h())
        rows = n if pool == _lib.SLM_POOLING_NONE else 1
        buf = (c_float * max(rows * dim, 1))()
        err = _lib.slm_error()
        _check(_L.slm_embed_tokens(self._h(), arr, n, byref(p), buf, len(buf), byref(err)), err)
        flat = buf[:rows * dim]
        return flat if pool != _lib.SLM_POOLING_NONE else [flat[i * dim:(i + 1) * dim] for i in range(rows)]

    # -- generation ---------------------------------------------------------

    def _params(self, max_tokens, stop, add_special, parse_special, emit_special, sampler, sampling):
        gp = _lib.slm_generate_params()
        _L.slm_generate_params_init(byref(gp))
        gp.max_tokens = max_tokens
        gp.add_special = int(add_special)
        gp.parse_special = int(parse_special)
        gp.emit_special = int(emit_special)
        if sampler is None:
            sampler = SamplerParams(**sampling)
        elif sampling:
            raise TypeError("pass either sampler= or sampler keyword arguments, not both")
        gp.sampler = sampler._c()
        keep = []
        if stop:
            if isinstance(stop, (str, bytes)):
                stop = [stop]
            enc = [_enc(s) for s in stop]
            arr = (c_char_p * len(enc))(*enc)
            keep += [enc, arr]
            gp.stop = arr
            gp.n_stop = len(enc)
        cap = max_tokens if max_tokens > 0 else _L.slm_session_n_ctx(self._handle)
        ids = (c_int32 * max(cap, 1))()
        keep.append(ids)
        gp.tokens_out = ids
        gp.tokens_cap = cap
        return gp, ids, keep

    def _generate(self, prompt, prompt_ids, max_tokens, stop, add_special, parse_special, emit_special, sampler,
                  on_text, sampling, owner=None):
        h = self._h(owner)
        gp, ids, keep = self._params(max_tokens, stop, add_special, parse_special, emit_special, sampler, sampling)
        chunks = []
        raised = []

        def _on_text(user, text, n):
            if signals:
                return 1
            try:
                piece = ctypes.string_at(text, n)
                chunks.append(piece)
                if on_text is not None and on_text(_dec(piece)):
                    return 1
                return 0
            except BaseException as e:  # stop, and re-raise after slm_generate returns
                raised.append(e)
                return 1

        cb = _lib.TEXT_FN(_on_text)
        gp.on_text = cb
        res = _lib.slm_generate_result()
        err = _lib.slm_error()
        # Ctrl-C: Python runs a signal handler at the next bytecode, which
        # may be the callback's first one, outside any try: the exception
        # would be lost in ctypes ("Exception ignored"). So while the C call
        # runs (in the main thread), SIGINT only records itself, the
        # callback stops generation, and the original handler runs after
        # the call (raising KeyboardInterrupt by default).
        signals = []
        old = _swap_sigint(signals)
        try:
            if prompt_ids is not None:
                parr, pn = _ids_array(prompt_ids)
                if pn == 0:
                    parr = None
                st = _L.slm_generate(h, None, 0, parr, pn, byref(gp), byref(res), byref(err))
            else:
                data = _enc(prompt or "")
                st = _L.slm_generate(h, data, len(data), None, 0, byref(gp), byref(res), byref(err))
        finally:
            _restore_sigint(old, signals)
        del keep
        if raised:
            raise raised[0]
        _check(st, err)
        n = min(res.n_generated, gp.tokens_cap)
        return Generation(_dec(b"".join(chunks)), ids[:n], res)

    def generate(self, prompt="", prompt_ids=None, max_tokens=256, stop=None, add_special=True, parse_special=False,
                 emit_special=False, sampler=None, on_text=None, **sampling):
        """Append a prompt (text, or token ids with prompt_ids=) and generate.

        max_tokens <= 0: until an end-of-generation token or a full context.
        stop: a string or a list of strings that end the text (not included).
        sampler: a SamplerParams, or its fields as keyword arguments
        (temperature=0 for greedy, top_k, top_p, min_p, repeat_penalty, seed, ...).
        on_text: callable(piece) called with each new piece of text; a true
        return value stops generation (stop_reason "callback"); an exception
        stops it and is raised again here.
        Returns a Generation; the generated tokens stay in the session, so a
        later call continues the conversation.
        """
        return self._generate(prompt, prompt_ids, max_tokens, stop, add_special, parse_special, emit_special, sampler,
                              on_text, sampling)

    def stream(self, prompt="", prompt_ids=None, max_tokens=256, stop=None, add_special=True, parse_special=False,
               emit_special=False, sampler=None, **sampling):
        """Like generate, as an iterator of text pieces (a Stream). Breaking
        out of the loop or calling close() stops generation; after the end,
        stream.result holds the Generation."""
        kwargs = dict(prompt=prompt, prompt_ids=prompt_ids, max_tokens=max_tokens, stop=stop, add_special=add_special,
                      parse_special=parse_special, emit_special=emit_special, sampler=sampler, sampling=sampling)
        self._h()
        return Stream(self, kwargs)

    def chat(self, messages, template=None, stream=False, **kwargs):
        """Format a whole conversation (dicts with "role" and "content") with
        the model's chat template, start the session over and generate the
        assistant's reply (a Generation, or a Stream with stream=True). For a
        conversation that grows turn by turn, use slm.Chat."""
        text = chat_format(messages, True, template, 0, model=self.model)
        self.rewind(0)
        kwargs.setdefault("parse_special", True)
        if stream:
            return self.stream(text, **kwargs)
        return self.generate(text, **kwargs)

    def __repr__(self):
        if not self._handle:
            return "<slm.Session closed>"
        return "<slm.Session pos %d of %d>" % (_L.slm_session_pos(self._handle), _L.slm_session_n_ctx(self._handle))


def _swap_sigint(signals):
    """Replace a Python-level SIGINT handler by one that appends to
    `signals`; returns what _restore_sigint needs (None: nothing changed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        old = signal.getsignal(signal.SIGINT)
        if not callable(old):
            return None  # SIG_IGN, SIG_DFL or set from C: leave it
        signal.signal(signal.SIGINT, lambda signum, frame: signals.append((signum, frame)))
        return (old,)
    except (ValueError, OSError):
        return None


def _restore_sigint(saved, signals):
    if saved is None:
        return
    signal.signal(signal.SIGINT, saved[0])
    if signals:
        saved[0](*signals[0])  # default_int_handler raises KeyboardInterrupt


_DONE = object()
_live_workers = weakref.WeakSet()


@atexit.register
def _stop_streams():
    # before the interpreter stops its daemon threads: a stream left running
    # would otherwise block, or its session be freed under it
    for w in list(_live_workers):
        if w.done is None and w.thread.is_alive():
            try:
                w.finish()
            except Exception:
                pass


class _Worker(object):
    """What the generating thread shares with its Stream. The thread holds
    only this, so an abandoned Stream is collected (and stops the thread)."""

    def __init__(self, session, kwargs):
        self.session = session
        self.kwargs = kwargs
        self.q = queue.Queue()
        self.go = threading.Semaphore(0)
        self.stop = False
        self.done = None
        self.thread = threading.Thread(target=self.run, name="slm-stream", daemon=True)

    def finish(self):
        """Stop the generation and wait for the thread; the pieces not yet
        taken are returned."""
        rest = []
        self.stop = True
        self.go.release()
        while True:
            item = self.get()
            if item is self.done:
                break
            rest.append(item)
            self.go.release()
        self.thread.join()
        return rest

    def get(self):
        """The next piece, or the (_DONE, result, exception) item (kept)."""
        if self.done is not None:
            return self.done
        item = self.q.get()
        if isinstance(item, tuple) and item and item[0] is _DONE:
            self.done = item
        return item

    def on_text(self, piece):
        self.q.put(piece)
        self.go.acquire()  # wait until the consumer asks for more
        return self.stop

    def run(self):
        kw = self.kwargs
        try:
            r = self.session._generate(kw["prompt"], kw["prompt_ids"], kw["max_tokens"], kw["stop"],
                                       kw["add_special"], kw["parse_special"], kw["emit_special"], kw["sampler"],
                                       self.on_text, kw["sampling"], owner=self)
            self.q.put((_DONE, r, None))
        except BaseException as e:
            self.q.put((_DONE, None, e))


class Stream(_Closeable):
    """Iterator over the text pieces of one generation.

    slm_generate runs in a worker thread that hands each piece over and
    waits until the next one is asked for, so generation advances only as
    fast as the pieces are consumed, and stopping (break then close(), a
    with-block, or dropping the stream) leaves the session with exactly the
    tokens generated so far. The session cannot be used otherwise while
    the stream runs. After the end, `result` is the Generation and `text`
    the text.
    """

    def __init__(self, session, kwargs, on_done=None):
        self.session = session
        self.result = None
        self.text = ""
        self._on_done = on_done
        self._w = _Worker(session, kwargs)
        self._started = False
        self._finished = False
        self._waiting = False
        self._parts = []

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        w = self._w
        if not self._started:
            self.session._h()  # closed, or busy with another stream
            self.session._stream = w
            self._started = True
            _live_workers.add(w)
            w.thread.start()
        elif self._waiting:
            self._waiting = False
            w.go.release()
        try:
            item = w.get()
        except BaseException:
            # Ctrl-C (or another exception) while waiting: stop the worker so
            # the session is free again, then let the exception go on
            self.close()
            raise
        if isinstance(item, tuple) and item and item[0] is _DONE:
            self._finish(item)
            raise StopIteration
        self._waiting = True
        self._parts.append(item)
        return item

    def _finish(self, item):
        self._finished = True
        self._w.thread.join()
        if self.session._stream is self._w:
            self.session._stream = None
        self.text = "".join(self._parts)
        _, r, e = item
        self.result = r
        if self._on_done is not None:
            self._on_done(r, e)
        if e is not None:
            raise e

    def close(self):
        """Stop generating (if it still runs) and wait for the worker."""
        if self._finished:
            return
        if not self._started:
            self._finished = True
            return
        self._waiting = False
        self._parts += self._w.finish()
        try:
            self._finish(self._w.done)
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Chat: a conversation kept in a session
# ---------------------------------------------------------------------------

class Chat(object):
    """A conversation that grows turn by turn in one session: each turn
    sends only the new text (slm_chat_format with n_past), as `slm chat` does.

        chat = slm.Chat(model, system="You are terse.", max_tokens=128)
        print(chat.send("Hello!").text)
        for piece in chat.stream("And then?"):
            print(piece, end="")

    template: a family name ("chatml", "llama3", ...) or None for the
    model's own (ChatML when the file has none slm knows; see `fallback`).
    Keyword arguments are defaults for every turn (max_tokens, temperature,
    stop, ...); send/stream take the same to override them.
    """

    def __init__(self, model, system=None, template=None, n_ctx=0, n_threads=0, session=None, **defaults):
        self.model = model
        self.session = session if session is not None else model.session(n_ctx=n_ctx, n_threads=n_threads)
        self._own_session = session is None
        fam = _family(template)
        self.fallback = False
        if fam == 0:
            fb = c_int()
            fam = _L.slm_chat_model_family(model._h(), byref(fb))
            self.fallback = bool(fb.value)
        self.family = fam
        self.template = _L.slm_chat_family_name(fam).decode()
        self.defaults = defaults
        self.defaults.setdefault("max_tokens", 0)
        self._system = system
        self.reset()

    def reset(self):
        """Start the conversation over (the system message stays)."""
        self.messages = [{"role": "system", "content": self._system}] if self._system is not None else []
        self._n_past = 0
        self.session.rewind(0)

    def _prepare(self, content, role, kwargs):
        self.messages.append({"role": role, "content": content})
        text = chat_format(self.messages, True, self.family, self._n_past, model=self.model)
        kw = dict(self.defaults)
        kw.update(kwargs)
        kw["parse_special"] = True
        kw.setdefault("add_special", True)
        return text, kw, self.session.pos

    def _done(self, r, e, pos0):
        if r is None:
            # nothing was generated (the prompt did not fit): the turn is dropped
            self.messages.pop()
            if self.session.pos != pos0:
                self.session.rewind(pos0)
            return
        # the end-of-turn token goes: the next turn writes the template's own
        # end-of-turn text after the reply
        if r.stop_reason == STOP_EOG and self.session.pos == pos0 + r.n_prompt + r.n_generated + 1:
            self.session.rewind(self.session.pos - 1)
        self.messages.append({"role": "assistant", "content": r.text})
        self._n_past = len(self.messages)

    def send(self, content, role="user", **kwargs):
        """Add a message and generate the reply; returns a Generation."""
        text, kw, pos0 = self._prepare(content, role, kwargs)
        try:
            r = self.session.generate(text, **kw)
        except BaseException:
            self._done(None, None, pos0)
            raise
        self._done(r, None, pos0)
        return r

    def stream(self, content, role="user", **kwargs):
        """Add a message and stream the reply (a Stream of text pieces)."""
        text, kw, pos0 = self._prepare(content, role, kwargs)
        st = self.session.stream(text, **kw)
        st._on_done = lambda r, e: self._done(r, e, pos0)
        return st

    def close(self):
        if self._own_session:
            self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# Quantization
# ---------------------------------------------------------------------------

def quantize(src, dst, type="Q4_K_M", n_threads=0, log=None):
    """Convert a GGUF file's matrices to another type ("Q8_0", "Q4_K_M",
    "F16", ...; see slm_quantize_file). Returns a dict of the statistics."""
    p = _lib.slm_quantize_params()
    _L.slm_quantize_params_init(byref(p))
    t, mix = c_int32(), c_int32()
    st = _L.slm_quantize_parse_type(_enc(type), byref(t), byref(mix))
    if st != _lib.SLM_OK:
        _raise(st, None, "unknown quantization type %r" % (type,))
    p.type, p.mix, p.n_threads = t.value, mix.value, n_threads
    _, cb = _model_params(True, False, True, log)
    if cb is not None:
        p.log = cb
    stats = _lib.slm_quantize_stats()
    err = _lib.slm_error()
    _check(_L.slm_quantize_file(os.fsencode(src), os.fsencode(dst), byref(p), byref(stats), byref(err)), err)
    out = {f: getattr(stats, f) for f, _ in _lib.slm_quantize_stats._fields_ if f != "n_by_type"}
    out["by_type"] = {}
    for i in range(40):
        if stats.n_by_type[i]:
            name = _L.slm_type_name(i)
            out["by_type"][name.decode() if name else str(i)] = stats.n_by_type[i]
    return out


def cosine(a, b):
    """Cosine similarity of two vectors (sequences of floats of one length),
    as llama.cpp computes it (sums in double; 1 if both are zero, 0 if one is)."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise InvalidArgumentError("cosine: lengths %d and %d differ" % (len(a), len(b)), _lib.SLM_ERR_INVALID_ARG)
    n = len(a)
    return _L.slm_cosine((c_float * max(n, 1))(*a), (c_float * max(n, 1))(*b), n)
