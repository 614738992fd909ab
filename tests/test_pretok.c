/* Every tokenizer.ggml.pre name of llama.cpp's list: tokenized exactly as
   llama.cpp does (its ids for random mixed-script texts, in
   tests/data/tokenizer/pretok-vectors.txt, made by tools/pretok_vectors.py
   with llama.cpp's llama_tokenize on the same vocabulary with that pre
   value), or refused at load with SLM_ERR_UNSUPPORTED naming it. Also the
   deepseek white-space rule found by the differential run and the
   SentencePiece-style BPE of gemma4 (decoding back to the text). */
#include "test.h"

#include "slm.h"

#include <stdlib.h>
#include <string.h>

/* llama.cpp's names (src/llama-vocab.cpp, llama_vocab::impl::load), as of
   the vectors' llama.cpp commit. */
static const char *const LLAMA_PRE_NAMES[] = {
    "a.x-4.0", "afmoe", "bailingmoe", "bailingmoe2", "bloom", "chameleon", "chatglm-bpe", "codeshell",
    "cohere2moe", "command-r", "dbrx", "deepseek-coder", "deepseek-llm", "deepseek-r1-qwen", "deepseek-v3",
    "default", "exaone", "exaone-moe", "exaone4", "f2llmv2", "falcon", "falcon-h1", "falcon3", "gemma4",
    "gigachat", "glm4", "gpt-2", "gpt-4o", "gpt3-finnish", "granite-docling", "granite-embed-multi-311m",
    "granite-embed-multi-97m", "grok-2", "hunyuan", "hunyuan-dense", "hy_v4", "jais", "jais-2", "jina-de",
    "jina-es", "jina-v1-en", "jina-v2-code", "jina-v2-de", "jina-v2-es", "jina-v5-nano", "joyai-llm", "kanana2",
    "kimi-k2", "kormo", "laguna", "lfm2", "llada-moe", "llama-bpe", "llama-v3", "llama3", "llama4", "megrez",
    "mellum", "mellum2", "midm-2.0", "minerva-7b", "minicpm5", "minimax-m2", "modern-bert", "mpt", "olmo",
    "phi-2", "pixtral", "poro-chat", "qwen2", "qwen35", "refact", "roberta-bpe", "sarvam-moe", "seed-coder",
    "smaug-bpe", "smollm", "solar-open", "spark2_5", "stablelm2", "starcoder", "superbpe", "talkie", "tekken",
    "tiny_aya", "trillion", "ufakzeka", "viking", "whitespace", "youtu",
};

/* The pre values whose vocabulary is SentencePiece-style (gemma4.gguf). */
static int raw_pre(const char *p) {
    return !strcmp(p, "gemma4") || !strcmp(p, "granite-embed-multi-311m") || !strcmp(p, "sarvam-moe");
}

/* ---- a vocabulary-only GGUF with string keys replaced ---------------------- */

static uint64_t rd64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Bytes of a value of type t at p (no tensors in these files; bounds are
   the test's own data). */
static size_t val_size(const unsigned char *p, uint32_t t) {
    static const size_t SZ[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t == 8) return 8 + (size_t)rd64(p);
    if (t == 9) {
        uint32_t at = rd32(p);
        uint64_t n = rd64(p + 4);
        size_t o = 12;
        if (at != 8 && at != 9) return o + SZ[at] * (size_t)n;
        for (uint64_t i = 0; i < n; i++) o += val_size(p + o, at);
        return o;
    }
    return SZ[t];
}

static void put(unsigned char **o, const void *d, size_t n) {
    memcpy(*o, d, n);
    *o += n;
}
static void put64(unsigned char **o, uint64_t v) {
    for (int i = 0; i < 8; i++) *(*o)++ = (unsigned char)(v >> (8 * i));
}
static void put_kv_str(unsigned char **o, const char *k, const char *v) {
    put64(o, strlen(k));
    put(o, k, strlen(k));
    unsigned char t[4] = {8, 0, 0, 0};
    put(o, t, 4);
    put64(o, strlen(v));
    put(o, v, strlen(v));
}

/* The vocabulary file with tokenizer.ggml.pre (and model, if not NULL) set;
   malloc'ed, *n its size. */
static unsigned char *with_pre(const unsigned char *g, size_t gn, const char *model, const char *pre, size_t *n) {
    unsigned char *out = (unsigned char *)malloc(gn + 512), *o = out;
    uint64_t nkv = rd64(g + 16), kept = 0;
    put(&o, g, 24);
    size_t p = 24;
    for (uint64_t i = 0; i < nkv; i++) {
        size_t kl = (size_t)rd64(g + p);
        const char *k = (const char *)g + p + 8;
        uint32_t t = rd32(g + p + 8 + kl);
        size_t e = p + 12 + kl + val_size(g + p + 12 + kl, t);
        int drop = (kl == 18 && !memcmp(k, "tokenizer.ggml.pre", 18)) ||
                   (model && kl == 20 && !memcmp(k, "tokenizer.ggml.model", 20));
        if (!drop) {
            put(&o, g + p, e - p);
            kept++;
        }
        p = e;
    }
    put_kv_str(&o, "tokenizer.ggml.pre", pre);
    kept++;
    if (model) {
        put_kv_str(&o, "tokenizer.ggml.model", model);
        kept++;
    }
    unsigned char *c = out + 16;
    put64(&c, kept);
    while ((o - out) % 32) *o++ = 0;
    *n = (size_t)(o - out);
    return out;
}

static slm_status load_pre(const unsigned char *g, size_t gn, const char *model, const char *pre, slm_model **m,
                           unsigned char **keep, slm_error *err) {
    size_t n;
    *keep = with_pre(g, gn, model, pre, &n);
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.vocab_only = 1;
    *m = NULL;
    return slm_model_load_memory(*keep, n, &mp, m, err);
}

static int hexv(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

/* ---- the vectors ---------------------------------------------------------------- */

typedef struct vec {
    char pre[40];
    char *text;
    size_t len;
    int32_t *ids;
    int n;
} vec;

static int read_vectors(vec **out) {
    size_t sz;
    char *f = (char *)read_all(data_path("tokenizer/pretok-vectors.txt"), &sz);
    if (!f) return -1;
    int cap = 1024, nv = 0;
    vec *v = (vec *)calloc((size_t)cap, sizeof *v);
    for (char *line = f; line < f + sz && *line;) {
        char *end = strchr(line, '\n');
        if (!end) end = f + sz;
        *end = 0;
        if (line[0] != '#' && line[0] && nv < cap) {
            char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
            if (t1 && t2 && (size_t)(t1 - line) < sizeof v->pre) {
                vec *x = &v[nv++];
                memcpy(x->pre, line, (size_t)(t1 - line));
                x->len = (size_t)(t2 - t1 - 1) / 2;
                x->text = (char *)malloc(x->len + 1);
                for (size_t i = 0; i < x->len; i++) x->text[i] = (char)(hexv(t1[1 + 2 * i]) * 16 + hexv(t1[2 + 2 * i]));
                x->ids = (int32_t *)malloc(sizeof(int32_t) * (strlen(t2) / 2 + 1));
                for (char *q = t2 + 1; *q;) {
                    char *e2;
                    long id = strtol(q, &e2, 10);
                    if (e2 == q) break;
                    x->ids[x->n++] = (int32_t)id;
                    q = e2;
                }
            }
        }
        line = end + 1;
    }
    free(f);
    *out = v;
    return nv;
}

static int in_list(const char *const *l, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(l[i], s)) return 1;
    return 0;
}

static void vectors(void) {
    vec *v = NULL;
    int nv = read_vectors(&v);
    CHECK(nv > 500, "pretok-vectors.txt: %d vectors", nv);
    if (nv <= 0) return;
    size_t gn = 0, sn = 0;
    unsigned char *gpt2 = read_all(data_path("tokenizer/ggml-vocab-gpt-2.gguf"), &gn);
    unsigned char *spb = read_all(data_path("tokenizer/gemma4-synth.gguf"), &sn);
    CHECK(gpt2 && spb, "base vocabularies");
    if (!gpt2 || !spb) return;
    int names = 0, refused = 0, total = 0, bad_total = 0;
    for (size_t k = 0; k < sizeof LLAMA_PRE_NAMES / sizeof LLAMA_PRE_NAMES[0]; k++) {
        const char *pre = LLAMA_PRE_NAMES[k];
        int have = 0;
        for (int i = 0; i < nv; i++) have += !strcmp(v[i].pre, pre);
        slm_model *m = NULL;
        unsigned char *keep = NULL;
        slm_error err;
        slm_status st = raw_pre(pre) ? load_pre(spb, sn, strcmp(pre, "gemma4") ? "gpt2" : NULL, pre, &m, &keep, &err)
                                     : load_pre(gpt2, gn, NULL, pre, &m, &keep, &err);
        if (!have) {
            /* no vectors: must be refused, with the name in the message */
            CHECK(st == SLM_ERR_UNSUPPORTED && strstr(err.message, pre), "pre '%s': refused (%d: %s)", pre, (int)st,
                  st ? err.message : "loaded");
            refused += st == SLM_ERR_UNSUPPORTED;
            slm_model_free(m);
            free(keep);
            continue;
        }
        CHECK(st == SLM_OK, "pre '%s' loads: %s", pre, st ? err.message : "");
        if (st != SLM_OK) {
            free(keep);
            continue;
        }
        int bad = 0, n = 0;
        for (int i = 0; i < nv; i++) {
            if (strcmp(v[i].pre, pre)) continue;
            int32_t ids[4096], got = 0;
            st = slm_tokenize(m, v[i].text, v[i].len, 0, 0, ids, 4096, &got, NULL);
            int ok = st == SLM_OK && got == v[i].n && !memcmp(ids, v[i].ids, sizeof(int32_t) * (size_t)got);
            if (!ok && bad < 2) {
                printf("  %s: vector %d differs (%d ids, llama.cpp %d)\n", pre, n, (int)got, v[i].n);
            }
            /* the SentencePiece-style pieces decode back to the text */
            if (ok && raw_pre(pre)) {
                char back[8192];
                size_t bl = 0, pl = 0;
                for (int32_t j = 0; j < got && bl + 64 < sizeof back; j++, bl += pl)
                    if (slm_token_to_piece(m, ids[j], 0, back + bl, 64, &pl) != SLM_OK) pl = 0;
                ok = bl == v[i].len && !memcmp(back, v[i].text, v[i].len);
                if (!ok) printf("  %s: vector %d does not decode back (%d bytes)\n", pre, n, (int)bl);
            }
            bad += !ok;
            n++;
        }
        CHECK(bad == 0, "pre '%s': %d of %d vectors differ from llama.cpp", pre, bad, n);
        names++;
        total += n;
        bad_total += bad;
        slm_model_free(m);
        free(keep);
    }
    /* names outside llama.cpp's list are refused too (llama.cpp refuses them) */
    {
        slm_model *m = NULL;
        unsigned char *keep = NULL;
        slm_error err;
        slm_status st = load_pre(gpt2, gn, NULL, "no-such-pre", &m, &keep, &err);
        CHECK(st == SLM_ERR_UNSUPPORTED && strstr(err.message, "no-such-pre"), "unknown pre refused: %s", err.message);
        slm_model_free(m);
        free(keep);
    }
    /* every name with vectors is one of llama.cpp's */
    for (int i = 0; i < nv; i++)
        if (!in_list(LLAMA_PRE_NAMES, sizeof LLAMA_PRE_NAMES / sizeof LLAMA_PRE_NAMES[0], v[i].pre)) {
            CHECK(0, "vector of '%s', not a llama.cpp name", v[i].pre);
            break;
        }
    printf("  pre-tokenizers: %d names match llama.cpp (%d vectors, %d differ), %d refused\n", names, total,
           bad_total, refused);
    for (int i = 0; i < nv; i++) {
        free(v[i].text);
        free(v[i].ids);
    }
    free(v);
    free(gpt2);
    free(spb);
}

void test_pretok(void) { vectors(); }
