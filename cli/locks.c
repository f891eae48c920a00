/* --lock, --key, --key-out and the locks' own options (cli/locks.h). */
#include "locks.h"

#include <stdlib.h>
#include <string.h>

/* Every registered lock option of `when`, flattened: option j of the table is lock lk. */
typedef struct flat { int lock; const nnl_lock_opt *opt; } flat;

static int flatten(int when, flat *out, int cap) {
    const nnl_lock_ops *const *all = nnl_lock_all();
    int n = 0;
    for (int i = 0; all[i]; i++)
        for (const nnl_lock_opt *o = all[i]->opts; o && o->name; o++)
            if ((o->when & when) && n < cap) out[n++] = (flat){i, o};
    return n;
}

#define MAX_FLAT 64

struct option *cli_locks_options(cli_locks *L, const struct option *base, int code, int when) {
    memset(L, 0, sizeof *L);
    L->code = code;
    L->when = when;
    int nb = 0;
    while (base[nb].name) nb++;
    flat f[MAX_FLAT];
    int nf = when ? flatten(when, f, MAX_FLAT) : 0;
    struct option *o = calloc((size_t)(nb + 3 + nf + 1), sizeof *o);
    if (!o) return NULL;
    memcpy(o, base, (size_t)nb * sizeof *o);
    o[nb++] = (struct option){"lock", 1, 0, code};
    o[nb++] = (struct option){"key", 1, 0, code + 1};
    o[nb++] = (struct option){"key-out", 1, 0, code + 2};
    for (int j = 0; j < nf; j++) o[nb++] = (struct option){f[j].opt->name, f[j].opt->has_arg, 0, code + 10 + j};
    return o;
}

static cli_lock *push(cli_locks *L, const char *cmd) {
    if (L->n == CLI_MAX_LOCKS) { cli_fail(cmd, "more than %d locks", CLI_MAX_LOCKS); return NULL; }
    cli_lock *l = &L->l[L->n++];
    memset(l, 0, sizeof *l);
    return l;
}

int cli_locks_option(cli_locks *L, const char *cmd, int c) {
    if (c == L->code) {
        const nnl_lock_ops *ops = nnl_lock_find(optarg);
        if (!ops) { cli_fail(cmd, "--lock must be one of %s, got '%s'", nnl_lock_names(), optarg); return 2; }
        /* "--key K --lock NAME" says which lock K is for. */
        cli_lock *l = L->n && !L->l[L->n - 1].ops ? &L->l[L->n - 1] : push(L, cmd);
        if (!l) return 2;
        l->ops = ops;
        if (L->pending_key_out) { l->key_out = L->pending_key_out; L->pending_key_out = NULL; }
        return 1;
    }
    if (c == L->code + 1) {
        /* A key goes with the --lock before it, if that one has none yet. */
        cli_lock *l = L->n && L->l[L->n - 1].ops && !L->l[L->n - 1].key_path ? &L->l[L->n - 1] : push(L, cmd);
        if (!l) return 2;
        l->key_path = optarg;
        return 1;
    }
    if (c == L->code + 2) {
        /* Before any --lock it is for the first one. */
        if (!L->n) {
            if (L->pending_key_out) { cli_fail(cmd, "--key-out given twice for one --lock"); return 2; }
            L->pending_key_out = optarg;
            return 1;
        }
        if (L->l[L->n - 1].key_out) { cli_fail(cmd, "--key-out given twice for one --lock"); return 2; }
        L->l[L->n - 1].key_out = optarg;
        return 1;
    }
    flat f[MAX_FLAT];
    int nf = L->when ? flatten(L->when, f, MAX_FLAT) : 0, j = c - L->code - 10;
    if (j < 0 || j >= nf) return 0;
    nnl_lock_args *a = &L->args[f[j].lock];
    if (nnl_lock_arg(a, f[j].opt->name)) { cli_fail(cmd, "--%s given twice", f[j].opt->name); return 2; }
    if (a->n == NNL_LOCK_MAX_ARGS) { cli_fail(cmd, "too many lock options"); return 2; }
    a->name[a->n] = f[j].opt->name;
    a->value[a->n++] = f[j].opt->has_arg ? optarg : "";
    return 1;
}

void cli_locks_usage(FILE *out, int when) {
    const nnl_lock_ops *const *all = nnl_lock_all();
    for (int i = 0; all[i]; i++) {
        int any = 0;
        for (const nnl_lock_opt *o = all[i]->opts; o && o->name; o++) any |= (o->when & when) != 0;
        if (!any) continue;
        fprintf(out, "\n--lock %s: %s\n", all[i]->name, all[i]->summary);
        for (const nnl_lock_opt *o = all[i]->opts; o && o->name; o++)
            if (o->when & when) fprintf(out, "      %s\n", o->help);
    }
}

static int registry_index(const nnl_lock_ops *ops) {
    const nnl_lock_ops *const *all = nnl_lock_all();
    for (int i = 0; all[i]; i++)
        if (all[i] == ops) return i;
    return -1;
}

int cli_locks_keys(cli_locks *L, const char *cmd, int make, int c, int h, int w) {
    if (L->pending_key_out) return cli_fail(cmd, "--key-out needs the --lock its new key is for") + 1;
    for (int i = 0; i < L->n; i++) {
        cli_lock *l = &L->l[i];
        int st;
        if (l->key_path) {
            if ((st = nnl_lock_key_load(&l->key, l->key_path, l->ops))) return cli_lib_fail(cmd, st);
            l->ops = l->key.ops;
            if (l->key_out) return cli_fail(cmd, "--key-out is for a new key, but %s is given with --key", l->ops->name);
        } else if (make) {
            if ((st = nnl_lock_key_generate(&l->key, l->ops, c, h, w, &L->args[registry_index(l->ops)])))
                return cli_fail(cmd, "%s", nnl_errmsg()) + (st == NNL_ERR_ARG);
            l->made = 1;
        } else {
            return cli_fail(cmd, "--lock %s needs its key (--key FILE)", l->ops->name) + 1;
        }
        for (int j = 0; j < i; j++)
            if (L->l[j].ops == l->ops) return cli_fail(cmd, "two %s keys: a model has one lock of each kind", l->ops->name) + 1;
    }
    /* Every lock option must belong to a lock in use. */
    const nnl_lock_ops *const *all = nnl_lock_all();
    for (int r = 0; all[r]; r++) {
        if (!L->args[r].n) continue;
        int used = 0;
        for (int i = 0; i < L->n; i++) used |= L->l[i].ops == all[r];
        if (!used) return cli_fail(cmd, "--%s is an option of the %s lock: give --lock %s", L->args[r].name[0], all[r]->name,
                                   all[r]->name) + 1;
        /* Options that make a key mean nothing for a key that exists. */
        for (int i = 0; i < L->n; i++) {
            if (L->l[i].ops != all[r] || L->l[i].made) continue;
            for (int a = 0; a < L->args[r].n; a++)
                for (const nnl_lock_opt *o = all[r]->opts; o->name; o++)
                    if (!strcmp(o->name, L->args[r].name[a]) && o->when == NNL_LOCKOPT_NEW_KEY)
                        return cli_fail(cmd, "--%s makes a new %s key; %s is an existing one", o->name, all[r]->name,
                                        L->l[i].key.name) + 1;
        }
    }
    return 0;
}

int cli_locks_fit_shape(cli_locks *L, const char *cmd, int c, int h, int w) {
    for (int i = 0; i < L->n; i++) {
        int st = L->l[i].ops->fits(L->l[i].key.key, c, h, w, L->l[i].key.name);
        if (st) return cli_lib_fail(cmd, st);
    }
    return 0;
}

int cli_locks_fit(cli_locks *L, const char *cmd, const nnl_model *m) {
    int c, h, w;
    nnl_model_input_shape(m, &c, &h, &w);
    /* A model with several input locks takes them in the order it was trained with. */
    const char *order = nnl_model_meta_get(m, "lock.order");
    if (order) {
        cli_lock sorted[CLI_MAX_LOCKS];
        int n = 0;
        for (const char *p = order; *p;) {
            size_t len = strcspn(p, ",");
            for (int i = 0; i < L->n; i++)
                if (strlen(L->l[i].ops->name) == len && !strncmp(L->l[i].ops->name, p, len)) sorted[n++] = L->l[i];
            p += len + (p[len] == ',');
        }
        for (int i = 0; i < L->n; i++) {
            int in = 0;
            for (int j = 0; j < n; j++) in |= sorted[j].ops == L->l[i].ops;
            if (!in) sorted[n++] = L->l[i];
        }
        memcpy(L->l, sorted, (size_t)n * sizeof *sorted);
    }
    return cli_locks_fit_shape(L, cmd, c, h, w);
}

int cli_locks_inputs(const cli_locks *L, int *idx) {
    int n = 0;
    for (int i = 0; i < L->n; i++)
        if (L->l[i].ops->seam == NNL_SEAM_INPUT) idx[n++] = i;
    return n;
}

int cli_locks_weights(const cli_locks *L) {
    for (int i = 0; i < L->n; i++)
        if (L->l[i].ops->seam == NNL_SEAM_WEIGHTS) return i;
    return -1;
}

int cli_locks_hooks(cli_locks *L, const char *cmd, unsigned mask, nnl_hooks *h) {
    nnl_hooks hs[CLI_MAX_LOCKS];
    int n = 0;
    for (int i = 0; i < L->n; i++)
        if ((mask >> i & 1) && L->l[i].ops->seam == NNL_SEAM_INPUT) L->l[i].ops->authorized(L->l[i].key.key, &hs[n++]);
    int st = nnl_hook_chain_make(&L->chain, hs, n, h);
    return st ? cli_lib_fail(cmd, st) : 0;
}

int cli_locks_open(const char *cmd, const char *path, const cli_weights_opts *w, cli_locks *L, nnl_model **out) {
    *out = NULL;
    int wl = cli_locks_weights(L), st;
    if (wl >= 0 && (w->key_file || w->passphrase_file)) return cli_fail(cmd, "give the weight key once: --key or --weights-key");
    cli_weights_opts raw = {0};
    raw.allow_locked = 1;
    nnl_model *m;
    if (cli_load_model(cmd, path, wl >= 0 ? &raw : w, &m)) return 1;
    for (int i = 0; i < L->n; i++)
        if (!L->l[i].ops->locks(m)) {
            cli_fail(cmd, "%s is not %s-locked (its metadata has no record of that lock), but %s is a %s key", path,
                     L->l[i].ops->name, L->l[i].key.name, L->l[i].ops->name);
            nnl_model_free(m);
            return 1;
        }
    if (wl >= 0 && (st = L->l[wl].ops->open(L->l[wl].key.key, m))) {
        cli_fail(cmd, "%s: %s", path, nnl_errmsg());
        nnl_model_free(m);
        return 1;
    }
    if (cli_locks_fit(L, cmd, m)) { nnl_model_free(m); return 1; }
    *out = m;
    return 0;
}

const nnl_lock_args *cli_locks_args(const cli_locks *L, const nnl_lock_ops *ops) {
    return &L->args[registry_index(ops)];
}

void cli_locks_free(cli_locks *L) {
    for (int i = 0; i < L->n; i++) {
        if (L->l[i].train_state) L->l[i].ops->train_free(L->l[i].train_state);
        nnl_lock_key_free(&L->l[i].key);
    }
    L->n = 0;
}
