/* GGUF reader: a hand-built file, every truncation of it and of a real
   model, and hostile variants (each must fail with a clear message, never
   crash). Run it under the sanitizers too (make test-sanitize). */
#include "test.h"
#include "../slm.h"

#include <stdlib.h>
#include <string.h>

#include "gguf_build.h"

static void check_variants(void) {
    for (int v = 0; v < V_COUNT; v++) {
        gbuf b = gguf_build(v);
        slm_model *m = NULL;
        slm_error err;
        slm_status st = slm_model_load_memory(b.p, b.n, NULL, &m, &err);
        if (v == V_OK) {
            CHECK(st == SLM_OK, "valid hand-built file: %s", err.message);
            if (m) {
                int64_t k = slm_meta_find(m, "test.strings");
                const char *s;
                size_t len;
                CHECK(k >= 0 && slm_meta_type(m, k) == SLM_META_ARRAY && slm_meta_array_count(m, k) == 3,
                      "string array");
                /* array elements are views into the file: no NUL, len required */
                CHECK(slm_meta_get_string(m, k, 2, &s, &len) == SLM_OK && len == 3 && !memcmp(s, "ccc", 3), "elem 2");
                CHECK(slm_meta_get_string(m, k, 2, &s, NULL) == SLM_ERR_INVALID_ARG, "elem without len");
                CHECK(slm_meta_get_string(m, k, 1, &s, &len) == SLM_OK && len == 0, "empty elem");
                CHECK(slm_meta_get_string(m, k, 3, &s, &len) == SLM_ERR_INVALID_ARG, "out of range elem");
                int64_t iv;
                double dv;
                k = slm_meta_find(m, "llama.block_count");
                CHECK(slm_meta_get_int(m, k, -1, &iv) == SLM_OK && iv == 1, "int key");
                CHECK(slm_meta_get_string(m, k, -1, &s, &len) == SLM_ERR_TYPE, "type mismatch");
                k = slm_meta_find(m, "llama.attention.layer_norm_rms_epsilon");
                CHECK(slm_meta_get_float(m, k, -1, &dv) == SLM_OK && dv > 0.9e-5 && dv < 1.1e-5, "float key");
                CHECK(slm_meta_find(m, "nope") == -1, "absent key");
                char txt[64];
                k = slm_meta_find(m, "test.strings");
                slm_meta_format(m, k, txt, sizeof txt);
                CHECK(!strcmp(txt, "[string x 3: \"a\", \"\", \"ccc\"]"), "format: %s", txt);
                CHECK(slm_tensor_count(m) == 11 && slm_tensor_find(m, "blk.0.ffn_up.weight") == 9, "tensors");
                slm_tensor_info ti;
                CHECK(slm_tensor_get_info(m, 4, &ti) == SLM_OK && ti.ne[0] == 32 && ti.ne[1] == 16 &&
                          ti.nbytes == 32 * 16 * 4 && !strcmp(ti.name, "blk.0.attn_k.weight"), "tensor info");
                {
                    slm_session *ss = NULL;
                    CHECK(slm_session_create(m, NULL, &ss, &err) == SLM_OK, "session: %s", err.message);
                    int32_t ids[3] = {1, 2, 7};
                    CHECK(ss && slm_decode(ss, ids, 3, &err) == SLM_OK, "decode: %s", err.message);
                    slm_session_free(ss);
                }
                slm_model_free(m);
            }
            /* every truncation fails cleanly */
            int bad = 0;
            for (size_t n = 0; n < b.n; n++) {
                unsigned char *cp = (unsigned char *)malloc(n ? n : 1);
                memcpy(cp, b.p, n);
                m = NULL;
                if (slm_model_load_memory(cp, n, NULL, &m, &err) == SLM_OK || !err.message[0]) bad++;
                slm_model_free(m);
                free(cp);
            }
            CHECK(bad == 0, "%d truncations of the hand-built file were accepted", bad);
        } else {
            CHECK(st != SLM_OK && m == NULL, "variant '%s' was accepted", GGUF_VARIANT_NAMES[v]);
            CHECK(err.message[0] != 0, "variant '%s' gave no message", GGUF_VARIANT_NAMES[v]);
            if (st != SLM_OK && getenv("SLM_TEST_VERBOSE")) printf("  %-22s -> %s\n", GGUF_VARIANT_NAMES[v], err.message);
            slm_model_free(m);
        }
        free(b.p);
    }
}

/* Truncations and byte flips of a real model file's header region. */
static void check_real_file(void) {
    size_t n;
    unsigned char *p = read_all(data_path("models/tiny-llama-Q4_0.gguf"), &n);
    if (!p) {
        CHECK(0, "fixture missing");
        return;
    }
    slm_model *m = NULL;
    slm_error err;
    CHECK(slm_model_load_memory(p, n, NULL, &m, &err) == SLM_OK, "load: %s", err.message);
    slm_tensor_info ti;
    memset(&ti, 0, sizeof ti);
    CHECK(m && slm_tensor_get_info(m, 0, &ti) == SLM_OK && ti.offset > 0, "tensor info of a real file");
    size_t data_start = (size_t)ti.offset;
    slm_model_free(m);
    if (!data_start) {
        free(p);
        return;
    }
    int accepted = 0;
    /* SLM_TEST_QUICK (emulated targets): every 7th truncation, 300 flips */
    const size_t step = test_quick() ? 7 : 1;
    for (size_t k = 0; k < data_start + 64 && k < n; k += (k < 4096 ? step : 97)) {
        unsigned char *cp = (unsigned char *)malloc(k ? k : 1);
        memcpy(cp, p, k);
        m = NULL;
        if (slm_model_load_memory(cp, k, NULL, &m, &err) == SLM_OK) accepted++;
        slm_model_free(m);
        free(cp);
    }
    CHECK(accepted == 0, "%d truncated copies of a real file were accepted", accepted);
    /* flip bytes of the directory: either a clean error or a model that still runs */
    uint64_t s = 7;
    int crashes_avoided = 0;
    unsigned char *cp = (unsigned char *)malloc(n);
    const int flips = test_quick() ? 300 : 3000;
    for (int it = 0; it < flips; it++) {
        memcpy(cp, p, n);
        size_t at = (size_t)(t_rand(&s) % data_start);
        cp[at] ^= (unsigned char)(1u << (t_rand(&s) % 8));
        if (it % 3 == 0) cp[(size_t)(t_rand(&s) % data_start)] = 0xff;
        m = NULL;
        if (slm_model_load_memory(cp, n, NULL, &m, &err) == SLM_OK) {
            slm_session *ss = NULL;
            slm_session_params sp;
            slm_session_params_init(&sp);
            sp.n_ctx = 8;
            if (slm_session_create(m, &sp, &ss, &err) == SLM_OK) {
                int32_t id = 1;
                slm_decode(ss, &id, 1, &err);
                slm_session_free(ss);
            }
            slm_model_free(m);
        } else {
            crashes_avoided += err.message[0] != 0;
        }
    }
    free(cp);
    CHECK(crashes_avoided > 0, "flipped files: every failure has a message");
    free(p);
}

static void check_api_args(void) {
    slm_model *m = (slm_model *)1;
    slm_error err;
    CHECK(slm_model_load_file("/nonexistent/x.gguf", NULL, &m, &err) == SLM_ERR_IO && m == NULL, "missing file");
    CHECK(strstr(err.message, "/nonexistent/x.gguf") != NULL, "message names the file: %s", err.message);
    CHECK(slm_model_load_memory("GGUF", 4, NULL, &m, &err) == SLM_ERR_FORMAT, "4 bytes");
    CHECK(slm_model_load_memory("GGML\3\0\0\0", 8, NULL, &m, &err) == SLM_ERR_FORMAT, "bad magic");
    CHECK(strstr(err.message, "magic") != NULL, "magic message: %s", err.message);
    CHECK(slm_model_load_memory(NULL, 0, NULL, &m, &err) != SLM_OK, "empty");
    CHECK(slm_model_load_memory("x", 1, NULL, NULL, &err) == SLM_ERR_INVALID_ARG, "NULL out");
    slm_model_free(NULL);
    slm_session_free(NULL);
    CHECK(slm_type_name(SLM_TYPE_Q4_0) && !strcmp(slm_type_name(SLM_TYPE_Q4_0), "Q4_0"), "type name");
    CHECK(slm_type_name(4) == NULL && slm_type_name(1000) == NULL && slm_type_name(-1) == NULL, "unknown ids");
    CHECK(slm_status_string(SLM_ERR_CONTEXT_FULL)[0] != 0, "status string");
}

void test_gguf(void) {
    check_api_args();
    check_variants();
    check_real_file();
}
