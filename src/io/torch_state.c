/* PyTorch state_dicts in the safetensors format: a model's tensors under the names of the
 * matching PyTorch module (tensor_list.c), read into an nnlock model and written back. The
 * layouts agree without any transposition: convolution weights (out, in, k, k), linear weights
 * (out, in), activations channel-major, flatten in C, H, W order. */
#include "safetensors.h"
#include "tensor_list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void shape_str(const nnl_st_tensor *t, char *buf, size_t n) {
    size_t pos = 0;
    buf[0] = 0;
    if (t->ndim == 0) { snprintf(buf, n, "a scalar"); return; }
    for (int d = 0; d < t->ndim && pos < n; d++) {
        int k = snprintf(buf + pos, n - pos, "%s%lld", d ? "x" : "", (long long)t->shape[d]);
        if (k > 0) pos += (size_t)k;
    }
}

static int ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

/* The class count the file's last layer gives, from the name that layer's weight has in a model
 * of this architecture for 2 classes. */
static int file_classes(const char *arch, int c, int h, int w, const nnl_st_file *f, const char *path, int *nclass) {
    nnl_model *m;
    int st = nnl_model_create(&m, arch, c, h, w, 2);
    if (st) return st;
    nnl_tensor_list tl;
    if ((st = nnl_tensor_list_make(m, 1, &tl))) { nnl_model_free(m); return st; }
    int last = -1;
    for (int i = 0; i < tl.n; i++)
        if (ends_with(tl.t[i].name, ".weight") && tl.t[i].ndim == 2) last = i;
    if (last < 0) st = nnl_fail(NNL_ERR_SHAPE, "architecture '%s' does not end with a linear layer", arch);
    const nnl_st_tensor *t = last >= 0 ? nnl_st_find(f, tl.t[last].name) : NULL;
    if (!st && (!t || t->ndim != 2 || t->i64))
        st = nnl_fail(NNL_ERR_FORMAT, "%s: no 2-D tensor '%s' (the last layer of '%s'), which gives the classes", path,
                      tl.t[last].name, arch);
    if (!st && (t->shape[0] < 2 || t->shape[0] > NNL_MAX_CLASSES))
        st = nnl_fail(NNL_ERR_FORMAT, "%s: '%s' has %lld outputs: 2 to %d classes", path, t->name, (long long)t->shape[0],
                      NNL_MAX_CLASSES);
    if (!st) *nclass = (int)t->shape[0];
    nnl_tensor_list_free(&tl);
    nnl_model_free(m);
    return st;
}

int nnl_model_import_torch(nnl_model **out, const char *arch, int c, int h, int w, const char *path) {
    *out = NULL;
    nnl_st_file f;
    int st = nnl_st_read(path, &f), nclass = 0;
    if (st) return st;
    nnl_model *m = NULL;
    nnl_tensor_list tl = {0};
    char *used = calloc((size_t)(f.ntensors ? f.ntensors : 1), 1);
    if (!used) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = file_classes(arch, c, h, w, &f, path, &nclass))) goto done;
    if ((st = nnl_model_create(&m, arch, c, h, w, nclass)) || (st = nnl_model_init(m, 1))) goto done;
    if ((st = nnl_tensor_list_make(m, 1, &tl))) goto done;
    for (int i = 0; i < tl.n; i++) {
        const nnl_st_tensor *want = &tl.t[i], *got = nnl_st_find(&f, want->name);
        char a[96], b[96];
        if (!got) { st = nnl_fail(NNL_ERR_FORMAT, "%s: no tensor '%s' (architecture '%s' needs it)", path, want->name, arch); goto done; }
        used[got - f.tensors] = 1;
        int same = !got->i64 && got->ndim == want->ndim;
        for (int d = 0; same && d < want->ndim; d++) same = got->shape[d] == want->shape[d];
        if (!same) {
            shape_str(got, a, sizeof a);
            shape_str(want, b, sizeof b);
            st = nnl_fail(NNL_ERR_SHAPE, "%s: tensor '%s' is %s%s, architecture '%s' needs %s (float32)", path, want->name,
                          got->i64 ? "an int64 " : "", a, arch, b);
            goto done;
        }
        memcpy((float *)want->data, got->data, want->count * sizeof(float));
    }
    /* batch-norm's step counter is not used; anything else must belong to the architecture */
    for (int i = 0; i < f.ntensors; i++)
        if (!used[i] && !ends_with(f.tensors[i].name, ".num_batches_tracked")) {
            st = nnl_fail(NNL_ERR_FORMAT, "%s: tensor '%s' is not part of architecture '%s'", path, f.tensors[i].name, arch);
            goto done;
        }
    *out = m;
    m = NULL;
done:
    nnl_tensor_list_free(&tl);
    nnl_model_free(m);
    free(used);
    nnl_st_free(&f);
    return st;
}

int nnl_model_export_torch(const nnl_model *cm, const char *path) {
    nnl_model *m = (nnl_model *)cm; /* only read */
    nnl_tensor_list tl;
    int st = nnl_tensor_list_make(m, 1, &tl);
    if (st) return st;
    /* state_dict order, with each batch-norm's num_batches_tracked after its running_var, so
     * that load_state_dict(strict=True) finds every key */
    nnl_st_tensor *t = calloc((size_t)tl.n * 2 + 1, sizeof *t);
    static const int64_t zero = 0;
    int n = 0;
    if (!t) { nnl_tensor_list_free(&tl); return nnl_fail(NNL_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < tl.n; i++) {
        t[n++] = tl.t[i];
        if (ends_with(tl.t[i].name, ".running_var")) {
            nnl_st_tensor *c = &t[n++];
            memset(c, 0, sizeof *c);
            size_t len = strlen(tl.t[i].name) - strlen("running_var");
            snprintf(c->name, sizeof c->name, "%.*snum_batches_tracked", (int)len, tl.t[i].name);
            c->ndim = 0;
            c->count = 1;
            c->i64 = 1;
            c->data = (const float *)(const void *)&zero;
        }
    }
    const char *keys[] = {"format"}, *vals[] = {"pt"};
    st = nnl_st_write(path, t, n, keys, vals, 1);
    free(t);
    nnl_tensor_list_free(&tl);
    return st;
}
