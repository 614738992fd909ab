/* slm_generate on the demo model (tests/data/demo/kjv-1m-*.gguf): greedy
   generation reproduces llama.cpp's ids and text (kjv-1m.ref.json) for every
   weight type, and the stop conditions (EOG, max tokens, stop strings,
   callback, full context) behave as documented. */
#include "test.h"

#include "slm.h"

#include <stdlib.h>
#include <string.h>

static const char *FILES[] = {"kjv-1m-f32.gguf", "kjv-1m-f16.gguf", "kjv-1m-q8_0.gguf", "kjv-1m-q4_0.gguf"};
static const char *PROMPTS[] = {"In the beginning", "And the LORD said", "Blessed are the"};

typedef struct capture {
    char text[16384];
    size_t n;
    int calls, stop_after;
} capture;

static int on_text(void *user, const char *t, size_t n) {
    capture *c = (capture *)user;
    if (c->n + n < sizeof c->text) {
        memcpy(c->text + c->n, t, n);
        c->n += n;
        c->text[c->n] = 0;
    }
    c->calls++;
    return c->stop_after && c->calls >= c->stop_after;
}

typedef struct ref {
    int64_t prompt[64], greedy[64];
    int n_prompt, n_greedy;
    char text[2048];
} ref;

static int get_ref(const char *js, const char *file, const char *prompt, ref *r) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\"", file);
    const char *p = strstr(js, key);
    if (!p) return 0;
    snprintf(key, sizeof key, "\"%s\"", prompt);
    p = strstr(p, key);
    if (!p) return 0;
    r->n_prompt = json_ints(p, "prompt_ids", r->prompt, 64);
    r->n_greedy = json_ints(p, "greedy_ids", r->greedy, 64);
    const char *t = strstr(p, "\"greedy_text\"");
    if (!t || !(t = strchr(t + 13, '"'))) return 0;
    t++;
    const char *e = strchr(t, '"');
    if (!e || (size_t)(e - t) >= sizeof r->text || memchr(t, '\\', (size_t)(e - t))) return 0;
    memcpy(r->text, t, (size_t)(e - t));
    r->text[e - t] = 0;
    return r->n_prompt > 0 && r->n_greedy == 32;
}

static slm_model *load(const char *file) {
    char rel[128];
    snprintf(rel, sizeof rel, "demo/%s", file);
    slm_model *m = NULL;
    slm_error err;
    if (slm_model_load_file(data_path(rel), NULL, &m, &err) != SLM_OK) {
        CHECK(0, "load %s: %s", rel, err.message);
        return NULL;
    }
    return m;
}

static slm_session *session(const slm_model *m, int kv_type, int n_ctx) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.kv_type = kv_type;
    sp.n_threads = 1;
    sp.n_ctx = n_ctx;
    slm_session *s = NULL;
    slm_error err;
    if (slm_session_create(m, &sp, &s, &err) != SLM_OK) CHECK(0, "session: %s", err.message);
    return s;
}

static void greedy_params(slm_generate_params *gp, capture *c, int32_t *ids, int cap, int max_tokens) {
    slm_generate_params_init(gp);
    gp->sampler.temperature = 0;
    gp->max_tokens = max_tokens;
    gp->on_text = on_text;
    gp->user = c;
    gp->tokens_out = ids;
    gp->tokens_cap = cap;
    memset(c, 0, sizeof *c);
}

static int same_ids(const int32_t *a, const int64_t *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* Feed the prompt and llama.cpp's greedy ids; the first step where our
   argmax differs (32 if none), with our top-1/top-2 gap there relative to
   the largest |logit|. */
static int first_divergence(const slm_model *m, const ref *r, int kv_type, double *relgap) {
    slm_model_info in;
    slm_model_get_info(m, &in);
    slm_session *s = session(m, kv_type, 0);
    int32_t seq[128];
    int n = 0;
    for (int i = 0; i < r->n_prompt; i++) seq[n++] = (int32_t)r->prompt[i];
    for (int i = 0; i < 32; i++) seq[n++] = (int32_t)r->greedy[i];
    *relgap = 0;
    int step = 32;
    if (!s || slm_decode(s, seq, r->n_prompt, NULL) != SLM_OK) step = 0;
    for (int i = 0; i < 32 && step == 32; i++) {
        const float *l = slm_session_logits(s, -1);
        int b1 = 0, b2 = -1;
        float amax = 0;
        for (int k = 0; k < in.n_vocab; k++) {
            if (l[k] > l[b1]) b1 = k;
            if (l[k] > amax || -l[k] > amax) amax = l[k] > 0 ? l[k] : -l[k];
        }
        for (int k = 0; k < in.n_vocab; k++)
            if (k != b1 && (b2 < 0 || l[k] > l[b2])) b2 = k;
        if (b1 != r->greedy[i]) {
            *relgap = (l[b1] - l[r->greedy[i]]) / (amax > 0 ? amax : 1);
            step = i;
        } else if (slm_decode(s, &seq[r->n_prompt + i], 1, NULL) != SLM_OK) {
            step = i;
        }
    }
    slm_session_free(s);
    return step;
}

static void test_demo_greedy(const char *js) {
    for (int f = 0; f < 4; f++) {
        slm_model *m = load(FILES[f]);
        if (!m) continue;
        int ok_ids = 0, ok_f16 = 0, ok_text = 0;
        for (int p = 0; p < 3; p++) {
            ref r;
            if (!get_ref(js, FILES[f], PROMPTS[p], &r)) {
                CHECK(0, "ref.json: no entry for %s / %s", FILES[f], PROMPTS[p]);
                continue;
            }
            /* the tokenizer gives llama.cpp's prompt ids (BOS included) */
            int32_t pid[64], np = 0;
            slm_tokenize(m, PROMPTS[p], strlen(PROMPTS[p]), 1, 0, pid, 64, &np, NULL);
            CHECK(np == r.n_prompt && same_ids(pid, r.prompt, np), "%s '%s': prompt ids", FILES[f], PROMPTS[p]);

            for (int kv = 0; kv < 2; kv++) {
                slm_session *s = session(m, kv == 0 ? SLM_TYPE_F32 : SLM_TYPE_F16, 0);
                if (!s) continue;
                capture c;
                int32_t ids[64];
                slm_generate_params gp;
                slm_generate_result res;
                slm_error err;
                greedy_params(&gp, &c, ids, 64, 32);
                slm_status st = slm_generate(s, PROMPTS[p], strlen(PROMPTS[p]), NULL, 0, &gp, &res, &err);
                CHECK(st == SLM_OK, "%s: generate: %s", FILES[f], err.message);
                int same = st == SLM_OK && res.n_generated == 32 && same_ids(ids, r.greedy, 32);
                /* Quantized files: llama.cpp quantizes activations to 8 bits,
                   where a float rounding difference upstream can move one
                   value by a whole step, so a near-tie may go the other way
                   (FIXTURES.md section 4 allows this). Ids must match up to
                   the first step where our top-2 gap is below 2e-3 of the
                   largest logit, and all 32 elsewhere. */
                int must = 32;
                double relgap = 0;
                if (!same && f >= 2) {
                    must = first_divergence(m, &r, kv == 0 ? SLM_TYPE_F32 : SLM_TYPE_F16, &relgap);
                    if (must < 32 && relgap < 2e-3 && same_ids(ids, r.greedy, must)) {
                        printf("  %s '%s' (%s KV): near-tie at step %d (gap %.1e of the largest logit); the "
                               "%d ids before it equal llama.cpp's\n",
                               FILES[f], PROMPTS[p], kv == 0 ? "F32" : "F16", must, relgap, must);
                        same = 1;
                    }
                }
                if (kv == 0) {
                    ok_ids += same;
                    CHECK(same, "%s '%s': 32 greedy ids (F32 KV) equal llama.cpp's", FILES[f], PROMPTS[p]);
                    /* ref.json's greedy_text has one extra leading space (a
                       separator of the script that wrote it); the generated
                       text is the rest of it, byte for byte */
                    int tsame = r.text[0] == ' ' && !strcmp(c.text, r.text + 1);
                    if (must < 32) tsame = same; /* the text follows the ids */
                    ok_text += tsame;
                    CHECK(tsame, "%s '%s': text '%s' vs '%s'", FILES[f], PROMPTS[p], c.text, r.text);
                    CHECK(res.stop_reason == SLM_STOP_MAX_TOKENS && res.n_prompt == r.n_prompt &&
                              res.prompt_tps > 0 && res.gen_tps > 0 && res.load_ms > 0,
                          "%s: result fields (stop %d, n_prompt %d, %.1f / %.1f tok/s, load %.2f ms)", FILES[f],
                          res.stop_reason, res.n_prompt, res.prompt_tps, res.gen_tps, res.load_ms);
                    CHECK(slm_session_pos(s) == r.n_prompt + 32, "session holds prompt + 32 tokens (%d)",
                          slm_session_pos(s));
                } else {
                    ok_f16 += same;
                    CHECK(same, "%s '%s': 32 greedy ids with the default F16 KV cache", FILES[f], PROMPTS[p]);
                }
                slm_session_free(s);
            }
        }
        printf("  %s: greedy ids %d/3 (F32 KV), %d/3 (F16 KV), text %d/3 (near-ties allowed for quantized files)\n", FILES[f], ok_ids, ok_f16, ok_text);
        slm_model_free(m);
    }
}

static void test_stops(const char *js) {
    slm_model *m = load("kjv-1m-q8_0.gguf");
    if (!m) return;
    ref r;
    if (!get_ref(js, "kjv-1m-q8_0.gguf", "And the LORD said", &r)) {
        CHECK(0, "ref entry");
        slm_model_free(m);
        return;
    }
    const char *P = "And the LORD said";
    const char *T = r.text + 1; /* " unto Moses, Speak unto the children of Israel, ..." */
    capture c;
    int32_t ids[300];
    slm_generate_params gp;
    slm_generate_result res;
    slm_error err;
    slm_session *s = session(m, SLM_TYPE_F32, 0);
    if (!s) {
        slm_model_free(m);
        return;
    }

    /* stop strings: nothing of them (nor after them) is emitted */
    struct {
        const char *stop[2];
        int n;
        const char *want;
        int reason;
    } cases[] = {
        {{"Israel", NULL}, 1, " unto Moses, Speak unto the children of ", SLM_STOP_STRING},
        {{"es, Spe", NULL}, 1, " unto Mos", SLM_STOP_STRING}, /* spans tokens */
        {{"burnt", "children"}, 2, " unto Moses, Speak unto the ", SLM_STOP_STRING},
        {{" unto", NULL}, 1, "", SLM_STOP_STRING},
        {{"xyzzy", NULL}, 1, NULL, SLM_STOP_MAX_TOKENS},
        {{"offering,XX", NULL}, 1, NULL, SLM_STOP_MAX_TOKENS}, /* held back at the end, then emitted */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        slm_session_rewind(s, 0);
        greedy_params(&gp, &c, ids, 300, 32);
        gp.stop = cases[k].stop;
        gp.n_stop = cases[k].n;
        slm_status st = slm_generate(s, P, strlen(P), NULL, 0, &gp, &res, &err);
        const char *want = cases[k].want ? cases[k].want : T;
        CHECK(st == SLM_OK && res.stop_reason == cases[k].reason && !strcmp(c.text, want),
              "stop '%s': reason %d, text '%s' (want '%s')", cases[k].stop[0], res.stop_reason, c.text, want);
    }

    /* callback stop */
    slm_session_rewind(s, 0);
    greedy_params(&gp, &c, ids, 300, 32);
    c.stop_after = 3;
    slm_generate(s, P, strlen(P), NULL, 0, &gp, &res, &err);
    CHECK(res.stop_reason == SLM_STOP_CALLBACK && c.calls == 3 && res.n_generated <= 4,
          "callback stop: reason %d after %d calls, %d tokens", res.stop_reason, c.calls, res.n_generated);

    /* max tokens */
    slm_session_rewind(s, 0);
    greedy_params(&gp, &c, ids, 300, 5);
    slm_generate(s, P, strlen(P), NULL, 0, &gp, &res, &err);
    CHECK(res.stop_reason == SLM_STOP_MAX_TOKENS && res.n_generated == 5 && same_ids(ids, r.greedy, 5),
          "max tokens 5: reason %d, %d tokens", res.stop_reason, res.n_generated);

    /* continuing the conversation: 16 + 16 tokens = the 32 of one run */
    {
        capture c2;
        int32_t ids2[32];
        slm_session_rewind(s, 0);
        greedy_params(&gp, &c, ids, 300, 16);
        slm_generate(s, P, strlen(P), NULL, 0, &gp, &res, &err);
        greedy_params(&gp, &c2, ids2, 32, 16);
        slm_status st = slm_generate(s, NULL, 0, NULL, 0, &gp, &res, &err);
        char both[2 * sizeof c.text];
        snprintf(both, sizeof both, "%s%s", c.text, c2.text);
        CHECK(st == SLM_OK && same_ids(ids, r.greedy, 16) && same_ids(ids2, r.greedy + 16, 16) && !strcmp(both, T),
              "continuation with an empty prompt: '%s'", both);
    }

    /* the prompt as ids */
    {
        int32_t pid[64];
        for (int i = 0; i < r.n_prompt; i++) pid[i] = (int32_t)r.prompt[i];
        slm_session_rewind(s, 0);
        greedy_params(&gp, &c, ids, 300, 32);
        slm_status st = slm_generate(s, NULL, 0, pid, r.n_prompt, &gp, &res, &err);
        CHECK(st == SLM_OK && same_ids(ids, r.greedy, 32) && !strcmp(c.text, T), "prompt given as ids");
    }

    /* end of generation: a negative frequency penalty on EOS (id 2, four
       times in the prompt) makes it the greedy choice */
    {
        int32_t pid[6] = {1, 2, 2, 2, 2, 300};
        slm_session_rewind(s, 0);
        greedy_params(&gp, &c, ids, 300, 32);
        gp.sampler.frequency_penalty = -100;
        slm_status st = slm_generate(s, NULL, 0, pid, 6, &gp, &res, &err);
        CHECK(st == SLM_OK && res.stop_reason == SLM_STOP_EOG && res.n_generated == 0 && c.n == 0 &&
                  slm_session_pos(s) == 7,
              "EOS stops (reason %d, %d tokens, pos %d)", res.stop_reason, res.n_generated, slm_session_pos(s));
    }

    /* sampling: the same seed gives the same text */
    {
        char first[16384];
        for (int k = 0; k < 2; k++) {
            slm_session_rewind(s, 0);
            greedy_params(&gp, &c, ids, 300, 48);
            gp.sampler.temperature = 0.9f;
            gp.sampler.seed = 2024;
            gp.sampler.repeat_penalty = 1.1f;
            slm_generate(s, P, strlen(P), NULL, 0, &gp, &res, &err);
            if (k == 0) strcpy(first, c.text);
        }
        CHECK(c.n > 20 && !strcmp(first, c.text), "same seed, same text: '%s'", c.text);
    }
    slm_session_free(s);

    /* a full context ends generation; a prompt that does not fit is refused */
    s = session(m, SLM_TYPE_F32, 16);
    if (s) {
        greedy_params(&gp, &c, ids, 300, 100);
        slm_status st = slm_generate(s, P, strlen(P), NULL, 0, &gp, &res, &err);
        CHECK(st == SLM_OK && res.stop_reason == SLM_STOP_CONTEXT_FULL && res.n_generated == 12 &&
                  slm_session_pos(s) == 16 && same_ids(ids, r.greedy, 12),
              "context full: reason %d, %d tokens, pos %d", res.stop_reason, res.n_generated, slm_session_pos(s));
        slm_session_free(s);
    }
    s = session(m, SLM_TYPE_F32, 4);
    if (s) {
        greedy_params(&gp, &c, ids, 300, 10);
        slm_status st = slm_generate(s, P, strlen(P), NULL, 0, &gp, &res, &err);
        CHECK(st == SLM_ERR_CONTEXT_FULL && slm_session_pos(s) == 0 && c.n == 0,
              "prompt longer than the context: status %d", st);
        slm_session_free(s);
    }
    slm_model_free(m);
}

/* A counting allocator: every free must give back the size that was asked
   and everything must be returned at the end. */
typedef struct counting {
    long long live, bad;
} counting;

static void *c_alloc(void *u, size_t size, size_t align) {
    counting *c = (counting *)u;
    unsigned char *raw = (unsigned char *)malloc(size + 2 * align + 16);
    if (!raw) return NULL;
    uintptr_t p = ((uintptr_t)raw + 16 + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)p)[-1] = raw;
    ((size_t *)p)[-2] = size;
    c->live += (long long)size;
    return (void *)p;
}

static void c_free(void *u, void *ptr, size_t size) {
    counting *c = (counting *)u;
    if (((size_t *)ptr)[-2] != size) c->bad++;
    c->live -= (long long)size;
    free(((void **)ptr)[-1]);
}

static void test_allocator(void) {
    counting cnt = {0, 0};
    slm_allocator hook = {c_alloc, c_free, &cnt};
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.allocator = &hook;
    slm_model *m = NULL;
    slm_error err;
    if (slm_model_load_file(data_path("demo/kjv-1m-q4_0.gguf"), &mp, &m, &err) != SLM_OK) {
        CHECK(0, "load: %s", err.message);
        return;
    }
    slm_session *s = session(m, SLM_TYPE_F16, 64);
    capture c;
    slm_generate_params gp;
    slm_generate_params_init(&gp);
    const char *stop[] = {"zzz"};
    gp.stop = stop;
    gp.n_stop = 1;
    gp.max_tokens = 20;
    gp.on_text = on_text;
    gp.user = &c;
    memset(&c, 0, sizeof c);
    slm_generate_result res;
    CHECK(slm_generate(s, "<s>In the <0x41> beginning", 26, NULL, 0, &gp, &res, &err) == SLM_OK, "generate: %s",
          err.message);
    int32_t ids[64], n = 0;
    slm_tokenize(m, "some text \xff\xfe", 12, 1, 1, ids, 64, &n, NULL);
    slm_session_free(s);
    slm_model_free(m);
    CHECK(cnt.live == 0 && cnt.bad == 0, "allocator balance: %lld bytes live, %lld size mismatches", cnt.live,
          cnt.bad);
}

void test_generate(void) {
    size_t jn;
    char *js = (char *)read_all(data_path("demo/kjv-1m.ref.json"), &jn);
    CHECK(js != NULL, "missing demo/kjv-1m.ref.json");
    if (!js) return;
    if (host_big_endian()) { /* model weights are refused there (suite models checks it) */
        free(js);
        return;
    }
    test_demo_greedy(js);
    test_stops(js);
    test_allocator();
    free(js);
}
