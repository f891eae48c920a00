/* Lookahead (see lookahead.h). */
#include "lookahead.h"

#include <math.h>
#include <string.h>

static void start(nnl_lookahead *la, const nnl_model *m) {
    memcpy(la->ema, m->params, m->nparams * sizeof(float));
    memcpy(la->ema + m->nparams, m->state, m->nstate * sizeof(float));
}

/* ema += a (w - ema), then w = ema, over the parameters and the batch-norm statistics. */
static void move(float *ema, nnl_model *m, float a) {
    float *parts[2] = {m->params, m->state};
    size_t sizes[2] = {m->nparams, m->nstate}, off = 0;
    for (int k = 0; k < 2; k++) {
        float *w = parts[k], *e = ema + off;
        size_t n = sizes[k];
        #pragma omp parallel for schedule(static) num_threads(nnl_threads()) if (n > 100000)
        for (size_t i = 0; i < n; i++) {
            e[i] += a * (w[i] - e[i]);
            w[i] = e[i];
        }
        off += n;
    }
}

int nnl_lookahead_init(nnl_lookahead *la, const nnl_train_opts *o, const nnl_model *m, uint64_t total_steps) {
    memset(la, 0, sizeof *la);
    if (o->ema_every <= 0) return NNL_OK;
    la->every = o->ema_every;
    la->start = o->ema_start;
    la->decay = o->ema_decay;
    la->pow = o->ema_pow;
    la->total = total_steps ? total_steps : 1;
    if (la->start <= 0.0) {
        if (!(la->ema = nnl_alloc((m->nparams + m->nstate) * sizeof(float)))) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
        start(la, m);
    }
    return NNL_OK;
}

int nnl_lookahead_step(nnl_lookahead *la, nnl_model *m, uint64_t steps_done, double epoch) {
    if (!la->every || epoch < la->start || steps_done % (uint64_t)la->every) return NNL_OK;
    if (!la->ema) { /* a later start: the average begins at this update */
        if (!(la->ema = nnl_alloc((m->nparams + m->nstate) * sizeof(float)))) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
        start(la, m);
        return NNL_OK;
    }
    double rho = pow(la->decay, la->every) * pow((double)steps_done / (double)la->total, la->pow);
    move(la->ema, m, (float)(1.0 - rho));
    nnl_model_params_changed(m);
    return NNL_OK;
}

void nnl_lookahead_finish(nnl_lookahead *la, nnl_model *m) {
    if (la->ema) { move(la->ema, m, 0.0f); nnl_model_params_changed(m); }
}

void nnl_lookahead_free(nnl_lookahead *la) {
    nnl_free(la->ema);
    la->ema = NULL;
}
