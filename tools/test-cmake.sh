#!/bin/sh
# `make test-cmake`: CMake consumer projects, built and run on the demo model:
#   sub-static  add_subdirectory(slm), static library, OpenMP (the defaults);
#               with SLM_CLI=ON, and the CLI runs
#   sub-shared  add_subdirectory(slm), SLM_SHARED=ON, SLM_OPENMP=OFF
#               (its exports and soname checked like make check-exports)
#   files       slm.c and slm.h added to the program's own target
#   package     slm configured on its own, `cmake --install` into a prefix,
#               the consumer finds it with find_package(slm)
#   mingw-dll   (when mingw-w64 and wine are installed) add_subdirectory
#               cross-compiled for Windows with SLM_SHARED=ON: slm.dll, the
#               consumer run under wine
# All must print the same text.
set -eu
BUILD=${BUILD:-build}
DEMO_MODEL=${DEMO_MODEL:-tests/data/demo/kjv-1m-q8_0.gguf}
CMAKE=${CMAKE:-cmake}
src=$(pwd)
root=$src/$BUILD/cmake-test
model=$src/$DEMO_MODEL
VERSION=$(sed -n 's/^#define SLM_VERSION_STRING "\(.*\)"/\1/p' slm.h)
rm -rf "$root"
mkdir -p "$root/sub" "$root/files" "$root/pkg"

cat > "$root/sub/CMakeLists.txt" <<EOT
cmake_minimum_required(VERSION 3.10)
project(consumer C)
add_subdirectory("$src" slm)
add_executable(consumer "$src/tests/consumer/consumer.c")
target_link_libraries(consumer PRIVATE slm::slm)
EOT

cat > "$root/files/CMakeLists.txt" <<EOT
cmake_minimum_required(VERSION 3.10)
project(consumer C)
add_executable(consumer "$src/tests/consumer/consumer.c" "$src/slm.c" "$src/slm.h")
target_include_directories(consumer PRIVATE "$src")
set_target_properties(consumer PROPERTIES C_STANDARD 99)
find_package(OpenMP COMPONENTS C)
if(OpenMP_C_FOUND)
  target_link_libraries(consumer PRIVATE OpenMP::OpenMP_C)
endif()
if(UNIX)
  target_link_libraries(consumer PRIVATE m)
endif()
EOT

cat > "$root/pkg/CMakeLists.txt" <<EOT
cmake_minimum_required(VERSION 3.10)
project(consumer C)
find_package(slm $VERSION CONFIG REQUIRED)
add_executable(consumer "$src/tests/consumer/consumer.c")
target_link_libraries(consumer PRIVATE slm::slm)
EOT

build() { # name project-dir cmake-options...
    name=$1 dir=$2
    shift 2
    $CMAKE -S "$dir" -B "$root/$name" "$@" > "$root/$name.log" 2>&1 &&
        $CMAKE --build "$root/$name" -j 2 -- VERBOSE=1 >> "$root/$name.log" 2>&1 ||
        { cat "$root/$name.log"; echo "test-cmake: $name: build failed"; exit 1; }
    $RUN "$root/$name/consumer$EXE" "$model" > "$root/$name.txt" 2> "$root/$name.err" ||
        { cat "$root/$name.err"; echo "test-cmake: $name: the consumer failed"; exit 1; }
    echo "test-cmake: $name: $(cat "$root/$name.err")"
}
RUN= EXE=
# sub-static sets no build type, as a parent project often does: slm.c
# must still be compiled with optimisation
build sub-static "$root/sub" -DSLM_CLI=ON
build sub-shared "$root/sub" -DCMAKE_BUILD_TYPE=Release -DSLM_SHARED=ON -DSLM_OPENMP=OFF
build files "$root/files" -DCMAKE_BUILD_TYPE=Release
grep 'slm\.c' "$root/sub-static.log" | grep -q -- ' -O2 ' ||
    { echo "test-cmake: without a build type, slm.c was compiled without -O2"; exit 1; }
# slm on its own, no build type given: Release by default
$CMAKE -S "$src" -B "$root/slm-alone" -DSLM_CLI=OFF > "$root/slm-alone.log" 2>&1 &&
    $CMAKE --build "$root/slm-alone" -j 2 >> "$root/slm-alone.log" 2>&1 &&
    $CMAKE --install "$root/slm-alone" --prefix "$root/prefix" >> "$root/slm-alone.log" 2>&1 ||
    { cat "$root/slm-alone.log"; echo "test-cmake: building and installing slm alone failed"; exit 1; }
grep -q '^CMAKE_BUILD_TYPE:STRING=Release' "$root/slm-alone/CMakeCache.txt" ||
    { echo "test-cmake: slm as the top-level project did not default to Release"; exit 1; }
build package "$root/pkg" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$root/prefix"

fail=0
WIN_CC=${WIN_CC:-x86_64-w64-mingw32-gcc}
WINE=${WINE:-/usr/lib/wine/wine64}
if command -v "$WIN_CC" > /dev/null && [ -x "$WINE" ]; then
    # consumer.exe next to slm.dll, which needs the mingw runtime DLLs
    # (FindOpenMP links libgomp's import library): found through WINEPATH
    winpath=
    for dll in libgomp-1.dll libwinpthread-1.dll; do
        d=$(dirname "$("$WIN_CC" -print-file-name=$dll)")
        winpath="$winpath;Z:$(cd "$d" && pwd -P | tr / '\\')"
    done
    RUN="env WINEDEBUG=-all WINEDLLOVERRIDES=mscoree,mshtml= WINEPATH=${winpath#;} $WINE" EXE=.exe
    build mingw-dll "$root/sub" -DCMAKE_SYSTEM_NAME=Windows -DCMAKE_C_COMPILER="$WIN_CC" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$root/mingw-dll" -DSLM_SHARED=ON
    tr -d '\r' < "$root/mingw-dll.txt" > "$root/mingw-dll.lf" && mv "$root/mingw-dll.lf" "$root/mingw-dll.txt"
    [ -f "$root/mingw-dll/slm.dll" ] || { echo "test-cmake: no slm.dll"; fail=1; }
    sh tools/check-exports.sh slm.h "$root/mingw-dll/slm.dll" || fail=1
    others="sub-shared files package mingw-dll"
else
    echo "test-cmake: mingw-w64 or wine missing: the Windows DLL build is skipped"
    others="sub-shared files package"
fi
grep -q "openmp=off" "$root/sub-shared.err" || { echo "test-cmake: SLM_OPENMP=OFF did not turn OpenMP off"; fail=1; }
readelf -d "$root/sub-shared/consumer" | grep -q 'NEEDED.*libslm\.so\.' || { echo "test-cmake: sub-shared is not linked to libslm.so"; fail=1; }
sh tools/check-exports.sh slm.h "$root/sub-shared/slm/libslm.so.$VERSION" "libslm.so.${VERSION%%.*}" || fail=1
for n in $others; do
    cmp -s "$root/sub-static.txt" "$root/$n.txt" || { echo "test-cmake: $n prints other text than sub-static"; fail=1; }
done
[ -s "$root/sub-static.txt" ] || fail=1
"$root/sub-static/slm/slm" run -m "$model" -p "And the LORD said" -n 8 --seed 42 -t 1 > "$root/cli.txt" 2>&1 ||
    { cat "$root/cli.txt"; echo "test-cmake: the CLI built by CMake does not run"; fail=1; }
[ $fail = 0 ] && echo "test-cmake: $(echo sub-static $others | sed "s/ /, /g"): built, same text"
exit $fail
