#!/bin/bash
# Nothing lost, nothing leaked: what every command that writes does to what is already on
# disk. Outputs that are devices, FIFOs, directories or symbolic links; outputs that cannot
# be written (missing directory, read-only mount, full disk) found before training and
# leaving the old files intact; kills during a save; the modes of secrets, of files under a
# umask and of files replaced; two runs racing for one key.
# Usage: files.sh PATH/TO/nnlock (CTest passes it). Root-only cases skip themselves otherwise.
. "$(dirname "$0")/common.sh"

"$nnlock" train "${tiny[@]}" -o base.nnl >/dev/null 2>&1 || { echo "cannot train the base model"; exit 1; }
"$nnlock" keygen --weights -o w.key >/dev/null
"$nnlock" lock-weights --key-file w.key base.nnl locked.nnl >/dev/null
"$nnlock" keygen --shape 1x12x12 --motif-seed 3 -o cert.key >/dev/null
/usr/bin/python3 -c "open('img.pgm','wb').write(b'P5 12 12 255\n' + bytes(range(144)))"

echo "== 1. an output that exists and is not a regular file is refused, and stays what it was"
mkfifo fifo
expect_fail "train -o FIFO" "not a regular file|FIFO" "$nnlock" train "${tiny[@]}" -o fifo
expect_fail "keygen -o FIFO" "FIFO" "$nnlock" keygen --shape 1x12x12 -o fifo --force
expect_fail "keygen --weights -o FIFO" "FIFO" "$nnlock" keygen --weights -o fifo --force
expect_fail "lock-weights to a FIFO" "FIFO" "$nnlock" lock-weights --key-file w.key base.nnl fifo
expect_fail "unlock-weights to a FIFO" "FIFO" "$nnlock" unlock-weights --key-file w.key locked.nnl fifo
expect_fail "stamp to a FIFO" "FIFO" "$nnlock" stamp --key cert.key img.pgm fifo
expect_fail "train --key-out FIFO" "FIFO" "$nnlock" train "${tiny[@]}" -o x.nnl --lock certificate --key-out fifo
check "the FIFO is still a FIFO" test -p fifo
mkdir adir
expect_fail "train -o DIRECTORY" "directory" "$nnlock" train "${tiny[@]}" -o adir
check "the directory is still a directory" test -d adir
if is_root && mknod nulldev c 1 3 2>/dev/null; then
    expect_fail "train -o a character device" "character device" "$nnlock" train "${tiny[@]}" -o nulldev
    expect_fail "unlock-weights to a character device" "character device" "$nnlock" unlock-weights --key-file w.key locked.nnl nulldev
    check "the device node is still a device node" test -c nulldev
else
    skip "device nodes need root"
fi
# A symbolic link is written through: the link stays, the file it leads to is replaced.
mkdir real && cp base.nnl real/m.nnl && ln -s real/m.nnl link.nnl
expect_ok "train -o SYMLINK" "$nnlock" train "${tiny[@]}" --seed 2 -o link.nnl
check "the link is still a link" test -L link.nnl
check "the link's target is the new model" bash -c '! cmp -s real/m.nnl base.nnl && "$0" info real/m.nnl >/dev/null' "$nnlock"
ln -s nowhere/m.nnl dangling.nnl
expect_fail "train -o a dangling link" "symbolic link" timeout 10 "$nnlock" train "${tiny[@]}" --epochs 100000 -b 1 -o dangling.nnl
check "the dangling link is left alone" test -L dangling.nnl

echo "== 2. train --lock certificate: a key that cannot be written leaves the old model as it was"
cp base.nnl keep.nnl
expect_fail "key in a missing directory" "nowhere" "$nnlock" train "${tiny[@]}" -o keep.nnl --lock certificate --key-out nowhere/k.key
check "the old model is untouched" cmp -s keep.nnl base.nnl
if mount_tmpfs full 256k; then
    fill full
    expect_fail "key on a full disk" "No space left|nothing was written" "$nnlock" train "${tiny[@]}" -o keep.nnl --lock certificate --key-out full/k.key
    check "the old model is untouched after the full disk" cmp -s keep.nnl base.nnl
    check "no key was left behind" bash -c '! ls full/k.key* 2>/dev/null | grep -q .'
else
    skip "a full disk needs root (a tmpfs of its own)"
fi

echo "== 3. outputs that cannot be written are found before training"
# 100000 epochs of single-image batches would take minutes: a refusal must come first.
long=(--epochs 100000 -b 1)
expect_fail "-o in a missing directory" "nowhere" timeout 10 "$nnlock" train "${tiny[@]}" "${long[@]}" -o nowhere/m.nnl
expect_fail "--key-out in a missing directory" "nowhere" timeout 10 "$nnlock" train "${tiny[@]}" "${long[@]}" -o m3.nnl --lock certificate --key-out nowhere/k.key
expect_fail "--figures in a missing directory" "nowhere" timeout 10 "$nnlock" train "${tiny[@]}" "${long[@]}" -o m3.nnl --figures nowhere/figs
expect_fail "eval --out in a missing directory" "nowhere" "$nnlock" eval base.nnl --data data --out nowhere/figs
if mount_tmpfs ro 64k ro; then
    expect_fail "-o on a read-only mount" "Read-only" timeout 10 "$nnlock" train "${tiny[@]}" "${long[@]}" -o ro/m.nnl
    expect_fail "--key-out on a read-only mount" "Read-only" timeout 10 "$nnlock" train "${tiny[@]}" "${long[@]}" -o m3.nnl --lock certificate --key-out ro/k.key
    expect_fail "--figures on a read-only mount" "Read-only" timeout 10 "$nnlock" train "${tiny[@]}" "${long[@]}" -o m3.nnl --figures ro/figs
else
    skip "a read-only mount needs root"
fi
check "no model was written by the refused runs" test ! -e m3.nnl
# The disk can still fill during the run: the old file stays and the message says so.
if mount_tmpfs late 1m; then
    cp base.nnl late/m.nnl
    fill late
    expect_fail "model save on a full disk" "unchanged" "$nnlock" train "${tiny[@]}" --seed 5 -o late/m.nnl
    check "the old model survives the full disk" cmp -s late/m.nnl base.nnl
    check "no temporary file is left on the full disk" bash -c '! ls late | grep -q tmp'
else
    skip "a full disk needs root"
fi

echo "== 4. a save interrupted by SIGINT or SIGTERM leaves no temporary file"
# A model big enough that its save takes a while; unlock-weights writes plaintext weights.
"$nnlock" train --data data --arch dense2048,relu,dense2048,dense --epochs 1 --limit 8 -b 8 --quiet -t 1 -o big.nnl >/dev/null 2>&1
"$nnlock" lock-weights --key-file w.key big.nnl biglocked.nnl >/dev/null
t0=$(date +%s%N)
"$nnlock" unlock-weights --key-file w.key biglocked.nnl ref.nnl >/dev/null
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
killed=0
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    sig=TERM; [ $((i % 2)) = 0 ] && sig=INT
    cp big.nnl out.nnl
    "$nnlock" unlock-weights --key-file w.key biglocked.nnl out.nnl >/dev/null 2>&1 &
    pid=$!
    sleep "$(awk -v ms="$ms" -v i="$i" 'BEGIN { printf "%.3f", ms * (0.35 + 0.06 * i) / 1000 }')"
    kill -s $sig $pid 2>/dev/null
    wait $pid; rc=$?
    [ $rc -gt 128 ] && killed=$((killed + 1))
    if ls | grep -q 'out\.nnl\.tmp'; then bad "a temporary file was left after SIG$sig (run $i): $(ls | grep tmp)"; rm -f out.nnl.tmp*; else ok; fi
    if cmp -s out.nnl big.nnl || cmp -s out.nnl ref.nnl; then ok; else bad "out.nnl is neither the old nor the new file after SIG$sig (run $i)"; fi
done
echo "  $killed of 12 runs ended by the signal (a full run takes $ms ms)"
check "some runs were interrupted" test "$killed" -gt 0

echo "== 7. a key is never readable by others, not for a moment; a key is replaced only with --force"
mkdir keys
/usr/bin/python3 - keys > poll.out 2>&1 <<'PY' &
import os, stat, sys, time
d, seen, end = sys.argv[1], set(), time.time() + 60
while time.time() < end and not os.path.exists(os.path.join(d, "stop")):
    for e in os.scandir(d):
        try:
            if e.name.endswith(".key") and e.stat(follow_symlinks=False).st_mode & 0o077: seen.add(e.name)
        except FileNotFoundError:
            pass
print(len(seen))
PY
poller=$!
for i in $(seq 1 150); do "$nnlock" keygen --shape 1x12x12 -o keys/k$i.key >/dev/null 2>&1; done
touch keys/stop
wait $poller
check "no key was seen with group or other permissions (a poller caught $(cat poll.out))" test "$(cat poll.out)" = 0
# The poller can miss a short window; the system calls cannot: the key's file is created
# 0600 and no mode with group or other bits is ever set on it.
if command -v strace >/dev/null; then
    for what in "keygen --shape 1x12x12 -o keys/traced.key" "keygen --weights -o keys/tracedw.key" \
                "train ${tiny[*]} -o t7.nnl --lock certificate --key-out keys/tracedt.key"; do
        # shellcheck disable=SC2086
        strace -f -qq -e trace=open,openat,chmod,fchmod,fchmodat -o trace.txt "$nnlock" $what >/dev/null 2>&1
        check "$what: the key is created 0600 and never given a mode others can read" /usr/bin/python3 - trace.txt <<'PY'
import re, sys
created = 0
for line in open(sys.argv[1]):
    m = re.search(r"(f?chmod(at)?)\(.*, (0[0-7]+)\)", line)
    if m and int(m.group(3), 8) & 0o077: sys.exit("mode with group/other bits: " + line)
    if re.search(r"open(at)?\(", line) and "keys" in line and re.search(r"O_CREAT|O_TMPFILE", line):
        created += 1
        if not line.rstrip().split(")")[0].endswith("0600"): sys.exit("not created 0600: " + line)
if not created: sys.exit("no key file creation seen")
PY
    done
else
    skip "strace is not installed: the system-call check of key modes"
fi
(umask 000; "$nnlock" keygen --shape 1x12x12 -o keys/open.key >/dev/null)
check "a key made under umask 000 is 0600 ($(mode keys/open.key))" test "$(mode keys/open.key)" = 600
chmod 644 keys/open.key
"$nnlock" keygen --shape 1x12x12 -o keys/open.key --force >/dev/null
check "a key replaced with --force is 0600 ($(mode keys/open.key))" test "$(mode keys/open.key)" = 600
expect_fail "keygen never replaces a key without --force" "exists" "$nnlock" keygen --shape 1x12x12 -o keys/open.key
cp keys/open.key before.key
expect_fail "train never replaces a key" "exists" "$nnlock" train "${tiny[@]}" -o k7.nnl --lock certificate --key-out keys/open.key
check "the key is unchanged" cmp -s keys/open.key before.key
check "and no model was written" test ! -e k7.nnl

echo "== 8. new files honour the umask; a rewritten file keeps its mode"
(umask 077; "$nnlock" unlock-weights --key-file w.key locked.nnl plain077.nnl >/dev/null)
check "unlock-weights under umask 077 writes 0600 ($(mode plain077.nnl))" test "$(mode plain077.nnl)" = 600
(umask 002; "$nnlock" train "${tiny[@]}" -o u002.nnl >/dev/null 2>&1)
check "a new model under umask 002 is 0664 ($(mode u002.nnl))" test "$(mode u002.nnl)" = 664
cp base.nnl private.nnl && chmod 600 private.nnl
"$nnlock" train "${tiny[@]}" --seed 3 -o private.nnl >/dev/null 2>&1
check "a rewritten 0600 model stays 0600 ($(mode private.nnl))" test "$(mode private.nnl)" = 600
cp base.nnl private.nnl && chmod 600 private.nnl
"$nnlock" lock-weights --key-file w.key private.nnl private.nnl >/dev/null
check "lock-weights in place keeps 0600 ($(mode private.nnl))" test "$(mode private.nnl)" = 600

echo "== 9. pictures that show the certificate have the key's mode"
(umask 022; "$nnlock" train "${tiny[@]}" -o f9.nnl --lock certificate --figures figs >/dev/null 2>&1)
check "certificate.png is 0600 ($(mode figs/certificate.png))" test "$(mode figs/certificate.png)" = 600
check "examples.png (stamped images) is 0600 ($(mode figs/examples.png))" test "$(mode figs/examples.png)" = 600
check "accuracy.png shows no secret: 0644 ($(mode figs/accuracy.png))" test "$(mode figs/accuracy.png)" = 644
(umask 022; "$nnlock" stamp --key cert.key img.pgm stamped.png >/dev/null)
check "a stamped image is 0600 ($(mode stamped.png))" test "$(mode stamped.png)" = 600
(umask 022; "$nnlock" stamp --key cert.key --data data --out sdata --limit 4 >/dev/null)
check "a stamped data set's images are 0600" bash -c '[ -z "$(find sdata -name "*.png" ! -perm 600)" ] && [ -n "$(find sdata -name "*.png")" ]'

echo "== 11. of two runs racing for one key, exactly one succeeds"
for i in 1 2 3 4; do
    # about a second each, so that the four overlap
    "$nnlock" train "${tiny[@]}" --arch dense32,relu,dense --epochs 1000 -b 16 -o race.nnl --lock certificate \
        --strategy rule --motif-size 3 >race$i.out 2>race$i.err &
done
wait
wins=0
for i in 1 2 3 4; do [ -s race$i.out ] && wins=$((wins + 1)); done
check "exactly one training reported success ($wins did)" test "$wins" = 1
check "the losers said why in one line" bash -c 'for f in race*.err; do [ -s "$f" ] || continue; [ "$(wc -l < "$f")" = 1 ] && grep -q exists "$f" || exit 1; done'
"$nnlock" eval --data data --key race.nnl.key race.nnl --json >race.json 2>/dev/null
check "the key on disk opens the model on disk" /usr/bin/python3 -c "import json; d = json.load(open('race.json')); assert d['trusted_mean'] > 0.8 > d['unverified_mean'] + 0.3, d"
for i in 1 2 3 4 5 6; do "$nnlock" keygen --shape 1x12x12 -o racekey.key >kg$i.out 2>&1 & done
wait
check "exactly one of six keygens made the key" test "$(grep -l wrote kg*.out | wc -l)" = 1
for i in 1 2 3 4 5 6; do "$nnlock" keygen --weights -o racew.key >kw$i.out 2>&1 & done
wait
check "exactly one of six weight keygens made the key" test "$(grep -l wrote kw*.out | wc -l)" = 1

finish
