/*
 * vocab_load - what a vocabulary-only model load costs: allocations, bytes
 * requested, the most bytes live at once, peak RSS growth and load time.
 *
 *   vocab_load [--no-mmap | --memory] [--runs N] FILE.gguf...
 *       load each file with vocab_only = 1 through a counting allocator
 *       (the first run counts; the time is the median of N runs)
 *   vocab_load --gen-qwen2 OUT.gguf
 *       write a byte-level BPE vocabulary of Qwen2's size (151,936 tokens,
 *       151,387 merges, 22 special tokens, tokenizer.ggml.pre "qwen2"); the
 *       pieces are synthetic, unique and as long as Qwen2's on average
 *
 * `make bench-vocab` builds it, generates the Qwen2-size file and runs it on
 * that file and on GPT-2's vocabulary (tests/data/tokenizer). Run each file
 * in its own process when RSS matters: ru_maxrss only grows.
 *
 * Uses only the public API, so the same source measures any version of slm.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "slm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#define HAVE_RUSAGE 1
#endif

/* ---- counting allocator --------------------------------------------------- */

typedef struct counter {
    size_t n_alloc, n_free;
    size_t bytes;       /* requested in total */
    size_t live, peak;  /* requested and not yet freed; its maximum */
} counter;

static void *count_alloc(void *user, size_t size, size_t align) {
    counter *c = (counter *)user;
    void *p = NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size ? size : 1) != 0) return NULL;
    c->n_alloc++;
    c->bytes += size;
    c->live += size;
    if (c->live > c->peak) c->peak = c->live;
    return p;
}

static void count_free(void *user, void *p, size_t size) {
    counter *c = (counter *)user;
    c->n_free++;
    c->live -= size;
    free(p);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static long maxrss_kb(void) {
#if defined(HAVE_RUSAGE)
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return ru.ru_maxrss; /* KiB on Linux */
#endif
    return -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = n > 0 ? (unsigned char *)malloc((size_t)n) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return b;
}

enum { MODE_MMAP, MODE_READ, MODE_MEMORY };

static int measure(const char *path, int mode, int runs) {
    static const char *const mode_name[] = {"mmap", "read", "memory"};
    size_t size = 0;
    unsigned char *buf = NULL;
    if (mode == MODE_MEMORY && !(buf = read_all(path, &size))) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    double *ms = (double *)calloc((size_t)runs, sizeof(double));
    counter first = {0};
    long rss0 = maxrss_kb(), rss1 = rss0;
    int32_t n_vocab = 0;
    for (int r = 0; r < runs; r++) {
        counter c = {0};
        slm_allocator a = {count_alloc, count_free, &c};
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.vocab_only = 1;
        mp.use_mmap = mode == MODE_MMAP;
        mp.allocator = &a;
        slm_model *m = NULL;
        slm_error err;
        double t0 = now_ms();
        slm_status st = mode == MODE_MEMORY ? slm_model_load_memory(buf, size, &mp, &m, &err)
                                            : slm_model_load_file(path, &mp, &m, &err);
        ms[r] = now_ms() - t0;
        if (st != SLM_OK) {
            fprintf(stderr, "%s: %s\n", path, err.message);
            free(ms);
            free(buf);
            return 1;
        }
        if (r == 0) rss1 = maxrss_kb();
        n_vocab = slm_vocab_size(m);
        slm_model_free(m);
        if (c.live != 0) fprintf(stderr, "%s: %zu bytes not freed\n", path, c.live);
        if (r == 0) first = c;
    }
    qsort(ms, (size_t)runs, sizeof(double), cmp_double);
    const char *base = strrchr(path, '/');
    printf("%-28s %-6s vocab %6d  allocs %7zu  requested %10zu B  peak live %10zu B  "
           "max RSS +%6ld KiB  load %7.2f ms (median of %d)\n",
           base ? base + 1 : path, mode_name[mode], (int)n_vocab, first.n_alloc, first.bytes, first.peak,
           rss1 - rss0, ms[runs / 2], runs);
    free(ms);
    free(buf);
    return 0;
}

/* ---- a Qwen2-size byte-level BPE vocabulary ------------------------------- */

static void put(FILE *f, const void *p, size_t n) { fwrite(p, 1, n, f); }
static void put_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(f, b, 4);
}
static void put_u64(FILE *f, uint64_t v) {
    put_u32(f, (uint32_t)v);
    put_u32(f, (uint32_t)(v >> 32));
}
static void put_str(FILE *f, const char *s, size_t n) {
    put_u64(f, n);
    put(f, s, n);
}
static void put_key(FILE *f, const char *k, uint32_t type) {
    put_str(f, k, strlen(k));
    put_u32(f, type);
}

/* GPT-2's byte -> visible character map, as UTF-8 into out (returns bytes) */
static int byte_char(int b, char *out) {
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Piece k >= 256: a unique lowercase word (base 26 of k), every other one
   with GPT-2's "Ġ" (a leading space); average length about Qwen2's. */
static int synth_piece(int k, char *out) {
    int n = 0;
    if (k & 1) out[n++] = (char)0xC4, out[n++] = (char)0xA0;
    char tmp[16];
    int t = 0;
    for (int x = k; x > 0; x /= 26) tmp[t++] = (char)('a' + x % 26);
    for (int i = 0; i < 2; i++) out[n++] = 'e'; /* pads to the average length */
    while (t) out[n++] = tmp[--t];
    return n;
}

static int gen_qwen2(const char *path) {
    const int n_tok = 151936, n_special = 22, n_merges = 151387;
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }
    put_u32(f, 0x46554747u);
    put_u32(f, 3);
    put_u64(f, 0); /* tensors */
    put_u64(f, 7); /* keys */
    put_key(f, "general.architecture", 8), put_str(f, "qwen2", 5);
    put_key(f, "tokenizer.ggml.model", 8), put_str(f, "gpt2", 4);
    put_key(f, "tokenizer.ggml.pre", 8), put_str(f, "qwen2", 5);
    put_key(f, "tokenizer.ggml.tokens", 9), put_u32(f, 8), put_u64(f, (uint64_t)n_tok);
    char s[64];
    for (int k = 0; k < n_tok; k++) {
        int n;
        if (k < 256) n = byte_char(k, s);
        else if (k >= n_tok - n_special) n = snprintf(s, sizeof s, "<|special_%d|>", k - (n_tok - n_special));
        else n = synth_piece(k, s);
        put_str(f, s, (size_t)n);
    }
    put_key(f, "tokenizer.ggml.token_type", 9), put_u32(f, 5), put_u64(f, (uint64_t)n_tok);
    for (int k = 0; k < n_tok; k++) put_u32(f, k >= n_tok - n_special ? 3 : 1);
    put_key(f, "tokenizer.ggml.merges", 9), put_u32(f, 8), put_u64(f, (uint64_t)n_merges);
    for (int i = 0; i < n_merges; i++) {
        /* "left right": a piece split after its first character */
        char p[64];
        int n = synth_piece(256 + i, p), c = (unsigned char)p[0] >= 0xC0 ? 2 : 1;
        memcpy(s, p, (size_t)c);
        s[c] = ' ';
        memcpy(s + c + 1, p + c, (size_t)(n - c));
        put_str(f, s, (size_t)n + 1);
    }
    put_key(f, "tokenizer.ggml.eos_token_id", 4), put_u32(f, (uint32_t)(n_tok - n_special));
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "error writing %s\n", path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int mode = MODE_MMAP, runs = 5, rc = 0, files = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gen-qwen2") && i + 1 < argc) return gen_qwen2(argv[i + 1]);
        if (!strcmp(argv[i], "--no-mmap")) mode = MODE_READ;
        else if (!strcmp(argv[i], "--memory")) mode = MODE_MEMORY;
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else {
            rc |= measure(argv[i], mode, runs > 0 ? runs : 1);
            files++;
        }
    }
    if (!files) {
        fprintf(stderr, "usage: vocab_load [--no-mmap | --memory] [--runs N] FILE.gguf...\n"
                        "       vocab_load --gen-qwen2 OUT.gguf\n");
        return 2;
    }
    return rc;
}
