#!/usr/bin/env bash
# make bench-compare: slm against native llama.cpp and ik_llama.cpp on the
# same GGUF files, same machine, same thread counts, runs alternating
# (slm, llama.cpp, ik_llama.cpp, slm, ...). Prints a markdown table.
#
# The peers are not fetched or built here: give the paths of binaries you
# built yourself (bench/README.md says how to get them). Each is optional;
# with none, only slm runs.
#   LLAMA_BENCH     llama.cpp's llama-bench (mainline)
#   IK_BENCH        ik_llama.cpp's llama-bench, run with -rtr 1 (run-time repacking)
#   LLAMA_QUANTIZE  llama.cpp's llama-quantize (default: next to LLAMA_BENCH); when
#                   there is one, generated shapes are written in F16 and quantized
#                   by it, as published files are; otherwise by slm's quantizer
#   NODE=1          also node-llama-cpp's prebuilt library from npm (pp and tg only)
#
# Tests: pp$P (P tokens in one batch, empty context), tg$N (N tokens one at a
# time, empty context), tg$N@d$D (N tokens after D tokens in the context).
# Each engine reports the median of R repetitions after a warm-up; each
# process runs one test group (pp+tg, or the depth test), ROUNDS times in
# alternation; the table gives the median over rounds, peak RSS is
# /usr/bin/time's maximum resident set of the process.
#
# Environment: SETS ("shape:TYPE,TYPE ..."), MODEL_DIRS (colon-separated
# directories searched first for SHAPE-TYPE.gguf, e.g. real downloads),
# THREADS (1,2), P (128), N (64), D (2048; 0 skips the depth test), R (3),
# ROUNDS (1), BUSY (1: the busy-machine check), BUSY_MODEL (qwen2.5-0.5b-Q4_0),
# BUSY_THREADS (1,2), SLM_ISA (slm's kernel table, e.g. avx2 to compare with a
# peer built for AVX2 only; default: the best this CPU runs),
# TIMEOUT (seconds one engine process may take, 900; on a loaded machine a
# spinning thread pool can fall to a fraction of a token per second, and the
# table then says "timeout"), BUILD (build), OUT (the output prefix,
# $BUILD/bench-compare). Output: stdout and $OUT.md, raw runs in $OUT.csv,
# engine logs in $OUT.log.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SETS=${SETS:-"smollm2-135m:Q4_0,Q8_0,Q4_K_M qwen2.5-0.5b:Q4_0,Q8_0,Q4_K_M llama3.2-1b:Q4_0,Q4_K_M"}
MODEL_DIRS=${MODEL_DIRS:-}
THREADS=${THREADS:-1,2}
P=${P:-128} N=${N:-64} D=${D:-2048} R=${R:-3} ROUNDS=${ROUNDS:-1}
BUSY=${BUSY:-1} BUSY_MODEL=${BUSY_MODEL:-qwen2.5-0.5b-Q4_0} TIMEOUT=${TIMEOUT:-900}
BUSY_THREADS=${BUSY_THREADS:-1,2}
SLM_ISA=${SLM_ISA:-}
LLAMA_BENCH=${LLAMA_BENCH:-} IK_BENCH=${IK_BENCH:-} NODE=${NODE:-0}
if [ -z "${LLAMA_QUANTIZE:-}" ] && [ -n "$LLAMA_BENCH" ] && [ -x "$(dirname "$LLAMA_BENCH")/llama-quantize" ]; then
  LLAMA_QUANTIZE=$(dirname "$LLAMA_BENCH")/llama-quantize
fi
LLAMA_QUANTIZE=${LLAMA_QUANTIZE:-}
MODELS=$BUILD/bench-models
OUT=${OUT:-$BUILD/bench-compare}
CSV=$OUT.csv MD=$OUT.md LOG=$OUT.log
TIME=/usr/bin/time

die() { echo "bench-compare: $*" >&2; exit 1; }
command -v node >/dev/null || die "node is needed for the summary (apt-get install nodejs)"
[ -x "$TIME" ] || die "$TIME is needed for peak RSS (apt-get install time)"
for v in LLAMA_BENCH IK_BENCH LLAMA_QUANTIZE; do
  [ -z "${!v}" ] || [ -x "${!v}" ] || die "$v=${!v} is not an executable"
done

make -s all "$BUILD/gen_model" || die "building slm failed"
SLM=./$BUILD/slm
mkdir -p "$MODELS"
rm -f "$OUT".version-*
: > "$CSV"
: > "$LOG"
start=$(date +%s)

# ---- the files ----------------------------------------------------------------
# file_for SHAPE TYPE: sets FILE to a real file from MODEL_DIRS, else a
# generated one (llama-quantize'd from gen_model's F16 when LLAMA_QUANTIZE is
# set), and SOURCE[FILE] to where it came from.
declare -A SOURCE
file_for() {
  local s=$1 t=$2 d f dirs
  IFS=: read -ra dirs <<< "$MODEL_DIRS"
  for d in "${dirs[@]}"; do
    f=$d/$s-$t.gguf
    if [ -n "$d" ] && [ -f "$f" ]; then FILE=$f; SOURCE[$f]="file in $d"; return 0; fi
  done
  if [ -n "$LLAMA_QUANTIZE" ]; then
    f=$MODELS/llama-quantize/$s-$t.gguf
    if [ ! -f "$f" ]; then
      mkdir -p "$MODELS/llama-quantize"
      ./"$BUILD"/gen_model "$s" "$MODELS" F16 >&2 || return 1
      echo "bench-compare: llama-quantize $s-F16.gguf $t" >&2
      # a temporary name, renamed when complete: an interrupted run leaves no half file
      if "$LLAMA_QUANTIZE" "$MODELS/$s-F16.gguf" "$f.tmp" "$t" >> "$LOG" 2>&1; then mv "$f.tmp" "$f"
      else rm -f "$f.tmp"; echo "bench-compare: llama-quantize $s $t failed (see $LOG)" >&2; return 1; fi
    fi
    SOURCE[$f]="generated: F16 by gen_model, $t by llama-quantize"
  else
    f=$MODELS/$s-$t.gguf
    ./"$BUILD"/gen_model "$s" "$MODELS" "$t" >&2 || return 1
    SOURCE[$f]="generated: F16 by gen_model, $t by slm's quantizer"
  fi
  FILE=$f
}

# ---- one engine, one test group ------------------------------------------------
# Each appends CSV lines: section,model,type,engine,threads,test,tok_s,peak_rss_kib
# run_* FILE LABEL TYPE THREADS GROUP(main|depth|busy) SECTION
median() { node -e 'const v=JSON.parse(process.argv[1]).sort((a,b)=>a-b),n=v.length;
  console.log(n?(n%2?v[(n-1)/2]:(v[n/2-1]+v[n/2])/2).toFixed(2):"nan")' "$1"; }
timed() { # timed RSSFILE CMD...: run, stdout kept, stderr to the log
  : > "$1"
  timeout -k 10 "$TIMEOUT" "$TIME" -f %M -o "$1" "${@:2}" 2>> "$LOG"
}
# failed ENGINE SECTION LABEL TYPE THREADS GROUP RC: a line that says why there is no number
failed() {
  local why=failed test
  [ "$7" = 124 ] || [ "$7" = 137 ] && why=timeout
  echo "$1 $why (exit $7) on $3 $4, $5 thread(s), $6" >> "$LOG"
  case $6 in main) test=pp$P ;; depth) test=tg$N@d$D ;; busy) test=tg$N ;; esac
  echo "$2,$3,$4,$1,$5,$test,$why," >> "$CSV"
  [ "$6" = main ] && echo "$2,$3,$4,$1,$5,tg$N,$why," >> "$CSV"
}
rss_of() { tail -n 1 "$1" 2>/dev/null | tr -dc 0-9; }

run_slm() {
  local f=$1 label=$2 type=$3 th=$4 group=$5 sec=$6 tmp=$OUT.rss args out
  case $group in
    main) args=(-p "$P" -n "$N") ;;
    depth) args=(-p 0 -n "$N" -d "$D") ;;
    busy) args=(-p 0 -n "$N") ;;
  esac
  [ -n "$SLM_ISA" ] && args+=(--isa "$SLM_ISA")
  out=$(timed "$tmp" "$SLM" bench -m "$f" -t "$th" -r "$R" --csv "${args[@]}") || { failed slm "$sec" "$label" "$type" "$th" "$group" $?; return; }
  local rss; rss=$(rss_of "$tmp")
  echo "$out" | awk -F, -v s="$sec" -v m="$label" -v t="$type" -v th="$th" -v rss="$rss" \
    'NF >= 8 { print s "," m "," t ",slm," th "," $4 "," $5 "," rss }' >> "$CSV"
}

# llama-bench (both forks): -o json; the median of samples_ts per test
run_peer() {
  local engine=$1 bin=$2 f=$3 label=$4 type=$5 th=$6 group=$7 sec=$8 tmp=$OUT.rss args out extra=()
  [ "$engine" = ik_llama.cpp ] && extra=(-rtr 1)
  case $group in
    main) args=(-p "$P" -n "$N") ;;
    depth) if [ "$engine" = ik_llama.cpp ]; then args=(-p 0 -n 0 -gp "$D,$N"); else args=(-p 0 -n "$N" -d "$D"); fi ;;
    busy) args=(-p 0 -n "$N") ;;
  esac
  out=$(timed "$tmp" "$bin" -m "$f" -t "$th" -r "$R" -o json "${extra[@]}" "${args[@]}") ||
    { failed "$engine" "$sec" "$label" "$type" "$th" "$group" $?; return; }
  local rss; rss=$(rss_of "$tmp")
  echo "$out" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
      let runs; try { runs = JSON.parse(s); } catch { process.exit(0); }
      const [sec, m, t, e, th, group, P, N, D, rss, vfile] = process.argv.slice(1);
      if (runs.length) require("fs").writeFileSync(vfile, `build ${runs[0].build_number}, commit ${runs[0].build_commit}`);
      for (const r of runs) {
        const v = [...r.samples_ts].sort((a, b) => a - b), n = v.length;
        const med = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        const test = group === "depth" ? `tg${N}@d${D}` : r.n_gen > 0 ? `tg${r.n_gen}` : `pp${r.n_prompt}`;
        console.log([sec, m, t, e, th, test, med.toFixed(2), rss].join(","));
      }
    });' "$sec" "$label" "$type" "$engine" "$th" "$group" "$P" "$N" "$D" "$rss" "$OUT.version-$engine" >> "$CSV"
}

NODE_DIR=$BUILD/node-llama-cpp
run_node() {
  local f=$1 label=$2 type=$3 th=$4 group=$5 sec=$6 tmp=$OUT.rss out
  [ "$group" = depth ] && return 0 # not measured through node-llama-cpp
  local p=$P; [ "$group" = busy ] && p=0
  out=$(timed "$tmp" node "$NODE_DIR/llama_bench.mjs" "$(realpath "$f")" "$th" "$p" "$N" "$R") ||
    { failed node-llama-cpp "$sec" "$label" "$type" "$th" "$group" $?; return; }
  local rss; rss=$(rss_of "$tmp")
  echo "$out" | awk -F, -v s="$sec" -v m="$label" -v t="$type" -v th="$th" -v rss="$rss" \
    'NF >= 8 { print s "," m "," t ",node-llama-cpp," th "," $4 "," $5 "," rss }' >> "$CSV"
}

ENGINES=(slm)
[ -n "$LLAMA_BENCH" ] && ENGINES+=(llama.cpp)
[ -n "$IK_BENCH" ] && ENGINES+=(ik_llama.cpp)
if [ "$NODE" = 1 ]; then
  export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
  if [ ! -d "$NODE_DIR/node_modules/node-llama-cpp" ]; then
    mkdir -p "$NODE_DIR"
    ( cd "$NODE_DIR" && npm init -y >/dev/null &&
      npm install --no-audit --no-fund --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 ) >&2 ||
      die "npm install of node-llama-cpp failed"
  fi
  cp bench/llama_bench.mjs "$NODE_DIR/llama_bench.mjs"
  ENGINES+=(node-llama-cpp)
fi
run_engine() { # ENGINE FILE LABEL TYPE THREADS GROUP SECTION
  case $1 in
    slm) run_slm "${@:2}" ;;
    llama.cpp) run_peer llama.cpp "$LLAMA_BENCH" "${@:2}" ;;
    ik_llama.cpp) run_peer ik_llama.cpp "$IK_BENCH" "${@:2}" ;;
    node-llama-cpp) run_node "${@:2}" ;;
  esac
}

# ---- which instructions each engine runs --------------------------------------
# slm says which kernel table it picked. The peers built with GGML_NATIVE have
# one CPU variant, compiled for this machine, so what their ggml CPU library
# contains is what runs: look for AVX-512 VNNI/BF16 instructions in it.
peer_isa() {
  local bin=$1 lib dis
  lib=$(ldd "$bin" 2>/dev/null | awk '/ggml-cpu/ { print $3; exit }')
  [ -n "$lib" ] || lib=$(ldd "$bin" 2>/dev/null | awk '/libggml\.so/ { print $3; exit }')
  [ -n "$lib" ] || lib=$bin
  if ! command -v objdump >/dev/null; then echo "unknown (no objdump)"; return; fi
  dis=$(objdump -d --no-show-raw-insn "$lib" 2>/dev/null | awk '{ print $2, $3 }' | grep -E '^(vpdpbusd|vpdpwssd|vdpbf16ps|vfmadd231ps|vpmaddubsw) ' | sort -u)
  local isa=""
  if grep -q zmm <<< "$dis"; then
    isa="AVX-512"
    grep -qE '^vpdp(busd|wssd) .*zmm' <<< "$dis" && isa+=" VNNI"
    grep -q '^vdpbf16ps' <<< "$dis" && isa+=" BF16"
  elif grep -q ymm <<< "$dis"; then
    isa="AVX2"; grep -qE '^vpdp(busd|wssd) .*ymm' <<< "$dis" && isa+=" (AVX-VNNI)"
  else
    isa="SSE or none found"
  fi
  echo "$isa ($(basename "$lib"))"
}

# ---- the runs ------------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
FILES=()
for set in $SETS; do
  shape=${set%%:*}
  for t in ${set#*:}; do
    t=${t//,/ }
    for tt in $t; do
      file_for "$shape" "$tt" || die "no file for $shape $tt"
      FILES+=("$FILE|$shape|$tt")
    done
  done
done
echo "bench-compare: engines ${ENGINES[*]}; ${#FILES[@]} files; threads $THREADS; R=$R, ROUNDS=$ROUNDS" >&2

# thread counts outermost: an interrupted run still has a whole table for 1 thread
for th in ${THREADS//,/ }; do
  for entry in "${FILES[@]}"; do
    IFS='|' read -r f shape t <<< "$entry"
    for ((round = 0; round < ROUNDS; round++)); do
      for group in main depth; do
        [ "$group" = depth ] && [ "$D" = 0 ] && continue
        for e in "${ENGINES[@]}"; do
          echo "bench-compare: $shape $t, $th thread(s), $group, $e" >&2
          run_engine "$e" "$f" "$shape" "$t" "$th" "$group" main
        done
      done
    done
  done
done

# Busy machine: one process spinning on a core (`yes`), generation at 1 and 2
# threads, alternating engines.
busy_load=""
if [ "$BUSY" = 1 ]; then
  bf=""
  for entry in "${FILES[@]}"; do
    IFS='|' read -r f shape t <<< "$entry"
    [ "$shape-$t" = "$BUSY_MODEL" ] && bf=$f bshape=$shape btype=$t
  done
  if [ -n "$bf" ]; then
    yes > /dev/null &
    spin=$!
    trap 'kill $spin 2>/dev/null' EXIT
    sleep 1
    for ((round = 0; round < ROUNDS; round++)); do
      for th in ${BUSY_THREADS//,/ }; do
        for e in "${ENGINES[@]}"; do
          echo "bench-compare: busy check, $th thread(s), $e" >&2
          run_engine "$e" "$bf" "$bshape" "$btype" "$th" busy busy
        done
      done
    done
    busy_load=$(cut -d' ' -f1-3 /proc/loadavg)
    kill "$spin" 2>/dev/null
    wait "$spin" 2>/dev/null
    trap - EXIT
  else
    echo "bench-compare: BUSY_MODEL $BUSY_MODEL is not in SETS; no busy-machine check" >&2
  fi
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
elapsed=$(( $(date +%s) - start ))

# ---- the report ----------------------------------------------------------------
{
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
       "load average (1/5/15 min) $load_before before, $load_after after${busy_load:+, $busy_load during the busy check}."
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), ${elapsed}s; R=$R repetitions per run, ROUNDS=$ROUNDS; threads $THREADS."
  echo
  echo "Engines and the instructions they ran:"
  first=${FILES[0]%%|*}
  echo "- slm: $("$SLM" version 2>/dev/null | head -1); kernels: $("$SLM" bench -m "$first" -t 1 -p 0 -n 1 -r 1 ${SLM_ISA:+--isa "$SLM_ISA"} 2>/dev/null | sed -n 's/.*kernels: //p')"
  [ -n "$LLAMA_BENCH" ] && echo "- llama.cpp: $LLAMA_BENCH ($(cat "$OUT.version-llama.cpp" 2>/dev/null)); $(peer_isa "$LLAMA_BENCH")"
  [ -n "$IK_BENCH" ] && echo "- ik_llama.cpp: $IK_BENCH -rtr 1 ($(cat "$OUT.version-ik_llama.cpp" 2>/dev/null)); $(peer_isa "$IK_BENCH")"
  [ "$NODE" = 1 ] && echo "- node-llama-cpp 3.21.1: its prebuilt CPU library (RSS includes the Node runtime)"
  echo
  echo "Files:"
  for entry in "${FILES[@]}"; do
    f=${entry%%|*}
    echo "- $(basename "$f"): ${SOURCE[$f]:-}"
  done
  echo
  node bench/summarize.mjs "$CSV" "${ENGINES[@]}"
} > "$MD"
rm -f "$OUT.rss" "$OUT".version-*
cat "$MD"
echo "(raw runs: $CSV; logs: $LOG; this table: $MD)" >&2
