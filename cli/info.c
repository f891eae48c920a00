/* nnlock info: what a model file holds, its locks; what a key file is. */
#include "locks.h"

#include <jansson.h>
#include <stdlib.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock info MODEL [--json]\n"
        "       nnlock info --key KEY [--json]\n\n"
        "Shows the architecture, parameter count, input, classes, normalisation, locks (with\n"
        "their key spaces) and training metadata of a model file; or what a key file is (its\n"
        "lock, what it fits and its key space: never the key).\n\n"
        "      --key FILE              describe a key file instead\n"
        "      --json                  JSON output\n"
        CLI_WEIGHTS_USAGE);
}

/* info --key: what a key is, from its lock. */
static int key_info(const char *cmd, cli_locks *L, int json) {
    int r = cli_locks_keys(L, cmd, 0, 0, 0, 0);
    if (r) return r;
    for (int i = 0; i < L->n; i++) {
        char what[512];
        L->l[i].ops->describe_key(L->l[i].key.key, what, sizeof what);
        if (json) {
            json_t *o = json_pack("{s:o, s:o, s:o}", "key", cli_jstr(L->l[i].key.name), "lock", cli_jstr(L->l[i].ops->name),
                                  "description", cli_jstr(what));
            if (cli_json_emit(cmd, o, 0, NULL)) return 1;
        } else {
            printf("%s: %s lock; %s\n", cli_safe(L->l[i].key.name), L->l[i].ops->name, what);
        }
    }
    return 0;
}

static int run(int argc, char **argv) {
    static const struct option base[] = {{"json", 0, 0, 1}, CLI_WEIGHTS_LONGOPTS(300), {0, 0, 0, 0}};
    cli_locks L;
    struct option *lo = cli_locks_options(&L, base, 500, 0);
    if (!lo) return cli_fail("info", "out of memory");
    cli_weights_opts wo = {0};
    wo.allow_locked = 1; /* describing a locked model needs no key */
    const char *cmd = "info";
    int json = 0, c, r;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c == 1) json = 1;
        else if (cli_weights_option(c, 300, &wo)) continue;
        else if ((r = cli_locks_option(&L, cmd, c)) == 1) continue;
        else { cli_locks_free(&L); free(lo); return r == 2 ? 2 : cli_bad_option(cmd, argc, argv); }
    }
    if (L.n) {
        if (optind < argc) { cli_locks_free(&L); free(lo); return cli_fail(cmd, "give a model or --key, not both") + 1; }
        r = key_info(cmd, &L, json);
        cli_locks_free(&L);
        free(lo);
        return r;
    }
    free(lo);
    if (optind >= argc) return cli_fail(cmd, "no model file given (usage: nnlock info MODEL)") + 1;
    if (optind + 1 < argc) return cli_fail(cmd, "unexpected argument '%s'", argv[optind + 1]) + 1;
    nnl_model *m;
    if (cli_load_model(cmd, argv[optind], &wo, &m)) return 1;
    int mc, mh, mw, k = nnl_model_nclass(m);
    nnl_model_input_shape(m, &mc, &mh, &mw);
    if (json) {
        json_t *meta = json_object(), *names = json_array();
        for (int i = 0; i < nnl_model_meta_count(m); i++) {
            const char *key = nnl_model_meta_key(m, i);
            json_object_set_new(meta, key, cli_jstr(nnl_model_meta_get(m, key)));
        }
        for (int i = 0; i < k; i++) json_array_append_new(names, cli_jstr(nnl_model_class_name(m, i)));
        json_t *locks = json_array();
        const nnl_lock_ops *const *all = nnl_lock_all();
        for (int i = 0; all[i]; i++) {
            if (!all[i]->locks(m)) continue;
            char d[512];
            all[i]->describe(m, d, sizeof d);
            json_array_append_new(locks, json_pack("{s:o, s:o}", "lock", cli_jstr(all[i]->name), "description", cli_jstr(d)));
        }
        json_t *r = json_pack("{s:o, s:o, s:I, s:[i,i,i], s:i, s:o, s:o}", "file", cli_jstr(argv[optind]), "arch",
                              cli_jstr(nnl_model_arch(m)), "params", (json_int_t)nnl_model_param_count(m), "input", mc,
                              mh, mw, "classes", k, "class_names", names, "metadata", meta);
        if (r) json_object_set_new(r, "locks", locks);
        else json_decref(locks);
        if (cli_json_emit(cmd, r, 0, NULL)) { nnl_model_free(m); return 1; }
    } else {
        char *desc = malloc(1 << 16);
        if (!desc) { nnl_model_free(m); return cli_fail(cmd, "out of memory"); }
        nnl_model_describe(m, desc, 1 << 16);
        printf("model:       %s\narch:        %s\nparameters:  %zu\ninput:       %dx%dx%d\nclasses:     %d\n",
               cli_safe(argv[optind]), cli_safe(nnl_model_arch(m)), nnl_model_param_count(m), mc, mh, mw, k);
        const char *dp = nnl_model_meta_get(m, "train.data_path"), *df = nnl_model_meta_get(m, "train.data");
        if (dp || df) printf("trained on:  %s%s%s%s\n", dp ? cli_safe(dp) : "", dp && df ? " (" : "", df ? cli_safe(df) : "", dp && df ? ")" : "");
        if (nnl_model_class_name(m, 0)) {
            printf("class names:");
            for (int i = 0; i < k && i < 20; i++) printf(" %s%s", cli_safe(nnl_model_class_name(m, i)), i + 1 < k ? "," : "");
            printf("%s\n", k > 20 ? " ..." : "");
        }
        const nnl_lock_ops *const *all = nnl_lock_all();
        int any = 0;
        for (int i = 0; all[i]; i++) {
            if (!all[i]->locks(m)) continue;
            char d[512];
            all[i]->describe(m, d, sizeof d);
            printf("%s%s\n", any++ ? "             " : "locks:       ", d);
        }
        printf("\nlayers:\n%s\nmetadata:\n", desc);
        for (int i = 0; i < nnl_model_meta_count(m); i++) {
            const char *key = nnl_model_meta_key(m, i);
            printf("  %-22s %s\n", cli_safe(key), cli_safe(nnl_model_meta_get(m, key)));
        }
        free(desc);
    }
    nnl_model_free(m);
    return 0;
}

const nnl_command nnl_cmd_info = {"info", "architecture, parameters and metadata of a model file", run, usage};
