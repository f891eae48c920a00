/* nnlock keygen: a fresh certificate key, or a Deep-Lock master key. */
#include "certopts.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock keygen [options] -o KEY\n"
        "       nnlock keygen --weights -o KEY\n\n"
        "Makes a random certificate key (M-LOCK) for images of a given shape, or with\n"
        "--weights a random 256-bit master key for lock-weights (Deep-Lock).\n\n"
        "  -o, --out FILE         key file to write (default cert.key; never overwritten\n"
        "                         unless --force)\n"
        "      --shape CxHxW      image shape (default 1x28x28)\n"
        "      --weights          a Deep-Lock master key instead of a certificate\n"
        "      --force            overwrite an existing key file\n"
        CERT_USAGE);
}

static int run(int argc, char **argv) {
    static const struct option lo[] = {{"out", 1, 0, 'o'}, {"shape", 1, 0, 1}, {"weights", 0, 0, 2},
                                       {"force", 0, 0, 3}, CERT_LONGOPTS(400), {0, 0, 0, 0}};
    const char *cmd = "keygen", *out = "cert.key";
    int c, weights = 0, force = 0, sc = 1, sh = 28, sw = 28;
    nnl_cert_opts co;
    nnl_cert_opts_default(&co);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 1:
            if (sscanf(optarg, "%dx%dx%d", &sc, &sh, &sw) != 3 || sc < 1 || sh < 1 || sw < 1)
                return cli_fail(cmd, "--shape expects CxHxW, e.g. 3x32x32, got '%s'", optarg) + 1;
            break;
        case 2: weights = 1; break;
        case 3: force = 1; break;
        default: {
            int r = cert_option(cmd, c, 400, &co);
            if (r == 2) return 2;
            if (r == 0) return cli_bad_option(cmd, argc, argv);
        }
        }
    }
    if (optind < argc) return cli_fail(cmd, "unexpected argument '%s'", argv[optind]) + 1;
    /* Checked first for the clearer message; the exclusive creation in the save is what
     * makes two keygens racing for one name end with one key and one failure. */
    if (nnl_check_writable(out, NNL_WRITE_SECRET | (force ? 0 : NNL_WRITE_NEW)))
        return cli_fail(cmd, "%s%s", nnl_errmsg(), !force && access(out, F_OK) == 0 ? " (use --force, or choose another name)" : "");
    int st;
    if (weights) {
        if ((st = nnl_weights_key_generate(out, force))) return cli_lib_fail(cmd, st);
        printf("wrote a 256-bit Deep-Lock master key to %s (keep it secret)\n", out);
        return 0;
    }
    nnl_cert k;
    if ((st = nnl_cert_generate(&k, sc, sh, sw, &co))) return cli_lib_fail(cmd, st);
    st = nnl_cert_save(&k, out, force);
    nnl_cert_free(&k);
    if (st) return cli_lib_fail(cmd, st);
    printf("wrote a certificate key for %dx%dx%d images to %s (keep it secret)\n", sc, sh, sw, out);
    return 0;
}

const nnl_command nnl_cmd_keygen = {"keygen", "make a certificate key or a weight master key", run, usage};
