/*
 * The layer interface. A model is a sequence of layers over ONE parameter buffer
 * (params), with gradients (grads) and non-trainable state (state: batch-norm
 * running statistics) mirroring it. Activations are NCHW float32.
 *
 * Conventions every layer follows:
 *  - forward writes y (overwrites);
 *  - backward ACCUMULATES parameter gradients into P->grads (zeroing is the
 *    model's separate step) -- unless P->grad_assign and the layer's ops say
 *    assigns_grads -- and OVERWRITES dx; dx may be NULL (first layer) and
 *    then must not be computed;
 *  - a layer may keep data for its backward in L->save (save_floats() floats for
 *    the largest batch, allocated once by the model) and use P->work (transient,
 *    work_floats() floats, shared by all layers, valid only during one call);
 *  - nothing is allocated in forward or backward;
 *  - results depend on the thread count at most, never on thread timing.
 */
#ifndef NNL_LAYER_H
#define NNL_LAYER_H

#include "../core/core.h"

/* Layer kinds. These numbers are written to model files: never renumber. */
enum {
    NNL_L_DENSE = 1,
    NNL_L_CONV2D = 2,
    NNL_L_MAXPOOL = 3,
    NNL_L_AVGPOOL = 4,
    NNL_L_GAP = 5,
    NNL_L_BATCHNORM = 6,
    NNL_L_RELU = 7,
    NNL_L_DROPOUT = 8,
    NNL_L_FLATTEN = 9,
    NNL_L_ADD = 10,
    NNL_L_GELU = 11,
    NNL_L_SCALE = 12,
    NNL_L_RECALL = 13,
    NNL_L_KIND_END
};

typedef struct nnl_shape { int c, h, w; } nnl_shape;
static inline size_t nnl_shape_size(nnl_shape s) { return (size_t)s.c * s.h * s.w; }

typedef struct nnl_layer {
    int kind;
    nnl_shape in, out;       /* per sample */
    /* hyper-parameters */
    int units;               /* dense: outputs; conv: output channels */
    int k, stride, pad;      /* conv, pools */
    float p;                 /* dropout probability; scale: the factor */
    int src;                 /* add: activation index added to the input (0 = model input);
                                recall: the activation recalled */
    /* flags from the spec (arch.c): no bias (conv, dense: "b0"); identity initialisation
     * (conv "i": the first min(in, out) output channels pass their input channel through,
     * airbench's dirac init); weights never trained (fixed_w: "bnb", a batch-norm whose scale
     * stays 1; conv "w", the whitening layer, whose weights nnl_model_whiten computes). */
    int nobias, ident, fixed_w, whiten;
    int torch_init;          /* conv, dense "t": PyTorch's default uniform bound 1/sqrt(fan_in), not He's */
    /* offsets (in floats) of this layer's tensors in params/grads and state */
    size_t w_off, w_n;       /* dense (out,in); conv (oc,ic,k,k); bn gamma */
    size_t b_off, b_n;       /* bias; bn beta */
    size_t s_off, s_n;       /* bn: running mean (c) then running var (c) */
    /* runtime buffers, owned by the model */
    float *save;             /* save_floats(L, max_batch) floats */
    const float *skip;       /* add: the source activation */
    float *dskip;            /* add: where backward accumulates the source's gradient */
    int index;               /* position in the model */
    /* Batch-norm then ReLU run as one pass (see nnl_model_prepare): the batch-norm
     * (relu = 1) writes the ReLU's output and, in backward, takes the ReLU's output
     * and gradient; the ReLU (folded = 1) is skipped. */
    int relu, folded;
} nnl_layer;

typedef struct nnl_pass {
    int n;                   /* batch size of this call */
    int training;            /* batch statistics and dropout on */
    const float *params;
    float *grads;            /* NULL in inference */
    float *state;
    float *work;             /* shared scratch */
    uint64_t seed;           /* dropout: mask = f(seed, step, layer, element) */
    uint64_t step;
    float bn_momentum;
    float bn_eps;
    /* 1: a layer that can may WRITE its parameter gradients instead of adding to them
     * (saves zeroing them first); the model zeroes the others' gradients itself. */
    int grad_assign;
    /* 1: this call is a batch-norm with its ReLU folded in (L->relu): forward writes
     * relu(bn(x)); backward gets that output as y and its gradient as dy. */
    int relu;
} nnl_pass;

typedef struct nnl_layer_ops {
    const char *name;
    /* From L->in and the hyper-parameters: set L->out, L->w_n, L->b_n, L->s_n.
     * Returns NNL_OK or NNL_ERR_SHAPE/ARG through nnl_fail. */
    int (*setup)(nnl_layer *L);
    /* Initialise this layer's parameters and state (params + L->w_off ...). */
    void (*init)(const nnl_layer *L, float *params, float *state, nnl_rng *rng);
    size_t (*save_floats)(const nnl_layer *L, int batch);
    size_t (*work_floats)(const nnl_layer *L, int batch);
    void (*forward)(nnl_layer *L, const nnl_pass *P, const float *x, float *y);
    void (*backward)(nnl_layer *L, const nnl_pass *P, const float *x, const float *y,
                     const float *dy, float *dx);
    /* Multiply-adds of one sample's forward pass (for FLOP counts). */
    double (*macs)(const nnl_layer *L);
    /* 1 if backward honours P->grad_assign (writes its gradients when it is set). */
    int assigns_grads;
} nnl_layer_ops;

/* The ops table for a kind, NULL for an unknown kind. */
const nnl_layer_ops *nnl_layer_ops_of(int kind);

extern const nnl_layer_ops nnl_dense_ops, nnl_conv2d_ops, nnl_maxpool_ops, nnl_avgpool_ops,
    nnl_gap_ops, nnl_batchnorm_ops, nnl_relu_ops, nnl_dropout_ops, nnl_flatten_ops, nnl_add_ops, nnl_gelu_ops,
    nnl_scale_ops, nnl_recall_ops;

#endif
