/*
 * Fuzz target: the tokenizers (SentencePiece, byte-level BPE, WordPiece, special
 * tokens on and off), detokenizer, streaming decoder and chat formatter, on
 * arbitrary bytes. The vocabularies are loaded once from SLM_FUZZ_DATA
 * (default tests/data). Build: make fuzz; replay: make test-fuzz.
 *
 * Input layout: byte 0 picks the vocabulary and flags; the rest is text.
 * For the chat formatter the text is cut into messages at 0x01 bytes, the
 * first byte of each message picking its role.
 */
#include "../slm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const VOCABS[] = {"tokenizer/ggml-vocab-llama-spm.gguf", "tokenizer/ggml-vocab-gpt-2.gguf",
                                     "tokenizer/ggml-vocab-starcoder.gguf", "tokenizer/ggml-vocab-phi-3.gguf",
                                     "models/tiny-qwen2-Q8_0.gguf", "tokenizer/ggml-vocab-bert-bge.gguf"};
#define NV (int)(sizeof VOCABS / sizeof VOCABS[0])
static slm_model *models[NV];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = getenv("SLM_FUZZ_DATA");
    for (int i = 0; i < NV; i++) {
        char path[1024];
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.vocab_only = 1;
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", VOCABS[i]);
        if (slm_model_load_file(path, &mp, &models[i], NULL) != SLM_OK) {
            fprintf(stderr, "fuzz_text: cannot load %s (set SLM_FUZZ_DATA)\n", path);
            exit(1);
        }
    }
    return 0;
}

static void tokenize_roundtrip(const slm_model *m, const char *text, size_t len, int flags, int roundtrip) {
    int32_t n = 0;
    slm_status st = slm_tokenize(m, text, len, flags & 1, (flags >> 1) & 1, NULL, 0, &n, NULL);
    if (st != SLM_OK && st != SLM_ERR_BUFFER) return;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (!ids) return;
    int32_t got = 0;
    if (slm_tokenize(m, text, len, flags & 1, (flags >> 1) & 1, ids, n, &got, NULL) == SLM_OK && got == n) {
        size_t out_len = 0;
        slm_detokenize(m, ids, n, 0, (flags >> 2) & 1, NULL, 0, &out_len, NULL);
        char *out = (char *)malloc(out_len + 1);
        if (out) slm_detokenize(m, ids, n, 0, (flags >> 2) & 1, out, out_len + 1, &out_len, NULL);
        free(out);
        /* the stream: byte-level BPE keeps every byte, and the stream does no
           space clean-up, so plain text must come back exactly (SentencePiece
           does not promise that: U+2581, the prefix space) */
        slm_text_stream ts;
        char buf[512];
        char *all = (char *)malloc(len + 64 * (size_t)n + 16);
        size_t at = 0;
        int sflags = roundtrip ? 0 : (flags >> 3 & 3);
        slm_text_stream_init(&ts, m, sflags);
        for (int32_t i = 0; i < n && all; i++) {
            size_t l = 0;
            if (slm_text_stream_push(&ts, ids[i], buf, sizeof buf, &l) == SLM_OK && at + l <= len + 64 * (size_t)n) {
                memcpy(all + at, buf, l);
                at += l;
            }
        }
        size_t fl = slm_text_stream_flush(&ts, buf, sizeof buf);
        if (all && at + fl <= len + 64 * (size_t)n + 16) memcpy(all + at, buf, fl), at += fl;
        if (all && roundtrip && !(flags & 3) && (at != len || memcmp(all, text, len) != 0)) __builtin_trap();
        free(all);
    }
    free(ids);
}

static void chat(const slm_model *m, int family, const char *text, size_t len) {
    static const char *roles[] = {"system", "user", "assistant", "tool", ""};
    slm_chat_message msgs[16];
    char *copy = (char *)malloc(len + 1);
    if (!copy) return;
    memcpy(copy, text, len);
    copy[len] = 0;
    int n = 0;
    char *p = copy;
    while (n < 16 && *p) {
        char *e = strchr(p, 1);
        if (e) *e = 0;
        msgs[n].role = roles[(unsigned char)p[0] % 5];
        msgs[n].content = p + 1; /* p[0] is not NUL here */
        n++;
        if (!e) break;
        p = e + 1;
    }
    for (int past = 0; past <= n; past++) {
        size_t need = 0;
        int fb;
        slm_status st = slm_chat_format(m, family, msgs, n, past, past & 1, NULL, 0, &need, &fb, NULL);
        if (st == SLM_ERR_BUFFER) {
            char *out = (char *)malloc(need + 1);
            if (out) slm_chat_format(m, family, msgs, n, past, past & 1, out, need + 1, &need, &fb, NULL);
            free(out);
        }
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!models[0]) LLVMFuzzerInitialize(NULL, NULL);
    if (size < 1) return 0;
    int sel = data[0];
    const slm_model *m = models[sel % NV];
    const char *text = (const char *)data + 1;
    /* gpt-2 and the qwen2 fixture have all 256 byte tokens (StarCoder does not) */
    tokenize_roundtrip(m, text, size - 1, sel >> 3, sel % NV == 1 || sel % NV == 4);
    chat(sel & 0x80 ? m : NULL, (sel >> 3) % 9, text, size - 1);
    return 0;
}

#ifdef SLM_FUZZ_MAIN
#include "replay_main.h"
#endif
