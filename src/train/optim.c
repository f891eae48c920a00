/* SGD (momentum, Nesterov, L2 weight decay) and Adam, as torch.optim defines them,
 * so that a few steps match PyTorch on identical weights. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int nnl_optim_init(nnl_optim *o, size_t n, const nnl_train_opts *opts) {
    memset(o, 0, sizeof *o);
    o->kind = opts->optimizer;
    if (o->kind != NNL_OPT_SGD && o->kind != NNL_OPT_ADAM)
        return nnl_fail(NNL_ERR_ARG, "unknown optimizer %d", o->kind);
    o->momentum = opts->momentum; o->weight_decay = opts->weight_decay;
    o->beta1 = opts->beta1; o->beta2 = opts->beta2; o->eps = opts->eps;
    o->nesterov = opts->nesterov;
    o->n = n;
    o->m = nnl_alloc(n * sizeof(float));
    if (o->kind == NNL_OPT_ADAM) o->v = nnl_alloc(n * sizeof(float));
    if (!o->m || (o->kind == NNL_OPT_ADAM && !o->v)) {
        nnl_optim_free(o);
        return nnl_fail(NNL_ERR_NOMEM, "out of memory for the optimizer state");
    }
    return NNL_OK;
}

void nnl_optim_free(nnl_optim *o) {
    nnl_free(o->m); nnl_free(o->v);
    free(o->seg);
    o->m = o->v = NULL;
    o->seg = NULL;
    o->nseg = 0;
}

int nnl_optim_segments(nnl_optim *o, const nnl_model *m, const nnl_train_opts *opts, double epoch) {
    free(o->seg);
    o->seg = NULL;
    o->nseg = 0;
    float bnb = opts->bn_bias_lr > 0.0f ? opts->bn_bias_lr : 1.0f;
    int special = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        special |= i < m->frozen || L->fixed_w || (L->kind == NNL_L_BATCHNORM && bnb != 1.0f) ||
                   (L->whiten && opts->whiten_bias_epochs > 0.0f && epoch >= opts->whiten_bias_epochs);
    }
    if (!special) return 0;
    o->seg = malloc((size_t)m->nlayers * 2 * sizeof *o->seg);
    if (!o->seg) return 0; /* out of memory: plain rates rather than no training */
    for (int i = 0; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        float wl = L->fixed_w ? 0.0f : 1.0f, bl = 1.0f, bw = 1.0f;
        if (L->kind == NNL_L_BATCHNORM && bnb != 1.0f) { bl = bnb; bw = 1.0f / bnb; }
        if (L->whiten && opts->whiten_bias_epochs > 0.0f && epoch >= opts->whiten_bias_epochs) bl = 0.0f;
        if (i < m->frozen) wl = bl = bw = 0.0f;  /* frozen: no step, no decay */
        if (L->w_n) o->seg[o->nseg++] = (nnl_optim_seg){L->w_off, L->w_off + L->w_n, wl, wl};
        if (L->b_n) o->seg[o->nseg++] = (nnl_optim_seg){L->b_off, L->b_off + L->b_n, bl, bw};
    }
    return 1;
}

void nnl_optim_begin_step(nnl_optim *o) { o->t++; }

/* Element-wise, so any split of [begin, end) gives the same bits. */
static void update(const nnl_optim *o, float *params, const float *grads, float lr, float wd, size_t begin,
                   size_t end) {
    float mu = o->momentum;
    if (o->kind == NNL_OPT_SGD) {
        /* torch: d = g + wd*p; buf = mu*buf + d (buf = d on the first step); p -= lr*(nesterov ? d + mu*buf : buf) */
        int first = o->t == 1;
        float *buf = o->m;
        for (size_t i = begin; i < end; i++) {
            float d = grads[i] + wd * params[i];
            if (mu != 0.0f) {
                float b = first ? d : mu * buf[i] + d;
                buf[i] = b;
                d = o->nesterov ? d + mu * b : b;
            }
            params[i] -= lr * d;
        }
        return;
    }
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    float bc1 = 1.0f - powf(b1, (float)o->t), bc2 = 1.0f - powf(b2, (float)o->t);
    float step = lr / bc1, sbc2 = sqrtf(bc2);
    float *m = o->m, *v = o->v;
    for (size_t i = begin; i < end; i++) {
        float g = grads[i] + wd * params[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= step * m[i] / (sqrtf(v[i]) / sbc2 + eps);
    }
}

/* Fused SGD. torch's step is d = g + wd*w; buf = mu*buf + d; w -= lr*buf. Between steps
 * m holds mu*buf + wd*w instead of buf, so that the next gradient can be added straight
 * into it, which makes it buf, and one pass finishes the step (nnl_dense_chain_backward):
 * no gradient array is written and read back. Nesterov needs d on its own, Adam g. */
int nnl_optim_fusable(const nnl_optim *o) {
    return o->kind == NNL_OPT_SGD && !o->nesterov;
}

nnl_sgd_fused nnl_optim_fused_begin(nnl_optim *o, const float *params, float lr) {
    o->t++;
    if (o->t == 1) {   /* buf starts at zero */
        float wd = o->weight_decay, *m = o->m;
        #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (o->n > 100000)
        for (size_t i = 0; i < o->n; i++) m[i] = wd * params[i];
    }
    return (nnl_sgd_fused){o->m, lr, o->momentum, o->weight_decay, o->t == 1};
}

void nnl_optim_update_range(const nnl_optim *o, float *params, const float *grads, float lr, size_t begin,
                            size_t end) {
    update(o, params, grads, lr, o->weight_decay, begin, end);
}

static void step_range(nnl_optim *o, float *params, const float *grads, float lr, float wd, size_t a0, size_t a1) {
    size_t n = a1 - a0, chunk = 16384;
    int64_t chunks = (int64_t)((n + chunk - 1) / chunk);
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n > 100000)
    for (int64_t c = 0; c < chunks; c++) {
        size_t a = a0 + (size_t)c * chunk, b = a + chunk < a1 ? a + chunk : a1;
        update(o, params, grads, lr, wd, a, b);
    }
}

void nnl_optim_step(nnl_optim *o, float *params, const float *grads, float lr) {
    nnl_optim_begin_step(o);
    if (!o->nseg) { step_range(o, params, grads, lr, o->weight_decay, 0, o->n); return; }
    /* A frozen range is left alone: no update, no decay, its momentum untouched. */
    for (int s = 0; s < o->nseg; s++)
        if (o->seg[s].lr > 0.0f)
            step_range(o, params, grads, lr * o->seg[s].lr, o->weight_decay * o->seg[s].wd, o->seg[s].begin, o->seg[s].end);
}

double nnl_schedule_lr(const nnl_train_opts *o, double epoch) {
    double lr = o->lr;
    if (o->warmup > 0.0f && epoch < o->warmup) return lr * (epoch + 1e-9) / o->warmup;
    switch (o->schedule) {
    case NNL_SCHED_STEP: {
        int k = o->step_size > 0 ? (int)(epoch / o->step_size) : 0;
        for (int i = 0; i < k; i++) lr *= o->gamma;
        return lr;
    }
    case NNL_SCHED_TRIANGLE: {
        /* epoch here is the fraction of the run done (nnl_train passes step / steps). */
        double t = epoch, pk = o->sched_peak;
        if (t <= pk) return lr * (o->sched_start + (1.0 - o->sched_start) * (pk > 0 ? t / pk : 1.0));
        return lr * (1.0 + (o->sched_end - 1.0) * (pk < 1 ? (t - pk) / (1.0 - pk) : 1.0));
    }
    case NNL_SCHED_COSINE: {
        double w = o->warmup > 0.0f ? o->warmup : 0.0;
        double span = o->epochs - w;
        double t = span > 0 ? (epoch - w) / span : 1.0;
        if (t > 1.0) t = 1.0;
        return 0.5 * lr * (1.0 + cos(3.14159265358979323846 * t));
    }
    default: return lr;
    }
}
