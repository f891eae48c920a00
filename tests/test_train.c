/* Training end to end on synthetic data, the optimizers' update rules and the
 * learning-rate schedules. */
#include "nn/model.h"
#include "synth.h"
#include "testutil.h"
#include "train/batch.h"
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double train_acc(const char *arch, int c, int h, int w, int opt, float lr) {
    nnl_dataset tr, te;
    synth_dataset(&tr, 1200, c, h, w, 5, 1);
    synth_dataset(&te, 300, c, h, w, 5, 2);
    nnl_model *m = NULL;
    double acc = -1.0;
    if (nnl_model_create(&m, arch, c, h, w, 5) == NNL_OK) {
        nnl_model_init(m, 3);
        nnl_train_opts o;
        nnl_train_opts_default(&o);
        o.epochs = 3; o.batch = 32; o.optimizer = opt; o.lr = lr;
        nnl_train_result r;
        int st = nnl_train(m, &tr, &te, &o, &r);
        CHECK_MSG(st == NNL_OK, "%s: %s", arch, nnl_errmsg());
        acc = r.test_acc;
        nnl_eval ev;
        CHECK(nnl_evaluate(m, &te, NULL, 64, &ev) == NNL_OK);
        CHECK(fabs(nnl_eval_accuracy(&ev) - acc) < 1e-12);
        int64_t sum = 0;
        for (int i = 0; i < 25; i++) sum += ev.confusion[i];
        CHECK(sum == 300);
        nnl_eval_free(&ev);
    } else {
        CHECK_MSG(0, "%s: %s", arch, nnl_errmsg());
    }
    fprintf(stderr, "  %-50s test accuracy %.3f\n", arch, acc);
    nnl_model_free(m);
    nnl_dataset_free(&tr);
    nnl_dataset_free(&te);
    return acc;
}

static void test_learns(void) {
    CHECK(train_acc("dense64,relu,dense", 1, 10, 10, NNL_OPT_SGD, 0.05f) > 0.95);
    CHECK(train_acc("dense64,relu,dropout0.2,dense", 1, 10, 10, NNL_OPT_ADAM, 0.002f) > 0.95);
    CHECK(train_acc("conv8k3p1,bn,relu,maxpool2,conv16k3p1,bn,relu,gap,dense", 3, 12, 12, NNL_OPT_SGD, 0.05f) > 0.9);
    CHECK(train_acc("conv8k3p1,relu,@a,conv8k3p1,bn,add@a,relu,avgpool2,flatten,dense", 3, 12, 12, NNL_OPT_SGD, 0.02f) > 0.9);
}

static void test_sgd_rule(void) {
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.momentum = 0.5f; o.weight_decay = 0.1f;
    nnl_optim opt;
    CHECK(nnl_optim_init(&opt, 1, &o) == NNL_OK);
    float p = 1.0f, g = 2.0f;
    /* step 1: d = 2 + 0.1 = 2.1, buf = 2.1, p = 1 - 0.1*2.1 = 0.79 */
    nnl_optim_step(&opt, &p, &g, 0.1f);
    CHECK(fabsf(p - 0.79f) < 1e-6f);
    /* step 2: d = 2 + 0.079 = 2.079, buf = 0.5*2.1 + 2.079 = 3.129, p = 0.79 - 0.3129 */
    nnl_optim_step(&opt, &p, &g, 0.1f);
    CHECK(fabsf(p - (0.79f - 0.3129f)) < 1e-6f);
    nnl_optim_free(&opt);
    o.optimizer = NNL_OPT_ADAM; o.weight_decay = 0.0f;
    CHECK(nnl_optim_init(&opt, 1, &o) == NNL_OK);
    p = 1.0f;
    /* Adam's first step moves every parameter by lr (sign of the gradient). */
    nnl_optim_step(&opt, &p, &g, 0.01f);
    CHECK(fabsf(p - 0.99f) < 1e-6f);
    nnl_optim_free(&opt);
}

static void test_schedules(void) {
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.lr = 1.0f; o.epochs = 10;
    o.schedule = NNL_SCHED_CONSTANT;
    CHECK(nnl_schedule_lr(&o, 7.3) == 1.0);
    o.schedule = NNL_SCHED_STEP; o.step_size = 3; o.gamma = 0.5f;
    CHECK(fabs(nnl_schedule_lr(&o, 2.9) - 1.0) < 1e-12 && fabs(nnl_schedule_lr(&o, 3.0) - 0.5) < 1e-12);
    CHECK(fabs(nnl_schedule_lr(&o, 9.5) - 0.125) < 1e-12);
    o.schedule = NNL_SCHED_COSINE;
    CHECK(fabs(nnl_schedule_lr(&o, 0.0) - 1.0) < 1e-12 && fabs(nnl_schedule_lr(&o, 5.0) - 0.5) < 1e-9);
    CHECK(fabs(nnl_schedule_lr(&o, 10.0)) < 1e-12);
    o.warmup = 2.0f;
    CHECK(fabs(nnl_schedule_lr(&o, 1.0) - 0.5) < 1e-6 && fabs(nnl_schedule_lr(&o, 2.0) - 1.0) < 1e-9);
}

static void test_bad_options(void) {
    nnl_dataset tr;
    synth_dataset(&tr, 64, 1, 8, 8, 3, 1);
    nnl_model *m = NULL;
    CHECK(nnl_model_create(&m, "dense8,relu,dense", 1, 8, 8, 3) == NNL_OK);
    if (!m) return;
    nnl_model_init(m, 1);
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.batch = 0;
    CHECK(nnl_train(m, &tr, NULL, &o, NULL) == NNL_ERR_ARG);
    nnl_train_opts_default(&o);
    o.lr = -1.0f;
    CHECK(nnl_train(m, &tr, NULL, &o, NULL) == NNL_ERR_ARG);
    /* A diverging run stops with a numeric error instead of writing NaN weights. */
    nnl_train_opts_default(&o);
    o.lr = 1e30f; o.epochs = 2; o.batch = 8;
    int st = nnl_train(m, &tr, NULL, &o, NULL);
    CHECK_MSG(st == NNL_ERR_NUMERIC, "status %d: %s", st, nnl_errmsg());
    nnl_dataset other;
    synth_dataset(&other, 16, 3, 8, 8, 3, 1);
    nnl_train_opts_default(&o);
    CHECK(nnl_train(m, &other, NULL, &o, NULL) == NNL_ERR_SHAPE);
    fprintf(stderr, "  refused: %s\n", nnl_errmsg());
    nnl_dataset_free(&other);
    nnl_model_free(m);
    nnl_dataset_free(&tr);
}

/* The fresh backward (gradients written) equals zeroing + the accumulating backward. */
static void normals(nnl_rng *r, float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = nnl_rng_normal(r);
}

static void test_backward_fresh(void) {
    nnl_model *m = NULL;
    CHECK(nnl_model_create(&m, "conv4k3p1,bn,relu,maxpool2,dense16,relu,dropout0.3,dense", 2, 8, 8, 3) == NNL_OK);
    if (!m || nnl_model_prepare(m, 8)) return;
    nnl_model_init(m, 2);
    float x[8 * 2 * 8 * 8], dl[8 * 3];
    nnl_rng r = {5};
    normals(&r, x, sizeof x / sizeof *x);
    normals(&r, dl, sizeof dl / sizeof *dl);
    float *g1 = malloc(m->nparams * sizeof(float));
    for (size_t i = 0; i < m->nparams; i++) m->grads[i] = 1e30f; /* stale values must not leak in */
    nnl_model_forward(m, x, 8, 1, 9, 3, 0.1f);
    nnl_model_backward_fresh(m, dl, 8);
    memcpy(g1, m->grads, m->nparams * sizeof(float));
    nnl_model_forward(m, x, 8, 1, 9, 3, 0.1f);
    nnl_model_zero_grad(m);
    nnl_model_backward(m, dl, 8);
    CHECK_MSG(memcmp(g1, m->grads, m->nparams * sizeof(float)) == 0, "fresh and accumulating backward differ");
    free(g1);
    nnl_model_free(m);
}

/* Largest difference relative to the largest magnitude: sums in another order differ by
 * rounding, which is large relative to a value that nearly cancelled. */
static double max_rel(const float *a, const float *b, size_t n) {
    double worst = 0.0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / scale;
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

/* Two models of one spec on 2x6x5 inputs with 7 classes, prepared for batches of n and
 * given the same weights: one for the fast path under test, one to turn it off in.
 * 0 (checks failed) if either fails. */
static int twins(const char *spec, int n, nnl_model **a, nnl_model **b) {
    *a = *b = NULL;
    CHECK(nnl_model_create(a, spec, 2, 6, 5, 7) == NNL_OK && nnl_model_create(b, spec, 2, 6, 5, 7) == NNL_OK);
    if (!*a || !*b) { nnl_model_free(*a); nnl_model_free(*b); return 0; }
    CHECK(nnl_model_prepare(*a, n) == NNL_OK && nnl_model_prepare(*b, n) == NNL_OK);
    nnl_model_init(*a, 4); nnl_model_init(*b, 4);
    return 1;
}

/* Dense/ReLU networks take the dense-chain fast path; it must compute what the layers do
 * one by one: the forward pass, the gradients, and whole training runs with each optimizer. */
static void test_dense_chain(int threads) {
    nnl_set_threads(threads);
    const char *spec = "dense40,relu,dense24,dense17,relu,dense";
    nnl_model *a, *b;
    if (!twins(spec, 19, &a, &b)) return;
    CHECK_MSG(a->chain == 1, "a dense/ReLU network does not take the fast path");
    b->chain = 0;
    float x[19 * 60], dl[19 * 7];
    nnl_rng r = {11};
    normals(&r, x, sizeof x / sizeof *x);
    normals(&r, dl, sizeof dl / sizeof *dl);
    const float *za = nnl_model_forward(a, x, 19, 1, 1, 0, 0.1f), *zb = nnl_model_forward(b, x, 19, 1, 1, 0, 0.1f);
    double e = max_rel(za, zb, 19 * 7);
    CHECK_MSG(e < 1e-5, "threads %d: fast forward differs from the layers' by %g", threads, e);
    memcpy(a->dacts[a->nlayers], dl, sizeof dl);
    nnl_dense_chain_backward(a, 19, NULL, NULL, NULL);
    nnl_model_backward_fresh(b, dl, 19);
    e = max_rel(a->grads, b->grads, a->nparams);
    CHECK_MSG(e < 1e-5, "threads %d: fast gradients differ from the layers' by %g", threads, e);
    nnl_dataset tr;
    synth_dataset(&tr, 150, 2, 6, 5, 7, 3);
    for (int opt = 0; opt < 3; opt++) {
        nnl_model_init(a, 4); nnl_model_init(b, 4);
        nnl_train_opts o;
        nnl_train_opts_default(&o);
        o.epochs = 2; o.batch = 19; o.lr = 0.02f;
        if (opt == 1) o.nesterov = 1;
        if (opt == 2) { o.optimizer = NNL_OPT_ADAM; o.lr = 0.002f; }
        CHECK(nnl_train(a, &tr, NULL, &o, NULL) == NNL_OK);
        b->chain = 0;
        CHECK(nnl_train(b, &tr, NULL, &o, NULL) == NNL_OK);
        CHECK(a->chain == 1 && b->chain == 0);
        e = max_rel(a->params, b->params, a->nparams);
        CHECK_MSG(e < 1e-4, "threads %d, optimizer %d: fast training differs by %g", threads, opt, e);
    }
    nnl_dataset_free(&tr);
    nnl_model_free(a); nnl_model_free(b);
}

/* A ReLU after a batch-norm runs inside it; outputs and gradients must be the layers'
 * bit for bit, on image and (N,C) batch-norms, with a skip connection that reads a
 * ReLU's output (folded) and one that reads a batch-norm's output (not folded). */
static void test_bn_relu_fold(int threads) {
    nnl_set_threads(threads);
    const char *spec = "conv4k3p1,bn,relu,@r,conv4k3p1,bn,relu,add@r,conv3k3p1,bn,@s,relu,add@s,"
                       "flatten,dense8,bn,relu,dense";
    nnl_model *a, *b;
    if (!twins(spec, 9, &a, &b)) return;
    int folded = 0;
    for (int i = 0; i < a->nlayers; i++) folded += a->layers[i].folded;
    CHECK_MSG(a->fold == 1 && folded == 3, "%d ReLUs folded into batch-norms, want 3", folded);
    CHECK_MSG(!a->layers[10].relu, "a batch-norm whose output an add reads was folded");
    b->fold = 0;
    float x[9 * 60], dl[9 * 7];
    nnl_rng r = {12};
    normals(&r, x, sizeof x / sizeof *x);
    normals(&r, dl, sizeof dl / sizeof *dl);
    for (int training = 0; training < 2; training++) {
        const float *za = nnl_model_forward(a, x, 9, training, 1, 0, 0.1f);
        const float *zb = nnl_model_forward(b, x, 9, training, 1, 0, 0.1f);
        CHECK_MSG(memcmp(za, zb, sizeof dl) == 0, "threads %d, training %d: folded forward differs", threads, training);
        nnl_model_backward_fresh(a, dl, 9);
        nnl_model_backward_fresh(b, dl, 9);
        CHECK_MSG(memcmp(a->grads, b->grads, a->nparams * sizeof(float)) == 0,
                  "threads %d, training %d: folded gradients differ", threads, training);
        CHECK_MSG(memcmp(a->dacts[1], b->dacts[1], 9 * 4 * 30 * sizeof(float)) == 0,
                  "threads %d, training %d: folded input gradients differ", threads, training);
    }
    nnl_dataset tr;
    synth_dataset(&tr, 60, 2, 6, 5, 7, 3);
    nnl_model_init(a, 4); nnl_model_init(b, 4);
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.epochs = 2; o.batch = 9; o.lr = 0.02f;
    CHECK(nnl_train(a, &tr, NULL, &o, NULL) == NNL_OK);
    CHECK(nnl_train(b, &tr, NULL, &o, NULL) == NNL_OK);
    CHECK(a->fold == 1 && b->fold == 0);
    CHECK_MSG(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0 &&
              memcmp(a->state, b->state, a->nstate * sizeof(float)) == 0,
              "threads %d: training with folded ReLUs gives another model", threads);
    nnl_dataset_free(&tr);
    nnl_model_free(a); nnl_model_free(b);
}


/* The fused weight-gradient SGD step against its definition, on shapes that leave partial
 * tiles in both directions (rows not a multiple of 12, columns not of 32), and with dy a
 * column window of a wider matrix as the dense chain passes it. Rows outside the window
 * must stay untouched. */
static void test_dense_sgd(void) {
    enum { N = 19, OUT = 40, IN = 37, A = 3, ROWS = 29 };
    static float dy[N * OUT], x[N * IN], w[OUT * IN], acc[OUT * IN], w0[OUT * IN], acc0[OUT * IN];
    static float xp[64 * N], ap[36 * N];
    nnl_rng r = {21};
    normals(&r, dy, N * OUT); normals(&r, x, N * IN); normals(&r, w, OUT * IN); normals(&r, acc, OUT * IN);
    memcpy(w0, w, sizeof w); memcpy(acc0, acc, sizeof acc);
    CHECK(nnl_dense_pack_x_floats(N, IN) <= sizeof xp / sizeof *xp);
    CHECK(nnl_dense_pack_dy_floats(N, ROWS) <= sizeof ap / sizeof *ap);
    nnl_dense_pack_x(N, x, IN, 0, nnl_dense_x_strips(IN), xp);
    nnl_sgd_fused f = {NULL, 0.05f, 0.9f, 5e-4f, 0};
    static float wp[64 * OUT] __attribute__((aligned(64)));
    CHECK(nnl_dense_wp_floats(IN, OUT) <= sizeof wp / sizeof *wp);
    for (size_t j = 0; j < sizeof wp / sizeof *wp; j++) wp[j] = -7.0f;
    nnl_dense_dw_sgd(N, dy + A, OUT, xp, x, IN, ROWS, w + A * IN, acc + A * IN, ap, wp + A * 32, (size_t)OUT * 32, &f);
#ifdef __AVX512F__
    /* the strips of the new weights: the same values, zeros past IN, nothing outside the rows */
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < 64; i++) {
            float got = wp[(i / 32) * OUT * 32 + o * 32 + i % 32];
            float want = o < A || o >= A + ROWS ? -7.0f : i < IN ? w[o * IN + i] : 0.0f;
            CHECK_MSG(got == want, "weight strips (%d, %d): %g, want %g", o, i, got, want);
        }
#endif
    double err = 0.0;
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            size_t k = (size_t)o * IN + i;
            if (o < A || o >= A + ROWS) {
                CHECK_MSG(w[k] == w0[k] && acc[k] == acc0[k], "row %d outside the window changed", o);
                continue;
            }
            double g = 0.0, gabs = 0.0;   /* errors are relative to the terms' sizes */
            for (int s = 0; s < N; s++) {
                g += (double)dy[s * OUT + o] * x[s * IN + i];
                gabs += fabs((double)dy[s * OUT + o] * x[s * IN + i]);
            }
            double b = acc0[k] + g, p = w0[k] - 0.05 * b, a = 0.9 * b + 5e-4 * p;
            double bs = fabs(acc0[k]) + gabs, ps = fabs(w0[k]) + 0.05 * bs;
            double e1 = fabs(w[k] - p) / ps, e2 = fabs(acc[k] - a) / (0.9 * bs + 5e-4 * ps);
            if (e1 > err) err = e1;
            if (e2 > err) err = e2;
        }
    CHECK_MSG(err < 1e-5, "fused SGD step differs from its definition by %g", err);
}

/* The dense forward kernel against its definition: 45 images (a full 32-image strip and a
 * partial one), rows [A, A + ROWS) of 40 (full 12-row tiles and a partial one), with and
 * without the ReLU; the next layer's transposed input must hold the same values, and
 * outputs outside the rows must stay untouched. */
static void test_dense_fwd(void) {
#ifdef __AVX512F__
    enum { N = 45, OUT = 40, IN = 37, A = 3, ROWS = 29 };
    static float x[N * IN], w[OUT * IN], bias[OUT], y[N * OUT];
    static float xt[64 * IN] __attribute__((aligned(64))), xtn[64 * OUT] __attribute__((aligned(64)));
    nnl_rng r = {22};
    normals(&r, x, N * IN); normals(&r, w, OUT * IN); normals(&r, bias, OUT);
    CHECK(nnl_dense_xt_floats(N, IN) <= sizeof xt / sizeof *xt);
    nnl_dense_pack_xt(N, x, IN, 0, 16, xt);
    nnl_dense_pack_xt(N, x, IN, 16, IN, xt);
    for (int relu = 0; relu < 2; relu++) {
        for (int j = 0; j < N * OUT; j++) y[j] = -7.0f;
        nnl_dense_fwd(N, xt, IN, w, bias, A, A + ROWS, OUT, y, relu, xtn);
        double err = 0.0;
        for (int s = 0; s < N; s++)
            for (int o = 0; o < OUT; o++) {
                float got = y[s * OUT + o];
                if (o < A || o >= A + ROWS) {
                    CHECK_MSG(got == -7.0f, "output %d outside the rows was written", o);
                    continue;
                }
                double v = bias[o], sc = fabs(bias[o]);
                for (int i = 0; i < IN; i++) {
                    v += (double)x[s * IN + i] * w[o * IN + i];
                    sc += fabs((double)x[s * IN + i] * w[o * IN + i]);
                }
                if (relu && v < 0.0) v = 0.0;
                double e = fabs(got - v) / sc;
                if (e > err) err = e;
                float t = xtn[(s / 32) * 32 * OUT + o * 32 + s % 32];
                CHECK_MSG(t == got, "relu %d: transposed output (%d, %d) is %g, the output %g", relu, s, o, t, got);
            }
        CHECK_MSG(err < 1e-6, "relu %d: forward kernel differs from its definition by %g", relu, err);
    }
#endif
}

/* The input-gradient kernel against its definition: 45 images (full 12-image tiles and a
 * partial one), 37 input features (a full strip and a partial one, done as two calls), with
 * and without the ReLU mask. */
static void test_dense_dx(void) {
#ifdef __AVX512F__
    enum { N = 45, OUT = 29, IN = 37 };
    static float dy[N * OUT], w[OUT * IN], x[N * IN], dx[N * IN];
    static float wp[64 * OUT] __attribute__((aligned(64)));
    nnl_rng r = {23};
    normals(&r, dy, N * OUT); normals(&r, w, OUT * IN); normals(&r, x, N * IN);
    CHECK(nnl_dense_wp_floats(IN, OUT) <= sizeof wp / sizeof *wp);
    nnl_dense_pack_w(w, IN, OUT, 0, 10, wp);
    nnl_dense_pack_w(w, IN, OUT, 10, OUT, wp);
    for (int relu = 0; relu < 2; relu++) {
        for (int j = 0; j < N * IN; j++) dx[j] = -7.0f;
        /* strip 1 last: a store past column IN would land on the next row's strip 0 */
        nnl_dense_dx(N, dy, OUT, wp, IN, 0, 1, relu ? x : NULL, dx);
        nnl_dense_dx(N, dy, OUT, wp, IN, 1, 2, relu ? x : NULL, dx);
        double err = 0.0;
        for (int s = 0; s < N; s++)
            for (int i = 0; i < IN; i++) {
                double v = 0.0, sc = 1e-30;
                for (int o = 0; o < OUT; o++) {
                    v += (double)dy[s * OUT + o] * w[o * IN + i];
                    sc += fabs((double)dy[s * OUT + o] * w[o * IN + i]);
                }
                if (relu && !(x[s * IN + i] > 0.0f)) v = 0.0;
                double e = fabs(dx[s * IN + i] - v) / sc;
                if (e > err) err = e;
            }
        CHECK_MSG(err < 1e-6, "relu %d: input-gradient kernel differs from its definition by %g", relu, err);
    }
#endif
}

/* ------------------------------------------------------------------ augmentation */

/* PyTorch's 'reflect' index (-1 -> 1, n -> n - 2). */
static int refl(int x, int n) { return x < 0 ? -x : x >= n ? 2 * n - 2 - x : x; }

/* Image src moved by (dy, dx) after an optional mirror, padded by reflection (mirror_pad) or
 * zeros: what airbench's pre-flip plus batch_crop, or a padded random crop, gives. */
static void moved(const uint8_t *src, int c, int h, int w, int dy, int dx, int fl, int mirror_pad, uint8_t *out) {
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int sy = y + dy, sx = (fl ? w - 1 - x : x) + dx, v = 0;
                if (mirror_pad) v = src[((size_t)k * h + refl(sy, h)) * w + refl(sx, w)];
                else if (sy >= 0 && sy < h && sx >= 0 && sx < w) v = src[((size_t)k * h + sy) * w + sx];
                out[((size_t)k * h + y) * w + x] = (uint8_t)v;
            }
}

/* Which (dy, dx, flip) makes out from src: shift index (dy + r) * (2r + 1) + dx + r, plus
 * (2r + 1)^2 when flipped, or -1 if none does. */
static int which_move(const uint8_t *src, const uint8_t *out, int c, int h, int w, int r, int mirror_pad) {
    uint8_t buf[2 * 8 * 9];
    int side = 2 * r + 1;
    for (int fl = 0; fl < 2; fl++)
        for (int dy = -r; dy <= r; dy++)
            for (int dx = -r; dx <= r; dx++) {
                moved(src, c, h, w, dy, dx, fl, mirror_pad, buf);
                if (!memcmp(buf, out, (size_t)c * h * w)) return fl * side * side + (dy + r) * side + dx + r;
            }
    return -1;
}

/* The batcher's augmentation against its definition: every translation and crop in range,
 * about uniformly; the alternating flip fixed per image and inverted every other epoch;
 * the random flip about half the time. */
static void test_augmentation(void) {
    enum { N = 400, C = 2, H = 8, W = 9, R = 2 };
    nnl_dataset ds = {0};
    ds.n = N; ds.c = C; ds.h = H; ds.w = W; ds.nclass = 2;
    ds.pixels = malloc((size_t)N * C * H * W);
    ds.labels = calloc(N, sizeof(int32_t));
    if (!ds.pixels || !ds.labels) exit(2);
    nnl_rng r = {5};
    for (size_t i = 0; i < (size_t)N * C * H * W; i++) ds.pixels[i] = (uint8_t)nnl_rng_below(&r, 256);
    int64_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = i;
    nnl_batcher b;
    CHECK(nnl_batcher_init(&b, N, &ds) == NNL_OK);
    const size_t in = (size_t)C * H * W;
    const int side = 2 * R + 1, nshift = side * side;
    static const char *const kind[] = {"crop (zero padding)", "translate (reflect padding)"};
    for (int mirror_pad = 0; mirror_pad < 2; mirror_pad++) {
        nnl_augment aug = {mirror_pad ? 0 : R, mirror_pad ? R : 0, 0, 0, 9};
        nnl_batcher_fill(&b, &ds, idx, N, &aug, NULL, 1234);
        int hist[2 * 25] = {0}, bad = 0;
        for (int i = 0; i < N; i++) {
            int k = which_move(ds.pixels + i * in, b.px + i * in, C, H, W, R, mirror_pad);
            if (k < 0 || k >= nshift) bad++; else hist[k]++;
        }
        int lo = N, hi = 0;
        for (int k = 0; k < nshift; k++) { lo = hist[k] < lo ? hist[k] : lo; hi = hist[k] > hi ? hist[k] : hi; }
        fprintf(stderr, "  %-28s %d of %d images not a move in range; shifts seen %d..%d times (16 expected)\n",
                kind[mirror_pad], bad, N, lo, hi);
        CHECK_MSG(bad == 0, "%s: %d images are not the source moved by at most %d", kind[mirror_pad], bad, R);
        CHECK_MSG(lo >= 4 && hi <= 36, "%s: shifts not uniform (%d..%d of %d)", kind[mirror_pad], lo, hi, N);
    }
    /* The alternating flip: epochs 0 and 2 alike, epoch 1 the mirror of epoch 0, about
     * half the images flipped; the same per image for the run's seed, other for another. */
    uint8_t *e0 = malloc((size_t)N * in), *mir = malloc(in);
    if (!e0 || !mir) exit(2);
    int flipped = 0, ok1 = 1, ok2 = 1;
    for (int ep = 0; ep < 3; ep++) {
        nnl_augment aug = {0, 0, 2, ep, 9};
        nnl_batcher_fill(&b, &ds, idx, N, &aug, NULL, 77 + (uint64_t)ep);
        for (int i = 0; i < N; i++) {
            const uint8_t *o = b.px + i * in;
            if (ep == 0) {
                memcpy(e0 + i * in, o, in);
                flipped += memcmp(o, ds.pixels + i * in, in) != 0;
                continue;
            }
            moved(e0 + i * in, C, H, W, 0, 0, ep == 1, 1, mir);
            if (memcmp(mir, o, in)) { if (ep == 1) ok1 = 0; else ok2 = 0; }
        }
    }
    fprintf(stderr, "  %-28s %d of %d flipped at epoch 0\n", "alternating flip", flipped, N);
    CHECK_MSG(ok1, "alternating flip: epoch 1 is not the mirror of epoch 0");
    CHECK_MSG(ok2, "alternating flip: epoch 2 differs from epoch 0");
    CHECK_MSG(flipped > N * 35 / 100 && flipped < N * 65 / 100, "alternating flip: %d of %d flipped", flipped, N);
    nnl_augment other = {0, 0, 2, 0, 10};
    nnl_batcher_fill(&b, &ds, idx, N, &other, NULL, 77);
    CHECK_MSG(memcmp(b.px, e0, (size_t)N * in) != 0, "alternating flip: the same choice for another run seed");
    /* With translation as well: each image is a move of its own flip state (airbench's
     * pre-flipped, padded copy), that state inverted at epoch 1. */
    int badt = 0;
    for (int ep = 0; ep < 2; ep++) {
        nnl_augment aug = {0, R, 2, ep, 9};
        nnl_batcher_fill(&b, &ds, idx, N, &aug, NULL, 500 + (uint64_t)ep);
        for (int i = 0; i < N; i++) {
            int fl0 = memcmp(e0 + i * in, ds.pixels + i * in, in) != 0;
            int k = which_move(ds.pixels + i * in, b.px + i * in, C, H, W, R, 1);
            if (k < 0 || (k >= nshift) != (fl0 ^ ep)) badt++;
        }
    }
    CHECK_MSG(badt == 0, "alternating flip with translation: %d images not a move of their flip state", badt);
    /* The random flip: about half, and not the same images every epoch. */
    nnl_augment rf = {0, 0, 1, 0, 9};
    nnl_batcher_fill(&b, &ds, idx, N, &rf, NULL, 1);
    int f1 = 0, same = 0;
    for (int i = 0; i < N; i++) f1 += memcmp(b.px + i * in, ds.pixels + i * in, in) != 0;
    memcpy(e0, b.px, (size_t)N * in);
    nnl_batcher_fill(&b, &ds, idx, N, &rf, NULL, 2);
    for (int i = 0; i < N; i++) same += !memcmp(b.px + i * in, e0 + i * in, in);
    fprintf(stderr, "  %-28s %d of %d flipped; %d alike under another seed\n", "random flip", f1, N, same);
    CHECK_MSG(f1 > N * 35 / 100 && f1 < N * 65 / 100, "random flip: %d of %d flipped", f1, N);
    CHECK_MSG(same > N * 35 / 100 && same < N * 65 / 100, "random flip: %d of %d alike under another seed", same, N);
    free(e0); free(mir);
    nnl_batcher_free(&b);
    nnl_dataset_free(&ds);
}

int main(void) {
    test_dense_sgd();
    test_dense_fwd();
    test_dense_dx();
    test_bn_relu_fold(1);
    test_bn_relu_fold(2);
    test_dense_chain(1);
    test_dense_chain(2);
    test_dense_chain(3);
    nnl_set_threads(2);
    test_learns();
    test_backward_fresh();
    test_sgd_rule();
    test_schedules();
    test_bad_options();
    test_augmentation();
    return nnl_test_finish("test_train");
}
