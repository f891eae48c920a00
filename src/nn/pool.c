/* Pooling: max and average over KxK windows (no padding, output size rounded down,
 * as PyTorch's defaults), and global average pooling. Every (image, channel) plane
 * is independent, so planes are spread over threads. */
#include "layer.h"

#include <stdint.h>
#include <string.h>

/* Below this many input floats a parallel region costs more than it saves. */
#define POOL_PAR_MIN 32768

static int pool_setup_common(nnl_layer *L, const char *name) {
    if (L->k < 1) return nnl_fail(NNL_ERR_SHAPE, "%s: kernel size %d must be at least 1", name, L->k);
    if (L->stride == 0) L->stride = L->k; /* PyTorch's default */
    if (L->stride < 1) return nnl_fail(NNL_ERR_SHAPE, "%s: stride %d must be at least 1", name, L->stride);
    if (L->pad != 0) return nnl_fail(NNL_ERR_SHAPE, "%s: padding is not supported", name);
    if (L->in.c < 1 || L->in.h < L->k || L->in.w < L->k)
        return nnl_fail(NNL_ERR_SHAPE, "%s: kernel %d does not fit the %dx%dx%d input", name, L->k,
                        L->in.c, L->in.h, L->in.w);
    if ((long)L->in.h * L->in.w > INT32_MAX) /* arg-max indices are int32 */
        return nnl_fail(NNL_ERR_SHAPE, "%s: %dx%d input planes are too large", name, L->in.h, L->in.w);
    L->out = (nnl_shape){L->in.c, (L->in.h - L->k) / L->stride + 1, (L->in.w - L->k) / L->stride + 1};
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}

static void pool_init(const nnl_layer *L, float *p, float *s, nnl_rng *r) { (void)L; (void)p; (void)s; (void)r; }
static size_t pool_none(const nnl_layer *L, int batch) { (void)L; (void)batch; return 0; }

/* ------------------------------------------------------------------ max */

static int maxpool_setup(nnl_layer *L) { return pool_setup_common(L, "maxpool"); }

/* The arg-max of every output (an index into its input plane), for backward. */
static size_t maxpool_save(const nnl_layer *L, int batch) { return (size_t)batch * nnl_shape_size(L->out); }

/* A later element replaces the maximum only if strictly larger (the first maximum
 * wins ties) or NaN (NaN propagates), as in PyTorch. */
#define MAX_TAKE(v, m) ((v) > (m) || (v) != (v))

// x (N,C,H,W) -> y (N,C,H',W'); save: arg-max per output (int32, index in the H*W plane)
static void maxpool_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    const int k = L->k, s = L->stride, H = L->in.h, W = L->in.w, OH = L->out.h, OW = L->out.w;
    const size_t hw = (size_t)H * W, ohw = (size_t)OH * OW;
    const long planes = (long)P->n * L->in.c;
    int32_t *arg = (int32_t *)L->save;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (planes * (long)hw > POOL_PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * hw;
        float *yp = y + (size_t)pl * ohw;
        int32_t *ap = arg + (size_t)pl * ohw;
        for (int oy = 0; oy < OH; oy++) {
            if (k == 2 && s == 2) {
                /* The common case, unrolled so that it vectorises. */
                const float *r0 = xp + (size_t)(2 * oy) * W, *r1 = r0 + W;
                int32_t base = 2 * oy * W;
                for (int ox = 0; ox < OW; ox++) {
                    float m = r0[2 * ox];
                    int32_t a = base + 2 * ox;
                    float v = r0[2 * ox + 1];
                    int t = MAX_TAKE(v, m);
                    m = t ? v : m; a = t ? base + 2 * ox + 1 : a;
                    v = r1[2 * ox];
                    t = MAX_TAKE(v, m);
                    m = t ? v : m; a = t ? base + W + 2 * ox : a;
                    v = r1[2 * ox + 1];
                    t = MAX_TAKE(v, m);
                    m = t ? v : m; a = t ? base + W + 2 * ox + 1 : a;
                    yp[(size_t)oy * OW + ox] = m;
                    ap[(size_t)oy * OW + ox] = a;
                }
                continue;
            }
            for (int ox = 0; ox < OW; ox++) {
                int32_t a = oy * s * W + ox * s;
                float m = xp[a];
                for (int i = 0; i < k; i++) {
                    const int32_t r = (oy * s + i) * W + ox * s;
                    for (int j = 0; j < k; j++) {
                        float v = xp[r + j];
                        int t = MAX_TAKE(v, m);
                        m = t ? v : m;
                        a = t ? r + j : a;
                    }
                }
                yp[(size_t)oy * OW + ox] = m;
                ap[(size_t)oy * OW + ox] = a;
            }
        }
    }
}

// dy (N,C,H',W') -> dx (N,C,H,W): each output's gradient goes to its arg-max
static void maxpool_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                             const float *dy, float *dx) {
    (void)x; (void)y;
    if (!dx) return;
    const size_t hw = (size_t)L->in.h * L->in.w, ohw = (size_t)L->out.h * L->out.w;
    const long planes = (long)P->n * L->in.c;
    const int32_t *arg = (const int32_t *)L->save;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (planes * (long)hw > POOL_PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        float *dp = dx + (size_t)pl * hw;
        const float *gp = dy + (size_t)pl * ohw;
        const int32_t *ap = arg + (size_t)pl * ohw;
        memset(dp, 0, hw * sizeof(float));
        for (size_t o = 0; o < ohw; o++) dp[ap[o]] += gp[o];
    }
}

/* Pooling only adds and compares: no multiply-adds to count. */
static double pool_macs(const nnl_layer *L) { (void)L; return 0.0; }

const nnl_layer_ops nnl_maxpool_ops = {
    "maxpool", maxpool_setup, pool_init, maxpool_save, pool_none, maxpool_forward, maxpool_backward,
    pool_macs, 0,
};

/* ------------------------------------------------------------------ average */

static int avgpool_setup(nnl_layer *L) { return pool_setup_common(L, "avgpool"); }

// x (N,C,H,W) -> y (N,C,H',W')
static void avgpool_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    const int k = L->k, s = L->stride, W = L->in.w, OH = L->out.h, OW = L->out.w;
    const size_t hw = (size_t)L->in.h * W, ohw = (size_t)OH * OW;
    const long planes = (long)P->n * L->in.c;
    const float inv = 1.0f / (float)(k * k);
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (planes * (long)hw > POOL_PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * hw;
        float *yp = y + (size_t)pl * ohw;
        for (int oy = 0; oy < OH; oy++) {
            float *yr = yp + (size_t)oy * OW;
            for (int ox = 0; ox < OW; ox++) yr[ox] = 0.0f;
            for (int i = 0; i < k; i++) {
                const float *xr = xp + (size_t)(oy * s + i) * W;
                for (int j = 0; j < k; j++)
                    for (int ox = 0; ox < OW; ox++) yr[ox] += xr[(size_t)ox * s + j];
            }
            for (int ox = 0; ox < OW; ox++) yr[ox] *= inv;
        }
    }
}

// dy (N,C,H',W') -> dx (N,C,H,W): spread evenly over each window
static void avgpool_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                             const float *dy, float *dx) {
    (void)x; (void)y;
    if (!dx) return;
    const int k = L->k, s = L->stride, W = L->in.w, OH = L->out.h, OW = L->out.w;
    const size_t hw = (size_t)L->in.h * W, ohw = (size_t)OH * OW;
    const long planes = (long)P->n * L->in.c;
    const float inv = 1.0f / (float)(k * k);
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (planes * (long)hw > POOL_PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        float *dp = dx + (size_t)pl * hw;
        const float *gp = dy + (size_t)pl * ohw;
        memset(dp, 0, hw * sizeof(float));
        for (int oy = 0; oy < OH; oy++) {
            const float *gr = gp + (size_t)oy * OW;
            for (int i = 0; i < k; i++) {
                float *dr = dp + (size_t)(oy * s + i) * W;
                for (int j = 0; j < k; j++)
                    for (int ox = 0; ox < OW; ox++) dr[(size_t)ox * s + j] += gr[ox] * inv;
            }
        }
    }
}


const nnl_layer_ops nnl_avgpool_ops = {
    "avgpool", avgpool_setup, pool_init, pool_none, pool_none, avgpool_forward, avgpool_backward,
    pool_macs, 0,
};

/* ------------------------------------------------------------------ global average */

static int gap_setup(nnl_layer *L) {
    if (L->in.c < 1 || L->in.h < 1 || L->in.w < 1)
        return nnl_fail(NNL_ERR_SHAPE, "gap: empty input %dx%dx%d", L->in.c, L->in.h, L->in.w);
    L->out = (nnl_shape){L->in.c, 1, 1};
    L->w_n = L->b_n = L->s_n = 0;
    return NNL_OK;
}

// x (N,C,H,W) -> y (N,C,1,1)
static void gap_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    const size_t hw = (size_t)L->in.h * L->in.w;
    const long planes = (long)P->n * L->in.c;
    const float inv = 1.0f / (float)hw;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (planes * (long)hw > POOL_PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * hw;
        float s = 0.0f;
        #pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < hw; i++) s += xp[i];
        y[pl] = s * inv;
    }
}

// dy (N,C,1,1) -> dx (N,C,H,W)
static void gap_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                         const float *dy, float *dx) {
    (void)x; (void)y;
    if (!dx) return;
    const size_t hw = (size_t)L->in.h * L->in.w;
    const long planes = (long)P->n * L->in.c;
    const float inv = 1.0f / (float)hw;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (planes * (long)hw > POOL_PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        float *dp = dx + (size_t)pl * hw, v = dy[pl] * inv;
        for (size_t i = 0; i < hw; i++) dp[i] = v;
    }
}


const nnl_layer_ops nnl_gap_ops = {
    "gap", gap_setup, pool_init, pool_none, pool_none, gap_forward, gap_backward, pool_macs, 0,
};
