/* Kernels: conversions and quantizers against exact references, every dot
   kernel against dequantize-then-float-dot, on random rows of many lengths
   and scales. This file includes slm.c to reach its static kernels. */
#include "../slm.c"
#include "test.h"

/* exact fp16 rounding by search over all halves (reference for f32_to_fp16) */
static uint16_t slow_fp16(float f) {
    if (f != f) return 0x7e00;
    uint16_t best = 0;
    double bd = INFINITY;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double d = fabs((double)fp16_to_f32((uint16_t)h) - fabs((double)f));
        if (d < bd || (d == bd && (h & 1) == 0)) bd = d, best = (uint16_t)h;
    }
    if (fabs((double)f) >= 65520.0) best = 0x7c00;
    return (uint16_t)(best | (f < 0 ? 0x8000 : 0));
}

static void check_halves(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_f32((uint16_t)h);
        uint16_t back = f32_to_fp16(f);
        if (((h & 0x7c00) != 0x7c00 || (h & 0x3ff) == 0) && back != h) bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    uint64_t s = 1;
    bad = 0;
    for (int i = 0; i < 400; i++) {
        float f = t_randf(&s) * (float)pow(2.0, (double)(int)(t_rand(&s) % 44) - 28);
        if (f32_to_fp16(f) != slow_fp16(f)) bad++;
    }
    /* ties: halfway between two halves goes to the even one */
    if (f32_to_fp16(1.0f + 1.0f / 2048) != 0x3c00) bad++;
    if (f32_to_fp16(1.0f + 3.0f / 2048) != 0x3c02) bad++;
    if (f32_to_fp16(65520.0f) != 0x7c00 || f32_to_fp16(65519.0f) != 0x7bff) bad++;
    CHECK(bad == 0, "%d floats round to the wrong half", bad);
    CHECK(bf16_to_f32(f32_to_bf16(1.00390625f)) == 1.0f, "bf16 tie to even");
    CHECK(bf16_to_f32(f32_to_bf16(1.01171875f)) == 1.015625f, "bf16 tie to even (up)");
    CHECK(round_even(2.5f) == 2 && round_even(3.5f) == 4 && round_even(-2.5f) == -2 && round_even(126.6f) == 127,
          "round half even");
}

static void fill(float *x, int n, float scale, uint64_t *s) {
    for (int i = 0; i < n; i++) x[i] = t_randf(s) * scale;
    if (n > 3) x[(int)(t_rand(s) % (uint64_t)n)] = 0; /* a zero here and there */
}

/* Every supported weight type: quantize/dequantize error and dot kernels. */
static void check_types(void) {
    static const int lens[] = {256, 512, 768, 2816, 4096};
    static const float scales[] = {1.0f, 1e-3f, 30.0f, 1e-8f, 2e4f};
    uint64_t s = 42;
    for (int type = 0; type < N_TYPE_IDS; type++) {
        const type_traits *tt = traits_of(type);
        if (!tt) continue;
        const type_size *ts = type_size_of(type), *ds = type_size_of(tt->dot_type);
        int worst_q = 0, worst_d = 0;
        double wq = 0, wd = 0;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
                int n = lens[li];
                float *w = (float *)malloc(n * sizeof(float)), *a = (float *)malloc(n * sizeof(float));
                float *wdq = (float *)malloc(n * sizeof(float)), *adq = (float *)malloc(n * sizeof(float));
                uint8_t *wq8 = (uint8_t *)malloc(row_bytes(type, n)), *aq = (uint8_t *)malloc(row_bytes(tt->dot_type, n));
                fill(w, n, scales[si], &s);
                fill(a, n, 1.0f, &s);
                if (si == 4 && type == SLM_TYPE_F16) fill(w, n, 100.0f, &s); /* fp16 range */
                tt->from_float(w, wq8, n);
                tt->to_float(wq8, wdq, n);
                /* per block: the error is at most half a step of that block */
                double err = 0;
                for (int b = 0; b < n / ts->blck; b++) {
                    float amax = 0;
                    for (int j = 0; j < ts->blck; j++) amax = fmaxf(amax, fabsf(w[b * ts->blck + j]));
                    /* Q4_0 maps the extreme to -8; the opposite extreme clips at +7: one step */
                    double step = type == SLM_TYPE_Q4_0 ? amax / 4.0 : type == SLM_TYPE_Q8_0 ? amax / 127.0
                                : type == SLM_TYPE_F16 ? amax / 1024.0 : type == SLM_TYPE_BF16 ? amax / 128.0 : 0;
                    for (int j = 0; j < ts->blck; j++) {
                        double e = fabs((double)w[b * ts->blck + j] - wdq[b * ts->blck + j]);
                        /* half a step, plus the fp16 rounding of the block scale
                           (relative 2^-11, absolute 2^-24 near zero) */
                        double bound = 0.5 * step + (ts->blck > 1 ? amax / 1024.0 + 128.0 / 16777216.0
                                                                     : 1.0 / 16777216.0);
                        if (e > bound) worst_q++;
                        if (amax > 0) err = fmax(err, e / amax);
                    }
                }
                wq = fmax(wq, err);
                /* the dot kernel equals the float dot of the dequantized rows */
                TRAITS[tt->dot_type].from_float(a, aq, n);
                TRAITS[tt->dot_type].to_float(aq, adq, n);
                double ref = 0, mag = 0;
                for (int i = 0; i < n; i++) ref += (double)wdq[i] * adq[i], mag += fabs((double)wdq[i] * adq[i]);
                double got = tt->vec_dot(n, wq8, aq);
                double de = fabs(got - ref) / (mag + 1e-30);
                if (de > 1e-5) worst_d++;
                wd = fmax(wd, de);
                free(w), free(a), free(wdq), free(adq), free(wq8), free(aq);
            }
        printf("  %-5s (dot %-4s) max quant err %.2e of block max, max dot err %.2e of sum|w*a|\n", ts->name, ds->name,
               wq, wd);
        CHECK(worst_q == 0, "%s: %d values beyond half a quantization step", ts->name, worst_q);
        CHECK(worst_d == 0, "%s: %d dot products off", ts->name, worst_d);
    }
}

/* Activation quantizer of Q8_0: scale amax/127, ties to even, zeros stay zero. */
static void check_q8_act(void) {
    float x[32] = {0};
    uint8_t q[34];
    q8_0_from_float(x, q, 32);
    CHECK(ld_u16(q) == 0 && q[2] == 0, "all-zero block");
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.5f;
    x[31] = 127.0f * 0.5f;
    q8_0_from_float(x, q, 32);
    CHECK(fp16_to_f32(ld_u16(q)) == 0.5f, "scale");
    CHECK((int8_t)q[2] == -16 && (int8_t)q[33] == 127 && (int8_t)q[18] == 0, "values");
}

void test_kernels(void) {
    check_halves();
    check_q8_act();
    check_types();
}
