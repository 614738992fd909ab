'use strict';
// The asynchronous API: generateAsync and stream() run slm_generate on a
// worker thread, so the event loop keeps running (a timer fires while a long
// generation is under way); the text equals the synchronous call's; break
// and AbortSignal stop it; the session is busy meanwhile and usable after;
// unknown options are refused. Ends with "node async: N passed, N failed".

const assert = require('assert');
const path = require('path');
const slm = require('./index.js');

const demo = path.join(__dirname, '..', '..', 'tests', 'data', 'demo', 'kjv-1m-q8_0.gguf');
const tests = [];
const test = (name, fn) => tests.push([name, fn]);

test('generateAsync gives the synchronous text, and the event loop runs meanwhile', async () => {
  const m = new slm.Model(demo);
  const s = m.session({ nCtx: 4096, nThreads: 1 });
  const sync = s.generate('And the LORD said', { maxTokens: 24, temperature: 0 });
  s.rewind(0);
  const pieces = [];
  const r = await s.generateAsync('And the LORD said', { maxTokens: 24, temperature: 0, onText: (p) => { pieces.push(p); } });
  assert.strictEqual(r.text, sync.text);
  assert.deepStrictEqual(r.tokens, sync.tokens);
  assert.strictEqual(pieces.join(''), sync.text);
  // a long generation: timers fire while it runs
  s.rewind(0);
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 1);
  const long = await s.generateAsync('And', { maxTokens: 3000, temperature: 1, topK: 0, topP: 1, minP: 0, seed: 3,
                                              onText: () => false });
  clearInterval(timer);
  assert.ok(long.nGenerated > 100, `generated ${long.nGenerated}`);
  assert.ok(ticks > 0, `the event loop ran during generation (${ticks} timer ticks, ${long.genMs.toFixed(1)} ms)`);
  console.log(`     ${long.nGenerated} tokens in ${long.genMs.toFixed(0)} ms, ${ticks} timer ticks meanwhile`);
  s.close();
  m.close();
});

test('stream(): for await, break stops, the session is busy meanwhile and usable after', async () => {
  const m = new slm.Model(demo);
  const s = m.session({ nCtx: 256, nThreads: 1 });
  const sync = s.generate('And the LORD said', { maxTokens: 16, temperature: 0 });
  s.rewind(0);
  let text = '';
  const it = s.stream('And the LORD said', { maxTokens: 16, temperature: 0 });
  for await (const piece of it) text += piece;
  assert.strictEqual(text, sync.text);
  assert.strictEqual(it.result.text, sync.text);
  s.rewind(0);
  let n = 0;
  for await (const piece of s.stream('And the LORD said', { maxTokens: 0, temperature: 0 })) {
    assert.ok(typeof piece === 'string');
    assert.throws(() => s.decode([1]), /busy/);
    if (++n === 3) break;
  }
  assert.ok(s.pos < 40, `stopped early (pos ${s.pos})`);
  const after = s.generate(' And', { maxTokens: 4, temperature: 0 });
  assert.strictEqual(after.nGenerated, 4);
  s.close();
  m.close();
});

test('AbortSignal stops generateAsync; close() during a generation waits for it', async () => {
  const m = new slm.Model(demo);
  const s = m.session({ nCtx: 4096, nThreads: 1 });
  const ac = new AbortController();
  let n = 0;
  const r = await s.generateAsync('And', { maxTokens: 0, temperature: 1, onText: () => { if (++n === 5) ac.abort(); },
                                           signal: ac.signal });
  assert.strictEqual(r.stop, 'callback');
  assert.ok(r.nGenerated <= 7, `stopped after ${r.nGenerated}`);
  const p = s.generateAsync('And', { maxTokens: 2000, temperature: 1 });
  m.close(); // deferred until the generation ends (it is told to stop)
  const r2 = await p;
  assert.strictEqual(r2.stop, 'callback');
  assert.throws(() => s.pos, /closed/);
});

test('unknown options are refused', async () => {
  const m = new slm.Model(demo);
  const s = m.session({ nCtx: 64, nThreads: 1 });
  assert.throws(() => s.generate('x', { maxToken: 4 }), /unknown option 'maxToken'/);
  await assert.rejects(s.generateAsync('x', { temprature: 0 }), /unknown option 'temprature'/);
  assert.throws(() => m.session({ nCtxx: 4 }), /unknown option 'nCtxx'/);
  assert.throws(() => m.session({ nCtx: 1e12 }), /nCtx must be an integer/);
  assert.throws(() => m.tokenize('x', { addBos: true }), /unknown option 'addBos'/);
  assert.throws(() => new slm.Model(demo, { mmap: false }), /unknown option 'mmap'/);
  s.close();
  m.close();
});

(async () => {
  let passed = 0, failed = 0;
  for (const [name, fn] of tests) {
    try {
      await fn();
      passed++;
      console.log(`ok   ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}\n${e && e.stack ? e.stack : e}`);
    }
  }
  console.log(`node async: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
})();
