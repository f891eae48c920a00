/* One optimisation step after a training forward pass: the backward pass and the update, by
 * whatever path the model runs (the dense chain fuses the two; every other model goes layer by
 * layer). The training loop calls this and knows no path. */
#ifndef NNL_STEP_H
#define NNL_STEP_H

#include "optim.h"

/* From the logits' gradient dlogits (n x nclass): m->params updated by opt at rate lr. */
void nnl_backward_step(nnl_model *m, nnl_optim *opt, const float *dlogits, int n, float lr);

#endif
