#ifndef GGUF_BUILD_H
#define GGUF_BUILD_H
#include <stddef.h>
#include <stdint.h>

typedef struct gbuf {
    unsigned char *p;
    size_t n, cap;
} gbuf;

/* Little-endian GGUF primitives appending to a growing buffer. */
void gb_put(gbuf *b, const void *d, size_t n);
void gb_u32(gbuf *b, uint32_t v);
void gb_u64(gbuf *b, uint64_t v);
void gb_str(gbuf *b, const char *s);
void gb_f32(gbuf *b, float f);
void gb_pad(gbuf *b, size_t al);

/* A tiny llama model (vocab 8, embd 32, 1 layer, F32): variant V_OK is
   valid, every other variant injects one defect. Free b.p with free(). */
enum {
    V_OK, V_DUP_KEY, V_DUP_TENSOR, V_BAD_TYPE, V_MISALIGNED, V_OUTSIDE, V_OVERLAP, V_ZERO_DIM, V_HUGE_DIM,
    V_BAD_ALIGN_KEY, V_ALIGN_WRONG_TYPE, V_WRONG_KEY_TYPE, V_MISSING_TENSOR, V_BAD_SHAPE, V_DEEP_ARRAY,
    V_UNKNOWN_ARCH, V_BAD_VALUE_TYPE, V_TOO_MANY_DIMS, V_UNSUPPORTED_TYPE, V_HUGE_COUNT, V_HEADS_MISMATCH,
    V_BIG_ENDIAN, V_VERSION1, V_COUNT
};

extern const char *const GGUF_VARIANT_NAMES[V_COUNT];
gbuf gguf_build(int variant);

#endif
