/* Training and inference throughput of nnlock's networks, with the same case names
 * and output lines as bench/torch_bench.py so bench/run_bench.sh can print ratios:
 *   case=<name> images_per_s=<float>
 *   case=<name> value=<float>
 * Data are synthetic 8-bit images: the figures include nnlock's batching and
 * normalisation, which the PyTorch side (float tensors ready in memory) skips. */
#include "bench_data.h"
#include "layer_times.h"
#include "nn/model.h"

#include <cblas.h>
#include <getopt.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static double g_seconds = 3.0;

/* images/s of nnl_train on n images (one epoch, batch g_batch), after the first batch. */
static int g_batch = 128;
static double train_rate(const char *arch, const nnl_dataset *ds, int64_t n) {
    nnl_dataset sub = *ds;
    const int64_t bs = g_batch;
    sub.n = n / bs * bs < 2 * bs ? 2 * bs : n / bs * bs;   /* whole batches only */
    nnl_model *m;
    if (nnl_model_create(&m, arch, ds->c, ds->h, ds->w, 10)) { fprintf(stderr, "%s\n", nnl_errmsg()); exit(1); }
    nnl_model_init(m, 1);
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.epochs = 1; o.batch = g_batch; o.lr = 0.01f; o.compute_norm = 0;
    rate_clock clk = {0};
    o.progress = on_batch; o.progress_user = &clk;
    nnl_train_result r;
    if (nnl_train(m, &sub, NULL, &o, &r)) { fprintf(stderr, "%s\n", nnl_errmsg()); exit(1); }
    nnl_model_free(m);
    if (clk.b_end <= clk.b1 || clk.t_end <= clk.t1) return r.images_per_s;
    return (double)(clk.b_end - clk.b1) * o.batch / (clk.t_end - clk.t1);
}

static double bench_train(const char *name, const char *arch, int c, int hw) {
    nnl_dataset ds;
    random_dataset(&ds, 60000, c, hw, hw);
    /* A short run sizes the timed one to about g_seconds. */
    double est = train_rate(arch, &ds, 10 * g_batch);
    int64_t n = (int64_t)(est * g_seconds);
    if (n < 10 * g_batch) n = 10 * g_batch;
    if (n > ds.n) n = ds.n;
    double best = 0.0;
    for (int rep = 0; rep < 2; rep++) {
        double v = train_rate(arch, &ds, n);
        if (v > best) best = v;
    }
    printf("case=%s images_per_s=%.1f\n", name, best);
    fflush(stdout);
    nnl_dataset_free(&ds);
    return best;
}

static void bench_infer(const char *name, const char *arch, int c, int hw) {
    nnl_dataset ds;
    random_dataset(&ds, 1000, c, hw, hw);
    nnl_model *m;
    if (nnl_model_create(&m, arch, c, hw, hw, 10) || nnl_model_prepare(m, 1000)) { fprintf(stderr, "%s\n", nnl_errmsg()); exit(1); }
    nnl_model_init(m, 1);
    int32_t *pred = malloc(1000 * sizeof *pred);
    nnl_model_predict(m, ds.pixels, 1000, NULL, pred); /* warm-up */
    double best = 0.0, t_end = nnl_now() + g_seconds;
    while (nnl_now() < t_end) {
        double t0 = nnl_now();
        nnl_model_predict(m, ds.pixels, 1000, NULL, pred);
        double v = 1000.0 / (nnl_now() - t0);
        if (v > best) best = v;
    }
    printf("case=%s images_per_s=%.1f\n", name, best);
    fflush(stdout);
    free(pred);
    nnl_model_free(m);
    nnl_dataset_free(&ds);
}

/* sgemm GFLOP/s at a square size (the machine's BLAS rate) */
static double sgemm_rate(int n, int m_, int k) {
    float *a = nnl_alloc((size_t)n * k * 4), *b = nnl_alloc((size_t)k * m_ * 4), *c = nnl_alloc((size_t)n * m_ * 4);
    for (size_t i = 0; i < (size_t)n * k; i++) a[i] = 0.001f * (float)(i % 1000);
    for (size_t i = 0; i < (size_t)k * m_; i++) b[i] = 0.002f * (float)(i % 500);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m_, k, 1, a, k, b, m_, 0, c, m_);
    double best = 0.0, t_end = nnl_now() + 1.0;
    while (nnl_now() < t_end) {
        double t0 = nnl_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m_, k, 1, a, k, b, m_, 0, c, m_);
        double v = 2.0 * n * m_ * k / (nnl_now() - t0) / 1e9;
        if (v > best) best = v;
    }
    nnl_free(a); nnl_free(b); nnl_free(c);
    return best;
}

/* The FMA peak, measured: each thread runs 12 independent chains of fused multiply-adds
 * (enough to cover the FMA latency on two pipes) for about a second, 16 floats wide with
 * AVX-512 and 8 with AVX2, the widest the CPU has. */
__attribute__((target("avx512f"))) static double fma_chains512(long iters) {
    __m512 acc[12], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
    float out[16], sum = 0.0f;
    for (int k = 0; k < 12; k++) { _mm512_storeu_ps(out, acc[k]); sum += out[0]; }
    return sum;  /* keeps the loop alive */
}
__attribute__((target("avx2,fma"))) static double fma_chains256(long iters) {
    __m256 acc[12], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++) acc[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
    float out[8], sum = 0.0f;
    for (int k = 0; k < 12; k++) { _mm256_storeu_ps(out, acc[k]); sum += out[0]; }
    return sum;
}

static double fma_peak_gflops(void) {
    int wide = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8 : 0;
    if (!wide) return 0.0;
    long iters = 20000000;
    volatile double sink = 0.0;
    double best = 0.0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = nnl_now();
        #pragma omp parallel num_threads(nnl_threads()) reduction(+:sink)
        sink += wide == 16 ? fma_chains512(iters) : fma_chains256(iters);
        double v = (double)iters * 12 * wide * 2 * nnl_threads() / (nnl_now() - t0) / 1e9;
        if (v > best) best = v;
    }
    return best;
}

/* The `mlp` training bound: its training FLOPs at the sgemm rate. */
static void bench_sgemm(double mlp_rate) {
    double big = sgemm_rate(2048, 2048, 2048);
    printf("case=nnlock_sgemm_gflops value=%.1f\n", big);
    nnl_model *m;
    nnl_model_create(&m, "mlp", 1, 28, 28, 10);
    double flops = nnl_model_train_flops(m);
    nnl_model_free(m);
    double bound = big * 1e9 / flops;
    printf("case=mlp_train_sgemm_bound images_per_s=%.1f\n", bound);
    if (mlp_rate > 0) printf("case=mlp_train_fraction_of_bound value=%.3f\n", mlp_rate / bound);
    fflush(stdout);
}

/* Peak RSS of `nnlock train` on Fashion-MNIST, one epoch of the mlp, in a child. */
static void bench_rss(const char *cli) {
    const char *data = "/usr/share/datasets/fashion-mnist";
    if (access(cli, X_OK) != 0 || access(data, R_OK) != 0) {
        printf("# mlp_rss skipped: need %s and %s\n", cli, data);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", 1);
        dup2(fd, 1); dup2(fd, 2);
        execl(cli, cli, "train", "--epochs", "1", "--quiet", "--data", data, "--out", "/tmp/nnlock-bench-rss.nnl", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    unlink("/tmp/nnlock-bench-rss.nnl");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { printf("# mlp_rss: nnlock train failed\n"); return; }
    printf("case=mlp_train_peak_rss_mb value=%.1f\n", ru.ru_maxrss / 1024.0);
    fflush(stdout);
}

static int has(const char *cases, const char *c) {
    size_t n = strlen(c);
    for (const char *p = cases; (p = strstr(p, c)); p += n)
        if ((p == cases || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

int main(int argc, char **argv) {
    nnl_blas_reexec(argv);
    static const struct option lo[] = {{"threads", 1, 0, 't'}, {"seconds", 1, 0, 's'}, {"cases", 1, 0, 'c'},
                                       {"cli", 1, 0, 'x'}, {0, 0, 0, 0}};
    int threads = 2, c;
    const char *cases = "mlp_train,mlp_infer,cnn32_train,cnn32_infer,cnn28_train,cnn28_infer,resnet9_train,airbench_train,"
                        "mlp_rss,sgemm";
    char cli[4096];
    snprintf(cli, sizeof cli, "%s", argv[0]);
    char *slash = strrchr(cli, '/');
    snprintf(slash ? slash + 1 : cli, sizeof cli - (size_t)(slash ? slash + 1 - cli : 0), "../nnlock");
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 't': threads = atoi(optarg); break;
        case 's': g_seconds = atof(optarg); break;
        case 'c': cases = optarg; break;
        case 'x': snprintf(cli, sizeof cli, "%s", optarg); break;
        default: fprintf(stderr, "usage: bench_train [--threads N] [--seconds S] [--cases a,b] [--cli PATH]\n"); return 2;
        }
    }
    nnl_set_threads(threads);
    printf("# nnlock %s threads=%d GOMP_SPINCOUNT=%s OPENBLAS_CORETYPE=%s\n", NNL_VERSION, threads,
           getenv("GOMP_SPINCOUNT") ? getenv("GOMP_SPINCOUNT") : "(unset)",
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
    double mlp_rate = 0.0;
    if (has(cases, "mlp_train")) {
        nnl_dataset ds;
        random_dataset(&ds, 60000, 1, 28, 28);
        double est = train_rate("mlp", &ds, 2560);
        int64_t n = (int64_t)(est * g_seconds);
        if (n > ds.n) n = ds.n;
        if (n < 2560) n = 2560;
        for (int rep = 0; rep < 2; rep++) {
            double v = train_rate("mlp", &ds, n);
            if (v > mlp_rate) mlp_rate = v;
        }
        printf("case=mlp_train images_per_s=%.1f\n", mlp_rate);
        fflush(stdout);
        nnl_dataset_free(&ds);
    }
    if (has(cases, "mlp_infer")) bench_infer("mlp_infer", "mlp", 1, 28);
    if (has(cases, "cnn32_train")) bench_train("cnn32_train", "cnn", 3, 32);
    if (has(cases, "cnn32_infer")) bench_infer("cnn32_infer", "cnn", 3, 32);
    if (has(cases, "cnn28_train")) bench_train("cnn28_train", "cnn", 1, 28);
    if (has(cases, "cnn28_infer")) bench_infer("cnn28_infer", "cnn", 1, 28);
    if (has(cases, "resnet9_train")) {
        /* ResNet-9 against the machine's limits: its training FLOPs per second next to
         * the sgemm rate and the FMA peak, all measured here. */
        double rate = bench_train("resnet9_train", "resnet9", 3, 32);
        nnl_model *m;
        nnl_model_create(&m, "resnet9", 3, 32, 32, 10);
        double gflops = rate * nnl_model_train_flops(m) / 1e9;
        nnl_model_free(m);
        double sg = sgemm_rate(2048, 2048, 2048), peak = fma_peak_gflops();
        printf("case=resnet9_train_gflops value=%.1f\n", gflops);
        printf("case=resnet9_sgemm_gflops value=%.1f\n", sg);
        printf("case=fma_peak_gflops value=%.1f\n", peak);
        if (peak > 0) printf("case=resnet9_fraction_of_fma_peak value=%.3f\n", gflops / peak);
        fflush(stdout);
    }
    if (has(cases, "airbench_train")) {
        /* airbench94's network at batch 512: the step's FLOPs per second (as a direct
         * convolution counts them: Winograd does fewer multiplies, so this may pass the
         * peak), and those of its large layers (the convolutions on 64+ channels), against
         * the FMA peak measured here. */
        g_batch = 512;
        double rate = bench_train("airbench_train", "airbench", 3, 32);
        g_batch = 128;
        nnl_model *m;
        if (nnl_model_create(&m, "airbench", 3, 32, 32, 10) || nnl_model_init(m, 1) || nnl_model_prepare(m, 512)) {
            fprintf(stderr, "%s\n", nnl_errmsg());
            return 1;
        }
        double peak = fma_peak_gflops(), gflops = rate * nnl_model_train_flops(m) / 1e9;
        double *tf = calloc((size_t)m->nlayers, sizeof(double)), *tb = calloc((size_t)m->nlayers, sizeof(double));
        if (!tf || !tb || layer_times(m, 512, 2, tf, tb)) { fprintf(stderr, "out of memory\n"); return 1; }
        double flops = 0, secs = 0;
        for (int i = 0; i < m->nlayers; i++) {
            const nnl_layer *L = &m->layers[i];
            if (L->kind != NNL_L_CONV2D || L->in.c < 64) continue;
            flops += 2.0 * 3.0 * nnl_layer_ops_of(L->kind)->macs(L) * 512;
            secs += tf[i] + tb[i];
        }
        printf("case=airbench_train_gflops value=%.1f\n", gflops);
        printf("case=fma_peak_gflops value=%.1f\n", peak);
        if (peak > 0) printf("case=airbench_fraction_of_fma_peak value=%.3f\n", gflops / peak);
        if (secs > 0) printf("case=airbench_large_conv_gflops value=%.1f\n", flops / secs / 1e9);
        if (peak > 0 && secs > 0) printf("case=airbench_large_conv_fraction_of_fma_peak value=%.3f\n", flops / secs / 1e9 / peak);
        fflush(stdout);
        free(tf); free(tb);
        nnl_model_free(m);
    }
    if (has(cases, "sgemm")) bench_sgemm(mlp_rate);
    if (has(cases, "mlp_rss")) bench_rss(cli);
    return 0;
}
