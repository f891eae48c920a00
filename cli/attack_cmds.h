/* The attacks of `nnlock attack`, one file each (attack.c dispatches). */
#ifndef NNL_CLI_ATTACK_CMDS_H
#define NNL_CLI_ATTACK_CMDS_H

#include "locks.h"

int cli_attack_prune(int argc, char **argv);
void cli_attack_prune_usage(FILE *out);

#endif
