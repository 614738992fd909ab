/* The prefill GEMM kernels (gemm16_x8, gemm16_rows; slm.c section 6 and
   matmul_gemm in section 7), included by test_kernels.c. On random rows of
   several lengths and scale classes (tiny, normal, huge), 1-40 tokens:
   - gemm16_x8: two x8 groups (an odd gap between them) give, for every row
     and token, the bits of the type's 4-token x8 kernel, and the reference
     dot within the bound of the x8 test; 1-67 tokens (past the kernels'
     64-token chunks), and a fourth pass on saturated rows (levels at their
     ends, Q8_0's -128) against activations of +-127, the 16-bit sums' worst
     case (bits only: the float sum may overflow);
   - gemm16_rows: 16 K-quant rows (an odd stride) against Q8_K tokens give
     the scalar reference dot (kblock_dot) within the same bound; the bits
     are the reference's where neither side fuses multiply and add;
   - matmul_gemm over a matrix whose row count is not a multiple of 16 (the
     tail through the other kernels) equals the other kernels' product. */

static float gemm_ref_dot(int type, int n, const uint8_t *w, const uint8_t *a) { return TRAITS[type].vec_dot(n, w, a); }

/* Saturated blocks for the x8 types: every quant byte 0x00, 0xff, 0x80 or
   0x7f (nibbles 0/15, Q5_0's fifth bits, Q8_0's -128 and 127), and Q8_0
   activations all +127 or all -127 per row. */
static void gemm_saturate(int type, int n, uint8_t *w, size_t rb, uint8_t *a, size_t arb, int nt, uint64_t *s) {
    static const uint8_t pick[4] = {0x00, 0xff, 0x80, 0x7f};
    const int bytes = type_size_of(type)->bytes;
    for (int r = 0; r < 16; r++)
        for (int b = 0; b < n / 32; b++)
            for (int i = 2; i < bytes; i++) w[r * rb + (size_t)b * bytes + i] = pick[t_rand(s) % 4];
    for (int t = 0; t < nt; t++) {
        const int v = (t_rand(s) & 1) ? 127 : -127;
        for (int b = 0; b < n / 32; b++) memset(a + t * arb + (size_t)b * 34 + 2, (uint8_t)(int8_t)v, 32);
    }
}

static void check_gemm16(const kernel_table *kt) {
    static const int types[] = {SLM_TYPE_Q4_0, SLM_TYPE_Q8_0, SLM_TYPE_Q5_0, SLM_TYPE_Q2_K, SLM_TYPE_Q3_K,
                                SLM_TYPE_Q4_K, SLM_TYPE_Q5_K, SLM_TYPE_Q6_K, SLM_TYPE_IQ4_XS, SLM_TYPE_IQ4_NL};
    static const int lens32[] = {1, 3, 7, 18, 33}, lens256[] = {1, 2, 3, 7};
    uint64_t s = 77;
    enum { NT = 67, LDY = 16 + 3 };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int type = types[ti], dt = TRAITS[type].dot_type;
        const int x8 = kt->gemm16_x8[type] != NULL && !is_kx8(type), /* K-quant x8: test_kernels_kgemm.c */ rows = kt->gemm16_rows[type] != NULL;
        if (!x8 && !rows) continue;
        const int bs = type_size_of(type)->blck;
        const int *lens = bs == 32 ? lens32 : lens256, nl = bs == 32 ? 5 : 4;
        int bad = 0, not_same = 0, runs = 0, exact = 0, bad_mm = 0;
        double worst = 0;
        for (int li = 0; li < nl; li++) {
            const int n = bs * lens[li], nb = n / bs;
            const size_t rb = row_bytes(type, n), arb = row_bytes(dt, n) + 6;
            const size_t wb = x8 ? 8 * rb + 40 : rb + 10; /* odd gaps */
            uint8_t *w = (uint8_t *)malloc(16 * rb), *g = (uint8_t *)calloc(1, 2 * wb + 16 * rb);
            uint8_t *a = (uint8_t *)malloc(NT * arb);
            const size_t axrb = act_row_bytes(ACT_Q8_0X, n) + 8;
            uint8_t *ax = (uint8_t *)malloc(NT * axrb);
            float *y = (float *)malloc(sizeof(float) * NT * LDY), *y4 = (float *)malloc(sizeof(float) * NT * LDY);
            float *wf = (float *)malloc((size_t)n * sizeof(float)), *af = (float *)malloc((size_t)n * sizeof(float));
            for (int rep = 0; rep < 3 + x8; rep++) {
                const int ext = rep == 3;
                for (int r = 0; r < 16; r++) rand_row(type, n, (r + rep) % 3, 0, &s, w + r * rb);
                for (int t = 0; t < NT; t++) rand_row(dt, n, (t + rep) % 3, 1, &s, a + t * arb);
                if (ext) gemm_saturate(type, n, w, rb, a, arb, NT, &s);
                const uint8_t *kw = g, *ka = a;
                size_t karb = arb;
                if (x8) {
                    x8_pack(type, w, rb, nb, g);
                    x8_pack(type, w + 8 * rb, rb, nb, g + wb);
                    q8_0x_rows(a, arb, NT, nb, ax, axrb);
                    ka = ax, karb = axrb;
                } else {
                    for (int r = 0; r < 16; r++) memcpy(g + r * wb, w + r * rb, rb);
                }
                for (int nt = 1; nt <= NT; nt += (nt < 9 ? 1 : nt < 33 ? 7 : nt < 40 ? 1 : nt < 65 ? 25 : 2)) {
                    for (int i = 0; i < NT * LDY; i++) y[i] = -1234.5f;
                    (x8 ? kt->gemm16_x8[type] : kt->gemm16_rows[type])(n, kw, wb, ka, karb, nt, y, LDY);
                    if (x8)
                        for (int h = 0; h < 2; h++)
                            for (int t = 0; t < nt; t += 4)
                                kt->gemm_x8[type](n, g + h * wb, ax + t * axrb, axrb, SLM_MIN(4, nt - t), y4 + t * LDY + 8 * h, LDY);
                    for (int t = 0; t < nt; t++)
                        for (int r = 0; r < 16; r++) {
                            const float got = y[t * LDY + r];
                            const float ref = gemm_ref_dot(type, n, w + r * rb, a + t * arb);
                            const double mag = dot_mag(type, w + r * rb, a + t * arb, n, wf, af);
                            const double e = fabs((double)got - ref) / (mag + 1e-300);
                            if (!ext) {
                                worst = e > worst ? e : worst;
                                bad += !(e <= (n / 32 + 8) * 1.2e-7);
                                exact += memcmp(&got, &ref, sizeof got) == 0;
                            }
                            if (x8) not_same += memcmp(&got, &y4[t * LDY + r], sizeof got) != 0;
                            runs++;
                        }
                    for (int t = nt; t < NT; t++) /* nothing written past nt tokens or 16 rows */
                        for (int r = 0; r < LDY; r++) bad += y[t * LDY + r] != -1234.5f;
                    for (int t = 0; t < nt; t++)
                        for (int r = 16; r < LDY; r++) bad += y[t * LDY + r] != -1234.5f;
                }
            }
            /* matmul_gemm on 16 + 16 + 8 rows, 37 tokens: the slabs and the
               tail give the product of the kernels the forward pass uses
               below SLM_GEMM_MIN_TOKENS (for x8, the same bits) */
            {
                const int nr = 40, ntk = 37;
                uint8_t *m = (uint8_t *)malloc((size_t)nr * rb), *am = (uint8_t *)malloc((size_t)ntk * arb);
                for (int r = 0; r < nr; r++) rand_row(type, n, r % 3, 0, &s, m + r * rb);
                for (int t = 0; t < ntk; t++) rand_row(dt, n, t % 3, 1, &s, am + t * arb);
                weight wt;
                memset(&wt, 0, sizeof wt);
                wt.data = m, wt.type = type, wt.n_in = n, wt.n_out = nr, wt.rb = rb;
                wt.dot = kt->dot[type], wt.dot4 = kt->dot4[type], wt.g16x8 = kt->gemm16_x8[type], wt.g16 = kt->gemm16_rows[type];
                const uint8_t *xq = am;
                size_t xrb = arb;
                uint8_t *axm = NULL;
                if (x8) {
                    uint8_t *tmp = (uint8_t *)malloc(8 * rb);
                    for (int gi = 0; gi < nr / 8; gi++) {
                        memcpy(tmp, m + (size_t)gi * 8 * rb, 8 * rb);
                        x8_pack(type, tmp, rb, nb, m + (size_t)gi * 8 * rb);
                    }
                    free(tmp);
                    wt.x8 = kt->gemm_x8[type];
                    axm = (uint8_t *)malloc((size_t)ntk * axrb);
                    q8_0x_rows(am, arb, ntk, nb, axm, axrb);
                    xq = axm, xrb = axrb;
                }
                float *y1 = (float *)malloc(sizeof(float) * ntk * nr), *y2 = (float *)malloc(sizeof(float) * ntk * nr);
                const int64_t units = x8 ? nr / 8 : nr;
                CHECK(mm_gemm(&wt, ntk) != NULL, "%s: no GEMM for %d tokens", slm_type_name(type), ntk);
                matmul_gemm(mm_gemm(&wt, ntk), &wt, xq, xrb, ntk, y1, nr, 0, units);
                if (x8) matmul_x8(&wt, xq, xrb, ntk, y2, nr, 0, units);
                else matmul_k(wt.dot, wt.dot4, &wt, xq, xrb, ntk, y2, nr, 0, units);
                for (int i = 0; i < ntk * nr; i++) {
                    if (x8) bad_mm += memcmp(&y1[i], &y2[i], sizeof(float)) != 0;
                    else {
                        const int t = i / nr, r = i % nr;
                        uint8_t *row = (uint8_t *)malloc(rb);
                        memcpy(row, m + (size_t)r * rb, rb);
                        const double mag = dot_mag(type, row, am + t * arb, n, wf, af);
                        bad_mm += !(fabs((double)y1[i] - y2[i]) / (mag + 1e-300) <= 2 * (n / 32 + 8) * 1.2e-7);
                        free(row);
                    }
                }
                free(m), free(am), free(axm), free(y1), free(y2);
            }
            free(w), free(g), free(a), free(ax), free(y), free(y4), free(wf), free(af);
        }
        printf("  gemm16 %-6s %s (%s): %d results, max err %.1f x 2^-24 sum|w*a|, %d with the reference's bits\n",
               slm_type_name(type), kt->name, x8 ? "x8 groups" : "rows", runs, worst * 16777216.0, exact);
        CHECK(bad == 0, "gemm16 %s %s: %d of %d results off", slm_type_name(type), kt->name, bad, runs);
        CHECK(not_same == 0, "gemm16 %s %s: %d results differ from the x8 kernel's bits", slm_type_name(type), kt->name,
              not_same);
        CHECK(bad_mm == 0, "gemm16 %s %s: matmul_gemm differs from the small-batch kernels in %d results",
              slm_type_name(type), kt->name, bad_mm);
    }
}
