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
#include "dense_tile.h"
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
        if (k == NNL_L_DENSE && !m->layers[i].nobias) continue;
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

/* Room for one transposed layer input (nnl_dense_pack_xt) of the widest dense layer. */
static size_t xt_floats(const nnl_model *m, int batch) {
    size_t x = 0;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == NNL_L_DENSE) {
            size_t xi = nnl_dense_xt_floats(batch, (int)nnl_shape_size(m->layers[i].in));
            if (xi > x) x = xi;
        }
    return (x + 15) & ~(size_t)15;
}

void nnl_dense_chain_forward(nnl_model *m, int n) {
    #pragma omp parallel num_threads(nnl_threads())
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
#ifdef __AVX512F__
        /* the network's input, transposed once; each layer writes the next one's */
        int cur = 0;
        size_t ft = xt_floats(m, n);
        float *xt[2] = {m->work, m->work + ft};
        int in0 = (int)nnl_shape_size(m->layers[0].in), c, d;
        share(in0, t, T, &c, &d);
        if (d > c) nnl_dense_pack_xt(n, m->acts[0], in0, c, d, xt[0]);
        #pragma omp barrier
#endif
        for (int i = 0; i < m->nlayers; i++) {
            const nnl_layer *L = &m->layers[i];
            if (L->kind != NNL_L_DENSE) continue;
            int in = (int)nnl_shape_size(L->in), out = L->units, a, b;
            share(out, t, T, &a, &b);
            const float *w = m->params + L->w_off, *bias = m->params + L->b_off;
            float *y = m->acts[i + 1], *r = has_relu(m, i) ? m->acts[i + 2] : NULL;
#ifdef __AVX512F__
            /* straight into the ReLU's output: its input is never read again */
            int last = i + (r ? 2 : 1) >= m->nlayers;
            if (b > a) nnl_dense_fwd(n, xt[cur], in, w, bias, a, b, out, r ? r : y, r != NULL, last ? NULL : xt[cur ^ 1]);
            cur ^= 1;
#else
            if (b > a) {
                const float *x = m->acts[i];
                /* C starts as the bias and beta = 1, which saves OpenBLAS its pass clearing C */
                for (int s = 0; s < n; s++) memcpy(y + (size_t)s * out + a, bias + a, (size_t)(b - a) * sizeof(float));
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, b - a, in, 1.0f, x, in,
                            w + (size_t)a * in, in, 1.0f, y + a, out);
                if (r)
                    for (int s = 0; s < n; s++) {
                        const float *ys = y + (size_t)s * out;
                        float *rs = r + (size_t)s * out;
                        for (int j = a; j < b; j++) rs[j] = ys[j] > 0.0f ? ys[j] : 0.0f;
                    }
            }
#endif
            #pragma omp barrier
        }
    }
}

/* Packed x (two buffers of xsize) and this thread's packed dy (asize each, per thread) */
static void chain_work(const nnl_model *m, int batch, size_t *xsize, size_t *asize) {
    size_t x = 0, a = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        if (L->kind != NNL_L_DENSE) continue;
        size_t xi = nnl_dense_pack_x_floats(batch, (int)nnl_shape_size(L->in));
        size_t ai = nnl_dense_pack_dy_floats(batch, L->units);
        if (xi > x) x = xi;
        if (ai > a) a = ai;
    }
    *xsize = (x + 15) & ~(size_t)15;
    *asize = (a + 15) & ~(size_t)15;
}

/* Floats of m->wpack before layer `end`: each dense layer's strips, on 64-byte lines. */
static size_t wpack_before(const nnl_model *m, int end) {
    size_t f = 0;
    for (int i = 0; i < end; i++)
        if (m->layers[i].kind == NNL_L_DENSE)
            f += (nnl_dense_wp_floats((int)nnl_shape_size(m->layers[i].in), m->layers[i].units) + 15) & ~(size_t)15;
    return f;
}

size_t nnl_dense_chain_wpack(const nnl_model *m) {
#ifdef __AVX512F__
    return wpack_before(m, m->nlayers);
#else
    (void)m;
    return 0;
#endif
}

/* Layer i's weights in m->wpack. */
static float *wpack_of(const nnl_model *m, int i) { return m->wpack + wpack_before(m, i); }

size_t nnl_dense_chain_work(const nnl_model *m, int batch) {
    size_t x, a, fwd = 2 * xt_floats(m, batch);
    chain_work(m, batch, &x, &a);
    size_t bwd = 2 * x + (size_t)nnl_threads() * a;
    return fwd > bwd ? fwd : bwd;
}

/* Layer by layer from the top: this thread's share of the input gradient (it reads every
 * row of W), a barrier, then the weight gradient of this thread's rows of W, which nobody
 * reads any more and which can therefore be updated at once. With the fused step on
 * AVX-512, the input gradient reads W from m->wpack, which the step keeps up to date. */
void nnl_dense_chain_backward(nnl_model *m, int n, const nnl_sgd_fused *f, nnl_param_update_fn update,
                              void *user) {
    int use_wp = f && m->wpack, fresh = use_wp && (f->fresh || !m->wpack_ok);
    #pragma omp parallel num_threads(nnl_threads())
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads(), parity = 0;
        size_t xsize, asize;
        chain_work(m, n, &xsize, &asize);
        float *ap = m->work + 2 * xsize + (size_t)t * asize;
        if (fresh) {
            for (int i = 0; i < m->nlayers; i++) {
                const nnl_layer *L = &m->layers[i];
                if (L->kind != NNL_L_DENSE) continue;
                int a, b;
                share(L->units, t, T, &a, &b);
                nnl_dense_pack_w(m->params + L->w_off, (int)nnl_shape_size(L->in), L->units, a, b, wpack_of(m, i));
            }
            #pragma omp barrier
        }
        for (int i = m->nlayers - 1; i >= 0; i--) {
            if (m->layers[i].kind != NNL_L_DENSE) continue;
            const nnl_layer *L = &m->layers[i];
            int in = (int)nnl_shape_size(L->in), out = L->units, a, b, c, d;
            const float *dy = m->dacts[i + 1], *x = m->acts[i];
            float *w = m->params + L->w_off, *wp = use_wp ? wpack_of(m, i) : NULL;
            int relu = i > 0 && m->layers[i - 1].kind == NNL_L_RELU, want_dx = i > 0 || m->input_grad;
            share(in, t, T, &c, &d);
            int S = nnl_dense_x_strips(in);
#ifdef __AVX512F__
            if (want_dx && wp) {
                /* straight into the ReLU's input gradient: its output gradient is never read */
                nnl_dense_dx(n, dy, out, wp, in, S * t / T, S * (t + 1) / T, relu ? x : NULL,
                             m->dacts[relu ? i - 1 : i]);
            } else
#endif
            if (want_dx && d > c) {
                /* dx = dy W on this thread's share of input features, then the ReLU below it */
                float *dx = m->dacts[i];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d - c, out, 1.0f, dy, out,
                            w + c, in, 0.0f, dx + c, in);
                if (relu) {
                    float *dpre = m->dacts[i - 1];
                    for (int s = 0; s < n; s++) {
                        size_t o = (size_t)s * in;
                        for (int j = c; j < d; j++) dpre[o + j] = x[o + j] > 0.0f ? dx[o + j] : 0.0f;
                    }
                }
            }
            share(out, t, T, &a, &b);
            /* this thread's strips of x, packed for everyone (two buffers, since a faster
             * thread packs the next layer's while the others still read this one's) */
            float *xp = m->work + (size_t)((parity ^= 1)) * xsize;
            if (f) nnl_dense_pack_x(n, x, in, S * t / T, S * (t + 1) / T, xp);
            /* dy below is complete in every column, and nobody reads this layer's weights any more */
            #pragma omp barrier
            if (b <= a) continue;
            /* the bias gradient lands in m->grads, also when f takes the step */
            float *db = m->grads + L->b_off;
            memset(db + a, 0, (size_t)(b - a) * sizeof(float));
            for (int s = 0; s < n; s++) {
                const float *dys = dy + (size_t)s * out;
                for (int j = a; j < b; j++) db[j] += dys[j];
            }
            if (f) {
                nnl_dense_dw_sgd(n, dy + a, out, xp, x, in, b - a, w + (size_t)a * in,
                                 f->acc + L->w_off + (size_t)a * in, ap, wp ? wp + (size_t)a * NNL_TILE_NR : NULL,
                                 (size_t)out * NNL_TILE_NR, f);
                nnl_sgd_fused_apply(db + a, m->params + L->b_off + a, f->acc + L->b_off + a, (size_t)(b - a), f);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b - a, in, n, 1.0f, dy + a, out,
                        x, in, 0.0f, m->grads + L->w_off + (size_t)a * in, in);
            if (update) {
                update(user, L->w_off + (size_t)a * in, L->w_off + (size_t)b * in);
                update(user, L->b_off + (size_t)a, L->b_off + (size_t)b);
            }
        }
    }
    if (use_wp) m->wpack_ok = 1;
}
