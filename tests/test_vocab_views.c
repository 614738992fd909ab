/* The vocabulary stays in the file: pieces, merges and arrays of strings are
   views into the model's bytes, a load makes a fixed number of allocations
   whatever the vocabulary size, and strings are never assumed to end in a
   NUL byte. */
#include "gguf_build.h"
#include "slm.h"
#include "test.h"
#include "vocab_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct counter {
    size_t n_alloc, bytes, live, bad_size;
} counter;

/* a size header in front of each block: frees must give the size asked */
static void *count_alloc(void *user, size_t size, size_t align) {
    counter *c = (counter *)user;
    if (align < 16) align = 16;
    unsigned char *raw = (unsigned char *)malloc(size + align + sizeof(size_t) * 2);
    if (!raw) return NULL;
    uintptr_t at = ((uintptr_t)raw + sizeof(size_t) * 2 + align - 1) & ~(uintptr_t)(align - 1);
    unsigned char *p = (unsigned char *)at;
    memcpy(p - sizeof(size_t), &size, sizeof size);
    memcpy(p - 2 * sizeof(size_t), &raw, sizeof raw);
    c->n_alloc++;
    c->bytes += size;
    c->live += size;
    return p;
}

static void count_free(void *user, void *ptr, size_t size) {
    counter *c = (counter *)user;
    unsigned char *p = (unsigned char *)ptr, *raw;
    size_t asked;
    memcpy(&asked, p - sizeof(size_t), sizeof asked);
    memcpy(&raw, p - 2 * sizeof(size_t), sizeof raw);
    if (asked != size) c->bad_size++;
    c->live -= asked;
    free(raw);
}

/* Piece i: "t", i in base-26 letters, "x" (one word for the pre-tokenizer). */
static void piece_name(int i, char *out) {
    char d[8];
    int k = 0, n = 0;
    do d[k++] = (char)('a' + i % 26), i /= 26; while (i);
    out[n++] = 't';
    while (k) out[n++] = d[--k];
    out[n++] = 'x';
    out[n] = 0;
}

/* A byte-level BPE vocabulary of n tokens and n - 1 merges; with llama3's
   pre-tokenizer a word that is a piece is one token (ignore_merges). */
static gbuf bpe_vocab(int n) {
    char **tok = (char **)calloc((size_t)n, sizeof(char *));
    char **mer = (char **)calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        tok[i] = (char *)malloc(24);
        mer[i] = (char *)malloc(24);
        piece_name(i, tok[i]);
        snprintf(mer[i], 24, "t %s", tok[i] + 1);
    }
    vocab_spec sp = {"gpt2", "llama3", (const char *const *)tok, NULL, n, (const char *const *)mer, n - 1, NULL, 0, 1};
    gbuf b = vocab_gguf(&sp);
    for (int i = 0; i < n; i++) free(tok[i]), free(mer[i]);
    free(tok);
    free(mer);
    return b;
}

static slm_model *load_counted(const unsigned char *p, size_t n, counter *c, slm_allocator *a) {
    memset(c, 0, sizeof *c);
    a->alloc = count_alloc;
    a->free = count_free;
    a->user = c;
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.vocab_only = 1;
    mp.allocator = a;
    slm_model *m = NULL;
    slm_error err;
    if (slm_model_load_memory(p, n, &mp, &m, &err) != SLM_OK) {
        printf("  load: %s\n", err.message);
        return NULL;
    }
    return m;
}

static int inside(const void *s, size_t len, const unsigned char *p, size_t n) {
    const unsigned char *q = (const unsigned char *)s;
    return q >= p && q + len <= p + n;
}

static void test_alloc_counts(void) {
    const int sizes[2] = {300, 12000};
    size_t allocs[2] = {0, 0}, bytes[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        gbuf b = bpe_vocab(sizes[k]);
        counter c;
        slm_allocator a;
        slm_model *m = load_counted(b.p, b.n, &c, &a);
        CHECK(m != NULL, "load a BPE vocabulary of %d tokens", sizes[k]);
        if (m) {
            allocs[k] = c.n_alloc;
            bytes[k] = c.bytes;
            /* every piece and merge is a view into the caller's buffer */
            int outside = 0;
            for (int32_t t = 0; t < slm_vocab_size(m); t++) {
                size_t len;
                const char *s = slm_token_text(m, t, &len);
                outside += !s || !inside(s, len, b.p, b.n);
            }
            int64_t km = slm_meta_find(m, "tokenizer.ggml.merges");
            for (int64_t e = 0; e < slm_meta_array_count(m, km); e++) {
                const char *s;
                size_t len;
                outside += slm_meta_get_string(m, km, e, &s, &len) != SLM_OK || !inside(s, len, b.p, b.n);
            }
            CHECK(outside == 0, "%d pieces or merges are not views into the caller's buffer", outside);
            /* the tokenizer works on the views */
            int32_t ids[8], n = -1;
            char w[16];
            piece_name(sizes[k] - 1, w);
            slm_tokenize(m, w, strlen(w), 0, 0, ids, 8, &n, NULL);
            CHECK(n == 1 && ids[0] == sizes[k] - 1, "'%s' is token %d (n %d id %d)", w, sizes[k] - 1, (int)n,
                  n > 0 ? (int)ids[0] : -1);
            slm_model_free(m);
            CHECK(c.live == 0 && c.bad_size == 0, "all freed with the sizes asked (%zu live, %zu wrong sizes)",
                  c.live, c.bad_size);
        }
        free(b.p);
    }
    /* the count does not grow with the vocabulary; the bytes grow by the
       views, scores, attributes and hash slots only (no string copies) */
    CHECK(allocs[0] == allocs[1] && allocs[1] <= 40, "allocations %zu (%d tokens) and %zu (%d tokens)", allocs[0],
          sizes[0], allocs[1], sizes[1]);
    size_t per = (bytes[1] - bytes[0]) / (size_t)(sizes[1] - sizes[0]);
    size_t bound = 4 * sizeof(void *) + 4 * sizeof(size_t) + 4 * 4 * 2 + 4 + 2;
    CHECK(bytes[1] > bytes[0] && per <= bound, "%zu bytes per token and merge (at most %zu)", per, bound);
    printf("  vocabulary-only load: %zu allocations for %d and for %d tokens, %zu bytes per token and merge\n",
           allocs[1], sizes[0], sizes[1], per);
}

/* GPT-2's real vocabulary: a handful of allocations instead of one per
   string (100,306 before the pieces became views). */
static void test_gpt2(void) {
    size_t n;
    unsigned char *p = read_all(data_path("tokenizer/ggml-vocab-gpt-2.gguf"), &n);
    CHECK(p != NULL, "read ggml-vocab-gpt-2.gguf");
    if (!p) return;
    counter c;
    slm_allocator a;
    slm_model *m = load_counted(p, n, &c, &a);
    CHECK(m && slm_vocab_size(m) == 50257, "GPT-2 vocabulary loads");
    CHECK(c.n_alloc <= 40, "GPT-2 vocabulary: %zu allocations", c.n_alloc);
    CHECK(c.bytes < 2 * n, "GPT-2 vocabulary: %zu bytes requested for a %zu-byte file", c.bytes, n);
    if (m) {
        /* scalar strings stay C strings */
        int64_t k = slm_meta_find(m, "tokenizer.ggml.model");
        const char *s = NULL;
        size_t len = 0;
        CHECK(slm_meta_get_string(m, k, -1, &s, &len) == SLM_OK && len == 4 && !strcmp(s, "gpt2"),
              "tokenizer.ggml.model is a C string");
        CHECK(slm_meta_get_string(m, k, -1, &s, NULL) == SLM_OK, "len is optional for a string value");
        CHECK(slm_token_text(m, 0, NULL) == NULL, "slm_token_text needs len");
        slm_model_free(m);
    }
    CHECK(c.live == 0 && c.bad_size == 0, "GPT-2: all freed with the sizes asked");
    free(p);
}

/* File loads: mapped, read into the model's own buffer, and from memory give
   the same tokens (the views of a read file point into the model's copy). */
static void test_file_modes(void) {
    const char *path = data_path("tokenizer/ggml-vocab-gpt-2.gguf");
    const char *text = "Hello world, the vocabulary stays in the file!";
    int32_t ref[64], got[64];
    int32_t nref = -1;
    for (int mode = 0; mode < 3; mode++) {
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.vocab_only = 1;
        mp.use_mmap = mode == 0;
        slm_model *m = NULL;
        size_t n = 0;
        unsigned char *buf = NULL;
        slm_status st;
        if (mode == 2) {
            buf = read_all(path, &n);
            st = buf ? slm_model_load_memory(buf, n, &mp, &m, NULL) : SLM_ERR_IO;
        } else {
            st = slm_model_load_file(path, &mp, &m, NULL);
        }
        CHECK(st == SLM_OK, "load mode %d", mode);
        if (st != SLM_OK) {
            free(buf);
            continue;
        }
        int32_t k = -1;
        slm_tokenize(m, text, strlen(text), 0, 0, mode ? got : ref, 64, &k, NULL);
        if (mode == 0) nref = k;
        CHECK(k > 0 && k == nref && (mode == 0 || !memcmp(ref, got, (size_t)k * sizeof(int32_t))),
              "mode %d: %d tokens, the same as mapped", mode, (int)k);
        char out[128];
        size_t len = 0;
        int32_t *ids = mode ? got : ref;
        for (int32_t i = 0; i < k; i++) {
            size_t w = 0;
            if (slm_token_to_piece(m, ids[i], 0, out + len, sizeof out - len, &w) == SLM_OK) len += w;
        }
        CHECK(len == strlen(text) && !memcmp(out, text, len), "mode %d: detokenized back", mode);
        slm_model_free(m);
        free(buf);
    }
}

/* Strings are untrusted: a piece with a NUL byte keeps its length, and a
   length past the end of the file is refused. */
static void test_untrusted(void) {
    static const char piece[3] = {'b', 0, 'c'};
    gbuf b = {0};
    gb_u32(&b, 0x46554747u), gb_u32(&b, 3), gb_u64(&b, 0), gb_u64(&b, 3);
    gb_str(&b, "general.architecture"), gb_u32(&b, 8), gb_str(&b, "llama");
    gb_str(&b, "tokenizer.ggml.model"), gb_u32(&b, 8), gb_str(&b, "llama");
    gb_str(&b, "tokenizer.ggml.tokens"), gb_u32(&b, 9), gb_u32(&b, 8), gb_u64(&b, 3);
    gb_str(&b, "<unk>");
    gb_u64(&b, 3), gb_put(&b, piece, 3);
    size_t last = b.n;
    gb_str(&b, "end"); /* the last bytes of the file: no NUL after them */
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.vocab_only = 1;
    slm_model *m = NULL;
    slm_error err;
    CHECK(slm_model_load_memory(b.p, b.n, &mp, &m, &err) == SLM_OK, "load a vocabulary with a NUL in a piece");
    if (m) {
        size_t len = 0;
        const char *s = slm_token_text(m, 1, &len);
        CHECK(s && len == 3 && !memcmp(s, piece, 3), "the piece keeps its NUL byte and length");
        s = slm_token_text(m, 2, &len);
        CHECK(s && len == 3 && s + 3 == (const char *)b.p + b.n, "the last piece ends at the end of the buffer");
        char txt[64];
        slm_meta_format(m, slm_meta_find(m, "tokenizer.ggml.tokens"), txt, sizeof txt);
        CHECK(strstr(txt, "\"b\\x00c\"") != NULL, "the formatted array shows the NUL: %s", txt);
        slm_model_free(m);
    }
    /* the last length says 4 bytes where 3 remain */
    b.p[last] = 4;
    CHECK(slm_model_load_memory(b.p, b.n, &mp, &m, &err) == SLM_ERR_FORMAT && strstr(err.message, "exceeds the file"),
          "a piece past the end of the file is refused: %s", err.message);
    free(b.p);
}

void test_vocab_views(void) {
    test_alloc_counts();
    test_gpt2();
    test_file_modes();
    test_untrusted();
}
