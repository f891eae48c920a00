/*
 * The whitening layer of airbench (Keller Jordan, arXiv 2404.00498): a first convolution
 * whose 2 c k^2 filters are the eigenvectors of the covariance of the k x k patches of the
 * (normalised) training images, each divided by the square root of its eigenvalue (plus
 * eps), followed by their negatives, largest eigenvalue first. It is computed from data
 * once and not trained (the layer's fixed_w); its bias is.
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Eigenvalues and eigenvectors of the symmetric n x n matrix a (destroyed) by cyclic Jacobi
 * rotations: v's column j is the eigenvector of d[j]. Converges quadratically; n is at
 * most a few dozen here. */
static void jacobi(double *a, int n, double *d, double *v) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) v[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
        if (off < 1e-30) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; k++) {
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) d[i] = a[i * n + i];
}

int nnl_model_whiten(nnl_model *m, const nnl_dataset *ds, int64_t nimages, const struct nnl_hooks *hooks, float eps) {
    nnl_layer *L = m->nlayers ? &m->layers[0] : NULL;
    if (!L || L->kind != NNL_L_CONV2D || !L->whiten) return NNL_OK; /* nothing to whiten */
    int c = L->in.c, k = L->k, d = c * k * k;
    if (L->units != 2 * d)
        return nnl_fail(NNL_ERR_SHAPE, "whitening layer: %d filters, but %d x %d patches of %d channels need 2 x %d", L->units,
                        k, k, c, d);
    if (L->stride != 1 || L->pad != 0) return nnl_fail(NNL_ERR_SHAPE, "whitening layer: stride 1 and no padding, please");
    if (ds->c != c || ds->h != m->input.h || ds->w != m->input.w)
        return nnl_fail(NNL_ERR_SHAPE, "whitening: the data set's images are not the model's input");
    int64_t n = nimages < ds->n ? nimages : ds->n;
    if (n < 1) return nnl_fail(NNL_ERR_ARG, "whitening: no images");
    int h = ds->h, w = ds->w, oh = h - k + 1, ow = w - k + 1;
    size_t plane = (size_t)h * w, in = (size_t)c * plane;
    double *cov = calloc((size_t)d * d, sizeof *cov), *vec = malloc((size_t)d * d * sizeof *vec), *val = malloc((size_t)d * sizeof *val);
    float *x = malloc(in * sizeof *x), *soft = malloc((size_t)(ds->nclass > 0 ? ds->nclass : 1) * sizeof *soft);
    uint8_t *img = malloc(in);
    if (!cov || !vec || !val || !x || !soft || !img) {
        free(cov); free(vec); free(val); free(x); free(soft); free(img);
        return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    }
    /* The second moment of the patches (no mean taken out, as airbench), in double: about
     * five million patches are summed. */
    double p[4 * 16 * 16];
    for (int64_t i = 0; i < n; i++) {
        if (hooks) {
            /* The image as training sees it; the seed is the evaluation passes' (the first
             * epoch's would do as well: a lock that stamps at random still stamps a share). */
            memcpy(img, ds->pixels + (size_t)i * in, in);
            nnl_model_eval_hooks(hooks, img, 1, c, h, w, i, ds->labels ? ds->labels + i : NULL, soft);
            nnl_model_input(m, img, 1, hooks, i, NULL, x);
        } else {
            nnl_model_normalize(m, ds->pixels + (size_t)i * in, 1, x);
        }
        for (int y = 0; y < oh; y++)
            for (int xx = 0; xx < ow; xx++) {
                int t = 0;
                for (int ch = 0; ch < c; ch++)
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++) p[t++] = x[(size_t)ch * plane + (size_t)(y + dy) * w + xx + dx];
                for (int a = 0; a < d; a++)
                    for (int b = a; b < d; b++) cov[a * d + b] += p[a] * p[b];
            }
    }
    double np = (double)n * oh * ow;
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) cov[b * d + a] = cov[a * d + b] /= np;
    jacobi(cov, d, val, vec);
    /* Largest eigenvalue first; filter j is eigenvector j over sqrt(eigenvalue + eps), and
     * filter d + j its negative. */
    int order[64];
    for (int j = 0; j < d; j++) order[j] = j;
    for (int a = 0; a < d; a++)
        for (int b = a + 1; b < d; b++)
            if (val[order[b]] > val[order[a]]) { int t = order[a]; order[a] = order[b]; order[b] = t; }
    float *wt = m->params + L->w_off;
    for (int j = 0; j < d; j++) {
        double s = 1.0 / sqrt((val[order[j]] > 0 ? val[order[j]] : 0.0) + eps);
        for (int e = 0; e < d; e++) {
            float v = (float)(vec[e * d + order[j]] * s);
            wt[(size_t)j * d + e] = v;
            wt[(size_t)(d + j) * d + e] = -v;
        }
    }
    free(cov); free(vec); free(val); free(x); free(soft); free(img);
    return NNL_OK;
}
