/* Shared pieces of the nnlock command line. */
#ifndef NNL_CLI_H
#define NNL_CLI_H

#include "nnlock.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

#define NNL_DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

typedef struct nnl_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);
} nnl_command;

extern const nnl_command nnl_cmd_train, nnl_cmd_eval, nnl_cmd_predict, nnl_cmd_info, nnl_cmd_keygen,
    nnl_cmd_apply, nnl_cmd_stamp, nnl_cmd_lock_weights, nnl_cmd_unlock_weights, nnl_cmd_attack, nnl_cmd_import,
    nnl_cmd_export;

/* How a command that loads a model gets a weight-locked one's key (--weights-key FILE,
 * --weights-passphrase-file FILE) and whether it may run it locked (--allow-locked). */
typedef struct cli_weights_opts {
    const char *key_file;
    const char *passphrase_file;
    int allow_locked;
} cli_weights_opts;
#define CLI_WEIGHTS_LONGOPTS(base) \
    {"weights-key", 1, 0, (base)}, {"weights-passphrase-file", 1, 0, (base) + 1}, {"allow-locked", 0, 0, (base) + 2}
#define CLI_WEIGHTS_USAGE \
    "      --weights-key FILE      master key of a weight-locked model (decrypted in memory only)\n" \
    "      --weights-passphrase-file FILE  passphrase of a weight-locked model\n" \
    "      --allow-locked          run a weight-locked model without its key (attack experiments)\n"
/* Handles the three options above (returns 1 if c was one of them). */
int cli_weights_option(int c, int base, cli_weights_opts *w);
/* Loads a model; a weight-locked one is unlocked in memory with the key or passphrase,
 * refused without one unless allow_locked. Prints the error; returns 0 or 1. */
int cli_load_model(const char *cmd, const char *path, const cli_weights_opts *w, nnl_model **out);

/* Locks m again with the key or passphrase w opened a weight-locked model with (a fresh salt
 * for a passphrase). Prints the error; returns 0 or 1. */
int cli_weights_relock(const char *cmd, const char *init_path, nnl_model *m, const cli_weights_opts *w);

/* JSON output (json_out.c). cli_jnum: a number, or null when it is NaN or Inf (counted in
 * *nulls, which may be NULL); cli_jstr: a string, repaired to UTF-8. cli_json_emit prints doc
 * (an object, or an array when nulls is 0) and frees it; when nulls > 0 it first adds a field
 * "null_values" saying why (why). A doc that could not be built (NULL) or written is an error:
 * reports it and returns 1. */
json_t *cli_jnum(double v, int *nulls);
json_t *cli_jstr(const char *s);
int cli_json_emit(const char *cmd, json_t *doc, int nulls, const char *why);

/* Text printed from a file (metadata, class names) with control bytes shown as \xNN, so that
 * an escape sequence never reaches the terminal and a newline never splits a line. Returns
 * one of four rotating static buffers (valid until the fourth call after; 64 KiB each, longer text is cut). */
const char *cli_safe(const char *s);

/* Prints "nnlock CMD: message" (message from nnl_errmsg() when fmt is NULL) and returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports a library failure: "nnlock CMD: <detailed message>". Returns 1. */
int cli_lib_fail(const char *cmd, int status);
/* One-line report for a bad option; returns 2. */
int cli_bad_option(const char *cmd, int argc, char **argv);

/* Strict number parsing: the whole string, within [lo, hi]. Return 0 on success. */
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);

/* A 64-bit unsigned integer (a seed): digits only, no sign, no overflow. Returns 0 or 2. */
int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
/* Creates a directory unless it exists (refusing a file there); on failure reports it and
 * returns 1. */
int cli_mkdir(const char *cmd, const char *dir);
/* Before a long computation: can its output be written (nnl_check_writable)? Reports
 * and returns 1 if not. */
int cli_check_out(const char *cmd, const char *path, int flags);
/* Loads a data-set split, with a clear message on failure. */
int cli_load_data(const char *cmd, const char *path, int split, nnl_dataset *ds);
/* Renumbers ds's labels to the model's classes, matched by name (nnl_dataset_match_classes):
 * image folders number classes per split by folder name. Reports and returns 1 on failure. */
int cli_match_classes(const char *cmd, const nnl_model *m, nnl_dataset *ds, const char *what);
/* Monotonic clock in seconds. */
double cli_now(void);
/* The data set to evaluate on: `given` (--data), else the one the model was trained on when it
 * is still there (saying so on stderr), else the default. */
const char *cli_model_data(const char *cmd, const nnl_model *m, const char *given);
int nnl_is_dir(const char *path);
/* Data sets that are resized on loading (GTSRB) are loaded at the model's input size,
 * cropped as it was trained. */
void cli_data_for_model(const nnl_model *m);
/* Applies --threads (0 = all cores; more than the cores available is capped, with a note).
 * Reports and returns 1 if the threads cannot be had (an address-space limit). */
int cli_threads(const char *cmd, long n);

#endif
