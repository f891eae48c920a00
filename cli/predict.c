/* nnlock predict: labels and top-k probabilities for image files or a data set. */
#include "locks.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock predict MODEL [options] IMAGE...\n"
        "       nnlock predict MODEL --data PATH [--limit N]\n\n"
        "Prints the predicted label and the top-k probabilities of each image (PNG, JPEG,\n"
        "PPM/PGM; the size must be the model's input size; gray and colour are converted).\n\n"
        "  -k, --top K        probabilities to show (default 3)\n"
        "  -d, --data PATH    predict the test split of a data set instead of files\n"
        "      --limit N      with --data: only the first N images (default 20)\n"
        "  -t, --threads N    threads (default 0: all cores)\n"
        "      --key FILE     a key of the locked model (repeat for several locks): each image\n"
        "                     gets the key applied (stamped, transformed) as eval applies it,\n"
        "                     and a weight key decrypts the model in memory\n"
        "      --lock NAME    the lock of the --key after it (the key file tells, otherwise)\n"
        "      --json         JSON output\n"
        CLI_WEIGHTS_USAGE);
}

/* Gray <-> colour so that a user's image fits the model's channel count. */
static int fit_channels(uint8_t **px, int c, int h, int w, int want) {
    if (c == want) return 0;
    size_t plane = (size_t)h * w;
    uint8_t *o = malloc(plane * (size_t)want);
    if (!o) return -1;
    if (want == 3 && c == 1)
        for (int k = 0; k < 3; k++) memcpy(o + k * plane, *px, plane);
    else if (want == 1 && c == 3)
        for (size_t i = 0; i < plane; i++)
            o[i] = (uint8_t)((299 * (*px)[i] + 587 * (*px)[plane + i] + 114 * (*px)[2 * plane + i] + 500) / 1000);
    else { free(o); return -1; }
    free(*px);
    *px = o;
    return 0;
}

static void emit(nnl_model *m, const char *what, const float *p, int k, int top, int truth, json_t *arr) {
    int order[NNL_MAX_CLASSES] = {0};
    for (int i = 0; i < k; i++) order[i] = i;
    for (int i = 0; i < top; i++)
        for (int j = i + 1; j < k; j++)
            if (p[order[j]] > p[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    int finite = 1;
    for (int i = 0; i < k; i++) finite &= isfinite(p[i]) != 0;
    if (arr) {
        int nulls = 0;
        json_t *tk = json_array();
        for (int i = 0; i < top; i++)
            json_array_append_new(tk, json_pack("{s:i, s:o, s:o}", "label", order[i], "name",
                                                cli_jstr(nnl_model_class_name(m, order[i])), "prob",
                                                cli_jnum((double)p[order[i]], &nulls)));
        /* Outputs with NaN or Inf have no arg-max: no label rather than a made-up one. */
        json_t *o = json_pack("{s:o, s:o, s:o}", "input", cli_jstr(what), "label",
                              finite ? json_integer(order[0]) : json_null(), "top", tk);
        if (o && truth >= 0) json_object_set_new(o, "true_label", json_integer(truth));
        if (o && !finite)
            json_object_set_new(o, "null_values", cli_jstr("the model's outputs for this image are NaN or Inf (a weight-locked model run without its key?)"));
        json_array_append_new(arr, o);
        return;
    }
    const char *nm = nnl_model_class_name(m, order[0]);
    if (finite) printf("%s\t%d%s%s%s", cli_safe(what), order[0], nm ? " (" : "", nm ? cli_safe(nm) : "", nm ? ")" : "");
    else printf("%s\tnone (NaN or Inf outputs)", cli_safe(what));
    if (truth >= 0) printf("\ttrue %d", truth);
    printf("\t");
    for (int i = 0; i < top; i++) {
        const char *n2 = nnl_model_class_name(m, order[i]);
        printf("%s%s %.4f", i ? ", " : "", n2 ? cli_safe(n2) : "", (double)p[order[i]]);
        if (!n2) printf(" [%d]", order[i]);
    }
    printf("\n");
}

static int run(int argc, char **argv) {
    static const struct option base[] = {{"top", 1, 0, 'k'}, {"data", 1, 0, 'd'}, {"limit", 1, 0, 1},
                                         {"threads", 1, 0, 't'}, {"json", 0, 0, 2}, CLI_WEIGHTS_LONGOPTS(300), {0, 0, 0, 0}};
    cli_locks L;
    struct option *lo = cli_locks_options(&L, base, 500, 0);
    if (!lo) return cli_fail("predict", "out of memory");
    const char *cmd = "predict", *data = NULL;
    cli_weights_opts wo = {0};
    long top = 3, limit = 20, threads = 0;
    int json = 0, c, r, rc = 2, st;
    nnl_model *m = NULL;
    json_t *arr = NULL;
    float *probs = NULL;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:d:t:", lo, NULL)) != -1) {
        switch (c) {
        case 'k': if (cli_int(cmd, "--top", optarg, 1, NNL_MAX_CLASSES, &top)) goto done; break;
        case 'd': data = optarg; break;
        case 1: if (cli_int(cmd, "--limit", optarg, 1, 1000000000, &limit)) goto done; break;
        case 't': if (cli_int(cmd, "--threads", optarg, 0, 1024, &threads)) goto done; break;
        case 2: json = 1; break;
        default:
            if (cli_weights_option(c, 300, &wo)) break;
            if ((r = cli_locks_option(&L, cmd, c)) == 1) break;
            if (r != 2) rc = cli_bad_option(cmd, argc, argv);
            goto done;
        }
    }
    if (optind >= argc) { cli_fail(cmd, "no model file given (usage: nnlock predict MODEL IMAGE...)"); goto done; }
    const char *model = argv[optind++];
    if (!data && optind >= argc) { cli_fail(cmd, "no images given (name image files, or use --data PATH)"); goto done; }
    if (data && optind < argc) { cli_fail(cmd, "give either image files or --data, not both"); goto done; }
    rc = 1;
    if (cli_threads(cmd, threads)) goto done;
    if ((r = cli_locks_keys(&L, cmd, 0, 0, 0, 0))) { rc = r; goto done; }
    if (cli_locks_open(cmd, model, &wo, &L, &m)) goto done;
    /* The keys of the input locks, applied exactly as eval applies them. */
    nnl_hooks hooks, *h = NULL;
    int inputs[CLI_MAX_LOCKS];
    if (cli_locks_inputs(&L, inputs)) {
        if (cli_locks_hooks(&L, cmd, ~0u, &hooks)) goto done;
        h = &hooks;
    }
    int k = nnl_model_nclass(m), mc, mh, mw;
    if (top > k) top = k;
    nnl_model_input_shape(m, &mc, &mh, &mw);
    arr = json ? json_array() : NULL;
    if (data) {
        nnl_dataset ds = {0};
        cli_data_for_model(m);
        if (cli_load_data(cmd, data, NNL_SPLIT_TEST, &ds)) goto done;
        if (cli_match_classes(cmd, m, &ds, "test")) { nnl_dataset_free(&ds); goto done; }
        if (ds.c != mc || ds.h != mh || ds.w != mw) {
            cli_fail(cmd, "the data set has %dx%dx%d images but the model takes %dx%dx%d", ds.c, ds.h, ds.w, mc, mh, mw);
            nnl_dataset_free(&ds);
            goto done;
        }
        int64_t n = limit < ds.n ? limit : ds.n;
        probs = malloc((size_t)n * k * sizeof(float));
        if (!probs) { cli_fail(cmd, "out of memory"); nnl_dataset_free(&ds); goto done; }
        if ((st = nnl_model_predict_hooked(m, ds.pixels, n, h, 0, probs, NULL))) {
            cli_lib_fail(cmd, st);
            nnl_dataset_free(&ds);
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            char what[32];
            snprintf(what, sizeof what, "test[%lld]", (long long)i);
            emit(m, what, probs + (size_t)i * k, k, (int)top, ds.labels[i], arr);
        }
        nnl_dataset_free(&ds);
    } else {
        probs = malloc((size_t)k * sizeof(float));
        if (!probs) { cli_fail(cmd, "out of memory"); goto done; }
        for (int i = optind; i < argc; i++) {
            uint8_t *px;
            int ic, ih, iw;
            if ((st = nnl_image_load(argv[i], &px, &ic, &ih, &iw))) { cli_lib_fail(cmd, st); goto done; }
            if (ih != mh || iw != mw) {
                cli_fail(cmd, "%s: image is %dx%d but the model takes %dx%d", argv[i], iw, ih, mw, mh);
                free(px);
                goto done;
            }
            if (fit_channels(&px, ic, ih, iw, mc)) {
                cli_fail(cmd, "%s: cannot convert %d channels to the model's %d", argv[i], ic, mc);
                free(px);
                goto done;
            }
            /* Image files count as images 0, 1, ... of a data set, as for `apply`. */
            st = nnl_model_predict_hooked(m, px, 1, h, i - optind, probs, NULL);
            free(px);
            if (st) { cli_lib_fail(cmd, st); goto done; }
            emit(m, argv[i], probs, k, (int)top, -1, arr);
        }
    }
    if (arr) {
        json_t *doc = arr;
        arr = NULL;
        if (cli_json_emit(cmd, doc, 0, NULL)) goto done;
    }
    rc = 0;
done:
    json_decref(arr);
    free(probs);
    nnl_model_free(m);
    cli_locks_free(&L);
    free(lo);
    return rc;
}

const nnl_command nnl_cmd_predict = {"predict", "labels and top-k probabilities for images", run, usage};
