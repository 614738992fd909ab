// Summarize bench/compare.sh's CSV as markdown tables:
//   section,model,type,engine,threads,test,tok_s,peak_rss_kib
// (one line per engine run and test; section is main or busy). The speed
// table gives the median over rounds of each engine's per-run median and the
// ratios; the memory table the largest peak RSS of each engine's processes.
//
//   node bench/summarize.mjs FILE.csv [ENGINE ...]   (default: the engines in the file)
import {readFileSync} from "node:fs";

const [file, ...want] = process.argv.slice(2);
const rows = readFileSync(file, "utf8").split("\n").filter(l => l.trim()).map(l => l.split(","));
const engines = want.length ? want : [...new Set(rows.map(r => r[3]))];
const med = v => { const s = [...v].sort((a, b) => a - b), n = s.length;
                   return !n ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const fmt = x => Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : "-";
const ratio = (a, b) => Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : "-";
const SHORT = {"llama.cpp": "llama", "ik_llama.cpp": "ik", "node-llama-cpp": "node", slm: "slm"};

// key -> engine -> [tok/s]; a run that timed out or failed leaves its word
// ("timeout", "failed"), printed when the engine has no number for the test
const why = new Map();
function collect(section) {
    const m = new Map();
    for (const [sec, model, type, engine, threads, test, tps] of rows) {
        if (sec !== section) continue;
        const k = [model, type, threads, test].join("|");
        if (!m.has(k)) m.set(k, {});
        if (+tps > 0) (m.get(k)[engine] ??= []).push(+tps);
        else why.set(section + "|" + k + "|" + engine, tps);
    }
    return m;
}
const cell = (x, section, k, e) => Number.isFinite(x) ? fmt(x) : why.get(section + "|" + k + "|" + e) ?? "-";
// the ratios printed: slm against each peer, ik_llama.cpp against llama.cpp
const pairs = [];
for (const e of engines) if (e !== "slm" && engines.includes("slm")) pairs.push(["slm", e]);
if (engines.includes("ik_llama.cpp") && engines.includes("llama.cpp")) pairs.push(["ik_llama.cpp", "llama.cpp"]);

const main = collect("main");
if (main.size) {
    console.log("Tokens/s (median), higher is better; ratios > 1 mean the first engine is faster.\n");
    console.log("| " + ["model", "type", "threads", "test", ...engines,
                        ...pairs.map(([a, b]) => `${SHORT[a]} / ${SHORT[b]}`)].join(" | ") + " |");
    console.log("|---|---|--:|---|" + engines.map(() => "--:|").join("") + pairs.map(() => "--:|").join(""));
    for (const [k, v] of main) {
        const [model, type, threads, test] = k.split("|");
        const m = Object.fromEntries(engines.map(e => [e, med(v[e] ?? [])]));
        console.log("| " + [model, type, threads, test, ...engines.map(e => cell(m[e], "main", k, e)),
                            ...pairs.map(([a, b]) => ratio(m[a], m[b]))].join(" | ") + " |");
    }
}

// peak RSS: the largest of each engine's processes, per file and run kind
const rss = new Map();
for (const [sec, model, type, engine, , test, , kib] of rows) {
    if (sec !== "main" || !(+kib > 0)) continue;
    const k = [model, type, test.includes("@d") ? `${test.replace(/^tg\d+@/, "")} run` : "pp/tg run"].join("|");
    if (!rss.has(k)) rss.set(k, {});
    rss.get(k)[engine] = Math.max(rss.get(k)[engine] ?? 0, +kib);
}
if (rss.size) {
    console.log("\nPeak RSS (MiB, the largest over threads and rounds; memory-mapped weights count once touched,\n" +
                "and tensors an engine repacks at load are a second copy: llama.cpp's Q4_0 and Q4_K,\n" +
                "all of them in ik_llama.cpp with -rtr 1):\n");
    console.log(`| model | type | run | ${engines.join(" | ")} |`);
    console.log("|---|---|---|" + engines.map(() => "--:|").join(""));
    for (const [k, v] of rss) {
        const [model, type, run] = k.split("|");
        console.log(`| ${model} | ${type} | ${run} | ${engines.map(e => v[e] ? (v[e] / 1024).toFixed(0) : "-").join(" | ")} |`);
    }
}

const busy = collect("busy");
if (busy.size) {
    const keys = [...busy.keys()];
    const [model, type, , test] = keys[0].split("|");
    console.log(`\nBusy machine: ${model} ${type} ${test} with one \`yes > /dev/null\` spinning on a core ` +
                "(tokens/s; the last row is 2 threads over 1 thread):\n");
    console.log(`| threads | ${engines.join(" | ")} |`);
    console.log("|--:|" + engines.map(() => "--:|").join(""));
    const by = {};
    for (const k of keys) {
        const th = k.split("|")[2];
        by[th] = Object.fromEntries(engines.map(e => [e, med(busy.get(k)[e] ?? [])]));
        console.log(`| ${th} | ${engines.map(e => cell(by[th][e], "busy", k, e)).join(" | ")} |`);
    }
    if (by["1"] && by["2"]) console.log(`| 2 / 1 | ${engines.map(e => ratio(by["2"][e], by["1"][e])).join(" | ")} |`);
}
