#!/bin/bash
# Unclear messages made clear: each bad input gets one line that names the actual problem.
# Usage: messages.sh PATH/TO/nnlock (CTest passes it).
. "$(dirname "$0")/common.sh"

"$nnlock" train "${tiny[@]}" -o base.nnl >/dev/null 2>&1 || { echo "cannot train the base model"; exit 1; }

echo "== a dtype with an invisible trailing space is quoted"
edit_model base.nnl space.nnl 'h["layers.0.weight"]["dtype"] = "F32 "'
expect_fail "dtype 'F32 '" "dtype 'F32 ' is not supported" "$nnlock" info space.nnl

echo "== a PNG that declares 60000x60000 pixels names the size limit"
/usr/bin/python3 - huge.png <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
PY
expect_fail "predict a 60000x60000 PNG" "60000x60000 pixels exceeds" "$nnlock" predict base.nnl huge.png
"$nnlock" keygen --shape 1x12x12 --motif-seed 3 -o c.key >/dev/null
expect_fail "stamp a 60000x60000 PNG" "60000x60000 pixels exceeds" "$nnlock" stamp --key c.key huge.png out.png

echo "== a key file for a passphrase-locked model says it was locked with a passphrase"
printf 'correct horse\n' > pass.txt
"$nnlock" lock-weights --passphrase-file pass.txt base.nnl plock.nnl >/dev/null
"$nnlock" keygen --weights -o w.key >/dev/null
"$nnlock" lock-weights --key-file w.key base.nnl klock.nnl >/dev/null
expect_fail "eval --weights-key on a passphrase-locked model" "locked with a passphrase" "$nnlock" eval plock.nnl --data data --weights-key w.key
expect_fail "unlock-weights --key-file on it" "locked with a passphrase" "$nnlock" unlock-weights --key-file w.key plock.nnl x.nnl
expect_fail "a passphrase for a key-locked model" "locked with a key file" "$nnlock" eval klock.nnl --data data --weights-passphrase-file pass.txt

echo "== seeds: no sign, no overflow"
for s in -1 18446744073709551616 " 5" +5 1e3; do
    expect_fail "train --seed '$s'" "--seed expects an integer from 0 to 18446744073709551615" "$nnlock" train "${tiny[@]}" --seed "$s" -o x.nnl
done
expect_fail "stamp --seed -1" "--seed expects an integer" "$nnlock" stamp --key c.key --seed -1 a.png b.png
expect_fail "keygen --motif-seed -1" "--motif-seed expects an integer" "$nnlock" keygen --motif-seed -1 -o k.key
expect_ok "train --seed 18446744073709551615 (the largest)" "$nnlock" train "${tiny[@]}" --seed 18446744073709551615 -o max.nnl
check "the seed is recorded as given" bash -c '"$0" info max.nnl | grep -q "train.seed *18446744073709551615"' "$nnlock"

echo "== --figures naming a regular file is refused before training"
touch figs.txt
expect_fail "train --figures FILE" "figs.txt.*not a directory" timeout 10 "$nnlock" train "${tiny[@]}" --epochs 100000 -b 1 -o x9.nnl --figures figs.txt
check "no model was written" test ! -e x9.nnl

echo "== a GTSRB copy resized after its CSVs were written loads, with one warning"
/usr/bin/python3 - gtsrb <<'PY'
import os, random, sys
random.seed(3)
d = sys.argv[1]
for split in ("train", "test"):
    for k in range(43):
        if split == "train":
            idir = f"{d}/Final_Training/Images/{k:05d}"
            os.makedirs(idir)
            csv = open(f"{idir}/GT-{k:05d}.csv", "w")
        elif k == 0:
            idir = f"{d}/Final_Test/Images"
            os.makedirs(idir)
            csv = open(f"{idir}/GT-final_test.csv", "w")
        if split == "train" or k == 0: csv.write("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n")
        for i in range(2):
            name = f"{k:05d}_{i:05d}.ppm"
            # the image is 16x16; the CSV gives the size it had before: 40x40, ROI 5..35
            px = bytes(random.randrange(256) for _ in range(16 * 16 * 3))
            open(f"{idir}/{name}", "wb").write(b"P6 16 16 255\n" + px)
            csv.write(f"{name};40;40;5;5;35;35;{k}\r\n")
        if split == "train": csv.close()
    if split == "test": csv.close()
PY
expect_ok "train on it" "$nnlock" train --data gtsrb --arch dense8,relu,dense --epochs 1 --quiet -t 1 -o g.nnl
check "one warning that says so" bash -c '[ "$(grep -c "not the size their CSV gives" "$0")" = 1 ]' "$tmp/err"
expect_ok "train on it with --crop-roi" "$nnlock" train --data gtsrb --crop-roi --arch dense8,relu,dense --epochs 1 --quiet -t 1 -o gc.nnl
check "the warning says the regions were scaled" grep -q "scaled to the images' sizes" "$tmp/err"

finish
