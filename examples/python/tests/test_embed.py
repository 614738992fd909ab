"""Embeddings through the Python binding: llama.cpp's references for the
tiny embedding models in tests/data/embeddings (pooled, normalized,
per-token), pooling overrides, buffers, cosine and errors."""

import array
import json
import math
import os
import struct
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.normpath(os.path.join(PKG, os.pardir, os.pardir))
EMB = os.path.join(ROOT, "tests", "data", "embeddings")
sys.path.insert(0, PKG)

import slm  # noqa: E402


def fixture(name):
    with open(os.path.join(EMB, name + ".ref.json"), encoding="utf-8") as f:
        ref = json.load(f)
    d = ref["n_embd_out"]

    def rows(ext):
        with open(os.path.join(EMB, name + ext), "rb") as f:
            raw = f.read()
        v = struct.unpack("<%df" % (len(raw) // 4), raw)
        return [list(v[i:i + d]) for i in range(0, len(v), d)]

    return ref, rows(".emb.f32"), rows(".emb_norm.f32"), rows(".tok.f32")


def rel(a, b):
    fa = [x for r in a for x in r]
    fb = [x for r in b for x in r]
    return max(abs(x - y) for x, y in zip(fa, fb)) / max(abs(y) for y in fb)


class Embeddings(unittest.TestCase):
    def check(self, name, tol):
        ref, emb, emb_norm, tok = fixture(name)
        with slm.Model(os.path.join(EMB, name + ".gguf")) as m:
            self.assertEqual(m.n_embd_out, ref["n_embd_out"])
            self.assertEqual(m.pooling, ref["pooling"].lower())
            for t, ids in zip(ref["texts"], ref["token_ids"]):
                self.assertEqual(m.tokenize(t, add_special=True, parse_special=True), ids)
            with m.session(n_ctx=128, n_threads=1, kv_type="f32") as s:
                got = s.embed(ref["texts"])
                self.assertEqual(len(got), 8)
                self.assertLess(rel(got, emb), tol)
                for i in range(8):
                    for j in range(8):
                        self.assertAlmostEqual(slm.cosine(got[i], got[j]), ref["cosine_matrix"][i][j], delta=2e-3)
                self.assertLess(rel(s.embed(ref["texts"], normalize=True), emb_norm), tol)
                # one text gives one vector; buffers; per-token rows
                one = s.embed(ref["texts"][7], as_array=True)
                self.assertIsInstance(one, array.array)
                self.assertEqual(len(one), ref["n_embd_out"])
                rows = s.embed(ref["texts"][7], pooling="none")
                self.assertEqual(len(rows), ref["n_tokens"][7] if isinstance(ref["n_tokens"], list) else len(tok))
                self.assertLess(rel(rows, tok), 2 * tol)
                last = s.embed_tokens(ref["token_ids"][7], pooling="last")
                if not name.startswith("tiny-gemma"):  # its dense layers see other inputs
                    self.assertLess(rel([last], [rows[-1]]), 1e-6)
                cls_ = s.embed(ref["texts"][7], pooling="cls")
                self.assertEqual(len(cls_), ref["n_embd_out"])

    def test_bert_cls_f32(self):
        self.check("tiny-bert-cls-F32", 1e-3)

    def test_bert_mean_q8_0(self):
        self.check("tiny-bert-mean-Q8_0", 5e-2)

    def test_qwen3_last(self):
        self.check("tiny-qwen3-last-F32", 1e-3)

    def test_gemma_embedding(self):
        self.check("tiny-gemma-embedding-mean-F32", 1e-3)

    def test_errors(self):
        with slm.Model(os.path.join(EMB, "tiny-bert-cls-F32.gguf")) as m:
            self.assertTrue(m.is_encoder)
            with m.session(n_ctx=16, n_threads=1) as s:
                with self.assertRaises(slm.InvalidArgumentError):
                    s.embed("x", pooling="max")
                with self.assertRaises(slm.ContextFullError):
                    s.embed("a text that is much too long for a context of sixteen tokens, as it goes on and on")
                with self.assertRaises(slm.UnsupportedError):
                    s.decode([101, 102])
                v = s.embed("still works")
                self.assertEqual(len(v), 32)
        self.assertEqual(slm.cosine([0, 0], [0, 0]), 1.0)
        self.assertEqual(slm.cosine([1, 0], [0, 0]), 0.0)
        self.assertAlmostEqual(slm.cosine([1, 2], [2, 4]), 1.0, places=6)
        with self.assertRaises(slm.InvalidArgumentError):
            slm.cosine([1], [1, 2])


if __name__ == "__main__":
    unittest.main()
