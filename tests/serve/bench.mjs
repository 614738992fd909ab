// Benchmark of `slm serve` with the openai client: time to first token and
// tokens/s for 1 and N parallel clients (a benchmark, not a test: nothing here
// runs in make test).
//
//   node tests/serve/bench.mjs MODEL.gguf [--clients 1,4] [--requests 4] [--max-tokens 64] [--prompt-words 48]
//
// For each client count C a server starts with --parallel C (threads: the
// processors / C), C clients each send R streamed completions one after the
// other (every prompt different, so no prefix is reused), and the table gives
// the median time to first token, the median per-request generation speed
// (tokens after the first / time after the first) and the total throughput.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SLM = process.env.SLM_CLI || path.join(ROOT, 'build/slm');
const args = process.argv.slice(2);
const model = args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
const opt = (name, def) => {
  const i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : def;
};
if (!model) {
  console.error('usage: node tests/serve/bench.mjs MODEL.gguf [--clients 1,4] [--requests 4] [--max-tokens 64] [--prompt-words 48]');
  process.exit(1);
}
const clientsList = opt('clients', '1,4').split(',').map(Number);
const R = +opt('requests', 4), N = +opt('max-tokens', 64), W = +opt('prompt-words', 48);
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

function start(c) {
  return new Promise((resolve, reject) => {
    const proc = spawn(SLM, ['serve', '-m', model, '--port', '0', '--parallel', String(c), '-c', '1024'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve({ proc, url: `http://127.0.0.1:${m[1]}`, line: log.split('\n').find((l) => l.includes('listening')) });
    });
    proc.on('exit', (code) => reject(new Error(`server exited ${code}: ${log}`)));
  });
}

const words = 'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their'.split(' ');
console.log(`| clients | requests | prompt tokens | TTFT median (ms) | tokens/s per request (median) | tokens/s total |`);
console.log(`|--------:|---------:|--------------:|-----------------:|------------------------------:|---------------:|`);
let line = '';
for (const C of clientsList) {
  const s = await start(C);
  line = s.line;
  const openai = new OpenAI({ baseURL: s.url + '/v1', apiKey: 'x', maxRetries: 0, timeout: 600_000 });
  // warm-up: page the weights in
  await openai.completions.create({ prompt: 'warm up', max_tokens: 4, temperature: 0 });
  const ttft = [], tps = [];
  let total = 0, promptTokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, async (_, ci) => {
    for (let r = 0; r < R; r++) {
      let seed = ci * 1000 + r + 1;
      const prompt = Array.from({ length: W }, () => words[(seed = (seed * 1103515245 + 12345) % 2147483648) % words.length]).join(' ');
      const t = performance.now();
      let first = 0, n = 0, usage = null;
      const st = await openai.completions.create({ prompt, max_tokens: N, temperature: 0, stream: true, stream_options: { include_usage: true } });
      for await (const ch of st) {
        if (ch.usage) usage = ch.usage;
        if (ch.choices[0]?.text) {
          if (!first) first = performance.now();
          n++;
        }
      }
      const end = performance.now();
      ttft.push(first - t);
      if (usage) {
        total += usage.completion_tokens;
        promptTokens = usage.prompt_tokens;
        if (usage.completion_tokens > 1) tps.push((usage.completion_tokens - 1) / ((end - first) / 1000));
      }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  console.log(`| ${C} | ${C * R} | ${promptTokens} | ${median(ttft).toFixed(1)} | ${median(tps).toFixed(1)} | ${(total / wall).toFixed(1)} |`);
  s.proc.kill('SIGTERM');
  await new Promise((r) => s.proc.once('exit', r));
}
console.log(`\n${line.replace(/^slm serve: /, 'server: ')}`);
