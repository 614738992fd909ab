/*
 * serve.c - `slm serve`: the model as a local HTTP server that OpenAI and
 * Ollama clients use unchanged.
 *
 *   OpenAI:  POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
 *            POST /v1/embeddings
 *   Ollama:  POST /api/chat, POST /api/generate, POST /api/embed,
 *            POST /api/embeddings, GET /api/tags,
 *            GET /api/ps, POST /api/show, GET /api/version
 *   GET /health
 *
 * Threads: the accept loop hands each connection to a thread of its own
 * (bounded: past the limit a connection gets 503 at once). A generation
 * request takes one of N slots (--parallel), each an slm_session on the one
 * shared model; requests beyond N wait in a bounded queue, past it 503. A
 * slot remembers the tokens in its session, so a request whose prompt starts
 * like the slot's last one (a conversation's next turn) rewinds the session
 * to the common prefix and decodes only the rest.
 *
 * One request per connection (Connection: close): no pipelining to get
 * wrong; streams end when the connection does.
 *
 * Structured output: OpenAI's response_format (json_object, json_schema)
 * and Ollama's format ("json", a schema) become a grammar in the request's
 * sampler (the schema through slm_json_schema_to_grammar); compiled
 * grammars are shared read-only and the last GRAMMAR_CACHE are kept.
 *
 * Adding an endpoint is one handler and one ROUTES
 * line.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE /* sysconf(_SC_NPROCESSORS_ONLN) */
#endif
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32) || !(defined(__unix__) || defined(__APPLE__))

int serve_main(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "slm serve: not supported on this platform (it needs POSIX sockets and threads)\n");
    return 1;
}

#else

#include "../../slm.h"
#include "http.h"
#include "json.h"
#include "think.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SIGPIPE is ignored anyway */
#endif

#define MAX_STOP 16
#define MAX_MESSAGES 1024
#define GRAMMAR_CACHE 4         /* compiled grammars kept per server (by their GBNF text): ~5 MB each on a 152K vocabulary */
#define MAX_SCHEMA (256 << 10)  /* bytes of a response schema, as JSON text */

/* ---- server state ------------------------------------------------------------ */

/* A compiled grammar, shared read-only by the requests that use it.
   Binding a grammar to the vocabulary costs ~135 ms on a 152K vocabulary
   (35 ms on 49K, 0.3 ms on the demo model; converting a schema ~0.2 ms),
   so the server keeps the last GRAMMAR_CACHE ones by their text. */
typedef struct gram_entry {
    char *key;              /* [key_len + 1] the GBNF text */
    size_t key_len;
    slm_grammar *g;
    int refs;               /* requests using it (under server.gmu) */
    int cached;             /* in server.gcache; else freed by its last user */
    unsigned long long last;
} gram_entry;

typedef struct slot {
    int id;
    slm_session *s;
    int32_t *cache;         /* [n_ctx] the tokens now in the session */
    int32_t n_cache;
    int busy;
    unsigned long long last; /* use counter when last taken (least recently used first) */
} slot;

typedef struct server {
    slm_model *model;
    slm_model_info info;
    const char *path;
    char id[256];           /* the model's name in the APIs: the file name without .gguf */
    int family;             /* chat template family */
    int n_ctx, n_threads;
    int n_slots;
    slot *slots;            /* [n_slots] */
    int queue_max, n_waiting;
    int max_conn, n_conn;
    int timeout_s;          /* reading a request; writing to a client */
    size_t max_body;
    const char *api_key;
    unsigned long long uses, n_requests;
    int ids_seq;
    int stopping;           /* shutting down (under mu): waiting requests give up */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gram_entry *gcache[GRAMMAR_CACHE];
    unsigned long long gtick;
    pthread_mutex_t gmu;    /* the grammar cache; held while compiling (one compile at a time) */
    time_t started;
    const char *main_type;
} server;

/* set by SIGINT/SIGTERM, read by the accept loop only (which tells the
   connection threads through server.stopping) */
static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int stopping(server *sv) {
    pthread_mutex_lock(&sv->mu);
    int s = sv->stopping;
    pthread_mutex_unlock(&sv->mu);
    return s;
}

/* ---- connection I/O ------------------------------------------------------------ */

typedef struct conn {
    server *sv;
    int fd;
    char peer[64];
    char *buf;              /* [cap] the request: head, then body */
    size_t len, cap;
    http_request req;
    const char *path;       /* the target without its query, NUL-terminated copy */
    char path_buf[256];
    const char *body;
    size_t body_len;
    int status;             /* for the log line */
    int head_sent, broken;
    int ollama;             /* errors in Ollama's shape ({"error": "..."}) */
    int32_t n_prompt, n_cached, n_gen;
    double t0, ttft;
} conn;

static int send_all(conn *c, const char *p, size_t n) {
    while (n > 0 && !c->broken) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            c->broken = 1; /* gone, or too slow (SO_SNDTIMEO) */
            break;
        }
        p += k;
        n -= (size_t)k;
    }
    return c->broken ? -1 : 0;
}

/* 1 if the client has closed its side (or reset), without consuming data. */
static int peer_closed(int fd) {
    char b;
    ssize_t k = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static const char *reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* The status line and headers; content_length < 0: the body runs until the
   connection closes (streams). */
static void send_head(conn *c, int status, const char *ctype, long long content_length, const char *extra) {
    char h[640];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 %d %s\r\nServer: slm/%s\r\nConnection: close\r\n"
                     "Access-Control-Allow-Origin: *\r\n%s%s%s",
                     status, reason_phrase(status), slm_version(), ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "");
    if (content_length >= 0) n += snprintf(h + n, sizeof h - (size_t)n, "Content-Length: %lld\r\n", content_length);
    n += snprintf(h + n, sizeof h - (size_t)n, "%s\r\n", extra ? extra : "");
    c->status = status;
    c->head_sent = 1;
    send_all(c, h, (size_t)n);
}

static void respond(conn *c, int status, const char *ctype, const char *body, size_t n) {
    send_head(c, status, ctype, (long long)n, NULL);
    int head_only = c->req.method_len == 4 && !memcmp(c->req.method, "HEAD", 4);
    if (!head_only) send_all(c, body, n);
}

static void respond_json(conn *c, int status, jbuf *b) {
    if (b->failed) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                                  "\"code\":null}}";
        respond(c, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    respond(c, status, "application/json", b->s ? b->s : "{}", b->s ? b->n : 2);
}

/* An error in the shape the client's API expects: OpenAI's error object, or
   Ollama's {"error": "..."}. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static void respond_error(conn *c, int status, const char *param, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf b = {0};
    if (c->ollama) {
        jb_cstr(&b, "{\"error\":");
        jb_str(&b, msg, strlen(msg));
        jb_cstr(&b, "}");
    } else {
        const char *type = status == 401   ? "authentication_error"
                           : status == 404 ? "not_found_error"
                           : status == 503 ? "server_busy"
                           : status >= 500 ? "server_error"
                                           : "invalid_request_error";
        jb_cstr(&b, "{\"error\":{\"message\":");
        jb_str(&b, msg, strlen(msg));
        jb_cstr(&b, ",\"type\":");
        jb_str(&b, type, strlen(type));
        jb_cstr(&b, ",\"param\":");
        if (param) jb_str(&b, param, strlen(param));
        else jb_cstr(&b, "null");
        jb_cstr(&b, ",\"code\":null}}");
    }
    if (c->head_sent) { /* a stream already started: say it in the stream */
        if (c->ollama) jb_cstr(&b, "\n");
        else {
            jbuf e = {0};
            jb_cstr(&e, "data: ");
            jb_raw(&e, b.s, b.n);
            jb_cstr(&e, "\n\n");
            jb_free(&b);
            b = e;
        }
        if (!b.failed) send_all(c, b.s, b.n);
        c->status = status;
    } else {
        respond_json(c, status, &b);
    }
    jb_free(&b);
}

static int strncasecmp_(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        x = x >= 'A' && x <= 'Z' ? x + 32 : x;
        y = y >= 'A' && y <= 'Z' ? y + 32 : y;
        if (x != y) return x - y;
    }
    return 0;
}

/* Read the request head and body, within the deadline. 0: complete;
   -1: nothing to answer (the client went away or sent nothing);
   else an error status has been sent. */
static int read_request(conn *c) {
    server *sv = c->sv;
    double deadline = now_ms() + sv->timeout_s * 1000.0;
    size_t need = 0; /* head + body once the head is known */
    const char *why = NULL;
    c->cap = 4096;
    c->buf = (char *)malloc(c->cap + 1);
    if (!c->buf) return -1;
    for (;;) {
        if (need && c->len >= need) break;
        if (!need) {
            int r = http_parse_request(c->buf, c->len, &c->req, &why);
            if (r < 0) {
                respond_error(c, -r, NULL, "%s", why ? why : "bad request");
                return 1;
            }
            if (r > 0) {
                long long cl = c->req.content_length;
                if (cl < 0) cl = 0;
                if ((unsigned long long)cl > sv->max_body) {
                    respond_error(c, 413, NULL, "request body of %lld bytes is larger than the limit of %zu bytes (--max-body)",
                                  cl, sv->max_body);
                    return 1;
                }
                need = (size_t)r + (size_t)cl;
                /* curl sends Expect: 100-continue with larger bodies and waits for this */
                const http_header *ex = http_find_header(&c->req, "expect");
                if (ex && cl > 0 && c->len < need && ex->value_len == 12 && !strncasecmp_(ex->value, "100-continue", 12))
                    send_all(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                if (need > c->cap) {
                    char *nb = (char *)realloc(c->buf, need + 1);
                    if (!nb) {
                        respond_error(c, 500, NULL, "out of memory");
                        return 1;
                    }
                    c->buf = nb;
                    c->cap = need;
                }
                continue;
            }
            if (c->len == c->cap) { /* head incomplete: grow up to the parser's limit */
                size_t nc = c->cap * 2 > HTTP_MAX_HEAD ? HTTP_MAX_HEAD : c->cap * 2;
                if (nc <= c->cap) {
                    respond_error(c, 431, NULL, "request head larger than %d bytes", HTTP_MAX_HEAD);
                    return 1;
                }
                char *nb = (char *)realloc(c->buf, nc + 1);
                if (!nb) return -1;
                c->buf = nb;
                c->cap = nc;
            }
        }
        double left = deadline - now_ms();
        if (left <= 0 || stopping(sv)) {
            if (c->len == 0) return -1;
            respond_error(c, 408, NULL, "the request was not received within %d s", sv->timeout_s);
            return 1;
        }
        struct pollfd pf = {c->fd, POLLIN, 0};
        int pr = poll(&pf, 1, left > 1000 ? 1000 : (int)left + 1);
        if (pr < 0 && errno != EINTR) return -1;
        if (pr <= 0) continue;
        size_t want = (need ? need : c->cap) - c->len;
        ssize_t k = recv(c->fd, c->buf + c->len, want, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) {
            if (c->len == 0) return -1;
            /* a truncated request: say so, in case the client only closed its sending side */
            respond_error(c, 400, NULL, "the connection closed before the request was complete");
            return 1;
        }
        c->len += (size_t)k;
    }
    c->buf[c->len] = 0;
    /* again on the final buffer: growing it for the body moved the head */
    if (http_parse_request(c->buf, c->len, &c->req, &why) <= 0) return -1;
    c->body = c->buf + c->req.head_len;
    c->body_len = c->len - c->req.head_len;
    size_t tl = c->req.target_len;
    const char *q = (const char *)memchr(c->req.target, '?', tl);
    if (q) tl = (size_t)(q - c->req.target);
    if (tl >= sizeof c->path_buf) tl = sizeof c->path_buf - 1;
    memcpy(c->path_buf, c->req.target, tl);
    c->path_buf[tl] = 0;
    c->path = c->path_buf;
    return 0;
}

/* ---- slots ----------------------------------------------------------------------- */

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Take a free slot, preferring the one whose session shares the longest
   prefix with the prompt (then the least recently used). Waits in the
   queue if all are busy. NULL: refused (503 sent) or the client left. */
static slot *acquire_slot(conn *c, const int32_t *ids, int32_t n) {
    server *sv = c->sv;
    pthread_mutex_lock(&sv->mu);
    int waiting = 0;
    for (;;) {
        slot *best = NULL;
        int32_t best_p = -1;
        for (int i = 0; i < sv->n_slots; i++) {
            slot *s = &sv->slots[i];
            if (s->busy) continue;
            int32_t p = common_prefix(s->cache, s->n_cache, ids, n);
            if (p > best_p || (p == best_p && s->last < best->last)) best = s, best_p = p;
        }
        if (best) {
            best->busy = 1;
            best->last = ++sv->uses;
            if (waiting) sv->n_waiting--;
            pthread_mutex_unlock(&sv->mu);
            return best;
        }
        if (!waiting) {
            if (sv->n_waiting >= sv->queue_max) {
                pthread_mutex_unlock(&sv->mu);
                respond_error(c, 503, NULL, "all %d slots are busy and %d requests are waiting (--queue); try again later",
                              sv->n_slots, sv->queue_max);
                return NULL;
            }
            sv->n_waiting++;
            waiting = 1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
        if (peer_closed(c->fd) || sv->stopping) { /* nobody to answer any more */
            sv->n_waiting--;
            pthread_mutex_unlock(&sv->mu);
            c->status = 499;
            return NULL;
        }
    }
}

static void release_slot(server *sv, slot *s) {
    pthread_mutex_lock(&sv->mu);
    s->busy = 0;
    pthread_cond_broadcast(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
}

/* ---- a generation request, whatever the API --------------------------------------- */

enum { API_OAI_CHAT, API_OAI_COMPLETION, API_OLLAMA_CHAT, API_OLLAMA_GENERATE };

typedef struct gen_request {
    int api;
    int stream, include_usage, echo;
    char *prompt;            /* the prompt text (owned) */
    size_t prompt_len;
    int parse_special;       /* chat templates hold special tokens as text */
    int32_t *prefix_ids;     /* Ollama's "context": ids before the prompt (owned) */
    int32_t n_prefix_ids;
    const int32_t *ids_in;   /* OpenAI completions: the prompt as token ids (owned below) */
    int32_t *ids_own;
    int32_t n_ids_in;
    slm_sampler_params sp;
    gram_entry *grammar;     /* structured output (response_format / format), or NULL */
    int32_t max_tokens;      /* <= 0: until the end of the turn or a full context */
    const char *stop[MAX_STOP];
    int32_t n_stop;
    int no_think;            /* SLM_CHAT_NO_THINK: ask for an answer without thinking */
    int keep_think;          /* reasoning_format "none": the reply as the model wrote it */
    int split;               /* cut the reply into thinking and answer (think.h) */
    int think_opened;        /* the prompt opened the thinking block */
    char id[64];
    long long created;
} gen_request;

static void grammar_release(server *sv, gram_entry *e);

static void gen_request_free(server *sv, gen_request *g) {
    grammar_release(sv, g->grammar);
    g->grammar = NULL;
    free(g->prompt);
    free(g->prefix_ids);
    free(g->ids_own);
}

/* The state of one generation, shared with the output callbacks. */
typedef struct gen_state {
    conn *c;
    gen_request *g;
    jbuf text;               /* non-streaming: the whole reply (its answer when split) */
    jbuf thinking;           /* non-streaming, split: the thinking */
    think_split think;       /* the split of the streamed reply */
    const int32_t *ids;      /* the prompt */
    int32_t n_ids;
    int32_t *out;            /* [cap] the generated ids (Ollama's context) */
    int32_t n_out, cap_out;
    int stop_reason;
    double t_start, t_prompt_done, t_end;
} gen_state;

static const char *finish_reason(int r) {
    return r == SLM_STOP_MAX_TOKENS || r == SLM_STOP_CONTEXT_FULL ? "length" : "stop";
}

static void rfc3339(char *buf, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char d[32];
    strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%09ldZ", d, ts.tv_nsec);
}

/* OpenAI stream chunk: choices[0] with a delta (chat) or text (completions). */
static void oai_chunk(jbuf *b, gen_state *gs, const char *text, size_t n, int role, const char *finish, int thinking) {
    server *sv = gs->c->sv;
    gen_request *g = gs->g;
    int chat = g->api == API_OAI_CHAT;
    jb_cstr(b, "data: {\"id\":");
    jb_str(b, g->id, strlen(g->id));
    jb_cstr(b, chat ? ",\"object\":\"chat.completion.chunk\",\"created\":" : ",\"object\":\"text_completion\",\"created\":");
    jb_int(b, g->created);
    jb_cstr(b, ",\"model\":");
    jb_str(b, sv->id, strlen(sv->id));
    jb_cstr(b, ",\"system_fingerprint\":\"slm-");
    jb_cstr(b, slm_version());
    jb_cstr(b, "\",\"choices\":[{\"index\":0,");
    if (chat) {
        jb_cstr(b, "\"delta\":{");
        if (role) jb_cstr(b, "\"role\":\"assistant\"");
        if (text) {
            if (role) jb_cstr(b, ",");
            jb_cstr(b, thinking ? "\"reasoning_content\":" : "\"content\":");
            jb_str(b, text, n);
        }
        jb_cstr(b, "},\"logprobs\":null");
    } else {
        jb_cstr(b, "\"text\":");
        jb_str(b, text ? text : "", text ? n : 0);
        jb_cstr(b, ",\"logprobs\":null");
    }
    jb_cstr(b, ",\"finish_reason\":");
    if (finish) jb_str(b, finish, strlen(finish));
    else jb_cstr(b, "null");
    jb_cstr(b, "}]");
    if (g->include_usage) jb_cstr(b, ",\"usage\":null");
    jb_cstr(b, "}\n\n");
}

/* Ollama's fields common to every line / response. */
static void ollama_head(jbuf *b, gen_state *gs) {
    char ts[48];
    rfc3339(ts, sizeof ts);
    jb_cstr(b, "{\"model\":");
    jb_str(b, gs->c->sv->id, strlen(gs->c->sv->id));
    jb_cstr(b, ",\"created_at\":");
    jb_str(b, ts, strlen(ts));
}

/* text: the answer; think (may be NULL): the thinking, if any */
static void ollama_piece(jbuf *b, gen_state *gs, const char *text, size_t n, const char *think, size_t tn) {
    if (gs->g->api == API_OLLAMA_CHAT) {
        jb_cstr(b, ",\"message\":{\"role\":\"assistant\",\"content\":");
        jb_str(b, text, n);
        if (think && tn) {
            jb_cstr(b, ",\"thinking\":");
            jb_str(b, think, tn);
        }
        jb_cstr(b, "}");
    } else {
        jb_cstr(b, ",\"response\":");
        jb_str(b, text, n);
        if (think && tn) {
            jb_cstr(b, ",\"thinking\":");
            jb_str(b, think, tn);
        }
    }
}

/* Stream a piece of the answer or of the thinking to the client, or keep
   it for the one response. Returns non-zero to stop generating (the client
   is gone). */
static int emit_part(void *user, int thinking, const char *text, size_t n) {
    gen_state *gs = (gen_state *)user;
    conn *c = gs->c;
    if (n == 0) return 0;
    if (c->ttft == 0) c->ttft = now_ms() - c->t0;
    if (!gs->g->stream) {
        jbuf *to = thinking ? &gs->thinking : &gs->text;
        jb_raw(to, text, n);
        return to->failed;
    }
    jbuf b = {0};
    if (gs->g->api == API_OAI_CHAT || gs->g->api == API_OAI_COMPLETION) {
        oai_chunk(&b, gs, text, n, 0, NULL, thinking);
    } else {
        ollama_head(&b, gs);
        if (thinking) ollama_piece(&b, gs, "", 0, text, n);
        else ollama_piece(&b, gs, text, n, NULL, 0);
        jb_cstr(&b, ",\"done\":false}\n");
    }
    int r = b.failed ? -1 : send_all(c, b.s, b.n);
    jb_free(&b);
    return r != 0;
}

/* Reply text as generated: through the thinking split where the request
   has one. */
static int emit_text(gen_state *gs, const char *text, size_t n) {
    if (n == 0) return 0;
    if (gs->g->split) return think_push(&gs->think, text, n, emit_part, gs);
    return emit_part(gs, 0, text, n);
}

static void ollama_stats(jbuf *b, gen_state *gs) {
    const double ns = 1e6;
    jb_cstr(b, ",\"done_reason\":");
    jb_str(b, finish_reason(gs->stop_reason), strlen(finish_reason(gs->stop_reason)));
    jb_cstr(b, ",\"done\":true,\"total_duration\":");
    jb_int(b, (long long)((gs->t_end - gs->c->t0) * ns));
    jb_cstr(b, ",\"load_duration\":0,\"prompt_eval_count\":");
    jb_int(b, gs->n_ids);
    jb_cstr(b, ",\"prompt_eval_duration\":");
    jb_int(b, (long long)((gs->t_prompt_done - gs->t_start) * ns));
    jb_cstr(b, ",\"eval_count\":");
    jb_int(b, gs->n_out);
    jb_cstr(b, ",\"eval_duration\":");
    jb_int(b, (long long)((gs->t_end - gs->t_prompt_done) * ns));
    if (gs->g->api == API_OLLAMA_GENERATE) { /* the conversation as ids, for the next request's "context" */
        jb_cstr(b, ",\"context\":[");
        for (int32_t i = 0; i < gs->n_ids + gs->n_out; i++) {
            if (i) jb_cstr(b, ",");
            jb_int(b, i < gs->n_ids ? gs->ids[i] : gs->out[i - gs->n_ids]);
        }
        jb_cstr(b, "]");
    }
}

static void usage_obj(jbuf *b, gen_state *gs) {
    jb_cstr(b, "{\"prompt_tokens\":");
    jb_int(b, gs->n_ids);
    jb_cstr(b, ",\"completion_tokens\":");
    jb_int(b, gs->n_out);
    jb_cstr(b, ",\"total_tokens\":");
    jb_int(b, gs->n_ids + gs->n_out);
    jb_cstr(b, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    jb_int(b, gs->c->n_cached);
    jb_cstr(b, "}}");
}

/* The end of the response: the final chunk(s) of a stream, or the whole
   non-streamed response. */
static void finish_response(gen_state *gs) {
    conn *c = gs->c;
    gen_request *g = gs->g;
    server *sv = c->sv;
    const char *fr = finish_reason(gs->stop_reason);
    jbuf b = {0};
    int oai = g->api == API_OAI_CHAT || g->api == API_OAI_COMPLETION;
    if (g->stream) {
        if (oai) {
            oai_chunk(&b, gs, g->api == API_OAI_CHAT ? NULL : "", 0, 0, fr, 0);
            if (g->include_usage) {
                jb_cstr(&b, "data: {\"id\":");
                jb_str(&b, g->id, strlen(g->id));
                jb_cstr(&b, g->api == API_OAI_CHAT ? ",\"object\":\"chat.completion.chunk\",\"created\":"
                                                   : ",\"object\":\"text_completion\",\"created\":");
                jb_int(&b, g->created);
                jb_cstr(&b, ",\"model\":");
                jb_str(&b, sv->id, strlen(sv->id));
                jb_cstr(&b, ",\"choices\":[],\"usage\":");
                usage_obj(&b, gs);
                jb_cstr(&b, "}\n\n");
            }
            jb_cstr(&b, "data: [DONE]\n\n");
        } else {
            ollama_head(&b, gs);
            ollama_piece(&b, gs, "", 0, NULL, 0);
            ollama_stats(&b, gs);
            jb_cstr(&b, "}\n");
        }
        if (!b.failed) send_all(c, b.s, b.n);
        jb_free(&b);
        return;
    }
    const char *text = gs->text.s ? gs->text.s : "";
    size_t tn = gs->text.n;
    if (oai) {
        jb_cstr(&b, "{\"id\":");
        jb_str(&b, g->id, strlen(g->id));
        jb_cstr(&b, g->api == API_OAI_CHAT ? ",\"object\":\"chat.completion\",\"created\":"
                                           : ",\"object\":\"text_completion\",\"created\":");
        jb_int(&b, g->created);
        jb_cstr(&b, ",\"model\":");
        jb_str(&b, sv->id, strlen(sv->id));
        jb_cstr(&b, ",\"system_fingerprint\":\"slm-");
        jb_cstr(&b, slm_version());
        jb_cstr(&b, "\",\"choices\":[{\"index\":0,");
        if (g->api == API_OAI_CHAT) {
            jb_cstr(&b, "\"message\":{\"role\":\"assistant\",\"content\":");
            jb_str(&b, text, tn);
            if (gs->thinking.n) { /* as llama.cpp: only when the model thought */
                jb_cstr(&b, ",\"reasoning_content\":");
                jb_str(&b, gs->thinking.s, gs->thinking.n);
            }
            jb_cstr(&b, ",\"refusal\":null}");
        } else {
            jb_cstr(&b, "\"text\":");
            if (g->echo) {
                jbuf e = {0};
                jb_raw(&e, g->prompt ? g->prompt : "", g->prompt ? g->prompt_len : 0);
                jb_raw(&e, text, tn);
                jb_str(&b, e.s ? e.s : "", e.n);
                jb_free(&e);
            } else {
                jb_str(&b, text, tn);
            }
        }
        jb_cstr(&b, ",\"logprobs\":null,\"finish_reason\":");
        jb_str(&b, fr, strlen(fr));
        jb_cstr(&b, "}],\"usage\":");
        usage_obj(&b, gs);
        jb_cstr(&b, "}");
    } else {
        ollama_head(&b, gs);
        ollama_piece(&b, gs, text, tn, gs->thinking.s, gs->thinking.n);
        ollama_stats(&b, gs);
        jb_cstr(&b, "}");
    }
    respond_json(c, 200, &b);
    jb_free(&b);
}

/* Stop strings: text that may still be the start of one is held back;
   the earliest complete one ends the reply (as slm_generate does). */
typedef struct stop_buf {
    jbuf held;
    size_t max_stop;
    int hit;
} stop_buf;

static int stop_add(gen_state *gs, stop_buf *sb, const char *s, size_t n) {
    gen_request *g = gs->g;
    if (sb->hit) return 0;
    if (sb->max_stop == 0) return emit_text(gs, s, n);
    jb_raw(&sb->held, s, n);
    if (sb->held.failed) return 1;
    size_t first = (size_t)-1;
    for (int32_t i = 0; i < g->n_stop; i++) {
        size_t sl = strlen(g->stop[i]);
        for (size_t at = 0; at + sl <= sb->held.n && at < first; at++)
            if (!memcmp(sb->held.s + at, g->stop[i], sl)) {
                first = at;
                break;
            }
    }
    if (first != (size_t)-1) {
        sb->hit = 1;
        return emit_text(gs, sb->held.s, first);
    }
    size_t keep = 0;
    for (size_t k = sb->held.n < sb->max_stop - 1 ? sb->held.n : sb->max_stop - 1; k > 0 && !keep; k--)
        for (int32_t i = 0; i < g->n_stop; i++)
            if (strlen(g->stop[i]) > k && !memcmp(sb->held.s + sb->held.n - k, g->stop[i], k)) {
                keep = k;
                break;
            }
    int r = emit_text(gs, sb->held.s, sb->held.n - keep);
    memmove(sb->held.s, sb->held.s + sb->held.n - keep, keep);
    sb->held.n = keep;
    return r;
}

static const char *prompt_param(const gen_request *g) {
    return g->api == API_OAI_CHAT || g->api == API_OLLAMA_CHAT ? "messages" : "prompt";
}

/* Tokenize the request's prompt: [Ollama context] + text (BOS added on
   an empty context, if the model wants it), or the ids given. */
static int prompt_ids(conn *c, gen_request *g, int32_t **out, int32_t *n_out) {
    server *sv = c->sv;
    slm_error err;
    if (g->n_ids_in > 0) {
        *out = (int32_t *)malloc((size_t)g->n_ids_in * sizeof(int32_t));
        if (!*out) return -1;
        memcpy(*out, g->ids_in, (size_t)g->n_ids_in * sizeof(int32_t));
        *n_out = g->n_ids_in;
        return 0;
    }
    int32_t n = 0;
    int add = g->n_prefix_ids == 0;
    slm_status st = slm_tokenize(sv->model, g->prompt ? g->prompt : "", g->prompt_len, add, g->parse_special, NULL, 0,
                                 &n, &err);
    if (st != SLM_OK && st != SLM_ERR_BUFFER) {
        respond_error(c, 400, "prompt", "cannot tokenize the prompt: %s", err.message);
        return 1;
    }
    if ((long long)n + g->n_prefix_ids > sv->n_ctx) {
        respond_error(c, 400, prompt_param(g), "the prompt is %lld tokens, more than the context of %d tokens",
                      (long long)n + g->n_prefix_ids, sv->n_ctx);
        return 1;
    }
    int32_t *ids = (int32_t *)malloc(((size_t)n + (size_t)g->n_prefix_ids + 1) * sizeof(int32_t));
    if (!ids) return -1;
    if (g->n_prefix_ids) memcpy(ids, g->prefix_ids, (size_t)g->n_prefix_ids * sizeof(int32_t));
    st = slm_tokenize(sv->model, g->prompt ? g->prompt : "", g->prompt_len, add, g->parse_special,
                      ids + g->n_prefix_ids, n, &n, &err);
    if (st != SLM_OK) {
        free(ids);
        respond_error(c, 400, "prompt", "cannot tokenize the prompt: %s", err.message);
        return 1;
    }
    *out = ids;
    *n_out = n + g->n_prefix_ids;
    return 0;
}

/* Run a generation request on a slot and answer it. */
static void run_generation(conn *c, gen_request *g) {
    server *sv = c->sv;
    int32_t *ids = NULL, n = 0;
    int r = prompt_ids(c, g, &ids, &n);
    if (r) {
        if (r < 0) respond_error(c, 500, NULL, "out of memory");
        return;
    }
    if (n == 0) {
        free(ids);
        respond_error(c, 400, "prompt", "the prompt is empty");
        return;
    }
    if (n > sv->n_ctx) {
        free(ids);
        respond_error(c, 400, prompt_param(g), "the prompt is %d tokens, more than the context of %d tokens", n, sv->n_ctx);
        return;
    }
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= sv->info.n_vocab) {
            free(ids);
            respond_error(c, 400, "prompt", "token id %d is outside the vocabulary (0..%d)", ids[i], sv->info.n_vocab - 1);
            return;
        }
    slot *sl = acquire_slot(c, ids, n);
    if (!sl) {
        free(ids);
        return;
    }
    gen_state gs;
    memset(&gs, 0, sizeof gs);
    gs.c = c;
    gs.g = g;
    gs.ids = ids;
    gs.n_ids = n;
    gs.t_start = now_ms();
    think_init(&gs.think, g->think_opened);
    c->n_prompt = n;
    slm_error err;
    slm_sampler *smp = NULL;
    stop_buf sb;
    memset(&sb, 0, sizeof sb);
    char *piece = NULL;
    size_t piece_cap = (size_t)slm_vocab_max_piece(sv->model) + 8;
    gs.cap_out = sv->n_ctx;
    gs.out = (int32_t *)malloc((size_t)gs.cap_out * sizeof(int32_t));
    piece = (char *)malloc(piece_cap);
    if (!gs.out || !piece) {
        respond_error(c, 500, NULL, "out of memory");
        goto done;
    }
    /* the prompt: reuse what the slot's session already holds, at least
       the last token is decoded again for its logits */
    int32_t p = common_prefix(sl->cache, sl->n_cache, ids, n);
    if (p >= n) p = n - 1;
    slm_session_rewind(sl->s, p);
    sl->n_cache = p;
    c->n_cached = p;
    if (slm_decode(sl->s, ids + p, n - p, &err) != SLM_OK) {
        slm_session_rewind(sl->s, 0);
        sl->n_cache = 0;
        respond_error(c, err.status == SLM_ERR_CONTEXT_FULL ? 400 : 500, NULL, "%s", err.message);
        goto done;
    }
    memcpy(sl->cache + p, ids + p, (size_t)(n - p) * sizeof(int32_t));
    sl->n_cache = n;
    gs.t_prompt_done = now_ms();

    if (slm_sampler_create(&g->sp, sv->info.n_vocab, NULL, &smp, &err) != SLM_OK) {
        respond_error(c, 400, NULL, "%s", err.message);
        goto done;
    }
    /* the penalties see the prompt; with a grammar they cannot (accepting
       advances the grammar, which covers the reply only) */
    if (!g->grammar)
        for (int32_t i = 0; i < n; i++) slm_sampler_accept(smp, ids[i]);
    for (int32_t i = 0; i < g->n_stop; i++) {
        size_t l = strlen(g->stop[i]);
        if (l > sb.max_stop) sb.max_stop = l;
    }
    if (g->stream) {
        if (g->api == API_OAI_CHAT || g->api == API_OAI_COMPLETION) {
            send_head(c, 200, "text/event-stream", -1, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
            if (g->api == API_OAI_CHAT) {
                jbuf b = {0};
                oai_chunk(&b, &gs, "", 0, 1, NULL, 0);
                if (!b.failed) send_all(c, b.s, b.n);
                jb_free(&b);
            }
        } else {
            send_head(c, 200, "application/x-ndjson", -1, NULL);
        }
    }
    if (g->echo && g->stream && g->prompt) emit_text(&gs, g->prompt, g->prompt_len);

    /* the generation loop, in slm_generate's order: sample, end of turn?,
       accept, text, context full?, decode */
    slm_text_stream ts;
    slm_text_stream_init(&ts, sv->model, 0);
    int reason = SLM_STOP_NONE, gone = 0;
    slm_status st = SLM_OK;
    while (!c->broken) {
        if (g->max_tokens > 0 && gs.n_out >= g->max_tokens) {
            reason = SLM_STOP_MAX_TOKENS;
            break;
        }
        if (g->grammar && slm_sampler_grammar_state(smp) >= SLM_GRAMMAR_DONE) {
            reason = SLM_STOP_GRAMMAR; /* complete, and nothing else may follow */
            break;
        }
        int32_t tok = slm_sampler_sample(smp, slm_session_logits(sl->s, -1));
        if (tok < 0) { /* the grammar allows no token at all */
            reason = SLM_STOP_GRAMMAR;
            break;
        }
        if (slm_token_is_eog(sv->model, tok)) {
            reason = SLM_STOP_EOG; /* not decoded: the next turn's template text follows the reply */
            break;
        }
        slm_sampler_accept(smp, tok);
        if (gs.n_out < gs.cap_out) gs.out[gs.n_out] = tok;
        gs.n_out++;
        size_t pl = 0;
        if (slm_text_stream_push(&ts, tok, piece, piece_cap, &pl) == SLM_OK && pl) gone = stop_add(&gs, &sb, piece, pl);
        if (slm_session_pos(sl->s) >= slm_session_n_ctx(sl->s)) {
            reason = sb.hit ? SLM_STOP_STRING : SLM_STOP_CONTEXT_FULL;
            break;
        }
        st = slm_decode(sl->s, &tok, 1, &err);
        if (st != SLM_OK) break;
        sl->cache[sl->n_cache++] = tok;
        if (sb.hit) {
            reason = SLM_STOP_STRING;
            break;
        }
        if (gone) break;
        /* a client that hung up frees the slot now, streaming or not */
        if ((gs.n_out & 7) == 0 && peer_closed(c->fd)) {
            gone = 1;
            break;
        }
    }
    if (st == SLM_OK && !sb.hit && !gone && !c->broken) { /* what was held back is text after all */
        size_t fl = slm_text_stream_flush(&ts, piece, piece_cap);
        if (sb.held.n) emit_text(&gs, sb.held.s, sb.held.n);
        emit_text(&gs, piece, fl);
    }
    if (st == SLM_OK && !gone && !c->broken && g->split) think_flush(&gs.think, emit_part, &gs);
    gs.stop_reason = reason;
    gs.t_end = now_ms();
    c->n_gen = gs.n_out;
    if (st != SLM_OK) {
        slm_session_rewind(sl->s, 0);
        sl->n_cache = 0;
        respond_error(c, 500, NULL, "%s", err.message);
    } else if (gone || c->broken) {
        c->status = 499; /* the client closed the connection */
    } else {
        finish_response(&gs);
    }
done:
    slm_sampler_free(smp);
    jb_free(&sb.held);
    jb_free(&gs.text);
    jb_free(&gs.thinking);
    free(gs.out);
    free(piece);
    free(ids);
    release_slot(sv, sl);
}

/* ---- request parsing ---------------------------------------------------------------- */

typedef struct reqctx {
    conn *c;
    json_doc doc;
    const json_node *root;
} reqctx;

/* Parse the body as a JSON object; 0 or an error already sent. */
static int parse_body(reqctx *r) {
    conn *c = r->c;
    json_limits lim = {64, 1 << 16, 0};
    if (c->body_len == 0) {
        respond_error(c, 400, NULL, "the request has no body: a JSON object was expected");
        return 1;
    }
    if (json_parse(&r->doc, c->body, c->body_len, &lim)) {
        respond_error(c, 400, NULL, "%s", r->doc.error);
        return 1;
    }
    r->root = json_root(&r->doc);
    if (!r->root || r->root->type != JSON_OBJECT) {
        respond_error(c, 400, NULL, "the request body must be a JSON object");
        return 1;
    }
    return 0;
}

/* Typed field readers: 0 ok (absent or null leaves *out), 1 error sent. */
static int get_num(reqctx *r, const json_node *obj, const char *key, double lo, double hi, double *out, int *present) {
    const json_node *n = json_get(&r->doc, obj, key);
    if (present) *present = 0;
    if (!n || n->type == JSON_NULL) return 0;
    if (n->type != JSON_NUMBER) {
        respond_error(r->c, 400, key, "'%s' must be a number", key);
        return 1;
    }
    if (!(n->num >= lo && n->num <= hi)) {
        respond_error(r->c, 400, key, "'%s' must be between %g and %g", key, lo, hi);
        return 1;
    }
    *out = n->num;
    if (present) *present = 1;
    return 0;
}

static int get_int(reqctx *r, const json_node *obj, const char *key, double lo, double hi, long long *out,
                   int *present) {
    double v = 0;
    int pr = 0;
    if (get_num(r, obj, key, lo, hi, &v, &pr)) return 1;
    if (present) *present = pr;
    if (!pr) return 0;
    if (v != floor(v)) {
        respond_error(r->c, 400, key, "'%s' must be an integer", key);
        return 1;
    }
    *out = (long long)v;
    return 0;
}

/* A seed: any integer that fits in 64 bits, signed or not (a negative one
   wraps to its two's complement). */
static int get_seed(reqctx *r, const json_node *obj, uint64_t *out) {
    double v = 0;
    int pr = 0;
    if (get_num(r, obj, "seed", -9.2e18, 1.8e19, &v, &pr)) return 1;
    if (!pr) return 0;
    if (v != floor(v)) {
        respond_error(r->c, 400, "seed", "'seed' must be an integer");
        return 1;
    }
    *out = v < 0 ? (uint64_t)(int64_t)v : (uint64_t)v;
    return 0;
}

static int get_bool(reqctx *r, const json_node *obj, const char *key, int *out) {
    const json_node *n = json_get(&r->doc, obj, key);
    if (!n || n->type == JSON_NULL) return 0;
    if (n->type != JSON_TRUE && n->type != JSON_FALSE) {
        respond_error(r->c, 400, key, "'%s' must be true or false", key);
        return 1;
    }
    *out = n->type == JSON_TRUE;
    return 0;
}

static int get_str(reqctx *r, const json_node *obj, const char *key, const json_node **out) {
    const json_node *n = json_get(&r->doc, obj, key);
    *out = NULL;
    if (!n || n->type == JSON_NULL) return 0;
    if (n->type != JSON_STRING) {
        respond_error(r->c, 400, key, "'%s' must be a string", key);
        return 1;
    }
    *out = n;
    return 0;
}

/* ---- structured output: response_format (OpenAI), format (Ollama) ------------------- */

static void gram_entry_free(gram_entry *e) {
    slm_grammar_free(e->g);
    free(e->key);
    free(e);
}

static void grammar_release(server *sv, gram_entry *e) {
    if (!e) return;
    pthread_mutex_lock(&sv->gmu);
    int drop = --e->refs == 0 && !e->cached;
    pthread_mutex_unlock(&sv->gmu);
    if (drop) gram_entry_free(e);
}

/* The compiled grammar for GBNF text: from the cache, or compiled now and
   cached in place of the least recently used one no request holds. NULL
   with err set if the text does not compile. */
static gram_entry *grammar_get(server *sv, const char *text, size_t len, slm_error *err) {
    pthread_mutex_lock(&sv->gmu);
    for (int i = 0; i < GRAMMAR_CACHE; i++) {
        gram_entry *e = sv->gcache[i];
        if (e && e->key_len == len && !memcmp(e->key, text, len)) {
            e->refs++;
            e->last = ++sv->gtick;
            pthread_mutex_unlock(&sv->gmu);
            return e;
        }
    }
    gram_entry *e = (gram_entry *)calloc(1, sizeof *e);
    char *key = (char *)malloc(len + 1);
    if (!e || !key) {
        free(e);
        free(key);
        pthread_mutex_unlock(&sv->gmu);
        err->status = SLM_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return NULL;
    }
    memcpy(key, text, len);
    key[len] = 0;
    e->key = key;
    e->key_len = len;
    if (slm_grammar_create(sv->model, text, len, NULL, &e->g, err) != SLM_OK) {
        pthread_mutex_unlock(&sv->gmu);
        free(key);
        free(e);
        return NULL;
    }
    e->refs = 1;
    e->last = ++sv->gtick;
    int at = -1;
    for (int i = 0; i < GRAMMAR_CACHE; i++) {
        gram_entry *o = sv->gcache[i];
        if (!o) {
            at = i;
            break;
        }
        if (o->refs == 0 && (at < 0 || o->last < sv->gcache[at]->last)) at = i;
    }
    if (at >= 0) {
        if (sv->gcache[at]) gram_entry_free(sv->gcache[at]);
        sv->gcache[at] = e;
        e->cached = 1;
    }
    pthread_mutex_unlock(&sv->gmu);
    return e;
}

/* A number as the shortest of %.15g / %.17g that reads back the same. */
static void write_num(jbuf *b, double v) {
    char t[40];
    snprintf(t, sizeof t, "%.15g", v);
    if (strtod(t, NULL) != v) snprintf(t, sizeof t, "%.17g", v);
    jb_cstr(b, t);
}

/* A parsed JSON value written back as compact JSON text (the schema
   converter reads text). Depth is bounded by the parser's limit. */
static void write_json(jbuf *b, const json_doc *d, const json_node *n) {
    switch (n->type) {
    case JSON_NULL: jb_cstr(b, "null"); break;
    case JSON_FALSE: jb_cstr(b, "false"); break;
    case JSON_TRUE: jb_cstr(b, "true"); break;
    case JSON_NUMBER: write_num(b, n->num); break;
    case JSON_STRING: jb_str(b, n->str, n->len); break;
    default: {
        int obj = n->type == JSON_OBJECT;
        jb_cstr(b, obj ? "{" : "[");
        for (const json_node *e = json_first(d, n); e; e = json_next(d, e)) {
            if (e != json_first(d, n)) jb_cstr(b, ",");
            if (obj) {
                jb_str(b, e->key, e->key_len);
                jb_cstr(b, ":");
            }
            write_json(b, d, e);
        }
        jb_cstr(b, obj ? "}" : "]");
    }
    }
}

/* Constrain the reply to a JSON Schema (a JSON object if schema is NULL):
   convert, compile (or take from the cache), put it in the sampler. 0, or
   1 with the error sent (400 naming `param` for a schema the converter or
   the compiler refuses). */
static int use_schema(reqctx *r, gen_request *g, const json_node *schema, const char *param) {
    server *sv = r->c->sv;
    slm_error err;
    memset(&err, 0, sizeof err);
    const char *text = slm_grammar_json();
    size_t tl = strlen(text);
    jbuf js = {0};
    char *gbnf = NULL; /* [cap] the converted grammar */
    int ret = 1;
    if (schema) {
        if (schema->type != JSON_OBJECT) {
            respond_error(r->c, 400, param, "the schema in '%s' must be a JSON object", param);
            return 1;
        }
        write_json(&js, &r->doc, schema);
        if (js.failed) {
            respond_error(r->c, 500, NULL, "out of memory");
            goto out;
        }
        if (js.n > MAX_SCHEMA) {
            respond_error(r->c, 400, param, "the schema in '%s' is %zu bytes, more than %d", param, js.n, MAX_SCHEMA);
            goto out;
        }
        size_t cap = 4096 + 4 * js.n, gl = 0;
        for (int tries = 0; tries < 2; tries++) {
            free(gbnf);
            gbnf = (char *)malloc(cap);
            if (!gbnf) {
                respond_error(r->c, 500, NULL, "out of memory");
                goto out;
            }
            slm_status st = slm_json_schema_to_grammar(js.s, js.n, gbnf, cap, &gl, &err);
            if (st == SLM_OK) break;
            if (st == SLM_ERR_BUFFER && tries == 0 && gl < (size_t)16 << 20) {
                cap = gl + 1;
                continue;
            }
            respond_error(r->c, st == SLM_ERR_NOMEM ? 500 : 400, param, "the schema in '%s' cannot be used: %s", param,
                          err.message);
            goto out;
        }
        text = gbnf;
        tl = gl;
    }
    g->grammar = grammar_get(sv, text, tl, &err);
    if (!g->grammar) {
        respond_error(r->c, err.status == SLM_ERR_NOMEM ? 500 : 400, param, "the schema in '%s' cannot be used: %s",
                      param, err.message);
        goto out;
    }
    g->sp.grammar = g->grammar->g;
    ret = 0;
out:
    free(gbnf);
    jb_free(&js);
    return ret;
}

/* OpenAI's response_format: text, json_object, json_schema. */
static int parse_response_format(reqctx *r, gen_request *g) {
    const json_node *rf = json_get(&r->doc, r->root, "response_format");
    if (!rf || rf->type == JSON_NULL) return 0;
    const json_node *t = rf->type == JSON_OBJECT ? json_get(&r->doc, rf, "type") : NULL;
    if (!t || t->type != JSON_STRING) {
        respond_error(r->c, 400, "response_format",
                      "'response_format' must be an object with 'type': 'text', 'json_object' or 'json_schema'");
        return 1;
    }
    if (!strcmp(t->str, "text")) return 0;
    if (!strcmp(t->str, "json_object")) return use_schema(r, g, NULL, "response_format");
    if (strcmp(t->str, "json_schema")) {
        respond_error(r->c, 400, "response_format",
                      "response_format type '%s' is unknown: 'text', 'json_object' or 'json_schema' were expected", t->str);
        return 1;
    }
    const json_node *js = json_get(&r->doc, rf, "json_schema");
    if (!js || js->type != JSON_OBJECT) {
        respond_error(r->c, 400, "response_format", "'response_format.json_schema' must be an object holding the schema");
        return 1;
    }
    const json_node *name = json_get(&r->doc, js, "name"), *strict = json_get(&r->doc, js, "strict");
    if (name && name->type != JSON_STRING) {
        respond_error(r->c, 400, "response_format", "'response_format.json_schema.name' must be a string");
        return 1;
    }
    if (strict && strict->type != JSON_TRUE && strict->type != JSON_FALSE && strict->type != JSON_NULL) {
        respond_error(r->c, 400, "response_format", "'response_format.json_schema.strict' must be a boolean");
        return 1;
    }
    /* strict or not, the reply follows the schema: the grammar allows nothing else */
    const json_node *schema = json_get(&r->doc, js, "schema");
    return use_schema(r, g, schema && schema->type != JSON_NULL ? schema : NULL, "response_format");
}

/* Ollama's format: "json" or a JSON Schema object ("" or null: plain text). */
static int parse_ollama_format(reqctx *r, gen_request *g) {
    const json_node *fmt = json_get(&r->doc, r->root, "format");
    if (!fmt || fmt->type == JSON_NULL || (fmt->type == JSON_STRING && fmt->len == 0)) return 0;
    if (fmt->type == JSON_STRING && !strcmp(fmt->str, "json")) return use_schema(r, g, NULL, "format");
    if (fmt->type == JSON_OBJECT) return use_schema(r, g, fmt, "format");
    respond_error(r->c, 400, "format", "'format' must be \"json\" or a JSON Schema object");
    return 1;
}

/* The model field names this server's model (or is absent). */
static int check_model(reqctx *r, int required) {
    const json_node *m;
    if (get_str(r, r->root, "model", &m)) return 1;
    server *sv = r->c->sv;
    if (!m) {
        if (!required) return 0;
        respond_error(r->c, 400, "model", "'model' is required (this server has '%s')", sv->id);
        return 1;
    }
    size_t il = strlen(sv->id);
    const char *base = strrchr(sv->path, '/') ? strrchr(sv->path, '/') + 1 : sv->path;
    if ((m->len == il && !memcmp(m->str, sv->id, il)) ||
        (m->len == il + 7 && !memcmp(m->str, sv->id, il) && !memcmp(m->str + il, ":latest", 7)) ||
        !strcmp(m->str, base) || !strcmp(m->str, sv->path))
        return 0;
    respond_error(r->c, r->c->ollama ? 404 : 400, "model", "model '%.200s' is not served here (this server has '%s')",
                  m->str, sv->id);
    return 1;
}

/* stop: a string or an array of strings */
static int get_stop(reqctx *r, const json_node *obj, gen_request *g) {
    const json_node *n = json_get(&r->doc, obj, "stop");
    if (!n || n->type == JSON_NULL) return 0;
    if (n->type == JSON_STRING) {
        if (n->len) g->stop[g->n_stop++] = n->str;
        return 0;
    }
    if (n->type != JSON_ARRAY) {
        respond_error(r->c, 400, "stop", "'stop' must be a string or an array of strings");
        return 1;
    }
    for (const json_node *e = json_first(&r->doc, n); e; e = json_next(&r->doc, e)) {
        if (e->type != JSON_STRING) {
            respond_error(r->c, 400, "stop", "'stop' must be a string or an array of strings");
            return 1;
        }
        if (g->n_stop == MAX_STOP) {
            respond_error(r->c, 400, "stop", "at most %d stop strings", MAX_STOP);
            return 1;
        }
        if (e->len) g->stop[g->n_stop++] = e->str;
    }
    return 0;
}

static unsigned long long random_seed(server *sv) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&sv->mu);
    unsigned long long k = ++sv->n_requests;
    pthread_mutex_unlock(&sv->mu);
    unsigned long long x = (unsigned long long)ts.tv_sec * 1000000007ull ^ (unsigned long long)ts.tv_nsec ^ (k << 40);
    x ^= x >> 31, x *= 0x9E3779B97F4A7C15ull, x ^= x >> 29;
    return x;
}

static void new_id(server *sv, gen_request *g, const char *prefix) {
    pthread_mutex_lock(&sv->mu);
    int k = ++sv->ids_seq;
    pthread_mutex_unlock(&sv->mu);
    g->created = (long long)time(NULL);
    snprintf(g->id, sizeof g->id, "%s-%llx%06x", prefix, (unsigned long long)sv->started, (unsigned)k & 0xFFFFFF);
}

/* The OpenAI fields chat and completions share. */
static int parse_oai_common(reqctx *r, gen_request *g) {
    server *sv = r->c->sv;
    double v;
    long long iv;
    int pr;
    slm_sampler_params_init(&g->sp);
    g->sp.temperature = 1.0f; /* OpenAI's defaults: plain sampling at temperature 1 */
    g->sp.top_p = 1.0f;
    g->sp.top_k = 0;
    g->sp.min_p = 0.0f;
    g->sp.seed = random_seed(sv);
    if (check_model(r, 0)) return 1;
    if (get_bool(r, r->root, "stream", &g->stream)) return 1;
    if (get_num(r, r->root, "temperature", 0, 2, &v, &pr)) return 1;
    if (pr) g->sp.temperature = (float)v;
    if (get_num(r, r->root, "top_p", 0, 1, &v, &pr)) return 1;
    if (pr) g->sp.top_p = (float)v;
    if (get_num(r, r->root, "presence_penalty", -2, 2, &v, &pr)) return 1;
    if (pr) g->sp.presence_penalty = (float)v;
    if (get_num(r, r->root, "frequency_penalty", -2, 2, &v, &pr)) return 1;
    if (pr) g->sp.frequency_penalty = (float)v;
    /* llama.cpp-style extras that OpenAI-compatible clients send */
    if (get_int(r, r->root, "top_k", 0, 1e9, &iv, &pr)) return 1;
    if (pr) g->sp.top_k = (int32_t)iv;
    if (get_num(r, r->root, "min_p", 0, 1, &v, &pr)) return 1;
    if (pr) g->sp.min_p = (float)v;
    if (get_num(r, r->root, "repeat_penalty", 1e-3, 100, &v, &pr)) return 1;
    if (pr) g->sp.repeat_penalty = (float)v;
    if (get_seed(r, r->root, &g->sp.seed)) return 1;
    if (get_int(r, r->root, "n", 1, 1, &iv, NULL)) return 1;
    if (get_int(r, r->root, "best_of", 1, 1, &iv, NULL)) return 1;
    long long mt = 0;
    int have_mt = 0;
    if (get_int(r, r->root, "max_tokens", 1, sv->n_ctx, &mt, &have_mt)) return 1;
    if (!have_mt && get_int(r, r->root, "max_completion_tokens", 1, sv->n_ctx, &mt, &have_mt)) return 1;
    g->max_tokens = have_mt ? (int32_t)mt : 0;
    if (get_stop(r, r->root, g)) return 1;
    const json_node *so = json_get(&r->doc, r->root, "stream_options");
    if (so && so->type == JSON_OBJECT && get_bool(r, so, "include_usage", &g->include_usage)) return 1;
    const json_node *lp = json_get(&r->doc, r->root, "logprobs");
    if (lp && lp->type != JSON_NULL && lp->type != JSON_FALSE) {
        respond_error(r->c, 400, "logprobs", "logprobs are not supported");
        return 1;
    }
    return parse_response_format(r, g);
}

/* The text of a message's content: a string, or an array of text parts. */
static int message_text(reqctx *r, const json_node *content, jbuf *out) {
    if (!content || content->type == JSON_NULL) return 0;
    if (content->type == JSON_STRING) {
        jb_raw(out, content->str, content->len);
        return 0;
    }
    if (content->type == JSON_ARRAY) {
        for (const json_node *p = json_first(&r->doc, content); p; p = json_next(&r->doc, p)) {
            const json_node *t = json_get(&r->doc, p, "type"), *tx = json_get(&r->doc, p, "text");
            if (!t || t->type != JSON_STRING || strcmp(t->str, "text") || !tx || tx->type != JSON_STRING) {
                respond_error(r->c, 400, "messages", "only text content parts are supported");
                return 1;
            }
            jb_raw(out, tx->str, tx->len);
        }
        return 0;
    }
    respond_error(r->c, 400, "messages", "a message's content must be a string or an array of text parts");
    return 1;
}

/* Thinking: the families whose templates have thinking blocks get their
   replies split into thinking and answer (think.h), unless the request
   wants the raw text. */
static int family_thinks(int f) {
    return f == SLM_CHAT_QWEN3 || f == SLM_CHAT_QWEN35 || f == SLM_CHAT_SMOLLM3 || f == SLM_CHAT_LFM2;
}

static void think_setup(server *sv, gen_request *g) {
    g->split = family_thinks(sv->family) && !g->keep_think;
    g->think_opened = g->split && think_prompt_opens(g->prompt, g->prompt_len);
}

/* OpenAI-compatible, as llama.cpp's server: chat_template_kwargs.enable_thinking
   (false: SLM_CHAT_NO_THINK) and reasoning_format ("none": the raw text in
   content; "auto" or "deepseek", the default: reasoning_content). */
static int parse_oai_think(reqctx *r, gen_request *g) {
    const json_node *k = json_get(&r->doc, r->root, "chat_template_kwargs");
    if (k && k->type != JSON_OBJECT && k->type != JSON_NULL) {
        respond_error(r->c, 400, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        return 1;
    }
    if (k && k->type == JSON_OBJECT) {
        int on = 1;
        const json_node *e = json_get(&r->doc, k, "enable_thinking");
        if (e && e->type != JSON_NULL && e->type != JSON_TRUE && e->type != JSON_FALSE) {
            respond_error(r->c, 400, "chat_template_kwargs", "'enable_thinking' must be true or false");
            return 1;
        }
        if (e && e->type == JSON_FALSE) on = 0;
        g->no_think = !on;
    }
    const json_node *f;
    if (get_str(r, r->root, "reasoning_format", &f)) return 1;
    if (f) {
        if (!strcmp(f->str, "none")) g->keep_think = 1;
        else if (strcmp(f->str, "auto") && strcmp(f->str, "deepseek")) {
            respond_error(r->c, 400, "reasoning_format", "'reasoning_format' must be \"none\", \"auto\" or \"deepseek\"");
            return 1;
        }
    }
    return 0;
}

/* Ollama: think true (or a level "high"/"medium"/"low"), false, or absent
   (the model's default: it thinks). The thinking goes to "thinking". */
static int parse_ollama_think(reqctx *r, gen_request *g) {
    const json_node *t = json_get(&r->doc, r->root, "think");
    if (!t || t->type == JSON_NULL || t->type == JSON_TRUE) return 0;
    if (t->type == JSON_FALSE) {
        g->no_think = 1;
        return 0;
    }
    if (t->type == JSON_STRING && (!strcmp(t->str, "high") || !strcmp(t->str, "medium") || !strcmp(t->str, "low")))
        return 0;
    respond_error(r->c, 400, "think", "'think' must be true, false, \"high\", \"medium\" or \"low\"");
    return 1;
}

/* messages[] (OpenAI and Ollama alike) -> prompt text through the chat template. */
static int format_messages(reqctx *r, const json_node *msgs, const char *system, gen_request *g) {
    server *sv = r->c->sv;
    if (!msgs || msgs->type != JSON_ARRAY || msgs->count == 0) {
        respond_error(r->c, 400, "messages", "'messages' must be a non-empty array");
        return 1;
    }
    if (msgs->count > MAX_MESSAGES) {
        respond_error(r->c, 400, "messages", "at most %d messages", MAX_MESSAGES);
        return 1;
    }
    slm_chat_message *cm = (slm_chat_message *)calloc((size_t)msgs->count + 1, sizeof *cm);
    jbuf *texts = (jbuf *)calloc((size_t)msgs->count + 1, sizeof *texts);
    int n = 0, rc = 1;
    if (!cm || !texts) {
        respond_error(r->c, 500, NULL, "out of memory");
        goto out;
    }
    if (system) cm[n].role = "system", cm[n].content = system, n++;
    for (const json_node *m = json_first(&r->doc, msgs); m; m = json_next(&r->doc, m)) {
        if (m->type != JSON_OBJECT) {
            respond_error(r->c, 400, "messages", "each message must be an object");
            goto out;
        }
        const json_node *role = json_get(&r->doc, m, "role");
        if (!role || role->type != JSON_STRING || role->len == 0 || strlen(role->str) != role->len) {
            respond_error(r->c, 400, "messages", "each message needs a 'role' string");
            goto out;
        }
        if (message_text(r, json_get(&r->doc, m, "content"), &texts[n])) goto out;
        if (texts[n].failed) {
            respond_error(r->c, 500, NULL, "out of memory");
            goto out;
        }
        cm[n].role = !strcmp(role->str, "developer") ? "system" : role->str;
        cm[n].content = texts[n].s ? texts[n].s : "";
        if (strlen(cm[n].content) != texts[n].n) {
            respond_error(r->c, 400, "messages", "a message holds a NUL character");
            goto out;
        }
        n++;
    }
    size_t need = 0;
    slm_error err;
    const int gen = SLM_CHAT_GEN | (g->no_think ? SLM_CHAT_NO_THINK : 0);
    slm_chat_format(sv->model, sv->family, cm, n, 0, gen, NULL, 0, &need, NULL, NULL);
    g->prompt = (char *)malloc(need + 1);
    if (!g->prompt) {
        respond_error(r->c, 500, NULL, "out of memory");
        goto out;
    }
    if (slm_chat_format(sv->model, sv->family, cm, n, 0, gen, g->prompt, need + 1, &need, NULL, &err) != SLM_OK) {
        respond_error(r->c, 400, "messages", "%s", err.message);
        goto out;
    }
    g->prompt_len = need;
    g->parse_special = 1;
    think_setup(sv, g);
    rc = 0;
out:
    if (texts)
        for (int i = 0; i <= (int)msgs->count; i++) jb_free(&texts[i]);
    free(texts);
    free(cm);
    return rc;
}

static void h_oai_chat(conn *c) {
    reqctx r = {c, {0}, NULL};
    gen_request g;
    memset(&g, 0, sizeof g);
    g.api = API_OAI_CHAT;
    if (parse_body(&r) || parse_oai_common(&r, &g) || parse_oai_think(&r, &g)) goto out;
    const json_node *tools = json_get(&r.doc, r.root, "tools");
    if (tools && tools->type == JSON_ARRAY && tools->count > 0) {
        respond_error(c, 400, "tools", "tools (function calling) are not supported");
        goto out;
    }
    if (format_messages(&r, json_get(&r.doc, r.root, "messages"), NULL, &g)) goto out;
    new_id(c->sv, &g, "chatcmpl");
    run_generation(c, &g);
out:
    gen_request_free(c->sv, &g);
    json_free(&r.doc);
}

static void h_oai_completions(conn *c) {
    reqctx r = {c, {0}, NULL};
    gen_request g;
    memset(&g, 0, sizeof g);
    g.api = API_OAI_COMPLETION;
    if (parse_body(&r) || parse_oai_common(&r, &g)) goto out;
    if (get_bool(&r, r.root, "echo", &g.echo)) goto out;
    /* prompt: a string, an array of one string, or an array of token ids */
    const json_node *p = json_get(&r.doc, r.root, "prompt");
    if (p && p->type == JSON_ARRAY && p->count == 1 && json_first(&r.doc, p)->type == JSON_STRING)
        p = json_first(&r.doc, p);
    if (p && p->type == JSON_STRING) {
        g.prompt = (char *)malloc(p->len + 1);
        if (!g.prompt) goto oom;
        memcpy(g.prompt, p->str, p->len + 1);
        g.prompt_len = p->len;
    } else if (p && p->type == JSON_ARRAY && p->count > 0) {
        if (p->count > c->sv->n_ctx) {
            respond_error(c, 400, "prompt", "the prompt is %d tokens, more than the context of %d tokens", p->count,
                          c->sv->n_ctx);
            goto out;
        }
        g.ids_own = (int32_t *)malloc((size_t)p->count * sizeof(int32_t));
        if (!g.ids_own) goto oom;
        for (const json_node *e = json_first(&r.doc, p); e; e = json_next(&r.doc, e)) {
            if (e->type != JSON_NUMBER || e->num != floor(e->num) || e->num < 0 || e->num >= c->sv->info.n_vocab) {
                respond_error(c, 400, "prompt", "'prompt' must be a string, an array of one string or an array of token ids");
                goto out;
            }
            g.ids_own[g.n_ids_in++] = (int32_t)e->num;
        }
        g.ids_in = g.ids_own;
        g.echo = 0;
    } else {
        respond_error(c, 400, "prompt", "'prompt' must be a string, an array of one string or an array of token ids");
        goto out;
    }
    new_id(c->sv, &g, "cmpl");
    run_generation(c, &g);
    goto out;
oom:
    respond_error(c, 500, NULL, "out of memory");
out:
    gen_request_free(c->sv, &g);
    json_free(&r.doc);
}

/* Ollama: the options map (and its defaults, as Ollama documents them). */
static int parse_ollama_common(reqctx *r, gen_request *g) {
    server *sv = r->c->sv;
    slm_sampler_params_init(&g->sp);
    g->sp.temperature = 0.8f;
    g->sp.top_k = 40;
    g->sp.top_p = 0.9f;
    g->sp.min_p = 0.0f;
    g->sp.repeat_penalty = 1.1f;
    g->sp.repeat_last_n = 64;
    g->sp.seed = random_seed(sv);
    g->stream = 1; /* Ollama streams unless told not to */
    if (check_model(r, 0)) return 1;
    if (get_bool(r, r->root, "stream", &g->stream)) return 1;
    const json_node *tools = json_get(&r->doc, r->root, "tools");
    if (tools && tools->type == JSON_ARRAY && tools->count > 0) {
        respond_error(r->c, 400, "tools", "tools (function calling) are not supported");
        return 1;
    }
    const json_node *o = json_get(&r->doc, r->root, "options");
    if (o && o->type != JSON_OBJECT && o->type != JSON_NULL) {
        respond_error(r->c, 400, "options", "'options' must be an object");
        return 1;
    }
    if (!o || o->type != JSON_OBJECT) return parse_ollama_format(r, g);
    double v;
    long long iv;
    int pr;
    if (get_num(r, o, "temperature", 0, 100, &v, &pr)) return 1;
    if (pr) g->sp.temperature = (float)v;
    if (get_int(r, o, "top_k", -1e9, 1e9, &iv, &pr)) return 1;
    if (pr) g->sp.top_k = (int32_t)iv;
    if (get_num(r, o, "top_p", 0, 1, &v, &pr)) return 1;
    if (pr) g->sp.top_p = (float)v;
    if (get_num(r, o, "min_p", 0, 1, &v, &pr)) return 1;
    if (pr) g->sp.min_p = (float)v;
    if (get_num(r, o, "repeat_penalty", 1e-3, 100, &v, &pr)) return 1;
    if (pr) g->sp.repeat_penalty = (float)v;
    if (get_int(r, o, "repeat_last_n", -1, 1e9, &iv, &pr)) return 1;
    if (pr) g->sp.repeat_last_n = (int32_t)(iv < 0 ? sv->n_ctx : iv);
    if (get_num(r, o, "presence_penalty", -100, 100, &v, &pr)) return 1;
    if (pr) g->sp.presence_penalty = (float)v;
    if (get_num(r, o, "frequency_penalty", -100, 100, &v, &pr)) return 1;
    if (pr) g->sp.frequency_penalty = (float)v;
    if (get_seed(r, o, &g->sp.seed)) return 1;
    if (get_int(r, o, "num_predict", -2, 1e9, &iv, &pr)) return 1;
    if (pr) {
        if (iv > sv->n_ctx) {
            respond_error(r->c, 400, "num_predict", "'num_predict' must be at most the context, %d", sv->n_ctx);
            return 1;
        }
        g->max_tokens = iv > 0 ? (int32_t)iv : 0;
    }
    if (get_stop(r, o, g)) return 1;
    return parse_ollama_format(r, g);
}

static void h_ollama_chat(conn *c) {
    reqctx r = {c, {0}, NULL};
    gen_request g;
    memset(&g, 0, sizeof g);
    g.api = API_OLLAMA_CHAT;
    if (parse_body(&r) || parse_ollama_common(&r, &g) || parse_ollama_think(&r, &g)) goto out;
    const json_node *msgs = json_get(&r.doc, r.root, "messages");
    if (!msgs || (msgs->type == JSON_ARRAY && msgs->count == 0)) { /* Ollama: loads the model, answers done */
        gen_state gs;
        memset(&gs, 0, sizeof gs);
        gs.c = c;
        gs.g = &g;
        g.stream = 0;
        jbuf b = {0};
        ollama_head(&b, &gs);
        jb_cstr(&b, ",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"load\",\"done\":true}");
        respond_json(c, 200, &b);
        jb_free(&b);
        goto out;
    }
    if (format_messages(&r, msgs, NULL, &g)) goto out;
    new_id(c->sv, &g, "chat");
    run_generation(c, &g);
out:
    gen_request_free(c->sv, &g);
    json_free(&r.doc);
}

static void h_ollama_generate(conn *c) {
    reqctx r = {c, {0}, NULL};
    gen_request g;
    memset(&g, 0, sizeof g);
    g.api = API_OLLAMA_GENERATE;
    if (parse_body(&r) || parse_ollama_common(&r, &g) || parse_ollama_think(&r, &g)) goto out;
    const json_node *p, *sys;
    int raw = 0;
    if (get_str(&r, r.root, "prompt", &p) || get_str(&r, r.root, "system", &sys) || get_bool(&r, r.root, "raw", &raw))
        goto out;
    if (!p || p->len == 0) { /* Ollama: an empty prompt loads the model */
        gen_state gs;
        memset(&gs, 0, sizeof gs);
        gs.c = c;
        gs.g = &g;
        jbuf b = {0};
        ollama_head(&b, &gs);
        jb_cstr(&b, ",\"response\":\"\",\"done_reason\":\"load\",\"done\":true}");
        respond_json(c, 200, &b);
        jb_free(&b);
        goto out;
    }
    const json_node *ctx = json_get(&r.doc, r.root, "context");
    if (ctx && ctx->type == JSON_ARRAY && ctx->count > 0) {
        if (ctx->count > c->sv->n_ctx) {
            respond_error(c, 400, "context", "'context' holds more tokens than the context of %d", c->sv->n_ctx);
            goto out;
        }
        g.prefix_ids = (int32_t *)malloc((size_t)ctx->count * sizeof(int32_t));
        if (!g.prefix_ids) goto out;
        for (const json_node *e = json_first(&r.doc, ctx); e; e = json_next(&r.doc, e)) {
            if (e->type != JSON_NUMBER || e->num != floor(e->num) || e->num < 0 || e->num >= c->sv->info.n_vocab) {
                respond_error(c, 400, "context", "'context' must be an array of token ids");
                goto out;
            }
            g.prefix_ids[g.n_prefix_ids++] = (int32_t)e->num;
        }
    } else if (ctx && ctx->type != JSON_ARRAY && ctx->type != JSON_NULL) {
        respond_error(c, 400, "context", "'context' must be an array of token ids");
        goto out;
    }
    if (raw) {
        g.prompt = (char *)malloc(p->len + 1);
        if (!g.prompt) goto out;
        memcpy(g.prompt, p->str, p->len + 1);
        g.prompt_len = p->len;
    } else {
        /* through the chat template, as Ollama does unless raw */
        server *sv = c->sv;
        slm_chat_message cm[2];
        int n = 0;
        if (sys && sys->len) cm[n].role = "system", cm[n].content = sys->str, n++;
        cm[n].role = "user", cm[n].content = p->str, n++;
        size_t need = 0;
        slm_error err;
        const int gen = SLM_CHAT_GEN | (g.no_think ? SLM_CHAT_NO_THINK : 0);
        slm_chat_format(sv->model, sv->family, cm, n, 0, gen, NULL, 0, &need, NULL, NULL);
        g.prompt = (char *)malloc(need + 1);
        if (!g.prompt || slm_chat_format(sv->model, sv->family, cm, n, 0, gen, g.prompt, need + 1, &need, NULL, &err)) {
            respond_error(c, 400, "prompt", "%s", g.prompt ? err.message : "out of memory");
            goto out;
        }
        g.prompt_len = need;
        g.parse_special = 1;
        think_setup(sv, &g);
    }
    new_id(c->sv, &g, "gen");
    run_generation(c, &g);
out:
    gen_request_free(c->sv, &g);
    json_free(&r.doc);
}

/* ---- embeddings: POST /v1/embeddings (OpenAI), /api/embed, /api/embeddings (Ollama) --- */

#define MAX_EMBED_INPUTS 2048

enum { EMB_OAI, EMB_OLLAMA, EMB_OLLAMA_OLD };

typedef struct emb_input {
    const char *text;        /* a text, or NULL for token ids */
    size_t len;
    const json_node *ids;    /* OpenAI: an array of token ids */
} emb_input;

/* A float as the shortest %.9g text (round-trips a float). */
static void jb_float(jbuf *b, float v) {
    char t[32];
    snprintf(t, sizeof t, "%.9g", isfinite(v) ? (double)v : 0.0);
    jb_cstr(b, t);
}

static void jb_base64_floats(jbuf *b, const float *v, int32_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nb = (size_t)n * 4;
    unsigned char *p = (unsigned char *)malloc(nb ? nb : 1); /* [n*4] little-endian float32 */
    if (!p) {
        b->failed = 1;
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) p[i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    jb_cstr(b, "\"");
    for (size_t i = 0; i < nb; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < nb ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < nb ? p[i + 2] : 0);
        char q[4] = {A[w >> 18 & 63], A[w >> 12 & 63], i + 1 < nb ? A[w >> 6 & 63] : '=', i + 2 < nb ? A[w & 63] : '='};
        jb_raw(b, q, 4);
    }
    jb_cstr(b, "\"");
    free(p);
}

static void h_embed_any(conn *c, int api) {
    server *sv = c->sv;
    reqctx r = {c, {0}, NULL};
    emb_input *in = NULL;
    float *vec = NULL;
    int32_t *tok = NULL;
    slot *sl = NULL;
    jbuf b = {0};
    const char *field = api == EMB_OLLAMA_OLD ? "prompt" : "input";
    if (parse_body(&r) || check_model(&r, 0)) goto out;
    int b64 = 0;
    if (api == EMB_OAI) {
        const json_node *ef = json_get(&r.doc, r.root, "encoding_format");
        if (ef && ef->type != JSON_NULL) {
            if (ef->type != JSON_STRING || (strcmp(ef->str, "float") && strcmp(ef->str, "base64"))) {
                respond_error(c, 400, "encoding_format", "'encoding_format' must be 'float' or 'base64'");
                goto out;
            }
            b64 = !strcmp(ef->str, "base64");
        }
        const json_node *dim = json_get(&r.doc, r.root, "dimensions");
        if (dim && dim->type != JSON_NULL && !(dim->type == JSON_NUMBER && dim->num == slm_model_n_embd_out(sv->model))) {
            respond_error(c, 400, "dimensions", "'dimensions' can only be the model's width, %d", slm_model_n_embd_out(sv->model));
            goto out;
        }
    }
    /* the inputs: a string, an array of strings, a token array, an array of token arrays */
    const json_node *x = json_get(&r.doc, r.root, field);
    int32_t n_in = 0;
    if (x && x->type == JSON_STRING) {
        n_in = 1;
    } else if (x && x->type == JSON_ARRAY && api != EMB_OLLAMA_OLD && x->count > 0 && x->count <= MAX_EMBED_INPUTS) {
        n_in = x->count;
    } else {
        respond_error(c, 400, field,
                      api == EMB_OLLAMA_OLD ? "'prompt' must be a string"
                      : api == EMB_OLLAMA   ? "'input' must be a string or an array of 1 to %d strings"
                                            : "'input' must be a string, an array of 1 to %d strings, or token arrays",
                      MAX_EMBED_INPUTS);
        goto out;
    }
    in = (emb_input *)calloc((size_t)n_in, sizeof *in);
    if (!in) goto oom;
    if (x->type == JSON_STRING) {
        in[0].text = x->str, in[0].len = x->len;
    } else {
        int all_num = 1;
        for (const json_node *e = json_first(&r.doc, x); e; e = json_next(&r.doc, e)) all_num &= e->type == JSON_NUMBER;
        if (all_num && api == EMB_OAI) { /* one token array */
            n_in = 1;
            in[0].ids = x;
        } else {
            int i = 0;
            for (const json_node *e = json_first(&r.doc, x); e; e = json_next(&r.doc, e), i++) {
                if (e->type == JSON_STRING) in[i].text = e->str, in[i].len = e->len;
                else if (e->type == JSON_ARRAY && api == EMB_OAI) in[i].ids = e;
                else {
                    respond_error(c, 400, field, "'%s'[%d] must be a string%s", field, i, api == EMB_OAI ? " or an array of token ids" : "");
                    goto out;
                }
            }
        }
    }
    int32_t dim = slm_model_n_embd_out(sv->model);
    vec = (float *)malloc((size_t)n_in * (size_t)dim * sizeof(float)); /* [n_in][dim] */
    tok = (int32_t *)malloc((size_t)sv->n_ctx * sizeof(int32_t));     /* [n_ctx] one input's ids */
    if (!vec || !tok) goto oom;
    slm_embed_params ep;
    slm_embed_params_init(&ep);
    /* one vector per input: a model without pooling is mean-pooled; OpenAI and
       /api/embed return unit vectors, the older /api/embeddings raw ones */
    if (slm_model_pooling(sv->model) == SLM_POOLING_NONE) ep.pooling = SLM_POOLING_MEAN;
    ep.normalize = api != EMB_OLLAMA_OLD;
    sl = acquire_slot(c, NULL, 0);
    if (!sl) goto out;
    sl->n_cache = 0; /* embedding clears the session */
    long long n_tokens = 0;
    slm_error err;
    for (int32_t i = 0; i < n_in; i++) {
        int32_t n = 0;
        slm_status st;
        if (in[i].ids) {
            n = in[i].ids->count;
            if (n <= 0 || n > sv->n_ctx) {
                respond_error(c, 400, field, "input %d has %d tokens: 1 to the context of %d were expected", i, n, sv->n_ctx);
                goto out;
            }
            int k = 0;
            for (const json_node *e = json_first(&r.doc, in[i].ids); e; e = json_next(&r.doc, e), k++) {
                if (e->type != JSON_NUMBER || e->num != floor(e->num) || e->num < 0 || e->num >= sv->info.n_vocab) {
                    respond_error(c, 400, field, "input %d: token ids must be integers in 0..%d", i, sv->info.n_vocab - 1);
                    goto out;
                }
                tok[k] = (int32_t)e->num;
            }
            st = slm_embed_tokens(sl->s, tok, n, &ep, vec + (size_t)i * dim, (size_t)dim, &err);
        } else {
            if (in[i].len == 0) {
                respond_error(c, 400, field, "input %d is empty", i);
                goto out;
            }
            st = slm_tokenize(sv->model, in[i].text, in[i].len, ep.add_special, ep.parse_special, NULL, 0, &n, &err);
            if (st != SLM_OK && st != SLM_ERR_BUFFER) {
                respond_error(c, 400, field, "input %d: %s", i, err.message);
                goto out;
            }
            const char *t = in[i].text;
            size_t l = in[i].len;
            st = slm_embed(sl->s, &t, &l, 1, &ep, vec + (size_t)i * dim, (size_t)dim, NULL, &err);
        }
        if (st != SLM_OK) {
            respond_error(c, st == SLM_ERR_NOMEM ? 500 : 400, field, "input %d: %s", i, err.message);
            goto out;
        }
        n_tokens += n;
    }
    c->n_prompt = (int32_t)(n_tokens < 2147483647LL ? n_tokens : 2147483647LL);
    if (api == EMB_OAI) {
        jb_cstr(&b, "{\"object\":\"list\",\"data\":[");
        for (int32_t i = 0; i < n_in; i++) {
            jb_cstr(&b, i ? ",{\"object\":\"embedding\",\"index\":" : "{\"object\":\"embedding\",\"index\":");
            jb_int(&b, i);
            jb_cstr(&b, ",\"embedding\":");
            if (b64) {
                jb_base64_floats(&b, vec + (size_t)i * dim, dim);
            } else {
                jb_cstr(&b, "[");
                for (int32_t k = 0; k < dim; k++) {
                    if (k) jb_cstr(&b, ",");
                    jb_float(&b, vec[(size_t)i * dim + k]);
                }
                jb_cstr(&b, "]");
            }
            jb_cstr(&b, "}");
        }
        jb_cstr(&b, "],\"model\":");
        jb_str(&b, sv->id, strlen(sv->id));
        jb_cstr(&b, ",\"usage\":{\"prompt_tokens\":");
        jb_int(&b, n_tokens);
        jb_cstr(&b, ",\"total_tokens\":");
        jb_int(&b, n_tokens);
        jb_cstr(&b, "}}");
    } else {
        jb_cstr(&b, api == EMB_OLLAMA ? "{\"model\":" : "{\"embedding\":");
        if (api == EMB_OLLAMA) {
            jb_str(&b, sv->id, strlen(sv->id));
            jb_cstr(&b, ",\"embeddings\":[");
        }
        for (int32_t i = 0; i < n_in; i++) {
            jb_cstr(&b, i ? ",[" : "[");
            for (int32_t k = 0; k < dim; k++) {
                if (k) jb_cstr(&b, ",");
                jb_float(&b, vec[(size_t)i * dim + k]);
            }
            jb_cstr(&b, "]");
        }
        if (api == EMB_OLLAMA) {
            jb_cstr(&b, "],\"total_duration\":");
            jb_int(&b, (long long)((now_ms() - c->t0) * 1e6));
            jb_cstr(&b, ",\"load_duration\":0,\"prompt_eval_count\":");
            jb_int(&b, n_tokens);
        }
        jb_cstr(&b, "}");
    }
    respond_json(c, 200, &b);
    goto out;
oom:
    respond_error(c, 500, NULL, "out of memory");
out:
    if (sl) release_slot(sv, sl);
    jb_free(&b);
    free(in);
    free(vec);
    free(tok);
    json_free(&r.doc);
}

static void h_oai_embeddings(conn *c) { h_embed_any(c, EMB_OAI); }
static void h_ollama_embed(conn *c) { h_embed_any(c, EMB_OLLAMA); }
static void h_ollama_embeddings(conn *c) { h_embed_any(c, EMB_OLLAMA_OLD); }

/* ---- model information --------------------------------------------------------------- */

static void h_health(conn *c) {
    server *sv = c->sv;
    pthread_mutex_lock(&sv->mu);
    int busy = 0;
    for (int i = 0; i < sv->n_slots; i++) busy += sv->slots[i].busy;
    int waiting = sv->n_waiting;
    pthread_mutex_unlock(&sv->mu);
    jbuf b = {0};
    jb_cstr(&b, "{\"status\":\"ok\",\"model\":");
    jb_str(&b, sv->id, strlen(sv->id));
    jb_cstr(&b, ",\"slots_idle\":");
    jb_int(&b, sv->n_slots - busy);
    jb_cstr(&b, ",\"slots_processing\":");
    jb_int(&b, busy);
    jb_cstr(&b, ",\"queued\":");
    jb_int(&b, waiting);
    jb_cstr(&b, "}");
    respond_json(c, 200, &b);
    jb_free(&b);
}

static void h_root(conn *c) {
    static const char msg[] = "slm is running\n"; /* Ollama's root answers the same way */
    respond(c, 200, "text/plain; charset=utf-8", msg, sizeof msg - 1);
}

static void model_obj(jbuf *b, server *sv) {
    jb_cstr(b, "{\"id\":");
    jb_str(b, sv->id, strlen(sv->id));
    jb_cstr(b, ",\"object\":\"model\",\"created\":");
    jb_int(b, (long long)sv->started);
    jb_cstr(b, ",\"owned_by\":\"slm\"}");
}

static void h_models(conn *c) {
    jbuf b = {0};
    jb_cstr(&b, "{\"object\":\"list\",\"data\":[");
    model_obj(&b, c->sv);
    jb_cstr(&b, "]}");
    respond_json(c, 200, &b);
    jb_free(&b);
}

static void h_model_one(conn *c) {
    const char *name = c->path + strlen("/v1/models/");
    if (strcmp(name, c->sv->id)) {
        respond_error(c, 404, "model", "model '%.200s' is not served here (this server has '%s')", name, c->sv->id);
        return;
    }
    jbuf b = {0};
    model_obj(&b, c->sv);
    respond_json(c, 200, &b);
    jb_free(&b);
}

static void ollama_details(jbuf *b, server *sv) {
    char ps[32];
    double np = (double)sv->info.n_params;
    if (np >= 1e9) snprintf(ps, sizeof ps, "%.1fB", np / 1e9);
    else snprintf(ps, sizeof ps, "%.1fM", np / 1e6);
    jb_cstr(b, "{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":");
    jb_str(b, sv->info.arch, strlen(sv->info.arch));
    jb_cstr(b, ",\"families\":[");
    jb_str(b, sv->info.arch, strlen(sv->info.arch));
    jb_cstr(b, "],\"parameter_size\":");
    jb_str(b, ps, strlen(ps));
    jb_cstr(b, ",\"quantization_level\":");
    jb_str(b, sv->main_type, strlen(sv->main_type));
    jb_cstr(b, "}");
}

static void h_tags(conn *c) {
    server *sv = c->sv;
    char ts[48];
    rfc3339(ts, sizeof ts);
    jbuf b = {0};
    jb_cstr(&b, "{\"models\":[{\"name\":");
    jb_str(&b, sv->id, strlen(sv->id));
    jb_cstr(&b, ",\"model\":");
    jb_str(&b, sv->id, strlen(sv->id));
    jb_cstr(&b, ",\"modified_at\":");
    jb_str(&b, ts, strlen(ts));
    jb_cstr(&b, ",\"size\":");
    jb_int(&b, (long long)sv->info.file_size);
    jb_cstr(&b, ",\"digest\":\"\",\"details\":");
    ollama_details(&b, sv);
    jb_cstr(&b, "}]}");
    respond_json(c, 200, &b);
    jb_free(&b);
}

/* Ollama's running models: the one model, always loaded */
static void h_ps(conn *c) {
    server *sv = c->sv;
    jbuf b = {0};
    jb_cstr(&b, "{\"models\":[{\"name\":");
    jb_str(&b, sv->id, strlen(sv->id));
    jb_cstr(&b, ",\"model\":");
    jb_str(&b, sv->id, strlen(sv->id));
    jb_cstr(&b, ",\"size\":");
    jb_int(&b, (long long)sv->info.file_size);
    jb_cstr(&b, ",\"digest\":\"\",\"details\":");
    ollama_details(&b, sv);
    jb_cstr(&b, ",\"expires_at\":\"2100-01-01T00:00:00Z\",\"size_vram\":0}]}");
    respond_json(c, 200, &b);
    jb_free(&b);
}

static void h_show(conn *c) {
    reqctx r = {c, {0}, NULL};
    server *sv = c->sv;
    if (parse_body(&r)) goto out;
    /* Ollama's clients send "model" (older ones "name") */
    const json_node *nm = json_get(&r.doc, r.root, "model");
    if (!nm) nm = json_get(&r.doc, r.root, "name");
    if (nm && nm->type == JSON_STRING) {
        size_t il = strlen(sv->id);
        if (!(nm->len == il && !memcmp(nm->str, sv->id, il)) &&
            !(nm->len == il + 7 && !memcmp(nm->str, sv->id, il) && !memcmp(nm->str + il, ":latest", 7))) {
            respond_error(c, 404, "model", "model '%.200s' not found (this server has '%s')", nm->str, sv->id);
            goto out;
        }
    }
    jbuf b = {0};
    const char *tmpl = "";
    int64_t kt = slm_meta_find(sv->model, "tokenizer.chat_template");
    if (kt >= 0) slm_meta_get_string(sv->model, kt, -1, &tmpl, NULL);
    jb_cstr(&b, "{\"modelfile\":\"\",\"parameters\":\"\",\"template\":");
    jb_str(&b, tmpl, strlen(tmpl));
    jb_cstr(&b, ",\"details\":");
    ollama_details(&b, sv);
    jb_cstr(&b, ",\"model_info\":{\"general.architecture\":");
    jb_str(&b, sv->info.arch, strlen(sv->info.arch));
    jb_cstr(&b, ",\"general.parameter_count\":");
    jb_int(&b, (long long)sv->info.n_params);
    char key[96];
    snprintf(key, sizeof key, "%s.context_length", sv->info.arch);
    jb_key(&b, key, 0);
    jb_int(&b, sv->info.n_ctx_train);
    snprintf(key, sizeof key, "%s.embedding_length", sv->info.arch);
    jb_key(&b, key, 0);
    jb_int(&b, sv->info.n_embd);
    snprintf(key, sizeof key, "%s.block_count", sv->info.arch);
    jb_key(&b, key, 0);
    jb_int(&b, sv->info.n_layer);
    /* as Ollama: "thinking" where the template has thinking blocks */
    jb_cstr(&b, family_thinks(sv->family) ? "},\"capabilities\":[\"completion\",\"thinking\"],\"modified_at\":"
                                          : "},\"capabilities\":[\"completion\"],\"modified_at\":");
    char ts[48];
    rfc3339(ts, sizeof ts);
    jb_str(&b, ts, strlen(ts));
    jb_cstr(&b, "}");
    respond_json(c, 200, &b);
    jb_free(&b);
out:
    json_free(&r.doc);
}

static void h_version(conn *c) {
    jbuf b = {0};
    jb_cstr(&b, "{\"version\":");
    jb_str(&b, slm_version(), strlen(slm_version()));
    jb_cstr(&b, "}");
    respond_json(c, 200, &b);
    jb_free(&b);
}

/* ---- routing ------------------------------------------------------------------------- */

enum { R_PUBLIC = 1, R_OLLAMA = 2, R_PREFIX = 4 };

typedef struct route {
    const char *method, *path;
    void (*fn)(conn *c);
    int flags;
} route;

static const route ROUTES[] = {
    {"GET", "/health", h_health, R_PUBLIC},
    {"GET", "/", h_root, R_PUBLIC},
    {"POST", "/v1/chat/completions", h_oai_chat, 0},
    {"POST", "/v1/completions", h_oai_completions, 0},
    {"GET", "/v1/models", h_models, 0},
    {"POST", "/v1/embeddings", h_oai_embeddings, 0},
    {"POST", "/api/embed", h_ollama_embed, R_OLLAMA},
    {"POST", "/api/embeddings", h_ollama_embeddings, R_OLLAMA},
    {"GET", "/v1/models/", h_model_one, R_PREFIX},
    {"POST", "/api/chat", h_ollama_chat, R_OLLAMA},
    {"POST", "/api/generate", h_ollama_generate, R_OLLAMA},
    {"GET", "/api/tags", h_tags, R_OLLAMA},
    {"GET", "/api/ps", h_ps, R_OLLAMA},
    {"POST", "/api/show", h_show, R_OLLAMA},
    {"GET", "/api/version", h_version, R_OLLAMA},
};

static int method_is(const conn *c, const char *m) {
    return c->req.method_len == strlen(m) && !memcmp(c->req.method, m, c->req.method_len);
}

static void dispatch(conn *c) {
    server *sv = c->sv;
    const route *match = NULL;
    int path_found = 0;
    c->ollama = !strncmp(c->path, "/api/", 5); /* errors in Ollama's shape there, even for unknown paths */
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        const route *r = &ROUTES[i];
        int pm = r->flags & R_PREFIX ? !strncmp(c->path, r->path, strlen(r->path)) && c->path[strlen(r->path)]
                                     : !strcmp(c->path, r->path);
        if (!pm) continue;
        path_found = 1;
        c->ollama = (r->flags & R_OLLAMA) != 0;
        if (method_is(c, r->method) || (method_is(c, "HEAD") && !strcmp(r->method, "GET"))) {
            match = r;
            break;
        }
    }
    if (method_is(c, "OPTIONS")) { /* CORS preflight from a browser app */
        send_head(c, 204, NULL, 0,
                  "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                  "Access-Control-Allow-Headers: Authorization, Content-Type\r\nAccess-Control-Max-Age: 600\r\n");
        return;
    }
    if (!match) {
        if (path_found) respond_error(c, 405, NULL, "method %.*s is not allowed on %s", (int)c->req.method_len, c->req.method, c->path);
        else respond_error(c, 404, NULL, "no such endpoint: %.200s", c->path);
        return;
    }
    if (sv->api_key && !(match->flags & R_PUBLIC)) {
        const http_header *h = http_find_header(&c->req, "authorization");
        const char *tok = "";
        size_t tl = 0;
        if (h && h->value_len > 7 && !strncmp(h->value, "Bearer ", 7)) tok = h->value + 7, tl = h->value_len - 7;
        if (!http_secret_equal(tok, tl, sv->api_key, strlen(sv->api_key))) {
            respond_error(c, 401, NULL, "invalid or missing API key (Authorization: Bearer KEY)");
            return;
        }
    }
    match->fn(c);
}

/* ---- connections ---------------------------------------------------------------------- */

/* Close after the response: stop sending, then read (and drop) what the
   client still sends for a short while, so that unread request bytes do
   not make the kernel reset the connection before the client has read the
   response (a 413 with the body still coming). */
static void close_gracefully(int fd) {
    shutdown(fd, SHUT_WR);
    char junk[4096];
    double end = now_ms() + 1000;
    size_t total = 0;
    for (;;) {
        double left = end - now_ms();
        if (left <= 0 || total > (1u << 20)) break;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left + 1) <= 0) break;
        ssize_t k = recv(fd, junk, sizeof junk, 0);
        if (k <= 0) break;
        total += (size_t)k;
    }
    close(fd);
}

static void log_request(conn *c) {
    char ts[48];
    rfc3339(ts, sizeof ts);
    ts[19] = 'Z', ts[20] = 0; /* seconds are enough here */
    char line[640];
    int ml = c->req.method ? (int)(c->req.method_len < 16 ? c->req.method_len : 16) : 1;
    int n = snprintf(line, sizeof line, "%s %s %.*s %s %d", ts, c->peer, ml, c->req.method ? c->req.method : "-",
                     c->path ? c->path : "-", c->status);
    if (c->n_prompt)
        n += snprintf(line + n, sizeof line - (size_t)n, " prompt=%d cached=%d gen=%d ttft=%.1fms", c->n_prompt,
                      c->n_cached, c->n_gen, c->ttft);
    snprintf(line + n, sizeof line - (size_t)n, " %.1fms\n", now_ms() - c->t0);
    fputs(line, stderr);
}

static void *conn_thread(void *arg) {
    conn *c = (conn *)arg;
    server *sv = c->sv;
    int r = read_request(c);
    if (r == 0) {
        c->t0 = now_ms(); /* the request's time starts when it has arrived */
        dispatch(c);
    }
    if (r >= 0) log_request(c);
    close_gracefully(c->fd);
    free(c->buf);
    free(c);
    pthread_mutex_lock(&sv->mu);
    sv->n_conn--;
    pthread_cond_broadcast(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
    return NULL;
}

static void set_timeouts(int fd, int seconds) {
    struct timeval tv;
    tv.tv_sec = seconds;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* stream tokens as they come */
    /* a fixed send buffer: a client that does not read holds at most this
       (plus its own receive window) before the send timeout applies, rather
       than megabytes of an auto-tuned buffer */
    int sndbuf = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
}

/* ---- the command ------------------------------------------------------------------------ */

static const char *SERVE_HELP =
    "usage: slm serve -m FILE [--host 127.0.0.1] [--port 8080] [-c N] [--parallel N] [--api-key KEY]\n"
    "  Serve the model over HTTP to OpenAI and Ollama clients:\n"
    "    POST /v1/chat/completions, POST /v1/completions, GET /v1/models   (OpenAI)\n"
    "    POST /api/chat, POST /api/generate, GET /api/tags, POST /api/show,\n"
    "    GET /api/version                                                  (Ollama)\n"
    "    GET /health\n"
    "  -m, --model FILE     GGUF model file\n"
    "  --host ADDR          address to listen on (default 127.0.0.1: this machine only;\n"
    "                       0.0.0.0 for every interface)\n"
    "  --port N             port (default 8080; 0 picks a free one, see the startup line)\n"
    "  -c, --ctx N          context per slot in tokens (default: training context, at most 4096)\n"
    "  --parallel N         slots: requests generated at the same time (default 1)\n"
    "  -t, --threads N      threads per slot (default: the processors / slots)\n"
    "  --queue N            requests that may wait for a slot (default 16); beyond: 503\n"
    "  --api-key KEY        require \"Authorization: Bearer KEY\" (not for /health);\n"
    "                       also read from SLM_API_KEY\n"
    "  --template NAME      chat template: chatml, llama3, gemma, phi3, phi4-mini, zephyr,\n"
    "                       mistral, llama2, granite, olmo2, qwen3, qwen3.5, smollm3, lfm2\n"
    "                       (default: the model's own)\n"
    "  --timeout S          seconds to receive a request, and to wait on a client that\n"
    "                       does not read (default 30)\n"
    "  --max-body N         largest request body in bytes (default 1048576); beyond: 413\n"
    "  --isa NAME           kernels: avx512, avx2, sse4, scalar, ... (default: the best this CPU runs)\n"
    "  --kv-f32             keep the KV cache in F32 (default F16)\n"
    "  --no-mmap            read the file instead of mapping it\n"
    "  One line per request goes to stderr: time, client, method, path, status,\n"
    "  prompt tokens (cached), generated tokens, time to first token, total time.\n";

static int parse_int_arg(const char *s, const char *flag, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "slm serve: invalid value '%s' for %s (%ld..%ld)\n", s, flag, lo, hi);
        return 1;
    }
    *out = v;
    return 0;
}

static void serve_log(void *user, int level, const char *msg) {
    (void)user;
    if (level <= SLM_LOG_WARN) fprintf(stderr, "slm serve: warning: %s\n", msg);
}

int serve_main(int argc, char **argv) {
    const char *model = NULL, *host = "127.0.0.1", *tmpl = NULL, *key = getenv("SLM_API_KEY");
    long port = 8080, n_ctx = 0, parallel = 1, threads = 0, queue = 16, timeout = 30, max_body = 1 << 20;
    int kv_f32 = 0, no_mmap = 0, isa = SLM_ISA_BEST;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                          \
    if (!v) {                                                           \
        fprintf(stderr, "slm serve: option %s needs a value\n", a);     \
        return 1;                                                       \
    } else i++
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(SERVE_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED(); model = v; }
        else if (!strcmp(a, "--host")) { NEED(); host = v; }
        else if (!strcmp(a, "--port")) {
            NEED();
            if (parse_int_arg(v, a, 0, 65535, &port)) return 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            NEED();
            if (parse_int_arg(v, a, 0, 1 << 24, &n_ctx)) return 1;
        } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            NEED();
            if (parse_int_arg(v, a, 1, 256, &parallel)) return 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED();
            if (parse_int_arg(v, a, 0, 1024, &threads)) return 1;
        } else if (!strcmp(a, "--queue")) {
            NEED();
            if (parse_int_arg(v, a, 0, 100000, &queue)) return 1;
        } else if (!strcmp(a, "--timeout")) {
            NEED();
            if (parse_int_arg(v, a, 1, 86400, &timeout)) return 1;
        } else if (!strcmp(a, "--max-body")) {
            NEED();
            if (parse_int_arg(v, a, 1024, 1L << 30, &max_body)) return 1;
        } else if (!strcmp(a, "--api-key")) { NEED(); key = v; }
        else if (!strcmp(a, "--template")) { NEED(); tmpl = v; }
        else if (!strcmp(a, "--isa")) {
            NEED();
            isa = slm_isa_from_name(v);
            if (isa < 0 || !slm_isa_available(isa)) {
                fprintf(stderr, "slm serve: --isa %s: not %s; this build on this CPU runs:", v,
                        isa < 0 ? "an instruction set" : "available");
                for (int k = 1; k < SLM_ISA_COUNT; k++)
                    if (slm_isa_available(k)) fprintf(stderr, " %s", slm_isa_name(k));
                fputc('\n', stderr);
                return 1;
            }
        } else if (!strcmp(a, "--kv-f32")) kv_f32 = 1;
        else if (!strcmp(a, "--no-mmap")) no_mmap = 1;
        else {
            fprintf(stderr, "slm serve: unknown option '%s' (see slm serve --help)\n", a);
            return 1;
        }
#undef NEED
    }
    if (!model) {
        fprintf(stderr, "slm serve: no model given (-m FILE)\n");
        return 1;
    }
    if (key && !*key) key = NULL;

    server *sv = (server *)calloc(1, sizeof *sv);
    if (!sv) return 1;
    sv->path = model;
    sv->api_key = key;
    sv->timeout_s = (int)timeout;
    sv->max_body = (size_t)max_body;
    sv->queue_max = (int)queue;
    sv->n_slots = (int)parallel;
    sv->max_conn = (int)(parallel + queue + 32);
    sv->started = time(NULL);
    pthread_mutex_init(&sv->mu, NULL);
    pthread_mutex_init(&sv->gmu, NULL);
    pthread_cond_init(&sv->cv, NULL);

    slm_model_params mp;
    slm_model_params_init(&mp);
    mp.use_mmap = !no_mmap;
    mp.log = serve_log;
    mp.isa = isa;
    slm_error err;
    if (slm_model_load_file(model, &mp, &sv->model, &err) != SLM_OK) {
        fprintf(stderr, "slm serve: %s\n", err.message);
        return 1;
    }
    slm_model_get_info(sv->model, &sv->info);
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    snprintf(sv->id, sizeof sv->id, "%s", base);
    size_t il = strlen(sv->id);
    if (il > 5 && !strcmp(sv->id + il - 5, ".gguf")) sv->id[il - 5] = 0;
    int fallback = 0;
    if (tmpl) {
        sv->family = slm_chat_family_from_name(tmpl);
        if (!sv->family) {
            fprintf(stderr, "slm serve: unknown template '%s' (chatml, llama3, gemma, phi3, phi4-mini, zephyr, mistral, llama2, "
                            "granite, olmo2, qwen3, qwen3.5, smollm3, lfm2)\n", tmpl);
            return 1;
        }
    } else {
        sv->family = slm_chat_model_family(sv->model, &fallback);
    }
    /* the dominant weight type, for the listings */
    uint64_t by_type[64] = {0};
    for (int64_t i = 0; i < slm_tensor_count(sv->model); i++) {
        slm_tensor_info ti;
        slm_tensor_get_info(sv->model, i, &ti);
        if (ti.type >= 0 && ti.type < 64 && ti.n_dims >= 2) by_type[ti.type] += ti.nbytes;
    }
    int mt = 0;
    for (int t = 0; t < 64; t++)
        if (by_type[t] > by_type[mt]) mt = t;
    sv->main_type = slm_type_name(mt) ? slm_type_name(mt) : "?";

#ifdef _SC_NPROCESSORS_ONLN
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
#else
    long ncpu = 1;
#endif
    if (ncpu < 1) ncpu = 1;
    if (!threads) threads = ncpu / parallel > 0 ? ncpu / parallel : 1;
    sv->n_threads = (int)threads;
    sv->slots = (slot *)calloc((size_t)parallel, sizeof *sv->slots);
    if (!sv->slots) return 1;
    for (int i = 0; i < sv->n_slots; i++) {
        slm_session_params sp;
        slm_session_params_init(&sp);
        sp.n_ctx = (int32_t)n_ctx;
        sp.n_threads = (int32_t)threads;
        if (kv_f32) sp.kv_type = SLM_TYPE_F32;
        if (slm_session_create(sv->model, &sp, &sv->slots[i].s, &err) != SLM_OK) {
            fprintf(stderr, "slm serve: slot %d: %s\n", i, err.message);
            return 1;
        }
        sv->slots[i].id = i;
        sv->n_ctx = slm_session_n_ctx(sv->slots[i].s);
        sv->slots[i].cache = (int32_t *)malloc((size_t)sv->n_ctx * sizeof(int32_t));
        if (!sv->slots[i].cache) {
            fprintf(stderr, "slm serve: out of memory\n");
            return 1;
        }
    }

    /* listen */
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%ld", port);
    int gr = getaddrinfo(host, ps, &hints, &ai);
    if (gr != 0 || !ai) {
        fprintf(stderr, "slm serve: cannot resolve --host '%s': %s\n", host, gai_strerror(gr));
        return 1;
    }
    int lfd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    int one = 1;
    if (lfd >= 0) setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(lfd, 128) != 0) {
        fprintf(stderr, "slm serve: cannot listen on %s:%ld: %s\n", host, port, strerror(errno));
        freeaddrinfo(ai);
        return 1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &sl);
    int real_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&ss)->sin_port);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char isa_desc[160];
    snprintf(isa_desc, sizeof isa_desc, "isa %s (%s)", slm_isa_name(slm_model_isa(sv->model)), slm_build_info());
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr,
            "slm serve: model %s (%s, %.1fM params, %s) | context %d | %d slot%s x %d thread%s | %s | template %s%s%s | "
            "listening on http://%s%s%s:%d\n",
            sv->id, sv->info.arch, sv->info.n_params / 1e6, sv->main_type, sv->n_ctx, sv->n_slots,
            sv->n_slots == 1 ? "" : "s", sv->n_threads, sv->n_threads == 1 ? "" : "s", isa_desc,
            slm_chat_family_name(sv->family), fallback ? " (fallback)" : "", key ? " | API key required" : "",
            v6 ? "[" : "", host, v6 ? "]" : "", real_port);

    while (!stop_flag) {
        struct pollfd pf = {lfd, POLLIN, 0};
        int pr = poll(&pf, 1, 200);
        if (pr <= 0) continue;
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int fd = accept(lfd, (struct sockaddr *)&peer, &pl);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) { struct timespec z = {0, 100000000L}; nanosleep(&z, NULL); } /* out of descriptors: let some close */
            continue;
        }
        set_timeouts(fd, sv->timeout_s);
        conn *c = (conn *)calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->sv = sv;
        c->fd = fd;
        c->t0 = now_ms();
        if (peer.ss_family == AF_INET6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, c->peer, sizeof c->peer);
        else inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, c->peer, sizeof c->peer);
        pthread_mutex_lock(&sv->mu);
        int full = sv->n_conn >= sv->max_conn;
        if (!full) sv->n_conn++;
        pthread_mutex_unlock(&sv->mu);
        if (full) { /* too many connections: refuse at once, in the accept thread */
            static const char busy_body[] = "{\"error\":{\"message\":\"too many connections\",\"type\":\"server_busy\","
                                            "\"param\":null,\"code\":null}}";
            char busy[256];
            int bn = snprintf(busy, sizeof busy,
                              "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\n"
                              "Content-Length: %d\r\n\r\n%s",
                              (int)sizeof busy_body - 1, busy_body);
            struct timeval tv = {0, 200000};
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            ssize_t wr = send(fd, busy, (size_t)bn, MSG_NOSIGNAL);
            (void)wr;
            close(fd);
            free(c);
            continue;
        }
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        if (pthread_create(&th, &at, conn_thread, c) != 0) {
            close(fd);
            free(c);
            pthread_mutex_lock(&sv->mu);
            sv->n_conn--;
            pthread_mutex_unlock(&sv->mu);
        }
        pthread_attr_destroy(&at);
    }
    close(lfd);
    fprintf(stderr, "slm serve: shutting down\n");
    /* tell the connection threads, and wait a little for them */
    pthread_mutex_lock(&sv->mu);
    sv->stopping = 1;
    pthread_cond_broadcast(&sv->cv);
    for (int k = 0; k < 20 && sv->n_conn > 0; k++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
    }
    int left = sv->n_conn;
    pthread_mutex_unlock(&sv->mu);
    if (left) return 0; /* threads still hold the model: let the process end take it */
    for (int i = 0; i < sv->n_slots; i++) {
        slm_session_free(sv->slots[i].s);
        free(sv->slots[i].cache);
    }
    free(sv->slots);
    for (int i = 0; i < GRAMMAR_CACHE; i++)
        if (sv->gcache[i]) gram_entry_free(sv->gcache[i]);
    pthread_mutex_destroy(&sv->gmu);
    slm_model_free(sv->model);
    pthread_mutex_destroy(&sv->mu);
    pthread_cond_destroy(&sv->cv);
    free(sv);
    return 0;
}

#endif
