/* The model: layers over one parameter buffer, and the runtime buffers of a batch. */
#ifndef NNL_MODEL_H
#define NNL_MODEL_H

#include "layer.h"

#define NNL_MAX_LAYERS 256
#define NNL_MAX_META 64
#define NNL_MAX_TAPS 32

struct nnl_model {
    char *arch;              /* as given: a preset name or a spec */
    char *spec;              /* the expanded spec the layers were built from */
    nnl_shape input;
    int nclass;
    int nlayers;
    nnl_layer *layers;
    size_t nparams, nstate;
    float *params, *grads, *state;
    float mean[NNL_MAX_CHANNELS], std[NNL_MAX_CHANNELS];
    char **class_names;      /* nclass entries or NULL */
    int nmeta;
    char *meta_keys[NNL_MAX_META], *meta_vals[NNL_MAX_META];
    /* runtime, sized by nnl_model_prepare for batches up to max_batch */
    int max_batch;
    int threads;             /* thread count the workspaces were sized for */
    int last_training;       /* mode of the last forward pass, for backward */
    uint64_t last_seed, last_step; /* dropout masks of the last forward pass */
    float **acts;            /* nlayers + 1: acts[0] input, acts[i + 1] output of layer i */
    float **dacts;           /* gradients of acts (dacts[0] unused) */
    float **skipgrad;        /* per activation: extra gradient from add layers, or NULL */
    float *save;             /* backing store of every layer's L->save */
    float *work;
    size_t work_n;
    float *logits_buf;       /* for batched inference helpers */
    float *wpack;            /* dense chain with AVX-512: its weights in strips (nnl_dense_pack_w), */
    int wpack_ok;            /* kept by the fused SGD step once made (0: make it again) */
    int chain;               /* 1: dense/ReLU only, run by the dense-chain fast path (tests may clear it) */
    int fold;                /* 1: batch-norm + ReLU pairs run as one layer (tests may clear it) */
    /* Named activations (@name in the spec): activation index (0 = input, i + 1 = output
     * of layer i). Every optimisation leaves a named activation written (choose_paths). */
    int ntaps;
    struct { char name[32]; int act; } taps[NNL_MAX_TAPS];
    int input_grad;          /* 1: backward also writes dacts[0], the gradient of the input */
    int frozen;              /* layers [0, frozen) are frozen: eval mode, never updated */
};

/* nnl_model_create, refusing (NNL_ERR_SHAPE) before allocating anything large an architecture
 * with more than max_floats parameters and statistics: a model file's header must not make
 * us allocate more than the file holds. */
int nnl_model_create_within(nnl_model **out, const char *arch, int c, int h, int w, int nclass, size_t max_floats);
/* Builds the layers from an expanded spec. */
int nnl_model_build(nnl_model *m, const char *spec);
/* Expands a preset name ("mlp", "cnn") to a spec; returns arch itself if not a preset. */
const char *nnl_arch_expand(const char *arch, nnl_shape in, int nclass, char *buf, size_t size);
/* The batch to run `want` images at: at most about 512 MB of activations and their
 * gradients, or the batch the model is already prepared for if that is larger. */
int nnl_model_batch_within(const nnl_model *m, int want);
/* Allocates activations, gradients and workspaces for batches up to `batch` (once). */
int nnl_model_prepare(nnl_model *m, int batch);
/* Forward pass; x has n samples of m->input. Returns the logits (n x nclass), owned by m. */
const float *nnl_model_forward(nnl_model *m, const float *x, int n, int training,
                               uint64_t seed, uint64_t step, float bn_momentum);
/* The pass settings nnl_model_forward gives its layers. */
nnl_pass nnl_model_pass(nnl_model *m, int n, int training, uint64_t seed, uint64_t step, float bn_momentum);
/* The steps of the layer-by-layer passes, one layer at a time (bench_layers times them).
 * Forward: acts[i] -> acts[i + 1]; a folded ReLU is done by its batch-norm.
 * Backward: begin() zeroes the skip gradients and sets the logits' gradient; then
 * layer_backward() from the last layer down, honouring P->grad_assign. */
void nnl_model_layer_forward(nnl_model *m, const nnl_pass *P, int i);
void nnl_model_backward_begin(nnl_model *m, const float *dlogits, int n);
void nnl_model_layer_backward(nnl_model *m, const nnl_pass *P, int i);
/* The passes over a range of activations [from, to] (0 = input, nlayers = logits), for a lock
 * that works on part of the network (the gate lock's head). Forward: acts[from] -> acts[to],
 * layers below m->frozen in eval mode. Backward: from dacts[to], which the caller sets, down
 * to dacts[from] (from 0: only with m->input_grad); the parameter gradients of the layers in
 * between as P->grad_assign says. A batch-norm + ReLU pair is folded only when both lie in the
 * range: a boundary inside a pair gets the unfused pair. */
void nnl_model_forward_range(nnl_model *m, const nnl_pass *P, int from, int to);
void nnl_model_backward_range(nnl_model *m, const nnl_pass *P, int from, int to);
/* Adds to acc[k], for each of the n samples of activation y (each of shape s), the mean of its
 * channel k over the positions, divided by div (n: the batch's mean). */
void nnl_act_add_channel_means(const float *y, int n, nnl_shape s, double div, double *acc);
/* The activation index of a named activation, -1 if the model has none of that name. */
int nnl_model_tap_act(const nnl_model *m, const char *name);
/* Like nnl_model_tap_act, but a missing name fails (NNL_ERR_ARG) with a message naming the ones
 * there are. */
int nnl_model_find_tap(const nnl_model *m, const char *name, int *act);
/* The shape of activation a. */
nnl_shape nnl_model_act_shape(const nnl_model *m, int a);
/* Weights were changed outside the optimizer (Lookahead, a hook): copies of them kept by a
 * fast path are made again before they are next used. */
void nnl_model_params_changed(nnl_model *m);
/* Backward pass after a training forward of the same batch: ACCUMULATES into m->grads. */
void nnl_model_backward(nnl_model *m, const float *dlogits, int n);
/* Backward pass that SETS m->grads to this batch's gradients (no zeroing needed first). */
void nnl_model_backward_fresh(nnl_model *m, const float *dlogits, int n);
void nnl_model_zero_grad(nnl_model *m);
/* Normalises 8-bit CHW images into float input. */
void nnl_model_normalize(const nnl_model *m, const uint8_t *px, int64_t n, float *x);
/* The model's input from 8-bit images that went through hooks->sample: normalised, after the
 * hooks' float stage (to_float) when they have one. Image i is the data set's image idx[i]
 * (idx NULL: first + i), the index its float stage is given. */
void nnl_model_input(const nnl_model *m, const uint8_t *px, int64_t n, const nnl_hooks *hooks, int64_t first,
                     const int64_t *idx, float *x);
/* The seed evaluation passes hooks (nnl_mix64(seed ^ image index)), so that a random
 * certificate placement or a key-dependent transform is the same on every run, and the
 * same in nnl_model_predict_hooked as in nnl_evaluate. */
#define NNL_EVAL_HOOK_SEED 0x5eedULL
/* hooks->sample (if any) on n 8-bit images in place, as an evaluation pass gives them: image
 * j is the data set's image first + j with its label labels[j] and that seed. The label the
 * hook returns is ignored; soft is room for nclass floats. */
void nnl_model_eval_hooks(const nnl_hooks *hooks, uint8_t *px, int64_t n, int c, int h, int w, int64_t first,
                          const int32_t *labels, float *soft);
/* Training FLOPs of one sample (forward + backward, multiply-add = 2 FLOPs). */
double nnl_model_train_flops(const nnl_model *m);

/* The fast path for networks of dense layers, each optionally followed by a ReLU, ending in
 * a dense layer (dense_chain.c). ok() says whether the model qualifies on this BLAS. */
typedef void (*nnl_param_update_fn)(void *user, size_t begin, size_t end);
int nnl_dense_chain_ok(const nnl_model *m);
/* acts[0] -> acts[nlayers], every activation in between written as the layers would,
 * except the input of each ReLU (nothing reads it again; with AVX-512 it is not written). */
void nnl_dense_chain_forward(nnl_model *m, int n);
/* SGD fused into the backward pass (optim.c explains acc): for every parameter,
 * acc += g; w -= lr * acc; acc = mu * acc + wd * w. */
/* fresh: the weights may have changed since the last fused step (the first step of a run),
 * so copies of them kept by the step itself must be made again. */
typedef struct { float *acc; float lr, mu, wd; int fresh; } nnl_sgd_fused;
/* From dacts[nlayers] (the logits' gradient). Without f: SETS m->grads and calls
 * update(user, begin, end) exactly once for every parameter index range, as soon as no
 * thread reads those parameters any more (from inside the parallel region, so update must
 * be single-threaded). With f: takes the SGD step itself; m->grads is then scratch. */
void nnl_dense_chain_backward(nnl_model *m, int n, const nnl_sgd_fused *f, nnl_param_update_fn update,
                              void *user);
/* The fused step for rows of a dense layer's weights (dense_sgd.c): g = dy^T x over a batch
 * of n, dy with row stride ldy, x of n x in, xp its strips packed by nnl_dense_pack_x; w and
 * acc start at the first row; ap is room for nnl_dense_pack_dy_floats(n, rows). Unless NULL,
 * wp (the first row's place in strip 0 of the layout of nnl_dense_pack_w, strips wps floats
 * apart) receives the new weights too (AVX-512 builds only). */
void nnl_dense_dw_sgd(int n, const float *dy, int ldy, const float *xp, const float *x, int in, int rows,
                      float *w, float *acc, float *ap, float *wp, size_t wps, const nnl_sgd_fused *f);
/* A dense layer's weights in strips of 32 columns, [strip][o][32] with zeros past `in`
 * (dense_dx.c): rows [o0, o1) of w into wp of nnl_dense_wp_floats(in, out). */
size_t nnl_dense_wp_floats(int in, int out);
void nnl_dense_pack_w(const float *w, int in, int out, int o0, int o1, float *wp);
/* The input gradient dy W for strips [s0, s1) of 32 input features from wp, zeroed where
 * x (the ReLU's output below, unless NULL) is not > 0, into dx (n x in). AVX-512 only. */
void nnl_dense_dx(int n, const float *dy, int out, const float *wp, int in, int s0, int s1, const float *x,
                  float *dx);
/* Packs strips [s0, s1) of x (of nnl_dense_x_strips(in)) into xp, which holds
 * nnl_dense_pack_x_floats(n, in); builds without AVX-512 need no packing and skip it. */
void nnl_dense_pack_x(int n, const float *x, int in, int s0, int s1, float *xp);
int nnl_dense_x_strips(int in);
size_t nnl_dense_pack_x_floats(int n, int in);
size_t nnl_dense_pack_dy_floats(int n, int rows);
/* The forward product of rows [o0, o1) of a dense layer (dense_fwd.c) from its input
 * transposed into xt by nnl_dense_pack_xt (columns [k0, k1) per call; room for
 * nnl_dense_xt_floats(n, in)): y = x W^T + bias, then ReLU(y) if relu, and, unless NULL,
 * the same transposed into xtn as the next layer's input. AVX-512 only. */
void nnl_dense_pack_xt(int n, const float *x, int in, int k0, int k1, float *xt);
size_t nnl_dense_xt_floats(int n, int in);
void nnl_dense_fwd(int n, const float *xt, int in, const float *w, const float *bias, int o0, int o1, int out,
                   float *y, int relu, float *xtn);
/* Workspace floats of the dense-chain backward pass for batches up to `batch`. */
size_t nnl_dense_chain_work(const nnl_model *m, int batch);
/* Floats of m->wpack (0 where the chain does not keep one). */
size_t nnl_dense_chain_wpack(const nnl_model *m);
/* The fused step on n parameters with gradients g (NULL: already added into acc). */
void nnl_sgd_fused_apply(const float *g, float *w, float *acc, size_t n, const nnl_sgd_fused *f);

/* Parses a model file image held in memory (what nnl_model_load reads). */
int nnl_model_from_memory(nnl_model **out, const uint8_t *data, size_t size);

/* Softmax cross-entropy, mean over the batch. Hard labels (soft == NULL) or soft targets
 * (n x k, rows summing to 1); label smoothing eps mixes targets with uniform.
 * Writes dlogits = d(mean loss)/d(logits) if dlogits != NULL and counts correct
 * arg-max predictions (hard labels, or arg-max of soft) into *correct. Returns the mean loss. */
double nnl_softmax_xent(const float *logits, const int32_t *labels, const float *soft, int n,
                        int k, float smoothing, float *dlogits, int64_t *correct);

#endif
