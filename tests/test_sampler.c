/* Sampler: greedy, top-k, top-p, min-p, penalties, temperature; frequencies
   against the softmax; seeds. The draws are deterministic for a seed, so the
   statistical bounds below are checked on fixed sequences (no flakiness). */
#include "test.h"

#include "slm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static slm_sampler *mk(float temp, int top_k, float top_p, float min_p, uint64_t seed, int n_vocab) {
    slm_sampler_params p;
    slm_sampler_params_init(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    slm_sampler *s = NULL;
    slm_error err;
    if (slm_sampler_create(&p, n_vocab, NULL, &s, &err) != SLM_OK) CHECK(0, "sampler_create: %s", err.message);
    return s;
}

/* Draw n times; counts[id]++. Returns 0 if a draw was out of range. */
static int draw(slm_sampler *s, const float *logits, int n_vocab, int n, int *counts) {
    memset(counts, 0, sizeof(int) * (size_t)n_vocab);
    for (int i = 0; i < n; i++) {
        int32_t t = slm_sampler_sample(s, logits);
        if (t < 0 || t >= n_vocab) return 0;
        counts[t]++;
    }
    return 1;
}

static void softmax(const float *l, int n, float temp, double *p) {
    double mx = -1e300, z = 0;
    for (int i = 0; i < n; i++)
        if (l[i] / temp > mx) mx = l[i] / temp;
    for (int i = 0; i < n; i++) z += p[i] = exp(l[i] / temp - mx);
    for (int i = 0; i < n; i++) p[i] /= z;
}

/* Every bin within 5 standard deviations of its expected count. */
static int freq_ok(const int *counts, const double *p, int n, int draws, double *worst) {
    *worst = 0;
    for (int i = 0; i < n; i++) {
        double e = p[i] * draws, sd = sqrt(draws * p[i] * (1 - p[i])) + 1e-9;
        double z = fabs(counts[i] - e) / sd;
        if (p[i] == 0 && counts[i] > 0) z = 1e9;
        if (z > *worst) *worst = z;
    }
    return *worst < 5.0;
}

static void test_greedy_topk1(void) {
    uint64_t rs = 7;
    float lg[1000];
    int ok = 1;
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < 1000; i++) lg[i] = t_randf(&rs) * 8;
        if (trial % 5 == 0) lg[100 + trial] = lg[200 + trial] = 20; /* a tie: lowest id wins */
        int best = 0;
        for (int i = 1; i < 1000; i++)
            if (lg[i] > lg[best]) best = i;
        slm_sampler *g = mk(0, 40, 0.95f, 0.05f, (uint64_t)trial, 1000);
        slm_sampler *k1 = mk(1.0f, 1, 1.0f, 0.0f, (uint64_t)trial, 1000);
        slm_sampler *k1t = mk(5.0f, 1, 0.5f, 0.3f, (uint64_t)trial + 99, 1000);
        int32_t a = slm_sampler_sample(g, lg), b = slm_sampler_sample(k1, lg), c = slm_sampler_sample(k1t, lg);
        ok &= a == best && b == best && c == best;
        slm_sampler_free(g);
        slm_sampler_free(k1);
        slm_sampler_free(k1t);
    }
    CHECK(ok, "top-k 1 and temperature 0 equal argmax (lowest id on ties)");
}

static void test_topp_minp(void) {
    /* probabilities 0.4 0.3 0.2 0.1 at temperature 1 */
    const float lg[6] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f), -INFINITY, -INFINITY};
    int c[6];
    for (int sorted = 0; sorted < 2; sorted++) { /* with top-k (sorted set) and without */
        int k = sorted ? 5 : 0;
        slm_sampler *s = mk(1.0f, k, 0.65f, 0.0f, 1, 6);
        CHECK(draw(s, lg, 6, 20000, c), "draw");
        /* smallest set with mass >= 0.65: {0.4, 0.3}, renormalized */
        double p1[6] = {0.4 / 0.7, 0.3 / 0.7, 0, 0, 0, 0}, w;
        CHECK(freq_ok(c, p1, 6, 20000, &w), "top-p 0.65 (top-k %d): keeps {0,1}, counts %d %d %d %d, z %.2f", k,
              c[0], c[1], c[2], c[3], w);
        slm_sampler_free(s);
        s = mk(1.0f, k, 0.75f, 0.0f, 2, 6);
        draw(s, lg, 6, 20000, c);
        double p2[6] = {0.4 / 0.9, 0.3 / 0.9, 0.2 / 0.9, 0, 0, 0};
        CHECK(freq_ok(c, p2, 6, 20000, &w), "top-p 0.75 (top-k %d): keeps {0,1,2}, z %.2f", k, w);
        slm_sampler_free(s);
        s = mk(1.0f, k, 0.3f, 0.0f, 3, 6);
        draw(s, lg, 6, 1000, c);
        CHECK(c[0] == 1000, "top-p 0.3 keeps only the top token (%d)", c[0]);
        slm_sampler_free(s);
        /* min-p 0.3: p >= 0.12 -> {0.4, 0.3, 0.2} */
        s = mk(1.0f, k, 1.0f, 0.3f, 4, 6);
        draw(s, lg, 6, 20000, c);
        CHECK(freq_ok(c, p2, 6, 20000, &w), "min-p 0.3 (top-k %d): keeps {0,1,2}, z %.2f", k, w);
        slm_sampler_free(s);
        /* min-p 0.7: p >= 0.28 -> {0.4, 0.3} */
        s = mk(1.0f, k, 1.0f, 0.7f, 5, 6);
        draw(s, lg, 6, 20000, c);
        CHECK(freq_ok(c, p1, 6, 20000, &w), "min-p 0.7 (top-k %d): keeps {0,1}, z %.2f", k, w);
        slm_sampler_free(s);
    }
    /* top-k 2 on its own */
    slm_sampler *s = mk(1.0f, 2, 1.0f, 0.0f, 6, 6);
    draw(s, lg, 6, 20000, c);
    double p3[6] = {0.4 / 0.7, 0.3 / 0.7, 0, 0, 0, 0}, w;
    CHECK(freq_ok(c, p3, 6, 20000, &w), "top-k 2 keeps {0,1}, z %.2f", w);
    slm_sampler_free(s);
}

static void test_softmax_freq(void) {
    const int N = 16, D = 40000;
    float lg[16];
    uint64_t rs = 11;
    for (int i = 0; i < N; i++) lg[i] = t_randf(&rs) * 3;
    float temps[3] = {1.0f, 0.7f, 1.5f};
    for (int t = 0; t < 3; t++) {
        int c[16];
        double p[16], w;
        slm_sampler *s = mk(temps[t], 0, 1.0f, 0.0f, 1234 + (uint64_t)t, N);
        CHECK(draw(s, lg, N, D, c), "draw");
        softmax(lg, N, temps[t], p);
        CHECK(freq_ok(c, p, N, D, &w), "frequencies match softmax at temperature %.1f (worst z %.2f)", temps[t], w);
        slm_sampler_free(s);
    }
    /* a large vocabulary with the default chain: every draw is in the top 40 */
    {
        enum { V = 5000 };
        static float big[V];
        for (int i = 0; i < V; i++) big[i] = t_randf(&rs) * 10;
        int rank_ok = 1;
        slm_sampler *s = mk(0.8f, 40, 0.95f, 0.05f, 5, V);
        for (int d = 0; d < 500; d++) {
            int32_t t = slm_sampler_sample(s, big);
            int above = 0;
            for (int i = 0; i < V; i++) above += big[i] > big[t];
            rank_ok &= above < 40;
        }
        CHECK(rank_ok, "default chain draws only from the top 40");
        slm_sampler_free(s);
    }
}

static void test_penalties(void) {
    slm_sampler_params p;
    slm_sampler *s;
    slm_error err;
#define MK(field, val, last_n)                                              \
    do {                                                                    \
        slm_sampler_params_init(&p);                                        \
        p.temperature = 0;                                                  \
        p.repeat_last_n = last_n;                                           \
        p.field = val;                                                      \
        s = NULL;                                                           \
        CHECK(slm_sampler_create(&p, 4, NULL, &s, &err) == SLM_OK, "create"); \
    } while (0)
    /* positive logit divided, negative multiplied */
    float a[4] = {2.0f, 1.9f, -5, -5};
    MK(repeat_penalty, 1.1f, 64);
    CHECK(slm_sampler_sample(s, a) == 0, "no history: no penalty");
    slm_sampler_accept(s, 0);
    CHECK(slm_sampler_sample(s, a) == 1, "2.0 / 1.1 < 1.9");
    slm_sampler_free(s);
    float b[4] = {-1.0f, -1.05f, -9, -9};
    MK(repeat_penalty, 1.1f, 64);
    slm_sampler_accept(s, 0);
    CHECK(slm_sampler_sample(s, b) == 1, "-1.0 * 1.1 < -1.05");
    slm_sampler_free(s);
    /* only tokens inside the window */
    MK(repeat_penalty, 1.1f, 2);
    slm_sampler_accept(s, 0);
    slm_sampler_accept(s, 2);
    slm_sampler_accept(s, 3);
    CHECK(slm_sampler_sample(s, a) == 0, "token 0 left the window of 2");
    slm_sampler_free(s);
    /* frequency: count * f; presence: once */
    float c[4] = {1.0f, 0.5f, -9, -9};
    MK(frequency_penalty, 0.3f, 64);
    slm_sampler_accept(s, 0);
    slm_sampler_accept(s, 0);
    CHECK(slm_sampler_sample(s, c) == 1, "1.0 - 2 * 0.3 < 0.5");
    slm_sampler_free(s);
    MK(frequency_penalty, 0.2f, 64);
    slm_sampler_accept(s, 0);
    slm_sampler_accept(s, 0);
    CHECK(slm_sampler_sample(s, c) == 0, "1.0 - 2 * 0.2 > 0.5");
    slm_sampler_free(s);
    MK(presence_penalty, 0.6f, 64);
    slm_sampler_accept(s, 0);
    slm_sampler_accept(s, 0);
    CHECK(slm_sampler_sample(s, c) == 1, "1.0 - 0.6 < 0.5");
    slm_sampler_free(s);
    MK(presence_penalty, 0.4f, 64);
    slm_sampler_accept(s, 0);
    slm_sampler_accept(s, 0);
    slm_sampler_accept(s, 0);
    CHECK(slm_sampler_sample(s, c) == 0, "presence counts once: 1.0 - 0.4 > 0.5");
    slm_sampler_reset(s, 0);
    CHECK(slm_sampler_sample(s, c) == 0, "reset clears the window");
    slm_sampler_free(s);
#undef MK
    /* penalized logits in the distribution: frequencies follow
       softmax(l') with l' the penalized values, the other tokens unchanged */
    {
        float l[4] = {1.0f, 0.5f, -0.5f, 0.0f}, lp[4] = {1.0f / 1.5f - 0.2f * 2, 0.5f, -0.5f * 1.5f - 0.2f, 0.0f};
        slm_sampler_params_init(&p);
        p.temperature = 1.0f;
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0;
        p.repeat_penalty = 1.5f;
        p.frequency_penalty = 0.2f;
        p.seed = 77;
        s = NULL;
        slm_sampler_create(&p, 4, NULL, &s, &err);
        slm_sampler_accept(s, 0);
        slm_sampler_accept(s, 0);
        slm_sampler_accept(s, 2);
        int cnt[4];
        double pr[4], w;
        draw(s, l, 4, 40000, cnt);
        softmax(lp, 4, 1.0f, pr);
        CHECK(freq_ok(cnt, pr, 4, 40000, &w), "penalized distribution (worst z %.2f)", w);
        slm_sampler_free(s);
    }
}

static void test_seeds(void) {
    const int N = 64;
    float lg[64];
    uint64_t rs = 3;
    for (int i = 0; i < N; i++) lg[i] = t_randf(&rs) * 2;
    slm_sampler *a = mk(1.0f, 0, 1.0f, 0, 42, N), *b = mk(1.0f, 0, 1.0f, 0, 42, N), *c = mk(1.0f, 0, 1.0f, 0, 43, N);
    int32_t sa[200], sb[200], sc[200];
    int same = 1, diff = 0;
    for (int i = 0; i < 200; i++) {
        sa[i] = slm_sampler_sample(a, lg);
        sb[i] = slm_sampler_sample(b, lg);
        sc[i] = slm_sampler_sample(c, lg);
        same &= sa[i] == sb[i];
        diff += sa[i] != sc[i];
    }
    CHECK(same, "same seed, same sequence");
    CHECK(diff > 100, "another seed, another sequence (%d of 200 differ)", diff);
    slm_sampler_reset(a, 42);
    same = 1;
    for (int i = 0; i < 200; i++) same &= slm_sampler_sample(a, lg) == sa[i];
    CHECK(same, "reset(seed) replays the sequence");
    /* the same draws on every platform: this sequence was recorded once and
       must come out bit-identically everywhere (x86, ARM, RISC-V, ...) */
    {
        float l8[8] = {0.5f, -1.0f, 2.0f, 0.25f, 1.5f, -0.75f, 1.0f, 0.0f};
        slm_sampler *d = mk(0.9f, 6, 0.97f, 0.02f, 20240601, 8);
        const int32_t want[24] = {2, 4, 3, 4, 6, 2, 2, 2, 3, 2, 2, 2, 2, 2, 0, 4, 4, 2, 2, 6, 6, 2, 2, 6};
        int32_t got[24];
        int eq = 1;
        for (int i = 0; i < 24; i++) {
            got[i] = slm_sampler_sample(d, l8);
            eq &= got[i] == want[i];
        }
        if (!eq) {
            printf("  recorded sequence differs:");
            for (int i = 0; i < 24; i++) printf(" %d", got[i]);
            printf("\n");
        }
        CHECK(eq, "recorded seed sequence reproduced");
        slm_sampler_free(d);
    }
    slm_sampler_free(a);
    slm_sampler_free(b);
    slm_sampler_free(c);
    /* bad parameters are refused */
    slm_sampler_params p;
    slm_sampler_params_init(&p);
    p.repeat_penalty = 0;
    slm_sampler *s = NULL;
    CHECK(slm_sampler_create(&p, 10, NULL, &s, NULL) == SLM_ERR_INVALID_ARG && !s, "repeat_penalty 0 refused");
    slm_sampler_params_init(&p);
    CHECK(slm_sampler_create(&p, 0, NULL, &s, NULL) == SLM_ERR_INVALID_ARG, "n_vocab 0 refused");
    CHECK(slm_sampler_sample(NULL, lg) == -1, "NULL sampler");
}

void test_sampler(void) {
    test_greedy_topk1();
    test_topp_minp();
    test_softmax_freq();
    test_penalties();
    test_seeds();
}
