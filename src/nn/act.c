/* ReLU. Backward reads the output: y > 0 exactly where x > 0. */
#include "layer.h"

static int relu_setup(nnl_layer *L) {
    L->out = L->in;
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}
static void relu_init(const nnl_layer *L, float *p, float *s, nnl_rng *r) { (void)L; (void)p; (void)s; (void)r; }
static size_t relu_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

// x (N,C,H,W) -> y (N,C,H,W)
static void relu_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                          const float *dy, float *dx) {
    (void)x;
    if (!dx) return;
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n > 65536)
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static double relu_macs(const nnl_layer *L) { (void)L; return 0.0; }

const nnl_layer_ops nnl_relu_ops = {
    "relu", relu_setup, relu_init, relu_none, relu_none, relu_forward, relu_backward, relu_macs, 0,
};
