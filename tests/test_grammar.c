/* Grammars: GBNF parsing and errors, token masks against a token-by-token
   reference on a built vocabulary (partial UTF-8, tokens across terminals),
   JSON Schema conversion, and generation with the demo model under the JSON
   grammar and under schemas, checked with the JSON parser and schema
   validator below (independent of slm's). */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* popen */
#endif
#include "test.h"

#include "slm.h"
#include "vocab_build.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --- a small JSON parser and validator for the checks ------------------------- */

enum { TJ_NULL, TJ_BOOL, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ };

typedef struct tj {
    int type;
    int b;
    double num;
    int is_int;
    char *s;         /* strings: decoded UTF-8 */
    size_t len;
    struct tj *kids; /* arrays: n values; objects: 2n (key, value) */
    int n;
} tj;

typedef struct tjp {
    const char *s;
    size_t n, i;
    int incomplete; /* ran out of text (a valid prefix so far) */
} tjp;

static void tj_free(tj *v) {
    if (v->type == TJ_STR) free(v->s);
    if (v->type == TJ_ARR || v->type == TJ_OBJ) {
        int k = v->type == TJ_OBJ ? 2 * v->n : v->n;
        for (int i = 0; i < k; i++) tj_free(&v->kids[i]);
        free(v->kids);
    }
    memset(v, 0, sizeof *v);
}

static void tjp_ws(tjp *p) {
    while (p->i < p->n && strchr(" \t\n\r", p->s[p->i])) p->i++;
}

static int tjp_end(tjp *p) {
    if (p->i >= p->n) {
        p->incomplete = 1;
        return 1;
    }
    return 0;
}

static int tj_parse(tjp *p, tj *v, int depth);

static int tj_fail(tj *v) { /* a container parsed in part: free what it holds */
    tj_free(v);
    return 0;
}

static int tj_str(tjp *p, tj *v) {
    p->i++; /* quote */
    size_t cap = 16, n = 0;
    char *o = (char *)malloc(cap);
    for (;;) {
        if (tjp_end(p)) break;
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            v->type = TJ_STR;
            v->s = o;
            v->len = n;
            o[n] = 0;
            return 1;
        }
        if (c < 0x20) break;
        if (n + 8 > cap) o = (char *)realloc(o, cap *= 2);
        if (c == '\\') {
            p->i++;
            if (tjp_end(p)) break;
            char e = p->s[p->i++];
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *f = strchr(from, e);
            if (e && f) {
                o[n++] = to[f - from];
                continue;
            }
            if (e != 'u') break;
            unsigned cp = 0;
            int k = 0;
            for (; k < 4 && p->i < p->n; k++, p->i++) {
                char h = p->s[p->i];
                int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (d < 0) goto bad;
                cp = cp * 16 + (unsigned)d;
            }
            if (k < 4) {
                p->incomplete = 1;
                break;
            }
            /* (surrogates are kept as they are: enough for these checks) */
            if (cp < 0x80) o[n++] = (char)cp;
            else if (cp < 0x800) o[n++] = (char)(0xC0 | cp >> 6), o[n++] = (char)(0x80 | (cp & 63));
            else o[n++] = (char)(0xE0 | cp >> 12), o[n++] = (char)(0x80 | ((cp >> 6) & 63)), o[n++] = (char)(0x80 | (cp & 63));
            continue;
        }
        o[n++] = (char)c;
        p->i++;
    }
bad:
    free(o);
    return 0;
}

static int tj_parse(tjp *p, tj *v, int depth) {
    memset(v, 0, sizeof *v);
    tjp_ws(p);
    if (tjp_end(p) || depth > 200) return 0;
    char c = p->s[p->i];
    if (c == '"') return tj_str(p, v);
    if (c == '{' || c == '[') {
        int obj = c == '{';
        p->i++;
        v->type = obj ? TJ_OBJ : TJ_ARR;
        int cap = 0;
        tjp_ws(p);
        if (tjp_end(p)) return tj_fail(v);
        if (p->s[p->i] == (obj ? '}' : ']')) {
            p->i++;
            return 1;
        }
        for (;;) {
            if (2 * v->n + 2 > cap) {
                cap = cap ? cap * 2 : 8;
                v->kids = (tj *)realloc(v->kids, (size_t)cap * sizeof(tj));
            }
            int k = obj ? 2 * v->n : v->n;
            if (obj) {
                tjp_ws(p);
                if (tjp_end(p) || p->s[p->i] != '"' || !tj_str(p, &v->kids[k])) return tj_fail(v);
                tjp_ws(p);
                if (tjp_end(p) || p->s[p->i] != ':') {
                    tj_free(&v->kids[k]);
                    return tj_fail(v);
                }
                p->i++;
                if (!tj_parse(p, &v->kids[k + 1], depth + 1)) {
                    tj_free(&v->kids[k]);
                    return tj_fail(v);
                }
            } else if (!tj_parse(p, &v->kids[k], depth + 1)) {
                return tj_fail(v);
            }
            v->n++;
            tjp_ws(p);
            if (tjp_end(p)) return tj_fail(v);
            if (p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->s[p->i] == (obj ? '}' : ']')) {
                p->i++;
                return 1;
            }
            return tj_fail(v);
        }
    }
    static const char *const words[] = {"null", "true", "false"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(words[k]), have = p->n - p->i;
        if (have < l && !memcmp(p->s + p->i, words[k], have)) {
            p->incomplete = 1;
            return 0;
        }
        if (have >= l && !memcmp(p->s + p->i, words[k], l)) {
            p->i += l;
            v->type = k == 0 ? TJ_NULL : TJ_BOOL;
            v->b = k == 1;
            return 1;
        }
    }
    /* number, strictly as JSON */
    size_t i = p->i;
    int is_int = 1;
    if (i < p->n && p->s[i] == '-') i++;
    if (i >= p->n) return p->incomplete = 1, 0;
    if (p->s[i] == '0') i++;
    else if (p->s[i] >= '1' && p->s[i] <= '9')
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    else return 0;
    if (i < p->n && p->s[i] == '.') {
        is_int = 0;
        size_t d = ++i;
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
        if (i == d) return p->incomplete = i >= p->n, 0;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        is_int = 0;
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
        size_t d = i;
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
        if (i == d) return p->incomplete = i >= p->n, 0;
    }
    char tmp[64];
    size_t l = i - p->i < 63 ? i - p->i : 63;
    memcpy(tmp, p->s + p->i, l);
    tmp[l] = 0;
    v->type = TJ_NUM;
    v->num = strtod(tmp, NULL);
    v->is_int = is_int;
    p->i = i;
    if (i >= p->n) p->incomplete = 1; /* more digits could follow: complete only as a whole text */
    return 1;
}

/* 1: a whole JSON text; 0: invalid; 2: a valid prefix of one. */
static int tj_check(const char *s, size_t n, tj *out) {
    tjp p = {s, n, 0, 0};
    tj v;
    int ok = tj_parse(&p, &v, 0);
    tjp_ws(&p);
    if (ok && p.i == n) {
        if (out) *out = v;
        else tj_free(&v);
        return 1;
    }
    if (ok) tj_free(&v);
    return p.incomplete && (!ok || p.i == n) ? 2 : 0;
}

static const tj *tj_get(const tj *o, const char *k) {
    if (!o || o->type != TJ_OBJ) return NULL;
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->kids[2 * i].s, k)) return &o->kids[2 * i + 1];
    return NULL;
}

static int tj_equal(const tj *a, const tj *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case TJ_NULL: return 1;
    case TJ_BOOL: return a->b == b->b;
    case TJ_NUM: return a->num == b->num;
    case TJ_STR: return a->len == b->len && !memcmp(a->s, b->s, a->len);
    case TJ_ARR:
        if (a->n != b->n) return 0;
        for (int i = 0; i < a->n; i++)
            if (!tj_equal(&a->kids[i], &b->kids[i])) return 0;
        return 1;
    default:
        if (a->n != b->n) return 0;
        for (int i = 0; i < a->n; i++) {
            const tj *bv = tj_get(b, a->kids[2 * i].s);
            if (!bv || !tj_equal(&a->kids[2 * i + 1], bv)) return 0;
        }
        return 1;
    }
}

static size_t utf8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static int digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int fmt_ok(const char *f, const char *s, size_t n) {
    if (!strcmp(f, "date"))
        return n == 10 && digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' && digits(s + 8, 2) &&
               atoi(s + 5) >= 1 && atoi(s + 5) <= 12 && atoi(s + 8) >= 1 && atoi(s + 8) <= 31;
    if (!strcmp(f, "time")) {
        if (n < 9 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) || s[5] != ':' || !digits(s + 6, 2)) return 0;
        if (atoi(s) > 23 || atoi(s + 3) > 59 || atoi(s + 6) > 59) return 0;
        size_t i = 8;
        if (i < n && s[i] == '.') {
            size_t d = ++i;
            while (i < n && s[i] >= '0' && s[i] <= '9') i++;
            if (i == d) return 0;
        }
        if (i < n && s[i] == 'Z') return i + 1 == n;
        return i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) && s[i + 3] == ':' && digits(s + i + 4, 2);
    }
    if (!strcmp(f, "uuid")) {
        if (n != 36) return 0;
        for (size_t i = 0; i < n; i++) {
            int dash = i == 8 || i == 13 || i == 18 || i == 23;
            if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]) || !s[i]) return 0;
        }
        return 1;
    }
    return 0;
}

static const tj *tj_ref(const tj *root, const char *ref) {
    const tj *v = root;
    const char *p = ref + 1;
    while (*p == '/') {
        char seg[64];
        size_t k = 0;
        p++;
        while (*p && *p != '/' && k < 63) seg[k++] = *p++;
        seg[k] = 0;
        v = tj_get(v, seg);
        if (!v) return NULL;
    }
    return v;
}

/* 1 if v is valid against schema s (the subset slm converts). */
static int tj_valid(const tj *v, const tj *s, const tj *root, int depth) {
    if (depth > 100) return 0;
    if (s->type == TJ_BOOL) return s->b;
    const tj *k;
    if ((k = tj_get(s, "$ref"))) {
        const tj *t = tj_ref(root, k->s);
        return t && tj_valid(v, t, root, depth + 1);
    }
    if ((k = tj_get(s, "const")) && !tj_equal(v, k)) return 0;
    if ((k = tj_get(s, "enum"))) {
        int any = 0;
        for (int i = 0; i < k->n; i++) any |= tj_equal(v, &k->kids[i]);
        if (!any) return 0;
    }
    if ((k = tj_get(s, "anyOf"))) {
        int any = 0;
        for (int i = 0; i < k->n; i++) any |= tj_valid(v, &k->kids[i], root, depth + 1);
        if (!any) return 0;
    }
    if ((k = tj_get(s, "oneOf"))) {
        int c = 0;
        for (int i = 0; i < k->n; i++) c += tj_valid(v, &k->kids[i], root, depth + 1);
        if (c != 1) return 0;
    }
    if ((k = tj_get(s, "type"))) {
        int ok = 0;
        for (int i = 0; i < (k->type == TJ_ARR ? k->n : 1); i++) {
            const char *t = k->type == TJ_ARR ? k->kids[i].s : k->s;
            ok |= (!strcmp(t, "null") && v->type == TJ_NULL) || (!strcmp(t, "boolean") && v->type == TJ_BOOL) ||
                  (!strcmp(t, "number") && v->type == TJ_NUM) || (!strcmp(t, "integer") && v->type == TJ_NUM && v->is_int) ||
                  (!strcmp(t, "string") && v->type == TJ_STR) || (!strcmp(t, "array") && v->type == TJ_ARR) ||
                  (!strcmp(t, "object") && v->type == TJ_OBJ);
        }
        if (!ok) return 0;
    }
    if (v->type == TJ_STR) {
        size_t n = utf8_count(v->s, v->len);
        if ((k = tj_get(s, "minLength")) && n < (size_t)k->num) return 0;
        if ((k = tj_get(s, "maxLength")) && n > (size_t)k->num) return 0;
        if ((k = tj_get(s, "format")) && !fmt_ok(k->s, v->s, v->len)) return 0;
    }
    if (v->type == TJ_ARR) {
        if ((k = tj_get(s, "minItems")) && v->n < (int)k->num) return 0;
        if ((k = tj_get(s, "maxItems")) && v->n > (int)k->num) return 0;
        if ((k = tj_get(s, "items")))
            for (int i = 0; i < v->n; i++)
                if (!tj_valid(&v->kids[i], k, root, depth + 1)) return 0;
    }
    if (v->type == TJ_OBJ) {
        const tj *props = tj_get(s, "properties"), *add = tj_get(s, "additionalProperties");
        if ((k = tj_get(s, "required")))
            for (int i = 0; i < k->n; i++)
                if (!tj_get(v, k->kids[i].s)) return 0;
        for (int i = 0; i < v->n; i++) {
            const tj *ps = tj_get(props, v->kids[2 * i].s);
            if (ps) {
                if (!tj_valid(&v->kids[2 * i + 1], ps, root, depth + 1)) return 0;
            } else if (add && !tj_valid(&v->kids[2 * i + 1], add, root, depth + 1)) {
                return 0;
            }
        }
    }
    return 1;
}

/* --- helpers ----------------------------------------------------------------------- */

static slm_model *g_model;     /* the built vocabulary */
static unsigned char *g_vocab_buf; /* its GGUF bytes (used in place) */
static int32_t g_nv;

/* SentencePiece-style vocabulary: specials, the 256 byte tokens, pieces that
   cross terminals, multi-byte characters and parts of them. */
static const char *const PIECES[] = {
    "{", "}", "{\"", "\":", "\"", "\"}", "a", "ab", "abc", "b", "1", "12", "123", "0", "-", "-0", ".", ".5", "e",
    "e1", "\xe2\x96\x81", "\xe2\x96\x81{", ",", ",\xe2\x96\x81\"", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5",
    "\xe6\x9c\xac", "\xe8\xaa\x9e", "true", "tr", "ue", "null", "nul", "[", "]", "[1", "1,", "\\", "\\u", "00e9",
    "\xc3\xa9\"", "x\"", ":", "x", "\xce\xb1", "\xce\xb2\xce\xb3", "!", "\"a", "\":\xe2\x96\x81", "}}", "]}", "\\n",
    "abc\"", "fal", "se", "false", "\xe2\x96\x81\xe2\x96\x81", "\n"};

static slm_model *build_vocab(void) {
    enum { NP = sizeof PIECES / sizeof PIECES[0] };
    static const char *toks[3 + 256 + NP];
    static int types[3 + 256 + NP];
    static char bytes[256][8];
    toks[0] = "<unk>", types[0] = 2;
    toks[1] = "<s>", types[1] = 3;
    toks[2] = "</s>", types[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        types[3 + b] = 6;
    }
    for (int i = 0; i < NP; i++) toks[259 + i] = PIECES[i], types[259 + i] = 1;
    vocab_spec vs;
    memset(&vs, 0, sizeof vs);
    vs.model = "llama";
    vs.tokens = toks;
    vs.types = types;
    vs.n_tokens = 259 + NP;
    vs.bos = 1;
    vs.eos = 2;
    gbuf g = vocab_gguf(&vs);
    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.vocab_only = 1;
    slm_model *m = NULL;
    slm_error err;
    if (slm_model_load_memory(g.p, g.n, &mp, &m, &err) != SLM_OK) {
        CHECK(0, "load the built vocabulary: %s", err.message);
        free(g.p);
        return NULL;
    }
    g_vocab_buf = g.p;
    return m;
}

static int32_t tok_of(const char *piece) {
    for (int32_t t = 0; t < g_nv; t++) {
        size_t l;
        const char *p = slm_token_text(g_model, t, &l);
        if (p && l == strlen(piece) && !memcmp(p, piece, l)) return t;
    }
    return -1;
}

static slm_grammar *compile(const char *text, slm_error *err) {
    slm_grammar *g = NULL;
    slm_error e;
    if (!err) err = &e;
    if (slm_grammar_create(g_model, text, strlen(text), NULL, &g, err) != SLM_OK) return NULL;
    return g;
}

static slm_sampler *sampler_for(slm_grammar *g, float temp, uint64_t seed) {
    slm_sampler_params sp;
    slm_sampler_params_init(&sp);
    sp.temperature = temp;
    sp.top_k = 0;
    sp.top_p = 1;
    sp.min_p = 0;
    sp.seed = seed;
    sp.grammar = g;
    slm_sampler *s = NULL;
    slm_error err;
    if (slm_sampler_create(&sp, g_nv, NULL, &s, &err) != SLM_OK) CHECK(0, "sampler: %s", err.message);
    return s;
}

/* Allowed tokens through the public API: greedy over logits that favour t. */
static void mask_of(slm_sampler *s, float *logits, unsigned char *allowed) {
    for (int32_t t = 0; t < g_nv; t++) {
        for (int32_t i = 0; i < g_nv; i++) logits[i] = 0;
        logits[t] = 1;
        allowed[t] = slm_sampler_sample(s, logits) == t;
    }
}

/* Reference: a fresh sampler fed the prefix, then t (the token-step path). */
static void mask_ref(slm_grammar *g, const int32_t *prefix, int n, unsigned char *allowed) {
    for (int32_t t = 0; t < g_nv; t++) {
        slm_sampler *s = sampler_for(g, 0, 0);
        for (int i = 0; i < n; i++) slm_sampler_accept(s, prefix[i]);
        slm_sampler_accept(s, t);
        allowed[t] = slm_sampler_grammar_state(s) != SLM_GRAMMAR_FAILED;
        slm_sampler_free(s);
    }
}

/* --- tests ------------------------------------------------------------------------- */

static const char *CORPUS[] = {
    /* arithmetic */
    "root  ::= (expr \"=\" ws term \"\\n\")+\n"
    "expr  ::= term ([-+*/] term)*\n"
    "term  ::= ident | num | \"(\" ws expr \")\" ws\n"
    "ident ::= [a-z] [a-z0-9_]* ws\n"
    "num   ::= [0-9]+ ws\n"
    "ws    ::= [ \\t\\n]*\n",
    /* lists, multi-line rules, comments */
    "# a list of items\n"
    "root ::= item+   # one or more\n"
    "item ::= \"- \" [^\\n]+ \"\\n\"\n",
    "root ::=\n  \"[\" (\n    elem (\",\" elem)*\n  )? \"]\"\nelem ::= [0-9]{1,3}\n",
    /* C-like identifiers */
    "root ::= [a-zA-Z_] [a-zA-Z_0-9]{0,31}\n",
    /* Unicode classes and escapes */
    "root ::= [\\u03B1-\\u03C9]+ \"!\" | [\\x41-\\x5A] | \"\\U0001F600\" | [^\\x00-\\x7F]{2} | \"日本\"\n",
    /* repetitions */
    "root ::= \"a\"{3} \"b\"{2,} \"c\"{,2} (\"d\" | \"e\"){1,4} \"f\"?\n",
    /* alternatives continued on a line starting with | */
    "root ::= \"x\"\n       | \"y\"\n       | \"z\"\n",
    /* any character, escapes in classes */
    "root ::= . [\\]\\[\\-\\\\\"] \"\\\"\\\\\"\n",
};

static void test_parse(void) {
    for (size_t i = 0; i < sizeof CORPUS / sizeof CORPUS[0]; i++) {
        slm_error err;
        slm_grammar *g = compile(CORPUS[i], &err);
        CHECK(g != NULL, "corpus grammar %zu: %s", i, g ? "" : err.message);
        slm_grammar_free(g);
    }
    slm_error err;
    slm_grammar *g = compile(slm_grammar_json(), &err);
    CHECK(g != NULL, "built-in JSON grammar: %s", g ? "" : err.message);
    slm_grammar_free(g);

    static const struct {
        const char *text, *want;
    } BAD[] = {
        {"root ::= \"a\"\nroot ::= \"b\"\n", "line 2, column 1: rule 'root' is already defined on line 1"},
        {"root ::= foo\n", "line 1, column 10: undefined rule 'foo'"},
        {"root ::= \"abc\n", "line 1, column 10: unterminated string literal"},
        {"root ::= [a-\n", "line 1, column 10: unterminated character class"},
        {"root ::= \"a\"\n\n  x ::= (\"b\" | \n", "line 3, column 9: unclosed '('"},
        {"root ::= [z-a]\n", "line 1, column 13: range end U+0061 is below its start U+007A"},
        {"root ::= \"\\q\"\n", "line 1, column 11: unknown escape \\q"},
        {"root ::= \"a\" ::= \"b\"\n", "line 1, column 14: unexpected character ':'"},
        {"root ::= * \"a\"\n", "line 1, column 10: '*' has nothing to repeat"},
        {"root ::= \"a\"{3,2}\n", "line 1, column 13: repetition {3,2}: the maximum is below the minimum"},
        {"root ::= \"a\"{5000}\n", "line 1, column 14: repetition count above 4096"},
        {"root = \"a\"\n", "line 1, column 6: expected '::=' after rule name 'root'"},
        {"start ::= \"a\"\n", "no rule named 'root'"},
        {"root ::= <[1234]>\n", "line 1, column 10: token references (<...>) are not supported"},
        {"root ::= \"\\uD800\"\n", "line 1, column 13: \\x, \\u or \\U value U+D800 is not a Unicode scalar value"},
        {"root ::= \"\xC3\"\n", "line 1, column 11: invalid UTF-8"},
        /* left recursion, direct and through rules that can be empty */
        {"root ::= expr\nexpr ::= expr \"+\" num | num\nnum ::= [0-9]\n", "line 2, column 1: left recursion: rule 'expr'"},
        {"root ::= a\na ::= b? c \"x\"\nb ::= \"y\"\nc ::= d\nd ::= \"\" | a\n",
         "line 2, column 1: left recursion: rule 'a' can start with itself"},
        {"root ::= root \"x\" | \"y\"\n", "line 1, column 1: left recursion: rule 'root'"},
        /* no finite derivation */
        {"root ::= \"(\" root \")\"\n", "line 1, column 1: rule 'root' can never finish"},
        {"root ::= a\na ::= \"x\" b\nb ::= \"y\" a\n", "can never finish"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        g = compile(BAD[i].text, &err);
        CHECK(!g && strstr(err.message, BAD[i].want), "bad grammar %zu: want '%s', got '%s'", i, BAD[i].want,
              g ? "(compiled)" : err.message);
        slm_grammar_free(g);
    }
    /* limits: nesting, size, expansion */
    char *deep = (char *)malloc(400);
    strcpy(deep, "root ::= ");
    for (int i = 0; i < 70; i++) strcat(deep, "(");
    strcat(deep, "\"a\"");
    for (int i = 0; i < 70; i++) strcat(deep, ")");
    strcat(deep, "\n");
    g = compile(deep, &err);
    CHECK(!g && strstr(err.message, "nested deeper than 64"), "nesting limit: %s", g ? "(compiled)" : err.message);
    slm_grammar_free(g);
    free(deep);
    char *wide = (char *)malloc(300 * 12 + 16);
    strcpy(wide, "root ::=");
    for (int i = 0; i < 300; i++) strcat(wide, " \"a\"{4096}");
    strcat(wide, "\n");
    g = compile(wide, &err);
    free(wide);
    CHECK(!g && strstr(err.message, "more than"), "expansion limit: %s", g ? "(compiled)" : err.message);
    slm_grammar_free(g);
    size_t big = (1u << 20) + 10;
    char *huge = (char *)malloc(big);
    memset(huge, ' ', big);
    CHECK(slm_grammar_create(g_model, huge, big, NULL, &g, &err) == SLM_ERR_UNSUPPORTED, "text size limit");
    free(huge);
    CHECK(slm_grammar_create(g_model, "x ::= \"a\"\n", 10, "x", &g, &err) == SLM_OK, "root rule by name");
    slm_grammar_free(g);
    CHECK(slm_grammar_create(NULL, "x", 1, NULL, &g, &err) == SLM_ERR_INVALID_ARG, "NULL model");
}

/* Masks through the trie walk against the token-step reference, along
   random walks; plus hand-checked cases. */
static void test_masks(void) {
    static const char *GR[] = {
        NULL, /* JSON */
        "root ::= [\\u03B1-\\u03C9]+ \"!\" | \"日本\" [^a-z]? \"語\" | \"é\\\"\"\n",
        "root ::= \"{\\\"\" [a-c]+ \"\\\":\" \" \"? [0-9]+ \"}\"\n",
        "root ::= (\"true\" | \"false\" | \"null\") (\",\" \" \"? root)?\n",
    };
    float *logits = (float *)malloc((size_t)g_nv * sizeof(float));
    unsigned char *a = (unsigned char *)malloc((size_t)g_nv), *b = (unsigned char *)malloc((size_t)g_nv);
    uint64_t rs = 7;
    for (size_t gi = 0; gi < sizeof GR / sizeof GR[0]; gi++) {
        slm_error err;
        slm_grammar *g = compile(GR[gi] ? GR[gi] : slm_grammar_json(), &err);
        if (!g) {
            CHECK(0, "mask grammar %zu: %s", gi, err.message);
            continue;
        }
        int walks = test_quick() ? 2 : 6, max_steps = test_quick() ? 16 : 40; /* emulated targets: fewer */
        for (int walk = 0; walk < walks; walk++) {
            slm_sampler *s = sampler_for(g, 0, 0);
            int32_t prefix[40];
            int n = 0, bad = 0;
            for (; n < max_steps; n++) {
                mask_of(s, logits, a);
                mask_ref(g, prefix, n, b);
                int diff = -1, count = 0;
                for (int32_t t = 0; t < g_nv; t++) {
                    if (a[t] != b[t] && diff < 0) diff = t;
                    count += a[t];
                }
                if (diff >= 0) {
                    bad = 1;
                    CHECK(0, "grammar %zu walk %d step %d: token %d mask %d, reference %d", gi, walk, n, diff, a[diff], b[diff]);
                    break;
                }
                if (count == 0) break;
                int pick = (int)(t_rand(&rs) % (uint64_t)count);
                int32_t t = 0;
                for (;; t++)
                    if (a[t] && pick-- == 0) break;
                if (t == 2) break; /* EOS: complete */
                prefix[n] = t;
                slm_sampler_accept(s, t);
            }
            CHECK(!bad, "grammar %zu walk %d: masks agree (%d steps)", gi, walk, n);
            slm_sampler_free(s);
        }
        slm_grammar_free(g);
    }

    /* hand-checked: tokens across terminals, partial UTF-8, EOS */
    slm_error err;
    slm_grammar *g = compile(slm_grammar_json(), &err);
    slm_sampler *s = sampler_for(g, 0, 0);
    mask_of(s, logits, a);
    CHECK(a[tok_of("{")] && a[tok_of("{\"")] && !a[tok_of("\"")] && !a[tok_of("[")] && !a[2], "JSON start: { and {\" only");
    slm_sampler_accept(s, tok_of("{\""));
    mask_of(s, logits, a);
    CHECK(a[tok_of("ab")] && a[tok_of("\xc3\xa9")] && a[3 + 0xC3] && !a[3 + 0xA9] && a[tok_of("\":")] && a[tok_of("\\u")] &&
              a[tok_of("\\")] && !a[3 + 0x01] && a[tok_of("\xe6\x97\xa5\xe6\x9c\xac")],
          "inside a key: text, UTF-8 lead bytes, \":, escapes; no control bytes");
    slm_sampler_accept(s, 3 + 0xE6); /* first byte of 日 */
    mask_of(s, logits, a);
    CHECK(a[3 + 0x97] && !a[3 + 0x41] && !a[tok_of("a")] && !a[3 + 0xE6], "after a lead byte: continuation bytes only");
    slm_sampler_accept(s, 3 + 0x97);
    slm_sampler_accept(s, 3 + 0xA5);
    slm_sampler_accept(s, tok_of("\":"));
    slm_sampler_accept(s, tok_of("12"));
    mask_of(s, logits, a);
    CHECK(a[tok_of("}")] && a[tok_of("123")] && a[tok_of(".5")] && a[tok_of("e1")] && !a[tok_of("\"")] && !a[2] &&
              a[tok_of("}}")] == 0,
          "after a number: digits, fraction, exponent, }");
    slm_sampler_accept(s, tok_of("}"));
    CHECK(slm_sampler_grammar_state(s) == SLM_GRAMMAR_DONE, "JSON object closed: done");
    mask_of(s, logits, a);
    int only_eos = a[2];
    for (int32_t t = 0; t < g_nv; t++)
        if (t != 2 && a[t]) only_eos = 0;
    CHECK(only_eos, "after the object: only EOS");
    slm_sampler_accept(s, tok_of("x"));
    CHECK(slm_sampler_grammar_state(s) == SLM_GRAMMAR_FAILED, "a token past the end fails the grammar");
    CHECK(slm_sampler_sample(s, logits) == -1, "a failed grammar allows nothing");
    slm_sampler_reset(s, 1);
    CHECK(slm_sampler_grammar_state(s) == SLM_GRAMMAR_ACTIVE, "reset restarts the grammar");
    slm_sampler_free(s);
    slm_grammar_free(g);

    /* a token that completes one character and starts the next */
    g = compile("root ::= \"é\" [\\u65E5] \"本\"\n", &err);
    s = sampler_for(g, 0, 0);
    slm_sampler_accept(s, 3 + 0xC3);
    mask_of(s, logits, a);
    CHECK(a[3 + 0xA9] && !a[tok_of("\xc3\xa9")] && !a[3 + 0xA8], "é: the second byte only");
    slm_sampler_accept(s, 3 + 0xA9);
    mask_of(s, logits, a);
    CHECK(a[tok_of("\xe6\x97\xa5\xe6\x9c\xac")] && a[tok_of("\xe6\x97\xa5")] && !a[tok_of("\xe6\x9c\xac")] && !a[2],
          "日本 spans two terminals");
    slm_sampler_accept(s, tok_of("\xe6\x97\xa5\xe6\x9c\xac"));
    CHECK(slm_sampler_grammar_state(s) == SLM_GRAMMAR_DONE, "done after 日本");
    slm_sampler_free(s);
    slm_grammar_free(g);

    /* sampler and grammar of different vocabularies */
    g = compile("root ::= \"a\"\n", &err);
    slm_sampler_params sp;
    slm_sampler_params_init(&sp);
    sp.grammar = g;
    CHECK(slm_sampler_create(&sp, g_nv + 1, NULL, &s, &err) == SLM_ERR_INVALID_ARG && strstr(err.message, "vocabulary"),
          "vocabulary size mismatch: %s", err.message);
    slm_grammar_free(g);
    free(logits);
    free(a);
    free(b);
}

static const char *SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":10},\"age\":{\"type\":\"integer\"}},"
    "\"required\":[\"name\",\"age\"],\"additionalProperties\":false}",
    "{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"green\",\"blue\"]},\"n\":{\"type\":\"number\"}},"
    "\"required\":[\"color\"]}",
    "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":4}",
    "{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"},\"v\":{\"const\":\"x1\"},\"z\":{\"type\":\"null\"}},"
    "\"required\":[\"ok\",\"v\",\"z\"]}",
    "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":5}]}",
    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\","
    "\"items\":{\"$ref\":\"#/$defs/node\"},\"maxItems\":2}},\"required\":[\"id\"]}},\"$ref\":\"#/$defs/node\"}",
    "{\"type\":\"object\",\"properties\":{\"d\":{\"type\":\"string\",\"format\":\"date\"},\"t\":{\"type\":\"string\","
    "\"format\":\"time\"},\"u\":{\"type\":\"string\",\"format\":\"uuid\"}},\"required\":[\"d\",\"t\",\"u\"]}",
    "{\"type\":\"string\",\"minLength\":2,\"maxLength\":6}",
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":[\"integer\",\"null\"]},\"b\":{\"oneOf\":[{\"type\":\"boolean\"},"
    "{\"enum\":[1,2,3]}]}},\"required\":[\"a\",\"b\"]}",
    "{\"definitions\":{\"pt\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"},\"y\":{\"type\":\"integer\"}},"
    "\"required\":[\"x\",\"y\"]}},\"type\":\"object\",\"properties\":{\"from\":{\"$ref\":\"#/definitions/pt\"},"
    "\"to\":{\"$ref\":\"#/definitions/pt\"},\"tag\":{\"type\":\"string\",\"maxLength\":4}},\"required\":[\"from\",\"to\"],"
    "\"additionalProperties\":false,\"title\":\"a segment\"}",
    /* extra members (keys unbounded: conversion only) */
    "{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"integer\"}},\"required\":[\"k\"],"
    "\"additionalProperties\":{\"type\":\"boolean\"}}",
};

static char *schema_grammar(const char *schema, slm_error *err) {
    size_t len = 0;
    if (slm_json_schema_to_grammar(schema, strlen(schema), NULL, 0, &len, err) != SLM_ERR_BUFFER) return NULL;
    char *t = (char *)malloc(len + 1);
    if (slm_json_schema_to_grammar(schema, strlen(schema), t, len + 1, &len, err) != SLM_OK) {
        free(t);
        return NULL;
    }
    return t;
}

static void test_schema(void) {
    for (size_t i = 0; i < sizeof SCHEMAS / sizeof SCHEMAS[0]; i++) {
        slm_error err;
        char *t = schema_grammar(SCHEMAS[i], &err);
        CHECK(t != NULL, "schema %zu converts: %s", i, t ? "" : err.message);
        if (!t) continue;
        slm_grammar *g = compile(t, &err);
        CHECK(g != NULL, "schema %zu grammar compiles: %s\n%s", i, g ? "" : err.message, t);
        slm_grammar_free(g);
        free(t);
    }
    static const struct {
        const char *schema, *want;
    } BAD[] = {
        {"{\"type\":\"string\",\"pattern\":\"^a+$\"}", "unsupported keyword 'pattern' (at the root)"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\",\"minimum\":3}}}",
         "unsupported keyword 'minimum' (at /properties/a)"},
        {"{\"allOf\":[{\"type\":\"string\"}]}", "unsupported keyword 'allOf'"},
        {"{\"type\":\"string\",\"format\":\"email\"}", "unsupported string format 'email'"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "is not local"},
        {"{\"$ref\":\"#/$defs/missing\"}", "points to nothing"},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]}", "tuple validation"},
        {"{\"type\":\"strnig\"}", "unknown type 'strnig'"},
        {"{\"type\":\"object\",\"required\":[\"a\"]}", "required property 'a' is not in 'properties'"},
        {"{\"type\":\"string\",\"maxLength\":100000}", "'maxLength' 100000 is above the limit 4096"},
        {"{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}", "maxLength 2 is below minLength 3"},
        {"{\"type\": }", "json schema: line 1, column 10"},
        {"{\"a\":\"\\ud800\"}", "surrogate"},
        {"false", "allows no value"},
        {"[1]", "must be an object or a boolean"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        slm_error err;
        size_t len;
        slm_status st = slm_json_schema_to_grammar(BAD[i].schema, strlen(BAD[i].schema), NULL, 0, &len, &err);
        CHECK(st != SLM_OK && st != SLM_ERR_BUFFER && strstr(err.message, BAD[i].want), "bad schema %zu: want '%s', got '%s'",
              i, BAD[i].want, err.message);
    }
    /* depth bound of the schema parser */
    char deep[400];
    size_t k = 0;
    for (int i = 0; i < 100; i++) deep[k++] = '[';
    for (int i = 0; i < 100; i++) deep[k++] = ']';
    deep[k] = 0;
    slm_error err;
    size_t len;
    CHECK(slm_json_schema_to_grammar(deep, k, NULL, 0, &len, &err) == SLM_ERR_FORMAT && strstr(err.message, "nested deeper"),
          "schema nesting bound: %s", err.message);
}

/* Generation with the demo model: every output is JSON (or, cut off by
   max_tokens, a valid prefix of JSON) and, for schemas, valid against them. */
typedef struct gen_buf {
    char *p;
    size_t n, cap;
} gen_buf;

static int gen_cb(void *user, const char *text, size_t len) {
    gen_buf *b = (gen_buf *)user;
    if (b->n + len + 1 > b->cap) b->p = (char *)realloc(b->p, b->cap = (b->n + len + 1) * 2);
    memcpy(b->p + b->n, text, len);
    b->n += len;
    b->p[b->n] = 0;
    return 0;
}

static void gen_check(slm_model *m, const char *gtext, const char *schema, int n_seeds, const char *label) {
    slm_error err;
    slm_grammar *g = NULL;
    if (slm_grammar_create(m, gtext, strlen(gtext), NULL, &g, &err) != SLM_OK) {
        CHECK(0, "%s: grammar: %s", label, err.message);
        return;
    }
    tj sv;
    if (schema && tj_check(schema, strlen(schema), &sv) != 1) {
        CHECK(0, "%s: the test's parser rejects the schema", label);
        slm_grammar_free(g);
        return;
    }
    slm_session_params spp;
    slm_session_params_init(&spp);
    spp.n_ctx = 512;
    spp.n_threads = 1;
    slm_session *s = NULL;
    if (slm_session_create(m, &spp, &s, &err) != SLM_OK) {
        CHECK(0, "%s: session: %s", label, err.message);
        slm_grammar_free(g);
        return;
    }
    int complete = 0, prefix = 0, bad = 0;
    for (int seed = 0; seed < n_seeds; seed++) {
        slm_session_rewind(s, 0);
        gen_buf b = {NULL, 0, 0};
        slm_generate_params gp;
        slm_generate_params_init(&gp);
        gp.max_tokens = 300;
        gp.sampler.temperature = 1.5f;
        gp.sampler.top_k = 0;
        gp.sampler.top_p = 1;
        gp.sampler.min_p = 0;
        gp.sampler.seed = (uint64_t)seed * 7919 + 1;
        gp.sampler.grammar = g;
        gp.on_text = gen_cb;
        gp.user = &b;
        slm_generate_result r;
        if (slm_generate(s, "And the LORD said", 17, NULL, 0, &gp, &r, &err) != SLM_OK) {
            CHECK(0, "%s: generate: %s", label, err.message);
            break;
        }
        const char *txt = b.p ? b.p : "";
        tj v;
        int c = tj_check(txt, b.n, &v);
        if (r.stop_reason == SLM_STOP_GRAMMAR || r.stop_reason == SLM_STOP_EOG) {
            if (c != 1) {
                bad++;
                CHECK(0, "%s seed %d: complete output is not JSON: %s", label, seed, txt);
            } else {
                if (schema && !tj_valid(&v, &sv, &sv, 0)) {
                    bad++;
                    CHECK(0, "%s seed %d: output does not validate: %s", label, seed, txt);
                }
                tj_free(&v);
                complete++;
            }
        } else {
            if (c == 1) tj_free(&v);
            if (c == 0) {
                bad++;
                CHECK(0, "%s seed %d: cut-off output is not a JSON prefix: %s", label, seed, txt);
            }
            prefix++;
        }
        free(b.p);
    }
    CHECK(bad == 0 && complete > 0, "%s: %d complete outputs valid, %d cut off by max_tokens valid prefixes", label,
          complete, prefix);
    if (schema) tj_free(&sv);
    slm_session_free(s);
    slm_grammar_free(g);
}

static void test_generate_json(void) {
    slm_model *m = NULL;
    slm_error err;
    slm_model_params mp;
    slm_model_params_init(&mp);
    if (slm_model_load_file(data_path("demo/kjv-1m-q8_0.gguf"), &mp, &m, &err) != SLM_OK) {
        CHECK(0, "demo model: %s", err.message);
        return;
    }
    int quick = test_quick();
    gen_check(m, slm_grammar_json(), NULL, quick ? 5 : 40, "json");
    for (size_t i = 0; i < 10; i++) {
        char *t = schema_grammar(SCHEMAS[i], &err);
        if (!t) continue;
        char label[32];
        snprintf(label, sizeof label, "schema %zu", i);
        gen_check(m, t, SCHEMAS[i], quick ? 3 : 20, label);
        free(t);
    }
    slm_model_free(m);
}


/* Real vocabularies (byte-level BPE, SentencePiece with byte tokens): random
   logits under the JSON grammar; every sampled token is accepted and the
   text stays a JSON prefix (or is JSON when the grammar is done). */
static void test_real_vocabs(void) {
    static const char *const VOCABS[] = {"tokenizer/ggml-vocab-gpt-2.gguf", "tokenizer/ggml-vocab-llama-spm.gguf"};
    for (size_t vi = 0; vi < 2; vi++) {
        slm_model_params mp;
        slm_model_params_init(&mp);
        mp.vocab_only = 1;
        slm_model *m = NULL;
        slm_error err;
        if (slm_model_load_file(data_path(VOCABS[vi]), &mp, &m, &err) != SLM_OK) {
            CHECK(0, "%s: %s", VOCABS[vi], err.message);
            continue;
        }
        slm_grammar *g = NULL;
        if (slm_grammar_create(m, slm_grammar_json(), strlen(slm_grammar_json()), NULL, &g, &err) != SLM_OK) {
            CHECK(0, "%s: JSON grammar: %s", VOCABS[vi], err.message);
            slm_model_free(m);
            continue;
        }
        int32_t nv = slm_vocab_size(m);
        float *logits = (float *)malloc((size_t)nv * sizeof(float));
        uint64_t rs = 99 + vi;
        int ok = 1, done = 0;
        for (int run = 0; run < (test_quick() ? 2 : 8) && ok; run++) {
            slm_sampler_params sp;
            slm_sampler_params_init(&sp);
            sp.grammar = g;
            sp.seed = (uint64_t)run;
            sp.temperature = 2.0f;
            sp.top_k = 0;
            sp.top_p = 1;
            sp.min_p = 0;
            slm_sampler *s = NULL;
            if (slm_sampler_create(&sp, nv, NULL, &s, &err) != SLM_OK) {
                CHECK(0, "sampler: %s", err.message);
                break;
            }
            char text[8192];
            size_t tl = 0;
            for (int step = 0; step < 120; step++) {
                for (int32_t i = 0; i < nv; i++) logits[i] = 4.0f * t_randf(&rs);
                int32_t t = slm_sampler_sample(s, logits);
                if (t < 0 || slm_token_is_eog(m, t)) break;
                slm_sampler_accept(s, t);
                char piece[256];
                size_t pl = 0;
                if (slm_token_to_piece(m, t, 0, piece, sizeof piece, &pl) == SLM_OK && tl + pl < sizeof text) {
                    memcpy(text + tl, piece, pl);
                    tl += pl;
                }
                int st = slm_sampler_grammar_state(s);
                if (st == SLM_GRAMMAR_FAILED) {
                    ok = 0;
                    CHECK(0, "%s run %d: sampled token %d was not accepted", VOCABS[vi], run, (int)t);
                    break;
                }
                if (st == SLM_GRAMMAR_DONE) {
                    done++;
                    break;
                }
            }
            int c = tj_check(text, tl, NULL);
            if (c == 0) {
                ok = 0;
                CHECK(0, "%s run %d: not JSON nor a JSON prefix: %.*s", VOCABS[vi], run, (int)tl, text);
            }
            if (slm_sampler_grammar_state(s) == SLM_GRAMMAR_DONE && c != 1) {
                ok = 0;
                CHECK(0, "%s run %d: done but not JSON: %.*s", VOCABS[vi], run, (int)tl, text);
            }
            slm_sampler_free(s);
        }
        CHECK(ok, "%s: random sampling under the JSON grammar stays JSON (%d runs completed)", VOCABS[vi], done);
        free(logits);
        slm_grammar_free(g);
        slm_model_free(m);
    }
}


/* slm run --json / --json-schema / --grammar through a pipe (POSIX hosts). */
#if defined(__unix__) || defined(__APPLE__)
FILE *popen(const char *command, const char *type);
int pclose(FILE *stream);

static int run_cli(const char *args, char *out, size_t cap) {
    const char *cli = getenv("SLM_CLI") ? getenv("SLM_CLI") : "build/slm";
    FILE *probe = fopen(cli, "rb");
    if (!probe) return -2;
    fclose(probe);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s run -m %s -p 'And the LORD said' --no-echo -t 1 %s 2>&1", cli,
             data_path("demo/kjv-1m-q8_0.gguf"), args);
    FILE *p = popen(cmd, "r");
    if (!p) return -2;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    return pclose(p);
}

static void test_cli(void) {
    static char out[65536];
    char path[512], args[1024];
    int rc = run_cli("--json -n 200 --seed 1 --temp 0", out, sizeof out);
    CHECK(rc != -2, "build/slm not found (make builds it; SLM_CLI overrides the path)");
    if (rc == -2) return;
    char *nl = strstr(out, "\nslm: load");
    CHECK(rc == 0 && nl, "slm run --json: exit %d:\n%s", rc, out);
    if (nl) CHECK(tj_check(out, (size_t)(nl - out), NULL) >= 1, "slm run --json output is JSON:\n%s", out);
    snprintf(path, sizeof path, "%s/slm-grammar-%d.json", tmp_dir(), (int)((size_t)out % 100000));
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"},\"n\":{\"enum\":[1,2]}},"
              "\"required\":[\"ok\",\"n\"],\"additionalProperties\":false}", f);
        fclose(f);
        snprintf(args, sizeof args, "--json-schema %s -n 100 --seed 2 --temp 1.5", path);
        rc = run_cli(args, out, sizeof out);
        CHECK(rc == 0 && (!strncmp(out, "{", 1)) && strstr(out, "stop: grammar complete"),
              "slm run --json-schema: exit %d:\n%s", rc, out);
        nl = strstr(out, "\nslm: load");
        tj v;
        if (nl && tj_check(out, (size_t)(nl - out), &v) == 1) {
            CHECK(v.type == TJ_OBJ && v.n == 2 && tj_get(&v, "ok") && tj_get(&v, "n"), "schema output: %s", out);
            tj_free(&v);
        } else {
            CHECK(0, "slm run --json-schema output is not JSON:\n%s", out);
        }
        f = fopen(path, "wb");
        if (f) {
            fputs("root ::= \"a\"\n\nx ::= (\"b\"\n", f);
            fclose(f);
        }
        snprintf(args, sizeof args, "--grammar %s -n 10", path);
        rc = run_cli(args, out, sizeof out);
        CHECK(rc != 0 && strstr(out, "line 3, column 7: unclosed '('"), "slm run --grammar with an error: exit %d:\n%s", rc,
              out);
        snprintf(args, sizeof args, "--json --grammar %s -n 10", path);
        rc = run_cli(args, out, sizeof out);
        CHECK(rc != 0 && strstr(out, "use one of"), "two grammar options refused:\n%s", out);
        remove(path);
    }
}
#else
static void test_cli(void) {}
#endif

void test_grammar(void) {
    g_model = build_vocab();
    if (!g_model) return;
    g_nv = slm_vocab_size(g_model);
    test_parse();
    test_masks();
    test_schema();
    test_real_vocabs();
    test_generate_json();
    test_cli();
    slm_model_free(g_model);
    free(g_vocab_buf);
}
