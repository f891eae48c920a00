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
/* Training augmentation of a batch. */
typedef struct nnl_augment {
    int crop;                /* random crop with this zero padding */
    int translate;           /* random translation by up to this, reflect padding */
    int flip;                /* 1 random, 2 alternating (see nnl_train_opts) */
    int epoch;               /* for the alternating flip */
    uint64_t run_seed;       /* for the alternating flip's per-image choice, fixed for the run */
} nnl_augment;

/* Fills the batch with images idx[0..n-1], augmented as aug says (NULL: not at all). seed
 * makes augmentation and the hook reproducible per (epoch, image). */
void nnl_batcher_fill(nnl_batcher *b, const nnl_dataset *ds, const int64_t *idx, int n, const nnl_augment *aug,
                      const nnl_hooks *hooks, uint64_t seed);

/* NNL_OK if ds is non-empty and fits the model (image shape, classes); `what` names the
 * set in the message ("training", "test", "evaluation"). */
int nnl_check_data(const nnl_model *m, const nnl_dataset *ds, const char *what);

#endif
