#!/bin/bash
# The gate lock (AuthNet) from the command line, end to end on a small generated task: a model
# with a named gate is trained, locked (statistics, mask inversion, the tail fine-tuned), its
# key written 0600; eval's table (authorized, unauthorized, random and nearby keys, original);
# predict and apply with the key; --freeze-below; and the bad inputs: one line each, nothing
# written.
# Usage: cli_gate.sh PATH/TO/nnlock
set -u
nnlock=$(readlink -f "${1:?path to nnlock}")
. "$(dirname "$0")/lib_cli.sh"
export OMP_NUM_THREADS=1 NNL_NO_REEXEC=1
make_idx "$tmp/data" 3000 400 7
cd "$tmp"

py() { /usr/bin/python3 -c "$@"; }
spec="conv8k3p1,bn,relu,maxpool2,@gate,conv16k3p1,bn,relu,maxpool2,flatten,dense32,relu,dense"

echo "== a model with a gate, locked"
expect_ok "train the original" "$nnlock" train --data data --arch "$spec" --epochs 4 --quiet -t 1 -o orig.nnl
expect_ok "lock it" "$nnlock" train --data data --init orig.nnl --lock gate --bits 3 --epochs 20 --quiet -t 1 --json -o locked.nnl
[ "$(stat -c %a locked.nnl.key)" = 600 ] && ok || bad "the gate key is not 0600"
py "import json,sys; r=json.load(open('$tmp/out')); sys.exit(0 if r['authorized_acc'] >= 0.9 and r['unauthorized_acc'] <= 0.45 else 1)" \
    && ok || bad "train --lock gate: $(head -c 400 "$tmp/out")"
# the key never reaches the model's metadata or the output
py "import json; k=json.load(open('$tmp/locked.nnl.key')); print(repr(k['offset'][0])[:8])" > off0
! grep -qF "$(cat off0)" locked.nnl && ok || bad "a value of the key's offset is in the model file"
expect_ok "eval" "$nnlock" eval locked.nnl --data data --key locked.nnl.key --json -t 1
py "
import json, sys
r = json.load(open('$tmp/out'))
for k in ('authorized', 'unauthorized', 'random_key_mean', 'random_key_max', 'original'): assert k in r, k
assert r['authorized'] >= 0.9 and r['unauthorized'] <= 0.45 and r['random_key_max'] <= 0.75, r
assert abs(r['original'] - r['authorized']) <= 0.1, r
" && ok || bad "eval --lock gate: $(head -c 600 "$tmp/out")"
expect_ok "eval with TTA" "$nnlock" eval locked.nnl --data data --key locked.nnl.key --json -t 1 --trials 0 --tta 1
py "import json,sys; r=json.load(open('$tmp/out')); sys.exit(0 if r['tta'] == 1 and 0 <= r['authorized'] <= 1 else 1)" \
    && ok || bad "eval --tta with a key: $(head -c 300 "$tmp/out")"
expect_ok "info of the key" "$nnlock" info --key locked.nnl.key
grep -q "gate lock; gate key: a mask of 12x12" "$tmp/out" && ok || bad "info --key: $(cat "$tmp/out")"
expect_ok "predict with the key" "$nnlock" predict locked.nnl --key locked.nnl.key --data data --limit 5
expect_ok "apply the key" "$nnlock" apply --key locked.nnl.key --data data --out keyed --limit 8
[ -d keyed ] && ok || bad "apply wrote nothing"

echo "== the pruning attack"
expect_ok "eval for reference" "$nnlock" eval locked.nnl --data data --key locked.nnl.key --json -t 1 --trials 0
cp out ref.json
expect_ok "attack prune" "$nnlock" attack prune locked.nnl --data data --from gate --key locked.nnl.key --json -t 1
py "
import json
r, e = json.load(open('$tmp/out')), json.load(open('$tmp/ref.json'))
rows = r['rows']
assert len(rows) == 10 and rows[0]['fraction'] == 0 and rows[0]['zeroed'] == 0, rows[0]
assert abs(rows[0]['attacker_accuracy'] - e['unauthorized']) < 1e-9 and abs(rows[0]['authorized'] - e['authorized']) < 1e-9
assert rows[5]['zeroed'] == round(0.5 * rows[5]['eligible']), rows[5]
" && ok || bad "attack prune: $(head -c 400 "$tmp/out")"
expect_ok "attack prune, the table" "$nnlock" attack prune locked.nnl --data data --fractions 0.5 -t 1
grep -q "^| 50% |" "$tmp/out" && ok || bad "attack prune's table: $(cat "$tmp/out")"
expect_fail "prune after nothing" "has no activation named 'tail'" "$nnlock" attack prune locked.nnl --data data --from tail
expect_fail "a bad fraction" "--fractions expects fractions 0..1" "$nnlock" attack prune locked.nnl --data data --fractions 0.5,2

echo "== --freeze-below"
expect_ok "freeze" "$nnlock" train --data data --init orig.nnl --freeze-below gate --epochs 1 --quiet -t 1 -o frozen.nnl
py "
import json, struct, sys
def tensors(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: d[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}
a, b = tensors('$tmp/orig.nnl'), tensors('$tmp/frozen.nnl')
head = [k for k in a if k.startswith('layers.0.') or k.startswith('layers.1.')]
assert head and all(a[k] == b[k] for k in head), 'a frozen layer changed'
assert a['layers.4.weight'] != b['layers.4.weight'], 'the tail did not train'
" && ok || bad "--freeze-below gate: the head changed or the tail did not train"

echo "== bad input: one line, nothing written"
cp locked.nnl keep.nnl
expect_fail "no gate of that name" "no activation named 'nope'" "$nnlock" train --data data --init orig.nnl --lock gate --gate nope --epochs 1 -q -t 1 -o x.nnl
expect_fail "not a trained model" "locks a trained model: give it with --init" "$nnlock" train --data data --arch "$spec" --lock gate --epochs 1 -q -t 1 -o x.nnl
expect_fail "too many bits" "fewer than the 30 authentication channels" "$nnlock" train --data data --init orig.nnl --lock gate --epochs 1 -q -t 1 -o x.nnl
expect_fail "a key given" "learnt from the model it locks" "$nnlock" train --data data --init orig.nnl --lock gate --key locked.nnl.key --epochs 1 -q -t 1 -o x.nnl
expect_fail "keygen" "learnt from the model it locks" "$nnlock" keygen --lock gate --shape 1x12x12 -o x.key
expect_fail "freeze below nothing" "no activation named 'tail'" "$nnlock" train --data data --init orig.nnl --freeze-below tail --epochs 1 -q -t 1 -o x.nnl
py "
import json
k = json.load(open('$tmp/locked.nnl.key'))
k['height'] = k['width'] = 10; k['mask'] = k['mask'][:100]; k['offset'] = k['offset'][:100]
json.dump(k, open('$tmp/small.key', 'w'))
k = json.load(open('$tmp/locked.nnl.key')); k['mask'][5] = 1.5; json.dump(k, open('$tmp/badmask.key', 'w'))
k = json.load(open('$tmp/locked.nnl.key')); del k['offset'][3]; json.dump(k, open('$tmp/short.key', 'w'))
"
chmod 600 small.key badmask.key short.key
expect_fail "a key for another size" "for 1x10x10 images, the model takes 1x12x12" "$nnlock" eval locked.nnl --data data --key small.key
expect_fail "a mask value out of range" "'mask'\[5\] must be a number from 0 to 1" "$nnlock" eval locked.nnl --data data --key badmask.key
expect_fail "an offset too short" "'offset' must be an array of 144 numbers" "$nnlock" eval locked.nnl --data data --key short.key
[ ! -e x.nnl ] && [ ! -e x.nnl.key ] && [ ! -e x.key ] && cmp -s locked.nnl keep.nnl && ok || bad "a refused command changed what is on disk"

echo "cli_gate: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
