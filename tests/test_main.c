/* Test runner: runs every suite (or those named on the command line) and
   ends with the line "N passed, N failed". */
#include "test.h"

#include <string.h>

void test_gguf(void);
void test_kernels(void);
void test_gemm_models(void);
void test_models(void);
void test_robust(void);
void test_tokenizer(void);
void test_sampler(void);
void test_generate(void);
void test_quant(void);
void test_chat(void);
void test_embed(void);
void test_files(void);
void test_safety(void);
void test_cli(void);
void test_state(void);
void test_grammar(void);
void test_embedding(void);
void test_families(void);
void test_vocab_views(void);
void test_pretok(void);
void test_chat_think(void);
void test_book(void);

static const struct {
    const char *name;
    void (*fn)(void);
} SUITES[] = {
    {"gguf", test_gguf},
    {"kernels", test_kernels},
    {"gemm", test_gemm_models},
    {"models", test_models},
    {"robust", test_robust},
    {"tokenizer", test_tokenizer},
    {"sampler", test_sampler},
    {"generate", test_generate},
    {"quant", test_quant},
    {"chat", test_chat},
    {"embed", test_embed},
    {"files", test_files},
    {"safety", test_safety},
    {"cli", test_cli},
    {"state", test_state},
    {"grammar", test_grammar},
    {"embedding", test_embedding},
    {"families", test_families},
    {"vocabviews", test_vocab_views},
    {"pretok", test_pretok},
    {"chat_think", test_chat_think},
    {"book", test_book},
};

int main(int argc, char **argv) {
    for (size_t i = 0; i < sizeof SUITES / sizeof SUITES[0]; i++) {
        int run = argc < 2;
        for (int a = 1; a < argc; a++) run |= !strcmp(argv[a], SUITES[i].name);
        if (!run) continue;
        int p0 = t_pass, f0 = t_fail;
        SUITES[i].fn();
        printf("suite %-10s %d passed, %d failed\n", SUITES[i].name, t_pass - p0, t_fail - f0);
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}
