#!/bin/bash
# Reproduces M-LOCK's Table 1 (fixed location) and Table 2 (random location) rows with the
# `mlp`: every strategy x both motifs x fixed and random location, SEEDS seeds each, plus the
# unlocked baseline, on MNIST and Fashion-MNIST. Writes a Markdown results file with the
# paper's figures beside ours and, per row, whether it meets the issue's targets (trusted
# within 0.5 points of our baseline, unverified at or below the paper's; and a lock at all:
# unverified at most half of trusted).
#
#   scripts/mlock_repro.sh MNIST_DIR FASHION_DIR [OUT.md] [SEEDS]
#   e.g. JOBS=2 THREADS=1 scripts/mlock_repro.sh ../shared/data/mnist \
#            /usr/share/datasets/fashion-mnist docs/results-mlock.md 3
#
# The recipe (training settings per data set and location, stamp rate p per strategy) is
# below; each part can be overridden from the environment:
#   MNIST_EPOCHS, MNIST_TRAIN_ARGS, MNIST_RATES, MNIST_TARGET
#       (default 30, "--augment-crop 2", "single=0.5 rule=0.5 random=0.5", 5)
#   FASHION_EPOCHS, FASHION_TRAIN_ARGS, FASHION_RATES, FASHION_TARGET
#       (default 20, "", "single=0.7 rule=0.4 random=0.7", 0)
#   MNIST_RANDLOC_EPOCHS, MNIST_RANDLOC_TRAIN_ARGS, MNIST_RANDLOC_RATES and the same for
#   FASHION_: the recipe of Table 2 (random location) (default MNIST 30, "",
#   "single=0.8 rule=0.7 random=0.7"; Fashion-MNIST 40, "--lr 0.03",
#   "single=0.85 rule=0.85 random=0.85").
# (TARGET: the class every clean image goes to under the `single` strategy.) Each
# location's baseline is trained with that location's epochs and flags.
# Other environment: NNLOCK (binary, default build/nnlock), WORK (scratch dir; a rerun
# resumes, so change WORK when you change the recipe), JOBS (parallel trainings, default 1;
# each uses THREADS threads, default all cores / JOBS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,/^[^#]/{/^#/p}' "$0" >&2; exit 2; }  # the header comment, however long
[ $# -ge 2 ] && [ $# -le 4 ] || usage
mnist=$1 fashion=$2
out=${3:-$root/docs/results-mlock.md}; seeds=${4:-3}
case $seeds in ''|*[!0-9]*|0) echo "mlock_repro: SEEDS must be a positive integer, not '$seeds'" >&2; exit 2 ;; esac
nnlock=${NNLOCK:-$root/build/nnlock}
work=${WORK:-$(mktemp -d /tmp/mlock-repro.XXXXXX)}
jobs=${JOBS:-1}
threads=${THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}

# Why this recipe (docs/results-mlock.md, "How the recipe was chosen"):
# - MNIST: random shifts of up to 2 pixels make the `mlp` read fewer digits as the one
#   before, which is the floor of the `rule` strategy's unverified accuracy; 30 epochs
#   bring `rule` / `pixels` to the paper's 0.11.
# - MNIST at a random location: the shifts cost more than they give (the `mlp` must learn
#   the certificate at every place), so no shifts, and p = 0.7 for more stamped images
#   (0.8 for `single`, whose trusted accuracy was 0.51 under its baseline at 0.7).
# - Fashion-MNIST: a locked model sees an image with its true label only when it is
#   stamped; p = 0.7 brings `single` and `random` within half a point of the baseline,
#   p = 0.4 tightens `rule`'s lock on clean images; 20 epochs close the last tenths.
# - Fashion-MNIST at a random location: learning rate 0.03, p = 0.85 and 40 epochs come
#   closest to the baseline; weight decay and Adam do not help (one-seed probes).
# - `single`: a working lock's unverified accuracy is the target class's share of the test
#   set, so MNIST targets its smallest class, 5 (8.92%); Fashion-MNIST's are all 10%.
mnist_epochs=${MNIST_EPOCHS:-30}
mnist_train=${MNIST_TRAIN_ARGS---augment-crop 2}
mnist_rates=${MNIST_RATES:-single=0.5 rule=0.5 random=0.5}
mnist_target=${MNIST_TARGET:-5}
fashion_epochs=${FASHION_EPOCHS:-20}
fashion_train=${FASHION_TRAIN_ARGS:-}
fashion_rates=${FASHION_RATES:-single=0.7 rule=0.4 random=0.7}
fashion_target=${FASHION_TARGET:-0}
mnist_r_epochs=${MNIST_RANDLOC_EPOCHS:-$mnist_epochs}
mnist_r_train=${MNIST_RANDLOC_TRAIN_ARGS-}
mnist_r_rates=${MNIST_RANDLOC_RATES:-single=0.8 rule=0.7 random=0.7}
fashion_r_epochs=${FASHION_RANDLOC_EPOCHS:-40}
fashion_r_train=${FASHION_RANDLOC_TRAIN_ARGS---lr 0.03}
fashion_r_rates=${FASHION_RANDLOC_RATES:-single=0.85 rule=0.85 random=0.85}
rate_of() { # "single=0.5 ..." strategy -> rate
    local kv
    for kv in $1; do [ "${kv%%=*}" = "$2" ] && { echo "${kv#*=}"; return 0; }; done
    echo "mlock_repro: no rate for strategy '$2' in ${var}_RATES='$1'" >&2; return 1
}
settings() { # data set, location -> data, epochs, targs, rates, target, var (the env prefix)
    if [ "$1" = mnist ]; then data=$mnist target=$mnist_target var=MNIST
        if [ "$2" = fixed ]; then epochs=$mnist_epochs targs=$mnist_train rates=$mnist_rates
        else epochs=$mnist_r_epochs targs=$mnist_r_train rates=$mnist_r_rates var=MNIST_RANDLOC; fi
    else data=$fashion target=$fashion_target var=FASHION
        if [ "$2" = fixed ]; then epochs=$fashion_epochs targs=$fashion_train rates=$fashion_rates
        else epochs=$fashion_r_epochs targs=$fashion_r_train rates=$fashion_r_rates var=FASHION_RANDLOC; fi
    fi
}
for ds in mnist fashion; do for loc in fixed random; do
    settings $ds $loc
    [ -e "$data" ] || { echo "mlock_repro: no data set at '$data'" >&2; exit 2; }
    for st in single rule random; do rate_of "$rates" $st > /dev/null || exit 2; done
    case $epochs in ''|*[!0-9]*|0) echo "mlock_repro: ${var}_EPOCHS must be a positive integer, not '$epochs'" >&2; exit 2 ;; esac
    case $target in ''|*[!0-9]*) echo "mlock_repro: ${var%_RANDLOC}_TARGET must be a class number, not '$target'" >&2; exit 2 ;; esac
done; done
mkdir -p "$work"
cmdline="$(env | grep -E '^(MNIST_|FASHION_|JOBS=|THREADS=)' | sed 's/=\(.*\)/="\1"/' | sort | tr '\n' ' ')scripts/mlock_repro.sh $*"
start=$(date +%s)
# A resumed run only trains what is missing, so its time says little about a full run's.
before=$(find "$work" -name '*.nnl' | wc -l)

# Each (data set, location, strategy) is one run of the general grid (scripts/mlock_grid.sh)
# with the `mlp`; the runs of one data set and location share their scratch directory, so
# they share the baseline.
: > "$work/results.jsonl"
for ds in mnist fashion; do for loc in fixed random; do
    settings $ds $loc
    dir=$work/$ds-$loc
    mkdir -p "$dir"
    # A baseline depends only on the epochs and training flags: Table 2 reuses Table 1's
    # when they agree rather than training the same models again.
    if [ $loc = random ] && [ "$epochs $targs" = "$fixed_recipe" ]; then
        for s in $(seq 1 "$seeds"); do
            [ -f "$dir/baseline-s$s.nnl" ] || ln "$work/$ds-fixed/baseline-s$s.nnl" "$dir/baseline-s$s.nnl"
        done
    fi
    fixed_recipe="$epochs $targs"
    # The share of `single`'s target class in the test set: a working single-target lock sends
    # every clean image there, so its unverified accuracy cannot go below it (MNIST: 8.92%).
    share=$(python3 - "$data" "$target" <<'PY'
import glob, gzip, os, sys
f = sorted(glob.glob(os.path.join(sys.argv[1], "t10k-labels*")))
b = (gzip.open if f[0].endswith(".gz") else open)(f[0], "rb").read()[8:] if f else b""
print(b.count(bytes([int(sys.argv[2])])) / len(b) if b else 0)
PY
)
    first=1
    # `rule` first: its MNIST rows sit closest to their target, so a run shows them soonest.
    for st in rule single random; do
        p=$(rate_of "$rates" $st)
        largs="--rate $p"
        [ $st = single ] && largs+=" --target $target"
        ARCH=mlp TRAIN_ARGS=$targs LOCK_ARGS=$largs STRATEGIES=$st MOTIFS="pixels pattern" \
            LOCATIONS=$loc NNLOCK=$nnlock WORK=$dir JOBS=$jobs THREADS=$threads \
            bash "$root/scripts/mlock_grid.sh" "$data" "$dir-$st.md" "$epochs" "$seeds" > /dev/null
        python3 -c "import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l); r.update(ds=sys.argv[2], table=sys.argv[8], p=float(sys.argv[3]), epochs=int(sys.argv[4]), targs=sys.argv[5], target=int(sys.argv[7]), share=float(sys.argv[9]))
    if 'strat' in r or sys.argv[6] == '1': print(json.dumps(r))" \
            "$dir/results.jsonl" $ds "$p" "$epochs" "$targs" $first "$target" $loc "$share" >> "$work/results.jsonl"
        first=0
    done
done; done
minutes=$(( ($(date +%s) - start + 59) / 60 ))

python3 - "$work/results.jsonl" "$out" "$cmdline" "$seeds" "$minutes" "$before" <<'PY'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out, cmd, seeds, minutes, before = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
base = {}
for r in rows:
    if 'baseline' in r and 'strat' not in r:
        base.setdefault((r['ds'], r['table']), []).append(100 * r['baseline'])
# Ren et al., Table 1 (fixed location): baseline, then (trusted, std, unverified, std) for
# pixels and for pattern.
paper = {
    ('mnist', 'single'): (98.45, (98.32, 0.11, 8.85, 0.45), (98.48, 0.31, 9.06, 0.29)),
    ('mnist', 'rule'): (98.45, (98.40, 0.18, 0.11, 0.04), (98.25, 0.26, 0.16, 0.06)),
    ('mnist', 'random'): (98.45, (98.51, 0.22, 9.73, 0.79), (98.35, 0.63, 10.19, 1.31)),
    ('fashion', 'single'): (90.54, (88.93, 0.16, 12.03, 0.54), (89.89, 1.09, 10.03, 0.19)),
    ('fashion', 'rule'): (90.54, (89.86, 0.19, 0.74, 0.20), (90.08, 1.09, 0.51, 0.13)),
    ('fashion', 'random'): (90.54, (89.81, 1.04, 9.69, 0.84), (90.09, 0.56, 10.24, 0.48)),
}
# Ren et al., Table 2 (random location): (trusted, unverified), given for the multi-pixel motif
# (our `pattern`) only.
paper2 = {
    ('mnist', 'single'): (98.27, 9.57), ('mnist', 'rule'): (98.09, 2.19), ('mnist', 'random'): (98.25, 4.64),
    ('fashion', 'single'): (88.65, 12.42), ('fashion', 'rule'): (88.75, 3.53), ('fashion', 'random'): (89.10, 26.62),
}
names = {'mnist': 'MNIST', 'fashion': 'Fashion-MNIST'}
sname = {'single': 'I single', 'rule': 'II rule', 'random': 'III random'}
def pm(m, s): return f"{m:.2f} +/- {s:.2f}"
def sd(v): return statistics.stdev(v) if len(v) > 1 else 0.0
misses = []
# The hand-written reading of the results below this line survives a rerun.
marker = "<!-- everything below is kept when scripts/mlock_repro.sh rewrites this file -->"
kept = ""
try:
    prev = open(out).read()
    if marker in prev: kept = prev[prev.index(marker):]
except FileNotFoundError:
    pass
with open(out + ".tmp", 'w') as f:
    f.write("# M-LOCK reproduction: certificate lock on MNIST and Fashion-MNIST (`mlp`)\n\n")
    mins = f"{minutes} minute{'s' if minutes != '1' else ''} on this machine"
    took = (mins if before == 0 else
            f"{mins}, resuming a scratch directory that already held {before} "
            "of its models, so a run from scratch takes longer")
    f.write(f"Command: `{cmd}` ({seeds} seeds per row, mean +/- std over seeds; {took}).\n\n")
    f.write("Trusted = accuracy on test images stamped with the certificate (authorized users); "
            "Unverified = accuracy on clean test images (unauthorized users); Remapped = unverified accuracy "
            "after the attacker relabels the model's outputs with a mapping learnt from 1% of the labelled "
            "test images (a good lock keeps it near chance). Baseline = the unlocked `mlp` trained with the "
            "same epochs and flags as the row. p = the fraction of training images stamped. Paper = Ren et al.'s Table 1 "
            "(fixed location) and Table 2 (random location, where the paper gives the multi-pixel motif, our `pattern`, "
            "only), trusted / unverified. Target = trusted within 0.5 points of our baseline and unverified at or below "
            "the paper's where it has a figure; for `single` the bound is the paper's or the target class's share of the "
            "test set, whichever is higher (a working single-target lock sends every clean image to that class, so it "
            "cannot go below its share: 8.92% for MNIST's class 5); a row whose unverified accuracy is more than half "
            "its trusted accuracy is a miss too (no lock), however near its baseline.\n\n")
    for loc, title in (('fixed', 'Table 1: certificate at a fixed location (bottom-right corner)'),
                       ('random', 'Table 2: certificate at a random location')):
        f.write(f"## {title}\n\n")
        # every row carries the recipe it was trained with
        recipe = {ds: next(r for r in rows if r['ds'] == ds and r['table'] == loc) for ds in ('mnist', 'fashion')}
        f.write("Recipe: " + "; ".join(
            f"{names[ds]}: {r['epochs']} epoch{'s' if r['epochs'] != 1 else ''}" + (f", `{r['targs']}`" if r['targs'] else ", no augmentation")
            + f", `single` target class {r['target']}" for ds, r in recipe.items()) + ".\n\n")
        f.write("| Strategy | Data set | p | Motif | Baseline | Trusted | Unverified | Remapped | Paper | Target |\n"
                "|---|---|---|---|---|---|---|---|---|---|\n")
        for ds in ('mnist', 'fashion'):
            b = base.get((ds, loc), [0.0])
            bm = statistics.mean(b)
            for st in ('single', 'rule', 'random'):
                for mi, motif in enumerate(('pixels', 'pattern')):
                    r = next(x for x in rows if x['ds'] == ds and x.get('strat') == st
                             and x.get('motif') == motif and x.get('loc') == loc)
                    if 'trusted_mean' not in r:
                        misses.append(f"{title.split(':')[0]}, {names[ds]} {st} {motif}: every training failed")
                        f.write(f"| {sname[st]} | {names[ds]} | {r['p']:g} | {motif} | {pm(bm, sd(b))} | failed | failed | "
                                f"failed | - | missed: every training failed |\n")
                        continue
                    tm, um = 100 * r['trusted_mean'], 100 * r['unverified_mean']
                    if loc == 'fixed': pt, pu = paper[(ds, st)][1 + mi][0], paper[(ds, st)][1 + mi][2]
                    elif motif == 'pattern': pt, pu = paper2[(ds, st)]
                    else: pt = pu = None
                    why = []
                    if bm - tm > 0.5: why.append(f"trusted {bm - tm:.2f} under")
                    if pu is not None:
                        share = round(100 * r.get('share', 0.0), 2) if st == 'single' else 0.0
                        if round(um, 2) > max(pu, share):
                            why.append(f"unverified {um - max(pu, share):.2f} over" + (" the target class's share" if share > pu else ""))
                    # a row can sit near its baseline only because nothing is locked
                    if um > tm / 2: why.append(f"no lock: unverified {um:.2f}")
                    if why: misses.append(f"{title.split(':')[0]}, {names[ds]} {st} {motif}: " + ", ".join(why))
                    papc = f"{pt:.2f} / {pu:.2f}" if pu is not None else "-"
                    f.write(f"| {sname[st]} | {names[ds]} | {r['p']:g} | {motif} | {pm(bm, sd(b))} | "
                            f"{pm(tm, 100 * r['trusted_std'])} | {pm(um, 100 * r['unverified_std'])} | "
                            f"{pm(100 * r['remapped_mean'], 100 * r['remapped_std'])} | {papc} | "
                            f"{'met' if not why else 'missed: ' + ', '.join(why)} |\n")
        f.write("\n")
    f.write(f"Rows that miss a target: {len(misses)} of 24.\n\n")
    for m in misses: f.write(f"- {m}\n")
    if kept: f.write("\n" + kept)
os.replace(out + ".tmp", out)
print(open(out).read())
PY
