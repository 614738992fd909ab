"""Tests of the Python binding against the real fixtures in tests/data
(demo model with llama.cpp references, tiny models of several
architectures with reference logits, tokenizer vocabularies with
llama.cpp's test vectors). Standard library only."""

import array
import gc
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.normpath(os.path.join(PKG, os.pardir, os.pardir))
DATA = os.path.join(ROOT, "tests", "data")
sys.path.insert(0, PKG)

import slm  # noqa: E402
from slm import _lib  # noqa: E402

DEMO = os.path.join(DATA, "demo")
MODELS = os.path.join(DATA, "models")
TOKDIR = os.path.join(DATA, "tokenizer")
PROMPTS = ["In the beginning", "And the LORD said", "Blessed are the"]

with open(os.path.join(DEMO, "kjv-1m.ref.json")) as f:
    REF = json.load(f)["results"]


def demo(name="kjv-1m-q8_0.gguf"):
    return os.path.join(DEMO, name)


def tiny_ref(name):
    with open(os.path.join(MODELS, name + ".ref.json")) as f:
        return json.load(f)


class DemoModel(unittest.TestCase):
    """One loaded demo model for a test class."""

    @classmethod
    def setUpClass(cls):
        cls.model = slm.Model(demo())

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    def session(self, **kw):
        kw.setdefault("n_ctx", 256)
        kw.setdefault("n_threads", 1)
        kw.setdefault("kv_type", "f32")
        return self.model.session(**kw)


# ---------------------------------------------------------------------------

class TestLibrary(unittest.TestCase):
    def test_version_matches_header(self):
        with open(os.path.join(ROOT, "slm.h")) as f:
            m = re.search(r'#define SLM_VERSION_STRING "([^"]+)"', f.read())
        self.assertEqual(slm.version(), m.group(1))
        major, minor = (int(x) for x in m.group(1).split(".")[:2])
        self.assertEqual((major, minor), _lib.API_VERSION)
        self.assertIn("simd=", slm.build_info())
        self.assertTrue(os.path.exists(slm.library_path()))

    def test_layouts_match(self):
        self.assertEqual(_lib.check_layouts(slm._L), [])

    def test_layout_check_catches_mistakes(self):
        import ctypes

        def variant(base, edit):
            fields = list(base._fields_)
            edit(fields)
            return type(base.__name__, (ctypes.Structure,), {"_fields_": fields})

        def swap(i, j):
            def edit(f):
                f[i], f[j] = f[j], f[i]
            return edit

        def drop(name):
            def edit(f):
                f[:] = [x for x in f if x[0] != name]
            return edit

        def retype(name, t):
            def edit(f):
                f[:] = [(n, t if n == name else tt) for n, tt in f]
            return edit

        bad = [
            variant(_lib.slm_sampler_params, swap(1, 2)),          # top_k <-> top_p
            variant(_lib.slm_sampler_params, drop("grammar")),     # a binding without the grammar field
            variant(_lib.slm_generate_params, drop("user")),
            variant(_lib.slm_generate_params, swap(3, 4)),         # add_special <-> parse_special
            variant(_lib.slm_model_params, drop("repack")),
            variant(_lib.slm_session_params, swap(0, 3)),
            variant(_lib.slm_model_info, drop("n_rot")),
            variant(_lib.slm_generate_result, drop("gen_tps")),
            variant(_lib.slm_text_stream, retype("pending", ctypes.c_char * 8)),
            variant(_lib.slm_quantize_params, swap(0, 1)),
        ]
        for b in bad:
            problems = _lib.check_layouts(slm._L, {b.__name__: b})
            self.assertTrue(problems, "a wrong %s was not noticed" % b.__name__)
            self.assertTrue(all(p.startswith(b.__name__) for p in problems), problems)

    def test_struct_sizes(self):
        # the sizes the layout check confirmed, as a record for 64-bit hosts
        import ctypes
        if ctypes.sizeof(ctypes.c_void_p) == 8:
            self.assertEqual(ctypes.sizeof(_lib.slm_generate_params), 112)
            self.assertEqual(ctypes.sizeof(_lib.slm_model_info), 104)
            self.assertEqual(ctypes.sizeof(_lib.slm_error), 260)


class TestIsa(unittest.TestCase):
    def test_every_isa_gives_the_same_greedy_text(self):
        names = slm.isas()
        self.assertIn("scalar", names)
        self.assertIn("cpu=" + names[0], slm.build_info())
        texts = {}
        for name in names:
            with slm.Model(demo(), isa=name) as m:
                self.assertEqual(m.isa, name)
                with m.session(n_ctx=128) as s:
                    texts[name] = s.generate("And the LORD said", max_tokens=16, temperature=0).text
        self.assertEqual(len(set(texts.values())), 1, texts)
        with slm.Model(demo()) as m:
            self.assertEqual(m.isa, names[0])

    def test_unknown_or_unavailable_isa(self):
        with self.assertRaises(ValueError):
            slm.Model(demo(), isa="avx1024")
        for name in ("avx512", "avx2", "sse4", "i8mm", "dotprod", "neon", "rvv", "mve"):
            if name not in slm.isas():
                with self.assertRaises(slm.UnsupportedError) as cm:
                    slm.Model(demo(), isa=name)
                self.assertIn(name, str(cm.exception))


class TestErrors(DemoModel):
    def test_missing_file(self):
        path = os.path.join(tempfile.gettempdir(), "no-such-dir-slm", "missing.gguf")
        with self.assertRaises(slm.SlmIOError) as cm:
            slm.Model(path)
        e = cm.exception
        self.assertIsInstance(e, slm.SlmError)
        self.assertEqual(e.status, _lib.SLM_ERR_IO)
        self.assertIn("missing.gguf", str(e))
        self.assertEqual(e.message, str(e))

    def test_garbage_file(self):
        with tempfile.NamedTemporaryFile(suffix=".gguf", delete=False) as f:
            f.write(b"this is not a model\n" * 10)
        try:
            with self.assertRaises(slm.FormatError) as cm:
                slm.Model(f.name)
            self.assertEqual(cm.exception.status, _lib.SLM_ERR_FORMAT)
            self.assertIn("not a GGUF file", str(cm.exception))
        finally:
            os.unlink(f.name)

    def test_garbage_bytes_and_truncated_model(self):
        with self.assertRaises(slm.FormatError):
            slm.Model.from_bytes(b"\x00" * 64)
        with open(demo(), "rb") as f:
            head = f.read(5000)
        with self.assertRaises(slm.SlmError) as cm:
            slm.Model.from_bytes(head)
        self.assertIn(cm.exception.status, (_lib.SLM_ERR_FORMAT, _lib.SLM_ERR_IO))
        self.assertTrue(str(cm.exception))

    def test_context_full(self):
        with self.session(n_ctx=8) as s:
            with self.assertRaises(slm.ContextFullError) as cm:
                s.decode(list(range(3, 20)))
            self.assertIn("n_ctx 8", str(cm.exception))
            self.assertEqual(s.pos, 0)  # unchanged
            with self.assertRaises(slm.ContextFullError):
                s.generate("And the LORD said unto Moses and Aaron and all the people", max_tokens=4)

    def test_invalid_token(self):
        with self.session() as s:
            with self.assertRaises(slm.InvalidArgumentError) as cm:
                s.decode([1, 5000])
            self.assertIsInstance(cm.exception, ValueError)
            self.assertIn("5000", str(cm.exception))

    def test_closed_objects(self):
        m = slm.Model(demo())
        s = m.session(n_ctx=32, n_threads=1)
        m.close()
        self.assertTrue(s.closed)  # closing the model closes its sessions
        with self.assertRaises(slm.SlmError):
            s.decode([1])
        with self.assertRaises(slm.SlmError):
            m.tokenize("x")
        m.close()  # idempotent

    def test_bad_arguments(self):
        with self.assertRaises(slm.InvalidArgumentError):
            self.model.chat_format([{"role": "user", "content": "x"}], template="no-such-template")
        with self.assertRaises(slm.InvalidArgumentError):
            self.model.chat_format([{"role": "user"}])
        with self.assertRaises(TypeError):
            slm.SamplerParams(temprature=0)
        with self.assertRaises(KeyError):
            self.model.meta("no.such.key")
        with self.assertRaises(slm.NotFoundError):
            slm.quantize(demo(), os.path.join(tempfile.gettempdir(), "x.gguf"), type="Q9_Z")
        with self.session() as s:
            with self.assertRaises(slm.InvalidArgumentError):
                s.logits()  # no decode yet
            with self.assertRaises(slm.InvalidArgumentError):
                s.rewind(-1)


class TestModelInfo(unittest.TestCase):
    def test_demo_info_and_metadata(self):
        with slm.Model(demo()) as m:
            i = m.info
            self.assertEqual((i.arch, i.name), ("llama", "kjv-1m"))
            self.assertEqual((i.n_vocab, i.n_ctx_train, i.n_embd, i.n_layer, i.n_head, i.n_head_kv, i.n_ff,
                              i.head_dim, i.n_rot), (1024, 256, 128, 4, 4, 2, 384, 32, 32))
            self.assertEqual(i.n_params, 1049728)  # demo/README.md
            self.assertEqual(i.file_size, os.path.getsize(demo()))
            self.assertAlmostEqual(i.rope_freq_base, 10000.0)
            self.assertAlmostEqual(i.norm_eps, 1e-5, places=9)
            self.assertEqual(i.gguf_version, 3)
            self.assertEqual(i.n_tensors, len(m.tensors()))
            self.assertGreater(i.load_ms, 0)
            self.assertEqual(m.meta("general.architecture"), "llama")
            self.assertEqual(m.meta("llama.block_count"), 4)
            self.assertIs(m.meta("tokenizer.ggml.add_bos_token"), True)
            self.assertAlmostEqual(m.meta("llama.attention.layer_norm_rms_epsilon"), 1e-5, places=9)
            toks = m.meta("tokenizer.ggml.tokens")
            self.assertEqual(len(toks), 1024)
            self.assertEqual(toks[:3], ["<unk>", "<s>", "</s>"])
            self.assertEqual(toks[3], "<0x00>")
            self.assertEqual(m.meta("no.such.key", 7), 7)
            md = m.metadata()
            self.assertEqual(set(md), set(m.meta_keys()))
            self.assertEqual(len(md["tokenizer.ggml.scores"]), 1024)
            self.assertEqual((m.bos, m.eos, m.vocab_size), (1, 2, 1024))
            self.assertTrue(m.is_eog(2))
            self.assertFalse(m.is_eog(300))

    def test_log_callback_and_vocab_only(self):
        logs = []
        with slm.Model(os.path.join(MODELS, "tiny-qwen2-Q8_0.gguf"), log=lambda lvl, msg: logs.append((lvl, msg))) as m:
            self.assertTrue(any(lvl == "info" and "loaded qwen2" in msg for lvl, msg in logs), logs)
            del logs[:]
            self.assertEqual(m.chat_family(), ("chatml", True))
            self.assertTrue(any(lvl == "warn" and "chat template" in msg for lvl, msg in logs), logs)
        with slm.Model(demo(), vocab_only=True) as v:
            self.assertEqual(v.tokenize("And the LORD said"), REF["kjv-1m-q8_0.gguf"]["And the LORD said"]["prompt_ids"])
            with self.assertRaises(slm.InvalidArgumentError) as cm:
                v.session()
            self.assertIn("vocab-only", str(cm.exception))

    def test_tiny_models_of_each_arch(self):
        for name, arch in [("tiny-llama-Q8_0", "llama"), ("tiny-qwen2-Q8_0", "qwen2"), ("tiny-qwen3-Q4_K", "qwen3"),
                           ("tiny-gemma2-Q6_K", "gemma2"), ("tiny-gemma3-Q5_0", "gemma3"),
                           ("tiny-phi3-Q4_0", "phi3")]:
            with slm.Model(os.path.join(MODELS, name + ".gguf")) as m:
                i = m.info
                self.assertEqual((i.arch, i.name), (arch, "tiny-%s-synthetic" % arch))
                self.assertEqual((i.n_vocab, i.n_embd, i.n_layer, i.n_head, i.n_head_kv, i.head_dim, i.n_ctx_train),
                                 (384, 256, 2, 4, 2, 64, 128))
                t = {x.name: x for x in m.tensors()}
                emb = t["token_embd.weight"]
                self.assertEqual(emb.shape, (256, 384))
                self.assertEqual(emb.type_name, name.split("-")[-1])
                # every tensor's data inside the file, aligned, without overlaps
                size = os.path.getsize(os.path.join(MODELS, name + ".gguf"))
                spans = sorted((x.offset, x.offset + x.nbytes) for x in t.values())
                self.assertTrue(all(a % 32 == 0 and b <= size for a, b in spans))
                self.assertTrue(all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1)))
                self.assertEqual(sum(b - a for a, b in spans), i.weight_bytes)

    def test_tiny_logits_match_llama_cpp(self):
        # F32 weights, F32 KV cache: all 16 rows within 1e-3 of llama.cpp's
        ref = tiny_ref("tiny-llama-F32")
        with open(os.path.join(MODELS, "tiny-llama-F32.logits.f32"), "rb") as f:
            raw = f.read()
        want = struct.unpack("<%df" % (16 * 384), raw)
        with slm.Model(os.path.join(MODELS, "tiny-llama-F32.gguf")) as m:
            with m.session(n_ctx=128, n_threads=1, kv_type="f32", logits_all=True) as s:
                s.decode(ref["input_ids"])
                worst = 0.0
                for row in range(16):
                    got = s.logits(row)
                    self.assertEqual(len(got), 384)
                    worst = max(worst, max(abs(a - b) for a, b in zip(got, want[row * 384:(row + 1) * 384])))
                self.assertLessEqual(worst / ref["max_abs_logit"], 1e-3)
                # greedy continuation, one token at a time
                ids = []
                for _ in range(16):
                    ids.append(s.argmax())
                    s.decode([ids[-1]])
                self.assertEqual(ids, ref["greedy_ids"])


class TestTokenizer(DemoModel):
    def test_demo_prompt_ids(self):
        for p in PROMPTS:
            want = REF["kjv-1m-q8_0.gguf"][p]["prompt_ids"]
            self.assertEqual(self.model.tokenize(p), want)
            self.assertEqual(self.model.tokenize(p, add_special=False), want[1:])
            self.assertEqual(self.model.tokenize(p.encode()), want)

    def test_detokenize(self):
        for p in PROMPTS:
            r = REF["kjv-1m-q8_0.gguf"][p]
            ids = r["prompt_ids"] + r["greedy_ids"]
            text = p + r["greedy_text"][1:]
            # llama.cpp keeps the leading space of the first piece after a removed BOS
            self.assertEqual(self.model.detokenize(ids, remove_special=True), " " + text)
            self.assertEqual(self.model.detokenize(ids[1:]), text)
            self.assertEqual(self.model.detokenize(ids), " " + text)  # BOS gives no text
        self.assertEqual(self.model.detokenize([1], unparse_special=True), "<s>")
        self.assertEqual(self.model.detokenize([]), "")
        self.assertEqual(self.model.token_to_piece(self.model.tokenize("the", False)[0]), b" the")
        self.assertEqual(self.model.token_text(1), "<s>")

    def test_llama_cpp_vectors(self):
        # tokenizer/*.inp/.out: llama.cpp's own test vectors, add_special and
        # parse_special off
        sep = b"\n__ggml_vocab_test__\n"
        for vocab in ("ggml-vocab-llama-spm", "ggml-vocab-phi-3", "ggml-vocab-gpt-2", "ggml-vocab-starcoder"):
            base = os.path.join(TOKDIR, vocab + ".gguf")
            with open(base + ".inp", "rb") as f:
                inputs = f.read().split(sep)[:-1]
            with open(base + ".out") as f:
                outs = f.read().split("\n")
            with slm.Model(base, vocab_only=True) as m:
                for i, text in enumerate(inputs):
                    want = [int(x) for x in outs[i].split()]
                    got = m.tokenize(text, add_special=False, parse_special=False)
                    self.assertEqual(got, want, "%s input %d %r" % (vocab, i, text))

    def test_bytes_round_trip(self):
        for text in ["plain text", "  two  spaces\tand\ttabs\n", "ünïcödé – 日本語 🙂", "\xff".encode("latin-1")]:
            ids = self.model.tokenize(text, add_special=False)
            want = text if isinstance(text, bytes) else text.encode()
            self.assertEqual(self.model.detokenize_bytes(ids), want)


class TestGenerate(DemoModel):
    def test_greedy_matches_llama_cpp(self):
        # F32 and F16 files give llama.cpp's 32 greedy ids and text exactly
        for fname in ("kjv-1m-f32.gguf", "kjv-1m-f16.gguf"):
            with slm.Model(demo(fname)) as m:
                for p in PROMPTS:
                    r = REF[fname][p]
                    with m.session(n_ctx=256, n_threads=1, kv_type="f32") as s:
                        g = s.generate(p, max_tokens=32, temperature=0)
                        self.assertEqual(g.tokens, r["greedy_ids"], "%s %r" % (fname, p))
                        # ref.json's text has one extra leading space (see tests/test_generate.c)
                        self.assertEqual(g.text, r["greedy_text"][1:])
                        self.assertEqual((g.stop_reason, g.stop, g.n_prompt, g.n_generated),
                                         (slm.STOP_MAX_TOKENS, "max_tokens", len(r["prompt_ids"]), 32))
                        self.assertGreater(g.gen_tps, 0)
                        self.assertEqual(s.pos, len(r["prompt_ids"]) + 32)

    def test_greedy_quantized(self):
        # Quantized files: the same ids up to the first near-tie (our top-2
        # gap below 2e-3 of the largest logit), as in tests/test_generate.c
        for fname in ("kjv-1m-q8_0.gguf", "kjv-1m-q4_0.gguf"):
            with slm.Model(demo(fname)) as m:
                for p in PROMPTS:
                    r = REF[fname][p]
                    with m.session(n_ctx=256, n_threads=1, kv_type="f32") as s:
                        g = s.generate(p, max_tokens=32, temperature=0)
                        if g.tokens == r["greedy_ids"]:
                            self.assertEqual(g.text, r["greedy_text"][1:])
                            continue
                        s.rewind(0)
                        s.decode(r["prompt_ids"])
                        for k, want in enumerate(r["greedy_ids"]):
                            row = s.logits()
                            top = sorted(range(len(row)), key=lambda j: -row[j])[:2]
                            if top[0] != want:
                                amax = max(abs(v) for v in row)
                                self.assertLess((row[top[0]] - row[want]) / amax, 2e-3, "%s %r step %d" % (fname, p, k))
                                self.assertEqual(g.tokens[:k], r["greedy_ids"][:k])
                                break
                            s.decode([want])

    def test_session_decode_logits_rewind(self):
        r = REF["kjv-1m-q8_0.gguf"]["And the LORD said"]
        with self.session() as s:
            s.decode(r["prompt_ids"])
            self.assertEqual(s.pos, len(r["prompt_ids"]))
            row = s.logits()
            view = s.logits_view()
            self.assertEqual(len(row), 1024)
            self.assertEqual(view.format, "f")
            self.assertEqual(len(view), 1024)
            self.assertEqual(list(view), row)
            self.assertEqual(s.argmax(), r["greedy_ids"][0])
            # rewind and decode again: the same logits
            s.rewind(2)
            self.assertEqual(s.pos, 2)
            s.decode(r["prompt_ids"][2:])
            self.assertEqual(s.logits(), row)
            # a sampler with temperature 0 picks the argmax
            with slm.Sampler(self.model, temperature=0) as smp:
                self.assertEqual(smp.sample(s), r["greedy_ids"][0])
                self.assertEqual(smp.sample(row), r["greedy_ids"][0])
                self.assertEqual(smp.sample(array.array("f", row)), r["greedy_ids"][0])
            # seeded sampling is repeatable
            a = slm.Sampler(1024, seed=7, temperature=1.0)
            b = slm.Sampler(1024, slm.SamplerParams(seed=7, temperature=1.0))
            da = [a.sample(row) for _ in range(20)]
            self.assertEqual(da, [b.sample(row) for _ in range(20)])
            a.reset()
            self.assertEqual(da, [a.sample(row) for _ in range(20)])
            a.close()
            b.close()

    def test_sampler_params_defaults(self):
        p = slm.SamplerParams()
        self.assertAlmostEqual(p.temperature, 0.8, places=6)
        self.assertEqual((p.top_k, p.repeat_last_n, p.seed), (40, 64, 0))
        self.assertEqual(slm.SamplerParams(top_k=5).top_k, 5)

    def test_seeded_generation_repeatable(self):
        outs = []
        for _ in range(2):
            with self.session() as s:
                outs.append(s.generate("In the beginning", max_tokens=24, temperature=0.9, seed=1234).tokens)
        self.assertEqual(outs[0], outs[1])
        with self.session() as s:
            other = s.generate("In the beginning", max_tokens=24, temperature=0.9, seed=99).tokens
        self.assertNotEqual(other, outs[0])

    def test_conversation_continues(self):
        r = REF["kjv-1m-q8_0.gguf"]["And the LORD said"]
        with self.session() as s:
            a = s.generate("And the LORD said", max_tokens=10, temperature=0)
            b = s.generate("", max_tokens=22, temperature=0)  # continue from the last logits
            self.assertEqual(a.tokens + b.tokens, r["greedy_ids"])
            with self.session() as s2:
                c = s2.generate(prompt_ids=r["prompt_ids"], max_tokens=32, temperature=0)
                self.assertEqual(c.tokens, r["greedy_ids"])

    def test_from_bytes(self):
        r = REF["kjv-1m-q8_0.gguf"]["Blessed are the"]
        with open(demo(), "rb") as f:
            data = f.read()
        for buf in (data, bytearray(data), memoryview(data)):
            with slm.Model.from_bytes(buf) as m:
                self.assertIsNone(m.path)
                g = m.generate("Blessed are the", n_ctx=256, n_threads=1, max_tokens=32, temperature=0)
                self.assertEqual(g.tokens, r["greedy_ids"])


class TestStreaming(DemoModel):
    P = "And the LORD said"

    def full(self):
        return REF["kjv-1m-q8_0.gguf"][self.P]["greedy_text"][1:]

    def test_callback_pieces(self):
        pieces = []
        with self.session() as s:
            g = s.generate(self.P, max_tokens=32, temperature=0, on_text=pieces.append)
        self.assertGreater(len(pieces), 10)
        self.assertEqual("".join(pieces), g.text)
        self.assertEqual(g.text, self.full())

    def test_callback_stops(self):
        pieces = []

        def cb(t):
            pieces.append(t)
            return len(pieces) == 3

        with self.session() as s:
            g = s.generate(self.P, max_tokens=32, temperature=0, on_text=cb)
            self.assertEqual(g.stop_reason, slm.STOP_CALLBACK)
            self.assertEqual(len(pieces), 3)
            self.assertEqual(g.text, "".join(pieces))
            self.assertLessEqual(g.n_generated, 4)

    def test_callback_exception_propagates(self):
        class Boom(Exception):
            pass

        def cb(t):
            raise Boom("from the callback")

        with self.session() as s:
            with self.assertRaises(Boom):
                s.generate(self.P, max_tokens=32, temperature=0, on_text=cb)
            # the session is usable afterwards
            s.rewind(0)
            self.assertEqual(s.generate(self.P, max_tokens=32, temperature=0).text, self.full())

    def test_stream_iterator(self):
        with self.session() as s:
            st = s.stream(self.P, max_tokens=32, temperature=0)
            pieces = list(st)
            self.assertEqual("".join(pieces), self.full())
            self.assertEqual(st.text, self.full())
            self.assertEqual(st.result.text, self.full())
            self.assertEqual(st.result.stop, "max_tokens")
            self.assertEqual(st.result.tokens, REF["kjv-1m-q8_0.gguf"][self.P]["greedy_ids"])
            self.assertEqual(list(st), [])  # exhausted

    def test_stream_break_stops_generation(self):
        with self.session() as s:
            st = s.stream(self.P, max_tokens=32, temperature=0)
            got = []
            for piece in st:
                got.append(piece)
                if len(got) == 4:
                    break
                with self.assertRaises(slm.SlmError):
                    s.decode([1])  # busy while the stream runs
            st.close()
            self.assertEqual(st.result.stop_reason, slm.STOP_CALLBACK)
            self.assertTrue(self.full().startswith("".join(got)))
            # the session holds the prompt and the tokens generated so far
            self.assertEqual(s.pos, st.result.n_prompt + st.result.n_generated)
            self.assertLessEqual(st.result.n_generated, 5)
            # and goes on from there
            rest = s.generate("", max_tokens=32 - st.result.n_generated, temperature=0)
            self.assertEqual(st.result.tokens + rest.tokens, REF["kjv-1m-q8_0.gguf"][self.P]["greedy_ids"])

    def test_stream_abandoned(self):
        with self.session() as s:
            st = s.stream(self.P, max_tokens=32, temperature=0)
            next(st)
            del st
            gc.collect()
            s.rewind(0)  # no longer busy
            self.assertEqual(s.generate(self.P, max_tokens=32, temperature=0).text, self.full())
            st = s.stream(self.P, max_tokens=32, temperature=0)
            next(st)
        # closing the session closed the stream

    def test_stream_error(self):
        with self.session(n_ctx=8) as s:
            st = s.stream("And the LORD said unto Moses and Aaron and all the people", max_tokens=4)
            with self.assertRaises(slm.ContextFullError):
                next(st)
            self.assertEqual(list(st), [])
            self.assertEqual(s.pos, 0)  # usable, unchanged
            s.decode([1])

    def test_stop_strings(self):
        full = self.full()
        cases = [
            ("Israel", " unto Moses, Speak unto the children of ", slm.STOP_STRING),
            ("es, Spe", " unto Mos", slm.STOP_STRING),  # spans tokens
            (["burnt", "children"], " unto Moses, Speak unto the ", slm.STOP_STRING),
            (" unto", "", slm.STOP_STRING),
            ("xyzzy", full, slm.STOP_MAX_TOKENS),
            ("offering,XX", full, slm.STOP_MAX_TOKENS),  # held back at the end, then emitted
        ]
        with self.session() as s:
            for stop, want, reason in cases:
                s.rewind(0)
                pieces = []
                g = s.generate(self.P, max_tokens=32, temperature=0, stop=stop, on_text=pieces.append)
                self.assertEqual((g.text, g.stop_reason), (want, reason), stop)
                self.assertEqual("".join(pieces), want)
                s.rewind(0)
                st = s.stream(self.P, max_tokens=32, temperature=0, stop=stop)
                self.assertEqual("".join(st), want)
                self.assertEqual(st.result.stop_reason, reason)


class TestChat(unittest.TestCase):
    MSGS = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]

    def test_model_template_phi3(self):
        # ggml-vocab-phi-3 carries Phi-3's tokenizer.chat_template
        with slm.Model(os.path.join(TOKDIR, "ggml-vocab-phi-3.gguf"), vocab_only=True) as m:
            self.assertEqual(m.chat_family(), ("phi3", False))
            self.assertEqual(m.chat_format(self.MSGS), "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n")
            self.assertEqual(m.chat_format(self.MSGS, add_generation_prompt=False),
                             "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n")
            ids = m.tokenize(m.chat_format(self.MSGS), add_special=False, parse_special=True)
            self.assertIn(m.tokenize("<|user|>", add_special=False, parse_special=True)[0], ids)

    def test_families_without_model(self):
        self.assertIn("chatml", slm.chat_families())
        self.assertEqual(slm.chat_format(self.MSGS, template="chatml"),
                         "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n")
        self.assertEqual(slm.chat_format(self.MSGS[1:], template="llama3"),
                         "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n")
        self.assertEqual(slm.chat_format(self.MSGS[1:], template="gemma"),
                         "<start_of_turn>user\nU<end_of_turn>\n<start_of_turn>model\n")
        with self.assertRaises(slm.InvalidArgumentError):
            slm.chat_format(self.MSGS)  # auto needs a model
        conv = self.MSGS + [{"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}]
        full = slm.chat_format(conv, template="chatml")
        inc = slm.chat_format(conv, template="chatml", n_past=3)
        self.assertTrue(full.endswith(inc) and inc.startswith("<|im_end|>"))

    def test_chat_reply_and_conversation(self):
        # tiny qwen2: a ChatML vocabulary (<|im_start|> 382, <|im_end|> 383)
        # without a template in the file (ChatML is the fallback)
        with slm.Model(os.path.join(MODELS, "tiny-qwen2-Q8_0.gguf")) as m:
            self.assertEqual(m.chat_family(), ("chatml", True))
            text = m.chat_format(self.MSGS)
            ids = m.tokenize(text, add_special=True, parse_special=True)
            self.assertEqual(ids[0], 382)
            self.assertEqual(ids.count(382), 3)
            self.assertEqual(ids.count(383), 2)
            with m.session(n_ctx=128, n_threads=1) as s:
                want = s.generate(text, parse_special=True, max_tokens=8, temperature=0)
                self.assertEqual(want.n_prompt, len(ids))
                got = s.chat(self.MSGS, max_tokens=8, temperature=0)  # starts over
                self.assertEqual((got.tokens, got.text, got.n_prompt), (want.tokens, want.text, want.n_prompt))
                st = s.chat(self.MSGS, max_tokens=8, temperature=0, stream=True)
                self.assertEqual("".join(st), want.text)

            logs = []
            with slm.Chat(m, system="S", n_ctx=128, n_threads=1, max_tokens=6, temperature=0) as chat:
                self.assertEqual((chat.template, chat.fallback), ("chatml", True))
                r1 = chat.send("U")
                self.assertEqual(r1.n_prompt, len(ids))
                self.assertEqual(r1.tokens, want.tokens[:6])
                pos1 = chat.session.pos
                pieces = list(chat.stream("V"))
                r2_text = "".join(pieces)
                self.assertEqual([x["role"] for x in chat.messages], ["system", "user", "assistant", "user", "assistant"])
                self.assertEqual(chat.messages[2]["content"], r1.text)
                self.assertEqual(chat.messages[4]["content"], r2_text)
                # turn 2 sent only the new text: the end of turn 1 and the new user turn
                inc = slm.chat_format(chat.messages[:4], template="chatml", n_past=3)
                self.assertTrue(inc.startswith("<|im_end|>\n<|im_start|>user\nV<|im_end|>\n"))
                self.assertGreater(chat.session.pos, pos1)
                chat.reset()
                self.assertEqual((chat.session.pos, len(chat.messages)), (0, 1))
            del logs


class TestQuantize(unittest.TestCase):
    def test_quantize_q8_0(self):
        ref = tiny_ref("tiny-llama-Q8_0")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "q8.gguf")
            stats = slm.quantize(os.path.join(MODELS, "tiny-llama-F32.gguf"), out, type="Q8_0", n_threads=1)
            self.assertGreater(stats["n_converted"], 0)
            self.assertEqual(stats["file_out"], os.path.getsize(out))
            self.assertIn("Q8_0", stats["by_type"])
            with slm.Model(out) as m:
                mats = [t for t in m.tensors() if t.n_dims == 2]
                self.assertTrue(mats and all(t.type_name == "Q8_0" for t in mats))
                with m.session(n_ctx=128, n_threads=1, kv_type="f32") as s:
                    g = s.generate(prompt_ids=ref["input_ids"], max_tokens=16, temperature=0)
                    self.assertEqual(g.tokens, ref["greedy_ids"])


class TestCli(unittest.TestCase):
    def test_generate_py(self):
        r = REF["kjv-1m-f32.gguf"]["And the LORD said"]
        cli = os.path.join(PKG, "generate.py")
        p = subprocess.run([sys.executable, cli, "-m", demo("kjv-1m-f32.gguf"), "-p", "And the LORD said", "-n", "32",
                            "--temp", "0", "-t", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode(), "And the LORD said" + r["greedy_text"][1:] + "\n")
        p = subprocess.run([sys.executable, cli, "-m", demo("kjv-1m-f32.gguf"), "-p", "And the LORD said", "-n", "32",
                            "--temp", "0", "-t", "1", "--stop", "Israel"], stdout=subprocess.PIPE, timeout=120)
        self.assertEqual(p.stdout.decode(), "And the LORD said unto Moses, Speak unto the children of \n")
        p = subprocess.run([sys.executable, cli, "-m", "/no/such/model.gguf"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"cannot open '/no/such/model.gguf'", p.stderr)


class TestReadme(unittest.TestCase):
    def test_readme_example_runs(self):
        # the package README's first example (section "Use"), run from the repository root
        with open(os.path.join(ROOT, "examples", "python", "README.md"), encoding="utf-8") as f:
            m = re.search(r"\n## Use\n.*?```python\n(.*?)```", f.read(), re.S)
        self.assertIsNotNone(m)
        p = subprocess.run([sys.executable, "-c", m.group(1)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("[1, 300, 261, 345, 394]\n unto Moses, Speak unto the children of \n", out)
        self.assertIn("-2 cannot open 'missing.gguf'", out)


class TestLifetime(unittest.TestCase):
    def test_objects_left_open_at_exit(self):
        # models, sessions, samplers and a half-read stream left for the
        # interpreter's shutdown: no error, no output
        code = ("import sys; sys.path.insert(0, %r)\n"
                "import slm\n"
                "m = slm.Model(%r)\n"
                "s = m.session(n_ctx=64, n_threads=1)\n"
                "s2 = m.session(n_ctx=64, n_threads=1)\n"
                "smp = slm.Sampler(m)\n"
                "st = s2.stream('In the beginning', max_tokens=8)\n"
                "next(st)\n"
                "s.decode(m.tokenize('In'))\n"
                "print('ok')\n" % (PKG, demo()))
        p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        self.assertEqual((p.returncode, p.stdout.strip(), p.stderr), (0, b"ok", b""))

    def test_library_env_var(self):
        code = "import sys; sys.path.insert(0, %r)\nimport slm\nprint(slm.library_path())\n" % PKG
        env = dict(os.environ)
        env["SLM_LIBRARY"] = os.path.join(tempfile.gettempdir(), "no-such-libslm.so")
        p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"SLM_LIBRARY", p.stderr)
        env["SLM_LIBRARY"] = slm.library_path()
        p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, timeout=60)
        self.assertEqual(p.stdout.decode().strip(), slm.library_path())


# ---------------------------------------------------------------------------
# Grammars: the property test of issue 17 (SLM_GRAMMAR_N generations per
# grammar, default 10; the issue's full run is SLM_GRAMMAR_N=100 with the JSON
# grammar and 10 schemas: 1,100 generations)

GRAMMAR_SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer"}},
     "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}, "n": {"type": "number"}},
     "required": ["color"]},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 4},
    {"type": "object", "properties": {"ok": {"type": "boolean"}, "v": {"const": "x1"}, "z": {"type": "null"}},
     "required": ["ok", "v", "z"]},
    {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 5}]},
    {"$defs": {"node": {"type": "object", "properties": {"id": {"type": "integer"}, "kids": {
        "type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}}, "required": ["id"]}},
     "$ref": "#/$defs/node"},
    {"type": "object", "properties": {"d": {"type": "string", "format": "date"},
                                      "t": {"type": "string", "format": "time"},
                                      "u": {"type": "string", "format": "uuid"}}, "required": ["d", "t", "u"]},
    {"type": "string", "minLength": 2, "maxLength": 6},
    {"type": "object", "properties": {"a": {"type": ["integer", "null"]},
                                      "b": {"oneOf": [{"type": "boolean"}, {"enum": [1, 2, 3]}]}},
     "required": ["a", "b"]},
    {"definitions": {"pt": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                            "required": ["x", "y"]}},
     "type": "object", "properties": {"from": {"$ref": "#/definitions/pt"}, "to": {"$ref": "#/definitions/pt"},
                                      "tag": {"type": "string", "maxLength": 4, "title": "a tag"}},
     "required": ["from", "to"], "additionalProperties": False},
]

_FORMATS = {
    "date": r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
    "time": r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
}


def _validate(v, s, root):
    """JSON Schema validation for the subset slm converts (the test's own)."""
    if s is True:
        return True
    if "$ref" in s:
        t = root
        for part in s["$ref"].lstrip("#").split("/")[1:]:
            t = t[part]
        return _validate(v, t, root)
    if "const" in s and not (v == s["const"] and type(v) == type(s["const"])):
        return False
    if "enum" in s and not any(v == e and type(v) == type(e) for e in s["enum"]):
        return False
    if "anyOf" in s and not any(_validate(v, a, root) for a in s["anyOf"]):
        return False
    if "oneOf" in s and sum(_validate(v, a, root) for a in s["oneOf"]) != 1:
        return False
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        ok = False
        for t in types:
            ok |= (t == "null" and v is None) or (t == "boolean" and isinstance(v, bool)) or \
                  (t == "integer" and isinstance(v, int) and not isinstance(v, bool)) or \
                  (t == "number" and isinstance(v, (int, float)) and not isinstance(v, bool)) or \
                  (t == "string" and isinstance(v, str)) or (t == "array" and isinstance(v, list)) or \
                  (t == "object" and isinstance(v, dict))
        if not ok:
            return False
    if isinstance(v, str):
        if len(v) < s.get("minLength", 0) or len(v) > s.get("maxLength", 1 << 30):
            return False
        if "format" in s and not re.fullmatch(_FORMATS[s["format"]], v):
            return False
    if isinstance(v, list):
        if len(v) < s.get("minItems", 0) or len(v) > s.get("maxItems", 1 << 30):
            return False
        if "items" in s and not all(_validate(x, s["items"], root) for x in v):
            return False
    if isinstance(v, dict):
        props = s.get("properties", {})
        if any(k not in v for k in s.get("required", [])):
            return False
        for k, x in v.items():
            if k in props:
                if not _validate(x, props[k], root):
                    return False
            elif s.get("additionalProperties", True) is False:
                return False
    return True


class TestGrammar(DemoModel):
    def _run(self, grammar, schema=None):
        n = int(os.environ.get("SLM_GRAMMAR_N", "10"))
        complete = 0
        with self.session() as s:
            for seed in range(n):
                s.rewind(0)
                g = s.generate("And the LORD said", max_tokens=300, temperature=1.5, top_k=0, top_p=1, min_p=0,
                               seed=seed * 7919 + 1, grammar=grammar)
                if g.stop_reason in (slm.STOP_GRAMMAR, slm.STOP_EOG):
                    v = json.loads(g.text)  # raises on anything that is not JSON
                    if schema is not None:
                        self.assertTrue(_validate(v, schema, schema), "%r does not validate" % g.text)
                    complete += 1
        self.assertGreater(complete, 0)
        return complete

    def test_json_grammar_outputs_parse(self):
        with slm.Grammar.json(self.model) as g:
            self._run(g)

    def test_schema_outputs_validate(self):
        for schema in GRAMMAR_SCHEMAS:
            with slm.Grammar.from_schema(self.model, schema) as g:
                self._run(g, schema)

    def test_grammar_errors(self):
        with self.assertRaises(slm.FormatError) as cm:
            slm.Grammar(self.model, 'root ::= "a"\nroot ::= x\n')
        self.assertIn("line 2, column 1", str(cm.exception))
        with self.assertRaises(slm.FormatError) as cm:
            slm.Grammar(self.model, 'root ::= e\ne ::= e "+" "1" | "1"\n')
        self.assertIn("left recursion", str(cm.exception))
        with self.assertRaises(slm.UnsupportedError) as cm:
            slm.json_schema_to_grammar({"type": "string", "pattern": "a+"})
        self.assertIn("'pattern'", str(cm.exception))
        with self.assertRaises(TypeError):
            slm.SamplerParams(grammar="root ::= x")._c()

    def test_sampler_with_grammar(self):
        with slm.Grammar(self.model, 'root ::= " yes" | " no"\n') as g, self.session() as s:
            s.decode(s.model.tokenize("And the LORD said", add_special=True))
            smp = slm.Sampler(self.model, temperature=0, grammar=g)
            self.assertEqual(smp.grammar_state, "active")
            text = ""
            while smp.grammar_state not in ("done", "failed"):
                t = smp.sample(s)
                self.assertGreaterEqual(t, 0)
                smp.accept(t)
                text += self.model.token_to_piece(t).decode()
                s.decode([t])
            self.assertIn(text, (" yes", " no"))
            self.assertEqual(smp.grammar_state, "done")
            smp.reset()
            self.assertEqual(smp.grammar_state, "active")
            smp.close()


if __name__ == "__main__":
    unittest.main()
