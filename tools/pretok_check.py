#!/usr/bin/env python3
"""Check slm's hand-written BPE pre-tokenizers against the regular expressions
they implement (development tool; needs the third-party `regex` module).

    make pretok-check                   (builds build/pretok_dump, runs this)
    python3 tools/pretok_check.py [N]   N random texts per pre-tokenizer (default 3000)

For every pre-tokenizer the expressions are llama.cpp's (llama-vocab.cpp,
the form llama.cpp runs), applied the way llama.cpp's unicode_regex_split
applies them: each expression runs over every fragment the previous one
left, and both its matches and the gaps between them become fragments.
\\s is spelled out as the White_Space set slm and llama.cpp use. The random
texts are drawn from characters whose general category is the same in
Python's unicodedata (the source of slm's tables) and in `regex`.
"""
import random
import subprocess
import sys
import unicodedata

import regex

WS = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
S, NS = "[%s]" % WS, "[^%s]" % WS


def fix(rx):
    """\\s -> the White_Space class (also inside [...] classes)."""
    out, i, inside = [], 0, False
    while i < len(rx):
        ch = rx[i]
        if ch == "\\" and i + 1 < len(rx):
            nxt = rx[i + 1]
            if nxt == "s":
                out.append(WS if inside else S)
            elif nxt == "S":
                out.append(NS)
            else:
                out.append(rx[i:i + 2])
            i += 2
            continue
        if ch == "[" and not inside:
            inside = True
        elif ch == "]" and inside:
            inside = False
        out.append(ch)
        i += 1
    return "".join(out)


CONTR = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN35 = (CONTR + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|"
          r"\s+(?!\S)|\s+")
UP, LO = r"((?=[\p{L}])([^a-z]))", r"((?=[\p{L}])([^A-Z]))"
GPT4O = (r"[^\r\n\p{L}\p{N}]?" + UP + "*" + LO + "+" + CONTR + "?|" +
         r"[^\r\n\p{L}\p{N}]?" + UP + "+" + LO + "*" + CONTR + "?|" +
         r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
TEKKEN = (r"[^\r\n\p{L}\p{N}]?" + UP + "*" + LO + "+|" + r"[^\r\n\p{L}\p{N}]?" + UP + "+" + LO + "*|" +
          r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
DSLETTER = None  # filled from tools/gen_unicode.py
PRE = {
    "gpt2": [GPT2],
    "llama3": [LLAMA3],
    "qwen2": [QWEN2],
    "qwen35": [QWEN35],
    "starcoder": [r"\p{N}", GPT2],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
    "deepseek-llm": [r"[\r\n]", "DSLETTER", "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
                     r"\s+$", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}+"],
    "deepseek-coder": [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
                       r"\p{N}"],
    "gpt-4o": [GPT4O],
    "tekken": [TEKKEN],
}


def split(text, exprs):
    frags = [text]
    for rx in exprs:
        out = []
        for f in frags:
            pos = 0
            for m in rx.finditer(f):
                if m.start() > pos:
                    out.append(f[pos:m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(f):
                out.append(f[pos:])
        frags = out
    return frags


def pool():
    chars = list(" \t\n\r\x0b\x0c" * 6) + list("  \n\n''''") + list("sStTrReEvVmMlLdD" * 3)
    chars += [chr(c) for c in range(0x21, 0x7f)] * 2
    for a, b in [(0xa0, 0x17f), (0x370, 0x3ff), (0x400, 0x45f), (0x5d0, 0x5ea), (0x620, 0x64a), (0x660, 0x669),
                 (0x900, 0x97f), (0xe00, 0xe5b), (0x1100, 0x1112), (0x1e00, 0x1eff), (0x1f00, 0x1ffe),
                 (0x2000, 0x206f), (0x2100, 0x218b), (0x2460, 0x24ff), (0x3000, 0x303f), (0x3040, 0x30ff),
                 (0x4e00, 0x4e80), (0x9f90, 0x9fb0), (0xac00, 0xac40), (0xd7a0, 0xd7ff), (0xff01, 0xff5e),
                 (0x1f300, 0x1f320), (0x1f600, 0x1f64f), (0x10400, 0x1044f), (0x1d400, 0x1d420), (0x300, 0x36f),
                 (0x85, 0x85), (0xfffd, 0xfffd), (0x200d, 0x200d), (0xfe0f, 0xfe0f)]:
        for c in range(a, b + 1):
            ch = chr(c)
            cat = unicodedata.category(ch)
            if cat == "Cn" or cat == "Cs":
                continue
            if not regex.match(r"\p{%s}" % cat, ch):
                continue  # the two Unicode versions disagree
            chars.append(ch)
    return chars


def main():
    global DSLETTER
    sys.path.insert(0, sys.path[0])
    import gen_unicode
    DSLETTER = "\\s?[" + "".join("%s-%s" % (regex.escape(chr(a)), regex.escape(chr(b)))
                                 for a, b in gen_unicode.DSLETTER) + "]+"
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rng = random.Random(1)
    chars = pool()
    texts = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 40))) for _ in range(n)]
    texts += ["Hello world", "  trailing  ", "a\n\n  b", "I'VE we'Re 12345678", "x\u00a0\u00a0y", "\u3000\u3000"]
    bad_total = 0
    for name, exprs in PRE.items():
        rxs = [regex.compile(fix(DSLETTER if e == "DSLETTER" else e), regex.V0) for e in exprs]
        data = b"\0".join(t.encode("utf-8") for t in texts) + b"\0"
        res = subprocess.run(["build/pretok_dump", name], input=data, capture_output=True, check=True)
        lines = res.stdout.decode().split("\n")
        bad = 0
        for t, line in zip(texts, lines):
            got = [bytes.fromhex(w).decode("utf-8") for w in line.split()]
            want = split(t, rxs)
            if got != want:
                bad += 1
                if bad <= 3:
                    print("%s: %r\n  slm   %r\n  regex %r" % (name, t, got, want))
        print("%-15s %d/%d texts split as the expressions do" % (name, len(texts) - bad, len(texts)))
        bad_total += bad
    sys.exit(1 if bad_total else 0)


if __name__ == "__main__":
    main()
