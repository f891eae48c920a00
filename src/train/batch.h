/* Assembling a batch: copy, augment, pass through the lock's hook, normalise. */
#ifndef NNL_BATCH_H
#define NNL_BATCH_H

#include "../nn/model.h"

typedef struct nnl_batcher {
    int cap, nclass;
    size_t in;               /* bytes per image */
    uint8_t *px;             /* cap images */
    int32_t *labels;         /* cap */
    float *soft;             /* cap x nclass, valid when has_soft */
    int has_soft;
} nnl_batcher;

int nnl_batcher_init(nnl_batcher *b, int cap, const nnl_dataset *ds);
void nnl_batcher_free(nnl_batcher *b);
/* Fills the batch with images idx[0..n-1]; crop/flip only when pad/flip are set.
 * seed makes augmentation and the hook reproducible per (epoch, image). */
void nnl_batcher_fill(nnl_batcher *b, const nnl_dataset *ds, const int64_t *idx, int n,
                      int crop_pad, int flip, const nnl_hooks *hooks, uint64_t seed);

/* NNL_OK if ds is non-empty and fits the model (image shape, classes); `what` names the
 * set in the message ("training", "test", "evaluation"). */
int nnl_check_data(const nnl_model *m, const nnl_dataset *ds, const char *what);

#endif
