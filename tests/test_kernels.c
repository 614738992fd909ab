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
                            double near = INFINITY;
                            for (int k = 0; k < nl; k++) near = fmin(near, fabs((double)w[i] - lv[k]));
                            bound = near + amax / 512.0 + 128.0 / 16777216.0;
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
    q8_k_from_float(x, q, 256);
    CHECK(ld_f32(q) == 1.0f / (-127.0f / 2.0f) && (int8_t)q[4 + 77] == -127, "Q8_K: extreme -> -127, d = 1/iscale");
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
    q8_k_from_float(x, q, 256);
    bad = 0;
    for (int i = 0; i < 292; i++) bad += q[i] != 0;
    CHECK(bad == 0, "Q8_K: a zero block is all zero (d, qs and bsums)");

    for (int i = 0; i < 32; i++) x[i] = t_randf(&s) * 3.0f;
    q8_1_from_float(x, q, 32);
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
    q8_0_from_float(x, q, 32);
    CHECK(ld_u16(q) == 0 && q[2] == 0, "all-zero block");
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.5f;
    x[31] = 127.0f * 0.5f;
    q8_0_from_float(x, q, 32);
    CHECK(fp16_to_f32(ld_u16(q)) == 0.5f, "scale");
    CHECK((int8_t)q[2] == -16 && (int8_t)q[33] == 127 && (int8_t)q[18] == 0, "values");
}

/* The GGUF writer, and slm_quantize_file's fallbacks for rows that do not
   fit a type's block: a synthetic file with rows of 96 and 100 values. */
static void check_writer_fallbacks(void) {
    char in[480], out[512];
    const char *tmp = getenv("TMPDIR");
    static int salt;
    snprintf(in, sizeof in, "%s/slm-wtest-%lx.gguf", tmp && *tmp ? tmp : "/tmp", (unsigned long)(size_t)&salt ^ (unsigned long)time(NULL));
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
            f16_from_float(vals[t], f16, n);
            f16_to_float(f16, vals[t], n); /* what the file holds */
            gw_write_data(&w, f16, (size_t)n * 2);
        } else {
            gw_write_data(&w, vals[t], (size_t)n * 4);
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
        CHECK(st.n_fallback == 2 && st.n_converted == 3, "fallbacks %d, converted %d", st.n_fallback, st.n_converted);
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
        CHECK(kv && kv->count == 3 && !strcmp(kv->str[1], "hello") && !strcmp(kv->str[2], ""), "string array copied");
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

void test_kernels(void) {
    check_halves();
    check_q8_act();
    check_act_formats();
    check_types();
    check_onehot();
    check_writer_fallbacks();
}
