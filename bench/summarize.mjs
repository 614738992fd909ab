// Summarize bench/compare.sh's CSV (model,type,engine,threads,test,median,min,max,mem_kib):
// the median over rounds per engine, the ratio, and peak memory.
import {readFileSync} from "node:fs";

const rows = readFileSync(process.argv[2], "utf8").trim().split("\n").map(l => l.split(","));
const med = v => { const s = [...v].sort((a, b) => a - b); const n = s.length;
                   return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const runs = new Map(), mem = new Map();
for (const [model, type, engine, threads, test, median, , , kib] of rows) {
    const k = [model, type, threads, test].join("|");
    if (!runs.has(k)) runs.set(k, {slm: [], "llama.cpp": []});
    runs.get(k)[engine].push(+median);
    const mk = model + "|" + type + "|" + engine;
    mem.set(mk, Math.max(mem.get(mk) ?? 0, +kib));
}
console.log("| model | type | threads | test | slm t/s | llama.cpp t/s | slm / llama.cpp |");
console.log("|---|---|---:|---|---:|---:|---:|");
for (const [k, v] of runs) {
    const [model, type, threads, test] = k.split("|");
    const a = med(v.slm), b = med(v["llama.cpp"]);
    console.log(`| ${model} | ${type} | ${threads} | ${test} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(a / b).toFixed(2)}x |`);
}
console.log("\n| model | type | slm peak RSS (MiB) | llama.cpp added peak RSS (MiB) |\n|---|---|---:|---:|");
for (const [k, v] of mem) {
    const [model, type, engine] = k.split("|");
    if (engine === "slm")
        console.log(`| ${model} | ${type} | ${(v / 1024).toFixed(1)} | ${((mem.get(model + "|" + type + "|llama.cpp") ?? 0) / 1024).toFixed(1)} |`);
}
