/* The weight lock (Deep-Lock) in the command line: keys for a locked model, and the
 * right-key / wrong-key report of `nnlock eval --wrong-keys`. */
#ifndef NNL_CLI_WEIGHTS_REPORT_H
#define NNL_CLI_WEIGHTS_REPORT_H

#include "cli.h"

#include <stddef.h>
#include <stdint.h>

/*
 * For a weight-locked model file and its right key (w->key_file or w->passphrase_file):
 * prints (text, or one JSON object on stdout when json) the test accuracy with the right
 * key, whether the unlocked weights are the original's bit for bit, the accuracy of the
 * locked model run as it is, with 100 random wrong keys (mean, max) and with keys one bit
 * away from the right one (32 bit positions), and the fraction of weights that decode to
 * NaN or Inf. An image whose outputs hold a NaN counts as wrongly classified; each
 * accuracy is also given after an attacker's repair (weights that are NaN, Inf or larger
 * than 1 in magnitude set to 0). Wrong keys come from a fixed seed, so the report is
 * reproducible. In JSON: right_key, locked_as_is, wrong_keys, one_bit_off (see the code).
 * test must match the model's input. Prints its own errors; returns 0 or 1.
 */
int cli_weights_report(const char *cmd, const char *model_path, const cli_weights_opts *w,
                       const nnl_dataset *test, int json);

/* The master key named by w for the locked model m: read from w->key_file, or derived
 * from w->passphrase_file with the salt and limits m records. Prints its own errors;
 * returns 0 or 1. Wipe the key (nnl_wl_wipe) when done. */
int cli_weights_key(const char *cmd, const char *model_path, nnl_model *m, const cli_weights_opts *w,
                    uint8_t key[NNL_WEIGHTS_KEY_MAX], size_t *keylen);

#endif
