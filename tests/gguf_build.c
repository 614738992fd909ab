/* A small GGUF writer for tests and fuzz seeds: a valid tiny llama model
   and variants of it with one defect each. */
#include "gguf_build.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

void gb_put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = (unsigned char *)realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
void gb_u32(gbuf *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    gb_put(b, x, 4);
}
void gb_u64(gbuf *b, uint64_t v) {
    gb_u32(b, (uint32_t)v);
    gb_u32(b, (uint32_t)(v >> 32));
}
void gb_str(gbuf *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
void gb_f32(gbuf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    gb_u32(b, u);
}
void gb_pad(gbuf *b, size_t al) {
    while (b->n % al) gb_put(b, "", 1);
}

/* A valid llama model: vocab 8, embd 32, 1 layer, 2 heads, 1 kv head, ffn 32,
   all F32; `variant` injects one defect. */


const char *const GGUF_VARIANT_NAMES[V_COUNT] = {
    "ok", "duplicate key", "duplicate tensor", "unknown type id", "misaligned offset", "data outside file",
    "overlapping tensors", "zero dim", "huge dim", "alignment not pow2", "alignment wrong type", "wrong key type",
    "missing tensor", "bad shape", "deep nested array", "unknown arch", "bad value type", "5 dims",
    "unsupported type", "huge tensor count", "head count mismatch", "big endian", "version 1"};

typedef struct tdesc {
    const char *name;
    int64_t ne0, ne1;
} tdesc;

gbuf gguf_build(int variant) {
    gbuf b = {0, 0, 0};
    static const tdesc T[] = {
        {"token_embd.weight", 32, 8},      {"output_norm.weight", 32, 1},   {"blk.0.attn_norm.weight", 32, 1},
        {"blk.0.attn_q.weight", 32, 32},   {"blk.0.attn_k.weight", 32, 16}, {"blk.0.attn_v.weight", 32, 16},
        {"blk.0.attn_output.weight", 32, 32}, {"blk.0.ffn_norm.weight", 32, 1}, {"blk.0.ffn_gate.weight", 32, 32},
        {"blk.0.ffn_up.weight", 32, 32},   {"blk.0.ffn_down.weight", 32, 32},
    };
    const int nt = (int)(sizeof T / sizeof T[0]);
    int ntw = variant == V_MISSING_TENSOR ? nt - 1 : nt;
    gb_u32(&b, 0x46554747u);
    gb_u32(&b, variant == V_BIG_ENDIAN ? 0x03000000u : variant == V_VERSION1 ? 1u : 3u);
    gb_u64(&b, variant == V_HUGE_COUNT ? (uint64_t)1 << 60 : (uint64_t)ntw);
    int nkv = 9 + (variant == V_DUP_KEY) + (variant == V_DEEP_ARRAY) + (variant == V_BAD_ALIGN_KEY ||
                                                                       variant == V_ALIGN_WRONG_TYPE) +
              (variant == V_BAD_VALUE_TYPE);
    gb_u64(&b, (uint64_t)nkv);
    gb_str(&b, "general.architecture"); gb_u32(&b, 8); gb_str(&b, variant == V_UNKNOWN_ARCH ? "mamba9" : "llama");
    gb_str(&b, "llama.embedding_length"); gb_u32(&b, 4); gb_u32(&b, 32);
    gb_str(&b, "llama.block_count"); gb_u32(&b, 4); gb_u32(&b, 1);
    gb_str(&b, "llama.feed_forward_length"); gb_u32(&b, 4); gb_u32(&b, 32);
    gb_str(&b, "llama.attention.head_count");
    if (variant == V_WRONG_KEY_TYPE) { gb_u32(&b, 8); gb_str(&b, "two"); } else { gb_u32(&b, 4); gb_u32(&b, 2); }
    gb_str(&b, "llama.attention.head_count_kv"); gb_u32(&b, 4); gb_u32(&b, variant == V_HEADS_MISMATCH ? 3 : 1);
    gb_str(&b, "llama.attention.layer_norm_rms_epsilon"); gb_u32(&b, 6); gb_f32(&b, 1e-5f);
    gb_str(&b, "llama.context_length"); gb_u32(&b, 4); gb_u32(&b, 64);
    /* an array of strings and a nested array, both legal */
    gb_str(&b, "test.strings"); gb_u32(&b, 9); gb_u32(&b, 8); gb_u64(&b, 3); gb_str(&b, "a"); gb_str(&b, ""); gb_str(&b, "ccc");
    if (variant == V_DUP_KEY) { gb_str(&b, "llama.block_count"); gb_u32(&b, 4); gb_u32(&b, 1); }
    if (variant == V_DEEP_ARRAY) {
        gb_str(&b, "test.deep"); gb_u32(&b, 9);
        for (int d = 0; d < 10; d++) { gb_u32(&b, 9); gb_u64(&b, 1); }
        gb_u32(&b, 4); gb_u64(&b, 1); gb_u32(&b, 7);
    }
    if (variant == V_BAD_ALIGN_KEY) { gb_str(&b, "general.alignment"); gb_u32(&b, 4); gb_u32(&b, 24); }
    if (variant == V_ALIGN_WRONG_TYPE) { gb_str(&b, "general.alignment"); gb_u32(&b, 10); gb_u64(&b, 32); }
    if (variant == V_BAD_VALUE_TYPE) { gb_str(&b, "test.bad"); gb_u32(&b, 13); gb_u32(&b, 0); }
    uint64_t off = 0;
    for (int i = 0; i < ntw; i++) {
        gb_str(&b, variant == V_DUP_TENSOR && i == 2 ? T[1].name : T[i].name);
        int nd = T[i].ne1 == 1 ? 1 : 2;
        if (variant == V_TOO_MANY_DIMS && i == 0) nd = 5;
        gb_u32(&b, (uint32_t)nd);
        gb_u64(&b, variant == V_ZERO_DIM && i == 3 ? 0 : (uint64_t)T[i].ne0);
        if (nd >= 2) gb_u64(&b, variant == V_HUGE_DIM && i == 3 ? (uint64_t)1 << 62 : (uint64_t)T[i].ne1);
        for (int d = 2; d < nd; d++) gb_u64(&b, 1);
        gb_u32(&b, variant == V_BAD_TYPE && i == 4 ? 77 : variant == V_UNSUPPORTED_TYPE && i == 4 ? 16 : 0);
        uint64_t o = off;
        if (variant == V_MISALIGNED && i == 5) o += 4;
        if (variant == V_OUTSIDE && i == ntw - 1) o += 1 << 20;
        if (variant == V_OVERLAP && i == 6) o -= 32;
        gb_u64(&b, o);
        off += (uint64_t)(T[i].ne0 * T[i].ne1 * 4);
        off = (off + 31) & ~(uint64_t)31;
    }
    gb_pad(&b, 32);
    uint64_t s = 1;
    size_t start = b.n;
    for (uint64_t i = 0; i < off / 4; i++) gb_f32(&b, t_randf(&s) * 0.1f + (i < 8 ? 1.0f : 0.0f));
    (void)start;
    if (variant == V_BAD_SHAPE) { /* q projection claims 16 outputs: patch its dims in place */
        unsigned char *p = b.p;
        for (size_t i = 0; i + 19 < b.n; i++)
            if (!memcmp(p + i, "blk.0.attn_q.weight", 19)) {
                p[i + 19 + 4 + 8] = 16;
                break;
            }
    }
    return b;
}
