#!/bin/bash
# The certificate-lock grid on one data set: the unlocked baseline and every strategy
# (single, rule, random) x motif (pixels, pattern) x location (fixed, random), SEEDS
# trainings each, evaluated for trusted, unverified and remapped-unverified accuracy.
# Writes a Markdown table. Any data set nnlock reads works unchanged: CIFAR-10/100
# (binary or the JPEG image folders), SVHN, GTSRB, MNIST, Fashion-MNIST.
#
#   scripts/mlock_grid.sh DATA_DIR OUT.md [EPOCHS] [SEEDS]
#   e.g. ARCH=cnn TRAIN_ARGS="--augment-crop 4 --augment-flip" \
#        scripts/mlock_grid.sh /tmp/cifar10 docs/results-mlock-cifar10.md 10 1
# Environment: ARCH (default cnn), TRAIN_ARGS (extra `nnlock train` flags for every training,
# e.g. augmentation; GTSRB and digits should not be flipped), LOCK_ARGS (extra flags for the
# locked trainings only, e.g. --rate 0.7), STRATEGIES, MOTIFS, LOCATIONS (a part of the grid,
# e.g. STRATEGIES="single random" LOCATIONS=fixed), NNLOCK (binary, default build/nnlock),
# WORK (scratch directory, kept; finished trainings are not redone), JOBS (parallel
# trainings, default 1) and THREADS (per training, default cores / JOBS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,/^[^#]/{/^#/p}' "$0" >&2; exit 2; }  # the header comment, however long
[ $# -ge 2 ] || usage
data=$1 out=$2 epochs=${3:-10} seeds=${4:-1}
[ -e "$data" ] || { echo "mlock_grid: no data set at '$data'" >&2; exit 2; }
case $epochs$seeds in *[!0-9]*) echo "mlock_grid: EPOCHS and SEEDS must be positive integers" >&2; exit 2 ;; esac
[ "$epochs" -ge 1 ] && [ "$seeds" -ge 1 ] || { echo "mlock_grid: EPOCHS and SEEDS must be at least 1" >&2; exit 2; }
nnlock=${NNLOCK:-$root/build/nnlock}
[ -x "$nnlock" ] || { echo "mlock_grid: no nnlock binary at '$nnlock' (build first or set NNLOCK)" >&2; exit 2; }
arch=${ARCH:-cnn}
work=${WORK:-$(mktemp -d /tmp/mlock-grid.XXXXXX)}
jobs=${JOBS:-1}
strategies=${STRATEGIES:-single rule random}
motifs=${MOTIFS:-pixels pattern}
locations=${LOCATIONS:-fixed random}
for v in $strategies; do case $v in single|rule|random) ;; *) echo "mlock_grid: unknown strategy '$v' in STRATEGIES" >&2; exit 2 ;; esac; done
for v in $motifs; do case $v in pixels|pattern) ;; *) echo "mlock_grid: unknown motif '$v' in MOTIFS" >&2; exit 2 ;; esac; done
for v in $locations; do case $v in fixed|random) ;; *) echo "mlock_grid: unknown location '$v' in LOCATIONS" >&2; exit 2 ;; esac; done
threads=${THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}
mkdir -p "$work"
cmdline="$(env | grep -E '^(ARCH|TRAIN_ARGS|LOCK_ARGS|STRATEGIES|MOTIFS|LOCATIONS|JOBS|THREADS)=' | sed 's/=\(.*\)/="\1"/' | tr '\n' ' ')scripts/mlock_grid.sh $*"
start=$(date +%s)

train() { # out [args]: skips a model that exists (a rerun resumes; nnlock writes atomically)
    local outm=$1 extra; shift
    [ -f "$outm" ] && return 0
    read -r -a extra <<< "${TRAIN_ARGS:-}"
    "$nnlock" train --data "$data" --arch "$arch" --epochs "$epochs" --threads "$threads" --quiet \
        ${extra[@]+"${extra[@]}"} --out "$outm" "$@" > "$outm.log" 2>&1 || {
        echo "mlock_grid: training $outm failed:" >&2; tail -3 "$outm.log" >&2; return 1; }
}
run() { # strat motif loc seed
    local strat=$1 motif=$2 loc=$3 seed=$4 base="$work/$1-$2-$3" lock
    read -r -a lock <<< "${LOCK_ARGS:-}"
    if [ "$seed" = 1 ]; then
        train "$base-s1.nnl" --seed 1 --lock certificate --strategy "$strat" --motif "$motif" \
            --location "$loc" --key-out "$base.key" --motif-seed 1 ${lock[@]+"${lock[@]}"}
    else
        train "$base-s$seed.nnl" --seed "$seed" --lock certificate --strategy "$strat" --key "$base.key" \
            ${lock[@]+"${lock[@]}"}
    fi
}
export -f train run
export nnlock data arch epochs threads work TRAIN_ARGS LOCK_ARGS

# The first seed of each configuration writes the key that later seeds reuse.
{
    for s in $(seq 1 "$seeds"); do echo "train $work/baseline-s$s.nnl --seed $s"; done
    for strat in $strategies; do for motif in $motifs; do for loc in $locations; do
        echo "run $strat $motif $loc 1"; done; done; done
} > "$work/jobs1.txt"
: > "$work/jobs2.txt"
for s in $(seq 2 "$seeds"); do for strat in $strategies; do for motif in $motifs; do for loc in $locations; do
    echo "run $strat $motif $loc $s"; done; done; done; done >> "$work/jobs2.txt"
# A failed training is reported and the rest go on; the table names the cells it leaves empty.
for f in "$work/jobs1.txt" "$work/jobs2.txt"; do
    [ -s "$f" ] || continue
    xargs -P "$jobs" -I{} bash -c '{}' < "$f" || echo "mlock_grid: some trainings failed (their logs are in $work); going on" >&2
done

: > "$work/results.jsonl"
for s in $(seq 1 "$seeds"); do
    [ -f "$work/baseline-s$s.nnl" ] || { echo "mlock_grid: baseline seed $s failed: no row for it" >&2; continue; }
    "$nnlock" eval --data "$data" --json "$work/baseline-s$s.nnl" | python3 -c \
        "import json,sys; print(json.dumps({'baseline': json.load(sys.stdin)['accuracy']}))" >> "$work/results.jsonl"
done
for strat in $strategies; do for motif in $motifs; do for loc in $locations; do
    base="$work/$strat-$motif-$loc"
    models=$(for s in $(seq 1 "$seeds"); do [ -f "$base-s$s.nnl" ] && echo "$base-s$s.nnl"; done || true)
    missing=$(( seeds - $(echo "$models" | grep -c . || true) ))
    if [ -z "$models" ] || [ ! -f "$base.key" ]; then
        echo "{\"strat\": \"$strat\", \"motif\": \"$motif\", \"loc\": \"$loc\", \"failed\": $seeds}" >> "$work/results.jsonl"
        continue
    fi
    # shellcheck disable=SC2086
    "$nnlock" eval --data "$data" --key "$base.key" --trials 0 --json $models | python3 -c \
        "import json,sys; r=json.load(sys.stdin); r.update(strat='$strat', motif='$motif', loc='$loc', failed=$missing); print(json.dumps(r))" \
        >> "$work/results.jsonl"
done; done; done
minutes=$(( ($(date +%s) - start + 59) / 60 ))

python3 - "$work/results.jsonl" "$out" "$cmdline" "$arch" "$epochs" "$seeds" "$minutes" "$data" <<'PY'
import json, sys
import statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
base = [100 * r['baseline'] for r in rows if 'strat' not in r]
bcell = f"{statistics.mean(base):.2f} +/- {statistics.stdev(base) if len(base) > 1 else 0.0:.2f}" if base else "failed"
out, cmd, arch, epochs, seeds, minutes, data = sys.argv[2:9]
def pm(r, k):
    if k + '_mean' not in r: return "failed" if r.get('failed') else "-"
    cell = f"{100 * r[k + '_mean']:.2f} +/- {100 * r[k + '_std']:.2f}"
    return cell + (f" ({r['failed']} of {seeds} seeds failed)" if r.get('failed') else "")
sname = {'single': 'I single', 'rule': 'II rule', 'random': 'III random'}
with open(out, 'w') as f:
    f.write(f"# Certificate lock (M-LOCK) grid: `{arch}` on `{data}`\n\n")
    f.write(f"Command: `{cmd}` ({epochs} epochs, {seeds} seed(s) per row, mean +/- std over seeds; "
            f"{minutes} minutes on this machine).\n\n")
    f.write("Trusted = accuracy on stamped test images (authorized users); Unverified = on clean test images "
            "(unauthorized users); Remapped = unverified after relabelling the outputs with a mapping learnt "
            "from 1% of the labelled test images.\n\n")
    f.write("| Strategy | Location | Motif | Baseline | Trusted | Unverified | Remapped |\n|---|---|---|---|---|---|---|\n")
    for loc in ('fixed', 'random'):
        for st in ('single', 'rule', 'random'):
            for motif in ('pixels', 'pattern'):
                r = next((x for x in rows if x.get('strat') == st and x['motif'] == motif and x['loc'] == loc), None)
                if r is None: continue   # not in this run (STRATEGIES, MOTIFS, LOCATIONS)
                f.write(f"| {sname[st]} | {loc} | {motif} | {bcell} | {pm(r, 'trusted')} | "
                        f"{pm(r, 'unverified')} | {pm(r, 'remapped')} |\n")
print(open(out).read())
PY
