#!/usr/bin/python3
"""PyTorch reference throughput for the nnlock benchmark networks.

Run with Debian's interpreter (/usr/bin/python3, python3-torch). Inputs are
normalised float32 random tensors (no data-loading cost). Output is one
machine-readable line per case:

    case=<name> images_per_s=<float> median=<float> mean=<float>
    case=mlp_train_peak_rss_mb value=<float> vmhwm_mb=<float>
    case=torch_sgemm_gflops value=<float>        (informational)

images_per_s is the best of (up to) 6 equal time slices after warm-up (the machine is
shared and has 2 cores; the best slice is the least disturbed); median and
mean of the slices follow.

Lines starting with '#' are comments (configuration, notes).

Cases (names shared with nnlock's bench_train):
    mlp_train     784-900-900-900-900-10 MLP, SGD(0.01, m 0.9, wd 5e-4), batch 128
    mlp_infer     same network, eval + no_grad, batch 1000
    cnn32_train   3 conv blocks 32/64/128 (conv3x3+BN+ReLU+maxpool2) + 256 + 10, 32x32x3, batch 128
    cnn32_infer   same, batch 1000
    cnn28_train   same for 28x28x1 (28->14->7->3), batch 128
    cnn28_infer   same, batch 1000
    resnet9_train the DAWNBench ResNet-9 (nnlock's `resnet9`), 32x32x3, batch 128
    airbench_train airbench94's network (bench/airbench_torch.py; nnlock's `airbench`), batch 512
    mlp_rss       peak RSS (MB) of a fresh process training the mlp for one epoch on a
                  60000x784 float tensor + labels, batch 128
    sgemm         torch.mm GFLOP/s on a 1000x900 @ 900x900 product (informational)

Examples:
    /usr/bin/python3 bench/torch_bench.py --threads 2
    /usr/bin/python3 bench/torch_bench.py --default-threads --cases mlp_train,mlp_infer
"""
import argparse
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn as nn

ALL_CASES = ["mlp_train", "mlp_infer", "cnn32_train", "cnn32_infer",
             "cnn28_train", "cnn28_infer", "resnet9_train", "airbench_train", "mlp_rss", "sgemm"]


def make_mlp():
    return nn.Sequential(
        nn.Linear(784, 900), nn.ReLU(),
        nn.Linear(900, 900), nn.ReLU(),
        nn.Linear(900, 900), nn.ReLU(),
        nn.Linear(900, 900), nn.ReLU(),
        nn.Linear(900, 10))


def make_cnn(in_ch, hw):
    layers = []
    c = in_ch
    for oc in (32, 64, 128):
        layers += [nn.Conv2d(c, oc, 3, padding=1), nn.BatchNorm2d(oc),
                   nn.ReLU(), nn.MaxPool2d(2)]
        c = oc
        hw //= 2
    layers += [nn.Flatten(), nn.Linear(128 * hw * hw, 256), nn.ReLU(),
               nn.Linear(256, 10)]
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


def make_resnet9():
    """The DAWNBench ResNet-9, as nnlock's `resnet9` preset builds it."""
    def block(c_in, c_out, pool):
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        return layers + ([nn.MaxPool2d(2)] if pool else [])
    return nn.Sequential(
        *block(3, 64, False),
        *block(64, 128, True), Residual(nn.Sequential(*block(128, 128, False), *block(128, 128, False))),
        *block(128, 256, True),
        *block(256, 512, True), Residual(nn.Sequential(*block(512, 512, False), *block(512, 512, False))),
        nn.MaxPool2d(4), nn.Flatten(), nn.Linear(512, 10))


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                           weight_decay=5e-4)


def make_batches(shape, batch, n=4):
    """A few pre-generated normalised batches, cycled through."""
    xs = [torch.randn(batch, *shape) for _ in range(n)]
    ys = [torch.randint(0, 10, (batch,)) for _ in range(n)]
    return xs, ys


def timed_loop(step, batch, warmup, seconds, segments=6):
    """Warm up (at least 1 and at most `warmup` iterations, stopping after ~1 s),
    then run step() for about `seconds`, split into up to `segments` time slices
    of at least one iteration each (fewer slices when one iteration is long, so
    a slow case still takes about `seconds`). Returns (best, median, mean)
    images/s over the slices: the best slice is the figure least disturbed by
    other processes on this shared 2-core machine."""
    t0 = time.perf_counter()
    for i in range(max(1, warmup)):
        ts = time.perf_counter()
        step(i)
        t_iter = time.perf_counter() - ts
        if ts + t_iter - t0 > 1.0:
            break
    segments = max(1, min(segments, int(seconds / max(t_iter, 1e-9))))
    seg_len = seconds / segments
    rates = []
    total_iters = 0
    total_time = 0.0
    it = 0
    for _ in range(segments):
        n = 0
        ts = time.perf_counter()
        while True:
            step(it)
            it += 1
            n += 1
            el = time.perf_counter() - ts
            if el >= seg_len:
                break
        rates.append(n * batch / el)
        total_iters += n
        total_time += el
    rates.sort()
    return rates[-1], rates[len(rates) // 2], total_iters * batch / total_time


def bench_train(model, shape, batch, warmup, seconds):
    model.train()
    opt = make_optimizer(model)
    loss_fn = nn.CrossEntropyLoss()
    xs, ys = make_batches(shape, batch)

    def step(i):
        x, y = xs[i % len(xs)], ys[i % len(ys)]
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return timed_loop(step, batch, warmup, seconds)


def bench_infer(model, shape, batch, warmup, seconds):
    model.eval()
    xs, _ = make_batches(shape, batch, n=2)

    def step(i):
        with torch.no_grad():
            model(xs[i % len(xs)])

    return timed_loop(step, batch, warmup, seconds)


def bench_sgemm(seconds):
    a = torch.randn(1000, 900)
    b = torch.randn(900, 900)
    c = torch.empty(1000, 900)
    for _ in range(5):
        torch.mm(a, b, out=c)
    iters = 0
    t0 = time.perf_counter()
    while True:
        torch.mm(a, b, out=c)
        iters += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            break
    return 2.0 * 1000 * 900 * 900 * iters / el / 1e9


def vmhwm_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def rss_child(batch, epochs, max_batches):
    """Train the mlp on real-size data in this (fresh) process; print peak RSS."""
    torch.manual_seed(0)
    n = 60000
    x = torch.randn(n, 784)  # 188 MB, like a normalised Fashion-MNIST training set
    y = torch.randint(0, 10, (n,))
    model = make_mlp()
    model.train()
    opt = make_optimizer(model)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for b, s in enumerate(range(0, n, batch)):
            if max_batches and b >= max_batches:
                break
            idx = perm[s:s + batch]
            xb, yb = x[idx], y[idx]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
    el = time.perf_counter() - t0
    # ru_maxrss (KiB) survives exec: it includes the parent's RSS at fork time, which is
    # why the parent runs this case before anything else. VmHWM belongs to this image only.
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"case=mlp_train_peak_rss_mb value={rss_kb / 1024.0:.1f} vmhwm_mb={vmhwm_kb() / 1024.0:.1f}")
    done = epochs * (min(max_batches * batch, n) if max_batches else n)
    print(f"# rss child: {epochs} epoch(s), {done} images in {el:.1f} s "
          f"({done / el:.0f} images/s)")


def configure_threads(args):
    if not args.default_threads:
        torch.set_num_threads(args.threads)


def child_args(args):
    a = [sys.executable, os.path.abspath(__file__), "--rss-child",
         "--rss-epochs", str(args.rss_epochs), "--rss-max-batches", str(args.rss_max_batches)]
    a += ["--default-threads"] if args.default_threads else ["--threads", str(args.threads)]
    return a


def blas_libs():
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower()}
        return ",".join(sorted(os.path.basename(p) for p in libs)) or "?"
    except OSError:
        return "?"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads(N) (default 2)")
    p.add_argument("--default-threads", action="store_true",
                   help="do not call torch.set_num_threads (out-of-the-box behaviour)")
    p.add_argument("--cases", default=",".join(ALL_CASES),
                   help="comma-separated subset of: " + ",".join(ALL_CASES))
    p.add_argument("--seconds", type=float, default=4.0,
                   help="timed seconds per case after warm-up (default 4)")
    p.add_argument("--warmup", type=int, default=3,
                   help="warm-up iterations per case (default 3)")
    p.add_argument("--rss-epochs", type=int, default=1,
                   help="epochs for the peak-RSS child run (default 1)")
    p.add_argument("--rss-max-batches", type=int, default=0,
                   help="stop each rss epoch after this many batches (default 0: full epoch)")
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    configure_threads(args)
    torch.manual_seed(0)

    if args.rss_child:
        rss_child(128, args.rss_epochs, args.rss_max_batches)
        return 0

    cases = [c for c in args.cases.split(",") if c]
    bad = [c for c in cases if c not in ALL_CASES]
    if bad:
        p.error("unknown case(s): " + ",".join(bad))
    if "mlp_rss" in cases:  # first, while this process is small (see rss_child)
        cases = ["mlp_rss"] + [c for c in cases if c != "mlp_rss"]

    # Touch BLAS once so its library shows up in /proc/self/maps.
    torch.mm(torch.ones(4, 4), torch.ones(4, 4))
    env = " ".join(f"{k}={os.environ[k]}" for k in
                   ("OPENBLAS_CORETYPE", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "LD_PRELOAD",
                    "MALLOC_CONF")
                   if k in os.environ) or "(none)"
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()}"
          f" ({'default' if args.default_threads else 'set'}) blas={blas_libs()} env: {env}")
    sys.stdout.flush()

    mlp_shape = (784,)
    for case in cases:
        torch.manual_seed(0)
        if case == "mlp_train":
            v = bench_train(make_mlp(), mlp_shape, 128, args.warmup * 10, args.seconds)
        elif case == "mlp_infer":
            v = bench_infer(make_mlp(), mlp_shape, 1000, args.warmup, args.seconds)
        elif case == "cnn32_train":
            v = bench_train(make_cnn(3, 32), (3, 32, 32), 128, args.warmup, args.seconds)
        elif case == "cnn32_infer":
            v = bench_infer(make_cnn(3, 32), (3, 32, 32), 1000, args.warmup, args.seconds)
        elif case == "cnn28_train":
            v = bench_train(make_cnn(1, 28), (1, 28, 28), 128, args.warmup, args.seconds)
        elif case == "cnn28_infer":
            v = bench_infer(make_cnn(1, 28), (1, 28, 28), 1000, args.warmup, args.seconds)
        elif case == "resnet9_train":
            v = bench_train(make_resnet9(), (3, 32, 32), 128, 1, args.seconds)
        elif case == "airbench_train":
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from airbench_torch import make_net
            v = bench_train(make_net(), (3, 32, 32), 512, 1, args.seconds)
        elif case == "sgemm":
            print(f"case=torch_sgemm_gflops value={bench_sgemm(min(args.seconds, 1.5)):.1f}")
            sys.stdout.flush()
            continue
        elif case == "mlp_rss":
            r = subprocess.run(child_args(args), stdout=subprocess.PIPE, text=True)
            sys.stdout.write(r.stdout)
            if r.returncode != 0:
                print(f"# rss child failed with status {r.returncode}")
            sys.stdout.flush()
            continue
        print(f"case={case} images_per_s={v[0]:.1f} median={v[1]:.1f} mean={v[2]:.1f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
