/*
 * Fuzz target: the GGUF loader from memory, the metadata and tensor API, and
 * (for files that load) a short decode. Build with libFuzzer:
 *     make fuzz && build/fuzz/fuzz_gguf -max_len=65536 fuzz/corpus/gguf
 * or as a plain program that replays files and directories (CI):
 *     make test-fuzz
 */
#include "../slm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void exercise(const slm_model *m, int vocab_only) {
    char buf[256];
    for (int64_t i = 0; i < slm_meta_count(m); i++) {
        int64_t iv;
        double dv;
        const char *s;
        size_t len;
        slm_meta_format(m, i, buf, sizeof buf);
        slm_meta_get_int(m, i, 0, &iv);
        slm_meta_get_float(m, i, 0, &dv);
        slm_meta_get_string(m, i, 0, &s, &len);
        int64_t n = slm_meta_array_count(m, i);
        if (n > 0) {
            slm_meta_get_int(m, i, n - 1, &iv);
            slm_meta_get_string(m, i, n - 1, &s, &len);
        }
    }
    for (int64_t i = 0; i < slm_tensor_count(m); i++) {
        slm_tensor_info ti;
        slm_tensor_get_info(m, i, &ti);
        slm_tensor_find(m, ti.name);
    }
    slm_model_info in;
    slm_model_get_info(m, &in);
    if (vocab_only) return;
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 8;
    sp.n_threads = 1;
    sp.logits_all = 1;
    slm_session *s;
    if (slm_session_create(m, &sp, &s, NULL) != SLM_OK) return;
    int32_t ids[3] = {0, in.n_vocab > 1 ? 1 : 0, in.n_vocab - 1};
    /* embeddings (encoders only embed; decoders too), every pooling */
    {
        float vec[3 * 4096];
        const int32_t dim = slm_model_n_embd_out(m);
        for (int p = SLM_POOLING_NONE; p <= SLM_POOLING_LAST && dim > 0 && dim <= 4096; p++) {
            slm_embed_params ep;
            slm_embed_params_init(&ep);
            ep.pooling = p;
            ep.normalize = p & 1;
            slm_embed_tokens(s, ids, 3, &ep, vec, sizeof vec / sizeof vec[0], NULL);
        }
    }
    if (slm_decode(s, ids, 3, NULL) == SLM_OK) {
        volatile float sink = slm_session_logits(s, -1)[in.n_vocab - 1];
        (void)sink;
        slm_session_rewind(s, 1);
        slm_decode(s, ids + 2, 1, NULL);
    }
    slm_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int vocab_only = 0; vocab_only < 2; vocab_only++) {
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.vocab_only = vocab_only;
        slm_model *m = NULL;
        slm_error err;
        if (slm_model_load_memory(data, size, &mp, &m, &err) == SLM_OK) {
            exercise(m, vocab_only);
            slm_model_free(m);
        } else if (!err.message[0]) {
            __builtin_trap(); /* every failure must say what was wrong */
        }
    }
    return 0;
}

#ifdef SLM_FUZZ_MAIN
#include "replay_main.h"
#endif
