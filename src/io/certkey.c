/* Certificate key files: JSON (Jansson), strictly validated, written atomically and
 * readable only by the owner, since the certificate is the secret.
 *
 *   {"type": "nnlock-certificate", "version": 1, "shape": [c, h, w], "motif": "pattern",
 *    "height": mh, "width": mw, "pixels": [c*mh*mw values], "mask": [mh*mw 0/1],
 *    "placement": "fixed" | "random", "corner": "bottom-right", "margin": 1} */
#include "../core/core.h"

#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A key for a 4x4096x4096 motif is about 300 MB of JSON; real ones are kilobytes. */
#define CERT_KEY_MAX_FILE ((size_t)512 << 20)

static const char *const motifs[] = {"pixels", "pattern", "image"};
static const char *const corners[] = {"bottom-right", "bottom-left", "top-right", "top-left"};

int nnl_cert_save(const nnl_cert *k, const char *path, int overwrite) {
    json_t *px = json_array(), *mk = json_array();
    size_t mp = (size_t)k->mh * k->mw;
    for (size_t i = 0; i < (size_t)k->c * mp; i++) json_array_append_new(px, json_integer(k->pixels[i]));
    for (size_t i = 0; i < mp; i++) json_array_append_new(mk, json_integer(k->mask[i]));
    json_t *o = json_pack("{s:s, s:i, s:[i,i,i], s:s, s:i, s:i, s:o, s:o, s:s, s:s, s:i}", "type",
                          "nnlock-certificate", "version", 1, "shape", k->c, k->h, k->w, "motif",
                          motifs[k->kind % 3], "height", k->mh, "width", k->mw, "pixels", px, "mask", mk,
                          "placement", k->placement == NNL_PLACE_RANDOM ? "random" : "fixed", "corner",
                          corners[k->corner & 3], "margin", k->margin);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    /* 0600 from the first byte, and created exclusively unless told to overwrite: of two
     * trainings writing the same key, the second must fail rather than replace it. */
    int st = nnl_write_file(path, text, strlen(text), NNL_WRITE_SECRET | (overwrite ? 0 : NNL_WRITE_NEW));
    sodium_memzero(text, strlen(text));
    free(text);
    return st;
}

static int bad(const char *path, const char *what) {
    return nnl_fail(NNL_ERR_KEY, "key %s: %s", path, what);
}

static int get_int(json_t *o, const char *key, int lo, int hi, int *out, const char *path) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char msg[128];
        snprintf(msg, sizeof msg, "'%s' must be an integer from %d to %d", key, lo, hi);
        return bad(path, msg);
    }
    *out = (int)json_integer_value(v);
    return NNL_OK;
}

static int get_name(json_t *o, const char *key, const char *const *names, int n, int *out, const char *path) {
    const char *s = json_string_value(json_object_get(o, key));
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i])) { *out = i; return NNL_OK; }
    char msg[128];
    snprintf(msg, sizeof msg, "'%s' is missing or not one of the known values", key);
    return bad(path, msg);
}

static int get_bytes(json_t *o, const char *key, size_t n, int maxv, uint8_t *out, const char *path) {
    json_t *a = json_object_get(o, key);
    char msg[128];
    if (!json_is_array(a) || json_array_size(a) != n) {
        snprintf(msg, sizeof msg, "'%s' must be an array of %zu values", key, n);
        return bad(path, msg);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > maxv) {
            snprintf(msg, sizeof msg, "'%s'[%zu] must be an integer from 0 to %d", key, i, maxv);
            return bad(path, msg);
        }
        out[i] = (uint8_t)json_integer_value(v);
    }
    return NNL_OK;
}

int nnl_cert_load(nnl_cert *k, const char *path) {
    memset(k, 0, sizeof *k);
    uint8_t *data;
    size_t size;
    int st = nnl_read_file(path, &data, &size, CERT_KEY_MAX_FILE, 0);
    if (st) return st;
    st = nnl_cert_parse(k, data, size, path);
    sodium_memzero(data, size);
    free(data);
    return st;
}

int nnl_cert_parse(nnl_cert *k, const uint8_t *data, size_t size, const char *path) {
    memset(k, 0, sizeof *k);
    int st;
    json_error_t err;
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    if (!o) return nnl_fail(NNL_ERR_KEY, "key %s: not a certificate key (JSON error at line %d: %s)", path, err.line, err.text);
    int shape[3] = {0, 0, 0}, version = 0;
    json_t *sh = json_object_get(o, "shape");
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!json_is_object(o) || !type || strcmp(type, "nnlock-certificate")) {
        st = bad(path, "not an nnlock certificate key (\"type\" is not \"nnlock-certificate\")");
        goto done;
    }
    if ((st = get_int(o, "version", 1, 1000, &version, path))) goto done;
    if (version != 1) { st = nnl_fail(NNL_ERR_UNSUPPORTED, "key %s: version %d is not supported", path, version); goto done; }
    if (!json_is_array(sh) || json_array_size(sh) != 3) { st = bad(path, "'shape' must be [channels, height, width]"); goto done; }
    for (int i = 0; i < 3; i++) {
        json_t *v = json_array_get(sh, (size_t)i);
        int hi = i == 0 ? NNL_MAX_CHANNELS : 4096;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > hi) { st = bad(path, "'shape' values are out of range"); goto done; }
        shape[i] = (int)json_integer_value(v);
    }
    k->c = shape[0]; k->h = shape[1]; k->w = shape[2];
    if ((st = get_name(o, "motif", motifs, 3, &k->kind, path)) ||
        (st = get_int(o, "height", 1, k->h, &k->mh, path)) || (st = get_int(o, "width", 1, k->w, &k->mw, path)) ||
        (st = get_name(o, "corner", corners, 4, &k->corner, path)) ||
        (st = get_int(o, "margin", 0, 4096, &k->margin, path)))
        goto done;
    int placement = 0;
    static const char *const places[] = {"fixed", "random"};
    if ((st = get_name(o, "placement", places, 2, &placement, path))) goto done;
    k->placement = placement;
    if (k->margin + k->mh > k->h || k->margin + k->mw > k->w) { st = bad(path, "the motif and its margin do not fit the image"); goto done; }
    size_t mp = (size_t)k->mh * k->mw;
    k->pixels = malloc((size_t)k->c * mp);
    k->mask = malloc(mp);
    if (!k->pixels || !k->mask) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = get_bytes(o, "pixels", (size_t)k->c * mp, 255, k->pixels, path)) ||
        (st = get_bytes(o, "mask", mp, 1, k->mask, path)))
        goto done;
    int any = 0;
    for (size_t i = 0; i < mp; i++) any |= k->mask[i];
    if (!any) st = bad(path, "the motif's mask is empty");
done:
    json_decref(o);
    if (st) nnl_cert_free(k);
    return st;
}
