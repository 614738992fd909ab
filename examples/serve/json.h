/*
 * json.h - a small bounded JSON parser (RFC 8259) and writer for slm serve.
 *
 * The parser reads untrusted request bodies: the nesting depth, the number
 * of values and the string lengths are bounded, strings must be valid UTF-8
 * (\u escapes are decoded, lone surrogates become U+FFFD), and every error
 * names what is wrong and where. The document is a flat array of nodes
 * linked by index; strings are decoded into one buffer the size of the
 * input, NUL-terminated (they may also hold \u0000: use the length).
 */
#ifndef SLM_SERVE_JSON_H
#define SLM_SERVE_JSON_H

#include <stddef.h>
#include <stdint.h>

enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

typedef struct json_node {
    int type;
    int32_t next;     /* next sibling (array element / object member), -1 at the end */
    int32_t child;    /* first element / member, -1 if empty */
    int32_t count;    /* elements / members */
    const char *key;  /* the member's name in an object, else NULL */
    size_t key_len;
    const char *str;  /* strings: decoded, NUL-terminated */
    size_t len;
    double num;
} json_node;

typedef struct json_limits {
    int max_depth;     /* nesting of arrays/objects (default 64) */
    int32_t max_nodes; /* values in the document (default 65536) */
    size_t max_string; /* bytes of one decoded string (default: the input size) */
} json_limits;

typedef struct json_doc {
    json_node *nodes; /* [cap]; nodes[0] is the root */
    int32_t n, cap;
    char *strings;    /* [input length + 1] decoded strings */
    size_t s_used;
    char error[160];  /* why parsing failed */
} json_doc;

/* Parse len bytes (no NUL needed). 0 on success; -1 with doc->error set.
   limits may be NULL. json_free releases the document either way. */
int json_parse(json_doc *doc, const char *text, size_t len, const json_limits *limits);
void json_free(json_doc *doc);

const json_node *json_root(const json_doc *doc);
/* A member of an object by name (the last one if repeated), or NULL. */
const json_node *json_get(const json_doc *doc, const json_node *obj, const char *key);
const json_node *json_first(const json_doc *doc, const json_node *parent);
const json_node *json_next(const json_doc *doc, const json_node *node);

/* A growing output buffer. On allocation failure it stops growing and sets
   `failed`; the text written so far stays valid. */
typedef struct jbuf {
    char *s;
    size_t n, cap;
    int failed;
} jbuf;

void jb_free(jbuf *b);
void jb_raw(jbuf *b, const char *s, size_t n);
void jb_cstr(jbuf *b, const char *s);
/* A JSON string literal with quotes; bytes that are not valid UTF-8 become
   U+FFFD, so the output is always valid JSON. */
void jb_str(jbuf *b, const char *s, size_t n);
void jb_int(jbuf *b, long long v);
void jb_num(jbuf *b, double v);
/* "key": (with a leading comma unless first) */
void jb_key(jbuf *b, const char *key, int first);

/* Length of the longest prefix of s[0, n) that is whole valid UTF-8. */
size_t json_utf8_valid_prefix(const char *s, size_t n);

#endif
