#!/bin/bash
# Deep-Lock evaluation (issue 4): for each data set, train a network (the `mlp` unless
# --arch NAME=ARCH says otherwise, e.g. cifar10=cnn), lock its weights with
# a fresh 256-bit key and measure
#   - accuracy with the right key (must equal the original's), the locked model as it is,
#     100 random wrong keys and 32 keys one bit off (`nnlock eval --wrong-keys`),
#     with the fraction of weights that decode to NaN or Inf;
#   - the known-plaintext probe (tests/tools/deeplock_probe.c): the master key recovered
#     from the locked file alone, for the 256-bit key and for a 128-bit one;
#   - the fine-tuning attack: `nnlock train --init LOCKED --allow-locked --limit N` with
#     1%, 5% and 10% of the training images, from the raw locked weights and from the
#     locked weights after the attacker's repair (NaN, Inf and |w| > 1 set to 0), against
#     the same architecture trained from scratch on the same images; test accuracy per epoch.
# It prints the results as Markdown tables (docs/results-deeplock.md holds a run) and
# leaves every model, key and JSON file in the output directory.
#
# usage: scripts/deeplock_eval.sh --nnlock BUILD/nnlock --data NAME=DIR [--data NAME=DIR ...]
#            [--out DIR] [--epochs N] [--ft-epochs N] [--fractions "0.01 0.05 0.10"]
#            [--arch NAME=ARCH ...] [--augment NAME="FLAGS" ...]
#            [--probe128-budget SECONDS] [--threads N]
# e.g.   scripts/deeplock_eval.sh --nnlock build/nnlock --data mnist=../shared/data/mnist \
#            --data fashion-mnist=/usr/share/datasets/fashion-mnist --out /tmp/deeplock-eval
#        scripts/deeplock_eval.sh --nnlock build/nnlock --data cifar10=/tmp/cifar10 --arch cifar10=cnn \
#            --augment cifar10="--augment-crop 4 --augment-flip" --epochs 10
# The probe tool is compiled against BUILD/libnnlock.a (the directory of --nnlock).
set -euo pipefail

NNL="" OUT=deeplock-eval EPOCHS=2 FT_EPOCHS=5 FRACTIONS="0.01 0.05 0.10" THREADS=0 P128_BUDGET=60
DATA=() ARCHS=() AUGS=()
die() { echo "deeplock_eval: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case $1 in
    --nnlock) NNL=$2; shift 2 ;;
    --data) DATA+=("$2"); shift 2 ;;
    --arch) ARCHS+=("$2"); shift 2 ;;
    --augment) AUGS+=("$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --ft-epochs) FT_EPOCHS=$2; shift 2 ;;
    --fractions) FRACTIONS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --probe128-budget) P128_BUDGET=$2; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;  # the header comment, however long
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[ -n "$NNL" ] && [ -x "$NNL" ] || die "--nnlock must name the nnlock binary of a build"
[ ${#DATA[@]} -gt 0 ] || die "give at least one --data NAME=DIR"
command -v python3 > /dev/null || die "python3 is needed for the tables"
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$(dirname "$NNL")" && pwd)
NNL=$BUILD/$(basename "$NNL")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
T0=$(date +%s)

# ---------------------------------------------------------------- the probe tool
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
PROBE=$OUT/deeplock_probe
CC=$(cache CMAKE_C_COMPILER); CC=${CC:-cc}
SAN=(); [ "$(cache NNL_SANITIZE)" = ON ] && SAN=(-fsanitize=address,undefined)   # as the library was built
"$CC" -O2 -std=gnu11 -fopenmp ${SAN[@]+"${SAN[@]}"} -I"$SRC/include" -I"$SRC/src" "$SRC/tests/tools/deeplock_probe.c" \
    "$BUILD/libnnlock.a" "$(cache OPENBLAS_LIB)" "$(cache STB_LIB)" \
    $(pkg-config --libs jansson libsodium matio zlib) -lm -o "$PROBE"

randkey() { python3 -c "import os; print(os.urandom($1).hex())" > "$2"; chmod 600 "$2"; }
lookup() { # NAME LIST...: the value of NAME=VALUE in the list, empty if absent
    local name=$1 kv; shift
    for kv in "$@"; do [ "${kv%%=*}" = "$name" ] && { echo "${kv#*=}"; return; }; done
    true
}
note() { echo "[$(( $(date +%s) - T0 )) s] $*" >&2; }

for nd in "${DATA[@]}"; do
    name=${nd%%=*} dir=${nd#*=}
    d=$OUT/$name
    mkdir -p "$d"
    arch=$(lookup "$name" ${ARCHS[@]+"${ARCHS[@]}"}); arch=${arch:-mlp}
    read -r -a aug <<< "$(lookup "$name" ${AUGS[@]+"${AUGS[@]}"})"
    # A rerun with the same --out resumes: a finished model, lock and wrong-key report are kept.
    if [ ! -s "$d/plain.nnl" ]; then
        note "$name: training the $arch ($EPOCHS epochs)"
        "$NNL" train -d "$dir" --arch "$arch" ${aug[@]+"${aug[@]}"} --epochs "$EPOCHS" -t "$THREADS" --quiet --json \
            -o "$d/plain.nnl" > "$d/train.json"
        rm -f "$d/locked.nnl" "$d/wrong_keys.json"
    fi
    if [ ! -s "$d/locked.nnl" ]; then
        rm -f "$d/w.key" "$d/wrong_keys.json"
        "$NNL" keygen --weights -o "$d/w.key" > /dev/null
        "$NNL" lock-weights --key-file "$d/w.key" "$d/plain.nnl" "$d/locked.nnl" > /dev/null
    fi
    "$NNL" eval "$d/plain.nnl" -d "$dir" -t "$THREADS" --json > "$d/eval_plain.json"
    "$NNL" eval "$d/locked.nnl" -d "$dir" -t "$THREADS" --weights-key "$d/w.key" --json > "$d/eval_key.json"
    if [ ! -s "$d/wrong_keys.json" ]; then
        note "$name: right, wrong and one-bit-off keys"
        "$NNL" eval "$d/locked.nnl" -d "$dir" -t "$THREADS" --weights-key "$d/w.key" --wrong-keys --json > "$d/wrong_keys.json.tmp"
        mv "$d/wrong_keys.json.tmp" "$d/wrong_keys.json"
    fi

    note "$name: known-plaintext probe"
    rm -f "$d/recovered.key"
    "$PROBE" probe "$d/locked.nnl" --json --out "$d/recovered.key" > "$d/probe256.json" || true
    if [ -s "$d/recovered.key" ]; then
        "$NNL" unlock-weights --key-file "$d/recovered.key" "$d/locked.nnl" "$d/stolen.nnl" > /dev/null
        if cmp -s "$d/plain.nnl" "$d/stolen.nnl"; then echo true; else echo false; fi > "$d/stolen_identical"
    else
        echo false > "$d/stolen_identical"
    fi
    randkey 16 "$d/w128.key"
    "$NNL" lock-weights --key-file "$d/w128.key" "$d/plain.nnl" "$d/locked128.nnl" > /dev/null
    "$PROBE" probe "$d/locked128.nnl" --json --budget "$P128_BUDGET" > "$d/probe128.json" || true

    note "$name: fine-tuning attack"
    "$PROBE" sanitize "$d/locked.nnl" "$d/repaired.nnl" > "$d/repaired.txt"
    ntrain=$("$NNL" info "$d/plain.nnl" | awk '$1 == "train.images" {print $2}')
    [ -n "$ntrain" ] || die "$d/plain.nnl does not record its training-set size"
    for f in $FRACTIONS; do
        n=$(python3 -c "print(round($f * $ntrain))")
        for how in raw repaired scratch; do
            case $how in
            raw) init=(--init "$d/locked.nnl" --allow-locked) ;;
            repaired) init=(--init "$d/repaired.nnl" --allow-locked) ;;
            scratch) init=(--arch "$arch") ;;
            esac
            set +e
            "$NNL" train -d "$dir" "${init[@]}" ${aug[@]+"${aug[@]}"} --limit "$n" --epochs "$FT_EPOCHS" -t "$THREADS" --quiet --json \
                -o "$d/ft_${how}_$n.nnl" > "$d/ft_${how}_$n.json" 2> "$d/ft_${how}_$n.err"
            echo $? > "$d/ft_${how}_$n.rc"
            set -e
        done
    done
done
note "done"

# ---------------------------------------------------------------- tables
python3 - "$OUT" "$FRACTIONS" "${DATA[@]}" <<'EOF'
import json, os, sys
out, fractions, data = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
pct = lambda x: f"{100 * x:.2f}%"
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return None
print("### Right, wrong and one-bit-off keys\n")
print("| data | params | original | right key | bit-identical | locked as is | 100 wrong keys: mean / max | "
      "32 one-bit-off: mean / max | NaN/Inf weights (locked / wrong keys) | NaN outputs (wrong keys) |")
print("|---|---|---|---|---|---|---|---|---|---|")
rep = []
for nd in data:
    name = nd.split("=", 1)[0]; d = os.path.join(out, name)
    p, k, w = load(f"{d}/eval_plain.json"), load(f"{d}/eval_key.json"), load(f"{d}/wrong_keys.json")
    w = w.get("weight_lock", w)
    same = p["accuracy"] == k["accuracy"] and p["loss"] == k["loss"] and p["confusion"] == k["confusion"]
    r, a, wk, ob = w["right_key"], w["locked_as_is"], w["wrong_keys"], w["one_bit_off"]
    print(f"| {name} | {w['parameters']} | {pct(p['accuracy'])} | {pct(r['accuracy'])} | "
          f"{'yes' if r['weights_bit_identical'] and same else 'NO'} | {pct(a['accuracy'])} | "
          f"{pct(wk['mean_accuracy'])} / {pct(wk['max_accuracy'])} | {pct(ob['mean_accuracy'])} / {pct(ob['max_accuracy'])} | "
          f"{100 * a['nonfinite_fraction']:.3f}% / {100 * wk['nonfinite_fraction']:.3f}% | {pct(wk['nan_output_fraction'])} |")
    rep.append((name, a, wk, ob, w["seconds"]))
print("\nAfter the attacker's repair (NaN, Inf and |w| > 1 set to 0, so the outputs are finite):\n")
print("| data | locked as is | 100 wrong keys: mean / max | 32 one-bit-off: mean / max | report time |")
print("|---|---|---|---|---|")
for name, a, wk, ob, s in rep:
    print(f"| {name} | {pct(a['repaired_accuracy'])} | {pct(wk['repaired_mean_accuracy'])} / {pct(wk['repaired_max_accuracy'])} | "
          f"{pct(ob['repaired_mean_accuracy'])} / {pct(ob['repaired_max_accuracy'])} | {s:.0f} s |")
print("\n### Known-plaintext probe (locked file only)\n")
print("| data | key | recovered | time | locked parameters decoded | top-bit hypotheses | tries | unlocked file == original |")
print("|---|---|---|---|---|---|---|---|")
for nd in data:
    name = nd.split("=", 1)[0]; d = os.path.join(out, name)
    stolen = open(f"{d}/stolen_identical").read().strip()
    for bits, f in (("256-bit", "probe256.json"), ("128-bit", "probe128.json")):
        pr = load(f"{d}/{f}")
        if not pr:
            print(f"| {name} | {bits} | (no result) | | | | | |"); continue
        print(f"| {name} | {bits} | {'**yes**' if pr['recovered'] else 'no'} | {pr['seconds']:.1f} s | "
              f"{pr['params_used'] if pr['recovered'] else '-'} | {pr['hypotheses']} | {pr['tries']} | "
              f"{(stolen if bits == '256-bit' else '-') if pr['recovered'] else '-'} |")
print("\n### Fine-tuning attack: test accuracy per epoch\n")
for nd in data:
    name = nd.split("=", 1)[0]; d = os.path.join(out, name)
    print(f"**{name}** ({open(f'{d}/repaired.txt').read().strip()})\n")
    print("| training images | start from | test accuracy after each epoch (%) | final |")
    print("|---|---|---|---|")
    ns = sorted({int(f.split("_")[-1].split(".")[0]) for f in os.listdir(d) if f.startswith("ft_") and f.endswith(".rc")})
    for n in ns:
        for how, label in (("raw", "locked weights as they are"), ("repaired", "locked weights, repaired"),
                           ("scratch", "from scratch")):
            rc = int(open(f"{d}/ft_{how}_{n}.rc").read())
            if rc != 0:
                err = open(f"{d}/ft_{how}_{n}.err").read().strip().splitlines()
                print(f"| {n} | {label} | failed: {err[-1] if err else 'exit %d' % rc} | - |"); continue
            j = load(f"{d}/ft_{how}_{n}.json")
            curve = ", ".join(f"{100 * e['test_acc']:.2f}" for e in j["epochs"])
            print(f"| {n} | {label} | {curve} | {pct(j['test_acc'])} |")
    print()
EOF
echo "total time: $(( $(date +%s) - T0 )) s" >&2
