/* nnlock eval: accuracy, per-class accuracy and confusion matrix of a model; with a
 * certificate key, the locked model's authorized/unauthorized table. */
#include "cli.h"
#include "figures.h"
#include "weights_report.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock eval MODEL [options]\n"
        "       nnlock eval --key KEY [--baseline BASE] LOCKED [LOCKED...] [options]\n\n"
        "Evaluates a model on the test split of a data set: accuracy, per-class accuracy and\n"
        "the confusion matrix. With the certificate key of a certificate-locked model: the\n"
        "accuracy on stamped images (authorized users), on clean images (unauthorized), and the\n"
        "remapped unauthorized accuracy (an attacker relabels the outputs with a mapping learnt\n"
        "from 1%% of the labelled test images). Several LOCKED models (e.g. one per seed) give\n"
        "mean +/- std.\n\n"
        "  -d, --data PATH     data set directory (default %s)\n"
        "      --split NAME    test or train (default test)\n"
        "  -k, --key FILE      certificate key of a certificate-locked model\n"
        "      --baseline FILE the unlocked model trained with the same settings, for comparison\n"
        "      --remap F       fraction of test images the remapping attacker knows (default 0.01)\n"
        "      --out DIR       write figures: certificate, clean/stamped examples, training curves\n"
        "  -b, --batch N       batch size (default 500; less for large networks, to keep\n"
        "                      activations near 512 MB)\n"
        "  -t, --threads N     threads (default 0: all cores)\n"
        "      --json          print the result as JSON on stdout\n"
        CLI_WEIGHTS_USAGE
        "      --wrong-keys    for a weight-locked model and its key: accuracy with the right key,\n"
        "                      100 random wrong keys and one-bit-off keys, NaN/Inf fraction\n",
        NNL_DEFAULT_DATA);
}

static void print_report(nnl_model *m, const nnl_eval *ev) {
    int k = ev->nclass;
    printf("accuracy %.2f%% (%lld/%lld), loss %.4f\n\nper class:\n", 100.0 * nnl_eval_accuracy(ev),
           (long long)ev->correct, (long long)ev->n, ev->loss);
    if (ev->invalid)
        printf("%lld images got NaN or Inf outputs (counted as wrong)\n", (long long)ev->invalid);
    for (int i = 0; i < k; i++) {
        printf("  %3d %-16s %6.2f%%\n", i, cli_safe(nnl_model_class_name(m, i)), 100.0 * nnl_eval_class_accuracy(ev, i));
    }
    if (k > 20) return;
    printf("\nconfusion matrix (rows: true class, columns: predicted):\n     ");
    for (int j = 0; j < k; j++) printf("%6d", j);
    printf("\n");
    for (int i = 0; i < k; i++) {
        printf("  %3d", i);
        for (int j = 0; j < k; j++) printf("%6lld", (long long)ev->confusion[(size_t)i * k + j]);
        printf("\n");
    }
}

static json_t *report_json(nnl_model *m, const nnl_eval *ev, int *nulls) {
    int k = ev->nclass;
    json_t *pc = json_array(), *cm = json_array();
    for (int i = 0; i < k; i++) {
        json_array_append_new(pc, json_pack("{s:i, s:o, s:o}", "class", i, "name", cli_jstr(nnl_model_class_name(m, i)),
                                            "accuracy", cli_jnum(nnl_eval_class_accuracy(ev, i), nulls)));
        json_t *row = json_array();
        for (int j = 0; j < k; j++) json_array_append_new(row, json_integer(ev->confusion[(size_t)i * k + j]));
        json_array_append_new(cm, row);
    }
    return json_pack("{s:o, s:I, s:I, s:I, s:o, s:o, s:o}", "accuracy", cli_jnum(nnl_eval_accuracy(ev), nulls), "correct",
                     (json_int_t)ev->correct, "n", (json_int_t)ev->n, "invalid", (json_int_t)ev->invalid, "loss",
                     cli_jnum(ev->loss, nulls), "per_class", pc, "confusion", cm);
}

static int accuracy(const char *cmd, nnl_model *m, const nnl_dataset *ds, const nnl_hooks *h, int batch, double *acc) {
    nnl_eval ev;
    int st = nnl_evaluate(m, ds, h, batch, &ev);
    if (st) return cli_lib_fail(cmd, st);
    *acc = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    return 0;
}

static void mean_std(const double *v, int n, double *mean, double *sd) {
    double s = 0.0, q = 0.0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    static char buf[256];
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(buf, sizeof buf, "%.*s", (int)(n - b), path + b);
    return buf;
}

/* The certificate-lock table: one row, mean +/- std over the given locked models. `first` is
 * models[0] already loaded; lock_table takes it over. */
static int lock_table(const char *cmd, nnl_model *first, char **models, int nmodels, const char *keyfile, const char *baseline,
                      const char *data, nnl_dataset *ds, const cli_weights_opts *wo, double remap, int batch,
                      const char *outdir, int json) {
    nnl_cert cert;
    int st = nnl_cert_load(&cert, keyfile);
    if (st) { nnl_model_free(first); return cli_lib_fail(cmd, st); }
    nnl_hooks stamp;
    nnl_cert_stamp_hooks(&stamp, &cert);
    double *v = calloc((size_t)nmodels * 3, sizeof *v), base = -1.0;
    double *trusted = v, *clean = v + nmodels, *remapped = v + 2 * nmodels;
    char strategy[32] = "?";
    int rc = 1;
    if (!v) { cli_fail(cmd, "out of memory"); goto done; }
    for (int i = 0; i < nmodels; i++) {
        nnl_model *m = first;
        first = NULL;
        if (!m && cli_load_model(cmd, models[i], wo, &m)) goto done;
        const char *kind = nnl_model_meta_get(m, "lock.kind");
        if (!kind || strcmp(kind, "certificate")) {
            cli_fail(cmd, "%s is not certificate-locked (its metadata has no lock.kind = certificate)", models[i]);
            nnl_model_free(m);
            goto done;
        }
        if (cli_match_classes(cmd, m, ds, "test")) { nnl_model_free(m); goto done; }
        const char *s = nnl_model_meta_get(m, "lock.strategy");
        if (s) snprintf(strategy, sizeof strategy, "%s", s);
        if ((st = nnl_cert_check_model(&cert, m, keyfile))) { cli_lib_fail(cmd, st); nnl_model_free(m); goto done; }
        if (accuracy(cmd, m, ds, &stamp, batch, &trusted[i]) || accuracy(cmd, m, ds, NULL, batch, &clean[i])) {
            nnl_model_free(m);
            goto done;
        }
        if ((st = nnl_eval_remapped(m, ds, NULL, remap, 1, &remapped[i]))) { cli_lib_fail(cmd, st); nnl_model_free(m); goto done; }
        if (i == 0 && outdir && cli_figures(cmd, outdir, m, ds, &cert)) { nnl_model_free(m); goto done; }
        nnl_model_free(m);
    }
    if (baseline) {
        nnl_model *b;
        if (cli_load_model(cmd, baseline, wo, &b)) goto done;
        int fail = cli_match_classes(cmd, b, ds, "test") || accuracy(cmd, b, ds, NULL, batch, &base);
        nnl_model_free(b);
        if (fail) goto done;
    }
    double tm, ts, cm, cs, rm, rs;
    mean_std(trusted, nmodels, &tm, &ts);
    mean_std(clean, nmodels, &cm, &cs);
    mean_std(remapped, nmodels, &rm, &rs);
    if (json) {
        int nulls = 0;
        json_t *r = json_pack("{s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "strategy", cli_jstr(strategy), "data",
                              cli_jstr(base_name(data)), "models", nmodels, "trusted_mean", cli_jnum(tm, &nulls),
                              "trusted_std", cli_jnum(ts, &nulls), "unverified_mean", cli_jnum(cm, &nulls),
                              "unverified_std", cli_jnum(cs, &nulls), "remapped_mean", cli_jnum(rm, &nulls),
                              "remapped_std", cli_jnum(rs, &nulls), "remap_fraction", cli_jnum(remap, &nulls));
        if (r && base >= 0) json_object_set_new(r, "baseline", cli_jnum(base, &nulls));
        if (cli_json_emit(cmd, r, nulls, NULL)) goto done;
    } else {
        printf("| Strategy | Data set | Baseline clean | Trusted (stamped) | Unverified (clean) | Unverified remapped |\n");
        printf("|---|---|---|---|---|---|\n");
        char bs[32] = "-";
        if (base >= 0) snprintf(bs, sizeof bs, "%.2f", 100.0 * base);
        char cell[3][48];
        const double mv[3] = {tm, cm, rm}, sv[3] = {ts, cs, rs};
        for (int i = 0; i < 3; i++) {
            if (nmodels > 1) snprintf(cell[i], sizeof cell[i], "%.2f +/- %.2f", 100.0 * mv[i], 100.0 * sv[i]);
            else snprintf(cell[i], sizeof cell[i], "%.2f", 100.0 * mv[i]);
        }
        printf("| %s | %s | %s | %s | %s | %s |\n", cli_safe(strategy), cli_safe(base_name(data)), bs, cell[0], cell[1], cell[2]);
        printf("\n%d locked model(s); trusted = authorized users (certificate stamped), unverified = unauthorized "
               "users (clean images), remapped = unauthorized accuracy after relabelling the outputs with a mapping "
               "learnt from %.0f%% of the labelled test images.\n", nmodels, 100.0 * remap);
        if (outdir) printf("figures written to %s/\n", outdir);
    }
    rc = 0;
done:
    nnl_model_free(first);
    free(v);
    nnl_cert_free(&cert);
    return rc;
}

static int run(int argc, char **argv) {
    static const struct option lo[] = {{"data", 1, 0, 'd'}, {"split", 1, 0, 1}, {"batch", 1, 0, 'b'},
                                       {"threads", 1, 0, 't'}, {"json", 0, 0, 2}, {"key", 1, 0, 'k'},
                                       {"baseline", 1, 0, 3}, {"remap", 1, 0, 4}, {"out", 1, 0, 5}, {"wrong-keys", 0, 0, 6},
                                       CLI_WEIGHTS_LONGOPTS(300), {0, 0, 0, 0}};
    const char *cmd = "eval", *data = NNL_DEFAULT_DATA, *key = NULL, *baseline = NULL, *outdir = NULL;
    cli_weights_opts wo = {0};
    long batch = 500, threads = 0;
    double remap = 0.01;
    int split = NNL_SPLIT_TEST, json = 0, wrong_keys = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:b:t:k:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 1:
            if (!strcmp(optarg, "test")) split = NNL_SPLIT_TEST;
            else if (!strcmp(optarg, "train")) split = NNL_SPLIT_TRAIN;
            else return cli_fail(cmd, "--split must be test or train, got '%s'", optarg) + 1;
            break;
        case 'b': if (cli_int(cmd, "--batch", optarg, 1, 65536, &batch)) return 2; break;
        case 't': if (cli_int(cmd, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 2: json = 1; break;
        case 'k': key = optarg; break;
        case 3: baseline = optarg; break;
        case 4: if (cli_float(cmd, "--remap", optarg, 1e-4, 0.5, &remap)) return 2; break;
        case 5: outdir = optarg; break;
        case 6: wrong_keys = 1; break;
        default:
            if (cli_weights_option(c, 300, &wo)) break;
            return cli_bad_option(cmd, argc, argv);
        }
    }
    if (optind >= argc) return cli_fail(cmd, "no model file given (usage: nnlock eval MODEL [options])") + 1;
    if (!key && optind + 1 < argc) return cli_fail(cmd, "several models need --key (they are compared as locked models)") + 1;
    if (!key && baseline) return cli_fail(cmd, "--baseline needs --key (it compares a locked model with its baseline)") + 1;
    if (outdir && cli_check_out(cmd, outdir, NNL_WRITE_DIR)) return 1;
    if (cli_threads(cmd, threads)) return 1;
    /* Loaded before the data: data sets resized on loading (GTSRB) follow the model. */
    nnl_model *m = NULL;
    if (cli_load_model(cmd, argv[optind], &wo, &m)) return 1;
    cli_data_for_model(m);
    nnl_dataset ds = {0};
    if (cli_load_data(cmd, data, split, &ds) || cli_match_classes(cmd, m, &ds, split == NNL_SPLIT_TRAIN ? "training" : "test")) {
        nnl_model_free(m);
        nnl_dataset_free(&ds);
        return 1;
    }
    int rc = 1;
    if (wrong_keys) {
        nnl_model_free(m); /* the report reads the locked file itself */
        if (!wo.key_file && !wo.passphrase_file) rc = cli_fail(cmd, "--wrong-keys needs the right key (--weights-key FILE)");
        else rc = cli_weights_report(cmd, argv[optind], &wo, &ds, json);
        nnl_dataset_free(&ds);
        return rc;
    }
    if (key) {
        rc = lock_table(cmd, m, argv + optind, argc - optind, key, baseline, data, &ds, &wo, remap, (int)batch, outdir, json);
        nnl_dataset_free(&ds);
        return rc;
    }
    nnl_eval ev = {0};
    int st;
    const char *kind = nnl_model_meta_get(m, "lock.kind");
    if (kind && !strcmp(kind, "certificate") && !json)
        fprintf(stderr, "nnlock eval: note: %s is certificate-locked; without --key this is what unauthorized users get\n", argv[optind]);
    if ((st = nnl_evaluate(m, &ds, NULL, (int)batch, &ev))) { cli_lib_fail(cmd, st); goto done; }
    if (json) {
        int nulls = 0;
        char why[256];
        snprintf(why, sizeof why, "%lld of %lld images got NaN or Inf outputs (counted as wrong), so the loss is not a "
                 "number%s", (long long)ev.invalid, (long long)ev.n,
                 nnl_weights_locked(m) ? ": the model is weight-locked and ran without its key" : "");
        json_t *r = report_json(m, &ev, &nulls);
        if (cli_json_emit(cmd, r, nulls, why)) goto done;
    } else {
        print_report(m, &ev);
    }
    if (outdir && cli_figures(cmd, outdir, m, &ds, NULL)) goto done;
    rc = 0;
done:
    nnl_eval_free(&ev);
    nnl_dataset_free(&ds);
    nnl_model_free(m);
    return rc;
}

const nnl_command nnl_cmd_eval = {"eval", "accuracy, confusion matrix; a locked model's authorized/unauthorized table", run, usage};
