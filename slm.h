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
/* Compile-time configuration of this build: the SIMD path ("avx2", "neon",
   "scalar", ...), whether OpenMP is on, and so on, as one short line. */
SLM_API const char *slm_build_info(void);

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
    const slm_allocator *allocator; /* NULL: malloc/free */
    slm_log_fn log;                 /* NULL: silent */
    void *log_user;
} slm_model_params;

SLM_API void slm_model_params_init(slm_model_params *params);

/* Load a GGUF file. `params` may be NULL for the defaults. */
SLM_API slm_status slm_model_load_file(const char *path, const slm_model_params *params,
                                       slm_model **out, slm_error *err);
/* Load from a caller's buffer (an embedded array, flash, a file already in
   memory). The weights are used in place: the buffer must stay valid and
   unchanged until slm_model_free. */
SLM_API slm_status slm_model_load_memory(const void *data, size_t size,
                                         const slm_model_params *params,
                                         slm_model **out, slm_error *err);
SLM_API void slm_model_free(slm_model *model);

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
} slm_model_info;

SLM_API void slm_model_get_info(const slm_model *model, slm_model_info *out);

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
/* Strings: *out points into the model (valid until slm_model_free), NUL-terminated;
   *len (may be NULL) receives the length in bytes (strings may hold NUL bytes). */
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
    int32_t n_threads;  /* 0 = all available; ignored without OpenMP */
    int32_t n_batch;    /* tokens per forward chunk during prefill; 0 = 64 */
    int32_t kv_type;    /* SLM_TYPE_F32 or SLM_TYPE_F16 (default F16) */
    int32_t logits_all; /* 1: keep logits for every token of a decode call */
} slm_session_params;

SLM_API void slm_session_params_init(slm_session_params *params);

/* Bytes a session with these parameters allocates (KV cache, scratch,
   logits), so that a caller can plan memory before creating it. */
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
/* Forget everything from position `pos` on (0 clears the conversation). */
SLM_API slm_status slm_session_rewind(slm_session *session, int32_t pos);
SLM_API void slm_session_set_threads(slm_session *session, int32_t n_threads);
SLM_API const slm_model *slm_session_model(const slm_session *session);

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
    int32_t n_threads;  /* 0 = all available; ignored without OpenMP */
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
   NULL. On failure `out` is removed. */
SLM_API slm_status slm_quantize_file(const char *in, const char *out, const slm_quantize_params *params,
                                     slm_quantize_stats *stats, slm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* SLM_H */
