/* A constant factor: y = s x (airbench's final Mul(1/9), which keeps the logits small at
 * initialisation without a trained parameter). s is stored in the spec (scale<s>). */
#include "layer.h"

static int scale_setup(nnl_layer *L) {
    L->out = L->in;
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}
static void scale_init(const nnl_layer *L, float *p, float *s, nnl_rng *r) { (void)L; (void)p; (void)s; (void)r; }
static size_t scale_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

// x (N,...) -> y (N,...)
static void scale_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    float s = L->p;
    for (size_t i = 0; i < n; i++) y[i] = s * x[i];
}

static void scale_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y, const float *dy, float *dx) {
    (void)x; (void)y;
    if (!dx) return;
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    float s = L->p;
    for (size_t i = 0; i < n; i++) dx[i] = s * dy[i];
}

static double scale_macs(const nnl_layer *L) { (void)L; return 0.0; }

const nnl_layer_ops nnl_scale_ops = {
    "scale", scale_setup, scale_init, scale_none, scale_none, scale_forward, scale_backward, scale_macs, 0,
};
