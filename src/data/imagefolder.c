/* The image-folder layout: dir/<class>/<image>, classes and images in strcmp order. */
#include "core/core.h"
#include "data/formats.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLDER_MAX_IMAGES 100000000

typedef struct strlist {
    char **s;
    int n, cap;
} strlist;

static void strlist_free(strlist *l) {
    nnl_free_names(l->s, l->n);
    memset(l, 0, sizeof *l);
}

static int strlist_push(strlist *l, char *s) {
    if (!s) return -1;
    if (l->n == l->cap) {
        int ncap = l->cap ? l->cap * 2 : 64;
        char **ns = realloc(l->s, (size_t)ncap * sizeof *ns);
        if (!ns) { free(s); return -1; }
        l->s = ns;
        l->cap = ncap;
    }
    l->s[l->n++] = s;
    return 0;
}


static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Non-hidden subdirectories (want_dirs) or regular files of dir, by name, sorted. stat()
 * rather than d_type, which some file systems leave unknown, and which hides symlinks. */
static int list_dir(const char *dir, int want_dirs, strlist *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return nnl_fail(NNL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *e;
    int st = NNL_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *full = nnl_path_join(dir, e->d_name);
        if (!full) { st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", dir); break; }
        int keep = want_dirs ? nnl_is_dir(full) : nnl_is_file(full);
        free(full);
        if (!keep) continue;
        if (out->n >= FOLDER_MAX_IMAGES) { st = nnl_fail(NNL_ERR_FORMAT, "%s: too many entries", dir); break; }
        if (strlist_push(out, strdup(e->d_name))) { st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", dir); break; }
    }
    closedir(d);
    if (st) { strlist_free(out); return st; }
    if (out->n > 1) qsort(out->s, (size_t)out->n, sizeof *out->s, cmp_str);
    return NNL_OK;
}

/* Every image path, in order, with its label. */
static int collect(const char *dir, const strlist *classes, strlist *paths, int32_t **labels) {
    memset(paths, 0, sizeof *paths);
    *labels = NULL;
    size_t lcap = 0;
    for (int k = 0; k < classes->n; k++) {
        char *cdir = nnl_path_join(dir, classes->s[k]);
        strlist files = {0};
        int st = cdir ? list_dir(cdir, 0, &files) : nnl_fail(NNL_ERR_NOMEM, "out of memory");
        for (int i = 0; !st && i < files.n; i++) {
            if ((size_t)paths->n == lcap) {
                lcap = lcap ? lcap * 2 : 1024;
                int32_t *nl = realloc(*labels, lcap * sizeof *nl);
                if (!nl) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); break; }
                *labels = nl;
            }
            if (paths->n >= FOLDER_MAX_IMAGES) st = nnl_fail(NNL_ERR_FORMAT, "%s: too many images", dir);
            else if (strlist_push(paths, nnl_path_join(cdir, files.s[i]))) st = nnl_fail(NNL_ERR_NOMEM, "out of memory");
            else (*labels)[paths->n - 1] = k;
        }
        if (cdir) strlist_free(&files);
        free(cdir);
        if (st) {
            strlist_free(paths);
            free(*labels);
            *labels = NULL;
            return st;
        }
    }
    return NNL_OK;
}

/* Decodes images 1..n-1 in parallel into their slots. Workers may fail in any order, so the
 * failure kept is the one with the lowest index: the same message on every run. */
static int decode_rest(const strlist *paths, uint8_t *pixels, int c0, int h0, int w0) {
    int64_t n = paths->n;
    nnl_first_error fe;
    nnl_first_error_init(&fe, n);
    size_t per = (size_t)c0 * (size_t)h0 * (size_t)w0;
#pragma omp parallel for schedule(dynamic, 16) num_threads(nnl_get_threads())
    for (int64_t i = 1; i < n; i++) {
        if (nnl_first_error_skip(&fe, i)) continue; /* a lower image already failed */
        uint8_t *px = NULL;
        int c, h, w;
        int st = nnl_image_load(paths->s[i], &px, &c, &h, &w);
        if (!st && (c != c0 || h != h0 || w != w0))
            st = nnl_fail(NNL_ERR_SHAPE, "%s: image is %dx%d with %d channel(s) but the first image (%s) is %dx%d with %d",
                          paths->s[i], w, h, c, paths->s[0], w0, h0, c0);
        if (!st) memcpy(pixels + (size_t)i * per, px, per);
        free(px);
        if (st) nnl_first_error_record(&fe, i, st);
    }
    return nnl_first_error_status(&fe);
}

int nnl_imagefolder_load(nnl_dataset *ds, const char *dir) {
    memset(ds, 0, sizeof *ds);
    if (!dir) return nnl_fail(NNL_ERR_ARG, "nnl_imagefolder_load: NULL directory");
    strlist classes, paths = {0};
    int32_t *labels = NULL;
    uint8_t *first = NULL;
    int st = list_dir(dir, 1, &classes);
    if (st) return st;
    if (classes.n == 0) st = nnl_fail(NNL_ERR_FORMAT, "%s: no class subdirectories (expected %s/<class>/<image>)", dir, dir);
    else if (classes.n > NNL_MAX_CLASSES)
        st = nnl_fail(NNL_ERR_FORMAT, "%s: %d class subdirectories, at most %d supported", dir, classes.n, NNL_MAX_CLASSES);
    if (!st) st = collect(dir, &classes, &paths, &labels);
    if (!st && paths.n == 0) st = nnl_fail(NNL_ERR_FORMAT, "%s: no images in any of the %d class subdirectories", dir, classes.n);
    int c = 0, h = 0, w = 0;
    if (!st) st = nnl_image_load(paths.s[0], &first, &c, &h, &w);
    if (!st) {
        size_t per = (size_t)c * (size_t)h * (size_t)w;
        ds->pixels = nnl_alloc((size_t)paths.n * per);
        ds->labels = nnl_alloc((size_t)paths.n * sizeof *ds->labels);
        if (!ds->pixels || !ds->labels) st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory for %d images", dir, paths.n);
        else {
            memcpy(ds->pixels, first, per);
            memcpy(ds->labels, labels, (size_t)paths.n * sizeof *labels);
            st = decode_rest(&paths, ds->pixels, c, h, w);
        }
    }
    free(first);
    free(labels);
    if (!st) {
        ds->n = paths.n;
        ds->c = c;
        ds->h = h;
        ds->w = w;
        ds->nclass = classes.n;
        ds->class_names = classes.s; /* the list's strings become the class names */
        memset(&classes, 0, sizeof classes);
        snprintf(ds->source, sizeof ds->source, "imagefolder");
    } else {
        nnl_dataset_free(ds);
    }
    strlist_free(&paths);
    strlist_free(&classes);
    return st;
}
