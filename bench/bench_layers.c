/* Where a training step's time goes: forward and backward time of every layer of an
 * architecture, with GFLOP/s for the layers that multiply.
 *   bench_layers [-a ARCH] [-c C] [-s SIDE] [-b BATCH] [-t THREADS] [-n STEPS] [-u] [-w -1|0|1|2]
 * Steps run as in training (batch statistics, gradients accumulated, ReLUs folded into
 * the batch-norms before them: those show no time of their own; -u runs them unfolded);
 * the first step is a warm-up and is not counted. -w 0 runs every convolution through
 * im2col, -w 1 through Winograd F(2x2) wherever it fits, -w 2 through F(4x4) (default,
 * or -w -1: conv2d.c's own choice). */
#include "layer_times.h"
#include "nn/model.h"
#include "nn/winograd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *arch = "cnn";
    int c = 3, side = 32, batch = 128, threads = 2, steps = 10, unfold = 0, opt;
    nnl_blas_reexec(argv); /* the SkylakeX kernels, as nnlock itself runs */
    while ((opt = getopt(argc, argv, "a:c:s:b:t:n:uw:")) != -1) {
        switch (opt) {
        case 'a': arch = optarg; break;
        case 'c': c = atoi(optarg); break;
        case 's': side = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'n': steps = atoi(optarg); break;
        case 'u': unfold = 1; break;
        case 'w': nnl_wino_mode = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bench_layers [-a ARCH] [-c C] [-s SIDE] [-b BATCH] [-t THREADS] [-n STEPS] [-u] [-w -1|0|1|2]\n");
            return 2;
        }
    }
    if (c < 1 || side < 1 || batch < 1 || threads < 1 || steps < 1) {
        fprintf(stderr, "bench_layers: every number must be at least 1\n");
        return 2;
    }
    nnl_set_threads(threads);
    nnl_model *m;
    if (nnl_model_create(&m, arch, c, side, side, 10) || nnl_model_init(m, 1) || nnl_model_prepare(m, batch)) {
        fprintf(stderr, "bench_layers: %s\n", nnl_errmsg());
        return 1;
    }
    if (unfold) m->fold = 0;
    int nl = m->nlayers;
    double *tf = calloc((size_t)nl, sizeof(double)), *tb = calloc((size_t)nl, sizeof(double));
    if (!tf || !tb || layer_times(m, batch, steps, tf, tb)) {
        fprintf(stderr, "bench_layers: out of memory\n");
        return 1;
    }
    double sf = 0, sb = 0;
    printf("%-4s %-10s %-12s %9s %9s %9s %9s\n", "#", "layer", "output", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s");
    for (int i = 0; i < nl; i++) {
        const nnl_layer *L = &m->layers[i];
        const nnl_layer_ops *ops = nnl_layer_ops_of(L->kind);
        double f = tf[i] * 1e3, b = tb[i] * 1e3, macs = ops->macs(L) * batch;
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", L->out.c, L->out.h, L->out.w);
        int mult = L->kind == NNL_L_CONV2D || L->kind == NNL_L_DENSE;
        printf("%-4d %-10s %-12s %9.3f %9.3f", i, ops->name, shape, f, b);
        if (mult) printf(" %9.1f %9.1f", 2 * macs / (f * 1e6), (i ? 4 : 2) * macs / (b * 1e6));
        printf("\n");
        sf += f; sb += b;
    }
    printf("total forward %.3f ms, backward %.3f ms, step %.3f ms = %.1f images/s (layers only)\n", sf, sb,
           sf + sb, batch / ((sf + sb) * 1e-3));
    free(tf); free(tb);
    nnl_model_free(m);
    return 0;
}
