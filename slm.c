/*
 * slm.c - the whole implementation of slm (see slm.h for the API).
 *
 * Read top to bottom. Contents:
 *
 *   1. Configuration and platform detection
 *   2. Status codes, errors, allocation
 *   3. Small utilities (fp16/bf16, hashing, clock)
 *   4. GGUF reader (bounds-checked, from a file, mmap or a memory buffer)
 *   4b. GGUF writer (metadata and tensor directory, then streamed tensor data)
 *   5. Tensor types: block layouts and the traits table
 *   6. Kernels: scalar reference, then AVX2, SSE4.1, NEON, RVV, Helium (same
 *      signatures)
 *   7. Operators: norms, RoPE, softmax, activations, attention, mat-mul
 *   8. Model: hyperparameters, tensor binding, the generic forward pass
 *   9. Session: KV cache, positions, decode
 *   9b. Session state: save and restore (versioned sections, checked
 *       against the model)
 *  10. Tokenizer: vocabulary, SentencePiece-style encoder, byte-level BPE with
 *      pre-tokenizers and Unicode tables, detokenizer
 *  11. Chat templates: family detection, formatting, incremental turns
 *  12. Sampler: penalties, top-k, top-p, min-p, temperature, seeded draw
 *  13. Generate: prompt -> streamed text, stop conditions, timings
 *  14. Quantization: convert a GGUF file's matrices to another type
 *
 * Build: C99. OpenMP (-fopenmp) parallelises the forward pass; without it
 * slm runs on one thread. The SIMD kernels follow the target flags
 * (section 1). Compile-time switches (all optional, see section 1):
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
   offsets, copy-on-write file mapping (section 8, loading). */
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

/* SIMD kernels (section 6). On x86-64 with GCC or Clang every x86 kernel
   set (SSE4.1, AVX2, AVX-512 with VNNI) is compiled into every build, each
   in a region with its own target attribute, and a model chooses the best
   one the CPU and the OS support when it loads (section 6h), so a build
   without -march flags runs the fastest kernels the machine has.
   Elsewhere the kernels follow the target's macros, i.e. the compiler
   flags: -march=armv8.2-a+dotprod, -mfpu=neon-vfpv4, -march=rv64gcv,
   -mcpu=cortex-m55 (Helium), and on x86 compilers without target
   attributes (MSVC: /arch:AVX2) -mavx2 -mfma -mf16c or -msse4.1.
   -DSLM_NO_SIMD forces the scalar reference kernels; -DSLM_NO_DISPATCH
   keeps the x86 selection at compile time. The SIMD kernels read
   little-endian blocks with vector loads, so big-endian hosts use scalar. */
#if defined(SLM_NO_SIMD) || SLM_BIG_ENDIAN
#define SLM_SIMD_NAME "scalar"
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SLM_NO_DISPATCH)
#define SLM_X86_DISPATCH 1
#define SLM_SSE4 1
#define SLM_AVX2 1
#define SLM_SIMD_NAME "scalar,sse4,avx2"
#include <cpuid.h>
#include <immintrin.h>
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
   align 1, so that an arena packs them (a vocabulary is thousands of them). */
static void *xalloc_small(const allocator *a, size_t size) {
    if (a->is_default) return xalloc(a, size);
    return a->hook.alloc(a->hook.user, size ? size : 1, 1);
}

static char *xstrndup(const allocator *a, const char *s, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *p = (char *)xalloc_small(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
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
        seterr(r->err, SLM_ERR_FORMAT, "key '%s' (offset %zu): unknown value type %u", kv->key, at, (unsigned)t);
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
        seterr(r->err, SLM_ERR_FORMAT, "key '%s': unknown array element type %u", kv->key, (unsigned)et);
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
                return seterr(err, SLM_ERR_FORMAT, "general.alignment %u is not a power of two <= 65536", (unsigned)al);
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
            return seterr(err, SLM_ERR_FORMAT, "tensor '%s': %u dimensions (1..%d allowed)", t->name, (unsigned)nd, GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        uint64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            if (!rd_u64(r, &v, t->name)) return (slm_status)err->status;
            if (v == 0 || v > (uint64_t)INT64_MAX)
                return seterr(err, SLM_ERR_FORMAT, "tensor '%s': dimension %u is %lld", t->name, (unsigned)d, (long long)v);
            if (nel > (uint64_t)INT64_MAX / v)
                return seterr(err, SLM_ERR_FORMAT, "tensor '%s': element count overflows", t->name);
            nel *= v;
            t->ne[d] = (int64_t)v;
        }
        if (!rd_u32(r, &type, t->name)) return (slm_status)err->status;
        const type_size *ts = type_size_of((int)type);
        if (!ts) return seterr(err, SLM_ERR_UNSUPPORTED, "tensor '%s': unknown ggml type id %u", t->name, (unsigned)type);
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
/* 4b. GGUF writer                                                            */
/* ========================================================================== */
/*
 * Builds a GGUF v3 file: the key/value pairs and the tensor directory are
 * encoded into memory first (gw_kv_*, gw_tensor), gw_write_header writes
 * them, then the caller streams each tensor's bytes in directory order
 * (gw_write_data, any number of pieces) and closes each with gw_end_tensor,
 * which pads to the alignment. Errors are sticky: the first is kept in
 * w->st / w->err and later calls do nothing, so callers check once.
 */

/* Output files, the writer's and the quantizer's only contact with stdio.
   SLM_NO_STDIO builds have none: opening fails (slm_quantize_file says so
   before it gets here). */
#if !defined(SLM_NO_STDIO)
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
    if (o->st == SLM_OK) {
        remove(o->target); /* C99 rename need not replace; the target is a regular file here */
        if (rename(o->tmp, o->target) != 0) of_fail(o, SLM_ERR_IO, "cannot replace", os_reason(errno));
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
   (optional, per type: section 6g; each result equals vec_dot's bits) */
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

/* The kernels of one instruction set (section 6g), by weight or activation
   type. A model holds its own resolved copy, every entry filled (6h). */
typedef struct kernel_table {
    const char *name;                      /* "avx2", "neon", ... */
    int isa;                               /* SLM_ISA_* */
    const struct kernel_table *base;       /* the ISA below, for entries this one lacks */
    vec_dot_fn dot[N_TYPE_IDS];            /* weight row . activations, per weight type */
    vec_dot4_fn dot4[N_TYPE_IDS];          /* the same for 4 tokens (optional) */
    gemm_x8_fn gemm_x8[N_TYPE_IDS];        /* x8 groups (optional: types with one are repacked) */
    to_float_fn to_float[N_TYPE_IDS];      /* F32/F16/BF16/Q8_0 rows to floats (KV cache) */
    from_float_fn from_float[N_TYPE_IDS];  /* activation quantizers: dot partners and KV types */
    dot_rows_fn dot_rows_f16;              /* attention over an F16 cache (optional) */
    exp_sum_fn exp_sum;                    /* softmax's exponentials */
} kernel_table;

typedef struct type_traits {
    int dot_type;           /* activation format for vec_dot; -1 if unsupported */
    to_float_fn to_float;
    from_float_fn from_float; /* quantize (weights or activations) */
    vec_dot_fn vec_dot;       /* the scalar reference dot (models use their kernel table) */
} type_traits;

/* forward declarations of the reference kernels (section 6a) */
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
 * row count is a multiple of 8 (see repack_weight, section 8).
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
    return type == SLM_TYPE_Q4_0 ? 144 : type == SLM_TYPE_Q8_0 ? 272 : type == SLM_TYPE_Q5_0 ? 176 : 0;
}

/* Rearrange 8 GGUF rows (rb bytes apart, nb blocks each) into one x8 group.
   (Done for every matrix at load: written for speed, per row and block.) */
static void x8_pack(int type, const uint8_t *src, size_t rb, int nb, uint8_t *dst) {
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

/* ========================================================================== */
/* 6. Kernels                                                                 */
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

/* --- K-quant and IQ4_XS weight quantizers ---------------------------------- */
/*
 * The published k-quant method (llama.cpp's quantize_row_*_K_ref), written
 * anew: each sub-block gets a scale (and min) from a weighted least-squares
 * search, then the sub-block scales are themselves quantized to 4 or 6 bits
 * against the super-block maximum, and finally every value is re-quantized
 * with the scales exactly as the decoder will reconstruct them.
 */

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


/* -------------------------------------------------------------------------- */
/* 6b. x86-64 AVX2 (+FMA, F16C)                                               */
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


SLM_TARGET_END
#endif /* SLM_AVX2 */

/* -------------------------------------------------------------------------- */
/* 6c. x86 SSE4.1 (+SSSE3): x86-64 machines without AVX2 (Atom, Celeron)      */
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
static inline int32x4_t dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    return vpadalq_s16(acc, vmlal_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), vget_high_s8(a), vget_high_s8(b)));
#endif
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

static float dot_q5_0_neon(int n, const void *w, const void *a) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float32x4_t s = vdupq_n_f32(0);
    for (int i = 0; i < n / 32; i++, x += 22, y += 34) {
        int8x16_t lo, hi;
        q5_0_unpack_neon(x, &lo, &hi);
        const int32x4_t p = i8dot_neon(lo, hi, ld_s8_neon(y + 2), ld_s8_neon(y + 18));
        s = FMA_NEON(s, vcvtq_f32_s32(p), vdupq_n_f32(h2f_neon(x) * h2f_neon(y)));
    }
    return hsum_neon(s);
}

static void dot4_q5_0_neon(int n, const void *w, const void *a, size_t a_rb, float *yo, int64_t ldy) {
    const uint8_t *x = (const uint8_t *)w, *y = (const uint8_t *)a;
    float32x4_t s[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    for (int i = 0; i < n / 32; i++, x += 22, y += 34) {
        int8x16_t x0, x1;
        q5_0_unpack_neon(x, &x0, &x1);
        const float dx = h2f_neon(x);
        s[0] = dot4_step_neon(s[0], x0, x1, dx, y);
        s[1] = dot4_step_neon(s[1], x0, x1, dx, y + a_rb);
        s[2] = dot4_step_neon(s[2], x0, x1, dx, y + 2 * a_rb);
        s[3] = dot4_step_neon(s[3], x0, x1, dx, y + 3 * a_rb);
    }
    for (int k = 0; k < 4; k++) yo[k * ldy] = hsum_neon(s[k]);
}

/* Q4_1/Q5_1 (bits 5: the fifth bits from qh): the min terms m * s summed
   apart, as the reference */
static inline float32x4_t q8_1_step_neon(float32x4_t s, float *sm, int8x16_t x0, int8x16_t x1, float xd, float xm,
                                         const uint8_t *yb) {
    *sm += xm * h2f_neon(yb + 2);
    const int32x4_t p = i8dot_neon(x0, x1, ld_s8_neon(yb + 4), ld_s8_neon(yb + 20));
    return FMA_NEON(s, vcvtq_f32_s32(p), vdupq_n_f32(xd * h2f_neon(yb)));
}

static SLM_ALWAYS_INLINE void k41_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                       int64_t ldy, int bits) {
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
        s0 = q8_1_step_neon(s0, &m0, lo, hi, xd, xm, y);
        if (nt == 4) {
            s1 = q8_1_step_neon(s1, &m1, lo, hi, xd, xm, y + rb);
            s2 = q8_1_step_neon(s2, &m2, lo, hi, xd, xm, y + 2 * rb);
            s3 = q8_1_step_neon(s3, &m3, lo, hi, xd, xm, y + 3 * rb);
        }
    }
    yo[0] = hsum_neon(s0) + m0;
    if (nt == 4) yo[ldy] = hsum_neon(s1) + m1, yo[2 * ldy] = hsum_neon(s2) + m2, yo[3 * ldy] = hsum_neon(s3) + m3;
}

static SLM_ALWAYS_INLINE void q4_1_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    k41_neon(n, x, y, rb, nt, yo, ldy, 4);
}

static SLM_ALWAYS_INLINE void q5_1_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    k41_neon(n, x, y, rb, nt, yo, ldy, 5);
}

static SLM_ALWAYS_INLINE void iq4_nl_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                          int64_t ldy) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    for (int i = 0; i < n / 32; i++, x += 18, y += 34) {
        const uint8x16_t v = vld1q_u8(x + 2);
        const int8x16_t lo = iq4_lookup_neon(nib_lo_neon(v)), hi = iq4_lookup_neon(nib_hi_neon(v));
        const float xd = h2f_neon(x);
        s0 = dot4_step_neon(s0, lo, hi, xd, y);
        if (nt == 4) {
            s1 = dot4_step_neon(s1, lo, hi, xd, y + rb);
            s2 = dot4_step_neon(s2, lo, hi, xd, y + 2 * rb);
            s3 = dot4_step_neon(s3, lo, hi, xd, y + 3 * rb);
        }
    }
    yo[0] = hsum_neon(s0);
    if (nt == 4) yo[ldy] = hsum_neon(s1), yo[2 * ldy] = hsum_neon(s2), yo[3 * ldy] = hsum_neon(s3);
}

/* K-quant steps, one token each: 32 weights (q0|q1) against 32 Q8_K
   values, times the sub-block scale(s), added to 4 int32 lanes */
static inline int32x4_t k_step_neon(int32x4_t acc, int8x16_t q0, int8x16_t q1, int32_t sc, const uint8_t *q8) {
    const int32x4_t p = dot16_neon(dot16_neon(vdupq_n_s32(0), q0, ld_s8_neon(q8)), q1, ld_s8_neon(q8 + 16));
    return vmlaq_n_s32(acc, p, sc);
}

/* the same for two sub-blocks of 16 (scales sc0, sc1) */
static inline int32x4_t k_step2_neon(int32x4_t acc, int8x16_t q0, int8x16_t q1, int32_t sc0, int32_t sc1,
                                     const uint8_t *q8) {
    acc = vmlaq_n_s32(acc, dot16_neon(vdupq_n_s32(0), q0, ld_s8_neon(q8)), sc0);
    return vmlaq_n_s32(acc, dot16_neon(vdupq_n_s32(0), q1, ld_s8_neon(q8 + 16)), sc1);
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
                                       int64_t ldy, int bits) {
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
            K_TOKENS(k_step_neon, a0, a1, sc[2 * j]);
            q8 += 32;
            K_TOKENS(k_step_neon, c0, c1, sc[2 * j + 1]);
        }
#define IMIN(yb) k4_imin_neon(mins, yb)
        K_FINISH_NEON(IMIN);
#undef IMIN
    }
    K_RESULT_NEON();
}

static SLM_ALWAYS_INLINE void q4_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    k45_neon(n, x, y, rb, nt, yo, ldy, 4);
}

static SLM_ALWAYS_INLINE void q5_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
    k45_neon(n, x, y, rb, nt, yo, ldy, 5);
}

/* Q6_K, Q2_K, Q3_K: value 128h + 32k + l, sub-blocks of 16 */
static SLM_ALWAYS_INLINE void q6_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
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
                K_TOKENS(k_step2_neon, q0, q1, sc[8 * h + 2 * k], sc[8 * h + 2 * k + 1]);
            }
        }
        K_FINISH_NEON(K_NO_MINS);
    }
    K_RESULT_NEON();
}

static SLM_ALWAYS_INLINE void q2_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
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
                K_TOKENS(k_step2_neon, q0, q1, x[s] & 15, x[s + 1] & 15);
            }
        }
#define IMIN(yb) q2_k_imin_neon(m0, m1, yb)
        K_FINISH_NEON(IMIN);
#undef IMIN
    }
    K_RESULT_NEON();
}

static SLM_ALWAYS_INLINE void q3_k_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                        int64_t ldy) {
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
                K_TOKENS(k_step2_neon, q0, q1, sc[s] - 32, sc[s + 1] - 32);
            }
        }
        K_FINISH_NEON(K_NO_MINS);
    }
    K_RESULT_NEON();
}

static SLM_ALWAYS_INLINE void iq4_xs_neon(int n, const uint8_t *x, const uint8_t *y, size_t rb, int nt, float *yo,
                                          int64_t ldy) {
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
            K_TOKENS(k_step_neon, q0, q1, iq4_xs_scale(x, s));
        }
        K_FINISH_NEON(K_NO_MINS);
    }
    K_RESULT_NEON();
}
#undef K_FINISH_NEON
#undef K_RESULT_NEON
#undef K_NO_MINS

K_ENTRIES(q4_1, neon)
K_ENTRIES(q5_1, neon)
K_ENTRIES(iq4_nl, neon)
K_ENTRIES(q2_k, neon)
K_ENTRIES(q3_k, neon)
K_ENTRIES(q4_k, neon)
K_ENTRIES(q5_k, neon)
K_ENTRIES(q6_k, neon)
K_ENTRIES(iq4_xs, neon)

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


#if defined(__ARM_FEATURE_DOTPROD) && defined(SLM_NEON_F16)
/* x8 kernels (layouts in section 5) with SDOT: each 16-byte half of an x8
   step holds 4 rows x 4 columns, which is what SDOT's 4 lanes take against
   one broadcast group of 4 activations; lanes are rows, as on AVX2, and the
   per-block float steps are the AVX2 kernels' (same results). Nibbles and
   5-bit values are unsigned, so they go in as non-negative int8 and the
   offset comes back as 8 (16) times the block's activation sum. */
static SLM_ALWAYS_INLINE void gemm_x8_neon(int type, int n, const uint8_t *w, const uint8_t *a, size_t a_rb, int nt,
                                           float *y, int64_t ldy) {
    const int bb = x8_block_bytes(type), nib = type == SLM_TYPE_Q5_0 ? 48 : 16;
    const int32_t off = type == SLM_TYPE_Q4_0 ? 8 : type == SLM_TYPE_Q5_0 ? 16 : 0;
    const uint8x16_t m4 = vdupq_n_u8(15), b4 = vdupq_n_u8(16);
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
                    s[t][0] = vdotq_s32(s[t][0], v0, ab), s[t][1] = vdotq_s32(s[t][1], v1, ab);
                }
            }
        } else {
            const uint8x16_t h0 = vld1q_u8(w + 16), h1 = vld1q_u8(w + 32);
            SLM_UNROLL(4)
            for (int c = 0; c < 4; c++) {
                const uint8x16_t v0 = vld1q_u8(w + nib + 32 * c), v1 = vld1q_u8(w + nib + 32 * c + 16);
                uint8x16_t lo0 = vandq_u8(v0, m4), lo1 = vandq_u8(v1, m4), hi0 = vshrq_n_u8(v0, 4), hi1 = vshrq_n_u8(v1, 4);
                if (type == SLM_TYPE_Q5_0) { /* bit c (low half) or 4 + c (high half) to bit 4 */
                    const int8x16_t up = vdupq_n_s8((int8_t)(4 - c)), down = vdupq_n_s8((int8_t)-c);
                    lo0 = vorrq_u8(lo0, vandq_u8(vshlq_u8(h0, up), b4)), lo1 = vorrq_u8(lo1, vandq_u8(vshlq_u8(h1, up), b4));
                    hi0 = vorrq_u8(hi0, vandq_u8(vshlq_u8(h0, down), b4)), hi1 = vorrq_u8(hi1, vandq_u8(vshlq_u8(h1, down), b4));
                }
                SLM_UNROLL(4)
                for (int t = 0; t < nt; t++) {
                    const uint8_t *at = a + (size_t)t * a_rb + 8 * c;
                    const int8x16_t al = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at)));
                    const int8x16_t ah = vreinterpretq_s8_s32(vdupq_n_s32((int32_t)ld_u32(at + 4)));
                    s[t][0] = vdotq_s32(vdotq_s32(s[t][0], vreinterpretq_s8_u8(lo0), al), vreinterpretq_s8_u8(hi0), ah);
                    s[t][1] = vdotq_s32(vdotq_s32(s[t][1], vreinterpretq_s8_u8(lo1), al), vreinterpretq_s8_u8(hi1), ah);
                }
            }
        }
        const float32x4_t dw0 = ld_f16_neon(w), dw1 = ld_f16_neon(w + 8);
        SLM_UNROLL(4)
        for (int t = 0; t < nt; t++) {
            const uint8_t *at = a + (size_t)t * a_rb;
            const int32x4_t corr = vdupq_n_s32(off * (int32_t)ld_u32(at + 36));
            const float32x4_t da = vdupq_n_f32(ld_f32(at + 32));
            acc[t][0] = vfmaq_f32(acc[t][0], vcvtq_f32_s32(vsubq_s32(s[t][0], corr)), vmulq_f32(dw0, da));
            acc[t][1] = vfmaq_f32(acc[t][1], vcvtq_f32_s32(vsubq_s32(s[t][1], corr)), vmulq_f32(dw1, da));
        }
    }
    for (int t = 0; t < nt; t++) vst1q_f32(y + t * ldy, acc[t][0]), vst1q_f32(y + t * ldy + 4, acc[t][1]);
}

/* constant token counts, so the per-token accumulators stay in registers */
#define X8_NEON_ENTRY(name, type)                                                                                    \
    static void name(int n, const void *w, const void *a, size_t a_rb, int nt, float *y, int64_t ldy) {             \
        const uint8_t *pw = (const uint8_t *)w, *pa = (const uint8_t *)a;                                          \
        if (nt == 1) gemm_x8_neon(type, n, pw, pa, a_rb, 1, y, ldy);                                               \
        else if (nt == 4) gemm_x8_neon(type, n, pw, pa, a_rb, 4, y, ldy);                                          \
        else gemm_x8_neon(type, n, pw, pa, a_rb, nt, y, ldy);                                                      \
    }
X8_NEON_ENTRY(gemm_q4_0x8_neon, SLM_TYPE_Q4_0)
X8_NEON_ENTRY(gemm_q5_0x8_neon, SLM_TYPE_Q5_0)
X8_NEON_ENTRY(gemm_q8_0x8_neon, SLM_TYPE_Q8_0)
#undef X8_NEON_ENTRY
#endif /* __ARM_FEATURE_DOTPROD && SLM_NEON_F16 */

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
/* 6f. Arm Helium (M-profile vector extension, Cortex-M55)                    */
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
/* 6g. One kernel table per instruction set                                   */
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
                [SLM_TYPE_Q5_0] = gemm_q5_0x8_avx2},
    .to_float = {[SLM_TYPE_F16] = f16_to_float_avx2, [SLM_TYPE_BF16] = bf16_to_float_avx2},
    .from_float = {[SLM_TYPE_F16] = f16_from_float_avx2, [SLM_TYPE_BF16] = bf16_from_float_avx2,
                   [SLM_TYPE_Q8_0] = q8_0_from_float_avx2, [SLM_TYPE_Q8_1] = q8_1_from_float_avx2,
                   [SLM_TYPE_Q8_K] = q8_k_from_float_avx2},
    .dot_rows_f16 = dot_rows_f16_avx2,
    .exp_sum = exp_sum_avx2,
};
#endif

#ifdef SLM_NEON
static const kernel_table KERNELS_NEON = {
    SLM_SIMD_NAME, SLM_ISA_NEON, &KERNELS_SCALAR,
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
#if defined(__ARM_FEATURE_DOTPROD) && defined(SLM_NEON_F16)
    .gemm_x8 = {[SLM_TYPE_Q4_0] = gemm_q4_0x8_neon, [SLM_TYPE_Q8_0] = gemm_q8_0x8_neon,
                [SLM_TYPE_Q5_0] = gemm_q5_0x8_neon},
#endif
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
/* 6h. Choosing a table: what the CPU and the OS support                      */
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
        if (t->to_float[i]) out->to_float[i] = t->to_float[i];
        if (t->from_float[i]) out->from_float[i] = t->from_float[i];
    }
    if (t->dot_rows_f16) out->dot_rows_f16 = t->dot_rows_f16;
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

static const char *const ISA_NAMES[SLM_ISA_COUNT] = {"best", "scalar", "sse4", "avx2", "avx512", "neon", "rvv", "mve"};

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

/* ========================================================================== */
/* 7. Operators                                                               */
/* ========================================================================== */
/*
 * The forward pass runs inside one parallel region per chunk of tokens.
 * Every operator takes (ith, nth), does its share of the work, and the
 * caller puts a barrier between operators that depend on each other.
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

/* A weight matrix: n_out rows of n_in values of `type`. */
typedef struct weight {
    const uint8_t *data;
    int type;
    int64_t n_in, n_out;
    size_t rb;        /* bytes per row */
    vec_dot_fn dot;   /* the model's kernels for this type */
    vec_dot4_fn dot4; /* (NULL: token by token) */
    gemm_x8_fn x8;    /* set when the rows are stored as x8 groups (section 5) */
} weight;

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
static int act_type(const weight *w) { return w->x8 ? ACT_Q8_0X : TRAITS[w->type].dot_type; }

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

/* Operators of one forward pass at most: per layer and for the rest. */
#define OPS_PER_LAYER 14
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
    return (int)SLM_MAX(1, SLM_MIN(c, n));
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
        if (w->x8) matmul_x8(w, jb->xq, jb->xq_rb, n_tok, jb->y, jb->ldy, b, e);
        else matmul_k(w->dot, w->dot4, w, jb->xq, jb->xq_rb, n_tok, jb->y, jb->ldy, b, e);
    }
    op_end(tm, total);
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
    int swa_pattern;  /* every swa_pattern-th layer is global, the others use
                         the sliding window (0 = no sliding window) */
    float swa_base;   /* rope base of sliding layers (0 = the global base) */
    int big_layers;   /* n_layer of the variant whose query scale is
                         1/sqrt(n_embd/n_head) (gemma 27B), 0 = none */
} arch_info;

/* Mistral, SmolLM2, TinyLlama and Llama 3 GGUFs use "llama"; phi3 covers
   Phi-3, Phi-3.5 and Phi-4-mini. */
static const arch_info ARCHS[] = {
    {"llama", 0, ACT_SILU, 0, 0, 0.0f, 0},
    {"qwen2", 1, ACT_SILU, 0, 0, 0.0f, 0},
    {"qwen3", 1, ACT_SILU, 0, 0, 0.0f, 0},
    {"phi3", 1, ACT_SILU, 0, 0, 0.0f, 0},
    {"gemma", 1, ACT_GELU, 1, 0, 0.0f, 0},
    {"gemma2", 1, ACT_GELU, 1, 2, 0.0f, 46},
    {"gemma3", 1, ACT_GELU, 1, 6, 10000.0f, 62},
};

enum { SRC_MMAP = 0, SRC_OWNED = 1, SRC_CALLER = 2 };

/* The vocabulary lives in section 10. */
struct vocab;
static slm_status vocab_load(slm_model *m, slm_error *err);
static void vocab_free(slm_model *m);

typedef struct layer {
    const float *attn_norm, *q_norm, *k_norm, *post_attn_norm, *ffn_norm, *post_ffn_norm;
    const float *bq, *bk, *bv;
    weight wq, wk, wv, wqkv, wo, w_gate, w_up, w_down; /* wqkv / fused up: phi3 */
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
    int repack;       /* params.repack: x8 layouts allowed */
    kernel_table kern; /* the kernels of the chosen ISA, every entry filled (6h) */

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
    struct vocab *vocab; /* NULL if the file has no vocabulary */
    double load_ms;
    unsigned dot_types; /* bit per dot-partner type used */
};

static SLM_PRINTF(3, 4) void logf_(const slm_model *m, int level, const char *fmt, ...) {
    if (!m->log) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsn(buf, sizeof buf, fmt, ap);
    va_end(ap);
    m->log(m->log_user, level, buf);
}

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
    B(bind_v(m, "rope_factors_long.weight", m->n_rot / 2, 0, &m->rope_long, err));
    B(bind_v(m, "rope_factors_short.weight", m->n_rot / 2, 0, &m->rope_short, err));
    if (!m->rope_long != !m->rope_short)
        return seterr(err, SLM_ERR_FORMAT, "rope_factors_long and rope_factors_short must come together");

    m->layers = (layer *)xcalloc(&m->a, (size_t)m->n_layer, sizeof(layer));
    if (!m->layers) return seterr(err, SLM_ERR_NOMEM, "out of memory");
    B(swa_layers(m, err));
    for (int il = 0; il < m->n_layer; il++) {
        layer *L = &m->layers[il];
#define NM(s) (fmt_sn(name, sizeof name, "blk.%d.%s", il, s), name)
        B(bind_v(m, NM("attn_norm.weight"), E, 1, &L->attn_norm, err));
        /* q, k, v as three matrices, or fused into one (phi3) */
        B(bind_w(m, NM("attn_qkv.weight"), E, Q + 2 * KV, 0, &L->wqkv, err));
        B(bind_w(m, NM("attn_q.weight"), E, Q, !L->wqkv.data, &L->wq, err));
        B(bind_w(m, NM("attn_k.weight"), E, KV, !L->wqkv.data, &L->wk, err));
        B(bind_w(m, NM("attn_v.weight"), E, KV, !L->wqkv.data, &L->wv, err));
        if (L->wqkv.data && (L->wq.data || L->wk.data || L->wv.data))
            return seterr(err, SLM_ERR_FORMAT, "layer %d has both attn_qkv and separate q/k/v weights", il);
        B(bind_w(m, NM("attn_output.weight"), Q, E, 1, &L->wo, err));
        B(bind_v(m, NM("attn_q.bias"), Q, 0, &L->bq, err));
        B(bind_v(m, NM("attn_k.bias"), KV, 0, &L->bk, err));
        B(bind_v(m, NM("attn_v.bias"), KV, 0, &L->bv, err));
        B(bind_v(m, NM("attn_q_norm.weight"), m->head_dim, 0, &L->q_norm, err));
        B(bind_v(m, NM("attn_k_norm.weight"), m->head_dim, 0, &L->k_norm, err));
        B(bind_v(m, NM("post_attention_norm.weight"), E, 0, &L->post_attn_norm, err));
        B(bind_v(m, NM("ffn_norm.weight"), E, 1, &L->ffn_norm, err));
        /* gate and up as two matrices, or one of 2F rows, gate first (phi3) */
        B(bind_w(m, NM("ffn_gate.weight"), E, F, 0, &L->w_gate, err));
        B(bind_w(m, NM("ffn_up.weight"), E, L->w_gate.data ? F : 2 * F, 1, &L->w_up, err));
        B(bind_w(m, NM("ffn_down.weight"), F, E, 1, &L->w_down, err));
        B(bind_v(m, NM("post_ffw_norm.weight"), E, 0, &L->post_ffn_norm, err));
#undef NM
        /* sliding layers have their own rope base and no frequency scaling */
        L->rope_base = L->swa ? m->rope_base_swa : m->rope_base;
        L->rope_freq_scale = L->swa ? 1.0f : m->rope_freq_scale;
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
    p->repack = 1;
}

/* Rearrange every matrix that has an x8 kernel into x8 groups, in place (the
   model's own buffer or its private mapping). Tied matrices share data and
   are rearranged once. */
static slm_status repack_weights(slm_model *m, slm_error *err) {
    const size_t cap = 2 + 8 * (size_t)m->n_layer;
    weight **ws = (weight **)xalloc(&m->a, cap * sizeof(weight *));
    int n = 0;
    if (!ws) return seterr(err, SLM_ERR_NOMEM, "out of memory repacking the weights");
    ws[n++] = &m->tok_embd;
    ws[n++] = &m->output;
    for (int il = 0; il < m->n_layer; il++) {
        layer *L = &m->layers[il];
        weight *lw[8] = {&L->wq, &L->wk, &L->wv, &L->wqkv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 8; k++) ws[n++] = lw[k];
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
    if ((st = vocab_load(m, err)) != SLM_OK) return st;
    if (m->vocab_only) {
        m->n_vocab = slm_vocab_size(m);
        return SLM_OK;
    }
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(ARCHS[i].name, m->arch_name) == 0) m->arch = &ARCHS[i];
    if (!m->arch) return seterr(err, SLM_ERR_UNSUPPORTED, "architecture '%s' is not supported", m->arch_name);
    if ((st = load_hparams(m, err)) != SLM_OK) return st;
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

#if !defined(SLM_NO_STDIO)

/* Read a whole file into memory from the model's allocator. */
static slm_status read_file(slm_model *m, const char *path, slm_error *err) {
    int oom;
    FILE *f = file_open(&m->a, path, "rb", &oom);
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
    uint8_t *buf = (uint8_t *)xalloc(&m->a, (size_t)sz);
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
        xfree(&m->a, buf, (size_t)sz);
        return seterr(err, SLM_ERR_IO, "short read on '%s': %zu of %lld bytes", path, got, sz);
    }
    m->bytes = buf;
    m->size = (size_t)sz;
    m->source = SRC_OWNED;
    return SLM_OK;
}
#else
static slm_status read_file(slm_model *m, const char *path, slm_error *err) {
    (void)m;
    return seterr(err, SLM_ERR_UNSUPPORTED, "cannot read '%s': built with SLM_NO_STDIO, without file access (models load with slm_model_load_memory)", path);
}
#endif

#if defined(SLM_HAVE_MMAP) && defined(_WIN32)
/* Map a file copy-on-write (FILE_MAP_COPY: matrices repacked at load become
   private copies of their pages, the rest stays the file's); returns 0 (and
   no error) if mapping is not possible so that the caller falls back to
   reading. */
static int map_file(slm_model *m, const char *path, slm_error *err, slm_status *st) {
    size_t nb = 0;
    wchar_t *w;
    if (!wide_path(&m->a, path, &w, &nb)) {
        *st = seterr(err, SLM_ERR_NOMEM, "out of memory opening '%s'", path);
        return 0;
    }
    const DWORD share = FILE_SHARE_READ | FILE_SHARE_DELETE;
    HANDLE fh = w ? CreateFileW(w, GENERIC_READ, share, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL)
                  : CreateFileA(path, GENERIC_READ, share, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (w) xfree(&m->a, w, nb);
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
    m->bytes = (const uint8_t *)p;
    m->size = (size_t)sz.QuadPart;
    m->source = SRC_MMAP;
    return 1;
}
#elif defined(SLM_HAVE_MMAP)
/* Map a file read-only; returns 0 (and no error) if mapping is not possible
   so that the caller falls back to reading. */
static int map_file(slm_model *m, const char *path, slm_error *err, slm_status *st) {
    int fd = open(path, O_RDONLY);
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
    double t0 = now_ms();
    slm_model *m;
    slm_status st0 = model_new(params, &m, err);
    if (st0 != SLM_OK) return st0;
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
    *out = kv->str[e];
    if (len) *len = (size_t)ld_u64(m->g.data + (kv->type == SLM_META_ARRAY ? kv->elem_off[e] : kv->value_off - 8));
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
    /* KV cache: per layer K [n_ctx][kv_dim], then V transposed [kv_dim][n_ctx]
       (F32, F16) or by position like K (Q8_0) */
    uint8_t *kv;
    size_t kv_bytes, kv_row;
    /* scratch, sized for n_batch tokens */
    float *x, *xb, *xo, *qkv, *att, *gu;
    float *scores;       /* attention scratch: n_thr_alloc * att_stride floats */
    size_t att_stride;
    int n_thr_alloc;
    uint8_t *act[N_ACT_SLOTS];
    size_t act_size;
    float *logits;
    size_t logits_cap;   /* floats */
    size_t scratch_bytes;
    const float *rope_factors;
    sbarrier bar;        /* the forward pass's threads */
    int bar_ok;
    op_slot *ops;        /* work-unit counters: n_ops operators of a forward pass */
    size_t n_ops;
    double width_ms[2];  /* single-token forward pass, ms (moving average): 1 thread, n_threads */
    int width_calls;
};

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

/* Resolved parameters and the size of every buffer a session allocates. */
typedef struct session_plan {
    int n_ctx, n_batch, n_threads, kv_type, logits_all;
    size_t kv_bytes, kv_row;
    size_t x, xb, xo, qkv, att, gu, scores, act, logits; /* element counts / bytes */
    size_t n_ops;                                         /* work-unit counters */
    size_t att_stride;
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
    const size_t nb = (size_t)pl->n_batch, E = (size_t)m->n_embd, F = (size_t)m->n_ff;
    pl->kv_row = row_bytes(pl->kv_type, m->kv_dim);
    double kvd = 2.0 * m->n_layer * (double)pl->n_ctx * (double)pl->kv_row;
    if (kvd > (double)SIZE_MAX / 2) return seterr(err, SLM_ERR_NOMEM, "KV cache for n_ctx %d is too large", pl->n_ctx);
    pl->kv_bytes = (size_t)kvd;
    pl->x = pl->xb = pl->xo = nb * E;
    pl->qkv = nb * (size_t)(m->q_dim + 2 * m->kv_dim);
    pl->att = nb * (size_t)m->q_dim;
    pl->gu = nb * 2 * F;
    /* per thread: scores, the query in the cache type, then the probabilities
       in the cache type (or, for Q8_0, one V row as floats) */
    pl->att_stride = (size_t)pl->n_ctx + (size_t)m->head_dim + (size_t)SLM_MAX(pl->n_ctx, m->head_dim) + 16;
    pl->scores = (size_t)pl->n_threads * pl->att_stride * (size_t)(m->n_head / m->n_head_kv); /* a slot per head of a group */
    /* activation rows in the widest dot-partner format (f32 is the widest) */
    size_t max_in = (size_t)SLM_MAX(m->max_in, m->n_embd);
    pl->act = nb * row_bytes(SLM_TYPE_F32, (int64_t)max_in);
    pl->logits = (size_t)m->n_vocab * (pl->logits_all ? nb : 1);
    pl->n_ops = (size_t)m->n_layer * OPS_PER_LAYER + OPS_EXTRA;
    pl->total = pl->kv_bytes + sizeof(float) * (pl->x + pl->xb + pl->xo + pl->qkv + pl->att + pl->gu + pl->scores +
                                                pl->logits) +
                N_ACT_SLOTS * pl->act + pl->n_ops * sizeof(op_slot) + sizeof(slm_session);
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
    for (int i = 0; i < N_ACT_SLOTS; i++) xfree(&a, s->act[i], s->act_size);
    xfree(&a, s->logits, s->logits_cap * sizeof(float));
    xfree(&a, s->ops, s->n_ops * sizeof(op_slot));
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
    s->n_ops = pl.n_ops;
    s->ops = (op_slot *)xalloc(&s->a, pl.n_ops * sizeof(op_slot));
    int ok = s->kv && s->x && s->xb && s->xo && s->qkv && s->att && s->gu && s->scores && s->logits && s->ops;
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
    s->width_ms[0] = s->width_ms[1] = 0;
}

/* --- the forward pass --------------------------------------------------------- */

static inline uint8_t *kv_k(const slm_session *s, int il) { return s->kv + (size_t)(2 * il) * (size_t)s->n_ctx * s->kv_row; }
static inline uint8_t *kv_v(const slm_session *s, int il) { return s->kv + (size_t)(2 * il + 1) * (size_t)s->n_ctx * s->kv_row; }

/* Token t's activations for w, in slot `slot` (row t of the dot partner). */
static void act_tok(const slm_session *s, const weight *w, const float *x, int slot, int t) {
    const int dt = act_type(w);
    act_from_float(&s->m->kern, dt, x, s->act[slot] + (size_t)t * act_row_bytes(dt, w->n_in), w->n_in);
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
    int k0 = 0;
    if (L->swa && m->n_swa > 0 && p - m->n_swa + 1 > 0) k0 = p - m->n_swa + 1;
    const int nk = p - k0 + 1;
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
    int k0 = 0;
    if (L->swa && m->n_swa > 0 && p - m->n_swa + 1 > 0) k0 = p - m->n_swa + 1;
    const int nk = p - k0 + 1;
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

/* Run n tokens (n <= n_batch) at positions pos0.., as one thread of the team.
   out_first: first token whose logits are wanted (n = none); logits rows go
   to `logits`. Every step is an operator of work units (section 7): the
   element-wise steps by token, the products by chunks of rows, attention
   by (token, head group). */
static void forward(slm_session *s, const int32_t *tok, int n, int pos0, int out_first, float *logits, team *tm) {
    const slm_model *m = s->m;
    const int E = m->n_embd, QD = m->q_dim, KVD = m->kv_dim, F = m->n_ff, HD = m->head_dim;
    const int QKV = QD + 2 * KVD;
    float *x = s->x, *xb = s->xb, *xo = s->xo, *qkv = s->qkv, *att = s->att, *gu = s->gu;
    float *scores = s->scores + (size_t)tm->ith * s->att_stride * (size_t)(m->n_head / m->n_head_kv);
    int u;

    /* embeddings (act[1] row t: room for one embedding row) */
    while ((u = unit_next(tm, n)) >= 0) {
        weight_row(&m->tok_embd, tok[u], s->act[1] + (size_t)u * m->tok_embd.rb, x + (size_t)u * E);
        if (m->embd_mult != 1.0f)
            for (int i = 0; i < E; i++) x[(size_t)u * E + i] *= m->embd_mult;
    }
    op_end(tm, n);

    for (int il = 0; il < m->n_layer; il++) {
        const layer *L = &m->layers[il];
        const layer *P = il ? &m->layers[il - 1] : NULL;
        rope_params rp;
        rope_for_layer(s, L, &rp);
        /* k and v share q's converted rows when their dot type is the same;
           a third dot type is converted into slot 1 once k is done */
        const int fused = L->wqkv.data != NULL;
        const int dq = act_type(fused ? &L->wqkv : &L->wq);
        const int dk = fused ? dq : act_type(&L->wk), dv = fused ? dq : act_type(&L->wv);
        const int v_late = dv != dq && dv != dk;

        /* the previous layer's FFN residual, then the attention norm */
        while ((u = unit_next(tm, n)) >= 0) {
            float *xt = x + (size_t)u * E, *bt = xb + (size_t)u * E, *ot = xo + (size_t)u * E;
            if (P) {
                if (P->post_ffn_norm) rmsnorm(ot, ot, P->post_ffn_norm, E, m->eps);
                for (int i = 0; i < E; i++) xt[i] += ot[i];
            }
            rmsnorm(bt, xt, L->attn_norm, E, m->eps);
            act_tok(s, fused ? &L->wqkv : &L->wq, bt, 0, u);
            if (dk != dq) act_tok(s, &L->wk, bt, 1, u);
        }
        op_end(tm, n);
        {
            mm_job j[3];
            int nj = 0;
            if (fused) {
                j[nj++] = job_of(s, &L->wqkv, 0, qkv, QKV);
            } else {
                j[nj++] = job_of(s, &L->wq, 0, qkv, QKV);
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
            float cs[1024];
            if (L->bq) for (int i = 0; i < QD; i++) q[i] += L->bq[i];
            if (L->bk) for (int i = 0; i < KVD; i++) k[i] += L->bk[i];
            if (L->bv) for (int i = 0; i < KVD; i++) v[i] += L->bv[i];
            if (L->q_norm) for (int h = 0; h < m->n_head; h++) rmsnorm(q + h * HD, q + h * HD, L->q_norm, HD, m->eps);
            if (L->k_norm) for (int h = 0; h < m->n_head_kv; h++) rmsnorm(k + h * HD, k + h * HD, L->k_norm, HD, m->eps);
            if (m->n_rot > 0) {
                rope_cache(&rp, pos0 + u, cs);
                rope_apply(q, m->n_head, HD, &rp, cs);
                rope_apply(k, m->n_head_kv, HD, &rp, cs);
            }
            store_kv(s, il, pos0 + u, k, v);
        }
        op_end(tm, n);

        /* attention, by (token, head), or by (token, KV head) where the heads
           of a KV head go together */
        {
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
        while ((u = unit_next(tm, n)) >= 0) act_tok(s, &L->wo, att + (size_t)u * QD, 0, u);
        op_end(tm, n);
        {
            mm_job j = job_of(s, &L->wo, 0, xo, E);
            matmul_units(tm, &j, 1, n);
        }
        /* residual, FFN norm; gate in gu[t][0, F), up in gu[t][F, 2F); a fused
           up matrix (phi3) writes both at once */
        const weight *wg = L->w_gate.data ? &L->w_gate : NULL;
        const int dg = act_type(wg ? wg : &L->w_up), du = act_type(&L->w_up);
        while ((u = unit_next(tm, n)) >= 0) {
            float *xt = x + (size_t)u * E, *bt = xb + (size_t)u * E, *ot = xo + (size_t)u * E;
            if (L->post_attn_norm) rmsnorm(ot, ot, L->post_attn_norm, E, m->eps);
            for (int i = 0; i < E; i++) xt[i] += ot[i];
            rmsnorm(bt, xt, L->ffn_norm, E, m->eps);
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
            ffn_act(m, g, g + F, F);
            act_tok(s, &L->w_down, g, 0, u);
        }
        op_end(tm, n);
        {
            mm_job j = job_of(s, &L->w_down, 0, xo, E);
            matmul_units(tm, &j, 1, n);
        }
    }

    /* the last FFN residual, then the output head for the tokens whose
       logits are wanted */
    const int no = n - out_first;
    if (no <= 0) return;
    const layer *P = &m->layers[m->n_layer - 1];
    while ((u = unit_next(tm, no)) >= 0) {
        const int t = out_first + u;
        float *xt = x + (size_t)t * E, *ot = xo + (size_t)t * E, *bt = xb + (size_t)u * E;
        if (P->post_ffn_norm) rmsnorm(ot, ot, P->post_ffn_norm, E, m->eps);
        for (int i = 0; i < E; i++) xt[i] += ot[i];
        rmsnorm(bt, xt, m->output_norm, E, m->eps);
        act_tok(s, &m->output, bt, 0, u);
    }
    op_end(tm, no);
    {
        mm_job j = job_of(s, &m->output, 0, logits, m->n_vocab);
        matmul_units(tm, &j, 1, no);
    }
    if (m->final_softcap > 0) {
        const float cap = m->final_softcap;
        while ((u = unit_next(tm, no)) >= 0) {
            float *lt = logits + (size_t)u * m->n_vocab;
            for (int i = 0; i < m->n_vocab; i++) lt[i] = cap * tanhf(lt[i] / cap);
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

slm_status slm_decode(slm_session *s, const int32_t *tokens, int32_t n, slm_error *err) {
    clearerr_(err);
    if (!s) return seterr(err, SLM_ERR_INVALID_ARG, "session is NULL");
    if (n <= 0 || !tokens) return seterr(err, SLM_ERR_INVALID_ARG, "no tokens to decode");
    const slm_model *m = s->m;
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

/* ========================================================================== */
/* 9b. Session state: save and restore                                        */
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
 * Layers with other state (recurrent layers) add their own required
 * section; a file without it is then refused by the new reader, and an
 * old reader refuses the new section.
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
    return (size_t)s->m->n_layer * 2 * (size_t)pos * s->kv_row;
}

static size_t state_pad8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t slm_session_state_size(const slm_session *s, int32_t n_tokens) {
    if (!s || n_tokens < 0) return 0;
    size_t n = STATE_HEADER + 16 + state_pad8(state_kv_bytes(s, s->pos)) + 8;
    if (n_tokens > 0) n += 16 + state_pad8(4 + 4 * (size_t)n_tokens);
    if (s->logits_rows > 0) n += 16 + state_pad8(4 * (size_t)s->m->n_vocab);
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
    so_u32(&o, 1u + (n_tokens > 0) + (s->logits_rows > 0));
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
                      "the session state is for %u layers, KV width %u, %u tokens; the model has %d, %d, %d", nl, kvd,
                      nv, m->n_layer, m->kv_dim, m->n_vocab);
    if (kt != (uint32_t)s->kv_type)
        return seterr(err, SLM_ERR_INVALID_ARG, "the session state has a %s KV cache, this session %s (kv_type)",
                      kv_type_name((int)kt), kv_type_name(s->kv_type));
    if (pos > (uint32_t)s->n_ctx)
        return seterr(err, SLM_ERR_CONTEXT_FULL, "the session state holds %u positions, the session's context is %d",
                      pos, s->n_ctx);
    /* the sections: bounds first, then the known ones */
    const uint8_t *toks = NULL, *kv = NULL, *lg = NULL;
    uint32_t ntok = 0;
    size_t off = STATE_HEADER;
    const size_t end = size - 8;
    for (uint32_t i = 0; i < nsec; i++) {
        if (end - off < 16) return seterr(err, SLM_ERR_FORMAT, "session state: section %u runs past the end", i);
        const uint32_t tag = ld_u32(p + off), flags = ld_u32(p + off + 4);
        const uint64_t sz = ld_u64(p + off + 8);
        off += 16;
        if (sz > end - off || state_pad8((size_t)sz) > end - off)
            return seterr(err, SLM_ERR_FORMAT, "session state: section %u (%llu bytes) runs past the end", i,
                          (unsigned long long)sz);
        const uint8_t *d = p + off;
        char t4[5] = {(char)(tag & 0x7f), (char)(tag >> 8 & 0x7f), (char)(tag >> 16 & 0x7f), (char)(tag >> 24 & 0x7f), 0};
        for (int k = 0; k < 4; k++)
            if (t4[k] < 32) t4[k] = '?';
        if ((tag == TAG_TOKS && toks) || (tag == TAG_KVAT && kv) || (tag == TAG_LOGT && lg))
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
        } else if (flags & STATE_REQUIRED) {
            return seterr(err, SLM_ERR_UNSUPPORTED,
                          "session state: section '%s' is required and unknown to this slm (saved by a newer one?)", t4);
        }
        off += state_pad8((size_t)sz);
    }
    if (off != end) return seterr(err, SLM_ERR_FORMAT, "session state: %zu bytes after the last section", end - off);
    if (!kv) return seterr(err, SLM_ERR_FORMAT, "session state: no KV cache section");
    for (uint32_t i = 0; i < ntok; i++)
        if ((int32_t)ld_u32(toks + 4 * (size_t)i) < 0 || (int32_t)ld_u32(toks + 4 * (size_t)i) >= m->n_vocab)
            return seterr(err, SLM_ERR_FORMAT, "session state: token %u is not in the vocabulary", i);
    if (n_tokens) *n_tokens = (int32_t)ntok;
    if (ntok > 0 && tokens && cap_tokens < (int32_t)ntok)
        return seterr(err, SLM_ERR_BUFFER, "session state: %u token ids, room for %d", ntok, (int)cap_tokens);
    /* valid: now the session changes */
    const size_t es = s->kv_type == SLM_TYPE_F32 ? 4 : 2;
    for (int il = 0; il < m->n_layer; il++) {
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
/* 10. Tokenizer                                                              */
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
 *        Pieces decode back to bytes through the inverse map.
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
    const char **text;        /* piece bytes (the GGUF strings, owned by m->g) */
    size_t *len;
    float *score;
    uint16_t *attr;           /* SLM_TOKEN_* | TA_* */
    strmap map;               /* piece -> id (first id wins on duplicates) */
    int32_t *special;         /* ids matched whole in the input, longest first */
    int32_t n_special;
    int32_t *eog;             /* end-of-generation ids, ascending */
    int32_t n_eog;
    int32_t bos, eos, eot, eom, unk, pad, sep;
    int add_bos, add_eos, add_space_prefix;
    int32_t byte_tok[256];    /* byte -> token for byte fallback, -1 = none */
    int32_t max_piece;        /* longest decoded piece (special = 1) */
    const char *pre;          /* tokenizer.ggml.pre, "" if absent (BPE pre-tokenizer) */
    /* byte-level BPE */
    int pre_kind;             /* PRE_* */
    int pre_fallback;         /* pre was missing or unknown */
    int ignore_merges;        /* a word that is a piece is not merged (llama3) */
    int clean_spaces;         /* the detokenizer drops spaces before ?!., */
    int32_t n_merges;
    const char **mtext;       /* "left right" merge strings (owned by m->g); index = rank */
    size_t *mlen;
    strmap mmap;              /* merge string -> rank (first rank wins on duplicates) */
} vocab;

static const vocab *vocab_of(const slm_model *m) { return m ? m->vocab : NULL; }

static void vocab_free(slm_model *m) {
    vocab *v = m->vocab;
    if (!v) return;
    const allocator *a = &m->a;
    size_t n = (size_t)v->n;
    xfree(a, (void *)v->text, (n ? n : 1) * sizeof(char *));
    xfree(a, v->len, (n ? n : 1) * sizeof(size_t));
    xfree(a, v->score, (n ? n : 1) * sizeof(float));
    xfree(a, v->attr, (n ? n : 1) * sizeof(uint16_t));
    if (v->map.slots) strmap_free(&v->map, a);
    xfree(a, v->special, (n ? n : 1) * sizeof(int32_t));
    xfree(a, v->eog, (n ? n : 1) * sizeof(int32_t));
    if (v->mmap.slots) strmap_free(&v->mmap, a);
    xfree(a, (void *)v->mtext, (size_t)v->n_merges * sizeof(char *));
    xfree(a, v->mlen, (size_t)v->n_merges * sizeof(size_t));
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

static int text_in(const vocab *v, int32_t id, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (vocab_is(v, id, list[i])) return 1;
    return 0;
}

static void eog_add(vocab *v, int32_t id) {
    if (id < 0) return;
    for (int32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return;
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
       PRE_DEEPSEEK_CODER, PRE_GPT4O, PRE_TEKKEN };
static const char *const PRE_KIND_NAMES[] = {"gpt2", "llama3", "qwen2", "starcoder", "default", "falcon",
                                             "deepseek-llm", "deepseek-coder", "gpt-4o", "tekken"};
enum { PF_IGNORE_MERGES = 1, PF_ADD_BOS = 2, PF_NO_CLEAN = 4 };

/* tokenizer.ggml.pre values and their pre-tokenizer, with llama.cpp's
   per-value flags (ignore_merges, add_bos default, clean_spaces off). */
static const struct {
    const char *name;
    uint8_t kind, flags;
} PRE_NAMES[] = {
    {"default", PRE_DEFAULT, 0},
    {"gpt-2", PRE_GPT2, 0}, {"gpt2", PRE_GPT2, 0}, {"phi-2", PRE_GPT2, 0}, {"mpt", PRE_GPT2, 0},
    {"olmo", PRE_GPT2, 0}, {"jais", PRE_GPT2, 0}, {"exaone4", PRE_GPT2, 0}, {"mellum", PRE_GPT2, 0},
    {"a.x-4.0", PRE_GPT2, 0}, {"gigachat", PRE_GPT2, 0}, {"trillion", PRE_GPT2, PF_NO_CLEAN},
    {"granite-docling", PRE_GPT2, PF_NO_CLEAN},
    {"llama3", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS}, {"llama-v3", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"llama-bpe", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS}, {"falcon3", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"falcon-h1", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS}, {"pixtral", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"midm-2.0", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS}, {"lfm2", PRE_LLAMA3, PF_IGNORE_MERGES | PF_ADD_BOS},
    {"dbrx", PRE_LLAMA3, 0}, {"smaug-bpe", PRE_LLAMA3, 0},
    {"qwen2", PRE_QWEN2, PF_NO_CLEAN}, {"deepseek-r1-qwen", PRE_QWEN2, PF_NO_CLEAN}, {"kormo", PRE_QWEN2, PF_NO_CLEAN},
    {"stablelm2", PRE_QWEN2, 0}, {"megrez", PRE_QWEN2, 0}, {"hunyuan", PRE_QWEN2, PF_NO_CLEAN},
    {"solar-open", PRE_QWEN2, PF_NO_CLEAN}, {"grok-2", PRE_QWEN2, PF_NO_CLEAN},
    {"starcoder", PRE_STARCODER, 0}, {"refact", PRE_STARCODER, 0}, {"command-r", PRE_STARCODER, PF_NO_CLEAN},
    {"smollm", PRE_STARCODER, PF_NO_CLEAN}, {"codeshell", PRE_STARCODER, 0}, {"exaone", PRE_STARCODER, 0},
    {"minerva-7b", PRE_STARCODER, 0}, {"mellum2", PRE_STARCODER, 0},
    {"falcon", PRE_FALCON, 0},
    {"deepseek-llm", PRE_DEEPSEEK_LLM, PF_NO_CLEAN}, {"deepseek-coder", PRE_DEEPSEEK_CODER, PF_NO_CLEAN},
    {"gpt-4o", PRE_GPT4O, PF_NO_CLEAN}, {"llama4", PRE_GPT4O, PF_NO_CLEAN}, {"minimax-m2", PRE_GPT4O, PF_NO_CLEAN},
    {"tekken", PRE_TEKKEN, PF_NO_CLEAN | PF_IGNORE_MERGES | PF_ADD_BOS},
};

/* Pre-tokenizer, flags and merge ranks of a byte-level BPE vocabulary.
   Unknown pre values fall back to the gpt2 pattern (llama.cpp refuses the
   file): the merges still apply, and most patterns differ from gpt2's only
   in details (digit grouping, case of contractions), so the result stays
   usable; the warning says so. */
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
        v->pre_fallback = 1;
        if (!v->pre[0]) {
            v->pre_kind = PRE_DEFAULT;
            logf_(m, SLM_LOG_WARN, "tokenizer.ggml.pre is missing: using the 'default' pre-tokenizer (as llama.cpp); "
                                   "tokens may differ from the model's own tokenizer");
        } else {
            v->pre_kind = PRE_GPT2;
            logf_(m, SLM_LOG_WARN, "pre-tokenizer '%s' is not known to slm: using the gpt2 pattern; "
                                   "tokens may differ from the model's own tokenizer", v->pre);
        }
    }
    v->ignore_merges = (flags & PF_IGNORE_MERGES) != 0;
    v->add_bos = (flags & PF_ADD_BOS) != 0;
    v->clean_spaces = !(flags & PF_NO_CLEAN);

    const gguf_kv *k = gguf_get(g, "tokenizer.ggml.merges");
    if (!k) {
        logf_(m, SLM_LOG_WARN, "byte-level BPE vocabulary without tokenizer.ggml.merges: words stay single characters");
        return SLM_OK;
    }
    if (k->type != SLM_META_ARRAY || k->arr_type != SLM_META_STRING)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    if (k->count >= (uint64_t)INT32_MAX)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.merges has %llu entries", (unsigned long long)k->count);
    int32_t n = (int32_t)k->count;
    if (n == 0) return SLM_OK;
    const allocator *a = &m->a;
    v->mtext = (const char **)xalloc(a, (size_t)n * sizeof(char *));
    v->mlen = (size_t *)xalloc(a, (size_t)n * sizeof(size_t));
    v->n_merges = n;
    if (!v->mtext || !v->mlen || !strmap_init(&v->mmap, a, (size_t)n))
        return seterr(err, SLM_ERR_NOMEM, "out of memory for %d merges", (int)n);
    for (int32_t i = 0; i < n; i++) {
        size_t slot;
        v->mtext[i] = k->str[i];
        v->mlen[i] = (size_t)ld_u64(g->data + k->elem_off[i]);
        if (v->mlen[i] < 3) continue; /* no "a b": can never match */
        if (strmap_find(&v->mmap, v->mtext, v->mlen, v->mtext[i], v->mlen[i], &slot) >= 0) continue;
        v->mmap.slots[slot] = i;
    }
    return SLM_OK;
}

static slm_status vocab_load(slm_model *m, slm_error *err) {
    const gguf_file *g = &m->g;
    const gguf_kv *kmodel = gguf_get(g, "tokenizer.ggml.model");
    const gguf_kv *ktok = gguf_get(g, "tokenizer.ggml.tokens");
    const char *model = kmodel && kmodel->type == SLM_META_STRING ? kmodel->str[0] : NULL;
    if (kmodel && !model)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.model has type %s, expected string",
                      meta_type_name(kmodel->type));
    if (!ktok || (model && (!strcmp(model, "none") || !strcmp(model, "no_vocab")))) return SLM_OK;
    if (ktok->type != SLM_META_ARRAY || ktok->arr_type != SLM_META_STRING)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (ktok->count == 0 || ktok->count >= (uint64_t)INT32_MAX)
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries",
                      (unsigned long long)ktok->count);
    const int32_t n = (int32_t)ktok->count;
    const allocator *a = &m->a;
    vocab *v = (vocab *)xcalloc(a, 1, sizeof *v);
    if (!v) return seterr(err, SLM_ERR_NOMEM, "out of memory for the vocabulary");
    m->vocab = v;
    v->n = n;
    v->text = (const char **)xalloc(a, (size_t)n * sizeof(char *));
    v->len = (size_t *)xalloc(a, (size_t)n * sizeof(size_t));
    v->score = (float *)xcalloc(a, (size_t)n, sizeof(float));
    v->attr = (uint16_t *)xalloc(a, (size_t)n * sizeof(uint16_t));
    v->special = (int32_t *)xalloc(a, (size_t)n * sizeof(int32_t));
    v->eog = (int32_t *)xalloc(a, (size_t)n * sizeof(int32_t));
    if (!v->text || !v->len || !v->score || !v->attr || !v->special || !v->eog || !strmap_init(&v->map, a, (size_t)n))
        return seterr(err, SLM_ERR_NOMEM, "out of memory for a vocabulary of %d tokens", (int)n);

    /* kind and its defaults (llama.cpp's) */
    v->bos = v->eos = v->eot = v->eom = v->unk = v->pad = v->sep = -1;
    if (!model || !strcmp(model, "llama")) {
        v->kind = SLM_VOCAB_SPM;
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = 1, v->add_space_prefix = 1;
    } else if (!strcmp(model, "gpt2")) {
        v->kind = SLM_VOCAB_BPE;
        v->bos = 11, v->eos = 11;
    } else {
        v->kind = SLM_VOCAB_OTHER;
        logf_(m, SLM_LOG_WARN, "tokenizer '%s' is not supported: token pieces only", model);
    }
    const gguf_kv *kpre = gguf_get(g, "tokenizer.ggml.pre");
    v->pre = kpre && kpre->type == SLM_META_STRING ? kpre->str[0] : "";
    if (v->kind == SLM_VOCAB_BPE) {
        slm_status st = bpe_load(m, v, err);
        if (st != SLM_OK) return st;
    }

    /* pieces, scores, attributes */
    const gguf_kv *ksc = gguf_get(g, "tokenizer.ggml.scores");
    const gguf_kv *kty = gguf_get(g, "tokenizer.ggml.token_type");
    if (ksc && (ksc->type != SLM_META_ARRAY || (ksc->arr_type != SLM_META_F32 && ksc->arr_type != SLM_META_I32) ||
                ksc->count < (uint64_t)n))
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.scores must be an array of at least %d f32 or i32", (int)n);
    if (kty && (kty->type != SLM_META_ARRAY || kty->arr_type != SLM_META_I32 || kty->count < (uint64_t)n))
        return seterr(err, SLM_ERR_FORMAT, "tokenizer.ggml.token_type must be an array of at least %d i32", (int)n);
    for (int32_t i = 0; i < n; i++) {
        v->text[i] = ktok->str[i];
        v->len[i] = (size_t)ld_u64(g->data + ktok->elem_off[i]);
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
        size_t slot;
        if (strmap_find(&v->map, v->text, v->len, v->text[i], v->len[i], &slot) >= 0) {
            logf_(m, SLM_LOG_WARN, "duplicate piece for token %d; the first id is used", (int)i);
            continue;
        }
        v->map.slots[slot] = i;
    }

    /* special ids and flags from the file */
    {
        int32_t *ids[7] = {&v->bos, &v->eos, &v->unk, &v->pad, &v->sep, &v->eot, &v->eom};
        for (int k = 0; k < 7; k++)
            if (*ids[k] >= n) *ids[k] = -1; /* a default outside a small vocabulary */
    }
    vocab_id_key(m, "tokenizer.ggml.bos_token_id", &v->bos);
    vocab_id_key(m, "tokenizer.ggml.eos_token_id", &v->eos);
    vocab_id_key(m, "tokenizer.ggml.eot_token_id", &v->eot);
    vocab_id_key(m, "tokenizer.ggml.eom_token_id", &v->eom);
    vocab_id_key(m, "tokenizer.ggml.unknown_token_id", &v->unk);
    vocab_id_key(m, "tokenizer.ggml.seperator_token_id", &v->sep);
    vocab_id_key(m, "tokenizer.ggml.padding_token_id", &v->pad);
    vocab_bool_key(m, "tokenizer.ggml.add_bos_token", &v->add_bos);
    vocab_bool_key(m, "tokenizer.ggml.add_eos_token", &v->add_eos);
    vocab_bool_key(m, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    if (v->add_bos && v->bos < 0) v->add_bos = 0;
    if (v->add_eos && v->eos < 0) v->add_eos = 0;

    /* end-of-generation tokens found by their text; they become control
       tokens (llama.cpp does the same, so that they are never plain text) */
    int has_return = 0, has_call = 0, has_tool_response = 0;
    int32_t end_id = -1, s_id = -1;
    for (int32_t i = 0; i < n; i++) {
        if (v->len[i] < 3 || v->len[i] > 32 || v->text[i][0] == 0) continue;
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

    /* the special-token list, longest first */
    {
        special_key *keys = (special_key *)xalloc(a, (size_t)n * sizeof(special_key));
        if (!keys) return seterr(err, SLM_ERR_NOMEM, "out of memory");
        int32_t ns = 0;
        for (int32_t i = 0; i < n; i++)
            if ((v->attr[i] & (SLM_TOKEN_CONTROL | SLM_TOKEN_USER_DEFINED | SLM_TOKEN_UNKNOWN)) && v->len[i] > 0) {
                keys[ns].len = v->len[i];
                keys[ns].id = i;
                ns++;
            }
        qsort(keys, (size_t)ns, sizeof *keys, cmp_special);
        for (int32_t i = 0; i < ns; i++) v->special[i] = keys[i].id;
        v->n_special = ns;
        xfree(a, keys, (size_t)n * sizeof(special_key));
    }

    /* per-model attributes llama.cpp sets by name: Phi-3 strips the spaces
       after its special tokens */
    {
        const gguf_kv *kn = gguf_get(g, "general.name");
        char name[128] = {0};
        if (kn && kn->type == SLM_META_STRING) {
            size_t i = 0;
            for (; kn->str[0][i] && i + 1 < sizeof name; i++) {
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

    /* byte fallback: <0xNN>, else the byte itself as a piece */
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
    for (int32_t i = 0; i < n; i++) {
        size_t l = piece_decode(v, i, 1, 0, NULL, 0);
        if (l > (size_t)v->max_piece) v->max_piece = (int32_t)SLM_MIN(l, (size_t)INT32_MAX / 2);
    }
    logf_(m, SLM_LOG_INFO, "vocabulary: %d tokens (%s), %d special, %d end-of-generation", (int)n,
          model ? model : "llama", (int)v->n_special, (int)v->n_eog);
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
   For gpt-4o and tekken slm follows llama.cpp's rewriting of the classes:
   "upper" = a letter that is not a-z, "lower" = a letter that is not A-Z
   (no marks), which is what llama.cpp's tokens are made with. */
typedef struct pre_opts {
    int cased;        /* gpt-4o style words (upper* lower+ | upper+ lower*) */
    int contractions; /* 0 none, 1 before words (llama3), 2 after words (gpt-4o) */
    size_t max_digits;
    int slash;        /* [\r\n/]* after punctuation instead of [\r\n]* */
} pre_opts;

static int pt_upper(const pre_text *t, size_t i) { return (t->fl[i] & UC_L) && !(t->cp[i] >= 'a' && t->cp[i] <= 'z'); }
static int pt_lower(const pre_text *t, size_t i) { return (t->fl[i] & UC_L) && !(t->cp[i] >= 'A' && t->cp[i] <= 'Z'); }

static size_t m_llama3_like(const pre_text *t, size_t p, size_t e, const pre_opts *o) {
    uint32_t c = t->cp[p];
    unsigned f = t->fl[p];
    size_t k = o->contractions == 1 ? m_contraction(t, p, e, 1) : 0;
    if (k) return k;
    /* a word, with one optional leading character that is no CR, LF, letter or number */
    size_t s = SIZE_MAX;
    if (f & UC_L) s = p;
    else if (!is_crlf(c) && !(f & UC_N) && p + 1 < e && pt_is(t, p + 1, UC_L)) s = p + 1;
    if (s != SIZE_MAX) {
        size_t end = 0;
        if (!o->cased) {
            end = pt_run(t, s, e, UC_L);
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
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t q = c == ' ' && p + 1 < e && pt_other(t, p + 1) ? p + 1 : p;
    if (pt_other(t, q)) {
        size_t r = pt_run_other(t, q, e);
        while (r < e && (is_crlf(t->cp[r]) || (o->slash && t->cp[r] == '/'))) r++;
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
    static const pre_opts o = {0, 1, 3, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}
static size_t m_qwen2(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {0, 1, 1, 0};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}
static size_t m_gpt4o(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {1, 2, 3, 1};
    (void)skip;
    return m_llama3_like(t, p, e, &o);
}
static size_t m_tekken(const pre_text *t, size_t p, size_t e, size_t *skip) {
    static const pre_opts o = {1, 0, 1, 1};
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

/* \s?C+ for a class C given by `in` (code point test) or by flags `f` */
static size_t space_opt_run(const pre_text *t, size_t p, size_t e, int (*in)(uint32_t), unsigned f) {
#define IN_C(i) (in ? in(t->cp[i]) : pt_is(t, i, f))
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
    while (r < e && ds_cjk(t->cp[r])) r++;
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
static const pre_fn *const PRE_FNS[] = {PRE_GPT2_FNS, PRE_LLAMA3_FNS, PRE_QWEN2_FNS, PRE_STARCODER_FNS,
                                        PRE_DEFAULT_FNS, PRE_FALCON_FNS, PRE_DEEPSEEK_LLM_FNS,
                                        PRE_DEEPSEEK_CODER_FNS, PRE_GPT4O_FNS, PRE_TEKKEN_FNS};

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
    for (size_t i = 0; i < nb; i++) {
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
           its text that is a piece by itself, and the others are dropped */
        for (size_t j = 0; j < y->n; j++)
            if ((id = vocab_find(v, c->w + y->off + j, 1)) >= 0) tok_push(c->o, id);
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

/* Encode one raw fragment s[0, n). */
static int bpe_encode(const vocab *v, const allocator *a, const char *s, size_t n, tok_out *o) {
    if (n == 0) return 1;
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
    if (v->kind != SLM_VOCAB_SPM && v->kind != SLM_VOCAB_BPE) {
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
        if (v->kind == SLM_VOCAB_SPM || v->kind == SLM_VOCAB_OTHER) {
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
    if (len) *len = 0;
    if (!v || token < 0 || token >= v->n) return NULL;
    if (len) *len = v->len[token];
    return v->text[token];
}

/* ========================================================================== */
/* 11. Chat templates                                                         */
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
        if (add_gen) co_str(o, "<|im_start|>assistant\n");
        break;
    case SLM_CHAT_LLAMA3:
        for (int32_t i = 0; i < n; i++) {
            co_str(o, "<|start_header_id|>");
            co_str(o, msg[i].role);
            co_str(o, "<|end_header_id|>\n\n");
            co_content(o, i, msg[i].content, 1);
            co_str(o, "<|eot_id|>");
        }
        if (add_gen) co_str(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
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
        if (add_gen) co_str(o, "<start_of_turn>model\n");
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
        if (add_gen) co_str(o, "<|assistant|>\n");
        break;
    case SLM_CHAT_PHI4_MINI: /* Phi-3's tags without the newlines */
        for (int32_t i = 0; i < n; i++) {
            co_str(o, "<|");
            co_str(o, msg[i].role);
            co_str(o, "|>");
            co_content(o, i, msg[i].content, 0);
            co_str(o, "<|end|>");
        }
        if (add_gen) co_str(o, "<|assistant|>");
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
    default:
        break;
    }
}

/* Detection, in llama.cpp's order where the families overlap. */
int slm_chat_detect(const char *t) {
    if (!t) return SLM_CHAT_AUTO;
#define HAS(s) (strstr(t, s) != NULL)
    if (HAS("<|im_start|>")) return HAS("<|im_sep|>") || HAS("<end_of_utterance>") ? SLM_CHAT_AUTO : SLM_CHAT_CHATML;
    if (HAS("[INST]")) return HAS("<<SYS>>") ? SLM_CHAT_LLAMA2 : SLM_CHAT_MISTRAL;
    if ((HAS("<|user|>") || HAS("<|assistant|>")) && HAS("<|end|>"))
        return HAS("'|>' + message['content']") ? SLM_CHAT_PHI4_MINI : SLM_CHAT_PHI3;
    if (HAS("<|user|>") && (HAS("eos_token") || HAS("</s>") || HAS("<|endoftext|>"))) return SLM_CHAT_ZEPHYR;
    if (HAS("<start_of_turn>")) return SLM_CHAT_GEMMA;
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) return SLM_CHAT_LLAMA3;
#undef HAS
    return SLM_CHAT_AUTO;
}

static const char *const CHAT_NAMES[] = {"auto",   "chatml",  "llama3", "gemma",    "phi3",
                                         "zephyr", "mistral", "llama2", "phi4-mini"};

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
    if (!strncmp(arch, "qwen", 4)) return SLM_CHAT_CHATML;
    const vocab *v = vocab_of(m);
    static const struct {
        const char *tok;
        int family;
    } MARK[] = {{"<|start_header_id|>", SLM_CHAT_LLAMA3}, {"<|im_start|>", SLM_CHAT_CHATML},
                {"<start_of_turn>", SLM_CHAT_GEMMA},       {"<|assistant|>", SLM_CHAT_PHI3},
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
static const char *chat_token(const slm_model *m, int32_t id, const char *dflt) {
    const vocab *v = vocab_of(m);
    if (!v || id < 0 || id >= v->n || v->len[id] == 0 || strlen(v->text[id]) != v->len[id]) return dflt;
    return v->text[id];
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
    if (family < SLM_CHAT_CHATML || family > SLM_CHAT_PHI4_MINI)
        return seterr(err, SLM_ERR_INVALID_ARG, "unknown chat template family %d", family);
    if (n_past > 0 && strcmp(msg[n_past - 1].role, "assistant") != 0)
        return seterr(err, SLM_ERR_INVALID_ARG, "n_past = %d: message %d must be the assistant's reply", (int)n_past,
                      (int)(n_past - 1));
    const char *bos = chat_token(m, slm_token_bos(m), "<s>"), *eos = chat_token(m, slm_token_eos(m), "</s>");
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
/* 12. Sampler                                                                */
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
};

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

void slm_sampler_accept(slm_sampler *s, int32_t token) {
    if (!s || s->hist_cap == 0) return;
    s->hist[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->hist_cap;
    if (s->hist_n < s->hist_cap) s->hist_n++;
}

void slm_sampler_reset(slm_sampler *s, uint64_t seed) {
    if (!s) return;
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
/* 13. Generate                                                               */
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

    /* the prompt */
    int32_t *ids = NULL, n = 0;
    size_t ids_bytes = 0;
    slm_status st = SLM_OK;
    if (n_prompt_ids > 0) {
        ids = (int32_t *)prompt_ids;
        n = n_prompt_ids;
    } else if (prompt_len > 0 || (params->add_special && s->pos == 0 && slm_vocab_add_bos(m))) {
        int add = params->add_special && s->pos == 0;
        st = slm_tokenize(m, prompt ? prompt : "", prompt_len, add, params->parse_special, NULL, 0, &n, err);
        if (st != SLM_OK && st != SLM_ERR_BUFFER) return st;
        ids_bytes = (size_t)(n ? n : 1) * sizeof(int32_t);
        ids = (int32_t *)xalloc(a, ids_bytes);
        if (!ids) return seterr(err, SLM_ERR_NOMEM, "out of memory for %d prompt tokens", (int)n);
        st = slm_tokenize(m, prompt ? prompt : "", prompt_len, add, params->parse_special, ids, n, &n, err);
        if (st != SLM_OK) {
            xfree(a, ids, ids_bytes);
            return st;
        }
    }
    if (n > 0) {
        st = slm_decode(s, ids, n, err); /* refuses, unchanged, what does not fit */
    } else if (!slm_session_logits(s, -1)) {
        st = seterr(err, SLM_ERR_INVALID_ARG, "empty prompt and no logits to continue from");
    }
    if (st != SLM_OK) {
        if (ids_bytes) xfree(a, ids, ids_bytes);
        return st;
    }
    r.n_prompt = n;
    double t1 = now_ms();
    r.prompt_ms = t1 - t0;
    r.prompt_tps = n > 0 && r.prompt_ms > 0 ? n * 1e3 / r.prompt_ms : 0;

    slm_sampler *smp = NULL;
    st = sampler_new(a, &params->sampler, m->n_vocab, &smp, err);
    if (st != SLM_OK) {
        if (ids_bytes) xfree(a, ids, ids_bytes);
        return st;
    }
    for (int32_t i = 0; i < n; i++) slm_sampler_accept(smp, ids[i]);
    if (ids_bytes) xfree(a, ids, ids_bytes);

    gen_text g;
    memset(&g, 0, sizeof g);
    g.p = params;
    g.a = a;
    for (int32_t i = 0; i < params->n_stop; i++)
        if (params->stop[i]) g.max_stop = SLM_MAX(g.max_stop, strlen(params->stop[i]));
    slm_text_stream ts;
    slm_text_stream_init(&ts, m, params->emit_special ? SLM_STREAM_SPECIAL : 0);
    size_t chunk_cap = (size_t)slm_vocab_max_piece(m) + 8;
    char *chunk = (char *)xalloc(a, chunk_cap);
    if (!chunk) st = seterr(err, SLM_ERR_NOMEM, "out of memory");

    int reason = SLM_STOP_NONE;
    int32_t ngen = 0;
    while (st == SLM_OK) {
        if (params->max_tokens > 0 && ngen >= params->max_tokens) {
            reason = SLM_STOP_MAX_TOKENS;
            break;
        }
        int32_t tok = slm_sampler_sample(smp, slm_session_logits(s, -1));
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
        if (slm_text_stream_push(&ts, tok, chunk, chunk_cap, &cl) == SLM_OK && !gen_add(&g, chunk, cl))
            st = seterr(err, SLM_ERR_NOMEM, "out of memory");
        if (s->pos >= s->n_ctx) {
            reason = g.stop ? g.stop : SLM_STOP_CONTEXT_FULL;
            break;
        }
        if (st == SLM_OK) st = slm_decode(s, &tok, 1, err);
        if (g.stop) {
            reason = g.stop;
            break;
        }
    }
    if (st == SLM_OK && !g.stop) { /* what was held back is text after all */
        size_t fl = slm_text_stream_flush(&ts, chunk, chunk_cap);
        gen_emit(&g, g.buf, g.n);
        gen_emit(&g, chunk, fl);
        if (g.stop == SLM_STOP_CALLBACK) reason = SLM_STOP_CALLBACK;
    }
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
/* 14. Quantization: convert a GGUF file's matrices to another type           */
/* ========================================================================== */
/*
 * slm_quantize_file reads any GGUF file (no architecture support needed),
 * decides a type per tensor (the target, llama.cpp's S/M/L mixes, block-size
 * fallbacks), writes the new directory with the GGUF writer (4b) and then
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

static SLM_PRINTF(3, 4) void qlog(const slm_quantize_params *p, int level, const char *fmt, ...) {
    if (!p->log) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsn(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p->log(p->log_user, level, buf);
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

    /* the input: mapped (or read) and parsed, nothing more */
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.allocator = params->allocator;
    slm_model *m;
    slm_status st = model_new(&mp, &m, err);
    if (st != SLM_OK) return st;
    int mapped = 0;
#if defined(SLM_HAVE_MMAP)
    mapped = map_file(m, in, err, &st);
#endif
    if (st == SLM_OK && !mapped) st = read_file(m, in, err);
    if (st == SLM_OK) st = gguf_parse(&m->g, m->bytes, m->size, &m->a, err);
    if (st != SLM_OK) {
        model_release(m);
        return st;
    }
    const gguf_file *g = &m->g;
    const int nth = params->n_threads > 0 ? params->n_threads : default_threads();

    quant_plan q;
    memset(&q, 0, sizeof q);
    q.type = params->type;
    q.mix = params->mix;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const char *nm = g->tensors[i].name;
        if (strstr(nm, "attn_v.weight") || strstr(nm, "attn_qkv.weight") || strstr(nm, "attn_kv_b.weight"))
            q.n_attn_v++;
        if (!strcmp(nm, "output.weight")) q.has_output = 1;
    }
    {
        const gguf_kv *ak = gguf_get(g, "general.architecture");
        char key[128];
        int64_t v = 0;
        if (ak && ak->type == SLM_META_STRING) {
            fmt_sn(key, sizeof key, "%s.block_count", ak->str[0]);
            const gguf_kv *bk = gguf_get(g, key);
            if (bk && kv_int(g, bk, -1, &v) == SLM_OK && v > 0 && v < (1 << 20)) q.n_layer = (int)v;
        }
        if (!q.n_layer) q.n_layer = SLM_MAX(1, q.n_attn_v);
    }

    /* the plan: a type per tensor, checked before anything is written */
    int *types = (int *)xalloc(&m->a, (size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof(int));
    if (!types) {
        model_release(m);
        return seterr(err, SLM_ERR_NOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < g->n_tensors && st == SLM_OK; i++) {
        const gguf_tensor *t = &g->tensors[i];
        int fb = 0, ty = quantizable(t) ? plan_type(&q, t, &fb) : t->type;
        if (fb) {
            q.n_fallback++;
            qlog(params, SLM_LOG_WARN, "%s: row length %lld is not a multiple of %d: %s instead", t->name,
                 (long long)t->ne[0], type_size_of(params->type)->blck, slm_type_name(ty));
        }
        if (ty != t->type && (!TRAITS[t->type].to_float || !TRAITS[ty].from_float))
            st = seterr(err, SLM_ERR_UNSUPPORTED, "tensor '%s': cannot convert %s to %s", t->name,
                        slm_type_name(t->type), slm_type_name(ty));
        else if (ty != t->type && type_size_of(t->type)->blck > 1)
            qlog(params, SLM_LOG_WARN, "%s: requantizing %s to %s adds the errors of both; quantize from F32/F16/BF16 if you can",
                 t->name, slm_type_name(t->type), slm_type_name(ty));
        types[i] = ty;
    }

    gguf_writer w;
    gw_init(&w, &m->a, g->alignment, err);
#if !defined(SLM_NO_STDIO)
    ofile of;
#endif
    int opened = 0;
    if (st == SLM_OK) {
        int have_ft = 0, have_qv = 0;
        for (uint64_t i = 0; i < g->n_kv; i++) {
            const gguf_kv *kv = &g->kv[i];
            size_t b, e;
            if (!strcmp(kv->key, "general.file_type")) {
                gw_kv_u32(&w, kv->key, (uint32_t)qn->ftype);
                have_ft = 1;
            } else if (!strcmp(kv->key, "general.quantization_version")) {
                gw_kv_u32(&w, kv->key, 2);
                have_qv = 1;
            } else if (!strncmp(kv->key, "split.", 6)) {
                continue; /* one file out */
            } else if (kv_span(g, kv, &b, &e)) {
                gw_kv_raw(&w, kv->key, kv->type, g->data + b, e - b);
            }
        }
        if (!have_qv) gw_kv_u32(&w, "general.quantization_version", 2);
        if (!have_ft) gw_kv_u32(&w, "general.file_type", (uint32_t)qn->ftype);
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor *t = &g->tensors[i];
            stats->bytes_out += gw_tensor(&w, t->name, types[i], t->n_dims, t->ne);
        }
        st = w.st;
    }
#if !defined(SLM_NO_STDIO)
    /* a temp file renamed into place at the end; never the input itself */
    if (st == SLM_OK && (st = of_open(&of, &m->a, out, in, err)) == SLM_OK) opened = 1;
    if (st == SLM_OK) gw_write_header_of(&w, &of);
#else
    if (st == SLM_OK) st = seterr(err, SLM_ERR_UNSUPPORTED, "cannot write '%s': built with SLM_NO_STDIO", out);
#endif
    for (uint64_t i = 0; i < g->n_tensors && st == SLM_OK && w.st == SLM_OK; i++) {
        const gguf_tensor *t = &g->tensors[i];
        const uint8_t *data = g->data + g->data_off + t->offset;
        const int64_t nrows = (int64_t)(t->nbytes / row_bytes(t->type, t->ne[0]));
        if (types[i] == t->type) {
            gw_write_data(&w, data, (size_t)t->nbytes);
        } else {
            convert_tensor(&w, &m->a, data, t->type, types[i], t->ne[0], nrows, nth);
            stats->n_converted++;
        }
        gw_end_tensor(&w);
        stats->bytes_in += t->nbytes;
        if (types[i] >= 0 && types[i] < 40) stats->n_by_type[types[i]]++;
        qlog(params, SLM_LOG_INFO, "[%4llu/%4llu] %-32s %-6s -> %-6s %10.3f -> %8.3f MiB",
             (unsigned long long)i + 1, (unsigned long long)g->n_tensors, t->name, slm_type_name(t->type),
             slm_type_name(types[i]), t->nbytes / 1048576.0, row_bytes(types[i], t->ne[0]) * (double)nrows / 1048576.0);
    }
    if (st == SLM_OK) st = w.st;
#if !defined(SLM_NO_STDIO)
    if (opened) {
        stats->file_out = of.written;
        if (st == SLM_OK) st = of_commit(&of); /* only now does `out` change */
        else of_abort(&of);                    /* removes our temp file, nothing else */
        if (st != SLM_OK) stats->file_out = 0;
    }
#else
    (void)opened;
#endif
    stats->n_tensors = (int32_t)g->n_tensors;
    stats->n_fallback = q.n_fallback;
    stats->file_in = m->size;
    gw_free(&w);
    xfree(&m->a, types, (size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof(int));
    model_release(m);
    return st;
}
