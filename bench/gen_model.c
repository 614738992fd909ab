/*
 * gen_model: write benchmark models with random weights and the exact shapes
 * of real small models, as GGUF files: an F16 file written here, then Q8_0,
 * Q4_0 and Q4_K_M made from it with slm's own quantizer (slm_quantize_file).
 * bench/compare.sh asks for the F16 file only when it is given llama.cpp's
 * llama-quantize, and quantizes with that, as published files are made.
 * Files are generated at bench time and never committed.
 *
 *   gen_model SHAPE DIR [TYPES]     SHAPE: smollm2-135m | qwen2.5-0.5b | llama3.2-1b |
 *                                          qwen3.5-0.8b | lfm2-1.2b | smollm3-3b |
 *                                          olmo2-1b | granite3.3-2b | granite4.0-h-350m |
 *                                          qwen3-0.6b | gemma3-1b | gemma2-2b | phi3-mini
 *                                          bge-small (a BERT encoder, for embeddings)
 *                                   TYPES: comma list of F16,Q8_0,Q4_0,Q4_K_M (default all)
 *
 * The vocabulary is a SentencePiece-style list of the right size (<unk>, <s>,
 * </s>, 256 byte tokens, then filler pieces), so both slm and llama.cpp load
 * the files; the benchmarks feed token ids directly.
 */
#include "../slm.h"
#include "../tests/gguf_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    const char *name, *arch;
    int n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base, eps;
    int qkv_bias, tied, rope_freqs; /* rope_freqs: llama3 rope scaling, as rope_freqs.weight */
    /* 2026 hybrids: HYB_QWEN35 (3 Gated DeltaNet layers, then 1 gated
       attention layer) or HYB_LFM2 (short conv layers, attention where
       attn_mask has the layer's bit) */
    int hybrid, head_dim, n_rot;
    int ssm_k_heads, ssm_v_heads, ssm_head; /* qwen35 linear attention; granitehybrid: groups, heads, head size */
    unsigned attn_mask;
    /* the 2026 dense families and Granite 4.0-H */
    int ssm_state;  /* granitehybrid: Mamba2 state size */
    int post_norm;  /* olmo2: post-norms only, q/k norms over the whole projection, untied output */
    int no_rope;    /* granitehybrid: rope.scaling.finetuned = false (no positional encoding) */
    float emb_scale, resid_scale, attn_scale, logit_scale; /* granite multipliers (0: key not written) */
    /* the 2024-25 families beside llama and qwen2 */
    int qk_norm;      /* qwen3, gemma3: per-head q/k RMSNorm */
    int gemma;        /* 2: gemma2, 3: gemma3 (norms after the sub-blocks too, sliding-window layers) */
    int swa, swa_pattern; /* sliding window; gemma3: every swa_pattern-th layer is global */
    float swa_base, attn_softcap, final_softcap; /* gemma3: rope base of the local layers; gemma2 soft-capping */
    int fused;        /* phi3: attn_qkv and ffn_up (gate | up) fused */
} shape;

enum { HYB_NONE = 0, HYB_QWEN35 = 1, HYB_LFM2 = 2, HYB_GRANITEH = 3 };

static const shape SHAPES[] = {
    {.name = "smollm2-135m", .arch = "llama", .n_layer = 30, .n_embd = 576, .n_ff = 1536, .n_head = 9,
     .n_head_kv = 3, .n_vocab = 49152, .n_ctx = 8192, .rope_base = 100000.0f, .eps = 1e-5f, .tied = 1},
    {.name = "qwen2.5-0.5b", .arch = "qwen2", .n_layer = 24, .n_embd = 896, .n_ff = 4864, .n_head = 14,
     .n_head_kv = 2, .n_vocab = 151936, .n_ctx = 32768, .rope_base = 1000000.0f, .eps = 1e-6f, .qkv_bias = 1,
     .tied = 1},
    /* Llama-3.2-1B (its config.json): hidden 2048, 16 layers, 32 heads of 64,
       8 KV heads, FFN 8192, vocabulary 128256, tied embeddings, rope theta
       500000 with llama3 scaling (factor 32, low/high frequency factors 1/4,
       original context 8192) */
    {.name = "llama3.2-1b", .arch = "llama", .n_layer = 16, .n_embd = 2048, .n_ff = 8192, .n_head = 32,
     .n_head_kv = 8, .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000.0f, .eps = 1e-5f, .tied = 1,
     .rope_freqs = 1},
    /* Qwen3.5-0.8B: 24 layers (every 4th gated attention, 8 heads of 256, 2
       KV heads, rope on 64 dims), linear attention 16 q/k and 16 v heads of
       128, conv kernel 4; FFN 3584; vocabulary 248320, tied */
    {.name = "qwen3.5-0.8b", .arch = "qwen35", .n_layer = 24, .n_embd = 1024, .n_ff = 3584, .n_head = 8,
     .n_head_kv = 2, .n_vocab = 248320, .n_ctx = 262144, .rope_base = 10000000.0f, .eps = 1e-6f, .tied = 1,
     .hybrid = HYB_QWEN35, .head_dim = 256, .n_rot = 64, .ssm_k_heads = 16, .ssm_v_heads = 16, .ssm_head = 128},
    /* LFM2-1.2B: 16 layers, attention at 2, 5, 8, 10, 12, 14 (32 heads of
       64, 8 KV heads), short convs (l_cache 3) elsewhere; FFN 8192 (12288
       auto-adjusted); vocabulary 65536, tied */
    {.name = "lfm2-1.2b", .arch = "lfm2", .n_layer = 16, .n_embd = 2048, .n_ff = 8192, .n_head = 32,
     .n_head_kv = 8, .n_vocab = 65536, .n_ctx = 128000, .rope_base = 1000000.0f, .eps = 1e-5f, .tied = 1,
     .hybrid = HYB_LFM2, .head_dim = 64, .n_rot = 64,
     .attn_mask = (1u << 2) | (1u << 5) | (1u << 8) | (1u << 10) | (1u << 12) | (1u << 14)},
    /* SmolLM3-3B (HuggingFaceTB/SmolLM3-3B, its model card and config as
       published at apxml.com/models/smollm3-3b and in SmolLM3ForCausalLM
       fine-tunes' config.json): hidden 2048, 36 layers, 16 heads of 128, 4 KV
       heads, FFN 11008, vocabulary 128256, tied, rope theta 5e6, RMS eps
       1e-6, 65536 positions; no rope in every 4th layer (no_rope_layer_interval
       4: llama.cpp hard-codes it, no GGUF key) */
    {.name = "smollm3-3b", .arch = "smollm3", .n_layer = 36, .n_embd = 2048, .n_ff = 11008, .n_head = 16,
     .n_head_kv = 4, .n_vocab = 128256, .n_ctx = 65536, .rope_base = 5000000.0f, .eps = 1e-6f, .tied = 1,
     .head_dim = 128},
    /* OLMo-2-0425-1B (allenai's model card: 16 layers, hidden 2048, 16
       heads, context 4096; the OLMo 2 family's config.json (7B, 13B):
       num_key_value_heads = num_attention_heads, vocabulary 100352, rope theta
       500000, RMS eps 1e-6, tie_word_embeddings false). FFN 8192: no 1B
       config.json was found; 8192 (4 x hidden) as in OLMo-1B-hf's config,
       labelled as the closest documented shape */
    {.name = "olmo2-1b", .arch = "olmo2", .n_layer = 16, .n_embd = 2048, .n_ff = 8192, .n_head = 16,
     .n_head_kv = 16, .n_vocab = 100352, .n_ctx = 4096, .rope_base = 500000.0f, .eps = 1e-6f, .tied = 0,
     .head_dim = 128, .post_norm = 1},
    /* granite-3.3-2b-instruct (ibm-granite; the Granite 3.x 2B config.json
       as quoted for granite-3.1-2b and for granite-speech-4.1-2b's language
       model, which is Granite 3.3 2B): hidden 2048, 40 layers, 32 heads of
       64, 8 KV heads, FFN 8192, vocabulary 49159, tied, rope theta 1e7, RMS
       eps 1e-5, 131072 positions; embedding_multiplier 12, residual_multiplier
       0.22, attention_multiplier 0.015625, logits_scaling 8 */
    {.name = "granite3.3-2b", .arch = "granite", .n_layer = 40, .n_embd = 2048, .n_ff = 8192, .n_head = 32,
     .n_head_kv = 8, .n_vocab = 49159, .n_ctx = 131072, .rope_base = 10000000.0f, .eps = 1e-5f, .tied = 1,
     .head_dim = 64, .emb_scale = 12.0f, .resid_scale = 0.22f, .attn_scale = 0.015625f, .logit_scale = 8.0f},
    /* granite-4.0-h-350m (ibm-granite; its config.json as mirrored in
       GraniteMoeHybrid projects' tests): hidden 768, 32 layers, attention at
       10, 13, 17, 27 (12 heads of 64, 4 KV heads, no positional encoding),
       Mamba2 elsewhere: 48 heads of 32 (expand 2: inner 1536), state 128, 1
       group, conv 4 with bias; dense shared FFN 2048 (no experts);
       vocabulary 100352, tied, RMS eps 1e-5, 32768 positions;
       embedding_multiplier 12, residual_multiplier 0.246,
       attention_multiplier 0.015625, logits_scaling 3 */
    {.name = "granite4.0-h-350m", .arch = "granitehybrid", .n_layer = 32, .n_embd = 768, .n_ff = 2048,
     .n_head = 12, .n_head_kv = 4, .n_vocab = 100352, .n_ctx = 32768, .rope_base = 10000.0f, .eps = 1e-5f,
     .tied = 1, .hybrid = HYB_GRANITEH, .head_dim = 64, .ssm_k_heads = 1, .ssm_v_heads = 48, .ssm_head = 32,
     .attn_mask = (1u << 10) | (1u << 13) | (1u << 17) | (1u << 27), .ssm_state = 128, .no_rope = 1,
     .emb_scale = 12.0f, .resid_scale = 0.246f, .attn_scale = 0.015625f, .logit_scale = 3.0f},
    /* Qwen3-0.6B (Qwen/Qwen3-0.6B config.json, as copied in
       huggingface.co/TensorStack/TextEncoder Qwen-3-06B/config.json): hidden
       1024, 28 layers, 16 heads of 128, 8 KV heads, FFN 3072, vocabulary
       151936, tied, rope theta 1e6, RMS eps 1e-6, 40960 positions; q/k norms */
    {.name = "qwen3-0.6b", .arch = "qwen3", .n_layer = 28, .n_embd = 1024, .n_ff = 3072, .n_head = 16,
     .n_head_kv = 8, .n_vocab = 151936, .n_ctx = 40960, .rope_base = 1000000.0f, .eps = 1e-6f, .tied = 1,
     .head_dim = 128, .qk_norm = 1},
    /* gemma-3-1b (google/gemma-3-1b-pt config.json, as in
       huggingface.co/mlx-community/gemma-3-1b-pt-6bit): hidden 1152, 26
       layers, 4 heads of 256, 1 KV head, FFN 6912, vocabulary 262144, tied,
       rope theta 1e6 (global layers) and 10000 (local), sliding window 512,
       pattern 6 (every 6th layer global), query_pre_attn_scalar 256 (=
       head size), RMS eps 1e-6, 32768 positions; q/k norms */
    {.name = "gemma3-1b", .arch = "gemma3", .n_layer = 26, .n_embd = 1152, .n_ff = 6912, .n_head = 4,
     .n_head_kv = 1, .n_vocab = 262144, .n_ctx = 32768, .rope_base = 1000000.0f, .eps = 1e-6f, .tied = 1,
     .head_dim = 256, .qk_norm = 1, .gemma = 3, .swa = 512, .swa_pattern = 6, .swa_base = 10000.0f},
    /* gemma-2-2b (google/gemma-2-2b config.json, as copied in
       huggingface.co/PrunaAI/google-gemma-2-2b-HQQ-1bit-smashed): hidden 2304, 26 layers, 8
       heads of 256, 4 KV heads, FFN 9216, vocabulary 256000, tied, rope
       theta 10000, sliding window 4096 (every other layer), attention
       soft-capping 50, final 30, query_pre_attn_scalar 256, RMS eps 1e-6,
       8192 positions */
    {.name = "gemma2-2b", .arch = "gemma2", .n_layer = 26, .n_embd = 2304, .n_ff = 9216, .n_head = 8,
     .n_head_kv = 4, .n_vocab = 256000, .n_ctx = 8192, .rope_base = 10000.0f, .eps = 1e-6f, .tied = 1,
     .head_dim = 256, .gemma = 2, .swa = 4096, .attn_softcap = 50.0f, .final_softcap = 30.0f},
    /* Phi-3-mini-4k-instruct (microsoft; its config.json, as duplicated in
       huggingface.co/Alignment-Lab-AI/idfkphi4kiguess): hidden 3072, 32
       layers, 32 heads of 96 (no GQA), FFN 8192, vocabulary 32064, separate
       output, rope theta 10000, RMS eps 1e-5, 4096 positions (its sliding
       window 2047 is not written: no effect on these tests) */
    {.name = "phi3-mini", .arch = "phi3", .n_layer = 32, .n_embd = 3072, .n_ff = 8192, .n_head = 32,
     .n_head_kv = 32, .n_vocab = 32064, .n_ctx = 4096, .rope_base = 10000.0f, .eps = 1e-5f, .tied = 0,
     .head_dim = 96, .fused = 1},
};

/* Is layer il attention (not a recurrent layer)? */
static int is_attn(const shape *sh, int il) {
    if (sh->hybrid == HYB_QWEN35) return (il + 1) % 4 == 0;
    if (sh->hybrid == HYB_LFM2 || sh->hybrid == HYB_GRANITEH) return (sh->attn_mask >> il) & 1u;
    return 1;
}

typedef struct tdesc {
    char name[64];
    int n_dims;
    int64_t ne0, ne1;
    int type;     /* SLM_TYPE_F32 for vectors, F16 for matrices */
    float scale;  /* uniform in [-scale, scale] around `center` */
    float center;
} tdesc;

static uint64_t rng = 0x243f6a8885a308d3ull;
static float frand(void) { /* uniform [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 4503599627370496.0 - 1.0);
}

/* Llama 3 rope scaling as GGUF converters store it (rope_freqs.weight, one
   divisor per rotated pair): wavelengths shorter than 8192/4 keep their
   frequency, longer than 8192/1 are divided by 32, in between a smooth blend. */
static float llama3_rope_factor(int i, int n_rot, float base) {
    const double factor = 32.0, lo = 1.0, hi = 4.0, old_ctx = 8192.0, pi = 3.14159265358979323846;
    const double freq = pow((double)base, -2.0 * i / n_rot), wavelen = 2.0 * pi / freq;
    if (wavelen < old_ctx / hi) return 1.0f;
    if (wavelen > old_ctx / lo) return (float)factor;
    const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
    return (float)(1.0 / ((1.0 - smooth) / factor + smooth));
}

static int n_kv; /* key/value pairs written, patched into the header */
static void kv_key(gbuf *b, const char *k, uint32_t type) {
    gb_str(b, k);
    gb_u32(b, type);
    n_kv++;
}
static void kv_str(gbuf *b, const char *k, const char *v) { kv_key(b, k, 8); gb_str(b, v); }
static void kv_u32(gbuf *b, const char *k, uint32_t v) { kv_key(b, k, 4); gb_u32(b, v); }
static void kv_f32(gbuf *b, const char *k, float v) { kv_key(b, k, 6); gb_f32(b, v); }
static void kv_arr(gbuf *b, const char *k, uint32_t type, uint64_t n) {
    kv_key(b, k, 9);
    gb_u32(b, type);
    gb_u64(b, n);
}
static void kv_bool(gbuf *b, const char *k, int v) {
    unsigned char c = (unsigned char)v;
    kv_key(b, k, 7);
    gb_put(b, &c, 1);
}

/* The file: b's key/values (their count patched into the header), the
   directory of the nt tensors t, then their data, random rows converted to
   each tensor's type, every tensor 32-byte aligned. sh (NULL: none) gives
   rope_freqs.weight its Llama 3 factors for head size hd. Frees b and t. */
static int write_gguf(gbuf *b, tdesc *t, int nt, const shape *sh, int64_t hd, const char *path) {
    for (int i = 0; i < 8; i++) b->p[16 + i] = (unsigned char)((uint64_t)n_kv >> (8 * i));
    uint64_t off = 0;
    int64_t widest = 1;
    for (int i = 0; i < nt; i++) {
        gb_str(b, t[i].name);
        gb_u32(b, (uint32_t)t[i].n_dims);
        gb_u64(b, (uint64_t)t[i].ne0);
        if (t[i].n_dims == 2) gb_u64(b, (uint64_t)t[i].ne1);
        gb_u32(b, (uint32_t)t[i].type);
        gb_u64(b, off);
        off += slm_row_bytes(t[i].type, t[i].ne0) * (uint64_t)t[i].ne1;
        off = (off + 31) & ~(uint64_t)31;
        if (t[i].ne0 > widest) widest = t[i].ne0;
    }
    gb_pad(b, 32);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b->p, 1, b->n, f) == b->n;
    free(b->p);
    float *row = (float *)malloc(sizeof(float) * (size_t)widest);  /* (widest,) */
    unsigned char *out = (unsigned char *)malloc(sizeof(float) * (size_t)widest); /* one row, F32 at most */
    ok = ok && row && out;
    uint64_t pos = 0;
    for (int i = 0; i < nt && ok; i++) {
        for (int64_t r = 0; r < t[i].ne1 && ok; r++) {
            for (int64_t j = 0; j < t[i].ne0; j++) row[j] = t[i].center + t[i].scale * frand();
            if (sh && !strcmp(t[i].name, "rope_freqs.weight"))
                for (int64_t j = 0; j < t[i].ne0; j++) row[j] = llama3_rope_factor((int)j, (int)hd, sh->rope_base);
            size_t rb = slm_row_bytes(t[i].type, t[i].ne0);
            ok = slm_quantize_row(t[i].type, row, out, t[i].ne0) == SLM_OK && fwrite(out, 1, rb, f) == rb;
            pos += rb;
        }
        static const char zeros[32];
        size_t padn = (size_t)((32 - pos % 32) % 32);
        ok = ok && fwrite(zeros, 1, padn, f) == padn;
        pos += padn;
    }
    free(row);
    free(out);
    free(t);
    return f && fclose(f) == 0 && ok;
}

static int write_f16(const shape *sh, const char *path) {
    tdesc *t = (tdesc *)calloc((size_t)sh->n_layer * 16 + 8, sizeof *t);
    int nt = 0;
    const int64_t E = sh->n_embd, F = sh->n_ff, hd = sh->head_dim ? sh->head_dim : sh->n_embd / sh->n_head;
    const int64_t Q = sh->n_head * hd, KV = sh->n_head_kv * hd;
    const float ws = 0.02f * 1.7320508f; /* uniform with std 0.02 */
#define T(nm, nd, a, b, ty, sc, c) (snprintf(t[nt].name, 64, "%s", nm), t[nt].n_dims = nd, t[nt].ne0 = a, \
                                    t[nt].ne1 = b, t[nt].type = ty, t[nt].scale = sc, t[nt].center = c, nt++)
    T("token_embd.weight", 2, E, sh->n_vocab, SLM_TYPE_F16, ws, 0.0f);
    T(sh->hybrid == HYB_LFM2 ? "token_embd_norm.weight" : "output_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
    if (!sh->tied) T("output.weight", 2, E, sh->n_vocab, SLM_TYPE_F16, ws, 0.0f);
    if (sh->rope_freqs) T("rope_freqs.weight", 1, hd / 2, 1, SLM_TYPE_F32, 0.0f, 1.0f);
    for (int il = 0; il < sh->n_layer; il++) {
        char n[64];
#define L(s, nd, a, b, ty, sc, c) (snprintf(n, 64, "blk.%d.%s", il, s), T(n, nd, a, b, ty, sc, c))
        if (!sh->post_norm) L("attn_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
        if (sh->hybrid) {
            const int64_t KD = (int64_t)sh->ssm_k_heads * sh->ssm_head, VD = (int64_t)sh->ssm_v_heads * sh->ssm_head;
            const int64_t NV = sh->ssm_v_heads;
            L(sh->hybrid == HYB_QWEN35 ? "post_attention_norm.weight" : "ffn_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f,
              1.0f);
            L("ffn_gate.weight", 2, E, F, SLM_TYPE_F16, ws, 0.0f);
            L("ffn_up.weight", 2, E, F, SLM_TYPE_F16, ws, 0.0f);
            L("ffn_down.weight", 2, F, E, SLM_TYPE_F16, ws, 0.0f);
            if (sh->hybrid == HYB_GRANITEH && is_attn(sh, il)) {
                L("attn_q.weight", 2, E, Q, SLM_TYPE_F16, ws, 0.0f);
                L("attn_k.weight", 2, E, KV, SLM_TYPE_F16, ws, 0.0f);
                L("attn_v.weight", 2, E, KV, SLM_TYPE_F16, ws, 0.0f);
                L("attn_output.weight", 2, Q, E, SLM_TYPE_F16, ws, 0.0f);
            } else if (sh->hybrid == HYB_GRANITEH) {
                /* Mamba2: ssm_in gives z (inner) | xBC (inner + 2 groups x
                   state) | dt (heads); inner = heads x head size */
                const int64_t NG = sh->ssm_k_heads, NS = sh->ssm_state, XBC = VD + 2 * NG * NS;
                L("ssm_in.weight", 2, E, VD + XBC + NV, SLM_TYPE_F16, ws, 0.0f);
                L("ssm_conv1d.weight", 2, 4, XBC, SLM_TYPE_F32, 0.3f, 0.0f);
                L("ssm_conv1d.bias", 1, XBC, 1, SLM_TYPE_F32, 0.1f, 0.0f);
                L("ssm_dt.bias", 1, NV, 1, SLM_TYPE_F32, 1.0f, 0.0f);
                L("ssm_a", 2, 1, NV, SLM_TYPE_F32, 0.5f, -1.0f);
                L("ssm_d", 2, 1, NV, SLM_TYPE_F32, 0.1f, 0.3f);
                L("ssm_norm.weight", 2, VD / NG, NG, SLM_TYPE_F32, 0.1f, 1.0f);
                L("ssm_out.weight", 2, VD, E, SLM_TYPE_F16, ws, 0.0f);
            } else if (is_attn(sh, il)) {
                const int gate = sh->hybrid == HYB_QWEN35 ? 2 : 1; /* qwen35: query | gate */
                L("attn_q.weight", 2, E, gate * Q, SLM_TYPE_F16, ws, 0.0f);
                L("attn_k.weight", 2, E, KV, SLM_TYPE_F16, ws, 0.0f);
                L("attn_v.weight", 2, E, KV, SLM_TYPE_F16, ws, 0.0f);
                L("attn_output.weight", 2, Q, E, SLM_TYPE_F16, ws, 0.0f);
                L("attn_q_norm.weight", 1, hd, 1, SLM_TYPE_F32, 0.1f, 1.0f);
                L("attn_k_norm.weight", 1, hd, 1, SLM_TYPE_F32, 0.1f, 1.0f);
            } else if (sh->hybrid == HYB_LFM2) {
                L("shortconv.in_proj.weight", 2, E, 3 * E, SLM_TYPE_F16, ws, 0.0f);
                L("shortconv.conv.weight", 2, 3, E, SLM_TYPE_F32, 0.3f, 0.0f);
                L("shortconv.out_proj.weight", 2, E, E, SLM_TYPE_F16, ws, 0.0f);
            } else {
                L("attn_qkv.weight", 2, E, 2 * KD + VD, SLM_TYPE_F16, ws, 0.0f);
                L("attn_gate.weight", 2, E, VD, SLM_TYPE_F16, ws, 0.0f);
                L("ssm_beta.weight", 2, E, NV, SLM_TYPE_F16, ws, 0.0f);
                L("ssm_alpha.weight", 2, E, NV, SLM_TYPE_F16, ws, 0.0f);
                L("ssm_conv1d.weight", 2, 4, 2 * KD + VD, SLM_TYPE_F32, 0.3f, 0.0f);
                L("ssm_a", 1, NV, 1, SLM_TYPE_F32, 0.5f, -1.0f);
                L("ssm_dt.bias", 1, NV, 1, SLM_TYPE_F32, 1.0f, 0.0f);
                L("ssm_norm.weight", 1, sh->ssm_head, 1, SLM_TYPE_F32, 0.1f, 1.0f);
                L("ssm_out.weight", 2, VD, E, SLM_TYPE_F16, ws, 0.0f);
            }
            continue;
        }
        if (sh->fused) {
            L("attn_qkv.weight", 2, E, Q + 2 * KV, SLM_TYPE_F16, ws, 0.0f);
        } else {
            L("attn_q.weight", 2, E, Q, SLM_TYPE_F16, ws, 0.0f);
            L("attn_k.weight", 2, E, KV, SLM_TYPE_F16, ws, 0.0f);
            L("attn_v.weight", 2, E, KV, SLM_TYPE_F16, ws, 0.0f);
        }
        if (sh->qk_norm) {
            L("attn_q_norm.weight", 1, hd, 1, SLM_TYPE_F32, 0.1f, 1.0f);
            L("attn_k_norm.weight", 1, hd, 1, SLM_TYPE_F32, 0.1f, 1.0f);
        }
        if (sh->qkv_bias) {
            L("attn_q.bias", 1, Q, 1, SLM_TYPE_F32, 0.02f, 0.0f);
            L("attn_k.bias", 1, KV, 1, SLM_TYPE_F32, 0.02f, 0.0f);
            L("attn_v.bias", 1, KV, 1, SLM_TYPE_F32, 0.02f, 0.0f);
        }
        L("attn_output.weight", 2, Q, E, SLM_TYPE_F16, ws, 0.0f);
        if (sh->post_norm) { /* olmo2: q/k norms over all heads together, norms after the sub-blocks */
            L("attn_q_norm.weight", 1, Q, 1, SLM_TYPE_F32, 0.1f, 1.0f);
            L("attn_k_norm.weight", 1, KV, 1, SLM_TYPE_F32, 0.1f, 1.0f);
            L("post_attention_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
            L("post_ffw_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
        } else {
            L("ffn_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
        }
        if (sh->gemma) { /* norms of the attention and FFN outputs as well */
            L("post_attention_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
            L("post_ffw_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
        }
        if (sh->fused) {
            L("ffn_up.weight", 2, E, 2 * F, SLM_TYPE_F16, ws, 0.0f); /* gate | up */
        } else {
            L("ffn_gate.weight", 2, E, F, SLM_TYPE_F16, ws, 0.0f);
            L("ffn_up.weight", 2, E, F, SLM_TYPE_F16, ws, 0.0f);
        }
        L("ffn_down.weight", 2, F, E, SLM_TYPE_F16, ws, 0.0f);
#undef L
    }
#undef T
    gbuf b = {0, 0, 0};
    char key[128];
    gb_u32(&b, 0x46554747u);
    gb_u32(&b, 3);
    gb_u64(&b, (uint64_t)nt);
    gb_u64(&b, 0); /* key count, patched below */
    n_kv = 0;
    kv_str(&b, "general.architecture", sh->arch);
    kv_str(&b, "general.name", sh->name);
    kv_u32(&b, "general.file_type", 1);
#define AK(s) (snprintf(key, sizeof key, "%s.%s", sh->arch, s), key)
    kv_u32(&b, AK("context_length"), (uint32_t)sh->n_ctx);
    kv_u32(&b, AK("embedding_length"), (uint32_t)E);
    kv_u32(&b, AK("block_count"), (uint32_t)sh->n_layer);
    kv_u32(&b, AK("feed_forward_length"), (uint32_t)F);
    kv_u32(&b, AK("attention.head_count"), (uint32_t)sh->n_head);
    if (sh->hybrid == HYB_LFM2 || sh->hybrid == HYB_GRANITEH) { /* per layer, 0 = short conv or Mamba2 */
        kv_arr(&b, AK("attention.head_count_kv"), 5, (uint64_t)sh->n_layer);
        for (int il = 0; il < sh->n_layer; il++) gb_u32(&b, is_attn(sh, il) ? (uint32_t)sh->n_head_kv : 0);
    } else {
        kv_u32(&b, AK("attention.head_count_kv"), (uint32_t)sh->n_head_kv);
    }
    kv_u32(&b, AK("rope.dimension_count"), (uint32_t)(sh->n_rot ? sh->n_rot : hd));
    if (sh->head_dim) {
        kv_u32(&b, AK("attention.key_length"), (uint32_t)hd);
        kv_u32(&b, AK("attention.value_length"), (uint32_t)hd);
    }
    if (sh->hybrid == HYB_QWEN35) {
        kv_u32(&b, AK("full_attention_interval"), 4);
        /* IMRoPE sections of the rotated pairs (text-only: t, h, w all
           follow the position); llama.cpp requires the key */
        const uint32_t pairs = (uint32_t)(sh->n_rot ? sh->n_rot : hd) / 2, s0 = (pairs + 2) / 3, s1 = (pairs + 1) / 3;
        kv_arr(&b, AK("rope.dimension_sections"), 5, 4);
        gb_u32(&b, s0), gb_u32(&b, s1), gb_u32(&b, pairs - s0 - s1), gb_u32(&b, 0);
        kv_u32(&b, AK("ssm.conv_kernel"), 4);
        kv_u32(&b, AK("ssm.inner_size"), (uint32_t)(sh->ssm_v_heads * sh->ssm_head));
        kv_u32(&b, AK("ssm.state_size"), (uint32_t)sh->ssm_head);
        kv_u32(&b, AK("ssm.time_step_rank"), (uint32_t)sh->ssm_v_heads);
        kv_u32(&b, AK("ssm.group_count"), (uint32_t)sh->ssm_k_heads);
    } else if (sh->hybrid == HYB_LFM2) {
        kv_u32(&b, AK("shortconv.l_cache"), 3);
    } else if (sh->hybrid == HYB_GRANITEH) {
        kv_u32(&b, AK("ssm.conv_kernel"), 4);
        kv_u32(&b, AK("ssm.inner_size"), (uint32_t)(sh->ssm_v_heads * sh->ssm_head));
        kv_u32(&b, AK("ssm.state_size"), (uint32_t)sh->ssm_state);
        kv_u32(&b, AK("ssm.time_step_rank"), (uint32_t)sh->ssm_v_heads);
        kv_u32(&b, AK("ssm.group_count"), (uint32_t)sh->ssm_k_heads);
    }
    if (sh->no_rope) kv_bool(&b, AK("rope.scaling.finetuned"), 0);
    if (sh->swa) kv_u32(&b, AK("attention.sliding_window"), (uint32_t)sh->swa);
    if (sh->swa_pattern) kv_u32(&b, AK("attention.sliding_window_pattern"), (uint32_t)sh->swa_pattern);
    if (sh->swa_base != 0.0f) kv_f32(&b, AK("rope.swa_freq_base"), sh->swa_base);
    if (sh->attn_softcap != 0.0f) kv_f32(&b, AK("attn_logit_softcapping"), sh->attn_softcap);
    if (sh->final_softcap != 0.0f) kv_f32(&b, AK("final_logit_softcapping"), sh->final_softcap);
    if (sh->logit_scale != 0.0f) {
        kv_f32(&b, AK("embedding_scale"), sh->emb_scale);
        kv_f32(&b, AK("residual_scale"), sh->resid_scale);
        kv_f32(&b, AK("logit_scale"), sh->logit_scale);
        kv_f32(&b, AK("attention.scale"), sh->attn_scale);
    }
    kv_f32(&b, AK("rope.freq_base"), sh->rope_base);
    kv_f32(&b, AK("attention.layer_norm_rms_epsilon"), sh->eps);
    kv_u32(&b, AK("vocab_size"), (uint32_t)sh->n_vocab);
#undef AK
    /* vocabulary: <unk> <s> </s>, <0x00>..<0xFF>, fillers; phi3 has
       <|endoftext|> at 32000 as the real one (llama.cpp's loader looks it up
       for a model named phi3) */
    const int eot = !strcmp(sh->arch, "phi3") ? 32000 : -1;
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_arr(&b, "tokenizer.ggml.tokens", 8, (uint64_t)sh->n_vocab);
    for (int i = 0; i < sh->n_vocab; i++) {
        char p[32];
        if (i < 3) snprintf(p, sizeof p, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259) snprintf(p, sizeof p, "<0x%02X>", i - 3);
        else if (i == eot) snprintf(p, sizeof p, "<|endoftext|>");
        else snprintf(p, sizeof p, "\xe2\x96\x81t%d", i);
        gb_str(&b, p);
    }
    kv_arr(&b, "tokenizer.ggml.scores", 6, (uint64_t)sh->n_vocab);
    for (int i = 0; i < sh->n_vocab; i++) gb_f32(&b, i < 259 ? 0.0f : -(float)i);
    kv_arr(&b, "tokenizer.ggml.token_type", 5, (uint64_t)sh->n_vocab);
    for (int i = 0; i < sh->n_vocab; i++) gb_u32(&b, i == 0 ? 2 : i < 3 || i == eot ? 3 : i < 259 ? 6 : 1);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(&b, "tokenizer.ggml.unknown_token_id", 0);
    kv_bool(&b, "tokenizer.ggml.add_bos_token", 1);
    kv_bool(&b, "tokenizer.ggml.add_eos_token", 0);
    return write_gguf(&b, t, nt, sh, hd, path);
}

/* ---- bge-small: a BERT encoder with the shape of bge-small-en-v1.5 ----------
   (12 layers, 384 wide, 12 heads, FFN 1536, 512 positions, WordPiece
   vocabulary of 30522 with [PAD] [UNK] [CLS] [SEP] [MASK] at llama.cpp's
   default ids, CLS pooling), for the embedding benchmark. */
static int write_bert_f16(const char *path) {
    enum { E = 384, F = 1536, NL = 12, NH = 12, NV = 30522, NP = 512 };
    tdesc *t = (tdesc *)calloc(NL * 16 + 8, sizeof *t);
    int nt = 0;
    const float ws = 0.02f * 1.7320508f;
#define T(nm, nd, a, b, ty, sc, c) (snprintf(t[nt].name, 64, "%s", nm), t[nt].n_dims = nd, t[nt].ne0 = a, \
                                    t[nt].ne1 = b, t[nt].type = ty, t[nt].scale = sc, t[nt].center = c, nt++)
    T("token_embd.weight", 2, E, NV, SLM_TYPE_F16, ws, 0.0f);
    T("token_types.weight", 2, E, 2, SLM_TYPE_F32, ws, 0.0f);
    T("position_embd.weight", 2, E, NP, SLM_TYPE_F32, ws, 0.0f);
    T("token_embd_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
    T("token_embd_norm.bias", 1, E, 1, SLM_TYPE_F32, 0.02f, 0.0f);
    for (int il = 0; il < NL; il++) {
        char n[64];
#define L(s, nd, a, b, ty, sc, c) (snprintf(n, 64, "blk.%d.%s", il, s), T(n, nd, a, b, ty, sc, c))
        L("attn_q.weight", 2, E, E, SLM_TYPE_F16, ws, 0.0f);
        L("attn_q.bias", 1, E, 1, SLM_TYPE_F32, 0.02f, 0.0f);
        L("attn_k.weight", 2, E, E, SLM_TYPE_F16, ws, 0.0f);
        L("attn_k.bias", 1, E, 1, SLM_TYPE_F32, 0.02f, 0.0f);
        L("attn_v.weight", 2, E, E, SLM_TYPE_F16, ws, 0.0f);
        L("attn_v.bias", 1, E, 1, SLM_TYPE_F32, 0.02f, 0.0f);
        L("attn_output.weight", 2, E, E, SLM_TYPE_F16, ws, 0.0f);
        L("attn_output.bias", 1, E, 1, SLM_TYPE_F32, 0.02f, 0.0f);
        L("attn_output_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
        L("attn_output_norm.bias", 1, E, 1, SLM_TYPE_F32, 0.02f, 0.0f);
        L("ffn_up.weight", 2, E, F, SLM_TYPE_F16, ws, 0.0f);
        L("ffn_up.bias", 1, F, 1, SLM_TYPE_F32, 0.02f, 0.0f);
        L("ffn_down.weight", 2, F, E, SLM_TYPE_F16, ws, 0.0f);
        L("ffn_down.bias", 1, E, 1, SLM_TYPE_F32, 0.02f, 0.0f);
        L("layer_output_norm.weight", 1, E, 1, SLM_TYPE_F32, 0.1f, 1.0f);
        L("layer_output_norm.bias", 1, E, 1, SLM_TYPE_F32, 0.02f, 0.0f);
#undef L
    }
#undef T
    gbuf b = {0, 0, 0};
    gb_u32(&b, 0x46554747u);
    gb_u32(&b, 3);
    gb_u64(&b, (uint64_t)nt);
    gb_u64(&b, 0);
    n_kv = 0;
    kv_str(&b, "general.architecture", "bert");
    kv_str(&b, "general.name", "bge-small");
    kv_u32(&b, "general.file_type", 1);
    kv_u32(&b, "bert.context_length", NP);
    kv_u32(&b, "bert.embedding_length", E);
    kv_u32(&b, "bert.block_count", NL);
    kv_u32(&b, "bert.feed_forward_length", F);
    kv_u32(&b, "bert.attention.head_count", NH);
    kv_f32(&b, "bert.attention.layer_norm_epsilon", 1e-12f);
    kv_bool(&b, "bert.attention.causal", 0);
    kv_u32(&b, "bert.pooling_type", 2);
    kv_str(&b, "tokenizer.ggml.model", "bert");
    kv_str(&b, "tokenizer.ggml.pre", "bert-bge");
    kv_arr(&b, "tokenizer.ggml.tokens", 8, NV);
    for (int i = 0; i < NV; i++) {
        char p[32];
        if (i == 0) snprintf(p, sizeof p, "[PAD]");
        else if (i >= 100 && i <= 103) snprintf(p, sizeof p, "%s", i == 100 ? "[UNK]" : i == 101 ? "[CLS]" : i == 102 ? "[SEP]" : "[MASK]");
        else snprintf(p, sizeof p, i % 2 ? "\xe2\x96\x81w%d" : "w%d", i);
        gb_str(&b, p);
    }
    kv_arr(&b, "tokenizer.ggml.token_type", 5, NV);
    for (int i = 0; i < NV; i++) gb_u32(&b, i == 0 || (i >= 100 && i <= 103) ? 3 : 1);
    return write_gguf(&b, t, nt, NULL, 0, path);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: gen_model SHAPE DIR [F16,Q8_0,Q4_0,Q4_K_M]\n  shapes:");
        for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) fprintf(stderr, " %s", SHAPES[i].name);
        fprintf(stderr, " bge-small\n");
        return 1;
    }
    const shape *sh = NULL;
    static const shape BGE = {.name = "bge-small", .arch = "bert", .n_layer = 12, .n_embd = 384, .n_ff = 1536,
                              .n_head = 12, .n_head_kv = 12, .n_vocab = 30522, .n_ctx = 512, .eps = 1e-12f};
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        if (!strcmp(argv[1], SHAPES[i].name)) sh = &SHAPES[i];
    if (!strcmp(argv[1], BGE.name)) sh = &BGE;
    if (!sh) {
        fprintf(stderr, "gen_model: unknown shape '%s'\n", argv[1]);
        return 1;
    }
    const char *types = argc > 3 ? argv[3] : "F16,Q8_0,Q4_0,Q4_K_M";
    char f16[1024];
    snprintf(f16, sizeof f16, "%s/%s-F16.gguf", argv[2], sh->name);
    FILE *probe = fopen(f16, "rb");
    if (probe) {
        fclose(probe);
    } else {
        printf("gen_model: writing %s\n", f16);
        fflush(stdout);
        if (!(sh == &BGE ? write_bert_f16(f16) : write_f16(sh, f16))) {
            fprintf(stderr, "gen_model: cannot write %s\n", f16);
            remove(f16);
            return 1;
        }
    }
    char list[256];
    snprintf(list, sizeof list, "%s", types);
    for (char *tk = strtok(list, ","); tk; tk = strtok(NULL, ",")) {
        if (!strcmp(tk, "F16")) continue;
        char out[1024];
        snprintf(out, sizeof out, "%s/%s-%s.gguf", argv[2], sh->name, tk);
        probe = fopen(out, "rb");
        if (probe) {
            fclose(probe);
            continue;
        }
        slm_quantize_params qp;
        slm_quantize_params_init(&qp);
        if (slm_quantize_parse_type(tk, &qp.type, &qp.mix) != SLM_OK) {
            fprintf(stderr, "gen_model: unknown type '%s'\n", tk);
            return 1;
        }
        slm_error err;
        printf("gen_model: writing %s\n", out);
        fflush(stdout);
        if (slm_quantize_file(f16, out, &qp, NULL, &err) != SLM_OK) {
            fprintf(stderr, "gen_model: %s\n", err.message);
            remove(out);
            return 1;
        }
    }
    return 0;
}
