/* nnlock apply (and its old name, stamp): apply the keys of input locks (a certificate's
 * stamp, a key-driven transform) to image files or to a whole data set, exactly as eval and
 * predict give them to a model. */
#include "figures.h"
#include "locks.h"
#include "nn/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock apply --key KEY [--key KEY...] IN OUT.png\n"
        "       nnlock apply --key KEY --data PATH --out DIR [--split test|train] [--limit N]\n"
        "                    [--figures DIR --model MODEL]\n"
        "       (nnlock stamp: the same command under its old name)\n\n"
        "Applies the key of an input lock (stamps the certificate, transforms block by block)\n"
        "to an image (PNG, JPEG, PPM/PGM in; PNG out), or to every image of a data set, written\n"
        "as DIR/<split>/<class>/<index>.png: an image-folder data set that --data DIR reads back\n"
        "with the same labels (class folders whose names would not sort in label order get the\n"
        "label as a zero-padded prefix, e.g. 0_T-shirt_top). Apply to both splits into one DIR to\n"
        "train on them. Image i of a data set (or the i-th image file, counting from --seed) gets\n"
        "exactly what eval and predict give the model for it. The outputs show the key: they are\n"
        "written with mode 0600. An ffx transform's values are not 8-bit: its pictures are rounded.\n\n"
        "  -k, --key FILE     key of an input lock (several: applied in the order given)\n"
        "      --lock NAME    the lock of the --key after it (the key file tells, otherwise)\n"
        "  -d, --data PATH    data set to apply the key to\n"
        "  -o, --out DIR      output directory for --data\n"
        "      --split NAME   test or train (default test)\n"
        "      --limit N      only the first N images (default all)\n"
        "      --seed N       the index the first image counts as (default 0); random certificate\n"
        "                     placements depend on it\n"
        "      --figures DIR  with --data and --model: a picture of plain and keyed test images\n"
        "                     with the model's predictions (examples.png)\n"
        "      --model MODEL  the locked model, for --figures\n");
}

/* The image as the model gets it, as 8-bit pixels: the hooks' sample, then their float stage
 * (if any) rounded. index is the image's place in its data set. */
static void keyed(const nnl_hooks *h, uint8_t *img, int c, int hh, int w, uint64_t index, float *x) {
    float soft[NNL_MAX_CLASSES];
    if (h->sample) h->sample(h->user, img, c, hh, w, (int64_t)index, 0, nnl_mix64(NNL_EVAL_HOOK_SEED ^ index), soft);
    if (h->to_float) {
        size_t n = (size_t)c * hh * w;
        h->to_float(h->user, img, c, hh, w, (int64_t)index, x);
        for (size_t j = 0; j < n; j++) img[j] = (uint8_t)lrintf(x[j] < 0 ? 0 : x[j] > 1 ? 255 : 255 * x[j]);
    }
}

static int apply_file(const char *cmd, cli_locks *L, const nnl_hooks *h, const char *in, const char *out, uint64_t index) {
    uint8_t *px;
    int c, hh, w, st;
    if ((st = nnl_image_load(in, &px, &c, &hh, &w))) return cli_lib_fail(cmd, st);
    /* The keys' own check names the problem (channels, size, block size). */
    if (cli_locks_fit_shape(L, cmd, c, hh, w)) { free(px); return 1; }
    float *x = malloc((size_t)c * hh * w * sizeof *x);
    if (!x) { free(px); return cli_fail(cmd, "out of memory"); }
    keyed(h, px, c, hh, w, index, x);
    st = nnl_image_save_png(out, px, c, hh, w, NNL_WRITE_SECRET);
    free(x);
    free(px);
    return st ? cli_lib_fail(cmd, st) : 0;
}

/* An image folder's labels are its class folders in strcmp order (src/data/imagefolder.c),
 * so the folders must sort in label order or the stamped set would come back relabelled
 * (Fashion-MNIST's names do not; GTSRB's "10" sorts before "2"). A '/' in a name (Fashion-
 * MNIST's "T-shirt/top") would make a subfolder, and a leading '.' a hidden folder. */
static void class_dirs(const nnl_dataset *ds, char (*names)[128]) {
    int sorted = ds->class_names != NULL, width = snprintf(NULL, 0, "%d", ds->nclass - 1);
    for (int j = 0; j < ds->nclass; j++) {
        const char *n = ds->class_names ? ds->class_names[j] : "";
        snprintf(names[j], sizeof names[j], "%s", n);
        for (char *p = names[j]; *p; p++)
            if (*p == '/' || (p == names[j] && *p == '.')) *p = '_';
        if (!names[j][0] || (j > 0 && strcmp(names[j - 1], names[j]) >= 0)) sorted = 0;
    }
    if (sorted) return;
    for (int j = 0; j < ds->nclass; j++) {
        char clean[128];
        snprintf(clean, sizeof clean, "%s", names[j]);
        char idx[16];
        snprintf(idx, sizeof idx, "%d", j);
        /* names that are just the label ("0".."42") become the padded label alone */
        if (!clean[0] || !strcmp(clean, idx)) snprintf(names[j], sizeof names[j], "%0*d", width, j);
        else snprintf(names[j], sizeof names[j], "%0*d_%.100s", width, j, clean);
    }
}

static int apply_data(const char *cmd, cli_locks *L, const nnl_hooks *h, const char *data, int split, const char *dir,
                      long limit, uint64_t first, const char *figures, const char *model_path) {
    nnl_dataset ds = {0};
    nnl_model *m = NULL;
    float *x = NULL;
    int rc = 1;
    char path[4096 + 256], (*names)[128] = NULL; /* root (< 3936) + class + file name */
    if (model_path) {
        cli_weights_opts wo = {0};
        if (cli_locks_open(cmd, model_path, &wo, L, &m)) return 1;
        cli_data_for_model(m);
    }
    if (cli_load_data(cmd, data, split, &ds)) goto done;
    if (m && cli_match_classes(cmd, m, &ds, split == NNL_SPLIT_TRAIN ? "training" : "test")) goto done;
    if (cli_locks_fit_shape(L, cmd, ds.c, ds.h, ds.w)) goto done;
    /* DIR/<split>/ is the layout the image-folder loader reads (src/data/dataset.c) */
    char root[4096];
    if (snprintf(root, sizeof root, "%s/%s", dir, split == NNL_SPLIT_TRAIN ? "train" : "test") >= (int)sizeof root - 160) {
        cli_fail(cmd, "output directory name too long: %s", dir);
        goto done;
    }
    if (cli_mkdir(cmd, dir)) goto done;
    if (cli_mkdir(cmd, root)) goto done;
    if (!(names = malloc((size_t)ds.nclass * sizeof *names))) { cli_fail(cmd, "out of memory"); goto done; }
    class_dirs(&ds, names);
    for (int j = 0; j < ds.nclass; j++) {
        snprintf(path, sizeof path, "%s/%s", root, names[j]);
        if (cli_mkdir(cmd, path)) goto done;
    }
    if (figures && m && first == 0 && cli_figures(cmd, figures, m, &ds, L)) goto done;
    int64_t n = limit > 0 && limit < ds.n ? limit : ds.n;
    size_t isz = (size_t)ds.c * ds.h * ds.w;
    if (!(x = malloc(isz * sizeof *x))) { cli_fail(cmd, "out of memory"); goto done; }
    for (int64_t i = 0; i < n; i++) {
        uint8_t *img = ds.pixels + (size_t)i * isz;
        keyed(h, img, ds.c, ds.h, ds.w, first + (uint64_t)i, x);
        int y = ds.labels[i];
        snprintf(path, sizeof path, "%s/%s/%06lld.png", root, names[y], (long long)i);
        int st = nnl_image_save_png(path, img, ds.c, ds.h, ds.w, NNL_WRITE_SECRET);
        if (st) { cli_lib_fail(cmd, st); goto done; }
    }
    printf("applied the key%s to %lld images into %s (read back with --data %s)\n", L->n > 1 ? "s" : "", (long long)n, root,
           dir);
    if (figures && m) printf("figures written to %s/\n", figures);
    rc = 0;
done:
    free(x);
    free(names);
    nnl_dataset_free(&ds);
    nnl_model_free(m);
    return rc;
}

static int run_named(int argc, char **argv, const char *cmd) {
    static const struct option base[] = {{"data", 1, 0, 'd'}, {"out", 1, 0, 'o'}, {"split", 1, 0, 1},
                                         {"limit", 1, 0, 2}, {"seed", 1, 0, 3}, {"figures", 1, 0, 4},
                                         {"model", 1, 0, 5}, {0, 0, 0, 0}};
    cli_locks L;
    struct option *lo = cli_locks_options(&L, base, 500, 0);
    if (!lo) return cli_fail(cmd, "out of memory");
    const char *data = NULL, *out = NULL, *figures = NULL, *model = NULL;
    long limit = 0;
    int split = NNL_SPLIT_TEST, c, r, rc = 2;
    uint64_t first = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:d:o:", lo, NULL)) != -1) {
        switch (c) {
        case 'k': cli_locks_option(&L, cmd, L.code + 1); break; /* -k is --key */
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 1:
            if (!strcmp(optarg, "test")) split = NNL_SPLIT_TEST;
            else if (!strcmp(optarg, "train")) split = NNL_SPLIT_TRAIN;
            else { cli_fail(cmd, "--split must be test or train, got '%s'", optarg); goto done; }
            break;
        case 2: if (cli_int(cmd, "--limit", optarg, 1, 1000000000, &limit)) goto done; break;
        case 3: if (cli_u64(cmd, "--seed", optarg, &first)) goto done; break;
        case 4: figures = optarg; break;
        case 5: model = optarg; break;
        default:
            if ((r = cli_locks_option(&L, cmd, c)) == 1) break;
            if (r != 2) rc = cli_bad_option(cmd, argc, argv);
            goto done;
        }
    }
    if (!L.n) { cli_fail(cmd, "no key given (--key FILE)"); goto done; }
    if (figures && (!data || !model)) { cli_fail(cmd, "--figures needs --data and --model (for the predictions)"); goto done; }
    if (model && !figures) { cli_fail(cmd, "--model is for --figures"); goto done; }
    rc = 1;
    if (figures && cli_check_out(cmd, figures, NNL_WRITE_DIR)) goto done;
    if ((r = cli_locks_keys(&L, cmd, 0, 0, 0, 0))) { rc = r; goto done; }
    int inputs[CLI_MAX_LOCKS];
    if (cli_locks_inputs(&L, inputs) != L.n) {
        cli_fail(cmd, "%s is a weight key: it locks a model file (lock-weights), not images", L.l[cli_locks_weights(&L)].key.name);
        goto done;
    }
    nnl_hooks h;
    if (cli_locks_hooks(&L, cmd, ~0u, &h)) goto done;
    if (data) {
        if (!out) { cli_fail(cmd, "--data needs --out DIR"); rc = 2; }
        else if (optind < argc) { cli_fail(cmd, "give either image files or --data, not both"); rc = 2; }
        else rc = apply_data(cmd, &L, &h, data, split, out, limit, first, figures, model);
    } else if (argc - optind != 2) {
        cli_fail(cmd, "expected IN.png OUT.png (or --data PATH --out DIR)");
        rc = 2;
    } else {
        rc = apply_file(cmd, &L, &h, argv[optind], argv[optind + 1], first);
    }
done:
    cli_locks_free(&L);
    free(lo);
    return rc;
}

static int run_apply(int argc, char **argv) { return run_named(argc, argv, "apply"); }
static int run_stamp(int argc, char **argv) { return run_named(argc, argv, "stamp"); }

const nnl_command nnl_cmd_apply = {"apply", "apply an input lock's key to images or a data set", run_apply, usage};
const nnl_command nnl_cmd_stamp = {"stamp", "the old name of apply (stamp a certificate)", run_stamp, usage};
