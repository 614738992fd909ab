/* slm.c reads as a book: its table of contents (the "Contents:" list in the
   comment at the top) names every section banner, in the order of the file,
   and nothing else. A banner is a title line between two rules:

     / * ====...==== * /        (or a rule of dashes, for subsections such
     / * 6b. Title     * /         as the per-ISA kernels)
     / * ====...==== * /

   Labels are a number with an optional suffix (4, 4b, 6b2) or a letter
   with one (appendices: A, D, D3). A TOC entry is " *   LABEL. Text"; its
   text starts with the banner's title up to the first ':' or " (". */
#include "test.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define BOOK_MAX 96
#define SLM_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

/* 1 if the line s[n] contains w */
static int book_has(const char *s, size_t n, const char *w) {
    size_t k = strlen(w);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, w, k)) return 1;
    return 0;
}

typedef struct book_entry {
    char label[16];
    char title[96];
    int line;
} book_entry;

/* 1 if s (length n) is a rule: "/ * " + 60 or more '=' or '-' + " * /" */
static int book_rule(const char *s, size_t n) {
    if (n < 66 || strncmp(s, "/* ", 3) != 0 || strncmp(s + n - 3, " */", 3) != 0) return 0;
    char c = s[3];
    if (c != '=' && c != '-') return 0;
    for (size_t i = 3; i < n - 3; i++)
        if (s[i] != c) return 0;
    return 1;
}

/* "LABEL. rest" at s: the label into e->label, the rest (right-trimmed of
   spaces and an optional closing comment) into e->title; 0 if s has none. */
static int book_label(const char *s, size_t n, book_entry *e) {
    size_t i = 0;
    if (i < n && isdigit((unsigned char)s[i])) {
        while (i < n && isdigit((unsigned char)s[i])) i++;
    } else if (i < n && isupper((unsigned char)s[i])) {
        i++;
    } else {
        return 0;
    }
    while (i < n && (islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]))) i++;
    if (i + 1 >= n || s[i] != '.' || s[i + 1] != ' ' || i >= sizeof e->label) return 0;
    memcpy(e->label, s, i);
    e->label[i] = 0;
    size_t b = i + 2, end = n;
    if (end >= b + 2 && !strncmp(s + end - 2, "*/", 2)) end -= 2;
    while (end > b && s[end - 1] == ' ') end--;
    while (b < end && s[b] == ' ') b++;
    size_t tl = SLM_TEST_MIN(end - b, sizeof e->title - 1);
    memcpy(e->title, s + b, tl);
    e->title[tl] = 0;
    return 1;
}

/* The head of a banner title: up to the first ':' or " (". */
static size_t book_head(const char *t) {
    size_t i = 0;
    while (t[i] && t[i] != ':' && !(t[i] == ' ' && t[i + 1] == '(')) i++;
    return i;
}

static int book_prefix_ci(const char *text, const char *head, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!text[i] || tolower((unsigned char)text[i]) != tolower((unsigned char)head[i])) return 0;
    return 1;
}

/* Reads the source: its table of contents and its banners. */
static int book_read(const char *src, size_t size, book_entry *toc, int *ntoc, book_entry *ban, int *nban) {
    const char *line[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    int in_toc = 0, toc_done = 0, lineno = 0;
    *ntoc = *nban = 0;
    for (size_t p = 0; p < size;) {
        const char *q = (const char *)memchr(src + p, '\n', size - p);
        size_t e = q ? (size_t)(q - src) : size, n = e - p;
        if (n && src[p + n - 1] == '\r') n--;
        lineno++;
        line[0] = line[1], len[0] = len[1];
        line[1] = line[2], len[1] = len[2];
        line[2] = src + p, len[2] = n;
        const char *s = src + p;
        if (!toc_done) {
            if (!in_toc && book_has(s, n, "Contents:")) {
                in_toc = 1;
            } else if (in_toc) {
                size_t i = 2;
                if (n < 2 || strncmp(s, " *", 2) != 0) return 0;
                while (i < n && s[i] == ' ') i++;
                if (i == n && *ntoc > 0) {
                    toc_done = 1; /* the blank comment line after the list */
                } else if (i < n && *ntoc < BOOK_MAX && book_label(s + i, n - i, &toc[*ntoc])) {
                    toc[*ntoc].line = lineno;
                    (*ntoc)++;
                }
            }
        }
        /* a banner ends at this line: rule, title, rule */
        if (line[0] && book_rule(line[0], len[0]) && book_rule(line[2], len[2]) && len[0] == len[2] &&
            line[0][3] == line[2][3] && len[1] > 6 && !strncmp(line[1], "/* ", 3) && *nban < BOOK_MAX &&
            book_label(line[1] + 3, len[1] - 3, &ban[*nban])) {
            ban[*nban].line = lineno - 1;
            (*nban)++;
        }
        p = q ? e + 1 : size;
    }
    return toc_done;
}

void test_book(void) {
    const char *cands[] = {"slm.c", "../slm.c", NULL};
    cands[2] = data_path("../../slm.c");
    size_t size = 0;
    unsigned char *src = NULL;
    const char *path = NULL;
    for (int i = 0; i < 3 && !src; i++) src = read_all(path = cands[i], &size);
    CHECK(src != NULL, "cannot read slm.c (tried slm.c, ../slm.c, tests/data/../../slm.c)");
    if (!src) return;
    static book_entry toc[BOOK_MAX], ban[BOOK_MAX];
    int ntoc = 0, nban = 0;
    int ok = book_read((const char *)src, size, toc, &ntoc, ban, &nban);
    CHECK(ok, "%s: no table of contents (a \"Contents:\" list ended by a blank \" *\" line) in the top comment", path);
    CHECK(nban >= 10, "%s: only %d section banners found", path, nban);
    /* every banner listed, in order, and nothing listed that is not a banner */
    int n = SLM_TEST_MIN(ntoc, nban);
    for (int i = 0; i < n; i++) {
        if (strcmp(toc[i].label, ban[i].label) != 0) {
            CHECK(0, "%s: table of contents entry %d is '%s.' (line %d) but banner %d is '%s. %s' (line %d)", path,
                  i + 1, toc[i].label, toc[i].line, i + 1, ban[i].label, ban[i].title, ban[i].line);
            break;
        }
        size_t h = book_head(ban[i].title);
        CHECK(book_prefix_ci(toc[i].title, ban[i].title, h),
              "%s: table of contents entry '%s. %s' does not start with the banner's title '%.*s' (line %d)", path,
              toc[i].label, toc[i].title, (int)h, ban[i].title, ban[i].line);
    }
    if (nban > ntoc)
        CHECK(0, "%s: banner '%s. %s' (line %d) is not in the table of contents", path, ban[ntoc].label,
              ban[ntoc].title, ban[ntoc].line);
    if (ntoc > nban)
        CHECK(0, "%s: table of contents entry '%s. %s' (line %d) has no banner", path, toc[nban].label, toc[nban].title,
              toc[nban].line);
    /* labels are unique */
    for (int i = 0; i < nban; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(ban[i].label, ban[j].label))
                CHECK(0, "%s: two banners labelled '%s' (lines %d and %d)", path, ban[i].label, ban[j].line,
                      ban[i].line);
    free(src);
}
