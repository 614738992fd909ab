#!/usr/bin/env bash
# make test-embedded: run the embedded example (examples/embedded) natively
# and on Cortex-M55 / Cortex-M4F under qemu-system-arm, and check that all of
# them generate the same text as the slm CLI built with the scalar kernels
# (same model, prompt, seed and sampler settings); then the kernel suite on
# the M55 (Helium against scalar). Ends with "N passed, N failed".
set -u
EMB_DIR=${EMB_DIR:-build/embedded}
MODEL=${EMB_MODEL:-tests/data/demo/kjv-1m-q4_0.gguf}
PROMPT="And the LORD said"
N_TOKENS=48
CTX=${EMB_CTX:-256}
Q="-nographic -monitor none -serial none -semihosting-config enable=on,target=native"
pass=0
fail=0

# the text between the two "---" lines
text_of() { awk '/^---$/ { n++; next } n == 1 { print }' "$1"; }

"$EMB_DIR/slm-scalar" run -m "$MODEL" -p "$PROMPT" -n $N_TOKENS --seed 42 -t 1 -c "$CTX" > "$EMB_DIR/cli.txt" 2> /dev/null
ref=$(cat "$EMB_DIR/cli.txt")
echo "reference (slm CLI, scalar kernels): $ref"

run() { # name, command...
    local name=$1
    shift
    local t0=$(date +%s.%N)
    timeout 600 "$@" > "$EMB_DIR/$name.out" 2>&1
    local rc=$? t1=$(date +%s.%N)
    local got=$(text_of "$EMB_DIR/$name.out")
    local arena=$(grep '^arena:' "$EMB_DIR/$name.out")
    printf '%-5s exit %d, %s s, %s\n' "$name" $rc "$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")" "${arena:-no arena line}"
    if [ $rc -eq 0 ] && [ "$got" = "$ref" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $rc, text:"
        cat "$EMB_DIR/$name.out"
    fi
}

run host "$EMB_DIR/host"
run m55 qemu-system-arm -M mps3-an547 $Q -kernel "$EMB_DIR/m55.elf"
run m4 qemu-system-arm -M mps2-an386 $Q -kernel "$EMB_DIR/m4.elf"

# the kernel suite on the M55: Helium kernels against the scalar references,
# the SLM_NO_STDIO formatter against newlib's snprintf
t0=$(date +%s)
timeout 900 qemu-system-arm -M mps3-an547 $Q -kernel "$EMB_DIR/kernels-m55.elf" > "$EMB_DIR/kernels-m55.out" 2>&1
rc=$?
last=$(tail -1 "$EMB_DIR/kernels-m55.out")
echo "kernels (M55): exit $rc, $(($(date +%s) - t0)) s, $last"
grep '^  dot \(Q8_0\|Q4_0\) ' "$EMB_DIR/kernels-m55.out"
if [ $rc -eq 0 ] && echo "$last" | grep -q ' passed, 0 failed$'; then
    pass=$((pass + 1))
else
    fail=$((fail + 1))
    grep -B3 FAIL "$EMB_DIR/kernels-m55.out"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
