/*
 * Fuzz target: the HTTP request-head parser of slm serve
 * (examples/serve/http.c) on arbitrary bytes, checking that everything it
 * returns points inside the input, and the constant-time comparison.
 * Build: make fuzz; replay: make test-fuzz.
 */
#include "../examples/serve/http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok) abort();
}

static int inside(const char *buf, size_t len, const char *p, size_t n) {
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a copy of exactly the input's size, so that reading past it is caught */
    char *buf = (char *)malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    http_request req;
    const char *why = NULL;
    int r = http_parse_request(buf, size, &req, &why);
    if (r > 0) {
        check((size_t)r == req.head_len && req.head_len <= size && req.head_len <= HTTP_MAX_HEAD);
        check(inside(buf, size, req.method, req.method_len) && req.method_len > 0);
        check(inside(buf, size, req.target, req.target_len) && req.target_len > 0);
        check(req.n_headers >= 0 && req.n_headers <= HTTP_MAX_HEADERS);
        for (int i = 0; i < req.n_headers; i++) {
            check(inside(buf, size, req.headers[i].name, req.headers[i].name_len));
            check(inside(buf, size, req.headers[i].value, req.headers[i].value_len));
        }
        check(req.content_length >= -1);
        const http_header *h = http_find_header(&req, "authorization");
        if (h) (void)http_secret_equal(h->value, h->value_len, "secret-key", 10);
    } else if (r < 0) {
        check(why != NULL && (r == -400 || r == -413 || r == -431 || r == -501 || r == -505));
    } else {
        check(size < HTTP_MAX_HEAD); /* incomplete only below the bound: past it, 431 */
    }
    /* the comparison agrees with memcmp */
    size_t half = size / 2;
    int eq = http_secret_equal(buf, half, buf + half, size - half);
    check(eq == (half == size - half && !memcmp(buf, buf + half, half)));
    free(buf);
    return 0;
}

#ifdef SLM_FUZZ_MAIN
#include "replay_main.h"
#endif
