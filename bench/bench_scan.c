/*
 * bench_scan: the gated delta rule of one Qwen3.5-0.8B layer (16 v-heads,
 * dk = dv = 128) over P tokens, token by token (delta_step, the old prefill)
 * (this ISA's step and the portable one) against the chunked form
 * (delta_scan), alternating, minimum of R rounds. Includes slm.c to reach the statics.
 *   cc -O2 -fopenmp -I. bench/bench_scan.c -o build/bench_scan -lm
 *   build/bench_scan [P] [R]
 */
#include "../slm.c"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const int P = argc > 1 ? atoi(argv[1]) : 128, R = argc > 2 ? atoi(argv[2]) : 10, NH = 16, D = 128;
    const int64_t ld = 3 * D;
    const int isa = kernels_find(SLM_ISA_BEST)->isa;
    float *x = malloc(sizeof(float) * (size_t)P * ld * NH), *g = malloc(sizeof(float) * (size_t)P);
    float *bt = malloc(sizeof(float) * (size_t)P), *S = malloc(sizeof(float) * (size_t)NH * D * D);
    float *dw = malloc(sizeof(float) * (delta_work_floats(D, D, P) + 1)); /* the chunk buffers */
    if (P < 1 || !x || !g || !bt || !S || !dw) return 1;
    uint64_t r = 1;
    for (size_t i = 0; i < (size_t)P * ld * NH; i++) x[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
    for (int64_t t = 0; t < (int64_t)P * NH; t++) /* q and k L2-normed, as in the model */
        for (int h = 0; h < 2; h++) {
            float *v = x + t * ld + h * D, ss = 0;
            for (int i = 0; i < D; i++) ss += v[i] * v[i];
            for (int i = 0; i < D; i++) v[i] /= sqrtf(ss);
        }
    for (int t = 0; t < P; t++) g[t] = -0.1f, bt[t] = 0.5f;
    for (size_t i = 0; i < (size_t)NH * D * D; i++) S[i] = 0.01f;
    double best[3] = {1e9, 1e9, 1e9};
    for (int rep = 0; rep < R; rep++)
        for (int v = 0; v < 3; v++) {
            const double t0 = now();
            for (int h = 0; h < NH; h++) {
                float *xh = x + (size_t)h * P * ld, *Sh = S + (size_t)h * D * D;
                if (v != 1)
                    for (int t = 0; t < P; t++)
                        delta_scan(v == 0 ? isa : SLM_ISA_SCALAR, Sh, Sh, D, D, 1, xh + t * ld, xh + t * ld + D, xh + t * ld + 2 * D, ld, g + t, 1,
                                   bt + t, 1, 0.088f, NULL);
                else
                    delta_scan(isa, Sh, Sh, D, D, P, xh, xh + D, xh + 2 * D, ld, g, 1, bt, 1, 0.088f, dw);
            }
            const double dt = now() - t0;
            if (dt < best[v]) best[v] = dt;
        }
    printf("delta rule, 16 heads x 128 x 128, %d tokens, kernels %s: token by token %.3f ms (portable step %.3f ms), "
           "chunked %.3f ms (x%.2f, x%.2f)\n",
           P, kernels_find(SLM_ISA_BEST)->name, best[0] * 1e3, best[2] * 1e3, best[1] * 1e3, best[0] / best[1],
           best[2] / best[1]);
    return 0;
}
