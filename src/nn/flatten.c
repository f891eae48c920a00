/* Flatten: (C,H,W) -> (C*H*W,1,1). NCHW memory is already flat, so this is a copy. */
#include "layer.h"

#include <string.h>

static int flatten_setup(nnl_layer *L) {
    L->out = (nnl_shape){(int)nnl_shape_size(L->in), 1, 1};
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}
static void flatten_init(const nnl_layer *L, float *p, float *s, nnl_rng *r) { (void)L; (void)p; (void)s; (void)r; }
static size_t flatten_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

static void flatten_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    memcpy(y, x, (size_t)P->n * nnl_shape_size(L->in) * sizeof(float));
}
static void flatten_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                             const float *dy, float *dx) {
    (void)x; (void)y;
    if (dx) memcpy(dx, dy, (size_t)P->n * nnl_shape_size(L->in) * sizeof(float));
}
static double flatten_macs(const nnl_layer *L) { (void)L; return 0.0; }

const nnl_layer_ops nnl_flatten_ops = {
    "flatten", flatten_setup, flatten_init, flatten_none, flatten_none, flatten_forward,
    flatten_backward, flatten_macs, 0,
};
