/* Certificate options shared by `keygen` and `train --lock certificate`. */
#ifndef NNL_CLI_CERTOPTS_H
#define NNL_CLI_CERTOPTS_H

#include "cli.h"

#define CERT_LONGOPTS(base)                                                                    \
    {"motif", 1, 0, (base)}, {"motif-size", 1, 0, (base) + 1}, {"motif-pixels", 1, 0, (base) + 2}, \
    {"intensity", 1, 0, (base) + 3}, {"location", 1, 0, (base) + 4}, {"corner", 1, 0, (base) + 5}, \
    {"margin", 1, 0, (base) + 6}, {"motif-seed", 1, 0, (base) + 7}

#define CERT_USAGE                                                                              \
    "      --motif M          pattern (a binary patch), pixels (a few bright pixels) or a PNG\n"  \
    "                         file (alpha >= 128 marks the motif) (default pattern)\n"            \
    "      --motif-size N     side of the motif box (default: image height / 7)\n"                 \
    "      --motif-pixels N   bright pixels of the 'pixels' motif (default 5)\n"                   \
    "      --intensity V      value of bright motif pixels, 0-255 (default 255)\n"                \
    "      --location L       fixed or random (default fixed)\n"                                   \
    "      --corner C         br, bl, tr or tl for a fixed location (default br)\n"                \
    "      --margin N         pixels between the motif and the corner's edges (default 1)\n"      \
    "      --motif-seed N     make the motif reproducible (default: random from the OS)\n"

/* Returns 0 if c was not a certificate option, 1 if handled, 2 on a bad value (reported). */
int cert_option(const char *cmd, int c, int base, nnl_cert_opts *o);

#endif
