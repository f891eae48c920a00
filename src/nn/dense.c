/* Fully connected layer. The input (C,H,W) is read as C*H*W features, so a dense
 * layer after a convolution needs no explicit flatten. */
#include "layer.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static int dense_setup(nnl_layer *L) {
    if (L->units < 1 || L->units > (1 << 20))
        return nnl_fail(NNL_ERR_SHAPE, "dense: %d units is out of range (1..1048576)", L->units);
    size_t in = nnl_shape_size(L->in);
    L->out = (nnl_shape){L->units, 1, 1};
    L->w_n = (size_t)L->units * in;
    L->b_n = L->nobias ? 0 : (size_t)L->units;
    L->s_n = 0;
    return NNL_OK;
}

/* He-uniform suits the ReLU networks nnlock builds; the bias starts at zero. */
static void dense_init(const nnl_layer *L, float *params, float *state, nnl_rng *rng) {
    (void)state;
    float b = sqrtf((L->torch_init ? 1.0f : 6.0f) / (float)nnl_shape_size(L->in));
    float *w = params + L->w_off;
    for (size_t i = 0; i < L->w_n; i++) w[i] = (2.0f * nnl_rng_uniform(rng) - 1.0f) * b;
    memset(params + L->b_off, 0, L->b_n * sizeof(float));
}

static size_t dense_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

// x (N,in), w (out,in), b (out) -> y (N,out)
static void dense_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    int in = (int)nnl_shape_size(L->in), out = L->units, n = P->n;
    const float *w = P->params + L->w_off, *b = P->params + L->b_off;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    if (!L->b_n) return;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n * out > 65536)
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * out;
        for (int j = 0; j < out; j++) yi[j] += b[j];
    }
}

// dy (N,out) -> dw (out,in) +=, db (out) +=, dx (N,in)
static void dense_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                           const float *dy, float *dx) {
    (void)y;
    int in = (int)nnl_shape_size(L->in), out = L->units, n = P->n;
    const float *w = P->params + L->w_off;
    float *dw = P->grads + L->w_off, *db = P->grads + L->b_off;
    float beta = P->grad_assign ? 0.0f : 1.0f;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, beta, dw, in);
    /* Column sums in a fixed order per column, so the result is thread-count independent. */
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n * out > 65536)
    for (int j = 0; j < (L->b_n ? out : 0); j++) {
        float s = 0.0f;
        for (int i = 0; i < n; i++) s += dy[(size_t)i * out + j];
        db[j] = P->grad_assign ? s : db[j] + s;
    }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

static double dense_macs(const nnl_layer *L) { return (double)L->w_n; }

const nnl_layer_ops nnl_dense_ops = {
    "dense", dense_setup, dense_init, dense_none, dense_none, dense_forward, dense_backward, dense_macs, 1,
};
