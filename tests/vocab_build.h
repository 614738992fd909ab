#ifndef VOCAB_BUILD_H
#define VOCAB_BUILD_H
/* Vocabulary-only GGUF files in memory, for tokenizer and chat tests. */
#include "gguf_build.h"

typedef struct vocab_spec {
    const char *model;         /* tokenizer.ggml.model, e.g. "gpt2" */
    const char *pre;           /* tokenizer.ggml.pre, NULL: absent */
    const char *const *tokens; /* n_tokens pieces */
    const int *types;          /* n_tokens token types, NULL: all normal (1) */
    int n_tokens;
    const char *const *merges; /* n_merges "left right" strings, may be NULL */
    int n_merges;
    const char *chat_template; /* NULL: absent */
    int bos, eos;              /* -1: absent */
} vocab_spec;

/* Free the result's p with free(). */
gbuf vocab_gguf(const vocab_spec *spec);

#endif
