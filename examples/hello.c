#include <stdio.h>
#include <string.h>
#include "slm.h"

static int print_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);  // whole UTF-8 characters
    return 0;                      // non-zero stops generation
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/data/demo/kjv-1m-q8_0.gguf";
    const char *prompt = "And the LORD said";
    slm_model *model = NULL;
    slm_session *s = NULL;
    slm_error err;
    slm_generate_params gp;
    slm_generate_result r;
    slm_generate_params_init(&gp);  // sampler: temperature 0.8, top-k 40, top-p 0.95
    gp.max_tokens = 48;
    gp.sampler.seed = 42;
    gp.on_text = print_text;
    int ok = slm_model_load_file(path, NULL, &model, &err) == SLM_OK &&
             slm_session_create(model, NULL, &s, &err) == SLM_OK &&
             slm_generate(s, prompt, strlen(prompt), NULL, 0, &gp, &r, &err) == SLM_OK;
    if (ok) printf("\n[%d tokens, %.0f tokens/s]\n", r.n_generated, r.gen_tps);
    else fprintf(stderr, "%s\n", err.message);  // what is wrong, and where
    slm_session_free(s);
    slm_model_free(model);
    return ok ? 0 : 1;
}
