/* nnlock: dispatch to one subcommand per file. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const nnl_command *const commands[] = {
    &nnl_cmd_train, &nnl_cmd_eval, &nnl_cmd_predict, &nnl_cmd_info, &nnl_cmd_keygen, &nnl_cmd_apply, &nnl_cmd_stamp,
    &nnl_cmd_lock_weights, &nnl_cmd_unlock_weights, &nnl_cmd_attack, &nnl_cmd_import, &nnl_cmd_export,
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

static void usage(FILE *out) {
    fprintf(out, "usage: nnlock <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-15s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "  %-15s %s\n", "help", "show help for a command (nnlock help <command>), or 'nnlock help arch'");
    fprintf(out, "\nnnlock %s. Default data set: %s (Debian package dataset-fashion-mnist).\n", NNL_VERSION, NNL_DEFAULT_DATA);
}

static void arch_help(FILE *out) {
    fprintf(out,
        "Architectures (--arch): a preset or a comma-separated spec.\n\n"
        "presets:\n"
        "  mlp   dense900,relu,dense900,relu,dense900,relu,dense900,relu,dense  (M-LOCK's network)\n"
        "  cnn   conv32k3p1,bn,relu,maxpool2,conv64k3p1,bn,relu,maxpool2,conv128k3p1,bn,relu,maxpool2,\n"
        "        flatten,dense256,relu,dense\n"
        "  resnet9  the DAWNBench CIFAR-10 ResNet-9 (6.6 M parameters at 32x32x3)\n"
        "  airbench  airbench94's network (Keller Jordan), with --recipe airbench\n"
        "  vgg   VGG-11 with batch-norm, for 32x32 colour images\n"
        "  vgg13    AuthNet's VGG-13 (the gate lock's CIFAR-10 network; gate @gate = 256x4x4)\n"
        "  lenet5   AuthNet's LeNet-5 for 28x28 or 32x32 images (gate @gate = 16x5x5)\n"
        "  resnet18 the common CIFAR ResNet-18 (11.2 M parameters; gate @gate = layer3's output)\n\n"
        "layers:\n"
        "  dense<N> | dense          fully connected, N units (bare: one per class; ends every spec)\n"
        "  conv<OC>k<K>[s<S>][p<P>]  convolution, OC channels, KxK kernel, stride S (1), zero padding P (0)\n"
        "  maxpool<K>[s<S>]          max pooling, stride K unless given; avgpool likewise\n"
        "  gap                       global average pooling\n"
        "  bn                        batch normalisation\n"
        "  relu, flatten             activation, reshape\n"
        "  dropout<P>                dropout with probability P, e.g. dropout0.5\n"
        "  @name, add@name           name the current activation (a gate, a --freeze-below point);\n"
        "                            add it back later (residual)\n"
        "  ^name                     continue from a named activation: a second path from it\n"
        "                            (a projection shortcut: @x,...,@main,^x,conv64k1s2b0,bn,add@main)\n\n"
        "example: conv32k3,relu,maxpool2,conv64k3,relu,maxpool2,dense256,relu,dense\n");
}

static const nnl_command *find(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i]->name, name)) return commands[i];
    return NULL;
}

/* Ctrl-C, SIGTERM or a closed terminal during a save: remove the save's temporary file (if
 * the file system made it a named one), then die of the signal as we would have. */
static void on_signal(int sig) {
    nnl_discard_partial_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Output that could not be written (a full disk, a closed pipe) is a failure, not exit 0. */
static int finish(const char *cmd, int rc) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "nnlock %s: cannot write the output: %s\n", cmd, strerror(errno ? errno : EIO));
        return rc ? rc : 1;
    }
    return rc;
}

/* OpenBLAS picks its kernels when it is loaded, before main runs; the only way to
 * give it the faster SkylakeX kernels on an AVX-512 CPU it does not recognise is to
 * set OPENBLAS_CORETYPE and start again. */
int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            if (!strcmp(argv[2], "arch")) { arch_help(stdout); return finish("help", 0); }
            const nnl_command *c = find(argv[2]);
            if (!c) { fprintf(stderr, "nnlock: unknown command '%s' (see 'nnlock help')\n", argv[2]); return 2; }
            c->usage(stdout);
            return finish("help", 0);
        }
        usage(stdout);
        return finish("help", 0);
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("nnlock %s\n", NNL_VERSION);
        return finish("version", 0);
    }
    const nnl_command *c = find(name);
    if (!c) {
        fprintf(stderr, "nnlock: unknown command '%s' (see 'nnlock help')\n", name);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { c->usage(stdout); return finish(c->name, 0); }
    nnl_blas_reexec(argv);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
    return finish(c->name, c->run(argc - 1, argv + 1));
}
