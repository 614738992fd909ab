#!/usr/bin/env bash
# Install what `make test-windows` needs on Debian 12 (bookworm) x86-64:
# mingw-w64 gcc 12 (the posix-threads variant: it has OpenMP) and wine64 to
# run the programs (headless; /usr/lib/wine/wine64, no /usr/bin/wine). About
# 150 MB download; the first wine run creates a prefix (~700 MB, ~5 s) in
# $WINEPREFIX or ~/.wine. Needs root or sudo.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# wine64's Recommends (wine, wine32) are not needed to run 64-bit programs
pkgs=(gcc-mingw-w64-x86-64-posix wine64)
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${pkgs[@]}"
