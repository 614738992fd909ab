/* A program that uses slm as an installed library would be used: only
   <slm.h> and the library (shared, static, a Windows DLL, or through CMake).
   Usage: consumer MODEL.gguf [PROMPT]. Prints the greedy continuation of
   the prompt and exits 0, or prints the error and exits 1. */
#include <slm.h>

#include <stdio.h>
#include <string.h>

static int print_text(void *user, const char *text, size_t len) {
    size_t *total = (size_t *)user;
    *total += len;
    fwrite(text, 1, len, stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [PROMPT]\n", argv[0]);
        return 2;
    }
    /* the header and the library it runs with are the same version */
    if (strcmp(slm_version(), SLM_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", SLM_VERSION_STRING, slm_version());
        return 1;
    }
    const char *prompt = argc > 2 ? argv[2] : "And the LORD said";
    slm_error err;
    slm_model *m;
    if (slm_model_load_file(argv[1], NULL, &m, &err) != SLM_OK) {
        fprintf(stderr, "consumer: %s\n", err.message);
        return 1;
    }
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 128;
    sp.n_threads = 1;
    slm_session *s;
    if (slm_session_create(m, &sp, &s, &err) != SLM_OK) {
        fprintf(stderr, "consumer: %s\n", err.message);
        slm_model_free(m);
        return 1;
    }
    slm_generate_params gp;
    slm_generate_params_init(&gp);
    gp.max_tokens = 24;
    gp.sampler.temperature = 0; /* greedy: the same text everywhere */
    size_t total = 0;
    gp.on_text = print_text;
    gp.user = &total;
    slm_generate_result r;
    fprintf(stderr, "slm %s (%s)\n", slm_version(), slm_build_info());
    printf("%s", prompt);
    slm_status st = slm_generate(s, prompt, strlen(prompt), NULL, 0, &gp, &r, &err);
    printf("\n");
    slm_session_free(s);
    slm_model_free(m);
    if (st != SLM_OK || r.n_generated <= 0 || total == 0) {
        fprintf(stderr, "consumer: generate: %s\n", st != SLM_OK ? err.message : "no text");
        return 1;
    }
    return 0;
}
