/* Streaming read bandwidth of this machine: the limit that decode (which
   reads every weight once per token) cannot beat. Each thread sums its own
   slice of a buffer much larger than the caches, with 256-bit loads where
   the CPU has AVX2 (the same kind of loads as the decode kernels), else
   plain 64-bit ones; the best of R passes, in GB/s (1e9 bytes/s).

   usage: bandwidth [-t 1,2] [-s MiB] [-r R]      (make bench-bandwidth) */
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#endif

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* sum of a slice: 4 independent accumulators so the loads, not the adds, set the pace */
static uint64_t read_plain(const uint64_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
    return a + b + c + d;
}

#if defined(HAVE_AVX2_PATH)
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint64_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    const __m256i *v = (const __m256i *)p;
    for (size_t i = 0; i + 16 <= n; i += 16, v += 4) {
        a = _mm256_add_epi64(a, _mm256_load_si256(v));
        b = _mm256_add_epi64(b, _mm256_load_si256(v + 1));
        c = _mm256_add_epi64(c, _mm256_load_si256(v + 2));
        d = _mm256_add_epi64(d, _mm256_load_si256(v + 3));
    }
    uint64_t t[4];
    _mm256_storeu_si256((__m256i *)t, _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
    return t[0] + t[1] + t[2] + t[3];
}
#endif

typedef struct job {
    const uint64_t *p;
    size_t n; /* uint64 words */
    int avx2;
    uint64_t sum;
    pthread_barrier_t *bar;
    double t0, t1;
} job;

static void *run(void *arg) {
    job *j = (job *)arg;
    pthread_barrier_wait(j->bar);
    j->t0 = now_sec();
#if defined(HAVE_AVX2_PATH)
    j->sum = j->avx2 ? read_avx2(j->p, j->n) : read_plain(j->p, j->n);
#else
    j->sum = read_plain(j->p, j->n);
#endif
    j->t1 = now_sec();
    return NULL;
}

int main(int argc, char **argv) {
    const char *tlist = "1,2";
    long mib = 1024, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) tlist = argv[++i];
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) mib = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [-t 1,2] [-s MiB] [-r R]\n", argv[0]);
            return 2;
        }
    }
    if (mib < 16 || mib > 65536 || reps < 1 || reps > 1000) {
        fprintf(stderr, "bandwidth: -s must be in [16, 65536] MiB and -r in [1, 1000]\n");
        return 2;
    }
    const size_t bytes = (size_t)mib << 20, words = bytes / 8;
    uint64_t *buf = NULL;
    if (posix_memalign((void **)&buf, 64, bytes) != 0) {
        fprintf(stderr, "bandwidth: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < words; i++) buf[i] = i; /* touch every page */
    int avx2 = 0;
#if defined(HAVE_AVX2_PATH)
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2");
#endif
    printf("streaming read, %ld MiB buffer, best of %ld passes, %s loads\n", mib, reps, avx2 ? "256-bit AVX2" : "64-bit");
    uint64_t check = 0;
    for (const char *p = tlist; *p;) {
        char *end;
        long nt = strtol(p, &end, 10);
        if (end == p || nt < 1 || nt > 256) {
            fprintf(stderr, "bandwidth: invalid thread list '%s'\n", tlist);
            return 2;
        }
        p = *end == ',' ? end + 1 : end;
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)nt);
        job *jobs = (job *)calloc((size_t)nt, sizeof *jobs);
        pthread_t *th = (pthread_t *)calloc((size_t)nt, sizeof *th);
        if (!jobs || !th) return 1;
        const size_t per = words / (size_t)nt / 16 * 16; /* whole 128-byte steps per thread */
        double best = 0;
        for (long r = 0; r < reps; r++) {
            for (long t = 0; t < nt; t++) {
                jobs[t] = (job){buf + (size_t)t * per, per, avx2, 0, &bar, 0, 0};
                pthread_create(&th[t], NULL, run, &jobs[t]);
            }
            double t0 = 1e300, t1 = 0;
            for (long t = 0; t < nt; t++) {
                pthread_join(th[t], NULL);
                t0 = jobs[t].t0 < t0 ? jobs[t].t0 : t0;
                t1 = jobs[t].t1 > t1 ? jobs[t].t1 : t1;
                check += jobs[t].sum;
            }
            const double gbs = (double)per * 8 * (double)nt / (t1 - t0) / 1e9;
            best = gbs > best ? gbs : best;
        }
        printf("threads %ld: %.1f GB/s\n", nt, best);
        pthread_barrier_destroy(&bar);
        free(jobs);
        free(th);
    }
    free(buf);
    return check == 42 ? 3 : 0; /* keep the sums alive */
}
