/* Batch normalisation per channel over (N,H,W); on (C,1,1) inputs this is
 * BatchNorm1d. PyTorch's semantics: the batch is normalised with its biased
 * variance, the running variance tracks the unbiased one, running = (1-m)*running
 * + m*batch.
 *
 * L->save keeps only the mean and 1/std of every channel: backward recomputes
 * x-hat from x, which reads as many bytes as a saved x-hat would and saves the
 * forward pass a full write of it. The normalising statistics are saved in eval
 * mode too, so gradients can flow through a model in eval mode (backward then
 * treats them as constants). */
#include "layer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Below this many floats a parallel region costs more than it saves. */
#define BN_PAR_MIN 32768
/* The forward pass sums each channel in float vector lanes over runs of at most this
 * many values, and the runs' sums add up in double: float lanes do twice the work per
 * instruction of double ones, and short runs keep the float rounding small. Measured
 * on the cnn's 32x32 and 16x16 batch-norms: forward about 10% faster. Backward keeps double lanes: there
 * float runs measured slower. */
#define BN_CHUNK 1024

static int bn_setup(nnl_layer *L) {
    if (L->in.c < 1 || L->in.h < 1 || L->in.w < 1)
        return nnl_fail(NNL_ERR_SHAPE, "batchnorm: empty input %dx%dx%d", L->in.c, L->in.h, L->in.w);
    L->out = L->in;
    L->w_n = L->b_n = (size_t)L->in.c;
    L->s_n = 2 * (size_t)L->in.c;
    return NNL_OK;
}

static void bn_init(const nnl_layer *L, float *params, float *state, nnl_rng *rng) {
    (void)rng;
    size_t c = (size_t)L->in.c;
    for (size_t i = 0; i < c; i++) {
        params[L->w_off + i] = 1.0f;
        params[L->b_off + i] = 0.0f;
        state[L->s_off + i] = 0.0f;
        state[L->s_off + c + i] = 1.0f;
    }
}

/* mean (C) then 1/std (C) of the last forward. */
static size_t bn_save(const nnl_layer *L, int batch) { (void)batch; return 2 * (size_t)L->in.c; }

/* The (C,1,1) case runs across channels and keeps per-channel double sums (2C
 * doubles) and backward's three dx coefficients (3C floats) here. */
static size_t bn_work(const nnl_layer *L, int batch) {
    (void)batch;
    return L->in.h * L->in.w == 1 ? 7 * (size_t)L->in.c : 0;
}

/* From sums of (x - shift) and its square over m values: the mean, 1/std for
 * normalising and the running-statistics update. The shift (the channel's first
 * value) keeps the one-pass variance from cancelling when |mean| >> std. */
static void bn_stats(const nnl_layer *L, const nnl_pass *P, int c, double shift, double s1, double s2,
                     size_t m, float *mean, float *istd) {
    double mu = s1 / (double)m, var = s2 / (double)m - mu * mu;
    if (var < 0.0) var = 0.0;
    *mean = (float)(shift + mu);
    *istd = (float)(1.0 / sqrt(var + (double)P->bn_eps));
    float *rm = P->state + L->s_off, *rv = rm + L->in.c, mo = P->bn_momentum;
    double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
    rm[c] = (1.0f - mo) * rm[c] + mo * *mean;
    rv[c] = (1.0f - mo) * rv[c] + mo * (float)unbiased;
}

/* The statistics the forward pass normalises channel c with. */
static void bn_channel_stats(const nnl_layer *L, const nnl_pass *P, int c, double shift, double s1,
                             double s2, size_t m) {
    float *mean = L->save, *istd = L->save + L->in.c;
    const float *rm = P->state + L->s_off, *rv = rm + L->in.c;
    if (P->training && m > 0) {
        bn_stats(L, P, c, shift, s1, s2, m, &mean[c], &istd[c]);
    } else {
        mean[c] = rm[c];
        istd[c] = (float)(1.0 / sqrt((double)rv[c] + (double)P->bn_eps));
    }
}

/* A channel's planes lie C*H*W floats apart, one per image, and a hardware prefetcher
 * stops at each page boundary: without a hint, every plane of a 32x32 map starts with
 * a full memory latency. The next image's plane is requested while this one is summed
 * (first 16 KiB of it at most: beyond that the prefetcher has caught up). */
#define BN_PREFETCH_FLOATS 4096
static inline void prefetch_plane(const float *p, size_t hw) {
    if (hw > BN_PREFETCH_FLOATS) hw = BN_PREFETCH_FLOATS;
    for (size_t j = 0; j < hw; j += 16) __builtin_prefetch(p + j, 0, 3);
}

/* One output value. Backward recomputes it, bit for bit, to know where a folded ReLU
 * passed the gradient: that reads x, which it needs anyway, instead of y. */
static inline float bn_out(float x, float mu, float sc, float b) { return (x - mu) * sc + b; }

// x (N,C,H,W), gamma (C), beta (C) -> y (N,C,H,W); save: mean (C), 1/std (C)
static void bn_forward(nnl_layer *L, const nnl_pass *P, const float *x, float *y) {
    const int C = L->in.c, n = P->n;
    const size_t hw = (size_t)L->in.h * L->in.w, m = (size_t)n * hw;
    const float *gamma = P->params + L->w_off, *beta = P->params + L->b_off;
    const float *mean = L->save, *istd = L->save + C;
    if (hw == 1) {
        /* (N,C): every loop runs along the channels, which are contiguous. */
        double *s1 = (double *)P->work, *s2 = s1 + C;
        for (int c = 0; c < C; c++) s1[c] = s2[c] = 0.0;
        if (P->training)
            for (int i = 0; i < n; i++) {
                const float *xi = x + (size_t)i * C;
                for (int c = 0; c < C; c++) {
                    double d = (double)xi[c] - (double)x[c];
                    s1[c] += d;
                    s2[c] += d * d;
                }
            }
        for (int c = 0; c < C; c++) bn_channel_stats(L, P, c, n > 0 ? x[c] : 0.0, s1[c], s2[c], m);
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * C;
            float *yi = y + (size_t)i * C;
            for (int c = 0; c < C; c++) yi[c] = bn_out(xi[c], mean[c], istd[c] * gamma[c], beta[c]);
            if (P->relu)
                for (int c = 0; c < C; c++) yi[c] = yi[c] > 0.0f ? yi[c] : 0.0f;
        }
        return;
    }
    /* One channel at a time: its N planes are still in cache when normalised. */
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (m * C > BN_PAR_MIN)
    for (int c = 0; c < C; c++) {
        const float shift = n > 0 ? x[(size_t)c * hw] : 0.0f;
        double s1 = 0.0, s2 = 0.0;
        if (P->training)
            for (int i = 0; i < n; i++) {
                const float *xp = x + ((size_t)i * C + c) * hw;
                if (i + 1 < n) prefetch_plane(xp + (size_t)C * hw, hw);
                for (size_t j0 = 0; j0 < hw; j0 += BN_CHUNK) {
                    const size_t j1 = hw - j0 < BN_CHUNK ? hw : j0 + BN_CHUNK;
                    float a = 0.0f, b = 0.0f;
                    #pragma omp simd reduction(+ : a, b)
                    for (size_t j = j0; j < j1; j++) {
                        const float d = xp[j] - shift;
                        a += d;
                        b += d * d;
                    }
                    s1 += a;
                    s2 += b;
                }
            }
        bn_channel_stats(L, P, c, shift, s1, s2, m);
        const float mu = mean[c], sc = istd[c] * gamma[c], b = beta[c];
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * C + c) * hw;
            const float *xp = x + off;
            float *yp = y + off;
            if (i + 1 < n) prefetch_plane(xp + (size_t)C * hw, hw);
            if (P->relu)
                for (size_t j = 0; j < hw; j++) {
                    float v = bn_out(xp[j], mu, sc, b);
                    yp[j] = v > 0.0f ? v : 0.0f;
                }
            else
                for (size_t j = 0; j < hw; j++) yp[j] = bn_out(xp[j], mu, sc, b);
        }
    }
}

/* Training mode: with xh = (x - mean) / std, g = gamma / std and the sums of dy and
 * dy*xh over the channel's m values,
 *   dx = g * (dy - sum(dy)/m - xh * sum(dy*xh)/m).
 * Eval mode: mean and std are constants, dx = g * dy. */
static void bn_coef(float istd, float gamma, double sdy, double sdyxh, size_t m, int training,
                    float *g, float *c0, float *c1) {
    *g = gamma * istd;
    *c0 = training ? (float)(-(double)*g * sdy / (double)m) : 0.0f;
    *c1 = training ? (float)(-(double)*g * istd * sdyxh / (double)m) : 0.0f;
}

/* dy where the ReLU's input y is positive, else 0, as bits: GCC does not vectorise
 * loops with the select written as ?: here. */
static inline float relu_mask(float dy, float y) {
    uint32_t bits;
    memcpy(&bits, &dy, sizeof bits);
    bits &= -(uint32_t)(y > 0.0f);
    memcpy(&dy, &bits, sizeof dy);
    return dy;
}

/* The gradient reaching the batch-norm's output: through a folded ReLU (P->relu), dy
 * where the output bn_out(x, ...) was positive. */
static inline float out_grad(const nnl_pass *P, float dy, float x, float mu, float sc, float b) {
    return P->relu ? relu_mask(dy, bn_out(x, mu, sc, b)) : dy;
}

// dy (N,C,H,W) -> dgamma (C) +=, dbeta (C) +=, dx (N,C,H,W) (if dx); with P->relu, dy is
// the folded ReLU's gradient
static void bn_backward(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                        const float *dy, float *dx) {
    (void)y;
    const int C = L->in.c, n = P->n;
    const size_t hw = (size_t)L->in.h * L->in.w, m = (size_t)n * hw;
    const float *gamma = P->params + L->w_off, *beta = P->params + L->b_off;
    float *dgamma = P->grads + L->w_off, *dbeta = P->grads + L->b_off;
    const float *mean = L->save, *istd = L->save + C;
    if (hw == 1) {
        double *s1 = (double *)P->work, *s2 = s1 + C;
        for (int c = 0; c < C; c++) s1[c] = s2[c] = 0.0;
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * C, *gi = dy + (size_t)i * C;
            for (int c = 0; c < C; c++) {
                float gv = out_grad(P, gi[c], xi[c], mean[c], istd[c] * gamma[c], beta[c]);
                s1[c] += gv;
                s2[c] += (double)gv * ((double)xi[c] - (double)mean[c]);
            }
        }
        for (int c = 0; c < C; c++) {
            s2[c] *= istd[c];
            dgamma[c] += (float)s2[c];
            dbeta[c] += (float)s1[c];
        }
        if (!dx) return;
        float *kg = (float *)(s2 + C), *k0 = kg + C, *k1 = k0 + C;
        for (int c = 0; c < C; c++) bn_coef(istd[c], gamma[c], s1[c], s2[c], m, P->training, &kg[c], &k0[c], &k1[c]);
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * C, *gi = dy + (size_t)i * C;
            float *di = dx + (size_t)i * C;
            for (int c = 0; c < C; c++)
                di[c] = kg[c] * out_grad(P, gi[c], xi[c], mean[c], istd[c] * gamma[c], beta[c]) +
                        k1[c] * (xi[c] - mean[c]) + k0[c];
        }
        return;
    }
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (m * C > BN_PAR_MIN)
    for (int c = 0; c < C; c++) {
        const float mu = mean[c], sc = istd[c] * gamma[c], b = beta[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * C + c) * hw;
            const float *xp = x + off, *gp = dy + off;
            if (i + 1 < n) { prefetch_plane(xp + (size_t)C * hw, hw); prefetch_plane(gp + (size_t)C * hw, hw); }
            if (P->relu) {
                /* The ReLU's mask from x (see bn_out): two streams instead of three. */
                #pragma omp simd reduction(+ : sdy, sdyx)
                for (size_t j = 0; j < hw; j++) {
                    const float gv = relu_mask(gp[j], bn_out(xp[j], mu, sc, b));
                    sdy += gv;
                    sdyx += (double)gv * (double)(xp[j] - mu);
                }
                continue;
            }
            #pragma omp simd reduction(+ : sdy, sdyx)
            for (size_t j = 0; j < hw; j++) {
                sdy += gp[j];
                sdyx += (double)gp[j] * (double)(xp[j] - mu);
            }
        }
        sdyx *= istd[c];
        dgamma[c] += (float)sdyx;
        dbeta[c] += (float)sdy;
        if (!dx) continue;
        float g, c0, c1;
        bn_coef(istd[c], gamma[c], sdy, sdyx, m, P->training, &g, &c0, &c1);
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * C + c) * hw;
            const float *xp = x + off, *gp = dy + off;
            float *dp = dx + off;
            if (i + 1 < n) { prefetch_plane(xp + (size_t)C * hw, hw); prefetch_plane(gp + (size_t)C * hw, hw); }
            if (P->relu)
                for (size_t j = 0; j < hw; j++)
                    dp[j] = g * relu_mask(gp[j], bn_out(xp[j], mu, sc, b)) + c1 * (xp[j] - mu) + c0;
            else
                for (size_t j = 0; j < hw; j++) dp[j] = g * gp[j] + c1 * (xp[j] - mu) + c0;
        }
    }
}

/* One multiply-add per element. */
static double bn_macs(const nnl_layer *L) { return (double)nnl_shape_size(L->in); }

const nnl_layer_ops nnl_batchnorm_ops = {
    "batchnorm", bn_setup, bn_init, bn_save, bn_work, bn_forward, bn_backward, bn_macs, 0,
};
