/* Training end to end on synthetic data, the optimizers' update rules and the
 * learning-rate schedules. */
#include "nn/model.h"
#include "synth.h"
#include "testutil.h"
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
static void test_backward_fresh(void) {
    nnl_model *m = NULL;
    CHECK(nnl_model_create(&m, "conv4k3p1,bn,relu,maxpool2,dense16,relu,dropout0.3,dense", 2, 8, 8, 3) == NNL_OK);
    if (!m || nnl_model_prepare(m, 8)) return;
    nnl_model_init(m, 2);
    float x[8 * 2 * 8 * 8], dl[8 * 3];
    nnl_rng r = {5};
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = nnl_rng_normal(&r);
    for (size_t i = 0; i < sizeof dl / sizeof *dl; i++) dl[i] = nnl_rng_normal(&r);
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

int main(void) {
    nnl_set_threads(2);
    test_learns();
    test_backward_fresh();
    test_sgd_rule();
    test_schedules();
    test_bad_options();
    return nnl_test_finish("test_train");
}
