/* Repacking at load (slm.c section 5: x8_pack, repack_weights).
   Included by test_kernels.c (one translation unit includes slm.c).
   - x8_pack gives the bytes of the byte-at-a-time pack it replaced (kept
     here as the reference, x8_pack_bytewise) for every x8 type, on random
     bytes (every bit pattern), 1-7 blocks, rows at a stride wider than a row;
   - a model file loaded with the repack split over threads holds, matrix
     by matrix, the bytes of a single-threaded x8_pack of the file's rows. */

/* --- the byte-at-a-time pack of slm.c before its word-at-a-time one ---- */
static void iq4_xsx8_pack_bytewise(const uint8_t *src, size_t rb, int nb, uint8_t *dst) {
    for (int b = 0; b < nb; b++) {
        uint8_t *o = dst + (size_t)b * 1088;
        memset(o + 16, 0, 48); /* the scale bytes are or-ed */
        for (int r = 0; r < 8; r++) {
            const uint8_t *q = src + (size_t)r * rb + (size_t)b * 136, *qs = q + 8;
            memcpy(o + 2 * r, q, 2);
            for (int s = 0; s < 8; s++) {
                const int u = ((q[4 + s / 2] >> (4 * (s % 2))) & 15) | ((ld_u16(q + 2) >> (2 * s)) & 3) << 4, p = KX8_POS(s, r);
                o[16 + p] |= (uint8_t)((u & 15) << (4 * (s / 4)));
                o[48 + p % 16] |= (uint8_t)((u >> 4) << (4 * (s / 4) + 2 * (p / 16)));
                uint8_t nib[32];
                for (int k = 0; k < 16; k++) nib[k] = qs[16 * s + k] & 15, nib[k + 16] = qs[16 * s + k] >> 4;
                for (int c = 0; c < 4; c++)
                    for (int j = 0; j < 4; j++)
                        o[64 + 128 * s + 32 * c + 4 * r + j] = (uint8_t)(nib[8 * c + j] | nib[8 * c + 4 + j] << 4);
            }
        }
    }
}

static void kx8_pack_bytewise(int type, const uint8_t *src, size_t rb, int nb, uint8_t *dst) {
    if (type == SLM_TYPE_IQ4_XS) {
        iq4_xsx8_pack_bytewise(src, rb, nb, dst);
        return;
    }
    const int bb = x8_block_bytes(type), sb = bb / 8, q5 = type == SLM_TYPE_Q5_K, sbb = q5 ? 160 : 128;
    for (int b = 0; b < nb; b++) {
        uint8_t *o = dst + (size_t)b * (size_t)bb;
        if (type != SLM_TYPE_Q6_K) memset(o + 96, 0, 32); /* the high-bit bytes are or-ed */
        for (int r = 0; r < 8; r++) {
            const uint8_t *q = src + (size_t)r * rb + (size_t)b * (size_t)sb;
            if (type != SLM_TYPE_Q6_K) {
                memcpy(o + 2 * r, q, 2);
                memcpy(o + 16 + 2 * r, q + 2, 2);
                for (int s = 0; s < 8; s++) {
                    int sc, m;
                    k4_scale_min(q + 4, s, &sc, &m);
                    o[32 + 32 * (s / 4) + KX8_POS(s, r)] = (uint8_t)((sc & 15) | (m & 15) << 4);
                    o[96 + KX8_POS(s, r)] |= (uint8_t)(((sc >> 4) | (m >> 4) << 2) << (4 * (s / 4)));
                }
                const uint8_t *qs = q + (q5 ? 48 : 16), *qh = q + 16;
                for (int s = 0; s < 8; s++) { /* sub-block s: nibble s % 2 of qs[32 (s / 2) + l], bit s of qh[l] */
                    uint8_t *os = o + 128 + sbb * s;
                    for (int c = 0; c < 4; c++)
                        for (int j = 0; j < 4; j++) {
                            const int lo = (qs[32 * (s / 2) + 8 * c + j] >> (4 * (s % 2))) & 15;
                            const int hi = (qs[32 * (s / 2) + 8 * c + 4 + j] >> (4 * (s % 2))) & 15;
                            os[(q5 ? 32 : 0) + 32 * c + 4 * r + j] = (uint8_t)(lo | hi << 4);
                        }
                    if (q5)
                        for (int j = 0; j < 4; j++) {
                            uint8_t h = 0;
                            for (int c = 0; c < 4; c++)
                                h |= (uint8_t)(((qh[8 * c + j] >> s) & 1) << c | ((qh[8 * c + 4 + j] >> s) & 1) << (4 + c));
                            os[4 * r + j] = h;
                        }
                }
            } else { /* Q6_K */
                const uint8_t *ql = q, *qh = q + 128;
                memcpy(o + 2 * r, q + 208, 2);
                for (int s = 0; s < 16; s++) o[16 + 16 * (s / 2) + 2 * r + s % 2] = q[192 + s];
                for (int p = 0; p < 8; p++) { /* columns 32p + l: i = 128h + 32k + l with p = 4h + k */
                    const int h = p / 4, k = p % 4;
                    uint8_t *op = o + 144 + 192 * p;
                    uint8_t v[32];
                    for (int l = 0; l < 32; l++)
                        v[l] = (uint8_t)(((ql[64 * h + 32 * (k & 1) + l] >> (4 * (k / 2))) & 15) |
                                         ((qh[32 * h + l] >> (2 * k)) & 3) << 4);
                    for (int c = 0; c < 4; c++)
                        for (int j = 0; j < 4; j++) {
                            const int lo = v[8 * c + j], hi = v[8 * c + 4 + j];
                            op[32 * c + 4 * r + j] = (uint8_t)((lo & 15) | (hi & 15) << 4);
                            uint8_t *hb = op + 128 + 32 * (c / 2) + 4 * r + j;
                            if (c % 2 == 0) *hb = 0;
                            *hb |= (uint8_t)(((lo >> 4) | (hi >> 4) << 2) << (4 * (c % 2)));
                        }
                }
            }
        }
    }
}

static void x8_pack_bytewise(int type, const uint8_t *src, size_t rb, int nb, uint8_t *dst) {
    if (is_kx8(type)) {
        kx8_pack_bytewise(type, src, rb, nb, dst);
        return;
    }
    const int bb = x8_block_bytes(type), sb = bb / 8; /* group block, GGUF block */
    const int q5 = type == SLM_TYPE_Q5_0, qs_at = q5 ? 6 : 2, nib_at = q5 ? 48 : 16;
    for (int b = 0; b < nb; b++) {
        uint8_t *o = dst + (size_t)b * (size_t)bb;
        for (int r = 0; r < 8; r++) {
            const uint8_t *q = src + (size_t)r * rb + (size_t)b * (size_t)sb;
            memcpy(o + 2 * r, q, 2);
            if (type == SLM_TYPE_Q8_0) {
                for (int st = 0; st < 8; st++) memcpy(o + 16 + 32 * st + 4 * r, q + 2 + 4 * st, 4);
                continue;
            }
            uint8_t nib[32];
            for (int k = 0; k < 16; k++) nib[k] = q[qs_at + k] & 15, nib[k + 16] = q[qs_at + k] >> 4;
            for (int c = 0; c < 4; c++) /* columns 8c + j and 8c + 4 + j */
                for (int j = 0; j < 4; j++) o[nib_at + 32 * c + 4 * r + j] = (uint8_t)(nib[8 * c + j] | (nib[8 * c + 4 + j] << 4));
            if (q5) {
                const uint32_t qh = ld_u32(q + 2);
                for (int j = 0; j < 4; j++) {
                    uint8_t h = 0;
                    for (int c = 0; c < 4; c++)
                        h |= (uint8_t)(((qh >> (8 * c + j)) & 1) << c | ((qh >> (8 * c + 4 + j)) & 1) << (4 + c));
                    o[16 + 4 * r + j] = h;
                }
            }
        }
    }
}

/* x8_pack against x8_pack_bytewise: the same bytes, every x8 type */
static void check_x8_pack_bytes(void) {
    static const int types[] = {SLM_TYPE_Q4_0,  SLM_TYPE_Q8_0, SLM_TYPE_Q5_0, SLM_TYPE_IQ4_NL,
                                SLM_TYPE_Q4_K,  SLM_TYPE_Q5_K, SLM_TYPE_Q6_K, SLM_TYPE_IQ4_XS};
    uint64_t s = 29;
    int bad = 0, runs = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int type = types[ti], bb = x8_block_bytes(type);
        for (int nb = 1; nb <= 7; nb++) {
            const size_t rb = (size_t)nb * (size_t)(bb / 8) + (size_t)(nb % 3) * 5; /* a wider stride at times */
            uint8_t *w = (uint8_t *)malloc(8 * rb), *g = (uint8_t *)malloc((size_t)nb * bb);
            uint8_t *g2 = (uint8_t *)malloc((size_t)nb * bb); /* [nb][bb] each */
            for (int rep = 0; rep < 4; rep++) {
                for (size_t i = 0; i < 8 * rb; i++) w[i] = (uint8_t)t_rand(&s);
                if (rep == 3) /* saturated bytes: all nibbles and high bits set or clear */
                    for (size_t i = 0; i < 8 * rb; i++) w[i] = (uint8_t)(t_rand(&s) % 2 ? 0xff : 0x00);
                memset(g, 0xa5, (size_t)nb * bb); /* no byte may be left as it was */
                memset(g2, 0x5a, (size_t)nb * bb);
                x8_pack(type, w, rb, nb, g);
                x8_pack_bytewise(type, w, rb, nb, g2);
                bad += memcmp(g, g2, (size_t)nb * bb) != 0;
                runs++;
            }
            free(w), free(g), free(g2);
        }
    }
    printf("  x8_pack: %d groups of 8 types, %d differ from the byte-at-a-time pack\n", runs, bad);
    CHECK(bad == 0, "x8_pack: %d of %d groups differ from the byte-at-a-time pack", bad, runs);
}

#if !defined(SLM_NO_THREADS) /* (bare metal: no model files to load) */
/* A loaded model's matrices against the file's: each the file's rows as
   they are, or (x8 set) x8_pack_bytewise's groups of them. */
static int repack_differs(const slm_model *m, const slm_model *ref) {
    const weight *a[2 + 13 * 64], *r[2 + 13 * 64];
    int n = 0, bad = 0;
    if (m->n_layer > 64) return -1;
    a[n] = &m->tok_embd, r[n++] = &ref->tok_embd;
    a[n] = &m->output, r[n++] = &ref->output;
    for (int il = 0; il < m->n_layer; il++) {
        const layer *L = &m->layers[il], *R = &ref->layers[il];
        const weight *la[13] = {&L->wq, &L->wk, &L->wv, &L->wqkv, &L->wo, &L->w_gate, &L->w_up,
                                &L->w_down, &L->r_in, &L->r_gate, &L->r_beta, &L->r_alpha, &L->r_out};
        const weight *lr[13] = {&R->wq, &R->wk, &R->wv, &R->wqkv, &R->wo, &R->w_gate, &R->w_up,
                                &R->w_down, &R->r_in, &R->r_gate, &R->r_beta, &R->r_alpha, &R->r_out};
        for (int k = 0; k < 13; k++) a[n] = la[k], r[n++] = lr[k];
    }
    for (int i = 0; i < n; i++) {
        const weight *w = a[i], *w0 = r[i];
        if (!w->data != !w0->data) {
            bad++;
            continue;
        }
        if (!w->data) continue;
        const size_t rb = w->rb, gb = 8 * rb;
        if (!w->x8) {
            bad += memcmp(w->data, w0->data, (size_t)w->n_out * rb) != 0;
            continue;
        }
        const int nb = (int)(w->n_in / type_size_of(w->type)->blck);
        uint8_t *g = (uint8_t *)malloc(gb); /* [8][rb] */
        int differ = 0;
        for (int64_t gi = 0; gi < w->n_out / 8; gi++) {
            x8_pack_bytewise(w->type, w0->data + (size_t)gi * gb, rb, nb, g);
            differ |= memcmp(g, w->data + (size_t)gi * gb, gb) != 0;
        }
        bad += differ;
        free(g);
    }
    return bad;
}

/* Models loaded with the repack on 1 and on 3 threads (OMP_NUM_THREADS),
   mapped (on Linux into m->packed) and read (in place): the same bytes as
   a single-threaded pack of the file's rows, matrix by matrix. */
static void check_repack_threads(void) {
    static const char *files[] = {"tiny-llama-Q4_0.gguf", "tiny-llama-Q4_K.gguf",  "tiny-llama-Q5_K.gguf",
                                  "tiny-llama-Q6_K.gguf", "tiny-llama-IQ4_XS.gguf", "tiny-llama-Q8_0.gguf",
                                  "tiny-llama-F16.gguf",  "tiny-gemma3-Q5_0.gguf",  "tiny-qwen35-Q4_K.gguf",
                                  "tiny-lfm2-Q6_K.gguf"};
    const char *old = getenv("OMP_NUM_THREADS");
    char keep[64] = "", rel[128];
    if (old) snprintf(keep, sizeof keep, "%s", old);
    int loads = 0, x8 = 0;
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        snprintf(rel, sizeof rel, "models/%s", files[fi]);
        size_t size = 0;
        unsigned char *bytes = read_all(data_path(rel), &size);
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.repack = 0;
        slm_model *ref = NULL, *m = NULL;
        slm_error err;
        CHECK(bytes && slm_model_load_memory(bytes, size, &mp, &ref, &err) == SLM_OK, "%s: reference load", files[fi]);
        if (!ref) {
            free(bytes);
            continue;
        }
        for (int nth = 1; nth <= 3; nth += 2) {
            set_env("OMP_NUM_THREADS", nth == 1 ? "1" : "3");
            for (int use_mmap = 1; use_mmap >= 0; use_mmap--) {
                slm_model_params_init(&mp);
                mp.use_mmap = use_mmap;
                if (slm_model_load_file(data_path(rel), &mp, &m, &err) != SLM_OK) {
                    CHECK(0, "%s: load (mmap %d, %d threads): %s", files[fi], use_mmap, nth, err.message);
                    continue;
                }
                const int bad = repack_differs(m, ref);
                CHECK(bad == 0, "%s (mmap %d, %d threads): %d matrices differ from a 1-thread pack of the file",
                      files[fi], use_mmap, nth, bad);
                x8 += m->layers[0].w_down.x8 != NULL;
                loads++;
                slm_model_free(m);
            }
        }
        slm_model_free(ref);
        free(bytes);
    }
#if SLM_OPENMP
    { /* a load inside the caller's own (unnamed) critical section */
        set_env("OMP_NUM_THREADS", "3");
        slm_model *m = NULL;
        slm_error err;
        slm_status st;
#pragma omp critical
        st = slm_model_load_file(data_path("models/tiny-llama-Q4_K.gguf"), NULL, &m, &err);
        CHECK(st == SLM_OK, "load inside an omp critical section: %s", st == SLM_OK ? "" : err.message);
        slm_model_free(m);
    }
#endif
    set_env("OMP_NUM_THREADS", old ? keep : NULL);
    printf("  repack at load: %d loads (1 and 3 threads, mapped and read) match a 1-thread pack, %d with x8 ffn_down\n",
           loads, x8);
}
#endif
