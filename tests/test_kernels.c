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

/* ---- SIMD kernels against the scalar references ---------------------------

   Every kernel TRAITS uses (section 6f) is compared with its *_ref on random
   data: rows of many lengths (one block, odd block counts, large, element
   counts that leave every kind of tail), scales from fp16 subnormals to huge.

   Tolerance of a dot product: the SIMD kernels accumulate in float in a
   different order than the reference (double for F32/F16/BF16, float block
   by block for Q8_0/Q4_0), so we allow the worst-case bound of float
   summation, |simd - ref| <= (k + 8) * 2^-23 * sum|w_i * a_i|, where k is
   the number of terms per accumulator lane (n / 4 for element types, the
   block count for block types); observed errors are printed in units of
   2^-24 * sum|w_i * a_i|. The activation quantizer and the f16/bf16
   conversions must give identical bits (NaN: a NaN). A 4-token kernel must
   give the same bits as the 1-token kernel. */

#define XSTR(x) #x
#define STR(x) XSTR(x)

static float rand_scale(uint64_t *s, int cls) {
    /* 0: typical, 1: tiny (fp16 subnormal scales), 2: huge */
    double u = (double)(t_rand(s) >> 11) / 9007199254740992.0;
    if (cls == 0) return (float)pow(10.0, -3.0 + 3.0 * u);
    if (cls == 1) return (float)pow(2.0, -24.0 + 10.0 * u);
    return (float)(1000.0 + 64000.0 * u);
}

/* random fp16 bits of magnitude about `scale` (finite) */
static uint16_t rand_half(uint64_t *s, float scale) { return f32_to_fp16(t_randf(s) * scale); }

/* One row of n values of `type` and its values as doubles (for sum|w*a|).
   act: the row is an activation row (Q8_0 values in [-127, 127]). */
static void rand_row(int type, int n, int cls, int act, uint64_t *s, uint8_t *row, double *val) {
    if (type == SLM_TYPE_F32 || type == SLM_TYPE_BF16) {
        float sc = cls == 0 ? 1.0f : cls == 1 ? 1e-15f : 1e15f;
        for (int i = 0; i < n; i++) {
            float f = t_randf(s) * sc * (float)pow(2.0, (double)(int)(t_rand(s) % 8) - 4);
            if (type == SLM_TYPE_F32) {
                memcpy(row + 4 * i, &f, 4);
                val[i] = f;
            } else {
                st_u16(row + 2 * i, f32_to_bf16(f));
                val[i] = bf16_to_f32(ld_u16(row + 2 * i));
            }
        }
    } else if (type == SLM_TYPE_F16) {
        float sc = cls == 0 ? 1.0f : cls == 1 ? 6e-5f : 60000.0f;
        for (int i = 0; i < n; i++) {
            st_u16(row + 2 * i, rand_half(s, sc));
            val[i] = fp16_to_f32(ld_u16(row + 2 * i));
        }
    } else if (type == SLM_TYPE_Q8_0) {
        for (int b = 0; b < n / 32; b++) {
            uint8_t *blk = row + 34 * b;
            st_u16(blk, rand_half(s, rand_scale(s, cls)));
            double d = fp16_to_f32(ld_u16(blk));
            for (int j = 0; j < 32; j++) {
                int q = act ? (int)(t_rand(s) % 255) - 127 : (int)(t_rand(s) % 256) - 128;
                blk[2 + j] = (uint8_t)(int8_t)q;
                val[32 * b + j] = d * q;
            }
        }
    } else if (type == SLM_TYPE_Q4_0) {
        for (int b = 0; b < n / 32; b++) {
            uint8_t *blk = row + 18 * b;
            st_u16(blk, rand_half(s, rand_scale(s, cls)));
            double d = fp16_to_f32(ld_u16(blk));
            for (int j = 0; j < 16; j++) {
                blk[2 + j] = (uint8_t)t_rand(s);
                val[32 * b + j] = d * ((blk[2 + j] & 15) - 8);
                val[32 * b + j + 16] = d * ((blk[2 + j] >> 4) - 8);
            }
        }
    }
}

typedef struct dot_case {
    int type;
    const char *active; /* name of the kernel TRAITS uses */
    vec_dot_fn ref;
} dot_case;

static void check_simd_dots(void) {
    static const dot_case cases[] = {
        {SLM_TYPE_F32, STR(K_DOT_F32), dot_f32_ref},   {SLM_TYPE_F16, STR(K_DOT_F16), dot_f16_ref},
        {SLM_TYPE_BF16, STR(K_DOT_BF16), dot_bf16_ref}, {SLM_TYPE_Q8_0, STR(K_DOT_Q8_0), dot_q8_0_ref},
        {SLM_TYPE_Q4_0, STR(K_DOT_Q4_0), dot_q4_0_ref},
    };
    /* element counts for F32/F16/BF16; block types use the multiples of 32 */
    static const int lens[] = {1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 255, 256, 1000, 4096, 4099};
    static const int blocks[] = {1, 2, 3, 5, 7, 8, 9, 31, 33, 64, 128, 137};
    uint64_t s = 7;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const dot_case *dc = &cases[c];
        const int type = dc->type, dt = TRAITS[type].dot_type, blk = type_size_of(type)->blck;
        const int nl = blk == 1 ? (int)(sizeof lens / sizeof lens[0]) : (int)(sizeof blocks / sizeof blocks[0]);
        vec_dot4_fn dot4 = vec_dot4_of(type);
        int bad = 0, bad4 = 0, runs = 0;
        double worst = 0;
        for (int li = 0; li < nl; li++) {
            const int n = blk == 1 ? lens[li] : 32 * blocks[li];
            const size_t wrb = row_bytes(type, n), arb = row_bytes(dt, n) + 8; /* rows not 16-byte aligned */
            uint8_t *w = (uint8_t *)malloc(wrb), *a = (uint8_t *)malloc(4 * arb);
            double *wv = (double *)malloc(n * sizeof(double)), *av = (double *)malloc(4 * n * sizeof(double));
            for (int rep = 0; rep < 6; rep++) {
                const int wc = rep % 3, ac = rep < 3 ? 0 : (rep + 1) % 3;
                rand_row(type, n, wc, 0, &s, w, wv);
                for (int t = 0; t < 4; t++) rand_row(dt, n, ac, 1, &s, a + t * arb, av + t * n);
                float y4[12];
                if (dot4) dot4(n, w, a, arb, y4, 3);
                for (int t = 0; t < 4; t++) {
                    double mag = 0;
                    for (int i = 0; i < n; i++) mag += fabs(wv[i] * av[t * n + i]);
                    const float got = TRAITS[type].vec_dot(n, w, a + t * arb), ref = dc->ref(n, w, a + t * arb);
                    const double k = blk == 1 ? n / 4.0 : n / 32.0;
                    const double err = fabs((double)got - ref), unit = mag * ldexp(1.0, -24);
                    if (!(err <= (k + 8) * 2 * unit)) {
                        if (bad++ < 3)
                            printf("  %s n=%d: simd %.9g ref %.9g (sum|w*a| %.3g)\n", dc->active, n, got, ref, mag);
                    }
                    if (unit > 0) worst = fmax(worst, err / unit);
                    if (dot4 && memcmp(&y4[3 * t], &got, sizeof got) != 0) bad4++;
                    runs++;
                }
            }
            free(w), free(a), free(wv), free(av);
        }
        printf("  dot %-5s %-16s %4d rows, max err %6.1f x 2^-24 sum|w*a|%s\n", type_size_of(type)->name, dc->active,
               runs, worst, dot4 ? ", 4-token kernel checked" : "");
        CHECK(bad == 0, "%s: %d dot products beyond the bound", dc->active, bad);
        CHECK(bad4 == 0, "%s: 4-token kernel differs from the 1-token kernel in %d results", dc->active, bad4);
    }
}

static int same_half(uint16_t a, uint16_t b) {
    int na = (a & 0x7c00) == 0x7c00 && (a & 0x3ff), nb = (b & 0x7c00) == 0x7c00 && (b & 0x3ff);
    return na || nb ? na && nb : a == b;
}

static int same_f32(float a, float b) { return a != a || b != b ? (a != a && b != b) : f32_bits(a) == f32_bits(b); }

/* random float bits: every exponent, with ties and fp16 edge cases mixed in */
static float rand_bits_f32(uint64_t *s) {
    const uint32_t u = (uint32_t)t_rand(s), e = (100u + u % 50u) << 23; /* e: 2^-27 .. 2^22, fp16's range */
    switch (t_rand(s) % 5) {
    case 0: return bits_f32(u);                                   /* anything, NaN and infinity included */
    case 1: return bits_f32((u & 0x807fffffu) | e);               /* around fp16's range */
    case 2: return bits_f32((u & 0x807fe000u) | 0x1000u | e);     /* exactly between two halves */
    case 3: return bits_f32((u & 0xffff0000u) | 0x8000u);         /* exactly between two bf16 */
    default: return bits_f32(u & 0x83ffffffu);                    /* float subnormals and tiny */
    }
}

static void check_simd_conversions(void) {
    uint64_t s = 11;
    enum { N = 1027 };
    static float x[N], f1[N], f2[N];
    static uint8_t h1[2 * N], h2[2 * N];
    int bad_f16 = 0, bad_bf16 = 0, bad_f16b = 0, bad_bf16b = 0;
    for (int rep = 0; rep < 40; rep++) {
        const int n = rep == 0 ? N : 1 + (int)(t_rand(&s) % N);
        for (int i = 0; i < n; i++) x[i] = rand_bits_f32(&s);
        f16_from_float(x, h1, n);
        f16_from_float_ref(x, h2, n);
        for (int i = 0; i < n; i++) bad_f16 += !same_half(ld_u16(h1 + 2 * i), ld_u16(h2 + 2 * i));
        bf16_from_float(x, h1, n);
        bf16_from_float_ref(x, h2, n);
        bad_bf16 += memcmp(h1, h2, 2 * (size_t)n) != 0;
    }
    /* every half and every bf16 back to float */
    for (uint32_t h0 = 0; h0 < 65536; h0 += N) {
        const int n = (int)SLM_MIN(N, 65536 - h0);
        for (int i = 0; i < n; i++) st_u16(h1 + 2 * i, (uint16_t)(h0 + (uint32_t)i));
        f16_to_float(h1, f1, n);
        f16_to_float_ref(h1, f2, n);
        for (int i = 0; i < n; i++) bad_f16b += !same_f32(f1[i], f2[i]);
        bf16_to_float(h1, f1, n);
        bf16_to_float_ref(h1, f2, n);
        for (int i = 0; i < n; i++) bad_bf16b += !same_f32(f1[i], f2[i]);
    }
    printf("  f32->f16 %s, f32->bf16 %s, f16->f32 %s, bf16->f32 %s\n", STR(K_F16_FROM_FLOAT), STR(K_BF16_FROM_FLOAT),
           STR(K_F16_TO_FLOAT), STR(K_BF16_TO_FLOAT));
    CHECK(bad_f16 == 0, "f32->f16: %d values differ from the reference", bad_f16);
    CHECK(bad_bf16 == 0, "f32->bf16: %d rows differ from the reference", bad_bf16);
    CHECK(bad_f16b == 0, "f16->f32: %d halves differ from the reference", bad_f16b);
    CHECK(bad_bf16b == 0, "bf16->f32: %d values differ from the reference", bad_bf16b);
}

/* The Q8_0 activation quantizer: same bytes as the reference, ties included. */
static void check_simd_q8_act(void) {
    enum { NB = 137 };
    static float x[32 * NB];
    static uint8_t q1[34 * NB], q2[34 * NB];
    uint64_t s = 5;
    int bad = 0, ties = 0;
    for (int rep = 0; rep < 60; rep++) {
        const int nb = rep < 10 ? 1 + rep : 1 + (int)(t_rand(&s) % NB);
        for (int b = 0; b < nb; b++) {
            float *v = x + 32 * b;
            const int kind = (int)(t_rand(&s) % 6);
            const float sc = kind == 0 ? 1.0f : kind == 1 ? 1e-20f : kind == 2 ? 1e30f : kind == 3 ? 3e-5f : 1.0f;
            for (int j = 0; j < 32; j++) v[j] = t_randf(&s) * sc;
            if (kind == 4) { /* amax 127: the inverse scale is 1, x.5 values are exact ties */
                for (int j = 0; j < 32; j++) v[j] = (float)((int)(t_rand(&s) % 255) - 127) + (j & 1 ? 0.5f : 0.0f);
                v[(int)(t_rand(&s) % 32)] = (t_rand(&s) & 1) ? 127.0f : -127.0f;
            }
            if (kind == 5) { /* amax 63.5: inverse scale 2, x.25 values are ties */
                for (int j = 0; j < 32; j++) v[j] = ((float)((int)(t_rand(&s) % 253) - 126) + 0.5f) * 0.5f;
                v[3] = 63.5f;
            }
            if (t_rand(&s) % 8 == 0) memset(v, 0, sizeof(float) * 32); /* an all-zero block */
        }
        q8_0_from_float(x, q1, 32 * nb);
        q8_0_from_float_ref(x, q2, 32 * nb);
        bad += memcmp(q1, q2, 34 * (size_t)nb) != 0;
    }
    /* round_even against the C library's rint (default rounding mode) */
    for (int i = 0; i < 20000; i++) {
        float v = t_randf(&s) * 300.0f;
        if (i % 2) v = (float)((int)(t_rand(&s) % 401) - 200) + 0.5f;
        ties += round_even(v) != (int)rintf(v);
    }
    printf("  q8_0 activation quantizer %s\n", STR(K_Q8_0_FROM_FLOAT));
    CHECK(bad == 0, "q8_0 quantizer: %d rows differ from the reference", bad);
    CHECK(ties == 0, "round_even differs from rintf in %d cases", ties);
}

void test_kernels(void) {
    printf("  simd path: %s\n", SLM_SIMD_NAME);
    check_halves();
    check_q8_act();
    check_types();
    check_simd_conversions();
    check_simd_q8_act();
    check_simd_dots();
}
