#!/bin/bash
# Configures and builds nnlock in build/ (Release, warnings are errors). Usage: scripts/build.sh [cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNNL_WERROR=ON "$@" >/dev/null
cmake --build build -j"$(nproc)"
