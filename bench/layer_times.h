/* Forward and backward time of every layer of a prepared model over training steps on
 * random data, for bench_layers and bench_train. Steps run as in training (batch
 * statistics, gradients accumulated); the first is a warm-up and is not counted. */
#ifndef NNL_BENCH_LAYER_TIMES_H
#define NNL_BENCH_LAYER_TIMES_H

#include "nn/model.h"

#include <stdlib.h>

/* tf[i], tb[i]: seconds per step of layer i (m->nlayers entries each). Returns 0, or 1 out
 * of memory. */
static int layer_times(nnl_model *m, int batch, int steps, double *tf, double *tb) {
    int nl = m->nlayers, nclass = nnl_model_nclass(m);
    float *dlogits = malloc((size_t)batch * nclass * sizeof(float));
    if (!dlogits) return 1;
    m->chain = 0; /* per-layer timing needs the layer-by-layer path */
    nnl_rng r = {7};
    size_t in = (size_t)batch * nnl_shape_size(m->input);
    for (size_t i = 0; i < in; i++) m->acts[0][i] = nnl_rng_uniform(&r) * 2.0f - 1.0f;
    for (int i = 0; i < batch * nclass; i++) dlogits[i] = (nnl_rng_uniform(&r) - 0.5f) / (float)batch;
    for (int i = 0; i < nl; i++) tf[i] = tb[i] = 0.0;
    nnl_pass P = nnl_model_pass(m, batch, 1, 1, 0, 0.1f);
    for (int s = 0; s <= steps; s++) {
        for (int i = 0; i < nl; i++) {
            double t0 = nnl_now();
            nnl_model_layer_forward(m, &P, i);
            if (s) tf[i] += nnl_now() - t0;
        }
        nnl_model_backward_begin(m, dlogits, batch);
        for (int i = nl - 1; i >= 0; i--) {
            double t0 = nnl_now();
            nnl_model_layer_backward(m, &P, i);
            if (s) tb[i] += nnl_now() - t0;
        }
    }
    for (int i = 0; i < nl; i++) { tf[i] /= steps; tb[i] /= steps; }
    free(dlogits);
    return 0;
}

#endif
