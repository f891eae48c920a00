/* The open training loop: nnl_train one step at a time. Everything a batch needs is allocated
 * in init, before the first batch. A caller that adds its own objective (o->loss) or its own
 * work between steps drives it; nnl_train (train.c) is a short loop over it. */
#include "batch.h"
#include "lookahead.h"
#include "optim.h"
#include "step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nnl_trainer {
    nnl_model *m;
    const nnl_dataset *train;
    nnl_train_opts o;
    nnl_optim opt;
    nnl_batcher b;
    nnl_lookahead la;
    int64_t *perm;
    float *dlogits;
    int bs, epochs, ep;           /* ep: the epoch being trained (0-based) */
    int64_t batches, bi;          /* batches per epoch; the next one in this epoch */
    uint64_t step, total_steps, ep_seed;
    double t0, loss_sum, lr, test_acc, test_loss;
    int64_t correct, seen, total_seen;
    int finished;
};

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

/* The epoch's order, seed and optimizer segments. */
static void begin_epoch(nnl_trainer *t) {
    shuffle(t->perm, t->train->n, t->o.seed, t->ep);
    t->loss_sum = 0.0; t->correct = 0; t->seen = 0; t->bi = 0;
    t->ep_seed = nnl_mix64(t->o.seed ^ (0xa0a0ULL + (uint64_t)t->ep));
    nnl_optim_segments(&t->opt, t->m, &t->o, t->ep);
}

void nnl_trainer_free(nnl_trainer *t) {
    if (!t) return;
    nnl_batcher_free(&t->b);
    nnl_optim_free(&t->opt);
    nnl_lookahead_free(&t->la);
    free(t->perm);
    nnl_free(t->dlogits);
    free(t);
}

int nnl_trainer_init(nnl_trainer **out, nnl_model *m, const nnl_dataset *train, const nnl_train_opts *o) {
    *out = NULL;
    int st;
    if ((st = check_opts(o)) || (st = nnl_check_data(m, train, "training"))) return st;
    nnl_trainer *t = calloc(1, sizeof *t);
    if (!t) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    t->m = m; t->train = train; t->o = *o;
    t->bs = o->batch < train->n ? o->batch : (int)train->n;
    t->test_acc = -1.0;
    if ((st = nnl_model_prepare(m, t->bs))) { free(t); return st; }
    if (o->compute_norm) {
        float mean[NNL_MAX_CHANNELS], std[NNL_MAX_CHANNELS];
        nnl_dataset_stats(train, mean, std);
        for (int k = 0; k < train->c; k++) if (std[k] < 1e-6f) std[k] = 1.0f;
        if ((st = nnl_model_set_norm(m, mean, std))) { free(t); return st; }
    }
    t->perm = malloc((size_t)train->n * sizeof *t->perm);
    t->dlogits = nnl_alloc((size_t)t->bs * m->nclass * sizeof(float));
    if (!t->perm || !t->dlogits) { nnl_trainer_free(t); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    if ((st = nnl_optim_init(&t->opt, m->nparams, o))) { free(t->perm); nnl_free(t->dlogits); free(t); return st; }
    if ((st = nnl_batcher_init(&t->b, t->bs, train))) { nnl_optim_free(&t->opt); free(t->perm); nnl_free(t->dlogits); free(t); return st; }
    t->batches = o->drop_last && train->n >= t->bs ? train->n / t->bs : (train->n + t->bs - 1) / t->bs;
    /* A fractional last epoch (airbench's 9.9) stops after its share of the steps. */
    t->epochs = o->epochs;
    t->total_steps = (uint64_t)t->batches * (uint64_t)t->epochs;
    if (o->epochs_exact > 0.0) {
        t->epochs = (int)ceil(o->epochs_exact);
        t->total_steps = (uint64_t)ceil((double)t->batches * o->epochs_exact);
    }
    if ((st = nnl_lookahead_init(&t->la, o, m, t->total_steps))) {
        nnl_batcher_free(&t->b); nnl_optim_free(&t->opt); free(t->perm); nnl_free(t->dlogits); free(t);
        return st;
    }
    t->t0 = nnl_now();
    begin_epoch(t);
    *out = t;
    return NNL_OK;
}

int nnl_trainer_step(nnl_trainer *t, int *epoch_done) {
    *epoch_done = 1;
    if (t->finished || t->bi >= t->batches || t->step >= t->total_steps) return NNL_OK;
    nnl_model *m = t->m;
    const nnl_train_opts *o = &t->o;
    int64_t bi = t->bi;
    int bs = t->bs, n = (int)(t->train->n - bi * bs < bs ? t->train->n - bi * bs : bs);
    nnl_augment aug = {o->augment_crop, o->augment_translate, o->augment_flip, t->ep, o->seed};
    nnl_batcher_fill(&t->b, t->train, t->perm + bi * bs, n, &aug, o->hooks, t->ep_seed);
    nnl_model_input(m, t->b.px, n, o->hooks, 0, t->perm + bi * bs, m->acts[0]);
    const float *z = nnl_model_forward(m, m->acts[0], n, 1, o->seed, t->step, o->bn_momentum);
    const float *soft = t->b.has_soft ? t->b.soft : NULL;
    double loss = o->loss ? o->loss(o->loss_user, m, z, t->b.labels, soft, n, t->dlogits, &t->correct)
                          : nnl_softmax_xent(z, t->b.labels, soft, n, m->nclass, o->label_smoothing, t->dlogits, &t->correct);
    if (!isfinite(loss))
        return nnl_fail(NNL_ERR_NUMERIC, "training diverged at epoch %d, batch %lld: the loss is %g (try a lower --lr)",
                        t->ep + 1, (long long)bi + 1, loss);
    double lr = o->schedule == NNL_SCHED_TRIANGLE ? nnl_schedule_lr(o, (double)t->step / (double)t->total_steps)
                                                  : nnl_schedule_lr(o, t->ep + (double)bi / t->batches);
    t->lr = lr;
    nnl_backward_step(m, &t->opt, t->dlogits, n, (float)lr);
    t->step++;
    t->bi++;
    /* Lookahead: counted in steps done, as airbench counts them. */
    int st = nnl_lookahead_step(&t->la, m, t->step, (double)t->ep);
    if (st) return st;
    t->loss_sum += loss * n; t->seen += n; t->total_seen += n;
    if (o->progress) {
        double el = nnl_now() - t->t0, ips = t->total_seen / (el > 1e-9 ? el : 1e-9);
        double left = (double)t->train->n * o->epochs - t->total_seen;
        nnl_progress p = {t->ep + 1, o->epochs, bi + 1, t->batches, t->loss_sum / t->seen, (double)t->correct / t->seen,
                          ips, left / (ips > 0 ? ips : 1), lr, 0, -1.0, 0.0};
        o->progress(&p, o->progress_user);
    }
    *epoch_done = t->bi >= t->batches || t->step >= t->total_steps;
    return NNL_OK;
}

int nnl_trainer_epoch(nnl_trainer *t, const nnl_dataset *test, int *finished) {
    nnl_model *m = t->m;
    const nnl_train_opts *o = &t->o;
    int st;
    /* The run ends on the averaged weights (airbench: a last update with decay 1, w = ema);
     * between updates, and at the other epochs' ends, the weights are the optimizer's. */
    int last = t->ep == t->epochs - 1;
    if (last) nnl_lookahead_finish(&t->la, m);
    if (test) {
        nnl_eval ev;
        if ((st = nnl_evaluate(m, test, o->eval_hooks, t->bs, &ev))) return st;
        t->test_acc = nnl_eval_accuracy(&ev);
        t->test_loss = ev.loss;
        nnl_eval_free(&ev);
    }
    if (o->epoch_end && (st = o->epoch_end(m, t->ep + 1, o->epoch_end_user))) return st;
    nnl_model_params_changed(m);  /* the hook, or the evaluation's callers, may have set weights */
    if (o->progress) {
        double el = nnl_now() - t->t0, ips = t->total_seen / (el > 1e-9 ? el : 1e-9);
        double left = (double)t->train->n * (o->epochs - t->ep - 1);
        nnl_progress p = {t->ep + 1, o->epochs, t->batches, t->batches, t->seen ? t->loss_sum / t->seen : 0.0,
                          t->seen ? (double)t->correct / t->seen : 0.0, ips, left / (ips > 0 ? ips : 1),
                          nnl_schedule_lr(o, t->ep + 1.0), 1, t->test_acc, t->test_loss};
        o->progress(&p, o->progress_user);
    }
    t->finished = last;
    *finished = last;
    if (!last) {
        t->ep++;
        begin_epoch(t);
    }
    return NNL_OK;
}

void nnl_trainer_result(const nnl_trainer *t, nnl_train_result *res) {
    double secs = nnl_now() - t->t0;
    res->final_loss = t->seen ? t->loss_sum / t->seen : 0.0;
    res->final_acc = t->seen ? (double)t->correct / t->seen : 0.0;
    res->test_acc = t->test_acc;
    res->seconds = secs;
    res->images_per_s = t->total_seen / (secs > 1e-9 ? secs : 1e-9);
}
