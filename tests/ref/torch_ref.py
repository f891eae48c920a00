#!/usr/bin/env python3
"""PyTorch reference data for tests/test_torch_ref.c.

Usage: torch_ref.py DIR   (reads DIR/c2py.bin if present, writes DIR/ref.bin)

1. Every layer kind in isolation, on random inputs drawn here: input x, parameters,
   upstream gradient dy and the expected output y, input gradient dx and parameter
   gradients (plus the updated batch-norm running statistics). The C test hard-codes
   the same case names and hyper-parameters and reads the shapes from the arrays.
2. Softmax cross-entropy: hard labels, soft targets, label smoothing: loss, dlogits.
3. 5 optimizer steps of the full `mlp` and `cnn`, from the initial weights, batches and
   optimizer settings the C test wrote to c2py.bin (after running them itself): the
   loss of each step, the gradients of the first step, the final weights and running
   statistics. The state_dict names of the PyTorch models must be nnlock's tensor names
   (nnl_model_tensor): loading is strict.

   Rounding-level ties. A ReLU input within rounding of 0, or two nearly equal
   values in a max-pool window, may be decided either way by two float32
   implementations; the gradient then flows differently and, a few steps on, the
   trajectories differ by far more than 1e-4 (with PyTorch itself: float32 against
   float64 on these very networks differs by ~1e-3 in about one run in ten). So the C
   test records its decisions (ReLU masks, max-pool arg-maxes) and this script takes
   nnlock's decision wherever PyTorch's margin is below TIE_BAND of the layer input's
   largest magnitude (i.e. where both answers are right); every other decision must
   agree with PyTorch's, and disagreements are counted into <model>/<run>/bad_decisions
   (the test fails on any). The reference values themselves stay PyTorch's: a forced
   decision only picks which element (or whether) an activation passes, not its value.

Precision: inputs and initial weights are float32 -- exactly the values the C side
has -- and the reference is computed in float64 and rounded to float32 once, when
written. So the reference is exact for the C side's inputs up to that one rounding,
and the comparison measures nnlock's own rounding error, not the sum of two float32
implementations' errors (which would depend on PyTorch's kernels and thread count).

File format (c2py.bin, ref.bin): the line "NNLREF2\n", then per array a header line
"<name> <dtype> <ndim> <d0> ... <dn-1>\n" (dtype f4, i4 or u1) followed by the
prod(d) little-endian values.
"""
import os
import re
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

MAGIC = b"NNLREF2\n"
DTYPES = {"f4": "<f4", "i4": "<i4", "u1": "u1"}
BN_MOMENTUM = 0.1
BN_EPS = 1e-5
TIE_BAND = 1e-4


# ---------------------------------------------------------------- files

class Writer:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(MAGIC)
        self.names = set()

    def put(self, name, t):
        """Writes t (tensor, array or number) as float32."""
        assert name not in self.names and " " not in name, name
        self.names.add(name)
        if isinstance(t, torch.Tensor):
            a = t.detach().cpu().to(torch.float64).numpy()
        else:
            a = np.asarray(t, dtype=np.float64)
        a = np.ascontiguousarray(a.astype("<f4"))
        self.f.write(("%s f4 %d%s\n" % (name, a.ndim, "".join(" %d" % d for d in a.shape))).encode())
        self.f.write(a.tobytes())

    def close(self):
        self.f.close()


def read(path):
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise SystemExit("%s: not a reference file" % path)
    pos = len(MAGIC)
    while pos < len(data):
        end = data.index(b"\n", pos)
        parts = data[pos:end].decode().split()
        name, dt, nd = parts[0], DTYPES[parts[1]], int(parts[2])
        shape = tuple(int(d) for d in parts[3:3 + nd])
        n = int(np.prod(shape)) if nd else 1
        nbytes = n * np.dtype(dt).itemsize
        out[name] = np.frombuffer(data, dtype=dt, count=n, offset=end + 1).reshape(shape)
        pos = end + 1 + nbytes
    return out


def gen(name):
    """A generator seeded from the case name: adding a case changes no other case."""
    return torch.Generator().manual_seed(zlib.crc32(name.encode()))


def randn(g, *shape, scale=1.0, shift=0.0):
    return torch.randn(*shape, generator=g, dtype=torch.float32) * scale + shift


def rand(g, *shape, lo=0.0, hi=1.0):
    return torch.rand(*shape, generator=g, dtype=torch.float32) * (hi - lo) + lo


# ---------------------------------------------------------------- single layers

def layer_case(W, name, fn, x, params, dy):
    """y = fn(x, *params) in float64; writes x, dy, y, dx, p<i>, dp<i>."""
    x64 = x.double().requires_grad_(True)
    p64 = [p.double().requires_grad_(True) for p in params]
    y = fn(x64, *p64)
    y.backward(dy.double().reshape(y.shape))
    W.put(name + "/x", x)
    W.put(name + "/dy", dy.reshape(y.shape))
    W.put(name + "/y", y)
    W.put(name + "/dx", x64.grad)
    for i, (p, q) in enumerate(zip(params, p64)):
        W.put("%s/p%d" % (name, i), p)
        W.put("%s/dp%d" % (name, i), q.grad)


def simple(W, name, fn, xshape, params_fn=None):
    g = gen(name)
    x = randn(g, *xshape)
    params = params_fn(g) if params_fn else []
    with torch.no_grad():
        yshape = fn(x.double(), *[p.double() for p in params]).shape
    layer_case(W, name, fn, x, params, randn(g, *yshape))


def dense_case(W, name, xshape, units):
    fan_in = int(np.prod(xshape[1:]))
    simple(W, name, lambda x, w, b: F.linear(x.flatten(1), w, b), xshape,
           lambda g: [randn(g, units, fan_in, scale=fan_in ** -0.5), randn(g, units, scale=0.1)])


def conv_case(W, name, xshape, oc, k, s, p):
    c = xshape[1]
    simple(W, name, lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p), xshape,
           lambda g: [randn(g, oc, c, k, k, scale=(c * k * k) ** -0.5), randn(g, oc, scale=0.1)])


def bn_case(W, name, xshape, training, xshift=0.0):
    g = gen(name)
    c = xshape[1]
    x = randn(g, *xshape, scale=1.5, shift=xshift)
    gamma = rand(g, c, lo=0.5, hi=1.5)
    beta = randn(g, c, scale=0.2)
    rm = randn(g, c, scale=0.2, shift=xshift)
    rv = rand(g, c, lo=0.5, hi=2.0)
    rm64, rv64 = rm.double(), rv.double()
    dy = randn(g, *xshape)

    def fn(x_, gm, bt):
        # In training mode this updates rm64/rv64 in place, as BatchNorm does.
        return F.batch_norm(x_, rm64, rv64, gm, bt, training=training, momentum=BN_MOMENTUM, eps=BN_EPS)

    W.put(name + "/rm", rm)
    W.put(name + "/rv", rv)
    layer_case(W, name, fn, x, [gamma, beta], dy)
    W.put(name + "/rm_out", rm64)
    W.put(name + "/rv_out", rv64)


def add_case(W, name, xshape):
    g = gen(name)
    x, skip, dy = randn(g, *xshape), randn(g, *xshape), randn(g, *xshape)
    s64 = skip.double().requires_grad_(True)
    layer_case(W, name, lambda x_: x_ + s64, x, [], dy)
    W.put(name + "/skip", skip)
    W.put(name + "/dskip", s64.grad)


def layers(W):
    dense_case(W, "dense_3d", (4, 3, 5, 5), 7)
    dense_case(W, "dense_flat", (6, 20, 1, 1), 9)
    conv_case(W, "conv_k3s1p1", (5, 3, 8, 8), 4, 3, 1, 1)
    conv_case(W, "conv_k3s2p1", (5, 3, 9, 7), 5, 3, 2, 1)
    conv_case(W, "conv_k3s1p0", (3, 2, 6, 7), 3, 3, 1, 0)
    conv_case(W, "conv_k1", (5, 6, 5, 5), 4, 1, 1, 0)
    conv_case(W, "conv_k1_single", (1, 6, 5, 4), 3, 1, 1, 0)
    conv_case(W, "conv_k5p2", (3, 4, 7, 7), 6, 5, 1, 2)
    simple(W, "maxpool2", lambda x: F.max_pool2d(x, 2, 2), (3, 4, 8, 6))
    simple(W, "maxpool2_odd", lambda x: F.max_pool2d(x, 2, 2), (2, 3, 7, 9))
    simple(W, "maxpool3s2", lambda x: F.max_pool2d(x, 3, 2), (3, 4, 9, 9))
    simple(W, "avgpool2", lambda x: F.avg_pool2d(x, 2, 2), (3, 4, 8, 6))
    simple(W, "avgpool3s2", lambda x: F.avg_pool2d(x, 3, 2), (3, 4, 9, 8))
    simple(W, "gap", lambda x: x.mean((2, 3), keepdim=True), (3, 5, 6, 7))
    bn_case(W, "bn_conv_train", (4, 3, 5, 6), True)
    bn_case(W, "bn_conv_train_offset", (4, 3, 5, 6), True, xshift=50.0)
    bn_case(W, "bn_dense_train", (8, 6, 1, 1), True)
    bn_case(W, "bn_conv_eval", (4, 3, 5, 6), False)
    bn_case(W, "bn_dense_eval", (8, 6, 1, 1), False)
    simple(W, "relu", F.relu, (3, 4, 5, 5))
    simple(W, "gelu", F.gelu, (3, 4, 5, 5))
    simple(W, "scale", lambda x: x * 0.37, (3, 4, 5, 5))
    simple(W, "conv_k3s1p1_nobias", lambda x, w: F.conv2d(x, w, None, stride=1, padding=1), (5, 3, 8, 8),
           lambda g: [randn(g, 4, 3, 3, 3, scale=27 ** -0.5)])
    simple(W, "dense_nobias", lambda x, w: F.linear(x.flatten(1), w), (6, 20, 1, 1),
           lambda g: [randn(g, 9, 20, scale=20 ** -0.5)])
    simple(W, "flatten", lambda x: x.flatten(1), (2, 3, 4, 4))
    simple(W, "dropout_eval", lambda x: F.dropout(x, 0.5, training=False), (2, 3, 4, 4))
    add_case(W, "add", (3, 4, 5, 5))


# ---------------------------------------------------------------- loss

def xent_case(W, name, n, k, soft, smoothing, scale=3.0):
    g = gen(name)
    z = randn(g, n, k, scale=scale)
    if soft:
        t = torch.softmax(randn(g, n, k, scale=2.0), 1)
        target64, best_t = t.double(), t.argmax(1)
    else:
        t = torch.randint(0, k, (n,), generator=g)
        target64, best_t = t, t
    z64 = z.double().requires_grad_(True)
    loss = F.cross_entropy(z64, target64, label_smoothing=smoothing)
    loss.backward()
    W.put(name + "/logits", z)
    W.put(name + "/target", t)
    W.put(name + "/smoothing", [smoothing])
    W.put(name + "/loss", loss.reshape(1))
    W.put(name + "/dlogits", z64.grad)
    W.put(name + "/correct", [float((z.argmax(1) == best_t).sum())])


def losses(W):
    xent_case(W, "xent_hard", 6, 5, False, 0.0)
    xent_case(W, "xent_soft", 6, 5, True, 0.0)
    xent_case(W, "xent_hard_ls", 6, 5, False, 0.1)
    xent_case(W, "xent_soft_ls", 6, 5, True, 0.1)
    xent_case(W, "xent_hard_large", 4, 10, False, 0.0, scale=40.0)


# ---------------------------------------------------------------- whole models

class Net(nn.Module):
    """layers.<i> is nnlock's layer i, so state_dict names equal nnl_model_tensor names."""

    def __init__(self, mods, flatten_input):
        super().__init__()
        self.layers = nn.Sequential(*mods)
        self.flatten_input = flatten_input


def mlp():
    # "dense900,relu,dense900,relu,dense900,relu,dense900,relu,dense" (a dense layer reads
    # its C x H x W input as C*H*W features: flatten first)
    mods, fan = [], 28 * 28
    for _ in range(4):
        mods += [nn.Linear(fan, 900), nn.ReLU()]
        fan = 900
    mods.append(nn.Linear(fan, 10))
    return Net(mods, True)


def cnn():
    # "conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,
    #  conv128k3p1,bn,relu,maxpool2,flatten,dense256,relu,dense" on 3x32x32
    mods, c = [], 3
    for oc in (32, 64, 128):
        mods += [nn.Conv2d(c, oc, 3, padding=1), nn.BatchNorm2d(oc, eps=BN_EPS, momentum=BN_MOMENTUM),
                 nn.ReLU(), nn.MaxPool2d(2)]
        c = oc
    mods += [nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.ReLU(), nn.Linear(256, 10)]
    return Net(mods, False)


class Mul(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


def airmini():
    # "conv24k2w,gelu,conv16k3p1b0,maxpool2,bnb,gelu,flatten,denseb0,scale0.5" on 3x9x9: the
    # whitening layer's weights and the batch-norm's scale are not trained (airbench94.py).
    mods = [nn.Conv2d(3, 24, 2), nn.GELU(), nn.Conv2d(24, 16, 3, padding=1, bias=False), nn.MaxPool2d(2),
            nn.BatchNorm2d(16, eps=BN_EPS), nn.GELU(), nn.Flatten(), nn.Linear(256, 10, bias=False), Mul(0.5)]
    mods[0].weight.requires_grad = False
    mods[4].weight.requires_grad = False
    return Net(mods, False)


MODELS = {"mlp": mlp, "cnn": cnn, "airmini": airmini}


def forward_with_ties(net, x, dec, prefix, tally):
    """net's forward pass, taking nnlock's decision at rounding-level ties (see the top)."""
    h = x.flatten(1) if net.flatten_input else x
    for i, mod in enumerate(net.layers):
        if isinstance(mod, nn.ReLU):
            theirs = torch.from_numpy(dec["%s/relu%d" % (prefix, i)].astype(bool)).reshape(h.shape)
            z = h.detach()
            tie = z.abs() <= TIE_BAND * z.abs().max()
            ours = z > 0
            bad = int(((ours != theirs) & ~tie).sum())
            if bad:
                print("torch_ref.py: %s: ReLU layer %d: %d decisions differ from PyTorch's" % (prefix, i, bad),
                      file=sys.stderr)
            tally[0] += bad
            tally[1] += int(((ours != theirs) & tie).sum())
            h = h * torch.where(tie, theirs, ours).to(h.dtype)
        elif isinstance(mod, nn.MaxPool2d):
            assert mod.kernel_size == 2 and mod.stride == 2 and h.shape[2] % 2 == 0 and h.shape[3] % 2 == 0
            n, c, hh, ww = h.shape
            win = h.reshape(n, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, hh // 2, ww // 2, 4)
            z = win.detach()
            top = z.topk(2, dim=-1).values
            tie = (top[..., 0] - top[..., 1]) <= TIE_BAND * z.abs().max()
            ours = z.argmax(-1)
            # nnlock's arg-max: an index into the H x W plane -> the position in the window
            a = torch.from_numpy(dec["%s/maxpool%d" % (prefix, i)].astype(np.int64)).reshape(ours.shape)
            oy = torch.arange(hh // 2).view(1, 1, -1, 1)
            ox = torch.arange(ww // 2).view(1, 1, 1, -1)
            di, dj = a // ww - 2 * oy, a % ww - 2 * ox
            inside = (di >= 0) & (di < 2) & (dj >= 0) & (dj < 2)
            theirs = torch.where(inside, di * 2 + dj, torch.full_like(a, -1))
            bad = int(((ours != theirs) & (~tie | ~inside)).sum())
            if bad:
                print("torch_ref.py: %s: max-pool layer %d: %d arg-maxes differ from PyTorch's" % (prefix, i, bad),
                      file=sys.stderr)
            tally[0] += bad
            tally[1] += int(((ours != theirs) & tie & inside).sum())
            pick = torch.where(tie & inside, theirs, ours)
            h = win.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
        else:
            h = mod(h)
    return h


def model_runs(W, c2py):
    for name, make in MODELS.items():
        runs = sorted({m.group(1) for k in c2py for m in [re.match(r"%s/([^/]+)/hyper$" % name, k)] if m})
        if not runs:
            continue
        init = {k[len(name) + 6:]: torch.from_numpy(v.astype(np.float64))
                for k, v in c2py.items() if k.startswith(name + "/init/")}
        xs = torch.from_numpy(c2py[name + "/x"].astype(np.float64))
        ys = torch.from_numpy(c2py[name + "/labels"].astype(np.int64))
        for run in runs:
            hyper = [float(v) for v in c2py["%s/%s/hyper" % (name, run)]]
            opt_kind, lr, mom, wd, nest, b1, b2, eps, grad0 = hyper[:9]
            smoothing, bn_bias_lr, bn_mom = hyper[9:12] if len(hyper) >= 12 else (0.0, 0.0, BN_MOMENTUM)
            la_every, la_decay, la_pow, la_total = hyper[12:16] if len(hyper) >= 16 else (0, 0, 0, 1)
            la_every = int(la_every)
            net = make().double()
            for mod in net.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.momentum = bn_mom
            missing, unexpected = net.load_state_dict(init, strict=False)
            missing = [k for k in missing if not k.endswith("num_batches_tracked")]
            if missing or unexpected:
                raise SystemExit("%s: nnlock's tensor names do not match PyTorch's state_dict: missing %s, "
                                 "unexpected %s" % (name, missing, unexpected))
            net.train()
            trained = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
            if opt_kind == 0 and bn_bias_lr > 0:
                # airbench's groups: batch-norm biases at bn_bias_lr times the rate and 1/bn_bias_lr the decay
                bn = {"layers.%d.bias" % i for i, m in enumerate(net.layers) if isinstance(m, nn.BatchNorm2d)}
                groups = [dict(params=[p for k, p in trained if k in bn], lr=lr * bn_bias_lr, weight_decay=wd / bn_bias_lr),
                          dict(params=[p for k, p in trained if k not in bn], lr=lr, weight_decay=wd)]
                opt = torch.optim.SGD(groups, lr=lr, momentum=mom, nesterov=bool(nest))
            elif opt_kind == 0:
                opt = torch.optim.SGD([p for _, p in trained], lr=lr, momentum=mom, weight_decay=wd, nesterov=bool(nest))
            else:
                opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
            hist, tally = [], [0, 0]
            # airbench94.py's Lookahead: an average of the whole state_dict (batch-norm statistics
            # too) from the initial weights; every la_every steps ema.lerp_(w, 1 - decay), w = ema,
            # decay = la_decay^la_every (steps / total)^la_pow; w = ema at the end.
            ema = {k: v.clone() for k, v in net.state_dict().items() if v.dtype.is_floating_point} if la_every else None
            for t in range(xs.shape[0]):
                opt.zero_grad()
                logits = forward_with_ties(net, xs[t], c2py, "%s/%s/step%d" % (name, run, t), tally)
                loss = F.cross_entropy(logits, ys[t], label_smoothing=smoothing)
                loss.backward()
                if t == 0 and grad0:
                    for k, p in trained:
                        W.put("%s/%s/grad0/%s" % (name, run, k), p.grad)
                opt.step()
                hist.append(loss.item())
                if ema is not None and (t + 1) % la_every == 0:
                    decay = la_decay ** la_every * ((t + 1) / la_total) ** la_pow
                    with torch.no_grad():
                        for k, v in net.state_dict().items():
                            if k in ema:
                                ema[k].lerp_(v, 1 - decay)
                                v.copy_(ema[k])
            if ema is not None:
                with torch.no_grad():
                    for k, v in net.state_dict().items():
                        if k in ema:
                            v.copy_(ema[k])
            W.put("%s/%s/loss" % (name, run), hist)
            W.put("%s/%s/bad_decisions" % (name, run), [tally[0]])
            W.put("%s/%s/tied_decisions" % (name, run), [tally[1]])
            for k, v in net.state_dict().items():
                if not k.endswith("num_batches_tracked"):
                    W.put("%s/%s/final/%s" % (name, run, k), v)
            if "%s/%s/tta_x" % (name, run) in c2py:
                tta_case(W, net, c2py, "%s/%s" % (name, run))


def tta_case(W, net, c2py, prefix):
    """airbench94.py's test-time augmentation, levels 1 and 2, on the trained model."""
    x = torch.from_numpy(c2py[prefix + "/tta_x"].astype(np.float64))
    y = torch.from_numpy(c2py[prefix + "/tta_labels"].astype(np.int64))
    net.eval()
    with torch.no_grad():
        def mirror(v):
            return 0.5 * net.layers(v) + 0.5 * net.layers(v.flip(-1))
        h, w = x.shape[2], x.shape[3]
        p = F.pad(x, (1, 1, 1, 1), "reflect")
        level = {1: mirror(x),
                 2: 0.5 * mirror(x) + 0.5 * torch.stack([mirror(p[:, :, 0:h, 0:w]), mirror(p[:, :, 2:h + 2, 2:w + 2])]).mean(0)}
        for lv, logits in level.items():
            W.put("%s/tta%d_loss" % (prefix, lv), [F.cross_entropy(logits, y).item()])
            W.put("%s/tta%d_correct" % (prefix, lv), [int((logits.argmax(1) == y).sum())])


def whiten_case(W, c2py):
    """airbench94.py's whitening init: eigenvectors of the 2x2 patch covariance of the
    normalised images, largest first, scaled by 1/sqrt(eigenvalue + 5e-4), then negated."""
    if "whiten/pixels" not in c2py:
        return
    x = torch.from_numpy(c2py["whiten/pixels"].astype(np.float64)) / 255.0
    mean = torch.from_numpy(c2py["whiten/mean"].astype(np.float64)).view(1, -1, 1, 1)
    std = torch.from_numpy(c2py["whiten/std"].astype(np.float64)).view(1, -1, 1, 1)
    x = (x - mean) / std
    c = x.shape[1]
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, c, 2, 2)
    flat = patches.reshape(patches.shape[0], -1)
    cov = flat.T @ flat / flat.shape[0]
    vals, vecs = torch.linalg.eigh(cov, UPLO="U")
    vals, vecs = vals.flip(0).view(-1, 1, 1, 1), vecs.T.reshape(c * 4, c, 2, 2).flip(0)
    scaled = vecs / torch.sqrt(vals + 5e-4)
    W.put("whiten/weight", torch.cat((scaled, -scaled)))


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: torch_ref.py DIR")
    d = sys.argv[1]
    c2py_path = os.path.join(d, "c2py.bin")
    c2py = read(c2py_path) if os.path.exists(c2py_path) else {}
    path = os.path.join(d, "ref.bin")
    W = Writer(path + ".tmp")
    layers(W)
    losses(W)
    model_runs(W, c2py)
    whiten_case(W, c2py)
    W.close()
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
