/* Robustness: allocation failure at every reachable point, concurrent
   sessions on one shared model, resource limits. */
#include "test.h"
#include "../slm.h"

#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32) || defined(__MINGW32__)
#include <pthread.h>
#define HAVE_PTHREAD 1
#endif

/* ---- an allocator that counts, tracks bytes, and fails the Nth call ---- */

typedef struct failalloc {
    long calls, fail_at; /* fail_at = -1: never */
    long live_blocks;
    size_t live_bytes, peak_bytes;
} failalloc;

static void *fa_alloc(void *user, size_t size, size_t align) {
    failalloc *f = (failalloc *)user;
    f->calls++;
    if (f->fail_at >= 0 && f->calls == f->fail_at) return NULL;
    void *raw = malloc(size + align + sizeof(size_t) * 2);
    if (!raw) return NULL;
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + sizeof(size_t) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)p)[-1] = raw;
    ((size_t *)((void **)p - 1))[-1] = size;
    f->live_blocks++;
    f->live_bytes += size;
    if (f->live_bytes > f->peak_bytes) f->peak_bytes = f->live_bytes;
    return (void *)p;
}

static void fa_free(void *user, void *ptr, size_t size) {
    failalloc *f = (failalloc *)user;
    size_t asked = ((size_t *)((void **)ptr - 1))[-1];
    if (asked != size) f->live_bytes += 1u << 30; /* a size mismatch shows as a leak */
    f->live_blocks--;
    f->live_bytes -= asked;
    free(((void **)ptr)[-1]);
}

static const char *MODEL = "models/tiny-llama-Q4_0.gguf";

/* Fail every allocation of a model load in turn (file with mmap, without,
   and from memory): each must fail cleanly and leak nothing. */
static void check_load_failures(void) {
    size_t n;
    unsigned char *buf = read_all(data_path(MODEL), &n);
    for (int mode = 0; mode < 3; mode++) {
        failalloc f = {0, -1, 0, 0, 0};
        slm_allocator al = {fa_alloc, fa_free, &f};
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.allocator = &al;
        mp.use_mmap = mode == 0;
        slm_model *m = NULL;
        slm_error err;
        slm_status st = mode == 2 ? slm_model_load_memory(buf, n, &mp, &m, &err)
                                  : slm_model_load_file(data_path(MODEL), &mp, &m, &err);
        CHECK(st == SLM_OK, "mode %d: load: %s", mode, err.message);
        slm_model_free(m);
        long total = f.calls;
        CHECK(f.live_blocks == 0 && f.live_bytes == 0, "mode %d: load+free leaks %ld blocks", mode, f.live_blocks);
        int bad = 0, leaks = 0;
        for (long k = 1; k <= total; k++) {
            f.calls = 0;
            f.fail_at = k;
            m = NULL;
            st = mode == 2 ? slm_model_load_memory(buf, n, &mp, &m, &err)
                           : slm_model_load_file(data_path(MODEL), &mp, &m, &err);
            if (st != SLM_ERR_NOMEM || m != NULL || !err.message[0]) bad++;
            if (f.live_blocks != 0 || f.live_bytes != 0) leaks++;
            slm_model_free(m);
        }
        printf("  load mode %d: %ld allocations, each failed in turn\n", mode, total);
        CHECK(bad == 0, "mode %d: %d injected failures not reported as out of memory", mode, bad);
        CHECK(leaks == 0, "mode %d: %d injected failures leaked", mode, leaks);
    }
    free(buf);
}

/* Session creation and decode under allocation failure: errors, no leaks,
   and the shared model keeps working. */
static void check_session_failures(void) {
    failalloc f = {0, -1, 0, 0, 0};
    slm_allocator al = {fa_alloc, fa_free, &f};
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.allocator = &al;
    slm_model *m = NULL;
    slm_error err;
    if (slm_model_load_file(data_path(MODEL), &mp, &m, &err) != SLM_OK) {
        CHECK(0, "load: %s", err.message);
        return;
    }
    long base_blocks = f.live_blocks;
    size_t base_bytes = f.live_bytes;
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 32;
    sp.logits_all = 1;
    sp.n_batch = 4;
    int32_t ids[12] = {1, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120};
    f.calls = 0;
    slm_session *s = NULL;
    CHECK(slm_session_create(m, &sp, &s, &err) == SLM_OK, "create: %s", err.message);
    CHECK(slm_decode(s, ids, 12, &err) == SLM_OK, "decode: %s", err.message);
    float ref[384];
    memcpy(ref, slm_session_logits(s, -1), sizeof ref);
    slm_session_free(s);
    long total = f.calls;
    int bad = 0, leaks = 0, unusable = 0;
    for (long k = 1; k <= total; k++) {
        f.calls = 0;
        f.fail_at = k;
        s = NULL;
        slm_status st = slm_session_create(m, &sp, &s, &err);
        if (st == SLM_OK) st = slm_decode(s, ids, 12, &err); /* the logits buffer grows here */
        if (st != SLM_ERR_NOMEM || !err.message[0]) bad++;
        if (s) {
            /* a failed decode leaves the session unchanged and usable */
            f.fail_at = -1;
            if (slm_session_pos(s) != 0 || slm_decode(s, ids, 12, &err) != SLM_OK ||
                memcmp(slm_session_logits(s, -1), ref, sizeof ref) != 0)
                unusable++;
            slm_session_free(s);
        }
        if (f.live_blocks != base_blocks || f.live_bytes != base_bytes) leaks++;
        /* the model still works */
        f.fail_at = -1;
        s = NULL;
        if (slm_session_create(m, &sp, &s, &err) != SLM_OK || slm_decode(s, ids, 12, &err) != SLM_OK ||
            memcmp(slm_session_logits(s, -1), ref, sizeof ref) != 0)
            unusable++;
        slm_session_free(s);
    }
    printf("  session+decode: %ld allocations, each failed in turn\n", total);
    CHECK(bad == 0, "%d injected failures not reported", bad);
    CHECK(leaks == 0, "%d injected failures leaked", leaks);
    CHECK(unusable == 0, "%d times the model or session was left unusable", unusable);
    slm_model_free(m);
    CHECK(f.live_blocks == 0 && f.live_bytes == 0, "model free leaves %ld blocks", f.live_blocks);
}

/* ---- concurrency: one model, several sessions in parallel threads ---- */

#define NSESS 4
#define NTOK 24

typedef struct job {
    const slm_model *m;
    int seed, threads;
    float logits[NTOK][384];
    int ok;
} job;

static void run_job(job *j) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_threads = j->threads;
    slm_session *s;
    j->ok = 0;
    if (slm_session_create(j->m, &sp, &s, NULL) != SLM_OK) return;
    /* a prompt, then token-by-token decoding: both paths run concurrently */
    int32_t ids[NTOK];
    for (int i = 0; i < NTOK; i++) ids[i] = 3 + (j->seed * 31 + i * 17) % 380;
    if (slm_decode(s, ids, 8, NULL) != SLM_OK) goto done;
    memcpy(j->logits[7], slm_session_logits(s, -1), sizeof j->logits[7]);
    for (int i = 8; i < NTOK; i++) {
        if (slm_decode(s, ids + i, 1, NULL) != SLM_OK) goto done;
        memcpy(j->logits[i], slm_session_logits(s, -1), sizeof j->logits[i]);
    }
    j->ok = 1;
done:
    slm_session_free(s);
}

#ifdef HAVE_PTHREAD
static void *thread_main(void *p) {
    run_job((job *)p);
    return NULL;
}
#endif

static void check_concurrency(void) {
#ifdef HAVE_PTHREAD
    slm_model *m;
    if (slm_model_load_file(data_path(MODEL), NULL, &m, NULL) != SLM_OK) {
        CHECK(0, "load");
        return;
    }
    static job seq[NSESS], par[NSESS];
    for (int i = 0; i < NSESS; i++) {
        seq[i].m = par[i].m = m;
        seq[i].seed = par[i].seed = i;
        seq[i].threads = 1;
        par[i].threads = 1 + i % 2; /* some sessions use their own OpenMP team */
        run_job(&seq[i]);
    }
    pthread_t th[NSESS];
    for (int i = 0; i < NSESS; i++) pthread_create(&th[i], NULL, thread_main, &par[i]);
    for (int i = 0; i < NSESS; i++) pthread_join(th[i], NULL);
    int same = 1;
    for (int i = 0; i < NSESS; i++) {
        CHECK(seq[i].ok && par[i].ok, "session %d failed", i);
        for (int t = 7; t < NTOK; t++) same &= memcmp(seq[i].logits[t], par[i].logits[t], sizeof seq[i].logits[t]) == 0;
    }
    CHECK(same, "sessions run in parallel threads differ from sequential runs");
    slm_model_free(m);
#endif
}

/* ---- limits: thread counts, arguments ---- */

static void check_limits(void) {
    slm_model *m;
    slm_error err;
    if (slm_model_load_file(data_path(MODEL), NULL, &m, &err) != SLM_OK) {
        CHECK(0, "load");
        return;
    }
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 16;
    int32_t ids[3] = {1, 2, 3};
    float ref[384];
    slm_session *s;
    sp.n_threads = 1;
    CHECK(slm_session_create(m, &sp, &s, &err) == SLM_OK && slm_decode(s, ids, 3, &err) == SLM_OK, "1 thread");
    memcpy(ref, slm_session_logits(s, -1), sizeof ref);
    slm_session_free(s);
    int threads[] = {0, 2, 3, 100000};
    for (int i = 0; i < 4; i++) {
        sp.n_threads = threads[i];
        s = NULL;
        CHECK(slm_session_create(m, &sp, &s, &err) == SLM_OK && slm_decode(s, ids, 3, &err) == SLM_OK,
              "%d threads: %s", threads[i], err.message);
        CHECK(s && memcmp(slm_session_logits(s, -1), ref, sizeof ref) == 0, "%d threads change the logits",
              threads[i]);
        slm_session_set_threads(s, 1);
        slm_session_free(s);
    }
    sp.n_threads = -1;
    CHECK(slm_session_create(m, &sp, &s, &err) == SLM_ERR_INVALID_ARG, "negative threads");
    sp.n_threads = 1;
    sp.n_ctx = -5;
    CHECK(slm_session_create(m, &sp, &s, &err) == SLM_ERR_INVALID_ARG, "negative n_ctx");
    sp.n_ctx = 16;
    sp.kv_type = SLM_TYPE_Q4_K;
    CHECK(slm_session_create(m, &sp, &s, &err) == SLM_ERR_UNSUPPORTED, "KV type");
    CHECK(slm_session_create(NULL, NULL, &s, &err) == SLM_ERR_INVALID_ARG, "NULL model");
    CHECK(slm_decode(NULL, ids, 1, &err) == SLM_ERR_INVALID_ARG, "NULL session");
    CHECK(slm_session_logits(NULL, 0) == NULL && slm_session_pos(NULL) == 0, "NULL getters");
    slm_model_free(m);
}

/* ---- work units: more threads than cores (threads are descheduled in the
   middle of operators and catch up) give the same bits as one thread, over
   several chunks of a prefill and single-token decodes ---- */

static int run_units(slm_model *m, int threads, float *out, size_t n_out) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_batch = 8;
    sp.logits_all = 1;
    sp.n_threads = threads;
    slm_session *s = NULL;
    slm_error err;
    int32_t ids[20];
    slm_model_info info;
    slm_model_get_info(m, &info);
    for (int i = 0; i < 20; i++) ids[i] = 1 + (i * 37) % (info.n_vocab - 1 < 300 ? info.n_vocab - 1 : 300);
    int ok = slm_session_create(m, &sp, &s, &err) == SLM_OK && slm_decode(s, ids, 20, &err) == SLM_OK;
    size_t nv = (size_t)info.n_vocab, k = 0;
    for (int i = 0; ok && i < 20 && k + nv <= n_out; i++, k += nv) memcpy(out + k, slm_session_logits(s, i), nv * sizeof(float));
    for (int i = 0; ok && i < 6 && k + nv <= n_out; i++, k += nv) {
        ok = slm_decode(s, ids + i, 1, &err) == SLM_OK;
        if (ok) memcpy(out + k, slm_session_logits(s, -1), nv * sizeof(float));
    }
    slm_session_free(s);
    return ok;
}

/* (the hybrids: their recurrent mixers run as steps of statically split
   parts, a part a unit) */
static void check_units_of(const char *path) {
    slm_model *m;
    slm_error err;
    if (slm_model_load_file(data_path(path), NULL, &m, &err) != SLM_OK) {
        CHECK(0, "load %s: %s", path, err.message);
        return;
    }
    slm_model_info info;
    slm_model_get_info(m, &info);
    const size_t n = 26 * (size_t)info.n_vocab;
    float *ref = (float *)malloc(n * sizeof(float)), *got = (float *)malloc(n * sizeof(float));
    CHECK(ref && got && run_units(m, 1, ref, n), "1 thread");
    const int threads[] = {2, 3, 5, 2, 3, 5};
    for (int i = 0; ref && got && i < 6; i++) {
        memset(got, 0, n * sizeof(float));
        CHECK(run_units(m, threads[i], got, n) && memcmp(ref, got, n * sizeof(float)) == 0,
              "%s: %d threads (work units) change the logits", path, threads[i]);
    }
    free(ref);
    free(got);
    slm_model_free(m);
}

static void check_units(void) {
    check_units_of(MODEL);
    check_units_of("models/tiny-lfm2-Q4_0.gguf");
    check_units_of("models/tiny-qwen35-Q4_0.gguf");
    check_units_of("models/tiny-granitehybrid-F32.gguf");
}

void test_robust(void) {
    check_units();
    check_load_failures();
    check_session_failures();
    check_concurrency();
    check_limits();
}
