/* Vocabulary-only GGUF files (no tensors) for tokenizer and chat tests. */
#include "vocab_build.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = (unsigned char *)realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u32(gbuf *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(b, x, 4);
}
static void u64(gbuf *b, uint64_t v) {
    u32(b, (uint32_t)v);
    u32(b, (uint32_t)(v >> 32));
}
static void str(gbuf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_str(gbuf *b, const char *k, const char *v) {
    str(b, k);
    u32(b, 8);
    str(b, v);
}
static void kv_strs(gbuf *b, const char *k, const char *const *v, int n) {
    str(b, k);
    u32(b, 9);
    u32(b, 8);
    u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) str(b, v[i]);
}

gbuf vocab_gguf(const vocab_spec *s) {
    gbuf b = {0, 0, 0};
    int nkv = 4 + (s->pre != NULL) + (s->n_merges > 0) + (s->chat_template != NULL) + (s->bos >= 0) + (s->eos >= 0);
    u32(&b, 0x46554747u);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, (uint64_t)nkv);
    kv_str(&b, "general.architecture", "llama");
    kv_str(&b, "tokenizer.ggml.model", s->model);
    if (s->pre) kv_str(&b, "tokenizer.ggml.pre", s->pre);
    kv_strs(&b, "tokenizer.ggml.tokens", s->tokens, s->n_tokens);
    str(&b, "tokenizer.ggml.token_type");
    u32(&b, 9);
    u32(&b, 5);
    u64(&b, (uint64_t)s->n_tokens);
    for (int i = 0; i < s->n_tokens; i++) u32(&b, (uint32_t)(s->types ? s->types[i] : 1));
    if (s->n_merges > 0) kv_strs(&b, "tokenizer.ggml.merges", s->merges, s->n_merges);
    if (s->chat_template) kv_str(&b, "tokenizer.chat_template", s->chat_template);
    if (s->bos >= 0) {
        str(&b, "tokenizer.ggml.bos_token_id");
        u32(&b, 4);
        u32(&b, (uint32_t)s->bos);
    }
    if (s->eos >= 0) {
        str(&b, "tokenizer.ggml.eos_token_id");
        u32(&b, 4);
        u32(&b, (uint32_t)s->eos);
    }
    while (b.n % 32) put(&b, "", 1);
    return b;
}
