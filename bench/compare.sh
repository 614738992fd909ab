#!/usr/bin/env bash
# make bench-compare: slm against llama.cpp on the same generated files, same
# machine, same thread counts, run alternately (slm, llama.cpp, slm, ...).
#
# llama.cpp comes from the npm registry: node-llama-cpp ships prebuilt
# llama.cpp CPU libraries and picks the variant for this CPU. Its Node layer
# adds a few percent per call, and it starts a thread per decode call, which
# depresses its 2-thread generation numbers: that column is reported as is.
#
# Environment: SHAPES, TYPES, THREADS (1,2), P (128), N (64), R (5), ROUNDS (2),
# BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHAPES=${SHAPES:-"smollm2-135m qwen2.5-0.5b"}
TYPES=${TYPES:-"Q4_0 Q8_0 Q4_K_M"}
THREADS=${THREADS:-1,2}
P=${P:-128} N=${N:-64} R=${R:-5} ROUNDS=${ROUNDS:-2}
MODELS=$BUILD/bench-models
NODE_DIR=$BUILD/node-llama-cpp
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true

command -v node >/dev/null || { echo "bench-compare: node is needed (apt-get install nodejs npm)" >&2; exit 1; }
if [ ! -d "$NODE_DIR/node_modules/node-llama-cpp" ]; then
  mkdir -p "$NODE_DIR"
  ( cd "$NODE_DIR" && npm init -y >/dev/null &&
    npm install --no-audit --no-fund --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 )
fi
cp bench/llama_bench.mjs "$NODE_DIR/llama_bench.mjs"

make -s all "$BUILD/gen_model"
mkdir -p "$MODELS"
for s in $SHAPES; do ./"$BUILD"/gen_model "$s" "$MODELS" "$(echo $TYPES | tr ' ' ',')"; done

out=$BUILD/bench-compare.csv
: > "$out"
for s in $SHAPES; do
  for t in $TYPES; do
    f=$MODELS/$s-$t.gguf
    for th in ${THREADS//,/ }; do
      for ((round = 0; round < ROUNDS; round++)); do
        ./"$BUILD"/slm bench -m "$f" -t "$th" -p "$P" -n "$N" -r "$R" --csv | sed "s/^[^,]*,[^,]*,/$s,$t,slm,/" >> "$out"
        node "$NODE_DIR/llama_bench.mjs" "$(realpath "$f")" "$th" "$P" "$N" "$R" 2>/dev/null |
          sed "s/^[^,]*,llama.cpp,/$s,$t,llama.cpp,/" >> "$out"
      done
    done
  done
done

node bench/summarize.mjs "$out"
echo "(raw runs: $out; $(./"$BUILD"/slm version))"
