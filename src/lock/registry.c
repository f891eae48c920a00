/* The registry of locks, the keys of any lock, lock options, and hook chains. */
#include "lock.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Every lock there is. A new lock adds one line here. */
static const nnl_lock_ops *const registry[] = {&nnl_lock_certificate, &nnl_lock_transform, &nnl_lock_gate, &nnl_lock_weights,
                                              NULL};

const nnl_lock_ops *const *nnl_lock_all(void) { return registry; }

const nnl_lock_ops *nnl_lock_find(const char *name) {
    for (int i = 0; name && registry[i]; i++)
        if (!strcmp(registry[i]->name, name)) return registry[i];
    return NULL;
}

const char *nnl_lock_names(void) {
    static char buf[256];
    if (!buf[0]) {
        size_t pos = 0;
        for (int i = 0; registry[i] && pos < sizeof buf; i++)
            pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s%s", i ? ", " : "", registry[i]->name);
    }
    return buf;
}

/* ---------------------------------------------------------------- options */

const char *nnl_lock_arg(const nnl_lock_args *a, const char *name) {
    for (int i = 0; a && i < a->n; i++)
        if (!strcmp(a->name[i], name)) return a->value[i];
    return NULL;
}

int nnl_lock_arg_int(const nnl_lock_args *a, const char *name, long lo, long hi, long def, long *out) {
    const char *s = nnl_lock_arg(a, name);
    if (!s) { *out = def; return NNL_OK; }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return nnl_fail(NNL_ERR_ARG, "--%s expects an integer from %ld to %ld, got '%s'", name, lo, hi, s);
    *out = v;
    return NNL_OK;
}

int nnl_lock_arg_u64(const nnl_lock_args *a, const char *name, uint64_t def, uint64_t *out) {
    const char *s = nnl_lock_arg(a, name);
    if (!s) { *out = def; return NNL_OK; }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || !(s[0] >= '0' && s[0] <= '9'))
        return nnl_fail(NNL_ERR_ARG, "--%s expects an integer from 0 to 18446744073709551615, got '%s'", name, s);
    *out = v;
    return NNL_OK;
}

int nnl_lock_arg_float(const nnl_lock_args *a, const char *name, double lo, double hi, double def, double *out) {
    const char *s = nnl_lock_arg(a, name);
    if (!s) { *out = def; return NNL_OK; }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi)
        return nnl_fail(NNL_ERR_ARG, "--%s expects a number from %g to %g, got '%s'", name, lo, hi, s);
    *out = v;
    return NNL_OK;
}

int nnl_lock_arg_choice(const nnl_lock_args *a, const char *name, const char *const *choices, int n, int def, int *out) {
    const char *s = nnl_lock_arg(a, name);
    if (!s) { *out = def; return NNL_OK; }
    for (int i = 0; i < n; i++)
        if (!strcmp(s, choices[i])) { *out = i; return NNL_OK; }
    char list[256];
    size_t pos = 0;
    for (int i = 0; i < n && pos < sizeof list; i++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ", choices[i]);
    return nnl_fail(NNL_ERR_ARG, "--%s must be %s, got '%s'", name, list, s);
}

/* ---------------------------------------------------------------- keys */

/* The largest key file of any lock (a certificate for a 4096x4096 image is the largest). */
#define KEY_MAX_FILE ((size_t)512 << 20)

int nnl_lock_key_load(nnl_lock_key *k, const char *path, const nnl_lock_ops *ops) {
    memset(k, 0, sizeof *k);
    uint8_t *data;
    size_t size;
    int st = nnl_read_file(path, &data, &size, KEY_MAX_FILE, 0);
    if (st) return st;
    if (!ops)
        for (int i = 0; registry[i] && !ops; i++)
            if (registry[i]->probe(data, size)) ops = registry[i];
    if (!ops) {
        free(data);
        return nnl_fail(NNL_ERR_KEY, "%s: not a key of any lock nnlock knows (%s)", path, nnl_lock_names());
    }
    st = ops->parse(&k->key, data, size, path);
    nnl_wipe_free(data, size);
    if (st) return st;
    k->ops = ops;
    snprintf(k->name, sizeof k->name, "%s", path);
    return NNL_OK;
}

int nnl_lock_key_generate(nnl_lock_key *k, const nnl_lock_ops *ops, int c, int h, int w, const nnl_lock_args *a) {
    memset(k, 0, sizeof *k);
    int st = ops->generate(&k->key, c, h, w, a);
    if (st) return st;
    k->ops = ops;
    snprintf(k->name, sizeof k->name, "(new %s key)", ops->name);
    return NNL_OK;
}

void nnl_lock_key_free(nnl_lock_key *k) {
    if (k->ops && k->key) k->ops->free_key(k->key);
    memset(k, 0, sizeof *k);
}

/* ---------------------------------------------------------------- hook chains */

static int chain_sample(void *user, uint8_t *img, int c, int h, int w, int64_t index, int label, uint64_t seed,
                        float *soft) {
    nnl_hook_chain *ch = user;
    int out = -1;
    for (int i = 0; i < ch->n; i++) {
        if (!ch->h[i].sample) continue;
        /* Each lock gets its own stream of the image's seed. */
        int r = ch->h[i].sample(ch->h[i].user, img, c, h, w, index, label, i ? nnl_mix64(seed + (uint64_t)i) : seed, soft);
        if (out == -1 && r != -1) out = r;
    }
    return out;
}

static void chain_float(void *user, const uint8_t *img, int c, int h, int w, int64_t index, float *x) {
    nnl_hook_chain *ch = user;
    for (int i = 0; i < ch->n; i++)
        if (ch->h[i].to_float) { ch->h[i].to_float(ch->h[i].user, img, c, h, w, index, x); return; }
}

int nnl_hook_chain_make(nnl_hook_chain *c, const nnl_hooks *hooks, int n, nnl_hooks *out) {
    if (n < 0 || n > NNL_HOOK_CHAIN_MAX) return nnl_fail(NNL_ERR_ARG, "more than %d locks on the input", NNL_HOOK_CHAIN_MAX);
    if (n == 1) { *out = hooks[0]; return NNL_OK; } /* one lock: its own hooks, exactly */
    int floats = 0, any_sample = 0;
    for (int i = 0; i < n; i++) {
        if (hooks[i].to_float && i != n - 1)
            return nnl_fail(NNL_ERR_ARG, "a lock that maps pixels to values (ffx) must be the last on the input");
        floats += hooks[i].to_float != NULL;
        any_sample |= hooks[i].sample != NULL;
        c->h[i] = hooks[i];
    }
    c->n = n;
    *out = (nnl_hooks){.user = c, .sample = any_sample ? chain_sample : NULL, .to_float = floats ? chain_float : NULL};
    return NNL_OK;
}
