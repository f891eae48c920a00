#!/bin/bash
# Installs what is missing (as root), builds nnlock and runs the whole test suite:
#   1. Release build, warnings as errors: every CTest test (unit, PyTorch reference, CLI)
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build: the same tests, built for the
#      baseline x86-64 (no -march=native), so they also cover the portable code that the
#      release build's AVX-512 paths (im2col, for one) replace
#   3. clang + libFuzzer build: each fuzz target for a bounded time, from its committed
#      seeds (tests/fuzz/seeds/NAME) with its dictionary (tests/fuzz/NAME.dict)
# Real data (MNIST) are used when ../shared/data/mnist exists (NNL_SHARED overrides).
# Environment: FUZZ_SECONDS (default 20 per target), SKIP_ASAN=1, SKIP_FUZZ=1.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh --test || { echo "dependency installation failed"; exit 1; }
shared=${NNL_SHARED:-$root/../shared}
[ -d "$shared/data/mnist" ] && export NNL_MNIST_DIR="$shared/data/mnist"
export NNL_REQUIRE_TORCH=1
jobs=$(nproc)
passed=0
failed=0
step() { # name, command...
    local name=$1; shift
    echo "== $name"
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $name"; fi
}

step "release build" bash -c "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNNL_WERROR=ON >/dev/null && cmake --build build -j$jobs"
step "release tests" bash -c "cd build && ctest --output-on-failure -j1"

if [ "${SKIP_ASAN:-0}" != 1 ]; then
    step "sanitizer build" bash -c "cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNL_SANITIZE=ON -DNNL_NATIVE=OFF >/dev/null && cmake --build build-asan -j$jobs"
    # OpenBLAS and libgomp are not instrumented; leak checks on their thread pools are noise.
    step "sanitizer tests" bash -c "cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j1"
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    step "fuzz build" bash -c "CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNL_FUZZ=ON >/dev/null && cmake --build build-fuzz -j$jobs"
    for f in build-fuzz/tests/fuzz_*; do
        [ -x "$f" ] || continue
        name=$(basename "$f")
        mkdir -p "build-fuzz/corpus/$name"
        # New inputs go to the first (writable) corpus directory; the committed seeds
        # (tests/fuzz/make_seeds.sh) are read only, and so is the format's dictionary.
        args=("build-fuzz/corpus/$name")
        [ -d "tests/fuzz/seeds/$name" ] && args+=("tests/fuzz/seeds/$name")
        [ -f "tests/fuzz/$name.dict" ] && args=(-dict="tests/fuzz/$name.dict" "${args[@]}")
        step "fuzz $name (${FUZZ_SECONDS:-20} s)" "$f" -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=4096 \
            -print_final_stats=0 "${args[@]}" 2>"build-fuzz/$name.log" \
            || { tail -40 "build-fuzz/$name.log"; false; }
    done
fi

echo
echo "test steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
