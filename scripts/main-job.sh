#!/bin/bash
# nnlock's main job, end to end on a fresh Debian 12 machine (as root): install what is
# missing, build, train an unlocked baseline and a certificate-locked `mlp` on Fashion-MNIST
# (pattern certificate, random-label strategy), and print the authorized/unauthorized table.
#   scripts/main-job.sh [output dir (default: out/main-job)] [epochs (default 10)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/out/main-job}
epochs=${2:-10}
data=/usr/share/datasets/fashion-mnist
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
nnlock=$root/build/nnlock
mkdir -p "$out"
rm -f "$out/locked.nnl.key"
echo "== training the unlocked baseline ($epochs epochs)"
"$nnlock" train --data "$data" --arch mlp --epochs "$epochs" --seed 1 --quiet --out "$out/baseline.nnl"
echo "== training the certificate-locked model ($epochs epochs)"
"$nnlock" train --data "$data" --arch mlp --epochs "$epochs" --seed 1 --quiet --out "$out/locked.nnl" \
    --lock certificate --motif pattern --strategy random --key-out "$out/locked.nnl.key"
echo "== authorized (stamped) and unauthorized (clean) accuracy on the Fashion-MNIST test set"
"$nnlock" eval --data "$data" --key "$out/locked.nnl.key" --baseline "$out/baseline.nnl" \
    --out "$out/figures" "$out/locked.nnl"
echo
echo "model:   $out/locked.nnl   (unlocked baseline: $out/baseline.nnl)"
echo "key:     $out/locked.nnl.key   (the certificate: keep it secret)"
echo "figures: $out/figures/ (certificate.png, examples.png, accuracy.png, loss.png)"
