/*
 * http.c - HTTP/1.x request-head parser (see http.h).
 */
#include "http.h"

#include <string.h>

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(const char *a, size_t na, const char *b) {
    size_t nb = strlen(b);
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
    return 1;
}

/* RFC 9110 token characters (method, header names) */
static int tchar(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

#define BAD(status, msg)           \
    do {                           \
        if (why) *why = (msg);     \
        return -(status);          \
    } while (0)

/* End of the line starting at p (the index of its '\n'), or -1. */
static long line_end(const char *buf, size_t len, size_t p) {
    const char *nl = (const char *)memchr(buf + p, '\n', len - p);
    return nl ? (long)(nl - buf) : -1;
}

int http_parse_request(const char *buf, size_t len, http_request *req, const char **why) {
    memset(req, 0, sizeof *req);
    req->content_length = -1;
    if (why) *why = NULL;
    size_t limit = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
    size_t p = 0;
    /* tolerate blank lines before the request line (RFC 9112 2.2) */
    while (p < limit && (buf[p] == '\r' || buf[p] == '\n')) p++;
    long e = line_end(buf, limit, p);
    if (e < 0) {
        if (len >= HTTP_MAX_HEAD) BAD(431, "request line too long");
        return 0;
    }
    size_t le = (size_t)e;
    if (le > p && buf[le - 1] == '\r') le--;
    /* METHOD SP TARGET SP HTTP/1.x */
    size_t q = p;
    while (q < le && tchar((unsigned char)buf[q])) q++;
    if (q == p || q >= le || buf[q] != ' ' || q - p > 16) BAD(400, "malformed request line");
    req->method = buf + p;
    req->method_len = q - p;
    size_t t = ++q;
    while (q < le && buf[q] != ' ') {
        unsigned char c = (unsigned char)buf[q];
        if (c <= 0x20 || c >= 0x7f) BAD(400, "invalid character in the request target");
        q++;
    }
    if (q == t || q >= le) BAD(400, "malformed request line");
    req->target = buf + t;
    req->target_len = q - t;
    q++;
    if (le - q != 8 || memcmp(buf + q, "HTTP/1.", 7)) {
        if (le - q == 8 && !memcmp(buf + q, "HTTP/", 5)) BAD(505, "only HTTP/1.0 and HTTP/1.1 are supported");
        BAD(400, "malformed request line");
    }
    if (buf[q + 7] != '0' && buf[q + 7] != '1') BAD(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    req->version_minor = buf[q + 7] - '0';
    int keep_alive = 0, close = 0;
    p = (size_t)e + 1;
    /* headers until the empty line */
    for (;;) {
        e = line_end(buf, limit, p);
        if (e < 0) {
            if (len >= HTTP_MAX_HEAD) BAD(431, "request headers too large");
            return 0;
        }
        le = (size_t)e;
        if (le > p && buf[le - 1] == '\r') le--;
        if (le == p) { /* the blank line */
            p = (size_t)e + 1;
            break;
        }
        if (buf[p] == ' ' || buf[p] == '\t') BAD(400, "obsolete header line folding");
        size_t c = p;
        while (c < le && tchar((unsigned char)buf[c])) c++;
        if (c == p || c >= le || buf[c] != ':') BAD(400, "malformed header line");
        if (req->n_headers == HTTP_MAX_HEADERS) BAD(431, "too many request headers");
        http_header *h = &req->headers[req->n_headers++];
        h->name = buf + p;
        h->name_len = c - p;
        c++;
        while (c < le && (buf[c] == ' ' || buf[c] == '\t')) c++;
        size_t ve = le;
        while (ve > c && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) ve--;
        for (size_t k = c; k < ve; k++) {
            unsigned char ch = (unsigned char)buf[k];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) BAD(400, "control character in a header value");
        }
        h->value = buf + c;
        h->value_len = ve - c;
        if (ieq(h->name, h->name_len, "content-length")) {
            long long v = 0;
            if (h->value_len == 0) BAD(400, "empty Content-Length");
            for (size_t k = 0; k < h->value_len; k++) {
                char d = h->value[k];
                if (d < '0' || d > '9') BAD(400, "invalid Content-Length");
                if (v > 1000000000000LL) BAD(413, "Content-Length too large");
                v = v * 10 + (d - '0');
            }
            if (req->content_length >= 0 && req->content_length != v) BAD(400, "conflicting Content-Length headers");
            req->content_length = v;
        } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
            BAD(501, "Transfer-Encoding is not supported: send Content-Length");
        } else if (ieq(h->name, h->name_len, "connection")) {
            /* a comma-separated list; look for the two options that matter */
            for (size_t k = 0; k < h->value_len;) {
                size_t s = k;
                while (k < h->value_len && h->value[k] != ',') k++;
                size_t a = s, b = k;
                while (a < b && (h->value[a] == ' ' || h->value[a] == '\t')) a++;
                while (b > a && (h->value[b - 1] == ' ' || h->value[b - 1] == '\t')) b--;
                if (ieq(h->value + a, b - a, "close")) close = 1;
                if (ieq(h->value + a, b - a, "keep-alive")) keep_alive = 1;
                k++;
            }
        }
        p = (size_t)e + 1;
    }
    req->close = close || (req->version_minor == 0 && !keep_alive);
    req->head_len = p;
    return (int)p;
}

const http_header *http_find_header(const http_request *req, const char *name) {
    for (int i = 0; i < req->n_headers; i++)
        if (ieq(req->headers[i].name, req->headers[i].name_len, name)) return &req->headers[i];
    return NULL;
}

int http_secret_equal(const char *a, size_t na, const char *b, size_t nb) {
    /* every byte of the expected secret (b) is compared whatever a holds,
       so the time reveals only the lengths */
    volatile unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < nb; i++) diff |= (unsigned char)((i < na ? (unsigned char)a[i] : 0) ^ (unsigned char)b[i]);
    return diff == 0;
}
