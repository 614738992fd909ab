/*
 * Fuzz target: the JSON parser and writer of slm serve (examples/serve/json.c)
 * on arbitrary bytes. Every document that parses is walked, and every
 * string in it is written back with jb_str, whose output must parse again to
 * the same bytes (invalid UTF-8 aside, which the writer replaces).
 * Build: make fuzz; replay: make test-fuzz.
 */
#include "../examples/serve/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok) abort();
}

static void walk(const json_doc *d, const json_node *n, int depth) {
    check(depth <= 70);
    if (n->type == JSON_STRING) {
        check(n->str[n->len] == 0);
        jbuf b = {0};
        jb_str(&b, n->str, n->len);
        if (!b.failed) {
            json_doc d2;
            check(json_parse(&d2, b.s, b.n, NULL) == 0);
            const json_node *r = json_root(&d2);
            check(r && r->type == JSON_STRING);
            /* valid UTF-8 comes back unchanged */
            if (json_utf8_valid_prefix(n->str, n->len) == n->len) check(r->len == n->len && !memcmp(r->str, n->str, n->len));
            json_free(&d2);
        }
        jb_free(&b);
    }
    int32_t count = 0;
    for (const json_node *c = json_first(d, n); c; c = json_next(d, c)) {
        check((n->type == JSON_OBJECT) == (c->key != NULL));
        walk(d, c, depth + 1);
        count++;
    }
    check(count == n->count);
    if (n->type == JSON_OBJECT && n->child >= 0) (void)json_get(d, n, json_first(d, n)->key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_doc d;
    json_limits lim = {64, 4096, 0};
    if (json_parse(&d, (const char *)data, size, &lim) == 0) {
        walk(&d, json_root(&d), 0);
        /* the writer on the raw input, as if it were a string */
        jbuf b = {0};
        jb_str(&b, (const char *)data, size);
        json_doc d2;
        if (!b.failed) check(json_parse(&d2, b.s, b.n, NULL) == 0);
        json_free(&d2);
        jb_free(&b);
    } else {
        check(d.error[0] != 0);
    }
    json_free(&d);
    return 0;
}

#ifdef SLM_FUZZ_MAIN
#include "replay_main.h"
#endif
