/*
 * Fuzz target: the GBNF compiler, the JSON Schema converter (and its JSON
 * parser) and grammar-masked sampling, on arbitrary bytes. The vocabulary
 * (the tiny qwen2 fixture's byte-level BPE, 384 tokens) is loaded once from
 * SLM_FUZZ_DATA (default tests/data). Build: make fuzz; replay: make
 * test-fuzz.
 *
 * Input layout: byte 0 bit 0 picks GBNF (0) or JSON Schema (1); bits 1-7
 * seed the sampling; the rest is the text. A grammar that compiles is run
 * for up to 24 tokens with random logits: every sampled token must be
 * accepted by the grammar. A schema that converts must compile.
 */
#include "../slm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static slm_model *model;
static int32_t n_vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = getenv("SLM_FUZZ_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny-qwen2-Q8_0.gguf", dir ? dir : "tests/data");
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.vocab_only = 1;
    if (slm_model_load_file(path, &mp, &model, NULL) != SLM_OK) {
        fprintf(stderr, "fuzz_grammar: cannot load %s (set SLM_FUZZ_DATA)\n", path);
        exit(1);
    }
    slm_model_info info;
    slm_model_get_info(model, &info);
    n_vocab = info.n_vocab;
    return 0;
}

static void run(const char *text, size_t len, unsigned seed) {
    slm_grammar *g = NULL;
    slm_error err;
    if (slm_grammar_create(model, text, len, NULL, &g, &err) != SLM_OK) {
        if (!memchr(err.message, 0, sizeof err.message) || !err.message[0]) abort(); /* a message, always */
        return;
    }
    slm_sampler_params sp;
    slm_sampler_params_init(&sp);
    sp.grammar = g;
    sp.seed = seed;
    sp.top_k = 0;
    sp.temperature = 1.5f;
    slm_sampler *s = NULL;
    if (slm_sampler_create(&sp, n_vocab, NULL, &s, &err) == SLM_OK) {
        float *logits = (float *)malloc(sizeof(float) * (size_t)n_vocab);
        uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
        for (int step = 0; step < 24 && logits; step++) {
            for (int32_t i = 0; i < n_vocab; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                logits[i] = (float)(x >> 40) / (float)(1 << 24) * 8.0f;
            }
            int32_t t = slm_sampler_sample(s, logits);
            if (t < 0) break;
            if (slm_token_is_eog(model, t)) break;
            slm_sampler_accept(s, t);
            if (slm_sampler_grammar_state(s) == SLM_GRAMMAR_FAILED) abort(); /* the mask let it through */
            if (slm_sampler_grammar_state(s) == SLM_GRAMMAR_DONE) break;
        }
        free(logits);
        slm_sampler_free(s);
    }
    slm_grammar_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!model) LLVMFuzzerInitialize(NULL, NULL);
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    unsigned seed = data[0] >> 1;
    if (!(data[0] & 1)) {
        run(text, len, seed);
        return 0;
    }
    size_t need = 0;
    slm_error err;
    slm_status st = slm_json_schema_to_grammar(text, len, NULL, 0, &need, &err);
    if (st != SLM_ERR_BUFFER) return 0;
    char *gr = (char *)malloc(need + 1);
    if (gr && slm_json_schema_to_grammar(text, len, gr, need + 1, &need, &err) == SLM_OK) {
        slm_grammar *g = NULL;
        if (slm_grammar_create(model, gr, need, NULL, &g, &err) != SLM_OK) {
            fprintf(stderr, "a converted schema does not compile: %s\n%s\n", err.message, gr);
            abort();
        }
        slm_grammar_free(g);
        run(gr, need, seed);
    }
    free(gr);
    return 0;
}

#ifdef SLM_FUZZ_MAIN
#include "replay_main.h"
#endif
