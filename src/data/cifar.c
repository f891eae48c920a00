/* CIFAR-10 / CIFAR-100 binary version: fixed-size records, label byte(s) then R, G, B planes. */
#include "core/core.h"
#include "data/formats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CIFAR_PIXELS 3072
#define CIFAR_MAX_FILES 64
/* One batch file: the official ones are 30 MB (CIFAR-10) and 150 MB (CIFAR-100 train). */
#define CIFAR_MAX_FILE ((size_t)1 << 30)

static const char *const cifar10_names[10] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
};

static int set_cifar10_names(nnl_dataset *ds) {
    ds->class_names = calloc(10, sizeof *ds->class_names);
    if (!ds->class_names) return nnl_fail(NNL_ERR_NOMEM, "out of memory for class names");
    for (int k = 0; k < 10; k++)
        if (!(ds->class_names[k] = strdup(cifar10_names[k])))
            return nnl_fail(NNL_ERR_NOMEM, "out of memory for class names");
    return NNL_OK;
}

int nnl_cifar_parse(nnl_dataset *ds, const uint8_t *const *bufs, const size_t *sizes,
                    const char *const *names, int nbuf, int mode) {
    memset(ds, 0, sizeof *ds);
    if (mode != NNL_CIFAR10 && mode != NNL_CIFAR100_FINE && mode != NNL_CIFAR100_COARSE)
        return nnl_fail(NNL_ERR_ARG, "CIFAR: unknown mode %d (0 = CIFAR-10, 1 = CIFAR-100 fine, 2 = CIFAR-100 coarse)", mode);
    if (nbuf < 1 || nbuf > CIFAR_MAX_FILES)
        return nnl_fail(NNL_ERR_ARG, "CIFAR: %d files given, expected 1..%d", nbuf, CIFAR_MAX_FILES);
    size_t nlab = mode == NNL_CIFAR10 ? 1 : 2, rec = nlab + CIFAR_PIXELS;
    /* Which label byte of a record to use, and how many classes it ranges over. */
    size_t lab_at = mode == NNL_CIFAR100_FINE ? 1 : 0;
    int nclass = mode == NNL_CIFAR10 ? 10 : mode == NNL_CIFAR100_FINE ? 100 : 20;
    const char *kind = mode == NNL_CIFAR10 ? "CIFAR-10" : "CIFAR-100";
    const char *what = mode == NNL_CIFAR10 ? "label" : mode == NNL_CIFAR100_FINE ? "fine label" : "coarse label";

    size_t total = 0;
    for (int f = 0; f < nbuf; f++) {
        if (sizes[f] == 0 || sizes[f] % rec != 0)
            return nnl_fail(NNL_ERR_FORMAT, "%s: %zu bytes is not a whole number of %zu-byte %s records",
                            names[f], sizes[f], rec, kind);
        total += sizes[f] / rec;
    }
    if (total > (size_t)INT32_MAX)
        return nnl_fail(NNL_ERR_FORMAT, "%s: too many records (%zu)", names[0], total);
    for (int f = 0; f < nbuf; f++)
        for (size_t r = 0; r < sizes[f] / rec; r++) {
            int lab = bufs[f][r * rec + lab_at];
            if (lab >= nclass)
                return nnl_fail(NNL_ERR_FORMAT, "%s: record %zu has %s %d, expected 0..%d",
                                names[f], r, what, lab, nclass - 1);
        }

    ds->pixels = nnl_alloc(total * CIFAR_PIXELS);
    ds->labels = nnl_alloc(total * sizeof *ds->labels);
    if (!ds->pixels || !ds->labels) {
        nnl_dataset_free(ds);
        return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory for %zu images", names[0], total);
    }
    size_t i = 0;
    for (int f = 0; f < nbuf; f++)
        for (size_t r = 0; r < sizes[f] / rec; r++, i++) {
            const uint8_t *p = bufs[f] + r * rec;
            ds->labels[i] = p[lab_at];
            memcpy(ds->pixels + i * CIFAR_PIXELS, p + nlab, CIFAR_PIXELS);
        }
    ds->n = (int64_t)total;
    ds->c = 3;
    ds->h = ds->w = 32;
    ds->nclass = nclass;
    snprintf(ds->source, sizeof ds->source, "%s", mode == NNL_CIFAR10 ? "cifar10" : "cifar100");
    if (mode == NNL_CIFAR10) {
        int st = set_cifar10_names(ds);
        if (st) { nnl_dataset_free(ds); return st; }
    }
    return NNL_OK;
}

/* The names file that sits beside the first batch, as in the official archive. */
static int cifar100_names(nnl_dataset *ds, const char *first, int mode) {
    const char *slash = strrchr(first, '/');
    size_t dirlen = slash ? (size_t)(slash - first + 1) : 0;
    const char *base = mode == NNL_CIFAR100_FINE ? "fine_label_names.txt" : "coarse_label_names.txt";
    char *path = malloc(dirlen + strlen(base) + 1);
    if (!path) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    memcpy(path, first, dirlen);
    strcpy(path + dirlen, base);
    int st = nnl_read_class_names(path, ds->nclass, &ds->class_names);
    free(path);
    return st;
}

int nnl_cifar_load(nnl_dataset *ds, const char *const *files, int nfiles, int cifar100_fine) {
    memset(ds, 0, sizeof *ds);
    if (!files || nfiles < 1 || nfiles > CIFAR_MAX_FILES)
        return nnl_fail(NNL_ERR_ARG, "CIFAR: %d files given, expected 1..%d", nfiles, CIFAR_MAX_FILES);
    uint8_t *bufs[CIFAR_MAX_FILES] = {0};
    size_t sizes[CIFAR_MAX_FILES] = {0};
    int st = NNL_OK;
    for (int f = 0; f < nfiles && !st; f++)
        st = nnl_read_file(files[f], &bufs[f], &sizes[f], CIFAR_MAX_FILE, 0);
    if (!st)
        st = nnl_cifar_parse(ds, (const uint8_t *const *)bufs, sizes, files, nfiles, cifar100_fine);
    for (int f = 0; f < nfiles; f++) free(bufs[f]);
    if (!st && cifar100_fine != NNL_CIFAR10) {
        st = cifar100_names(ds, files[0], cifar100_fine);
        if (st) nnl_dataset_free(ds);
    }
    return st;
}
