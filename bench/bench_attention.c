/* Attention alone, CPU time per call: the flash path (attn_flash, F16
   cache) against the reference path (attend_group per token and KV head)
   at one layer of a model's shape, for a decoded token and a prefill batch
   at several depths. One thread; CPU time (clock()), so a busy machine
   moves the numbers less than wall time would.

   usage: bench_attention [heads kv_heads head_dim]   (default 9 3 64: SmolLM2-135M)
   (make bench-attention) */
#include "../slm.c"

#include <stdio.h>
#include <time.h>

static uint64_t rng_state = 1;
static float frand(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

int main(int argc, char **argv) {
    int nh = 9, nkv = 3, hd = 64;
    if (argc == 4) nh = atoi(argv[1]), nkv = atoi(argv[2]), hd = atoi(argv[3]);
    if (nh < 1 || nkv < 1 || nh % nkv || hd < 8 || hd > 256) {
        fprintf(stderr, "usage: %s [heads kv_heads head_dim]\n", argv[0]);
        return 2;
    }
    const kernel_table *t = kernels_find(SLM_ISA_BEST);
    static kernel_table kt;
    kernels_resolve(t, &kt);
    if (!kt.dot_rows_f16) {
        printf("kernels %s: no dot_rows_f16, flash attention does not apply\n", kt.name);
        return 0;
    }
    static slm_model m;
    static layer L;
    m.kern = kt;
    m.n_head = nh, m.n_head_kv = nkv, m.head_dim = hd, m.q_dim = nh * hd, m.kv_dim = nkv * hd;
    m.attn_scale = 1.0f / sqrtf((float)hd), m.causal = 1, m.n_kv_layer = 1, m.n_layer = 1;
    L.kind = LK_ATTN;
    m.layers = &L;
    const int depths[] = {0, 2048, 8192}, NB = 128, n_ctx = 8192 + NB + 8, nrep = nh / nkv;
    const int QKV = m.q_dim + 2 * m.kv_dim;
    static slm_session s;
    s.m = &m, s.n_ctx = n_ctx, s.kv_type = SLM_TYPE_F16, s.kv_row = (size_t)m.kv_dim * 2;
    s.att_stride = (size_t)n_ctx + (size_t)hd + (size_t)SLM_MAX(n_ctx, hd) + 16;
    s.fa_stride = fa_scratch_floats(&m);
    s.fa_part_n = (size_t)nh * (size_t)fa_chunks(n_ctx) * (size_t)(hd + 2);
    s.kv = (uint8_t *)calloc(2 * (size_t)n_ctx, s.kv_row);
    s.qkv = (float *)calloc((size_t)NB * QKV, sizeof(float));
    s.att = (float *)calloc((size_t)NB * m.q_dim, sizeof(float));
    s.scores = (float *)calloc(s.att_stride * nrep, sizeof(float));
    s.fa = (float *)calloc(s.fa_stride, sizeof(float));
    s.fa_part = (float *)calloc(s.fa_part_n, sizeof(float));
    s.ops = (op_slot *)calloc(16, sizeof(op_slot));
    float *kv = (float *)malloc(2 * (size_t)m.kv_dim * sizeof(float));
    if (!s.kv || !s.qkv || !s.att || !s.scores || !s.fa || !s.fa_part || !s.ops || !kv) return 1;
    for (int p = 0; p < n_ctx; p++) {
        for (int i = 0; i < 2 * m.kv_dim; i++) kv[i] = frand();
        store_kv(&s, 0, p, kv, kv + m.kv_dim);
    }
    for (size_t i = 0; i < (size_t)NB * QKV; i++) s.qkv[i] = frand();
    printf("attention, one layer: %d heads, %d KV heads, head size %d, kernels %s; CPU us per token\n", nh, nkv, hd,
           kt.name);
    printf("| depth | test  | reference | flash | ratio |\n|------:|-------|----------:|------:|------:|\n");
    for (size_t di = 0; di < sizeof depths / sizeof depths[0]; di++) {
        for (int test = 0; test < 2; test++) {
            const int n = test ? 1 : NB, pos0 = depths[di];
            double us[2] = {0, 0};
            for (int path = 0; path < 2; path++) {
                int reps = 0;
                clock_t c0 = clock(), c1;
                do {
                    if (path == 0) {
                        for (int tk = 0; tk < n; tk++)
                            for (int g = 0; g < nkv; g++)
                                attend_group(&s, &L, 0, s.qkv + (size_t)tk * QKV + (size_t)g * nrep * hd, pos0 + tk, g,
                                             s.scores, s.att + (size_t)tk * m.q_dim + (size_t)g * nrep * hd,
                                             kt.dot_rows_f16);
                    } else {
                        team tm;
                        memset(&tm, 0, sizeof tm);
                        tm.s = &s, tm.ops = s.ops, tm.nth = 1;
                        attn_flash(&s, &L, 0, n, pos0, &tm, kt.dot_rows_f16);
                    }
                    reps++;
                    c1 = clock();
                } while ((double)(c1 - c0) < 0.3 * CLOCKS_PER_SEC);
                us[path] = (double)(c1 - c0) / CLOCKS_PER_SEC * 1e6 / reps / n;
            }
            printf("| %5d | %-5s | %9.2f | %5.2f | %4.2fx |\n", pos0, test ? "tg" : "pp128", us[0], us[1], us[0] / us[1]);
            fflush(stdout);
        }
    }
    return 0;
}
