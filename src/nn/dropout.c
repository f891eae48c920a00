/* Inverted dropout. The mask is a hash of (seed, step, layer, element), so it needs
 * no storage, is recomputed in backward and does not depend on thread scheduling. */
#include "layer.h"

#include <string.h>

static int dropout_setup(nnl_layer *L) {
    if (!(L->p >= 0.0f && L->p < 1.0f))
        return nnl_fail(NNL_ERR_ARG, "dropout: probability %g must be in [0, 1)", (double)L->p);
    L->out = L->in;
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}
static void dropout_init(const nnl_layer *L, float *p, float *s, nnl_rng *r) { (void)L; (void)p; (void)s; (void)r; }
static size_t dropout_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

static inline float keep_scale(const nnl_layer *L, const nnl_pass *P, size_t i) {
    float u = nnl_hash_uniform(P->seed, (P->step << 8) ^ (uint64_t)L->index, i);
    return u >= L->p ? 1.0f / (1.0f - L->p) : 0.0f;
}

// x (N,C,H,W) -> y (N,C,H,W)
static void dropout_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    if (!P->training || L->p == 0.0f) { memcpy(y, x, n * sizeof(float)); return; }
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * keep_scale(L, P, i);
}

static void dropout_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                             const float *dy, float *dx) {
    (void)x; (void)y;
    if (!dx) return;
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    if (!P->training || L->p == 0.0f) { memcpy(dx, dy, n * sizeof(float)); return; }
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n > 65536)
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * keep_scale(L, P, i);
}

static double dropout_macs(const nnl_layer *L) { (void)L; return 0.0; }

const nnl_layer_ops nnl_dropout_ops = {
    "dropout", dropout_setup, dropout_init, dropout_none, dropout_none, dropout_forward,
    dropout_backward, dropout_macs, 0,
};
