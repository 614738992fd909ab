/*
 * http.h - HTTP/1.x request-head parser for slm serve.
 *
 * Parses the request line and headers of an untrusted request held in a
 * buffer (no allocation, no I/O): bounded header section, header count and
 * line lengths; a strict Content-Length; Transfer-Encoding refused (the
 * clients slm serve is for send Content-Length). The server reads the body
 * itself, Content-Length bytes after the head.
 */
#ifndef SLM_SERVE_HTTP_H
#define SLM_SERVE_HTTP_H

#include <stddef.h>

#define HTTP_MAX_HEAD 16384 /* bytes of request line + headers */
#define HTTP_MAX_HEADERS 64

typedef struct http_header {
    const char *name, *value; /* into the caller's buffer, not NUL-terminated */
    size_t name_len, value_len;
} http_header;

typedef struct http_request {
    const char *method, *target; /* target: the path and query, as sent */
    size_t method_len, target_len;
    int version_minor;           /* HTTP/1.x */
    http_header headers[HTTP_MAX_HEADERS];
    int n_headers;
    long long content_length;    /* -1 if absent */
    int close;                   /* Connection: close (or HTTP/1.0 without keep-alive) */
    size_t head_len;             /* bytes of the head, through the blank line */
} http_request;

/* Parse the head at buf[0, len).
   > 0: the head is complete (its length, also in req->head_len);
     0: incomplete, read more (the caller refuses heads over HTTP_MAX_HEAD);
   < 0: a bad request, the negated HTTP status to answer with (400, 413 for
        a Content-Length too large to represent, 431 for too many or too
        long headers, 501 for Transfer-Encoding, 505 for another version).
   On an error, *why (may be NULL) points to a static sentence. */
int http_parse_request(const char *buf, size_t len, http_request *req, const char **why);

/* The value of a header (case-insensitive name), or NULL. */
const http_header *http_find_header(const http_request *req, const char *name);

/* 1 if a and b (lengths na, nb) are equal, in time that depends only on the
   lengths (for secrets such as API keys). */
int http_secret_equal(const char *a, size_t na, const char *b, size_t nb);

#endif
