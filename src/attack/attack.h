/* The adversary's tools that go through the lock interface (the key search of the
 * key-transform authors; more with the attack toolkit). */
#ifndef NNL_ATTACK_H
#define NNL_ATTACK_H

#include "../lock/lock.h"

typedef struct nnl_key_search {
    int budget;          /* key evaluations on the attacker's images, for each of the two searches */
    uint64_t seed;
} nnl_key_search;

typedef struct nnl_key_search_result {
    /* (a) the best of `budget` random keys guessed from the model's record, and (b) hill
     * climbing from a random key by one-step moves (a swap, a bit) kept when they do not
     * lower the accuracy: each scored on the attacker's images (known), then measured on the
     * disjoint rest of the test set. */
    double random_known, random_rest;
    double climb_known, climb_rest;
    double right_rest;   /* the right key on the same images, when given; -1 otherwise */
    int evaluations;
} nnl_key_search_result;

/* Searches for a key of `ops` (which must have guess_key and neighbour_key) that unlocks m,
 * using only the labelled images in known; right (may be NULL) is the real key, for the
 * comparison only. */
int nnl_key_search_run(nnl_model *m, const nnl_lock_ops *ops, const nnl_dataset *known, const nnl_dataset *rest,
                       const void *right, const nnl_key_search *o, nnl_key_search_result *r);

/* Magnitude pruning: of the conv and dense weights of layers [from, nlayers) (not biases or
 * batch-norms), the fraction with the smallest magnitude set to zero, over those layers
 * together (ties in parameter order). *zeroed: how many; *eligible: of how many. */
int nnl_prune_magnitude(nnl_model *m, int from, double fraction, int64_t *zeroed, int64_t *eligible);

#endif
