/* Residual add: y = x + skip, where skip is an earlier activation of the same shape
 * (the model checks the shapes and wires L->skip / L->dskip). */
#include "layer.h"

static int add_setup(nnl_layer *L) {
    L->out = L->in;
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}
static void add_init(const nnl_layer *L, float *p, float *s, nnl_rng *r) { (void)L; (void)p; (void)s; (void)r; }
static size_t add_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

// x (N,C,H,W), skip (N,C,H,W) -> y (N,C,H,W)
static void add_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    const float *s = L->skip;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = x[i] + s[i];
}

/* The gradient reaches both operands unchanged; the skip's share is accumulated
 * because other consumers of that activation add to it too. */
static void add_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                         const float *dy, float *dx) {
    (void)x; (void)y;
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    float *ds = L->dskip;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        if (dx) dx[i] = dy[i];
        if (ds) ds[i] += dy[i];
    }
}
static double add_macs(const nnl_layer *L) { (void)L; return 0.0; }

const nnl_layer_ops nnl_add_ops = {
    "add", add_setup, add_init, add_none, add_none, add_forward, add_backward, add_macs, 0,
};
