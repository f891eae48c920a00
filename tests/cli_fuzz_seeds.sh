#!/bin/bash
# The committed fuzz seeds (tests/fuzz/seeds/<target>/, written by tests/fuzz/make_seeds.sh)
# are what they claim to be: every model seed loads, every certificate key stamps an image
# of its shape (and drives its locked model), every weight key opens its locked model, and
# every fuzz target that reads models has real models to start from, not stubs.
# Usage: cli_fuzz_seeds.sh PATH/TO/nnlock
set -u
nnlock=$(readlink -f "${1:?path to nnlock}")
src=${NNL_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
seeds=$src/tests/fuzz/seeds
. "$(dirname "$0")/lib_cli.sh"
export OMP_NUM_THREADS=1 NNL_NO_REEXEC=1

# run NAME CMD...: must succeed (returns its status, for the checks that follow it).
run() {
    local name=$1; shift
    if "$@" > "$tmp/out" 2> "$tmp/err"; then ok; else bad "$name: $(head -c 300 "$tmp/err")"; return 1; fi
}

# image C H W FILE: a PGM (C=1) or PPM (C=3) of mid-grey pixels.
image() {
    /usr/bin/python3 - "$@" <<'PY'
import sys
c, h, w, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if c not in (1, 3): sys.exit(f"no image file format for {c} channels")
open(path, "wb").write(b"P%d\n%d %d\n255\n" % (5 if c == 1 else 6, w, h) + bytes([77]) * (c * h * w))
PY
}

# ---------------------------------------------------------------- models load
for t in fuzz_model fuzz_safetensors; do
    for f in "$seeds/$t"/*; do
        [ -f "$f" ] || continue
        run "$t/$(basename "$f") loads" "$nnlock" info "$f"
        [ "$(stat -c %s "$f")" -lt 65536 ] && ok || bad "$t/$(basename "$f") is 64 KB or more: keep seeds small"
    done
done

# every target that reads models (its source calls the model or safetensors parser) has
# at least one seed over 1 KB: a real model, not a stub that stops at the length field
for c in "$src"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$c" .c)
    grep -qE 'nnl_model_from_memory|nnl_st_parse' "$c" || continue
    n=$(find "$seeds/$t" -maxdepth 1 -type f -size +1k 2> /dev/null | wc -l)
    [ "$n" -gt 0 ] && ok || bad "$t reads models but tests/fuzz/seeds/$t has no seed over 1 KB"
done

# ---------------------------------------------------------------- certificate keys
nkeys=0
for k in "$seeds"/fuzz_certkey/*.key; do
    [ -f "$k" ] || continue
    nkeys=$((nkeys + 1))
    b=$(basename "$k" .key)
    read -r c h w < <(/usr/bin/python3 -c "import json,sys; print(*json.load(open(sys.argv[1]))['shape'])" "$k" 2> /dev/null) \
        || { bad "fuzz_certkey/$b.key: no shape"; continue; }
    image "$c" "$h" "$w" "$tmp/$b.pnm" || { bad "fuzz_certkey/$b.key: cannot make a ${c}x${h}x${w} image"; continue; }
    run "fuzz_certkey/$b.key stamps a ${c}x${h}x${w} image" "$nnlock" stamp --key "$k" "$tmp/$b.pnm" "$tmp/$b.png" &&
        { [ -s "$tmp/$b.png" ] && ok || bad "fuzz_certkey/$b.key: no stamped image"; }
    # the key of a certificate-locked model seed opens it
    if [ -f "$seeds/fuzz_model/$b.nnl" ]; then
        run "fuzz_certkey/$b.key drives fuzz_model/$b.nnl" "$nnlock" predict --key "$k" "$seeds/fuzz_model/$b.nnl" "$tmp/$b.pnm"
        "$nnlock" info "$seeds/fuzz_model/$b.nnl" 2> /dev/null | grep -q 'lock.kind *certificate' && ok \
            || bad "fuzz_model/$b.nnl is not certificate-locked"
    fi
done
[ "$nkeys" -ge 2 ] && ok || bad "fuzz_certkey has $nkeys key seeds"
grep -lq '"motif":"pattern"' "$seeds"/fuzz_certkey/*.key 2> /dev/null && ok || bad "no pattern certificate key seed"
grep -lq '"motif":"pixels"' "$seeds"/fuzz_certkey/*.key 2> /dev/null && ok || bad "no pixels certificate key seed"

# ---------------------------------------------------------------- weight keys
nkeys=0
for k in "$seeds"/fuzz_weightkey/*.key; do
    [ -f "$k" ] || continue
    nkeys=$((nkeys + 1))
    b=$(basename "$k" .key)
    m=$seeds/fuzz_model/wlock-$b.nnl
    [ -f "$m" ] || { bad "fuzz_weightkey/$b.key has no locked model fuzz_model/wlock-$b.nnl"; continue; }
    run "fuzz_weightkey/$b.key opens wlock-$b.nnl" "$nnlock" unlock-weights --key-file "$k" "$m" "$tmp/$b.nnl" &&
        run "unlocked wlock-$b.nnl loads" "$nnlock" info "$tmp/$b.nnl"
done
[ "$nkeys" -ge 2 ] && ok || bad "fuzz_weightkey has $nkeys key seeds (want 32 and 64 hex digits)"
for d in 32 64; do
    grep -Eqx "[0-9a-fA-F]{$d}" "$seeds"/fuzz_weightkey/*.key 2> /dev/null && ok || bad "no weight key seed of $d hex digits"
done
if [ -f "$seeds/fuzz_weightkey/passphrase.txt" ]; then
    run "passphrase.txt opens wlock-pass.nnl" "$nnlock" unlock-weights --passphrase-file "$seeds/fuzz_weightkey/passphrase.txt" \
        "$seeds/fuzz_model/wlock-pass.nnl" "$tmp/pass.nnl"
else
    bad "no passphrase seed"
fi

# ---------------------------------------------------------------- lock records, layout
for f in "$seeds"/fuzz_lockrecord/*; do
    [ -f "$f" ] || continue
    head -c 1 "$f" | grep -q '[0-3]' && ok || bad "fuzz_lockrecord/$(basename "$f") does not start with a model number 0-3"
done
# every seed directory and dictionary belongs to a fuzz target
for d in "$seeds"/*/ "$src"/tests/fuzz/*.dict; do
    [ -e "$d" ] || continue
    t=$(basename "$d" .dict)
    [ -f "$src/tests/fuzz/$t.c" ] && ok || bad "$d belongs to no fuzz target (tests/fuzz/$t.c)"
done
total=$(find "$seeds" -type f -printf '%s\n' 2> /dev/null | awk '{ s += $1 } END { print s + 0 }')
[ "$total" -lt 1000000 ] && ok || bad "the seeds take $total bytes: keep them well under 1 MB"

# Seeds made by an older nnlock still test the loader, but say so when they are stale.
mkdir "$tmp/regen" && { [ ! -d "$seeds" ] || cp -r "$seeds/." "$tmp/regen/"; }
if bash "$src/tests/fuzz/make_seeds.sh" "$nnlock" "$tmp/regen" > /dev/null 2>&1; then
    diff -rq "$seeds" "$tmp/regen" > /dev/null || echo "note: tests/fuzz/make_seeds.sh now writes other seeds; regenerate them (see its header)"
    ok
else
    bad "tests/fuzz/make_seeds.sh failed"
fi

echo "cli_fuzz_seeds: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
