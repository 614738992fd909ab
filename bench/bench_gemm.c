/* Prefill GEMM micro-benchmark: one matrix times a batch of tokens through
   the small-batch path (x8 kernels 4 tokens at a time, or dot4/dot) and
   through the GEMM (matmul_gemm, slm.c section 7), best of 15 runs each,
   one thread; also the largest difference of the two products.

   build/bench_gemm [--isa avx2|avx512] [TYPE N_IN N_OUT TOKENS]  (make bench-gemm)
   default: every type with a GEMM kernel, 1536 x 576 and 576 x 1536, 128 tokens */
#include "../slm.c"

#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 1;
static float frand(void) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((int)(rng >> 40) % 2001 - 1000) / 1000.0f;
}

static void one(const kernel_table *kt, int ty, int n_in, int n_out, int nt) {
    const size_t rb = row_bytes(ty, n_in);
    uint8_t *w = (uint8_t *)malloc(rb * (size_t)n_out);
    float *x = (float *)malloc(sizeof(float) * (size_t)n_in * (size_t)nt), *row = (float *)malloc(sizeof(float) * (size_t)n_in);
    for (int i = 0; i < n_in * nt; i++) x[i] = frand();
    for (int r = 0; r < n_out; r++) {
        for (int i = 0; i < n_in; i++) row[i] = frand();
        TRAITS[ty].from_float(row, w + (size_t)r * rb, n_in);
    }
    weight W;
    memset(&W, 0, sizeof W);
    W.data = w, W.type = ty, W.n_in = n_in, W.n_out = n_out, W.rb = rb;
    W.dot = kt->dot[ty], W.dot4 = kt->dot4[ty], W.g16x8 = kt->gemm16_x8[ty], W.g16 = kt->gemm16_rows[ty];
    if (kt->gemm_x8[ty] && n_out % 8 == 0) {
        uint8_t *tmp = (uint8_t *)malloc(8 * rb);
        for (int g = 0; g < n_out / 8; g++) {
            memcpy(tmp, w + (size_t)g * 8 * rb, 8 * rb);
            x8_pack(ty, tmp, rb, (int)(n_in / type_size_of(ty)->blck), w + (size_t)g * 8 * rb);
        }
        free(tmp);
        W.x8 = kt->gemm_x8[ty];
    }
    const gemm16_fn g = mm_gemm(&W, nt);
    if (!g) {
        printf("%-6s %s: no GEMM for %d x %d, %d tokens\n", slm_type_name(ty), kt->name, n_out, n_in, nt);
        free(w), free(x), free(row);
        return;
    }
    const int at = act_type(&W);
    const size_t arb = act_row_bytes(at, n_in);
    uint8_t *xq = (uint8_t *)malloc(arb * (size_t)nt);
    for (int t = 0; t < nt; t++) act_from_float(kt, at, x + (size_t)t * n_in, xq + (size_t)t * arb, n_in);
    float *y1 = (float *)malloc(sizeof(float) * (size_t)n_out * nt), *y2 = (float *)malloc(sizeof(float) * (size_t)n_out * nt);
    double b1 = 1e9, b2 = 1e9;
    const int64_t units = W.x8 ? n_out / 8 : n_out;
    for (int rep = 0; rep < 15; rep++) {
        const double t0 = now();
        if (W.x8) matmul_x8(&W, xq, arb, nt, y1, n_out, 0, units);
        else matmul_k(W.dot, W.dot4, &W, xq, arb, nt, y1, n_out, 0, units);
        const double t1 = now();
        matmul_gemm(g, &W, xq, arb, nt, y2, n_out, 0, units);
        const double t2 = now();
        b1 = SLM_MIN(b1, t1 - t0), b2 = SLM_MIN(b2, t2 - t1);
    }
    double md = 0;
    for (int i = 0; i < n_out * nt; i++) md = SLM_MAX(md, fabs((double)y1[i] - y2[i]));
    const double mac = (double)n_in * n_out * nt;
    printf("%-6s %-6s %5d x %-5d %3d tokens: small-batch %6.1f GMAC/s, GEMM %6.1f GMAC/s, %.2fx, max |diff| %.2g\n",
           slm_type_name(ty), kt->name, n_out, n_in, nt, mac / b1 / 1e9, mac / b2 / 1e9, b1 / b2, md);
    free(w), free(x), free(row), free(xq), free(y1), free(y2);
}

int main(int argc, char **argv) {
    int isa = SLM_ISA_BEST, a = 1;
    if (argc > 2 && !strcmp(argv[1], "--isa")) isa = slm_isa_from_name(argv[2]), a = 3;
    const kernel_table *t = kernels_find(isa);
    if (!t || !slm_isa_available(isa)) {
        printf("bench_gemm: kernels '%s' not available here\n", argc > 2 ? argv[2] : "best");
        return 1;
    }
    static kernel_table kt;
    kernels_resolve(t, &kt);
    if (argc - a >= 4) {
        for (int ty = 0; ty < N_TYPE_IDS; ty++)
            if (type_size_of(ty) && TRAITS[ty].vec_dot && !strcmp(slm_type_name(ty), argv[a]))
                one(&kt, ty, atoi(argv[a + 1]), atoi(argv[a + 2]), atoi(argv[a + 3]));
        return 0;
    }
    for (int ty = 0; ty < N_TYPE_IDS; ty++) {
        if (!kt.gemm16_x8[ty] && !kt.gemm16_rows[ty]) continue;
        const int k = type_size_of(ty)->blck == QK_K;
        one(&kt, ty, k ? 1536 : 576, k ? 576 : 1536, 128);
        one(&kt, ty, k ? 1536 : 576, k ? 576 : 1536, 32);
    }
    return 0;
}
