/* 2-D convolution through im2col + sgemm, with PyTorch's weight layout (OC,C,K,K).
 *
 * The batch is split into one contiguous block of images per thread; each thread
 * runs single-threaded sgemms on its own slice of P->work (OpenBLAS's OpenMP build
 * does not fork inside a parallel region). A thread packs several images into one
 * column matrix when the images are small, because sgemm is much faster on a wide
 * matrix than on, say, the 64 columns of an 8x8 feature map. Weight gradients go to
 * a per-thread slice (thread 0 adds straight into P->grads) and are reduced in
 * thread order, so results depend on the thread count and the batch size only. */
#include "im2col.h"
#include "layer.h"
#include "winograd.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Columns (images x output pixels) one sgemm should see at least, and the most
 * floats a thread's column matrix may take (4 MiB: sgemm packs its panels anyway, so
 * the matrix need not fit a cache). A 1x1 convolution packs only tiny images:
 * unpacked it needs no copy at all. Measured on the CNN preset's shapes: packing 8x8
 * and smaller maps gains 20-40%; on resnet9's 512-channel 8x8 and 4x4 layers, a cap
 * of 1 MiB (1 and 3 images per sgemm) left them 10-15% slower than this one. */
#define CONV_MIN_COLS 256
#define CONV_MIN_COLS_DIRECT 64
#define CONV_MAX_COL_FLOATS (1u << 20)

static cgeo geo(const nnl_layer *L) {
    cgeo g;
    g.c = L->in.c; g.h = L->in.h; g.w = L->in.w;
    g.oc = L->units; g.k = L->k; g.s = L->stride; g.p = L->pad;
    g.oh = L->out.h; g.ow = L->out.w;
    g.hw = (size_t)g.h * g.w;
    g.ohw = (size_t)g.oh * g.ow;
    g.ckk = (size_t)g.c * g.k * g.k;
    g.direct = g.k == 1 && g.s == 1 && g.p == 0;
    return g;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Threads for a batch of n: a single image is better served by OpenBLAS's own
 * threads than by a team where all but one thread idles. */
static int team_size(int n) {
    int t = nnl_threads();
    if (t > n) t = n;
    return t < 1 ? 1 : t;
}

/* Images per sgemm for a batch of n split over t threads. */
static int chunk_size(const cgeo *g, int n, int t) {
    int per = (n + t - 1) / t;
    size_t want = g->direct ? CONV_MIN_COLS_DIRECT : CONV_MIN_COLS;
    int b = (int)((want + g->ohw - 1) / g->ohw);
    size_t cap = CONV_MAX_COL_FLOATS / (g->ckk * g->ohw);
    if ((size_t)b > cap) b = cap < 1 ? 1 : (int)cap;
    if (b > per) b = per;
    return b < 1 ? 1 : b;
}

typedef struct slice { size_t col, tmp, dw, db, stride; } slice;

/* Offsets within one thread's part of P->work. */
static slice slice_of(const cgeo *g, int b) {
    slice s;
    size_t cols = (size_t)b * g->ohw;
    s.col = 0;
    s.tmp = s.col + (b == 1 && g->direct ? 0 : round16(g->ckk * cols));
    s.dw = s.tmp + (b == 1 ? 0 : round16((size_t)g->oc * cols));
    s.db = s.dw + round16((size_t)g->oc * g->ckk);
    s.stride = s.db + round16((size_t)g->oc);
    return s;
}

static int conv_setup(nnl_layer *L) {
    int k = L->k, s = L->stride, p = L->pad;
    if (L->units < 1 || L->units > (1 << 20))
        return nnl_fail(NNL_ERR_SHAPE, "conv2d: %d output channels is out of range (1..1048576)", L->units);
    if (k < 1) return nnl_fail(NNL_ERR_SHAPE, "conv2d: kernel size %d must be at least 1", k);
    if (s < 1) return nnl_fail(NNL_ERR_SHAPE, "conv2d: stride %d must be at least 1", s);
    if (p < 0) return nnl_fail(NNL_ERR_SHAPE, "conv2d: padding %d must not be negative", p);
    if (p >= k) return nnl_fail(NNL_ERR_SHAPE, "conv2d: padding %d must be smaller than the kernel %d", p, k);
    if (L->in.c < 1 || L->in.h < 1 || L->in.w < 1)
        return nnl_fail(NNL_ERR_SHAPE, "conv2d: empty input %dx%dx%d", L->in.c, L->in.h, L->in.w);
    long oh = ((long)L->in.h + 2L * p - k) / s + 1, ow = ((long)L->in.w + 2L * p - k) / s + 1;
    if (L->in.h + 2L * p < k || L->in.w + 2L * p < k || oh < 1 || ow < 1)
        return nnl_fail(NNL_ERR_SHAPE, "conv2d: kernel %d (padding %d) does not fit the %dx%d input",
                        k, p, L->in.h, L->in.w);
    /* sgemm takes int sizes: one image's column matrix must fit them. */
    double ckk = (double)L->in.c * k * k;
    if (ckk * (double)(oh * ow) > 2147483647.0 || ckk * L->units > 2147483647.0)
        return nnl_fail(NNL_ERR_SHAPE, "conv2d: %d channels with kernel %d on %dx%d is too large",
                        L->in.c, k, L->in.h, L->in.w);
    L->out = (nnl_shape){L->units, (int)oh, (int)ow};
    L->w_n = (size_t)L->units * L->in.c * k * k;
    L->b_n = L->nobias ? 0 : (size_t)L->units;
    L->s_n = 0;
    if (L->ident && (L->k % 2 == 0 || L->pad != L->k / 2 || L->stride != 1))
        return nnl_fail(NNL_ERR_ARG, "conv2d: identity initialisation needs an odd kernel, stride 1 and 'same' padding");
    return NNL_OK;
}

/* He-uniform (fan_in = C*K*K) suits the ReLU networks nnlock builds. With `ident`, the first
 * min(C, OC) output channels then pass their input channel through instead (a centre tap of
 * 1), an implicit residual connection (airbench; torch.nn.init.dirac_ on w[:C]). */
static void conv_init(const nnl_layer *L, float *params, float *state, nnl_rng *rng) {
    (void)state;
    float b = sqrtf((L->torch_init ? 1.0f : 6.0f) / (float)((size_t)L->in.c * L->k * L->k));
    float *w = params + L->w_off;
    for (size_t i = 0; i < L->w_n; i++) w[i] = (2.0f * nnl_rng_uniform(rng) - 1.0f) * b;
    if (L->ident) {
        int c = L->in.c, k = L->k, m = c < L->units ? c : L->units;
        for (int o = 0; o < m; o++) {
            float *wo = w + (size_t)o * c * k * k;
            memset(wo, 0, (size_t)c * k * k * sizeof(float));
            wo[((size_t)o * k + k / 2) * k + k / 2] = 1.0f;
        }
    }
    memset(params + L->b_off, 0, L->b_n * sizeof(float));
}

static size_t conv_save_floats(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

/* The Winograd kernel where it fits and pays (3x3, stride 1: most of the presets). */
static int wino(const cgeo *g) { return nnl_wino_fits(g) && nnl_wino_pays(g); }

static size_t conv_work_floats(const nnl_layer *L, int batch) {
    if (batch < 1) batch = 1;
    cgeo g = geo(L);
    int t = team_size(batch);
    size_t im = (size_t)t * slice_of(&g, chunk_size(&g, batch, t)).stride;
    /* both kernels' needs: tests and benchmarks switch between them on a prepared model */
    if (nnl_wino_fits(&g)) {
        size_t wf = nnl_wino_work_floats(&g, batch, t);
        if (wf > im) im = wf;
    }
    return im;
}

/* Images [i0, i1) of thread t out of nt. */
static void share(int n, int t, int nt, int *i0, int *i1) {
    *i0 = (int)((long)n * t / nt);
    *i1 = (int)((long)n * (t + 1) / nt);
}

// x (N,C,H,W), w (OC,C,K,K), b (OC) -> y (N,OC,H',W')
static void conv_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    const cgeo g = geo(L);
    const int n = P->n, T = team_size(n), B = chunk_size(&g, n, T);
    const slice sl = slice_of(&g, B);
    const float *w = P->params + L->w_off, *bias = P->params + L->b_off;
    if (wino(&g)) {
        nnl_wino_forward(&g, n, T, x, w, L->b_n ? bias : NULL, y, P->work);
        return;
    }
    const size_t xs = (size_t)g.c * g.hw, ys = (size_t)g.oc * g.ohw;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = omp_get_thread_num(), i0, i1;
        share(n, t, omp_get_num_threads(), &i0, &i1);
        float *col = P->work + (size_t)t * sl.stride + sl.col, *tmp = P->work + (size_t)t * sl.stride + sl.tmp;
        for (int i = i0; i < i1; i += B) {
            int b = i1 - i < B ? i1 - i : B;
            size_t ld = (size_t)b * g.ohw;
            if (b == 1) {
                /* One image: sgemm writes y directly on top of the broadcast bias. */
                float *yi = y + (size_t)i * ys;
                const float *ci = x + (size_t)i * xs;
                if (!g.direct) { nnl_im2col(&g, ci, col, ld); ci = col; }
                for (int o = 0; o < g.oc; o++) {
                    float *r = yi + (size_t)o * g.ohw, v = L->b_n ? bias[o] : 0.0f;
                    for (size_t j = 0; j < g.ohw; j++) r[j] = v;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.oc, (int)g.ohw, (int)g.ckk, 1.0f,
                            w, (int)g.ckk, ci, (int)g.ohw, 1.0f, yi, (int)g.ohw);
                continue;
            }
            for (int j = 0; j < b; j++) nnl_im2col(&g, x + (size_t)(i + j) * xs, col + (size_t)j * g.ohw, ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.oc, (int)ld, (int)g.ckk, 1.0f,
                        w, (int)g.ckk, col, (int)ld, 0.0f, tmp, (int)ld);
            /* tmp is (OC, b*H'*W'): scatter each image's columns to NCHW, adding the bias. */
            for (int j = 0; j < b; j++) {
                float *yi = y + (size_t)(i + j) * ys;
                for (int o = 0; o < g.oc; o++) {
                    const float *src = tmp + (size_t)o * ld + (size_t)j * g.ohw;
                    float *dst = yi + (size_t)o * g.ohw, v = L->b_n ? bias[o] : 0.0f;
                    for (size_t q = 0; q < g.ohw; q++) dst[q] = src[q] + v;
                }
            }
        }
    }
}

// dy (N,OC,H',W') -> dw (OC,C,K,K) +=, db (OC) +=, dx (N,C,H,W) (if dx)
static void conv_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                          const float *dy, float *dx) {
    (void)y;
    const cgeo g = geo(L);
    const int n = P->n, T = team_size(n), B = chunk_size(&g, n, T);
    const slice sl = slice_of(&g, B);
    const float *w = P->params + L->w_off;
    float *gw = P->grads + L->w_off, *gb = P->grads + L->b_off;
    if (wino(&g)) {
        nnl_wino_backward(&g, n, T, x, w, dy, dx, gw, L->b_n ? gb : NULL, P->work);
        return;
    }
    const size_t xs = (size_t)g.c * g.hw, ys = (size_t)g.oc * g.ohw, nw = (size_t)g.oc * g.ckk;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads(), i0, i1;
        share(n, t, nt, &i0, &i1);
        float *base = P->work + (size_t)t * sl.stride;
        float *col = base + sl.col, *tmp = base + sl.tmp;
        float *dw = t ? base + sl.dw : gw, *db = t ? base + sl.db : gb;
        if (t) {
            memset(dw, 0, nw * sizeof(float));
            memset(db, 0, (size_t)g.oc * sizeof(float));
        }
        for (int i = i0; i < i1; i += B) {
            int b = i1 - i < B ? i1 - i : B;
            size_t ld = (size_t)b * g.ohw;
            const float *c = col, *d = tmp;
            if (b == 1 && g.direct) c = x + (size_t)i * xs;
            else for (int j = 0; j < b; j++) nnl_im2col(&g, x + (size_t)(i + j) * xs, col + (size_t)j * g.ohw, ld);
            /* Gather dy as (OC, b*H'*W') while summing it for the bias. */
            if (b == 1) d = dy + (size_t)i * ys;
            for (int j = 0; j < b; j++) {
                const float *dyi = dy + (size_t)(i + j) * ys;
                for (int o = 0; o < g.oc; o++) {
                    const float *src = dyi + (size_t)o * g.ohw;
                    float *dst = tmp + (size_t)o * ld + (size_t)j * g.ohw, s = 0.0f;
                    if (b == 1) {
                        #pragma omp simd reduction(+ : s)
                        for (size_t q = 0; q < g.ohw; q++) s += src[q];
                    } else {
                        #pragma omp simd reduction(+ : s)
                        for (size_t q = 0; q < g.ohw; q++) { dst[q] = src[q]; s += src[q]; }
                    }
                    if (L->b_n) db[o] += s;
                }
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.oc, (int)g.ckk, (int)ld, 1.0f,
                        d, (int)ld, c, (int)ld, 1.0f, dw, (int)g.ckk);
            if (!dx) continue;
            if (b == 1 && g.direct) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.ckk, (int)ld, g.oc, 1.0f,
                            w, (int)g.ckk, d, (int)ld, 0.0f, dx + (size_t)i * xs, (int)ld);
                continue;
            }
            /* The columns are spent: their buffer takes the column gradient. */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g.ckk, (int)ld, g.oc, 1.0f,
                        w, (int)g.ckk, d, (int)ld, 0.0f, col, (int)ld);
            for (int j = 0; j < b; j++) nnl_col2im(&g, col + (size_t)j * g.ohw, ld, dx + (size_t)(i + j) * xs);
        }
        if (nt > 1) {
            /* Each element sums the threads' slices in thread order. */
            #pragma omp barrier
            size_t e0 = nw * t / nt, e1 = nw * (t + 1) / nt;
            for (int u = 1; u < nt; u++) {
                const float *su = P->work + (size_t)u * sl.stride + sl.dw;
                for (size_t e = e0; e < e1; e++) gw[e] += su[e];
            }
            if (t == 0 && L->b_n)
                for (int u = 1; u < nt; u++) {
                    const float *su = P->work + (size_t)u * sl.stride + sl.db;
                    for (int o = 0; o < g.oc; o++) gb[o] += su[o];
                }
        }
    }
}

static double conv_macs(const nnl_layer *L) {
    return (double)L->units * L->out.h * L->out.w * L->in.c * L->k * L->k;
}

const nnl_layer_ops nnl_conv2d_ops = {
    "conv2d", conv_setup, conv_init, conv_save_floats, conv_work_floats, conv_forward, conv_backward,
    conv_macs, 0,
};
