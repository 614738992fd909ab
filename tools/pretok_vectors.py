#!/usr/bin/env python3
"""Differential test of slm's BPE pre-tokenizers against llama.cpp, and the
maker of tests/data/tokenizer/pretok-vectors.txt (development tool; needs a
llama.cpp build: make pretok-vectors LLAMA=/path/to/llama.cpp).

    python3 tools/pretok_vectors.py diff [N] [SEED]   N random texts per name: count differences
    python3 tools/pretok_vectors.py write             rewrite the vectors file (llama.cpp's ids)

For every tokenizer.ggml.pre name slm accepts, the vocabulary file of the
tests (GPT-2's; for the SentencePiece-style names tests/data/tokenizer/
gemma4-synth.gguf) gets that pre value, and build/tok_llama (llama.cpp) and
build/tok_slm tokenize the same random mixed-script texts: Latin, digits,
contractions, CJK, Hangul syllables and jamo, Arabic and Arabic-Indic
digits, Hebrew with points, emoji with ZWJ and modifiers, Devanagari, Thai,
kana, combining marks, Unicode white space, fullwidth forms. gemma4-synth.gguf
(model "gemma4") is llama-spm's first 4000 pieces plus U+2581, with merges
derived from the piece scores (mk_gemma4 below, from the llama-spm fixture).
"""
import os
import random
import re
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")
BUILD = os.path.join(ROOT, "build")
TMP = os.path.join(BUILD, "pretok")

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  ", "\n", "\r\n", "\t",
    "'s't're've'm'll'd'S'T'RE'LL", ".,!?;:-_()[]{}<>/\\|@#$%^&*+=~`\"'",
    [chr(c) for c in range(0x4e00, 0x4e40)], [chr(c) for c in range(0xac00, 0xac30)],
    [chr(c) for c in range(0x1100, 0x1200)], [chr(c) for c in range(0x3131, 0x318f)],
    [chr(c) for c in range(0x0621, 0x064b)], [chr(c) for c in range(0x0660, 0x066a)],
    [chr(c) for c in range(0x06f0, 0x06fa)], [chr(c) for c in range(0x05d0, 0x05eb)],
    [chr(c) for c in range(0x05b0, 0x05c8)], [chr(c) for c in range(0x0591, 0x05b0)],
    [chr(c) for c in range(0x1f600, 0x1f650)], ["\u200d", "\ufe0f", "\U0001f3fb", "\u20e3"],
    [chr(c) for c in range(0x2600, 0x2700)], "àéîõüçñÀÉÎÕÜÇÑßøåæ", ["e\u0301", "a\u0308", "\u0301", "\u0327"],
    "αβγδεζηθΩΣπ", "абвгдежзийАБВГД", [chr(c) for c in range(0x0900, 0x0980)],
    [chr(c) for c in range(0x0e01, 0x0e5c)], [chr(c) for c in range(0x3041, 0x3097)],
    [chr(c) for c in range(0x30a1, 0x30fb)], "！？，。、：；（）「」『』‘’“”…—",
    "\u00a0\u2009\u3000\u200b\u2028\u0085\u000b\u000c", "½²³¼①②ⅣⅫ", "€£¥©®™°±×÷∑∞≈≠≤≥", "µΩℏK",
    "<>[]/=", [chr(c) for c in range(0x20000, 0x20010)], [chr(c) for c in range(0xff10, 0xff5e)],
    [chr(c) for c in range(0x0400, 0x0530)], [chr(c) for c in range(0x1f00, 0x1ff0)],
    [chr(c) for c in range(0xf900, 0xf910)],
    ["<sentinel:12>", "IMGIMGABCZ", "    ", "1,000,000", "3.14159", "don't", "I'M", "http://x.y/z"],
]
# fixed texts for the names the issue lists and the deepseek white-space rule
REGRESSION = ["\t\t\u3000", "  \u3000x", " \u2028", " \u2009a", "\u3000\u3001\u3002", "a\u2003b\u205fc",
              "\u1100\u1161\u11a8 \u0663\u0664\u0665 \u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd "
              "\U0001f468\u200d\U0001f469\u200d\U0001f467 \u06f1\u06f2",
              "<sentinel:7>IMGIMGABCDEZ  \t\n    x", "1234567 \u0661\u0662\u0663 12\u0663456",
              "don't I'M \u4e2d\u6587\u3072\u3089\u30ab\u30ca"]
MAIN = {"qwen35", "gemma4", "deepseek-v3", "kimi-k2", "superbpe", "seed-coder", "chatglm-bpe", "glm4", "bloom",
        "gpt3-finnish", "poro-chat", "chameleon", "viking", "deepseek-llm", "deepseek-coder"}
RAW = {"gemma4", "granite-embed-multi-311m", "sarvam-moe"}


def text(rng, words):
    def word():
        p = rng.choice(POOLS)
        return "".join(rng.choice(p) for _ in range(rng.randint(1, 6)))
    return "".join(word() for _ in range(rng.randint(1, words)))


# --- GGUF (vocabulary files only: no tensors) ---------------------------------------
SZ = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _str(b, o):
    n = struct.unpack_from("<Q", b, o)[0]
    return b[o + 8:o + 8 + n], o + 8 + n


def _skip(b, o, t):
    if t in SZ:
        return o + SZ[t]
    if t == 8:
        return _str(b, o)[1]
    at, n = struct.unpack_from("<IQ", b, o)
    o += 12
    if at in SZ:
        return o + SZ[at] * n
    for _ in range(n):
        o = _skip(b, o, at)
    return o


def read_kvs(b):
    magic, ver, nt, nkv = struct.unpack_from("<IIQQ", b, 0)
    assert nt == 0, "vocabulary-only files"
    o, kvs = 24, {}
    for _ in range(nkv):
        k, o2 = _str(b, o)
        t = struct.unpack_from("<I", b, o2)[0]
        e = _skip(b, o2 + 4, t)
        kvs[k.decode()] = (t, o2 + 4, b[o:e])
        o = e
    return magic, ver, kvs


def kv_str(k, v):
    k = k.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(v)) + v


def kv_arr(k, at, vals):
    k = k.encode()
    head = struct.pack("<Q", len(k)) + k + struct.pack("<IIQ", 9, at, len(vals))
    if at == 8:
        return head + b"".join(struct.pack("<Q", len(v)) + v for v in vals)
    return head + struct.pack("<%d%s" % (len(vals), "f" if at == 6 else "i"), *vals)


def write_gguf(path, magic, ver, raw_kvs):
    body = struct.pack("<IIQQ", magic, ver, 0, len(raw_kvs)) + b"".join(raw_kvs)
    body += b"\0" * ((-len(body)) % 32)
    with open(path, "wb") as f:
        f.write(body)


def with_keys(src, dst, **keys):
    magic, ver, kvs = read_kvs(open(src, "rb").read())
    names = {k.replace("_", "."): v for k, v in keys.items()}
    raw = [r for k, (_, _, r) in kvs.items() if k not in names]
    raw += [kv_str(k, v.encode()) for k, v in names.items()]
    write_gguf(dst, magic, ver, raw)


def mk_gemma4(spm, dst, limit=4000):
    """SentencePiece pieces + merges derived from the scores, model gemma4."""
    b = open(spm, "rb").read()
    magic, ver, kvs = read_kvs(b)

    def arr(k):
        t, o, _ = kvs[k]
        at, n = struct.unpack_from("<IQ", b, o)
        o += 12
        if at == 8:
            out = []
            for _ in range(n):
                s, o = _str(b, o)
                out.append(s)
            return out
        return list(struct.unpack_from("<%d%s" % (n, "f" if at == 6 else "i"), b, o))
    toks = arr("tokenizer.ggml.tokens")[:limit] + ["\u2581".encode()]
    scores = arr("tokenizer.ggml.scores")[:limit] + [0.0]
    types = arr("tokenizer.ggml.token_type")[:limit] + [1]
    idx = {s: i for i, s in enumerate(toks)}
    merges = []
    for i in sorted(range(len(toks)), key=lambda i: -scores[i]):
        s = toks[i].decode("utf-8", "replace")
        if types[i] != 1 or len(s) < 2:
            continue
        best = None
        for k in range(1, len(s)):
            a, c = s[:k].encode(), s[k:].encode()
            if a in idx and c in idx and types[idx[a]] == 1 and types[idx[c]] == 1:
                sc = min(scores[idx[a]], scores[idx[c]])
                if best is None or sc > best[0]:
                    best = (sc, a, c)
        if best:
            merges.append(best[1] + b" " + best[2])
    skip = ("tokenizer.ggml.model", "tokenizer.ggml.merges", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
            "tokenizer.ggml.scores", "tokenizer.ggml.token_type")
    raw = [r for k, (_, _, r) in kvs.items() if k not in skip]
    raw += [kv_str("tokenizer.ggml.model", b"gemma4"), kv_arr("tokenizer.ggml.tokens", 8, toks),
            kv_arr("tokenizer.ggml.scores", 6, scores), kv_arr("tokenizer.ggml.token_type", 5, types),
            kv_arr("tokenizer.ggml.merges", 8, merges)]
    write_gguf(dst, magic, ver, raw)


def pre_names():
    src = open(os.path.join(ROOT, "slm.c"), encoding="utf-8").read()
    i = src.index("} PRE_NAMES[] = {")
    return [n for n in re.findall(r'\{"([^"]+)", PRE_', src[i:src.index("};", i)]) if n != "gpt2"]


def vocab_for(name):
    os.makedirs(TMP, exist_ok=True)
    f = os.path.join(TMP, name + ".gguf")
    if name == "gemma4":
        return os.path.join(DATA, "gemma4-synth.gguf")
    if name in RAW:
        with_keys(os.path.join(DATA, "gemma4-synth.gguf"), f, tokenizer_ggml_model="gpt2", tokenizer_ggml_pre=name)
    else:
        with_keys(os.path.join(DATA, "ggml-vocab-gpt-2.gguf"), f, tokenizer_ggml_pre=name)
    return f


def run(tool, vocab, texts):
    inp = "".join(t.encode("utf-8").hex() + "\n" for t in texts).encode()
    out = subprocess.run([os.path.join(BUILD, tool), vocab], input=inp, capture_output=True, check=True).stdout
    return out.decode().split("\n")[:len(texts)]


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "diff"
    if not os.path.exists(os.path.join(DATA, "gemma4-synth.gguf")):
        mk_gemma4(os.path.join(DATA, "ggml-vocab-llama-spm.gguf"), os.path.join(DATA, "gemma4-synth.gguf"))
    if mode == "diff":
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
        seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
        total = 0
        for k, name in enumerate(pre_names()):
            rng = random.Random(seed * 1000 + k)
            texts = [text(rng, 25) for _ in range(n)]
            v = vocab_for(name)
            ref, got = run("tok_llama", v, texts), run("tok_slm", v, texts)
            bad = [t for t, r, g in zip(texts, ref, got) if r != g]
            total += len(bad)
            print("%-26s %d of %d differ%s" % (name, len(bad), n, (": " + repr(bad[0][:80])) if bad else ""))
        print("%d texts differ" % total)
        return 1 if total else 0
    rows = []
    commit = subprocess.run(["git", "-C", os.environ.get("LLAMA", "."), "log", "-1", "--format=%h"],
                            capture_output=True, text=True).stdout.strip()
    for k, name in enumerate(pre_names()):
        rng = random.Random(1000 + k)
        texts = (list(REGRESSION) if name in MAIN else []) + [text(rng, 10) for _ in range(24 if name in MAIN else 6)]
        ref = run("tok_llama", vocab_for(name), texts)
        assert not ref[0].startswith("LOADFAIL"), name
        rows += ["%s\t%s\t%s" % (name, t.encode().hex(), r) for t, r in zip(texts, ref)]
    with open(os.path.join(DATA, "pretok-vectors.txt"), "w") as f:
        f.write("# tokenizer.ggml.pre<TAB>text (hex)<TAB>llama.cpp's ids (llama_tokenize, no specials) with that pre "
                "value on ggml-vocab-gpt-2.gguf (gemma4-synth.gguf for the SentencePiece-style names)\n")
        f.write("# made by tools/pretok_vectors.py write, llama.cpp %s\n" % commit)
        f.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
