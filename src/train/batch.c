#include "batch.h"

#include <stdlib.h>
#include <string.h>

int nnl_batcher_init(nnl_batcher *b, int cap, const nnl_dataset *ds) {
    memset(b, 0, sizeof *b);
    b->cap = cap;
    b->nclass = ds->nclass;
    b->in = (size_t)ds->c * ds->h * ds->w;
    b->px = nnl_alloc((size_t)cap * b->in);
    b->labels = nnl_alloc((size_t)cap * sizeof(int32_t));
    b->soft = nnl_alloc((size_t)cap * ds->nclass * sizeof(float));
    if (!b->px || !b->labels || !b->soft) {
        nnl_batcher_free(b);
        return nnl_fail(NNL_ERR_NOMEM, "out of memory for a batch of %d", cap);
    }
    return NNL_OK;
}

void nnl_batcher_free(nnl_batcher *b) {
    nnl_free(b->px); nnl_free(b->labels); nnl_free(b->soft);
    memset(b, 0, sizeof *b);
}

/* x reflected into 0..n-1 (n > pad), as PyTorch's 'reflect' padding: -1 -> 1, n -> n - 2. */
static inline int reflect(int x, int n) {
    if (x < 0) return -x;
    if (x >= n) return 2 * n - 2 - x;
    return x;
}

/* Random crop with zero padding, or translation with reflect padding, and horizontal flip,
 * fused into the copy. */
static void copy_augmented(uint8_t *dst, const uint8_t *src, int c, int h, int w, int pad,
                           int flip, int mirror, nnl_rng *r) {
    int dx = 0, dy = 0, fl = 0;
    if (pad > 0) {
        dy = (int)nnl_rng_below(r, (uint64_t)(2 * pad + 1)) - pad;
        dx = (int)nnl_rng_below(r, (uint64_t)(2 * pad + 1)) - pad;
    }
    if (flip > 0) fl = (int)(nnl_rng_next(r) >> 63);
    else if (flip < 0) fl = 1; /* the alternating flip: decided by the caller */
    if (mirror) {
        for (int k = 0; k < c; k++)
            for (int y = 0; y < h; y++) {
                uint8_t *o = dst + ((size_t)k * h + y) * w;
                const uint8_t *s = src + ((size_t)k * h + reflect(y + dy, h)) * w;
                for (int x = 0; x < w; x++) o[x] = s[reflect((fl ? w - 1 - x : x) + dx, w)];
            }
        return;
    }
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++) {
            uint8_t *o = dst + ((size_t)k * h + y) * w;
            int sy = y + dy;
            if (sy < 0 || sy >= h) { memset(o, 0, (size_t)w); continue; }
            const uint8_t *s = src + ((size_t)k * h + sy) * w;
            for (int x = 0; x < w; x++) {
                int sx = (fl ? w - 1 - x : x) + dx;
                o[x] = sx >= 0 && sx < w ? s[sx] : 0;
            }
        }
}

void nnl_batcher_fill(nnl_batcher *b, const nnl_dataset *ds, const int64_t *idx, int n, const nnl_augment *aug,
                      const nnl_hooks *hooks, uint64_t seed) {
    static const nnl_augment none = {0};
    if (!aug) aug = &none;
    int pad = aug->translate > 0 ? aug->translate : aug->crop, mirror = aug->translate > 0;
    int any_soft = 0;
    #pragma omp parallel for schedule(static) num_threads(nnl_threads()) reduction(|:any_soft) if (n >= 32)
    for (int i = 0; i < n; i++) {
        int64_t j = idx[i];
        uint8_t *dst = b->px + (size_t)i * b->in;
        const uint8_t *src = ds->pixels + (size_t)j * b->in;
        /* The alternating flip: each image's own coin, fixed for the run, every other epoch inverted. */
        int flip = aug->flip == 2 ? ((int)(nnl_hash_uniform(aug->run_seed, 0xf11bULL, (uint64_t)j) < 0.5f) ^ (aug->epoch & 1))
                                  : aug->flip;
        if (pad > 0 || flip) {
            nnl_rng r = nnl_rng_derive(seed, (uint64_t)j);
            copy_augmented(dst, src, ds->c, ds->h, ds->w, pad, aug->flip == 2 ? -flip : flip, mirror, &r);
        } else {
            memcpy(dst, src, b->in);
        }
        int label = ds->labels[j];
        float *soft = b->soft + (size_t)i * b->nclass;
        if (hooks && hooks->sample) {
            int r = hooks->sample(hooks->user, dst, ds->c, ds->h, ds->w, j, label,
                                  nnl_mix64(seed ^ (uint64_t)j), soft);
            if (r == -2) { any_soft = 1; label = -1; }
            else if (r >= 0) label = r;
        }
        if (label >= 0) {
            memset(soft, 0, (size_t)b->nclass * sizeof(float));
            soft[label] = 1.0f;
        }
        b->labels[i] = label;
    }
    b->has_soft = any_soft;
}

int nnl_check_data(const nnl_model *m, const nnl_dataset *ds, const char *what) {
    if (!ds || ds->n < 1) return nnl_fail(NNL_ERR_ARG, "the %s set is empty", what);
    if (ds->c != m->input.c || ds->h != m->input.h || ds->w != m->input.w)
        return nnl_fail(NNL_ERR_SHAPE, "the %s set has %dx%dx%d images but the model takes %dx%dx%d",
                        what, ds->c, ds->h, ds->w, m->input.c, m->input.h, m->input.w);
    /* Judged by the labels that occur, not by the set's class count: a stray label must be
     * named, and an extra class without images is harmless. */
    return nnl_dataset_check_labels(ds, m->nclass, what, NULL);
}
