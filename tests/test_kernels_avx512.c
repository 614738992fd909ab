/* The AVX-512/VNNI kernels (slm.c section 6b2) against the scalar references
   and against the AVX2 kernels of the same type, on this CPU if it has
   AVX-512 F/BW/VL/DQ and VNNI (skipped with a notice otherwise). Included by
   test_kernels.c (one translation unit includes slm.c), whose helpers
   (rand_row, dot_mag, ...) it uses. Same bounds as the AVX2 checks: a dot
   product within (k + 8) * 2^-23 M of the reference (k: blocks or
   super-blocks per accumulator lane, M: the summed magnitudes of the
   terms), the 4-token kernel bit-identical to the 1-token kernel, an x8
   kernel within (blocks + 8) * 1.2e-7 M per row. Rows include saturated
   ones: every weight byte 0x00, 0xff, 0x80 or 0x7f and every activation
   +-127, the worst case of the integer sums. */

#ifdef SLM_HAVE_AVX512_KERNELS

/* the CPU and the OS run AVX-512 F/BW/VL/DQ with VNNI (section 6h) */
static int avx512_cpu(void) { return cpu_has_isa(SLM_ISA_AVX512); }

/* offsets of a block's f16 fields (scales and mins), -1 terminated */
static const int *half_fields(int type) {
    static const int d0[] = {0, -1}, d02[] = {0, 2, -1}, q2k[] = {80, 82, -1}, q3k[] = {108, -1}, q6k[] = {208, -1};
    switch (type) {
    case SLM_TYPE_Q4_1: case SLM_TYPE_Q5_1: case SLM_TYPE_Q4_K: case SLM_TYPE_Q5_K: return d02;
    case SLM_TYPE_Q2_K: return q2k;
    case SLM_TYPE_Q3_K: return q3k;
    case SLM_TYPE_Q6_K: return q6k;
    default: return d0;
    }
}

/* rand_row, then the integer fields saturated: weight bytes (all but the
   f16 fields) from {0x00, 0xff, 0x80, 0x7f}; activations all +127 or all
   -127 (one sign per row), Q8_1's s and Q8_K's bsums recomputed */
static void extreme_row(int type, int n, int cls, int act, uint64_t *s, uint8_t *row) {
    static const uint8_t pick[4] = {0x00, 0xff, 0x80, 0x7f};
    rand_row(type, n, cls, act, s, row);
    const type_size *ts = type_size_of(type);
    const int8_t v = (t_rand(s) & 1) ? 127 : -127;
    for (int b = 0; b < n / ts->blck; b++) {
        uint8_t *blk = row + (size_t)b * (size_t)ts->bytes;
        if (!act) {
            const int *hf = half_fields(type);
            for (int i = 0; i < ts->bytes; i++) {
                int keep = 0;
                for (const int *h = hf; *h >= 0; h++) keep |= i == *h || i == *h + 1;
                if (!keep) blk[i] = pick[t_rand(s) % 4];
            }
        } else if (type == SLM_TYPE_Q8_0) {
            memset(blk + 2, (uint8_t)v, 32);
        } else if (type == SLM_TYPE_Q8_1) {
            memset(blk + 4, (uint8_t)v, 32);
            st_u16(blk + 2, f32_to_fp16(ld_f16(blk) * (float)(32 * v)));
        } else if (type == SLM_TYPE_Q8_K) {
            memset(blk + 4, (uint8_t)v, QK_K);
            for (int k = 0; k < 16; k++) st_u16(blk + 260 + 2 * k, (uint16_t)(int16_t)(16 * v));
        }
    }
}

static void make_row(int type, int n, int cls, int act, int extreme, uint64_t *s, uint8_t *row) {
    if (extreme) extreme_row(type, n, cls, act, s, row);
    else rand_row(type, n, cls, act, s, row);
}

static void check_avx512_x8(void) {
    static const struct {
        int type;
        gemm_x8_fn k512, k2;
        vec_dot_fn ref;
    } cases[] = {{SLM_TYPE_Q4_0, gemm_q4_0x8_avx512, gemm_q4_0x8_avx2, dot_q4_0_ref},
                 {SLM_TYPE_Q8_0, gemm_q8_0x8_avx512, gemm_q8_0x8_avx2, dot_q8_0_ref},
                 {SLM_TYPE_Q5_0, gemm_q5_0x8_avx512, gemm_q5_0x8_avx2, dot_q5_0_ref}};
    static const int blocks[] = {1, 2, 3, 7, 18, 33, 96};
    uint64_t s = 13;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int type = cases[ci].type, dt = TRAITS[type].dot_type;
        int bad = 0, diff2 = 0, runs = 0;
        double worst = 0;
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            const int nb = blocks[bi], n = 32 * nb;
            const size_t rb = row_bytes(type, n), arb = row_bytes(dt, n) + 6, axrb = act_row_bytes(ACT_Q8_0X, n) + 8;
            uint8_t *w = (uint8_t *)malloc(8 * rb), *g = (uint8_t *)malloc(8 * rb), *a = (uint8_t *)malloc(4 * arb);
            uint8_t *ax = (uint8_t *)malloc(4 * axrb);
            float *wf = (float *)malloc((size_t)n * sizeof(float)), *af = (float *)malloc((size_t)n * sizeof(float));
            for (int rep = 0; rep < 8; rep++) {
                const int ext = rep >= 5;
                for (int r = 0; r < 8; r++) make_row(type, n, (r + rep) % 3, 0, ext, &s, w + r * rb);
                for (int t = 0; t < 4; t++) make_row(dt, n, rep % 3, 1, ext, &s, a + t * arb);
                q8_0x_rows(a, arb, 4, nb, ax, axrb); /* Q8_0X of the same activations */
                x8_pack(type, w, rb, nb, g);
                for (int nt = 1; nt <= 4; nt++) {
                    float y[4 * 9], y2[4 * 9];
                    cases[ci].k512(n, g, ax, axrb, nt, y, 9);
                    cases[ci].k2(n, g, ax, axrb, nt, y2, 9);
                    for (int t = 0; t < nt; t++)
                        for (int r = 0; r < 8; r++) {
                            const float ref = cases[ci].ref(n, w + r * rb, a + t * arb);
                            const double mag = dot_mag(type, w + r * rb, a + t * arb, n, wf, af);
                            const double e = fabs((double)y[t * 9 + r] - ref) / (mag + 1e-300);
                            worst = e > worst ? e : worst;
                            bad += !(e <= (nb + 8) * 1.2e-7);
                            diff2 += memcmp(&y[t * 9 + r], &y2[t * 9 + r], sizeof(float)) != 0;
                            runs++;
                        }
                }
            }
            free(w), free(g), free(a), free(ax), free(wf), free(af);
        }
        printf("  avx512 x8 %-5s %d row results, max err %.1f x 2^-24 M, %d differ from avx2\n", slm_type_name(type),
               runs, worst * 16777216.0, diff2);
        CHECK(bad == 0, "%s x8 avx512: %d of %d results off", slm_type_name(type), bad, runs);
        CHECK(diff2 == 0, "%s x8 avx512: %d of %d results differ from the AVX2 kernel's bits", slm_type_name(type), diff2, runs);
    }
}

typedef struct dot512_case {
    int type;
    const char *name;
    vec_dot_fn dot;
    vec_dot4_fn dot4; /* NULL: none */
    vec_dot_fn ref;
} dot512_case;

#define DOT512(T, name) {SLM_TYPE_##T, "dot_" #name "_avx512", dot_##name##_avx512, dot4_##name##_avx512, dot_##name##_ref}

static void check_avx512_dots(void) {
    static const dot512_case cases[] = {
        DOT512(Q4_K, q4_k), DOT512(Q6_K, q6_k), DOT512(Q5_K, q5_k), DOT512(Q3_K, q3_k), DOT512(Q2_K, q2_k),
        DOT512(IQ4_XS, iq4_xs), DOT512(IQ4_NL, iq4_nl), DOT512(Q4_1, q4_1), DOT512(Q5_1, q5_1),
        DOT512(Q4_0, q4_0), DOT512(Q5_0, q5_0),
    };
    static const int blocks[] = {1, 2, 3, 5, 7, 8, 9, 31, 33, 64, 128, 137};
    static const int supers[] = {1, 2, 3, 4, 5, 7, 11, 16, 17, 56};
    uint64_t s = 17;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const dot512_case *dc = &cases[c];
        const int type = dc->type, dt = TRAITS[type].dot_type, blk = type_size_of(type)->blck;
        const int nl = blk == 32 ? (int)(sizeof blocks / sizeof blocks[0]) : (int)(sizeof supers / sizeof supers[0]);
        int bad = 0, bad4 = 0, bad2 = 0, runs = 0;
        double worst = 0, worst2 = 0;
        for (int li = 0; li < nl; li++) {
            const int n = blk == 32 ? 32 * blocks[li] : QK_K * supers[li];
            const size_t wrb = row_bytes(type, n), arb = row_bytes(dt, n) + 8; /* rows not 16-byte aligned */
            uint8_t *w = (uint8_t *)malloc(wrb), *a = (uint8_t *)malloc(4 * arb);
            float *wf = (float *)malloc(n * sizeof(float)), *af = (float *)malloc(n * sizeof(float));
            for (int rep = 0; rep < 9; rep++) {
                const int wc = rep % 3, ac = rep < 3 ? 0 : (rep + 1) % 3, ext = rep >= 6;
                make_row(type, n, wc, 0, ext, &s, w);
                for (int t = 0; t < 4; t++) make_row(dt, n, ac, 1, ext, &s, a + t * arb);
                float y4[12];
                if (dc->dot4) dc->dot4(n, w, a, arb, y4, 3);
                for (int t = 0; t < 4; t++) {
                    const double mag = dot_mag(type, w, a + t * arb, n, wf, af);
                    const float got = dc->dot(n, w, a + t * arb), ref = dc->ref(n, w, a + t * arb);
                    const float avx2 = KERNELS_AVX2.dot[type](n, w, a + t * arb);
                    const double k = (double)(n / blk), unit = mag * ldexp(1.0, -24);
                    const double err = fabs((double)got - ref), err2 = fabs((double)got - avx2);
                    if (!(err <= (k + 8) * 2 * unit) && bad++ < 3)
                        printf("  %s n=%d: avx512 %.9g ref %.9g (M %.3g)\n", dc->name, n, got, ref, mag);
                    if (!(err2 <= (k + 8) * 4 * unit) && bad2++ < 3)
                        printf("  %s n=%d: avx512 %.9g avx2 %.9g (M %.3g)\n", dc->name, n, got, avx2, mag);
                    if (unit > 0) worst = fmax(worst, err / unit), worst2 = fmax(worst2, err2 / unit);
                    if (dc->dot4 && memcmp(&y4[3 * t], &got, sizeof got) != 0) bad4++;
                    runs++;
                }
            }
            free(w), free(a), free(wf), free(af);
        }
        printf("  avx512 %-18s %4d rows, max err %6.1f x 2^-24 M (vs avx2 %6.1f)%s\n", dc->name, runs, worst, worst2,
               dc->dot4 ? ", 4-token kernel checked" : "");
        CHECK(bad == 0, "%s: %d dot products beyond the bound", dc->name, bad);
        CHECK(bad2 == 0, "%s: %d dot products too far from the AVX2 kernel's", dc->name, bad2);
        CHECK(bad4 == 0, "%s: 4-token kernel differs from the 1-token kernel in %d results", dc->name, bad4);
    }
}


/* softmax's exponentials: within 2 ulp of expf down to -87.3 (the bound of
   the AVX2 check), the sums within float rounding of the reference's and
   the AVX2 kernel's; lengths with every tail, -inf scores give 0 */
static void check_avx512_exp_sum(void) {
    enum { N = 1003 };
    static float x[N], y[N], z[N];
    uint64_t s = 5;
    int bad = 0;
    double worst = 0;
    for (int rep = 0; rep < 40; rep++) {
        const float mx = t_randf(&s) * 50.0f;
        for (int i = 0; i < N; i++) x[i] = mx - (float)(t_rand(&s) % 1000000) * (rep % 2 ? 1e-4f : 1e-3f);
        x[rep] = mx;
        if (rep % 5 == 4) x[(int)(t_rand(&s) % N)] = -INFINITY;
        memcpy(y, x, sizeof x), memcpy(z, x, sizeof x);
        const int n = rep < 17 ? 1 + rep : N - rep;
        const double a = exp_sum_avx512(x, n, mx), b = exp_sum_ref(y, n, mx), c = exp_sum_avx2(z, n, mx);
        for (int i = 0; i < n; i++) {
            if (y[i] == 0) {
                bad += x[i] != 0;
                continue;
            }
            if (logf(y[i]) < -87.2f) continue; /* near the flush-to-zero limit */
            const double e = fabs((double)x[i] - y[i]) / y[i];
            worst = e > worst ? e : worst;
            bad += !(e <= 2.5e-7);
        }
        bad += !(fabs(a - b) <= 1e-6 * b) + !(fabs(a - c) <= 1e-6 * c);
        for (int i = n; i < N; i++) bad += memcmp(&x[i], &y[i], sizeof(float)) != 0; /* nothing past n written */
    }
    printf("  avx512 exp (softmax): max rel err %.2e vs expf\n", worst);
    CHECK(bad == 0, "exp_sum_avx512: %d values or sums off", bad);
}

static void check_avx512(void) {
    if (!avx512_cpu()) {
        printf("  avx512 kernels: compiled in, but this CPU lacks AVX-512 F/BW/VL/DQ/VNNI: skipped\n");
        return;
    }
    check_avx512_x8();
    check_avx512_dots();
    check_avx512_exp_sum();
}

#else
static void check_avx512(void) { printf("  avx512 kernels: not in this build\n"); }
#endif
