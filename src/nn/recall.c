/* Recall: y = an earlier activation (the model wires L->skip / L->dskip, as for add), its own
 * input ignored. A second path from one activation, such as a residual block's projection
 * shortcut: "@x, <main path>, @main, ^x, conv1x1, bn, add@main". */
#include "layer.h"

#include <string.h>

static int recall_setup(nnl_layer *L) {
    /* L->out is the recalled activation's shape, set by the spec parser */
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}
static void recall_init(const nnl_layer *L, float *p, float *s, nnl_rng *r) { (void)L; (void)p; (void)s; (void)r; }
static size_t recall_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

static void recall_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    (void)x;
    memcpy(y, L->skip, (size_t)P->n * nnl_shape_size(L->out) * sizeof(float));
}

/* The gradient goes to the recalled activation (accumulated: it has other consumers); the
 * input, which the output does not depend on, gets zero. */
static void recall_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                            const float *dy, float *dx) {
    (void)x; (void)y;
    size_t n = (size_t)P->n * nnl_shape_size(L->out), m = (size_t)P->n * nnl_shape_size(L->in);
    float *ds = L->dskip;
    if (ds)
        for (size_t i = 0; i < n; i++) ds[i] += dy[i];
    if (dx) memset(dx, 0, m * sizeof(float));
}
static double recall_macs(const nnl_layer *L) { (void)L; return 0.0; }

const nnl_layer_ops nnl_recall_ops = {
    "recall", recall_setup, recall_init, recall_none, recall_none, recall_forward, recall_backward, recall_macs, 0,
};
