/* End-to-end: every fixture model against llama.cpp's reference logits and
   greedy ids (tests/data/FIXTURES.md sections 3-4 give format and bars). */
#include "test.h"
#include "../slm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NPOS 16
#define NV 384

typedef struct fixture {
    const char *name;
    double tol; /* bar on max|out-ref| / max|ref| */
    int quant;  /* quantized: top-5 overlap >= 4, greedy up to small gaps;
                   2: also amplifies activation-rounding flips (see below) */
} fixture;

static const fixture FIXTURES[] = {
    {"tiny-llama-F32", 1e-3, 0},
    {"tiny-llama-F16", 2e-3, 0},
    {"tiny-llama-BF16", 3e-3, 0},
    {"tiny-llama-Q8_0", 3e-2, 1},
    {"tiny-llama-Q4_0", 3e-2, 1},
    {"tiny-qwen2-Q8_0", 3e-2, 1},
    {"tiny-phi3-Q4_0", 3e-2, 1},
    {"tiny-qwen3-Q4_K", 3e-2, 1},
    {"tiny-gemma2-Q6_K", 3e-2, 1},
    {"tiny-gemma3-Q5_0", 3e-2, 1},
    {"tiny-llama-Q4_1", 3e-2, 1},
    {"tiny-llama-Q5_0", 3e-2, 1},
    {"tiny-llama-Q5_1", 3e-2, 1},
    {"tiny-llama-Q2_K", 3e-2, 1},
    {"tiny-llama-Q3_K", 3e-2, 1},
    /* 2: the one-row Q4_K kernels (the unrepacked, memory-loaded model)
       land 1.1e-2 from llama.cpp, the x8 kernels 3e-7 */
    {"tiny-llama-Q4_K", 3e-2, 2},
    {"tiny-llama-Q5_K", 3e-2, 1},
    {"tiny-llama-Q6_K", 3e-2, 1},
    {"tiny-llama-IQ4_NL", 3e-2, 1},
    {"tiny-llama-IQ4_XS", 3e-2, 1},
    /* the 2026 families (FIXTURES-families-2026.md) */
    {"tiny-smollm3-F32", 1e-3, 0},
    {"tiny-smollm3-Q4_0", 3e-2, 2},
    {"tiny-olmo2-F32", 1e-3, 0},
    {"tiny-olmo2-Q4_0", 3e-2, 2},
    {"tiny-granite-F32", 1e-3, 0},
    {"tiny-granite-Q4_0", 3e-2, 2},
    {"tiny-lfm2-F32", 1e-3, 0},
    {"tiny-lfm2-Q4_0", 3e-2, 2},
    {"tiny-qwen35-F32", 1e-3, 0},
    {"tiny-qwen35-Q4_0", 3e-2, 2},
    {"tiny-granitehybrid-F32", 1e-3, 0},
    {"tiny-granitehybrid-Q4_0", 3e-2, 2},
};

typedef struct ref {
    int64_t ids[NPOS], greedy[NPOS];
    double gap[NPOS];
    float logits[NPOS * NV];
    double maxabs;
} ref;

static int load_ref(const char *name, ref *r) {
    char p[256];
    size_t n;
    snprintf(p, sizeof p, "models/%s.ref.json", name);
    char *js = (char *)read_all(data_path(p), &n);
    if (!js) return 0;
    int ok = json_ints(js, "input_ids", r->ids, NPOS) == NPOS && json_ints(js, "greedy_ids", r->greedy, NPOS) == NPOS &&
             json_floats(js, "greedy_top1_top2_gap", r->gap, NPOS) == NPOS;
    free(js);
    snprintf(p, sizeof p, "models/%s.logits.f32", name);
    ok = ok && read_f32(data_path(p), r->logits, NPOS * NV) == NPOS * NV;
    r->maxabs = 0;
    /* (plain compares: aarch64 gcc 12 -O2 crashes vectorizing fmax reductions) */
    for (int i = 0; i < NPOS * NV; i++)
        if (fabs(r->logits[i]) > r->maxabs) r->maxabs = fabs(r->logits[i]);
    return ok;
}

/* Run the prompt with every position's logits; returns 0 on failure. */
static int run_prompt(const slm_model *m, int kv_type, int threads, int n_batch, const ref *r, float *out) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.kv_type = kv_type;
    sp.n_threads = threads;
    sp.n_batch = n_batch;
    sp.logits_all = 1;
    slm_session *s;
    slm_error err;
    if (slm_session_create(m, &sp, &s, &err) != SLM_OK) {
        printf("  session: %s\n", err.message);
        return 0;
    }
    int32_t ids[NPOS];
    for (int i = 0; i < NPOS; i++) ids[i] = (int32_t)r->ids[i];
    int ok = slm_decode(s, ids, NPOS, &err) == SLM_OK;
    if (!ok) printf("  decode: %s\n", err.message);
    for (int i = 0; ok && i < NPOS; i++) memcpy(out + i * NV, slm_session_logits(s, i), NV * sizeof(float));
    slm_session_free(s);
    return ok;
}

/* Greedy continuation, 16 tokens fed back one at a time. */
static int run_greedy(const slm_model *m, int kv_type, int threads, const ref *r, int32_t *got) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.kv_type = kv_type;
    sp.n_threads = threads;
    slm_session *s;
    if (slm_session_create(m, &sp, &s, NULL) != SLM_OK) return 0;
    int32_t ids[NPOS];
    for (int i = 0; i < NPOS; i++) ids[i] = (int32_t)r->ids[i];
    int ok = slm_decode(s, ids, NPOS, NULL) == SLM_OK;
    for (int i = 0; ok && i < NPOS; i++) {
        got[i] = argmax(slm_session_logits(s, -1), NV);
        ok = slm_decode(s, &got[i], 1, NULL) == SLM_OK;
    }
    slm_session_free(s);
    return ok;
}

static double rel_err(const float *a, const float *b, int n, double maxabs) {
    double d = 0;
    for (int i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d / maxabs;
}

static void top5(const float *x, int *out) {
    for (int k = 0; k < 5; k++) {
        int b = -1;
        for (int i = 0; i < NV; i++) {
            int used = 0;
            for (int j = 0; j < k; j++) used |= out[j] == i;
            if (!used && (b < 0 || x[i] > x[b])) b = i;
        }
        out[k] = b;
    }
}

/* Number of greedy steps that must match: all, or up to the first step whose
   reference gap is within our error (README section 4). */
static int greedy_must_match(const ref *r, double rel) {
    for (int i = 0; i < NPOS; i++)
        if (r->gap[i] < 2 * rel * r->maxabs) return i; /* step i may differ: the steps before it must match */
    return NPOS;
}

static void check_fixture(const fixture *fx) {
    static ref r;
    static float out[NPOS * NV], out2[NPOS * NV];
    if (!load_ref(fx->name, &r)) {
        CHECK(0, "%s: reference files missing", fx->name);
        return;
    }
    char path[256];
    snprintf(path, sizeof path, "models/%s.gguf", fx->name);
    slm_model *m;
    slm_error err;
    if (slm_model_load_file(data_path(path), NULL, &m, &err) != SLM_OK) {
        CHECK(0, "%s: load: %s", fx->name, err.message);
        return;
    }
    /* reference settings: F32 KV cache, one thread, one batch */
    if (!run_prompt(m, SLM_TYPE_F32, 1, 64, &r, out)) {
        CHECK(0, "%s: prompt failed", fx->name);
        slm_model_free(m);
        return;
    }
    double rel = rel_err(out, r.logits, NPOS * NV, r.maxabs);
    int min_overlap = 5;
    for (int i = 0; i < NPOS; i++) {
        int a[5], b[5], ov = 0;
        top5(out + i * NV, a);
        top5(r.logits + i * NV, b);
        for (int x = 0; x < 5; x++)
            for (int y = 0; y < 5; y++) ov += a[x] == b[y];
        if (ov < min_overlap) min_overlap = ov;
    }
    printf("  %-18s rel %.2e (bar %.0e), min top-5 overlap %d/5\n", fx->name, rel, fx->tol, min_overlap);
    CHECK(rel <= fx->tol, "%s: rel %.3e > %.1e", fx->name, rel, fx->tol);
    CHECK(min_overlap >= (fx->quant ? 4 : 5), "%s: top-5 overlap %d", fx->name, min_overlap);

    int32_t g[NPOS];
    int must = greedy_must_match(&r, rel);
    CHECK(run_greedy(m, SLM_TYPE_F32, 1, &r, g), "%s: greedy run failed", fx->name);
    int same = 0;
    while (same < NPOS && g[same] == r.greedy[same]) same++;
    CHECK(same >= must, "%s: greedy ids match for %d steps, need %d", fx->name, same, must);

    /* the batched path equals the one-token path; threads do not change results */
    CHECK(run_prompt(m, SLM_TYPE_F32, 1, 1, &r, out2), "%s: token-by-token run", fx->name);
    double d = rel_err(out2, out, NPOS * NV, r.maxabs);
    CHECK(d <= 1e-5, "%s: batch 1 vs batch 64 differ by %.2e", fx->name, d);
    CHECK(run_prompt(m, SLM_TYPE_F32, 2, 5, &r, out2), "%s: 2-thread run", fx->name);
    d = rel_err(out2, out, NPOS * NV, r.maxabs);
    CHECK(d <= 1e-5, "%s: 2 threads/batch 5 vs 1 thread differ by %.2e", fx->name, d);
    /* the default F16 cache stays within the bar and keeps the greedy ids */
    CHECK(run_prompt(m, SLM_TYPE_F16, 2, 64, &r, out2), "%s: F16 KV run", fx->name);
    d = rel_err(out2, r.logits, NPOS * NV, r.maxabs);
    CHECK(d <= fx->tol * 1.5 + 2e-3, "%s: F16 KV cache rel %.2e", fx->name, d);
    if (test_quick()) { /* emulated targets: the loaders are not target-specific */
        slm_model_free(m);
        return;
    }
    /* the F16 cache's rounding of K and V moves these random models by
       about 1e-2 (d above): near-ties within that may go either way */
    must = greedy_must_match(&r, d);
    CHECK(run_greedy(m, SLM_TYPE_F16, 2, &r, g), "%s: greedy F16 run failed", fx->name);
    same = 0;
    while (same < NPOS && g[same] == r.greedy[same]) same++;
    CHECK(same >= must, "%s: F16 KV greedy ids match for %d steps, need %d", fx->name, same, must);
    /* the Q8_0 cache (half of F16's memory): its rounding of K and V moves
       these sensitive random models about as much as Q8_0 weights do
       (1-3.5e-2); bar: the README's 5e-2 for quantizing without ggml's
       activation scheme */
    CHECK(run_prompt(m, SLM_TYPE_Q8_0, 2, 64, &r, out2), "%s: Q8_0 KV run", fx->name);
    d = rel_err(out2, r.logits, NPOS * NV, r.maxabs);
    printf("  %-18s Q8_0 KV cache: rel %.2e\n", fx->name, d);
    CHECK(d <= 5e-2, "%s: Q8_0 KV cache rel %.2e", fx->name, d);
    slm_model_free(m);

    /* Loading from memory uses the weights in place (GGUF layout); a file
       load repacks them (x8) where this build has kernels for that: the two
       agree to float rounding, and a file loaded with repack = 0 (mmap or
       read) computes exactly what the memory-loaded model does. */
    size_t n;
    static float out3[NPOS * NV];
    unsigned char *buf = read_all(data_path(path), &n);
    CHECK(buf != NULL, "%s: read", fx->name);
    int have_mem = 0;
    if (buf) {
        CHECK(slm_model_load_memory(buf, n, NULL, &m, &err) == SLM_OK, "%s: load_memory: %s", fx->name, err.message);
        if (m) {
            have_mem = run_prompt(m, SLM_TYPE_F32, 1, 64, &r, out2);
            CHECK(have_mem, "%s: memory run", fx->name);
            d = rel_err(out2, out, NPOS * NV, r.maxabs);
            /* x8 kernels sum in another order than the one-row kernels
               (llama.cpp's order for Q4_0, not for Q5_0/Q8_0), and these
               random models amplify rounding: gemma3-Q5_0 moves 6e-4 */
            /* quant 2: models where one activation rounded to the other Q8_0
               step moves the logits by ~1e-2 (the families' README, section 6:
               olmo2-Q4_0 1.9e-2 even for a float64 ggml-style pass); there
               the memory-loaded model must meet the fixture's own bar */
            double dr = rel_err(out2, r.logits, NPOS * NV, r.maxabs);
            if (fx->quant == 2) printf("  %-18s unrepacked: rel %.2e, %.2e from the repacked run\n", fx->name, dr, d);
            CHECK(fx->quant == 2 ? dr <= fx->tol : d <= fx->tol * 0.1,
                  "%s: memory-loaded model differs from the file-loaded one by %.2e (rel %.2e)", fx->name, d, dr);
            slm_model_free(m);
        }
        free(buf);
    }
    for (int mmap_on = 0; mmap_on < 2; mmap_on++)
        for (int repack = 0; repack < 2; repack++) {
            slm_model_params mp;
            slm_model_params_init(&mp);
            mp.use_mmap = mmap_on;
            mp.repack = repack;
            if (mmap_on && repack) continue; /* the first run above */
            CHECK(slm_model_load_file(data_path(path), &mp, &m, &err) == SLM_OK, "%s: load (mmap %d, repack %d): %s",
                  fx->name, mmap_on, repack, err.message);
            if (!m) continue;
            CHECK(run_prompt(m, SLM_TYPE_F32, 1, 64, &r, out3), "%s: run", fx->name);
            if (repack)
                CHECK(memcmp(out, out3, sizeof out) == 0, "%s: read-loaded repacked model differs", fx->name);
            else if (have_mem)
                CHECK(memcmp(out2, out3, sizeof out2) == 0, "%s: file (mmap %d) with repack 0 differs from memory",
                      fx->name, mmap_on);
            slm_model_free(m);
        }
}

/* The same fixture with each other kernel table this CPU runs (and the
   scalar reference): the llama.cpp bars, the greedy ids, and batch and
   thread invariance hold on every ISA, in one process. */
static void check_fixture_isas(const fixture *fx) {
    static ref r;
    static float out[NPOS * NV], out2[NPOS * NV];
    if (!load_ref(fx->name, &r)) return;
    char path[256];
    snprintf(path, sizeof path, "models/%s.gguf", fx->name);
    slm_model *best;
    slm_error err;
    if (slm_model_load_file(data_path(path), NULL, &best, &err) != SLM_OK) return;
    const int best_isa = slm_model_isa(best);
    slm_model_free(best);
    for (int isa = SLM_ISA_SCALAR; isa < SLM_ISA_COUNT; isa++) {
        if (isa == best_isa || !slm_isa_available(isa)) continue;
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.isa = isa;
        slm_model *m;
        if (slm_model_load_file(data_path(path), &mp, &m, &err) != SLM_OK) {
            CHECK(0, "%s [%s]: load: %s", fx->name, slm_isa_name(isa), err.message);
            continue;
        }
        CHECK(slm_model_isa(m) == isa, "%s: asked for %s, got %s", fx->name, slm_isa_name(isa),
              slm_isa_name(slm_model_isa(m)));
        if (!run_prompt(m, SLM_TYPE_F32, 1, 64, &r, out)) {
            CHECK(0, "%s [%s]: prompt failed", fx->name, slm_isa_name(isa));
            slm_model_free(m);
            continue;
        }
        const double rel = rel_err(out, r.logits, NPOS * NV, r.maxabs);
        CHECK(rel <= fx->tol, "%s [%s]: rel %.3e > %.1e", fx->name, slm_isa_name(isa), rel, fx->tol);
        int32_t g[NPOS];
        const int must = greedy_must_match(&r, rel);
        CHECK(run_greedy(m, SLM_TYPE_F32, 1, &r, g), "%s [%s]: greedy run failed", fx->name, slm_isa_name(isa));
        int same = 0;
        while (same < NPOS && g[same] == r.greedy[same]) same++;
        CHECK(same >= must, "%s [%s]: greedy ids match for %d steps, need %d", fx->name, slm_isa_name(isa), same, must);
        CHECK(run_prompt(m, SLM_TYPE_F16, 2, 5, &r, out2), "%s [%s]: F16 KV run", fx->name, slm_isa_name(isa));
        const double d = rel_err(out2, r.logits, NPOS * NV, r.maxabs);
        CHECK(d <= fx->tol * 1.5 + 2e-3, "%s [%s]: F16 KV cache, 2 threads, batch 5: rel %.2e", fx->name,
              slm_isa_name(isa), d);
        printf("  %-18s [%s] rel %.2e, F16 KV rel %.2e, greedy %d/%d\n", fx->name, slm_isa_name(isa), rel, d, same,
               NPOS);
        slm_model_free(m);
    }
}

/* The ISA API: names, availability, refusals with a reason. */
static void check_isa_api(void) {
    CHECK(slm_isa_available(SLM_ISA_BEST) && slm_isa_available(SLM_ISA_SCALAR), "best and scalar are always there");
    CHECK(slm_isa_from_name("AVX2") == SLM_ISA_AVX2 && slm_isa_from_name("scalar") == SLM_ISA_SCALAR &&
              slm_isa_from_name("best") == SLM_ISA_BEST && slm_isa_from_name("avx3") == -1 && slm_isa_from_name(NULL) == -1,
          "slm_isa_from_name");
    CHECK(!strcmp(slm_isa_name(SLM_ISA_AVX512), "avx512") && !strcmp(slm_isa_name(99), "unknown"), "slm_isa_name");
    CHECK(!slm_isa_available(SLM_ISA_COUNT) && !slm_isa_available(-1), "out-of-range ISAs are not available");
    const char *bi = slm_build_info();
    CHECK(strstr(bi, "simd=") && strstr(bi, "cpu="), "build info names compiled and detected ISAs: %s", bi);
    slm_model_params mp;
    slm_model_params_init(&mp);
    CHECK(mp.isa == SLM_ISA_BEST, "default isa");
    slm_model *m = NULL;
    slm_error err;
    mp.isa = 42;
    CHECK(slm_model_load_file(data_path("models/tiny-llama-Q8_0.gguf"), &mp, &m, &err) == SLM_ERR_INVALID_ARG && !m,
          "isa 42 is refused");
    CHECK(strstr(err.message, "params.isa") != NULL, "message: %s", err.message);
    for (int isa = 1; isa < SLM_ISA_COUNT; isa++) {
        if (slm_isa_available(isa)) continue;
        mp.isa = isa;
        CHECK(slm_model_load_file(data_path("models/tiny-llama-Q8_0.gguf"), &mp, &m, &err) == SLM_ERR_UNSUPPORTED && !m,
              "unavailable %s is refused", slm_isa_name(isa));
        CHECK(strstr(err.message, slm_isa_name(isa)) != NULL, "message names the ISA: %s", err.message);
    }
    mp.isa = SLM_ISA_BEST;
    if (slm_model_load_file(data_path("models/tiny-llama-Q8_0.gguf"), &mp, &m, &err) == SLM_OK) {
        char want[32];
        snprintf(want, sizeof want, "cpu=%s ", slm_isa_name(slm_model_isa(m)));
        CHECK(strstr(bi, want) != NULL, "the best ISA (%s) is the one build info reports: %s", want, bi);
        slm_model_free(m);
    }
}

/* Session behaviour: context full, rewind, bad ids, logits availability. */
static void check_session(void) {
    slm_model *m;
    slm_error err;
    if (slm_model_load_file(data_path("models/tiny-llama-Q8_0.gguf"), NULL, &m, &err) != SLM_OK) {
        CHECK(0, "load: %s", err.message);
        return;
    }
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 8;
    slm_session *s;
    CHECK(slm_session_create(m, &sp, &s, &err) == SLM_OK, "create: %s", err.message);
    CHECK(slm_session_logits(s, -1) == NULL, "logits before any decode");
    int32_t ids[10] = {1, 5, 9, 30, 31, 32, 33, 34, 35, 36};
    CHECK(slm_decode(s, ids, 9, &err) == SLM_ERR_CONTEXT_FULL, "9 tokens in n_ctx 8 must be refused");
    CHECK(strstr(err.message, "context full") != NULL, "message: %s", err.message);
    CHECK(slm_session_pos(s) == 0, "refused decode left pos %d", slm_session_pos(s));
    CHECK(slm_decode(s, ids, 6, &err) == SLM_OK, "decode 6: %s", err.message);
    float l6[NV];
    memcpy(l6, slm_session_logits(s, -1), sizeof l6);
    CHECK(slm_session_logits(s, 0) == NULL, "without logits_all only the last row is kept");
    CHECK(slm_decode(s, ids + 6, 3, &err) == SLM_ERR_CONTEXT_FULL, "6 + 3 > 8 must be refused");
    CHECK(slm_decode(s, ids + 6, 2, &err) == SLM_OK, "6 + 2 fits: %s", err.message);
    CHECK(slm_decode(s, ids, 1, &err) == SLM_ERR_CONTEXT_FULL, "full context");
    /* rewind to 5 and decode the 6th token again: same logits as before */
    CHECK(slm_session_rewind(s, 5) == SLM_OK, "rewind");
    CHECK(slm_session_rewind(s, 7) == SLM_ERR_INVALID_ARG, "rewind forward is refused");
    CHECK(slm_decode(s, ids + 5, 1, &err) == SLM_OK, "re-decode");
    const float *l = slm_session_logits(s, -1);
    CHECK(l && memcmp(l, l6, sizeof l6) == 0, "rewind + re-decode reproduces the logits");
    int32_t bad = NV;
    CHECK(slm_decode(s, &bad, 1, &err) == SLM_ERR_INVALID_ARG, "out-of-vocabulary id");
    CHECK(strstr(err.message, "outside the vocabulary") != NULL, "message: %s", err.message);
    bad = -1;
    CHECK(slm_decode(s, &bad, 1, &err) == SLM_ERR_INVALID_ARG, "negative id");
    CHECK(slm_decode(s, ids, 0, &err) == SLM_ERR_INVALID_ARG, "zero tokens");
    CHECK(slm_session_memory_size(m, &sp) > 0, "memory size");
    slm_session_free(s);
    slm_model_free(m);
}

void test_models(void) {
    for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) check_fixture(&FIXTURES[i]);
    for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) check_fixture_isas(&FIXTURES[i]);
    check_isa_api();
    check_session();
}
