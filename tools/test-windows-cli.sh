#!/bin/sh
# Part of `make test-windows`: the Windows CLI (slm.exe) and a program using
# slm.dll, run under wine, must generate the same demo text as the native
# build (same seed; one and two threads).
set -eu
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
WINE=${WINE:-/usr/lib/wine/wine64}
DEMO_MODEL=${DEMO_MODEL:-tests/data/demo/kjv-1m-q8_0.gguf}
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
W=$BUILD/win
out=$W/cli-test
mkdir -p "$out"
$MAKE --no-print-directory BUILD="$BUILD" "$BUILD/slm" "$BUILD/libslm.a" >/dev/null
${CC:-cc} -std=c99 -O2 -I. tests/consumer/consumer.c "$BUILD/libslm.a" -o "$out/consumer" -lm ${OMPFLAGS:-}

fail=0
same() { # name native-file windows-file
    tr -d '\r' < "$3" > "$3.lf"
    if cmp -s "$2" "$3.lf" && [ -s "$2" ]; then
        echo "test-windows: $1: same text as the native build ($(wc -c < "$2") bytes)"
    else
        echo "test-windows: $1 differs from the native build:"; diff "$2" "$3.lf" | head -20; fail=1
    fi
}
for t in 1 2; do
    "$BUILD/slm" run -m "$DEMO_MODEL" -p "And the LORD said" -n 96 --seed 42 -t $t > "$out/native-$t.txt"
    $WINE "$W/slm.exe" run -m "$DEMO_MODEL" -p "And the LORD said" -n 96 --seed 42 -t $t > "$out/win-$t.txt"
    same "slm.exe run -t $t" "$out/native-$t.txt" "$out/win-$t.txt"
done
# UTF-8 in the arguments: a model path and a prompt outside the ANSI code
# page (wine hands the Unix arguments over as UTF-16 with a UTF-8 locale)
u8model="$out/d\303\253mo-\346\227\245\346\234\254.gguf"
u8model=$(printf "$u8model")
cp "$DEMO_MODEL" "$u8model"
u8text=$(printf 'Gr\303\274\303\237e \346\227\245\346\234\254 \316\261\316\262')
"$BUILD/slm" tokenize -m "$u8model" -p "$u8text" > "$out/native-tok.txt" 2>/dev/null
LC_ALL=C.UTF-8 $WINE "$W/slm.exe" tokenize -m "$u8model" -p "$u8text" > "$out/win-tok.txt" 2> "$out/win-tok.err" || cat "$out/win-tok.err"
same "slm.exe tokenize (UTF-8 path and prompt)" "$out/native-tok.txt" "$out/win-tok.txt"
"$out/consumer" "$DEMO_MODEL" > "$out/native-consumer.txt" 2>/dev/null
# slm.dll is found next to the program
$WINE "$W/consumer_dll.exe" "$DEMO_MODEL" > "$out/win-consumer.txt"
same "consumer_dll.exe (slm.dll)" "$out/native-consumer.txt" "$out/win-consumer.txt"
# an error is reported, with a non-zero exit code
if $WINE "$W/slm.exe" info -m "$out/no-such-file.gguf" > "$out/err.txt" 2>&1; then
    echo "test-windows: slm.exe info on a missing file exits 0"; fail=1
elif ! grep -q "no-such-file.gguf" "$out/err.txt"; then
    echo "test-windows: slm.exe: the error does not name the file:"; cat "$out/err.txt"; fail=1
fi
exit $fail
