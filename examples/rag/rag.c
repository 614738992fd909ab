/*
 * rag - answer questions from a folder of documents with slm (retrieval-
 * augmented generation, on the device). See README.md beside this file.
 *
 *   rag index DIR -m EMBED.gguf [--chunk N] [--overlap M] [--rebuild]
 *   rag query DIR -m EMBED.gguf -q QUESTION [-k K] [--chat CHAT.gguf] [...]
 *
 * index: every .txt and .md file directly in DIR is cut into chunks of about
 * N tokens (of the embedding model's tokenizer) that overlap by about M
 * tokens, at word boundaries; each chunk is embedded (L2-normalized) and the
 * vectors, the chunk texts and each document's size, mtime and content hash
 * go into DIR/.slm-rag.idx. Run again, it re-embeds only the documents whose
 * content changed (size + mtime first, then the hash) and drops removed ones.
 * The file is written to a temporary name and renamed over the old one, so a
 * crash never leaves a half-written index.
 *
 * query: brings the index up to date the same way, embeds the question,
 * ranks the chunks by cosine similarity and prints the top K; with --chat it
 * asks a chat model to answer from those chunks, numbered [1]..[K] in the
 * prompt so that it can cite them, and prints the answer and the sources.
 *
 * Index file (little-endian), version 1:
 *   "SLMRAGIX" u32 version, u32 dim, u32 chunk, u32 overlap, u32 pooling,
 *   u64 model_size, u32 model_name_len, model name bytes, u32 doc_prefix_len,
 *   doc prefix bytes,
 *   u32 n_docs, per doc: u32 name_len, name, u64 size, i64 mtime, u64 hash,
 *                        u32 n_chunks, per chunk: u32 text_len, text,
 *                        float vec[dim]
 *   u64 FNV-1a hash of every byte before it.
 * Every count and length is checked against the file size and fixed limits
 * before use; a file that fails any check is reported as corrupt, with the
 * command that rebuilds it.
 *
 * Dependency-free C99 (plus POSIX opendir/stat, or the Win32 calls).
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "slm.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#define INDEX_NAME ".slm-rag.idx"
#define INDEX_MAGIC "SLMRAGIX"
#define INDEX_VERSION 1u
#define MAX_DOCS 100000u
#define MAX_DOC_BYTES (64u << 20)   /* a document larger than this is skipped */
#define MAX_CHUNKS_PER_DOC 1000000u
#define MAX_DIM 65536u
#define MAX_NAME 4096u

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rag: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

static char *xstrndup(const char *s, size_t n) {
    char *d = (char *)xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

/* ---- documents on disk ---------------------------------------------------- */

typedef struct file_info {
    char *name; /* within DIR */
    uint64_t size;
    int64_t mtime;
} file_info;

static int wanted(const char *name) {
    size_t n = strlen(name);
    if (name[0] == '.') return 0;
    return (n > 4 && !strcmp(name + n - 4, ".txt")) || (n > 3 && !strcmp(name + n - 3, ".md"));
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = (char *)xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int stat_file(const char *path, uint64_t *size, int64_t *mtime) {
#if defined(_WIN32)
    WIN32_FILE_ATTRIBUTE_DATA d;
    if (!GetFileAttributesExA(path, GetFileExInfoStandard, &d)) return 0;
    if (d.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) return 0;
    *size = ((uint64_t)d.nFileSizeHigh << 32) | d.nFileSizeLow;
    *mtime = (int64_t)(((uint64_t)d.ftLastWriteTime.dwHighDateTime << 32) | d.ftLastWriteTime.dwLowDateTime);
    return 1;
#else
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    *size = (uint64_t)st.st_size;
    /* nanoseconds where the system keeps them: a rewrite within the same
       second is still seen (the hash catches the rest) */
#if defined(__APPLE__)
    *mtime = (int64_t)st.st_mtimespec.tv_sec * 1000000000 + st.st_mtimespec.tv_nsec;
#else
    *mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
#endif
    return 1;
#endif
}

static int cmp_files(const void *a, const void *b) {
    return strcmp(((const file_info *)a)->name, ((const file_info *)b)->name);
}

/* The .txt/.md files directly in dir, sorted by name. */
static file_info *list_docs(const char *dir, int *n_out) {
    file_info *fs = NULL;
    int n = 0, cap = 0;
#if defined(_WIN32)
    char *pat = join(dir, "*");
    WIN32_FIND_DATAA fd;
    HANDLE h = FindFirstFileA(pat, &fd);
    free(pat);
    if (h == INVALID_HANDLE_VALUE) die("cannot read the folder '%s'", dir);
    do {
        const char *name = fd.cFileName;
#else
    DIR *d = opendir(dir);
    if (!d) die("cannot read the folder '%s': %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
#endif
        if (!wanted(name) || strlen(name) >= MAX_NAME) continue;
        char *path = join(dir, name);
        file_info fi;
        if (stat_file(path, &fi.size, &fi.mtime)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                fs = (file_info *)xrealloc(fs, sizeof *fs * (size_t)cap);
            }
            if ((unsigned)n >= MAX_DOCS) die("more than %u documents in '%s'", MAX_DOCS, dir);
            fi.name = xstrndup(name, strlen(name));
            fs[n++] = fi;
        }
        free(path);
#if defined(_WIN32)
    } while (FindNextFileA(h, &fd));
    FindClose(h);
#else
    }
    closedir(d);
#endif
    if (n) qsort(fs, (size_t)n, sizeof *fs, cmp_files);
    *n_out = n;
    return fs;
}

static char *read_whole(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open '%s'", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = (char *)xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > MAX_DOC_BYTES) die("'%s' is larger than %u MB", path, MAX_DOC_BYTES >> 20);
            cap *= 2;
            buf = (char *)xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (!got) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) die("cannot read '%s'", path);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* ---- the index in memory --------------------------------------------------- */

typedef struct chunk {
    char *text;
    uint32_t len;
    float *vec; /* dim floats, L2-normalized */
} chunk;

typedef struct doc {
    char *name;
    uint64_t size, hash;
    int64_t mtime;
    uint32_t n_chunks;
    chunk *chunks;
} doc;

typedef struct rag_index {
    uint32_t dim, chunk_tokens, overlap, pooling;
    uint64_t model_size;
    char *model_name;
    char *doc_prefix; /* put before every chunk when it is embedded ("" if none) */
    uint32_t n_docs;
    doc *docs;
} rag_index;

static void free_doc(doc *d) {
    for (uint32_t i = 0; i < d->n_chunks; i++) {
        free(d->chunks[i].text);
        free(d->chunks[i].vec);
    }
    free(d->chunks);
    free(d->name);
}

static void free_index(rag_index *x) {
    for (uint32_t i = 0; i < x->n_docs; i++) free_doc(&x->docs[i]);
    free(x->docs);
    free(x->model_name);
    free(x->doc_prefix);
    memset(x, 0, sizeof *x);
}

/* ---- reading and writing the index file ----------------------------------- */

typedef struct reader {
    const unsigned char *p;
    size_t n, off;
    int bad;
} reader;

static const unsigned char *take(reader *r, size_t n) {
    if (r->bad || n > r->n - r->off) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint32_t rd_u32(reader *r) {
    const unsigned char *p = take(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}

static uint64_t rd_u64(reader *r) {
    uint64_t lo = rd_u32(r), hi = rd_u32(r);
    return lo | hi << 32;
}

static float rd_f32(reader *r) {
    uint32_t u = rd_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* 1: loaded; 0: no index file; dies with a rebuild hint if it is corrupt */
static int load_index(const char *path, const char *dir, rag_index *x) {
    memset(x, 0, sizeof *x);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    size_t n;
    char *data = read_whole(path, &n);
    reader r = {(const unsigned char *)data, n, 0, 0};
    const char *why = NULL;
#define CORRUPT(msg)         \
    do {                     \
        why = msg;           \
        goto corrupt;        \
    } while (0)
    if (n < 8 + 8 || memcmp(data, INDEX_MAGIC, 8) != 0) CORRUPT("not an slm rag index (bad magic)");
    {
        reader t = {(const unsigned char *)data + n - 8, 8, 0, 0};
        if (rd_u64(&t) != fnv1a(FNV_INIT, data, n - 8)) CORRUPT("checksum mismatch (truncated or damaged)");
    }
    r.n = n - 8;
    take(&r, 8);
    uint32_t ver = rd_u32(&r);
    if (ver != INDEX_VERSION) {
        free(data);
        die("%s has format version %u, this rag reads version %u: rebuild it with `rag index %s -m MODEL --rebuild`",
            path, ver, INDEX_VERSION, dir);
    }
    x->dim = rd_u32(&r);
    x->chunk_tokens = rd_u32(&r);
    x->overlap = rd_u32(&r);
    x->pooling = rd_u32(&r);
    x->model_size = rd_u64(&r);
    uint32_t ml = rd_u32(&r);
    if (r.bad || x->dim == 0 || x->dim > MAX_DIM || ml > MAX_NAME) CORRUPT("bad header");
    const unsigned char *mp = take(&r, ml);
    if (!mp) CORRUPT("bad header");
    x->model_name = xstrndup((const char *)mp, ml);
    uint32_t pl = rd_u32(&r);
    const unsigned char *pp = pl <= MAX_NAME ? take(&r, pl) : NULL;
    if (!pp) CORRUPT("bad header");
    x->doc_prefix = xstrndup((const char *)pp, pl);
    uint32_t nd = rd_u32(&r);
    if (r.bad || nd > MAX_DOCS) CORRUPT("bad document count");
    x->docs = (doc *)calloc(nd ? nd : 1, sizeof(doc));
    if (!x->docs) die("out of memory");
    for (uint32_t i = 0; i < nd; i++) {
        doc *d = &x->docs[i];
        x->n_docs = i + 1;
        uint32_t nl = rd_u32(&r);
        const unsigned char *np = nl <= MAX_NAME ? take(&r, nl) : NULL;
        if (!np) CORRUPT("bad document name");
        d->name = xstrndup((const char *)np, nl);
        d->size = rd_u64(&r);
        d->mtime = (int64_t)rd_u64(&r);
        d->hash = rd_u64(&r);
        uint32_t nc = rd_u32(&r);
        /* each chunk takes at least 4 + 4*dim bytes: bound the count by what is left */
        if (r.bad || nc > MAX_CHUNKS_PER_DOC || (uint64_t)nc * (4 + 4ull * x->dim) > r.n - r.off)
            CORRUPT("bad chunk count");
        d->chunks = (chunk *)calloc(nc ? nc : 1, sizeof(chunk));
        if (!d->chunks) die("out of memory");
        for (uint32_t c = 0; c < nc; c++) {
            chunk *ch = &d->chunks[c];
            d->n_chunks = c + 1;
            uint32_t tl = rd_u32(&r);
            const unsigned char *tp = take(&r, tl);
            if (!tp) CORRUPT("bad chunk text");
            ch->text = xstrndup((const char *)tp, tl);
            ch->len = tl;
            ch->vec = (float *)xmalloc(sizeof(float) * x->dim);
            for (uint32_t k = 0; k < x->dim; k++) ch->vec[k] = rd_f32(&r);
            if (r.bad) CORRUPT("bad chunk vector");
        }
    }
    if (r.off != r.n) CORRUPT("trailing bytes");
#undef CORRUPT
    free(data);
    return 1;
corrupt:
    free(data);
    free_index(x);
    die("the index %s is corrupt (%s): rebuild it with `rag index %s -m MODEL --rebuild` (or delete it)", path, why,
        dir);
    return 0;
}

typedef struct writer {
    FILE *f;
    uint64_t h;
    int bad;
} writer;

static void wr(writer *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n) w->bad = 1;
    w->h = fnv1a(w->h, p, n);
}

static void wr_u32(writer *w, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    wr(w, b, 4);
}

static void wr_u64(writer *w, uint64_t v) {
    wr_u32(w, (uint32_t)v);
    wr_u32(w, (uint32_t)(v >> 32));
}

/* Write to PATH.tmp, then rename over PATH. */
static void save_index(const char *path, const rag_index *x) {
    size_t pl = strlen(path);
    char *tmp = (char *)xmalloc(pl + 5);
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    writer w = {fopen(tmp, "wb"), FNV_INIT, 0};
    if (!w.f) die("cannot write '%s': %s", tmp, strerror(errno));
    wr(&w, INDEX_MAGIC, 8);
    wr_u32(&w, INDEX_VERSION);
    wr_u32(&w, x->dim);
    wr_u32(&w, x->chunk_tokens);
    wr_u32(&w, x->overlap);
    wr_u32(&w, x->pooling);
    wr_u64(&w, x->model_size);
    wr_u32(&w, (uint32_t)strlen(x->model_name));
    wr(&w, x->model_name, strlen(x->model_name));
    wr_u32(&w, (uint32_t)strlen(x->doc_prefix));
    wr(&w, x->doc_prefix, strlen(x->doc_prefix));
    wr_u32(&w, x->n_docs);
    for (uint32_t i = 0; i < x->n_docs; i++) {
        const doc *d = &x->docs[i];
        wr_u32(&w, (uint32_t)strlen(d->name));
        wr(&w, d->name, strlen(d->name));
        wr_u64(&w, d->size);
        wr_u64(&w, (uint64_t)d->mtime);
        wr_u64(&w, d->hash);
        wr_u32(&w, d->n_chunks);
        for (uint32_t c = 0; c < d->n_chunks; c++) {
            wr_u32(&w, d->chunks[c].len);
            wr(&w, d->chunks[c].text, d->chunks[c].len);
            for (uint32_t k = 0; k < x->dim; k++) {
                uint32_t u;
                memcpy(&u, &d->chunks[c].vec[k], 4);
                wr_u32(&w, u);
            }
        }
    }
    uint64_t h = w.h;
    wr_u64(&w, h);
    if (fflush(w.f) != 0) w.bad = 1;
    if (fclose(w.f) != 0) w.bad = 1;
    if (w.bad) {
        remove(tmp);
        die("cannot write '%s' (disk full?); the old index is unchanged", tmp);
    }
#if defined(_WIN32)
    if (!MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING)) {
#else
    if (rename(tmp, path) != 0) {
#endif
        remove(tmp);
        die("cannot replace '%s'", path);
    }
    free(tmp);
}

/* ---- chunking and embedding ------------------------------------------------- */

typedef struct embedder {
    slm_model *m;
    slm_session *s;
    int dim, n_ctx, pooling;
    const char *doc_prefix; /* before every chunk ("" if none) */
    int prefix_tokens;
} embedder;

static void open_embedder(embedder *e, const char *path, int threads) {
    slm_error err;
    if (slm_model_load_file(path, NULL, &e->m, &err) != SLM_OK) die("%s", err.message);
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_threads = threads;
    if (slm_session_create(e->m, &sp, &e->s, &err) != SLM_OK) die("%s", err.message);
    e->dim = slm_model_n_embd_out(e->m);
    e->n_ctx = slm_session_n_ctx(e->s);
    e->pooling = slm_model_pooling(e->m);
    if (e->pooling == SLM_POOLING_NONE) {
        /* a decoder converted without pooling_type (Qwen3-Embedding): last token */
        e->pooling = slm_model_is_encoder(e->m) ? SLM_POOLING_MEAN : SLM_POOLING_LAST;
        fprintf(stderr, "rag: %s has no pooling_type; using %s pooling\n", path, slm_pooling_name(e->pooling));
    }
}

static int n_tokens(const embedder *e, const char *t, size_t n, int special) {
    int32_t k = 0;
    slm_status st = slm_tokenize(e->m, t, n, special, 0, NULL, 0, &k, NULL);
    return st == SLM_OK || st == SLM_ERR_BUFFER ? k : -1;
}

/* prefix + text in one buffer (the embedding sees them as one text) */
static char *with_prefix(const char *prefix, const char *t, size_t n, size_t *len) {
    size_t pl = strlen(prefix);
    char *b = (char *)xmalloc(pl + n + 1);
    memcpy(b, prefix, pl);
    memcpy(b + pl, t, n);
    b[pl + n] = 0;
    *len = pl + n;
    return b;
}

static void embed_text(embedder *e, const char *t, size_t n, float *out) {
    slm_embed_params ep;
    slm_embed_params_init(&ep);
    ep.pooling = e->pooling;
    ep.normalize = 1;
    ep.parse_special = 0; /* documents are data: "[SEP]" in a text stays text */
    slm_error err;
    if (slm_embed(e->s, &t, &n, 1, &ep, out, (size_t)e->dim, NULL, &err) != SLM_OK) die("embedding: %s", err.message);
}

/* Words: [start, end) byte ranges, each word with the white space after it. */
typedef struct span {
    size_t b, e;
    int tok;
} span;

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* The word ends a sentence (. ! ? and a closing quote or bracket) or a
   paragraph (a blank line after it). */
static int sentence_end(const char *text, const span *w) {
    size_t e = w->e;
    int nl = 0;
    while (e > w->b && is_ws(text[e - 1])) nl += text[--e] == '\n';
    if (nl >= 2) return 1;
    while (e > w->b && strchr("\"')]*", text[e - 1])) e--;
    return e > w->b && strchr(".!?", text[e - 1]) != NULL;
}

/* Cut a document into chunks of about `size` tokens overlapping by about
   `overlap`, at word boundaries; embed each. */
static void chunk_doc(embedder *e, const char *text, size_t len, uint32_t size, uint32_t overlap, doc *d) {
    span *w = NULL;
    size_t nw = 0, cap = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && is_ws(text[i])) i++;
        if (i >= len) break;
        size_t b = i;
        while (i < len && !is_ws(text[i])) i++;
        while (i < len && is_ws(text[i])) i++;
        if (nw == cap) {
            cap = cap ? cap * 2 : 256;
            w = (span *)xrealloc(w, sizeof *w * cap);
        }
        w[nw].b = b;
        w[nw].e = i;
        w[nw].tok = n_tokens(e, text + b, i - b, 0);
        if (w[nw].tok < 1) w[nw].tok = 1;
        nw++;
    }
    size_t cap_c = 0;
    d->n_chunks = 0;
    d->chunks = NULL;
    for (size_t start = 0; start < nw;) {
        size_t end = start;
        long tok = 0;
        while (end < nw && (end == start || tok + w[end].tok <= (long)size)) tok += w[end++].tok;
        /* rather end at a sentence or paragraph end in the last 40% */
        if (end < nw)
            for (size_t j = end; j > start + 1 && (j - start) * 5 > (end - start) * 3; j--)
                if (sentence_end(text, &w[j - 1])) {
                    end = j;
                    break;
                }
        /* the real count (words tokenized apart can differ) must fit the context */
        size_t cb = w[start].b, ce = w[end - 1].e;
        while (end > start + 1 && n_tokens(e, text + cb, ce - cb, 1) + e->prefix_tokens > e->n_ctx) ce = w[--end - 1].e;
        while (ce > cb && is_ws(text[ce - 1])) ce--;
        if (d->n_chunks == cap_c) {
            cap_c = cap_c ? cap_c * 2 : 16;
            d->chunks = (chunk *)xrealloc(d->chunks, sizeof(chunk) * cap_c);
        }
        if (d->n_chunks >= MAX_CHUNKS_PER_DOC) die("'%s' gives more than %u chunks", d->name, MAX_CHUNKS_PER_DOC);
        chunk *c = &d->chunks[d->n_chunks++];
        c->len = (uint32_t)(ce - cb);
        c->text = xstrndup(text + cb, ce - cb);
        c->vec = (float *)xmalloc(sizeof(float) * (size_t)e->dim);
        size_t bl;
        char *buf = with_prefix(e->doc_prefix, c->text, c->len, &bl);
        embed_text(e, buf, bl, c->vec);
        free(buf);
        if (end >= nw) break;
        /* the next chunk starts `overlap` tokens back, but always moves on */
        size_t next = end;
        long back = 0;
        while (next > start + 1 && back + w[next - 1].tok <= (long)overlap) back += w[--next].tok;
        start = next;
    }
    free(w);
}

static const char *base_name(const char *p) {
    const char *b = p;
    for (const char *c = p; *c; c++)
        if (*c == '/' || *c == '\\') b = c + 1;
    return b;
}

/* Bring the index of dir up to date (loading it from disk first); returns
   the number of documents (re-)embedded. */
static int update_index(const char *dir, embedder *e, const char *model_path, uint32_t size, uint32_t overlap,
                        int rebuild, rag_index *x) {
    char *ipath = join(dir, INDEX_NAME);
    rag_index old;
    int have = !rebuild && load_index(ipath, dir, &old);
    uint64_t msize = 0;
    int64_t mt;
    if (!stat_file(model_path, &msize, &mt)) die("cannot open '%s'", model_path);
    if (have && (old.dim != (uint32_t)e->dim || old.chunk_tokens != size || old.overlap != overlap ||
                 old.pooling != (uint32_t)e->pooling || old.model_size != msize ||
                 strcmp(old.model_name, base_name(model_path)) != 0 || strcmp(old.doc_prefix, e->doc_prefix) != 0)) {
        fprintf(stderr,
                "rag: the index was made with %s (%u floats, chunks of %u/%u tokens, document prefix '%s'): "
                "rebuilding it\n",
                old.model_name, old.dim, old.chunk_tokens, old.overlap, old.doc_prefix);
        free_index(&old);
        have = 0;
    }
    int nf;
    file_info *fs = list_docs(dir, &nf);
    memset(x, 0, sizeof *x);
    x->dim = (uint32_t)e->dim;
    x->chunk_tokens = size;
    x->overlap = overlap;
    x->pooling = (uint32_t)e->pooling;
    x->model_size = msize;
    x->model_name = xstrndup(base_name(model_path), strlen(base_name(model_path)));
    x->doc_prefix = xstrndup(e->doc_prefix, strlen(e->doc_prefix));
    x->docs = (doc *)calloc(nf ? (size_t)nf : 1, sizeof(doc));
    if (!x->docs) die("out of memory");
    int changed = 0, removed = have ? (int)old.n_docs : 0;
    for (int i = 0; i < nf; i++) {
        doc *d = &x->docs[x->n_docs];
        doc *prev = NULL;
        for (uint32_t k = 0; have && k < old.n_docs; k++)
            if (old.docs[k].name && !strcmp(old.docs[k].name, fs[i].name)) prev = &old.docs[k];
        if (prev) removed--;
        if (fs[i].size > MAX_DOC_BYTES) {
            if (prev) removed++; /* it was indexed before: the index changes */
            fprintf(stderr, "rag: skipping %s (%llu bytes, more than %u MB)\n", fs[i].name,
                    (unsigned long long)fs[i].size, MAX_DOC_BYTES >> 20);
            continue;
        }
        if (prev && prev->size == fs[i].size && prev->mtime == fs[i].mtime) { /* unchanged: keep */
            *d = *prev;
            memset(prev, 0, sizeof *prev);
            x->n_docs++;
            continue;
        }
        char *path = join(dir, fs[i].name);
        size_t len;
        char *text = read_whole(path, &len);
        free(path);
        uint64_t h = fnv1a(FNV_INIT, text, len);
        if (prev && prev->hash == h && prev->size == len) { /* touched, same content */
            *d = *prev;
            memset(prev, 0, sizeof *prev);
            d->mtime = fs[i].mtime;
            x->n_docs++;
            free(text);
            continue;
        }
        d->name = xstrndup(fs[i].name, strlen(fs[i].name));
        d->size = len;
        d->mtime = fs[i].mtime;
        d->hash = h;
        chunk_doc(e, text, len, size, overlap, d);
        free(text);
        x->n_docs++;
        changed++;
        fprintf(stderr, "rag: embedded %s: %u chunk%s\n", d->name, d->n_chunks, d->n_chunks == 1 ? "" : "s");
    }
    for (int i = 0; i < nf; i++) free(fs[i].name);
    free(fs);
    if (have) free_index(&old);
    if (changed || removed || !have) save_index(ipath, x);
    if (removed) fprintf(stderr, "rag: dropped %d removed document%s\n", removed, removed == 1 ? "" : "s");
    free(ipath);
    return changed + removed;
}

/* ---- commands -------------------------------------------------------------- */

static const char *HELP =
    "usage:\n"
    "  rag index DIR -m EMBED.gguf [--chunk N] [--overlap M] [--doc-prefix TEXT] [--rebuild] [-t N]\n"
    "  rag query DIR -m EMBED.gguf -q QUESTION [-k K] [--chat CHAT.gguf] [options]\n"
    "index: cut the .txt and .md files in DIR into chunks of about N tokens\n"
    "  (default 128) overlapping by about M (default 32), embed them and store\n"
    "  the vectors in DIR/" INDEX_NAME "; run again, only changed documents are\n"
    "  embedded again. --rebuild starts from scratch. --doc-prefix TEXT is put\n"
    "  before every chunk when it is embedded (models trained with one, e.g.\n"
    "  EmbeddingGemma's \"title: none | text: \"); the index remembers it.\n"
    "query: update the index if documents changed, embed the question, print\n"
    "  the K most similar chunks (default 3) with their scores; with --chat,\n"
    "  a chat model answers from them, citing them as [1]..[K].\n"
    "options of query:\n"
    "  --chat FILE       chat model (GGUF with a chat template)\n"
    "  --query-prefix T  put before the question when it is embedded (e.g.\n"
    "                    Qwen3-Embedding's \"Instruct: ...\\nQuery: \")\n"
    "  -n N              longest answer in tokens (default 256)\n"
    "  --temp T          sampling temperature (default 0: greedy)\n"
    "  --seed S          sampler seed (default 0)\n"
    "  --chat-ctx N      the chat model's context (default: its training context,\n"
    "                    at most 4096)\n"
    "  --print-prompt    print the prompt given to the chat model (to stderr)\n"
    "  -t N              threads (default: all)\n";

typedef struct hit {
    const doc *d;
    uint32_t c;
    float score;
} hit;

static int cmp_hit(const void *a, const void *b) {
    const hit *x = (const hit *)a, *y = (const hit *)b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    int s = strcmp(x->d->name, y->d->name);
    return s ? s : (x->c < y->c ? -1 : x->c > y->c);
}

static int on_text(void *user, const char *t, size_t n) {
    (void)user;
    fwrite(t, 1, n, stdout);
    fflush(stdout);
    return 0;
}

/* Append to a growing string. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *s, const char *t, size_t n) {
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->p = (char *)xrealloc(s->p, s->cap);
    }
    memcpy(s->p + s->n, t, n);
    s->n += n;
    s->p[s->n] = 0;
}

static void sb_str(sbuf *s, const char *t) { sb_add(s, t, strlen(t)); }

static void answer(const char *chat_path, const char *question, const hit *hits, int k, int n_predict, float temp,
                   unsigned long long seed, int print_prompt, int threads, int chat_ctx) {
    slm_error err;
    slm_model *m = NULL;
    if (slm_model_load_file(chat_path, NULL, &m, &err) != SLM_OK) die("%s", err.message);
    slm_session_params sp;
    slm_session_params_init(&sp);
    sp.n_threads = threads;
    sp.n_ctx = chat_ctx;
    slm_session *s = NULL;
    if (slm_session_create(m, &sp, &s, &err) != SLM_OK) die("%s", err.message);
    const int n_ctx = slm_session_n_ctx(s);
    const char *system =
        "You answer questions using only the numbered sources given with the question. Cite the sources you "
        "use as [1], [2], ... If the sources do not contain the answer, say that you do not know.";
    char *prompt = NULL;
    size_t plen = 0;
    int used = k;
    for (; used >= 1; used--) { /* fewer sources until the prompt leaves room for the answer */
        sbuf u = {0};
        sb_str(&u, "Sources:\n");
        for (int i = 0; i < used; i++) {
            char head[64];
            snprintf(head, sizeof head, "[%d] (", i + 1);
            sb_str(&u, head);
            sb_str(&u, hits[i].d->name);
            sb_str(&u, ") ");
            sb_add(&u, hits[i].d->chunks[hits[i].c].text, hits[i].d->chunks[hits[i].c].len);
            sb_str(&u, "\n");
        }
        sb_str(&u, "\nQuestion: ");
        sb_str(&u, question);
        slm_chat_message msgs[2] = {{"system", system}, {"user", u.p}};
        size_t need = 0;
        slm_status st = slm_chat_format(m, SLM_CHAT_AUTO, msgs, 2, 0, 1, NULL, 0, &need, NULL, &err);
        if (st != SLM_OK && st != SLM_ERR_BUFFER) die("%s", err.message);
        free(prompt);
        prompt = (char *)xmalloc(need + 1);
        if (slm_chat_format(m, SLM_CHAT_AUTO, msgs, 2, 0, 1, prompt, need + 1, &plen, NULL, &err) != SLM_OK)
            die("%s", err.message);
        free(u.p);
        int32_t nt = 0;
        slm_tokenize(m, prompt, plen, 1, 1, NULL, 0, &nt, NULL);
        if (nt + (n_predict < 128 ? n_predict : 128) <= n_ctx) break;
        if (used == 1) die("the question and the best source do not fit the chat model's context of %d tokens", n_ctx);
        fprintf(stderr, "rag: the prompt with %d sources does not fit the chat model's context; using %d\n", used,
                used - 1);
    }
    if (print_prompt) fprintf(stderr, "rag: prompt:\n%s\n", prompt);
    slm_generate_params gp;
    slm_generate_params_init(&gp);
    gp.max_tokens = n_predict;
    gp.parse_special = 1;
    gp.sampler.temperature = temp;
    gp.sampler.seed = seed;
    gp.on_text = on_text;
    slm_generate_result res;
    if (slm_generate(s, prompt, plen, NULL, 0, &gp, &res, &err) != SLM_OK) die("%s", err.message);
    printf("\n\nSources:\n");
    for (int i = 0; i < used; i++)
        printf("[%d] %s, chunk %u (score %.3f)\n", i + 1, hits[i].d->name, hits[i].c + 1, (double)hits[i].score);
    free(prompt);
    slm_session_free(s);
    slm_model_free(m);
}

static int parse_num(const char *s, const char *flag, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) die("%s needs a number in [%ld, %ld]", flag, lo, hi);
    return (int)v;
}

static const char *need(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die("option %s needs a value", argv[*i]);
    return argv[++*i];
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1], *dir = NULL, *model = NULL, *question = NULL, *chat = NULL, *doc_prefix = NULL,
               *query_prefix = "";
    int size = 128, overlap = 32, rebuild = 0, k = 3, n_predict = 256, print_prompt = 0, threads = 0, chat_ctx = 0;
    float temp = 0.0f;
    unsigned long long seed = 0;
    int is_index = !strcmp(cmd, "index"), is_query = !strcmp(cmd, "query");
    if (!is_index && !is_query) die("unknown command '%s' (index or query; see rag --help)", cmd);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = need(argc, argv, &i);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = parse_num(need(argc, argv, &i), a, 0, 1024);
        else if (is_index && !strcmp(a, "--chunk")) size = parse_num(need(argc, argv, &i), a, 8, 1 << 20);
        else if (is_index && !strcmp(a, "--overlap")) overlap = parse_num(need(argc, argv, &i), a, 0, 1 << 20);
        else if (is_index && !strcmp(a, "--rebuild")) rebuild = 1;
        else if (is_index && !strcmp(a, "--doc-prefix")) doc_prefix = need(argc, argv, &i);
        else if (is_query && !strcmp(a, "--query-prefix")) query_prefix = need(argc, argv, &i);
        else if (is_query && (!strcmp(a, "-q") || !strcmp(a, "--question"))) question = need(argc, argv, &i);
        else if (is_query && !strcmp(a, "-k")) k = parse_num(need(argc, argv, &i), a, 1, 100);
        else if (is_query && !strcmp(a, "--chat")) chat = need(argc, argv, &i);
        else if (is_query && !strcmp(a, "-n")) n_predict = parse_num(need(argc, argv, &i), a, 1, 1 << 20);
        else if (is_query && !strcmp(a, "--temp")) temp = (float)atof(need(argc, argv, &i));
        else if (is_query && !strcmp(a, "--seed")) seed = strtoull(need(argc, argv, &i), NULL, 10);
        else if (is_query && !strcmp(a, "--print-prompt")) print_prompt = 1;
        else if (is_query && !strcmp(a, "--chat-ctx")) chat_ctx = parse_num(need(argc, argv, &i), a, 16, 1 << 20);
        else if (a[0] != '-' && !dir) dir = a;
        else die("unknown option '%s' for %s (see rag --help)", a, cmd);
    }
    if (!dir) die("no folder given (rag %s DIR ...)", cmd);
    if (!model) die("%s", "no embedding model given (-m EMBED.gguf)");
    if (is_query && !question) die("%s", "no question given (-q QUESTION)");
    if (overlap >= size) die("--overlap (%d) must be smaller than --chunk (%d)", overlap, size);
    embedder e = {0};
    open_embedder(&e, model, threads);
    if (is_query) {
        /* the index's own chunking, if there is one */
        char *ipath = join(dir, INDEX_NAME);
        rag_index cur;
        if (load_index(ipath, dir, &cur)) {
            size = (int)cur.chunk_tokens;
            overlap = (int)cur.overlap;
            doc_prefix = xstrndup(cur.doc_prefix, strlen(cur.doc_prefix));
            free_index(&cur);
        }
        free(ipath);
    }
    e.doc_prefix = doc_prefix ? doc_prefix : "";
    e.prefix_tokens = e.doc_prefix[0] ? n_tokens(&e, e.doc_prefix, strlen(e.doc_prefix), 0) : 0;
    if (e.prefix_tokens < 0 || e.prefix_tokens > e.n_ctx / 2)
        die("the document prefix takes %d tokens of the embedding model's context of %d", e.prefix_tokens, e.n_ctx);
    if (size > e.n_ctx - 4 - e.prefix_tokens) {
        fprintf(stderr, "rag: chunks of %d tokens do not fit the embedding model's context (%d): using %d\n", size,
                e.n_ctx, e.n_ctx - 4 - e.prefix_tokens);
        size = e.n_ctx - 4 - e.prefix_tokens;
        if (overlap >= size) overlap = size / 4;
    }
    rag_index x;
    int changed = update_index(dir, &e, model, (uint32_t)size, (uint32_t)overlap, rebuild, &x);
    uint32_t total = 0;
    for (uint32_t i = 0; i < x.n_docs; i++) total += x.docs[i].n_chunks;
    if (is_index) {
        printf("indexed %u document%s, %u chunk%s (%d embedded now) in %s/%s\n", x.n_docs, x.n_docs == 1 ? "" : "s",
               total, total == 1 ? "" : "s", changed, dir, INDEX_NAME);
    } else {
        if (changed) fprintf(stderr, "rag: index updated (%d document%s)\n", changed, changed == 1 ? "" : "s");
        if (!total) die("no documents indexed in '%s' (.txt or .md files)", dir);
        float *q = (float *)xmalloc(sizeof(float) * (size_t)e.dim);
        size_t ql;
        char *qt = with_prefix(query_prefix, question, strlen(question), &ql);
        embed_text(&e, qt, ql, q);
        free(qt);
        hit *hits = (hit *)xmalloc(sizeof(hit) * total);
        uint32_t n = 0;
        for (uint32_t i = 0; i < x.n_docs; i++)
            for (uint32_t c = 0; c < x.docs[i].n_chunks; c++) {
                hits[n].d = &x.docs[i];
                hits[n].c = c;
                hits[n].score = slm_cosine(q, x.docs[i].chunks[c].vec, e.dim);
                n++;
            }
        qsort(hits, n, sizeof *hits, cmp_hit);
        if ((uint32_t)k > n) k = (int)n;
        printf("Retrieved:\n");
        for (int i = 0; i < k; i++) {
            const chunk *c = &hits[i].d->chunks[hits[i].c];
            printf("[%d] %.4f %s#%u\n    ", i + 1, (double)hits[i].score, hits[i].d->name, hits[i].c + 1);
            for (uint32_t j = 0; j < c->len; j++) putchar(c->text[j] == '\n' || c->text[j] == '\r' ? ' ' : c->text[j]);
            putchar('\n');
        }
        fflush(stdout);
        if (chat) {
            slm_session_free(e.s); /* the chat model's turn */
            e.s = NULL;
            printf("\nAnswer:\n");
            answer(chat, question, hits, k, n_predict, temp, seed, print_prompt, threads, chat_ctx);
        }
        free(hits);
        free(q);
    }
    free_index(&x);
    slm_session_free(e.s);
    slm_model_free(e.m);
    return 0;
}
