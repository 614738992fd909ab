/* Prefill through the GEMM kernels (slm.c section 7, matmul_gemm) on the
   fixture models: a prompt of 48 tokens (the fixture's 16 ids three times)
   decoded in one batch of 64 goes through the GEMM (32 tokens or more),
   in batches of 1, 3 and 16 it does not (except x8 groups, whose GEMM
   starts at 8 tokens and gives the same bits). The first 16 positions meet the
   fixture's llama.cpp bar (tests/data/FIXTURES.md); 2 threads give the bits
   of 1; a model loaded with repack = 0 passes the same checks. Against the
   small batches: the x8 GEMM (Q4_0, Q5_0, Q8_0) has the x8 kernels' bits,
   so every position is equal; the K-quant GEMM has the scalar reference's
   dot bits (tiny-llama-Q4_K/Q5_K/Q6_K at batch 64: within 3e-7 of a run on
   the scalar kernel table; that run is printed and held to the bar), while
   the SIMD dot kernels of small batches sum in another order, which on
   these random models can flip an activation's rounding and move later
   positions by ~1e-2: there the small batches must meet the bar. With
   repack on AVX2/AVX-512, Q4_K/Q5_K/Q6_K matrices are x8 groups, whose GEMM
   (AVX-512, from 8 tokens; AVX2 keeps the x8 kernels) has the x8 kernels' bits: those fixtures (kx8 below) then
   give the same bits in every batch, as the 32-blocks do. */
#include "test.h"
#include "../slm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GP 16 /* positions with reference logits */
#define GN 48 /* prompt length */
#define GV 384

static int gemm_prompt(const slm_model *m, int threads, int n_batch, const int32_t *ids, float *out) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.kv_type = SLM_TYPE_F32;
    sp.n_threads = threads;
    sp.n_batch = n_batch;
    sp.logits_all = 1;
    slm_session *s;
    slm_error err;
    if (slm_session_create(m, &sp, &s, &err) != SLM_OK) return 0;
    int ok = slm_decode(s, ids, GN, &err) == SLM_OK;
    for (int i = 0; ok && i < GN; i++) memcpy(out + i * GV, slm_session_logits(s, i), GV * sizeof(float));
    slm_session_free(s);
    return ok;
}

static double gemm_rel(const float *a, const float *b, int n, double maxabs) {
    double d = 0;
    for (int i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= d)) d = fabs((double)a[i] - b[i]);
    return d / maxabs;
}

void test_gemm_models(void) {
    static const struct {
        const char *name;
        double tol;
        int exact; /* 1: small batches give the same bits */
        int kx8;   /* 1: every quantized matrix is Q4_K/Q5_K/Q6_K (exact when repacked on x86) */
    } fx[] = {{"tiny-llama-Q8_0", 3e-2, 1, 0}, {"tiny-llama-Q4_0", 3e-2, 1, 0}, {"tiny-llama-Q5_0", 3e-2, 1, 0},
              {"tiny-llama-Q4_K", 3e-2, 0, 1}, {"tiny-llama-Q5_K", 3e-2, 0, 1}, {"tiny-llama-Q6_K", 3e-2, 0, 1},
              {"tiny-qwen3-Q4_K", 3e-2, 0, 1}, {"tiny-gemma2-Q6_K", 3e-2, 0, 1}, {"tiny-llama-Q2_K", 3e-2, 0, 0},
              {"tiny-llama-Q3_K", 3e-2, 0, 0}, {"tiny-llama-IQ4_XS", 3e-2, 0, 0}, {"tiny-llama-F32", 1e-3, 1, 0}};
    static float out[GN * GV], out2[GN * GV], ref[GP * GV];
    for (size_t f = 0; f < sizeof fx / sizeof fx[0]; f++) {
        char p[256];
        size_t n;
        int64_t ids64[GP];
        snprintf(p, sizeof p, "models/%s.ref.json", fx[f].name);
        char *js = (char *)read_all(data_path(p), &n);
        CHECK(js != NULL, "%s: reference missing", fx[f].name);
        if (!js) continue;
        const int nid = json_ints(js, "input_ids", ids64, GP);
        free(js);
        snprintf(p, sizeof p, "models/%s.logits.f32", fx[f].name);
        CHECK(nid == GP && read_f32(data_path(p), ref, GP * GV) == GP * GV, "%s: reference unreadable", fx[f].name);
        double maxabs = 0;
        for (int i = 0; i < GP * GV; i++)
            if (fabs(ref[i]) > maxabs) maxabs = fabs(ref[i]);
        int32_t ids[GN];
        for (int i = 0; i < GN; i++) ids[i] = (int32_t)ids64[i % GP];
        snprintf(p, sizeof p, "models/%s.gguf", fx[f].name);
        for (int repack = 1; repack >= 0; repack--) {
            slm_model_params mp;
            slm_model_params_init(&mp);
            mp.repack = repack;
            slm_model *m;
            slm_error err;
            if (slm_model_load_file(data_path(p), &mp, &m, &err) != SLM_OK) {
                CHECK(0, "%s: load: %s", fx[f].name, err.message);
                break;
            }
            if (!gemm_prompt(m, 1, 64, ids, out)) {
                CHECK(0, "%s: batch 64 failed", fx[f].name);
                slm_model_free(m);
                break;
            }
            const double rel = gemm_rel(out, ref, GP * GV, maxabs);
            CHECK(rel <= fx[f].tol, "%s (repack %d): batch 64: rel %.3e > %.1e", fx[f].name, repack, rel, fx[f].tol);
            double worst = 0;
            const int isa = slm_model_isa(m);
            const int exact = fx[f].exact || (fx[f].kx8 && repack && (isa == SLM_ISA_AVX2 || isa == SLM_ISA_AVX512));
            static const int batches[] = {1, 3, 16};
            for (int b = 0; b < 3; b++) {
                CHECK(gemm_prompt(m, 1, batches[b], ids, out2), "%s: batch %d failed", fx[f].name, batches[b]);
                const double d = gemm_rel(out2, out, GN * GV, maxabs);
                worst = d > worst ? d : worst;
                if (exact)
                    CHECK(memcmp(out, out2, sizeof out) == 0, "%s (repack %d): batch %d differs from batch 64 (%.2e)",
                          fx[f].name, repack, batches[b], d);
                else
                    CHECK(d <= fx[f].tol, "%s (repack %d): batch %d vs batch 64 differ by %.2e", fx[f].name, repack,
                          batches[b], d);
            }
            CHECK(gemm_prompt(m, 2, 64, ids, out2), "%s: 2 threads failed", fx[f].name);
            CHECK(memcmp(out, out2, sizeof out) == 0, "%s (repack %d): 2 threads differ from 1 at batch 64", fx[f].name,
                  repack);
            slm_model_free(m);
            double dscalar = -1;
            if (repack && !fx[f].exact && slm_isa_available(SLM_ISA_SCALAR)) {
                mp.isa = SLM_ISA_SCALAR;
                if (slm_model_load_file(data_path(p), &mp, &m, &err) == SLM_OK) {
                    CHECK(gemm_prompt(m, 1, 64, ids, out2), "%s: scalar run failed", fx[f].name);
                    dscalar = gemm_rel(out2, out, GN * GV, maxabs);
                    CHECK(dscalar <= fx[f].tol, "%s: batch 64 differs from the scalar kernels' run by %.2e", fx[f].name,
                          dscalar);
                    slm_model_free(m);
                }
            }
            printf("  %-18s repack %d: batch 64 rel %.2e (bar %.0e), batches 1/3/16 within %.1e", fx[f].name, repack,
                   rel, fx[f].tol, worst);
            if (dscalar >= 0) printf(", scalar kernels within %.1e", dscalar);
            printf("\n");
        }
    }
}
