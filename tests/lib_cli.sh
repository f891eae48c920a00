# Shared by the tests/cli_*.sh scripts (sourced; not a test itself, so not named cli_*): a
# temporary directory removed on exit, pass/fail counters, and a tiny generated IDX data set.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# make_idx DIR TRAIN_N TEST_N SEED: 12x12 images in 4 classes; class k has a bright 3x3
# square at a class-specific place on noise. Training images gzip'd, labels raw.
make_idx() {
    /usr/bin/python3 - "$@" <<'PY'
import gzip, os, random, struct, sys
d, ntrain, ntest, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(d)
random.seed(seed)
def make(n):
    imgs, labels = bytearray(), bytearray()
    for i in range(n):
        k = i % 4
        px = [random.randrange(60) for _ in range(144)]
        for y in range(3 * k % 9, 3 * k % 9 + 3):
            for x in range(2 * k, 2 * k + 3): px[y * 12 + x] = 250
        imgs += bytes(px); labels.append(k)
    return imgs, labels
for name, n in (("train", ntrain), ("t10k", ntest)):
    imgs, labels = make(n)
    with gzip.open(f"{d}/{name}-images-idx3-ubyte.gz", "wb") as f: f.write(struct.pack(">IIII", 0x803, n, 12, 12) + imgs)
    with open(f"{d}/{name}-labels-idx1-ubyte", "wb") as f: f.write(struct.pack(">II", 0x801, n) + labels)
PY
}

# expect_fail NAME PATTERN CMD...: CMD must fail with exactly one line on stderr, starting
# "nnlock" and matching PATTERN, and print nothing on stdout. expect_ok NAME CMD...: it succeeds.
# Both leave CMD's output in $tmp/out and $tmp/err.
expect_fail() {
    local name=$1 pat=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l < "$tmp/err")
    if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && [ ! -s "$tmp/out" ] && grep -q '^nnlock' "$tmp/err" && grep -Eq -- "$pat" "$tmp/err"; then
        ok; echo "  ok ($name): $(cat "$tmp/err")"
    else bad "$name: rc=$rc, $lines stderr lines, want /$pat/: $(head -3 "$tmp/err") $(head -c 300 "$tmp/out")"; fi
}
expect_ok() {
    local name=$1; shift
    if "$@" >"$tmp/out" 2>"$tmp/err"; then ok; else bad "$name: $(tail -3 "$tmp/err")"; fi
}
