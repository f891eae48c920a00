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
    /* Split by a seeded permutation into a learn subset and the rest, as two data sets. */
    size_t isz = (size_t)ds->c * ds->h * ds->w;
    nnl_dataset parts[2];
    memset(parts, 0, sizeof parts);
    int64_t *perm = malloc((size_t)ds->n * sizeof *perm);
    int st = NNL_OK;
    for (int i = 0; i < 2; i++) {
        parts[i] = *ds;
        parts[i].class_names = NULL;
        parts[i].n = i == 0 ? nlearn : ds->n - nlearn;
        parts[i].pixels = malloc((size_t)parts[i].n * isz);
        parts[i].labels = malloc((size_t)parts[i].n * sizeof(int32_t));
        if (!parts[i].pixels || !parts[i].labels) st = nnl_fail(NNL_ERR_NOMEM, "out of memory");
    }
    if (!perm) st = nnl_fail(NNL_ERR_NOMEM, "out of memory");
    nnl_eval ev[2];
    memset(ev, 0, sizeof ev);
    if (!st) {
        nnl_rng r = nnl_rng_derive(seed, 0x4e3a9ULL);
        for (int64_t i = 0; i < ds->n; i++) perm[i] = i;
        for (int64_t i = ds->n - 1; i > 0; i--) {
            int64_t j = (int64_t)nnl_rng_below(&r, (uint64_t)i + 1), t = perm[i];
            perm[i] = perm[j]; perm[j] = t;
        }
        for (int64_t i = 0; i < ds->n; i++) {
            nnl_dataset *d = &parts[i < nlearn ? 0 : 1];
            int64_t at = i < nlearn ? i : i - nlearn;
            memcpy(d->pixels + (size_t)at * isz, ds->pixels + (size_t)perm[i] * isz, isz);
            d->labels[at] = ds->labels[perm[i]];
        }
        for (int i = 0; i < 2 && !st; i++) st = nnl_evaluate(m, &parts[i], hooks, 0, &ev[i]);
    }
    if (!st) *accuracy = nnl_remap_accuracy(ev[0].confusion, ev[1].confusion, k, NULL);
    for (int i = 0; i < 2; i++) {
        nnl_eval_free(&ev[i]);
        free(parts[i].pixels);
        free(parts[i].labels);
    }
    free(perm);
    return st;
}
