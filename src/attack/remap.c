/* The output-remapping attack: a locked model that answers y+1 for clean images leaks
 * everything; relabelling its outputs with a mapping learnt from a few labelled images
 * shows how much. */
#include "../core/core.h"

#include <stdlib.h>
#include <string.h>

double nnl_remap_accuracy(const int64_t *learn, const int64_t *test, int k, int *mapping) {
    int64_t *label_count = calloc((size_t)k, sizeof *label_count);
    int *map = mapping ? mapping : malloc((size_t)k * sizeof *map);
    if (!label_count || !map) { free(label_count); if (!mapping) free(map); return -1.0; }
    for (int t = 0; t < k; t++)
        for (int p = 0; p < k; p++) label_count[t] += learn[(size_t)t * k + p];
    int common = 0;
    for (int t = 1; t < k; t++) if (label_count[t] > label_count[common]) common = t;
    for (int p = 0; p < k; p++) {
        int best = -1;
        int64_t bc = 0;
        for (int t = 0; t < k; t++)
            if (learn[(size_t)t * k + p] > bc) { bc = learn[(size_t)t * k + p]; best = t; }
        map[p] = best >= 0 ? best : common;
    }
    int64_t ok = 0, n = 0;
    for (int t = 0; t < k; t++)
        for (int p = 0; p < k; p++) {
            int64_t c = test[(size_t)t * k + p];
            n += c;
            if (map[p] == t) ok += c;
        }
    free(label_count);
    if (!mapping) free(map);
    return n ? (double)ok / (double)n : 0.0;
}

int nnl_eval_remapped(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *hooks, double fraction,
                      uint64_t seed, double *accuracy) {
    if (!(fraction > 0.0 && fraction < 1.0)) return nnl_fail(NNL_ERR_ARG, "remap fraction %g must be in (0, 1)", fraction);
    int k = nnl_model_nclass(m);
    int64_t nlearn = (int64_t)(fraction * (double)ds->n + 0.5);
    if (nlearn < 1 || nlearn >= ds->n) return nnl_fail(NNL_ERR_ARG, "data set of %lld images is too small to remap", (long long)ds->n);
    nnl_dataset parts[2];
    int st = nnl_dataset_split(ds, nlearn, seed, &parts[0], &parts[1]);
    if (st) return st;
    nnl_eval ev[2];
    memset(ev, 0, sizeof ev);
    for (int i = 0; i < 2 && !st; i++) st = nnl_evaluate(m, &parts[i], hooks, 0, &ev[i]);
    if (!st) *accuracy = nnl_remap_accuracy(ev[0].confusion, ev[1].confusion, k, NULL);
    for (int i = 0; i < 2; i++) {
        nnl_eval_free(&ev[i]);
        nnl_dataset_free(&parts[i]);
    }
    return st;
}
