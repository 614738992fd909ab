/*
 * slm.h - small language models in two files.
 *
 * The whole public API of slm. Vendor slm.h and slm.c into any C/C++ build;
 * nothing else is needed (libc, libm; OpenMP optional).
 *
 * Conventions
 *  - Every call that can fail returns an slm_status (SLM_OK == 0). Calls that
 *    can fail for a reason worth explaining take an optional `slm_error *err`
 *    (may be NULL) that receives a one-line message naming what was wrong.
 *  - slm_model is read-only after loading and may be shared by many threads;
 *    each slm_session (one conversation: KV cache, scratch, logits) is used by
 *    one thread at a time.
 *  - Token ids are int32_t. Sizes are plain integers. No struct is passed by
 *    value; parameter structs are filled by an *_init() call first.
 *  - The library never prints, aborts or exits; it reports through status
 *    codes, slm_error and an optional log callback.
 *
 * Build: add slm.c to your program (cc -O2 -fopenmp app.c slm.c -lm); no
 * target flags on x86-64, your target's flags elsewhere (README.md).
 *
 * Example: examples/hello.c (make test builds and runs it)
 * ------------------------------------------------------------------------
 *     #include <stdio.h>
 *     #include <string.h>
 *     #include "slm.h"
 *
 *     static int print_text(void *user, const char *text, size_t len) {
 *         (void)user;
 *         fwrite(text, 1, len, stdout);  // whole UTF-8 characters
 *         return 0;                      // non-zero stops generation
 *     }
 *
 *     int main(int argc, char **argv) {
 *         const char *path = argc > 1 ? argv[1] : "tests/data/demo/kjv-1m-q8_0.gguf";
 *         const char *prompt = "And the LORD said";
 *         slm_model *model = NULL;
 *         slm_session *s = NULL;
 *         slm_error err;
 *         slm_generate_params gp;
 *         slm_generate_result r;
 *         slm_generate_params_init(&gp);  // sampler: temperature 0.8, top-k 40, top-p 0.95
 *         gp.max_tokens = 48;
 *         gp.sampler.seed = 42;
 *         gp.on_text = print_text;
 *         int ok = slm_model_load_file(path, NULL, &model, &err) == SLM_OK &&
 *                  slm_session_create(model, NULL, &s, &err) == SLM_OK &&
 *                  slm_generate(s, prompt, strlen(prompt), NULL, 0, &gp, &r, &err) == SLM_OK;
 *         if (ok) printf("\n[%d tokens, %.0f tokens/s]\n", r.n_generated, r.gen_tps);
 *         else fprintf(stderr, "%s\n", err.message);  // what is wrong, and where
 *         slm_session_free(s);
 *         slm_model_free(model);
 *         return ok ? 0 : 1;
 *     }
 * ------------------------------------------------------------------------
 * More: docs/api.md in the slm repository (the calls by topic), then the
 * comments below.
 */
#ifndef SLM_H
#define SLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLM_VERSION_MAJOR 0
#define SLM_VERSION_MINOR 1
#define SLM_VERSION_PATCH 0
#define SLM_VERSION_STRING "0.1.0"

#ifndef SLM_API
#if defined(_WIN32) && defined(SLM_BUILD_DLL)
#define SLM_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define SLM_API __attribute__((visibility("default")))
#else
#define SLM_API
#endif
#endif

/* ------------------------------------------------------------------------ */
/* Status and errors                                                        */
/* ------------------------------------------------------------------------ */

typedef enum slm_status {
    SLM_OK = 0,
    SLM_ERR_INVALID_ARG = -1,  /* a NULL or out-of-range argument */
    SLM_ERR_IO = -2,           /* the file could not be opened or read */
    SLM_ERR_FORMAT = -3,       /* the file is not a well-formed GGUF file */
    SLM_ERR_UNSUPPORTED = -4,  /* well-formed, but uses something slm lacks */
    SLM_ERR_NOMEM = -5,        /* an allocation failed */
    SLM_ERR_CONTEXT_FULL = -6, /* the tokens do not fit in the session context */
    SLM_ERR_NOT_FOUND = -7,    /* no such key / tensor / token */
    SLM_ERR_TYPE = -8,         /* a metadata value has another type */
    SLM_ERR_BUFFER = -9        /* the caller's buffer is too small */
} slm_status;

typedef struct slm_error {
    int status;        /* the slm_status of the failure, SLM_OK if none */
    char message[256]; /* NUL-terminated, one line */
} slm_error;

/* Static name of a status code ("ok", "format error", ...). */
SLM_API const char *slm_status_string(int status);
SLM_API const char *slm_version(void);
/* This build and this CPU as one short line: the kernel sets compiled in
   ("simd=scalar,sse4,avx2,avx512"), the best one this CPU and OS support
   ("cpu=avx512", the one models use by default), whether OpenMP is on,
   and so on. */
SLM_API const char *slm_build_info(void);

/* Instruction sets (kernel tables). x86-64 builds made with GCC or Clang
   carry scalar, sse4, avx2 and avx512 (F/BW/VL/DQ with VNNI) and pick one
   at run time from what the CPU and OS support; so do aarch64 builds with
   neon, dotprod and i8mm; other targets carry the scalar kernels and the
   set their compiler flags enable. */
enum {
    SLM_ISA_BEST = 0,   /* the best this CPU supports (the default) */
    SLM_ISA_SCALAR = 1, /* the reference kernels */
    SLM_ISA_SSE4 = 2,   /* x86-64: SSE4.1 + SSSE3 */
    SLM_ISA_AVX2 = 3,   /* x86-64: AVX2 + FMA + F16C */
    SLM_ISA_AVX512 = 4, /* x86-64: AVX-512 F, BW, VL, DQ and VNNI */
    SLM_ISA_NEON = 5,   /* Arm NEON (aarch64 baseline; ARMv7) */
    SLM_ISA_RVV = 6,    /* RISC-V vector 1.0 */
    SLM_ISA_MVE = 7,    /* Arm Helium (Cortex-M55) */
    SLM_ISA_NEON_DOTPROD = 8, /* aarch64: NEON + SDOT (Cortex-A55/A76, Apple M1) */
    SLM_ISA_NEON_I8MM = 9,    /* aarch64: NEON + SDOT + SMMLA (Cortex-A510/A710, Apple M2) */
    SLM_ISA_COUNT = 10
};
/* 1 if this build has `isa` and this CPU can run it (SLM_ISA_BEST: 1). */
SLM_API int slm_isa_available(int isa);
/* "avx2", ...; "unknown" for a value out of range. */
SLM_API const char *slm_isa_name(int isa);
/* The SLM_ISA_* of a name (any case; "best" included), -1 if unknown. */
SLM_API int slm_isa_from_name(const char *name);

/* ------------------------------------------------------------------------ */
/* Allocation and logging hooks                                             */
/* ------------------------------------------------------------------------ */

typedef struct slm_allocator {
    /* Return `size` bytes aligned to `align` (a power of two <= 64), or NULL. */
    void *(*alloc)(void *user, size_t size, size_t align);
    /* Release a block returned by alloc; `size` is the size that was asked. */
    void (*free)(void *user, void *ptr, size_t size);
    void *user;
} slm_allocator;

/* Arena: all memory from one caller buffer (a static array on a
   microcontroller), no heap. Pass &arena.allocator as the allocator of the
   model (sessions, samplers and slm_generate then use the model's). A stack
   with deferred frees: a block is given back when it and everything
   allocated after it are freed, so the temporary buffers of a call are all
   returned when the call ends. Each block costs a header of 3 words plus
   its alignment. Not thread-safe: use it from one thread at a time (the
   forward pass itself allocates nothing). The struct lives wherever the
   caller likes; the fields after `allocator` are private. */
typedef struct slm_arena {
    slm_allocator allocator;
    unsigned char *base;
    size_t size, top, peak;
    void *last;
    size_t n_blocks, n_failed;
} slm_arena;

/* Use `size` bytes at `buffer` (align it to 64 bytes: slm_model_memory_size
   counts for that; otherwise add 63). */
SLM_API void slm_arena_init(slm_arena *arena, void *buffer, size_t size);
/* Bytes in use now, and the most ever in use (from the buffer's start). */
SLM_API size_t slm_arena_used(const slm_arena *arena);
SLM_API size_t slm_arena_peak(const slm_arena *arena);

enum { SLM_LOG_ERROR = 0, SLM_LOG_WARN = 1, SLM_LOG_INFO = 2, SLM_LOG_DEBUG = 3 };
typedef void (*slm_log_fn)(void *user, int level, const char *message);

/* ------------------------------------------------------------------------ */
/* Tensor types (the ggml type ids, as stored in GGUF)                      */
/* ------------------------------------------------------------------------ */

enum {
    SLM_TYPE_F32 = 0, SLM_TYPE_F16 = 1, SLM_TYPE_Q4_0 = 2, SLM_TYPE_Q4_1 = 3,
    SLM_TYPE_Q5_0 = 6, SLM_TYPE_Q5_1 = 7, SLM_TYPE_Q8_0 = 8, SLM_TYPE_Q8_1 = 9,
    SLM_TYPE_Q2_K = 10, SLM_TYPE_Q3_K = 11, SLM_TYPE_Q4_K = 12, SLM_TYPE_Q5_K = 13,
    SLM_TYPE_Q6_K = 14, SLM_TYPE_Q8_K = 15, SLM_TYPE_IQ4_NL = 20, SLM_TYPE_IQ4_XS = 23,
    SLM_TYPE_BF16 = 30
};

/* Name of a ggml type id ("Q4_0", ...), or NULL if the id is unknown. */
SLM_API const char *slm_type_name(int type);
/* 1 if slm can compute with weights of this type. */
SLM_API int slm_type_supported(int type);
/* Values per block of a type (1 for F32/F16/BF16, 32, 256), 0 if unknown. */
SLM_API int slm_type_block_size(int type);
/* Bytes of a row of n values of a type; 0 if the type is unknown or n is
   not a multiple of its block size. */
SLM_API size_t slm_row_bytes(int type, int64_t n);
/* Convert n floats to a type (n a multiple of its block size; dst holds
   slm_row_bytes(type, n) bytes), and back. Every type slm computes with,
   plus the activation formats Q8_1 and Q8_K. SLM_ERR_UNSUPPORTED for
   other types, SLM_ERR_INVALID_ARG for a bad n or NULL pointers. */
SLM_API slm_status slm_quantize_row(int type, const float *src, void *dst, int64_t n);
SLM_API slm_status slm_dequantize_row(int type, const void *src, float *dst, int64_t n);

/* ------------------------------------------------------------------------ */
/* Model                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct slm_model slm_model;

typedef struct slm_model_params {
    int use_mmap;                   /* 1 (default): map the file where the OS can;
                                       0: read it into memory */
    int vocab_only;                 /* 1: load metadata and vocabulary, no weights */
    int repack;                     /* 1 (default): rearrange matrices at load into
                                       the faster interleaved layouts this build
                                       has kernels for (files only: a caller's
                                       buffer is never written; on Linux they
                                       move to memory of their own in huge
                                       pages) */
    const slm_allocator *allocator; /* NULL: malloc/free */
    slm_log_fn log;                 /* NULL: silent */
    void *log_user;
    int isa;                        /* SLM_ISA_BEST (default), or one ISA (the
                                       load fails with SLM_ERR_UNSUPPORTED if
                                       this build or CPU lacks it) */
} slm_model_params;

SLM_API void slm_model_params_init(slm_model_params *params);

/* Load a GGUF file. `params` may be NULL for the defaults. The path is
   UTF-8 (on Windows too, where a path that is not valid UTF-8 is taken in
   the ANSI code page). Mapped files are private (copy-on-write): the file
   is never written. */
SLM_API slm_status slm_model_load_file(const char *path, const slm_model_params *params,
                                       slm_model **out, slm_error *err);
/* Load from a caller's buffer (an embedded array, flash, a file already in
   memory). The weights, the vocabulary and the metadata arrays are used in
   place (never copied): the buffer must stay valid and unchanged until
   slm_model_free. */
SLM_API slm_status slm_model_load_memory(const void *data, size_t size,
                                         const slm_model_params *params,
                                         slm_model **out, slm_error *err);
SLM_API void slm_model_free(slm_model *model);
struct slm_session_params;
/* Bytes of an slm_arena (64-byte aligned buffer) that slm_model_load_memory
   of this buffer takes and, if `session` is not NULL, one session created
   right after it with those parameters: exactly, so an arena of this size
   holds both and one byte less does not. slm_generate needs more on top
   for its call (the sampler: about 12 bytes per vocabulary entry, plus the
   prompt's tokens). Measured by loading the model (weights in place) with
   params->allocator (malloc if NULL) while recording the arena's layout,
   so the number is exact for this build of slm and the kernels of
   params->isa (the best ones can keep scratch the portable ones do not: set
   params->isa to what the target runs, SLM_ISA_SCALAR for a target without
   this host's ISAs); a 32-bit target needs less than a 64-bit host computes
   (smaller pointers and headers). Call it on
   a host (tools/gguf2c does) or wherever that memory is available. 0 on
   failure (err says why). */
SLM_API size_t slm_model_memory_size(const void *data, size_t size, const slm_model_params *params,
                                     const struct slm_session_params *session, slm_error *err);

typedef struct slm_model_info {
    const char *arch;      /* general.architecture, e.g. "llama" */
    const char *name;      /* general.name, or "" */
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    int32_t head_dim;
    int32_t n_rot;         /* rotary dimensions per head */
    float rope_freq_base;
    float norm_eps;
    uint64_t n_params;     /* elements in all weight tensors */
    uint64_t weight_bytes; /* bytes of tensor data */
    uint64_t file_size;
    int32_t gguf_version;
    int32_t n_tensors;
    double load_ms;        /* wall time the load call took, in milliseconds */
} slm_model_info;

SLM_API void slm_model_get_info(const slm_model *model, slm_model_info *out);
/* The SLM_ISA_* whose kernels the model runs with. */
SLM_API int slm_model_isa(const slm_model *model);

/* Metadata (GGUF key/value pairs). Value types are the GGUF ids. */
enum {
    SLM_META_U8 = 0, SLM_META_I8 = 1, SLM_META_U16 = 2, SLM_META_I16 = 3,
    SLM_META_U32 = 4, SLM_META_I32 = 5, SLM_META_F32 = 6, SLM_META_BOOL = 7,
    SLM_META_STRING = 8, SLM_META_ARRAY = 9, SLM_META_U64 = 10, SLM_META_I64 = 11,
    SLM_META_F64 = 12
};

SLM_API int64_t slm_meta_count(const slm_model *model);
/* Index of a key, or -1. */
SLM_API int64_t slm_meta_find(const slm_model *model, const char *key);
SLM_API const char *slm_meta_key(const slm_model *model, int64_t index);
SLM_API int slm_meta_type(const slm_model *model, int64_t index);
/* For arrays: the element type and the number of elements. */
SLM_API int slm_meta_array_type(const slm_model *model, int64_t index);
SLM_API int64_t slm_meta_array_count(const slm_model *model, int64_t index);
/* Scalar values, converted within their kind (any integer or bool to int64,
   any float to double). `elem` selects an array element; use -1 for scalars. */
SLM_API slm_status slm_meta_get_int(const slm_model *model, int64_t index, int64_t elem,
                                    int64_t *out);
SLM_API slm_status slm_meta_get_float(const slm_model *model, int64_t index, int64_t elem,
                                      double *out);
/* Strings: *out points into the model (valid until slm_model_free); *len
   receives the length in bytes (strings may hold NUL bytes). A string value
   is NUL-terminated and len may be NULL. An array element (token pieces,
   merges) is a view into the model file, NOT NUL-terminated: len is
   required (SLM_ERR_INVALID_ARG without it). */
SLM_API slm_status slm_meta_get_string(const slm_model *model, int64_t index, int64_t elem,
                                       const char **out, size_t *len);
/* The value as text for display (arrays are shortened); returns the length
   that the full text would have, like snprintf. */
SLM_API size_t slm_meta_format(const slm_model *model, int64_t index, char *buf, size_t size);

/* Tensors. */
typedef struct slm_tensor_info {
    const char *name;
    int32_t type;     /* ggml type id */
    int32_t n_dims;
    int64_t ne[4];    /* ne[0] is the row length; unused dims are 1 */
    uint64_t offset;  /* from the start of the file */
    uint64_t nbytes;
} slm_tensor_info;

SLM_API int64_t slm_tensor_count(const slm_model *model);
SLM_API slm_status slm_tensor_get_info(const slm_model *model, int64_t index,
                                       slm_tensor_info *out);
/* Index of a tensor by name, or -1. */
SLM_API int64_t slm_tensor_find(const slm_model *model, const char *name);

/* ------------------------------------------------------------------------ */
/* Session: one conversation (KV cache, positions, logits)                  */
/* ------------------------------------------------------------------------ */

typedef struct slm_session slm_session;

typedef struct slm_session_params {
    int32_t n_ctx;      /* context length in tokens; 0 = min(training context, 4096) */
    int32_t n_threads;  /* 0 = the default: OMP_NUM_THREADS if set, else one
                           per physical performance core (Linux: hyper-thread
                           siblings once, the fastest cluster of big.LITTLE),
                           at most 8; at most 4 per processor; 1 without
                           OpenMP. Threads take work units from a shared
                           counter, so one descheduled by another process
                           delays only its own unit; single-token decode
                           runs at the faster, as measured, of n_threads
                           and 1 thread (results are the same). */
    int32_t n_batch;    /* tokens per forward chunk during prefill; 0 = 64 */
    int32_t kv_type;    /* SLM_TYPE_F16 (default), SLM_TYPE_F32, or SLM_TYPE_Q8_0
                           (half the memory of F16; head size a multiple of 32) */
    int32_t logits_all; /* 1: keep logits for every token of a decode call */
} slm_session_params;

SLM_API void slm_session_params_init(slm_session_params *params);

/* Bytes a session with these parameters allocates (KV cache, scratch,
   logits; for models with recurrent layers also two copies of their conv
   and SSM state and n_ctx token ids, see slm_session_rewind), so that a
   caller can plan memory before creating it. */
SLM_API size_t slm_session_memory_size(const slm_model *model, const slm_session_params *params);

SLM_API slm_status slm_session_create(const slm_model *model, const slm_session_params *params,
                                      slm_session **out, slm_error *err);
SLM_API void slm_session_free(slm_session *session);

/* Append n tokens at the current position and run the model over them.
   Afterwards slm_session_logits(s, -1) holds the logits of the last token
   (and, with logits_all, of every token of this call). Fails with
   SLM_ERR_CONTEXT_FULL, leaving the session unchanged, if the tokens do not
   fit; with SLM_ERR_INVALID_ARG for an out-of-vocabulary id. */
SLM_API slm_status slm_decode(slm_session *session, const int32_t *tokens, int32_t n,
                              slm_error *err);
/* Logits (n_vocab floats) of token i of the last decode call; i = -1 is the
   last token. NULL if there are none (no decode yet, or i not kept). */
SLM_API const float *slm_session_logits(const slm_session *session, int32_t i);
SLM_API int32_t slm_session_pos(const slm_session *session);
SLM_API int32_t slm_session_n_ctx(const slm_session *session);
/* Forget everything from position `pos` on (0 clears the conversation).
   Models with recurrent layers (lfm2, qwen35, granitehybrid) cannot cut
   their conv/SSM state back like a KV cache. Their session keeps the state
   from before the last slm_decode call (at no cost: that call wrote a
   second copy) and the ids decoded so far. Rewinding to the start of the
   last decode call (chat dropping the end-of-turn token) or to 0 is
   immediate; any other position restores the nearest earlier of those two
   states and decodes the kept ids up to `pos` again, which costs a prefill
   of that many tokens. The logits equal those of a fresh run. Returns
   SLM_ERR_INVALID_ARG for pos < 0 or pos > the current position. */
SLM_API slm_status slm_session_rewind(slm_session *session, int32_t pos);
/* Change the thread count for later decode calls: 0 = the default, at most
   the count the session was created with (its scratch is sized for those). */
SLM_API void slm_session_set_threads(slm_session *session, int32_t n_threads);

/* Session state: save the session (its KV cache up to the current position,
   the position, the last logits) and restore it later, in this process or
   another, into a session of the same model with the same kv_type and a
   context of at least that many positions. `tokens` (n_tokens, may be 0)
   are kept with it for the caller: typically the ids the session holds, so
   a prompt cache can tell how much of a new prompt is already done. The
   format is versioned and carries a hash of the model (architecture,
   hyperparameters, metadata and tensor directory) and a checksum: a state
   of another model, another KV type, or a damaged file is refused with a
   message, and a failed load leaves the session unchanged. Models with
   recurrent layers also save their conv/SSM state and the ids decoded so
   far (so that a restored session can rewind; see slm_session_rewind).
   slm_session_state_size: the exact bytes slm_session_state_save writes
   now with n_tokens ids. Save: SLM_ERR_BUFFER (and *written = the size) if
   cap is too small. Load: the ids go to tokens[cap_tokens] (may be NULL),
   their count to *n_tokens (may be NULL); SLM_ERR_BUFFER, session
   unchanged, if they do not fit. */
SLM_API size_t slm_session_state_size(const slm_session *session, int32_t n_tokens);
SLM_API slm_status slm_session_state_save(const slm_session *session, const int32_t *tokens, int32_t n_tokens,
                                          void *buf, size_t cap, size_t *written, slm_error *err);
SLM_API slm_status slm_session_state_load(slm_session *session, const void *buf, size_t size, int32_t *tokens,
                                          int32_t cap_tokens, int32_t *n_tokens, slm_error *err);
/* The same to and from a file (UTF-8 path); saving replaces the file
   safely (as slm_file_write). SLM_ERR_UNSUPPORTED with SLM_NO_STDIO. */
SLM_API slm_status slm_session_state_save_file(const slm_session *session, const char *path,
                                               const int32_t *tokens, int32_t n_tokens, slm_error *err);
SLM_API slm_status slm_session_state_load_file(slm_session *session, const char *path, int32_t *tokens,
                                               int32_t cap_tokens, int32_t *n_tokens, slm_error *err);
SLM_API const slm_model *slm_session_model(const slm_session *session);

/* ------------------------------------------------------------------------ */
/* Tokenizer                                                                */
/* ------------------------------------------------------------------------ */
/*
 * The vocabulary is read from the GGUF tokenizer.ggml.* keys when a model is
 * loaded (also with vocab_only = 1). Token ids index the tokenizer's pieces;
 * slm_vocab_size() can be smaller than slm_model_info.n_vocab (the logits
 * row) when the embedding matrix is padded.
 */

enum {
    SLM_VOCAB_NONE = 0, /* the file has no vocabulary */
    SLM_VOCAB_SPM = 1,  /* SentencePiece-style (tokenizer.ggml.model "llama") */
    SLM_VOCAB_BPE = 2,  /* byte-level BPE (tokenizer.ggml.model "gpt2") */
    SLM_VOCAB_OTHER = 3, /* another tokenizer.ggml.model: pieces only */
    SLM_VOCAB_WPM = 4    /* WordPiece (tokenizer.ggml.model "bert": BERT encoders) */
};

/* Token attributes (bit flags, from tokenizer.ggml.token_type). */
enum {
    SLM_TOKEN_UNKNOWN = 1 << 0,
    SLM_TOKEN_UNUSED = 1 << 1,
    SLM_TOKEN_NORMAL = 1 << 2,
    SLM_TOKEN_CONTROL = 1 << 3,      /* <s>, </s>, <|im_end|>: text only when asked */
    SLM_TOKEN_USER_DEFINED = 1 << 4, /* matched as a whole piece in the input */
    SLM_TOKEN_BYTE = 1 << 5          /* <0xNN>: one raw byte */
};

SLM_API int slm_vocab_type(const slm_model *model);
/* Number of tokens in the vocabulary (0 if none). */
SLM_API int32_t slm_vocab_size(const slm_model *model);
/* Special ids, or -1 when the model has none. */
SLM_API int32_t slm_token_bos(const slm_model *model);
SLM_API int32_t slm_token_eos(const slm_model *model);
SLM_API int32_t slm_token_eot(const slm_model *model);
SLM_API int32_t slm_token_unk(const slm_model *model);
SLM_API int32_t slm_token_pad(const slm_model *model);
/* 1 if the token ends generation (EOS, EOT, EOM and tokens such as <|im_end|>). */
SLM_API int slm_token_is_eog(const slm_model *model, int32_t token);
/* SLM_TOKEN_* flags of a token, 0 if the id is out of range. */
SLM_API int slm_token_attr(const slm_model *model, int32_t token);
/* The pre-tokenizer a byte-level BPE vocabulary uses, chosen by
   tokenizer.ggml.pre: "gpt2", "llama3", "qwen2", "qwen35", "starcoder",
   "default", "falcon", "deepseek-llm", "deepseek-coder", "deepseek-v3",
   "gpt-4o", "tekken", "kimi-k2", "superbpe", "seed-coder", "bloom", "viking",
   "chameleon", "minicpm5", "ufakzeka", "laguna" or "gemma4" ("" for other
   vocabularies). A tokenizer.ggml.pre value slm cannot tokenize exactly as
   llama.cpp is refused at load (SLM_ERR_UNSUPPORTED); a missing one means
   "default" (as llama.cpp) with a warning through the log callback, and
   *fallback (may be NULL) is set to 1. */
SLM_API const char *slm_vocab_pretokenizer(const slm_model *model, int *fallback);
/* Whether tokenizing with add_special adds BOS / EOS (tokenizer.ggml.add_*_token). */
SLM_API int slm_vocab_add_bos(const slm_model *model);
SLM_API int slm_vocab_add_eos(const slm_model *model);
/* The raw vocabulary piece (SentencePiece pieces spell spaces as U+2581):
   its bytes in the model file, NOT NUL-terminated (valid until
   slm_model_free); *len receives its length. NULL for an id out of range
   or a NULL len. */
SLM_API const char *slm_token_text(const slm_model *model, int32_t token, size_t *len);

/* Text -> token ids. add_special: add BOS/EOS as the model asks
   (slm_vocab_add_bos/eos). parse_special: control tokens written in the text
   ("<s>", "<|im_end|>") become those tokens; otherwise they are ordinary
   text (user-defined tokens are always matched whole, as in llama.cpp).
   Any bytes are accepted: invalid UTF-8 falls back to byte tokens (SPM) or
   keeps its bytes (byte-level BPE, where llama.cpp would substitute U+FFFD),
   so that detokenizing gives the bytes back.
   *n_out receives the number of tokens; if it exceeds max, nothing useful is
   in out and the call returns SLM_ERR_BUFFER (out may be NULL with max 0 to
   ask for the count). */
SLM_API slm_status slm_tokenize(const slm_model *model, const char *text, size_t len, int add_special,
                                int parse_special, int32_t *out, int32_t max, int32_t *n_out,
                                slm_error *err);

/* The text of one token: U+2581 becomes a space, <0xNN> the byte NN.
   Control and unknown tokens give "" unless `special` is 1. Writes *len bytes
   (no NUL) if they fit in `size`, else returns SLM_ERR_BUFFER with *len set to
   the size needed. */
SLM_API slm_status slm_token_to_piece(const slm_model *model, int32_t token, int special, char *buf,
                                      size_t size, size_t *len);

/* Token ids -> text, as llama.cpp's detokenizer: with add_space_prefix the
   leading space of the first piece is dropped (unless the first token is a
   removed BOS); remove_special drops a leading BOS and trailing EOS (when the
   model adds them); unparse_special renders control tokens as their text.
   BPE vocabularies whose tokenizer cleans up spaces (gpt2, llama3,
   starcoder, ...: clean_up_tokenization_spaces) drop the space before
   ? ! . , and some apostrophe contractions, as llama.cpp and Hugging Face
   do. Writes a NUL-terminated string if *len + 1 <= size, else
   SLM_ERR_BUFFER with *len set to the text length (before that clean-up: a
   buffer of *len + 1 bytes is always enough). */
SLM_API slm_status slm_detokenize(const slm_model *model, const int32_t *tokens, int32_t n,
                                  int remove_special, int unparse_special, char *buf, size_t size,
                                  size_t *len, slm_error *err);

/* Streaming detokenizer: feed tokens one at a time and get text that never
   ends in the middle of a UTF-8 character (bytes of an incomplete character
   are held back until the rest arrives; invalid sequences pass through as
   they are). No space clean-up (it would need to see the next piece). The
   struct lives wherever the caller likes; its fields are private. */
enum {
    SLM_STREAM_SPECIAL = 1,     /* render control tokens as their text */
    SLM_STREAM_STRIP_SPACE = 2  /* drop the first piece's leading space (as slm_detokenize) */
};
typedef struct slm_text_stream {
    const slm_model *model;
    int flags;
    int32_t n_tokens;
    uint32_t n_pending;
    char pending[4];
} slm_text_stream;

SLM_API void slm_text_stream_init(slm_text_stream *stream, const slm_model *model, int flags);
/* Append the text that `token` completes to buf (*len bytes, no NUL). With
   size >= slm_vocab_max_piece(model) + 4 it always fits; otherwise
   SLM_ERR_BUFFER, *len = the size needed, and the token is not consumed. */
SLM_API slm_status slm_text_stream_push(slm_text_stream *stream, int32_t token, char *buf, size_t size,
                                        size_t *len);
/* Bytes still held back (an incomplete character at the very end); resets. */
SLM_API size_t slm_text_stream_flush(slm_text_stream *stream, char *buf, size_t size);
/* Longest decoded piece of the vocabulary, in bytes (with special = 1). */
SLM_API int32_t slm_vocab_max_piece(const slm_model *model);

/* ------------------------------------------------------------------------ */
/* Chat templates                                                           */
/* ------------------------------------------------------------------------ */
/*
 * A conversation (role, content messages) becomes prompt text in the format
 * the model was trained with. slm does not run Jinja: it recognizes the
 * family of the model's tokenizer.chat_template by distinctive substrings
 * and renders that family's published template in C. The text holds the
 * model's special tokens as text ("<|im_start|>"), so tokenize it with
 * parse_special = 1; it never starts with BOS: tokenizing with add_special
 * (as slm_generate does on an empty session) adds BOS if the model wants it.
 *
 * Families and what they render (S system, U user, A assistant):
 *   CHATML   <|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n
 *            ... generation prompt <|im_start|>assistant\n (Qwen, SmolLM, ...)
 *   LLAMA3   <|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|> (content
 *            trimmed) ... <|start_header_id|>assistant<|end_header_id|>\n\n
 *   GEMMA    <start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n
 *            (no system role: S is folded into the first turn, as Gemma 3)
 *   PHI3     <|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n
 *   PHI4_MINI <|system|>S<|end|><|user|>U<|end|><|assistant|> (Phi-4-mini)
 *   ZEPHYR   <|user|>\nU</s>\n<|assistant|>\n with the model's EOS text
 *            (Zephyr, TinyLlama-Chat, StableLM-Zephyr)
 *   MISTRAL   [INST] S\n\nU [/INST] A</s> [INST] U [/INST] (Mistral's tokenizer
 *            V1 template: Mistral-7B-Instruct v0.1/v0.2, Mixtral; S goes
 *            before the first user text)
 *   LLAMA2   [INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U [/INST]
 *   GRANITE  <|start_of_role|>user<|end_of_role|>U<|end_of_text|>\n ...
 *            <|start_of_role|>assistant<|end_of_role|> (Granite 3.x, 4.0 and
 *            4.0-H; no default system prompt, as Granite 4.0)
 *   OLMO2    <|system|>\nS\n<|user|>\nU\n<|assistant|>\nA<eos>\n ...
 *            <|assistant|>\n (OLMo 2 Instruct, Tulu 3)
 * Qwen3.5, SmolLM3 and LFM2 use ChatML (LFM2's <|startoftext|> is its BOS;
 * thinking blocks are part of the assistant's text).
 * Roles other than system/user/assistant are written as given where the
 * format names roles, and as user turns in the [INST] formats.
 */

enum {
    SLM_CHAT_AUTO = 0, /* the model's own template (detected) */
    SLM_CHAT_CHATML = 1,
    SLM_CHAT_LLAMA3 = 2,
    SLM_CHAT_GEMMA = 3,
    SLM_CHAT_PHI3 = 4,
    SLM_CHAT_ZEPHYR = 5,
    SLM_CHAT_MISTRAL = 6,
    SLM_CHAT_LLAMA2 = 7,
    SLM_CHAT_PHI4_MINI = 8,
    SLM_CHAT_GRANITE = 9,
    SLM_CHAT_OLMO2 = 10,
    SLM_CHAT_QWEN3 = 11,   /* ChatML with <think> blocks (Qwen3) */
    SLM_CHAT_QWEN35 = 12,  /* Qwen3.5: the reply opens inside <think> */
    SLM_CHAT_SMOLLM3 = 13, /* ChatML, metadata system block, /think and /no_think */
    SLM_CHAT_LFM2 = 14     /* ChatML; past replies lose their thinking */
};

/* Bits of slm_chat_format's add_generation_prompt (0 or 1 as before, with
   SLM_CHAT_NO_THINK OR'ed in where wanted). SLM_CHAT_NO_THINK asks a model that reasons to answer
   without a thinking block, where its template has the switch
   (enable_thinking=false: Qwen3 and Qwen3.5 an empty <think></think> block
   in the prompt, SmolLM3 "/no_think" mode); a /think or /no_think in
   SmolLM3's system message wins, as in its template. Ignored elsewhere. */
enum { SLM_CHAT_GEN = 1, SLM_CHAT_NO_THINK = 2 };

typedef struct slm_chat_message {
    const char *role;    /* "system", "user", "assistant" (NUL-terminated) */
    const char *content; /* NUL-terminated */
} slm_chat_message;

/* The family of a Jinja chat template text, or SLM_CHAT_AUTO (0) if no
   family is recognized. */
SLM_API int slm_chat_detect(const char *tmpl);
/* The family of the model's tokenizer.chat_template. If the file has none or
   it is not recognized, *fallback (may be NULL) = 1, a warning goes through
   the log callback, and the family is the one general.architecture implies
   (gemma*, phi3, qwen*), else the one whose turn tokens the vocabulary has
   (<|start_header_id|>: llama3, <|im_start|>: ChatML, <start_of_turn>,
   <|assistant|>, [INST]), else SLM_CHAT_CHATML. Otherwise *fallback = 0. */
SLM_API int slm_chat_model_family(const slm_model *model, int *fallback);
/* Family by name: "chatml" (also "qwen"), "llama3", "gemma", "phi3",
   "zephyr" (also "tinyllama"), "mistral", "llama2", "phi4-mini", "granite",
   "olmo2", "qwen3", "qwen3.5", "smollm3", "lfm2"; 0 if unknown. */
SLM_API int slm_chat_family_from_name(const char *name);
/* Name of a family ("chatml", ...), "auto" for 0, NULL if unknown. */
SLM_API const char *slm_chat_family_name(int family);

/* Format messages[0, n) as prompt text. family: SLM_CHAT_AUTO (needs the
   model) or a family; model may be NULL with an explicit family (then EOS
   is written "</s>" and BOS "<s>"). add_generation_prompt: end with the
   opening of the assistant's turn (SLM_CHAT_GEN, with SLM_CHAT_NO_THINK:
   without thinking). Where the template opens the reply inside a thinking
   block (Qwen3.5), the text ends with "<think>\n": the reply's first
   tokens are thinking and its end tag comes before the answer.
   n_past > 0 formats incrementally, for a conversation kept in a session:
   messages[0, n_past) are already in the context and the last of them,
   messages[n_past - 1], is the assistant reply the model generated (its
   end-of-generation token removed from the session with
   slm_session_rewind). The text is then the part of the full formatting
   that follows that reply's content (its end-of-turn markup, the new turns,
   the generation prompt): always a suffix of the full text.
   *fallback (may be NULL): 1 if family was AUTO and the model's template
   was not recognized (ChatML was used). Writes a NUL-terminated string if
   *len + 1 <= size, else SLM_ERR_BUFFER with *len set to the text length. */
SLM_API slm_status slm_chat_format(const slm_model *model, int family, const slm_chat_message *messages,
                                   int32_t n, int32_t n_past, int add_generation_prompt, char *buf,
                                   size_t size, size_t *len, int *fallback, slm_error *err);

/* ------------------------------------------------------------------------ */
/* Sampler                                                                  */
/* ------------------------------------------------------------------------ */
/*
 * Chain, in this order (llama.cpp's default order):
 *   1. penalties: repetition (over the last repeat_last_n accepted tokens:
 *      a positive logit is divided by repeat_penalty, a negative one
 *      multiplied), then frequency (count * frequency_penalty) and presence
 *      (presence_penalty once) subtracted;
 *   2. temperature <= 0: greedy (the highest logit, lowest id on ties);
 *   3. top-k; 4. top-p (the smallest set, by probability at temperature 1,
 *      whose mass reaches top_p); 5. min-p (drop tokens whose probability is
 *      below min_p times the top one's); 6. temperature; 7. a draw from the
 *      softmax of what is left.
 * With a grammar, before 2.: tokens the grammar does not allow get a logit
 * of -inf (end-of-generation tokens are allowed only where the grammar is
 * complete), so every chosen token keeps the text a prefix of the grammar's
 * language; slm_sampler_accept then advances the grammar over the token.
 * The draw uses slm's own RNG (xoshiro256** seeded with splitmix64), its own
 * exp, a fixed sort order (logit, then id) and a fixed summation order, so a
 * seed gives the same tokens on every platform for the same logits.
 */

typedef struct slm_grammar slm_grammar;

typedef struct slm_sampler_params {
    float temperature;       /* default 0.8; <= 0: greedy */
    int32_t top_k;           /* default 40; <= 0: off */
    float top_p;             /* default 0.95; >= 1: off */
    float min_p;             /* default 0.05; <= 0: off */
    float repeat_penalty;    /* default 1.0 (off) */
    int32_t repeat_last_n;   /* default 64; tokens the penalties look at */
    float frequency_penalty; /* default 0 */
    float presence_penalty;  /* default 0 */
    uint64_t seed;           /* default 0 */
    /* Added with grammars (the struct grew: FFI layouts must add it, and
       slm_generate_params, which holds this struct, grew with it): */
    const slm_grammar *grammar; /* default NULL; a compiled grammar (slm_grammar_create) that
                                   masks every token which cannot continue it. Not owned:
                                   keep it alive as long as the sampler */
} slm_sampler_params;

typedef struct slm_sampler slm_sampler;

SLM_API void slm_sampler_params_init(slm_sampler_params *params);
/* A sampler for logits rows of n_vocab floats. `allocator` may be NULL. */
SLM_API slm_status slm_sampler_create(const slm_sampler_params *params, int32_t n_vocab,
                                      const slm_allocator *allocator, slm_sampler **out,
                                      slm_error *err);
SLM_API void slm_sampler_free(slm_sampler *sampler);
/* Choose a token from a row of logits (not modified). Returns -1 if
   sampler or logits is NULL. Does not accept the token. */
SLM_API int32_t slm_sampler_sample(slm_sampler *sampler, const float *logits);
/* Record a token in the penalty window (prompt tokens too, if wanted). With
   a grammar it also advances the grammar over the token's text: accept only
   generated tokens then (a prompt is not part of the grammar's text). A
   token the grammar does not allow makes the grammar FAILED. Returns -1
   from slm_sampler_sample when the grammar allows no token at all. */
SLM_API void slm_sampler_accept(slm_sampler *sampler, int32_t token);
/* Forget the accepted tokens, restart the RNG from `seed` and the grammar
   (if any) from its start rule. */
SLM_API void slm_sampler_reset(slm_sampler *sampler, uint64_t seed);

/* ------------------------------------------------------------------------ */
/* Grammars: structured output (docs/grammar.md)                            */
/* ------------------------------------------------------------------------ */
/*
 * A grammar is GBNF text, the format of llama.cpp's .gbnf files: rules
 * `name ::= alternatives`, alternatives separated by |, sequences of
 * "literals", [character classes] (ranges, ^ negation), . (any character),
 * rule names and ( groups ), with * + ? {m} {m,} {m,n} repetitions, escapes
 * \x.. \u.... \U........ \n \r \t \\ \" \[ \], # comments and UTF-8
 * anywhere. A rule ends at the end of its line, except inside parentheses,
 * after | or ::=, and when the next line starts with |.
 *
 * slm_grammar_create compiles the text and binds it to a model's
 * vocabulary (the token trie the sampler walks). Errors name the line and
 * column; undefined rules, left recursion and rules that can never finish
 * are reported there too, never hung on. The grammar is read-only after
 * creation: one grammar may serve many samplers, on several threads. It
 * keeps no pointer to the model.
 */

/* Compile `text` (len bytes; UTF-8) starting from the rule `root` (NULL:
   "root") for model's vocabulary. SLM_ERR_FORMAT for a bad grammar,
   SLM_ERR_UNSUPPORTED past the limits (1 MiB of text, 16384 rules, 1M
   elements after expansion, {m,n} up to 4096, 64 nested parentheses). */
SLM_API slm_status slm_grammar_create(const slm_model *model, const char *text, size_t len, const char *root,
                                      slm_grammar **out, slm_error *err);
SLM_API void slm_grammar_free(slm_grammar *grammar);
/* The built-in JSON grammar (a JSON object at the top, bounded whitespace
   and digits), NUL-terminated GBNF text for slm_grammar_create. */
SLM_API const char *slm_grammar_json(void);
/* JSON Schema -> GBNF text. Supported: type (string, number, integer,
   boolean, null, object, array, or a list of them), properties, required,
   additionalProperties (false or absent: no other members; true or a
   schema: more members after the listed ones), enum, const, items,
   minItems, maxItems, anyOf, oneOf (as anyOf), $ref to local definitions
   ("#/$defs/x", "#/definitions/x", any "#/..." pointer; recursion works),
   format date / time / date-time / uuid, minLength, maxLength; annotations
   (title, description, default, examples, $schema, $id, $comment, ...) are
   ignored. Any other keyword is an error (SLM_ERR_UNSUPPORTED) that names
   it and where it is. Members are written in the order of "properties".
   Writes a NUL-terminated text if *len + 1 <= size, else SLM_ERR_BUFFER
   with *len set to the text length. */
SLM_API slm_status slm_json_schema_to_grammar(const char *schema, size_t schema_len, char *buf, size_t size,
                                              size_t *len, slm_error *err);

enum {
    SLM_GRAMMAR_NONE = 0,     /* the sampler has no grammar */
    SLM_GRAMMAR_ACTIVE = 1,   /* the text so far is an unfinished match */
    SLM_GRAMMAR_COMPLETE = 2, /* a complete match that may go on (end-of-generation allowed) */
    SLM_GRAMMAR_DONE = 3,     /* complete, nothing may follow (or end-of-generation accepted) */
    SLM_GRAMMAR_FAILED = 4    /* a token the grammar does not allow was accepted */
};
SLM_API int slm_sampler_grammar_state(const slm_sampler *sampler);

/* ------------------------------------------------------------------------ */
/* Generate                                                                 */
/* ------------------------------------------------------------------------ */

/* Streaming callback: `len` bytes of text (complete UTF-8 characters, not
   NUL-terminated). Return non-zero to stop. */
typedef int (*slm_text_fn)(void *user, const char *text, size_t len);

enum {
    SLM_STOP_NONE = 0,
    SLM_STOP_EOG = 1,          /* an end-of-generation token (not emitted) */
    SLM_STOP_MAX_TOKENS = 2,   /* max_tokens were generated */
    SLM_STOP_STRING = 3,       /* a stop string appeared (it and what follows are not emitted) */
    SLM_STOP_CALLBACK = 4,     /* on_text returned non-zero */
    SLM_STOP_CONTEXT_FULL = 5, /* the session context is full */
    SLM_STOP_GRAMMAR = 6       /* the grammar is complete and allows nothing more */
};

typedef struct slm_generate_params {
    int32_t max_tokens;        /* default 256; <= 0: until EOG or a full context */
    const char *const *stop;   /* n_stop stop strings (NUL-terminated), may be NULL */
    int32_t n_stop;
    int add_special;           /* default 1: add BOS (if the model wants it) when the session is empty */
    int parse_special;         /* default 0: control-token text in the prompt stays text */
    int emit_special;          /* default 0: control tokens produce no text */
    slm_sampler_params sampler;
    slm_text_fn on_text;       /* may be NULL */
    void *user;
    int32_t *tokens_out;       /* optional: the generated ids (up to tokens_cap) */
    int32_t tokens_cap;
} slm_generate_params;

typedef struct slm_generate_result {
    int32_t stop_reason;       /* SLM_STOP_* */
    int32_t n_prompt;          /* prompt tokens decoded */
    int32_t n_generated;       /* tokens sampled (an ending EOG token not counted) */
    double load_ms;            /* the model's load time (slm_model_info.load_ms) */
    double prompt_ms, prompt_tps;  /* prompt processing */
    double gen_ms, gen_tps;        /* sampling and decoding of the generated tokens */
} slm_generate_result;

SLM_API void slm_generate_params_init(slm_generate_params *params);
/* Append a prompt to the session and generate from it. The prompt is either
   text (prompt, prompt_len; tokenized with add_special/parse_special) or
   token ids (prompt_ids, n_prompt_ids > 0, used as they are). With an empty
   prompt, generation continues from the session's last logits. Every
   generated token is decoded into the session (so a conversation can go on),
   except one that no longer fits in the context. `result` may be NULL.
   Returns SLM_OK whatever the stop reason; SLM_ERR_CONTEXT_FULL if the prompt
   itself does not fit (the session unchanged). */
SLM_API slm_status slm_generate(slm_session *session, const char *prompt, size_t prompt_len,
                                const int32_t *prompt_ids, int32_t n_prompt_ids,
                                const slm_generate_params *params, slm_generate_result *result,
                                slm_error *err);

/* ------------------------------------------------------------------------ */
/* Embeddings                                                               */
/* ------------------------------------------------------------------------ */
/*
 * Embedding models: BERT encoders (bert: bge, all-MiniLM; nomic-bert),
 * EmbeddingGemma (gemma-embedding) and decoders used as embedders (e.g.
 * Qwen3-Embedding: qwen3 with LAST pooling). Each text is its own sequence:
 * the session's context is cleared, the tokens run through the model, and
 * the final hidden states (after the output norm where the model has one)
 * are pooled, as llama.cpp does:
 *   NONE  one vector per token;
 *   MEAN  the average over all tokens, special tokens included;
 *   CLS   the first token's vector; LAST  the last token's.
 * gemma-embedding then applies its dense_2/dense_3 projections. The vectors
 * are raw (as llama.cpp returns them) unless normalize is set (divided by
 * their L2 norm; a zero vector stays zero). Encoders attend over the whole
 * sequence: their sessions process it in one chunk (n_batch = n_ctx), and
 * slm_decode refuses them. A text must fit in the session's context.
 */

enum {
    SLM_POOLING_UNSPECIFIED = -1, /* the model's (ARCH.pooling_type) */
    SLM_POOLING_NONE = 0,
    SLM_POOLING_MEAN = 1,
    SLM_POOLING_CLS = 2,
    SLM_POOLING_LAST = 3
};

/* The model's pooling (ARCH.pooling_type; SLM_POOLING_NONE without it). */
SLM_API int32_t slm_model_pooling(const slm_model *model);
/* Floats per embedding vector (n_embd, or the last dense layer's width). */
SLM_API int32_t slm_model_n_embd_out(const slm_model *model);
/* 1 if the model is an encoder (bidirectional attention): it only embeds. */
SLM_API int slm_model_is_encoder(const slm_model *model);
/* "none", "mean", "cls", "last" -> SLM_POOLING_*; -2 if unknown. */
SLM_API int32_t slm_pooling_from_name(const char *name);
/* Name of a pooling ("mean", ...), NULL if unknown. */
SLM_API const char *slm_pooling_name(int32_t pooling);

typedef struct slm_embed_params {
    int32_t pooling;       /* default SLM_POOLING_UNSPECIFIED: the model's */
    int32_t normalize;     /* default 0; 1: L2-normalize every vector */
    int32_t add_special;   /* default 1: [CLS]/[SEP], BOS/EOS as the model wants */
    int32_t parse_special; /* default 1: special-token text becomes the token
                              (as llama-embedding) */
} slm_embed_params;

SLM_API void slm_embed_params_init(slm_embed_params *params);

/* Embed one sequence of token ids (used as given). out receives
   slm_model_n_embd_out floats, or n of those rows for pooling NONE; cap is
   the number of floats out holds (SLM_ERR_BUFFER if too few). */
SLM_API slm_status slm_embed_tokens(slm_session *session, const int32_t *tokens, int32_t n,
                                    const slm_embed_params *params, float *out, size_t cap, slm_error *err);
/* Embed n_texts texts, each as its own sequence, in order, reusing the
   session. lens[i] is the length of texts[i] in bytes (lens may be NULL for
   NUL-terminated texts). Pooled: out receives n_texts rows of
   slm_model_n_embd_out floats. NONE: the rows of every token of every text,
   one text after the other; n_rows (may be NULL, else n_texts entries)
   receives the rows of each text. SLM_ERR_BUFFER if out (cap floats) is too
   small, SLM_ERR_CONTEXT_FULL if a text has more tokens than the context
   (the message names the text). Memory: slm_embed_tokens allocates
   nothing (the session's plan covers it, also in an arena); slm_embed
   allocates the tokenizer's working memory for each text (about 4 bytes
   per text byte plus its pieces) and gives it back before returning. */
SLM_API slm_status slm_embed(slm_session *session, const char *const *texts, const size_t *lens, int32_t n_texts,
                             const slm_embed_params *params, float *out, size_t cap, int32_t *n_rows,
                             slm_error *err);
/* Cosine similarity of two vectors (sums in double, as llama.cpp): 1 if both
   are zero, 0 if one is. */
SLM_API float slm_cosine(const float *a, const float *b, int32_t n);

/* ------------------------------------------------------------------------ */
/* Quantization: convert a GGUF file's matrices to another type             */
/* ------------------------------------------------------------------------ */

/* How the target type is spread over the tensors:
   PURE  every 2-D weight matrix gets the target type;
   S/M/L llama.cpp's mixes of that name for K-quant targets (Q4_K + M is
   Q4_K_M: output and about half of attn_v / ffn_down in Q6_K, the rest Q4_K). */
enum { SLM_MIX_PURE = 0, SLM_MIX_S = 1, SLM_MIX_M = 2, SLM_MIX_L = 3 };

typedef struct slm_quantize_params {
    int32_t type;       /* target SLM_TYPE_*: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
                           Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS */
    int32_t mix;        /* SLM_MIX_*; S/M/L need Q3_K (S, M, L), Q4_K or Q5_K (S, M) */
    int32_t n_threads;  /* 0 = the default (as for sessions); ignored without OpenMP */
    const slm_allocator *allocator; /* NULL: malloc/free */
    slm_log_fn log;     /* NULL: silent; else one INFO line per tensor, WARN per fallback */
    void *log_user;
} slm_quantize_params;

SLM_API void slm_quantize_params_init(slm_quantize_params *params);

/* Parse a type or mix name as the CLI takes it: "Q4_K", "q4_k_m", "Q8_0",
   "F16", ... Returns SLM_ERR_NOT_FOUND for an unknown name. */
SLM_API slm_status slm_quantize_parse_type(const char *name, int32_t *type, int32_t *mix);

typedef struct slm_quantize_stats {
    int32_t n_tensors;     /* tensors in the file */
    int32_t n_converted;   /* tensors whose type changed */
    int32_t n_fallback;    /* matrices whose row length did not fit the chosen
                              type's block and got a compatible type instead */
    int32_t n_by_type[40]; /* tensors of each type id in the output */
    uint64_t bytes_in, bytes_out; /* tensor data, input and output */
    uint64_t file_in, file_out;   /* file sizes */
} slm_quantize_stats;

/* Read the GGUF file `in` and write `out` with its 2-D weight matrices
   converted to the target type (1-D tensors, norms and a few small tables
   stay as they are; matrices already in the chosen type are copied).
   All metadata is copied; general.file_type and general.quantization_version
   are set. Rows whose length is not a multiple of the block size fall back
   as llama.cpp does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K/
   IQ4_XS -> IQ4_NL, then F16). Any architecture is accepted. `stats` may be
   NULL. `out` is written as slm_file_write writes (a temporary file renamed
   into place; the input itself, by any name, is refused); on failure `out`
   is left as it was. */
SLM_API slm_status slm_quantize_file(const char *in, const char *out, const slm_quantize_params *params,
                                     slm_quantize_stats *stats, slm_error *err);

/* Write `size` bytes to the file `path` (UTF-8) so that no failure loses
   data: a new or regular file (a symbolic link: the file it points to) is
   written to a temporary file in the same directory, flushed, and renamed
   over `path` only when complete; on an error `path` is untouched and the
   temporary file is removed. An existing non-regular file (a device such as
   /dev/null, a FIFO) is written directly and never removed; a directory is
   refused. Errors name the file and the operating system's reason.
   SLM_ERR_UNSUPPORTED in SLM_NO_STDIO builds. */
SLM_API slm_status slm_file_write(const char *path, const void *data, size_t size, slm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* SLM_H */
