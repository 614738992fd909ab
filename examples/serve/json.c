/*
 * json.c - bounded JSON parser and writer (see json.h).
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    json_doc *d;
    const unsigned char *p, *end, *start;
    json_limits lim;
} parser;

static int fail(parser *ps, const char *what) {
    snprintf(ps->d->error, sizeof ps->d->error, "invalid JSON at byte %ld: %s", (long)(ps->p - ps->start), what);
    return -1;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

/* Length of the UTF-8 sequence at s (1-4), 0 if invalid (overlong, surrogate,
   above U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned min, cp;
    if ((c & 0xE0) == 0xC0) k = 2, min = 0x80, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) k = 3, min = 0x800, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) k = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

size_t json_utf8_valid_prefix(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_len((const unsigned char *)s + i, n - i);
        if (!k) break;
        i += k;
    }
    return i;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) *o++ = (char)cp;
    else if (cp < 0x800) *o++ = (char)(0xC0 | cp >> 6), *o++ = (char)(0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
        *o++ = (char)(0xE0 | cp >> 12), *o++ = (char)(0x80 | ((cp >> 6) & 0x3F)), *o++ = (char)(0x80 | (cp & 0x3F));
    else
        *o++ = (char)(0xF0 | cp >> 18), *o++ = (char)(0x80 | ((cp >> 12) & 0x3F)),
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F)), *o++ = (char)(0x80 | (cp & 0x3F));
    return o;
}

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* A string literal at ps->p (on the quote), decoded into the string buffer.
   The decoded text is never longer than its source, so the buffer (the
   input's size + 1) always has room. */
static int parse_string(parser *ps, const char **out, size_t *out_len) {
    json_doc *d = ps->d;
    char *o0 = d->strings + d->s_used, *o = o0;
    ps->p++;
    for (;;) {
        if (ps->p >= ps->end) return fail(ps, "unterminated string");
        unsigned c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) return fail(ps, "control character in string");
        if (c == '\\') {
            if (ps->end - ps->p < 2) return fail(ps, "unterminated string");
            unsigned e = ps->p[1];
            ps->p += 2;
            switch (e) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (ps->end - ps->p < 4 || hex4(ps->p, &cp)) return fail(ps, "invalid \\u escape");
                ps->p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u' &&
                    !hex4(ps->p + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    ps->p += 6;
                } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                    cp = 0xFFFD; /* a lone surrogate has no UTF-8 form */
                }
                /* the escape's 6 (or 12) source bytes cover the 1-4 output bytes */
                o = put_utf8(o, cp);
                break;
            }
            default: return fail(ps, "invalid escape in string");
            }
        } else if (c < 0x80) {
            *o++ = (char)c;
            ps->p++;
        } else {
            size_t k = utf8_len(ps->p, (size_t)(ps->end - ps->p));
            if (!k) return fail(ps, "string is not valid UTF-8");
            memcpy(o, ps->p, k);
            o += k;
            ps->p += k;
        }
        if ((size_t)(o - o0) > ps->lim.max_string) return fail(ps, "string too long");
    }
    *o = 0;
    *out = o0;
    *out_len = (size_t)(o - o0);
    d->s_used += (size_t)(o - o0) + 1;
    return 0;
}

static int32_t new_node(parser *ps, int type) {
    json_doc *d = ps->d;
    if (d->n >= ps->lim.max_nodes) {
        fail(ps, "too many values");
        return -1;
    }
    if (d->n == d->cap) {
        int32_t cap = d->cap ? d->cap * 2 : 64;
        if (cap > ps->lim.max_nodes) cap = ps->lim.max_nodes;
        json_node *nn = (json_node *)realloc(d->nodes, (size_t)cap * sizeof *nn);
        if (!nn) {
            fail(ps, "out of memory");
            return -1;
        }
        d->nodes = nn;
        d->cap = cap;
    }
    json_node *n = &d->nodes[d->n];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->next = n->child = -1;
    return d->n++;
}

static int parse_value(parser *ps, int depth, int32_t *out);

static int parse_number(parser *ps, double *out) {
    const unsigned char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p >= ps->end) return fail(ps, "invalid number");
    if (*ps->p == '0') ps->p++;
    else if (*ps->p >= '1' && *ps->p <= '9')
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    else return fail(ps, "invalid number");
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "invalid number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "invalid number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    size_t n = (size_t)(ps->p - s);
    if (n > 64) return fail(ps, "number too long");
    char tmp[72];
    memcpy(tmp, s, n);
    tmp[n] = 0;
    *out = strtod(tmp, NULL); /* huge exponents give +-HUGE_VAL: callers range-check */
    return 0;
}

static int parse_container(parser *ps, int depth, int32_t self, int obj) {
    ps->p++;
    int32_t last = -1, count = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
        ps->p++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t klen = 0;
        skip_ws(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a member name");
            if (parse_string(ps, &key, &klen)) return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        int32_t v;
        if (parse_value(ps, depth + 1, &v)) return -1;
        json_node *n = &ps->d->nodes[v];
        n->key = key;
        n->key_len = klen;
        if (last < 0) ps->d->nodes[self].child = v;
        else ps->d->nodes[last].next = v;
        last = v;
        count++;
        skip_ws(ps);
        if (ps->p >= ps->end) return fail(ps, obj ? "unterminated object" : "unterminated array");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == (obj ? '}' : ']')) {
            ps->p++;
            break;
        }
        return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    ps->d->nodes[self].count = count;
    return 0;
}

static int literal(parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n)) return fail(ps, "unexpected character");
    ps->p += n;
    return 0;
}

static int parse_value(parser *ps, int depth, int32_t *out) {
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    if (depth > ps->lim.max_depth) return fail(ps, "nested too deeply");
    unsigned c = *ps->p;
    int32_t id;
    switch (c) {
    case '{':
    case '[':
        if ((id = new_node(ps, c == '{' ? JSON_OBJECT : JSON_ARRAY)) < 0) return -1;
        *out = id;
        return parse_container(ps, depth, id, c == '{');
    case '"': {
        if ((id = new_node(ps, JSON_STRING)) < 0) return -1;
        const char *s;
        size_t l;
        if (parse_string(ps, &s, &l)) return -1;
        ps->d->nodes[id].str = s;
        ps->d->nodes[id].len = l;
        *out = id;
        return 0;
    }
    case 't':
    case 'f':
    case 'n':
        if (literal(ps, c == 't' ? "true" : c == 'f' ? "false" : "null")) return -1;
        if ((id = new_node(ps, c == 't' ? JSON_TRUE : c == 'f' ? JSON_FALSE : JSON_NULL)) < 0) return -1;
        *out = id;
        return 0;
    default: {
        if (c != '-' && (c < '0' || c > '9')) return fail(ps, "unexpected character");
        double v;
        if (parse_number(ps, &v)) return -1;
        if ((id = new_node(ps, JSON_NUMBER)) < 0) return -1;
        ps->d->nodes[id].num = v;
        *out = id;
        return 0;
    }
    }
}

int json_parse(json_doc *doc, const char *text, size_t len, const json_limits *limits) {
    memset(doc, 0, sizeof *doc);
    parser ps;
    ps.d = doc;
    ps.start = ps.p = (const unsigned char *)text;
    ps.end = ps.p + len;
    ps.lim.max_depth = limits && limits->max_depth > 0 ? limits->max_depth : 64;
    ps.lim.max_nodes = limits && limits->max_nodes > 0 ? limits->max_nodes : 65536;
    ps.lim.max_string = limits && limits->max_string > 0 ? limits->max_string : len;
    doc->strings = (char *)malloc(len + 1);
    if (!doc->strings) {
        snprintf(doc->error, sizeof doc->error, "out of memory");
        return -1;
    }
    /* a body that starts with a UTF-8 byte order mark is still JSON */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) ps.p += 3;
    int32_t root;
    if (parse_value(&ps, 1, &root)) return -1;
    skip_ws(&ps);
    if (ps.p != ps.end) return fail(&ps, "trailing characters after the value");
    return 0;
}

void json_free(json_doc *doc) {
    free(doc->nodes);
    free(doc->strings);
    doc->nodes = NULL;
    doc->strings = NULL;
    doc->n = doc->cap = 0;
}

const json_node *json_root(const json_doc *doc) { return doc->n > 0 ? &doc->nodes[0] : NULL; }

const json_node *json_first(const json_doc *doc, const json_node *parent) {
    return parent && parent->child >= 0 ? &doc->nodes[parent->child] : NULL;
}

const json_node *json_next(const json_doc *doc, const json_node *node) {
    return node && node->next >= 0 ? &doc->nodes[node->next] : NULL;
}

const json_node *json_get(const json_doc *doc, const json_node *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    size_t kl = strlen(key);
    const json_node *found = NULL;
    for (const json_node *n = json_first(doc, obj); n; n = json_next(doc, n))
        if (n->key_len == kl && !memcmp(n->key, key, kl)) found = n;
    return found;
}

/* ---- writer ------------------------------------------------------------------ */

void jb_free(jbuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

void jb_raw(jbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        if (cap < 256) cap = 256;
        char *ns = (char *)realloc(b->s, cap);
        if (!ns) {
            b->failed = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void jb_cstr(jbuf *b, const char *s) { jb_raw(b, s, strlen(s)); }

void jb_str(jbuf *b, const char *s, size_t n) {
    static const char HEX[] = "0123456789abcdef";
    jb_raw(b, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : utf8_len((const unsigned char *)s + i, n - i);
        const char *rep = NULL;
        char esc[8];
        if (c == '"') rep = "\\\"";
        else if (c == '\\') rep = "\\\\";
        else if (c == '\n') rep = "\\n";
        else if (c == '\r') rep = "\\r";
        else if (c == '\t') rep = "\\t";
        else if (c < 0x20 || c == 0x7f) {
            esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = HEX[c >> 4], esc[5] = HEX[c & 15];
            esc[6] = 0;
            rep = esc;
        } else if (!k) rep = "\xEF\xBF\xBD", k = 1; /* U+FFFD for a byte that is not UTF-8 */
        if (rep) {
            jb_raw(b, s + run, i - run);
            jb_cstr(b, rep);
            i += k ? k : 1;
            run = i;
        } else {
            i += k;
        }
    }
    jb_raw(b, s + run, n - run);
    jb_raw(b, "\"", 1);
}

void jb_int(jbuf *b, long long v) {
    char t[32];
    jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%lld", v));
}

void jb_num(jbuf *b, double v) {
    char t[40];
    if (!isfinite(v)) v = 0;
    jb_raw(b, t, (size_t)snprintf(t, sizeof t, "%.17g", v));
}

void jb_key(jbuf *b, const char *key, int first) {
    if (!first) jb_raw(b, ",", 1);
    jb_str(b, key, strlen(key));
    jb_raw(b, ":", 1);
}
