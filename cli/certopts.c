#include "certopts.h"

#include <stdlib.h>
#include <string.h>

int cert_option(const char *cmd, int c, int base, nnl_cert_opts *o) {
    long v;
    switch (c - base) {
    case 0:
        if (!strcmp(optarg, "pattern")) o->kind = NNL_MOTIF_PATTERN;
        else if (!strcmp(optarg, "pixels")) o->kind = NNL_MOTIF_PIXELS;
        else { o->kind = NNL_MOTIF_IMAGE; o->image = optarg; }
        return 1;
    case 1: if (cli_int(cmd, "--motif-size", optarg, 1, 4096, &v)) return 2; o->size = (int)v; return 1;
    case 2: if (cli_int(cmd, "--motif-pixels", optarg, 1, 1 << 20, &v)) return 2; o->npixels = (int)v; return 1;
    case 3: if (cli_int(cmd, "--intensity", optarg, 0, 255, &v)) return 2; o->intensity = (int)v; return 1;
    case 4:
        if (!strcmp(optarg, "fixed")) o->placement = NNL_PLACE_FIXED;
        else if (!strcmp(optarg, "random")) o->placement = NNL_PLACE_RANDOM;
        else { cli_fail(cmd, "--location must be fixed or random, got '%s'", optarg); return 2; }
        return 1;
    case 5: {
        static const char *const names[] = {"br", "bl", "tr", "tl"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(optarg, names[i])) { o->corner = i; return 1; }
        cli_fail(cmd, "--corner must be br, bl, tr or tl, got '%s'", optarg);
        return 2;
    }
    case 6: if (cli_int(cmd, "--margin", optarg, 0, 4096, &v)) return 2; o->margin = (int)v; return 1;
    case 7: {
        uint64_t s;
        if (cli_u64(cmd, "--motif-seed", optarg, &s)) return 2;
        if (s == 0) { cli_fail(cmd, "--motif-seed expects a positive integer (0 means a random motif), got '%s'", optarg); return 2; }
        o->seed = s;
        return 1;
    }
    default: return 0;
    }
}
