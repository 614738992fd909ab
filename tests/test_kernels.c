/* Kernels: conversions and quantizers against exact references, every dot
   kernel against dequantize-then-float-dot, on random rows of many lengths
   and scales. This file includes slm.c to reach its static kernels. */
#include "../slm.c"
#include "test.h"

#include <time.h>

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

/* The values the decoder can produce for value i of a quantized row: the
   levels of its (sub-)block's grid under the stored scales. Returns the
   count (0 for the float types). */
static int grid_of(int type, const uint8_t *row, int i, float *lv) {
    const type_size *ts = type_size_of(type);
    const uint8_t *b = row + (size_t)(i / ts->blck) * (size_t)ts->bytes;
    int n = 0;
    if (ts->blck == 32) {
        float d = ld_f16(b), m = 0;
        int lo = 0, hi = 0;
        switch (type) {
        case SLM_TYPE_Q8_0: lo = -128, hi = 127; break;
        case SLM_TYPE_Q4_0: lo = -8, hi = 7; break;
        case SLM_TYPE_Q5_0: lo = -16, hi = 15; break;
        case SLM_TYPE_Q4_1: lo = 0, hi = 15, m = ld_f16(b + 2); break;
        case SLM_TYPE_Q5_1: lo = 0, hi = 31, m = ld_f16(b + 2); break;
        case SLM_TYPE_IQ4_NL:
            for (int k = 0; k < 16; k++) lv[n++] = d * (float)IQ4_VALUES[k];
            return n;
        }
        for (int q = lo; q <= hi; q++) lv[n++] = (float)q * d + m;
        return n;
    }
    if (ts->blck != QK_K) return 0;
    kblock k;
    int lo = 0, hi = 0;
    switch (type) {
    case SLM_TYPE_Q2_K: unpack_q2_k(b, &k), lo = 0, hi = 3; break;
    case SLM_TYPE_Q3_K: unpack_q3_k(b, &k), lo = -4, hi = 3; break;
    case SLM_TYPE_Q4_K: unpack_q4_k(b, &k), lo = 0, hi = 15; break;
    case SLM_TYPE_Q5_K: unpack_q5_k(b, &k), lo = 0, hi = 31; break;
    case SLM_TYPE_Q6_K: unpack_q6_k(b, &k), lo = -32, hi = 31; break;
    case SLM_TYPE_IQ4_XS: unpack_iq4_xs(b, &k); break;
    default: return 0;
    }
    const int s = (i % QK_K) / k.sub;
    const float dl = k.d * (float)k.sc[s], ml = k.dmin * (float)k.mn[s];
    if (type == SLM_TYPE_IQ4_XS)
        for (int q = 0; q < 16; q++) lv[n++] = dl * (float)IQ4_VALUES[q];
    else
        for (int q = lo; q <= hi; q++) lv[n++] = dl * (float)q - ml;
    return n;
}

/* Every supported weight type: each value must land on the level of its
   block's grid that is nearest to it (the last step of every quantizer),
   and the dot kernel must equal the float dot of the dequantized rows. */
static void check_types(void) {
    static const int lens[] = {256, 512, 768, 2816, 4096};
    static const float scales[] = {1.0f, 1e-3f, 30.0f, 1e-8f, 2e4f};
    uint64_t s = 42;
    float lv[256];
    for (int type = 0; type < N_TYPE_IDS; type++) {
        const type_traits *tt = traits_of(type);
        if (!tt) continue;
        const type_size *ts = type_size_of(type), *ds = type_size_of(tt->dot_type);
        const int blk = ts->blck == 1 ? 1 : ts->blck == 32 ? 32 : 256;
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
                double err = 0;
                for (int b = 0; b < n / blk; b++) {
                    float amax = 0;
                    for (int j = 0; j < blk; j++) amax = fmaxf(amax, fabsf(w[b * blk + j]));
                    for (int j = 0; j < blk; j++) {
                        const int i = b * blk + j;
                        double e = fabs((double)w[i] - wdq[i]), bound;
                        int nl = grid_of(type, wq8, i, lv);
                        if (nl) {
                            /* distance to the nearest level of its own grid, plus a
                               little for levels picked with the unrounded scale (Q8_0,
                               Q4_0, Q5_0 as ggml): f16 rounding, relative 2^-11 or
                               absolute 2^-24 for subnormal scales, times the level */
                            double nearest = INFINITY;
                            for (int k = 0; k < nl; k++) nearest = fmin(nearest, fabs((double)w[i] - lv[k]));
                            bound = nearest + amax / 512.0 + 128.0 / 16777216.0;
                        } else {
                            bound = type == SLM_TYPE_F32 ? 0 : type == SLM_TYPE_F16 ? amax / 2048.0 + 1.0 / 33554432.0
                                                                                    : amax / 256.0;
                        }
                        if (e > bound) worst_q++;
                        if (amax > 0) err = fmax(err, e / amax);
                    }
                }
                wq = fmax(wq, err);
                /* the dot kernel equals the float dot of the dequantized rows;
                   with Q8_1 the min term uses the block's stored s = f16(d * sum q)
                   instead of the dequantized sum */
                TRAITS[tt->dot_type].from_float(a, aq, n);
                TRAITS[tt->dot_type].to_float(aq, adq, n);
                double ref = 0, mag = 0;
                for (int i = 0; i < n; i++) ref += (double)wdq[i] * adq[i], mag += fabs((double)wdq[i] * adq[i]);
                if (tt->dot_type == SLM_TYPE_Q8_1)
                    for (int b = 0; b < n / 32; b++) {
                        const uint8_t *ab = aq + 36 * b;
                        double dq = 0;
                        for (int j = 0; j < 32; j++) dq += (double)ld_f16(ab) * (int8_t)ab[4 + j];
                        ref += (double)ld_f16(wq8 + (size_t)b * ts->bytes + 2) * ((double)ld_f16(ab + 2) - dq);
                    }
                double got = tt->vec_dot(n, wq8, aq);
                double de = fabs(got - ref) / (mag + 1e-30);
                if (de > 1e-5) worst_d++;
                wd = fmax(wd, de);
                free(w), free(a), free(wdq), free(adq), free(wq8), free(aq);
            }
        printf("  %-6s (dot %-4s) max quant err %.2e of block max, max dot err %.2e of sum|w*a|\n", ts->name,
               ds->name, wq, wd);
        CHECK(worst_q == 0, "%s: %d values not on the nearest level of their grid", ts->name, worst_q);
        CHECK(worst_d == 0, "%s: %d dot products off", ts->name, worst_d);
    }
}

/* Decoding agrees between to_float and the dot kernel at every position:
   the dot with a one-hot activation (-127 at k, which every int8 format
   stores exactly as q = -127, d = 1) is -127 times value k. */
static void check_onehot(void) {
    enum { N = 512 };
    uint64_t s = 7;
    static float w[N], y[N], a[N];
    static uint8_t wq[N * 4], aq[N * 4];
    for (int type = 0; type < N_TYPE_IDS; type++) {
        const type_traits *tt = traits_of(type);
        if (!tt) continue;
        fill(w, N, 1.0f, &s);
        tt->from_float(w, wq, N);
        tt->to_float(wq, y, N);
        float ymax = 0;
        for (int i = 0; i < N; i++) ymax = fmaxf(ymax, fabsf(y[i]));
        int bad = 0;
        for (int k = 0; k < N; k++) {
            memset(a, 0, sizeof a);
            a[k] = -127.0f;
            TRAITS[tt->dot_type].from_float(a, aq, N);
            double got = tt->vec_dot(N, wq, aq), want = -127.0 * y[k];
            if (fabs(got - want) > 127.0 * (fabs(y[k]) + ymax) * 1e-6) bad++;
        }
        CHECK(bad == 0, "%s: %d positions where the dot kernel decodes another value than to_float",
              type_size_of(type)->name, bad);
    }
}

/* Q8_1 and Q8_K, the activation formats of Q4_1/Q5_1 and the K-quants. */
static void check_act_formats(void) {
    float x[256];
    uint8_t q[292];
    uint64_t s = 3;
    for (int i = 0; i < 256; i++) x[i] = t_randf(&s);
    x[77] = 2.0f; /* the extreme is positive: Q8_K maps it to -127, d < 0 */
    q8_k_from_float_ref(x, q, 256);
    volatile float want = 1.0f / (-127.0f / 2.0f); /* rounded to float even where floats compute in double */
    CHECK(ld_f32(q) == want && (int8_t)q[4 + 77] == -127, "Q8_K: extreme -> -127, d = 1/iscale");
    int bad = 0;
    for (int b = 0; b < 16; b++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) sum += (int8_t)q[4 + 16 * b + j];
        bad += (int16_t)ld_u16(q + 260 + 2 * b) != sum;
    }
    for (int i = 0; i < 256; i++) bad += (int8_t)q[4 + i] != round_even(x[i] * (-127.0f / 2.0f));
    CHECK(bad == 0, "Q8_K: %d wrong values or bsums", bad);
    memset(x, 0, sizeof x);
    memset(q, 0xaa, sizeof q);
    q8_k_from_float_ref(x, q, 256);
    bad = 0;
    for (int i = 0; i < 292; i++) bad += q[i] != 0;
    CHECK(bad == 0, "Q8_K: a zero block is all zero (d, qs and bsums)");

    for (int i = 0; i < 32; i++) x[i] = t_randf(&s) * 3.0f;
    q8_1_from_float_ref(x, q, 32);
    float amax = 0;
    int sum = 0;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
    bad = 0;
    for (int i = 0; i < 32; i++) {
        bad += (int8_t)q[4 + i] != round_even(x[i] * (127.0f / amax));
        sum += (int8_t)q[4 + i];
    }
    CHECK(bad == 0 && ld_u16(q) == f32_to_fp16(amax / 127.0f), "Q8_1: values and scale");
    CHECK(ld_u16(q + 2) == f32_to_fp16(amax / 127.0f * (float)sum), "Q8_1: s = f16(d * sum) from the unrounded d");
}

/* Activation quantizer of Q8_0: scale amax/127, ties to even, zeros stay zero. */
static void check_q8_act(void) {
    float x[32] = {0};
    uint8_t q[34];
    q8_0_from_float_ref(x, q, 32);
    CHECK(ld_u16(q) == 0 && q[2] == 0, "all-zero block");
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.5f;
    x[31] = 127.0f * 0.5f;
    q8_0_from_float_ref(x, q, 32);
    CHECK(fp16_to_f32(ld_u16(q)) == 0.5f, "scale");
    CHECK((int8_t)q[2] == -16 && (int8_t)q[33] == 127 && (int8_t)q[18] == 0, "values");
}

/* The GGUF writer, and slm_quantize_file's fallbacks for rows that do not
   fit a type's block: a synthetic file with rows of 96 and 100 values. */
static void check_writer_fallbacks(void) {
    char in[480], out[512];
    static int salt;
    snprintf(in, sizeof in, "%s/slm-wtest-%lx.gguf", tmp_dir(), (unsigned long)(size_t)&salt ^ (unsigned long)time(NULL));
    snprintf(out, sizeof out, "%s.out", in);
    allocator a;
    alloc_init(&a, NULL);
    gguf_writer w;
    slm_error err;
    gw_init(&w, &a, 32, &err);
    gw_kv_str(&w, "general.architecture", "test");
    gw_kv_u32(&w, "test.block_count", 1);
    gw_kv_f32(&w, "test.eps", 1e-5f);
    const char *toks[3] = {"<s>", "hello", ""};
    gw_kv_str_array(&w, "tokenizer.ggml.tokens", toks, 3);
    const int32_t ints[4] = {1, -2, 3, 1 << 30};
    gw_kv_array(&w, "test.ints", SLM_META_I32, ints, 4);
    static const char *const names[4] = {"blk.0.ffn_down.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
                                         "blk.0.attn_norm.weight"};
    const int64_t ne[4][2] = {{96, 8}, {100, 4}, {256, 2}, {96, 1}};
    const int types[4] = {SLM_TYPE_F32, SLM_TYPE_F32, SLM_TYPE_F16, SLM_TYPE_F32};
    static float vals[4][800];
    static uint8_t f16[512 * 2];
    uint64_t s = 5;
    for (int t = 0; t < 4; t++) {
        fill(vals[t], (int)(ne[t][0] * ne[t][1]), 1.0f, &s);
        gw_tensor(&w, names[t], types[t], t == 3 ? 1 : 2, ne[t]);
    }
    FILE *f = fopen(in, "wb");
    CHECK(f != NULL, "cannot create %s", in);
    if (!f) return;
    gw_write_header(&w, f, in);
    for (int t = 0; t < 4; t++) {
        const int n = (int)(ne[t][0] * ne[t][1]);
        if (types[t] == SLM_TYPE_F16) {
            f16_from_float_ref(vals[t], f16, n);
            f16_to_float_ref(f16, vals[t], n); /* what the file holds */
            gw_write_data(&w, f16, (size_t)n * 2);
        } else {
            uint8_t le[800 * 4];
            f32_from_float(vals[t], le, n); /* GGUF floats are little-endian */
            gw_write_data(&w, le, (size_t)n * 4);
        }
        gw_end_tensor(&w);
    }
    fclose(f);
    CHECK(w.st == SLM_OK, "writer: %s", err.message);
    gw_free(&w);

    /* pure Q4_K: 96 -> Q5_0, 100 -> F16; Q4_K_M: ffn_down wants Q6_K -> Q8_0 */
    for (int mix = 0; mix < 2; mix++) {
        slm_quantize_params qp;
        slm_quantize_params_init(&qp);
        qp.type = SLM_TYPE_Q4_K;
        qp.mix = mix ? SLM_MIX_M : SLM_MIX_PURE;
        slm_quantize_stats st;
        if (slm_quantize_file(in, out, &qp, &st, &err) != SLM_OK) {
            CHECK(0, "quantize: %s", err.message);
            continue;
        }
        CHECK(st.n_fallback == 2 && st.n_converted == 3, "fallbacks %d, converted %d", (int)st.n_fallback, (int)st.n_converted);
        size_t n;
        unsigned char *buf = read_all(out, &n);
        gguf_file g;
        if (!buf || gguf_parse(&g, buf, n, &a, &err) != SLM_OK) {
            CHECK(0, "output does not parse: %s", err.message);
            free(buf);
            continue;
        }
        const int want[4] = {mix ? SLM_TYPE_Q8_0 : SLM_TYPE_Q5_0, SLM_TYPE_F16, SLM_TYPE_Q4_K, SLM_TYPE_F32};
        for (int t = 0; t < 4; t++) {
            const gguf_tensor *gt = &g.tensors[t];
            CHECK(!strcmp(gt->name, names[t]) && gt->type == want[t] && gt->ne[0] == ne[t][0] && gt->ne[1] == ne[t][1],
                  "%s: type %s", gt->name, slm_type_name(gt->type));
            const int cnt = (int)(ne[t][0] * ne[t][1]);
            float back[800];
            TRAITS[gt->type].to_float(buf + g.data_off + gt->offset, back, cnt);
            double e = 0;
            for (int i = 0; i < cnt; i++) e = fmax(e, fabs((double)back[i] - vals[t][i]));
            CHECK(e <= (gt->type == SLM_TYPE_F32 ? 0 : gt->type == SLM_TYPE_F16 ? 1e-3 : 0.2), "%s: max error %.3g", gt->name, e);
        }
        const gguf_kv *kv = gguf_get(&g, "tokenizer.ggml.tokens");
        CHECK(kv && kv->count == 3 && kv->sl[1] == 5 && !memcmp(kv->sv[1], "hello", 5) && kv->sl[2] == 0,
              "string array read (views into the file)");
        int64_t v;
        kv = gguf_get(&g, "test.ints");
        CHECK(kv && kv->count == 4 && kv_int(&g, kv, 3, &v) == SLM_OK && v == (1 << 30), "int array copied");
        kv = gguf_get(&g, "general.file_type");
        CHECK(kv && kv_int(&g, kv, -1, &v) == SLM_OK && v == 15, "file_type of Q4_K(_M) is 15");
        gguf_free(&g, &a);
        free(buf);
    }
    remove(in);
    remove(out);
}

/* ---- SIMD kernels against the scalar references ---------------------------

   Every kernel of every kernel table this CPU can run (section 6g) is compared with its *_ref on random
   data: rows of many lengths (one block, odd block counts, large, element
   counts that leave every kind of tail), random bytes for the quantized
   values and sub-block scales, and block scales from fp16 subnormals to
   huge ones.

   Tolerance of a dot product: the SIMD kernels accumulate in float in a
   different order than the reference (double for F32/F16/BF16, float block
   by block or super-block by super-block for the others), so we allow the
   worst-case bound of float summation, |simd - ref| <= (k + 8) * 2^-23 * M,
   where k is the number of terms per accumulator lane (n / 4 for element
   types, the block or super-block count for block types) and M the sum of
   the magnitudes of the terms the kernels add: sum |w_i * a_i| for types
   without mins; for Q4_1/Q5_1 and the K-quants with mins, the scale part
   and the min part counted apart (sum |d_w d_a sc q_i q8_i| + sum |m s|),
   since both are summed and may cancel. Observed errors are printed in
   units of 2^-24 * M. The activation quantizers and the f16/bf16
   conversions must give identical bits (NaN: a NaN). A 4-token kernel must
   give the same bits as the 1-token kernel. */


static float rand_scale(uint64_t *s, int cls) {
    /* 0: typical, 1: tiny (fp16 subnormal scales), 2: huge */
    double u = (double)(t_rand(s) >> 11) / 9007199254740992.0;
    if (cls == 0) return (float)pow(10.0, -3.0 + 3.0 * u);
    if (cls == 1) return (float)pow(2.0, -24.0 + 10.0 * u);
    return (float)(1000.0 + 64000.0 * u);
}

/* random fp16 bits of magnitude about `scale` (finite) */
static uint16_t rand_half(uint64_t *s, float scale) { return f32_to_fp16(t_randf(s) * scale); }

static int8_t rand_act8(uint64_t *s) { return (int8_t)((int)(t_rand(s) % 255) - 127); }

/* One row of n values of `type`: random bytes, then the f16 scale fields of
   each block set from scale class cls. act: an activation row (values in
   [-127, 127], Q8_1's s and Q8_K's bsums consistent with them). */
static void rand_row(int type, int n, int cls, int act, uint64_t *s, uint8_t *row) {
    static const struct {
        int type, d, m; /* offsets of the f16 scale (and min) of a block; -1: none */
    } halves[] = {{SLM_TYPE_Q8_0, 0, -1}, {SLM_TYPE_Q4_0, 0, -1},   {SLM_TYPE_Q4_1, 0, 2},   {SLM_TYPE_Q5_0, 0, -1},
                  {SLM_TYPE_Q5_1, 0, 2},  {SLM_TYPE_IQ4_NL, 0, -1}, {SLM_TYPE_Q2_K, 80, 82}, {SLM_TYPE_Q3_K, 108, -1},
                  {SLM_TYPE_Q4_K, 0, 2},  {SLM_TYPE_Q5_K, 0, 2},    {SLM_TYPE_Q6_K, 208, -1}, {SLM_TYPE_IQ4_XS, 0, -1}};
    if (type == SLM_TYPE_F32 || type == SLM_TYPE_BF16) {
        float sc = cls == 0 ? 1.0f : cls == 1 ? 1e-15f : 1e15f;
        for (int i = 0; i < n; i++) {
            float f = t_randf(s) * sc * (float)pow(2.0, (double)(int)(t_rand(s) % 8) - 4);
            if (type == SLM_TYPE_F32) st_f32(row + 4 * i, f); /* F32 data is little-endian */
            else st_u16(row + 2 * i, f32_to_bf16(f));
        }
        return;
    }
    if (type == SLM_TYPE_F16) {
        float sc = cls == 0 ? 1.0f : cls == 1 ? 6e-5f : 60000.0f;
        for (int i = 0; i < n; i++) st_u16(row + 2 * i, rand_half(s, sc));
        return;
    }
    const type_size *ts = type_size_of(type);
    for (size_t i = 0; i < row_bytes(type, n); i++) row[i] = (uint8_t)t_rand(s);
    for (int b = 0; b < n / ts->blck; b++) {
        uint8_t *blk = row + (size_t)b * (size_t)ts->bytes;
        if (type == SLM_TYPE_Q8_0) {
            st_u16(blk, rand_half(s, rand_scale(s, cls)));
            if (act)
                for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)rand_act8(s);
        } else if (type == SLM_TYPE_Q8_1) {
            /* s = d * sum(q) must stay finite in f16: |d| < 65504 / 4064 */
            st_u16(blk, rand_half(s, rand_scale(s, cls) / (cls == 2 ? 4096.0f : 1.0f)));
            int sum = 0;
            for (int j = 0; j < 32; j++) blk[4 + j] = (uint8_t)rand_act8(s), sum += (int8_t)blk[4 + j];
            st_u16(blk + 2, f32_to_fp16(ld_f16(blk) * (float)sum));
        } else if (type == SLM_TYPE_Q8_K) {
            st_f32(blk, t_randf(s) * rand_scale(s, cls));
            for (int j = 0; j < QK_K; j++) blk[4 + j] = (uint8_t)rand_act8(s);
            for (int k = 0; k < 16; k++) {
                int sum = 0;
                for (int j = 0; j < 16; j++) sum += (int8_t)blk[4 + 16 * k + j];
                st_u16(blk + 260 + 2 * k, (uint16_t)(int16_t)sum);
            }
        } else {
            for (size_t h = 0; h < sizeof halves / sizeof halves[0]; h++)
                if (halves[h].type == type) {
                    st_u16(blk + halves[h].d, rand_half(s, rand_scale(s, cls)));
                    if (halves[h].m >= 0) st_u16(blk + halves[h].m, rand_half(s, rand_scale(s, cls)));
                }
        }
    }
}

typedef void (*unpack_fn)(const uint8_t *b, kblock *k);

static unpack_fn unpack_of(int type) {
    switch (type) {
    case SLM_TYPE_Q2_K: return unpack_q2_k;
    case SLM_TYPE_Q3_K: return unpack_q3_k;
    case SLM_TYPE_Q4_K: return unpack_q4_k;
    case SLM_TYPE_Q5_K: return unpack_q5_k;
    case SLM_TYPE_Q6_K: return unpack_q6_k;
    case SLM_TYPE_IQ4_XS: return unpack_iq4_xs;
    default: return NULL;
    }
}

/* M of the tolerance (above): the summed magnitudes of the dot's terms */
static double dot_mag(int type, const uint8_t *w, const uint8_t *a, int n, float *wf, float *af) {
    const int dt = TRAITS[type].dot_type;
    double mag = 0;
    if (type == SLM_TYPE_Q4_1 || type == SLM_TYPE_Q5_1) {
        const int bytes = type == SLM_TYPE_Q4_1 ? 20 : 24;
        for (int b = 0; b < n / 32; b++, w += bytes, a += 36) {
            double t = 0;
            for (int j = 0; j < 32; j++) {
                const int q = type == SLM_TYPE_Q4_1 ? (j < 16 ? w[4 + j] & 15 : w[4 + j - 16] >> 4) : q5_level(w + 4, w + 8, j);
                t += fabs((double)q * (int8_t)a[4 + j]);
            }
            mag += fabs((double)ld_f16(w) * ld_f16(a)) * t + fabs((double)ld_f16(w + 2) * ld_f16(a + 2));
        }
        return mag;
    }
    const unpack_fn un = unpack_of(type);
    if (un) {
        const int bytes = type_size_of(type)->bytes;
        kblock k;
        for (int b = 0; b < n / QK_K; b++, w += bytes, a += 292) {
            un(w, &k);
            const double d8 = ld_f32(a);
            for (int i = 0; i < QK_K; i++) mag += fabs((double)k.d * d8 * k.sc[i / k.sub] * k.q[i] * (int8_t)a[4 + i]);
            for (int sb = 0; sb < 16; sb++) mag += fabs((double)k.dmin * d8 * k.mn[sb * 16 / k.sub] * (int16_t)ld_u16(a + 260 + 2 * sb));
        }
        return mag;
    }
    TRAITS[type].to_float(w, wf, n);
    TRAITS[dt].to_float(a, af, n);
    for (int i = 0; i < n; i++) mag += fabs((double)wf[i] * af[i]);
    return mag;
}

/* "dot_q4_0_avx2" for messages: the kernel's ISA and whether it is the
   table's own or its base's */
static const char *kname(const kernel_table *k, const char *what, int type, const void *fn, const void *ref) {
    static char buf[4][64];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, 64, "%s_%s_%s", what, type >= 0 ? type_size_of(type)->name : "", fn == ref ? "ref" : k->name);
    return b;
}

static void check_simd_dots(const kernel_table *kt) {
    static const struct {
        int type;
        vec_dot_fn ref;
    } cases[] = {
        {SLM_TYPE_F32, dot_f32_ref},   {SLM_TYPE_F16, dot_f16_ref},   {SLM_TYPE_BF16, dot_bf16_ref},
        {SLM_TYPE_Q8_0, dot_q8_0_ref}, {SLM_TYPE_Q4_0, dot_q4_0_ref}, {SLM_TYPE_Q4_1, dot_q4_1_ref},
        {SLM_TYPE_Q5_0, dot_q5_0_ref}, {SLM_TYPE_Q5_1, dot_q5_1_ref}, {SLM_TYPE_IQ4_NL, dot_iq4_nl_ref},
        {SLM_TYPE_Q2_K, dot_q2_k_ref}, {SLM_TYPE_Q3_K, dot_q3_k_ref}, {SLM_TYPE_Q4_K, dot_q4_k_ref},
        {SLM_TYPE_Q5_K, dot_q5_k_ref}, {SLM_TYPE_Q6_K, dot_q6_k_ref}, {SLM_TYPE_IQ4_XS, dot_iq4_xs_ref},
    };
    /* element counts for F32/F16/BF16; blocks of 32 and super-blocks of 256 */
    static const int lens[] = {1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 255, 256, 1000, 4096, 4099};
    static const int blocks[] = {1, 2, 3, 5, 7, 8, 9, 31, 33, 64, 128, 137};
    static const int supers[] = {1, 2, 3, 4, 5, 7, 11, 16, 17, 56};
    const int n_lens = (int)(sizeof lens / sizeof lens[0]), n_blocks = (int)(sizeof blocks / sizeof blocks[0]);
    const int n_supers = (int)(sizeof supers / sizeof supers[0]);
    uint64_t s = 7;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int type = cases[c].type, dt = TRAITS[type].dot_type, blk = type_size_of(type)->blck;
        const int nl = blk == 1 ? n_lens : blk == 32 ? n_blocks : n_supers;
        const vec_dot_fn dot = kt->dot[type], ref = cases[c].ref;
        const vec_dot4_fn dot4 = kt->dot4[type];
        const char *name = kname(kt, "dot", type, (const void *)dot, (const void *)ref);
        int bad = 0, bad4 = 0, runs = 0;
        double worst = 0;
        for (int li = 0; li < nl; li++) {
            const int n = blk == 1 ? lens[li] : blk == 32 ? 32 * blocks[li] : QK_K * supers[li];
            const size_t wrb = row_bytes(type, n), arb = row_bytes(dt, n) + 8; /* rows not 16-byte aligned */
            uint8_t *w = (uint8_t *)malloc(wrb), *a = (uint8_t *)malloc(4 * arb);
            float *wf = (float *)malloc(n * sizeof(float)), *af = (float *)malloc(n * sizeof(float));
            for (int rep = 0; rep < 6; rep++) {
                const int wc = rep % 3, ac = rep < 3 ? 0 : (rep + 1) % 3;
                rand_row(type, n, wc, 0, &s, w);
                for (int t = 0; t < 4; t++) rand_row(dt, n, ac, 1, &s, a + t * arb);
                float y4[12];
                if (dot4) dot4(n, w, a, arb, y4, 3);
                for (int t = 0; t < 4; t++) {
                    const double mag = dot_mag(type, w, a + t * arb, n, wf, af);
                    const float got = dot(n, w, a + t * arb), want = ref(n, w, a + t * arb);
                    const double k = blk == 1 ? n / 4.0 : (double)(n / blk);
                    const double err = fabs((double)got - want), unit = mag * ldexp(1.0, -24);
                    if (!(err <= (k + 8) * 2 * unit)) {
                        if (bad++ < 3) printf("  %s n=%d: simd %.9g ref %.9g (M %.3g)\n", name, n, got, want, mag);
                    }
                    if (unit > 0) worst = fmax(worst, err / unit);
                    if (dot4 && memcmp(&y4[3 * t], &got, sizeof got) != 0) bad4++;
                    runs++;
                }
            }
            free(w), free(a), free(wf), free(af);
        }
        printf("  dot %-6s %-18s %4d rows, max err %6.1f x 2^-24 M%s\n", type_size_of(type)->name, name, runs, worst,
               dot4 ? ", 4-token kernel checked" : "");
        CHECK(bad == 0, "%s: %d dot products beyond the bound", name, bad);
        CHECK(bad4 == 0, "%s: 4-token kernel differs from the 1-token kernel in %d results", name, bad4);
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

static void check_simd_conversions(const kernel_table *kt) {
    uint64_t s = 11;
    enum { N = 1027 };
    static float x[N], f1[N], f2[N];
    static uint8_t h1[2 * N], h2[2 * N];
    int bad_f16 = 0, bad_bf16 = 0, bad_f16b = 0, bad_bf16b = 0;
    for (int rep = 0; rep < 40; rep++) {
        const int n = rep == 0 ? N : 1 + (int)(t_rand(&s) % N);
        for (int i = 0; i < n; i++) x[i] = rand_bits_f32(&s);
        kt->from_float[SLM_TYPE_F16](x, h1, n);
        f16_from_float_ref(x, h2, n);
        for (int i = 0; i < n; i++) bad_f16 += !same_half(ld_u16(h1 + 2 * i), ld_u16(h2 + 2 * i));
        kt->from_float[SLM_TYPE_BF16](x, h1, n);
        bf16_from_float_ref(x, h2, n);
        bad_bf16 += memcmp(h1, h2, 2 * (size_t)n) != 0;
    }
    /* every half and every bf16 back to float */
    for (uint32_t h0 = 0; h0 < 65536; h0 += N) {
        const int n = (int)SLM_MIN(N, 65536 - h0);
        for (int i = 0; i < n; i++) st_u16(h1 + 2 * i, (uint16_t)(h0 + (uint32_t)i));
        kt->to_float[SLM_TYPE_F16](h1, f1, n);
        f16_to_float_ref(h1, f2, n);
        for (int i = 0; i < n; i++) bad_f16b += !same_f32(f1[i], f2[i]);
        kt->to_float[SLM_TYPE_BF16](h1, f1, n);
        bf16_to_float_ref(h1, f2, n);
        for (int i = 0; i < n; i++) bad_bf16b += !same_f32(f1[i], f2[i]);
    }
    printf("  f32->f16 %s, f32->bf16 %s, f16->f32 %s, bf16->f32 %s\n",
           kname(kt, "from", SLM_TYPE_F16, (const void *)kt->from_float[SLM_TYPE_F16], (const void *)f16_from_float_ref),
           kname(kt, "from", SLM_TYPE_BF16, (const void *)kt->from_float[SLM_TYPE_BF16], (const void *)bf16_from_float_ref),
           kname(kt, "to", SLM_TYPE_F16, (const void *)kt->to_float[SLM_TYPE_F16], (const void *)f16_to_float_ref),
           kname(kt, "to", SLM_TYPE_BF16, (const void *)kt->to_float[SLM_TYPE_BF16], (const void *)bf16_to_float_ref));
    CHECK(bad_f16 == 0, "f32->f16: %d values differ from the reference", bad_f16);
    CHECK(bad_bf16 == 0, "f32->bf16: %d rows differ from the reference", bad_bf16);
    CHECK(bad_f16b == 0, "f16->f32: %d halves differ from the reference", bad_f16b);
    CHECK(bad_bf16b == 0, "bf16->f32: %d values differ from the reference", bad_bf16b);
}

/* The activation quantizers (Q8_0, Q8_1, Q8_K): the same bytes as the
   references, ties, tiny blocks (whose inverse scale overflows) and the
   sign of the first extreme (Q8_K) included. */
static void check_simd_act(const kernel_table *kt) {
    static const struct {
        int type;
        from_float_fn ref;
    } fmts[] = {{SLM_TYPE_Q8_0, q8_0_from_float_ref}, {SLM_TYPE_Q8_1, q8_1_from_float_ref}, {SLM_TYPE_Q8_K, q8_k_from_float_ref}};
    enum { NV = 32 * 137 };
    static float x[NV];
    static uint8_t q1[292 * (NV / 256)], q2[292 * (NV / 256)]; /* the longest rows: Q8_K */
    uint64_t s = 5;
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        const int bs = type_size_of(fmts[f].type)->blck, max_nb = NV / bs;
        int bad = 0, rows = 0;
        for (int rep = 0; rep < 60; rep++) {
            const int nb = rep < 10 ? 1 + rep % max_nb : 1 + (int)(t_rand(&s) % (uint64_t)max_nb);
            for (int b = 0; b < nb; b++) {
                float *v = x + bs * b;
                const int kind = (int)(t_rand(&s) % 8);
                const float sc = kind == 1 ? 1e-20f : kind == 2 ? 1e30f : kind == 3 ? 3e-5f : kind == 6 ? 1e-38f : 1.0f;
                for (int j = 0; j < bs; j++) v[j] = t_randf(&s) * sc;
                if (kind == 4) { /* amax 127: the inverse scale is +-1, x.5 values are exact ties */
                    for (int j = 0; j < bs; j++) v[j] = (float)((int)(t_rand(&s) % 255) - 127) + (j & 1 ? 0.5f : 0.0f);
                    v[(int)(t_rand(&s) % (uint64_t)bs)] = (t_rand(&s) & 1) ? 127.0f : -127.0f;
                }
                if (kind == 5) { /* amax 63.5: inverse scale 2, x.25 values are ties */
                    for (int j = 0; j < bs; j++) v[j] = ((float)((int)(t_rand(&s) % 253) - 126) + 0.5f) * 0.5f;
                    v[3] = 63.5f;
                }
                if (kind == 7) { /* the extreme twice, with both signs: the first one counts */
                    const int j0 = (int)(t_rand(&s) % (uint64_t)bs), j1 = (int)(t_rand(&s) % (uint64_t)bs);
                    v[j0] = 3.0f, v[j1] = -3.0f;
                }
                if (t_rand(&s) % 8 == 0) memset(v, 0, sizeof(float) * (size_t)bs); /* an all-zero block */
            }
            const size_t rb = row_bytes(fmts[f].type, (int64_t)bs * nb);
            memset(q1, 0x55, rb), memset(q2, 0xaa, rb);
            kt->from_float[fmts[f].type](x, q1, (int64_t)bs * nb);
            fmts[f].ref(x, q2, (int64_t)bs * nb);
            bad += memcmp(q1, q2, rb) != 0;
            rows++;
        }
        printf("  %s activation quantizer %s: %d rows\n", type_size_of(fmts[f].type)->name,
               kname(kt, "from", fmts[f].type, (const void *)kt->from_float[fmts[f].type], (const void *)fmts[f].ref), rows);
        CHECK(bad == 0, "%s quantizer: %d rows differ from the reference", type_size_of(fmts[f].type)->name, bad);
    }
    /* round_even against the C library's rint (default rounding mode) */
    int ties = 0;
    for (int i = 0; i < 20000; i++) {
        float v = t_randf(&s) * 300.0f;
        if (i % 2) v = (float)((int)(t_rand(&s) % 401) - 200) + 0.5f;
        ties += round_even(v) != (int)rintf(v);
    }
    CHECK(ties == 0, "round_even differs from rintf in %d cases", ties);
}

/* x8 layouts (section 5): pack and unpack are inverse, and each x8 kernel
   gives, for every row of a group and 1-4 tokens, the reference dot of that
   row within the float-rounding bound used for the dot kernels. */
/* Q8_0 activation rows (arb bytes apart) as Q8_0X rows (axrb apart) */
static void q8_0x_rows(const uint8_t *a, size_t arb, int nt, int nb, uint8_t *ax, size_t axrb) {
    for (int t = 0; t < nt; t++)
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = a + t * arb + 34 * b;
            uint8_t *o = ax + t * axrb + 40 * b;
            int32_t sum = 0;
            for (int j = 0; j < 32; j++) sum += (int8_t)blk[2 + j];
            memcpy(o, blk + 2, 32);
            st_f32(o + 32, ld_f16(blk));
            st_u32(o + 36, (uint32_t)sum);
        }
}

static void check_x8(const kernel_table *kt) {
    /* Q8_0X carries exactly Q8_0's values and scale, and the block sums */
    {
        float x[32 * 9];
        uint8_t q[34 * 9], qx[40 * 9];
        uint64_t s0 = 5;
        int bad = 0;
        for (int i = 0; i < 32 * 9; i++) x[i] = t_randf(&s0) * (i < 32 ? 1e-3f : 3.0f);
        kt->from_float[SLM_TYPE_Q8_0](x, q, 32 * 9);
        q8_0x_from_float(kt, x, qx, 32 * 9);
        for (int b = 0; b < 9; b++) {
            int32_t sum = 0;
            for (int j = 0; j < 32; j++) sum += (int8_t)q[34 * b + 2 + j];
            bad += memcmp(qx + 40 * b, q + 34 * b + 2, 32) != 0 || ld_f32(qx + 40 * b + 32) != ld_f16(q + 34 * b) ||
                   (int32_t)ld_u32(qx + 40 * b + 36) != sum;
        }
        CHECK(bad == 0, "Q8_0X differs from Q8_0 in %d blocks", bad);
    }
    static const int types[] = {SLM_TYPE_Q4_0, SLM_TYPE_Q8_0, SLM_TYPE_Q5_0, SLM_TYPE_IQ4_NL};
    static const int blocks[] = {1, 2, 3, 7, 18, 33, 96};
    uint64_t s = 11;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int type = types[ti], dt = TRAITS[type].dot_type;
        gemm_x8_fn k = kt->gemm_x8[type];
        int bad_pack = 0, bad = 0, runs = 0, not_same = 0;
        double worst = 0;
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            const int n = 32 * blocks[bi];
            const size_t rb = row_bytes(type, n), arb = row_bytes(dt, n) + 6;
            uint8_t *w = (uint8_t *)malloc(8 * rb), *g = (uint8_t *)malloc(8 * rb), *back = (uint8_t *)malloc(rb);
            uint8_t *a = (uint8_t *)malloc(4 * arb);
            const size_t axrb = act_row_bytes(ACT_Q8_0X, n) + 8;
            uint8_t *ax = (uint8_t *)malloc(4 * axrb);
            float *wf = (float *)malloc((size_t)n * sizeof(float)), *af = (float *)malloc((size_t)n * sizeof(float));
            for (int rep = 0; rep < 4; rep++) {
                for (int r = 0; r < 8; r++) rand_row(type, n, (r + rep) % 3, 0, &s, w + r * rb);
                for (int t = 0; t < 4; t++) rand_row(dt, n, rep % 3, 1, &s, a + t * arb);
                /* the same activations as Q8_0X (section 5), for the x8 kernel */
                q8_0x_rows(a, arb, 4, blocks[bi], ax, axrb);
                x8_pack(type, w, rb, blocks[bi], g);
                for (int r = 0; r < 8; r++) {
                    x8_unpack_row(type, g, r, blocks[bi], back);
                    bad_pack += memcmp(back, w + r * rb, rb) != 0;
                }
                if (!k) continue;
                for (int nt = 1; nt <= 4; nt++) {
                    float y[4 * 9];
                    k(n, g, ax, axrb, nt, y, 9);
#ifdef SLM_NEON_I8MM
                    if (kt->isa == SLM_ISA_NEON_I8MM) { /* SMMLA gives the SDOT kernel's bits */
                        float y2[4 * 9];
                        KERNELS_DOTPROD.gemm_x8[type](n, g, ax, axrb, nt, y2, 9);
                        for (int t = 0; t < nt; t++) not_same += memcmp(y + t * 9, y2 + t * 9, 8 * sizeof(float)) != 0;
                    }
#endif
                    for (int t = 0; t < nt; t++)
                        for (int r = 0; r < 8; r++) {
                            const float ref = (type == SLM_TYPE_Q4_0    ? dot_q4_0_ref
                                               : type == SLM_TYPE_Q5_0  ? dot_q5_0_ref
                                               : type == SLM_TYPE_IQ4_NL ? dot_iq4_nl_ref
                                                                        : dot_q8_0_ref)(n, w + r * rb, a + t * arb);
                            const double mag = dot_mag(type, w + r * rb, a + t * arb, n, wf, af);
                            const double e = fabs((double)y[t * 9 + r] - ref) / (mag + 1e-300);
                            worst = e > worst ? e : worst;
                            bad += e > (blocks[bi] + 8) * 1.2e-7;
                            runs++;
                        }
                }
            }
            free(w), free(g), free(back), free(a), free(ax), free(wf), free(af);
        }
        CHECK(bad_pack == 0, "%s x8: %d rows do not survive pack + unpack", slm_type_name(type), bad_pack);
        if (k) {
            printf("  x8 %-5s %s: %d row results, max err %.1f x 2^-24 sum|w*a|\n", slm_type_name(type), kt->name, runs,
                   worst * 16777216.0);
            CHECK(bad == 0, "%s x8: %d of %d results off", slm_type_name(type), bad, runs);
            CHECK(not_same == 0, "%s x8 %s: %d token results differ from the dotprod kernel's", slm_type_name(type),
                  kt->name, not_same);
        }
    }
}

/* The many-row F16 kernel of attention: every (row, vector) pair has the
   bits of the one-row dot_f16 kernel with the vector as halves. */
static void check_dot_rows(const kernel_table *kt) {
    dot_rows_fn k = kt->dot_rows_f16;
    if (!k) return;
    static const int lens[] = {8, 24, 32, 40, 64, 72, 128, 200, 1000, 1003};
    uint64_t s = 21;
    int bad = 0, runs = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li], nrows = 5, stride = 2 * n + 6;
        for (int na = 1; na <= 7; na++) {
            uint8_t *rows = (uint8_t *)malloc((size_t)nrows * stride), *ah = (uint8_t *)malloc((size_t)na * 2 * n);
            float *a = (float *)malloc((size_t)na * (n + 3) * sizeof(float)), out[7 * 9];
            for (int r = 0; r < nrows; r++)
                for (int i = 0; i < n; i++) st_u16(rows + (size_t)r * stride + 2 * i, rand_half(&s, r == 1 ? 6e-5f : 2.0f));
            for (int j = 0; j < na; j++)
                for (int i = 0; i < n; i++) {
                    st_u16(ah + (size_t)j * 2 * n + 2 * i, rand_half(&s, j == 2 ? 60000.0f : 1.0f));
                    a[(size_t)j * (n + 3) + i] = ld_f16(ah + (size_t)j * 2 * n + 2 * i);
                }
            k(n, rows, (size_t)stride, nrows, a, (size_t)(n + 3), na, out, 9);
            for (int j = 0; j < na; j++)
                for (int r = 0; r < nrows; r++) {
                    const float want = kt->dot[SLM_TYPE_F16](n, rows + (size_t)r * stride, ah + (size_t)j * 2 * n);
                    bad += memcmp(&want, &out[j * 9 + r], sizeof want) != 0;
                    runs++;
                }
            free(rows), free(ah), free(a);
        }
    }
    printf("  dot_rows F16 %s: %d results\n", kt->name, runs);
    CHECK(bad == 0, "dot_rows F16 %s: %d of %d results differ from dot_f16", kt->name, bad, runs);
}

/* softmax's exponentials: the SIMD version within 2 ulp of expf for
   arguments down to -87.3 (0 below), the sum within float rounding. */
static void check_exp_sum(const kernel_table *kt) {
    if (kt->exp_sum == exp_sum_ref) return;
    enum { N = 1003 };
    static float x[N], y[N];
    uint64_t s = 5;
    int bad = 0;
    double worst = 0;
    for (int rep = 0; rep < 20; rep++) {
        const float mx = t_randf(&s) * 50.0f;
        for (int i = 0; i < N; i++) x[i] = y[i] = mx - (float)(t_rand(&s) % 1000000) * (rep < 10 ? 1e-4f : 1e-3f);
        x[rep] = y[rep] = mx;
        const int n = N - rep;
        const double a = kt->exp_sum(x, n, mx), b = exp_sum_ref(y, n, mx);
        for (int i = 0; i < n; i++) {
            const float arg = y[i] == 0 ? -100.0f : logf(y[i]);
            if (arg < -87.2f) continue; /* near the flush-to-zero limit */
            const double e = fabs((double)x[i] - y[i]) / y[i];
            worst = e > worst ? e : worst;
            bad += e > 2.5e-7;
        }
        bad += fabs(a - b) > 1e-6 * b;
    }
    printf("  exp (softmax) %s: max rel err %.2e vs expf\n", kt->name, worst);
    CHECK(bad == 0, "exp_sum %s: %d values or sums off", kt->name, bad);
}

/* scale_max (flash attention's scores): the products and their maximum
   the reference's bits, every length 0..70 (tails) and a long row, values
   of either sign, -0 and a NaN among them. */
static void check_scale_max(const kernel_table *kt) {
    if (kt->scale_max == scale_max_ref) return;
    enum { N = 517 };
    static float x[N], y[N];
    uint64_t s = 9;
    int bad = 0;
    for (int n = 0; n <= N; n += n < 70 ? 1 : N - 70) {
        for (int rep = 0; rep < 3; rep++) {
            const float scale = rep == 2 ? 0.125f : t_randf(&s) * 3.0f;
            for (int i = 0; i < n; i++) x[i] = y[i] = t_randf(&s) * (rep ? 40.0f : 1e30f);
            if (n > 5) x[n / 3] = y[n / 3] = -0.0f, x[n / 2] = y[n / 2] = rep == 1 ? NAN : x[n / 2];
            const float a = kt->scale_max(x, n, scale), b = scale_max_ref(y, n, scale);
            bad += memcmp(&a, &b, sizeof a) != 0 && !(a == 0 && b == 0);
            bad += memcmp(x, y, (size_t)n * sizeof(float)) != 0;
        }
    }
    CHECK(bad == 0, "scale_max %s: %d maxima or products differ from the reference", kt->name, bad);
}

/* SwiGLU: the SIMD silu(g) * u within 4 ulp of the reference's over the
   range where it matters, exact 0/x at the ends, NaN kept; and the sum of
   squares of RMSNorm within double rounding. Odd lengths for the tails. */
static void check_swiglu_sumsq(const kernel_table *kt) {
    enum { N = 1037 };
    static float g[N], h[N], h2[N], u[N];
    uint64_t s = 11;
    int bad = 0;
    double worst = 0;
    if (kt->swiglu != swiglu_ref) {
        for (int rep = 0; rep < 12; rep++) {
            const float span = rep < 4 ? 4.0f : rep < 8 ? 30.0f : 120.0f;
            for (int i = 0; i < N; i++) {
                g[i] = h[i] = t_randf(&s) * span;
                u[i] = t_randf(&s) * (rep % 3 == 2 ? 1e30f : 2.0f);
            }
            g[0] = h[0] = 0.0f, g[1] = h[1] = -0.0f, g[2] = h[2] = 200.0f, g[3] = h[3] = -200.0f;
            g[4] = h[4] = 1e-30f, g[5] = h[5] = NAN, g[6] = h[6] = 88.5f, g[7] = h[7] = -88.5f;
            memcpy(h2, h, sizeof h);
            const int n = N - rep;
            kt->swiglu(g, u, n);
            swiglu_ref(h, u, n);
            for (int i = 0; i < n; i++) {
                if (isnan(h[i])) {
                    bad += !isnan(g[i]);
                    continue;
                }
                const double d = fabs((double)g[i] - h[i]), e = d / SLM_MAX(fabs((double)h[i]), 1e-37);
                if (h2[i] > -87.0f && fabs((double)h[i]) > 1e-30) worst = e > worst ? e : worst;
                /* below -87.3 exp flushes to 0: silu is under 1e-35 there */
                const int off = e > 5e-7 && d > 1e-35 * fabs((double)u[i]);
                if (off && bad < 5) printf("  swiglu %s: g %g u %g: %g, want %g\n", kt->name, (double)h2[i], (double)u[i], (double)g[i], (double)h[i]);
                bad += off;
            }
            if (rep > 0) bad += g[N - rep] != h[N - rep]; /* past the end: untouched */
        }
        printf("  swiglu %s: max rel err %.2e (inputs above -87)\n", kt->name, worst);
        CHECK(bad == 0, "swiglu %s: %d values off", kt->name, bad);
    }
    if (kt->sumsq != sumsq_ref) {
        bad = 0;
        for (int n = 0; n < 300; n += 7) {
            for (int i = 0; i < n; i++) g[i] = t_randf(&s) * (n % 2 ? 1e3f : 1e-3f);
            const double a = kt->sumsq(g, n), b = sumsq_ref(g, n);
            bad += fabs(a - b) > 1e-14 * b;
        }
        CHECK(bad == 0, "sumsq %s: %d sums off", kt->name, bad);
    }
}

/* The default thread count: at least 1, at most 8, OMP_NUM_THREADS when set. */
static void set_env(const char *k, const char *v) {
#ifdef _WIN32
    _putenv_s(k, v ? v : "");
#else
    if (v) setenv(k, v, 1);
    else unsetenv(k);
#endif
}

static void check_default_threads(void) {
    const char *old = getenv("OMP_NUM_THREADS");
    char keep[64] = "";
    if (old) snprintf(keep, sizeof keep, "%s", old);
    set_env("OMP_NUM_THREADS", NULL);
    const int d = default_threads();
    CHECK(d >= 1 && d <= 8, "default thread count %d", d);
#if SLM_OPENMP
    CHECK(d <= omp_get_num_procs(), "default thread count %d above %d processors", d, omp_get_num_procs());
    set_env("OMP_NUM_THREADS", "3");
    CHECK(default_threads() == 3, "OMP_NUM_THREADS=3 gives %d threads", default_threads());
    set_env("OMP_NUM_THREADS", "1,2");
    CHECK(default_threads() == 1, "OMP_NUM_THREADS=1,2 gives %d threads", default_threads());
    set_env("OMP_NUM_THREADS", "zero");
    CHECK(default_threads() == d, "OMP_NUM_THREADS=zero gives %d threads, not the default %d", default_threads(), d);
#else
    CHECK(d == 1, "%d threads without OpenMP", d);
#endif
#if defined(__linux__) && !defined(SLM_NO_STDIO)
    uint8_t set[4] = {0};
    cpu_list_parse("0-2,5,30-40\n", set, 32);
    CHECK(set[0] == 0x27 && set[1] == 0 && set[3] == 0xc0, "cpu list parsed as %02x %02x %02x %02x", set[0], set[1],
          set[2], set[3]);
#endif
    set_env("OMP_NUM_THREADS", old ? keep : NULL);
    printf("  default threads: %d\n", d);
}

#if SLM_OPENMP
/* Decode's choice of width (forward_width / width_done) on simulated pass
   times: phase 0 a busy machine (n threads: 22-36 ms by scheduler ticks,
   1 thread 24 ms, 34 ms right after a pass at n threads), phase 1 a quiet
   one (n threads 14 ms, 1 thread 24 ms). */
static double width_sim_ms(int phase, int slot, int prev, unsigned *r) {
    *r = *r * 1103515245u + 12345u;
    if (phase == 1) return slot ? 14.0 : 24.0;
    if (slot) return 22.0 + 4.0 * (double)((*r >> 16) % 4); /* 22, 26, 30, 34: mean 28 */
    return prev == 1 ? 34.0 : 24.0;
}

static void check_width_choice(void) {
    static slm_session s; /* only n_threads and width are read */
    for (int start = 0; start < 2; start++) {
        memset(&s, 0, sizeof s);
        s.n_threads = 2;
        s.width.prev = -1;
        unsigned r = 7u + (unsigned)start;
        double t[2] = {0, 0};
        int at_n[2] = {0, 0}, switched = -1, bad_slot = 0;
        const int N = 3000;
        for (int i = 0; i < 2 * N; i++) {
            const int phase = (i >= N) ^ start, slot_prev = s.width.prev;
            int slot;
            const int width = forward_width(&s, 1, &slot);
            bad_slot += slot != (width > 1);
            const double ms = width_sim_ms(phase, slot, slot_prev, &r);
            width_done(&s.width, slot, ms);
            t[i >= N] += ms;
            at_n[i >= N] += slot;
            if (!start && phase == 1 && slot && switched < 0) switched = i - N;
        }
        CHECK(!bad_slot, "%d passes ran at a width other than their slot's", bad_slot);
        for (int h = 0; h < 2; h++) {
            const int phase = h ^ start;
            /* the better width every pass: 24 ms busy, 14 ms quiet */
            const double ideal = N * (phase ? 14.0 : 24.0);
            CHECK(t[h] <= ideal * (h == 0 ? 1.03 : 1.04) + (h && phase ? 600 * 10.0 : 0),
                  "%s machine (%s): %.0f ms against %.0f at the better width, %d of %d passes at n threads",
                  phase ? "quiet" : "busy", h ? "second" : "first", t[h], ideal, at_n[h], N);
        }
        printf("  decode width, %s: %.3f and %.3f of the better width's time, %d and %d of %d passes at n threads\n",
               start ? "quiet then busy" : "busy then quiet", t[0] / (N * (start ? 14.0 : 24.0)),
               t[1] / (N * (start ? 24.0 : 14.0)), at_n[0], at_n[1], N);
        if (start) continue;
        printf("  decode width: n threads again %d passes after the machine became quiet\n", switched);
        CHECK(switched >= 0 && switched <= 600, "went back to n threads %d passes after the machine became quiet",
              switched);
    }
    CHECK(forward_width(&s, 5, &(int){0}) == 2, "a batch runs at n threads");
}
#endif

#include "test_kernels_avx512.c"
#include "test_kernels_gemm.c"
#include "test_kernels_kx8.c"
#include "test_kernels_kgemm.c"
#include "test_attention.c"
#include "test_scan.c"
#include "test_repack.c"

void test_kernels(void) {
    printf("  simd path: %s\n", kernels_find(SLM_ISA_BEST)->name);
    printf("  build: %s\n", slm_build_info());
    check_halves();
    check_q8_act();
    check_act_formats();
    check_types();
    check_onehot();
    check_writer_fallbacks();
    check_kx8_layout();
    check_x8_pack_bytes();
    check_default_threads();
#if SLM_OPENMP
    check_width_choice();
#endif
#if !defined(SLM_NO_THREADS) /* (bare metal: no model files to load) */
    check_repack_threads();
#endif
    /* every kernel table this build has and this CPU runs, against the
       references; the ones it cannot run are named and skipped */
    for (int isa = SLM_ISA_SCALAR + 1; isa < SLM_ISA_COUNT; isa++) {
        const kernel_table *t = NULL;
        for (size_t i = 0; i < N_KERNEL_TABLES; i++)
            if (KERNEL_TABLES[i]->isa == isa) t = KERNEL_TABLES[i];
        if (!t) continue;
        if (!slm_isa_available(isa)) {
            printf("  kernels %s: compiled in, this CPU cannot run them: skipped\n", t->name);
            continue;
        }
        static kernel_table kt; /* large: not on the stack */
        kernels_resolve(t, &kt);
        printf("  kernels %s:\n", kt.name);
        check_simd_conversions(&kt);
        check_simd_act(&kt);
        check_simd_dots(&kt);
        check_x8(&kt);
        check_gemm16(&kt);
        check_kx8(&kt);
        check_kgemm16(&kt);
        check_gemm16_long(&kt);
        check_dot_rows(&kt);
        check_exp_sum(&kt);
        check_scale_max(&kt);
        check_swiglu_sumsq(&kt);
        check_attention(&kt);
    }
    check_avx512();
    check_scan();
}

/* The SLM_NO_STDIO message formatter (section 2) against the C library's
   vsnprintf on the conversions slm's messages use. Called by suite embed. */
static int own_sn(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = fmt_vsn_own(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void test_embed_fmt(void) {
    char a[256], b[256];
    int bad = 0, total = 0;
#define FMT_CASE(...)                                                             \
    do {                                                                          \
        int na = own_sn(a, sizeof a, __VA_ARGS__), nb = snprintf(b, sizeof b, __VA_ARGS__); \
        total++;                                                                  \
        if (na != nb || strcmp(a, b) != 0) {                                      \
            bad++;                                                                \
            printf("  fmt: own '%s' (%d) vs libc '%s' (%d)\n", a, na, b, nb);     \
        }                                                                         \
    } while (0)
    FMT_CASE("plain text, 100%% sure");
    FMT_CASE("%d %d %d %i", 0, -1, 2147483647, (-2147483647 - 1));
    FMT_CASE("%u %x %X %02x %02X %08x", 4000000000u, 0xbeefu, 0xbeefu, 5u, 0xabu, 0x1234u);
    FMT_CASE("%lld %llu %4llu %ld %lu", -9223372036854775807LL, 18446744073709551615ULL, 7ULL, -5L, 6UL);
    /* newlib built without C99 formats (arm-none-eabi 12.2) prints "%zu" as "zu" */
    if (snprintf(b, sizeof b, "%zu", (size_t)5) == 1 && b[0] == '5')
        FMT_CASE("%zu %zu %5zu|%-5zu|", (size_t)0, (size_t)123456789, (size_t)42, (size_t)42);
    else
        printf("  libc snprintf has no %%zu: that case is skipped\n");
    FMT_CASE("%s|%10s|%-10s|%.3s|%.*s|%-32s|%-6s", "abc", "right", "left", "truncate", 2, "xyz", "name", "Q4_0");
    FMT_CASE("%c%c%c \\x%02x", 'a', '"', '\\', 7);
    FMT_CASE("%5d|%-5d|%05d|%+d|% d", 42, 42, -42, 42, 42);
    FMT_CASE("%.5d %3.2d", 42, 7);
    FMT_CASE("%*d|%-*d", 6, 1, 6, 2);
    FMT_CASE("%10.3f -> %8.3f MiB", 1234.56789, 0.0004);
    FMT_CASE("%f %.0f %.1f %.1f %.2f %f", 0.0, 2.5, 0.25, 0.07, -1.005, 1e10);
    const double gs[] = {0, 1, -1, 0.5, 1e-5, 1e-4, 1.5e-4, 0.001, 3.14159265, 10000, 100000, 1e6, 123456789,
                         1e20, 1e-20, 9.999995, 999999.5, 0.1, 2.0 / 3, 1e-5f, 500000, 10000.0f, 1.0e-6f, 5e-324,
                         1.7976931348623157e308};
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) FMT_CASE("%g|%g", gs[i], -gs[i]);
    FMT_CASE("%e %e %.3e", 12345.678, 0.0, 1e-300);
    FMT_CASE("%g %g", HUGE_VAL, -HUGE_VAL);
    FMT_CASE("%s=%g, %s", "rope.freq_base", 10000.0, "done");
#undef FMT_CASE
    /* truncation: the return value counts what would have been written */
    int n = own_sn(a, 5, "%s", "abcdefgh");
    CHECK(n == 8 && strcmp(a, "abcd") == 0, "truncated: '%s' (%d)", a, n);
    n = own_sn(NULL, 0, "%d", 12345);
    CHECK(n == 5, "count only: %d", n);
    CHECK(bad == 0, "own formatter: %d of %d cases differ from snprintf", bad, total);
    printf("  own formatter: %d cases equal to snprintf\n", total - bad);
}
