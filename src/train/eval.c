/* Accuracy, loss and confusion matrix of a model on a data set. */
#include "batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x (n images of c x h x w) mirrored left-right into out. */
static void mirror(const float *x, int n, int c, int h, int w, float *out) {
    for (size_t r = 0; r < (size_t)n * c * h; r++)
        for (int j = 0; j < w; j++) out[r * w + j] = x[r * w + w - 1 - j];
}

/* x translated by (s, s) pixels (+1: content moves right and down) with reflect padding:
 * airbench's TTA crops [0:H, 0:W] and [2:H+2, 2:W+2] of the image padded by 1. */
static void translate(const float *x, int n, int c, int h, int w, int s, float *out) {
    for (size_t pl = 0; pl < (size_t)n * c; pl++)
        for (int y = 0; y < h; y++) {
            int sy = y - s;
            sy = sy < 0 ? -sy : sy >= h ? 2 * h - 2 - sy : sy;
            for (int j = 0; j < w; j++) {
                int sx = j - s;
                sx = sx < 0 ? -sx : sx >= w ? 2 * w - 2 - sx : sx;
                out[(pl * h + y) * w + j] = x[(pl * h + sy) * w + sx];
            }
        }
}

/* The 8-bit version of one TTA view, for hooked evaluation: px translated by (s, s) as
 * translate() does, then mirrored when flip. */
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

/* acc += a * logits(x) */
static void add_logits(nnl_model *m, const float *x, int n, float a, float *acc) {
    const float *z = nnl_model_forward(m, x, n, 0, 0, 0, 0.0f);
    for (size_t i = 0; i < (size_t)n * m->nclass; i++) acc[i] += a * z[i];
}

/* 0.5 logits(x) + 0.5 logits(mirror(x)), times a, into acc. */
static void add_mirrored(nnl_model *m, const float *x, int n, float a, float *acc, float *tmp) {
    add_logits(m, x, n, 0.5f * a, acc);
    mirror(x, n, m->input.c, m->input.h, m->input.w, tmp);
    add_logits(m, tmp, n, 0.5f * a, acc);
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
    int k = m->nclass;
    size_t in = nnl_shape_size(m->input);
    nnl_batcher b;
    if ((st = nnl_batcher_init(&b, batch, ds))) return st;
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    ev->confusion = calloc((size_t)k * k, sizeof *ev->confusion);
    /* With augmentation the views and the averaged logits need room of their own. */
    float *x = tta ? nnl_alloc((size_t)batch * in * sizeof(float)) : NULL;
    float *v1 = tta ? nnl_alloc((size_t)batch * in * sizeof(float)) : NULL;
    float *v2 = tta ? nnl_alloc((size_t)batch * in * sizeof(float)) : NULL;
    float *acc = tta ? nnl_alloc((size_t)batch * k * sizeof(float)) : NULL;
    uint8_t *raw = tta && hooks ? malloc((size_t)batch * in) : NULL;
    float *soft = tta && hooks ? malloc((size_t)k * sizeof(float)) : NULL;
    if (!idx || !ev->confusion || (tta && (!x || !v1 || !v2 || !acc)) || (tta && hooks && (!raw || !soft))) {
        free(idx); nnl_free(x); nnl_free(v1); nnl_free(v2); nnl_free(acc); free(raw); free(soft);
        nnl_batcher_free(&b); nnl_eval_free(ev);
        return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    }
    ev->nclass = k;
    double loss = 0.0;
    for (int64_t i = 0; i < ds->n; i += batch) {
        int n = (int)(ds->n - i < batch ? ds->n - i : batch);
        for (int j = 0; j < n; j++) idx[j] = i + j;
        /* Evaluation hooks see a fixed seed so that a random certificate placement
         * or key-dependent transform is the same on every run. */
        nnl_batcher_fill(&b, ds, idx, n, NULL, hooks, NNL_EVAL_HOOK_SEED);
        const float *z;
        if (!tta) {
            nnl_model_input(m, b.px, n, hooks, m->acts[0]);
            z = nnl_model_forward(m, m->acts[0], n, 0, 0, 0, 0.0f);
        } else if (hooks) {
            /* With hooks (an input lock) the views are of the plain image, each then given
             * to the hooks: a key-transform lock's transform of a mirrored image is not the
             * mirror of the transformed one. */
            static const int vs[6] = {0, 0, 1, 1, -1, -1}, vf[6] = {0, 1, 0, 1, 0, 1};
            static const float wt1[2] = {0.5f, 0.5f}, wt2[6] = {0.25f, 0.25f, 0.125f, 0.125f, 0.125f, 0.125f};
            int c = m->input.c, h = m->input.h, w = m->input.w, nv = tta == 1 ? 2 : 6;
            memset(acc, 0, (size_t)n * k * sizeof(float));
            for (int v = 0; v < nv; v++) {
                view_px(ds->pixels + (size_t)i * in, n, c, h, w, vs[v], vf[v], raw);
                for (int j = 0; j < n && hooks->sample; j++)
                    hooks->sample(hooks->user, raw + (size_t)j * in, c, h, w, i + j, ds->labels[i + j],
                                  nnl_mix64(NNL_EVAL_HOOK_SEED ^ (uint64_t)(i + j)), soft);
                nnl_model_input(m, raw, n, hooks, x);
                add_logits(m, x, n, tta == 1 ? wt1[v] : wt2[v], acc);
            }
            z = acc;
        } else {
            /* airbench's levels: 1 mirror; 2 mirror, and the mirrored views of the image moved
             * one pixel down-right and up-left, weighted half and a quarter each. */
            nnl_model_input(m, b.px, n, hooks, x);
            memset(acc, 0, (size_t)n * k * sizeof(float));
            int c = m->input.c, h = m->input.h, w = m->input.w;
            if (tta == 1) {
                add_mirrored(m, x, n, 1.0f, acc, v1);
            } else {
                add_mirrored(m, x, n, 0.5f, acc, v1);
                translate(x, n, c, h, w, 1, v2);
                add_mirrored(m, v2, n, 0.25f, acc, v1);
                translate(x, n, c, h, w, -1, v2);
                add_mirrored(m, v2, n, 0.25f, acc, v1);
            }
            z = acc;
        }
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
    nnl_free(x); nnl_free(v1); nnl_free(v2); nnl_free(acc); free(raw); free(soft);
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
