/*
 * nnlock: neural networks that lock themselves against unauthorized use.
 *
 * One public header. Every function returns an nnl_status (0 = NNL_OK) unless it
 * says otherwise; on failure nnl_errmsg() holds a one-line message naming the
 * problem (thread-local, valid until the next failing call on that thread).
 * The library never prints and never exits.
 *
 * A worked example: train the M-LOCK `mlp` on Fashion-MNIST and save it.
 *
 *     nnl_dataset train, test;
 *     nnl_model *m;
 *     nnl_train_opts o;
 *     if (nnl_dataset_load(&train, "/usr/share/datasets/fashion-mnist", NNL_SPLIT_TRAIN) ||
 *         nnl_dataset_load(&test,  "/usr/share/datasets/fashion-mnist", NNL_SPLIT_TEST))
 *         { fprintf(stderr, "%s\n", nnl_errmsg()); return 1; }
 *     if (nnl_model_create(&m, "mlp", train.c, train.h, train.w, train.nclass)) ...
 *     nnl_train_opts_default(&o);
 *     o.epochs = 10;
 *     if (nnl_train(m, &train, &test, &o, NULL)) ...
 *     if (nnl_model_save(m, "fmnist.nnl")) ...
 *     nnl_model_free(m); nnl_dataset_free(&train); nnl_dataset_free(&test);
 */
#ifndef NNLOCK_H
#define NNLOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NNL_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */

#define NNL_STATUS_TABLE(X)                                              \
    X(NNL_OK, "success")                                                  \
    X(NNL_ERR_NOMEM, "out of memory")                                     \
    X(NNL_ERR_IO, "input/output error")                                   \
    X(NNL_ERR_FORMAT, "malformed or corrupt file")                        \
    X(NNL_ERR_ARG, "invalid argument")                                    \
    X(NNL_ERR_SHAPE, "shape mismatch")                                    \
    X(NNL_ERR_UNSUPPORTED, "unsupported feature")                         \
    X(NNL_ERR_KEY, "wrong or unusable key")                               \
    X(NNL_ERR_LOCKED, "model is locked")                                  \
    X(NNL_ERR_NUMERIC, "numerical failure (NaN or Inf)")

typedef enum {
#define NNL_X_ENUM(name, text) name,
    NNL_STATUS_TABLE(NNL_X_ENUM)
#undef NNL_X_ENUM
    NNL_STATUS_COUNT
} nnl_status;

/* Generic text for a status code. */
const char *nnl_strerror(int status);
/* Detailed one-line message of the last failure on this thread ("" if none). */
const char *nnl_errmsg(void);

/* ---------------------------------------------------------------- runtime */

/* Threads used by nnlock's own loops and by OpenBLAS. 0 = all cores. NNL_ERR_NOMEM (and the
 * count unchanged) when the address-space limit (ulimit -v) leaves no room for OpenBLAS's
 * per-thread buffers, which it would otherwise wait for forever. */
int nnl_set_threads(int n);
/* The cores this process may run on. */
int nnl_cores(void);
int nnl_get_threads(void);

/*
 * OpenBLAS 0.3.21 mis-detects AMD Zen 5 and falls back to Haswell kernels; the
 * SkylakeX kernels are about 2x faster there. OpenBLAS reads OPENBLAS_CORETYPE
 * once, when it is loaded, so a program must set it before it starts. This
 * returns 1 when the CPU has AVX-512F and OPENBLAS_CORETYPE is unset or names the
 * Haswell fallback (some machine images export that), i.e. when a
 * program should set OPENBLAS_CORETYPE=SkylakeX and re-execute itself.
 */
int nnl_blas_wants_skylakex(void);
/* Re-executes the running program with argv (once: NNL_NO_REEXEC guards against loops)
 * after setting what must be set before OpenBLAS and libgomp load: OPENBLAS_CORETYPE=SkylakeX
 * when nnl_blas_wants_skylakex(), and GOMP_SPINCOUNT=2000 when neither it nor OMP_WAIT_POLICY
 * is set (long spin-waits collapse throughput when other programs share the cores). Returns
 * only when nothing was needed or the exec failed; the program then runs as it is. */
void nnl_blas_reexec(char **argv);

/* ---------------------------------------------------------------- files */

/*
 * Every file nnlock writes is written atomically: to a temporary file in the same
 * directory (without a name, where the file system allows it), flushed to disk, then
 * renamed over the target, so a failure, a full disk or a kill leaves the old file as it
 * was. A target that is a symbolic link is written through (the file it leads to is
 * replaced; a link to nothing is refused); one that exists and is not a regular file (a
 * device, a directory, a FIFO) is refused. A replaced file keeps its mode; a new one gets
 * 0666 less the umask. Flags, where a save takes them:
 */
enum {
    NNL_WRITE_SECRET = 1, /* the file holds or shows a secret: 0600 from its first byte; a
                             replaced file loses its group and other permissions */
    NNL_WRITE_NEW = 2,    /* refuse an existing file; created exclusively, so of two writers
                             racing for the name exactly one succeeds */
    NNL_WRITE_DIR = 4     /* nnl_check_writable: path is a directory to create or write into */
};
/* Checks before a long computation that its output can be written: the target is not a
 * device or directory (or with NNL_WRITE_DIR, not a file), does not exist (NNL_WRITE_NEW),
 * and a file can be created in its directory (exists, writable, not a read-only mount). */
int nnl_check_writable(const char *path, int flags);
/* Removes the named temporary file of a save in progress, if there is one. Only unlinks:
 * async-signal-safe, for a SIGINT/SIGTERM handler (the default action should follow). */
void nnl_discard_partial_files(void);

/* ---------------------------------------------------------------- data */

enum { NNL_SPLIT_TRAIN = 0, NNL_SPLIT_TEST = 1 };

#define NNL_MAX_CLASSES 1000
#define NNL_MAX_CHANNELS 4

/* An image-classification data set held as 8-bit pixels, planar CHW per image. */
typedef struct nnl_dataset {
    int64_t n;        /* images */
    int c, h, w;      /* channels, height, width */
    int nclass;       /* classes; labels are 0..nclass-1 */
    uint8_t *pixels;  /* n * c * h * w bytes, image i at pixels + i*c*h*w */
    int32_t *labels;  /* n labels */
    char **class_names; /* nclass strings (may be NULL) */
    char source[64];  /* format name, e.g. "idx", "cifar10", "imagefolder" */
} nnl_dataset;

/*
 * Loads a split of a data set from a path; the format is detected:
 *  - a directory with IDX files (train-images-idx3-ubyte[.gz], t10k-...) (MNIST, Fashion-MNIST)
 *  - a directory with CIFAR-10 binary batches (data_batch_N.bin, test_batch.bin) or CIFAR-100
 *    (train.bin, test.bin), also inside a cifar-10-batches-bin/ or cifar-100-binary/ subfolder
 *  - a directory with SVHN's train_32x32.mat / test_32x32.mat (MATLAB v5)
 *  - a directory with GTSRB's official Final_Training/ and Final_Test/ trees
 *  - a directory in the image-folder layout: train/<class>/<img>, test/<class>/<img>
 *    (PNG, JPEG, PPM/PGM; every image must have the size of the first)
 */
int nnl_dataset_load(nnl_dataset *ds, const char *path, int split);
/* Format-specific loaders. */
int nnl_idx_load(nnl_dataset *ds, const char *images_path, const char *labels_path);
/* mode: 0 = CIFAR-10, 1 = CIFAR-100 with fine labels (100), 2 = CIFAR-100 coarse (20). */
int nnl_cifar_load(nnl_dataset *ds, const char *const *files, int nfiles, int mode);
int nnl_imagefolder_load(nnl_dataset *ds, const char *dir);
/* SVHN cropped digits: one MATLAB v5 file (train_32x32.mat / test_32x32.mat): 3x32x32, labels 0..9
 * (the file's 10 = digit 0). */
int nnl_svhn_load(nnl_dataset *ds, const char *mat_path);
/* GTSRB official layout under dir (or dir/GTSRB): each image cropped to its ROI when crop_roi, then
 * resized to size x size, 3 channels, 43 classes "0".."42". size 0 / crop_roi -1 = the defaults.
 * *roi_clamped (may be NULL) = ROIs that reached outside their image and were clamped. */
int nnl_gtsrb_load(nnl_dataset *ds, const char *dir, int split, int size, int crop_roi, int64_t *roi_clamped);
/* Size (default 32) and cropping (default off) that nnl_dataset_load uses for GTSRB. */
int nnl_gtsrb_set_defaults(int size, int crop_roi);
/* 1 if nnl_dataset_load crops GTSRB images to their ROI (nnl_gtsrb_set_defaults). */
int nnl_gtsrb_crop_roi(void);
/* ROIs clamped by this thread's last GTSRB load: a warning for the caller to print. */
int64_t nnl_gtsrb_last_roi_clamped(void);
/* Images of that load that were not the size their CSV row gives (the copy was resized after
 * the CSVs were written): their ROIs were scaled to the images' sizes. A warning too. */
int64_t nnl_gtsrb_last_resized(void);
/* Decodes one image file (PNG, JPEG, PPM/PGM) into planar CHW bytes (malloc'd). */
int nnl_image_load(const char *path, uint8_t **pixels, int *c, int *h, int *w);
/* Writes planar CHW bytes as a PNG (atomically; flags: NNL_WRITE_*, e.g. NNL_WRITE_SECRET for
 * an image that shows a certificate). */
int nnl_image_save_png(const char *path, const uint8_t *pixels, int c, int h, int w, int flags);
void nnl_dataset_free(nnl_dataset *ds);
/*
 * The classes of a data set against a model's (names[0..n-1], or NULL for a model without
 * class names). Each class of ds is matched by name: the same name; the name as a folder
 * (nnl_class_folder_name); that folder name with the label in front ("3_Dress", "03"), as
 * `nnlock stamp` writes it; or a bare number for a class named by its label ("00012" for
 * "12"). The labels are renumbered to the model's classes and ds->nclass becomes n, so a
 * class folder missing from one split, or in another order, changes nothing. A class of
 * ds with images that matches none is NNL_ERR_FORMAT, naming it. ds without class names
 * (numbered classes) is left as it is; so is one whose folders are not numbers when the
 * model has no names. what ("test") names the set in messages.
 */
int nnl_dataset_match_classes(nnl_dataset *ds, char *const *names, int n, const char *what);
/* NNL_OK if every label is a class 0..nclass-1, else a message naming the first odd label,
 * its image and how many images carry it; whose names the classes ("the model" if NULL). */
int nnl_dataset_check_labels(const nnl_dataset *ds, int nclass, const char *what, const char *whose);
/* For a set a new model takes its classes from: every class below the largest label must
 * have images (classes above it may be empty). A gap means a stray label (an IDX label of
 * 200 among 0..9 would make a 201-class model) or an empty class folder: the message names it. */
int nnl_dataset_check_classes(const nnl_dataset *ds, const char *what);
/* The folder name of a class as nnlock writes it ('/' and a leading '.' become '_'). */
void nnl_class_folder_name(const char *name, char *out, size_t size);
/* Splits ds by a seeded permutation into a (n images) and b (the rest), disjoint copies
 * without class names (the labels keep ds's numbering): an attacker's few labelled images and
 * the images the attack is measured on. */
int nnl_dataset_split(const nnl_dataset *ds, int64_t n, uint64_t seed, nnl_dataset *a, nnl_dataset *b);
/* Keeps the first n images (n <= ds->n). */
void nnl_dataset_truncate(nnl_dataset *ds, int64_t n);
/* Keeps n images drawn at random without replacement (seeded), in their original order. */
void nnl_dataset_sample(nnl_dataset *ds, int64_t n, uint64_t seed);

/* ---------------------------------------------------------------- models */

typedef struct nnl_model nnl_model;

/*
 * Creates a model for inputs of c x h x w and nclass outputs.
 * arch: a preset ("mlp", "cnn") or a spec such as
 *   "conv32k3p1,relu,maxpool2,conv64k3p1,relu,maxpool2,flatten,dense256,relu,dense"
 * (see `nnlock help arch`). Weights are left uninitialised: call nnl_model_init.
 */
int nnl_model_create(nnl_model **out, const char *arch, int c, int h, int w, int nclass);
void nnl_model_free(nnl_model *m);
/* Transfer learning to another task: *m becomes the same architecture for nclass classes;
 * the layers whose shapes do not depend on the class count keep their weights (and
 * normalisation and metadata), the others (the last layer) are initialised from seed. */
int nnl_model_replace_head(nnl_model **m, int nclass, uint64_t seed);
int nnl_model_init(nnl_model *m, uint64_t seed);
/* The whitening layer (a first convolution with the spec flag 'w', e.g. conv24k2w): its filters
 * become the eigenvectors of the covariance of the k x k patches of the first nimages images of
 * ds, normalised with the model's normalisation (set it first), each scaled by 1/sqrt(eigenvalue
 * + eps), and their negatives (airbench; eps 5e-4 there). Nothing to do for a model without one.
 * With hooks (NULL: none) each image first goes through them as a training image does (sample,
 * then to_float), so that the layer whitens what the network is trained on: the transformed
 * images of a key-transform lock, not the plain ones. */
struct nnl_hooks;
int nnl_model_whiten(nnl_model *m, const nnl_dataset *ds, int64_t nimages, const struct nnl_hooks *hooks, float eps);
/* Input normalisation applied to 8-bit pixels: x = (p/255 - mean[ch]) / std[ch]. */
int nnl_model_set_norm(nnl_model *m, const float *mean, const float *std);
/* Computes the per-channel mean and std of a data set (of pixels / 255). */
void nnl_dataset_stats(const nnl_dataset *ds, float *mean, float *std);
int nnl_model_set_class_names(nnl_model *m, char *const *names, int n);
const char *nnl_model_class_name(const nnl_model *m, int k); /* NULL if unnamed */
const char *nnl_model_arch(const nnl_model *m);
void nnl_model_input_shape(const nnl_model *m, int *c, int *h, int *w);
int nnl_model_nclass(const nnl_model *m);
size_t nnl_model_param_count(const nnl_model *m);
/* A named activation (@NAME in the spec, e.g. the gate lock's "@gate"): its values in the last
 * forward pass (n x c x h x w floats, owned by m, valid until the next pass), shape in c, h, w
 * (each may be NULL). NULL for a name the model does not have, or before the first pass. Every
 * optimisation of the engine leaves a named activation written. */
const float *nnl_model_act(const nnl_model *m, const char *name, int *c, int *h, int *w);
/* The names, ", "-separated, into buf; returns how many there are. */
int nnl_model_tap_names(const nnl_model *m, char *buf, size_t size);
/* Freezes every layer before the activation named `below` (NULL or "": none): they run in
 * evaluation mode (batch-norm on its running statistics, no dropout), training changes none of
 * their parameters (no update, no weight decay), and gradients still flow through them. */
int nnl_model_freeze(nnl_model *m, const char *below);
int nnl_model_frozen_layers(const nnl_model *m);   /* how many layers are frozen */
/* on: backward passes also compute the gradient of the loss with respect to the input,
 * nnl_model_input_grad (n x c x h x w floats of the last backward pass, owned by m; NULL when
 * off or before the first pass). */
void nnl_model_set_input_grad(nnl_model *m, int on);
const float *nnl_model_input_grad(const nnl_model *m);
struct nnl_hooks;
/* The mean of each channel of the activation `name` over the first nimages images of ds (0: all),
 * over images and positions, in evaluation mode, each image given as an evaluation pass gives it
 * (through hooks, NULL: none). mean has room for the activation's channels. */
int nnl_model_channel_means(nnl_model *m, const nnl_dataset *ds, const struct nnl_hooks *hooks, const char *name,
                            int64_t nimages, double *mean);
/* Writes a human-readable description of the layers into buf (always NUL-terminated). */
void nnl_model_describe(const nnl_model *m, char *buf, size_t size);

/* Free-form metadata (string key -> string value), stored in the model file. */
int nnl_model_meta_set(nnl_model *m, const char *key, const char *value);
const char *nnl_model_meta_get(const nnl_model *m, const char *key);
/* Removes every entry whose key starts with prefix. */
void nnl_model_meta_remove_prefix(nnl_model *m, const char *prefix);
int nnl_model_meta_count(const nnl_model *m);
const char *nnl_model_meta_key(const nnl_model *m, int i);

/* A PyTorch state_dict saved in the safetensors format, as a model of architecture arch for
 * c x h x w inputs (the classes from its last layer): every tensor's name and shape is checked
 * (a missing, extra or mis-shaped tensor is an error naming it; batch-norm's num_batches_tracked
 * is ignored). The presets lenet5 and vgg13 take AuthNet's names (c1.c1.c1.weight ...; head.0.weight
 * ..., tail.0.weight ..., fc1, fc2), any other architecture "layers.I.weight" for its layer I,
 * the module `nnlock export --torch` writes. The normalisation is left at x / 255. */
int nnl_model_import_torch(nnl_model **out, const char *arch, int c, int h, int w, const char *path);
/* The model's tensors back as such a state_dict (with num_batches_tracked = 0), for
 * load_state_dict(strict=True). */
int nnl_model_export_torch(const nnl_model *m, const char *path);
/* Writes (atomically) the Python source of the matching PyTorch module, class Net. */
int nnl_model_write_torch_module(const nnl_model *m, const char *path);
/* Saves (atomically: temporary file + rename) and loads the safetensors model file. */
int nnl_model_save(const nnl_model *m, const char *path);
int nnl_model_load(nnl_model **out, const char *path);

/* Every stored tensor, in file order: the parameters and the batch-norm statistics. */
int nnl_model_tensor_count(const nnl_model *m);
/* Name, element count and data of tensor i (float32, contiguous). */
float *nnl_model_tensor(nnl_model *m, int i, const char **name, size_t *count);

/*
 * Inference in eval mode on 8-bit images (n x c x h x w, normalised with the model's
 * normalisation). probs: n x nclass softmax probabilities (may be NULL); pred: n labels
 * (may be NULL).
 */
int nnl_model_predict(nnl_model *m, const uint8_t *pixels, int64_t n, float *probs, int32_t *pred);
/* Inference on already-normalised float input (n x c x h x w); logits: n x nclass. */
int nnl_model_logits(nnl_model *m, const float *x, int64_t n, float *logits);

/* ---------------------------------------------------------------- training */

enum { NNL_OPT_SGD = 0, NNL_OPT_ADAM = 1 };
enum { NNL_SCHED_CONSTANT = 0, NNL_SCHED_STEP = 1, NNL_SCHED_COSINE = 2, NNL_SCHED_TRIANGLE = 3 };

/* Seams where a lock plugs into training and evaluation. */
typedef struct nnl_hooks {
    void *user;
    /*
     * Called for each training or evaluation image before normalisation, on its 8-bit
     * pixels (c x h x w, may be modified in place), with the image's index in the data
     * set, its label and the pass seed (stable per epoch and image). Returns a new hard
     * label (>= 0), or -1 to keep it, or -2 to use the soft target written into
     * `soft` (nclass floats summing to 1).
     */
    int (*sample)(void *user, uint8_t *img, int c, int h, int w, int64_t index, int label,
                  uint64_t seed, float *soft);
    /*
     * Optional (NULL: x = p / 255): the image's input values x (p / 255 is in [0, 1]), before
     * the model's normalisation, from its 8-bit pixels after `sample`, with the index `sample`
     * was given; for a lock whose transform does not map 8-bit values to 8-bit values (the
     * key-transform lock's `ffx`, the gate lock's mask and offset).
     */
    void (*to_float)(void *user, const uint8_t *img, int c, int h, int w, int64_t index, float *x);
} nnl_hooks;

typedef struct nnl_progress {
    int epoch, epochs;
    int64_t batch, batches;     /* within the epoch */
    double loss, acc;           /* running means over the epoch so far */
    double images_per_s, eta_s; /* whole run */
    double lr;
    int epoch_done;             /* 1 at the end of an epoch: test_acc is set */
    double test_acc;            /* -1 if no test set */
    double test_loss;
} nnl_progress;

typedef struct nnl_train_opts {
    int epochs;          /* default 10 */
    int batch;           /* default 128 */
    float lr;            /* default 0.01 (SGD) */
    int optimizer;       /* NNL_OPT_SGD (default) or NNL_OPT_ADAM */
    float momentum;      /* SGD momentum, default 0.9 */
    int nesterov;        /* default 0 */
    float weight_decay;  /* default 5e-4 */
    float beta1, beta2, eps; /* Adam: 0.9, 0.999, 1e-8 */
    int schedule;        /* default NNL_SCHED_COSINE */
    int step_size;       /* step schedule: epochs per step, default 10 */
    float gamma;         /* step schedule factor, default 0.1 */
    float warmup;        /* linear warm-up, in epochs (fractional allowed), default 0 */
    float label_smoothing; /* default 0 */
    float bn_momentum;   /* running statistics, default 0.1 (PyTorch convention) */
    uint64_t seed;       /* default 1 */
    int augment_crop;    /* pad for random crop, 0 = off (default) */
    int augment_flip;    /* 1: random horizontal flips; 2: alternating (derandomised, airbench): each
                            image flipped at random once, then all of them flipped every other
                            epoch; default 0: off */
    int augment_translate; /* random translation by up to N pixels with reflect padding (airbench); 0 = off */
    int compute_norm;    /* 1 (default): set the model's normalisation from the train set */
    /* airbench's recipe (Keller Jordan, arXiv 2404.00498); each off by default: */
    double epochs_exact; /* > 0: train this many epochs, the last one partial (9.9); epochs = its ceiling */
    int drop_last;       /* 1: the last, incomplete batch of each epoch is skipped */
    float bn_bias_lr;    /* learning-rate multiplier of batch-norm biases, their weight decay divided by
                            it so the decay stays the same (airbench 64); 0 or 1: none */
    float whiten_bias_epochs; /* the whitening layer's bias trains this many epochs, then stays (0: always) */
    float sched_start, sched_peak, sched_end; /* NNL_SCHED_TRIANGLE: lr x start at the first step, lr
                            at the fraction sched_peak of the run, lr x end at its last step */
    int ema_every;       /* Lookahead (airbench's EMA): every N steps, from epoch ema_start, the weights
                            become ema += (1 - rho) (w - ema), w = ema, with rho = ema_decay^N x
                            (step / steps)^ema_pow; and w = ema at the end of the run. 0: off */
    float ema_start, ema_decay, ema_pow;
    const nnl_hooks *hooks;       /* training-time hook (labels, inputs), may be NULL */
    const nnl_hooks *eval_hooks;  /* hook for the per-epoch test pass, may be NULL */
    void (*progress)(const nnl_progress *p, void *user);
    void *progress_user;
    /* Called after every epoch (after the test pass) with the model in its current state,
     * e.g. to record extra metrics. A non-zero return stops training with that status. */
    int (*epoch_end)(nnl_model *m, int epoch, void *user);
    void *epoch_end_user;
    /* The objective (NULL: softmax cross-entropy), see nnl_loss_fn. */
    double (*loss)(void *user, const nnl_model *m, const float *logits, const int32_t *labels, const float *soft,
                   int n, float *dlogits, int64_t *correct);
    void *loss_user;
} nnl_train_opts;

void nnl_train_opts_default(nnl_train_opts *o);

typedef struct nnl_train_result {
    double final_loss, final_acc, test_acc, seconds, images_per_s;
} nnl_train_result;

/* A training objective on a batch's logits (n x nclass): the model's named activations of the
 * same batch can be read with nnl_model_act. Writes dlogits = d(loss)/d(logits), adds the
 * correct predictions to *correct, returns the batch's mean loss. (The default, NULL in the
 * options: softmax cross-entropy with the options' label smoothing.) */
typedef double (*nnl_loss_fn)(void *user, const nnl_model *m, const float *logits, const int32_t *labels,
                              const float *soft, int n, float *dlogits, int64_t *correct);
/* The open training loop, for a caller that does its own work between steps: init (checks the
 * options and data, allocates everything, begins epoch 1); step trains the next batch and sets
 * *epoch_done after the epoch's last; epoch ends the epoch (the averaged weights at the very end,
 * the test pass when test is given, epoch_end, progress), sets *finished after the last and
 * otherwise begins the next; result reports as nnl_train does. nnl_train is this loop. */
typedef struct nnl_trainer nnl_trainer;
int nnl_trainer_init(nnl_trainer **t, nnl_model *m, const nnl_dataset *train, const nnl_train_opts *o);
int nnl_trainer_step(nnl_trainer *t, int *epoch_done);
int nnl_trainer_epoch(nnl_trainer *t, const nnl_dataset *test, int *finished);
void nnl_trainer_result(const nnl_trainer *t, nnl_train_result *res);
void nnl_trainer_free(nnl_trainer *t);
/* Trains m (initialise it first). test may be NULL. res may be NULL. */
int nnl_train(nnl_model *m, const nnl_dataset *train, const nnl_dataset *test,
              const nnl_train_opts *o, nnl_train_result *res);

/* ---------------------------------------------------------------- evaluation */

typedef struct nnl_eval {
    int nclass;
    int64_t n, correct;
    double loss;
    int64_t *confusion;   /* nclass x nclass, row = true label, column = prediction */
    int64_t invalid;      /* images whose outputs held NaN or Inf: wrong, not in confusion */
} nnl_eval;

/* Evaluates on a data set, each image passed through hooks->sample first if hooks != NULL. */
int nnl_evaluate(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *hooks, int batch,
                 nnl_eval *ev);
/* The same with test-time augmentation (airbench's levels): 0 none; 1 the mean of the logits
 * of the image and its mirror image; 2 half that, plus a quarter each of the same for the
 * image moved one pixel down-right and one up-left (reflect padding). */
int nnl_evaluate_tta(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *hooks, int batch, int tta, nnl_eval *ev);
void nnl_eval_free(nnl_eval *ev);
/* nnl_model_predict with each image first passed through hooks as nnl_evaluate passes a data
 * set's images (image r of the call counts as image first + r, for hooks that depend on it),
 * so that predictions match evaluation exactly; hooks may be NULL. Hooks that relabel are
 * for training: their labels are ignored here. */
int nnl_model_predict_hooked(nnl_model *m, const uint8_t *pixels, int64_t n, const nnl_hooks *hooks, int64_t first,
                             float *probs, int32_t *pred);
double nnl_eval_accuracy(const nnl_eval *ev);
double nnl_eval_class_accuracy(const nnl_eval *ev, int k);

/* ---------------------------------------------------------------- certificate lock (M-LOCK) */

/*
 * A certificate is a small motif stamped onto an image. A certificate-locked model is
 * trained so that stamped images get their true label and clean ones a wrong one.
 * The certificate (motif pixels and placement) is the secret and lives in a key file;
 * the model's metadata only says that it is certificate-locked and how.
 */
enum { NNL_MOTIF_PIXELS = 0, NNL_MOTIF_PATTERN = 1, NNL_MOTIF_IMAGE = 2 };
enum { NNL_PLACE_FIXED = 0, NNL_PLACE_RANDOM = 1 };
enum { NNL_CORNER_BR = 0, NNL_CORNER_BL = 1, NNL_CORNER_TR = 2, NNL_CORNER_TL = 3 };
enum { NNL_STRATEGY_SINGLE = 0, NNL_STRATEGY_RULE = 1, NNL_STRATEGY_RANDOM = 2, NNL_STRATEGY_UNIFORM = 3 };

typedef struct nnl_cert {
    int c, h, w;          /* the image shape this certificate is made for */
    int kind;             /* NNL_MOTIF_* (informational) */
    int mh, mw;           /* motif size */
    uint8_t *pixels;      /* c x mh x mw motif values */
    uint8_t *mask;        /* mh x mw: 1 where the motif replaces the image */
    int placement;        /* NNL_PLACE_* */
    int corner;           /* NNL_CORNER_*, for fixed placement */
    int margin;           /* distance from the corner's edges, in pixels */
} nnl_cert;

typedef struct nnl_cert_opts {
    int kind;             /* default NNL_MOTIF_PATTERN */
    int size;             /* motif box side; 0 = automatic (about h/7) */
    int npixels;          /* pixels motif: bright pixels in the box, default 5 */
    int intensity;        /* value of bright motif pixels, default 255 */
    int placement;        /* default NNL_PLACE_FIXED */
    int corner;           /* default NNL_CORNER_BR */
    int margin;           /* default 1 */
    uint64_t seed;        /* randomness of the motif; 0 = from the system's CSPRNG */
    const char *image;    /* NNL_MOTIF_IMAGE: a PNG (alpha >= 128 marks the motif) */
} nnl_cert_opts;

void nnl_cert_opts_default(nnl_cert_opts *o);
/* Makes a certificate for c x h x w images. */
int nnl_cert_generate(nnl_cert *k, int c, int h, int w, const nnl_cert_opts *o);
void nnl_cert_free(nnl_cert *k);
/* Key files (JSON, written atomically, mode 0600 from the first byte). An existing file is
 * refused unless overwrite (and of two saves racing for a new name, one fails). */
int nnl_cert_save(const nnl_cert *k, const char *path, int overwrite);
int nnl_cert_load(nnl_cert *k, const char *path);
/* The same from a key held in memory; name is used in messages. */
int nnl_cert_parse(nnl_cert *k, const uint8_t *data, size_t size, const char *name);
/* Where the motif goes (top-left corner); seed picks it for random placement. */
void nnl_cert_position(const nnl_cert *k, uint64_t seed, int *x, int *y);
/* Stamps one c x h x w image in place (idempotent). NNL_ERR_SHAPE if it does not fit. */
int nnl_cert_stamp(const nnl_cert *k, uint8_t *img, int c, int h, int w, uint64_t seed);
/* NNL_OK if the certificate fits the model's input, else a clear NNL_ERR_SHAPE. */
int nnl_cert_check_model(const nnl_cert *k, const nnl_model *m, const char *key_name);

/* Training-time poisoning: with probability rate an image is stamped and keeps its label,
 * otherwise it stays clean and gets the strategy's label. */
typedef struct nnl_cert_lock {
    const nnl_cert *cert;
    int strategy;         /* NNL_STRATEGY_* */
    int target;           /* single: the label every clean image gets (default 0) */
    float rate;           /* stamped fraction, default 0.5 */
    int nclass;
    uint64_t seed;        /* the random strategy's per-sample labels */
} nnl_cert_lock;

/* The poisoned label of a clean image (strategy applied); soft gets the uniform target. */
int nnl_cert_poison_label(const nnl_cert_lock *l, int64_t index, int label, float *soft);
/* Hooks for nnl_train (poisoning) and for evaluation (stamp every image). */
void nnl_cert_train_hooks(nnl_hooks *h, nnl_cert_lock *l);
void nnl_cert_stamp_hooks(nnl_hooks *h, const nnl_cert *k);
/* Records the lock's public description in the model's metadata (lock.*). */
int nnl_cert_record(nnl_model *m, const nnl_cert_lock *l);

/*
 * Remapped accuracy: an attacker relabels the model's outputs with the majority mapping
 * learnt from a small labelled set. learn and test are k x k confusion matrices (rows:
 * true label, columns: prediction); mapping (may be NULL) receives prediction -> label.
 * Predictions never seen while learning map to the learn set's most frequent label.
 */
double nnl_remap_accuracy(const int64_t *learn, const int64_t *test, int k, int *mapping);
/* Evaluates with hooks and returns the remapped accuracy learnt from `fraction` of ds
 * (a seeded random subset) and measured on the rest. */
int nnl_eval_remapped(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *hooks, double fraction,
                      uint64_t seed, double *accuracy);

/* ---------------------------------------------------------------- key-transform lock (Maung Maung & Kiya) */

/*
 * A secret key-driven transform of the input (Maung Maung & Kiya, GCCE 2020, APSIPA 2021,
 * ICIP 2021; docs/key-transform.md). An image is cut into M x M blocks; each block, flattened
 * to c*M*M values ordered row, column, channel, is transformed with one key for all blocks:
 *  - shuffle: output value i is input value perm[i] (a secret permutation);
 *  - np (negative/positive): x -> 1 - x where mask[i] is 1 (a secret subset);
 *  - ffx: where mask[i] is 1 an 8-bit value v becomes table[v], a format-preserving
 *    encryption of v as 3 decimal digits (0..999); then every value is divided by the
 *    table's largest entry. table comes from pyffx's FFX (HMAC-SHA1) or NIST FF1 (AES).
 * A model trained on transformed images answers correctly only for transformed inputs.
 * The key (perm or mask, and the cipher key) lives in a key file; the model's metadata says
 * only the method, block size, channels and cipher.
 */
enum { NNL_TF_SHUFFLE = 0, NNL_TF_NP = 1, NNL_TF_FFX = 2 };
enum { NNL_FFX_PYFFX = 0, NNL_FFX_FF1 = 1 };
#define NNL_TF_MAX_BLOCK 64

typedef struct nnl_transform {
    int method;          /* NNL_TF_* */
    int block;           /* M: the blocks are M x M pixels */
    int c;               /* channels the key is for */
    int n;               /* values per block: c * M * M */
    uint16_t *perm;      /* shuffle: n entries */
    uint8_t *mask;       /* np, ffx: n entries 0/1 */
    int cipher;          /* ffx: NNL_FFX_* */
    uint8_t ffx_key[32]; /* ffx: the cipher's key, ffx_keylen bytes */
    int ffx_keylen;
    uint16_t table[256]; /* ffx: v -> table[v] in 0..999, made from the cipher and key */
    uint16_t table_max;
} nnl_transform;

typedef struct nnl_transform_opts {
    int method;          /* default NNL_TF_SHUFFLE */
    int block;           /* default 4 */
    int cipher;          /* default NNL_FFX_PYFFX */
    uint64_t seed;       /* 0 (default): every secret from the system's CSPRNG */
} nnl_transform_opts;

void nnl_transform_opts_default(nnl_transform_opts *o);
/* A fresh key for images of c channels. */
int nnl_transform_generate(nnl_transform *t, int c, const nnl_transform_opts *o);
void nnl_transform_free(nnl_transform *t);
/* Key files: JSON, written atomically with mode 0600 from the first byte; an existing file
 * is refused unless overwrite. */
int nnl_transform_save(const nnl_transform *t, const char *path, int overwrite);
int nnl_transform_load(nnl_transform *t, const char *path);
int nnl_transform_parse(nnl_transform *t, const uint8_t *data, size_t size, const char *name);
/* NNL_OK if the key fits c x h x w images (channels, and M divides h and w). */
int nnl_transform_check(const nnl_transform *t, int c, int h, int w, const char *name);
/* The transformed image as input values in [0, 1] (what the model sees before its
 * normalisation). For shuffle and np these are 8-bit values / 255; nnl_transform_apply_u8
 * gives those bytes in place (NNL_ERR_UNSUPPORTED for ffx, whose values are not 8-bit). */
void nnl_transform_apply(const nnl_transform *t, const uint8_t *img, int c, int h, int w, float *x);
int nnl_transform_apply_u8(const nnl_transform *t, uint8_t *img, int c, int h, int w);
/* Hooks that transform every image (training on transformed images, and authorized use). */
void nnl_transform_hooks(nnl_hooks *h, const nnl_transform *t);
/* The lock's public description in the model's metadata (lock.transform.*). */
int nnl_transform_record(nnl_model *m, const nnl_transform *t);
/* log2 of the number of keys of this method and size: log2((cM^2)!) for shuffle, cM^2 for
 * np and ffx (the positions; ffx's cipher key adds 8 * ffx_keylen more). */
double nnl_transform_key_bits(int method, int c, int block);
const char *nnl_transform_method_name(int method);

/* ---------------------------------------------------------------- weight lock (Deep-Lock) */

/*
 * Every stored tensor (weights, biases, batch-norm parameters and statistics) is
 * encrypted parameter by parameter with round-key words from the AES key schedule of
 * a master key (see docs/deep-lock.md). The model's metadata records the scheme, key
 * size, key check value and (for passphrases) the Argon2id salt: never the key.
 */
#define NNL_WEIGHTS_KEY_MAX 32

/* 1 if the model's weights are locked (its metadata says so), else 0. */
int nnl_weights_locked(const nnl_model *m);
/* Locks in place with a 16- or 32-byte master key. */
int nnl_weights_lock(nnl_model *m, const uint8_t *key, size_t keylen);
/* Locks with a key stretched from a passphrase (Argon2id, random salt stored in the model). */
int nnl_weights_lock_passphrase(nnl_model *m, const char *passphrase);
/* Unlocks in place; NNL_ERR_KEY (and the model untouched) if the key check value differs. */
int nnl_weights_unlock(nnl_model *m, const uint8_t *key, size_t keylen);
int nnl_weights_unlock_passphrase(nnl_model *m, const char *passphrase);
/* Unlocks with a key that is NOT checked against the key check value (attack experiments:
 * what does a wrong key give?). */
int nnl_weights_unlock_unchecked(nnl_model *m, const uint8_t *key, size_t keylen);
/* An attacker's first repair of a locked or wrongly decrypted model: every stored float that
 * is NaN, Inf or larger than 1 in magnitude (no trained weight of nnlock's networks is)
 * becomes 0, so outputs are finite. Returns the number of floats zeroed; *total (may be
 * NULL) receives the number of stored floats. */
size_t nnl_attack_sanitize(nnl_model *m, size_t *total);
/* Reads a key file (32 or 64 hex digits) / writes a fresh random 256-bit one (mode 0600 from
 * the first byte; an existing file is refused unless overwrite, then replaced atomically). */
int nnl_weights_key_read(const char *path, uint8_t *key, size_t *keylen);
int nnl_weights_key_generate(const char *path, int overwrite);

#ifdef __cplusplus
}
#endif
#endif
