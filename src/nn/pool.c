/* Pooling: max and average over KxK windows (no padding, output size rounded down,
 * as PyTorch's defaults), and global average pooling. Every (image, channel) plane
 * is independent, so planes are spread over threads. */
#include "layer.h"

#include <stdint.h>
#include <string.h>

/* Below this many input floats a parallel region costs more than it saves. */
#define POOL_PAR_MIN 32768
/* Outputs of a 2x2 max pool compared in one vector loop. */
#define POOL_BLOCK 256

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
 * wins ties) or NaN (NaN propagates), as in PyTorch. The choice is made with masks, not
 * branches: on real activations which of four values wins is a coin toss, and the
 * mispredicted branches made pooling several times slower than its memory traffic. */
static inline void max_take(float v, int32_t i, float *m, int32_t *a) {
    uint32_t take = -(uint32_t)((v > *m) | (v != v)), vb, mb;
    memcpy(&vb, &v, 4); memcpy(&mb, m, 4);
    mb = (vb & take) | (mb & ~take);
    memcpy(m, &mb, 4);
    *a = (int32_t)(((uint32_t)i & take) | ((uint32_t)*a & ~take));
}

/* Compares the four corners of e windows; base holds each window's top-left index. */
static void max4(int e, int W, const float *c0, const float *c1, const float *c2, const float *c3,
                 const int32_t *base, float *m, int32_t *a) {
    for (int j = 0; j < e; j++) {
        float v = c0[j];
        int32_t b = base[j];
        int t = (c1[j] > v) | (c1[j] != c1[j]);
        v = t ? c1[j] : v; b = t ? base[j] + 1 : b;
        t = (c2[j] > v) | (c2[j] != c2[j]);
        v = t ? c2[j] : v; b = t ? base[j] + W : b;
        t = (c3[j] > v) | (c3[j] != c3[j]);
        v = t ? c3[j] : v; b = t ? base[j] + W + 1 : b;
        m[j] = v; a[j] = b;
    }
}

/* 2x2, stride 2, on planes of fewer than POOL_BLOCK outputs (8x8 maps and smaller): a
 * block spans several whole planes, which lie one after the other in x, y and arg.
 * Block by block per plane cost more than the 16 outputs of an 8x8 map. */
static void maxpool2_small(const float *x, float *y, int32_t *arg, long planes, int H, int W, int OH, int OW) {
    const size_t hw = (size_t)H * W, ohw = (size_t)OH * OW;
    const long group = POOL_BLOCK / (long)ohw, ngroups = (planes + group - 1) / group;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (planes * (long)hw > POOL_PAR_MIN)
    for (long gi = 0; gi < ngroups; gi++) {
        float c0[POOL_BLOCK], c1[POOL_BLOCK], c2[POOL_BLOCK], c3[POOL_BLOCK];
        int32_t base[POOL_BLOCK];
        const long p0 = gi * group, p1 = p0 + group < planes ? p0 + group : planes;
        int e = 0;
        for (long pl = p0; pl < p1; pl++) {
            const float *xp = x + (size_t)pl * hw;
            for (int oy = 0; oy < OH; oy++) {
                const float *r0 = xp + (size_t)(2 * oy) * W, *r1 = r0 + W;
                for (int ox = 0; ox < OW; ox++, e++) {
                    c0[e] = r0[2 * ox]; c1[e] = r0[2 * ox + 1];
                    c2[e] = r1[2 * ox]; c3[e] = r1[2 * ox + 1];
                    base[e] = 2 * oy * W + 2 * ox;
                }
            }
        }
        max4(e, W, c0, c1, c2, c3, base, y + (size_t)p0 * ohw, arg + (size_t)p0 * ohw);
    }
}

// x (N,C,H,W) -> y (N,C,H',W'); save: arg-max per output (int32, index in the H*W plane)
static void maxpool_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    const int k = L->k, s = L->stride, H = L->in.h, W = L->in.w, OH = L->out.h, OW = L->out.w;
    const size_t hw = (size_t)H * W, ohw = (size_t)OH * OW;
    const long planes = (long)P->n * L->in.c;
    int32_t *arg = (int32_t *)L->save;
    if (k == 2 && s == 2 && ohw < POOL_BLOCK) {
        maxpool2_small(x, y, arg, planes, H, W, OH, OW);
        return;
    }
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (planes * (long)hw > POOL_PAR_MIN)
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * hw;
        float *yp = y + (size_t)pl * ohw;
        int32_t *ap = arg + (size_t)pl * ohw;
        if (k == 2 && s == 2) {
            /* The common case. Feature maps are often only 4-16 wide, too short for a
             * vector loop along a row, so up to POOL_BLOCK outputs at a time are gathered
             * into four corner arrays and compared in one vector loop. */
            float c0[POOL_BLOCK], c1[POOL_BLOCK], c2[POOL_BLOCK], c3[POOL_BLOCK], m[POOL_BLOCK];
            int32_t base[POOL_BLOCK], a[POOL_BLOCK];
            int rows = POOL_BLOCK / OW > 0 ? POOL_BLOCK / OW : 1;   /* 1: rows wider than a block go in pieces */
            for (int oy0 = 0; oy0 < OH; oy0 += rows) {
                int oy1 = oy0 + rows < OH ? oy0 + rows : OH;
                for (int ox0 = 0; ox0 < OW; ox0 += POOL_BLOCK) {
                    int ox1 = ox0 + POOL_BLOCK < OW ? ox0 + POOL_BLOCK : OW, e = 0;
                    for (int oy = oy0; oy < oy1; oy++) {
                        const float *r0 = xp + (size_t)(2 * oy) * W, *r1 = r0 + W;
                        for (int ox = ox0; ox < ox1; ox++, e++) {
                            c0[e] = r0[2 * ox]; c1[e] = r0[2 * ox + 1];
                            c2[e] = r1[2 * ox]; c3[e] = r1[2 * ox + 1];
                            base[e] = 2 * oy * W + 2 * ox;
                        }
                    }
                    max4(e, W, c0, c1, c2, c3, base, m, a);
                    e = 0;
                    for (int oy = oy0; oy < oy1; oy++)
                        for (int ox = ox0; ox < ox1; ox++, e++) {
                            yp[(size_t)oy * OW + ox] = m[e];
                            ap[(size_t)oy * OW + ox] = a[e];
                        }
                }
            }
            continue;
        }
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int32_t a = oy * s * W + ox * s;
                float m = xp[a];
                for (int i = 0; i < k; i++) {
                    const int32_t r = (oy * s + i) * W + ox * s;
                    for (int j = 0; j < k; j++) max_take(xp[r + j], r + j, &m, &a);
                }
                yp[(size_t)oy * OW + ox] = m;
                ap[(size_t)oy * OW + ox] = a;
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
