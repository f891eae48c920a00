/* Single images: PNG and JPEG through stb_image / stb_image_write (Debian's libstb provides the
 * code), binary PPM/PGM parsed here. */
#include "core/core.h"
#include "data/formats.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>
#include <stb_image_write.h>

#define IMAGE_MAX_SIDE 16384

/* stb_image also guesses BMP, GIF, TGA, PSD, HDR and PIC, and TGA has no magic at all, so
 * without this gate almost any corrupt file would "decode" as a TGA of garbage. */
static const char *image_kind(const uint8_t *b, size_t n) {
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(b, png, 8) == 0) return "PNG";
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return "JPEG";
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return "PPM/PGM";
    return NULL;
}

/* The size a PNG (IHDR) or JPEG (start-of-frame marker) declares, read here: stb_image
 * tries every format it knows when one fails, so its reason for refusing a 60000x60000 PNG
 * ended as "unknown image type" instead of the size. 0 if it cannot be told. */
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static int declared_size(const uint8_t *b, size_t n, const char *kind, uint32_t *x, uint32_t *y) {
    if (!strcmp(kind, "PNG")) {
        if (n < 24 || memcmp(b + 12, "IHDR", 4) != 0) return 0;
        *x = be32(b + 16);
        *y = be32(b + 20);
        return 1;
    }
    size_t at = 2;
    while (at + 4 <= n) {
        if (b[at] != 0xff) return 0;
        uint8_t m = b[at + 1];
        if (m == 0xff) { at++; continue; }
        if (m == 0xd8 || m == 0x01 || (m >= 0xd0 && m <= 0xd7)) { at += 2; continue; }
        size_t len = (size_t)b[at + 2] << 8 | b[at + 3];
        /* SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC) */
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            if (at + 9 > n) return 0;
            *y = (uint32_t)b[at + 5] << 8 | b[at + 6];
            *x = (uint32_t)b[at + 7] << 8 | b[at + 8];
            return 1;
        }
        if (len < 2) return 0;
        at += 2 + len;
    }
    return 0;
}

static const char *stb_reason(void) {
    const char *r = stbi_failure_reason();
    return r ? r : "unknown error";
}

/* Binary PNM is parsed here rather than by stb_image, which accepts truncated pixel data
 * and hands back uninitialised bytes for the missing part. */
static int pnm_number(const uint8_t *b, size_t n, size_t *at, unsigned *v) {
    for (;;) {
        while (*at < n && (b[*at] == ' ' || b[*at] == '\t' || b[*at] == '\r' || b[*at] == '\n'))
            (*at)++;
        if (*at < n && b[*at] == '#') {
            while (*at < n && b[*at] != '\n') (*at)++;
            continue;
        }
        break;
    }
    if (*at >= n || b[*at] < '0' || b[*at] > '9') return -1;
    unsigned long x = 0;
    while (*at < n && b[*at] >= '0' && b[*at] <= '9') {
        x = x * 10 + (unsigned)(b[(*at)++] - '0');
        if (x > 1000000) return -1;
    }
    *v = (unsigned)x;
    return 0;
}

static int pnm_decode(const uint8_t *b, size_t n, const char *name, size_t max_pixels,
                      uint8_t **pixels, int *c, int *h, int *w) {
    unsigned x, y, maxval;
    size_t at = 2;
    int ch = b[1] == '6' ? 3 : 1;
    if (pnm_number(b, n, &at, &x) || pnm_number(b, n, &at, &y) || pnm_number(b, n, &at, &maxval))
        return nnl_fail(NNL_ERR_FORMAT, "%s: corrupt PPM/PGM header", name);
    /* exactly one whitespace byte separates the header from the samples */
    if (at >= n || !(b[at] == ' ' || b[at] == '\t' || b[at] == '\r' || b[at] == '\n'))
        return nnl_fail(NNL_ERR_FORMAT, "%s: corrupt PPM/PGM header", name);
    at++;
    if (maxval < 1 || maxval > 65535)
        return nnl_fail(NNL_ERR_FORMAT, "%s: PPM/PGM maximum value %u outside 1..65535", name, maxval);
    if (x < 1 || y < 1 || x > IMAGE_MAX_SIDE || y > IMAGE_MAX_SIDE || (size_t)x * y > max_pixels)
        return nnl_fail(NNL_ERR_FORMAT, "%s: PPM/PGM of %ux%u pixels exceeds the %zu-pixel limit", name, x, y,
                        max_pixels);
    size_t plane = (size_t)x * y, bps = maxval > 255 ? 2 : 1, need = plane * (size_t)ch * bps;
    if (n - at < need)
        return nnl_fail(NNL_ERR_FORMAT, "%s: truncated PPM/PGM: %zu bytes of pixel data, expected %zu", name,
                        n - at, need);
    uint8_t *out = malloc(plane * (size_t)ch);
    if (!out) return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory for a %ux%u image", name, x, y);
    const uint8_t *src = b + at;
    for (size_t i = 0; i < plane; i++)
        for (int k = 0; k < ch; k++) {
            const uint8_t *p = src + (i * (size_t)ch + (size_t)k) * bps;
            unsigned v = bps == 2 ? (unsigned)p[0] << 8 | p[1] : p[0];
            if (v > maxval) {
                free(out);
                return nnl_fail(NNL_ERR_FORMAT, "%s: PPM/PGM sample %u above the maximum %u", name, v, maxval);
            }
            out[(size_t)k * plane + i] = maxval == 255 ? (uint8_t)v : (uint8_t)((v * 255u + maxval / 2) / maxval);
        }
    *pixels = out;
    *c = ch;
    *h = (int)y;
    *w = (int)x;
    return NNL_OK;
}

static int decode(const uint8_t *buf, size_t size, const char *name, size_t max_pixels,
                  uint8_t **pixels, int *c, int *h, int *w, int keep_alpha) {
    *pixels = NULL;
    *c = *h = *w = 0;
    const char *kind = image_kind(buf, size);
    if (!kind) {
        if (size >= 2 && buf[0] == 'P' && buf[1] >= '1' && buf[1] <= '4')
            return nnl_fail(NNL_ERR_UNSUPPORTED, "%s: ASCII or bitmap PNM (P%c) is not supported, only binary P5/P6",
                            name, buf[1]);
        return nnl_fail(NNL_ERR_FORMAT, "%s: not a PNG, JPEG or binary PPM/PGM image", name);
    }
    if (strcmp(kind, "PPM/PGM") == 0) return pnm_decode(buf, size, name, max_pixels, pixels, c, h, w);
    if (size > (size_t)INT_MAX)
        return nnl_fail(NNL_ERR_FORMAT, "%s: %zu-byte image file is too large", name, size);
    uint32_t dx, dy;
    if (declared_size(buf, size, kind, &dx, &dy) &&
        (dx < 1 || dy < 1 || dx > IMAGE_MAX_SIDE || dy > IMAGE_MAX_SIDE || (size_t)dx * dy > max_pixels))
        return nnl_fail(NNL_ERR_FORMAT, "%s: %s of %ux%u pixels exceeds the %zu-pixel limit (at most %d per side)", name,
                        kind, dx, dy, max_pixels, IMAGE_MAX_SIDE);
    int x, y, n;
    if (!stbi_info_from_memory(buf, (int)size, &x, &y, &n))
        return nnl_fail(NNL_ERR_FORMAT, "%s: corrupt %s header: %s", name, kind, stb_reason());
    if (x < 1 || y < 1 || x > IMAGE_MAX_SIDE || y > IMAGE_MAX_SIDE || (size_t)x * (size_t)y > max_pixels)
        return nnl_fail(NNL_ERR_FORMAT, "%s: %s of %dx%d pixels exceeds the %zu-pixel limit", name,
                        kind, x, y, max_pixels);
    uint8_t *raw = stbi_load_from_memory(buf, (int)size, &x, &y, &n, 0);
    if (!raw) return nnl_fail(NNL_ERR_FORMAT, "%s: corrupt or truncated %s (stb_image: %s)", name, kind, stb_reason());
    /* The header check above already bounded the size, but the decoder has the last word. */
    if (x < 1 || y < 1 || (size_t)x * (size_t)y > max_pixels || n < 1 || n > 4) {
        stbi_image_free(raw);
        return nnl_fail(NNL_ERR_FORMAT, "%s: decoder returned an unexpected %dx%dx%d image", name, x, y, n);
    }
    int oc = keep_alpha ? n : n >= 3 ? 3 : 1; /* alpha carries no class information; drop it */
    size_t plane = (size_t)x * (size_t)y;
    uint8_t *out = malloc(plane * (size_t)oc);
    if (!out) {
        stbi_image_free(raw);
        return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory for a %dx%d image", name, x, y);
    }
    for (int k = 0; k < oc; k++) {
        const uint8_t *src = raw + k;
        uint8_t *dst = out + (size_t)k * plane;
        for (size_t i = 0; i < plane; i++) dst[i] = src[i * (size_t)n];
    }
    stbi_image_free(raw);
    *pixels = out;
    *c = oc;
    *h = y;
    *w = x;
    return NNL_OK;
}

int nnl_image_decode(const uint8_t *buf, size_t size, const char *name, size_t max_pixels,
                     uint8_t **pixels, int *c, int *h, int *w) {
    return decode(buf, size, name, max_pixels, pixels, c, h, w, 0);
}

int nnl_image_load_rgba(const char *path, uint8_t **pixels, int *c, int *h, int *w) {
    *pixels = NULL;
    uint8_t *buf = NULL;
    size_t size = 0;
    int st = nnl_read_file(path, &buf, &size, NNL_IMAGE_MAX_FILE, 0);
    if (st) return st;
    st = decode(buf, size, path, NNL_IMAGE_MAX_PIXELS, pixels, c, h, w, 1);
    free(buf);
    return st;
}

int nnl_image_load(const char *path, uint8_t **pixels, int *c, int *h, int *w) {
    *pixels = NULL;
    uint8_t *buf = NULL;
    size_t size = 0;
    int st = nnl_read_file(path, &buf, &size, NNL_IMAGE_MAX_FILE, 0);
    if (st) return st;
    st = nnl_image_decode(buf, size, path, NNL_IMAGE_MAX_PIXELS, pixels, c, h, w);
    free(buf);
    return st;
}

typedef struct membuf {
    uint8_t *data;
    size_t size, cap;
    int failed;
} membuf;

static void membuf_write(void *ctx, void *data, int size) {
    membuf *m = ctx;
    if (m->failed || size <= 0) return;
    if (m->size + (size_t)size > m->cap) {
        size_t ncap = m->cap ? m->cap : 4096;
        while (ncap < m->size + (size_t)size) ncap *= 2;
        uint8_t *nd = realloc(m->data, ncap);
        if (!nd) { m->failed = 1; return; }
        m->data = nd;
        m->cap = ncap;
    }
    memcpy(m->data + m->size, data, (size_t)size);
    m->size += (size_t)size;
}

int nnl_image_save_png(const char *path, const uint8_t *pixels, int c, int h, int w, int flags) {
    if (!path || !pixels) return nnl_fail(NNL_ERR_ARG, "nnl_image_save_png: NULL argument");
    if (c < 1 || c > NNL_MAX_CHANNELS || h < 1 || w < 1 || h > IMAGE_MAX_SIDE || w > IMAGE_MAX_SIDE)
        return nnl_fail(NNL_ERR_ARG, "%s: cannot write a %dx%dx%d image as PNG", path, c, h, w);
    size_t plane = (size_t)h * (size_t)w;
    uint8_t *hwc = malloc(plane * (size_t)c);
    if (!hwc) return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path);
    for (int k = 0; k < c; k++)
        for (size_t i = 0; i < plane; i++) hwc[i * (size_t)c + (size_t)k] = pixels[(size_t)k * plane + i];
    membuf m = {0};
    int ok = stbi_write_png_to_func(membuf_write, &m, w, h, c, hwc, w * c);
    free(hwc);
    int st;
    if (!ok || m.failed)
        st = nnl_fail(m.failed ? NNL_ERR_NOMEM : NNL_ERR_IO, "%s: PNG encoding failed", path);
    else
        st = nnl_write_file(path, m.data, m.size, flags);
    free(m.data);
    return st;
}
