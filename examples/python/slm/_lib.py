"""Low-level ctypes declarations of slm.h: finding the shared library, the
structs, the function prototypes and a check that the struct layouts here
match the library's.

Nothing in this module is public API; use the classes in the ``slm`` package.
"""

import ctypes
import ctypes.util
import os
import sys
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p)

# The slm.h this binding was written against (SLM_VERSION_MAJOR/MINOR).
# Structs only change with the minor version while the major is 0.
API_VERSION = (0, 1)

# ---------------------------------------------------------------------------
# Constants (the enums of slm.h)
# ---------------------------------------------------------------------------

SLM_OK = 0
SLM_ERR_INVALID_ARG = -1
SLM_ERR_IO = -2
SLM_ERR_FORMAT = -3
SLM_ERR_UNSUPPORTED = -4
SLM_ERR_NOMEM = -5
SLM_ERR_CONTEXT_FULL = -6
SLM_ERR_NOT_FOUND = -7
SLM_ERR_TYPE = -8
SLM_ERR_BUFFER = -9

SLM_META_U8, SLM_META_I8, SLM_META_U16, SLM_META_I16 = 0, 1, 2, 3
SLM_META_U32, SLM_META_I32, SLM_META_F32, SLM_META_BOOL = 4, 5, 6, 7
SLM_META_STRING, SLM_META_ARRAY, SLM_META_U64, SLM_META_I64, SLM_META_F64 = 8, 9, 10, 11, 12

SLM_STREAM_SPECIAL = 1
SLM_STREAM_STRIP_SPACE = 2

SLM_POOLING_UNSPECIFIED, SLM_POOLING_NONE, SLM_POOLING_MEAN, SLM_POOLING_CLS, SLM_POOLING_LAST = -1, 0, 1, 2, 3

SLM_TYPE_F32 = 0
SLM_TYPE_F16 = 1
SLM_TYPE_Q8_0 = 8


# ---------------------------------------------------------------------------
# Structs (field for field as in slm.h)
# ---------------------------------------------------------------------------

class slm_error(Structure):
    _fields_ = [("status", c_int), ("message", c_char * 256)]


LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
# text is not NUL-terminated: take it as a pointer and read len bytes
TEXT_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


class slm_model_params(Structure):
    _fields_ = [
        ("use_mmap", c_int),
        ("vocab_only", c_int),
        ("repack", c_int),
        ("allocator", c_void_p),  # const slm_allocator *; always NULL from Python
        ("log", LOG_FN),
        ("log_user", c_void_p),
        ("isa", c_int),  # SLM_ISA_*: 0 = the best this CPU supports
    ]


class slm_model_info(Structure):
    _fields_ = [
        ("arch", c_char_p),
        ("name", c_char_p),
        ("n_vocab", c_int32),
        ("n_ctx_train", c_int32),
        ("n_embd", c_int32),
        ("n_layer", c_int32),
        ("n_head", c_int32),
        ("n_head_kv", c_int32),
        ("n_ff", c_int32),
        ("head_dim", c_int32),
        ("n_rot", c_int32),
        ("rope_freq_base", c_float),
        ("norm_eps", c_float),
        ("n_params", c_uint64),
        ("weight_bytes", c_uint64),
        ("file_size", c_uint64),
        ("gguf_version", c_int32),
        ("n_tensors", c_int32),
        ("load_ms", c_double),
    ]


class slm_tensor_info(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("type", c_int32),
        ("n_dims", c_int32),
        ("ne", c_int64 * 4),
        ("offset", c_uint64),
        ("nbytes", c_uint64),
    ]


class slm_session_params(Structure):
    _fields_ = [
        ("n_ctx", c_int32),
        ("n_threads", c_int32),
        ("n_batch", c_int32),
        ("kv_type", c_int32),
        ("logits_all", c_int32),
    ]


class slm_text_stream(Structure):
    _fields_ = [
        ("model", c_void_p),
        ("flags", c_int),
        ("n_tokens", c_int32),
        ("n_pending", c_uint32),
        ("pending", c_char * 4),
    ]


class slm_chat_message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class slm_sampler_params(Structure):
    _fields_ = [
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repeat_penalty", c_float),
        ("repeat_last_n", c_int32),
        ("frequency_penalty", c_float),
        ("presence_penalty", c_float),
        ("seed", c_uint64),
        ("grammar", c_void_p),  # const slm_grammar * (added with grammars)
    ]


class slm_generate_params(Structure):
    _fields_ = [
        ("max_tokens", c_int32),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_int32),
        ("add_special", c_int),
        ("parse_special", c_int),
        ("emit_special", c_int),
        ("sampler", slm_sampler_params),
        ("on_text", TEXT_FN),
        ("user", c_void_p),
        ("tokens_out", POINTER(c_int32)),
        ("tokens_cap", c_int32),
    ]


class slm_generate_result(Structure):
    _fields_ = [
        ("stop_reason", c_int32),
        ("n_prompt", c_int32),
        ("n_generated", c_int32),
        ("load_ms", c_double),
        ("prompt_ms", c_double),
        ("prompt_tps", c_double),
        ("gen_ms", c_double),
        ("gen_tps", c_double),
    ]


class slm_embed_params(Structure):
    _fields_ = [
        ("pooling", c_int32),
        ("normalize", c_int32),
        ("add_special", c_int32),
        ("parse_special", c_int32),
    ]


class slm_quantize_params(Structure):
    _fields_ = [
        ("type", c_int32),
        ("mix", c_int32),
        ("n_threads", c_int32),
        ("allocator", c_void_p),
        ("log", LOG_FN),
        ("log_user", c_void_p),
    ]


class slm_quantize_stats(Structure):
    _fields_ = [
        ("n_tensors", c_int32),
        ("n_converted", c_int32),
        ("n_fallback", c_int32),
        ("n_by_type", c_int32 * 40),
        ("bytes_in", c_uint64),
        ("bytes_out", c_uint64),
        ("file_in", c_uint64),
        ("file_out", c_uint64),
    ]


# ---------------------------------------------------------------------------
# Prototypes
# ---------------------------------------------------------------------------

_P = c_void_p  # slm_model *, slm_session *, slm_sampler * (opaque)
_ERR = POINTER(slm_error)
_I32P = POINTER(c_int32)

PROTOTYPES = {
    "slm_status_string": (c_char_p, [c_int]),
    "slm_version": (c_char_p, []),
    "slm_build_info": (c_char_p, []),
    "slm_isa_available": (c_int, [c_int]),
    "slm_isa_name": (c_char_p, [c_int]),
    "slm_isa_from_name": (c_int, [c_char_p]),
    "slm_model_isa": (c_int, [_P]),
    "slm_type_name": (c_char_p, [c_int]),
    # model
    "slm_model_params_init": (None, [POINTER(slm_model_params)]),
    "slm_model_load_file": (c_int, [c_char_p, POINTER(slm_model_params), POINTER(_P), _ERR]),
    "slm_model_load_memory": (c_int, [c_void_p, c_size_t, POINTER(slm_model_params), POINTER(_P), _ERR]),
    "slm_model_free": (None, [_P]),
    "slm_model_get_info": (None, [_P, POINTER(slm_model_info)]),
    "slm_meta_count": (c_int64, [_P]),
    "slm_meta_find": (c_int64, [_P, c_char_p]),
    "slm_meta_key": (c_char_p, [_P, c_int64]),
    "slm_meta_type": (c_int, [_P, c_int64]),
    "slm_meta_array_type": (c_int, [_P, c_int64]),
    "slm_meta_array_count": (c_int64, [_P, c_int64]),
    "slm_meta_get_int": (c_int, [_P, c_int64, c_int64, POINTER(c_int64)]),
    "slm_meta_get_float": (c_int, [_P, c_int64, c_int64, POINTER(c_double)]),
    "slm_meta_get_string": (c_int, [_P, c_int64, c_int64, POINTER(c_void_p), POINTER(c_size_t)]),
    "slm_tensor_count": (c_int64, [_P]),
    "slm_tensor_get_info": (c_int, [_P, c_int64, POINTER(slm_tensor_info)]),
    "slm_tensor_find": (c_int64, [_P, c_char_p]),
    # session
    "slm_session_params_init": (None, [POINTER(slm_session_params)]),
    "slm_session_memory_size": (c_size_t, [_P, POINTER(slm_session_params)]),
    "slm_session_create": (c_int, [_P, POINTER(slm_session_params), POINTER(_P), _ERR]),
    "slm_session_free": (None, [_P]),
    "slm_decode": (c_int, [_P, _I32P, c_int32, _ERR]),
    "slm_session_logits": (POINTER(c_float), [_P, c_int32]),
    "slm_session_pos": (c_int32, [_P]),
    "slm_session_n_ctx": (c_int32, [_P]),
    "slm_session_rewind": (c_int, [_P, c_int32]),
    "slm_session_set_threads": (None, [_P, c_int32]),
    "slm_session_state_size": (c_size_t, [_P, c_int32]),
    "slm_session_state_save": (c_int, [_P, _I32P, c_int32, c_void_p, c_size_t, POINTER(c_size_t), _ERR]),
    "slm_session_state_load": (c_int, [_P, c_void_p, c_size_t, _I32P, c_int32, POINTER(c_int32), _ERR]),
    "slm_session_state_save_file": (c_int, [_P, c_char_p, _I32P, c_int32, _ERR]),
    "slm_session_state_load_file": (c_int, [_P, c_char_p, _I32P, c_int32, POINTER(c_int32), _ERR]),
    # tokenizer
    "slm_vocab_type": (c_int, [_P]),
    "slm_vocab_size": (c_int32, [_P]),
    "slm_token_bos": (c_int32, [_P]),
    "slm_token_eos": (c_int32, [_P]),
    "slm_token_eot": (c_int32, [_P]),
    "slm_token_unk": (c_int32, [_P]),
    "slm_token_pad": (c_int32, [_P]),
    "slm_token_is_eog": (c_int, [_P, c_int32]),
    "slm_token_attr": (c_int, [_P, c_int32]),
    "slm_vocab_pretokenizer": (c_char_p, [_P, POINTER(c_int)]),
    "slm_vocab_add_bos": (c_int, [_P]),
    "slm_vocab_add_eos": (c_int, [_P]),
    "slm_token_text": (c_void_p, [_P, c_int32, POINTER(c_size_t)]),
    "slm_tokenize": (c_int, [_P, c_char_p, c_size_t, c_int, c_int, _I32P, c_int32, _I32P, _ERR]),
    "slm_token_to_piece": (c_int, [_P, c_int32, c_int, c_char_p, c_size_t, POINTER(c_size_t)]),
    "slm_detokenize": (c_int, [_P, _I32P, c_int32, c_int, c_int, c_char_p, c_size_t, POINTER(c_size_t), _ERR]),
    "slm_text_stream_init": (None, [POINTER(slm_text_stream), _P, c_int]),
    "slm_text_stream_push": (c_int, [POINTER(slm_text_stream), c_int32, c_char_p, c_size_t, POINTER(c_size_t)]),
    "slm_text_stream_flush": (c_size_t, [POINTER(slm_text_stream), c_char_p, c_size_t]),
    "slm_vocab_max_piece": (c_int32, [_P]),
    # chat
    "slm_chat_detect": (c_int, [c_char_p]),
    "slm_chat_model_family": (c_int, [_P, POINTER(c_int)]),
    "slm_chat_family_from_name": (c_int, [c_char_p]),
    "slm_chat_family_name": (c_char_p, [c_int]),
    "slm_chat_format": (c_int, [_P, c_int, POINTER(slm_chat_message), c_int32, c_int32, c_int, c_char_p,
                                c_size_t, POINTER(c_size_t), POINTER(c_int), _ERR]),
    # grammars
    "slm_grammar_create": (c_int, [_P, c_char_p, c_size_t, c_char_p, POINTER(_P), _ERR]),
    "slm_grammar_free": (None, [_P]),
    "slm_grammar_json": (c_char_p, []),
    "slm_json_schema_to_grammar": (c_int, [c_char_p, c_size_t, c_char_p, c_size_t, POINTER(c_size_t), _ERR]),
    "slm_sampler_grammar_state": (c_int, [_P]),
    # sampler
    "slm_sampler_params_init": (None, [POINTER(slm_sampler_params)]),
    "slm_sampler_create": (c_int, [POINTER(slm_sampler_params), c_int32, c_void_p, POINTER(_P), _ERR]),
    "slm_sampler_free": (None, [_P]),
    "slm_sampler_sample": (c_int32, [_P, POINTER(c_float)]),
    "slm_sampler_accept": (None, [_P, c_int32]),
    "slm_sampler_reset": (None, [_P, c_uint64]),
    # generate
    "slm_generate_params_init": (None, [POINTER(slm_generate_params)]),
    "slm_generate": (c_int, [_P, c_char_p, c_size_t, _I32P, c_int32, POINTER(slm_generate_params),
                             POINTER(slm_generate_result), _ERR]),
    # quantize
    "slm_quantize_params_init": (None, [POINTER(slm_quantize_params)]),
    "slm_quantize_parse_type": (c_int, [c_char_p, _I32P, _I32P]),
    # embeddings
    "slm_model_pooling": (c_int32, [_P]),
    "slm_model_n_embd_out": (c_int32, [_P]),
    "slm_model_is_encoder": (c_int, [_P]),
    "slm_pooling_from_name": (c_int32, [c_char_p]),
    "slm_pooling_name": (c_char_p, [c_int32]),
    "slm_embed_params_init": (None, [POINTER(slm_embed_params)]),
    "slm_embed_tokens": (c_int, [_P, _I32P, c_int32, POINTER(slm_embed_params), POINTER(c_float), c_size_t, _ERR]),
    "slm_embed": (c_int, [_P, POINTER(c_char_p), POINTER(c_size_t), c_int32, POINTER(slm_embed_params),
                          POINTER(c_float), c_size_t, _I32P, _ERR]),
    "slm_cosine": (c_float, [POINTER(c_float), POINTER(c_float), c_int32]),
    "slm_quantize_file": (c_int, [c_char_p, c_char_p, POINTER(slm_quantize_params), POINTER(slm_quantize_stats),
                                  _ERR]),
}


# ---------------------------------------------------------------------------
# Finding and loading the library
# ---------------------------------------------------------------------------

def _library_names():
    if sys.platform == "win32":
        return ["slm.dll", "libslm.dll", "libslm-0.dll"]
    if sys.platform == "darwin":
        return ["libslm.dylib", "libslm.0.dylib"]
    return ["libslm.so", "libslm.so.0"]


def candidate_paths():
    """Where the library is looked for, in order (SLM_LIBRARY is handled
    by load_library)."""
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = [here,
            # the repository this package ships in: examples/python/slm -> build/
            os.path.join(here, os.pardir, os.pardir, os.pardir, "build"),
            os.path.join(os.getcwd(), "build")]
    out = []
    for d in dirs:
        for n in _library_names():
            p = os.path.normpath(os.path.join(d, n))
            if p not in out:
                out.append(p)
    return out


class LibraryNotFound(OSError):
    pass


def _open(path):
    if sys.platform == "win32" and hasattr(os, "add_dll_directory"):
        # dependencies (libgomp-1.dll, ...) next to the DLL
        d = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(d):
            os.add_dll_directory(d)
    return ctypes.CDLL(path)


def load_library():
    """Open the slm shared library: $SLM_LIBRARY if set (a path, and then
    only that), else next to this package, the repository's build/, ./build/,
    and last the system's search (ctypes.util.find_library)."""
    env = os.environ.get("SLM_LIBRARY")
    if env:
        try:
            return _open(env), env
        except OSError as e:
            raise LibraryNotFound("SLM_LIBRARY=%s could not be loaded: %s" % (env, e))
    tried = []
    for p in candidate_paths():
        if os.path.exists(p):
            try:
                return _open(p), p
            except OSError as e:
                tried.append("%s (%s)" % (p, e))
    found = ctypes.util.find_library("slm")
    if found:
        try:
            return _open(found), found
        except OSError as e:
            tried.append("%s (%s)" % (found, e))
    raise LibraryNotFound(
        "the slm shared library was not found; build it with `make` in the slm repository "
        "(build/libslm.so), then reinstall this package (pip install ./examples/python copies it in) "
        "or set SLM_LIBRARY to its path" + ("; could not load: " + ", ".join(tried) if tried else ""))


def declare(lib):
    for name, (restype, argtypes) in PROTOTYPES.items():
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = argtypes
    return lib


# ---------------------------------------------------------------------------
# Layout check
# ---------------------------------------------------------------------------
#
# slm has no sizeof export, but every *_init call (and slm_model_get_info,
# slm_text_stream_init, slm_generate's result) starts with memset(p, 0,
# sizeof *p). Writing into a buffer pre-filled with a marker byte therefore
# shows the C sizeof: the written extent. Together with the defaults that
# land in each field this catches a missing, extra, reordered or mistyped
# field.

_MARK = 0xA5


def _written_extent(fill):
    size = 1024
    buf = (ctypes.c_ubyte * size)(*([_MARK] * size))
    fill(ctypes.addressof(buf))
    raw = bytes(buf)
    end = size
    while end > 0 and raw[end - 1] == _MARK:
        end -= 1
    return end, buf


def check_layouts(lib, override=None):
    """Return a list of problems (empty when the structs match). `override`
    maps a struct name to another declaration to check instead (tests use
    it to see that a wrong layout is caught)."""
    problems = []
    override = override or {}

    def check(real, fill, expect):
        struct = override.get(real.__name__, real)
        # the library writes through a pointer of the declared type
        end, buf = _written_extent(lambda a: fill(ctypes.cast(a, POINTER(real))))
        if end != ctypes.sizeof(struct):
            problems.append("%s: the library writes %d bytes, the binding declares %d"
                            % (real.__name__, end, ctypes.sizeof(struct)))
            return
        v = struct.from_buffer_copy(bytes(buf)[:ctypes.sizeof(struct)])
        for field, want in expect.items():
            got = v
            for part in field.split("."):
                got = getattr(got, part)
            if isinstance(want, float):
                ok = abs(got - want) < 1e-6
            elif want is None:
                ok = not got
            else:
                ok = got == want
            if not ok:
                problems.append("%s.%s: %r where the library's default is %r" % (real.__name__, field, got, want))

    check(slm_model_params, lib.slm_model_params_init,
          {"use_mmap": 1, "vocab_only": 0, "repack": 1, "allocator": None, "log": None, "log_user": None,
           "isa": 0})
    check(slm_session_params, lib.slm_session_params_init,
          {"n_ctx": 0, "n_threads": 0, "n_batch": 0, "kv_type": SLM_TYPE_F16, "logits_all": 0})
    sampler_defaults = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.0,
                        "repeat_last_n": 64, "frequency_penalty": 0.0, "presence_penalty": 0.0, "seed": 0,
                        "grammar": None}
    check(slm_sampler_params, lib.slm_sampler_params_init, sampler_defaults)
    gen = {"max_tokens": 256, "stop": None, "n_stop": 0, "add_special": 1, "parse_special": 0, "emit_special": 0,
           "on_text": None, "user": None, "tokens_out": None, "tokens_cap": 0}
    gen.update(("sampler." + k, v) for k, v in sampler_defaults.items())
    check(slm_generate_params, lib.slm_generate_params_init, gen)
    check(slm_quantize_params, lib.slm_quantize_params_init,
          {"type": 12, "mix": 2, "n_threads": 0, "allocator": None, "log": None, "log_user": None})
    check(slm_embed_params, lib.slm_embed_params_init,
          {"pooling": SLM_POOLING_UNSPECIFIED, "normalize": 0, "add_special": 1, "parse_special": 1})
    # with a NULL model these only clear the struct
    check(slm_model_info, lambda p: lib.slm_model_get_info(None, p), {"n_vocab": 0, "load_ms": 0.0})
    check(slm_text_stream, lambda p: lib.slm_text_stream_init(p, None, 3), {"flags": 3, "n_tokens": 0})
    # a NULL session: the result is cleared before the argument check
    check(slm_generate_result, lambda p: lib.slm_generate(None, None, 0, None, 0, None, p, None),
          {"stop_reason": 0, "gen_tps": 0.0})
    return problems
