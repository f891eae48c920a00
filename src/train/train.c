/* The training loop. Everything a batch needs is allocated before the first batch. */
#include "batch.h"
#include "lookahead.h"
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

static int check_opts(const nnl_train_opts *o) {
    if (o->epochs < 1 || o->epochs > 100000) return nnl_fail(NNL_ERR_ARG, "epochs %d must be 1..100000", o->epochs);
    if (o->batch < 1 || o->batch > 65536) return nnl_fail(NNL_ERR_ARG, "batch size %d must be 1..65536", o->batch);
    if (!(o->lr > 0.0f) || !isfinite(o->lr)) return nnl_fail(NNL_ERR_ARG, "learning rate %g must be > 0", (double)o->lr);
    if (!(o->momentum >= 0.0f && o->momentum < 1.0f)) return nnl_fail(NNL_ERR_ARG, "momentum %g must be in [0, 1)", (double)o->momentum);
    if (!(o->weight_decay >= 0.0f)) return nnl_fail(NNL_ERR_ARG, "weight decay %g must be >= 0", (double)o->weight_decay);
    if (o->nesterov && o->momentum == 0.0f) return nnl_fail(NNL_ERR_ARG, "Nesterov momentum needs a momentum > 0");
    if (!(o->label_smoothing >= 0.0f && o->label_smoothing < 1.0f)) return nnl_fail(NNL_ERR_ARG, "label smoothing %g must be in [0, 1)", (double)o->label_smoothing);
    if (!(o->warmup >= 0.0f && o->warmup <= o->epochs)) return nnl_fail(NNL_ERR_ARG, "warm-up %g must be between 0 and the number of epochs", (double)o->warmup);
    if (o->schedule < NNL_SCHED_CONSTANT || o->schedule > NNL_SCHED_TRIANGLE) return nnl_fail(NNL_ERR_ARG, "unknown schedule %d", o->schedule);
    if (o->schedule == NNL_SCHED_TRIANGLE && !(o->sched_peak >= 0.0f && o->sched_peak <= 1.0f && o->sched_start >= 0.0f && o->sched_end >= 0.0f))
        return nnl_fail(NNL_ERR_ARG, "triangle schedule: start and end must be >= 0 and the peak a fraction 0..1");
    if (o->epochs_exact < 0.0 || o->epochs_exact > 100000.0) return nnl_fail(NNL_ERR_ARG, "epochs %g must be 0..100000", o->epochs_exact);
    if (o->augment_translate < 0 || o->augment_translate > 16) return nnl_fail(NNL_ERR_ARG, "translation %d must be 0..16", o->augment_translate);
    if (o->augment_translate && o->augment_crop) return nnl_fail(NNL_ERR_ARG, "give a random crop or a translation, not both");
    if (o->augment_flip < 0 || o->augment_flip > 2) return nnl_fail(NNL_ERR_ARG, "unknown flip mode %d", o->augment_flip);
    if (o->ema_every < 0 || (o->ema_every && !(o->ema_decay > 0.0f && o->ema_decay < 1.0f)))
        return nnl_fail(NNL_ERR_ARG, "Lookahead: every %d steps, decay %g: the decay must be in (0, 1)", o->ema_every, (double)o->ema_decay);
    if (o->augment_crop < 0 || o->augment_crop > 64) return nnl_fail(NNL_ERR_ARG, "crop padding %d must be 0..64", o->augment_crop);
    return NNL_OK;
}

static void shuffle(int64_t *perm, int64_t n, uint64_t seed, int epoch) {
    nnl_rng r = nnl_rng_derive(seed, 0x5eed0000ULL + (uint64_t)epoch);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nnl_rng_below(&r, (uint64_t)i + 1);
        int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

typedef struct { const nnl_optim *opt; float *params; const float *grads; float lr; } update_ctx;
static void update_slice(void *user, size_t begin, size_t end) {
    const update_ctx *u = user;
    nnl_optim_update_range(u->opt, u->params, u->grads, u->lr, begin, end);
}


int nnl_train(nnl_model *m, const nnl_dataset *train, const nnl_dataset *test,
              const nnl_train_opts *o, nnl_train_result *res) {
    int st;
    if ((st = check_opts(o)) || (st = nnl_check_data(m, train, "training"))) return st;
    if (test && (st = nnl_check_data(m, test, "test"))) return st;
    int bs = o->batch < train->n ? o->batch : (int)train->n;
    if ((st = nnl_model_prepare(m, bs))) return st;
    if (o->compute_norm) {
        float mean[NNL_MAX_CHANNELS], std[NNL_MAX_CHANNELS];
        nnl_dataset_stats(train, mean, std);
        for (int k = 0; k < train->c; k++) if (std[k] < 1e-6f) std[k] = 1.0f;
        if ((st = nnl_model_set_norm(m, mean, std))) return st;
    }
    nnl_optim opt;
    nnl_batcher b;
    int64_t *perm = malloc((size_t)train->n * sizeof *perm);
    float *dlogits = nnl_alloc((size_t)bs * m->nclass * sizeof(float));
    if (!perm || !dlogits) { free(perm); nnl_free(dlogits); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    if ((st = nnl_optim_init(&opt, m->nparams, o))) { free(perm); nnl_free(dlogits); return st; }
    if ((st = nnl_batcher_init(&b, bs, train))) { nnl_optim_free(&opt); free(perm); nnl_free(dlogits); return st; }

    int64_t batches = o->drop_last && train->n >= bs ? train->n / bs : (train->n + bs - 1) / bs;
    /* A fractional last epoch (airbench's 9.9) stops after its share of the steps. */
    int epochs = o->epochs;
    uint64_t total_steps = (uint64_t)batches * (uint64_t)epochs;
    if (o->epochs_exact > 0.0) {
        epochs = (int)ceil(o->epochs_exact);
        total_steps = (uint64_t)ceil((double)batches * o->epochs_exact);
    }
    double t0 = nnl_now(), test_acc = -1.0, loss_sum = 0.0;
    int64_t correct = 0, seen = 0, total_seen = 0;
    uint64_t step = 0;
    nnl_lookahead la;
    if ((st = nnl_lookahead_init(&la, o, m, total_steps))) {
        nnl_batcher_free(&b); nnl_optim_free(&opt); free(perm); nnl_free(dlogits);
        return st;
    }
    for (int ep = 0; ep < epochs && st == NNL_OK; ep++) {
        shuffle(perm, train->n, o->seed, ep);
        loss_sum = 0.0; correct = 0; seen = 0;
        uint64_t ep_seed = nnl_mix64(o->seed ^ (0xa0a0ULL + (uint64_t)ep));
        nnl_augment aug = {o->augment_crop, o->augment_translate, o->augment_flip, ep, o->seed};
        nnl_optim_segments(&opt, m, o, ep);
        for (int64_t bi = 0; bi < batches && step < total_steps; bi++, step++) {
            int n = (int)(train->n - bi * bs < bs ? train->n - bi * bs : bs);
            nnl_batcher_fill(&b, train, perm + bi * bs, n, &aug, o->hooks, ep_seed);
            nnl_model_input(m, b.px, n, o->hooks, 0, perm + bi * bs, m->acts[0]);
            const float *z = nnl_model_forward(m, m->acts[0], n, 1, o->seed, step, o->bn_momentum);
            double loss = nnl_softmax_xent(z, b.labels, b.has_soft ? b.soft : NULL, n, m->nclass,
                                           o->label_smoothing, dlogits, &correct);
            if (!isfinite(loss)) {
                st = nnl_fail(NNL_ERR_NUMERIC, "training diverged at epoch %d, batch %lld: the loss is %g (try a lower --lr)",
                              ep + 1, (long long)bi + 1, loss);
                break;
            }
            double lr = o->schedule == NNL_SCHED_TRIANGLE ? nnl_schedule_lr(o, (double)step / (double)total_steps)
                                                          : nnl_schedule_lr(o, ep + (double)bi / batches);
            if (m->chain) {
                /* dense-only networks: backward and the update in one parallel region */
                memcpy(m->dacts[m->nlayers], dlogits, (size_t)n * m->nclass * sizeof(float));
                if (nnl_optim_fusable(&opt)) {
                    nnl_sgd_fused f = nnl_optim_fused_begin(&opt, m->params, (float)lr);
                    nnl_dense_chain_backward(m, n, &f, NULL, NULL);
                } else {
                    nnl_optim_begin_step(&opt);
                    update_ctx u = {&opt, m->params, m->grads, (float)lr};
                    nnl_dense_chain_backward(m, n, NULL, update_slice, &u);
                }
            } else {
                nnl_model_backward_fresh(m, dlogits, n);
                nnl_optim_step(&opt, m->params, m->grads, (float)lr);
            }
            /* Lookahead: counted in steps done, as airbench counts them. */
            if ((st = nnl_lookahead_step(&la, m, step + 1, (double)ep))) break;
            loss_sum += loss * n; seen += n; total_seen += n;
            if (o->progress) {
                double el = nnl_now() - t0, ips = total_seen / (el > 1e-9 ? el : 1e-9);
                double left = (double)train->n * o->epochs - total_seen;
                nnl_progress p = {ep + 1, o->epochs, bi + 1, batches, loss_sum / seen, (double)correct / seen,
                                  ips, left / (ips > 0 ? ips : 1), lr, 0, -1.0, 0.0};
                o->progress(&p, o->progress_user);
            }
        }
        if (st) break;
        /* The run ends on the averaged weights (airbench: a last update with decay 1, w = ema);
         * between updates, and at the other epochs' ends, the weights are the optimizer's. */
        if (ep == epochs - 1) nnl_lookahead_finish(&la, m);
        double test_loss = 0.0;
        if (test) {
            nnl_eval ev;
            if ((st = nnl_evaluate(m, test, o->eval_hooks, bs, &ev))) break;
            test_acc = nnl_eval_accuracy(&ev);
            test_loss = ev.loss;
            nnl_eval_free(&ev);
        }
        if (o->epoch_end && (st = o->epoch_end(m, ep + 1, o->epoch_end_user))) break;
        nnl_model_params_changed(m);  /* the hook, or the evaluation's callers, may have set weights */
        if (o->progress) {
            double el = nnl_now() - t0, ips = total_seen / (el > 1e-9 ? el : 1e-9);
            double left = (double)train->n * (o->epochs - ep - 1);
            nnl_progress p = {ep + 1, o->epochs, batches, batches, loss_sum / seen, (double)correct / seen,
                              ips, left / (ips > 0 ? ips : 1), nnl_schedule_lr(o, ep + 1.0), 1, test_acc, test_loss};
            o->progress(&p, o->progress_user);
        }
    }
    double secs = nnl_now() - t0;
    if (res) {
        res->final_loss = seen ? loss_sum / seen : 0.0;
        res->final_acc = seen ? (double)correct / seen : 0.0;
        res->test_acc = test_acc;
        res->seconds = secs;
        res->images_per_s = total_seen / (secs > 1e-9 ? secs : 1e-9);
    }
    nnl_batcher_free(&b);
    nnl_optim_free(&opt);
    nnl_lookahead_free(&la);
    free(perm);
    nnl_free(dlogits);
    return st;
}
