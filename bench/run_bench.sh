#!/bin/bash
# Benchmark: PyTorch reference (tuned and out of the box) and, once it exists,
# nnlock's bench_train, measured in the same run; prints a table and ratios.
#
# Usage: bench/run_bench.sh [build-dir]
#   env: BUILD_DIR      build directory holding bench/bench_train (default: build)
#        NNLOCK_BENCH   path of the nnlock benchmark binary (default: $BUILD_DIR/bench/bench_train)
#        BENCH_SECONDS  timed seconds per case (default 3)
#        BENCH_CASES    comma-separated cases (default: all of them, see torch_bench.py --help)
#        BENCH_OUT      directory for the raw result files (default: a fresh temporary directory)
#        BENCH_ROUNDS   back-to-back PyTorch/nnlock rounds per case, best taken (default 2)
#        SKIP_DEFAULT=1 skip the out-of-the-box PyTorch run
#        CIFAR10_DIR    the CIFAR-10 image folders for cifar10_time_to_acc (default: unpacked from
#                       ../shared/data/cifar10-jpeg/cifar10-jpeg-q75.tar.gz into BENCH_OUT)
#        TTA_EPOCHS     epochs for cifar10_time_to_acc (default the recipe's 9.9; less: a smoke test)
#
# cifar10_time_to_acc is not among the default cases (it trains airbench94 to the end on each
# side, about an hour and a half here): BENCH_CASES=cifar10_time_to_acc runs it, once.
#
# Every benchmark prints lines `case=<name> images_per_s=<float> [key=value...]`
# or `case=<name> value=<float>`; lines starting with '#' are comments.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3                     # Debian's python3 with python3-torch
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
THREADS=2
BUILD_DIR=${1:-${BUILD_DIR:-$ROOT/build}}
# --- nnlock side (placeholder until bench/bench_train.c lands) ----------------
NNLOCK_BENCH=${NNLOCK_BENCH:-$BUILD_DIR/bench/bench_train}
NNLOCK_ENV=()                           # e.g. (OMP_WAIT_POLICY=PASSIVE); nnlock picks its fast path itself
# ------------------------------------------------------------------------------
SECS=${BENCH_SECONDS:-3}
CASES=${BENCH_CASES:-mlp_train,mlp_infer,cnn32_train,cnn32_infer,cnn28_train,cnn28_infer,resnet9_train,airbench_train,mlp_rss,sgemm}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/nnlock-bench.XXXXXX)}
mkdir -p "$OUT"

# PyTorch at its best on this machine (see docs / issue 2 "Performance"):
#  - OPENBLAS_CORETYPE=SkylakeX: OpenBLAS 0.3.21 mis-detects Zen 5 and uses Haswell kernels
#    (only where the CPU has AVX-512: elsewhere those kernels are illegal instructions).
#  - OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads must not spin against BLAS threads.
#  - jemalloc, told never to give freed pages back (dirty/muzzy decay -1): on this VM the first
#    touch of a fresh page costs ~11 us, and batch-1000 conv activations are >100 MB; with the
#    default settings each batch re-faults them and the CNN runs several times slower.
TUNED_ENV=(OMP_WAIT_POLICY=PASSIVE LD_PRELOAD=$JEMALLOC MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1)
grep -qw avx512f /proc/cpuinfo && TUNED_ENV+=(OPENBLAS_CORETYPE=SkylakeX)

# Targets for nnlock/torch_tuned: "case op threshold" (op >= : higher is better, <= : lower is better;
# abs>= : the nnlock figure itself, e.g. the mlp's fraction of its sgemm bound).
TARGETS='mlp_train >= 1.2
mlp_infer >= 1.3
cnn32_train >= 2.0
resnet9_train >= 1.3
cnn32_infer >= 1.2
mlp_train_peak_rss_mb <= 0.5
mlp_train_fraction_of_bound abs>= 0.70
airbench_large_conv_fraction_of_fma_peak abs>= 0.70
cifar10_time_to_acc >= 1.5'

run_torch_tuned() {     # $1: output file
    env "${TUNED_ENV[@]}" "$PY" "$ROOT/bench/torch_bench.py" --threads "$THREADS" \
        --seconds "$SECS" --cases "$CASES" >"$1"
}

run_torch_default() {   # $1: output file. As Debian installs it: no env, torch's own thread count.
    # The peak-RSS run stops after 100 batches here to bound the time (about 2,000 images/s
    # out of the box); the peak is reached within the first 10 batches.
    env -u OPENBLAS_CORETYPE -u OMP_WAIT_POLICY -u OMP_NUM_THREADS -u LD_PRELOAD -u MALLOC_CONF \
        "$PY" "$ROOT/bench/torch_bench.py" --default-threads \
        --seconds "$SECS" --cases "$CASES" --rss-max-batches 100 >"$1"
}

run_nnlock() {          # $1: output file. Same case names and output format as torch_bench.py.
    env "${NNLOCK_ENV[@]}" "$NNLOCK_BENCH" --threads "$THREADS" --seconds "$SECS" \
        --cases "$CASES" >"$1"
}

# cifar10_time_to_acc: airbench94's recipe to the end on the same pixels, nnlock's `train
# --recipe airbench` against bench/airbench_torch.py (fed by bench_export). value = 1/seconds
# (training plus the final test-time-augmented evaluation, as airbench counts its time), so
# the ratio nnlock/PyTorch is PyTorch's time over nnlock's; the accuracies come with it.
tta_data() {
    local d=${CIFAR10_DIR:-}
    if [ -z "$d" ]; then
        local tgz=$ROOT/../shared/data/cifar10-jpeg/cifar10-jpeg-q75.tar.gz
        [ -s "$tgz" ] || { echo "# cifar10_time_to_acc: set CIFAR10_DIR (no $tgz)" >&2; return 1; }
        d=$OUT/cifar10
        [ -d "$d/test" ] || { mkdir -p "$d" && tar -xzf "$tgz" -C "$d"; } || return 1
    fi
    printf '%s\n' "$d"
}
run_tta_nnlock() {     # $1: data dir, $2: output file
    "$BUILD_DIR/nnlock" train --data "$1" --recipe airbench ${TTA_EPOCHS:+--epochs "$TTA_EPOCHS"} -t "$THREADS" \
        --json -q -o "$OUT/airbench.nnl" >"$OUT/airbench.nnl.json" || return 1
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[1])); s = d["seconds"] + d["test_seconds"]
print("case=cifar10_time_to_acc value=%.6g seconds=%.1f train_seconds=%.1f acc=%.4f acc_plain=%.4f"
      % (1 / s, s, d["seconds"], d["test_acc_tta"], d["test_acc"]))' "$OUT/airbench.nnl.json" >"$2"
}
run_tta_torch() {      # $1: data dir, $2: output file
    [ -s "$OUT/cifar-export/meta.txt" ] || "$BUILD_DIR/bench/bench_export" "$1" "$OUT/cifar-export" || return 1
    env "${TUNED_ENV[@]}" "$PY" "$ROOT/bench/airbench_torch.py" "$OUT/cifar-export" --threads "$THREADS" \
        ${TTA_EPOCHS:+--epochs "$TTA_EPOCHS"} >"$OUT/airbench_torch.txt" || return 1
    awk '/^run=/ { v = ""; for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
          printf "case=cifar10_time_to_acc value=%.6g seconds=%s train_seconds=%s acc=%s acc_plain=%s\n",
                 1 / f["seconds"], f["seconds"], f["train_seconds"], f["acc"], f["acc_plain"] }' \
        "$OUT/airbench_torch.txt" >"$2"
}

# value <file> <case>: the best images_per_s (or value) of a case over the rounds in the
# file (the highest; the lowest for memory), empty if absent.
value() {
    awk -v c="$2" '
        /^#/ { next }
        { v = ""; name = ""
          for (i = 1; i <= NF; i++) {
              split($i, kv, "=")
              if (kv[1] == "case") name = kv[2]
              else if ((kv[1] == "images_per_s" || kv[1] == "value") && v == "") v = kv[2]
          }
          if (name != c || v == "") next
          low = (c ~ /_rss_mb$/)
          if (best == "" || (low ? v + 0 < best + 0 : v + 0 > best + 0)) best = v }
        END { if (best != "") print best }' "$1" 2>/dev/null
}

# cases_of <file>...: case names in order of first appearance.
cases_of() {
    awk '/^#/ { next } { for (i = 1; i <= NF; i++) if ($i ~ /^case=/) { n = substr($i, 6); if (!(n in s)) { s[n] = 1; print n } } }' "$@"
}

# print_torch_table <tuned file> <default file>
print_torch_table() {
    printf '%-24s %14s %14s %10s\n' case torch_tuned torch_default tuned/dflt
    local c t d
    for c in $(cases_of "$1" "$2"); do
        t=$(value "$1" "$c"); d=$(value "$2" "$c")
        awk -v c="$c" -v t="$t" -v d="$d" 'BEGIN {
            r = (t != "" && d != "" && d + 0 > 0) ? sprintf("%.2f", t / d) : "-"
            printf "%-24s %14s %14s %10s\n", c, (t == "" ? "-" : t), (d == "" ? "-" : d), r }'
    done
}

# compare <nnlock file> <torch file>: case  nnlock  torch_tuned  ratio  target  PASS/FAIL
# ratio = nnlock / torch; a case without a target prints "-" in the last two columns.
# Returns 1 if any target fails.
compare() {
    local fail=0 c n t tgt line
    printf '%-24s %12s %12s %8s %8s %6s\n' case nnlock torch_tuned ratio target result
    for c in $(cases_of "$1" "$2"); do
        n=$(value "$1" "$c"); t=$(value "$2" "$c")
        tgt=$(printf '%s\n' "$TARGETS" | awk -v c="$c" '$1 == c { print $2, $3 }')
        line=$(awk -v c="$c" -v n="$n" -v t="$t" -v tgt="$tgt" 'BEGIN {
            split(tgt, g, " "); op = g[1]; th = g[2]
            if (op == "abs>=") { # an absolute target on nnlock figure, no PyTorch counterpart
                r = "-"; res = (n == "" ? "MISSING" : (n + 0 >= th) ? "PASS" : "FAIL")
            } else if (n == "" || t == "" || t + 0 == 0) { r = "-"; res = (tgt == "" ? "-" : "MISSING") }
            else {
                ratio = n / t; r = sprintf("%.2f", ratio)
                if (tgt == "") res = "-"
                else if (op == ">=") res = (ratio >= th) ? "PASS" : "FAIL"
                else res = (ratio <= th) ? "PASS" : "FAIL"
            }
            printf "%-24s %12s %12s %8s %8s %6s\n", c, (n == "" ? "-" : n), (t == "" ? "-" : t), r,
                   (tgt == "" ? "-" : op th), res }')
        printf '%s\n' "$line"
        case $line in *FAIL|*MISSING) fail=1 ;; esac
    done
    return $fail
}

echo "# nnlock benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# raw results in $OUT"

# The machine's speed drifts by 10-20% over minutes here (a shared host), so the tuned
# PyTorch and nnlock figures of each case are taken back to back, ROUNDS times, and the
# best of each is compared. The `mlp`'s sgemm bound is measured with its training case.
ROUNDS=${BENCH_ROUNDS:-2}
: >"$OUT/torch_tuned.txt"; : >"$OUT/nnlock.txt"
units=$(printf '%s\n' "${CASES//,/ }" | tr ' ' '\n' | awk 'NF { if ($1 == "sgemm") next; print ($1 == "mlp_train" ? "mlp_train,sgemm" : $1) }')
case ",$CASES," in *,sgemm,*) ;; *) units=$(printf '%s\n' "$units" | sed 's/^mlp_train,sgemm$/mlp_train/') ;; esac
if printf '%s\n' "$units" | grep -qx cifar10_time_to_acc; then
    units=$(printf '%s\n' "$units" | grep -vx cifar10_time_to_acc)
    if d=$(tta_data); then
        echo "# cifar10_time_to_acc on $d: PyTorch, then nnlock (about an hour and a half)" >&2
        run_tta_torch "$d" "$OUT/tta_torch.part" && cat "$OUT/tta_torch.part" >>"$OUT/torch_tuned.txt" \
            || echo "# torch cifar10_time_to_acc failed" >&2
        run_tta_nnlock "$d" "$OUT/tta_nnlock.part" && cat "$OUT/tta_nnlock.part" >>"$OUT/nnlock.txt" \
            || echo "# nnlock cifar10_time_to_acc failed" >&2
        rm -f "$OUT/tta_torch.part" "$OUT/tta_nnlock.part"
    fi
fi
for r in $(seq 1 "$ROUNDS"); do
    for u in $units; do
        echo "# round $r: $u" >&2
        CASES=$u run_torch_tuned "$OUT/torch_tuned.part" || echo "# torch tuned run failed ($u)" >&2
        cat "$OUT/torch_tuned.part" >>"$OUT/torch_tuned.txt"
        if [ -x "$NNLOCK_BENCH" ]; then
            CASES=$u run_nnlock "$OUT/nnlock.part" || echo "# nnlock benchmark failed ($u)" >&2
            cat "$OUT/nnlock.part" >>"$OUT/nnlock.txt"
        fi
    done
done
rm -f "$OUT/torch_tuned.part" "$OUT/nnlock.part"
if [ "${SKIP_DEFAULT:-0}" != 1 ]; then
    echo "# running PyTorch out of the box (no env, default thread count)" >&2
    run_torch_default "$OUT/torch_default.txt" || echo "# torch default run failed" >&2
else
    : >"$OUT/torch_default.txt"
fi

grep '^#' "$OUT/torch_tuned.txt" "$OUT/torch_default.txt" | sed 's/^[^:]*\//# /' | awk '!seen[$0]++'
echo
echo "PyTorch reference (images/s, best of the rounds, each the best of up to 6 time slices; rss in MB)"
print_torch_table "$OUT/torch_tuned.txt" "$OUT/torch_default.txt"

status=0
if [ -x "$NNLOCK_BENCH" ] && [ -s "$OUT/nnlock.txt" ]; then
    echo
    echo "nnlock against tuned PyTorch (same run, best of $ROUNDS back-to-back rounds each)"
    compare "$OUT/nnlock.txt" "$OUT/torch_tuned.txt" || status=1
    if grep -q '^case=cifar10_time_to_acc' "$OUT/nnlock.txt" "$OUT/torch_tuned.txt"; then
        echo
        echo "cifar10_time_to_acc (airbench94's recipe to the end, CIFAR-10 JPEG q75 copy; seconds = training + TTA evaluation)"
        for side in nnlock torch_tuned; do
            grep -h '^case=cifar10_time_to_acc' "$OUT/$side.txt" | sed "s/^case=cifar10_time_to_acc value=[^ ]* /  $side: /"
        done
    fi
else
    echo
    echo "# nnlock benchmark $NNLOCK_BENCH not built or failed: no comparison"
    status=1
fi
exit $status
