/* Accuracy, loss and confusion matrix of a model on a data set. */
#include "batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One view of n 8-bit images (c x h x w): translated by (s, s) pixels (+1: content moves
 * right and down) with reflect padding, then mirrored left-right when flip. airbench's TTA
 * crops [0:H, 0:W] and [2:H+2, 2:W+2] of the image padded by 1. Views are made of the plain
 * pixels, before any hooks: a key-transform lock's transform of a mirrored image is not the
 * mirror of the transformed one. */
static void view_px(const uint8_t *px, int n, int c, int h, int w, int s, int flip, uint8_t *out) {
    for (size_t pl = 0; pl < (size_t)n * c; pl++)
        for (int y = 0; y < h; y++) {
            int sy = y - s;
            sy = sy < 0 ? -sy : sy >= h ? 2 * h - 2 - sy : sy;
            for (int j = 0; j < w; j++) {
                int sx = (flip ? w - 1 - j : j) - s;
                sx = sx < 0 ? -sx : sx >= w ? 2 * w - 2 - sx : sx;
                out[(pl * h + y) * w + j] = px[(pl * h + sy) * w + sx];
            }
        }
}

int nnl_evaluate(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *hooks, int batch, nnl_eval *ev) {
    return nnl_evaluate_tta(m, ds, hooks, batch, 0, ev);
}

int nnl_evaluate_tta(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *hooks, int batch, int tta, nnl_eval *ev) {
    memset(ev, 0, sizeof *ev);
    if (tta < 0 || tta > 2) return nnl_fail(NNL_ERR_ARG, "test-time augmentation level %d must be 0, 1 or 2", tta);
    int st = nnl_check_data(m, ds, "evaluation");
    if (st) return st;
    if (batch < 1) batch = 256;
    batch = nnl_model_batch_within(m, batch);
    if ((st = nnl_model_prepare(m, batch))) return st;
    int k = m->nclass, c = m->input.c, h = m->input.h, w = m->input.w;
    size_t in = nnl_shape_size(m->input);
    ev->confusion = calloc((size_t)k * k, sizeof *ev->confusion);
    uint8_t *px = malloc((size_t)batch * in);
    float *acc = nnl_alloc((size_t)batch * k * sizeof(float)), *soft = malloc((size_t)k * sizeof(float));
    if (!ev->confusion || !px || !acc || !soft) {
        free(px); nnl_free(acc); free(soft); nnl_eval_free(ev);
        return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    }
    ev->nclass = k;
    /* airbench's levels: 0 the image; 1 it and its mirror; 2 those, and the mirrored views of
     * the image moved one pixel down-right and up-left, weighted half and a quarter each. */
    static const int vs[6] = {0, 0, 1, 1, -1, -1}, vf[6] = {0, 1, 0, 1, 0, 1};
    static const float wt[3][6] = {{1.0f}, {0.5f, 0.5f}, {0.25f, 0.25f, 0.125f, 0.125f, 0.125f, 0.125f}};
    const int nv = tta == 0 ? 1 : tta == 1 ? 2 : 6;
    double loss = 0.0;
    for (int64_t i = 0; i < ds->n; i += batch) {
        int n = (int)(ds->n - i < batch ? ds->n - i : batch);
        memset(acc, 0, (size_t)n * k * sizeof(float));
        for (int v = 0; v < nv; v++) {
            view_px(ds->pixels + (size_t)i * in, n, c, h, w, vs[v], vf[v], px);
            nnl_model_eval_hooks(hooks, px, n, c, h, w, i, ds->labels + i, soft);
            nnl_model_input(m, px, n, hooks, i, NULL, m->acts[0]);
            const float *z = nnl_model_forward(m, m->acts[0], n, 0, 0, 0, 0.0f);
            for (size_t e = 0; e < (size_t)n * k; e++) acc[e] += wt[tta][v] * z[e];
        }
        const float *z = acc;
        /* Scored against the data set's true labels; the hook's label only matters in training. */
        loss += nnl_softmax_xent(z, ds->labels + i, NULL, n, k, 0.0f, NULL, NULL) * n;
        for (int j = 0; j < n; j++) {
            const float *zr = z + (size_t)j * k;
            int best = 0, finite = 1;
            for (int q = 0; q < k; q++) finite &= isfinite(zr[q]) != 0;
            /* A row with NaN or Inf has no answer; a plain arg-max would call it class 0. */
            if (!finite) { ev->invalid++; continue; }
            for (int q = 1; q < k; q++) if (zr[q] > zr[best]) best = q;
            int t = ds->labels[i + j];
            ev->confusion[(size_t)t * k + best]++;
            ev->correct += best == t;
        }
    }
    ev->n = ds->n;
    ev->loss = loss / ds->n;
    free(px); nnl_free(acc); free(soft);
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
