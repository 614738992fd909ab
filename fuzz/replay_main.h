/* Replay mode for the fuzz targets (built with -DSLM_FUZZ_MAIN, without
   libFuzzer): run every file named on the command line or found in the
   directories named (one level). Included by each target. */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = (uint8_t *)malloc(n > 0 ? (size_t)n : 1);
    size_t got = p ? fread(p, 1, (size_t)n, f) : 0;
    fclose(f);
    if (p) LLVMFuzzerTestOneInput(p, got);
    free(p);
    return 1;
}

int main(int argc, char **argv) {
    int count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) continue;
        if (!S_ISDIR(sb.st_mode)) {
            count += run_file(argv[i]);
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char path[4096];
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            count += run_file(path);
        }
        if (d) closedir(d);
    }
    printf("%s: replayed %d inputs without a crash\n", argv[0], count);
    return count > 0 ? 0 : 1;
}
