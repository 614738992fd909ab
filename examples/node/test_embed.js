'use strict';
// Embedding tests of the Node.js binding (registered by test.js): llama.cpp's
// references for the tiny embedding models in tests/data/embeddings.

const assert = require('assert');
const fs = require('fs');
const path = require('path');

module.exports = (test, slm, ROOT) => {
  const EMB = path.join(ROOT, 'tests', 'data', 'embeddings');
  const fixture = (name) => {
    const ref = JSON.parse(fs.readFileSync(path.join(EMB, `${name}.ref.json`), 'utf8'));
    const rows = (ext) => {
      const b = fs.readFileSync(path.join(EMB, name + ext));
      const f = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
      const out = [];
      for (let i = 0; i < f.length; i += ref.n_embd_out) out.push(f.subarray(i, i + ref.n_embd_out));
      return out;
    };
    return { ref, emb: rows('.emb.f32'), norm: rows('.emb_norm.f32'), tok: rows('.tok.f32') };
  };
  const rel = (a, b) => {
    let md = 0, mb = 0;
    for (let i = 0; i < b.length; i++)
      for (let k = 0; k < b[i].length; k++) {
        md = Math.max(md, Math.abs(a[i][k] - b[i][k]));
        mb = Math.max(mb, Math.abs(b[i][k]));
      }
    return md / mb;
  };

  for (const [name, tol] of [['tiny-bert-cls-F32', 1e-3], ['tiny-bert-mean-Q8_0', 5e-2], ['tiny-qwen3-last-F32', 1e-3],
                             ['tiny-gemma-embedding-mean-F32', 1e-3]]) {
    test(`embeddings: ${name} matches llama.cpp`, () => {
      const { ref, emb, norm, tok } = fixture(name);
      const m = new slm.Model(path.join(EMB, `${name}.gguf`));
      try {
        assert.strictEqual(m.nEmbdOut, ref.n_embd_out);
        assert.strictEqual(m.pooling, ref.pooling.toLowerCase());
        ref.texts.forEach((t, i) => assert.deepStrictEqual(m.tokenize(t, { parseSpecial: true }), ref.token_ids[i]));
        const s = m.session({ nCtx: 128, nThreads: 1, kvType: 'f32' });
        try {
          const got = s.embed(ref.texts);
          assert.strictEqual(got.length, 8);
          assert.ok(got[0] instanceof Float32Array);
          assert.ok(rel(got, emb) < tol, `rel ${rel(got, emb)}`);
          for (let i = 0; i < 8; i++)
            for (let j = 0; j < 8; j++)
              assert.ok(Math.abs(slm.cosine(got[i], got[j]) - ref.cosine_matrix[i][j]) < 2e-3);
          assert.ok(rel(s.embed(ref.texts, { normalize: true }), norm) < tol);
          const rows = s.embed(ref.texts[7], { pooling: 'none' });
          assert.strictEqual(rows.length, tok.length);
          assert.ok(rel(rows, tok) < 2 * tol);
          const one = s.embedTokens(ref.token_ids[7], { pooling: 'cls' });
          assert.strictEqual(one.length, ref.n_embd_out);
        } finally {
          s.close();
        }
      } finally {
        m.close();
      }
    });
  }

  test('embeddings: errors', () => {
    const m = new slm.Model(path.join(EMB, 'tiny-bert-cls-F32.gguf'));
    try {
      assert.strictEqual(m.isEncoder, true);
      const s = m.session({ nCtx: 16, nThreads: 1 });
      try {
        assert.throws(() => s.embed('x', { pooling: 'max' }), slm.InvalidArgumentError);
        assert.throws(() => s.embed('a text that is much too long for a context of sixteen tokens, as it goes on'),
                      slm.ContextFullError);
        assert.throws(() => s.decode([101, 102]), slm.UnsupportedError);
        assert.strictEqual(s.embed('still works').length, 32);
      } finally {
        s.close();
      }
    } finally {
      m.close();
    }
    assert.strictEqual(slm.cosine([0, 0], [0, 0]), 1);
    assert.strictEqual(slm.cosine([1, 0], [0, 0]), 0);
    assert.throws(() => slm.cosine([1], [1, 2]), slm.InvalidArgumentError);
  });
};
