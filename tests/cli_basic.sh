#!/bin/bash
# The command line end to end on a tiny generated data set: train, eval, predict, info,
# keygen, stamp and the certificate lock; and every bad input gets one line on stderr and a
# non-zero exit. Usage: cli_basic.sh PATH/TO/nnlock
set -u
nnlock=$(readlink -f "${1:?path to nnlock}")
. "$(dirname "$0")/lib_cli.sh"
make_idx "$tmp/data" 800 200 1

# expect_fail NAME CMD...: non-zero exit, exactly one line on stderr, nothing on stdout.
expect_fail() {
    local name=$1; shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l < "$tmp/err")
    if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && [ ! -s "$tmp/out" ] && grep -q '^nnlock' "$tmp/err"; then ok; echo "  ok ($name): $(cat "$tmp/err")"
    else bad "$name: rc=$rc, $lines stderr lines: $(head -3 "$tmp/err")"; fi
}
expect_ok() {
    local name=$1; shift
    if "$@" >"$tmp/out" 2>"$tmp/err"; then ok; else bad "$name: $(tail -3 "$tmp/err")"; fi
}

cd "$tmp"
expect_ok "help" "$nnlock" help
expect_ok "help train" "$nnlock" help train
grep -q -- "--epochs N" "$tmp/out" && grep -q "default 10" "$tmp/out" && ok || bad "help train shows no defaults"
expect_ok "train --help" "$nnlock" train --help
expect_ok "train" "$nnlock" train --data data --arch dense32,relu,dense --epochs 3 --quiet -o m.nnl
grep -q "test accuracy" "$tmp/out" && ok || bad "train printed no accuracy"
expect_ok "train --eval-last --json" "$nnlock" train --data data --arch dense32,relu,dense --epochs 3 --eval-last --json -q -o ml.nnl
/usr/bin/python3 - "$tmp/out" <<'PY' && ok || bad "train --eval-last: the test set measured after the last epoch only"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["test_acc"] > 0.5 and d["seconds"] > 0 and d["test_seconds"] >= 0, d
assert [e["test_acc"] is None for e in d["epochs"]] == [True, True, False], d["epochs"]
PY
expect_ok "eval" "$nnlock" eval m.nnl --data data
acc=$(sed -n 's/^accuracy \([0-9.]*\)%.*/\1/p' "$tmp/out")
awk -v a="$acc" 'BEGIN { exit !(a > 90) }' && ok || bad "eval accuracy $acc <= 90"
# Without --data, eval takes the data set the model was trained on (and says so).
expect_ok "eval without --data" "$nnlock" eval m.nnl
grep -q "^accuracy $acc%" "$tmp/out" && grep -q "trained on" "$tmp/err" && ok || bad "eval without --data: $(head -1 "$tmp/out") $(cat "$tmp/err")"
expect_ok "info names the training data" "$nnlock" info m.nnl
grep -q "^trained on:  $tmp/data (idx)" "$tmp/out" && ok || bad "info: $(grep trained "$tmp/out")"
expect_ok "eval --json" "$nnlock" eval m.nnl --data data --json
/usr/bin/python3 -c "import json,sys; d=json.load(open('$tmp/out')); assert len(d['confusion'])==10 and d['n']==200" && ok || bad "eval --json"
expect_ok "info" "$nnlock" info m.nnl
grep -q "parameters:" "$tmp/out" && ok || bad "info shows no parameter count"
expect_ok "predict --data" "$nnlock" predict m.nnl --data data --limit 5 --top 2
[ "$(wc -l < "$tmp/out")" -eq 5 ] && ok || bad "predict printed $(wc -l < "$tmp/out") lines"

# Same seed and threads: the same model file, byte for byte.
expect_ok "train again" "$nnlock" train --data data --arch dense32,relu,dense --epochs 3 --quiet -o m2.nnl
cmp -s m.nnl m2.nnl && ok || bad "same seed gave a different model file"

# Certificate lock end to end.
expect_ok "train locked" "$nnlock" train --data data --arch dense32,relu,dense --epochs 6 --quiet -o l.nnl \
    --lock certificate --strategy rule --motif pattern --motif-size 3 --figures figs
[ -f l.nnl.key ] && [ "$(stat -c %a l.nnl.key)" = 600 ] && ok || bad "no key file, or readable by others"
for f in certificate examples accuracy loss; do [ -s "figs/$f.png" ] && ok || bad "figure $f.png missing"; done
expect_ok "eval locked" "$nnlock" eval --data data --key l.nnl.key --baseline m.nnl l.nnl
grep -q "| certificate rule |" "$tmp/out" && ok || bad "eval table missing: $(cat "$tmp/out")"
expect_ok "keygen" "$nnlock" keygen --shape 1x12x12 --motif pixels -o k.key
expect_fail "keygen refuses to overwrite" "$nnlock" keygen --shape 1x12x12 -o k.key
"$nnlock" stamp --key l.nnl.key --data data --out stamped --limit 8 >/dev/null 2>&1 && ok || bad "stamp --data"
first=$(ls stamped/test/*/*.png | head -1)
# A stamped data set reads back with its labels: class names that hold a '/' or a leading
# '.', or that do not sort in label order, must not relabel it (Fashion-MNIST's do not).
mkdir named && cp data/* named/ && printf 'zeta/top\nalpha\n.hidden\nmu\nc4\nc5\nc6\nc7\nc8\nc9\n' > named/classes.txt
expect_ok "stamp --data with awkward class names" "$nnlock" stamp --key l.nnl.key --data named --out st-named
expect_ok "eval --key" "$nnlock" eval --data data --key l.nnl.key l.nnl --json
trusted=$(/usr/bin/python3 -c "import json; print(round(json.load(open('$tmp/out'))['trusted_mean'] * 200))")
expect_ok "eval the stamped data set" "$nnlock" eval l.nnl --data st-named --json
back=$(/usr/bin/python3 -c "import json; print(json.load(open('$tmp/out'))['correct'])")
[ "$back" = "$trusted" ] && ok || bad "stamped data set read back: $back correct, eval --key says $trusted"
expect_ok "stamp file" "$nnlock" stamp --key l.nnl.key "$first" again.png
cmp -s "$first" again.png && ok || bad "stamping a stamped image changed it"
expect_ok "predict --key" "$nnlock" predict --key l.nnl.key l.nnl "$first"

# Bad inputs: one line each, non-zero exit, nothing damaged.
cp m.nnl keep.nnl
expect_fail "unknown command" "$nnlock" frobnicate
expect_fail "unknown option" "$nnlock" train --frobnicate
expect_fail "bad number" "$nnlock" train --epochs ten
expect_fail "negative lr" "$nnlock" train --lr -1
expect_fail "missing data" "$nnlock" train --data "$tmp/nowhere" -o m.nnl
expect_fail "bad arch" "$nnlock" train --data data --arch conv8k13,dense -o m.nnl
cmp -s m.nnl keep.nnl && ok || bad "a failed train damaged the existing model"
expect_fail "missing model" "$nnlock" eval nowhere.nnl --data data
head -c 300 m.nnl > trunc.nnl
expect_fail "truncated model" "$nnlock" eval trunc.nnl --data data
printf 'garbage' > junk.nnl
expect_fail "junk model" "$nnlock" info junk.nnl
expect_fail "eval without model" "$nnlock" eval
"$nnlock" keygen --shape 1x14x14 -o k14.key >/dev/null
expect_fail "wrong-size key" "$nnlock" eval --data data --key k14.key l.nnl
keyshape=$("$nnlock" keygen --shape 3x32x32 -o big.key 2>&1)
expect_fail "key for other images" "$nnlock" predict --key big.key l.nnl "$first"
expect_fail "model not locked" "$nnlock" eval --data data --key l.nnl.key m.nnl
printf '{"type":"nnlock-certificate"' > broken.key
expect_fail "corrupt key" "$nnlock" eval --data data --key broken.key l.nnl
expect_fail "missing key" "$nnlock" eval --data data --key nowhere.key l.nnl
expect_fail "image of the wrong size" "$nnlock" predict m.nnl figs/loss.png
expect_fail "not an image" "$nnlock" predict m.nnl junk.nnl
expect_fail "lock options without --lock" "$nnlock" train --data data --strategy rule -o x.nnl
: "$keyshape"

echo "cli_basic: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
