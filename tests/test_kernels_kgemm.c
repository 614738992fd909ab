/* The prefill GEMM on K-quant x8 groups (gemm16_x8 for Q4_K, Q5_K, Q6_K, IQ4_XS;
   slm.c section 6, kx8slab_*), included by test_kernels.c after
   test_kernels_kx8.c (kx8_row). On random rows of 1, 2, 3 and 7
   super-blocks in every scale class, and on saturated rows and activations
   (kx8_row's extreme case), 1-67 Q8_K tokens (past the 64-token chunks):
   - two x8 groups (an odd gap between them) give, for every row and token,
     the bits of the scalar x8 reference (gemm_kx8_ref) and so of the table's
     4-token x8 kernel, and the one-row reference dot within the x8 bound;
   - nothing is written past the 16 rows or the nt tokens;
   - matmul_gemm over 5 groups (two slabs and a tail group), 37 tokens, has
     the bits of matmul_x8, and mm_gemm takes the GEMM from
     SLM_GEMM_X8_MIN_TOKENS tokens on. */

static void check_kgemm16(const kernel_table *kt) {
    static const int blocks[] = {1, 2, 3, 7};
    enum { NT = 67, LDY = 16 + 3 };
    uint64_t s = 91;
    for (size_t ti = 0; ti < N_KX8_TYPES; ti++) {
        const int type = KX8_TYPES[ti], dt = SLM_TYPE_Q8_K;
        gemm16_fn k = kt->gemm16_x8[type];
        gemm_x8_fn ref = kx8_ref(type);
        if (!k) continue;
        int bad = 0, differ = 0, differ4 = 0, bad_mm = 0, runs = 0;
        double worst = 0;
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            const int nb = blocks[bi], n = QK_K * nb;
            const size_t rb = row_bytes(type, n), arb = row_bytes(dt, n) + 6, wb = 8 * rb + 41; /* odd gaps */
            uint8_t *w = (uint8_t *)malloc(16 * rb), *g = (uint8_t *)calloc(1, 2 * wb), *a = (uint8_t *)malloc(NT * arb);
            float *y = (float *)malloc(sizeof(float) * NT * LDY), *yr = (float *)malloc(sizeof(float) * NT * LDY),
                  *y4 = (float *)malloc(sizeof(float) * NT * LDY);
            float *wf = (float *)malloc((size_t)n * sizeof(float)), *af = (float *)malloc((size_t)n * sizeof(float));
            for (int rep = 0; rep < 5; rep++) {
                const int ext = rep >= 3;
                for (int r = 0; r < 16; r++) kx8_row(type, n, (r + rep) % 3, 0, ext, &s, w + r * rb);
                for (int t = 0; t < NT; t++) kx8_row(dt, n, (t + rep) % 3, 1, ext, &s, a + t * arb);
                x8_pack(type, w, rb, nb, g);
                x8_pack(type, w + 8 * rb, rb, nb, g + wb);
                for (int nt = 1; nt <= NT; nt += (nt < 9 ? 1 : nt < 33 ? 7 : nt < 40 ? 1 : nt < 65 ? 25 : 2)) {
                    for (int i = 0; i < NT * LDY; i++) y[i] = -1234.5f;
                    k(n, g, wb, a, arb, nt, y, LDY);
                    for (int h = 0; h < 2; h++)
                        for (int t = 0; t < nt; t += 4) {
                            ref(n, g + h * wb, a + t * arb, arb, SLM_MIN(4, nt - t), yr + t * LDY + 8 * h, LDY);
                            if (kt->gemm_x8[type])
                                kt->gemm_x8[type](n, g + h * wb, a + t * arb, arb, SLM_MIN(4, nt - t), y4 + t * LDY + 8 * h, LDY);
                        }
                    for (int t = 0; t < nt; t++)
                        for (int r = 0; r < 16; r++) {
                            const float got = y[t * LDY + r];
                            differ += memcmp(&got, &yr[t * LDY + r], sizeof got) != 0;
                            if (kt->gemm_x8[type]) differ4 += memcmp(&got, &y4[t * LDY + r], sizeof got) != 0;
                            if (!ext) { /* saturated rows overflow no integer sum but may reach inf in float */
                                const float one = TRAITS[type].vec_dot(n, w + r * rb, a + t * arb);
                                const double mag = dot_mag(type, w + r * rb, a + t * arb, n, wf, af);
                                const double e = fabs((double)got - one) / (mag + 1e-300);
                                worst = e > worst ? e : worst;
                                bad += !(e <= (nb + 8) * 1.2e-7);
                            }
                            runs++;
                        }
                    for (int t = nt; t < NT; t++)
                        for (int r = 0; r < LDY; r++) bad += y[t * LDY + r] != -1234.5f;
                    for (int t = 0; t < nt; t++)
                        for (int r = 16; r < LDY; r++) bad += y[t * LDY + r] != -1234.5f;
                }
            }
            { /* matmul_gemm: 40 rows (5 groups), 37 tokens, against matmul_x8 */
                const int nr = 40, ntk = 37;
                uint8_t *m = (uint8_t *)malloc((size_t)nr * rb), *tmp = (uint8_t *)malloc(8 * rb);
                for (int r = 0; r < nr; r++) rand_row(type, n, r % 3, 0, &s, m + r * rb);
                for (int gi = 0; gi < nr / 8; gi++) {
                    memcpy(tmp, m + (size_t)gi * 8 * rb, 8 * rb);
                    x8_pack(type, tmp, rb, nb, m + (size_t)gi * 8 * rb);
                }
                weight wt;
                memset(&wt, 0, sizeof wt);
                wt.data = m, wt.type = type, wt.n_in = n, wt.n_out = nr, wt.rb = rb;
                wt.dot = kt->dot[type], wt.dot4 = kt->dot4[type], wt.x8 = kt->gemm_x8[type] ? kt->gemm_x8[type] : ref;
                wt.g16x8 = k, wt.g16 = kt->gemm16_rows[type];
                CHECK(mm_gemm(&wt, SLM_GEMM_X8_MIN_TOKENS) == k && mm_gemm(&wt, SLM_GEMM_X8_MIN_TOKENS - 1) == NULL,
                      "%s x8: mm_gemm does not pick the x8 GEMM from %d tokens", slm_type_name(type), SLM_GEMM_X8_MIN_TOKENS);
                float *y1 = (float *)malloc(sizeof(float) * ntk * nr), *y2 = (float *)malloc(sizeof(float) * ntk * nr);
                matmul_gemm(k, &wt, a, arb, ntk, y1, nr, 0, nr / 8);
                matmul_x8(&wt, a, arb, ntk, y2, nr, 0, nr / 8);
                for (int i = 0; i < ntk * nr; i++) bad_mm += memcmp(&y1[i], &y2[i], sizeof(float)) != 0;
                free(m), free(tmp), free(y1), free(y2);
            }
            free(w), free(g), free(a), free(y), free(yr), free(y4), free(wf), free(af);
        }
        printf("  gemm16 %-6s %s (K-quant x8 groups): %d results, max err %.1f x 2^-24 M, %d differ from the x8 reference, "
               "%d from the x8 kernel\n",
               slm_type_name(type), kt->name, runs, worst * 16777216.0, differ, differ4);
        CHECK(bad == 0, "gemm16 %s x8 %s: %d results off (or written out of bounds)", slm_type_name(type), kt->name, bad);
        CHECK(differ == 0 && differ4 == 0, "gemm16 %s x8 %s: %d/%d results differ from the x8 reference/kernel bits",
              slm_type_name(type), kt->name, differ, differ4);
        CHECK(bad_mm == 0, "gemm16 %s x8 %s: matmul_gemm differs from matmul_x8 in %d results", slm_type_name(type),
              kt->name, bad_mm);
    }
}

/* Batches longer than the GEMM kernels' token chunk (64): 63, 64, 65 and
   131 tokens through gemm16_x8 of every x8 type (rows and activations in
   every scale class, K-quants with saturated ones too) give for every row
   and token the bits of the table's 4-token x8 kernel. */
static void check_gemm16_long(const kernel_table *kt) {
    static const int types[] = {SLM_TYPE_Q4_0, SLM_TYPE_Q5_0, SLM_TYPE_Q8_0, SLM_TYPE_IQ4_NL,
                                SLM_TYPE_Q4_K, SLM_TYPE_Q5_K, SLM_TYPE_Q6_K, SLM_TYPE_IQ4_XS};
    static const int nts[] = {63, 64, 65, 131};
    enum { NT = 131, LDY = 16 + 5 };
    uint64_t s = 123;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int type = types[ti], kq = is_kx8(type);
        if (!kt->gemm16_x8[type] || !kt->gemm_x8[type]) continue;
        const int n = kq ? 2 * QK_K : 7 * 32, nb = n / type_size_of(type)->blck;
        /* the 32-blocks' dot partner is Q8_0 (TRAITS[type].dot_type, which gcc 12
           for the Cortex-M55, with no x8 kernels, flags as out of bounds) */
        const int dt = kq ? SLM_TYPE_Q8_K : SLM_TYPE_Q8_0;
        const size_t rb = row_bytes(type, n), arb = row_bytes(dt, n) + 6, wb = 8 * rb + 40;
        const size_t axrb = kq ? arb : act_row_bytes(ACT_Q8_0X, n) + 8;
        uint8_t *w = (uint8_t *)malloc(16 * rb), *g = (uint8_t *)calloc(1, 2 * wb), *a = (uint8_t *)malloc(NT * arb);
        uint8_t *ax = (uint8_t *)malloc(NT * axrb);
        float *y = (float *)malloc(sizeof(float) * NT * LDY), *y4 = (float *)malloc(sizeof(float) * NT * LDY);
        int differ = 0, runs = 0, outside = 0;
        for (int rep = 0; rep < 2; rep++) {
            const int ext = kq && rep == 1;
            for (int r = 0; r < 16; r++) kx8_row(type, n, (r + rep) % 3, 0, ext, &s, w + r * rb);
            for (int t = 0; t < NT; t++) kx8_row(dt, n, (t + rep) % 3, 1, ext, &s, a + t * arb);
            x8_pack(type, w, rb, nb, g);
            x8_pack(type, w + 8 * rb, rb, nb, g + wb);
            if (kq) memcpy(ax, a, NT * arb);
            else q8_0x_rows(a, arb, NT, nb, ax, axrb);
            for (size_t ni = 0; ni < sizeof nts / sizeof nts[0]; ni++) {
                const int nt = nts[ni];
                for (int i = 0; i < NT * LDY; i++) y[i] = -1234.5f;
                kt->gemm16_x8[type](n, g, wb, ax, axrb, nt, y, LDY);
                for (int h = 0; h < 2; h++)
                    for (int t = 0; t < nt; t += 4)
                        kt->gemm_x8[type](n, g + h * wb, ax + t * axrb, axrb, SLM_MIN(4, nt - t), y4 + t * LDY + 8 * h, LDY);
                for (int t = 0; t < NT; t++)
                    for (int r = 0; r < LDY; r++) {
                        if (t < nt && r < 16) differ += memcmp(&y[t * LDY + r], &y4[t * LDY + r], sizeof(float)) != 0, runs++;
                        else outside += y[t * LDY + r] != -1234.5f;
                    }
            }
        }
        const char *tn = slm_type_name(type);
        printf("  gemm16 %-6s %s, 63-131 tokens: %d results, %d differ from the x8 kernel\n", tn ? tn : "?", kt->name, runs,
               differ);
        CHECK(differ == 0 && outside == 0, "gemm16 %s %s, 63-131 tokens: %d results differ from the x8 kernel, %d written outside",
              tn ? tn : "?", kt->name, differ, outside);
        free(w), free(g), free(a), free(ax), free(y), free(y4);
    }
}
