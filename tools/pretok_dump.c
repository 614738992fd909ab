/* Development helper for tools/pretok_check.py: prints how slm's byte-level
   BPE pre-tokenizer splits texts into words.
     cc -std=c99 -I. tools/pretok_dump.c -o build/pretok_dump -lm
     build/pretok_dump KIND < texts   (KIND: gpt2, llama3, qwen2, ...)
   stdin holds the texts separated by NUL bytes; for each text one line of
   words, each word as hex bytes, words separated by spaces. */
#include "../slm.c"

static void dump(const pre_text *t, const uint8_t *bl, const char *src, const pre_fn *fns, size_t s, size_t e,
                 size_t *bpos) {
    if (!*fns) {
        size_t nb = 0;
        for (size_t i = s; i < e; i++) nb += bl[i];
        for (size_t i = 0; i < nb; i++) printf("%02x", (unsigned char)src[*bpos + i]);
        printf(" ");
        *bpos += nb;
        return;
    }
    size_t gap = s, p = s; /* the same walk as bpe_split */
    while (p < e) {
        size_t skip = 1, m = fns[0](t, p, e, &skip);
        if (!m) {
            p += skip;
            continue;
        }
        if (gap < p) dump(t, bl, src, fns + 1, gap, p, bpos);
        dump(t, bl, src, fns + 1, p, p + m, bpos);
        p += m;
        gap = p;
    }
    if (gap < e) dump(t, bl, src, fns + 1, gap, e, bpos);
}

int main(int argc, char **argv) {
    int kind = -1;
    for (int k = 0; argc > 1 && k < (int)(sizeof PRE_KIND_NAMES / sizeof PRE_KIND_NAMES[0]); k++)
        if (!strcmp(argv[1], PRE_KIND_NAMES[k])) kind = k;
    if (kind < 0) {
        fprintf(stderr, "usage: pretok_dump KIND < texts\n");
        return 1;
    }
    size_t cap = 1 << 20, n = 0;
    char *all = (char *)malloc(cap);
    for (size_t r; all && (r = fread(all + n, 1, cap - n, stdin)) > 0;) {
        n += r;
        if (n == cap) all = (char *)realloc(all, cap *= 2);
    }
    if (!all) return 1;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && all[j]) j++;
        size_t len = j - i, ncp = 0, bpos = 0;
        uint32_t *cp = (uint32_t *)malloc((len + 1) * 4);
        uint8_t *fl = (uint8_t *)malloc(len + 1), *bl = (uint8_t *)malloc(len + 1);
        for (size_t off = 0; off < len; ncp++) {
            size_t l;
            cp[ncp] = utf8_cpt((const unsigned char *)all + i + off, len - off, &l);
            fl[ncp] = (uint8_t)ucd_flags(cp[ncp]);
            bl[ncp] = (uint8_t)l;
            off += l;
        }
        pre_text t = {cp, fl};
        dump(&t, bl, all + i, PRE_FNS[kind], 0, ncp, &bpos);
        printf("\n");
        free(cp), free(fl), free(bl);
        i = j + 1;
    }
    free(all);
    return 0;
}
