/* Locks in the command line: --lock NAME, --key FILE, --key-out FILE and every lock's own
 * options, the same way in every command. The commands know no lock by name: they go
 * through these calls and the lock interface (src/lock/lock.h). */
#ifndef NNL_CLI_LOCKS_H
#define NNL_CLI_LOCKS_H

#include "cli.h"
#include "lock/lock.h"

#define CLI_MAX_LOCKS 8

/* One lock the user named (--lock), or a key whose lock the file tells (--key alone). */
typedef struct cli_lock {
    const nnl_lock_ops *ops;  /* NULL until the key file says */
    const char *key_path;     /* --key, or NULL: a new key (train, keygen) */
    const char *key_out;      /* --key-out: where a new key goes */
    nnl_lock_key key;         /* loaded or made */
    int made;                 /* 1: the key is new; it must be written */
    void *train_state;        /* the lock's state while training */
} cli_lock;

typedef struct cli_locks {
    int n;
    cli_lock l[CLI_MAX_LOCKS];
    nnl_lock_args args[8];    /* each registered lock's options, by its place in the registry */
    const char *opt_lock[NNL_LOCK_MAX_ARGS]; /* for a message: which lock an option given belongs to */
    int code;                 /* the getopt code of --lock; --key, --key-out and the lock options follow */
    const char *pending_key_out; /* a --key-out before any --lock: for the first one */
    int when;                 /* NNL_LOCKOPT_* the command takes */
    nnl_hook_chain chain;     /* the hooks of the input locks */
} cli_locks;

/* The command's long options followed by --lock, --key, --key-out and the options of every
 * lock that apply `when` (NNL_LOCKOPT_*; 0: none), with getopt codes from `code` on.
 * malloc'd, for the life of the command. */
struct option *cli_locks_options(cli_locks *L, const struct option *base, int code, int when);
/* Handles getopt's c if it is one of those options: 1 handled, 0 not one of them, 2 a bad
 * value (reported). */
int cli_locks_option(cli_locks *L, const char *cmd, int c);
/* The usage lines of every lock's options of `when`, each lock under a heading. */
void cli_locks_usage(FILE *out, int when);

/* After the options: checks each lock option belongs to a lock named with --lock (or the
 * lock of a --key), loads every --key (its lock from the file unless --lock said), and with
 * `make` makes a key for each --lock without one (for c x h x w images). Returns 0, or 1/2
 * (reported). */
int cli_locks_keys(cli_locks *L, const char *cmd, int make, int c, int h, int w);
/* Each key must fit the model (reported; 0 or 1); keys are put in the order of the model's
 * lock.order (the order it was trained with its input locks). */
int cli_locks_fit(cli_locks *L, const char *cmd, const nnl_model *m);
/* Each key must fit c x h x w images. */
int cli_locks_fit_shape(cli_locks *L, const char *cmd, int c, int h, int w);
/* The hooks that give an authorized user's input for the input locks in `mask` (bit i:
 * L->l[i]), in the order the model was trained with them. */
int cli_locks_hooks(cli_locks *L, const char *cmd, unsigned mask, nnl_hooks *h);
/* Indices into L->l of the input locks and of the weight lock (-1 when none). */
int cli_locks_inputs(const cli_locks *L, int *idx);
int cli_locks_weights(const cli_locks *L);
/* Loads a model for use with L's keys: a weight key among them decrypts it in memory (else
 * the --weights-key options do, as cli_load_model); each key must be of a lock the model
 * carries and fit it. Reported; 0 or 1. */
int cli_locks_open(const char *cmd, const char *path, const cli_weights_opts *w, cli_locks *L, nnl_model **out);
/* The options the user gave for one lock. */
const nnl_lock_args *cli_locks_args(const cli_locks *L, const nnl_lock_ops *ops);
void cli_locks_free(cli_locks *L);

#endif
