/* Grammar benchmark: the cost of grammar-masked sampling per generated token
   on a large vocabulary, next to the decode time of a model.

   build/bench_grammar [--decode MODEL.gguf] [--threads N] [--size N] VOCAB.gguf...   (make bench-grammar)

   The vocabulary is the union of the decoded pieces of the given vocab-only
   GGUF files (real byte-level BPE and SentencePiece vocabularies), cut or
   kept at --size pieces (default 151936, Qwen2.5's logits row). The
   workload is a JSON document produced token by token under the built-in
   JSON grammar: at each step the mask is computed (the trie walk, or the
   per-state cache), a full logits row is sampled with the mask, and the
   chosen token (the longest allowed piece that continues the document) is
   accepted. Reported: per-step times with the cache and without it (every
   mask walked), and, with --decode, one-token decode time of the model at
   the given thread count, and the grammar's share of it. */
#include "../slm.c"

#include <stdio.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char DOC[] =
    "{\"id\": 48213, \"name\": \"Kiosk 7 \xe2\x80\x93 Bahnhofstra\xc3\x9f" "e\", \"active\": true, \"ratio\": 0.8125,\n"
    "  \"tags\": [\"lobby\", \"north-entrance\", \"touch screen\", \"NFC\"],\n"
    "  \"location\": {\"lat\": 47.3769, \"lon\": 8.5417, \"floor\": -1, \"label\": \"Level B1, next to the lifts\"},\n"
    "  \"schedule\": [{\"day\": \"monday\", \"open\": \"07:00\", \"close\": \"22:30\"}, {\"day\": \"tuesday\", \"open\": "
    "\"07:00\", \"close\": \"22:30\"}, {\"day\": \"sunday\", \"open\": null, \"close\": null}],\n"
    "  \"last_command\": {\"action\": \"set_brightness\", \"value\": 70, \"unit\": \"percent\", \"confirmed\": false},\n"
    "  \"notes\": \"Customer asked for a \\\"quiet mode\\\" after 9pm; the speaker volume was lowered to 30%.\\n"
    "Firmware 4.2.1 installed on 2026-11-30.\", \"errors\": [], \"metrics\": {\"uptime_h\": 1284.5, \"reboots\": 3, "
    "\"temperature_c\": 41.25, \"network\": \"wifi\", \"rssi_dbm\": -61}}";

int main(int argc, char **argv) {
    const char *decode_model = NULL;
    int threads = 1, size = 151936, verify = 0; /* --verify: the memoized walk against the plain one, every step */
    const char *files[32];
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--decode") && i + 1 < argc) decode_model = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--verify")) verify = 1;
        else if (n_files < 32) files[n_files++] = argv[i];
    }
    if (n_files == 0) {
        fprintf(stderr, "usage: bench_grammar [--decode MODEL] [--threads N] [--size N] VOCAB.gguf...\n");
        return 2;
    }
    allocator a;
    alloc_init(&a, NULL);
    /* the union of the pieces, deduplicated (open addressing on the bytes) */
    size_t cap_bytes = 1 << 24, n_bytes = 0, tab_n = 1 << 20;
    char *bytes = (char *)malloc(cap_bytes);
    uint32_t *off = (uint32_t *)malloc(((size_t)size + 1) * sizeof(uint32_t));
    int32_t *tab = (int32_t *)malloc(tab_n * sizeof(int32_t));
    memset(tab, 0xff, tab_n * sizeof(int32_t));
    int32_t n = 0;
    off[0] = 0;
    for (int f = 0; f < n_files && n < size; f++) {
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.vocab_only = 1;
        slm_model *m;
        slm_error err;
        if (slm_model_load_file(files[f], &mp, &m, &err) != SLM_OK) {
            fprintf(stderr, "%s: %s\n", files[f], err.message);
            return 1;
        }
        int32_t nv = slm_vocab_size(m), added = 0;
        for (int32_t t = 0; t < nv && n < size; t++) {
            if (slm_token_attr(m, t) & (SLM_TOKEN_CONTROL | SLM_TOKEN_UNKNOWN | SLM_TOKEN_UNUSED)) continue;
            char piece[1024];
            size_t l = 0;
            if (slm_token_to_piece(m, t, 0, piece, sizeof piece, &l) != SLM_OK || l == 0) continue;
            uint64_t h = hash_bytes(piece, l);
            size_t k = (size_t)h & (tab_n - 1);
            int dup = 0;
            for (; tab[k] >= 0; k = (k + 1) & (tab_n - 1)) {
                int32_t u = tab[k];
                if (off[u + 1] - off[u] == l && !memcmp(bytes + off[u], piece, l)) {
                    dup = 1;
                    break;
                }
            }
            if (dup) continue;
            tab[k] = n;
            memcpy(bytes + n_bytes, piece, l);
            n_bytes += l;
            off[++n] = (uint32_t)n_bytes;
            added++;
        }
        printf("vocabulary %s: %d tokens, %d new pieces\n", files[f], (int)nv, (int)added);
        slm_model_free(m);
    }
    int32_t n_vocab = n + 1; /* plus one end-of-generation token */
    off[n_vocab] = off[n];
    uint8_t *kind = (uint8_t *)malloc((size_t)n_vocab);
    memset(kind, 1, (size_t)n_vocab);
    kind[n] = 2;
    printf("pieces: %d distinct (+1 EOS), %zu bytes\n", (int)n, n_bytes);

    slm_error err;
    slm_grammar *g;
    double t0 = now_s();
    if (grammar_compile(&a, G_JSON, strlen(G_JSON), NULL, &g, &err) != SLM_OK ||
        grammar_bind(g, n_vocab, off, bytes, kind, &err) != SLM_OK) {
        fprintf(stderr, "grammar: %s\n", err.message);
        return 1;
    }
    printf("grammar: compiled and bound in %.1f ms; trie %u nodes (%.1f MB), longest piece %u bytes\n",
           (now_s() - t0) * 1e3, g->n_trie, g->n_trie * (double)sizeof(gtrie) / 1e6, g->max_piece);

    float *logits = (float *)malloc((size_t)n_vocab * sizeof(float));
    uint64_t rs[4];
    rng_seed(rs, 1);
    for (int32_t i = 0; i < n_vocab; i++) logits[i] = (float)rng_uniform(rs);

    for (int pass = 0; pass < 2; pass++) { /* 0: with the cache, 1: every mask walked */
        slm_sampler_params sp;
        slm_sampler_params_init(&sp);
        sp.grammar = g;
        slm_sampler *smp;
        if (slm_sampler_create(&sp, n_vocab, NULL, &smp, &err) != SLM_OK) {
            fprintf(stderr, "sampler: %s\n", err.message);
            return 1;
        }
        gstate *st = smp->gs;
        size_t pos = 0, len = strlen(DOC);
        int steps = 0;
        double t_mask = 0, t_sample = 0, t_accept = 0, worst = 0;
        while (pos < len) {
            if (pass == 1)
                for (size_t c = 0; c < st->n_cache; c++) st->cache[c].valid = 0;
            double a0 = now_s();
            const uint32_t *mask = g_mask(st);
            double a1 = now_s();
            int32_t tok = slm_sampler_sample(smp, logits); /* the masked sampling itself */
            double a2 = now_s();
            (void)tok;
            /* the token the "model" picks: the longest allowed piece of the document */
            int32_t best = -1;
            uint32_t best_l = 0;
            const gtrie *tr = g->trie;
            uint32_t i = 0, depth = 0;
            while (i < g->n_trie && pos + depth < len) {
                if (tr[i].depth != depth + 1) break;
                if (tr[i].byte == (uint8_t)DOC[pos + depth]) {
                    depth++;
                    for (uint32_t k = 0; k < tr[i].ntok; k++) {
                        int32_t t = g->tok_sorted[tr[i].tok + k];
                        if (mask && (mask[t >> 5] >> (t & 31) & 1)) best = t, best_l = depth;
                    }
                    i++;
                } else {
                    i = tr[i].end;
                }
            }
            if (best < 0) {
                fprintf(stderr, "no allowed piece at byte %zu\n", pos);
                return 1;
            }
            if (verify && pass == 1) {
                uint32_t *plain = (uint32_t *)malloc(st->mask_words * sizeof(uint32_t));
                g_compute_mask_plain(st, plain);
                if (memcmp(plain, mask, st->mask_words * sizeof(uint32_t)) != 0) {
                    fprintf(stderr, "verify: the memoized mask differs from the plain walk at byte %zu\n", pos);
                    return 1;
                }
                free(plain);
            }
            double a3 = now_s();
            slm_sampler_accept(smp, best);
            double a4 = now_s();
            if (slm_sampler_grammar_state(smp) == SLM_GRAMMAR_FAILED) {
                fprintf(stderr, "the grammar failed at byte %zu\n", pos);
                return 1;
            }
            pos += best_l;
            steps++;
            t_mask += a1 - a0;
            t_sample += a2 - a1;
            t_accept += a4 - a3;
            if (a1 - a0 + a4 - a3 > worst) worst = a1 - a0 + a4 - a3;
            if (getenv("BENCH_GRAMMAR_TRACE") && pass == 1)
                printf("  step %d at byte %zu '%.12s': mask %.2f ms, %zu sets\n", steps, pos - best_l, DOC + pos - best_l,
                       (a1 - a0) * 1e3, st->n_msets);
        }
        int state = slm_sampler_grammar_state(smp);
        if (verify && pass == 1) printf("verify: memoized and plain walks gave the same %d masks\n", steps);
        printf("%s: %d tokens for %zu bytes (grammar %s); per token: mask %.3f ms, masked sampling %.3f ms, accept %.4f ms; "
               "worst mask+accept %.2f ms\n",
               pass == 0 ? "with the mask cache   " : "every mask walked     ", steps, len,
               state == SLM_GRAMMAR_DONE ? "done" : "not done", t_mask * 1e3 / steps, t_sample * 1e3 / steps,
               t_accept * 1e3 / steps, worst * 1e3);
        if (pass == 0) printf("  (masked sampling includes the mask, from the cache then)\n");
        slm_sampler_free(smp);
    }
    /* sampling without a grammar, for the difference */
    {
        slm_sampler *smp;
        slm_sampler_create(NULL, n_vocab, NULL, &smp, &err);
        double a0 = now_s();
        for (int k = 0; k < 50; k++) slm_sampler_sample(smp, logits);
        printf("sampling without a grammar: %.3f ms per token\n", (now_s() - a0) * 1e3 / 50);
        slm_sampler_free(smp);
    }
    if (decode_model) {
        slm_model_params mp;
        slm_model_params_init(&mp);
        slm_model *m;
        if (slm_model_load_file(decode_model, &mp, &m, &err) != SLM_OK) {
            fprintf(stderr, "%s: %s\n", decode_model, err.message);
            return 1;
        }
        slm_session_params spp;
        slm_session_params_init(&spp);
        spp.n_ctx = 256;
        spp.n_threads = threads;
        slm_session *s;
        if (slm_session_create(m, &spp, &s, &err) != SLM_OK) {
            fprintf(stderr, "session: %s\n", err.message);
            return 1;
        }
        int32_t tok = 1;
        slm_decode(s, &tok, 1, &err);
        int nd = 32;
        double a0 = now_s();
        for (int k = 0; k < nd; k++) {
            tok = (int32_t)(100 + k * 37);
            slm_decode(s, &tok, 1, &err);
        }
        double dt = (now_s() - a0) * 1e3 / nd;
        slm_model_info info;
        slm_model_get_info(m, &info);
        printf("decode %s (%d threads): %.2f ms per token (n_vocab %d)\n", decode_model, threads, dt, (int)info.n_vocab);
        slm_session_free(s);
        slm_model_free(m);
    }
    slm_grammar_free(g);
    free(bytes);
    free(off);
    free(tab);
    free(kind);
    free(logits);
    return 0;
}
