/* A data set's classes against a model's: matching by name, and labels that cannot be
 * classes. Image folders number their classes per split by folder name, so a folder missing
 * from test/ would shift every later label; matching by name is what keeps them right. */
#include "core/core.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nnl_class_folder_name(const char *name, char *out, size_t size) {
    snprintf(out, size, "%s", name ? name : "");
    /* '/' would make a subfolder, a leading '.' a hidden one the loader skips. */
    for (char *p = out; *p; p++)
        if (*p == '/' || (p == out && *p == '.')) *p = '_';
}

/* A non-negative decimal integer and nothing else (leading zeros allowed): its value, else -1. */
static long as_index(const char *s, size_t len) {
    if (len == 0 || len > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* The class of names[0..n-1] that the data set's class `d` stands for, or -1. In order:
 * the same name; the name as a folder (nnl_class_folder_name); the folder name with the
 * label in front ("3_Dress", "03"), as `nnlock stamp` writes classes whose names would not
 * sort in label order; a bare number for classes named by their label ("00012" for "12"). */
static int find_class(const char *d, char *const *names, int n) {
    char folder[256];
    for (int j = 0; j < n; j++)
        if (names[j] && !strcmp(d, names[j])) return j;
    int hit = -1;
    for (int j = 0; j < n; j++) {
        nnl_class_folder_name(names[j], folder, sizeof folder);
        if (!strcmp(d, folder)) {
            if (hit >= 0) return -1; /* two classes look the same as folders: no guess */
            hit = j;
        }
    }
    if (hit >= 0) return hit;
    const char *us = strchr(d, '_');
    size_t numlen = us ? (size_t)(us - d) : strlen(d);
    long k = as_index(d, numlen);
    if (k < 0 || k >= n) return -1;
    const char *rest = us ? us + 1 : "";
    nnl_class_folder_name(names[k], folder, sizeof folder);
    if (!us && (!names[k] || !names[k][0] || as_index(names[k], strlen(names[k])) == k)) return (int)k;
    if (us && !strcmp(rest, folder)) return (int)k;
    return -1;
}

/* "a, b, c, ..." for a message. */
static void list_names(char *const *names, int n, char *buf, size_t size) {
    size_t pos = 0;
    buf[0] = 0;
    for (int j = 0; j < n && pos + 8 < size; j++) {
        int w = snprintf(buf + pos, size - pos, "%s'%s'", j ? ", " : "", names[j] ? names[j] : "");
        if (w < 0 || (size_t)w >= size - pos) { snprintf(buf + (pos < size - 5 ? pos : size - 5), 5, " ..."); return; }
        pos += (size_t)w;
    }
}

int nnl_dataset_match_classes(nnl_dataset *ds, char *const *names, int n, const char *what) {
    if (!ds || n < 1 || n > NNL_MAX_CLASSES) return nnl_fail(NNL_ERR_ARG, "nnl_dataset_match_classes: bad arguments");
    if (!ds->class_names) return NNL_OK; /* numbered classes: the label is the class */
    int64_t *count = calloc((size_t)ds->nclass, sizeof *count);
    int *map = malloc((size_t)ds->nclass * sizeof *map);
    char **copy = names ? calloc((size_t)n, sizeof *copy) : NULL;
    int st = NNL_OK;
    if (!count || !map || (names && !copy)) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] >= 0 && ds->labels[i] < ds->nclass) count[ds->labels[i]]++;
    for (int j = 0; j < ds->nclass; j++) {
        if (!names) {
            /* A model without class names: folders named by number are that class; any
             * other folder names leave the folder order as the only meaning there is. */
            long k = as_index(ds->class_names[j], strlen(ds->class_names[j]));
            if (k < 0 || k >= n) goto done;
            map[j] = (int)k;
            continue;
        }
        map[j] = find_class(ds->class_names[j], names, n);
        if (map[j] < 0 && count[j] > 0) {
            char list[400];
            list_names(names, n, list, sizeof list);
            st = nnl_fail(NNL_ERR_FORMAT, "the %s set's class '%s' (%lld images) is not one of the model's %d classes (%s)",
                          what, ds->class_names[j], (long long)count[j], n, list);
            goto done;
        }
    }
    for (int j = 0; j < ds->nclass; j++)
        for (int i = 0; i < j && map[j] >= 0; i++)
            if (map[i] == map[j]) {
                st = nnl_fail(NNL_ERR_FORMAT, "the %s set's classes '%s' and '%s' both stand for the model's class %d",
                              what, ds->class_names[i], ds->class_names[j], map[j]);
                goto done;
            }
    for (int j = 0; names && j < n; j++)
        if (!(copy[j] = strdup(names[j] ? names[j] : ""))) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    /* An unmatched class has no images, so no label maps to -1. */
    for (int64_t i = 0; i < ds->n; i++) ds->labels[i] = map[ds->labels[i]];
    for (int j = 0; j < ds->nclass; j++) free(ds->class_names[j]);
    free(ds->class_names);
    ds->class_names = copy; /* NULL when the model has none: the classes are numbered now */
    copy = NULL;
    ds->nclass = n;
done:
    if (copy)
        for (int j = 0; j < n; j++) free(copy[j]);
    free(copy);
    free(count);
    free(map);
    return st;
}

int nnl_dataset_check_labels(const nnl_dataset *ds, int nclass, const char *what, const char *whose) {
    for (int64_t i = 0; i < ds->n; i++) {
        int y = ds->labels[i];
        if (y >= 0 && y < nclass) continue;
        int64_t same = 0;
        for (int64_t j = i; j < ds->n; j++) same += ds->labels[j] == y;
        return nnl_fail(NNL_ERR_FORMAT, "the %s set's label %d (image %lld; %lld image%s) is not one of the %d classes of %s (0..%d)",
                        what, y, (long long)i, (long long)same, same == 1 ? "" : "s", nclass, whose ? whose : "the model",
                        nclass - 1);
    }
    return NNL_OK;
}

int nnl_dataset_check_classes(const nnl_dataset *ds, const char *what) {
    if (ds->nclass < 1) return nnl_fail(NNL_ERR_FORMAT, "the %s set has no classes", what);
    int64_t *count = calloc((size_t)ds->nclass, sizeof *count);
    if (!count) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    int top = -1;
    for (int64_t i = 0; i < ds->n; i++) {
        int y = ds->labels[i];
        if (y < 0 || y >= ds->nclass) {
            free(count);
            return nnl_fail(NNL_ERR_FORMAT, "the %s set's label %d (image %lld) is outside 0..%d", what, y, (long long)i,
                            ds->nclass - 1);
        }
        count[y]++;
        if (y > top) top = y;
    }
    int st = NNL_OK;
    /* A named class (a folder, a line of classes.txt) without images is refused wherever it
     * sorts. Numbered classes past the largest label may be empty (a small subset of a
     * 10-class set lacks the top ones); one below it means a stray label above it. */
    if (ds->class_names)
        for (int k = 0; k < ds->nclass && !st; k++)
            if (!count[k])
                st = nnl_fail(NNL_ERR_FORMAT, "the %s set's class %d ('%s') has no images (an empty class folder?); "
                              "every class needs training images", what, k, ds->class_names[k]);
    for (int k = 0; k < top && !st; k++) {
        if (count[k]) continue;
        int gap_end = k;
        while (gap_end < top && !count[gap_end]) gap_end++;
        int64_t first = -1, above = 0;
        for (int64_t i = 0; i < ds->n; i++)
            if (ds->labels[i] >= gap_end) { above++; if (first < 0) first = i; }
        if (k == 0)
            st = nnl_fail(NNL_ERR_FORMAT, "the %s set's labels start at %d (image %lld): classes 0..%d have no images; "
                          "labels count from 0", what, gap_end, (long long)first, gap_end - 1);
        else
            st = nnl_fail(NNL_ERR_FORMAT, "the %s set's labels run 0..%d and then %d (first at image %lld; %lld image%s "
                          "from label %d up): classes %d..%d have no images; is label %d a stray?",
                          what, k - 1, gap_end, (long long)first, (long long)above, above == 1 ? "" : "s", gap_end, k,
                          gap_end - 1, gap_end);
    }
    free(count);
    return st;
}
