'use strict';
// Tests of the Node.js binding against the real fixtures in tests/data.
// Ends with one line "node: N passed, N failed"; exit status 1 on a failure.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const slm = require('./index.js');

const ROOT = path.join(__dirname, '..', '..');
const DATA = path.join(ROOT, 'tests', 'data');
const DEMO = path.join(DATA, 'demo');
const MODELS = path.join(DATA, 'models');
const TOKDIR = path.join(DATA, 'tokenizer');
const REF = JSON.parse(fs.readFileSync(path.join(DEMO, 'kjv-1m.ref.json'), 'utf8')).results;
const PROMPTS = ['In the beginning', 'And the LORD said', 'Blessed are the'];
const demo = (f = 'kjv-1m-q8_0.gguf') => path.join(DEMO, f);
const koffi = slm._internal.koffi;

const tests = [];
const test = (name, fn) => tests.push([name, fn]);

function withModel(file, opts, fn) {
  const m = new slm.Model(file, opts);
  try { return fn(m); } finally { m.close(); }
}

function session(m, o = {}) {
  return m.session(Object.assign({ nCtx: 256, nThreads: 1, kvType: 'f32' }, o));
}

test('version matches slm.h, layouts match', () => {
  const h = fs.readFileSync(path.join(ROOT, 'slm.h'), 'utf8');
  assert.strictEqual(slm.version(), h.match(/#define SLM_VERSION_STRING "([^"]+)"/)[1]);
  assert.deepStrictEqual(slm.checkLayouts(), []);
});

test('a wrong struct layout is caught', () => {
  const s = slm._internal.structs;
  const swapped = koffi.struct('bad_sampler', {
    top_k: 'int32_t', temperature: 'float', top_p: 'float', min_p: 'float', repeat_penalty: 'float',
    repeat_last_n: 'int32_t', frequency_penalty: 'float', presence_penalty: 'float', seed: 'uint64_t',
  });
  assert.ok(slm.checkLayouts({ slm_sampler_params: swapped }).length > 0);
  const short = koffi.struct('bad_gen', {
    max_tokens: 'int32_t', stop: 'void *', n_stop: 'int32_t', add_special: 'int', parse_special: 'int',
    emit_special: 'int', sampler: s.slm_sampler_params, on_text: 'void *', tokens_out: 'void *', tokens_cap: 'int32_t',
  });
  const p = slm.checkLayouts({ slm_generate_params: short });
  assert.ok(p.length === 1 && /writes 112 bytes/.test(p[0]), p.join());
  // a binding that does not know the grammar field
  const old = koffi.struct('old_sampler', {
    temperature: 'float', top_k: 'int32_t', top_p: 'float', min_p: 'float', repeat_penalty: 'float',
    repeat_last_n: 'int32_t', frequency_penalty: 'float', presence_penalty: 'float', seed: 'uint64_t',
  });
  assert.ok(slm.checkLayouts({ slm_sampler_params: old }).length > 0);
});

test('grammars: JSON output parses, schema output validates, errors name line and keyword', () => {
  withModel(demo(), {}, (m) => {
    const s = session(m);
    const json = slm.Grammar.json(m);
    let complete = 0;
    for (let seed = 1; seed <= 10; seed++) {
      s.rewind(0);
      const g = s.generate('And the LORD said', { grammar: json, maxTokens: 300, temperature: 1.5, topK: 0, topP: 1,
                                                  minP: 0, seed });
      if (g.stop === 'grammar' || g.stop === 'eog') {
        const v = JSON.parse(g.text); // throws on anything that is not JSON
        assert.strictEqual(typeof v, 'object');
        complete++;
      }
    }
    assert.ok(complete > 0);
    json.close();
    const schema = { type: 'object', properties: { color: { enum: ['red', 'green', 'blue'] },
                                                   n: { type: 'integer' }, ok: { type: 'boolean' } },
                     required: ['color', 'n', 'ok'], additionalProperties: false };
    const sg = slm.Grammar.fromSchema(m, schema);
    for (let seed = 1; seed <= 10; seed++) {
      s.rewind(0);
      const g = s.generate('And the LORD said', { grammar: sg, maxTokens: 300, temperature: 1.5, topK: 0, topP: 1,
                                                  minP: 0, seed });
      assert.strictEqual(g.stop, 'grammar', g.text);
      const v = JSON.parse(g.text);
      assert.deepStrictEqual(Object.keys(v), ['color', 'n', 'ok']);
      assert.ok(['red', 'green', 'blue'].includes(v.color) && Number.isInteger(v.n) && typeof v.ok === 'boolean');
    }
    sg.close();
    assert.throws(() => new slm.Grammar(m, 'root ::= "a"\nroot ::= x\n'), (e) => e instanceof slm.FormatError &&
                  /line 2, column 1/.test(e.message));
    assert.throws(() => slm.jsonSchemaToGrammar({ type: 'string', pattern: 'a+' }),
                  (e) => e instanceof slm.UnsupportedError && /'pattern'/.test(e.message));
    assert.throws(() => s.generate('x', { grammar: 'root ::= "a"' }), slm.InvalidArgumentError);
    assert.ok(slm.jsonGrammar().startsWith('root'));
    s.close();
  });
});

test('every ISA the CPU runs gives the same greedy text; unknown ones are refused', () => {
  const texts = new Set();
  for (const isa of ['scalar', 'sse4', 'avx2', 'avx512', 'neon', 'dotprod', 'i8mm', 'rvv', 'mve']) {
    let m;
    try {
      m = new slm.Model(demo('kjv-1m-q8_0.gguf'), { isa });
    } catch (e) {
      assert.ok(e instanceof slm.UnsupportedError && e.message.includes(isa), e.message);
      continue;
    }
    assert.strictEqual(m.isa, isa);
    texts.add(session(m).generate('And the LORD said', { maxTokens: 16, temperature: 0 }).text);
    m.close();
  }
  assert.strictEqual(texts.size, 1, [...texts].join(' | '));
  assert.throws(() => new slm.Model(demo('kjv-1m-q8_0.gguf'), { isa: 'avx1024' }), RangeError);
});

test('greedy generation equals llama.cpp (F32, F16 files)', () => {
  for (const f of ['kjv-1m-f32.gguf', 'kjv-1m-f16.gguf']) {
    withModel(demo(f), {}, (m) => {
      for (const p of PROMPTS) {
        const r = REF[f][p];
        const s = session(m);
        const g = s.generate(p, { maxTokens: 32, temperature: 0 });
        assert.deepStrictEqual(g.tokens, r.greedy_ids, `${f} ${p}`);
        assert.strictEqual(g.text, r.greedy_text.slice(1)); // ref text has one extra leading space
        assert.strictEqual(g.stop, 'max_tokens');
        assert.strictEqual(g.nPrompt, r.prompt_ids.length);
        assert.strictEqual(s.pos, r.prompt_ids.length + 32);
        s.close();
      }
    });
  }
});

test('tokenize: demo prompt ids, llama.cpp vectors', () => {
  withModel(demo(), {}, (m) => {
    for (const p of PROMPTS) {
      assert.deepStrictEqual(m.tokenize(p), REF['kjv-1m-q8_0.gguf'][p].prompt_ids);
      const r = REF['kjv-1m-q8_0.gguf'][p];
      assert.strictEqual(m.detokenize(r.prompt_ids.slice(1).concat(r.greedy_ids)), p + r.greedy_text.slice(1));
    }
    assert.strictEqual(m.bos, 1);
    assert.strictEqual(m.eos, 2);
    assert.ok(m.isEog(2));
  });
  const sep = '\n__ggml_vocab_test__\n';
  for (const v of ['ggml-vocab-llama-spm', 'ggml-vocab-gpt-2']) {
    const base = path.join(TOKDIR, v + '.gguf');
    const inputs = fs.readFileSync(base + '.inp').toString('utf8').split(sep).slice(0, -1);
    const outs = fs.readFileSync(base + '.out', 'utf8').split('\n');
    withModel(base, { vocabOnly: true }, (m) => {
      inputs.forEach((text, i) => {
        const want = outs[i].trim() ? outs[i].trim().split(/\s+/).map(Number) : [];
        assert.deepStrictEqual(m.tokenize(text, { addSpecial: false }), want, `${v} input ${i}`);
      });
    });
  }
});

test('streaming callback pieces, stopping from the callback, exceptions', () => {
  withModel(demo(), {}, (m) => {
    const s = session(m);
    const full = REF['kjv-1m-q8_0.gguf']['And the LORD said'].greedy_text.slice(1);
    const pieces = [];
    const g = s.generate('And the LORD said', { maxTokens: 32, temperature: 0, onText: (t) => { pieces.push(t); } });
    assert.ok(pieces.length > 10);
    assert.strictEqual(pieces.join(''), full);
    assert.strictEqual(g.text, full);
    s.rewind(0);
    let n = 0;
    const g2 = s.generate('And the LORD said', { maxTokens: 32, temperature: 0, onText: () => ++n === 3 });
    assert.strictEqual(g2.stop, 'callback');
    assert.strictEqual(n, 3);
    s.rewind(0);
    assert.throws(() => s.generate('And the LORD said', { temperature: 0, onText: () => { throw new RangeError('boom'); } }),
                  RangeError);
    s.close();
  });
});

test('stop strings', () => {
  withModel(demo(), {}, (m) => {
    const s = session(m);
    const full = REF['kjv-1m-q8_0.gguf']['And the LORD said'].greedy_text.slice(1);
    const cases = [
      ['Israel', ' unto Moses, Speak unto the children of ', 'stop_string'],
      ['es, Spe', ' unto Mos', 'stop_string'],
      [['burnt', 'children'], ' unto Moses, Speak unto the ', 'stop_string'],
      ['xyzzy', full, 'max_tokens'],
    ];
    for (const [stop, want, why] of cases) {
      s.rewind(0);
      const g = s.generate('And the LORD said', { maxTokens: 32, temperature: 0, stop });
      assert.strictEqual(g.text, want, String(stop));
      assert.strictEqual(g.stop, why);
    }
    s.close();
  });
});

test('errors carry the status and the library message', () => {
  assert.throws(() => new slm.Model(path.join(os.tmpdir(), 'no-such-dir-slm', 'missing.gguf')),
                (e) => e instanceof slm.SlmIOError && e instanceof slm.SlmError && e.status === -2 &&
                       /missing\.gguf/.test(e.message));
  const garbage = path.join(os.tmpdir(), `slm-garbage-${process.pid}.gguf`);
  fs.writeFileSync(garbage, 'this is not a model\n'.repeat(10));
  try {
    assert.throws(() => new slm.Model(garbage), (e) => e instanceof slm.FormatError && e.status === -3 &&
                                                       /not a GGUF file/.test(e.message));
  } finally {
    fs.unlinkSync(garbage);
  }
  withModel(demo(), {}, (m) => {
    const s = session(m, { nCtx: 8 });
    assert.throws(() => s.decode([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), (e) => e instanceof slm.ContextFullError &&
                                                                      /n_ctx 8/.test(e.message));
    assert.throws(() => s.decode([5000]), (e) => e instanceof slm.InvalidArgumentError && /5000/.test(e.message));
    assert.throws(() => m.chatFormat([{ role: 'user', content: 'x' }], { template: 'nope' }), slm.InvalidArgumentError);
    m.close();
    assert.throws(() => s.decode([1]), slm.InvalidArgumentError); // closing the model closed its sessions
  });
});

test('logits of every position equal llama.cpp (tiny llama F32)', () => {
  const ref = JSON.parse(fs.readFileSync(path.join(MODELS, 'tiny-llama-F32.ref.json'), 'utf8'));
  const raw = fs.readFileSync(path.join(MODELS, 'tiny-llama-F32.logits.f32'));
  withModel(path.join(MODELS, 'tiny-llama-F32.gguf'), {}, (m) => {
    const s = m.session({ nCtx: 128, nThreads: 1, kvType: 'f32', logitsAll: true });
    s.decode(ref.input_ids);
    let worst = 0;
    for (let row = 0; row < 16; row++) {
      const got = s.logits(row);
      assert.strictEqual(got.length, 384);
      for (let k = 0; k < 384; k++) worst = Math.max(worst, Math.abs(got[k] - raw.readFloatLE((row * 384 + k) * 4)));
    }
    assert.ok(worst / ref.max_abs_logit <= 1e-3, `rel ${worst / ref.max_abs_logit}`);
    const g = s.generate('', { maxTokens: 16, temperature: 0 });
    assert.deepStrictEqual(g.tokens, ref.greedy_ids);
    s.close();
  });
});

test('chat templates and a chat reply', () => {
  const msgs = [{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }];
  withModel(path.join(TOKDIR, 'ggml-vocab-phi-3.gguf'), { vocabOnly: true }, (m) => {
    assert.deepStrictEqual(m.chatFamily(), { family: 'phi3', fallback: false });
    assert.strictEqual(m.chatFormat(msgs), '<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n');
  });
  assert.strictEqual(slm.chatFormat(msgs, { template: 'chatml' }),
                     '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n');
  withModel(path.join(MODELS, 'tiny-qwen2-Q8_0.gguf'), {}, (m) => {
    const s = m.session({ nCtx: 128, nThreads: 1 });
    const text = m.chatFormat(msgs);
    const want = s.generate(text, { parseSpecial: true, maxTokens: 8, temperature: 0 });
    assert.strictEqual(want.nPrompt, m.tokenize(text, { parseSpecial: true }).length);
    const got = s.chat(msgs, { maxTokens: 8, temperature: 0 });
    assert.deepStrictEqual(got.tokens, want.tokens);
    assert.strictEqual(got.text, want.text);
    s.close();
  });
});

test('load from a Buffer', () => {
  const buf = fs.readFileSync(demo());
  const m = slm.Model.fromBuffer(buf);
  const s = session(m);
  const r = REF['kjv-1m-q8_0.gguf']['Blessed are the'];
  assert.deepStrictEqual(s.generate('Blessed are the', { maxTokens: 32, temperature: 0 }).tokens, r.greedy_ids);
  m.close();
});

test('process exits cleanly after multi-threaded decoding', () => {
  const code = `const slm = require(${JSON.stringify(path.join(__dirname, 'index.js'))});
    const m = new slm.Model(${JSON.stringify(demo())});
    const s = m.session({ nCtx: 128, nThreads: 0 });
    s.generate('In the beginning', { maxTokens: 8 });
    console.log('ok');`;
  const p = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60000 });
  assert.strictEqual(p.status, 0, `exit ${p.status} signal ${p.signal} ${p.stderr}`);
  assert.strictEqual(p.stdout.trim(), 'ok');
});

test('the README example runs', () => {
  // the package README's first example (section "Use")
  const readme = fs.readFileSync(path.join(ROOT, 'examples', 'node', 'README.md'), 'utf8');
  const m = readme.match(/\n## Use\n[\s\S]*?```js\n([\s\S]*?)```/);
  assert.ok(m);
  // run from the repository root, with require('./examples/node') resolving there
  const p = spawnSync(process.execPath, ['-e', m[1]], { cwd: ROOT, encoding: 'utf8', timeout: 60000 });
  assert.strictEqual(p.status, 0, p.stderr);
  assert.ok(p.stdout.startsWith(' unto Moses, Speak unto the children of \n'), p.stdout);
  assert.ok(p.stdout.includes("true -2 cannot open 'missing.gguf'"), p.stdout);
});

require('./test_embed.js')(test, slm, ROOT);

let passed = 0, failed = 0;
for (const [name, fn] of tests) {
  try {
    fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n${e && e.stack ? e.stack : e}`);
  }
}
console.log(`node: ${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
