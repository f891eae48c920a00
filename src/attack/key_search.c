/*
 * The key-estimation attack of the key-transform authors (fugokidi/block_transform): an
 * attacker with the locked model and a few labelled images tries keys and keeps the one that
 * classifies those images best; (a) random keys, (b) hill climbing by one-step moves. The
 * found key is then measured on test images the attacker never saw.
 */
#include "attack.h"

#include <stdlib.h>

static int score(nnl_model *m, const nnl_lock_ops *ops, const void *key, const nnl_dataset *ds, double *acc) {
    nnl_hooks h;
    ops->authorized(key, &h);
    nnl_eval ev;
    int st = nnl_evaluate(m, ds, &h, 0, &ev);
    if (st) return st;
    *acc = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    return NNL_OK;
}

int nnl_key_search_run(nnl_model *m, const nnl_lock_ops *ops, const nnl_dataset *known, const nnl_dataset *rest,
                       const void *right, const nnl_key_search *o, nnl_key_search_result *r) {
    if (!ops->guess_key || !ops->neighbour_key || !ops->authorized)
        return nnl_fail(NNL_ERR_UNSUPPORTED, "the %s lock has no keys to search for here", ops->name);
    if (o->budget < 1) return nnl_fail(NNL_ERR_ARG, "key search: a budget of %d keys", o->budget);
    r->right_rest = -1.0;
    r->evaluations = 0;
    int st;
    void *best = NULL, *cur = NULL, *next = NULL;
    double best_acc = -1.0, acc;
    /* (a) random keys */
    for (int i = 0; i < o->budget; i++) {
        void *k;
        if ((st = ops->guess_key(&k, m, nnl_mix64(o->seed ^ (0xa11ceULL + (uint64_t)i))))) goto done;
        if ((st = score(m, ops, k, known, &acc))) { ops->free_key(k); goto done; }
        r->evaluations++;
        if (acc > best_acc) {
            if (best) ops->free_key(best);
            best = k;
            best_acc = acc;
        } else {
            ops->free_key(k);
        }
    }
    r->random_known = best_acc;
    if ((st = score(m, ops, best, rest, &r->random_rest))) goto done;
    /* (b) hill climbing from a fresh random key */
    double cur_acc;
    if ((st = ops->guess_key(&cur, m, nnl_mix64(o->seed ^ 0xc11bULL))) || (st = score(m, ops, cur, known, &cur_acc))) goto done;
    r->evaluations++;
    for (int i = 1; i < o->budget; i++) {
        if ((st = ops->neighbour_key(&next, cur, nnl_mix64(o->seed ^ (0x57e9ULL + (uint64_t)i))))) goto done;
        if ((st = score(m, ops, next, known, &acc))) goto done;
        r->evaluations++;
        /* Sideways moves are kept too: many moves change nothing on a hundred images. */
        if (acc >= cur_acc) {
            ops->free_key(cur);
            cur = next;
            cur_acc = acc;
        } else {
            ops->free_key(next);
        }
        next = NULL;
    }
    r->climb_known = cur_acc;
    if ((st = score(m, ops, cur, rest, &r->climb_rest))) goto done;
    if (right && (st = score(m, ops, right, rest, &r->right_rest))) goto done;
done:
    if (best) ops->free_key(best);
    if (cur) ops->free_key(cur);
    if (next) ops->free_key(next);
    return st;
}
