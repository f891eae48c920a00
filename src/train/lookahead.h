/* Lookahead as airbench94 uses it (its "EMA"; Zhang et al. 2019, "Lookahead Optimizer"):
 * every N steps the weights and batch-norm statistics w move to the average
 *     ema += (1 - rho) (w - ema),  w = ema,   rho = decay^N (steps done / total)^pow,
 * and the run ends on w = ema. The average starts from the initial weights (from epoch
 * ema_start's first update when that is later). */
#ifndef NNL_LOOKAHEAD_H
#define NNL_LOOKAHEAD_H

#include "../nn/model.h"

#include <stdint.h>

typedef struct nnl_lookahead {
    float *ema;          /* the average: parameters, then batch-norm statistics; NULL: not started */
    int every;
    double start, decay, pow;
    uint64_t total;      /* steps in the run */
} nnl_lookahead;

/* From the options (ema_every 0: off, everything a no-op); starts the average from m's
 * weights when ema_start is 0. */
int nnl_lookahead_init(nnl_lookahead *la, const nnl_train_opts *o, const nnl_model *m, uint64_t total_steps);
/* After a step: steps_done steps taken so far, at (fractional) epoch epoch. */
int nnl_lookahead_step(nnl_lookahead *la, nnl_model *m, uint64_t steps_done, double epoch);
/* The run's end: w = ema (when the average has started). */
void nnl_lookahead_finish(nnl_lookahead *la, nnl_model *m);
void nnl_lookahead_free(nnl_lookahead *la);

#endif
