# Shared by tests/hostile/*.sh (sourced, not a test): the nnlock under test ($1), a
# temporary directory ($tmp, removed on exit, with any tmpfs mounted in it unmounted first),
# counters, the tiny generated IDX data set of tests/lib_cli.sh, and checks that print what
# failed. Each test script ends with `finish`.
set -u
nnlock=$(readlink -f "${1:?usage: $0 PATH/TO/nnlock}")
. "$(dirname "${BASH_SOURCE[0]}")/../lib_cli.sh"
export OMP_NUM_THREADS=1 NNL_NO_REEXEC=1
name=$(basename "$0" .sh)
mounts=()
cleanup() {
    local m
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"

# expect_fail NAME PATTERN CMD...: non-zero exit, exactly one line on stderr that starts
# with "nnlock" and matches PATTERN (grep -E), nothing on stdout.
expect_fail() {
    local what=$1 pat=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l < "$tmp/err")
    if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && [ ! -s "$tmp/out" ] && grep -q '^nnlock' "$tmp/err" && grep -Eq -- "$pat" "$tmp/err"; then
        ok; echo "  ok ($what): $(cat "$tmp/err")"
    else
        bad "$what: rc=$rc, $lines stderr line(s), want /$pat/: $(head -c 600 "$tmp/err") $(head -c 200 "$tmp/out")"
    fi
}
# expect_ok NAME CMD...: exit 0 (stdout in $tmp/out, stderr in $tmp/err).
expect_ok() {
    local what=$1; shift
    if "$@" >"$tmp/out" 2>"$tmp/err"; then ok; else bad "$what: exit $?: $(tail -3 "$tmp/err")"; fi
}
# check NAME CMD...: CMD must succeed.
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
skip() { echo "  skipped: $*"; }
is_root() { [ "$(id -u)" = 0 ]; }
# mode FILE: its permission bits in octal (e.g. 600).
mode() { stat -c %a "$1"; }
# mount_tmpfs DIR SIZE [ro]: a small tmpfs of our own (root only); 1 if it cannot be done.
mount_tmpfs() {
    local dir=$1 size=$2 opts="size=$2"
    [ "${3:-}" = ro ] && opts="$opts,ro"
    is_root || return 1
    mkdir -p "$dir"
    mount -t tmpfs -o "$opts" tmpfs "$dir" 2>/dev/null || return 1
    mounts+=("$dir")
}
# fill DIR: writes into DIR until the disk is full.
fill() { dd if=/dev/zero of="$1/fill" bs=64k 2>/dev/null; sync; }
# edit_model IN OUT CODE: a copy of the model file IN whose safetensors header, a dict h, the
# Python statements CODE change (the tensors' bytes are kept).
edit_model() {
    /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
exec(sys.argv[3])
j = json.dumps(h).encode()
j += b" " * (-len(j) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(j)) + j + b[8 + n:])
PY
}
# The training flags every test uses: tiny, fast, deterministic.
tiny=(--data "$tmp/data" --arch dense16,relu,dense --epochs 1 --quiet -t 1)
make_idx "$tmp/data" 200 80 1

finish() {
    echo "$name: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
