#!/bin/bash
# Nothing silently wrong in what nnlock prints: text read from a file never carries control
# bytes to the terminal or breaks a line; --json is always valid JSON (NaN and Inf as null,
# with the reason); output that cannot be written is an error.
# Usage: output.sh PATH/TO/nnlock (CTest passes it).
. "$(dirname "$0")/common.sh"

"$nnlock" train "${tiny[@]}" -o base.nnl >/dev/null 2>&1 || { echo "cannot train the base model"; exit 1; }
"$nnlock" keygen --weights -o w.key >/dev/null
"$nnlock" lock-weights --key-file w.key base.nnl locked.nnl >/dev/null

echo "== 15. metadata and class names are printed with their control bytes escaped"
# base.nnl with an escape sequence in its metadata and a newline and a tab in class names.
edit_model base.nnl evil.nnl '
m = h["__metadata__"]
m["train.note"] = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\u009b1m"
m["class_names"] = json.dumps(["zero\nfake line", "one\tbig", "two\x1b[1m"] + [str(i) for i in range(3, 10)])'
# control bytes other than newline and tab in a file, or tabs/newlines where they do not belong
clean() { ! LC_ALL=C grep -q "$(printf '[\001-\010\013-\037\177]')" "$1" && ! grep -qP '\xc2[\x80-\x9f]' "$1"; }
expect_ok "info on it" "$nnlock" info evil.nnl
check "info prints no control bytes" clean "$tmp/out"
check "info shows them escaped" grep -q 'x1b\]0;owned' "$tmp/out"
expect_ok "predict on it" "$nnlock" predict evil.nnl --data data --limit 6 --top 3
check "predict prints one line per image ($(wc -l < "$tmp/out") lines)" test "$(wc -l < "$tmp/out")" = 6
check "predict's lines have the same number of tab-separated fields" \
    bash -c '[ "$(awk -F"\t" "{ print NF }" "$0" | sort -u | wc -l)" = 1 ]' "$tmp/out"
check "predict prints no control bytes" clean "$tmp/out"
expect_ok "eval on it" "$nnlock" eval evil.nnl --data data
check "eval prints no control bytes" clean "$tmp/out"
check "eval's per-class table has one line per class" test "$(grep -c '^  *[0-9]* .*%$' "$tmp/out")" = 10
expect_ok "info --json on it" "$nnlock" info evil.nnl --json
check "info --json is valid JSON and keeps the names exactly" /usr/bin/python3 -c "
import json; d = json.load(open('$tmp/out')); assert d['class_names'][0] == 'zero\nfake line', d['class_names']"

echo "== 16. --json is valid JSON whatever the numbers are, and a failed write is an error"
expect_ok "eval --json on a weight-locked model run without its key" "$nnlock" eval locked.nnl --data data --allow-locked --json
check "it is valid JSON with the loss as null and a reason" /usr/bin/python3 -c "
import json; d = json.load(open('$tmp/out')); assert d['loss'] is None and 'NaN' in d['null_values'] and 1 <= d['invalid'] <= d['n'], d"
expect_ok "predict --json on it" "$nnlock" predict locked.nnl --data data --allow-locked --json --limit 3
# Which images come out NaN depends on the kernels (a scalar ReLU maps NaN to 0, a vector max
# may keep it): some do, and each row is either a label with numbers or null with a reason.
check "predict --json is valid JSON, NaN rows without a label, probabilities null" /usr/bin/python3 -c "
import json, math; d = json.load(open('$tmp/out'))
bad = [e for e in d if e['label'] is None]
assert len(d) == 3 and bad and all(e['top'][0]['prob'] is None and e['null_values'] for e in bad), d
assert all(math.isfinite(t['prob']) and 'null_values' not in e for e in d if e['label'] is not None for t in e['top']), d"
# A run whose loss becomes NaN stops with one line, and no half-written JSON on stdout.
expect_fail "train --json on a run that diverges" "diverged" "$nnlock" train "${tiny[@]}" --epochs 20 --lr 100 \
    --momentum 0.99 --weight-decay 0 -o nan.nnl --json
check "and writes no model" test ! -e nan.nnl
if [ -w /dev/full ]; then
    for what in "eval base.nnl --data data --json" "eval base.nnl --data data" "info base.nnl --json" \
                "predict base.nnl --data data --json" "help"; do
        # shellcheck disable=SC2086
        "$nnlock" $what >/dev/full 2>"$tmp/err"; rc=$?
        check "$what > /dev/full fails (exit $rc) and says so" bash -c "[ $rc -ne 0 ] && grep -q 'cannot write' '$tmp/err'"
    done
else
    skip "no /dev/full"
fi

finish
