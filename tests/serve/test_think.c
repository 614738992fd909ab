/*
 * Unit test of slm serve's thinking splitter (examples/serve/think.h): fixed
 * cases with the expected thinking and answer, each fed whole, cut at every
 * position, at every pair of positions and byte by byte; then random replies
 * made of tag pieces, white space and text, checked the same way against a
 * reference split of the whole text. Prints "think: N passed, N failed".
 */
#include "../../examples/serve/think.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

typedef struct sink {
    char think[4096], answer[4096];
    size_t nt, na;
    int bad; /* an empty piece, or one that breaks the order */
} sink;

static int put(void *user, int thinking, const char *s, size_t n) {
    sink *k = (sink *)user;
    if (n == 0) k->bad = 1;
    if (thinking && k->na) k->bad = 1; /* thinking after the answer began */
    char *d = thinking ? k->think : k->answer;
    size_t *dn = thinking ? &k->nt : &k->na;
    if (*dn + n >= sizeof k->think) {
        k->bad = 1;
        return 1;
    }
    memcpy(d + *dn, s, n);
    *dn += n;
    d[*dn] = 0;
    return 0;
}

/* Feed s cut at the given positions (sorted, in (0, len)). */
static void run(int opened, const char *s, size_t len, const size_t *cuts, int ncuts, sink *k) {
    think_split t;
    memset(k, 0, sizeof *k);
    think_init(&t, opened);
    size_t at = 0;
    for (int c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        if (end > at) think_push(&t, s + at, end - at, put, k);
        at = end;
    }
    think_flush(&t, put, k);
}

static int same(const sink *k, const char *think, const char *answer) {
    return !k->bad && !strcmp(k->think, think) && !strcmp(k->answer, answer);
}

/* Every way of cutting s into 1, 2 or 3 pieces, and bytes. */
static int all_cuts(int opened, const char *s, const char *think, const char *answer, const char *name) {
    size_t len = strlen(s), cuts[4096];
    sink k;
    int ok = 1;
    run(opened, s, len, NULL, 0, &k);
    if (!same(&k, think, answer)) {
        printf("FAIL %s (whole): thinking [%s] answer [%s]\n", name, k.think, k.answer);
        return 0;
    }
    for (size_t i = 1; i < len && ok; i++) {
        cuts[0] = i;
        run(opened, s, len, cuts, 1, &k);
        if (!same(&k, think, answer)) printf("FAIL %s (cut at %zu): [%s] [%s]\n", name, i, k.think, k.answer), ok = 0;
        for (size_t j = i + 1; j < len && ok; j++) {
            cuts[1] = j;
            run(opened, s, len, cuts, 2, &k);
            if (!same(&k, think, answer))
                printf("FAIL %s (cuts at %zu, %zu): [%s] [%s]\n", name, i, j, k.think, k.answer), ok = 0;
        }
    }
    if (len > 1 && len < 4096) {
        for (size_t i = 1; i < len; i++) cuts[i - 1] = i;
        run(opened, s, len, cuts, (int)len - 1, &k);
        if (!same(&k, think, answer)) printf("FAIL %s (bytes): [%s] [%s]\n", name, k.think, k.answer), ok = 0;
    }
    return ok;
}

static void expect(int opened, const char *s, const char *think, const char *answer, const char *name) {
    if (all_cuts(opened, s, think, answer, name)) passed++;
    else failed++;
}

/* The rules on the whole text (white-space runs stay under THINK_HOLD - 8). */
static int sp(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static void reference(int opened, const char *s, char *think, char *answer) {
    size_t p = 0, len = strlen(s);
    think[0] = answer[0] = 0;
    if (!opened) {
        while (p < len && sp(s[p])) p++;
        if (strncmp(s + p, "<think>", 7) != 0) {
            strcpy(answer, s);
            return;
        }
        p += 7;
    }
    while (p < len && sp(s[p])) p++;
    const char *e = strstr(s + p, "</think>");
    size_t te = e ? (size_t)(e - s) : len;
    size_t q = te;
    while (q > p && sp(s[q - 1])) q--;
    memcpy(think, s + p, q - p);
    think[q - p] = 0;
    if (!e) return;
    p = te + 8;
    while (p < len && sp(s[p])) p++;
    strcpy(answer, s + p);
}

int main(void) {
    expect(1, "Let me see.\n</think>\n\nThe answer is 4.", "Let me see.", "The answer is 4.", "qwen3.5 reply");
    expect(0, "<think>\nhmm\n</think>\n\nHi", "hmm", "Hi", "qwen3 reply with the block");
    expect(0, "  <think>a < b and </thin k</think>ok", "a < b and </thin k", "ok", "tag-like text inside");
    expect(0, "Hello <think>x</think>", "", "Hello <think>x</think>", "a block after the start is text");
    expect(0, "<thin", "", "<thin", "an open tag cut short at the end");
    expect(0, "<think", "", "<think", "an open tag without its >");
    expect(1, "never closes  \n", "never closes", "", "a block that never closes");
    expect(1, "a \n </think>b </think> c", "a", "b </think> c", "a second end tag is answer text");
    expect(0, "", "", "", "empty");
    expect(0, "\n\nplain", "", "\n\nplain", "no block: white space kept");
    expect(1, "</think>\n\nanswer", "", "answer", "an empty block");
    expect(1, "x  <  y <</think>z", "x  <  y <", "z", "< before the end tag");
    expect(1, "x </think", "x </think", "", "an end tag cut short at the end");
    expect(0, "<think></think>", "", "", "nothing in or after");
    expect(0, "<think>\n\n</think>\n\nOK.", "", "OK.", "the empty block of enable_thinking=false");
    expect(1, "h\xc3\xa9llo \xe2\x98\x83\n</think>\n\xc3\xb1 <", "h\xc3\xa9llo \xe2\x98\x83", "\xc3\xb1 <", "UTF-8");
    expect(0, "<<think>x", "", "<<think>x", "<< at the start");
    expect(1, "a\n\n\n</</think>b", "a\n\n\n</", "b", "</ then the end tag");
    {
        char s[256], t[256];
        strcpy(s, "a");
        for (int i = 0; i < 100; i++) strcat(s, " ");
        strcpy(t, s);
        strcat(s, "b</think>c");
        strcat(t, "b");
        expect(1, s, t, "c", "a long run of spaces inside");
    }

    /* the prompt's tail tells whether the reply starts inside a block */
    {
        static const struct { const char *p; int opens; } pr[] = {
            {"<|im_start|>assistant\n<think>\n", 1}, {"<|im_start|>assistant\n<think>", 1},
            {"<|im_start|>assistant\n<think>\n\n</think>\n\n", 0}, {"<|im_start|>assistant\n", 0},
            {"<think>", 1}, {"think>\n", 0}, {"", 0}};
        int ok = 1;
        for (size_t i = 0; i < sizeof pr / sizeof *pr; i++)
            if (think_prompt_opens(pr[i].p, strlen(pr[i].p)) != pr[i].opens) {
                printf("FAIL think_prompt_opens [%s]\n", pr[i].p);
                ok = 0;
            }
        if (ok) passed++;
        else failed++;
    }

    /* random replies from pieces that make and break tags */
    static const char *parts[] = {"<think>", "</think>", "<", "</", "<th", "</thi", "think>", ">", "/", "t", " ",
                                  "\n", "a", "b c", "\xc3\xa9", "\n\n"};
    unsigned long long x = 88172645463325252ull;
    int rnd_fail = 0;
    for (int it = 0; it < 3000 && !rnd_fail; it++) {
        char s[200] = "", think[200], answer[200], name[64];
        int np = (int)(x % 12);
        for (int i = 0; i < np; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            strcat(s, parts[x % (sizeof parts / sizeof *parts)]);
        }
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int opened = (int)(x & 1);
        reference(opened, s, think, answer);
        snprintf(name, sizeof name, "random %d (opened %d)", it, opened);
        if (!all_cuts(opened, s, think, answer, name)) {
            printf("     input [%s]\n", s);
            rnd_fail = 1;
        }
    }
    if (rnd_fail) failed++;
    else passed++;
    printf("think: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
