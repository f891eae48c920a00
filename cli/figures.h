/* The pictures `train --figures` and `eval --out` write. */
#ifndef NNL_CLI_FIGURES_H
#define NNL_CLI_FIGURES_H

#include "cli.h"

/* Writes into dir (created if needed): certificate.png (when cert != NULL), examples.png
 * (clean and stamped test images with predictions), accuracy.png and loss.png (from the
 * model's training history, when it has one). Prints errors; returns 0 or 1. */
int cli_figures(const char *cmd, const char *dir, nnl_model *m, const nnl_dataset *test, const nnl_cert *cert);

#endif
