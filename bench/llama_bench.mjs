// llama.cpp side of `make bench-compare`, through node-llama-cpp's prebuilt
// CPU libraries (no compiler, no GPU). Same protocol as `slm bench --csv`:
//   pp: P random tokens evaluated in one call on an empty context
//   tg: N tokens generated one at a time (greedy) on an empty context
// median of R repetitions after one warm-up, per thread count; then the
// memory llama.cpp added to the process (peak RSS minus the RSS before the
// model was loaded).
//
//   node bench/llama_bench.mjs MODEL THREADS(1,2) P N R
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";
import {basename} from "node:path";

const [model, tlist = "1,2", P = "128", N = "64", R = "5"] = process.argv.slice(2);
const np = +P, ng = +N, reps = +R;

function rssKiB(field) {
    const m = readFileSync("/proc/self/status", "utf8").match(new RegExp(field + ":\\s+(\\d+)"));
    return m ? +m[1] : -1;
}
function median(v) {
    const s = [...v].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const base = rssKiB("VmRSS");
const m = await llama.loadModel({modelPath: model, gpuLayers: 0});
// random ids above the special ones (the cost does not depend on which)
let rng = 88172645463325252n;
const ids = [];
for (let i = 0; i < Math.max(np, ng); i++) {
    rng ^= (rng << 13n) & 0xffffffffffffffffn; rng ^= rng >> 7n; rng ^= (rng << 17n) & 0xffffffffffffffffn;
    ids.push(3 + Number(rng % 30000n));
}
for (const t of tlist.split(",").map(Number)) {
    const ctx = await m.createContext({contextSize: np + ng + 8, batchSize: Math.max(np, 1), threads: t});
    const seq = ctx.getSequence();
    for (const [test, n] of [["pp", np], ["tg", ng]]) {
        if (n === 0) continue;
        const v = [];
        for (let k = 0; k <= reps; k++) {
            await seq.clearHistory();
            const t0 = performance.now();
            if (test === "pp") {
                await seq.evaluateWithoutGeneratingNewTokens(ids.slice(0, n));
            } else {
                let c = 0;
                for await (const tok of seq.evaluate([ids[0]], {temperature: 0})) { if (++c >= n) break; }
            }
            const dt = (performance.now() - t0) / 1000;
            if (k > 0) v.push(n / dt); /* the first run is the warm-up */
        }
        console.log(`${basename(model)},llama.cpp,${t},${test}${n},${median(v).toFixed(2)},` +
                    `${Math.min(...v).toFixed(2)},${Math.max(...v).toFixed(2)},${rssKiB("VmHWM") - base}`);
    }
    await ctx.dispose();
}
await m.dispose();
