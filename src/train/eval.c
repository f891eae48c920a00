/* Accuracy, loss and confusion matrix of a model on a data set. */
#include "batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int nnl_evaluate(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *hooks, int batch, nnl_eval *ev) {
    memset(ev, 0, sizeof *ev);
    int st = nnl_check_data(m, ds, "evaluation");
    if (st) return st;
    if (batch < 1) batch = 256;
    batch = nnl_model_batch_within(m, batch);
    if ((st = nnl_model_prepare(m, batch))) return st;
    int k = m->nclass;
    nnl_batcher b;
    if ((st = nnl_batcher_init(&b, batch, ds))) return st;
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    ev->confusion = calloc((size_t)k * k, sizeof *ev->confusion);
    if (!idx || !ev->confusion) {
        free(idx); nnl_batcher_free(&b); nnl_eval_free(ev);
        return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    }
    ev->nclass = k;
    double loss = 0.0;
    for (int64_t i = 0; i < ds->n; i += batch) {
        int n = (int)(ds->n - i < batch ? ds->n - i : batch);
        for (int j = 0; j < n; j++) idx[j] = i + j;
        /* Evaluation hooks see a fixed seed so that a random certificate placement
         * or key-dependent transform is the same on every run. */
        nnl_batcher_fill(&b, ds, idx, n, 0, 0, hooks, NNL_EVAL_HOOK_SEED);
        nnl_model_input(m, b.px, n, hooks, m->acts[0]);
        const float *z = nnl_model_forward(m, m->acts[0], n, 0, 0, 0, 0.0f);
        /* Scored against the data set's true labels; the hook's label only matters in training. */
        for (int j = 0; j < n; j++) b.labels[j] = ds->labels[i + j];
        loss += nnl_softmax_xent(z, b.labels, NULL, n, k, 0.0f, NULL, NULL) * n;
        for (int j = 0; j < n; j++) {
            const float *zr = z + (size_t)j * k;
            int best = 0, finite = 1;
            for (int c = 0; c < k; c++) finite &= isfinite(zr[c]) != 0;
            /* A row with NaN or Inf has no answer; a plain arg-max would call it class 0. */
            if (!finite) { ev->invalid++; continue; }
            for (int c = 1; c < k; c++) if (zr[c] > zr[best]) best = c;
            int t = b.labels[j];
            ev->confusion[(size_t)t * k + best]++;
            ev->correct += best == t;
        }
    }
    ev->n = ds->n;
    ev->loss = loss / ds->n;
    free(idx);
    nnl_batcher_free(&b);
    return NNL_OK;
}

void nnl_eval_free(nnl_eval *ev) {
    free(ev->confusion);
    memset(ev, 0, sizeof *ev);
}

double nnl_eval_accuracy(const nnl_eval *ev) { return ev->n ? (double)ev->correct / ev->n : 0.0; }

double nnl_eval_class_accuracy(const nnl_eval *ev, int k) {
    int64_t tot = 0;
    for (int j = 0; j < ev->nclass; j++) tot += ev->confusion[(size_t)k * ev->nclass + j];
    return tot ? (double)ev->confusion[(size_t)k * ev->nclass + k] / tot : 0.0;
}
