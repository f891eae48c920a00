#!/bin/bash
# Installs what nnlock needs from Debian 12 (as root), only what is missing.
#   scripts/install-deps.sh           build + run: compiler, CMake, OpenBLAS (OpenMP build),
#                                     Jansson, libsodium, matio, stb, zlib, Fashion-MNIST
#   scripts/install-deps.sh --test    also what the tests use: PyTorch (reference values),
#                                     clang + its runtime (libFuzzer), jemalloc (benchmarks),
#                                     strace (the hostile suite checks the modes files are made with)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev libjansson-dev libsodium-dev
      libmatio-dev libstb-dev zlib1g-dev dataset-fashion-mnist)
if [ "${1:-}" = "--test" ]; then
    pkgs+=(python3-torch python3-numpy clang libclang-rt-14-dev libjemalloc2 strace)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The OpenMP build of OpenBLAS shares the OpenMP thread pool with nnlock's own loops;
# the pthreads build would spin against it.
if update-alternatives --list libopenblas.so.0-x86_64-linux-gnu >/dev/null 2>&1; then
    update-alternatives --set libopenblas.so.0-x86_64-linux-gnu \
        /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 >/dev/null 2>&1 || true
fi
