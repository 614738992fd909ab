/* The recurrences of slm.c section 9b against plain references on random
   data: the small float mat-mul of every built ISA this CPU runs, the
   chunked gated delta rule against the token-by-token recurrence
   (delta_step) over odd lengths and chunk tails, and the token-major causal
   conv against the direct sum (in place, short chunks, state in place).
   Included by test_kernels.c (it reaches slm.c's statics). Skipped in the
   builds without malloc. */

#if !defined(SLM_NO_MALLOC)
static float scan_maxdiff(const float *a, const float *b, size_t n, float *maxabs) {
    float d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = SLM_MAX(d, fabsf(a[i] - b[i]));
        m = SLM_MAX(m, fabsf(b[i]));
    }
    *maxabs = m;
    return d;
}

/* Cases whose buffers did not fit in the heap (a microcontroller's 480 KB):
   counted and reported, never run on NULL. */
static int scan_skipped;

static void check_rec_gemm(int isa, uint64_t *rs) {
    static const int sz[][3] = {{1, 1, 1}, {4, 32, 7}, {5, 33, 9}, {64, 128, 128}, {13, 47, 64}, {128, 128, 3}, {7, 16, 5}};
    const rec_gemm_fn gm = rec_gemm_for(isa);
    for (size_t z = 0; z < sizeof sz / sizeof sz[0]; z++) {
        const int M = sz[z][0], N = sz[z][1], K = sz[z][2];
        const int64_t ars = 3, acs = 3 * M + 1; /* strided A: element (m, k) at m*3 + k*(3M+1) */
        float *A = malloc(sizeof(float) * (size_t)(acs * K + 3 * M)), *B = malloc(sizeof(float) * (size_t)K * N);
        float *C0 = malloc(sizeof(float) * (size_t)M * (N + 2)), *C1 = malloc(sizeof(float) * (size_t)M * (N + 2));
        if (!A || !B || !C0 || !C1) {
            scan_skipped++;
            free(A), free(B), free(C0), free(C1);
            continue;
        }
        for (int64_t i = 0; i < acs * K + 3 * M; i++) A[i] = t_randf(rs);
        for (int i = 0; i < K * N; i++) B[i] = t_randf(rs);
        for (int i = 0; i < M * (N + 2); i++) C0[i] = C1[i] = t_randf(rs);
        rec_gemm_ref(M, N, K, A, ars, acs, B, N, C0, N + 2);
        gm(M, N, K, A, ars, acs, B, N, C1, N + 2);
        float mx, d = scan_maxdiff(C1, C0, (size_t)M * (N + 2), &mx);
        CHECK(d <= 1e-5f * K + 1e-6f, "rec_gemm isa %d %dx%dx%d: max diff %g", isa, M, N, K, d);
        free(A), free(B), free(C0), free(C1);
    }
}

/* n tokens of one v-head both ways; q, k L2-normed as in the model */
static void check_delta(int isa, int dk, int dv, int n, float gmin, uint64_t *rs) {
    const int64_t ld = 2 * dk + dv + 3; /* q | k | v, padded */
    float *x = malloc(sizeof(float) * (size_t)(n * ld)), *y = malloc(sizeof(float) * (size_t)(n * ld));
    float *g = malloc(sizeof(float) * (size_t)n), *bt = malloc(sizeof(float) * (size_t)n);
    float *S0 = malloc(sizeof(float) * (size_t)dk * dv), *Sa = malloc(sizeof(float) * (size_t)dk * dv);
    float *Sb = malloc(sizeof(float) * (size_t)dk * dv);
    const size_t nw = delta_work_floats(dk, dv, n);
    float *w = malloc(sizeof(float) * nw + 64);
    if (!x || !y || !g || !bt || !S0 || !Sa || !Sb || !w) {
        scan_skipped++;
        free(x), free(y), free(g), free(bt), free(S0), free(Sa), free(Sb), free(w);
        return;
    }
    for (int64_t i = 0; i < n * ld; i++) x[i] = t_randf(rs);
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < 2; h++) {
            float *v = x + t * ld + h * dk, ss = 0;
            for (int i = 0; i < dk; i++) ss += v[i] * v[i];
            for (int i = 0; i < dk; i++) v[i] /= sqrtf(ss);
        }
        g[t] = gmin * (0.5f + 0.5f * t_randf(rs)); /* in (gmin, 0] */
        bt[t] = 0.5f + 0.5f * t_randf(rs);
    }
    for (int i = 0; i < dk * dv; i++) S0[i] = t_randf(rs);
    memcpy(y, x, sizeof(float) * (size_t)(n * ld));
    const float scale = 1.0f / sqrtf((float)dk);
    /* reference: token by token from S0 */
    const float *Sin = S0;
    for (int t = 0; t < n; t++, Sin = Sa) {
        float *r = x + t * ld;
        delta_step(Sin, Sa, dk, dv, r, r + dk, r + 2 * dk, expf(g[t]), bt[t], scale, r + 2 * dk);
    }
    /* chunked, the state updated in place */
    memcpy(Sb, S0, sizeof(float) * (size_t)dk * dv);
    w[nw] = 12345.0f; /* a guard past the end */
    delta_scan(isa, Sb, Sb, dk, dv, n, y, y + dk, y + 2 * dk, ld, g, 1, bt, 1, scale, w);
    CHECK(w[nw] == 12345.0f, "delta_scan isa %d dk %d dv %d n %d: wrote past its work buffer", isa, dk, dv, n);
    float wo = 0, mo = 0;
    for (int t = 0; t < n; t++) {
        float m1, d1 = scan_maxdiff(y + t * ld + 2 * dk, x + t * ld + 2 * dk, (size_t)dv, &m1);
        wo = SLM_MAX(wo, d1), mo = SLM_MAX(mo, m1);
    }
    float ms, ds = scan_maxdiff(Sb, Sa, (size_t)dk * dv, &ms);
    CHECK(wo <= 2e-4f * (1 + mo) && ds <= 2e-4f * (1 + ms), "delta_scan isa %d dk %d dv %d n %d: out diff %g (max %g), state diff %g (max %g)",
          isa, dk, dv, n, wo, mo, ds, ms);
    free(x), free(y), free(g), free(bt), free(S0), free(Sa), free(Sb), free(w);
}

static void check_conv(int n, int C, int K, int inplace, int bias, uint64_t *rs) {
    const int64_t ld = C + 5;
    float *in = malloc(sizeof(float) * (size_t)(n * ld)), *out = malloc(sizeof(float) * (size_t)(n * ld));
    float *ref = malloc(sizeof(float) * (size_t)(n * C)), *w = malloc(sizeof(float) * (size_t)C * K);
    float *b = malloc(sizeof(float) * (size_t)C), *st = malloc(sizeof(float) * (size_t)(K - 1 + n) * C);
    float *st2 = malloc(sizeof(float) * (size_t)(K - 1) * C + 1);
    if (!in || !out || !ref || !w || !b || !st || !st2) {
        scan_skipped++;
        free(in), free(out), free(ref), free(w), free(b), free(st), free(st2);
        return;
    }
    for (int64_t i = 0; i < n * ld; i++) in[i] = t_randf(rs);
    for (int i = 0; i < C * K; i++) w[i] = t_randf(rs);
    for (int i = 0; i < C; i++) b[i] = t_randf(rs);
    for (int i = 0; i < (K - 1) * C; i++) st[i] = st2[i] = t_randf(rs);
    for (int t = 0; t < n; t++) /* the full history: state rows, then inputs */
        for (int c = 0; c < C; c++) st[(size_t)(K - 1 + t) * C + c] = in[t * ld + c];
    for (int t = 0; t < n; t++)
        for (int c = 0; c < C; c++) {
            float a = 0;
            for (int j = 0; j < K; j++) a += w[c * K + j] * st[(size_t)(t + j) * C + c];
            ref[t * C + c] = bias ? a + b[c] : a;
        }
    float *o = inplace ? in : out;
    causal_conv(in, ld, o, ld, n, C, K, w, bias ? b : NULL, st2, st2, 0, C); /* state in place */
    float d = 0, ds = 0;
    for (int t = 0; t < n; t++)
        for (int c = 0; c < C; c++) d = SLM_MAX(d, fabsf(o[t * ld + c] - ref[t * C + c]));
    for (int j = 0; j < K - 1; j++)
        for (int c = 0; c < C; c++) ds = SLM_MAX(ds, fabsf(st2[(size_t)j * C + c] - st[(size_t)(n + j) * C + c]));
    CHECK(d <= 1e-5f * K && ds == 0, "causal_conv n %d C %d K %d inplace %d: diff %g, state diff %g", n, C, K, inplace, d, ds);
    free(in), free(out), free(ref), free(w), free(b), free(st), free(st2);
}

static void check_scan(void) {
    uint64_t rs = 0x5ca9;
    static const int isas[] = {SLM_ISA_SCALAR, SLM_ISA_AVX2, SLM_ISA_AVX512};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (isas[i] != SLM_ISA_SCALAR && !slm_isa_available(isas[i])) continue;
        check_rec_gemm(isas[i], &rs);
        static const int dn[][3] = {{128, 128, 2}, {128, 128, 7}, {128, 128, 64}, {128, 128, 65}, {128, 128, 150},
                                    {24, 40, 33}, {40, 24, 9}, {256, 128, 70}, {8, 8, 1}, {128, 128, 1}};
        for (size_t z = 0; z < sizeof dn / sizeof dn[0]; z++) {
            check_delta(isas[i], dn[z][0], dn[z][1], dn[z][2], -0.3f, &rs);
            check_delta(isas[i], dn[z][0], dn[z][1], dn[z][2], -8.0f, &rs); /* strong decay: e^G underflows */
        }
    }
    static const int cv[][3] = {{1, 7, 4}, {2, 70, 4}, {3, 130, 3}, {17, 64, 4}, {40, 200, 5}, {5, 1, 1}};
    for (size_t z = 0; z < sizeof cv / sizeof cv[0]; z++)
        for (int ip = 0; ip < 2; ip++) check_conv(cv[z][0], cv[z][1], cv[z][2], ip, ip, &rs);
    if (scan_skipped) printf("  recurrences (9b): %d cases skipped, their buffers did not fit in the heap\n", scan_skipped);
    printf("  recurrences (9b): chunked delta rule, float mat-mul, causal conv checked\n");
}
#else
static void check_scan(void) {}
#endif
