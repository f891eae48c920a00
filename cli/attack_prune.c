/* nnlock attack prune: magnitude pruning of a locked model, measured on plain and keyed images. */
#include "attack_cmds.h"
#include "attack/attack.h"
#include "nn/model.h"

#include <stdlib.h>
#include <string.h>

void cli_attack_prune_usage(FILE *out) {
    fprintf(out,
        "usage: nnlock attack prune MODEL [--data PATH] [--from NAME] [--fractions F,...] [--key KEY] [options]\n\n"
        "prune: the attacker sets the smallest weights (by magnitude, over the convolutions and\n"
        "linear layers together) to zero and uses the model on plain images; for each fraction\n"
        "it reports the accuracy on the plain test images and, with --key, on keyed ones.\n\n"
        "  -d, --data PATH    data set (default: the model's own if still there); its test split\n"
        "      --from NAME    prune only the layers after the activation @NAME (a gate lock's tail:\n"
        "                     --from gate; default: every layer)\n"
        "      --fractions F,...  the fractions pruned (default 0.1,0.2,...,0.9)\n"
        "      --key FILE     the right key, to measure what pruning leaves an authorized user\n"
        "  -t, --threads N    threads (default 0: all cores)\n"
        "      --json         JSON output\n");
}

static double acc(nnl_model *m, const nnl_dataset *ds, const nnl_hooks *h, int *st) {
    nnl_eval ev;
    if ((*st = nnl_evaluate(m, ds, h, 500, &ev))) return -1.0;
    double a = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    return a;
}

int cli_attack_prune(int argc, char **argv) {
    static const struct option base[] = {{"data", 1, 0, 'd'}, {"from", 1, 0, 1}, {"fractions", 1, 0, 2},
                                         {"threads", 1, 0, 't'}, {"json", 0, 0, 3}, CLI_WEIGHTS_LONGOPTS(300),
                                         {0, 0, 0, 0}};
    const char *cmd = "attack";
    cli_locks L;
    struct option *lo = cli_locks_options(&L, base, 500, 0);
    if (!lo) return cli_fail(cmd, "out of memory");
    const char *data = NULL, *from = NULL, *fr = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9";
    cli_weights_opts wo = {0};
    long threads = 0;
    int json = 0, c, r, rc = 2, nf = 0;
    double fractions[64];
    nnl_model *m = NULL;
    nnl_dataset ds = {0};
    float *keep = NULL;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:t:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 1: from = optarg; break;
        case 2: fr = optarg; break;
        case 't': if (cli_int(cmd, "--threads", optarg, 0, 1024, &threads)) goto done; break;
        case 3: json = 1; break;
        default:
            if (cli_weights_option(c, 300, &wo)) break;
            if ((r = cli_locks_option(&L, cmd, c)) == 1) break;
            if (r != 2) rc = cli_bad_option(cmd, argc, argv);
            goto done;
        }
    }
    for (const char *p = fr; *p && nf < 64;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v >= 0.0 && v <= 1.0) || (*end && *end != ',')) {
            cli_fail(cmd, "--fractions expects fractions 0..1 separated by commas, got '%s'", fr);
            goto done;
        }
        fractions[nf++] = v;
        p = *end ? end + 1 : end;
    }
    if (optind != argc - 1) { cli_fail(cmd, "expected one MODEL (usage: nnlock attack prune MODEL ...)"); goto done; }
    const char *path = argv[optind];
    rc = 1;
    if (cli_threads(cmd, threads)) goto done;
    if ((r = cli_locks_keys(&L, cmd, 0, 0, 0, 0))) { rc = r; goto done; }
    if (cli_locks_open(cmd, path, &wo, &L, &m)) goto done;
    int first = 0, st;
    if (from) {
        int a;
        if ((st = nnl_model_find_tap(m, from, &a))) { cli_lib_fail(cmd, st); goto done; }
        first = a;
        if (first >= m->nlayers) { cli_fail(cmd, "nothing to prune after '%s'", from); goto done; }
    }
    nnl_hooks keyed;
    int have_key = L.n > 0 && cli_locks_inputs(&L, (int[CLI_MAX_LOCKS]){0}) > 0;
    if (have_key && cli_locks_hooks(&L, cmd, ~0u, &keyed)) goto done;
    cli_data_for_model(m);
    data = cli_model_data(cmd, m, data);
    if (cli_load_data(cmd, data, NNL_SPLIT_TEST, &ds) || cli_match_classes(cmd, m, &ds, "test")) goto done;
    if (!(keep = malloc(m->nparams * sizeof *keep))) { cli_fail(cmd, "out of memory"); goto done; }
    memcpy(keep, m->params, m->nparams * sizeof *keep);
    json_t *rows = json ? json_array() : NULL;
    if (!json)
        printf("| pruned | weights zeroed | plain images (attacker) |%s\n|---|---|---|%s\n", have_key ? " keyed images |" : "",
               have_key ? "---|" : "");
    double t0 = cli_now();
    int nulls = 0;
    for (int i = -1; i < nf; i++) {
        double f = i < 0 ? 0.0 : fractions[i];
        int64_t zeroed, eligible;
        memcpy(m->params, keep, m->nparams * sizeof *keep);
        if ((st = nnl_prune_magnitude(m, first, f, &zeroed, &eligible))) { cli_lib_fail(cmd, st); json_decref(rows); goto done; }
        double plain = acc(m, &ds, NULL, &st), with = -1.0;
        if (!st && have_key) with = acc(m, &ds, &keyed, &st);
        if (st) { cli_lib_fail(cmd, st); json_decref(rows); goto done; }
        if (json) {
            json_t *row = json_pack("{s:o, s:I, s:I, s:o}", "fraction", cli_jnum(f, &nulls), "zeroed", (json_int_t)zeroed,
                                    "eligible", (json_int_t)eligible, "attacker_accuracy", cli_jnum(plain, &nulls));
            if (row && have_key) json_object_set_new(row, "authorized", cli_jnum(with, &nulls));
            json_array_append_new(rows, row);
        } else {
            printf("| %.0f%% | %lld of %lld | %.2f |", 100 * f, (long long)zeroed, (long long)eligible, 100 * plain);
            if (have_key) printf(" %.2f |", 100 * with);
            printf("\n");
        }
    }
    double secs = cli_now() - t0;
    if (json) {
        json_t *j = json_pack("{s:s, s:o, s:o, s:o, s:o}", "attack", "prune", "model", cli_jstr(path), "from",
                              from ? cli_jstr(from) : json_null(), "rows", rows, "seconds", cli_jnum(secs, &nulls));
        if (cli_json_emit(cmd, j, nulls, NULL)) goto done;
    } else {
        printf("\nmagnitude pruning of %s%s, measured on %lld test images (%.0f s); the first row is the model as it is\n",
               from ? "the layers after @" : "every layer of ", from ? from : cli_safe(path), (long long)ds.n, secs);
    }
    rc = 0;
done:
    free(keep);
    nnl_dataset_free(&ds);
    nnl_model_free(m);
    cli_locks_free(&L);
    free(lo);
    return rc;
}
