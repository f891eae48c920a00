/* nnlock export: a model's weights as a PyTorch state_dict (safetensors). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock export MODEL -o FILE.safetensors [--torch FILE.py]\n\n"
        "Writes the model's tensors as a PyTorch state_dict in the safetensors format, under the\n"
        "names 'nnlock import' reads (AuthNet's for lenet5 and vgg13; layers.I.* otherwise), with\n"
        "batch-norm's num_batches_tracked, so that load_state_dict(strict=True) takes it. A lock's\n"
        "record and the normalisation are not part of a state_dict: 'nnlock info MODEL' shows them.\n\n"
        "  -o, --out FILE         the file to write (required)\n"
        "      --torch FILE.py    also the PyTorch module (class Net) the state_dict loads into\n"
        CLI_WEIGHTS_USAGE);
}

static int run(int argc, char **argv) {
    static const struct option lo[] = {{"out", 1, 0, 'o'}, {"torch", 1, 0, 1}, CLI_WEIGHTS_LONGOPTS(300), {0, 0, 0, 0}};
    const char *cmd = "export", *out = NULL, *py = NULL;
    cli_weights_opts wo = {0};
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
        if (c == 'o') { out = optarg; continue; }
        if (c == 1) { py = optarg; continue; }
        if (cli_weights_option(c, 300, &wo)) continue;
        return cli_bad_option(cmd, argc, argv);
    }
    if (optind + 1 != argc) return cli_fail(cmd, "give one model file (see 'nnlock help export')") + 1;
    if (!out) return cli_fail(cmd, "give the output with -o FILE.safetensors") + 1;
    if (wo.allow_locked) return cli_fail(cmd, "a weight-locked model is exported with its key, never as it is stored") + 1;
    if (cli_check_out(cmd, out, 0) || (py && cli_check_out(cmd, py, 0))) return 1;
    nnl_model *m;
    if (cli_load_model(cmd, argv[optind], &wo, &m)) return 1;
    int st = nnl_model_export_torch(m, out);
    if (st) { nnl_model_free(m); return cli_lib_fail(cmd, st); }
    if (py) {
        if ((st = nnl_model_write_torch_module(m, py))) { nnl_model_free(m); return cli_lib_fail(cmd, st); }
        printf("wrote its PyTorch module (class Net) to %s\n", cli_safe(py));
    }
    printf("wrote the state_dict of %s (%s) to %s\n", cli_safe(argv[optind]), cli_safe(nnl_model_arch(m)), cli_safe(out));
    nnl_model_free(m);
    return 0;
}

const nnl_command nnl_cmd_export = {"export", "a model's weights as a PyTorch state_dict (safetensors)", run, usage};
