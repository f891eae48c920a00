/* Per-channel activation statistics over a data set at a named activation (the gate lock picks
 * its authentication channels from them). */
#include "model.h"

#include <stdlib.h>
#include <string.h>

void nnl_act_add_channel_means(const float *y, int n, nnl_shape s, double div, double *acc) {
    size_t plane = (size_t)s.h * s.w;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < s.c; k++) {
            const float *p = y + ((size_t)j * s.c + k) * plane;
            double t = 0.0;
            for (size_t q = 0; q < plane; q++) t += p[q];
            acc[k] += t / (double)plane / div;
        }
}

int nnl_model_channel_means(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *hooks, const char *name,
                            int64_t nimages, double *mean) {
    int a, st;
    if ((st = nnl_model_find_tap(m, name, &a))) return st;
    if (ds->c != m->input.c || ds->h != m->input.h || ds->w != m->input.w)
        return nnl_fail(NNL_ERR_SHAPE, "images of %dx%dx%d for a model of %dx%dx%d inputs", ds->c, ds->h, ds->w,
                        m->input.c, m->input.h, m->input.w);
    if (nimages <= 0 || nimages > ds->n) nimages = ds->n;
    int bs = nnl_model_batch_within(m, 256);
    if ((st = nnl_model_prepare(m, bs))) return st;
    bs = m->max_batch;
    nnl_shape s = nnl_model_act_shape(m, a);
    size_t in = nnl_shape_size(m->input);
    uint8_t *px = malloc((size_t)bs * in);
    float *soft = malloc(NNL_MAX_CLASSES * sizeof *soft);
    if (!px || !soft) { free(px); free(soft); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    for (int k = 0; k < s.c; k++) mean[k] = 0.0;
    for (int64_t i = 0; i < nimages; i += bs) {
        int n = (int)(nimages - i < bs ? nimages - i : bs);
        memcpy(px, ds->pixels + (size_t)i * in, (size_t)n * in);
        nnl_model_eval_hooks(hooks, px, n, ds->c, ds->h, ds->w, i, ds->labels + i, soft);
        nnl_model_input(m, px, n, hooks, i, NULL, m->acts[0]);
        nnl_pass P = nnl_model_pass(m, n, 0, 0, 0, 0.0f);
        nnl_model_forward_range(m, &P, 0, a);
        nnl_act_add_channel_means(m->acts[a], n, s, 1.0, mean);
    }
    for (int k = 0; k < s.c; k++) mean[k] /= (double)nimages;
    free(px);
    free(soft);
    return NNL_OK;
}
