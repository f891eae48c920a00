#!/bin/bash
# Generates the seed corpora of the fuzz targets: small valid models of every layer kind
# and lock, certificate keys of each motif kind, weight-lock key files and lock records.
# It never compiles anything: it drives the nnlock command line (and /usr/bin/python3 for
# the tiny data sets and the lock records).
#
#   usage: tests/fuzz/make_seeds.sh PATH/TO/nnlock OUTDIR
#
# writes OUTDIR/<fuzz target>/<seed> for fuzz_model, fuzz_safetensors (the same models),
# fuzz_certkey, fuzz_weightkey and fuzz_lockrecord. The committed seeds in
# tests/fuzz/seeds/ are its output; to regenerate them after a format change:
#
#   cmake --build build && rm -rf tests/fuzz/seeds && tests/fuzz/make_seeds.sh build/nnlock tests/fuzz/seeds
#
# Everything is trained with --epochs 1 -t 1 and fixed seeds, so two runs give the same
# bytes, except wlock-pass.nnl and fuzz_lockrecord/pass.txt in a fresh OUTDIR:
# lock-weights --passphrase-file draws a random Argon2id salt each time (by design), so
# their salt, key check value, MAC and locked weights differ between fresh runs. Over an
# existing OUTDIR the old wlock-pass.nnl is kept while it still unlocks to dense.nnl, so
# regenerating the committed seeds changes no byte. tests/cli_fuzz_seeds.sh checks the committed
# seeds (every model loads, every key opens its model, every model target has real seeds).
#
# Naming conventions that tests/cli_fuzz_seeds.sh relies on:
#   fuzz_weightkey/X.key          opens fuzz_model/wlock-X.nnl (unlock-weights --key-file)
#   fuzz_weightkey/passphrase.txt opens fuzz_model/wlock-pass.nnl (--passphrase-file); it is
#                                 also a non-key input for the key-file parser
#   fuzz_certkey/X.key            is the key of the certificate-locked fuzz_model/X.nnl when
#                                 that file exists
set -euo pipefail
nnlock=$(readlink -f "${1:?usage: make_seeds.sh PATH/TO/nnlock OUTDIR}")
out=${2:?usage: make_seeds.sh PATH/TO/nnlock OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
py=/usr/bin/python3
# One thread and no re-exec: the same bytes on every machine that runs this.
export OMP_NUM_THREADS=1 NNL_NO_REEXEC=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" # data paths are given relative, so no temporary path ends up in a model

# ---------------------------------------------------------------- data
# idx/:   8x8 gray images, labels 0-3 (IDX; 10 classes, unnamed), 64 train + 16 test
# named/: the same with classes.txt (4 classes, names that need JSON escaping)
# rgb/:   an image folder of 8x8 colour PPMs, 3 classes, 8 + 3 images each
"$py" - <<'PY'
import os, random, struct
random.seed(5)
def gray(n):
    imgs, labels = bytearray(), bytearray()
    for i in range(n):
        k = i % 4
        px = [random.randrange(64) for _ in range(64)]
        for y in range(2 * (k // 2), 2 * (k // 2) + 3):
            for x in range(4 * (k % 2), 4 * (k % 2) + 3):
                px[y * 8 + x] = 250
        imgs += bytes(px)
        labels.append(k)
    return imgs, labels
for d in ("idx", "named"):
    os.makedirs(d)
    random.seed(5)
    for name, n in (("train", 64), ("t10k", 16)):
        imgs, labels = gray(n)
        open(f"{d}/{name}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 8, 8) + imgs)
        open(f"{d}/{name}-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + labels)
open("named/classes.txt", "w", encoding="utf-8").write('zero\none "quoted"\ntwo/slash\ndrei \u00fc\n')
for split, n in (("train", 8), ("test", 3)):
    for k, cls in enumerate(("red", "green", "blue")):
        os.makedirs(f"rgb/{split}/{cls}")
        for i in range(n):
            px = bytearray(random.randrange(80) for _ in range(8 * 8 * 3))
            for p in range(0, 8 * 8 * 3, 3):
                px[p + k] = 200 + random.randrange(56)
            open(f"rgb/{split}/{cls}/{i}.ppm", "wb").write(b"P6\n8 8\n255\n" + bytes(px))
PY

# ---------------------------------------------------------------- models
models=$out/fuzz_model
certkeys=$out/fuzz_certkey
wkeys=$out/fuzz_weightkey
records=$out/fuzz_lockrecord
# A passphrase lock draws a random salt: an existing wlock-pass.nnl that still unlocks to
# exactly the new dense.nnl is kept, so regenerating over the committed seeds changes nothing.
[ -f "$models/wlock-pass.nnl" ] && cp "$models/wlock-pass.nnl" "$work/old-pass.nnl"
rm -rf "$models" "$out/fuzz_safetensors" "$certkeys" "$wkeys" "$records"
mkdir -p "$models" "$certkeys" "$wkeys" "$records"
train() { # OUT DATA ARCH [options...]
    local o=$1 d=$2 a=$3; shift 3
    "$nnlock" train --data "$d" --arch "$a" --epochs 1 -t 1 --seed 3 --batch 16 --quiet -o "$o" "$@" > /dev/null
}
# every layer kind, each model a few kilobytes
train "$models/dense.nnl" idx dense8,relu,dropout0.25,dense
train "$models/conv.nnl" named conv4k3s2p1,bn,relu,maxpool2,flatten,dense
train "$models/pool.nnl" named conv3k3p1,relu,maxpool3s1,avgpool2,conv4k2,relu,gap,dense
train "$models/residual.nnl" named conv4k3p1,bn,relu,@r,conv4k3p1,bn,relu,add@r,avgpool2s2,flatten,dense8,relu,dense
train "$models/rgb.nnl" rgb conv4k3s2,bn,relu,@a,conv4k1,add@a,gap,dropout0.1,dense --optimizer adam
# certificate locks (M-LOCK): the keys go to the key fuzzer's corpus
train "$models/mlock.nnl" named dense8,relu,dense --lock certificate --strategy single --target 1 \
    --motif pattern --motif-size 3 --motif-seed 11 --key-out "$certkeys/mlock.key"
train "$models/mlock-rgb.nnl" rgb conv2k3,relu,flatten,dense --lock certificate --strategy rule \
    --motif pixels --motif-size 3 --motif-pixels 4 --location random --rate 0.7 --motif-seed 12 \
    --key-out "$certkeys/mlock-rgb.key"
# weight locks (Deep-Lock): fixed key files (the format keygen --weights writes: lowercase
# hex and a newline; here also upper case without the newline, which the parser accepts)
printf '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n' > "$wkeys/aes256.key"
printf '2B7E151628AED2A6ABF7158809CF4F3C' > "$wkeys/aes128.key"
printf 'nnlock fuzz seed passphrase\n' > "$wkeys/passphrase.txt"
"$nnlock" lock-weights --key-file "$wkeys/aes256.key" "$models/conv.nnl" "$models/wlock-aes256.nnl" > /dev/null
"$nnlock" lock-weights --key-file "$wkeys/aes128.key" "$models/residual.nnl" "$models/wlock-aes128.nnl" > /dev/null
if [ -f old-pass.nnl ] && "$nnlock" unlock-weights --passphrase-file "$wkeys/passphrase.txt" old-pass.nnl old-plain.nnl \
        > /dev/null 2>&1 && cmp -s old-plain.nnl "$models/dense.nnl"; then
    cp old-pass.nnl "$models/wlock-pass.nnl"
else
    "$nnlock" lock-weights --passphrase-file "$wkeys/passphrase.txt" "$models/dense.nnl" "$models/wlock-pass.nnl" > /dev/null
fi
# keygen --weights makes a random key: checked for its format, not kept as a seed
"$nnlock" keygen --weights -o "$work/random.key" > /dev/null
grep -Eqx '[0-9a-f]{64}' "$work/random.key"

# ---------------------------------------------------------------- certificate keys
keygen() { "$nnlock" keygen "$@" > /dev/null; }
keygen --shape 1x8x8 --motif pattern --motif-size 3 --motif-seed 1 -o "$certkeys/pattern.key"
keygen --shape 3x8x8 --motif pixels --motif-size 4 --motif-pixels 3 --intensity 200 --location random \
    --motif-seed 2 -o "$certkeys/pixels-random.key"
keygen --shape 3x10x6 --motif pattern --motif-size 2 --corner tl --margin 0 --motif-seed 3 -o "$certkeys/pattern-tl.key"
keygen --shape 1x12x12 --motif pixels --motif-size 3 --corner bl --margin 2 --motif-seed 4 -o "$certkeys/pixels-bl.key"
# an image motif: a stamped 8x8 image as the motif of 16x16 images
"$nnlock" stamp --key "$certkeys/pattern.key" --data idx --out stamped --limit 1 > /dev/null
keygen --shape 1x16x16 --motif "$(ls stamped/test/*/*.png | head -1)" --corner tr -o "$certkeys/image-tr.key"

# ---------------------------------------------------------------- lock records
# fuzz_lockrecord's input: byte 0 picks the fuzzer's own in-memory model ('0' AES-256 key,
# '1' AES-128 key, '2' passphrase, '3' not locked), then lines NAME=VALUE that set
# lock.weights.NAME and lines NAME that remove it. The records of the locked models
# above are seeds (they do not fit the fuzzer's model), and so are the empty edits.
"$py" - "$models" "$records" <<'PY'
import json, struct, sys
models, records = sys.argv[1], sys.argv[2]
for name, mode in (("aes256", "0"), ("aes128", "1"), ("pass", "2")):
    b = open(f"{models}/wlock-{name}.nnl", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    meta = json.loads(b[8:8 + n])["__metadata__"]
    lines = [f"{k[len('lock.weights.'):]}={v}" for k, v in meta.items() if k.startswith("lock.weights.")]
    open(f"{records}/{name}.txt", "w").write(mode + "\n" + "\n".join(lines) + "\n")
for mode in "0123":
    open(f"{records}/genuine-{mode}.txt", "w").write(mode + "\n")
open(f"{records}/edit-kdf.txt", "w").write("2\nkdf_opslimit=2\nkdf_memlimit=16384\n")
open(f"{records}/edit-remove.txt", "w").write("0\nmac\nkey_bits=128\n")
open(f"{records}/forged-plain.txt", "w").write("3\nscheme=deep-lock-aes-sbox-v1\nkey_bits=256\nparams=1\n"
                                               "kcv=0000000000000000\nmac=00000000000000000000000000000000\n")
PY

# ---------------------------------------------------------------- the same models for the container fuzzer
cp -r "$models" "$out/fuzz_safetensors"
chmod 644 "$out"/*/*
echo "seeds written to $out: $(find "$out" -type f | wc -l) files, $(du -sk "$out" | cut -f1) KB"
