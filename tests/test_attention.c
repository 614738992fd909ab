/* Flash attention over an F16 cache (slm.c section 9, attn_flash) against
   the reference path (attend_group, one token and KV head at a time, a row
   of scores over the whole context) on random caches and queries: key
   counts 1, 7, 33, 257 and several chunks, GQA ratios 1-8, head sizes with
   tails, sliding windows (causal and the encoders' two-sided ones), softcaps.
   Also: a batch gives each token the bits it gets decoded alone (the
   single-token path splits the keys by chunk), the property the model tests
   rely on (rewind + re-decode). Included by test_kernels.c (reaches the
   static functions of slm.c); run for every kernel table with dot_rows_f16. */

typedef struct attn_case {
    int n_head, n_kv, hd, pos0, n; /* heads, KV heads, head size, first position, tokens */
    int swa;                       /* sliding window (0: none) */
    float cap;                     /* softcap (0: none) */
    int bidir;                     /* encoder: every position of [0, pos0 + n) visible */
} attn_case;

/* One case on kernel table kt: the largest |flash - reference| and whether
   the batch equals token-by-token, bit for bit. */
static int attn_run(const kernel_table *kt, const attn_case *c, uint64_t *rng, double *err) {
    static slm_model m;
    static layer L;
    static slm_session s;
    memset(&m, 0, sizeof m);
    memset(&L, 0, sizeof L);
    memset(&s, 0, sizeof s);
    m.kern = *kt;
    m.n_head = c->n_head, m.n_head_kv = c->n_kv, m.head_dim = c->hd;
    m.q_dim = c->n_head * c->hd, m.kv_dim = c->n_kv * c->hd;
    m.attn_scale = 1.0f / sqrtf((float)c->hd), m.attn_softcap = c->cap;
    m.n_swa = c->swa, m.causal = !c->bidir, m.n_kv_layer = 1, m.n_layer = 1;
    L.kind = LK_ATTN, L.swa = c->swa > 0, L.kv_slot = 0;
    m.layers = &L;
    const int n_ctx = c->pos0 + c->n + 3, nrep = c->n_head / c->n_kv, QKV = m.q_dim + 2 * m.kv_dim, hd = c->hd;
    s.m = &m, s.n_ctx = n_ctx, s.kv_type = SLM_TYPE_F16, s.kv_row = (size_t)m.kv_dim * 2;
    s.enc_end = c->bidir ? c->pos0 + c->n : 0;
    s.att_stride = (size_t)n_ctx + (size_t)hd + (size_t)SLM_MAX(n_ctx, hd) + 16;
    s.fa_stride = fa_scratch_floats(&m);
    s.fa_part_n = (size_t)m.n_head * (size_t)fa_chunks(n_ctx) * (size_t)(hd + 2);
    s.kv = (uint8_t *)calloc(2 * (size_t)n_ctx, s.kv_row);
    s.qkv = (float *)calloc((size_t)c->n * QKV, sizeof(float));
    s.att = (float *)calloc((size_t)c->n * m.q_dim, sizeof(float));
    s.scores = (float *)calloc(s.att_stride * nrep, sizeof(float));
    s.fa = (float *)calloc(s.fa_stride, sizeof(float));
    s.fa_part = (float *)calloc(s.fa_part_n, sizeof(float));
    s.ops = (op_slot *)calloc(16, sizeof(op_slot));
    float *ref = (float *)calloc((size_t)c->n * m.q_dim, sizeof(float));
    float *one = (float *)calloc((size_t)c->n * m.q_dim, sizeof(float));
    float *kv = (float *)malloc(2 * (size_t)m.kv_dim * sizeof(float));
    int ok = s.kv && s.qkv && s.att && s.scores && s.fa && s.fa_part && s.ops && ref && one && kv;
    if (ok) {
        /* keys and values of every position, queries of the n tokens; some
           large queries so that the maxima move from block to block */
        for (int p = 0; p < c->pos0 + c->n; p++) {
            for (int i = 0; i < 2 * m.kv_dim; i++) kv[i] = t_randf(rng) * (i < m.kv_dim ? 2.0f : 1.0f);
            store_kv(&s, 0, p, kv, kv + m.kv_dim);
        }
        for (int t = 0; t < c->n; t++)
            for (int i = 0; i < m.q_dim; i++) s.qkv[(size_t)t * QKV + i] = t_randf(rng) * (float)(1 + (t_rand(rng) % 4));
        for (int t = 0; t < c->n; t++)
            for (int g = 0; g < c->n_kv; g++)
                attend_group(&s, &L, 0, s.qkv + (size_t)t * QKV + (size_t)g * nrep * hd, c->pos0 + t, g, s.scores,
                             ref + (size_t)t * m.q_dim + (size_t)g * nrep * hd, kt->dot_rows_f16);
        team tm;
        memset(&tm, 0, sizeof tm);
        tm.s = &s, tm.ops = s.ops, tm.nth = 1;
        attn_flash(&s, &L, 0, c->n, c->pos0, &tm, kt->dot_rows_f16);
        double d = 0;
        for (size_t i = 0; i < (size_t)c->n * m.q_dim; i++) d = SLM_MAX(d, fabs((double)s.att[i] - ref[i]));
        *err = d;
        /* token by token: the queries of token t moved to row 0 */
        memcpy(one, s.att, (size_t)c->n * m.q_dim * sizeof(float));
        for (int t = 0; t < c->n && ok; t++) {
            if (t) memcpy(s.qkv, s.qkv + (size_t)t * QKV, (size_t)QKV * sizeof(float));
            memset(&tm, 0, sizeof tm);
            tm.s = &s, tm.ops = s.ops, tm.nth = 1;
            attn_flash(&s, &L, 0, 1, c->pos0 + t, &tm, kt->dot_rows_f16);
            ok = memcmp(s.att, one + (size_t)t * m.q_dim, (size_t)m.q_dim * sizeof(float)) == 0;
        }
    }
    free(s.kv), free(s.qkv), free(s.att), free(s.scores), free(s.fa), free(s.fa_part), free(s.ops);
    free(ref), free(one), free(kv);
    return ok;
}

/* qk_rows_f16 (flash attention's scores) against the double reference on
   random rows (head sizes with tails, row and query counts that are not
   multiples of the kernels' tiles, 4 x 3 on AVX2, 4 x 6 on AVX-512), and
   each pair's bits the same when the pair is computed alone. */
static void check_qk_rows(const kernel_table *kt) {
    if (!kt->qk_rows_f16) return;
    static const int N[] = {1, 7, 8, 15, 16, 17, 40, 64, 80, 100, 128, 259, 512};
    uint64_t rng = 5;
    int bad = 0, moved = 0, cases = 0;
    for (size_t ni = 0; ni < sizeof N / sizeof N[0]; ni++) {
        const int n = N[ni], nrows = 1 + (int)(t_rand(&rng) % 13), na = 1 + (int)(t_rand(&rng) % 15);
        const size_t stride = (size_t)n * 2 + 6, as = (size_t)n + 3, os = (size_t)nrows + 2;
        uint8_t *rows = (uint8_t *)malloc(stride * (size_t)nrows);
        float *a = (float *)malloc(sizeof(float) * as * (size_t)na), *got = (float *)calloc(os * (size_t)na, sizeof(float));
        float *ref = (float *)calloc(os * (size_t)na, sizeof(float));
        if (!rows || !a || !got || !ref) break;
        const float scale = ni % 2 ? 30.0f : 1.0f; /* values as large as a head's keys get */
        for (int r = 0; r < nrows; r++)
            for (int i = 0; i < n; i++) st_u16(rows + (size_t)r * stride + 2 * i, f32_to_fp16(t_randf(&rng) * scale));
        for (size_t i = 0; i < as * (size_t)na; i++) a[i] = fp16_to_f32(f32_to_fp16(t_randf(&rng)));
        kt->qk_rows_f16(n, rows, stride, nrows, a, as, na, got, os);
        qk_rows_f16_ref(n, rows, stride, nrows, a, as, na, ref, os);
        for (int j = 0; j < na; j++)
            for (int r = 0; r < nrows; r++) {
                double bound = 0;
                for (int i = 0; i < n; i++)
                    bound += fabs((double)fp16_to_f32(ld_u16(rows + (size_t)r * stride + 2 * i)) * a[(size_t)j * as + i]);
                const float g = got[(size_t)j * os + r];
                bad += fabs((double)g - ref[(size_t)j * os + r]) > 1e-6 * bound + 1e-30;
                float one;
                kt->qk_rows_f16(n, rows + (size_t)r * stride, stride, 1, a + (size_t)j * as, as, 1, &one, 1);
                moved += memcmp(&one, &g, sizeof g) != 0;
                cases++;
            }
        free(rows), free(a), free(got), free(ref);
    }
    CHECK(bad == 0, "%s qk_rows_f16: %d of %d scores off the reference", kt->name, bad, cases);
    CHECK(moved == 0, "%s qk_rows_f16: %d of %d scores change with the rows and queries beside them", kt->name, moved,
          cases);
}

static void check_attention(const kernel_table *kt) {
    check_qk_rows(kt);
    if (!kt->dot_rows_f16) return;
    static const attn_case CASES[] = {
        {4, 4, 64, 0, 1, 0, 0, 0},      /* 1 key */
        {6, 2, 64, 0, 7, 0, 0, 0},      /* 1-7 keys, GQA 3 */
        {8, 1, 40, 26, 7, 0, 0, 0},     /* 27-33 keys, GQA 8, head size 40 */
        {14, 2, 64, 248, 9, 0, 0, 0},   /* 249-257 keys, GQA 7 (qwen2.5) */
        {9, 3, 64, 100, 40, 0, 0, 0},   /* tiles of 8 tokens, the diagonal blocks */
        {4, 2, 80, 1030, 30, 0, 0, 0},  /* several chunks, a batch across a block edge */
        {8, 2, 64, 1500, 3, 0, 0, 0},   /* several chunks: a decoded token splits them */
        {8, 4, 128, 300, 12, 64, 0, 0}, /* sliding window of 64 */
        {8, 4, 64, 900, 5, 600, 0, 0},  /* a window across chunks */
        {8, 4, 64, 200, 9, 0, 50.0f, 0},/* softcap (gemma2) */
        {8, 4, 64, 700, 6, 130, 30.0f, 0},
        {4, 4, 32, 0, 37, 0, 0, 1},     /* encoder: both directions */
        {4, 4, 32, 0, 37, 10, 0, 1},    /* encoder with a two-sided window */
    };
    uint64_t rng = 77;
    double worst = 0;
    int bad = 0, split = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const attn_case *c = &CASES[i];
        double e = 1e9;
        const int same = attn_run(kt, c, &rng, &e);
        worst = SLM_MAX(worst, e);
        /* the probabilities are rounded to F16 in both (relative to another
           maximum): the outputs (|V| <= 1) agree to a few F16 steps */
        CHECK(e <= 2e-3, "%s attention: heads %d/%d, hd %d, pos %d + %d, swa %d, cap %g: |flash - reference| %.2e",
              kt->name, c->n_head, c->n_kv, c->hd, c->pos0, c->n, c->swa, (double)c->cap, e);
        CHECK(same, "%s attention: heads %d/%d, pos %d + %d: a batch differs from token by token", kt->name,
              c->n_head, c->n_kv, c->pos0, c->n);
        bad += e > 2e-3 || !same;
        split += c->pos0 + c->n > FA_CHUNK;
    }
    printf("    flash attention: %d cases (%d over several chunks), worst |flash - reference| %.1e, %d wrong\n",
           (int)(sizeof CASES / sizeof CASES[0]), split, worst, bad);
}
