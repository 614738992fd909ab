/* slm on a microcontroller: the demo model embedded as a const array (in
   flash), every byte of memory from one static arena, text generated with
   a fixed seed. Builds bare-metal for Cortex-M55 (QEMU mps3-an547) and
   Cortex-M4F (mps2-an386) with the library compiled -DSLM_NO_STDIO
   -DSLM_NO_MALLOC, and natively with the same switches as the reference
   that `make test-embedded` compares the QEMU runs with. The output between
   the "---" lines must be the same everywhere.

   model.h / model.c come from tools/gguf2c (see the Makefile). */
#include "slm.h"
#include "model.h"

#include <stdio.h>
#include <string.h>

#ifndef N_CTX
#define N_CTX 256
#endif
#ifndef N_BATCH
#define N_BATCH 8
#endif
#ifndef N_TOKENS
#define N_TOKENS 48
#endif
#ifndef PROMPT
#define PROMPT "And the LORD said"
#endif
/* the sampler and the prompt of slm_generate, on top of model + session */
#define GEN_EXTRA (32 * 1024)
#define ARENA_BYTES (slm_model_data_ARENA_BYTES + GEN_EXTRA)

#if defined(__GNUC__) || defined(__clang__)
__attribute__((aligned(64), section(".arena")))
#endif
static unsigned char arena_mem[ARENA_BYTES];

static int on_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int fail(const char *what, const slm_error *err) {
    printf("\n%s failed: %s (%s)\n", what, err->message, slm_status_string(err->status));
    return 1;
}

int main(void) {
    slm_error err;
    slm_arena arena;
    slm_arena_init(&arena, arena_mem, sizeof arena_mem);
    printf("slm %s embedded demo (%s), model %u bytes in place at %p, arena %u bytes\n", slm_version(),
           slm_build_info(), (unsigned)slm_model_data_size, (const void *)slm_model_data, (unsigned)sizeof arena_mem);

    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.allocator = &arena.allocator;
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = N_CTX;
    sp.n_batch = N_BATCH;
    sp.n_threads = 1;

    slm_model *model = NULL;
    slm_session *session = NULL;
#if defined(SLM_NO_STDIO)
    /* no file access in this build: the call exists and says so */
    if (slm_model_load_file("model.gguf", &mp, &model, &err) != SLM_ERR_UNSUPPORTED) {
        printf("slm_model_load_file: expected SLM_ERR_UNSUPPORTED without stdio\n");
        return 1;
    }
#endif
    if (slm_model_load_memory(slm_model_data, slm_model_data_size, &mp, &model, &err) != SLM_OK)
        return fail("load", &err);
    size_t after_model = slm_arena_used(&arena);
    if (slm_session_create(model, &sp, &session, &err) != SLM_OK) return fail("session", &err);
    size_t after_setup = slm_arena_used(&arena);

    slm_generate_params gp;
    slm_generate_params_init(&gp);
    gp.max_tokens = N_TOKENS;
    gp.sampler.seed = 42; /* temperature 0.8, top-k 40, top-p 0.95, min-p 0.05 */
    gp.on_text = on_text;
    slm_generate_result res;
    printf("---\n%s", PROMPT);
    fflush(stdout);
    if (slm_generate(session, PROMPT, strlen(PROMPT), NULL, 0, &gp, &res, &err) != SLM_OK)
        return fail("generate", &err);
    printf("\n---\n");
    printf("tokens: %d prompt, %d generated (stop %d)\n", (int)res.n_prompt, (int)res.n_generated,
           (int)res.stop_reason);
    /* the plan is exact for the host that made it (64-bit); a 32-bit
       target has smaller pointers and block headers */
    size_t plan = slm_model_data_ARENA_BYTES;
    int ok = sizeof(void *) == 8 ? after_setup == plan : after_setup <= plan;
    printf("arena: model %u, model + session %u bytes (host plan %u: %s), peak with generate %u bytes\n",
           (unsigned)after_model, (unsigned)after_setup, (unsigned)plan, ok ? "ok" : "MISMATCH",
           (unsigned)slm_arena_peak(&arena));
    slm_session_free(session);
    slm_model_free(model);
    if (slm_arena_used(&arena) != 0) {
        printf("arena: %u bytes still in use after freeing everything\n", (unsigned)slm_arena_used(&arena));
        return 1;
    }
    return ok ? 0 : 1;
}
