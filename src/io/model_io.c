/* The model file: safetensors, with nnlock's structure in __metadata__.
 *
 * Reserved metadata keys: format ("nnlock"), format_version ("1"), arch, spec,
 * input ("C,H,W"), nclass, norm_mean, norm_std ("m0,m1,..." as %.9g, exact for
 * float32), class_names (a JSON array). Every other key is free-form metadata
 * (train.*, lock.*), never a secret. Tensors are named as in PyTorch's state_dict:
 * layers.<i>.weight, .bias, .running_mean, .running_var. */
#include "../nn/model.h"
#include "safetensors.h"
#include "tensor_list.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_NAME "nnlock"
#define FORMAT_VERSION "1"

static const char *const reserved[] = {"format", "format_version", "arch", "spec", "input",
                                       "nclass", "norm_mean", "norm_std", "class_names"};

static int is_reserved(const char *k) {
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (!strcmp(k, reserved[i])) return 1;
    return 0;
}

static void join_floats(char *buf, size_t size, const float *v, int n) {
    size_t pos = 0;
    buf[0] = 0;
    for (int i = 0; i < n && pos < size; i++) {
        int k = snprintf(buf + pos, size - pos, "%s%.9g", i ? "," : "", (double)v[i]);
        if (k > 0) pos += (size_t)k;
    }
}

int nnl_model_save(const nnl_model *cm, const char *path) {
    nnl_model *m = (nnl_model *)cm; /* tensors are only read */
    nnl_tensor_list tl;
    int st = nnl_tensor_list_make(m, 0, &tl);
    if (st) return st;
    const char *keys[NNL_MAX_META + 16], *vals[NNL_MAX_META + 16];
    char input[64], nclass[16], mean[160], stdv[160];
    char *names = NULL;
    int nm = 0;
    snprintf(input, sizeof input, "%d,%d,%d", m->input.c, m->input.h, m->input.w);
    snprintf(nclass, sizeof nclass, "%d", m->nclass);
    join_floats(mean, sizeof mean, m->mean, m->input.c);
    join_floats(stdv, sizeof stdv, m->std, m->input.c);
    keys[nm] = "format"; vals[nm++] = FORMAT_NAME;
    keys[nm] = "format_version"; vals[nm++] = FORMAT_VERSION;
    keys[nm] = "arch"; vals[nm++] = m->arch;
    keys[nm] = "spec"; vals[nm++] = m->spec;
    keys[nm] = "input"; vals[nm++] = input;
    keys[nm] = "nclass"; vals[nm++] = nclass;
    keys[nm] = "norm_mean"; vals[nm++] = mean;
    keys[nm] = "norm_std"; vals[nm++] = stdv;
    if (m->class_names) {
        json_t *a = json_array();
        for (int i = 0; a && i < m->nclass; i++) json_array_append_new(a, json_string(m->class_names[i]));
        names = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!names) { nnl_tensor_list_free(&tl); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
        keys[nm] = "class_names"; vals[nm++] = names;
    }
    for (int i = 0; i < m->nmeta; i++) {
        if (is_reserved(m->meta_keys[i])) continue;
        keys[nm] = m->meta_keys[i]; vals[nm++] = m->meta_vals[i];
    }
    st = nnl_st_write(path, tl.t, tl.n, keys, vals, nm);
    free(names);
    nnl_tensor_list_free(&tl);
    return st;
}

static int parse_ints(const char *text, int *v, int n, const char *path, const char *key) {
    const char *s = text;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < 1 || x > 1000000 || (i < n - 1 ? *end != ',' : *end != 0))
            return nnl_fail(NNL_ERR_FORMAT, "%s: metadata '%s' = '%s' must be %d comma-separated positive integer(s)", path, key, text, n);
        v[i] = (int)x;
        s = end + 1;
    }
    return NNL_OK;
}

static int parse_floats(const char *text, float *v, int n, const char *path, const char *key) {
    const char *s = text;
    for (int i = 0; i < n; i++) {
        char *end;
        v[i] = strtof(s, &end);
        if (end == s || (i < n - 1 ? *end != ',' : *end != 0))
            return nnl_fail(NNL_ERR_FORMAT, "%s: metadata '%s' = '%s' must be %d comma-separated number(s)", path, key, text, n);
        s = end + 1;
    }
    return NNL_OK;
}

static int need(const nnl_st_file *f, const char *key, const char *path, const char **out) {
    *out = nnl_st_meta(f, key);
    if (!*out) return nnl_fail(NNL_ERR_FORMAT, "%s: not an nnlock model (metadata '%s' is missing)", path, key);
    return NNL_OK;
}

static int load_class_names(nnl_model *m, const char *s, const char *path) {
    json_error_t err;
    json_t *a = json_loads(s, 0, &err);
    int st = NNL_OK;
    if (!json_is_array(a) || json_array_size(a) != (size_t)m->nclass) {
        st = nnl_fail(NNL_ERR_FORMAT, "%s: metadata 'class_names' is not a JSON array of %d strings", path, m->nclass);
    } else {
        char *names[NNL_MAX_CLASSES];
        for (int i = 0; i < m->nclass; i++) {
            json_t *e = json_array_get(a, (size_t)i);
            if (!json_is_string(e)) {
                st = nnl_fail(NNL_ERR_FORMAT, "%s: class name %d is not a string", path, i);
                break;
            }
            names[i] = (char *)json_string_value(e);
        }
        if (!st) st = nnl_model_set_class_names(m, names, m->nclass);
    }
    json_decref(a);
    return st;
}

static int from_file(nnl_model **out, const nnl_st_file *f, const char *path) {
    const char *fmt, *ver, *arch, *spec, *input, *ncl, *mean_s, *std_s;
    int st;
    if ((st = need(f, "format", path, &fmt))) return st;
    if (strcmp(fmt, FORMAT_NAME)) return nnl_fail(NNL_ERR_FORMAT, "%s: not an nnlock model (format '%s')", path, fmt);
    if ((st = need(f, "format_version", path, &ver))) return st;
    if (strcmp(ver, FORMAT_VERSION))
        return nnl_fail(NNL_ERR_UNSUPPORTED, "%s: model format version %s is not supported (this nnlock reads version %s)",
                        path, ver, FORMAT_VERSION);
    if ((st = need(f, "arch", path, &arch)) || (st = need(f, "spec", path, &spec)) ||
        (st = need(f, "input", path, &input)) || (st = need(f, "nclass", path, &ncl)) ||
        (st = need(f, "norm_mean", path, &mean_s)) || (st = need(f, "norm_std", path, &std_s)))
        return st;
    int shape[3] = {0, 0, 0}, nclass = 0;
    if ((st = parse_ints(input, shape, 3, path, "input")) || (st = parse_ints(ncl, &nclass, 1, path, "nclass"))) return st;
    /* The architecture is checked against the floats the file holds before its buffers
     * are allocated: a few kilobytes of header must not cost gigabytes. */
    size_t held = 0;
    for (int i = 0; i < f->ntensors; i++) held += f->tensors[i].count;
    nnl_model *m;
    if ((st = nnl_model_create_within(&m, spec, shape[0], shape[1], shape[2], nclass, held))) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nnl_errmsg());
        return nnl_fail(NNL_ERR_FORMAT, "%s: the stored architecture is invalid: %s", path, msg);
    }
    char *a = strdup(arch);
    if (!a) { nnl_model_free(m); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    free(m->arch);
    m->arch = a;
    float mean[NNL_MAX_CHANNELS], stdv[NNL_MAX_CHANNELS];
    if ((st = parse_floats(mean_s, mean, m->input.c, path, "norm_mean")) ||
        (st = parse_floats(std_s, stdv, m->input.c, path, "norm_std")))
        goto fail;
    if ((st = nnl_model_set_norm(m, mean, stdv))) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nnl_errmsg());
        st = nnl_fail(NNL_ERR_FORMAT, "%s: %s", path, msg);
        goto fail;
    }
    const char *cn = nnl_st_meta(f, "class_names");
    if (cn && (st = load_class_names(m, cn, path))) goto fail;
    nnl_tensor_list tl;
    if ((st = nnl_tensor_list_make(m, 0, &tl))) goto fail;
    if (tl.n != f->ntensors) {
        st = nnl_fail(NNL_ERR_FORMAT, "%s: the file holds %d tensors but the architecture needs %d", path, f->ntensors, tl.n);
        nnl_tensor_list_free(&tl);
        goto fail;
    }
    for (int i = 0; i < tl.n && !st; i++) {
        const nnl_st_tensor *want = &tl.t[i], *got = nnl_st_find(f, want->name);
        if (!got) { st = nnl_fail(NNL_ERR_FORMAT, "%s: tensor '%s' is missing", path, want->name); break; }
        if (got->i64) { st = nnl_fail(NNL_ERR_FORMAT, "%s: tensor '%s' is I64; a model file holds F32", path, want->name); break; }
        int same = got->ndim == want->ndim;
        for (int d = 0; same && d < want->ndim; d++) same = got->shape[d] == want->shape[d];
        if (!same) {
            st = nnl_fail(NNL_ERR_FORMAT, "%s: tensor '%s' has the wrong shape for the stored architecture", path, want->name);
            break;
        }
        memcpy((float *)want->data, got->data, want->count * sizeof(float));
    }
    nnl_tensor_list_free(&tl);
    if (st) goto fail;
    for (int i = 0; i < f->nmeta; i++) {
        if (is_reserved(f->keys[i])) continue;
        if ((st = nnl_model_meta_set(m, f->keys[i], f->values[i]))) goto fail;
    }
    *out = m;
    return NNL_OK;
fail:
    nnl_model_free(m);
    return st;
}

int nnl_model_from_memory(nnl_model **out, const uint8_t *data, size_t size) {
    *out = NULL;
    nnl_st_file f;
    int st = nnl_st_parse(data, size, &f);
    if (st) return st;
    st = from_file(out, &f, "model");
    nnl_st_free(&f);
    return st;
}

int nnl_model_load(nnl_model **out, const char *path) {
    *out = NULL;
    nnl_st_file f;
    int st = nnl_st_read(path, &f);
    if (st) return st;
    st = from_file(out, &f, path);
    nnl_st_free(&f);
    return st;
}
