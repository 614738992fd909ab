#!/usr/bin/env bash
# make test-cross: build the library and the test runner for each emulated
# target with its cross compiler, run the runner under qemu-user, and fail
# if any run fails or does not end with "N passed, 0 failed".
# Toolchains: tools/install-cross.sh. Logs: $OUT/<run>.log.
#
# Env: JOBS (parallel runs, default: number of CPUs), ONLY (space-separated
# run names to do), TEST_SRC (the test sources, from the Makefile).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-build/cross}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
# (run directly, the list comes from the Makefile, so it cannot go stale)
TEST_SRC=${TEST_SRC:-$(make -s --no-print-directory print-test-src)}
CFLAGS_COMMON="-std=c99 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes"
mkdir -p "$OUT"

# build name | compiler and target flags | SIMD path the build must report
# - gcc 12 has no RVV intrinsics: clang-19 with the gcc cross sysroot; no
#   OpenMP for riscv64 in bookworm's clang, so that build is single-threaded.
#   -fno-vectorize: qemu 7.2 aborts on the vfcvt.rtz instructions clang's
#   auto-vectorizer emits for float->int casts (qemu issue 1441); the RVV
#   kernels are intrinsics and unaffected.
# - ARMv7: GCC's half-precision NEON types need -mfp16-format=ieee.
BUILDS=(
  "aarch64-base|aarch64-linux-gnu-gcc -march=armv8-a -fopenmp|"
  "aarch64-fixed-dotprod|aarch64-linux-gnu-gcc -march=armv8.2-a+dotprod -DSLM_NO_DISPATCH -fopenmp|dotprod"
  "armv7-neon|arm-linux-gnueabihf-gcc -mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard -mfp16-format=ieee -fopenmp|neon32"
  "riscv64-rvv|clang-19 --target=riscv64-linux-gnu -march=rv64gcv -fno-vectorize -fno-slp-vectorize|rvv"
  "x86-64-base|gcc -march=x86-64 -fopenmp|"
  "x86-64-fixed-avx2|gcc -march=haswell -DSLM_NO_DISPATCH -fopenmp|avx2"
  "x86-64-scalar|gcc -march=x86-64 -DSLM_NO_SIMD -fopenmp|scalar"
  "s390x|s390x-linux-gnu-gcc -fopenmp|scalar"
)
# run name | build | emulator command ("env": runs natively) | the kernels the
# run must choose, when they depend on the CPU (default: the build's)
# - x86-64-base and aarch64-base are portable builds (runtime dispatch), each
#   run on three CPUs
# (the slow RVV runs first, so that parallel jobs finish together)
RUNS=(
  "riscv64-rvv-vlen128|riscv64-rvv|qemu-riscv64 -cpu rv64,v=true,vlen=128,vext_spec=v1.0 -L /usr/riscv64-linux-gnu"
  "riscv64-rvv-vlen256|riscv64-rvv|qemu-riscv64 -cpu rv64,v=true,vlen=256,vext_spec=v1.0 -L /usr/riscv64-linux-gnu"
  "aarch64-a53|aarch64-base|qemu-aarch64 -cpu cortex-a53 -L /usr/aarch64-linux-gnu|neon"
  "aarch64-a76|aarch64-base|qemu-aarch64 -cpu cortex-a76 -L /usr/aarch64-linux-gnu|dotprod"
  "aarch64-max|aarch64-base|qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu|i8mm"
  "aarch64-fixed-dotprod|aarch64-fixed-dotprod|qemu-aarch64 -cpu cortex-a76 -L /usr/aarch64-linux-gnu"
  "armv7-neon|armv7-neon|qemu-arm -cpu cortex-a7 -L /usr/arm-linux-gnueabihf"
  "x86-64-nehalem|x86-64-base|qemu-x86_64 -cpu Nehalem|sse4"
  "x86-64-haswell|x86-64-base|qemu-x86_64 -cpu Haswell|avx2"
  "x86-64-qemu64|x86-64-base|qemu-x86_64 -cpu qemu64|scalar"
  "x86-64-fixed-avx2|x86-64-fixed-avx2|env"
  "x86-64-scalar|x86-64-scalar|env"
  "s390x|s390x|qemu-s390x -L /usr/s390x-linux-gnu"
)
# compile-only checks of other configurations (library object, -Werror)
COMPILE_ONLY=(
  "armv7-neon-vfpv3|arm-linux-gnueabihf-gcc -mcpu=cortex-a8 -mfpu=neon -mfloat-abi=hard"
  "aarch64-dotprod-clang|clang-19 --target=aarch64-linux-gnu -march=armv8.2-a+dotprod"
  "aarch64-base-clang|clang-19 --target=aarch64-linux-gnu -march=armv8-a"
  "aarch64-armv86-gcc|aarch64-linux-gnu-gcc -march=armv8.6-a"
  "armv7-neon-clang|clang-19 --target=armv7a-linux-gnueabihf -mfpu=neon-vfpv4"
  "x86-64-avx2-clang|clang-19 -march=haswell"
  "riscv64-scalar|riscv64-linux-gnu-gcc -march=rv64gc"
)

wanted() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

fail=0
declare -A built

# "compiler flags..." -> "compiler $CFLAGS_COMMON flags..." (the target's flags
# come last: with clang, -O2 after -fno-vectorize would turn it back on)
cmd() { local c=${1%% *} f=""; [ "$c" != "$1" ] && f=${1#* }; echo "$c $CFLAGS_COMMON $f"; }

build() { # name, compiler...
  local name=$1 cc d="$OUT/$1"
  cc=$(cmd "$2")
  mkdir -p "$d"
  # the library alone, warnings are errors
  if ! $cc -Werror -c slm.c -o "$d/slm.o" > "$d/build.log" 2>&1 ||
     ! ar rcs "$d/libslm.a" "$d/slm.o" >> "$d/build.log" 2>&1 ||
     ! $cc -Wno-unused-function -I. $TEST_SRC -o "$d/run_tests" -lm >> "$d/build.log" 2>&1; then
    echo "FAIL build $name: $cc"; tail -20 "$d/build.log"; return 1
  fi
  echo "built $name: $cc"
}

for c in "${COMPILE_ONLY[@]}"; do
  IFS='|' read -r name cc <<< "$c"
  wanted "$name" || continue
  if $(cmd "$cc") -Werror -c slm.c -o /dev/null > "$OUT/$name.log" 2>&1; then
    echo "compiled $name: $cc"
  else
    echo "FAIL compile $name: $cc"; tail -20 "$OUT/$name.log"; fail=1
  fi
done

for b in "${BUILDS[@]}"; do
  IFS='|' read -r name cc simd <<< "$b"
  need=0
  for r in "${RUNS[@]}"; do IFS='|' read -r rn rb _ <<< "$r"; [ "$rb" = "$name" ] && wanted "$rn" && need=1; done
  [ $need = 1 ] || continue
  if build "$name" "$cc"; then built[$name]=$simd; else fail=1; fi
done

# one run: the emulated test runner, reduced model variants (SLM_TEST_QUICK)
run() { # run name, build, emulator, expected kernels
  local rn=$1 rb=$2 emu=$3 want=${4:-${built[$2]}} log="$OUT/$1.log" t0=$SECONDS st=0
  SLM_TEST_QUICK=1 OMP_WAIT_POLICY=passive timeout 1800 $emu "$OUT/$rb/run_tests" > "$log" 2>&1 || st=$?
  local last secs=$((SECONDS - t0)) simd
  last=$(tail -n 1 "$log")
  simd=$(sed -n 's/^  simd path: //p' "$log" | head -n 1)
  if [ $st = 0 ] && [[ "$last" =~ ^[0-9]+\ passed,\ 0\ failed$ ]] && [ "$simd" = "$want" ]; then
    printf 'pass %-22s %-28s simd=%-13s %4d s  (%s)\n' "$rn" "$last" "$simd" "$secs" "$emu" > "$log.result"
  else
    printf 'FAIL %-22s %-28s simd=%-13s %4d s  exit %d, expected simd=%s (%s)\n' "$rn" "$last" "$simd" "$secs" \
      "$st" "$want" "$emu" > "$log.result"
    grep '^FAIL' "$log" | head -20 >> "$log.result"
  fi
  cat "$log.result"
}

running=0
order=()
for r in "${RUNS[@]}"; do
  IFS='|' read -r rn rb emu want <<< "$r"
  wanted "$rn" || continue
  if [ -z "${built[$rb]+x}" ]; then echo "FAIL $rn: build $rb failed"; fail=1; continue; fi
  rm -f "$OUT/$rn.log.result"
  order+=("$rn")
  run "$rn" "$rb" "$emu" "$want" &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

echo "---- make test-cross summary ----"
for rn in "${order[@]}"; do
  if [ -f "$OUT/$rn.log.result" ]; then head -n 1 "$OUT/$rn.log.result"; else echo "FAIL $rn: no result"; fi
  grep -q '^pass' "$OUT/$rn.log.result" 2>/dev/null || fail=1
done
if [ $fail = 0 ]; then echo "test-cross: all targets passed"; else echo "test-cross: FAILED"; fi
exit $fail
