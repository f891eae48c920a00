/* Magnitude pruning, the attacker's cheapest tool against a lock hidden in the weights: the
 * smallest weights of some layers set to zero. */
#include "attack.h"
#include "../nn/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

int nnl_prune_magnitude(nnl_model *m, int from, double fraction, int64_t *zeroed, int64_t *eligible) {
    *zeroed = *eligible = 0;
    if (!(fraction >= 0.0 && fraction <= 1.0)) return nnl_fail(NNL_ERR_ARG, "pruning fraction %g must be in [0, 1]", fraction);
    if (from < 0 || from >= m->nlayers) return nnl_fail(NNL_ERR_ARG, "pruning from layer %d of %d", from, m->nlayers);
    size_t n = 0;
    for (int i = from; i < m->nlayers; i++)
        if (m->layers[i].kind == NNL_L_CONV2D || m->layers[i].kind == NNL_L_DENSE) n += m->layers[i].w_n;
    *eligible = (int64_t)n;
    size_t k = (size_t)floor(fraction * (double)n + 0.5);
    if (k == 0) return NNL_OK;
    float *mag = malloc(n * sizeof *mag);
    if (!mag) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    size_t j = 0;
    for (int i = from; i < m->nlayers; i++) {
        const nnl_layer *L = &m->layers[i];
        if (L->kind != NNL_L_CONV2D && L->kind != NNL_L_DENSE) continue;
        for (size_t e = 0; e < L->w_n; e++) mag[j++] = fabsf(m->params[L->w_off + e]);
    }
    qsort(mag, n, sizeof *mag, cmp_float);
    float thr = mag[k - 1];
    /* below the threshold all go; at it, as many as the count needs, in parameter order */
    size_t below = 0;
    while (below < k && mag[below] < thr) below++;
    size_t at = k - below, done = 0;
    for (int i = from; i < m->nlayers; i++) {
        nnl_layer *L = &m->layers[i];
        if (L->kind != NNL_L_CONV2D && L->kind != NNL_L_DENSE) continue;
        float *w = m->params + L->w_off;
        for (size_t e = 0; e < L->w_n; e++) {
            float a = fabsf(w[e]);
            if (a < thr || (a == thr && at)) {
                if (a == thr) at--;
                w[e] = 0.0f;
                done++;
            }
        }
    }
    free(mag);
    nnl_model_params_changed(m);
    *zeroed = (int64_t)done;
    return NNL_OK;
}
