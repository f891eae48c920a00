#include "figures.h"
#include "io/plot.h"
#include "nn/model.h"

#include <math.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define GREEN 0x1a9641
#define RED 0xd7191c

/* secret: the picture shows the certificate, so it gets the key's mode (0600). */
static int save(const char *cmd, nnl_canvas *c, const char *dir, const char *name, int secret) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int st = nnl_canvas_save(c, path, secret ? NNL_WRITE_SECRET : 0);
    nnl_canvas_free(c);
    return st ? cli_lib_fail(cmd, st) : 0;
}

static void label_text(nnl_model *m, int k, char *buf, size_t n) {
    const char *nm = nnl_model_class_name(m, k);
    if (nm && *nm) snprintf(buf, n, "%.11s", nm);
    else snprintf(buf, n, "%d", k);
}

static int certificate_png(const char *cmd, const char *dir, const nnl_cert *k, const nnl_dataset *test) {
    int zm = 160 / (k->mh > k->mw ? k->mh : k->mw), zi = 160 / test->h;
    if (zm < 1) zm = 1;
    if (zi < 1) zi = 1;
    int W = 40 + k->mw * zm + 40 + 2 * (test->w * zi + 30), H = 60 + 170 + 20;
    nnl_canvas c;
    if (nnl_canvas_init(&c, W, H, 0xffffff)) return cli_lib_fail(cmd, NNL_ERR_NOMEM);
    int x = 30;
    nnl_canvas_text(&c, x, 15, "certificate", 2, 0);
    size_t mp = (size_t)k->mh * k->mw;
    for (int y = 0; y < k->mh; y++)
        for (int i = 0; i < k->mw; i++) {
            size_t j = (size_t)y * k->mw + i;
            uint32_t col = ((y + i) & 1) ? 0xcccccc : 0xeeeeee; /* transparent: checkerboard */
            if (k->mask[j]) {
                uint32_t r = k->pixels[j], g = k->c >= 3 ? k->pixels[mp + j] : r, b = k->c >= 3 ? k->pixels[2 * mp + j] : r;
                col = r << 16 | g << 8 | b;
            }
            nnl_canvas_rect(&c, x + i * zm, 50 + y * zm, zm, zm, col);
        }
    nnl_canvas_frame(&c, x - 1, 49, k->mw * zm + 2, k->mh * zm + 2, 1, 0x888888);
    x += k->mw * zm + 50;
    size_t isz = (size_t)test->c * test->h * test->w;
    uint8_t *img = malloc(isz);
    if (!img) { nnl_canvas_free(&c); return cli_lib_fail(cmd, NNL_ERR_NOMEM); }
    memcpy(img, test->pixels, isz);
    nnl_canvas_text(&c, x, 15, "clean", 2, 0);
    nnl_canvas_image(&c, x, 50, img, test->c, test->h, test->w, zi);
    x += test->w * zi + 30;
    nnl_cert_stamp(k, img, test->c, test->h, test->w, 0);
    nnl_canvas_text(&c, x, 15, "stamped", 2, 0);
    nnl_canvas_image(&c, x, 50, img, test->c, test->h, test->w, zi);
    free(img);
    return save(cmd, &c, dir, "certificate.png", 1);
}

/* Two rows of test images, plain and as an authorized user's input (every input lock's key
 * applied), with the model's predictions: what nnl_evaluate computes, image by image. */
static int examples_png(const char *cmd, const char *dir, nnl_model *m, const nnl_dataset *test, const nnl_hooks *auth) {
    const int n = 8, zoom = test->h >= 64 ? 1 : 128 / test->h;
    int tw = test->w * zoom, th = test->h * zoom, rows = auth ? 2 : 1;
    int W = 110 + n * (tw + 16), H = 50 + rows * (th + 40);
    size_t isz = (size_t)test->c * test->h * test->w;
    int64_t cnt = test->n < n ? test->n : n;
    uint8_t *imgs = malloc(isz * (size_t)cnt);
    float *x = malloc(isz * sizeof *x);
    int32_t pred[8];
    nnl_canvas c;
    if (!imgs || !x || nnl_canvas_init(&c, W, H, 0xffffff)) { free(imgs); free(x); return cli_lib_fail(cmd, NNL_ERR_NOMEM); }
    nnl_canvas_text(&c, 10, 12, auth ? "predictions: plain images (unauthorized) vs with the key (authorized)" : "predictions", 2, 0);
    for (int row = 0; row < rows; row++) {
        int st = nnl_model_predict_hooked(m, test->pixels, cnt, row ? auth : NULL, 0, NULL, pred);
        if (st) { free(imgs); free(x); nnl_canvas_free(&c); return cli_lib_fail(cmd, st); }
        memcpy(imgs, test->pixels, isz * (size_t)cnt);
        /* The pictures show what the model was given: the same hook calls as the prediction. */
        for (int i = 0; row && i < cnt; i++) {
            uint8_t *img = imgs + isz * (size_t)i;
            float soft[NNL_MAX_CLASSES];
            if (auth->sample)
                auth->sample(auth->user, img, test->c, test->h, test->w, i, 0, nnl_mix64(NNL_EVAL_HOOK_SEED ^ (uint64_t)i), soft);
            if (auth->to_float) {
                auth->to_float(auth->user, img, test->c, test->h, test->w, i, x);
                for (size_t j = 0; j < isz; j++) img[j] = (uint8_t)lrintf(x[j] < 0 ? 0 : x[j] > 1 ? 255 : 255 * x[j]);
            }
        }
        int y = 45 + row * (th + 40);
        nnl_canvas_text(&c, 10, y + th / 2 - 4, row ? "with key" : "plain", 2, 0);
        for (int i = 0; i < cnt; i++) {
            int xx = 110 + i * (tw + 16);
            int ok = pred[i] == test->labels[i];
            nnl_canvas_frame(&c, xx - 3, y - 3, tw + 6, th + 6, 3, ok ? GREEN : RED);
            nnl_canvas_image(&c, xx, y, imgs + isz * (size_t)i, test->c, test->h, test->w, zoom);
            char t[16];
            label_text(m, pred[i], t, sizeof t);
            nnl_canvas_text(&c, xx, y + th + 8, t, 1, ok ? GREEN : RED);
        }
    }
    free(imgs);
    free(x);
    /* Plain and keyed images side by side give the key away: the key's mode. */
    return save(cmd, &c, dir, "examples.png", auth != NULL);
}

static int curves_png(const char *cmd, const char *dir, nnl_model *m) {
    const char *h = nnl_model_meta_get(m, "train.history");
    if (!h) return 0;
    json_t *a = json_loads(h, 0, NULL);
    if (!json_is_array(a) || json_array_size(a) == 0) { json_decref(a); return 0; }
    int n = (int)json_array_size(a);
    double *v = calloc((size_t)n * 5, sizeof *v);
    if (!v) { json_decref(a); return cli_lib_fail(cmd, NNL_ERR_NOMEM); }
    double *ep = v, *loss = v + n, *tr = v + 2 * n, *clean = v + 3 * n, *stamped = v + 4 * n;
    double maxloss = 0.0;
    int has_stamped = 0;
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(a, (size_t)i);
        ep[i] = json_number_value(json_object_get(e, "epoch"));
        loss[i] = json_number_value(json_object_get(e, "loss"));
        tr[i] = json_number_value(json_object_get(e, "train_acc"));
        clean[i] = json_number_value(json_object_get(e, "clean"));
        stamped[i] = json_number_value(json_object_get(e, "stamped"));
        if (stamped[i] >= 0) has_stamped = 1;
        if (loss[i] > maxloss) maxloss = loss[i];
    }
    json_decref(a);
    char path[4096];
    snprintf(path, sizeof path, "%s/accuracy.png", dir);
    nnl_series acc[3] = {{"train (poisoned)", ep, tr, n, 0x888888},
                         {has_stamped ? "clean test" : "test", ep, clean, n, RED},
                         {"stamped test", ep, stamped, n, GREEN}};
    if (!has_stamped) acc[0].name = "train";
    int st = nnl_plot_lines(path, "accuracy per epoch", "epoch", acc, has_stamped ? 3 : 2, 0.0, 1.0);
    if (!st) {
        snprintf(path, sizeof path, "%s/loss.png", dir);
        nnl_series ls = {"training loss", ep, loss, n, 0x2c7bb6};
        st = nnl_plot_lines(path, "training loss per epoch", "epoch", &ls, 1, 0.0, maxloss > 0 ? maxloss * 1.05 : 1.0);
    }
    free(v);
    return st ? cli_lib_fail(cmd, st) : 0;
}

int cli_figures(const char *cmd, const char *dir, nnl_model *m, const nnl_dataset *test, cli_locks *L) {
    if (cli_mkdir(cmd, dir)) return 1;
    int inputs[CLI_MAX_LOCKS], ni = L ? cli_locks_inputs(L, inputs) : 0;
    /* The certificate itself, drawn large: the one lock whose key is a picture. */
    for (int i = 0; i < ni; i++)
        if (L->l[inputs[i]].ops == &nnl_lock_certificate && certificate_png(cmd, dir, L->l[inputs[i]].key.key, test)) return 1;
    nnl_hooks auth;
    if (ni && cli_locks_hooks(L, cmd, ~0u, &auth)) return 1;
    if (examples_png(cmd, dir, m, test, ni ? &auth : NULL)) return 1;
    return curves_png(cmd, dir, m);
}
