/* K-quant x8 layouts (slm.c section 5: Q4_Kx8, Q5_Kx8, Q6_Kx8, IQ4_XSx8) and their kernels.
   Included by test_kernels.c (one translation unit includes slm.c), whose
   helpers (rand_row, dot_mag, ...) it uses.
   - pack + unpack give back every byte of 8 random rows (all bit patterns);
   - the scalar x8 reference is within the x8 bound of the one-row reference
     dot of each row ((super-blocks + 8) * 1.2e-7 M, M the summed magnitudes);
   - every SIMD x8 kernel of a table gives the reference's bits, for 1-4
     tokens, on random rows and on saturated ones (weight bytes 0x00, 0xff,
     0x80, 0x7f: 6-bit scales and mins of 63, Q6_K scales of -128, IQ4_XS
     scales of -32 or 31 and levels of -127 or 113; every activation +-127),
     the worst case of the integer sums. */

#define N_KX8_TYPES 4
static const int KX8_TYPES[N_KX8_TYPES] = {SLM_TYPE_Q4_K, SLM_TYPE_Q5_K, SLM_TYPE_Q6_K, SLM_TYPE_IQ4_XS};

/* the scalar x8 reference of a K-quant x8 type */
static gemm_x8_fn kx8_ref(int type) {
    return type == SLM_TYPE_Q4_K ? gemm_q4_kx8_ref : type == SLM_TYPE_Q5_K ? gemm_q5_kx8_ref
         : type == SLM_TYPE_Q6_K ? gemm_q6_kx8_ref : gemm_iq4_xsx8_ref;
}

/* rand_row, or with `extreme` the saturated row described above */
static void kx8_row(int type, int n, int cls, int act, int extreme, uint64_t *s, uint8_t *row) {
    static const uint8_t pick[4] = {0x00, 0xff, 0x80, 0x7f};
    rand_row(type, n, cls, act, s, row);
    if (!extreme) return;
    const int bytes = type_size_of(type)->bytes, v = (t_rand(s) & 1) ? 127 : -127;
    for (int b = 0; b < n / QK_K; b++) {
        uint8_t *blk = row + (size_t)b * (size_t)bytes;
        if (act) {
            memset(blk + 4, (uint8_t)(int8_t)v, QK_K);
            for (int k = 0; k < 16; k++) st_u16(blk + 260 + 2 * k, (uint16_t)(int16_t)(16 * v));
        } else if (type == SLM_TYPE_IQ4_XS) { /* the f16 d at 0 */
            for (int i = 2; i < bytes; i++) blk[i] = pick[t_rand(s) % 4];
        } else if (type != SLM_TYPE_Q6_K) { /* Q4_K, Q5_K: the f16 d, dmin at 0, 2 */
            for (int i = 4; i < bytes; i++) blk[i] = pick[t_rand(s) % 4];
        } else { /* Q6_K: the f16 d is at 208 */
            for (int i = 0; i < 208; i++) blk[i] = pick[t_rand(s) % 4];
        }
    }
}

static void check_kx8_layout(void) {
    static const int blocks[] = {1, 2, 3, 5};
    uint64_t s = 21;
    for (size_t ti = 0; ti < N_KX8_TYPES; ti++) {
        const int type = KX8_TYPES[ti], dt = SLM_TYPE_Q8_K;
        int bad_pack = 0, bad = 0, runs = 0;
        double worst = 0;
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            const int nb = blocks[bi], n = QK_K * nb;
            const size_t rb = row_bytes(type, n), arb = row_bytes(dt, n) + 4;
            uint8_t *w = (uint8_t *)malloc(8 * rb), *g = (uint8_t *)malloc(8 * rb), *back = (uint8_t *)malloc(rb);
            uint8_t *a = (uint8_t *)malloc(4 * arb);
            float *wf = (float *)malloc((size_t)n * sizeof(float)), *af = (float *)malloc((size_t)n * sizeof(float));
            for (int rep = 0; rep < 6; rep++) {
                /* every bit pattern, f16 fields included, survives the round trip */
                for (size_t i = 0; i < 8 * rb; i++) w[i] = (uint8_t)t_rand(&s);
                x8_pack(type, w, rb, nb, g);
                for (int r = 0; r < 8; r++) {
                    x8_unpack_row(type, g, r, nb, back);
                    bad_pack += memcmp(back, w + r * rb, rb) != 0;
                }
                const int ext = rep >= 4;
                for (int r = 0; r < 8; r++) kx8_row(type, n, (r + rep) % 3, 0, ext, &s, w + r * rb);
                for (int t = 0; t < 4; t++) kx8_row(dt, n, rep % 3, 1, ext, &s, a + t * arb);
                x8_pack(type, w, rb, nb, g);
                float y[4 * 9];
                kx8_ref(type)(n, g, a, arb, 4, y, 9);
                for (int t = 0; t < 4; t++)
                    for (int r = 0; r < 8; r++) {
                        const float ref = TRAITS[type].vec_dot(n, w + r * rb, a + t * arb);
                        const double mag = dot_mag(type, w + r * rb, a + t * arb, n, wf, af);
                        const double e = fabs((double)y[t * 9 + r] - ref) / (mag + 1e-300);
                        worst = e > worst ? e : worst;
                        bad += !(e <= (nb + 8) * 1.2e-7);
                        runs++;
                    }
            }
            free(w), free(g), free(back), free(a), free(wf), free(af);
        }
        printf("  x8 %-5s layout: pack/unpack, reference %d row results, max err %.1f x 2^-24 M\n", slm_type_name(type),
               runs, worst * 16777216.0);
        CHECK(bad_pack == 0, "%s x8: %d rows do not survive pack + unpack", slm_type_name(type), bad_pack);
        CHECK(bad == 0, "%s x8 reference: %d of %d results off the one-row reference", slm_type_name(type), bad, runs);
    }
}

/* a table's K-quant x8 kernels against the scalar x8 reference: same bits */
static void check_kx8(const kernel_table *kt) {
    static const int blocks[] = {1, 2, 3, 7, 11};
    uint64_t s = 23;
    for (size_t ti = 0; ti < N_KX8_TYPES; ti++) {
        const int type = KX8_TYPES[ti], dt = SLM_TYPE_Q8_K;
        gemm_x8_fn k = kt->gemm_x8[type], ref = kx8_ref(type);
        if (!k) continue;
        int differ = 0, runs = 0;
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            const int nb = blocks[bi], n = QK_K * nb;
            const size_t rb = row_bytes(type, n), arb = row_bytes(dt, n) + 12;
            uint8_t *w = (uint8_t *)malloc(8 * rb), *g = (uint8_t *)malloc(8 * rb), *a = (uint8_t *)malloc(4 * arb);
            for (int rep = 0; rep < 8; rep++) {
                const int ext = rep >= 5;
                for (int r = 0; r < 8; r++) kx8_row(type, n, (r + rep) % 3, 0, ext, &s, w + r * rb);
                for (int t = 0; t < 4; t++) kx8_row(dt, n, rep % 3, 1, ext, &s, a + t * arb);
                x8_pack(type, w, rb, nb, g);
                for (int nt = 1; nt <= 4; nt++) {
                    float y[4 * 9], y2[4 * 9];
                    k(n, g, a, arb, nt, y, 9);
                    ref(n, g, a, arb, nt, y2, 9);
                    for (int t = 0; t < nt; t++)
                        for (int r = 0; r < 8; r++) differ += memcmp(&y[t * 9 + r], &y2[t * 9 + r], sizeof(float)) != 0, runs++;
                }
            }
            free(w), free(g), free(a);
        }
        printf("  x8 %-5s %s: %d row results, %d differ from the x8 reference\n", slm_type_name(type), kt->name, runs,
               differ);
        CHECK(differ == 0, "%s x8 %s: %d of %d results differ from the reference's bits", slm_type_name(type), kt->name,
              differ, runs);
    }
}
