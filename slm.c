/*
 * slm.c - the whole implementation of slm (see slm.h for the API).
 *
 * Read top to bottom. Contents:
 *
 *    1. Configuration and platform detection
 *    2. Status codes, errors, allocation (allocator hooks, arenas)
 *    3. Small utilities and files: fp16/bf16, hashing, clock; UTF-8 file
 *       names, opening, reading and mapping a file (the platform's file
 *       calls)
 *    4. GGUF reader (bounds-checked, from a file, mmap or a memory buffer)
 *    5. Tensor types: block layouts, the traits table, the kernel interface,
 *       weight matrices
 *    6. Model: hyperparameters, tensor binding (layer kinds of the hybrid
 *       families, encoders), loading, inspection
 *    7. The forward pass: operators (norms, RoPE, softmax, mat-mul, work
 *       units), the session's buffers, attention and the KV store, FFN,
 *       recurrent mixers, one generic pass
 *    8. Session: creation and sizes, threads, decode, rewind
 *   8b. Session state: save and restore (versioned sections, checked against
 *       the model)
 *    9. Tokenizer: vocabulary, SentencePiece-style encoder, byte-level BPE
 *       with pre-tokenizers and Unicode tables, WordPiece, detokenizer
 *   10. Chat templates: family detection, formatting, incremental turns
 *   11. Sampler: penalties, top-k, top-p, min-p, temperature, seeded draw
 *  11b. Grammar: GBNF compiler, byte-level matcher over a token trie
 *       (grammar-masked sampling), the JSON grammar, JSON Schema -> GBNF
 *   12. Generate: prompt -> streamed text, stop conditions, timings
 *  12b. Embeddings: pooling, normalisation, several texts per call
 *  Appendices, after the story:
 *    A. Message formatting: slm's own vsnprintf (SLM_NO_STDIO builds)
 *    B. GGUF writer and output files: metadata and tensor directory, then
 *       streamed tensor data; output files that never destroy anything
 *    C. Weight quantizers: K-quants and IQ4_XS (weighted least-squares scale
 *       search)
 *    D. Quantization: convert a GGUF file's matrices to another type
 *    E. Kernels: the scalar reference; every ISA below has the same
 *       signatures
 *   E1. x86-64 AVX2 (+FMA, F16C)
 *   E2. x86-64 AVX-512 (F, BW, VL, DQ) with VNNI
 *   E3. x86 SSE4.1 (+SSSE3): x86-64 machines without AVX2 (Atom, Celeron)
 *   E4. ARM NEON: aarch64 (baseline, dotprod, i8mm) and ARMv7
 *   E5. RISC-V vector extension 1.0 (ratified __riscv_ intrinsics)
 *   E6. Arm Helium (M-profile vector extension, Cortex-M55)
 *   E7. One kernel table per instruction set
 *   E8. Choosing a table: what the CPU and the OS support
 *
 * Build: C99. OpenMP (-fopenmp) parallelises the forward pass; without it
 * slm runs on one thread. On x86-64 and aarch64 (GCC, Clang) every kernel
 * set is compiled in and chosen at run time; elsewhere the SIMD kernels
 * follow the target flags (section 1). Compile-time switches (all optional, see section 1):
 *   SLM_NO_SIMD     scalar reference kernels only
 *   SLM_NO_MMAP     read model files into memory instead of mapping them
 *                   (mmap on POSIX, a copy-on-write file mapping on Windows;
 *                   mingw-w64)
 *   SLM_NO_STDIO    no <stdio.h> and no file access at all (microcontrollers):
 *                   load models with slm_model_load_memory; the file calls
 *                   return SLM_ERR_UNSUPPORTED; messages use slm's own
 *                   small formatter instead of vsnprintf
 *   SLM_NO_MALLOC   no malloc/free: every model, session and sampler needs an
 *                   allocator (an slm_arena, for example)
 *   SLM_NO_THREADS  one thread even when compiled with -fopenmp (no OpenMP
 *                   calls, no pthreads)
 *   SLM_NO_OWN_BARRIER  OpenMP's barrier between operators instead of slm's
 *                   (spin briefly, then sleep; section 7)
 */

/* ========================================================================== */
/* 1. Configuration and platform detection                                    */
/* ========================================================================== */

#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
/* mingw-w64: C99 printf (%zu, %lld) instead of the old msvcrt one */
#if defined(__MINGW32__) && !defined(__USE_MINGW_ANSI_STDIO)
#define __USE_MINGW_ANSI_STDIO 1
#endif

#include "slm.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#if !defined(SLM_NO_STDIO)
#include <stdio.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The embedded profile (SLM_NO_STDIO, SLM_NO_MALLOC, SLM_NO_THREADS) builds
   for bare-metal targets (arm-none-eabi with newlib: -Wall -Wextra clean,
   run under QEMU by `make test-embedded`): no files, no mmap, no threads,
   and with SLM_NO_MALLOC no heap; libm, the string functions and clock()
   (timings only) are all it needs. SLM_NO_STDIO implies SLM_NO_MMAP.
   GCC 12.2 for Cortex-M55 needs -fno-if-conversion2: it emits a
   conditional VCVT as "vcvtne", which the MVE assembler rejects. */
#if defined(SLM_NO_STDIO) && !defined(SLM_NO_MMAP)
#define SLM_NO_MMAP 1
#endif

#if !defined(SLM_NO_MMAP) && (defined(__unix__) || defined(__APPLE__))
#define SLM_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

/* Windows: UTF-8 paths through the wide-character calls, 64-bit file
   offsets, copy-on-write file mapping (wide_path, map_file). */
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#if !defined(SLM_NO_MMAP)
#define SLM_HAVE_MMAP 1
#endif
#endif

#if defined(_OPENMP) && !defined(SLM_NO_THREADS)
#include <omp.h>
#if !defined(_WIN32) || defined(__MINGW32__)
#include <pthread.h>
#endif
#define SLM_OPENMP 1
#else
#define SLM_OPENMP 0
#endif

/* Byte order: GGUF is little-endian and the weights are used in place, so
   every multi-byte field is read with explicit little-endian loads; F32 data
   in slm's own buffers is kept little-endian too. Big-endian hosts work
   (s390x runs the whole suite) with the scalar kernels. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define SLM_BIG_ENDIAN 1
#else
#define SLM_BIG_ENDIAN 0
#endif

/* SIMD kernels (appendix E). On x86-64 with GCC or Clang every x86 kernel
   set (SSE4.1, AVX2, AVX-512 with VNNI) is compiled into every build, each
   in a region with its own target attribute, and a model chooses the best
   one the CPU and the OS support when it loads (appendix E8), so a build
   without -march flags runs the fastest kernels the machine has.
   So does aarch64 (neon, dotprod, i8mm).
   Elsewhere the kernels follow the target's macros, i.e. the compiler
   flags: -mfpu=neon-vfpv4, -march=rv64gcv,
   -mcpu=cortex-m55 (Helium), and on x86 compilers without target
   attributes (MSVC: /arch:AVX2) -mavx2 -mfma -mf16c or -msse4.1.
   -DSLM_NO_SIMD forces the scalar reference kernels; -DSLM_NO_DISPATCH
   keeps the x86 and aarch64 selection at compile time
   (-march=armv8.2-a+dotprod, +i8mm). The SIMD kernels read
   little-endian blocks with vector loads, so big-endian hosts use scalar. */
#if defined(SLM_NO_SIMD) || SLM_BIG_ENDIAN
#define SLM_SIMD_NAME "scalar"
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SLM_NO_DISPATCH)
#define SLM_X86_DISPATCH 1
#define SLM_SSE4 1
#define SLM_AVX2 1
#define SLM_SIMD_NAME "scalar,sse4,avx2,avx512"
#include <cpuid.h>
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define SLM_AVX2 1
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && \
    defined(__AVX512VNNI__)
#define SLM_SIMD_NAME "avx2,avx512" /* the AVX-512 kernels too (appendix E2) */
#else
#define SLM_SIMD_NAME "avx2"
#endif
#include <immintrin.h>
#elif defined(__SSE4_1__) && defined(__SSSE3__)
#define SLM_SSE4 1
#define SLM_SIMD_NAME "sse4"
#include <immintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON)
/* aarch64 with GCC or Clang: the SDOT (dotprod) and SMMLA (i8mm) kernels
   are compiled into every build and chosen at run time, as on x86-64;
   with SLM_NO_DISPATCH (or another compiler) the flags decide. */
#define SLM_NEON 1
#define SLM_NEON_NAME "neon"
#if (defined(__GNUC__) || defined(__clang__)) && !defined(SLM_NO_DISPATCH)
#define SLM_ARM_DISPATCH 1
#define SLM_NEON_DOTPROD 1
#define SLM_NEON_I8MM 1
#define SLM_SIMD_NAME "scalar,neon,dotprod,i8mm"
#elif defined(__ARM_FEATURE_DOTPROD) && defined(__ARM_FEATURE_MATMUL_INT8)
#define SLM_NEON_DOTPROD 1
#define SLM_NEON_I8MM 1
#define SLM_SIMD_NAME "i8mm"
#elif defined(__ARM_FEATURE_DOTPROD)
#define SLM_NEON_DOTPROD 1
#define SLM_SIMD_NAME "dotprod"
#else
#define SLM_SIMD_NAME "neon"
#endif
#include <arm_neon.h>
/* what the OS says the CPU has (E8) */
#if defined(SLM_ARM_DISPATCH) && (defined(__linux__) || defined(__ANDROID__)) && defined(__has_include)
#if __has_include(<sys/auxv.h>)
#include <sys/auxv.h>
#define SLM_HAVE_GETAUXVAL 1
#endif
#elif defined(SLM_ARM_DISPATCH) && defined(__APPLE__)
/* <sys/sysctl.h> needs types that _POSIX_C_SOURCE hides */
extern int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
#endif
#elif defined(__arm__) && defined(__ARM_NEON)
#define SLM_NEON 1
#define SLM_NEON_NAME "neon32"
#define SLM_SIMD_NAME "neon32"
#include <arm_neon.h>
#elif defined(__riscv_v_intrinsic) && __riscv_v_intrinsic >= 12000 && defined(__riscv_v_min_vlen) && \
    __riscv_v_min_vlen >= 128
#define SLM_RVV 1
#define SLM_SIMD_NAME "rvv"
#include <riscv_vector.h>
#elif defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define SLM_MVE 1
#define SLM_SIMD_NAME "mve"
#include <arm_mve.h>
#else
#define SLM_SIMD_NAME "scalar"
#endif

/* The regions of x86 kernels: every function between BEGIN and END gets
   the target attribute (GCC: pragma target; Clang: attribute push). With
   fixed selection the region is compiled for the build's own flags. */
#if defined(SLM_X86_DISPATCH) && defined(__clang__)
#define SLM_TARGET_SSE4 _Pragma("clang attribute push(__attribute__((target(\"sse4.1,ssse3\"))), apply_to = function)")
#define SLM_TARGET_AVX2 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c\"))), apply_to = function)")
#define SLM_TARGET_AVX512 _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c\"))), apply_to = function)")
#define SLM_TARGET_END _Pragma("clang attribute pop")
#elif defined(SLM_X86_DISPATCH)
#define SLM_TARGET_SSE4 _Pragma("GCC push_options") _Pragma("GCC target(\"sse4.1,ssse3\")")
#define SLM_TARGET_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c\")")
#define SLM_TARGET_AVX512 _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c\")")
#define SLM_TARGET_END _Pragma("GCC pop_options")
#else
#define SLM_TARGET_SSE4
#define SLM_TARGET_AVX2
#define SLM_TARGET_AVX512
#define SLM_TARGET_END
#endif
/* The AVX-512 (VNNI) kernels are compiled in: every dispatch build, and a
   fixed build whose flags have F, BW, VL, DQ and VNNI (the forward pass and
   the kernel appendix both test this). */
#if defined(SLM_X86_DISPATCH) || (defined(SLM_AVX2) && defined(__AVX512F__) && defined(__AVX512BW__) && \
                                  defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__AVX512VNNI__))
#define SLM_HAVE_AVX512_KERNELS 1
#endif

/* aarch64 dispatch builds: the SDOT entry points carry the dotprod target,
   the SMMLA kernels the i8mm one (function attributes: with GCC 12 a pragma
   region leaked its arch into the functions after it, which then used LSE
   atomics). The kernels emit SDOT and SMMLA as instructions (E4), so the
   target is for the assembler: GCC writes
   ".arch armv8.2-a+dotprod" before such a function (binutils 2.40 wants
   armv8.2-a for both). The kernels they inline are compiled for the
   build's flags, which must be a subset: with -march=armv8-a+crypto (an
   extension beyond armv8.2-a) add +dotprod or use SLM_NO_DISPATCH. */
#if defined(SLM_ARM_DISPATCH) && defined(__clang__)
#define SLM_TARGET_DOTPROD __attribute__((target("dotprod")))
#define SLM_TARGET_I8MM __attribute__((target("dotprod,i8mm")))
#elif defined(SLM_ARM_DISPATCH)
#if defined(__ARM_FEATURE_DOTPROD)
#define SLM_TARGET_DOTPROD
#define SLM_TARGET_I8MM __attribute__((target("+i8mm")))
#else
#define SLM_TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define SLM_TARGET_I8MM __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#endif
#else
#define SLM_TARGET_DOTPROD
#define SLM_TARGET_I8MM
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SLM_INLINE static inline __attribute__((always_inline))
#define SLM_UNUSED __attribute__((unused))
#if defined(__MINGW32__)
#define SLM_PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#else
#define SLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#endif
#else
#define SLM_INLINE static inline
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


/* Defined in appendix A: */
static SLM_UNUSED int fmt_vsn_own(char *buf, size_t size, const char *fmt, va_list ap);

#if defined(SLM_NO_STDIO)
#define fmt_vsn fmt_vsn_own
#else
#define fmt_vsn vsnprintf
#endif

static SLM_PRINTF(3, 4) int fmt_sn(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = fmt_vsn(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* Record a failure in *err (if given) and return the status. */
static SLM_PRINTF(3, 4) slm_status seterr(slm_error *err, slm_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = st;
        fmt_vsn(err->message, sizeof err->message, fmt, ap);
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
#if defined(SLM_NO_MALLOC)
        (void)size;
        return NULL; /* no heap: pass an allocator */
#else
        if (size > SIZE_MAX - SLM_ALIGN - sizeof(void *)) return NULL;
        unsigned char *raw = (unsigned char *)malloc(size + SLM_ALIGN + sizeof(void *));
        if (!raw) return NULL;
        uintptr_t p = ((uintptr_t)raw + sizeof(void *) + SLM_ALIGN - 1) & ~(uintptr_t)(SLM_ALIGN - 1);
        ((void **)p)[-1] = raw;
        return (void *)p;
#endif
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
#if !defined(SLM_NO_MALLOC)
        free(((void **)p)[-1]);
#endif
        return;
    }
    a->hook.free(a->hook.user, p, size ? size : 1);
}

/* Strings need no alignment: with an allocator hook they are asked with
   align 1, so that an arena packs them (the GGUF reader's string pool). */
static void *xalloc_small(const allocator *a, size_t size) {
    if (a->is_default) return xalloc(a, size);
    return a->hook.alloc(a->hook.user, size ? size : 1, 1);
}

/* --- arena ------------------------------------------------------------------
   slm_arena: all memory from one caller buffer, no heap. A stack with
   deferred frees: every block has a small header (the top before it, the
   block below, a freed flag); freeing the topmost block pops it and every
   freed block under it. Memory a model or session keeps for its lifetime
   sits at the bottom; what one call allocates and frees (tokenizer buffers,
   the sampler of slm_generate) is all given back when the call returns, so
   repeated calls do not creep. Placement depends only on the offsets, so
   the same code, run on offsets alone (arena_sim), tells how many bytes a
   model load needs (slm_model_memory_size). */

typedef struct arena_blk {
    size_t prev_top;          /* the arena top before this block */
    struct arena_blk *below;  /* the block under this one */
    size_t freed;
} arena_blk;

#define ARENA_HDR sizeof(arena_blk)

/* Where a block of `size` bytes aligned to `align` goes, for a top at
   address `top` (header just below the block); 0 on overflow. */
static size_t arena_place(size_t top, size_t size, size_t align, size_t *end) {
    if (align < sizeof(size_t)) align = sizeof(size_t); /* for the header */
    if (top > SIZE_MAX - ARENA_HDR - align) return 0;
    size_t start = (top + ARENA_HDR + align - 1) & ~(align - 1);
    if (size > SIZE_MAX - start) return 0;
    *end = start + size;
    return start;
}

static void *arena_alloc_(void *user, size_t size, size_t align) {
    slm_arena *ar = (slm_arena *)user;
    if (!ar || align == 0 || (align & (align - 1)) != 0) return NULL;
    uintptr_t base = (uintptr_t)ar->base;
    size_t end, start = arena_place((size_t)base + ar->top, size, align, &end);
    if (!start || end - (size_t)base > ar->size) {
        ar->n_failed++;
        return NULL;
    }
    arena_blk *h = (arena_blk *)(start - ARENA_HDR);
    h->prev_top = ar->top;
    h->below = (arena_blk *)ar->last;
    h->freed = 0;
    ar->last = h;
    ar->top = end - (size_t)base;
    if (ar->top > ar->peak) ar->peak = ar->top;
    ar->n_blocks++;
    return (void *)start;
}

static void arena_free_(void *user, void *ptr, size_t size) {
    slm_arena *ar = (slm_arena *)user;
    (void)size;
    if (!ar || !ptr) return;
    ((arena_blk *)((uintptr_t)ptr - ARENA_HDR))->freed = 1;
    ar->n_blocks--;
    for (arena_blk *h = (arena_blk *)ar->last; h && h->freed; h = (arena_blk *)ar->last) {
        ar->top = h->prev_top;
        ar->last = h->below;
    }
}

void slm_arena_init(slm_arena *ar, void *buffer, size_t size) {
    if (!ar) return;
    memset(ar, 0, sizeof *ar);
    ar->base = (unsigned char *)buffer;
    ar->size = buffer ? size : 0;
    ar->allocator.alloc = arena_alloc_;
    ar->allocator.free = arena_free_;
    ar->allocator.user = ar;
}

size_t slm_arena_used(const slm_arena *ar) { return ar ? ar->top : 0; }
size_t slm_arena_peak(const slm_arena *ar) { return ar ? ar->peak : 0; }

/* The arena's bookkeeping on offsets alone (base 0, i.e. a 64-byte aligned
   buffer) over real blocks from another allocator: the record of each
   simulated block sits in a 64-byte prefix of its real block. */
typedef struct arena_sim_blk {
    arena_blk b;
    size_t real_size;
} arena_sim_blk;

typedef struct arena_sim {
    const allocator *under;
    size_t top, peak;
    arena_sim_blk *last;
    int failed;
} arena_sim;

static void *arena_sim_alloc(void *user, size_t size, size_t align) {
    arena_sim *sm = (arena_sim *)user;
    size_t end, start = arena_place(sm->top, size, align, &end);
    if (!start || size > SIZE_MAX - SLM_ALIGN) {
        sm->failed = 1;
        return NULL;
    }
    arena_sim_blk *r = (arena_sim_blk *)xalloc(sm->under, size + SLM_ALIGN);
    if (!r) {
        sm->failed = 1;
        return NULL;
    }
    r->b.prev_top = sm->top;
    r->b.below = (arena_blk *)sm->last;
    r->b.freed = 0;
    r->real_size = size + SLM_ALIGN;
    sm->last = r;
    sm->top = end;
    if (end > sm->peak) sm->peak = end;
    return (uint8_t *)r + SLM_ALIGN;
}

static void arena_sim_free(void *user, void *ptr, size_t size) {
    arena_sim *sm = (arena_sim *)user;
    (void)size;
    if (!ptr) return;
    ((arena_sim_blk *)((uint8_t *)ptr - SLM_ALIGN))->b.freed = 1;
    while (sm->last && sm->last->b.freed) {
        arena_sim_blk *r = sm->last;
        sm->top = r->b.prev_top;
        sm->last = (arena_sim_blk *)r->b.below;
        xfree(sm->under, r, r->real_size);
    }
}

/* ========================================================================== */
/* 3. Small utilities and files                                               */
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

static inline void st_u32(void *p, uint32_t v) {
    uint8_t *b = (uint8_t *)p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

static inline float ld_f32(const void *p) { return bits_f32(ld_u32(p)); }
static inline void st_f32(void *p, float f) { st_u32(p, f32_bits(f)); }

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

/* Clamp to [-127, 127]; NaN (from an inf or NaN activation) becomes 0, so
   that hostile weights give garbage numbers but never undefined behaviour. */
static inline float clamp127(float v) {
    return v >= -127.0f ? (v <= 127.0f ? v : 127.0f) : (v < -127.0f ? -127.0f : 0.0f);
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Open-addressing string -> index map (indices into a caller's array). The
   map holds no strings: the caller's arrays of pointers and lengths (views
   into the file) are the keys. 32-bit slots: a vocabulary's map is a third
   of its size in memory, and no index goes past INT32_MAX. */
typedef struct strmap {
    int32_t *slots; /* (cap,) index, -1 = empty */
    size_t cap;     /* power of two, >= 2 n + 1 */
} strmap;

static int strmap_init(strmap *m, const allocator *a, size_t n) {
    size_t cap = 16;
    if (n > (size_t)INT32_MAX / 4) return 0;
    while (cap < n * 2 + 1) cap *= 2;
    m->slots = (int32_t *)xalloc(a, cap * sizeof(int32_t));
    if (!m->slots) return 0;
    for (size_t i = 0; i < cap; i++) m->slots[i] = -1;
    m->cap = cap;
    return 1;
}

static void strmap_free(strmap *m, const allocator *a) {
    xfree(a, m->slots, m->cap * sizeof(int32_t));
    m->slots = NULL;
}

/* Find `key`; keys[] gives the name of each stored index. Returns the index
   or -1; *slot receives the slot where it is or would go. */
static int64_t strmap_find(const strmap *m, const char *const *keys, const size_t *lens,
                           const char *key, size_t len, size_t *slot) {
    size_t i = (size_t)hash_bytes(key, len) & (m->cap - 1);
    for (;;) {
        int64_t v = m->slots[i];  /* widened: callers take int64_t */
        if (v < 0 || (lens[v] == len && memcmp(keys[v], key, len) == 0)) {
            if (slot) *slot = i;
            return v;
        }
        i = (i + 1) & (m->cap - 1);
    }
}

/* Wall-clock milliseconds from an arbitrary origin (for timings only). */
static double now_ms(void) {
#if defined(_WIN32)
    LARGE_INTEGER c, f;
    if (QueryPerformanceCounter(&c) && QueryPerformanceFrequency(&f) && f.QuadPart > 0)
        return (double)c.QuadPart * 1e3 / (double)f.QuadPart;
#elif defined(CLOCK_MONOTONIC) && (defined(__unix__) || defined(__APPLE__))
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && defined(TIME_UTC)
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) == TIME_UTC) return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
#endif
    return (double)clock() * 1e3 / CLOCKS_PER_SEC; /* processor time: the best C99 offers */
}

/* --- files: names, opening, reading, mapping (the platform's file calls) --- */
/* Files: slm's only contact with stdio (models, session state, output
   files). SLM_NO_STDIO builds have none: the file calls say so before they
   get here. */
#if !defined(SLM_NO_STDIO)
#include <errno.h>
#if defined(__unix__) || defined(__APPLE__)
#define SLM_POSIX_FILES 1
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
/* O_TMPFILE has the generic value on these Linux targets (glibc only
   defines it with _GNU_SOURCE); a kernel or filesystem without it fails
   the open, and a named temporary file is used instead. */
#if defined(__linux__) && defined(O_DIRECTORY)
#if defined(O_TMPFILE)
#define SLM_O_TMPFILE O_TMPFILE
#elif defined(__x86_64__) || defined(__i386__) || defined(__aarch64__) || defined(__arm__) || defined(__riscv) || \
    defined(__s390x__)
#define SLM_O_TMPFILE (020000000 | O_DIRECTORY)
#endif
#endif
#endif

/* An errno or a Windows error as text, for messages. */
static const char *os_reason(int e) { return e ? strerror(e) : "unknown error"; }

#if defined(_WIN32)
static const char *win_reason(DWORD e) {
    switch (e) {
    case ERROR_FILE_NOT_FOUND: return "No such file or directory";
    case ERROR_PATH_NOT_FOUND: return "No such file or directory (path not found)";
    case ERROR_ACCESS_DENIED: return "Permission denied";
    case ERROR_SHARING_VIOLATION: return "The file is in use by another process";
    case ERROR_DISK_FULL: case ERROR_HANDLE_DISK_FULL: return "No space left on device";
    case ERROR_WRITE_PROTECT: return "Read-only file system";
    default: return "Windows error";
    }
}
#endif

/* Files by UTF-8 name on every platform. Windows: the name goes through
   the wide-character calls (a name that is not valid UTF-8 is taken in the
   ANSI code page, as by the narrow calls), offsets are 64-bit. */
#if defined(_WIN32)
/* UTF-16 copy of a UTF-8 path in *w (xfree with *bytes), NULL if the path
   is not UTF-8; 0 if out of memory. */
static int wide_path(const allocator *a, const char *path, wchar_t **w, size_t *bytes) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
    *w = NULL;
    if (n <= 0) return 1;
    *bytes = (size_t)n * sizeof(wchar_t);
    if (!(*w = (wchar_t *)xalloc(a, *bytes))) return 0;
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, *w, n) != n) {
        xfree(a, *w, *bytes);
        *w = NULL;
    }
    return 1;
}
#endif

/* fopen; *oom is set if it failed for lack of memory. */
static FILE *file_open(const allocator *a, const char *path, const char *mode, int *oom) {
    *oom = 0;
#if defined(_WIN32)
    size_t nb = 0;
    wchar_t *w;
    if (!wide_path(a, path, &w, &nb)) {
        *oom = 1;
        return NULL;
    }
    if (w) {
        wchar_t wm[8];
        size_t i = 0;
        for (; mode[i] && i < 7; i++) wm[i] = (wchar_t)(unsigned char)mode[i];
        wm[i] = 0;
        FILE *f = _wfopen(w, wm);
        xfree(a, w, nb);
        return f;
    }
#else
    (void)a;
#endif
    return fopen(path, mode);
}

/* The size of an open file (position at its start again), -1 if unknown. */
static long long file_size(FILE *f) {
    long long sz = -1;
#if defined(_WIN32)
    if (_fseeki64(f, 0, SEEK_END) == 0) sz = _ftelli64(f);
    if (_fseeki64(f, 0, SEEK_SET) != 0) sz = -1;
#else
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (fseek(f, 0, SEEK_SET) != 0) sz = -1;
#endif
    return sz;
}

static size_t file_write(void *f, const void *p, size_t n) { return fwrite(p, 1, n, (FILE *)f); }
#else
static size_t file_write(void *f, const void *p, size_t n) { return (void)f, (void)p, (void)n, 0; }
#endif

#if !defined(SLM_NO_STDIO)

/* Read a whole file into memory from allocator a: *bytes (xfree with *size). */
static slm_status read_file(const allocator *a, const char *path, const uint8_t **bytes, size_t *size, slm_error *err) {
    int oom;
    FILE *f = file_open(a, path, "rb", &oom);
    if (!f && oom) return seterr(err, SLM_ERR_NOMEM, "out of memory opening '%s'", path);
    if (!f) return seterr(err, SLM_ERR_IO, "cannot open '%s': %s", path, os_reason(errno));
#if defined(SLM_POSIX_FILES)
    {
        struct stat sb;
        if (fstat(fileno(f), &sb) == 0 && !S_ISREG(sb.st_mode)) {
            fclose(f);
            return seterr(err, SLM_ERR_IO, "cannot load '%s': %s", path,
                          S_ISDIR(sb.st_mode) ? "it is a directory, not a model file" : "not a regular file");
        }
    }
#endif
    long long sz = file_size(f);
    if (sz < 0) {
        fclose(f);
        return seterr(err, SLM_ERR_IO, "cannot determine the size of '%s'", path);
    }
    if ((unsigned long long)sz > SIZE_MAX - 64) {
        fclose(f);
        return seterr(err, SLM_ERR_NOMEM, "'%s' (%lld bytes) does not fit in memory", path, sz);
    }
    uint8_t *buf = (uint8_t *)xalloc(a, (size_t)sz);
    if (!buf) {
        fclose(f);
        return seterr(err, SLM_ERR_NOMEM, "out of memory reading '%s' (%lld bytes)", path, sz);
    }
    /* in pieces: some C libraries fail single reads of several GB */
    size_t got = 0, chunk = (size_t)1 << 30;
    while (got < (size_t)sz) {
        size_t want = SLM_MIN(chunk, (size_t)sz - got), n = fread(buf + got, 1, want, f);
        got += n;
        if (n != want) break;
    }
    fclose(f);
    if (got != (size_t)sz) {
        xfree(a, buf, (size_t)sz);
        return seterr(err, SLM_ERR_IO, "short read on '%s': %zu of %lld bytes", path, got, sz);
    }
    *bytes = buf;
    *size = (size_t)sz;
    return SLM_OK;
}
#else
static slm_status read_file(const allocator *a, const char *path, const uint8_t **bytes, size_t *size, slm_error *err) {
    (void)a, (void)bytes, (void)size;
    return seterr(err, SLM_ERR_UNSUPPORTED, "cannot read '%s': built with SLM_NO_STDIO, without file access (models load with slm_model_load_memory)", path);
}
#endif

#if defined(SLM_HAVE_MMAP) && defined(_WIN32)
/* Map a file copy-on-write (FILE_MAP_COPY: matrices repacked at load become
   private copies of their pages, the rest stays the file's); returns 0 (and
   no error) if mapping is not possible so that the caller falls back to
   reading. The model unmaps it (model_release). */
static int map_file(const allocator *a, const char *path, const uint8_t **bytes, size_t *size, slm_error *err,
                    slm_status *st) {
    size_t nb = 0;
    wchar_t *w;
    if (!wide_path(a, path, &w, &nb)) {
        *st = seterr(err, SLM_ERR_NOMEM, "out of memory opening '%s'", path);
        return 0;
    }
    const DWORD share = FILE_SHARE_READ | FILE_SHARE_DELETE;
    HANDLE fh = w ? CreateFileW(w, GENERIC_READ, share, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL)
                  : CreateFileA(path, GENERIC_READ, share, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (w) xfree(a, w, nb);
    *st = SLM_OK;
    if (fh == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND || e == ERROR_ACCESS_DENIED)
            *st = seterr(err, SLM_ERR_IO, "cannot open '%s': %s", path, win_reason(e));
        return 0; /* e.g. a sharing violation: reading may still work */
    }
    LARGE_INTEGER sz;
    if (!GetFileSizeEx(fh, &sz) || sz.QuadPart <= 0 || (unsigned long long)sz.QuadPart > SIZE_MAX) {
        CloseHandle(fh);
        return 0;
    }
    HANDLE mh = CreateFileMappingW(fh, NULL, PAGE_WRITECOPY, 0, 0, NULL);
    CloseHandle(fh);
    if (!mh) return 0;
    void *p = MapViewOfFile(mh, FILE_MAP_COPY, 0, 0, 0);
    CloseHandle(mh); /* the view keeps the mapping */
    if (!p) return 0;
    *bytes = (const uint8_t *)p;
    *size = (size_t)sz.QuadPart;
    return 1;
}
#elif defined(SLM_HAVE_MMAP)
/* Map a file read-only; returns 0 (and no error) if mapping is not possible
   so that the caller falls back to reading. */
static int map_file(const allocator *a, const char *path, const uint8_t **bytes, size_t *size, slm_error *err,
                    slm_status *st) {
    int fd = open(path, O_RDONLY);
    (void)a;
    *st = SLM_OK;
    if (fd < 0) {
        *st = seterr(err, SLM_ERR_IO, "cannot open '%s': %s", path, os_reason(errno));
        return 0;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        close(fd);
        *st = seterr(err, SLM_ERR_IO, "cannot load '%s': it is a directory, not a model file", path);
        return 0;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 || (unsigned long long)sb.st_size > SIZE_MAX) {
        close(fd);
        return 0;
    }
    /* private and writable: matrices repacked at load (section 5, x8)
       become private copies of their pages, the rest stays the file's */
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return 0;
    *bytes = (const uint8_t *)p;
    *size = (size_t)sb.st_size;
    return 1;
}
#endif

/* An output file being written (of_open, of_write, of_commit, of_abort);
   the session state, the GGUF writer and the quantizer hold one. */
#if !defined(SLM_NO_STDIO)
enum { OF_RENAME, OF_DIRECT };
#define OF_BUF ((size_t)1 << 16)

typedef struct ofile {
    const allocator *a;
    const char *path;   /* as the caller gave it, for messages */
    char *target;       /* where the data ends up (symlinks resolved) [tcap] */
    char *tmp;          /* our named temporary file, NULL while none [tcap] */
    size_t tcap;
    int mode;           /* OF_RENAME or OF_DIRECT */
    int anon;           /* POSIX: fd is an O_TMPFILE without a name yet */
#if defined(_WIN32)
    HANDLE h;
#elif defined(SLM_POSIX_FILES)
    int fd;
    int keep_mode;      /* mode of the replaced file, -1 if none */
#else
    FILE *f;
#endif
    uint8_t *buf;       /* write buffer [OF_BUF] */
    size_t n;           /* bytes in buf */
    uint64_t written;   /* bytes handed to of_write */
    slm_status st;
    slm_error *err;
} ofile;
#endif
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

/* Strings stay in the file (the mapping, the buffer the model reads the file
   into, or the caller's buffer: all live as long as the model). Arrays of
   strings (token pieces, merges) are views: a pointer and a length per
   element, never copied. Keys, tensor names and string scalars, which the
   API hands out as C strings, are copied once into one pool (their total is
   a few KB, whatever the vocabulary size). */
typedef struct gguf_kv {
    const char *key;    /* NUL-terminated, in the pool (a view into the file while parsing) */
    size_t key_len;
    int type;           /* SLM_META_* */
    int arr_type;       /* element type for arrays */
    uint64_t count;     /* array element count (1 for scalars) */
    size_t value_off;   /* file offset of the value (array: of the first element;
                           string: of its bytes, after the u64 length) */
    size_t *elem_off;   /* (count,) arrays of arrays: file offset of each element */
    const char *str[1]; /* string scalar: str[0] is a NUL-terminated copy in the pool */
    size_t str_len;     /*   its length (it may hold NUL bytes) */
    const char **sv;    /* (count,) arrays of strings: each element's bytes in the file,
                           not NUL-terminated */
    size_t *sl;         /* (count,) and their lengths */
} gguf_kv;

typedef struct gguf_tensor {
    const char *name;   /* NUL-terminated, in the pool (a view into the file while parsing) */
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
    const char **kv_names; size_t *kv_lens; /* (n_kv,) keys for strmap */
    const char **t_names; size_t *t_lens;   /* (n_tensors,) names for strmap */
    char *pool;         /* (pool_size,) the C strings: keys, tensor names, string scalars */
    size_t pool_size;
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
            seterr(r->err, SLM_ERR_FORMAT, "key '%s': unknown array element type %u at offset %zu", key, (unsigned)et, at);
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

/* Every array is allocated for max(count, 1) entries and freed with that
   size (an allocator hook gets the size it was asked for). */
static void gguf_free(gguf_file *g, const allocator *a) {
    size_t nkv = g->n_kv ? (size_t)g->n_kv : 1, nt = g->n_tensors ? (size_t)g->n_tensors : 1;
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            gguf_kv *kv = &g->kv[i];
            size_t n = kv->count ? (size_t)kv->count : 1;
            xfree(a, kv->elem_off, n * sizeof(size_t));
            xfree(a, (void *)kv->sv, n * sizeof(char *));
            xfree(a, kv->sl, n * sizeof(size_t));
        }
        xfree(a, g->kv, nkv * sizeof(gguf_kv));
    }
    xfree(a, g->tensors, nt * sizeof(gguf_tensor));
    xfree(a, (void *)g->kv_names, nkv * sizeof(char *));
    xfree(a, g->kv_lens, nkv * sizeof(size_t));
    xfree(a, (void *)g->t_names, nt * sizeof(char *));
    xfree(a, g->t_lens, nt * sizeof(size_t));
    if (g->kv_map.slots) strmap_free(&g->kv_map, a);
    if (g->tensor_map.slots) strmap_free(&g->tensor_map, a);
    xfree(a, g->pool, g->pool_size);
    memset(g, 0, sizeof *g);
}

/* A file string as a C string for messages (cut at `size` - 1 bytes or at a
   NUL byte): keys and tensor names before the pool holds them. */
static const char *show_str(char *buf, size_t size, const uint8_t *p, size_t n) {
    size_t k = SLM_MIN(n, size - 1);
    memcpy(buf, p, k);
    buf[k] = 0;
    return buf;
}

/* An array of strings: a view per element (pointer into the file, length),
   each length checked against the bytes that remain. */
static int gguf_read_str_array(reader *r, gguf_kv *kv, size_t n, const char *name) {
    kv->sv = (const char **)xalloc(r->a, (n ? n : 1) * sizeof(char *));
    kv->sl = (size_t *)xalloc(r->a, (n ? n : 1) * sizeof(size_t));
    if (!kv->sv || !kv->sl) return seterr(r->err, SLM_ERR_NOMEM, "out of memory indexing key '%s'", name), 0;
    for (size_t i = 0; i < n; i++) {
        size_t off, len;
        if (!rd_str(r, &off, &len, name)) return 0;
        kv->sv[i] = (const char *)r->p + off;
        kv->sl[i] = len;
    }
    return 1;
}

static int gguf_read_kv(reader *r, gguf_kv *kv) {
    size_t koff, klen;
    size_t at = r->pos;
    uint32_t t;
    char name[96]; /* the key, for messages */
    if (!rd_str(r, &koff, &klen, "metadata key")) return 0;
    kv->key = (const char *)r->p + koff;
    kv->key_len = klen;
    show_str(name, sizeof name, r->p + koff, klen);
    if (!rd_u32(r, &t, name)) return 0;
    if (t > 12) {
        seterr(r->err, SLM_ERR_FORMAT, "key '%s' (offset %zu): unknown value type %u", name, at, (unsigned)t);
        return 0;
    }
    kv->type = (int)t;
    kv->count = 1;
    if (t == SLM_META_STRING) {
        size_t off, len;
        if (!rd_str(r, &off, &len, name)) return 0;
        kv->value_off = off;
        kv->str_len = len;
        return 1;
    }
    if (t != SLM_META_ARRAY) {
        kv->value_off = r->pos;
        return rd_skip_value(r, (int)t, 0, name);
    }
    uint32_t et;
    uint64_t n;
    if (!rd_u32(r, &et, name) || !rd_u64(r, &n, name)) return 0;
    if (et > 12) {
        seterr(r->err, SLM_ERR_FORMAT, "key '%s': unknown array element type %u", name, (unsigned)et);
        return 0;
    }
    kv->arr_type = (int)et;
    kv->value_off = r->pos;
    size_t esz = meta_scalar_size((int)et);
    if (esz) {
        if (n > (r->size - r->pos) / esz) {
            seterr(r->err, SLM_ERR_FORMAT, "key '%s': array of %llu %s exceeds the file (offset %zu)", name,
                   (unsigned long long)n, meta_type_name((int)et), r->pos);
            return 0;
        }
        kv->count = n;
        r->pos += (size_t)n * esz;
        return 1;
    }
    if (n > (r->size - r->pos) / 8) {
        seterr(r->err, SLM_ERR_FORMAT, "key '%s': array count %llu exceeds the file (offset %zu)", name,
               (unsigned long long)n, r->pos);
        return 0;
    }
    kv->count = n; /* first: gguf_free frees the element arrays by it */
    if (et == SLM_META_STRING) return gguf_read_str_array(r, kv, (size_t)n, name);
    kv->elem_off = (size_t *)xalloc(r->a, ((size_t)n ? (size_t)n : 1) * sizeof(size_t));
    if (!kv->elem_off) return seterr(r->err, SLM_ERR_NOMEM, "out of memory indexing key '%s'", name), 0;
    for (uint64_t i = 0; i < n; i++) {
        kv->elem_off[i] = r->pos;
        if (!rd_skip_value(r, (int)et, 1, name)) return 0;
    }
    return 1;
}

/* Copy keys, tensor names and string scalars into one pool as C strings
   (the API returns them as such) and point the directory at the copies. */
static slm_status gguf_build_pool(gguf_file *g, const allocator *a, slm_error *err) {
    size_t nkv = (size_t)g->n_kv, nt = (size_t)g->n_tensors, total = 0;
    /* each string lies in the file after its 8-byte length: no overflow */
    for (size_t i = 0; i < nkv; i++)
        total += g->kv[i].key_len + 1 + (g->kv[i].type == SLM_META_STRING ? g->kv[i].str_len + 1 : 0);
    for (size_t i = 0; i < nt; i++) total += g->tensors[i].name_len + 1;
    g->pool = (char *)xalloc_small(a, total ? total : 1);
    if (!g->pool) return seterr(err, SLM_ERR_NOMEM, "out of memory for %zu bytes of names", total);
    g->pool_size = total ? total : 1;
    char *p = g->pool;
    for (size_t i = 0; i < nkv; i++) {
        gguf_kv *kv = &g->kv[i];
        memcpy(p, kv->key, kv->key_len);
        p[kv->key_len] = 0;
        kv->key = g->kv_names[i] = p;
        p += kv->key_len + 1;
        if (kv->type == SLM_META_STRING) {
            memcpy(p, g->data + kv->value_off, kv->str_len);
            p[kv->str_len] = 0;
            kv->str[0] = p;
            p += kv->str_len + 1;
        }
    }
    for (size_t i = 0; i < nt; i++) {
        gguf_tensor *t = &g->tensors[i];
        memcpy(p, t->name, t->name_len);
        p[t->name_len] = 0;
        t->name = g->t_names[i] = p;
        p += t->name_len + 1;
    }
    return SLM_OK;
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
            return seterr(err, SLM_ERR_UNSUPPORTED, "big-endian GGUF file (version %u byte-swapped) is not supported", (unsigned)sw);
        return seterr(err, SLM_ERR_FORMAT, "unknown GGUF version %u", (unsigned)g->version);
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
    g->kv_names = (const char **)xcalloc(a, nkv ? nkv : 1, sizeof(char *));
    g->kv_lens = (size_t *)xcalloc(a, nkv ? nkv : 1, sizeof(size_t));
    g->tensors = (gguf_tensor *)xcalloc(a, nt ? nt : 1, sizeof(gguf_tensor));
    g->t_names = (const char **)xcalloc(a, nt ? nt : 1, sizeof(char *));
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
        char name[96];
        if (strmap_find(&g->kv_map, g->kv_names, g->kv_lens, kv->key, kv->key_len, &slot) >= 0)
            return seterr(err, SLM_ERR_FORMAT, "duplicate metadata key '%s'",
                          show_str(name, sizeof name, (const uint8_t *)kv->key, kv->key_len));
        if (memchr(kv->key, 0, kv->key_len))
            return seterr(err, SLM_ERR_FORMAT, "metadata key #%zu contains a NUL byte", i);
        g->kv_names[i] = kv->key;
        g->kv_lens[i] = kv->key_len;
        g->kv_map.slots[slot] = (int32_t)i;
        if (kv->key_len == 17 && memcmp(kv->key, "general.alignment", 17) == 0) {
            if (kv->type != SLM_META_U32)
                return seterr(err, SLM_ERR_FORMAT, "general.alignment has type %s, expected u32", meta_type_name(kv->type));
            uint32_t al = ld_u32(data + kv->value_off);
            if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 16))
                return seterr(err, SLM_ERR_FORMAT, "general.alignment %u is not a power of two <= 65536", (unsigned)al);
            g->alignment = al;
        }
    }

    for (size_t i = 0; i < nt; i++) {
        gguf_tensor *t = &g->tensors[i];
        size_t noff, nlen, at = r->pos;
        uint32_t nd, type;
        char nm[96]; /* the name, for messages */
        if (!rd_str(r, &noff, &nlen, "tensor name")) return (slm_status)err->status;
        t->name = (const char *)data + noff;
        t->name_len = nlen;
        if (nlen == 0 || memchr(t->name, 0, nlen))
            return seterr(err, SLM_ERR_FORMAT, "tensor #%zu at offset %zu has an empty name or a NUL byte in it", i, at);
        show_str(nm, sizeof nm, data + noff, nlen);
        size_t slot;
        if (strmap_find(&g->tensor_map, g->t_names, g->t_lens, t->name, nlen, &slot) >= 0)
            return seterr(err, SLM_ERR_FORMAT, "duplicate tensor name '%s'", nm);
        g->t_names[i] = t->name;
        g->t_lens[i] = nlen;
        g->tensor_map.slots[slot] = (int32_t)i;
        if (!rd_u32(r, &nd, nm)) return (slm_status)err->status;
        if (nd == 0 || nd > GGUF_MAX_DIMS)
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': %u dimensions (1..%d allowed)", nm, (unsigned)nd, GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        uint64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            if (!rd_u64(r, &v, nm)) return (slm_status)err->status;
            if (v == 0 || v > (uint64_t)INT64_MAX)
                return seterr(err, SLM_ERR_FORMAT, "tensor '%s': dimension %u is %lld", nm, (unsigned)d, (long long)v);
            if (nel > (uint64_t)INT64_MAX / v)
                return seterr(err, SLM_ERR_FORMAT, "tensor '%s': element count overflows", nm);
            nel *= v;
            t->ne[d] = (int64_t)v;
        }
        if (!rd_u32(r, &type, nm)) return (slm_status)err->status;
        const type_size *ts = type_size_of((int)type);
        if (!ts) return seterr(err, SLM_ERR_UNSUPPORTED, "tensor '%s': unknown ggml type id %u", nm, (unsigned)type);
        t->type = (int)type;
        if (t->ne[0] % ts->blck != 0)
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': row length %lld is not a multiple of the %s block size %d",
                          nm, (long long)t->ne[0], ts->name, ts->blck);
        uint64_t blocks = nel / (uint64_t)ts->blck;
        if (blocks > UINT64_MAX / (uint64_t)ts->bytes)
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': byte size overflows", nm);
        t->nbytes = blocks * (uint64_t)ts->bytes;
        if (!rd_u64(r, &t->offset, nm)) return (slm_status)err->status;
        if (t->offset % g->alignment != 0)
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': data offset %llu is not a multiple of the alignment %zu",
                          nm, (unsigned long long)t->offset, g->alignment);
    }

    {
        slm_status st = gguf_build_pool(g, a, err);
        if (st != SLM_OK) return st;
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
    if (kv->arr_type == SLM_META_STRING) return (const uint8_t *)kv->sv[elem] - 8; /* its u64 length */
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
 *   Q4_1  (32 values, 20 bytes): f16 d, m; u8 qs[16]      x = d * q + m, q as Q4_0 without the -8
 *   Q5_0  (32 values, 22 bytes): f16 d; u8 qh[4]; u8 qs[16]
 *         q[j] = (qs[j] & 15) | bit j of qh << 4, q[j+16] = (qs[j] >> 4) | bit j+16 of qh << 4
 *         x = d * (q - 16)
 *   Q5_1  (32 values, 24 bytes): f16 d, m; u8 qh[4]; u8 qs[16]   x = d * q + m, q as Q5_0
 *   Q8_0  (32 values, 34 bytes): f16 d; i8 qs[32];            x[j] = d * qs[j]
 *   Q8_1  (32 values, 36 bytes): f16 d, s; i8 qs[32]           x = d * q; s = d * sum(q)
 *   IQ4_NL (32 values, 18 bytes): f16 d; u8 qs[16]   x = d * IQ4_VALUES[nibble], nibbles as Q4_0
 *
 * K-quants: super-blocks of 256 values made of 16 sub-blocks of 16 or 8 of
 * 32, each with a small integer scale (and min) that multiplies the f16
 * super-block scale d (and dmin). Value i of a super-block is
 * x[i] = d * sc[s] * q[i] - dmin * m[s] with s its sub-block:
 *   Q2_K (84 bytes): u8 scales[16] (sc low nibble, m high); u8 qs[64]; f16 d, dmin
 *         i = 128h + 32k + l: q = (qs[32h + l] >> 2k) & 3, s = i / 16
 *   Q3_K (110 bytes): u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d   (no min)
 *         q = ((qs[32h + l] >> 2k) & 3) - (bit 4h+k of hmask[l] ? 0 : 4), s = i / 16,
 *         sc = 6-bit value - 32: low 4 bits in nibble s%8 of scales[0..7], high 2 bits
 *         in bits 2(s/4) of scales[8 + s%4]
 *   Q4_K (144 bytes): f16 d, dmin; u8 scales[12]; u8 qs[128]
 *         i = 64g + 32h + l: q = nibble h of qs[32g + l], s = i / 32; 6-bit sc and m:
 *         s < 4: sc = scales[s] & 63, m = scales[s+4] & 63; else the low 4 bits are in
 *         scales[s+4] (sc low nibble, m high) and the high 2 in the top bits of
 *         scales[s-4] (sc) and scales[s] (m)
 *   Q5_K (176 bytes): f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 *         as Q4_K plus bit 2g+h of qh[l] as q's bit 4
 *   Q6_K (210 bytes): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d   (no min)
 *         i = 128h + 32k + l: low 4 bits nibble k/2 of ql[64h + 32(k&1) + l], high 2
 *         bits (qh[32h + l] >> 2k) & 3, q = that - 32, s = i / 16
 *   Q8_K (292 bytes): f32 d; i8 qs[256]; i16 bsums[16] (sums of 16 qs)   x = d * q
 *   IQ4_XS (136 bytes): f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]
 *         8 sub-blocks of 32 laid out as IQ4_NL; sc = 6-bit value - 32: low nibble
 *         s%2 of scales_l[s/2], high 2 bits (scales_h >> 2s) & 3
 *   F16 / BF16 / F32: plain arrays.
 *
 * Each weight type names the activation format it is multiplied with (its
 * "dot partner", ggml's vec_dot_type): activations are converted to it once
 * per row, then every weight row takes an integer (or half) dot product with
 * it. Doing as ggml does keeps our logits within rounding of llama.cpp's.
 */

#define QK4_0 32
#define QK8_0 32
#define QK_K 256

/* IQ4_NL/IQ4_XS levels: a non-uniform 4-bit grid, denser near zero */
static const int8_t IQ4_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

typedef void (*to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*from_float_fn)(const float *src, void *dst, int64_t n);
/* dot of n values: weights w (one row) with activations a (partner type) */
typedef float (*vec_dot_fn)(int n, const void *w, const void *a);
/* the same dot for 4 activation rows a_rb bytes apart: y[t * ldy], t < 4
   (optional, per type: appendix E7; each result equals vec_dot's bits) */
typedef void (*vec_dot4_fn)(int n, const void *w, const void *a, size_t a_rb, float *y, int64_t ldy);
/* F16 rows against float vectors whose values are halves (attention over an
   F16 cache: the queries of a KV head against the keys, the probabilities
   against the rows of transposed V): out[j * out_stride + r] = rows[r] . a_j
   for nrows rows `stride` bytes apart and na vectors a_stride floats apart,
   each the same bits as dot_f16 of the row with a_j as halves. Each row is
   read once for all the vectors. */
typedef void (*dot_rows_fn)(int n, const void *rows, size_t stride, int nrows, const float *a, size_t a_stride, int na,
                            float *out, size_t out_stride);
/* one x8 group (8 rows) against nt <= 4 activation rows a_rb bytes apart:
   y[t * ldy + r] for r < 8, t < nt */
typedef void (*gemm_x8_fn)(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy);
/* x[i] = exp(x[i] - mx) for n values, returning their sum (softmax) */
typedef double (*exp_sum_fn)(float *x, int n, float mx);
/* prefill GEMM (section 7, matmul_gemm): 16 weight rows against all nt
   activation rows a_rb bytes apart, y[t * ldy + r] for r < 16, t < nt.
   The rows are two x8 groups wb bytes apart (gemm16_x8) or 16 GGUF rows
   wb bytes apart (gemm16_rows, converted on the fly). */
typedef void (*gemm16_fn)(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy);

/* The kernels of one instruction set (appendix E7), by weight or activation
   type. A model holds its own resolved copy, every entry filled (E8). */
typedef struct kernel_table {
    const char *name;                      /* "avx2", "neon", ... */
    int isa;                               /* SLM_ISA_* */
    const struct kernel_table *base;       /* the ISA below, for entries this one lacks */
    vec_dot_fn dot[N_TYPE_IDS];            /* weight row . activations, per weight type */
    vec_dot4_fn dot4[N_TYPE_IDS];          /* the same for 4 tokens (optional) */
    gemm_x8_fn gemm_x8[N_TYPE_IDS];        /* x8 groups (optional: types with one are repacked) */
    gemm16_fn gemm16_x8[N_TYPE_IDS];       /* prefill GEMM on x8 groups (optional) */
    gemm16_fn gemm16_rows[N_TYPE_IDS];     /* prefill GEMM on GGUF rows (optional) */
    to_float_fn to_float[N_TYPE_IDS];      /* F32/F16/BF16/Q8_0 rows to floats (KV cache) */
    from_float_fn from_float[N_TYPE_IDS];  /* activation quantizers: dot partners and KV types */
    dot_rows_fn dot_rows_f16;              /* attention over an F16 cache (optional) */
    dot_rows_fn qk_rows_f16;               /* flash attention: dot_rows in its own fixed order (optional) */
    exp_sum_fn exp_sum;                    /* softmax's exponentials */
} kernel_table;

typedef struct type_traits {
    int dot_type;           /* activation format for vec_dot; -1 if unsupported */
    to_float_fn to_float;
    from_float_fn from_float; /* quantize (weights or activations) */
    vec_dot_fn vec_dot;       /* the scalar reference dot (models use their kernel table) */
} type_traits;

/* forward declarations of the reference kernels (appendix E) */
static double exp_sum_ref(float *x, int n, float mx);
static void f32_to_float(const void *src, float *dst, int64_t n);
static void f32_from_float(const float *src, void *dst, int64_t n);
static float dot_f32_ref(int n, const void *w, const void *a);
static void f16_to_float_ref(const void *src, float *dst, int64_t n);
static void f16_from_float_ref(const float *src, void *dst, int64_t n);
static float dot_f16_ref(int n, const void *w, const void *a);
static void bf16_to_float_ref(const void *src, float *dst, int64_t n);
static void bf16_from_float_ref(const float *src, void *dst, int64_t n);
static float dot_bf16_ref(int n, const void *w, const void *a);
static void q8_0_to_float(const void *src, float *dst, int64_t n);
static void q8_0_from_float_ref(const float *src, void *dst, int64_t n);
static float dot_q8_0_ref(int n, const void *w, const void *a);
static void q4_0_to_float(const void *src, float *dst, int64_t n);
static void q4_0_from_float(const float *src, void *dst, int64_t n);
static float dot_q4_0_ref(int n, const void *w, const void *a);
static void q4_1_to_float(const void *src, float *dst, int64_t n);
static void q4_1_from_float(const float *src, void *dst, int64_t n);
static float dot_q4_1_ref(int n, const void *w, const void *a);
static void q5_0_to_float(const void *src, float *dst, int64_t n);
static void q5_0_from_float(const float *src, void *dst, int64_t n);
static float dot_q5_0_ref(int n, const void *w, const void *a);
static void q5_1_to_float(const void *src, float *dst, int64_t n);
static void q5_1_from_float(const float *src, void *dst, int64_t n);
static float dot_q5_1_ref(int n, const void *w, const void *a);
static void q8_1_to_float(const void *src, float *dst, int64_t n);
static void q8_1_from_float_ref(const float *src, void *dst, int64_t n);
static void iq4_nl_to_float(const void *src, float *dst, int64_t n);
static void iq4_nl_from_float(const float *src, void *dst, int64_t n);
static float dot_iq4_nl_ref(int n, const void *w, const void *a);
static void q2_k_to_float(const void *src, float *dst, int64_t n);
static void q2_k_from_float(const float *src, void *dst, int64_t n);
static float dot_q2_k_ref(int n, const void *w, const void *a);
static void q3_k_to_float(const void *src, float *dst, int64_t n);
static void q3_k_from_float(const float *src, void *dst, int64_t n);
static float dot_q3_k_ref(int n, const void *w, const void *a);
static void q4_k_to_float(const void *src, float *dst, int64_t n);
static void q4_k_from_float(const float *src, void *dst, int64_t n);
static float dot_q4_k_ref(int n, const void *w, const void *a);
static void q5_k_to_float(const void *src, float *dst, int64_t n);
static void q5_k_from_float(const float *src, void *dst, int64_t n);
static float dot_q5_k_ref(int n, const void *w, const void *a);
static void q6_k_to_float(const void *src, float *dst, int64_t n);
static void q6_k_from_float(const float *src, void *dst, int64_t n);
static float dot_q6_k_ref(int n, const void *w, const void *a);
static void q8_k_to_float(const void *src, float *dst, int64_t n);
static void q8_k_from_float_ref(const float *src, void *dst, int64_t n);
static void iq4_xs_to_float(const void *src, float *dst, int64_t n);
static void iq4_xs_from_float(const float *src, void *dst, int64_t n);
static float dot_iq4_xs_ref(int n, const void *w, const void *a);

static const type_traits TRAITS[N_TYPE_IDS] = {
    [SLM_TYPE_F32] = {SLM_TYPE_F32, f32_to_float, f32_from_float, dot_f32_ref},
    [SLM_TYPE_F16] = {SLM_TYPE_F16, f16_to_float_ref, f16_from_float_ref, dot_f16_ref},
    [SLM_TYPE_BF16] = {SLM_TYPE_BF16, bf16_to_float_ref, bf16_from_float_ref, dot_bf16_ref},
    [SLM_TYPE_Q8_0] = {SLM_TYPE_Q8_0, q8_0_to_float, q8_0_from_float_ref, dot_q8_0_ref},
    [SLM_TYPE_Q4_0] = {SLM_TYPE_Q8_0, q4_0_to_float, q4_0_from_float, dot_q4_0_ref},
    [SLM_TYPE_Q4_1] = {SLM_TYPE_Q8_1, q4_1_to_float, q4_1_from_float, dot_q4_1_ref},
    [SLM_TYPE_Q5_0] = {SLM_TYPE_Q8_0, q5_0_to_float, q5_0_from_float, dot_q5_0_ref},
    [SLM_TYPE_Q5_1] = {SLM_TYPE_Q8_1, q5_1_to_float, q5_1_from_float, dot_q5_1_ref},
    [SLM_TYPE_IQ4_NL] = {SLM_TYPE_Q8_0, iq4_nl_to_float, iq4_nl_from_float, dot_iq4_nl_ref},
    [SLM_TYPE_Q2_K] = {SLM_TYPE_Q8_K, q2_k_to_float, q2_k_from_float, dot_q2_k_ref},
    [SLM_TYPE_Q3_K] = {SLM_TYPE_Q8_K, q3_k_to_float, q3_k_from_float, dot_q3_k_ref},
    [SLM_TYPE_Q4_K] = {SLM_TYPE_Q8_K, q4_k_to_float, q4_k_from_float, dot_q4_k_ref},
    [SLM_TYPE_Q5_K] = {SLM_TYPE_Q8_K, q5_k_to_float, q5_k_from_float, dot_q5_k_ref},
    [SLM_TYPE_Q6_K] = {SLM_TYPE_Q8_K, q6_k_to_float, q6_k_from_float, dot_q6_k_ref},
    [SLM_TYPE_IQ4_XS] = {SLM_TYPE_Q8_K, iq4_xs_to_float, iq4_xs_from_float, dot_iq4_xs_ref},
    /* activation formats only: no dot kernel of their own */
    [SLM_TYPE_Q8_1] = {-1, q8_1_to_float, q8_1_from_float_ref, NULL},
    [SLM_TYPE_Q8_K] = {-1, q8_k_to_float, q8_k_from_float_ref, NULL},
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

/* --- 8-row interleaved layouts ("x8") -------------------------------------- */
/*
 * Decode reads every weight once per token, so the speed of a mat-vec is the
 * speed of its inner loop. With rows stored one after another, each row is
 * a separate dot product ending in a horizontal sum. Interleaving 8 rows lets
 * one vector instruction work on all 8 at once: a 32-byte vector holds 4
 * consecutive columns of each of the 8 rows, the activation's 4 values are
 * broadcast, and each 32-bit lane accumulates one row. Matrices are
 * rearranged once at load time, in place (the layout has exactly the bytes
 * of the GGUF one), where the build has an x8 kernel for the type and the
 * row count is a multiple of 8 (see repack_weight, section 6).
 *
 * Per group of 8 rows, per block of 32 columns:
 *   Q4_0x8 (144 bytes): f16 d[8] (row r's scale), then 4 chunks of 32
 *     bytes: byte i of chunk c holds row i/4's column 8c + i%4 in its low
 *     nibble and column 8c + 4 + i%4 in its high nibble (the stored nibble,
 *     value + 8, as in Q4_0).
 *   Q8_0x8 (272 bytes): f16 d[8], then 8 steps of 32 bytes: byte i of step
 *     s is row i/4's column 4s + i%4.
 *   Q5_0x8 (176 bytes): f16 d[8], then 32 bytes of high bits: bit c of byte
 *     i is the fifth bit of row i/4's column 8c + i%4, bit 4 + c that of its
 *     column 8c + 4 + i%4 (c = 0..3), then the 4 chunks of low nibbles laid
 *     out as in Q4_0x8. A kernel moves bit c or 4 + c to bit 4 with one
 *     shift and mask, where Q5_0's 32-bit qh would need a bit-to-byte spread.
 *
 * x8 matrices take their activations as Q8_0X, an internal format (not a
 * GGUF type): per block of 32, the Q8_0 values (32 bytes, the same bytes the
 * Q8_0 quantizer gives), then the scale as an f32 (the value of Q8_0's f16
 * scale) and the sum of the 32 values as an int32: 40 bytes. The kernels then
 * need neither an f16 conversion nor a horizontal sum per block and group.
 */
#define ACT_Q8_0X (-2)
static int x8_block_bytes(int type) {
    return type == SLM_TYPE_Q4_0 ? 144 : type == SLM_TYPE_Q8_0 ? 272 : type == SLM_TYPE_Q5_0 ? 176
         : type == SLM_TYPE_Q4_K ? 1152 : type == SLM_TYPE_Q5_K ? 1408 : type == SLM_TYPE_Q6_K ? 1680 : 0;
}
static int is_kx8(int type) { return type == SLM_TYPE_Q4_K || type == SLM_TYPE_Q5_K || type == SLM_TYPE_Q6_K; }
static void k4_scale_min(const uint8_t *sc, int s, int *d, int *m);

/* --- K-quant x8 layouts ------------------------------------------------------
 * The same idea for Q4_K and Q6_K (the bulk of a Q4_K_M file, and the output
 * matrix of most files): per group of 8 rows, per super-block of 256
 * columns, exactly the bytes of the 8 GGUF blocks (in place, as above), with
 * the quants laid out as Q4_0x8's chunks and the sub-block scales rearranged
 * so that a vector kernel gets the 8 rows' scale of a sub-block with one
 * byte shuffle instead of decoding 12-byte tables row by row.
 *   Q4_Kx8 (1152 bytes): f16 d[8], f16 dmin[8]; then the 6-bit scale sc and
 *     min m of (sub-block s, row r) at position p(s, r) = 16 (r / 4) +
 *     4 (s % 4) + r % 4 of two 32-byte halves (half s / 4): bytes 32-95 hold
 *     sc & 15 | (m & 15) << 4, bytes 96-127 the high bits (bits 4 (s / 4) +
 *     0-1 of byte p(s, r): sc >> 4, bits 4 (s / 4) + 2-3: m >> 4); then 8
 *     sub-blocks of 128 bytes, each 4 chunks of 32 laid out as Q4_0x8's
 *     (byte i of chunk c: row i/4's sub-block column 8c + i%4 in the low
 *     nibble, 8c + 4 + i%4 in the high one).
 *   Q5_Kx8 (1408 bytes): as Q4_Kx8, with each sub-block 160 bytes: 32 bytes
 *     of fifth bits laid out as Q5_0x8's (bit c of byte i: row i/4's column
 *     8c + i%4, bit 4 + c: column 8c + 4 + i%4), then its 4 nibble chunks.
 *   Q6_Kx8 (1680 bytes): f16 d[8]; then the int8 scales, 16 bytes per pair
 *     of sub-blocks j (columns 32j..32j+31): byte 2r + k is row r's scale of
 *     sub-block 2j + k (sign-extended to 16 bits, lane r holds both); then 8
 *     parts of 32 columns, 192 bytes each: the low 4 bits of the 6-bit
 *     quants (q + 32, 0..63) as 4 chunks laid out as Q4_0x8's, then 2 x 32
 *     bytes of high 2 bits: byte i of half e has those of chunk 2e + k's low
 *     nibble at bits 4k + 0-1, of its high nibble at bits 4k + 2-3.
 * K-quant x8 matrices take Q8_K activations, as their one-row kernels do:
 * the per-16 sums (bsums) give the Q4_K mins and the Q6_K offset of -32.
 */

/* position of (sub-block s % 4, row r) in a Q4_Kx8 scale half */
#define KX8_POS(s, r) (16 * ((r) / 4) + 4 * ((s) % 4) + (r) % 4)

static void kx8_pack(int type, const uint8_t *src, size_t rb, int nb, uint8_t *dst) {
    const int bb = x8_block_bytes(type), sb = bb / 8, q5 = type == SLM_TYPE_Q5_K, sbb = q5 ? 160 : 128;
    for (int b = 0; b < nb; b++) {
        uint8_t *o = dst + (size_t)b * (size_t)bb;
        if (type != SLM_TYPE_Q6_K) memset(o + 96, 0, 32); /* the high-bit bytes are or-ed */
        for (int r = 0; r < 8; r++) {
            const uint8_t *q = src + (size_t)r * rb + (size_t)b * (size_t)sb;
            if (type != SLM_TYPE_Q6_K) {
                memcpy(o + 2 * r, q, 2);
                memcpy(o + 16 + 2 * r, q + 2, 2);
                for (int s = 0; s < 8; s++) {
                    int sc, m;
                    k4_scale_min(q + 4, s, &sc, &m);
                    o[32 + 32 * (s / 4) + KX8_POS(s, r)] = (uint8_t)((sc & 15) | (m & 15) << 4);
                    o[96 + KX8_POS(s, r)] |= (uint8_t)(((sc >> 4) | (m >> 4) << 2) << (4 * (s / 4)));
                }
                const uint8_t *qs = q + (q5 ? 48 : 16), *qh = q + 16;
                for (int s = 0; s < 8; s++) { /* sub-block s: nibble s % 2 of qs[32 (s / 2) + l], bit s of qh[l] */
                    uint8_t *os = o + 128 + sbb * s;
                    for (int c = 0; c < 4; c++)
                        for (int j = 0; j < 4; j++) {
                            const int lo = (qs[32 * (s / 2) + 8 * c + j] >> (4 * (s % 2))) & 15;
                            const int hi = (qs[32 * (s / 2) + 8 * c + 4 + j] >> (4 * (s % 2))) & 15;
                            os[(q5 ? 32 : 0) + 32 * c + 4 * r + j] = (uint8_t)(lo | hi << 4);
                        }
                    if (q5)
                        for (int j = 0; j < 4; j++) {
                            uint8_t h = 0;
                            for (int c = 0; c < 4; c++)
                                h |= (uint8_t)(((qh[8 * c + j] >> s) & 1) << c | ((qh[8 * c + 4 + j] >> s) & 1) << (4 + c));
                            os[4 * r + j] = h;
                        }
                }
            } else { /* Q6_K */
                const uint8_t *ql = q, *qh = q + 128;
                memcpy(o + 2 * r, q + 208, 2);
                for (int s = 0; s < 16; s++) o[16 + 16 * (s / 2) + 2 * r + s % 2] = q[192 + s];
                for (int p = 0; p < 8; p++) { /* columns 32p + l: i = 128h + 32k + l with p = 4h + k */
                    const int h = p / 4, k = p % 4;
                    uint8_t *op = o + 144 + 192 * p;
                    uint8_t v[32];
                    for (int l = 0; l < 32; l++)
                        v[l] = (uint8_t)(((ql[64 * h + 32 * (k & 1) + l] >> (4 * (k / 2))) & 15) |
                                         ((qh[32 * h + l] >> (2 * k)) & 3) << 4);
                    for (int c = 0; c < 4; c++)
                        for (int j = 0; j < 4; j++) {
                            const int lo = v[8 * c + j], hi = v[8 * c + 4 + j];
                            op[32 * c + 4 * r + j] = (uint8_t)((lo & 15) | (hi & 15) << 4);
                            uint8_t *hb = op + 128 + 32 * (c / 2) + 4 * r + j;
                            if (c % 2 == 0) *hb = 0;
                            *hb |= (uint8_t)(((lo >> 4) | (hi >> 4) << 2) << (4 * (c % 2)));
                        }
                }
            }
        }
    }
}

static void kx8_unpack_row(int type, const uint8_t *grp, int lane, int nb, uint8_t *row) {
    const int bb = x8_block_bytes(type), sb = bb / 8, r = lane, q5 = type == SLM_TYPE_Q5_K, sbb = q5 ? 160 : 128;
    for (int b = 0; b < nb; b++) {
        const uint8_t *o = grp + (size_t)b * (size_t)bb;
        uint8_t *q = row + (size_t)b * (size_t)sb;
        if (type != SLM_TYPE_Q6_K) {
            int sc[8], m[8];
            memcpy(q, o + 2 * r, 2);
            memcpy(q + 2, o + 16 + 2 * r, 2);
            for (int s = 0; s < 8; s++) {
                const int lo = o[32 + 32 * (s / 4) + KX8_POS(s, r)], hi = o[96 + KX8_POS(s, r)] >> (4 * (s / 4));
                sc[s] = (lo & 15) | (hi & 3) << 4;
                m[s] = (lo >> 4) | ((hi >> 2) & 3) << 4;
            }
            for (int s = 0; s < 4; s++) { /* the 12-byte table of k4_scale_min */
                q[4 + s] = (uint8_t)(sc[s] | (sc[s + 4] >> 4) << 6);
                q[8 + s] = (uint8_t)(m[s] | (m[s + 4] >> 4) << 6);
                q[12 + s] = (uint8_t)((sc[s + 4] & 15) | (m[s + 4] & 15) << 4);
            }
            uint8_t *qs = q + (q5 ? 48 : 16), *qh = q + 16;
            memset(q + 16, 0, q5 ? 160 : 128);
            for (int s = 0; s < 8; s++) {
                const uint8_t *os = o + 128 + sbb * s;
                for (int c = 0; c < 4; c++)
                    for (int j = 0; j < 4; j++) {
                        const int v = os[(q5 ? 32 : 0) + 32 * c + 4 * r + j];
                        qs[32 * (s / 2) + 8 * c + j] |= (uint8_t)((v & 15) << (4 * (s % 2)));
                        qs[32 * (s / 2) + 8 * c + 4 + j] |= (uint8_t)((v >> 4) << (4 * (s % 2)));
                        if (q5) {
                            const int h = os[4 * r + j];
                            qh[8 * c + j] |= (uint8_t)(((h >> c) & 1) << s);
                            qh[8 * c + 4 + j] |= (uint8_t)(((h >> (4 + c)) & 1) << s);
                        }
                    }
            }
        } else { /* Q6_K */
            uint8_t *ql = q, *qh = q + 128;
            memset(q, 0, 192);
            memcpy(q + 208, o + 2 * r, 2);
            for (int s = 0; s < 16; s++) q[192 + s] = o[16 + 16 * (s / 2) + 2 * r + s % 2];
            for (int p = 0; p < 8; p++) {
                const int h = p / 4, k = p % 4;
                const uint8_t *op = o + 144 + 192 * p;
                uint8_t v[32];
                for (int c = 0; c < 4; c++)
                    for (int j = 0; j < 4; j++) {
                        const int n4 = op[32 * c + 4 * r + j], hb = op[128 + 32 * (c / 2) + 4 * r + j] >> (4 * (c % 2));
                        v[8 * c + j] = (uint8_t)((n4 & 15) | (hb & 3) << 4);
                        v[8 * c + 4 + j] = (uint8_t)((n4 >> 4) | ((hb >> 2) & 3) << 4);
                    }
                for (int l = 0; l < 32; l++) {
                    ql[64 * h + 32 * (k & 1) + l] |= (uint8_t)((v[l] & 15) << (4 * (k / 2)));
                    qh[32 * h + l] |= (uint8_t)((v[l] >> 4) << (2 * k));
                }
            }
        }
    }
}

/* Rearrange 8 GGUF rows (rb bytes apart, nb blocks each) into one x8 group.
   (Done for every matrix at load: written for speed, per row and block.) */
static void x8_pack(int type, const uint8_t *src, size_t rb, int nb, uint8_t *dst) {
    if (is_kx8(type)) {
        kx8_pack(type, src, rb, nb, dst);
        return;
    }
    const int bb = x8_block_bytes(type), sb = bb / 8; /* group block, GGUF block */
    const int q5 = type == SLM_TYPE_Q5_0, qs_at = q5 ? 6 : 2, nib_at = q5 ? 48 : 16;
    for (int b = 0; b < nb; b++) {
        uint8_t *o = dst + (size_t)b * (size_t)bb;
        for (int r = 0; r < 8; r++) {
            const uint8_t *q = src + (size_t)r * rb + (size_t)b * (size_t)sb;
            memcpy(o + 2 * r, q, 2);
            if (type == SLM_TYPE_Q8_0) {
                for (int st = 0; st < 8; st++) memcpy(o + 16 + 32 * st + 4 * r, q + 2 + 4 * st, 4);
                continue;
            }
            uint8_t nib[32];
            for (int k = 0; k < 16; k++) nib[k] = q[qs_at + k] & 15, nib[k + 16] = q[qs_at + k] >> 4;
            for (int c = 0; c < 4; c++) /* columns 8c + j and 8c + 4 + j */
                for (int j = 0; j < 4; j++) o[nib_at + 32 * c + 4 * r + j] = (uint8_t)(nib[8 * c + j] | (nib[8 * c + 4 + j] << 4));
            if (q5) {
                const uint32_t qh = ld_u32(q + 2);
                for (int j = 0; j < 4; j++) {
                    uint8_t h = 0;
                    for (int c = 0; c < 4; c++)
                        h |= (uint8_t)(((qh >> (8 * c + j)) & 1) << c | ((qh >> (8 * c + 4 + j)) & 1) << (4 + c));
                    o[16 + 4 * r + j] = h;
                }
            }
        }
    }
}

/* Activation formats: the dot partners of TRAITS, plus Q8_0X. */
static size_t act_row_bytes(int dt, int64_t n) {
    return dt == ACT_Q8_0X ? (size_t)(n / 32) * 40 : row_bytes(dt, n);
}

/* The GGUF bytes of row `lane` (0-7) of an x8 group, as x8_pack's inverse. */
static void x8_unpack_row(int type, const uint8_t *grp, int lane, int nb, uint8_t *row) {
    if (is_kx8(type)) {
        kx8_unpack_row(type, grp, lane, nb, row);
        return;
    }
    const int bb = x8_block_bytes(type), sb = bb / 8;
    for (int b = 0; b < nb; b++) {
        const uint8_t *o = grp + (size_t)b * (size_t)bb;
        uint8_t *q = row + (size_t)b * (size_t)sb;
        memcpy(q, o + 2 * lane, 2);
        if (type == SLM_TYPE_Q8_0) {
            for (int k = 0; k < 32; k++) q[2 + k] = o[16 + 32 * (k / 4) + 4 * lane + k % 4];
            continue;
        }
        const int q5 = type == SLM_TYPE_Q5_0, nib_at = q5 ? 48 : 16;
        uint8_t nib[32];
        uint32_t qh = 0;
        for (int c = 0; c < 4; c++)
            for (int j = 0; j < 4; j++) {
                const uint8_t v = o[nib_at + 32 * c + 4 * lane + j], h = q5 ? o[16 + 4 * lane + j] : 0;
                nib[8 * c + j] = v & 15, nib[8 * c + 4 + j] = v >> 4;
                qh |= (uint32_t)((h >> c) & 1) << (8 * c + j) | (uint32_t)((h >> (4 + c)) & 1) << (8 * c + 4 + j);
            }
        if (q5) st_u32(q + 2, qh);
        for (int k = 0; k < 16; k++) q[(q5 ? 6 : 2) + k] = (uint8_t)(nib[k] | (nib[k + 16] << 4));
    }
}

int slm_type_block_size(int type) {
    const type_size *ts = type_size_of(type);
    return ts ? ts->blck : 0;
}

size_t slm_row_bytes(int type, int64_t n) {
    const type_size *ts = type_size_of(type);
    if (!ts || n < 0 || n % ts->blck != 0) return 0;
    return row_bytes(type, n);
}

slm_status slm_quantize_row(int type, const float *src, void *dst, int64_t n) {
    const type_size *ts = type_size_of(type);
    if (!ts || !TRAITS[type].from_float) return SLM_ERR_UNSUPPORTED;
    if (!src || !dst || n < 0 || n % ts->blck != 0) return SLM_ERR_INVALID_ARG;
    TRAITS[type].from_float(src, dst, n);
    return SLM_OK;
}

slm_status slm_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const type_size *ts = type_size_of(type);
    if (!ts || !TRAITS[type].to_float) return SLM_ERR_UNSUPPORTED;
    if (!src || !dst || n < 0 || n % ts->blck != 0) return SLM_ERR_INVALID_ARG;
    TRAITS[type].to_float(src, dst, n);
    return SLM_OK;
}

/* A weight matrix: n_out rows of n_in values of `type`. */
typedef struct weight {
    const uint8_t *data;
    int type;
    int64_t n_in, n_out;
    size_t rb;        /* bytes per row */
    vec_dot_fn dot;   /* the model's kernels for this type */
    vec_dot4_fn dot4; /* (NULL: token by token) */
    gemm_x8_fn x8;    /* set when the rows are stored as x8 groups (section 5) */
    gemm16_fn g16x8, g16; /* prefill GEMM on x8 groups / on GGUF rows (NULL: none) */
} weight;
/* ========================================================================== */
/* 6. Model                                                                   */
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
    int swa_pattern;  /* every swa_pattern-th layer is global, the others use
                         the sliding window (0 = no sliding window) */
    float swa_base;   /* rope base of sliding layers (0 = the global base) */
    int big_layers;   /* n_layer of the variant whose query scale is
                         1/sqrt(n_embd/n_head) (gemma 27B), 0 = none */
    /* 2026 families (issue 14) */
    int nope_period;  /* layers with (il + 1) % nope_period == 0 have no rope
                         (smollm3: 4, hard-coded as in llama.cpp) */
    int post_only;    /* olmo2: no input norms, norms on the sub-block outputs */
    int qk_norm_full; /* olmo2: q/k norms over the whole projection */
    int rec_kind;     /* kind of the layers that are not attention (LK_*) */
    int gated_q;      /* qwen35: attn_q holds [query | gate] per head */
    const char *ffn_norm_name; /* pre-FFN norm tensor (NULL: "ffn_norm") */
    const char *out_norm_name; /* final norm tensor (NULL: "output_norm") */
} arch_info;

/* Layer kinds (2026 families): attention, Gated DeltaNet (qwen35), gated short
   convolution (lfm2), Mamba2 (granitehybrid). */
enum { LK_ATTN = 0, LK_DELTANET = 1, LK_SHORTCONV = 2, LK_MAMBA2 = 3 };

/* Mistral, SmolLM2, TinyLlama and Llama 3 GGUFs use "llama"; phi3 covers
   Phi-3, Phi-3.5 and Phi-4-mini. */
static const arch_info ARCHS[] = {
    {"llama", 0, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"qwen2", 1, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"qwen3", 1, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"phi3", 1, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"gemma", 1, ACT_GELU, 1, 0, 0.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"gemma2", 1, ACT_GELU, 1, 2, 0.0f, 46, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"gemma3", 1, ACT_GELU, 1, 6, 10000.0f, 62, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    /* 2026 families: SmolLM3; OLMo 2; Granite 3.x; Granite 4.0-H; LFM2 and
       LFM2.5; Qwen3.5 */
    {"smollm3", 0, ACT_SILU, 0, 0, 0.0f, 0, 4, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"olmo2", 1, ACT_SILU, 0, 0, 0.0f, 0, 0, 1, 1, LK_ATTN, 0, NULL, NULL},
    {"granite", 0, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"granitehybrid", 0, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_MAMBA2, 0, NULL, NULL},
    {"lfm2", 1, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_SHORTCONV, 0, NULL, "token_embd_norm.weight"},
    {"qwen35", 1, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_DELTANET, 1, "post_attention_norm", NULL},
    /* encoders (embedding models; their own flags are in ENC_ARCHS) */
    {"bert", 0, ACT_GELU, 0, 0, 0.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"nomic-bert", 1, ACT_SILU, 0, 0, 0.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
    {"gemma-embedding", 1, ACT_GELU, 1, 6, 10000.0f, 0, 0, 0, 0, LK_ATTN, 0, NULL, NULL},
};

/* Encoder flags (embedding models, see "embedding models" below); every
   other architecture gets the first entry (a causal decoder). */
typedef struct enc_info {
    const char *name;
    int bidir;        /* attention over the whole sequence, no causal mask;
                         a sliding window is symmetric (|p - k| <= n_swa/2) */
    int post_ln;      /* BERT blocks: LayerNorm after each residual add
                         (attn_output_norm, layer_output_norm), no pre-norms */
    int ffn_plain;    /* FFN up -> act -> down without a gate */
    int learned_pos;  /* position_embd table instead of RoPE */
} enc_info;

static const enc_info ENC_ARCHS[] = {
    {"", 0, 0, 0, 0},
    {"bert", 1, 1, 1, 1},
    {"nomic-bert", 1, 1, 0, 0},
    {"gemma-embedding", 1, 0, 0, 0},
};

enum { SRC_MMAP = 0, SRC_OWNED = 1, SRC_CALLER = 2 };

/* The vocabulary lives in section 9. */
struct vocab;
static slm_status vocab_load(slm_model *m, slm_error *err);
static void vocab_free(slm_model *m);

/* One layer's tensors. Shapes: vectors (n,); a weight is (n_out, n_in), a
   row of n_in per output; E = n_embd, F = n_ff. NULL / no data: absent. */
typedef struct layer {
    const float *attn_norm;      /* (E,) RMS norm before attention or the mixer (olmo2: none) */
    const float *q_norm, *k_norm; /* (head_dim,) per head; olmo2: (q_dim,), (kv_dim,) over all heads */
    const float *post_attn_norm; /* (E,) on the attention output (gemma2/3, olmo2) */
    const float *ffn_norm;       /* (E,) RMS norm before the FFN */
    const float *post_ffn_norm;  /* (E,) on the FFN output */
    const float *bq, *bk, *bv;   /* (q_dim,), (kv_dim,), (kv_dim,) biases */
    weight wq;                   /* (q_dim, E); qwen35: (2 q_dim, E), query | gate per head */
    weight wk, wv;               /* (kv_dim, E) */
    weight wqkv;                 /* (q_dim + 2 kv_dim, E): q | k | v fused (phi3) */
    weight wo;                   /* (E, q_dim) */
    weight w_gate;               /* (F, E) */
    weight w_up;                 /* (F, E); fused gate | up without w_gate (phi3): (2F, E) */
    weight w_down;               /* (E, F) */
    int swa;          /* sliding-window attention layer */
    float rope_base, rope_freq_scale;
    /* encoders: BERT's output/FFN biases and post-residual LayerNorms */
    const float *bo, *b_up, *b_down; /* (E,), (F,), (E,) */
    const float *attn_out_norm, *attn_out_norm_b, *out_norm, *out_norm_b; /* (E,) each */
    /* 2026 families: the layer's kind and its recurrent parts */
    int kind;         /* LK_* */
    int nope;         /* attention without positional encoding */
    int kv_slot;      /* index of its KV cache (attention layers) */
    size_t rs_conv, rs_ssm; /* offsets (floats) of its conv and SSM state */
    /* in/out projections: r_in (3E, E) shortconv, (channels, E) deltanet,
       (2 inner + 2 groups * state + heads, E) mamba2; r_gate (inner, E),
       r_beta and r_alpha (heads, E); r_out (E, E) shortconv, else (E, inner) */
    weight r_in, r_gate, r_beta, r_alpha, r_out;
    const float *conv_w, *conv_b; /* (channels, K) taps, (channels,) bias (rec_conv_shape) */
    const float *ssm_a, *ssm_d, *dt_bias; /* (heads,) */
    const float *ssm_norm; /* (inner / heads,) deltanet, (inner,) mamba2 */
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
    int repack;       /* params.repack: x8 layouts allowed */
    kernel_table kern; /* the kernels of the chosen ISA, every entry filled (E8) */

    char arch_name[64];
    const arch_info *arch;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim, n_rot;
    int q_dim, kv_dim;
    float eps, rope_base, rope_base_swa, attn_scale, attn_softcap, final_softcap, embd_mult;
    int n_swa;        /* sliding window size, 0 = none */
    /* rope scaling */
    float rope_freq_scale, rope_ext_factor, rope_attn_factor, yarn_lo, yarn_hi;
    int n_ctx_orig;
    const float *rope_freqs;  /* llama 3: per-pair frequency divisors */
    const float *rope_long, *rope_short; /* phi3 LongRoPE divisors */

    weight tok_embd, output;
    const float *output_norm;
    layer *layers;

    float *vecs;      /* f32 copies of the 1-D tensors (norms, biases) */
    size_t vecs_len, vecs_used;
    uint16_t *gelu_tab; /* 65536 fp16 entries: ggml's fp16 GELU table */

    uint64_t n_params, weight_bytes;
    int max_in;       /* widest matrix input, for activation scratch */
    /* 2026 families: multipliers, recurrent layers */
    float res_scale;  /* granite: residual_scale (1 = plain residual) */
    float logit_scale; /* granite: logits are divided by it */
    int rope_off;     /* granite*: rope.scaling.finetuned = false */
    int n_kv_layer;   /* layers with a KV cache */
    int n_rec;        /* recurrent layers */
    int ssm_k, ssm_inner, ssm_state, ssm_nh, ssm_ng; /* ssm.* keys (conv
                         kernel, inner size, state size, heads, groups) */
    int sc_k;         /* lfm2: shortconv.l_cache */
    size_t rs_floats; /* recurrent state of one session copy */
    int hy_width;     /* per-token scratch floats of the new layer kinds */
    float *rvecs;     /* f32 copies of the recurrent parameters */
    size_t rvecs_len, rvecs_used;
    struct vocab *vocab; /* NULL if the file has no vocabulary */
    double load_ms;
    unsigned dot_types; /* bit per dot-partner type used */

    /* embedding models (see "embedding models" below) */
    const enc_info *enc; /* encoder flags (ENC_ARCHS[0] for decoders) */
    int pooling;      /* SLM_POOLING_* from ARCH.pooling_type (NONE if absent) */
    int causal;       /* 0: bidirectional attention (encoders) */
    weight tok_types, pos_embd; /* BERT: token-type and position tables */
    const float *embd_norm, *embd_norm_b; /* LayerNorm after the embeddings */
    weight dense2, dense3;      /* gemma-embedding: projections after pooling */
    int n_embd_out;   /* width of an embedding (n_embd: dense_3 must keep it, as llama.cpp asserts) */
};

/* One line to a log callback: the model's (logf_) or a conversion's
   (slm_quantize_file); nothing without one. */
static SLM_PRINTF(4, 5) void log_to(slm_log_fn log, void *user, int level, const char *fmt, ...) {
    if (!log) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsn(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log(user, level, buf);
}
#define logf_(m, ...) log_to((m)->log, (m)->log_user, __VA_ARGS__)

/* --- hyperparameters ------------------------------------------------------ */

static const gguf_kv *arch_key(const slm_model *m, const char *suffix) {
    char key[160];
    fmt_sn(key, sizeof key, "%s.%s", m->arch_name, suffix);
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

/* --- 2026 families: hyperparameters and layer kinds (issue 14) ---------------
   SmolLM3 (NoPE every 4th layer), OLMo 2 (post-norms, whole-projection q/k
   norms), Granite 3.x (multipliers), and the hybrids whose layers are not
   all attention: LFM2 (gated short convolutions), Qwen3.5 (Gated DeltaNet)
   and Granite 4.0-H (Mamba2). Which kind a layer is comes from the file:
   a per-layer head_count_kv of 0 (lfm2, granitehybrid), or qwen35's
   full_attention_interval / attention.recurrent_layers. */

/* head_count_kv: one value, or (hybrids) one per layer where 0 marks a
   recurrent layer; the attention layers must agree. */
static slm_status hp_head_count_kv(slm_model *m, slm_error *err) {
    const gguf_kv *kv = arch_key(m, "attention.head_count_kv");
    if (!kv || kv->type != SLM_META_ARRAY || m->arch->rec_kind == LK_ATTN)
        return hp_int(m, "attention.head_count_kv", 0, m->n_head, 1, m->n_head, &m->n_head_kv, err);
    if (kv->count != (uint64_t)m->n_layer)
        return seterr(err, SLM_ERR_FORMAT, "key '%s' has %llu entries for %d layers", kv->key,
                      (unsigned long long)kv->count, m->n_layer);
    m->n_head_kv = 0;
    for (int il = 0; il < m->n_layer; il++) {
        int64_t v;
        if (kv_int(&m->g, kv, il, &v) != SLM_OK || v < 0 || v > m->n_head)
            return seterr(err, SLM_ERR_FORMAT, "key '%s': entry %d is not a head count in [0, %d]", kv->key, il, m->n_head);
        if (v && m->n_head_kv && v != m->n_head_kv)
            return seterr(err, SLM_ERR_UNSUPPORTED, "key '%s': attention layers with different KV head counts", kv->key);
        if (v) m->n_head_kv = (int)v;
    }
    if (!m->n_head_kv) m->n_head_kv = m->n_head;
    return SLM_OK;
}

static slm_status hparams_2026(slm_model *m, slm_error *err) {
    slm_status st;
#define HP(call) \
    if ((st = (call)) != SLM_OK) return st
    const int granite = strncmp(m->arch_name, "granite", 7) == 0;
    float es = 0;
    HP(hp_float(m, "residual_scale", 1.0, &m->res_scale, err));
    HP(hp_float(m, "logit_scale", 1.0, &m->logit_scale, err));
    HP(hp_float(m, "embedding_scale", 0.0, &es, err));
    if (es != 0) m->embd_mult = es;
    if (!(m->logit_scale != 0)) return seterr(err, SLM_ERR_FORMAT, "key '%s.logit_scale' is 0", m->arch_name);
    if (granite) { /* the rope switch of both granite architectures */
        int ft = 1;
        HP(hp_int(m, "rope.scaling.finetuned", 0, 1, 0, 1, &ft, err));
        m->rope_off = !ft;
    }
    const int rk = m->arch->rec_kind;
    if (rk == LK_DELTANET || rk == LK_MAMBA2) {
        HP(hp_int(m, "ssm.conv_kernel", 1, 0, 1, 64, &m->ssm_k, err));
        HP(hp_int(m, "ssm.inner_size", 1, 0, 1, 1 << 16, &m->ssm_inner, err));
        HP(hp_int(m, "ssm.state_size", 1, 0, 1, 1024, &m->ssm_state, err));
        HP(hp_int(m, "ssm.time_step_rank", 1, 0, 1, 1024, &m->ssm_nh, err));
        HP(hp_int(m, "ssm.group_count", 0, 1, 1, 1024, &m->ssm_ng, err));
        if (m->ssm_inner % m->ssm_nh || m->ssm_nh % m->ssm_ng)
            return seterr(err, SLM_ERR_FORMAT, "ssm: inner size %d, %d heads and %d groups do not divide", m->ssm_inner,
                          m->ssm_nh, m->ssm_ng);
        /* the scans keep one head's row of values on the stack */
        if (m->ssm_inner / m->ssm_nh > 1024 || m->ssm_state > 1024)
            return seterr(err, SLM_ERR_UNSUPPORTED, "ssm head size %d / state size %d above 1024",
                          m->ssm_inner / m->ssm_nh, m->ssm_state);
    } else if (rk == LK_SHORTCONV) {
        HP(hp_int(m, "shortconv.l_cache", 1, 0, 1, 64, &m->sc_k, err));
    }
#undef HP
    return SLM_OK;
}

/* The widest attention head (attention.key_length) slm loads: it bounds the
   forward pass's per-token RoPE table, which lives on the stack. */
#define MAX_HEAD_DIM 1024

static slm_status load_hparams(slm_model *m, slm_error *err) {
    slm_status st;
#define HP(call) \
    if ((st = (call)) != SLM_OK) return st
    HP(hp_int(m, "context_length", 0, 2048, 1, 1 << 24, &m->n_ctx_train, err));
    HP(hp_int(m, "embedding_length", 1, 0, 1, 1 << 20, &m->n_embd, err));
    HP(hp_int(m, "block_count", 1, 0, 1, 4096, &m->n_layer, err));
    HP(hp_int(m, "feed_forward_length", 1, 0, 1, 1 << 22, &m->n_ff, err));
    HP(hp_int(m, "attention.head_count", 1, 0, 1, 1 << 14, &m->n_head, err));
    HP(hp_head_count_kv(m, err)); /* a per-layer array in lfm2/granitehybrid */
    if (m->n_head % m->n_head_kv != 0)
        return seterr(err, SLM_ERR_FORMAT, "head_count %d is not a multiple of head_count_kv %d", m->n_head, m->n_head_kv);
    int dflt_hd = m->n_embd / m->n_head, vdim;
    HP(hp_int(m, "attention.key_length", 0, dflt_hd, 1, MAX_HEAD_DIM, &m->head_dim, err));
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
    if (m->arch->big_layers && m->n_layer == m->arch->big_layers)
        m->attn_scale = 1.0f / sqrtf((float)(m->n_embd / m->n_head));
    m->embd_mult = m->arch->embd_scale ? sqrtf((float)m->n_embd) : 1.0f;

    /* rope scaling, as llama.cpp reads it: the type defaults to linear; a
       factor scales the frequencies unless the type is "none"; yarn also
       blends per dimension; longrope (phi3) brings its factors as tensors */
    float factor = 0;
    const char *stype = hp_str(m, "rope.scaling.type");
    HP(hp_float(m, "rope.scaling.factor", 0.0, &factor, err));
    HP(hp_int(m, "rope.scaling.original_context_length", 0, m->n_ctx_train, 1, 1 << 24, &m->n_ctx_orig, err));
    HP(hp_float(m, "rope.scaling.attn_factor", 1.0, &m->rope_attn_factor, err));
    HP(hp_float(m, "rope.swa_freq_base", m->arch->swa_base > 0 ? m->arch->swa_base : m->rope_base, &m->rope_base_swa,
                err));
    if (!stype) stype = "linear";
    m->rope_freq_scale = 1.0f;
    m->rope_ext_factor = 0.0f;
    if (strcmp(stype, "linear") == 0 || strcmp(stype, "yarn") == 0 || strcmp(stype, "longrope") == 0) {
        if (factor > 0) m->rope_freq_scale = 1.0f / factor;
        if (strcmp(stype, "yarn") == 0) {
            m->rope_ext_factor = 1.0f;
            m->yarn_lo = SLM_MAX(0.0f, floorf(yarn_corr_dim(m->n_rot, m->n_ctx_orig, 32.0f, m->rope_base)));
            m->yarn_hi = SLM_MIN((float)(m->n_rot - 1), ceilf(yarn_corr_dim(m->n_rot, m->n_ctx_orig, 1.0f, m->rope_base)));
        }
    } else if (strcmp(stype, "none") != 0) {
        return seterr(err, SLM_ERR_UNSUPPORTED, "rope scaling type '%s' is not supported", stype);
    }
    HP(hparams_2026(m, err));
#undef HP
    return SLM_OK;
}

/* Which layers use the sliding window: from the sliding_window_pattern key
   (a period n: every n-th layer is global; or one flag per layer), else the
   architecture's default period. Needs m->layers allocated. */
static slm_status swa_layers(slm_model *m, slm_error *err) {
    /* only architectures trained with a sliding window use it (llama.cpp
       ignores the key for phi3 and qwen2, and so do we) */
    if (!m->arch->swa_pattern) m->n_swa = 0;
    if (m->n_swa <= 0) return SLM_OK;
    const gguf_kv *kv = arch_key(m, "attention.sliding_window_pattern");
    int64_t period = m->arch->swa_pattern;
    if (kv && kv->type == SLM_META_ARRAY) {
        if (kv->count != (uint64_t)m->n_layer)
            return seterr(err, SLM_ERR_FORMAT, "key '%s' has %llu entries for %d layers", kv->key,
                          (unsigned long long)kv->count, m->n_layer);
        for (int il = 0; il < m->n_layer; il++) {
            int64_t v;
            if (kv_int(&m->g, kv, il, &v) != SLM_OK)
                return seterr(err, SLM_ERR_FORMAT, "key '%s' is not an array of flags", kv->key);
            m->layers[il].swa = v != 0;
        }
        return SLM_OK;
    }
    if (kv && (kv_int(&m->g, kv, -1, &period) != SLM_OK || period < 0 || period > m->n_layer + 1))
        return seterr(err, SLM_ERR_FORMAT, "key '%s' is not a layer period", kv->key);
    /* llama.cpp: layer il slides if il % period < period - 1 (period 0: all) */
    for (int il = 0; il < m->n_layer; il++)
        m->layers[il].swa = period == 0 || (il % period < period - 1);
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
    w->dot = m->kern.dot[t->type];
    w->dot4 = m->kern.dot4[t->type];
    w->g16x8 = m->kern.gemm16_x8[t->type];
    w->g16 = m->kern.gemm16_rows[t->type];
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

static slm_status bind_embedding_tensors(slm_model *m, slm_error *err);
/* --- 2026 families: layer kinds and recurrent tensors (issue 14) ------------ */

/* Conv channels and taps of a recurrent layer's causal depthwise conv. */
static void rec_conv_shape(const slm_model *m, int kind, int *ch, int *k) {
    const int ssm_ch = m->ssm_inner + 2 * m->ssm_ng * m->ssm_state; /* mamba2: x | B | C */
    *ch = kind == LK_SHORTCONV ? m->n_embd : ssm_ch; /* deltanet: q | k | v */
    *k = kind == LK_SHORTCONV ? m->sc_k : m->ssm_k;
}

/* Kind of every layer, KV slots, offsets of the recurrent state and the
   sizes the session needs. Needs m->layers allocated. */
static slm_status layer_kinds(slm_model *m, slm_error *err) {
    const int rk = m->arch->rec_kind;
    if (rk == LK_DELTANET) {
        const gguf_kv *kv = arch_key(m, "attention.recurrent_layers");
        int interval = 4;
        if (kv && (kv->type != SLM_META_ARRAY || kv->count != (uint64_t)m->n_layer))
            return seterr(err, SLM_ERR_FORMAT, "key '%s' is not an array of %d flags", kv->key, m->n_layer);
        if (!kv) {
            slm_status st = hp_int(m, "full_attention_interval", 0, 4, 1, 1 << 16, &interval, err);
            if (st != SLM_OK) return st;
        }
        for (int il = 0; il < m->n_layer; il++) {
            int64_t v = (il + 1) % interval != 0;
            if (kv && kv_int(&m->g, kv, il, &v) != SLM_OK)
                return seterr(err, SLM_ERR_FORMAT, "key '%s' is not an array of flags", kv->key);
            m->layers[il].kind = v ? LK_DELTANET : LK_ATTN;
        }
    } else if (rk != LK_ATTN) {
        const gguf_kv *kv = arch_key(m, "attention.head_count_kv");
        for (int il = 0; il < m->n_layer; il++) {
            int64_t v = 1;
            if (kv && kv->type == SLM_META_ARRAY && kv_int(&m->g, kv, il, &v) != SLM_OK) v = 1;
            m->layers[il].kind = v == 0 ? rk : LK_ATTN;
        }
    }
    uint64_t off = 0, rv = 0; /* (64-bit: checked against size_t below) */
    int hy = m->arch->gated_q ? 2 * m->q_dim : 0;
    m->n_kv_layer = m->n_rec = 0;
    for (int il = 0; il < m->n_layer; il++) {
        layer *L = &m->layers[il];
        L->nope = m->rope_off || (m->arch->nope_period && (il + 1) % m->arch->nope_period == 0);
        if (L->kind == LK_ATTN) {
            L->kv_slot = m->n_kv_layer++;
            continue;
        }
        m->n_rec++;
        int ch, k;
        rec_conv_shape(m, L->kind, &ch, &k);
        const uint64_t ssm = L->kind == LK_SHORTCONV ? 0 : (uint64_t)m->ssm_inner * (uint64_t)m->ssm_state;
        L->rs_conv = (size_t)off;
        off += (uint64_t)(k - 1) * (uint64_t)ch;
        L->rs_ssm = (size_t)off;
        off += ssm;
        rv += (uint64_t)k * ch + ch + 3 * (uint64_t)m->ssm_nh + (uint64_t)m->ssm_inner;
        if (off > SIZE_MAX / 16 || rv > SIZE_MAX / 16)
            return seterr(err, SLM_ERR_NOMEM, "the recurrent state of %d layers does not fit in memory", m->n_layer);
        /* per token: projections, then what the layer keeps beside them */
        int w = L->kind == LK_SHORTCONV ? 3 * m->n_embd
                : L->kind == LK_DELTANET ? ch + m->ssm_inner + 2 * m->ssm_nh
                                         : 2 * m->ssm_inner + 2 * m->ssm_ng * m->ssm_state + m->ssm_nh;
        hy = SLM_MAX(hy, w);
    }
    m->rs_floats = (size_t)off;
    m->hy_width = hy;
    m->rvecs_len = (size_t)rv;
    if (rv) {
        m->rvecs = (float *)xalloc(&m->a, m->rvecs_len * sizeof(float));
        if (!m->rvecs) return seterr(err, SLM_ERR_NOMEM, "out of memory for %zu recurrent parameters", m->rvecs_len);
    }
    return SLM_OK;
}

/* Bind n floats of any shape (the 2-D conv taps, granitehybrid's {1, n}
   ssm_a/ssm_d and {n/g, g} group norm), converted to f32. */
static slm_status bind_f(slm_model *m, const char *name, int64_t n, int required, const float **out, slm_error *err) {
    const gguf_tensor *t = find_tensor(m, name);
    *out = NULL;
    if (!t) return required ? seterr(err, SLM_ERR_FORMAT, "missing tensor '%s'", name) : SLM_OK;
    const int64_t nel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    const type_traits *tt = traits_of(t->type);
    if (nel != n)
        return seterr(err, SLM_ERR_FORMAT, "tensor '%s' has %lld values, expected %lld", name, (long long)nel,
                      (long long)n);
    if (!tt || t->ne[0] % type_size_of(t->type)->blck != 0)
        return seterr(err, SLM_ERR_UNSUPPORTED, "tensor '%s' has type %s, which slm does not support here", name,
                      slm_type_name(t->type));
    if ((size_t)n > m->rvecs_len - m->rvecs_used)
        return seterr(err, SLM_ERR_FORMAT, "tensor '%s': recurrent parameter storage exhausted", name);
    float *dst = m->rvecs + m->rvecs_used;
    m->rvecs_used += (size_t)n;
    tt->to_float(tensor_data(m, t), dst, n);
    *out = dst;
    return SLM_OK;
}

/* The mixer tensors of a recurrent layer (names as llama.cpp's converter
   writes them). */
static slm_status bind_mixer(slm_model *m, int il, layer *L, slm_error *err) {
    slm_status st;
    char name[96];
    const int E = m->n_embd, I = m->ssm_inner, NH = m->ssm_nh, G = m->ssm_ng, N = m->ssm_state;
    int ch, k;
    rec_conv_shape(m, L->kind, &ch, &k);
#define NM(s) (fmt_sn(name, sizeof name, "blk.%d.%s", il, s), name)
#define B(call) \
    if ((st = (call)) != SLM_OK) return st
    if (L->kind == LK_SHORTCONV) {
        B(bind_w(m, NM("shortconv.in_proj.weight"), E, 3 * E, 1, &L->r_in, err));
        B(bind_f(m, NM("shortconv.conv.weight"), (int64_t)k * ch, 1, &L->conv_w, err));
        B(bind_w(m, NM("shortconv.out_proj.weight"), E, E, 1, &L->r_out, err));
    } else if (L->kind == LK_DELTANET) {
        B(bind_w(m, NM("attn_qkv.weight"), E, ch, 1, &L->r_in, err));
        B(bind_w(m, NM("attn_gate.weight"), E, I, 1, &L->r_gate, err));
        B(bind_w(m, NM("ssm_beta.weight"), E, NH, 1, &L->r_beta, err));
        B(bind_w(m, NM("ssm_alpha.weight"), E, NH, 1, &L->r_alpha, err));
        B(bind_f(m, NM("ssm_conv1d.weight"), (int64_t)k * ch, 1, &L->conv_w, err));
        B(bind_f(m, NM("ssm_a"), NH, 1, &L->ssm_a, err));
        B(bind_f(m, NM("ssm_dt.bias"), NH, 1, &L->dt_bias, err));
        B(bind_f(m, NM("ssm_norm.weight"), I / NH, 1, &L->ssm_norm, err));
        B(bind_w(m, NM("ssm_out.weight"), I, E, 1, &L->r_out, err));
    } else {
        B(bind_w(m, NM("ssm_in.weight"), E, 2 * I + 2 * G * N + NH, 1, &L->r_in, err));
        B(bind_f(m, NM("ssm_conv1d.weight"), (int64_t)k * ch, 1, &L->conv_w, err));
        B(bind_f(m, NM("ssm_conv1d.bias"), ch, 0, &L->conv_b, err));
        B(bind_f(m, NM("ssm_a"), NH, 1, &L->ssm_a, err));
        B(bind_f(m, NM("ssm_d"), NH, 1, &L->ssm_d, err));
        B(bind_f(m, NM("ssm_dt.bias"), NH, 1, &L->dt_bias, err));
        B(bind_f(m, NM("ssm_norm.weight"), I, 1, &L->ssm_norm, err));
        B(bind_w(m, NM("ssm_out.weight"), I, E, 1, &L->r_out, err));
    }
#undef B
#undef NM
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
    B(bind_v(m, m->arch->out_norm_name ? m->arch->out_norm_name : "output_norm.weight", E, !m->enc->post_ln,
             &m->output_norm, err));
    B(bind_w(m, "output.weight", E, m->n_vocab, m->arch->post_only, &m->output, err)); /* olmo2: required */
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    B(bind_v(m, "rope_freqs.weight", m->n_rot / 2, 0, &m->rope_freqs, err));
    B(bind_v(m, "rope_factors_long.weight", m->n_rot / 2, 0, &m->rope_long, err));
    B(bind_v(m, "rope_factors_short.weight", m->n_rot / 2, 0, &m->rope_short, err));
    if (!m->rope_long != !m->rope_short)
        return seterr(err, SLM_ERR_FORMAT, "rope_factors_long and rope_factors_short must come together");

    m->layers = (layer *)xcalloc(&m->a, (size_t)m->n_layer, sizeof(layer));
    if (!m->layers) return seterr(err, SLM_ERR_NOMEM, "out of memory");
    B(swa_layers(m, err));
    B(layer_kinds(m, err));
    const int pre = !m->arch->post_only && !m->enc->post_ln, qkf = m->arch->qk_norm_full, gq = m->arch->gated_q ? 2 : 1;
    for (int il = 0; il < m->n_layer; il++) {
        layer *L = &m->layers[il];
#define NM(s) (fmt_sn(name, sizeof name, "blk.%d.%s", il, s), name)
        B(bind_v(m, NM("attn_norm.weight"), E, pre, &L->attn_norm, err));
        if (L->kind != LK_ATTN) {
            B(bind_mixer(m, il, L, err)); /* a recurrent kind */
        } else {
            /* q, k, v as three matrices, or fused into one (phi3) */
            B(bind_w(m, NM("attn_qkv.weight"), E, Q + 2 * KV, 0, &L->wqkv, err));
            B(bind_w(m, NM("attn_q.weight"), E, gq * Q, !L->wqkv.data, &L->wq, err));
            B(bind_w(m, NM("attn_k.weight"), E, KV, !L->wqkv.data, &L->wk, err));
            B(bind_w(m, NM("attn_v.weight"), E, KV, !L->wqkv.data, &L->wv, err));
            if (L->wqkv.data && (L->wq.data || L->wk.data || L->wv.data))
                return seterr(err, SLM_ERR_FORMAT, "layer %d has both attn_qkv and separate q/k/v weights", il);
            if (L->wqkv.data && gq == 2)
                return seterr(err, SLM_ERR_FORMAT, "layer %d: a fused attn_qkv in a gated attention layer", il);
            B(bind_w(m, NM("attn_output.weight"), Q, E, 1, &L->wo, err));
            B(bind_v(m, NM("attn_q.bias"), Q, 0, &L->bq, err));
            B(bind_v(m, NM("attn_k.bias"), KV, 0, &L->bk, err));
            B(bind_v(m, NM("attn_v.bias"), KV, 0, &L->bv, err));
            B(bind_v(m, NM("attn_q_norm.weight"), qkf ? Q : m->head_dim, 0, &L->q_norm, err));
            B(bind_v(m, NM("attn_k_norm.weight"), qkf ? KV : m->head_dim, 0, &L->k_norm, err));
        }
        if (!m->arch->ffn_norm_name)
            B(bind_v(m, NM("post_attention_norm.weight"), E, 0, &L->post_attn_norm, err));
        {
            char fnn[64];
            fmt_sn(fnn, sizeof fnn, "%s.weight", m->arch->ffn_norm_name ? m->arch->ffn_norm_name : "ffn_norm");
            B(bind_v(m, NM(fnn), E, pre, &L->ffn_norm, err));
        }
        /* gate and up as two matrices, or one of 2F rows, gate first (phi3) */
        B(bind_w(m, NM("ffn_gate.weight"), E, F, 0, &L->w_gate, err));
        B(bind_w(m, NM("ffn_up.weight"), E, L->w_gate.data || m->enc->ffn_plain ? F : 2 * F, 1, &L->w_up, err));
        B(bind_w(m, NM("ffn_down.weight"), F, E, 1, &L->w_down, err));
        B(bind_v(m, NM("post_ffw_norm.weight"), E, 0, &L->post_ffn_norm, err));
#undef NM
        /* sliding layers have their own rope base and no frequency scaling */
        L->rope_base = L->swa ? m->rope_base_swa : m->rope_base;
        L->rope_freq_scale = L->swa ? 1.0f : m->rope_freq_scale;
    }
#undef B
    if ((st = bind_embedding_tensors(m, err)) != SLM_OK) return st;
    for (uint64_t i = 0; i < m->g.n_tensors; i++) {
        const gguf_tensor *t = &m->g.tensors[i];
        uint64_t nel = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        m->n_params += nel;
        m->weight_bytes += t->nbytes;
    }
    return SLM_OK;
}

/* --- embedding models ------------------------------------------------------- */
/*
 * Encoders (bert, nomic-bert, gemma-embedding) and decoders used as
 * embedders (qwen3 with LAST pooling) run through the same forward pass;
 * the flags of ENC_ARCHS and the optional tensors bound here select
 * BERT's learned positions, token types, embedding LayerNorm, biases and
 * post-residual LayerNorms, and gemma-embedding's dense layers after
 * pooling. Pooling itself is in section 12b (slm_embed).
 */

static slm_status load_embedding_hparams(slm_model *m, slm_error *err) {
    slm_status st;
    m->enc = &ENC_ARCHS[0];
    for (size_t i = 1; i < sizeof ENC_ARCHS / sizeof ENC_ARCHS[0]; i++)
        if (!strcmp(ENC_ARCHS[i].name, m->arch_name)) m->enc = &ENC_ARCHS[i];
    int pooling = SLM_POOLING_NONE, causal = !m->enc->bidir;
    if ((st = hp_int(m, "pooling_type", 0, SLM_POOLING_NONE, 0, 4, &pooling, err)) != SLM_OK) return st;
    if (pooling == 4) {
        logf_(m, SLM_LOG_WARN, "pooling_type 4 (RANK, rerankers) is not supported: using NONE");
        pooling = SLM_POOLING_NONE;
    }
    m->pooling = pooling;
    {
        const gguf_kv *kv = arch_key(m, "attention.causal");
        int64_t c;
        if (kv && kv->type != SLM_META_ARRAY && kv_int(&m->g, kv, -1, &c) == SLM_OK) causal = c != 0;
    }
    if (causal && m->enc->bidir)
        return seterr(err, SLM_ERR_UNSUPPORTED, "%s with causal attention is not supported", m->arch_name);
    m->causal = !m->enc->bidir;
    if (m->enc->post_ln && (st = hp_float(m, "attention.layer_norm_epsilon", 1e-12, &m->eps, err)) != SLM_OK)
        return st;
    if (m->enc->learned_pos) m->n_rot = 0;
    if (m->enc->bidir && m->arch->swa_pattern) {
        /* gemma-embedding: the sliding layers' base is rope.freq_base_swa */
        if ((st = hp_float(m, "rope.freq_base_swa", m->rope_base_swa, &m->rope_base_swa, err)) != SLM_OK) return st;
    }
    m->n_embd_out = m->n_embd;
    return SLM_OK;
}

static slm_status bind_embedding_tensors(slm_model *m, slm_error *err) {
    slm_status st;
    char name[96];
    const int E = m->n_embd, F = m->n_ff;
#define B(call) \
    if ((st = (call)) != SLM_OK) return st
    if (m->enc->learned_pos) {
        const gguf_tensor *t = find_tensor(m, "position_embd.weight");
        if (!t) return seterr(err, SLM_ERR_FORMAT, "missing tensor 'position_embd.weight'");
        if (t->ne[1] < 1 || t->ne[1] > (1 << 24))
            return seterr(err, SLM_ERR_FORMAT, "position_embd.weight has %lld rows", (long long)t->ne[1]);
        B(bind_w(m, "position_embd.weight", E, t->ne[1], 1, &m->pos_embd, err));
    }
    if (m->enc->post_ln) {
        const gguf_tensor *t = find_tensor(m, "token_types.weight");
        if (t) B(bind_w(m, "token_types.weight", E, t->ne[1] >= 1 ? t->ne[1] : 1, 1, &m->tok_types, err));
        B(bind_v(m, "token_embd_norm.weight", E, 1, &m->embd_norm, err));
        B(bind_v(m, "token_embd_norm.bias", E, 1, &m->embd_norm_b, err));
    }
    for (int il = 0; il < m->n_layer && m->enc->post_ln; il++) {
        layer *L = &m->layers[il];
#define NM(s) (fmt_sn(name, sizeof name, "blk.%d.%s", il, s), name)
        B(bind_v(m, NM("attn_output.bias"), E, 0, &L->bo, err));
        B(bind_v(m, NM("attn_output_norm.weight"), E, 1, &L->attn_out_norm, err));
        B(bind_v(m, NM("attn_output_norm.bias"), E, 1, &L->attn_out_norm_b, err));
        B(bind_v(m, NM("ffn_up.bias"), F, 0, &L->b_up, err));
        B(bind_v(m, NM("ffn_down.bias"), E, 0, &L->b_down, err));
        B(bind_v(m, NM("layer_output_norm.weight"), E, 1, &L->out_norm, err));
        B(bind_v(m, NM("layer_output_norm.bias"), E, 1, &L->out_norm_b, err));
#undef NM
    }
    /* gemma-embedding: dense_2 (n_embd -> mid) and dense_3 (mid -> n_embd) */
    {
        const gguf_tensor *t2 = find_tensor(m, "dense_2.weight"), *t3 = find_tensor(m, "dense_3.weight");
        if (!t2 != !t3) return seterr(err, SLM_ERR_FORMAT, "dense_2.weight and dense_3.weight must come together");
        if (t2) {
            if (t2->ne[1] < 1 || t2->ne[1] > (1 << 20) || t3->ne[1] != E)
                return seterr(err, SLM_ERR_FORMAT, "dense_2/dense_3 have shapes [%lld, %lld] and [%lld, %lld]; the "
                              "output must be n_embd (%d) wide", (long long)t2->ne[0], (long long)t2->ne[1],
                              (long long)t3->ne[0], (long long)t3->ne[1], E);
            B(bind_w(m, "dense_2.weight", E, t2->ne[1], 1, &m->dense2, err));
            B(bind_w(m, "dense_3.weight", t2->ne[1], t3->ne[1], 1, &m->dense3, err));
            m->n_embd_out = (int)t3->ne[1];
        }
    }
#undef B
    return SLM_OK;
}

/* --- loading ---------------------------------------------------------------- */

void slm_model_params_init(slm_model_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->use_mmap = 1;
    p->repack = 1;
}

/* Rearrange every matrix that has an x8 kernel into x8 groups, in place (the
   model's own buffer or its private mapping). Tied matrices share data and
   are rearranged once. */
static slm_status repack_weights(slm_model *m, slm_error *err) {
    const size_t cap = 2 + 13 * (size_t)m->n_layer;
    weight **ws = (weight **)xalloc(&m->a, cap * sizeof(weight *));
    int n = 0;
    if (!ws) return seterr(err, SLM_ERR_NOMEM, "out of memory repacking the weights");
    ws[n++] = &m->tok_embd;
    ws[n++] = &m->output;
    for (int il = 0; il < m->n_layer; il++) {
        layer *L = &m->layers[il];
        weight *lw[13] = {&L->wq,   &L->wk,   &L->wv,     &L->wqkv,    &L->wo,    &L->w_gate, &L->w_up,
                          &L->w_down, &L->r_in, &L->r_gate, &L->r_beta, &L->r_alpha, &L->r_out};
        for (int k = 0; k < 13; k++) ws[n++] = lw[k];
    }
    size_t tmp_size = 0;
    for (int i = 0; i < n; i++) tmp_size = SLM_MAX(tmp_size, 8 * ws[i]->rb);
    uint8_t *tmp = (uint8_t *)xalloc(&m->a, tmp_size ? tmp_size : 1);
    if (!tmp) {
        xfree(&m->a, ws, cap * sizeof(weight *));
        return seterr(err, SLM_ERR_NOMEM, "out of memory repacking the weights");
    }
    for (int i = 0; i < n; i++) {
        weight *w = ws[i];
        gemm_x8_fn k = w->data ? m->kern.gemm_x8[w->type] : NULL;
        if (!k || w->x8 || w->n_out % 8 != 0) continue;
        uint8_t *d = (uint8_t *)(uintptr_t)w->data;
        const int nb = (int)(w->n_in / type_size_of(w->type)->blck);
        for (int64_t g = 0; g < w->n_out / 8; g++) {
            memcpy(tmp, d + (size_t)g * 8 * w->rb, 8 * w->rb);
            x8_pack(w->type, tmp, w->rb, nb, d + (size_t)g * 8 * w->rb);
        }
        for (int j = 0; j < n; j++)
            if (ws[j]->data == w->data) ws[j]->x8 = k;
    }
    xfree(&m->a, tmp, tmp_size ? tmp_size : 1);
    xfree(&m->a, ws, cap * sizeof(weight *));
    return SLM_OK;
}

static void model_release(slm_model *m) {
    allocator a = m->a;
    vocab_free(m);
    gguf_free(&m->g, &a);
    xfree(&a, m->layers, (size_t)m->n_layer * sizeof(layer));
    xfree(&a, m->vecs, (m->vecs_len ? m->vecs_len : 1) * sizeof(float));
    if (m->rvecs) xfree(&a, m->rvecs, m->rvecs_len * sizeof(float));
    xfree(&a, m->gelu_tab, 65536 * sizeof(uint16_t));
    if (m->source == SRC_OWNED) xfree(&a, (void *)m->bytes, m->size);
#if defined(SLM_HAVE_MMAP) && defined(_WIN32)
    if (m->source == SRC_MMAP && m->bytes) UnmapViewOfFile(m->bytes);
#elif defined(SLM_HAVE_MMAP)
    if (m->source == SRC_MMAP && m->bytes) munmap((void *)m->bytes, m->size);
#endif
    xfree(&a, m, sizeof *m);
}

void slm_model_free(slm_model *m) {
    if (m) model_release(m);
}

/* Defined in section 7: */
static float gelu_tanh(float x);

/* Everything after the bytes are in memory. */
static slm_status model_init(slm_model *m, slm_error *err) {
    slm_status st = gguf_parse(&m->g, m->bytes, m->size, &m->a, err);
    if (st != SLM_OK) return st;
    const gguf_kv *ak = gguf_get(&m->g, "general.architecture");
    if (!ak) return seterr(err, SLM_ERR_FORMAT, "missing key 'general.architecture'");
    if (ak->type != SLM_META_STRING)
        return seterr(err, SLM_ERR_FORMAT, "general.architecture has type %s, expected string", meta_type_name(ak->type));
    if (ak->str_len >= sizeof m->arch_name || memchr(ak->str[0], 0, ak->str_len))
        return seterr(err, SLM_ERR_FORMAT, "general.architecture is too long or holds a NUL byte");
    memcpy(m->arch_name, ak->str[0], ak->str_len + 1);
    if ((st = vocab_load(m, err)) != SLM_OK) return st;
    if (m->vocab_only) {
        m->n_vocab = slm_vocab_size(m);
        return SLM_OK;
    }
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(ARCHS[i].name, m->arch_name) == 0) m->arch = &ARCHS[i];
    if (!m->arch) return seterr(err, SLM_ERR_UNSUPPORTED, "architecture '%s' is not supported", m->arch_name);
    if ((st = load_hparams(m, err)) != SLM_OK) return st;
    if ((st = load_embedding_hparams(m, err)) != SLM_OK) return st;
    if ((st = bind_tensors(m, err)) != SLM_OK) return st;
    if (m->repack && m->source != SRC_CALLER && (st = repack_weights(m, err)) != SLM_OK) return st;
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

/* Defined in appendix E8: */
static const kernel_table *kernels_find(int isa);
#if defined(SLM_X86_DISPATCH)
static int cpu_has_isa(int isa);
#endif
#if defined(SLM_X86_DISPATCH)
#elif defined(SLM_ARM_DISPATCH)
static int cpu_has_isa(int isa);
#endif
#if defined(SLM_X86_DISPATCH)
#elif defined(SLM_ARM_DISPATCH)
#else
static int cpu_has_isa(int isa);
#endif
static void kernels_resolve(const kernel_table *t, kernel_table *out);

/* *out: a new model with the parameters set and its kernels chosen */
static slm_status model_new(const slm_model_params *params, slm_model **out, slm_error *err) {
    slm_model_params dp;
    if (!params) {
        slm_model_params_init(&dp);
        params = &dp;
    }
    allocator a;
    alloc_init(&a, params->allocator);
    *out = NULL;
    const kernel_table *k = kernels_find(params->isa);
    if (!k && params->isa > 0 && params->isa < SLM_ISA_COUNT)
        return seterr(err, SLM_ERR_UNSUPPORTED, "the %s kernels are not available: %s", slm_isa_name(params->isa),
                      cpu_has_isa(params->isa) ? "this build of slm does not have them" : "this CPU cannot run them");
    if (!k) return seterr(err, SLM_ERR_INVALID_ARG, "params.isa is %d: not an SLM_ISA_* value", params->isa);
    slm_model *m = (slm_model *)xcalloc(&a, 1, sizeof *m);
    if (!m) {
#if defined(SLM_NO_MALLOC)
        if (a.is_default) {
            return seterr(err, SLM_ERR_NOMEM, "built with SLM_NO_MALLOC: set params.allocator (an slm_arena, for example)");
        }
#endif
        return seterr(err, SLM_ERR_NOMEM, "out of memory for the model");
    }
    m->a = a;
    m->log = params->log;
    m->log_user = params->log_user;
    m->vocab_only = params->vocab_only;
    m->repack = params->repack;
    kernels_resolve(k, &m->kern);
    *out = m;
    return SLM_OK;
}

slm_status slm_model_load_memory(const void *data, size_t size, const slm_model_params *params, slm_model **out,
                                 slm_error *err) {
    clearerr_(err);
    if (!out) return seterr(err, SLM_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!data && size) return seterr(err, SLM_ERR_INVALID_ARG, "data is NULL");
    double t0 = now_ms();
    slm_model *m;
    slm_status st0 = model_new(params, &m, err);
    if (st0 != SLM_OK) return st0;
    m->bytes = (const uint8_t *)data;
    m->size = size;
    m->source = SRC_CALLER;
    slm_status st = model_init(m, err);
    if (st != SLM_OK) {
        model_release(m);
        return st;
    }
    m->load_ms = now_ms() - t0;
    *out = m;
    return SLM_OK;
}

size_t slm_model_memory_size(const void *data, size_t size, const slm_model_params *params,
                             const slm_session_params *sp, slm_error *err) {
    slm_model_params mp;
    if (params) mp = *params;
    else slm_model_params_init(&mp);
    allocator under;
    alloc_init(&under, mp.allocator);
    arena_sim sm;
    memset(&sm, 0, sizeof sm);
    sm.under = &under;
    slm_allocator hook = {arena_sim_alloc, arena_sim_free, &sm};
    mp.allocator = &hook;
    slm_model *m = NULL;
    slm_session *s = NULL;
    if (slm_model_load_memory(data, size, &mp, &m, err) != SLM_OK) return 0;
    if (sp && slm_session_create(m, sp, &s, err) != SLM_OK) {
        slm_model_free(m);
        return 0;
    }
    size_t peak = sm.peak;
    slm_session_free(s);
    slm_model_free(m);
    return peak;
}



/* The bytes of a model file: mapped if allowed and possible, read
   otherwise; model_release gives them back. */
static slm_status model_map_file(slm_model *m, const char *path, int use_mmap, slm_error *err) {
    slm_status st = SLM_OK;
#if defined(SLM_HAVE_MMAP)
    if (use_mmap && map_file(&m->a, path, &m->bytes, &m->size, err, &st)) {
        m->source = SRC_MMAP;
        return SLM_OK;
    }
    if (st != SLM_OK) return st;
#else
    (void)use_mmap;
#endif
    if ((st = read_file(&m->a, path, &m->bytes, &m->size, err)) == SLM_OK) m->source = SRC_OWNED;
    return st;
}

slm_status slm_model_load_file(const char *path, const slm_model_params *params, slm_model **out, slm_error *err) {
    clearerr_(err);
    if (!out) return seterr(err, SLM_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!path) return seterr(err, SLM_ERR_INVALID_ARG, "path is NULL");
    double t0 = now_ms();
    slm_model *m;
    slm_status st0 = model_new(params, &m, err);
    if (st0 != SLM_OK) return st0;
    slm_status st = model_map_file(m, path, !params || params->use_mmap, err);
    if (st != SLM_OK) {
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
    m->load_ms = now_ms() - t0;
    *out = m;
    return SLM_OK;
}

/* --- inspection ------------------------------------------------------------- */

int slm_model_isa(const slm_model *model) { return model ? model->kern.isa : SLM_ISA_SCALAR; }

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
    o->load_ms = m->load_ms;
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
    if (kv->type == SLM_META_ARRAY) {
        if (!len) return SLM_ERR_INVALID_ARG; /* a view into the file: no NUL after it */
        *out = kv->sv[e];
        *len = kv->sl[e];
        return SLM_OK;
    }
    *out = kv->str[0];
    if (len) *len = kv->str_len;
    return SLM_OK;
}

/* Append formatted text at *pos (snprintf semantics: counts what would be written). */
static void fmt_append(char *buf, size_t size, size_t *pos, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = *pos < size ? size - *pos : 0;
    int n = fmt_vsn(room ? buf + *pos : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) *pos += (size_t)n;
}

static void fmt_value(const slm_model *m, const gguf_kv *kv, int t, int64_t elem, char *buf, size_t size, size_t *pos) {
    int64_t iv;
    double dv;
    if (t == SLM_META_STRING) {
        const char *s = kv->type == SLM_META_ARRAY ? kv->sv[elem] : kv->str[0];
        size_t n = kv->type == SLM_META_ARRAY ? kv->sl[elem] : kv->str_len;
        fmt_append(buf, size, pos, "\"");
        for (size_t c = 0; c < n; c++) {
            unsigned char ch = (unsigned char)s[c];
            if (ch == '"' || ch == '\\') fmt_append(buf, size, pos, "\\%c", ch);
            else if (ch < 0x20) fmt_append(buf, size, pos, "\\x%02x", ch);
            else fmt_append(buf, size, pos, "%c", ch);
            if (c > 200) {
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
/* 7. The forward pass                                                        */
/* ========================================================================== */

/* --- operators: norms, RoPE, softmax, activations, mat-mul, work units ---- */
/*
 * The forward pass runs inside one parallel region per chunk of tokens.
 * Each operator is a step cut into work units (rows or x8 groups of a
 * mat-mul, (token, head group) pairs of attention, tokens, parts of a
 * recurrent scan) that free threads take from the step's atomic counter;
 * a thread goes on to the next step when every unit of this one is done.
 * A descheduled thread thus delays only the unit it holds, and each output
 * is still computed by one kernel call, so results do not depend on the
 * thread count.
 */

/* Where threads wait for each other between operators (the work units
   below). A waiting thread spins for a few microseconds (the usual case on
   an idle machine: the last unit ends at once), then sleeps on a condition
   variable until the thread that finishes the last unit wakes it. OpenMP's
   default barrier keeps spinning instead: when another process holds one
   of the cores, the spinning thread burns the time its descheduled peer
   needs, and a 2-thread decode on a busy 2-core machine fell from ~270 to
   ~10 tokens/s. (Where there are no POSIX threads or no atomics builtins:
   OpenMP's barrier.) */
#if SLM_OPENMP && !defined(SLM_NO_OWN_BARRIER) && (defined(__GNUC__) || defined(__clang__)) && (!defined(_WIN32) || defined(__MINGW32__))
#define SLM_OWN_BARRIER 1
typedef struct sbarrier {
    int sleepers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} sbarrier;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield");
#endif
}

static int barrier_init(sbarrier *b) {
    b->sleepers = 0;
    if (pthread_mutex_init(&b->mu, NULL) != 0) return 0;
    if (pthread_cond_init(&b->cv, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        return 0;
    }
    return 1;
}

static void barrier_destroy(sbarrier *b) {
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
}

#else
typedef struct sbarrier {
    int unused;
} sbarrier;
static int barrier_init(sbarrier *b) {
    (void)b;
    return 1;
}
static void barrier_destroy(sbarrier *b) { (void)b; }
#endif

static void rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    if (w)
        for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
    else
        for (int i = 0; i < n; i++) out[i] = x[i] * scale;
}

static void softmax(const kernel_table *k, float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = SLM_MAX(mx, x[i]);
    const double sum = k->exp_sum(x, n, mx);
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


/* y[t*ldy + r] = W[r] . x[t] for rows r in [r0, r1); xq holds the
   activations converted to the weight's dot partner, rows xq_rb bytes apart.
   With a 4-token kernel (dot4, may be NULL) each weight row is loaded and
   unpacked once for 4 tokens; results are the same as with dot. */
static void matmul_k(vec_dot_fn dot, vec_dot4_fn dot4, const weight *w, const uint8_t *xq, size_t xq_rb, int n_tok,
                     float *y, int64_t ldy, int64_t r0, int64_t r1) {
    const int n = (int)w->n_in;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = w->data + (size_t)r * w->rb;
        int t = 0;
        if (dot4)
            for (; t + 4 <= n_tok; t += 4) dot4(n, row, xq + (size_t)t * xq_rb, xq_rb, y + t * ldy + r, ldy);
        for (; t < n_tok; t++) y[t * ldy + r] = dot(n, row, xq + (size_t)t * xq_rb);
    }
}

/* x8 groups [g0, g1), up to 4 tokens per call so that each weight byte is
   unpacked once for 4 tokens. */
static void matmul_x8(const weight *w, const uint8_t *xq, size_t xq_rb, int n_tok, float *y, int64_t ldy, int64_t g0,
                      int64_t g1) {
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *grp = w->data + (size_t)g * 8 * w->rb;
        for (int t = 0; t < n_tok; t += 4)
            w->x8((int)w->n_in, grp, xq + (size_t)t * xq_rb, xq_rb, SLM_MIN(4, n_tok - t), y + t * ldy + g * 8, ldy);
    }
}

/* --- prefill as a GEMM ---------------------------------------------------------
   A batch of SLM_GEMM_MIN_TOKENS tokens or more (SLM_GEMM_X8_MIN_TOKENS for
   x8 groups) goes through the gemm16 kernels where the weight type has one (kernel_table, appendix E): each
   call takes a slab of 16 rows (two x8 groups, or 16 GGUF rows converted on
   the fly to 8-bit levels) against every token of the batch, so a weight
   block is read and unpacked once per batch rather than once per 4 tokens.
   Units of the work-unit scheme below stay chunks of rows: chunks are
   whole slabs, and a matrix's last rows that do not fill a slab go through
   the kernels above. */
#ifndef SLM_GEMM_MIN_TOKENS
#define SLM_GEMM_MIN_TOKENS 32
#endif
/* x8 groups need no conversion, and their GEMM gives the x8 kernels' bits:
   it pays from 8 tokens on (AVX-512: 1.15x at 8 tokens, 1.2-1.35x at 128) */
#ifndef SLM_GEMM_X8_MIN_TOKENS
#define SLM_GEMM_X8_MIN_TOKENS 8
#endif

static gemm16_fn mm_gemm(const weight *w, int n_tok) {
    if (w->x8) return n_tok < SLM_GEMM_X8_MIN_TOKENS ? NULL : w->g16x8;
    /* (the K-quant converters address 16 rows with 32-bit offsets) */
    return n_tok < SLM_GEMM_MIN_TOKENS || w->rb > (size_t)(INT32_MAX / 16) ? NULL : w->g16;
}

/* Rows [r0, r1) (x8 groups when w->x8) through the GEMM kernel k. */
static void matmul_gemm(gemm16_fn k, const weight *w, const uint8_t *xq, size_t xq_rb, int n_tok, float *y, int64_t ldy,
                        int64_t r0, int64_t r1) {
    const int n = (int)w->n_in;
    const int64_t step = w->x8 ? 2 : 16; /* rows or groups per slab */
    int64_t r = r0;
    for (; r + step <= r1; r += step) {
        const int64_t row = w->x8 ? r * 8 : r;
        k(n, w->data + (size_t)row * w->rb, w->x8 ? 8 * w->rb : w->rb, xq, xq_rb, n_tok, y + row, ldy);
    }
    if (r < r1) {
        if (w->x8) matmul_x8(w, xq, xq_rb, n_tok, y, ldy, r, r1);
        else matmul_k(w->dot, w->dot4, w, xq, xq_rb, n_tok, y, ldy, r, r1);
    }
}

/* Row r of a matrix as floats (embedding lookup); tmp holds w->rb bytes. */
static void weight_row(const weight *w, int64_t r, uint8_t *tmp, float *out) {
    const uint8_t *row = w->data + (size_t)r * w->rb;
    if (w->x8) {
        x8_unpack_row(w->type, w->data + (size_t)(r / 8) * 8 * w->rb, (int)(r % 8),
                      (int)(w->n_in / type_size_of(w->type)->blck), tmp);
        row = tmp;
    }
    TRAITS[w->type].to_float(row, out, w->n_in);
}

/* The activation format a matrix multiplies with. */
static int act_type(const weight *w) { return w->x8 && !is_kx8(w->type) ? ACT_Q8_0X : TRAITS[w->type].dot_type; }

/* --- work units ---------------------------------------------------------------
   Each operator of the forward pass is cut into units (a chunk of a
   matrix's rows or x8 groups, a (token, head group) of attention, a token
   of an element-wise step). A free thread takes the next unit from the
   operator's shared counter, and a thread goes on to the next operator as
   soon as every unit of this one is done (a count of finished units, not
   the arrival of every thread as at a barrier). A descheduled thread so
   delays only the unit it holds: when it runs again it finds the counters
   taken and catches up. Each output element is still computed by one
   kernel call on the same inputs, so results do not depend on the number
   of threads or on who took which unit. Waiting for the last unit spins
   briefly, then sleeps on the barrier's condition variable.
   Without the atomics (MSVC, SLM_NO_OWN_BARRIER): unit i goes to thread
   i % nth and operators end with the barrier, as a static split. */
/* Spins before a waiting thread sleeps: about 50 us of x86 `pause`. */
#ifndef SLM_WAIT_SPINS
#define SLM_WAIT_SPINS 2000
#endif

typedef struct op_slot {
    int next, done; /* units taken, units finished */
    char pad[56];   /* one cache line per operator */
} op_slot;

/* Operators of one forward pass at most: per layer (an attention layer
   takes up to 14, a Gated DeltaNet layer 19) and for the rest. */
#define OPS_PER_LAYER 24
#define OPS_EXTRA 8

typedef struct team {
    slm_session *s;
    op_slot *ops; /* this forward pass's counters, zeroed before it */
    sbarrier *bar;
    int op;       /* the current operator */
    int ith, nth;
    int mine;     /* units of the current operator this thread finished */
    int local;    /* units handed out locally (one thread, or no atomics) */
} team;

/* The next unit of the current operator (of n), or -1. */
static inline int unit_next(team *tm, int n) {
    int u;
#ifdef SLM_OWN_BARRIER
    if (tm->nth > 1) {
        u = __atomic_fetch_add(&tm->ops[tm->op].next, 1, __ATOMIC_RELAXED);
        if (u < n) tm->mine++;
        return u < n ? u : -1;
    }
#endif
    u = tm->ith + tm->local++ * tm->nth;
    return u < n ? u : -1;
}

/* End of an operator of n units: wait until all of them are done. */
static void op_end(team *tm, int n) {
#ifdef SLM_OWN_BARRIER
    if (tm->nth > 1) {
        op_slot *o = &tm->ops[tm->op];
        sbarrier *b = tm->bar;
        /* sequentially consistent against `sleepers`, as in barrier_wait */
        if (tm->mine && __atomic_add_fetch(&o->done, tm->mine, __ATOMIC_SEQ_CST) == n) {
            if (__atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST)) {
                pthread_mutex_lock(&b->mu);
                pthread_cond_broadcast(&b->cv);
                pthread_mutex_unlock(&b->mu);
            }
        } else if (__atomic_load_n(&o->done, __ATOMIC_ACQUIRE) < n) {
            int spins = 0;
            while (__atomic_load_n(&o->done, __ATOMIC_ACQUIRE) < n && spins++ < SLM_WAIT_SPINS) cpu_relax();
            if (spins > SLM_WAIT_SPINS) {
                pthread_mutex_lock(&b->mu);
                __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
                while (__atomic_load_n(&o->done, __ATOMIC_SEQ_CST) < n) pthread_cond_wait(&b->cv, &b->mu);
                __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
                pthread_mutex_unlock(&b->mu);
            }
        }
        tm->op++;
        tm->mine = tm->local = 0;
        return;
    }
#endif
    (void)n;
#if SLM_OPENMP && !defined(SLM_OWN_BARRIER)
    if (tm->nth > 1) {
        _Pragma("omp barrier");
    }
#endif
    tm->op++;
    tm->mine = tm->local = 0;
}

/* Units of a matrix: chunks of rows (of x8 groups) small enough for every
   thread to take several, large enough that taking one costs little. */
static int mm_chunk(const weight *w, int n_tok, int nth) {
    const int64_t n = w->x8 ? w->n_out / 8 : w->n_out, per_row = w->n_in * (w->x8 ? 8 : 1) * (int64_t)n_tok;
    int64_t c = (n + 4 * nth - 1) / (4 * nth);                    /* 4 units per thread */
    c = SLM_MAX(c, (32768 + per_row - 1) / SLM_MAX(per_row, 1)); /* >= 32K products */
    c = SLM_MAX(1, SLM_MIN(c, n));
    if (mm_gemm(w, n_tok)) { /* whole slabs of the GEMM kernels */
        const int64_t step = w->x8 ? 2 : 16;
        c = (c + step - 1) / step * step;
    }
    return (int)c;
}

/* Up to three matrix products in one operator (they do not depend on each
   other): y_i = W_i x_i. Units are chunks of each matrix in turn. */
typedef struct mm_job {
    const weight *w;
    const uint8_t *xq;
    size_t xq_rb;
    float *y;
    int64_t ldy;
} mm_job;

static void matmul_units(team *tm, const mm_job *jobs, int nj, int n_tok) {
    int first[4], chunk[3];
    first[0] = 0;
    for (int j = 0; j < nj; j++) {
        const weight *w = jobs[j].w;
        chunk[j] = mm_chunk(w, n_tok, tm->nth);
        const int64_t n = w->x8 ? w->n_out / 8 : w->n_out;
        first[j + 1] = first[j] + (int)((n + chunk[j] - 1) / chunk[j]);
    }
    const int total = first[nj];
    for (int u; (u = unit_next(tm, total)) >= 0;) {
        int j = 0;
        while (u >= first[j + 1]) j++;
        const mm_job *jb = &jobs[j];
        const weight *w = jb->w;
        const int64_t n = w->x8 ? w->n_out / 8 : w->n_out;
        const int64_t b = (int64_t)(u - first[j]) * chunk[j], e = SLM_MIN(n, b + chunk[j]);
        gemm16_fn g = mm_gemm(w, n_tok);
        if (g) matmul_gemm(g, w, jb->xq, jb->xq_rb, n_tok, jb->y, jb->ldy, b, e);
        else if (w->x8) matmul_x8(w, jb->xq, jb->xq_rb, n_tok, jb->y, jb->ldy, b, e);
        else matmul_k(w->dot, w->dot4, w, jb->xq, jb->xq_rb, n_tok, jb->y, jb->ldy, b, e);
    }
    op_end(tm, total);
}

/* Share [0, n) among nth parts: part ith gets [*b, *e). */
static inline void split(int64_t n, int ith, int nth, int64_t *b, int64_t *e) {
    int64_t per = (n + nth - 1) / nth;
    *b = SLM_MIN(n, per * ith);
    *e = SLM_MIN(n, *b + per);
}

/* y = W x for part ith of nth of the rows (the single-threaded products of
   the embedding heads run it as part 0 of 1). */
static void matmul(const weight *w, const uint8_t *xq, size_t xq_rb, int n_tok, float *y, int64_t ldy, int ith,
                   int nth) {
    int64_t b, e;
    split(w->x8 ? w->n_out / 8 : w->n_out, ith, nth, &b, &e);
    if (w->x8) matmul_x8(w, xq, xq_rb, n_tok, y, ldy, b, e);
    else matmul_k(w->dot, w->dot4, w, xq, xq_rb, n_tok, y, ldy, b, e);
}

/* --- the session: the buffers the forward pass works on ------------------- */
/* Dot-partner slots: activations are converted once per (buffer, type). */
#define N_ACT_SLOTS 2

struct slm_session {
    const slm_model *m;
    allocator a;
    int n_ctx, n_batch, n_threads, kv_type, logits_all;
    int32_t pos;
    int32_t last_n;      /* tokens in the last decode call */
    int32_t logits_rows; /* rows held in logits[]; row r = token last_n - logits_rows + r */
    /* KV cache: per attention layer K (n_ctx, kv_dim), then V transposed
       (kv_dim, n_ctx) (F32, F16) or by position like K (Q8_0) */
    uint8_t *kv;         /* (n_kv_layer, 2, n_ctx, kv_row bytes) */
    size_t kv_bytes, kv_row;
    /* activations, a row per token of the chunk being decoded (n_batch at
       most); E = n_embd, F = n_ff */
    float *x;            /* (n_batch, E) residual stream: the activation at each position */
    float *xb;           /* (n_batch, E) normed x, input of the products (embd_mode: the final hidden rows) */
    float *xo;           /* (n_batch, E) output of attention or the FFN, before the residual add */
    float *qkv;          /* (n_batch, q_dim + 2 kv_dim) q | k | v */
    float *att;          /* (n_batch, q_dim) attention output, every head */
    float *gu;           /* (n_batch, 2F) gate | up; the FFN activation lands in the gate half */
    float *scores;       /* (n_thr_alloc, n_head / n_head_kv, att_stride) attention scratch per thread and head of a group */
    size_t att_stride;
    int n_thr_alloc;
    float *fa;           /* flash attention (F16 cache): n_thr_alloc * fa_stride floats, or NULL */
    size_t fa_stride;
    float *fa_part;      /* [n_head][fa_chunks][head_dim + 2] a decoded token's partial sums per chunk of keys */
    size_t fa_part_n;    /* floats */
    uint8_t *act[N_ACT_SLOTS]; /* (n_batch, act_size / n_batch bytes) rows converted to a dot-partner type */
    size_t act_size;
    float *logits;       /* (logits_rows, n_vocab); room for logits_cap floats: n_batch rows with logits_all, else 1 */
    size_t logits_cap;   /* floats */
    size_t scratch_bytes;
    const float *rope_factors;
    sbarrier bar;        /* the forward pass's threads */
    int bar_ok;
    /* embeddings (slm_embed) */
    int embd_mode;       /* 1: forward leaves the final hidden rows in xb, no logits */
    int32_t enc_end;     /* bidirectional attention: positions [0, enc_end) are visible */
    float *emb;          /* [n_embd + dense mid] pooled sum, then the dense layers' rows */
    size_t emb_len;      /* floats */
    int32_t *emb_tok;    /* [n_ctx] token ids of the text being embedded */
    /* 2026 families (recurrent layers): recurrent state, two copies: rs[rs_cur]
       is the state at pos, rs[rs_cur ^ 1] the state at ckpt_pos (before the
       last decode call) while ckpt_ok; a decode call reads the one and
       writes the other, so that checkpoint costs no copy */
    float *rs[2];        /* [m->rs_floats] each */
    int rs_cur, ckpt_ok;
    int32_t ckpt_pos;
    const float *rs_src; /* state the current chunk starts from */
    float *rs_dst;       /* state it leaves */
    int32_t *toks;       /* [n_ctx] ids decoded so far, for rewind replays */
    float *hy;           /* [n_batch][m->hy_width] scratch of the new kinds */
    float *dw;           /* [n_thr_alloc][dw_stride] delta-rule chunk buffers per thread, or NULL */
    size_t dw_stride;    /* floats: delta_work_floats(ssm_state, head's dv, n_batch) */
    op_slot *ops;        /* work-unit counters: n_ops operators of a forward pass */
    size_t n_ops;
    double width_ms[2];  /* single-token forward pass, ms (moving average): 1 thread, n_threads */
    int width_calls;
};

/* --- the forward pass --------------------------------------------------------- */

/* (attention layers only have a cache: slot kv_slot) */
static inline uint8_t *kv_k(const slm_session *s, int il) {
    return s->kv + (size_t)(2 * s->m->layers[il].kv_slot) * (size_t)s->n_ctx * s->kv_row;
}
static inline uint8_t *kv_v(const slm_session *s, int il) {
    return s->kv + (size_t)(2 * s->m->layers[il].kv_slot + 1) * (size_t)s->n_ctx * s->kv_row;
}

/* Defined in appendix E8: */
static void act_from_float(const kernel_table *k, int dt, const float *src, void *dst, int64_t n);

/* Token t's activations for w, in slot `slot` (row t of the dot partner). */
static void act_tok(const slm_session *s, const weight *w, const float *x, int slot, int t) {
    const int dt = act_type(w);
    act_from_float(&s->m->kern, dt, x, s->act[slot] + (size_t)t * act_row_bytes(dt, w->n_in), w->n_in);
}

/* Convert n rows of floats (ldx apart) for w into slot `slot`, this
   part's share (ith of nth); *rb: bytes per converted row. */
static const uint8_t *act_for(slm_session *s, const weight *w, const float *x, int64_t ldx, int n, int slot, int ith,
                              int nth, size_t *rb) {
    int64_t t0, t1;
    *rb = act_row_bytes(act_type(w), w->n_in);
    split(n, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) act_tok(s, w, x + t * ldx, slot, (int)t);
    return s->act[slot];
}

/* y = W x with x the activations of slot `slot`. */
static mm_job job_of(const slm_session *s, const weight *w, int slot, float *y, int64_t ldy) {
    mm_job j;
    j.w = w;
    j.xq = s->act[slot];
    j.xq_rb = act_row_bytes(act_type(w), w->n_in);
    j.y = y;
    j.ldy = ldy;
    return j;
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

/* --- encoder steps of the forward pass (embedding models) ------------------ */

/* Keys visible to the query at position p: causal [0, p] (a sliding window
   keeps the last n_swa); bidirectional (encoders) the whole sequence
   [0, enc_end), a sliding window |p - k| <= n_swa / 2 on both sides. */
static void attn_span(const slm_session *s, const layer *L, int p, int *k0, int *nk) {
    const slm_model *m = s->m;
    int b = 0, e = p + 1;
    if (!m->causal) {
        e = s->enc_end;
        if (L->swa && m->n_swa > 0) {
            b = SLM_MAX(0, p - m->n_swa / 2);
            e = SLM_MIN(e, p + m->n_swa / 2 + 1);
        }
    } else if (L->swa && m->n_swa > 0 && p - m->n_swa + 1 > 0) {
        b = p - m->n_swa + 1;
    }
    *k0 = b;
    *nk = e - b;
}

/* LayerNorm with weight and bias (out may be x); sums in double as ggml. */
static void layernorm(float *out, const float *x, const float *w, const float *b, int n, float eps) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    const float mean = (float)(sum / n);
    double ss = 0;
    for (int i = 0; i < n; i++) {
        float d = x[i] - mean;
        ss += (double)d * d;
    }
    const float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) out[i] = (x[i] - mean) * scale * w[i] + b[i];
}

/* BERT embeddings for one token: + token-type row 0 (llama.cpp has no
   segment ids) + the position's row, then LayerNorm. tmp: n_embd floats. */
static void embd_encoder(const slm_model *m, float *x, int pos, float *tmp) {
    const int E = m->n_embd;
    if (m->tok_types.data) {
        weight_row(&m->tok_types, 0, NULL, tmp);
        for (int i = 0; i < E; i++) x[i] += tmp[i];
    }
    if (m->pos_embd.data) {
        weight_row(&m->pos_embd, pos, NULL, tmp);
        for (int i = 0; i < E; i++) x[i] += tmp[i];
    }
    if (m->embd_norm) layernorm(x, x, m->embd_norm, m->embd_norm_b, E, m->eps);
}

static inline void add_bias(float *x, const float *b, int n) {
    if (b)
        for (int i = 0; i < n; i++) x[i] += b[i];
}

/* Plain (ungated) FFN activation in place: g = act(g + b). */
static void ffn_act_plain(const slm_model *m, float *g, const float *b, int n) {
    add_bias(g, b, n);
    for (int i = 0; i < n; i++) {
        float x = g[i];
        if (m->arch->act == ACT_SILU) g[i] = silu(x);
        else g[i] = x <= -10.0f ? 0.0f : x >= 10.0f ? x : fp16_to_f32(m->gelu_tab[f32_to_fp16(x)]);
    }
}

/* Attention for the token at position p, head h. q: this head's query;
   work: this thread's scratch (att_stride floats). Writes the head's output.
   K is stored by position ([pos][kv_dim]); q . K[k] is the SIMD dot kernel
   of the cache type, with q converted to that type first, as ggml converts
   the other operand of a mat-mul (F16 for an F16 cache, Q8_0 blocks for a
   Q8_0 one). F32 and F16 caches store V transposed ([kv_dim][pos]), as
   llama.cpp's non-flash path does, so that V[i] . p over positions is a dot
   product along contiguous memory too (p rounded to the cache type); a
   Q8_0 cache keeps V by position (a block of 32 positions could not take a
   new one without requantizing) and sums p[k] * V[k] row by row. */
static void attend(const slm_session *s, const layer *L, int il, const float *q, int p, int h, float *work,
                   float *out) {
    const slm_model *m = s->m;
    const int hd = m->head_dim, kvh = h / (m->n_head / m->n_head_kv);
    const uint8_t *K = kv_k(s, il), *V = kv_v(s, il);
    int k0, nk;
    attn_span(s, L, p, &k0, &nk);
    const size_t off = (size_t)kvh * (size_t)hd, hoff = row_bytes(s->kv_type, (int64_t)off);
    const kernel_table *kt = &m->kern;
    const int kv = s->kv_type;
    float *scores = work;                         /* n_ctx floats */
    uint8_t *qc = (uint8_t *)(work + s->n_ctx);   /* hd values of kv_type */
    uint8_t *pc = qc + (size_t)hd * 4;            /* n_ctx values of kv_type, or hd floats */
    kt->from_float[kv](q, qc, hd);
    for (int k = 0; k < nk; k++) scores[k] = kt->dot[kv](hd, K + (size_t)(k0 + k) * s->kv_row + hoff, qc);
    const float scale = m->attn_scale, cap = m->attn_softcap;
    for (int k = 0; k < nk; k++) {
        float v = scores[k] * scale;
        if (cap > 0) v = cap * tanhf(v / cap);
        scores[k] = v;
    }
    softmax(kt, scores, nk);
    if (s->kv_type == SLM_TYPE_Q8_0) {
        float *vr = (float *)pc;
        for (int i = 0; i < hd; i++) out[i] = 0;
        for (int k = 0; k < nk; k++) {
            kt->to_float[kv](V + (size_t)(k0 + k) * s->kv_row + hoff, vr, hd);
            const float w = scores[k];
            for (int i = 0; i < hd; i++) out[i] += w * vr[i];
        }
        return;
    }
    const size_t es = s->kv_type == SLM_TYPE_F32 ? 4 : 2, vrow = (size_t)s->n_ctx * es;
    kt->from_float[kv](scores, pc, nk);
    for (int i = 0; i < hd; i++) out[i] = kt->dot[kv](nk, V + (off + (size_t)i) * vrow + (size_t)k0 * es, pc);
}

/* Attention for the token at position p, all query heads of KV head g at
   once (q: the first one's query, out: the first one's output; work: this
   thread's scratch, one att_stride slot per head), computing what attend()
   does head by head: each cached key and value row is read once for the
   whole group instead of once per head. F16 cache with a dot_rows kernel. */
static void attend_group(const slm_session *s, const layer *L, int il, const float *q, int p, int g, float *work,
                         float *out, dot_rows_fn rows) {
    const slm_model *m = s->m;
    const int hd = m->head_dim, nrep = m->n_head / m->n_head_kv;
    const size_t ws = s->att_stride, vrow = (size_t)s->n_ctx * 2, off = (size_t)g * (size_t)hd;
    int k0, nk;
    attn_span(s, L, p, &k0, &nk);
    const kernel_table *kt = &m->kern;
    /* slot j: scores[n_ctx] (then the probabilities), the query [hd] and
       room for halves; values rounded to F16 as attend's conversions do */
    for (int j = 0; j < nrep; j++) {
        float *w = work + (size_t)j * ws, *qf = w + s->n_ctx;
        uint8_t *tmp = (uint8_t *)(qf + hd);
        kt->from_float[SLM_TYPE_F16](q + (size_t)j * hd, tmp, hd);
        kt->to_float[SLM_TYPE_F16](tmp, qf, hd);
    }
    rows(hd, kv_k(s, il) + (size_t)k0 * s->kv_row + off * 2, s->kv_row, nk, work + s->n_ctx, ws, nrep, work, ws);
    const float scale = m->attn_scale, cap = m->attn_softcap;
    for (int j = 0; j < nrep; j++) {
        float *sc = work + (size_t)j * ws;
        uint8_t *tmp = (uint8_t *)(sc + s->n_ctx + hd);
        for (int k = 0; k < nk; k++) {
            float v = sc[k] * scale;
            if (cap > 0) v = cap * tanhf(v / cap);
            sc[k] = v;
        }
        softmax(kt, sc, nk);
        kt->from_float[SLM_TYPE_F16](sc, tmp, nk);
        kt->to_float[SLM_TYPE_F16](tmp, sc, nk);
    }
    rows(nk, kv_v(s, il) + off * vrow + (size_t)k0 * 2, vrow, hd, work, ws, nrep, out, (size_t)hd);
}

/* --- flash attention over an F16 cache -----------------------------------------
   What attend_group computes, by blocks (constants and scratch sizes before
   session_plan): a tile of queries (nq tokens times the nrep heads of KV
   head g; vector j = token * nrep + head) meets FA_BK keys at a time with a
   running maximum and sum per query (the online softmax) instead of a row of
   n_ctx scores. A block of keys and values is so read from the cache once for
   the whole tile and stays in the caches while the tile uses it: prefill at
   depth no longer streams the whole cache once per token, and the scores of a
   tile fit in L1. The probabilities exp(score - running max) are rounded to
   F16 before they weight V, as attend_group rounds the normalized ones.
   Blocks and chunks start at fixed multiples of FA_BK and FA_CHUNK, and each
   query's block is reduced over its own keys only (scores, exponentials and
   the V sums over the keys it sees), so a token gets the same bits decoded
   alone or in a batch, at any thread count. A single decoded token splits
   its keys by chunk into units, so that threads share a long context even
   with one KV head; the chunks' partial sums are merged in order afterwards,
   exactly as a prefill tile merges its chunks itself.
   A query's partial result (of a chunk, or of all chunks so far) is a row of
   hd + 2 floats: the V sum weighted by the unnormalized probabilities, the
   maximum they are relative to, and their sum. */

typedef struct fa_ctx {
    int g, t0, nq, na;          /* KV head, first token, tokens, query vectors */
    int ks[64], ke[64];         /* keys [ks, ke) of each token (attn_span) */
    float *qf;                  /* [na][hd] queries rounded to F16 */
    float *S;                   /* [na][FA_BK] a block's scores, then probabilities */
    float *tmp;                 /* [na][hd] a block's V sums */
    float *part, *tot;          /* [na][hd + 2] the chunk's partials, the total */
    float *corr;                /* [na] rescale of the chunk's partial at this block */
    uint8_t *h16;               /* max(hd, FA_BK) halves */
} fa_ctx;

/* Flash attention over an F16 cache (section 8, after attend_group): keys
   in blocks of FA_BK positions, blocks in chunks of FA_CHUNK positions, both
   at fixed multiples of their size (so a token's result does not depend on
   which other tokens share its call); queries in tiles of fa_tile_tokens()
   tokens times the heads of a KV head. */
#define FA_BK 512
#define FA_CHUNK 512

/* The tile's queries and key spans; its scratch in w (fa_stride floats). */
static void fa_setup(const slm_session *s, const layer *L, int g, int t0, int nq, int pos0, float *w, fa_ctx *c) {
    const slm_model *m = s->m;
    const kernel_table *kt = &m->kern;
    const int hd = m->head_dim, nrep = m->n_head / m->n_head_kv, QKV = m->q_dim + 2 * m->kv_dim;
    c->g = g, c->t0 = t0, c->nq = nq, c->na = nq * nrep;
    const size_t na = (size_t)c->na, pw = (size_t)hd + 2;
    c->qf = w;
    c->S = c->qf + na * (size_t)hd;
    c->tmp = c->S + na * FA_BK;
    c->part = c->tmp + na * (size_t)hd;
    c->tot = c->part + na * pw;
    c->corr = c->tot + na * pw;
    c->h16 = (uint8_t *)(c->corr + na);
    for (int t = 0; t < nq; t++) {
        int k0, nk;
        attn_span(s, L, pos0 + t0 + t, &k0, &nk);
        c->ks[t] = k0, c->ke[t] = k0 + nk;
        for (int r = 0; r < nrep; r++) {
            kt->from_float[SLM_TYPE_F16](s->qkv + (size_t)(t0 + t) * QKV + (size_t)(g * nrep + r) * hd, c->h16, hd);
            kt->to_float[SLM_TYPE_F16](c->h16, c->qf + (size_t)(t * nrep + r) * hd, hd);
        }
    }
}

static void fa_clear(float *p, int n, int hd) {
    for (int j = 0; j < n; j++, p += hd + 2) {
        memset(p, 0, (size_t)hd * sizeof(float));
        p[hd] = -INFINITY;
        p[hd + 1] = 0;
    }
}

/* The tile against the keys of chunk [c0, c0 + FA_CHUNK): partials in c->part. */
static void fa_chunk(const slm_session *s, int il, fa_ctx *c, int c0, dot_rows_fn rows) {
    const slm_model *m = s->m;
    const kernel_table *kt = &m->kern;
    const int hd = m->head_dim, nrep = m->n_head / m->n_head_kv, pw = hd + 2, c1 = c0 + FA_CHUNK;
    const size_t vrow = (size_t)s->n_ctx * 2, off = (size_t)c->g * (size_t)hd;
    const uint8_t *K = kv_k(s, il) + off * 2, *V = kv_v(s, il) + off * vrow;
    const float scale = m->attn_scale, cap = m->attn_softcap;
    const dot_rows_fn qk = kt->qk_rows_f16 ? kt->qk_rows_f16 : rows;
    int a = c1, b = c0; /* keys [a, b) of the chunk that some query of the tile sees */
    for (int t = 0; t < c->nq; t++)
        if (c->ke[t] > c0 && c->ks[t] < c1) {
            a = SLM_MIN(a, SLM_MAX(c->ks[t], c0));
            b = SLM_MAX(b, SLM_MIN(c->ke[t], c1));
        }
    fa_clear(c->part, c->na, hd);
    for (int kb = a - (a - c0) % FA_BK; kb < b; kb += FA_BK) {
        qk(hd, K + (size_t)kb * s->kv_row, s->kv_row, SLM_MIN(FA_BK, b - kb), c->qf, (size_t)hd, c->na, c->S, FA_BK);
        for (int t = 0; t < c->nq; t++) {
            const int lo = SLM_MAX(c->ks[t], kb) - kb, hi = SLM_MIN(c->ke[t], kb + FA_BK) - kb;
            if (hi <= lo) continue;
            for (int r = 0; r < nrep; r++) {
                const int j = t * nrep + r;
                float *sj = c->S + (size_t)j * FA_BK, *pj = c->part + (size_t)j * pw;
                float bm = -INFINITY;
                for (int k = lo; k < hi; k++) {
                    float v = sj[k] * scale;
                    if (cap > 0) v = cap * tanhf(v / cap);
                    sj[k] = v;
                    bm = v > bm ? v : bm;
                }
                const float mx = SLM_MAX(pj[hd], bm);
                c->corr[j] = expf(pj[hd] - mx); /* 0 at the first block */
                pj[hd] = mx;
                pj[hd + 1] = (float)(pj[hd + 1] * c->corr[j] + kt->exp_sum(sj + lo, hi - lo, mx));
                for (int k = 0; k < lo; k++) sj[k] = 0;
                kt->from_float[SLM_TYPE_F16](sj, c->h16, hi);
                kt->to_float[SLM_TYPE_F16](c->h16, sj, hi);
            }
        }
        /* probabilities . V rows, for each run of tokens whose keys in the block end at the same place */
        for (int t = 0; t < c->nq;) {
            const int lo = SLM_MAX(c->ks[t], kb) - kb, hi = SLM_MIN(c->ke[t], kb + FA_BK) - kb;
            if (hi <= lo) {
                t++;
                continue;
            }
            int u = t + 1;
            while (u < c->nq && SLM_MIN(c->ke[u], kb + FA_BK) - kb == hi && SLM_MAX(c->ks[u], kb) - kb < hi) u++;
            qk(hi, V + (size_t)kb * 2, vrow, hd, c->S + (size_t)t * nrep * FA_BK, FA_BK, (u - t) * nrep,
                 c->tmp + (size_t)t * nrep * hd, (size_t)hd);
            for (int j = t * nrep; j < u * nrep; j++) {
                float *pj = c->part + (size_t)j * pw;
                const float *tj = c->tmp + (size_t)j * hd, cj = c->corr[j];
                for (int i = 0; i < hd; i++) pj[i] = pj[i] * cj + tj[i];
            }
            t = u;
        }
    }
}

/* tot (a query's partial so far) takes in p (a later chunk's) */
static void fa_merge(float *tot, const float *p, int hd) {
    if (p[hd] == -INFINITY) return; /* the query saw no key of that chunk */
    const float mx = SLM_MAX(tot[hd], p[hd]), a = expf(tot[hd] - mx), b = expf(p[hd] - mx);
    for (int i = 0; i < hd; i++) tot[i] = tot[i] * a + p[i] * b;
    tot[hd + 1] = tot[hd + 1] * a + p[hd + 1] * b;
    tot[hd] = mx;
}

/* a query's output: its V sum over the sum of its probabilities */
static void fa_out(const slm_session *s, const float *tot, int t, int h, int hd) {
    float *o = s->att + (size_t)t * s->m->q_dim + (size_t)h * hd;
    const float inv = tot[hd + 1] > 0 ? 1.0f / tot[hd + 1] : 0.0f;
    for (int i = 0; i < hd; i++) o[i] = tot[i] * inv;
}

/* Defined in section 8: */
static int fa_chunks(int n_ctx);
static int fa_tile_tokens(const slm_model *m);

/* Attention of n tokens at positions pos0.. over an F16 cache, as one
   thread of the team: units are (tile of tokens, KV head); a single token
   whose keys span several chunks takes (KV head, chunk) units, then merges
   the chunks by KV head. */
static void attn_flash(slm_session *s, const layer *L, int il, int n, int pos0, team *tm, dot_rows_fn rows) {
    const slm_model *m = s->m;
    const int nw = m->n_head_kv, nrep = m->n_head / nw, hd = m->head_dim, pw = hd + 2;
    float *w = s->fa + (size_t)tm->ith * s->fa_stride;
    fa_ctx c;
    int u;
    if (n == 1) {
        int k0, nk;
        attn_span(s, L, pos0, &k0, &nk);
        const int cs = k0 / FA_CHUNK, nch = (k0 + nk - 1) / FA_CHUNK - cs + 1, ncm = fa_chunks(s->n_ctx);
        if (nch > 1) {
            while ((u = unit_next(tm, nw * nch)) >= 0) {
                const int g = u / nch, ci = u % nch;
                fa_setup(s, L, g, 0, 1, pos0, w, &c);
                fa_chunk(s, il, &c, (cs + ci) * FA_CHUNK, rows);
                for (int r = 0; r < nrep; r++)
                    memcpy(s->fa_part + ((size_t)(g * nrep + r) * ncm + ci) * pw, c.part + (size_t)r * pw,
                           (size_t)pw * sizeof(float));
            }
            op_end(tm, nw * nch);
            while ((u = unit_next(tm, m->n_head)) >= 0) {
                fa_clear(w, 1, hd);
                for (int ci = 0; ci < nch; ci++) fa_merge(w, s->fa_part + ((size_t)u * ncm + ci) * pw, hd);
                fa_out(s, w, 0, u, hd);
            }
            op_end(tm, m->n_head);
            return;
        }
    }
    const int bq = fa_tile_tokens(m), nt = (n + bq - 1) / bq;
    while ((u = unit_next(tm, nt * nw)) >= 0) {
        const int tile = nt - 1 - u / nw, g = u % nw, t0 = tile * bq, nq = SLM_MIN(bq, n - t0);
        fa_setup(s, L, g, t0, nq, pos0, w, &c);
        int cs = INT_MAX, ce = 0;
        for (int t = 0; t < nq; t++) cs = SLM_MIN(cs, c.ks[t] / FA_CHUNK), ce = SLM_MAX(ce, (c.ke[t] - 1) / FA_CHUNK);
        fa_clear(c.tot, c.na, hd);
        for (int ci = cs; ci <= ce; ci++) {
            fa_chunk(s, il, &c, ci * FA_CHUNK, rows);
            for (int j = 0; j < c.na; j++) fa_merge(c.tot + (size_t)j * pw, c.part + (size_t)j * pw, hd);
        }
        for (int j = 0; j < c.na; j++) fa_out(s, c.tot + (size_t)j * pw, t0 + j / nrep, g * nrep + j % nrep, hd);
    }
    op_end(tm, nt * nw);
}

static void store_kv(const slm_session *s, int il, int p, const float *k, const float *v) {
    const int kvd = s->m->kv_dim;
    uint8_t *K = kv_k(s, il) + (size_t)p * s->kv_row, *V = kv_v(s, il);
    const kernel_table *kt = &s->m->kern;
    kt->from_float[s->kv_type](k, K, kvd);
    if (s->kv_type == SLM_TYPE_Q8_0) {
        kt->from_float[s->kv_type](v, V + (size_t)p * s->kv_row, kvd);
    } else if (s->kv_type == SLM_TYPE_F32) {
        for (int i = 0; i < kvd; i++) st_f32(V + ((size_t)i * s->n_ctx + p) * 4, v[i]);
    } else {
        for (int i = 0; i < kvd; i++) st_u16(V + ((size_t)i * s->n_ctx + p) * 2, f32_to_fp16(v[i]));
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

/* --- Recurrent layers (issue 14): short conv, Gated DeltaNet, Mamba2 --------
   The projections of a chunk are batched mat-muls on the quantized path
   like attention's; the recurrences (causal conv, delta rule, selective
   scan) then run over the chunk's tokens in order in steps of work units
   (section 7): each step is split statically into rec_parts() parts of whole
   channels or heads, a part is a unit (so results do not depend on the
   thread count or on who took which part). State
   comes from s->rs_src and goes to s->rs_dst (section 8, decode). Plain C
   (the state-row loops vectorized through OpenMP's simd pragma): in a
   profile of Qwen3.5-0.8B's shape these ops take ~15% of prefill next to
   the mat-muls. */

/* The inner loops of the scans run along one state row: independent
   elements, vectorized where OpenMP's simd pragma is available (the build
   with -fopenmp; -O2 alone leaves them scalar). */
#if defined(_OPENMP)
#define SIMD_LOOP _Pragma("omp simd")
#define SIMD_SUM_Y _Pragma("omp simd reduction(+:y)")
#else
#define SIMD_LOOP
#define SIMD_SUM_Y
#endif

static inline float softplus_f(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
static inline float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Causal depthwise conv over a chunk for channels [c0, c1): in[t*ldi + c]
   for n tokens; the state [K-1][C] holds the K-1 previous inputs, oldest
   first (read from src, written to dst, which may be the same). out[t*ldo +
   c] = sum_j w[c*K + j] * in_{t-K+1+j} (+ b[c]); out may alias in: the
   window keeps the raw inputs. */
static void causal_conv(const float *in, int64_t ldi, float *out, int64_t ldo, int n, int C, int K, const float *w,
                        const float *b, const float *src, float *dst, int64_t c0, int64_t c1) {
    /* by blocks of up to 64 channels, token-major (the channel loop is
       contiguous); tokens in reverse so that out may alias in */
    float wt[64 * 64];       /* [K][64]: the block's taps */
    float keep[63 * 64];     /* [K-1][64]: the new state */
    float acc[64];           /* [64] */
    for (int64_t cb = c0; cb < c1; cb += 64) {
        const int nc = (int)SLM_MIN(64, c1 - cb);
        for (int j = 0; j < K; j++)
            for (int c = 0; c < nc; c++) wt[j * 64 + c] = w[(cb + c) * K + j];
        for (int j = 0; j < K - 1; j++) {
            const int64_t p = (int64_t)n - (K - 1) + j;
            const float *x = p >= 0 ? in + p * ldi + cb : src + (size_t)(j + n) * C + cb;
            for (int c = 0; c < nc; c++) keep[j * 64 + c] = x[c];
        }
        for (int t = n - 1; t >= 0; t--) {
            for (int c = 0; c < nc; c++) acc[c] = 0;
            for (int j = 0; j < K; j++) {
                const int64_t p = (int64_t)t - K + 1 + j;
                const float *x = p >= 0 ? in + p * ldi + cb : src + (size_t)(p + K - 1) * C + cb, *wj = wt + j * 64;
                SIMD_LOOP
                for (int c = 0; c < nc; c++) acc[c] += x[c] * wj[c];
            }
            float *o = out + t * ldo + cb;
            for (int c = 0; c < nc; c++) o[c] = b ? acc[c] + b[cb + c] : acc[c];
        }
        for (int j = 0; j < K - 1; j++)
            for (int c = 0; c < nc; c++) dst[(size_t)j * C + cb + c] = keep[j * 64 + c];
    }
}

/* y[t*ldy + r] = W x[t] for a matrix whose input rows may already be
   converted (*dt: the dot type in slot 0, -1 = none yet): a conversion step
   (if needed) and a product step; y is complete on return. */
static void rec_proj(slm_session *s, const weight *w, const float *x, int64_t ldx, int n, float *y, int64_t ldy,
                     int *dt, team *tm) {
    int u;
    if (act_type(w) != *dt) {
        while ((u = unit_next(tm, n)) >= 0) act_tok(s, w, x + (size_t)u * ldx, 0, u);
        op_end(tm, n);
        *dt = act_type(w);
    }
    mm_job j = job_of(s, w, 0, y, ldy);
    matmul_units(tm, &j, 1, n);
}

/* Parts of a step of the mixers: a few per thread, for balance. */
static inline int rec_parts(const team *tm) { return 4 * tm->nth; }

/* The parts of a step: thread-independent static shares of [0, np), taken
   from team tm. */
#define REC_STEP(p, tm, np) for (int p; (p = unit_next(tm, np)) >= 0;)

/* LFM2 gated short conv: in_proj -> B | C | X; y = C * conv(B * X); out_proj.
   hy per token: [0, E) B, then B*X; [E, 2E) C; [2E, 3E) X, then y. */
static void mix_shortconv(slm_session *s, const layer *L, const float *xb, int n, float *xo, team *tm) {
    const slm_model *m = s->m;
    const int E = m->n_embd, W = m->hy_width, K = m->sc_k;
    float *hy = s->hy;
    int dt = -1;
    const int np = rec_parts(tm);
    int64_t t0, t1, c0, c1;
    rec_proj(s, &L->r_in, xb, E, n, hy, W, &dt, tm);
    REC_STEP(p, tm, np) {
        split(n, p, np, &t0, &t1);
        for (int64_t t = t0; t < t1; t++)
            for (int i = 0; i < E; i++) hy[t * W + i] *= hy[t * W + 2 * E + i];
    }
    op_end(tm, np);
    REC_STEP(p, tm, np) {
        split(E, p, np, &c0, &c1);
        causal_conv(hy, W, hy + 2 * E, W, n, E, K, L->conv_w, NULL, s->rs_src + L->rs_conv, s->rs_dst + L->rs_conv, c0, c1);
        for (int t = 0; t < n; t++)
            for (int64_t c = c0; c < c1; c++) hy[t * W + 2 * E + c] *= hy[t * W + E + c];
    }
    op_end(tm, np);
    dt = -1;
    rec_proj(s, &L->r_out, hy + 2 * E, W, n, xo, E, &dt, tm);
}

/* One token of the gated delta rule for one v-head: S [dk][dv] (read from
   Sin, written to S, may be the same), S = e^g S; u = beta (v - S^T k);
   S += k u^T; o = S^T q * scale. o may alias v. */
#define DELTA_STEP_BODY \
    float kvm[1024], u[1024]; \
    for (int j = 0; j < dv; j++) kvm[j] = 0; \
    for (int i = 0; i < dk; i++) { \
        const float *si = Sin + (size_t)i * dv; \
        float *so = S + (size_t)i * dv; \
        const float ki = k[i]; \
        SIMD_LOOP \
        for (int j = 0; j < dv; j++) { \
            const float x = si[j] * eg; \
            so[j] = x; \
            kvm[j] += x * ki; \
        } \
    } \
    for (int j = 0; j < dv; j++) { \
        u[j] = beta * (v[j] - kvm[j]); \
        kvm[j] = 0; /* now the output */ \
    } \
    for (int i = 0; i < dk; i++) { \
        float *so = S + (size_t)i * dv; \
        const float ki = k[i], qi = q[i]; \
        SIMD_LOOP \
        for (int j = 0; j < dv; j++) { \
            const float x = so[j] + ki * u[j]; \
            so[j] = x; \
            kvm[j] += x * qi; \
        } \
    } \
    for (int j = 0; j < dv; j++) o[j] = kvm[j] * scale;

static void delta_step(const float *Sin, float *S, int dk, int dv, const float *q, const float *k, const float *v,
                       float eg, float beta, float scale, float *o) {
    DELTA_STEP_BODY
}

/* The same step compiled for AVX2 / AVX-512 (the decode path: a rank-1
   update and a mat-vec over the head's state). */
#ifdef SLM_AVX2
SLM_TARGET_AVX2
static void delta_step_avx2(const float *Sin, float *S, int dk, int dv, const float *q, const float *k, const float *v,
                       float eg, float beta, float scale, float *o) {
    DELTA_STEP_BODY
}
SLM_TARGET_END
#endif
#ifdef SLM_HAVE_AVX512_KERNELS
SLM_TARGET_AVX512
static void delta_step_avx512(const float *Sin, float *S, int dk, int dv, const float *q, const float *k, const float *v,
                       float eg, float beta, float scale, float *o) {
    DELTA_STEP_BODY
}
SLM_TARGET_END
#endif

/* Chunked gated delta rule for prefill (the WY/UT form of
   flash-linear-attention). Within a chunk of c tokens with cumulative log
   decays G_t (Gamma_t = e^G_t) and the state S0 [dk][dv] at its start:
     u_t = beta_t (v_t - Gamma_t S0^T k_t - sum_{s<t} e^{G_t-G_s} (k_t.k_s) u_s)
     o_t = scale (Gamma_t S0^T q_t + sum_{s<=t} e^{G_t-G_s} (q_t.k_s) u_s)
     S   = Gamma_c S0 + sum_s e^{G_c-G_s} k_s u_s^T
   which equals the token recurrence of delta_step up to float rounding; all
   but the triangular solve are small float mat-muls (rec_gemm). */

/* C[m*ldc + j] += sum_k A[m*ars + k*acs] B[k*ldb + j] for m < M, j < N;
   A is read element by element (broadcast), so any strides do. */
typedef void (*rec_gemm_fn)(int M, int N, int K, const float *A, int64_t ars, int64_t acs, const float *B,
                            int64_t ldb, float *C, int64_t ldc);

static void rec_gemm_ref(int M, int N, int K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb,
                         float *C, int64_t ldc) {
    for (int m = 0; m < M; m++) {
        float *cm = C + (size_t)m * ldc;
        for (int k = 0; k < K; k++) {
            const float a = A[m * ars + k * acs], *bk = B + (size_t)k * ldb;
            SIMD_LOOP
            for (int j = 0; j < N; j++) cm[j] += a * bk[j];
        }
    }
}

#ifdef SLM_AVX2 /* the blocked products below */
/* The tails of a blocked product: rows [m4, M) and, for rows < m4, columns
   [n4, N) by the reference. */
static void rec_gemm_tails(int M, int N, int K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb,
                           float *C, int64_t ldc, int m4, int n4) {
    if (n4 < N && m4 > 0) rec_gemm_ref(m4, N - n4, K, A, ars, acs, B + n4, ldb, C + n4, ldc);
    if (m4 < M) rec_gemm_ref(M - m4, N, K, A + m4 * ars, ars, acs, B, ldb, C + (size_t)m4 * ldc, ldc);
}

SLM_TARGET_AVX2
/* 4 rows x 16 columns in 8 accumulators */
static void rec_gemm_avx2(int M, int N, int K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb,
                          float *C, int64_t ldc) {
    const int m4 = M & ~3, n4 = N & ~15;
    for (int m = 0; m < m4; m += 4)
        for (int j = 0; j < n4; j += 16) {
            float *c0 = C + (size_t)m * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            __m256 c00 = _mm256_loadu_ps(c0), c01 = _mm256_loadu_ps(c0 + 8), c10 = _mm256_loadu_ps(c1), c11 = _mm256_loadu_ps(c1 + 8);
            __m256 c20 = _mm256_loadu_ps(c2), c21 = _mm256_loadu_ps(c2 + 8), c30 = _mm256_loadu_ps(c3), c31 = _mm256_loadu_ps(c3 + 8);
            const float *a0 = A + m * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
            for (int k = 0; k < K; k++) { /* (accumulators named: arrays of vectors stayed in memory) */
                const __m256 b0 = _mm256_loadu_ps(B + (size_t)k * ldb + j), b1 = _mm256_loadu_ps(B + (size_t)k * ldb + j + 8);
                __m256 a = _mm256_set1_ps(a0[k * acs]);
                c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
                a = _mm256_set1_ps(a1[k * acs]);
                c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
                a = _mm256_set1_ps(a2[k * acs]);
                c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
                a = _mm256_set1_ps(a3[k * acs]);
                c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
            }
            _mm256_storeu_ps(c0, c00), _mm256_storeu_ps(c0 + 8, c01), _mm256_storeu_ps(c1, c10), _mm256_storeu_ps(c1 + 8, c11);
            _mm256_storeu_ps(c2, c20), _mm256_storeu_ps(c2 + 8, c21), _mm256_storeu_ps(c3, c30), _mm256_storeu_ps(c3 + 8, c31);
        }
    rec_gemm_tails(M, N, K, A, ars, acs, B, ldb, C, ldc, m4, n4);
}
SLM_TARGET_END
#endif

#ifdef SLM_HAVE_AVX512_KERNELS
SLM_TARGET_AVX512
/* 4 rows x 32 columns in 8 accumulators */
static void rec_gemm_avx512(int M, int N, int K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t ldb,
                            float *C, int64_t ldc) {
    const int m4 = M & ~3, n4 = N & ~31;
    for (int m = 0; m < m4; m += 4)
        for (int j = 0; j < n4; j += 32) {
            float *c0 = C + (size_t)m * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            __m512 c00 = _mm512_loadu_ps(c0), c01 = _mm512_loadu_ps(c0 + 16), c10 = _mm512_loadu_ps(c1), c11 = _mm512_loadu_ps(c1 + 16);
            __m512 c20 = _mm512_loadu_ps(c2), c21 = _mm512_loadu_ps(c2 + 16), c30 = _mm512_loadu_ps(c3), c31 = _mm512_loadu_ps(c3 + 16);
            const float *a0 = A + m * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
            for (int k = 0; k < K; k++) { /* (accumulators named: arrays of vectors stayed in memory) */
                const __m512 b0 = _mm512_loadu_ps(B + (size_t)k * ldb + j), b1 = _mm512_loadu_ps(B + (size_t)k * ldb + j + 16);
                __m512 a = _mm512_set1_ps(a0[k * acs]);
                c00 = _mm512_fmadd_ps(a, b0, c00), c01 = _mm512_fmadd_ps(a, b1, c01);
                a = _mm512_set1_ps(a1[k * acs]);
                c10 = _mm512_fmadd_ps(a, b0, c10), c11 = _mm512_fmadd_ps(a, b1, c11);
                a = _mm512_set1_ps(a2[k * acs]);
                c20 = _mm512_fmadd_ps(a, b0, c20), c21 = _mm512_fmadd_ps(a, b1, c21);
                a = _mm512_set1_ps(a3[k * acs]);
                c30 = _mm512_fmadd_ps(a, b0, c30), c31 = _mm512_fmadd_ps(a, b1, c31);
            }
            _mm512_storeu_ps(c0, c00), _mm512_storeu_ps(c0 + 16, c01), _mm512_storeu_ps(c1, c10), _mm512_storeu_ps(c1 + 16, c11);
            _mm512_storeu_ps(c2, c20), _mm512_storeu_ps(c2 + 16, c21), _mm512_storeu_ps(c3, c30), _mm512_storeu_ps(c3 + 16, c31);
        }
    rec_gemm_tails(M, N, K, A, ars, acs, B, ldb, C, ldc, m4, n4);
}
SLM_TARGET_END
#endif

/* The product for a kernel set's ISA (the reference where none is built). */
static rec_gemm_fn rec_gemm_for(int isa) {
#ifdef SLM_HAVE_AVX512_KERNELS
    if (isa == SLM_ISA_AVX512) return rec_gemm_avx512;
#endif
#ifdef SLM_AVX2
    if (isa == SLM_ISA_AVX2 || isa == SLM_ISA_AVX512) return rec_gemm_avx2;
#endif
    (void)isa;
    return rec_gemm_ref;
}

/* Largest chunk: c <= 64 and c * max(dk, dv) <= DELTA_BUF. The chunk's
   buffers (~144 KB at dk = dv = 128) come from the session, a slot per
   thread: on the stack they overflowed a microcontroller's 32 KB and would a
   musl thread's 128 KB. */
#define DELTA_BUF 8192
static inline int delta_chunk_len(int dk, int dv) { return SLM_MAX(1, SLM_MIN(64, DELTA_BUF / SLM_MAX(dk, dv))); }

/* Floats of delta_scan's work buffer for a scan of n tokens (0 when it takes
   the token-by-token path): U0, U [c][dv], KT [dk][c], D, P, T [c][c], G, B [c]. */
static size_t delta_work_floats(int dk, int dv, int n) {
    if (n < 32) return 0;
    const size_t c = (size_t)SLM_MIN(delta_chunk_len(dk, dv), n);
    return c * (2 * (size_t)dv + (size_t)dk + 3 * c + 2);
}

/* One chunk (c <= delta_chunk_len) of the gated delta rule for one v-head:
   token t reads q[t*ld], k[t*ld], v[t*ld] (dk, dk, dv) and writes its output
   over v; G[t] the cumulative log decay from the chunk's start, beta[t].
   State from Sin, to S (may be the same). */
static void delta_chunk(rec_gemm_fn gm, const float *Sin, float *S, int dk, int dv, int c, const float *q,
                        const float *k, float *vo, int64_t ld, const float *G, const float *beta, float scale,
                        float *work) {
    float *U0 = work;                   /* [c][dv]: beta_t (v_t - Gamma_t S0^T k_t) */
    float *U = U0 + (size_t)c * dv;     /* [c][dv]: u_t */
    float *KT = U + (size_t)c * dv;     /* [dk][c]: k transposed */
    float *D = KT + (size_t)dk * c;     /* [c][c]: e^{G_t-G_s} for s <= t */
    float *P = D + (size_t)c * c;       /* [c][c]: beta_t e^{G_t-G_s} k_t.k_s, then the decayed q_t.k_s */
    float *T = P + (size_t)c * c;       /* [c][c]: (I + strictly lower P)^-1 */
    for (int t = 0; t < c; t++)
        for (int i = 0; i < dk; i++) KT[i * c + t] = k[t * ld + i];
    for (int t = 0; t < c; t++)
        for (int s = 0; s <= t; s++) D[t * c + s] = expf(G[t] - G[s]);
    memset(U0, 0, sizeof(float) * (size_t)c * dv);
    gm(c, dv, dk, k, ld, 1, Sin, dv, U0, dv);
    for (int t = 0; t < c; t++) {
        const float e = expf(G[t]), b = beta[t];
        const float *vt = vo + t * ld;
        float *ut = U0 + t * dv;
        SIMD_LOOP
        for (int j = 0; j < dv; j++) ut[j] = b * (vt[j] - e * ut[j]);
    }
    /* U = (I + A)^-1 U0 with A[t][s] = beta_t e^{G_t-G_s} k_t.k_s (s < t): the
       unit lower-triangular inverse by rows (c^3/6), then one product */
    memset(P, 0, sizeof(float) * (size_t)c * c);
    gm(c, c, dk, k, ld, 1, KT, c, P, c);
    for (int t = 0; t < c; t++) {
        float *Tt = T + t * c;
        for (int s = 0; s < c; s++) Tt[s] = s == t ? 1.0f : 0.0f;
        for (int r = 0; r < t; r++) {
            const float a = beta[t] * D[t * c + r] * P[t * c + r], *Tr = T + r * c;
            SIMD_LOOP /* (rows of T do not overlap) */
            for (int s = 0; s <= r; s++) Tt[s] -= a * Tr[s];
        }
    }
    memset(U, 0, sizeof(float) * (size_t)c * dv);
    gm(c, dv, c, T, c, 1, U0, dv, U, dv);
    /* o_t = scale (Gamma_t S0^T q_t + sum_{s<=t} e^{G_t-G_s} (q_t.k_s) u_s) */
    memset(P, 0, sizeof(float) * (size_t)c * c);
    gm(c, c, dk, q, ld, 1, KT, c, P, c);
    for (int t = 0; t < c; t++)
        for (int s = 0; s < c; s++) P[t * c + s] = s <= t ? P[t * c + s] * D[t * c + s] : 0.0f;
    for (int t = 0; t < c; t++) memset(vo + t * ld, 0, sizeof(float) * (size_t)dv);
    gm(c, dv, dk, q, ld, 1, Sin, dv, vo, ld);
    for (int t = 0; t < c; t++) {
        const float e = expf(G[t]);
        float *ot = vo + t * ld;
        SIMD_LOOP
        for (int j = 0; j < dv; j++) ot[j] *= e;
    }
    gm(c, dv, c, P, c, 1, U, dv, vo, ld);
    for (int t = 0; t < c; t++) {
        float *ot = vo + t * ld;
        SIMD_LOOP
        for (int j = 0; j < dv; j++) ot[j] *= scale;
    }
    /* S = Gamma_c S0 + sum_s e^{G_c-G_s} k_s u_s^T */
    for (int s = 0; s < c; s++) {
        const float e = expf(G[c - 1] - G[s]);
        float *us = U + s * dv;
        SIMD_LOOP
        for (int j = 0; j < dv; j++) us[j] *= e;
    }
    const float eL = expf(G[c - 1]);
    SIMD_LOOP
    for (int i = 0; i < dk * dv; i++) S[i] = Sin[i] * eL;
    gm(dk, dv, c, KT, c, 1, U, dv, S, dv);
}

/* The gated delta rule over n tokens for one v-head (layout as delta_chunk;
   g[t*gs] the log decay of token t, beta[t*bs]): up to 31 tokens by
   delta_step, more in chunks; work: delta_work_floats(dk, dv, n) floats. */
static void delta_scan(int isa, const float *Sin, float *S, int dk, int dv, int n, const float *q,
                       const float *k, float *vo, int64_t ld, const float *g, int64_t gs, const float *beta,
                       int64_t bs, float scale, float *work) {
    if (n < 32) { /* fewer tokens: the SIMD step is faster (bench/bench_scan.c) */
        for (int t = 0; t < n; t++, Sin = S) {
            const float *qt = q + t * ld, *kt = k + t * ld;
            float *vt = vo + t * ld;
            const float eg = expf(g[t * gs]), b = beta[t * bs];
#ifdef SLM_HAVE_AVX512_KERNELS
            if (isa == SLM_ISA_AVX512) {
                delta_step_avx512(Sin, S, dk, dv, qt, kt, vt, eg, b, scale, vt);
                continue;
            }
#endif
#ifdef SLM_AVX2
            if (isa == SLM_ISA_AVX2 || isa == SLM_ISA_AVX512) {
                delta_step_avx2(Sin, S, dk, dv, qt, kt, vt, eg, b, scale, vt);
                continue;
            }
#endif
            delta_step(Sin, S, dk, dv, qt, kt, vt, eg, b, scale, vt);
        }
        return;
    }
    const rec_gemm_fn gm = rec_gemm_for(isa);
    const int cc = SLM_MIN(delta_chunk_len(dk, dv), n);
    float *G = work, *B = work + cc; /* [cc] each: cumulative log decay, beta */
    for (int t0 = 0; t0 < n; t0 += cc, Sin = S) {
        const int c = SLM_MIN(cc, n - t0);
        float acc = 0;
        for (int t = 0; t < c; t++) {
            acc += g[(t0 + t) * gs];
            G[t] = acc;
            B[t] = beta[(t0 + t) * bs];
        }
        delta_chunk(gm, Sin, S, dk, dv, c, q + t0 * ld, k + t0 * ld, vo + t0 * ld, ld, G, B, scale, work + 2 * cc);
    }
}

/* Qwen3.5 Gated DeltaNet. hy per token: [0, CH) q | k | v (conv, SiLU; q, k
   L2-normalized; v replaced by the gated, normed output), [CH, CH+I) z,
   then NH beta and NH alpha. v-head h reads q/k head h % NG. */
static void mix_deltanet(slm_session *s, const layer *L, const float *xb, int n, float *xo, team *tm) {
    const slm_model *m = s->m;
    const int E = m->n_embd, W = m->hy_width, K = m->ssm_k, NG = m->ssm_ng, DK = m->ssm_state, NH = m->ssm_nh;
    const int I = m->ssm_inner, DV = I / NH, CH = 2 * NG * DK + I;
    float *hy = s->hy;
    int dt = -1;
    const int np = rec_parts(tm);
    int64_t c0, c1, u0, u1;
    rec_proj(s, &L->r_in, xb, E, n, hy, W, &dt, tm);
    rec_proj(s, &L->r_gate, xb, E, n, hy + CH, W, &dt, tm);
    rec_proj(s, &L->r_beta, xb, E, n, hy + CH + I, W, &dt, tm);
    rec_proj(s, &L->r_alpha, xb, E, n, hy + CH + I + NH, W, &dt, tm);
    REC_STEP(p, tm, np) {
        split(CH, p, np, &c0, &c1);
        causal_conv(hy, W, hy, W, n, CH, K, L->conv_w, NULL, s->rs_src + L->rs_conv, s->rs_dst + L->rs_conv, c0, c1);
        for (int t = 0; t < n; t++)
            for (int64_t c = c0; c < c1; c++) hy[t * W + c] = silu(hy[t * W + c]);
    }
    op_end(tm, np);
    REC_STEP(p, tm, np) {
        split((int64_t)n * 2 * NG, p, np, &u0, &u1); /* L2 norm of each q and k head */
        for (int64_t u = u0; u < u1; u++) {
            float *h = hy + (u / (2 * NG)) * W + (u % (2 * NG)) * DK;
            double ss = 0;
            for (int i = 0; i < DK; i++) ss += (double)h[i] * h[i];
            const float sc = 1.0f / SLM_MAX(sqrtf((float)ss), m->eps);
            for (int i = 0; i < DK; i++) h[i] *= sc;
        }
    }
    op_end(tm, np);
    REC_STEP(p, tm, np) { /* per (token, head): beta = sigmoid(b), g = softplus(alpha + dt_bias) a, in place */
        split((int64_t)n * NH, p, np, &u0, &u1);
        for (int64_t u = u0; u < u1; u++) {
            float *bt = hy + (u / NH) * W + CH + I + u % NH;
            const int h = (int)(u % NH);
            bt[0] = sigmoid_f(bt[0]);
            bt[NH] = softplus_f(bt[NH] + L->dt_bias[h]) * L->ssm_a[h];
        }
    }
    op_end(tm, np);
    REC_STEP(p, tm, np) {
        split(NH, p, np, &u0, &u1);
        const float scale = 1.0f / sqrtf((float)DK);
        float *dw = s->dw ? s->dw + (size_t)tm->ith * s->dw_stride : NULL; /* this thread's chunk buffers */
        for (int64_t h = u0; h < u1; h++) {
            const float *Sin = s->rs_src + L->rs_ssm + (size_t)h * DK * DV;
            float *S = s->rs_dst + L->rs_ssm + (size_t)h * DK * DV;
            delta_scan(m->kern.isa, Sin, S, DK, DV, n, hy + (h % NG) * DK, hy + NG * DK + (h % NG) * DK, hy + 2 * NG * DK + h * DV,
                       W, hy + CH + I + NH + h, W, hy + CH + I + h, W, scale, dw);
            for (int t = 0; t < n; t++) {
                float *o = hy + (size_t)t * W + 2 * NG * DK + h * DV;
                const float *z = hy + (size_t)t * W + CH + h * DV;
                rmsnorm(o, o, L->ssm_norm, DV, m->eps);
                for (int j = 0; j < DV; j++) o[j] *= silu(z[j]);
            }
        }
    }
    op_end(tm, np);
    dt = -1;
    rec_proj(s, &L->r_out, hy + 2 * NG * DK, W, n, xo, E, &dt, tm);
}

/* Granite 4.0-H Mamba2. hy per token: [0, I) z, then the gated output;
   [I, I+CH) x | B | C (conv + bias, SiLU); then NH dt. Head h uses group
   h / (NH/G); the output is RMS-normed per group of I/G values. */
static void mix_mamba2(slm_session *s, const layer *L, const float *xb, int n, float *xo, team *tm) {
    const slm_model *m = s->m;
    const int E = m->n_embd, W = m->hy_width, K = m->ssm_k, G = m->ssm_ng, N = m->ssm_state, NH = m->ssm_nh;
    const int I = m->ssm_inner, HD = I / NH, CH = I + 2 * G * N;
    float *hy = s->hy;
    int dt = -1;
    const int np = rec_parts(tm);
    int64_t c0, c1, u0, u1;
    rec_proj(s, &L->r_in, xb, E, n, hy, W, &dt, tm);
    REC_STEP(p, tm, np) {
        split(CH, p, np, &c0, &c1);
        causal_conv(hy + I, W, hy + I, W, n, CH, K, L->conv_w, L->conv_b, s->rs_src + L->rs_conv, s->rs_dst + L->rs_conv,
                    c0, c1);
        for (int t = 0; t < n; t++)
            for (int64_t c = c0; c < c1; c++) hy[t * W + I + c] = silu(hy[t * W + I + c]);
    }
    op_end(tm, np);
    REC_STEP(p, tm, np) {
        split(NH, p, np, &u0, &u1);
        for (int64_t h = u0; h < u1; h++) {
            const int g = (int)(h / (NH / G));
            const float *Sin = s->rs_src + L->rs_ssm + (size_t)h * HD * N;
            float *S = s->rs_dst + L->rs_ssm + (size_t)h * HD * N;
            for (int t = 0; t < n; t++, Sin = S) {
                float *ht = hy + (size_t)t * W;
                const float *x = ht + I + h * HD, *B = ht + 2 * I + g * N, *C = ht + 2 * I + G * N + g * N;
                const float d = softplus_f(ht[I + CH + h] + L->dt_bias[h]), dA = expf(d * L->ssm_a[h]);
                for (int i = 0; i < HD; i++) {
                    const float xdt = x[i] * d;
                    const float *si = Sin + (size_t)i * N;
                    float *so = S + (size_t)i * N, y = 0;
                    SIMD_SUM_Y /* (summed in another order when vectorized) */
                    for (int j = 0; j < N; j++) {
                        const float v = si[j] * dA + B[j] * xdt;
                        so[j] = v;
                        y += v * C[j];
                    }
                    y += x[i] * L->ssm_d[h];
                    ht[h * HD + i] = y * silu(ht[h * HD + i]);
                }
            }
        }
    }
    op_end(tm, np);
    REC_STEP(p, tm, np) {
        split((int64_t)n * G, p, np, &u0, &u1);
        for (int64_t u = u0; u < u1; u++) {
            const int g = (int)(u % G), gs = I / G;
            float *y = hy + (u / G) * W + g * gs;
            rmsnorm(y, y, L->ssm_norm + g * gs, gs, m->eps);
        }
    }
    op_end(tm, np);
    dt = -1;
    rec_proj(s, &L->r_out, hy, W, n, xo, E, &dt, tm);
}

/* The mixer of a recurrent layer: xb [n][E] in, xo [n][E] out. */
static void rec_mixer(slm_session *s, const layer *L, const float *xb, int n, float *xo, team *tm) {
    if (L->kind == LK_SHORTCONV) mix_shortconv(s, L, xb, n, xo, tm);
    else if (L->kind == LK_DELTANET) mix_deltanet(s, L, xb, n, xo, tm);
    else mix_mamba2(s, L, xb, n, xo, tm);
}

/* Run n tokens (n <= n_batch) at positions pos0.., as one thread of the team.
   out_first: first token whose logits are wanted (n = none); logits rows go
   to `logits`. Every step is an operator of work units (section 7): the
   element-wise steps by token, the products by chunks of rows, attention
   by (token, head group), the recurrent mixers by parts (recurrent layers). */
static void forward(slm_session *s, const int32_t *tok, int n, int pos0, int out_first, float *logits, team *tm) {
    const slm_model *m = s->m;
    const int E = m->n_embd, QD = m->q_dim, KVD = m->kv_dim, F = m->n_ff, HD = m->head_dim;
    const int QKV = QD + 2 * KVD, gq = m->arch->gated_q;
    float *x = s->x, *xb = s->xb, *xo = s->xo, *qkv = s->qkv, *att = s->att, *gu = s->gu;
    float *scores = s->scores + (size_t)tm->ith * s->att_stride * (size_t)(m->n_head / m->n_head_kv);
    int u;

    /* embeddings (act[1] row t: room for one embedding row) */
    while ((u = unit_next(tm, n)) >= 0) {
        weight_row(&m->tok_embd, tok[u], s->act[1] + (size_t)u * m->tok_embd.rb, x + (size_t)u * E);
        if (m->embd_mult != 1.0f)
            for (int i = 0; i < E; i++) x[(size_t)u * E + i] *= m->embd_mult;
        if (m->enc->post_ln) embd_encoder(m, x + (size_t)u * E, pos0 + u, xb + (size_t)u * E);
    }
    op_end(tm, n);

    for (int il = 0; il < m->n_layer; il++) {
        const layer *L = &m->layers[il];
        const int is_attn = L->kind == LK_ATTN;
        rope_params rp;
        rope_for_layer(s, L, &rp);
        /* k and v share q's converted rows when their dot type is the same;
           a third dot type is converted into slot 1 once k is done */
        const int fused = is_attn && L->wqkv.data != NULL;
        const int dq = is_attn ? act_type(fused ? &L->wqkv : &L->wq) : -1;
        const int dk = !is_attn || fused ? dq : act_type(&L->wk), dv = !is_attn || fused ? dq : act_type(&L->wv);
        const int v_late = dv != dq && dv != dk;

        /* attention block (or the layer's recurrent mixer); olmo2 has no
           input norms */
        while ((u = unit_next(tm, n)) >= 0) {
            float *xt = x + (size_t)u * E, *bt = xb + (size_t)u * E;
            if (L->attn_norm) rmsnorm(bt, xt, L->attn_norm, E, m->eps);
            else memcpy(bt, xt, (size_t)E * sizeof(float));
            if (is_attn) {
                act_tok(s, fused ? &L->wqkv : &L->wq, bt, 0, u);
                if (dk != dq) act_tok(s, &L->wk, bt, 1, u);
            }
        }
        op_end(tm, n);
        if (!is_attn) {
            rec_mixer(s, L, xb, n, xo, tm); /* recurrent layers */
            goto mixed;
        }
        {
            mm_job j[3];
            int nj = 0;
            if (fused) {
                j[nj++] = job_of(s, &L->wqkv, 0, qkv, QKV);
            } else {
                /* qwen35: [query | gate] per head into the scratch, split below */
                j[nj++] = job_of(s, &L->wq, 0, gq ? s->hy : qkv, gq ? 2 * QD : QKV);
                j[nj++] = job_of(s, &L->wk, dk == dq ? 0 : 1, qkv + QD, QKV);
                if (!v_late) j[nj++] = job_of(s, &L->wv, dv == dq ? 0 : 1, qkv + QD + KVD, QKV);
            }
            matmul_units(tm, j, nj, n);
            if (!fused && v_late) {
                while ((u = unit_next(tm, n)) >= 0) act_tok(s, &L->wv, xb + (size_t)u * E, 1, u);
                op_end(tm, n);
                j[0] = job_of(s, &L->wv, 1, qkv + QD + KVD, QKV);
                matmul_units(tm, j, 1, n);
            }
        }

        /* biases, q/k norms, rope, then into the cache */
        while ((u = unit_next(tm, n)) >= 0) {
            float *q = qkv + (size_t)u * QKV, *k = q + QD, *v = k + KVD;
            float cs[MAX_HEAD_DIM]; /* (n_rot,) cos, sin per rotated pair; n_rot <= head_dim (load_hparams) */
            if (gq)
                for (int h = 0; h < m->n_head; h++)
                    memcpy(q + h * HD, s->hy + (size_t)u * 2 * QD + h * 2 * HD, (size_t)HD * sizeof(float));
            if (L->bq) for (int i = 0; i < QD; i++) q[i] += L->bq[i];
            if (L->bk) for (int i = 0; i < KVD; i++) k[i] += L->bk[i];
            if (L->bv) for (int i = 0; i < KVD; i++) v[i] += L->bv[i];
            if (m->arch->qk_norm_full) { /* olmo2: over all heads together */
                if (L->q_norm) rmsnorm(q, q, L->q_norm, QD, m->eps);
                if (L->k_norm) rmsnorm(k, k, L->k_norm, KVD, m->eps);
            } else {
                if (L->q_norm) for (int h = 0; h < m->n_head; h++) rmsnorm(q + h * HD, q + h * HD, L->q_norm, HD, m->eps);
                if (L->k_norm) for (int h = 0; h < m->n_head_kv; h++) rmsnorm(k + h * HD, k + h * HD, L->k_norm, HD, m->eps);
            }
            if (m->n_rot > 0 && !L->nope) {
                rope_cache(&rp, pos0 + u, cs);
                rope_apply(q, m->n_head, HD, &rp, cs);
                rope_apply(k, m->n_head_kv, HD, &rp, cs);
            }
            store_kv(s, il, pos0 + u, k, v);
        }
        op_end(tm, n);

        /* attention, by (token, head), or by (token, KV head) where the heads
           of a KV head go together */
        if (s->fa && s->kv_type == SLM_TYPE_F16 && m->kern.dot_rows_f16) {
            attn_flash(s, L, il, n, pos0, tm, m->kern.dot_rows_f16);
        } else {
            dot_rows_fn rows = s->kv_type == SLM_TYPE_F16 ? m->kern.dot_rows_f16 : NULL;
            const int per = rows ? m->n_head / m->n_head_kv : 1, nw = m->n_head / per;
            while ((u = unit_next(tm, n * nw)) >= 0) {
                int t = u / nw, h = (u % nw) * per;
                const float *qh = qkv + (size_t)t * QKV + (size_t)h * HD;
                float *oh = att + (size_t)t * QD + (size_t)h * HD;
                if (rows) attend_group(s, L, il, qh, pos0 + t, h / per, scores, oh, rows);
                else attend(s, L, il, qh, pos0 + t, h, scores, oh);
            }
            op_end(tm, n * nw);
        }
        /* qwen35: the output times sigmoid(gate) */
        while ((u = unit_next(tm, n)) >= 0) {
            if (gq)
                for (int h = 0; h < m->n_head; h++) {
                    const float *gt = s->hy + (size_t)u * 2 * QD + h * 2 * HD + HD;
                    float *o = att + (size_t)u * QD + h * HD;
                    for (int i = 0; i < HD; i++) o[i] *= 1.0f / (1.0f + expf(-gt[i]));
                }
            act_tok(s, &L->wo, att + (size_t)u * QD, 0, u);
        }
        op_end(tm, n);
        {
            mm_job j = job_of(s, &L->wo, 0, xo, E);
            matmul_units(tm, &j, 1, n);
        }
    mixed:;
        /* residual, FFN norm; gate in gu[t][0, F), up in gu[t][F, 2F); a fused
           up matrix (phi3) writes both at once */
        const weight *wg = L->w_gate.data ? &L->w_gate : NULL;
        const int dg = act_type(wg ? wg : &L->w_up), du = act_type(&L->w_up);
        while ((u = unit_next(tm, n)) >= 0) {
            float *xt = x + (size_t)u * E, *bt = xb + (size_t)u * E, *ot = xo + (size_t)u * E;
            add_bias(ot, L->bo, E);
            if (L->post_attn_norm) rmsnorm(ot, ot, L->post_attn_norm, E, m->eps);
            for (int i = 0; i < E; i++) xt[i] += m->res_scale * ot[i];
            if (L->attn_out_norm) layernorm(xt, xt, L->attn_out_norm, L->attn_out_norm_b, E, m->eps);
            if (L->ffn_norm) rmsnorm(bt, xt, L->ffn_norm, E, m->eps);
            else memcpy(bt, xt, (size_t)E * sizeof(float));
            act_tok(s, wg ? wg : &L->w_up, bt, 0, u);
            if (wg && du != dg) act_tok(s, &L->w_up, bt, 1, u);
        }
        op_end(tm, n);
        {
            mm_job j[2];
            int nj = 0;
            if (!wg) {
                j[nj++] = job_of(s, &L->w_up, 0, gu, 2 * F);
            } else {
                j[nj++] = job_of(s, wg, 0, gu, 2 * F);
                j[nj++] = job_of(s, &L->w_up, du == dg ? 0 : 1, gu + F, 2 * F);
            }
            matmul_units(tm, j, nj, n);
        }
        while ((u = unit_next(tm, n)) >= 0) {
            float *g = gu + (size_t)u * 2 * F;
            if (m->enc->ffn_plain) ffn_act_plain(m, g, L->b_up, F);
            else ffn_act(m, g, g + F, F);
            act_tok(s, &L->w_down, g, 0, u);
        }
        op_end(tm, n);
        {
            mm_job j = job_of(s, &L->w_down, 0, xo, E);
            matmul_units(tm, &j, 1, n);
        }
        while ((u = unit_next(tm, n)) >= 0) {
            float *xt = x + (size_t)u * E, *ot = xo + (size_t)u * E;
            add_bias(ot, L->b_down, E);
            if (L->post_ffn_norm) rmsnorm(ot, ot, L->post_ffn_norm, E, m->eps);
            for (int i = 0; i < E; i++) xt[i] += m->res_scale * ot[i];
            if (L->out_norm) layernorm(xt, xt, L->out_norm, L->out_norm_b, E, m->eps);
        }
        op_end(tm, n);
    }

    /* embeddings: the final hidden rows (after the output norm, if any) in xb */
    if (s->embd_mode) {
        while ((u = unit_next(tm, n)) >= 0) {
            if (m->output_norm) rmsnorm(xb + (size_t)u * E, x + (size_t)u * E, m->output_norm, E, m->eps);
            else memcpy(xb + (size_t)u * E, x + (size_t)u * E, (size_t)E * sizeof(float));
        }
        op_end(tm, n);
        return;
    }

    /* output head for the tokens whose logits are wanted */
    const int no = n - out_first;
    if (no <= 0) return;
    while ((u = unit_next(tm, no)) >= 0) {
        float *bt = xb + (size_t)u * E;
        rmsnorm(bt, x + (size_t)(out_first + u) * E, m->output_norm, E, m->eps);
        act_tok(s, &m->output, bt, 0, u);
    }
    op_end(tm, no);
    {
        mm_job j = job_of(s, &m->output, 0, logits, m->n_vocab);
        matmul_units(tm, &j, 1, no);
    }
    if (m->final_softcap > 0 || m->logit_scale != 1.0f) {
        /* softcap (gemma2), then granite's logits / logit_scale */
        const float cap = m->final_softcap;
        while ((u = unit_next(tm, no)) >= 0) {
            float *lt = logits + (size_t)u * m->n_vocab;
            if (cap > 0)
                for (int i = 0; i < m->n_vocab; i++) lt[i] = cap * tanhf(lt[i] / cap);
            if (m->logit_scale != 1.0f)
                for (int i = 0; i < m->n_vocab; i++) lt[i] /= m->logit_scale;
        }
        op_end(tm, no);
    }
}

/* The team leaves together: each thread counts itself out and sleeps until
   the last one has (OpenMP's join at the end of the region would spin while
   a descheduled thread catches up). */
static void forward_team(slm_session *s, const int32_t *tok, int n, int pos0, int out_first, float *logits, team *tm) {
    forward(s, tok, n, pos0, out_first, logits, tm);
    if (tm->nth > 1) {
        tm->op = (int)s->n_ops - 1;
        tm->mine = 1;
        tm->local = 0;
        op_end(tm, tm->nth);
    }
}

#if SLM_OPENMP
/* Threads for a forward pass. A single-token pass (decode) runs at
   n_threads, and now and then (every 16th, or until both are measured) at
   1 thread; the faster of the two by a moving average goes on. Where other
   processes hold the cores (an edge board's services, a build), a thread
   of the team that has no core stalls the others at the end of each
   operator, and 2 threads can be slower than 1; this keeps decode at the
   better of the two. Results are the same at any width. */
static int forward_width(slm_session *s, int n, int *slot) {
    *slot = -1;
    if (n != 1 || s->n_threads <= 1) return s->n_threads;
    const double *w = s->width_ms;
    int best = w[0] <= 0 ? 0 : w[1] <= 0 ? 1 : w[1] <= w[0];
    if (++s->width_calls % 16 == 0) best = !best;
    *slot = best;
    return best ? s->n_threads : 1;
}
#endif

static void run_forward(slm_session *s, const int32_t *tok, int n, int pos0, int out_first, float *logits) {
    const int n_ops = s->m->n_layer * OPS_PER_LAYER + OPS_EXTRA;
    team tm;
    memset(&tm, 0, sizeof tm);
    tm.s = s;
    tm.ops = s->ops;
    tm.bar = &s->bar;
    tm.nth = 1;
#if SLM_OPENMP
    int slot;
    const int width = forward_width(s, n, &slot);
    const double t0 = slot >= 0 ? now_ms() : 0;
    if (width > 1) {
        memset(s->ops, 0, (size_t)n_ops * sizeof *s->ops);
#pragma omp parallel num_threads(width)
        {
            team t = tm;
            t.ith = omp_get_thread_num();
            t.nth = omp_get_num_threads();
            forward_team(s, tok, n, pos0, out_first, logits, &t);
        }
    } else {
        forward_team(s, tok, n, pos0, out_first, logits, &tm);
    }
    if (slot >= 0) {
        const double ms = now_ms() - t0;
        s->width_ms[slot] = s->width_ms[slot] > 0 ? 0.75 * s->width_ms[slot] + 0.25 * ms : SLM_MAX(ms, 1e-6);
    }
    return;
#endif
    (void)n_ops;
    forward_team(s, tok, n, pos0, out_first, logits, &tm);
}

/* ========================================================================== */
/* 8. Session: creation, threads, decode, rewind                              */
/* ========================================================================== */


void slm_session_params_init(slm_session_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->kv_type = SLM_TYPE_F16;
}

/* More threads than 4 per processor only adds barrier time: asking for a
   huge count gets this many. */
static int max_threads(void) {
#if SLM_OPENMP
    return SLM_MAX(1, SLM_MIN(256, 4 * omp_get_num_procs()));
#else
    return 1;
#endif
}

#if defined(__linux__) && !defined(SLM_NO_STDIO)
#define SLM_MAX_CPUS 1024
/* A CPU list as in sysfs ("0-3,8,10-11") into a bit set of n bits. */
static void cpu_list_parse(const char *p, uint8_t *set, int n) {
    while (*p) {
        if (*p < '0' || *p > '9') {
            p++;
            continue;
        }
        long a = 0, b;
        while (*p >= '0' && *p <= '9' && a < 1000000) a = a * 10 + (*p++ - '0');
        b = a;
        if (*p == '-') {
            p++;
            b = 0;
            while (*p >= '0' && *p <= '9' && b < 1000000) b = b * 10 + (*p++ - '0');
        }
        for (long i = a; i <= b && i < n; i++) set[i / 8] |= (uint8_t)(1u << (i % 8));
    }
}

static int sysfs_read(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n > 0;
}

/* Physical performance cores among the online CPUs: the CPUs of the
   highest cpu_capacity (big.LITTLE; all of them where the file is absent),
   hyper-thread siblings counted once. 0 if sysfs says nothing. */
static int perf_cores(void) {
    uint8_t online[SLM_MAX_CPUS / 8] = {0}, sib[SLM_MAX_CPUS / 8];
    char buf[4096], path[96];
    if (!sysfs_read("/sys/devices/system/cpu/online", buf, sizeof buf)) return 0;
    cpu_list_parse(buf, online, SLM_MAX_CPUS);
    long best = -1;
    int count = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < SLM_MAX_CPUS; c++) {
            if (!(online[c / 8] >> (c % 8) & 1)) continue;
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/cpu_capacity", c);
            long capa = sysfs_read(path, buf, sizeof buf) ? strtol(buf, NULL, 10) : 1024;
            if (pass == 0) {
                best = SLM_MAX(best, capa);
                continue;
            }
            if (capa != best) continue;
            /* a core is counted at its first online sibling */
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", c);
            int first = c;
            if (sysfs_read(path, buf, sizeof buf)) {
                memset(sib, 0, sizeof sib);
                cpu_list_parse(buf, sib, SLM_MAX_CPUS);
                for (int i = 0; i < c; i++)
                    if ((sib[i / 8] >> (i % 8) & 1) && (online[i / 8] >> (i % 8) & 1)) {
                        first = i;
                        break;
                    }
            }
            count += first == c;
        }
    }
    return count;
}
#else
static int perf_cores(void) { return 0; }
#endif

/* The default thread count (n_threads 0): OMP_NUM_THREADS when it is set
   (its first number); else one thread per physical performance core, at
   most 8 and at most the processors this process may run on. More threads
   than that share a core's execution units or wait on slow cores, and a
   decode is bound by memory bandwidth long before 8 cores. */
static int default_threads(void) {
#if SLM_OPENMP
    const char *env = getenv("OMP_NUM_THREADS");
    if (env) {
        while (*env == ' ') env++;
        long v = 0;
        const char *p = env;
        while (*p >= '0' && *p <= '9' && v < 100000) v = v * 10 + (*p++ - '0');
        if (p > env && v > 0) return (int)SLM_MIN(v, (long)max_threads());
    }
    const int procs = SLM_MAX(1, omp_get_num_procs());
    int n = perf_cores();
    if (n <= 0) n = procs;
    return SLM_MAX(1, SLM_MIN(SLM_MIN(n, procs), 8));
#else
    (void)perf_cores;
    return 1;
#endif
}


static int fa_tile_tokens(const slm_model *m) { return SLM_MAX(1, 24 / (m->n_head / m->n_head_kv)); }

/* chunks of keys in a context of n_ctx positions */
static int fa_chunks(int n_ctx) { return (n_ctx + FA_CHUNK - 1) / FA_CHUNK; }

/* one thread's scratch: per query vector (na of them) the query, a block's
   scores, the block's V sums, the chunk's and the total's accumulators and
   their maxima and sums; then room for one row of halves */
static size_t fa_scratch_floats(const slm_model *m) {
    const size_t na = (size_t)fa_tile_tokens(m) * (size_t)(m->n_head / m->n_head_kv), hd = (size_t)m->head_dim;
    return na * (4 * hd + FA_BK + 5) + SLM_MAX(hd, (size_t)FA_BK) + 16;
}

/* Resolved parameters and the size of every buffer a session allocates. */
typedef struct session_plan {
    int n_ctx, n_batch, n_threads, kv_type, logits_all;
    size_t kv_bytes, kv_row;
    size_t x, xb, xo, qkv, att, gu, scores, act, logits; /* element counts / bytes */
    size_t emb, emb_tok; /* embeddings: floats, token ids */
    size_t n_ops;                                         /* work-unit counters */
    size_t att_stride;
    size_t fa, fa_stride, fa_part; /* flash attention scratch (floats), 0 when it does not apply */
    size_t rs, toks, hy;  /* recurrent state (floats per copy), ids, scratch */
    size_t dw, dw_stride; /* delta-rule chunk buffers (floats): all threads, one thread */
    size_t total;
} session_plan;

/* Embeddings: an encoder sees a whole sequence in one forward chunk (its
   attention needs every key first), so its batch is the context; the
   pooled sum and the dense layers' rows, and the token ids of a text. */
static slm_status plan_embedding(const slm_model *m, session_plan *pl, slm_error *err) {
    if (m->pos_embd.data && pl->n_ctx > m->pos_embd.n_out)
        return seterr(err, SLM_ERR_INVALID_ARG, "n_ctx %d exceeds the model's %lld positions (position_embd)", pl->n_ctx,
                      (long long)m->pos_embd.n_out);
    if (!m->causal) pl->n_batch = pl->n_ctx;
    pl->emb = (size_t)SLM_MAX(m->n_embd, m->n_embd_out) + (m->dense2.data ? (size_t)m->dense2.n_out : 0);
    pl->emb_tok = (size_t)pl->n_ctx;
    return SLM_OK;
}

static slm_status plan_session(const slm_model *m, const slm_session_params *p, session_plan *pl, slm_error *err) {
    slm_session_params dp;
    if (!p) {
        slm_session_params_init(&dp);
        p = &dp;
    }
    memset(pl, 0, sizeof *pl);
    slm_status st;
    if (m->vocab_only || !m->layers) return seterr(err, SLM_ERR_INVALID_ARG, "the model was loaded vocab-only");
    if (p->n_ctx < 0) return seterr(err, SLM_ERR_INVALID_ARG, "n_ctx is negative (%d); 0 means the model's", (int)p->n_ctx);
    if (p->n_batch < 0) return seterr(err, SLM_ERR_INVALID_ARG, "n_batch is negative (%d); 0 means the default", (int)p->n_batch);
    if (p->n_threads < 0)
        return seterr(err, SLM_ERR_INVALID_ARG, "n_threads is negative (%d); 0 means the default", (int)p->n_threads);
    pl->n_ctx = p->n_ctx ? p->n_ctx : SLM_MIN(m->n_ctx_train, 4096);
    pl->n_batch = SLM_MIN(p->n_batch ? p->n_batch : 64, pl->n_ctx);
    pl->n_threads = p->n_threads ? SLM_MIN(p->n_threads, max_threads()) : default_threads();
    if (pl->n_threads < 1) pl->n_threads = 1;
    pl->kv_type = p->kv_type;
    if (pl->kv_type != SLM_TYPE_F32 && pl->kv_type != SLM_TYPE_F16 && pl->kv_type != SLM_TYPE_Q8_0)
        return seterr(err, SLM_ERR_UNSUPPORTED, "KV cache type %d: only F32, F16 and Q8_0 are supported", (int)p->kv_type);
    if (pl->kv_type == SLM_TYPE_Q8_0 && m->head_dim % 32 != 0)
        return seterr(err, SLM_ERR_UNSUPPORTED, "a Q8_0 KV cache needs a head size that is a multiple of 32 (it is %d)",
                      m->head_dim);
    pl->logits_all = p->logits_all != 0;
    if ((st = plan_embedding(m, pl, err)) != SLM_OK) return st;
    const size_t nb = (size_t)pl->n_batch, E = (size_t)m->n_embd, F = (size_t)m->n_ff;
    pl->kv_row = row_bytes(pl->kv_type, m->kv_dim);
    double kvd = 2.0 * m->n_kv_layer * (double)pl->n_ctx * (double)pl->kv_row; /* attention layers only */
    if (kvd > (double)SIZE_MAX / 2) return seterr(err, SLM_ERR_NOMEM, "KV cache for n_ctx %d is too large", pl->n_ctx);
    pl->kv_bytes = SLM_MAX((size_t)kvd, 16);
    pl->x = pl->xb = pl->xo = nb * E;
    pl->qkv = nb * (size_t)(m->q_dim + 2 * m->kv_dim);
    pl->att = nb * (size_t)m->q_dim;
    pl->gu = nb * 2 * F;
    /* per thread: scores, the query in the cache type, then the probabilities
       in the cache type (or, for Q8_0, one V row as floats) */
    pl->att_stride = (size_t)pl->n_ctx + (size_t)m->head_dim + (size_t)SLM_MAX(pl->n_ctx, m->head_dim) + 16;
    pl->scores = (size_t)pl->n_threads * pl->att_stride * (size_t)(m->n_head / m->n_head_kv); /* a slot per head of a group */
    if (pl->kv_type == SLM_TYPE_F16 && m->kern.dot_rows_f16 && m->n_kv_layer) { /* section 8, flash attention */
        pl->fa_stride = fa_scratch_floats(m);
        pl->fa = (size_t)pl->n_threads * pl->fa_stride;
        pl->fa_part = (size_t)m->n_head * (size_t)fa_chunks(pl->n_ctx) * (size_t)(m->head_dim + 2);
    }
    /* activation rows in the widest dot-partner format (f32 is the widest) */
    size_t max_in = (size_t)SLM_MAX(m->max_in, m->n_embd);
    pl->act = nb * row_bytes(SLM_TYPE_F32, (int64_t)max_in);
    pl->logits = (size_t)m->n_vocab * (pl->logits_all ? nb : 1);
    if (m->n_rec) {
        pl->rs = m->rs_floats;
        pl->toks = (size_t)pl->n_ctx;
    }
    if ((double)nb * m->hy_width > (double)SIZE_MAX / 8)
        return seterr(err, SLM_ERR_NOMEM, "scratch for a batch of %d tokens is too large", pl->n_batch);
    pl->hy = nb * (size_t)m->hy_width;
    for (int il = 0; il < m->n_layer; il++)
        if (m->layers[il].kind == LK_DELTANET) { /* one set of chunk buffers per thread (section 9b) */
            pl->dw_stride = delta_work_floats(m->ssm_state, m->ssm_inner / m->ssm_nh, pl->n_batch);
            pl->dw = (size_t)pl->n_threads * pl->dw_stride;
            break;
        }
    pl->n_ops = (size_t)m->n_layer * OPS_PER_LAYER + OPS_EXTRA;
    pl->total = pl->kv_bytes + sizeof(float) * (pl->x + pl->xb + pl->xo + pl->qkv + pl->att + pl->gu + pl->scores +
                                                pl->fa + pl->fa_part + pl->logits + 2 * pl->rs + pl->hy + pl->dw) +
                sizeof(int32_t) * pl->toks + N_ACT_SLOTS * pl->act + sizeof(slm_session) + sizeof(float) * pl->emb +
                sizeof(int32_t) * pl->emb_tok + pl->n_ops * sizeof(op_slot);
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
    if (s->bar_ok) barrier_destroy(&s->bar);
    size_t E = (size_t)s->m->n_embd, nb = (size_t)s->n_batch;
    xfree(&a, s->kv, s->kv_bytes);
    xfree(&a, s->x, nb * E * sizeof(float));
    xfree(&a, s->xb, nb * E * sizeof(float));
    xfree(&a, s->xo, nb * E * sizeof(float));
    xfree(&a, s->qkv, nb * (size_t)(s->m->q_dim + 2 * s->m->kv_dim) * sizeof(float));
    xfree(&a, s->att, nb * (size_t)s->m->q_dim * sizeof(float));
    xfree(&a, s->gu, nb * 2 * (size_t)s->m->n_ff * sizeof(float));
    xfree(&a, s->scores, (size_t)s->n_thr_alloc * s->att_stride * (size_t)(s->m->n_head / s->m->n_head_kv) * sizeof(float));
    if (s->fa) xfree(&a, s->fa, (size_t)s->n_thr_alloc * s->fa_stride * sizeof(float));
    if (s->fa_part) xfree(&a, s->fa_part, s->fa_part_n * sizeof(float));
    for (int i = 0; i < N_ACT_SLOTS; i++) xfree(&a, s->act[i], s->act_size);
    xfree(&a, s->logits, s->logits_cap * sizeof(float));
    xfree(&a, s->ops, s->n_ops * sizeof(op_slot));
    xfree(&a, s->emb, s->emb_len * sizeof(float));
    xfree(&a, s->emb_tok, (size_t)s->n_ctx * sizeof(int32_t));
    for (int i = 0; i < 2; i++)
        if (s->rs[i]) xfree(&a, s->rs[i], s->m->rs_floats * sizeof(float));
    if (s->toks) xfree(&a, s->toks, (size_t)s->n_ctx * sizeof(int32_t));
    if (s->hy) xfree(&a, s->hy, nb * (size_t)s->m->hy_width * sizeof(float));
    if (s->dw) xfree(&a, s->dw, (size_t)s->n_thr_alloc * s->dw_stride * sizeof(float));
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
    s->att_stride = pl.att_stride;
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
    s->emb_len = pl.emb;
    s->emb = (float *)xalloc(&s->a, pl.emb * sizeof(float));
    s->emb_tok = (int32_t *)xalloc(&s->a, pl.emb_tok * sizeof(int32_t));
    int ok = s->kv && s->x && s->xb && s->xo && s->qkv && s->att && s->gu && s->scores && s->logits && s->emb &&
             s->emb_tok;
    if (pl.rs) {
        for (int i = 0; i < 2; i++) ok = ok && (s->rs[i] = (float *)xalloc(&s->a, pl.rs * sizeof(float))) != NULL;
        ok = ok && (s->toks = (int32_t *)xalloc(&s->a, pl.toks * sizeof(int32_t))) != NULL;
    }
    if (pl.hy) ok = ok && (s->hy = (float *)xalloc(&s->a, pl.hy * sizeof(float))) != NULL;
    if (pl.dw) {
        s->dw_stride = pl.dw_stride;
        ok = ok && (s->dw = (float *)xalloc(&s->a, pl.dw * sizeof(float))) != NULL;
    }
    if (pl.fa) {
        s->fa_stride = pl.fa_stride;
        s->fa_part_n = pl.fa_part;
        ok = ok && (s->fa = (float *)xalloc(&s->a, pl.fa * sizeof(float))) != NULL;
        ok = ok && (s->fa_part = (float *)xalloc(&s->a, pl.fa_part * sizeof(float))) != NULL;
    }
    s->n_ops = pl.n_ops;
    s->ops = (op_slot *)xalloc(&s->a, pl.n_ops * sizeof(op_slot));
    ok = ok && s->ops;
    for (int i = 0; i < N_ACT_SLOTS; i++) ok = ok && s->act[i];
    if (!ok) {
        slm_session_free(s);
        return seterr(err, SLM_ERR_NOMEM, "out of memory for a session of %zu bytes (n_ctx %d)", pl.total, pl.n_ctx);
    }
    if (!(s->bar_ok = barrier_init(&s->bar))) {
        slm_session_free(s);
        return seterr(err, SLM_ERR_NOMEM, "cannot create the session's thread barrier");
    }
    memset(s->kv, 0, pl.kv_bytes);
    for (int i = 0; i < 2; i++)
        if (s->rs[i]) memset(s->rs[i], 0, pl.rs * sizeof(float));
    /* LongRoPE: the long factors once the context exceeds the original one
       (llama.cpp compares its context padded to 256) */
    if (m->rope_long) s->rope_factors = ((s->n_ctx + 255) / 256 * 256 > m->n_ctx_orig) ? m->rope_long : m->rope_short;
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

static slm_status rec_rewind(slm_session *s, int32_t pos);

slm_status slm_session_rewind(slm_session *s, int32_t pos) {
    if (!s || pos < 0 || pos > s->pos) return SLM_ERR_INVALID_ARG;
    if (s->m->n_rec) return rec_rewind(s, pos); /* recurrent layers */
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
    s->width_ms[0] = s->width_ms[1] = 0;
}

slm_status slm_decode(slm_session *s, const int32_t *tokens, int32_t n, slm_error *err) {
    clearerr_(err);
    if (!s) return seterr(err, SLM_ERR_INVALID_ARG, "session is NULL");
    if (n <= 0 || !tokens) return seterr(err, SLM_ERR_INVALID_ARG, "no tokens to decode");
    const slm_model *m = s->m;
    if (!m->causal)
        return seterr(err, SLM_ERR_UNSUPPORTED,
                      "%s is an encoder (an embedding model): it embeds (slm_embed, slm embed), it does not decode",
                      m->arch_name);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->n_vocab)
            return seterr(err, SLM_ERR_INVALID_ARG, "token #%d has id %d, outside the vocabulary [0, %d)", (int)i, (int)tokens[i],
                          m->n_vocab);
    if (n > s->n_ctx - s->pos)
        return seterr(err, SLM_ERR_CONTEXT_FULL, "context full: %d tokens at position %d exceed n_ctx %d", (int)n, (int)s->pos,
                      s->n_ctx);
    size_t need = (size_t)m->n_vocab * (s->logits_all ? (size_t)n : 1);
    if (need > s->logits_cap) {
        float *nl = (float *)xalloc(&s->a, need * sizeof(float));
        if (!nl) return seterr(err, SLM_ERR_NOMEM, "out of memory for the logits of %d tokens", (int)n);
        xfree(&s->a, s->logits, s->logits_cap * sizeof(float));
        s->logits = nl;
        s->logits_cap = need;
    }
    if (m->n_rec && s->toks + s->pos != tokens) memcpy(s->toks + s->pos, tokens, (size_t)n * sizeof(int32_t));
    for (int32_t c = 0; c < n; c += s->n_batch) {
        int nc = SLM_MIN(s->n_batch, n - c);
        int last = c + nc == n;
        int out_first = s->logits_all ? 0 : (last ? nc - 1 : nc);
        float *lg = s->logits + (s->logits_all ? (size_t)c * (size_t)m->n_vocab : 0);
        if (m->n_rec) { /* recurrent layers: the first chunk reads the current state */
            s->rs_dst = s->rs[s->rs_cur ^ 1];
            s->rs_src = c == 0 ? s->rs[s->rs_cur] : s->rs_dst;
        }
        run_forward(s, tokens + c, nc, s->pos + c, out_first, lg);
    }
    if (m->n_rec) { /* the state before this call stays as the checkpoint */
        s->rs_cur ^= 1;
        s->ckpt_pos = s->pos;
        s->ckpt_ok = 1;
    }
    s->pos += n;
    s->last_n = n;
    s->logits_rows = s->logits_all ? n : 1;
    return SLM_OK;
}

/* Rewind on a model with recurrent layers. A recurrent state
   cannot be cut back like a KV cache; the session keeps the state from
   before the last decode call (free: the call wrote the other copy) and
   the token ids. Rewinding to that position or to 0 is immediate; any
   other position restores the nearest earlier of those two states and
   decodes the kept ids up to `pos` again. */
static slm_status rec_rewind(slm_session *s, int32_t pos) {
    s->logits_rows = 0;
    s->last_n = 0;
    if (pos == s->pos) return SLM_OK;
    int32_t base = 0;
    if (s->ckpt_ok && s->ckpt_pos <= pos) {
        s->rs_cur ^= 1;
        base = s->ckpt_pos;
    } else {
        memset(s->rs[s->rs_cur], 0, s->m->rs_floats * sizeof(float));
    }
    s->ckpt_ok = 0;
    s->pos = base;
    if (pos == base) return SLM_OK;
    const int la = s->logits_all;
    s->logits_all = 0; /* only the state is wanted */
    slm_status st = slm_decode(s, s->toks + base, pos - base, NULL);
    s->logits_all = la;
    s->logits_rows = 0;
    s->last_n = 0;
    return st;
}

/* ========================================================================== */
/* 8b. Session state: save and restore                                        */
/* ========================================================================== */
/*
 * A session's state (what its KV cache holds, its position, the last
 * position's logits, and optionally the caller's token ids) as a byte
 * string, so a long system prompt is processed once and a kiosk that
 * restarts goes on where it was. Little-endian throughout:
 *
 *   header   u32 magic "SLMS", u32 version (1), u64 model hash,
 *            u32 n_layer, u32 kv_dim, u32 n_vocab, u32 kv_type, u32 pos,
 *            u32 n_sections
 *   sections u32 tag, u32 flags (bit 0: required: a reader that does not
 *            know the tag must refuse the state), u64 size, the payload,
 *            zero-padded to 8 bytes
 *   trailer  u64 checksum of every byte before it
 *
 * Sections of version 1 (each at most once):
 *   TOKS  u32 n, n x i32: the token ids the caller says the state holds
 *   KVAT  (required) the attention KV cache, positions [0, pos): per layer
 *         K as pos rows of kv_row bytes, then V (F32/F16: kv_dim rows of pos
 *         values; Q8_0: pos rows like K), independent of the session's n_ctx
 *   LOGT  n_vocab f32: the logits of the last position
 *   RECS  (required when the model has recurrent layers; issue 14) u32
 *         n floats, n f32: the conv and SSM state at pos (the layout of
 *         the recurrent layers), then pos x i32: the ids decoded so far (rewind
 *         replays them)
 * Layers with other state (recurrent layers) add their own required
 * section; a file without it is then refused by the new reader, and an
 * old reader refuses the new section. KVAT holds the attention layers only.
 *
 * The model hash covers the architecture name, the hyperparameters and the
 * bytes of the GGUF header, metadata and tensor directory (the tensor data
 * is not read: a repack at load changes it). Loading checks everything
 * before it changes the session: a failed load leaves it as it was.
 */

#define STATE_MAGIC 0x534d4c53u /* "SLMS" */
#define STATE_VERSION 1
#define STATE_HEADER 40
#define STATE_REQUIRED 1u
#define STATE_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define TAG_TOKS STATE_TAG('T', 'O', 'K', 'S')
#define TAG_KVAT STATE_TAG('K', 'V', 'A', 'T')
#define TAG_LOGT STATE_TAG('L', 'O', 'G', 'T')
#define TAG_RECS STATE_TAG('R', 'E', 'C', 'S')

/* A fast 64-bit hash, 8 bytes a step (checksum and model identity). */
static uint64_t state_hash(uint64_t h, const uint8_t *p, size_t n) {
    for (; n >= 8; p += 8, n -= 8) {
        h = (h ^ ld_u64(p)) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    for (; n > 0; p++, n--) {
        h = (h ^ *p) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

static uint64_t model_identity(const slm_model *m) {
    uint8_t hp[40];
    uint64_t h = state_hash(0x736c6d2d73746174ull, (const uint8_t *)m->arch_name, strlen(m->arch_name));
    const int v[10] = {m->n_vocab, m->n_ctx_train, m->n_embd, m->n_layer, m->n_head,
                       m->n_head_kv, m->n_ff, m->head_dim, m->n_rot, m->kv_dim};
    for (int i = 0; i < 10; i++) st_u32(hp + 4 * i, (uint32_t)v[i]);
    h = state_hash(h, hp, sizeof hp);
    if (m->bytes && m->g.data_off <= m->size) h = state_hash(h, m->bytes, (size_t)m->g.data_off);
    return h;
}

/* Bytes of one V block of the KV cache for `pos` positions. */
static size_t state_kv_bytes(const slm_session *s, int32_t pos) {
    return (size_t)s->m->n_kv_layer * 2 * (size_t)pos * s->kv_row; /* attention layers */
}

/* Bytes of the RECS section: the recurrent state and the ids. */
static size_t state_rec_bytes(const slm_session *s, int32_t pos) {
    return 4 + 4 * s->m->rs_floats + 4 * (size_t)pos;
}

static size_t state_pad8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t slm_session_state_size(const slm_session *s, int32_t n_tokens) {
    if (!s || n_tokens < 0) return 0;
    size_t n = STATE_HEADER + 16 + state_pad8(state_kv_bytes(s, s->pos)) + 8;
    if (n_tokens > 0) n += 16 + state_pad8(4 + 4 * (size_t)n_tokens);
    if (s->logits_rows > 0) n += 16 + state_pad8(4 * (size_t)s->m->n_vocab);
    if (s->m->n_rec) n += 16 + state_pad8(state_rec_bytes(s, s->pos));
    return n;
}

typedef struct state_out {
    uint8_t *p;
    size_t n;
} state_out;

static void so_put(state_out *o, const void *p, size_t n) {
    memcpy(o->p + o->n, p, n);
    o->n += n;
}

static void so_u32(state_out *o, uint32_t v) {
    st_u32(o->p + o->n, v);
    o->n += 4;
}

static void so_section(state_out *o, uint32_t tag, uint32_t flags, size_t size) {
    so_u32(o, tag);
    so_u32(o, flags);
    so_u32(o, (uint32_t)size);
    so_u32(o, (uint32_t)((uint64_t)size >> 32));
}

static void so_pad(state_out *o) {
    while (o->n % 8) o->p[o->n++] = 0;
}

slm_status slm_session_state_save(const slm_session *s, const int32_t *tokens, int32_t n_tokens, void *buf,
                                  size_t cap, size_t *written, slm_error *err) {
    clearerr_(err);
    if (written) *written = 0;
    if (!s || n_tokens < 0 || (n_tokens > 0 && !tokens))
        return seterr(err, SLM_ERR_INVALID_ARG, "state save: no session, or tokens NULL with n_tokens %d", (int)n_tokens);
    if (n_tokens > s->n_ctx)
        return seterr(err, SLM_ERR_INVALID_ARG, "state save: %d token ids, more than the context (%d)", (int)n_tokens, s->n_ctx);
    const size_t need = slm_session_state_size(s, n_tokens);
    if (written) *written = need;
    if (!buf || cap < need)
        return seterr(err, SLM_ERR_BUFFER, "state save: the buffer holds %zu bytes, the state needs %zu", cap, need);
    const slm_model *m = s->m;
    const int32_t pos = s->pos;
    state_out o = {(uint8_t *)buf, 0};
    so_u32(&o, STATE_MAGIC);
    so_u32(&o, STATE_VERSION);
    const uint64_t id = model_identity(m);
    so_u32(&o, (uint32_t)id);
    so_u32(&o, (uint32_t)(id >> 32));
    so_u32(&o, (uint32_t)m->n_layer);
    so_u32(&o, (uint32_t)m->kv_dim);
    so_u32(&o, (uint32_t)m->n_vocab);
    so_u32(&o, (uint32_t)s->kv_type);
    so_u32(&o, (uint32_t)pos);
    so_u32(&o, 1u + (n_tokens > 0) + (s->logits_rows > 0) + (m->n_rec > 0));
    if (n_tokens > 0) {
        so_section(&o, TAG_TOKS, 0, 4 + 4 * (size_t)n_tokens);
        so_u32(&o, (uint32_t)n_tokens);
        for (int32_t i = 0; i < n_tokens; i++) so_u32(&o, (uint32_t)tokens[i]);
        so_pad(&o);
    }
    /* KV: K rows are by position; V (F32/F16) is transposed with a stride
       of n_ctx, saved as kv_dim rows of pos values */
    so_section(&o, TAG_KVAT, STATE_REQUIRED, state_kv_bytes(s, pos));
    const size_t es = s->kv_type == SLM_TYPE_F32 ? 4 : 2;
    for (int il = 0; il < m->n_layer; il++) {
        if (m->layers[il].kind != LK_ATTN) continue;
        so_put(&o, kv_k(s, il), (size_t)pos * s->kv_row);
        if (s->kv_type == SLM_TYPE_Q8_0) {
            so_put(&o, kv_v(s, il), (size_t)pos * s->kv_row);
        } else {
            for (int d = 0; d < m->kv_dim; d++) so_put(&o, kv_v(s, il) + (size_t)d * (size_t)s->n_ctx * es, (size_t)pos * es);
        }
    }
    so_pad(&o);
    if (s->logits_rows > 0) {
        const float *lg = s->logits + (size_t)(s->logits_rows - 1) * (size_t)m->n_vocab; /* the last position */
        so_section(&o, TAG_LOGT, 0, 4 * (size_t)m->n_vocab);
        for (int i = 0; i < m->n_vocab; i++) st_f32(o.p + o.n + 4 * (size_t)i, lg[i]);
        o.n += 4 * (size_t)m->n_vocab;
        so_pad(&o);
    }
    if (m->n_rec) {
        const float *rs = s->rs[s->rs_cur];
        so_section(&o, TAG_RECS, STATE_REQUIRED, state_rec_bytes(s, pos));
        so_u32(&o, (uint32_t)m->rs_floats);
        for (size_t i = 0; i < m->rs_floats; i++, o.n += 4) st_f32(o.p + o.n, rs[i]);
        for (int32_t i = 0; i < pos; i++) so_u32(&o, (uint32_t)s->toks[i]);
        so_pad(&o);
    }
    const uint64_t sum = state_hash(0, o.p, o.n);
    so_u32(&o, (uint32_t)sum);
    so_u32(&o, (uint32_t)(sum >> 32));
    if (written) *written = o.n;
    return SLM_OK;
}

static const char *kv_type_name(int t) { return slm_type_name(t) ? slm_type_name(t) : "?"; }

slm_status slm_session_state_load(slm_session *s, const void *buf, size_t size, int32_t *tokens, int32_t cap_tokens,
                                  int32_t *n_tokens, slm_error *err) {
    clearerr_(err);
    if (n_tokens) *n_tokens = 0;
    if (!s || (!buf && size)) return seterr(err, SLM_ERR_INVALID_ARG, "state load: no session or no data");
    const slm_model *m = s->m;
    const uint8_t *p = (const uint8_t *)buf;
    if (size < STATE_HEADER + 8 || ld_u32(p) != STATE_MAGIC)
        return seterr(err, SLM_ERR_FORMAT, "not an slm session state (%zu bytes, no \"SLMS\" header)", size);
    if (ld_u32(p + 4) != STATE_VERSION)
        return seterr(err, SLM_ERR_UNSUPPORTED, "session state version %u: this slm reads version %d",
                      (unsigned)ld_u32(p + 4), STATE_VERSION);
    if (size % 8 || state_hash(0, p, size - 8) != ld_u64(p + size - 8))
        return seterr(err, SLM_ERR_FORMAT, "the session state is corrupt (checksum mismatch over %zu bytes)", size);
    if (ld_u64(p + 8) != model_identity(m))
        return seterr(err, SLM_ERR_INVALID_ARG, "the session state was saved with another model (model hash differs)");
    const uint32_t nl = ld_u32(p + 16), kvd = ld_u32(p + 20), nv = ld_u32(p + 24), kt = ld_u32(p + 28);
    const uint32_t pos = ld_u32(p + 32), nsec = ld_u32(p + 36);
    if (nl != (uint32_t)m->n_layer || kvd != (uint32_t)m->kv_dim || nv != (uint32_t)m->n_vocab)
        return seterr(err, SLM_ERR_INVALID_ARG,
                      "the session state is for %u layers, KV width %u, %u tokens; the model has %d, %d, %d", (unsigned)nl,
                      (unsigned)kvd, (unsigned)nv, m->n_layer, m->kv_dim, m->n_vocab);
    if (kt != (uint32_t)s->kv_type)
        return seterr(err, SLM_ERR_INVALID_ARG, "the session state has a %s KV cache, this session %s (kv_type)",
                      kv_type_name((int)kt), kv_type_name(s->kv_type));
    if (pos > (uint32_t)s->n_ctx)
        return seterr(err, SLM_ERR_CONTEXT_FULL, "the session state holds %u positions, the session's context is %d",
                      (unsigned)pos, s->n_ctx);
    /* the sections: bounds first, then the known ones */
    const uint8_t *toks = NULL, *kv = NULL, *lg = NULL, *rec = NULL;
    uint32_t ntok = 0;
    size_t off = STATE_HEADER;
    const size_t end = size - 8;
    for (uint32_t i = 0; i < nsec; i++) {
        if (end - off < 16) return seterr(err, SLM_ERR_FORMAT, "session state: section %u runs past the end", (unsigned)i);
        const uint32_t tag = ld_u32(p + off), flags = ld_u32(p + off + 4);
        const uint64_t sz = ld_u64(p + off + 8);
        off += 16;
        if (sz > end - off || state_pad8((size_t)sz) > end - off)
            return seterr(err, SLM_ERR_FORMAT, "session state: section %u (%llu bytes) runs past the end", (unsigned)i,
                          (unsigned long long)sz);
        const uint8_t *d = p + off;
        char t4[5] = {(char)(tag & 0x7f), (char)(tag >> 8 & 0x7f), (char)(tag >> 16 & 0x7f), (char)(tag >> 24 & 0x7f), 0};
        for (int k = 0; k < 4; k++)
            if (t4[k] < 32) t4[k] = '?';
        if ((tag == TAG_TOKS && toks) || (tag == TAG_KVAT && kv) || (tag == TAG_LOGT && lg) || (tag == TAG_RECS && rec))
            return seterr(err, SLM_ERR_FORMAT, "session state: section %s twice", t4);
        if (tag == TAG_TOKS) {
            if (sz < 4 || (sz - 4) / 4 < ld_u32(d) || sz != 4 + 4 * (uint64_t)ld_u32(d))
                return seterr(err, SLM_ERR_FORMAT, "session state: bad token section");
            toks = d + 4;
            ntok = ld_u32(d);
        } else if (tag == TAG_KVAT) {
            if (sz != state_kv_bytes(s, (int32_t)pos))
                return seterr(err, SLM_ERR_FORMAT, "session state: KV cache of %llu bytes, %zu expected",
                              (unsigned long long)sz, state_kv_bytes(s, (int32_t)pos));
            kv = d;
        } else if (tag == TAG_LOGT) {
            if (sz != 4 * (uint64_t)nv) return seterr(err, SLM_ERR_FORMAT, "session state: bad logits section");
            lg = d;
        } else if (tag == TAG_RECS && m->n_rec) {
            if (sz != state_rec_bytes(s, (int32_t)pos) || ld_u32(d) != (uint32_t)m->rs_floats)
                return seterr(err, SLM_ERR_FORMAT, "session state: recurrent state of %llu bytes, %zu expected",
                              (unsigned long long)sz, state_rec_bytes(s, (int32_t)pos));
            rec = d + 4;
        } else if (flags & STATE_REQUIRED) {
            return seterr(err, SLM_ERR_UNSUPPORTED,
                          "session state: section '%s' is required and unknown to this slm (saved by a newer one?)", t4);
        }
        off += state_pad8((size_t)sz);
    }
    if (off != end) return seterr(err, SLM_ERR_FORMAT, "session state: %zu bytes after the last section", end - off);
    if (!kv) return seterr(err, SLM_ERR_FORMAT, "session state: no KV cache section");
    if (m->n_rec && !rec) return seterr(err, SLM_ERR_FORMAT, "session state: no recurrent state section (RECS)");
    for (uint32_t i = 0; rec && i < pos; i++) {
        const int32_t id = (int32_t)ld_u32(rec + 4 * (m->rs_floats + (size_t)i));
        if (id < 0 || id >= m->n_vocab) return seterr(err, SLM_ERR_FORMAT, "session state: id %u of RECS is not in the vocabulary", (unsigned)i);
    }
    for (uint32_t i = 0; i < ntok; i++)
        if ((int32_t)ld_u32(toks + 4 * (size_t)i) < 0 || (int32_t)ld_u32(toks + 4 * (size_t)i) >= m->n_vocab)
            return seterr(err, SLM_ERR_FORMAT, "session state: token %u is not in the vocabulary", (unsigned)i);
    if (n_tokens) *n_tokens = (int32_t)ntok;
    if (ntok > 0 && tokens && cap_tokens < (int32_t)ntok)
        return seterr(err, SLM_ERR_BUFFER, "session state: %u token ids, room for %d", (unsigned)ntok, (int)cap_tokens);
    /* valid: now the session changes */
    const size_t es = s->kv_type == SLM_TYPE_F32 ? 4 : 2;
    for (int il = 0; il < m->n_layer; il++) {
        if (m->layers[il].kind != LK_ATTN) continue;
        memcpy(kv_k(s, il), kv, (size_t)pos * s->kv_row);
        kv += (size_t)pos * s->kv_row;
        if (s->kv_type == SLM_TYPE_Q8_0) {
            memcpy(kv_v(s, il), kv, (size_t)pos * s->kv_row);
            kv += (size_t)pos * s->kv_row;
        } else {
            for (int d = 0; d < m->kv_dim; d++, kv += (size_t)pos * es)
                memcpy(kv_v(s, il) + (size_t)d * (size_t)s->n_ctx * es, kv, (size_t)pos * es);
        }
    }
    s->pos = (int32_t)pos;
    if (rec) { /* the state becomes the current copy; no checkpoint */
        float *rs = s->rs[s->rs_cur];
        for (size_t i = 0; i < m->rs_floats; i++) rs[i] = ld_f32(rec + 4 * i);
        for (uint32_t i = 0; i < pos; i++) s->toks[i] = (int32_t)ld_u32(rec + 4 * (m->rs_floats + (size_t)i));
        s->ckpt_ok = 0;
    }
    if (lg && pos > 0) {
        for (uint32_t i = 0; i < nv; i++) s->logits[i] = ld_f32(lg + 4 * (size_t)i);
        s->last_n = 1;
        s->logits_rows = 1;
    } else {
        s->last_n = 0;
        s->logits_rows = 0;
    }
    for (uint32_t i = 0; tokens && i < ntok; i++) tokens[i] = (int32_t)ld_u32(toks + 4 * (size_t)i);
    return SLM_OK;
}

/* Defined in appendix B: */
#if !defined(SLM_NO_STDIO)
static slm_status of_open(ofile *o, const allocator *a, const char *path, const char *avoid, slm_error *err);
#endif
#if !defined(SLM_NO_STDIO)
static slm_status of_write(ofile *o, const void *p, size_t n);
#endif
#if !defined(SLM_NO_STDIO)
static slm_status of_commit(ofile *o);
#endif

#if !defined(SLM_NO_STDIO)
slm_status slm_session_state_save_file(const slm_session *s, const char *path, const int32_t *tokens,
                                       int32_t n_tokens, slm_error *err) {
    clearerr_(err);
    if (!s || !path) return seterr(err, SLM_ERR_INVALID_ARG, "state save: no session or no path");
    const size_t n = slm_session_state_size(s, n_tokens);
    allocator a = s->a;
    uint8_t *buf = (uint8_t *)xalloc(&a, n); /* [n] the whole state, then one write */
    if (!buf) return seterr(err, SLM_ERR_NOMEM, "out of memory for a session state of %zu bytes", n);
    size_t w = 0;
    slm_status st = slm_session_state_save(s, tokens, n_tokens, buf, n, &w, err);
    ofile o;
    if (st == SLM_OK && (st = of_open(&o, &a, path, NULL, err)) == SLM_OK) {
        of_write(&o, buf, w);
        st = of_commit(&o);
    }
    xfree(&a, buf, n);
    return st;
}

slm_status slm_session_state_load_file(slm_session *s, const char *path, int32_t *tokens, int32_t cap_tokens,
                                       int32_t *n_tokens, slm_error *err) {
    clearerr_(err);
    if (n_tokens) *n_tokens = 0;
    if (!s || !path) return seterr(err, SLM_ERR_INVALID_ARG, "state load: no session or no path");
    int oom;
    allocator a = s->a;
    FILE *f = file_open(&a, path, "rb", &oom);
    if (!f) return seterr(err, oom ? SLM_ERR_NOMEM : SLM_ERR_IO, "cannot open '%s': %s", path, os_reason(errno));
    long long sz = file_size(f);
    /* bounded: a state holds at most the session's KV cache, tokens and logits */
    const size_t most = slm_session_state_size(s, s->n_ctx) + state_kv_bytes(s, s->n_ctx) + 4096;
    if (sz < 0 || (unsigned long long)sz > most) {
        fclose(f);
        return seterr(err, SLM_ERR_FORMAT, "'%s' (%lld bytes) is not a session state for this session", path, sz);
    }
    uint8_t *buf = (uint8_t *)xalloc(&a, sz ? (size_t)sz : 1); /* [sz] the file */
    if (!buf) {
        fclose(f);
        return seterr(err, SLM_ERR_NOMEM, "out of memory reading '%s' (%lld bytes)", path, sz);
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    slm_status st;
    if (got != (size_t)sz) st = seterr(err, SLM_ERR_IO, "short read on '%s'", path);
    else st = slm_session_state_load(s, buf, (size_t)sz, tokens, cap_tokens, n_tokens, err);
    if (st != SLM_OK && err && st != SLM_ERR_BUFFER) {
        char msg[sizeof err->message];
        memcpy(msg, err->message, sizeof msg);
        seterr(err, st, "%s: %s", path, msg);
    }
    xfree(&a, buf, sz ? (size_t)sz : 1);
    return st;
}
#else
slm_status slm_session_state_save_file(const slm_session *s, const char *path, const int32_t *tokens,
                                       int32_t n_tokens, slm_error *err) {
    (void)s, (void)tokens, (void)n_tokens;
    return seterr(err, SLM_ERR_UNSUPPORTED, "cannot write '%s': built with SLM_NO_STDIO", path ? path : "");
}

slm_status slm_session_state_load_file(slm_session *s, const char *path, int32_t *tokens, int32_t cap_tokens,
                                       int32_t *n_tokens, slm_error *err) {
    (void)s, (void)tokens, (void)cap_tokens, (void)n_tokens;
    return seterr(err, SLM_ERR_UNSUPPORTED, "cannot read '%s': built with SLM_NO_STDIO", path ? path : "");
}
#endif

/* ========================================================================== */
/* 9. Tokenizer                                                               */
/* ========================================================================== */
/*
 * One vocabulary structure serves every tokenizer kind: piece bytes with
 * lengths, scores, attributes, a piece -> id map, the special-token list
 * (control, user-defined and unknown tokens, longest first) and the special
 * ids. `kind` selects the encoder and the piece decoder:
 *
 *   SPM  tokenizer.ggml.model "llama": SentencePiece-style, as llama.cpp's
 *        llm_tokenizer_spm: spaces become U+2581, a space is prefixed to
 *        text that starts the input or follows a special token
 *        (add_space_prefix), UTF-8 characters are merged pairwise by the
 *        highest piece score, and characters that form no piece fall back
 *        to <0xNN> byte tokens (or the unknown token).
 *   BPE  tokenizer.ggml.model "gpt2": byte-level BPE, as llama.cpp's
 *        llm_tokenizer_bpe: a pre-tokenizer chosen by tokenizer.ggml.pre
 *        splits the text into words (hand-written matchers for the regular
 *        expressions of each model family, no regex engine; one table of
 *        Unicode classes), every byte of a word becomes a visible character
 *        (GPT-2's byte-to-unicode map), and neighbours are merged by the
 *        rank of their pair in tokenizer.ggml.merges, lowest rank first.
 *        Pieces decode back to bytes through the inverse map. A pre value
 *        slm cannot tokenize as llama.cpp is refused at load. "gemma4"
 *        (the model or the pre value) is the SentencePiece-style variant:
 *        spaces become U+2581, lines are the words, merges work on the
 *        UTF-8 text itself and unknown characters fall back to <0xNN>.
 *
 * Tokenizing is (1) splitting the text around special tokens
 * (split_special), then (2) the kind's encoder on each raw fragment. The
 * special-token splitting, special ids, EOG set and the public API are
 * shared. The model is read-only: all working memory is local to a call.
 */

/* Attribute bits beyond the public SLM_TOKEN_* ones. */
enum { TA_LSTRIP = 1 << 7, TA_RSTRIP = 1 << 8 };

typedef struct vocab {
    int kind;                 /* SLM_VOCAB_* */
    int32_t n;                /* tokens */
    const char **text;        /* (n,) piece bytes: views into the file, not NUL-terminated
                                 (the GGUF reader's arrays for tokenizer.ggml.tokens) */
    size_t *len;              /* (n,) their lengths */
    float *score;
    uint16_t *attr;           /* SLM_TOKEN_* | TA_* */
    strmap map;               /* piece -> id (first id wins on duplicates) */
    int32_t *special;         /* (n_special,) ids matched whole in the input, longest first */
    int32_t n_special;
    int32_t *eog;             /* (eog_cap,) end-of-generation ids, ascending */
    int32_t n_eog, eog_cap;
    int32_t bos, eos, eot, eom, unk, pad, sep;
    int add_bos, add_eos, add_space_prefix;
    int32_t byte_tok[256];    /* byte -> token for byte fallback, -1 = none */
    int32_t max_piece;        /* longest decoded piece (special = 1) */
    const char *pre;          /* tokenizer.ggml.pre, "" if absent (BPE pre-tokenizer) */
    /* byte-level BPE */
    int pre_kind;             /* PRE_* */
    int pre_fallback;         /* pre was missing ('default' used) */
    int ignore_merges;        /* a word that is a piece is not merged (llama3) */
    int clean_spaces;         /* the detokenizer drops spaces before ?!., */
    int32_t n_merges;
    const char **mtext;       /* (n_merges,) "left right" merge strings, index = rank: views
                                 into the file (the reader's arrays for tokenizer.ggml.merges) */
    size_t *mlen;             /* (n_merges,) their lengths */
    strmap mmap;              /* merge string -> rank (first rank wins on duplicates) */
    /* WordPiece */
    int32_t wpm_max_len;      /* longest piece in bytes */
    int wpm_lowercase, wpm_strip_accents;
} vocab;

static const vocab *vocab_of(const slm_model *m) { return m ? m->vocab : NULL; }

/* The one cleanup path of a vocabulary, complete or not (vocab_load
   attaches it to the model first, so a failed load ends here too). The
   pieces and merges belong to the GGUF reader. */
static void vocab_free(slm_model *m) {
    vocab *v = m->vocab;
    if (!v) return;
    const allocator *a = &m->a;
    size_t n = (size_t)v->n;
    xfree(a, v->score, (n ? n : 1) * sizeof(float));
    xfree(a, v->attr, (n ? n : 1) * sizeof(uint16_t));
    if (v->map.slots) strmap_free(&v->map, a);
    xfree(a, v->special, (size_t)(v->n_special ? v->n_special : 1) * sizeof(int32_t));
    xfree(a, v->eog, (size_t)(v->eog_cap ? v->eog_cap : 1) * sizeof(int32_t));
    if (v->mmap.slots) strmap_free(&v->mmap, a);
    xfree(a, v, sizeof *v);
    m->vocab = NULL;
}

static int32_t vocab_find(const vocab *v, const char *s, size_t n) {
    if (!v->map.slots || n == 0) return -1;
    return (int32_t)strmap_find(&v->map, v->text, v->len, s, n, NULL);
}

static int vocab_is(const vocab *v, int32_t id, const char *s) {
    return v->len[id] == strlen(s) && memcmp(v->text[id], s, v->len[id]) == 0;
}

/* Optional integer key; out-of-range token ids keep the default. */
static void vocab_id_key(slm_model *m, const char *key, int32_t *id) {
    const gguf_kv *kv = gguf_get(&m->g, key);
    int64_t x;
    if (!kv || kv->type == SLM_META_ARRAY || kv_int(&m->g, kv, -1, &x) != SLM_OK) return;
    if (x < 0 || x >= m->vocab->n) {
        logf_(m, SLM_LOG_WARN, "%s = %lld is outside the vocabulary; keeping %d", key, (long long)x, (int)(*id));
        return;
    }
    *id = (int32_t)x;
}

static void vocab_bool_key(slm_model *m, const char *key, int *b) {
    const gguf_kv *kv = gguf_get(&m->g, key);
    int64_t x;
    if (kv && kv->type != SLM_META_ARRAY && kv_int(&m->g, kv, -1, &x) == SLM_OK) *b = x != 0;
}

static size_t piece_decode(const vocab *v, int32_t id, int special, int lstrip, char *buf, size_t size);

/* Sort order of the special list: longest text first, then lower id (a
   total order, so qsort gives the same list everywhere). */
typedef struct special_key {
    size_t len;
    int32_t id;
} special_key;

static int cmp_special(const void *pa, const void *pb) {
    const special_key *a = (const special_key *)pa, *b = (const special_key *)pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Tokens that end generation, by text (as llama.cpp finds them). */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "<|fim_pad|>", "<|file_sep|>",
};
static const char *const EOT_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
    "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
    "<end_of_utterance>",
};

/* The first byte first: the load asks this of every piece (an empty piece
   may end the buffer: nothing is read past its length). */
static int text_in(const vocab *v, int32_t id, const char *const *list, size_t n) {
    if (v->len[id] == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (v->text[id][0] == list[i][0] && vocab_is(v, id, list[i])) return 1;
    return 0;
}

static void eog_add(vocab *v, int32_t id) {
    if (id < 0) return;
    for (int32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return;
    if (v->n_eog >= v->eog_cap) return; /* cannot happen: vocab_eog counts the candidates */
    int32_t i = v->n_eog++;
    while (i > 0 && v->eog[i - 1] > id) { /* keep ascending */
        v->eog[i] = v->eog[i - 1];
        i--;
    }
    v->eog[i] = id;
}

static void eog_remove(vocab *v, int32_t id) {
    for (int32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) {
            memmove(v->eog + i, v->eog + i + 1, (size_t)(v->n_eog - i - 1) * sizeof(int32_t));
            v->n_eog--;
            return;
        }
}

/* Byte-level BPE pre-tokenizers (the regular expressions they implement are
   written above their matchers, in the BPE subsection below). */
enum { PRE_GPT2, PRE_LLAMA3, PRE_QWEN2, PRE_STARCODER, PRE_DEFAULT, PRE_FALCON, PRE_DEEPSEEK_LLM,
       PRE_DEEPSEEK_CODER, PRE_GPT4O, PRE_TEKKEN, PRE_QWEN35, PRE_DEEPSEEK3, PRE_KIMI_K2, PRE_SUPERBPE,
       PRE_SEED_CODER, PRE_BLOOM, PRE_VIKING, PRE_CHAMELEON, PRE_MINICPM5, PRE_UFAKZEKA, PRE_LAGUNA,
       PRE_GEMMA4 };
static const char *const PRE_KIND_NAMES[] = {"gpt2",     "llama3",      "qwen2",    "starcoder",  "default",
                                             "falcon",   "deepseek-llm", "deepseek-coder", "gpt-4o", "tekken",
                                             "qwen35",   "deepseek-v3", "kimi-k2",  "superbpe",   "seed-coder",
                                             "bloom",    "viking",      "chameleon", "minicpm5",  "ufakzeka",
                                             "laguna",   "gemma4"};
enum { PF_IGNORE_MERGES = 1, PF_ADD_BOS = 2, PF_NO_CLEAN = 4 };

/* tokenizer.ggml.pre values and their pre-tokenizer, with llama.cpp's
   per-value flags (ignore_merges, add_bos default, clean_spaces off):
   every name of llama.cpp's list (llama-vocab.cpp) is either here or in
   PRE_REFUSED. */
static const struct {
    const char *name;
    uint8_t kind, flags;
} PRE_NAMES[] = {
    {"default", PRE_DEFAULT, 0},
    {"gpt-2", PRE_GPT2, 0}, {"gpt2", PRE_GPT2, 0}, {"phi-2", PRE_GPT2, 0}, {"mpt", PRE_GPT2, 0},
    {"olmo", PRE_GPT2, 0}, {"jais", PRE_GPT2, 0}, {"exaone4", PRE_GPT2, 0}, {"mellum", PRE_GPT2, 0},
    {"a.x-4.0", PRE_GPT2, 0}, {"gigachat", PRE_GPT2, 0}, {"trillion", PRE_GPT2, PF_NO_CLEAN},
    {"granite-docling", PRE_GPT2, PF_NO_CLEAN}, {"jina-es", PRE_GPT2, 0}, {"jina-de", PRE_GPT2, 0},
    {"jina-v2-es", PRE_GPT2, 0}, {"jina-v2-de", PRE_GPT2, 0}, {"modern-bert", PRE_GPT2, 0},
    /* llama.cpp sets add_sep for these, which its tokenizer does not use */
    {"jina-v1-en", PRE_GPT2, 0}, {"jina-v2-code", PRE_GPT2, 0}, {"roberta-bpe", PRE_GPT2, 0},
    {"llama3", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS}, {"llama-v3", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"llama-bpe", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS}, {"falcon3", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"falcon-h1", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS}, {"pixtral", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"midm-2.0", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS}, {"lfm2", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"jina-v5-nano", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"dbrx", PRE_LLAMA3, 0}, {"smaug-bpe", PRE_LLAMA3, 0}, {"glm4", PRE_LLAMA3, 0}, {"chatglm-bpe", PRE_LLAMA3, 0},
    {"qwen2", PRE_QWEN2, PF_NO_CLEAN}, {"deepseek-r1-qwen", PRE_QWEN2, PF_NO_CLEAN}, {"kormo", PRE_QWEN2, PF_NO_CLEAN},
    {"f2llmv2", PRE_QWEN2, PF_NO_CLEAN},
    {"stablelm2", PRE_QWEN2, 0}, {"megrez", PRE_QWEN2, 0}, {"hunyuan", PRE_QWEN2, PF_NO_CLEAN},
    {"solar-open", PRE_QWEN2, PF_NO_CLEAN}, {"grok-2", PRE_QWEN2, PF_NO_CLEAN},
    {"qwen35", PRE_QWEN35, PF_NO_CLEAN},
    {"starcoder", PRE_STARCODER, 0}, {"refact", PRE_STARCODER, 0}, {"command-r", PRE_STARCODER, PF_NO_CLEAN},
    {"smollm", PRE_STARCODER, PF_NO_CLEAN}, {"codeshell", PRE_STARCODER, 0}, {"exaone", PRE_STARCODER, 0},
    {"minerva-7b", PRE_STARCODER, 0}, {"mellum2", PRE_STARCODER, 0},
    {"falcon", PRE_FALCON, 0},
    {"deepseek-llm", PRE_DEEPSEEK_LLM, PF_NO_CLEAN}, {"deepseek-coder", PRE_DEEPSEEK_CODER, PF_NO_CLEAN},
    {"gpt-4o", PRE_GPT4O, PF_NO_CLEAN}, {"llama4", PRE_GPT4O, PF_NO_CLEAN}, {"minimax-m2", PRE_GPT4O, PF_NO_CLEAN},
    {"kanana2", PRE_GPT4O, PF_NO_CLEAN}, {"talkie", PRE_GPT4O, PF_NO_CLEAN},
    {"tekken", PRE_TEKKEN, PF_NO_CLEAN | PF_IGNORE_MERGES | PF_ADD_BOS},
    {"deepseek-v3", PRE_DEEPSEEK3, PF_NO_CLEAN}, {"hunyuan-dense", PRE_DEEPSEEK3, PF_NO_CLEAN},
    {"joyai-llm", PRE_DEEPSEEK3, PF_NO_CLEAN}, {"hy_v4", PRE_DEEPSEEK3, PF_NO_CLEAN},
    {"kimi-k2", PRE_KIMI_K2, PF_NO_CLEAN},
    {"superbpe", PRE_SUPERBPE, PF_NO_CLEAN},
    {"seed-coder", PRE_SEED_CODER, PF_NO_CLEAN},
    {"bloom", PRE_BLOOM, 0}, {"gpt3-finnish", PRE_BLOOM, 0}, {"poro-chat", PRE_BLOOM, PF_NO_CLEAN},
    {"viking", PRE_VIKING, PF_NO_CLEAN},
    {"chameleon", PRE_CHAMELEON, PF_NO_CLEAN | PF_ADD_BOS},
    {"minicpm5", PRE_MINICPM5, PF_IGNORE_MERGES},
    {"ufakzeka", PRE_UFAKZEKA, PF_NO_CLEAN},
    {"laguna", PRE_LAGUNA, PF_NO_CLEAN},
    {"gemma4", PRE_GEMMA4, 0}, {"granite-embed-multi-311m", PRE_GEMMA4, 0}, {"sarvam-moe", PRE_GEMMA4, PF_NO_CLEAN},
};

/* The rest of llama.cpp's list: refused at load rather than tokenized
   differently (a whitespace-only tokenizer, or expressions slm has no
   matcher for yet). */
static const char *const PRE_REFUSED[] = {
    "whitespace", "jais-2", "spark2_5", "youtu", "exaone-moe", "granite-embed-multi-97m", "tiny_aya",
    "cohere2moe", "bailingmoe", "bailingmoe2", "llada-moe", "afmoe",
};

/* Pre-tokenizer, flags and merge ranks of a byte-level BPE vocabulary.
   A missing pre value means 'default' (as llama.cpp, with a warning); a
   name slm does not tokenize exactly as llama.cpp is refused, naming it. */
static slm_status bpe_load(slm_model *m, vocab *v, slm_error *err) {
    const gguf_file *g = &m->g;
    int flags = 0;
    v->pre_kind = -1;
    for (size_t i = 0; i < sizeof PRE_NAMES / sizeof PRE_NAMES[0]; i++)
        if (!strcmp(v->pre, PRE_NAMES[i].name)) {
            v->pre_kind = PRE_NAMES[i].kind;
            flags = PRE_NAMES[i].flags;
        }
    if (v->pre_kind < 0) {
        if (v->pre[0]) {
            for (size_t i = 0; i < sizeof PRE_REFUSED / sizeof PRE_REFUSED[0]; i++)
                if (!strcmp(v->pre, PRE_REFUSED[i]))
                    return seterr(err, SLM_ERR_UNSUPPORTED,
                                  "pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported by slm", v->pre);
            return seterr(err, SLM_ERR_UNSUPPORTED, "unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", v->pre);
        }
        v->pre_fallback = 1;
        v->pre_kind = PRE_DEFAULT;
        logf_(m, SLM_LOG_WARN, "tokenizer.ggml.pre is missing: using the 'default' pre-tokenizer (as llama.cpp); "
                               "tokens may differ from the model's own tokenizer");
    }
    v->ignore_merges = (flags & PF_IGNORE_MERGES) != 0;
    v->add_bos = (flags & PF_ADD_BOS) != 0;
    v->clean_spaces = !(flags & PF_NO_CLEAN);

    const gguf_kv *k = gguf_get(g, "tokenizer.ggml.merges");
    if (!k) {
        if (v->pre_kind != PRE_KIMI_K2) /* Kimi-K2 files have none */
            logf_(m, SLM_LOG_WARN, "byte-level BPE vocabulary without tokenizer.ggml.merges: words stay single characters");
        return SLM_OK;
    }
    if (k->type != SLM_META_ARRAY || k->arr_type != SLM_META_STRING)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    if (k->count >= (uint64_t)INT32_MAX)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.merges has %llu entries", (unsigned long long)k->count);
    int32_t n = (int32_t)k->count;
    if (n == 0) return SLM_OK;
    v->mtext = k->sv; /* views into the file: no copy */
    v->mlen = k->sl;
    v->n_merges = n;
    if (!strmap_init(&v->mmap, &m->a, (size_t)n))
        return seterr(err, SLM_ERR_NOMEM, "out of memory for %d merges", (int)n);
    for (int32_t i = 0; i < n; i++) {
        size_t slot;
        if (v->mlen[i] < 3) continue; /* no "a b": can never match */
        if (strmap_find(&v->mmap, v->mtext, v->mlen, v->mtext[i], v->mlen[i], &slot) >= 0) continue;
        v->mmap.slots[slot] = i;
    }
    return SLM_OK;
}

/* --- loading ---------------------------------------------------------------
   vocab_load is a sequence of named steps over one vocab attached to the
   model as soon as it exists, so every failure leaves through the model's
   one cleanup path (vocab_free). Pieces and merges are not copied: the
   vocabulary points at the GGUF reader's views into the file, and its own
   arrays are sized from the counts (no allocation per string). */

/* A string key's value equals `lit` (lengths compared: no NUL assumed). */
static int kv_str_is(const gguf_kv *kv, const char *lit) {
    size_t n = strlen(lit);
    return kv->type == SLM_META_STRING && kv->str_len == n && memcmp(kv->str[0], lit, n) == 0;
}

/* Gate: the tokenizer keys' types and counts. *ktok stays NULL for a file
   without a vocabulary (or with tokenizer.ggml.model "none"/"no_vocab"). */
static slm_status vocab_check_keys(const gguf_file *g, const gguf_kv **kmodel, const gguf_kv **ktok, slm_error *err) {
    const gguf_kv *km = gguf_get(g, "tokenizer.ggml.model");
    const gguf_kv *kt = gguf_get(g, "tokenizer.ggml.tokens");
    *kmodel = NULL;
    *ktok = NULL;
    if (km && km->type != SLM_META_STRING)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.model has type %s, expected string", meta_type_name(km->type));
    if (!kt || (km && (kv_str_is(km, "none") || kv_str_is(km, "no_vocab")))) return SLM_OK;
    if (kt->type != SLM_META_ARRAY || kt->arr_type != SLM_META_STRING)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (kt->count == 0 || kt->count >= (uint64_t)INT32_MAX)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries", (unsigned long long)kt->count);
    *kmodel = km;
    *ktok = kt;
    return SLM_OK;
}

/* The kind from tokenizer.ggml.model and llama.cpp's defaults for it. */
static void vocab_kind(slm_model *m, vocab *v, const gguf_kv *kmodel) {
    v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = v->sep = -1;
    if (!kmodel || kv_str_is(kmodel, "llama")) {
        v->kind = SLM_VOCAB_SPM;
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = 1, v->add_space_prefix = 1;
    } else if (kv_str_is(kmodel, "gpt2") || kv_str_is(kmodel, "gemma4")) {
        v->kind = SLM_VOCAB_BPE;
        v->bos = 11, v->eos = 11;
        if (kv_str_is(kmodel, "gemma4")) v->bos = v->eos = -1; /* ids from the file */
    } else if (kv_str_is(kmodel, "bert")) {
        /* WordPiece: [CLS] ... [SEP] always added (llama.cpp ignores the
           add_bos/add_sep keys here); [CLS] is the BOS id */
        v->kind = SLM_VOCAB_WPM;
        v->bos = 101, v->unk = 100, v->sep = 102, v->pad = 0;
        v->add_bos = 1;
        v->wpm_lowercase = 1;
        vocab_bool_key(m, "tokenizer.ggml.normalizer.lowercase", &v->wpm_lowercase);
        v->wpm_strip_accents = v->wpm_lowercase;
        vocab_bool_key(m, "tokenizer.ggml.normalizer.strip_accents", &v->wpm_strip_accents);
    } else {
        v->kind = SLM_VOCAB_OTHER;
        logf_(m, SLM_LOG_WARN, "tokenizer '%s' is not supported: token pieces only", kmodel->str[0]);
    }
    const gguf_kv *kpre = gguf_get(&m->g, "tokenizer.ggml.pre");
    v->pre = kpre && kpre->type == SLM_META_STRING ? kpre->str[0] : "";
    if (kmodel && kv_str_is(kmodel, "gemma4")) v->pre = "gemma4"; /* as llama.cpp */
}

/* Pieces (views), scores, attributes and the piece -> id map. */
static slm_status vocab_pieces(slm_model *m, vocab *v, const gguf_kv *ktok, slm_error *err) {
    const gguf_file *g = &m->g;
    const int32_t n = v->n;
    const gguf_kv *ksc = gguf_get(g, "tokenizer.ggml.scores");
    const gguf_kv *kty = gguf_get(g, "tokenizer.ggml.token_type");
    if (ksc && (ksc->type != SLM_META_ARRAY || (ksc->arr_type != SLM_META_F32 && ksc->arr_type != SLM_META_I32) ||
                ksc->count < (uint64_t)n))
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.scores must be an array of at least %d f32 or i32", (int)n);
    if (kty && (kty->type != SLM_META_ARRAY || kty->arr_type != SLM_META_I32 || kty->count < (uint64_t)n))
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.token_type must be an array of at least %d i32", (int)n);
    v->text = ktok->sv;
    v->len = ktok->sl;
    v->score = (float *)xcalloc(&m->a, (size_t)n, sizeof(float));
    v->attr = (uint16_t *)xalloc(&m->a, (size_t)n * sizeof(uint16_t));
    if (!v->score || !v->attr || !strmap_init(&v->map, &m->a, (size_t)n))
        return seterr(err, SLM_ERR_NOMEM, "out of memory for a vocabulary of %d tokens", (int)n);
    for (int32_t i = 0; i < n; i++) {
        if (ksc) {
            const uint8_t *p = g->data + ksc->value_off + 4 * (size_t)i;
            v->score[i] = ksc->arr_type == SLM_META_F32 ? bits_f32(ld_u32(p)) : (float)(int32_t)ld_u32(p);
        }
        int type = kty ? (int)(int32_t)ld_u32(g->data + kty->value_off + 4 * (size_t)i) : 1;
        switch (type) {
        case 1: v->attr[i] = SLM_TOKEN_NORMAL; break;
        case 2: v->attr[i] = SLM_TOKEN_UNKNOWN; break;
        case 3: v->attr[i] = SLM_TOKEN_CONTROL; break;
        case 4: v->attr[i] = SLM_TOKEN_USER_DEFINED; break;
        case 5: v->attr[i] = SLM_TOKEN_UNUSED; break;
        case 6: v->attr[i] = SLM_TOKEN_BYTE; break;
        default: v->attr[i] = 0; break; /* undefined */
        }
        if (v->len[i] == 0) continue; /* an empty piece can never be matched */
        if (v->len[i] > (size_t)v->wpm_max_len) v->wpm_max_len = (int32_t)SLM_MIN(v->len[i], (size_t)1 << 20);
        size_t slot;
        if (strmap_find(&v->map, v->text, v->len, v->text[i], v->len[i], &slot) >= 0) {
            logf_(m, SLM_LOG_WARN, "duplicate piece for token %d; the first id is used", (int)i);
            continue;
        }
        v->map.slots[slot] = i;
    }
    return SLM_OK;
}

/* Special ids and flags from the file, over the kind's defaults. */
static void vocab_special_ids(slm_model *m, vocab *v) {
    int32_t *ids[7] = {&v->bos, &v->eos, &v->unk, &v->pad, &v->sep, &v->eot, &v->eom};
    for (int k = 0; k < 7; k++)
        if (*ids[k] >= v->n) *ids[k] = -1; /* a default outside a small vocabulary */
    vocab_id_key(m, "tokenizer.ggml.bos_token_id", &v->bos);
    vocab_id_key(m, "tokenizer.ggml.eos_token_id", &v->eos);
    vocab_id_key(m, "tokenizer.ggml.eot_token_id", &v->eot);
    vocab_id_key(m, "tokenizer.ggml.eom_token_id", &v->eom);
    vocab_id_key(m, "tokenizer.ggml.unknown_token_id", &v->unk);
    vocab_id_key(m, "tokenizer.ggml.seperator_token_id", &v->sep);
    vocab_id_key(m, "tokenizer.ggml.padding_token_id", &v->pad);
    if (v->kind != SLM_VOCAB_WPM) {
        vocab_bool_key(m, "tokenizer.ggml.add_bos_token", &v->add_bos);
        vocab_bool_key(m, "tokenizer.ggml.add_eos_token", &v->add_eos);
    }
    vocab_bool_key(m, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    if (v->add_bos && v->bos < 0) v->add_bos = 0;
    if (v->add_eos && v->eos < 0) v->add_eos = 0;
}

/* A piece that may name an end-of-turn or end-of-generation token. */
static int eog_candidate(const vocab *v, int32_t i) {
    return v->len[i] >= 3 && v->len[i] <= 32 && v->text[i][0] != 0;
}

/* End-of-generation tokens found by their text; they become control tokens
   (llama.cpp does the same, so that they are never plain text). The list
   holds the tokens whose text is an EOG text plus eos, eot and eom. */
static slm_status vocab_eog(slm_model *m, vocab *v, slm_error *err) {
    const int32_t n = v->n;
    int32_t cap = 3;
    for (int32_t i = 0; i < n; i++)
        if (eog_candidate(v, i) && text_in(v, i, EOG_TEXTS, sizeof EOG_TEXTS / sizeof EOG_TEXTS[0])) cap++;
    v->eog = (int32_t *)xalloc(&m->a, (size_t)cap * sizeof(int32_t));
    if (!v->eog) return seterr(err, SLM_ERR_NOMEM, "out of memory");
    v->eog_cap = cap;
    int has_return = 0, has_call = 0, has_tool_response = 0;
    int32_t end_id = -1, s_id = -1;
    for (int32_t i = 0; i < n; i++) {
        if (!eog_candidate(v, i)) continue;
        if (v->eot < 0 && text_in(v, i, EOT_TEXTS, sizeof EOT_TEXTS / sizeof EOT_TEXTS[0])) {
            v->eot = i;
            v->attr[i] |= SLM_TOKEN_CONTROL;
        }
        if (v->eom < 0 && vocab_is(v, i, "<|eom_id|>")) {
            v->eom = i;
            v->attr[i] |= SLM_TOKEN_CONTROL;
        }
        if (text_in(v, i, EOG_TEXTS, sizeof EOG_TEXTS / sizeof EOG_TEXTS[0])) {
            eog_add(v, i);
            v->attr[i] |= SLM_TOKEN_CONTROL;
            if (vocab_is(v, i, "<|return|>")) has_return = 1;
            if (vocab_is(v, i, "<|call|>") || vocab_is(v, i, "<|calls|>") || vocab_is(v, i, "<|flush|>")) has_call = 1;
            if (vocab_is(v, i, "<|tool_response>")) has_tool_response = 1;
            if (vocab_is(v, i, "<|end|>")) end_id = i;
            if (vocab_is(v, i, "</s>")) s_id = i;
        }
        /* gpt-oss: these are always rendered */
        if (vocab_is(v, i, "<|channel|>") || vocab_is(v, i, "<|message|>") || vocab_is(v, i, "<|start|>") ||
            vocab_is(v, i, "<|constrain|>"))
            v->attr[i] = SLM_TOKEN_USER_DEFINED;
    }
    eog_add(v, v->eos);
    eog_add(v, v->eot);
    eog_add(v, v->eom);
    if (has_return && has_call && end_id >= 0) { /* harmony: <|end|> ends a message, not the turn */
        eog_remove(v, end_id);
        v->attr[end_id] = SLM_TOKEN_USER_DEFINED;
    }
    if (has_tool_response && s_id >= 0) {
        eog_remove(v, s_id);
        v->attr[s_id] = SLM_TOKEN_NORMAL;
    }
    return SLM_OK;
}

static int is_special_attr(const vocab *v, int32_t i) {
    return (v->attr[i] & (SLM_TOKEN_CONTROL | SLM_TOKEN_USER_DEFINED | SLM_TOKEN_UNKNOWN)) && v->len[i] > 0;
}

/* The special-token list, longest first, sized to its count. */
static slm_status vocab_special_list(slm_model *m, vocab *v, slm_error *err) {
    const allocator *a = &m->a;
    int32_t ns = 0;
    for (int32_t i = 0; i < v->n; i++) ns += is_special_attr(v, i);
    special_key *keys = (special_key *)xalloc(a, (size_t)(ns ? ns : 1) * sizeof(special_key));
    v->special = (int32_t *)xalloc(a, (size_t)(ns ? ns : 1) * sizeof(int32_t));
    v->n_special = v->special ? ns : 0; /* vocab_free frees by it */
    if (!keys || !v->special) {
        xfree(a, keys, (size_t)(ns ? ns : 1) * sizeof(special_key));
        return seterr(err, SLM_ERR_NOMEM, "out of memory");
    }
    int32_t k = 0;
    for (int32_t i = 0; i < v->n; i++)
        if (is_special_attr(v, i)) {
            keys[k].len = v->len[i];
            keys[k].id = i;
            k++;
        }
    qsort(keys, (size_t)ns, sizeof *keys, cmp_special);
    for (int32_t i = 0; i < ns; i++) v->special[i] = keys[i].id;
    xfree(a, keys, (size_t)(ns ? ns : 1) * sizeof(special_key));
    return SLM_OK;
}

/* Per-model attributes llama.cpp sets by name: Phi-3 strips the spaces
   after its special tokens. */
static void vocab_model_quirks(slm_model *m, vocab *v) {
    const gguf_kv *kn = gguf_get(&m->g, "general.name");
    char name[128] = {0};
    if (kn && kn->type == SLM_META_STRING) {
        size_t i = 0;
        for (; i < kn->str_len && i + 1 < sizeof name; i++) {
            char c = kn->str[0][i];
            name[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        name[i] = 0;
    }
    if (strstr(name, "phi-3") || strstr(name, "phi3")) {
        for (int32_t i = 0; i < v->n_special; i++) v->attr[v->special[i]] |= TA_RSTRIP;
        int32_t id;
        if ((id = vocab_find(v, "</s>", 4)) >= 0) v->attr[id] |= TA_RSTRIP;
        if ((id = vocab_find(v, "<unk>", 5)) >= 0) v->attr[id] &= (uint16_t)~TA_RSTRIP;
        if ((id = vocab_find(v, "<s>", 3)) >= 0) v->attr[id] &= (uint16_t)~TA_RSTRIP;
        if ((id = vocab_find(v, "<|endoftext|>", 13)) >= 0) v->attr[id] &= (uint16_t)~TA_RSTRIP;
    }
}

/* Byte fallback (<0xNN>, else the byte itself as a piece) and the longest
   decoded piece. */
static void vocab_bytes(vocab *v) {
    for (int b = 0; b < 256; b++) {
        char hex[7];
        fmt_sn(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = vocab_find(v, hex, 6);
        if (id < 0) {
            char c = (char)b;
            id = vocab_find(v, &c, 1);
        }
        v->byte_tok[b] = id;
    }
    for (int32_t i = 0; i < v->n; i++) {
        size_t l = piece_decode(v, i, 1, 0, NULL, 0);
        if (l > (size_t)v->max_piece) v->max_piece = (int32_t)SLM_MIN(l, (size_t)INT32_MAX / 2);
    }
}

static slm_status vocab_load(slm_model *m, slm_error *err) {
    const gguf_kv *kmodel, *ktok;
    slm_status st = vocab_check_keys(&m->g, &kmodel, &ktok, err);
    if (st != SLM_OK || !ktok) return st;
    vocab *v = (vocab *)xcalloc(&m->a, 1, sizeof *v);
    if (!v) return seterr(err, SLM_ERR_NOMEM, "out of memory for the vocabulary");
    m->vocab = v; /* from here on, model_release frees what the steps made */
    v->n = (int32_t)ktok->count;
    vocab_kind(m, v, kmodel);
    if (v->kind == SLM_VOCAB_BPE && (st = bpe_load(m, v, err)) != SLM_OK) return st;
    if ((st = vocab_pieces(m, v, ktok, err)) != SLM_OK) return st;
    vocab_special_ids(m, v);
    if ((st = vocab_eog(m, v, err)) != SLM_OK) return st;
    if ((st = vocab_special_list(m, v, err)) != SLM_OK) return st;
    vocab_model_quirks(m, v);
    vocab_bytes(v);
    logf_(m, SLM_LOG_INFO, "vocabulary: %d tokens (%s), %d special, %d end-of-generation", (int)v->n,
          kmodel ? kmodel->str[0] : "llama", (int)v->n_special, (int)v->n_eog);
    return SLM_OK;
}

/* --- special-token splitting ---------------------------------------------- */

typedef struct frag {
    int32_t tok; /* >= 0: a special token; -1: raw text [off, off + len) */
    size_t off, len;
} frag;

typedef struct frag_list {
    frag *f;
    size_t n, cap;
} frag_list;

static int frag_push(const allocator *a, frag_list *l, int32_t tok, size_t off, size_t len) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        frag *nf = (frag *)xalloc(a, nc * sizeof(frag));
        if (!nf) return 0;
        if (l->n) memcpy(nf, l->f, l->n * sizeof(frag));
        xfree(a, l->f, l->cap * sizeof(frag));
        l->f = nf;
        l->cap = nc;
    }
    l->f[l->n].tok = tok;
    l->f[l->n].off = off;
    l->f[l->n].len = len;
    l->n++;
    return 1;
}

/* First occurrence of needle in hay[from, to), or SIZE_MAX. */
static size_t find_bytes(const char *hay, size_t from, size_t to, const char *needle, size_t nl) {
    if (nl == 0 || to < from || to - from < nl) return SIZE_MAX;
    for (size_t i = from; i + nl <= to; i++) {
        const char *p = (const char *)memchr(hay + i, needle[0], to - nl + 1 - i);
        if (!p) return SIZE_MAX;
        i = (size_t)(p - hay);
        if (memcmp(p, needle, nl) == 0) return i;
    }
    return SIZE_MAX;
}

static int is_space_c(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Split the text around special tokens, one token at a time in the order of
   the special list (llama.cpp's tokenizer_st_partition): control and unknown
   tokens only when parse_special, user-defined ones always. */
static int split_special(const vocab *v, const allocator *a, const char *text, size_t len, int parse_special,
                         frag_list *out) {
    frag_list cur = {0}, nxt = {0};
    int ok = 1;
    if (!frag_push(a, &cur, -1, 0, len)) return 0;
    for (int32_t s = 0; s < v->n_special && ok; s++) {
        int32_t id = v->special[s];
        uint16_t at = v->attr[id];
        if (!parse_special && (at & (SLM_TOKEN_CONTROL | SLM_TOKEN_UNKNOWN))) continue;
        const char *st = v->text[id];
        size_t sl = v->len[id];
        int hit = 0;
        nxt.n = 0;
        for (size_t k = 0; k < cur.n && ok; k++) {
            frag fr = cur.f[k];
            if (fr.tok >= 0) {
                ok = frag_push(a, &nxt, fr.tok, 0, 0);
                continue;
            }
            size_t off = fr.off, flen = fr.len;
            for (;;) {
                size_t mpos = find_bytes(text, off, off + flen, st, sl);
                if (mpos == SIZE_MAX) {
                    if (flen > 0) ok = ok && frag_push(a, &nxt, -1, off, flen);
                    break;
                }
                hit = 1;
                size_t ll = mpos - off;
                if (at & TA_LSTRIP)
                    while (ll > 0 && is_space_c(text[off + ll - 1])) ll--;
                if (ll > 0) ok = ok && frag_push(a, &nxt, -1, off, ll);
                ok = ok && frag_push(a, &nxt, id, 0, 0);
                size_t roff = mpos + sl, rlen = off + flen - roff;
                if (at & TA_RSTRIP)
                    while (rlen > 0 && is_space_c(text[roff])) roff++, rlen--;
                off = roff;
                flen = rlen;
                if (flen == 0) break;
            }
        }
        if (hit) {
            frag_list t = cur;
            cur = nxt;
            nxt = t;
        }
    }
    xfree(a, nxt.f, nxt.cap * sizeof(frag));
    if (!ok) {
        xfree(a, cur.f, cur.cap * sizeof(frag));
        return 0;
    }
    *out = cur;
    return 1;
}

/* --- output collection ------------------------------------------------------ */

typedef struct tok_out {
    int32_t *ids;
    int64_t max, n; /* n counts every token, also those past max */
} tok_out;

static void tok_push(tok_out *o, int32_t id) {
    if (id < 0) return;
    if (o->n < o->max) o->ids[o->n] = id;
    o->n++;
}

/* --- SentencePiece-style encoder (SPM) ---------------------------------------- */

typedef struct spm_sym {
    int32_t prev, next;
    size_t off, n; /* bytes of the escaped text; n = 0 once merged away */
} spm_sym;

typedef struct spm_bigram {
    float score;
    int32_t left, right;
    size_t size;
} spm_bigram;

/* Heap order: higher score first, then the leftmost pair. */
static int bigram_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* Grow *p (elements of `elem` bytes) to hold at least `need`, doubling. */
static int grow(const allocator *a, void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *np = xalloc(a, nc * elem);
    if (!np) return 0;
    if (*cap) memcpy(np, *p, *cap * elem);
    xfree(a, *p, *cap * elem);
    *p = np;
    *cap = nc;
    return 1;
}

/* A binary heap of T kept in order by BEFORE(a, b) (the SentencePiece
   bigrams and the BPE pairs): sift the element just appended (the n-th) up,
   and take the first one out. One definition serves both element types
   without an indirect call in the tokenizers' inner loops. */
#define HEAP_FUNCS(T, BEFORE)                                                                                      \
    static void T##_sift_up(T *h, size_t n) {                                                                      \
        T x = h[n - 1];                                                                                            \
        size_t i = n - 1;                                                                                          \
        while (i > 0) {                                                                                            \
            size_t p = (i - 1) / 2;                                                                                \
            if (!BEFORE(&x, &h[p])) break;                                                                         \
            h[i] = h[p];                                                                                           \
            i = p;                                                                                                 \
        }                                                                                                          \
        h[i] = x;                                                                                                  \
    }                                                                                                              \
    static T T##_pop(T *h, size_t *nh) {                                                                           \
        T top = h[0], last = h[--*nh];                                                                             \
        size_t i = 0, n = *nh;                                                                                     \
        for (;;) {                                                                                                 \
            size_t l = 2 * i + 1, r = l + 1, best = i;                                                             \
            const T *bb = &last;                                                                                   \
            if (l < n && BEFORE(&h[l], bb)) best = l, bb = &h[l];                                                  \
            if (r < n && BEFORE(&h[r], bb)) best = r;                                                              \
            if (best == i) break;                                                                                  \
            h[i] = h[best];                                                                                        \
            i = best;                                                                                              \
        }                                                                                                          \
        if (n) h[i] = last;                                                                                        \
        return top;                                                                                                \
    }
HEAP_FUNCS(spm_bigram, bigram_before)

typedef struct spm_ctx {
    const vocab *v;
    const allocator *a;
    const char *s;
    spm_sym *sym;
    spm_bigram *heap;
    size_t nheap, capheap;
    int oom;
} spm_ctx;

static void heap_push(spm_ctx *c, spm_bigram b) {
    if (!grow(c->a, (void **)&c->heap, &c->capheap, c->nheap + 1, sizeof(spm_bigram))) {
        c->oom = 1;
        return;
    }
    c->heap[c->nheap++] = b;
    spm_bigram_sift_up(c->heap, c->nheap);
}

static void spm_try_bigram(spm_ctx *c, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    size_t size = c->sym[left].n + c->sym[right].n;
    int32_t id = vocab_find(c->v, c->s + c->sym[left].off, size);
    if (id < 0) return;
    spm_bigram b;
    b.score = c->v->score[id];
    b.left = left;
    b.right = right;
    b.size = size;
    heap_push(c, b);
}

/* UTF-8 sequence length from the lead byte (continuation bytes count as 1). */
static size_t utf8_len(unsigned char b) {
    static const uint8_t L[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return L[b >> 4];
}

/* Encode one escaped fragment s[0, n). */
static int spm_encode(const vocab *v, const allocator *a, const char *s, size_t n, tok_out *o) {
    if (n == 0) return 1;
    spm_ctx c;
    memset(&c, 0, sizeof c);
    c.v = v;
    c.a = a;
    c.s = s;
    c.sym = (spm_sym *)xalloc(a, n * sizeof(spm_sym));
    if (!c.sym) return 0;
    int32_t ns = 0;
    for (size_t off = 0; off < n; ns++) {
        size_t l = SLM_MIN(utf8_len((unsigned char)s[off]), n - off);
        c.sym[ns].off = off;
        c.sym[ns].n = l;
        c.sym[ns].prev = ns - 1;
        off += l;
        c.sym[ns].next = off == n ? -1 : ns + 1;
    }
    for (int32_t i = 1; i < ns; i++) spm_try_bigram(&c, i - 1, i);
    while (c.nheap && !c.oom) {
        spm_bigram b = spm_bigram_pop(c.heap, &c.nheap);
        spm_sym *l = &c.sym[b.left], *r = &c.sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) c.sym[r->next].prev = b.left;
        spm_try_bigram(&c, l->prev, b.left);
        spm_try_bigram(&c, b.left, l->next);
    }
    /* Every merged symbol is a piece by construction (a pair is merged only
       if its text is one), so llama.cpp's resegmentation through the reverse
       merge map never has to split a symbol: only single characters that are
       no piece remain, and those fall back to their bytes. */
    for (int32_t i = 0; i != -1 && !c.oom; i = c.sym[i].next) {
        const spm_sym *y = &c.sym[i];
        int32_t id = vocab_find(v, s + y->off, y->n);
        if (id >= 0) {
            tok_push(o, id);
            continue;
        }
        for (size_t j = 0; j < y->n; j++) {
            int32_t bt = v->byte_tok[(unsigned char)s[y->off + j]];
            tok_push(o, bt >= 0 ? bt : v->unk);
        }
    }
    xfree(a, c.heap, c.capheap * sizeof(spm_bigram));
    xfree(a, c.sym, n * sizeof(spm_sym));
    return !c.oom;
}

/* --- Unicode classes for the BPE pre-tokenizers -------------------------------- */
/*
 * The pre-tokenizer patterns ask whether a code point is a letter \p{L}, a
 * number \p{N}, punctuation \p{P} or white space \s. One table of general
 * category ranges answers the first ones (UCD_CLASS: 2205 ranges, 8.8 KB);
 * white space is the Unicode White_Space property (llama.cpp's set). The
 * tables come from tools/gen_unicode.py; code points assigned after their
 * Unicode version (UCD_VERSION) count as "other".
 */

/* BEGIN gen_unicode */
/* Generated by tools/gen_unicode.py from Python 3.11.7 unicodedata (Unicode 14.0.0). */
#define UCD_VERSION "14.0.0"
static const uint32_t UCD_CLASS[2205] = {
    0x000000, 0x00010b, 0x000124, 0x00012b, 0x00015c, 0x000163, 0x000182, 0x0001d3, 0x0001e4, 0x0001fb, 0x000209,
    0x0002db, 0x0002f4, 0x0002fb, 0x000304, 0x000309, 0x0003db, 0x0003e4, 0x0003eb, 0x0003f4, 0x0003f8, 0x00050b,
    0x000514, 0x00053b, 0x000544, 0x000551, 0x00055b, 0x000564, 0x000568, 0x000574, 0x000592, 0x0005a4, 0x0005a9,
    0x0005b3, 0x0005c4, 0x0005ca, 0x0005d1, 0x0005db, 0x0005e2, 0x0005fb, 0x000601, 0x0006bc, 0x0006c1, 0x0007bc,
    0x0007c1, 0x001614, 0x001631, 0x001694, 0x001701, 0x00172c, 0x001761, 0x00176c, 0x001771, 0x00177c, 0x001805,
    0x001b81, 0x001bac, 0x001bb1, 0x001bc0, 0x001bd1, 0x001bf3, 0x001bf9, 0x001c00, 0x001c24, 0x001c31, 0x001c3b,
    0x001c41, 0x001c58, 0x001c61, 0x001c68, 0x001c71, 0x001d10, 0x001d19, 0x001fb4, 0x001fb9, 0x002414, 0x00241d,
    0x002451, 0x002980, 0x002989, 0x002ab8, 0x002ac9, 0x002ad3, 0x002b01, 0x002c4b, 0x002c58, 0x002c6c, 0x002c80,
    0x002c8d, 0x002df3, 0x002dfd, 0x002e03, 0x002e0d, 0x002e1b, 0x002e25, 0x002e33, 0x002e3d, 0x002e40, 0x002e81,
    0x002f58, 0x002f79, 0x002f9b, 0x002fa8, 0x003034, 0x00304b, 0x00305c, 0x003063, 0x003074, 0x003085, 0x0030db,
    0x0030e0, 0x0030eb, 0x003101, 0x00325d, 0x003302, 0x003353, 0x003371, 0x003385, 0x003389, 0x0036a3, 0x0036a9,
    0x0036b5, 0x0036e8, 0x0036f4, 0x0036fd, 0x003729, 0x00373d, 0x00374c, 0x003755, 0x003771, 0x003782, 0x0037d1,
    0x0037ec, 0x0037f9, 0x003803, 0x003870, 0x003881, 0x00388d, 0x003891, 0x003985, 0x003a58, 0x003a69, 0x003d35,
    0x003d89, 0x003d90, 0x003e02, 0x003e51, 0x003f5d, 0x003fa1, 0x003fb4, 0x003fbb, 0x003fd1, 0x003fd8, 0x003fed,
    0x003ff4, 0x004001, 0x0040b5, 0x0040d1, 0x0040dd, 0x004121, 0x00412d, 0x004141, 0x00414d, 0x004170, 0x004183,
    0x0041f8, 0x004201, 0x0042cd, 0x0042e0, 0x0042f3, 0x0042f8, 0x004301, 0x004358, 0x004381, 0x004444, 0x004449,
    0x004478, 0x0044c5, 0x004501, 0x004655, 0x004710, 0x00471d, 0x004821, 0x0049d5, 0x0049e9, 0x0049f5, 0x004a81,
    0x004a8d, 0x004ac1, 0x004b15, 0x004b23, 0x004b32, 0x004b83, 0x004b89, 0x004c0d, 0x004c20, 0x004c29, 0x004c68,
    0x004c79, 0x004c88, 0x004c99, 0x004d48, 0x004d51, 0x004d88, 0x004d91, 0x004d98, 0x004db1, 0x004dd0, 0x004de5,
    0x004de9, 0x004df5, 0x004e28, 0x004e3d, 0x004e48, 0x004e5d, 0x004e71, 0x004e78, 0x004ebd, 0x004ec0, 0x004ee1,
    0x004ef0, 0x004ef9, 0x004f15, 0x004f20, 0x004f32, 0x004f81, 0x004f94, 0x004fa2, 0x004fd4, 0x004fe1, 0x004feb,
    0x004ff5, 0x004ff8, 0x00500d, 0x005020, 0x005029, 0x005058, 0x005079, 0x005088, 0x005099, 0x005148, 0x005151,
    0x005188, 0x005191, 0x0051a0, 0x0051a9, 0x0051b8, 0x0051c1, 0x0051d0, 0x0051e5, 0x0051e8, 0x0051f5, 0x005218,
    0x00523d, 0x005248, 0x00525d, 0x005270, 0x00528d, 0x005290, 0x0052c9, 0x0052e8, 0x0052f1, 0x0052f8, 0x005332,
    0x005385, 0x005391, 0x0053ad, 0x0053b3, 0x0053b8, 0x00540d, 0x005420, 0x005429, 0x005470, 0x005479, 0x005490,
    0x005499, 0x005548, 0x005551, 0x005588, 0x005591, 0x0055a0, 0x0055a9, 0x0055d0, 0x0055e5, 0x0055e9, 0x0055f5,
    0x005630, 0x00563d, 0x005650, 0x00565d, 0x005670, 0x005681, 0x005688, 0x005701, 0x005715, 0x005720, 0x005732,
    0x005783, 0x00578c, 0x005790, 0x0057c9, 0x0057d5, 0x005800, 0x00580d, 0x005820, 0x005829, 0x005868, 0x005879,
    0x005888, 0x005899, 0x005948, 0x005951, 0x005988, 0x005991, 0x0059a0, 0x0059a9, 0x0059d0, 0x0059e5, 0x0059e9,
    0x0059f5, 0x005a28, 0x005a3d, 0x005a48, 0x005a5d, 0x005a70, 0x005aad, 0x005ac0, 0x005ae1, 0x005af0, 0x005af9,
    0x005b15, 0x005b20, 0x005b32, 0x005b84, 0x005b89, 0x005b92, 0x005bc0, 0x005c15, 0x005c19, 0x005c20, 0x005c29,
    0x005c58, 0x005c71, 0x005c88, 0x005c91, 0x005cb0, 0x005cc9, 0x005cd8, 0x005ce1, 0x005ce8, 0x005cf1, 0x005d00,
    0x005d19, 0x005d28, 0x005d41, 0x005d58, 0x005d71, 0x005dd0, 0x005df5, 0x005e18, 0x005e35, 0x005e48, 0x005e55,
    0x005e70, 0x005e81, 0x005e88, 0x005ebd, 0x005ec0, 0x005f32, 0x005f9c, 0x005fd8, 0x006005, 0x006029, 0x006068,
    0x006071, 0x006088, 0x006091, 0x006148, 0x006151, 0x0061d0, 0x0061e5, 0x0061e9, 0x0061f5, 0x006228, 0x006235,
    0x006248, 0x006255, 0x006270, 0x0062ad, 0x0062b8, 0x0062c1, 0x0062d8, 0x0062e9, 0x0062f0, 0x006301, 0x006315,
    0x006320, 0x006332, 0x006380, 0x0063bb, 0x0063c2, 0x0063fc, 0x006401, 0x00640d, 0x006423, 0x006429, 0x006468,
    0x006471, 0x006488, 0x006491, 0x006548, 0x006551, 0x0065a0, 0x0065a9, 0x0065d0, 0x0065e5, 0x0065e9, 0x0065f5,
    0x006628, 0x006635, 0x006648, 0x006655, 0x006670, 0x0066ad, 0x0066b8, 0x0066e9, 0x0066f8, 0x006701, 0x006715,
    0x006720, 0x006732, 0x006780, 0x006789, 0x006798, 0x006805, 0x006821, 0x006868, 0x006871, 0x006888, 0x006891,
    0x0069dd, 0x0069e9, 0x0069f5, 0x006a28, 0x006a35, 0x006a48, 0x006a55, 0x006a71, 0x006a7c, 0x006a80, 0x006aa1,
    0x006abd, 0x006ac2, 0x006af9, 0x006b15, 0x006b20, 0x006b32, 0x006bcc, 0x006bd1, 0x006c00, 0x006c0d, 0x006c20,
    0x006c29, 0x006cb8, 0x006cd1, 0x006d90, 0x006d99, 0x006de0, 0x006de9, 0x006df0, 0x006e01, 0x006e38, 0x006e55,
    0x006e58, 0x006e7d, 0x006ea8, 0x006eb5, 0x006eb8, 0x006ec5, 0x006f00, 0x006f32, 0x006f80, 0x006f95, 0x006fa3,
    0x006fa8, 0x007009, 0x00718d, 0x007191, 0x0071a5, 0x0071d8, 0x0071fc, 0x007201, 0x00723d, 0x00727b, 0x007282,
    0x0072d3, 0x0072e0, 0x007409, 0x007418, 0x007421, 0x007428, 0x007431, 0x007458, 0x007461, 0x007520, 0x007529,
    0x007530, 0x007539, 0x00758d, 0x007591, 0x0075a5, 0x0075e9, 0x0075f0, 0x007601, 0x007628, 0x007631, 0x007638,
    0x007645, 0x007670, 0x007682, 0x0076d0, 0x0076e1, 0x007700, 0x007801, 0x00780c, 0x007823, 0x00789c, 0x0078a3,
    0x0078ac, 0x0078c5, 0x0078d4, 0x007902, 0x0079a4, 0x0079ad, 0x0079b4, 0x0079bd, 0x0079c4, 0x0079cd, 0x0079d3,
    0x0079f5, 0x007a01, 0x007a40, 0x007a49, 0x007b68, 0x007b8d, 0x007c2b, 0x007c35, 0x007c41, 0x007c6d, 0x007cc0,
    0x007ccd, 0x007de8, 0x007df4, 0x007e35, 0x007e3c, 0x007e68, 0x007e74, 0x007e83, 0x007eac, 0x007ecb, 0x007ed8,
    0x008001, 0x00815d, 0x0081f9, 0x008202, 0x008253, 0x008281, 0x0082b5, 0x0082d1, 0x0082f5, 0x008309, 0x008315,
    0x008329, 0x00833d, 0x008371, 0x00838d, 0x0083a9, 0x008415, 0x008471, 0x00847d, 0x008482, 0x0084d5, 0x0084f4,
    0x008501, 0x008630, 0x008639, 0x008640, 0x008669, 0x008670, 0x008681, 0x0087db, 0x0087e1, 0x009248, 0x009251,
    0x009270, 0x009281, 0x0092b8, 0x0092c1, 0x0092c8, 0x0092d1, 0x0092f0, 0x009301, 0x009448, 0x009451, 0x009470,
    0x009481, 0x009588, 0x009591, 0x0095b0, 0x0095c1, 0x0095f8, 0x009601, 0x009608, 0x009611, 0x009630, 0x009641,
    0x0096b8, 0x0096c1, 0x009888, 0x009891, 0x0098b0, 0x0098c1, 0x009ad8, 0x009aed, 0x009b03, 0x009b4a, 0x009be8,
    0x009c01, 0x009c84, 0x009cd0, 0x009d01, 0x009fb0, 0x009fc1, 0x009ff0, 0x00a003, 0x00a009, 0x00b36c, 0x00b373,
    0x00b379, 0x00b400, 0x00b409, 0x00b4db, 0x00b4e8, 0x00b501, 0x00b75b, 0x00b772, 0x00b789, 0x00b7c8, 0x00b801,
    0x00b895, 0x00b8b0, 0x00b8f9, 0x00b995, 0x00b9ab, 0x00b9b8, 0x00ba01, 0x00ba95, 0x00baa0, 0x00bb01, 0x00bb68,
    0x00bb71, 0x00bb88, 0x00bb95, 0x00bba0, 0x00bc01, 0x00bda5, 0x00bea3, 0x00beb9, 0x00bec3, 0x00bedc, 0x00bee1,
    0x00beed, 0x00bef0, 0x00bf02, 0x00bf50, 0x00bf82, 0x00bfd0, 0x00c003, 0x00c05d, 0x00c070, 0x00c07d, 0x00c082,
    0x00c0d0, 0x00c101, 0x00c3c8, 0x00c401, 0x00c42d, 0x00c439, 0x00c54d, 0x00c551, 0x00c558, 0x00c581, 0x00c7b0,
    0x00c801, 0x00c8f8, 0x00c905, 0x00c960, 0x00c985, 0x00c9e0, 0x00ca04, 0x00ca08, 0x00ca23, 0x00ca32, 0x00ca81,
    0x00cb70, 0x00cb81, 0x00cba8, 0x00cc01, 0x00cd60, 0x00cd81, 0x00ce50, 0x00ce82, 0x00ced8, 0x00cef4, 0x00d001,
    0x00d0bd, 0x00d0e0, 0x00d0f3, 0x00d101, 0x00d2ad, 0x00d2f8, 0x00d305, 0x00d3e8, 0x00d3fd, 0x00d402, 0x00d450,
    0x00d482, 0x00d4d0, 0x00d503, 0x00d539, 0x00d543, 0x00d570, 0x00d585, 0x00d678, 0x00d805, 0x00d829, 0x00d9a5,
    0x00da29, 0x00da68, 0x00da82, 0x00dad3, 0x00db0c, 0x00db5d, 0x00dba4, 0x00dbeb, 0x00dbf8, 0x00dc05, 0x00dc19,
    0x00dd0d, 0x00dd71, 0x00dd82, 0x00ddd1, 0x00df35, 0x00dfa0, 0x00dfe3, 0x00e001, 0x00e125, 0x00e1c0, 0x00e1db,
    0x00e202, 0x00e250, 0x00e269, 0x00e282, 0x00e2d1, 0x00e3f3, 0x00e401, 0x00e448, 0x00e481, 0x00e5d8, 0x00e5e9,
    0x00e603, 0x00e640, 0x00e685, 0x00e69b, 0x00e6a5, 0x00e749, 0x00e76d, 0x00e771, 0x00e7a5, 0x00e7a9, 0x00e7bd,
    0x00e7d1, 0x00e7d8, 0x00e801, 0x00ee05, 0x00f001, 0x00f8b0, 0x00f8c1, 0x00f8f0, 0x00f901, 0x00fa30, 0x00fa41,
    0x00fa70, 0x00fa81, 0x00fac0, 0x00fac9, 0x00fad0, 0x00fad9, 0x00fae0, 0x00fae9, 0x00faf0, 0x00faf9, 0x00fbf0,
    0x00fc01, 0x00fda8, 0x00fdb1, 0x00fdec, 0x00fdf1, 0x00fdfc, 0x00fe11, 0x00fe28, 0x00fe31, 0x00fe6c, 0x00fe81,
    0x00fea0, 0x00feb1, 0x00fee0, 0x00feec, 0x00ff01, 0x00ff6c, 0x00ff80, 0x00ff91, 0x00ffa8, 0x00ffb1, 0x00ffec,
    0x00fff8, 0x010083, 0x010140, 0x010183, 0x010224, 0x01022b, 0x010294, 0x01029b, 0x0102f8, 0x010382, 0x010389,
    0x010390, 0x0103a2, 0x0103d4, 0x0103eb, 0x0103f9, 0x010402, 0x010454, 0x01046b, 0x010478, 0x010481, 0x0104e8,
    0x010504, 0x010608, 0x010685, 0x010788, 0x010804, 0x010811, 0x01081c, 0x010839, 0x010844, 0x010851, 0x0108a4,
    0x0108a9, 0x0108b4, 0x0108c9, 0x0108f4, 0x010921, 0x01092c, 0x010931, 0x01093c, 0x010941, 0x01094c, 0x010951,
    0x010974, 0x010979, 0x0109d4, 0x0109e1, 0x010a04, 0x010a29, 0x010a54, 0x010a71, 0x010a7c, 0x010a82, 0x010c19,
    0x010c2a, 0x010c54, 0x010c60, 0x010c84, 0x011843, 0x011864, 0x01194b, 0x01195c, 0x012138, 0x012204, 0x012258,
    0x012302, 0x0124e4, 0x012752, 0x012804, 0x013b43, 0x013bb2, 0x013ca4, 0x013e2b, 0x013e3c, 0x013f33, 0x013f84,
    0x014c1b, 0x014ccc, 0x014ec3, 0x014ee4, 0x014fe3, 0x014ff4, 0x015ba0, 0x015bb4, 0x015cb0, 0x015cbc, 0x016001,
    0x01672c, 0x016759, 0x01677d, 0x016791, 0x0167a0, 0x0167cb, 0x0167ea, 0x0167f3, 0x016801, 0x016930, 0x016939,
    0x016940, 0x016969, 0x016970, 0x016981, 0x016b40, 0x016b79, 0x016b83, 0x016b88, 0x016bfd, 0x016c01, 0x016cb8,
    0x016d01, 0x016d38, 0x016d41, 0x016d78, 0x016d81, 0x016db8, 0x016dc1, 0x016df8, 0x016e01, 0x016e38, 0x016e41,
    0x016e78, 0x016e81, 0x016eb8, 0x016ec1, 0x016ef8, 0x016f05, 0x017003, 0x017179, 0x017183, 0x017284, 0x017293,
    0x0172f0, 0x017404, 0x0174d0, 0x0174dc, 0x0177a0, 0x017804, 0x017eb0, 0x017f84, 0x017fe0, 0x01800b, 0x018024,
    0x018029, 0x01803a, 0x018043, 0x018094, 0x0180a3, 0x018104, 0x01810a, 0x018155, 0x018183, 0x018189, 0x0181b4,
    0x0181c2, 0x0181d9, 0x0181eb, 0x0181f4, 0x018200, 0x018209, 0x0184b8, 0x0184cd, 0x0184dc, 0x0184e9, 0x018503,
    0x018509, 0x0187db, 0x0187e1, 0x018800, 0x018829, 0x018980, 0x018989, 0x018c78, 0x018c84, 0x018c92, 0x018cb4,
    0x018d01, 0x018e04, 0x018f20, 0x018f81, 0x019004, 0x0190f8, 0x019102, 0x019154, 0x019242, 0x019284, 0x01928a,
    0x019304, 0x019402, 0x019454, 0x01958a, 0x019604, 0x01a001, 0x026e04, 0x027001, 0x052468, 0x052484, 0x052638,
    0x052681, 0x0527f3, 0x052801, 0x05306b, 0x053081, 0x053102, 0x053151, 0x053160, 0x053201, 0x05337d, 0x05339b,
    0x0533a5, 0x0533f3, 0x0533f9, 0x0534f5, 0x053501, 0x053732, 0x053785, 0x053793, 0x0537c0, 0x053804, 0x0538b9,
    0x053904, 0x053911, 0x053c4c, 0x053c59, 0x053e58, 0x053e81, 0x053e90, 0x053e99, 0x053ea0, 0x053ea9, 0x053ed0,
    0x053f91, 0x054015, 0x054019, 0x054035, 0x054039, 0x05405d, 0x054061, 0x05411d, 0x054144, 0x054165, 0x054168,
    0x054182, 0x0541b4, 0x0541d0, 0x054201, 0x0543a3, 0x0543c0, 0x054405, 0x054411, 0x0545a5, 0x054630, 0x054673,
    0x054682, 0x0546d0, 0x054705, 0x054791, 0x0547c3, 0x0547d9, 0x0547e3, 0x0547e9, 0x0547fd, 0x054802, 0x054851,
    0x054935, 0x054973, 0x054981, 0x054a3d, 0x054aa0, 0x054afb, 0x054b01, 0x054be8, 0x054c05, 0x054c21, 0x054d9d,
    0x054e0b, 0x054e70, 0x054e79, 0x054e82, 0x054ed0, 0x054ef3, 0x054f01, 0x054f2d, 0x054f31, 0x054f82, 0x054fd1,
    0x054ff8, 0x055001, 0x05514d, 0x0551b8, 0x055201, 0x05521d, 0x055221, 0x055265, 0x055270, 0x055282, 0x0552d0,
    0x0552e3, 0x055301, 0x0553bc, 0x0553d1, 0x0553dd, 0x0553f1, 0x055585, 0x055589, 0x055595, 0x0555a9, 0x0555bd,
    0x0555c9, 0x0555f5, 0x055601, 0x05560d, 0x055611, 0x055618, 0x0556d9, 0x0556f3, 0x055701, 0x05575d, 0x055783,
    0x055791, 0x0557ad, 0x0557b8, 0x055809, 0x055838, 0x055849, 0x055878, 0x055889, 0x0558b8, 0x055901, 0x055938,
    0x055941, 0x055978, 0x055981, 0x055adc, 0x055ae1, 0x055b54, 0x055b60, 0x055b81, 0x055f1d, 0x055f5b, 0x055f65,
    0x055f70, 0x055f82, 0x055fd0, 0x056001, 0x06bd20, 0x06bd81, 0x06be38, 0x06be59, 0x06bfe0, 0x07c801, 0x07d370,
    0x07d381, 0x07d6d0, 0x07d801, 0x07d838, 0x07d899, 0x07d8c0, 0x07d8e9, 0x07d8f5, 0x07d8f9, 0x07d94c, 0x07d951,
    0x07d9b8, 0x07d9c1, 0x07d9e8, 0x07d9f1, 0x07d9f8, 0x07da01, 0x07da10, 0x07da19, 0x07da28, 0x07da31, 0x07dd94,
    0x07de18, 0x07de99, 0x07e9f3, 0x07ea04, 0x07ea81, 0x07ec80, 0x07ec91, 0x07ee40, 0x07ee7c, 0x07ee80, 0x07ef81,
    0x07efe4, 0x07f005, 0x07f083, 0x07f0d0, 0x07f105, 0x07f183, 0x07f298, 0x07f2a3, 0x07f314, 0x07f31b, 0x07f324,
    0x07f338, 0x07f343, 0x07f34c, 0x07f353, 0x07f360, 0x07f381, 0x07f3a8, 0x07f3b1, 0x07f7e8, 0x07f80b, 0x07f824,
    0x07f82b, 0x07f85c, 0x07f863, 0x07f882, 0x07f8d3, 0x07f8e4, 0x07f8fb, 0x07f909, 0x07f9db, 0x07f9f4, 0x07f9fb,
    0x07fa04, 0x07fa09, 0x07fadb, 0x07fae4, 0x07faeb, 0x07faf4, 0x07fafb, 0x07fb31, 0x07fdf8, 0x07fe11, 0x07fe40,
    0x07fe51, 0x07fe80, 0x07fe91, 0x07fec0, 0x07fed1, 0x07fee8, 0x07ff04, 0x07ff38, 0x07ff44, 0x07ff78, 0x07ffe4,
    0x07fff0, 0x080001, 0x080060, 0x080069, 0x080138, 0x080141, 0x0801d8, 0x0801e1, 0x0801f0, 0x0801f9, 0x080270,
    0x080281, 0x0802f0, 0x080401, 0x0807d8, 0x080803, 0x080818, 0x08083a, 0x0809a0, 0x0809bc, 0x080a02, 0x080bcc,
    0x080c52, 0x080c64, 0x080c78, 0x080c84, 0x080ce8, 0x080d04, 0x080d08, 0x080e84, 0x080fed, 0x080ff0, 0x081401,
    0x0814e8, 0x081501, 0x081688, 0x081705, 0x08170a, 0x0817e0, 0x081801, 0x081902, 0x081920, 0x081969, 0x081a0a,
    0x081a11, 0x081a52, 0x081a58, 0x081a81, 0x081bb5, 0x081bd8, 0x081c01, 0x081cf0, 0x081cfb, 0x081d01, 0x081e20,
    0x081e41, 0x081e83, 0x081e8a, 0x081eb0, 0x082001, 0x0824f0, 0x082502, 0x082550, 0x082581, 0x0826a0, 0x0826c1,
    0x0827e0, 0x082801, 0x082940, 0x082981, 0x082b20, 0x082b7b, 0x082b81, 0x082bd8, 0x082be1, 0x082c58, 0x082c61,
    0x082c98, 0x082ca1, 0x082cb0, 0x082cb9, 0x082d10, 0x082d19, 0x082d90, 0x082d99, 0x082dd0, 0x082dd9, 0x082de8,
    0x083001, 0x0839b8, 0x083a01, 0x083ab0, 0x083b01, 0x083b40, 0x083c01, 0x083c30, 0x083c39, 0x083d88, 0x083d91,
    0x083dd8, 0x084001, 0x084030, 0x084041, 0x084048, 0x084051, 0x0841b0, 0x0841b9, 0x0841c8, 0x0841e1, 0x0841e8,
    0x0841f9, 0x0842b0, 0x0842bb, 0x0842c2, 0x084301, 0x0843bc, 0x0843ca, 0x084401, 0x0844f8, 0x08453a, 0x084580,
    0x084701, 0x084798, 0x0847a1, 0x0847b0, 0x0847da, 0x084801, 0x0848b2, 0x0848e0, 0x0848fb, 0x084901, 0x0849d0,
    0x0849fb, 0x084a00, 0x084c01, 0x084dc0, 0x084de2, 0x084df1, 0x084e02, 0x084e80, 0x084e92, 0x085001, 0x08500d,
    0x085020, 0x08502d, 0x085038, 0x085065, 0x085081, 0x0850a0, 0x0850a9, 0x0850c0, 0x0850c9, 0x0851b0, 0x0851c5,
    0x0851d8, 0x0851fd, 0x085202, 0x085248, 0x085283, 0x0852c8, 0x085301, 0x0853ea, 0x0853fb, 0x085401, 0x0854ea,
    0x085500, 0x085601, 0x085644, 0x085649, 0x08572d, 0x085738, 0x08575a, 0x085783, 0x0857b8, 0x085801, 0x0859b0,
    0x0859cb, 0x085a01, 0x085ab0, 0x085ac2, 0x085b01, 0x085b98, 0x085bc2, 0x085c01, 0x085c90, 0x085ccb, 0x085ce8,
    0x085d4a, 0x085d80, 0x086001, 0x086248, 0x086401, 0x086598, 0x086601, 0x086798, 0x0867d2, 0x086801, 0x086925,
    0x086940, 0x086982, 0x0869d0, 0x087302, 0x0873f8, 0x087401, 0x087550, 0x08755d, 0x08756b, 0x087570, 0x087581,
    0x087590, 0x087801, 0x0878ea, 0x087939, 0x087940, 0x087981, 0x087a35, 0x087a8a, 0x087aab, 0x087ad0, 0x087b81,
    0x087c15, 0x087c33, 0x087c50, 0x087d81, 0x087e2a, 0x087e60, 0x087f01, 0x087fb8, 0x088005, 0x088019, 0x0881c5,
    0x08823b, 0x088270, 0x088292, 0x088385, 0x088389, 0x08839d, 0x0883a9, 0x0883b0, 0x0883fd, 0x088419, 0x088585,
    0x0885db, 0x0885e8, 0x0885f3, 0x088615, 0x088618, 0x088681, 0x088748, 0x088782, 0x0887d0, 0x088805, 0x088819,
    0x08893d, 0x0889a8, 0x0889b2, 0x088a03, 0x088a21, 0x088a2d, 0x088a39, 0x088a40, 0x088a81, 0x088b9d, 0x088ba3,
    0x088bb1, 0x088bb8, 0x088c05, 0x088c19, 0x088d9d, 0x088e09, 0x088e2b, 0x088e4d, 0x088e6b, 0x088e75, 0x088e82,
    0x088ed1, 0x088edb, 0x088ee1, 0x088eeb, 0x088f00, 0x088f0a, 0x088fa8, 0x089001, 0x089090, 0x089099, 0x089165,
    0x0891c3, 0x0891f5, 0x0891f8, 0x089401, 0x089438, 0x089441, 0x089448, 0x089451, 0x089470, 0x089479, 0x0894f0,
    0x0894f9, 0x08954b, 0x089550, 0x089581, 0x0896fd, 0x089758, 0x089782, 0x0897d0, 0x089805, 0x089820, 0x089829,
    0x089868, 0x089879, 0x089888, 0x089899, 0x089948, 0x089951, 0x089988, 0x089991, 0x0899a0, 0x0899a9, 0x0899d0,
    0x0899dd, 0x0899e9, 0x0899f5, 0x089a28, 0x089a3d, 0x089a48, 0x089a5d, 0x089a70, 0x089a81, 0x089a88, 0x089abd,
    0x089ac0, 0x089ae9, 0x089b15, 0x089b20, 0x089b35, 0x089b68, 0x089b85, 0x089ba8, 0x08a001, 0x08a1ad, 0x08a239,
    0x08a25b, 0x08a282, 0x08a2d3, 0x08a2e0, 0x08a2eb, 0x08a2f5, 0x08a2f9, 0x08a310, 0x08a401, 0x08a585, 0x08a621,
    0x08a633, 0x08a639, 0x08a640, 0x08a682, 0x08a6d0, 0x08ac01, 0x08ad7d, 0x08adb0, 0x08adc5, 0x08ae0b, 0x08aec1,
    0x08aee5, 0x08aef0, 0x08b001, 0x08b185, 0x08b20b, 0x08b221, 0x08b228, 0x08b282, 0x08b2d0, 0x08b303, 0x08b368,
    0x08b401, 0x08b55d, 0x08b5c1, 0x08b5cb, 0x08b5d0, 0x08b602, 0x08b650, 0x08b801, 0x08b8d8, 0x08b8ed, 0x08b960,
    0x08b982, 0x08b9e3, 0x08b9fc, 0x08ba01, 0x08ba38, 0x08c001, 0x08c165, 0x08c1db, 0x08c1e0, 0x08c501, 0x08c702,
    0x08c798, 0x08c7f9, 0x08c838, 0x08c849, 0x08c850, 0x08c861, 0x08c8a0, 0x08c8a9, 0x08c8b8, 0x08c8c1, 0x08c985,
    0x08c9b0, 0x08c9bd, 0x08c9c8, 0x08c9dd, 0x08c9f9, 0x08ca05, 0x08ca09, 0x08ca15, 0x08ca23, 0x08ca38, 0x08ca82,
    0x08cad0, 0x08cd01, 0x08cd40, 0x08cd51, 0x08ce8d, 0x08cec0, 0x08ced5, 0x08cf09, 0x08cf13, 0x08cf19, 0x08cf25,
    0x08cf28, 0x08d001, 0x08d00d, 0x08d059, 0x08d19d, 0x08d1d1, 0x08d1dd, 0x08d1fb, 0x08d23d, 0x08d240, 0x08d281,
    0x08d28d, 0x08d2e1, 0x08d455, 0x08d4d3, 0x08d4e9, 0x08d4f3, 0x08d518, 0x08d581, 0x08d7c8, 0x08e001, 0x08e048,
    0x08e051, 0x08e17d, 0x08e1b8, 0x08e1c5, 0x08e201, 0x08e20b, 0x08e230, 0x08e282, 0x08e368, 0x08e383, 0x08e391,
    0x08e480, 0x08e495, 0x08e540, 0x08e54d, 0x08e5b8, 0x08e801, 0x08e838, 0x08e841, 0x08e850, 0x08e859, 0x08e98d,
    0x08e9b8, 0x08e9d5, 0x08e9d8, 0x08e9e5, 0x08e9f0, 0x08e9fd, 0x08ea31, 0x08ea3d, 0x08ea40, 0x08ea82, 0x08ead0,
    0x08eb01, 0x08eb30, 0x08eb39, 0x08eb48, 0x08eb51, 0x08ec55, 0x08ec78, 0x08ec85, 0x08ec90, 0x08ec9d, 0x08ecc1,
    0x08ecc8, 0x08ed02, 0x08ed50, 0x08f701, 0x08f79d, 0x08f7bb, 0x08f7c8, 0x08fd81, 0x08fd88, 0x08fe02, 0x08feac,
    0x08ff90, 0x08fffb, 0x090001, 0x091cd0, 0x092002, 0x092378, 0x092383, 0x0923a8, 0x092401, 0x092a20, 0x097c81,
    0x097f8b, 0x097f98, 0x098001, 0x09a178, 0x0a2001, 0x0a3238, 0x0b4001, 0x0b51c8, 0x0b5201, 0x0b52f8, 0x0b5302,
    0x0b5350, 0x0b5373, 0x0b5381, 0x0b55f8, 0x0b5602, 0x0b5650, 0x0b5681, 0x0b5770, 0x0b5785, 0x0b57ab, 0x0b57b0,
    0x0b5801, 0x0b5985, 0x0b59bb, 0x0b59e4, 0x0b5a01, 0x0b5a23, 0x0b5a2c, 0x0b5a30, 0x0b5a82, 0x0b5ad0, 0x0b5ada,
    0x0b5b10, 0x0b5b19, 0x0b5bc0, 0x0b5be9, 0x0b5c80, 0x0b7201, 0x0b7402, 0x0b74bb, 0x0b74d8, 0x0b7801, 0x0b7a58,
    0x0b7a7d, 0x0b7a81, 0x0b7a8d, 0x0b7c40, 0x0b7c7d, 0x0b7c99, 0x0b7d00, 0x0b7f01, 0x0b7f13, 0x0b7f19, 0x0b7f25,
    0x0b7f28, 0x0b7f85, 0x0b7f90, 0x0b8001, 0x0c3fc0, 0x0c4001, 0x0c66b0, 0x0c6801, 0x0c6848, 0x0d7f81, 0x0d7fa0,
    0x0d7fa9, 0x0d7fe0, 0x0d7fe9, 0x0d7ff8, 0x0d8001, 0x0d8918, 0x0d8a81, 0x0d8a98, 0x0d8b21, 0x0d8b40, 0x0d8b81,
    0x0d97e0, 0x0de001, 0x0de358, 0x0de381, 0x0de3e8, 0x0de401, 0x0de448, 0x0de481, 0x0de4d0, 0x0de4e4, 0x0de4ed,
    0x0de4fb, 0x0de500, 0x0e7805, 0x0e7970, 0x0e7985, 0x0e7a38, 0x0e7a84, 0x0e7e20, 0x0e8004, 0x0e87b0, 0x0e8804,
    0x0e8938, 0x0e894c, 0x0e8b2d, 0x0e8b54, 0x0e8b6d, 0x0e8b98, 0x0e8bdd, 0x0e8c1c, 0x0e8c2d, 0x0e8c64, 0x0e8d55,
    0x0e8d74, 0x0e8f58, 0x0e9004, 0x0e9215, 0x0e922c, 0x0e9230, 0x0e9702, 0x0e97a0, 0x0e9804, 0x0e9ab8, 0x0e9b02,
    0x0e9bc8, 0x0ea001, 0x0ea2a8, 0x0ea2b1, 0x0ea4e8, 0x0ea4f1, 0x0ea500, 0x0ea511, 0x0ea518, 0x0ea529, 0x0ea538,
    0x0ea549, 0x0ea568, 0x0ea571, 0x0ea5d0, 0x0ea5d9, 0x0ea5e0, 0x0ea5e9, 0x0ea620, 0x0ea629, 0x0ea830, 0x0ea839,
    0x0ea858, 0x0ea869, 0x0ea8a8, 0x0ea8b1, 0x0ea8e8, 0x0ea8f1, 0x0ea9d0, 0x0ea9d9, 0x0ea9f8, 0x0eaa01, 0x0eaa28,
    0x0eaa31, 0x0eaa38, 0x0eaa51, 0x0eaa88, 0x0eaa91, 0x0eb530, 0x0eb541, 0x0eb60c, 0x0eb611, 0x0eb6dc, 0x0eb6e1,
    0x0eb7dc, 0x0eb7e1, 0x0eb8ac, 0x0eb8b1, 0x0eb9ac, 0x0eb9b1, 0x0eba7c, 0x0eba81, 0x0ebb7c, 0x0ebb81, 0x0ebc4c,
    0x0ebc51, 0x0ebd4c, 0x0ebd51, 0x0ebe1c, 0x0ebe21, 0x0ebe60, 0x0ebe72, 0x0ec004, 0x0ed005, 0x0ed1bc, 0x0ed1dd,
    0x0ed36c, 0x0ed3ad, 0x0ed3b4, 0x0ed425, 0x0ed42c, 0x0ed43b, 0x0ed460, 0x0ed4dd, 0x0ed500, 0x0ed50d, 0x0ed580,
    0x0ef801, 0x0ef8f8, 0x0f0005, 0x0f0038, 0x0f0045, 0x0f00c8, 0x0f00dd, 0x0f0110, 0x0f011d, 0x0f0128, 0x0f0135,
    0x0f0158, 0x0f0801, 0x0f0968, 0x0f0985, 0x0f09b9, 0x0f09f0, 0x0f0a02, 0x0f0a50, 0x0f0a71, 0x0f0a7c, 0x0f0a80,
    0x0f1481, 0x0f1575, 0x0f1578, 0x0f1601, 0x0f1765, 0x0f1782, 0x0f17d0, 0x0f17fc, 0x0f1800, 0x0f3f01, 0x0f3f38,
    0x0f3f41, 0x0f3f60, 0x0f3f69, 0x0f3f78, 0x0f3f81, 0x0f3ff8, 0x0f4001, 0x0f4628, 0x0f463a, 0x0f4685, 0x0f46b8,
    0x0f4801, 0x0f4a25, 0x0f4a59, 0x0f4a60, 0x0f4a82, 0x0f4ad0, 0x0f4af3, 0x0f4b00, 0x0f638a, 0x0f6564, 0x0f656a,
    0x0f6584, 0x0f658a, 0x0f65a8, 0x0f680a, 0x0f6974, 0x0f697a, 0x0f69f0, 0x0f7001, 0x0f7020, 0x0f7029, 0x0f7100,
    0x0f7109, 0x0f7118, 0x0f7121, 0x0f7128, 0x0f7139, 0x0f7140, 0x0f7149, 0x0f7198, 0x0f71a1, 0x0f71c0, 0x0f71c9,
    0x0f71d0, 0x0f71d9, 0x0f71e0, 0x0f7211, 0x0f7218, 0x0f7239, 0x0f7240, 0x0f7249, 0x0f7250, 0x0f7259, 0x0f7260,
    0x0f7269, 0x0f7280, 0x0f7289, 0x0f7298, 0x0f72a1, 0x0f72a8, 0x0f72b9, 0x0f72c0, 0x0f72c9, 0x0f72d0, 0x0f72d9,
    0x0f72e0, 0x0f72e9, 0x0f72f0, 0x0f72f9, 0x0f7300, 0x0f7309, 0x0f7318, 0x0f7321, 0x0f7328, 0x0f7339, 0x0f7358,
    0x0f7361, 0x0f7398, 0x0f73a1, 0x0f73c0, 0x0f73c9, 0x0f73e8, 0x0f73f1, 0x0f73f8, 0x0f7401, 0x0f7450, 0x0f7459,
    0x0f74e0, 0x0f7509, 0x0f7520, 0x0f7529, 0x0f7550, 0x0f7559, 0x0f75e0, 0x0f7784, 0x0f7790, 0x0f8004, 0x0f8160,
    0x0f8184, 0x0f84a0, 0x0f8504, 0x0f8578, 0x0f858c, 0x0f8600, 0x0f860c, 0x0f8680, 0x0f868c, 0x0f87b0, 0x0f8802,
    0x0f886c, 0x0f8d70, 0x0f8f34, 0x0f9018, 0x0f9084, 0x0f91e0, 0x0f9204, 0x0f9248, 0x0f9284, 0x0f9290, 0x0f9304,
    0x0f9330, 0x0f9804, 0x0fb6c0, 0x0fb6ec, 0x0fb768, 0x0fb784, 0x0fb7e8, 0x0fb804, 0x0fbba0, 0x0fbc04, 0x0fbec8,
    0x0fbf04, 0x0fbf60, 0x0fbf84, 0x0fbf88, 0x0fc004, 0x0fc060, 0x0fc084, 0x0fc240, 0x0fc284, 0x0fc2d0, 0x0fc304,
    0x0fc440, 0x0fc484, 0x0fc570, 0x0fc584, 0x0fc590, 0x0fc804, 0x0fd2a0, 0x0fd304, 0x0fd370, 0x0fd384, 0x0fd3a8,
    0x0fd3c4, 0x0fd3e8, 0x0fd404, 0x0fd438, 0x0fd484, 0x0fd568, 0x0fd584, 0x0fd5d8, 0x0fd604, 0x0fd630, 0x0fd684,
    0x0fd6d0, 0x0fd704, 0x0fd740, 0x0fd784, 0x0fd7b8, 0x0fd804, 0x0fdc98, 0x0fdca4, 0x0fde58, 0x0fdf82, 0x0fdfd0,
    0x100001, 0x153700, 0x153801, 0x15b9c8, 0x15ba01, 0x15c0f0, 0x15c101, 0x167510, 0x167581, 0x175f08, 0x17c001,
    0x17d0f0, 0x180001, 0x189a58, 0x700805, 0x700f80,
};
static const uint32_t UCD_DSLETTER[84][2] = {
    {0x00041, 0x0005a}, {0x00061, 0x0007a}, {0x000b5, 0x000b5}, {0x000c0, 0x000d6}, {0x000d8, 0x000f6},
    {0x000f8, 0x001ba}, {0x001bc, 0x001bf}, {0x001c4, 0x00293}, {0x00295, 0x002af}, {0x00370, 0x00373},
    {0x00376, 0x00377}, {0x0037b, 0x0037d}, {0x0037f, 0x0037f}, {0x00386, 0x00386}, {0x00388, 0x0038a},
    {0x0038c, 0x0038c}, {0x0038e, 0x003a1}, {0x003a3, 0x003f5}, {0x003f7, 0x00481}, {0x0048a, 0x0052f},
    {0x00531, 0x00556}, {0x010a0, 0x010c5}, {0x013a0, 0x013f5}, {0x013f8, 0x013fd}, {0x01c90, 0x01cba},
    {0x01cbd, 0x01cbf}, {0x01d00, 0x01d2b}, {0x01d6b, 0x01d77}, {0x01d79, 0x01d9a}, {0x01e00, 0x01f15},
    {0x01f18, 0x01f1d}, {0x01f20, 0x01f45}, {0x01f48, 0x01f4d}, {0x01f50, 0x01f57}, {0x01f59, 0x01f59},
    {0x01f5b, 0x01f5b}, {0x01f5d, 0x01f5d}, {0x01f5f, 0x01f7d}, {0x01f80, 0x01fb4}, {0x01fb6, 0x01fbc},
    {0x01fbe, 0x01fbe}, {0x01fc2, 0x01fc4}, {0x01fc6, 0x01fcc}, {0x01fd0, 0x01fd3}, {0x01fd6, 0x01fdb},
    {0x01fe0, 0x01fec}, {0x01ff2, 0x01ff4}, {0x01ff6, 0x01ffc}, {0x02102, 0x02102}, {0x02107, 0x02107},
    {0x0210a, 0x02113}, {0x02115, 0x02115}, {0x02119, 0x0211d}, {0x02124, 0x02124}, {0x02126, 0x02126},
    {0x02128, 0x02128}, {0x0212a, 0x0212d}, {0x0212f, 0x02134}, {0x02139, 0x02139}, {0x0213c, 0x0213f},
    {0x02145, 0x02149}, {0x0214e, 0x0214e}, {0x02183, 0x02184}, {0x02c00, 0x02c7b}, {0x02c7e, 0x02ce4},
    {0x02ceb, 0x02cee}, {0x02cf2, 0x02cf3}, {0x0a640, 0x0a66d}, {0x0a680, 0x0a69b}, {0x0a722, 0x0a76f},
    {0x0a771, 0x0a787}, {0x0a78b, 0x0a78e}, {0x0ab70, 0x0abbf}, {0x0fb00, 0x0fb06}, {0x0fb13, 0x0fb17},
    {0x0ff21, 0x0ff3a}, {0x0ff41, 0x0ff5a}, {0x10400, 0x1044f}, {0x104b0, 0x104d3}, {0x104d8, 0x104fb},
    {0x10c80, 0x10cb2}, {0x10cc0, 0x10cf2}, {0x118a0, 0x118df}, {0x1e900, 0x1e943},
};
/* END gen_unicode */

enum { UC_L = 1, UC_N = 2, UC_P = 4, UC_S = 8, UC_M = 16, UC_WS = 32 };

static int ucd_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static unsigned ucd_flags(uint32_t c) {
    static const uint8_t BITS[8] = {0, UC_L, UC_N, UC_P, UC_S, UC_M, 0, 0};
    unsigned f = 0;
    if (c < 0x110000) {
        size_t lo = 0, hi = sizeof UCD_CLASS / sizeof UCD_CLASS[0];
        while (hi - lo > 1) { /* the last range starting at or before c */
            size_t mid = lo + (hi - lo) / 2;
            if ((UCD_CLASS[mid] >> 3) <= c) lo = mid;
            else hi = mid;
        }
        f = BITS[UCD_CLASS[lo] & 7];
    }
    return ucd_space(c) ? f | UC_WS : f;
}

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid][0]) hi = mid;
        else if (c > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* One code point of s[0, n), decoded as llama.cpp does: only the structure
   is checked (lead byte, continuation bytes, enough bytes), so overlong
   forms and surrogates pass; a byte that starts no such sequence is one
   U+FFFD of length 1. */
static uint32_t utf8_cpt(const unsigned char *s, size_t n, size_t *len) {
    unsigned b = s[0];
    size_t k = b < 0x80 ? 1 : b < 0xc0 ? 0 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : b < 0xf8 ? 4 : 0;
    uint32_t c = k == 2 ? (b & 0x1f) : k == 3 ? (b & 0x0f) : (b & 0x07);
    *len = 1;
    if (k == 1) return b;
    if (k == 0 || k > n) return 0xfffd;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0xfffd;
        c = (c << 6) | (s[i] & 0x3f);
    }
    *len = k;
    return c;
}

/* --- byte-level BPE (GPT-2 style) ----------------------------------------------- */

/* GPT-2's byte-to-unicode map: printable Latin-1 bytes stand for
   themselves, the other 68 (controls, space, 0x7f-0xa0, 0xad) for U+0100..
   U+0143 in byte order, so that every byte is a visible character. */
static uint32_t bpe_byte_cpt(unsigned b) {
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b <= 0xa0) return 0x121 + (b - 0x7f);
    return 0x143; /* 0xad */
}

static int bpe_cpt_byte(uint32_t c) {
    if ((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff)) return (int)c;
    if (c >= 0x100 && c <= 0x120) return (int)(c - 0x100);
    if (c >= 0x121 && c <= 0x142) return (int)(c - 0x121 + 0x7f);
    return c == 0x143 ? 0xad : -1;
}

/*
 * Pre-tokenizers. llama.cpp runs a list of regular expressions per family,
 * each one over every fragment the previous one left (matches and the gaps
 * between them both become fragments). slm does the same with one matcher
 * function per expression: it gets the fragment's code points and flags,
 * a position p and the fragment end e, and returns the length of the match
 * at p (0: none; *skip then says how far to move on, normally 1). The
 * matchers follow the leftmost-alternative, backtracking semantics of the
 * expressions exactly; the comments give the expression.
 */
typedef struct pre_text {
    const uint32_t *cp; /* code points */
    const uint8_t *fl;  /* UC_* flags */
} pre_text;

typedef size_t (*pre_fn)(const pre_text *t, size_t p, size_t e, size_t *skip);

static int is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
static int pt_is(const pre_text *t, size_t i, unsigned f) { return (t->fl[i] & f) != 0; }
/* [^\s\p{L}\p{N}] */
static int pt_other(const pre_text *t, size_t i) { return !(t->fl[i] & (UC_WS | UC_L | UC_N)); }
static size_t pt_run(const pre_text *t, size_t p, size_t e, unsigned f) {
    size_t r = p;
    while (r < e && (t->fl[r] & f)) r++;
    return r;
}
static size_t pt_run_other(const pre_text *t, size_t p, size_t e) {
    size_t r = p;
    while (r < e && pt_other(t, r)) r++;
    return r;
}

/* 's|'t|'re|'ve|'m|'ll|'d, case-insensitive if icase ((?i:...) or [sS]) */
static size_t m_contraction(const pre_text *t, size_t p, size_t e, int icase) {
    if (p + 1 >= e || t->cp[p] != '\'') return 0;
    uint32_t a = t->cp[p + 1], b = p + 2 < e ? t->cp[p + 2] : 0;
    if (icase) {
        if (a >= 'A' && a <= 'Z') a += 32;
        if (b >= 'A' && b <= 'Z') b += 32;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* \s+(?!\S)|\s+ at a white-space run starting at p: all of it at the end of
   the fragment, else all but the last (which goes with the next word). */
static size_t m_space_run(const pre_text *t, size_t p, size_t e) {
    size_t r = pt_run(t, p, e, UC_WS);
    return r - p > 1 && r < e ? r - p - 1 : r - p;
}

/* gpt2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
   (a lone white space before a word is left unmatched by the expression;
   it becomes a fragment of its own either way) */
static size_t m_gpt2(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    size_t k = m_contraction(t, p, e, 0);
    if (k) return k;
    size_t q = p + (t->cp[p] == ' ' && p + 1 < e);
    if (pt_is(t, q, UC_L)) return pt_run(t, q, e, UC_L) - p;
    if (pt_is(t, q, UC_N)) return pt_run(t, q, e, UC_N) - p;
    if (pt_other(t, q)) return pt_run_other(t, q, e) - p;
    return m_space_run(t, p, e);
}

/* The llama3 family of patterns:
   llama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
   qwen2   the same with \p{N} (single digits)
   gpt-4o  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|...)?|
           [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|...)?|
           \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
   tekken  gpt-4o without the contractions, with \p{N}
   qwen35  qwen2 with combining marks in words and out of punctuation runs:
           ...|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|...
   For gpt-4o and tekken slm follows llama.cpp's rewriting of the classes:
   "upper" = a letter that is not a-z, "lower" = a letter that is not A-Z
   (no marks), which is what llama.cpp's tokens are made with. */
typedef struct pre_opts {
    int cased;        /* gpt-4o style words (upper* lower+ | upper+ lower*) */
    int contractions; /* 0 none, 1 before words (llama3), 2 after words (gpt-4o) */
    size_t max_digits;
    int slash;        /* [\r\n/]* after punctuation instead of [\r\n]* */
    int marks;        /* qwen35: \p{M} counts as a letter in words and runs */
    int punct_nl;     /* [\r\n]* after punctuation (all but seed-coder) */
    int no_han;       /* kimi-k2: Han characters are no word characters */
} pre_opts;

/* \p{Han} as llama.cpp's unicode_cpt_is_han (kimi-k2) */
static int is_han(uint32_t c) {
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2a6df) ||
           (c >= 0x2a700 && c <= 0x2ebef) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}
static int pt_word(const pre_text *t, size_t i, unsigned w, int no_han) {
    return (t->fl[i] & w) && !(no_han && is_han(t->cp[i]));
}

static int pt_upper(const pre_text *t, size_t i) { return (t->fl[i] & UC_L) && !(t->cp[i] >= 'a' && t->cp[i] <= 'z'); }
static int pt_lower(const pre_text *t, size_t i) { return (t->fl[i] & UC_L) && !(t->cp[i] >= 'A' && t->cp[i] <= 'Z'); }

static size_t m_llama3_like(const pre_text *t, size_t p, size_t e, const pre_opts *o) {
    uint32_t c = t->cp[p];
    unsigned f = t->fl[p];
    const unsigned W = UC_L | (o->marks ? UC_M : 0u); /* word characters */
    size_t k = o->contractions == 1 ? m_contraction(t, p, e, 1) : 0;
    if (k) return k;
    /* a word, with one optional leading character that is no CR, LF, letter or number */
    size_t s = SIZE_MAX;
    if (pt_word(t, p, W, o->no_han)) s = p;
    else if (!is_crlf(c) && !(f & (UC_N | (o->no_han ? UC_L : 0u))) && p + 1 < e && pt_word(t, p + 1, W, o->no_han))
        s = p + 1;
    if (s != SIZE_MAX) {
        size_t end = 0;
        if (!o->cased) {
            for (end = s; end < e && pt_word(t, end, W, o->no_han);) end++;
        } else {
            size_t u = s;
            while (u < e && pt_upper(t, u)) u++;
            /* upper* lower+: give back uppers until a lower can follow */
            for (size_t j = u + 1; j-- > s && !end;)
                if (j < e && pt_lower(t, j)) {
                    end = j;
                    while (end < e && pt_lower(t, end)) end++;
                }
            /* upper+ lower* */
            if (!end && u > s) {
                end = u;
                while (end < e && pt_lower(t, end)) end++;
            }
        }
        if (end) {
            if (o->contractions == 2) end += m_contraction(t, end, e, 1);
            return end - p;
        }
    }
    if (f & UC_N) {
        size_t r = p;
        while (r < e && r - p < o->max_digits && pt_is(t, r, UC_N)) r++;
        return r - p;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* (qwen35: and no \p{M}) */
    const unsigned X = UC_WS | UC_L | UC_N | (o->marks ? UC_M : 0u);
    size_t q = c == ' ' && p + 1 < e && !(t->fl[p + 1] & X) ? p + 1 : p;
    if (!(t->fl[q] & X)) {
        size_t r = q;
        while (r < e && !(t->fl[r] & X)) r++;
        while (o->punct_nl && r < e && (is_crlf(t->cp[r]) || (o->slash && t->cp[r] == '/'))) r++;
        return r - p;
    }
    /* \s*[\r\n]+ : up to the last CR/LF of the white-space run */
    size_t r = p, nl = 0;
    for (; r < e && pt_is(t, r, UC_WS); r++)
        if (is_crlf(t->cp[r])) nl = r + 1;
    if (nl) return nl - p;
    return m_space_run(t, p, e);
}

static size_t m_llama3(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {0, 1, 3, 0, 0, 1, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}
static size_t m_qwen2(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {0, 1, 1, 0, 0, 1, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}
static size_t m_qwen35(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {0, 1, 1, 0, 1, 1, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}
static size_t m_gpt4o(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {1, 2, 3, 1, 0, 1, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}
static size_t m_tekken(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {1, 0, 1, 1, 0, 1, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}

/* \p{N} */
static size_t m_digit(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)e, (void)skip;
    return pt_is(t, p, UC_N) ? 1 : 0;
}
/* \p{N}+ */
static size_t m_digits(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    return pt_run(t, p, e, UC_N) - p;
}
/* [0-9][0-9][0-9] */
static size_t m_ascii3(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    for (size_t i = 0; i < 3; i++)
        if (p + i >= e || t->cp[p + i] < '0' || t->cp[p + i] > '9') return 0;
    return 3;
}
/* [\p{P}\$\+<=>\^~\|]+ (default) and [\p{P}\$\+<=>\^~\|`]+ (falcon) */
static size_t punct_run(const pre_text *t, size_t p, size_t e, const char *extra) {
    size_t r = p;
    while (r < e && (pt_is(t, r, UC_P) || (t->cp[r] < 128 && t->cp[r] && strchr(extra, (int)t->cp[r])))) r++;
    return r - p;
}
static size_t m_punct_default(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    return punct_run(t, p, e, "$+<=>^~|");
}
static size_t m_punct_falcon(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    return punct_run(t, p, e, "$+<=>^~|`");
}
/* [\r\n] */
static size_t m_crlf(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)e, (void)skip;
    return is_crlf(t->cp[p]) ? 1 : 0;
}
/* \s+$ : a white-space run that reaches the end of the fragment */
static size_t m_space_end(const pre_text *t, size_t p, size_t e, size_t *skip) {
    size_t r = pt_run(t, p, e, UC_WS);
    if (r == e) return r - p;
    if (r > p) *skip = r - p; /* no later start inside this run can reach the end either */
    return 0;
}

/* deepseek's classes */
static int ds_letter(uint32_t c) { return in_ranges(UCD_DSLETTER, sizeof UCD_DSLETTER / sizeof UCD_DSLETTER[0], c); }
/* [!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002] */
static int ds_punct(uint32_t c) {
    return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x7e) || (c >= 0xff01 && c <= 0xff0f) ||
           (c >= 0xff1a && c <= 0xff5e) || (c >= 0x2018 && c <= 0x201f) || (c >= 0x3000 && c <= 0x3002);
}
/* [\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff] */
static int ds_cjk(uint32_t c) { return (c >= 0x800 && c <= 0x9fa5) || (c >= 0xac00 && c <= 0xd7ff); }

/* The code point an expression with literal classes sees: llama.cpp runs
   expressions without \p{..} on the code points with every non-ASCII white
   space replaced by U+000B, so U+3000 (in deepseek's punctuation class) and
   U+2000-U+200A, U+2028, U+2029, U+202F, U+205F (in its [\u0800-\u4e00])
   never match those classes; they are white space only. */
static uint32_t pt_lit(const pre_text *t, size_t i) {
    return t->cp[i] >= 0x80 && (t->fl[i] & UC_WS) ? 0x0b : t->cp[i];
}

/* \s?C+ for a class C given by `in` (code point test) or by flags `f` */
static size_t space_opt_run(const pre_text *t, size_t p, size_t e, int (*in)(uint32_t), unsigned f) {
#define IN_C(i) (in ? in(pt_lit(t, i)) : pt_is(t, i, f))
    size_t q = p;
    if (pt_is(t, p, UC_WS) && p + 1 < e && IN_C(p + 1)) q = p + 1;
    else if (!IN_C(p)) return 0;
    while (q < e && IN_C(q)) q++;
    return q - p;
#undef IN_C
}
static size_t m_ds_letters(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    return space_opt_run(t, p, e, ds_letter, 0);
}
static size_t m_ds_punct(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    return space_opt_run(t, p, e, ds_punct, 0);
}
static size_t m_ds_cjk(const pre_text *t, size_t p, size_t e, size_t *skip) {
    size_t r = p;
    (void)skip;
    while (r < e && ds_cjk(pt_lit(t, r))) r++;
    return r - p;
}
/* \s?\p{L}+ and \s?\p{P}+ */
static size_t m_space_letters(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    return space_opt_run(t, p, e, NULL, UC_L);
}
static size_t m_space_punct(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    return space_opt_run(t, p, e, NULL, UC_P);
}

/* \p{N}{1,3} */
static size_t m_num3(const pre_text *t, size_t p, size_t e, size_t *skip) {
    size_t r = p;
    (void)skip;
    while (r < e && r - p < 3 && pt_is(t, r, UC_N)) r++;
    return r - p;
}

/* \s*[\r\n]+|\s+(?!\S)|\s+ (the white-space tail of the llama3-like patterns) */
static size_t m_space_tail(const pre_text *t, size_t p, size_t e) {
    size_t r = p, nl = 0;
    for (; r < e && pt_is(t, r, UC_WS); r++)
        if (is_crlf(t->cp[r])) nl = r + 1;
    return nl ? nl - p : m_space_run(t, p, e);
}

/* deepseek-v3 (also hunyuan-dense, joyai-llm, hy_v4), after \p{N}{1,3} and
   [\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+ :
   [!-/:-@\[-`{-~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static int ascii_punct(uint32_t c) { return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e); }
static int ascii_alpha(uint32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static size_t m_ds3_kana(const pre_text *t, size_t p, size_t e, size_t *skip) {
    size_t r = p;
    (void)skip;
    for (; r < e; r++) {
        uint32_t c = t->cp[r];
        if (!((c >= 0x4e00 && c <= 0x9fa5) || (c >= 0x3040 && c <= 0x30ff))) break;
    }
    return r - p;
}
static size_t m_ds3(const pre_text *t, size_t p, size_t e, size_t *skip) {
    uint32_t c = t->cp[p];
    unsigned f = t->fl[p];
    size_t r;
    (void)skip;
    if (ascii_punct(c) && p + 1 < e && ascii_alpha(t->cp[p + 1])) {
        for (r = p + 1; r < e && ascii_alpha(t->cp[r]);) r++;
        return r - p;
    }
    size_t s = SIZE_MAX;
    if (!is_crlf(c) && !(f & (UC_L | UC_P | UC_S)) && p + 1 < e && pt_is(t, p + 1, UC_L | UC_M)) s = p + 1;
    else if (f & (UC_L | UC_M)) s = p;
    if (s != SIZE_MAX) return pt_run(t, s, e, UC_L | UC_M) - p;
    size_t q = c == ' ' && p + 1 < e && pt_is(t, p + 1, UC_P | UC_S) ? p + 1 : p;
    if (pt_is(t, q, UC_P | UC_S)) {
        r = pt_run(t, q, e, UC_P | UC_S);
        while (r < e && is_crlf(t->cp[r])) r++;
        return r - p;
    }
    return m_space_tail(t, p, e);
}

/* kimi-k2: [\p{Han}]+ first, then the gpt-4o-like pattern of its
   tokenizer with Han taken out of the letters, as llama.cpp implements it
   (one class of letters, contractions after a word, \p{N}{1,3}). */
static size_t m_kimi_k2(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {0, 2, 3, 0, 0, 1, 1};
    size_t r = p;
    (void)skip;
    while (r < e && is_han(t->cp[r])) r++;
    return r > p ? r - p : m_llama3_like(t, p, e, &o);
}

/* superbpe, after \p{N}+: (?=(\d{3})+(?!\d)) cuts a run of ASCII digits
   where a multiple of three digits is left; slm matches each group of
   three from such a point (the same pieces). */
static size_t m_superbpe(const pre_text *t, size_t p, size_t e, size_t *skip) {
    size_t r = p;
    (void)skip;
    while (r < e && t->cp[r] >= '0' && t->cp[r] <= '9') r++;
    return r - p >= 3 && (r - p) % 3 == 0 ? 3 : 0;
}

/* seed-coder: qwen2 without [\r\n]* after punctuation
   (?:'[sS]|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t m_seed_coder(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {0, 1, 1, 0, 0, 0, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}
/* ufakzeka: qwen2 without the contractions */
static size_t m_ufakzeka(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {0, 0, 1, 0, 0, 1, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}

/* bloom, gpt3-finnish, poro-chat, viking:  ?[^(\s|.,!?…。，、।۔،)]+
   (a literal class: non-ASCII white space is white space only) */
static int bloom_in(const pre_text *t, size_t i) {
    uint32_t c = t->cp[i];
    if (t->fl[i] & UC_WS) return 0;
    return !(c == '(' || c == ')' || c == '|' || c == '.' || c == ',' || c == '!' || c == '?' || c == 0x2026 ||
             c == 0x3002 || c == 0xff0c || c == 0x3001 || c == 0x0964 || c == 0x06d4 || c == 0x060c);
}
static size_t m_bloom(const pre_text *t, size_t p, size_t e, size_t *skip) {
    size_t q = t->cp[p] == ' ' && p + 1 < e && bloom_in(t, p + 1) ? p + 1 : p;
    (void)skip;
    if (!bloom_in(t, q)) return 0;
    while (q < e && bloom_in(t, q)) q++;
    return q - p;
}

/* chameleon: <sentinel:[0-9]+> , (IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z ,
   ([\t\n]|    |  ) , \p{N} , [\p{P}!-/:-@\[-`{-~] , then gpt2 */
static int pt_lit_str(const pre_text *t, size_t p, size_t e, const char *s) {
    for (; *s; s++, p++)
        if (p >= e || t->cp[p] != (unsigned char)*s) return 0;
    return 1;
}
static size_t m_cham_sentinel(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    if (!pt_lit_str(t, p, e, "<sentinel:")) return 0;
    size_t r = p + 10;
    while (r < e && t->cp[r] >= '0' && t->cp[r] <= '9') r++;
    return r > p + 10 && r < e && t->cp[r] == '>' ? r + 1 - p : 0;
}
static size_t m_cham_image(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    if (!pt_lit_str(t, p, e, "IMGIMG")) return 0;
    size_t r = p + 6;
    while (r < e && r - (p + 6) < 4 && t->cp[r] >= 'A' && t->cp[r] <= 'I') r++;
    return r > p + 6 && r < e && t->cp[r] == 'Z' ? r + 1 - p : 0;
}
static size_t m_cham_space(const pre_text *t, size_t p, size_t e, size_t *skip) {
    (void)skip;
    if (t->cp[p] == '\t' || t->cp[p] == '\n') return 1;
    return pt_lit_str(t, p, e, "    ") ? 4 : pt_lit_str(t, p, e, "  ") ? 2 : 0;
}
static size_t m_cham_punct(const pre_text *t, size_t p, size_t e, size_t *skip) {
    uint32_t c = t->cp[p];
    (void)e, (void)skip;
    return c < 0x80 ? (size_t)ascii_punct(c) : (size_t)pt_is(t, p, UC_P);
}

/* [^\n]+|[\n]+ (laguna, gemma4) */
static size_t m_lines(const pre_text *t, size_t p, size_t e, size_t *skip) {
    size_t r = p;
    int nl = t->cp[p] == '\n';
    (void)skip;
    while (r < e && (t->cp[r] == '\n') == nl) r++;
    return r - p;
}

/* The expressions of each pre-tokenizer, in order (llama.cpp's lists). */
static const pre_fn PRE_GPT2_FNS[] = {m_gpt2, NULL};
static const pre_fn PRE_LLAMA3_FNS[] = {m_llama3, NULL};
static const pre_fn PRE_QWEN2_FNS[] = {m_qwen2, NULL};
static const pre_fn PRE_STARCODER_FNS[] = {m_digit, m_gpt2, NULL};
static const pre_fn PRE_DEFAULT_FNS[] = {m_punct_default, m_gpt2, m_digits, m_ascii3, NULL};
static const pre_fn PRE_FALCON_FNS[] = {m_punct_falcon, m_gpt2, m_ascii3, NULL};
static const pre_fn PRE_DEEPSEEK_LLM_FNS[] = {m_crlf, m_ds_letters, m_ds_punct, m_space_end, m_ds_cjk, m_digits, NULL};
static const pre_fn PRE_DEEPSEEK_CODER_FNS[] = {m_crlf, m_space_letters, m_space_punct, m_ds_cjk, m_digit, NULL};
static const pre_fn PRE_GPT4O_FNS[] = {m_gpt4o, NULL};
static const pre_fn PRE_TEKKEN_FNS[] = {m_tekken, NULL};
static const pre_fn PRE_QWEN35_FNS[] = {m_qwen35, NULL};
static const pre_fn PRE_DEEPSEEK3_FNS[] = {m_num3, m_ds3_kana, m_ds3, NULL};
static const pre_fn PRE_KIMI_K2_FNS[] = {m_kimi_k2, NULL};
static const pre_fn PRE_SUPERBPE_FNS[] = {m_digits, m_superbpe, NULL};
static const pre_fn PRE_SEED_CODER_FNS[] = {m_seed_coder, NULL};
static const pre_fn PRE_BLOOM_FNS[] = {m_bloom, NULL};
static const pre_fn PRE_VIKING_FNS[] = {m_bloom, m_digit, NULL};
static const pre_fn PRE_CHAMELEON_FNS[] = {m_cham_sentinel, m_cham_image, m_cham_space, m_digit,
                                           m_cham_punct,    m_gpt2,       NULL};
static const pre_fn PRE_MINICPM5_FNS[] = {m_num3, m_llama3, NULL};
static const pre_fn PRE_UFAKZEKA_FNS[] = {m_ufakzeka, NULL};
static const pre_fn PRE_LAGUNA_FNS[] = {m_lines, m_qwen2, NULL};
static const pre_fn PRE_GEMMA4_FNS[] = {m_lines, NULL};
static const pre_fn *const PRE_FNS[] = {PRE_GPT2_FNS,       PRE_LLAMA3_FNS,      PRE_QWEN2_FNS,     PRE_STARCODER_FNS,
                                        PRE_DEFAULT_FNS,    PRE_FALCON_FNS,      PRE_DEEPSEEK_LLM_FNS,
                                        PRE_DEEPSEEK_CODER_FNS, PRE_GPT4O_FNS,   PRE_TEKKEN_FNS,    PRE_QWEN35_FNS,
                                        PRE_DEEPSEEK3_FNS,  PRE_KIMI_K2_FNS,     PRE_SUPERBPE_FNS,  PRE_SEED_CODER_FNS,
                                        PRE_BLOOM_FNS,      PRE_VIKING_FNS,      PRE_CHAMELEON_FNS, PRE_MINICPM5_FNS,
                                        PRE_UFAKZEKA_FNS,   PRE_LAGUNA_FNS,      PRE_GEMMA4_FNS};

/* Merging. A word's symbols start as its mapped characters; the pair of
   neighbours with the lowest merge rank (leftmost on ties) merges first. */
typedef struct bpe_sym {
    int32_t prev, next;
    size_t off, n; /* bytes of the mapped word; n = 0 once merged away */
} bpe_sym;

typedef struct bpe_pair {
    int32_t rank, left, right;
    size_t size;
} bpe_pair;

typedef struct bpe_ctx {
    const vocab *v;
    const allocator *a;
    tok_out *o;
    pre_text t;
    const uint8_t *blen;  /* input bytes of each code point */
    const char *src;      /* the fragment's bytes */
    size_t bpos;          /* next byte to encode */
    char *w;              /* the mapped word */
    size_t wcap;
    bpe_sym *sym;
    size_t symcap;
    bpe_pair *heap;
    size_t nheap, heapcap;
    char *key;            /* "left right" for the rank lookup */
    size_t keycap;
    int raw;              /* gemma4: merges over the UTF-8 text itself, <0xNN> byte tokens */
    int oom;
} bpe_ctx;

static int pair_before(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}
HEAP_FUNCS(bpe_pair, pair_before)

static void bpe_try_pair(bpe_ctx *c, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || c->v->n_merges == 0) return;
    const bpe_sym *L = &c->sym[l], *R = &c->sym[r];
    /* merges are "left right" with the left part free of spaces (a space in
       it would split the merge string elsewhere, as llama.cpp splits it) */
    if (L->n > 1 && memchr(c->w + L->off + 1, ' ', L->n - 1)) return;
    size_t kl = L->n + 1 + R->n;
    memcpy(c->key, c->w + L->off, L->n);
    c->key[L->n] = ' ';
    memcpy(c->key + L->n + 1, c->w + R->off, R->n);
    int64_t rank = strmap_find(&c->v->mmap, c->v->mtext, c->v->mlen, c->key, kl, NULL);
    if (rank < 0) return;
    if (!grow(c->a, (void **)&c->heap, &c->heapcap, c->nheap + 1, sizeof(bpe_pair))) {
        c->oom = 1;
        return;
    }
    bpe_pair b;
    b.rank = (int32_t)rank;
    b.left = l;
    b.right = r;
    b.size = L->n + R->n;
    c->heap[c->nheap++] = b;
    bpe_pair_sift_up(c->heap, c->nheap);
}


/* Encode the next `nb` input bytes (one pre-tokenized word). */
static void bpe_word(bpe_ctx *c, size_t nb) {
    const vocab *v = c->v;
    const unsigned char *s = (const unsigned char *)c->src + c->bpos;
    c->bpos += nb;
    if (c->oom || nb == 0) return;
    if (!grow(c->a, (void **)&c->w, &c->wcap, 2 * nb, 1) || !grow(c->a, (void **)&c->sym, &c->symcap, nb, sizeof(bpe_sym)) ||
        !grow(c->a, (void **)&c->key, &c->keycap, 2 * nb + 1, 1)) {
        c->oom = 1;
        return;
    }
    size_t wl = 0;
    int32_t ns = 0;
    if (c->raw) { /* symbols are the UTF-8 characters */
        for (size_t i = 0; i < nb;) {
            size_t cl;
            utf8_cpt(s + i, nb - i, &cl);
            c->sym[ns].off = i;
            c->sym[ns].n = cl;
            c->sym[ns].prev = ns - 1;
            c->sym[ns].next = i + cl < nb ? ns + 1 : -1;
            ns++;
            i += cl;
        }
        memcpy(c->w, s, nb);
        wl = nb;
        /* a run of newlines that is a piece stays whole (llama.cpp) */
        size_t k = 0;
        while (k < nb && s[k] == '\n') k++;
        int32_t id = k == nb ? vocab_find(v, c->w, wl) : -1;
        if (id >= 0) {
            tok_push(c->o, id);
            return;
        }
    }
    for (size_t i = 0; i < nb && !c->raw; i++) {
        uint32_t u = bpe_byte_cpt(s[i]);
        c->sym[ns].off = wl;
        if (u < 0x80) {
            c->w[wl++] = (char)u;
        } else {
            c->w[wl++] = (char)(0xc0 | (u >> 6));
            c->w[wl++] = (char)(0x80 | (u & 0x3f));
        }
        c->sym[ns].n = wl - c->sym[ns].off;
        c->sym[ns].prev = ns - 1;
        c->sym[ns].next = i + 1 < nb ? ns + 1 : -1;
        ns++;
    }
    int32_t whole = v->ignore_merges ? vocab_find(v, c->w, wl) : -1;
    if (whole >= 0) {
        tok_push(c->o, whole);
        return;
    }
    c->nheap = 0;
    for (int32_t i = 1; i < ns; i++) bpe_try_pair(c, i - 1, i);
    while (c->nheap && !c->oom) {
        bpe_pair b = bpe_pair_pop(c->heap, &c->nheap);
        bpe_sym *l = &c->sym[b.left], *r = &c->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) c->sym[r->next].prev = b.left;
        bpe_try_pair(c, l->prev, b.left);
        bpe_try_pair(c, b.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = c->sym[i].next) {
        const bpe_sym *y = &c->sym[i];
        int32_t id = vocab_find(v, c->w + y->off, y->n);
        if (id >= 0) {
            tok_push(c->o, id);
            continue;
        }
        /* a symbol that is no piece (only in a vocabulary without all 256
           byte characters, such as StarCoder's): as llama.cpp, each byte of
           its text that is a piece by itself, and the others are dropped
           (gemma4: each byte's <0xNN> token) */
        for (size_t j = 0; j < y->n; j++) {
            if (c->raw) {
                static const char HEX[] = "0123456789ABCDEF";
                unsigned char b = (unsigned char)c->w[y->off + j];
                char hb[6] = {'<', '0', 'x', HEX[b >> 4], HEX[b & 15], '>'};
                id = vocab_find(v, hb, 6);
            } else {
                id = vocab_find(v, c->w + y->off + j, 1);
            }
            if (id >= 0) tok_push(c->o, id);
        }
    }
}

/* Apply expression fns[0] to the code points [s, e); what it matches and
   the gaps between matches go to the next expression, or become words. */
static void bpe_split(bpe_ctx *c, const pre_fn *fns, size_t s, size_t e) {
    if (!*fns) {
        size_t nb = 0;
        for (size_t i = s; i < e; i++) nb += c->blen[i];
        bpe_word(c, nb);
        return;
    }
    size_t gap = s, p = s;
    while (p < e && !c->oom) {
        size_t skip = 1, m = fns[0](&c->t, p, e, &skip);
        if (!m) {
            p += skip;
            continue;
        }
        if (gap < p) bpe_split(c, fns + 1, gap, p);
        bpe_split(c, fns + 1, p, p + m);
        p += m;
        gap = p;
    }
    if (gap < e && !c->oom) bpe_split(c, fns + 1, gap, e);
}

static size_t escape_spaces(char *buf, size_t n);
static int bpe_words(const vocab *v, const allocator *a, const char *s, size_t n, tok_out *o, int raw);

/* Encode one raw fragment s[0, n). gemma4 (SentencePiece-style BPE):
   ' ' -> U+2581 first, then lines and runs of newlines are the words. */
static int bpe_encode(const vocab *v, const allocator *a, const char *s, size_t n, tok_out *o) {
    if (n == 0) return 1;
    if (v->pre_kind == PRE_GEMMA4) {
        if (n > SIZE_MAX / 3) return 0;
        char *e = (char *)xalloc(a, 3 * n); /* [3n] escaped text */
        if (!e) return 0;
        memcpy(e, s, n);
        size_t en = escape_spaces(e, n);
        int ok = bpe_words(v, a, e, en, o, 1);
        xfree(a, e, 3 * n);
        return ok;
    }
    return bpe_words(v, a, s, n, o, 0);
}

/* Split s[0, n) with the pre-tokenizer and encode each word. */
static int bpe_words(const vocab *v, const allocator *a, const char *s, size_t n, tok_out *o, int raw) {
    uint32_t *cp = (uint32_t *)xalloc(a, n * sizeof(uint32_t));
    uint8_t *fl = (uint8_t *)xalloc(a, n), *bl = (uint8_t *)xalloc(a, n);
    bpe_ctx c;
    memset(&c, 0, sizeof c);
    c.oom = !cp || !fl || !bl;
    if (!c.oom) {
        size_t ncp = 0;
        for (size_t off = 0; off < n; ncp++) {
            size_t l;
            cp[ncp] = utf8_cpt((const unsigned char *)s + off, n - off, &l);
            fl[ncp] = (uint8_t)ucd_flags(cp[ncp]);
            bl[ncp] = (uint8_t)l;
            off += l;
        }
        c.v = v;
        c.a = a;
        c.o = o;
        c.t.cp = cp;
        c.t.fl = fl;
        c.blen = bl;
        c.src = s;
        c.raw = raw;
        int k = v->pre_kind >= 0 && v->pre_kind < (int)(sizeof PRE_FNS / sizeof PRE_FNS[0]) ? v->pre_kind : PRE_GPT2;
        bpe_split(&c, PRE_FNS[k], 0, ncp);
    }
    xfree(a, c.w, c.wcap);
    xfree(a, c.sym, c.symcap * sizeof(bpe_sym));
    xfree(a, c.heap, c.heapcap * sizeof(bpe_pair));
    xfree(a, c.key, c.keycap);
    xfree(a, cp, n * sizeof(uint32_t));
    xfree(a, fl, n);
    xfree(a, bl, n);
    return !c.oom;
}

/* --- WordPiece (BERT) ------------------------------------------------------------ */
/*
 * tokenizer.ggml.model "bert", as llama.cpp's WPM tokenizer. The text is
 * normalized code point by code point: (strip_accents) each one is replaced
 * by the first code point of its NFD form and nonspacing marks are dropped;
 * white space ends a word; NUL, U+FFFD and control/format characters are
 * dropped; (lowercase) simple lowercase mapping; punctuation, ASCII symbols
 * and CJK ideographs are words of their own. Each word, prefixed with
 * U+2581, is cut greedily from the left into the longest pieces of the
 * vocabulary (continuations are stored without "##"); a word with a
 * position no piece matches becomes one [UNK]. With add_special the
 * sequence is [CLS] ... [SEP] (the BOS and separator ids).
 */

/* BEGIN gen_unicode_wpm */
/* Generated by tools/gen_unicode.py from Python 3.11.7 unicodedata (Unicode 14.0.0). */
static const int32_t UCD_LOWER[181][4] = {
    {0x00041, 26, 1, 32}, {0x000c0, 23, 1, 32}, {0x000d8, 7, 1, 32}, {0x00100, 24, 2, 1}, {0x00132, 3, 2, 1},
    {0x00139, 8, 2, 1}, {0x0014a, 23, 2, 1}, {0x00178, 1, 1, -121}, {0x00179, 3, 2, 1}, {0x00181, 1, 1, 210},
    {0x00182, 2, 2, 1}, {0x00186, 1, 1, 206}, {0x00187, 1, 1, 1}, {0x00189, 2, 1, 205}, {0x0018b, 1, 1, 1},
    {0x0018e, 1, 1, 79}, {0x0018f, 1, 1, 202}, {0x00190, 1, 1, 203}, {0x00191, 1, 1, 1}, {0x00193, 1, 1, 205},
    {0x00194, 1, 1, 207}, {0x00196, 1, 1, 211}, {0x00197, 1, 1, 209}, {0x00198, 1, 1, 1}, {0x0019c, 1, 1, 211},
    {0x0019d, 1, 1, 213}, {0x0019f, 1, 1, 214}, {0x001a0, 3, 2, 1}, {0x001a6, 1, 1, 218}, {0x001a7, 1, 1, 1},
    {0x001a9, 1, 1, 218}, {0x001ac, 1, 1, 1}, {0x001ae, 1, 1, 218}, {0x001af, 1, 1, 1}, {0x001b1, 2, 1, 217},
    {0x001b3, 2, 2, 1}, {0x001b7, 1, 1, 219}, {0x001b8, 1, 1, 1}, {0x001bc, 1, 1, 1}, {0x001c4, 1, 1, 2},
    {0x001c5, 1, 1, 1}, {0x001c7, 1, 1, 2}, {0x001c8, 1, 1, 1}, {0x001ca, 1, 1, 2}, {0x001cb, 9, 2, 1},
    {0x001de, 9, 2, 1}, {0x001f1, 1, 1, 2}, {0x001f2, 2, 2, 1}, {0x001f6, 1, 1, -97}, {0x001f7, 1, 1, -56},
    {0x001f8, 20, 2, 1}, {0x00220, 1, 1, -130}, {0x00222, 9, 2, 1}, {0x0023a, 1, 1, 10795}, {0x0023b, 1, 1, 1},
    {0x0023d, 1, 1, -163}, {0x0023e, 1, 1, 10792}, {0x00241, 1, 1, 1}, {0x00243, 1, 1, -195}, {0x00244, 1, 1, 69},
    {0x00245, 1, 1, 71}, {0x00246, 5, 2, 1}, {0x00370, 2, 2, 1}, {0x00376, 1, 1, 1}, {0x0037f, 1, 1, 116},
    {0x00386, 1, 1, 38}, {0x00388, 3, 1, 37}, {0x0038c, 1, 1, 64}, {0x0038e, 2, 1, 63}, {0x00391, 17, 1, 32},
    {0x003a3, 9, 1, 32}, {0x003cf, 1, 1, 8}, {0x003d8, 12, 2, 1}, {0x003f4, 1, 1, -60}, {0x003f7, 1, 1, 1},
    {0x003f9, 1, 1, -7}, {0x003fa, 1, 1, 1}, {0x003fd, 3, 1, -130}, {0x00400, 16, 1, 80}, {0x00410, 32, 1, 32},
    {0x00460, 17, 2, 1}, {0x0048a, 27, 2, 1}, {0x004c0, 1, 1, 15}, {0x004c1, 7, 2, 1}, {0x004d0, 48, 2, 1},
    {0x00531, 38, 1, 48}, {0x010a0, 38, 1, 7264}, {0x010c7, 1, 1, 7264}, {0x010cd, 1, 1, 7264}, {0x013a0, 80, 1, 38864},
    {0x013f0, 6, 1, 8}, {0x01c90, 43, 1, -3008}, {0x01cbd, 3, 1, -3008}, {0x01e00, 75, 2, 1}, {0x01e9e, 1, 1, -7615},
    {0x01ea0, 48, 2, 1}, {0x01f08, 8, 1, -8}, {0x01f18, 6, 1, -8}, {0x01f28, 8, 1, -8}, {0x01f38, 8, 1, -8},
    {0x01f48, 6, 1, -8}, {0x01f59, 4, 2, -8}, {0x01f68, 8, 1, -8}, {0x01f88, 8, 1, -8}, {0x01f98, 8, 1, -8},
    {0x01fa8, 8, 1, -8}, {0x01fb8, 2, 1, -8}, {0x01fba, 2, 1, -74}, {0x01fbc, 1, 1, -9}, {0x01fc8, 4, 1, -86},
    {0x01fcc, 1, 1, -9}, {0x01fd8, 2, 1, -8}, {0x01fda, 2, 1, -100}, {0x01fe8, 2, 1, -8}, {0x01fea, 2, 1, -112},
    {0x01fec, 1, 1, -7}, {0x01ff8, 2, 1, -128}, {0x01ffa, 2, 1, -126}, {0x01ffc, 1, 1, -9}, {0x02126, 1, 1, -7517},
    {0x0212a, 1, 1, -8383}, {0x0212b, 1, 1, -8262}, {0x02132, 1, 1, 28}, {0x02160, 16, 1, 16}, {0x02183, 1, 1, 1},
    {0x024b6, 26, 1, 26}, {0x02c00, 48, 1, 48}, {0x02c60, 1, 1, 1}, {0x02c62, 1, 1, -10743}, {0x02c63, 1, 1, -3814},
    {0x02c64, 1, 1, -10727}, {0x02c67, 3, 2, 1}, {0x02c6d, 1, 1, -10780}, {0x02c6e, 1, 1, -10749}, {0x02c6f, 1, 1, -10783},
    {0x02c70, 1, 1, -10782}, {0x02c72, 1, 1, 1}, {0x02c75, 1, 1, 1}, {0x02c7e, 2, 1, -10815}, {0x02c80, 50, 2, 1},
    {0x02ceb, 2, 2, 1}, {0x02cf2, 1, 1, 1}, {0x0a640, 23, 2, 1}, {0x0a680, 14, 2, 1}, {0x0a722, 7, 2, 1},
    {0x0a732, 31, 2, 1}, {0x0a779, 2, 2, 1}, {0x0a77d, 1, 1, -35332}, {0x0a77e, 5, 2, 1}, {0x0a78b, 1, 1, 1},
    {0x0a78d, 1, 1, -42280}, {0x0a790, 2, 2, 1}, {0x0a796, 10, 2, 1}, {0x0a7aa, 1, 1, -42308}, {0x0a7ab, 1, 1, -42319},
    {0x0a7ac, 1, 1, -42315}, {0x0a7ad, 1, 1, -42305}, {0x0a7ae, 1, 1, -42308}, {0x0a7b0, 1, 1, -42258}, {0x0a7b1, 1, 1, -42282},
    {0x0a7b2, 1, 1, -42261}, {0x0a7b3, 1, 1, 928}, {0x0a7b4, 8, 2, 1}, {0x0a7c4, 1, 1, -48}, {0x0a7c5, 1, 1, -42307},
    {0x0a7c6, 1, 1, -35384}, {0x0a7c7, 2, 2, 1}, {0x0a7d0, 1, 1, 1}, {0x0a7d6, 2, 2, 1}, {0x0a7f5, 1, 1, 1},
    {0x0ff21, 26, 1, 32}, {0x10400, 40, 1, 40}, {0x104b0, 36, 1, 40}, {0x10570, 11, 1, 39}, {0x1057c, 15, 1, 39},
    {0x1058c, 7, 1, 39}, {0x10594, 2, 1, 39}, {0x10c80, 51, 1, 64}, {0x118a0, 32, 1, 32}, {0x16e40, 32, 1, 32},
    {0x1e900, 34, 1, 34},
};
static const uint32_t UCD_NFD0[2061][2] = {
    {0x000c0, 0x00041}, {0x000c1, 0x00041}, {0x000c2, 0x00041}, {0x000c3, 0x00041}, {0x000c4, 0x00041}, {0x000c5, 0x00041},
    {0x000c7, 0x00043}, {0x000c8, 0x00045}, {0x000c9, 0x00045}, {0x000ca, 0x00045}, {0x000cb, 0x00045}, {0x000cc, 0x00049},
    {0x000cd, 0x00049}, {0x000ce, 0x00049}, {0x000cf, 0x00049}, {0x000d1, 0x0004e}, {0x000d2, 0x0004f}, {0x000d3, 0x0004f},
    {0x000d4, 0x0004f}, {0x000d5, 0x0004f}, {0x000d6, 0x0004f}, {0x000d9, 0x00055}, {0x000da, 0x00055}, {0x000db, 0x00055},
    {0x000dc, 0x00055}, {0x000dd, 0x00059}, {0x000e0, 0x00061}, {0x000e1, 0x00061}, {0x000e2, 0x00061}, {0x000e3, 0x00061},
    {0x000e4, 0x00061}, {0x000e5, 0x00061}, {0x000e7, 0x00063}, {0x000e8, 0x00065}, {0x000e9, 0x00065}, {0x000ea, 0x00065},
    {0x000eb, 0x00065}, {0x000ec, 0x00069}, {0x000ed, 0x00069}, {0x000ee, 0x00069}, {0x000ef, 0x00069}, {0x000f1, 0x0006e},
    {0x000f2, 0x0006f}, {0x000f3, 0x0006f}, {0x000f4, 0x0006f}, {0x000f5, 0x0006f}, {0x000f6, 0x0006f}, {0x000f9, 0x00075},
    {0x000fa, 0x00075}, {0x000fb, 0x00075}, {0x000fc, 0x00075}, {0x000fd, 0x00079}, {0x000ff, 0x00079}, {0x00100, 0x00041},
    {0x00101, 0x00061}, {0x00102, 0x00041}, {0x00103, 0x00061}, {0x00104, 0x00041}, {0x00105, 0x00061}, {0x00106, 0x00043},
    {0x00107, 0x00063}, {0x00108, 0x00043}, {0x00109, 0x00063}, {0x0010a, 0x00043}, {0x0010b, 0x00063}, {0x0010c, 0x00043},
    {0x0010d, 0x00063}, {0x0010e, 0x00044}, {0x0010f, 0x00064}, {0x00112, 0x00045}, {0x00113, 0x00065}, {0x00114, 0x00045},
    {0x00115, 0x00065}, {0x00116, 0x00045}, {0x00117, 0x00065}, {0x00118, 0x00045}, {0x00119, 0x00065}, {0x0011a, 0x00045},
    {0x0011b, 0x00065}, {0x0011c, 0x00047}, {0x0011d, 0x00067}, {0x0011e, 0x00047}, {0x0011f, 0x00067}, {0x00120, 0x00047},
    {0x00121, 0x00067}, {0x00122, 0x00047}, {0x00123, 0x00067}, {0x00124, 0x00048}, {0x00125, 0x00068}, {0x00128, 0x00049},
    {0x00129, 0x00069}, {0x0012a, 0x00049}, {0x0012b, 0x00069}, {0x0012c, 0x00049}, {0x0012d, 0x00069}, {0x0012e, 0x00049},
    {0x0012f, 0x00069}, {0x00130, 0x00049}, {0x00134, 0x0004a}, {0x00135, 0x0006a}, {0x00136, 0x0004b}, {0x00137, 0x0006b},
    {0x00139, 0x0004c}, {0x0013a, 0x0006c}, {0x0013b, 0x0004c}, {0x0013c, 0x0006c}, {0x0013d, 0x0004c}, {0x0013e, 0x0006c},
    {0x00143, 0x0004e}, {0x00144, 0x0006e}, {0x00145, 0x0004e}, {0x00146, 0x0006e}, {0x00147, 0x0004e}, {0x00148, 0x0006e},
    {0x0014c, 0x0004f}, {0x0014d, 0x0006f}, {0x0014e, 0x0004f}, {0x0014f, 0x0006f}, {0x00150, 0x0004f}, {0x00151, 0x0006f},
    {0x00154, 0x00052}, {0x00155, 0x00072}, {0x00156, 0x00052}, {0x00157, 0x00072}, {0x00158, 0x00052}, {0x00159, 0x00072},
    {0x0015a, 0x00053}, {0x0015b, 0x00073}, {0x0015c, 0x00053}, {0x0015d, 0x00073}, {0x0015e, 0x00053}, {0x0015f, 0x00073},
    {0x00160, 0x00053}, {0x00161, 0x00073}, {0x00162, 0x00054}, {0x00163, 0x00074}, {0x00164, 0x00054}, {0x00165, 0x00074},
    {0x00168, 0x00055}, {0x00169, 0x00075}, {0x0016a, 0x00055}, {0x0016b, 0x00075}, {0x0016c, 0x00055}, {0x0016d, 0x00075},
    {0x0016e, 0x00055}, {0x0016f, 0x00075}, {0x00170, 0x00055}, {0x00171, 0x00075}, {0x00172, 0x00055}, {0x00173, 0x00075},
    {0x00174, 0x00057}, {0x00175, 0x00077}, {0x00176, 0x00059}, {0x00177, 0x00079}, {0x00178, 0x00059}, {0x00179, 0x0005a},
    {0x0017a, 0x0007a}, {0x0017b, 0x0005a}, {0x0017c, 0x0007a}, {0x0017d, 0x0005a}, {0x0017e, 0x0007a}, {0x001a0, 0x0004f},
    {0x001a1, 0x0006f}, {0x001af, 0x00055}, {0x001b0, 0x00075}, {0x001cd, 0x00041}, {0x001ce, 0x00061}, {0x001cf, 0x00049},
    {0x001d0, 0x00069}, {0x001d1, 0x0004f}, {0x001d2, 0x0006f}, {0x001d3, 0x00055}, {0x001d4, 0x00075}, {0x001d5, 0x00055},
    {0x001d6, 0x00075}, {0x001d7, 0x00055}, {0x001d8, 0x00075}, {0x001d9, 0x00055}, {0x001da, 0x00075}, {0x001db, 0x00055},
    {0x001dc, 0x00075}, {0x001de, 0x00041}, {0x001df, 0x00061}, {0x001e0, 0x00041}, {0x001e1, 0x00061}, {0x001e2, 0x000c6},
    {0x001e3, 0x000e6}, {0x001e6, 0x00047}, {0x001e7, 0x00067}, {0x001e8, 0x0004b}, {0x001e9, 0x0006b}, {0x001ea, 0x0004f},
    {0x001eb, 0x0006f}, {0x001ec, 0x0004f}, {0x001ed, 0x0006f}, {0x001ee, 0x001b7}, {0x001ef, 0x00292}, {0x001f0, 0x0006a},
    {0x001f4, 0x00047}, {0x001f5, 0x00067}, {0x001f8, 0x0004e}, {0x001f9, 0x0006e}, {0x001fa, 0x00041}, {0x001fb, 0x00061},
    {0x001fc, 0x000c6}, {0x001fd, 0x000e6}, {0x001fe, 0x000d8}, {0x001ff, 0x000f8}, {0x00200, 0x00041}, {0x00201, 0x00061},
    {0x00202, 0x00041}, {0x00203, 0x00061}, {0x00204, 0x00045}, {0x00205, 0x00065}, {0x00206, 0x00045}, {0x00207, 0x00065},
    {0x00208, 0x00049}, {0x00209, 0x00069}, {0x0020a, 0x00049}, {0x0020b, 0x00069}, {0x0020c, 0x0004f}, {0x0020d, 0x0006f},
    {0x0020e, 0x0004f}, {0x0020f, 0x0006f}, {0x00210, 0x00052}, {0x00211, 0x00072}, {0x00212, 0x00052}, {0x00213, 0x00072},
    {0x00214, 0x00055}, {0x00215, 0x00075}, {0x00216, 0x00055}, {0x00217, 0x00075}, {0x00218, 0x00053}, {0x00219, 0x00073},
    {0x0021a, 0x00054}, {0x0021b, 0x00074}, {0x0021e, 0x00048}, {0x0021f, 0x00068}, {0x00226, 0x00041}, {0x00227, 0x00061},
    {0x00228, 0x00045}, {0x00229, 0x00065}, {0x0022a, 0x0004f}, {0x0022b, 0x0006f}, {0x0022c, 0x0004f}, {0x0022d, 0x0006f},
    {0x0022e, 0x0004f}, {0x0022f, 0x0006f}, {0x00230, 0x0004f}, {0x00231, 0x0006f}, {0x00232, 0x00059}, {0x00233, 0x00079},
    {0x00340, 0x00300}, {0x00341, 0x00301}, {0x00343, 0x00313}, {0x00344, 0x00308}, {0x00374, 0x002b9}, {0x0037e, 0x0003b},
    {0x00385, 0x000a8}, {0x00386, 0x00391}, {0x00387, 0x000b7}, {0x00388, 0x00395}, {0x00389, 0x00397}, {0x0038a, 0x00399},
    {0x0038c, 0x0039f}, {0x0038e, 0x003a5}, {0x0038f, 0x003a9}, {0x00390, 0x003b9}, {0x003aa, 0x00399}, {0x003ab, 0x003a5},
    {0x003ac, 0x003b1}, {0x003ad, 0x003b5}, {0x003ae, 0x003b7}, {0x003af, 0x003b9}, {0x003b0, 0x003c5}, {0x003ca, 0x003b9},
    {0x003cb, 0x003c5}, {0x003cc, 0x003bf}, {0x003cd, 0x003c5}, {0x003ce, 0x003c9}, {0x003d3, 0x003d2}, {0x003d4, 0x003d2},
    {0x00400, 0x00415}, {0x00401, 0x00415}, {0x00403, 0x00413}, {0x00407, 0x00406}, {0x0040c, 0x0041a}, {0x0040d, 0x00418},
    {0x0040e, 0x00423}, {0x00419, 0x00418}, {0x00439, 0x00438}, {0x00450, 0x00435}, {0x00451, 0x00435}, {0x00453, 0x00433},
    {0x00457, 0x00456}, {0x0045c, 0x0043a}, {0x0045d, 0x00438}, {0x0045e, 0x00443}, {0x00476, 0x00474}, {0x00477, 0x00475},
    {0x004c1, 0x00416}, {0x004c2, 0x00436}, {0x004d0, 0x00410}, {0x004d1, 0x00430}, {0x004d2, 0x00410}, {0x004d3, 0x00430},
    {0x004d6, 0x00415}, {0x004d7, 0x00435}, {0x004da, 0x004d8}, {0x004db, 0x004d9}, {0x004dc, 0x00416}, {0x004dd, 0x00436},
    {0x004de, 0x00417}, {0x004df, 0x00437}, {0x004e2, 0x00418}, {0x004e3, 0x00438}, {0x004e4, 0x00418}, {0x004e5, 0x00438},
    {0x004e6, 0x0041e}, {0x004e7, 0x0043e}, {0x004ea, 0x004e8}, {0x004eb, 0x004e9}, {0x004ec, 0x0042d}, {0x004ed, 0x0044d},
    {0x004ee, 0x00423}, {0x004ef, 0x00443}, {0x004f0, 0x00423}, {0x004f1, 0x00443}, {0x004f2, 0x00423}, {0x004f3, 0x00443},
    {0x004f4, 0x00427}, {0x004f5, 0x00447}, {0x004f8, 0x0042b}, {0x004f9, 0x0044b}, {0x00622, 0x00627}, {0x00623, 0x00627},
    {0x00624, 0x00648}, {0x00625, 0x00627}, {0x00626, 0x0064a}, {0x006c0, 0x006d5}, {0x006c2, 0x006c1}, {0x006d3, 0x006d2},
    {0x00929, 0x00928}, {0x00931, 0x00930}, {0x00934, 0x00933}, {0x00958, 0x00915}, {0x00959, 0x00916}, {0x0095a, 0x00917},
    {0x0095b, 0x0091c}, {0x0095c, 0x00921}, {0x0095d, 0x00922}, {0x0095e, 0x0092b}, {0x0095f, 0x0092f}, {0x009cb, 0x009c7},
    {0x009cc, 0x009c7}, {0x009dc, 0x009a1}, {0x009dd, 0x009a2}, {0x009df, 0x009af}, {0x00a33, 0x00a32}, {0x00a36, 0x00a38},
    {0x00a59, 0x00a16}, {0x00a5a, 0x00a17}, {0x00a5b, 0x00a1c}, {0x00a5e, 0x00a2b}, {0x00b48, 0x00b47}, {0x00b4b, 0x00b47},
    {0x00b4c, 0x00b47}, {0x00b5c, 0x00b21}, {0x00b5d, 0x00b22}, {0x00b94, 0x00b92}, {0x00bca, 0x00bc6}, {0x00bcb, 0x00bc7},
    {0x00bcc, 0x00bc6}, {0x00c48, 0x00c46}, {0x00cc0, 0x00cbf}, {0x00cc7, 0x00cc6}, {0x00cc8, 0x00cc6}, {0x00cca, 0x00cc6},
    {0x00ccb, 0x00cc6}, {0x00d4a, 0x00d46}, {0x00d4b, 0x00d47}, {0x00d4c, 0x00d46}, {0x00dda, 0x00dd9}, {0x00ddc, 0x00dd9},
    {0x00ddd, 0x00dd9}, {0x00dde, 0x00dd9}, {0x00f43, 0x00f42}, {0x00f4d, 0x00f4c}, {0x00f52, 0x00f51}, {0x00f57, 0x00f56},
    {0x00f5c, 0x00f5b}, {0x00f69, 0x00f40}, {0x00f73, 0x00f71}, {0x00f75, 0x00f71}, {0x00f76, 0x00fb2}, {0x00f78, 0x00fb3},
    {0x00f81, 0x00f71}, {0x00f93, 0x00f92}, {0x00f9d, 0x00f9c}, {0x00fa2, 0x00fa1}, {0x00fa7, 0x00fa6}, {0x00fac, 0x00fab},
    {0x00fb9, 0x00f90}, {0x01026, 0x01025}, {0x01b06, 0x01b05}, {0x01b08, 0x01b07}, {0x01b0a, 0x01b09}, {0x01b0c, 0x01b0b},
    {0x01b0e, 0x01b0d}, {0x01b12, 0x01b11}, {0x01b3b, 0x01b3a}, {0x01b3d, 0x01b3c}, {0x01b40, 0x01b3e}, {0x01b41, 0x01b3f},
    {0x01b43, 0x01b42}, {0x01e00, 0x00041}, {0x01e01, 0x00061}, {0x01e02, 0x00042}, {0x01e03, 0x00062}, {0x01e04, 0x00042},
    {0x01e05, 0x00062}, {0x01e06, 0x00042}, {0x01e07, 0x00062}, {0x01e08, 0x00043}, {0x01e09, 0x00063}, {0x01e0a, 0x00044},
    {0x01e0b, 0x00064}, {0x01e0c, 0x00044}, {0x01e0d, 0x00064}, {0x01e0e, 0x00044}, {0x01e0f, 0x00064}, {0x01e10, 0x00044},
    {0x01e11, 0x00064}, {0x01e12, 0x00044}, {0x01e13, 0x00064}, {0x01e14, 0x00045}, {0x01e15, 0x00065}, {0x01e16, 0x00045},
    {0x01e17, 0x00065}, {0x01e18, 0x00045}, {0x01e19, 0x00065}, {0x01e1a, 0x00045}, {0x01e1b, 0x00065}, {0x01e1c, 0x00045},
    {0x01e1d, 0x00065}, {0x01e1e, 0x00046}, {0x01e1f, 0x00066}, {0x01e20, 0x00047}, {0x01e21, 0x00067}, {0x01e22, 0x00048},
    {0x01e23, 0x00068}, {0x01e24, 0x00048}, {0x01e25, 0x00068}, {0x01e26, 0x00048}, {0x01e27, 0x00068}, {0x01e28, 0x00048},
    {0x01e29, 0x00068}, {0x01e2a, 0x00048}, {0x01e2b, 0x00068}, {0x01e2c, 0x00049}, {0x01e2d, 0x00069}, {0x01e2e, 0x00049},
    {0x01e2f, 0x00069}, {0x01e30, 0x0004b}, {0x01e31, 0x0006b}, {0x01e32, 0x0004b}, {0x01e33, 0x0006b}, {0x01e34, 0x0004b},
    {0x01e35, 0x0006b}, {0x01e36, 0x0004c}, {0x01e37, 0x0006c}, {0x01e38, 0x0004c}, {0x01e39, 0x0006c}, {0x01e3a, 0x0004c},
    {0x01e3b, 0x0006c}, {0x01e3c, 0x0004c}, {0x01e3d, 0x0006c}, {0x01e3e, 0x0004d}, {0x01e3f, 0x0006d}, {0x01e40, 0x0004d},
    {0x01e41, 0x0006d}, {0x01e42, 0x0004d}, {0x01e43, 0x0006d}, {0x01e44, 0x0004e}, {0x01e45, 0x0006e}, {0x01e46, 0x0004e},
    {0x01e47, 0x0006e}, {0x01e48, 0x0004e}, {0x01e49, 0x0006e}, {0x01e4a, 0x0004e}, {0x01e4b, 0x0006e}, {0x01e4c, 0x0004f},
    {0x01e4d, 0x0006f}, {0x01e4e, 0x0004f}, {0x01e4f, 0x0006f}, {0x01e50, 0x0004f}, {0x01e51, 0x0006f}, {0x01e52, 0x0004f},
    {0x01e53, 0x0006f}, {0x01e54, 0x00050}, {0x01e55, 0x00070}, {0x01e56, 0x00050}, {0x01e57, 0x00070}, {0x01e58, 0x00052},
    {0x01e59, 0x00072}, {0x01e5a, 0x00052}, {0x01e5b, 0x00072}, {0x01e5c, 0x00052}, {0x01e5d, 0x00072}, {0x01e5e, 0x00052},
    {0x01e5f, 0x00072}, {0x01e60, 0x00053}, {0x01e61, 0x00073}, {0x01e62, 0x00053}, {0x01e63, 0x00073}, {0x01e64, 0x00053},
    {0x01e65, 0x00073}, {0x01e66, 0x00053}, {0x01e67, 0x00073}, {0x01e68, 0x00053}, {0x01e69, 0x00073}, {0x01e6a, 0x00054},
    {0x01e6b, 0x00074}, {0x01e6c, 0x00054}, {0x01e6d, 0x00074}, {0x01e6e, 0x00054}, {0x01e6f, 0x00074}, {0x01e70, 0x00054},
    {0x01e71, 0x00074}, {0x01e72, 0x00055}, {0x01e73, 0x00075}, {0x01e74, 0x00055}, {0x01e75, 0x00075}, {0x01e76, 0x00055},
    {0x01e77, 0x00075}, {0x01e78, 0x00055}, {0x01e79, 0x00075}, {0x01e7a, 0x00055}, {0x01e7b, 0x00075}, {0x01e7c, 0x00056},
    {0x01e7d, 0x00076}, {0x01e7e, 0x00056}, {0x01e7f, 0x00076}, {0x01e80, 0x00057}, {0x01e81, 0x00077}, {0x01e82, 0x00057},
    {0x01e83, 0x00077}, {0x01e84, 0x00057}, {0x01e85, 0x00077}, {0x01e86, 0x00057}, {0x01e87, 0x00077}, {0x01e88, 0x00057},
    {0x01e89, 0x00077}, {0x01e8a, 0x00058}, {0x01e8b, 0x00078}, {0x01e8c, 0x00058}, {0x01e8d, 0x00078}, {0x01e8e, 0x00059},
    {0x01e8f, 0x00079}, {0x01e90, 0x0005a}, {0x01e91, 0x0007a}, {0x01e92, 0x0005a}, {0x01e93, 0x0007a}, {0x01e94, 0x0005a},
    {0x01e95, 0x0007a}, {0x01e96, 0x00068}, {0x01e97, 0x00074}, {0x01e98, 0x00077}, {0x01e99, 0x00079}, {0x01e9b, 0x0017f},
    {0x01ea0, 0x00041}, {0x01ea1, 0x00061}, {0x01ea2, 0x00041}, {0x01ea3, 0x00061}, {0x01ea4, 0x00041}, {0x01ea5, 0x00061},
    {0x01ea6, 0x00041}, {0x01ea7, 0x00061}, {0x01ea8, 0x00041}, {0x01ea9, 0x00061}, {0x01eaa, 0x00041}, {0x01eab, 0x00061},
    {0x01eac, 0x00041}, {0x01ead, 0x00061}, {0x01eae, 0x00041}, {0x01eaf, 0x00061}, {0x01eb0, 0x00041}, {0x01eb1, 0x00061},
    {0x01eb2, 0x00041}, {0x01eb3, 0x00061}, {0x01eb4, 0x00041}, {0x01eb5, 0x00061}, {0x01eb6, 0x00041}, {0x01eb7, 0x00061},
    {0x01eb8, 0x00045}, {0x01eb9, 0x00065}, {0x01eba, 0x00045}, {0x01ebb, 0x00065}, {0x01ebc, 0x00045}, {0x01ebd, 0x00065},
    {0x01ebe, 0x00045}, {0x01ebf, 0x00065}, {0x01ec0, 0x00045}, {0x01ec1, 0x00065}, {0x01ec2, 0x00045}, {0x01ec3, 0x00065},
    {0x01ec4, 0x00045}, {0x01ec5, 0x00065}, {0x01ec6, 0x00045}, {0x01ec7, 0x00065}, {0x01ec8, 0x00049}, {0x01ec9, 0x00069},
    {0x01eca, 0x00049}, {0x01ecb, 0x00069}, {0x01ecc, 0x0004f}, {0x01ecd, 0x0006f}, {0x01ece, 0x0004f}, {0x01ecf, 0x0006f},
    {0x01ed0, 0x0004f}, {0x01ed1, 0x0006f}, {0x01ed2, 0x0004f}, {0x01ed3, 0x0006f}, {0x01ed4, 0x0004f}, {0x01ed5, 0x0006f},
    {0x01ed6, 0x0004f}, {0x01ed7, 0x0006f}, {0x01ed8, 0x0004f}, {0x01ed9, 0x0006f}, {0x01eda, 0x0004f}, {0x01edb, 0x0006f},
    {0x01edc, 0x0004f}, {0x01edd, 0x0006f}, {0x01ede, 0x0004f}, {0x01edf, 0x0006f}, {0x01ee0, 0x0004f}, {0x01ee1, 0x0006f},
    {0x01ee2, 0x0004f}, {0x01ee3, 0x0006f}, {0x01ee4, 0x00055}, {0x01ee5, 0x00075}, {0x01ee6, 0x00055}, {0x01ee7, 0x00075},
    {0x01ee8, 0x00055}, {0x01ee9, 0x00075}, {0x01eea, 0x00055}, {0x01eeb, 0x00075}, {0x01eec, 0x00055}, {0x01eed, 0x00075},
    {0x01eee, 0x00055}, {0x01eef, 0x00075}, {0x01ef0, 0x00055}, {0x01ef1, 0x00075}, {0x01ef2, 0x00059}, {0x01ef3, 0x00079},
    {0x01ef4, 0x00059}, {0x01ef5, 0x00079}, {0x01ef6, 0x00059}, {0x01ef7, 0x00079}, {0x01ef8, 0x00059}, {0x01ef9, 0x00079},
    {0x01f00, 0x003b1}, {0x01f01, 0x003b1}, {0x01f02, 0x003b1}, {0x01f03, 0x003b1}, {0x01f04, 0x003b1}, {0x01f05, 0x003b1},
    {0x01f06, 0x003b1}, {0x01f07, 0x003b1}, {0x01f08, 0x00391}, {0x01f09, 0x00391}, {0x01f0a, 0x00391}, {0x01f0b, 0x00391},
    {0x01f0c, 0x00391}, {0x01f0d, 0x00391}, {0x01f0e, 0x00391}, {0x01f0f, 0x00391}, {0x01f10, 0x003b5}, {0x01f11, 0x003b5},
    {0x01f12, 0x003b5}, {0x01f13, 0x003b5}, {0x01f14, 0x003b5}, {0x01f15, 0x003b5}, {0x01f18, 0x00395}, {0x01f19, 0x00395},
    {0x01f1a, 0x00395}, {0x01f1b, 0x00395}, {0x01f1c, 0x00395}, {0x01f1d, 0x00395}, {0x01f20, 0x003b7}, {0x01f21, 0x003b7},
    {0x01f22, 0x003b7}, {0x01f23, 0x003b7}, {0x01f24, 0x003b7}, {0x01f25, 0x003b7}, {0x01f26, 0x003b7}, {0x01f27, 0x003b7},
    {0x01f28, 0x00397}, {0x01f29, 0x00397}, {0x01f2a, 0x00397}, {0x01f2b, 0x00397}, {0x01f2c, 0x00397}, {0x01f2d, 0x00397},
    {0x01f2e, 0x00397}, {0x01f2f, 0x00397}, {0x01f30, 0x003b9}, {0x01f31, 0x003b9}, {0x01f32, 0x003b9}, {0x01f33, 0x003b9},
    {0x01f34, 0x003b9}, {0x01f35, 0x003b9}, {0x01f36, 0x003b9}, {0x01f37, 0x003b9}, {0x01f38, 0x00399}, {0x01f39, 0x00399},
    {0x01f3a, 0x00399}, {0x01f3b, 0x00399}, {0x01f3c, 0x00399}, {0x01f3d, 0x00399}, {0x01f3e, 0x00399}, {0x01f3f, 0x00399},
    {0x01f40, 0x003bf}, {0x01f41, 0x003bf}, {0x01f42, 0x003bf}, {0x01f43, 0x003bf}, {0x01f44, 0x003bf}, {0x01f45, 0x003bf},
    {0x01f48, 0x0039f}, {0x01f49, 0x0039f}, {0x01f4a, 0x0039f}, {0x01f4b, 0x0039f}, {0x01f4c, 0x0039f}, {0x01f4d, 0x0039f},
    {0x01f50, 0x003c5}, {0x01f51, 0x003c5}, {0x01f52, 0x003c5}, {0x01f53, 0x003c5}, {0x01f54, 0x003c5}, {0x01f55, 0x003c5},
    {0x01f56, 0x003c5}, {0x01f57, 0x003c5}, {0x01f59, 0x003a5}, {0x01f5b, 0x003a5}, {0x01f5d, 0x003a5}, {0x01f5f, 0x003a5},
    {0x01f60, 0x003c9}, {0x01f61, 0x003c9}, {0x01f62, 0x003c9}, {0x01f63, 0x003c9}, {0x01f64, 0x003c9}, {0x01f65, 0x003c9},
    {0x01f66, 0x003c9}, {0x01f67, 0x003c9}, {0x01f68, 0x003a9}, {0x01f69, 0x003a9}, {0x01f6a, 0x003a9}, {0x01f6b, 0x003a9},
    {0x01f6c, 0x003a9}, {0x01f6d, 0x003a9}, {0x01f6e, 0x003a9}, {0x01f6f, 0x003a9}, {0x01f70, 0x003b1}, {0x01f71, 0x003b1},
    {0x01f72, 0x003b5}, {0x01f73, 0x003b5}, {0x01f74, 0x003b7}, {0x01f75, 0x003b7}, {0x01f76, 0x003b9}, {0x01f77, 0x003b9},
    {0x01f78, 0x003bf}, {0x01f79, 0x003bf}, {0x01f7a, 0x003c5}, {0x01f7b, 0x003c5}, {0x01f7c, 0x003c9}, {0x01f7d, 0x003c9},
    {0x01f80, 0x003b1}, {0x01f81, 0x003b1}, {0x01f82, 0x003b1}, {0x01f83, 0x003b1}, {0x01f84, 0x003b1}, {0x01f85, 0x003b1},
    {0x01f86, 0x003b1}, {0x01f87, 0x003b1}, {0x01f88, 0x00391}, {0x01f89, 0x00391}, {0x01f8a, 0x00391}, {0x01f8b, 0x00391},
    {0x01f8c, 0x00391}, {0x01f8d, 0x00391}, {0x01f8e, 0x00391}, {0x01f8f, 0x00391}, {0x01f90, 0x003b7}, {0x01f91, 0x003b7},
    {0x01f92, 0x003b7}, {0x01f93, 0x003b7}, {0x01f94, 0x003b7}, {0x01f95, 0x003b7}, {0x01f96, 0x003b7}, {0x01f97, 0x003b7},
    {0x01f98, 0x00397}, {0x01f99, 0x00397}, {0x01f9a, 0x00397}, {0x01f9b, 0x00397}, {0x01f9c, 0x00397}, {0x01f9d, 0x00397},
    {0x01f9e, 0x00397}, {0x01f9f, 0x00397}, {0x01fa0, 0x003c9}, {0x01fa1, 0x003c9}, {0x01fa2, 0x003c9}, {0x01fa3, 0x003c9},
    {0x01fa4, 0x003c9}, {0x01fa5, 0x003c9}, {0x01fa6, 0x003c9}, {0x01fa7, 0x003c9}, {0x01fa8, 0x003a9}, {0x01fa9, 0x003a9},
    {0x01faa, 0x003a9}, {0x01fab, 0x003a9}, {0x01fac, 0x003a9}, {0x01fad, 0x003a9}, {0x01fae, 0x003a9}, {0x01faf, 0x003a9},
    {0x01fb0, 0x003b1}, {0x01fb1, 0x003b1}, {0x01fb2, 0x003b1}, {0x01fb3, 0x003b1}, {0x01fb4, 0x003b1}, {0x01fb6, 0x003b1},
    {0x01fb7, 0x003b1}, {0x01fb8, 0x00391}, {0x01fb9, 0x00391}, {0x01fba, 0x00391}, {0x01fbb, 0x00391}, {0x01fbc, 0x00391},
    {0x01fbe, 0x003b9}, {0x01fc1, 0x000a8}, {0x01fc2, 0x003b7}, {0x01fc3, 0x003b7}, {0x01fc4, 0x003b7}, {0x01fc6, 0x003b7},
    {0x01fc7, 0x003b7}, {0x01fc8, 0x00395}, {0x01fc9, 0x00395}, {0x01fca, 0x00397}, {0x01fcb, 0x00397}, {0x01fcc, 0x00397},
    {0x01fcd, 0x01fbf}, {0x01fce, 0x01fbf}, {0x01fcf, 0x01fbf}, {0x01fd0, 0x003b9}, {0x01fd1, 0x003b9}, {0x01fd2, 0x003b9},
    {0x01fd3, 0x003b9}, {0x01fd6, 0x003b9}, {0x01fd7, 0x003b9}, {0x01fd8, 0x00399}, {0x01fd9, 0x00399}, {0x01fda, 0x00399},
    {0x01fdb, 0x00399}, {0x01fdd, 0x01ffe}, {0x01fde, 0x01ffe}, {0x01fdf, 0x01ffe}, {0x01fe0, 0x003c5}, {0x01fe1, 0x003c5},
    {0x01fe2, 0x003c5}, {0x01fe3, 0x003c5}, {0x01fe4, 0x003c1}, {0x01fe5, 0x003c1}, {0x01fe6, 0x003c5}, {0x01fe7, 0x003c5},
    {0x01fe8, 0x003a5}, {0x01fe9, 0x003a5}, {0x01fea, 0x003a5}, {0x01feb, 0x003a5}, {0x01fec, 0x003a1}, {0x01fed, 0x000a8},
    {0x01fee, 0x000a8}, {0x01fef, 0x00060}, {0x01ff2, 0x003c9}, {0x01ff3, 0x003c9}, {0x01ff4, 0x003c9}, {0x01ff6, 0x003c9},
    {0x01ff7, 0x003c9}, {0x01ff8, 0x0039f}, {0x01ff9, 0x0039f}, {0x01ffa, 0x003a9}, {0x01ffb, 0x003a9}, {0x01ffc, 0x003a9},
    {0x01ffd, 0x000b4}, {0x02000, 0x02002}, {0x02001, 0x02003}, {0x02126, 0x003a9}, {0x0212a, 0x0004b}, {0x0212b, 0x00041},
    {0x0219a, 0x02190}, {0x0219b, 0x02192}, {0x021ae, 0x02194}, {0x021cd, 0x021d0}, {0x021ce, 0x021d4}, {0x021cf, 0x021d2},
    {0x02204, 0x02203}, {0x02209, 0x02208}, {0x0220c, 0x0220b}, {0x02224, 0x02223}, {0x02226, 0x02225}, {0x02241, 0x0223c},
    {0x02244, 0x02243}, {0x02247, 0x02245}, {0x02249, 0x02248}, {0x02260, 0x0003d}, {0x02262, 0x02261}, {0x0226d, 0x0224d},
    {0x0226e, 0x0003c}, {0x0226f, 0x0003e}, {0x02270, 0x02264}, {0x02271, 0x02265}, {0x02274, 0x02272}, {0x02275, 0x02273},
    {0x02278, 0x02276}, {0x02279, 0x02277}, {0x02280, 0x0227a}, {0x02281, 0x0227b}, {0x02284, 0x02282}, {0x02285, 0x02283},
    {0x02288, 0x02286}, {0x02289, 0x02287}, {0x022ac, 0x022a2}, {0x022ad, 0x022a8}, {0x022ae, 0x022a9}, {0x022af, 0x022ab},
    {0x022e0, 0x0227c}, {0x022e1, 0x0227d}, {0x022e2, 0x02291}, {0x022e3, 0x02292}, {0x022ea, 0x022b2}, {0x022eb, 0x022b3},
    {0x022ec, 0x022b4}, {0x022ed, 0x022b5}, {0x02329, 0x03008}, {0x0232a, 0x03009}, {0x02adc, 0x02add}, {0x0304c, 0x0304b},
    {0x0304e, 0x0304d}, {0x03050, 0x0304f}, {0x03052, 0x03051}, {0x03054, 0x03053}, {0x03056, 0x03055}, {0x03058, 0x03057},
    {0x0305a, 0x03059}, {0x0305c, 0x0305b}, {0x0305e, 0x0305d}, {0x03060, 0x0305f}, {0x03062, 0x03061}, {0x03065, 0x03064},
    {0x03067, 0x03066}, {0x03069, 0x03068}, {0x03070, 0x0306f}, {0x03071, 0x0306f}, {0x03073, 0x03072}, {0x03074, 0x03072},
    {0x03076, 0x03075}, {0x03077, 0x03075}, {0x03079, 0x03078}, {0x0307a, 0x03078}, {0x0307c, 0x0307b}, {0x0307d, 0x0307b},
    {0x03094, 0x03046}, {0x0309e, 0x0309d}, {0x030ac, 0x030ab}, {0x030ae, 0x030ad}, {0x030b0, 0x030af}, {0x030b2, 0x030b1},
    {0x030b4, 0x030b3}, {0x030b6, 0x030b5}, {0x030b8, 0x030b7}, {0x030ba, 0x030b9}, {0x030bc, 0x030bb}, {0x030be, 0x030bd},
    {0x030c0, 0x030bf}, {0x030c2, 0x030c1}, {0x030c5, 0x030c4}, {0x030c7, 0x030c6}, {0x030c9, 0x030c8}, {0x030d0, 0x030cf},
    {0x030d1, 0x030cf}, {0x030d3, 0x030d2}, {0x030d4, 0x030d2}, {0x030d6, 0x030d5}, {0x030d7, 0x030d5}, {0x030d9, 0x030d8},
    {0x030da, 0x030d8}, {0x030dc, 0x030db}, {0x030dd, 0x030db}, {0x030f4, 0x030a6}, {0x030f7, 0x030ef}, {0x030f8, 0x030f0},
    {0x030f9, 0x030f1}, {0x030fa, 0x030f2}, {0x030fe, 0x030fd}, {0x0f900, 0x08c48}, {0x0f901, 0x066f4}, {0x0f902, 0x08eca},
    {0x0f903, 0x08cc8}, {0x0f904, 0x06ed1}, {0x0f905, 0x04e32}, {0x0f906, 0x053e5}, {0x0f907, 0x09f9c}, {0x0f908, 0x09f9c},
    {0x0f909, 0x05951}, {0x0f90a, 0x091d1}, {0x0f90b, 0x05587}, {0x0f90c, 0x05948}, {0x0f90d, 0x061f6}, {0x0f90e, 0x07669},
    {0x0f90f, 0x07f85}, {0x0f910, 0x0863f}, {0x0f911, 0x087ba}, {0x0f912, 0x088f8}, {0x0f913, 0x0908f}, {0x0f914, 0x06a02},
    {0x0f915, 0x06d1b}, {0x0f916, 0x070d9}, {0x0f917, 0x073de}, {0x0f918, 0x0843d}, {0x0f919, 0x0916a}, {0x0f91a, 0x099f1},
    {0x0f91b, 0x04e82}, {0x0f91c, 0x05375}, {0x0f91d, 0x06b04}, {0x0f91e, 0x0721b}, {0x0f91f, 0x0862d}, {0x0f920, 0x09e1e},
    {0x0f921, 0x05d50}, {0x0f922, 0x06feb}, {0x0f923, 0x085cd}, {0x0f924, 0x08964}, {0x0f925, 0x062c9}, {0x0f926, 0x081d8},
    {0x0f927, 0x0881f}, {0x0f928, 0x05eca}, {0x0f929, 0x06717}, {0x0f92a, 0x06d6a}, {0x0f92b, 0x072fc}, {0x0f92c, 0x090ce},
    {0x0f92d, 0x04f86}, {0x0f92e, 0x051b7}, {0x0f92f, 0x052de}, {0x0f930, 0x064c4}, {0x0f931, 0x06ad3}, {0x0f932, 0x07210},
    {0x0f933, 0x076e7}, {0x0f934, 0x08001}, {0x0f935, 0x08606}, {0x0f936, 0x0865c}, {0x0f937, 0x08def}, {0x0f938, 0x09732},
    {0x0f939, 0x09b6f}, {0x0f93a, 0x09dfa}, {0x0f93b, 0x0788c}, {0x0f93c, 0x0797f}, {0x0f93d, 0x07da0}, {0x0f93e, 0x083c9},
    {0x0f93f, 0x09304}, {0x0f940, 0x09e7f}, {0x0f941, 0x08ad6}, {0x0f942, 0x058df}, {0x0f943, 0x05f04}, {0x0f944, 0x07c60},
    {0x0f945, 0x0807e}, {0x0f946, 0x07262}, {0x0f947, 0x078ca}, {0x0f948, 0x08cc2}, {0x0f949, 0x096f7}, {0x0f94a, 0x058d8},
    {0x0f94b, 0x05c62}, {0x0f94c, 0x06a13}, {0x0f94d, 0x06dda}, {0x0f94e, 0x06f0f}, {0x0f94f, 0x07d2f}, {0x0f950, 0x07e37},
    {0x0f951, 0x0964b}, {0x0f952, 0x052d2}, {0x0f953, 0x0808b}, {0x0f954, 0x051dc}, {0x0f955, 0x051cc}, {0x0f956, 0x07a1c},
    {0x0f957, 0x07dbe}, {0x0f958, 0x083f1}, {0x0f959, 0x09675}, {0x0f95a, 0x08b80}, {0x0f95b, 0x062cf}, {0x0f95c, 0x06a02},
    {0x0f95d, 0x08afe}, {0x0f95e, 0x04e39}, {0x0f95f, 0x05be7}, {0x0f960, 0x06012}, {0x0f961, 0x07387}, {0x0f962, 0x07570},
    {0x0f963, 0x05317}, {0x0f964, 0x078fb}, {0x0f965, 0x04fbf}, {0x0f966, 0x05fa9}, {0x0f967, 0x04e0d}, {0x0f968, 0x06ccc},
    {0x0f969, 0x06578}, {0x0f96a, 0x07d22}, {0x0f96b, 0x053c3}, {0x0f96c, 0x0585e}, {0x0f96d, 0x07701}, {0x0f96e, 0x08449},
    {0x0f96f, 0x08aaa}, {0x0f970, 0x06bba}, {0x0f971, 0x08fb0}, {0x0f972, 0x06c88}, {0x0f973, 0x062fe}, {0x0f974, 0x082e5},
    {0x0f975, 0x063a0}, {0x0f976, 0x07565}, {0x0f977, 0x04eae}, {0x0f978, 0x05169}, {0x0f979, 0x051c9}, {0x0f97a, 0x06881},
    {0x0f97b, 0x07ce7}, {0x0f97c, 0x0826f}, {0x0f97d, 0x08ad2}, {0x0f97e, 0x091cf}, {0x0f97f, 0x052f5}, {0x0f980, 0x05442},
    {0x0f981, 0x05973}, {0x0f982, 0x05eec}, {0x0f983, 0x065c5}, {0x0f984, 0x06ffe}, {0x0f985, 0x0792a}, {0x0f986, 0x095ad},
    {0x0f987, 0x09a6a}, {0x0f988, 0x09e97}, {0x0f989, 0x09ece}, {0x0f98a, 0x0529b}, {0x0f98b, 0x066c6}, {0x0f98c, 0x06b77},
    {0x0f98d, 0x08f62}, {0x0f98e, 0x05e74}, {0x0f98f, 0x06190}, {0x0f990, 0x06200}, {0x0f991, 0x0649a}, {0x0f992, 0x06f23},
    {0x0f993, 0x07149}, {0x0f994, 0x07489}, {0x0f995, 0x079ca}, {0x0f996, 0x07df4}, {0x0f997, 0x0806f}, {0x0f998, 0x08f26},
    {0x0f999, 0x084ee}, {0x0f99a, 0x09023}, {0x0f99b, 0x0934a}, {0x0f99c, 0x05217}, {0x0f99d, 0x052a3}, {0x0f99e, 0x054bd},
    {0x0f99f, 0x070c8}, {0x0f9a0, 0x088c2}, {0x0f9a1, 0x08aaa}, {0x0f9a2, 0x05ec9}, {0x0f9a3, 0x05ff5}, {0x0f9a4, 0x0637b},
    {0x0f9a5, 0x06bae}, {0x0f9a6, 0x07c3e}, {0x0f9a7, 0x07375}, {0x0f9a8, 0x04ee4}, {0x0f9a9, 0x056f9}, {0x0f9aa, 0x05be7},
    {0x0f9ab, 0x05dba}, {0x0f9ac, 0x0601c}, {0x0f9ad, 0x073b2}, {0x0f9ae, 0x07469}, {0x0f9af, 0x07f9a}, {0x0f9b0, 0x08046},
    {0x0f9b1, 0x09234}, {0x0f9b2, 0x096f6}, {0x0f9b3, 0x09748}, {0x0f9b4, 0x09818}, {0x0f9b5, 0x04f8b}, {0x0f9b6, 0x079ae},
    {0x0f9b7, 0x091b4}, {0x0f9b8, 0x096b8}, {0x0f9b9, 0x060e1}, {0x0f9ba, 0x04e86}, {0x0f9bb, 0x050da}, {0x0f9bc, 0x05bee},
    {0x0f9bd, 0x05c3f}, {0x0f9be, 0x06599}, {0x0f9bf, 0x06a02}, {0x0f9c0, 0x071ce}, {0x0f9c1, 0x07642}, {0x0f9c2, 0x084fc},
    {0x0f9c3, 0x0907c}, {0x0f9c4, 0x09f8d}, {0x0f9c5, 0x06688}, {0x0f9c6, 0x0962e}, {0x0f9c7, 0x05289}, {0x0f9c8, 0x0677b},
    {0x0f9c9, 0x067f3}, {0x0f9ca, 0x06d41}, {0x0f9cb, 0x06e9c}, {0x0f9cc, 0x07409}, {0x0f9cd, 0x07559}, {0x0f9ce, 0x0786b},
    {0x0f9cf, 0x07d10}, {0x0f9d0, 0x0985e}, {0x0f9d1, 0x0516d}, {0x0f9d2, 0x0622e}, {0x0f9d3, 0x09678}, {0x0f9d4, 0x0502b},
    {0x0f9d5, 0x05d19}, {0x0f9d6, 0x06dea}, {0x0f9d7, 0x08f2a}, {0x0f9d8, 0x05f8b}, {0x0f9d9, 0x06144}, {0x0f9da, 0x06817},
    {0x0f9db, 0x07387}, {0x0f9dc, 0x09686}, {0x0f9dd, 0x05229}, {0x0f9de, 0x0540f}, {0x0f9df, 0x05c65}, {0x0f9e0, 0x06613},
    {0x0f9e1, 0x0674e}, {0x0f9e2, 0x068a8}, {0x0f9e3, 0x06ce5}, {0x0f9e4, 0x07406}, {0x0f9e5, 0x075e2}, {0x0f9e6, 0x07f79},
    {0x0f9e7, 0x088cf}, {0x0f9e8, 0x088e1}, {0x0f9e9, 0x091cc}, {0x0f9ea, 0x096e2}, {0x0f9eb, 0x0533f}, {0x0f9ec, 0x06eba},
    {0x0f9ed, 0x0541d}, {0x0f9ee, 0x071d0}, {0x0f9ef, 0x07498}, {0x0f9f0, 0x085fa}, {0x0f9f1, 0x096a3}, {0x0f9f2, 0x09c57},
    {0x0f9f3, 0x09e9f}, {0x0f9f4, 0x06797}, {0x0f9f5, 0x06dcb}, {0x0f9f6, 0x081e8}, {0x0f9f7, 0x07acb}, {0x0f9f8, 0x07b20},
    {0x0f9f9, 0x07c92}, {0x0f9fa, 0x072c0}, {0x0f9fb, 0x07099}, {0x0f9fc, 0x08b58}, {0x0f9fd, 0x04ec0}, {0x0f9fe, 0x08336},
    {0x0f9ff, 0x0523a}, {0x0fa00, 0x05207}, {0x0fa01, 0x05ea6}, {0x0fa02, 0x062d3}, {0x0fa03, 0x07cd6}, {0x0fa04, 0x05b85},
    {0x0fa05, 0x06d1e}, {0x0fa06, 0x066b4}, {0x0fa07, 0x08f3b}, {0x0fa08, 0x0884c}, {0x0fa09, 0x0964d}, {0x0fa0a, 0x0898b},
    {0x0fa0b, 0x05ed3}, {0x0fa0c, 0x05140}, {0x0fa0d, 0x055c0}, {0x0fa10, 0x0585a}, {0x0fa12, 0x06674}, {0x0fa15, 0x051de},
    {0x0fa16, 0x0732a}, {0x0fa17, 0x076ca}, {0x0fa18, 0x0793c}, {0x0fa19, 0x0795e}, {0x0fa1a, 0x07965}, {0x0fa1b, 0x0798f},
    {0x0fa1c, 0x09756}, {0x0fa1d, 0x07cbe}, {0x0fa1e, 0x07fbd}, {0x0fa20, 0x08612}, {0x0fa22, 0x08af8}, {0x0fa25, 0x09038},
    {0x0fa26, 0x090fd}, {0x0fa2a, 0x098ef}, {0x0fa2b, 0x098fc}, {0x0fa2c, 0x09928}, {0x0fa2d, 0x09db4}, {0x0fa2e, 0x090de},
    {0x0fa2f, 0x096b7}, {0x0fa30, 0x04fae}, {0x0fa31, 0x050e7}, {0x0fa32, 0x0514d}, {0x0fa33, 0x052c9}, {0x0fa34, 0x052e4},
    {0x0fa35, 0x05351}, {0x0fa36, 0x0559d}, {0x0fa37, 0x05606}, {0x0fa38, 0x05668}, {0x0fa39, 0x05840}, {0x0fa3a, 0x058a8},
    {0x0fa3b, 0x05c64}, {0x0fa3c, 0x05c6e}, {0x0fa3d, 0x06094}, {0x0fa3e, 0x06168}, {0x0fa3f, 0x0618e}, {0x0fa40, 0x061f2},
    {0x0fa41, 0x0654f}, {0x0fa42, 0x065e2}, {0x0fa43, 0x06691}, {0x0fa44, 0x06885}, {0x0fa45, 0x06d77}, {0x0fa46, 0x06e1a},
    {0x0fa47, 0x06f22}, {0x0fa48, 0x0716e}, {0x0fa49, 0x0722b}, {0x0fa4a, 0x07422}, {0x0fa4b, 0x07891}, {0x0fa4c, 0x0793e},
    {0x0fa4d, 0x07949}, {0x0fa4e, 0x07948}, {0x0fa4f, 0x07950}, {0x0fa50, 0x07956}, {0x0fa51, 0x0795d}, {0x0fa52, 0x0798d},
    {0x0fa53, 0x0798e}, {0x0fa54, 0x07a40}, {0x0fa55, 0x07a81}, {0x0fa56, 0x07bc0}, {0x0fa57, 0x07df4}, {0x0fa58, 0x07e09},
    {0x0fa59, 0x07e41}, {0x0fa5a, 0x07f72}, {0x0fa5b, 0x08005}, {0x0fa5c, 0x081ed}, {0x0fa5d, 0x08279}, {0x0fa5e, 0x08279},
    {0x0fa5f, 0x08457}, {0x0fa60, 0x08910}, {0x0fa61, 0x08996}, {0x0fa62, 0x08b01}, {0x0fa63, 0x08b39}, {0x0fa64, 0x08cd3},
    {0x0fa65, 0x08d08}, {0x0fa66, 0x08fb6}, {0x0fa67, 0x09038}, {0x0fa68, 0x096e3}, {0x0fa69, 0x097ff}, {0x0fa6a, 0x0983b},
    {0x0fa6b, 0x06075}, {0x0fa6c, 0x242ee}, {0x0fa6d, 0x08218}, {0x0fa70, 0x04e26}, {0x0fa71, 0x051b5}, {0x0fa72, 0x05168},
    {0x0fa73, 0x04f80}, {0x0fa74, 0x05145}, {0x0fa75, 0x05180}, {0x0fa76, 0x052c7}, {0x0fa77, 0x052fa}, {0x0fa78, 0x0559d},
    {0x0fa79, 0x05555}, {0x0fa7a, 0x05599}, {0x0fa7b, 0x055e2}, {0x0fa7c, 0x0585a}, {0x0fa7d, 0x058b3}, {0x0fa7e, 0x05944},
    {0x0fa7f, 0x05954}, {0x0fa80, 0x05a62}, {0x0fa81, 0x05b28}, {0x0fa82, 0x05ed2}, {0x0fa83, 0x05ed9}, {0x0fa84, 0x05f69},
    {0x0fa85, 0x05fad}, {0x0fa86, 0x060d8}, {0x0fa87, 0x0614e}, {0x0fa88, 0x06108}, {0x0fa89, 0x0618e}, {0x0fa8a, 0x06160},
    {0x0fa8b, 0x061f2}, {0x0fa8c, 0x06234}, {0x0fa8d, 0x063c4}, {0x0fa8e, 0x0641c}, {0x0fa8f, 0x06452}, {0x0fa90, 0x06556},
    {0x0fa91, 0x06674}, {0x0fa92, 0x06717}, {0x0fa93, 0x0671b}, {0x0fa94, 0x06756}, {0x0fa95, 0x06b79}, {0x0fa96, 0x06bba},
    {0x0fa97, 0x06d41}, {0x0fa98, 0x06edb}, {0x0fa99, 0x06ecb}, {0x0fa9a, 0x06f22}, {0x0fa9b, 0x0701e}, {0x0fa9c, 0x0716e},
    {0x0fa9d, 0x077a7}, {0x0fa9e, 0x07235}, {0x0fa9f, 0x072af}, {0x0faa0, 0x0732a}, {0x0faa1, 0x07471}, {0x0faa2, 0x07506},
    {0x0faa3, 0x0753b}, {0x0faa4, 0x0761d}, {0x0faa5, 0x0761f}, {0x0faa6, 0x076ca}, {0x0faa7, 0x076db}, {0x0faa8, 0x076f4},
    {0x0faa9, 0x0774a}, {0x0faaa, 0x07740}, {0x0faab, 0x078cc}, {0x0faac, 0x07ab1}, {0x0faad, 0x07bc0}, {0x0faae, 0x07c7b},
    {0x0faaf, 0x07d5b}, {0x0fab0, 0x07df4}, {0x0fab1, 0x07f3e}, {0x0fab2, 0x08005}, {0x0fab3, 0x08352}, {0x0fab4, 0x083ef},
    {0x0fab5, 0x08779}, {0x0fab6, 0x08941}, {0x0fab7, 0x08986}, {0x0fab8, 0x08996}, {0x0fab9, 0x08abf}, {0x0faba, 0x08af8},
    {0x0fabb, 0x08acb}, {0x0fabc, 0x08b01}, {0x0fabd, 0x08afe}, {0x0fabe, 0x08aed}, {0x0fabf, 0x08b39}, {0x0fac0, 0x08b8a},
    {0x0fac1, 0x08d08}, {0x0fac2, 0x08f38}, {0x0fac3, 0x09072}, {0x0fac4, 0x09199}, {0x0fac5, 0x09276}, {0x0fac6, 0x0967c},
    {0x0fac7, 0x096e3}, {0x0fac8, 0x09756}, {0x0fac9, 0x097db}, {0x0faca, 0x097ff}, {0x0facb, 0x0980b}, {0x0facc, 0x0983b},
    {0x0facd, 0x09b12}, {0x0face, 0x09f9c}, {0x0facf, 0x2284a}, {0x0fad0, 0x22844}, {0x0fad1, 0x233d5}, {0x0fad2, 0x03b9d},
    {0x0fad3, 0x04018}, {0x0fad4, 0x04039}, {0x0fad5, 0x25249}, {0x0fad6, 0x25cd0}, {0x0fad7, 0x27ed3}, {0x0fad8, 0x09f43},
    {0x0fad9, 0x09f8e}, {0x0fb1d, 0x005d9}, {0x0fb1f, 0x005f2}, {0x0fb2a, 0x005e9}, {0x0fb2b, 0x005e9}, {0x0fb2c, 0x005e9},
    {0x0fb2d, 0x005e9}, {0x0fb2e, 0x005d0}, {0x0fb2f, 0x005d0}, {0x0fb30, 0x005d0}, {0x0fb31, 0x005d1}, {0x0fb32, 0x005d2},
    {0x0fb33, 0x005d3}, {0x0fb34, 0x005d4}, {0x0fb35, 0x005d5}, {0x0fb36, 0x005d6}, {0x0fb38, 0x005d8}, {0x0fb39, 0x005d9},
    {0x0fb3a, 0x005da}, {0x0fb3b, 0x005db}, {0x0fb3c, 0x005dc}, {0x0fb3e, 0x005de}, {0x0fb40, 0x005e0}, {0x0fb41, 0x005e1},
    {0x0fb43, 0x005e3}, {0x0fb44, 0x005e4}, {0x0fb46, 0x005e6}, {0x0fb47, 0x005e7}, {0x0fb48, 0x005e8}, {0x0fb49, 0x005e9},
    {0x0fb4a, 0x005ea}, {0x0fb4b, 0x005d5}, {0x0fb4c, 0x005d1}, {0x0fb4d, 0x005db}, {0x0fb4e, 0x005e4}, {0x1109a, 0x11099},
    {0x1109c, 0x1109b}, {0x110ab, 0x110a5}, {0x1112e, 0x11131}, {0x1112f, 0x11132}, {0x1134b, 0x11347}, {0x1134c, 0x11347},
    {0x114bb, 0x114b9}, {0x114bc, 0x114b9}, {0x114be, 0x114b9}, {0x115ba, 0x115b8}, {0x115bb, 0x115b9}, {0x11938, 0x11935},
    {0x1d15e, 0x1d157}, {0x1d15f, 0x1d158}, {0x1d160, 0x1d158}, {0x1d161, 0x1d158}, {0x1d162, 0x1d158}, {0x1d163, 0x1d158},
    {0x1d164, 0x1d158}, {0x1d1bb, 0x1d1b9}, {0x1d1bc, 0x1d1ba}, {0x1d1bd, 0x1d1b9}, {0x1d1be, 0x1d1ba}, {0x1d1bf, 0x1d1b9},
    {0x1d1c0, 0x1d1ba}, {0x2f800, 0x04e3d}, {0x2f801, 0x04e38}, {0x2f802, 0x04e41}, {0x2f803, 0x20122}, {0x2f804, 0x04f60},
    {0x2f805, 0x04fae}, {0x2f806, 0x04fbb}, {0x2f807, 0x05002}, {0x2f808, 0x0507a}, {0x2f809, 0x05099}, {0x2f80a, 0x050e7},
    {0x2f80b, 0x050cf}, {0x2f80c, 0x0349e}, {0x2f80d, 0x2063a}, {0x2f80e, 0x0514d}, {0x2f80f, 0x05154}, {0x2f810, 0x05164},
    {0x2f811, 0x05177}, {0x2f812, 0x2051c}, {0x2f813, 0x034b9}, {0x2f814, 0x05167}, {0x2f815, 0x0518d}, {0x2f816, 0x2054b},
    {0x2f817, 0x05197}, {0x2f818, 0x051a4}, {0x2f819, 0x04ecc}, {0x2f81a, 0x051ac}, {0x2f81b, 0x051b5}, {0x2f81c, 0x291df},
    {0x2f81d, 0x051f5}, {0x2f81e, 0x05203}, {0x2f81f, 0x034df}, {0x2f820, 0x0523b}, {0x2f821, 0x05246}, {0x2f822, 0x05272},
    {0x2f823, 0x05277}, {0x2f824, 0x03515}, {0x2f825, 0x052c7}, {0x2f826, 0x052c9}, {0x2f827, 0x052e4}, {0x2f828, 0x052fa},
    {0x2f829, 0x05305}, {0x2f82a, 0x05306}, {0x2f82b, 0x05317}, {0x2f82c, 0x05349}, {0x2f82d, 0x05351}, {0x2f82e, 0x0535a},
    {0x2f82f, 0x05373}, {0x2f830, 0x0537d}, {0x2f831, 0x0537f}, {0x2f832, 0x0537f}, {0x2f833, 0x0537f}, {0x2f834, 0x20a2c},
    {0x2f835, 0x07070}, {0x2f836, 0x053ca}, {0x2f837, 0x053df}, {0x2f838, 0x20b63}, {0x2f839, 0x053eb}, {0x2f83a, 0x053f1},
    {0x2f83b, 0x05406}, {0x2f83c, 0x0549e}, {0x2f83d, 0x05438}, {0x2f83e, 0x05448}, {0x2f83f, 0x05468}, {0x2f840, 0x054a2},
    {0x2f841, 0x054f6}, {0x2f842, 0x05510}, {0x2f843, 0x05553}, {0x2f844, 0x05563}, {0x2f845, 0x05584}, {0x2f846, 0x05584},
    {0x2f847, 0x05599}, {0x2f848, 0x055ab}, {0x2f849, 0x055b3}, {0x2f84a, 0x055c2}, {0x2f84b, 0x05716}, {0x2f84c, 0x05606},
    {0x2f84d, 0x05717}, {0x2f84e, 0x05651}, {0x2f84f, 0x05674}, {0x2f850, 0x05207}, {0x2f851, 0x058ee}, {0x2f852, 0x057ce},
    {0x2f853, 0x057f4}, {0x2f854, 0x0580d}, {0x2f855, 0x0578b}, {0x2f856, 0x05832}, {0x2f857, 0x05831}, {0x2f858, 0x058ac},
    {0x2f859, 0x214e4}, {0x2f85a, 0x058f2}, {0x2f85b, 0x058f7}, {0x2f85c, 0x05906}, {0x2f85d, 0x0591a}, {0x2f85e, 0x05922},
    {0x2f85f, 0x05962}, {0x2f860, 0x216a8}, {0x2f861, 0x216ea}, {0x2f862, 0x059ec}, {0x2f863, 0x05a1b}, {0x2f864, 0x05a27},
    {0x2f865, 0x059d8}, {0x2f866, 0x05a66}, {0x2f867, 0x036ee}, {0x2f868, 0x036fc}, {0x2f869, 0x05b08}, {0x2f86a, 0x05b3e},
    {0x2f86b, 0x05b3e}, {0x2f86c, 0x219c8}, {0x2f86d, 0x05bc3}, {0x2f86e, 0x05bd8}, {0x2f86f, 0x05be7}, {0x2f870, 0x05bf3},
    {0x2f871, 0x21b18}, {0x2f872, 0x05bff}, {0x2f873, 0x05c06}, {0x2f874, 0x05f53}, {0x2f875, 0x05c22}, {0x2f876, 0x03781},
    {0x2f877, 0x05c60}, {0x2f878, 0x05c6e}, {0x2f879, 0x05cc0}, {0x2f87a, 0x05c8d}, {0x2f87b, 0x21de4}, {0x2f87c, 0x05d43},
    {0x2f87d, 0x21de6}, {0x2f87e, 0x05d6e}, {0x2f87f, 0x05d6b}, {0x2f880, 0x05d7c}, {0x2f881, 0x05de1}, {0x2f882, 0x05de2},
    {0x2f883, 0x0382f}, {0x2f884, 0x05dfd}, {0x2f885, 0x05e28}, {0x2f886, 0x05e3d}, {0x2f887, 0x05e69}, {0x2f888, 0x03862},
    {0x2f889, 0x22183}, {0x2f88a, 0x0387c}, {0x2f88b, 0x05eb0}, {0x2f88c, 0x05eb3}, {0x2f88d, 0x05eb6}, {0x2f88e, 0x05eca},
    {0x2f88f, 0x2a392}, {0x2f890, 0x05efe}, {0x2f891, 0x22331}, {0x2f892, 0x22331}, {0x2f893, 0x08201}, {0x2f894, 0x05f22},
    {0x2f895, 0x05f22}, {0x2f896, 0x038c7}, {0x2f897, 0x232b8}, {0x2f898, 0x261da}, {0x2f899, 0x05f62}, {0x2f89a, 0x05f6b},
    {0x2f89b, 0x038e3}, {0x2f89c, 0x05f9a}, {0x2f89d, 0x05fcd}, {0x2f89e, 0x05fd7}, {0x2f89f, 0x05ff9}, {0x2f8a0, 0x06081},
    {0x2f8a1, 0x0393a}, {0x2f8a2, 0x0391c}, {0x2f8a3, 0x06094}, {0x2f8a4, 0x226d4}, {0x2f8a5, 0x060c7}, {0x2f8a6, 0x06148},
    {0x2f8a7, 0x0614c}, {0x2f8a8, 0x0614e}, {0x2f8a9, 0x0614c}, {0x2f8aa, 0x0617a}, {0x2f8ab, 0x0618e}, {0x2f8ac, 0x061b2},
    {0x2f8ad, 0x061a4}, {0x2f8ae, 0x061af}, {0x2f8af, 0x061de}, {0x2f8b0, 0x061f2}, {0x2f8b1, 0x061f6}, {0x2f8b2, 0x06210},
    {0x2f8b3, 0x0621b}, {0x2f8b4, 0x0625d}, {0x2f8b5, 0x062b1}, {0x2f8b6, 0x062d4}, {0x2f8b7, 0x06350}, {0x2f8b8, 0x22b0c},
    {0x2f8b9, 0x0633d}, {0x2f8ba, 0x062fc}, {0x2f8bb, 0x06368}, {0x2f8bc, 0x06383}, {0x2f8bd, 0x063e4}, {0x2f8be, 0x22bf1},
    {0x2f8bf, 0x06422}, {0x2f8c0, 0x063c5}, {0x2f8c1, 0x063a9}, {0x2f8c2, 0x03a2e}, {0x2f8c3, 0x06469}, {0x2f8c4, 0x0647e},
    {0x2f8c5, 0x0649d}, {0x2f8c6, 0x06477}, {0x2f8c7, 0x03a6c}, {0x2f8c8, 0x0654f}, {0x2f8c9, 0x0656c}, {0x2f8ca, 0x2300a},
    {0x2f8cb, 0x065e3}, {0x2f8cc, 0x066f8}, {0x2f8cd, 0x06649}, {0x2f8ce, 0x03b19}, {0x2f8cf, 0x06691}, {0x2f8d0, 0x03b08},
    {0x2f8d1, 0x03ae4}, {0x2f8d2, 0x05192}, {0x2f8d3, 0x05195}, {0x2f8d4, 0x06700}, {0x2f8d5, 0x0669c}, {0x2f8d6, 0x080ad},
    {0x2f8d7, 0x043d9}, {0x2f8d8, 0x06717}, {0x2f8d9, 0x0671b}, {0x2f8da, 0x06721}, {0x2f8db, 0x0675e}, {0x2f8dc, 0x06753},
    {0x2f8dd, 0x233c3}, {0x2f8de, 0x03b49}, {0x2f8df, 0x067fa}, {0x2f8e0, 0x06785}, {0x2f8e1, 0x06852}, {0x2f8e2, 0x06885},
    {0x2f8e3, 0x2346d}, {0x2f8e4, 0x0688e}, {0x2f8e5, 0x0681f}, {0x2f8e6, 0x06914}, {0x2f8e7, 0x03b9d}, {0x2f8e8, 0x06942},
    {0x2f8e9, 0x069a3}, {0x2f8ea, 0x069ea}, {0x2f8eb, 0x06aa8}, {0x2f8ec, 0x236a3}, {0x2f8ed, 0x06adb}, {0x2f8ee, 0x03c18},
    {0x2f8ef, 0x06b21}, {0x2f8f0, 0x238a7}, {0x2f8f1, 0x06b54}, {0x2f8f2, 0x03c4e}, {0x2f8f3, 0x06b72}, {0x2f8f4, 0x06b9f},
    {0x2f8f5, 0x06bba}, {0x2f8f6, 0x06bbb}, {0x2f8f7, 0x23a8d}, {0x2f8f8, 0x21d0b}, {0x2f8f9, 0x23afa}, {0x2f8fa, 0x06c4e},
    {0x2f8fb, 0x23cbc}, {0x2f8fc, 0x06cbf}, {0x2f8fd, 0x06ccd}, {0x2f8fe, 0x06c67}, {0x2f8ff, 0x06d16}, {0x2f900, 0x06d3e},
    {0x2f901, 0x06d77}, {0x2f902, 0x06d41}, {0x2f903, 0x06d69}, {0x2f904, 0x06d78}, {0x2f905, 0x06d85}, {0x2f906, 0x23d1e},
    {0x2f907, 0x06d34}, {0x2f908, 0x06e2f}, {0x2f909, 0x06e6e}, {0x2f90a, 0x03d33}, {0x2f90b, 0x06ecb}, {0x2f90c, 0x06ec7},
    {0x2f90d, 0x23ed1}, {0x2f90e, 0x06df9}, {0x2f90f, 0x06f6e}, {0x2f910, 0x23f5e}, {0x2f911, 0x23f8e}, {0x2f912, 0x06fc6},
    {0x2f913, 0x07039}, {0x2f914, 0x0701e}, {0x2f915, 0x0701b}, {0x2f916, 0x03d96}, {0x2f917, 0x0704a}, {0x2f918, 0x0707d},
    {0x2f919, 0x07077}, {0x2f91a, 0x070ad}, {0x2f91b, 0x20525}, {0x2f91c, 0x07145}, {0x2f91d, 0x24263}, {0x2f91e, 0x0719c},
    {0x2f91f, 0x243ab}, {0x2f920, 0x07228}, {0x2f921, 0x07235}, {0x2f922, 0x07250}, {0x2f923, 0x24608}, {0x2f924, 0x07280},
    {0x2f925, 0x07295}, {0x2f926, 0x24735}, {0x2f927, 0x24814}, {0x2f928, 0x0737a}, {0x2f929, 0x0738b}, {0x2f92a, 0x03eac},
    {0x2f92b, 0x073a5}, {0x2f92c, 0x03eb8}, {0x2f92d, 0x03eb8}, {0x2f92e, 0x07447}, {0x2f92f, 0x0745c}, {0x2f930, 0x07471},
    {0x2f931, 0x07485}, {0x2f932, 0x074ca}, {0x2f933, 0x03f1b}, {0x2f934, 0x07524}, {0x2f935, 0x24c36}, {0x2f936, 0x0753e},
    {0x2f937, 0x24c92}, {0x2f938, 0x07570}, {0x2f939, 0x2219f}, {0x2f93a, 0x07610}, {0x2f93b, 0x24fa1}, {0x2f93c, 0x24fb8},
    {0x2f93d, 0x25044}, {0x2f93e, 0x03ffc}, {0x2f93f, 0x04008}, {0x2f940, 0x076f4}, {0x2f941, 0x250f3}, {0x2f942, 0x250f2},
    {0x2f943, 0x25119}, {0x2f944, 0x25133}, {0x2f945, 0x0771e}, {0x2f946, 0x0771f}, {0x2f947, 0x0771f}, {0x2f948, 0x0774a},
    {0x2f949, 0x04039}, {0x2f94a, 0x0778b}, {0x2f94b, 0x04046}, {0x2f94c, 0x04096}, {0x2f94d, 0x2541d}, {0x2f94e, 0x0784e},
    {0x2f94f, 0x0788c}, {0x2f950, 0x078cc}, {0x2f951, 0x040e3}, {0x2f952, 0x25626}, {0x2f953, 0x07956}, {0x2f954, 0x2569a},
    {0x2f955, 0x256c5}, {0x2f956, 0x0798f}, {0x2f957, 0x079eb}, {0x2f958, 0x0412f}, {0x2f959, 0x07a40}, {0x2f95a, 0x07a4a},
    {0x2f95b, 0x07a4f}, {0x2f95c, 0x2597c}, {0x2f95d, 0x25aa7}, {0x2f95e, 0x25aa7}, {0x2f95f, 0x07aee}, {0x2f960, 0x04202},
    {0x2f961, 0x25bab}, {0x2f962, 0x07bc6}, {0x2f963, 0x07bc9}, {0x2f964, 0x04227}, {0x2f965, 0x25c80}, {0x2f966, 0x07cd2},
    {0x2f967, 0x042a0}, {0x2f968, 0x07ce8}, {0x2f969, 0x07ce3}, {0x2f96a, 0x07d00}, {0x2f96b, 0x25f86}, {0x2f96c, 0x07d63},
    {0x2f96d, 0x04301}, {0x2f96e, 0x07dc7}, {0x2f96f, 0x07e02}, {0x2f970, 0x07e45}, {0x2f971, 0x04334}, {0x2f972, 0x26228},
    {0x2f973, 0x26247}, {0x2f974, 0x04359}, {0x2f975, 0x262d9}, {0x2f976, 0x07f7a}, {0x2f977, 0x2633e}, {0x2f978, 0x07f95},
    {0x2f979, 0x07ffa}, {0x2f97a, 0x08005}, {0x2f97b, 0x264da}, {0x2f97c, 0x26523}, {0x2f97d, 0x08060}, {0x2f97e, 0x265a8},
    {0x2f97f, 0x08070}, {0x2f980, 0x2335f}, {0x2f981, 0x043d5}, {0x2f982, 0x080b2}, {0x2f983, 0x08103}, {0x2f984, 0x0440b},
    {0x2f985, 0x0813e}, {0x2f986, 0x05ab5}, {0x2f987, 0x267a7}, {0x2f988, 0x267b5}, {0x2f989, 0x23393}, {0x2f98a, 0x2339c},
    {0x2f98b, 0x08201}, {0x2f98c, 0x08204}, {0x2f98d, 0x08f9e}, {0x2f98e, 0x0446b}, {0x2f98f, 0x08291}, {0x2f990, 0x0828b},
    {0x2f991, 0x0829d}, {0x2f992, 0x052b3}, {0x2f993, 0x082b1}, {0x2f994, 0x082b3}, {0x2f995, 0x082bd}, {0x2f996, 0x082e6},
    {0x2f997, 0x26b3c}, {0x2f998, 0x082e5}, {0x2f999, 0x0831d}, {0x2f99a, 0x08363}, {0x2f99b, 0x083ad}, {0x2f99c, 0x08323},
    {0x2f99d, 0x083bd}, {0x2f99e, 0x083e7}, {0x2f99f, 0x08457}, {0x2f9a0, 0x08353}, {0x2f9a1, 0x083ca}, {0x2f9a2, 0x083cc},
    {0x2f9a3, 0x083dc}, {0x2f9a4, 0x26c36}, {0x2f9a5, 0x26d6b}, {0x2f9a6, 0x26cd5}, {0x2f9a7, 0x0452b}, {0x2f9a8, 0x084f1},
    {0x2f9a9, 0x084f3}, {0x2f9aa, 0x08516}, {0x2f9ab, 0x273ca}, {0x2f9ac, 0x08564}, {0x2f9ad, 0x26f2c}, {0x2f9ae, 0x0455d},
    {0x2f9af, 0x04561}, {0x2f9b0, 0x26fb1}, {0x2f9b1, 0x270d2}, {0x2f9b2, 0x0456b}, {0x2f9b3, 0x08650}, {0x2f9b4, 0x0865c},
    {0x2f9b5, 0x08667}, {0x2f9b6, 0x08669}, {0x2f9b7, 0x086a9}, {0x2f9b8, 0x08688}, {0x2f9b9, 0x0870e}, {0x2f9ba, 0x086e2},
    {0x2f9bb, 0x08779}, {0x2f9bc, 0x08728}, {0x2f9bd, 0x0876b}, {0x2f9be, 0x08786}, {0x2f9bf, 0x045d7}, {0x2f9c0, 0x087e1},
    {0x2f9c1, 0x08801}, {0x2f9c2, 0x045f9}, {0x2f9c3, 0x08860}, {0x2f9c4, 0x08863}, {0x2f9c5, 0x27667}, {0x2f9c6, 0x088d7},
    {0x2f9c7, 0x088de}, {0x2f9c8, 0x04635}, {0x2f9c9, 0x088fa}, {0x2f9ca, 0x034bb}, {0x2f9cb, 0x278ae}, {0x2f9cc, 0x27966},
    {0x2f9cd, 0x046be}, {0x2f9ce, 0x046c7}, {0x2f9cf, 0x08aa0}, {0x2f9d0, 0x08aed}, {0x2f9d1, 0x08b8a}, {0x2f9d2, 0x08c55},
    {0x2f9d3, 0x27ca8}, {0x2f9d4, 0x08cab}, {0x2f9d5, 0x08cc1}, {0x2f9d6, 0x08d1b}, {0x2f9d7, 0x08d77}, {0x2f9d8, 0x27f2f},
    {0x2f9d9, 0x20804}, {0x2f9da, 0x08dcb}, {0x2f9db, 0x08dbc}, {0x2f9dc, 0x08df0}, {0x2f9dd, 0x208de}, {0x2f9de, 0x08ed4},
    {0x2f9df, 0x08f38}, {0x2f9e0, 0x285d2}, {0x2f9e1, 0x285ed}, {0x2f9e2, 0x09094}, {0x2f9e3, 0x090f1}, {0x2f9e4, 0x09111},
    {0x2f9e5, 0x2872e}, {0x2f9e6, 0x0911b}, {0x2f9e7, 0x09238}, {0x2f9e8, 0x092d7}, {0x2f9e9, 0x092d8}, {0x2f9ea, 0x0927c},
    {0x2f9eb, 0x093f9}, {0x2f9ec, 0x09415}, {0x2f9ed, 0x28bfa}, {0x2f9ee, 0x0958b}, {0x2f9ef, 0x04995}, {0x2f9f0, 0x095b7},
    {0x2f9f1, 0x28d77}, {0x2f9f2, 0x049e6}, {0x2f9f3, 0x096c3}, {0x2f9f4, 0x05db2}, {0x2f9f5, 0x09723}, {0x2f9f6, 0x29145},
    {0x2f9f7, 0x2921a}, {0x2f9f8, 0x04a6e}, {0x2f9f9, 0x04a76}, {0x2f9fa, 0x097e0}, {0x2f9fb, 0x2940a}, {0x2f9fc, 0x04ab2},
    {0x2f9fd, 0x29496}, {0x2f9fe, 0x0980b}, {0x2f9ff, 0x0980b}, {0x2fa00, 0x09829}, {0x2fa01, 0x295b6}, {0x2fa02, 0x098e2},
    {0x2fa03, 0x04b33}, {0x2fa04, 0x09929}, {0x2fa05, 0x099a7}, {0x2fa06, 0x099c2}, {0x2fa07, 0x099fe}, {0x2fa08, 0x04bce},
    {0x2fa09, 0x29b30}, {0x2fa0a, 0x09b12}, {0x2fa0b, 0x09c40}, {0x2fa0c, 0x09cfd}, {0x2fa0d, 0x04cce}, {0x2fa0e, 0x04ced},
    {0x2fa0f, 0x09d67}, {0x2fa10, 0x2a0ce}, {0x2fa11, 0x04cf8}, {0x2fa12, 0x2a105}, {0x2fa13, 0x2a20e}, {0x2fa14, 0x2a291},
    {0x2fa15, 0x09ebb}, {0x2fa16, 0x04d56}, {0x2fa17, 0x09ef9}, {0x2fa18, 0x09efe}, {0x2fa19, 0x09f05}, {0x2fa1a, 0x09f0f},
    {0x2fa1b, 0x09f16}, {0x2fa1c, 0x09f3b}, {0x2fa1d, 0x2a600},
};
static const uint32_t UCD_MN[336][2] = {
    {0x00300, 0x0036f}, {0x00483, 0x00487}, {0x00591, 0x005bd}, {0x005bf, 0x005bf}, {0x005c1, 0x005c2}, {0x005c4, 0x005c5},
    {0x005c7, 0x005c7}, {0x00610, 0x0061a}, {0x0064b, 0x0065f}, {0x00670, 0x00670}, {0x006d6, 0x006dc}, {0x006df, 0x006e4},
    {0x006e7, 0x006e8}, {0x006ea, 0x006ed}, {0x00711, 0x00711}, {0x00730, 0x0074a}, {0x007a6, 0x007b0}, {0x007eb, 0x007f3},
    {0x007fd, 0x007fd}, {0x00816, 0x00819}, {0x0081b, 0x00823}, {0x00825, 0x00827}, {0x00829, 0x0082d}, {0x00859, 0x0085b},
    {0x00898, 0x0089f}, {0x008ca, 0x008e1}, {0x008e3, 0x00902}, {0x0093a, 0x0093a}, {0x0093c, 0x0093c}, {0x00941, 0x00948},
    {0x0094d, 0x0094d}, {0x00951, 0x00957}, {0x00962, 0x00963}, {0x00981, 0x00981}, {0x009bc, 0x009bc}, {0x009c1, 0x009c4},
    {0x009cd, 0x009cd}, {0x009e2, 0x009e3}, {0x009fe, 0x009fe}, {0x00a01, 0x00a02}, {0x00a3c, 0x00a3c}, {0x00a41, 0x00a42},
    {0x00a47, 0x00a48}, {0x00a4b, 0x00a4d}, {0x00a51, 0x00a51}, {0x00a70, 0x00a71}, {0x00a75, 0x00a75}, {0x00a81, 0x00a82},
    {0x00abc, 0x00abc}, {0x00ac1, 0x00ac5}, {0x00ac7, 0x00ac8}, {0x00acd, 0x00acd}, {0x00ae2, 0x00ae3}, {0x00afa, 0x00aff},
    {0x00b01, 0x00b01}, {0x00b3c, 0x00b3c}, {0x00b3f, 0x00b3f}, {0x00b41, 0x00b44}, {0x00b4d, 0x00b4d}, {0x00b55, 0x00b56},
    {0x00b62, 0x00b63}, {0x00b82, 0x00b82}, {0x00bc0, 0x00bc0}, {0x00bcd, 0x00bcd}, {0x00c00, 0x00c00}, {0x00c04, 0x00c04},
    {0x00c3c, 0x00c3c}, {0x00c3e, 0x00c40}, {0x00c46, 0x00c48}, {0x00c4a, 0x00c4d}, {0x00c55, 0x00c56}, {0x00c62, 0x00c63},
    {0x00c81, 0x00c81}, {0x00cbc, 0x00cbc}, {0x00cbf, 0x00cbf}, {0x00cc6, 0x00cc6}, {0x00ccc, 0x00ccd}, {0x00ce2, 0x00ce3},
    {0x00d00, 0x00d01}, {0x00d3b, 0x00d3c}, {0x00d41, 0x00d44}, {0x00d4d, 0x00d4d}, {0x00d62, 0x00d63}, {0x00d81, 0x00d81},
    {0x00dca, 0x00dca}, {0x00dd2, 0x00dd4}, {0x00dd6, 0x00dd6}, {0x00e31, 0x00e31}, {0x00e34, 0x00e3a}, {0x00e47, 0x00e4e},
    {0x00eb1, 0x00eb1}, {0x00eb4, 0x00ebc}, {0x00ec8, 0x00ecd}, {0x00f18, 0x00f19}, {0x00f35, 0x00f35}, {0x00f37, 0x00f37},
    {0x00f39, 0x00f39}, {0x00f71, 0x00f7e}, {0x00f80, 0x00f84}, {0x00f86, 0x00f87}, {0x00f8d, 0x00f97}, {0x00f99, 0x00fbc},
    {0x00fc6, 0x00fc6}, {0x0102d, 0x01030}, {0x01032, 0x01037}, {0x01039, 0x0103a}, {0x0103d, 0x0103e}, {0x01058, 0x01059},
    {0x0105e, 0x01060}, {0x01071, 0x01074}, {0x01082, 0x01082}, {0x01085, 0x01086}, {0x0108d, 0x0108d}, {0x0109d, 0x0109d},
    {0x0135d, 0x0135f}, {0x01712, 0x01714}, {0x01732, 0x01733}, {0x01752, 0x01753}, {0x01772, 0x01773}, {0x017b4, 0x017b5},
    {0x017b7, 0x017bd}, {0x017c6, 0x017c6}, {0x017c9, 0x017d3}, {0x017dd, 0x017dd}, {0x0180b, 0x0180d}, {0x0180f, 0x0180f},
    {0x01885, 0x01886}, {0x018a9, 0x018a9}, {0x01920, 0x01922}, {0x01927, 0x01928}, {0x01932, 0x01932}, {0x01939, 0x0193b},
    {0x01a17, 0x01a18}, {0x01a1b, 0x01a1b}, {0x01a56, 0x01a56}, {0x01a58, 0x01a5e}, {0x01a60, 0x01a60}, {0x01a62, 0x01a62},
    {0x01a65, 0x01a6c}, {0x01a73, 0x01a7c}, {0x01a7f, 0x01a7f}, {0x01ab0, 0x01abd}, {0x01abf, 0x01ace}, {0x01b00, 0x01b03},
    {0x01b34, 0x01b34}, {0x01b36, 0x01b3a}, {0x01b3c, 0x01b3c}, {0x01b42, 0x01b42}, {0x01b6b, 0x01b73}, {0x01b80, 0x01b81},
    {0x01ba2, 0x01ba5}, {0x01ba8, 0x01ba9}, {0x01bab, 0x01bad}, {0x01be6, 0x01be6}, {0x01be8, 0x01be9}, {0x01bed, 0x01bed},
    {0x01bef, 0x01bf1}, {0x01c2c, 0x01c33}, {0x01c36, 0x01c37}, {0x01cd0, 0x01cd2}, {0x01cd4, 0x01ce0}, {0x01ce2, 0x01ce8},
    {0x01ced, 0x01ced}, {0x01cf4, 0x01cf4}, {0x01cf8, 0x01cf9}, {0x01dc0, 0x01dff}, {0x020d0, 0x020dc}, {0x020e1, 0x020e1},
    {0x020e5, 0x020f0}, {0x02cef, 0x02cf1}, {0x02d7f, 0x02d7f}, {0x02de0, 0x02dff}, {0x0302a, 0x0302d}, {0x03099, 0x0309a},
    {0x0a66f, 0x0a66f}, {0x0a674, 0x0a67d}, {0x0a69e, 0x0a69f}, {0x0a6f0, 0x0a6f1}, {0x0a802, 0x0a802}, {0x0a806, 0x0a806},
    {0x0a80b, 0x0a80b}, {0x0a825, 0x0a826}, {0x0a82c, 0x0a82c}, {0x0a8c4, 0x0a8c5}, {0x0a8e0, 0x0a8f1}, {0x0a8ff, 0x0a8ff},
    {0x0a926, 0x0a92d}, {0x0a947, 0x0a951}, {0x0a980, 0x0a982}, {0x0a9b3, 0x0a9b3}, {0x0a9b6, 0x0a9b9}, {0x0a9bc, 0x0a9bd},
    {0x0a9e5, 0x0a9e5}, {0x0aa29, 0x0aa2e}, {0x0aa31, 0x0aa32}, {0x0aa35, 0x0aa36}, {0x0aa43, 0x0aa43}, {0x0aa4c, 0x0aa4c},
    {0x0aa7c, 0x0aa7c}, {0x0aab0, 0x0aab0}, {0x0aab2, 0x0aab4}, {0x0aab7, 0x0aab8}, {0x0aabe, 0x0aabf}, {0x0aac1, 0x0aac1},
    {0x0aaec, 0x0aaed}, {0x0aaf6, 0x0aaf6}, {0x0abe5, 0x0abe5}, {0x0abe8, 0x0abe8}, {0x0abed, 0x0abed}, {0x0fb1e, 0x0fb1e},
    {0x0fe00, 0x0fe0f}, {0x0fe20, 0x0fe2f}, {0x101fd, 0x101fd}, {0x102e0, 0x102e0}, {0x10376, 0x1037a}, {0x10a01, 0x10a03},
    {0x10a05, 0x10a06}, {0x10a0c, 0x10a0f}, {0x10a38, 0x10a3a}, {0x10a3f, 0x10a3f}, {0x10ae5, 0x10ae6}, {0x10d24, 0x10d27},
    {0x10eab, 0x10eac}, {0x10f46, 0x10f50}, {0x10f82, 0x10f85}, {0x11001, 0x11001}, {0x11038, 0x11046}, {0x11070, 0x11070},
    {0x11073, 0x11074}, {0x1107f, 0x11081}, {0x110b3, 0x110b6}, {0x110b9, 0x110ba}, {0x110c2, 0x110c2}, {0x11100, 0x11102},
    {0x11127, 0x1112b}, {0x1112d, 0x11134}, {0x11173, 0x11173}, {0x11180, 0x11181}, {0x111b6, 0x111be}, {0x111c9, 0x111cc},
    {0x111cf, 0x111cf}, {0x1122f, 0x11231}, {0x11234, 0x11234}, {0x11236, 0x11237}, {0x1123e, 0x1123e}, {0x112df, 0x112df},
    {0x112e3, 0x112ea}, {0x11300, 0x11301}, {0x1133b, 0x1133c}, {0x11340, 0x11340}, {0x11366, 0x1136c}, {0x11370, 0x11374},
    {0x11438, 0x1143f}, {0x11442, 0x11444}, {0x11446, 0x11446}, {0x1145e, 0x1145e}, {0x114b3, 0x114b8}, {0x114ba, 0x114ba},
    {0x114bf, 0x114c0}, {0x114c2, 0x114c3}, {0x115b2, 0x115b5}, {0x115bc, 0x115bd}, {0x115bf, 0x115c0}, {0x115dc, 0x115dd},
    {0x11633, 0x1163a}, {0x1163d, 0x1163d}, {0x1163f, 0x11640}, {0x116ab, 0x116ab}, {0x116ad, 0x116ad}, {0x116b0, 0x116b5},
    {0x116b7, 0x116b7}, {0x1171d, 0x1171f}, {0x11722, 0x11725}, {0x11727, 0x1172b}, {0x1182f, 0x11837}, {0x11839, 0x1183a},
    {0x1193b, 0x1193c}, {0x1193e, 0x1193e}, {0x11943, 0x11943}, {0x119d4, 0x119d7}, {0x119da, 0x119db}, {0x119e0, 0x119e0},
    {0x11a01, 0x11a0a}, {0x11a33, 0x11a38}, {0x11a3b, 0x11a3e}, {0x11a47, 0x11a47}, {0x11a51, 0x11a56}, {0x11a59, 0x11a5b},
    {0x11a8a, 0x11a96}, {0x11a98, 0x11a99}, {0x11c30, 0x11c36}, {0x11c38, 0x11c3d}, {0x11c3f, 0x11c3f}, {0x11c92, 0x11ca7},
    {0x11caa, 0x11cb0}, {0x11cb2, 0x11cb3}, {0x11cb5, 0x11cb6}, {0x11d31, 0x11d36}, {0x11d3a, 0x11d3a}, {0x11d3c, 0x11d3d},
    {0x11d3f, 0x11d45}, {0x11d47, 0x11d47}, {0x11d90, 0x11d91}, {0x11d95, 0x11d95}, {0x11d97, 0x11d97}, {0x11ef3, 0x11ef4},
    {0x16af0, 0x16af4}, {0x16b30, 0x16b36}, {0x16f4f, 0x16f4f}, {0x16f8f, 0x16f92}, {0x16fe4, 0x16fe4}, {0x1bc9d, 0x1bc9e},
    {0x1cf00, 0x1cf2d}, {0x1cf30, 0x1cf46}, {0x1d167, 0x1d169}, {0x1d17b, 0x1d182}, {0x1d185, 0x1d18b}, {0x1d1aa, 0x1d1ad},
    {0x1d242, 0x1d244}, {0x1da00, 0x1da36}, {0x1da3b, 0x1da6c}, {0x1da75, 0x1da75}, {0x1da84, 0x1da84}, {0x1da9b, 0x1da9f},
    {0x1daa1, 0x1daaf}, {0x1e000, 0x1e006}, {0x1e008, 0x1e018}, {0x1e01b, 0x1e021}, {0x1e023, 0x1e024}, {0x1e026, 0x1e02a},
    {0x1e130, 0x1e136}, {0x1e2ae, 0x1e2ae}, {0x1e2ec, 0x1e2ef}, {0x1e8d0, 0x1e8d6}, {0x1e944, 0x1e94a}, {0xe0100, 0xe01ef},
};
static const uint32_t UCD_CTRL[26][2] = {
    {0x00000, 0x0001f}, {0x0007f, 0x0009f}, {0x000ad, 0x000ad}, {0x00600, 0x00605}, {0x0061c, 0x0061c}, {0x006dd, 0x006dd},
    {0x0070f, 0x0070f}, {0x00890, 0x00891}, {0x008e2, 0x008e2}, {0x0180e, 0x0180e}, {0x0200b, 0x0200f}, {0x0202a, 0x0202e},
    {0x02060, 0x02064}, {0x02066, 0x0206f}, {0x0d800, 0x0f8ff}, {0x0feff, 0x0feff}, {0x0fff9, 0x0fffb}, {0x110bd, 0x110bd},
    {0x110cd, 0x110cd}, {0x13430, 0x13438}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f},
    {0xf0000, 0xffffd}, {0x100000, 0x10fffd},
};
/* END gen_unicode_wpm */

static uint32_t wpm_lower(uint32_t c) {
    size_t lo = 0, hi = sizeof UCD_LOWER / sizeof UCD_LOWER[0];
    while (hi - lo > 1) { /* the last run starting at or before c */
        size_t mid = lo + (hi - lo) / 2;
        if ((uint32_t)UCD_LOWER[mid][0] <= c) lo = mid;
        else hi = mid;
    }
    const int32_t *r = UCD_LOWER[lo];
    uint32_t off = c - (uint32_t)r[0];
    if (c >= (uint32_t)r[0] && off % (uint32_t)r[2] == 0 && off / (uint32_t)r[2] < (uint32_t)r[1])
        return (uint32_t)((int32_t)c + r[3]);
    return c;
}

static uint32_t wpm_nfd0(uint32_t c) {
    if (c >= 0xac00 && c <= 0xd7a3) return 0x1100 + (c - 0xac00) / 588; /* Hangul: the leading consonant */
    size_t lo = 0, hi = sizeof UCD_NFD0 / sizeof UCD_NFD0[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (UCD_NFD0[mid][0] == c) return UCD_NFD0[mid][1];
        if (UCD_NFD0[mid][0] < c) lo = mid + 1;
        else hi = mid;
    }
    return c;
}

static int wpm_cjk(uint32_t c) {
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2a6df) ||
           (c >= 0x2a700 && c <= 0x2b73f) || (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b920 && c <= 0x2ceaf) ||
           (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}

static size_t utf8_put(uint32_t c, char *o) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xc0 | (c >> 6)), o[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | (c >> 12)), o[1] = (char)(0x80 | ((c >> 6) & 0x3f)), o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (c >> 18)), o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f)), o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* Cut one word (w[0, n), already starting with U+2581) into pieces. */
static void wpm_word(const vocab *v, const char *w, size_t n, tok_out *o) {
    const int64_t start = o->n;
    for (size_t i = 0; i < n;) {
        size_t j = SLM_MIN(n, i + (size_t)v->wpm_max_len);
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = vocab_find(v, w + i, j - i)) >= 0) break;
        if (id < 0) { /* no piece at i: the whole word is unknown */
            o->n = start;
            tok_push(o, v->unk);
            return;
        }
        tok_push(o, id);
        i = j;
    }
}

/* Normalize and encode one fragment. buf: room for 4 * len + 3 bytes (a
   code point grows to at most 4 bytes, plus the U+2581 prefix). */
static void wpm_encode(const vocab *v, const char *text, size_t len, char *buf, tok_out *o) {
    size_t wl = 0; /* bytes of the current word after its 3-byte prefix */
    buf[0] = (char)0xe2, buf[1] = (char)0x96, buf[2] = (char)0x81;
    for (size_t i = 0; i < len;) {
        size_t cl;
        uint32_t c = utf8_cpt((const unsigned char *)text + i, len - i, &cl);
        i += cl;
        if (v->wpm_strip_accents) c = wpm_nfd0(c);
        if (ucd_space(c)) {
            if (wl) wpm_word(v, buf, 3 + wl, o);
            wl = 0;
            continue;
        }
        if (c == 0 || c == 0xfffd || in_ranges(UCD_CTRL, sizeof UCD_CTRL / sizeof UCD_CTRL[0], c)) continue;
        if (v->wpm_strip_accents && in_ranges(UCD_MN, sizeof UCD_MN / sizeof UCD_MN[0], c)) continue;
        unsigned f = ucd_flags(c);
        if (v->wpm_lowercase) c = wpm_lower(c);
        if ((f & UC_P) || (c < 0x7f && (f & UC_S)) || wpm_cjk(c)) {
            if (wl) wpm_word(v, buf, 3 + wl, o);
            wl = utf8_put(c, buf + 3);
            wpm_word(v, buf, 3 + wl, o);
            wl = 0;
            continue;
        }
        wl += utf8_put(c, buf + 3 + wl);
    }
    if (wl) wpm_word(v, buf, 3 + wl, o);
}

/* --- the public tokenizer ----------------------------------------------------- */

/* ' ' -> U+2581 in place; buf has room for 3 bytes per input byte. */
static size_t escape_spaces(char *buf, size_t n) {
    size_t sp = 0;
    for (size_t i = 0; i < n; i++) sp += buf[i] == ' ';
    size_t out = n + 2 * sp;
    for (size_t i = n, o = out; i-- > 0;) {
        if (buf[i] == ' ') {
            buf[--o] = (char)0x81, buf[--o] = (char)0x96, buf[--o] = (char)0xe2;
        } else {
            buf[--o] = buf[i];
        }
    }
    return out;
}

static slm_status tokenize_impl(const slm_model *m, const char *text, size_t len, int add_special, int parse_special,
                                tok_out *o, slm_error *err) {
    const vocab *v = vocab_of(m);
    if (!m) return seterr(err, SLM_ERR_INVALID_ARG, "model is NULL");
    if (!text && len) return seterr(err, SLM_ERR_INVALID_ARG, "text is NULL");
    if (!v) return seterr(err, SLM_ERR_UNSUPPORTED, "the model has no vocabulary (tokenizer.ggml.tokens)");
    if (v->kind != SLM_VOCAB_SPM && v->kind != SLM_VOCAB_BPE && v->kind != SLM_VOCAB_WPM) {
        const gguf_kv *k = gguf_get(&m->g, "tokenizer.ggml.model");
        return seterr(err, SLM_ERR_UNSUPPORTED, "tokenizer '%s' is not supported",
                      k && k->type == SLM_META_STRING ? k->str[0] : "?");
    }
    const allocator *a = &m->a;
    frag_list fl = {0};
    if (len > 0 && !split_special(v, a, text, len, parse_special, &fl))
        return seterr(err, SLM_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    slm_status st = SLM_OK;
    if (add_special && v->add_bos) tok_push(o, v->bos);
    int prev_special = 1; /* the start counts as after a special token */
    char *buf = NULL;
    size_t bufcap = 0;
    for (size_t k = 0; k < fl.n; k++) {
        const frag *f = &fl.f[k];
        if (f->tok >= 0) {
            tok_push(o, f->tok);
            prev_special = 1;
            continue;
        }
        if (v->kind == SLM_VOCAB_BPE) { /* no space prefix, no escaping */
            if (!bpe_encode(v, a, text + f->off, f->len, o)) {
                st = seterr(err, SLM_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
                break;
            }
            continue;
        }
        if (v->kind == SLM_VOCAB_WPM) {
            size_t need = f->len * 4 + 3;
            if (f->len > (SIZE_MAX - 3) / 4) need = SIZE_MAX;
            if (need > bufcap) {
                xfree(a, buf, bufcap);
                buf = need == SIZE_MAX ? NULL : (char *)xalloc(a, need);
                bufcap = buf ? need : 0;
                if (!buf) {
                    st = seterr(err, SLM_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
                    break;
                }
            }
            wpm_encode(v, text + f->off, f->len, buf, o);
            continue;
        }
        /* escape: optional leading space, then ' ' -> U+2581 (3 bytes) */
        size_t need = (f->len + 1) * 3;
        if (need > bufcap) {
            xfree(a, buf, bufcap);
            buf = (char *)xalloc(a, need);
            bufcap = buf ? need : 0;
            if (!buf) {
                st = seterr(err, SLM_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
                break;
            }
        }
        size_t bl = 0;
        if (v->add_space_prefix && prev_special) buf[bl++] = ' ';
        memcpy(buf + bl, text + f->off, f->len);
        bl += f->len;
        bl = escape_spaces(buf, bl);
        if (!spm_encode(v, a, buf, bl, o)) {
            st = seterr(err, SLM_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
            break;
        }
        prev_special = 0;
    }
    if (st == SLM_OK && add_special && v->add_eos) tok_push(o, v->eos);
    if (st == SLM_OK && add_special && v->kind == SLM_VOCAB_WPM) tok_push(o, v->sep);
    xfree(a, buf, bufcap);
    xfree(a, fl.f, fl.cap * sizeof(frag));
    return st;
}

slm_status slm_tokenize(const slm_model *m, const char *text, size_t len, int add_special, int parse_special,
                        int32_t *out, int32_t max, int32_t *n_out, slm_error *err) {
    clearerr_(err);
    if (n_out) *n_out = 0;
    if (max < 0 || (max > 0 && !out)) return seterr(err, SLM_ERR_INVALID_ARG, "out is NULL or max is negative");
    tok_out o;
    o.ids = out;
    o.max = max;
    o.n = 0;
    slm_status st = tokenize_impl(m, text, len, add_special, parse_special, &o, err);
    if (st != SLM_OK) return st;
    if (o.n > INT32_MAX) return seterr(err, SLM_ERR_INVALID_ARG, "the text gives more than 2^31 tokens");
    if (n_out) *n_out = (int32_t)o.n;
    if (o.n > max) return seterr(err, SLM_ERR_BUFFER, "%lld tokens do not fit in %d", (long long)o.n, (int)max);
    return SLM_OK;
}

/* --- detokenizer ------------------------------------------------------------ */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decoded bytes of a token; writes them to buf if they fit in size (buf may
   be NULL to measure). lstrip: drop one leading space. Returns the length. */
static size_t piece_decode(const vocab *v, int32_t id, int special, int lstrip, char *buf, size_t size) {
    if (!v || id < 0 || id >= v->n) return 0;
    uint16_t at = v->attr[id];
    const char *t = v->text[id];
    size_t n = v->len[id];
    if (!special && (at & (SLM_TOKEN_UNKNOWN | SLM_TOKEN_CONTROL))) return 0;
    if (at & (SLM_TOKEN_UNKNOWN | SLM_TOKEN_CONTROL | SLM_TOKEN_USER_DEFINED)) {
        /* as written */
    } else if (at & SLM_TOKEN_BYTE) {
        int h1 = n == 6 && t[0] == '<' && t[1] == '0' && t[2] == 'x' && t[5] == '>' ? hexval(t[3]) : -1;
        int h2 = h1 >= 0 ? hexval(t[4]) : -1;
        if (h2 >= 0) {
            char b = (char)(h1 * 16 + h2);
            if (lstrip && b == ' ') return 0;
            if (buf && size >= 1) buf[0] = b;
            return 1;
        }
    } else if (at & SLM_TOKEN_NORMAL) {
        if (v->kind == SLM_VOCAB_SPM || v->kind == SLM_VOCAB_OTHER || v->kind == SLM_VOCAB_WPM ||
            (v->kind == SLM_VOCAB_BPE && v->pre_kind == PRE_GEMMA4)) {
            /* U+2581 -> ' ' */
            size_t out = 0, i = 0;
            int fits = buf != NULL;
            while (i < n) {
                char ch;
                if (i + 3 <= n && (unsigned char)t[i] == 0xe2 && (unsigned char)t[i + 1] == 0x96 &&
                    (unsigned char)t[i + 2] == 0x81) {
                    ch = ' ';
                    i += 3;
                } else {
                    ch = t[i++];
                }
                if (lstrip && out == 0 && ch == ' ') {
                    lstrip = 0;
                    continue;
                }
                lstrip = 0;
                if (fits && out < size) buf[out] = ch;
                out++;
            }
            return out;
        }
        /* byte-level BPE: every character stands for a byte; a character
           outside the byte map (an added token typed normal) is kept as it is */
        size_t out = 0;
        for (size_t i = 0; i < n;) {
            size_t cl;
            uint32_t c = utf8_cpt((const unsigned char *)t + i, n - i, &cl);
            int b = bpe_cpt_byte(c);
            if (b >= 0) {
                if (lstrip && out == 0 && b == ' ') {
                    lstrip = 0;
                    i += cl;
                    continue;
                }
                if (buf && out < size) buf[out] = (char)b;
                out++;
            } else {
                for (size_t j = 0; j < cl; j++, out++)
                    if (buf && out < size) buf[out] = t[i + j];
            }
            lstrip = 0;
            i += cl;
        }
        return out;
    } else {
        return 0; /* unused / undefined */
    }
    if (lstrip && n > 0 && t[0] == ' ') t++, n--;
    if (buf && n <= size) memcpy(buf, t, n);
    return n;
}

slm_status slm_token_to_piece(const slm_model *m, int32_t token, int special, char *buf, size_t size, size_t *len) {
    if (len) *len = 0;
    const vocab *v = vocab_of(m);
    if (!v || token < 0 || token >= v->n) return SLM_ERR_INVALID_ARG;
    size_t n = piece_decode(v, token, special, 0, NULL, 0);
    if (len) *len = n;
    if (n > size || (n && !buf)) return SLM_ERR_BUFFER;
    piece_decode(v, token, special, 0, buf, size);
    return SLM_OK;
}

/* clean_up_tokenization_spaces, as llama.cpp: " ?" " !" " ." " ," lose
   the space, " ' " loses both, " 's" " 'm" " 're" " 've" the one before. */
static size_t clean_spaces(char *t, size_t n) {
    size_t o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) o--;
        t[o++] = x;
    }
    n = o;
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            o--;
            t[++i] = 0; /* the next space goes too: i skips it */
        }
        t[o++] = x;
    }
    n = o;
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = t[i + 1], x2 = i + 2 < n ? t[i + 2] : 0;
            if (x1 == 's' || x1 == 'm' || (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) o--;
        }
        t[o++] = x;
    }
    return o;
}

slm_status slm_detokenize(const slm_model *m, const int32_t *tokens, int32_t n, int remove_special,
                          int unparse_special, char *buf, size_t size, size_t *len, slm_error *err) {
    clearerr_(err);
    if (len) *len = 0;
    const vocab *v = vocab_of(m);
    if (!m || n < 0 || (n > 0 && !tokens)) return seterr(err, SLM_ERR_INVALID_ARG, "model or tokens is NULL");
    if (!v) return seterr(err, SLM_ERR_UNSUPPORTED, "the model has no vocabulary");
    int strip = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && tokens[0] == v->bos) {
        strip = 0;
        tokens++, n--;
    }
    if (remove_special && v->add_eos && n > 0 && tokens[n - 1] == v->eos) n--;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= v->n)
            return seterr(err, SLM_ERR_INVALID_ARG, "token #%d has id %d, outside the vocabulary [0, %d)", (int)i,
                          (int)tokens[i], (int)v->n);
        size_t room = buf && total < size ? size - total : 0;
        size_t l = piece_decode(v, tokens[i], unparse_special, strip, NULL, 0);
        if (l && l <= room) piece_decode(v, tokens[i], unparse_special, strip, buf + total, room);
        total += l;
        strip = 0;
    }
    if (len) *len = total;
    if (!buf || total >= size) return seterr(err, SLM_ERR_BUFFER, "the text needs %zu bytes and a NUL", total);
    if (v->clean_spaces) total = clean_spaces(buf, total);
    if (len) *len = total;
    buf[total] = 0;
    return SLM_OK;
}

/* --- streaming ---------------------------------------------------------------- */

/* Bytes at the end of s[0, n) that start a UTF-8 character still missing
   continuation bytes (0 if the text ends on a boundary or is invalid). */
static size_t utf8_incomplete_tail(const char *s, size_t n) {
    for (size_t k = 1; k <= 4 && k <= n; k++) {
        unsigned char b = (unsigned char)s[n - k];
        if ((b & 0xc0) == 0x80) continue; /* continuation: keep looking for the lead */
        size_t need = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xc0 && b < 0xe0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

void slm_text_stream_init(slm_text_stream *st, const slm_model *m, int flags) {
    if (!st) return;
    memset(st, 0, sizeof *st);
    st->model = m;
    st->flags = flags;
}

slm_status slm_text_stream_push(slm_text_stream *st, int32_t token, char *buf, size_t size, size_t *len) {
    if (len) *len = 0;
    if (!st) return SLM_ERR_INVALID_ARG;
    const vocab *v = vocab_of(st->model);
    if (!v || token < 0 || token >= v->n) return SLM_ERR_INVALID_ARG;
    int special = (st->flags & SLM_STREAM_SPECIAL) != 0;
    int strip = (st->flags & SLM_STREAM_STRIP_SPACE) && st->n_tokens == 0 && v->add_space_prefix;
    size_t pl = piece_decode(v, token, special, strip, NULL, 0);
    size_t total = st->n_pending + pl;
    if (total > size || !buf) {
        if (len) *len = total;
        return SLM_ERR_BUFFER;
    }
    memcpy(buf, st->pending, st->n_pending);
    piece_decode(v, token, special, strip, buf + st->n_pending, pl);
    size_t hold = utf8_incomplete_tail(buf, total);
    memcpy(st->pending, buf + total - hold, hold);
    st->n_pending = (uint32_t)hold;
    st->n_tokens++;
    if (len) *len = total - hold;
    return SLM_OK;
}

size_t slm_text_stream_flush(slm_text_stream *st, char *buf, size_t size) {
    if (!st) return 0;
    size_t n = st->n_pending;
    if (buf && n <= size) memcpy(buf, st->pending, n);
    else n = 0;
    st->n_pending = 0;
    return n;
}

/* --- vocabulary queries --------------------------------------------------------- */

int slm_vocab_type(const slm_model *m) {
    const vocab *v = vocab_of(m);
    return v ? v->kind : SLM_VOCAB_NONE;
}

int32_t slm_vocab_size(const slm_model *m) {
    const vocab *v = vocab_of(m);
    return v ? v->n : 0;
}

int32_t slm_vocab_max_piece(const slm_model *m) {
    const vocab *v = vocab_of(m);
    return v ? v->max_piece : 0;
}

int32_t slm_token_bos(const slm_model *m) { return vocab_of(m) ? m->vocab->bos : -1; }
int32_t slm_token_eos(const slm_model *m) { return vocab_of(m) ? m->vocab->eos : -1; }
int32_t slm_token_eot(const slm_model *m) { return vocab_of(m) ? m->vocab->eot : -1; }
int32_t slm_token_unk(const slm_model *m) { return vocab_of(m) ? m->vocab->unk : -1; }
int32_t slm_token_pad(const slm_model *m) { return vocab_of(m) ? m->vocab->pad : -1; }
const char *slm_vocab_pretokenizer(const slm_model *m, int *fallback) {
    const vocab *v = vocab_of(m);
    int bpe = v && v->kind == SLM_VOCAB_BPE && v->pre_kind >= 0;
    if (fallback) *fallback = bpe && v->pre_fallback;
    return bpe ? PRE_KIND_NAMES[v->pre_kind] : "";
}

int slm_vocab_add_bos(const slm_model *m) { return vocab_of(m) ? m->vocab->add_bos : 0; }
int slm_vocab_add_eos(const slm_model *m) { return vocab_of(m) ? m->vocab->add_eos : 0; }

int slm_token_is_eog(const slm_model *m, int32_t token) {
    const vocab *v = vocab_of(m);
    if (!v) return 0;
    for (int32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == token) return 1;
    return 0;
}

int slm_token_attr(const slm_model *m, int32_t token) {
    const vocab *v = vocab_of(m);
    if (!v || token < 0 || token >= v->n) return 0;
    return v->attr[token] & 0x7f;
}

const char *slm_token_text(const slm_model *m, int32_t token, size_t *len) {
    const vocab *v = vocab_of(m);
    if (!len) return NULL; /* a view into the file: no NUL after it */
    *len = 0;
    if (!v || token < 0 || token >= v->n) return NULL;
    *len = v->len[token];
    return v->text[token];
}

/* ========================================================================== */
/* 10. Chat templates                                                         */
/* ========================================================================== */
/*
 * slm does not evaluate Jinja. slm_chat_detect() names the family of a
 * tokenizer.chat_template by distinctive substrings (as llama.cpp's
 * llm_chat_detect_template does) and chat_render() writes that family's
 * published template in C: the Hugging Face template of the family's
 * reference model, without the leading BOS (the tokenizer adds it). The
 * expected strings in tests/test_chat.c spell each one out.
 *
 * Output goes through a sink that can drop a prefix: incremental formatting
 * renders the whole conversation twice, once to find where the last old
 * message's content ends, once writing only what follows.
 */

typedef struct chat_out {
    char *buf;
    size_t size;
    size_t pos;      /* bytes of the full text so far */
    size_t skip;     /* leading bytes of the full text not written */
    int32_t mark_at; /* message whose content end is wanted, -1 none */
    size_t mark;     /* the full-text offset after that content */
} chat_out;

static void co_put(chat_out *o, const char *s, size_t n) {
    size_t from = o->pos >= o->skip ? 0 : SLM_MIN(n, o->skip - o->pos);
    size_t at = o->pos + from - o->skip; /* where s[from] goes in buf */
    if (o->buf && from < n && at < o->size) memcpy(o->buf + at, s + from, SLM_MIN(n - from, o->size - at));
    o->pos += n;
}

static void co_str(chat_out *o, const char *s) { co_put(o, s, strlen(s)); }

static int chat_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Message content, optionally trimmed (Jinja's |trim, Python's strip()). */
static void co_content(chat_out *o, int32_t i, const char *s, int trim) {
    size_t b = 0, e = strlen(s);
    if (trim) {
        while (b < e && chat_space(s[b])) b++;
        while (e > b && chat_space(s[e - 1])) e--;
    }
    co_put(o, s + b, e - b);
    if (i == o->mark_at) o->mark = o->pos;
}

static int role_is(const slm_chat_message *m, const char *r) { return strcmp(m->role, r) == 0; }

/* s[0, n) after dropping leading/trailing white space (trim: 1 both ends,
   2 only leading newlines, as Python's lstrip('\n')); sets the mark of message i. */
static void co_sub(chat_out *o, int32_t i, const char *s, size_t n, int trim) {
    size_t b = 0, e = n;
    if (trim == 1) {
        while (b < e && chat_space(s[b])) b++;
        while (e > b && chat_space(s[e - 1])) e--;
    } else if (trim == 2) {
        while (b < e && s[b] == '\n') b++;
    }
    co_put(o, s + b, e - b);
    if (i == o->mark_at) o->mark = o->pos;
}

/* The text after the last "</think>" of s, or NULL if there is none. */
static const char *last_think_end(const char *s) {
    const char *r = NULL;
    for (const char *p = strstr(s, "</think>"); p; p = strstr(p + 1, "</think>")) r = p + 8;
    return r;
}

/* Qwen3 and Qwen3.5 (their published templates without tools): a reply
   after the last user query keeps its thinking as "<think>\n" R "\n</think>\n\n"
   (Qwen3: only the last message or a nonempty R), earlier replies only
   their answer; SLM_CHAT_NO_THINK adds the empty block of
   enable_thinking=false to the generation prompt; Qwen3.5 trims the texts
   and opens the reply with "<think>\n" otherwise. */
static void chat_render_qwen3(chat_out *o, int q35, const slm_chat_message *msg, int32_t n, int add_gen) {
    int32_t last_query = n - 1;
    for (int32_t i = n - 1; i >= 0; i--) {
        const char *c = msg[i].content;
        size_t l = strlen(c);
        if (role_is(&msg[i], "user") &&
            !(l >= 31 && !strncmp(c, "<tool_response>", 15) && !strcmp(c + l - 16, "</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    for (int32_t i = 0; i < n; i++) {
        const char *c = msg[i].content;
        if (!role_is(&msg[i], "assistant")) {
            if (q35 && role_is(&msg[i], "system") && i > 0) continue; /* (Qwen3.5 raises an error) */
            co_str(o, "<|im_start|>");
            co_str(o, msg[i].role);
            co_str(o, "\n");
            co_sub(o, i, c, strlen(c), q35);
            co_str(o, "<|im_end|>\n");
            continue;
        }
        /* reasoning R = before the last "</think>", after the last "<think>" in it */
        const char *ans = last_think_end(c), *r = c, *re = c;
        if (ans) {
            re = strstr(c, "</think>"); /* R comes from before the first end tag */
            for (const char *p = c; (p = strstr(p, "<think>")) && p < re; p++) r = p + 7;
            while (re > r && re[-1] == '\n') re--;
            while (r < re && *r == '\n') r++;
        } else {
            ans = c;
        }
        if (q35) {
            while (r < re && chat_space(*r)) r++;
            while (re > r && chat_space(re[-1])) re--;
        }
        co_str(o, "<|im_start|>assistant\n");
        if (i > last_query && (q35 || i == n - 1 || re > r)) {
            co_str(o, "<think>\n");
            co_put(o, r, (size_t)(re - r));
            co_str(o, "\n</think>\n\n");
            co_sub(o, i, ans, strlen(ans), q35 ? 1 : 2);
        } else {
            co_sub(o, i, ans, strlen(ans), q35 ? 1 : 2 * (ans != c));
        }
        co_str(o, "<|im_end|>\n");
    }
    if (add_gen & SLM_CHAT_GEN) {
        co_str(o, "<|im_start|>assistant\n");
        if (add_gen & SLM_CHAT_NO_THINK) co_str(o, "<think>\n\n</think>\n\n");
        else if (q35) co_str(o, "<think>\n");
    }
}

/* SmolLM3's custom instructions: s with every "/no_think" removed, then
   every "/think" of the result, without trailing white space. Writes the
   first `limit` bytes to o (NULL: none); returns the length up to the last
   byte that is no white space. No allocation: a 6-byte window for "/think". */
static size_t smol_instructions(const char *s, chat_out *o, size_t limit) {
    char win[6];
    size_t nw = 0, out = 0, kept = 0;
    for (size_t r = 0;; ) {
        int end = s[r] == 0;
        if (!end && !strncmp(s + r, "/no_think", 9)) {
            r += 9;
            continue;
        }
        if (!end) win[nw++] = s[r++];
        /* flush what can no longer start "/think" (everything at the end) */
        while (nw > 0 && (end || strncmp(win, "/think", nw) != 0)) {
            if (o && out < limit) co_put(o, win, 1);
            out++;
            if (!chat_space(win[0])) kept = out;
            memmove(win, win + 1, --nw);
        }
        if (nw == 6) nw = 0; /* a whole "/think": dropped */
        if (end) break;
    }
    return kept;
}

/* SmolLM3 (the template llama.cpp ships, without tools): a system block of
   metadata, the reasoning mode and the system text (or a default), then
   ChatML turns; in /no_think mode every reply opens with an empty block. */
static void chat_render_smollm3(chat_out *o, const slm_chat_message *msg, int32_t n, int add_gen) {
    int think = !(add_gen & SLM_CHAT_NO_THINK);
    const char *sys = n > 0 && role_is(&msg[0], "system") ? msg[0].content : NULL;
    if (sys && strstr(sys, "/no_think")) think = 0;
    else if (sys && strstr(sys, "/think")) think = 1;
    co_str(o, "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: ");
    co_str(o, think ? "/think" : "/no_think");
    co_str(o, "\n\n## Custom Instructions\n\n");
    /* the system text without "/no_think", then without "/think", right-trimmed:
       measured in one pass, written in a second */
    size_t kept = sys ? smol_instructions(sys, NULL, SIZE_MAX) : 0;
    if (kept) smol_instructions(sys, o, kept);
    if (kept) co_str(o, "\n\n");
    else if (think)
        co_str(o, "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
                  "thoroughly exploring questions through a systematic thinking process before providing the final precise "
                  "and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, "
                  "exploration, reassessment, reflection, backtracking, and iteration to develop well-considered thinking "
                  "process. Please structure your response into two main sections: Thought and Solution using the "
                  "specified format: <think> Thought section </think> Solution section. In the Thought section, detail your "
                  "reasoning process in steps. Each step should include detailed considerations such as analysing "
                  "questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current "
                  "steps, refining any errors, and revisiting previous steps. In the Solution section, based on various "
                  "attempts, explorations, and reflections from the Thought section, systematically present the final "
                  "solution that you deem correct. The Solution section should be logical, accurate, and concise and "
                  "detail necessary steps needed to reach the conclusion.\n\n");
    else
        co_str(o, "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n");
    co_str(o, "<|im_end|>\n");
    for (int32_t i = 0; i < n; i++) {
        const char *c = msg[i].content;
        if (role_is(&msg[i], "assistant")) {
            co_str(o, think ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n");
            co_sub(o, i, c, strlen(c), 2);
            co_str(o, "<|im_end|>\n");
        } else if (role_is(&msg[i], "user") || role_is(&msg[i], "tool")) { /* tool results as user turns */
            co_str(o, "<|im_start|>user\n");
            co_content(o, i, c, 0);
            co_str(o, "<|im_end|>\n");
        }
    }
    if (add_gen & SLM_CHAT_GEN) co_str(o, think ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n");
}

static void chat_render(chat_out *o, int fam, const slm_chat_message *msg, int32_t n, int add_gen, const char *bos,
                        const char *eos) {
    int32_t sys = -1; /* a system message waiting for the next turn (gemma, mistral) */
    switch (fam) {
    case SLM_CHAT_CHATML:
        for (int32_t i = 0; i < n; i++) {
            co_str(o, "<|im_start|>");
            co_str(o, msg[i].role);
            co_str(o, "\n");
            co_content(o, i, msg[i].content, 0);
            co_str(o, "<|im_end|>\n");
        }
        if (add_gen & SLM_CHAT_GEN) co_str(o, "<|im_start|>assistant\n");
        break;
    case SLM_CHAT_LLAMA3:
        for (int32_t i = 0; i < n; i++) {
            co_str(o, "<|start_header_id|>");
            co_str(o, msg[i].role);
            co_str(o, "<|end_header_id|>\n\n");
            co_content(o, i, msg[i].content, 1);
            co_str(o, "<|eot_id|>");
        }
        if (add_gen & SLM_CHAT_GEN) co_str(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case SLM_CHAT_GEMMA:
        /* Gemma 3: the system text and "\n\n" open the first turn */
        for (int32_t i = 0; i < n; i++) {
            if (role_is(&msg[i], "system")) {
                sys = i;
                continue;
            }
            co_str(o, "<start_of_turn>");
            co_str(o, role_is(&msg[i], "assistant") ? "model" : msg[i].role);
            co_str(o, "\n");
            if (sys >= 0) {
                co_content(o, sys, msg[sys].content, 0);
                co_str(o, "\n\n");
                sys = -1;
            }
            co_content(o, i, msg[i].content, 1);
            co_str(o, "<end_of_turn>\n");
        }
        if (add_gen & SLM_CHAT_GEN) co_str(o, "<start_of_turn>model\n");
        break;
    case SLM_CHAT_PHI3:
    case SLM_CHAT_ZEPHYR:
        for (int32_t i = 0; i < n; i++) {
            co_str(o, "<|");
            co_str(o, msg[i].role);
            co_str(o, "|>\n");
            co_content(o, i, msg[i].content, 0);
            co_str(o, fam == SLM_CHAT_PHI3 ? "<|end|>\n" : eos);
            if (fam == SLM_CHAT_ZEPHYR) co_str(o, "\n");
        }
        if (add_gen & SLM_CHAT_GEN) co_str(o, "<|assistant|>\n");
        break;
    case SLM_CHAT_PHI4_MINI: /* Phi-3's tags without the newlines */
        for (int32_t i = 0; i < n; i++) {
            co_str(o, "<|");
            co_str(o, msg[i].role);
            co_str(o, "|>");
            co_content(o, i, msg[i].content, 0);
            co_str(o, "<|end|>");
        }
        if (add_gen & SLM_CHAT_GEN) co_str(o, "<|assistant|>");
        break;
    case SLM_CHAT_MISTRAL:
        /* Mistral's tokenizer-V1 template (Mistral-7B-Instruct v0.1/v0.2,
           Mixtral-8x7B); a system prompt goes before the first user text,
           as mistral_common does */
        for (int32_t i = 0; i < n; i++) {
            if (role_is(&msg[i], "system")) {
                sys = i;
            } else if (role_is(&msg[i], "assistant")) {
                co_str(o, " ");
                co_content(o, i, msg[i].content, 0);
                co_str(o, eos);
            } else {
                co_str(o, " [INST] ");
                if (sys >= 0) {
                    co_content(o, sys, msg[sys].content, 0);
                    co_str(o, "\n\n");
                    sys = -1;
                }
                co_content(o, i, msg[i].content, 0);
                co_str(o, " [/INST]");
            }
        }
        break;
    case SLM_CHAT_LLAMA2: {
        /* Llama-2-chat: BOS before every [INST] (but the first, which the
           tokenizer adds); the system block opens the first user turn and
           the whole turn text is strip()ped */
        int32_t first = n > 0 && role_is(&msg[0], "system") ? 1 : 0;
        for (int32_t i = first; i < n; i++) {
            if (role_is(&msg[i], "assistant")) {
                co_str(o, " ");
                co_content(o, i, msg[i].content, 1);
                co_str(o, " ");
                co_str(o, eos);
            } else if (!role_is(&msg[i], "system")) {
                if (o->pos > 0) co_str(o, bos);
                co_str(o, "[INST] ");
                if (first && i == 1) {
                    /* strip() of "<<SYS>>\n" + S + "\n<</SYS>>\n\n" + U: the
                       block starts with '<', so only U's end is trimmed,
                       unless U is all white space */
                    const char *u = msg[i].content;
                    size_t ul = strlen(u), ue = ul;
                    while (ue > 0 && chat_space(u[ue - 1])) ue--;
                    co_str(o, "<<SYS>>\n");
                    if (ue == 0) {
                        const char *s = msg[0].content;
                        size_t se = strlen(s);
                        while (se > 0 && chat_space(s[se - 1])) se--;
                        co_put(o, s, se); /* "\n<</SYS>>" ends in '>' */
                        co_str(o, "\n<</SYS>>");
                    } else {
                        co_str(o, msg[0].content);
                        co_str(o, "\n<</SYS>>\n\n");
                        co_put(o, u, ue);
                    }
                    if (i == o->mark_at) o->mark = o->pos;
                } else {
                    co_content(o, i, msg[i].content, 1);
                }
                co_str(o, " [/INST]");
            }
        }
        break;
    }
    case SLM_CHAT_GRANITE: /* 2026 families (issue 14) */
        for (int32_t i = 0; i < n; i++) {
            co_str(o, "<|start_of_role|>");
            co_str(o, msg[i].role);
            co_str(o, "<|end_of_role|>");
            co_content(o, i, msg[i].content, 0);
            co_str(o, "<|end_of_text|>\n");
        }
        if (add_gen & SLM_CHAT_GEN) co_str(o, "<|start_of_role|>assistant<|end_of_role|>");
        break;
    case SLM_CHAT_OLMO2: /* Tulu 3: EOS ends the assistant's turns only */
        for (int32_t i = 0; i < n; i++) {
            const int asst = role_is(&msg[i], "assistant");
            co_str(o, role_is(&msg[i], "system") ? "<|system|>\n" : asst ? "<|assistant|>\n" : "<|user|>\n");
            co_content(o, i, msg[i].content, 0);
            if (asst) co_str(o, eos);
            if (!asst || i + 1 < n) co_str(o, "\n");
        }
        if (add_gen & SLM_CHAT_GEN) co_str(o, "<|assistant|>\n");
        break;
    case SLM_CHAT_QWEN3:
    case SLM_CHAT_QWEN35:
        chat_render_qwen3(o, fam == SLM_CHAT_QWEN35, msg, n, add_gen);
        break;
    case SLM_CHAT_SMOLLM3:
        chat_render_smollm3(o, msg, n, add_gen);
        break;
    case SLM_CHAT_LFM2: { /* ChatML; replies before the last lose "...</think>" (trimmed) */
        int32_t last = -1;
        for (int32_t i = 0; i < n; i++)
            if (role_is(&msg[i], "assistant")) last = i;
        for (int32_t i = 0; i < n; i++) {
            const char *c = msg[i].content, *t = i != last && role_is(&msg[i], "assistant") ? last_think_end(c) : NULL;
            co_str(o, "<|im_start|>");
            co_str(o, msg[i].role);
            co_str(o, "\n");
            if (t) co_sub(o, i, t, strlen(t), 1);
            else co_content(o, i, c, 0);
            co_str(o, "<|im_end|>\n");
        }
        if (add_gen & SLM_CHAT_GEN) co_str(o, "<|im_start|>assistant\n");
        break;
    }
    default:
        break;
    }
}

/* Detection, in llama.cpp's order where the families overlap. */
int slm_chat_detect(const char *t) {
    if (!t) return SLM_CHAT_AUTO;
#define HAS(s) (strstr(t, s) != NULL)
    if (HAS("<|im_start|>")) {
        if (HAS("<|im_sep|>") || HAS("<end_of_utterance>")) return SLM_CHAT_AUTO;
        if (HAS("Reasoning Mode") && HAS("/no_think")) return SLM_CHAT_SMOLLM3;
        /* Qwen3.5 opens the reply with '<think>\n' unless enable_thinking is false */
        if (HAS("<think>") && HAS("enable_thinking") && HAS("last_query_index"))
            return HAS("'<think>\\n' }}") ? SLM_CHAT_QWEN35 : SLM_CHAT_QWEN3;
        if (HAS("<|startoftext|>") || (HAS("bos_token") && HAS("</think>") && HAS("last_assistant_index")))
            return SLM_CHAT_LFM2;
        return SLM_CHAT_CHATML;
    }
    if (HAS("[INST]")) return HAS("<<SYS>>") ? SLM_CHAT_LLAMA2 : SLM_CHAT_MISTRAL;
    if ((HAS("<|user|>") || HAS("<|assistant|>")) && HAS("<|end|>"))
        return HAS("'|>' + message['content']") ? SLM_CHAT_PHI4_MINI : SLM_CHAT_PHI3;
    if (HAS("<|start_of_role|>")) return SLM_CHAT_GRANITE;
    /* OLMo 2 (Tulu 3) writes EOS and then "\n" after assistant turns only;
       Zephyr ends every turn with EOS */
    if (HAS("<|user|>") && HAS("<|assistant|>") && HAS("eos_token + '")) return SLM_CHAT_OLMO2;
    if (HAS("<|user|>") && (HAS("eos_token") || HAS("</s>") || HAS("<|endoftext|>"))) return SLM_CHAT_ZEPHYR;
    if (HAS("<start_of_turn>")) return SLM_CHAT_GEMMA;
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) return SLM_CHAT_LLAMA3;
#undef HAS
    return SLM_CHAT_AUTO;
}

static const char *const CHAT_NAMES[] = {"auto",   "chatml",  "llama3", "gemma",     "phi3",   "zephyr",
                                         "mistral", "llama2", "phi4-mini", "granite", "olmo2",
                                         "qwen3",  "qwen3.5", "smollm3", "lfm2"};

const char *slm_chat_family_name(int f) {
    return f >= 0 && f < (int)(sizeof CHAT_NAMES / sizeof CHAT_NAMES[0]) ? CHAT_NAMES[f] : NULL;
}

/* ASCII case-insensitive equality (template names: "ChatML", "Gemma") */
static int streq_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return 0;
    }
    return *a == *b;
}

int slm_chat_family_from_name(const char *name) {
    if (!name) return SLM_CHAT_AUTO;
    if (streq_nocase(name, "qwen")) return SLM_CHAT_CHATML;
    if (streq_nocase(name, "tinyllama")) return SLM_CHAT_ZEPHYR;
    for (int f = 1; f < (int)(sizeof CHAT_NAMES / sizeof CHAT_NAMES[0]); f++)
        if (streq_nocase(name, CHAT_NAMES[f])) return f;
    return SLM_CHAT_AUTO;
}

/* Without a template slm knows: the family the architecture implies
   (general.architecture), else the one whose turn markers the vocabulary
   has as single tokens, else 0. */
static int chat_family_of_model(const slm_model *m, const char **why) {
    const char *arch = m->arch_name;
    if (!arch[0]) {
        const gguf_kv *a = gguf_get(&m->g, "general.architecture");
        arch = a && a->type == SLM_META_STRING ? a->str[0] : "";
    }
    *why = "general.architecture";
    if (!strncmp(arch, "gemma", 5)) return SLM_CHAT_GEMMA;
    if (!strcmp(arch, "phi3")) return SLM_CHAT_PHI3;
    if (!strcmp(arch, "qwen3") || !strcmp(arch, "qwen3moe")) return SLM_CHAT_QWEN3;
    if (!strncmp(arch, "qwen35", 6)) return SLM_CHAT_QWEN35;
    if (!strncmp(arch, "qwen", 4)) return SLM_CHAT_CHATML;
    if (!strncmp(arch, "granite", 7)) return SLM_CHAT_GRANITE; /* 2026 families */
    if (!strcmp(arch, "olmo2")) return SLM_CHAT_OLMO2;
    if (!strcmp(arch, "lfm2")) return SLM_CHAT_LFM2;
    if (!strcmp(arch, "smollm3")) return SLM_CHAT_SMOLLM3;
    const vocab *v = vocab_of(m);
    static const struct {
        const char *tok;
        int family;
    } MARK[] = {{"<|start_header_id|>", SLM_CHAT_LLAMA3}, {"<|im_start|>", SLM_CHAT_CHATML},
                {"<start_of_turn>", SLM_CHAT_GEMMA},       {"<|start_of_role|>", SLM_CHAT_GRANITE},
                {"<|assistant|>", SLM_CHAT_PHI3},
                {"[INST]", SLM_CHAT_MISTRAL}};
    *why = "the vocabulary's turn tokens";
    for (size_t i = 0; v && i < sizeof MARK / sizeof MARK[0]; i++)
        if (vocab_find(v, MARK[i].tok, strlen(MARK[i].tok)) >= 0) return MARK[i].family;
    return SLM_CHAT_AUTO;
}

int slm_chat_model_family(const slm_model *m, int *fallback) {
    const gguf_kv *k = m ? gguf_get(&m->g, "tokenizer.chat_template") : NULL;
    const char *t = k && k->type == SLM_META_STRING ? k->str[0] : NULL;
    int f = slm_chat_detect(t);
    if (fallback) *fallback = f == SLM_CHAT_AUTO;
    if (f != SLM_CHAT_AUTO) return f;
    const char *why = "";
    f = m ? chat_family_of_model(m, &why) : SLM_CHAT_AUTO;
    if (f != SLM_CHAT_AUTO) {
        logf_(m, SLM_LOG_WARN, "%s: using the %s template (from %s)",
              t ? "the chat template of the model is not one slm knows" : "the model has no chat template",
              CHAT_NAMES[f], why);
        return f;
    }
    if (m)
        logf_(m, SLM_LOG_WARN, t ? "the chat template of the model is not one slm knows: using ChatML"
                                 : "the model has no chat template (tokenizer.chat_template): using ChatML");
    return SLM_CHAT_CHATML;
}

/* Text of a special token of the model, or the default. */
/* A token's piece as a C string in buf (pieces are views into the file,
   not NUL-terminated); dflt if there is none, it holds a NUL or is longer
   than buf. */
static const char *chat_token(const slm_model *m, int32_t id, const char *dflt, char *buf, size_t size) {
    const vocab *v = vocab_of(m);
    if (!v || id < 0 || id >= v->n || v->len[id] == 0 || v->len[id] >= size || memchr(v->text[id], 0, v->len[id]))
        return dflt;
    memcpy(buf, v->text[id], v->len[id]);
    buf[v->len[id]] = 0;
    return buf;
}

slm_status slm_chat_format(const slm_model *m, int family, const slm_chat_message *msg, int32_t n, int32_t n_past,
                           int add_gen, char *buf, size_t size, size_t *len, int *fallback, slm_error *err) {
    clearerr_(err);
    if (len) *len = 0;
    if (fallback) *fallback = 0;
    if (n < 0 || (n > 0 && !msg) || n_past < 0 || n_past > n)
        return seterr(err, SLM_ERR_INVALID_ARG, "messages is NULL or n / n_past out of range");
    for (int32_t i = 0; i < n; i++)
        if (!msg[i].role || !msg[i].content) return seterr(err, SLM_ERR_INVALID_ARG, "message %d has a NULL role or content", (int)i);
    if (family == SLM_CHAT_AUTO) {
        if (!m) return seterr(err, SLM_ERR_INVALID_ARG, "SLM_CHAT_AUTO needs a model");
        family = slm_chat_model_family(m, fallback);
    }
    if (family < SLM_CHAT_CHATML || family > SLM_CHAT_LFM2)
        return seterr(err, SLM_ERR_INVALID_ARG, "unknown chat template family %d", family);
    if (n_past > 0 && strcmp(msg[n_past - 1].role, "assistant") != 0)
        return seterr(err, SLM_ERR_INVALID_ARG, "n_past = %d: message %d must be the assistant's reply", (int)n_past,
                      (int)(n_past - 1));
    char bos_buf[128], eos_buf[128];
    const char *bos = chat_token(m, slm_token_bos(m), "<s>", bos_buf, sizeof bos_buf),
               *eos = chat_token(m, slm_token_eos(m), "</s>", eos_buf, sizeof eos_buf);
    chat_out o;
    memset(&o, 0, sizeof o);
    o.mark_at = n_past - 1;
    if (n_past > 0) { /* where does the old conversation end? */
        chat_render(&o, family, msg, n, add_gen, bos, eos);
        o.skip = o.mark;
        o.pos = 0;
        o.mark_at = -1;
    }
    o.buf = buf;
    o.size = size;
    chat_render(&o, family, msg, n, add_gen, bos, eos);
    size_t total = o.pos - o.skip;
    if (len) *len = total;
    if (!buf || total >= size) return seterr(err, SLM_ERR_BUFFER, "the text needs %zu bytes and a NUL", total);
    buf[total] = 0;
    return SLM_OK;
}

/* ========================================================================== */
/* 11. Sampler                                                                */
/* ========================================================================== */
/*
 * Chain (the order of llama.cpp's default chain, see slm.h): penalties ->
 * greedy if temperature <= 0 -> top-k -> top-p -> min-p -> temperature ->
 * draw. top-p and min-p look at the probabilities at temperature 1.
 *
 * Same seed, same tokens, on every platform (given the same logits): the
 * RNG is xoshiro256** seeded by splitmix64; probabilities are computed in
 * double with exp_neg() below (only +, *, floor and ldexp, which IEEE
 * arithmetic defines exactly; each step is its own statement so that a
 * compiler does not fuse them into FMAs); candidates are ordered by (logit
 * descending, id ascending), a total order; sums run in that order.
 */

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct slm_sampler {
    allocator a;
    slm_sampler_params p;
    int32_t n_vocab;
    cand *c;          /* working candidates, n_vocab */
    int32_t *count;   /* occurrence counters, all zero between calls */
    int32_t *hist;    /* ring of the last repeat_last_n accepted tokens */
    int32_t hist_cap, hist_n, hist_pos;
    uint64_t rng[4];
    struct gstate *gs; /* grammar state (section 11b), NULL without a grammar */
};

/* The grammar matcher (section 11b) as the sampler uses it. */
struct gstate;
static slm_status gstate_new(const allocator *a, const slm_grammar *g, struct gstate **out, slm_error *err);
static void gstate_free(struct gstate *s);
static void gstate_reset(struct gstate *s);
static const uint32_t *g_mask(struct gstate *s);
static int g_accept(struct gstate *s, int32_t token);
static int32_t g_n_vocab(const slm_grammar *g);

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t *s) {
    uint64_t r = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return r;
}

static void rng_seed(uint64_t *s, uint64_t seed) {
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&seed);
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t *s) { return (double)(xoshiro_next(s) >> 11) * (1.0 / 9007199254740992.0); }

/* e^x for x <= 0 (larger x is clamped to 0), the same bits everywhere. */
static double exp_neg(double x) {
    static const double C[13] = {1.0,
                                 1.0,
                                 1.0 / 2,
                                 1.0 / 6,
                                 1.0 / 24,
                                 1.0 / 120,
                                 1.0 / 720,
                                 1.0 / 5040,
                                 1.0 / 40320,
                                 1.0 / 362880,
                                 1.0 / 3628800,
                                 1.0 / 39916800,
                                 1.0 / 479001600};
    if (!(x > -745.0)) return 0.0; /* also NaN */
    if (x > 0) x = 0;
    double t = x * 1.4426950408889634; /* log2(e) */
    t = t + 0.5;
    double kf = floor(t);
    double hi = kf * 6.93147180369123816490e-01, lo = kf * 1.90821492927058770002e-10; /* ln 2 split */
    double r = x - hi;
    r = r - lo; /* |r| <= ln2 / 2 */
    double p = C[12];
    for (int i = 11; i >= 0; i--) {
        p = p * r;
        p = p + C[i];
    }
    return ldexp(p, (int)kf);
}

/* Candidate order: higher logit first, then lower id. */
static int cand_before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* Max-heap (by cand_before) over c[0, n). */
static void cand_sift(cand *c, size_t n, size_t i) {
    cand x = c[i];
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const cand *bb = &x;
        if (l < n && cand_before(&c[l], bb)) best = l, bb = &c[l];
        if (l + 1 < n && cand_before(&c[l + 1], bb)) best = l + 1;
        if (best == i) break;
        c[i] = c[best];
        i = best;
    }
    c[i] = x;
}

static void cand_heapify(cand *c, size_t n) {
    for (size_t i = n / 2; i-- > 0;) cand_sift(c, n, i);
}

/* Pop the best of the heap c[0, n) into c[n - 1]; the heap shrinks to n - 1. */
static void cand_pop(cand *c, size_t n) {
    cand t = c[0];
    c[0] = c[n - 1];
    c[n - 1] = t;
    if (n > 2) cand_sift(c, n - 1, 0);
}

/* Move the k popped items from the tail c[n - k, n) (best last) to the
   front in best-first order. */
static void cand_front(cand *c, size_t n, size_t k) {
    for (size_t i = 0; i < k; i++) {
        size_t j = n - 1 - i;
        if (i >= j) break;
        cand t = c[i];
        c[i] = c[j];
        c[j] = t;
    }
    /* when 2k > n the swaps above stop halfway: the rest is already placed */
}

void slm_sampler_params_init(slm_sampler_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
}

void slm_sampler_free(slm_sampler *s) {
    if (!s) return;
    allocator a = s->a;
    xfree(&a, s->c, (size_t)s->n_vocab * sizeof(cand));
    xfree(&a, s->count, (size_t)s->n_vocab * sizeof(int32_t));
    xfree(&a, s->hist, (size_t)(s->hist_cap ? s->hist_cap : 1) * sizeof(int32_t));
    gstate_free(s->gs);
    xfree(&a, s, sizeof *s);
}

static slm_status sampler_new(const allocator *a, const slm_sampler_params *p, int32_t n_vocab, slm_sampler **out,
                              slm_error *err) {
    slm_sampler_params dp;
    if (!p) {
        slm_sampler_params_init(&dp);
        p = &dp;
    }
    if (n_vocab <= 0) return seterr(err, SLM_ERR_INVALID_ARG, "sampler: n_vocab %d", (int)n_vocab);
    if (!(p->temperature == p->temperature) || !(p->top_p == p->top_p) || !(p->min_p == p->min_p) ||
        !(p->repeat_penalty > 0) || !isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return seterr(err, SLM_ERR_INVALID_ARG, "sampler: NaN parameter or repeat_penalty <= 0");
    if (p->repeat_last_n > (1 << 20)) return seterr(err, SLM_ERR_INVALID_ARG, "sampler: repeat_last_n too large");
    if (p->grammar && g_n_vocab(p->grammar) != n_vocab)
        return seterr(err, SLM_ERR_INVALID_ARG, "sampler: the grammar is bound to a vocabulary of %d tokens, the sampler has %d",
                      (int)g_n_vocab(p->grammar), (int)n_vocab);
    slm_sampler *s = (slm_sampler *)xcalloc(a, 1, sizeof *s);
    if (!s) return seterr(err, SLM_ERR_NOMEM, "out of memory for the sampler");
    s->a = *a;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->hist_cap = p->repeat_last_n > 0 ? p->repeat_last_n : 0;
    s->c = (cand *)xalloc(a, (size_t)n_vocab * sizeof(cand));
    s->count = (int32_t *)xcalloc(a, (size_t)n_vocab, sizeof(int32_t));
    s->hist = (int32_t *)xalloc(a, (size_t)(s->hist_cap ? s->hist_cap : 1) * sizeof(int32_t));
    if (!s->c || !s->count || !s->hist) {
        slm_sampler_free(s);
        return seterr(err, SLM_ERR_NOMEM, "out of memory for a sampler over %d tokens", (int)n_vocab);
    }
    rng_seed(s->rng, p->seed);
    if (p->grammar) {
        slm_status st = gstate_new(a, p->grammar, &s->gs, err);
        if (st != SLM_OK) {
            slm_sampler_free(s);
            return st;
        }
    }
    *out = s;
    return SLM_OK;
}

slm_status slm_sampler_create(const slm_sampler_params *p, int32_t n_vocab, const slm_allocator *hook,
                              slm_sampler **out, slm_error *err) {
    clearerr_(err);
    if (!out) return seterr(err, SLM_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    allocator a;
    alloc_init(&a, hook);
    return sampler_new(&a, p, n_vocab, out, err);
}

/* The penalty window only (prompt tokens in slm_generate). */
static void sampler_record(slm_sampler *s, int32_t token) {
    if (!s || s->hist_cap == 0) return;
    s->hist[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->hist_cap;
    if (s->hist_n < s->hist_cap) s->hist_n++;
}

void slm_sampler_accept(slm_sampler *s, int32_t token) {
    if (!s) return;
    sampler_record(s, token);
    if (s->gs) g_accept(s->gs, token);
}

void slm_sampler_reset(slm_sampler *s, uint64_t seed) {
    if (!s) return;
    if (s->gs) gstate_reset(s->gs);
    s->hist_n = s->hist_pos = 0;
    s->p.seed = seed;
    rng_seed(s->rng, seed);
}

/* Repetition, frequency and presence penalties over the window. c[] is in
   id order here (c[id].id == id). */
static void apply_penalties(slm_sampler *s, cand *c) {
    const slm_sampler_params *p = &s->p;
    if (s->hist_n == 0 || (p->repeat_penalty == 1.0f && p->frequency_penalty == 0 && p->presence_penalty == 0))
        return;
    for (int32_t i = 0; i < s->hist_n; i++) {
        int32_t t = s->hist[i];
        if (t >= 0 && t < s->n_vocab) s->count[t]++;
    }
    for (int32_t i = 0; i < s->hist_n; i++) {
        int32_t t = s->hist[i];
        if (t < 0 || t >= s->n_vocab || s->count[t] == 0) continue;
        float l = c[t].logit;
        if (p->repeat_penalty != 1.0f) l = l <= 0 ? l * p->repeat_penalty : l / p->repeat_penalty;
        l -= (float)s->count[t] * p->frequency_penalty + p->presence_penalty;
        c[t].logit = l;
        s->count[t] = 0;
    }
}

int32_t slm_sampler_sample(slm_sampler *s, const float *logits) {
    if (!s || !logits) return -1;
    const slm_sampler_params *p = &s->p;
    cand *c = s->c;
    size_t n = (size_t)s->n_vocab;
    for (size_t i = 0; i < n; i++) {
        float l = logits[i];
        c[i].logit = l == l ? l : -INFINITY; /* NaN never wins */
        c[i].id = (int32_t)i;
    }
    apply_penalties(s, c);
    if (s->gs) { /* the grammar: tokens it does not allow can never win */
        const uint32_t *mask = g_mask(s->gs);
        if (!mask) return -1;
        /* keep the allowed candidates only (in id order, so that every
           later step gives what it gives with the others at -inf) */
        size_t n_ok = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t w = mask[i >> 5];
            if (!w) { /* 32 tokens at once */
                i |= 31;
                continue;
            }
            if (w >> (i & 31) & 1) {
                c[n_ok] = c[i];
                if (!(c[n_ok].logit >= -FLT_MAX)) c[n_ok].logit = -FLT_MAX; /* below every real logit, above -inf */
                n_ok++;
            }
        }
        if (n_ok == 0) return -1;
        n = n_ok;
    }

    if (!(p->temperature > 0)) { /* greedy: lowest id among equal maxima */
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        return c[best].id;
    }

    int sorted = 0;
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        size_t k = (size_t)p->top_k;
        cand_heapify(c, n);
        for (size_t i = 0; i < k; i++) cand_pop(c, n - i);
        cand_front(c, n, k);
        n = k;
        sorted = 1;
    }
    if (p->top_p < 1.0f && n > 1) {
        /* probabilities at temperature 1 over the current set */
        double mx = -INFINITY, z = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].logit > mx) mx = c[i].logit;
        for (size_t i = 0; i < n; i++) z += exp_neg((double)c[i].logit - mx);
        if (z > 0) {
            const double target = (double)p->top_p * z;
            double cum = 0;
            size_t keep = n;
            if (sorted) {
                for (size_t i = 0; i < n; i++) {
                    cum += exp_neg((double)c[i].logit - mx);
                    if (cum >= target) {
                        keep = i + 1;
                        break;
                    }
                }
            } else { /* pop best-first until the mass is reached */
                cand_heapify(c, n);
                size_t i = 0;
                for (; i < n; i++) {
                    cand_pop(c, n - i);
                    cum += exp_neg((double)c[n - 1 - i].logit - mx);
                    if (cum >= target) {
                        i++;
                        break;
                    }
                }
                cand_front(c, n, i);
                keep = i;
                sorted = 1;
            }
            n = keep ? keep : 1;
        }
    }
    if (p->min_p > 0 && n > 1) {
        double mx = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (c[i].logit > mx) mx = c[i].logit;
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            if (exp_neg((double)c[i].logit - mx) >= (double)p->min_p) c[j++] = c[i];
            else if (sorted) break;
        }
        n = j ? j : 1; /* the best token always passes */
    }

    /* temperature, then the draw */
    double mx = -INFINITY, z = 0;
    for (size_t i = 0; i < n; i++) {
        c[i].logit = c[i].logit / p->temperature;
        if (c[i].logit > mx) mx = c[i].logit;
    }
    for (size_t i = 0; i < n; i++) z += exp_neg((double)c[i].logit - mx);
    double u = rng_uniform(s->rng) * z, cum = 0;
    if (!(z > 0)) { /* every logit -inf: take the first best */
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (cand_before(&c[i], &c[best])) best = i;
        return c[best].id;
    }
    for (size_t i = 0; i < n; i++) {
        cum += exp_neg((double)c[i].logit - mx);
        if (u < cum) return c[i].id;
    }
    for (size_t i = n; i-- > 0;) /* rounding left u at the very top */
        if (exp_neg((double)c[i].logit - mx) > 0) return c[i].id;
    return c[0].id;
}

/* ========================================================================== */
/* 11b. Grammar: GBNF, JSON, JSON Schema, grammar-masked sampling             */
/* ========================================================================== */
/*
 * A GBNF text (the format of llama.cpp's .gbnf files) is compiled into rules
 * whose alternatives are sequences of elements: a character class, a
 * reference to a rule, or the end of the alternative. Groups and the
 * repetitions * + ? {m,n} become generated rules (x* is R ::= x R | "", the
 * recursion on the right). The compiler rejects, with line and column, what
 * the parser cannot read, and before any sampling: undefined rules, left
 * recursion (which would make the matcher loop) and rules with no finite
 * derivation. Every size is bounded (text, rules, elements, {m,n}, nesting).
 *
 * Matching is over bytes: a parse stack is a persistent list of nodes (the
 * top is the class to match next, the nodes below are return positions
 * after a rule reference), shared between stacks, and the state is a set of
 * stacks (several when the grammar is ambiguous so far). A multi-byte UTF-8
 * character is matched one byte at a time: the top node keeps the bits seen
 * so far, and a prefix survives only if some code point it can still become
 * is in the class, so tokens that end inside a character, and tokens that
 * start inside one, work as they should.
 *
 * The mask of a step: the vocabulary's pieces sit in a byte trie (built once
 * per grammar); the trie is walked depth first with the stack set after each
 * prefix, so a prefix shared by many tokens is matched once, and a subtree
 * whose prefix fails is skipped whole. Node memory of the walk is a stack
 * (reset when the walk backs up). Masks are cached per state in the sampler:
 * inside a JSON string the state repeats at every character.
 */

/* Limits: a hostile grammar or schema fails cleanly instead of eating memory. */
#define G_MAX_TEXT (1u << 20)   /* bytes of grammar text */
#define G_MAX_RULES 16384u      /* rules, generated ones included */
#define G_MAX_ELEMS (1u << 20)  /* elements after expanding repetitions */
#define G_MAX_REPEAT 4096u      /* m and n of {m,n} */
#define G_MAX_NEST 64           /* parenthesis nesting */
#define G_MAX_STACKS 1024u      /* parse stacks alive at once (extra ones are dropped) */
#define G_MAX_DEPTH 2048u       /* nodes per stack (nesting of the text being matched) */
#define G_MAX_NODES (1u << 21)  /* nodes of one mask walk or token step */
#define G_MAX_WORK 100000u      /* expansion steps for one matched character */

enum { GE_END = 0, GE_REF = 1, GE_CLASS = 2 };

typedef struct gel {
    uint32_t type; /* GE_* */
    uint32_t v;    /* rule id (GE_REF) or class id (GE_CLASS) */
} gel;

typedef struct gclass {
    uint32_t r0, nr;    /* ranges rng[2*r0 .. 2*(r0+nr)), sorted, merged, inclusive */
    uint32_t neg;       /* 1: every code point except those */
    uint8_t first[32];  /* bit b: a character can start with byte b */
} gclass;

typedef struct gtrie {
    uint32_t end;   /* index after this node's subtree */
    uint32_t tok;   /* first of the tokens ending here, in gr->tok_sorted */
    uint32_t ntok;
    uint16_t depth; /* 1 for the first byte */
    uint8_t byte;
} gtrie;

struct slm_grammar {
    allocator a;
    gel *el;                  /* n_el elements; each alternative ends with GE_END */
    uint32_t n_el, cap_el;
    uint32_t *alt;            /* first element of each alternative, rule by rule */
    uint32_t n_alt, cap_alt;
    uint32_t *rule_alt, *rule_nalt; /* rule r: alt[rule_alt[r] ...] */
    uint32_t *rule_name;      /* offset of the name in names (generated: owner's) */
    uint32_t *rule_line;      /* 0: referenced but not defined yet; else defining line */
    uint32_t *rule_ref;       /* position (text offset + 1) of the first reference */
    uint8_t *rule_gen;        /* 1: generated (group, repetition) */
    uint32_t n_rules, cap_rules;
    char *names;              /* NUL-terminated names */
    uint32_t n_names, cap_names;
    uint32_t *name_hash;      /* open addressing, rule id + 1, G_MAX_RULES * 2 slots */
    gclass *cls;
    uint32_t n_cls, cap_cls;
    uint32_t *rng;
    uint32_t n_rng, cap_rng;
    uint32_t root;
    /* the vocabulary binding */
    int32_t n_vocab;
    uint32_t *piece_off;      /* n_vocab + 1: piece of token t is pieces[off[t], off[t+1]) */
    char *pieces;
    size_t pieces_len;
    uint8_t *tok_kind;        /* n_vocab: 0 never, 1 text, 2 end of generation */
    int32_t *tok_sorted;      /* tokens in the trie, by piece bytes */
    uint32_t n_sorted;
    gtrie *trie;
    uint32_t n_trie;
    uint32_t max_piece;
};

/* --- compiling GBNF ----------------------------------------------------------- */

typedef struct gvec { /* a growable element sequence (one alternative being read) */
    gel *v;
    size_t n, cap;
} gvec;

typedef struct gparse {
    slm_grammar *g;
    const char *s;
    size_t n, i;
    int depth;
    slm_error *err;
    slm_status st;
} gparse;

static void g_linecol(const char *s, size_t at, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < at; i++) {
        if (s[i] == '\n') l++, c = 1;
        else if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    }
    *line = l;
    *col = c;
}

/* An error at text offset `at`: "grammar: line L, column C: ..." */
static SLM_PRINTF(3, 4) slm_status gp_fail(gparse *p, size_t at, const char *fmt, ...) {
    if (p->st != SLM_OK) return p->st;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsn(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    g_linecol(p->s, at, &line, &col);
    p->st = seterr(p->err, SLM_ERR_FORMAT, "grammar: line %d, column %d: %s", line, col, msg);
    return p->st;
}

static slm_status gp_nomem(gparse *p) {
    if (p->st == SLM_OK) p->st = seterr(p->err, SLM_ERR_NOMEM, "grammar: out of memory");
    return p->st;
}

static int gv_push(gparse *p, gvec *v, uint32_t type, uint32_t val) {
    if (v->n >= G_MAX_ELEMS) {
        gp_fail(p, p->i, "the grammar expands to more than %u elements", G_MAX_ELEMS);
        return 0;
    }
    if (!grow(&p->g->a, (void **)&v->v, &v->cap, v->n + 1, sizeof(gel))) return gp_nomem(p), 0;
    v->v[v->n].type = type;
    v->v[v->n].v = val;
    v->n++;
    return 1;
}

static void gv_free(slm_grammar *g, gvec *v) {
    xfree(&g->a, v->v, v->cap * sizeof(gel));
    v->v = NULL;
    v->n = v->cap = 0;
}

static uint32_t g_name_hash(const char *s, size_t n) { return (uint32_t)hash_bytes(s, n); }

/* A new rule (name NULL: generated, reported as its owner's). */
static int g_rule_new(gparse *p, const char *name, size_t nlen, uint32_t owner, uint32_t *id) {
    slm_grammar *g = p->g;
    if (g->n_rules >= G_MAX_RULES) {
        gp_fail(p, p->i, "more than %u rules (with the ones groups and repetitions make)", G_MAX_RULES);
        return 0;
    }
    size_t need = g->n_rules + 1, c = g->cap_rules;
    if (need > c) {
        size_t c1 = c, c2 = c, c3 = c, c4 = c, c5 = c, c6 = c;
        if (!grow(&g->a, (void **)&g->rule_alt, &c1, need, 4) || !grow(&g->a, (void **)&g->rule_nalt, &c2, need, 4) ||
            !grow(&g->a, (void **)&g->rule_name, &c3, need, 4) || !grow(&g->a, (void **)&g->rule_line, &c4, need, 4) ||
            !grow(&g->a, (void **)&g->rule_ref, &c5, need, 4) || !grow(&g->a, (void **)&g->rule_gen, &c6, need, 1))
            return gp_nomem(p), 0;
        /* all grew from the same capacity by the same doubling, except
           rule_gen whose element is 1 byte: capacities are equal anyway */
        g->cap_rules = (uint32_t)c1;
    }
    uint32_t r = g->n_rules++;
    g->rule_alt[r] = g->rule_nalt[r] = 0;
    g->rule_line[r] = 0;
    g->rule_ref[r] = 0;
    g->rule_gen[r] = name == NULL;
    if (name) {
        size_t nc = g->cap_names;
        if (!grow(&g->a, (void **)&g->names, &nc, (size_t)g->n_names + nlen + 1, 1)) return gp_nomem(p), 0;
        g->cap_names = (uint32_t)nc;
        memcpy(g->names + g->n_names, name, nlen);
        g->names[g->n_names + nlen] = 0;
        g->rule_name[r] = g->n_names;
        g->n_names += (uint32_t)(nlen + 1);
        uint32_t mask = G_MAX_RULES * 2 - 1, h = g_name_hash(name, nlen) & mask;
        while (g->name_hash[h]) h = (h + 1) & mask;
        g->name_hash[h] = r + 1;
    } else {
        g->rule_name[r] = g->rule_name[owner];
    }
    *id = r;
    return 1;
}

/* The rule called `name`, created (undefined) on first sight. */
static int g_rule_named(gparse *p, const char *name, size_t nlen, uint32_t *id) {
    slm_grammar *g = p->g;
    uint32_t mask = G_MAX_RULES * 2 - 1, h = g_name_hash(name, nlen) & mask;
    for (; g->name_hash[h]; h = (h + 1) & mask) {
        uint32_t r = g->name_hash[h] - 1;
        const char *rn = g->names + g->rule_name[r];
        if (!g->rule_gen[r] && strlen(rn) == nlen && memcmp(rn, name, nlen) == 0) {
            *id = r;
            return 1;
        }
    }
    return g_rule_new(p, name, nlen, 0, id);
}

/* Give rule r its alternatives: alts[k] is a sequence (without GE_END). */
static int g_rule_set(gparse *p, uint32_t r, gvec *alts, size_t n_alts) {
    slm_grammar *g = p->g;
    size_t total = g->n_el;
    for (size_t k = 0; k < n_alts; k++) total += alts[k].n + 1;
    if (total > G_MAX_ELEMS) {
        gp_fail(p, p->i, "the grammar expands to more than %u elements", G_MAX_ELEMS);
        return 0;
    }
    size_t ce = g->cap_el, ca = g->cap_alt;
    if (!grow(&g->a, (void **)&g->el, &ce, total, sizeof(gel)) ||
        !grow(&g->a, (void **)&g->alt, &ca, (size_t)g->n_alt + n_alts, 4))
        return gp_nomem(p), 0;
    g->cap_el = (uint32_t)ce;
    g->cap_alt = (uint32_t)ca;
    g->rule_alt[r] = g->n_alt;
    g->rule_nalt[r] = (uint32_t)n_alts;
    for (size_t k = 0; k < n_alts; k++) {
        g->alt[g->n_alt++] = g->n_el;
        if (alts[k].n) memcpy(g->el + g->n_el, alts[k].v, alts[k].n * sizeof(gel));
        g->n_el += (uint32_t)alts[k].n;
        g->el[g->n_el].type = GE_END;
        g->el[g->n_el].v = 0;
        g->n_el++;
    }
    return 1;
}

/* A generated rule with the alternatives a (na elements) and b (nb; b may
   be the empty alternative when with_empty). */
static int g_rule_gen2(gparse *p, uint32_t owner, const gel *a, size_t na, const gel *b, size_t nb, int n_alts,
                       uint32_t *id) {
    if (!g_rule_new(p, NULL, 0, owner, id)) return 0;
    gvec alts[2];
    alts[0].v = (gel *)a, alts[0].n = na, alts[0].cap = na;
    alts[1].v = (gel *)b, alts[1].n = nb, alts[1].cap = nb;
    return g_rule_set(p, *id, alts, (size_t)n_alts);
}

/* A class from ranges (pairs, any order, may overlap); returns its id. */
static int g_class_new(gparse *p, const uint32_t *r, size_t nr, int neg, uint32_t *id) {
    slm_grammar *g = p->g;
    if (g->n_cls >= G_MAX_ELEMS) {
        gp_fail(p, p->i, "more than %u character classes", G_MAX_ELEMS);
        return 0;
    }
    size_t cc = g->cap_cls, cr = g->cap_rng;
    if (!grow(&g->a, (void **)&g->cls, &cc, (size_t)g->n_cls + 1, sizeof(gclass)) ||
        !grow(&g->a, (void **)&g->rng, &cr, (size_t)g->n_rng + 2 * nr, 4))
        return gp_nomem(p), 0;
    g->cap_cls = (uint32_t)cc;
    g->cap_rng = (uint32_t)cr;
    uint32_t *d = nr ? g->rng + g->n_rng : NULL;
    if (nr) memcpy(d, r, 2 * nr * sizeof(uint32_t));
    /* heap sort of the (start, end) pairs by start (a hostile class has
       hundreds of thousands), then merge */
    for (size_t k = nr / 2, m2 = nr; m2 > 1;) {
        size_t i;
        if (k > 0) {
            i = --k;
        } else {
            m2--;
            uint32_t t0 = d[0], t1 = d[1];
            d[0] = d[2 * m2], d[1] = d[2 * m2 + 1];
            d[2 * m2] = t0, d[2 * m2 + 1] = t1;
            i = 0;
        }
        for (;;) {
            size_t l = 2 * i + 1, b = i;
            if (l < m2 && d[2 * l] > d[2 * b]) b = l;
            if (l + 1 < m2 && d[2 * (l + 1)] > d[2 * b]) b = l + 1;
            if (b == i) break;
            uint32_t t0 = d[2 * i], t1 = d[2 * i + 1];
            d[2 * i] = d[2 * b], d[2 * i + 1] = d[2 * b + 1];
            d[2 * b] = t0, d[2 * b + 1] = t1;
            i = b;
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < nr; i++) {
        if (d[2 * i] > d[2 * i + 1]) continue; /* empty range */
        if (m && d[2 * i] <= d[2 * (m - 1) + 1] + 1) {
            if (d[2 * i + 1] > d[2 * (m - 1) + 1]) d[2 * (m - 1) + 1] = d[2 * i + 1];
        } else {
            d[2 * m] = d[2 * i], d[2 * m + 1] = d[2 * i + 1];
            m++;
        }
    }
    gclass *c = &g->cls[g->n_cls];
    c->r0 = g->n_rng / 2;
    c->nr = (uint32_t)m;
    c->neg = (uint32_t)neg;
    g->n_rng += (uint32_t)(2 * m);
    *id = g->n_cls++;
    return 1;
}

/* 1 if some code point in [lo, hi] is in class c. */
static int gclass_any(const slm_grammar *g, const gclass *c, uint32_t lo, uint32_t hi) {
    if (c->nr == 0) return (int)c->neg; /* "." (every code point) or nothing */
    const uint32_t *r = g->rng + 2 * c->r0;
    /* first range whose end >= lo */
    uint32_t a = 0, b = c->nr;
    while (a < b) {
        uint32_t mid = (a + b) / 2;
        if (r[2 * mid + 1] < lo) a = mid + 1;
        else b = mid;
    }
    if (!c->neg) return a < c->nr && r[2 * a] <= hi;
    /* negated: [lo, hi] must not lie inside one range */
    return !(a < c->nr && r[2 * a] <= lo && r[2 * a + 1] >= hi);
}

/* Code points a UTF-8 lead byte can start (len = bytes of the character). */
static int utf8_lead_range(uint8_t b, uint32_t *lo, uint32_t *hi, int *len) {
    if (b < 0x80) return *lo = *hi = b, *len = 1, 1;
    if (b >= 0xC2 && b <= 0xDF) return *lo = (uint32_t)(b & 0x1F) << 6, *hi = *lo | 0x3F, *len = 2, 1;
    if (b >= 0xE0 && b <= 0xEF) {
        *lo = (uint32_t)(b & 0x0F) << 12, *hi = *lo | 0xFFF, *len = 3;
        if (*lo < 0x800) *lo = 0x800;
        return 1;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        *lo = (uint32_t)(b & 0x07) << 18, *hi = *lo | 0x3FFFF, *len = 4;
        if (*lo < 0x10000) *lo = 0x10000;
        if (*hi > 0x10FFFF) *hi = 0x10FFFF;
        return 1;
    }
    return 0;
}

static void gclass_first(slm_grammar *g, gclass *c) {
    memset(c->first, 0, sizeof c->first);
    for (int b = 0; b < 256; b++) {
        uint32_t lo, hi;
        int len;
        if (utf8_lead_range((uint8_t)b, &lo, &hi, &len) && gclass_any(g, c, lo, hi))
            c->first[b >> 3] |= (uint8_t)(1u << (b & 7));
    }
}

static int gp_is_name(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Skip blanks and comments; newlines too when nl. */
static void gp_space(gparse *p, int nl) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || (nl && (c == '\n' || c == '\r'))) {
            p->i++;
        } else if (c == '#') {
            while (p->i < p->n && p->s[p->i] != '\n') p->i++;
        } else {
            return;
        }
    }
}

static int gp_hex(gparse *p, int digits, uint32_t *out) {
    uint32_t v = 0;
    size_t at = p->i;
    for (int k = 0; k < digits; k++) {
        int h = p->i < p->n ? hexval(p->s[p->i]) : -1;
        if (h < 0) {
            gp_fail(p, at, "expected %d hexadecimal digits", digits);
            return 0;
        }
        v = v * 16 + (uint32_t)h;
        p->i++;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        gp_fail(p, at, "\\x, \\u or \\U value U+%X is not a Unicode scalar value", (unsigned)v);
        return 0;
    }
    *out = v;
    return 1;
}

/* One character of a literal or class: an escape or a UTF-8 character. */
static int gp_char(gparse *p, uint32_t *cp) {
    if (p->i >= p->n) return gp_fail(p, p->i, "unexpected end of the grammar"), 0;
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '\\') {
        size_t at = p->i++;
        if (p->i >= p->n) return gp_fail(p, at, "unfinished escape"), 0;
        char e = p->s[p->i++];
        switch (e) {
        case 'x': return gp_hex(p, 2, cp);
        case 'u': return gp_hex(p, 4, cp);
        case 'U': return gp_hex(p, 8, cp);
        case 'n': *cp = '\n'; return 1;
        case 't': *cp = '\t'; return 1;
        case 'r': *cp = '\r'; return 1;
        case '0': *cp = 0; return 1;
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': case '.':
            *cp = (uint32_t)e;
            return 1;
        default: return gp_fail(p, at, "unknown escape \\%c", e), 0;
        }
    }
    size_t len = utf8_len(c);
    if (len == 0 || p->i + len > p->n) return gp_fail(p, p->i, "invalid UTF-8 byte 0x%02X", c), 0;
    size_t got;
    uint32_t v = utf8_cpt((const unsigned char *)p->s + p->i, len, &got);
    if (got != len || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) ||
        (len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000))
        return gp_fail(p, p->i, "invalid UTF-8 sequence"), 0;
    p->i += len;
    *cp = v;
    return 1;
}

static int gp_alternates(gparse *p, uint32_t rule, uint32_t owner, int nested);

/* An unsigned number of {m,n}. */
static int gp_uint(gparse *p, uint32_t *out) {
    size_t at = p->i;
    uint64_t v = 0;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return gp_fail(p, at, "expected a number"), 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        v = v * 10 + (uint64_t)(p->s[p->i++] - '0');
        if (v > G_MAX_REPEAT) return gp_fail(p, at, "repetition count above %u", G_MAX_REPEAT), 0;
    }
    *out = (uint32_t)v;
    return 1;
}

/* Apply a repetition to the last atom of seq (it starts at atom). */
static int gp_repeat(gparse *p, gvec *seq, size_t atom, uint32_t owner, uint32_t lo, uint32_t hi /* UINT32_MAX: no bound */) {
    if (atom >= seq->n) return gp_fail(p, p->i, "nothing to repeat"), 0;
    if (seq->n - atom > 1) { /* a literal of several characters: one rule */
        uint32_t r;
        if (!g_rule_gen2(p, owner, seq->v + atom, seq->n - atom, NULL, 0, 1, &r)) return 0;
        seq->n = atom;
        if (!gv_push(p, seq, GE_REF, r)) return 0;
    }
    gel x = seq->v[atom];
    seq->n = atom;
    for (uint32_t k = 0; k < lo; k++)
        if (!gv_push(p, seq, x.type, x.v)) return 0;
    if (hi == UINT32_MAX) { /* x*: R ::= x R | "" */
        uint32_t r;
        if (!g_rule_new(p, NULL, 0, owner, &r)) return 0;
        gel a[2] = {x, {GE_REF, r}};
        gvec alts[2] = {{a, 2, 2}, {NULL, 0, 0}};
        if (!g_rule_set(p, r, alts, 2)) return 0;
        return gv_push(p, seq, GE_REF, r);
    }
    if (hi > lo) { /* up to hi - lo more: O1 ::= x | "", Ok ::= x O(k-1) | "" */
        uint32_t prev = 0;
        for (uint32_t k = 1; k <= hi - lo; k++) {
            gel a[2] = {x, {GE_REF, prev}};
            uint32_t r;
            if (!g_rule_gen2(p, owner, a, k == 1 ? 1 : 2, NULL, 0, 2, &r)) return 0;
            prev = r;
        }
        return gv_push(p, seq, GE_REF, prev);
    }
    return 1;
}

/* A sequence up to '|', ')' or (at the top level) the end of the line. */
static int gp_sequence(gparse *p, gvec *seq, uint32_t owner, int nested) {
    size_t atom = SIZE_MAX;
    for (;;) {
        gp_space(p, nested);
        if (p->i >= p->n) return 1;
        size_t at = p->i;
        char c = p->s[p->i];
        if (c == '|' || c == ')' || c == '\n' || c == '\r') return 1;
        if (c == '"') {
            p->i++;
            atom = seq->n;
            for (;;) {
                if (p->i >= p->n || p->s[p->i] == '\n') return gp_fail(p, at, "unterminated string literal"), 0;
                if (p->s[p->i] == '"') {
                    p->i++;
                    break;
                }
                uint32_t cp, id, r[2];
                if (!gp_char(p, &cp)) return 0;
                r[0] = r[1] = cp;
                if (!g_class_new(p, r, 1, 0, &id) || !gv_push(p, seq, GE_CLASS, id)) return 0;
            }
            if (seq->n == atom) atom = SIZE_MAX; /* "" matches nothing: no atom */
        } else if (c == '[') {
            p->i++;
            int neg = 0;
            if (p->i < p->n && p->s[p->i] == '^') neg = 1, p->i++;
            uint32_t buf[64], *r = buf;
            size_t nr = 0, cap = 32;
            int ok = 1;
            for (;;) {
                if (p->i >= p->n || p->s[p->i] == '\n') {
                    gp_fail(p, at, "unterminated character class");
                    ok = 0;
                    break;
                }
                if (p->s[p->i] == ']') {
                    p->i++;
                    break;
                }
                uint32_t lo, hi;
                if (!gp_char(p, &lo)) {
                    ok = 0;
                    break;
                }
                hi = lo;
                if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']' && p->s[p->i + 1] != '\n') {
                    p->i++;
                    size_t rat = p->i;
                    if (!gp_char(p, &hi)) {
                        ok = 0;
                        break;
                    }
                    if (hi < lo) {
                        gp_fail(p, rat, "range end U+%04X is below its start U+%04X", (unsigned)hi, (unsigned)lo);
                        ok = 0;
                        break;
                    }
                }
                if (nr == cap) {
                    if (cap >= G_MAX_ELEMS / 2) {
                        gp_fail(p, at, "character class too large");
                        ok = 0;
                        break;
                    }
                    uint32_t *nrp = (uint32_t *)xalloc(&p->g->a, cap * 4 * sizeof(uint32_t));
                    if (!nrp) {
                        gp_nomem(p);
                        ok = 0;
                        break;
                    }
                    memcpy(nrp, r, cap * 2 * sizeof(uint32_t));
                    if (r != buf) xfree(&p->g->a, r, cap * 2 * sizeof(uint32_t));
                    r = nrp;
                    cap *= 2;
                }
                r[2 * nr] = lo, r[2 * nr + 1] = hi;
                nr++;
            }
            uint32_t id = 0;
            if (ok) ok = g_class_new(p, r, nr, neg, &id);
            if (r != buf) xfree(&p->g->a, r, cap * 2 * sizeof(uint32_t));
            if (!ok) return 0;
            atom = seq->n;
            if (!gv_push(p, seq, GE_CLASS, id)) return 0;
        } else if (c == '.') {
            p->i++;
            uint32_t id;
            if (!g_class_new(p, NULL, 0, 1, &id)) return 0;
            atom = seq->n;
            if (!gv_push(p, seq, GE_CLASS, id)) return 0;
        } else if (c == '(') {
            p->i++;
            if (++p->depth > G_MAX_NEST) return gp_fail(p, at, "parentheses nested deeper than %d", G_MAX_NEST), 0;
            uint32_t r;
            if (!g_rule_new(p, NULL, 0, owner, &r) || !gp_alternates(p, r, owner, 1)) return 0;
            p->depth--;
            if (p->i >= p->n || p->s[p->i] != ')') return gp_fail(p, at, "unclosed '('"), 0;
            p->i++;
            atom = seq->n;
            if (!gv_push(p, seq, GE_REF, r)) return 0;
        } else if (gp_is_name(c)) {
            size_t s0 = p->i;
            while (p->i < p->n && gp_is_name(p->s[p->i])) p->i++;
            size_t s1 = p->i;
            gp_space(p, nested);
            if (p->i + 2 < p->n && memcmp(p->s + p->i, "::=", 3) == 0) {
                if (!nested) { /* the next rule starts: this line ended without a newline */
                    p->i = s0;
                    return gp_fail(p, s0, "expected a newline before rule '%.*s'", (int)(s1 - s0), p->s + s0), 0;
                }
                return gp_fail(p, s0, "'::=' inside parentheses"), 0;
            }
            p->i = s1;
            if (s1 - s0 > 200) return gp_fail(p, s0, "rule name longer than 200 characters"), 0;
            uint32_t r;
            if (!g_rule_named(p, p->s + s0, s1 - s0, &r)) return 0;
            if (!p->g->rule_ref[r]) p->g->rule_ref[r] = (uint32_t)s0 + 1;
            atom = seq->n;
            if (!gv_push(p, seq, GE_REF, r)) return 0;
        } else if (c == '*' || c == '+' || c == '?') {
            p->i++;
            if (atom == SIZE_MAX) return gp_fail(p, at, "'%c' has nothing to repeat", c), 0;
            if (!gp_repeat(p, seq, atom, owner, c == '+' ? 1 : 0, c == '?' ? 1 : UINT32_MAX)) return 0;
            atom = seq->n - 1;
        } else if (c == '{') {
            p->i++;
            if (atom == SIZE_MAX) return gp_fail(p, at, "'{' has nothing to repeat"), 0;
            uint32_t lo = 0, hi;
            gp_space(p, 0);
            if (p->i < p->n && p->s[p->i] != ',' && !gp_uint(p, &lo)) return 0;
            gp_space(p, 0);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                gp_space(p, 0);
                if (p->i < p->n && p->s[p->i] == '}') hi = UINT32_MAX;
                else if (!gp_uint(p, &hi)) return 0;
            } else {
                hi = lo;
            }
            gp_space(p, 0);
            if (p->i >= p->n || p->s[p->i] != '}') return gp_fail(p, at, "expected '}' to end the repetition"), 0;
            p->i++;
            if (hi < lo) return gp_fail(p, at, "repetition {%u,%u}: the maximum is below the minimum", (unsigned)lo, (unsigned)hi), 0;
            if (hi == 0) { /* x{0}: nothing */
                seq->n = atom;
                atom = SIZE_MAX;
                continue;
            }
            if (!gp_repeat(p, seq, atom, owner, lo, hi)) return 0;
            atom = seq->n - 1;
        } else if (c == '<') {
            return gp_fail(p, at, "token references (<...>) are not supported"), 0;
        } else {
            return gp_fail(p, at, "unexpected character '%c'", c >= 32 && c < 127 ? c : '?'), 0;
        }
    }
}

/* Alternatives separated by '|' into rule `rule`. */
static int gp_alternates(gparse *p, uint32_t rule, uint32_t owner, int nested) {
    gvec *alts = NULL;
    size_t n = 0, cap = 0;
    int ok = 1;
    for (;;) {
        if (!grow(&p->g->a, (void **)&alts, &cap, n + 1, sizeof(gvec))) {
            gp_nomem(p);
            ok = 0;
            break;
        }
        memset(&alts[n], 0, sizeof alts[n]);
        n++;
        if (!gp_sequence(p, &alts[n - 1], owner, nested)) {
            ok = 0;
            break;
        }
        if (!nested) { /* a line that starts with '|' continues the rule */
            size_t save = p->i;
            gp_space(p, 1);
            if (p->i >= p->n || p->s[p->i] != '|') p->i = save;
        }
        if (p->i < p->n && p->s[p->i] == '|') {
            p->i++;
            gp_space(p, 1);
            continue;
        }
        break;
    }
    if (ok) ok = g_rule_set(p, rule, alts, n);
    for (size_t k = 0; k < n; k++) gv_free(p->g, &alts[k]);
    xfree(&p->g->a, alts, cap * sizeof(gvec));
    return ok;
}

static void grammar_free_(slm_grammar *g) {
    if (!g) return;
    allocator a = g->a;
    xfree(&a, g->el, g->cap_el * sizeof(gel));
    xfree(&a, g->alt, g->cap_alt * 4);
    xfree(&a, g->rule_alt, g->cap_rules * 4);
    xfree(&a, g->rule_nalt, g->cap_rules * 4);
    xfree(&a, g->rule_name, g->cap_rules * 4);
    xfree(&a, g->rule_line, g->cap_rules * 4);
    xfree(&a, g->rule_ref, g->cap_rules * 4);
    xfree(&a, g->rule_gen, g->cap_rules);
    xfree(&a, g->names, g->cap_names);
    xfree(&a, g->name_hash, G_MAX_RULES * 2 * 4);
    xfree(&a, g->cls, g->cap_cls * sizeof(gclass));
    xfree(&a, g->rng, g->cap_rng * 4);
    xfree(&a, g->piece_off, ((size_t)g->n_vocab + 1) * 4);
    xfree(&a, g->pieces, g->pieces_len ? g->pieces_len : 1);
    xfree(&a, g->tok_kind, (size_t)g->n_vocab);
    xfree(&a, g->tok_sorted, (size_t)(g->n_sorted ? g->n_sorted : 1) * 4);
    xfree(&a, g->trie, (size_t)(g->n_trie ? g->n_trie : 1) * sizeof(gtrie));
    xfree(&a, g, sizeof *g);
}

void slm_grammar_free(slm_grammar *g) { grammar_free_(g); }

static const char *g_rule_label(const slm_grammar *g, uint32_t r) { return g->names + g->rule_name[r]; }

/* Checks after parsing: defined rules, root, no left recursion, and every
   rule reachable from root has a finite derivation. */
static slm_status g_check(gparse *p) {
    slm_grammar *g = p->g;
    uint32_t nr = g->n_rules;
    for (uint32_t r = 0; r < nr; r++)
        if (!g->rule_gen[r] && !g->rule_line[r]) {
            if (g->rule_ref[r]) return gp_fail(p, g->rule_ref[r] - 1, "undefined rule '%s'", g_rule_label(g, r));
        }
    slm_status st = SLM_OK;
    uint8_t *flag = (uint8_t *)xcalloc(&g->a, nr ? nr : 1, 4); /* nullable, productive, reachable, dfs color */
    uint32_t *stack = (uint32_t *)xalloc(&g->a, (size_t)(nr ? nr : 1) * 2 * sizeof(uint32_t));
    if (!flag || !stack) {
        xfree(&g->a, flag, (size_t)(nr ? nr : 1) * 4);
        xfree(&g->a, stack, (size_t)(nr ? nr : 1) * 2 * sizeof(uint32_t));
        return gp_nomem(p);
    }
    uint8_t *nul = flag, *prod = flag + nr, *reach = flag + 2 * nr, *color = flag + 3 * nr;
    /* nullable and productive: fixpoints */
    for (int changed = 1; changed;) {
        changed = 0;
        for (uint32_t r = 0; r < nr; r++)
            for (uint32_t k = 0; k < g->rule_nalt[r]; k++) {
                int all_nul = 1, all_prod = 1;
                for (const gel *e = g->el + g->alt[g->rule_alt[r] + k]; e->type != GE_END; e++) {
                    if (e->type == GE_CLASS) all_nul = 0;
                    else {
                        if (!nul[e->v]) all_nul = 0;
                        if (!prod[e->v]) all_prod = 0;
                    }
                }
                if (all_nul && !nul[r]) nul[r] = 1, changed = 1;
                if (all_prod && !prod[r]) prod[r] = 1, changed = 1;
            }
    }
    /* reachable from root */
    uint32_t sp = 0;
    stack[sp++] = g->root;
    reach[g->root] = 1;
    while (sp) {
        uint32_t r = stack[--sp];
        for (uint32_t k = 0; k < g->rule_nalt[r]; k++)
            for (const gel *e = g->el + g->alt[g->rule_alt[r] + k]; e->type != GE_END; e++)
                if (e->type == GE_REF && !reach[e->v]) reach[e->v] = 1, stack[sp++] = e->v;
    }
    for (uint32_t r = 0; r < nr && st == SLM_OK; r++)
        if (reach[r] && !prod[r]) {
            size_t at = g->rule_line[r] ? g->rule_line[r] - 1 : 0;
            st = gp_fail(p, at, "rule '%s' can never finish: every alternative needs %s itself (no finite derivation)",
                         g_rule_label(g, r), g->rule_gen[r] ? "a group of the rule" : "the rule");
        }
    /* left recursion: a cycle over "r can start with r2" (after nullable refs);
       iterative DFS, stack entries (rule, next alternative/element cursor) */
    for (uint32_t r0 = 0; r0 < nr && st == SLM_OK; r0++) {
        if (!reach[r0] || color[r0]) continue;
        sp = 0;
        stack[sp * 2] = r0, stack[sp * 2 + 1] = 0, sp++;
        color[r0] = 1;
        while (sp && st == SLM_OK) {
            uint32_t r = stack[(sp - 1) * 2], cur = stack[(sp - 1) * 2 + 1];
            /* cursor: edges of r enumerated in order; find the cur-th */
            uint32_t idx = 0, next = UINT32_MAX;
            for (uint32_t k = 0; k < g->rule_nalt[r] && next == UINT32_MAX; k++)
                for (const gel *e = g->el + g->alt[g->rule_alt[r] + k]; e->type == GE_REF; e++) {
                    if (idx++ == cur) {
                        next = e->v;
                        break;
                    }
                    if (!nul[e->v]) break;
                }
            if (next == UINT32_MAX) {
                color[r] = 2;
                sp--;
                continue;
            }
            stack[(sp - 1) * 2 + 1] = cur + 1;
            if (color[next] == 1) {
                size_t at = g->rule_line[next] ? g->rule_line[next] - 1 : 0;
                st = gp_fail(p, at, "left recursion: rule '%s' can start with itself%s", g_rule_label(g, next),
                             nul[next] ? " (through rules that can be empty)" : "");
            } else if (color[next] == 0) {
                color[next] = 1;
                stack[sp * 2] = next, stack[sp * 2 + 1] = 0, sp++;
            }
        }
    }
    xfree(&g->a, flag, (size_t)(nr ? nr : 1) * 4);
    xfree(&g->a, stack, (size_t)(nr ? nr : 1) * 2 * sizeof(uint32_t));
    return st;
}

/* Parse and check a GBNF text (no vocabulary yet). */
static slm_status grammar_compile(const allocator *a, const char *text, size_t len, const char *root,
                                  slm_grammar **out, slm_error *err) {
    *out = NULL;
    if (!text && len) return seterr(err, SLM_ERR_INVALID_ARG, "grammar: text is NULL");
    if (len > G_MAX_TEXT) return seterr(err, SLM_ERR_UNSUPPORTED, "grammar: text of %zu bytes (the limit is %u)", len, G_MAX_TEXT);
    slm_grammar *g = (slm_grammar *)xcalloc(a, 1, sizeof *g);
    if (!g) return seterr(err, SLM_ERR_NOMEM, "grammar: out of memory");
    g->a = *a;
    g->name_hash = (uint32_t *)xcalloc(a, G_MAX_RULES * 2, 4);
    if (!g->name_hash) {
        grammar_free_(g);
        return seterr(err, SLM_ERR_NOMEM, "grammar: out of memory");
    }
    gparse p;
    memset(&p, 0, sizeof p);
    p.g = g;
    p.s = text ? text : "";
    p.n = len;
    p.err = err;
    p.st = SLM_OK;
    /* a UTF-8 byte order mark is skipped */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.i = 3;
    for (;;) {
        gp_space(&p, 1);
        if (p.i >= p.n) break;
        size_t at = p.i;
        if (!gp_is_name(p.s[p.i])) {
            gp_fail(&p, at, "expected a rule name");
            break;
        }
        while (p.i < p.n && gp_is_name(p.s[p.i])) p.i++;
        size_t nl = p.i - at;
        if (nl > 200) {
            gp_fail(&p, at, "rule name longer than 200 characters");
            break;
        }
        gp_space(&p, 0);
        if (p.i + 3 > p.n || memcmp(p.s + p.i, "::=", 3) != 0) {
            gp_fail(&p, p.i, "expected '::=' after rule name '%.*s'", (int)nl, p.s + at);
            break;
        }
        p.i += 3;
        uint32_t r;
        if (!g_rule_named(&p, p.s + at, nl, &r)) break;
        if (g->rule_line[r]) {
            int l0, c0;
            g_linecol(p.s, g->rule_line[r] - 1, &l0, &c0);
            gp_fail(&p, at, "rule '%.*s' is already defined on line %d", (int)nl, p.s + at, l0);
            break;
        }
        g->rule_line[r] = (uint32_t)at + 1;
        gp_space(&p, 1);
        if (!gp_alternates(&p, r, r, 0)) break;
        if (p.i < p.n && p.s[p.i] == ')') {
            gp_fail(&p, p.i, "unexpected ')'");
            break;
        }
    }
    if (p.st == SLM_OK) {
        const char *rn = root && *root ? root : "root";
        size_t rl = strlen(rn);
        uint32_t mask = G_MAX_RULES * 2 - 1, h = g_name_hash(rn, rl) & mask, found = UINT32_MAX;
        for (; g->name_hash[h]; h = (h + 1) & mask) {
            uint32_t r = g->name_hash[h] - 1;
            if (!g->rule_gen[r] && g->rule_line[r] && strcmp(g->names + g->rule_name[r], rn) == 0) found = r;
        }
        if (found == UINT32_MAX) {
            p.st = seterr(err, SLM_ERR_FORMAT, "grammar: no rule named '%.200s' (the start rule)", rn);
        } else {
            g->root = found;
            g_check(&p);
        }
    }
    if (p.st == SLM_OK)
        for (uint32_t c = 0; c < g->n_cls; c++) gclass_first(g, &g->cls[c]);
    if (p.st != SLM_OK) {
        grammar_free_(g);
        return p.st;
    }
    *out = g;
    return SLM_OK;
}

/* --- the vocabulary: pieces and their trie ------------------------------------ */

static int g_piece_cmp(const slm_grammar *g, int32_t a, int32_t b) {
    const char *pa = g->pieces + g->piece_off[a], *pb = g->pieces + g->piece_off[b];
    size_t la = g->piece_off[a + 1] - g->piece_off[a], lb = g->piece_off[b + 1] - g->piece_off[b];
    int c = memcmp(pa, pb, SLM_MIN(la, lb));
    if (c) return c;
    if (la != lb) return la < lb ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Heap sort of token ids by piece (no qsort context pointer in C99). */
static void g_sort_tokens(const slm_grammar *g, int32_t *t, size_t n) {
    for (size_t k = n / 2; k-- > 0;) {
        for (size_t i = k;;) {
            size_t l = 2 * i + 1, b = i;
            if (l < n && g_piece_cmp(g, t[l], t[b]) > 0) b = l;
            if (l + 1 < n && g_piece_cmp(g, t[l + 1], t[b]) > 0) b = l + 1;
            if (b == i) break;
            int32_t x = t[i];
            t[i] = t[b], t[b] = x, i = b;
        }
    }
    for (size_t m = n; m > 1; m--) {
        int32_t x = t[0];
        t[0] = t[m - 1], t[m - 1] = x;
        for (size_t i = 0;;) {
            size_t l = 2 * i + 1, b = i;
            if (l < m - 1 && g_piece_cmp(g, t[l], t[b]) > 0) b = l;
            if (l + 1 < m - 1 && g_piece_cmp(g, t[l + 1], t[b]) > 0) b = l + 1;
            if (b == i) break;
            int32_t y = t[i];
            t[i] = t[b], t[b] = y, i = b;
        }
    }
}

/* Bind a compiled grammar to pieces: piece(t) for t < n_vocab, kind[t]
   (0 never allowed, 1 text, 2 end of generation). The trie is built in
   preorder from the sorted pieces. */
static slm_status grammar_bind(slm_grammar *g, int32_t n_vocab, const uint32_t *off, const char *bytes,
                               const uint8_t *kind, slm_error *err) {
    const allocator *a = &g->a;
    g->n_vocab = n_vocab;
    g->pieces_len = off[n_vocab];
    g->piece_off = (uint32_t *)xalloc(a, ((size_t)n_vocab + 1) * 4);
    g->pieces = (char *)xalloc(a, g->pieces_len ? g->pieces_len : 1);
    g->tok_kind = (uint8_t *)xalloc(a, (size_t)n_vocab);
    if (!g->piece_off || !g->pieces || !g->tok_kind) return seterr(err, SLM_ERR_NOMEM, "grammar: out of memory for the vocabulary");
    memcpy(g->piece_off, off, ((size_t)n_vocab + 1) * 4);
    if (g->pieces_len) memcpy(g->pieces, bytes, g->pieces_len);
    memcpy(g->tok_kind, kind, (size_t)n_vocab);
    uint32_t n = 0;
    size_t nodes = 0;
    for (int32_t t = 0; t < n_vocab; t++)
        if (kind[t] == 1 && off[t + 1] > off[t]) n++, nodes += off[t + 1] - off[t];
    g->n_sorted = n;
    g->tok_sorted = (int32_t *)xalloc(a, (size_t)(n ? n : 1) * 4);
    if (!g->tok_sorted) return seterr(err, SLM_ERR_NOMEM, "grammar: out of memory for the vocabulary");
    n = 0;
    for (int32_t t = 0; t < n_vocab; t++) {
        uint32_t l = off[t + 1] - off[t];
        if (kind[t] == 1 && l > 0) {
            g->tok_sorted[n++] = t;
            if (l > g->max_piece) g->max_piece = l;
        }
    }
    if (g->max_piece > 65535) return seterr(err, SLM_ERR_UNSUPPORTED, "grammar: a token piece of %u bytes", (unsigned)g->max_piece);
    g_sort_tokens(g, g->tok_sorted, n);
    /* nodes: at most the total piece bytes; count exactly first */
    size_t cnt = 0;
    for (uint32_t i = 0; i < n; i++) {
        int32_t t = g->tok_sorted[i];
        size_t l = off[t + 1] - off[t], lcp = 0;
        if (i > 0) {
            int32_t u = g->tok_sorted[i - 1];
            size_t lu = off[u + 1] - off[u];
            while (lcp < l && lcp < lu && bytes[off[t] + lcp] == bytes[off[u] + lcp]) lcp++;
        }
        cnt += l - lcp;
    }
    (void)nodes;
    if (cnt >= UINT32_MAX) return seterr(err, SLM_ERR_UNSUPPORTED, "grammar: vocabulary too large");
    g->trie = (gtrie *)xalloc(a, (cnt ? cnt : 1) * sizeof(gtrie));
    if (!g->trie) return seterr(err, SLM_ERR_NOMEM, "grammar: out of memory for the token trie");
    /* path[d] = node index at depth d+1 on the current path */
    uint32_t *path = (uint32_t *)xalloc(a, ((size_t)g->max_piece + 1) * 4);
    if (!path) return seterr(err, SLM_ERR_NOMEM, "grammar: out of memory for the token trie");
    uint32_t m = 0;
    size_t plen = 0; /* length of the current path */
    for (uint32_t i = 0; i < n; i++) {
        int32_t t = g->tok_sorted[i];
        size_t l = off[t + 1] - off[t], lcp = 0;
        if (i > 0) {
            int32_t u = g->tok_sorted[i - 1];
            size_t lu = off[u + 1] - off[u];
            while (lcp < l && lcp < lu && bytes[off[t] + lcp] == bytes[off[u] + lcp]) lcp++;
        }
        while (plen > lcp) g->trie[path[--plen]].end = m; /* close nodes off the path */
        for (size_t d = lcp; d < l; d++) {
            gtrie *nd = &g->trie[m];
            nd->byte = (uint8_t)bytes[off[t] + d];
            nd->depth = (uint16_t)(d + 1);
            nd->tok = 0;
            nd->ntok = 0;
            nd->end = 0;
            path[plen++] = m++;
        }
        gtrie *last = &g->trie[path[l - 1]];
        if (last->ntok == 0) last->tok = i;
        last->ntok++;
    }
    while (plen > 0) g->trie[path[--plen]].end = m;
    g->n_trie = m;
    xfree(a, path, ((size_t)g->max_piece + 1) * 4);
    return SLM_OK;
}

slm_status slm_grammar_create(const slm_model *m, const char *text, size_t len, const char *root,
                              slm_grammar **out, slm_error *err) {
    clearerr_(err);
    if (!out) return seterr(err, SLM_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (!m) return seterr(err, SLM_ERR_INVALID_ARG, "grammar: model is NULL");
    int32_t nv = m->n_vocab > 0 ? m->n_vocab : slm_vocab_size(m), nvocab = slm_vocab_size(m);
    if (nv <= 0 || nvocab <= 0) return seterr(err, SLM_ERR_UNSUPPORTED, "grammar: the model has no vocabulary");
    slm_grammar *g;
    slm_status st = grammar_compile(&m->a, text, len, root, &g, err);
    if (st != SLM_OK) return st;
    const allocator *a = &m->a;
    uint32_t *off = (uint32_t *)xalloc(a, ((size_t)nv + 1) * 4);
    uint8_t *kind = (uint8_t *)xcalloc(a, (size_t)nv, 1);
    size_t total = 0;
    for (int32_t t = 0; t < nvocab; t++) {
        size_t l = 0;
        slm_token_to_piece(m, t, 0, NULL, 0, &l);
        total += l;
    }
    char *bytes = (char *)xalloc(a, total ? total : 1);
    if (!off || !kind || !bytes || total >= UINT32_MAX) {
        st = seterr(err, total >= UINT32_MAX ? SLM_ERR_UNSUPPORTED : SLM_ERR_NOMEM, "grammar: out of memory for the vocabulary");
    } else {
        size_t at = 0;
        for (int32_t t = 0; t < nv; t++) {
            off[t] = (uint32_t)at;
            if (t >= nvocab) continue;
            if (slm_token_is_eog(m, t)) {
                kind[t] = 2;
                continue;
            }
            int attr = slm_token_attr(m, t);
            if (attr & (SLM_TOKEN_CONTROL | SLM_TOKEN_UNKNOWN | SLM_TOKEN_UNUSED)) continue;
            size_t l = 0;
            if (slm_token_to_piece(m, t, 0, bytes + at, total - at, &l) == SLM_OK && l > 0) {
                at += l;
                kind[t] = 1;
            }
        }
        off[nv] = (uint32_t)at;
        st = grammar_bind(g, nv, off, bytes, kind, err);
    }
    xfree(a, off, ((size_t)nv + 1) * 4);
    xfree(a, kind, (size_t)nv);
    xfree(a, bytes, total ? total : 1);
    if (st != SLM_OK) {
        grammar_free_(g);
        return st;
    }
    *out = g;
    return SLM_OK;
}

/* --- matching: persistent stacks ------------------------------------------------ */

typedef struct gnode {
    const struct gnode *up; /* the rest of the stack (return positions), NULL at the bottom */
    uint32_t pos;           /* element: the class to match (top) or where to go on (below) */
    uint32_t cp;            /* top only: bits of a character begun */
    uint32_t hash;          /* of the whole stack */
    uint16_t depth;
    uint8_t rem, len;       /* continuation bytes still to come, length of the character */
} gnode;

/* Node memory: chunks used as a stack (mark / reset), never freed until the
   pool is. */
#define GPOOL_CHUNK 4096u
typedef struct gpool {
    gnode **chunk;
    size_t n_chunk, cap_chunk;
    size_t top;     /* nodes in use */
    size_t limit;
} gpool;

static gnode *gpool_new(const allocator *a, gpool *p) {
    if (p->top >= p->limit) return NULL;
    size_t c = p->top / GPOOL_CHUNK;
    if (c >= p->n_chunk) {
        if (!grow(a, (void **)&p->chunk, &p->cap_chunk, c + 1, sizeof(gnode *))) return NULL;
        p->chunk[c] = (gnode *)xalloc(a, GPOOL_CHUNK * sizeof(gnode));
        if (!p->chunk[c]) return NULL;
        p->n_chunk = c + 1;
    }
    return &p->chunk[c][p->top++ % GPOOL_CHUNK];
}

static void gpool_free(const allocator *a, gpool *p) {
    for (size_t c = 0; c < p->n_chunk; c++) xfree(a, p->chunk[c], GPOOL_CHUNK * sizeof(gnode));
    xfree(a, p->chunk, p->cap_chunk * sizeof(gnode *));
    memset(p, 0, sizeof *p);
}

static uint32_t gnode_hash(const gnode *up, uint32_t pos, uint32_t cp, uint32_t rem) {
    uint32_t h = (up ? up->hash : 0x9e3779b9u) ^ (pos * 0x85ebca6bu) ^ (cp * 0xc2b2ae35u) ^ (rem << 29);
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

static int gnode_same(const gnode *a, const gnode *b) {
    while (a && b) {
        if (a == b) return 1;
        if (a->hash != b->hash || a->pos != b->pos || a->cp != b->cp || a->rem != b->rem || a->len != b->len) return 0;
        a = a->up, b = b->up;
    }
    return a == b;
}

/* Total order of stacks (canonical state sets). */
static int gnode_cmp(const gnode *a, const gnode *b) {
    if (a == b) return 0;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    while (a && b && a != b) {
        if (a->pos != b->pos) return a->pos < b->pos ? -1 : 1;
        if (a->cp != b->cp) return a->cp < b->cp ? -1 : 1;
        if (a->rem != b->rem) return a->rem < b->rem ? -1 : 1;
        a = a->up, b = b->up;
    }
    if (a == b) return 0;
    return a ? 1 : -1;
}

/* A set of stacks being built: dedup through a stamped hash table. */
typedef struct gwork {
    const slm_grammar *g;
    const allocator *a;
    gpool *pool;
    const gnode **out;     /* the set being built: out[0, n_out) */
    size_t n_out, cap_out; /* cap_out >= G_MAX_STACKS past out's start */
    int acc;               /* an empty stack (the whole grammar matched) */
    uint32_t *tab;         /* 2 * G_MAX_STACKS entries: stamp << 11 | index... see g_add */
    uint32_t *tab_idx;
    uint32_t stamp;
    int overflow;          /* limits hit: stacks dropped */
    uint32_t *wk;          /* normalization work: pairs (pos, node index into wkn) */
    const gnode **wkn;
    size_t cap_wk;
} gwork;

static void g_set_begin(gwork *w, const gnode **out) {
    w->out = out;
    w->n_out = 0;
    w->acc = 0;
    if (++w->stamp == 0) { /* wrapped: clear the table */
        memset(w->tab, 0, 2 * G_MAX_STACKS * sizeof(uint32_t));
        w->stamp = 1;
    }
}

static void g_add(gwork *w, const gnode *n) {
    uint32_t mask = 2 * G_MAX_STACKS - 1, h = n->hash & mask;
    for (;; h = (h + 1) & mask) {
        if (w->tab[h] != w->stamp) break;
        if (gnode_same(w->out[w->tab_idx[h]], n)) return;
    }
    if (w->n_out >= G_MAX_STACKS) {
        w->overflow = 1;
        return;
    }
    w->tab[h] = w->stamp;
    w->tab_idx[h] = (uint32_t)w->n_out;
    w->out[w->n_out++] = n;
}

static const gnode *g_node(gwork *w, const gnode *up, uint32_t pos, uint32_t cp, uint32_t rem, uint32_t len) {
    uint32_t depth = up ? (uint32_t)up->depth + 1 : 1;
    if (depth > G_MAX_DEPTH) {
        w->overflow = 1;
        return NULL;
    }
    gnode *n = gpool_new(w->a, w->pool);
    if (!n) {
        w->overflow = 1;
        return NULL;
    }
    n->up = up;
    n->pos = pos;
    n->cp = cp;
    n->rem = (uint8_t)rem;
    n->len = (uint8_t)len;
    n->depth = (uint16_t)depth;
    n->hash = gnode_hash(up, pos, cp, rem);
    return n;
}

/* Continue at element pos with the stack `up` below: expand rule references
   and finished alternatives until every stack has a class on top; add them. */
static void g_norm(gwork *w, uint32_t pos, const gnode *up) {
    const slm_grammar *g = w->g;
    size_t n = 0, steps = 0;
    w->wk[n] = pos, w->wkn[n] = up, n++;
    while (n) {
        n--;
        pos = w->wk[n];
        up = w->wkn[n];
        for (;;) {
            if (++steps > G_MAX_WORK) {
                w->overflow = 1;
                return;
            }
            const gel *e = &g->el[pos];
            if (e->type == GE_CLASS) {
                const gnode *t = g_node(w, up, pos, 0, 0, 0);
                if (t) g_add(w, t);
                break;
            }
            if (e->type == GE_END) {
                if (!up) {
                    w->acc = 1;
                    break;
                }
                if (g->el[up->pos].type == GE_CLASS) { /* the return node is a top already */
                    g_add(w, up);
                    break;
                }
                pos = up->pos;
                up = up->up;
                continue;
            }
            /* a rule reference: the continuation, then each alternative */
            const gnode *cont = up;
            if (g->el[pos + 1].type != GE_END) { /* not a tail call */
                cont = g_node(w, up, pos + 1, 0, 0, 0);
                if (!cont) break;
            }
            uint32_t r = e->v, na = g->rule_nalt[r];
            if (na == 0) break;
            if (n + na > w->cap_wk) {
                size_t c1 = w->cap_wk, c2 = w->cap_wk;
                if (!grow(w->a, (void **)&w->wk, &c1, n + na, sizeof(uint32_t)) ||
                    !grow(w->a, (void **)&w->wkn, &c2, n + na, sizeof(gnode *))) {
                    w->overflow = 1;
                    return;
                }
                w->cap_wk = c1 < c2 ? c1 : c2;
            }
            for (uint32_t k = na; k-- > 1;) {
                w->wk[n] = g->alt[g->rule_alt[r] + k];
                w->wkn[n] = cont;
                n++;
            }
            pos = g->alt[g->rule_alt[r]];
            up = cont;
        }
    }
}

/* 1 if every code point in [lo, hi] is in class c. */
static int gclass_all(const slm_grammar *g, const gclass *c, uint32_t lo, uint32_t hi) {
    if (c->nr == 0) return (int)c->neg; /* "." (every code point) or nothing */
    const uint32_t *r = g->rng + 2 * c->r0;
    uint32_t a = 0, b = c->nr;
    while (a < b) {
        uint32_t mid = (a + b) / 2;
        if (r[2 * mid + 1] < lo) a = mid + 1;
        else b = mid;
    }
    if (!c->neg) return a < c->nr && r[2 * a] <= lo && r[2 * a + 1] >= hi;
    return !(a < c->nr && r[2 * a] <= hi);
}

/* Feed byte b to the stack t (its top is a class); add what survives.
   A character begun whose every completion is in the class (and valid
   UTF-8 whatever continuation bytes follow) is kept "free" (len 0, cp 0):
   then all such prefixes are one node, and the walk's memo sees one set
   where it would see one per lead byte (thousands of CJK pieces). */
static void g_step(gwork *w, const gnode *t, uint8_t b) {
    const slm_grammar *g = w->g;
    const gclass *c = &g->cls[g->el[t->pos].v];
    if (t->rem == 0) {
        if (!(c->first[b >> 3] >> (b & 7) & 1)) return;
        if (b < 0x80) {
            g_norm(w, t->pos + 1, t->up);
            return;
        }
        uint32_t lo = 0, hi = 0;
        int len = 2;
        utf8_lead_range(b, &lo, &hi, &len);
        /* E0, ED, F0, F4 restrict their second byte (overlong, surrogates, > U+10FFFF) */
        int free_ = b != 0xE0 && b != 0xED && b != 0xF0 && b != 0xF4 && gclass_all(g, c, lo, hi);
        const gnode *n = g_node(w, t->up, t->pos, free_ ? 0 : b & (0x3Fu >> (len - 1)), (uint32_t)len - 1,
                                free_ ? 0 : (uint32_t)len);
        if (n) g_add(w, n);
        return;
    }
    if ((b & 0xC0) != 0x80) return;
    uint32_t rem = t->rem - 1u;
    if (t->len == 0) { /* free */
        if (rem == 0) {
            g_norm(w, t->pos + 1, t->up);
            return;
        }
        const gnode *n = g_node(w, t->up, t->pos, 0, rem, 0);
        if (n) g_add(w, n);
        return;
    }
    uint32_t cp = t->cp << 6 | (b & 0x3Fu);
    uint32_t lo = cp << (6 * rem), hi = lo | ((1u << (6 * rem)) - 1);
    uint32_t min = t->len == 2 ? 0x80 : t->len == 3 ? 0x800 : 0x10000;
    if (hi < min || lo > 0x10FFFF) return; /* overlong or beyond Unicode */
    if (lo < min) lo = min;
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo >= 0xD800 && hi <= 0xDFFF) return; /* surrogates */
    if (!gclass_any(g, c, lo, hi)) return;
    if (rem == 0) {
        g_norm(w, t->pos + 1, t->up);
        return;
    }
    /* past the second byte nothing restricts the rest: free if the class has it all */
    int free_ = !(lo <= 0xDFFF && hi >= 0xD800) && gclass_all(g, c, lo, hi);
    const gnode *n = g_node(w, t->up, t->pos, free_ ? 0 : cp, rem, free_ ? 0 : t->len);
    if (n) g_add(w, n);
}

/* --- per-sampler state: the stack set, the mask cache ---------------------------- */

typedef struct gcache {
    uint64_t key;
    uint32_t *flat;   /* the state it belongs to (g_flatten form) */
    size_t n_flat, cap_flat;
    uint32_t *mask;   /* n_vocab bits */
    uint64_t used;    /* last use (LRU) */
    int valid;
} gcache;

typedef struct gstate {
    const slm_grammar *g;
    allocator a;
    gpool pool[2];        /* the current state's nodes live in pool[cur] */
    int cur;
    gpool scratch;        /* mask walks and token steps */
    const gnode **set;    /* current stacks, n_set (canonical order) */
    size_t n_set;
    int acc;              /* the empty stack is in the set */
    int failed;           /* an accepted token did not fit */
    int ended;            /* an end-of-generation token was accepted */
    gwork w;
    const gnode **buf;    /* sets of the walk, level by level */
    size_t cap_buf;
    uint32_t *lvl;        /* per trie depth: start of its set in buf, count, acc, pool mark (4 each) */
    size_t *lvl_mark;
    uint32_t *flat;       /* the current state, flattened (cache key) */
    size_t n_flat, cap_flat;
    uint64_t key;
    int key_ok;
    gcache *cache;
    size_t n_cache;
    uint64_t tick;
    size_t mask_words;
    const gnode **tmp;    /* G_MAX_STACKS */
    /* the walk's memo: distinct stack sets met in one walk, and the set each
       (set, byte) leads to, so that a byte is matched once per set, not once
       per trie node (inside a JSON string every character leads back to the
       same set) */
    int32_t *trans;       /* n_msets * 256: -2 unknown, -1 nothing survives, else a set */
    size_t cap_trans;
    uint32_t *mset;       /* per set: start in mmem, count, acc, signature (4 each) */
    size_t cap_mset, n_msets;
    const gnode **mmem;   /* members of the sets */
    size_t cap_mmem, n_mmem;
    int32_t *mhash;       /* open addressing over sets by signature, G_MSET_HASH slots */
    int32_t *lvl_set;     /* per trie depth: the set */
} gstate;

#define G_MAX_MSETS 8192u    /* distinct sets in one memoized walk (then the plain walk) */
#define G_MSET_HASH 16384u

static void gstate_free(gstate *s) {
    if (!s) return;
    allocator a = s->a;
    gpool_free(&a, &s->pool[0]);
    gpool_free(&a, &s->pool[1]);
    gpool_free(&a, &s->scratch);
    xfree(&a, s->set, G_MAX_STACKS * sizeof(gnode *));
    xfree(&a, s->tmp, G_MAX_STACKS * sizeof(gnode *));
    xfree(&a, s->w.tab, 2 * G_MAX_STACKS * sizeof(uint32_t));
    xfree(&a, s->w.tab_idx, 2 * G_MAX_STACKS * sizeof(uint32_t));
    xfree(&a, s->w.wk, s->w.cap_wk * sizeof(uint32_t));
    xfree(&a, s->w.wkn, s->w.cap_wk * sizeof(gnode *));
    xfree(&a, s->buf, s->cap_buf * sizeof(gnode *));
    xfree(&a, s->lvl, ((size_t)s->g->max_piece + 2) * 4 * sizeof(uint32_t));
    xfree(&a, s->lvl_mark, ((size_t)s->g->max_piece + 2) * sizeof(size_t));
    xfree(&a, s->flat, s->cap_flat * sizeof(uint32_t));
    xfree(&a, s->trans, s->cap_trans * sizeof(int32_t));
    xfree(&a, s->mset, s->cap_mset * 4 * sizeof(uint32_t));
    xfree(&a, s->mmem, s->cap_mmem * sizeof(gnode *));
    xfree(&a, s->mhash, G_MSET_HASH * sizeof(int32_t));
    xfree(&a, s->lvl_set, ((size_t)s->g->max_piece + 2) * sizeof(int32_t));
    for (size_t i = 0; i < s->n_cache; i++) {
        xfree(&a, s->cache[i].flat, s->cache[i].cap_flat * sizeof(uint32_t));
        xfree(&a, s->cache[i].mask, s->mask_words * sizeof(uint32_t));
    }
    xfree(&a, s->cache, (s->n_cache ? s->n_cache : 1) * sizeof(gcache));
    xfree(&a, s, sizeof *s);
}

static void gstate_work(gstate *s, gpool *pool) {
    s->w.g = s->g;
    s->w.a = &s->a;
    s->w.pool = pool;
}

/* Sort the set into canonical order (insertion sort: sets are small). */
static void g_sort_set(const gnode **v, size_t n) {
    for (size_t i = 1; i < n; i++) {
        const gnode *x = v[i];
        size_t j = i;
        for (; j > 0 && gnode_cmp(v[j - 1], x) > 0; j--) v[j] = v[j - 1];
        v[j] = x;
    }
}

/* Copy the stacks of set (in w->pool / scratch) into the other persistent
   pool and make them the state. Shared tails are copied once per stack
   (stacks are short; sets small). */
static int g_commit(gstate *s, const gnode **set, size_t n, int acc) {
    gpool *dst = &s->pool[!s->cur];
    dst->top = 0;
    for (size_t i = 0; i < n; i++) { /* copy top down, linking each copy below the previous one */
        gnode *head = NULL, *prev = NULL;
        for (const gnode *x = set[i]; x; x = x->up) {
            gnode *y = gpool_new(&s->a, dst);
            if (!y) return 0;
            *y = *x;
            y->up = NULL;
            if (prev) prev->up = y;
            else head = y;
            prev = y;
        }
        s->tmp[i] = head;
    }
    memcpy(s->set, s->tmp, n * sizeof(gnode *));
    g_sort_set(s->set, n);
    s->n_set = n;
    s->acc = acc;
    s->cur = !s->cur;
    s->key_ok = 0;
    return 1;
}

/* Flatten the state (canonical order) for the cache key. */
static int g_flatten(gstate *s) {
    size_t need = 2;
    for (size_t i = 0; i < s->n_set; i++) need += 1 + 3 * (size_t)s->set[i]->depth;
    if (!grow(&s->a, (void **)&s->flat, &s->cap_flat, need, sizeof(uint32_t))) return 0;
    uint32_t *f = s->flat;
    size_t k = 0;
    f[k++] = (uint32_t)s->n_set;
    f[k++] = (uint32_t)s->acc;
    uint64_t h = 1469598103934665603ull ^ s->n_set ^ ((uint64_t)s->acc << 40);
    for (size_t i = 0; i < s->n_set; i++) {
        f[k++] = s->set[i]->depth;
        for (const gnode *x = s->set[i]; x; x = x->up) {
            f[k++] = x->pos;
            f[k++] = x->cp;
            f[k++] = (uint32_t)x->rem | (uint32_t)x->len << 8;
        }
    }
    for (size_t i = 0; i < k; i++) h = (h ^ f[i]) * 1099511628211ull;
    s->n_flat = k;
    s->key = h;
    s->key_ok = 1;
    return 1;
}

static void gstate_reset(gstate *s) {
    const slm_grammar *g = s->g;
    s->failed = s->ended = 0;
    gstate_work(s, &s->scratch);
    s->scratch.top = 0;
    s->w.overflow = 0;
    g_set_begin(&s->w, s->tmp);
    for (uint32_t k = 0; k < g->rule_nalt[g->root]; k++) g_norm(&s->w, g->alt[g->rule_alt[g->root] + k], NULL);
    /* g_commit reads stack i before it writes tmp[i]: the set may be tmp */
    if (!g_commit(s, s->tmp, s->w.n_out, s->w.acc)) s->failed = 1;
    if (s->n_set == 0 && !s->acc) s->failed = 1;
}

static slm_status gstate_new(const allocator *a, const slm_grammar *g, gstate **out, slm_error *err) {
    gstate *s = (gstate *)xcalloc(a, 1, sizeof *s);
    if (!s) return seterr(err, SLM_ERR_NOMEM, "grammar: out of memory");
    s->g = g;
    s->a = *a;
    for (int i = 0; i < 2; i++) s->pool[i].limit = G_MAX_NODES;
    s->scratch.limit = G_MAX_NODES;
    s->set = (const gnode **)xalloc(a, G_MAX_STACKS * sizeof(gnode *));
    s->tmp = (const gnode **)xalloc(a, G_MAX_STACKS * sizeof(gnode *));
    s->w.tab = (uint32_t *)xcalloc(a, 2 * G_MAX_STACKS, sizeof(uint32_t));
    s->w.tab_idx = (uint32_t *)xalloc(a, 2 * G_MAX_STACKS * sizeof(uint32_t));
    s->lvl = (uint32_t *)xalloc(a, ((size_t)g->max_piece + 2) * 4 * sizeof(uint32_t));
    s->lvl_mark = (size_t *)xalloc(a, ((size_t)g->max_piece + 2) * sizeof(size_t));
    s->mask_words = ((size_t)g->n_vocab + 31) / 32;
    s->w.cap_wk = 256;
    s->w.wk = (uint32_t *)xalloc(a, s->w.cap_wk * sizeof(uint32_t));
    s->w.wkn = (const gnode **)xalloc(a, s->w.cap_wk * sizeof(gnode *));
    /* cache: up to 4 MiB of masks, at least 4, at most 256 */
    size_t nc = ((size_t)4 << 20) / (s->mask_words * 4);
    if (nc < 4) nc = 4;
    if (nc > 256) nc = 256;
    s->cache = (gcache *)xcalloc(a, nc, sizeof(gcache));
    s->n_cache = s->cache ? nc : 0;
    s->mhash = (int32_t *)xalloc(a, G_MSET_HASH * sizeof(int32_t));
    s->lvl_set = (int32_t *)xalloc(a, ((size_t)g->max_piece + 2) * sizeof(int32_t));
    if (!s->mhash || !s->lvl_set || !s->w.wk || !s->w.wkn || !s->set || !s->tmp || !s->w.tab || !s->w.tab_idx || !s->lvl || !s->lvl_mark || !s->cache) {
        gstate_free(s);
        return seterr(err, SLM_ERR_NOMEM, "grammar: out of memory for the sampler's grammar state");
    }
    gstate_reset(s);
    if (s->failed) {
        gstate_free(s);
        return seterr(err, SLM_ERR_NOMEM, "grammar: the start rule's stacks exceed the limits");
    }
    *out = s;
    return SLM_OK;
}

/* Run one byte over the set v[0, n) into w's output (already begun). */
static void g_step_set(gwork *w, const gnode *const *v, size_t n, uint8_t b) {
    for (size_t i = 0; i < n; i++) g_step(w, v[i], b);
}

/* The tokens the state allows: bits of mask (n_vocab bits); every trie node
   steps its parent's stacks (the fallback of the memoized walk below). */
static void g_compute_mask_plain(gstate *s, uint32_t *mask) {
    const slm_grammar *g = s->g;
    memset(mask, 0, s->mask_words * sizeof(uint32_t));
    if (!s->failed && !s->ended) {
        for (int32_t t = 0; t < g->n_vocab; t++)
            if (g->tok_kind[t] == 2 && s->acc) mask[t >> 5] |= 1u << (t & 31);
    }
    if (s->failed || s->ended || s->n_set == 0) return;
    gstate_work(s, &s->scratch);
    s->scratch.top = 0;
    /* level 0: the state itself; buf holds the sets of levels 0..depth */
    size_t need = s->n_set + G_MAX_STACKS;
    if (!grow(&s->a, (void **)&s->buf, &s->cap_buf, need, sizeof(gnode *))) return;
    memcpy(s->buf, s->set, s->n_set * sizeof(gnode *));
    uint32_t *lvl = s->lvl; /* lvl[4d]: start, [4d+1]: count */
    lvl[0] = 0;
    lvl[1] = (uint32_t)s->n_set;
    s->lvl_mark[1] = 0;
    const gtrie *tr = g->trie;
    for (uint32_t i = 0; i < g->n_trie;) {
        const gtrie *nd = &tr[i];
        uint32_t d = nd->depth;
        const uint32_t pstart = lvl[4 * (d - 1)], pn = lvl[4 * (d - 1) + 1];
        size_t start = (size_t)pstart + pn;
        if (start + G_MAX_STACKS > s->cap_buf) {
            if (!grow(&s->a, (void **)&s->buf, &s->cap_buf, start + G_MAX_STACKS, sizeof(gnode *))) return;
        }
        s->scratch.top = s->lvl_mark[d];
        g_set_begin(&s->w, s->buf + start);
        g_step_set(&s->w, s->buf + pstart, pn, nd->byte);
        size_t n = s->w.n_out;
        if (n == 0 && !s->w.acc) {
            i = nd->end;
            continue;
        }
        for (uint32_t k = 0; k < nd->ntok; k++) {
            int32_t t = g->tok_sorted[nd->tok + k];
            mask[t >> 5] |= 1u << (t & 31);
        }
        if (n == 0) {
            i = nd->end;
            continue;
        }
        lvl[4 * d] = (uint32_t)start;
        lvl[4 * d + 1] = (uint32_t)n;
        s->lvl_mark[d + 1] = s->scratch.top;
        i++;
    }
}

/* Intern the set w->out[0, n_out) (+ acc): its id, or -1 past the limits. */
static int32_t g_mset_intern(gstate *s) {
    gwork *w = &s->w;
    size_t n = w->n_out;
    uint32_t sig = 0x811c9dc5u ^ (uint32_t)n ^ ((uint32_t)w->acc << 31), sum = 0;
    for (size_t k = 0; k < n; k++) { /* order-free: sum and xor of the stack hashes */
        uint32_t h = w->out[k]->hash;
        sum += h * 0x9e3779b1u;
        sig ^= h;
    }
    sig = (sig * 0x85ebca6bu) ^ sum;
    uint32_t mask = G_MSET_HASH - 1, h = sig & mask;
    for (; s->mhash[h] >= 0; h = (h + 1) & mask) {
        const uint32_t *e = &s->mset[4 * (size_t)s->mhash[h]];
        if (e[3] != sig || e[1] != n || e[2] != (uint32_t)w->acc) continue;
        size_t k = 0;
        for (; k < n; k++) {
            size_t q = 0;
            while (q < n && !gnode_same(w->out[k], s->mmem[e[0] + q])) q++;
            if (q == n) break;
        }
        if (k == n) return s->mhash[h];
    }
    if (s->n_msets >= G_MAX_MSETS) return -1;
    size_t id = s->n_msets;
    if (!grow(&s->a, (void **)&s->mset, &s->cap_mset, id + 1, 4 * sizeof(uint32_t)) ||
        !grow(&s->a, (void **)&s->mmem, &s->cap_mmem, s->n_mmem + n + 1, sizeof(gnode *)) ||
        !grow(&s->a, (void **)&s->trans, &s->cap_trans, (id + 1) * 256, sizeof(int32_t)))
        return -1;
    uint32_t *e = &s->mset[4 * id];
    e[0] = (uint32_t)s->n_mmem, e[1] = (uint32_t)n, e[2] = (uint32_t)w->acc, e[3] = sig;
    memcpy(s->mmem + s->n_mmem, w->out, n * sizeof(gnode *));
    s->n_mmem += n;
    for (int b = 0; b < 256; b++) s->trans[id * 256 + (size_t)b] = -2;
    s->mhash[h] = (int32_t)id;
    s->n_msets++;
    return (int32_t)id;
}

/* The walk with the memo: nodes are never given back during it (sets
   refer to them); a walk past the limits starts over with the plain one. */
static void g_compute_mask(gstate *s, uint32_t *mask) {
    const slm_grammar *g = s->g;
    memset(mask, 0, s->mask_words * sizeof(uint32_t));
    if (s->failed || s->ended) return;
    for (int32_t t = 0; t < g->n_vocab; t++)
        if (g->tok_kind[t] == 2 && s->acc) mask[t >> 5] |= 1u << (t & 31);
    if (s->n_set == 0) return;
    gstate_work(s, &s->scratch);
    s->scratch.top = 0;
    s->w.overflow = 0;
    s->n_msets = s->n_mmem = 0;
    memset(s->mhash, 0xff, G_MSET_HASH * sizeof(int32_t));
    if (!grow(&s->a, (void **)&s->buf, &s->cap_buf, G_MAX_STACKS, sizeof(gnode *))) goto plain;
    s->w.out = s->set;
    s->w.n_out = s->n_set;
    s->w.acc = s->acc;
    s->lvl_set[0] = g_mset_intern(s);
    if (s->lvl_set[0] < 0) goto plain;
    const gtrie *tr = g->trie;
    for (uint32_t i = 0; i < g->n_trie;) {
        const gtrie *nd = &tr[i];
        uint32_t d = nd->depth;
        size_t pi = (size_t)s->lvl_set[d - 1] * 256 + nd->byte;
        int32_t r = s->trans[pi];
        if (r == -2) {
            const uint32_t *pe = &s->mset[4 * (size_t)s->lvl_set[d - 1]];
            g_set_begin(&s->w, s->buf);
            g_step_set(&s->w, s->mmem + pe[0], pe[1], nd->byte);
            if (s->w.n_out == 0 && !s->w.acc) r = -1;
            else if ((r = g_mset_intern(s)) < 0) goto plain;
            s->trans[(size_t)s->lvl_set[d - 1] * 256 + nd->byte] = r; /* (trans may have moved) */
        }
        if (r == -1) {
            i = nd->end;
            continue;
        }
        for (uint32_t k = 0; k < nd->ntok; k++) {
            int32_t t = g->tok_sorted[nd->tok + k];
            mask[t >> 5] |= 1u << (t & 31);
        }
        if (s->mset[4 * (size_t)r + 1] == 0) { /* only the empty stack: nothing can follow */
            i = nd->end;
            continue;
        }
        s->lvl_set[d] = r;
        i++;
    }
    if (!s->w.overflow) return;
plain:
    g_compute_mask_plain(s, mask);
}

/* The mask of the current state, from the cache when it was seen before. */
static const uint32_t *g_mask(gstate *s) {
    if (s->failed || s->ended) return NULL; /* nothing may follow */
    if (!s->key_ok && !g_flatten(s)) return NULL;
    s->tick++;
    gcache *victim = NULL;
    for (size_t i = 0; i < s->n_cache; i++) {
        gcache *c = &s->cache[i];
        if (c->valid && c->key == s->key && c->n_flat == s->n_flat &&
            memcmp(c->flat, s->flat, s->n_flat * sizeof(uint32_t)) == 0) {
            c->used = s->tick;
            return c->mask;
        }
        if (!victim || !c->valid || (victim->valid && c->used < victim->used)) victim = c;
    }
    if (!victim) return NULL;
    if (!victim->mask) {
        victim->mask = (uint32_t *)xalloc(&s->a, s->mask_words * sizeof(uint32_t));
        if (!victim->mask) return NULL;
    }
    if (!grow(&s->a, (void **)&victim->flat, &victim->cap_flat, s->n_flat, sizeof(uint32_t))) return NULL;
    victim->valid = 0;
    g_compute_mask(s, victim->mask);
    memcpy(victim->flat, s->flat, s->n_flat * sizeof(uint32_t));
    victim->n_flat = s->n_flat;
    victim->key = s->key;
    victim->used = s->tick;
    victim->valid = 1;
    return victim->mask;
}

/* Advance over a token: 1 if the grammar allows it. */
static int g_accept(gstate *s, int32_t token) {
    const slm_grammar *g = s->g;
    if (s->failed) return 0;
    if (token < 0 || token >= g->n_vocab || s->ended) {
        s->failed = 1;
        return 0;
    }
    if (g->tok_kind[token] == 2) {
        if (s->acc) {
            s->ended = 1;
            return 1;
        }
        s->failed = 1;
        return 0;
    }
    uint32_t l = g->piece_off[token + 1] - g->piece_off[token];
    if (g->tok_kind[token] != 1 || l == 0) {
        s->failed = 1;
        return 0;
    }
    const uint8_t *p = (const uint8_t *)g->pieces + g->piece_off[token];
    gstate_work(s, &s->scratch);
    s->scratch.top = 0;
    size_t need = 2 * (size_t)G_MAX_STACKS;
    if (!grow(&s->a, (void **)&s->buf, &s->cap_buf, need, sizeof(gnode *))) {
        s->failed = 1;
        return 0;
    }
    const gnode **cur = s->set, **nxt = s->buf;
    size_t n = s->n_set;
    int acc = 0;
    for (uint32_t k = 0; k < l; k++) {
        g_set_begin(&s->w, nxt);
        g_step_set(&s->w, cur, n, p[k]);
        n = s->w.n_out;
        acc = s->w.acc;
        if (n == 0 && !(acc && k + 1 == l)) {
            s->failed = 1;
            return 0;
        }
        cur = nxt;
        nxt = nxt == s->buf ? s->buf + G_MAX_STACKS : s->buf;
    }
    if (!g_commit(s, cur, n, acc)) {
        s->failed = 1;
        return 0;
    }
    return 1;
}

/* --- JSON: the built-in grammar ---------------------------------------------------
   An object at the top (as OpenAI's json_object mode); whitespace between
   tokens is bounded (one space, or a newline and up to 16 blanks), and so
   are the digits of numbers, so that a small model cannot loop on blanks
   or digits forever. */
static const char G_JSON[] =
    "root    ::= object\n"
    "value   ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object  ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array   ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string  ::= \"\\\"\" char* \"\\\"\"\n"
    "char    ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n"
    "number  ::= integer ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
    "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null    ::= \"null\"\n"
    "ws      ::= ( \" \" | \"\\n\" [ \\t]{0,16} )?\n";

const char *slm_grammar_json(void) { return G_JSON; }

/* --- JSON: a small parser (schemas) -----------------------------------------------
   Bounded: text, depth and values; strings are decoded (escapes, surrogate
   pairs) and must be valid UTF-8. Values live in one bump arena. */

#define J_MAX_TEXT (1u << 20)
#define J_MAX_DEPTH 64
#define J_MAX_VALUES 100000u

enum { JV_NULL, JV_FALSE, JV_TRUE, JV_NUM, JV_STR, JV_ARR, JV_OBJ };

typedef struct jv {
    int type;
    uint32_t n;       /* string bytes, array elements or object members */
    const char *s;    /* string (decoded, NUL-terminated) or number text (NUL-terminated) */
    struct jv *kids;  /* arrays: n values; objects: 2n (key, value) */
} jv;

typedef struct jblk {
    struct jblk *next;
    size_t size;
} jblk;

typedef struct jparse {
    const allocator *a;
    const char *s;
    size_t n, i;
    jblk *blocks;
    char *bump;
    size_t left;
    uint32_t n_values;
    slm_error *err;
    slm_status st;
    const char *what; /* "json" or "json schema" for messages */
} jparse;

static void *j_alloc(jparse *p, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (size > p->left) {
        size_t bs = size > 65536 - sizeof(jblk) - 16 ? size + sizeof(jblk) + 16 : 65536;
        jblk *b = (jblk *)xalloc(p->a, bs);
        if (!b) return NULL;
        b->next = p->blocks;
        b->size = bs;
        p->blocks = b;
        p->bump = (char *)b + ((sizeof(jblk) + 15) & ~(size_t)15);
        p->left = bs - ((sizeof(jblk) + 15) & ~(size_t)15);
        if (size > p->left) return NULL;
    }
    void *r = p->bump;
    p->bump += size;
    p->left -= size;
    return r;
}

static void j_free(jparse *p) {
    for (jblk *b = p->blocks; b;) {
        jblk *nx = b->next;
        xfree(p->a, b, b->size);
        b = nx;
    }
    p->blocks = NULL;
}

static SLM_PRINTF(3, 4) int j_fail(jparse *p, size_t at, const char *fmt, ...) {
    if (p->st != SLM_OK) return 0;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsn(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    g_linecol(p->s, at, &line, &col);
    p->st = seterr(p->err, SLM_ERR_FORMAT, "%s: line %d, column %d: %s", p->what, line, col, msg);
    return 0;
}

static void j_ws(jparse *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int j_put_utf8(char *o, uint32_t c) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | ((c >> 6) & 0x3F)), o[2] = (char)(0x80 | (c & 0x3F)), 3;
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static int j_hex4(jparse *p, uint32_t *v) {
    *v = 0;
    for (int k = 0; k < 4; k++) {
        int h = p->i < p->n ? hexval(p->s[p->i]) : -1;
        if (h < 0) return j_fail(p, p->i, "expected 4 hexadecimal digits after \\u");
        *v = *v * 16 + (uint32_t)h;
        p->i++;
    }
    return 1;
}

/* A string at p->i (the opening quote): decoded into the arena. */
static int j_string(jparse *p, jv *out) {
    size_t at = p->i++;
    size_t end = p->i;
    while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->n) return j_fail(p, at, "unterminated string");
    char *o = (char *)j_alloc(p, end - p->i + 1); /* decoding never grows the text */
    if (!o) return p->st = seterr(p->err, SLM_ERR_NOMEM, "%s: out of memory", p->what), 0;
    size_t k = 0;
    while (p->s[p->i] != '"') {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c < 0x20) return j_fail(p, p->i, "control character in a string");
        if (c == '\\') {
            char e = p->s[p->i + 1];
            p->i += 2;
            switch (e) {
            case '"': o[k++] = '"'; break;
            case '\\': o[k++] = '\\'; break;
            case '/': o[k++] = '/'; break;
            case 'b': o[k++] = '\b'; break;
            case 'f': o[k++] = '\f'; break;
            case 'n': o[k++] = '\n'; break;
            case 'r': o[k++] = '\r'; break;
            case 't': o[k++] = '\t'; break;
            case 'u': {
                uint32_t v, w;
                size_t uat = p->i - 2;
                if (!j_hex4(p, &v)) return 0;
                if (v >= 0xDC00 && v <= 0xDFFF) return j_fail(p, uat, "lone low surrogate \\u%04X", (unsigned)v);
                if (v >= 0xD800 && v <= 0xDBFF) {
                    if (p->i + 1 >= p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        return j_fail(p, uat, "high surrogate \\u%04X without its low half", (unsigned)v);
                    p->i += 2;
                    if (!j_hex4(p, &w)) return 0;
                    if (w < 0xDC00 || w > 0xDFFF) return j_fail(p, uat, "high surrogate \\u%04X without its low half", (unsigned)v);
                    v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
                }
                k += (size_t)j_put_utf8(o + k, v);
                break;
            }
            default: return j_fail(p, p->i - 2, "unknown escape in a string");
            }
            continue;
        }
        size_t len = utf8_len(c), got = 0;
        uint32_t v = len && p->i + len <= end ? utf8_cpt((const unsigned char *)p->s + p->i, len, &got) : 0;
        if (!len || got != len || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (len == 2 && v < 0x80) ||
            (len == 3 && v < 0x800) || (len == 4 && v < 0x10000))
            return j_fail(p, p->i, "invalid UTF-8 in a string");
        memcpy(o + k, p->s + p->i, len);
        k += len;
        p->i += len;
    }
    p->i++;
    o[k] = 0;
    out->type = JV_STR;
    out->s = o;
    out->n = (uint32_t)k;
    return 1;
}

static int j_value(jparse *p, jv *out, int depth);

static int j_container(jparse *p, jv *out, int depth, int obj) {
    size_t at = p->i++;
    if (depth >= J_MAX_DEPTH) return j_fail(p, at, "nested deeper than %d", J_MAX_DEPTH);
    jv *tmp = NULL;
    size_t n = 0, cap = 0;
    int ok = 1;
    j_ws(p);
    if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
        p->i++;
    } else {
        for (;;) {
            if (!grow(p->a, (void **)&tmp, &cap, n + 2, sizeof(jv))) {
                p->st = seterr(p->err, SLM_ERR_NOMEM, "%s: out of memory", p->what);
                ok = 0;
                break;
            }
            j_ws(p);
            if (obj) {
                if (p->i >= p->n || p->s[p->i] != '"') {
                    ok = j_fail(p, p->i, "expected a member name (a string)");
                    break;
                }
                if (!j_string(p, &tmp[n])) {
                    ok = 0;
                    break;
                }
                j_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') {
                    ok = j_fail(p, p->i, "expected ':'");
                    break;
                }
                p->i++;
                n++;
            }
            if (!j_value(p, &tmp[n], depth + 1)) {
                ok = 0;
                break;
            }
            n++;
            j_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
                p->i++;
                break;
            }
            ok = j_fail(p, p->i, "expected ',' or '%c'", obj ? '}' : ']');
            break;
        }
    }
    if (ok) {
        out->type = obj ? JV_OBJ : JV_ARR;
        out->n = (uint32_t)(obj ? n / 2 : n);
        out->kids = n ? (jv *)j_alloc(p, n * sizeof(jv)) : NULL;
        if (n && !out->kids) {
            p->st = seterr(p->err, SLM_ERR_NOMEM, "%s: out of memory", p->what);
            ok = 0;
        } else if (n) {
            memcpy(out->kids, tmp, n * sizeof(jv));
        }
    }
    xfree(p->a, tmp, cap * sizeof(jv));
    return ok;
}

static int j_value(jparse *p, jv *out, int depth) {
    j_ws(p);
    memset(out, 0, sizeof *out);
    if (++p->n_values > J_MAX_VALUES) return j_fail(p, p->i, "more than %u values", J_MAX_VALUES);
    if (p->i >= p->n) return j_fail(p, p->i, "unexpected end of the text");
    char c = p->s[p->i];
    if (c == '{' || c == '[') return j_container(p, out, depth, c == '{');
    if (c == '"') return j_string(p, out);
    static const char *const words[3] = {"null", "false", "true"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(words[k]);
        if (p->n - p->i >= l && memcmp(p->s + p->i, words[k], l) == 0) {
            p->i += l;
            out->type = JV_NULL + k;
            return 1;
        }
    }
    /* number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)? */
    size_t at = p->i, i = p->i;
    if (i < p->n && p->s[i] == '-') i++;
    if (i < p->n && p->s[i] == '0') i++;
    else if (i < p->n && p->s[i] >= '1' && p->s[i] <= '9')
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    else return j_fail(p, at, "unexpected character '%c'", c >= 32 && c < 127 ? c : '?');
    if (i < p->n && p->s[i] == '.') {
        size_t d = ++i;
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
        if (i == d) return j_fail(p, at, "a digit must follow the decimal point");
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
        size_t d = i;
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
        if (i == d) return j_fail(p, at, "a digit must follow the exponent");
    }
    char *t = (char *)j_alloc(p, i - at + 1);
    if (!t) return p->st = seterr(p->err, SLM_ERR_NOMEM, "%s: out of memory", p->what), 0;
    memcpy(t, p->s + at, i - at);
    t[i - at] = 0;
    out->type = JV_NUM;
    out->s = t;
    out->n = (uint32_t)(i - at);
    p->i = i;
    return 1;
}

static int j_parse(jparse *p, const allocator *a, const char *s, size_t n, const char *what, slm_error *err, jv *out) {
    memset(p, 0, sizeof *p);
    p->a = a;
    p->s = s;
    p->n = n;
    p->err = err;
    p->st = SLM_OK;
    p->what = what;
    if (n > J_MAX_TEXT) {
        p->st = seterr(err, SLM_ERR_UNSUPPORTED, "%s: text of %zu bytes (the limit is %u)", what, n, J_MAX_TEXT);
        return 0;
    }
    if (!j_value(p, out, 0)) return 0;
    j_ws(p);
    if (p->i < p->n) return j_fail(p, p->i, "text after the end of the value");
    return 1;
}

static const jv *j_get(const jv *o, const char *key) {
    if (!o || o->type != JV_OBJ) return NULL;
    for (uint32_t k = 0; k < o->n; k++)
        if (strcmp(o->kids[2 * k].s, key) == 0 && o->kids[2 * k].n == strlen(key)) return &o->kids[2 * k + 1];
    return NULL;
}

/* --- JSON Schema -> GBNF -------------------------------------------------------- */

typedef struct gsb { /* growable text */
    const allocator *a;
    char *p;
    size_t n, cap;
    int bad; /* out of memory or over the limit */
} gsb;

static void sb_put(gsb *b, const char *s, size_t n) {
    if (b->bad) return;
    if (b->n + n + 1 > G_MAX_TEXT || !grow(b->a, (void **)&b->p, &b->cap, b->n + n + 1, 1)) {
        b->bad = 1;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(gsb *b, const char *s) { sb_put(b, s, strlen(s)); }

static SLM_PRINTF(2, 3) void sb_fmt(gsb *b, const char *fmt, ...) {
    char t[256];
    va_list ap;
    va_start(ap, fmt);
    int n = fmt_vsn(t, sizeof t, fmt, ap);
    va_end(ap);
    sb_put(b, t, n < 0 ? 0 : (size_t)SLM_MIN((size_t)n, sizeof t - 1));
}

static void sb_free(gsb *b) {
    xfree(b->a, b->p, b->cap);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* The compact JSON text of a value, as GBNF literal text. */
static void sb_json_lit(gsb *b, const jv *v, int depth) {
    if (depth > J_MAX_DEPTH) {
        b->bad = 1;
        return;
    }
    switch (v->type) {
    case JV_NULL: sb_str(b, "null"); break;
    case JV_FALSE: sb_str(b, "false"); break;
    case JV_TRUE: sb_str(b, "true"); break;
    case JV_NUM: sb_put(b, v->s, v->n); break;
    case JV_STR:
        sb_str(b, "\\\"");
        for (uint32_t i = 0; i < v->n; i++) {
            unsigned char c = (unsigned char)v->s[i];
            if (c == '"') sb_str(b, "\\\\\\\""); /* JSON \" as GBNF text */
            else if (c == '\\') sb_str(b, "\\\\\\\\");
            else if (c < 0x20) sb_fmt(b, "\\\\u%04x", c);
            else sb_put(b, (const char *)&c, 1);
        }
        sb_str(b, "\\\"");
        break;
    case JV_ARR:
        sb_str(b, "[");
        for (uint32_t i = 0; i < v->n; i++) {
            if (i) sb_str(b, ",");
            sb_json_lit(b, &v->kids[i], depth + 1);
        }
        sb_str(b, "]");
        break;
    case JV_OBJ:
        sb_str(b, "{");
        for (uint32_t i = 0; i < v->n; i++) {
            if (i) sb_str(b, ",");
            sb_json_lit(b, &v->kids[2 * i], depth + 1);
            sb_str(b, ":");
            sb_json_lit(b, &v->kids[2 * i + 1], depth + 1);
        }
        sb_str(b, "}");
        break;
    }
}

#define JS_MAX_REFS 1024

typedef struct jschema {
    const allocator *a;
    const jv *root;
    gsb out;           /* the rules */
    uint32_t n_rules;
    slm_error *err;
    slm_status st;
    int depth;
    char path[160];    /* JSON pointer of the schema being converted (messages) */
    const char *ref_name[JS_MAX_REFS];
    uint32_t ref_rule[JS_MAX_REFS];
    uint32_t n_refs;
} jschema;

static SLM_PRINTF(2, 3) int js_fail(jschema *c, const char *fmt, ...) {
    if (c->st != SLM_OK) return 0;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsn(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->st = seterr(c->err, SLM_ERR_UNSUPPORTED, "json schema: %s (at %s)", msg, c->path[0] ? c->path : "the root");
    return 0;
}

static int js_rule(jschema *c, const jv *s, uint32_t *id);

/* A non-negative integer keyword (minLength, maxItems, ...). */
static int js_count(jschema *c, const jv *v, const char *kw, uint32_t *out) {
    if (!v) return 1;
    if (v->type != JV_NUM) return js_fail(c, "'%s' must be a number", kw);
    /* digits, then an optional all-zero fraction (no strtod: newlib's mallocs) */
    const char *q = v->s;
    uint64_t d = 0;
    for (; *q >= '0' && *q <= '9'; q++)
        if ((d = d * 10 + (uint64_t)(*q - '0')) > G_MAX_REPEAT) return js_fail(c, "'%s' %s is above the limit %u", kw, v->s, G_MAX_REPEAT);
    if (*q == '.')
        for (q++; *q == '0'; q++) {
        }
    if (q == v->s || *q) return js_fail(c, "'%s' must be a non-negative integer", kw);
    *out = (uint32_t)d;
    return 1;
}

/* Push/pop a path segment for messages. */
static size_t js_push(jschema *c, const char *seg, int idx) {
    size_t l = strlen(c->path);
    char t[64];
    if (idx >= 0) fmt_sn(t, sizeof t, "/%s/%d", seg, idx);
    else fmt_sn(t, sizeof t, "/%.60s", seg);
    if (l + strlen(t) < sizeof c->path) memcpy(c->path + l, t, strlen(t) + 1);
    return l;
}

static void js_pop(jschema *c, size_t l) { c->path[l] = 0; }

/* Body of a string schema. */
static int js_string(jschema *c, const jv *s, gsb *b) {
    const jv *fmt = j_get(s, "format");
    uint32_t lo = 0, hi = UINT32_MAX;
    const jv *mn = j_get(s, "minLength"), *mx = j_get(s, "maxLength");
    if (!js_count(c, mn, "minLength", &lo) || !js_count(c, mx, "maxLength", &hi)) return 0;
    if (mx && hi < lo) return js_fail(c, "maxLength %u is below minLength %u", (unsigned)hi, (unsigned)lo);
    if (fmt) {
        if (fmt->type != JV_STR) return js_fail(c, "'format' must be a string");
        if (mn || mx) return js_fail(c, "'format' together with minLength/maxLength is not supported");
        if (!strcmp(fmt->s, "date")) sb_str(b, "\"\\\"\" date \"\\\"\"");
        else if (!strcmp(fmt->s, "time")) sb_str(b, "\"\\\"\" time \"\\\"\"");
        else if (!strcmp(fmt->s, "date-time")) sb_str(b, "\"\\\"\" date \"T\" time \"\\\"\"");
        else if (!strcmp(fmt->s, "uuid")) sb_str(b, "\"\\\"\" uuid \"\\\"\"");
        else return js_fail(c, "unsupported string format '%.60s' (supported: date, time, date-time, uuid)", fmt->s);
        return 1;
    }
    if (!mn && !mx) sb_str(b, "string");
    else if (!mx) sb_fmt(b, "\"\\\"\" char{%u,} \"\\\"\"", (unsigned)lo);
    else sb_fmt(b, "\"\\\"\" char{%u,%u} \"\\\"\"", (unsigned)lo, (unsigned)hi);
    return 1;
}

static int js_array(jschema *c, const jv *s, gsb *b) {
    const jv *items = j_get(s, "items");
    uint32_t lo = 0, hi = UINT32_MAX, it = 0;
    const jv *mx = j_get(s, "maxItems");
    if (!js_count(c, j_get(s, "minItems"), "minItems", &lo) || !js_count(c, mx, "maxItems", &hi)) return 0;
    if (mx && hi < lo) return js_fail(c, "maxItems %u is below minItems %u", (unsigned)hi, (unsigned)lo);
    char item[32];
    if (items) {
        if (items->type == JV_ARR) return js_fail(c, "'items' as an array (tuple validation) is not supported");
        size_t l = js_push(c, "items", -1);
        int ok = js_rule(c, items, &it);
        js_pop(c, l);
        if (!ok) return 0;
        fmt_sn(item, sizeof item, "r%u", (unsigned)it);
    } else {
        fmt_sn(item, sizeof item, "value");
    }
    if (mx && hi == 0) {
        sb_str(b, "\"[\" ws \"]\"");
        return 1;
    }
    sb_str(b, "\"[\" ws ");
    if (lo == 0) sb_str(b, "( ");
    sb_fmt(b, "%s ws ", item);
    uint32_t rlo = lo ? lo - 1 : 0;
    if (!mx) sb_fmt(b, "( \",\" ws %s ws ){%u,}", item, (unsigned)rlo);
    else if (hi > 1) sb_fmt(b, "( \",\" ws %s ws ){%u,%u}", item, (unsigned)rlo, (unsigned)(hi - 1));
    if (lo == 0) sb_str(b, " )?");
    sb_str(b, " \"]\"");
    return 1;
}

static int js_object(jschema *c, const jv *s, gsb *b, uint32_t self) {
    const jv *props = j_get(s, "properties"), *req = j_get(s, "required"), *add = j_get(s, "additionalProperties");
    if (props && props->type != JV_OBJ) return js_fail(c, "'properties' must be an object");
    if (req && req->type != JV_ARR) return js_fail(c, "'required' must be an array");
    if (add && add->type != JV_TRUE && add->type != JV_FALSE && add->type != JV_OBJ)
        return js_fail(c, "'additionalProperties' must be a boolean or a schema");
    if (!props && !req && (!add || add->type == JV_TRUE)) {
        sb_str(b, "object");
        return 1;
    }
    uint32_t np = props ? props->n : 0;
    if (req)
        for (uint32_t k = 0; k < req->n; k++) {
            const jv *r = &req->kids[k];
            if (r->type != JV_STR) return js_fail(c, "'required' must list strings");
            if (!j_get(props, r->s))
                return js_fail(c, "required property '%.60s' is not in 'properties' (not supported)", r->s);
        }
    /* extra members: "key": value rule, or none */
    char extra[32] = "";
    if (add && add->type != JV_FALSE) {
        uint32_t ar;
        if (add->type == JV_TRUE) {
            fmt_sn(extra, sizeof extra, "value");
        } else {
            size_t l = js_push(c, "additionalProperties", -1);
            int ok = js_rule(c, add, &ar);
            js_pop(c, l);
            if (!ok) return 0;
            fmt_sn(extra, sizeof extra, "r%u", (unsigned)ar);
        }
    }
    /* kv rule per property */
    uint32_t base = c->n_rules;
    if (c->n_rules + 2 * np + 4 > G_MAX_RULES) return js_fail(c, "too many properties");
    uint32_t *kv = (uint32_t *)xalloc(c->a, ((size_t)np + 1) * sizeof(uint32_t));
    if (!kv) return c->st = seterr(c->err, SLM_ERR_NOMEM, "json schema: out of memory"), 0;
    (void)base;
    int ok = 1;
    for (uint32_t k = 0; k < np && ok; k++) {
        const jv *key = &props->kids[2 * k];
        uint32_t vr;
        size_t l = js_push(c, "properties", -1);
        size_t l2 = js_push(c, key->s, -1);
        ok = js_rule(c, &props->kids[2 * k + 1], &vr);
        js_pop(c, l2);
        js_pop(c, l);
        if (!ok) break;
        kv[k] = c->n_rules++;
        sb_fmt(&c->out, "r%u ::= \"", (unsigned)kv[k]);
        sb_json_lit(&c->out, key, 0);
        sb_fmt(&c->out, "\" ws \":\" ws r%u\n", (unsigned)vr);
    }
    if (ok) {
        /* S(k): members k.. with none written yet; T(k): after one was written */
        uint32_t S0 = c->n_rules, T0 = S0 + np + 1;
        c->n_rules += 2 * (np + 1);
        for (uint32_t k = 0; k <= np; k++) {
            int required = 0;
            if (k < np && req)
                for (uint32_t q = 0; q < req->n; q++)
                    if (!strcmp(req->kids[q].s, props->kids[2 * k].s)) required = 1;
            if (k == np) {
                if (extra[0]) {
                    sb_fmt(&c->out, "r%u ::= ( string ws \":\" ws %s ws ( \",\" ws string ws \":\" ws %s ws )* )?\n", (unsigned)(S0 + k),
                           extra, extra);
                    sb_fmt(&c->out, "r%u ::= ( \",\" ws string ws \":\" ws %s ws )*\n", (unsigned)(T0 + k), extra);
                } else {
                    sb_fmt(&c->out, "r%u ::= \"\"\nr%u ::= \"\"\n", (unsigned)(S0 + k), (unsigned)(T0 + k));
                }
                continue;
            }
            sb_fmt(&c->out, "r%u ::= r%u ws r%u", (unsigned)(S0 + k), (unsigned)kv[k], (unsigned)(T0 + k + 1));
            if (!required) sb_fmt(&c->out, " | r%u", (unsigned)(S0 + k + 1));
            sb_fmt(&c->out, "\nr%u ::= \",\" ws r%u ws r%u", (unsigned)(T0 + k), (unsigned)kv[k], (unsigned)(T0 + k + 1));
            if (!required) sb_fmt(&c->out, " | r%u", (unsigned)(T0 + k + 1));
            sb_str(&c->out, "\n");
        }
        sb_fmt(b, "\"{\" ws r%u \"}\"", (unsigned)S0);
    }
    (void)self;
    xfree(c->a, kv, ((size_t)np + 1) * sizeof(uint32_t));
    return ok;
}

/* Resolve a local $ref ("#", "#/$defs/x", "#/definitions/x", any JSON pointer). */
static const jv *js_resolve(jschema *c, const char *ref) {
    if (ref[0] != '#') return js_fail(c, "$ref '%.60s' is not local (only '#...' references are supported)", ref), NULL;
    const jv *v = c->root;
    const char *p = ref + 1;
    if (*p && *p != '/') return js_fail(c, "$ref '%.60s' is not a JSON pointer", ref), NULL;
    while (*p == '/') {
        p++;
        char seg[128];
        size_t k = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~' && (*p == '0' || *p == '1')) ch = *p++ == '0' ? '~' : '/';
            if (k + 1 >= sizeof seg) return js_fail(c, "$ref '%.60s': segment too long", ref), NULL;
            seg[k++] = ch;
        }
        seg[k] = 0;
        if (v->type == JV_OBJ) {
            v = j_get(v, seg);
        } else if (v->type == JV_ARR) {
            uint64_t ix = 0;
            const char *q = seg;
            for (; *q >= '0' && *q <= '9' && ix <= UINT32_MAX; q++) ix = ix * 10 + (uint64_t)(*q - '0');
            v = (*seg && !*q && ix < v->n) ? &v->kids[ix] : NULL;
        } else {
            v = NULL;
        }
        if (!v) return js_fail(c, "$ref '%.60s' points to nothing", ref), NULL;
    }
    return v;
}

/* Keywords: what the converter uses, and annotations it may ignore. */
static const char *const JS_KNOWN[] = {"type", "properties", "required", "additionalProperties", "enum", "const",
                                       "items", "minItems", "maxItems", "anyOf", "oneOf", "$ref", "format",
                                       "minLength", "maxLength", "$schema", "$id", "title", "description",
                                       "default", "examples", "$comment", "definitions", "$defs", "readOnly",
                                       "writeOnly", "deprecated"};

/* Convert schema s into a new rule; *id is its number (rule "r<id>"). */
static int js_rule(jschema *c, const jv *s, uint32_t *id) {
    if (c->st != SLM_OK) return 0;
    if (++c->depth > 2 * J_MAX_DEPTH) return js_fail(c, "schema nested too deeply");
    if (c->n_rules >= G_MAX_RULES / 2) return js_fail(c, "schema too large");
    uint32_t me = c->n_rules++;
    *id = me;
    gsb b;
    memset(&b, 0, sizeof b);
    b.a = c->a;
    int ok = 1;
    if (s->type == JV_TRUE) {
        sb_str(&b, "value");
    } else if (s->type == JV_FALSE) {
        ok = js_fail(c, "the schema false allows no value");
    } else if (s->type != JV_OBJ) {
        ok = js_fail(c, "a schema must be an object or a boolean");
    } else {
        for (uint32_t k = 0; k < s->n && ok; k++) {
            const char *kw = s->kids[2 * k].s;
            int known = 0;
            for (size_t q = 0; q < sizeof JS_KNOWN / sizeof JS_KNOWN[0]; q++) known |= !strcmp(kw, JS_KNOWN[q]);
            if (!known) ok = js_fail(c, "unsupported keyword '%.60s'", kw);
        }
        const jv *ref = j_get(s, "$ref"), *cnst = j_get(s, "const"), *en = j_get(s, "enum");
        const jv *any = j_get(s, "anyOf"), *one = j_get(s, "oneOf"), *ty = j_get(s, "type");
        if (!ok) {
        } else if (ref) {
            static const char *const alone[] = {"type", "properties", "enum", "const", "items", "anyOf", "oneOf", "format"};
            for (size_t q = 0; q < sizeof alone / sizeof alone[0] && ok; q++)
                if (j_get(s, alone[q])) ok = js_fail(c, "'%s' next to '$ref' is not supported", alone[q]);
            if (ok && ref->type != JV_STR) ok = js_fail(c, "'$ref' must be a string");
            if (ok) {
                uint32_t q = 0;
                while (q < c->n_refs && strcmp(c->ref_name[q], ref->s)) q++;
                if (q == c->n_refs) {
                    if (c->n_refs >= JS_MAX_REFS) {
                        ok = js_fail(c, "more than %d distinct $ref targets", JS_MAX_REFS);
                    } else {
                        const jv *t = js_resolve(c, ref->s);
                        ok = t != NULL;
                        if (ok) {
                            /* reserve the target's rule number first: recursion ends there */
                            c->ref_name[q] = ref->s;
                            c->ref_rule[q] = c->n_rules;
                            c->n_refs++;
                            char saved[sizeof c->path];
                            memcpy(saved, c->path, sizeof saved);
                            fmt_sn(c->path, sizeof c->path, "%.150s", ref->s + 1);
                            uint32_t tr;
                            ok = js_rule(c, t, &tr);
                            memcpy(c->path, saved, sizeof saved);
                        }
                    }
                }
                if (ok) sb_fmt(&b, "r%u", (unsigned)c->ref_rule[q]);
            }
        } else if (cnst) {
            sb_str(&b, "\"");
            sb_json_lit(&b, cnst, 0);
            sb_str(&b, "\"");
        } else if (en) {
            if (en->type != JV_ARR || en->n == 0) ok = js_fail(c, "'enum' must be a non-empty array");
            for (uint32_t k = 0; ok && k < en->n; k++) {
                if (k) sb_str(&b, " | ");
                sb_str(&b, "\"");
                sb_json_lit(&b, &en->kids[k], 0);
                sb_str(&b, "\"");
            }
        } else if (any || one) {
            const jv *alts = any ? any : one;
            if (any && one) ok = js_fail(c, "'anyOf' and 'oneOf' together are not supported");
            else if (alts->type != JV_ARR || alts->n == 0) ok = js_fail(c, "'%s' must be a non-empty array", any ? "anyOf" : "oneOf");
            else if (ty) ok = js_fail(c, "'type' next to '%s' is not supported", any ? "anyOf" : "oneOf");
            for (uint32_t k = 0; ok && k < alts->n; k++) {
                uint32_t r;
                size_t l = js_push(c, any ? "anyOf" : "oneOf", (int)k);
                ok = js_rule(c, &alts->kids[k], &r);
                js_pop(c, l);
                if (ok) sb_fmt(&b, "%sr%u", k ? " | " : "", (unsigned)r);
            }
        } else {
            /* types: listed, or inferred from the keywords */
            const char *types[8];
            int nt = 0;
            if (ty && ty->type == JV_STR) {
                types[nt++] = ty->s;
            } else if (ty && ty->type == JV_ARR && ty->n > 0 && ty->n <= 7) {
                for (uint32_t k = 0; k < ty->n && ok; k++) {
                    if (ty->kids[k].type != JV_STR) ok = js_fail(c, "'type' must name types");
                    else types[nt++] = ty->kids[k].s;
                }
            } else if (ty) {
                ok = js_fail(c, "'type' must be a string or a short array of strings");
            } else if (j_get(s, "properties") || j_get(s, "required") || j_get(s, "additionalProperties")) {
                types[nt++] = "object";
            } else if (j_get(s, "items") || j_get(s, "minItems") || j_get(s, "maxItems")) {
                types[nt++] = "array";
            } else if (j_get(s, "format") || j_get(s, "minLength") || j_get(s, "maxLength")) {
                types[nt++] = "string";
            } else {
                sb_str(&b, "value");
            }
            for (int k = 0; k < nt && ok; k++) {
                if (k) sb_str(&b, " | ");
                const char *t = types[k];
                if (!strcmp(t, "string")) ok = js_string(c, s, &b);
                else if (!strcmp(t, "number")) sb_str(&b, "number");
                else if (!strcmp(t, "integer")) sb_str(&b, "integer");
                else if (!strcmp(t, "boolean")) sb_str(&b, "boolean");
                else if (!strcmp(t, "null")) sb_str(&b, "null");
                else if (!strcmp(t, "array")) ok = js_array(c, s, &b);
                else if (!strcmp(t, "object")) ok = js_object(c, s, &b, me);
                else ok = js_fail(c, "unknown type '%.60s'", t);
            }
        }
    }
    if (ok && c->st == SLM_OK) {
        sb_fmt(&c->out, "r%u ::= ", (unsigned)me);
        sb_put(&c->out, b.p ? b.p : "", b.n);
        sb_str(&c->out, "\n");
        if (b.bad || c->out.bad) ok = js_fail(c, "the grammar would exceed %u bytes", G_MAX_TEXT);
    }
    sb_free(&b);
    c->depth--;
    return ok && c->st == SLM_OK;
}

/* The rules every schema grammar may use. */
static const char G_SCHEMA_BASE[] =
    "date    ::= [0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )\n"
    "time    ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )? "
    "( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )\n"
    "uuid    ::= hex{8} \"-\" hex{4} \"-\" hex{4} \"-\" hex{4} \"-\" hex{12}\n"
    "hex     ::= [0-9a-f]\n";

static slm_status json_schema_convert(const allocator *a, const char *schema, size_t len, gsb *out, slm_error *err) {
    jparse p;
    jv root;
    memset(out, 0, sizeof *out);
    out->a = a;
    if (!j_parse(&p, a, schema, len, "json schema", err, &root)) {
        j_free(&p);
        return p.st;
    }
    jschema *c = (jschema *)xcalloc(a, 1, sizeof *c);
    if (!c) {
        j_free(&p);
        return seterr(err, SLM_ERR_NOMEM, "json schema: out of memory");
    }
    c->a = a;
    c->root = &root;
    c->out.a = a;
    c->err = err;
    c->st = SLM_OK;
    uint32_t r;
    if (js_rule(c, &root, &r)) {
        sb_fmt(&c->out, "root ::= r%u\n", (unsigned)r);
        /* the JSON rules, except its root */
        const char *j = strchr(G_JSON, '\n') + 1;
        sb_str(&c->out, j);
        sb_str(&c->out, G_SCHEMA_BASE);
        if (c->out.bad) js_fail(c, "the grammar would exceed %u bytes", G_MAX_TEXT);
    }
    slm_status st = c->st;
    *out = c->out;
    if (st == SLM_OK) { /* a $ref loop that reaches no value fails here, with a schema-level message */
        slm_grammar *g = NULL;
        slm_error e2;
        if (grammar_compile(a, out->p, out->n, NULL, &g, &e2) != SLM_OK)
            st = seterr(err, e2.status == SLM_ERR_NOMEM ? SLM_ERR_NOMEM : SLM_ERR_UNSUPPORTED,
                        "json schema: its $ref cycles admit no finite value, or loop without any text (%.150s)",
                        e2.message);
        grammar_free_(g);
    }
    if (st != SLM_OK) sb_free(out);
    xfree(a, c, sizeof *c);
    j_free(&p);
    return st;
}

slm_status slm_json_schema_to_grammar(const char *schema, size_t len, char *buf, size_t size, size_t *out_len,
                                      slm_error *err) {
    clearerr_(err);
    if (out_len) *out_len = 0;
    if (!schema && len) return seterr(err, SLM_ERR_INVALID_ARG, "json schema: text is NULL");
    allocator a;
    alloc_init(&a, NULL);
    gsb g;
    slm_status st = json_schema_convert(&a, schema ? schema : "", len, &g, err);
    if (st != SLM_OK) return st;
    if (out_len) *out_len = g.n;
    if (g.n + 1 > size || !buf) {
        sb_free(&g);
        return seterr(err, SLM_ERR_BUFFER, "json schema: the grammar needs %zu bytes", g.n + 1);
    }
    memcpy(buf, g.p, g.n + 1);
    sb_free(&g);
    return SLM_OK;
}

static int32_t g_n_vocab(const slm_grammar *g) { return g->n_vocab; }

int slm_sampler_grammar_state(const slm_sampler *smp) {
    if (!smp || !smp->gs) return SLM_GRAMMAR_NONE;
    const gstate *s = smp->gs;
    if (s->failed) return SLM_GRAMMAR_FAILED;
    if (s->ended || (s->acc && s->n_set == 0)) return SLM_GRAMMAR_DONE;
    return s->acc ? SLM_GRAMMAR_COMPLETE : SLM_GRAMMAR_ACTIVE;
}

/* ========================================================================== */
/* 12. Generate                                                               */
/* ========================================================================== */
/*
 * prompt -> tokens -> decode -> loop { sample, stop checks, stream text,
 * decode the token }. Text goes through the streaming detokenizer (whole
 * UTF-8 characters only), then through a hold-back buffer: the longest tail
 * that could still grow into a stop string is kept until it cannot, so a
 * stop string is never emitted, not even in part.
 */

void slm_generate_params_init(slm_generate_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->max_tokens = 256;
    p->add_special = 1;
    slm_sampler_params_init(&p->sampler);
}

typedef struct gen_text {
    const slm_generate_params *p;
    const allocator *a;
    char *buf;        /* held-back text */
    size_t n, cap;
    size_t max_stop;  /* longest stop string */
    int stop;         /* SLM_STOP_STRING / SLM_STOP_CALLBACK once hit */
} gen_text;

static void gen_emit(gen_text *g, const char *s, size_t n) {
    if (n == 0 || g->stop || !g->p->on_text) return;
    if (g->p->on_text(g->p->user, s, n) != 0) g->stop = SLM_STOP_CALLBACK;
}

/* Add text; emit what can no longer be part of a stop string. */
static int gen_add(gen_text *g, const char *s, size_t n) {
    if (g->stop) return 1;
    if (g->max_stop == 0) {
        gen_emit(g, s, n);
        return 1;
    }
    if (g->n + n > g->cap) {
        size_t nc = (g->n + n) * 2 + 64;
        char *nb = (char *)xalloc(g->a, nc);
        if (!nb) return 0;
        if (g->n) memcpy(nb, g->buf, g->n);
        xfree(g->a, g->buf, g->cap);
        g->buf = nb;
        g->cap = nc;
    }
    memcpy(g->buf + g->n, s, n);
    g->n += n;
    /* the earliest complete stop string ends the text */
    size_t first = SIZE_MAX;
    for (int32_t i = 0; i < g->p->n_stop; i++) {
        const char *st = g->p->stop[i];
        size_t sl = st ? strlen(st) : 0;
        size_t at = sl ? find_bytes(g->buf, 0, g->n, st, sl) : SIZE_MAX;
        if (at < first) first = at;
    }
    if (first != SIZE_MAX) {
        gen_emit(g, g->buf, first);
        if (!g->stop) g->stop = SLM_STOP_STRING;
        g->n = 0;
        return 1;
    }
    /* hold back the longest tail that is a proper prefix of a stop string */
    size_t keep = 0;
    for (size_t k = SLM_MIN(g->n, g->max_stop - 1); k > 0 && !keep; k--)
        for (int32_t i = 0; i < g->p->n_stop; i++) {
            const char *st = g->p->stop[i];
            if (st && strlen(st) > k && memcmp(g->buf + g->n - k, st, k) == 0) {
                keep = k;
                break;
            }
        }
    gen_emit(g, g->buf, g->n - keep);
    memmove(g->buf, g->buf + g->n - keep, keep);
    g->n = keep;
    return 1;
}

/* The prompt's ids: the caller's, or the text tokenized into an allocation
   of *bytes (0: nothing to free); *n = 0 for an empty prompt. */
static slm_status gen_prompt_ids(const slm_session *s, const char *prompt, size_t prompt_len, const int32_t *prompt_ids,
                                 int32_t n_prompt_ids, const slm_generate_params *params, int32_t **ids, int32_t *n,
                                 size_t *bytes, slm_error *err) {
    const slm_model *m = s->m;
    *ids = NULL;
    *n = 0;
    *bytes = 0;
    if (n_prompt_ids > 0) {
        *ids = (int32_t *)prompt_ids;
        *n = n_prompt_ids;
        return SLM_OK;
    }
    if (!(prompt_len > 0 || (params->add_special && s->pos == 0 && slm_vocab_add_bos(m)))) return SLM_OK;
    const int add = params->add_special && s->pos == 0;
    int32_t k = 0;
    slm_status st = slm_tokenize(m, prompt ? prompt : "", prompt_len, add, params->parse_special, NULL, 0, &k, err);
    if (st != SLM_OK && st != SLM_ERR_BUFFER) return st;
    const size_t nb = (size_t)(k ? k : 1) * sizeof(int32_t);
    int32_t *p = (int32_t *)xalloc(&s->a, nb);
    if (!p) return seterr(err, SLM_ERR_NOMEM, "out of memory for %d prompt tokens", (int)k);
    st = slm_tokenize(m, prompt ? prompt : "", prompt_len, add, params->parse_special, p, k, &k, err);
    if (st != SLM_OK) {
        xfree(&s->a, p, nb);
        return st;
    }
    *ids = p;
    *n = k;
    *bytes = nb;
    return SLM_OK;
}

/* The generation loop: sample, check the stops, stream the text, decode the
   token; then the text held back, if no stop string came. chunk [chunk_cap]
   holds one token's text. */
static slm_status gen_loop(slm_session *s, const slm_generate_params *params, slm_sampler *smp, gen_text *g,
                           char *chunk, size_t chunk_cap, int32_t *ngen_out, int *reason_out, slm_error *err) {
    const slm_model *m = s->m;
    slm_text_stream ts;
    slm_text_stream_init(&ts, m, params->emit_special ? SLM_STREAM_SPECIAL : 0);
    slm_status st = SLM_OK;
    int reason = SLM_STOP_NONE;
    int32_t ngen = 0;
    while (st == SLM_OK) {
        if (params->max_tokens > 0 && ngen >= params->max_tokens) {
            reason = SLM_STOP_MAX_TOKENS;
            break;
        }
        if (smp->gs && slm_sampler_grammar_state(smp) >= SLM_GRAMMAR_DONE) {
            reason = SLM_STOP_GRAMMAR; /* complete, and nothing else may follow */
            break;
        }
        int32_t tok = slm_sampler_sample(smp, slm_session_logits(s, -1));
        if (tok < 0) { /* the grammar allows no token (its limits dropped every parse) */
            reason = SLM_STOP_GRAMMAR;
            break;
        }
        if (slm_token_is_eog(m, tok)) {
            /* into the session too, so that a conversation can go on */
            if (s->pos < s->n_ctx) st = slm_decode(s, &tok, 1, err);
            reason = SLM_STOP_EOG;
            break;
        }
        slm_sampler_accept(smp, tok);
        if (params->tokens_out && ngen < params->tokens_cap) params->tokens_out[ngen] = tok;
        ngen++;
        size_t cl = 0;
        if (slm_text_stream_push(&ts, tok, chunk, chunk_cap, &cl) == SLM_OK && !gen_add(g, chunk, cl))
            st = seterr(err, SLM_ERR_NOMEM, "out of memory");
        if (s->pos >= s->n_ctx) {
            reason = g->stop ? g->stop : SLM_STOP_CONTEXT_FULL;
            break;
        }
        if (st == SLM_OK) st = slm_decode(s, &tok, 1, err);
        if (g->stop) {
            reason = g->stop;
            break;
        }
    }
    if (st == SLM_OK && !g->stop) { /* what was held back is text after all */
        size_t fl = slm_text_stream_flush(&ts, chunk, chunk_cap);
        gen_emit(g, g->buf, g->n);
        gen_emit(g, chunk, fl);
        if (g->stop == SLM_STOP_CALLBACK) reason = SLM_STOP_CALLBACK;
    }
    *ngen_out = ngen;
    *reason_out = reason;
    return st;
}

/* Checked gates: the arguments, the prompt (tokenized, decoded), a sampler
   that has seen the prompt, the loop; one cleanup path. */
slm_status slm_generate(slm_session *s, const char *prompt, size_t prompt_len, const int32_t *prompt_ids,
                        int32_t n_prompt_ids, const slm_generate_params *params, slm_generate_result *res,
                        slm_error *err) {
    clearerr_(err);
    slm_generate_result r;
    memset(&r, 0, sizeof r);
    if (res) *res = r;
    if (!s) return seterr(err, SLM_ERR_INVALID_ARG, "session is NULL");
    slm_generate_params dp;
    if (!params) {
        slm_generate_params_init(&dp);
        params = &dp;
    }
    if (n_prompt_ids < 0 || (n_prompt_ids > 0 && !prompt_ids) || (!prompt && prompt_len) ||
        (params->n_stop > 0 && !params->stop) || params->n_stop < 0)
        return seterr(err, SLM_ERR_INVALID_ARG, "invalid prompt or stop-string arguments");
    const slm_model *m = s->m;
    const allocator *a = &s->a;
    r.load_ms = m->load_ms;
    double t0 = now_ms();

    /* the prompt, into the session and the sampler's history */
    int32_t *ids = NULL, n = 0;
    size_t ids_bytes = 0;
    slm_status st = gen_prompt_ids(s, prompt, prompt_len, prompt_ids, n_prompt_ids, params, &ids, &n, &ids_bytes, err);
    if (st != SLM_OK) return st;
    if (n > 0) st = slm_decode(s, ids, n, err); /* refuses, unchanged, what does not fit */
    else if (!slm_session_logits(s, -1)) st = seterr(err, SLM_ERR_INVALID_ARG, "empty prompt and no logits to continue from");
    double t1 = now_ms();
    slm_sampler *smp = NULL;
    if (st == SLM_OK) st = sampler_new(a, &params->sampler, m->n_vocab, &smp, err);
    if (st == SLM_OK)
        for (int32_t i = 0; i < n; i++) sampler_record(smp, ids[i]);
    if (ids_bytes) xfree(a, ids, ids_bytes);
    if (st != SLM_OK) return st;
    r.n_prompt = n;
    r.prompt_ms = t1 - t0;
    r.prompt_tps = n > 0 && r.prompt_ms > 0 ? n * 1e3 / r.prompt_ms : 0;

    /* the generated text, held back while it could become a stop string */
    gen_text g;
    memset(&g, 0, sizeof g);
    g.p = params;
    g.a = a;
    for (int32_t i = 0; i < params->n_stop; i++)
        if (params->stop[i]) g.max_stop = SLM_MAX(g.max_stop, strlen(params->stop[i]));
    const size_t chunk_cap = (size_t)slm_vocab_max_piece(m) + 8;
    char *chunk = (char *)xalloc(a, chunk_cap);
    int reason = SLM_STOP_NONE;
    int32_t ngen = 0;
    if (!chunk) st = seterr(err, SLM_ERR_NOMEM, "out of memory");
    else st = gen_loop(s, params, smp, &g, chunk, chunk_cap, &ngen, &reason, err);
    xfree(a, chunk, chunk_cap);
    xfree(a, g.buf, g.cap);
    slm_sampler_free(smp);

    r.stop_reason = reason;
    r.n_generated = ngen;
    r.gen_ms = now_ms() - t1;
    r.gen_tps = ngen > 0 && r.gen_ms > 0 ? ngen * 1e3 / r.gen_ms : 0;
    if (res) *res = r;
    return st;
}

/* ========================================================================== */
/* 12b. Embeddings                                                            */
/* ========================================================================== */
/*
 * slm_embed: each text is tokenized into the session's own id buffer, run
 * from position 0 with the forward pass in embedding mode (the final hidden
 * rows stay in the session's xb scratch, chunk by chunk; an encoder's
 * sequence is one chunk), and pooled as it goes: MEAN sums the rows, CLS
 * keeps the first, LAST the last, NONE copies every row out. Then the
 * dense layers (gemma-embedding) and the optional L2 normalisation. No
 * allocation: everything lives in the session (sized by its plan).
 */

int32_t slm_model_pooling(const slm_model *m) { return m ? m->pooling : SLM_POOLING_NONE; }
int32_t slm_model_n_embd_out(const slm_model *m) { return m && !m->vocab_only ? m->n_embd_out : 0; }
int slm_model_is_encoder(const slm_model *m) { return m && m->enc && m->enc->bidir; }

static const char *const POOLING_NAMES[] = {"none", "mean", "cls", "last"};

int32_t slm_pooling_from_name(const char *name) {
    if (!name) return -2;
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, POOLING_NAMES[i])) return i;
    return -2;
}

const char *slm_pooling_name(int32_t p) { return p >= 0 && p < 4 ? POOLING_NAMES[p] : NULL; }

void slm_embed_params_init(slm_embed_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->pooling = SLM_POOLING_UNSPECIFIED;
    p->add_special = 1;
    p->parse_special = 1;
}

/* L2 normalisation as llama.cpp's common_embd_normalize (mode 2): the
   squared norm summed in double, its inverse rounded to float. */
static void embd_normalize(float *v, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)v[i] * v[i];
    if (sum <= 0) return;
    const float inv = (float)(1.0 / sqrt(sum));
    for (int i = 0; i < n; i++) v[i] *= inv;
}

float slm_cosine(const float *a, const float *b, int32_t n) {
    if (!a || !b || n <= 0) return 0.0f;
    double ab = 0, aa = 0, bb = 0;
    for (int32_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    if (aa == 0 && bb == 0) return 1.0f;
    if (aa == 0 || bb == 0) return 0.0f;
    return (float)(ab / (sqrt(aa) * sqrt(bb)));
}

/* One row through dense_2 then dense_3 (gemma-embedding), in place in
   `row` (n_embd_out floats out); mid: dense_2's outputs. One thread. */
static void embd_dense(slm_session *s, const float *in, float *mid, float *out) {
    const slm_model *m = s->m;
    size_t rb;
    const uint8_t *a = act_for(s, &m->dense2, in, m->dense2.n_in, 1, 0, 0, 1, &rb);
    matmul(&m->dense2, a, rb, 1, mid, m->dense2.n_out, 0, 1);
    a = act_for(s, &m->dense3, mid, m->dense3.n_in, 1, 0, 0, 1, &rb);
    matmul(&m->dense3, a, rb, 1, out, m->dense3.n_out, 0, 1);
}

/* Pool one sequence into out (rows for NONE); the caller checked sizes. */
static slm_status embed_seq(slm_session *s, const int32_t *tok, int n, int pooling, int normalize, float *out,
                            slm_error *err) {
    const slm_model *m = s->m;
    const int E = m->n_embd, EO = m->n_embd_out;
    for (int i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= m->n_vocab)
            return seterr(err, SLM_ERR_INVALID_ARG, "token #%d has id %d, outside the vocabulary [0, %d)", i, (int)tok[i],
                          m->n_vocab);
    if (n > s->n_ctx)
        return seterr(err, SLM_ERR_CONTEXT_FULL, "%d tokens exceed the session's context of %d", n, s->n_ctx);
    float *sum = s->emb, *mid = s->emb + SLM_MAX(E, EO); /* [E] pooled row, [dense mid] */
    for (int i = 0; i < E; i++) sum[i] = 0.0f;
    s->embd_mode = 1;
    s->pos = 0;
    s->enc_end = n; /* encoders: n <= n_batch = n_ctx, one chunk */
    if (m->n_rec) { /* recurrent layers start from a zero state */
        memset(s->rs[s->rs_cur], 0, m->rs_floats * sizeof(float));
        memcpy(s->toks, tok, (size_t)n * sizeof(int32_t));
    }
    for (int c = 0; c < n; c += s->n_batch) {
        const int nc = SLM_MIN(s->n_batch, n - c);
        if (m->n_rec) { /* as slm_decode: the first chunk reads the current state */
            s->rs_dst = s->rs[s->rs_cur ^ 1];
            s->rs_src = c == 0 ? s->rs[s->rs_cur] : s->rs_dst;
        }
        run_forward(s, tok + c, nc, c, nc, NULL);
        for (int t = 0; t < nc; t++) {
            const float *row = s->xb + (size_t)t * E;
            if (pooling == SLM_POOLING_NONE) memcpy(out + (size_t)(c + t) * EO, row, (size_t)E * sizeof(float));
            else if (pooling == SLM_POOLING_MEAN)
                for (int i = 0; i < E; i++) sum[i] += row[i];
            else if ((pooling == SLM_POOLING_CLS && c + t == 0) || (pooling == SLM_POOLING_LAST && c + t == n - 1))
                memcpy(sum, row, (size_t)E * sizeof(float));
        }
    }
    s->embd_mode = 0;
    if (m->n_rec) { /* the zero state at 0 stays as the checkpoint */
        s->rs_cur ^= 1;
        s->ckpt_pos = 0;
        s->ckpt_ok = 1;
    }
    s->pos = n;
    s->last_n = 0;
    s->logits_rows = 0;
    const int rows = pooling == SLM_POOLING_NONE ? n : 1;
    if (pooling == SLM_POOLING_MEAN) {
        const float inv = 1.0f / (float)n;
        for (int i = 0; i < E; i++) sum[i] *= inv;
    }
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * EO;
        const float *src = pooling == SLM_POOLING_NONE ? o : sum;
        if (m->dense2.data) {
            if (src == o) { /* the row is both input and output: keep a copy */
                memcpy(sum, o, (size_t)E * sizeof(float));
                src = sum;
            }
            embd_dense(s, src, mid, o);
        } else if (src != o) {
            memcpy(o, src, (size_t)EO * sizeof(float));
        }
        if (normalize) embd_normalize(o, EO);
    }
    return SLM_OK;
}

static slm_status embed_check(slm_session *s, const slm_embed_params **pp, slm_embed_params *dp, int *pooling,
                              slm_error *err) {
    if (!*pp) { /* NULL: the defaults, in *dp */
        slm_embed_params_init(dp);
        *pp = dp;
    }
    const slm_embed_params *p = *pp;
    if (!s) return seterr(err, SLM_ERR_INVALID_ARG, "session is NULL");
    *pooling = p->pooling == SLM_POOLING_UNSPECIFIED ? s->m->pooling : p->pooling;
    if (*pooling < SLM_POOLING_NONE || *pooling > SLM_POOLING_LAST)
        return seterr(err, SLM_ERR_INVALID_ARG, "pooling %d is not one of NONE, MEAN, CLS, LAST", (int)p->pooling);
    return SLM_OK;
}

slm_status slm_embed_tokens(slm_session *s, const int32_t *tokens, int32_t n, const slm_embed_params *params,
                            float *out, size_t cap, slm_error *err) {
    clearerr_(err);
    slm_embed_params dp;
    int pooling = SLM_POOLING_NONE;
    slm_status st = embed_check(s, &params, &dp, &pooling, err);
    if (st != SLM_OK) return st;
    if (n <= 0 || !tokens) return seterr(err, SLM_ERR_INVALID_ARG, "no tokens to embed");
    const size_t need = (size_t)(pooling == SLM_POOLING_NONE ? n : 1) * (size_t)s->m->n_embd_out;
    if (!out || cap < need) return seterr(err, SLM_ERR_BUFFER, "the output needs %zu floats, it holds %zu", need, out ? cap : 0);
    return embed_seq(s, tokens, n, pooling, params->normalize, out, err);
}

slm_status slm_embed(slm_session *s, const char *const *texts, const size_t *lens, int32_t n_texts,
                     const slm_embed_params *params, float *out, size_t cap, int32_t *n_rows, slm_error *err) {
    clearerr_(err);
    slm_embed_params dp;
    int pooling = SLM_POOLING_NONE;
    slm_status st = embed_check(s, &params, &dp, &pooling, err);
    if (st != SLM_OK) return st;
    if (n_texts < 0 || (n_texts > 0 && !texts)) return seterr(err, SLM_ERR_INVALID_ARG, "texts is NULL or n_texts negative");
    const size_t EO = (size_t)s->m->n_embd_out;
    size_t used = 0;
    for (int32_t i = 0; i < n_texts; i++) {
        if (!texts[i]) return seterr(err, SLM_ERR_INVALID_ARG, "text %d is NULL", (int)i);
        const size_t len = lens ? lens[i] : strlen(texts[i]);
        int32_t n = 0;
        st = slm_tokenize(s->m, texts[i], len, params->add_special, params->parse_special, s->emb_tok, s->n_ctx, &n, err);
        if (st == SLM_ERR_BUFFER)
            return seterr(err, SLM_ERR_CONTEXT_FULL, "text %d has %d tokens, more than the session's context of %d", (int)i,
                          (int)n, s->n_ctx);
        if (st != SLM_OK) return st;
        if (n == 0) return seterr(err, SLM_ERR_INVALID_ARG, "text %d gives no tokens", (int)i);
        const size_t rows = pooling == SLM_POOLING_NONE ? (size_t)n : 1;
        if (!out || cap < used + rows * EO)
            return seterr(err, SLM_ERR_BUFFER, "the output (%zu floats) is too small for text %d", out ? cap : 0, (int)i);
        if ((st = embed_seq(s, s->emb_tok, n, pooling, params->normalize, out + used, err)) != SLM_OK) return st;
        used += rows * EO;
        if (n_rows) n_rows[i] = (int32_t)rows;
    }
    return SLM_OK;
}

/* ========================================================================== */
/* A. Message formatting (appendix)                                           */
/* ========================================================================== */

/* --- message formatting -----------------------------------------------------
   Messages (errors, logs, slm_meta_format) are formatted with vsnprintf, or,
   with SLM_NO_STDIO, with the small formatter below. newlib's vsnprintf
   works without files, but it links all of printf, its %g goes through
   dtoa, which takes memory from malloc behind the allocator's back (not
   what an MCU build with all memory in one arena wants), and a newlib built
   without C99 formats (Debian's arm-none-eabi) prints %zu as "zu". This
   one is checked against the C library's in the tests. The formatter has
   what slm's messages use: flags '-' '0', width and precision (also '*'),
   lengths l ll z, and d i u x X c s f e g %. Floats are printed to about 15
   significant digits (messages, not round trips). */

typedef struct fmt_out {
    char *buf;
    size_t size, n;
} fmt_out;

static void fmt_put(fmt_out *o, char c) {
    if (o->n + 1 < o->size) o->buf[o->n] = c;
    o->n++;
}

static void fmt_pad(fmt_out *o, char c, int n) {
    while (n-- > 0) fmt_put(o, c);
}

/* Digits of v in base 10 or 16 into tmp (reversed); returns the count. */
static int fmt_digits(char *tmp, unsigned long long v, int base, int upper) {
    const char *dig = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0;
    do {
        tmp[n++] = dig[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    return n;
}

/* Emit a converted field: sign/prefix, then body, padded to width. */
static void fmt_field(fmt_out *o, const char *sign, const char *body, int len, int width, int left, int zero) {
    int sl = (int)strlen(sign), pad = width - sl - len;
    if (!left && !zero) fmt_pad(o, ' ', pad);
    for (int i = 0; i < sl; i++) fmt_put(o, sign[i]);
    if (!left && zero) fmt_pad(o, '0', pad);
    for (int i = 0; i < len; i++) fmt_put(o, body[i]);
    if (left) fmt_pad(o, ' ', pad);
}

/* Round to an integer, half to even (as printf does on exact halves). */
static unsigned long long fmt_round(double x) {
    unsigned long long m = (unsigned long long)x;
    double f = x - (double)m;
    return m + (f > 0.5 || (f == 0.5 && (m & 1)));
}

/* A finite v >= 0 as %f, %e or %g with precision prec into out (>= 64 bytes
   plus the precision); returns the length. */
static int fmt_float(char *out, double v, int prec, char conv) {
    char dig[32];
    int n = 0, e = 0;
    if (prec > 17) prec = 17;
    if (conv == 'g' && prec == 0) prec = 1;
    /* P significant digits of v as an integer and v's decimal exponent e */
    int P = conv == 'e' ? prec + 1 : conv == 'g' ? prec : 0;
    unsigned long long m = 0;
    if (v != 0) {
        double t = v;
        while (t >= 10) t /= 10, e++;
        while (t < 1) t *= 10, e--;
    }
    if (conv == 'f' || (conv == 'g' && v == 0)) {
        if (conv == 'g') {
            out[0] = '0';
            return 1;
        }
        if (v >= 1e17) return fmt_float(out, v, prec, 'e');
        double sc = v;
        for (int i = 0; i < prec; i++) sc *= 10;
        if (sc >= 1.8e19) return fmt_float(out, v, prec, 'e');
        m = fmt_round(sc);
        int nd = fmt_digits(dig, m, 10, 0);
        for (; nd <= prec; nd++) dig[nd] = '0';
        for (int i = nd - 1; i >= prec; i--) out[n++] = dig[i];
        if (prec) out[n++] = '.';
        for (int i = prec - 1; i >= 0; i--) out[n++] = dig[i];
        return n;
    }
    /* m = round(v * 10^(P-1-e)), with one more digit when rounding carries */
    double sc = v;
    int k = P - 1 - e;
    for (int i = 0; i < k; i++) sc *= 10;
    for (int i = 0; i > k; i--) sc /= 10;
    m = fmt_round(sc);
    unsigned long long lim = 1;
    for (int i = 0; i < P; i++) lim *= 10;
    if (m >= lim) m /= 10, e++;
    int nd = fmt_digits(dig, m, 10, 0);
    for (; nd < P; nd++) dig[nd] = '0'; /* v == 0 */
    if (conv == 'g' && e >= -4 && e < P) {
        /* fixed notation with P significant digits, trailing zeros dropped */
        int frac = P - 1 - e, last = 0;
        while (last < frac && dig[last] == '0') last++;
        if (e < 0) {
            out[n++] = '0';
            out[n++] = '.';
            for (int i = 0; i < -e - 1; i++) out[n++] = '0';
            for (int i = nd - 1; i >= last; i--) out[n++] = dig[i];
        } else {
            for (int i = nd - 1; i >= frac; i--) out[n++] = dig[i];
            if (last < frac) {
                out[n++] = '.';
                for (int i = frac - 1; i >= last; i--) out[n++] = dig[i];
            }
        }
        return n;
    }
    int last = 0;
    if (conv == 'g')
        while (last < nd - 1 && dig[last] == '0') last++;
    out[n++] = dig[nd - 1];
    if (last < nd - 1) {
        out[n++] = '.';
        for (int i = nd - 2; i >= last; i--) out[n++] = dig[i];
    }
    out[n++] = 'e';
    out[n++] = e < 0 ? '-' : '+';
    int ae = e < 0 ? -e : e;
    if (ae < 10) out[n++] = '0';
    char ed[8];
    int ne = fmt_digits(ed, (unsigned long long)ae, 10, 0);
    while (ne) out[n++] = ed[--ne];
    return n;
}

static SLM_UNUSED int fmt_vsn_own(char *buf, size_t size, const char *fmt, va_list ap) {
    fmt_out o = {buf, size, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            fmt_put(&o, *f);
            continue;
        }
        int left = 0, zero = 0, plus = 0, space = 0, width = 0, prec = -1, lng = 0;
        for (f++;; f++) {
            if (*f == '-') left = 1;
            else if (*f == '0') zero = 1;
            else if (*f == '+') plus = 1;
            else if (*f == ' ') space = 1;
            else break;
        }
        if (*f == '*') {
            width = va_arg(ap, int);
            if (width < 0) left = 1, width = -width;
            f++;
        } else {
            while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
        }
        if (*f == '.') {
            f++;
            prec = 0;
            if (*f == '*') {
                prec = va_arg(ap, int);
                f++;
            } else {
                while (*f >= '0' && *f <= '9') prec = prec * 10 + (*f++ - '0');
            }
        }
        if (*f == 'l') {
            lng = 1;
            if (*++f == 'l') lng = 2, f++;
        } else if (*f == 'z') {
            lng = 3;
            f++;
        }
        char tmp[96], body[96];
        const char *sign = "";
        int n = 0;
        switch (*f) {
        case 'd':
        case 'i': {
            long long v = lng == 2 ? va_arg(ap, long long) : lng == 1 ? va_arg(ap, long) : lng == 3 ? (long long)va_arg(ap, size_t) : va_arg(ap, int);
            unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            sign = v < 0 ? "-" : plus ? "+" : space ? " " : "";
            int nd = fmt_digits(tmp, u, 10, 0);
            for (int i = nd; i < prec; i++) body[n++] = '0';
            while (nd) body[n++] = tmp[--nd];
            fmt_field(&o, sign, body, n, width, left, zero && prec < 0);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long u = lng == 2 ? va_arg(ap, unsigned long long) : lng == 1 ? va_arg(ap, unsigned long)
                                   : lng == 3 ? (unsigned long long)va_arg(ap, size_t) : va_arg(ap, unsigned);
            int nd = fmt_digits(tmp, u, *f == 'u' ? 10 : 16, *f == 'X');
            for (int i = nd; i < prec; i++) body[n++] = '0';
            while (nd) body[n++] = tmp[--nd];
            fmt_field(&o, "", body, n, width, left, zero && prec < 0);
            break;
        }
        case 'c':
            body[0] = (char)va_arg(ap, int);
            fmt_field(&o, "", body, 1, width, left, 0);
            break;
        case 's': {
            const char *sv = va_arg(ap, const char *);
            if (!sv) sv = "(null)";
            size_t len = 0;
            while ((prec < 0 || len < (size_t)prec) && sv[len]) len++;
            int pad = width > (int)len ? width - (int)len : 0;
            if (!left) fmt_pad(&o, ' ', pad);
            for (size_t i = 0; i < len; i++) fmt_put(&o, sv[i]);
            if (left) fmt_pad(&o, ' ', pad);
            break;
        }
        case 'f':
        case 'e':
        case 'g': {
            double v = va_arg(ap, double);
            sign = v < 0 || (v == 0 && 1 / v < 0) ? "-" : plus ? "+" : space ? " " : "";
            if (v < 0) v = -v;
            if (v != v) n = 3, memcpy(body, "nan", 3);
            else if (v > DBL_MAX) n = 3, memcpy(body, "inf", 3);
            else n = fmt_float(body, v, prec < 0 ? 6 : SLM_MIN(prec, 40), *f);
            fmt_field(&o, sign, body, n, width, left, zero && v == v && v <= DBL_MAX);
            break;
        }
        case '%': fmt_put(&o, '%'); break;
        default: /* unknown conversion: copy it */
            fmt_put(&o, '%');
            if (!*f) f--;
            else fmt_put(&o, *f);
        }
    }
    if (o.size) o.buf[o.n < o.size ? o.n : o.size - 1] = 0;
    return (int)o.n;
}
/* ========================================================================== */
/* B. GGUF writer and output files (appendix)                                 */
/* ========================================================================== */
/*
 * Builds a GGUF v3 file: the key/value pairs and the tensor directory are
 * encoded into memory first (gw_kv_*, gw_tensor), gw_write_header writes
 * them, then the caller streams each tensor's bytes in directory order
 * (gw_write_data, any number of pieces) and closes each with gw_end_tensor,
 * which pads to the alignment. Errors are sticky: the first is kept in
 * w->st / w->err and later calls do nothing, so callers check once.
 */


/* ---- Output files that never destroy anything ----------------------------
   Every file slm writes (quantized models, session state, and through
   slm_file_write the CLI's logits) goes through an ofile:
   - a new file, or an existing regular file (or a symlink to one: the file
     it points to), is written to a temporary file in the same directory,
     flushed to disk, and renamed into place only when every byte is written
     (Windows: MoveFileExW with MOVEFILE_REPLACE_EXISTING). On any error only
     that temporary file is removed. On Linux the temporary file is
     anonymous (O_TMPFILE) until it is complete, so a process killed while
     writing leaves nothing behind.
   - an existing file that is not a regular file (a device node such as
     /dev/null or /dev/full, a FIFO) is written directly, without temp or
     rename: renaming over it would replace the device node with a regular
     file. A write error there is reported; nothing is removed.
   - a directory is refused.
   - `avoid` (the input of the operation) is compared with the target by
     identity, not by name (device + inode; Windows: volume serial + file
     index), so ./x, dir/../x, a symlink or a hard link to the input are all
     refused before anything is written. */


#if !defined(SLM_NO_STDIO)
#if defined(_WIN32)
/* A handle by UTF-8 name (ANSI if the name is not UTF-8). */
static HANDLE win_open(const allocator *a, const char *path, DWORD access, DWORD disp, DWORD flags, int *oom) {
    size_t nb = 0;
    wchar_t *w;
    *oom = 0;
    if (!wide_path(a, path, &w, &nb)) {
        *oom = 1;
        return INVALID_HANDLE_VALUE;
    }
    const DWORD share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    HANDLE h = w ? CreateFileW(w, access, share, NULL, disp, flags, NULL)
                 : CreateFileA(path, access, share, NULL, disp, flags, NULL);
    if (w) xfree(a, w, nb);
    return h;
}

/* 1 if both names are one file (volume serial + file index), 0 if not or
   if either does not exist. */
static int same_file(const allocator *a, const char *x, const char *y) {
    int oom;
    BY_HANDLE_FILE_INFORMATION ix, iy;
    HANDLE hx = win_open(a, x, 0, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, &oom);
    if (hx == INVALID_HANDLE_VALUE) return 0;
    HANDLE hy = win_open(a, y, 0, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, &oom);
    int same = 0;
    if (hy != INVALID_HANDLE_VALUE) {
        same = GetFileInformationByHandle(hx, &ix) && GetFileInformationByHandle(hy, &iy) &&
               ix.dwVolumeSerialNumber == iy.dwVolumeSerialNumber && ix.nFileIndexHigh == iy.nFileIndexHigh &&
               ix.nFileIndexLow == iy.nFileIndexLow;
        CloseHandle(hy);
    }
    CloseHandle(hx);
    return same;
}
#elif defined(SLM_POSIX_FILES)
static int same_file(const allocator *a, const char *x, const char *y) {
    struct stat sx, sy;
    (void)a;
    return stat(x, &sx) == 0 && stat(y, &sy) == 0 && sx.st_dev == sy.st_dev && sx.st_ino == sy.st_ino;
}
#else
static int same_file(const allocator *a, const char *x, const char *y) { return (void)a, !strcmp(x, y); }
#endif

static slm_status of_fail(ofile *o, slm_status st, const char *what, const char *reason) {
    if (o->st == SLM_OK) o->st = seterr(o->err, st, "%s '%s': %s", what, o->path, reason);
    return o->st;
}

/* Length of the directory part of p, with its separator ("" -> 0). */
static size_t dir_len(const char *p) {
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] != '/'
#if defined(_WIN32)
           && p[n - 1] != '\\' && p[n - 1] != ':'
#endif
    )
        n--;
    return n;
}

#if defined(SLM_POSIX_FILES)
/* Follow the symbolic links of the path in p [cap] to the file they lead to
   (readlink; a relative link is taken from the link's directory). 0 and
   errno on failure. */
static int resolve_links(char *p, size_t cap) {
    char link[1024];
    for (int hops = 0; hops < 40; hops++) {
        struct stat sl;
        if (lstat(p, &sl) != 0) return hops > 0 && errno == ENOENT; /* a dangling link: create its file */
        if (!S_ISLNK(sl.st_mode)) return 1;
        ssize_t n = readlink(p, link, sizeof link - 1);
        if (n < 0) return 0;
        if ((size_t)n >= sizeof link - 1) return errno = ENAMETOOLONG, 0;
        link[n] = 0;
        size_t d = link[0] == '/' ? 0 : dir_len(p);
        if (d + (size_t)n + 1 > cap) return errno = ENAMETOOLONG, 0;
        memcpy(p + d, link, (size_t)n + 1);
    }
    errno = ELOOP;
    return 0;
}
#endif

/* tmp = DIR/.BASE.slm-tmp-PID-K */
static void of_tmp_name(ofile *o, unsigned k) {
    size_t d = dir_len(o->target);
    unsigned long pid =
#if defined(_WIN32)
        (unsigned long)GetCurrentProcessId();
#elif defined(SLM_POSIX_FILES)
        (unsigned long)getpid();
#else
        0;
#endif
    memcpy(o->tmp, o->target, d);
    fmt_sn(o->tmp + d, o->tcap - d, ".%s.slm-tmp-%lu-%u", o->target + d, pid, k);
}

static void of_release(ofile *o) {
    xfree(o->a, o->target, o->tcap);
    xfree(o->a, o->tmp, o->tcap);
    xfree(o->a, o->buf, OF_BUF);
    o->target = o->tmp = NULL;
    o->buf = NULL;
}

/* Open `path` for writing by the rules above. */
static slm_status of_open(ofile *o, const allocator *a, const char *path, const char *avoid, slm_error *err) {
    memset(o, 0, sizeof *o);
    o->a = a;
    o->path = path;
    o->err = err;
#if defined(_WIN32)
    o->h = INVALID_HANDLE_VALUE;
#elif defined(SLM_POSIX_FILES)
    o->fd = -1;
    o->keep_mode = -1;
#endif
    if (!path || !*path) return seterr(err, SLM_ERR_INVALID_ARG, "no output file name given");
    if (avoid && same_file(a, avoid, path))
        return seterr(err, SLM_ERR_INVALID_ARG, "'%s' is the same file as the input '%s': writing it would destroy the input",
                      path, avoid);
    o->tcap = strlen(path) + 64;
#if defined(SLM_POSIX_FILES) || defined(_WIN32)
    o->tcap += 4096; /* symbolic links resolved into it */
#endif
    o->target = (char *)xalloc(a, o->tcap);
    o->tmp = (char *)xalloc(a, o->tcap);
    o->buf = (uint8_t *)xalloc(a, OF_BUF);
    if (!o->target || !o->tmp || !o->buf) {
        of_release(o);
        return seterr(err, SLM_ERR_NOMEM, "out of memory opening '%s'", path);
    }
    memcpy(o->target, path, strlen(path) + 1);
    o->mode = OF_RENAME;
#if defined(_WIN32)
    {
        int oom;
        HANDLE h = win_open(a, path, 0, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, &oom);
        if (h != INVALID_HANDLE_VALUE) {
            BY_HANDLE_FILE_INFORMATION fi;
            int dir = GetFileInformationByHandle(h, &fi) && (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY);
            DWORD ft = GetFileType(h);
            /* a symbolic link: replace the file it points to (h is that
               file: CreateFile follows links), not the link */
            size_t nb = 0;
            wchar_t *wp = NULL, fin[1024];
            if (wide_path(a, path, &wp, &nb) && wp) {
                DWORD at = GetFileAttributesW(wp);
                xfree(a, wp, nb);
                DWORD n = at != INVALID_FILE_ATTRIBUTES && (at & FILE_ATTRIBUTE_REPARSE_POINT)
                              ? GetFinalPathNameByHandleW(h, fin, 1024, 0)
                              : 0;
                if (n > 0 && n < 1024) {
                    int u = WideCharToMultiByte(CP_UTF8, 0, fin, -1, NULL, 0, NULL, NULL);
                    if (u > 0 && (size_t)u + 64 <= o->tcap)
                        WideCharToMultiByte(CP_UTF8, 0, fin, -1, o->target, u, NULL, NULL);
                }
            }
            CloseHandle(h);
            if (dir) {
                of_release(o);
                return seterr(err, SLM_ERR_IO, "cannot write '%s': it is a directory", path);
            }
            if (ft != FILE_TYPE_DISK) o->mode = OF_DIRECT; /* NUL, CON, a pipe */
        }
        if (o->mode == OF_DIRECT) {
            o->h = win_open(a, path, GENERIC_WRITE, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, &oom);
        } else {
            for (unsigned k = 0; k < 100; k++) {
                of_tmp_name(o, k);
                o->h = win_open(a, o->tmp, GENERIC_WRITE, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, &oom);
                if (o->h != INVALID_HANDLE_VALUE || GetLastError() != ERROR_FILE_EXISTS) break;
            }
        }
        if (o->h == INVALID_HANDLE_VALUE) {
            DWORD e = GetLastError();
            of_release(o);
            return seterr(err, oom ? SLM_ERR_NOMEM : SLM_ERR_IO, "cannot open '%s' for writing: %s", path, win_reason(e));
        }
        if (o->mode == OF_DIRECT) xfree(a, o->tmp, o->tcap), o->tmp = NULL;
    }
#elif defined(SLM_POSIX_FILES)
    {
        struct stat sl, sb;
        if (lstat(path, &sl) == 0) {
            if (S_ISLNK(sl.st_mode)) {
                /* replace the file the link points to, not the link */
                if (!resolve_links(o->target, o->tcap)) {
                    int e = errno;
                    of_release(o);
                    return seterr(err, SLM_ERR_IO, "cannot resolve the symbolic link '%s': %s", path, os_reason(e));
                }
            }
            if (stat(o->target, &sb) == 0) {
                if (S_ISDIR(sb.st_mode)) {
                    of_release(o);
                    return seterr(err, SLM_ERR_IO, "cannot write '%s': it is a directory", path);
                }
                if (!S_ISREG(sb.st_mode)) o->mode = OF_DIRECT;
                else o->keep_mode = (int)(sb.st_mode & 07777);
            }
        }
        if (o->mode == OF_DIRECT) {
            o->fd = open(o->target, O_WRONLY | O_TRUNC);
            xfree(a, o->tmp, o->tcap);
            o->tmp = NULL;
        } else {
#if defined(SLM_O_TMPFILE)
            size_t d = dir_len(o->target);
            if (d == 0) {
                o->tmp[0] = '.', o->tmp[1] = 0;
            } else {
                memcpy(o->tmp, o->target, d);
                o->tmp[d] = 0;
            }
            o->fd = open(o->tmp, SLM_O_TMPFILE | O_WRONLY, 0666);
            o->anon = o->fd >= 0;
#endif
            for (unsigned k = 0; o->fd < 0 && k < 100; k++) {
                of_tmp_name(o, k);
                o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
                if (o->fd < 0 && errno != EEXIST) break;
            }
        }
        if (o->fd < 0) {
            int e = errno;
            of_release(o);
            return seterr(err, SLM_ERR_IO, "cannot open '%s' for writing: %s", path, os_reason(e));
        }
        if (o->mode == OF_RENAME && o->keep_mode >= 0) (void)fchmod(o->fd, (mode_t)o->keep_mode);
    }
#else
    {
        int oom;
        FILE *t;
        unsigned k = 0;
        for (; k < 100; k++) { /* no exclusive create in C99 stdio: probe */
            of_tmp_name(o, k);
            if (!(t = file_open(a, o->tmp, "rb", &oom))) break;
            fclose(t);
        }
        o->f = k < 100 ? file_open(a, o->tmp, "wb", &oom) : NULL;
        if (!o->f) {
            int e = errno;
            of_release(o);
            return seterr(err, SLM_ERR_IO, "cannot open '%s' for writing: %s", path, os_reason(e));
        }
    }
#endif
    return SLM_OK;
}

/* Write the buffer out. */
static slm_status of_flush(ofile *o) {
    size_t off = 0;
    while (o->st == SLM_OK && off < o->n) {
#if defined(_WIN32)
        DWORD put = 0, want = (DWORD)SLM_MIN(o->n - off, (size_t)1 << 30);
        if (!WriteFile(o->h, o->buf + off, want, &put, NULL) || put == 0)
            return of_fail(o, SLM_ERR_IO, "write error on", win_reason(GetLastError()));
        off += put;
#elif defined(SLM_POSIX_FILES)
        ssize_t put = write(o->fd, o->buf + off, o->n - off);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return of_fail(o, SLM_ERR_IO, "write error on", put < 0 ? os_reason(errno) : "nothing written");
        off += (size_t)put;
#else
        size_t put = fwrite(o->buf + off, 1, o->n - off, o->f);
        if (put == 0) return of_fail(o, SLM_ERR_IO, "write error on", os_reason(errno));
        off += put;
#endif
    }
    o->n = 0;
    return o->st;
}

static slm_status of_write(ofile *o, const void *p, size_t n) {
    const uint8_t *b = (const uint8_t *)p;
    o->written += n;
    while (n > 0 && o->st == SLM_OK) {
        size_t k = SLM_MIN(n, OF_BUF - o->n);
        memcpy(o->buf + o->n, b, k);
        o->n += k, b += k, n -= k;
        if (o->n == OF_BUF) of_flush(o);
    }
    return o->st;
}

/* Close after an error (or instead of committing): our temporary file goes,
   the target is untouched. Returns the ofile's status. */
static slm_status of_abort(ofile *o) {
#if defined(_WIN32)
    if (o->h != INVALID_HANDLE_VALUE) CloseHandle(o->h);
    o->h = INVALID_HANDLE_VALUE;
    if (o->tmp) {
        size_t nb = 0;
        wchar_t *w;
        if (wide_path(o->a, o->tmp, &w, &nb) && w) {
            DeleteFileW(w);
            xfree(o->a, w, nb);
        } else {
            DeleteFileA(o->tmp);
        }
    }
#elif defined(SLM_POSIX_FILES)
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp && !o->anon) unlink(o->tmp);
#else
    if (o->f) fclose(o->f);
    o->f = NULL;
    if (o->tmp) remove(o->tmp);
#endif
    slm_status st = o->st;
    of_release(o);
    return st;
}

#if defined(SLM_POSIX_FILES) && defined(SLM_O_TMPFILE)
/* Give the anonymous file a name in its directory (o->tmp): by linkat
   through /proc, else by copying its bytes into a new named file. */
static int of_name_anon(ofile *o) {
    char proc[64];
    fmt_sn(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
    for (unsigned k = 0; k < 100; k++) {
        of_tmp_name(o, k);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) == 0) {
            o->anon = 0;
            return 1;
        }
        if (errno != EEXIST) break;
    }
    int fd = -1;
    for (unsigned k = 0; fd < 0 && k < 100; k++) {
        of_tmp_name(o, k);
        fd = open(o->tmp, O_RDWR | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) return 0;
    o->anon = 0; /* from here o->tmp is ours to remove */
    int src = o->fd;
    o->fd = fd;
    if (o->keep_mode >= 0) (void)fchmod(fd, (mode_t)o->keep_mode);
    int ok = lseek(src, 0, SEEK_SET) == 0;
    for (;;) {
        ssize_t got = ok ? read(src, o->buf, OF_BUF) : -1;
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            ok = ok && got == 0;
            break;
        }
        o->n = (size_t)got;
        if (of_flush(o) != SLM_OK) break;
    }
    close(src);
    return ok && o->st == SLM_OK;
}
#endif

#if !defined(_WIN32) && !defined(SLM_POSIX_FILES)
/* Copy file `from` over `to` (stdio only); 0 on success, -1 (errno set). */
static int of_copy_over(const char *from, const char *to) {
    FILE *src = fopen(from, "rb"), *dst = src ? fopen(to, "wb") : NULL;
    char buf[4096];
    size_t got;
    int ok = src && dst;
    while (ok && (got = fread(buf, 1, sizeof buf, src)) > 0) ok = fwrite(buf, 1, got, dst) == got;
    ok = ok && !ferror(src);
    if (dst && fclose(dst) != 0) ok = 0;
    if (src) fclose(src);
    return ok ? 0 : -1;
}
#endif

/* Finish: flush to disk, rename into place. On failure as of_abort. */
static slm_status of_commit(ofile *o) {
    if (o->st == SLM_OK) of_flush(o);
#if defined(_WIN32)
    if (o->st == SLM_OK && o->mode == OF_RENAME && !FlushFileBuffers(o->h))
        of_fail(o, SLM_ERR_IO, "write error on", win_reason(GetLastError()));
    if (o->st != SLM_OK) return of_abort(o);
    CloseHandle(o->h);
    o->h = INVALID_HANDLE_VALUE;
    if (o->mode == OF_RENAME) {
        size_t nt = 0, nd = 0;
        wchar_t *wt = NULL, *wd = NULL;
        BOOL ok;
        if (wide_path(o->a, o->tmp, &wt, &nt) && wt && wide_path(o->a, o->target, &wd, &nd) && wd)
            ok = MoveFileExW(wt, wd, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH);
        else
            ok = MoveFileExA(o->tmp, o->target, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH);
        DWORD e = GetLastError();
        if (wt) xfree(o->a, wt, nt);
        if (wd) xfree(o->a, wd, nd);
        if (!ok) {
            of_fail(o, SLM_ERR_IO, "cannot replace", win_reason(e));
            return of_abort(o);
        }
    }
#elif defined(SLM_POSIX_FILES)
    if (o->st == SLM_OK && o->mode == OF_RENAME && fsync(o->fd) != 0 && errno != EINVAL)
        of_fail(o, SLM_ERR_IO, "write error on", os_reason(errno));
#if defined(SLM_O_TMPFILE)
    if (o->st == SLM_OK && o->anon && !of_name_anon(o))
        of_fail(o, SLM_ERR_IO, "cannot create a temporary file next to", os_reason(errno));
#endif
    if (o->st == SLM_OK && close(o->fd) != 0) of_fail(o, SLM_ERR_IO, "write error on", os_reason(errno));
    else if (o->st != SLM_OK) return of_abort(o);
    o->fd = -1;
    if (o->st == SLM_OK && o->mode == OF_RENAME && rename(o->tmp, o->target) != 0)
        of_fail(o, SLM_ERR_IO, "cannot replace", os_reason(errno));
    if (o->st != SLM_OK) return of_abort(o);
#else
    if (o->st == SLM_OK && fclose(o->f) != 0) of_fail(o, SLM_ERR_IO, "write error on", os_reason(errno));
    o->f = NULL;
    /* C99's rename need not replace an existing file, and some C libraries
       have none (newlib with semihosting: ENOSYS). Then the finished temp
       file is copied over the target; the temp file is removed only after
       a complete copy, so the data survives a failure in either place. */
    if (o->st == SLM_OK && rename(o->tmp, o->target) != 0) {
        const int copied = of_copy_over(o->tmp, o->target);
        if (copied < 0) {
            o->st = seterr(o->err, SLM_ERR_IO, "cannot replace '%s' (%s): the complete output is in '%s'", o->path,
                           os_reason(errno), o->tmp);
            of_release(o); /* the temp file keeps the only complete copy */
            return o->st;
        }
        remove(o->tmp);
    }
    if (o->st != SLM_OK) return of_abort(o);
#endif
    of_release(o);
    return SLM_OK;
}

slm_status slm_file_write(const char *path, const void *data, size_t size, slm_error *err) {
    allocator a;
    ofile o;
    clearerr_(err);
    if (!data && size) return seterr(err, SLM_ERR_INVALID_ARG, "data is NULL");
    alloc_init(&a, NULL);
    slm_status st = of_open(&o, &a, path, NULL, err);
    if (st != SLM_OK) return st;
    of_write(&o, data, size);
    return of_commit(&o);
}
#else
slm_status slm_file_write(const char *path, const void *data, size_t size, slm_error *err) {
    (void)data, (void)size;
    return seterr(err, SLM_ERR_UNSUPPORTED, "cannot write '%s': built with SLM_NO_STDIO, without file access", path ? path : "");
}
#endif

typedef struct gbuf {
    uint8_t *p;
    size_t len, cap;
} gbuf;

typedef struct gguf_writer {
    const allocator *a;
    gbuf kv, ti;            /* encoded key/value pairs, tensor infos */
    uint64_t n_kv, n_tensors;
    uint64_t data_size;     /* tensor data announced so far, padded */
    size_t alignment;
    void *f;                /* a FILE * (gw_write_header) */
#if !defined(SLM_NO_STDIO)
    ofile *of;              /* or an ofile (gw_write_header_of) */
#endif
    const char *path;       /* for messages */
    uint64_t pos;           /* bytes written to the data section */
    slm_status st;
    slm_error *err;
} gguf_writer;

static void gw_init(gguf_writer *w, const allocator *a, size_t alignment, slm_error *err) {
    memset(w, 0, sizeof *w);
    w->a = a;
    w->alignment = alignment ? alignment : GGUF_DEFAULT_ALIGNMENT;
    w->err = err;
}

static void gw_free(gguf_writer *w) {
    xfree(w->a, w->kv.p, w->kv.cap);
    xfree(w->a, w->ti.p, w->ti.cap);
    w->kv.p = w->ti.p = NULL;
}

static void gw_put(gguf_writer *w, gbuf *b, const void *p, size_t n) {
    if (w->st != SLM_OK) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                w->st = seterr(w->err, SLM_ERR_NOMEM, "GGUF writer: metadata too large");
                return;
            }
            cap *= 2;
        }
        uint8_t *q = (uint8_t *)xalloc(w->a, cap);
        if (!q) {
            w->st = seterr(w->err, SLM_ERR_NOMEM, "GGUF writer: out of memory for %zu bytes of metadata", cap);
            return;
        }
        if (b->len) memcpy(q, b->p, b->len);
        xfree(w->a, b->p, b->cap);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void gw_u32(gguf_writer *w, gbuf *b, uint32_t v) {
    uint8_t t[4];
    st_u32(t, v);
    gw_put(w, b, t, 4);
}

static void gw_u64(gguf_writer *w, gbuf *b, uint64_t v) {
    gw_u32(w, b, (uint32_t)v);
    gw_u32(w, b, (uint32_t)(v >> 32));
}

static void gw_str(gguf_writer *w, gbuf *b, const char *s, size_t n) {
    gw_u64(w, b, n);
    gw_put(w, b, s, n);
}

/* A key with its value already encoded as GGUF stores it (`raw`, n bytes:
   for strings the u64 length and the bytes, for arrays the element type,
   count and elements). Used to copy values unchanged from a parsed file. */
static void gw_kv_raw(gguf_writer *w, const char *key, int type, const void *raw, size_t n) {
    gw_str(w, &w->kv, key, strlen(key));
    gw_u32(w, &w->kv, (uint32_t)type);
    gw_put(w, &w->kv, raw, n);
    if (w->st == SLM_OK) w->n_kv++;
}

static void gw_kv_u32(gguf_writer *w, const char *key, uint32_t v) {
    uint8_t t[4];
    st_u32(t, v);
    gw_kv_raw(w, key, SLM_META_U32, t, 4);
}

static SLM_UNUSED void gw_kv_i32(gguf_writer *w, const char *key, int32_t v) {
    uint8_t t[4];
    st_u32(t, (uint32_t)v);
    gw_kv_raw(w, key, SLM_META_I32, t, 4);
}

static SLM_UNUSED void gw_kv_f32(gguf_writer *w, const char *key, float v) {
    uint8_t t[4];
    st_f32(t, v);
    gw_kv_raw(w, key, SLM_META_F32, t, 4);
}

static SLM_UNUSED void gw_kv_bool(gguf_writer *w, const char *key, int v) {
    uint8_t t = v != 0;
    gw_kv_raw(w, key, SLM_META_BOOL, &t, 1);
}

static SLM_UNUSED void gw_kv_str(gguf_writer *w, const char *key, const char *s) {
    gw_str(w, &w->kv, key, strlen(key));
    gw_u32(w, &w->kv, SLM_META_STRING);
    gw_str(w, &w->kv, s, strlen(s));
    if (w->st == SLM_OK) w->n_kv++;
}

/* An array of n fixed-size elements (little-endian, as stored). */
/* An array of fixed-size elements in the host's byte order (GGUF's is
   little-endian: big-endian hosts swap each element). */
static SLM_UNUSED void gw_kv_array(gguf_writer *w, const char *key, int elem_type, const void *elems, uint64_t n) {
    const size_t es = meta_scalar_size(elem_type);
    gw_str(w, &w->kv, key, strlen(key));
    gw_u32(w, &w->kv, SLM_META_ARRAY);
    gw_u32(w, &w->kv, (uint32_t)elem_type);
    gw_u64(w, &w->kv, n);
    if (!SLM_BIG_ENDIAN) {
        gw_put(w, &w->kv, elems, (size_t)n * es);
    } else {
        for (uint64_t i = 0; i < n; i++) {
            uint8_t e[8];
            for (size_t k = 0; k < es; k++) e[k] = ((const uint8_t *)elems)[i * es + es - 1 - k];
            gw_put(w, &w->kv, e, es);
        }
    }
    if (w->st == SLM_OK) w->n_kv++;
}

static SLM_UNUSED void gw_kv_str_array(gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    gw_str(w, &w->kv, key, strlen(key));
    gw_u32(w, &w->kv, SLM_META_ARRAY);
    gw_u32(w, &w->kv, SLM_META_STRING);
    gw_u64(w, &w->kv, n);
    for (uint64_t i = 0; i < n; i++) gw_str(w, &w->kv, strs[i], strlen(strs[i]));
    if (w->st == SLM_OK) w->n_kv++;
}

/* Announce a tensor (in the order its data will be written); returns its
   size in bytes, 0 after an error. */
static uint64_t gw_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne) {
    const type_size *ts = type_size_of(type);
    if (w->st != SLM_OK) return 0;
    if (!ts || n_dims < 1 || n_dims > GGUF_MAX_DIMS || ne[0] % ts->blck != 0) {
        w->st = seterr(w->err, SLM_ERR_INVALID_ARG, "GGUF writer: tensor '%s' has a bad type or shape", name);
        return 0;
    }
    uint64_t nel = 1;
    gw_str(w, &w->ti, name, strlen(name));
    gw_u32(w, &w->ti, (uint32_t)n_dims);
    for (int d = 0; d < n_dims; d++) {
        gw_u64(w, &w->ti, (uint64_t)ne[d]);
        nel *= (uint64_t)ne[d];
    }
    gw_u32(w, &w->ti, (uint32_t)type);
    gw_u64(w, &w->ti, w->data_size);
    uint64_t nbytes = nel / (uint64_t)ts->blck * (uint64_t)ts->bytes;
    w->data_size += (nbytes + w->alignment - 1) / w->alignment * w->alignment;
    if (w->st == SLM_OK) w->n_tensors++;
    return w->st == SLM_OK ? nbytes : 0;
}

static void gw_fwrite(gguf_writer *w, const void *p, size_t n) {
    if (w->st != SLM_OK || !n) return;
#if !defined(SLM_NO_STDIO)
    if (w->of) {
        w->st = of_write(w->of, p, n);
        return;
    }
#endif
    if (file_write(w->f, p, n) != n) w->st = seterr(w->err, SLM_ERR_IO, "write error on '%s'", w->path);
}

static void gw_zeros(gguf_writer *w, size_t n) {
    static const uint8_t zero[64] = {0};
    while (n > 0 && w->st == SLM_OK) {
        size_t k = SLM_MIN(n, sizeof zero);
        gw_fwrite(w, zero, k);
        n -= k;
    }
}

/* Header, metadata and tensor directory, padded to the alignment. */
static SLM_UNUSED void gw_write_header(gguf_writer *w, void *f, const char *path) {
    uint8_t h[24];
    w->f = f;
    w->path = path;
    st_u32(h, GGUF_MAGIC);
    st_u32(h + 4, 3);
    st_u32(h + 8, (uint32_t)w->n_tensors);
    st_u32(h + 12, (uint32_t)(w->n_tensors >> 32));
    st_u32(h + 16, (uint32_t)w->n_kv);
    st_u32(h + 20, (uint32_t)(w->n_kv >> 32));
    gw_fwrite(w, h, sizeof h);
    gw_fwrite(w, w->kv.p, w->kv.len);
    gw_fwrite(w, w->ti.p, w->ti.len);
    size_t end = sizeof h + w->kv.len + w->ti.len;
    gw_zeros(w, (w->alignment - end % w->alignment) % w->alignment);
}

#if !defined(SLM_NO_STDIO)
static void gw_write_header_of(gguf_writer *w, ofile *o) {
    w->of = o;
    gw_write_header(w, NULL, o->path);
}
#endif

static void gw_write_data(gguf_writer *w, const void *p, size_t n) {
    gw_fwrite(w, p, n);
    w->pos += n;
}

static void gw_end_tensor(gguf_writer *w) {
    size_t pad = (size_t)((w->alignment - w->pos % w->alignment) % w->alignment);
    gw_zeros(w, pad);
    w->pos += pad;
}

/* ========================================================================== */
/* C. Weight quantizers: K-quants and IQ4_XS (appendix)                       */
/* ========================================================================== */

/* --- K-quant and IQ4_XS weight quantizers ---------------------------------- */
/*
 * The published k-quant method (llama.cpp's quantize_row_*_K_ref), written
 * anew: each sub-block gets a scale (and min) from a weighted least-squares
 * search, then the sub-block scales are themselves quantized to 4 or 6 bits
 * against the super-block maximum, and finally every value is re-quantized
 * with the scales exactly as the decoder will reconstruct them.
 */

/* Defined in appendix E: */
static inline int qround(float x, int lo, int hi);

/* Fit x[i] ~ scale * L[i] - mn with L in [0, nmax] and mn >= 0 (the grid
   starts at or below zero). The plain grid over [min(x, 0), max(x)] is the
   starting point; then grids of nmax + rmin + k * rdelta steps over that
   span, k = 0..nstep, each starting at the best offset found so far, give
   candidate assignments whose scale and offset are solved in closed form
   (weighted least squares); the one with the least weighted error, squared
   or absolute (mad), is kept. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *mn, float rmin,
                           float rdelta, int nstep, int mad) {
    float lo = x[0], hi = x[0], sw = 0, sx = 0;
    for (int i = 0; i < n; i++) {
        lo = SLM_MIN(lo, x[i]);
        hi = SLM_MAX(hi, x[i]);
        sw += w[i];
        sx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *mn = -lo;
        return 0;
    }
    float iscale = (float)nmax / (hi - lo), scale = 1.0f / iscale, off = lo, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)qround(iscale * (x[i] - lo), 0, nmax);
        float e = scale * (float)L[i] + lo - x[i];
        best += w[i] * (mad ? fabsf(e) : e * e);
    }
    uint8_t La[32];
    for (int k = 0; k <= nstep; k++) {
        float is = (rmin + rdelta * (float)k + (float)nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = qround(is * (x[i] - off), 0, nmax);
            La[i] = (uint8_t)l;
            sl += w[i] * (float)l;
            sl2 += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        float det = sw * sl2 - sl * sl;
        if (!(det > 0)) continue;
        float s = (sw * sxl - sx * sl) / det, o = (sl2 * sx - sl * sxl) / det;
        if (o > 0) { /* the offset may only lower the grid */
            o = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float e = s * (float)La[i] + o - x[i];
            err += w[i] * (mad ? fabsf(e) : e * e);
        }
        if (err < best) {
            memcpy(L, La, (size_t)n);
            best = err, scale = s, off = o;
        }
    }
    *mn = -off;
    return scale;
}

/* Symmetric fit x[i] ~ scale * l[i], l in [-nmax, nmax - 1], weights x^2:
   the value of largest magnitude maps to -nmax, then 18 grids with nmax
   nudged by +-0.1..0.9 are tried; the assignment maximizing
   sum(wxl)^2 / sum(wl^2) (least weighted error) is kept. L gets l + nmax. */
static float fit_scale_sym(int n, int nmax, const float *x, uint8_t *L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax < 1e-15f) {
        for (int i = 0; i < n; i++) L[i] = (uint8_t)nmax;
        return 0;
    }
    float scale = 0, best = 0;
    for (int k = 0; k <= 18; k++) {
        /* k = 0: the plain grid; then -0.9..-0.1, +0.1..+0.9 */
        float nudge = k == 0 ? 0.0f : k <= 9 ? -0.1f * (float)(10 - k) : 0.1f * (float)(k - 9);
        float is = -((float)nmax + nudge) / max, slx = 0, sl2 = 0;
        for (int i = 0; i < n; i++) {
            int l = qround(is * x[i], -nmax, nmax - 1);
            float w = x[i] * x[i];
            slx += w * x[i] * (float)l;
            sl2 += w * (float)(l * l);
        }
        if (k == 0 || (sl2 > 0 && slx * slx > best * sl2)) {
            for (int i = 0; i < n; i++) L[i] = (uint8_t)(qround(is * x[i], -nmax, nmax - 1) + nmax);
            scale = sl2 > 0 ? slx / sl2 : 0.0f;
            best = scale * slx;
        }
    }
    return scale;
}

/* Q3_K's sub-block fit: symmetric, weights x^2, starting from the grid that
   maps the extreme to -nmax, then up to 5 passes that move single values to
   the level the current least-squares scale prefers when that lowers the
   weighted error. L gets l + nmax. */
static float fit_scale_q3(int n, int nmax, const float *x, uint8_t *L) {
    float amax = 0, max = 0;
    int l8[16];
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax < 1e-15f) {
        for (int i = 0; i < n; i++) L[i] = (uint8_t)nmax;
        return 0;
    }
    float is = -(float)nmax / max, slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        l8[i] = qround(is * x[i], -nmax, nmax - 1);
        float w = x[i] * x[i];
        slx += w * x[i] * (float)l8[i];
        sl2 += w * (float)(l8[i] * l8[i]);
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float a = slx - w * x[i] * (float)l8[i];
            if (!(a > 0)) continue;
            float b = sl2 - w * (float)(l8[i] * l8[i]);
            int nl = qround(x[i] * b / a, -nmax, nmax - 1);
            if (nl == l8[i]) continue;
            a += w * x[i] * (float)nl;
            b += w * (float)(nl * nl);
            if (b > 0 && a * a * sl2 > slx * slx * b) {
                l8[i] = nl, slx = a, sl2 = b;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (uint8_t)(l8[i] + nmax);
    return sl2 > 0 ? slx / sl2 : 0.0f;
}

static float mean32(const float *x, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / (float)n;
}

/* Q2_K/Q3_K pack of 2-bit fields: value 128h + 32k + l -> qs[32h + l] bits 2k. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++)
            qs[32 * h + l] = (uint8_t)((L[128 * h + l] & 3) | (L[128 * h + 32 + l] & 3) << 2 |
                                       (L[128 * h + 64 + l] & 3) << 4 | (L[128 * h + 96 + l] & 3) << 6);
}

static void q2_k_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    uint8_t L[QK_K];
    float w[16], scales[16], mins[16];
    for (int64_t i = 0; i < n / QK_K; i++, b += 84, src += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int s = 0; s < 16; s++) {
            for (int j = 0; j < 16; j++) w[j] = fabsf(src[16 * s + j]);
            scales[s] = fit_scale_min(16, 3, src + 16 * s, w, L + 16 * s, &mins[s], -0.5f, 0.1f, 15, 1);
            max_scale = SLM_MAX(max_scale, scales[s]);
            max_min = SLM_MAX(max_min, mins[s]);
        }
        st_u16(b + 80, f32_to_fp16(max_scale / 15.0f));
        st_u16(b + 82, f32_to_fp16(max_min / 15.0f));
        const float d = ld_f16(b + 80), dmin = ld_f16(b + 82); /* multiples of these as stored */
        const float is = d > 0 ? 1.0f / d : 0.0f, im = dmin > 0 ? 1.0f / dmin : 0.0f;
        for (int s = 0; s < 16; s++) {
            int ls = qround(is * scales[s], 0, 15), lm = qround(im * mins[s], 0, 15);
            if (!ls) lm = qround(-im * mean32(src + 16 * s, 16), 0, 15); /* only the offset is left: fit the mean */
            b[s] = (uint8_t)(ls | lm << 4);
        }
        for (int s = 0; s < 16; s++) {
            const float dl = d * (float)(b[s] & 15), ml = dmin * (float)(b[s] >> 4);
            for (int j = 0; j < 16; j++)
                L[16 * s + j] = (uint8_t)(dl != 0 ? qround((src[16 * s + j] + ml) / dl, 0, 3) : 0);
        }
        pack_2bit(L, b + 16);
    }
}

/* Defined in appendix E: */
static int q3_k_scale(const uint8_t *sc, int s);

static void q3_k_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    uint8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++, b += 110, src += QK_K) {
        float amax = 0, max_scale = 0;
        for (int s = 0; s < 16; s++) {
            scales[s] = fit_scale_q3(16, 4, src + 16 * s, L + 16 * s);
            if (fabsf(scales[s]) > amax) amax = fabsf(scales[s]), max_scale = scales[s];
        }
        uint8_t *sc = b + 96;
        memset(sc, 0, 12);
        float d = 0;
        if (max_scale != 0) {
            float is = -32.0f / max_scale;
            for (int s = 0; s < 16; s++) {
                int l = qround(is * scales[s], -32, 31) + 32;
                if (s < 8) sc[s] = (uint8_t)(l & 15);
                else sc[s - 8] |= (uint8_t)((l & 15) << 4);
                sc[8 + s % 4] |= (uint8_t)((l >> 4) << (2 * (s / 4)));
            }
            d = 1.0f / is;
        }
        st_u16(b + 108, f32_to_fp16(d));
        const float dd = ld_f16(b + 108);
        for (int s = 0; s < 16; s++) {
            const float dl = dd * (float)q3_k_scale(sc, s);
            for (int j = 0; j < 16; j++) L[16 * s + j] = (uint8_t)(dl != 0 ? qround(src[16 * s + j] / dl, -4, 3) + 4 : 4);
        }
        /* high bit of value j: bit j/32 of hmask[j%32]; low 2 bits as Q2_K */
        memset(b, 0, 32);
        for (int j = 0; j < QK_K; j++)
            if (L[j] > 3) b[j % 32] |= (uint8_t)(1u << (j / 32)), L[j] -= 4;
        pack_2bit(L, b + 32);
    }
}

/* Q4_K/Q5_K: 8 sub-blocks of 32 with a 6-bit scale and min each. */
static void k45_from_float(const float *src, uint8_t *b, int nmax, float rmin, int nstep, uint8_t *L) {
    float w[32], scales[8], mins[8], max_scale = 0, max_min = 0;
    for (int s = 0; s < 8; s++) {
        const float *x = src + 32 * s;
        float ss = 0;
        for (int j = 0; j < 32; j++) ss += x[j] * x[j];
        const float av = sqrtf(ss / 32.0f);
        for (int j = 0; j < 32; j++) w[j] = av + fabsf(x[j]);
        scales[s] = fit_scale_min(32, nmax, x, w, L + 32 * s, &mins[s], rmin, 0.1f, nstep, 0);
        max_scale = SLM_MAX(max_scale, scales[s]);
        max_min = SLM_MAX(max_min, mins[s]);
    }
    /* the 6-bit multiples are taken of d and dmin as stored: the same as
       of max/63 in f16's normal range, and no blow-up where f16 rounds
       tiny scales coarsely */
    st_u16(b, f32_to_fp16(max_scale / 63.0f));
    st_u16(b + 2, f32_to_fp16(max_min / 63.0f));
    const float d = ld_f16(b), dmin = ld_f16(b + 2);
    const float is = d > 0 ? 1.0f / d : 0.0f, im = dmin > 0 ? 1.0f / dmin : 0.0f;
    uint8_t ls[8], lm[8], *sc = b + 4;
    for (int s = 0; s < 8; s++) {
        ls[s] = (uint8_t)qround(is * scales[s], 0, 63);
        lm[s] = (uint8_t)qround(im * mins[s], 0, 63);
        if (!ls[s]) lm[s] = (uint8_t)qround(-im * mean32(src + 32 * s, 32), 0, 63); /* only the offset is left: fit the mean */
    }
    for (int s = 0; s < 4; s++) {
        sc[s] = (uint8_t)(ls[s] | (ls[s + 4] >> 4) << 6);
        sc[s + 4] = (uint8_t)(lm[s] | (lm[s + 4] >> 4) << 6);
        sc[s + 8] = (uint8_t)((ls[s + 4] & 15) | (lm[s + 4] & 15) << 4);
    }
    for (int s = 0; s < 8; s++) {
        const float dl = d * (float)ls[s], ml = dmin * (float)lm[s];
        for (int j = 0; j < 32; j++) L[32 * s + j] = (uint8_t)(dl != 0 ? qround((src[32 * s + j] + ml) / dl, 0, nmax) : 0);
    }
}

static void q4_k_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst, L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, b += 144, src += QK_K) {
        k45_from_float(src, b, 15, -1.0f, 20, L);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) b[16 + 32 * g + l] = (uint8_t)(L[64 * g + l] | L[64 * g + 32 + l] << 4);
    }
}

static void q5_k_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst, L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, b += 176, src += QK_K) {
        k45_from_float(src, b, 31, -0.5f, 15, L);
        uint8_t *qh = b + 16, *qs = b + 48;
        memset(qh, 0, 32);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) {
                int a = L[64 * g + l], c = L[64 * g + 32 + l];
                qs[32 * g + l] = (uint8_t)((a & 15) | (c & 15) << 4);
                qh[l] |= (uint8_t)((a >> 4) << (2 * g) | (c >> 4) << (2 * g + 1));
            }
    }
}

static void q6_k_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst, L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++, b += 210, src += QK_K) {
        float amax = 0, max_scale = 0;
        for (int s = 0; s < 16; s++) {
            scales[s] = fit_scale_sym(16, 32, src + 16 * s, L + 16 * s);
            if (fabsf(scales[s]) > amax) amax = fabsf(scales[s]), max_scale = scales[s];
        }
        memset(b, 0, 210);
        if (amax < 1e-15f) continue;
        const float is = -128.0f / max_scale;
        for (int s = 0; s < 16; s++) b[192 + s] = (uint8_t)(int8_t)qround(is * scales[s], -128, 127);
        st_u16(b + 208, f32_to_fp16(1.0f / is));
        const float d = ld_f16(b + 208);
        for (int s = 0; s < 16; s++) {
            const float dl = d * (float)(int8_t)b[192 + s];
            for (int j = 0; j < 16; j++) L[16 * s + j] = (uint8_t)(dl != 0 ? qround(src[16 * s + j] / dl, -32, 31) + 32 : 32);
        }
        uint8_t *ql = b, *qh = b + 128;
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *v = L + 128 * h + l;
                ql[64 * h + l] = (uint8_t)((v[0] & 15) | (v[64] & 15) << 4);
                ql[64 * h + 32 + l] = (uint8_t)((v[32] & 15) | (v[96] & 15) << 4);
                qh[32 * h + l] = (uint8_t)(v[0] >> 4 | (v[32] >> 4) << 2 | (v[64] >> 4) << 4 | (v[96] >> 4) << 6);
            }
    }
}

/* Defined in appendix E: */
static float iq4_fit(const float *x);
static void iq4_pack(const float *x, float d, uint8_t *qs);

/* IQ4_XS: IQ4_NL's sub-block fit, then the 8 scales as 6-bit multiples of
   d = -max_scale / 32 (the largest maps to -32). */
static void iq4_xs_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    float scales[8];
    for (int64_t i = 0; i < n / QK_K; i++, b += 136, src += QK_K) {
        float amax = 0, max_scale = 0;
        for (int s = 0; s < 8; s++) {
            scales[s] = iq4_fit(src + 32 * s);
            if (fabsf(scales[s]) > amax) amax = fabsf(scales[s]), max_scale = scales[s];
        }
        st_u16(b, f32_to_fp16(-max_scale / 32.0f));
        const float d = ld_f16(b), id = d != 0 ? 1.0f / d : 0.0f;
        unsigned sh = 0;
        memset(b + 4, 0, 4);
        for (int s = 0; s < 8; s++) {
            int l = qround(id * scales[s], -32, 31);
            iq4_pack(src + 32 * s, d * (float)l, b + 8 + 16 * s);
            l += 32;
            b[4 + s / 2] |= (uint8_t)((l & 15) << (4 * (s % 2)));
            sh |= (unsigned)(l >> 4) << (2 * s);
        }
        st_u16(b + 2, (uint16_t)sh);
    }
}
/* ========================================================================== */
/* D. Quantization: convert a GGUF file's matrices to another type            */
/* ========================================================================== */
/*
 * slm_quantize_file reads any GGUF file (no architecture support needed),
 * decides a type per tensor (the target, llama.cpp's S/M/L mixes, block-size
 * fallbacks), writes the new directory with the GGUF writer (B) and then
 * streams each tensor: dequantize rows to float, quantize to the new type
 * (rows in parallel), write.
 */

/* Names the CLI accepts; ftype is llama.cpp's general.file_type value. */
static const struct quant_name {
    const char *name;
    int type, mix, ftype;
} QUANT_NAMES[] = {
    {"F32", SLM_TYPE_F32, SLM_MIX_PURE, 0},      {"F16", SLM_TYPE_F16, SLM_MIX_PURE, 1},
    {"BF16", SLM_TYPE_BF16, SLM_MIX_PURE, 32},   {"Q8_0", SLM_TYPE_Q8_0, SLM_MIX_PURE, 7},
    {"Q4_0", SLM_TYPE_Q4_0, SLM_MIX_PURE, 2},    {"Q4_1", SLM_TYPE_Q4_1, SLM_MIX_PURE, 3},
    {"Q5_0", SLM_TYPE_Q5_0, SLM_MIX_PURE, 8},    {"Q5_1", SLM_TYPE_Q5_1, SLM_MIX_PURE, 9},
    {"Q2_K", SLM_TYPE_Q2_K, SLM_MIX_PURE, 10},   {"Q3_K", SLM_TYPE_Q3_K, SLM_MIX_PURE, 12},
    {"Q3_K_S", SLM_TYPE_Q3_K, SLM_MIX_S, 11},    {"Q3_K_M", SLM_TYPE_Q3_K, SLM_MIX_M, 12},
    {"Q3_K_L", SLM_TYPE_Q3_K, SLM_MIX_L, 13},    {"Q4_K", SLM_TYPE_Q4_K, SLM_MIX_PURE, 15},
    {"Q4_K_S", SLM_TYPE_Q4_K, SLM_MIX_S, 14},    {"Q4_K_M", SLM_TYPE_Q4_K, SLM_MIX_M, 15},
    {"Q5_K", SLM_TYPE_Q5_K, SLM_MIX_PURE, 17},   {"Q5_K_S", SLM_TYPE_Q5_K, SLM_MIX_S, 16},
    {"Q5_K_M", SLM_TYPE_Q5_K, SLM_MIX_M, 17},    {"Q6_K", SLM_TYPE_Q6_K, SLM_MIX_PURE, 18},
    {"IQ4_NL", SLM_TYPE_IQ4_NL, SLM_MIX_PURE, 25}, {"IQ4_XS", SLM_TYPE_IQ4_XS, SLM_MIX_PURE, 30},
};
#define N_QUANT_NAMES ((int)(sizeof QUANT_NAMES / sizeof QUANT_NAMES[0]))

static const struct quant_name *quant_name_of(int type, int mix) {
    for (int i = 0; i < N_QUANT_NAMES; i++)
        if (QUANT_NAMES[i].type == type && QUANT_NAMES[i].mix == mix) return &QUANT_NAMES[i];
    return NULL;
}

void slm_quantize_params_init(slm_quantize_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->type = SLM_TYPE_Q4_K;
    p->mix = SLM_MIX_M;
}

slm_status slm_quantize_parse_type(const char *name, int32_t *type, int32_t *mix) {
    if (!name || !type || !mix) return SLM_ERR_INVALID_ARG;
    for (int i = 0; i < N_QUANT_NAMES; i++) {
        const char *a = QUANT_NAMES[i].name, *b = name;
        while (*a && *b && (*a == *b || (*b >= 'a' && *b <= 'z' && *a == *b - 32))) a++, b++;
        if (!*a && !*b) {
            *type = QUANT_NAMES[i].type;
            *mix = QUANT_NAMES[i].mix;
            return SLM_OK;
        }
    }
    return SLM_ERR_NOT_FOUND;
}

/* Per-file state of llama.cpp's type choice (counters run in file order). */
typedef struct quant_plan {
    int type, mix;
    int n_attn_v, i_attn_v, n_layer, i_ffn_down, has_output;
    int n_fallback;
} quant_plan;

/* Tensors that stay as they are: vectors, norms, and small tables that
   llama.cpp also leaves alone. */
static int quantizable(const gguf_tensor *t) {
    static const char *const keep[] = {"_norm.weight", "ffn_gate_inp.weight", "altup", "laurel",
                                       "per_layer_model_proj", "position_embd.weight", "token_types.weight",
                                       "ssm_conv1d.weight", "shortconv.conv.weight", "time_mix_", "attn_rel_b.weight"};
    size_t n = t->name_len;
    if (t->n_dims < 2 || n < 6 || strcmp(t->name + n - 6, "weight") != 0) return 0;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (strstr(t->name, keep[i])) return 0;
    return 1;
}

/* As llama.cpp's use_more_bits: first and last eighth, every third between. */
static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The type of one quantizable matrix. */
static int plan_type(quant_plan *q, const gguf_tensor *t, int *fell_back) {
    int ty = q->type;
    const char *nm = t->name;
    const int K = ty == SLM_TYPE_Q3_K || ty == SLM_TYPE_Q4_K || ty == SLM_TYPE_Q5_K;
    *fell_back = 0;
    if (q->mix != SLM_MIX_PURE && K) {
        const int f = q->mix, q3 = ty == SLM_TYPE_Q3_K, q4 = ty == SLM_TYPE_Q4_K, q5 = ty == SLM_TYPE_Q5_K;
        if (!strcmp(nm, "output.weight") || (!q->has_output && !strcmp(nm, "token_embd.weight"))) {
            ty = t->ne[0] % QK_K ? SLM_TYPE_Q8_0 : SLM_TYPE_Q6_K;
        } else if (strstr(nm, "attn_v.weight")) {
            int i = q->i_attn_v++;
            if (q3 && f == SLM_MIX_M) ty = i < 2 ? SLM_TYPE_Q5_K : SLM_TYPE_Q4_K;
            else if (q3 && f == SLM_MIX_L) ty = SLM_TYPE_Q5_K;
            else if ((q4 || q5) && f == SLM_MIX_M && more_bits(i, q->n_attn_v)) ty = SLM_TYPE_Q6_K;
            else if (q4 && f == SLM_MIX_S && i < 4) ty = SLM_TYPE_Q5_K;
        } else if (strstr(nm, "ffn_down")) {
            int i = q->i_ffn_down++, n = q->n_layer;
            if (q3 && f == SLM_MIX_M) ty = i < n / 16 ? SLM_TYPE_Q5_K : SLM_TYPE_Q4_K;
            else if (q3 && f == SLM_MIX_L) ty = SLM_TYPE_Q5_K;
            else if ((q4 || q5) && f == SLM_MIX_M && more_bits(i, n)) ty = SLM_TYPE_Q6_K;
            else if (q4 && f == SLM_MIX_S && i < n / 8) ty = SLM_TYPE_Q5_K;
        } else if (strstr(nm, "attn_output.weight")) {
            if (q3 && f == SLM_MIX_M) ty = SLM_TYPE_Q4_K;
            else if (q3 && f == SLM_MIX_L) ty = SLM_TYPE_Q5_K;
        } else if (strstr(nm, "attn_qkv.weight")) {
            if (q3 && (f == SLM_MIX_M || f == SLM_MIX_L)) ty = SLM_TYPE_Q4_K;
            else if (q4 && f == SLM_MIX_M) ty = SLM_TYPE_Q5_K;
            else if (q5 && f == SLM_MIX_M) ty = SLM_TYPE_Q6_K;
        }
    }
    if (t->ne[0] % type_size_of(ty)->blck != 0) {
        /* llama.cpp's fallbacks: the nearest 32-block type, then F16 */
        switch (ty) {
        case SLM_TYPE_Q2_K: case SLM_TYPE_Q3_K: case SLM_TYPE_IQ4_XS: ty = SLM_TYPE_IQ4_NL; break;
        case SLM_TYPE_Q4_K: ty = SLM_TYPE_Q5_0; break;
        case SLM_TYPE_Q5_K: ty = SLM_TYPE_Q5_1; break;
        case SLM_TYPE_Q6_K: ty = SLM_TYPE_Q8_0; break;
        default: ty = SLM_TYPE_F16; break;
        }
        if (t->ne[0] % type_size_of(ty)->blck != 0) ty = SLM_TYPE_F16;
        *fell_back = 1;
    }
    return ty;
}

/* Convert one tensor's rows from `src` (type st) to type dt, streaming the
   result to the writer in chunks of about a million values. */
static slm_status convert_tensor(gguf_writer *w, const allocator *a, const uint8_t *src, int st, int dt,
                                 int64_t ne0, int64_t nrows, int nth) {
    const size_t in_rb = row_bytes(st, ne0), out_rb = row_bytes(dt, ne0);
    const int64_t chunk = SLM_MAX(1, SLM_MIN(nrows, (int64_t)(1 << 20) / ne0));
    float *tmp = (float *)xalloc(a, (size_t)nth * (size_t)ne0 * sizeof(float));
    uint8_t *out = (uint8_t *)xalloc(a, (size_t)chunk * out_rb);
    if (!tmp || !out) {
        xfree(a, tmp, (size_t)nth * (size_t)ne0 * sizeof(float));
        xfree(a, out, (size_t)chunk * out_rb);
        return w->st = seterr(w->err, SLM_ERR_NOMEM, "out of memory converting rows of %lld values", (long long)ne0);
    }
    const type_traits *ts = &TRAITS[st], *td = &TRAITS[dt];
    for (int64_t r0 = 0; r0 < nrows && w->st == SLM_OK; r0 += chunk) {
        const int64_t nr = SLM_MIN(chunk, nrows - r0);
#if SLM_OPENMP
#pragma omp parallel for num_threads(nth) schedule(dynamic, 1) if (nth > 1 && nr > 1)
#endif
        for (int64_t r = 0; r < nr; r++) {
#if SLM_OPENMP
            float *f = tmp + (size_t)omp_get_thread_num() * (size_t)ne0;
#else
            float *f = tmp;
#endif
            ts->to_float(src + (size_t)(r0 + r) * in_rb, f, ne0);
            td->from_float(f, out + (size_t)r * out_rb, ne0);
        }
        gw_write_data(w, out, (size_t)nr * out_rb);
    }
    xfree(a, tmp, (size_t)nth * (size_t)ne0 * sizeof(float));
    xfree(a, out, (size_t)chunk * out_rb);
    return w->st;
}

/* Byte span [*b, *e) of a metadata value as stored (for copying it). */
static int kv_span(const gguf_file *g, const gguf_kv *kv, size_t *b, size_t *e) {
    size_t start = kv->value_off - (kv->type == SLM_META_STRING ? 8 : kv->type == SLM_META_ARRAY ? 12 : 0);
    reader r = {g->data, g->size, start, NULL, NULL};
    if (!rd_skip_value(&r, kv->type, 0, kv->key)) return 0;
    *b = start;
    *e = r.pos;
    return 1;
}

/* The input of a conversion: mapped (or read) and parsed, nothing more;
   *out is set as soon as there is a model to release. */
static slm_status quant_input(const char *in, const slm_quantize_params *params, slm_model **out, slm_error *err) {
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.allocator = params->allocator;
    *out = NULL;
    slm_status st = model_new(&mp, out, err);
    if (st != SLM_OK) return st;
    slm_model *m = *out;
    st = model_map_file(m, in, 1, err);
    if (st == SLM_OK) st = gguf_parse(&m->g, m->bytes, m->size, &m->a, err);
    return st;
}

/* What the choice of types needs to know of the whole file: the attention-V
   matrices, an output matrix, the layer count. */
static void quant_survey(const gguf_file *g, quant_plan *q) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const char *nm = g->tensors[i].name;
        if (strstr(nm, "attn_v.weight") || strstr(nm, "attn_qkv.weight") || strstr(nm, "attn_kv_b.weight"))
            q->n_attn_v++;
        if (!strcmp(nm, "output.weight")) q->has_output = 1;
    }
    const gguf_kv *ak = gguf_get(g, "general.architecture");
    char key[128];
    int64_t v = 0;
    if (ak && ak->type == SLM_META_STRING) {
        fmt_sn(key, sizeof key, "%s.block_count", ak->str[0]);
        const gguf_kv *bk = gguf_get(g, key);
        if (bk && kv_int(g, bk, -1, &v) == SLM_OK && v > 0 && v < (1 << 20)) q->n_layer = (int)v;
    }
    if (!q->n_layer) q->n_layer = SLM_MAX(1, q->n_attn_v);
}

/* The plan: a type per tensor in types[g->n_tensors], checked before
   anything is written. */
static slm_status quant_types(const gguf_file *g, const slm_quantize_params *params, quant_plan *q, int *types,
                              slm_error *err) {
    slm_status st = SLM_OK;
    for (uint64_t i = 0; i < g->n_tensors && st == SLM_OK; i++) {
        const gguf_tensor *t = &g->tensors[i];
        int fb = 0, ty = quantizable(t) ? plan_type(q, t, &fb) : t->type;
        if (fb) {
            q->n_fallback++;
            log_to(params->log, params->log_user, SLM_LOG_WARN, "%s: row length %lld is not a multiple of %d: %s instead",
                   t->name, (long long)t->ne[0], type_size_of(params->type)->blck, slm_type_name(ty));
        }
        if (ty != t->type && (!TRAITS[t->type].to_float || !TRAITS[ty].from_float))
            st = seterr(err, SLM_ERR_UNSUPPORTED, "tensor '%s': cannot convert %s to %s", t->name,
                        slm_type_name(t->type), slm_type_name(ty));
        else if (ty != t->type && type_size_of(t->type)->blck > 1)
            log_to(params->log, params->log_user, SLM_LOG_WARN,
                   "%s: requantizing %s to %s adds the errors of both; quantize from F32/F16/BF16 if you can", t->name,
                   slm_type_name(t->type), slm_type_name(ty));
        types[i] = ty;
    }
    return st;
}

/* The output's metadata (the input's, with the new file type, one file:
   no split.* keys) and its tensor directory, into the writer. */
static slm_status quant_directory(gguf_writer *w, const gguf_file *g, const struct quant_name *qn, const int *types,
                                  slm_quantize_stats *stats) {
    int have_ft = 0, have_qv = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        size_t b, e;
        if (!strcmp(kv->key, "general.file_type")) {
            gw_kv_u32(w, kv->key, (uint32_t)qn->ftype);
            have_ft = 1;
        } else if (!strcmp(kv->key, "general.quantization_version")) {
            gw_kv_u32(w, kv->key, 2);
            have_qv = 1;
        } else if (!strncmp(kv->key, "split.", 6)) {
            continue; /* one file out */
        } else if (kv_span(g, kv, &b, &e)) {
            gw_kv_raw(w, kv->key, kv->type, g->data + b, e - b);
        }
    }
    if (!have_qv) gw_kv_u32(w, "general.quantization_version", 2);
    if (!have_ft) gw_kv_u32(w, "general.file_type", (uint32_t)qn->ftype);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        stats->bytes_out += gw_tensor(w, t->name, types[i], t->n_dims, t->ne);
    }
    return w->st;
}

/* Every tensor's bytes in directory order: copied, or converted to its
   planned type. */
static slm_status quant_tensors(gguf_writer *w, const gguf_file *g, const int *types, const slm_quantize_params *params,
                                const allocator *a, slm_quantize_stats *stats) {
    const int nth = params->n_threads > 0 ? params->n_threads : default_threads();
    for (uint64_t i = 0; i < g->n_tensors && w->st == SLM_OK; i++) {
        const gguf_tensor *t = &g->tensors[i];
        const uint8_t *data = g->data + g->data_off + t->offset;
        const int64_t nrows = (int64_t)(t->nbytes / row_bytes(t->type, t->ne[0]));
        if (types[i] == t->type) {
            gw_write_data(w, data, (size_t)t->nbytes);
        } else {
            convert_tensor(w, a, data, t->type, types[i], t->ne[0], nrows, nth);
            stats->n_converted++;
        }
        gw_end_tensor(w);
        stats->bytes_in += t->nbytes;
        if (types[i] >= 0 && types[i] < 40) stats->n_by_type[types[i]]++;
        log_to(params->log, params->log_user, SLM_LOG_INFO, "[%4llu/%4llu] %-32s %-6s -> %-6s %10.3f -> %8.3f MiB",
               (unsigned long long)i + 1, (unsigned long long)g->n_tensors, t->name, slm_type_name(t->type),
               slm_type_name(types[i]), t->nbytes / 1048576.0,
               row_bytes(types[i], t->ne[0]) * (double)nrows / 1048576.0);
    }
    return w->st;
}

/* Checked gates over the steps above; one cleanup path. The output is a
   temp file renamed into place at the end, never the input itself. */
slm_status slm_quantize_file(const char *in, const char *out, const slm_quantize_params *params,
                             slm_quantize_stats *stats, slm_error *err) {
    slm_quantize_params dp;
    slm_quantize_stats sdummy;
    clearerr_(err);
    if (!params) {
        slm_quantize_params_init(&dp);
        params = &dp;
    }
    if (!stats) stats = &sdummy;
    memset(stats, 0, sizeof *stats);
    if (!in || !out) return seterr(err, SLM_ERR_INVALID_ARG, "input or output path is NULL");
    const struct quant_name *qn = quant_name_of(params->type, params->mix);
    if (!qn)
        return seterr(err, SLM_ERR_UNSUPPORTED, "cannot quantize to type %d with mix %d (%s)", (int)params->type,
                      (int)params->mix, slm_type_name(params->type) ? slm_type_name(params->type) : "unknown type");

    slm_model *m = NULL;
    const gguf_file *g = NULL;
    int *types = NULL;
    size_t types_bytes = 0;
    gguf_writer w;
    int have_writer = 0;
#if !defined(SLM_NO_STDIO)
    ofile of;
    int opened = 0;
#endif
    quant_plan q;
    memset(&q, 0, sizeof q);
    q.type = params->type;
    q.mix = params->mix;

    slm_status st = quant_input(in, params, &m, err);
    if (st != SLM_OK) goto done;
    g = &m->g;
    quant_survey(g, &q);
    types_bytes = (size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof(int);
    if (!(types = (int *)xalloc(&m->a, types_bytes))) {
        st = seterr(err, SLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = quant_types(g, params, &q, types, err)) != SLM_OK) goto done;
    gw_init(&w, &m->a, g->alignment, err);
    have_writer = 1;
    if ((st = quant_directory(&w, g, qn, types, stats)) != SLM_OK) goto done;
#if !defined(SLM_NO_STDIO)
    if ((st = of_open(&of, &m->a, out, in, err)) != SLM_OK) goto done;
    opened = 1;
    gw_write_header_of(&w, &of);
    st = quant_tensors(&w, g, types, params, &m->a, stats);
#else
    (void)quant_tensors;
    st = seterr(err, SLM_ERR_UNSUPPORTED, "cannot write '%s': built with SLM_NO_STDIO", out);
#endif

done:
#if !defined(SLM_NO_STDIO)
    if (opened) {
        stats->file_out = of.written;
        if (st == SLM_OK) st = of_commit(&of); /* only now does `out` change */
        else of_abort(&of);                    /* removes our temp file, nothing else */
        if (st != SLM_OK) stats->file_out = 0;
    }
#endif
    if (g) {
        stats->n_tensors = (int32_t)g->n_tensors;
        stats->n_fallback = q.n_fallback;
        stats->file_in = m->size;
    }
    if (have_writer) gw_free(&w);
    if (types) xfree(&m->a, types, types_bytes);
    if (m) model_release(m);
    return st;
}
/* ========================================================================== */
/* E. Kernels: the scalar reference (appendix)                                */
/* ========================================================================== */
/*
 * 6a. Scalar reference: written to be obviously correct; named *_ref.
 * 6b-6f. One subsection per instruction set (AVX2, SSE4.1, NEON, RVV,
 *     Helium), compiled only for that target (section 1 picks it). Each
 *     kernel has exactly the signature of its reference and is tested
 *     against it.
 * 6g. The kernels TRAITS points at: for each, the SIMD version this target
 *     has, else the reference. A new type adds its *_ref kernels to 6a and,
 *     when it gets SIMD versions, one K_* line per ISA and one wrapper in 6g
 *     (plus a case in vec_dot4_of for a 4-token kernel).
 *
 * Rules every SIMD kernel keeps: the activation quantizer and the f16/bf16
 * conversions give the same bits as the reference (round half to even,
 * same scale arithmetic), so a model's results do not depend on the ISA
 * beyond the summation order of the dot products. Activations quantized to
 * Q8_0 lie in [-127, 127] (never -128), which the int8 kernels rely on.
 */

/* The SIMD kernels of a type with a 4-token variant are one function with
   a token count nt of 1 or 4, forced inline into both so the count folds
   away and the two give the same bits. */
#if defined(__GNUC__) || defined(__clang__)
#define SLM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define SLM_ALWAYS_INLINE inline
#endif

/* Full unrolling of the short loops over the parts of a super-block makes
   their shifts and scale indices constants (GCC at -O2 would not unroll). */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#define SLM_PRAGMA(x) _Pragma(#x)
#define SLM_UNROLL(n) SLM_PRAGMA(GCC unroll n)
#else
#define SLM_UNROLL(n)
#endif

/* the 1-token and 4-token entry points of a kernel name_isa(n, x, y, rb, nt, yo, ldy) */
#define K_ENTRIES(name, isa)                                                                                         \
    static float dot_##name##_##isa(int n, const void *w, const void *a) {                                          \
        float r;                                                                                                     \
        name##_##isa(n, (const uint8_t *)w, (const uint8_t *)a, 0, 1, &r, 0);                                       \
        return r;                                                                                                    \
    }                                                                                                                \
    static void dot4_##name##_##isa(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {     \
        name##_##isa(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, yo, ldy);                                  \
    }

/* F32 data in slm's buffers is little-endian, like GGUF's: a copy on
   little-endian hosts, a byte swap on big-endian ones. */
/* K-quant kernels of every ISA: one step for the nt tokens (1 or 4), i0..i3
   their integer lanes, q8 the first token's activations, rb the row bytes;
   and the end of a super-block, the lanes times the scales (fn: the ISA's)
   into s0..s3. */
#define K_TOKENS(step, ...)                                                                                          \
    do {                                                                                                             \
        i0 = step(i0, __VA_ARGS__, q8);                                                                              \
        if (nt == 4) {                                                                                               \
            i1 = step(i1, __VA_ARGS__, q8 + rb);                                                                     \
            i2 = step(i2, __VA_ARGS__, q8 + 2 * rb);                                                                 \
            i3 = step(i3, __VA_ARGS__, q8 + 3 * rb);                                                                 \
        }                                                                                                            \
    } while (0)
#define K_SCALE(fn, xd)                                                                                              \
    do {                                                                                                             \
        s0 = fn(s0, i0, xd, y);                                                                                      \
        if (nt == 4) {                                                                                               \
            s1 = fn(s1, i1, xd, y + rb);                                                                             \
            s2 = fn(s2, i2, xd, y + 2 * rb);                                                                         \
            s3 = fn(s3, i3, xd, y + 3 * rb);                                                                         \
        }                                                                                                            \
    } while (0)

static void f32_to_float(const void *src, float *dst, int64_t n) {
    if (!SLM_BIG_ENDIAN) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i] = ld_f32((const uint8_t *)src + 4 * i);
}

static void f32_from_float(const float *src, void *dst, int64_t n) {
    if (!SLM_BIG_ENDIAN) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < n; i++) st_f32((uint8_t *)dst + 4 * i, src[i]);
}

/* x[i] = exp(x[i] - mx) (mx: the maximum, so every argument is <= 0), and
   their sum: the body of softmax. */
static SLM_UNUSED double exp_sum_ref(float *x, int n, float mx) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    return sum;
}

/* The reference of qk_rows_f16 (flash attention's scores, a dot_rows_fn
   whose kernels sum in their own order): out[j * out_stride + r] = F16 row r
   . a_j, in double. */
static SLM_UNUSED void qk_rows_f16_ref(int n, const void *rows, size_t stride, int nrows, const float *a, size_t a_stride,
                                       int na, float *out, size_t out_stride) {
    for (int r = 0; r < nrows; r++) {
        const uint8_t *x = (const uint8_t *)rows + (size_t)r * stride;
        for (int j = 0; j < na; j++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += (double)ld_f16(x + 2 * i) * a[(size_t)j * a_stride + i];
            out[(size_t)j * out_stride + r] = (float)s;
        }
    }
}

/* Accumulations that ggml does in float are done in double here, so the
   reference is the more exact of the two. The *_ref kernels are SLM_UNUSED:
   on SIMD targets only the tests and the benchmark call them. */
static SLM_UNUSED float dot_f32_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)ld_f32(x + 4 * i) * ld_f32(y + 4 * i);
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
   results agree with llama.cpp and are the same on every platform). */
static SLM_UNUSED void q8_0_from_float_ref(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK8_0; i++, b += 34, src += QK8_0) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = SLM_MAX(amax, fabsf(src[j]));
        /* below 1e-30 the fp16 scale is 0 anyway; 127/amax could overflow */
        float d = amax / 127.0f, id = amax > 1e-30f ? 127.0f / amax : 0.0f;
        st_u16(b, f32_to_fp16(d));
        for (int j = 0; j < QK8_0; j++) b[2 + j] = (uint8_t)(int8_t)round_even(clamp127(src[j] * id));
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
            float f0 = src[j] * id + 8.5f, f1 = src[j + 16] * id + 8.5f;
            /* clamp in float: a NaN weight becomes 0 instead of an undefined cast */
            int q0 = f0 >= 0.0f ? (f0 < 15.0f ? (int)f0 : 15) : 0;
            int q1 = f1 >= 0.0f ? (f1 < 15.0f ? (int)f1 : 15) : 0;
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

/* Q4_1: offset grid (min..max), for the Q8_1 activations. */
static void q4_1_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / 32; i++, b += 20, dst += 32) {
        float d = ld_f16(b), m = ld_f16(b + 2);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)(b[4 + j] & 15) * d + m;
            dst[j + 16] = (float)(b[4 + j] >> 4) * d + m;
        }
    }
}

/* Clamped round-half-even (the float->int step of every quantizer). */
static inline int qround(float x, int lo, int hi) {
    if (!(x > -4.0e6f)) x = -4.0e6f; /* also catches NaN */
    if (x > 4.0e6f) x = 4.0e6f;
    int v = round_even(x);
    return v < lo ? lo : v > hi ? hi : v;
}

/* Block minimum and maximum of n values. */
static void min_max(const float *x, int n, float *lo, float *hi) {
    float a = x[0], b = x[0];
    for (int j = 1; j < n; j++) a = SLM_MIN(a, x[j]), b = SLM_MAX(b, x[j]);
    *lo = a, *hi = b;
}

/* Offset grid of 2^bits levels from min to max: d and m stored as f16, the
   levels chosen against the rounded values that the decoder will use. */
static void offset_block(const float *x, int bits, uint8_t *q, uint8_t *dm) {
    float lo, hi;
    min_max(x, 32, &lo, &hi);
    int nmax = (1 << bits) - 1;
    st_u16(dm, f32_to_fp16((hi - lo) / (float)nmax));
    st_u16(dm + 2, f32_to_fp16(lo));
    float d = ld_f16(dm), m = ld_f16(dm + 2), id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) q[j] = (uint8_t)qround((x[j] - m) * id, 0, nmax);
}

static void q4_1_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst, q[32];
    for (int64_t i = 0; i < n / 32; i++, b += 20, src += 32) {
        offset_block(src, 4, q, b);
        for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(q[j] | (q[j + 16] << 4));
    }
}

static SLM_UNUSED float dot_q4_1_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0, sm = 0; /* the min terms are summed apart, as ggml does */
    for (int i = 0; i < n / 32; i++, x += 20, y += 36) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += (x[4 + j] & 15) * (int8_t)y[4 + j];
            isum += (x[4 + j] >> 4) * (int8_t)y[4 + j + 16];
        }
        s += (float)isum * (ld_f16(x) * ld_f16(y));
        sm += ld_f16(x + 2) * ld_f16(y + 2);
    }
    return s + sm;
}

/* Q5_0 / Q5_1: the fifth bit of value j is bit j of the u32 qh. */
static inline int q5_level(const uint8_t *qh, const uint8_t *qs, int j) {
    int lo = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
    return lo | (int)((ld_u32(qh) >> j) & 1u) << 4;
}

static void q5_pack(const uint8_t *q, uint8_t *qh, uint8_t *qs) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | ((q[j + 16] & 15) << 4));
    for (int j = 0; j < 32; j++) h |= (uint32_t)(q[j] >> 4) << j;
    st_u32(qh, h);
}

static void q5_0_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / 32; i++, b += 22, dst += 32) {
        float d = ld_f16(b);
        for (int j = 0; j < 32; j++) dst[j] = (float)(q5_level(b + 2, b + 6, j) - 16) * d;
    }
}

/* As Q4_0: the value of largest magnitude maps to -16. */
static void q5_0_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst, q[32];
    for (int64_t i = 0; i < n / 32; i++, b += 22, src += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(src[j]) > amax) amax = fabsf(src[j]), max = src[j];
        float d = max / -16.0f, id = d != 0 ? 1.0f / d : 0.0f;
        st_u16(b, f32_to_fp16(d));
        for (int j = 0; j < 32; j++) q[j] = (uint8_t)SLM_MIN(31, SLM_MAX(0, (int)(src[j] * id + 16.5f)));
        q5_pack(q, b + 2, b + 6);
    }
}

static SLM_UNUSED float dot_q5_0_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / 32; i++, x += 22, y += 34) {
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += (q5_level(x + 2, x + 6, j) - 16) * (int8_t)y[2 + j];
        s += (float)isum * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

static void q5_1_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / 32; i++, b += 24, dst += 32) {
        float d = ld_f16(b), m = ld_f16(b + 2);
        for (int j = 0; j < 32; j++) dst[j] = (float)q5_level(b + 4, b + 8, j) * d + m;
    }
}

static void q5_1_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst, q[32];
    for (int64_t i = 0; i < n / 32; i++, b += 24, src += 32) {
        offset_block(src, 5, q, b);
        q5_pack(q, b + 4, b + 8);
    }
}

static SLM_UNUSED float dot_q5_1_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0, sm = 0;
    for (int i = 0; i < n / 32; i++, x += 24, y += 36) {
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += q5_level(x + 4, x + 8, j) * (int8_t)y[4 + j];
        s += (float)isum * (ld_f16(x) * ld_f16(y));
        sm += ld_f16(x + 2) * ld_f16(y + 2);
    }
    return s + sm;
}

/* Q8_1: activations for Q4_1/Q5_1. Like Q8_0 (ggml's x86 path: scale
   amax/127, ties to even) plus s = d * sum(q), both as f16, s computed from
   the unrounded d as ggml does. */
static void q8_1_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / 32; i++, b += 36, dst += 32) {
        float d = ld_f16(b);
        for (int j = 0; j < 32; j++) dst[j] = d * (float)(int8_t)b[4 + j];
    }
}

static SLM_UNUSED void q8_1_from_float_ref(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / 32; i++, b += 36, src += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = SLM_MAX(amax, fabsf(src[j]));
        float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = round_even(src[j] * id);
            b[4 + j] = (uint8_t)(int8_t)q;
            sum += q;
        }
        st_u16(b, f32_to_fp16(d));
        st_u16(b + 2, f32_to_fp16(d * (float)sum));
    }
}

/* IQ4_NL: Q4_0's layout on the IQ4_VALUES grid. */
static void iq4_nl_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / 32; i++, b += 18, dst += 32) {
        float d = ld_f16(b);
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)IQ4_VALUES[b[2 + j] & 15];
            dst[j + 16] = d * (float)IQ4_VALUES[b[2 + j] >> 4];
        }
    }
}

/* Index of the IQ4 level nearest to v (ties go up). */
static int iq4_nearest(float v) {
    /* midpoints between neighbouring levels: count those at or below v
       (branch-free; a value exactly between two levels goes up) */
    static const float mid[15] = {-115.5f, -93.5f, -74.0f, -57.0f, -42.0f, -28.5f, -16.0f, -4.5f,
                                  7.0f,    19.0f,  31.5f,  45.5f,  61.0f,  79.0f,  101.0f};
    int idx = 0;
    for (int i = 0; i < 15; i++) idx += v >= mid[i];
    return idx;
}

/* Scale of 32 values on the IQ4 grid, weights x^2. Candidate grids put the
   extreme value at +127 and at -127 + t for |t| <= 7 (the grid is longer on
   the negative side); each assignment gets its least-squares scale and the
   one with the least weighted error (largest sum(wqx)^2/sum(wq^2)) wins. */
static float iq4_fit(const float *x) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    if (amax < 1e-15f) return 0;
    float best_d = 0, best = -1;
    for (int t = -8; t <= 7; t++) {
        float id = t == -8 ? 127.0f / max : ((float)t - 127.0f) / max;
        float sqx = 0, sq2 = 0;
        for (int j = 0; j < 32; j++) {
            float q = (float)IQ4_VALUES[iq4_nearest(id * x[j])], w = x[j] * x[j];
            sqx += w * q * x[j];
            sq2 += w * q * q;
        }
        if (sq2 > 0 && (best < 0 || sqx * sqx > best * sq2)) best_d = sqx / sq2, best = best_d * sqx;
    }
    return best_d;
}

/* Nibbles of 32 values against the scale d (as the decoder will see it). */
static void iq4_pack(const float *x, float d, uint8_t *qs) {
    float id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(iq4_nearest(x[j] * id) | (iq4_nearest(x[j + 16] * id) << 4));
}

static void iq4_nl_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / 32; i++, b += 18, src += 32) {
        st_u16(b, f32_to_fp16(iq4_fit(src)));
        iq4_pack(src, ld_f16(b), b + 2);
    }
}

static SLM_UNUSED float dot_iq4_nl_ref(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / 32; i++, x += 18, y += 34) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += IQ4_VALUES[x[2 + j] & 15] * (int8_t)y[2 + j];
            isum += IQ4_VALUES[x[2 + j] >> 4] * (int8_t)y[2 + j + 16];
        }
        s += (float)isum * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

/* --- K-quants ------------------------------------------------------------ */
/*
 * Every K-quant super-block is first decoded to integers (kblock), then
 * dequantized or dotted by one shared routine each: the reference is the
 * layout decoder plus the arithmetic, and the arithmetic is ggml's: integer
 * sums per sub-block times the integer sub-block scale, then one float
 * multiply by d_w * d_a; the mins enter as dmin_w * d_a * sum(m * bsums).
 */

typedef struct kblock {
    float d, dmin;      /* super-block scale and min scale (dmin 0: no mins) */
    int sub;            /* values per sub-block: 16 or 32 */
    int sc[16], mn[16]; /* integer scale and min of each sub-block */
    int8_t q[QK_K];     /* integer levels */
} kblock;

static void kblock_to_float(const kblock *k, float *y) {
    for (int s = 0; s < QK_K / k->sub; s++) {
        const float dl = k->d * (float)k->sc[s], ml = k->dmin * (float)k->mn[s];
        for (int i = s * k->sub; i < (s + 1) * k->sub; i++) y[i] = dl * (float)k->q[i] - ml;
    }
}

/* Dot of a decoded super-block with one Q8_K block. */
static float kblock_dot(const kblock *k, const uint8_t *y) {
    const int8_t *q8 = (const int8_t *)(y + 4);
    const uint8_t *bsums = y + 260;
    int32_t isum = 0, imin = 0;
    if (k->sub == 16) {
        for (int s = 0; s < 16; s++) {
            int32_t t = 0;
            for (int i = 16 * s; i < 16 * s + 16; i++) t += k->q[i] * q8[i];
            isum += k->sc[s] * t;
            imin += k->mn[s] * (int16_t)ld_u16(bsums + 2 * s);
        }
    } else {
        for (int s = 0; s < 8; s++) {
            int32_t t = 0;
            for (int i = 32 * s; i < 32 * s + 32; i++) t += k->q[i] * q8[i];
            isum += k->sc[s] * t;
            imin += k->mn[s] * ((int16_t)ld_u16(bsums + 4 * s) + (int16_t)ld_u16(bsums + 4 * s + 2));
        }
    }
    const float d8 = ld_f32(y);
    float r = (k->d * d8) * (float)isum;
    if (k->dmin != 0) r -= (k->dmin * d8) * (float)imin;
    return r;
}

static void unpack_q2_k(const uint8_t *b, kblock *k) {
    k->d = ld_f16(b + 80);
    k->dmin = ld_f16(b + 82);
    k->sub = 16;
    for (int s = 0; s < 16; s++) k->sc[s] = b[s] & 15, k->mn[s] = b[s] >> 4;
    for (int h = 0; h < 2; h++)
        for (int kk = 0; kk < 4; kk++)
            for (int l = 0; l < 32; l++) k->q[128 * h + 32 * kk + l] = (int8_t)((b[16 + 32 * h + l] >> (2 * kk)) & 3);
}

static int q3_k_scale(const uint8_t *sc, int s) {
    int lo = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4;
    int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | hi << 4) - 32;
}

static void unpack_q3_k(const uint8_t *b, kblock *k) {
    const uint8_t *hm = b, *qs = b + 32;
    k->d = ld_f16(b + 108);
    k->dmin = 0;
    k->sub = 16;
    for (int s = 0; s < 16; s++) k->sc[s] = q3_k_scale(b + 96, s), k->mn[s] = 0;
    for (int h = 0; h < 2; h++)
        for (int kk = 0; kk < 4; kk++)
            for (int l = 0; l < 32; l++)
                k->q[128 * h + 32 * kk + l] =
                    (int8_t)(((qs[32 * h + l] >> (2 * kk)) & 3) - (((hm[l] >> (4 * h + kk)) & 1) ? 0 : 4));
}

/* 6-bit scale and min s of the Q4_K/Q5_K 12-byte table. */
static void k4_scale_min(const uint8_t *sc, int s, int *d, int *m) {
    if (s < 4) {
        *d = sc[s] & 63;
        *m = sc[s + 4] & 63;
    } else {
        *d = (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4);
        *m = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
    }
}

static void unpack_q4_k(const uint8_t *b, kblock *k) {
    const uint8_t *qs = b + 16;
    k->d = ld_f16(b);
    k->dmin = ld_f16(b + 2);
    k->sub = 32;
    for (int s = 0; s < 8; s++) k4_scale_min(b + 4, s, &k->sc[s], &k->mn[s]);
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            k->q[64 * g + l] = (int8_t)(qs[32 * g + l] & 15);
            k->q[64 * g + 32 + l] = (int8_t)(qs[32 * g + l] >> 4);
        }
}

static void unpack_q5_k(const uint8_t *b, kblock *k) {
    const uint8_t *qh = b + 16, *qs = b + 48;
    k->d = ld_f16(b);
    k->dmin = ld_f16(b + 2);
    k->sub = 32;
    for (int s = 0; s < 8; s++) k4_scale_min(b + 4, s, &k->sc[s], &k->mn[s]);
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            k->q[64 * g + l] = (int8_t)((qs[32 * g + l] & 15) | (((qh[l] >> (2 * g)) & 1) << 4));
            k->q[64 * g + 32 + l] = (int8_t)((qs[32 * g + l] >> 4) | (((qh[l] >> (2 * g + 1)) & 1) << 4));
        }
}

static void unpack_q6_k(const uint8_t *b, kblock *k) {
    const uint8_t *ql = b, *qh = b + 128;
    k->d = ld_f16(b + 208);
    k->dmin = 0;
    k->sub = 16;
    for (int s = 0; s < 16; s++) k->sc[s] = (int8_t)b[192 + s], k->mn[s] = 0;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int a = ql[64 * h + l], c = ql[64 * h + 32 + l], hi = qh[32 * h + l];
            int8_t *q = k->q + 128 * h + l;
            q[0] = (int8_t)(((a & 15) | (hi & 3) << 4) - 32);
            q[32] = (int8_t)(((c & 15) | ((hi >> 2) & 3) << 4) - 32);
            q[64] = (int8_t)(((a >> 4) | ((hi >> 4) & 3) << 4) - 32);
            q[96] = (int8_t)(((c >> 4) | ((hi >> 6) & 3) << 4) - 32);
        }
}

static void unpack_iq4_xs(const uint8_t *b, kblock *k) {
    const unsigned sh = ld_u16(b + 2);
    const uint8_t *sl = b + 4, *qs = b + 8;
    k->d = ld_f16(b);
    k->dmin = 0;
    k->sub = 32;
    for (int s = 0; s < 8; s++) k->sc[s] = (int)(((sl[s / 2] >> (4 * (s % 2))) & 15) | (((sh >> (2 * s)) & 3) << 4)) - 32, k->mn[s] = 0;
    for (int s = 0; s < 8; s++)
        for (int j = 0; j < 16; j++) {
            k->q[32 * s + j] = IQ4_VALUES[qs[16 * s + j] & 15];
            k->q[32 * s + j + 16] = IQ4_VALUES[qs[16 * s + j] >> 4];
        }
}

/* The to_float and vec_dot of each K type: decode, then the shared part. */
#define KQUANT_KERNELS(name, bytes)                                                 \
    static void name##_to_float(const void *src, float *dst, int64_t n) {           \
        const uint8_t *b = (const uint8_t *)src;                                    \
        kblock k;                                                                   \
        for (int64_t i = 0; i < n / QK_K; i++, b += (bytes), dst += QK_K) {         \
            unpack_##name(b, &k);                                                   \
            kblock_to_float(&k, dst);                                               \
        }                                                                           \
    }                                                                               \
    static SLM_UNUSED float dot_##name##_ref(int n, const void *w, const void *a) {  \
        const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;             \
        kblock k;                                                                   \
        float s = 0;                                                                \
        for (int i = 0; i < n / QK_K; i++, x += (bytes), y += 292) {                \
            unpack_##name(x, &k);                                                   \
            s += kblock_dot(&k, y);                                                 \
        }                                                                           \
        return s;                                                                   \
    }

KQUANT_KERNELS(q2_k, 84)
KQUANT_KERNELS(q3_k, 110)
KQUANT_KERNELS(q4_k, 144)
KQUANT_KERNELS(q5_k, 176)
KQUANT_KERNELS(q6_k, 210)
KQUANT_KERNELS(iq4_xs, 136)
#undef KQUANT_KERNELS

/* For the SIMD kernels: the packed scale tables decoded four bytes at a
   time (u[] read as bytes on little-endian hosts, which the SIMD paths
   are). Q4_K/Q5_K: the 8 6-bit scales, then the 8 mins. Q3_K: the 16
   scales as 6-bit values, not yet minus 32. */
static SLM_UNUSED inline void k4_scales_u32(const uint8_t *s, uint32_t u[4]) {
    const uint32_t a = ld_u32(s), b = ld_u32(s + 4), c = ld_u32(s + 8);
    u[0] = a & 0x3f3f3f3fu;
    u[1] = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
    u[2] = b & 0x3f3f3f3fu;
    u[3] = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
}

static SLM_UNUSED inline void q3_k_scales_u32(const uint8_t *s, uint32_t u[4]) {
    const uint32_t a = ld_u32(s), b = ld_u32(s + 4), c = ld_u32(s + 8);
    u[0] = (a & 0x0f0f0f0fu) | (c & 0x03030303u) << 4;
    u[1] = (b & 0x0f0f0f0fu) | ((c >> 2) & 0x03030303u) << 4;
    u[2] = ((a >> 4) & 0x0f0f0f0fu) | ((c >> 4) & 0x03030303u) << 4;
    u[3] = ((b >> 4) & 0x0f0f0f0fu) | ((c >> 6) & 0x03030303u) << 4;
}

/* IQ4_XS sub-block scale s (signed) */
static SLM_UNUSED inline int iq4_xs_scale(const uint8_t *b, int s) {
    return (int)(((b[4 + s / 2] >> (4 * (s % 2))) & 15) | (((ld_u16(b + 2) >> (2 * s)) & 3) << 4)) - 32;
}

/* Q8_K: activations for the K-quants, as ggml's quantize_row_q8_K_ref: the
   value of largest magnitude maps to -127 (so d = 1/iscale may be
   negative), ties to even, and bsums[s] = sum of qs[16s .. 16s+15]. */
static void q8_k_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = (const uint8_t *)src;
    for (int64_t i = 0; i < n / QK_K; i++, b += 292, dst += QK_K) {
        float d = ld_f32(b);
        for (int j = 0; j < QK_K; j++) dst[j] = d * (float)(int8_t)b[4 + j];
    }
}

static SLM_UNUSED void q8_k_from_float_ref(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK_K; i++, b += 292, src += QK_K) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(src[j]) > amax) amax = fabsf(src[j]), max = src[j];
        if (amax == 0) {
            memset(b, 0, 292);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) b[4 + j] = (uint8_t)(int8_t)SLM_MIN(127, round_even(iscale * src[j]));
        for (int s = 0; s < 16; s++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += (int8_t)b[4 + 16 * s + j];
            st_u16(b + 260 + 2 * s, (uint16_t)(int16_t)sum);
        }
        st_f32(b, 1.0f / iscale);
    }
}



/* K-quant x8 groups (section 5) against nt <= 4 Q8_K rows: the reference of
   the SIMD x8 kernels, which give its bits (for the tests: scalar builds
   keep the GGUF layout and the one-row kernels). Per super-block, row and token
   the integer sums are exact; the float steps are Q4_K: y += (d_w d_a) isum
   then y -= (dmin_w d_a) msum (two FMAs), Q5_K likewise; Q6_K: y += (d_w d_a) (isum - 32
   osum) (one FMA), isum the scaled sum of the unsigned 6-bit quants times
   the activations, osum the scales times the activations' 16-sums. */
/* a * b + c rounded once, as the kernels' FMA instructions: the product of
   two floats is exact in a double, so only the sum rounds (twice, to double
   then float: a different result needs a sum within 2^-29 of a float
   midpoint). Not fmaf(): mingw-w64's is a multiply and then an add. */
static inline float fma_ref(float a, float b, float c) { return (float)((double)a * (double)b + (double)c); }

static void gemm_kx8_ref(int type, int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                         int64_t ldy) {
    const int bb = x8_block_bytes(type);
    float acc[4][8] = {{0}};
    for (int b = 0; b < n / QK_K; b++, w += bb) {
        for (int t = 0; t < nt; t++) {
            const uint8_t *at = a + (size_t)t * a_rb + (size_t)b * 292;
            const int8_t *aq = (const int8_t *)(at + 4);
            const float da = ld_f32(at);
            for (int r = 0; r < 8; r++) {
                int32_t isum = 0, msum = 0;
                if (type != SLM_TYPE_Q6_K) { /* Q4_K, Q5_K */
                    const int q5 = type == SLM_TYPE_Q5_K;
                    for (int s = 0; s < 8; s++) {
                        const int lo = w[32 + 32 * (s / 4) + KX8_POS(s, r)], hi = w[96 + KX8_POS(s, r)] >> (4 * (s / 4));
                        const int sc = (lo & 15) | (hi & 3) << 4, m = (lo >> 4) | ((hi >> 2) & 3) << 4;
                        const uint8_t *os = w + 128 + (q5 ? 160 : 128) * s;
                        int32_t dot = 0;
                        for (int c = 0; c < 4; c++)
                            for (int j = 0; j < 4; j++) {
                                const int v = os[(q5 ? 32 : 0) + 32 * c + 4 * r + j], h = q5 ? os[4 * r + j] : 0;
                                const int ql = (v & 15) | ((h >> c) & 1) << 4, qh = (v >> 4) | ((h >> (4 + c)) & 1) << 4;
                                dot += ql * aq[32 * s + 8 * c + j] + qh * aq[32 * s + 8 * c + 4 + j];
                            }
                        isum += sc * dot;
                        msum += m * ((int16_t)ld_u16(at + 260 + 4 * s) + (int16_t)ld_u16(at + 262 + 4 * s));
                    }
                    const float dw = ld_f16(w + 2 * r), dm = ld_f16(w + 16 + 2 * r);
                    acc[t][r] = fma_ref(dw * da, (float)isum, acc[t][r]);
                    acc[t][r] = fma_ref(-(dm * da), (float)msum, acc[t][r]);
                } else { /* Q6_K */
                    for (int s = 0; s < 16; s++) {
                        const int sc = (int8_t)w[16 + 16 * (s / 2) + 2 * r + s % 2];
                        const uint8_t *op = w + 144 + 192 * (s / 2);
                        int32_t dot = 0;
                        for (int c = 2 * (s % 2); c < 2 * (s % 2) + 2; c++)
                            for (int j = 0; j < 4; j++) {
                                const int v = op[32 * c + 4 * r + j], hb = op[128 + 32 * (c / 2) + 4 * r + j] >> (4 * (c % 2));
                                const int col = 32 * (s / 2) + 8 * c + j;
                                dot += ((v & 15) | (hb & 3) << 4) * aq[col] + ((v >> 4) | ((hb >> 2) & 3) << 4) * aq[col + 4];
                            }
                        isum += sc * dot;
                        msum += sc * (int16_t)ld_u16(at + 260 + 2 * s);
                    }
                    acc[t][r] = fma_ref(ld_f16(w + 2 * r) * da, (float)(isum - 32 * msum), acc[t][r]);
                }
            }
        }
    }
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < 8; r++) y[t * ldy + r] = acc[t][r];
}

static SLM_UNUSED void gemm_q4_kx8_ref(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm_kx8_ref(SLM_TYPE_Q4_K, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

static SLM_UNUSED void gemm_q5_kx8_ref(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm_kx8_ref(SLM_TYPE_Q5_K, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

static SLM_UNUSED void gemm_q6_kx8_ref(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm_kx8_ref(SLM_TYPE_Q6_K, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* -------------------------------------------------------------------------- */
/* E1. x86-64 AVX2 (+FMA, F16C)                                               */
/* -------------------------------------------------------------------------- */
#ifdef SLM_AVX2
SLM_TARGET_AVX2

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

/* exp on 8 lanes for arguments <= 0: 2^k * p(r), r = x - k ln 2 in two
   parts, a degree-7 polynomial (Cephes' expf); within 2 ulp of expf, and 0
   below -87.3 where expf would give a subnormal that no longer changes a
   softmax sum. */
static double exp_sum_avx2(float *x, int n, float mx) {
    const __m256 vmx = _mm256_set1_ps(mx), lo = _mm256_set1_ps(-87.3f), log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f), one = _mm256_set1_ps(1.0f);
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + i), vmx);
        const __m256 keep = _mm256_cmp_ps(v, lo, _CMP_GE_OQ), t = _mm256_max_ps(v, lo);
        const __m256 k = _mm256_round_ps(_mm256_mul_ps(t, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256 r = _mm256_fnmadd_ps(k, c2, _mm256_fnmadd_ps(k, c1, t));
        __m256 p = _mm256_set1_ps(1.9875691500e-4f);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
        p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
        const __m256 y = _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
        _mm256_storeu_ps(x + i, y);
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(y)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)));
    }
    double t4[4];
    _mm256_storeu_pd(t4, _mm256_add_pd(acc0, acc1));
    double sum = (t4[0] + t4[1]) + (t4[2] + t4[3]);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    return sum;
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

/* dot_f16_avx2 over many rows and vectors (dot_rows_fn): per row, up to 3
   vectors at a time share its conversion to floats; the same FMA lanes and
   sums as dot_f16_avx2 for every pair. */
static SLM_ALWAYS_INLINE void dot_rows_f16_pass_avx2(int n, const uint8_t *x, const float *a, size_t a_stride, int nj,
                                                     float *out, size_t out_stride) {
#define LDH(p, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 2 * (i))))
#define FMA4(A, B, C, D, aj)                                                                                           \
    A = _mm256_fmadd_ps(x0, _mm256_loadu_ps(aj), A), B = _mm256_fmadd_ps(x1, _mm256_loadu_ps((aj) + 8), B),           \
    C = _mm256_fmadd_ps(x2, _mm256_loadu_ps((aj) + 16), C), D = _mm256_fmadd_ps(x3, _mm256_loadu_ps((aj) + 24), D)
    /* named accumulators (nj is a constant here): arrays would live on the stack */
    const float *a0 = a, *a1 = a + a_stride, *a2 = a + 2 * a_stride;
    __m256 p0 = _mm256_setzero_ps(), p1 = p0, p2 = p0, p3 = p0, q0 = p0, q1 = p0, q2 = p0, q3 = p0;
    __m256 r0 = p0, r1 = p0, r2 = p0, r3 = p0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256 x0 = LDH(x, i), x1 = LDH(x, i + 8), x2 = LDH(x, i + 16), x3 = LDH(x, i + 24);
        FMA4(p0, p1, p2, p3, a0 + i);
        if (nj > 1) FMA4(q0, q1, q2, q3, a1 + i);
        if (nj > 2) FMA4(r0, r1, r2, r3, a2 + i);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 x0 = LDH(x, i);
        p0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(a0 + i), p0);
        if (nj > 1) q0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(a1 + i), q0);
        if (nj > 2) r0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(a2 + i), r0);
    }
#undef FMA4
#undef LDH
    float s0 = hsum_avx2(_mm256_add_ps(_mm256_add_ps(p0, p1), _mm256_add_ps(p2, p3)));
    float s1 = nj > 1 ? hsum_avx2(_mm256_add_ps(_mm256_add_ps(q0, q1), _mm256_add_ps(q2, q3))) : 0.0f;
    float s2 = nj > 2 ? hsum_avx2(_mm256_add_ps(_mm256_add_ps(r0, r1), _mm256_add_ps(r2, r3))) : 0.0f;
    for (; i < n; i++) {
        const float xv = ld_f16(x + 2 * i);
        s0 += xv * a0[i];
        if (nj > 1) s1 += xv * a1[i];
        if (nj > 2) s2 += xv * a2[i];
    }
    out[0] = s0;
    if (nj > 1) out[out_stride] = s1;
    if (nj > 2) out[2 * out_stride] = s2;
}

/* Flash attention's scores and V sums (qk_rows_f16): 4 F16 rows against up to 3
   queries at a time, 8 lanes per pair over the head, then one reduction
   of the 4 rows' lanes together (hadd) instead of one per pair; every pair
   is summed in the same order, ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)) then
   the tail, whatever rows and queries share the call. */
static SLM_ALWAYS_INLINE void qk_rows4_avx2(int n, const uint8_t *x, size_t stride, int nr, const float *a,
                                           size_t a_stride, int nj, float *out, size_t out_stride) {
    const uint8_t *x0 = x, *x1 = nr > 1 ? x + stride : x, *x2 = nr > 2 ? x + 2 * stride : x,
                  *x3 = nr > 3 ? x + 3 * stride : x;
    const float *a0 = a, *a1 = nj > 1 ? a + a_stride : a, *a2 = nj > 2 ? a + 2 * a_stride : a;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    int i = 0;
#define LDH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 2 * i)))
    for (; i + 8 <= n; i += 8) {
        const __m256 q0 = _mm256_loadu_ps(a0 + i), q1 = _mm256_loadu_ps(a1 + i), q2 = _mm256_loadu_ps(a2 + i);
        __m256 k = LDH(x0);
        c00 = _mm256_fmadd_ps(k, q0, c00), c10 = _mm256_fmadd_ps(k, q1, c10), c20 = _mm256_fmadd_ps(k, q2, c20);
        k = LDH(x1);
        c01 = _mm256_fmadd_ps(k, q0, c01), c11 = _mm256_fmadd_ps(k, q1, c11), c21 = _mm256_fmadd_ps(k, q2, c21);
        k = LDH(x2);
        c02 = _mm256_fmadd_ps(k, q0, c02), c12 = _mm256_fmadd_ps(k, q1, c12), c22 = _mm256_fmadd_ps(k, q2, c22);
        k = LDH(x3);
        c03 = _mm256_fmadd_ps(k, q0, c03), c13 = _mm256_fmadd_ps(k, q1, c13), c23 = _mm256_fmadd_ps(k, q2, c23);
    }
#undef LDH
    const __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(c00, c01), _mm256_hadd_ps(c02, c03));
    const __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(c10, c11), _mm256_hadd_ps(c12, c13));
    const __m256 h2 = _mm256_hadd_ps(_mm256_hadd_ps(c20, c21), _mm256_hadd_ps(c22, c23));
    float s[3][4];
    _mm_storeu_ps(s[0], _mm_add_ps(_mm256_castps256_ps128(h0), _mm256_extractf128_ps(h0, 1)));
    _mm_storeu_ps(s[1], _mm_add_ps(_mm256_castps256_ps128(h1), _mm256_extractf128_ps(h1, 1)));
    _mm_storeu_ps(s[2], _mm_add_ps(_mm256_castps256_ps128(h2), _mm256_extractf128_ps(h2, 1)));
    for (int j = 0; j < nj; j++)
        for (int r = 0; r < nr; r++) {
            float v = s[j][r];
            const uint8_t *xr = x + (size_t)r * stride;
            const float *aj = a + (size_t)j * a_stride;
            for (int t = i; t < n; t++) v += ld_f16(xr + 2 * t) * aj[t];
            out[(size_t)j * out_stride + r] = v;
        }
}

static void qk_rows_f16_avx2(int n, const void *rows, size_t stride, int nrows, const float *a, size_t a_stride, int na,
                             float *out, size_t out_stride) {
    const uint8_t *x = (const uint8_t *)rows;
    for (int r = 0; r < nrows; r += 4, x += 4 * stride) {
        const int nr = SLM_MIN(4, nrows - r);
        for (int j = 0; j < na; j += 3)
            qk_rows4_avx2(n, x, stride, nr, a + (size_t)j * a_stride, a_stride, SLM_MIN(3, na - j),
                          out + (size_t)j * out_stride + r, out_stride);
    }
}

static void dot_rows_f16_avx2(int n, const void *rows, size_t stride, int nrows, const float *a, size_t a_stride, int na,
                              float *out, size_t out_stride) {
    const uint8_t *x = (const uint8_t *)rows;
    for (int r = 0; r < nrows; r++, x += stride) {
        int j = 0;
        for (; j + 3 <= na; j += 3) dot_rows_f16_pass_avx2(n, x, a + (size_t)j * a_stride, a_stride, 3, out + (size_t)j * out_stride + r, out_stride);
        if (na - j == 2) dot_rows_f16_pass_avx2(n, x, a + (size_t)j * a_stride, a_stride, 2, out + (size_t)j * out_stride + r, out_stride);
        else if (na - j == 1) dot_rows_f16_pass_avx2(n, x, a + (size_t)j * a_stride, a_stride, 1, out + (size_t)j * out_stride + r, out_stride);
    }
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

/* ---- The other block types ------------------------------------------------
   Q4_1/Q5_1/Q5_0/IQ4_NL and the Q8_K-partnered types follow ggml's AVX2
   kernels: the same integer lanes (8 int32 per block or super-block, each
   the sum of 4 neighbouring products, times the sub-block scale) and the
   same float steps, so that results match llama.cpp's on x86. */

static inline float hsum4_avx2(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum_i32_avx2(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

/* 16 bytes of nibbles -> 32 bytes 0..15: the low nibbles, then the high */
static inline __m256i nib32_avx2(const uint8_t *q) {
    const __m128i t = _mm_loadu_si128((const __m128i *)q);
    const __m256i v = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* bit j of the little-endian 32-bit word at p -> byte j: 0xff if set, else 0 */
static inline __m256i bits32_avx2(const uint8_t *p) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                          3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32,
                                         64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)ld_u32(p)), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* 16 bytes of IQ4 nibbles -> 32 int8 levels, in value order */
static inline __m256i iq4_unpack_avx2(const uint8_t *q) {
    const __m128i lv = _mm_loadu_si128((const __m128i *)IQ4_VALUES), m = _mm_set1_epi8(15);
    const __m128i t = _mm_loadu_si128((const __m128i *)q);
    const __m128i lo = _mm_shuffle_epi8(lv, _mm_and_si128(t, m));
    const __m128i hi = _mm_shuffle_epi8(lv, _mm_and_si128(_mm_srli_epi16(t, 4), m));
    return _mm256_insertf128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* Q5_0 block -> 32 int8 in [-16, 15]: the nibble, with the top four bits
   set where the fifth bit is clear (nibble - 16) */
static inline __m256i q5_0_unpack_avx2(const uint8_t *b) {
    return _mm256_or_si256(nib32_avx2(b + 6), _mm256_andnot_si256(bits32_avx2(b + 2), _mm256_set1_epi8((char)0xf0)));
}

static float dot_q5_0_avx2(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < n / 32; i++, x += 22, y += 34) {
        const __m256 p = i8dot_avx2(q5_0_unpack_avx2(x), _mm256_loadu_si256((const __m256i *)(y + 2)));
        s = _mm256_fmadd_ps(_mm256_set1_ps(h2f_avx2(x) * h2f_avx2(y)), p, s);
    }
    return hsum_avx2(s);
}

static void dot4_q5_0_avx2(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / 32; i++, x += 22, y += 34) {
        const __m256i q = q5_0_unpack_avx2(x), aq = _mm256_sign_epi8(q, q);
        const float dx = h2f_avx2(x);
        s0 = dot4_step_avx2(s0, aq, q, dx, y);
        s1 = dot4_step_avx2(s1, aq, q, dx, y + a_rb);
        s2 = dot4_step_avx2(s2, aq, q, dx, y + 2 * a_rb);
        s3 = dot4_step_avx2(s3, aq, q, dx, y + 3 * a_rb);
    }
    yo[0] = hsum_avx2(s0), yo[ldy] = hsum_avx2(s1), yo[2 * ldy] = hsum_avx2(s2), yo[3 * ldy] = hsum_avx2(s3);
}

/* 32 unsigned weights against a Q8_1 block's values, 8 lanes, as floats */
static inline __m256 u8dot_avx2(__m256i q, const uint8_t *q8) {
    const __m256i p16 = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* Q4_1/Q5_1 (bits 5: the fifth bits from qh): the min terms m * s summed
   apart in a scalar, as ggml */
static inline __m256 q8_1_step_avx2(__m256 s, float *sm, __m256i q, float xd, float xm, const uint8_t *yb) {
    *sm += xm * h2f_avx2(yb + 2);
    return _mm256_fmadd_ps(_mm256_set1_ps(xd * h2f_avx2(yb)), u8dot_avx2(q, yb + 4), s);
}

static SLM_ALWAYS_INLINE void k41_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                       int64_t ldy, int bits) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
    for (int i = 0; i < n / 32; i++, x += bits == 4 ? 20 : 24, y += 36) {
        const __m256i q = bits == 4 ? nib32_avx2(x + 4)
                                    : _mm256_or_si256(nib32_avx2(x + 8), _mm256_and_si256(bits32_avx2(x + 4), _mm256_set1_epi8(16)));
        const float xd = h2f_avx2(x), xm = h2f_avx2(x + 2);
        s0 = q8_1_step_avx2(s0, &m0, q, xd, xm, y);
        if (nt == 4) {
            s1 = q8_1_step_avx2(s1, &m1, q, xd, xm, y + rb);
            s2 = q8_1_step_avx2(s2, &m2, q, xd, xm, y + 2 * rb);
            s3 = q8_1_step_avx2(s3, &m3, q, xd, xm, y + 3 * rb);
        }
    }
    yo[0] = hsum_avx2(s0) + m0;
    if (nt == 4) yo[ldy] = hsum_avx2(s1) + m1, yo[2 * ldy] = hsum_avx2(s2) + m2, yo[3 * ldy] = hsum_avx2(s3) + m3;
}

static SLM_ALWAYS_INLINE void q4_1_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    k41_avx2(n, x, y, rb, nt, yo, ldy, 4);
}

static SLM_ALWAYS_INLINE void q5_1_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    k41_avx2(n, x, y, rb, nt, yo, ldy, 5);
}

/* IQ4_NL: two accumulators (even and odd blocks), an odd last block added
   in a scalar, as ggml */
static inline float iq4_nl_tail_avx2(__m256i q, const uint8_t *xb, const uint8_t *yb) {
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(yb + 2)), q));
    return h2f_avx2(yb) * h2f_avx2(xb) * (float)hsum_i32_avx2(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

static SLM_ALWAYS_INLINE void iq4_nl_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                          int64_t ldy) {
    const int nb = n / 32;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int i = 0;
    for (; i + 1 < nb; i += 2, x += 36, y += 68) {
        const __m256i p = iq4_unpack_avx2(x + 2), q = iq4_unpack_avx2(x + 20);
        const __m256i ap = _mm256_sign_epi8(p, p), aq = _mm256_sign_epi8(q, q);
        const float dp = h2f_avx2(x), dq = h2f_avx2(x + 18);
        a0 = dot4_step_avx2(a0, ap, p, dp, y), b0 = dot4_step_avx2(b0, aq, q, dq, y + 34);
        if (nt == 4) {
            a1 = dot4_step_avx2(a1, ap, p, dp, y + rb), b1 = dot4_step_avx2(b1, aq, q, dq, y + rb + 34);
            a2 = dot4_step_avx2(a2, ap, p, dp, y + 2 * rb), b2 = dot4_step_avx2(b2, aq, q, dq, y + 2 * rb + 34);
            a3 = dot4_step_avx2(a3, ap, p, dp, y + 3 * rb), b3 = dot4_step_avx2(b3, aq, q, dq, y + 3 * rb + 34);
        }
    }
    float r0 = hsum_avx2(_mm256_add_ps(a0, b0)), r1 = 0, r2 = 0, r3 = 0;
    if (nt == 4) r1 = hsum_avx2(_mm256_add_ps(a1, b1)), r2 = hsum_avx2(_mm256_add_ps(a2, b2)), r3 = hsum_avx2(_mm256_add_ps(a3, b3));
    if (i < nb) {
        const __m256i q = iq4_unpack_avx2(x + 2);
        r0 += iq4_nl_tail_avx2(q, x, y);
        if (nt == 4) r1 += iq4_nl_tail_avx2(q, x, y + rb), r2 += iq4_nl_tail_avx2(q, x, y + 2 * rb), r3 += iq4_nl_tail_avx2(q, x, y + 3 * rb);
    }
    yo[0] = r0;
    if (nt == 4) yo[ldy] = r1, yo[2 * ldy] = r2, yo[3 * ldy] = r3;
}

/* K-quant steps, one token each: 32 weights against 32 Q8_K values, times
   the 16-bit sub-block scale of each pair (sc), added to the int32 lanes.
   Unsigned weights q go to maddubs as they are; signed ones as |q| with
   their sign moved to the activations (aq = |q|). */
static inline __m256i k_ustep_avx2(__m256i sumi, __m256i q, __m256i sc, const uint8_t *q8) {
    const __m256i p16 = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
    return _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p16));
}

static inline __m256i k_sstep_avx2(__m256i sumi, __m256i aq, __m256i q, __m256i sc, const uint8_t *q8) {
    const __m256i p16 = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)q8), q));
    return _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p16));
}

/* Q4_K/Q5_K: 64 values, two sub-blocks of 32, in one step */
static inline __m256i k4_step_avx2(__m256i sumi, __m256i lo, __m256i hi, __m256i sl, __m256i sh, const uint8_t *q8) {
    const __m256i pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8)));
    const __m256i ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32))));
    return _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
}

/* acc += d_w * d_a * lanes, at the end of a super-block */
static inline __m256 k_scale_avx2(__m256 acc, __m256i sumi, float xd, const uint8_t *yb) {
    return _mm256_fmadd_ps(_mm256_set1_ps(ld_f32(yb) * xd), _mm256_cvtepi32_ps(sumi), acc);
}

/* Q4_K/Q5_K mins: the 8 mins against the 8 sub-block sums of the bsums,
   4 int32 lanes */
static inline __m128i k4_mins_avx2(__m128i mins, const uint8_t *yb) {
    const __m128i q8s = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(yb + 260)), _mm_loadu_si128((const __m128i *)(yb + 276)));
    return _mm_madd_epi16(mins, q8s);
}

/* bytes i and i+1 of a 16-byte table, 8 times each, widened to 16 bits:
   the scales of two 16-value sub-blocks */
static inline __m256i k_scale_pair_avx2(__m128i sc, int i, int is_signed) {
    const __m128i idx = _mm_add_epi8(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm_set1_epi8((char)i));
    const __m128i b = _mm_shuffle_epi8(sc, idx);
    return is_signed ? _mm256_cvtepi8_epi16(b) : _mm256_cvtepu8_epi16(b);
}



/* Q4_K: the mins in 4 float lanes of their own, added at the end (ggml) */
static SLM_ALWAYS_INLINE void q4_k_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m128 m0 = _mm_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
    for (int i = 0; i < n / QK_K; i++, x += 144, y += 292) {
        uint32_t u[4];
        k4_scales_u32(x + 4, u);
        const uint8_t *sc = (const uint8_t *)u;
        const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8)));
        const float xd = h2f_avx2(x), xm = h2f_avx2(x + 2);
#define MINS(m, yb) m = _mm_fmadd_ps(_mm_set1_ps(-ld_f32(yb) * xm), _mm_cvtepi32_ps(k4_mins_avx2(mins, yb)), m)
        MINS(m0, y);
        if (nt == 4) {
            MINS(m1, y + rb);
            MINS(m2, y + 2 * rb);
            MINS(m3, y + 3 * rb);
        }
#undef MINS
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x + 16 + 32 * j));
            const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i sl = _mm256_set1_epi16(sc[2 * j]), sh = _mm256_set1_epi16(sc[2 * j + 1]);
            const uint8_t *q8 = y + 4 + 64 * j;
            K_TOKENS(k4_step_avx2, lo, hi, sl, sh);
        }
        K_SCALE(k_scale_avx2, xd);
    }
    yo[0] = hsum_avx2(s0) + hsum4_avx2(m0);
    if (nt == 4) {
        yo[ldy] = hsum_avx2(s1) + hsum4_avx2(m1);
        yo[2 * ldy] = hsum_avx2(s2) + hsum4_avx2(m2);
        yo[3 * ldy] = hsum_avx2(s3) + hsum4_avx2(m3);
    }
}

/* Q5_K: as Q4_K, the mins summed apart in a scalar (ggml) */
static SLM_ALWAYS_INLINE void q5_k_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(15), b4 = _mm256_set1_epi8(16);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
    for (int i = 0; i < n / QK_K; i++, x += 176, y += 292) {
        uint32_t u[4];
        k4_scales_u32(x + 4, u);
        const uint8_t *sc = (const uint8_t *)u;
        const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8)));
        const float xd = h2f_avx2(x), xm = h2f_avx2(x + 2);
#define MINS(m, yb) m += -ld_f32(yb) * xm * (float)hsum_i32_avx2(_mm256_zextsi128_si256(k4_mins_avx2(mins, yb)))
        MINS(m0, y);
        if (nt == 4) {
            MINS(m1, y + rb);
            MINS(m2, y + 2 * rb);
            MINS(m3, y + 3 * rb);
        }
#undef MINS
        __m256i hb = _mm256_loadu_si256((const __m256i *)(x + 16));
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        for (int j = 0; j < 4; j++) {
            /* bit 2j of qh is value 64j + l's fifth bit, bit 2j + 1 value 64j + 32 + l's */
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x + 48 + 32 * j));
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), b4));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                               _mm256_and_si256(_mm256_slli_epi16(hb, 3), b4));
            hb = _mm256_srli_epi16(hb, 2);
            const __m256i sl = _mm256_set1_epi16(sc[2 * j]), sh = _mm256_set1_epi16(sc[2 * j + 1]);
            const uint8_t *q8 = y + 4 + 64 * j;
            K_TOKENS(k4_step_avx2, lo, hi, sl, sh);
        }
        K_SCALE(k_scale_avx2, xd);
    }
    yo[0] = hsum_avx2(s0) + m0;
    if (nt == 4) yo[ldy] = hsum_avx2(s1) + m1, yo[2 * ldy] = hsum_avx2(s2) + m2, yo[3 * ldy] = hsum_avx2(s3) + m3;
}

/* Q6_K, Q2_K, Q3_K: 16-value sub-blocks; 32 values k of the 128-value half
   h at a time (value 128h + 32k + l) */
static SLM_ALWAYS_INLINE void q6_k_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30), c32 = _mm256_set1_epi8(32);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 210, y += 292) {
        const __m128i sc128 = _mm_loadu_si128((const __m128i *)(x + 192));
        const float xd = h2f_avx2(x + 208);
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h));
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                /* low 4 bits: nibble k/2 of ql[64h + 32(k&1) + l]; high 2: bits 2k of qh[32h + l] */
                const __m256i l = k & 1 ? l1 : l0;
                const __m256i lo = _mm256_and_si256(k < 2 ? l : _mm256_srli_epi16(l, 4), m4);
                const __m256i hi = k == 0 ? _mm256_slli_epi16(qh, 4) : k == 1 ? _mm256_slli_epi16(qh, 2)
                                 : k == 2 ? qh : _mm256_srli_epi16(qh, 2);
                const __m256i q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_and_si256(hi, m30)), c32);
                const __m256i aq = _mm256_sign_epi8(q, q), sc = k_scale_pair_avx2(sc128, 8 * h + 2 * k, 1);
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_sstep_avx2, aq, q, sc);
            }
        }
        K_SCALE(k_scale_avx2, xd);
    }
    yo[0] = hsum_avx2(s0);
    if (nt == 4) yo[ldy] = hsum_avx2(s1), yo[2 * ldy] = hsum_avx2(s2), yo[3 * ldy] = hsum_avx2(s3);
}

/* Q2_K: the mins (against the 16 bsums) go into the same float lanes first */
static SLM_ALWAYS_INLINE void q2_k_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 84, y += 292) {
        const __m128i sm = _mm_loadu_si128((const __m128i *)x);
        const __m128i sc128 = _mm_and_si128(sm, _mm_set1_epi8(15));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), _mm_set1_epi8(15)));
        const float xd = h2f_avx2(x + 80), xm = h2f_avx2(x + 82);
#define MINS(s, yb)                                                                                                  \
    s = _mm256_fmadd_ps(_mm256_set1_ps(-ld_f32(yb) * xm),                                                            \
                        _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)((yb) + 260)))), s)
        MINS(s0, y);
        if (nt == 4) {
            MINS(s1, y + rb);
            MINS(s2, y + 2 * rb);
            MINS(s3, y + 3 * rb);
        }
#undef MINS
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(x + 16 + 32 * h));
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qb, 2 * k), m3);
                const __m256i sc = k_scale_pair_avx2(sc128, 8 * h + 2 * k, 0);
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_ustep_avx2, q, sc);
            }
        }
        K_SCALE(k_scale_avx2, xd);
    }
    yo[0] = hsum_avx2(s0);
    if (nt == 4) yo[ldy] = hsum_avx2(s1), yo[2 * ldy] = hsum_avx2(s2), yo[3 * ldy] = hsum_avx2(s3);
}

static SLM_ALWAYS_INLINE void q3_k_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    const __m256i m3 = _mm256_set1_epi8(3), c4 = _mm256_set1_epi8(4);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 110, y += 292) {
        uint32_t u[4];
        q3_k_scales_u32(x + 96, u);
        const __m128i sc128 = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)u), _mm_set1_epi8(32));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x);
        const float xd = h2f_avx2(x + 108);
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(x + 32 + 32 * h));
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                /* the 2-bit field, minus 4 where bit 4h + k of hmask is clear */
                const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + k)));
                const __m256i clear = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), _mm256_setzero_si256());
                const __m256i q = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(qb, 2 * k), m3), _mm256_and_si256(clear, c4));
                const __m256i aq = _mm256_sign_epi8(q, q), sc = k_scale_pair_avx2(sc128, 8 * h + 2 * k, 1);
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_sstep_avx2, aq, q, sc);
            }
        }
        K_SCALE(k_scale_avx2, xd);
    }
    yo[0] = hsum_avx2(s0);
    if (nt == 4) yo[ldy] = hsum_avx2(s1), yo[2 * ldy] = hsum_avx2(s2), yo[3 * ldy] = hsum_avx2(s3);
}

static SLM_ALWAYS_INLINE void iq4_xs_avx2(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                          int64_t ldy) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 136, y += 292) {
        const float xd = h2f_avx2(x);
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(8)
        for (int s = 0; s < 8; s++) {
            const __m256i q = iq4_unpack_avx2(x + 8 + 16 * s), aq = _mm256_sign_epi8(q, q);
            const __m256i sc = _mm256_set1_epi16((short)iq4_xs_scale(x, s));
            const uint8_t *q8 = y + 4 + 32 * s;
            K_TOKENS(k_sstep_avx2, aq, q, sc);
        }
        K_SCALE(k_scale_avx2, xd);
    }
    yo[0] = hsum_avx2(s0);
    if (nt == 4) yo[ldy] = hsum_avx2(s1), yo[2 * ldy] = hsum_avx2(s2), yo[3 * ldy] = hsum_avx2(s3);
}

K_ENTRIES(q4_1, avx2)
K_ENTRIES(q5_1, avx2)
K_ENTRIES(iq4_nl, avx2)
K_ENTRIES(q2_k, avx2)
K_ENTRIES(q3_k, avx2)
K_ENTRIES(q4_k, avx2)
K_ENTRIES(q5_k, avx2)
K_ENTRIES(q6_k, avx2)
K_ENTRIES(iq4_xs, avx2)

/* Q8_1 and Q8_K activations, the same bytes as the references: products
   rounded to nearest even by the instruction; d, the inverse scale and the
   sums are the references' scalar arithmetic. Blocks whose inverse scale
   overflows (every |x| below about 4e-37, or an infinity) are left to the
   reference. */
static inline float amax_avx2(const float *src, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(src + j)), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    return _mm_cvtss_f32(m4);
}

/* 32 floats times mul, rounded, stored as 32 int8 in order; the sums of
   the two halves of 16 in 8 int32 lanes each */
static inline void q8_round32_avx2(const float *src, __m256 mul, uint8_t *dst, __m256i *lo, __m256i *hi) {
#define RND(j) _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(src + (j)), mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
    const __m256i a = RND(0), b = RND(8), c = RND(16), d = RND(24);
#undef RND
    *lo = _mm256_add_epi32(a, b);
    *hi = _mm256_add_epi32(c, d);
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    _mm256_storeu_si256((__m256i *)dst, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

static void q8_1_from_float_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / 32; i++, b += 36, src += 32) {
        const float amax = amax_avx2(src, 32);
        const float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        if (!(id <= FLT_MAX) || !(amax <= FLT_MAX)) {
            q8_1_from_float_ref(src, b, 32);
            continue;
        }
        __m256i lo, hi;
        q8_round32_avx2(src, _mm256_set1_ps(id), b + 4, &lo, &hi);
        st_u16(b, f32_to_fp16(d));
        st_u16(b + 2, f32_to_fp16(d * (float)hsum_i32_avx2(_mm256_add_epi32(lo, hi))));
    }
}

static void q8_k_from_float_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK_K; i++, b += 292, src += QK_K) {
        const float amax = amax_avx2(src, QK_K);
        if (amax == 0) {
            memset(b, 0, 292);
            continue;
        }
        /* the first value of largest magnitude gives the scale's sign */
        const __m256 vmax = _mm256_set1_ps(amax), sign = _mm256_set1_ps(-0.0f);
        int j = 0;
        while (!_mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(src + j)), vmax, _CMP_EQ_OQ))) j += 8;
        while (fabsf(src[j]) != amax) j++;
        const float iscale = -127.0f / src[j];
        if (!(fabsf(iscale) <= FLT_MAX) || !(amax <= FLT_MAX)) {
            q8_k_from_float_ref(src, b, QK_K);
            continue;
        }
        /* v[s]: the 16-value sums of sub-block s in 8 lanes; hadd twice puts
           four of them side by side in each 128-bit half */
        __m256i v[16];
        for (int g = 0; g < 8; g++) q8_round32_avx2(src + 32 * g, _mm256_set1_ps(iscale), b + 4 + 32 * g, &v[2 * g], &v[2 * g + 1]);
        __m128i f[4];
        for (int k = 0; k < 4; k++) {
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4 * k], v[4 * k + 1]), _mm256_hadd_epi32(v[4 * k + 2], v[4 * k + 3]));
            f[k] = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        }
        _mm_storeu_si128((__m128i *)(b + 260), _mm_packs_epi32(f[0], f[1]));
        _mm_storeu_si128((__m128i *)(b + 276), _mm_packs_epi32(f[2], f[3]));
        st_f32(b, 1.0f / iscale);
    }
}



/* x8 kernels (layouts in section 5). Each 32-bit lane is one row; the
   activation's 4 columns are broadcast. Per block and token, the integer
   sums of the 8 rows are exact, then scaled by d_w (8 lanes) * d_a and
   accumulated with one FMA: the per-row results equal the one-row kernels'
   up to the order of float additions. */

static inline void x8_store_avx2(__m256 acc, float *y) {
    float t[8];
    _mm256_storeu_ps(t, acc);
    for (int r = 0; r < 8; r++) y[r] = t[r];
}

/* Q4_0x8: nibbles (0..15) are unsigned, so maddubs takes them directly with
   the signed activations; the -8 offset comes back as 8 * (block sum of the
   activations, carried by Q8_0X). 8 steps of |n * a| pairs stay below 2^15
   (15 * 127 * 2 * 8 = 30480), so the 16-bit sums of a whole block need no
   widening on the way. */
SLM_INLINE void gemm_q4_0x8_avx2_t(int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                    int64_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / 32; b++, w += 144, a += 40) {
        /* the hardware prefetcher alone leaves decode well below the memory
           bandwidth: ask for the weights about 1 KB ahead */
        _mm_prefetch((const char *)w + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)w + 1024 + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)w + 1024 + 128, _MM_HINT_T0);
        __m256i s16[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int c = 0; c < 4; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * c));
            const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            SLM_UNROLL(4)
            for (int t = 0; t < nt; t++) {
                const uint8_t *at = a + (size_t)t * a_rb + 8 * c;
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, _mm256_set1_epi32((int)ld_u32(at))));
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, _mm256_set1_epi32((int)ld_u32(at + 4))));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) {
            const uint8_t *at = a + (size_t)t * a_rb;
            const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones), _mm256_set1_epi32(8 * (int32_t)ld_u32(at + 36)));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(ld_f32(at + 32))), acc[t]);
        }
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) x8_store_avx2(acc[t], y + t * ldy);
}

static void gemm_q4_0x8_avx2(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    /* constant token counts, so the per-token accumulators stay in registers */
    if (nt == 1) gemm_q4_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q4_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q4_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* Q8_0x8: both operands signed; maddubs gets |w| (unsigned, so a weight of
   -128 is 128) and a * sign(w) (activations never hold -128). A pair can
   reach 2 * 128 * 127, so each step widens to 32 bits at once. */
SLM_INLINE void gemm_q8_0x8_avx2_t(int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                    int64_t ldy) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / 32; b++, w += 272, a += 40) {
        /* the hardware prefetcher alone leaves decode well below the memory
           bandwidth: ask for the weights about 1 KB ahead */
        for (int l = 0; l < 272; l += 64) _mm_prefetch((const char *)w + 1024 + l, _MM_HINT_T0);
        __m256i s32[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int st = 0; st < 8; st++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * st)), av = _mm256_sign_epi8(v, v);
            SLM_UNROLL(4)
            for (int t = 0; t < nt; t++) {
                const __m256i ab = _mm256_set1_epi32((int)ld_u32(a + (size_t)t * a_rb + 4 * st));
                const __m256i p = _mm256_maddubs_epi16(av, _mm256_sign_epi8(ab, v));
                s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(p, ones));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[t]), _mm256_mul_ps(dw, _mm256_set1_ps(ld_f32(a + (size_t)t * a_rb + 32))),
                                     acc[t]);
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) x8_store_avx2(acc[t], y + t * ldy);
}

static void gemm_q8_0x8_avx2(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    /* constant token counts, so the per-token accumulators stay in registers */
    if (nt == 1) gemm_q8_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q8_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q8_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* Q5_0x8: as Q4_0x8 with the fifth bit moved into bit 4 of each byte
   (values 0..31, offset 16). A pair reaches 2 * 31 * 127, so the 16-bit sums
   widen after every 2 chunks (4 maddubs: 31496 < 2^15). */
/* one chunk c (0-3, a constant after inlining) of a Q5_0x8 block: the 5-bit
   values of its 64 columns. 16-bit shifts: what crosses into the
   neighbouring byte never lands on bit 4. */
static inline void q5_0x8_chunk_avx2(const uint8_t *w, __m256i h, int c, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(15), b4 = _mm256_set1_epi8(16);
    const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 48 + 32 * c));
    __m256i hl, hh;
    switch (c) {
    case 0: hl = _mm256_slli_epi16(h, 4), hh = h; break;
    case 1: hl = _mm256_slli_epi16(h, 3), hh = _mm256_srli_epi16(h, 1); break;
    case 2: hl = _mm256_slli_epi16(h, 2), hh = _mm256_srli_epi16(h, 2); break;
    default: hl = _mm256_slli_epi16(h, 1), hh = _mm256_srli_epi16(h, 3); break;
    }
    *lo = _mm256_or_si256(_mm256_and_si256(v, m4), _mm256_and_si256(hl, b4));
    *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), _mm256_and_si256(hh, b4));
}

SLM_INLINE void gemm_q5_0x8_avx2_t(int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                    int64_t ldy) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / 32; b++, w += 176, a += 40) {
        _mm_prefetch((const char *)w + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)w + 1024 + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)w + 1024 + 128, _MM_HINT_T0);
        const __m256i h = _mm256_loadu_si256((const __m256i *)(w + 16));
        __m256i s32[4], lo[4], hi[4];
        SLM_UNROLL(4)
        for (int c = 0; c < 4; c++) q5_0x8_chunk_avx2(w, h, c, &lo[c], &hi[c]);
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) {
            const uint8_t *at = a + (size_t)t * a_rb;
            __m256i s0 = _mm256_add_epi16(_mm256_maddubs_epi16(lo[0], _mm256_set1_epi32((int)ld_u32(at))),
                                          _mm256_maddubs_epi16(hi[0], _mm256_set1_epi32((int)ld_u32(at + 4))));
            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(lo[1], _mm256_set1_epi32((int)ld_u32(at + 8))));
            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(hi[1], _mm256_set1_epi32((int)ld_u32(at + 12))));
            __m256i s1 = _mm256_add_epi16(_mm256_maddubs_epi16(lo[2], _mm256_set1_epi32((int)ld_u32(at + 16))),
                                          _mm256_maddubs_epi16(hi[2], _mm256_set1_epi32((int)ld_u32(at + 20))));
            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(lo[3], _mm256_set1_epi32((int)ld_u32(at + 24))));
            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(hi[3], _mm256_set1_epi32((int)ld_u32(at + 28))));
            /* 4 maddubs of pairs up to 2 * 31 * 127 stay below 2^15 */
            s32[t] = _mm256_add_epi32(_mm256_madd_epi16(s0, ones), _mm256_madd_epi16(s1, ones));
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) {
            const uint8_t *at = a + (size_t)t * a_rb;
            const __m256i isum = _mm256_sub_epi32(s32[t], _mm256_set1_epi32(16 * (int32_t)ld_u32(at + 36)));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(ld_f32(at + 32))), acc[t]);
        }
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) x8_store_avx2(acc[t], y + t * ldy);
}

static void gemm_q5_0x8_avx2(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    /* constant token counts, so the per-token accumulators stay in registers */
    if (nt == 1) gemm_q5_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q5_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q5_0x8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* K-quant x8 (layouts in section 5), with gemm_kx8_ref's bits. Per
   sub-block the maddubs sums stay 16-bit (Q4_K: 8 x 15 * 127 * 2 = 30480;
   Q6_K: 2 x 63 * 127 * 2 = 32004 per madd), then one madd multiplies them
   by the sub-block scale, which one pshufb puts into both 16-bit halves of
   each row's lane. */

/* pshufb mask: in both 128-bit halves, lane r (row r % 4 of the half) gets
   16-bit values from bytes 4 s0 + r and 4 s1 + r (Q4_Kx8 scale positions) */
static inline __m256i kx8_mask_avx2(int s0, int s1) {
    return _mm256_add_epi32(_mm256_set1_epi32((int)(0x80008000u | (unsigned)(4 * s0) | (unsigned)(4 * s1) << 16)),
                            _mm256_setr_epi32(0, 0x10001, 0x20002, 0x30003, 0, 0x10001, 0x20002, 0x30003));
}

/* The 6-bit scales (sc) and mins (mn) of a Q4_Kx8/Q5_Kx8 block: 4
   sub-blocks x 8 rows per vector, at the byte positions kx8_mask_avx2 reads */
static inline void q4_kx8_scmin_avx2(const uint8_t *w, __m256i sc[2], __m256i mn[2]) {
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(w + 32)), l1 = _mm256_loadu_si256((const __m256i *)(w + 64));
    const __m256i h = _mm256_loadu_si256((const __m256i *)(w + 96));
    sc[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
    sc[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(h, m30));
    mn[0] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
    mn[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
}

/* The end of a Q4_Kx8/Q5_Kx8 block for one token (at: its Q8_K block):
   the mins, pairs of sub-blocks (m[2j], m[2j+1]) against the pairs of
   32-sums of the activations (from Q8_K's 16-sums), then the two FMAs of
   gemm_kx8_ref. Shared by the AVX2 and AVX-512 kernels. */
static inline __m256 q45_kx8_finish_avx2(const uint8_t *w, const __m256i mn[2], const uint8_t *at, __m256i isum, __m256 acc) {
    const __m256i mp[4] = {_mm256_shuffle_epi8(mn[0], kx8_mask_avx2(0, 1)), _mm256_shuffle_epi8(mn[0], kx8_mask_avx2(2, 3)),
                           _mm256_shuffle_epi8(mn[1], kx8_mask_avx2(0, 1)), _mm256_shuffle_epi8(mn[1], kx8_mask_avx2(2, 3))};
    const __m256i bs = _mm256_broadcastsi128_si256(_mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(at + 260)),
                                                                  _mm_loadu_si128((const __m128i *)(at + 276))));
    __m256i msum = _mm256_madd_epi16(mp[0], _mm256_shuffle_epi32(bs, 0x00));
    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mp[1], _mm256_shuffle_epi32(bs, 0x55)));
    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mp[2], _mm256_shuffle_epi32(bs, 0xaa)));
    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mp[3], _mm256_shuffle_epi32(bs, 0xff)));
    const __m256 da = _mm256_set1_ps(ld_f32(at));
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
    const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 16)));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, da), acc);
    return _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dm, da), acc);
}

/* Q4_Kx8 (q5 = 0) and Q5_Kx8 (q5 = 1: the fifth bits as in Q5_0x8, and a
   madd every 2 chunks: 4 x 31 * 127 * 2 = 31496) */
SLM_INLINE void gemm_q45_kx8_avx2_t(int q5, int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                     int64_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const int bb = q5 ? 1408 : 1152, sbb = q5 ? 160 : 128;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / QK_K; b++, w += bb, a += 292) {
        __m256i sc[2], mn[2];
        q4_kx8_scmin_avx2(w, sc, mn);
        __m256i isum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int s = 0; s < 8; s++) {
            const uint8_t *ws = w + 128 + sbb * s;
            _mm_prefetch((const char *)ws + bb + 128, _MM_HINT_T0);
            _mm_prefetch((const char *)ws + bb + 128 + 64, _MM_HINT_T0);
            if (q5) _mm_prefetch((const char *)ws + bb + 128 + 128, _MM_HINT_T0);
            const __m256i scv = _mm256_shuffle_epi8(sc[s / 4], kx8_mask_avx2(s % 4, s % 4));
            const __m256i h5 = q5 ? _mm256_loadu_si256((const __m256i *)ws) : _mm256_setzero_si256();
            __m256i s16[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int c = 0; c < 4; c++) {
                __m256i lo, hi;
                if (q5) q5_0x8_chunk_avx2(ws - 16, h5, c, &lo, &hi); /* its nibbles at ws + 32 */
                else {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(ws + 32 * c));
                    lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                }
                SLM_UNROLL(4)
                for (int t = 0; t < nt; t++) {
                    const uint8_t *at = a + (size_t)t * a_rb + 4 + 32 * s + 8 * c;
                    s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, _mm256_set1_epi32((int)ld_u32(at))));
                    s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, _mm256_set1_epi32((int)ld_u32(at + 4))));
                }
                if (c == 3 || (q5 && c == 1)) {
                    SLM_UNROLL(4)
                    for (int t = 0; t < nt; t++)
                        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], scv)), s16[t] = _mm256_setzero_si256();
                }
            }
        }
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) acc[t] = q45_kx8_finish_avx2(w, mn, a + (size_t)t * a_rb, isum[t], acc[t]);
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) x8_store_avx2(acc[t], y + t * ldy);
}

/* One token (decode), the common case: the chunks of a sub-block summed
   as a tree (depth 3, not a chain of 8), sub-blocks unrolled by 2 so that
   their chains overlap (more spills with 16 registers) */
static void gemm_q4_kx8_avx2_1(int n, const uint8_t *w, const uint8_t *a, float *y) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < n / QK_K; b++, w += 1152, a += 292) {
        __m256i sc[2], mn[2];
        q4_kx8_scmin_avx2(w, sc, mn);
        __m256i isum = _mm256_setzero_si256();
        SLM_UNROLL(2)
        for (int s = 0; s < 8; s++) {
            const uint8_t *ws = w + 128 + 128 * s, *as = a + 4 + 32 * s;
            _mm_prefetch((const char *)ws + 1152 + 128, _MM_HINT_T0);
            _mm_prefetch((const char *)ws + 1152 + 128 + 64, _MM_HINT_T0);
            __m256i p[4];
            SLM_UNROLL(4)
            for (int c = 0; c < 4; c++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(ws + 32 * c));
                p[c] = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, m4), _mm256_set1_epi32((int)ld_u32(as + 8 * c))),
                                        _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                                             _mm256_set1_epi32((int)ld_u32(as + 8 * c + 4))));
            }
            /* 8 maddubs of pairs up to 15 * 128 * 2: 30720 */
            const __m256i s16 = _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3]));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(s16, _mm256_shuffle_epi8(sc[s / 4], kx8_mask_avx2(s % 4, s % 4))));
        }
        acc = q45_kx8_finish_avx2(w, mn, a, isum, acc);
    }
    x8_store_avx2(acc, y);
}

static void gemm_q4_kx8_avx2(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q4_kx8_avx2_1(n, (const uint8_t *)w, (const uint8_t *)a, y);
    else if (nt == 4) gemm_q45_kx8_avx2_t(0, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q45_kx8_avx2_t(0, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

static void gemm_q5_kx8_avx2(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q45_kx8_avx2_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q45_kx8_avx2_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q45_kx8_avx2_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* the 6-bit quants of one Q6_Kx8 chunk pair (16 columns): low nibbles of
   chunks v0, v1 with their 2-bit halves from h */
static inline void q6_kx8_quants_avx2(const uint8_t *wp, int k, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    const __m256i h = _mm256_loadu_si256((const __m256i *)(wp + 128 + 32 * k));
    const __m256i v0 = _mm256_loadu_si256((const __m256i *)(wp + 64 * k)), v1 = _mm256_loadu_si256((const __m256i *)(wp + 64 * k + 32));
    q[0] = _mm256_or_si256(_mm256_and_si256(v0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
    q[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
    q[2] = _mm256_or_si256(_mm256_and_si256(v1, m4), _mm256_and_si256(h, m30));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
}

SLM_INLINE void gemm_q6_kx8_avx2_t(int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                    int64_t ldy) {
    /* lane r: the 16-bit scale k of the pair (sc[2j][r], sc[2j+1][r]), twice */
    const __m256i pick0 = _mm256_setr_epi32(0x01000100, 0x05040504, 0x09080908, 0x0d0c0d0c, 0x01000100, 0x05040504, 0x09080908, 0x0d0c0d0c);
    const __m256i pick1 = _mm256_add_epi8(pick0, _mm256_set1_epi8(2));
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / QK_K; b++, w += 1680, a += 292) {
        __m256i isum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        __m256i osum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int p = 0; p < 8; p++) {
            const uint8_t *wp = w + 144 + 192 * p;
            _mm_prefetch((const char *)wp + 1680, _MM_HINT_T0);
            _mm_prefetch((const char *)wp + 1680 + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)wp + 1680 + 128, _MM_HINT_T0);
            const __m256i scp = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 16 + 16 * p)));
            SLM_UNROLL(4)
            for (int t = 0; t < nt; t++)
                osum[t] = _mm256_add_epi32(osum[t], _mm256_madd_epi16(scp, _mm256_set1_epi32((int)ld_u32(a + (size_t)t * a_rb + 260 + 4 * p))));
            for (int k = 0; k < 2; k++) {
                __m256i q[4];
                q6_kx8_quants_avx2(wp, k, q);
                const __m256i scv = _mm256_shuffle_epi8(scp, k ? pick1 : pick0);
                SLM_UNROLL(4)
                for (int t = 0; t < nt; t++) {
                    const uint8_t *at = a + (size_t)t * a_rb + 4 + 32 * p + 16 * k;
                    const __m256i p0 = _mm256_add_epi16(_mm256_maddubs_epi16(q[0], _mm256_set1_epi32((int)ld_u32(at))),
                                                        _mm256_maddubs_epi16(q[1], _mm256_set1_epi32((int)ld_u32(at + 4))));
                    const __m256i p1 = _mm256_add_epi16(_mm256_maddubs_epi16(q[2], _mm256_set1_epi32((int)ld_u32(at + 8))),
                                                        _mm256_maddubs_epi16(q[3], _mm256_set1_epi32((int)ld_u32(at + 12))));
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(p0, scv), _mm256_madd_epi16(p1, scv)));
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) {
            const __m256i tot = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(osum[t], 5));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(dw, _mm256_set1_ps(ld_f32(a + (size_t)t * a_rb))), acc[t]);
        }
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) x8_store_avx2(acc[t], y + t * ldy);
}

static void gemm_q6_kx8_avx2(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q6_kx8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q6_kx8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q6_kx8_avx2_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}


/* --- prefill GEMM (section 7, matmul_gemm) ------------------------------------
   16 weight rows against every token of a batch in one call (the AVX-512
   kernels in 6b2 use the same slabs; see there). */

/* K-quants against Q8_K tokens. Per super-block the 16 rows are converted
   into a kslab: unsigned 8-bit levels laid out as one zmm per 4 columns
   (the level plus an offset where the type's levels are signed: Q6_K's
   +32), the integer sub-block scales, and per pair of 16-column sub-blocks
   two int16 "mins" per row for vpdpwssd against Q8_K's bsums: the mins of
   Q4_K/Q5_K, or offset x scale, which taken off the sum gives the signed
   levels' sum. Per row and token that is the reference's arithmetic
   exactly (kblock_dot: the integer sums, then (d d_a) isum - (dmin d_a)
   imin in float, added to the running value), so the results have the
   reference's bits where the compiler does not fuse the float steps. */
typedef struct kslab {
    uint8_t q[64][64];  /* step s: bytes 4r..4r+3 = row r's levels at columns 4s..4s+3 (+ offset) */
    int32_t sc[16][16]; /* sub-block j (8 of 32 or 16 of 16 columns): row r's scale */
    int32_t sc2[16][16]; /* the same as two int16 (vpmaddwd of 16-bit pair sums, AVX2) */
    int32_t mn[8][16];  /* 16-column sub-blocks 2k and 2k+1: row r's two mins as int16 */
    float d[16], dmin[16];
    int sub, off;       /* columns per scale; 1 if the mins are offset x scale (no dmin) */
} kslab;

/* Q4_K/Q5_K scales and mins of row r from the 12-byte table */
static inline void kslab_k4_scales(const uint8_t *sc12, int r, kslab *k) {
    uint32_t u[4];
    k4_scales_u32(sc12, u);
    const uint8_t *b = (const uint8_t *)u; /* sc[0..7], then mn[0..7] (little-endian) */
    for (int j = 0; j < 8; j++)
        k->sc[j][r] = b[j], k->sc2[j][r] = (int32_t)((uint32_t)b[j] * 0x10001u), k->mn[j][r] = (int32_t)((uint32_t)b[8 + j] * 0x10001u);
}

static void kslab_q4_k(const uint8_t *w, size_t wb, kslab *k, uint8_t *rows) {
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int r = 0; r < 16; r++) {
        const uint8_t *x = w + (size_t)r * wb, *qs = x + 16;
        uint8_t *o = rows + 256 * r;
        for (int g = 0; g < 4; g++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            _mm256_storeu_si256((__m256i *)(o + 64 * g), _mm256_and_si256(v, m4));
            _mm256_storeu_si256((__m256i *)(o + 64 * g + 32), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
        }
        k->d[r] = ld_f16(x), k->dmin[r] = ld_f16(x + 2);
        kslab_k4_scales(x + 4, r, k);
    }
    k->sub = 32, k->off = 0;
}

static void kslab_q5_k(const uint8_t *w, size_t wb, kslab *k, uint8_t *rows) {
    const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    for (int r = 0; r < 16; r++) {
        const uint8_t *x = w + (size_t)r * wb, *qs = x + 48;
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(x + 16));
        uint8_t *o = rows + 256 * r;
        for (int g = 0; g < 4; g++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            /* bit 2g (2g + 1) of qh to bit 4: mask it at bit 0 first, so a 16-bit shift stays in its byte */
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one), 4);
            _mm256_storeu_si256((__m256i *)(o + 64 * g), _mm256_or_si256(_mm256_and_si256(v, m4), h0));
            _mm256_storeu_si256((__m256i *)(o + 64 * g + 32),
                                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), h1));
        }
        k->d[r] = ld_f16(x), k->dmin[r] = ld_f16(x + 2);
        kslab_k4_scales(x + 4, r, k);
    }
    k->sub = 32, k->off = 0;
}

/* Q6_K: the stored 6-bit value is the level + 32; mins 32 x scale */
static void kslab_q6_k(const uint8_t *w, size_t wb, kslab *k, uint8_t *rows) {
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
    for (int r = 0; r < 16; r++) {
        const uint8_t *x = w + (size_t)r * wb;
        uint8_t *o = rows + 256 * r;
        for (int h = 0; h < 2; h++) {
            const __m256i a = _mm256_loadu_si256((const __m256i *)(x + 64 * h)),
                          c = _mm256_loadu_si256((const __m256i *)(x + 64 * h + 32)),
                          hi = _mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h));
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(hi, m2), 4),
                          h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, 2), m2), 4),
                          h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, 4), m2), 4),
                          h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hi, 6), m2), 4);
            _mm256_storeu_si256((__m256i *)(o + 128 * h), _mm256_or_si256(_mm256_and_si256(a, m4), h0));
            _mm256_storeu_si256((__m256i *)(o + 128 * h + 32), _mm256_or_si256(_mm256_and_si256(c, m4), h1));
            _mm256_storeu_si256((__m256i *)(o + 128 * h + 64),
                                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), h2));
            _mm256_storeu_si256((__m256i *)(o + 128 * h + 96),
                                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4), h3));
        }
        const int8_t *sc = (const int8_t *)(x + 192);
        for (int j = 0; j < 16; j++) k->sc[j][r] = sc[j], k->sc2[j][r] = (int32_t)((uint32_t)(uint16_t)(int16_t)sc[j] * 0x10001u);
        for (int j = 0; j < 8; j++)
            k->mn[j][r] = (int32_t)((uint32_t)(uint16_t)(int16_t)(32 * sc[2 * j]) |
                                    (uint32_t)(uint16_t)(int16_t)(32 * sc[2 * j + 1]) << 16);
        k->d[r] = ld_f16(x + 208), k->dmin[r] = 0;
    }
    k->sub = 16, k->off = 1;
}

/* 16 rows' levels (rows[r][256], row-major) to the step layout: step s is
   dword s of each row, gathered with a 256-byte stride (8 lanes). */
static inline void kslab_transpose_avx2(const uint8_t *rows, kslab *k) {
    const __m256i idx = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
    for (int s = 0; s < 64; s++) {
        _mm256_storeu_si256((__m256i *)k->q[s], _mm256_i32gather_epi32((const int *)(rows + 4 * s), idx, 1));
        _mm256_storeu_si256((__m256i *)(k->q[s] + 32), _mm256_i32gather_epi32((const int *)(rows + 2048 + 4 * s), idx, 1));
    }
}

typedef void (*kslab_fn)(const uint8_t *w, size_t wb, kslab *k, uint8_t *rows);

/* nt2 tokens (a constant) of one super-block against a kslab. Without
   VNNI: vpmaddubsw pairs of levels (at most 63) and activations stay below
   2^15, and vpmaddwd multiplies each pair sum by the sub-block scale (sc2)
   into int32, so no 32-bit multiply is needed. Same integer sums, same
   float steps as the AVX-512 kernel (the reference's). */
SLM_INLINE void gemm16_kslab_avx2_t(const kslab *k, const uint8_t *a, size_t a_rb, int nt2, float *y, int64_t ldy, int first) {
    for (int h = 0; h < 2; h++) { /* rows 8h..8h+7: bytes 32h.. of each step */
        __m256i isum[4], ms[4];
        SLM_UNROLL(4)
        for (int t = 0; t < nt2; t++) isum[t] = _mm256_setzero_si256(), ms[t] = _mm256_setzero_si256();
        const int steps = k->sub / 4;
        for (int j = 0; j < 256 / k->sub; j++) {
            const __m256i sc = _mm256_loadu_si256((const __m256i *)(k->sc2[j] + 8 * h));
            for (int st = j * steps; st < (j + 1) * steps; st++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(k->q[st] + 32 * h));
                SLM_UNROLL(4)
                for (int t = 0; t < nt2; t++) {
                    const __m256i p = _mm256_maddubs_epi16(q, _mm256_set1_epi32((int)ld_u32(a + (size_t)t * a_rb + 4 + 4 * st)));
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, sc));
                }
            }
        }
        SLM_UNROLL(8)
        for (int j = 0; j < 8; j++) {
            const __m256i m = _mm256_loadu_si256((const __m256i *)(k->mn[j] + 8 * h));
            SLM_UNROLL(4)
            for (int t = 0; t < nt2; t++)
                ms[t] = _mm256_add_epi32(ms[t], _mm256_madd_epi16(m, _mm256_set1_epi32((int)ld_u32(a + (size_t)t * a_rb + 260 + 4 * j))));
        }
        const __m256 d = _mm256_loadu_ps(k->d + 8 * h), dmin = _mm256_loadu_ps(k->dmin + 8 * h);
        SLM_UNROLL(4)
        for (int t = 0; t < nt2; t++) {
            const __m256 da = _mm256_set1_ps(ld_f32(a + (size_t)t * a_rb));
            __m256 r;
            if (k->off) r = _mm256_mul_ps(_mm256_mul_ps(d, da), _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[t], ms[t])));
            else
                r = _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(d, da), _mm256_cvtepi32_ps(isum[t])),
                                  _mm256_mul_ps(_mm256_mul_ps(dmin, da), _mm256_cvtepi32_ps(ms[t])));
            float *yt = y + (int64_t)t * ldy + 8 * h;
            _mm256_storeu_ps(yt, first ? _mm256_add_ps(_mm256_setzero_ps(), r) : _mm256_add_ps(_mm256_loadu_ps(yt), r));
        }
    }
}

static void gemm16_k_avx2(kslab_fn conv, int bytes, int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt,
                          float *y, int64_t ldy) {
    kslab k;
    uint8_t rows[16 * 256];
    float acc[128 * 16]; /* [token][row] of a chunk of 128 tokens: y's rows may fall into few cache sets */
    for (int t0 = 0; t0 < nt; t0 += 128) {
        const int t1 = SLM_MIN(nt, t0 + 128);
        for (int b = 0; b < n / QK_K; b++) {
            conv((const uint8_t *)w + (size_t)b * (size_t)bytes, wb, &k, rows);
            kslab_transpose_avx2(rows, &k);
            const uint8_t *ab = (const uint8_t *)a + (size_t)b * 292;
            int t = t0;
            for (; t + 4 <= t1; t += 4) gemm16_kslab_avx2_t(&k, ab + (size_t)t * a_rb, a_rb, 4, acc + 16 * (t - t0), 16, b == 0);
            for (; t < t1; t++) gemm16_kslab_avx2_t(&k, ab + (size_t)t * a_rb, a_rb, 1, acc + 16 * (t - t0), 16, b == 0);
        }
        for (int t = t0; t < t1; t++) memcpy(y + (int64_t)t * ldy, acc + 16 * (t - t0), 16 * sizeof(float));
    }
}

static void gemm16_q4_k_avx2(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx2(kslab_q4_k, 144, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_q5_k_avx2(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx2(kslab_q5_k, 176, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_q6_k_avx2(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx2(kslab_q6_k, 210, n, w, wb, a, a_rb, nt, y, ldy);
}

SLM_TARGET_END
#endif /* SLM_AVX2 */

/* -------------------------------------------------------------------------- */
/* E2. x86-64 AVX-512 (F, BW, VL, DQ) with VNNI                               */
/* -------------------------------------------------------------------------- */
/*
 * vpdpbusd (u8 x s8, four products added to an int32 lane, no 16-bit
 * saturation) replaces AVX2's maddubs + madd + add. Signed weights are made
 * unsigned by an offset that comes back through a sum of the activations
 * (Q8_0X's block sum, Q8_K's bsums); vpdpwssd then multiplies the int32
 * lanes (each below 2^15 here) by the sub-block scales and accumulates.
 * Integer sums are exact, so every kernel differs from the reference only
 * in the order of its float additions. Only F, BW, VL, DQ and VNNI are used
 * (no FMA/F16C VEX forms: their EVEX forms come with AVX512F/VL).
 */
#ifdef SLM_HAVE_AVX512_KERNELS
#define SLM_AVX512 1
SLM_TARGET_AVX512

/* an f16 as a float, by the EVEX conversion */
static inline float h2f_avx512(const uint8_t *p) {
    return _mm_cvtss_f32(_mm_maskz_cvtph_ps(1, _mm_cvtsi32_si128((int)ld_u16(p))));
}

static inline float hsum8_avx512(__m256 v) {
    return _mm512_reduce_add_ps(_mm512_zextps256_ps512(v));
}

/* --- x8 layouts (section 5) -------------------------------------------------
   As the AVX2 x8 kernels, with vpdpbusd on 256 bits: each 32-bit lane is
   one row, the activation's 4 columns are broadcast (a load), and the
   unsigned weights go straight into the int32 lanes, which start at minus
   the offset times the block sum of Q8_0X. 256 bits, not 512: the layout
   holds 4 columns of 8 rows per 32 bytes, and where 512-bit operations are
   split in two (AMD Zen 4) a wider form that has to duplicate or permute
   the weights was slower than the AVX2 kernels. Per block and token the
   row's exact integer sum is scaled by d_w * d_a and added with one FMA:
   the same float steps as the AVX2 x8 kernels, so the same bits. */

static inline __m256 x8_scales_avx512(const uint8_t *w) {
    return _mm256_maskz_cvtph_ps(0xff, _mm_loadu_si128((const __m128i *)w));
}

static inline __m256 x8_acc_avx512(__m256 acc, __m256i isum, __m256 dw, const uint8_t *at) {
    return _mm256_mask_fmadd_ps(_mm256_cvtepi32_ps(isum), 0xff, _mm256_mul_ps(dw, _mm256_set1_ps(ld_f32(at + 32))), acc);
}

/* 4 activation bytes (columns j..j+3) in every lane */
#define X8_ACT_AVX512(at, j) _mm256_set1_epi32((int)ld_u32((at) + (j)))

/* Q4_0x8 (q5 = 0): nibbles n = q + 8, unsigned; lanes start at -8 * sum(a).
   Q5_0x8 (q5 = 1): the same with the fifth bit at bit 4 (bit c of the
   high-bit byte for the low nibble of chunk c, bit 4 + c for the high one;
   16-bit shifts: what crosses from the neighbouring byte never lands on
   bit 4); values 0..31 = q + 16, lanes start at -16 * sum(a). A lane adds
   32 products of at most 31 * 127: no overflow. */
SLM_INLINE void gemm_q45_0x8_avx512_t(int q5, int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                       int64_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(15), b4 = _mm256_set1_epi8(16);
    const int bb = q5 ? 176 : 144, nib = q5 ? 48 : 16, off = q5 ? 16 : 8;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / 32; b++, w += bb, a += 40) {
        _mm_prefetch((const char *)w + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)w + 1024 + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)w + 1024 + 128, _MM_HINT_T0);
        const __m256i h = q5 ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();
        __m256i lo[4], hi[4];
        SLM_UNROLL(4)
        for (int c = 0; c < 4; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(w + nib + 32 * c));
            lo[c] = _mm256_and_si256(v, m4), hi[c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (q5) { /* nib | (shifted high bits & 16) */
                lo[c] = _mm256_ternarylogic_epi32(lo[c], _mm256_slli_epi16(h, 4 - c), b4, 0xF8);
                hi[c] = _mm256_ternarylogic_epi32(hi[c], _mm256_srli_epi16(h, c), b4, 0xF8);
            }
        }
        const __m256 dw = x8_scales_avx512(w);
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) {
            const uint8_t *at = a + (size_t)t * a_rb;
            /* independent chains (vpdpbusd's latency) */
            __m256i s[4] = {_mm256_set1_epi32(-off * (int32_t)ld_u32(at + 36)), _mm256_setzero_si256(),
                            _mm256_setzero_si256(), _mm256_setzero_si256()};
            SLM_UNROLL(4)
            for (int c = 0; c < 4; c++) {
                const int k = nt == 1 ? c : c & 1;
                s[k] = _mm256_dpbusd_epi32(s[k], lo[c], X8_ACT_AVX512(at, 8 * c));
                s[k] = _mm256_dpbusd_epi32(s[k], hi[c], X8_ACT_AVX512(at, 8 * c + 4));
            }
            if (nt == 1) s[0] = _mm256_add_epi32(s[0], s[2]), s[1] = _mm256_add_epi32(s[1], s[3]);
            acc[t] = x8_acc_avx512(acc[t], _mm256_add_epi32(s[0], s[1]), dw, at);
        }
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

/* constant token counts, so the per-token accumulators stay in registers */
static void gemm_q4_0x8_avx512(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q45_0x8_avx512_t(0, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q45_0x8_avx512_t(0, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q45_0x8_avx512_t(0, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

static void gemm_q5_0x8_avx512(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q45_0x8_avx512_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q45_0x8_avx512_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q45_0x8_avx512_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* Q8_0x8: the weights plus 128 (0..255) are unsigned; lanes start at
   -128 * sum(a). A lane adds 32 products of at most 255 * 127. */
SLM_INLINE void gemm_q8_0x8_avx512_t(int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                      int64_t ldy) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / 32; b++, w += 272, a += 40) {
        for (int l = 0; l < 272; l += 64) _mm_prefetch((const char *)w + 1024 + l, _MM_HINT_T0);
        __m256i q[8];
        SLM_UNROLL(8)
        for (int st = 0; st < 8; st++) q[st] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(w + 16 + 32 * st)), bias);
        const __m256 dw = x8_scales_avx512(w);
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) {
            const uint8_t *at = a + (size_t)t * a_rb;
            /* independent chains (vpdpbusd's latency) */
            __m256i s[4] = {_mm256_set1_epi32(-128 * (int32_t)ld_u32(at + 36)), _mm256_setzero_si256(),
                            _mm256_setzero_si256(), _mm256_setzero_si256()};
            SLM_UNROLL(8)
            for (int st = 0; st < 8; st++) {
                const int k = nt == 1 ? st & 3 : st & 1;
                s[k] = _mm256_dpbusd_epi32(s[k], q[st], X8_ACT_AVX512(at, 4 * st));
            }
            if (nt == 1) s[0] = _mm256_add_epi32(s[0], s[2]), s[1] = _mm256_add_epi32(s[1], s[3]);
            acc[t] = x8_acc_avx512(acc[t], _mm256_add_epi32(s[0], s[1]), dw, at);
        }
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

static void gemm_q8_0x8_avx512(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q8_0x8_avx512_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q8_0x8_avx512_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q8_0x8_avx512_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* K-quant x8 (layouts in section 5): as the AVX2 kernels, with vpdpbusd
   taking a sub-block's (or a 16-column sub-block's) unsigned quants times
   the activations straight into each row's int32 lane; the sub-block scale
   then multiplies the lane (vpmulld). Same integer sums and float steps as
   gemm_kx8_ref, so the same bits. */

/* pshufb mask: lane r of each 128-bit half gets byte 4 s + r (zero-extended) */
static inline __m256i kx8_mask32_avx512(int s) {
    return _mm256_add_epi32(_mm256_set1_epi32((int)(0x80808000u | (unsigned)(4 * s))), _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3));
}

/* Q4_Kx8 (q5 = 0), Q5_Kx8 (q5 = 1) */
SLM_INLINE void gemm_q45_kx8_avx512_t(int q5, int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                       int64_t ldy) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const int bb = q5 ? 1408 : 1152, sbb = q5 ? 160 : 128;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / QK_K; b++, w += bb, a += 292) {
        __m256i sc[2], mn[2];
        q4_kx8_scmin_avx2(w, sc, mn);
        __m256i isum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int s = 0; s < 8; s++) {
            const uint8_t *ws = w + 128 + sbb * s;
            _mm_prefetch((const char *)ws + bb + 128, _MM_HINT_T0);
            _mm_prefetch((const char *)ws + bb + 128 + 64, _MM_HINT_T0);
            if (q5) _mm_prefetch((const char *)ws + bb + 128 + 128, _MM_HINT_T0);
            const __m256i sc32 = _mm256_shuffle_epi8(sc[s / 4], kx8_mask32_avx512(s % 4));
            const __m256i h5 = q5 ? _mm256_loadu_si256((const __m256i *)ws) : _mm256_setzero_si256();
            /* two chains per token (vpdpbusd's latency) */
            __m256i s32[4][2];
            for (int t = 0; t < 4; t++) s32[t][0] = s32[t][1] = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                __m256i lo, hi;
                if (q5) q5_0x8_chunk_avx2(ws - 16, h5, c, &lo, &hi);
                else {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(ws + 32 * c));
                    lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                }
                SLM_UNROLL(4)
                for (int t = 0; t < nt; t++) {
                    const uint8_t *at = a + (size_t)t * a_rb + 4 + 32 * s + 8 * c;
                    s32[t][0] = _mm256_dpbusd_epi32(s32[t][0], lo, _mm256_set1_epi32((int)ld_u32(at)));
                    s32[t][1] = _mm256_dpbusd_epi32(s32[t][1], hi, _mm256_set1_epi32((int)ld_u32(at + 4)));
                }
            }
            SLM_UNROLL(4)
            for (int t = 0; t < nt; t++)
                isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(_mm256_add_epi32(s32[t][0], s32[t][1]), sc32));
        }
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) acc[t] = q45_kx8_finish_avx2(w, mn, a + (size_t)t * a_rb, isum[t], acc[t]);
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) x8_store_avx2(acc[t], y + t * ldy);
}

/* One token (decode), the common case: fully unrolled, so that the sixteen
   dependency chains of a super-block overlap, and fewer operations per
   sub-block than the template above. Q4_K: the high nibbles are taken in
   place (v & 0xf0, 16 times their value: no shift per chunk), their sum is
   shifted back once per sub-block (exact: a multiple of 16); each of the
   two 16-product sums fits an int16 (16 * 15 * 128 = 30720), so vpdpwssd
   multiplies it by the scale (low 16 bits; the high half of the scale lane
   is 0) straight into the super-block's lanes: no vpmulld. Same integer
   sums as gemm_kx8_ref, so the same bits. */
#define KX8_BC(p) _mm256_set1_epi32((int)ld_u32(p))
static void gemm_q4_kx8_avx512_1(int n, const uint8_t *w, const uint8_t *a, float *y) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < n / QK_K; b++, w += 1152, a += 292) {
        __m256i sc[2], mn[2];
        q4_kx8_scmin_avx2(w, sc, mn);
        __m256i is0 = _mm256_setzero_si256(), is1 = _mm256_setzero_si256();
        SLM_UNROLL(8)
        for (int s = 0; s < 8; s++) {
            const uint8_t *ws = w + 128 + 128 * s, *as = a + 4 + 32 * s;
            _mm_prefetch((const char *)ws + 1152 + 128, _MM_HINT_T0);
            _mm_prefetch((const char *)ws + 1152 + 128 + 64, _MM_HINT_T0);
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)ws), v1 = _mm256_loadu_si256((const __m256i *)(ws + 32));
            const __m256i v2 = _mm256_loadu_si256((const __m256i *)(ws + 64)), v3 = _mm256_loadu_si256((const __m256i *)(ws + 96));
            __m256i lo = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(v0, m4), KX8_BC(as));
            __m256i hi = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_andnot_si256(m4, v0), KX8_BC(as + 4));
            lo = _mm256_dpbusd_epi32(lo, _mm256_and_si256(v1, m4), KX8_BC(as + 8));
            hi = _mm256_dpbusd_epi32(hi, _mm256_andnot_si256(m4, v1), KX8_BC(as + 12));
            lo = _mm256_dpbusd_epi32(lo, _mm256_and_si256(v2, m4), KX8_BC(as + 16));
            hi = _mm256_dpbusd_epi32(hi, _mm256_andnot_si256(m4, v2), KX8_BC(as + 20));
            lo = _mm256_dpbusd_epi32(lo, _mm256_and_si256(v3, m4), KX8_BC(as + 24));
            hi = _mm256_dpbusd_epi32(hi, _mm256_andnot_si256(m4, v3), KX8_BC(as + 28));
            const __m256i sc32 = _mm256_shuffle_epi8(sc[s / 4], kx8_mask32_avx512(s % 4));
            is0 = _mm256_dpwssd_epi32(is0, lo, sc32);
            is1 = _mm256_dpwssd_epi32(is1, _mm256_srai_epi32(hi, 4), sc32);
        }
        acc = q45_kx8_finish_avx2(w, mn, a, _mm256_add_epi32(is0, is1), acc);
    }
    x8_store_avx2(acc, y);
}

/* Q6_K, one token: the 6-bit quants put together with one vpternlogd each
   (low nibble | high bits), one 16-column sub-block per chain of four
   vpdpbusd; the sums (up to 16 * 63 * 128) need vpmulld by the scale. The
   offset 32 goes through the bsums with vpdpwssd. */
static void gemm_q6_kx8_avx512_1(int n, const uint8_t *w, const uint8_t *a, float *y) {
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < n / QK_K; b++, w += 1680, a += 292) {
        __m256i is0 = _mm256_setzero_si256(), is1 = _mm256_setzero_si256(), os = _mm256_setzero_si256();
        SLM_UNROLL(2)
        for (int p = 0; p < 8; p++) {
            const uint8_t *wp = w + 144 + 192 * p, *ap = a + 4 + 32 * p;
            _mm_prefetch((const char *)wp + 1680, _MM_HINT_T0);
            _mm_prefetch((const char *)wp + 1680 + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)wp + 1680 + 128, _MM_HINT_T0);
            /* lane r: (sc[2p][r], sc[2p+1][r]) as int16, and each as int32 */
            const __m256i scp = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 16 + 16 * p)));
            os = _mm256_dpwssd_epi32(os, scp, KX8_BC(a + 260 + 4 * p));
            const __m256i sc0 = _mm256_srai_epi32(_mm256_slli_epi32(scp, 16), 16), sc1 = _mm256_srai_epi32(scp, 16);
            SLM_UNROLL(2)
            for (int k = 0; k < 2; k++) {
                const __m256i h = _mm256_loadu_si256((const __m256i *)(wp + 128 + 32 * k));
                const __m256i v0 = _mm256_loadu_si256((const __m256i *)(wp + 64 * k));
                const __m256i v1 = _mm256_loadu_si256((const __m256i *)(wp + 64 * k + 32));
                /* a | (b & c) */
                const __m256i q0 = _mm256_ternarylogic_epi32(_mm256_and_si256(v0, m4), _mm256_slli_epi16(h, 4), m30, 0xf8);
                const __m256i q1 = _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m4), _mm256_slli_epi16(h, 2), m30, 0xf8);
                const __m256i q2 = _mm256_ternarylogic_epi32(_mm256_and_si256(v1, m4), h, m30, 0xf8);
                const __m256i q3 = _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m4), _mm256_srli_epi16(h, 2), m30, 0xf8);
                const uint8_t *at = ap + 16 * k;
                const __m256i s0 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q0, KX8_BC(at)), q2, KX8_BC(at + 8));
                const __m256i s1 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q1, KX8_BC(at + 4)), q3, KX8_BC(at + 12));
                const __m256i s = _mm256_add_epi32(s0, s1);
                if (k) is1 = _mm256_add_epi32(is1, _mm256_mullo_epi32(s, sc1));
                else is0 = _mm256_add_epi32(is0, _mm256_mullo_epi32(s, sc0));
            }
        }
        const __m256i tot = _mm256_sub_epi32(_mm256_add_epi32(is0, is1), _mm256_slli_epi32(os, 5));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w)), _mm256_set1_ps(ld_f32(a))), acc);
    }
    x8_store_avx2(acc, y);
}
#undef KX8_BC

static void gemm_q4_kx8_avx512(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q4_kx8_avx512_1(n, (const uint8_t *)w, (const uint8_t *)a, y);
    else if (nt == 4) gemm_q45_kx8_avx512_t(0, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q45_kx8_avx512_t(0, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

static void gemm_q5_kx8_avx512(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q45_kx8_avx512_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 1, y, ldy);
    else if (nt == 4) gemm_q45_kx8_avx512_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q45_kx8_avx512_t(1, n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

SLM_INLINE void gemm_q6_kx8_avx512_t(int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt, float *y,
                                      int64_t ldy) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < n / QK_K; b++, w += 1680, a += 292) {
        __m256i isum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        __m256i osum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int p = 0; p < 8; p++) {
            const uint8_t *wp = w + 144 + 192 * p;
            _mm_prefetch((const char *)wp + 1680, _MM_HINT_T0);
            _mm_prefetch((const char *)wp + 1680 + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)wp + 1680 + 128, _MM_HINT_T0);
            /* lane r: (sc[2p][r], sc[2p+1][r]) as int16 */
            const __m256i scp = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 16 + 16 * p)));
            SLM_UNROLL(4)
            for (int t = 0; t < nt; t++)
                osum[t] = _mm256_add_epi32(osum[t], _mm256_madd_epi16(scp, _mm256_set1_epi32((int)ld_u32(a + (size_t)t * a_rb + 260 + 4 * p))));
            for (int k = 0; k < 2; k++) {
                __m256i q[4];
                q6_kx8_quants_avx2(wp, k, q);
                const __m256i sc32 = k ? _mm256_srai_epi32(scp, 16) : _mm256_srai_epi32(_mm256_slli_epi32(scp, 16), 16);
                SLM_UNROLL(4)
                for (int t = 0; t < nt; t++) {
                    const uint8_t *at = a + (size_t)t * a_rb + 4 + 32 * p + 16 * k;
                    __m256i s0 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q[0], _mm256_set1_epi32((int)ld_u32(at)));
                    __m256i s1 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q[1], _mm256_set1_epi32((int)ld_u32(at + 4)));
                    s0 = _mm256_dpbusd_epi32(s0, q[2], _mm256_set1_epi32((int)ld_u32(at + 8)));
                    s1 = _mm256_dpbusd_epi32(s1, q[3], _mm256_set1_epi32((int)ld_u32(at + 12)));
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_mullo_epi32(_mm256_add_epi32(s0, s1), sc32));
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)w));
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) {
            const __m256i tot = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(osum[t], 5));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(dw, _mm256_set1_ps(ld_f32(a + (size_t)t * a_rb))), acc[t]);
        }
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt; t++) x8_store_avx2(acc[t], y + t * ldy);
}

static void gemm_q6_kx8_avx512(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    if (nt == 1) gemm_q6_kx8_avx512_1(n, (const uint8_t *)w, (const uint8_t *)a, y);
    else if (nt == 4) gemm_q6_kx8_avx512_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, y, ldy);
    else gemm_q6_kx8_avx512_t(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* --- K-quants (Q8_K activations) ----------------------------------------------
   64 weights per zmm (two sub-blocks of 32 or four of 16) against 64
   consecutive Q8_K values: vpdpbusd gives 16 int32 lanes of 4 products
   each, all below 2^15 in magnitude (4 * 63 * 127 at most), which vpdpwssd
   multiplies by their sub-block's scale (the low 16 bits of a dword; the
   high half is 0) into the super-block's int32 lanes. Signed levels are
   stored unsigned (+32 for Q6_K, +4 for Q3_K): the offset times the scale
   times the bsums starts the lanes. Per super-block and token one FMA by
   d_w * d_a, as the AVX2 kernels. */

/* one step: 64 weights q (unsigned) against 64 values at q8, times sc */
static inline __m512i k_step_avx512(__m512i sumi, __m512i q, __m512i sc, const uint8_t *q8) {
    const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512((const void *)q8));
    return _mm512_dpwssd_epi32(sumi, p, sc);
}

/* acc += d_w * d_a * lanes, at the end of a super-block */
static inline __m512 k_scale_avx512(__m512 acc, __m512i sumi, float xd, const uint8_t *yb) {
    return _mm512_fmadd_ps(_mm512_set1_ps(ld_f32(yb) * xd), _mm512_cvtepi32_ps(sumi), acc);
}

/* the sub-block scales in dwords, each repeated: 8 times (32-value
   sub-blocks, idx j: scales 2j, 2j + 1) or 4 times (16-value ones, idx j:
   scales 4j .. 4j + 3) */
static inline __m512i k_sc32_idx_avx512(int j, int sub) {
    return sub == 32 ? _mm512_add_epi32(_mm512_set1_epi32(2 * j), _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1))
                     : _mm512_add_epi32(_mm512_set1_epi32(4 * j), _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
}

/* 16 signed scale bytes -> their dwords with the value in the low 16 bits */
static inline __m512i k_sc16_avx512(__m128i sc) {
    return _mm512_and_si512(_mm512_cvtepi8_epi32(sc), _mm512_set1_epi32(0xffff));
}

/* Q4_K/Q5_K mins: the 8 mins (each twice, int16) against the 16 bsums */
static inline __m256 k4_mins_avx512(__m256 m, __m256i mins, float xm, const uint8_t *yb) {
    const __m256i p = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)(yb + 260)));
    return _mm256_mask_fmadd_ps(_mm256_cvtepi32_ps(p), 0xff, _mm256_set1_ps(-ld_f32(yb) * xm), m);
}

/* Q4_K: group j's 32 bytes in both halves; the low half keeps the low
   nibbles (sub-block 2j), the high half the high ones (2j + 1) */
SLM_INLINE void q4_k_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m128i dup2 = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 m0 = _mm256_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
    for (int i = 0; i < n / QK_K; i++, x += 144, y += 292) {
        uint32_t u[4];
        k4_scales_u32(x + 4, u);
        const __m128i sm = _mm_loadu_si128((const __m128i *)u); /* 8 scales, 8 mins */
        const __m512i sc32 = _mm512_cvtepu8_epi32(sm);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup2));
        const float xd = h2f_avx512(x), xm = h2f_avx512(x + 2);
        m0 = k4_mins_avx512(m0, mins, xm, y);
        if (nt == 4) {
            m1 = k4_mins_avx512(m1, mins, xm, y + rb);
            m2 = k4_mins_avx512(m2, mins, xm, y + 2 * rb);
            m3 = k4_mins_avx512(m3, mins, xm, y + 3 * rb);
        }
        __m512i i0 = _mm512_setzero_si512(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(4)
        for (int j = 0; j < 4; j++) {
            const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 16 + 32 * j)));
            const __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xffff0000u, v, 4), m4);
            const __m512i sc = _mm512_permutexvar_epi32(k_sc32_idx_avx512(j, 32), sc32);
            const uint8_t *q8 = y + 4 + 64 * j;
            K_TOKENS(k_step_avx512, q, sc);
        }
        K_SCALE(k_scale_avx512, xd);
    }
    yo[0] = _mm512_reduce_add_ps(s0) + hsum8_avx512(m0);
    if (nt == 4) {
        yo[ldy] = _mm512_reduce_add_ps(s1) + hsum8_avx512(m1);
        yo[2 * ldy] = _mm512_reduce_add_ps(s2) + hsum8_avx512(m2);
        yo[3 * ldy] = _mm512_reduce_add_ps(s3) + hsum8_avx512(m3);
    }
}

/* Q6_K: 64 values 128h + 64p + l (k = 2p, 2p + 1) at a time: the low 4
   bits are nibble p of the 64 ql bytes 64h.., the high 2 bits come from
   qh[32h + l] (bits 2k), its 32 bytes in both halves. q + 32 (0..63) is
   unsigned; the lanes start at -32 * sum(sc * bsum). */
SLM_INLINE void q6_k_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 210, y += 292) {
        const __m128i scb = _mm_loadu_si128((const __m128i *)(x + 192));
        const __m512i sc32 = k_sc16_avx512(scb);
        const __m256i scm = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(_mm256_cvtepi8_epi16(scb), 5));
        const float xd = h2f_avx512(x + 208);
#define K_OFS(yb) _mm512_zextsi256_si512(_mm256_madd_epi16(scm, _mm256_loadu_si256((const __m256i *)((yb) + 260))))
        __m512i i0 = K_OFS(y), i1 = i0, i2 = i0, i3 = i0;
        if (nt == 4) i1 = K_OFS(y + rb), i2 = K_OFS(y + 2 * rb), i3 = K_OFS(y + 3 * rb);
#undef K_OFS
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const __m512i l = _mm512_loadu_si512((const void *)(x + 64 * h));
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h)));
            SLM_UNROLL(2)
            for (int p = 0; p < 2; p++) {
                /* k = 2p in the low half, 2p + 1 in the high half: bits 2k of qh to bits 4-5 */
                const __m512i lo = _mm512_and_si512(p ? _mm512_srli_epi16(l, 4) : l, m4);
                const __m512i hi = p ? _mm512_mask_srli_epi16(qh, 0xffff0000u, qh, 2)
                                     : _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), 0xffff0000u, qh, 2);
                const __m512i q = _mm512_ternarylogic_epi32(lo, hi, m30, 0xF8); /* lo | (hi & 0x30) */
                const __m512i sc = _mm512_permutexvar_epi32(k_sc32_idx_avx512(2 * h + p, 16), sc32);
                const uint8_t *q8 = y + 4 + 128 * h + 64 * p;
                K_TOKENS(k_step_avx512, q, sc);
            }
        }
        K_SCALE(k_scale_avx512, xd);
    }
    yo[0] = _mm512_reduce_add_ps(s0);
    if (nt == 4) yo[ldy] = _mm512_reduce_add_ps(s1), yo[2 * ldy] = _mm512_reduce_add_ps(s2), yo[3 * ldy] = _mm512_reduce_add_ps(s3);
}

K_ENTRIES(q4_k, avx512)
K_ENTRIES(q6_k, avx512)

/* Q5_K: as Q4_K, plus the fifth bits: bit 2j of qh[l] for the low half
   (value 64j + l), bit 2j + 1 for the high half (moved down by one first),
   shifted to bit 4 (16-bit shifts: what crosses bytes never lands there) */
SLM_INLINE void q5_k_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    const __m512i m4 = _mm512_set1_epi8(15), b4 = _mm512_set1_epi8(16);
    const __m128i dup2 = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 m0 = _mm256_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
    for (int i = 0; i < n / QK_K; i++, x += 176, y += 292) {
        uint32_t u[4];
        k4_scales_u32(x + 4, u);
        const __m128i sm = _mm_loadu_si128((const __m128i *)u);
        const __m512i sc32 = _mm512_cvtepu8_epi32(sm);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup2));
        const float xd = h2f_avx512(x), xm = h2f_avx512(x + 2);
        m0 = k4_mins_avx512(m0, mins, xm, y);
        if (nt == 4) {
            m1 = k4_mins_avx512(m1, mins, xm, y + rb);
            m2 = k4_mins_avx512(m2, mins, xm, y + 2 * rb);
            m3 = k4_mins_avx512(m3, mins, xm, y + 3 * rb);
        }
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 16)));
        hb = _mm512_mask_srli_epi16(hb, 0xffff0000u, hb, 1);
        __m512i i0 = _mm512_setzero_si512(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(4)
        for (int j = 0; j < 4; j++) {
            const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 48 + 32 * j)));
            const __m512i nib = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xffff0000u, v, 4), m4);
            const __m512i h = j == 0 ? _mm512_slli_epi16(hb, 4) : j == 1 ? _mm512_slli_epi16(hb, 2) : j == 2 ? hb : _mm512_srli_epi16(hb, 2);
            const __m512i q = _mm512_ternarylogic_epi32(nib, h, b4, 0xF8); /* nib | (h & 16) */
            const __m512i sc = _mm512_permutexvar_epi32(k_sc32_idx_avx512(j, 32), sc32);
            const uint8_t *q8 = y + 4 + 64 * j;
            K_TOKENS(k_step_avx512, q, sc);
        }
        K_SCALE(k_scale_avx512, xd);
    }
    yo[0] = _mm512_reduce_add_ps(s0) + hsum8_avx512(m0);
    if (nt == 4) {
        yo[ldy] = _mm512_reduce_add_ps(s1) + hsum8_avx512(m1);
        yo[2 * ldy] = _mm512_reduce_add_ps(s2) + hsum8_avx512(m2);
        yo[3 * ldy] = _mm512_reduce_add_ps(s3) + hsum8_avx512(m3);
    }
}

/* Q3_K: 64 values 128h + 64p + l (k = 2p in the low half, 2p + 1 in the
   high half): the 2-bit field (qs[32h + l] >> 2k) & 3 plus 4 where bit
   4h + k of hmask[l] is set, 0..7 = q + 4; the lanes start at
   -4 * sum(sc * bsum) */
SLM_INLINE void q3_k_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    const __m512i m3 = _mm512_set1_epi8(3), b2 = _mm512_set1_epi8(4);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 110, y += 292) {
        uint32_t u[4];
        q3_k_scales_u32(x + 96, u);
        const __m128i scb = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)u), _mm_set1_epi8(32));
        const __m512i sc32 = k_sc16_avx512(scb);
        const __m256i scm = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(_mm256_cvtepi8_epi16(scb), 2));
        const float xd = h2f_avx512(x + 108);
#define K_OFS(yb) _mm512_zextsi256_si512(_mm256_madd_epi16(scm, _mm256_loadu_si256((const __m256i *)((yb) + 260))))
        __m512i i0 = K_OFS(y), i1 = i0, i2 = i0, i3 = i0;
        if (nt == 4) i1 = K_OFS(y + rb), i2 = K_OFS(y + 2 * rb), i3 = K_OFS(y + 3 * rb);
#undef K_OFS
        __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x));
        hm = _mm512_mask_srli_epi16(hm, 0xffff0000u, hm, 1); /* high half: bit 4h + 2p + 1 -> 4h + 2p */
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            __m512i qb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 32 + 32 * h)));
            qb = _mm512_mask_srli_epi16(qb, 0xffff0000u, qb, 2);
            SLM_UNROLL(2)
            for (int p = 0; p < 2; p++) {
                const __m512i lo = _mm512_and_si512(p ? _mm512_srli_epi16(qb, 4) : qb, m3);
                /* bit 4h + 2p to bit 2 */
                const int sh = 4 * h + 2 * p - 2;
                const __m512i hi = sh < 0 ? _mm512_slli_epi16(hm, 2) : sh == 0 ? hm : _mm512_srli_epi16(hm, (unsigned)sh);
                const __m512i q = _mm512_ternarylogic_epi32(lo, hi, b2, 0xF8); /* lo | (hi & 4) */
                const __m512i sc = _mm512_permutexvar_epi32(k_sc32_idx_avx512(2 * h + p, 16), sc32);
                const uint8_t *q8 = y + 4 + 128 * h + 64 * p;
                K_TOKENS(k_step_avx512, q, sc);
            }
        }
        K_SCALE(k_scale_avx512, xd);
    }
    yo[0] = _mm512_reduce_add_ps(s0);
    if (nt == 4) yo[ldy] = _mm512_reduce_add_ps(s1), yo[2 * ldy] = _mm512_reduce_add_ps(s2), yo[3 * ldy] = _mm512_reduce_add_ps(s3);
}

/* Q2_K: the 2-bit fields as Q3_K's; the mins against the 16 bsums in 8
   float lanes of their own */
SLM_INLINE void q2_k_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 m0 = _mm256_setzero_ps(), m1 = m0, m2 = m0, m3f = m0;
    for (int i = 0; i < n / QK_K; i++, x += 84, y += 292) {
        const __m128i sm = _mm_loadu_si128((const __m128i *)x);
        const __m512i sc32 = _mm512_cvtepu8_epi32(_mm_and_si128(sm, _mm_set1_epi8(15)));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), _mm_set1_epi8(15)));
        const float xd = h2f_avx512(x + 80), xm = h2f_avx512(x + 82);
#define MINS(m, yb)                                                                                                  \
    m = _mm256_mask_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)((yb) + 260)))), \
                             0xff, _mm256_set1_ps(-ld_f32(yb) * xm), m)
        MINS(m0, y);
        if (nt == 4) {
            MINS(m1, y + rb);
            MINS(m2, y + 2 * rb);
            MINS(m3f, y + 3 * rb);
        }
#undef MINS
        __m512i i0 = _mm512_setzero_si512(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            __m512i qb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 16 + 32 * h)));
            qb = _mm512_mask_srli_epi16(qb, 0xffff0000u, qb, 2);
            SLM_UNROLL(2)
            for (int p = 0; p < 2; p++) {
                const __m512i q = _mm512_and_si512(p ? _mm512_srli_epi16(qb, 4) : qb, m3);
                const __m512i sc = _mm512_permutexvar_epi32(k_sc32_idx_avx512(2 * h + p, 16), sc32);
                const uint8_t *q8 = y + 4 + 128 * h + 64 * p;
                K_TOKENS(k_step_avx512, q, sc);
            }
        }
        K_SCALE(k_scale_avx512, xd);
    }
    yo[0] = _mm512_reduce_add_ps(s0) + hsum8_avx512(m0);
    if (nt == 4) {
        yo[ldy] = _mm512_reduce_add_ps(s1) + hsum8_avx512(m1);
        yo[2 * ldy] = _mm512_reduce_add_ps(s2) + hsum8_avx512(m2);
        yo[3 * ldy] = _mm512_reduce_add_ps(s3) + hsum8_avx512(m3f);
    }
}

/* IQ4_XS: levels up to 127 in magnitude, so 4 products can pass 2^15 and
   vpdpbusd's lanes would not fit vpdpwssd: maddubs on |level| with the
   sign moved to the activations (pairs <= 2 * 127 * 127), then vpdpwssd by
   the scale. Sub-blocks s and s + 1 (64 values) per zmm: 128-bit lanes
   low nibbles of s, high of s, low of s + 1, high of s + 1. */
static inline __m512i iq4_xs_step_avx512(__m512i sumi, __m512i aq, __mmask64 neg, __m512i sc, const uint8_t *q8) {
    const __m512i a = _mm512_loadu_si512((const void *)q8);
    const __m512i p = _mm512_maddubs_epi16(aq, _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a));
    return _mm512_dpwssd_epi32(sumi, p, sc);
}

SLM_INLINE void iq4_xs_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i lv = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)IQ4_VALUES));
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 136, y += 292) {
        const float xd = h2f_avx512(x);
        __m512i i0 = _mm512_setzero_si512(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(4)
        for (int j = 0; j < 4; j++) {
            const __m512i v = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(x + 8 + 32 * j)));
            const __m512i w = _mm512_shuffle_i64x2(v, v, 0x50); /* 128-bit lanes 0, 0, 1, 1 */
            const __m512i idx = _mm512_and_si512(_mm512_mask_srli_epi16(w, 0xff00ff00u, w, 4), m4);
            const __m512i q = _mm512_shuffle_epi8(lv, idx);
            const __mmask64 neg = _mm512_movepi8_mask(q);
            const __m512i aq = _mm512_abs_epi8(q);
            const __m512i sc = _mm512_mask_set1_epi16(_mm512_set1_epi16((short)iq4_xs_scale(x, 2 * j)), 0xffff0000u,
                                                      (short)iq4_xs_scale(x, 2 * j + 1));
            const uint8_t *q8 = y + 4 + 64 * j;
            K_TOKENS(iq4_xs_step_avx512, aq, neg, sc);
        }
        K_SCALE(k_scale_avx512, xd);
    }
    yo[0] = _mm512_reduce_add_ps(s0);
    if (nt == 4) yo[ldy] = _mm512_reduce_add_ps(s1), yo[2 * ldy] = _mm512_reduce_add_ps(s2), yo[3 * ldy] = _mm512_reduce_add_ps(s3);
}

K_ENTRIES(q5_k, avx512)
K_ENTRIES(q3_k, avx512)
K_ENTRIES(q2_k, avx512)
K_ENTRIES(iq4_xs, avx512)

/* --- Blocks of 32 (Q8_0, Q4_0, Q5_0, IQ4_NL against Q8_0; Q4_1, Q5_1
   against Q8_1) -------------------------------------------------------------
   One block per 256-bit vpdpbusd (the activation blocks are 34 or 36 bytes
   apart, so two per zmm would cost a shuffle per token). Signed weights go
   in as |q| with their sign moved to the activations (which never hold
   -128; |-128| is 128 as unsigned), unsigned ones as they are. Even and odd
   blocks in two accumulators, for the FMA latency; dot and dot4 are one
   function, so they give the same bits. */

/* 16 bytes of nibbles -> 32 bytes 0..15: the low nibbles, then the high */
static inline __m256i nib32_avx512(const uint8_t *q) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
    return _mm256_and_si256(_mm256_mask_srli_epi16(v, 0xff00, v, 4), _mm256_set1_epi8(15));
}

/* the 32 signed levels of a block of type t (Q8_0, Q4_0, Q5_0, IQ4_NL) */
static SLM_ALWAYS_INLINE __m256i b32_levels_avx512(int t, const uint8_t *x) {
    switch (t) {
    case SLM_TYPE_Q8_0: return _mm256_loadu_si256((const __m256i *)(x + 2));
    case SLM_TYPE_Q4_0: return _mm256_sub_epi8(nib32_avx512(x + 2), _mm256_set1_epi8(8));
    case SLM_TYPE_Q5_0: /* the nibble minus 16 where the fifth bit (bit j of qh) is clear */
        return _mm256_mask_sub_epi8(nib32_avx512(x + 6), ~(__mmask32)ld_u32(x + 2), nib32_avx512(x + 6), _mm256_set1_epi8(16));
    default: {
        const __m256i lv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_VALUES));
        return _mm256_shuffle_epi8(lv, nib32_avx512(x + 2));
    }
    }
}

static inline __m256 b32_step_avx512(__m256 s, __m256i aq, __m256i q, float dx, const uint8_t *yb) {
    const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aq, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(yb + 2)), q));
    return _mm256_mask_fmadd_ps(_mm256_set1_ps(dx * h2f_avx512(yb)), 0xff, _mm256_cvtepi32_ps(p), s);
}

static SLM_ALWAYS_INLINE void b32_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                         int64_t ldy, int t) {
    const int bx = t == SLM_TYPE_Q8_0 ? 34 : t == SLM_TYPE_Q5_0 ? 22 : 18, nb = n / 32;
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m256 b[4] = {a[0], a[0], a[0], a[0]};
    int i = 0;
    for (; i + 1 < nb; i += 2, x += 2 * bx, y += 68) {
        const __m256i p = b32_levels_avx512(t, x), q = b32_levels_avx512(t, x + bx);
        const __m256i ap = _mm256_abs_epi8(p), aq = _mm256_abs_epi8(q);
        const float dp = h2f_avx512(x), dq = h2f_avx512(x + bx);
        SLM_UNROLL(4)
        for (int k = 0; k < nt; k++) {
            a[k] = b32_step_avx512(a[k], ap, p, dp, y + k * rb);
            b[k] = b32_step_avx512(b[k], aq, q, dq, y + k * rb + 34);
        }
    }
    if (i < nb) {
        const __m256i p = b32_levels_avx512(t, x), ap = _mm256_abs_epi8(p);
        const float dp = h2f_avx512(x);
        SLM_UNROLL(4)
        for (int k = 0; k < nt; k++) a[k] = b32_step_avx512(a[k], ap, p, dp, y + k * rb);
    }
    SLM_UNROLL(4)
    for (int k = 0; k < nt; k++) yo[k * ldy] = hsum8_avx512(_mm256_add_ps(a[k], b[k]));
}

static SLM_ALWAYS_INLINE void q4_0_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    b32_avx512(n, x, y, rb, nt, yo, ldy, SLM_TYPE_Q4_0);
}
static SLM_ALWAYS_INLINE void q5_0_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    b32_avx512(n, x, y, rb, nt, yo, ldy, SLM_TYPE_Q5_0);
}
static SLM_ALWAYS_INLINE void iq4_nl_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                            int64_t ldy) {
    b32_avx512(n, x, y, rb, nt, yo, ldy, SLM_TYPE_IQ4_NL);
}

/* Q4_1/Q5_1 against Q8_1: unsigned levels straight into vpdpbusd; the min
   terms m * s summed apart in a scalar, as the AVX2 kernels */
static inline __m256 q8_1_step_avx512(__m256 s, float *sm, __m256i q, float xd, float xm, const uint8_t *yb) {
    /* d and s of the activation block in one conversion */
    const __m128 ds = _mm_maskz_cvtph_ps(3, _mm_cvtsi32_si128((int)ld_u32(yb)));
    *sm += xm * _mm_cvtss_f32(_mm_movehdup_ps(ds));
    const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)(yb + 4)));
    return _mm256_mask_fmadd_ps(_mm256_set1_ps(xd * _mm_cvtss_f32(ds)), 0xff, _mm256_cvtepi32_ps(p), s);
}

static SLM_ALWAYS_INLINE __m256i b41_levels_avx512(const uint8_t *x, int bits) {
    if (bits == 4) return nib32_avx512(x + 4);
    return _mm256_mask_add_epi8(nib32_avx512(x + 8), (__mmask32)ld_u32(x + 4), nib32_avx512(x + 8), _mm256_set1_epi8(16));
}

static SLM_ALWAYS_INLINE void k41_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                         int64_t ldy, int bits) {
    const int bx = bits == 4 ? 20 : 24, nb = n / 32;
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m256 b[4] = {a[0], a[0], a[0], a[0]};
    float m[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 1 < nb; i += 2, x += 2 * bx, y += 72) {
        const __m256i p = b41_levels_avx512(x, bits), q = b41_levels_avx512(x + bx, bits);
        const float dp = h2f_avx512(x), mp = h2f_avx512(x + 2), dq = h2f_avx512(x + bx), mq = h2f_avx512(x + bx + 2);
        SLM_UNROLL(4)
        for (int k = 0; k < nt; k++) {
            a[k] = q8_1_step_avx512(a[k], &m[k], p, dp, mp, y + k * rb);
            b[k] = q8_1_step_avx512(b[k], &m[k], q, dq, mq, y + k * rb + 36);
        }
    }
    if (i < nb) {
        const __m256i p = b41_levels_avx512(x, bits);
        const float dp = h2f_avx512(x), mp = h2f_avx512(x + 2);
        SLM_UNROLL(4)
        for (int k = 0; k < nt; k++) a[k] = q8_1_step_avx512(a[k], &m[k], p, dp, mp, y + k * rb);
    }
    SLM_UNROLL(4)
    for (int k = 0; k < nt; k++) yo[k * ldy] = hsum8_avx512(_mm256_add_ps(a[k], b[k])) + m[k];
}

static SLM_ALWAYS_INLINE void q4_1_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    k41_avx512(n, x, y, rb, nt, yo, ldy, 4);
}
static SLM_ALWAYS_INLINE void q5_1_avx512(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    k41_avx512(n, x, y, rb, nt, yo, ldy, 5);
}


K_ENTRIES(q4_0, avx512)
K_ENTRIES(q5_0, avx512)
K_ENTRIES(iq4_nl, avx512)
K_ENTRIES(q4_1, avx512)
K_ENTRIES(q5_1, avx512)

/* --- Softmax --------------------------------------------------------------- */

/* exp_sum_avx2 on 16 lanes: the same reduction, polynomial and flush to 0
   below -87.3 (within 2 ulp of expf), 2^k applied by vscalefps; the sum in
   double. The tail goes through the same code, masked. */
static double exp_sum_avx512(float *x, int n, float mx) {
    const __m512 vmx = _mm512_set1_ps(mx), lo = _mm512_set1_ps(-87.3f), log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 c1 = _mm512_set1_ps(0.693359375f), c2 = _mm512_set1_ps(-2.12194440e-4f), one = _mm512_set1_ps(1.0f);
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmx);
        const __mmask16 keep = _mm512_mask_cmp_ps_mask(m, v, lo, _CMP_GE_OQ);
        const __m512 t = _mm512_max_ps(v, lo);
        const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(t, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 r = _mm512_fnmadd_ps(k, c2, _mm512_fnmadd_ps(k, c1, t));
        __m512 p = _mm512_set1_ps(1.9875691500e-4f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
        p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, one));
        const __m512 y = _mm512_maskz_scalef_ps(keep, p, k); /* 0 where flushed or past the end */
        _mm512_mask_storeu_ps(x + i, m, y);
        acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(y)));
        acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(y, 1)));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
}

/* --- prefill GEMM (section 7, matmul_gemm) ------------------------------------
   A batch of many tokens multiplies each weight row with every token. One
   call takes 16 rows (one 32-bit lane each, 4 columns per lane as in the
   x8 layouts: a zmm) and all the tokens: each weight block is loaded and
   unpacked once for the batch, not once per 4 tokens. A (row, token)
   accumulator lives in y (the 16 rows of a token are 64 contiguous bytes,
   which stay in L1 from one block to the next). */

static inline __m512i gemm16_load2(const uint8_t *p0, const uint8_t *p1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                              _mm256_loadu_si256((const __m256i *)p1), 1);
}

/* nt2 (a constant) tokens of one block, their chains interleaved */
SLM_INLINE void gemm16_x8_tok_avx512(const __m512i *q, __m512 dw, int off, const uint8_t *at, size_t a_rb, int nt2,
                                      float *y, int64_t ldy, int b) {
    __m512i s0[4];
    SLM_UNROLL(4)
    for (int t = 0; t < nt2; t++) s0[t] = _mm512_set1_epi32(-off * (int32_t)ld_u32(at + (size_t)t * a_rb + 36));
    SLM_UNROLL(8)
    for (int k = 0; k < 8; k++) {
        SLM_UNROLL(4)
        for (int t = 0; t < nt2; t++)
            s0[t] = _mm512_dpbusd_epi32(s0[t], q[k], _mm512_set1_epi32((int)ld_u32(at + (size_t)t * a_rb + 4 * k)));
    }
    SLM_UNROLL(4)
    for (int t = 0; t < nt2; t++) {
        float *yt = y + (int64_t)t * ldy;
        const __m512 prev = b ? _mm512_loadu_ps(yt) : _mm512_setzero_ps();
        _mm512_storeu_ps(yt, _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0[t]),
                                             _mm512_mul_ps(dw, _mm512_set1_ps(ld_f32(at + (size_t)t * a_rb + 32))), prev));
    }
}

/* Two x8 groups (rows 0-7 at w, rows 8-15 at w + wb) of Q4_0/Q5_0/Q8_0
   against Q8_0X tokens: per block and token the same exact integer sums
   and the same float step (one FMA of the sum by d_w * d_a into the
   running value) as gemm_q45_0x8_avx512_t and gemm_q8_0x8_avx512_t, so the
   same bits. Tokens go in chunks of 64 whose accumulators stay in a
   local 4 KB block (y's rows, ldy floats apart, can fall into a few L1
   sets), copied to y at the end; the two groups (16 rows) are re-read per
   chunk. */
SLM_INLINE void gemm16_x8_avx512_t(int type, int n, const uint8_t *w, size_t wb, const uint8_t *a, size_t a_rb, int nt,
                                    float *y, int64_t ldy) {
    const int q8 = type == SLM_TYPE_Q8_0, q5 = type == SLM_TYPE_Q5_0;
    const int bb = x8_block_bytes(type), nib = q5 ? 48 : 16, off = q8 ? 128 : q5 ? 16 : 8;
    const __m512i m4 = _mm512_set1_epi8(15), b4 = _mm512_set1_epi8(16), bias = _mm512_set1_epi8((char)0x80);
    float acc[64 * 16]; /* [token][row]: contiguous (y's rows may map to few cache sets) */
    for (int t0 = 0; t0 < nt; t0 += 64) {
        const int t1 = SLM_MIN(nt, t0 + 64);
        for (int b = 0; b < n / 32; b++) {
            const uint8_t *w0 = w + (size_t)b * (size_t)bb, *w1 = w0 + wb;
            __m512i q[8]; /* q[k] goes with the activation bytes 4k..4k+3 of the block */
            if (q8) {
                SLM_UNROLL(8)
                for (int k = 0; k < 8; k++) q[k] = _mm512_xor_si512(gemm16_load2(w0 + 16 + 32 * k, w1 + 16 + 32 * k), bias);
            } else {
                const __m512i h = q5 ? gemm16_load2(w0 + 16, w1 + 16) : _mm512_setzero_si512();
                SLM_UNROLL(4)
                for (int c = 0; c < 4; c++) {
                    const __m512i v = gemm16_load2(w0 + nib + 32 * c, w1 + nib + 32 * c);
                    __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                    if (q5) { /* nib | (shifted high bits & 16), as the x8 kernel */
                        lo = _mm512_ternarylogic_epi32(lo, _mm512_slli_epi16(h, 4 - c), b4, 0xF8);
                        hi = _mm512_ternarylogic_epi32(hi, _mm512_srli_epi16(h, c), b4, 0xF8);
                    }
                    q[2 * c] = lo, q[2 * c + 1] = hi;
                }
            }
            const __m512 dw = _mm512_cvtph_ps(_mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)w0)), _mm_loadu_si128((const __m128i *)w1), 1));
            const uint8_t *ab = a + (size_t)b * 40;
            int t = t0;
            for (; t + 4 <= t1; t += 4) gemm16_x8_tok_avx512(q, dw, off, ab + (size_t)t * a_rb, a_rb, 4, acc + 16 * (t - t0), 16, b);
            for (; t < t1; t++) gemm16_x8_tok_avx512(q, dw, off, ab + (size_t)t * a_rb, a_rb, 1, acc + 16 * (t - t0), 16, b);
        }
        for (int t = t0; t < t1; t++) memcpy(y + (int64_t)t * ldy, acc + 16 * (t - t0), 16 * sizeof(float));
    }
}

static void gemm16_q4_0x8_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_x8_avx512_t(SLM_TYPE_Q4_0, n, (const uint8_t *)w, wb, (const uint8_t *)a, a_rb, nt, y, ldy);
}
static void gemm16_q5_0x8_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_x8_avx512_t(SLM_TYPE_Q5_0, n, (const uint8_t *)w, wb, (const uint8_t *)a, a_rb, nt, y, ldy);
}
static void gemm16_q8_0x8_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_x8_avx512_t(SLM_TYPE_Q8_0, n, (const uint8_t *)w, wb, (const uint8_t *)a, a_rb, nt, y, ldy);
}

/* Super-block converters that read the 16 rows with dword gathers (lane r
   at w + r wb): each gather gives 4 consecutive bytes of every row, which
   become one or two steps of the slab, and the scales are decoded for the
   16 rows at once. Every gather stays inside its super-block. */
static inline __m512i kg_avx512(const uint8_t *p, __m512i idx, int o) {
    return _mm512_i32gather_epi32(idx, (const void *)(p + o), 1);
}

static inline __m512i kbyte_avx512(__m512i u, int i) { return _mm512_and_si512(_mm512_srli_epi32(u, 8 * i), _mm512_set1_epi32(255)); }

/* Q4_K/Q5_K: d, dmin and the 12-byte table (k4_scales_u32 on 16 rows) */
static inline void kslab_k4_head_avx512(const uint8_t *w, __m512i idx, kslab *k) {
    const __m512i g0 = kg_avx512(w, idx, 0), a = kg_avx512(w, idx, 4), b = kg_avx512(w, idx, 8), c = kg_avx512(w, idx, 12);
    const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), m4 = _mm512_set1_epi32(0x0f0f0f0f), m2 = _mm512_set1_epi32(0x03030303);
    _mm512_storeu_ps(k->d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g0)));
    _mm512_storeu_ps(k->dmin, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g0, 16))));
    const __m512i u0 = _mm512_and_si512(a, m6),
                  u1 = _mm512_or_si512(_mm512_and_si512(c, m4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(a, 6), m2), 4)),
                  u2 = _mm512_and_si512(b, m6),
                  u3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(c, 4), m4),
                                       _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(b, 6), m2), 4));
    for (int i = 0; i < 4; i++) {
        _mm512_storeu_si512((void *)k->sc[i], kbyte_avx512(u0, i));
        _mm512_storeu_si512((void *)k->sc[4 + i], kbyte_avx512(u1, i));
        const __m512i m0 = kbyte_avx512(u2, i), m1 = kbyte_avx512(u3, i);
        _mm512_storeu_si512((void *)k->mn[i], _mm512_or_si512(m0, _mm512_slli_epi32(m0, 16)));
        _mm512_storeu_si512((void *)k->mn[4 + i], _mm512_or_si512(m1, _mm512_slli_epi32(m1, 16)));
    }
    k->sub = 32, k->off = 0;
}

static void kslab16_q4_k_avx512(const uint8_t *w, __m512i idx, kslab *k) {
    const __m512i m4 = _mm512_set1_epi32(0x0f0f0f0f);
    kslab_k4_head_avx512(w, idx, k);
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 8; l++) { /* columns 64g + 4l.. (low nibbles) and 64g + 32 + 4l.. (high) */
            const __m512i v = kg_avx512(w, idx, 16 + 32 * g + 4 * l);
            _mm512_storeu_si512((void *)k->q[16 * g + l], _mm512_and_si512(v, m4));
            _mm512_storeu_si512((void *)k->q[16 * g + 8 + l], _mm512_and_si512(_mm512_srli_epi32(v, 4), m4));
        }
}

static void kslab16_q5_k_avx512(const uint8_t *w, __m512i idx, kslab *k) {
    const __m512i m4 = _mm512_set1_epi32(0x0f0f0f0f), m1 = _mm512_set1_epi32(0x01010101);
    kslab_k4_head_avx512(w, idx, k);
    for (int l = 0; l < 8; l++) {
        const __m512i h = kg_avx512(w, idx, 16 + 4 * l);
        for (int g = 0; g < 4; g++) {
            const __m512i v = kg_avx512(w, idx, 48 + 32 * g + 4 * l);
            const __m512i h0 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * g), m1), 4),
                          h1 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2 * g + 1), m1), 4);
            _mm512_storeu_si512((void *)k->q[16 * g + l], _mm512_or_si512(_mm512_and_si512(v, m4), h0));
            _mm512_storeu_si512((void *)k->q[16 * g + 8 + l],
                                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 4), m4), h1));
        }
    }
}

static void kslab16_q6_k_avx512(const uint8_t *w, __m512i idx, kslab *k) {
    const __m512i m4 = _mm512_set1_epi32(0x0f0f0f0f), m2 = _mm512_set1_epi32(0x03030303), lo16 = _mm512_set1_epi32(0xffff);
    _mm512_storeu_ps(k->d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(kg_avx512(w, idx, 206), 16))));
    _mm512_storeu_ps(k->dmin, _mm512_setzero_ps());
    __m512i sc[16];
    for (int d = 0; d < 4; d++) {
        const __m512i v = kg_avx512(w, idx, 192 + 4 * d);
        for (int i = 0; i < 4; i++) sc[4 * d + i] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * i), 24);
    }
    for (int j = 0; j < 16; j++) _mm512_storeu_si512((void *)k->sc[j], sc[j]);
    for (int j = 0; j < 8; j++) /* (32 sc[2j], 32 sc[2j + 1]) as int16 */
        _mm512_storeu_si512((void *)k->mn[j], _mm512_or_si512(_mm512_and_si512(_mm512_slli_epi32(sc[2 * j], 5), lo16),
                                                               _mm512_slli_epi32(sc[2 * j + 1], 21)));
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 8; l++) { /* columns 128h + 32kk + 4l: step 32h + 8kk + l */
            const __m512i a = kg_avx512(w, idx, 64 * h + 4 * l), c = kg_avx512(w, idx, 64 * h + 32 + 4 * l),
                          qh = kg_avx512(w, idx, 128 + 32 * h + 4 * l);
            const __m512i v[4] = {_mm512_and_si512(a, m4), _mm512_and_si512(c, m4), _mm512_and_si512(_mm512_srli_epi32(a, 4), m4),
                                  _mm512_and_si512(_mm512_srli_epi32(c, 4), m4)};
            for (int kk = 0; kk < 4; kk++)
                _mm512_storeu_si512((void *)k->q[32 * h + 8 * kk + l],
                                    _mm512_or_si512(v[kk], _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 2 * kk), m2), 4)));
        }
    k->sub = 16, k->off = 1;
}

/* Q2_K: 16 sub-blocks of 16, 4-bit scale (low nibble) and min (high) */
static void kslab16_q2_k_avx512(const uint8_t *w, __m512i idx, kslab *k) {
    const __m512i m2 = _mm512_set1_epi32(0x03030303), m4 = _mm512_set1_epi32(0x0f0f0f0f);
    const __m512i g0 = kg_avx512(w, idx, 80);
    _mm512_storeu_ps(k->d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g0)));
    _mm512_storeu_ps(k->dmin, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g0, 16))));
    for (int d = 0; d < 4; d++) {
        const __m512i v = kg_avx512(w, idx, 4 * d), sc = _mm512_and_si512(v, m4), mn = _mm512_and_si512(_mm512_srli_epi32(v, 4), m4);
        for (int i = 0; i < 4; i++) _mm512_storeu_si512((void *)k->sc[4 * d + i], kbyte_avx512(sc, i));
        for (int i = 0; i < 4; i += 2) /* (m[4d + i], m[4d + i + 1]) as int16 */
            _mm512_storeu_si512((void *)k->mn[2 * d + i / 2],
                                _mm512_or_si512(kbyte_avx512(mn, i), _mm512_slli_epi32(kbyte_avx512(mn, i + 1), 16)));
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 8; l++) { /* columns 128h + 32kk + 4l: step 32h + 8kk + l */
            const __m512i v = kg_avx512(w, idx, 16 + 32 * h + 4 * l);
            for (int kk = 0; kk < 4; kk++)
                _mm512_storeu_si512((void *)k->q[32 * h + 8 * kk + l], _mm512_and_si512(_mm512_srli_epi32(v, 2 * kk), m2));
        }
    k->sub = 16, k->off = 0;
}

/* Q3_K: levels + 4 (0..7: the two low bits, plus 4 where the hmask bit is
   set), signed 6-bit scales; mins 4 x scale */
static void kslab16_q3_k_avx512(const uint8_t *w, __m512i idx, kslab *k) {
    const __m512i m2 = _mm512_set1_epi32(0x03030303), m4 = _mm512_set1_epi32(0x0f0f0f0f), m1 = _mm512_set1_epi32(0x01010101),
                  lo16 = _mm512_set1_epi32(0xffff), c32 = _mm512_set1_epi32(32);
    _mm512_storeu_ps(k->d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(kg_avx512(w, idx, 106), 16))));
    _mm512_storeu_ps(k->dmin, _mm512_setzero_ps());
    const __m512i a = kg_avx512(w, idx, 96), b = kg_avx512(w, idx, 100), c = kg_avx512(w, idx, 104);
    const __m512i u[4] = { /* q3_k_scales_u32 on 16 rows: 6-bit values of sub-blocks 4i.. */
        _mm512_or_si512(_mm512_and_si512(a, m4), _mm512_slli_epi32(_mm512_and_si512(c, m2), 4)),
        _mm512_or_si512(_mm512_and_si512(b, m4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(c, 2), m2), 4)),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(a, 4), m4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(c, 4), m2), 4)),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(b, 4), m4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(c, 6), m2), 4))};
    __m512i sc[16];
    for (int j = 0; j < 16; j++) {
        sc[j] = _mm512_sub_epi32(kbyte_avx512(u[j / 4], j % 4), c32);
        _mm512_storeu_si512((void *)k->sc[j], sc[j]);
    }
    for (int j = 0; j < 8; j++)
        _mm512_storeu_si512((void *)k->mn[j], _mm512_or_si512(_mm512_and_si512(_mm512_slli_epi32(sc[2 * j], 2), lo16),
                                                               _mm512_slli_epi32(sc[2 * j + 1], 18)));
    for (int l = 0; l < 8; l++) {
        const __m512i hm = kg_avx512(w, idx, 4 * l);
        for (int h = 0; h < 2; h++) {
            const __m512i v = kg_avx512(w, idx, 32 + 32 * h + 4 * l);
            for (int kk = 0; kk < 4; kk++)
                _mm512_storeu_si512((void *)k->q[32 * h + 8 * kk + l],
                                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 2 * kk), m2),
                                                    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hm, 4 * h + kk), m1), 2)));
        }
    }
    k->sub = 16, k->off = 1;
}

/* IQ4_XS: levels IQ4_VALUES + 128 (a byte shuffle), 8 sub-blocks of 32 with
   signed 6-bit scales; mins 128 x scale */
static void kslab16_iq4_xs_avx512(const uint8_t *w, __m512i idx, kslab *k) {
    const __m512i m4 = _mm512_set1_epi32(0x0f0f0f0f), lo16 = _mm512_set1_epi32(0xffff), c32 = _mm512_set1_epi32(32);
    uint8_t lut[16];
    for (int i = 0; i < 16; i++) lut[i] = (uint8_t)(IQ4_VALUES[i] + 128);
    const __m512i tab = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)lut));
    const __m512i g0 = kg_avx512(w, idx, 0), sl = kg_avx512(w, idx, 4);
    _mm512_storeu_ps(k->d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g0)));
    _mm512_storeu_ps(k->dmin, _mm512_setzero_ps());
    const __m512i sh = _mm512_srli_epi32(g0, 16);
    for (int j = 0; j < 8; j++) {
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(sl, 4 * j), _mm512_set1_epi32(15)); /* nibble j of scales_l */
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(sh, 2 * j), _mm512_set1_epi32(3));
        const __m512i sc = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), c32);
        _mm512_storeu_si512((void *)k->sc[j], sc);
        const __m512i m = _mm512_and_si512(_mm512_slli_epi32(sc, 7), lo16);
        _mm512_storeu_si512((void *)k->mn[j], _mm512_or_si512(m, _mm512_slli_epi32(m, 16)));
    }
    for (int sb = 0; sb < 8; sb++)
        for (int l = 0; l < 4; l++) { /* columns 32sb + 4l (low nibbles) and 32sb + 16 + 4l (high) */
            const __m512i v = kg_avx512(w, idx, 8 + 16 * sb + 4 * l);
            _mm512_storeu_si512((void *)k->q[8 * sb + l], _mm512_shuffle_epi8(tab, _mm512_and_si512(v, m4)));
            _mm512_storeu_si512((void *)k->q[8 * sb + 4 + l],
                                _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi32(v, 4), m4)));
        }
    k->sub = 32, k->off = 1;
}

typedef void (*kslab16_fn)(const uint8_t *w, __m512i idx, kslab *k);

/* nt2 tokens (a constant) of one super-block against a kslab: y += ...;
   fma (a constant) picks the x8 kernels' float steps (gemm_kx8_ref: FMAs) */
SLM_INLINE void gemm16_kslab_t(const kslab *k, const uint8_t *a, size_t a_rb, int nt2, float *y, int64_t ldy, int first,
                               int fma) {
    __m512i isum[8], ms[8];
    SLM_UNROLL(8)
    for (int t = 0; t < nt2; t++) isum[t] = _mm512_setzero_si512(), ms[t] = _mm512_setzero_si512();
    const int steps = k->sub / 4; /* zmm steps per scale */
    for (int j = 0; j < 256 / k->sub; j++) {
        __m512i s[8];
        SLM_UNROLL(8)
        for (int t = 0; t < nt2; t++) s[t] = _mm512_setzero_si512();
        for (int st = j * steps; st < (j + 1) * steps; st++) {
            const __m512i q = _mm512_loadu_si512((const void *)k->q[st]);
            SLM_UNROLL(8)
            for (int t = 0; t < nt2; t++)
                s[t] = _mm512_dpbusd_epi32(s[t], q, _mm512_set1_epi32((int)ld_u32(a + (size_t)t * a_rb + 4 + 4 * st)));
        }
        const __m512i sc = _mm512_loadu_si512((const void *)k->sc[j]);
        SLM_UNROLL(8)
        for (int t = 0; t < nt2; t++) isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s[t], sc));
    }
    SLM_UNROLL(8)
    for (int j = 0; j < 8; j++) {
        const __m512i m = _mm512_loadu_si512((const void *)k->mn[j]);
        SLM_UNROLL(8)
        for (int t = 0; t < nt2; t++)
            ms[t] = _mm512_dpwssd_epi32(ms[t], m, _mm512_set1_epi32((int)ld_u32(a + (size_t)t * a_rb + 260 + 4 * j)));
    }
    const __m512 d = _mm512_loadu_ps(k->d), dmin = _mm512_loadu_ps(k->dmin);
    SLM_UNROLL(8)
    for (int t = 0; t < nt2; t++) {
        const __m512 da = _mm512_set1_ps(ld_f32(a + (size_t)t * a_rb));
        float *yt = y + (int64_t)t * ldy;
        __m512 r;
        if (fma) {
            r = first ? _mm512_setzero_ps() : _mm512_loadu_ps(yt);
            if (k->off) r = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[t], ms[t])), _mm512_mul_ps(d, da), r);
            else {
                r = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, da), r);
                r = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms[t]), _mm512_mul_ps(dmin, da), r);
            }
        } else {
            if (k->off) r = _mm512_mul_ps(_mm512_mul_ps(d, da), _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[t], ms[t])));
            else
                r = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(d, da), _mm512_cvtepi32_ps(isum[t])),
                                  _mm512_mul_ps(_mm512_mul_ps(dmin, da), _mm512_cvtepi32_ps(ms[t])));
            r = _mm512_add_ps(first ? _mm512_setzero_ps() : _mm512_loadu_ps(yt), r);
        }
        _mm512_storeu_ps(yt, r);
    }
}

/* tokens t0..t1 of one super-block (activations ab) against a kslab, into
   acc: [token - t0][16 rows] */
SLM_INLINE void gemm16_kslab_tokens(const kslab *k, const uint8_t *ab, size_t a_rb, int t0, int t1, float *acc, int first,
                                    int fma) {
    int t = t0;
    for (; t + 8 <= t1; t += 8) gemm16_kslab_t(k, ab + (size_t)t * a_rb, a_rb, 8, acc + 16 * (t - t0), 16, first, fma);
    if (t + 4 <= t1) gemm16_kslab_t(k, ab + (size_t)t * a_rb, a_rb, 4, acc + 16 * (t - t0), 16, first, fma), t += 4;
    for (; t < t1; t++) gemm16_kslab_t(k, ab + (size_t)t * a_rb, a_rb, 1, acc + 16 * (t - t0), 16, first, fma);
}

static void gemm16_k_avx512(kslab16_fn conv16, int bytes, int n, const void *w, size_t wb, const void *a, size_t a_rb,
                            int nt, float *y, int64_t ldy) {
    kslab k;
    /* 32-bit gather offsets: mm_gemm keeps 15 wb below 2^31 */
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)wb));
    float acc[128 * 16]; /* [token][row] of a chunk of 128 tokens (as the x8 GEMM) */
    for (int t0 = 0; t0 < nt; t0 += 128) {
        const int t1 = SLM_MIN(nt, t0 + 128);
        for (int b = 0; b < n / QK_K; b++) {
            conv16((const uint8_t *)w + (size_t)b * (size_t)bytes, idx, &k);
            gemm16_kslab_tokens(&k, (const uint8_t *)a + (size_t)b * 292, a_rb, t0, t1, acc, b == 0, 0);
        }
        for (int t = t0; t < t1; t++) memcpy(y + (int64_t)t * ldy, acc + 16 * (t - t0), 16 * sizeof(float));
    }
}

static void gemm16_q4_k_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx512(kslab16_q4_k_avx512, 144, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_q5_k_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx512(kslab16_q5_k_avx512, 176, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_q6_k_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx512(kslab16_q6_k_avx512, 210, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_q2_k_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx512(kslab16_q2_k_avx512, 84, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_q3_k_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx512(kslab16_q3_k_avx512, 110, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_iq4_xs_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_k_avx512(kslab16_iq4_xs_avx512, 136, n, w, wb, a, a_rb, nt, y, ldy);
}

/* K-quant x8 groups (layouts in section 5) to a kslab: the two groups (wb
   bytes apart) are rows 0-7 and 8-15, and every 32-byte chunk of a group
   already holds 8 rows' dwords of 4 columns, so a step is one 256-bit load
   per group (no gathers, no transpose) and one pshufb puts 8 rows' scales
   of a sub-block into their lanes. The float steps are the x8 kernels'
   (gemm_kx8_ref: FMAs), so a repacked matrix gives the same bits in prefill
   and decode, and the GEMM can start at SLM_GEMM_X8_MIN_TOKENS (bench_gemm,
   576 x 1536 Q4_K/Q6_K against the 4-token x8 kernels: 1.25x/1.16x at 8
   tokens, 1.68x/1.57x at 128). AVX2 has none: the same slab with its
   per-step vpmaddwd ran at 0.66x (8 tokens) to 0.85x (128) of the AVX2 x8
   kernels, which sum a sub-block in 16 bits before one vpmaddwd. */

/* pshufb mask: in every 128-bit quarter, lane r gets byte 4 s + r (zero-extended) */
static inline __m512i kx8slab_mask_avx512(int s) {
    return _mm512_add_epi32(_mm512_set1_epi32((int)(0x80808000u | (unsigned)(4 * s))),
                            _mm512_broadcast_i32x4(_mm_setr_epi32(0, 1, 2, 3)));
}

static inline __m512 kx8slab_f16x2(const uint8_t *g0, const uint8_t *g1) {
    return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)g0)),
                                                   _mm_loadu_si128((const __m128i *)g1), 1));
}

/* Q4_Kx8/Q5_Kx8: d, dmin, scales and mins of the 16 rows */
static inline void kx8slab_k4_head_avx512(const uint8_t *g0, const uint8_t *g1, kslab *k) {
    const __m512i m4 = _mm512_set1_epi32(15), m2 = _mm512_set1_epi32(3);
    _mm512_storeu_ps(k->d, kx8slab_f16x2(g0, g1));
    _mm512_storeu_ps(k->dmin, kx8slab_f16x2(g0 + 16, g1 + 16));
    const __m512i hi = gemm16_load2(g0 + 96, g1 + 96);
    for (int half = 0; half < 2; half++) {
        const __m512i v = gemm16_load2(g0 + 32 + 32 * half, g1 + 32 + 32 * half);
        for (int s = 0; s < 4; s++) {
            const __m512i mask = kx8slab_mask_avx512(s), lo = _mm512_shuffle_epi8(v, mask),
                          hb = _mm512_srli_epi32(_mm512_shuffle_epi8(hi, mask), 4 * half);
            const __m512i mn = _mm512_or_si512(_mm512_srli_epi32(lo, 4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2), m2), 4));
            _mm512_storeu_si512((void *)k->sc[4 * half + s],
                                _mm512_or_si512(_mm512_and_si512(lo, m4), _mm512_slli_epi32(_mm512_and_si512(hb, m2), 4)));
            _mm512_storeu_si512((void *)k->mn[4 * half + s], _mm512_or_si512(mn, _mm512_slli_epi32(mn, 16)));
        }
    }
    k->sub = 32, k->off = 0;
}

static void kx8slab_q4_k_avx512(const uint8_t *g0, const uint8_t *g1, kslab *k) {
    const __m512i m4 = _mm512_set1_epi8(15);
    kx8slab_k4_head_avx512(g0, g1, k);
    for (int s = 0; s < 8; s++)
        for (int c = 0; c < 4; c++) { /* columns 32s + 8c.. (low nibbles), 32s + 8c + 4.. (high) */
            const __m512i v = gemm16_load2(g0 + 128 + 128 * s + 32 * c, g1 + 128 + 128 * s + 32 * c);
            _mm512_storeu_si512((void *)k->q[8 * s + 2 * c], _mm512_and_si512(v, m4));
            _mm512_storeu_si512((void *)k->q[8 * s + 2 * c + 1], _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
        }
}

static void kx8slab_q5_k_avx512(const uint8_t *g0, const uint8_t *g1, kslab *k) {
    const __m512i m4 = _mm512_set1_epi8(15), m1 = _mm512_set1_epi8(1);
    kx8slab_k4_head_avx512(g0, g1, k);
    for (int s = 0; s < 8; s++) {
        const int o = 128 + 160 * s;
        const __m512i hb = gemm16_load2(g0 + o, g1 + o); /* bit c: low nibble's fifth bit, bit 4 + c: high's */
        for (int c = 0; c < 4; c++) {
            const __m512i v = gemm16_load2(g0 + o + 32 + 32 * c, g1 + o + 32 + 32 * c);
            const __m512i h0 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, c), m1), 4),
                          h1 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 4 + c), m1), 4);
            _mm512_storeu_si512((void *)k->q[8 * s + 2 * c], _mm512_or_si512(_mm512_and_si512(v, m4), h0));
            _mm512_storeu_si512((void *)k->q[8 * s + 2 * c + 1], _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), h1));
        }
    }
}

/* Q6_Kx8: the stored 6-bit values are the level + 32 (mins 32 x scale) */
static void kx8slab_q6_k_avx512(const uint8_t *g0, const uint8_t *g1, kslab *k) {
    const __m512i m4 = _mm512_set1_epi8(15), m2 = _mm512_set1_epi8(3);
    _mm512_storeu_ps(k->d, kx8slab_f16x2(g0, g1));
    _mm512_storeu_ps(k->dmin, _mm512_setzero_ps());
    for (int j = 0; j < 8; j++) { /* lane r: row r's scales of sub-blocks 2j, 2j + 1 as int16 */
        const __m512i x = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(g0 + 16 + 16 * j))), _mm_loadu_si128((const __m128i *)(g1 + 16 + 16 * j)), 1));
        _mm512_storeu_si512((void *)k->sc[2 * j], _mm512_srai_epi32(_mm512_slli_epi32(x, 16), 16));
        _mm512_storeu_si512((void *)k->sc[2 * j + 1], _mm512_srai_epi32(x, 16));
        _mm512_storeu_si512((void *)k->mn[j], _mm512_slli_epi16(x, 5));
    }
    for (int p = 0; p < 8; p++) {
        const int o = 144 + 192 * p;
        for (int c = 0; c < 4; c++) { /* columns 32p + 8c.. and 32p + 8c + 4.. */
            const __m512i v = gemm16_load2(g0 + o + 32 * c, g1 + o + 32 * c),
                          hb = _mm512_srli_epi16(gemm16_load2(g0 + o + 128 + 32 * (c / 2), g1 + o + 128 + 32 * (c / 2)), 4 * (c % 2));
            _mm512_storeu_si512((void *)k->q[8 * p + 2 * c], _mm512_or_si512(_mm512_and_si512(v, m4), _mm512_slli_epi16(_mm512_and_si512(hb, m2), 4)));
            _mm512_storeu_si512((void *)k->q[8 * p + 2 * c + 1],
                                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
                                                _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 2), m2), 4)));
        }
    }
    k->sub = 16, k->off = 1;
}

typedef void (*kx8slab16_fn)(const uint8_t *g0, const uint8_t *g1, kslab *k);

static void gemm16_kx8_avx512(kx8slab16_fn conv, int bytes, int n, const void *w, size_t wb, const void *a, size_t a_rb,
                              int nt, float *y, int64_t ldy) {
    kslab k;
    float acc[128 * 16]; /* [token][row] of a chunk of 128 tokens */
    for (int t0 = 0; t0 < nt; t0 += 128) {
        const int t1 = SLM_MIN(nt, t0 + 128);
        for (int b = 0; b < n / QK_K; b++) {
            const uint8_t *g0 = (const uint8_t *)w + (size_t)b * (size_t)bytes;
            conv(g0, g0 + wb, &k);
            gemm16_kslab_tokens(&k, (const uint8_t *)a + (size_t)b * 292, a_rb, t0, t1, acc, b == 0, 1);
        }
        for (int t = t0; t < t1; t++) memcpy(y + (int64_t)t * ldy, acc + 16 * (t - t0), 16 * sizeof(float));
    }
}

static void gemm16_q4_kx8_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_kx8_avx512(kx8slab_q4_k_avx512, 1152, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_q5_kx8_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_kx8_avx512(kx8slab_q5_k_avx512, 1408, n, w, wb, a, a_rb, nt, y, ldy);
}
static void gemm16_q6_kx8_avx512(int n, const void *w, size_t wb, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {
    gemm16_kx8_avx512(kx8slab_q6_k_avx512, 1680, n, w, wb, a, a_rb, nt, y, ldy);
}

SLM_TARGET_END
#endif /* SLM_AVX512 */

/* -------------------------------------------------------------------------- */
/* E3. x86 SSE4.1 (+SSSE3): x86-64 machines without AVX2 (Atom, Celeron)      */
/* -------------------------------------------------------------------------- */
/* The AVX2 kernels at half width, without FMA; without F16C the f16
   conversions are done with integer operations, as f32_to_fp16 does. */
#ifdef SLM_SSE4
SLM_TARGET_SSE4

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

/* ---- The other block types: the AVX2 kernels at half width (4 int32 and
   4 float lanes per token), mul + add for FMA. ---- */

static inline int32_t hsum_i32_sse(__m128i s) {
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

static inline __m128i nib_lo_sse(__m128i v) { return _mm_and_si128(v, _mm_set1_epi8(15)); }
static inline __m128i nib_hi_sse(__m128i v) { return _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(15)); }

/* bits 16h..16h+15 of the little-endian 32-bit word at p -> 16 bytes, 0xff if set */
static inline __m128i bits16_sse(const uint8_t *p, int h) {
    const __m128i shuf = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m128i bit = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
    const __m128i v = _mm_shuffle_epi8(_mm_cvtsi32_si128((int)ld_u16(p + 2 * h)), shuf);
    return _mm_cmpeq_epi8(_mm_and_si128(v, bit), bit);
}

static inline __m128i iq4_lookup_sse(__m128i nib) { return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)IQ4_VALUES), nib); }

/* Q5_0 block -> 2 x 16 int8 in [-16, 15] (see q5_0_unpack_avx2) */
static inline void q5_0_unpack_sse(const uint8_t *b, __m128i *lo, __m128i *hi) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(b + 6)), f0 = _mm_set1_epi8((char)0xf0);
    *lo = _mm_or_si128(nib_lo_sse(v), _mm_andnot_si128(bits16_sse(b + 2, 0), f0));
    *hi = _mm_or_si128(nib_hi_sse(v), _mm_andnot_si128(bits16_sse(b + 2, 1), f0));
}

static float dot_q5_0_sse(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m128 s = _mm_setzero_ps();
    for (int i = 0; i < n / 32; i++, x += 22, y += 34) {
        __m128i lo, hi;
        q5_0_unpack_sse(x, &lo, &hi);
        const __m128 p = i8dot_sse(lo, hi, _mm_loadu_si128((const __m128i *)(y + 2)), _mm_loadu_si128((const __m128i *)(y + 18)));
        s = _mm_add_ps(s, _mm_mul_ps(_mm_set1_ps(ld_f16(x) * ld_f16(y)), p));
    }
    return hsum_sse(s);
}

static void dot4_q5_0_sse(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    __m128 s[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    for (int i = 0; i < n / 32; i++, x += 22, y += 34) {
        __m128i x0, x1;
        q5_0_unpack_sse(x, &x0, &x1);
        const float dx = ld_f16(x);
        s[0] = dot4_step_sse(s[0], x0, x1, dx, y);
        s[1] = dot4_step_sse(s[1], x0, x1, dx, y + a_rb);
        s[2] = dot4_step_sse(s[2], x0, x1, dx, y + 2 * a_rb);
        s[3] = dot4_step_sse(s[3], x0, x1, dx, y + 3 * a_rb);
    }
    for (int k = 0; k < 4; k++) yo[k * ldy] = hsum_sse(s[k]);
}

/* 2 x 16 unsigned weights against 32 int8 at q8, 4 lanes, as floats */
static inline __m128 u8dot_sse(__m128i q0, __m128i q1, const uint8_t *q8) {
    const __m128i p0 = _mm_maddubs_epi16(q0, _mm_loadu_si128((const __m128i *)q8));
    const __m128i p1 = _mm_maddubs_epi16(q1, _mm_loadu_si128((const __m128i *)(q8 + 16)));
    return _mm_cvtepi32_ps(_mm_madd_epi16(_mm_add_epi16(p0, p1), _mm_set1_epi16(1)));
}

/* Q4_1/Q5_1 (bits 5: the fifth bits from qh): the min terms summed apart */
static inline __m128 q8_1_step_sse(__m128 s, float *sm, __m128i lo, __m128i hi, float xd, float xm, const uint8_t *yb) {
    *sm += xm * ld_f16(yb + 2);
    return _mm_add_ps(s, _mm_mul_ps(_mm_set1_ps(xd * ld_f16(yb)), u8dot_sse(lo, hi, yb + 4)));
}

static SLM_ALWAYS_INLINE void k41_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                      int64_t ldy, int bits) {
    const __m128i b4 = _mm_set1_epi8(16);
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
    for (int i = 0; i < n / 32; i++, x += bits == 4 ? 20 : 24, y += 36) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(x + (bits == 4 ? 4 : 8)));
        __m128i lo = nib_lo_sse(v), hi = nib_hi_sse(v);
        if (bits == 5) {
            lo = _mm_or_si128(lo, _mm_and_si128(bits16_sse(x + 4, 0), b4));
            hi = _mm_or_si128(hi, _mm_and_si128(bits16_sse(x + 4, 1), b4));
        }
        const float xd = ld_f16(x), xm = ld_f16(x + 2);
        s0 = q8_1_step_sse(s0, &m0, lo, hi, xd, xm, y);
        if (nt == 4) {
            s1 = q8_1_step_sse(s1, &m1, lo, hi, xd, xm, y + rb);
            s2 = q8_1_step_sse(s2, &m2, lo, hi, xd, xm, y + 2 * rb);
            s3 = q8_1_step_sse(s3, &m3, lo, hi, xd, xm, y + 3 * rb);
        }
    }
    yo[0] = hsum_sse(s0) + m0;
    if (nt == 4) yo[ldy] = hsum_sse(s1) + m1, yo[2 * ldy] = hsum_sse(s2) + m2, yo[3 * ldy] = hsum_sse(s3) + m3;
}

static SLM_ALWAYS_INLINE void q4_1_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    k41_sse(n, x, y, rb, nt, yo, ldy, 4);
}

static SLM_ALWAYS_INLINE void q5_1_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    k41_sse(n, x, y, rb, nt, yo, ldy, 5);
}

static SLM_ALWAYS_INLINE void iq4_nl_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                         int64_t ldy) {
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / 32; i++, x += 18, y += 34) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(x + 2));
        const __m128i lo = iq4_lookup_sse(nib_lo_sse(v)), hi = iq4_lookup_sse(nib_hi_sse(v));
        const float xd = ld_f16(x);
        s0 = dot4_step_sse(s0, lo, hi, xd, y);
        if (nt == 4) {
            s1 = dot4_step_sse(s1, lo, hi, xd, y + rb);
            s2 = dot4_step_sse(s2, lo, hi, xd, y + 2 * rb);
            s3 = dot4_step_sse(s3, lo, hi, xd, y + 3 * rb);
        }
    }
    yo[0] = hsum_sse(s0);
    if (nt == 4) yo[ldy] = hsum_sse(s1), yo[2 * ldy] = hsum_sse(s2), yo[3 * ldy] = hsum_sse(s3);
}

/* K-quant steps, one token each: 32 weights (two halves of 16, scales sc0
   and sc1 as 16-bit lanes) against 32 Q8_K values, added to 4 int32 lanes.
   Signed weights as |q| with the sign moved to the activations. */
static inline __m128i k_ustep_sse(__m128i sumi, __m128i q0, __m128i q1, __m128i sc0, __m128i sc1, const uint8_t *q8) {
    const __m128i p0 = _mm_madd_epi16(sc0, _mm_maddubs_epi16(q0, _mm_loadu_si128((const __m128i *)q8)));
    const __m128i p1 = _mm_madd_epi16(sc1, _mm_maddubs_epi16(q1, _mm_loadu_si128((const __m128i *)(q8 + 16))));
    return _mm_add_epi32(sumi, _mm_add_epi32(p0, p1));
}

static inline __m128i k_sstep_sse(__m128i sumi, __m128i q0, __m128i q1, __m128i sc0, __m128i sc1, const uint8_t *q8) {
    const __m128i y0 = _mm_sign_epi8(_mm_loadu_si128((const __m128i *)q8), q0);
    const __m128i y1 = _mm_sign_epi8(_mm_loadu_si128((const __m128i *)(q8 + 16)), q1);
    const __m128i p0 = _mm_madd_epi16(sc0, _mm_maddubs_epi16(_mm_sign_epi8(q0, q0), y0));
    const __m128i p1 = _mm_madd_epi16(sc1, _mm_maddubs_epi16(_mm_sign_epi8(q1, q1), y1));
    return _mm_add_epi32(sumi, _mm_add_epi32(p0, p1));
}

static inline __m128 k_scale_sse(__m128 acc, __m128i sumi, float xd, const uint8_t *yb) {
    return _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(ld_f32(yb) * xd), _mm_cvtepi32_ps(sumi)));
}

/* 16-bit lanes of byte i of a 16-byte table (a sub-block's scale) */
static inline __m128i k_scale1_sse(__m128i sc, int i, int is_signed) {
    const __m128i b = _mm_shuffle_epi8(sc, _mm_set1_epi8((char)i));
    return is_signed ? _mm_cvtepi8_epi16(b) : _mm_cvtepu8_epi16(b);
}



/* min terms of a super-block: -d_a * dmin_w * (mins . sub-block sums) into
   the float lanes */
#define K_MINS_SSE(f)                                                                                                \
    do {                                                                                                             \
        s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_set1_ps(-ld_f32(y) * xm), _mm_cvtepi32_ps(f(y))));                       \
        if (nt == 4) {                                                                                               \
            s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_set1_ps(-ld_f32(y + rb) * xm), _mm_cvtepi32_ps(f(y + rb))));         \
            s2 = _mm_add_ps(s2, _mm_mul_ps(_mm_set1_ps(-ld_f32(y + 2 * rb) * xm), _mm_cvtepi32_ps(f(y + 2 * rb)))); \
            s3 = _mm_add_ps(s3, _mm_mul_ps(_mm_set1_ps(-ld_f32(y + 3 * rb) * xm), _mm_cvtepi32_ps(f(y + 3 * rb)))); \
        }                                                                                                            \
    } while (0)

#define K_RESULT_SSE()                                                                                               \
    do {                                                                                                             \
        yo[0] = hsum_sse(s0);                                                                                        \
        if (nt == 4) yo[ldy] = hsum_sse(s1), yo[2 * ldy] = hsum_sse(s2), yo[3 * ldy] = hsum_sse(s3);                 \
    } while (0)

/* Q4_K and Q5_K (bits: 5): value 64j + l is nibble 0 of qs[32j + l],
   64j + 32 + l nibble 1; Q5_K's fifth bits are bits 2j, 2j + 1 of qh[l] */
static SLM_ALWAYS_INLINE void k45_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                      int64_t ldy, int bits) {
    const size_t bytes = bits == 4 ? 144 : 176;
    const __m128i b4 = _mm_set1_epi8(16);
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += bytes, y += 292) {
        uint32_t u[4];
        k4_scales_u32(x + 4, u);
        const __m128i sc = _mm_loadu_si128((const __m128i *)u), mins = _mm_cvtepu8_epi16(_mm_srli_si128(sc, 8));
        const float xd = ld_f16(x), xm = ld_f16(x + 2);
#define MINS(yb) _mm_madd_epi16(mins, _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)((yb) + 260)), _mm_loadu_si128((const __m128i *)((yb) + 276))))
        K_MINS_SSE(MINS);
#undef MINS
        const uint8_t *qs = x + (bits == 4 ? 16 : 48);
        __m128i h0 = _mm_loadu_si128((const __m128i *)(x + 16)), h1 = _mm_loadu_si128((const __m128i *)(x + 32));
        __m128i i0 = _mm_setzero_si128(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(4)
        for (int j = 0; j < 4; j++) {
            const __m128i v0 = _mm_loadu_si128((const __m128i *)(qs + 32 * j));
            const __m128i v1 = _mm_loadu_si128((const __m128i *)(qs + 32 * j + 16));
            __m128i a0 = nib_lo_sse(v0), a1 = nib_lo_sse(v1), c0 = nib_hi_sse(v0), c1 = nib_hi_sse(v1);
            if (bits == 5) {
                a0 = _mm_or_si128(a0, _mm_and_si128(_mm_slli_epi16(h0, 4), b4));
                a1 = _mm_or_si128(a1, _mm_and_si128(_mm_slli_epi16(h1, 4), b4));
                c0 = _mm_or_si128(c0, _mm_and_si128(_mm_slli_epi16(h0, 3), b4));
                c1 = _mm_or_si128(c1, _mm_and_si128(_mm_slli_epi16(h1, 3), b4));
                h0 = _mm_srli_epi16(h0, 2), h1 = _mm_srli_epi16(h1, 2);
            }
            const __m128i sl = k_scale1_sse(sc, 2 * j, 0), sh = k_scale1_sse(sc, 2 * j + 1, 0);
            const uint8_t *q8 = y + 4 + 64 * j;
            K_TOKENS(k_ustep_sse, a0, a1, sl, sl);
            q8 += 32;
            K_TOKENS(k_ustep_sse, c0, c1, sh, sh);
        }
        K_SCALE(k_scale_sse, xd);
    }
    K_RESULT_SSE();
}

static SLM_ALWAYS_INLINE void q4_k_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    k45_sse(n, x, y, rb, nt, yo, ldy, 4);
}

static SLM_ALWAYS_INLINE void q5_k_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo, int64_t ldy) {
    k45_sse(n, x, y, rb, nt, yo, ldy, 5);
}

/* Q6_K, Q2_K, Q3_K: value 128h + 32k + l, sub-blocks of 16 */
static SLM_ALWAYS_INLINE void q6_k_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                       int64_t ldy) {
    const __m128i m30 = _mm_set1_epi8(0x30), c32 = _mm_set1_epi8(32);
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 210, y += 292) {
        const __m128i sc = _mm_loadu_si128((const __m128i *)(x + 192));
        const float xd = ld_f16(x + 208);
        __m128i i0 = _mm_setzero_si128(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++)
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                const uint8_t *ql = x + 64 * h + 32 * (k & 1), *qh = x + 128 + 32 * h;
                __m128i q[2];
                SLM_UNROLL(2)
                for (int e = 0; e < 2; e++) {
                    const __m128i l = _mm_loadu_si128((const __m128i *)(ql + 16 * e)), hb = _mm_loadu_si128((const __m128i *)(qh + 16 * e));
                    const __m128i lo = k < 2 ? nib_lo_sse(l) : nib_hi_sse(l);
                    const __m128i hi = k == 0 ? _mm_slli_epi16(hb, 4) : k == 1 ? _mm_slli_epi16(hb, 2) : k == 2 ? hb : _mm_srli_epi16(hb, 2);
                    q[e] = _mm_sub_epi8(_mm_or_si128(lo, _mm_and_si128(hi, m30)), c32);
                }
                const __m128i sc0 = k_scale1_sse(sc, 8 * h + 2 * k, 1), sc1 = k_scale1_sse(sc, 8 * h + 2 * k + 1, 1);
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_sstep_sse, q[0], q[1], sc0, sc1);
            }
        K_SCALE(k_scale_sse, xd);
    }
    K_RESULT_SSE();
}

static SLM_ALWAYS_INLINE void q2_k_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                       int64_t ldy) {
    const __m128i m3 = _mm_set1_epi8(3), m15 = _mm_set1_epi8(15);
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 84, y += 292) {
        const __m128i sm = _mm_loadu_si128((const __m128i *)x), sc = _mm_and_si128(sm, m15);
        const __m128i mn = _mm_and_si128(_mm_srli_epi16(sm, 4), m15);
        const __m128i mn0 = _mm_cvtepu8_epi16(mn), mn1 = _mm_cvtepu8_epi16(_mm_srli_si128(mn, 8));
        const float xd = ld_f16(x + 80), xm = ld_f16(x + 82);
#define MINS(yb) _mm_add_epi32(_mm_madd_epi16(mn0, _mm_loadu_si128((const __m128i *)((yb) + 260))), _mm_madd_epi16(mn1, _mm_loadu_si128((const __m128i *)((yb) + 276))))
        K_MINS_SSE(MINS);
#undef MINS
        __m128i i0 = _mm_setzero_si128(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const __m128i b0 = _mm_loadu_si128((const __m128i *)(x + 16 + 32 * h)), b1 = _mm_loadu_si128((const __m128i *)(x + 32 + 32 * h));
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                const __m128i q0 = _mm_and_si128(_mm_srli_epi16(b0, 2 * k), m3), q1 = _mm_and_si128(_mm_srli_epi16(b1, 2 * k), m3);
                const __m128i sc0 = k_scale1_sse(sc, 8 * h + 2 * k, 0), sc1 = k_scale1_sse(sc, 8 * h + 2 * k + 1, 0);
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_ustep_sse, q0, q1, sc0, sc1);
            }
        }
        K_SCALE(k_scale_sse, xd);
    }
    K_RESULT_SSE();
}

static SLM_ALWAYS_INLINE void q3_k_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                       int64_t ldy) {
    const __m128i m3 = _mm_set1_epi8(3), c4 = _mm_set1_epi8(4);
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 110, y += 292) {
        uint32_t u[4];
        q3_k_scales_u32(x + 96, u);
        const __m128i sc = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)u), _mm_set1_epi8(32));
        const __m128i hm0 = _mm_loadu_si128((const __m128i *)x), hm1 = _mm_loadu_si128((const __m128i *)(x + 16));
        const float xd = ld_f16(x + 108);
        __m128i i0 = _mm_setzero_si128(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const __m128i b0 = _mm_loadu_si128((const __m128i *)(x + 32 + 32 * h)), b1 = _mm_loadu_si128((const __m128i *)(x + 48 + 32 * h));
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                const __m128i bit = _mm_set1_epi8((char)(1 << (4 * h + k))), z = _mm_setzero_si128();
                const __m128i q0 = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b0, 2 * k), m3), _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(hm0, bit), z), c4));
                const __m128i q1 = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b1, 2 * k), m3), _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(hm1, bit), z), c4));
                const __m128i sc0 = k_scale1_sse(sc, 8 * h + 2 * k, 1), sc1 = k_scale1_sse(sc, 8 * h + 2 * k + 1, 1);
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_sstep_sse, q0, q1, sc0, sc1);
            }
        }
        K_SCALE(k_scale_sse, xd);
    }
    K_RESULT_SSE();
}

static SLM_ALWAYS_INLINE void iq4_xs_sse(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                         int64_t ldy) {
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / QK_K; i++, x += 136, y += 292) {
        const float xd = ld_f16(x);
        __m128i i0 = _mm_setzero_si128(), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(8)
        for (int s = 0; s < 8; s++) {
            const __m128i v = _mm_loadu_si128((const __m128i *)(x + 8 + 16 * s));
            const __m128i q0 = iq4_lookup_sse(nib_lo_sse(v)), q1 = iq4_lookup_sse(nib_hi_sse(v));
            const __m128i sc = _mm_set1_epi16((short)iq4_xs_scale(x, s));
            const uint8_t *q8 = y + 4 + 32 * s;
            K_TOKENS(k_sstep_sse, q0, q1, sc, sc);
        }
        K_SCALE(k_scale_sse, xd);
    }
    K_RESULT_SSE();
}
#undef K_MINS_SSE
#undef K_RESULT_SSE

K_ENTRIES(q4_1, sse)
K_ENTRIES(q5_1, sse)
K_ENTRIES(iq4_nl, sse)
K_ENTRIES(q2_k, sse)
K_ENTRIES(q3_k, sse)
K_ENTRIES(q4_k, sse)
K_ENTRIES(q5_k, sse)
K_ENTRIES(q6_k, sse)
K_ENTRIES(iq4_xs, sse)

/* Q8_1 and Q8_K activations: the same bytes as the references (see
   q8_1_from_float_avx2) */
static inline float amax_sse(const float *src, int n) {
    const __m128 sign = _mm_set1_ps(-0.0f);
    __m128 m = _mm_setzero_ps();
    for (int j = 0; j < n; j += 4) m = _mm_max_ps(_mm_andnot_ps(sign, _mm_loadu_ps(src + j)), m);
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 16 floats times mul, rounded, stored as 16 int8; returns their sum in 4 lanes */
static inline __m128i q8_round16_sse(const float *src, __m128 mul, uint8_t *dst) {
#define RND(j) _mm_cvtps_epi32(_mm_round_ps(_mm_mul_ps(_mm_loadu_ps(src + (j)), mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
    const __m128i a = RND(0), b = RND(4), c = RND(8), d = RND(12);
#undef RND
    _mm_storeu_si128((__m128i *)dst, _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d)));
    return _mm_add_epi32(_mm_add_epi32(a, b), _mm_add_epi32(c, d));
}

static void q8_1_from_float_sse(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / 32; i++, b += 36, src += 32) {
        const float amax = amax_sse(src, 32);
        const float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        if (!(id <= FLT_MAX) || !(amax <= FLT_MAX)) {
            q8_1_from_float_ref(src, b, 32);
            continue;
        }
        const __m128 mul = _mm_set1_ps(id);
        const __m128i sum = _mm_add_epi32(q8_round16_sse(src, mul, b + 4), q8_round16_sse(src + 16, mul, b + 20));
        st_u16(b, f32_to_fp16(d));
        st_u16(b + 2, f32_to_fp16(d * (float)hsum_i32_sse(sum)));
    }
}

static void q8_k_from_float_sse(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK_K; i++, b += 292, src += QK_K) {
        const float amax = amax_sse(src, QK_K);
        if (amax == 0) {
            memset(b, 0, 292);
            continue;
        }
        const __m128 vmax = _mm_set1_ps(amax), sign = _mm_set1_ps(-0.0f);
        int j = 0;
        while (!_mm_movemask_ps(_mm_cmpeq_ps(_mm_andnot_ps(sign, _mm_loadu_ps(src + j)), vmax))) j += 4;
        while (fabsf(src[j]) != amax) j++;
        const float iscale = -127.0f / src[j];
        if (!(fabsf(iscale) <= FLT_MAX) || !(amax <= FLT_MAX)) {
            q8_k_from_float_ref(src, b, QK_K);
            continue;
        }
        /* the 16-value sums: 4 lanes each, then hadd twice for 4 side by side */
        __m128i v[16];
        for (int g = 0; g < 16; g++) v[g] = q8_round16_sse(src + 16 * g, _mm_set1_ps(iscale), b + 4 + 16 * g);
        __m128i f[4];
        for (int k = 0; k < 4; k++)
            f[k] = _mm_hadd_epi32(_mm_hadd_epi32(v[4 * k], v[4 * k + 1]), _mm_hadd_epi32(v[4 * k + 2], v[4 * k + 3]));
        _mm_storeu_si128((__m128i *)(b + 260), _mm_packs_epi32(f[0], f[1]));
        _mm_storeu_si128((__m128i *)(b + 276), _mm_packs_epi32(f[2], f[3]));
        st_f32(b, 1.0f / iscale);
    }
}


SLM_TARGET_END
#endif /* SLM_SSE4 */

/* -------------------------------------------------------------------------- */
/* E4. ARM NEON: aarch64 (baseline, dotprod, i8mm) and ARMv7                  */
/* -------------------------------------------------------------------------- */
/* One code path; the few helpers below hide what AArch32 lacks (across-
   vector adds, rounding conversion, fused multiply-add without VFPv4). On
   ARMv7 the f16 kernels need -mfp16-format=ieee with GCC (half types).
   The int8 kernels are templates with a constant `dp`: 0 for the baseline
   (the neon table: products widened through int16), 1 for SDOT (the
   dotprod table: entry points with the dotprod target, section 1). Only
   the helpers i8dot_neon and dot16_neon look at dp. The SMMLA (i8mm)
   kernels for the x8 layouts are at the end of the section. */
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

#ifdef SLM_NEON_DOTPROD
/* SDOT: acc lane i += the dot of bytes 4i..4i+3 of a and b. Without
   +dotprod in the build's flags, an instruction: the intrinsic could not
   be inlined into the templates, which are compiled for the baseline. */
static SLM_ALWAYS_INLINE int32x4_t sdot_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    __asm__("sdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
#endif
}
#define SDOT_NEON(acc, a, b) sdot_neon(acc, a, b)
#else
#define SDOT_NEON(acc, a, b) (acc) /* never reached: dp is 0 */
#endif

/* sum of the 32 products x*y (x0|x1 against y0|y1) in 4 int32 lanes */
static SLM_ALWAYS_INLINE int32x4_t i8dot_neon(int8x16_t x0, int8x16_t x1, int8x16_t y0, int8x16_t y1, int dp) {
    if (dp) return SDOT_NEON(SDOT_NEON(vdupq_n_s32(0), x0, y0), x1, y1);
    /* |product| <= 128*127: two fit in int16 before the pairwise widening */
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(x0), vget_low_s8(y0)));
    s = vpadalq_s16(s, vmull_s8(vget_high_s8(x0), vget_high_s8(y0)));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(x1), vget_low_s8(y1)));
    return vpadalq_s16(s, vmull_s8(vget_high_s8(x1), vget_high_s8(y1)));
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

static inline void q4_unpack_neon(const uint8_t *q, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(q);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), vdupq_n_s8(8));
    *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), vdupq_n_s8(8));
}

/* ---- The other block types. Q8_0/Q8_1 partners as Q4_0 above (4 float
   lanes per block). The K-quants: per super-block, the sub-block dots
   times their integer scales in 4 int32 lanes, summed to one integer, then
   the reference's float steps: (d_w d_a) * isum - (dmin_w d_a) * imin. ---- */

static inline int32_t hsum_i32_neon(int32x4_t v) {
#if defined(__aarch64__)
    return vaddvq_s32(v);
#else
    const int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(s, s), 0);
#endif
}

/* the 16 products a*b summed into 4 int32 lanes of acc; without SDOT two
   products meet in int16 first (|a*b| <= 128 * 127, b never -128) */
static SLM_ALWAYS_INLINE int32x4_t dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b, int dp) {
    if (dp) return SDOT_NEON(acc, a, b);
    return vpadalq_s16(acc, vmlal_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), vget_high_s8(a), vget_high_s8(b)));
}

static inline int8x16_t ld_s8_neon(const uint8_t *p) { return vld1q_s8((const int8_t *)p); }
static inline int8x16_t nib_lo_neon(uint8x16_t v) { return vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))); }
static inline int8x16_t nib_hi_neon(uint8x16_t v) { return vreinterpretq_s8_u8(vshrq_n_u8(v, 4)); }

/* the 16 bits of the two bytes at p -> 16 bytes, 0xff where set */
static inline uint8x16_t bits16_neon(const uint8_t *p) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    return vtstq_u8(vcombine_u8(vdup_n_u8(p[0]), vdup_n_u8(p[1])), vld1q_u8(bit));
}

/* 16 nibbles -> their IQ4 levels */
static inline int8x16_t iq4_lookup_neon(int8x16_t idx) {
#if defined(__aarch64__)
    return vqtbl1q_s8(vld1q_s8(IQ4_VALUES), vreinterpretq_u8_s8(idx));
#else
    int8x8x2_t t;
    t.val[0] = vld1_s8(IQ4_VALUES), t.val[1] = vld1_s8(IQ4_VALUES + 8);
    return vcombine_s8(vtbl2_s8(t, vget_low_s8(idx)), vtbl2_s8(t, vget_high_s8(idx)));
#endif
}

/* Q5_0 block -> 2 x 16 int8 in [-16, 15]: the nibble, with the top four
   bits set where the fifth bit is clear (nibble - 16) */
static inline void q5_0_unpack_neon(const uint8_t *b, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(b + 6), f0 = vdupq_n_u8(0xf0);
    *lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(15)), vbicq_u8(f0, bits16_neon(b + 2))));
    *hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), vbicq_u8(f0, bits16_neon(b + 4))));
}

/* Q4_1/Q5_1 (bits 5: the fifth bits from qh): the min terms m * s summed
   apart, as the reference */
static SLM_ALWAYS_INLINE float32x4_t q8_1_step_neon(float32x4_t s, float *sm, int8x16_t x0, int8x16_t x1, float xd,
                                                    float xm, const uint8_t *yb, int dp) {
    *sm += xm * h2f_neon(yb + 2);
    const int32x4_t p = i8dot_neon(x0, x1, ld_s8_neon(yb + 4), ld_s8_neon(yb + 20), dp);
    return FMA_NEON(s, vcvtq_f32_s32(p), vdupq_n_f32(xd * h2f_neon(yb)));
}

static SLM_ALWAYS_INLINE void k41_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                       int64_t ldy, int bits, int dp) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    float m0 = 0, m1 = 0, m2 = 0, m3 = 0;
    for (int i = 0; i < n / 32; i++, x += bits == 4 ? 20 : 24, y += 36) {
        const uint8x16_t v = vld1q_u8(x + (bits == 4 ? 4 : 8));
        int8x16_t lo = nib_lo_neon(v), hi = nib_hi_neon(v);
        if (bits == 5) {
            lo = vorrq_s8(lo, vreinterpretq_s8_u8(vandq_u8(bits16_neon(x + 4), vdupq_n_u8(16))));
            hi = vorrq_s8(hi, vreinterpretq_s8_u8(vandq_u8(bits16_neon(x + 6), vdupq_n_u8(16))));
        }
        const float xd = h2f_neon(x), xm = h2f_neon(x + 2);
        s0 = q8_1_step_neon(s0, &m0, lo, hi, xd, xm, y, dp);
        if (nt == 4) {
            s1 = q8_1_step_neon(s1, &m1, lo, hi, xd, xm, y + rb, dp);
            s2 = q8_1_step_neon(s2, &m2, lo, hi, xd, xm, y + 2 * rb, dp);
            s3 = q8_1_step_neon(s3, &m3, lo, hi, xd, xm, y + 3 * rb, dp);
        }
    }
    yo[0] = hsum_neon(s0) + m0;
    if (nt == 4) yo[ldy] = hsum_neon(s1) + m1, yo[2 * ldy] = hsum_neon(s2) + m2, yo[3 * ldy] = hsum_neon(s3) + m3;
}

static SLM_ALWAYS_INLINE void q4_1_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy, int dp) {
    k41_neon(n, x, y, rb, nt, yo, ldy, 4, dp);
}

static SLM_ALWAYS_INLINE void q5_1_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy, int dp) {
    k41_neon(n, x, y, rb, nt, yo, ldy, 5, dp);
}

/* Q8_0, Q4_0, Q5_0 and IQ4_NL against Q8_0: blocks of 32 int8 weights and
   a scale. One accumulator per token, blocks in order: the 1-token and
   4-token entries give the same bits, so results do not depend on how
   tokens are batched. */
static SLM_ALWAYS_INLINE float32x4_t dot4_step_neon(float32x4_t s, int8x16_t x0, int8x16_t x1, float dx,
                                                    const uint8_t *yb, int dp) {
    const int32x4_t p = i8dot_neon(x0, x1, ld_s8_neon(yb + 2), ld_s8_neon(yb + 18), dp);
    return FMA_NEON(s, vcvtq_f32_s32(p), vdupq_n_f32(dx * h2f_neon(yb)));
}

static SLM_ALWAYS_INLINE void b32_neon(int type, int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt,
                                       float *yo, int64_t ldy, int dp) {
    const int bb = type == SLM_TYPE_Q8_0 ? 34 : type == SLM_TYPE_Q5_0 ? 22 : 18;
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / 32; i++, x += bb, y += 34) {
        int8x16_t lo, hi;
        if (type == SLM_TYPE_Q8_0) {
            lo = ld_s8_neon(x + 2), hi = ld_s8_neon(x + 18);
        } else if (type == SLM_TYPE_Q4_0) {
            q4_unpack_neon(x + 2, &lo, &hi);
        } else if (type == SLM_TYPE_Q5_0) {
            q5_0_unpack_neon(x, &lo, &hi);
        } else {
            const uint8x16_t v = vld1q_u8(x + 2);
            lo = iq4_lookup_neon(nib_lo_neon(v)), hi = iq4_lookup_neon(nib_hi_neon(v));
        }
        const float xd = h2f_neon(x);
        s0 = dot4_step_neon(s0, lo, hi, xd, y, dp);
        if (nt == 4) {
            s1 = dot4_step_neon(s1, lo, hi, xd, y + rb, dp);
            s2 = dot4_step_neon(s2, lo, hi, xd, y + 2 * rb, dp);
            s3 = dot4_step_neon(s3, lo, hi, xd, y + 3 * rb, dp);
        }
    }
    yo[0] = hsum_neon(s0);
    if (nt == 4) yo[ldy] = hsum_neon(s1), yo[2 * ldy] = hsum_neon(s2), yo[3 * ldy] = hsum_neon(s3);
}

#define B32_NEON(name, type)                                                                                         \
    static SLM_ALWAYS_INLINE void name##_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt,         \
                                              float *yo, int64_t ldy, int dp) {                                     \
        b32_neon(type, n, x, y, rb, nt, yo, ldy, dp);                                                              \
    }
B32_NEON(q8_0, SLM_TYPE_Q8_0)
B32_NEON(q4_0, SLM_TYPE_Q4_0)
B32_NEON(q5_0, SLM_TYPE_Q5_0)
B32_NEON(iq4_nl, SLM_TYPE_IQ4_NL)
#undef B32_NEON

/* K-quant steps, one token each: 32 weights (q0|q1) against 32 Q8_K
   values, times the sub-block scale(s), added to 4 int32 lanes */
static SLM_ALWAYS_INLINE int32x4_t k_step_neon(int32x4_t acc, int dp, int8x16_t q0, int8x16_t q1, int32_t sc,
                                               const uint8_t *q8) {
    const int32x4_t p = dot16_neon(dot16_neon(vdupq_n_s32(0), q0, ld_s8_neon(q8), dp), q1, ld_s8_neon(q8 + 16), dp);
    return vmlaq_n_s32(acc, p, sc);
}

/* the same for two sub-blocks of 16 (scales sc0, sc1) */
static SLM_ALWAYS_INLINE int32x4_t k_step2_neon(int32x4_t acc, int dp, int8x16_t q0, int8x16_t q1, int32_t sc0,
                                                int32_t sc1, const uint8_t *q8) {
    acc = vmlaq_n_s32(acc, dot16_neon(vdupq_n_s32(0), q0, ld_s8_neon(q8), dp), sc0);
    return vmlaq_n_s32(acc, dot16_neon(vdupq_n_s32(0), q1, ld_s8_neon(q8 + 16), dp), sc1);
}

/* (d_w d_a) * isum, the reference's first float step */
static inline float k_finish_neon(int32x4_t isum, float xd, const uint8_t *yb) {
    return (xd * ld_f32(yb)) * (float)hsum_i32_neon(isum);
}

static inline int16x8_t ld_s16x8_neon(const uint8_t *p) { return vreinterpretq_s16_u8(vld1q_u8(p)); }

/* Q4_K/Q5_K min term: the 8 mins against the 8 sub-block sums of bsums */
static inline int32_t k4_imin_neon(int16x8_t mins, const uint8_t *yb) {
    const int16x8_t b0 = ld_s16x8_neon(yb + 260), b1 = ld_s16x8_neon(yb + 276);
    const int16x8_t q8s = vcombine_s16(vpadd_s16(vget_low_s16(b0), vget_high_s16(b0)), vpadd_s16(vget_low_s16(b1), vget_high_s16(b1)));
    return hsum_i32_neon(vmlal_s16(vmull_s16(vget_low_s16(mins), vget_low_s16(q8s)), vget_high_s16(mins), vget_high_s16(q8s)));
}

/* Q2_K min term: 16 mins against the 16 bsums */
static inline int32_t q2_k_imin_neon(int16x8_t m0, int16x8_t m1, const uint8_t *yb) {
    const int16x8_t b0 = ld_s16x8_neon(yb + 260), b1 = ld_s16x8_neon(yb + 276);
    int32x4_t p = vmull_s16(vget_low_s16(m0), vget_low_s16(b0));
    p = vmlal_s16(p, vget_high_s16(m0), vget_high_s16(b0));
    p = vmlal_s16(p, vget_low_s16(m1), vget_low_s16(b1));
    return hsum_i32_neon(vmlal_s16(p, vget_high_s16(m1), vget_high_s16(b1)));
}


/* the end of a super-block; imin(yb) the token's min sum, or 0 */
#define K_FINISH_NEON(imin)                                                                                          \
    do {                                                                                                             \
        s0 += k_finish_neon(i0, xd, y) - (xm * ld_f32(y)) * (float)imin(y);                                          \
        if (nt == 4) {                                                                                               \
            s1 += k_finish_neon(i1, xd, y + rb) - (xm * ld_f32(y + rb)) * (float)imin(y + rb);                       \
            s2 += k_finish_neon(i2, xd, y + 2 * rb) - (xm * ld_f32(y + 2 * rb)) * (float)imin(y + 2 * rb);           \
            s3 += k_finish_neon(i3, xd, y + 3 * rb) - (xm * ld_f32(y + 3 * rb)) * (float)imin(y + 3 * rb);           \
        }                                                                                                            \
    } while (0)

#define K_RESULT_NEON()                                                                                              \
    do {                                                                                                             \
        yo[0] = s0;                                                                                                  \
        if (nt == 4) yo[ldy] = s1, yo[2 * ldy] = s2, yo[3 * ldy] = s3;                                               \
    } while (0)

#define K_NO_MINS(yb) 0

/* Q4_K and Q5_K (bits 5: the fifth bits are bits 2j, 2j + 1 of qh[l]) */
static SLM_ALWAYS_INLINE void k45_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                       int64_t ldy, int bits, int dp) {
    const size_t bytes = bits == 4 ? 144 : 176;
    const uint8x16_t b4 = vdupq_n_u8(16);
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int i = 0; i < n / QK_K; i++, x += bytes, y += 292) {
        uint32_t u[4];
        k4_scales_u32(x + 4, u);
        const uint8_t *sc = (const uint8_t *)u;
        const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sc + 8)));
        const float xd = h2f_neon(x), xm = h2f_neon(x + 2);
        const uint8_t *qs = x + (bits == 4 ? 16 : 48);
        uint8x16_t h0 = vld1q_u8(x + 16), h1 = vld1q_u8(x + 32);
        int32x4_t i0 = vdupq_n_s32(0), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(4)
        for (int j = 0; j < 4; j++) {
            const uint8x16_t v0 = vld1q_u8(qs + 32 * j), v1 = vld1q_u8(qs + 32 * j + 16);
            int8x16_t a0 = nib_lo_neon(v0), a1 = nib_lo_neon(v1), c0 = nib_hi_neon(v0), c1 = nib_hi_neon(v1);
            if (bits == 5) {
                a0 = vorrq_s8(a0, vreinterpretq_s8_u8(vandq_u8(vshlq_n_u8(h0, 4), b4)));
                a1 = vorrq_s8(a1, vreinterpretq_s8_u8(vandq_u8(vshlq_n_u8(h1, 4), b4)));
                c0 = vorrq_s8(c0, vreinterpretq_s8_u8(vandq_u8(vshlq_n_u8(h0, 3), b4)));
                c1 = vorrq_s8(c1, vreinterpretq_s8_u8(vandq_u8(vshlq_n_u8(h1, 3), b4)));
                h0 = vshrq_n_u8(h0, 2), h1 = vshrq_n_u8(h1, 2);
            }
            const uint8_t *q8 = y + 4 + 64 * j;
            K_TOKENS(k_step_neon, dp, a0, a1, sc[2 * j]);
            q8 += 32;
            K_TOKENS(k_step_neon, dp, c0, c1, sc[2 * j + 1]);
        }
#define IMIN(yb) k4_imin_neon(mins, yb)
        K_FINISH_NEON(IMIN);
#undef IMIN
    }
    K_RESULT_NEON();
}

static SLM_ALWAYS_INLINE void q4_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy, int dp) {
    k45_neon(n, x, y, rb, nt, yo, ldy, 4, dp);
}

static SLM_ALWAYS_INLINE void q5_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy, int dp) {
    k45_neon(n, x, y, rb, nt, yo, ldy, 5, dp);
}

/* Q6_K, Q2_K, Q3_K: value 128h + 32k + l, sub-blocks of 16 */
static SLM_ALWAYS_INLINE void q6_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy, int dp) {
    const uint8x16_t m30 = vdupq_n_u8(0x30);
    const int8x16_t c32 = vdupq_n_s8(32);
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const float xm = 0;
    for (int i = 0; i < n / QK_K; i++, x += 210, y += 292) {
        const int8_t *sc = (const int8_t *)(x + 192);
        const float xd = h2f_neon(x + 208);
        int32x4_t i0 = vdupq_n_s32(0), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const uint8x16_t qh0 = vld1q_u8(x + 128 + 32 * h), qh1 = vld1q_u8(x + 144 + 32 * h);
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                const uint8_t *ql = x + 64 * h + 32 * (k & 1);
                const uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16);
                const uint8x16_t lo0 = k < 2 ? vandq_u8(l0, vdupq_n_u8(15)) : vshrq_n_u8(l0, 4);
                const uint8x16_t lo1 = k < 2 ? vandq_u8(l1, vdupq_n_u8(15)) : vshrq_n_u8(l1, 4);
                const uint8x16_t hi0 = k == 0 ? vshlq_n_u8(qh0, 4) : k == 1 ? vshlq_n_u8(qh0, 2) : k == 2 ? qh0 : vshrq_n_u8(qh0, 2);
                const uint8x16_t hi1 = k == 0 ? vshlq_n_u8(qh1, 4) : k == 1 ? vshlq_n_u8(qh1, 2) : k == 2 ? qh1 : vshrq_n_u8(qh1, 2);
                const int8x16_t q0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo0, vandq_u8(hi0, m30))), c32);
                const int8x16_t q1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo1, vandq_u8(hi1, m30))), c32);
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_step2_neon, dp, q0, q1, sc[8 * h + 2 * k], sc[8 * h + 2 * k + 1]);
            }
        }
        K_FINISH_NEON(K_NO_MINS);
    }
    K_RESULT_NEON();
}

static SLM_ALWAYS_INLINE void q2_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy, int dp) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int i = 0; i < n / QK_K; i++, x += 84, y += 292) {
        const uint8x16_t mn = vshrq_n_u8(vld1q_u8(x), 4);
        const int16x8_t m0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn))), m1 = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(mn)));
        const float xd = h2f_neon(x + 80), xm = h2f_neon(x + 82);
        int32x4_t i0 = vdupq_n_s32(0), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const uint8x16_t b0 = vld1q_u8(x + 16 + 32 * h), b1 = vld1q_u8(x + 32 + 32 * h);
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                const int8x16_t q0 = vreinterpretq_s8_u8(vandq_u8(k == 0 ? b0 : k == 1 ? vshrq_n_u8(b0, 2) : k == 2 ? vshrq_n_u8(b0, 4) : vshrq_n_u8(b0, 6), m3));
                const int8x16_t q1 = vreinterpretq_s8_u8(vandq_u8(k == 0 ? b1 : k == 1 ? vshrq_n_u8(b1, 2) : k == 2 ? vshrq_n_u8(b1, 4) : vshrq_n_u8(b1, 6), m3));
                const int s = 8 * h + 2 * k;
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_step2_neon, dp, q0, q1, x[s] & 15, x[s + 1] & 15);
            }
        }
#define IMIN(yb) q2_k_imin_neon(m0, m1, yb)
        K_FINISH_NEON(IMIN);
#undef IMIN
    }
    K_RESULT_NEON();
}

static SLM_ALWAYS_INLINE void q3_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy, int dp) {
    const uint8x16_t m3 = vdupq_n_u8(3), c4 = vdupq_n_u8(4);
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const float xm = 0;
    for (int i = 0; i < n / QK_K; i++, x += 110, y += 292) {
        uint32_t u[4];
        q3_k_scales_u32(x + 96, u);
        const uint8_t *sc = (const uint8_t *)u;
        const uint8x16_t hm0 = vld1q_u8(x), hm1 = vld1q_u8(x + 16);
        const float xd = h2f_neon(x + 108);
        int32x4_t i0 = vdupq_n_s32(0), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++) {
            const uint8x16_t b0 = vld1q_u8(x + 32 + 32 * h), b1 = vld1q_u8(x + 48 + 32 * h);
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++) {
                /* the 2-bit field, minus 4 where bit 4h + k of hmask is clear */
                const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * h + k)));
                const uint8x16_t l0 = vandq_u8(k == 0 ? b0 : k == 1 ? vshrq_n_u8(b0, 2) : k == 2 ? vshrq_n_u8(b0, 4) : vshrq_n_u8(b0, 6), m3);
                const uint8x16_t l1 = vandq_u8(k == 0 ? b1 : k == 1 ? vshrq_n_u8(b1, 2) : k == 2 ? vshrq_n_u8(b1, 4) : vshrq_n_u8(b1, 6), m3);
                const int8x16_t q0 = vreinterpretq_s8_u8(vsubq_u8(l0, vbicq_u8(c4, vtstq_u8(hm0, bit))));
                const int8x16_t q1 = vreinterpretq_s8_u8(vsubq_u8(l1, vbicq_u8(c4, vtstq_u8(hm1, bit))));
                const int s = 8 * h + 2 * k;
                const uint8_t *q8 = y + 4 + 128 * h + 32 * k;
                K_TOKENS(k_step2_neon, dp, q0, q1, sc[s] - 32, sc[s + 1] - 32);
            }
        }
        K_FINISH_NEON(K_NO_MINS);
    }
    K_RESULT_NEON();
}

static SLM_ALWAYS_INLINE void iq4_xs_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                          int64_t ldy, int dp) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const float xm = 0;
    for (int i = 0; i < n / QK_K; i++, x += 136, y += 292) {
        const float xd = h2f_neon(x);
        int32x4_t i0 = vdupq_n_s32(0), i1 = i0, i2 = i0, i3 = i0;
        SLM_UNROLL(8)
        for (int s = 0; s < 8; s++) {
            const uint8x16_t v = vld1q_u8(x + 8 + 16 * s);
            const int8x16_t q0 = iq4_lookup_neon(nib_lo_neon(v)), q1 = iq4_lookup_neon(nib_hi_neon(v));
            const uint8_t *q8 = y + 4 + 32 * s;
            K_TOKENS(k_step_neon, dp, q0, q1, iq4_xs_scale(x, s));
        }
        K_FINISH_NEON(K_NO_MINS);
    }
    K_RESULT_NEON();
}
#undef K_FINISH_NEON
#undef K_RESULT_NEON
#undef K_NO_MINS

/* K_ENTRIES for the templates name_neon(..., dp): the baseline entries
   dot_name_neon, dot4_name_neon and the SDOT ones dot_name_dotprod, ... */
#define K_ENTRIES_DP(name, isa, dp, target)                                                                          \
    static target float dot_##name##_##isa(int n, const void *w, const void *a) {                                   \
        float r;                                                                                                     \
        name##_neon(n, (const uint8_t *)w, (const uint8_t *)a, 0, 1, &r, 0, dp);                                    \
        return r;                                                                                                    \
    }                                                                                                                \
    static target void dot4_##name##_##isa(int n, const void *w, const void *a, size_t a_rb, float *yo,             \
                                           int64_t ldy) {                                                            \
        name##_neon(n, (const uint8_t *)w, (const uint8_t *)a, a_rb, 4, yo, ldy, dp);                               \
    }
#ifdef SLM_NEON_DOTPROD
#define K_ENTRIES_NEON(name) K_ENTRIES_DP(name, neon, 0, ) K_ENTRIES_DP(name, dotprod, 1, SLM_TARGET_DOTPROD)
#else
#define K_ENTRIES_NEON(name) K_ENTRIES_DP(name, neon, 0, )
#endif
K_ENTRIES_NEON(q8_0)
K_ENTRIES_NEON(q4_0)
K_ENTRIES_NEON(q5_0)
K_ENTRIES_NEON(q4_1)
K_ENTRIES_NEON(q5_1)
K_ENTRIES_NEON(iq4_nl)
K_ENTRIES_NEON(q2_k)
K_ENTRIES_NEON(q3_k)
K_ENTRIES_NEON(q4_k)
K_ENTRIES_NEON(q5_k)
K_ENTRIES_NEON(q6_k)
K_ENTRIES_NEON(iq4_xs)
#undef K_ENTRIES_NEON
#undef K_ENTRIES_DP

/* Q8_1 and Q8_K activations: the same bytes as the references, 4 lanes at
   a time (see q8_1_from_float_avx2). ARMv7 NEON flushes subnormal floats
   to zero, so blocks whose largest magnitude is below 1e-30 (where the
   inverse scale could reach them), zero or not finite are left to the
   reference. */
static inline float amax_neon(const float *src, int n) {
    float32x4_t m = vdupq_n_f32(0);
    for (int j = 0; j < n; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(src + j)));
    return hmax_neon(m);
}

/* 16 floats times mul, rounded, stored as 16 int8; returns their sum */
static inline int32_t q8_round16_neon(const float *src, float mul, uint8_t *dst) {
    const int32x4_t a = round_even_neon(vmulq_n_f32(vld1q_f32(src), mul));
    const int32x4_t b = round_even_neon(vmulq_n_f32(vld1q_f32(src + 4), mul));
    const int32x4_t c = round_even_neon(vmulq_n_f32(vld1q_f32(src + 8), mul));
    const int32x4_t d = round_even_neon(vmulq_n_f32(vld1q_f32(src + 12), mul));
    const int16x8_t h0 = vcombine_s16(vmovn_s32(a), vmovn_s32(b)), h1 = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
    vst1q_s8((int8_t *)dst, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
    return hsum_i32_neon(vaddq_s32(vaddq_s32(a, b), vaddq_s32(c, d)));
}

static void q8_1_from_float_neon(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / 32; i++, b += 36, src += 32) {
        const float amax = amax_neon(src, 32);
        if (!(amax > 1e-30f && amax <= FLT_MAX)) {
            q8_1_from_float_ref(src, b, 32);
            continue;
        }
        const float d = amax / 127.0f, id = 127.0f / amax;
        const int32_t sum = q8_round16_neon(src, id, b + 4) + q8_round16_neon(src + 16, id, b + 20);
        st_u16(b, f32_to_fp16(d));
        st_u16(b + 2, f32_to_fp16(d * (float)sum));
    }
}

static void q8_k_from_float_neon(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK_K; i++, b += 292, src += QK_K) {
        const float amax = amax_neon(src, QK_K);
        if (!(amax > 1e-30f && amax <= FLT_MAX)) {
            q8_k_from_float_ref(src, b, QK_K);
            continue;
        }
        int j = 0; /* the first value of largest magnitude gives the sign */
        while (fabsf(src[j]) != amax) j++;
        const float iscale = -127.0f / src[j];
        for (int g = 0; g < 16; g++) st_u16(b + 260 + 2 * g, (uint16_t)(int16_t)q8_round16_neon(src + 16 * g, iscale, b + 4 + 16 * g));
        st_f32(b, 1.0f / iscale);
    }
}


#ifdef SLM_NEON_DOTPROD
/* x8 kernels (layouts in section 5) with SDOT: each 16-byte half of an x8
   step holds 4 rows x 4 columns, which is what SDOT's 4 lanes take against
   one broadcast group of 4 activations; lanes are rows, as on AVX2, and the
   per-block float steps are the AVX2 kernels' (same results). Nibbles and
   5-bit values are unsigned, so they go in as non-negative int8 and the
   offset comes back as 8 (16) times the block's activation sum. */
/* chunk c of a Q4_0x8/Q5_0x8 block w: the values of rows 0-3 (x0) and 4-7
   (x1), columns 8c..8c+3 (lo) and 8c+4..8c+7 (hi), 4 bytes a row */
static SLM_ALWAYS_INLINE void x8_chunk_neon(int type, const uint8_t *w, int c, uint8x16_t *lo0, uint8x16_t *lo1,
                                            uint8x16_t *hi0, uint8x16_t *hi1) {
    const int nib = type == SLM_TYPE_Q5_0 ? 48 : 16;
    const uint8x16_t m4 = vdupq_n_u8(15), b4 = vdupq_n_u8(16);
    const uint8x16_t v0 = vld1q_u8(w + nib + 32 * c), v1 = vld1q_u8(w + nib + 32 * c + 16);
    *lo0 = vandq_u8(v0, m4), *lo1 = vandq_u8(v1, m4), *hi0 = vshrq_n_u8(v0, 4), *hi1 = vshrq_n_u8(v1, 4);
    if (type == SLM_TYPE_Q5_0) { /* bit c (low half) or 4 + c (high half) to bit 4 */
        const uint8x16_t h0 = vld1q_u8(w + 16), h1 = vld1q_u8(w + 32);
        const int8x16_t up = vdupq_n_s8((int8_t)(4 - c)), down = vdupq_n_s8((int8_t)-c);
        *lo0 = vorrq_u8(*lo0, vandq_u8(vshlq_u8(h0, up), b4)), *lo1 = vorrq_u8(*lo1, vandq_u8(vshlq_u8(h1, up), b4));
        *hi0 = vorrq_u8(*hi0, vandq_u8(vshlq_u8(h0, down), b4)), *hi1 = vorrq_u8(*hi1, vandq_u8(vshlq_u8(h1, down), b4));
    }
}

/* the float step of an x8 block for one token: the block's integer sums
   s0 (rows 0-3) and s1 (rows 4-7) less off times the activation sum, times
   the row scales and the activation scale, added to acc */
static SLM_ALWAYS_INLINE void x8_finish_neon(float32x4_t *acc, int32x4_t s0, int32x4_t s1, int32_t off,
                                             const uint8_t *w, const uint8_t *at) {
    const int32x4_t corr = vdupq_n_s32(off * (int32_t)ld_u32(at + 36));
    const float32x4_t da = vdupq_n_f32(ld_f32(at + 32));
    acc[0] = vfmaq_f32(acc[0], vcvtq_f32_s32(vsubq_s32(s0, corr)), vmulq_f32(ld_f16_neon(w), da));
    acc[1] = vfmaq_f32(acc[1], vcvtq_f32_s32(vsubq_s32(s1, corr)), vmulq_f32(ld_f16_neon(w + 8), da));
}

static SLM_ALWAYS_INLINE void gemm_x8_neon(int type, int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt,
                                           float *y, int64_t ldy) {
    const int bb = x8_block_bytes(type);
    const int32_t off = type == SLM_TYPE_Q4_0 ? 8 : type == SLM_TYPE_Q5_0 ? 16 : 0;
    float32x4_t acc[4][2];
    for (int t = 0; t < 4; t++) acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    for (int b = 0; b < n / 32; b++, w += bb, a += 40) {
        int32x4_t s[4][2];
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) s[t][0] = s[t][1] = vdupq_n_s32(0);
        if (type == SLM_TYPE_Q8_0) {
            SLM_UNROLL(8)
            for (int st = 0; st < 8; st++) {
                const int8x16_t v0 = vld1q_s8((const int8_t *)w + 16 + 32 * st), v1 = vld1q_s8((const int8_t *)w + 32 + 32 * st);
                SLM_UNROLL(4)
                for (int t = 0; t < nt; t++) {
                    const int8x16_t ab = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(a + (size_t)t * a_rb + 4 * st)));
                    s[t][0] = SDOT_NEON(s[t][0], v0, ab), s[t][1] = SDOT_NEON(s[t][1], v1, ab);
                }
            }
        } else {
            SLM_UNROLL(4)
            for (int c = 0; c < 4; c++) {
                uint8x16_t lo0, lo1, hi0, hi1;
                x8_chunk_neon(type, w, c, &lo0, &lo1, &hi0, &hi1);
                SLM_UNROLL(4)
                for (int t = 0; t < nt; t++) {
                    const uint8_t *at = a + (size_t)t * a_rb + 8 * c;
                    const int8x16_t al = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at)));
                    const int8x16_t ah = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at + 4)));
                    s[t][0] = SDOT_NEON(SDOT_NEON(s[t][0], vreinterpretq_s8_u8(lo0), al), vreinterpretq_s8_u8(hi0), ah);
                    s[t][1] = SDOT_NEON(SDOT_NEON(s[t][1], vreinterpretq_s8_u8(lo1), al), vreinterpretq_s8_u8(hi1), ah);
                }
            }
        }
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) x8_finish_neon(acc[t], s[t][0], s[t][1], off, w, a + (size_t)t * a_rb);
    }
    for (int t = 0; t < nt; t++) vst1q_f32(y + t * ldy, acc[t][0]), vst1q_f32(y + t * ldy + 4, acc[t][1]);
}

/* constant token counts, so the per-token accumulators stay in registers */
#define X8_NEON_ENTRY(name, type)                                                                                    \
    static SLM_TARGET_DOTPROD void name(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {             \
        const uint8_t *pw = (const uint8_t *)w, *pa = (const uint8_t *)a;                                          \
        if (nt == 1) gemm_x8_neon(type, n, pw, pa, a_rb, 1, y, ldy);                                               \
        else if (nt == 4) gemm_x8_neon(type, n, pw, pa, a_rb, 4, y, ldy);                                          \
        else gemm_x8_neon(type, n, pw, pa, a_rb, nt, y, ldy);                                                      \
    }
X8_NEON_ENTRY(gemm_q4_0x8_dotprod, SLM_TYPE_Q4_0)
X8_NEON_ENTRY(gemm_q5_0x8_dotprod, SLM_TYPE_Q5_0)
X8_NEON_ENTRY(gemm_q8_0x8_dotprod, SLM_TYPE_Q8_0)
#undef X8_NEON_ENTRY

/* K-quant x8 (layouts in section 5) with SDOT, gemm_kx8_ref's bits: lanes
   are rows (x = 0: rows 0-3, x = 1: rows 4-7). Q4_K (Q5_K): the nibbles (5-bit values) go in as
   non-negative int8, each sub-block's sum is multiplied by its scale (one
   table lookup of the decoded scales), the mins come from Q8_K's 16-sums.
   Q6_K: the quants go in as signed q - 32, which is the same integer as
   the reference's isum - 32 osum. */
static SLM_ALWAYS_INLINE void gemm_kx8_neon(int type, int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt,
                                            float *y, int64_t ldy) {
    const uint8x16_t m4 = vdupq_n_u8(15), m30 = vdupq_n_u8(0x30);
    float32x4_t acc[4][2];
    for (int t = 0; t < 4; t++) acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    for (int b = 0; b < n / QK_K; b++, a += 292) {
        int32x4_t is[4][2];
        for (int t = 0; t < 4; t++) is[t][0] = is[t][1] = vdupq_n_s32(0);
        if (type != SLM_TYPE_Q6_K) { /* Q4_K, Q5_K (q5: the fifth bits as in Q5_0x8) */
            const int q5 = type == SLM_TYPE_Q5_K, sbb = q5 ? 160 : 128;
            uint8x16_t sc[2][2], mn[2][2]; /* [sub-blocks 0-3 | 4-7][rows 0-3 | 4-7] */
            for (int x = 0; x < 2; x++) {
                const uint8x16_t l0 = vld1q_u8(w + 32 + 16 * x), l1 = vld1q_u8(w + 64 + 16 * x), h = vld1q_u8(w + 96 + 16 * x);
                sc[0][x] = vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(h, 4), m30));
                sc[1][x] = vorrq_u8(vandq_u8(l1, m4), vandq_u8(h, m30));
                mn[0][x] = vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(vshlq_n_u8(h, 2), m30));
                mn[1][x] = vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(h, 2), m30));
            }
            int32x4_t ms[4][2];
            for (int t = 0; t < 4; t++) ms[t][0] = ms[t][1] = vdupq_n_s32(0);
            SLM_UNROLL(8)
            for (int s = 0; s < 8; s++) {
                /* lane r: byte 4 (s % 4) + r, zero-extended (out-of-range indices give 0) */
                const uint8x16_t pick = vreinterpretq_u8_u32(vaddq_u32(vdupq_n_u32(0xffffff00u | (uint32_t)(4 * (s % 4))),
                                                                       vcombine_u32(vcreate_u32(0x100000000ull), vcreate_u32(0x300000002ull))));
                int32x4_t sc32[2], mn32[2];
                for (int x = 0; x < 2; x++) {
                    sc32[x] = vreinterpretq_s32_u8(vqtbl1q_u8(sc[s / 4][x], pick));
                    mn32[x] = vreinterpretq_s32_u8(vqtbl1q_u8(mn[s / 4][x], pick));
                }
                int32x4_t d[4][2];
                for (int t = 0; t < 4; t++) d[t][0] = d[t][1] = vdupq_n_s32(0);
                const uint8_t *ws = w + 128 + sbb * s, *wn = ws + (q5 ? 32 : 0);
                const uint8x16_t h0 = q5 ? vld1q_u8(ws) : vdupq_n_u8(0), h1 = q5 ? vld1q_u8(ws + 16) : vdupq_n_u8(0);
                SLM_UNROLL(4)
                for (int c = 0; c < 4; c++) {
                    const uint8x16_t v0 = vld1q_u8(wn + 32 * c), v1 = vld1q_u8(wn + 16 + 32 * c);
                    uint8x16_t l0 = vandq_u8(v0, m4), u0 = vshrq_n_u8(v0, 4), l1 = vandq_u8(v1, m4), u1 = vshrq_n_u8(v1, 4);
                    if (q5) { /* bit c (low nibbles) or 4 + c (high) to bit 4 */
                        const uint8x16_t b4 = vdupq_n_u8(16);
                        const int8x16_t up = vdupq_n_s8((int8_t)(4 - c)), down = vdupq_n_s8((int8_t)-c);
                        l0 = vorrq_u8(l0, vandq_u8(vshlq_u8(h0, up), b4)), l1 = vorrq_u8(l1, vandq_u8(vshlq_u8(h1, up), b4));
                        u0 = vorrq_u8(u0, vandq_u8(vshlq_u8(h0, down), b4)), u1 = vorrq_u8(u1, vandq_u8(vshlq_u8(h1, down), b4));
                    }
                    const int8x16_t lo0 = vreinterpretq_s8_u8(l0), hi0 = vreinterpretq_s8_u8(u0);
                    const int8x16_t lo1 = vreinterpretq_s8_u8(l1), hi1 = vreinterpretq_s8_u8(u1);
                    SLM_UNROLL(4)
                    for (int t = 0; t < nt; t++) {
                        const uint8_t *at = a + (size_t)t * a_rb + 4 + 32 * s + 8 * c;
                        const int8x16_t al = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at)));
                        const int8x16_t ah = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at + 4)));
                        d[t][0] = SDOT_NEON(SDOT_NEON(d[t][0], lo0, al), hi0, ah);
                        d[t][1] = SDOT_NEON(SDOT_NEON(d[t][1], lo1, al), hi1, ah);
                    }
                }
                SLM_UNROLL(4)
                for (int t = 0; t < nt; t++) {
                    const uint8_t *at = a + (size_t)t * a_rb;
                    const int32_t bs = (int16_t)ld_u16(at + 260 + 4 * s) + (int16_t)ld_u16(at + 262 + 4 * s);
                    for (int x = 0; x < 2; x++) {
                        is[t][x] = vmlaq_s32(is[t][x], d[t][x], sc32[x]);
                        ms[t][x] = vmlaq_n_s32(ms[t][x], mn32[x], bs);
                    }
                }
            }
            SLM_UNROLL(4)
            for (int t = 0; t < nt; t++) {
                const float32x4_t da = vdupq_n_f32(ld_f32(a + (size_t)t * a_rb));
                for (int x = 0; x < 2; x++) {
                    acc[t][x] = vfmaq_f32(acc[t][x], vcvtq_f32_s32(is[t][x]), vmulq_f32(ld_f16_neon(w + 8 * x), da));
                    acc[t][x] = vfmsq_f32(acc[t][x], vcvtq_f32_s32(ms[t][x]), vmulq_f32(ld_f16_neon(w + 16 + 8 * x), da));
                }
            }
            w += q5 ? 1408 : 1152;
        } else { /* Q6_K */
            const uint8x16_t b32 = vdupq_n_u8(32);
            SLM_UNROLL(8)
            for (int p = 0; p < 8; p++) {
                const uint8_t *wp = w + 144 + 192 * p;
                int32x4_t sc32[2][2]; /* [k][x]: row lanes of sub-block 2p + k */
                for (int x = 0; x < 2; x++) {
                    const int32x4_t pr = vreinterpretq_s32_s16(vmovl_s8(vld1_s8((const int8_t *)w + 16 + 16 * p + 8 * x)));
                    sc32[0][x] = vshrq_n_s32(vshlq_n_s32(pr, 16), 16), sc32[1][x] = vshrq_n_s32(pr, 16);
                }
                for (int k = 0; k < 2; k++) {
                    int8x16_t q[2][4];
                    for (int x = 0; x < 2; x++) {
                        const uint8x16_t h = vld1q_u8(wp + 128 + 32 * k + 16 * x);
                        const uint8x16_t v0 = vld1q_u8(wp + 64 * k + 16 * x), v1 = vld1q_u8(wp + 64 * k + 32 + 16 * x);
                        q[x][0] = vreinterpretq_s8_u8(vsubq_u8(vorrq_u8(vandq_u8(v0, m4), vandq_u8(vshlq_n_u8(h, 4), m30)), b32));
                        q[x][1] = vreinterpretq_s8_u8(vsubq_u8(vorrq_u8(vshrq_n_u8(v0, 4), vandq_u8(vshlq_n_u8(h, 2), m30)), b32));
                        q[x][2] = vreinterpretq_s8_u8(vsubq_u8(vorrq_u8(vandq_u8(v1, m4), vandq_u8(h, m30)), b32));
                        q[x][3] = vreinterpretq_s8_u8(vsubq_u8(vorrq_u8(vshrq_n_u8(v1, 4), vandq_u8(vshrq_n_u8(h, 2), m30)), b32));
                    }
                    SLM_UNROLL(4)
                    for (int t = 0; t < nt; t++) {
                        const uint8_t *at = a + (size_t)t * a_rb + 4 + 32 * p + 16 * k;
                        const int8x16_t a0 = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at)));
                        const int8x16_t a1 = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at + 4)));
                        const int8x16_t a2 = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at + 8)));
                        const int8x16_t a3 = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at + 12)));
                        for (int x = 0; x < 2; x++) {
                            int32x4_t d = SDOT_NEON(SDOT_NEON(vdupq_n_s32(0), q[x][0], a0), q[x][1], a1);
                            d = SDOT_NEON(SDOT_NEON(d, q[x][2], a2), q[x][3], a3);
                            is[t][x] = vmlaq_s32(is[t][x], d, sc32[k][x]);
                        }
                    }
                }
            }
            SLM_UNROLL(4)
            for (int t = 0; t < nt; t++) {
                const float32x4_t da = vdupq_n_f32(ld_f32(a + (size_t)t * a_rb));
                for (int x = 0; x < 2; x++)
                    acc[t][x] = vfmaq_f32(acc[t][x], vcvtq_f32_s32(is[t][x]), vmulq_f32(ld_f16_neon(w + 8 * x), da));
            }
            w += 1680;
        }
    }
    for (int t = 0; t < nt; t++) vst1q_f32(y + t * ldy, acc[t][0]), vst1q_f32(y + t * ldy + 4, acc[t][1]);
}

#define KX8_NEON_ENTRY(name, type)                                                                                   \
    static SLM_TARGET_DOTPROD void name(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {             \
        const uint8_t *pw = (const uint8_t *)w, *pa = (const uint8_t *)a;                                          \
        if (nt == 1) gemm_kx8_neon(type, n, pw, pa, a_rb, 1, y, ldy);                                              \
        else if (nt == 4) gemm_kx8_neon(type, n, pw, pa, a_rb, 4, y, ldy);                                         \
        else gemm_kx8_neon(type, n, pw, pa, a_rb, nt, y, ldy);                                                     \
    }
KX8_NEON_ENTRY(gemm_q4_kx8_dotprod, SLM_TYPE_Q4_K)
KX8_NEON_ENTRY(gemm_q5_kx8_dotprod, SLM_TYPE_Q5_K)
KX8_NEON_ENTRY(gemm_q6_kx8_dotprod, SLM_TYPE_Q6_K)
#undef KX8_NEON_ENTRY
#endif /* SLM_NEON_DOTPROD */

#ifdef SLM_NEON_I8MM
/* SMMLA: acc (2x2, row-major) += a (2 rows of 8 bytes) times b (2 columns
   of 8 bytes): lanes r0.c0, r0.c1, r1.c0, r1.c1. An instruction, as
   sdot_neon (GCC 12's vmmlaq_s32 wants its own arch string, not ours). */
static SLM_ALWAYS_INLINE SLM_TARGET_I8MM int32x4_t smmla_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
    __asm__("smmla %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
}

/* x8 kernels with SMMLA, for 2 to 4 tokens (prompts): a pair of tokens
   against a pair of rows, 8 columns, is one SMMLA, where SDOT needs 4.
   The x8 layouts hold 4 columns of a row together, so a zip of two 4-byte
   lanes makes a row pair's 8 columns; a token pair's 8 activations are 2 x
   8 bytes. The block's integer sums equal the SDOT kernel's, and the float
   steps are the same, so the results are the same bits. Token 2p + 1 is
   token 2p again when nt is odd (computed, not stored). */
static SLM_ALWAYS_INLINE SLM_TARGET_I8MM void gemm_x8_i8mm(int type, int n, const uint8_t *w, const uint8_t *a,
                                                           size_t a_rb, int nt, float *y, int64_t ldy) {
    const int bb = x8_block_bytes(type), np = (nt + 1) / 2;
    const int32_t off = type == SLM_TYPE_Q4_0 ? 8 : type == SLM_TYPE_Q5_0 ? 16 : 0;
    const uint8_t *at[4]; /* token t's activations, t < 2 np */
    float32x4_t acc[4][2];
    for (int t = 0; t < 4; t++) at[t] = a + (size_t)SLM_MIN(t, nt - 1) * a_rb, acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    for (int b = 0; b < n / 32; b++, w += bb) {
        int32x4_t s[2][4]; /* token pair p, row pair j: r2j.t2p, r2j.t2p+1, r2j+1.t2p, r2j+1.t2p+1 */
        SLM_UNROLL(2)
        for (int p = 0; p < np; p++) s[p][0] = s[p][1] = s[p][2] = s[p][3] = vdupq_n_s32(0);
        SLM_UNROLL(4)
        for (int c = 0; c < 4; c++) { /* columns 8c..8c+7 */
            int8x16_t x0, x1, x2, x3; /* rows 0-3 (x0: columns 8c..8c+3, x1: 8c+4..), rows 4-7 (x2, x3) */
            if (type == SLM_TYPE_Q8_0) {
                x0 = vld1q_s8((const int8_t *)w + 16 + 64 * c), x2 = vld1q_s8((const int8_t *)w + 32 + 64 * c);
                x1 = vld1q_s8((const int8_t *)w + 48 + 64 * c), x3 = vld1q_s8((const int8_t *)w + 64 + 64 * c);
            } else {
                uint8x16_t lo0, lo1, hi0, hi1;
                x8_chunk_neon(type, w, c, &lo0, &lo1, &hi0, &hi1);
                x0 = vreinterpretq_s8_u8(lo0), x1 = vreinterpretq_s8_u8(hi0);
                x2 = vreinterpretq_s8_u8(lo1), x3 = vreinterpretq_s8_u8(hi1);
            }
            const int32x4_t i0 = vreinterpretq_s32_s8(x0), i1 = vreinterpretq_s32_s8(x1);
            const int32x4_t i2 = vreinterpretq_s32_s8(x2), i3 = vreinterpretq_s32_s8(x3);
            const int8x16_t r01 = vreinterpretq_s8_s32(vzip1q_s32(i0, i1)), r23 = vreinterpretq_s8_s32(vzip2q_s32(i0, i1));
            const int8x16_t r45 = vreinterpretq_s8_s32(vzip1q_s32(i2, i3)), r67 = vreinterpretq_s8_s32(vzip2q_s32(i2, i3));
            SLM_UNROLL(2)
            for (int p = 0; p < np; p++) {
                const int8x16_t ab = vcombine_s8(vld1_s8((const int8_t *)at[2 * p] + 8 * c),
                                                 vld1_s8((const int8_t *)at[2 * p + 1] + 8 * c));
                s[p][0] = smmla_neon(s[p][0], r01, ab), s[p][1] = smmla_neon(s[p][1], r23, ab);
                s[p][2] = smmla_neon(s[p][2], r45, ab), s[p][3] = smmla_neon(s[p][3], r67, ab);
            }
        }
        SLM_UNROLL(2)
        for (int p = 0; p < np; p++) { /* even lanes: token 2p, odd: 2p + 1 */
            x8_finish_neon(acc[2 * p], vuzp1q_s32(s[p][0], s[p][1]), vuzp1q_s32(s[p][2], s[p][3]), off, w, at[2 * p]);
            x8_finish_neon(acc[2 * p + 1], vuzp2q_s32(s[p][0], s[p][1]), vuzp2q_s32(s[p][2], s[p][3]), off, w,
                           at[2 * p + 1]);
        }
        for (int t = 0; t < 4; t++) at[t] += 40;
    }
    for (int t = 0; t < nt; t++) vst1q_f32(y + t * ldy, acc[t][0]), vst1q_f32(y + t * ldy + 4, acc[t][1]);
}

/* one token: the SDOT kernel (SMMLA would compute a second, unused one) */
#define X8_I8MM_ENTRY(name, type, one)                                                                               \
    static SLM_TARGET_I8MM void name(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {             \
        const uint8_t *pw = (const uint8_t *)w, *pa = (const uint8_t *)a;                                          \
        if (nt == 1) one(n, w, a, a_rb, 1, y, ldy);                                                                 \
        else if (nt == 4) gemm_x8_i8mm(type, n, pw, pa, a_rb, 4, y, ldy);                                          \
        else if (nt == 2) gemm_x8_i8mm(type, n, pw, pa, a_rb, 2, y, ldy);                                          \
        else gemm_x8_i8mm(type, n, pw, pa, a_rb, nt, y, ldy);                                                      \
    }
X8_I8MM_ENTRY(gemm_q4_0x8_i8mm, SLM_TYPE_Q4_0, gemm_q4_0x8_dotprod)
X8_I8MM_ENTRY(gemm_q5_0x8_i8mm, SLM_TYPE_Q5_0, gemm_q5_0x8_dotprod)
X8_I8MM_ENTRY(gemm_q8_0x8_i8mm, SLM_TYPE_Q8_0, gemm_q8_0x8_dotprod)
#undef X8_I8MM_ENTRY
#endif /* SLM_NEON_I8MM */

#endif /* SLM_NEON */

/* -------------------------------------------------------------------------- */
/* E5. RISC-V vector extension 1.0 (ratified __riscv_ intrinsics)             */
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

/* ---- The other block types: integer sums per block (or per super-block:
   products widened to 16 bits, times the sub-block scale widened into 32),
   then the reference's float steps. Fixed vector lengths of 16 or 32
   elements, which every VLEN >= 128 holds (e8 at LMUL 1 or 2). ---- */

static inline int32_t rvv_isum16(vint16m2_t p) {
    return __riscv_vmv_x_s_i32m1_i32(__riscv_vwredsum_vs_i16m2_i32m1(p, __riscv_vmv_v_x_i32m1(0, 1), 16));
}

/* a 32-value block as two halves of 16 (lo|hi) against 32 int8 at q8 */
static inline int32_t rvv_dot32(vint8m1_t lo, vint8m1_t hi, const uint8_t *q8) {
    vint16m2_t p = __riscv_vwmul_vv_i16m2(lo, __riscv_vle8_v_i8m1((const int8_t *)q8, 16), 16);
    p = __riscv_vwmacc_vv_i16m2(p, hi, __riscv_vle8_v_i8m1((const int8_t *)(q8 + 16), 16), 16);
    return rvv_isum16(p);
}

static inline vint8m1_t rvv_nib_lo(vuint8m1_t q) { return __riscv_vreinterpret_v_u8m1_i8m1(__riscv_vand_vx_u8m1(q, 15, 16)); }
static inline vint8m1_t rvv_nib_hi(vuint8m1_t q) { return __riscv_vreinterpret_v_u8m1_i8m1(__riscv_vsrl_vx_u8m1(q, 4, 16)); }

/* 16 nibbles -> their IQ4 levels */
static inline vint8m1_t rvv_iq4(vint8m1_t idx) {
    return __riscv_vrgather_vv_i8m1(__riscv_vle8_v_i8m1(IQ4_VALUES, 16), __riscv_vreinterpret_v_i8m1_u8m1(idx), 16);
}

/* Q5_0 / Q5_1: the fifth bits loaded as a mask (bit j -> element j) */
static inline void rvv_q5(const uint8_t *qh, const uint8_t *qs, int off, vint8m1_t *lo, vint8m1_t *hi) {
    const vuint8m1_t q = __riscv_vle8_v_u8m1(qs, 16);
    vint8m1_t l = rvv_nib_lo(q), h = rvv_nib_hi(q);
    if (off) l = __riscv_vsub_vx_i8m1(l, 16, 16), h = __riscv_vsub_vx_i8m1(h, 16, 16);
    *lo = __riscv_vadd_vx_i8m1_mu(__riscv_vlm_v_b8(qh, 16), l, l, 16, 16);
    *hi = __riscv_vadd_vx_i8m1_mu(__riscv_vlm_v_b8(qh + 2, 16), h, h, 16, 16);
}

static float dot_q5_0_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / 32; i++, x += 22, y += 34) {
        vint8m1_t lo, hi;
        rvv_q5(x + 2, x + 6, 1, &lo, &hi);
        s += (float)rvv_dot32(lo, hi, y + 2) * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

static float dot_q4_1_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0, sm = 0;
    for (int i = 0; i < n / 32; i++, x += 20, y += 36) {
        const vuint8m1_t q = __riscv_vle8_v_u8m1(x + 4, 16);
        s += (float)rvv_dot32(rvv_nib_lo(q), rvv_nib_hi(q), y + 4) * (ld_f16(x) * ld_f16(y));
        sm += ld_f16(x + 2) * ld_f16(y + 2);
    }
    return s + sm;
}

static float dot_q5_1_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0, sm = 0;
    for (int i = 0; i < n / 32; i++, x += 24, y += 36) {
        vint8m1_t lo, hi;
        rvv_q5(x + 4, x + 8, 0, &lo, &hi);
        s += (float)rvv_dot32(lo, hi, y + 4) * (ld_f16(x) * ld_f16(y));
        sm += ld_f16(x + 2) * ld_f16(y + 2);
    }
    return s + sm;
}

static float dot_iq4_nl_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / 32; i++, x += 18, y += 34) {
        const vuint8m1_t q = __riscv_vle8_v_u8m1(x + 2, 16);
        s += (float)rvv_dot32(rvv_iq4(rvv_nib_lo(q)), rvv_iq4(rvv_nib_hi(q)), y + 2) * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

/* K-quants: acc += sc * (q . q8) over 16 values (32-bit lanes) */
static inline vint32m4_t rvv_kstep(vint32m4_t acc, vint8m1_t q, int sc, const uint8_t *q8) {
    const vint16m2_t p = __riscv_vwmul_vv_i16m2(q, __riscv_vle8_v_i8m1((const int8_t *)q8, 16), 16);
    return __riscv_vwmacc_vx_i32m4(acc, (int16_t)sc, p, 16);
}

static inline int32_t rvv_ksum(vint32m4_t acc) {
    return __riscv_vmv_x_s_i32m1_i32(__riscv_vredsum_vs_i32m4_i32m1(acc, __riscv_vmv_v_x_i32m1(0, 1), 16));
}

/* the reference's float steps of a super-block */
static inline float rvv_kfinish(int32_t isum, int32_t imin, float xd, float xm, const uint8_t *yb) {
    const float d8 = ld_f32(yb);
    float r = (xd * d8) * (float)isum;
    if (xm != 0) r -= (xm * d8) * (float)imin;
    return r;
}

static inline int bsum16(const uint8_t *yb, int s) { return (int16_t)ld_u16(yb + 260 + 2 * s); }

/* Q4_K and Q5_K: value 64j + l is nibble 0 of qs[32j + l], 64j + 32 + l
   nibble 1; Q5_K's fifth bits are bits 2j, 2j + 1 of qh[l] */
static inline float rvv_k45(int n, const uint8_t *x, const uint8_t *y, int bits) {
    const size_t bytes = bits == 4 ? 144 : 176;
    float s = 0;
    for (int i = 0; i < n / QK_K; i++, x += bytes, y += 292) {
        uint32_t u[4];
        k4_scales_u32(x + 4, u);
        const uint8_t *sc = (const uint8_t *)u;
        const uint8_t *qs = x + (bits == 4 ? 16 : 48);
        vint32m4_t acc = __riscv_vmv_v_x_i32m4(0, 16);
        int32_t imin = 0;
        SLM_UNROLL(4)
        for (int j = 0; j < 4; j++)
            SLM_UNROLL(2)
            for (int e = 0; e < 2; e++) {
                const vuint8m1_t q = __riscv_vle8_v_u8m1(qs + 32 * j + 16 * e, 16);
                vuint8m1_t lo = __riscv_vand_vx_u8m1(q, 15, 16), hi = __riscv_vsrl_vx_u8m1(q, 4, 16);
                if (bits == 5) {
                    const vuint8m1_t h = __riscv_vsrl_vx_u8m1(__riscv_vle8_v_u8m1(x + 16 + 16 * e, 16), 2 * j, 16);
                    lo = __riscv_vor_vv_u8m1(lo, __riscv_vsll_vx_u8m1(__riscv_vand_vx_u8m1(h, 1, 16), 4, 16), 16);
                    hi = __riscv_vor_vv_u8m1(hi, __riscv_vsll_vx_u8m1(__riscv_vand_vx_u8m1(h, 2, 16), 3, 16), 16);
                }
                acc = rvv_kstep(acc, __riscv_vreinterpret_v_u8m1_i8m1(lo), sc[2 * j], y + 4 + 64 * j + 16 * e);
                acc = rvv_kstep(acc, __riscv_vreinterpret_v_u8m1_i8m1(hi), sc[2 * j + 1], y + 36 + 64 * j + 16 * e);
            }
        SLM_UNROLL(8)
        for (int k = 0; k < 8; k++) imin += sc[8 + k] * (bsum16(y, 2 * k) + bsum16(y, 2 * k + 1));
        s += rvv_kfinish(rvv_ksum(acc), imin, ld_f16(x), ld_f16(x + 2), y);
    }
    return s;
}

static float dot_q4_k_rvv(int n, const void *w, const void *a) { return rvv_k45(n, (const uint8_t *)w, (const uint8_t *)a, 4); }
static float dot_q5_k_rvv(int n, const void *w, const void *a) { return rvv_k45(n, (const uint8_t *)w, (const uint8_t *)a, 5); }

/* Q6_K, Q2_K, Q3_K: value 128h + 32k + 16e + l, sub-block 8h + 2k + e */
static float dot_q6_k_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / QK_K; i++, x += 210, y += 292) {
        const int8_t *sc = (const int8_t *)(x + 192);
        vint32m4_t acc = __riscv_vmv_v_x_i32m4(0, 16);
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++)
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++)
                SLM_UNROLL(2)
                for (int e = 0; e < 2; e++) {
                    const vuint8m1_t l = __riscv_vle8_v_u8m1(x + 64 * h + 32 * (k & 1) + 16 * e, 16);
                    const vuint8m1_t lo = k < 2 ? __riscv_vand_vx_u8m1(l, 15, 16) : __riscv_vsrl_vx_u8m1(l, 4, 16);
                    const vuint8m1_t hb = __riscv_vsrl_vx_u8m1(__riscv_vle8_v_u8m1(x + 128 + 32 * h + 16 * e, 16), 2 * k, 16);
                    const vuint8m1_t q = __riscv_vor_vv_u8m1(lo, __riscv_vsll_vx_u8m1(__riscv_vand_vx_u8m1(hb, 3, 16), 4, 16), 16);
                    const vint8m1_t qs = __riscv_vsub_vx_i8m1(__riscv_vreinterpret_v_u8m1_i8m1(q), 32, 16);
                    acc = rvv_kstep(acc, qs, sc[8 * h + 2 * k + e], y + 4 + 128 * h + 32 * k + 16 * e);
                }
        s += rvv_kfinish(rvv_ksum(acc), 0, ld_f16(x + 208), 0, y);
    }
    return s;
}

static float dot_q2_k_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / QK_K; i++, x += 84, y += 292) {
        vint32m4_t acc = __riscv_vmv_v_x_i32m4(0, 16);
        int32_t imin = 0;
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++)
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++)
                SLM_UNROLL(2)
                for (int e = 0; e < 2; e++) {
                    const vuint8m1_t b = __riscv_vle8_v_u8m1(x + 16 + 32 * h + 16 * e, 16);
                    const vuint8m1_t q = __riscv_vand_vx_u8m1(__riscv_vsrl_vx_u8m1(b, 2 * k, 16), 3, 16);
                    acc = rvv_kstep(acc, __riscv_vreinterpret_v_u8m1_i8m1(q), x[8 * h + 2 * k + e] & 15,
                                    y + 4 + 128 * h + 32 * k + 16 * e);
                }
        for (int k = 0; k < 16; k++) imin += (x[k] >> 4) * bsum16(y, k);
        s += rvv_kfinish(rvv_ksum(acc), imin, ld_f16(x + 80), ld_f16(x + 82), y);
    }
    return s;
}

static float dot_q3_k_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / QK_K; i++, x += 110, y += 292) {
        uint32_t u[4];
        q3_k_scales_u32(x + 96, u);
        const uint8_t *sc = (const uint8_t *)u;
        vint32m4_t acc = __riscv_vmv_v_x_i32m4(0, 16);
        SLM_UNROLL(2)
        for (int h = 0; h < 2; h++)
            SLM_UNROLL(4)
            for (int k = 0; k < 4; k++)
                SLM_UNROLL(2)
                for (int e = 0; e < 2; e++) {
                    /* the 2-bit field plus 4 times the hmask bit, minus 4 */
                    const vuint8m1_t b = __riscv_vle8_v_u8m1(x + 32 + 32 * h + 16 * e, 16);
                    const vuint8m1_t hm = __riscv_vle8_v_u8m1(x + 16 * e, 16);
                    const vuint8m1_t l = __riscv_vand_vx_u8m1(__riscv_vsrl_vx_u8m1(b, 2 * k, 16), 3, 16);
                    const vuint8m1_t t = __riscv_vand_vx_u8m1(__riscv_vsrl_vx_u8m1(hm, 4 * h + k, 16), 1, 16);
                    const vuint8m1_t q = __riscv_vor_vv_u8m1(l, __riscv_vsll_vx_u8m1(t, 2, 16), 16);
                    const vint8m1_t qs = __riscv_vsub_vx_i8m1(__riscv_vreinterpret_v_u8m1_i8m1(q), 4, 16);
                    acc = rvv_kstep(acc, qs, sc[8 * h + 2 * k + e] - 32, y + 4 + 128 * h + 32 * k + 16 * e);
                }
        s += rvv_kfinish(rvv_ksum(acc), 0, ld_f16(x + 108), 0, y);
    }
    return s;
}

static float dot_iq4_xs_rvv(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / QK_K; i++, x += 136, y += 292) {
        vint32m4_t acc = __riscv_vmv_v_x_i32m4(0, 16);
        SLM_UNROLL(8)
        for (int b = 0; b < 8; b++) {
            const vuint8m1_t q = __riscv_vle8_v_u8m1(x + 8 + 16 * b, 16);
            const int sc = iq4_xs_scale(x, b);
            acc = rvv_kstep(acc, rvv_iq4(rvv_nib_lo(q)), sc, y + 4 + 32 * b);
            acc = rvv_kstep(acc, rvv_iq4(rvv_nib_hi(q)), sc, y + 20 + 32 * b);
        }
        s += rvv_kfinish(rvv_ksum(acc), 0, ld_f16(x), 0, y);
    }
    return s;
}

/* Q8_1 and Q8_K activations: the same bytes as the references (products
   rounded to nearest even by the conversion; scalar scale arithmetic);
   blocks whose inverse scale overflows are left to the reference */
static void q8_1_from_float_rvv(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / 32; i++, b += 36, src += 32) {
        const vfloat32m8_t v = __riscv_vle32_v_f32m8(src, 32);
        const vfloat32m1_t m = __riscv_vfredmax_vs_f32m8_f32m1(__riscv_vfabs_v_f32m8(v, 32), __riscv_vfmv_s_f_f32m1(0.0f, 1), 32);
        const float amax = __riscv_vfmv_f_s_f32m1_f32(m);
        const float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        if (!(id <= FLT_MAX) || !(amax <= FLT_MAX)) {
            q8_1_from_float_ref(src, b, 32);
            continue;
        }
        const vint32m8_t q = __riscv_vfcvt_x_f_v_i32m8_rm(__riscv_vfmul_vf_f32m8(v, id, 32), __RISCV_FRM_RNE, 32);
        const int32_t sum = __riscv_vmv_x_s_i32m1_i32(__riscv_vredsum_vs_i32m8_i32m1(q, __riscv_vmv_v_x_i32m1(0, 1), 32));
        __riscv_vse8_v_i8m2((int8_t *)(b + 4), __riscv_vncvt_x_x_w_i8m2(__riscv_vncvt_x_x_w_i16m4(q, 32), 32), 32);
        st_u16(b, f32_to_fp16(d));
        st_u16(b + 2, f32_to_fp16(d * (float)sum));
    }
}

static void q8_k_from_float_rvv(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK_K; i++, b += 292, src += QK_K) {
        vfloat32m1_t m = __riscv_vfmv_s_f_f32m1(0.0f, 1);
        for (int j = 0; j < QK_K; j += 32) m = __riscv_vfredmax_vs_f32m8_f32m1(__riscv_vfabs_v_f32m8(__riscv_vle32_v_f32m8(src + j, 32), 32), m, 32);
        const float amax = __riscv_vfmv_f_s_f32m1_f32(m);
        if (amax == 0) {
            memset(b, 0, 292);
            continue;
        }
        if (!(amax <= FLT_MAX)) { /* every value NaN, or an infinity */
            q8_k_from_float_ref(src, b, QK_K);
            continue;
        }
        int j = 0; /* the first value of largest magnitude gives the sign (amax is one of them) */
        while (fabsf(src[j]) != amax) j++;
        const float iscale = -127.0f / src[j];
        if (!(fabsf(iscale) <= FLT_MAX)) {
            q8_k_from_float_ref(src, b, QK_K);
            continue;
        }
        for (int g = 0; g < 16; g++) {
            const vfloat32m4_t v = __riscv_vle32_v_f32m4(src + 16 * g, 16);
            const vint32m4_t q = __riscv_vfcvt_x_f_v_i32m4_rm(__riscv_vfmul_vf_f32m4(v, iscale, 16), __RISCV_FRM_RNE, 16);
            const int32_t sum = __riscv_vmv_x_s_i32m1_i32(__riscv_vredsum_vs_i32m4_i32m1(q, __riscv_vmv_v_x_i32m1(0, 1), 16));
            __riscv_vse8_v_i8m1((int8_t *)(b + 4 + 16 * g), __riscv_vncvt_x_x_w_i8m1(__riscv_vncvt_x_x_w_i16m2(q, 16), 16), 16);
            st_u16(b + 260 + 2 * g, (uint16_t)(int16_t)sum);
        }
        st_f32(b, 1.0f / iscale);
    }
}


#endif /* SLM_RVV */

/* -------------------------------------------------------------------------- */
/* E6. Arm Helium (M-profile vector extension, Cortex-M55)                    */
/* -------------------------------------------------------------------------- */
/* 128-bit vectors on microcontrollers. The block's integer dot product is
   one VMLADAV (products summed exactly into 32 bits), then the reference's
   float steps in block order: results are bit for bit the reference's, so
   an M55 build generates the same text as a scalar build anywhere. Byte
   loads (VLDRB) need no alignment, so blocks at any address are fine. The
   other types use the reference kernels. */
#ifdef SLM_MVE

static float dot_q8_0_mve(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float s = 0;
    for (int i = 0; i < n / QK8_0; i++, x += 34, y += 34) {
        int32_t isum = vmladavq_s8(vld1q_s8((const int8_t *)(x + 2)), vld1q_s8((const int8_t *)(y + 2)));
        isum = vmladavaq_s8(isum, vld1q_s8((const int8_t *)(x + 18)), vld1q_s8((const int8_t *)(y + 18)));
        s += (float)isum * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

static float dot_q4_0_mve(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    const uint8x16_t m4 = vdupq_n_u8(15);
    float s = 0;
    for (int i = 0; i < n / QK4_0; i++, x += 18, y += 34) {
        const uint8x16_t q = vld1q_u8(x + 2);
        const int8x16_t lo = vsubq_n_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), 8);
        const int8x16_t hi = vsubq_n_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), 8);
        int32_t isum = vmladavq_s8(lo, vld1q_s8((const int8_t *)(y + 2)));
        isum = vmladavaq_s8(isum, hi, vld1q_s8((const int8_t *)(y + 18)));
        s += (float)isum * (ld_f16(x) * ld_f16(y));
    }
    return s;
}

/* The activation quantizer, the same bytes as q8_0_from_float_ref: amax by
   VMAXNMAV (NaN ignored, as the reference's comparison does), the scale
   and its inverse in scalar code, the clamp by compare and select (NaN to
   0, as clamp127), round half to even by VCVTN, a narrowing byte store. */
static void q8_0_from_float_mve(const float *src, void *dst, int64_t n) {
    uint8_t *b = (uint8_t *)dst;
    for (int64_t i = 0; i < n / QK8_0; i++, b += 34, src += QK8_0) {
        float32x4_t v[8];
        float amax = 0;
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(src + 4 * k);
            amax = vmaxnmavq_f32(amax, v[k]);
        }
        const float d = amax / 127.0f, id = amax > 1e-30f ? 127.0f / amax : 0.0f;
        st_u16(b, f32_to_fp16(d));
        for (int k = 0; k < 8; k++) {
            const float32x4_t x = vmulq_n_f32(v[k], id);
            const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
            /* x >= -127 ? (x <= 127 ? x : 127) : (x < -127 ? -127 : 0) */
            float32x4_t c = vpselq_f32(x, hi, vcmpleq_f32(x, hi));
            c = vpselq_f32(c, vpselq_f32(lo, vdupq_n_f32(0.0f), vcmpltq_f32(x, lo)), vcmpgeq_f32(x, lo));
            vstrbq_s32((int8_t *)(b + 2 + 4 * k), vcvtnq_s32_f32(c));
        }
    }
}


#endif /* SLM_MVE */

/* -------------------------------------------------------------------------- */
/* E7. One kernel table per instruction set                                   */
/* -------------------------------------------------------------------------- */
/*
 * A table names the kernels of one ISA (kernel_table, section 5). Entries
 * an ISA lacks stay NULL and fall back to its base, the ISA below it
 * (avx2 -> sse4 -> scalar), when a model resolves its table at load
 * (kernels_resolve, 6h). Adding an ISA is one table here plus its kernels.
 */

static const kernel_table KERNELS_SCALAR = {
    "scalar", SLM_ISA_SCALAR, NULL,
    .dot = {[SLM_TYPE_F32] = dot_f32_ref, [SLM_TYPE_F16] = dot_f16_ref, [SLM_TYPE_BF16] = dot_bf16_ref,
            [SLM_TYPE_Q8_0] = dot_q8_0_ref, [SLM_TYPE_Q4_0] = dot_q4_0_ref, [SLM_TYPE_Q4_1] = dot_q4_1_ref,
            [SLM_TYPE_Q5_0] = dot_q5_0_ref, [SLM_TYPE_Q5_1] = dot_q5_1_ref, [SLM_TYPE_IQ4_NL] = dot_iq4_nl_ref,
            [SLM_TYPE_Q2_K] = dot_q2_k_ref, [SLM_TYPE_Q3_K] = dot_q3_k_ref, [SLM_TYPE_Q4_K] = dot_q4_k_ref,
            [SLM_TYPE_Q5_K] = dot_q5_k_ref, [SLM_TYPE_Q6_K] = dot_q6_k_ref, [SLM_TYPE_IQ4_XS] = dot_iq4_xs_ref},
    .to_float = {[SLM_TYPE_F32] = f32_to_float, [SLM_TYPE_F16] = f16_to_float_ref, [SLM_TYPE_BF16] = bf16_to_float_ref,
                 [SLM_TYPE_Q8_0] = q8_0_to_float},
    .from_float = {[SLM_TYPE_F32] = f32_from_float, [SLM_TYPE_F16] = f16_from_float_ref,
                   [SLM_TYPE_BF16] = bf16_from_float_ref, [SLM_TYPE_Q8_0] = q8_0_from_float_ref,
                   [SLM_TYPE_Q8_1] = q8_1_from_float_ref, [SLM_TYPE_Q8_K] = q8_k_from_float_ref},
    .exp_sum = exp_sum_ref,
};

#ifdef SLM_SSE4
static const kernel_table KERNELS_SSE4 = {
    "sse4", SLM_ISA_SSE4, &KERNELS_SCALAR,
    .dot = {[SLM_TYPE_F32] = dot_f32_sse, [SLM_TYPE_F16] = dot_f16_sse, [SLM_TYPE_BF16] = dot_bf16_sse,
            [SLM_TYPE_Q8_0] = dot_q8_0_sse, [SLM_TYPE_Q4_0] = dot_q4_0_sse, [SLM_TYPE_Q4_1] = dot_q4_1_sse,
            [SLM_TYPE_Q5_0] = dot_q5_0_sse, [SLM_TYPE_Q5_1] = dot_q5_1_sse, [SLM_TYPE_IQ4_NL] = dot_iq4_nl_sse,
            [SLM_TYPE_Q2_K] = dot_q2_k_sse, [SLM_TYPE_Q3_K] = dot_q3_k_sse, [SLM_TYPE_Q4_K] = dot_q4_k_sse,
            [SLM_TYPE_Q5_K] = dot_q5_k_sse, [SLM_TYPE_Q6_K] = dot_q6_k_sse, [SLM_TYPE_IQ4_XS] = dot_iq4_xs_sse},
    .dot4 = {[SLM_TYPE_Q8_0] = dot4_q8_0_sse, [SLM_TYPE_Q4_0] = dot4_q4_0_sse, [SLM_TYPE_Q4_1] = dot4_q4_1_sse,
             [SLM_TYPE_Q5_0] = dot4_q5_0_sse, [SLM_TYPE_Q5_1] = dot4_q5_1_sse, [SLM_TYPE_IQ4_NL] = dot4_iq4_nl_sse,
             [SLM_TYPE_Q2_K] = dot4_q2_k_sse, [SLM_TYPE_Q3_K] = dot4_q3_k_sse, [SLM_TYPE_Q4_K] = dot4_q4_k_sse,
             [SLM_TYPE_Q5_K] = dot4_q5_k_sse, [SLM_TYPE_Q6_K] = dot4_q6_k_sse, [SLM_TYPE_IQ4_XS] = dot4_iq4_xs_sse},
    .to_float = {[SLM_TYPE_F16] = f16_to_float_sse, [SLM_TYPE_BF16] = bf16_to_float_sse},
    .from_float = {[SLM_TYPE_F16] = f16_from_float_sse, [SLM_TYPE_BF16] = bf16_from_float_sse,
                   [SLM_TYPE_Q8_0] = q8_0_from_float_sse, [SLM_TYPE_Q8_1] = q8_1_from_float_sse,
                   [SLM_TYPE_Q8_K] = q8_k_from_float_sse},
};
#endif

#ifdef SLM_AVX2
static const kernel_table KERNELS_AVX2 = {
#ifdef SLM_SSE4
    "avx2", SLM_ISA_AVX2, &KERNELS_SSE4,
#else
    "avx2", SLM_ISA_AVX2, &KERNELS_SCALAR,
#endif
    .dot = {[SLM_TYPE_F32] = dot_f32_avx2, [SLM_TYPE_F16] = dot_f16_avx2, [SLM_TYPE_BF16] = dot_bf16_avx2,
            [SLM_TYPE_Q8_0] = dot_q8_0_avx2, [SLM_TYPE_Q4_0] = dot_q4_0_avx2, [SLM_TYPE_Q4_1] = dot_q4_1_avx2,
            [SLM_TYPE_Q5_0] = dot_q5_0_avx2, [SLM_TYPE_Q5_1] = dot_q5_1_avx2, [SLM_TYPE_IQ4_NL] = dot_iq4_nl_avx2,
            [SLM_TYPE_Q2_K] = dot_q2_k_avx2, [SLM_TYPE_Q3_K] = dot_q3_k_avx2, [SLM_TYPE_Q4_K] = dot_q4_k_avx2,
            [SLM_TYPE_Q5_K] = dot_q5_k_avx2, [SLM_TYPE_Q6_K] = dot_q6_k_avx2, [SLM_TYPE_IQ4_XS] = dot_iq4_xs_avx2},
    .dot4 = {[SLM_TYPE_Q8_0] = dot4_q8_0_avx2, [SLM_TYPE_Q4_0] = dot4_q4_0_avx2, [SLM_TYPE_Q4_1] = dot4_q4_1_avx2,
             [SLM_TYPE_Q5_0] = dot4_q5_0_avx2, [SLM_TYPE_Q5_1] = dot4_q5_1_avx2, [SLM_TYPE_IQ4_NL] = dot4_iq4_nl_avx2,
             [SLM_TYPE_Q2_K] = dot4_q2_k_avx2, [SLM_TYPE_Q3_K] = dot4_q3_k_avx2, [SLM_TYPE_Q4_K] = dot4_q4_k_avx2,
             [SLM_TYPE_Q5_K] = dot4_q5_k_avx2, [SLM_TYPE_Q6_K] = dot4_q6_k_avx2, [SLM_TYPE_IQ4_XS] = dot4_iq4_xs_avx2},
    .gemm_x8 = {[SLM_TYPE_Q4_0] = gemm_q4_0x8_avx2, [SLM_TYPE_Q8_0] = gemm_q8_0x8_avx2,
                [SLM_TYPE_Q5_0] = gemm_q5_0x8_avx2, [SLM_TYPE_Q4_K] = gemm_q4_kx8_avx2, [SLM_TYPE_Q6_K] = gemm_q6_kx8_avx2,
                [SLM_TYPE_Q5_K] = gemm_q5_kx8_avx2},
    .gemm16_rows = {[SLM_TYPE_Q4_K] = gemm16_q4_k_avx2, [SLM_TYPE_Q5_K] = gemm16_q5_k_avx2,
                    [SLM_TYPE_Q6_K] = gemm16_q6_k_avx2},
    .to_float = {[SLM_TYPE_F16] = f16_to_float_avx2, [SLM_TYPE_BF16] = bf16_to_float_avx2},
    .from_float = {[SLM_TYPE_F16] = f16_from_float_avx2, [SLM_TYPE_BF16] = bf16_from_float_avx2,
                   [SLM_TYPE_Q8_0] = q8_0_from_float_avx2, [SLM_TYPE_Q8_1] = q8_1_from_float_avx2,
                   [SLM_TYPE_Q8_K] = q8_k_from_float_avx2},
    .dot_rows_f16 = dot_rows_f16_avx2,
    .qk_rows_f16 = qk_rows_f16_avx2,
    .exp_sum = exp_sum_avx2,
};
#endif

#ifdef SLM_AVX512
/* AVX-512 with VNNI (E2); the conversions, quantizers, F16 kernels and the
   one-row Q8_0 dot (its even/odd sums moved the embedding fixtures past
   their bound) are AVX2's (a 512-bit dot_rows_f16 with dot_f16_avx2's bits was slower on
   Zen 4: 0.7-0.9x) */
static const kernel_table KERNELS_AVX512 = {
    "avx512", SLM_ISA_AVX512, &KERNELS_AVX2,
    .dot = {[SLM_TYPE_Q4_0] = dot_q4_0_avx512,
            [SLM_TYPE_Q4_1] = dot_q4_1_avx512, [SLM_TYPE_Q5_0] = dot_q5_0_avx512, [SLM_TYPE_Q5_1] = dot_q5_1_avx512,
            [SLM_TYPE_IQ4_NL] = dot_iq4_nl_avx512, [SLM_TYPE_Q2_K] = dot_q2_k_avx512, [SLM_TYPE_Q3_K] = dot_q3_k_avx512,
            [SLM_TYPE_Q4_K] = dot_q4_k_avx512, [SLM_TYPE_Q5_K] = dot_q5_k_avx512, [SLM_TYPE_Q6_K] = dot_q6_k_avx512,
            [SLM_TYPE_IQ4_XS] = dot_iq4_xs_avx512},
    .dot4 = {[SLM_TYPE_Q4_0] = dot4_q4_0_avx512, [SLM_TYPE_Q4_1] = dot4_q4_1_avx512,
             [SLM_TYPE_Q5_0] = dot4_q5_0_avx512, [SLM_TYPE_Q5_1] = dot4_q5_1_avx512, [SLM_TYPE_IQ4_NL] = dot4_iq4_nl_avx512,
             [SLM_TYPE_Q2_K] = dot4_q2_k_avx512, [SLM_TYPE_Q3_K] = dot4_q3_k_avx512, [SLM_TYPE_Q4_K] = dot4_q4_k_avx512,
             [SLM_TYPE_Q5_K] = dot4_q5_k_avx512, [SLM_TYPE_Q6_K] = dot4_q6_k_avx512, [SLM_TYPE_IQ4_XS] = dot4_iq4_xs_avx512},
    .gemm_x8 = {[SLM_TYPE_Q4_0] = gemm_q4_0x8_avx512, [SLM_TYPE_Q8_0] = gemm_q8_0x8_avx512,
                [SLM_TYPE_Q5_0] = gemm_q5_0x8_avx512, [SLM_TYPE_Q4_K] = gemm_q4_kx8_avx512,
                [SLM_TYPE_Q5_K] = gemm_q5_kx8_avx512, [SLM_TYPE_Q6_K] = gemm_q6_kx8_avx512},
    .gemm16_x8 = {[SLM_TYPE_Q4_0] = gemm16_q4_0x8_avx512, [SLM_TYPE_Q8_0] = gemm16_q8_0x8_avx512,
                  [SLM_TYPE_Q5_0] = gemm16_q5_0x8_avx512, [SLM_TYPE_Q4_K] = gemm16_q4_kx8_avx512,
                  [SLM_TYPE_Q5_K] = gemm16_q5_kx8_avx512, [SLM_TYPE_Q6_K] = gemm16_q6_kx8_avx512},
    .gemm16_rows = {[SLM_TYPE_Q4_K] = gemm16_q4_k_avx512, [SLM_TYPE_Q5_K] = gemm16_q5_k_avx512,
                    [SLM_TYPE_Q6_K] = gemm16_q6_k_avx512, [SLM_TYPE_Q2_K] = gemm16_q2_k_avx512,
                    [SLM_TYPE_Q3_K] = gemm16_q3_k_avx512, [SLM_TYPE_IQ4_XS] = gemm16_iq4_xs_avx512},
    .exp_sum = exp_sum_avx512,
};
#endif

#ifdef SLM_NEON
static const kernel_table KERNELS_NEON = {
    SLM_NEON_NAME, SLM_ISA_NEON, &KERNELS_SCALAR,
    .dot = {[SLM_TYPE_F32] = dot_f32_neon,
#ifdef SLM_NEON_F16
            [SLM_TYPE_F16] = dot_f16_neon,
#endif
            [SLM_TYPE_BF16] = dot_bf16_neon, [SLM_TYPE_Q8_0] = dot_q8_0_neon, [SLM_TYPE_Q4_0] = dot_q4_0_neon,
            [SLM_TYPE_Q4_1] = dot_q4_1_neon, [SLM_TYPE_Q5_0] = dot_q5_0_neon, [SLM_TYPE_Q5_1] = dot_q5_1_neon,
            [SLM_TYPE_IQ4_NL] = dot_iq4_nl_neon, [SLM_TYPE_Q2_K] = dot_q2_k_neon, [SLM_TYPE_Q3_K] = dot_q3_k_neon,
            [SLM_TYPE_Q4_K] = dot_q4_k_neon, [SLM_TYPE_Q5_K] = dot_q5_k_neon, [SLM_TYPE_Q6_K] = dot_q6_k_neon,
            [SLM_TYPE_IQ4_XS] = dot_iq4_xs_neon},
    .dot4 = {[SLM_TYPE_Q8_0] = dot4_q8_0_neon, [SLM_TYPE_Q4_0] = dot4_q4_0_neon, [SLM_TYPE_Q4_1] = dot4_q4_1_neon,
             [SLM_TYPE_Q5_0] = dot4_q5_0_neon, [SLM_TYPE_Q5_1] = dot4_q5_1_neon, [SLM_TYPE_IQ4_NL] = dot4_iq4_nl_neon,
             [SLM_TYPE_Q2_K] = dot4_q2_k_neon, [SLM_TYPE_Q3_K] = dot4_q3_k_neon, [SLM_TYPE_Q4_K] = dot4_q4_k_neon,
             [SLM_TYPE_Q5_K] = dot4_q5_k_neon, [SLM_TYPE_Q6_K] = dot4_q6_k_neon, [SLM_TYPE_IQ4_XS] = dot4_iq4_xs_neon},
#ifdef SLM_NEON_F16
    .to_float = {[SLM_TYPE_F16] = f16_to_float_neon, [SLM_TYPE_BF16] = bf16_to_float_neon},
    .from_float = {[SLM_TYPE_F16] = f16_from_float_neon, [SLM_TYPE_BF16] = bf16_from_float_neon,
                   [SLM_TYPE_Q8_0] = q8_0_from_float_neon, [SLM_TYPE_Q8_1] = q8_1_from_float_neon,
                   [SLM_TYPE_Q8_K] = q8_k_from_float_neon},
#else
    .to_float = {[SLM_TYPE_BF16] = bf16_to_float_neon},
    .from_float = {[SLM_TYPE_BF16] = bf16_from_float_neon, [SLM_TYPE_Q8_0] = q8_0_from_float_neon,
                   [SLM_TYPE_Q8_1] = q8_1_from_float_neon, [SLM_TYPE_Q8_K] = q8_k_from_float_neon},
#endif
};
#endif

/* aarch64 with SDOT: the int8 kernels; the rest is the baseline's */
#ifdef SLM_NEON_DOTPROD
static const kernel_table KERNELS_DOTPROD = {
    "dotprod", SLM_ISA_NEON_DOTPROD, &KERNELS_NEON,
    .dot = {[SLM_TYPE_Q8_0] = dot_q8_0_dotprod, [SLM_TYPE_Q4_0] = dot_q4_0_dotprod, [SLM_TYPE_Q4_1] = dot_q4_1_dotprod,
            [SLM_TYPE_Q5_0] = dot_q5_0_dotprod, [SLM_TYPE_Q5_1] = dot_q5_1_dotprod,
            [SLM_TYPE_IQ4_NL] = dot_iq4_nl_dotprod, [SLM_TYPE_Q2_K] = dot_q2_k_dotprod,
            [SLM_TYPE_Q3_K] = dot_q3_k_dotprod, [SLM_TYPE_Q4_K] = dot_q4_k_dotprod, [SLM_TYPE_Q5_K] = dot_q5_k_dotprod,
            [SLM_TYPE_Q6_K] = dot_q6_k_dotprod, [SLM_TYPE_IQ4_XS] = dot_iq4_xs_dotprod},
    .dot4 = {[SLM_TYPE_Q8_0] = dot4_q8_0_dotprod, [SLM_TYPE_Q4_0] = dot4_q4_0_dotprod,
             [SLM_TYPE_Q4_1] = dot4_q4_1_dotprod, [SLM_TYPE_Q5_0] = dot4_q5_0_dotprod,
             [SLM_TYPE_Q5_1] = dot4_q5_1_dotprod, [SLM_TYPE_IQ4_NL] = dot4_iq4_nl_dotprod,
             [SLM_TYPE_Q2_K] = dot4_q2_k_dotprod, [SLM_TYPE_Q3_K] = dot4_q3_k_dotprod,
             [SLM_TYPE_Q4_K] = dot4_q4_k_dotprod, [SLM_TYPE_Q5_K] = dot4_q5_k_dotprod,
             [SLM_TYPE_Q6_K] = dot4_q6_k_dotprod, [SLM_TYPE_IQ4_XS] = dot4_iq4_xs_dotprod},
    .gemm_x8 = {[SLM_TYPE_Q4_0] = gemm_q4_0x8_dotprod, [SLM_TYPE_Q8_0] = gemm_q8_0x8_dotprod,
                [SLM_TYPE_Q5_0] = gemm_q5_0x8_dotprod, [SLM_TYPE_Q4_K] = gemm_q4_kx8_dotprod,
                [SLM_TYPE_Q5_K] = gemm_q5_kx8_dotprod, [SLM_TYPE_Q6_K] = gemm_q6_kx8_dotprod},
};
#endif

/* aarch64 with SMMLA: the x8 kernels for several tokens (prompts) */
#ifdef SLM_NEON_I8MM
static const kernel_table KERNELS_I8MM = {
    "i8mm", SLM_ISA_NEON_I8MM, &KERNELS_DOTPROD,
    .gemm_x8 = {[SLM_TYPE_Q4_0] = gemm_q4_0x8_i8mm, [SLM_TYPE_Q8_0] = gemm_q8_0x8_i8mm,
                [SLM_TYPE_Q5_0] = gemm_q5_0x8_i8mm},
};
#endif

#ifdef SLM_RVV
static const kernel_table KERNELS_RVV = {
    "rvv", SLM_ISA_RVV, &KERNELS_SCALAR,
    .dot = {[SLM_TYPE_F32] = dot_f32_rvv, [SLM_TYPE_F16] = dot_f16_rvv, [SLM_TYPE_BF16] = dot_bf16_rvv,
            [SLM_TYPE_Q8_0] = dot_q8_0_rvv, [SLM_TYPE_Q4_0] = dot_q4_0_rvv, [SLM_TYPE_Q4_1] = dot_q4_1_rvv,
            [SLM_TYPE_Q5_0] = dot_q5_0_rvv, [SLM_TYPE_Q5_1] = dot_q5_1_rvv, [SLM_TYPE_IQ4_NL] = dot_iq4_nl_rvv,
            [SLM_TYPE_Q2_K] = dot_q2_k_rvv, [SLM_TYPE_Q3_K] = dot_q3_k_rvv, [SLM_TYPE_Q4_K] = dot_q4_k_rvv,
            [SLM_TYPE_Q5_K] = dot_q5_k_rvv, [SLM_TYPE_Q6_K] = dot_q6_k_rvv, [SLM_TYPE_IQ4_XS] = dot_iq4_xs_rvv},
    .to_float = {[SLM_TYPE_F16] = f16_to_float_rvv, [SLM_TYPE_BF16] = bf16_to_float_rvv},
    .from_float = {[SLM_TYPE_F16] = f16_from_float_rvv, [SLM_TYPE_BF16] = bf16_from_float_rvv,
                   [SLM_TYPE_Q8_0] = q8_0_from_float_rvv, [SLM_TYPE_Q8_1] = q8_1_from_float_rvv,
                   [SLM_TYPE_Q8_K] = q8_k_from_float_rvv},
};
#endif

#ifdef SLM_MVE
static const kernel_table KERNELS_MVE = {
    "mve", SLM_ISA_MVE, &KERNELS_SCALAR,
    .dot = {[SLM_TYPE_Q8_0] = dot_q8_0_mve, [SLM_TYPE_Q4_0] = dot_q4_0_mve},
    .from_float = {[SLM_TYPE_Q8_0] = q8_0_from_float_mve},
};
#endif

/* Every table this build has, best first. */
static const kernel_table *const KERNEL_TABLES[] = {
#ifdef SLM_AVX512
    &KERNELS_AVX512,
#endif
#ifdef SLM_AVX2
    &KERNELS_AVX2,
#endif
#ifdef SLM_SSE4
    &KERNELS_SSE4,
#endif
#ifdef SLM_NEON_I8MM
    &KERNELS_I8MM,
#endif
#ifdef SLM_NEON_DOTPROD
    &KERNELS_DOTPROD,
#endif
#ifdef SLM_NEON
    &KERNELS_NEON,
#endif
#ifdef SLM_RVV
    &KERNELS_RVV,
#endif
#ifdef SLM_MVE
    &KERNELS_MVE,
#endif
    &KERNELS_SCALAR,
};
#define N_KERNEL_TABLES (sizeof KERNEL_TABLES / sizeof KERNEL_TABLES[0])

/* -------------------------------------------------------------------------- */
/* E8. Choosing a table: what the CPU and the OS support                      */
/* -------------------------------------------------------------------------- */
/*
 * x86-64 (dispatch builds): cpuid says what the CPU has, xgetbv whether the
 * OS saves the AVX (YMM) and AVX-512 (opmask, ZMM) state on a context
 * switch; both are needed. Builds with fixed selection run what they were
 * compiled for (the compiler flags promised it). Detection asks the CPU
 * each time it is called (once per model load): it keeps no state, so it
 * is thread-safe and there is nothing to initialise.
 */
#if defined(SLM_X86_DISPATCH)
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static int cpu_has_isa(int isa) {
    unsigned a, b, c, d;
    if (isa == SLM_ISA_SCALAR) return 1;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int sse4 = (c >> 19 & 1) && (c >> 9 & 1); /* SSE4.1, SSSE3 */
    if (isa == SLM_ISA_SSE4) return sse4;
    /* AVX needs OSXSAVE and the OS saving XMM|YMM state */
    const int fma = c >> 12 & 1, osxsave = c >> 27 & 1, avx = c >> 28 & 1, f16c = c >> 29 & 1;
    if (!sse4 || !osxsave || !avx || !fma || !f16c) return 0;
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 6) != 6) return 0;
    unsigned a7, b7, c7, d7;
    if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) return 0;
    const int avx2 = b7 >> 5 & 1;
    if (isa == SLM_ISA_AVX2) return avx2;
    if (isa == SLM_ISA_AVX512) {
        /* F (16), DQ (17), BW (30), VL (31), VNNI (ecx 11); opmask, ZMM0-15
           upper halves and ZMM16-31 state (xcr0 bits 5-7) */
        const int f = b7 >> 16 & 1, dq = b7 >> 17 & 1, bw = b7 >> 30 & 1, vl = b7 >> 31 & 1, vnni = c7 >> 11 & 1;
        return avx2 && f && dq && bw && vl && vnni && (xcr0 & 0xe0) == 0xe0;
    }
    return 0;
}
#elif defined(SLM_ARM_DISPATCH)
/* aarch64 (dispatch builds): the OS reports the CPU's features (Linux and
   Android: the auxiliary vector; macOS: sysctl; Windows: no i8mm query);
   elsewhere the build's flags decide. */
#if defined(SLM_HAVE_GETAUXVAL)
#ifndef AT_HWCAP2
#define AT_HWCAP2 26
#endif
#define SLM_HWCAP_ASIMDDP (1ul << 20)
#define SLM_HWCAP2_I8MM (1ul << 13)
#endif
#if defined(_WIN32) && !defined(PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE)
#define PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE 43
#endif

/* 1 if the CPU has SDOT (i8mm 0) or SMMLA (i8mm 1) */
static int arm_has(int i8mm) {
#if defined(__ARM_FEATURE_DOTPROD)
    if (!i8mm) return 1;
#endif
#if defined(__ARM_FEATURE_MATMUL_INT8)
    if (i8mm) return 1;
#endif
#if defined(SLM_HAVE_GETAUXVAL)
    return i8mm ? (getauxval(AT_HWCAP2) & SLM_HWCAP2_I8MM) != 0 : (getauxval(AT_HWCAP) & SLM_HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
    int v = 0;
    size_t len = sizeof v;
    if (sysctlbyname(i8mm ? "hw.optional.arm.FEAT_I8MM" : "hw.optional.arm.FEAT_DotProd", &v, &len, NULL, 0) != 0)
        return 0;
    return v != 0;
#elif defined(_WIN32)
    return i8mm ? 0 : IsProcessorFeaturePresent(PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE) != 0;
#else
    return 0;
#endif
}

static int cpu_has_isa(int isa) {
    if (isa == SLM_ISA_SCALAR || isa == SLM_ISA_NEON) return 1;
    if (isa == SLM_ISA_NEON_DOTPROD) return arm_has(0);
    if (isa == SLM_ISA_NEON_I8MM) return arm_has(0) && arm_has(1); /* the i8mm table uses SDOT too */
    return 0;
}
#else
static int cpu_has_isa(int isa) {
    (void)isa;
    return 1; /* fixed selection: the build's flags say the CPU has it */
}
#endif

/* The table of `isa` (SLM_ISA_BEST: the best this CPU supports), or NULL if
   this build does not have it or the CPU cannot run it. */
static const kernel_table *kernels_find(int isa) {
    for (size_t i = 0; i < N_KERNEL_TABLES; i++) {
        const kernel_table *t = KERNEL_TABLES[i];
        if ((isa == SLM_ISA_BEST || isa == t->isa) && cpu_has_isa(t->isa)) return t;
    }
    return NULL;
}

/* A table with every entry filled: t's own, then its bases'. */
static void kernels_resolve(const kernel_table *t, kernel_table *out) {
    if (t->base) kernels_resolve(t->base, out);
    else memset(out, 0, sizeof *out);
    for (int i = 0; i < N_TYPE_IDS; i++) {
        if (t->dot[i]) out->dot[i] = t->dot[i];
        if (t->dot4[i]) out->dot4[i] = t->dot4[i];
        if (t->gemm_x8[i]) out->gemm_x8[i] = t->gemm_x8[i];
        if (t->gemm16_x8[i]) out->gemm16_x8[i] = t->gemm16_x8[i];
        if (t->gemm16_rows[i]) out->gemm16_rows[i] = t->gemm16_rows[i];
        if (t->to_float[i]) out->to_float[i] = t->to_float[i];
        if (t->from_float[i]) out->from_float[i] = t->from_float[i];
    }
    if (t->dot_rows_f16) out->dot_rows_f16 = t->dot_rows_f16;
    if (t->qk_rows_f16) out->qk_rows_f16 = t->qk_rows_f16;
    if (t->exp_sum) out->exp_sum = t->exp_sum;
    out->name = t->name;
    out->isa = t->isa;
    out->base = t->base;
}

/* ASCII case-insensitive strcmp (names typed by users) */
static int ascii_casecmp(const char *a, const char *b) {
    for (;; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y || !x) return x - y;
    }
}

static const char *const ISA_NAMES[SLM_ISA_COUNT] = {"best", "scalar", "sse4", "avx2", "avx512",
                                                     "neon", "rvv",    "mve",  "dotprod", "i8mm"};

const char *slm_isa_name(int isa) { return isa >= 0 && isa < SLM_ISA_COUNT ? ISA_NAMES[isa] : "unknown"; }

int slm_isa_from_name(const char *name) {
    for (int i = 0; name && i < SLM_ISA_COUNT; i++)
        if (ascii_casecmp(name, ISA_NAMES[i]) == 0) return i;
    return -1;
}

int slm_isa_available(int isa) {
    if (isa == SLM_ISA_BEST) return 1;
    return isa > 0 && isa < SLM_ISA_COUNT && kernels_find(isa) != NULL;
}

/* The build's switches, after "simd=... cpu=..." */
#define BUILD_REST                                                                                                   \
    BUILD_OPENMP BUILD_MMAP BUILD_STDIO BUILD_MALLOC
#if SLM_OPENMP
#define BUILD_OPENMP " openmp=on"
#else
#define BUILD_OPENMP " openmp=off"
#endif
#if defined(SLM_HAVE_MMAP)
#define BUILD_MMAP " mmap=on"
#else
#define BUILD_MMAP " mmap=off"
#endif
#if defined(SLM_NO_STDIO)
#define BUILD_STDIO " stdio=off"
#else
#define BUILD_STDIO ""
#endif
#if defined(SLM_NO_MALLOC)
#define BUILD_MALLOC " malloc=off"
#else
#define BUILD_MALLOC ""
#endif

/* One constant string per possible answer: no buffer, no state. */
const char *slm_build_info(void) {
    const kernel_table *k = kernels_find(SLM_ISA_BEST);
    switch (k->isa) {
    case SLM_ISA_AVX512: return "simd=" SLM_SIMD_NAME " cpu=avx512" BUILD_REST;
    case SLM_ISA_AVX2: return "simd=" SLM_SIMD_NAME " cpu=avx2" BUILD_REST;
    case SLM_ISA_SSE4: return "simd=" SLM_SIMD_NAME " cpu=sse4" BUILD_REST;
    case SLM_ISA_NEON: return "simd=" SLM_SIMD_NAME " cpu=neon" BUILD_REST;
    case SLM_ISA_NEON_DOTPROD: return "simd=" SLM_SIMD_NAME " cpu=dotprod" BUILD_REST;
    case SLM_ISA_NEON_I8MM: return "simd=" SLM_SIMD_NAME " cpu=i8mm" BUILD_REST;
    case SLM_ISA_RVV: return "simd=" SLM_SIMD_NAME " cpu=rvv" BUILD_REST;
    case SLM_ISA_MVE: return "simd=" SLM_SIMD_NAME " cpu=mve" BUILD_REST;
    default: return "simd=" SLM_SIMD_NAME " cpu=scalar" BUILD_REST;
    }
}

/* Q8_0X (section 5): Q8_0's bytes, rearranged, with the scale as f32 and
   the block sum. */
static void q8_0x_from_float(const kernel_table *k, const float *src, void *dst, int64_t n) {
    uint8_t *o = (uint8_t *)dst, tmp[34];
    for (int64_t b = 0; b < n / 32; b++, o += 40) {
        k->from_float[SLM_TYPE_Q8_0](src + 32 * b, tmp, 32);
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) sum += (int8_t)tmp[2 + j];
        memcpy(o, tmp + 2, 32);
        st_f32(o + 32, ld_f16(tmp));
        st_u32(o + 36, (uint32_t)sum);
    }
}

static void act_from_float(const kernel_table *k, int dt, const float *src, void *dst, int64_t n) {
    if (dt == ACT_Q8_0X) q8_0x_from_float(k, src, dst, n);
    else k->from_float[dt](src, dst, n);
}

