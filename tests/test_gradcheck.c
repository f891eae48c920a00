/* Finite-difference gradient checks of every layer kind through its ops table, and of
 * the softmax cross-entropy; plus the im2col convolution against a direct one.
 *
 * For a layer y = f(x; params) the objective is sum(y * r) with a fixed random r,
 * so backward with dy = r must give its exact gradient; central differences
 * estimate it numerically. Buffers are allocated at their exact sizes (so the
 * sanitizer sees any overrun) and the scratch buffer is filled with NaN before
 * every call (so a layer that reads scratch it did not write fails). */
#include "nn/fastmath.h"
#include "nn/model.h"
#include "nn/winograd.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define EPS 1e-2      /* finite-difference step */
#define TOL 1e-2      /* relative error allowed for the numeric gradient */
#define REF_TOL 1e-4  /* im2col convolution against the direct one */

static nnl_rng g_rng = {12345};
static float urand(float lo, float hi) { return lo + (hi - lo) * nnl_rng_uniform(&g_rng); }

static float *falloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}
static void fill_nan(float *p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = NAN; }
static void fill_rand(float *p, size_t n, float lo, float hi) { for (size_t i = 0; i < n; i++) p[i] = urand(lo, hi); }

/* Max over elements of |a - b| / max(|a|, |b|, 1% of the tensor's largest value):
 * elements far smaller than the rest are judged on the tensor's scale, where the
 * rounding noise of a float32 difference quotient lives. NaN counts as infinite. */
static double rel_err(const float *a, const double *b, size_t n) {
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fmax(fabs(a[i]), fabs(b[i])));
    double floor_ = 1e-2 * scale + 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(floor_, fmax(fabs(a[i]), fabs(b[i])));
        if (isnan(d) || isnan(a[i])) return INFINITY;
        if (d > worst) worst = d;
    }
    return worst;
}

/* Same, between two float tensors, judged on the tensor's largest value. */
static double max_rel_diff(const float *a, const float *b, size_t n) {
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (scale + 1e-30);
        if (isnan(d)) return INFINITY;
        if (d > worst) worst = d;
    }
    return worst;
}

/* ------------------------------------------------------------------ a layer on a test bench */

typedef struct bench {
    nnl_layer L;
    const nnl_layer_ops *ops;
    int n;
    size_t nin, nout, np, work_n;
    float *params, *grads, *state, *work, *save;
    float *x, *y, *r, *dx, *skip, *dskip;
    nnl_pass P;
} bench;

enum { X_RANDOM, X_DISTINCT, X_AWAY_FROM_ZERO };

static int bench_open(bench *b, const nnl_layer *proto, int n, int xmode) {
    memset(b, 0, sizeof *b);
    b->L = *proto;
    b->L.index = 3;
    b->ops = nnl_layer_ops_of(proto->kind);
    CHECK_MSG(b->ops != NULL, "no ops for kind %d", proto->kind);
    if (!b->ops) return -1;
    int st = b->ops->setup(&b->L);
    CHECK_MSG(st == NNL_OK, "%s setup: %s", b->ops->name, nnl_errmsg());
    if (st) return -1;
    nnl_layer *L = &b->L;
    b->n = n;
    b->nin = (size_t)n * nnl_shape_size(L->in);
    b->nout = (size_t)n * nnl_shape_size(L->out);
    L->w_off = 0;
    L->b_off = L->w_n;
    L->s_off = 0;
    b->np = L->w_n + L->b_n;
    b->params = falloc(b->np);
    b->grads = falloc(b->np);
    b->state = falloc(L->s_n);
    b->save = falloc(b->ops->save_floats(L, n));
    b->work_n = b->ops->work_floats(L, n);
    b->work = falloc(b->work_n);
    L->save = b->save;
    nnl_rng init = {777};
    b->ops->init(L, b->params, b->state, &init);
    /* Off the init values so that a gradient depending on, say, gamma == 1 shows up. */
    if (L->kind == NNL_L_BATCHNORM) {
        fill_rand(b->params + L->w_off, L->w_n, 0.5f, 1.5f);
        for (size_t i = 0; i < L->s_n / 2; i++) {
            b->state[i] = urand(-0.5f, 0.5f);
            b->state[L->s_n / 2 + i] = urand(0.5f, 2.0f);
        }
    }
    fill_rand(b->params + L->b_off, L->b_n, -0.5f, 0.5f);
    b->x = falloc(b->nin);
    b->y = falloc(b->nout);
    b->r = falloc(b->nout);
    b->dx = falloc(b->nin);
    if (xmode == X_DISTINCT) {
        /* A random permutation of well separated values: a finite-difference step never
         * changes which element of a pooling window is the largest. */
        for (size_t i = 0; i < b->nin; i++) b->x[i] = 0.05f * (float)i - 0.025f * (float)b->nin;
        for (size_t i = b->nin; i > 1; i--) {
            size_t j = nnl_rng_below(&g_rng, i);
            float t = b->x[i - 1]; b->x[i - 1] = b->x[j]; b->x[j] = t;
        }
    } else if (xmode == X_AWAY_FROM_ZERO) {
        for (size_t i = 0; i < b->nin; i++) {
            float v = urand(0.05f, 1.0f);
            b->x[i] = nnl_rng_uniform(&g_rng) < 0.5f ? -v : v;
        }
    } else {
        fill_rand(b->x, b->nin, -1.5f, 1.5f);
    }
    fill_rand(b->r, b->nout, -1.0f, 1.0f);
    if (L->kind == NNL_L_ADD) {
        b->skip = falloc(b->nin);
        b->dskip = falloc(b->nin);
        fill_rand(b->skip, b->nin, -1.0f, 1.0f);
        memset(b->dskip, 0, b->nin * sizeof(float));
        L->skip = b->skip;
        L->dskip = b->dskip;
    }
    b->P = (nnl_pass){.n = n, .training = 1, .params = b->params, .grads = b->grads, .state = b->state,
                      .work = b->work, .seed = 42, .step = 7, .bn_momentum = 0.1f, .bn_eps = 1e-5f};
    return 0;
}

static void bench_close(bench *b) {
    free(b->params); free(b->grads); free(b->state); free(b->save); free(b->work);
    free(b->x); free(b->y); free(b->r); free(b->dx); free(b->skip); free(b->dskip);
}

static void bench_forward(bench *b) {
    fill_nan(b->work, b->work_n);
    b->ops->forward(&b->L, &b->P, b->x, b->y);
}

static void bench_backward(bench *b, float *dx) {
    fill_nan(b->work, b->work_n);
    b->ops->backward(&b->L, &b->P, b->x, b->y, b->r, dx);
}

/* sum(y * r) after a forward pass. */
static double objective(bench *b) {
    bench_forward(b);
    double f = 0.0;
    for (size_t i = 0; i < b->nout; i++) f += (double)b->y[i] * b->r[i];
    return f;
}

/* The finite-difference step. A convolution is linear in each of its inputs and weights,
 * so central differences are exact for any step, and only the float rounding of the
 * objective remains, divided by the step: F(4x4) Winograd rounds 5-10 times more than the
 * direct convolution, so its checks take a large step. */
static double g_eps = EPS;

/* Central differences of the objective for every element of v (n floats). */
static void numeric_grad(bench *b, float *v, size_t n, double *g) {
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + (float)g_eps;
        double hi = (double)v[i], fp = objective(b);
        v[i] = keep - (float)g_eps;
        double lo = (double)v[i], fm = objective(b);
        v[i] = keep;
        g[i] = (fp - fm) / (hi - lo);
    }
}

/* Checks dx, the parameter gradients and the skip gradient of one layer; also that
 * backward overwrites dx, accumulates into grads and accepts dx == NULL. */
static void gradcheck(const char *label, const nnl_layer *proto, int n, int xmode, int training) {
    bench b;
    if (bench_open(&b, proto, n, xmode)) return;
    b.P.training = training;
    nnl_layer *L = &b.L;
    size_t nw = L->w_n, nb = L->b_n;

    /* analytic */
    memset(b.grads, 0, b.np * sizeof(float));
    bench_forward(&b);
    fill_nan(b.dx, b.nin);
    bench_backward(&b, b.dx);
    float *ga = falloc(b.np), *dxa = falloc(b.nin), *dsa = NULL;
    memcpy(ga, b.grads, b.np * sizeof(float));
    memcpy(dxa, b.dx, b.nin * sizeof(float));
    if (b.dskip) { dsa = falloc(b.nin); memcpy(dsa, b.dskip, b.nin * sizeof(float)); }

    /* numeric */
    size_t big = b.nin > b.np ? b.nin : b.np;
    double *gn = malloc((big ? big : 1) * sizeof(double));
    if (!gn) exit(2);
    numeric_grad(&b, b.x, b.nin, gn);
    double e_dx = rel_err(dxa, gn, b.nin), e_w = 0.0, e_b = 0.0, e_skip = 0.0;
    if (nw) { numeric_grad(&b, b.params + L->w_off, nw, gn); e_w = rel_err(ga + L->w_off, gn, nw); }
    if (nb) { numeric_grad(&b, b.params + L->b_off, nb, gn); e_b = rel_err(ga + L->b_off, gn, nb); }
    if (b.skip) { numeric_grad(&b, b.skip, b.nin, gn); e_skip = rel_err(dsa, gn, b.nin); }
    fprintf(stderr, "  %-34s dx %.2e", label, e_dx);
    if (nw) fprintf(stderr, "  dw %.2e", e_w);
    if (nb) fprintf(stderr, "  db %.2e", e_b);
    if (b.skip) fprintf(stderr, "  dskip %.2e", e_skip);
    fputc('\n', stderr);
    CHECK_MSG(e_dx <= TOL, "%s: dx relative error %.3g", label, e_dx);
    CHECK_MSG(e_w <= TOL, "%s: dw relative error %.3g", label, e_w);
    CHECK_MSG(e_b <= TOL, "%s: db relative error %.3g", label, e_b);
    CHECK_MSG(e_skip <= TOL, "%s: dskip relative error %.3g", label, e_skip);

    /* Conventions: a second backward doubles the gradients and rewrites the same dx;
     * a third with dx == NULL still accumulates. */
    memset(b.grads, 0, b.np * sizeof(float));
    if (b.dskip) memset(b.dskip, 0, b.nin * sizeof(float));
    bench_forward(&b);
    bench_backward(&b, b.dx);
    memcpy(ga, b.grads, b.np * sizeof(float));
    fill_nan(b.dx, b.nin);
    bench_backward(&b, b.dx);
    CHECK_MSG(memcmp(b.dx, dxa, b.nin * sizeof(float)) == 0 || max_rel_diff(b.dx, dxa, b.nin) <= 1e-6,
              "%s: backward does not overwrite dx", label);
    float *twice = falloc(b.np);
    for (size_t i = 0; i < b.np; i++) twice[i] = 2.0f * ga[i];
    CHECK_MSG(max_rel_diff(b.grads, twice, b.np) <= 1e-5, "%s: backward does not accumulate into grads", label);
    bench_backward(&b, NULL);
    for (size_t i = 0; i < b.np; i++) twice[i] = 3.0f * ga[i];
    CHECK_MSG(max_rel_diff(b.grads, twice, b.np) <= 1e-5, "%s: backward with dx == NULL", label);
    if (b.dskip) {
        for (size_t i = 0; i < b.nin; i++) dsa[i] *= 3.0f;
        CHECK_MSG(max_rel_diff(b.dskip, dsa, b.nin) <= 1e-6, "%s: dskip is not accumulated", label);
    }
    free(twice); free(gn); free(ga); free(dxa); free(dsa);
    bench_close(&b);
}

static nnl_layer layer(int kind, int c, int h, int w) {
    nnl_layer L;
    memset(&L, 0, sizeof L);
    L.kind = kind;
    L.in = (nnl_shape){c, h, w};
    return L;
}
static nnl_layer conv(int c, int h, int w, int oc, int k, int s, int p) {
    nnl_layer L = layer(NNL_L_CONV2D, c, h, w);
    L.units = oc; L.k = k; L.stride = s; L.pad = p;
    return L;
}
static nnl_layer pool(int kind, int c, int h, int w, int k, int s) {
    nnl_layer L = layer(kind, c, h, w);
    L.k = k; L.stride = s;
    return L;
}

static void check_layers(void) {
    nnl_layer L;
    L = layer(NNL_L_DENSE, 4, 2, 2); L.units = 5;
    gradcheck("dense (4,2,2)->5", &L, 3, X_RANDOM, 1);
    L = conv(3, 7, 6, 4, 3, 1, 1);  gradcheck("conv2d k3 s1 p1", &L, 2, X_RANDOM, 1);
    L = conv(2, 7, 7, 3, 3, 2, 1);  gradcheck("conv2d k3 s2 p1", &L, 2, X_RANDOM, 1);
    L = conv(2, 8, 7, 3, 3, 2, 0);  gradcheck("conv2d k3 s2 p0", &L, 3, X_RANDOM, 1);
    L = conv(3, 5, 5, 4, 1, 1, 0);  gradcheck("conv2d k1 s1 p0 (1x1)", &L, 3, X_RANDOM, 1);
    L = conv(3, 6, 5, 2, 1, 2, 0);  gradcheck("conv2d k1 s2 p0", &L, 2, X_RANDOM, 1);
    L = conv(2, 6, 6, 3, 5, 1, 2);  gradcheck("conv2d k5 s1 p2", &L, 2, X_RANDOM, 1);
    L = conv(2, 9, 8, 2, 4, 3, 1);  gradcheck("conv2d k4 s3 p1", &L, 2, X_RANDOM, 1);
    L = conv(3, 3, 3, 2, 3, 1, 0);  gradcheck("conv2d k3 on 3x3 (1x1 out)", &L, 4, X_RANDOM, 1);
    L = conv(4, 2, 2, 3, 3, 1, 1);  gradcheck("conv2d k3 p1 on 2x2 (packed)", &L, 9, X_RANDOM, 1);
    L = pool(NNL_L_MAXPOOL, 2, 6, 7, 2, 2);  gradcheck("maxpool k2 s2", &L, 2, X_DISTINCT, 1);
    L = pool(NNL_L_MAXPOOL, 2, 7, 7, 3, 2);  gradcheck("maxpool k3 s2 (overlapping)", &L, 2, X_DISTINCT, 1);
    L = pool(NNL_L_MAXPOOL, 2, 5, 6, 2, 1);  gradcheck("maxpool k2 s1", &L, 2, X_DISTINCT, 1);
    L = pool(NNL_L_AVGPOOL, 2, 6, 7, 2, 2);  gradcheck("avgpool k2 s2", &L, 2, X_RANDOM, 1);
    L = pool(NNL_L_AVGPOOL, 2, 7, 7, 3, 2);  gradcheck("avgpool k3 s2 (overlapping)", &L, 2, X_RANDOM, 1);
    L = layer(NNL_L_GAP, 3, 4, 5);           gradcheck("gap (3,4,5)", &L, 2, X_RANDOM, 1);
    L = layer(NNL_L_BATCHNORM, 3, 4, 5);     gradcheck("batchnorm conv (3,4,5) training", &L, 4, X_RANDOM, 1);
    L = layer(NNL_L_BATCHNORM, 6, 1, 1);     gradcheck("batchnorm dense (6,1,1) training", &L, 8, X_RANDOM, 1);
    L = layer(NNL_L_BATCHNORM, 3, 4, 5);     gradcheck("batchnorm conv (3,4,5) eval", &L, 2, X_RANDOM, 0);
    L = layer(NNL_L_BATCHNORM, 6, 1, 1);     gradcheck("batchnorm dense (6,1,1) eval", &L, 3, X_RANDOM, 0);
    L = layer(NNL_L_RELU, 3, 4, 4);          gradcheck("relu", &L, 2, X_AWAY_FROM_ZERO, 1);
    L = layer(NNL_L_GELU, 3, 4, 4);          gradcheck("gelu", &L, 2, X_RANDOM, 1);
    L = layer(NNL_L_SCALE, 3, 4, 4); L.p = 0.37f;
    gradcheck("scale 0.37", &L, 2, X_RANDOM, 1);
    L = conv(3, 7, 6, 4, 3, 1, 1); L.nobias = 1;
    gradcheck("conv2d k3 s1 p1 without bias", &L, 2, X_RANDOM, 1);
    nnl_wino_mode = 1; /* the Winograd kernel on the 3x3 stride-1 shapes */
    L = conv(3, 7, 6, 4, 3, 1, 1);  gradcheck("conv2d k3 s1 p1 Winograd", &L, 2, X_RANDOM, 1);
    L = conv(2, 6, 5, 3, 3, 1, 0);  gradcheck("conv2d k3 s1 p0 Winograd (odd output)", &L, 3, X_RANDOM, 1);
    L = conv(2, 4, 5, 3, 3, 1, 2);  gradcheck("conv2d k3 s1 p2 Winograd", &L, 2, X_RANDOM, 1);
    L = conv(3, 7, 6, 4, 3, 1, 1); L.nobias = 1;
    gradcheck("conv2d k3 s1 p1 Winograd without bias", &L, 2, X_RANDOM, 1);
    nnl_wino_mode = 2;
    g_eps = 0.25;
    L = conv(3, 7, 6, 4, 3, 1, 1);  gradcheck("conv2d k3 s1 p1 Winograd F(4x4)", &L, 2, X_RANDOM, 1);
    L = conv(2, 9, 5, 3, 3, 1, 0);  gradcheck("conv2d k3 s1 p0 Winograd F(4x4) (odd output)", &L, 3, X_RANDOM, 1);
    L = conv(2, 4, 5, 3, 3, 1, 2);  gradcheck("conv2d k3 s1 p2 Winograd F(4x4)", &L, 2, X_RANDOM, 1);
    L = conv(3, 7, 6, 4, 3, 1, 1); L.nobias = 1;
    gradcheck("conv2d k3 s1 p1 Winograd F(4x4) without bias", &L, 2, X_RANDOM, 1);
    nnl_wino_mode = -1;
    g_eps = EPS;
    L = layer(NNL_L_DENSE, 4, 2, 2); L.units = 5; L.nobias = 1;
    gradcheck("dense without bias", &L, 3, X_RANDOM, 1);
    L = layer(NNL_L_DROPOUT, 3, 4, 4); L.p = 0.3f;
    gradcheck("dropout p=0.3", &L, 2, X_RANDOM, 1);
    L = layer(NNL_L_FLATTEN, 2, 3, 4);       gradcheck("flatten", &L, 2, X_RANDOM, 1);
    L = layer(NNL_L_ADD, 2, 3, 4);           gradcheck("add", &L, 2, X_RANDOM, 1);
}

/* ------------------------------------------------------------------ loss */

static void check_loss(const char *label, int n, int k, int soft, float smoothing) {
    float *z = falloc((size_t)n * k), *t = soft ? falloc((size_t)n * k) : NULL, *dz = falloc((size_t)n * k);
    int32_t *lab = malloc((size_t)n * sizeof(int32_t));
    double *gn = malloc((size_t)n * k * sizeof(double));
    if (!lab || !gn) exit(2);
    fill_rand(z, (size_t)n * k, -2.0f, 2.0f);
    for (int i = 0; i < n; i++) {
        lab[i] = (int32_t)nnl_rng_below(&g_rng, (uint64_t)k);
        if (t) {
            float s = 0.0f;
            for (int j = 0; j < k; j++) s += t[i * k + j] = urand(0.0f, 1.0f);
            for (int j = 0; j < k; j++) t[i * k + j] /= s;
        }
    }
    fill_nan(dz, (size_t)n * k);
    nnl_softmax_xent(z, soft ? NULL : lab, t, n, k, smoothing, dz, NULL);
    for (size_t i = 0; i < (size_t)n * k; i++) {
        float keep = z[i];
        z[i] = keep + (float)EPS;
        double hi = z[i], fp = nnl_softmax_xent(z, soft ? NULL : lab, t, n, k, smoothing, NULL, NULL);
        z[i] = keep - (float)EPS;
        double lo = z[i], fm = nnl_softmax_xent(z, soft ? NULL : lab, t, n, k, smoothing, NULL, NULL);
        z[i] = keep;
        gn[i] = (fp - fm) / (hi - lo);
    }
    double e = rel_err(dz, gn, (size_t)n * k);
    fprintf(stderr, "  %-34s dlogits %.2e\n", label, e);
    CHECK_MSG(e <= TOL, "%s: dlogits relative error %.3g", label, e);
    free(z); free(t); free(dz); free(lab); free(gn);
}

/* ------------------------------------------------------------------ direct convolution */

/* y, dx, dw, db of a convolution in double by its definition, with the sums of the
 * terms' magnitudes (the scale a float32 result's rounding error is relative to). */
static void conv_direct(const nnl_layer *L, int n, const float *x, const float *w, const float *bias,
                        const float *dy, double *y, double *ya, double *dx, double *dxa, double *dw,
                        double *dwa, double *db) {
    int C = L->in.c, H = L->in.h, W = L->in.w, OC = L->units, K = L->k, S = L->stride, Pd = L->pad;
    int OH = L->out.h, OW = L->out.w;
    size_t nx = (size_t)n * C * H * W, nw = (size_t)OC * C * K * K;
    for (size_t i = 0; i < nx; i++) dx[i] = dxa[i] = 0.0;
    for (size_t i = 0; i < nw; i++) dw[i] = dwa[i] = 0.0;
    for (int o = 0; o < OC; o++) db[o] = 0.0;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < OC; o++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    size_t yi = (((size_t)i * OC + o) * OH + oy) * OW + ox;
                    double s = bias[o], sa = fabs(bias[o]), g = dy[yi];
                    db[o] += g;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < K; ki++)
                            for (int kj = 0; kj < K; kj++) {
                                int iy = oy * S - Pd + ki, ix = ox * S - Pd + kj;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                size_t xi = (((size_t)i * C + c) * H + iy) * W + ix;
                                size_t wi = (((size_t)o * C + c) * K + ki) * K + kj;
                                s += (double)w[wi] * x[xi];
                                sa += fabs((double)w[wi] * x[xi]);
                                dx[xi] += g * w[wi];
                                dxa[xi] += fabs(g * w[wi]);
                                dw[wi] += g * x[xi];
                                dwa[wi] += fabs(g * x[xi]);
                            }
                    y[yi] = s;
                    ya[yi] = sa;
                }
}

/* Max over elements of |a - b| / (sum of the magnitudes of b's terms). */
static double cond_err(const float *a, const double *b, const double *mag, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (mag[i] + 1e-30);
        if (isnan(d) || isnan(a[i])) return INFINITY;
        if (mag[i] == 0.0 && a[i] != 0.0f) return INFINITY;
        if (mag[i] > 0.0 && d > worst) worst = d;
    }
    return worst;
}

static double g_ref_worst = 0.0;

static void conv_reference(int n, int c, int h, int w, int oc, int k, int s, int p, int threads) {
    nnl_set_threads(threads);
    nnl_layer proto = conv(c, h, w, oc, k, s, p);
    bench b;
    if (bench_open(&b, &proto, n, X_RANDOM)) return;
    nnl_layer *L = &b.L;
    fill_rand(b.params, b.np, -1.0f, 1.0f);
    size_t nw = L->w_n, nb = L->b_n;
    double *y = malloc(b.nout * sizeof(double)), *ya = malloc(b.nout * sizeof(double));
    double *dx = malloc(b.nin * sizeof(double)), *dxa = malloc(b.nin * sizeof(double));
    double *dw = malloc(nw * sizeof(double)), *dwa = malloc(nw * sizeof(double)), *db = malloc(nb * sizeof(double));
    if (!y || !ya || !dx || !dxa || !dw || !dwa || !db) exit(2);
    conv_direct(L, n, b.x, b.params + L->w_off, b.params + L->b_off, b.r, y, ya, dx, dxa, dw, dwa, db);

    /* db's terms are dy itself, so its magnitude is the sum of |dy|. */
    double *dba = calloc(nb, sizeof(double));
    if (!dba) exit(2);
    size_t ohw = (size_t)L->out.h * L->out.w;
    for (int i = 0; i < n; i++)
        for (size_t o = 0; o < nb; o++)
            for (size_t q = 0; q < ohw; q++) dba[o] += fabs(b.r[((size_t)i * nb + o) * ohw + q]);

    memset(b.grads, 0, b.np * sizeof(float));
    fill_nan(b.y, b.nout);
    bench_forward(&b);
    fill_nan(b.dx, b.nin);
    bench_backward(&b, b.dx);
    double ey = cond_err(b.y, y, ya, b.nout), ex = cond_err(b.dx, dx, dxa, b.nin);
    double ew = cond_err(b.grads + L->w_off, dw, dwa, nw), eb = cond_err(b.grads + L->b_off, db, dba, nb);
    double e = fmax(fmax(ey, ex), fmax(ew, eb));
    if (e > g_ref_worst) g_ref_worst = e;
    CHECK_MSG(e <= REF_TOL, "conv n%d c%d %dx%d oc%d k%d s%d p%d threads %d: y %.3g dx %.3g dw %.3g db %.3g",
              n, c, h, w, oc, k, s, p, threads, ey, ex, ew, eb);

    /* Same thread count, same bits. */
    float *g1 = falloc(b.np), *dx1 = falloc(b.nin);
    memcpy(g1, b.grads, b.np * sizeof(float));
    memcpy(dx1, b.dx, b.nin * sizeof(float));
    memset(b.grads, 0, b.np * sizeof(float));
    bench_backward(&b, b.dx);
    CHECK_MSG(memcmp(g1, b.grads, b.np * sizeof(float)) == 0 && memcmp(dx1, b.dx, b.nin * sizeof(float)) == 0,
              "conv n%d c%d %dx%d oc%d k%d s%d p%d: backward is not deterministic", n, c, h, w, oc, k, s, p);
    free(g1); free(dx1);
    free(y); free(ya); free(dx); free(dxa); free(dw); free(dwa); free(db); free(dba);
    bench_close(&b);
}

/* mode: nnl_wino_mode, 0 (im2col everywhere), 1 (Winograd F(2x2) wherever it fits) or 2
 * (F(4x4)). */
static void check_conv_reference(int mode) {
    nnl_wino_mode = mode;
    g_ref_worst = 0.0;
    static const int fixed[][8] = {
        /* n, c, h, w, oc, k, s, p */
        {1, 1, 1, 1, 1, 1, 1, 0},      {3, 5, 4, 4, 6, 1, 1, 0},   {1, 5, 9, 7, 6, 1, 1, 0},
        {8, 16, 16, 16, 32, 3, 1, 1},  {5, 3, 24, 24, 8, 3, 1, 1}, {6, 8, 8, 8, 16, 3, 2, 1},
        {7, 4, 5, 5, 3, 3, 1, 1},      {3, 2, 11, 13, 4, 5, 2, 2}, {4, 3, 10, 10, 5, 2, 2, 0},
        {2, 3, 32, 32, 8, 3, 1, 1},    {9, 6, 3, 3, 4, 3, 3, 2},   {2, 3, 1, 5, 4, 3, 1, 1},
        {2, 3, 6, 1, 4, 3, 1, 1},      {3, 2, 2, 2, 3, 5, 1, 2},   {2, 2, 1, 1, 3, 5, 1, 2},
        /* same-size maps whose rows do not divide 16 floats: AVX-512 column masks of
         * period 7, 5, 17 and 33 vectors */
        {2, 3, 28, 28, 4, 3, 1, 1},    {2, 2, 9, 20, 3, 5, 1, 2},  {3, 2, 17, 17, 3, 3, 1, 1},
        {2, 2, 32, 33, 3, 7, 1, 3},
        /* Winograd's shapes: odd and even maps, padding 0 and 2, more images than a group */
        {3, 17, 15, 15, 20, 3, 1, 1},  {2, 16, 7, 9, 16, 3, 1, 0},  {2, 16, 5, 6, 17, 3, 1, 2},
        {40, 16, 3, 3, 16, 3, 1, 1},   {5, 24, 31, 31, 8, 3, 1, 1}, {2, 3, 3, 4, 2, 3, 1, 0},
        {3, 70, 9, 6, 66, 3, 1, 1},    {2, 130, 4, 4, 3, 3, 1, 1}, /* more channels than a chunk */
    };
    for (int threads = 1; threads <= 3; threads++)
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
            const int *f = fixed[i];
            conv_reference(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], threads);
        }
    for (int t = 0; t < 60; t++) {
        int k = 1 + (int)nnl_rng_below(&g_rng, 4), s = 1 + (int)nnl_rng_below(&g_rng, 3);
        int p = (int)nnl_rng_below(&g_rng, (uint64_t)k);
        int h = 1 + (int)nnl_rng_below(&g_rng, 12), w = 1 + (int)nnl_rng_below(&g_rng, 12);
        if (h + 2 * p < k || w + 2 * p < k) continue;
        int n = 1 + (int)nnl_rng_below(&g_rng, 7), c = 1 + (int)nnl_rng_below(&g_rng, 5);
        int oc = 1 + (int)nnl_rng_below(&g_rng, 6), threads = 1 + (int)nnl_rng_below(&g_rng, 3);
        conv_reference(n, c, h, w, oc, k, s, p, threads);
    }
    nnl_set_threads(0);
    static const char *const kernel[] = {"im2col", "Winograd F(2x2)", "Winograd F(4x4)"};
    fprintf(stderr, "  conv2d %s vs direct: max relative error %.2e\n", kernel[mode], g_ref_worst);
    nnl_wino_mode = -1;
}

/* ------------------------------------------------------------------ thread invariance */

/* Layers without cross-image sums must give the same bits for any thread count; the
 * shapes are large enough to take the parallel paths. */
static void check_threads_invariant(const char *label, const nnl_layer *proto, int n, int xmode) {
    float *y1 = NULL, *dx1 = NULL, *g1 = NULL;
    for (int threads = 1; threads <= 2; threads++) {
        nnl_set_threads(threads);
        g_rng.s = 99;
        bench b;
        if (bench_open(&b, proto, n, xmode)) break;
        memset(b.grads, 0, b.np * sizeof(float));
        bench_forward(&b);
        bench_backward(&b, b.dx);
        if (threads == 1) {
            y1 = falloc(b.nout); dx1 = falloc(b.nin); g1 = falloc(b.np);
            memcpy(y1, b.y, b.nout * sizeof(float));
            memcpy(dx1, b.dx, b.nin * sizeof(float));
            memcpy(g1, b.grads, b.np * sizeof(float));
        } else {
            CHECK_MSG(memcmp(y1, b.y, b.nout * sizeof(float)) == 0 && memcmp(dx1, b.dx, b.nin * sizeof(float)) == 0 &&
                      memcmp(g1, b.grads, b.np * sizeof(float)) == 0,
                      "%s: results differ between 1 and 2 threads", label);
        }
        bench_close(&b);
    }
    nnl_set_threads(0);
    free(y1); free(dx1); free(g1);
}

static void check_threads(void) {
    nnl_layer L;
    L = layer(NNL_L_BATCHNORM, 16, 16, 16); check_threads_invariant("batchnorm", &L, 16, X_RANDOM);
    L = pool(NNL_L_MAXPOOL, 16, 16, 16, 2, 2); check_threads_invariant("maxpool k2", &L, 16, X_RANDOM);
    L = pool(NNL_L_MAXPOOL, 16, 16, 16, 3, 2); check_threads_invariant("maxpool k3", &L, 16, X_RANDOM);
    L = pool(NNL_L_AVGPOOL, 16, 16, 16, 2, 2); check_threads_invariant("avgpool", &L, 16, X_RANDOM);
    L = layer(NNL_L_GAP, 16, 16, 16); check_threads_invariant("gap", &L, 16, X_RANDOM);
}

/* ------------------------------------------------------------------ setup errors */

static void check_setup_errors(void) {
    static const int bad[][6] = {
        /* h, w, k, s, p */
        {5, 5, 0, 1, 0}, {5, 5, 3, 0, 0}, {5, 5, 3, 1, -1}, {5, 5, 3, 1, 3}, {3, 3, 5, 1, 0}, {2, 9, 4, 1, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nnl_layer L = conv(2, bad[i][0], bad[i][1], 4, bad[i][2], bad[i][3], bad[i][4]);
        int st = nnl_conv2d_ops.setup(&L);
        CHECK_MSG(st == NNL_ERR_SHAPE && strncmp(nnl_errmsg(), "conv2d: ", 8) == 0,
                  "conv2d setup %dx%d k%d s%d p%d: status %d, '%s'", bad[i][0], bad[i][1], bad[i][2],
                  bad[i][3], bad[i][4], st, nnl_errmsg());
    }
    nnl_layer L = conv(3, 32, 32, 16, 3, 2, 1);
    CHECK(nnl_conv2d_ops.setup(&L) == NNL_OK && L.out.c == 16 && L.out.h == 16 && L.out.w == 16);
    CHECK(L.w_n == 16 * 3 * 3 * 3 && L.b_n == 16);
    L = pool(NNL_L_MAXPOOL, 3, 7, 7, 2, 2);
    CHECK(nnl_maxpool_ops.setup(&L) == NNL_OK && L.out.h == 3 && L.out.w == 3);
    L = pool(NNL_L_MAXPOOL, 3, 1, 7, 2, 2);
    CHECK(nnl_maxpool_ops.setup(&L) == NNL_ERR_SHAPE);
}

/* PyTorch's conventions that a gradient check cannot see. */
static void check_semantics(void) {
    /* Ties: the first maximum in the window wins. */
    nnl_layer proto = pool(NNL_L_MAXPOOL, 1, 2, 2, 2, 2);
    bench b;
    if (bench_open(&b, &proto, 1, X_RANDOM) == 0) {
        for (int i = 0; i < 4; i++) b.x[i] = 1.0f;
        bench_forward(&b);
        b.r[0] = 1.0f;
        bench_backward(&b, b.dx);
        CHECK(b.y[0] == 1.0f && b.dx[0] == 1.0f && b.dx[1] == 0.0f && b.dx[2] == 0.0f && b.dx[3] == 0.0f);
        bench_close(&b);
    }
    /* Batch norm: running statistics move by the momentum towards the batch mean and
     * the unbiased batch variance; eval mode normalises with them. */
    proto = layer(NNL_L_BATCHNORM, 2, 1, 2);
    if (bench_open(&b, &proto, 2, X_RANDOM) == 0) {
        static const float xs[8] = {1, 2, 10, 20, 3, 4, 30, 40};
        memcpy(b.x, xs, sizeof xs);
        nnl_layer_ops_of(NNL_L_BATCHNORM)->init(&b.L, b.params, b.state, &g_rng);
        bench_forward(&b);
        /* channel 0: 1,2,3,4 (mean 2.5, biased var 1.25, unbiased 5/3) */
        CHECK(fabsf(b.state[0] - 0.25f) < 1e-6f && fabsf(b.state[2] - (0.9f + 0.1f * 5.0f / 3.0f)) < 1e-6f);
        CHECK(fabsf(b.state[1] - 2.5f) < 1e-5f && fabsf(b.state[3] - (0.9f + 0.1f * 500.0f / 3.0f)) < 1e-4f);
        CHECK(fabsf(b.y[0] - (float)(-1.5 / sqrt(1.25 + 1e-5))) < 1e-5f);
        b.P.training = 0;
        bench_forward(&b);
        CHECK(fabsf(b.y[0] - (float)((1.0 - 0.25) / sqrt((0.9 + 0.1 * 5.0 / 3.0) + 1e-5))) < 1e-5f);
        bench_close(&b);
    }
}

/* The vectorised exp and normal CDF behind GELU, against double-precision libm over
 * their whole range: relative error, so the tails count as much as the middle. */
static void check_fastmath(void) {
    double worst_exp = 0, worst_phi = 0;
    for (int i = 0; i <= 400000; i++) {
        float a = -87.0f + 175.0f * (float)i / 400000.0f;
        double e = exp((double)a), ge = nnl_exp_approx(a);
        double r = fabs(ge - e) / e;
        if (r > worst_exp) worst_exp = r;
        float x = -13.0f + 21.0f * (float)i / 400000.0f; /* Phi(-13) ~ 6e-39: still normal */
        double p = 0.5 * erfc(-(double)x / sqrt(2.0)), gp = nnl_phi_approx(x);
        /* Phi's condition number is about x^2 in the lower tail: x / sqrt 2 and its
         * square are rounded to float first, so allow for that much. */
        r = fabs(gp - p) / p / (1.0 + (double)x * x);
        if (r > worst_phi) worst_phi = r;
    }
    fprintf(stderr, "  fastmath: exp max rel err %.2e, Phi max rel err / (1 + x^2) %.2e\n", worst_exp, worst_phi);
    CHECK_MSG(worst_exp < 4e-7, "exp relative error %.3g", worst_exp);
    CHECK_MSG(worst_phi < 1e-6, "Phi relative error %.3g", worst_phi);
    CHECK(nnl_exp_approx(0.0f) == 1.0f);
    CHECK(isnan(nnl_exp_approx(NAN)) && isnan(nnl_phi_approx(NAN)));
    CHECK(nnl_phi_approx(40.0f) == 1.0f && nnl_phi_approx(-40.0f) < 1e-37f);
}

int main(void) {
    check_fastmath();
    fprintf(stderr, "gradient checks (max relative error):\n");
    check_layers();
    check_loss("softmax_xent hard labels", 5, 7, 0, 0.0f);
    check_loss("softmax_xent hard, smoothing 0.1", 5, 7, 0, 0.1f);
    check_loss("softmax_xent soft targets", 4, 6, 1, 0.0f);
    check_loss("softmax_xent soft, smoothing 0.2", 4, 6, 1, 0.2f);
    check_conv_reference(0);
    check_conv_reference(1);
    check_conv_reference(2);
    check_threads();
    check_setup_errors();
    check_semantics();
    return nnl_test_finish("test_gradcheck");
}
