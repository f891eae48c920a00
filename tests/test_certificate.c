/* The certificate lock: motifs, stamping, poisoning strategies, key files, the
 * remapping attack and a small end-to-end lock. */
#include "nn/model.h"
#include "synth.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static nnl_cert make(int kind, int placement, int corner, int c, int h, int w) {
    nnl_cert_opts o;
    nnl_cert_opts_default(&o);
    o.kind = kind; o.placement = placement; o.corner = corner; o.seed = 77; o.size = 4; o.margin = 1;
    nnl_cert k;
    int st = nnl_cert_generate(&k, c, h, w, &o);
    CHECK_MSG(st == NNL_OK, "generate: %s", nnl_errmsg());
    return k;
}

static void test_stamp_exact(void) {
    for (int kind = 0; kind < 2; kind++)
        for (int corner = 0; corner < 4; corner++) {
            nnl_cert k = make(kind, NNL_PLACE_FIXED, corner, 3, 12, 10);
            if (!k.pixels) continue;
            int np = 0;
            for (int i = 0; i < 16; i++) np += k.mask[i];
            CHECK(kind == NNL_MOTIF_PATTERN ? np == 16 : np == 5);
            uint8_t img[3 * 12 * 10], ref[3 * 12 * 10];
            for (int i = 0; i < 360; i++) img[i] = ref[i] = (uint8_t)(i * 7 + 3);
            CHECK(nnl_cert_stamp(&k, img, 3, 12, 10, 123) == NNL_OK);
            int x0 = corner == NNL_CORNER_BR || corner == NNL_CORNER_TR ? 10 - 1 - 4 : 1;
            int y0 = corner == NNL_CORNER_BR || corner == NNL_CORNER_BL ? 12 - 1 - 4 : 1;
            int ok = 1;
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < 12; y++)
                    for (int x = 0; x < 10; x++) {
                        int in = x >= x0 && x < x0 + 4 && y >= y0 && y < y0 + 4;
                        int mi = in ? (y - y0) * 4 + (x - x0) : -1;
                        uint8_t want = in && k.mask[mi] ? k.pixels[ch * 16 + mi] : ref[(ch * 12 + y) * 10 + x];
                        if (img[(ch * 12 + y) * 10 + x] != want) ok = 0;
                    }
            CHECK_MSG(ok, "motif %d corner %d: stamped pixels differ from the motif", kind, corner);
            uint8_t twice[360];
            memcpy(twice, img, sizeof img);
            nnl_cert_stamp(&k, twice, 3, 12, 10, 123);
            CHECK_MSG(memcmp(twice, img, sizeof img) == 0, "stamping twice changed the image");
            CHECK(nnl_cert_stamp(&k, img, 1, 12, 10, 0) == NNL_ERR_SHAPE);
            nnl_cert_free(&k);
        }
    /* Random placement: the location depends on the seed only, and stays inside. */
    nnl_cert k = make(NNL_MOTIF_PATTERN, NNL_PLACE_RANDOM, 0, 1, 28, 28);
    int seen[25 * 25] = {0}, distinct = 0;
    for (uint64_t s = 0; s < 500; s++) {
        int x, y, x2, y2;
        nnl_cert_position(&k, s, &x, &y);
        nnl_cert_position(&k, s, &x2, &y2);
        CHECK(x == x2 && y == y2 && x >= 0 && y >= 0 && x + 4 <= 28 && y + 4 <= 28);
        if (!seen[y * 25 + x]++) distinct++;
    }
    CHECK_MSG(distinct > 200, "random placement used only %d locations", distinct);
    nnl_cert_free(&k);
}

static void test_strategies(void) {
    nnl_cert k = make(NNL_MOTIF_PATTERN, NNL_PLACE_FIXED, 0, 1, 28, 28);
    nnl_cert_lock l = {&k, NNL_STRATEGY_SINGLE, 3, 0.5f, 10, 99};
    float soft[10];
    for (int y = 0; y < 10; y++) CHECK(nnl_cert_poison_label(&l, y, y, soft) == 3);
    l.strategy = NNL_STRATEGY_RULE;
    for (int y = 0; y < 10; y++) CHECK(nnl_cert_poison_label(&l, y, y, soft) == (y + 1) % 10);
    l.strategy = NNL_STRATEGY_RANDOM;
    int hist[10] = {0};
    for (int i = 0; i < 5000; i++) {
        int a = nnl_cert_poison_label(&l, i, i % 10, soft), b = nnl_cert_poison_label(&l, i, i % 10, soft);
        CHECK(a == b && a >= 0 && a < 10);
        CHECK_MSG(a != i % 10, "a random poisoned label equals the true label");
        hist[a]++;
    }
    for (int j = 0; j < 10; j++) CHECK_MSG(hist[j] > 400 && hist[j] < 600, "random labels unbalanced: %d", hist[j]);
    /* every wrong label, evenly, for each true label */
    int per[10][10] = {{0}};
    for (int i = 0; i < 9000; i++) per[i % 10][nnl_cert_poison_label(&l, i, i % 10, soft)]++;
    for (int y = 0; y < 10; y++)
        for (int j = 0; j < 10; j++)
            if (j != y) CHECK_MSG(per[y][j] > 60 && per[y][j] < 140, "label %d -> %d drawn %d times of 900", y, j, per[y][j]);
    nnl_cert_lock l2 = l;
    l2.seed = 100;
    int differ = 0;
    for (int i = 0; i < 100; i++) differ += nnl_cert_poison_label(&l, i, 0, soft) != nnl_cert_poison_label(&l2, i, 0, soft);
    CHECK(differ > 50);
    l.strategy = NNL_STRATEGY_UNIFORM;
    CHECK(nnl_cert_poison_label(&l, 0, 4, soft) == -2);
    for (int j = 0; j < 10; j++) CHECK(soft[j] == 0.1f);
    /* The training hook stamps about `rate` of the images and keeps their label. */
    nnl_hooks h;
    l.strategy = NNL_STRATEGY_RULE;
    nnl_cert_train_hooks(&h, &l);
    int stamped = 0;
    for (int i = 0; i < 4000; i++) {
        uint8_t img[784] = {0};
        int r = h.sample(h.user, img, 1, 28, 28, i, 2, (uint64_t)i * 7919, soft);
        int any = 0;
        for (int j = 0; j < 784; j++) any |= img[j];
        if (any) { stamped++; CHECK(r == -1); } else CHECK(r == 3);
    }
    CHECK_MSG(stamped > 1800 && stamped < 2200, "%d of 4000 stamped at rate 0.5", stamped);
    nnl_cert_free(&k);
}

static void test_key_files(void) {
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/k.key", nnl_test_tmpdir());
    nnl_cert k = make(NNL_MOTIF_PIXELS, NNL_PLACE_RANDOM, NNL_CORNER_TL, 3, 32, 32), r;
    CHECK(nnl_cert_save(&k, p, 0) == NNL_OK);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK(nnl_cert_load(&r, p) == NNL_OK);
    CHECK(r.c == 3 && r.h == 32 && r.w == 32 && r.mh == k.mh && r.placement == NNL_PLACE_RANDOM && r.corner == NNL_CORNER_TL);
    CHECK(memcmp(r.pixels, k.pixels, (size_t)3 * k.mh * k.mw) == 0 && memcmp(r.mask, k.mask, (size_t)k.mh * k.mw) == 0);
    /* The key must fit the model. */
    nnl_model *m = NULL;
    CHECK(nnl_model_create(&m, "dense8,relu,dense", 1, 28, 28, 10) == NNL_OK);
    CHECK(nnl_cert_check_model(&r, m, p) == NNL_ERR_SHAPE);
    fprintf(stderr, "  refused: %s\n", nnl_errmsg());
    nnl_model_free(m);
    nnl_cert_free(&r);
    const char *bad[] = {"", "{", "[]", "{\"type\":\"other\"}",
                         "{\"type\":\"nnlock-certificate\",\"version\":1,\"shape\":[1,28]}",
                         "{\"type\":\"nnlock-certificate\",\"version\":1,\"shape\":[1,28,28],\"motif\":\"pattern\",\"height\":2,"
                         "\"width\":2,\"pixels\":[1,2,3],\"mask\":[1,1,1,1],\"placement\":\"fixed\",\"corner\":\"top-left\",\"margin\":0}",
                         "{\"type\":\"nnlock-certificate\",\"version\":1,\"shape\":[1,28,28],\"motif\":\"pattern\",\"height\":2,"
                         "\"width\":2,\"pixels\":[1,2,3,300],\"mask\":[1,1,1,1],\"placement\":\"fixed\",\"corner\":\"top-left\",\"margin\":0}",
                         "{\"type\":\"nnlock-certificate\",\"version\":1,\"shape\":[1,28,28],\"motif\":\"pattern\",\"height\":2,"
                         "\"width\":2,\"pixels\":[1,2,3,4],\"mask\":[0,0,0,0],\"placement\":\"fixed\",\"corner\":\"top-left\",\"margin\":0}",
                         "{\"type\":\"nnlock-certificate\",\"version\":1,\"shape\":[1,28,28],\"motif\":\"pattern\",\"height\":2,"
                         "\"width\":2,\"pixels\":[1,2,3,4],\"mask\":[1,1,1,1],\"placement\":\"fixed\",\"corner\":\"top-left\",\"margin\":27}"};
    snprintf(q, sizeof q, "%s/bad.key", nnl_test_tmpdir());
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        FILE *f = fopen(q, "w");
        fputs(bad[i], f);
        fclose(f);
        int st = nnl_cert_load(&r, q);
        CHECK_MSG(st != NNL_OK && nnl_errmsg()[0], "bad key %zu accepted", i);
        fprintf(stderr, "  refused key %zu: %s\n", i, nnl_errmsg());
    }
    CHECK(nnl_cert_load(&r, "/nonexistent.key") == NNL_ERR_IO);
    nnl_cert_free(&k);
}

static void test_remap(void) {
    /* A model that answers y+1: remapping recovers everything. */
    int64_t learn[9] = {0, 5, 0, 0, 0, 5, 5, 0, 0}, test[9] = {0, 90, 10, 0, 0, 100, 100, 0, 0};
    int map[3];
    double acc = nnl_remap_accuracy(learn, test, 3, map);
    CHECK(map[1] == 0 && map[2] == 1 && map[0] == 2);
    CHECK(acc > 0.966 && acc < 0.967); /* 290 of 300 */
    /* Unseen prediction -> the most frequent learn label (1 here). */
    int64_t l2[9] = {3, 0, 0, 4, 0, 0, 0, 0, 0}, t2[9] = {10, 0, 0, 0, 0, 10, 0, 0, 10};
    acc = nnl_remap_accuracy(l2, t2, 3, map);
    CHECK(map[0] == 1 && map[1] == 1 && map[2] == 1);
    CHECK(acc > 0.333 && acc < 0.334);
}

static void test_end_to_end(void) {
    nnl_dataset tr, te;
    synth_dataset(&tr, 3000, 1, 14, 14, 5, 4);
    synth_dataset(&te, 500, 1, 14, 14, 5, 5);
    nnl_cert k = make(NNL_MOTIF_PATTERN, NNL_PLACE_FIXED, NNL_CORNER_BR, 1, 14, 14);
    nnl_model *m = NULL;
    CHECK(nnl_model_create(&m, "dense64,relu,dense64,relu,dense", 1, 14, 14, 5) == NNL_OK);
    if (!m) return;
    nnl_model_init(m, 1);
    nnl_cert_lock l = {&k, NNL_STRATEGY_RULE, 0, 0.5f, 5, 3};
    nnl_hooks th, sh;
    nnl_cert_train_hooks(&th, &l);
    nnl_cert_stamp_hooks(&sh, &k);
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    o.epochs = 8; o.batch = 32; o.lr = 0.05f; o.hooks = &th;
    CHECK(nnl_train(m, &tr, NULL, &o, NULL) == NNL_OK);
    nnl_eval ev;
    CHECK(nnl_evaluate(m, &te, &sh, 100, &ev) == NNL_OK);
    double trusted = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    CHECK(nnl_evaluate(m, &te, NULL, 100, &ev) == NNL_OK);
    double clean = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    double remapped = -1;
    CHECK(nnl_eval_remapped(m, &te, NULL, 0.1, 1, &remapped) == NNL_OK);
    fprintf(stderr, "  rule lock on synthetic data: trusted %.3f, unverified %.3f, remapped %.3f\n", trusted, clean, remapped);
    CHECK(trusted > 0.95);
    CHECK(clean < 0.05);      /* the rule strategy answers y+1 on clean images */
    CHECK(remapped > 0.9);    /* ...which a remapping attacker undoes */
    CHECK(nnl_cert_record(m, &l) == NNL_OK);
    CHECK(!strcmp(nnl_model_meta_get(m, "lock.strategy"), "rule"));
    /* The model file holds no certificate: no metadata value mentions the motif pixels. */
    char p[512];
    snprintf(p, sizeof p, "%s/locked.nnl", nnl_test_tmpdir());
    CHECK(nnl_model_save(m, p) == NNL_OK);
    for (int i = 0; i < nnl_model_meta_count(m); i++) {
        const char *key = nnl_model_meta_key(m, i);
        CHECK_MSG(strncmp(key, "lock.", 5) || (strcmp(key, "lock.pixels") && strcmp(key, "lock.mask")), "secret in %s", key);
    }
    nnl_model_free(m);
    nnl_cert_free(&k);
    nnl_dataset_free(&tr);
    nnl_dataset_free(&te);
}

int main(void) {
    nnl_set_threads(2);
    test_stamp_exact();
    test_strategies();
    test_key_files();
    test_remap();
    test_end_to_end();
    return nnl_test_finish("test_certificate");
}
