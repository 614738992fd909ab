/*
 * slm.c - the whole implementation of slm (see slm.h for the API).
 *
 * Read top to bottom. Contents:
 *
 *   1. Configuration and platform detection
 *   2. Status codes, errors, allocation
 *   3. Small utilities (fp16/bf16, hashing)
 *   4. GGUF reader (bounds-checked, from a file, mmap or a memory buffer)
 *   5. Tensor types: block layouts and the traits table
 *   6. Kernels: scalar reference, then AVX2, SSE4.1, NEON, RVV (same signatures)
 *   7. Operators: norms, RoPE, softmax, activations, attention, mat-mul
 *   8. Model: hyperparameters, tensor binding, the generic forward pass
 *   9. Session: KV cache, positions, decode
 *
 * Build: C99. Define SLM_NO_MMAP to read files instead of mapping them.
 * OpenMP (-fopenmp) parallelises the forward pass; without it slm runs on
 * one thread. The SIMD kernels follow the target flags (section 1);
 * define SLM_NO_SIMD for the scalar ones only.
 */

/* ========================================================================== */
/* 1. Configuration and platform detection                                    */
/* ========================================================================== */

#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "slm.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(SLM_NO_MMAP) && (defined(__unix__) || defined(__APPLE__))
#define SLM_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#if defined(_OPENMP)
#include <omp.h>
#define SLM_OPENMP 1
#else
#define SLM_OPENMP 0
#endif

/* Byte order: GGUF is little-endian; the weights are used in place, so slm
   refuses to load weights on a big-endian host (metadata still parses). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define SLM_BIG_ENDIAN 1
#else
#define SLM_BIG_ENDIAN 0
#endif

/* SIMD kernels (section 6) are chosen at compile time from the target's
   macros, i.e. from the compiler flags: -march=haswell (or -mavx2 -mfma
   -mf16c), -msse4.1 (or -march=nehalem and newer), -march=armv8.2-a+dotprod,
   -mfpu=neon-vfpv4, -march=rv64gcv.
   -DSLM_NO_SIMD forces the scalar reference kernels. The SIMD kernels read
   little-endian blocks with vector loads, so big-endian hosts use scalar. */
#if defined(SLM_NO_SIMD) || SLM_BIG_ENDIAN
#define SLM_SIMD_NAME "scalar"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define SLM_AVX2 1
#define SLM_SIMD_NAME "avx2"
#include <immintrin.h>
#elif defined(__SSE4_1__) && defined(__SSSE3__)
#define SLM_SSE4 1
#define SLM_SIMD_NAME "sse4"
#include <immintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define SLM_NEON 1
#if defined(__ARM_FEATURE_DOTPROD)
#define SLM_SIMD_NAME "neon-dotprod"
#else
#define SLM_SIMD_NAME "neon"
#endif
#include <arm_neon.h>
#elif defined(__arm__) && defined(__ARM_NEON)
#define SLM_NEON 1
#define SLM_SIMD_NAME "neon32"
#include <arm_neon.h>
#elif defined(__riscv_v_intrinsic) && __riscv_v_intrinsic >= 12000 && defined(__riscv_v_min_vlen) && \
    __riscv_v_min_vlen >= 128
#define SLM_RVV 1
#define SLM_SIMD_NAME "rvv"
#include <riscv_vector.h>
#else
#define SLM_SIMD_NAME "scalar"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SLM_UNUSED __attribute__((unused))
#define SLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SLM_UNUSED
#define SLM_PRINTF(a, b)
#endif

#define SLM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SLM_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ========================================================================== */
/* 2. Status codes, errors, allocation                                        */
/* ========================================================================== */

const char *slm_status_string(int status) {
    switch (status) {
    case SLM_OK: return "ok";
    case SLM_ERR_INVALID_ARG: return "invalid argument";
    case SLM_ERR_IO: return "i/o error";
    case SLM_ERR_FORMAT: return "format error";
    case SLM_ERR_UNSUPPORTED: return "unsupported";
    case SLM_ERR_NOMEM: return "out of memory";
    case SLM_ERR_CONTEXT_FULL: return "context full";
    case SLM_ERR_NOT_FOUND: return "not found";
    case SLM_ERR_TYPE: return "wrong type";
    case SLM_ERR_BUFFER: return "buffer too small";
    default: return "unknown status";
    }
}

const char *slm_version(void) { return SLM_VERSION_STRING; }

const char *slm_build_info(void) {
    return "simd=" SLM_SIMD_NAME
#if SLM_OPENMP
           " openmp=on"
#else
           " openmp=off"
#endif
#if defined(SLM_HAVE_MMAP)
           " mmap=on"
#else
           " mmap=off"
#endif
        ;
}

/* Record a failure in *err (if given) and return the status. */
static SLM_PRINTF(3, 4) slm_status seterr(slm_error *err, slm_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = st;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}

static void clearerr_(slm_error *err) {
    if (err) {
        err->status = SLM_OK;
        err->message[0] = 0;
    }
}

typedef struct allocator {
    slm_allocator hook;
    int is_default;
} allocator;

static void alloc_init(allocator *a, const slm_allocator *hook) {
    if (hook && hook->alloc && hook->free) {
        a->hook = *hook;
        a->is_default = 0;
    } else {
        memset(&a->hook, 0, sizeof a->hook);
        a->is_default = 1;
    }
}

#define SLM_ALIGN 64

/* All library allocations are 64-byte aligned (SIMD loads, cache lines). */
static void *xalloc(const allocator *a, size_t size) {
    if (a->is_default) {
        if (size > SIZE_MAX - SLM_ALIGN - sizeof(void *)) return NULL;
        unsigned char *raw = (unsigned char *)malloc(size + SLM_ALIGN + sizeof(void *));
        if (!raw) return NULL;
        uintptr_t p = ((uintptr_t)raw + sizeof(void *) + SLM_ALIGN - 1) & ~(uintptr_t)(SLM_ALIGN - 1);
        ((void **)p)[-1] = raw;
        return (void *)p;
    }
    return a->hook.alloc(a->hook.user, size ? size : 1, SLM_ALIGN);
}

static void *xcalloc(const allocator *a, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = xalloc(a, n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

static void xfree(const allocator *a, void *p, size_t size) {
    if (!p) return;
    if (a->is_default) {
        free(((void **)p)[-1]);
        return;
    }
    a->hook.free(a->hook.user, p, size ? size : 1);
}

static char *xstrndup(const allocator *a, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *p = (char *)xalloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ========================================================================== */
/* 3. Small utilities                                                         */
/* ========================================================================== */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE half -> float, exact. */
static inline float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact in float */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* float -> IEEE half, round to nearest even; overflow gives infinity. */
static inline uint16_t f32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0));
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (x < 0x38800000u) {
        /* below 2^-14: the half is subnormal; adding 0.5 aligns the bits so
           the float adder does the round-to-nearest-even for us */
        float a = bits_f32(x) + 0.5f;
        return (uint16_t)(sign | (uint16_t)(f32_bits(a) - 0x3f000000u));
    }
    uint32_t odd = (x >> 13) & 1u;
    x += 0xc8000fffu + odd; /* rebias exponent (-112 << 23) and round */
    return (uint16_t)(sign | (uint16_t)(x >> 13));
}

static inline float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

static inline uint16_t f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

/* Little-endian loads from unaligned memory (block fields, file bytes). */
static inline uint16_t ld_u16(const void *p) {
    const uint8_t *b = (const uint8_t *)p;
    return (uint16_t)(b[0] | (b[1] << 8));
}

static inline uint32_t ld_u32(const void *p) {
    const uint8_t *b = (const uint8_t *)p;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static inline uint64_t ld_u64(const void *p) {
    const uint8_t *b = (const uint8_t *)p;
    return (uint64_t)ld_u32(b) | ((uint64_t)ld_u32(b + 4) << 32);
}

static inline float ld_f16(const void *p) { return fp16_to_f32(ld_u16(p)); }

static inline void st_u16(void *p, uint16_t v) {
    uint8_t *b = (uint8_t *)p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

/* Round half to even for |x| < 2^23 (matches ggml's x86 activation
   quantizer). Done on the bits: independent of the FPU rounding mode and of
   libm, and immune to the compiler fusing the product that feeds it into an
   FMA (-ffp-contract=fast), so quantized activations are the same bytes on
   every target and with every SIMD path. */
static inline int round_even(float x) {
    const uint32_t u = f32_bits(x);
    const int e = (int)((u >> 23) & 0xffu) - 127; /* |x| = m * 2^(e - 23) */
    if (e < -1) return 0;                         /* |x| < 0.5 */
    if (e > 22) return 0;                         /* outside the domain (inf, NaN too) */
    const uint32_t m = (u & 0x7fffffu) | 0x800000u;
    const int sh = 23 - e;
    const uint32_t half = 1u << (sh - 1), rest = m & ((half << 1) - 1);
    uint32_t q = m >> sh;
    q += rest > half || (rest == half && (q & 1u));
    return (u >> 31) ? -(int)q : (int)q;
}

static SLM_PRINTF(4, 5) void fmt_append(char *buf, size_t size, size_t *pos, const char *fmt, ...);

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Open-addressing string -> index map (indices into a caller's array). */
typedef struct strmap {
    int64_t *slots; /* -1 = empty */
    size_t cap;     /* power of two */
} strmap;

static int strmap_init(strmap *m, const allocator *a, size_t n) {
    size_t cap = 16;
    while (cap < n * 2 + 1) cap *= 2;
    m->slots = (int64_t *)xalloc(a, cap * sizeof(int64_t));
    if (!m->slots) return 0;
    for (size_t i = 0; i < cap; i++) m->slots[i] = -1;
    m->cap = cap;
    return 1;
}

static void strmap_free(strmap *m, const allocator *a) {
    xfree(a, m->slots, m->cap * sizeof(int64_t));
    m->slots = NULL;
}

/* Find `key`; keys[] gives the name of each stored index. Returns the index
   or -1; *slot receives the slot where it is or would go. */
static int64_t strmap_find(const strmap *m, const char *const *keys, const size_t *lens,
                           const char *key, size_t len, size_t *slot) {
    size_t i = (size_t)hash_bytes(key, len) & (m->cap - 1);
    for (;;) {
        int64_t v = m->slots[i];
        if (v < 0 || (lens[v] == len && memcmp(keys[v], key, len) == 0)) {
            if (slot) *slot = i;
            return v;
        }
        i = (i + 1) & (m->cap - 1);
    }
}

/* ========================================================================== */
/* 4. GGUF reader                                                             */
/* ========================================================================== */
/*
 * A GGUF file: magic "GGUF", u32 version (2 or 3), u64 tensor count, u64 key
 * count, the key/value pairs, the tensor directory (name, dims, type, offset),
 * padding to `general.alignment` (default 32), then the tensor data.
 * Everything is little-endian. The file is untrusted: every length, count,
 * offset and size is checked against the bytes that are really there before
 * it is used, and arithmetic is checked for overflow.
 */

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DEPTH 4  /* nested arrays deeper than this are refused */
#define GGUF_MAX_DIMS 4

typedef struct gguf_kv {
    char *key;          /* NUL-terminated copy */
    size_t key_len;
    int type;           /* SLM_META_* */
    int arr_type;       /* element type for arrays */
    uint64_t count;     /* array element count (1 for scalars) */
    size_t value_off;   /* file offset of the value (array: of the first element) */
    size_t *elem_off;   /* strings and nested arrays: file offset of each element */
    char **str;         /* strings: NUL-terminated copies (scalar: str[0]) */
} gguf_kv;

typedef struct gguf_tensor {
    char *name;
    size_t name_len;
    int type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t offset;    /* relative to the data section */
    uint64_t nbytes;
} gguf_tensor;

typedef struct gguf_file {
    const uint8_t *data;
    size_t size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    strmap kv_map, tensor_map;
    char **kv_names; size_t *kv_lens;       /* views for strmap */
    char **t_names; size_t *t_lens;
    size_t alignment;
    size_t data_off;    /* start of the tensor data section */
} gguf_file;

typedef struct reader {
    const uint8_t *p;
    size_t size, pos;
    slm_error *err;
    const allocator *a;
} reader;

/* Size facts of every ggml type id we know, supported or not, so that the
   reader can validate any file; `supported` lives in the traits table. */
typedef struct type_size {
    const char *name;
    int blck;   /* elements per block (0 = unknown id) */
    int bytes;  /* bytes per block */
} type_size;

static const type_size TYPE_SIZES[] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},        [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},     [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},  [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},       [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},       [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},      [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};
#define N_TYPE_IDS ((int)(sizeof TYPE_SIZES / sizeof TYPE_SIZES[0]))

static const type_size *type_size_of(int type) {
    if (type < 0 || type >= N_TYPE_IDS || TYPE_SIZES[type].blck == 0) return NULL;
    return &TYPE_SIZES[type];
}

const char *slm_type_name(int type) {
    const type_size *ts = type_size_of(type);
    return ts ? ts->name : NULL;
}

static const char *meta_type_name(int t) {
    static const char *const names[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (t >= 0 && t <= 12) ? names[t] : "?";
}

/* Size in bytes of a fixed-size metadata value type, 0 for string/array. */
static size_t meta_scalar_size(int t) {
    switch (t) {
    case SLM_META_U8: case SLM_META_I8: case SLM_META_BOOL: return 1;
    case SLM_META_U16: case SLM_META_I16: return 2;
    case SLM_META_U32: case SLM_META_I32: case SLM_META_F32: return 4;
    case SLM_META_U64: case SLM_META_I64: case SLM_META_F64: return 8;
    default: return 0;
    }
}

static int rd_need(reader *r, size_t n, const char *what) {
    if (n > r->size - r->pos) {
        seterr(r->err, SLM_ERR_FORMAT, "truncated file: %s at offset %zu needs %zu bytes, %zu left",
               what, r->pos, n, r->size - r->pos);
        return 0;
    }
    return 1;
}

static int rd_u32(reader *r, uint32_t *v, const char *what) {
    if (!rd_need(r, 4, what)) return 0;
    *v = ld_u32(r->p + r->pos);
    r->pos += 4;
    return 1;
}

static int rd_u64(reader *r, uint64_t *v, const char *what) {
    if (!rd_need(r, 8, what)) return 0;
    *v = ld_u64(r->p + r->pos);
    r->pos += 8;
    return 1;
}

/* A GGUF string: u64 length + bytes (not NUL-terminated in the file). */
static int rd_str(reader *r, size_t *off, size_t *len, const char *what) {
    uint64_t n;
    size_t at = r->pos;
    if (!rd_u64(r, &n, what)) return 0;
    if (n > r->size - r->pos) {
        seterr(r->err, SLM_ERR_FORMAT, "%s at offset %zu: string length %llu exceeds the file (%zu bytes left)",
               what, at, (unsigned long long)n, r->size - r->pos);
        return 0;
    }
    *off = r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return 1;
}

/* Skip (validate) one value of type t; depth guards nested arrays. */
static int rd_skip_value(reader *r, int t, int depth, const char *key) {
    size_t sz = meta_scalar_size(t);
    if (sz) {
        if (!rd_need(r, sz, key)) return 0;
        r->pos += sz;
        return 1;
    }
    if (t == SLM_META_STRING) {
        size_t off, len;
        return rd_str(r, &off, &len, key);
    }
    if (t == SLM_META_ARRAY) {
        uint32_t et;
        uint64_t n;
        size_t at = r->pos;
        if (depth >= GGUF_MAX_DEPTH) {
            seterr(r->err, SLM_ERR_FORMAT, "key '%s': arrays nested deeper than %d at offset %zu", key,
                   GGUF_MAX_DEPTH, at);
            return 0;
        }
        if (!rd_u32(r, &et, key) || !rd_u64(r, &n, key)) return 0;
        if (et > 12) {
            seterr(r->err, SLM_ERR_FORMAT, "key '%s': unknown array element type %u at offset %zu", key, et, at);
            return 0;
        }
        size_t esz = meta_scalar_size((int)et);
        if (esz) {
            if (n > (r->size - r->pos) / esz) {
                seterr(r->err, SLM_ERR_FORMAT, "key '%s': array of %llu %s exceeds the file at offset %zu", key,
                       (unsigned long long)n, meta_type_name((int)et), at);
                return 0;
            }
            r->pos += (size_t)n * esz;
            return 1;
        }
        /* strings need >= 8 bytes each, arrays >= 12: a cheap bound first */
        if (n > (r->size - r->pos) / 8) {
            seterr(r->err, SLM_ERR_FORMAT, "key '%s': array count %llu exceeds the file at offset %zu", key,
                   (unsigned long long)n, at);
            return 0;
        }
        for (uint64_t i = 0; i < n; i++)
            if (!rd_skip_value(r, (int)et, depth + 1, key)) return 0;
        return 1;
    }
    seterr(r->err, SLM_ERR_FORMAT, "key '%s': unknown value type %d at offset %zu", key, t, r->pos);
    return 0;
}

static void gguf_free(gguf_file *g, const allocator *a) {
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            gguf_kv *kv = &g->kv[i];
            xfree(a, kv->key, kv->key_len + 1);
            if (kv->str) {
                for (uint64_t j = 0; j < kv->count; j++)
                    if (kv->str[j]) xfree(a, kv->str[j], strlen(kv->str[j]) + 1);
                xfree(a, kv->str, (size_t)kv->count * sizeof(char *));
            }
            xfree(a, kv->elem_off, (size_t)kv->count * sizeof(size_t));
        }
        xfree(a, g->kv, (size_t)g->n_kv * sizeof(gguf_kv));
    }
    if (g->tensors) {
        for (uint64_t i = 0; i < g->n_tensors; i++) xfree(a, g->tensors[i].name, g->tensors[i].name_len + 1);
        xfree(a, g->tensors, (size_t)g->n_tensors * sizeof(gguf_tensor));
    }
    xfree(a, g->kv_names, (size_t)g->n_kv * sizeof(char *));
    xfree(a, g->kv_lens, (size_t)g->n_kv * sizeof(size_t));
    xfree(a, g->t_names, (size_t)g->n_tensors * sizeof(char *));
    xfree(a, g->t_lens, (size_t)g->n_tensors * sizeof(size_t));
    if (g->kv_map.slots) strmap_free(&g->kv_map, a);
    if (g->tensor_map.slots) strmap_free(&g->tensor_map, a);
    memset(g, 0, sizeof *g);
}

/* Copy a string that may contain NUL bytes; the copy is NUL-terminated. The
   true length is kept separately where it matters (vocabulary pieces). */
static char *dup_file_str(reader *r, size_t off, size_t len) {
    char *s = xstrndup(r->a, (const char *)r->p + off, len);
    if (!s) seterr(r->err, SLM_ERR_NOMEM, "out of memory copying a string of %zu bytes", len);
    return s;
}

static int gguf_read_kv(reader *r, gguf_kv *kv) {
    size_t koff, klen;
    size_t at = r->pos;
    uint32_t t;
    if (!rd_str(r, &koff, &klen, "metadata key")) return 0;
    kv->key = dup_file_str(r, koff, klen);
    if (!kv->key) return 0;
    kv->key_len = klen;
    if (!rd_u32(r, &t, kv->key)) return 0;
    if (t > 12) {
        seterr(r->err, SLM_ERR_FORMAT, "key '%s' (offset %zu): unknown value type %u", kv->key, at, t);
        return 0;
    }
    kv->type = (int)t;
    kv->count = 1;
    if (t == SLM_META_STRING) {
        size_t off, len;
        if (!rd_str(r, &off, &len, kv->key)) return 0;
        kv->value_off = off;
        kv->str = (char **)xcalloc(r->a, 1, sizeof(char *));
        if (!kv->str) return seterr(r->err, SLM_ERR_NOMEM, "out of memory"), 0;
        kv->str[0] = dup_file_str(r, off, len);
        return kv->str[0] != NULL;
    }
    if (t != SLM_META_ARRAY) {
        kv->value_off = r->pos;
        return rd_skip_value(r, (int)t, 0, kv->key);
    }
    uint32_t et;
    uint64_t n;
    if (!rd_u32(r, &et, kv->key) || !rd_u64(r, &n, kv->key)) return 0;
    if (et > 12) {
        seterr(r->err, SLM_ERR_FORMAT, "key '%s': unknown array element type %u", kv->key, et);
        return 0;
    }
    kv->arr_type = (int)et;
    kv->value_off = r->pos;
    size_t esz = meta_scalar_size((int)et);
    if (esz) {
        if (n > (r->size - r->pos) / esz) {
            seterr(r->err, SLM_ERR_FORMAT, "key '%s': array of %llu %s exceeds the file (offset %zu)", kv->key,
                   (unsigned long long)n, meta_type_name((int)et), r->pos);
            return 0;
        }
        kv->count = n;
        r->pos += (size_t)n * esz;
        return 1;
    }
    if (n > (r->size - r->pos) / 8) {
        seterr(r->err, SLM_ERR_FORMAT, "key '%s': array count %llu exceeds the file (offset %zu)", kv->key,
               (unsigned long long)n, r->pos);
        return 0;
    }
    kv->count = n;
    kv->elem_off = (size_t *)xalloc(r->a, (size_t)n * sizeof(size_t));
    if (!kv->elem_off) return seterr(r->err, SLM_ERR_NOMEM, "out of memory indexing key '%s'", kv->key), 0;
    if (et == SLM_META_STRING) {
        kv->str = (char **)xcalloc(r->a, (size_t)n, sizeof(char *));
        if (!kv->str) return seterr(r->err, SLM_ERR_NOMEM, "out of memory indexing key '%s'", kv->key), 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        kv->elem_off[i] = r->pos;
        if (et == SLM_META_STRING) {
            size_t off, len;
            if (!rd_str(r, &off, &len, kv->key)) return 0;
            kv->str[i] = dup_file_str(r, off, len);
            if (!kv->str[i]) return 0;
        } else if (!rd_skip_value(r, (int)et, 1, kv->key)) {
            return 0;
        }
    }
    return 1;
}

static int gguf_kv_index(const gguf_file *g, const char *key) {
    if (!g->kv_map.slots) return -1;
    return (int)strmap_find(&g->kv_map, (const char *const *)g->kv_names, g->kv_lens, key, strlen(key), NULL);
}

/* Parse the header, metadata and tensor directory of an in-memory file. */
static slm_status gguf_parse(gguf_file *g, const uint8_t *data, size_t size, const allocator *a,
                             slm_error *err) {
    reader rd = {data, size, 0, err, a};
    reader *r = &rd;
    uint32_t magic;
    memset(g, 0, sizeof *g);
    g->data = data;
    g->size = size;
    if (size < 4 || !rd_u32(r, &magic, "magic")) return seterr(err, SLM_ERR_FORMAT, "not a GGUF file: %zu bytes", size);
    if (magic != GGUF_MAGIC) {
        return seterr(err, SLM_ERR_FORMAT, "not a GGUF file: magic is %02x %02x %02x %02x, expected 'GGUF'", data[0],
                      data[1], data[2], data[3]);
    }
    if (!rd_u32(r, &g->version, "version")) return err ? (slm_status)err->status : SLM_ERR_FORMAT;
    if (g->version == 1) return seterr(err, SLM_ERR_UNSUPPORTED, "GGUF version 1 is not supported (only 2 and 3)");
    if (g->version != 2 && g->version != 3) {
        uint32_t sw = ((g->version & 0xffu) << 24) | ((g->version & 0xff00u) << 8) | ((g->version >> 8) & 0xff00u) |
                      (g->version >> 24);
        if (sw == 2 || sw == 3)
            return seterr(err, SLM_ERR_UNSUPPORTED, "big-endian GGUF file (version %u byte-swapped) is not supported", sw);
        return seterr(err, SLM_ERR_FORMAT, "unknown GGUF version %u", g->version);
    }
    if (!rd_u64(r, &g->n_tensors, "tensor count") || !rd_u64(r, &g->n_kv, "metadata count"))
        return (slm_status)err->status;
    /* each key/value needs >= 12 bytes and each tensor entry >= 24: refuse
       counts that cannot fit before allocating anything for them */
    if (g->n_kv > (size - r->pos) / 12) {
        uint64_t n = g->n_kv;
        g->n_kv = 0;
        return seterr(err, SLM_ERR_FORMAT, "metadata count %llu cannot fit in a file of %zu bytes", (unsigned long long)n, size);
    }
    if (g->n_tensors > (size - r->pos) / 24) {
        uint64_t n = g->n_tensors;
        g->n_tensors = 0;
        g->n_kv = 0;
        return seterr(err, SLM_ERR_FORMAT, "tensor count %llu cannot fit in a file of %zu bytes", (unsigned long long)n, size);
    }
    size_t nkv = (size_t)g->n_kv, nt = (size_t)g->n_tensors;
    g->kv = (gguf_kv *)xcalloc(a, nkv ? nkv : 1, sizeof(gguf_kv));
    g->kv_names = (char **)xcalloc(a, nkv ? nkv : 1, sizeof(char *));
    g->kv_lens = (size_t *)xcalloc(a, nkv ? nkv : 1, sizeof(size_t));
    g->tensors = (gguf_tensor *)xcalloc(a, nt ? nt : 1, sizeof(gguf_tensor));
    g->t_names = (char **)xcalloc(a, nt ? nt : 1, sizeof(char *));
    g->t_lens = (size_t *)xcalloc(a, nt ? nt : 1, sizeof(size_t));
    if (!g->kv || !g->kv_names || !g->kv_lens || !g->tensors || !g->t_names || !g->t_lens ||
        !strmap_init(&g->kv_map, a, nkv) || !strmap_init(&g->tensor_map, a, nt))
        return seterr(err, SLM_ERR_NOMEM, "out of memory for the GGUF directory (%zu keys, %zu tensors)", nkv, nt);

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < nkv; i++) {
        gguf_kv *kv = &g->kv[i];
        if (!gguf_read_kv(r, kv)) {
            /* keep the partial state freeable: counts are what was allocated */
            return err ? (slm_status)err->status : SLM_ERR_FORMAT;
        }
        size_t slot;
        if (strmap_find(&g->kv_map, (const char *const *)g->kv_names, g->kv_lens, kv->key, kv->key_len, &slot) >= 0)
            return seterr(err, SLM_ERR_FORMAT, "duplicate metadata key '%s'", kv->key);
        if (strlen(kv->key) != kv->key_len)
            return seterr(err, SLM_ERR_FORMAT, "metadata key #%zu contains a NUL byte", i);
        g->kv_names[i] = kv->key;
        g->kv_lens[i] = kv->key_len;
        g->kv_map.slots[slot] = (int64_t)i;
        if (strcmp(kv->key, "general.alignment") == 0) {
            if (kv->type != SLM_META_U32)
                return seterr(err, SLM_ERR_FORMAT, "general.alignment has type %s, expected u32", meta_type_name(kv->type));
            uint32_t al = ld_u32(data + kv->value_off);
            if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 16))
                return seterr(err, SLM_ERR_FORMAT, "general.alignment %u is not a power of two <= 65536", al);
            g->alignment = al;
        }
    }

    for (size_t i = 0; i < nt; i++) {
        gguf_tensor *t = &g->tensors[i];
        size_t noff, nlen, at = r->pos;
        uint32_t nd, type;
        if (!rd_str(r, &noff, &nlen, "tensor name")) return (slm_status)err->status;
        t->name = dup_file_str(r, noff, nlen);
        if (!t->name) return SLM_ERR_NOMEM;
        t->name_len = nlen;
        if (nlen == 0 || strlen(t->name) != nlen)
            return seterr(err, SLM_ERR_FORMAT, "tensor #%zu at offset %zu has an empty name or a NUL byte in it", i, at);
        size_t slot;
        if (strmap_find(&g->tensor_map, (const char *const *)g->t_names, g->t_lens, t->name, nlen, &slot) >= 0)
            return seterr(err, SLM_ERR_FORMAT, "duplicate tensor name '%s'", t->name);
        g->t_names[i] = t->name;
        g->t_lens[i] = nlen;
        g->tensor_map.slots[slot] = (int64_t)i;
        if (!rd_u32(r, &nd, t->name)) return (slm_status)err->status;
        if (nd == 0 || nd > GGUF_MAX_DIMS)
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': %u dimensions (1..%d allowed)", t->name, nd, GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        uint64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            if (!rd_u64(r, &v, t->name)) return (slm_status)err->status;
            if (v == 0 || v > (uint64_t)INT64_MAX)
                return seterr(err, SLM_ERR_FORMAT, "tensor '%s': dimension %u is %lld", t->name, d, (long long)v);
            if (nel > (uint64_t)INT64_MAX / v)
                return seterr(err, SLM_ERR_FORMAT, "tensor '%s': element count overflows", t->name);
            nel *= v;
            t->ne[d] = (int64_t)v;
        }
        if (!rd_u32(r, &type, t->name)) return (slm_status)err->status;
        const type_size *ts = type_size_of((int)type);
        if (!ts) return seterr(err, SLM_ERR_UNSUPPORTED, "tensor '%s': unknown ggml type id %u", t->name, type);
        t->type = (int)type;
        if (t->ne[0] % ts->blck != 0)
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': row length %lld is not a multiple of the %s block size %d",
                          t->name, (long long)t->ne[0], ts->name, ts->blck);
        uint64_t blocks = nel / (uint64_t)ts->blck;
        if (blocks > UINT64_MAX / (uint64_t)ts->bytes)
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': byte size overflows", t->name);
        t->nbytes = blocks * (uint64_t)ts->bytes;
        if (!rd_u64(r, &t->offset, t->name)) return (slm_status)err->status;
        if (t->offset % g->alignment != 0)
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': data offset %llu is not a multiple of the alignment %zu",
                          t->name, (unsigned long long)t->offset, g->alignment);
    }

    /* tensor data starts at the next multiple of the alignment */
    size_t end = r->pos;
    size_t pad = (g->alignment - end % g->alignment) % g->alignment;
    if (nt == 0) {
        g->data_off = end + pad <= size ? end + pad : size;
        return SLM_OK;
    }
    if (pad > size - end)
        return seterr(err, SLM_ERR_FORMAT, "truncated file: tensor data section would start at %zu, file has %zu bytes",
                      end + pad, size);
    g->data_off = end + pad;
    uint64_t avail = (uint64_t)(size - g->data_off);
    for (size_t i = 0; i < nt; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return seterr(err, SLM_ERR_FORMAT,
                          "tensor '%s': data [%llu, +%llu) lies outside the file (data section of %llu bytes at offset %zu)",
                          t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                          (unsigned long long)avail, g->data_off);
    }
    /* overlapping tensors mean a corrupt or malicious file: sort a copy of
       the offsets (insertion into an index array, then one pass) */
    size_t *ord = (size_t *)xalloc(a, nt * sizeof(size_t));
    if (!ord) return seterr(err, SLM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nt; i++) ord[i] = i;
    /* shell sort: no recursion, fine for thousands of tensors */
    for (size_t gap = nt / 2; gap > 0; gap /= 2)
        for (size_t i = gap; i < nt; i++) {
            size_t v = ord[i], j = i;
            while (j >= gap && g->tensors[ord[j - gap]].offset > g->tensors[v].offset) {
                ord[j] = ord[j - gap];
                j -= gap;
            }
            ord[j] = v;
        }
    slm_status st = SLM_OK;
    for (size_t i = 1; i < nt; i++) {
        const gguf_tensor *p = &g->tensors[ord[i - 1]], *q = &g->tensors[ord[i]];
        if (p->offset + p->nbytes > q->offset) {
            st = seterr(err, SLM_ERR_FORMAT, "tensors '%s' and '%s' overlap in the file", p->name, q->name);
            break;
        }
    }
    xfree(a, ord, nt * sizeof(size_t));
    return st;
}

/* Typed metadata access (internal; the public slm_meta_* wrap these). */
static const gguf_kv *gguf_get(const gguf_file *g, const char *key) {
    int i = gguf_kv_index(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

static const uint8_t *kv_elem_ptr(const gguf_file *g, const gguf_kv *kv, int64_t elem, int *type) {
    if (kv->type != SLM_META_ARRAY) {
        if (elem > 0) return NULL;
        *type = kv->type;
        return g->data + kv->value_off;
    }
    if (elem < 0 || (uint64_t)elem >= kv->count) return NULL;
    *type = kv->arr_type;
    size_t esz = meta_scalar_size(kv->arr_type);
    if (esz) return g->data + kv->value_off + (size_t)elem * esz;
    return g->data + kv->elem_off[elem];
}

static slm_status kv_int(const gguf_file *g, const gguf_kv *kv, int64_t elem, int64_t *out) {
    int t;
    const uint8_t *p = kv_elem_ptr(g, kv, elem, &t);
    if (!p) return SLM_ERR_INVALID_ARG;
    switch (t) {
    case SLM_META_U8: *out = p[0]; break;
    case SLM_META_I8: *out = (int8_t)p[0]; break;
    case SLM_META_BOOL: *out = p[0] != 0; break;
    case SLM_META_U16: *out = ld_u16(p); break;
    case SLM_META_I16: *out = (int16_t)ld_u16(p); break;
    case SLM_META_U32: *out = ld_u32(p); break;
    case SLM_META_I32: *out = (int32_t)ld_u32(p); break;
    case SLM_META_U64: {
        uint64_t v = ld_u64(p);
        if (v > (uint64_t)INT64_MAX) return SLM_ERR_TYPE;
        *out = (int64_t)v;
        break;
    }
    case SLM_META_I64: *out = (int64_t)ld_u64(p); break;
    default: return SLM_ERR_TYPE;
    }
    return SLM_OK;
}

static slm_status kv_float(const gguf_file *g, const gguf_kv *kv, int64_t elem, double *out) {
    int t;
    const uint8_t *p = kv_elem_ptr(g, kv, elem, &t);
    if (!p) return SLM_ERR_INVALID_ARG;
    if (t == SLM_META_F32) {
        *out = bits_f32(ld_u32(p));
        return SLM_OK;
    }
    if (t == SLM_META_F64) {
        uint64_t u = ld_u64(p);
        double d;
        memcpy(&d, &u, 8);
        *out = d;
        return SLM_OK;
    }
    int64_t i;
    if (kv_int(g, kv, elem, &i) == SLM_OK) { /* integers are accepted where floats are asked */
        *out = (double)i;
        return SLM_OK;
    }
    return SLM_ERR_TYPE;
}

/* ========================================================================== */
/* 5. Tensor types: block layouts and the traits table                        */
/* ========================================================================== */
/*
 * Block layouts, exactly as ggml stores them (all fields little-endian,
 * blocks packed without padding, so every field is read unaligned):
 *
 *   Q4_0  (32 values, 18 bytes): f16 d; u8 qs[16]
 *         x[j] = d * ((qs[j] & 15) - 8), x[j+16] = d * ((qs[j] >> 4) - 8)
 *   Q8_0  (32 values, 34 bytes): f16 d; i8 qs[32];            x[j] = d * qs[j]
 *   F16 / BF16 / F32: plain arrays.
 *
 * Each weight type names the activation format it is multiplied with (its
 * "dot partner", ggml's vec_dot_type): activations are converted to it once
 * per row, then every weight row takes an integer (or half) dot product with
 * it. Doing as ggml does keeps our logits within rounding of llama.cpp's.
 */

#define QK4_0 32
#define QK8_0 32

typedef void (*to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*from_float_fn)(const float *src, void *dst, int64_t n);
/* dot of n values: weights w (one row) with activations a (partner type) */
typedef float (*vec_dot_fn)(int n, const void *w, const void *a);
/* the same dot for 4 activation rows a_rb bytes apart: y[t * ldy], t < 4
   (optional, per type: section 6f; each result equals vec_dot's bits) */
typedef void (*vec_dot4_fn)(int n, const void *w, const void *a, size_t a_rb, float *y, int64_t ldy);

typedef struct type_traits {
    int dot_type;           /* activation format for vec_dot; -1 if unsupported */
    to_float_fn to_float;
    from_float_fn from_float; /* quantize (weights or activations) */
    vec_dot_fn vec_dot;
} type_traits;

/* forward declarations of the kernels (section 6) */
static void f32_to_float(const void *src, float *dst, int64_t n);
static void f32_from_float(const float *src, void *dst, int64_t n);
static float dot_f32(int n, const void *w, const void *a);
static void f16_to_float(const void *src, float *dst, int64_t n);
static void f16_from_float(const float *src, void *dst, int64_t n);
static float dot_f16(int n, const void *w, const void *a);
static void bf16_to_float(const void *src, float *dst, int64_t n);
static void bf16_from_float(const float *src, void *dst, int64_t n);
static float dot_bf16(int n, const void *w, const void *a);
static void q8_0_to_float(const void *src, float *dst, int64_t n);
static void q8_0_from_float(const float *src, void *dst, int64_t n);
static float dot_q8_0(int n, const void *w, const void *a);
static void q4_0_to_float(const void *src, float *dst, int64_t n);
static void q4_0_from_float(const float *src, void *dst, int64_t n);
static float dot_q4_0(int n, const void *w, const void *a);

static const type_traits TRAITS[N_TYPE_IDS] = {
    [SLM_TYPE_F32] = {SLM_TYPE_F32, f32_to_float, f32_from_float, dot_f32},
    [SLM_TYPE_F16] = {SLM_TYPE_F16, f16_to_float, f16_from_float, dot_f16},
    [SLM_TYPE_BF16] = {SLM_TYPE_BF16, bf16_to_float, bf16_from_float, dot_bf16},
    [SLM_TYPE_Q8_0] = {SLM_TYPE_Q8_0, q8_0_to_float, q8_0_from_float, dot_q8_0},
    [SLM_TYPE_Q4_0] = {SLM_TYPE_Q8_0, q4_0_to_float, q4_0_from_float, dot_q4_0},
};

static const type_traits *traits_of(int type) {
    if (type < 0 || type >= N_TYPE_IDS || !TRAITS[type].vec_dot) return NULL;
    return &TRAITS[type];
}

int slm_type_supported(int type) { return traits_of(type) != NULL; }

/* Bytes of one row of n values of `type` (n a multiple of the block size). */
static size_t row_bytes(int type, int64_t n) {
    const type_size *ts = type_size_of(type);
    return (size_t)(n / ts->blck) * (size_t)ts->bytes;
}

/* ========================================================================== */
/* 6. Kernels                                                                 */
/* ========================================================================== */
/*
 * 6a. Scalar reference: written to be obviously correct; named *_ref.
 * 6b-6e. One subsection per instruction set (AVX2, SSE4.1, NEON, RVV),
 *     compiled only for that target (section 1 picks it). Each kernel has
 *     exactly the signature of its reference and is tested against it.
 * 6f. The kernels TRAITS points at: for each, the SIMD version this target
 *     has, else the reference. A new type adds its *_ref kernels to 6a and,
 *     when it gets SIMD versions, one K_* line per ISA and one wrapper in 6f
 *     (plus a case in vec_dot4_of for a 4-token kernel).
 *
 * Rules every SIMD kernel keeps: the activation quantizer and the f16/bf16
 * conversions give the same bits as the reference (round half to even,
 * same scale arithmetic), so a model's results do not depend on the ISA
 * beyond the summation order of the dot products. Activations quantized to
 * Q8_0 lie in [-127, 127] (never -128), which the int8 kernels rely on.
 */

static void f32_to_float(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }
static void f32_from_float(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

/* Accumulations that ggml does in float are done in double here, so the
   reference is the more exact of the two. The *_ref kernels are SLM_UNUSED:
   on SIMD targets only the tests and the benchmark call them. */
static SLM_UNUSED float dot_f32_ref(int n, const void *w, const void *a) {
    const float *x = (const float *)w, *y = (const float *)a;
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * y[i];
    return (float)s;
}

static SLM_UNUSED void f16_to_float_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    for (int64_t i = 0; i < n; i++) dst[i] = ld_f16(p + 2 * i);
}

static SLM_UNUSED void f16_from_float_ref(const float *src, void *dst, int64_t n) {
    uint8_t *p = (uint8_t *)dst;
    for (int64_t i = 0; i < n; i++) st_u16(p + 2 * i, f32_to_fp16(src[i]));
}

static SLM_UNUSED float dot_f16_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)ld_f16(x + 2 * i) * ld_f16(y + 2 * i);
    return (float)s;
}

static SLM_UNUSED void bf16_to_float_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(ld_u16(p + 2 * i));
}

static SLM_UNUSED void bf16_from_float_ref(const float *src, void *dst, int64_t n) {
    uint8_t *p = (uint8_t *)dst;
    for (int64_t i = 0; i < n; i++) st_u16(p + 2 * i, f32_to_bf16(src[i]));
}

static SLM_UNUSED float dot_bf16_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)bf16_to_f32(ld_u16(x + 2 * i)) * bf16_to_f32(ld_u16(y + 2 * i));
    return (float)s;
}

/* Q8_0 */
static void q8_0_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QK8_0; i++, b += 34) {
        float d = ld_f16(b);
        for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = d * (float)(int8_t)b[2 + j];
    }
}

/* Also the activation quantizer of every Q8_0-partnered type: scale
   amax/127, values rounded half-to-even (as ggml's x86 path does, so that
   results agree with llama.cpp and are the same on every platform). Inputs
   are finite (NaN or infinity give unspecified bytes). */
static SLM_UNUSED void q8_0_from_float_ref(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK8_0; i++, b += 34, src += QK8_0) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = SLM_MAX(amax, fabsf(src[j]));
        /* below 1e-30 the fp16 scale is 0 anyway; 127/amax could overflow */
        float d = amax / 127.0f, id = amax > 1e-30f ? 127.0f / amax : 0.0f;
        st_u16(b, f32_to_fp16(d));
        for (int j = 0; j < QK8_0; j++) b[2 + j] = (uint8_t)(int8_t)round_even(src[j] * id);
    }
}

static SLM_UNUSED float dot_q8_0_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        int32_t isum = 0;
        for (int j = 0; j < QK8_0; j++) isum += (int8_t)x[2 + j] * (int8_t)y[2 + j];
        s += (float)isum * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

/* Q4_0 */
static void q4_0_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QK4_0; i++, b += 18) {
        float d = ld_f16(b);
        for (int j = 0; j < 16; j++) {
            dst[i * 32 + j] = d * (float)((b[2 + j] & 15) - 8);
            dst[i * 32 + j + 16] = d * (float)((b[2 + j] >> 4) - 8);
        }
    }
}

/* Weight quantizer, as ggml's reference: the scale maps the value of
   largest magnitude to -8, so that sign gets the extra level. */
static void q4_0_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK4_0; i++, b += 18, src += QK4_0) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK4_0; j++)
            if (fabsf(src[j]) > amax) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        st_u16(b, f32_to_fp16(d));
        for (int j = 0; j < 16; j++) {
            int q0 = (int)(src[j] * id + 8.5f), q1 = (int)(src[j + 16] * id + 8.5f);
            q0 = SLM_MIN(15, SLM_MAX(0, q0));
            q1 = SLM_MIN(15, SLM_MAX(0, q1));
            b[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static SLM_UNUSED float dot_q4_0_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += ((x[2 + j] & 15) - 8) * (int8_t)y[2 + j];
            isum += ((x[2 + j] >> 4) - 8) * (int8_t)y[2 + j + 16];
        }
        s += (float)isum * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

/* -------------------------------------------------------------------------- */
/* 6b. x86-64 AVX2 (+FMA, F16C)                                               */
/* -------------------------------------------------------------------------- */
#ifdef SLM_AVX2

static inline float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float h2f_avx2(const uint8_t *p) { return _cvtsh_ss(ld_u16(p)); }

/* 32 int8 products summed in 8 lanes, as floats. maddubs wants one unsigned
   operand: |x| and y*sign(x) have the same products (y is never -128). */
static inline __m256 i8dot_avx2(__m256i x, __m256i y) {
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* 16 bytes of Q4_0 nibbles -> 32 int8 in [-8, 7], in value order */
static inline __m256i q4_unpack_avx2(const uint8_t *q) {
    const __m128i t = _mm_loadu_si128((const __m128i *)q);
    const __m256i v = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(15)), _mm256_set1_epi8(8));
}

static float dot_f32_avx2(int n, const void *w, const void *a) {
    const float *x = (const float *)w, *y = (const float *)a;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    float s = hsum_avx2(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

static void f16_to_float_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    for (; i < n; i++) dst[i] = ld_f16(p + 2 * i);
}

/* the hardware rounds to nearest even, like f32_to_fp16 (NaNs stay NaNs) */
static void f16_from_float_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *p = (uint8_t *)dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(p + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) st_u16(p + 2 * i, f32_to_fp16(src[i]));
}

static float dot_f16_avx2(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
#define LDH(p, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 2 * (i))))
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(LDH(x, i), LDH(y, i), s0);
        s1 = _mm256_fmadd_ps(LDH(x, i + 8), LDH(y, i + 8), s1);
        s2 = _mm256_fmadd_ps(LDH(x, i + 16), LDH(y, i + 16), s2);
        s3 = _mm256_fmadd_ps(LDH(x, i + 24), LDH(y, i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(LDH(x, i), LDH(y, i), s0);
#undef LDH
    float s = hsum_avx2(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += ld_f16(x + 2 * i) * ld_f16(y + 2 * i);
    return s;
}

static inline __m256 ld_bf16_avx2(const uint8_t *p) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static void bf16_to_float_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld_bf16_avx2(p + 2 * i));
    for (; i < n; i++) dst[i] = bf16_to_f32(ld_u16(p + 2 * i));
}

/* f32_to_bf16 on 8 lanes: round to nearest even on the bits, NaN quieted */
static void bf16_from_float_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *p = (uint8_t *)dst;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i abs = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i x = _mm256_castps_si256(_mm256_loadu_ps(src + i));
        const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(bias, odd)), 16);
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs), inf);
        r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(64)), nan);
        r = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xd8);
        _mm_storeu_si128((__m128i *)(p + 2 * i), _mm256_castsi256_si128(r));
    }
    for (; i < n; i++) st_u16(p + 2 * i, f32_to_bf16(src[i]));
}

static float dot_bf16_avx2(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(ld_bf16_avx2(x + 2 * i), ld_bf16_avx2(y + 2 * i), s0);
        s1 = _mm256_fmadd_ps(ld_bf16_avx2(x + 2 * i + 16), ld_bf16_avx2(y + 2 * i + 16), s1);
        s2 = _mm256_fmadd_ps(ld_bf16_avx2(x + 2 * i + 32), ld_bf16_avx2(y + 2 * i + 32), s2);
        s3 = _mm256_fmadd_ps(ld_bf16_avx2(x + 2 * i + 48), ld_bf16_avx2(y + 2 * i + 48), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(ld_bf16_avx2(x + 2 * i), ld_bf16_avx2(y + 2 * i), s0);
    float s = hsum_avx2(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += bf16_to_f32(ld_u16(x + 2 * i)) * bf16_to_f32(ld_u16(y + 2 * i));
    return s;
}

/* Same arithmetic as q8_0_from_float_ref: the scale and its inverse are
   computed by the same scalar divisions, the products rounded to nearest
   even by the rounding instruction, so the bytes are identical. */
static void q8_0_from_float_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < n / QK8_0; i++, b += 34, src += QK8_0) {
        __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
        __m256 v2 = _mm256_loadu_ps(src + 16), v3 = _mm256_loadu_ps(src + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f, id = amax > 1e-30f ? 127.0f / amax : 0.0f;
        st_u16(b, f32_to_fp16(d));
        const __m256 mul = _mm256_set1_ps(id);
#define RND(v) _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
        __m256i i0 = _mm256_packs_epi32(RND(v0), RND(v1)), i2 = _mm256_packs_epi32(RND(v2), RND(v3));
#undef RND
        /* the packs work per 128-bit lane: put the 4-byte groups back in order */
        i0 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i0, i2), perm);
        _mm256_storeu_si256((__m256i *)(b + 2), i0);
    }
}

/* One accumulator per token, blocks in order: dot and dot4 give the same
   bits, so results do not depend on how tokens are batched. */
static float dot_q8_0_avx2(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        const __m256 p = i8dot_avx2(_mm256_loadu_si256((const __m256i *)(x + 2)), _mm256_loadu_si256((const __m256i *)(y + 2)));
        s = _mm256_fmadd_ps(_mm256_set1_ps(h2f_avx2(x) * h2f_avx2(y)), p, s);
    }
    return hsum_avx2(s);
}

/* One token's step of the 4-token kernels: the weight block's |q| (aq), q
   and scale dx are prepared once for the 4 tokens; same arithmetic as the
   1-token kernels. */
static inline __m256 dot4_step_avx2(__m256 s, __m256i aq, __m256i q, float dx, const uint8_t *yb) {
    const __m256i p16 = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(yb + 2)), q));
    const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
    return _mm256_fmadd_ps(_mm256_set1_ps(dx * h2f_avx2(yb)), p, s);
}

static void dot4_q8_0_avx2(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x + 2)), aq = _mm256_sign_epi8(q, q);
        const float dx = h2f_avx2(x);
        s0 = dot4_step_avx2(s0, aq, q, dx, y);
        s1 = dot4_step_avx2(s1, aq, q, dx, y + a_rb);
        s2 = dot4_step_avx2(s2, aq, q, dx, y + 2 * a_rb);
        s3 = dot4_step_avx2(s3, aq, q, dx, y + 3 * a_rb);
    }
    yo[0] = hsum_avx2(s0), yo[ldy] = hsum_avx2(s1), yo[2 * ldy] = hsum_avx2(s2), yo[3 * ldy] = hsum_avx2(s3);
}

static float dot_q4_0_avx2(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        const __m256 p = i8dot_avx2(q4_unpack_avx2(x + 2), _mm256_loadu_si256((const __m256i *)(y + 2)));
        s = _mm256_fmadd_ps(_mm256_set1_ps(h2f_avx2(x) * h2f_avx2(y)), p, s);
    }
    return hsum_avx2(s);
}

static void dot4_q4_0_avx2(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        const __m256i q = q4_unpack_avx2(x + 2), aq = _mm256_sign_epi8(q, q);
        const float dx = h2f_avx2(x);
        s0 = dot4_step_avx2(s0, aq, q, dx, y);
        s1 = dot4_step_avx2(s1, aq, q, dx, y + a_rb);
        s2 = dot4_step_avx2(s2, aq, q, dx, y + 2 * a_rb);
        s3 = dot4_step_avx2(s3, aq, q, dx, y + 3 * a_rb);
    }
    yo[0] = hsum_avx2(s0), yo[ldy] = hsum_avx2(s1), yo[2 * ldy] = hsum_avx2(s2), yo[3 * ldy] = hsum_avx2(s3);
}

#define K_DOT_F32 dot_f32_avx2
#define K_F16_TO_FLOAT f16_to_float_avx2
#define K_F16_FROM_FLOAT f16_from_float_avx2
#define K_DOT_F16 dot_f16_avx2
#define K_BF16_TO_FLOAT bf16_to_float_avx2
#define K_BF16_FROM_FLOAT bf16_from_float_avx2
#define K_DOT_BF16 dot_bf16_avx2
#define K_Q8_0_FROM_FLOAT q8_0_from_float_avx2
#define K_DOT_Q8_0 dot_q8_0_avx2
#define K_DOT_Q4_0 dot_q4_0_avx2
#define K_DOT4_Q8_0 dot4_q8_0_avx2
#define K_DOT4_Q4_0 dot4_q4_0_avx2

#endif /* SLM_AVX2 */

/* -------------------------------------------------------------------------- */
/* 6c. x86 SSE4.1 (+SSSE3): x86-64 machines without AVX2 (Atom, Celeron)      */
/* -------------------------------------------------------------------------- */
/* The AVX2 kernels at half width, without FMA; without F16C the f16
   conversions are done with integer operations, as f32_to_fp16 does. */
#ifdef SLM_SSE4

static inline float hsum_sse(__m128 v) {
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}

/* 32 int8 products (x0|x1 against y0|y1) summed in 4 lanes, as floats;
   maddubs wants one unsigned operand (see i8dot_avx2) */
static inline __m128 i8dot_sse(__m128i x0, __m128i x1, __m128i y0, __m128i y1) {
    const __m128i one = _mm_set1_epi16(1);
    const __m128i p0 = _mm_madd_epi16(_mm_maddubs_epi16(_mm_sign_epi8(x0, x0), _mm_sign_epi8(y0, x0)), one);
    const __m128i p1 = _mm_madd_epi16(_mm_maddubs_epi16(_mm_sign_epi8(x1, x1), _mm_sign_epi8(y1, x1)), one);
    return _mm_cvtepi32_ps(_mm_add_epi32(p0, p1));
}

static inline void q4_unpack_sse(const uint8_t *q, __m128i *lo, __m128i *hi) {
    const __m128i v = _mm_loadu_si128((const __m128i *)q), m = _mm_set1_epi8(15), e = _mm_set1_epi8(8);
    *lo = _mm_sub_epi8(_mm_and_si128(v, m), e);
    *hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m), e);
}

static float dot_f32_sse(int n, const void *w, const void *a) {
    const float *x = (const float *)w, *y = (const float *)a;
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i)));
        s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_loadu_ps(x + i + 4), _mm_loadu_ps(y + i + 4)));
        s2 = _mm_add_ps(s2, _mm_mul_ps(_mm_loadu_ps(x + i + 8), _mm_loadu_ps(y + i + 8)));
        s3 = _mm_add_ps(s3, _mm_mul_ps(_mm_loadu_ps(x + i + 12), _mm_loadu_ps(y + i + 12)));
    }
    for (; i + 4 <= n; i += 4) s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i)));
    float s = hsum_sse(_mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* fp16_to_f32 on 4 lanes (no F16C): the same cases, merged */
static inline __m128 ld_f16_sse(const uint8_t *p) {
    const __m128i h = _mm_unpacklo_epi16(_mm_loadl_epi64((const __m128i *)p), _mm_setzero_si128());
    const __m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
    const __m128i em = _mm_and_si128(h, _mm_set1_epi32(0x7fff));
    __m128i r = _mm_add_epi32(_mm_slli_epi32(em, 13), _mm_set1_epi32(112 << 23));
    const __m128i infnan = _mm_or_si128(_mm_slli_epi32(em, 13), _mm_set1_epi32(0x7f800000));
    r = _mm_blendv_epi8(r, infnan, _mm_cmpgt_epi32(em, _mm_set1_epi32(0x7bff)));
    /* zero and subnormal: man * 2^-24 is exact in float */
    const __m128 sub = _mm_mul_ps(_mm_cvtepi32_ps(em), _mm_set1_ps(1.0f / 16777216.0f));
    r = _mm_blendv_epi8(r, _mm_castps_si128(sub), _mm_cmplt_epi32(em, _mm_set1_epi32(0x400)));
    return _mm_castsi128_ps(_mm_or_si128(r, sign));
}

/* f32_to_fp16 on 4 lanes, stored as 4 halves */
static inline void st_f16_sse(uint8_t *p, __m128 f) {
    const __m128i x = _mm_castps_si128(f);
    const __m128i sign = _mm_and_si128(_mm_srli_epi32(x, 16), _mm_set1_epi32(0x8000));
    const __m128i ax = _mm_and_si128(x, _mm_set1_epi32(0x7fffffff));
    const __m128i odd = _mm_and_si128(_mm_srli_epi32(ax, 13), _mm_set1_epi32(1));
    __m128i r = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(ax, _mm_set1_epi32((int)0xc8000fffu)), odd), 13);
    const __m128 a = _mm_add_ps(_mm_castsi128_ps(ax), _mm_set1_ps(0.5f));
    const __m128i sub = _mm_sub_epi32(_mm_castps_si128(a), _mm_set1_epi32(0x3f000000));
    r = _mm_blendv_epi8(r, sub, _mm_cmplt_epi32(ax, _mm_set1_epi32(0x38800000)));
    r = _mm_blendv_epi8(r, _mm_set1_epi32(0x7c00), _mm_cmpgt_epi32(ax, _mm_set1_epi32(0x477fefff)));
    r = _mm_blendv_epi8(r, _mm_set1_epi32(0x7e00), _mm_cmpgt_epi32(ax, _mm_set1_epi32(0x7f800000)));
    r = _mm_or_si128(r, sign);
    _mm_storel_epi64((__m128i *)p, _mm_packus_epi32(r, r));
}

static void f16_to_float_sse(const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(dst + i, ld_f16_sse(p + 2 * i));
    for (; i < n; i++) dst[i] = ld_f16(p + 2 * i);
}

static void f16_from_float_sse(const float *src, void *dst, int64_t n) {
    uint8_t *p = (uint8_t *)dst;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) st_f16_sse(p + 2 * i, _mm_loadu_ps(src + i));
    for (; i < n; i++) st_u16(p + 2 * i, f32_to_fp16(src[i]));
}

static float dot_f16_sse(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m128 s0 = _mm_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = _mm_add_ps(s0, _mm_mul_ps(ld_f16_sse(x + 2 * i), ld_f16_sse(y + 2 * i)));
        s1 = _mm_add_ps(s1, _mm_mul_ps(ld_f16_sse(x + 2 * i + 8), ld_f16_sse(y + 2 * i + 8)));
    }
    for (; i + 4 <= n; i += 4) s0 = _mm_add_ps(s0, _mm_mul_ps(ld_f16_sse(x + 2 * i), ld_f16_sse(y + 2 * i)));
    float s = hsum_sse(_mm_add_ps(s0, s1));
    for (; i < n; i++) s += ld_f16(x + 2 * i) * ld_f16(y + 2 * i);
    return s;
}

static inline __m128 ld_bf16_sse(const uint8_t *p) {
    return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), _mm_loadl_epi64((const __m128i *)p)));
}

static void bf16_to_float_sse(const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(dst + i, ld_bf16_sse(p + 2 * i));
    for (; i < n; i++) dst[i] = bf16_to_f32(ld_u16(p + 2 * i));
}

/* f32_to_bf16 on 4 lanes: round to nearest even on the bits, NaN quieted */
static void bf16_from_float_sse(const float *src, void *dst, int64_t n) {
    uint8_t *p = (uint8_t *)dst;
    const __m128i one = _mm_set1_epi32(1), bias = _mm_set1_epi32(0x7fff);
    const __m128i abs = _mm_set1_epi32(0x7fffffff), inf = _mm_set1_epi32(0x7f800000);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m128i x = _mm_castps_si128(_mm_loadu_ps(src + i));
        const __m128i odd = _mm_and_si128(_mm_srli_epi32(x, 16), one);
        __m128i r = _mm_srli_epi32(_mm_add_epi32(x, _mm_add_epi32(bias, odd)), 16);
        const __m128i nan = _mm_cmpgt_epi32(_mm_and_si128(x, abs), inf);
        r = _mm_blendv_epi8(r, _mm_or_si128(_mm_srli_epi32(x, 16), _mm_set1_epi32(64)), nan);
        _mm_storel_epi64((__m128i *)(p + 2 * i), _mm_packus_epi32(r, r));
    }
    for (; i < n; i++) st_u16(p + 2 * i, f32_to_bf16(src[i]));
}

static float dot_bf16_sse(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm_add_ps(s0, _mm_mul_ps(ld_bf16_sse(x + 2 * i), ld_bf16_sse(y + 2 * i)));
        s1 = _mm_add_ps(s1, _mm_mul_ps(ld_bf16_sse(x + 2 * i + 8), ld_bf16_sse(y + 2 * i + 8)));
        s2 = _mm_add_ps(s2, _mm_mul_ps(ld_bf16_sse(x + 2 * i + 16), ld_bf16_sse(y + 2 * i + 16)));
        s3 = _mm_add_ps(s3, _mm_mul_ps(ld_bf16_sse(x + 2 * i + 24), ld_bf16_sse(y + 2 * i + 24)));
    }
    for (; i + 4 <= n; i += 4) s0 = _mm_add_ps(s0, _mm_mul_ps(ld_bf16_sse(x + 2 * i), ld_bf16_sse(y + 2 * i)));
    float s = hsum_sse(_mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
    for (; i < n; i++) s += bf16_to_f32(ld_u16(x + 2 * i)) * bf16_to_f32(ld_u16(y + 2 * i));
    return s;
}

/* Same arithmetic as q8_0_from_float_ref (see q8_0_from_float_avx2). */
static void q8_0_from_float_sse(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    const __m128 sign = _mm_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++, b += 34, src += QK8_0) {
        __m128 v[8], m = _mm_setzero_ps();
        for (int j = 0; j < 8; j++) v[j] = _mm_loadu_ps(src + 4 * j), m = _mm_max_ps(m, _mm_andnot_ps(sign, v[j]));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        const float d = amax / 127.0f, id = amax > 1e-30f ? 127.0f / amax : 0.0f;
        st_u16(b, f32_to_fp16(d));
        const __m128 mul = _mm_set1_ps(id);
        __m128i q[8];
        for (int j = 0; j < 8; j++)
            q[j] = _mm_cvtps_epi32(_mm_round_ps(_mm_mul_ps(v[j], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m128i lo = _mm_packs_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
        const __m128i hi = _mm_packs_epi16(_mm_packs_epi32(q[4], q[5]), _mm_packs_epi32(q[6], q[7]));
        _mm_storeu_si128((__m128i *)(b + 2), lo);
        _mm_storeu_si128((__m128i *)(b + 18), hi);
    }
}

/* One accumulator per token, blocks in order (see dot_q8_0_avx2). */
static float dot_q8_0_sse(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m128 s = _mm_setzero_ps();
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        const __m128 p = i8dot_sse(_mm_loadu_si128((const __m128i *)(x + 2)), _mm_loadu_si128((const __m128i *)(x + 18)),
                                   _mm_loadu_si128((const __m128i *)(y + 2)), _mm_loadu_si128((const __m128i *)(y + 18)));
        s = _mm_add_ps(s, _mm_mul_ps(_mm_set1_ps(ld_f16(x) * ld_f16(y)), p));
    }
    return hsum_sse(s);
}

static float dot_q4_0_sse(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m128 s = _mm_setzero_ps();
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        __m128i lo, hi;
        q4_unpack_sse(x + 2, &lo, &hi);
        const __m128 p = i8dot_sse(lo, hi, _mm_loadu_si128((const __m128i *)(y + 2)), _mm_loadu_si128((const __m128i *)(y + 18)));
        s = _mm_add_ps(s, _mm_mul_ps(_mm_set1_ps(ld_f16(x) * ld_f16(y)), p));
    }
    return hsum_sse(s);
}

/* One token's step of the 4-token kernels (see dot4_step_avx2). */
static inline __m128 dot4_step_sse(__m128 s, __m128i x0, __m128i x1, float dx, const uint8_t *yb) {
    const __m128 p = i8dot_sse(x0, x1, _mm_loadu_si128((const __m128i *)(yb + 2)), _mm_loadu_si128((const __m128i *)(yb + 18)));
    return _mm_add_ps(s, _mm_mul_ps(_mm_set1_ps(dx * ld_f16(yb)), p));
}

static void dot4_q8_0_sse(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m128 s[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        const __m128i x0 = _mm_loadu_si128((const __m128i *)(x + 2)), x1 = _mm_loadu_si128((const __m128i *)(x + 18));
        const float dx = ld_f16(x);
        s[0] = dot4_step_sse(s[0], x0, x1, dx, y);
        s[1] = dot4_step_sse(s[1], x0, x1, dx, y + a_rb);
        s[2] = dot4_step_sse(s[2], x0, x1, dx, y + 2 * a_rb);
        s[3] = dot4_step_sse(s[3], x0, x1, dx, y + 3 * a_rb);
    }
    for (int k = 0; k < 4; k++) yo[k * ldy] = hsum_sse(s[k]);
}

static void dot4_q4_0_sse(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m128 s[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        __m128i x0, x1;
        q4_unpack_sse(x + 2, &x0, &x1);
        const float dx = ld_f16(x);
        s[0] = dot4_step_sse(s[0], x0, x1, dx, y);
        s[1] = dot4_step_sse(s[1], x0, x1, dx, y + a_rb);
        s[2] = dot4_step_sse(s[2], x0, x1, dx, y + 2 * a_rb);
        s[3] = dot4_step_sse(s[3], x0, x1, dx, y + 3 * a_rb);
    }
    for (int k = 0; k < 4; k++) yo[k * ldy] = hsum_sse(s[k]);
}

#define K_DOT_F32 dot_f32_sse
#define K_F16_TO_FLOAT f16_to_float_sse
#define K_F16_FROM_FLOAT f16_from_float_sse
#define K_DOT_F16 dot_f16_sse
#define K_BF16_TO_FLOAT bf16_to_float_sse
#define K_BF16_FROM_FLOAT bf16_from_float_sse
#define K_DOT_BF16 dot_bf16_sse
#define K_Q8_0_FROM_FLOAT q8_0_from_float_sse
#define K_DOT_Q8_0 dot_q8_0_sse
#define K_DOT_Q4_0 dot_q4_0_sse
#define K_DOT4_Q8_0 dot4_q8_0_sse
#define K_DOT4_Q4_0 dot4_q4_0_sse

#endif /* SLM_SSE4 */

/* -------------------------------------------------------------------------- */
/* 6d. ARM NEON: aarch64 (with SDOT when built with +dotprod) and ARMv7       */
/* -------------------------------------------------------------------------- */
/* One code path; the few helpers below hide what AArch32 lacks (across-
   vector adds, rounding conversion, fused multiply-add without VFPv4). On
   ARMv7 the f16 kernels need -mfp16-format=ieee with GCC (half types). */
#ifdef SLM_NEON

#if defined(__aarch64__) || defined(__ARM_FP16_FORMAT_IEEE)
#define SLM_NEON_F16 1
static inline float h2f_neon(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, 2);
    return (float)h;
}
#else
static inline float h2f_neon(const uint8_t *p) { return ld_f16(p); }
#endif

#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
#define FMA_NEON(acc, a, b) vfmaq_f32(acc, a, b)
#else
#define FMA_NEON(acc, a, b) vmlaq_f32(acc, a, b)
#endif

static inline float hsum_neon(float32x4_t v) {
#if defined(__aarch64__)
    return vaddvq_f32(v);
#else
    const float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
#endif
}

static inline float hmax_neon(float32x4_t v) {
#if defined(__aarch64__)
    return vmaxvq_f32(v);
#else
    const float32x2_t m = vmax_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpmax_f32(m, m), 0);
#endif
}

/* round half to even, as round_even() */
static inline int32x4_t round_even_neon(float32x4_t p) {
#if defined(__aarch64__)
    return vcvtnq_s32_f32(p);
#else
    /* ARMv7 has no rounding conversion: round_even() on the bits, 4 lanes */
    const uint32x4_t u = vreinterpretq_u32_f32(p);
    const int32x4_t e = vreinterpretq_s32_u32(vandq_u32(vshrq_n_u32(u, 23), vdupq_n_u32(255)));
    const int32x4_t sh = vminq_s32(vsubq_s32(vdupq_n_s32(150), e), vdupq_n_s32(31)); /* >= 1 for |p| < 2^23 */
    const uint32x4_t m = vorrq_u32(vandq_u32(u, vdupq_n_u32(0x7fffff)), vdupq_n_u32(0x800000));
    const uint32x4_t q = vshlq_u32(m, vnegq_s32(sh));
    const uint32x4_t half = vshlq_u32(vdupq_n_u32(1), vsubq_s32(sh, vdupq_n_s32(1)));
    const uint32x4_t rest = vandq_u32(m, vsubq_u32(vshlq_n_u32(half, 1), vdupq_n_u32(1)));
    const uint32x4_t up = vorrq_u32(vcgtq_u32(rest, half), vandq_u32(vceqq_u32(rest, half), vtstq_u32(q, vdupq_n_u32(1))));
    const int32x4_t r = vreinterpretq_s32_u32(vsubq_u32(q, up)); /* up is 0 or -1 */
    const int32x4_t s = vshrq_n_s32(vreinterpretq_s32_u32(u), 31);
    return vsubq_s32(veorq_s32(r, s), s);
#endif
}

/* sum of the 32 products x*y (x0|x1 against y0|y1) in 4 int32 lanes */
static inline int32x4_t i8dot_neon(int8x16_t x0, int8x16_t x1, int8x16_t y0, int8x16_t y1) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), x0, y0), x1, y1);
#else
    /* |product| <= 128*127: two fit in int16 before the pairwise widening */
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(x0), vget_low_s8(y0)));
    s = vpadalq_s16(s, vmull_s8(vget_high_s8(x0), vget_high_s8(y0)));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(x1), vget_low_s8(y1)));
    return vpadalq_s16(s, vmull_s8(vget_high_s8(x1), vget_high_s8(y1)));
#endif
}

static float dot_f32_neon(int n, const void *w, const void *a) {
    const float *x = (const float *)w, *y = (const float *)a;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = FMA_NEON(s0, vld1q_f32(x + i), vld1q_f32(y + i));
        s1 = FMA_NEON(s1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        s2 = FMA_NEON(s2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        s3 = FMA_NEON(s3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    for (; i + 4 <= n; i += 4) s0 = FMA_NEON(s0, vld1q_f32(x + i), vld1q_f32(y + i));
    float s = hsum_neon(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

#ifdef SLM_NEON_F16
static inline float32x4_t ld_f16_neon(const uint8_t *p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)p)));
}

static void f16_to_float_neon(const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, ld_f16_neon(p + 2 * i));
    for (; i < n; i++) dst[i] = ld_f16(p + 2 * i);
}

/* the conversion rounds to nearest even, like f32_to_fp16 (NaNs stay NaNs) */
static void f16_from_float_neon(const float *src, void *dst, int64_t n) {
    uint8_t *p = (uint8_t *)dst;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16((uint16_t *)(void *)(p + 2 * i), vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++) st_u16(p + 2 * i, f32_to_fp16(src[i]));
}

static float dot_f16_neon(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = FMA_NEON(s0, ld_f16_neon(x + 2 * i), ld_f16_neon(y + 2 * i));
        s1 = FMA_NEON(s1, ld_f16_neon(x + 2 * i + 8), ld_f16_neon(y + 2 * i + 8));
        s2 = FMA_NEON(s2, ld_f16_neon(x + 2 * i + 16), ld_f16_neon(y + 2 * i + 16));
        s3 = FMA_NEON(s3, ld_f16_neon(x + 2 * i + 24), ld_f16_neon(y + 2 * i + 24));
    }
    for (; i + 4 <= n; i += 4) s0 = FMA_NEON(s0, ld_f16_neon(x + 2 * i), ld_f16_neon(y + 2 * i));
    float s = hsum_neon(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += ld_f16(x + 2 * i) * ld_f16(y + 2 * i);
    return s;
}
#endif /* SLM_NEON_F16 */

static inline float32x4_t ld_bf16_neon(const uint8_t *p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)p), 16));
}

static void bf16_to_float_neon(const void *src, float *dst, int64_t n) {
    const uint8_t *p = (const uint8_t *)src;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, ld_bf16_neon(p + 2 * i));
    for (; i < n; i++) dst[i] = bf16_to_f32(ld_u16(p + 2 * i));
}

/* f32_to_bf16 on 4 lanes: round to nearest even on the bits, NaN quieted */
static void bf16_from_float_neon(const float *src, void *dst, int64_t n) {
    uint8_t *p = (uint8_t *)dst;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t x = vreinterpretq_u32_f32(vld1q_f32(src + i));
        const uint32x4_t odd = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
        const uint32x4_t r = vshrq_n_u32(vaddq_u32(x, vaddq_u32(vdupq_n_u32(0x7fff), odd)), 16);
        const uint32x4_t nan = vcgtq_u32(vandq_u32(x, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
        const uint32x4_t v = vbslq_u32(nan, vorrq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(64)), r);
        vst1_u16((uint16_t *)(void *)(p + 2 * i), vmovn_u32(v));
    }
    for (; i < n; i++) st_u16(p + 2 * i, f32_to_bf16(src[i]));
}

static float dot_bf16_neon(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = FMA_NEON(s0, ld_bf16_neon(x + 2 * i), ld_bf16_neon(y + 2 * i));
        s1 = FMA_NEON(s1, ld_bf16_neon(x + 2 * i + 8), ld_bf16_neon(y + 2 * i + 8));
        s2 = FMA_NEON(s2, ld_bf16_neon(x + 2 * i + 16), ld_bf16_neon(y + 2 * i + 16));
        s3 = FMA_NEON(s3, ld_bf16_neon(x + 2 * i + 24), ld_bf16_neon(y + 2 * i + 24));
    }
    for (; i + 4 <= n; i += 4) s0 = FMA_NEON(s0, ld_bf16_neon(x + 2 * i), ld_bf16_neon(y + 2 * i));
    float s = hsum_neon(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += bf16_to_f32(ld_u16(x + 2 * i)) * bf16_to_f32(ld_u16(y + 2 * i));
    return s;
}

/* Same arithmetic as q8_0_from_float_ref, 4 lanes at a time. */
static void q8_0_from_float_neon(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK8_0; i++, b += 34, src += QK8_0) {
        float32x4_t v[8], m = vdupq_n_f32(0);
        for (int j = 0; j < 8; j++) v[j] = vld1q_f32(src + 4 * j), m = vmaxq_f32(m, vabsq_f32(v[j]));
        const float amax = hmax_neon(m);
        const float d = amax / 127.0f, id = amax > 1e-30f ? 127.0f / amax : 0.0f;
        st_u16(b, f32_to_fp16(d));
        int16x8_t h[4];
        for (int j = 0; j < 4; j++)
            h[j] = vcombine_s16(vmovn_s32(round_even_neon(vmulq_n_f32(v[2 * j], id))),
                                vmovn_s32(round_even_neon(vmulq_n_f32(v[2 * j + 1], id))));
        vst1q_s8((int8_t *)(b + 2), vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
        vst1q_s8((int8_t *)(b + 18), vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
    }
}

/* One accumulator per token, blocks in order: dot and dot4 give the same
   bits, so results do not depend on how tokens are batched. */
static float dot_q8_0_neon(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float32x4_t s = vdupq_n_f32(0);
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        const int32x4_t p = i8dot_neon(vld1q_s8((const int8_t *)(x + 2)), vld1q_s8((const int8_t *)(x + 18)),
                                       vld1q_s8((const int8_t *)(y + 2)), vld1q_s8((const int8_t *)(y + 18)));
        s = FMA_NEON(s, vcvtq_f32_s32(p), vdupq_n_f32(h2f_neon(x) * h2f_neon(y)));
    }
    return hsum_neon(s);
}

static inline void q4_unpack_neon(const uint8_t *q, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(q);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), vdupq_n_s8(8));
    *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
}

static float dot_q4_0_neon(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float32x4_t s = vdupq_n_f32(0);
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        int8x16_t lo, hi;
        q4_unpack_neon(x + 2, &lo, &hi);
        const int32x4_t p = i8dot_neon(lo, hi, vld1q_s8((const int8_t *)(y + 2)), vld1q_s8((const int8_t *)(y + 18)));
        s = FMA_NEON(s, vcvtq_f32_s32(p), vdupq_n_f32(h2f_neon(x) * h2f_neon(y)));
    }
    return hsum_neon(s);
}

/* One token's step of the 4-token kernels: the weight block (x0|x1, scale
   dx) is loaded once for the 4 tokens; same arithmetic as the 1-token ones. */
static inline float32x4_t dot4_step_neon(float32x4_t s, int8x16_t x0, int8x16_t x1, float dx, const uint8_t *yb) {
    const int32x4_t p = i8dot_neon(x0, x1, vld1q_s8((const int8_t *)(yb + 2)), vld1q_s8((const int8_t *)(yb + 18)));
    return FMA_NEON(s, vcvtq_f32_s32(p), vdupq_n_f32(dx * h2f_neon(yb)));
}

static void dot4_q8_0_neon(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float32x4_t s[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        const int8x16_t x0 = vld1q_s8((const int8_t *)(x + 2)), x1 = vld1q_s8((const int8_t *)(x + 18));
        const float dx = h2f_neon(x);
        s[0] = dot4_step_neon(s[0], x0, x1, dx, y);
        s[1] = dot4_step_neon(s[1], x0, x1, dx, y + a_rb);
        s[2] = dot4_step_neon(s[2], x0, x1, dx, y + 2 * a_rb);
        s[3] = dot4_step_neon(s[3], x0, x1, dx, y + 3 * a_rb);
    }
    for (int k = 0; k < 4; k++) yo[k * ldy] = hsum_neon(s[k]);
}

static void dot4_q4_0_neon(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float32x4_t s[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        int8x16_t x0, x1;
        q4_unpack_neon(x + 2, &x0, &x1);
        const float dx = h2f_neon(x);
        s[0] = dot4_step_neon(s[0], x0, x1, dx, y);
        s[1] = dot4_step_neon(s[1], x0, x1, dx, y + a_rb);
        s[2] = dot4_step_neon(s[2], x0, x1, dx, y + 2 * a_rb);
        s[3] = dot4_step_neon(s[3], x0, x1, dx, y + 3 * a_rb);
    }
    for (int k = 0; k < 4; k++) yo[k * ldy] = hsum_neon(s[k]);
}

#define K_DOT_F32 dot_f32_neon
#ifdef SLM_NEON_F16
#define K_F16_TO_FLOAT f16_to_float_neon
#define K_F16_FROM_FLOAT f16_from_float_neon
#define K_DOT_F16 dot_f16_neon
#endif
#define K_BF16_TO_FLOAT bf16_to_float_neon
#define K_BF16_FROM_FLOAT bf16_from_float_neon
#define K_DOT_BF16 dot_bf16_neon
#define K_Q8_0_FROM_FLOAT q8_0_from_float_neon
#define K_DOT_Q8_0 dot_q8_0_neon
#define K_DOT_Q4_0 dot_q4_0_neon
#define K_DOT4_Q8_0 dot4_q8_0_neon
#define K_DOT4_Q4_0 dot4_q4_0_neon

#endif /* SLM_NEON */

/* -------------------------------------------------------------------------- */
/* 6e. RISC-V vector extension 1.0 (ratified __riscv_ intrinsics)            */
/* -------------------------------------------------------------------------- */
/* Written for any VLEN >= 128 (the V extension's minimum): loops are strip-
   mined with vsetvl, and a 32-value block always fits one register group
   (e8 at LMUL 2, e32 at LMUL 8). No Zvfh is assumed: f16 is converted with
   integer operations, exactly as f32_to_fp16/fp16_to_f32 do. */
#ifdef SLM_RVV

/* fp16_to_f32 on vl lanes: the half's exponent and mantissa, moved to the
   float's position, are the float 2^-112 times the value (subnormal halves
   become subnormal floats, which RISC-V never flushes), so one exact
   multiplication rebiases; infinities and NaNs are patched. */
static inline vfloat32m2_t h2f_rvv(vuint16m1_t h16, size_t vl) {
    const vuint32m2_t h = __riscv_vzext_vf2_u32m2(h16, vl);
    const vuint32m2_t em = __riscv_vsll_vx_u32m2(__riscv_vand_vx_u32m2(h, 0x7fffu, vl), 13, vl);
    vuint32m2_t r = __riscv_vreinterpret_v_f32m2_u32m2(
        __riscv_vfmul_vf_f32m2(__riscv_vreinterpret_v_u32m2_f32m2(em), 0x1p112f, vl));
    r = __riscv_vmerge_vvm_u32m2(r, __riscv_vor_vx_u32m2(em, 0x7f800000u, vl),
                                 __riscv_vmsgeu_vx_u32m2_b16(em, 0x7c00u << 13, vl), vl);
    const vuint32m2_t sign = __riscv_vsll_vx_u32m2(__riscv_vand_vx_u32m2(h, 0x8000u, vl), 16, vl);
    return __riscv_vreinterpret_v_u32m2_f32m2(__riscv_vor_vv_u32m2(r, sign, vl));
}

/* f32_to_fp16 on vl lanes: the same three cases, merged */
static inline vuint16m1_t f2h_rvv(vfloat32m2_t f, size_t vl) {
    const vuint32m2_t x = __riscv_vreinterpret_v_f32m2_u32m2(f);
    const vuint32m2_t sign = __riscv_vand_vx_u32m2(__riscv_vsrl_vx_u32m2(x, 16, vl), 0x8000u, vl);
    const vuint32m2_t ax = __riscv_vand_vx_u32m2(x, 0x7fffffffu, vl);
    const vuint32m2_t odd = __riscv_vand_vx_u32m2(__riscv_vsrl_vx_u32m2(ax, 13, vl), 1u, vl);
    vuint32m2_t r = __riscv_vsrl_vx_u32m2(__riscv_vadd_vv_u32m2(__riscv_vadd_vx_u32m2(ax, 0xc8000fffu, vl), odd, vl), 13, vl);
    const vfloat32m2_t a = __riscv_vfadd_vf_f32m2(__riscv_vreinterpret_v_u32m2_f32m2(ax), 0.5f, vl);
    const vuint32m2_t sub = __riscv_vsub_vx_u32m2(__riscv_vreinterpret_v_f32m2_u32m2(a), 0x3f000000u, vl);
    r = __riscv_vmerge_vvm_u32m2(r, sub, __riscv_vmsltu_vx_u32m2_b16(ax, 0x38800000u, vl), vl);
    r = __riscv_vmerge_vxm_u32m2(r, 0x7c00u, __riscv_vmsgeu_vx_u32m2_b16(ax, 0x477ff000u, vl), vl);
    r = __riscv_vmerge_vxm_u32m2(r, 0x7e00u, __riscv_vmsgtu_vx_u32m2_b16(ax, 0x7f800000u, vl), vl);
    return __riscv_vncvt_x_x_w_u16m1(__riscv_vor_vv_u32m2(r, sign, vl), vl);
}

static inline vfloat32m2_t bf2f_rvv(vuint16m1_t h, size_t vl) {
    return __riscv_vreinterpret_v_u32m2_f32m2(__riscv_vsll_vx_u32m2(__riscv_vzext_vf2_u32m2(h, vl), 16, vl));
}

static float dot_f32_rvv(int n, const void *w, const void *a) {
    const float *x = (const float *)w, *y = (const float *)a;
    const size_t vlmax = __riscv_vsetvlmax_e32m4();
    vfloat32m4_t acc = __riscv_vfmv_v_f_f32m4(0.0f, vlmax);
    for (size_t i = 0, vl; i < (size_t)n; i += vl) {
        vl = __riscv_vsetvl_e32m4((size_t)n - i);
        acc = __riscv_vfmacc_vv_f32m4_tu(acc, __riscv_vle32_v_f32m4(x + i, vl), __riscv_vle32_v_f32m4(y + i, vl), vl);
    }
    return __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m4_f32m1(acc, __riscv_vfmv_s_f_f32m1(0.0f, 1), vlmax));
}

static void f16_to_float_rvv(const void *src, float *dst, int64_t n) {
    const uint16_t *p = (const uint16_t *)src;
    for (size_t i = 0, vl; i < (size_t)n; i += vl) {
        vl = __riscv_vsetvl_e16m1((size_t)n - i);
        __riscv_vse32_v_f32m2(dst + i, h2f_rvv(__riscv_vle16_v_u16m1(p + i, vl), vl), vl);
    }
}

static void f16_from_float_rvv(const float *src, void *dst, int64_t n) {
    uint16_t *p = (uint16_t *)dst;
    for (size_t i = 0, vl; i < (size_t)n; i += vl) {
        vl = __riscv_vsetvl_e32m2((size_t)n - i);
        __riscv_vse16_v_u16m1(p + i, f2h_rvv(__riscv_vle32_v_f32m2(src + i, vl), vl), vl);
    }
}

static float dot_f16_rvv(int n, const void *w, const void *a) {
    const uint16_t *x = (const uint16_t *)w, *y = (const uint16_t *)a;
    const size_t vlmax = __riscv_vsetvlmax_e32m2();
    vfloat32m2_t acc = __riscv_vfmv_v_f_f32m2(0.0f, vlmax);
    for (size_t i = 0, vl; i < (size_t)n; i += vl) {
        vl = __riscv_vsetvl_e16m1((size_t)n - i);
        acc = __riscv_vfmacc_vv_f32m2_tu(acc, h2f_rvv(__riscv_vle16_v_u16m1(x + i, vl), vl),
                                          h2f_rvv(__riscv_vle16_v_u16m1(y + i, vl), vl), vl);
    }
    return __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m2_f32m1(acc, __riscv_vfmv_s_f_f32m1(0.0f, 1), vlmax));
}

static void bf16_to_float_rvv(const void *src, float *dst, int64_t n) {
    const uint16_t *p = (const uint16_t *)src;
    for (size_t i = 0, vl; i < (size_t)n; i += vl) {
        vl = __riscv_vsetvl_e16m1((size_t)n - i);
        __riscv_vse32_v_f32m2(dst + i, bf2f_rvv(__riscv_vle16_v_u16m1(p + i, vl), vl), vl);
    }
}

/* f32_to_bf16 on vl lanes: round to nearest even on the bits, NaN quieted */
static void bf16_from_float_rvv(const float *src, void *dst, int64_t n) {
    uint16_t *p = (uint16_t *)dst;
    for (size_t i = 0, vl; i < (size_t)n; i += vl) {
        vl = __riscv_vsetvl_e32m2((size_t)n - i);
        const vuint32m2_t x = __riscv_vreinterpret_v_f32m2_u32m2(__riscv_vle32_v_f32m2(src + i, vl));
        const vuint32m2_t hi = __riscv_vsrl_vx_u32m2(x, 16, vl);
        vuint32m2_t r = __riscv_vadd_vv_u32m2(__riscv_vadd_vx_u32m2(x, 0x7fffu, vl), __riscv_vand_vx_u32m2(hi, 1u, vl), vl);
        r = __riscv_vsrl_vx_u32m2(r, 16, vl);
        const vbool16_t nan = __riscv_vmsgtu_vx_u32m2_b16(__riscv_vand_vx_u32m2(x, 0x7fffffffu, vl), 0x7f800000u, vl);
        r = __riscv_vmerge_vvm_u32m2(r, __riscv_vor_vx_u32m2(hi, 64u, vl), nan, vl);
        __riscv_vse16_v_u16m1(p + i, __riscv_vncvt_x_x_w_u16m1(r, vl), vl);
    }
}

static float dot_bf16_rvv(int n, const void *w, const void *a) {
    const uint16_t *x = (const uint16_t *)w, *y = (const uint16_t *)a;
    const size_t vlmax = __riscv_vsetvlmax_e32m2();
    vfloat32m2_t acc = __riscv_vfmv_v_f_f32m2(0.0f, vlmax);
    for (size_t i = 0, vl; i < (size_t)n; i += vl) {
        vl = __riscv_vsetvl_e16m1((size_t)n - i);
        acc = __riscv_vfmacc_vv_f32m2_tu(acc, bf2f_rvv(__riscv_vle16_v_u16m1(x + i, vl), vl),
                                          bf2f_rvv(__riscv_vle16_v_u16m1(y + i, vl), vl), vl);
    }
    return __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m2_f32m1(acc, __riscv_vfmv_s_f_f32m1(0.0f, 1), vlmax));
}

/* Same arithmetic as q8_0_from_float_ref; the conversion rounds to nearest
   even whatever the dynamic rounding mode. */
static void q8_0_from_float_rvv(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK8_0; i++, b += 34, src += QK8_0) {
        const vfloat32m8_t v = __riscv_vle32_v_f32m8(src, 32);
        const vfloat32m1_t m = __riscv_vfredmax_vs_f32m8_f32m1(__riscv_vfabs_v_f32m8(v, 32), __riscv_vfmv_s_f_f32m1(0.0f, 1), 32);
        const float amax = __riscv_vfmv_f_s_f32m1_f32(m);
        const float d = amax / 127.0f, id = amax > 1e-30f ? 127.0f / amax : 0.0f;
        st_u16(b, f32_to_fp16(d));
        const vint32m8_t q = __riscv_vfcvt_x_f_v_i32m8_rm(__riscv_vfmul_vf_f32m8(v, id, 32), __RISCV_FRM_RNE, 32);
        __riscv_vse8_v_i8m2((int8_t *)(b + 2), __riscv_vncvt_x_x_w_i8m2(__riscv_vncvt_x_x_w_i16m4(q, 32), 32), 32);
    }
}

/* Integer dot per block, then the block sum scaled and added in float in
   block order, as the reference does. */
static float dot_q8_0_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    const vint32m1_t zero = __riscv_vmv_v_x_i32m1(0, 1);
    float s = 0;
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        const vint16m4_t p = __riscv_vwmul_vv_i16m4(__riscv_vle8_v_i8m2((const int8_t *)(x + 2), 32),
                                                    __riscv_vle8_v_i8m2((const int8_t *)(y + 2), 32), 32);
        const int32_t isum = __riscv_vmv_x_s_i32m1_i32(__riscv_vwredsum_vs_i16m4_i32m1(p, zero, 32));
        s += (float)isum * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

static float dot_q4_0_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    const vint32m1_t zero = __riscv_vmv_v_x_i32m1(0, 1);
    float s = 0;
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        const vuint8m1_t q = __riscv_vle8_v_u8m1(x + 2, 16);
        const vint8m1_t lo = __riscv_vsub_vx_i8m1(__riscv_vreinterpret_v_u8m1_i8m1(__riscv_vand_vx_u8m1(q, 15, 16)), 8, 16);
        const vint8m1_t hi = __riscv_vsub_vx_i8m1(__riscv_vreinterpret_v_u8m1_i8m1(__riscv_vsrl_vx_u8m1(q, 4, 16)), 8, 16);
        vint16m2_t p = __riscv_vwmul_vv_i16m2(lo, __riscv_vle8_v_i8m1((const int8_t *)(y + 2), 16), 16);
        p = __riscv_vwmacc_vv_i16m2(p, hi, __riscv_vle8_v_i8m1((const int8_t *)(y + 18), 16), 16);
        const int32_t isum = __riscv_vmv_x_s_i32m1_i32(__riscv_vwredsum_vs_i16m2_i32m1(p, zero, 16));
        s += (float)isum * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

#define K_DOT_F32 dot_f32_rvv
#define K_F16_TO_FLOAT f16_to_float_rvv
#define K_F16_FROM_FLOAT f16_from_float_rvv
#define K_DOT_F16 dot_f16_rvv
#define K_BF16_TO_FLOAT bf16_to_float_rvv
#define K_BF16_FROM_FLOAT bf16_from_float_rvv
#define K_DOT_BF16 dot_bf16_rvv
#define K_Q8_0_FROM_FLOAT q8_0_from_float_rvv
#define K_DOT_Q8_0 dot_q8_0_rvv
#define K_DOT_Q4_0 dot_q4_0_rvv

#endif /* SLM_RVV */

/* -------------------------------------------------------------------------- */
/* 6f. The kernels TRAITS points at                                           */
/* -------------------------------------------------------------------------- */
/* Each is this target's SIMD kernel (K_* from 6b-6e) or the reference. */

#ifndef K_DOT_F32
#define K_DOT_F32 dot_f32_ref
#endif
#ifndef K_F16_TO_FLOAT
#define K_F16_TO_FLOAT f16_to_float_ref
#endif
#ifndef K_F16_FROM_FLOAT
#define K_F16_FROM_FLOAT f16_from_float_ref
#endif
#ifndef K_DOT_F16
#define K_DOT_F16 dot_f16_ref
#endif
#ifndef K_BF16_TO_FLOAT
#define K_BF16_TO_FLOAT bf16_to_float_ref
#endif
#ifndef K_BF16_FROM_FLOAT
#define K_BF16_FROM_FLOAT bf16_from_float_ref
#endif
#ifndef K_DOT_BF16
#define K_DOT_BF16 dot_bf16_ref
#endif
#ifndef K_Q8_0_FROM_FLOAT
#define K_Q8_0_FROM_FLOAT q8_0_from_float_ref
#endif
#ifndef K_DOT_Q8_0
#define K_DOT_Q8_0 dot_q8_0_ref
#endif
#ifndef K_DOT_Q4_0
#define K_DOT_Q4_0 dot_q4_0_ref
#endif

static float dot_f32(int n, const void *w, const void *a) { return K_DOT_F32(n, w, a); }
static void f16_to_float(const void *src, float *dst, int64_t n) { K_F16_TO_FLOAT(src, dst, n); }
static void f16_from_float(const float *src, void *dst, int64_t n) { K_F16_FROM_FLOAT(src, dst, n); }
static float dot_f16(int n, const void *w, const void *a) { return K_DOT_F16(n, w, a); }
static void bf16_to_float(const void *src, float *dst, int64_t n) { K_BF16_TO_FLOAT(src, dst, n); }
static void bf16_from_float(const float *src, void *dst, int64_t n) { K_BF16_FROM_FLOAT(src, dst, n); }
static float dot_bf16(int n, const void *w, const void *a) { return K_DOT_BF16(n, w, a); }
static void q8_0_from_float(const float *src, void *dst, int64_t n) { K_Q8_0_FROM_FLOAT(src, dst, n); }
static float dot_q8_0(int n, const void *w, const void *a) { return K_DOT_Q8_0(n, w, a); }
static float dot_q4_0(int n, const void *w, const void *a) { return K_DOT_Q4_0(n, w, a); }

/* 4-token kernels (see matmul); types without one are done token by token. */
static vec_dot4_fn vec_dot4_of(int type) {
    switch (type) {
#ifdef K_DOT4_Q8_0
    case SLM_TYPE_Q8_0: return K_DOT4_Q8_0;
#endif
#ifdef K_DOT4_Q4_0
    case SLM_TYPE_Q4_0: return K_DOT4_Q4_0;
#endif
    default: return NULL;
    }
}

/* ========================================================================== */
/* 7. Operators                                                               */
/* ========================================================================== */
/*
 * The forward pass runs inside one parallel region per chunk of tokens.
 * Every operator takes (ith, nth), does its share of the work, and the
 * caller puts a barrier between operators that depend on each other.
 */

#if SLM_OPENMP
#define BARRIER() _Pragma("omp barrier")
#else
#define BARRIER() ((void)0)
#endif

/* Share [0, n) among nth threads: thread ith gets [*b, *e). */
static inline void split(int64_t n, int ith, int nth, int64_t *b, int64_t *e) {
    int64_t per = (n + nth - 1) / nth;
    *b = SLM_MIN(n, per * ith);
    *e = SLM_MIN(n, *b + per);
}

static void rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    if (w)
        for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
    else
        for (int i = 0; i < n; i++) out[i] = x[i] * scale;
}

static void softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = SLM_MAX(mx, x[i]);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static inline float silu(float x) { return x / (1.0f + expf(-x)); }

/* GELU, tanh form, in float. */
static float gelu_tanh(float x) {
    const float c = 0.79788456080286535587989211986876f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(c * x * (1.0f + 0.044715f * x * x)));
}

/* RoPE parameters of one layer (the base may differ per layer). */
typedef struct rope_params {
    int n_rot;           /* rotated dimensions per head (even) */
    int neox;            /* 1: pairs (i, i + n_rot/2); 0: adjacent pairs */
    float base;
    float freq_scale;    /* 1 / linear scaling factor */
    float ext_factor;    /* YaRN: 0 = off */
    float attn_factor;   /* multiplies cos and sin */
    float corr_lo, corr_hi; /* YaRN correction dims */
    const float *freq_factors; /* n_rot/2 divisors of the frequencies, or NULL */
} rope_params;

/* cos/sin for one position, computed in float the way ggml does (the angle
   is advanced by repeated multiplication) so that results agree closely. */
static void rope_cache(const rope_params *rp, int pos, float *cs) {
    float theta_scale = powf(rp->base, -2.0f / (float)rp->n_rot);
    float theta = (float)pos;
    for (int i = 0; i < rp->n_rot / 2; i++) {
        float ff = rp->freq_factors ? rp->freq_factors[i] : 1.0f;
        float extrap = theta / ff, interp = rp->freq_scale * extrap, th = interp, ms = rp->attn_factor;
        if (rp->ext_factor != 0.0f) {
            float y = ((float)i - rp->corr_lo) / SLM_MAX(0.001f, rp->corr_hi - rp->corr_lo);
            float mix = (1.0f - SLM_MIN(1.0f, SLM_MAX(0.0f, y))) * rp->ext_factor;
            th = interp * (1.0f - mix) + extrap * mix;
            ms *= 1.0f + 0.1f * logf(1.0f / rp->freq_scale);
        }
        cs[2 * i] = cosf(th) * ms;
        cs[2 * i + 1] = sinf(th) * ms;
        theta *= theta_scale;
    }
}

static void rope_apply(float *x, int n_heads, int head_dim, const rope_params *rp, const float *cs) {
    int half = rp->n_rot / 2;
    for (int h = 0; h < n_heads; h++, x += head_dim) {
        for (int i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            int i0 = rp->neox ? i : 2 * i, i1 = rp->neox ? i + half : 2 * i + 1;
            float a = x[i0], b = x[i1];
            x[i0] = a * c - b * s;
            x[i1] = a * s + b * c;
        }
    }
}

/* A weight matrix: n_out rows of n_in values of `type`. */
typedef struct weight {
    const uint8_t *data;
    int type;
    int64_t n_in, n_out;
    size_t rb; /* bytes per row */
} weight;

/* y[t*ldy + r] = W[r] . x[t] for rows r of this thread's share; xq holds the
   activations converted to the weight's dot partner, rows xq_rb bytes apart.
   With a 4-token kernel (dot4, may be NULL) each weight row is loaded and
   unpacked once for 4 tokens; results are the same as with dot. */
static void matmul_k(vec_dot_fn dot, vec_dot4_fn dot4, const weight *w, const uint8_t *xq, size_t xq_rb, int n_tok,
                     float *y, int64_t ldy, int ith, int nth) {
    int64_t r0, r1;
    split(w->n_out, ith, nth, &r0, &r1);
    const int n = (int)w->n_in;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w->data + (size_t)r * w->rb;
        int t = 0;
        if (dot4)
            for (; t + 4 <= n_tok; t += 4) dot4(n, row, xq + (size_t)t * xq_rb, xq_rb, y + t * ldy + r, ldy);
        for (; t < n_tok; t++) y[t * ldy + r] = dot(n, row, xq + (size_t)t * xq_rb);
    }
}

static void matmul(const weight *w, const uint8_t *xq, size_t xq_rb, int n_tok, float *y, int64_t ldy, int ith,
                   int nth) {
    matmul_k(TRAITS[w->type].vec_dot, vec_dot4_of(w->type), w, xq, xq_rb, n_tok, y, ldy, ith, nth);
}

/* Convert n_tok rows of floats (ldx apart) to dot type `dt`, this thread's rows. */
static void convert_rows(int dt, const float *x, int64_t ldx, int n_tok, int64_t n, uint8_t *out, int ith, int nth) {
    int64_t t0, t1;
    split(n_tok, ith, nth, &t0, &t1);
    size_t rb = row_bytes(dt, n);
    for (int64_t t = t0; t < t1; t++) TRAITS[dt].from_float(x + t * ldx, out + (size_t)t * rb, n);
}

/* ========================================================================== */
/* 8. Model                                                                   */
/* ========================================================================== */
/*
 * One generic decoder-only transformer. Architectures differ by a few flags
 * (rope style, activation, embedding scale, sliding-window pattern) and by
 * which optional tensors are present (biases, q/k norms, post norms, fused
 * projections); the forward pass tests for each, there is no copy per arch.
 */

enum { ACT_SILU = 0, ACT_GELU = 1 };

typedef struct arch_info {
    const char *name;
    int neox;         /* rope on (i, i + n_rot/2) pairs */
    int act;          /* gated FFN activation */
    int embd_scale;   /* multiply embeddings by sqrt(n_embd) */
    int swa_pattern;  /* default sliding-window pattern (0 = none) */
} arch_info;

static const arch_info ARCHS[] = {
    {"llama", 0, ACT_SILU, 0, 0},
};

enum { SRC_MMAP = 0, SRC_OWNED = 1, SRC_CALLER = 2 };

typedef struct layer {
    const float *attn_norm, *q_norm, *k_norm, *post_attn_norm, *ffn_norm, *post_ffn_norm;
    const float *bq, *bk, *bv;
    weight wq, wk, wv, wo, w_gate, w_up, w_down;
    int swa;          /* sliding-window attention layer */
    float rope_base, rope_freq_scale;
} layer;

struct slm_model {
    allocator a;
    slm_log_fn log;
    void *log_user;
    const uint8_t *bytes;
    size_t size;
    int source;       /* SRC_* */
    gguf_file g;
    int vocab_only;

    char arch_name[64];
    const arch_info *arch;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim, n_rot;
    int q_dim, kv_dim;
    float eps, rope_base, attn_scale, attn_softcap, final_softcap, embd_mult;
    int n_swa;        /* sliding window size, 0 = none */
    /* rope scaling */
    float rope_freq_scale, rope_ext_factor, rope_attn_factor, yarn_lo, yarn_hi;
    int n_ctx_orig;
    const float *rope_freqs;  /* llama 3: per-pair frequency divisors */

    weight tok_embd, output;
    const float *output_norm;
    layer *layers;

    float *vecs;      /* f32 copies of the 1-D tensors (norms, biases) */
    size_t vecs_len, vecs_used;
    uint16_t *gelu_tab; /* 65536 fp16 entries: ggml's fp16 GELU table */

    uint64_t n_params, weight_bytes;
    int max_in;       /* widest matrix input, for activation scratch */
    unsigned dot_types; /* bit per dot-partner type used */
};

static SLM_PRINTF(3, 4) void logf_(const slm_model *m, int level, const char *fmt, ...) {
    if (!m->log) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    m->log(m->log_user, level, buf);
}

/* --- hyperparameters ------------------------------------------------------ */

static const gguf_kv *arch_key(const slm_model *m, const char *suffix) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    return gguf_get(&m->g, key);
}

/* Integer hyperparameter; per-layer arrays must hold one repeated value. */
static slm_status hp_int(slm_model *m, const char *suffix, int required, int64_t dflt, int64_t lo, int64_t hi,
                         int *out, slm_error *err) {
    const gguf_kv *kv = arch_key(m, suffix);
    int64_t v = dflt;
    if (!kv) {
        if (required) return seterr(err, SLM_ERR_FORMAT, "missing key '%s.%s'", m->arch_name, suffix);
    } else if (kv->type == SLM_META_ARRAY) {
        if (kv->count == 0 || kv_int(&m->g, kv, 0, &v) != SLM_OK)
            return seterr(err, SLM_ERR_FORMAT, "key '%s' is an empty or non-integer array", kv->key);
        for (uint64_t i = 1; i < kv->count; i++) {
            int64_t w;
            if (kv_int(&m->g, kv, (int64_t)i, &w) != SLM_OK || w != v)
                return seterr(err, SLM_ERR_UNSUPPORTED, "key '%s': per-layer values that differ are not supported",
                              kv->key);
        }
    } else if (kv_int(&m->g, kv, -1, &v) != SLM_OK) {
        return seterr(err, SLM_ERR_FORMAT, "key '%s' has type %s, expected an integer", kv->key,
                      meta_type_name(kv->type));
    }
    if (v < lo || v > hi)
        return seterr(err, SLM_ERR_FORMAT, "key '%s.%s' = %lld is outside [%lld, %lld]", m->arch_name, suffix,
                      (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return SLM_OK;
}

static slm_status hp_float(slm_model *m, const char *suffix, double dflt, float *out, slm_error *err) {
    const gguf_kv *kv = arch_key(m, suffix);
    double v = dflt;
    if (kv && kv_float(&m->g, kv, -1, &v) != SLM_OK)
        return seterr(err, SLM_ERR_FORMAT, "key '%s' has type %s, expected a number", kv->key, meta_type_name(kv->type));
    if (!isfinite(v)) return seterr(err, SLM_ERR_FORMAT, "key '%s.%s' is not a finite number", m->arch_name, suffix);
    *out = (float)v;
    return SLM_OK;
}

static const char *hp_str(slm_model *m, const char *suffix) {
    const gguf_kv *kv = arch_key(m, suffix);
    return kv && kv->type == SLM_META_STRING ? kv->str[0] : NULL;
}

/* YaRN correction dimension for a rotation count (as ggml computes it). */
static float yarn_corr_dim(int n_rot, int n_ctx_orig, float rotations, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (rotations * 2.0f * 3.14159265358979f)) / (2.0f * logf(base));
}

static slm_status load_hparams(slm_model *m, slm_error *err) {
    slm_status st;
#define HP(call) \
    if ((st = (call)) != SLM_OK) return st
    HP(hp_int(m, "context_length", 0, 2048, 1, 1 << 24, &m->n_ctx_train, err));
    HP(hp_int(m, "embedding_length", 1, 0, 1, 1 << 20, &m->n_embd, err));
    HP(hp_int(m, "block_count", 1, 0, 1, 4096, &m->n_layer, err));
    HP(hp_int(m, "feed_forward_length", 1, 0, 1, 1 << 22, &m->n_ff, err));
    HP(hp_int(m, "attention.head_count", 1, 0, 1, 1 << 14, &m->n_head, err));
    HP(hp_int(m, "attention.head_count_kv", 0, m->n_head, 1, m->n_head, &m->n_head_kv, err));
    if (m->n_head % m->n_head_kv != 0)
        return seterr(err, SLM_ERR_FORMAT, "head_count %d is not a multiple of head_count_kv %d", m->n_head, m->n_head_kv);
    int dflt_hd = m->n_embd / m->n_head, vdim;
    HP(hp_int(m, "attention.key_length", 0, dflt_hd, 1, 1024, &m->head_dim, err));
    HP(hp_int(m, "attention.value_length", 0, m->head_dim, 1, 1 << 14, &vdim, err));
    if (vdim != m->head_dim)
        return seterr(err, SLM_ERR_UNSUPPORTED, "key_length %d != value_length %d is not supported", m->head_dim, vdim);
    HP(hp_int(m, "rope.dimension_count", 0, m->head_dim, 0, m->head_dim, &m->n_rot, err));
    if (m->n_rot % 2) return seterr(err, SLM_ERR_FORMAT, "rope.dimension_count %d is odd", m->n_rot);
    HP(hp_float(m, "attention.layer_norm_rms_epsilon", 1e-5, &m->eps, err));
    HP(hp_float(m, "rope.freq_base", 10000.0, &m->rope_base, err));
    if (!(m->rope_base > 0)) return seterr(err, SLM_ERR_FORMAT, "rope.freq_base %g is not positive", m->rope_base);
    HP(hp_float(m, "attn_logit_softcapping", 0.0, &m->attn_softcap, err));
    HP(hp_float(m, "final_logit_softcapping", 0.0, &m->final_softcap, err));
    HP(hp_int(m, "attention.sliding_window", 0, 0, 0, INT32_MAX, &m->n_swa, err));
    m->q_dim = m->n_head * m->head_dim;
    m->kv_dim = m->n_head_kv * m->head_dim;
    m->attn_scale = 1.0f / sqrtf((float)m->head_dim);
    {
        float s = 0;
        HP(hp_float(m, "attention.scale", 0.0, &s, err));
        if (s != 0) m->attn_scale = s;
    }
    m->embd_mult = m->arch->embd_scale ? sqrtf((float)m->n_embd) : 1.0f;

    /* rope scaling: none, linear or yarn */
    float factor = 0;
    const char *stype = hp_str(m, "rope.scaling.type");
    HP(hp_float(m, "rope.scaling.factor", 0.0, &factor, err));
    HP(hp_int(m, "rope.scaling.original_context_length", 0, m->n_ctx_train, 1, 1 << 24, &m->n_ctx_orig, err));
    HP(hp_float(m, "rope.scaling.attn_factor", 1.0, &m->rope_attn_factor, err));
    m->rope_freq_scale = 1.0f;
    m->rope_ext_factor = 0.0f;
    if (stype && strcmp(stype, "none") != 0) {
        if (strcmp(stype, "linear") != 0 && strcmp(stype, "yarn") != 0)
            return seterr(err, SLM_ERR_UNSUPPORTED, "rope scaling type '%s' is not supported", stype);
        if (factor > 0) m->rope_freq_scale = 1.0f / factor;
        if (strcmp(stype, "yarn") == 0) {
            m->rope_ext_factor = 1.0f;
            m->yarn_lo = SLM_MAX(0.0f, floorf(yarn_corr_dim(m->n_rot, m->n_ctx_orig, 32.0f, m->rope_base)));
            m->yarn_hi = SLM_MIN((float)(m->n_rot - 1), ceilf(yarn_corr_dim(m->n_rot, m->n_ctx_orig, 1.0f, m->rope_base)));
        }
    } else if (factor > 0 && factor != 1) {
        m->rope_freq_scale = 1.0f / factor;
    }
#undef HP
    return SLM_OK;
}

/* --- tensor binding --------------------------------------------------------- */

static const gguf_tensor *find_tensor(const slm_model *m, const char *name) {
    int64_t i = strmap_find(&m->g.tensor_map, (const char *const *)m->g.t_names, m->g.t_lens, name, strlen(name), NULL);
    return i < 0 ? NULL : &m->g.tensors[i];
}

static const uint8_t *tensor_data(const slm_model *m, const gguf_tensor *t) {
    return m->bytes + m->g.data_off + t->offset;
}

/* Bind a matrix [n_in x n_out] (ggml order: ne[0] = n_in). */
static slm_status bind_w(slm_model *m, const char *name, int64_t n_in, int64_t n_out, int required, weight *w,
                         slm_error *err) {
    const gguf_tensor *t = find_tensor(m, name);
    memset(w, 0, sizeof *w);
    if (!t) return required ? seterr(err, SLM_ERR_FORMAT, "missing tensor '%s'", name) : SLM_OK;
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != 1 || t->ne[3] != 1)
        return seterr(err, SLM_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                      (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                      (long long)n_in, (long long)n_out);
    const type_traits *tt = traits_of(t->type);
    if (!tt)
        return seterr(err, SLM_ERR_UNSUPPORTED, "tensor '%s' has type %s, which slm does not support", name,
                      slm_type_name(t->type));
    const type_size *dts = type_size_of(tt->dot_type);
    if (n_in % dts->blck != 0)
        return seterr(err, SLM_ERR_FORMAT, "tensor '%s': row length %lld is not a multiple of %d", name, (long long)n_in,
                      dts->blck);
    w->data = tensor_data(m, t);
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->rb = row_bytes(t->type, n_in);
    m->dot_types |= 1u << tt->dot_type;
    if (n_in > m->max_in) m->max_in = (int)n_in;
    return SLM_OK;
}

/* Bind a vector of n floats, converted to an f32 copy owned by the model
   (aligned, native byte order, whatever the file stores). */
static slm_status bind_v(slm_model *m, const char *name, int64_t n, int required, const float **out, slm_error *err) {
    const gguf_tensor *t = find_tensor(m, name);
    *out = NULL;
    if (!t) return required ? seterr(err, SLM_ERR_FORMAT, "missing tensor '%s'", name) : SLM_OK;
    if (t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
        return seterr(err, SLM_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld], expected [%lld]", name,
                      (long long)t->ne[0], (long long)t->ne[1], (long long)n);
    const type_traits *tt = traits_of(t->type);
    if (!tt)
        return seterr(err, SLM_ERR_UNSUPPORTED, "tensor '%s' has type %s, which slm does not support", name,
                      slm_type_name(t->type));
    if ((size_t)n > m->vecs_len - m->vecs_used)
        return seterr(err, SLM_ERR_FORMAT, "tensor '%s': vector storage exhausted", name);
    float *dst = m->vecs + m->vecs_used;
    m->vecs_used += (size_t)n;
    tt->to_float(tensor_data(m, t), dst, n);
    *out = dst;
    return SLM_OK;
}

static slm_status bind_tensors(slm_model *m, slm_error *err) {
    slm_status st;
    char name[96];
    const int E = m->n_embd, Q = m->q_dim, KV = m->kv_dim, F = m->n_ff;
    /* room for every 1-D tensor of the file as f32 */
    size_t total = 0;
    for (uint64_t i = 0; i < m->g.n_tensors; i++)
        if (m->g.tensors[i].n_dims == 1) total += (size_t)m->g.tensors[i].ne[0];
    m->vecs_len = total;
    m->vecs = (float *)xalloc(&m->a, (total ? total : 1) * sizeof(float));
    if (!m->vecs) return seterr(err, SLM_ERR_NOMEM, "out of memory for %zu norm/bias values", total);

    const gguf_tensor *te = find_tensor(m, "token_embd.weight");
    if (!te) return seterr(err, SLM_ERR_FORMAT, "missing tensor 'token_embd.weight'");
    if (te->ne[1] < 1 || te->ne[1] > INT32_MAX)
        return seterr(err, SLM_ERR_FORMAT, "token_embd.weight has %lld rows", (long long)te->ne[1]);
    m->n_vocab = (int)te->ne[1];
#define B(call) \
    if ((st = (call)) != SLM_OK) return st
    B(bind_w(m, "token_embd.weight", E, m->n_vocab, 1, &m->tok_embd, err));
    B(bind_v(m, "output_norm.weight", E, 1, &m->output_norm, err));
    B(bind_w(m, "output.weight", E, m->n_vocab, 0, &m->output, err));
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    B(bind_v(m, "rope_freqs.weight", m->n_rot / 2, 0, &m->rope_freqs, err));

    m->layers = (layer *)xcalloc(&m->a, (size_t)m->n_layer, sizeof(layer));
    if (!m->layers) return seterr(err, SLM_ERR_NOMEM, "out of memory");
    for (int il = 0; il < m->n_layer; il++) {
        layer *L = &m->layers[il];
#define NM(s) (snprintf(name, sizeof name, "blk.%d.%s", il, s), name)
        B(bind_v(m, NM("attn_norm.weight"), E, 1, &L->attn_norm, err));
        B(bind_w(m, NM("attn_q.weight"), E, Q, 1, &L->wq, err));
        B(bind_w(m, NM("attn_k.weight"), E, KV, 1, &L->wk, err));
        B(bind_w(m, NM("attn_v.weight"), E, KV, 1, &L->wv, err));
        B(bind_w(m, NM("attn_output.weight"), Q, E, 1, &L->wo, err));
        B(bind_v(m, NM("attn_q.bias"), Q, 0, &L->bq, err));
        B(bind_v(m, NM("attn_k.bias"), KV, 0, &L->bk, err));
        B(bind_v(m, NM("attn_v.bias"), KV, 0, &L->bv, err));
        B(bind_v(m, NM("attn_q_norm.weight"), m->head_dim, 0, &L->q_norm, err));
        B(bind_v(m, NM("attn_k_norm.weight"), m->head_dim, 0, &L->k_norm, err));
        B(bind_v(m, NM("post_attention_norm.weight"), E, 0, &L->post_attn_norm, err));
        B(bind_v(m, NM("ffn_norm.weight"), E, 1, &L->ffn_norm, err));
        B(bind_w(m, NM("ffn_gate.weight"), E, F, 1, &L->w_gate, err));
        B(bind_w(m, NM("ffn_up.weight"), E, F, 1, &L->w_up, err));
        B(bind_w(m, NM("ffn_down.weight"), F, E, 1, &L->w_down, err));
        B(bind_v(m, NM("post_ffw_norm.weight"), E, 0, &L->post_ffn_norm, err));
#undef NM
        L->swa = 0;
        L->rope_base = m->rope_base;
        L->rope_freq_scale = m->rope_freq_scale;
    }
#undef B
    for (uint64_t i = 0; i < m->g.n_tensors; i++) {
        const gguf_tensor *t = &m->g.tensors[i];
        uint64_t nel = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        m->n_params += nel;
        m->weight_bytes += t->nbytes;
    }
    return SLM_OK;
}

/* --- loading ---------------------------------------------------------------- */

void slm_model_params_init(slm_model_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->use_mmap = 1;
}

static void model_release(slm_model *m) {
    allocator a = m->a;
    gguf_free(&m->g, &a);
    xfree(&a, m->layers, (size_t)m->n_layer * sizeof(layer));
    xfree(&a, m->vecs, (m->vecs_len ? m->vecs_len : 1) * sizeof(float));
    xfree(&a, m->gelu_tab, 65536 * sizeof(uint16_t));
    if (m->source == SRC_OWNED) xfree(&a, (void *)m->bytes, m->size);
#if defined(SLM_HAVE_MMAP)
    if (m->source == SRC_MMAP && m->bytes) munmap((void *)m->bytes, m->size);
#endif
    xfree(&a, m, sizeof *m);
}

void slm_model_free(slm_model *m) {
    if (m) model_release(m);
}

/* Everything after the bytes are in memory. */
static slm_status model_init(slm_model *m, slm_error *err) {
    slm_status st = gguf_parse(&m->g, m->bytes, m->size, &m->a, err);
    if (st != SLM_OK) return st;
    const gguf_kv *ak = gguf_get(&m->g, "general.architecture");
    if (!ak) return seterr(err, SLM_ERR_FORMAT, "missing key 'general.architecture'");
    if (ak->type != SLM_META_STRING)
        return seterr(err, SLM_ERR_FORMAT, "general.architecture has type %s, expected string", meta_type_name(ak->type));
    if (strlen(ak->str[0]) >= sizeof m->arch_name)
        return seterr(err, SLM_ERR_FORMAT, "general.architecture is too long");
    strcpy(m->arch_name, ak->str[0]);
    if (m->vocab_only) return SLM_OK;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(ARCHS[i].name, m->arch_name) == 0) m->arch = &ARCHS[i];
    if (!m->arch) return seterr(err, SLM_ERR_UNSUPPORTED, "architecture '%s' is not supported", m->arch_name);
    if (SLM_BIG_ENDIAN)
        return seterr(err, SLM_ERR_UNSUPPORTED,
                      "this host is big-endian; slm uses GGUF weights in place and needs a little-endian host");
    if ((st = load_hparams(m, err)) != SLM_OK) return st;
    if ((st = bind_tensors(m, err)) != SLM_OK) return st;
    if (m->arch->act == ACT_GELU) {
        /* ggml evaluates GELU through an fp16 table: do the same (per model,
           no global state) so that gemma logits match llama.cpp's */
        m->gelu_tab = (uint16_t *)xalloc(&m->a, 65536 * sizeof(uint16_t));
        if (!m->gelu_tab) return seterr(err, SLM_ERR_NOMEM, "out of memory");
        for (uint32_t h = 0; h < 65536; h++) m->gelu_tab[h] = f32_to_fp16(gelu_tanh(fp16_to_f32((uint16_t)h)));
    }
    logf_(m, SLM_LOG_INFO, "loaded %s: %d layers, %d embd, %d vocab, %llu params", m->arch_name, m->n_layer,
          m->n_embd, m->n_vocab, (unsigned long long)m->n_params);
    return SLM_OK;
}

static slm_model *model_new(const slm_model_params *params, slm_error *err) {
    slm_model_params dp;
    if (!params) {
        slm_model_params_init(&dp);
        params = &dp;
    }
    allocator a;
    alloc_init(&a, params->allocator);
    slm_model *m = (slm_model *)xcalloc(&a, 1, sizeof *m);
    if (!m) {
        seterr(err, SLM_ERR_NOMEM, "out of memory for the model");
        return NULL;
    }
    m->a = a;
    m->log = params->log;
    m->log_user = params->log_user;
    m->vocab_only = params->vocab_only;
    return m;
}

slm_status slm_model_load_memory(const void *data, size_t size, const slm_model_params *params, slm_model **out,
                                 slm_error *err) {
    clearerr_(err);
    if (!out) return seterr(err, SLM_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!data && size) return seterr(err, SLM_ERR_INVALID_ARG, "data is NULL");
    slm_model *m = model_new(params, err);
    if (!m) return SLM_ERR_NOMEM;
    m->bytes = (const uint8_t *)data;
    m->size = size;
    m->source = SRC_CALLER;
    slm_status st = model_init(m, err);
    if (st != SLM_OK) {
        model_release(m);
        return st;
    }
    *out = m;
    return SLM_OK;
}

/* Read a whole file into memory from the model's allocator. */
static slm_status read_file(slm_model *m, const char *path, slm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return seterr(err, SLM_ERR_IO, "cannot open '%s'", path);
    long long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return seterr(err, SLM_ERR_IO, "cannot determine the size of '%s'", path);
    }
    if ((unsigned long long)sz > SIZE_MAX - 64) {
        fclose(f);
        return seterr(err, SLM_ERR_NOMEM, "'%s' (%lld bytes) does not fit in memory", path, sz);
    }
    uint8_t *buf = (uint8_t *)xalloc(&m->a, (size_t)sz);
    if (!buf) {
        fclose(f);
        return seterr(err, SLM_ERR_NOMEM, "out of memory reading '%s' (%lld bytes)", path, sz);
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        xfree(&m->a, buf, (size_t)sz);
        return seterr(err, SLM_ERR_IO, "short read on '%s': %zu of %lld bytes", path, got, sz);
    }
    m->bytes = buf;
    m->size = (size_t)sz;
    m->source = SRC_OWNED;
    return SLM_OK;
}

#if defined(SLM_HAVE_MMAP)
/* Map a file read-only; returns 0 (and no error) if mapping is not possible
   so that the caller falls back to reading. */
static int map_file(slm_model *m, const char *path, slm_error *err, slm_status *st) {
    int fd = open(path, O_RDONLY);
    *st = SLM_OK;
    if (fd < 0) {
        *st = seterr(err, SLM_ERR_IO, "cannot open '%s'", path);
        return 0;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 || (unsigned long long)sb.st_size > SIZE_MAX) {
        close(fd);
        return 0;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return 0;
    m->bytes = (const uint8_t *)p;
    m->size = (size_t)sb.st_size;
    m->source = SRC_MMAP;
    return 1;
}
#endif

slm_status slm_model_load_file(const char *path, const slm_model_params *params, slm_model **out, slm_error *err) {
    clearerr_(err);
    if (!out) return seterr(err, SLM_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!path) return seterr(err, SLM_ERR_INVALID_ARG, "path is NULL");
    slm_model *m = model_new(params, err);
    if (!m) return SLM_ERR_NOMEM;
    slm_status st = SLM_OK;
    int mapped = 0;
#if defined(SLM_HAVE_MMAP)
    if (!params || params->use_mmap) {
        mapped = map_file(m, path, err, &st);
        if (st != SLM_OK) {
            model_release(m);
            return st;
        }
    }
#endif
    if (!mapped && (st = read_file(m, path, err)) != SLM_OK) {
        model_release(m);
        return st;
    }
    st = model_init(m, err);
    if (st != SLM_OK) {
        /* name the file in the message */
        if (err) {
            char tmp[sizeof err->message];
            size_t pos = 0;
            fmt_append(tmp, sizeof tmp, &pos, "%.*s: ", 120, path);
            fmt_append(tmp, sizeof tmp, &pos, "%.*s", (int)(sizeof tmp - 1), err->message);
            memcpy(err->message, tmp, sizeof tmp);
        }
        model_release(m);
        return st;
    }
    *out = m;
    return SLM_OK;
}

/* --- inspection ------------------------------------------------------------- */

void slm_model_get_info(const slm_model *m, slm_model_info *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    if (!m) return;
    const gguf_kv *nk = gguf_get(&m->g, "general.name");
    o->arch = m->arch_name;
    o->name = nk && nk->type == SLM_META_STRING ? nk->str[0] : "";
    o->n_vocab = m->n_vocab;
    o->n_ctx_train = m->n_ctx_train;
    o->n_embd = m->n_embd;
    o->n_layer = m->n_layer;
    o->n_head = m->n_head;
    o->n_head_kv = m->n_head_kv;
    o->n_ff = m->n_ff;
    o->head_dim = m->head_dim;
    o->n_rot = m->n_rot;
    o->rope_freq_base = m->rope_base;
    o->norm_eps = m->eps;
    o->n_params = m->n_params;
    o->weight_bytes = m->weight_bytes;
    o->file_size = m->size;
    o->gguf_version = (int32_t)m->g.version;
    o->n_tensors = (int32_t)m->g.n_tensors;
}

int64_t slm_meta_count(const slm_model *m) { return m ? (int64_t)m->g.n_kv : 0; }

int64_t slm_meta_find(const slm_model *m, const char *key) {
    if (!m || !key) return -1;
    return gguf_kv_index(&m->g, key);
}

static const gguf_kv *meta_at(const slm_model *m, int64_t i) {
    if (!m || i < 0 || (uint64_t)i >= m->g.n_kv) return NULL;
    return &m->g.kv[i];
}

const char *slm_meta_key(const slm_model *m, int64_t i) {
    const gguf_kv *kv = meta_at(m, i);
    return kv ? kv->key : NULL;
}

int slm_meta_type(const slm_model *m, int64_t i) {
    const gguf_kv *kv = meta_at(m, i);
    return kv ? kv->type : -1;
}

int slm_meta_array_type(const slm_model *m, int64_t i) {
    const gguf_kv *kv = meta_at(m, i);
    return kv && kv->type == SLM_META_ARRAY ? kv->arr_type : -1;
}

int64_t slm_meta_array_count(const slm_model *m, int64_t i) {
    const gguf_kv *kv = meta_at(m, i);
    return kv && kv->type == SLM_META_ARRAY ? (int64_t)kv->count : -1;
}

slm_status slm_meta_get_int(const slm_model *m, int64_t i, int64_t elem, int64_t *out) {
    const gguf_kv *kv = meta_at(m, i);
    if (!kv || !out) return SLM_ERR_INVALID_ARG;
    return kv_int(&m->g, kv, kv->type == SLM_META_ARRAY ? elem : -1, out);
}

slm_status slm_meta_get_float(const slm_model *m, int64_t i, int64_t elem, double *out) {
    const gguf_kv *kv = meta_at(m, i);
    if (!kv || !out) return SLM_ERR_INVALID_ARG;
    return kv_float(&m->g, kv, kv->type == SLM_META_ARRAY ? elem : -1, out);
}

slm_status slm_meta_get_string(const slm_model *m, int64_t i, int64_t elem, const char **out, size_t *len) {
    const gguf_kv *kv = meta_at(m, i);
    if (!kv || !out) return SLM_ERR_INVALID_ARG;
    int64_t e = 0;
    if (kv->type == SLM_META_ARRAY) {
        if (kv->arr_type != SLM_META_STRING) return SLM_ERR_TYPE;
        if (elem < 0 || (uint64_t)elem >= kv->count) return SLM_ERR_INVALID_ARG;
        e = elem;
    } else if (kv->type != SLM_META_STRING) {
        return SLM_ERR_TYPE;
    }
    *out = kv->str[e];
    if (len) *len = (size_t)ld_u64(m->g.data + (kv->type == SLM_META_ARRAY ? kv->elem_off[e] : kv->value_off - 8));
    return SLM_OK;
}

/* Append formatted text at *pos (snprintf semantics: counts what would be written). */
static void fmt_append(char *buf, size_t size, size_t *pos, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = *pos < size ? size - *pos : 0;
    int n = vsnprintf(room ? buf + *pos : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) *pos += (size_t)n;
}

static void fmt_value(const slm_model *m, const gguf_kv *kv, int t, int64_t elem, char *buf, size_t size, size_t *pos) {
    int64_t iv;
    double dv;
    if (t == SLM_META_STRING) {
        const char *s = kv->str[elem < 0 ? 0 : elem];
        fmt_append(buf, size, pos, "\"");
        for (const char *c = s; *c; c++) {
            unsigned char ch = (unsigned char)*c;
            if (ch == '"' || ch == '\\') fmt_append(buf, size, pos, "\\%c", ch);
            else if (ch < 0x20) fmt_append(buf, size, pos, "\\x%02x", ch);
            else fmt_append(buf, size, pos, "%c", ch);
            if (c - s > 200) {
                fmt_append(buf, size, pos, "...");
                break;
            }
        }
        fmt_append(buf, size, pos, "\"");
    } else if (t == SLM_META_F32 || t == SLM_META_F64) {
        if (kv_float(&m->g, kv, elem, &dv) == SLM_OK) fmt_append(buf, size, pos, "%g", dv);
    } else if (t == SLM_META_BOOL) {
        if (kv_int(&m->g, kv, elem, &iv) == SLM_OK) fmt_append(buf, size, pos, "%s", iv ? "true" : "false");
    } else if (t == SLM_META_ARRAY) {
        fmt_append(buf, size, pos, "[...]");
    } else if (t == SLM_META_U64) {
        int tt;
        const uint8_t *p = kv_elem_ptr(&m->g, kv, elem, &tt);
        if (p) fmt_append(buf, size, pos, "%llu", (unsigned long long)ld_u64(p));
    } else if (kv_int(&m->g, kv, elem, &iv) == SLM_OK) {
        fmt_append(buf, size, pos, "%lld", (long long)iv);
    }
}

size_t slm_meta_format(const slm_model *m, int64_t i, char *buf, size_t size) {
    const gguf_kv *kv = meta_at(m, i);
    size_t pos = 0;
    if (buf && size) buf[0] = 0;
    if (!kv) return 0;
    if (kv->type != SLM_META_ARRAY) {
        fmt_value(m, kv, kv->type, -1, buf, size, &pos);
        return pos;
    }
    fmt_append(buf, size, &pos, "[%s x %llu: ", meta_type_name(kv->arr_type), (unsigned long long)kv->count);
    for (uint64_t e = 0; e < kv->count && e < 8; e++) {
        if (e) fmt_append(buf, size, &pos, ", ");
        fmt_value(m, kv, kv->arr_type, (int64_t)e, buf, size, &pos);
    }
    fmt_append(buf, size, &pos, kv->count > 8 ? ", ...]" : "]");
    return pos;
}

int64_t slm_tensor_count(const slm_model *m) { return m ? (int64_t)m->g.n_tensors : 0; }

int64_t slm_tensor_find(const slm_model *m, const char *name) {
    if (!m || !name) return -1;
    return strmap_find(&m->g.tensor_map, (const char *const *)m->g.t_names, m->g.t_lens, name, strlen(name), NULL);
}

slm_status slm_tensor_get_info(const slm_model *m, int64_t i, slm_tensor_info *o) {
    if (!m || !o || i < 0 || (uint64_t)i >= m->g.n_tensors) return SLM_ERR_INVALID_ARG;
    const gguf_tensor *t = &m->g.tensors[i];
    o->name = t->name;
    o->type = t->type;
    o->n_dims = t->n_dims;
    for (int d = 0; d < 4; d++) o->ne[d] = t->ne[d];
    o->offset = m->g.data_off + t->offset;
    o->nbytes = t->nbytes;
    return SLM_OK;
}

/* ========================================================================== */
/* 9. Session: KV cache, positions, decode                                    */
/* ========================================================================== */

/* Dot-partner slots: activations are converted once per (buffer, type). */
#define N_ACT_SLOTS 2

struct slm_session {
    const slm_model *m;
    allocator a;
    int n_ctx, n_batch, n_threads, kv_type, logits_all;
    int32_t pos;
    int32_t last_n;      /* tokens in the last decode call */
    int32_t logits_rows; /* rows held in logits[]; row r = token last_n - logits_rows + r */
    /* KV cache: per layer K then V, each [n_ctx][kv_dim] of kv_type */
    uint8_t *kv;
    size_t kv_bytes, kv_row;
    /* scratch, sized for n_batch tokens */
    float *x, *xb, *xo, *qkv, *att, *gu;
    float *scores;       /* n_thr_alloc * n_ctx */
    int n_thr_alloc;
    uint8_t *act[N_ACT_SLOTS];
    size_t act_size;
    float *logits;
    size_t logits_cap;   /* floats */
    size_t scratch_bytes;
    const float *rope_factors;
};

void slm_session_params_init(slm_session_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->kv_type = SLM_TYPE_F16;
}

static int default_threads(void) {
#if SLM_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Resolved parameters and the size of every buffer a session allocates. */
typedef struct session_plan {
    int n_ctx, n_batch, n_threads, kv_type, logits_all;
    size_t kv_bytes, kv_row;
    size_t x, xb, xo, qkv, att, gu, scores, act, logits; /* element counts / bytes */
    size_t total;
} session_plan;

static slm_status plan_session(const slm_model *m, const slm_session_params *p, session_plan *pl, slm_error *err) {
    slm_session_params dp;
    if (!p) {
        slm_session_params_init(&dp);
        p = &dp;
    }
    memset(pl, 0, sizeof *pl);
    if (m->vocab_only || !m->layers) return seterr(err, SLM_ERR_INVALID_ARG, "the model was loaded vocab-only");
    if (p->n_ctx < 0 || p->n_batch < 0 || p->n_threads < 0)
        return seterr(err, SLM_ERR_INVALID_ARG, "negative n_ctx, n_batch or n_threads");
    pl->n_ctx = p->n_ctx ? p->n_ctx : SLM_MIN(m->n_ctx_train, 4096);
    pl->n_batch = SLM_MIN(p->n_batch ? p->n_batch : 64, pl->n_ctx);
    pl->n_threads = p->n_threads ? SLM_MIN(p->n_threads, 256) : default_threads();
    if (pl->n_threads < 1) pl->n_threads = 1;
    pl->kv_type = p->kv_type;
    if (pl->kv_type != SLM_TYPE_F32 && pl->kv_type != SLM_TYPE_F16)
        return seterr(err, SLM_ERR_UNSUPPORTED, "KV cache type %d: only F32 and F16 are supported", p->kv_type);
    pl->logits_all = p->logits_all != 0;
    const size_t nb = (size_t)pl->n_batch, E = (size_t)m->n_embd, F = (size_t)m->n_ff;
    pl->kv_row = row_bytes(pl->kv_type, m->kv_dim);
    double kvd = 2.0 * m->n_layer * (double)pl->n_ctx * (double)pl->kv_row;
    if (kvd > (double)SIZE_MAX / 2) return seterr(err, SLM_ERR_NOMEM, "KV cache for n_ctx %d is too large", pl->n_ctx);
    pl->kv_bytes = (size_t)kvd;
    pl->x = pl->xb = pl->xo = nb * E;
    pl->qkv = nb * (size_t)(m->q_dim + 2 * m->kv_dim);
    pl->att = nb * (size_t)m->q_dim;
    pl->gu = nb * 2 * F;
    pl->scores = (size_t)pl->n_threads * (size_t)pl->n_ctx;
    /* activation rows in the widest dot-partner format (f32 is the widest) */
    size_t max_in = (size_t)SLM_MAX(m->max_in, m->n_embd);
    pl->act = nb * row_bytes(SLM_TYPE_F32, (int64_t)max_in);
    pl->logits = (size_t)m->n_vocab * (pl->logits_all ? nb : 1);
    pl->total = pl->kv_bytes + sizeof(float) * (pl->x + pl->xb + pl->xo + pl->qkv + pl->att + pl->gu + pl->scores +
                                                pl->logits) +
                N_ACT_SLOTS * pl->act + sizeof(slm_session);
    return SLM_OK;
}

size_t slm_session_memory_size(const slm_model *m, const slm_session_params *p) {
    session_plan pl;
    if (!m || plan_session(m, p, &pl, NULL) != SLM_OK) return 0;
    return pl.total;
}

void slm_session_free(slm_session *s) {
    if (!s) return;
    allocator a = s->a;
    size_t E = (size_t)s->m->n_embd, nb = (size_t)s->n_batch;
    xfree(&a, s->kv, s->kv_bytes);
    xfree(&a, s->x, nb * E * sizeof(float));
    xfree(&a, s->xb, nb * E * sizeof(float));
    xfree(&a, s->xo, nb * E * sizeof(float));
    xfree(&a, s->qkv, nb * (size_t)(s->m->q_dim + 2 * s->m->kv_dim) * sizeof(float));
    xfree(&a, s->att, nb * (size_t)s->m->q_dim * sizeof(float));
    xfree(&a, s->gu, nb * 2 * (size_t)s->m->n_ff * sizeof(float));
    xfree(&a, s->scores, (size_t)s->n_thr_alloc * (size_t)s->n_ctx * sizeof(float));
    for (int i = 0; i < N_ACT_SLOTS; i++) xfree(&a, s->act[i], s->act_size);
    xfree(&a, s->logits, s->logits_cap * sizeof(float));
    xfree(&a, s, sizeof *s);
}

slm_status slm_session_create(const slm_model *m, const slm_session_params *p, slm_session **out, slm_error *err) {
    clearerr_(err);
    if (!out) return seterr(err, SLM_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!m) return seterr(err, SLM_ERR_INVALID_ARG, "model is NULL");
    session_plan pl;
    slm_status st = plan_session(m, p, &pl, err);
    if (st != SLM_OK) return st;
    slm_session *s = (slm_session *)xcalloc(&m->a, 1, sizeof *s);
    if (!s) return seterr(err, SLM_ERR_NOMEM, "out of memory for the session");
    s->m = m;
    s->a = m->a;
    s->n_ctx = pl.n_ctx;
    s->n_batch = pl.n_batch;
    s->n_threads = pl.n_threads;
    s->n_thr_alloc = pl.n_threads;
    s->kv_type = pl.kv_type;
    s->logits_all = pl.logits_all;
    s->kv_row = pl.kv_row;
    s->kv_bytes = pl.kv_bytes;
    s->act_size = pl.act;
    s->kv = (uint8_t *)xalloc(&s->a, pl.kv_bytes);
    s->x = (float *)xalloc(&s->a, pl.x * sizeof(float));
    s->xb = (float *)xalloc(&s->a, pl.xb * sizeof(float));
    s->xo = (float *)xalloc(&s->a, pl.xo * sizeof(float));
    s->qkv = (float *)xalloc(&s->a, pl.qkv * sizeof(float));
    s->att = (float *)xalloc(&s->a, pl.att * sizeof(float));
    s->gu = (float *)xalloc(&s->a, pl.gu * sizeof(float));
    s->scores = (float *)xalloc(&s->a, pl.scores * sizeof(float));
    for (int i = 0; i < N_ACT_SLOTS; i++) s->act[i] = (uint8_t *)xalloc(&s->a, pl.act);
    s->logits_cap = pl.logits;
    s->logits = (float *)xalloc(&s->a, pl.logits * sizeof(float));
    int ok = s->kv && s->x && s->xb && s->xo && s->qkv && s->att && s->gu && s->scores && s->logits;
    for (int i = 0; i < N_ACT_SLOTS; i++) ok = ok && s->act[i];
    if (!ok) {
        slm_session_free(s);
        return seterr(err, SLM_ERR_NOMEM, "out of memory for a session of %zu bytes (n_ctx %d)", pl.total, pl.n_ctx);
    }
    memset(s->kv, 0, pl.kv_bytes);
    s->scratch_bytes = pl.total;
    *out = s;
    return SLM_OK;
}

const float *slm_session_logits(const slm_session *s, int32_t i) {
    if (!s || s->logits_rows == 0) return NULL;
    if (i < 0) i += s->last_n;
    int32_t first = s->last_n - s->logits_rows;
    if (i < first || i >= s->last_n) return NULL;
    return s->logits + (size_t)(i - first) * (size_t)s->m->n_vocab;
}

int32_t slm_session_pos(const slm_session *s) { return s ? s->pos : 0; }
int32_t slm_session_n_ctx(const slm_session *s) { return s ? s->n_ctx : 0; }
const slm_model *slm_session_model(const slm_session *s) { return s ? s->m : NULL; }

slm_status slm_session_rewind(slm_session *s, int32_t pos) {
    if (!s || pos < 0 || pos > s->pos) return SLM_ERR_INVALID_ARG;
    s->pos = pos;
    s->logits_rows = 0; /* the logits no longer describe the last position */
    s->last_n = 0;
    return SLM_OK;
}

void slm_session_set_threads(slm_session *s, int32_t n) {
    if (!s) return;
    if (n <= 0) n = default_threads();
    /* the per-thread attention scratch was sized at creation */
    s->n_threads = SLM_MAX(1, SLM_MIN(n, s->n_thr_alloc));
}

/* --- the forward pass --------------------------------------------------------- */

static inline uint8_t *kv_k(const slm_session *s, int il) { return s->kv + (size_t)(2 * il) * (size_t)s->n_ctx * s->kv_row; }
static inline uint8_t *kv_v(const slm_session *s, int il) { return s->kv + (size_t)(2 * il + 1) * (size_t)s->n_ctx * s->kv_row; }

/* Convert this thread's activation rows for each distinct dot type among the
   given weights; slot i is used by weights[i]. Caller barriers afterwards. */
static const uint8_t *act_for(slm_session *s, const weight *w, const float *x, int64_t ldx, int n, int slot, int ith,
                              int nth, size_t *rb) {
    int dt = TRAITS[w->type].dot_type;
    *rb = row_bytes(dt, w->n_in);
    convert_rows(dt, x, ldx, n, w->n_in, s->act[slot], ith, nth);
    return s->act[slot];
}

static void rope_for_layer(const slm_session *s, const layer *L, rope_params *rp) {
    const slm_model *m = s->m;
    rp->n_rot = m->n_rot;
    rp->neox = m->arch->neox;
    rp->base = L->rope_base;
    rp->freq_scale = L->rope_freq_scale;
    rp->ext_factor = L->swa ? 0.0f : m->rope_ext_factor;
    rp->attn_factor = m->rope_attn_factor;
    rp->corr_lo = m->yarn_lo;
    rp->corr_hi = m->yarn_hi;
    rp->freq_factors = s->rope_factors ? s->rope_factors : m->rope_freqs;
}

/* Attention for token t at position p, head h. q: this head's query.
   Writes the head's output to out. */
static void attend(const slm_session *s, const layer *L, int il, const float *q, int p, int h, float *scores,
                   float *out) {
    const slm_model *m = s->m;
    const int hd = m->head_dim, kvh = h / (m->n_head / m->n_head_kv);
    const uint8_t *K = kv_k(s, il), *V = kv_v(s, il);
    int k0 = 0;
    if (L->swa && m->n_swa > 0 && p - m->n_swa + 1 > 0) k0 = p - m->n_swa + 1;
    const int nk = p - k0 + 1;
    const size_t off = (size_t)kvh * (size_t)hd;
    if (s->kv_type == SLM_TYPE_F32) {
        for (int k = 0; k < nk; k++) {
            const float *kr = (const float *)(K + (size_t)(k0 + k) * s->kv_row) + off;
            float d = 0;
            for (int i = 0; i < hd; i++) d += q[i] * kr[i];
            scores[k] = d;
        }
    } else {
        /* like ggml: the query is rounded to fp16 for the fp16 cache */
        float qh[512];
        const int chunk = 512;
        for (int k = 0; k < nk; k++) scores[k] = 0;
        for (int i0 = 0; i0 < hd; i0 += chunk) {
            int n = SLM_MIN(chunk, hd - i0);
            for (int i = 0; i < n; i++) qh[i] = fp16_to_f32(f32_to_fp16(q[i0 + i]));
            for (int k = 0; k < nk; k++) {
                const uint8_t *kr = K + (size_t)(k0 + k) * s->kv_row + 2 * (off + (size_t)i0);
                float d = 0;
                for (int i = 0; i < n; i++) d += qh[i] * ld_f16(kr + 2 * i);
                scores[k] += d;
            }
        }
    }
    const float scale = m->attn_scale, cap = m->attn_softcap;
    for (int k = 0; k < nk; k++) {
        float v = scores[k] * scale;
        if (cap > 0) v = cap * tanhf(v / cap);
        scores[k] = v;
    }
    softmax(scores, nk);
    for (int i = 0; i < hd; i++) out[i] = 0;
    if (s->kv_type == SLM_TYPE_F32) {
        for (int k = 0; k < nk; k++) {
            const float *vr = (const float *)(V + (size_t)(k0 + k) * s->kv_row) + off;
            const float w = scores[k];
            for (int i = 0; i < hd; i++) out[i] += w * vr[i];
        }
    } else {
        for (int k = 0; k < nk; k++) {
            const uint8_t *vr = V + (size_t)(k0 + k) * s->kv_row + 2 * off;
            const float w = fp16_to_f32(f32_to_fp16(scores[k]));
            for (int i = 0; i < hd; i++) out[i] += w * ld_f16(vr + 2 * i);
        }
    }
}

static void store_kv(const slm_session *s, int il, int p, const float *k, const float *v) {
    uint8_t *K = kv_k(s, il) + (size_t)p * s->kv_row, *V = kv_v(s, il) + (size_t)p * s->kv_row;
    if (s->kv_type == SLM_TYPE_F32) {
        memcpy(K, k, (size_t)s->m->kv_dim * sizeof(float));
        memcpy(V, v, (size_t)s->m->kv_dim * sizeof(float));
    } else {
        f16_from_float(k, K, s->m->kv_dim);
        f16_from_float(v, V, s->m->kv_dim);
    }
}

/* Gated FFN activation in place: g[i] = act(g[i]) * u[i]. */
static void ffn_act(const slm_model *m, float *g, const float *u, int n) {
    if (m->arch->act == ACT_SILU) {
        for (int i = 0; i < n; i++) g[i] = silu(g[i]) * u[i];
    } else {
        for (int i = 0; i < n; i++) {
            float x = g[i], y;
            if (x <= -10.0f) y = 0.0f;
            else if (x >= 10.0f) y = x;
            else y = fp16_to_f32(m->gelu_tab[f32_to_fp16(x)]);
            g[i] = y * u[i];
        }
    }
}

/* Run n tokens (n <= n_batch) at positions pos0.., as thread ith of nth.
   out_first: first token whose logits are wanted (n = none); logits rows go
   to `logits`. */
static void forward(slm_session *s, const int32_t *tok, int n, int pos0, int out_first, float *logits, int ith,
                    int nth) {
    const slm_model *m = s->m;
    const int E = m->n_embd, QD = m->q_dim, KVD = m->kv_dim, F = m->n_ff, HD = m->head_dim;
    const int QKV = QD + 2 * KVD;
    float *x = s->x, *xb = s->xb, *xo = s->xo, *qkv = s->qkv, *att = s->att, *gu = s->gu;
    float *scores = s->scores + (size_t)ith * (size_t)s->n_ctx;
    int64_t t0, t1;
    size_t rb0, rb1, rb2;
    const uint8_t *a0, *a1, *a2;

    /* embeddings */
    split(n, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        TRAITS[m->tok_embd.type].to_float(m->tok_embd.data + (size_t)tok[t] * m->tok_embd.rb, x + t * E, E);
        if (m->embd_mult != 1.0f)
            for (int i = 0; i < E; i++) x[t * E + i] *= m->embd_mult;
    }
    BARRIER();

    for (int il = 0; il < m->n_layer; il++) {
        const layer *L = &m->layers[il];
        rope_params rp;
        rope_for_layer(s, L, &rp);

        /* attention block */
        for (int64_t t = t0; t < t1; t++) rmsnorm(xb + t * E, x + t * E, L->attn_norm, E, m->eps);
        BARRIER();
        a0 = act_for(s, &L->wq, xb, E, n, 0, ith, nth, &rb0);
        /* k and v share q's converted rows when their dot type is the same */
        int dk = TRAITS[L->wk.type].dot_type, dq = TRAITS[L->wq.type].dot_type, dv = TRAITS[L->wv.type].dot_type;
        a1 = dk == dq ? (rb1 = rb0, a0) : act_for(s, &L->wk, xb, E, n, 1, ith, nth, &rb1);
        BARRIER();
        matmul(&L->wq, a0, rb0, n, qkv, QKV, ith, nth);
        matmul(&L->wk, a1, rb1, n, qkv + QD, QKV, ith, nth);
        if (dv == dq) {
            a2 = a0, rb2 = rb0;
        } else if (dv == dk) {
            a2 = a1, rb2 = rb1;
        } else { /* a third dot type: convert again into slot 1 once k is done */
            BARRIER();
            a2 = act_for(s, &L->wv, xb, E, n, 1, ith, nth, &rb2);
            BARRIER();
        }
        matmul(&L->wv, a2, rb2, n, qkv + QD + KVD, QKV, ith, nth);
        BARRIER();

        /* biases, q/k norms, rope, then into the cache */
        for (int64_t t = t0; t < t1; t++) {
            float *q = qkv + t * QKV, *k = q + QD, *v = k + KVD;
            float cs[1024];
            if (L->bq) for (int i = 0; i < QD; i++) q[i] += L->bq[i];
            if (L->bk) for (int i = 0; i < KVD; i++) k[i] += L->bk[i];
            if (L->bv) for (int i = 0; i < KVD; i++) v[i] += L->bv[i];
            if (L->q_norm) for (int h = 0; h < m->n_head; h++) rmsnorm(q + h * HD, q + h * HD, L->q_norm, HD, m->eps);
            if (L->k_norm) for (int h = 0; h < m->n_head_kv; h++) rmsnorm(k + h * HD, k + h * HD, L->k_norm, HD, m->eps);
            if (m->n_rot > 0) {
                rope_cache(&rp, pos0 + (int)t, cs);
                rope_apply(q, m->n_head, HD, &rp, cs);
                rope_apply(k, m->n_head_kv, HD, &rp, cs);
            }
            store_kv(s, il, pos0 + (int)t, k, v);
        }
        BARRIER();

        /* attention, shared out by (token, head) */
        {
            int64_t w0, w1;
            split((int64_t)n * m->n_head, ith, nth, &w0, &w1);
            for (int64_t w = w0; w < w1; w++) {
                int t = (int)(w / m->n_head), h = (int)(w % m->n_head);
                attend(s, L, il, qkv + (size_t)t * QKV + (size_t)h * HD, pos0 + t, h, scores,
                       att + (size_t)t * QD + (size_t)h * HD);
            }
        }
        BARRIER();
        a0 = act_for(s, &L->wo, att, QD, n, 0, ith, nth, &rb0);
        BARRIER();
        matmul(&L->wo, a0, rb0, n, xo, E, ith, nth);
        BARRIER();
        for (int64_t t = t0; t < t1; t++) {
            if (L->post_attn_norm) rmsnorm(xo + t * E, xo + t * E, L->post_attn_norm, E, m->eps);
            for (int i = 0; i < E; i++) x[t * E + i] += xo[t * E + i];
            rmsnorm(xb + t * E, x + t * E, L->ffn_norm, E, m->eps);
        }
        BARRIER();

        /* feed-forward block: gate in gu[t][0, F), up in gu[t][F, 2F) */
        a0 = act_for(s, &L->w_gate, xb, E, n, 0, ith, nth, &rb0);
        a1 = TRAITS[L->w_up.type].dot_type == TRAITS[L->w_gate.type].dot_type
                 ? (rb1 = rb0, a0)
                 : act_for(s, &L->w_up, xb, E, n, 1, ith, nth, &rb1);
        BARRIER();
        matmul(&L->w_gate, a0, rb0, n, gu, 2 * F, ith, nth);
        matmul(&L->w_up, a1, rb1, n, gu + F, 2 * F, ith, nth);
        BARRIER();
        for (int64_t t = t0; t < t1; t++) ffn_act(m, gu + t * 2 * F, gu + t * 2 * F + F, F);
        BARRIER();
        a0 = act_for(s, &L->w_down, gu, 2 * F, n, 0, ith, nth, &rb0);
        BARRIER();
        matmul(&L->w_down, a0, rb0, n, xo, E, ith, nth);
        BARRIER();
        for (int64_t t = t0; t < t1; t++) {
            if (L->post_ffn_norm) rmsnorm(xo + t * E, xo + t * E, L->post_ffn_norm, E, m->eps);
            for (int i = 0; i < E; i++) x[t * E + i] += xo[t * E + i];
        }
        BARRIER();
    }

    /* output head for the tokens whose logits are wanted */
    const int no = n - out_first;
    if (no <= 0) return;
    split(no, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) rmsnorm(xb + t * E, x + (out_first + t) * E, m->output_norm, E, m->eps);
    BARRIER();
    a0 = act_for(s, &m->output, xb, E, no, 0, ith, nth, &rb0);
    BARRIER();
    matmul(&m->output, a0, rb0, no, logits, m->n_vocab, ith, nth);
    if (m->final_softcap > 0) {
        BARRIER();
        int64_t e0, e1;
        const float cap = m->final_softcap;
        split((int64_t)no * m->n_vocab, ith, nth, &e0, &e1);
        for (int64_t i = e0; i < e1; i++) logits[i] = cap * tanhf(logits[i] / cap);
    }
}

static void run_forward(slm_session *s, const int32_t *tok, int n, int pos0, int out_first, float *logits) {
#if SLM_OPENMP
    if (s->n_threads > 1) {
#pragma omp parallel num_threads(s->n_threads)
        forward(s, tok, n, pos0, out_first, logits, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#endif
    forward(s, tok, n, pos0, out_first, logits, 0, 1);
}

slm_status slm_decode(slm_session *s, const int32_t *tokens, int32_t n, slm_error *err) {
    clearerr_(err);
    if (!s) return seterr(err, SLM_ERR_INVALID_ARG, "session is NULL");
    if (n <= 0 || !tokens) return seterr(err, SLM_ERR_INVALID_ARG, "no tokens to decode");
    const slm_model *m = s->m;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->n_vocab)
            return seterr(err, SLM_ERR_INVALID_ARG, "token #%d has id %d, outside the vocabulary [0, %d)", i, tokens[i],
                          m->n_vocab);
    if (n > s->n_ctx - s->pos)
        return seterr(err, SLM_ERR_CONTEXT_FULL, "context full: %d tokens at position %d exceed n_ctx %d", n, s->pos,
                      s->n_ctx);
    size_t need = (size_t)m->n_vocab * (s->logits_all ? (size_t)n : 1);
    if (need > s->logits_cap) {
        float *nl = (float *)xalloc(&s->a, need * sizeof(float));
        if (!nl) return seterr(err, SLM_ERR_NOMEM, "out of memory for the logits of %d tokens", n);
        xfree(&s->a, s->logits, s->logits_cap * sizeof(float));
        s->logits = nl;
        s->logits_cap = need;
    }
    for (int32_t c = 0; c < n; c += s->n_batch) {
        int nc = SLM_MIN(s->n_batch, n - c);
        int last = c + nc == n;
        int out_first = s->logits_all ? 0 : (last ? nc - 1 : nc);
        float *lg = s->logits + (s->logits_all ? (size_t)c * (size_t)m->n_vocab : 0);
        run_forward(s, tokens + c, nc, s->pos + c, out_first, lg);
    }
    s->pos += n;
    s->last_n = n;
    s->logits_rows = s->logits_all ? n : 1;
    return SLM_OK;
}
