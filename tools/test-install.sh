#!/bin/sh
# `make test-install`: install into a temporary prefix, build the consumer
# program (tests/consumer/consumer.c) against it through pkg-config, with the
# shared library and statically, run both; the same with a DESTDIR staging
# tree; then uninstall and check that nothing is left.
set -eu
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
CC=${CC:-cc}
DEMO_MODEL=${DEMO_MODEL:-tests/data/demo/kjv-1m-q8_0.gguf}
VERSION=$(sed -n 's/^#define SLM_VERSION_STRING "\(.*\)"/\1/p' slm.h)
MAJOR=${VERSION%%.*}
root=$(pwd)/$BUILD/install-test
prefix=$root/prefix
rm -rf "$root"
mkdir -p "$root"
fail=0
bad() { echo "test-install: $*"; fail=1; }

$MAKE --no-print-directory BUILD="$BUILD" install PREFIX="$prefix" > "$root/install.log"
for f in include/slm.h lib/libslm.a lib/libslm.so.$VERSION bin/slm lib/pkgconfig/slm.pc; do
    [ -f "$prefix/$f" ] || bad "missing $f"
done
[ "$(readlink "$prefix/lib/libslm.so")" = "libslm.so.$MAJOR" ] || bad "lib/libslm.so is not a link to libslm.so.$MAJOR"
[ "$(readlink "$prefix/lib/libslm.so.$MAJOR")" = "libslm.so.$VERSION" ] || bad "lib/libslm.so.$MAJOR is not a link to libslm.so.$VERSION"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion slm)" = "$VERSION" ] || bad "pkg-config --modversion slm: $(pkg-config --modversion slm)"

# shared: linked to the soname, found through LD_LIBRARY_PATH
$CC -std=c99 -O2 tests/consumer/consumer.c $(pkg-config --cflags --libs slm) -o "$root/consumer-shared"
readelf -d "$root/consumer-shared" | grep -q "NEEDED.*\[libslm.so.$MAJOR\]" || bad "consumer-shared does not need libslm.so.$MAJOR"
LD_LIBRARY_PATH="$prefix/lib" "$root/consumer-shared" "$DEMO_MODEL" > "$root/shared.txt" 2>> "$root/consumer.log"

# static: the whole program, libslm.a with its private libraries
$CC -std=c99 -O2 tests/consumer/consumer.c $(pkg-config --cflags --libs --static slm) -static -o "$root/consumer-static" \
    2> "$root/static.log" || { cat "$root/static.log"; bad "static link failed"; }
if readelf -d "$root/consumer-static" 2>/dev/null | grep -q NEEDED; then bad "consumer-static is not static"; fi
"$root/consumer-static" "$DEMO_MODEL" > "$root/static.txt" 2>> "$root/consumer.log"
cmp -s "$root/shared.txt" "$root/static.txt" || bad "shared and static consumers print different text"

# the installed CLI
"$prefix/bin/slm" run -m "$DEMO_MODEL" -p "And the LORD said" -n 16 --seed 42 -t 1 > "$root/cli.txt" 2>/dev/null ||
    bad "the installed slm does not run"

# DESTDIR: files staged under it, slm.pc still names the final prefix
stage=$root/stage
$MAKE --no-print-directory BUILD="$BUILD" install PREFIX=/opt/slm DESTDIR="$stage" > "$root/stage.log"
grep -qx 'prefix=/opt/slm' "$stage/opt/slm/lib/pkgconfig/slm.pc" || bad "staged slm.pc does not say prefix=/opt/slm"
cflags=$(PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_PATH="$stage/opt/slm/lib/pkgconfig" pkg-config --cflags --libs slm)
$CC -std=c99 -O2 tests/consumer/consumer.c $cflags -o "$root/consumer-staged"
LD_LIBRARY_PATH="$stage/opt/slm/lib" "$root/consumer-staged" "$DEMO_MODEL" > "$root/staged.txt" 2>> "$root/consumer.log"
cmp -s "$root/shared.txt" "$root/staged.txt" || bad "the staged consumer prints different text"

$MAKE --no-print-directory BUILD="$BUILD" uninstall PREFIX="$prefix" > /dev/null
$MAKE --no-print-directory BUILD="$BUILD" uninstall PREFIX=/opt/slm DESTDIR="$stage" > /dev/null
left=$(find "$prefix" "$stage" \( -type f -o -type l \) | wc -l)
[ "$left" -eq 0 ] || bad "$left files left after make uninstall"

if [ $fail = 0 ]; then
    echo "test-install: installed, built with pkg-config (shared, static, DESTDIR-staged), ran, uninstalled:" \
        "$(head -c 60 "$root/shared.txt")..."
fi
exit $fail
