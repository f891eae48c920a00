#!/bin/bash
# Command-line test of the weight lock (Deep-Lock): lock-weights / unlock-weights and the
# --weights-key, --weights-passphrase-file and --allow-locked options of the loading commands.
# Usage: bash tests/cli_weights.sh PATH/TO/nnlock     (CTest passes it; NNL_SOURCE_DIR is set)
# Every refusal must be exactly one line on stderr with a non-zero exit status.
set -u
NNL=${1:?usage: cli_weights.sh PATH/TO/nnlock}
command -v python3 > /dev/null || { echo "cli_weights: python3 is needed to write the test data"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/nnl_cliw.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 NNL_NO_REEXEC=1
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# run NAME CMD...: must succeed.
run() {
    local name=$1; shift
    if "$@" > "$T/out" 2> "$T/err"; then ok; else bad "$name: exit $? (stderr: $(head -c 400 "$T/err"))"; fi
}

# refuse NAME PATTERN CMD...: must fail with exactly one line on stderr matching PATTERN.
refuse() {
    local name=$1 pat=$2; shift 2
    "$@" > "$T/out" 2> "$T/err"
    local rc=$? lines
    lines=$(wc -l < "$T/err")
    if [ $rc -eq 0 ]; then bad "$name: succeeded, expected a refusal"; return; fi
    if [ "$lines" -ne 1 ]; then bad "$name: $lines lines on stderr, expected 1: $(cat "$T/err")"; return; fi
    if ! grep -q -- "$pat" "$T/err"; then bad "$name: message does not match '$pat': $(cat "$T/err")"; return; fi
    ok
}

check() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }

# ---------------------------------------------------------------- a tiny IDX data set
# 4 classes of 8x8 images: a bright 3x3 square at a class-specific place, plus noise.
mkdir -p "$T/data"
python3 - "$T/data" <<'EOF'
import random, struct, sys
d = sys.argv[1]
random.seed(7)
def write(prefix, n):
    imgs, labels = bytearray(), bytearray()
    for i in range(n):
        k = i % 4
        px = [random.randrange(64) for _ in range(64)]
        cy, cx = (k * 5) % 5, (k * 3) % 5
        for y in range(cy, cy + 3):
            for x in range(cx, cx + 3):
                px[y * 8 + x] = 250
        imgs += bytes(px)
        labels.append(k)
    open(f"{d}/{prefix}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 8, 8) + imgs)
    open(f"{d}/{prefix}-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + labels)
write("train", 256)
write("t10k", 64)
EOF
check "test data written" test -s "$T/data/t10k-labels-idx1-ubyte"

M=$T/m.nnl L=$T/m.locked.nnl K=$T/w.key K2=$T/w2.key K128=$T/w128.key D=$T/data
run "train a tiny model" "$NNL" train -d "$D" --arch dense16,relu,dense --epochs 1 --quiet -t 1 -o "$M"
printf '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n' > "$K"
printf '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1e\n' > "$K2"
printf '2b7e151628aed2a6abf7158809cf4f3c\n' > "$K128"
chmod 600 "$K" "$K2" "$K128"

# ---------------------------------------------------------------- lock, eval, unlock
run "lock-weights" "$NNL" lock-weights --key-file "$K" "$M" "$L"
check "lock-weights reports the key check value" grep -q "5f8976d73d7fff42" "$T/out"
check "the locked file differs" bash -c "! cmp -s '$M' '$L'"
check "same size but for the lock record" test $(( $(stat -c %s "$L") - $(stat -c %s "$M") )) -lt 512
run "info on a locked model needs no key" "$NNL" info "$L"
check "info shows the lock record" grep -q "lock.weights.scheme" "$T/out"

"$NNL" eval "$M" -d "$D" --json -t 1 > "$T/plain.json" 2> "$T/err" || bad "eval of the plain model"
refuse "eval without key" "is weight-locked: give --weights-key FILE (or --allow-locked" "$NNL" eval "$L" -d "$D" -t 1
refuse "predict without key" "is weight-locked" "$NNL" predict "$L" -d "$D" --limit 3
run "eval with the key" "$NNL" eval "$L" -d "$D" --json -t 1 --weights-key "$K"
cp "$T/out" "$T/key.json"
check "eval with the key equals the original (accuracy and loss)" python3 - "$T/plain.json" "$T/key.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
sys.exit(0 if (a["accuracy"], a["loss"], a["confusion"]) == (b["accuracy"], b["loss"], b["confusion"]) else 1)
EOF
run "eval --allow-locked runs it locked" "$NNL" eval "$L" -d "$D" -t 1 --allow-locked
run "predict with the key" "$NNL" predict "$L" -d "$D" --limit 3 --weights-key "$K"
refuse "wrong key" "wrong key: the key check value does not match" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$K2"
refuse "128-bit key for a 256-bit lock" "256-bit key" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$K128"
refuse "missing key file" "nokey.key" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$T/nokey.key"
printf '0001020304050607\n' > "$T/short.key"
refuse "short key file" "expected 32 or 64 hex digits, found 16" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$T/short.key"
printf '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\r\n' > "$T/crlf.key"
refuse "key file with CRLF" "carriage return" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$T/crlf.key"
printf 'zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n' > "$T/hex.key"
refuse "key file with non-hex" "non-hex character 'z'" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$T/hex.key"
head -c 3000 /dev/urandom > "$T/junk.key"
refuse "binary junk as key file" "key file" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$T/junk.key"
refuse "key for a model that is not locked" "is not weight-locked" "$NNL" eval "$M" -d "$D" -t 1 --weights-key "$K"
refuse "key and passphrase together" "not both" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$K" --weights-passphrase-file "$K"

run "unlock-weights" "$NNL" unlock-weights --key-file "$K" "$L" "$T/back.nnl"
check "unlock(lock(m)) is byte-identical to m" cmp -s "$M" "$T/back.nnl"
refuse "unlock-weights with a wrong key" "wrong key" "$NNL" unlock-weights --key-file "$K2" "$L" "$T/nope.nnl"
check "nothing written after a wrong key" test ! -e "$T/nope.nnl"
refuse "unlock-weights of a plain model" "is not weight-locked" "$NNL" unlock-weights -k "$K" "$M" "$T/nope.nnl"
refuse "lock-weights of a locked model" "already weight-locked" "$NNL" lock-weights -k "$K" "$L" "$T/nope.nnl"
refuse "lock-weights without a key" "no key" "$NNL" lock-weights "$M" "$T/nope.nnl"
refuse "lock-weights without OUT" "expected MODEL and OUT" "$NNL" lock-weights -k "$K" "$M"
refuse "lock-weights of a missing model" "missing.nnl" "$NNL" lock-weights -k "$K" "$T/missing.nnl" "$T/nope.nnl"
check "nothing written by refusals" test ! -e "$T/nope.nnl"

# In place (OUT = MODEL) is allowed: the write is atomic.
cp "$M" "$T/inplace.nnl"
run "lock in place" "$NNL" lock-weights -k "$K128" "$T/inplace.nnl" "$T/inplace.nnl"
run "unlock in place" "$NNL" unlock-weights -k "$K128" "$T/inplace.nnl" "$T/inplace.nnl"
check "in-place round trip is byte-identical" cmp -s "$M" "$T/inplace.nnl"

# ---------------------------------------------------------------- passphrases
printf 'correct horse battery staple\n' > "$T/pass"
printf 'correct horse battery stapler\n' > "$T/wrongpass"
: > "$T/emptypass"
run "lock with a passphrase" "$NNL" lock-weights --passphrase-file "$T/pass" "$M" "$T/p.nnl"
run "eval with the passphrase" "$NNL" eval "$T/p.nnl" -d "$D" --json -t 1 --weights-passphrase-file "$T/pass"
check "passphrase eval equals the original" python3 - "$T/plain.json" "$T/out" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
sys.exit(0 if (a["accuracy"], a["loss"]) == (b["accuracy"], b["loss"]) else 1)
EOF
refuse "passphrase model without key" "give --weights-passphrase-file FILE" "$NNL" eval "$T/p.nnl" -d "$D" -t 1
refuse "wrong passphrase" "wrong passphrase" "$NNL" eval "$T/p.nnl" -d "$D" -t 1 --weights-passphrase-file "$T/wrongpass"
refuse "empty passphrase file" "is empty" "$NNL" lock-weights --passphrase-file "$T/emptypass" "$M" "$T/nope.nnl"
refuse "key file for a passphrase lock" "locked with a passphrase" "$NNL" eval "$T/p.nnl" -d "$D" -t 1 --weights-key "$K"
run "unlock-weights with the passphrase" "$NNL" unlock-weights --passphrase-file "$T/pass" "$T/p.nnl" "$T/pback.nnl"
check "passphrase round trip is byte-identical" cmp -s "$M" "$T/pback.nnl"
check "the passphrase is not in the file" bash -c "! grep -q 'horse battery' '$T/p.nnl'"
check "the key is not in the file" bash -c "! grep -qi '000102030405060708090a0b0c0d0e0f' '$L'"

# ---------------------------------------------------------------- damaged locked files
head -c 2000 "$L" > "$T/trunc.nnl"
refuse "truncated locked file" "trunc.nnl" "$NNL" eval "$T/trunc.nnl" -d "$D" -t 1 --weights-key "$K"
python3 - "$L" "$T/kcv.nnl" "$T/data.nnl" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b"5f8976d73d7fff42")
k = bytearray(b); k[i] = ord("X"); open(sys.argv[2], "wb").write(k)
d = bytearray(b); d[-5] ^= 0x10; open(sys.argv[3], "wb").write(d)
EOF
refuse "damaged key check value" "lock.weights.kcv" "$NNL" eval "$T/kcv.nnl" -d "$D" -t 1 --weights-key "$K"
refuse "modified locked weight" "integrity check" "$NNL" eval "$T/data.nnl" -d "$D" -t 1 --weights-key "$K"

# ---------------------------------------------------------------- fine-tuning from a locked model
refuse "train --init a locked model without key" "is weight-locked" \
    "$NNL" train -d "$D" --init "$L" --epochs 1 --quiet -t 1 -o "$T/ft.nnl"
run "train --init a locked model with its key" \
    "$NNL" train -d "$D" --init "$L" --weights-key "$K" --epochs 1 --quiet -t 1 -o "$T/ft.nnl"
check "train says the output is locked again" grep -q "weight-locked with the key of" "$T/out"
# The help promises that the key decrypts in memory only: the output is locked again.
run "the fine-tuned model is locked again" "$NNL" info "$T/ft.nnl"
check "lock record in the fine-tuned model" grep -q 'lock.weights' "$T/out"
refuse "the fine-tuned model needs the key" "is weight-locked" "$NNL" eval "$T/ft.nnl" -d "$D" -t 1
run "the key opens the fine-tuned model" "$NNL" eval "$T/ft.nnl" -d "$D" -t 1 --weights-key "$K"
run "train --init with --write-plaintext" \
    "$NNL" train -d "$D" --init "$L" --weights-key "$K" --epochs 1 --quiet -t 1 -o "$T/ftp.nnl" --write-plaintext
run "the plaintext model is plain" "$NNL" info "$T/ftp.nnl"
check "no lock record in the plaintext model" bash -c "! grep -q 'lock.weights' '$T/out'"

# ---------------------------------------------------------------- lead's commands, when present
if "$NNL" help keygen 2> /dev/null | grep -q -- "--weights"; then
    run "keygen --weights" "$NNL" keygen --weights -o "$T/gen.key"
    check "generated key is private" test "$(stat -c %a "$T/gen.key")" = 600
    refuse "keygen --weights does not overwrite" "exists" "$NNL" keygen --weights -o "$T/gen.key"
    run "lock with a generated key" "$NNL" lock-weights -k "$T/gen.key" "$M" "$T/g.nnl"
    run "unlock with a generated key" "$NNL" unlock-weights -k "$T/gen.key" "$T/g.nnl" "$T/gback.nnl"
    check "generated-key round trip is byte-identical" cmp -s "$M" "$T/gback.nnl"
fi
if "$NNL" help eval 2> /dev/null | grep -q -- "--wrong-keys"; then
    run "eval --wrong-keys" "$NNL" eval "$L" -d "$D" -t 1 --weights-key "$K" --wrong-keys --json
    check "wrong-keys report" python3 - "$T/out" "$T/plain.json" <<'EOF'
import json, sys
r, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
w = r.get("weight_lock", r)
ok = (w["right_key"]["weights_bit_identical"] and abs(w["right_key"]["accuracy"] - p["accuracy"]) < 1e-12
      and w["wrong_keys"]["keys"] == 100 and w["one_bit_off"]["keys"] == 32)
sys.exit(0 if ok else 1)
EOF
    refuse "eval --wrong-keys without a key" "weights-key" "$NNL" eval "$L" -d "$D" -t 1 --wrong-keys
fi

echo "cli_weights: $pass passed, $fail failed"
[ $fail -eq 0 ]
