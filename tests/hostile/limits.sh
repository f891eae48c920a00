#!/bin/bash
# Denial of service: files that declare, inflate or are more than they should be, and thread
# counts that OpenBLAS cannot serve. Each must be refused in one line, quickly, without
# allocating what the file asks for.
# Usage: limits.sh PATH/TO/nnlock (CTest passes it).
. "$(dirname "$0")/common.sh"

"$nnlock" train "${tiny[@]}" -o base.nnl >/dev/null 2>&1 || { echo "cannot train the base model"; exit 1; }
# Every case runs under an address-space limit, so that what a file asks for cannot hurt the
# machine running the tests, and under a time limit that a refusal meets easily.
# (AddressSanitizer's shadow memory needs the address space: no limit there.)
if [ "${NNL_SANITIZED:-0}" = 1 ]; then
    limited() { timeout 30 "$@"; }
else
    limited() { (ulimit -v 8000000; timeout 10 "$@"); }
fi

echo "== 12. a model's declared architecture is checked against the bytes present before allocating"
# base.nnl's header, with an architecture of 1.6 billion parameters (6.4 GB) in its metadata.
edit_model base.nnl huge.nnl 'h["__metadata__"]["spec"] = "dense40000,relu,dense40000,dense"'
echo "  huge.nnl is $(stat -c %s huge.nnl) bytes"
for cmd in info eval predict; do
    args=(huge.nnl); [ $cmd = eval ] && args+=(--data data); [ $cmd = predict ] && args+=(--data data)
    expect_fail "$cmd on a model declaring 1.6e9 parameters" "floats are stored" limited "$nnlock" $cmd "${args[@]}"
done
expect_fail "train --init from it" "floats are stored" limited "$nnlock" train --data data --init huge.nnl -o x.nnl

echo "== 13. reads are bounded by the file's kind; only IDX is inflated"
expect_fail "info /dev/zero" "character device" limited "$nnlock" info /dev/zero
expect_fail "eval --key /dev/zero" "character device" limited "$nnlock" eval --data data --key /dev/zero base.nnl
expect_fail "weights key /dev/urandom" "character device" limited "$nnlock" lock-weights --key-file /dev/urandom base.nnl x.nnl
truncate -s 5G sparse.nnl
expect_fail "a 5 GB model file" "larger than" limited "$nnlock" info sparse.nnl
truncate -s 1G sparse.key
expect_fail "a 1 GB certificate key" "larger than" limited "$nnlock" stamp --key sparse.key base.nnl x.png
gzip -c base.nnl > gz.nnl
expect_fail "a gzipped model" "gzip" limited "$nnlock" info gz.nnl
expect_ok "a model read from a pipe" "$nnlock" info <(cat base.nnl)
# A labels file of 30 gzip members of 100 MB of zeros each: 3 GB inflated from 3 MB.
mkdir bomb && cp data/train-images-idx3-ubyte.gz data/t10k-* bomb/
/usr/bin/python3 - bomb/train-labels-idx1-ubyte.gz <<'PY'
import gzip, sys
member = gzip.compress(bytes(100 << 20), compresslevel=1)
with open(sys.argv[1], "wb") as f:
    for _ in range(30): f.write(member)
PY
expect_fail "an IDX gzip bomb" "limit" limited "$nnlock" train --data bomb -o x.nnl
check "none of the refused commands wrote a model" test ! -e x.nnl

echo "== 14. -t beyond the cores is capped, and OpenBLAS's buffers fit the address-space limit"
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
if [ "${NNL_SANITIZED:-0}" = 1 ]; then
    skip "ulimit -v under AddressSanitizer"
else
    (ulimit -v 4000000; timeout 60 "$nnlock" train "${tiny[@]}" -t 32 -o t14.nnl >out14 2>err14); rc=$?
    check "train -t 32 under ulimit -v 4G finishes (exit $rc)" test $rc = 0
    check "and says it used the $cores cores there are" grep -q "more than the $cores core" err14
fi

finish
