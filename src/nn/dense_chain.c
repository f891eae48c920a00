/*
 * A fast path for networks made only of dense layers, each optionally followed by a
 * ReLU (the `mlp`). Layer by layer, every small batch-128 matrix product would be a
 * separate multi-threaded BLAS call with its own fork and barriers, and bias, ReLU and
 * the optimizer would be separate passes over memory. Here one parallel region runs a
 * whole forward or backward pass: each thread makes single-threaded BLAS calls on its
 * own slice of output features, applies bias and ReLU to that slice while it is still
 * in cache, and the threads meet once per layer.
 *
 * Slices are fixed by the thread count, and every sum runs in a fixed order, so the
 * result depends on the thread count only, never on timing.
 */
#include "model.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* From OpenBLAS: 0 sequential, 1 pthreads, 2 OpenMP. Only the OpenMP build runs
 * single-threaded when called inside our parallel region. */
int openblas_get_parallel(void);

int nnl_dense_chain_ok(const nnl_model *m) {
    if (m->nlayers < 1 || m->layers[0].kind != NNL_L_DENSE || m->layers[m->nlayers - 1].kind != NNL_L_DENSE)
        return 0;
    for (int i = 0; i < m->nlayers; i++) {
        int k = m->layers[i].kind;
        if (k == NNL_L_DENSE) continue;
        if (k == NNL_L_RELU && m->layers[i - 1].kind == NNL_L_DENSE) continue;
        return 0;
    }
    return nnl_threads() == 1 || openblas_get_parallel() == 2;
}

/* Thread t's share [a, b) of n features; boundaries on 16-float lines so that two
 * threads never write the same cache line of a row. */
static void share(int n, int t, int T, int *a, int *b) {
    *a = t == 0 ? 0 : (int)((long)n * t / T) & ~15;
    *b = t == T - 1 ? n : (int)((long)n * (t + 1) / T) & ~15;
}

static int has_relu(const nnl_model *m, int i) {
    return i + 1 < m->nlayers && m->layers[i + 1].kind == NNL_L_RELU;
}

void nnl_dense_chain_forward(nnl_model *m, int n) {
    #pragma omp parallel num_threads(nnl_threads())
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        for (int i = 0; i < m->nlayers; i++) {
            const nnl_layer *L = &m->layers[i];
            if (L->kind != NNL_L_DENSE) continue;
            int in = (int)nnl_shape_size(L->in), out = L->units, a, b;
            share(out, t, T, &a, &b);
            if (b > a) {
                const float *x = m->acts[i], *w = m->params + L->w_off, *bias = m->params + L->b_off;
                float *y = m->acts[i + 1];
                /* C starts as the bias and beta = 1, which saves OpenBLAS its pass clearing C */
                for (int s = 0; s < n; s++) memcpy(y + (size_t)s * out + a, bias + a, (size_t)(b - a) * sizeof(float));
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, b - a, in, 1.0f, x, in,
                            w + (size_t)a * in, in, 1.0f, y + a, out);
                if (has_relu(m, i)) {
                    float *r = m->acts[i + 2];
                    for (int s = 0; s < n; s++) {
                        const float *ys = y + (size_t)s * out;
                        float *rs = r + (size_t)s * out;
                        for (int j = a; j < b; j++) rs[j] = ys[j] > 0.0f ? ys[j] : 0.0f;
                    }
                }
            }
            #pragma omp barrier
        }
    }
}

void nnl_dense_chain_backward(nnl_model *m, int n, nnl_param_update_fn update, void *user) {
    #pragma omp parallel num_threads(nnl_threads())
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        const nnl_layer *pending = NULL;   /* the layer above, whose rows this thread updates next */
        int pa = 0, pb = 0;
        for (int i = m->nlayers - 1; i >= -1; i--) {
            if (i >= 0 && m->layers[i].kind != NNL_L_DENSE) continue;
            /* dy is complete in every column, and nobody reads the layer above's weights any more */
            #pragma omp barrier
            if (pending && update) {
                size_t pin = nnl_shape_size(pending->in);
                update(user, pending->w_off + (size_t)pa * pin, pending->w_off + (size_t)pb * pin);
                update(user, pending->b_off + (size_t)pa, pending->b_off + (size_t)pb);
            }
            if (i < 0) break;
            const nnl_layer *L = &m->layers[i];
            int in = (int)nnl_shape_size(L->in), out = L->units;
            const float *dy = m->dacts[i + 1], *x = m->acts[i], *w = m->params + L->w_off;
            float *dw = m->grads + L->w_off, *db = m->grads + L->b_off;
            int a, b;
            share(out, t, T, &a, &b);
            if (b > a) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b - a, in, n, 1.0f, dy + a, out,
                            x, in, 0.0f, dw + (size_t)a * in, in);
                memset(db + a, 0, (size_t)(b - a) * sizeof(float));
                for (int s = 0; s < n; s++) {
                    const float *dys = dy + (size_t)s * out;
                    for (int j = a; j < b; j++) db[j] += dys[j];
                }
            }
            pending = L; pa = a; pb = b;
            if (i == 0) continue;
            /* dx = dy W on this thread's share of input features, then the ReLU below it */
            int c, d;
            share(in, t, T, &c, &d);
            if (d > c) {
                float *dx = m->dacts[i];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d - c, out, 1.0f, dy, out,
                            w + c, in, 0.0f, dx + c, in);
                if (m->layers[i - 1].kind == NNL_L_RELU) {
                    const float *y = m->acts[i];
                    float *dpre = m->dacts[i - 1];
                    for (int s = 0; s < n; s++) {
                        size_t o = (size_t)s * in;
                        for (int j = c; j < d; j++) dpre[o + j] = y[o + j] > 0.0f ? dx[o + j] : 0.0f;
                    }
                }
            }
        }
    }
}
