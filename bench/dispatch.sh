#!/usr/bin/env bash
# make bench-dispatch: the portable build against the native one.
#
# Builds the CLI the way a vendoring project does, with no target flags and
# no OpenMP (`cc -O2 examples/slm.c slm.c -lm`: runtime dispatch picks the
# kernels), and with -march=native (the same sources; -DSLM_NO_DISPATCH
# makes it the fixed build of the Makefile's NATIVE=1), then runs
# `slm bench` on each model alternately, ROUNDS times, and prints the
# median pp/tg of each build and their ratio. On an AVX-512 machine it also
# runs the portable build with --isa avx2 to show what the AVX-512 kernels
# bring.
#
# Env: MODELS (GGUF files; default: the SmolLM2-135M-shape Q4_0, Q8_0 and
# Q4_K_M of make bench-models), THREADS (1), ROUNDS (3), CC.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-cc}
OUT=${OUT:-build/bench-dispatch}
BENCH_DIR=${BENCH_DIR:-build/bench-models}
MODELS=${MODELS:-"$BENCH_DIR/smollm2-135m-Q4_0.gguf $BENCH_DIR/smollm2-135m-Q8_0.gguf $BENCH_DIR/smollm2-135m-Q4_K_M.gguf"}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
OMPFLAG=""
[ "$THREADS" = 1 ] || OMPFLAG=-fopenmp   # more threads need OpenMP in both builds
$CC -O2 $OMPFLAG -I. examples/slm.c slm.c -o "$OUT/slm-portable" -lm
$CC -O2 $OMPFLAG -march=native -DSLM_NO_DISPATCH -I. examples/slm.c slm.c -o "$OUT/slm-native" -lm
echo "portable: $("$OUT/slm-portable" version)"
echo "native:   $("$OUT/slm-native" version)"
# name|binary|options after the command (the CLI takes --isa there)
variants=("portable|$OUT/slm-portable|" "native|$OUT/slm-native|")
if "$OUT/slm-portable" version | grep -q 'cpu=avx512'; then variants+=("portable-avx2|$OUT/slm-portable|--isa avx2"); fi

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for model in $MODELS; do
  [ -f "$model" ] || { echo "missing $model (make bench-models)"; exit 1; }
  for ((r = 0; r < ROUNDS; r++)); do
    for v in "${variants[@]}"; do
      IFS='|' read -r name bin opts <<< "$v"
      $bin bench $opts -m "$model" -t "$THREADS" -p 128 -n 64 -r 3 --csv | awk -F, -v n="$name" '{print n, $4, $5}' \
        >> "$OUT/$(basename "$model").raw"
    done
  done
done
printf '\n| model | threads | build | pp128 t/s | tg64 t/s | pp vs native | tg vs native |\n|---|--:|---|--:|--:|--:|--:|\n'
for model in $MODELS; do
  raw="$OUT/$(basename "$model").raw"
  npp=$(awk '$1=="native" && $2=="pp128" {print $3}' "$raw" | median)
  ntg=$(awk '$1=="native" && $2=="tg64" {print $3}' "$raw" | median)
  for v in "${variants[@]}"; do
    IFS='|' read -r name _ <<< "$v"
    pp=$(awk -v n="$name" '$1==n && $2=="pp128" {print $3}' "$raw" | median)
    tg=$(awk -v n="$name" '$1==n && $2=="tg64" {print $3}' "$raw" | median)
    printf '| %s | %s | %s | %.1f | %.1f | %.2f | %.2f |\n' "$(basename "$model" .gguf)" "$THREADS" "$name" "$pp" "$tg" \
      "$(echo "$pp / $npp" | bc -l)" "$(echo "$tg / $ntg" | bc -l)"
  done
  rm -f "$raw"
done
