/* What bench_train and bench_locks share: a random 8-bit data set, and the clock that times
 * training in its steady state. */
#ifndef NNL_BENCH_DATA_H
#define NNL_BENCH_DATA_H

#include "nn/model.h"

#include <stdlib.h>
#include <string.h>

/* n random c x h x w images with random labels of 10 classes (the same on every run). */
static void random_dataset(nnl_dataset *ds, int64_t n, int c, int h, int w) {
    memset(ds, 0, sizeof *ds);
    ds->n = n; ds->c = c; ds->h = h; ds->w = w; ds->nclass = 10;
    ds->pixels = malloc((size_t)n * c * h * w);
    ds->labels = malloc((size_t)n * sizeof(int32_t));
    nnl_rng r = {42};
    for (size_t i = 0; i < (size_t)n * c * h * w; i++) ds->pixels[i] = (uint8_t)(nnl_rng_next(&r) >> 56);
    for (int64_t i = 0; i < n; i++) ds->labels[i] = (int32_t)(nnl_rng_next(&r) % 10);
}

/* Steady state: the clock starts when the first batch is done, as PyTorch's side times
 * only after its warm-up iterations (the first batch pays for OpenBLAS's buffers and the
 * first touch of every workspace). Give on_batch as the progress callback. */
typedef struct { double t1, t_end; int64_t b1, b_end; } rate_clock;
static void on_batch(const nnl_progress *p, void *user) {
    rate_clock *c = user;
    if (p->epoch_done) return;
    if (p->batch == 1) { c->t1 = nnl_now(); c->b1 = p->batch; }
    c->t_end = nnl_now(); c->b_end = p->batch;
}

#endif
