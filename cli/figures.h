/* The pictures `train --figures` and `eval --out` write. */
#ifndef NNL_CLI_FIGURES_H
#define NNL_CLI_FIGURES_H

#include "locks.h"

/* Writes into dir (created if needed): certificate.png (when L holds a certificate key),
 * examples.png (plain test images and the same with every input lock's key applied, with
 * predictions), accuracy.png and loss.png (from the model's training history, when it has
 * one). L may be NULL. Prints errors; returns 0 or 1. */
int cli_figures(const char *cmd, const char *dir, nnl_model *m, const nnl_dataset *test, cli_locks *L);

#endif
