/* Shared pieces of the nnlock command line. */
#ifndef NNL_CLI_H
#define NNL_CLI_H

#include "nnlock.h"

#include <getopt.h>
#include <stdio.h>

#define NNL_DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

typedef struct nnl_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);
} nnl_command;

extern const nnl_command nnl_cmd_train, nnl_cmd_eval, nnl_cmd_predict, nnl_cmd_info;

/* Prints "nnlock CMD: message" (message from nnl_errmsg() when fmt is NULL) and returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports a library failure: "nnlock CMD: <detailed message>". Returns 1. */
int cli_lib_fail(const char *cmd, int status);
/* One-line report for a bad option; returns 2. */
int cli_bad_option(const char *cmd, int argc, char **argv);

/* Strict number parsing: the whole string, within [lo, hi]. Return 0 on success. */
int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);

/* Loads a data-set split, with a clear message on failure. */
int cli_load_data(const char *cmd, const char *path, int split, nnl_dataset *ds);
/* Monotonic clock in seconds. */
double cli_now(void);
/* Applies --threads (0 = all cores). */
void cli_threads(long n);

#endif
