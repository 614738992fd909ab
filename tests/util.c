#include "test.h"
#include "slm.h"

#include <stdlib.h>
#include <string.h>

int t_pass, t_fail;

const char *data_path(const char *rel) {
    static char bufs[4][1024];
    static int k;
    const char *dir = getenv("SLM_TEST_DATA");
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", dir ? dir : "tests/data", rel);
    return b;
}

unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = (unsigned char *)malloc(n > 0 ? (size_t)n + 1 : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        *size = (size_t)n;
    }
    return p;
}

static const char *json_array(const char *json, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p) return NULL;
    p = strchr(p + strlen(pat), '[');
    return p ? p + 1 : NULL;
}

int json_floats(const char *json, const char *key, double *out, int max) {
    const char *p = json_array(json, key);
    int n = 0;
    if (!p) return 0;
    while (*p && *p != ']' && n < max) {
        char *end;
        double v = strtod(p, &end);
        if (end == p) {
            p++;
            continue;
        }
        out[n++] = v;
        p = end;
    }
    return n;
}

int json_ints(const char *json, const char *key, int64_t *out, int max) {
    double tmp[4096];
    int n = json_floats(json, key, tmp, max < 4096 ? max : 4096);
    for (int i = 0; i < n; i++) out[i] = (int64_t)tmp[i];
    return n;
}

int read_f32(const char *path, float *out, int max) {
    size_t n;
    unsigned char *p = read_all(path, &n);
    if (!p) return 0;
    int c = (int)(n / 4);
    if (c > max) c = max;
    for (int i = 0; i < c; i++) {
        uint32_t u = (uint32_t)p[4 * i] | ((uint32_t)p[4 * i + 1] << 8) | ((uint32_t)p[4 * i + 2] << 16) |
                     ((uint32_t)p[4 * i + 3] << 24);
        memcpy(&out[i], &u, 4);
    }
    free(p);
    return c;
}

int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

uint64_t t_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float t_randf(uint64_t *s) { return (float)((double)(t_rand(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

int host_big_endian(void) {
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

int test_quick(void) {
    const char *q = getenv("SLM_TEST_QUICK");
    return q && q[0] && strcmp(q, "0") != 0;
}

const char *tmp_dir(void) {
    const char *names[3] = {"TMPDIR", "TEMP", "TMP"};
    for (int i = 0; i < 3; i++) {
        const char *d = getenv(names[i]);
        if (d && *d) return d;
    }
    return "/tmp";
}

void logcap_fn(void *user, int level, const char *msg) {
    logcap *l = (logcap *)user;
    if (level == SLM_LOG_WARN) {
        l->warns++;
        snprintf(l->last, sizeof l->last, "%s", msg);
    }
}
