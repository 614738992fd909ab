/* Development helper for tools/pretok_vectors.py: tokenizes texts with
   llama.cpp (its public API, vocabulary only) or with slm, to compare them.
     cc -DUSE_LLAMA -I$LLAMA/include -I$LLAMA/ggml/include tools/tok_oracle.c \
        -L$LLAMA/build/bin -lllama -Wl,-rpath,$LLAMA/build/bin -o build/tok_llama
     cc -I. tools/tok_oracle.c slm.c -lm -o build/tok_slm
     build/tok_X vocab.gguf < texts
   stdin: one text per line, hex-encoded; stdout: one line of token ids per
   text (no BOS/EOS, special tokens not parsed), or LOADFAIL and the reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef USE_LLAMA
#include "llama.h"
static void quiet(enum ggml_log_level l, const char *t, void *u) {
    (void)l, (void)t, (void)u;
}
#else
#include "slm.h"
#endif

static char line[1 << 20], txt[1 << 19];
static int32_t ids[1 << 19];

int main(int argc, char **argv) {
    if (argc < 2) return 2;
#ifdef USE_LLAMA
    llama_log_set(quiet, NULL);
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = 1;
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m) {
        printf("LOADFAIL\n");
        return 0;
    }
    const struct llama_vocab *v = llama_model_get_vocab(m);
#else
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.vocab_only = 1;
    slm_model *m = NULL;
    slm_error err;
    if (slm_model_load_file(argv[1], &mp, &m, &err) != SLM_OK) {
        printf("LOADFAIL %s\n", err.message);
        return 0;
    }
#endif
    while (fgets(line, sizeof line, stdin)) {
        size_t n = 0;
        for (char *p = line; p[0] && p[1] && p[0] != '\n'; p += 2) {
            unsigned x;
            if (sscanf(p, "%2x", &x) != 1) break;
            txt[n++] = (char)x;
        }
        int32_t k = 0;
#ifdef USE_LLAMA
        k = llama_tokenize(v, txt, (int32_t)n, ids, 1 << 19, 0, 0);
#else
        if (slm_tokenize(m, txt, n, 0, 0, ids, 1 << 19, &k, &err) != SLM_OK) k = 0;
#endif
        for (int32_t i = 0; i < k; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        printf("\n");
    }
#ifdef USE_LLAMA
    llama_model_free(m);
#else
    slm_model_free(m);
#endif
    return 0;
}
