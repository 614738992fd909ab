/* Minimal test harness shared by the test suites. */
#ifndef SLM_TEST_H
#define SLM_TEST_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int t_pass, t_fail;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (cond) {                                                 \
            t_pass++;                                               \
        } else {                                                    \
            t_fail++;                                               \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);             \
            printf(__VA_ARGS__);                                    \
            printf("\n");                                           \
            fflush(stdout);                                         \
        }                                                           \
    } while (0)

/* tests/data path of a file (static buffer, several in rotation) */
const char *data_path(const char *rel);
/* Whole file into malloc'ed memory; NULL if missing. */
unsigned char *read_all(const char *path, size_t *size);
/* Parse the integer array at "key": [ ... ] of a JSON text; returns count. */
int json_ints(const char *json, const char *key, int64_t *out, int max);
/* The numbers (floats) of "key": [ ... ]. */
int json_floats(const char *json, const char *key, double *out, int max);
/* Little-endian float32 file into floats; returns count. */
int read_f32(const char *path, float *out, int max);
int argmax(const float *x, int n);
/* 1 on a big-endian host (s390x under qemu in make test-cross). */
int host_big_endian(void);
/* A log callback (slm_log_fn) that counts warnings and keeps the last one. */
typedef struct logcap {
    int warns;
    char last[256];
} logcap;
void logcap_fn(void *user, int level, const char *msg);
/* 1 when SLM_TEST_QUICK is set (emulated targets in make test-cross): the
   model suites run a reduced set of variants; every kernel test still runs. */
int test_quick(void);
/* Directory for temporary files: $TMPDIR, $TEMP (Windows), $TMP or /tmp. */
const char *tmp_dir(void);
/* Deterministic RNG for tests. */
uint64_t t_rand(uint64_t *state);
float t_randf(uint64_t *state); /* uniform [-1, 1) */

#endif
