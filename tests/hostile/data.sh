#!/bin/bash
# Nothing silently wrong about classes: image folders number their classes per split by
# folder name, so a class missing from test/, an empty extra folder or a new set of classes
# must be matched by name or refused; a stray label must be named, not made into a class.
# Usage: data.sh PATH/TO/nnlock (CTest passes it).
. "$(dirname "$0")/common.sh"

# folders DIR: an image-folder data set (PGM files) of 4 classes named ant, bee, cat, dog:
# a bright square at a class-specific place on noise, 60 training and 20 test images each.
folders() {
    /usr/bin/python3 - "$1" <<'PY'
import os, random, sys
d = sys.argv[1]
random.seed(5)
for split, n in (("train", 60), ("test", 20)):
    for k, name in enumerate(("ant", "bee", "cat", "dog")):
        os.makedirs(f"{d}/{split}/{name}")
        for i in range(n):
            px = [random.randrange(60) for _ in range(144)]
            for y in range(3 * k % 9, 3 * k % 9 + 3):
                for x in range(2 * k, 2 * k + 3): px[y * 12 + x] = 250
            open(f"{d}/{split}/{name}/{i:03d}.pgm", "wb").write(b"P5 12 12 255\n" + bytes(px))
PY
}
folders set
flags=(--arch dense16,relu,dense --epochs 8 --quiet -t 1)
expect_ok "train on the image folders" "$nnlock" train --data set "${flags[@]}" -o m.nnl
"$nnlock" eval m.nnl --data set --json > full.json

echo "== 5. classes are matched by name between splits and with the model"
# The test split without 'bee': every later class would shift down by one.
mkdir nobee && cp -r set/train nobee/ && cp -r set/test nobee/ && rm -r nobee/test/bee
expect_ok "eval on a test split without one class" "$nnlock" eval m.nnl --data nobee --json
check "it scores the other classes exactly as the full test split does" /usr/bin/python3 - full.json "$tmp/out" <<'PY'
import json, sys
full, part = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
keep = [0, 2, 3]  # ant, cat, dog
c = full["confusion"]
want_correct, want_n = sum(c[k][k] for k in keep), sum(sum(c[k]) for k in keep)
assert (part["correct"], part["n"]) == (want_correct, want_n), (part["correct"], part["n"], want_correct, want_n)
assert part["correct"] / part["n"] > 0.9, part
PY
expect_ok "predict on it" "$nnlock" predict m.nnl --data nobee --json --limit 80
check "predict's true labels are the model's numbering" /usr/bin/python3 -c "
import json; d = json.load(open('$tmp/out')); assert sorted({e['true_label'] for e in d}) == [0, 2, 3], {e['true_label'] for e in d}"
# An extra empty folder in test/ is no class of the model and changes nothing.
cp -r set extra && mkdir extra/test/aardvark
expect_ok "eval with an empty extra folder in test/" "$nnlock" eval m.nnl --data extra --json
check "it gives the full split's result" /usr/bin/python3 -c "
import json; a, b = json.load(open('full.json')), json.load(open('$tmp/out')); assert a['correct'] == b['correct'] and a['n'] == b['n']"
# An empty extra folder in train/ would make a class of its own, shifting the others.
rmdir extra/test/aardvark && mkdir extra/train/aardvark
expect_fail "train with an empty extra folder in train/" "aardvark.*no images" "$nnlock" train --data extra "${flags[@]}" -o x.nnl
rmdir extra/train/aardvark && mkdir extra/train/zebra
expect_fail "train with an empty folder that sorts last" "zebra.*no images" "$nnlock" train --data extra "${flags[@]}" -o x.nnl
# train and test must agree: test/ without 'bee' trains and tests in the training numbering.
expect_ok "train on a set whose test/ lacks a class" "$nnlock" train --data nobee "${flags[@]}" -o nb.nnl --json
check "its test accuracy is that of the classes there are" /usr/bin/python3 -c "
import json; d = json.load(open('$tmp/out')); assert d['test_acc'] > 0.9, d['test_acc']"
# A test class the model does not know is refused, by name.
cp -r set other && mv other/test/dog other/test/wolf
expect_fail "eval with a class the model does not know" "'wolf'.*not one of the model's 4 classes" "$nnlock" eval m.nnl --data other
expect_fail "predict with it" "'wolf'" "$nnlock" predict m.nnl --data other
# --init onto other classes: the output takes the data set's names, not the old ones.
mkdir renamed && cp -r set/train set/test renamed/
for s in train test; do for p in "ant w" "bee x" "cat y" "dog z"; do set -- $p; mv renamed/$s/$1 renamed/$s/$2; done; done
expect_ok "train --init onto a data set with other classes" "$nnlock" train --data renamed --init m.nnl --epochs 1 --quiet -t 1 -o re.nnl
check "it said the names changed" grep -q "class names" "$tmp/err"
"$nnlock" info re.nnl --json > re.json
check "the new model's classes are the data set's" /usr/bin/python3 -c "
import json; assert json.load(open('re.json'))['class_names'] == ['w', 'x', 'y', 'z']"
# --init onto the same classes in another order keeps the model's numbering.
expect_ok "train --init onto the same classes" "$nnlock" train --data nobee --init m.nnl --epochs 1 --quiet -t 1 -o same.nnl
"$nnlock" info same.nnl --json > same.json
check "the model keeps its classes" /usr/bin/python3 -c "
import json; assert json.load(open('same.json'))['class_names'] == ['ant', 'bee', 'cat', 'dog']"

echo "== 6. a stray label is named, never made into a class"
"$nnlock" train "${tiny[@]}" -o base.nnl >/dev/null 2>&1
# labels(SRC DST SPLIT INDEX LABEL): a copy of the IDX set with one label changed.
labels() {
    mkdir "$2" && cp "$1"/* "$2"/
    /usr/bin/python3 - "$2/$3-labels-idx1-ubyte" "$4" "$5" <<'PY'
import sys
p, i, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = bytearray(open(p, "rb").read()); b[8 + i] = v; open(p, "wb").write(b)
PY
}
labels data d255 t10k 17 255
expect_fail "eval with a test label of 255" "label 255 \(image 17; 1 image\)" "$nnlock" eval base.nnl --data d255
labels data d200 train 123 200
expect_fail "train with a training label of 200" "then 200 \(first at image 123.*stray" "$nnlock" train --data d200 --arch dense16,relu,dense --epochs 1 --quiet -t 1 -o x.nnl
labels data dnames t10k 5 7
printf 'a\nb\nc\nd\n' > dnames/classes.txt
expect_fail "a label past classes.txt's names" "label 7 \(image 5.*classes.txt" "$nnlock" eval base.nnl --data dnames
check "none of them wrote a model" test ! -e x.nnl

finish
