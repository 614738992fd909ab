/*
 * think.h - split a streamed reply into its thinking block and its answer.
 *
 * Thinking models (Qwen3, Qwen3.5, SmolLM3, LFM2.5) write their reasoning
 * in a <think>...</think> block at the start of the reply, or their chat
 * template opens the block in the prompt (Qwen3.5: the reply starts inside
 * it). The servers' APIs carry the two apart (OpenAI-compatible
 * reasoning_content, Ollama's thinking), so the reply is cut as it streams:
 * text arrives in pieces of any size, and a tag may be cut anywhere across
 * them. Only the bytes that may still begin a tag (or the white space that
 * may precede the end tag) are held back; everything else goes out at once.
 *
 * What goes where, as llama.cpp's server does:
 *   - a block is recognized only at the start of the reply (after white
 *     space) or when the prompt opened it; later tags are answer text;
 *   - the tags, the white space at both ends of the thinking and the white
 *     space between </think> and the answer are markup and are dropped;
 *   - nothing else is ever dropped: a block that never closes is all
 *     thinking, a reply with no block is all answer.
 * Header-only (static functions), shared by slm serve and its unit test.
 */
#ifndef SLM_SERVE_THINK_H
#define SLM_SERVE_THINK_H

#include <stddef.h>
#include <string.h>

enum {
    THINK_START,   /* start of the reply: white space, maybe "<think>" */
    THINK_OPENED,  /* just inside a block: leading white space is dropped */
    THINK_IN,      /* inside: white space and a "</think>" prefix wait */
    THINK_AFTER,   /* after </think>: white space before the answer is dropped */
    THINK_ANSWER   /* the rest: answer text as it comes */
};

#define THINK_HOLD 64 /* bytes held back at most (white space beyond goes out) */

/* out(user, thinking, text, n): a piece of thinking (1) or answer (0), n > 0.
   A non-zero return stops the split and is returned by think_push/flush. */
typedef int (*think_out_fn)(void *user, int thinking, const char *text, size_t n);

typedef struct think_split {
    int state;
    char held[THINK_HOLD]; /* [n_held] bytes not yet given out */
    size_t n_held;
} think_split;

/* opened: the prompt ends inside a block (its last non-space text is
   "<think>"), so the reply starts as thinking. */
static void think_init(think_split *t, int opened) {
    memset(t, 0, sizeof *t);
    t->state = opened ? THINK_OPENED : THINK_START;
}

/* Whether a formatted prompt of len bytes ends inside an opened block. */
static int think_prompt_opens(const char *p, size_t len) {
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == ' ' || p[len - 1] == '\r' || p[len - 1] == '\t')) len--;
    return len >= 7 && memcmp(p + len - 7, "<think>", 7) == 0;
}

static int think_space_(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static int think_push(think_split *t, const char *s, size_t n, think_out_fn out, void *user) {
    static const char open_tag[] = "<think>", close_tag[] = "</think>";
    size_t i = 0;
    int r;
    while (i < n) {
        if (t->state == THINK_ANSWER) return out(user, 0, s + i, n - i);
        if (t->state == THINK_AFTER || t->state == THINK_OPENED) {
            while (i < n && think_space_(s[i])) i++;
            if (i < n) t->state = t->state == THINK_AFTER ? THINK_ANSWER : THINK_IN;
            continue;
        }
        if (t->state == THINK_START) {
            /* held: white space, then a prefix of "<think>" */
            char c = s[i++];
            size_t ws = 0;
            while (ws < t->n_held && think_space_(t->held[ws])) ws++;
            size_t tl = t->n_held - ws; /* bytes of the tag so far */
            if (tl == 0 && think_space_(c) && t->n_held < THINK_HOLD - 8) {
                t->held[t->n_held++] = c;
            } else if (c == open_tag[tl]) {
                t->held[t->n_held++] = c;
                if (tl + 1 == sizeof open_tag - 1) t->n_held = 0, t->state = THINK_OPENED;
            } else { /* no block: what was held is answer text */
                t->state = THINK_ANSWER;
                if (t->n_held && (r = out(user, 0, t->held, t->n_held)) != 0) return r;
                t->n_held = 0;
                i--; /* c again, as answer */
            }
            continue;
        }
        /* THINK_IN: emit up to the next byte that may start the held tail */
        size_t j = i;
        if (t->n_held == 0) {
            while (j < n && s[j] != '<' && !think_space_(s[j])) j++;
            if (j > i && (r = out(user, 1, s + i, j - i)) != 0) return r;
            i = j;
            if (i == n) break;
        }
        char c = s[i++];
        size_t ws = 0;
        while (ws < t->n_held && think_space_(t->held[ws])) ws++;
        size_t tl = t->n_held - ws;
        if (tl == 0 && think_space_(c)) {
            if (t->n_held == THINK_HOLD - 8) { /* a long run of spaces: the oldest go out */
                if ((r = out(user, 1, t->held, 1)) != 0) return r;
                memmove(t->held, t->held + 1, --t->n_held);
            }
            t->held[t->n_held++] = c;
        } else if (c == close_tag[tl]) {
            t->held[t->n_held++] = c;
            if (tl + 1 == sizeof close_tag - 1) t->n_held = 0, t->state = THINK_AFTER;
        } else {
            /* not the end tag: the held bytes are thinking; c may begin a new tail */
            if (t->n_held && (r = out(user, 1, t->held, t->n_held)) != 0) return r;
            t->n_held = 0;
            if (c == '<' || think_space_(c)) t->held[t->n_held++] = c;
            else i--; /* plain text: out with what follows it */
        }
    }
    return 0;
}

/* The end of the reply: held bytes that never became a tag are text (of the
   block, or of the answer at the start), except white space at the end of
   the thinking. */
static int think_flush(think_split *t, think_out_fn out, void *user) {
    int r = 0;
    if (t->state == THINK_START && t->n_held) {
        r = out(user, 0, t->held, t->n_held);
    } else if (t->state == THINK_IN && t->n_held) {
        size_t ws = 0;
        while (ws < t->n_held && think_space_(t->held[ws])) ws++;
        if (ws < t->n_held) r = out(user, 1, t->held, t->n_held);
    }
    t->n_held = 0;
    return r;
}

#endif
