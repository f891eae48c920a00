/* The engine features that learned keys need (the gate lock): the gradient with respect to
 * the input (finite differences, through every fast path: the dense chain, the batch-norm +
 * ReLU fold, residual adds), named activations that every optimisation leaves written, passes
 * over a range of layers, and freezing (no update, no decay, batch-norm in eval mode, the
 * gradient still flowing through). */
#include "nn/model.h"
#include "testutil.h"

#include <math.h>

static nnl_rng g_rng = {777};
static float urand(float lo, float hi) { return lo + (hi - lo) * nnl_rng_uniform(&g_rng); }

static nnl_model *make(const char *spec, int c, int h, int w, int nclass, int batch) {
    nnl_model *m = NULL;
    if (nnl_model_create(&m, spec, c, h, w, nclass) != NNL_OK) {
        fprintf(stderr, "%s: %s\n", spec, nnl_errmsg());
        exit(2);
    }
    nnl_model_init(m, 5);
    /* batch-norm running statistics away from 0/1, so that eval mode is not the identity */
    for (int i = 0; i < m->nlayers; i++) {
        nnl_layer *L = &m->layers[i];
        if (L->kind != NNL_L_BATCHNORM) continue;
        for (int k = 0; k < L->in.c; k++) {
            m->state[L->s_off + k] = urand(-0.3f, 0.3f);
            m->state[L->s_off + L->in.c + k] = urand(0.5f, 2.0f);
            m->params[L->w_off + k] = urand(0.5f, 1.5f);
            m->params[L->b_off + k] = urand(-0.2f, 0.2f);
        }
    }
    if (nnl_model_prepare(m, batch) != NNL_OK) { fprintf(stderr, "prepare: %s\n", nnl_errmsg()); exit(2); }
    return m;
}

/* J(x) = sum(logits * r): backward with dlogits = r gives dJ/dx. bn momentum 0 keeps the
 * running statistics as they are across the many forward passes. */
static double objective(nnl_model *m, const float *x, int n, const float *r, int training) {
    const float *z = nnl_model_forward(m, x, n, training, 11, 3, 0.0f);
    double s = 0.0;
    for (int i = 0; i < n * m->nclass; i++) s += (double)z[i] * r[i];
    return s;
}

/* The analytic input gradient against central differences at every input value; returns the
 * worst error relative to each value, with 1% of the largest as a floor (test_gradcheck's rule). */
static double input_grad_err(nnl_model *m, int n, int training, double eps) {
    size_t in = (size_t)n * nnl_shape_size(m->input), k = (size_t)n * m->nclass;
    float *x = malloc(in * sizeof *x), *r = malloc(k * sizeof *r), *g = malloc(in * sizeof *g);
    double *num = malloc(in * sizeof *num);
    for (size_t i = 0; i < in; i++) x[i] = urand(-1.0f, 1.0f);
    for (size_t i = 0; i < k; i++) r[i] = urand(-1.0f, 1.0f);
    nnl_model_set_input_grad(m, 1);
    objective(m, x, n, r, training);
    nnl_model_backward_fresh(m, r, n);
    memcpy(g, nnl_model_input_grad(m), in * sizeof *g);
    /* A step that crosses a kink (a ReLU or a max-pool changing its mind) shows as one-sided
     * differences that disagree: such values are left out, at most a tenth of them. */
    double j0 = objective(m, x, n, r, training);
    char *kink = calloc(in, 1);
    size_t kinks = 0;
    for (size_t i = 0; i < in; i++) {
        float v = x[i];
        x[i] = (float)(v + eps);
        double a = objective(m, x, n, r, training);
        x[i] = (float)(v - eps);
        double b = objective(m, x, n, r, training);
        x[i] = v;
        num[i] = (a - b) / (2.0 * eps);
        double fwd = (a - j0) / eps, bwd = (j0 - b) / eps;
        kink[i] = fabs(fwd - bwd) > 0.05 * fmax(fabs(fwd), fabs(bwd)) + 1e-3;
        kinks += (size_t)kink[i];
    }
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < in; i++) scale = fmax(scale, fmax(fabs(g[i]), fabs(num[i])));
    for (size_t i = 0; i < in; i++) {
        if (kink[i]) continue;
        double d = fabs(g[i] - num[i]) / fmax(1e-2 * scale, fmax(fabs(g[i]), fabs(num[i])));
        if (!isfinite(d)) d = INFINITY;
        if (d > worst) worst = d;
    }
    if (scale == 0.0 || kinks > in / 10) worst = INFINITY;  /* zero everywhere, or kinks everywhere: nothing tested */
    free(kink);
    free(x); free(r); free(g); free(num);
    return worst;
}

static void check_input_grad(void) {
    /* Steps of 1e-2 on inputs in [-1, 1] (float32 differences of an objective of size ~1 need
     * them that large); the values whose step crosses a ReLU's or a max-pool's kink are left
     * out by input_grad_err. */
    struct { const char *spec; int c, h, w, training, chain; double eps, tol; } cases[] = {
        {"dense16,relu,dense12,relu,dense", 1, 3, 4, 1, 1, 1e-2, 3e-2},
        {"dense16,gelu,dense", 1, 3, 4, 1, 0, 1e-2, 1e-2},
        {"conv4k3p1,bn,gelu,avgpool2,conv6k3p1,bn,gelu,gap,flatten,dense", 2, 6, 6, 1, 0, 1e-2, 3e-2},
        {"conv4k3p1,bn,gelu,avgpool2,conv6k3p1,bn,gelu,gap,flatten,dense", 2, 6, 6, 0, 0, 1e-2, 2e-2},
        {"conv4k3p1,bn,relu,maxpool2,flatten,dense", 1, 6, 6, 0, 0, 1e-2, 3e-2},
        {"conv4k3p1,bn,relu,maxpool2,flatten,dense", 1, 6, 6, 1, 0, 1e-2, 3e-2},
        {"conv4k3p1,@r,bn,gelu,conv4k3p1,add@r,scale0.5,gap,flatten,dense", 3, 5, 5, 1, 0, 1e-2, 2e-2},
        {"conv6k2s2,gelu,conv4k3p1b0,bn,gelu,flatten,dense", 3, 6, 6, 1, 0, 1e-2, 2e-2},
        /* a projection shortcut: a second path from @x (recall), joined by add@m */
        {"conv4k3p1,bn,gelu,@x,conv6k3s2p1b0,bn,gelu,conv6k3p1b0,bn,@m,^x,conv6k1s2b0,bn,add@m,gelu,gap,flatten,dense",
         2, 6, 6, 1, 0, 1e-2, 2e-2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        nnl_model *m = make(cases[t].spec, cases[t].c, cases[t].h, cases[t].w, 3, 4);
        if (cases[t].chain) CHECK_MSG(m->chain == 1, "%s: expected the dense-chain path", cases[t].spec);
        double e = input_grad_err(m, 4, cases[t].training, cases[t].eps);
        printf("input gradient %-62s %s: %.2e\n", cases[t].spec, cases[t].training ? "train" : "eval ", e);
        CHECK_MSG(e < cases[t].tol, "%s: input gradient error %.3e", cases[t].spec, e);
        if (cases[t].chain) {
            /* the chain's input gradient equals the layer-by-layer one on the same batch */
            float x[4 * 12], r[4 * 3], g[4 * 12];
            for (int i = 0; i < 48; i++) x[i] = urand(-1.0f, 1.0f);
            for (int i = 0; i < 12; i++) r[i] = urand(-1.0f, 1.0f);
            for (int pass = 0; pass < 2; pass++) {
                m->chain = !pass;
                nnl_model_forward(m, x, 4, 1, 1, 1, 0.0f);
                nnl_model_backward_fresh(m, r, 4);
                double d = 0.0;
                for (int i = 0; i < 48; i++) {
                    if (pass) d = fmax(d, fabs(m->dacts[0][i] - g[i]));
                    else g[i] = m->dacts[0][i];
                }
                if (pass) CHECK_MSG(d < 1e-5, "%s: chain and layers differ by %.3e", cases[t].spec, d);
            }
        }
        nnl_model_free(m);
    }
    /* without input_grad, nothing is promised and nothing is returned */
    nnl_model *m = make("dense8,relu,dense", 1, 2, 2, 3, 2);
    CHECK(nnl_model_input_grad(m) == NULL);
    nnl_model_free(m);
}

/* Named activations are the real values, through the fold and the dense chain. */
static void check_taps(void) {
    int n = 5;
    /* a name on a batch-norm's output keeps it from being folded with its ReLU */
    nnl_model *a = make("conv4k3p1,bn,@g,relu,maxpool2,flatten,dense", 2, 6, 6, 3, n);
    nnl_model *b = make("conv4k3p1,bn,relu,maxpool2,flatten,dense", 2, 6, 6, 3, n);
    memcpy(b->params, a->params, a->nparams * sizeof(float));
    memcpy(b->state, a->state, a->nstate * sizeof(float));
    CHECK(a->layers[1].relu == 0 && b->layers[1].relu == 1);
    size_t in = (size_t)n * 2 * 36;
    float *x = malloc(in * sizeof *x);
    for (size_t i = 0; i < in; i++) x[i] = urand(-1.0f, 1.0f);
    for (int training = 0; training < 2; training++) {
        const float *za = nnl_model_forward(a, x, n, training, 1, 1, 0.0f);
        const float *zb = nnl_model_forward(b, x, n, training, 1, 1, 0.0f);
        CHECK(memcmp(za, zb, (size_t)n * 3 * sizeof(float)) == 0);
        int c, h, w;
        const float *g = nnl_model_act(a, "g", &c, &h, &w);
        CHECK(g && c == 4 && h == 6 && w == 6);
        /* the batch-norm's output: some values negative (before the ReLU), and the ReLU's
         * output is max(0, g) */
        int neg = 0, same = 1;
        for (size_t i = 0; g && i < (size_t)n * 4 * 36; i++) {
            neg += g[i] < 0.0f;
            same &= a->acts[3][i] == (g[i] > 0.0f ? g[i] : 0.0f);
        }
        CHECK(neg > 0 && same);
    }
    CHECK(nnl_model_act(a, "nope", NULL, NULL, NULL) == NULL);
    free(x);
    nnl_model_free(a); nnl_model_free(b);
    /* the dense chain leaves a ReLU's input unwritten: a name there turns the chain off */
    nnl_model *c1 = make("dense8,@pre,relu,dense", 1, 2, 3, 3, n);
    nnl_model *c2 = make("dense8,relu,@post,dense", 1, 2, 3, 3, n);
    CHECK(c1->chain == 0 && c2->chain == 1);
    float xs[5 * 6];
    for (int i = 0; i < 30; i++) xs[i] = urand(-1.0f, 1.0f);
    nnl_model_forward(c1, xs, n, 1, 1, 1, 0.0f);
    const float *pre = nnl_model_act(c1, "pre", NULL, NULL, NULL);
    int neg = 0;
    for (int i = 0; i < n * 8; i++) neg += pre[i] < 0.0f;
    CHECK(neg > 0);
    nnl_model_forward(c2, xs, n, 1, 1, 1, 0.0f);
    const float *post = nnl_model_act(c2, "post", NULL, NULL, NULL);
    for (int i = 0; i < n * 8; i++) CHECK(post[i] >= 0.0f);
    nnl_model_free(c1); nnl_model_free(c2);
}

/* Forward over [0, g] then [g, L] is the whole forward; backward over [g, L] then [0, g] is the
 * whole backward (input and parameter gradients), also across a residual connection. */
static void check_ranges(void) {
    const char *spec = "conv4k3p1,bn,relu,@r,conv4k3p1,bn,@g,relu,conv4k3p1,add@r,gelu,gap,flatten,dense";
    int n = 3;
    nnl_model *m = make(spec, 2, 5, 5, 4, n);
    int g = nnl_model_tap_act(m, "g");
    CHECK(g == 5);
    size_t in = (size_t)n * 50, k = (size_t)n * 4;
    float *x = malloc(in * sizeof *x), *r = malloc(k * sizeof *r);
    for (size_t i = 0; i < in; i++) x[i] = urand(-1.0f, 1.0f);
    for (size_t i = 0; i < k; i++) r[i] = urand(-1.0f, 1.0f);
    nnl_model_set_input_grad(m, 1);
    const float *z = nnl_model_forward(m, x, n, 1, 1, 1, 0.0f);
    float zf[12], *dx = malloc(in * sizeof *dx), *gr = malloc(m->nparams * sizeof *gr);
    memcpy(zf, z, k * sizeof *zf);
    nnl_model_backward_fresh(m, r, n);
    memcpy(dx, m->dacts[0], in * sizeof *dx);
    memcpy(gr, m->grads, m->nparams * sizeof *gr);

    nnl_pass P = nnl_model_pass(m, n, 1, 1, 1, 0.0f);
    memcpy(m->acts[0], x, in * sizeof *x);
    nnl_model_forward_range(m, &P, 0, g);
    nnl_model_forward_range(m, &P, g, m->nlayers);
    CHECK(memcmp(m->acts[m->nlayers], zf, k * sizeof *zf) == 0);
    nnl_model_zero_grad(m);
    memcpy(m->dacts[m->nlayers], r, k * sizeof *r);
    nnl_model_backward_range(m, &P, g, m->nlayers);
    nnl_model_backward_range(m, &P, 0, g);
    double worst = 0.0;
    for (size_t i = 0; i < in; i++) worst = fmax(worst, fabs(m->dacts[0][i] - dx[i]));
    for (size_t i = 0; i < m->nparams; i++) worst = fmax(worst, fabs(m->grads[i] - gr[i]));
    /* the same sums in the same order: the fold is the only difference (none at g) */
    CHECK_MSG(worst < 1e-5, "range passes differ from the whole pass by %.3e", worst);
    free(x); free(r); free(dx); free(gr);
    nnl_model_free(m);
}

/* n 6x6 images in 3 classes: class k has a bright band 2k + 2 columns wide. */
static nnl_dataset bars(int n) {
    nnl_dataset ds = {0};
    ds.n = n; ds.c = 1; ds.h = 6; ds.w = 6; ds.nclass = 3;
    ds.pixels = malloc((size_t)n * 36);
    ds.labels = malloc((size_t)n * sizeof *ds.labels);
    for (int i = 0; i < n; i++) {
        ds.labels[i] = i % 3;
        for (int j = 0; j < 36; j++) ds.pixels[(size_t)i * 36 + j] = (uint8_t)(((j % 6) < 2 * (i % 3) + 2 ? 200 : 20) + i % 7);
    }
    return ds;
}

/* Frozen layers: parameters and running statistics unchanged by training, bit for bit; the
 * rest trains; their batch-norm runs on its running statistics; the gradient still reaches
 * the input. */
static void check_freeze(void) {
    nnl_dataset ds = bars(64);
    nnl_model *m = make("conv4k3p1,bn,relu,maxpool2,@gate,conv4k3p1,bn,relu,flatten,dense", 1, 6, 6, 3, 16);
    EXPECT_FAIL(nnl_model_freeze(m, "tail"), "no activation named 'tail'");
    CHECK(nnl_model_freeze(m, "gate") == NNL_OK);
    CHECK(nnl_model_frozen_layers(m) == 4);
    size_t head = m->layers[4].w_off, hstate = m->layers[4].s_off;
    float *p0 = malloc(m->nparams * sizeof *p0), *s0 = malloc(m->nstate * sizeof *s0);
    memcpy(p0, m->params, m->nparams * sizeof *p0);
    memcpy(s0, m->state, m->nstate * sizeof *s0);
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.epochs = 2; o.batch = 16; o.lr = 0.05f; o.weight_decay = 0.01f; o.compute_norm = 0;
    CHECK(nnl_train(m, &ds, NULL, &o, NULL) == NNL_OK);
    CHECK(memcmp(m->params, p0, head * sizeof *p0) == 0);
    CHECK(memcmp(m->state, s0, hstate * sizeof *s0) == 0);
    int moved = 0, smoved = 0;
    for (size_t i = head; i < m->nparams; i++) moved += m->params[i] != p0[i];
    for (size_t i = hstate; i < m->nstate; i++) smoved += m->state[i] != s0[i];
    CHECK(moved > 0 && smoved > 0);
    /* with Adam too (its update is not zero for a zero gradient: the rate must be) */
    o.optimizer = NNL_OPT_ADAM; o.lr = 1e-2f;
    CHECK(nnl_train(m, &ds, NULL, &o, NULL) == NNL_OK);
    CHECK(memcmp(m->params, p0, head * sizeof *p0) == 0);
    /* the frozen batch-norm runs in eval mode in a training pass: the head's output of an
     * image does not depend on the rest of the batch */
    float x[2 * 36];
    for (int i = 0; i < 72; i++) x[i] = urand(-1.0f, 1.0f);
    nnl_model_forward(m, x, 2, 1, 1, 1, 0.1f);
    float first[4 * 9];
    memcpy(first, nnl_model_act(m, "gate", NULL, NULL, NULL), sizeof first);
    for (int i = 36; i < 72; i++) x[i] = urand(-3.0f, 3.0f);
    nnl_model_forward(m, x, 2, 1, 1, 1, 0.1f);
    CHECK(memcmp(first, nnl_model_act(m, "gate", NULL, NULL, NULL), sizeof first) == 0);
    CHECK(memcmp(m->state, s0, hstate * sizeof *s0) == 0);
    /* and the input gradient through the frozen head is right */
    double e = input_grad_err(m, 4, 1, 1e-3);  /* a trained ReLU network: small steps, few kinks */
    CHECK_MSG(e < 5e-2, "input gradient through frozen layers: %.3e", e);
    CHECK(nnl_model_freeze(m, NULL) == NNL_OK && nnl_model_frozen_layers(m) == 0);
    /* a dense chain with a frozen layer runs layer by layer */
    nnl_model *c = make("dense8,relu,@h,dense", 1, 6, 6, 3, 16);
    CHECK(c->chain == 1);
    CHECK(nnl_model_freeze(c, "h") == NNL_OK);
    CHECK(c->chain == 0);
    free(p0); free(s0);
    nnl_model_free(m); nnl_model_free(c);
    free(ds.pixels); free(ds.labels);
}

/* A loss callback that sees the batch's named activation and computes the default loss. */
static int g_loss_calls, g_loss_saw_tap;
static double xent_loss(void *user, const nnl_model *m, const float *logits, const int32_t *labels, const float *soft,
                        int n, float *dlogits, int64_t *correct) {
    (void)user;
    int c, h, w;
    g_loss_calls++;
    g_loss_saw_tap += nnl_model_act(m, "gate", &c, &h, &w) != NULL && c == 4 && h == 3 && w == 3;
    return nnl_softmax_xent(logits, labels, soft, n, m->nclass, 0.0f, dlogits, correct);
}

/* The open loop driven by hand gives nnl_train's model bit for bit; a loss callback is called
 * once per batch, sees the named activations, and the default loss through it changes nothing. */
static void check_open_loop(void) {
    nnl_dataset ds = bars(96);
    const char *spec = "conv4k3p1,bn,relu,maxpool2,@gate,flatten,dense8,relu,dense";
    nnl_model *a = make(spec, 1, 6, 6, 3, 16), *b = make(spec, 1, 6, 6, 3, 16), *c = make(spec, 1, 6, 6, 3, 16);
    memcpy(b->params, a->params, a->nparams * sizeof(float));
    memcpy(c->params, a->params, a->nparams * sizeof(float));
    memcpy(b->state, a->state, a->nstate * sizeof(float));
    memcpy(c->state, a->state, a->nstate * sizeof(float));
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.epochs_exact = 2.5; o.epochs = 3; o.batch = 16; o.compute_norm = 0;
    CHECK(nnl_train(a, &ds, NULL, &o, NULL) == NNL_OK);
    nnl_trainer *t;
    CHECK(nnl_trainer_init(&t, b, &ds, &o) == NNL_OK);
    int finished = 0, done, steps = 0, epochs = 0;
    while (!finished) {
        do { CHECK(nnl_trainer_step(t, &done) == NNL_OK); steps++; } while (!done);
        CHECK(nnl_trainer_epoch(t, NULL, &finished) == NNL_OK);
        epochs++;
    }
    nnl_trainer_free(t);
    CHECK(epochs == 3 && steps == 15);  /* 6 batches per epoch, 2.5 epochs */
    CHECK(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0);
    o.loss = xent_loss;
    CHECK(nnl_train(c, &ds, NULL, &o, NULL) == NNL_OK);
    CHECK(g_loss_calls == 15 && g_loss_saw_tap == 15);
    CHECK(memcmp(a->params, c->params, a->nparams * sizeof(float)) == 0);
    nnl_model_free(a); nnl_model_free(b); nnl_model_free(c);
    free(ds.pixels); free(ds.labels);
}

int main(void) {
    nnl_set_threads(2);
    check_input_grad();
    check_taps();
    check_ranges();
    check_freeze();
    check_open_loop();
    return nnl_test_finish("test_engine");
}
