/* Optimizers and learning-rate schedules, with PyTorch's semantics. */
#ifndef NNL_OPTIM_H
#define NNL_OPTIM_H

#include "../core/core.h"
#include "../nn/model.h"

/* A range of parameters with its own learning-rate and weight-decay multipliers (0: frozen). */
typedef struct nnl_optim_seg {
    size_t begin, end;
    float lr, wd;
} nnl_optim_seg;

typedef struct nnl_optim {
    int kind;                /* NNL_OPT_SGD or NNL_OPT_ADAM */
    float momentum, weight_decay, beta1, beta2, eps;
    int nesterov;
    size_t n;
    float *m, *v;            /* SGD: momentum buffer in m; Adam: first and second moments */
    int64_t t;               /* steps taken */
    int nseg;                /* 0: every parameter at the plain rate */
    nnl_optim_seg *seg;
} nnl_optim;

int nnl_optim_init(nnl_optim *o, size_t n, const nnl_train_opts *opts);
void nnl_optim_free(nnl_optim *o);
/* The multipliers of the model's parameters at a (fractional) epoch: frozen layers (0), weights
 * a layer never trains (fixed_w), batch-norm biases (opts->bn_bias_lr), the whitening layer's bias after
 * opts->whiten_bias_epochs. Returns 1 if some parameter is not at the plain rate. */
int nnl_optim_segments(nnl_optim *o, const nnl_model *m, const nnl_train_opts *opts, double epoch);
/* One step: params -= update(grads) at learning rate lr. */
void nnl_optim_step(nnl_optim *o, float *params, const float *grads, float lr);
/* The same step in pieces, for callers that update parameters as their gradients become
 * ready: begin_step once, then update_range over every index exactly once (any split). */
void nnl_optim_begin_step(nnl_optim *o);
void nnl_optim_update_range(const nnl_optim *o, float *params, const float *grads, float lr,
                            size_t begin, size_t end);
/* SGD without Nesterov can be fused with the backward pass: fused_begin, instead of
 * begin_step, before each dense-chain backward pass that takes the step it returns. */
int nnl_optim_fusable(const nnl_optim *o);
nnl_sgd_fused nnl_optim_fused_begin(nnl_optim *o, const float *params, float lr);
/* Learning rate at a (fractional) epoch position for the options' schedule and warm-up. */
double nnl_schedule_lr(const nnl_train_opts *o, double epoch);

#endif
