#!/usr/bin/env bash
# Install what `make test-cross` needs on Debian 12 (bookworm) x86-64, from
# Debian main: cross compilers (gcc 12) with their C libraries, clang-19
# (the RVV intrinsics; gcc 12 has none) and qemu-user to run the binaries.
# About 480 MB download, 2.9 GB on disk, 1.5 minutes. Needs root or sudo.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --no-install-recommends would drop the cross C libraries (only Recommends
# of gcc-*-cross), so they are named explicitly.
pkgs=(
  qemu-user
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
  gcc-riscv64-linux-gnu libc6-dev-riscv64-cross clang-19
  gcc-s390x-linux-gnu libc6-dev-s390x-cross
)
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${pkgs[@]}"
