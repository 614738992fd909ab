/* Kernel micro-benchmark: mat-vec (decode) and mat-mat (prefill) through
   slm.c's own matmul, for every weight type with a SIMD path, at 1 and 2
   threads, next to the scalar reference kernels (*_ref) of the same build.

   build/bench_kernels [--quick] [--t1] [--isa NAME] [TYPE...]      (make bench)

   --isa: the kernel table to measure (avx2, sse4, ...; default: the best
   this CPU runs), as a model loaded with that slm_model_params.isa uses.

   Each case converts the activations to the weight's dot partner and runs
   the mat-mul, as the forward pass does; time is the best of several runs. */
#include "../slm.c"

#include <time.h>

static double now(void) {
#if defined(CLOCK_MONOTONIC)
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
#elif SLM_OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

typedef struct kset {
    from_float_fn conv; /* activations -> dot partner */
    vec_dot_fn dot;
    vec_dot4_fn dot4;
} kset;

/* the references of each type, as a -DSLM_NO_SIMD build has them */
static kset ref_kernels(int type) {
    kset k = {NULL, NULL, NULL};
    switch (type) {
    case SLM_TYPE_F16: k.conv = f16_from_float_ref, k.dot = dot_f16_ref; break;
    case SLM_TYPE_BF16: k.conv = bf16_from_float_ref, k.dot = dot_bf16_ref; break;
    case SLM_TYPE_Q8_0: k.conv = q8_0_from_float_ref, k.dot = dot_q8_0_ref; break;
    case SLM_TYPE_Q4_0: k.conv = q8_0_from_float_ref, k.dot = dot_q4_0_ref; break;
    case SLM_TYPE_Q4_1: k.conv = q8_1_from_float_ref, k.dot = dot_q4_1_ref; break;
    case SLM_TYPE_Q5_0: k.conv = q8_0_from_float_ref, k.dot = dot_q5_0_ref; break;
    case SLM_TYPE_Q5_1: k.conv = q8_1_from_float_ref, k.dot = dot_q5_1_ref; break;
    case SLM_TYPE_IQ4_NL: k.conv = q8_0_from_float_ref, k.dot = dot_iq4_nl_ref; break;
    case SLM_TYPE_Q2_K: k.conv = q8_k_from_float_ref, k.dot = dot_q2_k_ref; break;
    case SLM_TYPE_Q3_K: k.conv = q8_k_from_float_ref, k.dot = dot_q3_k_ref; break;
    case SLM_TYPE_Q4_K: k.conv = q8_k_from_float_ref, k.dot = dot_q4_k_ref; break;
    case SLM_TYPE_Q5_K: k.conv = q8_k_from_float_ref, k.dot = dot_q5_k_ref; break;
    case SLM_TYPE_Q6_K: k.conv = q8_k_from_float_ref, k.dot = dot_q6_k_ref; break;
    case SLM_TYPE_IQ4_XS: k.conv = q8_k_from_float_ref, k.dot = dot_iq4_xs_ref; break;
    default: break;
    }
    return k;
}

static kernel_table KT; /* the kernels measured (--isa), resolved */

static kset simd_kernels(int type) {
    kset k;
    k.conv = KT.from_float[TRAITS[type].dot_type];
    k.dot = KT.dot[type];
    k.dot4 = getenv("SLM_BENCH_NO_DOT4") ? NULL : KT.dot4[type]; /* to measure what they bring */
    return k;
}

/* [*b, *e): thread ith's share of n (the forward pass takes work units
   from a shared counter instead; on an idle machine this is the same) */
static void bsplit(int64_t n, int ith, int nth, int64_t *b, int64_t *e) {
    int64_t per = (n + nth - 1) / nth;
    *b = SLM_MIN(n, per * ith);
    *e = SLM_MIN(n, *b + per);
}

/* The AVX-512/VNNI kernels (section 6b2), where the build has them and the
   CPU runs them, timed beside the AVX2 table's kernels (KT2), the last
   column their speed ratio. */
static kernel_table KT2; /* the AVX2 table, resolved */

static int avx512_ok(void) {
#ifdef SLM_HAVE_AVX512_KERNELS
    return cpu_has_isa(SLM_ISA_AVX512) && kernels_find(SLM_ISA_AVX2) != NULL;
#else
    return 0;
#endif
}

static kset avx2_kernels(int type) {
    kset k;
    k.conv = KT2.from_float[TRAITS[type].dot_type];
    k.dot = KT2.dot[type];
    k.dot4 = getenv("SLM_BENCH_NO_DOT4") ? NULL : KT2.dot4[type];
    return k;
}

/* 1 and the kernels if type has AVX-512 ones (x8: the x8 kernel, else NULL) */
static int avx512_kernels(int type, kset *k, gemm_x8_fn *x8) {
    *k = avx2_kernels(type);
    *x8 = NULL;
    if (!avx512_ok()) return 0;
#ifdef SLM_HAVE_AVX512_KERNELS
#define K512(T, name)                                                                                                \
    case SLM_TYPE_##T: k->dot = dot_##name##_avx512, k->dot4 = getenv("SLM_BENCH_NO_DOT4") ? NULL : dot4_##name##_avx512; break
    switch (type) {
    K512(Q4_K, q4_k);
    K512(Q6_K, q6_k);
    K512(Q5_K, q5_k);
    K512(Q3_K, q3_k);
    K512(Q2_K, q2_k);
    K512(IQ4_XS, iq4_xs);
    K512(IQ4_NL, iq4_nl);
    K512(Q4_1, q4_1);
    K512(Q5_1, q5_1);
    K512(Q4_0, q4_0);
    K512(Q5_0, q5_0);
    default: k->dot = NULL; break;
    }
#undef K512
    if (type == SLM_TYPE_Q4_0) *x8 = gemm_q4_0x8_avx512;
    if (type == SLM_TYPE_Q8_0) *x8 = gemm_q8_0x8_avx512;
    if (type == SLM_TYPE_Q5_0) *x8 = gemm_q5_0x8_avx512;
    if (type == SLM_TYPE_Q4_K) *x8 = gemm_q4_kx8_avx512;
    if (type == SLM_TYPE_Q5_K) *x8 = gemm_q5_kx8_avx512;
    if (type == SLM_TYPE_Q6_K) *x8 = gemm_q6_kx8_avx512;
    return k->dot != NULL || *x8 != NULL;
#else
    (void)type;
    return 0;
#endif
}

/* one mat-mul of n_tok tokens, as the forward pass runs it */
static void run(const kset *k, const weight *w, const float *x, uint8_t *xq, size_t xq_rb, int n_tok, float *y,
                int nth) {
#if SLM_OPENMP
#pragma omp parallel num_threads(nth)
    {
        int ith = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    {
        int ith = 0, nt = 1;
        (void)nth;
#endif
        int64_t t0, t1, r0, r1;
        bsplit(n_tok, ith, nt, &t0, &t1);
        for (int64_t t = t0; t < t1; t++) {
            if (w->x8) act_from_float(&KT, act_type(w), x + t * w->n_in, xq + (size_t)t * xq_rb, w->n_in);
            else k->conv(x + t * w->n_in, xq + (size_t)t * xq_rb, w->n_in);
        }
#if SLM_OPENMP
#pragma omp barrier
#endif
        bsplit(w->x8 ? w->n_out / 8 : w->n_out, ith, nt, &r0, &r1);
        if (w->x8) matmul_x8(w, xq, xq_rb, n_tok, y, w->n_out, r0, r1);
        else matmul_k(k->dot, k->dot4, w, xq, xq_rb, n_tok, y, w->n_out, r0, r1);
    }
}

/* best seconds per call over runs lasting at least min_s in all */
static double timeit(const kset *k, const weight *w, const float *x, uint8_t *xq, size_t xq_rb, int n_tok, float *y,
                     int nth, double min_s) {
    double best = 1e30, total = 0;
    int reps = 0;
    run(k, w, x, xq, xq_rb, n_tok, y, nth); /* warm up */
    while (total < min_s || reps < 3) {
        double t = now();
        run(k, w, x, xq, xq_rb, n_tok, y, nth);
        t = now() - t;
        total += t;
        best = t < best ? t : best;
        if (++reps >= 1000) break;
    }
    return best;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* weights: up to 64 distinct quantized rows, repeated (quantizing every
   row of the big shapes with the K-quant searches would take long) */
static uint8_t *make_weights(int type, const float *wf, int64_t N, int64_t K, size_t rb) {
    uint8_t *wd = (uint8_t *)malloc(rb * (size_t)N);
    for (int64_t r = 0; r < N; r++) {
        if (r < 64) TRAITS[type].from_float(wf + r * K, wd + (size_t)r * rb, K);
        else memcpy(wd + (size_t)r * rb, wd + (size_t)(r % 64) * rb, rb);
    }
    return wd;
}


#ifdef SLM_HAVE_AVX512_KERNELS
/* seconds per call of f (NULL: the copy alone) on a fresh copy of src,
   best of 7 runs of 2000 calls */
static double time_exp_sum(exp_sum_fn f, const float *src, float *x, int n) {
    double best = 1e30, sink = 0;
    for (int r = 0; r < 7; r++) {
        double t = now();
        for (int i = 0; i < 2000; i++) {
            memcpy(x, src, (size_t)n * sizeof(float));
            sink += f ? f(x, n, 0.0f) : x[7];
        }
        t = now() - t;
        best = t < best ? t : best;
    }
    return sink == 12345.0 ? 0 : best / 2000; /* sink: keep the calls */
}

/* softmax (exp_sum), 1 thread: the AVX-512 kernel against the AVX2 one */
static void bench_avx512_softmax(void) {
    enum { NX = 4096 };
    static float src[NX], x[NX];
    for (int i = 0; i < NX; i++) src[i] = -10.0f * (frand() + 1.0f);
    const double tc = time_exp_sum(NULL, src, x, NX);
    const double t2 = time_exp_sum(exp_sum_avx2, src, x, NX) - tc, t5 = time_exp_sum(exp_sum_avx512, src, x, NX) - tc;
    printf("\nsoftmax, 1 thread: AVX-512 against AVX2\n\n| kernel | shape | avx2 | avx512 | ratio |\n|---|---|--:|--:|--:|\n");
    printf("| exp_sum | %d values | %.2f us | %.2f us | %5.2fx |\n", NX, t2 * 1e6, t5 * 1e6, t2 / t5);
}
#endif

int main(int argc, char **argv) {
    int quick = 0, only_t1 = 0, want[N_TYPE_IDS] = {0}, any = 0, isa = SLM_ISA_BEST;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            isa = slm_isa_from_name(argv[++i]);
            if (isa < 0 || !slm_isa_available(isa)) {
                fprintf(stderr, "--isa %s: not available in this build on this CPU\n", argv[i]);
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--t1")) only_t1 = 1;
        else {
            int found = 0;
            for (int ty = 0; ty < N_TYPE_IDS; ty++)
                if (type_size_of(ty) && !strcmp(argv[i], type_size_of(ty)->name)) want[ty] = found = any = 1;
            if (!found) {
                fprintf(stderr, "usage: %s [--quick] [--t1] [--isa NAME] [TYPE...]   (TYPE: F16, Q4_K, ...)\n", argv[0]);
                return 2;
            }
        }
    }
    kernels_resolve(kernels_find(isa), &KT);
    if (avx512_ok()) kernels_resolve(kernels_find(SLM_ISA_AVX2), &KT2);
    static const int types[] = {SLM_TYPE_F16,   SLM_TYPE_BF16, SLM_TYPE_Q8_0, SLM_TYPE_Q4_0, SLM_TYPE_Q4_1,
                                SLM_TYPE_Q5_0,  SLM_TYPE_Q5_1, SLM_TYPE_IQ4_NL, SLM_TYPE_Q2_K, SLM_TYPE_Q3_K,
                                SLM_TYPE_Q4_K,  SLM_TYPE_Q5_K, SLM_TYPE_Q6_K, SLM_TYPE_IQ4_XS};
    static const struct {
        const char *what;
        int64_t n_out, n_in;
        int n_tok;
    } cases[] = {
        {"mat-vec 4096x4096 (decode): rows/s and GB/s of weights read", 4096, 4096, 1},
        {"mat-vec 4864x896 (decode, FFN up/gate of a 0.5B model; rows of 896 do not fit the K-quants)", 4864, 896, 1},
        {"mat-vec 896x4864 (decode, FFN down of a 0.5B model)", 896, 4864, 1},
        {"mat-mat 4096x4096 x 64 tokens (prefill): tokens/s", 4096, 4096, 64},
        {"mat-mat 4864x896 x 64 tokens (prefill, FFN up/gate of a 0.5B model)", 4864, 896, 64},
        {"mat-mat 896x4864 x 64 tokens (prefill, FFN down of a 0.5B model)", 896, 4864, 64},
    };
    const double min_s = quick ? 0.05 : 0.3;
    int max_thr = 1;
#if SLM_OPENMP
    max_thr = omp_get_max_threads() >= 2 && !only_t1 ? 2 : 1;
#endif
    printf("slm %s kernel benchmark (%s), kernels %s; scalar = the *_ref kernels of the same build;\n"
           "activation conversion + matmul as in the forward pass, best of several runs\n",
           slm_version(), slm_build_info(), KT.name);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t N = cases[c].n_out, K = cases[c].n_in;
        const int T = cases[c].n_tok;
        float *wf = (float *)malloc((size_t)64 * K * sizeof(float)), *x = (float *)malloc((size_t)T * K * sizeof(float));
        float *y = (float *)malloc((size_t)T * N * sizeof(float)), *y2 = (float *)malloc((size_t)T * N * sizeof(float));
        uint8_t *xq = (uint8_t *)malloc((size_t)T * K * 4);
        for (int64_t i = 0; i < 64 * K; i++) wf[i] = frand() * 0.05f;
        for (int64_t i = 0; i < T * K; i++) x[i] = frand();
        printf("\n%s\n\n", cases[c].what);
        if (T == 1)
            printf("| type | threads | simd rows/s | GB/s | scalar rows/s | GB/s | speed-up |\n|---|--:|--:|--:|--:|--:|--:|\n");
        else
            printf("| type | threads | simd tokens/s | scalar tokens/s | speed-up |\n|---|--:|--:|--:|--:|\n");
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const int type = types[ti];
            if ((any && !want[type]) || K % type_size_of(type)->blck) continue;
            weight w;
            w.type = type, w.n_in = K, w.n_out = N, w.rb = row_bytes(type, K);
            uint8_t *wd = make_weights(type, wf, N, K, w.rb);
            w.data = wd, w.x8 = NULL;
            const size_t xq_rb = row_bytes(TRAITS[type].dot_type, K);
            kset ks = simd_kernels(type), kr = ref_kernels(type);
            /* both paths compute the same products (within float rounding) */
            run(&ks, &w, x, xq, xq_rb, T, y, 1);
            run(&kr, &w, x, xq, xq_rb, T, y2, 1);
            double md = 0, mx = 0;
            for (int64_t i = 0; i < T * N; i++) md = fmax(md, fabs((double)y[i] - y2[i])), mx = fmax(mx, fabs((double)y2[i]));
            for (int nth = 1; nth <= max_thr; nth++) {
                double ts = timeit(&ks, &w, x, xq, xq_rb, T, y, nth, min_s);
                double tr = timeit(&kr, &w, x, xq, xq_rb, T, y2, nth, quick ? 0.0 : min_s);
                const char *name = type_size_of(type)->name;
                if (T == 1)
                    printf("| %-6s | %d | %9.0f | %6.2f | %9.0f | %6.2f | %5.1fx |\n", name, nth, N / ts,
                           N * (double)w.rb / ts / 1e9, N / tr, N * (double)w.rb / tr / 1e9, tr / ts);
                else
                    printf("| %-6s | %d | %8.1f | %8.1f | %5.1fx |\n", name, nth, T / ts, T / tr, tr / ts);
                fflush(stdout);
            }
            if (md > 1e-4 * mx) printf("  WARNING: %s simd and scalar differ by %.2e of %.2e\n", type_size_of(type)->name, md, mx);
            kset k5;
            gemm_x8_fn x8_512;
            const int has512 = avx512_kernels(type, &k5, &x8_512);
            if (has512 && k5.dot) {
                run(&k5, &w, x, xq, xq_rb, T, y, 1);
                md = 0;
                for (int64_t i = 0; i < T * N; i++) md = fmax(md, fabs((double)y[i] - y2[i]));
                for (int nth = 1; nth <= max_thr; nth++) {
                    double t5 = timeit(&k5, &w, x, xq, xq_rb, T, y, nth, min_s);
                    const kset k2 = avx2_kernels(type);
                    double t2 = timeit(&k2, &w, x, xq, xq_rb, T, y, nth, min_s); /* next to it */
                    char name[24];
                    snprintf(name, sizeof name, "%s avx512", type_size_of(type)->name);
                    if (T == 1)
                        printf("| %-6s | %d | %9.0f | %6.2f | | | %5.2fx avx2 |\n", name, nth, N / t5, N * (double)w.rb / t5 / 1e9, t2 / t5);
                    else
                        printf("| %-6s | %d | %8.1f | | %5.2fx avx2 |\n", name, nth, T / t5, t2 / t5);
                    fflush(stdout);
                }
                if (md > 1e-4 * mx) printf("  WARNING: %s avx512 and scalar differ by %.2e of %.2e\n", type_size_of(type)->name, md, mx);
            }
            /* the 8-row interleaved layout a file load repacks this type to */
            gemm_x8_fn k8 = KT.gemm_x8[type];
            if (k8 && N % 8 == 0) {
                weight w8 = w;
                uint8_t *g = (uint8_t *)malloc(w.rb * (size_t)N);
                for (int64_t r = 0; r < N; r += 8) x8_pack(type, wd + (size_t)r * w.rb, w.rb, (int)(K / type_size_of(type)->blck), g + (size_t)r * w.rb);
                w8.data = g, w8.x8 = k8;
                const size_t x8_rb = act_row_bytes(act_type(&w8), K);
                run(&ks, &w8, x, xq, x8_rb, T, y, 1);
                md = 0;
                for (int64_t i = 0; i < T * N; i++) md = fmax(md, fabs((double)y[i] - y2[i]));
                for (int nth = 1; nth <= max_thr; nth++) {
                    double ts = timeit(&ks, &w8, x, xq, x8_rb, T, y, nth, min_s);
                    char name[16];
                    snprintf(name, sizeof name, "%s x8", type_size_of(type)->name);
                    if (T == 1)
                        printf("| %-6s | %d | %9.0f | %6.2f | | | |\n", name, nth, N / ts, N * (double)w.rb / ts / 1e9);
                    else
                        printf("| %-6s | %d | %8.1f | | |\n", name, nth, T / ts);
                    fflush(stdout);
                }
                if (md > 1e-4 * mx) printf("  WARNING: %s x8 and scalar differ by %.2e of %.2e\n", type_size_of(type)->name, md, mx);
                if (x8_512 && KT2.gemm_x8[type]) {
                    weight w5 = w8, w2 = w8;
                    w5.x8 = x8_512, w2.x8 = KT2.gemm_x8[type];
                    run(&ks, &w5, x, xq, x8_rb, T, y, 1);
                    md = 0;
                    for (int64_t i = 0; i < T * N; i++) md = fmax(md, fabs((double)y[i] - y2[i]));
                    for (int nth = 1; nth <= max_thr; nth++) {
                        double t5 = timeit(&ks, &w5, x, xq, x8_rb, T, y, nth, min_s);
                        double t2 = timeit(&ks, &w2, x, xq, x8_rb, T, y, nth, min_s);
                        char name[24];
                        snprintf(name, sizeof name, "%s x8 avx512", type_size_of(type)->name);
                        if (T == 1)
                            printf("| %-6s | %d | %9.0f | %6.2f | | | %5.2fx avx2 x8 |\n", name, nth, N / t5, N * (double)w.rb / t5 / 1e9, t2 / t5);
                        else
                            printf("| %-6s | %d | %8.1f | | %5.2fx avx2 x8 |\n", name, nth, T / t5, t2 / t5);
                        fflush(stdout);
                    }
                    if (md > 1e-4 * mx) printf("  WARNING: %s x8 avx512 and scalar differ by %.2e of %.2e\n", type_size_of(type)->name, md, mx);
                }
                free(g);
            }
            free(wd);
        }
        free(wf), free(x), free(y), free(y2), free(xq);
    }
#ifdef SLM_HAVE_AVX512_KERNELS
    if (avx512_ok() && !any) bench_avx512_softmax();
#endif
    return 0;
}
