#!/bin/bash
# Models from and to PyTorch: AuthNet's LeNet-5 and VGG-13 built in PyTorch (python3-torch) with
# random weights and batch-norm statistics, their state_dicts written as safetensors (json +
# numpy: the safetensors package is not in Debian 12), imported with `nnlock import`; nnlock's
# probabilities on the same images equal PyTorch's; `nnlock export` gives a state_dict that
# load_state_dict(strict=True) takes and that computes the same again; a spec model goes through
# layers.I names; a missing, extra or mis-shaped tensor is refused with one line naming it.
# Without python3-torch the test is skipped (77) unless NNL_REQUIRE_TORCH=1.
# Usage: cli_torch.sh PATH/TO/nnlock
set -u
nnlock=$(readlink -f "${1:?path to nnlock}")
. "$(dirname "$0")/lib_cli.sh"
export OMP_NUM_THREADS=1 NNL_NO_REEXEC=1
if ! /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then
    [ "${NNL_REQUIRE_TORCH:-0}" = 1 ] && { echo "cli_torch: python3-torch is required (NNL_REQUIRE_TORCH=1)" >&2; exit 1; }
    echo "cli_torch: skipped (no python3-torch)"; exit 77
fi
cd "$tmp"

cat > ref.py <<'PY'
# The PyTorch side: the two AuthNet layouts, safetensors by hand, images, and a comparison.
import json, os, struct, sys
from collections import OrderedDict
import numpy as np
import torch
import torch.nn as nn
torch.manual_seed(0)

def lenet5():
    class Block(nn.Module):
        def __init__(self, name, layers):
            super().__init__()
            setattr(self, name, nn.Sequential(OrderedDict(layers)))
            self.name = name
        def forward(self, x): return getattr(self, self.name)(x)
    class LeNet5(nn.Module):  # AuthNet's models/lenet.py layout (c3 unused there)
        def __init__(self):
            super().__init__()
            self.c1 = Block("c1", [("c1", nn.Conv2d(1, 6, 5)), ("relu1", nn.ReLU()), ("s1", nn.AvgPool2d(2, 2))])
            self.c2 = Block("c2", [("c2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("s2", nn.AvgPool2d(2, 2))])
            self.c4 = Block("c4", [("c4", nn.Conv2d(16, 120, 5)), ("relu4", nn.ReLU())])
            self.f4 = Block("f4", [("f4", nn.Linear(120, 84)), ("relu4", nn.ReLU())])
            self.f5 = Block("f5", [("f5", nn.Linear(84, 10)), ("sig5", nn.LogSoftmax(dim=-1))])
        def forward(self, x):
            x = nn.functional.pad(x, (2, 2, 2, 2))  # a 28x28 image as the 32x32 the network takes
            x = self.c4(self.c2(self.c1(x))).flatten(1)
            return self.f5(self.f4(x))
    return LeNet5()

def vgg13():
    def layers(cfg, cin):
        out = []
        for v in cfg:
            if v == "M": out.append(nn.MaxPool2d(2, 2))
            else: out += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]; cin = v
        return nn.Sequential(*out), cin
    class VGG13(nn.Module):  # AuthNet's models/VGG.py layout: head | tail, fc1, fc2
        def __init__(self):
            super().__init__()
            self.head, c = layers([64, 64, "M", 128, 128, "M", 256, 256, "M"], 3)
            self.tail, c = layers([512, 512, "M", 512, 512, "M"], c)
            self.fc1, self.fc2 = nn.Linear(512, 100), nn.Linear(100, 10)
        def forward(self, x): return self.fc2(self.fc1(self.tail(self.head(x)).flatten(1)))
    return VGG13()

def resnet18():  # the common CIFAR ResNet-18's names (conv1, bn1, layerL.B.*, shortcut, linear)
    class Block(nn.Module):
        def __init__(self, cin, c, s):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, c, 3, s, 1, bias=False), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
            self.shortcut = nn.Sequential(nn.Conv2d(cin, c, 1, s, bias=False), nn.BatchNorm2d(c)) if s != 1 or cin != c else nn.Sequential()
        def forward(self, x):
            return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))
    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
            cin, ls = 64, []
            for c, s in ((64, 1), (128, 2), (256, 2), (512, 2)): ls.append(nn.Sequential(Block(cin, c, s), Block(c, c, 1))); cin = c
            self.layer1, self.layer2, self.layer3, self.layer4 = ls
            self.linear = nn.Linear(512, 10)
        def forward(self, x):
            out = self.layer4(self.layer3(self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x)))))))
            return self.linear(nn.functional.avg_pool2d(out, 4).flatten(1))
    return ResNet18()

def spec_net():  # "conv4k3p1,bn,relu,maxpool2,flatten,dense16,relu,dense" as nnlock's layers.I
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                        nn.Flatten(), nn.Linear(4 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 5))
        def forward(self, x): return self.layers(x)
    return Net()

def randomise_bn(m):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.2, 0.2)
            mod.num_batches_tracked.fill_(7)

def save(sd, path):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k, v in sd.items():
        a = v.detach().numpy()
        a = a.astype("<i8") if a.dtype == np.int64 else a.astype("<f4")
        b = a.tobytes()
        header[k] = {"dtype": "I64" if a.dtype.kind == "i" else "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

def load(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    out = OrderedDict()
    for k, v in h.items():
        if k == "__metadata__": continue
        dt = {"F32": "<f4", "I64": "<i8"}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], dtype=dt).reshape(v["shape"]).copy())
    return out

def images(c, h, w, n, seed):
    return np.random.RandomState(seed).randint(0, 256, size=(n, c, h, w)).astype(np.uint8)

def write_idx(d, px):
    os.makedirs(d, exist_ok=True)
    n = len(px)
    for name in ("train", "t10k"):
        open(f"{d}/{name}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 28, 28) + px.tobytes())
        open(f"{d}/{name}-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n)))

def write_folder(d, px, classes):
    for split in ("train", "test"):
        for k in range(classes): os.makedirs(f"{d}/{split}/{k}", exist_ok=True)
        for i, im in enumerate(px):
            open(f"{d}/{split}/{i % classes}/{i:03d}.ppm", "wb").write(b"P6 32 32 255\n" + im.transpose(1, 2, 0).tobytes())

def probs(model, px, mean=0.0, std=1.0):
    model.eval()
    with torch.no_grad():
        x = (torch.from_numpy(px).float() / 255 - mean) / std
        return torch.softmax(model(x).double(), 1).numpy()

def compare(ref, nnlock_json, order):
    got = json.load(open(nnlock_json))
    worst = 0.0
    for j, r in enumerate(got):
        i = order[j]
        for t in r["top"]: worst = max(worst, abs(t["prob"] - ref[i][t["label"]]))
    return worst

cmd = sys.argv[1]
if cmd == "make":
    l, v, s, r = lenet5(), vgg13(), spec_net(), resnet18()
    for m in (v, s, r): randomise_bn(m)
    save(l.state_dict(), "lenet5.safetensors"); save(v.state_dict(), "vgg13.safetensors"); save(s.state_dict(), "spec.safetensors")
    save(r.state_dict(), "resnet18.safetensors")
    torch.save({"lenet5": l.state_dict(), "vgg13": v.state_dict(), "spec": s.state_dict(), "resnet18": r.state_dict()}, "ref.pt")
    write_idx("mnistlike", images(1, 28, 28, 20, 1))
    write_folder("colour", images(3, 32, 32, 20, 2), 10)
    sd = v.state_dict(); del sd["tail.0.weight"]; save(sd, "missing.safetensors")
    sd = v.state_dict(); sd["extra.weight"] = torch.zeros(3); save(sd, "extra.safetensors")
    sd = v.state_dict(); sd["fc1.weight"] = torch.zeros(100, 256); save(sd, "shape.safetensors")
elif cmd == "check":
    which, js, exported = sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None
    model = {"lenet5": lenet5, "vgg13": vgg13, "spec": spec_net, "resnet18": resnet18}[which]()
    model.load_state_dict(load(exported) if exported else torch.load("ref.pt")[which], strict=True)
    if which == "lenet5":
        px = images(1, 28, 28, 20, 1); order = list(range(20))
    else:
        px = images(3, 32, 32, 20, 2)
        order = sorted(range(20), key=lambda i: (i % 10, i))  # the folder is read class by class, file by file
    w = compare(probs(model, px, *( (0.5, 0.25) if which == "spec" else (0.0, 1.0))), js, order)
    print(f"{which}{' exported' if exported else ''}: largest probability difference {w:.2e}")
    sys.exit(0 if w < 1e-4 else 1)
PY
py() { /usr/bin/python3 ref.py "$@"; }
expect_ok "make the PyTorch models" py make

echo "== import: nnlock computes what PyTorch computes"
expect_ok "import lenet5" "$nnlock" import --arch lenet5 --state-dict lenet5.safetensors -o lenet5.nnl
expect_ok "predict lenet5" "$nnlock" predict lenet5.nnl --data mnistlike --limit 20 -k 10 --json
cp out lenet5.json
py check lenet5 lenet5.json && ok || bad "lenet5: nnlock's probabilities differ from PyTorch's"
expect_ok "import vgg13" "$nnlock" import --arch vgg13 --state-dict vgg13.safetensors -o vgg13.nnl
expect_ok "predict vgg13" "$nnlock" predict vgg13.nnl --data colour --limit 20 -k 10 --json
cp out vgg13.json
py check vgg13 vgg13.json && ok || bad "vgg13: nnlock's probabilities differ from PyTorch's"
expect_ok "import resnet18" "$nnlock" import --arch resnet18 --state-dict resnet18.safetensors -o resnet18.nnl
expect_ok "predict resnet18" "$nnlock" predict resnet18.nnl --data colour --limit 20 -k 10 --json
cp out resnet18.json
py check resnet18 resnet18.json && ok || bad "resnet18: nnlock's probabilities differ from PyTorch's"
spec="conv4k3p1,bn,relu,maxpool2,flatten,dense16,relu,dense"
expect_ok "import a spec" "$nnlock" import --arch "$spec" --shape 3x16x16 --norm 0.5,0.25 --state-dict spec.safetensors -o spec.nnl
# the spec network takes 16x16 images: a folder of its own (the corner of the colour images)
/usr/bin/python3 - <<'PY'
import os, numpy as np
px = np.random.RandomState(2).randint(0, 256, size=(20, 3, 32, 32)).astype(np.uint8)[:, :, :16, :16]
for split in ("train", "test"):
    for k in range(5): os.makedirs(f"small/{split}/{k}", exist_ok=True)
    for i, im in enumerate(px): open(f"small/{split}/{i % 5}/{i:03d}.ppm", "wb").write(b"P6 16 16 255\n" + im.transpose(1, 2, 0).tobytes())
PY
expect_ok "predict the spec" "$nnlock" predict spec.nnl --data small --limit 20 -k 5 --json
cp out spec.json
/usr/bin/python3 - <<'PY' && ok || bad "spec: nnlock's probabilities differ from PyTorch's"
import json, sys
sys.argv = ["ref.py", "none"]
exec(open("ref.py").read())
m = spec_net(); m.load_state_dict(torch.load("ref.pt")["spec"], strict=True)
px = np.random.RandomState(2).randint(0, 256, size=(20, 3, 32, 32)).astype(np.uint8)[:, :, :16, :16]
order = sorted(range(20), key=lambda i: (i % 5, i))
w = compare(probs(m, px, 0.5, 0.25), "spec.json", order)
print(f"spec: largest probability difference {w:.2e}")
sys.exit(0 if w < 1e-4 else 1)
PY

echo "== export: load_state_dict(strict=True) takes it and computes the same"
for a in lenet5 vgg13 resnet18; do
    expect_ok "export $a" "$nnlock" export $a.nnl -o $a.back.safetensors
    py check $a $a.json $a.back.safetensors && ok || bad "$a: the exported state_dict computes something else"
done

echo "== export --torch: the module the state_dict loads into, for presets and any spec"
res="conv4k3p1,@r,bn,relu,conv4k3p1b0,add@r,gelu,maxpool2,scale0.5,@x,conv6k3s2p1,bn,@m,^x,conv6k1s2b0,bn,add@m,relu,gap,flatten,dense"
expect_ok "an nnlock model with a residual" "$nnlock" train --data small --arch "$res" --epochs 1 --quiet -t 1 -o res.nnl
expect_ok "predict it" "$nnlock" predict res.nnl --data small --limit 20 -k 5 --json
cp out res.json
for a in lenet5 vgg13 resnet18 spec res; do
    expect_ok "export --torch $a" "$nnlock" export $a.nnl -o $a.t.safetensors --torch $a.py
done
/usr/bin/python3 - <<'PY' && ok || bad "export --torch: a module that does not compute what nnlock computes"
import importlib.util, json, struct, sys
sys.argv = ["ref.py", "none"]
exec(open("ref.py").read())
def module(name):
    spec = importlib.util.spec_from_file_location(name, name + ".py"); mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod); return mod.Net()
def norm(path):  # the model file's normalisation
    b = open(path, "rb").read(1 << 20); n = struct.unpack("<Q", b[:8])[0]; md = json.loads(b[8:8 + n])["__metadata__"]
    return [float(v) for v in md["norm_mean"].split(",")], [float(v) for v in md["norm_std"].split(",")]
px32 = np.random.RandomState(2).randint(0, 256, size=(20, 3, 32, 32)).astype(np.uint8)
cases = {"lenet5": (images(1, 28, 28, 20, 1), list(range(20))), "vgg13": (px32, sorted(range(20), key=lambda i: (i % 10, i))),
         "resnet18": (px32, sorted(range(20), key=lambda i: (i % 10, i))),
         "spec": (px32[:, :, :16, :16], sorted(range(20), key=lambda i: (i % 5, i))),
         "res": (px32[:, :, :16, :16], sorted(range(20), key=lambda i: (i % 5, i)))}
ok = True
for name, (px, order) in cases.items():
    m = module(name); m.load_state_dict(load(name + ".t.safetensors"), strict=True); m.eval()
    mean, std = norm(name + ".nnl")
    x = torch.from_numpy(px).float() / 255
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad(): p = torch.softmax(m(x).double(), 1).numpy()
    w = compare(p, name + ".json", order)
    print(f"export --torch {name}: largest probability difference {w:.2e}")
    ok &= w < 1e-4
sys.exit(0 if ok else 1)
PY

echo "== bad state_dicts: one line naming the tensor, nothing written"
expect_fail "a missing tensor" "no tensor 'tail.0.weight'" "$nnlock" import --arch vgg13 --state-dict missing.safetensors -o x.nnl
expect_fail "an extra tensor" "tensor 'extra.weight' is not part of architecture 'vgg13'" "$nnlock" import --arch vgg13 --state-dict extra.safetensors -o x.nnl
expect_fail "a mis-shaped tensor" "tensor 'fc1.weight' is 100x256, architecture 'vgg13' needs 100x512" "$nnlock" import --arch vgg13 --state-dict shape.safetensors -o x.nnl
expect_fail "the wrong architecture" "no 2-D tensor 'f5.f5.f5.weight'" "$nnlock" import --arch lenet5 --state-dict vgg13.safetensors -o x.nnl
expect_fail "no shape for a spec" "give the input shape with --shape" "$nnlock" import --arch "$spec" --state-dict spec.safetensors -o x.nnl
expect_fail "a bad --norm" "--norm expects MEAN,STD or 3 means then 3 stds" "$nnlock" import --arch vgg13 --norm 0.5 --state-dict vgg13.safetensors -o x.nnl
[ ! -e x.nnl ] && ok || bad "a refused import wrote its output"

echo "cli_torch: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
