/* A model's tensors with their names and PyTorch shapes. */
#include "tensor_list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The PyTorch shape of tensor slot j (0 weight, 1 bias, 2/3 running stats) of layer L. */
static int tensor_shape(const nnl_layer *L, int j, int64_t *shape) {
    if (j == 0 && L->kind == NNL_L_DENSE) { shape[0] = L->units; shape[1] = (int64_t)nnl_shape_size(L->in); return 2; }
    if (j == 0 && L->kind == NNL_L_CONV2D) {
        shape[0] = L->units; shape[1] = L->in.c; shape[2] = L->k; shape[3] = L->k;
        return 4;
    }
    shape[0] = j == 0 ? (int64_t)L->w_n : j == 1 ? (int64_t)L->b_n : (int64_t)L->s_n / 2;
    return 1;
}

/* The module names of the presets' parametrised layers, in order: the official AuthNet code's
 * (models/lenet.py: LeNet5.c1 is a C1 whose c1 is an nn.Sequential whose c1 is the convolution,
 * hence c1.c1.c1; models/VGG.py: head.I and tail.I count every module of their nn.Sequential,
 * ReLUs and pools included). */
static const char *const lenet5_names[] = {"c1.c1.c1", "c2.c2.c2", "c4.c4.c4", "f4.f4.f4", "f5.f5.f5", NULL};
static const char *const vgg13_names[] = {
    "head.0", "head.1", "head.3", "head.4", "head.7", "head.8", "head.10", "head.11", "head.14", "head.15",
    "head.17", "head.18", "tail.0", "tail.1", "tail.3", "tail.4", "tail.7", "tail.8", "tail.10", "tail.11",
    "fc1", "fc2", NULL};

/* The common CIFAR ResNet-18's (kuangliu/pytorch-cifar): conv1, bn1, layerL.B.{conv1, bn1, conv2, bn2,
 * shortcut.0, shortcut.1 (where the block changes the shape)}, linear. */
static const char *const *resnet18_names(void) {
    static char names[80][32];
    static const char *list[81];
    if (list[0]) return list;
    int n = 0;
    snprintf(names[n++], 32, "conv1");
    snprintf(names[n++], 32, "bn1");
    for (int st = 1; st <= 4; st++)
        for (int b = 0; b < 2; b++) {
            static const char *const part[] = {"conv1", "bn1", "conv2", "bn2", "shortcut.0", "shortcut.1"};
            int parts = st > 1 && b == 0 ? 6 : 4;
            for (int p = 0; p < parts; p++) snprintf(names[n++], 32, "layer%d.%d.%s", st, b, part[p]);
        }
    snprintf(names[n++], 32, "linear");
    for (int i = 0; i < n; i++) list[i] = names[i];
    list[n] = NULL;
    return list;
}

int nnl_tensor_list_make(nnl_model *m, int torch, nnl_tensor_list *out) {
    int n = nnl_model_tensor_count(m);
    out->t = calloc((size_t)(n ? n : 1), sizeof *out->t);
    out->layer = calloc((size_t)(n ? n : 1), sizeof *out->layer);
    out->n = 0;
    if (!out->t || !out->layer) { nnl_tensor_list_free(out); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    const char *const *names = NULL;
    if (torch && !strcmp(m->arch, "lenet5")) names = lenet5_names;
    if (torch && !strcmp(m->arch, "vgg13")) names = vgg13_names;
    if (torch && !strcmp(m->arch, "resnet18")) names = resnet18_names();
    int k = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        size_t cnt[4] = {L->w_n, L->b_n, L->s_n / 2, L->s_n / 2};
        const float *data[4] = {m->params + L->w_off, m->params + L->b_off, m->state + L->s_off,
                                m->state + L->s_off + L->s_n / 2};
        static const char *const what[4] = {"weight", "bias", "running_mean", "running_var"};
        if (!cnt[0] && !cnt[1] && !cnt[2]) continue;
        char prefix[64];
        if (names && !names[k]) { nnl_tensor_list_free(out); return nnl_fail(NNL_ERR_SHAPE, "%s: more layers than the PyTorch module has", m->arch); }
        if (names) snprintf(prefix, sizeof prefix, "%s", names[k]);
        else snprintf(prefix, sizeof prefix, "layers.%d", i);
        k++;
        for (int j = 0; j < 4; j++) {
            if (!cnt[j]) continue;
            nnl_st_tensor *t = &out->t[out->n];
            out->layer[out->n++] = i;
            snprintf(t->name, sizeof t->name, "%s.%s", prefix, what[j]);
            t->ndim = tensor_shape(L, j, t->shape);
            t->count = cnt[j];
            t->data = data[j];
        }
    }
    return NNL_OK;
}

void nnl_tensor_list_free(nnl_tensor_list *l) {
    free(l->t);
    free(l->layer);
    l->t = NULL;
    l->layer = NULL;
    l->n = 0;
}
