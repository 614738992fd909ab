/* Tokenizer: llama.cpp's test vectors for SentencePiece-style vocabularies
   (tests/data/tokenizer, format in tests/data/FIXTURES.md section 1), edge
   cases, the detokenizer and the streaming decoder. */
#include "test.h"

#include "slm.h"

#include <stdlib.h>
#include <string.h>

static slm_model *load_vocab(const char *rel) {
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.vocab_only = 1;
    slm_model *m = NULL;
    slm_error err;
    if (slm_model_load_file(data_path(rel), &mp, &m, &err) != SLM_OK) {
        CHECK(0, "load %s: %s", rel, err.message);
        return NULL;
    }
    return m;
}

/* Tokenize into a malloc'ed array; returns the count or -1. */
static int tok(const slm_model *m, const char *s, size_t n, int add_special, int parse_special, int32_t **ids) {
    int32_t cnt = 0;
    slm_status st = slm_tokenize(m, s, n, add_special, parse_special, NULL, 0, &cnt, NULL);
    if (st != SLM_OK && st != SLM_ERR_BUFFER) return -1;
    *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(cnt + 1));
    int32_t got = 0;
    st = slm_tokenize(m, s, n, add_special, parse_special, *ids, cnt, &got, NULL);
    if (st != SLM_OK || got != cnt) return -1;
    return cnt;
}

/* Run every vector of X.gguf.inp / X.gguf.out; returns the failures. */
static int run_vectors(const char *name, int *n_total) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/%s.gguf", name);
    slm_model *m = load_vocab(rel);
    if (!m) return 1;
    size_t ni, no;
    snprintf(rel, sizeof rel, "tokenizer/%s.gguf.inp", name);
    char *inp = (char *)read_all(data_path(rel), &ni);
    snprintf(rel, sizeof rel, "tokenizer/%s.gguf.out", name);
    char *out = (char *)read_all(data_path(rel), &no);
    CHECK(inp && out, "%s: missing .inp/.out", name);
    if (!inp || !out) return 1;
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    char *p = inp, *q = out;
    int fails = 0, count = 0;
    for (;;) {
        char *e = strstr(p, sep);
        if (!e) break;
        size_t len = (size_t)(e - p);
        char *nl = strchr(q, '\n');
        if (!nl) {
            CHECK(0, "%s: .out has fewer lines than inputs", name);
            fails++;
            break;
        }
        *nl = 0;
        int64_t want[1024];
        int nw = 0;
        for (char *t = q; *t;) {
            char *end;
            long x = strtol(t, &end, 10);
            if (end == t) {
                t++;
                continue;
            }
            if (nw < 1024) want[nw++] = x;
            t = end;
        }
        int32_t *ids = NULL;
        int n = tok(m, p, len, 0, 0, &ids);
        int ok = n == nw;
        for (int i = 0; ok && i < n; i++) ok = ids[i] == want[i];
        if (!ok) {
            fails++;
            printf("  %s vector %d: '%.*s' gives", name, count, (int)len, p);
            for (int i = 0; i < n; i++) printf(" %d", ids[i]);
            printf(" (want %d ids:", nw);
            for (int i = 0; i < nw; i++) printf(" %lld", (long long)want[i]);
            printf(")\n");
        }
        free(ids);
        count++;
        p = e + seplen;
        q = nl + 1;
    }
    *n_total = count;
    free(inp);
    free(out);
    slm_model_free(m);
    return fails;
}

static int find_sub(const char *s, size_t n, const char *sub) {
    size_t k = strlen(sub);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, sub, k)) return 1;
    return 0;
}

static int eq_ids(const int32_t *a, int na, const int32_t *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static char *detok(const slm_model *m, const int32_t *ids, int n, int remove_special, int unparse, size_t *len) {
    size_t need = 0;
    slm_detokenize(m, ids, n, remove_special, unparse, NULL, 0, &need, NULL);
    char *buf = (char *)malloc(need + 1);
    slm_status st = slm_detokenize(m, ids, n, remove_special, unparse, buf, need + 1, len, NULL);
    if (st != SLM_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Stream ids through slm_text_stream, checking that no chunk ends inside a
   UTF-8 character; returns the concatenation. */
static char *stream_all(const slm_model *m, const int32_t *ids, int n, int flags, int *split_ok) {
    slm_text_stream st;
    slm_text_stream_init(&st, m, flags);
    size_t cap = 64;
    for (int i = 0; i < n; i++) cap += (size_t)slm_vocab_max_piece(m) + 4;
    char *all = (char *)malloc(cap), chunk[1024];
    size_t tot = 0;
    *split_ok = 1;
    for (int i = 0; i < n; i++) {
        size_t l = 0;
        if (slm_text_stream_push(&st, ids[i], chunk, sizeof chunk, &l) != SLM_OK) *split_ok = 0;
        /* a chunk never ends in the middle of a character */
        if (l > 0) {
            size_t k = l;
            while (k > 0 && ((unsigned char)chunk[k - 1] & 0xc0) == 0x80) k--;
            if (k > 0) {
                unsigned char b = (unsigned char)chunk[k - 1];
                size_t need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
                if (need != l - k + 1 && b >= 0xc0) *split_ok = 0;
            }
        }
        memcpy(all + tot, chunk, l);
        tot += l;
    }
    tot += slm_text_stream_flush(&st, all + tot, cap - tot);
    all[tot] = 0;
    return all;
}

static void edge_cases(void) {
    slm_model *m = load_vocab("tokenizer/ggml-vocab-llama-spm.gguf");
    if (!m) return;
    int32_t *ids = NULL;
    int n;

    CHECK(slm_vocab_type(m) == SLM_VOCAB_SPM, "vocab type %d", slm_vocab_type(m));
    CHECK(slm_vocab_size(m) == 32000, "vocab size %d", slm_vocab_size(m));
    CHECK(slm_token_bos(m) == 1 && slm_token_eos(m) == 2 && slm_token_unk(m) == 0, "special ids %d %d %d",
          slm_token_bos(m), slm_token_eos(m), slm_token_unk(m));
    CHECK(slm_token_is_eog(m, 2) && !slm_token_is_eog(m, 1) && !slm_token_is_eog(m, 100), "eog set");
    slm_model_info info;
    slm_model_get_info(m, &info);
    CHECK(info.n_vocab == 32000, "vocab-only n_vocab %d", info.n_vocab);

    /* empty text: nothing, or BOS alone */
    n = tok(m, "", 0, 0, 0, &ids);
    CHECK(n == 0, "empty -> %d tokens", n);
    free(ids);
    n = tok(m, "", 0, 1, 0, &ids);
    CHECK(n == 1 && ids[0] == 1, "empty with BOS -> %d tokens", n);
    free(ids);

    /* buffer too small: SLM_ERR_BUFFER with the count */
    {
        int32_t small[2], cnt = 0;
        slm_error err;
        slm_status st = slm_tokenize(m, "Hello world, again", 18, 1, 0, small, 2, &cnt, &err);
        CHECK(st == SLM_ERR_BUFFER && cnt > 2, "small buffer: status %d count %d", st, cnt);
    }

    /* only spaces: one U+2581 piece per space run as SentencePiece gives it */
    n = tok(m, "   ", 3, 0, 0, &ids);
    CHECK(n >= 1, "spaces -> %d tokens", n);
    {
        size_t l;
        char *back = detok(m, ids, n, 0, 0, &l);
        CHECK(back && l == 3 && !memcmp(back, "   ", 3), "spaces round trip: '%s'", back ? back : "(null)");
        free(back);
    }
    free(ids);

    /* long word: many merges, still round trips */
    {
        char word[4096];
        for (int i = 0; i < 4000; i++) word[i] = "abcdefghijklmnopqrstuvwxyz"[(i * 7) % 26];
        word[4000] = 0;
        n = tok(m, word, 4000, 0, 0, &ids);
        size_t l;
        char *back = detok(m, ids, n, 0, 0, &l);
        CHECK(n > 100 && back && l == 4000 && !memcmp(back, word, 4000), "long word: %d tokens, round trip", n);
        free(back);
        free(ids);
    }

    /* round trips (no BOS: the leading space the tokenizer adds is dropped) */
    {
        const char *texts[] = {"Hello world", " Hello  world ", "a\tb\nc\n\n", "I ❤️ 🦙 emoji 😀!",
                               "日本語のテキスト", "Ünïcödé ąčęėįšųūž", "x"};
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            size_t tl = strlen(texts[i]), l;
            n = tok(m, texts[i], tl, 0, 0, &ids);
            char *back = detok(m, ids, n, 0, 0, &l);
            CHECK(back && l == tl && !memcmp(back, texts[i], tl), "round trip '%s' -> '%s'", texts[i],
                  back ? back : "(null)");
            free(back);
            /* with BOS, remove_special: llama.cpp keeps the prefix space */
            free(ids);
            n = tok(m, texts[i], tl, 1, 0, &ids);
            back = detok(m, ids, n, 1, 0, &l);
            CHECK(back && l == tl + 1 && back[0] == ' ' && !memcmp(back + 1, texts[i], tl),
                  "round trip with BOS '%s' -> '%s'", texts[i], back ? back : "(null)");
            free(back);
            free(ids);
        }
    }

    /* emoji without a piece: byte fallback, 4 byte tokens <0xF0>.. */
    n = tok(m, "\xf0\x9f\xa6\x99", 4, 0, 0, &ids); /* U+1F999 */
    CHECK(n == 5 && ids[0] == 29871 && ids[1] == 3 + 0xf0 && ids[2] == 3 + 0x9f && ids[3] == 3 + 0xa6 &&
              ids[4] == 3 + 0x99,
          "emoji byte fallback: %d tokens", n);
    {
        /* streaming: the 4 byte tokens give nothing until the last one */
        slm_text_stream st;
        slm_text_stream_init(&st, m, SLM_STREAM_STRIP_SPACE);
        char buf[64];
        size_t l0, l1, l2, l3, l4;
        slm_text_stream_push(&st, ids[0], buf, sizeof buf, &l0);
        slm_text_stream_push(&st, ids[1], buf, sizeof buf, &l1);
        slm_text_stream_push(&st, ids[2], buf, sizeof buf, &l2);
        slm_text_stream_push(&st, ids[3], buf, sizeof buf, &l3);
        slm_text_stream_push(&st, ids[4], buf, sizeof buf, &l4);
        CHECK(l0 == 0 && l1 == 0 && l2 == 0 && l3 == 0 && l4 == 4 && !memcmp(buf, "\xf0\x9f\xa6\x99", 4),
              "stream holds a split emoji: %zu %zu %zu %zu %zu", l0, l1, l2, l3, l4);
        /* a too-small buffer does not consume the token */
        slm_text_stream_init(&st, m, 0);
        slm_text_stream_push(&st, ids[1], buf, sizeof buf, &l0);
        CHECK(slm_text_stream_push(&st, ids[2], buf, 1, &l1) == SLM_ERR_BUFFER && l1 == 2,
              "stream: small buffer needs %zu", l1);
        CHECK(slm_text_stream_push(&st, ids[2], buf, sizeof buf, &l1) == SLM_OK && l1 == 0,
              "stream: retry holds 2 bytes, %zu out", l1);
        /* an incomplete character at the end comes out on flush */
        CHECK(slm_text_stream_flush(&st, buf, sizeof buf) == 2 && (unsigned char)buf[0] == 0xf0, "flush");
    }
    free(ids);

    /* streaming = detokenize, for a mixed text */
    {
        const char *t = "Grüße, 世界! 🦙🦙 done\n";
        n = tok(m, t, strlen(t), 0, 0, &ids);
        int split_ok;
        char *s = stream_all(m, ids, n, SLM_STREAM_STRIP_SPACE, &split_ok);
        CHECK(split_ok && !strcmp(s, t), "stream '%s' -> '%s'", t, s);
        free(s);
        free(ids);
    }

    /* invalid UTF-8: no crash, bytes come back unchanged */
    {
        const char bad[] = "a\xff\xfe,b\xc3(\x80\x80z\xe2\x82.\xf0\x9f";
        size_t bl = sizeof bad - 1, l;
        n = tok(m, bad, bl, 0, 0, &ids);
        CHECK(n > 0, "invalid utf-8 tokenizes: %d", n);
        char *back = detok(m, ids, n, 0, 0, &l);
        CHECK(back && l == bl && !memcmp(back, bad, bl), "invalid utf-8 round trip (%zu of %zu bytes)", l, bl);
        free(back);
        int split_ok;
        char *s = stream_all(m, ids, n, SLM_STREAM_STRIP_SPACE, &split_ok);
        CHECK(strlen(s) == bl && !memcmp(s, bad, bl), "invalid utf-8 streams through");
        free(s);
        free(ids);
        /* a lead byte swallows the bytes after it as one character (as in
           llama.cpp), also those of an escaped space: they come back as the
           bytes of U+2581 */
        n = tok(m, "x\xe0 y", 4, 0, 0, &ids);
        back = detok(m, ids, n, 0, 0, &l);
        CHECK(back && l == 6 && !memcmp(back, "x\xe0\xe2\x96\x81y", 6), "lead byte before a space");
        free(back);
        free(ids);
        /* a truncated lead byte at the very end of the input */
        n = tok(m, "ab\xe2", 3, 0, 0, &ids);
        back = detok(m, ids, n, 0, 0, &l);
        CHECK(back && l == 3 && !memcmp(back, "ab\xe2", 3), "truncated tail: %d tokens", n);
        free(back);
        free(ids);
    }

    /* special tokens: parsed only when asked */
    {
        const char *t = "<s>Hello</s>";
        n = tok(m, t, strlen(t), 0, 1, &ids);
        CHECK(n >= 3 && ids[0] == 1 && ids[n - 1] == 2, "parse_special: %d tokens, first %d last %d", n,
              n > 0 ? ids[0] : -1, n > 0 ? ids[n - 1] : -1);
        /* after a special token the space prefix comes back: "▁Hello" */
        int32_t *h = NULL;
        int nh = tok(m, "Hello", 5, 0, 0, &h);
        CHECK(n == nh + 2 && eq_ids(ids + 1, n - 2, h, nh), "text between specials tokenizes as text");
        free(h);
        free(ids);
        n = tok(m, t, strlen(t), 0, 0, &ids);
        int any = 0;
        for (int i = 0; i < n; i++) any |= ids[i] == 1 || ids[i] == 2;
        CHECK(n > 3 && !any, "parse_special off: '<s>' is text (%d tokens)", n);
        size_t l;
        char *back = detok(m, ids, n, 0, 0, &l);
        CHECK(back && !strcmp(back, t), "special text round trips as text: '%s'", back ? back : "");
        free(back);
        free(ids);
        /* unparse_special renders control tokens */
        int32_t sp[] = {1, 15043, 2};
        back = detok(m, sp, 3, 0, 1, &l);
        CHECK(back && !strcmp(back, "<s> Hello</s>"), "unparse_special: '%s'", back ? back : "");
        free(back);
        back = detok(m, sp, 3, 0, 0, &l);
        CHECK(back && !strcmp(back, " Hello"), "control tokens hidden: '%s'", back ? back : "");
        free(back);
        char piece[16];
        size_t pl;
        CHECK(slm_token_to_piece(m, 15043, 0, piece, sizeof piece, &pl) == SLM_OK && pl == 6 &&
                  !memcmp(piece, " Hello", 6),
              "piece of 15043");
        CHECK(slm_token_to_piece(m, 3 + 'A', 0, piece, sizeof piece, &pl) == SLM_OK && pl == 1 && piece[0] == 'A',
              "byte piece");
        CHECK(slm_token_to_piece(m, 15043, 0, piece, 3, &pl) == SLM_ERR_BUFFER && pl == 6, "piece buffer");
        CHECK(slm_token_to_piece(m, 32000, 0, piece, sizeof piece, &pl) == SLM_ERR_INVALID_ARG, "piece range");
    }
    /* random bytes (with bits of special tokens and spaces mixed in): no
       crash, and the tokens of text with no special token spell it back */
    {
        uint64_t rs = 99;
        const char *bits[] = {"<s>", "</s>", "<unk>", " ", "  ", "\xe2\x96\x81", "\xf0\x9f", "\xc3", "a", "\n"};
        int ok = 1, rt = 1, checked = 0;
        for (int it = 0; it < 400; it++) {
            char t[96];
            size_t tl = 0;
            int parts = (int)(t_rand(&rs) % 12);
            for (int k = 0; k < parts && tl < 80; k++) {
                if (t_rand(&rs) % 2) {
                    const char *b = bits[t_rand(&rs) % 10];
                    memcpy(t + tl, b, strlen(b));
                    tl += strlen(b);
                } else {
                    t[tl++] = (char)(t_rand(&rs) & 0xff);
                }
            }
            int parse = (int)(t_rand(&rs) % 2);
            n = tok(m, t, tl, it % 3 == 0, parse, &ids);
            if (n < 0) ok = 0;
            for (int k = 0; k < n; k++)
                if (ids[k] < 0 || ids[k] >= 32000) ok = 0;
            size_t l;
            char *back = detok(m, ids, n, 1, parse, &l);
            if (!back) ok = 0;
            /* spaces after a stray lead byte come back as U+2581, so compare
               only inputs that are valid UTF-8 or have no spaces */
            int has_space = memchr(t, ' ', tl) != NULL, valid = 1;
            for (size_t k = 0; k < tl;) {
                unsigned char b = (unsigned char)t[k];
                size_t need = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
                if (!need || k + need > tl) { valid = 0; break; }
                for (size_t j = 1; j < need; j++) if (((unsigned char)t[k + j] & 0xc0) != 0x80) valid = 0;
                k += need;
            }
            /* a literal U+2581 reads back as a space, and with parse_special
               the text after a special token gets the prefix space: skip those */
            int has_lower = find_sub(t, tl, "\xe2\x96\x81");
            if (back && (valid || !has_space) && tl > 0 && !parse && !has_lower) {
                const char *want = t;
                size_t wl = tl;
                checked++;
                int bos = it % 3 == 0; /* llama.cpp keeps the prefix space after a removed BOS */
                if (!(bos ? l == wl + 1 && back[0] == ' ' && !memcmp(back + 1, want, wl)
                          : l == wl && !memcmp(back, want, wl)))
                {
                    rt = 0;
                    printf("  round trip: %zu bytes in, %zu out\n", tl, l);
                }
            }
            free(back);
            free(ids);
        }
        CHECK(ok, "random bytes tokenize and detokenize");
        CHECK(rt && checked > 50, "random text round trips (%d checked)", checked);
        printf("  random inputs: 400 tokenized, %d round trips checked\n", checked);
    }
    slm_model_free(m);
}

/* The demo model's prompts tokenize to llama.cpp's ids (with BOS). */
static void demo_prompts(void) {
    size_t jn;
    char *js = (char *)read_all(data_path("demo/kjv-1m.ref.json"), &jn);
    CHECK(js != NULL, "missing demo/kjv-1m.ref.json");
    if (!js) return;
    slm_model *m = load_vocab("demo/kjv-1m-q8_0.gguf");
    if (!m) {
        free(js);
        return;
    }
    const char *prompts[] = {"In the beginning", "And the LORD said", "Blessed are the"};
    for (int i = 0; i < 3; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\"", prompts[i]);
        const char *sec = strstr(js, key);
        int64_t want[64];
        int nw = sec ? json_ints(sec, "prompt_ids", want, 64) : 0;
        int32_t *ids = NULL;
        int n = tok(m, prompts[i], strlen(prompts[i]), 1, 0, &ids);
        int ok = n == nw && nw > 0;
        for (int k = 0; ok && k < n; k++) ok = ids[k] == want[k];
        CHECK(ok, "demo prompt '%s': %d ids vs %d", prompts[i], n, nw);
        free(ids);
    }
    slm_model_free(m);
    free(js);
}

void test_tokenizer(void) {
    const char *vocabs[] = {"ggml-vocab-llama-spm", "ggml-vocab-phi-3", "ggml-vocab-gpt-2", "ggml-vocab-starcoder"};
    for (int i = 0; i < 4; i++) {
        int total = 0, fails = run_vectors(vocabs[i], &total);
        CHECK(fails == 0 && total > 0, "%s: %d of %d vectors fail", vocabs[i], fails, total);
        printf("  %s: %d/%d vectors pass\n", vocabs[i], total - fails, total);
    }
    edge_cases();
    demo_prompts();
}
