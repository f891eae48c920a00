/* nnlock import: a PyTorch state_dict (safetensors) as an nnlock model. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock import --arch ARCH --state-dict FILE.safetensors [options] -o MODEL\n\n"
        "Reads a PyTorch state_dict saved in the safetensors format and writes an nnlock model that\n"
        "computes what the PyTorch module computes. Every tensor's name and shape is checked against\n"
        "the architecture; batch-norm's num_batches_tracked is ignored. lenet5 and vgg13 take the\n"
        "names of AuthNet's code (c1.c1.c1.weight, ...; head.0.weight ... tail.11.*, fc1, fc2),\n"
        "resnet18 the common CIFAR names (conv1, bn1, layer1.0.conv1, ..., shortcut.0, linear); any\n"
        "other architecture the names of the module 'nnlock export --torch' writes (layers.I.*).\n\n"
        "  -a, --arch ARCH        the architecture (see 'nnlock help arch')\n"
        "      --state-dict FILE  the state_dict (torch: save_file(model.state_dict(), FILE), or json +\n"
        "                         numpy, see docs/pytorch.md)\n"
        "      --shape CxHxW      input shape (default 1x28x28 for lenet5, 3x32x32 for vgg13 and\n"
        "                         resnet18; required\n"
        "                         for other architectures)\n"
        "      --norm M,S | M1,..,Mc,S1,..,Sc  the input normalisation the PyTorch model was trained\n"
        "                         with, of pixel / 255 (default none: x = pixel / 255, as ToTensor gives)\n"
        "      --classes A,B,...  class names (default none: numbered classes)\n"
        "  -o, --out FILE         model file to write (default model.nnl)\n");
}

static int parse_norm(const char *cmd, const char *s, int c, float *mean, float *std) {
    float v[2 * NNL_MAX_CHANNELS];
    int n = 0;
    const char *p = s;
    while (*p && n < 2 * NNL_MAX_CHANNELS) {
        char *end;
        v[n++] = strtof(p, &end);
        if (end == p) break;
        p = end;
        if (*p == ',') p++;
        else break;
    }
    if (*p || (n != 2 && n != 2 * c))
        return cli_fail(cmd, "--norm expects MEAN,STD or %d means then %d stds, got '%s'", c, c, s);
    for (int k = 0; k < c; k++) {
        mean[k] = n == 2 ? v[0] : v[k];
        std[k] = n == 2 ? v[1] : v[c + k];
    }
    return 0;
}

static int run(int argc, char **argv) {
    static const struct option lo[] = {{"arch", 1, 0, 'a'}, {"state-dict", 1, 0, 1}, {"shape", 1, 0, 2}, {"norm", 1, 0, 3},
                                       {"classes", 1, 0, 4}, {"out", 1, 0, 'o'}, {0, 0, 0, 0}};
    const char *cmd = "import", *arch = NULL, *sd = NULL, *norm = NULL, *classes = NULL, *out = "model.nnl";
    int c, sc = 0, sh = 0, sw = 0, rc = 2;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:o:", lo, NULL)) != -1) {
        switch (c) {
        case 'a': arch = optarg; break;
        case 'o': out = optarg; break;
        case 1: sd = optarg; break;
        case 2: {
            char extra;
            if (sscanf(optarg, "%dx%dx%d%c", &sc, &sh, &sw, &extra) != 3 || sc < 1 || sc > NNL_MAX_CHANNELS || sh < 1 ||
                sw < 1 || sh > 4096 || sw > 4096)
                return cli_fail(cmd, "--shape expects CxHxW (C 1-%d, H and W 1-4096), e.g. 3x32x32, got '%s'",
                                NNL_MAX_CHANNELS, optarg) + 1;
            break;
        }
        case 3: norm = optarg; break;
        case 4: classes = optarg; break;
        default: return cli_bad_option(cmd, argc, argv);
        }
    }
    if (optind < argc) return cli_fail(cmd, "unexpected argument '%s'", argv[optind]) + 1;
    if (!arch || !sd) return cli_fail(cmd, "give --arch and --state-dict") + 1;
    if (!sc) {
        if (!strcmp(arch, "lenet5")) { sc = 1; sh = sw = 28; }
        else if (!strcmp(arch, "vgg13") || !strcmp(arch, "resnet18")) { sc = 3; sh = sw = 32; }
        else return cli_fail(cmd, "give the input shape with --shape CxHxW for architecture '%s'", cli_safe(arch)) + 1;
    }
    float mean[NNL_MAX_CHANNELS] = {0}, stdv[NNL_MAX_CHANNELS] = {1, 1, 1, 1};
    if (norm && parse_norm(cmd, norm, sc, mean, stdv)) return 2;
    rc = 1;
    if (cli_check_out(cmd, out, 0)) return rc;
    nnl_model *m = NULL;
    char *names[NNL_MAX_CLASSES], *copy = classes ? strdup(classes) : NULL;
    int st = nnl_model_import_torch(&m, arch, sc, sh, sw, sd);
    if (st) { cli_lib_fail(cmd, st); goto done; }
    if ((st = nnl_model_set_norm(m, mean, stdv))) { cli_lib_fail(cmd, st); goto done; }
    if (copy) {
        int n = 0;
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && n < NNL_MAX_CLASSES; t = strtok_r(NULL, ",", &save)) names[n++] = t;
        if ((st = nnl_model_set_class_names(m, names, n))) { cli_lib_fail(cmd, st); goto done; }
    }
    nnl_model_meta_set(m, "import.state_dict", sd);
    if ((st = nnl_model_save(m, out))) { cli_lib_fail(cmd, st); goto done; }
    printf("imported %s (%zu parameters, %d classes) from %s into %s\n", cli_safe(arch), nnl_model_param_count(m),
           nnl_model_nclass(m), cli_safe(sd), cli_safe(out));
    rc = 0;
done:
    free(copy);
    nnl_model_free(m);
    return rc;
}

const nnl_command nnl_cmd_import = {"import", "a PyTorch state_dict (safetensors) as an nnlock model", run, usage};
