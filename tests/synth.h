/* A small synthetic image data set for tests: class k has a bright square at a
 * class-specific position plus noise, so a small network learns it in an epoch. */
#ifndef NNL_SYNTH_H
#define NNL_SYNTH_H
#include "nnlock.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int synth_dataset(nnl_dataset *ds, int64_t n, int c, int h, int w, int nclass, unsigned seed) {
    memset(ds, 0, sizeof *ds);
    ds->n = n; ds->c = c; ds->h = h; ds->w = w; ds->nclass = nclass;
    ds->pixels = malloc((size_t)n * c * h * w);
    ds->labels = malloc((size_t)n * sizeof(int32_t));
    if (!ds->pixels || !ds->labels) return -1;
    snprintf(ds->source, sizeof ds->source, "synthetic");
    unsigned s = seed * 2654435761u + 1;
    for (int64_t i = 0; i < n; i++) {
        int k = (int)(i % nclass);
        ds->labels[i] = k;
        uint8_t *p = ds->pixels + (size_t)i * c * h * w;
        for (int j = 0; j < c * h * w; j++) { s = s * 1103515245u + 12345u; p[j] = (uint8_t)((s >> 16) % 64); }
        int cy = (k * 5) % (h - 3), cx = (k * 3) % (w - 3);
        for (int ch = 0; ch < c; ch++)
            for (int y = cy; y < cy + 3; y++)
                for (int x = cx; x < cx + 3; x++) p[((size_t)ch * h + y) * w + x] = 250;
    }
    return 0;
}
#endif
