/* The embedded profile: the arena allocator (slm_arena_*), the memory plan
   for an arena (slm_model_memory_size: exact, one byte less fails cleanly),
   models used in place from a caller's buffer (never written, any
   alignment), and, through test_kernels.c, the SLM_NO_STDIO formatter. */
#include "test.h"

#include "slm.h"

#include <stdlib.h>
#include <string.h>

void test_embed_fmt(void); /* in test_kernels.c: needs slm.c's statics */

static const char *DEMO = "demo/kjv-1m-q4_0.gguf";

/* Blocks come and go as a stack with deferred frees. */
static void check_arena_blocks(void) {
    static unsigned char mem[4096 + 64];
    unsigned char *buf = mem + (64 - (uintptr_t)mem % 64) % 64;
    slm_arena ar;
    slm_arena_init(&ar, buf, 4096);
    const slm_allocator *al = &ar.allocator;
    void *a = al->alloc(al->user, 100, 64);
    size_t after_a = slm_arena_used(&ar);
    void *b = al->alloc(al->user, 10, 1);
    void *c = al->alloc(al->user, 300, 64);
    CHECK(a && b && c, "arena: allocations failed");
    CHECK(((uintptr_t)a % 64) == 0 && ((uintptr_t)c % 64) == 0, "arena: alignment");
    CHECK((unsigned char *)b >= (unsigned char *)a + 100 && (unsigned char *)c >= (unsigned char *)b + 10,
          "arena: blocks overlap");
    size_t used = slm_arena_used(&ar);
    al->free(al->user, b, 10); /* not the top: kept until c goes */
    CHECK(slm_arena_used(&ar) == used, "arena: a freed middle block moved the top");
    al->free(al->user, c, 300); /* c and then b are popped */
    CHECK(slm_arena_used(&ar) == after_a, "arena: used %zu after popping, expected %zu", slm_arena_used(&ar), after_a);
    void *big = al->alloc(al->user, 4096, 8);
    CHECK(big == NULL, "arena: an allocation larger than the buffer succeeded");
    CHECK(slm_arena_used(&ar) == after_a, "arena: a failed allocation changed the top");
    al->free(al->user, a, 100);
    CHECK(slm_arena_used(&ar) == 0, "arena: not empty after freeing everything (%zu)", slm_arena_used(&ar));
    CHECK(slm_arena_peak(&ar) == used, "arena: peak %zu, expected %zu", slm_arena_peak(&ar), used);
}

static int on_text(void *user, const char *t, size_t n) {
    size_t *len = (size_t *)user;
    (void)t;
    *len += n;
    return 0;
}

/* Model + session in an arena of exactly slm_model_memory_size bytes; one
   byte less fails with SLM_ERR_NOMEM and gives everything back. */
static void check_memory_size(const unsigned char *data, size_t size) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 256;
    sp.n_threads = 1;
    slm_error err;
    size_t need_model = slm_model_memory_size(data, size, NULL, NULL, &err);
    size_t need = slm_model_memory_size(data, size, NULL, &sp, &err);
    CHECK(need_model > 0 && need > need_model, "memory size: model %zu, model + session %zu (%s)", need_model, need,
          err.message);
    printf("  arena bytes for %s: model %zu, model + session (n_ctx 256) %zu\n", DEMO, need_model, need);
    if (!need) return;
    unsigned char *raw = (unsigned char *)malloc(need + 65536 + 64);
    unsigned char *buf = raw + (64 - (uintptr_t)raw % 64) % 64;
    for (int pass = 0; pass < 2; pass++) {
        size_t cap = pass == 0 ? need : need - 1;
        slm_arena ar;
        slm_arena_init(&ar, buf, cap);
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.allocator = &ar.allocator;
        slm_model *m = NULL;
        slm_session *s = NULL;
        slm_status st = slm_model_load_memory(data, size, &mp, &m, &err);
        if (st == SLM_OK) st = slm_session_create(m, &sp, &s, &err);
        if (pass == 0) {
            CHECK(st == SLM_OK, "model + session in %zu bytes: %s", cap, err.message);
            CHECK(slm_arena_peak(&ar) == need, "arena peak %zu, planned %zu", slm_arena_peak(&ar), need);
        } else {
            CHECK(st == SLM_ERR_NOMEM, "one byte less (%zu): status %d (%s), expected out of memory", cap, st,
                  err.message);
            CHECK(ar.n_failed > 0, "one byte less: no allocation failed");
        }
        slm_session_free(s);
        slm_model_free(m);
        CHECK(slm_arena_used(&ar) == 0, "pass %d: %zu bytes still in use after freeing", pass, slm_arena_used(&ar));
    }
    /* generate in a roomier arena: what each call allocates comes back */
    slm_arena ar;
    slm_arena_init(&ar, buf, need + 65536);
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.allocator = &ar.allocator;
    slm_model *m = NULL;
    slm_session *s = NULL;
    if (slm_model_load_memory(data, size, &mp, &m, &err) == SLM_OK && slm_session_create(m, &sp, &s, &err) == SLM_OK) {
        size_t base = slm_arena_used(&ar), after[2] = {0, 0}, len = 0;
        for (int i = 0; i < 2; i++) {
            slm_generate_params gp;
            slm_generate_params_init(&gp);
            gp.max_tokens = 16;
            gp.sampler.seed = 42;
            gp.on_text = on_text;
            gp.user = &len;
            const char *stop[] = {"Moses"};
            gp.stop = stop;
            gp.n_stop = 1;
            slm_status st = slm_generate(s, "And the LORD said", 17, NULL, 0, &gp, NULL, &err);
            CHECK(st == SLM_OK, "generate in the arena: %s", err.message);
            after[i] = slm_arena_used(&ar);
        }
        CHECK(after[0] == base && after[1] == base, "arena use after generate calls: %zu, %zu (session %zu)", after[0],
              after[1], base);
        CHECK(len > 0, "generate in the arena produced no text");
        printf("  generate (16 tokens) peak %zu bytes = model + session + %zu\n", slm_arena_peak(&ar),
               slm_arena_peak(&ar) - need);
    } else {
        CHECK(0, "load in a roomy arena: %s", err.message);
    }
    slm_session_free(s);
    slm_model_free(m);
    CHECK(slm_arena_used(&ar) == 0, "arena not empty at the end");
    free(raw);
}

static void logits_of(const unsigned char *data, size_t size, float *out, int *n_vocab) {
    slm_model *m = NULL;
    slm_session *s = NULL;
    slm_error err;
    *n_vocab = 0;
    if (slm_model_load_memory(data, size, NULL, &m, &err) != SLM_OK) {
        CHECK(0, "load from memory: %s", err.message);
        return;
    }
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_threads = 1;
    const int32_t toks[] = {1, 100, 200, 300, 400};
    if (slm_session_create(m, &sp, &s, &err) == SLM_OK && slm_decode(s, toks, 5, &err) == SLM_OK) {
        slm_model_info info;
        slm_model_get_info(m, &info);
        *n_vocab = info.n_vocab;
        memcpy(out, slm_session_logits(s, -1), (size_t)info.n_vocab * sizeof(float));
    } else {
        CHECK(0, "decode from memory: %s", err.message);
    }
    slm_session_free(s);
    slm_model_free(m);
}

/* Weights in place: the buffer is never written, and any alignment works
   (block fields are read unaligned; f32 norms are copied). */
static void check_in_place(const unsigned char *data, size_t size) {
    unsigned char *copy = (unsigned char *)malloc(size + 64);
    static float l0[4096], l1[4096];
    int n0 = 0, n1 = 0;
    memcpy(copy, data, size);
    logits_of(copy, size, l0, &n0);
    CHECK(memcmp(copy, data, size) == 0, "the model buffer was written to");
    for (int off = 1; off < 4; off++) {
        memmove(copy + off, data, size);
        logits_of(copy + off, size, l1, &n1);
        CHECK(n0 > 0 && n1 == n0 && memcmp(l0, l1, (size_t)n0 * sizeof(float)) == 0,
              "logits from a buffer at offset %d differ", off);
        CHECK(memcmp(copy + off, data, size) == 0, "the model buffer at offset %d was written to", off);
    }
    free(copy);
}

void test_embed(void) {
    test_embed_fmt();
    check_arena_blocks();
    size_t size = 0;
    unsigned char *data = read_all(data_path(DEMO), &size);
    CHECK(data != NULL, "cannot read %s", DEMO);
    if (!data) return;
    check_memory_size(data, size);
    check_in_place(data, size);
    free(data);
}
