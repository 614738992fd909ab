#!/bin/sh
# Check what a built slm library exports: only slm_ names, and every SLM_API
# function of slm.h. Usage:
#   tools/check-exports.sh slm.h build/libslm.so [SONAME]   (ELF: nm -D, readelf)
#   tools/check-exports.sh slm.h build/win/slm.dll           (PE: objdump -p)
set -eu
hdr=$1 lib=$2 soname=${3:-}
tmp=${TMPDIR:-/tmp}/slm-exports.$$
trap 'rm -f "$tmp".*' EXIT

# SLM_API declarations: the name before the first '(' on the SLM_API line
sed -n 's/^SLM_API[^(]*[ *]\(slm_[A-Za-z0-9_]*\)(.*/\1/p' "$hdr" | sort -u > "$tmp.api"
case "$lib" in
*.dll)
    ${WIN_OBJDUMP:-x86_64-w64-mingw32-objdump} -p "$lib" |
        awk '/\[Ordinal\/Name Pointer\] Table/ {t = 1; next} t && /^[ \t]*\[/ {print $NF; next} t {t = 0}' |
        sort -u > "$tmp.lib" ;;
*)
    nm -D --defined-only "$lib" | awk 'NF >= 3 {print $3}' | sort -u > "$tmp.lib"
    if [ -n "$soname" ]; then
        got=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
        if [ "$got" != "$soname" ]; then
            echo "check-exports: $lib has soname '$got', expected '$soname'" >&2
            exit 1
        fi
    fi ;;
esac

bad=$(grep -v '^slm_' "$tmp.lib" || true)
missing=$(comm -23 "$tmp.api" "$tmp.lib")
extra=$(comm -13 "$tmp.api" "$tmp.lib")
if [ -n "$bad" ]; then
    echo "check-exports: $lib exports names outside slm_:" $bad >&2
    exit 1
fi
if [ -n "$missing" ]; then
    echo "check-exports: SLM_API functions not exported by $lib:" $missing >&2
    exit 1
fi
if [ -n "$extra" ]; then
    echo "check-exports: $lib exports slm_ names not declared SLM_API in $hdr:" $extra >&2
    exit 1
fi
echo "check-exports: $lib exports the $(wc -l < "$tmp.api") SLM_API functions of $hdr and nothing else${soname:+ (soname $soname)}"
