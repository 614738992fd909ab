/* Files: UTF-8 names (Windows converts them for the wide-character calls),
   the three ways in (mapped, read, memory) giving the same logits, the
   copy-on-write mapping leaving the file alone after the in-place repack,
   and file sizes beyond 4 GiB (64-bit sizes on Windows, where long is 32
   bits). */
#include "test.h"
#include "gguf_build.h"
#include "../slm.h"

#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#endif

/* fopen by UTF-8 name (the test's own, independent of the library's) */
static FILE *fopen_utf8(const char *path, const char *mode) {
#if defined(_WIN32)
    wchar_t w[1024], wm[8];
    if (!MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, 1024)) return NULL;
    if (!MultiByteToWideChar(CP_UTF8, 0, mode, -1, wm, 8)) return NULL;
    return _wfopen(w, wm);
#else
    return fopen(path, mode);
#endif
}

static int remove_utf8(const char *path) {
#if defined(_WIN32)
    wchar_t w[1024];
    if (!MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, 1024)) return -1;
    return _wremove(w);
#else
    return remove(path);
#endif
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen_utf8(path, "wb");
    if (!f) return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static unsigned char *read_utf8(const char *path, size_t *n) {
    FILE *f = fopen_utf8(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, len = 0, got;
    unsigned char *p = (unsigned char *)malloc(cap);
    while (p && (got = fread(p + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            unsigned char *q = (unsigned char *)realloc(p, cap *= 2);
            if (!q) free(p);
            p = q;
        }
    }
    fclose(f);
    *n = len;
    return p;
}

/* Logits of every position of a short prompt (n_vocab each), 0 on failure. */
static int logits_of(const slm_model *m, const int32_t *ids, int n, float *out, int nv) {
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_ctx = 32;
    sp.n_threads = 1;
    sp.logits_all = 1;
    slm_session *s;
    if (slm_session_create(m, &sp, &s, NULL) != SLM_OK) return 0;
    int ok = slm_decode(s, ids, n, NULL) == SLM_OK;
    for (int i = 0; ok && i < n; i++) {
        const float *l = slm_session_logits(s, i);
        if (!l) ok = 0;
        else memcpy(out + (size_t)i * nv, l, (size_t)nv * sizeof(float));
    }
    slm_session_free(s);
    return ok;
}

#define NTOK 6

/* A UTF-8 name (u-umlaut, CJK, Greek): mapped, read and from memory. */
static void check_utf8_names(void) {
    static int salt;
    char path[600], qpath[640];
    snprintf(path, sizeof path, "%s/slm-files-%lx-\xc3\xbc\xe6\x97\xa5\xce\xb1.gguf", tmp_dir(),
             (unsigned long)(size_t)&salt ^ (unsigned long)rand());
    snprintf(qpath, sizeof qpath, "%s.\xc3\xa9-q8_0.gguf", path);
    size_t n;
    unsigned char *buf = read_all(data_path("models/tiny-llama-Q4_0.gguf"), &n);
    CHECK(buf != NULL, "fixture tiny-llama-Q4_0.gguf missing");
    if (!buf) return;
    CHECK(write_file(path, buf, n), "cannot write %s", path);
#if defined(_WIN32)
    {
        /* the name on disk is the intended one, not the bytes in a code page */
        wchar_t w[1024];
        MultiByteToWideChar(CP_UTF8, 0, tmp_dir(), -1, w, 900);
        WIN32_FIND_DATAW fd;
        HANDLE h = FindFirstFileW(wcscat(w, L"\\slm-files-*-\u00fc\u65e5\u03b1.gguf"), &fd);
        CHECK(h != INVALID_HANDLE_VALUE, "the file is not found by its UTF-16 name");
        if (h != INVALID_HANDLE_VALUE) FindClose(h);
    }
#endif
    slm_model *m[3] = {NULL, NULL, NULL};
    slm_error err;
    for (int mode = 0; mode < 3; mode++) {
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.use_mmap = mode == 0;
        slm_status st = mode == 2 ? slm_model_load_memory(buf, n, &mp, &m[mode], &err)
                                  : slm_model_load_file(path, &mp, &m[mode], &err);
        CHECK(st == SLM_OK, "load mode %d (%s): %s", mode, mode == 0 ? "mapped" : mode == 1 ? "read" : "memory",
              err.message);
    }
    if (m[0] && m[1] && m[2]) {
        /* the mapping is copy-on-write: repacking (x8 layouts for Q4_0) did
           not reach the file */
        size_t n2 = 0;
        unsigned char *again = read_utf8(path, &n2);
        CHECK(again && n2 == n && !memcmp(again, buf, n), "the file changed while mapped");
        free(again);

        const int nv = slm_vocab_size(m[0]);
        float *l = (float *)malloc(3 * (size_t)NTOK * nv * sizeof(float));
        const int32_t ids[NTOK] = {1, 15, 300, 7, 42, 99};
        int ok = l != NULL;
        for (int mode = 0; ok && mode < 3; mode++) ok = logits_of(m[mode], ids, NTOK, l + (size_t)mode * NTOK * nv, nv);
        CHECK(ok, "decode failed");
        if (ok) {
            CHECK(!memcmp(l, l + (size_t)NTOK * nv, (size_t)NTOK * nv * sizeof(float)), "mapped and read logits differ");
            /* from the caller's memory nothing is repacked: other kernels,
               same values up to rounding */
            double d = 0, mx = 0;
            for (size_t i = 0; i < (size_t)NTOK * nv; i++) {
                double e = (double)l[i] - l[2 * (size_t)NTOK * nv + i];
                d = e < 0 ? (-e > d ? -e : d) : (e > d ? e : d);
                mx = l[i] < 0 ? (-l[i] > mx ? -l[i] : mx) : (l[i] > mx ? l[i] : mx);
            }
            CHECK(d <= 1e-4 * mx, "mapped and memory logits differ by %.3g (max %.3g)", d, mx);
        }
        free(l);
    }
    for (int mode = 0; mode < 3; mode++) slm_model_free(m[mode]);

    /* quantize from and to UTF-8 names */
    {
        slm_quantize_params qp;
        slm_quantize_params_init(&qp);
        CHECK(slm_quantize_parse_type("Q8_0", &qp.type, &qp.mix) == SLM_OK, "Q8_0");
        slm_quantize_stats qs;
        slm_status st = slm_quantize_file(path, qpath, &qp, &qs, &err);
        CHECK(st == SLM_OK, "quantize to a UTF-8 name: %s", err.message);
        size_t nq = 0;
        unsigned char *q = read_utf8(qpath, &nq);
        CHECK(q && nq == qs.file_out && nq > 1000, "the output is at its UTF-8 name (%zu bytes, stats %llu)", nq,
              (unsigned long long)qs.file_out);
        slm_model *mq = NULL;
        CHECK(slm_model_load_file(qpath, NULL, &mq, &err) == SLM_OK, "load the quantized file: %s", err.message);
        slm_model_free(mq);
        free(q);
        remove_utf8(qpath);
    }

    CHECK(remove_utf8(path) == 0, "remove %s", path);
    slm_model *none = NULL;
    for (int mode = 0; mode < 2; mode++) {
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.use_mmap = mode == 0;
        slm_status st = slm_model_load_file(path, &mp, &none, &err);
        CHECK(st == SLM_ERR_IO && none == NULL && strstr(err.message, "\xc3\xbc\xe6\x97\xa5\xce\xb1.gguf"),
              "missing file (mode %d): %d '%s'", mode, st, err.message);
    }
    free(buf);
}

/* An allocator that refuses blocks over 256 MiB. */
static void *small_alloc(void *user, size_t size, size_t align) {
    (void)user;
    if (size > ((size_t)256 << 20)) return NULL;
    void *raw = malloc(size + align + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)p)[-1] = raw;
    return (void *)p;
}
static void small_free(void *user, void *p, size_t size) {
    (void)user, (void)size;
    free(((void **)p)[-1]);
}

/* Only where a 4 GiB hole costs nothing: sparse files (POSIX file systems;
   under wine too), not on Windows itself, where NTFS writes the zeros. */
static int sparse_files(void) {
#if defined(_WIN32)
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    return nt && GetProcAddress(nt, "wine_get_version") != NULL;
#else
    return 1;
#endif
}

/* A model followed by 4 GiB of zeros (a hole): the size is taken whole. */
static void check_big_file(void) {
    if (sizeof(size_t) < 8 || host_big_endian() || test_quick() || !sparse_files()) {
        printf("  file beyond 4 GiB: skipped (32-bit, big-endian, emulated or not sparse)\n");
        return;
    }
    gbuf g = gguf_build(V_OK);
    static int salt;
    char path[600];
    snprintf(path, sizeof path, "%s/slm-big-%lx.gguf", tmp_dir(), (unsigned long)(size_t)&salt ^ (unsigned long)rand());
    const long long total = (4LL << 30) + (long long)g.n + 4096;
    FILE *f = fopen_utf8(path, "wb");
    int ok = f && fwrite(g.p, 1, g.n, f) == g.n;
#if defined(_WIN32)
    ok = ok && _fseeki64(f, total - 1, SEEK_SET) == 0;
#else
    ok = ok && fseek(f, (long)(total - 1), SEEK_SET) == 0;
#endif
    ok = ok && fputc(0, f) == 0;
    if (f && fclose(f) != 0) ok = 0;
    CHECK(ok, "cannot write the sparse file %s", path);
    if (ok) {
        slm_model *big = NULL, *small = NULL;
        slm_error err;
        CHECK(slm_model_load_file(path, NULL, &big, &err) == SLM_OK, "map %lld bytes: %s", total, err.message);
        CHECK(slm_model_load_memory(g.p, g.n, NULL, &small, &err) == SLM_OK, "from memory: %s", err.message);
        if (big && small) {
            slm_model_info a, b;
            slm_model_get_info(big, &a);
            slm_model_get_info(small, &b);
            CHECK(a.file_size == (uint64_t)total && b.file_size == g.n, "file sizes %llu, %llu",
                  (unsigned long long)a.file_size, (unsigned long long)b.file_size);
            const int nv = slm_vocab_size(small);
            float l[2][NTOK * 64];
            const int32_t ids[NTOK] = {1, 2, 3, 4, 5, 6};
            CHECK(nv <= 64 && logits_of(big, ids, NTOK, l[0], nv) && logits_of(small, ids, NTOK, l[1], nv) &&
                      !memcmp(l[0], l[1], (size_t)NTOK * nv * sizeof(float)),
                  "logits of the big file differ");
        }
        slm_model_free(big);
        slm_model_free(small);

        /* read instead: the size (not a 32-bit remainder) reaches the allocator */
        slm_allocator al = {small_alloc, small_free, NULL};
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.use_mmap = 0;
        mp.allocator = &al;
        char want[64];
        snprintf(want, sizeof want, "(%lld bytes)", total);
        slm_status st = slm_model_load_file(path, &mp, &big, &err);
        CHECK(st == SLM_ERR_NOMEM && big == NULL && strstr(err.message, want), "read %lld bytes: %d '%s'", total, st,
              err.message);
        slm_model_free(big);
        printf("  file of %lld bytes: mapped, same logits as from memory; read asks for all of it\n", total);
    }
    remove_utf8(path);
    free(g.p);
}

void test_files(void) {
    printf("  build: %s\n", slm_build_info());
    check_utf8_names();
    check_big_file();
}
