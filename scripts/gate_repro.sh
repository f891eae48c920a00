#!/bin/bash
# The gate lock (AuthNet) on one data set: per seed, the original model, the locked one (its key
# learnt by mask inversion, the tail fine-tuned), evaluated with its key, on plain images and with
# random keys; then the attacks: fine-tuning the locked model with 1/5/10% of the training images
# against training the same network from scratch on them, magnitude pruning of 10-90% of the
# tail's weights, and the adaptive attack (the attacker
# runs the mask inversion himself on 1% of the training images, gate guessed right). Writes one
# section (the data set's) of a Markdown results file, keeping the others.
#
#   scripts/gate_repro.sh NAME DATA_DIR OUT.md [SEEDS]
#   e.g. scripts/gate_repro.sh MNIST ../shared/data/mnist docs/results-gate.md 3
# Environment: ARCH (default lenet5), LOCK_ARGS (default "--bits 8 --gate-gamma 5", AuthNet's
# LeNet-5 setting), EPOCHS (the original's, default 10), LOCK_EPOCHS (the tail's, default 20),
# ATTACK_EPOCHS (default 10), INV_EPOCHS (the adaptive attacker's passes over his 1%, default
# 100: as many steps as the vendor's one pass), NNLOCK, NNLOCK_COMMIT, WORK (kept: a rerun
# resumes), THREADS (default all cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 3 ] || { sed -n '2,/^[^#]/{/^#/p}' "$0" >&2; exit 2; }
name=$1 data=$2 out=$3 seeds=${4:-3}
[ -e "$data" ] || { echo "gate_repro: no data set at '$data'" >&2; exit 2; }
case $seeds in *[!0-9]*|"") echo "gate_repro: SEEDS must be a positive integer" >&2; exit 2 ;; esac
nnlock=${NNLOCK:-$root/build/nnlock}
[ -x "$nnlock" ] || { echo "gate_repro: no nnlock binary at '$nnlock' (build first or set NNLOCK)" >&2; exit 2; }
arch=${ARCH:-lenet5} epochs=${EPOCHS:-10} lock_epochs=${LOCK_EPOCHS:-20} attack_epochs=${ATTACK_EPOCHS:-10}
inv=${INV_EPOCHS:-100} threads=${THREADS:-0}
read -r -a lockargs <<< "${LOCK_ARGS:---bits 8 --gate-gamma 5}"
work=${WORK:-$(mktemp -d /tmp/gate-repro.XXXXXX)}
mkdir -p "$work"
cmdline="$(env | grep -E '^(ARCH|LOCK_ARGS|EPOCHS|LOCK_EPOCHS|ATTACK_EPOCHS|INV_EPOCHS|THREADS)=' | sed 's/=\(.*\)/="\1"/' | tr '\n' ' ')scripts/gate_repro.sh $*"
log() { echo "gate_repro [$(date +%H:%M:%S)] $*" >&2; }
# step OUT CMD...: CMD's stdout into OUT unless OUT exists (a killed step leaves nothing).
step() {
    local o=$1; shift
    [ -s "$o" ] && return 0
    log "${o#$work/}"
    local t0; t0=$(date +%s)
    "$@" > "$o.part" 2> "$o.err" || { echo "gate_repro: $* failed:" >&2; tail -3 "$o.err" >&2; rm -f "$o.part"; return 1; }
    echo $(($(date +%s) - t0)) > "$o.seconds"
    mv "$o.part" "$o"
}
ntrain=$(/usr/bin/python3 -c "
import glob, gzip, os, struct, sys
f = glob.glob(os.path.join(sys.argv[1], 'train-images*'))[0]
print(struct.unpack('>IIII', (gzip.open(f) if f.endswith('.gz') else open(f, 'rb')).read(16))[1])" "$data")
w=$work
for s in $(seq 1 "$seeds"); do
    common=(--data "$data" -t "$threads" --quiet --json --seed "$s")
    step "$w/orig-$s.json" "$nnlock" train "${common[@]}" --arch "$arch" --optimizer adam --epochs "$epochs" -o "$w/orig-$s.nnl"
    [ -s "$w/lock-$s.json" ] || rm -f "$w/lock-$s.key" "$w/lock-$s.nnl"
    step "$w/lock-$s.json" "$nnlock" train "${common[@]}" --init "$w/orig-$s.nnl" --lock gate "${lockargs[@]}" \
        --epochs "$lock_epochs" --key-out "$w/lock-$s.key" -o "$w/lock-$s.nnl"
    step "$w/eval-$s.json" "$nnlock" eval "$w/lock-$s.nnl" --data "$data" --key "$w/lock-$s.key" -t "$threads" --json
    for pct in 1 5 10; do
        n=$((ntrain * pct / 100))
        step "$w/ft$pct-$s.json" "$nnlock" train "${common[@]}" --init "$w/lock-$s.nnl" --limit "$n" --epochs "$attack_epochs" -o "$w/ft$pct-$s.nnl"
        step "$w/scratch$pct-$s.json" "$nnlock" train "${common[@]}" --arch "$arch" --limit "$n" --epochs "$attack_epochs" -o "$w/scratch$pct-$s.nnl"
    done
    step "$w/prune-$s.json" "$nnlock" attack prune "$w/lock-$s.nnl" --data "$data" --from gate --key "$w/lock-$s.key" \
        -t "$threads" --json
    [ -s "$w/adv-$s.json" ] || rm -f "$w/adv-$s.nnl" "$w/adv-$s.nnl.key"
    step "$w/adv-$s.json" "$nnlock" train "${common[@]}" --init "$w/lock-$s.nnl" --lock gate "${lockargs[@]}" --invert-only \
        --inversion-epochs "$inv" --limit $((ntrain / 100)) --epochs 1 -o "$w/adv-$s.nnl"
    step "$w/adveval-$s.json" "$nnlock" eval "$w/lock-$s.nnl" --data "$data" --key "$w/adv-$s.nnl.key" -t "$threads" --json --trials 0
done
commit=${NNLOCK_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}
/usr/bin/python3 - "$out" "$name" "$w" "$seeds" "$cmdline" "$commit" "$lock_epochs" "$attack_epochs" <<'PY'
import json, os, re, statistics, sys
out, name, w, seeds, cmdline, commit, lock_epochs, attack_epochs = sys.argv[1:]
S = range(1, int(seeds) + 1)
J = lambda f: json.load(open(os.path.join(w, f)))
sec = lambda f: int(open(os.path.join(w, f + ".seconds")).read())
def ms(v):
    v = [100 * x for x in v]
    return f"{v[0]:.2f}" if len(v) == 1 else f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}"
orig = [J(f"orig-{s}.json")["test_acc"] for s in S]
ev = [J(f"eval-{s}.json") for s in S]
def meta(f):  # a model file's metadata (safetensors header)
    b = open(os.path.join(w, f), "rb").read(1 << 20)
    n = int.from_bytes(b[:8], "little")
    return json.loads(b[8:8 + n]).get("__metadata__", {})
chosen = [meta(f"lock-{s}.nnl").get("lock.gate.chosen_epoch", "?") for s in S]
drop = [o - e["authorized"] for o, e in zip(orig, ev)]
lines = [f"## {name}", "",
         f"Measured with `{cmdline}` (nnlock {commit}); {seeds} seed(s), mean ± std. Accuracies in % on the test set.", "",
         "| Original | Authorized (key) | Unauthorized (plain) | Remapped | Random keys (mean / max) | Nearby keys (mean / max) | Drop | Tail epochs (chosen) | Locking time |",
         "|---|---|---|---|---|---|---|---|---|",
         f"| {ms(orig)} | {ms([e['authorized'] for e in ev])} | {ms([e['unauthorized'] for e in ev])} | "
         f"{ms([e['remapped_mean'] for e in ev])} | {ms([e['random_key_mean'] for e in ev])} / {ms([e['random_key_max'] for e in ev])} | "
         f"{ms([e['neighbour_key_mean'] for e in ev])} / {ms([e['neighbour_key_max'] for e in ev])} | {ms(drop)} | "
         f"{lock_epochs} ({', '.join(chosen)}) | "
         f"{statistics.mean(sec(f'lock-{s}.json') for s in S):.0f} s |", "",
         f"Attacks (the attacker holds the locked model and labelled training images, never the key; {attack_epochs} epochs, "
         "accuracy on plain test images):", "",
         "| Attack | 1% | 5% | 10% |", "|---|---|---|---|"]
for kind, label in (("ft", "fine-tune the locked model"), ("scratch", "train from scratch on the same images")):
    lines.append(f"| {label} | " + " | ".join(ms([J(f"{kind}{p}-{s}.json")["test_acc"] for s in S]) for p in (1, 5, 10)) + " |")
pr = [J(f"prune-{s}.json")["rows"] for s in S]
lines += ["", "Magnitude pruning of the tail (the layers after the gate), no fine-tuning after it: accuracy on plain "
          "images (the attacker's) and on keyed images (what is left to an authorized user):", "",
          "| Pruned | " + " | ".join(f"{100 * r['fraction']:.0f}%" for r in pr[0]) + " |",
          "|---|" + "---|" * len(pr[0]),
          "| plain | " + " | ".join(ms([p[i]["attacker_accuracy"] for p in pr]) for i in range(len(pr[0]))) + " |",
          "| keyed | " + " | ".join(ms([p[i]["authorized"] for p in pr]) for i in range(len(pr[0]))) + " |"]
adv = [J(f"adveval-{s}.json")["authorized"] for s in S]
lines += ["", f"Adaptive attack (mask inversion by the attacker on 1% of the training images, the gate guessed right, "
          f"as many steps as the vendor's): the key found gives {ms(adv)} on keyed test images.", ""]
section = "\n".join(lines) + "\n"
text = open(out).read() if os.path.exists(out) else "# Gate lock (AuthNet): results\n\nRegenerate a section with the command it names.\n\n"
pat = re.compile(r"^## " + re.escape(name) + r"\n.*?(?=^## |\Z)", re.S | re.M)
text = pat.sub(section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
open(out + ".tmp", "w").write(text)
os.replace(out + ".tmp", out)
print(section)
PY
