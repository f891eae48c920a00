/* GELU, exactly as PyTorch's default nn.GELU(): y = x * Phi(x) = x/2 (1 + erf(x / sqrt 2)).
 * Backward reads the input: dy/dx = Phi(x) + x phi(x). Phi and phi come from the
 * vectorised approximations in fastmath.h, a few ulps from erff and expf. */
#include "fastmath.h"
#include "layer.h"

static int gelu_setup(nnl_layer *L) {
    L->out = L->in;
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}
static void gelu_init(const nnl_layer *L, float *p, float *s, nnl_rng *r) { (void)L; (void)p; (void)s; (void)r; }
static size_t gelu_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

// x (N,C,H,W) -> y (N,C,H,W)
static void gelu_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    #pragma omp parallel for simd schedule(static) num_threads(nnl_threads()) if (n > 32768)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * nnl_phi_approx(x[i]);
}

static void gelu_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y, const float *dy, float *dx) {
    (void)y;
    if (!dx) return;
    size_t n = (size_t)P->n * nnl_shape_size(L->in);
    #pragma omp parallel for simd schedule(static) num_threads(nnl_threads()) if (n > 32768)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = nnl_phi_approx(v);
        float pdf = 0.39894228040143268f * nnl_exp_approx(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

static double gelu_macs(const nnl_layer *L) { (void)L; return 0.0; }

const nnl_layer_ops nnl_gelu_ops = {
    "gelu", gelu_setup, gelu_init, gelu_none, gelu_none, gelu_forward, gelu_backward, gelu_macs, 0,
};
