#!/bin/bash
# The key-transform lock (Maung Maung & Kiya) on one data set: a plain model, then one model per
# transform (shuffle, np, ffx at M = 4; shuffle at the smaller and larger block sizes), each
# evaluated with its key, on plain images, with random and one-step-off wrong keys, and attacked
# with the authors' key search; then transfer learning: the plain model fine-tuned with each
# key on 10% of the training set, against the same network trained from scratch on that 10%.
# Appends one section (the data set's) to a Markdown results file, keeping the others.
#
#   scripts/transform_repro.sh NAME DATA_DIR OUT.md [EPOCHS] [SEEDS]
#   e.g. scripts/transform_repro.sh Fashion-MNIST /usr/share/datasets/fashion-mnist docs/results-transform.md 10 1
#        TRAIN_ARGS="--augment-crop 4 --augment-flip" BLOCKS="2 8" \
#        scripts/transform_repro.sh "CIFAR-10 (JPEG q75 copy)" /tmp/cifar10 docs/results-transform.md 10 1
# Environment: ARCH (default cnn), TRAIN_ARGS (flags for every training), BLOCKS (the other
# block sizes for shuffle, default "2 7": they must divide the image), FT_EPOCHS (transfer
# learning, default EPOCHS; 0 skips it), CONFIGS (METHOD:M list replacing the default one), TRIALS (wrong keys per kind, default 10), BUDGET (key search,
# default 200), NNLOCK (binary, default build/nnlock), NNLOCK_COMMIT (the commit that binary was
# built from, recorded in the results; default the checkout's HEAD), WORK (scratch directory, kept: finished
# steps are not redone, so a rerun resumes), THREADS (default all cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,/^[^#]/{/^#/p}' "$0" >&2; exit 2; }
[ $# -ge 3 ] || usage
name=$1 data=$2 out=$3 epochs=${4:-10} seeds=${5:-1}
[ -e "$data" ] || { echo "transform_repro: no data set at '$data'" >&2; exit 2; }
case $seeds in *[!0-9]*|"") echo "transform_repro: SEEDS must be a positive integer" >&2; exit 2 ;; esac
# EPOCHS may be fractional (airbench's recipe trains 9.9 epochs).
[[ $epochs =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "transform_repro: EPOCHS must be a positive number, got '$epochs'" >&2; exit 2; }
nnlock=${NNLOCK:-$root/build/nnlock}
[ -x "$nnlock" ] || { echo "transform_repro: no nnlock binary at '$nnlock' (build first or set NNLOCK)" >&2; exit 2; }
arch=${ARCH:-cnn} blocks=${BLOCKS:-2 7} ft_epochs=${FT_EPOCHS:-$epochs} trials=${TRIALS:-10} budget=${BUDGET:-200}
threads=${THREADS:-0}
work=${WORK:-$(mktemp -d /tmp/transform-repro.XXXXXX)}
mkdir -p "$work"
read -r -a extra <<< "${TRAIN_ARGS:-}"
cmdline="$(env | grep -E '^(ARCH|TRAIN_ARGS|BLOCKS|CONFIGS|FT_EPOCHS|TRIALS|BUDGET|THREADS)=' | sed 's/=\(.*\)/="\1"/' | tr '\n' ' ')scripts/transform_repro.sh $*"
log() { echo "transform_repro [$(date +%H:%M:%S)] $*" >&2; }

# step OUT CMD...: runs CMD with its stdout into OUT, unless OUT exists (atomically: a killed
# step leaves nothing, and a rerun redoes only what is missing).
step() {
    local o=$1; shift
    [ -s "$o" ] && return 0
    log "${o#$work/}"
    local t0 t1
    t0=$(date +%s)
    "$@" > "$o.part" 2> "$o.err" || { echo "transform_repro: $* failed:" >&2; tail -3 "$o.err" >&2; rm -f "$o.part"; return 1; }
    t1=$(date +%s)
    echo $((t1 - t0)) > "$o.seconds"
    mv "$o.part" "$o"
}
train() { # OUT.nnl [flags]: the model and its JSON report
    local m=$1; shift
    step "$m.json" "$nnlock" train --data "$data" --arch "$arch" --epochs "$epochs" -t "$threads" --quiet --json \
        ${extra[@]+"${extra[@]}"} -o "$m" "$@"
}
# The image shape, for keygen, from the data set's IDX header (image folders here: CIFAR-10).
read -r c h w < <(/usr/bin/python3 - "$data" <<'PY'
import glob, gzip, os, struct, sys
d = sys.argv[1]
idx = glob.glob(os.path.join(d, "t10k-images*"))
if idx:
    f = gzip.open(idx[0]) if idx[0].endswith(".gz") else open(idx[0], "rb")
    _, n, hh, ww = struct.unpack(">IIII", f.read(16)); print(1, hh, ww)
else:
    print(3, 32, 32)  # the image folders used here (CIFAR-10) are 32x32 colour
PY
)
if [ -n "${CONFIGS:-}" ]; then
    configs=$CONFIGS
else
    configs="shuffle:4 np:4 ffx:4"
    for b in $blocks; do configs="$configs shuffle:$b"; done
fi
limit=$(/usr/bin/python3 - "$data" <<'PY'
import glob, gzip, os, struct, sys
d = sys.argv[1]
idx = glob.glob(os.path.join(d, "train-images*"))
if idx:
    f = gzip.open(idx[0]) if idx[0].endswith(".gz") else open(idx[0], "rb")
    print(struct.unpack(">IIII", f.read(16))[1] // 10)
else:
    print(sum(len(fs) for _, _, fs in os.walk(os.path.join(d, "train"))) // 10)
PY
)
start=$(date +%s)
for s in $(seq 1 "$seeds"); do
    train "$work/plain-s$s.nnl" --seed "$s"
    step "$work/plain-s$s.eval.json" "$nnlock" eval "$work/plain-s$s.nnl" --data "$data" -t "$threads" --json
    for cfg in $configs; do
        method=${cfg%:*} block=${cfg#*:} base="$work/$method-m$block"
        key="$base.key"
        [ -f "$key" ] || "$nnlock" keygen --lock transform --method "$method" --block "$block" --shape "${c}x${h}x${w}" \
            --key-seed $((1000 + block)) -o "$key" > /dev/null
        train "$base-s$s.nnl" --seed "$s" --key "$key"
        step "$base-s$s.eval.json" "$nnlock" eval "$base-s$s.nnl" --data "$data" -t "$threads" --key "$key" \
            --baseline "$work/plain-s$s.nnl" --trials "$trials" --json
        step "$base-s$s.search.json" "$nnlock" attack key-search "$base-s$s.nnl" --data "$data" -t "$threads" \
            --budget "$budget" --key "$key" --json
        if [ "$block" = 4 ] && [ "$ft_epochs" != 0 ]; then
            # Transfer learning on 10% of the training set: from the plain model, and from scratch.
            step "$base-s$s.ft.json" "$nnlock" train --data "$data" --init "$work/plain-s$s.nnl" --epochs "$ft_epochs" \
                -t "$threads" --quiet --json ${extra[@]+"${extra[@]}"} --limit "$limit" --seed "$s" --key "$key" \
                -o "$base-s$s.ft.nnl"
            step "$base-s$s.scratch.json" "$nnlock" train --data "$data" --arch "$arch" --epochs "$ft_epochs" \
                -t "$threads" --quiet --json ${extra[@]+"${extra[@]}"} --limit "$limit" --seed "$s" --key "$key" \
                -o "$base-s$s.scratch.nnl"
        fi
    done
done
minutes=$(( ($(date +%s) - start + 59) / 60 ))

/usr/bin/python3 - "$work" "$out" "$name" "$cmdline" "$seeds" "$configs" "$arch" "$epochs" "$ft_epochs" "$limit" \
    "$trials" "$budget" "${NNLOCK_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}" <<'PY'
import json, os, re, statistics, sys
work, out, name, cmdline, seeds, configs, arch, epochs, ft_epochs, limit, trials, budget, commit = sys.argv[1:]
seeds = int(seeds)
def load(p):
    return json.load(open(p)) if os.path.exists(p) else None
def secs(p):
    return int(open(p + ".seconds").read()) if os.path.exists(p + ".seconds") else 0
def pm(vals):
    vals = [100 * v for v in vals if v is not None]
    if not vals: return "-"
    if len(vals) == 1: return f"{vals[0]:.2f}"
    return f"{statistics.mean(vals):.2f} +/- {statistics.stdev(vals):.2f}"
plain = [load(f"{work}/plain-s{s}.eval.json") for s in range(1, seeds + 1)]
lines = [f"## {name}", "", f"Command: `{cmdline}`", "",
         f"`{arch}`, {epochs} epochs; {seeds} seed(s), mean +/- std where more than one. Plain model (no lock): "
         f"{pm([p['accuracy'] for p in plain if p])}% ({secs(f'{work}/plain-s1.nnl.json')} s to train).", "",
         "| Method | M | Right key | Plain images | Remapped | Wrong keys mean / max | One step off mean / max | Key search: random / climbing | Train s |",
         "|---|---|---|---|---|---|---|---|---|"]
for cfg in configs.split():
    method, block = cfg.split(":")
    base = f"{work}/{method}-m{block}"
    ev = [load(f"{base}-s{s}.eval.json") for s in range(1, seeds + 1)]
    ks = [load(f"{base}-s{s}.search.json") for s in range(1, seeds + 1)]
    if not any(ev): continue
    g = lambda rows, k: [r[k] for r in rows if r and k in r]
    lines.append(f"| {method} | {block} | {pm(g(ev, 'authorized'))} | {pm(g(ev, 'unauthorized'))} | {pm(g(ev, 'remapped_mean'))} | "
                 f"{pm(g(ev, 'wrong_key_mean'))} / {pm(g(ev, 'wrong_key_max'))} | {pm(g(ev, 'neighbour_key_mean'))} / "
                 f"{pm(g(ev, 'neighbour_key_max'))} | {pm(g(ks, 'random_best'))} / {pm(g(ks, 'climb'))} | "
                 f"{secs(base + '-s1.nnl.json')} |")
tta = []
p1 = load(f"{work}/plain-s1.nnl.json")
if p1 and "test_acc_tta" in p1:
    tta.append(f"plain {pm([load(f'{work}/plain-s{s}.nnl.json').get('test_acc_tta') for s in range(1, seeds + 1)])}")
    for cfg in configs.split():
        method, block = cfg.split(":")
        tr = [load(f"{work}/{method}-m{block}-s{s}.nnl.json") for s in range(1, seeds + 1)]
        if any(tr): tta.append(f"{method} M={block} {pm([r.get('authorized_acc_tta') for r in tr if r])}")
if tta:
    lines += ["", "The accuracies above are measured by `nnlock eval`, without test-time augmentation. With the "
              "recipe's test-time augmentation (mirror and translate, measured by `train` at the end; each view is made "
              "of the plain image, then keyed): " + "; ".join(tta) + "."]
lines += ["", "Right key = test accuracy with the key applied to every image (authorized users); plain images = the "
          "locked model on plain test images (unauthorized users); remapped = plain-image accuracy after relabelling the "
          "outputs with a mapping learnt from 1% of the test images; "
          f"wrong keys = {trials} random keys of the method and size, one step off = {trials} keys one swap (shuffle) or "
          f"one flipped position (np, ffx) from the right key; key search = the best of {budget} random keys, and hill "
          f"climbing over {budget} one-step moves, each chosen on 1% of the test images and measured on the other 99%. "
          f"nnlock {commit}; train s = seconds to train on the 2 cores (other work shared them at times)."]
if ft_epochs != "0": lines += ["",
          f"Transfer learning: the plain model fine-tuned with the key on {limit} training images (10%) for {ft_epochs} "
          "epochs, against the same network trained from scratch with the key on the same images; the full-data right-key "
          "accuracy above is the reference.", "",
          "| Method | M | Fine-tuned from plain | From scratch | Full data |", "|---|---|---|---|---|"]
for cfg in configs.split():
    method, block = cfg.split(":")
    if block != "4" or ft_epochs == "0": continue
    base = f"{work}/{method}-m{block}"
    ft = [load(f"{base}-s{s}.ft.json") for s in range(1, seeds + 1)]
    sc = [load(f"{base}-s{s}.scratch.json") for s in range(1, seeds + 1)]
    ev = [load(f"{base}-s{s}.eval.json") for s in range(1, seeds + 1)]
    lines.append(f"| {method} | {block} | {pm([r['authorized_acc'] for r in ft if r])} | "
                 f"{pm([r['authorized_acc'] for r in sc if r])} | {pm([r['authorized'] for r in ev if r])} |")
section = "\n".join(lines) + "\n"
text = open(out).read() if os.path.exists(out) else "# The key-transform lock: results\n\n"
pat = re.compile(r"^## " + re.escape(name) + r"\n.*?(?=^## |\Z)", re.S | re.M)
text = pat.sub(lambda _: section + "\n", text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
tmp = out + ".tmp"
open(tmp, "w").write(text)
os.replace(tmp, out)
PY
log "done in $minutes minutes; $out"
