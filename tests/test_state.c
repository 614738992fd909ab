/* Session state save/restore: a restored session gives the same logits as
   the one it was saved from (for each KV type, into a session with another
   n_ctx, through a buffer and through a file), and a damaged, truncated or
   mismatched state (another model, another KV type, a context too small, an
   unknown required section) is refused with a message, leaving the session
   as it was. */
#include "test.h"
#include "../slm.h"

#include <stdlib.h>
#include <string.h>

static slm_session *new_session(const slm_model *m, int n_ctx, int kv_type) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = n_ctx;
    sp.n_threads = 1;
    sp.kv_type = kv_type;
    slm_session *s = NULL;
    slm_error err;
    if (slm_session_create(m, &sp, &s, &err) != SLM_OK) {
        CHECK(0, "session: %s", err.message);
        return NULL;
    }
    return s;
}

static float max_diff(const float *a, const float *b, int n) {
    float d = 0;
    for (int i = 0; i < n; i++) {
        float e = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        if (!(e <= d)) d = e;
    }
    return d;
}

/* the format's checksum, to build states with extra sections */
static uint64_t ld64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static void st32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}
static uint64_t sum_of(const uint8_t *p, size_t n) {
    uint64_t h = 0;
    for (; n >= 8; p += 8, n -= 8) {
        h = (h ^ ld64(p)) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    for (; n > 0; p++, n--) {
        h = (h ^ *p) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}
static void reseal(uint8_t *p, size_t n) {
    uint64_t h = sum_of(p, n - 8);
    st32(p + n - 8, (uint32_t)h);
    st32(p + n - 4, (uint32_t)(h >> 32));
}

void test_state(void) {
    slm_model *m = NULL, *other = NULL, *f32 = NULL;
    slm_error err;
    if (slm_model_load_file(data_path("demo/kjv-1m-q8_0.gguf"), NULL, &m, &err) != SLM_OK) {
        CHECK(0, "demo model: %s", err.message);
        return;
    }
    slm_model_info in;
    slm_model_get_info(m, &in);
    const int nv = in.n_vocab;
    const int32_t ids[12] = {1, 450, 365, 1955, 29928, 1497, 1, 2, 3, 4, 5, 6};
    int32_t prompt[10];
    for (int i = 0; i < 10; i++) prompt[i] = ids[i] % nv;
    const int32_t next = 7 % nv;
    float *want = (float *)malloc(sizeof(float) * (size_t)nv), *last = (float *)malloc(sizeof(float) * (size_t)nv);
    const int kvt[3] = {SLM_TYPE_F16, SLM_TYPE_F32, SLM_TYPE_Q8_0};
    uint8_t *saved = NULL;
    size_t saved_n = 0;
    for (int k = 0; k < 3; k++) {
        slm_session *a = new_session(m, 64, kvt[k]), *b = new_session(m, 128, kvt[k]);
        if (!a || !b) break;
        CHECK(slm_decode(a, prompt, 10, &err) == SLM_OK, "decode: %s", err.message);
        memcpy(last, slm_session_logits(a, -1), sizeof(float) * (size_t)nv);
        size_t need = slm_session_state_size(a, 10), w = 0;
        uint8_t *buf = (uint8_t *)malloc(need);
        CHECK(slm_session_state_save(a, prompt, 10, buf, 10, &w, &err) == SLM_ERR_BUFFER && w == need,
              "a small buffer: SLM_ERR_BUFFER and the size (%zu, %zu)", w, need);
        CHECK(slm_session_state_save(a, prompt, 10, buf, need, &w, &err) == SLM_OK && w == need, "save: %s",
              err.message);
        CHECK(slm_decode(a, &next, 1, &err) == SLM_OK, "decode next");
        memcpy(want, slm_session_logits(a, -1), sizeof(float) * (size_t)nv);

        int32_t toks[16], nt = 0;
        CHECK(slm_session_state_load(b, buf, w, toks, 4, &nt, &err) == SLM_ERR_BUFFER && nt == 10 &&
                  slm_session_pos(b) == 0,
              "too little room for the ids: SLM_ERR_BUFFER, the count, the session unchanged");
        CHECK(slm_session_state_load(b, buf, w, toks, 16, &nt, &err) == SLM_OK, "load (%s): %s",
              slm_type_name(kvt[k]), err.message);
        CHECK(nt == 10 && !memcmp(toks, prompt, sizeof prompt), "the token ids come back");
        CHECK(slm_session_pos(b) == 10, "position 10 after the load (%d)", slm_session_pos(b));
        const float *lb = slm_session_logits(b, -1);
        CHECK(lb && max_diff(lb, last, nv) == 0, "the last logits come back");
        CHECK(slm_decode(b, &next, 1, &err) == SLM_OK, "decode after the load");
        float d = max_diff(slm_session_logits(b, -1), want, nv);
        CHECK(d == 0, "%s KV: the logits after a restore equal those without (max diff %g)", slm_type_name(kvt[k]), d);
        printf("  state %s KV: %zu bytes for 10 positions, logits after restore: max diff %g\n", slm_type_name(kvt[k]),
               w, d);
        if (k == 0) {
            saved = buf;
            saved_n = w;
        } else {
            free(buf);
        }
        slm_session_free(a);
        slm_session_free(b);
    }
    if (!saved) goto done;

    /* refusals; the session stays as it was */
    slm_session *s = new_session(m, 64, SLM_TYPE_F16);
    const int32_t one = 5;
    slm_decode(s, &one, 1, &err);
    uint8_t *bad = (uint8_t *)malloc(saved_n + 64);
    memcpy(bad, saved, saved_n);
    bad[saved_n / 2] ^= 0x20;
    CHECK(slm_session_state_load(s, bad, saved_n, NULL, 0, NULL, &err) == SLM_ERR_FORMAT && strstr(err.message, "corrupt"),
          "a flipped bit: %s", err.message);
    CHECK(slm_session_pos(s) == 1, "the session is unchanged after a refused load");
    CHECK(slm_session_state_load(s, saved, saved_n - 8, NULL, 0, NULL, &err) != SLM_OK, "truncated: %s", err.message);
    CHECK(slm_session_state_load(s, "GGUF", 4, NULL, 0, NULL, &err) == SLM_ERR_FORMAT, "not a state: %s", err.message);
    memcpy(bad, saved, saved_n);
    st32(bad + 4, 99);
    CHECK(slm_session_state_load(s, bad, saved_n, NULL, 0, NULL, &err) == SLM_ERR_UNSUPPORTED &&
              strstr(err.message, "version 99"),
          "a newer version: %s", err.message);
    /* an unknown required section (say, recurrent state from a newer slm),
       then the same section marked optional: skipped */
    {
        size_t n = saved_n + 24;
        memcpy(bad, saved, saved_n - 8);
        uint8_t *sec = bad + saved_n - 8;
        st32(sec, 0x52434552u), st32(sec + 4, 1), st32(sec + 8, 8), st32(sec + 12, 0);
        memset(sec + 16, 7, 8);
        st32(bad + 36, saved[36] + 1u);
        reseal(bad, n);
        CHECK(slm_session_state_load(s, bad, n, NULL, 0, NULL, &err) == SLM_ERR_UNSUPPORTED &&
                  strstr(err.message, "required"),
              "an unknown required section: %s", err.message);
        st32(sec + 4, 0);
        reseal(bad, n);
        CHECK(slm_session_state_load(s, bad, n, NULL, 0, NULL, &err) == SLM_OK, "an unknown optional section is skipped: %s",
              err.message);
        slm_session_rewind(s, 0);
        slm_decode(s, &one, 1, &err);
    }
    /* hostile states: random bytes changed (mostly in the header and the
       section headers) or cut, with the checksum made valid again so the
       parser behind it is reached: never a crash, the session stays sane */
    {
        uint64_t rs = 12345;
        int accepted = 0, bad_pos = 0;
        for (int it = 0; it < 3000; it++) {
            size_t n = saved_n;
            memcpy(bad, saved, saved_n);
            int k = 1 + (int)(t_rand(&rs) % 4);
            for (int j = 0; j < k; j++) {
                size_t at = t_rand(&rs) % 2 ? t_rand(&rs) % 96 : t_rand(&rs) % (saved_n - 8);
                bad[at] = (uint8_t)t_rand(&rs);
            }
            if (t_rand(&rs) % 4 == 0) n = 8 * (1 + t_rand(&rs) % (saved_n / 8));
            if (n >= 16) reseal(bad, n);
            slm_status st = slm_session_state_load(s, bad, n, NULL, 0, NULL, &err);
            accepted += st == SLM_OK;
            if (st == SLM_OK) {
                bad_pos += slm_session_pos(s) > 64;
                slm_session_rewind(s, 0);
                slm_decode(s, &one, 1, &err);
            }
        }
        CHECK(bad_pos == 0, "accepted states keep pos within n_ctx (%d did not)", bad_pos);
        CHECK(slm_session_pos(s) == 1 && slm_decode(s, &one, 1, &err) == SLM_OK && slm_session_rewind(s, 1) == SLM_OK,
              "the session works after 3000 hostile states");
        printf("  state: 3000 hostile states, %d accepted (bytes inside the KV cache or logits), no crash\n", accepted);
    }
    slm_session *f = new_session(m, 64, SLM_TYPE_F32);
    CHECK(f && slm_session_state_load(f, saved, saved_n, NULL, 0, NULL, &err) == SLM_ERR_INVALID_ARG &&
              strstr(err.message, "KV cache"),
          "another KV type: %s", err.message);
    slm_session_free(f);
    slm_session *small = new_session(m, 8, SLM_TYPE_F16);
    CHECK(small && slm_session_state_load(small, saved, saved_n, NULL, 0, NULL, &err) == SLM_ERR_CONTEXT_FULL,
          "a context too small: %s", err.message);
    slm_session_free(small);
    if (slm_model_load_file(data_path("demo/kjv-1m-f32.gguf"), NULL, &f32, &err) == SLM_OK) {
        slm_session *o = new_session(f32, 64, SLM_TYPE_F16);
        CHECK(o && slm_session_state_load(o, saved, saved_n, NULL, 0, NULL, &err) == SLM_ERR_INVALID_ARG &&
                  strstr(err.message, "another model"),
              "the same model in another type (F32): %s", err.message);
        slm_session_free(o);
    }
    if (slm_model_load_file(data_path("models/tiny-llama-F32.gguf"), NULL, &other, &err) == SLM_OK) {
        slm_session *o = new_session(other, 64, SLM_TYPE_F16);
        CHECK(o && slm_session_state_load(o, saved, saved_n, NULL, 0, NULL, &err) != SLM_OK,
              "another model: refused (%s)", err.message);
        slm_session_free(o);
    }
    CHECK(slm_session_pos(s) == 1, "the session is unchanged after the refusals");

    /* through a file */
    {
        char path[600];
        snprintf(path, sizeof path, "%s/slm-state-%d.bin", tmp_dir(), (int)rand());
        slm_session *a = new_session(m, 64, SLM_TYPE_F16);
        slm_decode(a, prompt, 10, &err);
        CHECK(slm_session_state_save_file(a, path, prompt, 10, &err) == SLM_OK, "save_file: %s", err.message);
        slm_session *b = new_session(m, 64, SLM_TYPE_F16);
        int32_t toks[16], nt = 0;
        CHECK(slm_session_state_load_file(b, path, toks, 16, &nt, &err) == SLM_OK && nt == 10 &&
                  slm_session_pos(b) == 10,
              "load_file: %s", err.message);
        slm_decode(a, &next, 1, &err);
        slm_decode(b, &next, 1, &err);
        CHECK(max_diff(slm_session_logits(a, -1), slm_session_logits(b, -1), nv) == 0, "the same logits through a file");
        FILE *fp = fopen(path, "r+b");
        if (fp) {
            fseek(fp, 100, SEEK_SET);
            fputc(0x55, fp);
            fclose(fp);
        }
        CHECK(slm_session_state_load_file(b, path, NULL, 0, NULL, &err) == SLM_ERR_FORMAT && strstr(err.message, path),
              "a damaged file is named: %s", err.message);
        remove(path);
        CHECK(slm_session_state_load_file(b, path, NULL, 0, NULL, &err) == SLM_ERR_IO, "a missing file: %s", err.message);
        slm_session_free(a);
        slm_session_free(b);
    }
    free(bad);
    slm_session_free(s);
done:
    free(saved);
    free(want);
    free(last);
    slm_model_free(other);
    slm_model_free(f32);
    slm_model_free(m);
}
