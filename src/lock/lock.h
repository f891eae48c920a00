/*
 * The one interface every lock implements, and the registry (registry.c). A lock acts at one
 * seam: the input (the certificate stamped on an image, the key-driven transform) or the
 * stored weights (Deep-Lock). The commands know no lock by name: they take --lock NAME and
 * --key FILE, pass each lock its own options, and use the hooks and calls below. A new lock
 * is a new file in src/lock/ with one nnl_lock_ops and a line in registry.c.
 *
 * A model carries its locks in its metadata (each lock's record, lock.* keys, never a
 * secret); a model can carry several: each lock's seam is applied in turn.
 */
#ifndef NNL_LOCK_H
#define NNL_LOCK_H

#include "../core/core.h"

enum { NNL_SEAM_INPUT = 1, NNL_SEAM_WEIGHTS = 2 };
/* When an option of a lock applies: making a key, or training with one. */
enum { NNL_LOCKOPT_NEW_KEY = 1, NNL_LOCKOPT_TRAIN = 2 };

typedef struct nnl_lock_opt {
    const char *name;  /* the long option, without "--"; unique across the registry */
    int has_arg;
    int when;          /* NNL_LOCKOPT_* */
    const char *help;  /* a usage line, with its default */
} nnl_lock_opt;

#define NNL_LOCK_MAX_ARGS 24
/* A lock's options as the user gave them, by name. */
typedef struct nnl_lock_args {
    int n;
    const char *name[NNL_LOCK_MAX_ARGS];
    const char *value[NNL_LOCK_MAX_ARGS]; /* "" for an option without a value */
} nnl_lock_args;

/* The value of an option, NULL when it was not given. */
const char *nnl_lock_arg(const nnl_lock_args *a, const char *name);
/* Parse an option strictly (the whole string, within the range; NNL_ERR_ARG naming the option
 * otherwise), or give def when it is absent. */
int nnl_lock_arg_int(const nnl_lock_args *a, const char *name, long lo, long hi, long def, long *out);
int nnl_lock_arg_u64(const nnl_lock_args *a, const char *name, uint64_t def, uint64_t *out);
int nnl_lock_arg_float(const nnl_lock_args *a, const char *name, double lo, double hi, double def, double *out);
int nnl_lock_arg_choice(const nnl_lock_args *a, const char *name, const char *const *choices, int n, int def, int *out);

typedef struct nnl_lock_ops {
    const char *name;          /* "certificate", "transform", "weights" */
    const char *summary;       /* one line for help */
    int seam;                  /* NNL_SEAM_* */
    const nnl_lock_opt *opts;  /* ends with a {NULL} entry */

    /* ---- keys */
    /* 1 if a key file's bytes are this lock's kind of key (to take --key without --lock). */
    int (*probe)(const uint8_t *data, size_t n);
    int (*parse)(void **key, const uint8_t *data, size_t n, const char *name);
    /* A new key for c x h x w images, from the lock's NNL_LOCKOPT_NEW_KEY options. */
    int (*generate)(void **key, int c, int h, int w, const nnl_lock_args *a);
    /* Written 0600 from the first byte; an existing file only when overwrite. */
    int (*save)(const void *key, const char *path, int overwrite);
    void (*free_key)(void *key);
    /* NNL_OK if the key can be used on c x h x w images (a model's input); name is for messages. */
    int (*fits)(const void *key, int c, int h, int w, const char *name);
    /* Public facts about a key in a few words (kind, size, key space): never the key. */
    void (*describe_key)(const void *key, char *buf, size_t n);

    /* ---- the model's record */
    int (*locks)(const nnl_model *m);                         /* 1 if the model carries this lock */
    void (*describe)(const nnl_model *m, char *buf, size_t n);  /* its record in a few words */
    void (*label)(const nnl_model *m, char *buf, size_t n);     /* a table's first column: "rule", "shuffle 4x4" */
    void (*forget)(nnl_model *m);                             /* removes its record */

    /* ---- input seam (NULL for a weights lock) */
    /* Hooks for training with key; *state (freed by train_free) must outlive the hooks. */
    int (*train)(void **state, const void *key, const nnl_model *m, const nnl_lock_args *a, uint64_t seed,
                 nnl_hooks *h);
    void (*train_free)(void *state);
    /* The record of a model trained with the key (and state). */
    int (*record)(nnl_model *m, const void *key, const void *state);
    /* Hooks that make an authorized user's input from an image. */
    void (*authorized)(const void *key, nnl_hooks *h);
    /* A lock whose key is learnt from a trained model (the gate lock; NULL for the others):
     * generate makes an empty key holding the options, and this learns it from the model (given
     * with --init) and the training images and trains the model to it, in place, with o's
     * epochs, batch, seed, augmentation, progress and epoch_end. test (may be NULL) is only
     * measured, for the record (the original model's accuracy). *state goes to record, then to
     * train_free; train is then not called. */
    int (*lock_model)(void *key, nnl_model *m, const nnl_dataset *train, const nnl_dataset *test,
                      const nnl_lock_args *a, const nnl_train_opts *o, void **state);

    /* ---- weights seam (NULL for an input lock) */
    int (*open)(const void *key, nnl_model *m);   /* decrypts in memory; NNL_ERR_KEY for a wrong key */
    int (*close)(const void *key, nnl_model *m);  /* encrypts, with its record */

    /* ---- other keys of the same kind and size, for wrong-key reports and key search */
    /* A random key consistent with the model's public record alone: what an attacker holding
     * the model file but not the key can try (NULL: the record says too little). */
    int (*guess_key)(void **out, const nnl_model *m, uint64_t seed);
    int (*random_key)(void **out, const void *like, uint64_t seed);
    int (*neighbour_key)(void **out, const void *from, uint64_t seed);
    const char *neighbour;     /* what a neighbour differs by: "one swap", "one bit" */
} nnl_lock_ops;

/* ---------------------------------------------------------------- the registry */

extern const nnl_lock_ops nnl_lock_certificate, nnl_lock_transform, nnl_lock_gate, nnl_lock_weights;
/* Every registered lock, NULL-terminated. */
const nnl_lock_ops *const *nnl_lock_all(void);
const nnl_lock_ops *nnl_lock_find(const char *name);
/* "certificate, transform, weights" */
const char *nnl_lock_names(void);

/* A key of some lock. */
typedef struct nnl_lock_key {
    const nnl_lock_ops *ops;
    void *key;
    char name[256];            /* the file it came from, for messages */
} nnl_lock_key;

/* Loads a key file; its lock is recognised from the file unless ops is given. */
int nnl_lock_key_load(nnl_lock_key *k, const char *path, const nnl_lock_ops *ops);
int nnl_lock_key_generate(nnl_lock_key *k, const nnl_lock_ops *ops, int c, int h, int w, const nnl_lock_args *a);
void nnl_lock_key_free(nnl_lock_key *k);

/* Several locks' hooks as one: each image goes through them in order; the first that
 * relabels decides the label; at most one may have a float stage (it must be the last). */
#define NNL_HOOK_CHAIN_MAX 8
typedef struct nnl_hook_chain {
    int n;
    nnl_hooks h[NNL_HOOK_CHAIN_MAX];
} nnl_hook_chain;
int nnl_hook_chain_make(nnl_hook_chain *c, const nnl_hooks *hooks, int n, nnl_hooks *out);

#endif
