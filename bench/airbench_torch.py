#!/usr/bin/python3
"""airbench94 on the CPU in PyTorch: the reference side of nnlock's CIFAR-10 time-to-accuracy
benchmark (bench/run_bench.sh, case cifar10_time_to_acc).

A port of Keller Jordan's airbench94 (github.com/KellerJordan/cifar10-airbench,
legacy/airbench94.py; arXiv 2404.00498) written for this benchmark: the same network
(2x2 whitening convolution from the patch covariance, three conv-pool-bn-gelu groups of
64/256/256 channels, identity-initialised convolutions, batch-norm scales fixed), the same
recipe (batch 1024, 9.9 epochs, Nesterov SGD with its decoupled learning rate and weight
decay, batch-norm biases at 64x the rate, label smoothing 0.2, the triangle schedule,
Lookahead every 5 steps, the alternating flip, translation by 2 with reflect padding, the
whitening bias trained 3 epochs) and its test-time augmentation (level 2: mirror and
one-pixel translations, 6 views). Changed for the CPU: float32 instead of half precision,
no CUDA events (wall-clock time), per-epoch evaluation off unless --eval-each (airbench
does not count it either). The data are what nnlock decoded (bench/bench_export), so both
sides train on the same pixels.

    airbench_torch.py EXPORT_DIR [--runs N] [--seed S] [--threads T] [--epochs E] [--eval-each]

Prints one line per run:
    run=<i> acc=<tta accuracy> acc_plain=<accuracy without tta> train_seconds=<s> tta_seconds=<s>
    seconds=<train + tta, as airbench's total_time_seconds counts>
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HYP = dict(epochs=9.9, batch=1024, lr=11.5, momentum=0.85, wd=0.0153, bias_scaler=64.0, smoothing=0.2,
           whiten_bias_epochs=3, translate=2, widths=(64, 256, 256), bn_momentum=0.6, scale=1 / 9, tta=2)
MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
STD = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)


def load(d, split):
    meta = {}
    for line in open(os.path.join(d, "meta.txt")):
        name, n, c, h, w, k = line.split()
        meta[name] = (int(n), int(c), int(h), int(w), int(k))
    n, c, h, w, _ = meta[split]
    x = np.fromfile(os.path.join(d, split + "_x.u8"), dtype=np.uint8).reshape(n, c, h, w)
    y = np.fromfile(os.path.join(d, split + "_y.i32"), dtype="<i4")
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def normalise(u8):
    return (u8.float() / 255 - MEAN) / STD


class BatchNorm(nn.BatchNorm2d):
    def __init__(self, c):
        super().__init__(c, eps=1e-12, momentum=1 - HYP["bn_momentum"])
        self.weight.requires_grad = False


def conv(c_in, c_out, k=3, pad=1, bias=False):
    m = nn.Conv2d(c_in, c_out, k, padding=pad, bias=bias)
    if k == 3:
        torch.nn.init.dirac_(m.weight.data[:c_in])  # the first c_in filters pass their input through
    return m


def group(c_in, c_out):
    return [conv(c_in, c_out), nn.MaxPool2d(2), BatchNorm(c_out), nn.GELU(),
            conv(c_out, c_out), BatchNorm(c_out), nn.GELU()]


class Mul(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


def make_net():
    """airbench94's network (also bench/torch_bench.py's airbench_train case)."""
    w1, w2, w3 = HYP["widths"]
    net = nn.Sequential(conv(3, 24, 2, 0, True), nn.GELU(), *group(24, w1), *group(w1, w2), *group(w2, w3),
                        nn.MaxPool2d(3), nn.Flatten(), nn.Linear(w3, 10, bias=False), Mul(HYP["scale"]))
    net[0].weight.requires_grad = False
    return net


def init_whitening(layer, x, eps=5e-4):
    c = x.shape[1]
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, c, 2, 2).float()
    flat = patches.view(patches.shape[0], -1)
    vals, vecs = torch.linalg.eigh(flat.T @ flat / flat.shape[0], UPLO="U")
    vals, vecs = vals.flip(0).view(-1, 1, 1, 1), vecs.T.reshape(c * 4, c, 2, 2).flip(0)
    scaled = vecs / torch.sqrt(vals + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


def crop(padded, r, size, gen):
    """A random translation by -r..r of every image (airbench's batch_crop)."""
    n = padded.shape[0]
    shifts = torch.randint(-r, r + 1, (n, 2), generator=gen)
    out = torch.empty((n, padded.shape[1], size, size), dtype=padded.dtype)
    for sy in range(-r, r + 1):
        for sx in range(-r, r + 1):
            m = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
            out[m] = padded[m, :, r + sy:r + sy + size, r + sx:r + sx + size]
    return out


def evaluate(net, x, y, tta):
    net.eval()
    outs = []
    with torch.no_grad():
        for xb in x.split(2000):
            def mirror(v):
                return 0.5 * net(v) + 0.5 * net(v.flip(-1))
            if tta == 0:
                z = net(xb)
            elif tta == 1:
                z = mirror(xb)
            else:
                p = F.pad(xb, (1,) * 4, "reflect")
                h = xb.shape[-1]
                z = 0.5 * mirror(xb) + 0.5 * torch.stack([mirror(p[:, :, 0:h, 0:h]), mirror(p[:, :, 2:h + 2, 2:h + 2])]).mean(0)
            outs.append(z)
    net.train()
    return (torch.cat(outs).argmax(1) == y).float().mean().item()


def lookahead(net, ema, decay):
    with torch.no_grad():
        for k, v in net.state_dict().items():
            if v.dtype.is_floating_point:
                ema[k].lerp_(v, 1 - decay)
                v.copy_(ema[k])


def run(train_x, train_y, test_x, test_y, seed, epochs, eval_each):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    bs, mom = HYP["batch"], HYP["momentum"]
    kilostep = 1024 * (1 + 1 / (1 - mom))
    lr = HYP["lr"] / kilostep
    wd = HYP["wd"] * bs / kilostep
    lr_bias = lr * HYP["bias_scaler"]
    net = make_net()
    norm_biases = [p for k, p in net.named_parameters() if isinstance(net[int(k.split(".")[0])], BatchNorm)
                   and p.requires_grad]
    others = [p for k, p in net.named_parameters() if p.requires_grad and not any(p is q for q in norm_biases)]
    opt = torch.optim.SGD([dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
                           dict(params=others, lr=lr, weight_decay=wd / lr)], momentum=mom, nesterov=True)
    n = train_x.shape[0]
    steps_per_epoch = n // bs  # drop_last
    total = math.ceil(steps_per_epoch * epochs)
    warm = int(total * 0.23)

    def lr_factor(step):
        if step < warm:
            f = step / warm
            return 0.2 * (1 - f) + 1.0 * f
        f = (step - warm) / (total - warm)
        return 1.0 * (1 - f) + 0.07 * f
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    alpha = 0.95 ** 5 * (torch.arange(total + 1) / total) ** 3
    ema = {k: v.clone() for k, v in net.state_dict().items()}
    loss_fn = nn.CrossEntropyLoss(label_smoothing=HYP["smoothing"], reduction="none")

    t0 = time.perf_counter()
    init_whitening(net[0], normalise(train_x[:5000]))
    images = normalise(train_x)
    flip = torch.rand(n, generator=gen) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)  # the alternating flip's start
    r = HYP["translate"]
    padded = F.pad(images, (r,) * 4, "reflect")
    train_s, step = time.perf_counter() - t0, 0
    for ep in range(math.ceil(epochs)):
        t0 = time.perf_counter()
        net[0].bias.requires_grad = ep < HYP["whiten_bias_epochs"]
        ims = crop(padded, r, images.shape[-1], gen)
        if ep % 2 == 1:
            ims = ims.flip(-1)
        perm = torch.randperm(n, generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            out = net(ims[idx])
            loss = loss_fn(out, train_y[idx]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 5 == 0:
                lookahead(net, ema, alpha[step].item())
            if step >= total:
                lookahead(net, ema, 1.0)  # the run ends on the average
                break
        train_s += time.perf_counter() - t0
        if eval_each:
            print(f"# epoch {ep + 1}: test accuracy {evaluate(net, normalise(test_x), test_y, 0):.4f}, "
                  f"{train_s:.0f} s", flush=True)
    tx = normalise(test_x)
    plain = evaluate(net, tx, test_y, 0)
    t0 = time.perf_counter()
    acc = evaluate(net, tx, test_y, HYP["tta"])
    tta_s = time.perf_counter() - t0
    return acc, plain, train_s, tta_s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a directory bench_export wrote")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=float, default=HYP["epochs"])
    p.add_argument("--eval-each", action="store_true", help="measure the test set after every epoch (not timed)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train_x, train_y = load(a.data, "train")
    test_x, test_y = load(a.data, "test")
    print(f"# airbench94 on PyTorch {torch.__version__}, {a.threads} threads, {train_x.shape[0]} training images",
          flush=True)
    for i in range(a.runs):
        acc, plain, tr, tt = run(train_x, train_y, test_x, test_y, a.seed + i, a.epochs, a.eval_each)
        print(f"run={i} acc={acc:.4f} acc_plain={plain:.4f} train_seconds={tr:.1f} tta_seconds={tt:.1f} "
              f"seconds={tr + tt:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
