# The PyTorch side of test_torch_grad: for each case the C test wrote (the model's state_dict as
# safetensors, its module as Python, the inputs, nnlock's logits and input gradient), the same
# computation in PyTorch (float64 on the same float32 weights), and the largest error of each.
# Usage: torch_grad.py DIR CASE...   exit 0 when every error is within 1e-4
import importlib.util, json, struct, sys
import numpy as np
import torch

def load_state(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: torch.from_numpy(np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]],
                                              dtype={"F32": "<f4", "I64": "<i8"}[v["dtype"]]).reshape(v["shape"]).copy())
            for k, v in h.items() if k != "__metadata__"}

def err(a, r):  # relative to the reference's largest value, as test_torch_ref's model tensors (floor 10%)
    a, r = a.astype(np.float64).ravel(), r.astype(np.float64).ravel()
    scale = max(np.abs(r).max(), 1e-30)
    return float(np.max(np.abs(a - r) / np.maximum(np.abs(r), 0.1 * scale)))

d, worst, ok = sys.argv[1], 0.0, True
for case in sys.argv[2:]:
    spec = importlib.util.spec_from_file_location(case, f"{d}/{case}.py"); mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.Net()
    net.load_state_dict(load_state(f"{d}/{case}.safetensors"), strict=True)
    raw = open(f"{d}/{case}.bin", "rb").read()
    n, c, h, w, k, training, frozen = struct.unpack("<7i", raw[:28])
    f = np.frombuffer(raw[28:], dtype="<f4")
    sizes = [n * c * h * w, n * k, n * k, n * c * h * w]
    parts, at = [], 0
    for s in sizes: parts.append(f[at:at + s]); at += s
    x, r, logits, gx = parts
    # nnlock's decisions: each max-pool's choice and each ReLU's mask, in module order
    dec = np.frombuffer(raw[28 + 4 * at:], dtype="<i4")
    mods = [mm for mm in net.modules() if isinstance(mm, (torch.nn.MaxPool2d, torch.nn.ReLU))]
    net = net.double()
    shapes = []
    hooks = [mm.register_forward_hook(lambda mod, inp, out: shapes.append(out.shape)) for mm in mods]
    with torch.no_grad(): net.eval()(torch.zeros(n, c, h, w, dtype=torch.float64))
    for hk in hooks: hk.remove()
    at_i = 0
    def pool_fwd(mod, sel):
        k = mod.kernel_size if isinstance(mod.kernel_size, int) else mod.kernel_size[0]
        s = mod.stride if isinstance(mod.stride, int) else mod.stride[0]
        def fwd(t):
            N, C, H, W = t.shape
            OH, OW = (H - k) // s + 1, (W - k) // s + 1
            y, own = torch.nn.functional.max_pool2d(t, k, s, return_indices=True)
            ours = torch.from_numpy(sel.reshape(N, C, OH, OW).astype(np.int64))
            # a near-tie (within 1e-4 of the layer's scale) goes nnlock's way
            tv = t.flatten(2).gather(2, ours.flatten(2)).reshape(N, C, OH, OW)
            near = (y - tv).abs() <= 1e-4 * t.abs().max()
            pick = torch.where(near, ours, own)
            return t.flatten(2).gather(2, pick.flatten(2)).reshape(N, C, OH, OW)
        return fwd
    def relu_fwd(sel):
        def fwd(t):
            m_nn = torch.from_numpy(sel.reshape(t.shape).astype(np.float64))
            near = t.abs() <= 1e-4 * t.abs().max()
            return t * torch.where(near, m_nn, (t > 0).double())
        return fwd
    for mm, shp in zip(mods, shapes):
        cnt = int(np.prod(shp))
        sel = dec[at_i:at_i + cnt]
        mm.forward = pool_fwd(mm, sel) if isinstance(mm, torch.nn.MaxPool2d) else relu_fwd(sel)
        at_i += cnt
    assert at_i == len(dec), (at_i, len(dec))
    net.train(bool(training))
    # frozen layers run in evaluation mode: the first `frozen` nnlock layers
    if frozen:
        if hasattr(net, "layers"):
            for i in range(frozen): net.layers[i].eval()
        elif hasattr(net, "head"): net.head.eval()
        elif hasattr(net, "layer3"):
            for mod in (net.conv1, net.bn1, net.layer1, net.layer2, net.layer3): mod.eval()
        else: net.c1.eval(); net.c2.eval()
    xt = torch.from_numpy(x.reshape(n, c, h, w).astype(np.float64)).requires_grad_(True)
    z = net(xt)
    (z * torch.from_numpy(r.reshape(n, k).astype(np.float64))).sum().backward()
    e1, e2 = err(logits, z.detach().numpy()), err(gx, xt.grad.numpy())
    print(f"{case}: logits {e1:.2e}, input gradient {e2:.2e}")
    ok &= e1 <= 1e-4 and e2 <= 1e-4
sys.exit(0 if ok else 1)
