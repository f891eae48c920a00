/* nnl_train: the open training loop (trainer.c) run to its end. */
#include "batch.h"

#include <string.h>

void nnl_train_opts_default(nnl_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 10;
    o->batch = 128;
    o->lr = 0.01f;
    o->optimizer = NNL_OPT_SGD;
    o->momentum = 0.9f;
    o->weight_decay = 5e-4f;
    o->beta1 = 0.9f; o->beta2 = 0.999f; o->eps = 1e-8f;
    o->schedule = NNL_SCHED_COSINE;
    o->step_size = 10;
    o->gamma = 0.1f;
    o->bn_momentum = 0.1f;
    o->seed = 1;
    o->compute_norm = 1;
}

int nnl_train(nnl_model *m, const nnl_dataset *train, const nnl_dataset *test,
              const nnl_train_opts *o, nnl_train_result *res) {
    int st;
    if (test && (st = nnl_check_data(m, test, "test"))) return st;
    nnl_trainer *t;
    if ((st = nnl_trainer_init(&t, m, train, o))) return st;
    int finished = 0, done = 0;
    while (!st && !finished) {
        while (!(st = nnl_trainer_step(t, &done)) && !done) {}
        if (!st) st = nnl_trainer_epoch(t, test, &finished);
    }
    if (res) nnl_trainer_result(t, res);
    nnl_trainer_free(t);
    return st;
}
