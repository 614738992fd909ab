/* The 2026 families (issue 14): smollm3, olmo2, granite, and the hybrids
   lfm2 (short conv), qwen35 (Gated DeltaNet) and granitehybrid (Mamba2).
   test_models.c checks each fixture against llama.cpp's logits and greedy
   ids (with mmap/repack variants); this suite adds what the recurrent state
   must survive: batch sizes 1, 3, 16 at 1 and 2 threads, rewinding (the
   checkpoint and the replay path), several sessions on one model, the
   memory plan in an arena, and generate with the chat-style rewind of the
   end-of-turn token. */
#include "test.h"
#include "../slm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NPOS 16
#define NV 384

typedef struct fam {
    const char *name;
    double tol; /* the README's bar on max|out-ref| / max|ref| */
    int hybrid; /* has recurrent layers */
} fam;

static const fam FAMS[] = {
    {"tiny-smollm3-F32", 1e-3, 0},       {"tiny-smollm3-Q4_0", 3e-2, 0},    {"tiny-olmo2-F32", 1e-3, 0},
    {"tiny-olmo2-Q4_0", 3e-2, 0},        {"tiny-granite-F32", 1e-3, 0},     {"tiny-granite-Q4_0", 3e-2, 0},
    {"tiny-lfm2-F32", 1e-3, 1},          {"tiny-lfm2-Q4_0", 3e-2, 1},       {"tiny-qwen35-F32", 1e-3, 1},
    {"tiny-qwen35-Q4_0", 3e-2, 1},       {"tiny-granitehybrid-F32", 1e-3, 1}, {"tiny-granitehybrid-Q4_0", 3e-2, 1},
};

typedef struct fref {
    int32_t ids[NPOS], greedy[NPOS];
    double gap[NPOS];
    float logits[NPOS * NV];
    double maxabs;
} fref;

static int load_fref(const char *name, fref *r) {
    char p[256];
    size_t n;
    int64_t ids[NPOS], greedy[NPOS];
    snprintf(p, sizeof p, "models/%s.ref.json", name);
    char *js = (char *)read_all(data_path(p), &n);
    if (!js) return 0;
    int ok = json_ints(js, "input_ids", ids, NPOS) == NPOS && json_ints(js, "greedy_ids", greedy, NPOS) == NPOS &&
             json_floats(js, "greedy_top1_top2_gap", r->gap, NPOS) == NPOS;
    free(js);
    for (int i = 0; i < NPOS; i++) {
        r->ids[i] = (int32_t)ids[i];
        r->greedy[i] = (int32_t)greedy[i];
    }
    snprintf(p, sizeof p, "models/%s.logits.f32", name);
    ok = ok && read_f32(data_path(p), r->logits, NPOS * NV) == NPOS * NV;
    r->maxabs = 0;
    for (int i = 0; i < NPOS * NV; i++)
        if (fabs(r->logits[i]) > r->maxabs) r->maxabs = fabs(r->logits[i]);
    return ok;
}

static double maxdiff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d;
}

static slm_session *new_session(const slm_model *m, int threads, int n_batch, int logits_all) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.kv_type = SLM_TYPE_F32;
    sp.n_threads = threads;
    sp.n_batch = n_batch;
    sp.logits_all = logits_all;
    slm_session *s = NULL;
    slm_error err;
    if (slm_session_create(m, &sp, &s, &err) != SLM_OK) printf("  session: %s\n", err.message);
    return s;
}

/* The 16 prompt positions' logits at a thread count and batch size. */
static int run_all(const slm_model *m, int threads, int n_batch, const fref *r, float *out) {
    slm_session *s = new_session(m, threads, n_batch, 1);
    if (!s) return 0;
    int ok = slm_decode(s, r->ids, NPOS, NULL) == SLM_OK;
    for (int i = 0; ok && i < NPOS; i++) memcpy(out + i * NV, slm_session_logits(s, i), NV * sizeof(float));
    slm_session_free(s);
    return ok;
}

/* A decoder with recurrent layers used as an embedder (LAST pooling):
   each sequence starts from a zero state, so embedding the same ids twice
   in one session, or in a fresh one, gives the same vector; decoding after
   it still matches a fresh session (found by the fuzz replay: the
   embedding path ran the scans with no state set). */
static void check_embed_hybrid(const fam *f, const slm_model *m, const fref *r) {
    const int E = slm_model_n_embd_out(m);
    static float a[4096], b[4096], c[4096];
    if (E <= 0 || E > 4096) return;
    slm_embed_params ep;
    slm_embed_params_init(&ep);
    ep.pooling = SLM_POOLING_LAST;
    slm_session *s = new_session(m, 2, 16, 0), *s2 = new_session(m, 1, 16, 0);
    slm_error err;
    int ok = s && s2 && slm_embed_tokens(s, r->ids, 12, &ep, a, 4096, &err) == SLM_OK &&
             slm_embed_tokens(s, r->ids, 12, &ep, b, 4096, &err) == SLM_OK &&
             slm_embed_tokens(s2, r->ids, 12, &ep, c, 4096, &err) == SLM_OK;
    CHECK(ok, "%s: embed: %s", f->name, err.message);
    if (ok) {
        CHECK(memcmp(a, b, (size_t)E * sizeof(float)) == 0, "%s: embedding twice differs", f->name);
        CHECK(maxdiff(a, c, E) <= 1e-5 * (1.0 + fabs((double)a[0])), "%s: embedding in a fresh session differs",
              f->name);
        /* a decode after embedding starts over from position 0 */
        CHECK(slm_session_rewind(s, 0) == SLM_OK && slm_decode(s, r->ids, NPOS, &err) == SLM_OK, "%s: decode after embed",
              f->name);
        slm_session *s3 = new_session(m, 2, 16, 0);
        if (s3 && slm_decode(s3, r->ids, NPOS, &err) == SLM_OK)
            CHECK(maxdiff(slm_session_logits(s, -1), slm_session_logits(s3, -1), NV) == 0,
                  "%s: decode after embed differs from a fresh session", f->name);
        slm_session_free(s3);
    }
    slm_session_free(s);
    slm_session_free(s2);
}

/* Steps of the greedy path that must match: all, or up to the first whose
   reference gap is within our error (the README's rule). */
static int must_match(const fref *r, double rel) {
    for (int i = 0; i < NPOS; i++)
        if (r->gap[i] < 2 * rel * r->maxabs) return i + 1;
    return NPOS;
}

/* Batch sizes 1, 3 and 16 at 1 and 2 threads: the same logits (the scans
   run token by token inside a chunk, each head on one thread), within the
   bar of llama.cpp's; greedy ids at 2 threads with a batch of 3. */
static void check_batches(const fam *f, const slm_model *m, const fref *r) {
    static float base[NPOS * NV], out[NPOS * NV];
    if (!run_all(m, 1, 16, r, base)) {
        CHECK(0, "%s: base run", f->name);
        return;
    }
    double rel = maxdiff(base, r->logits, NPOS * NV) / r->maxabs;
    CHECK(rel <= f->tol, "%s: rel %.2e > %.0e", f->name, rel, f->tol);
    static const int BATCH[3] = {1, 3, 16};
    double worst = 0;
    for (int th = 1; th <= 2; th++)
        for (int b = 0; b < 3; b++) {
            if (th == 1 && BATCH[b] == 16) continue;
            if (test_quick() && (th == 1 || BATCH[b] != 3)) continue; /* emulated targets: 2 threads, batch 3 */
            if (!run_all(m, th, BATCH[b], r, out)) {
                CHECK(0, "%s: run at %d threads, batch %d", f->name, th, BATCH[b]);
                continue;
            }
            double d = maxdiff(out, base, NPOS * NV) / r->maxabs;
            if (d > worst) worst = d;
            CHECK(d <= 1e-5, "%s: %d threads, batch %d differ from 1 thread, batch 16 by %.2e", f->name, th, BATCH[b], d);
        }
    /* greedy: the prompt in chunks of 3, then one token at a time */
    slm_session *s = new_session(m, 2, 3, 0);
    int32_t g[NPOS];
    int ok = s && slm_decode(s, r->ids, NPOS, NULL) == SLM_OK;
    for (int i = 0; ok && i < NPOS; i++) {
        g[i] = argmax(slm_session_logits(s, -1), NV);
        ok = slm_decode(s, &g[i], 1, NULL) == SLM_OK;
    }
    slm_session_free(s);
    int same = 0;
    while (ok && same < NPOS && g[same] == r->greedy[same]) same++;
    CHECK(ok && same >= must_match(r, rel), "%s: greedy ids match for %d steps (2 threads, batch 3)", f->name, same);
    printf("  %-24s rel %.2e; threads 1-2 x batch 1/3/16 within %.1e of each other; greedy %d/16\n", f->name, rel,
           worst, same);
}

/* Logits of the last token after decoding ids[0, n) in pieces of `step`. */
static int decode_steps(slm_session *s, const int32_t *ids, int n, int step) {
    for (int i = 0; i < n; i += step)
        if (slm_decode(s, ids + i, (n - i < step ? n - i : step), NULL) != SLM_OK) return 0;
    return 1;
}

/* Rewind on a hybrid: "decode 16, rewind to 8, decode again" equals a
   fresh run, through each path slm.h documents: the checkpoint (the state
   before the last decode call), a replay from position 0, a replay from
   the checkpoint, and rewinding to 0. */
static void check_rewind(const fam *f, const slm_model *m, const fref *r) {
    float fresh[NV], l[NV];
    slm_session *s = new_session(m, 2, 16, 0);
    if (!s) {
        CHECK(0, "%s: session", f->name);
        return;
    }
    CHECK(decode_steps(s, r->ids, NPOS, NPOS), "%s: prompt", f->name);
    memcpy(fresh, slm_session_logits(s, -1), sizeof fresh);
    const double tol = 1e-6 * r->maxabs;
    double worst = 0, d;
#define SAME(what)                                                                                  \
    do {                                                                                            \
        const float *lg = slm_session_logits(s, -1);                                                \
        d = lg ? maxdiff(lg, fresh, NV) : 1e9;                                                      \
        if (d > worst) worst = d;                                                                   \
        CHECK(d <= tol, "%s: %s: logits differ from a fresh run by %.2e", f->name, what, d);        \
    } while (0)
    /* 1. one batch of 16, rewind to 8 (inside that batch: replay from 0) */
    CHECK(slm_session_rewind(s, 8) == SLM_OK, "%s: rewind 16 -> 8", f->name);
    CHECK(slm_session_pos(s) == 8 && slm_session_logits(s, -1) == NULL, "%s: pos after rewind", f->name);
    CHECK(decode_steps(s, r->ids + 8, 8, 8), "%s: decode 8..16", f->name);
    SAME("batch 16, rewind to 8, batch 8");
    /* 2. token by token, rewind to 8, token by token */
    CHECK(slm_session_rewind(s, 0) == SLM_OK, "%s: rewind to 0", f->name);
    CHECK(decode_steps(s, r->ids, NPOS, 1), "%s: one at a time", f->name);
    SAME("16 single tokens");
    CHECK(slm_session_rewind(s, 8) == SLM_OK, "%s: rewind 16 -> 8", f->name);
    CHECK(decode_steps(s, r->ids + 8, 8, 1), "%s: decode 8..16", f->name);
    SAME("single tokens, rewind to 8, single tokens");
    /* 3. the checkpoint: drop the last decode call (chat drops the
       end-of-turn token this way) and decode it again */
    CHECK(slm_session_rewind(s, 15) == SLM_OK, "%s: rewind 16 -> 15", f->name);
    CHECK(decode_steps(s, r->ids + 15, 1, 1), "%s: decode 15", f->name);
    SAME("rewind the last call");
    /* 4. replay forward from the checkpoint: 8 + 8, rewind to 12 */
    CHECK(slm_session_rewind(s, 0) == SLM_OK && decode_steps(s, r->ids, NPOS, 8), "%s: 8 + 8", f->name);
    SAME("two calls of 8");
    CHECK(slm_session_rewind(s, 12) == SLM_OK, "%s: rewind 16 -> 12", f->name);
    CHECK(decode_steps(s, r->ids + 12, 4, 3), "%s: decode 12..16", f->name);
    SAME("8 + 8, rewind to 12, 3 + 1");
    /* 5. rewind twice in a row, below the checkpoint, then forward */
    CHECK(slm_session_rewind(s, 10) == SLM_OK && slm_session_rewind(s, 5) == SLM_OK, "%s: rewind 10, 5", f->name);
    CHECK(slm_session_pos(s) == 5 && decode_steps(s, r->ids + 5, 11, 4), "%s: decode 5..16", f->name);
    SAME("rewind to 10 then 5");
    CHECK(slm_session_rewind(s, 17) == SLM_ERR_INVALID_ARG, "%s: a rewind forward is refused", f->name);
    CHECK(slm_session_rewind(s, 16) == SLM_OK && slm_session_pos(s) == 16, "%s: rewind to pos", f->name);
    /* then the greedy path from there matches llama.cpp's */
    int32_t g[NPOS];
    int ok = slm_session_rewind(s, 15) == SLM_OK && decode_steps(s, r->ids + 15, 1, 1);
    for (int i = 0; ok && i < NPOS; i++) {
        g[i] = argmax(slm_session_logits(s, -1), NV);
        ok = slm_decode(s, &g[i], 1, NULL) == SLM_OK;
    }
    int same = 0;
    while (ok && same < NPOS && g[same] == r->greedy[same]) same++;
    double rel = maxdiff(fresh, r->logits + (NPOS - 1) * NV, NV) / r->maxabs;
    CHECK(same >= must_match(r, rel), "%s: greedy after rewinds matches %d steps", f->name, same);
    /* 6. a logits_all session keeps every row after a replaying rewind */
    slm_session_free(s);
    s = new_session(m, 1, 5, 1);
    CHECK(s && decode_steps(s, r->ids, NPOS, NPOS) && slm_session_rewind(s, 3) == SLM_OK &&
              decode_steps(s, r->ids + 3, 13, 13),
          "%s: logits_all rewind", f->name);
    for (int i = 0; s && i < 13; i++) {
        const float *lg = slm_session_logits(s, i);
        d = lg ? maxdiff(lg, r->logits + (3 + i) * NV, NV) / r->maxabs : 1e9;
        CHECK(d <= f->tol, "%s: logits_all row %d after rewind: rel %.2e", f->name, 3 + i, d);
    }
    (void)l;
    slm_session_free(s);
    printf("  %-24s rewind paths: worst difference from a fresh run %.1e\n", f->name, worst / r->maxabs);
#undef SAME
}

/* Session state save/restore on a hybrid: the recurrent state and the ids
   travel with the KV cache; the restored session decodes and rewinds as
   the original does. */
static void check_state(const fam *f, const slm_model *m, const fref *r) {
    slm_session *a = new_session(m, 1, 16, 0), *b = new_session(m, 2, 4, 0);
    slm_error err;
    float la[NV], lb[NV];
    int ok = a && b && decode_steps(a, r->ids, 12, 5);
    size_t need = ok ? slm_session_state_size(a, 0) : 0, w = 0;
    unsigned char *buf = (unsigned char *)malloc(need ? need : 1);
    ok = ok && buf && slm_session_state_save(a, NULL, 0, buf, need, &w, &err) == SLM_OK && w == need;
    CHECK(ok, "%s: state save", f->name);
    ok = ok && slm_session_state_load(b, buf, w, NULL, 0, NULL, &err) == SLM_OK;
    CHECK(ok, "%s: state load: %s", f->name, ok ? "" : err.message);
    CHECK(!ok || slm_session_pos(b) == 12, "%s: restored pos", f->name);
    ok = ok && decode_steps(a, r->ids + 12, 4, 4) && decode_steps(b, r->ids + 12, 4, 1);
    if (ok) {
        memcpy(la, slm_session_logits(a, -1), sizeof la);
        memcpy(lb, slm_session_logits(b, -1), sizeof lb);
    }
    CHECK(ok && maxdiff(la, lb, NV) <= 1e-6 * r->maxabs, "%s: restored session differs", f->name);
    /* a rewind in the restored session replays the saved ids */
    ok = ok && slm_session_rewind(b, 6) == SLM_OK && decode_steps(b, r->ids + 6, 10, 10);
    CHECK(ok && maxdiff(slm_session_logits(b, -1), la, NV) <= 1e-6 * r->maxabs, "%s: rewind after restore", f->name);
    /* a damaged recurrent section is refused, the session unchanged */
    if (buf && w > 64) {
        buf[w - 20] ^= 0x55; /* inside RECS (the last section), checksum now wrong */
        CHECK(slm_session_state_load(b, buf, w, NULL, 0, NULL, &err) != SLM_OK && slm_session_pos(b) == 16,
              "%s: damaged state accepted", f->name);
    }
    free(buf);
    slm_session_free(a);
    slm_session_free(b);
}

/* Two sessions on one model, decoding interleaved token by token: each
   gets what it gets alone (the state lives in the session). */
static void check_two_sessions(const fam *f, const slm_model *m, const fref *r) {
    float alone[NV];
    int32_t rev[NPOS];
    for (int i = 0; i < NPOS; i++) rev[i] = r->ids[NPOS - 1 - i];
    slm_session *a = new_session(m, 1, 16, 0), *b = new_session(m, 2, 4, 0);
    if (!a || !b) {
        CHECK(0, "%s: sessions", f->name);
        slm_session_free(a);
        slm_session_free(b);
        return;
    }
    CHECK(decode_steps(b, rev, NPOS, NPOS), "%s: b alone", f->name);
    memcpy(alone, slm_session_logits(b, -1), sizeof alone);
    CHECK(slm_session_rewind(b, 0) == SLM_OK, "%s: b rewind", f->name);
    int ok = 1;
    for (int i = 0; ok && i < NPOS; i++)
        ok = slm_decode(a, r->ids + i, 1, NULL) == SLM_OK && slm_decode(b, rev + i, 1, NULL) == SLM_OK;
    CHECK(ok, "%s: interleaved decode", f->name);
    double da = ok ? maxdiff(slm_session_logits(a, -1), r->logits + (NPOS - 1) * NV, NV) / r->maxabs : 1;
    double db = ok ? maxdiff(slm_session_logits(b, -1), alone, NV) / r->maxabs : 1;
    CHECK(da <= f->tol, "%s: session a (interleaved) rel %.2e", f->name, da);
    CHECK(db <= 1e-6, "%s: session b (interleaved) differs from b alone by %.2e", f->name, db);
    slm_session_free(a);
    slm_session_free(b);
}

/* The memory plan: model + session (with the recurrent state) in an arena
   of exactly slm_model_memory_size bytes gives llama.cpp's logits; the
   session's own plan matches what it allocates. */
static void check_arena(const fam *f, const fref *r) {
    char path[256];
    snprintf(path, sizeof path, "models/%s.gguf", f->name);
    size_t size;
    unsigned char *data = read_all(data_path(path), &size);
    if (!data) {
        CHECK(0, "%s: read", f->name);
        return;
    }
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 64;
    sp.n_threads = 1;
    sp.kv_type = SLM_TYPE_F32;
    slm_error err;
    size_t need_model = slm_model_memory_size(data, size, NULL, NULL, &err);
    size_t need = slm_model_memory_size(data, size, NULL, &sp, &err);
    CHECK(need > need_model && need_model > 0, "%s: memory plan %zu / %zu", f->name, need_model, need);
    unsigned char *raw = (unsigned char *)malloc(need + 64);
    unsigned char *buf = raw + (64 - (uintptr_t)raw % 64) % 64;
    slm_arena ar;
    slm_arena_init(&ar, buf, need);
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.allocator = &ar.allocator;
    slm_model *m = NULL;
    slm_session *s = NULL;
    slm_status st = slm_model_load_memory(data, size, &mp, &m, &err);
    size_t before = slm_arena_used(&ar);
    if (st == SLM_OK) st = slm_session_create(m, &sp, &s, &err);
    CHECK(st == SLM_OK, "%s: model + session in %zu bytes: %s", f->name, need, err.message);
    if (st == SLM_OK) {
        size_t used = slm_arena_used(&ar) - before, plan = slm_session_memory_size(m, &sp);
        /* the arena rounds each block to 64 bytes */
        CHECK(plan <= used && used <= plan + 64 * 32, "%s: session plan %zu bytes, allocated %zu", f->name, plan, used);
        int ok = slm_decode(s, r->ids, NPOS, &err) == SLM_OK;
        CHECK(ok, "%s: decode in the arena: %s", f->name, err.message);
        double d = ok ? maxdiff(slm_session_logits(s, -1), r->logits + (NPOS - 1) * NV, NV) / r->maxabs : 1;
        CHECK(d <= f->tol, "%s: arena run rel %.2e", f->name, d);
        CHECK(slm_session_rewind(s, 4) == SLM_OK && slm_decode(s, r->ids + 4, 12, NULL) == SLM_OK,
              "%s: rewind in the arena", f->name);
    }
    slm_session_free(s);
    slm_model_free(m);
    CHECK(slm_arena_used(&ar) == 0, "%s: %zu bytes in use after freeing", f->name, slm_arena_used(&ar));
    free(raw);
    free(data);
}

typedef struct gen_text {
    char s[512];
    size_t n;
} gen_text;

static int on_text(void *user, const char *t, size_t n) {
    gen_text *g = (gen_text *)user;
    if (g->n + n < sizeof g->s) {
        memcpy(g->s + g->n, t, n);
        g->n += n;
        g->s[g->n] = 0;
    }
    return 0;
}

/* generate on a hybrid: the same seed gives the same text after a rewind
   to 0; a chat turn that ends with the end-of-turn token drops it with a
   rewind of one (the checkpoint) and the next turn continues from there. */
static void check_generate(const fam *f, const slm_model *m) {
    slm_session *s = new_session(m, 2, 8, 0);
    if (!s) return;
    gen_text t[2];
    slm_error err;
    for (int i = 0; i < 2; i++) {
        memset(&t[i], 0, sizeof t[i]);
        slm_generate_params gp;
        slm_generate_params_init(&gp);
        gp.max_tokens = 12;
        gp.sampler.seed = 7;
        gp.sampler.temperature = 0.8f;
        gp.on_text = on_text;
        gp.user = &t[i];
        slm_session_rewind(s, 0);
        slm_generate_result res;
        CHECK(slm_generate(s, "hello world, hello", 18, NULL, 0, &gp, &res, &err) == SLM_OK, "%s: generate: %s",
              f->name, err.message);
        CHECK(res.n_generated > 0, "%s: nothing generated", f->name);
    }
    CHECK(t[0].n == t[1].n && memcmp(t[0].s, t[1].s, t[0].n) == 0, "%s: generate after rewind 0 differs", f->name);
    /* the chat pattern: decode a turn's last token alone, drop it, go on */
    int32_t pos = slm_session_pos(s), eot = 381, next = 100;
    float a[NV];
    CHECK(slm_decode(s, &eot, 1, NULL) == SLM_OK && slm_session_rewind(s, pos) == SLM_OK, "%s: drop eot", f->name);
    CHECK(slm_decode(s, &next, 1, NULL) == SLM_OK, "%s: next turn", f->name);
    memcpy(a, slm_session_logits(s, -1), sizeof a);
    CHECK(slm_session_rewind(s, pos) == SLM_OK && slm_decode(s, &next, 1, NULL) == SLM_OK, "%s: again", f->name);
    CHECK(memcmp(a, slm_session_logits(s, -1), sizeof a) == 0, "%s: the dropped token left a trace", f->name);
    slm_session_free(s);
}

/* The families' chat templates: detection from excerpts of the published
   Jinja templates and the text each renders, whole and incrementally. */
static void check_chat(void) {
    static const struct {
        const char *tmpl;
        int family;
    } DET[] = {
        /* Granite 4.0 (and 3.x): roles between <|start_of_role|> tags */
        {"{%- for message in loop_messages %}{{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + "
         "message['content'] + '<|end_of_text|>\n' }}{%- if loop.last and add_generation_prompt %}{{- "
         "'<|start_of_role|>assistant<|end_of_role|>' }}{%- endif %}{%- endfor %}",
         SLM_CHAT_GRANITE},
        /* OLMo 2 Instruct (Tulu 3) */
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + "
         "message['content'] + '\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + "
         "'\n' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\n'  + "
         "message['content'] + eos_token + '\n' }}{% else %}{{ '<|assistant|>\n'  + message['content'] + eos_token }}"
         "{% endif %}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
         "{% endfor %}",
         SLM_CHAT_OLMO2},
        /* LFM2: ChatML after its own BOS */
        {"{{bos_token}}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
         "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}",
         SLM_CHAT_CHATML},
        /* SmolLM3: ChatML with reasoning flags (its own family, tests/test_chat_think.c);
           a ChatML template with think blocks but no enable_thinking switch stays ChatML */
        {"{%- set reasoning_mode = \"/think\" -%}{{- \"<|im_start|>system\\n\" -}}{{- \"## Metadata\\n\\n\" -}}"
         "{{- \"Reasoning Mode: \" + reasoning_mode + \"\\n\\n\" -}}{%- set reasoning_mode = \"/no_think\" -%}<|im_end|>",
         SLM_CHAT_SMOLLM3},
        {"{%- if '</think>' in content %}{%- set reasoning_content = content.split('</think>')[0] %}{%- endif %}"
         "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content + '\\n</think>\\n\\n' }}",
         SLM_CHAT_CHATML},
        /* Zephyr stays Zephyr (EOS after every turn) */
        {"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
         "eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + "
         "eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}"
         "\n{% endfor %}",
         SLM_CHAT_ZEPHYR},
    };
    for (size_t i = 0; i < sizeof DET / sizeof DET[0]; i++)
        CHECK(slm_chat_detect(DET[i].tmpl) == DET[i].family, "chat detect #%d: %d, expected %d", (int)i,
              slm_chat_detect(DET[i].tmpl), DET[i].family);
    static const slm_chat_message CONV[] = {{"system", "You are a helpful assistant."},
                                            {"user", "Hello!"},
                                            {"assistant", "Hi there."},
                                            {"user", "Tell me a joke."}};
    static const struct {
        int family;
        const char *full;
    } EXP[] = {
        {SLM_CHAT_GRANITE,
         "<|start_of_role|>system<|end_of_role|>You are a helpful assistant.<|end_of_text|>\n"
         "<|start_of_role|>user<|end_of_role|>Hello!<|end_of_text|>\n"
         "<|start_of_role|>assistant<|end_of_role|>Hi there.<|end_of_text|>\n"
         "<|start_of_role|>user<|end_of_role|>Tell me a joke.<|end_of_text|>\n"
         "<|start_of_role|>assistant<|end_of_role|>"},
        {SLM_CHAT_OLMO2, "<|system|>\nYou are a helpful assistant.\n<|user|>\nHello!\n<|assistant|>\nHi there.</s>\n"
                         "<|user|>\nTell me a joke.\n<|assistant|>\n"},
    };
    for (size_t i = 0; i < sizeof EXP / sizeof EXP[0]; i++) {
        char buf[1024];
        size_t len;
        slm_error err;
        const char *name = slm_chat_family_name(EXP[i].family);
        CHECK(name && slm_chat_family_from_name(name) == EXP[i].family, "family name %d", EXP[i].family);
        int ok = slm_chat_format(NULL, EXP[i].family, CONV, 4, 0, 1, buf, sizeof buf, &len, NULL, &err) == SLM_OK;
        CHECK(ok && strcmp(buf, EXP[i].full) == 0, "%s: rendered\n%s\nexpected\n%s", name, ok ? buf : err.message,
              EXP[i].full);
        /* incremental: after the reply (message 2), the rest is a suffix */
        ok = slm_chat_format(NULL, EXP[i].family, CONV, 4, 3, 1, buf, sizeof buf, &len, NULL, &err) == SLM_OK;
        const char *tail = strstr(EXP[i].full, "Hi there.");
        CHECK(ok && tail && strcmp(buf, tail + 9) == 0, "%s: incremental text '%s'", name, ok ? buf : err.message);
    }
}

/* Offset of the value of metadata key `key` in a GGUF image (after the
   key's length-prefixed name and its u32 type), or 0. */
static size_t key_value_at(const unsigned char *d, size_t n, const char *key) {
    size_t kl = strlen(key);
    for (size_t i = 8; i + kl + 4 < n; i++)
        if (d[i - 8] == (unsigned char)kl && d[i - 7] == 0 && memcmp(d + i, key, kl) == 0) return i + kl + 4;
    return 0;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Bad hyperparameters of the new families give a clear error, no crash. */
static void check_bad_files(void) {
    static const struct {
        const char *file, *key;
        int elem;       /* -1: a scalar; else the array element */
        uint32_t value;
        const char *msg; /* expected in the error message */
    } BAD[] = {
        {"tiny-qwen35-Q4_0", "qwen35.ssm.group_count", -1, 3, "do not divide"},
        {"tiny-qwen35-Q4_0", "qwen35.ssm.state_size", -1, 5000, "outside"},
        {"tiny-qwen35-Q4_0", "qwen35.ssm.inner_size", -1, 512, "attn_qkv.weight"},
        {"tiny-qwen35-Q4_0", "qwen35.full_attention_interval", -1, 0, "outside"},
        {"tiny-qwen35-Q4_0", "qwen35.full_attention_interval", -1, 1, "attn_qkv"},
        {"tiny-lfm2-Q4_0", "lfm2.shortconv.l_cache", -1, 100, "outside"},
        {"tiny-lfm2-Q4_0", "lfm2.shortconv.l_cache", -1, 4, "shortconv.conv.weight"},
        {"tiny-lfm2-Q4_0", "lfm2.attention.head_count_kv", 1, 3, "head_count"},
        {"tiny-lfm2-Q4_0", "lfm2.attention.head_count_kv", 0, 2, "attn_q.weight"},
        {"tiny-lfm2-Q4_0", "lfm2.attention.head_count_kv", 1, 9, "head count"},
        {"tiny-granitehybrid-Q4_0", "granitehybrid.ssm.time_step_rank", -1, 7, "do not divide"},
        {"tiny-granitehybrid-Q4_0", "granitehybrid.ssm.conv_kernel", -1, 3, "ssm_conv1d.weight"},
        {"tiny-granitehybrid-Q4_0", "granitehybrid.attention.head_count_kv", 1, 0, "ssm_in.weight"},
        {"tiny-granite-Q4_0", "granite.logit_scale", -1, 0, "logit_scale"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        char path[256];
        size_t n;
        snprintf(path, sizeof path, "models/%s.gguf", BAD[i].file);
        unsigned char *d = read_all(data_path(path), &n);
        size_t at = d ? key_value_at(d, n, BAD[i].key) : 0;
        CHECK(at > 0, "%s: key %s not found", BAD[i].file, BAD[i].key);
        if (!at) {
            free(d);
            continue;
        }
        /* arrays: element type u32, count u64, then the elements */
        put_u32(d + at + (BAD[i].elem < 0 ? 0 : 12 + 4 * (size_t)BAD[i].elem), BAD[i].value);
        slm_model *m = NULL;
        slm_error err;
        slm_status st = slm_model_load_memory(d, n, NULL, &m, &err);
        CHECK(st != SLM_OK && m == NULL && strstr(err.message, BAD[i].msg) != NULL,
              "%s with %s = %u: status %d, '%s' (expected '%s')", BAD[i].file, BAD[i].key, BAD[i].value, st,
              st != SLM_OK ? err.message : "", BAD[i].msg);
        slm_model_free(m);
        free(d);
    }
}

/* Other weight types (the kinds the fixture README keeps for its held-out
   check): each family in Q4_K and Q6_K, made from the F32 fixture by
   llama.cpp's llama-quantize --pure, against llama.cpp's logits and greedy
   ids (tests/data/FIXTURES-families-2026.md, "Q4_K and Q6_K"): the K-quant
   x8 and GEMM paths on every layer kind, batches and threads as above. */
static void check_other_types(void) {
    static const struct {
        const char *arch;
        int hybrid;
    } ARCHS[] = {{"smollm3", 0}, {"olmo2", 0}, {"granite", 0}, {"lfm2", 1}, {"qwen35", 1}, {"granitehybrid", 1}};
    static const char *const TYPES[] = {"Q4_K", "Q6_K"};
    static fref r;
    for (size_t a = 0; a < sizeof ARCHS / sizeof ARCHS[0]; a++)
        for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++) {
            if (test_quick() && t > 0) continue; /* emulated targets: Q4_K */
            char name[64], path[256];
            snprintf(name, sizeof name, "tiny-%s-%s", ARCHS[a].arch, TYPES[t]);
            snprintf(path, sizeof path, "models/%s.gguf", name);
            slm_model *m = NULL;
            slm_error err;
            if (!load_fref(name, &r) || slm_model_load_file(data_path(path), NULL, &m, &err) != SLM_OK) {
                CHECK(0, "%s: fixture missing or not loaded", name);
                continue;
            }
            const fam f = {name, 3e-2, ARCHS[a].hybrid};
            check_batches(&f, m, &r);
            slm_model_free(m);
        }
}

void test_families(void) {
    check_chat();
    check_other_types();
    check_bad_files();
    static fref r;
    for (size_t i = 0; i < sizeof FAMS / sizeof FAMS[0]; i++) {
        const fam *f = &FAMS[i];
        /* emulated targets: the F32 files (test_models checks the others) */
        if (test_quick() && !strstr(f->name, "-F32")) continue;
        if (!load_fref(f->name, &r)) {
            CHECK(0, "%s: reference files missing", f->name);
            continue;
        }
        char path[256];
        snprintf(path, sizeof path, "models/%s.gguf", f->name);
        slm_model *m;
        slm_error err;
        if (slm_model_load_file(data_path(path), NULL, &m, &err) != SLM_OK) {
            CHECK(0, "%s: load: %s", f->name, err.message);
            continue;
        }
        /* no chat template in the fixtures: the family follows the architecture */
        {
            static const struct {
                const char *prefix;
                int family;
            } IMPLIED[] = {{"tiny-granite", SLM_CHAT_GRANITE}, {"tiny-olmo2", SLM_CHAT_OLMO2},
                           {"tiny-smollm3", SLM_CHAT_SMOLLM3}, {"tiny-lfm2", SLM_CHAT_LFM2},
                           {"tiny-qwen35", SLM_CHAT_QWEN35},   {"tiny-", SLM_CHAT_CHATML}};
            size_t k = 0;
            while (strncmp(f->name, IMPLIED[k].prefix, strlen(IMPLIED[k].prefix)) != 0) k++;
            int fb = 0, fam_got = slm_chat_model_family(m, &fb);
            CHECK(fam_got == IMPLIED[k].family && fb == 1, "%s: chat family %d (fallback %d), expected %d", f->name,
                  fam_got, fb, IMPLIED[k].family);
        }
        check_batches(f, m, &r);
        check_embed_hybrid(f, m, &r);
        /* emulated targets (make test-cross): the rewind, session and state
           paths once per hybrid, on its F32 file */
        if (f->hybrid && (!test_quick() || strstr(f->name, "-F32"))) {
            check_rewind(f, m, &r);
            check_two_sessions(f, m, &r);
            check_state(f, m, &r);
            if (!test_quick()) check_generate(f, m);
        }
        slm_model_free(m);
        if (f->hybrid && !test_quick()) check_arena(f, &r);
    }
}
