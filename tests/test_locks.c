/* The lock interface (src/lock/lock.h): every registered lock is complete for its seam, its
 * options are unique across the registry, its keys round-trip through the one loader (which
 * tells them apart by their files), describing a key never shows it, and a chain of two input
 * locks applies both in order. */
#include "testutil.h"
#include "lock/lock.h"

#include <sys/stat.h>

static void test_registry(void) {
    const nnl_lock_ops *const *all = nnl_lock_all();
    int n = 0;
    for (; all[n]; n++) {
        const nnl_lock_ops *l = all[n];
        CHECK_MSG(l->name && l->summary && l->opts, "lock %d lacks a name, summary or option list", n);
        CHECK(nnl_lock_find(l->name) == l);
        CHECK(l->probe && l->parse && l->generate && l->save && l->free_key && l->fits && l->describe_key);
        CHECK(l->locks && l->describe && l->label && l->forget);
        if (l->seam == NNL_SEAM_INPUT) CHECK_MSG(l->train && l->train_free && l->record && l->authorized, "%s", l->name);
        else CHECK_MSG(l->seam == NNL_SEAM_WEIGHTS && l->open && l->close, "%s", l->name);
        /* option names are unique across every lock: the commands take them all at once */
        for (const nnl_lock_opt *o = l->opts; o->name; o++) {
            CHECK_MSG(o->help && o->when, "%s --%s", l->name, o->name);
            for (int j = 0; j <= n; j++)
                for (const nnl_lock_opt *p = all[j]->opts; p->name; p++)
                    if (p != o) CHECK_MSG(strcmp(p->name, o->name), "--%s belongs to two locks", o->name);
        }
    }
    CHECK(n == 4 && nnl_lock_find("gate") == &nnl_lock_gate && nnl_lock_find("nope") == NULL);
    CHECK(strstr(nnl_lock_names(), "certificate") && strstr(nnl_lock_names(), "transform") && strstr(nnl_lock_names(), "gate") &&
          strstr(nnl_lock_names(), "weights"));
}

static void test_keys(void) {
    const nnl_lock_ops *const *all = nnl_lock_all();
    char path[512];
    for (int i = 0; all[i]; i++) {
        nnl_lock_key k, r;
        nnl_lock_args none = {0};
        CHECK_MSG(nnl_lock_key_generate(&k, all[i], 3, 32, 32, &none) == NNL_OK, "%s: %s", all[i]->name, nnl_errmsg());
        snprintf(path, sizeof path, "%s/%s.key", nnl_test_tmpdir(), all[i]->name);
        if (all[i]->lock_model) {
            /* a key learnt from a model: the one made first is empty and cannot be written; a
             * random one of its kind stands in for the rest */
            EXPECT_FAIL(all[i]->save(k.key, path, 0), "learnt from the model it locks");
            void *made;
            CHECK(all[i]->random_key(&made, k.key, 9) == NNL_OK);
            all[i]->free_key(k.key);
            k.key = made;
        }
        CHECK(all[i]->save(k.key, path, 0) == NNL_OK);
        struct stat sb;
        CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
        EXPECT_FAIL(all[i]->save(k.key, path, 0), "exists");
        /* The loader tells the lock from the file. */
        CHECK_MSG(nnl_lock_key_load(&r, path, NULL) == NNL_OK && r.ops == all[i], "%s: %s", all[i]->name, nnl_errmsg());
        nnl_lock_key_free(&r);
        for (int j = 0; all[j]; j++)
            if (j != i) CHECK_MSG(nnl_lock_key_load(&r, path, all[j]) != NNL_OK, "a %s key loaded as a %s key", all[i]->name, all[j]->name);
        /* Describing a key never shows it: no run of 8 or more hex digits. */
        char d[512];
        all[i]->describe_key(k.key, d, sizeof d);
        int run = 0, longest = 0;
        for (const char *p = d; *p; p++) {
            run = strchr("0123456789abcdefABCDEF", *p) ? run + 1 : 0;
            if (run > longest) longest = run;
        }
        CHECK_MSG(longest < 8, "%s: '%s'", all[i]->name, d);
        CHECK(all[i]->fits(k.key, 3, 32, 32, "k") == NNL_OK);
        if (all[i]->seam == NNL_SEAM_INPUT) CHECK(all[i]->fits(k.key, 1, 32, 32, "k") != NNL_OK);
        /* Other keys of the same kind: random, and a step away, both different from it. */
        void *o;
        CHECK(all[i]->random_key(&o, k.key, 5) == NNL_OK);
        all[i]->free_key(o);
        CHECK(all[i]->neighbour_key(&o, k.key, 5) == NNL_OK);
        all[i]->free_key(o);
        nnl_lock_key_free(&k);
    }
    char junk[512];
    snprintf(junk, sizeof junk, "%s/junk.key", nnl_test_tmpdir());
    nnl_test_write(junk, "{\"type\":\"other\"}", 16);
    nnl_lock_key k;
    EXPECT_FAIL(nnl_lock_key_load(&k, junk, NULL), "not a key of any lock");
}

/* A certificate stamp and then a shuffle: the chain applies both, in that order. */
static void test_chain(void) {
    nnl_lock_args none = {0};
    nnl_lock_key cert, tf;
    CHECK(nnl_lock_key_generate(&cert, &nnl_lock_certificate, 1, 8, 8, &none) == NNL_OK);
    nnl_lock_args b = {1, {"block"}, {"8"}};
    CHECK(nnl_lock_key_generate(&tf, &nnl_lock_transform, 1, 8, 8, &b) == NNL_OK);
    nnl_hooks h[2], out;
    nnl_lock_certificate.authorized(cert.key, &h[0]);
    nnl_lock_transform.authorized(tf.key, &h[1]);
    nnl_hook_chain chain;
    CHECK(nnl_hook_chain_make(&chain, h, 2, &out) == NNL_OK);
    uint8_t a[64] = {0}, want[64] = {0};
    float soft[2];
    out.sample(out.user, a, 1, 8, 8, 0, 0, 77, soft);
    h[0].sample(h[0].user, want, 1, 8, 8, 0, 0, 77, soft);
    h[1].sample(h[1].user, want, 1, 8, 8, 0, 0, nnl_mix64(77 + 1), soft);
    CHECK(!memcmp(a, want, 64));
    int any = 0;
    for (int i = 0; i < 64; i++) any |= a[i];
    CHECK(any);
    /* a float stage must come last */
    nnl_lock_args ffx = {2, {"method", "block"}, {"ffx", "8"}};
    nnl_lock_key fk;
    CHECK(nnl_lock_key_generate(&fk, &nnl_lock_transform, 1, 8, 8, &ffx) == NNL_OK);
    nnl_lock_transform.authorized(fk.key, &h[0]);
    nnl_lock_certificate.authorized(cert.key, &h[1]);
    EXPECT_FAIL(nnl_hook_chain_make(&chain, h, 2, &out), "must be the last");
    nnl_lock_key_free(&cert);
    nnl_lock_key_free(&tf);
    nnl_lock_key_free(&fk);
}

int main(void) {
    test_registry();
    test_keys();
    test_chain();
    return nnl_test_finish("test_locks");
}
