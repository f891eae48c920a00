/* What a lock's input transform costs next to a training step of the `cnn`, measured in the
 * same run: for each key-transform method (and the certificate's stamp), the time to apply
 * the key to a batch of 128 images, the time of a training step on that batch, and the
 * training throughput with and without the lock. Target: the key costs at most 5% of a step.
 *   case=<name> key_ms=<per batch> step_ms=<per batch> ratio=<key/step> plain_ips=<> locked_ips=<>
 * Usage: bench_locks [--seconds S] [--threads N] */
#include "bench_data.h"
#include "nn/model.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 128

/* Steady-state images/s of one epoch of the cnn, after its first batch. */
static double train_rate(const nnl_dataset *ds, const nnl_hooks *h) {
    nnl_model *m;
    if (nnl_model_create(&m, "cnn", ds->c, ds->h, ds->w, 10)) { fprintf(stderr, "%s\n", nnl_errmsg()); exit(1); }
    nnl_model_init(m, 1);
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.epochs = 1; o.batch = BATCH; o.compute_norm = 0; o.hooks = h;
    rate_clock clk = {0};
    o.progress = on_batch; o.progress_user = &clk;
    nnl_train_result r;
    if (nnl_train(m, ds, NULL, &o, &r)) { fprintf(stderr, "%s\n", nnl_errmsg()); exit(1); }
    nnl_model_free(m);
    return (double)(clk.b_end - clk.b1) * BATCH / (clk.t_end - clk.t1);
}

/* ms to pass one batch through the hooks as training does: sample, then the float stage
 * with the normalisation (nnl_model_input), against the plain normalisation alone. */
static double key_ms(const nnl_dataset *ds, const nnl_hooks *h, double seconds) {
    nnl_model *m;
    if (nnl_model_create(&m, "cnn", ds->c, ds->h, ds->w, 10)) exit(1);
    size_t in = (size_t)ds->c * ds->h * ds->w;
    uint8_t *px = malloc(BATCH * in);
    float *x = malloc(BATCH * in * sizeof *x), soft[10];
    int reps = 0;
    double t0 = nnl_now(), t;
    do {
        memcpy(px, ds->pixels, BATCH * in);
        for (int i = 0; h->sample && i < BATCH; i++)
            h->sample(h->user, px + (size_t)i * in, ds->c, ds->h, ds->w, i, 0, (uint64_t)i, soft);
        nnl_model_input(m, px, BATCH, h, 0, NULL, x);
        reps++;
        t = nnl_now() - t0;
    } while (t < seconds);
    double with = 1e3 * t / reps;
    reps = 0;
    t0 = nnl_now();
    do {
        memcpy(px, ds->pixels, BATCH * in);
        nnl_model_input(m, px, BATCH, NULL, 0, NULL, x);
        reps++;
        t = nnl_now() - t0;
    } while (t < seconds);
    double without = 1e3 * t / reps;
    free(px);
    free(x);
    nnl_model_free(m);
    return with - without > 0 ? with - without : 0.0;
}

int main(int argc, char **argv) {
    double seconds = 1.0;
    int threads = 0, c;
    static const struct option lo[] = {{"seconds", 1, 0, 's'}, {"threads", 1, 0, 't'}, {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "s:t:", lo, NULL)) != -1) {
        if (c == 's') seconds = atof(optarg);
        else if (c == 't') threads = atoi(optarg);
        else { fprintf(stderr, "usage: bench_locks [--seconds S] [--threads N]\n"); return 2; }
    }
    nnl_blas_reexec(argv);
    nnl_set_threads(threads);
    const int shapes[2][3] = {{3, 32, 32}, {1, 28, 28}};
    for (int s = 0; s < 2; s++) {
        nnl_dataset ds;
        random_dataset(&ds, 12 * BATCH, shapes[s][0], shapes[s][1], shapes[s][2]);
        double plain = train_rate(&ds, NULL), step_ms = 1e3 * BATCH / plain;
        for (int method = 0; method <= 3; method++) {
            nnl_hooks h;
            nnl_transform t = {0};
            nnl_cert k = {0};
            char name[64];
            if (method < 3) {
                nnl_transform_opts o;
                nnl_transform_opts_default(&o);
                o.method = method;
                o.seed = 7;
                if (nnl_transform_generate(&t, ds.c, &o)) { fprintf(stderr, "%s\n", nnl_errmsg()); return 1; }
                nnl_transform_hooks(&h, &t);
                snprintf(name, sizeof name, "transform_%s_%dx%dx%d", nnl_transform_method_name(method), ds.c, ds.h, ds.w);
            } else {
                nnl_cert_opts o;
                nnl_cert_opts_default(&o);
                o.seed = 7;
                if (nnl_cert_generate(&k, ds.c, ds.h, ds.w, &o)) { fprintf(stderr, "%s\n", nnl_errmsg()); return 1; }
                nnl_cert_stamp_hooks(&h, &k);
                snprintf(name, sizeof name, "certificate_stamp_%dx%dx%d", ds.c, ds.h, ds.w);
            }
            double kms = key_ms(&ds, &h, seconds), locked = train_rate(&ds, &h);
            printf("case=%s key_ms=%.3f step_ms=%.2f ratio=%.4f plain_ips=%.0f locked_ips=%.0f\n", name, kms, step_ms,
                   kms / step_ms, plain, locked);
            fflush(stdout);
            nnl_transform_free(&t);
            nnl_cert_free(&k);
        }
        nnl_dataset_free(&ds);
    }
    return 0;
}
