/* The PyTorch module of a model's architecture, as Python source: what `nnlock export --torch`
 * writes, so that a PyTorch user loads an exported state_dict into the network it came from
 * with load_state_dict(strict=True). lenet5 and vgg13 get AuthNet's modules (their names);
 * every other architecture one submodule per nnlock layer in `layers` (names layers.I.*), with
 * a forward that keeps each activation in nnlock's C x H x W shape (a linear layer flattens its
 * input, as nnlock's dense does) and the named activations for residual adds. */
#include "../nn/model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf { char *p; size_t n, cap; int oom; } buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || b->oom) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = (b->cap ? 2 * b->cap : 4096) + (size_t)k;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

static const char header[] =
    "# The PyTorch module of an nnlock model (written by nnlock export --torch).\n"
    "# Load the exported weights: model.load_state_dict(state_dict, strict=True); with the\n"
    "# safetensors package: safetensors.torch.load_file(PATH). Inputs are pixel / 255, then\n"
    "# normalised with the model's norm_mean and norm_std (nnlock info MODEL shows them).\n"
    "from collections import OrderedDict\n"
    "import torch\n"
    "import torch.nn as nn\n\n";

static void lenet5(buf *b, const nnl_model *m) {
    int pad = m->layers[0].pad;
    put(b, "class _Block(nn.Module):\n"
           "    def __init__(self, name, layers):\n"
           "        super().__init__()\n"
           "        self.name = name\n"
           "        setattr(self, name, nn.Sequential(OrderedDict(layers)))\n\n"
           "    def forward(self, x):\n"
           "        return getattr(self, self.name)(x)\n\n\n"
           "class Net(nn.Module):\n"
           "    \"\"\"AuthNet's LeNet-5 (models/lenet.py), %dx%d inputs; feature() is the gate.\"\"\"\n\n"
           "    def __init__(self):\n"
           "        super().__init__()\n"
           "        self.c1 = _Block('c1', [('c1', nn.Conv2d(1, 6, 5, padding=%d)), ('relu1', nn.ReLU()), ('s1', nn.AvgPool2d(2, 2))])\n"
           "        self.c2 = _Block('c2', [('c2', nn.Conv2d(6, 16, 5)), ('relu2', nn.ReLU()), ('s2', nn.AvgPool2d(2, 2))])\n"
           "        self.c4 = _Block('c4', [('c4', nn.Conv2d(16, 120, 5)), ('relu4', nn.ReLU())])\n"
           "        self.f4 = _Block('f4', [('f4', nn.Linear(120, 84)), ('relu4', nn.ReLU())])\n"
           "        self.f5 = _Block('f5', [('f5', nn.Linear(84, %d))])\n\n"
           "    def feature(self, x):\n"
           "        return self.c2(self.c1(x))\n\n"
           "    def forward(self, x):\n"
           "        return self.f5(self.f4(self.c4(self.feature(x)).flatten(1)))\n",
        m->input.h, m->input.w, pad, m->nclass);
}

static void vgg13(buf *b, const nnl_model *m) {
    put(b, "def _layers(cfg, cin):\n"
           "    out = []\n"
           "    for v in cfg:\n"
           "        if v == 'M':\n"
           "            out.append(nn.MaxPool2d(2, 2))\n"
           "        else:\n"
           "            out += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]\n"
           "            cin = v\n"
           "    return nn.Sequential(*out), cin\n\n\n"
           "class Net(nn.Module):\n"
           "    \"\"\"AuthNet's VGG-13 (models/VGG.py): head | tail, fc1, fc2; feature() is the gate.\"\"\"\n\n"
           "    def __init__(self):\n"
           "        super().__init__()\n"
           "        self.head, c = _layers([64, 64, 'M', 128, 128, 'M', 256, 256, 'M'], %d)\n"
           "        self.tail, c = _layers([512, 512, 'M', 512, 512, 'M'], c)\n"
           "        self.fc1 = nn.Linear(%d, 100)\n"
           "        self.fc2 = nn.Linear(100, %d)\n\n"
           "    def feature(self, x):\n"
           "        return self.head(x)\n\n"
           "    def forward(self, x):\n"
           "        return self.fc2(self.fc1(self.tail(self.head(x)).flatten(1)))\n",
        m->input.c, (int)nnl_shape_size(m->layers[m->nlayers - 3].in), m->nclass);
}

static void resnet18(buf *b, const nnl_model *m) {
    put(b, "class BasicBlock(nn.Module):\n"
           "    def __init__(self, cin, c, stride):\n"
           "        super().__init__()\n"
           "        self.conv1 = nn.Conv2d(cin, c, 3, stride=stride, padding=1, bias=False)\n"
           "        self.bn1 = nn.BatchNorm2d(c)\n"
           "        self.relu1 = nn.ReLU()\n"
           "        self.conv2 = nn.Conv2d(c, c, 3, stride=1, padding=1, bias=False)\n"
           "        self.bn2 = nn.BatchNorm2d(c)\n"
           "        self.shortcut = nn.Sequential()\n"
           "        if stride != 1 or cin != c:\n"
           "            self.shortcut = nn.Sequential(nn.Conv2d(cin, c, 1, stride=stride, bias=False), nn.BatchNorm2d(c))\n"
           "        self.relu2 = nn.ReLU()\n\n"
           "    def forward(self, x):\n"
           "        out = self.relu1(self.bn1(self.conv1(x)))\n"
           "        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))\n\n\n"
           "class Net(nn.Module):\n"
           "    \"\"\"The common CIFAR ResNet-18 (kuangliu/pytorch-cifar's names); feature() is the gate.\"\"\"\n\n"
           "    def __init__(self):\n"
           "        super().__init__()\n"
           "        self.conv1 = nn.Conv2d(%d, 64, 3, stride=1, padding=1, bias=False)\n"
           "        self.bn1 = nn.BatchNorm2d(64)\n"
           "        self.relu = nn.ReLU()\n"
           "        cin, layers = 64, []\n"
           "        for c, s in ((64, 1), (128, 2), (256, 2), (512, 2)):\n"
           "            layers.append(nn.Sequential(BasicBlock(cin, c, s), BasicBlock(c, c, 1)))\n"
           "            cin = c\n"
           "        self.layer1, self.layer2, self.layer3, self.layer4 = layers\n"
           "        self.linear = nn.Linear(512, %d)\n\n"
           "    def feature(self, x):\n"
           "        return self.layer3(self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x))))))\n\n"
           "    def forward(self, x):\n"
           "        out = self.layer4(self.feature(x))\n"
           "        out = %s\n"
           "        return self.linear(out.flatten(1))\n",
        m->input.c, m->nclass, m->input.h == 32 && m->input.w == 32 ? "nn.functional.avg_pool2d(out, 4)" : "out.mean((2, 3))");
}

static void generic(buf *b, const nnl_model *m) {
    put(b, "class Scale(nn.Module):\n"
           "    def __init__(self, f):\n"
           "        super().__init__()\n"
           "        self.f = f\n\n"
           "    def forward(self, x):\n"
           "        return x * self.f\n\n\n"
           "class Recall(nn.Module):\n"
           "    \"\"\"Continues from activation `src` (a second path from it).\"\"\"\n\n"
           "    def __init__(self, src):\n"
           "        super().__init__()\n"
           "        self.src = src\n\n\n"
           "class Add(nn.Module):\n"
           "    \"\"\"Adds activation `src` (0: the input) to its input.\"\"\"\n\n"
           "    def __init__(self, src):\n"
           "        super().__init__()\n"
           "        self.src = src\n\n\n"
           "class Net(nn.Module):\n"
           "    \"\"\"%s: one submodule per nnlock layer; acts[i] is nnlock's activation i.\"\"\"\n\n"
           "    shapes = [", m->spec);
    for (int i = 0; i <= m->nlayers; i++) {
        nnl_shape s = nnl_model_act_shape(m, i);
        put(b, "%s(%d, %d, %d)", i ? ", " : "", s.c, s.h, s.w);
    }
    put(b, "]\n    names = {");
    for (int t = 0; t < m->ntaps; t++) put(b, "%s'%s': %d", t ? ", " : "", m->taps[t].name, m->taps[t].act);
    put(b, "}\n\n    def __init__(self):\n        super().__init__()\n        self.layers = nn.ModuleList([\n");
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        put(b, "            ");
        switch (L->kind) {
        case NNL_L_DENSE: put(b, "nn.Linear(%d, %d, bias=%s)", (int)nnl_shape_size(L->in), L->units, L->nobias ? "False" : "True"); break;
        case NNL_L_CONV2D:
            put(b, "nn.Conv2d(%d, %d, %d, stride=%d, padding=%d, bias=%s)", L->in.c, L->units, L->k, L->stride, L->pad,
                L->nobias ? "False" : "True");
            break;
        case NNL_L_MAXPOOL: put(b, "nn.MaxPool2d(%d, %d)", L->k, L->stride); break;
        case NNL_L_AVGPOOL: put(b, "nn.AvgPool2d(%d, %d)", L->k, L->stride); break;
        case NNL_L_GAP: put(b, "nn.AdaptiveAvgPool2d(1)"); break;
        case NNL_L_BATCHNORM: put(b, "nn.BatchNorm2d(%d)", L->in.c); break;
        case NNL_L_RELU: put(b, "nn.ReLU()"); break;
        case NNL_L_GELU: put(b, "nn.GELU()"); break;
        case NNL_L_DROPOUT: put(b, "nn.Dropout(%.9g)", (double)L->p); break;
        case NNL_L_FLATTEN: put(b, "nn.Flatten()"); break;
        case NNL_L_SCALE: put(b, "Scale(%.9g)", (double)L->p); break;
        case NNL_L_ADD: put(b, "Add(%d)", L->src); break;
        case NNL_L_RECALL: put(b, "Recall(%d)", L->src); break;
        default: put(b, "None"); break;
        }
        put(b, ",  # %d %s\n", i, nnl_layer_ops_of(L->kind)->name);
    }
    put(b, "        ])\n\n"
           "    def forward(self, x, keep=False):\n"
           "        n = x.shape[0]\n"
           "        acts = [x]\n"
           "        for i, layer in enumerate(self.layers):\n"
           "            if isinstance(layer, Add):\n"
           "                x = x + acts[layer.src]\n"
           "            elif isinstance(layer, Recall):\n"
           "                x = acts[layer.src]\n"
           "            elif isinstance(layer, nn.Linear):\n"
           "                x = layer(x.flatten(1))\n"
           "            else:\n"
           "                x = layer(x)\n"
           "            x = x.reshape(n, *self.shapes[i + 1])\n"
           "            acts.append(x)\n"
           "        out = x.flatten(1)\n"
           "        return (out, {k: acts[a] for k, a in self.names.items()}) if keep else out\n");
}

int nnl_model_write_torch_module(const nnl_model *m, const char *path) {
    buf b = {0};
    put(&b, "%s", header);
    if (!strcmp(m->arch, "lenet5")) lenet5(&b, m);
    else if (!strcmp(m->arch, "vgg13")) vgg13(&b, m);
    else if (!strcmp(m->arch, "resnet18")) resnet18(&b, m);
    else generic(&b, m);
    if (b.oom) { free(b.p); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    int st = nnl_write_file(path, b.p, b.n, 0);
    free(b.p);
    return st;
}
