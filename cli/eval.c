/* nnlock eval: accuracy, per-class accuracy and confusion matrix of a model. */
#include "cli.h"

#include <jansson.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock eval MODEL [options]\n\n"
        "Evaluates a model on the test split of a data set.\n\n"
        "  -d, --data PATH     data set directory (default %s)\n"
        "      --split NAME    test or train (default test)\n"
        "  -b, --batch N       batch size (default 500)\n"
        "  -t, --threads N     threads (default 0: all cores)\n"
        "      --json          print the result as JSON on stdout\n", NNL_DEFAULT_DATA);
}

static void print_report(nnl_model *m, const nnl_eval *ev) {
    int k = ev->nclass;
    printf("accuracy %.2f%% (%lld/%lld), loss %.4f\n\nper class:\n", 100.0 * nnl_eval_accuracy(ev),
           (long long)ev->correct, (long long)ev->n, ev->loss);
    for (int i = 0; i < k; i++) {
        const char *nm = nnl_model_class_name(m, i);
        printf("  %3d %-16s %6.2f%%\n", i, nm ? nm : "", 100.0 * nnl_eval_class_accuracy(ev, i));
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

static json_t *report_json(nnl_model *m, const nnl_eval *ev) {
    int k = ev->nclass;
    json_t *pc = json_array(), *cm = json_array();
    for (int i = 0; i < k; i++) {
        const char *nm = nnl_model_class_name(m, i);
        json_array_append_new(pc, json_pack("{s:i, s:s, s:f}", "class", i, "name", nm ? nm : "",
                                            "accuracy", nnl_eval_class_accuracy(ev, i)));
        json_t *row = json_array();
        for (int j = 0; j < k; j++) json_array_append_new(row, json_integer(ev->confusion[(size_t)i * k + j]));
        json_array_append_new(cm, row);
    }
    return json_pack("{s:f, s:I, s:I, s:f, s:o, s:o}", "accuracy", nnl_eval_accuracy(ev), "correct",
                     (json_int_t)ev->correct, "n", (json_int_t)ev->n, "loss", ev->loss, "per_class", pc,
                     "confusion", cm);
}

static int run(int argc, char **argv) {
    static const struct option lo[] = {{"data", 1, 0, 'd'}, {"split", 1, 0, 1}, {"batch", 1, 0, 'b'},
                                       {"threads", 1, 0, 't'}, {"json", 0, 0, 2}, {0, 0, 0, 0}};
    const char *cmd = "eval", *data = NNL_DEFAULT_DATA;
    long batch = 500, threads = 0;
    int split = NNL_SPLIT_TEST, json = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:b:t:", lo, NULL)) != -1) {
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
        default: return cli_bad_option(cmd, argc, argv);
        }
    }
    if (optind >= argc) return cli_fail(cmd, "no model file given (usage: nnlock eval MODEL [options])") + 1;
    if (optind + 1 < argc) return cli_fail(cmd, "unexpected argument '%s'", argv[optind + 1]) + 1;
    cli_threads(threads);
    nnl_model *m = NULL;
    nnl_dataset ds = {0};
    nnl_eval ev = {0};
    int st, rc = 1;
    if ((st = nnl_model_load(&m, argv[optind]))) { cli_lib_fail(cmd, st); goto done; }
    if (cli_load_data(cmd, data, split, &ds)) goto done;
    if ((st = nnl_evaluate(m, &ds, NULL, (int)batch, &ev))) { cli_lib_fail(cmd, st); goto done; }
    if (json) {
        json_t *r = report_json(m, &ev);
        json_dumpf(r, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(r);
    } else {
        print_report(m, &ev);
    }
    rc = 0;
done:
    nnl_eval_free(&ev);
    nnl_dataset_free(&ds);
    nnl_model_free(m);
    return rc;
}

const nnl_command nnl_cmd_eval = {"eval", "accuracy, per-class accuracy and confusion matrix", run, usage};
