#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int cli_fail(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "nnlock %s: ", cmd);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    } else {
        fputs(nnl_errmsg(), stderr);
    }
    fputc('\n', stderr);
    return 1;
}

int cli_lib_fail(const char *cmd, int status) {
    const char *m = nnl_errmsg();
    fprintf(stderr, "nnlock %s: %s\n", cmd, m && *m ? m : nnl_strerror(status));
    return 1;
}

int cli_bad_option(const char *cmd, int argc, char **argv) {
    const char *opt = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (optopt && optopt < 256 && optopt != '?')
        fprintf(stderr, "nnlock %s: option '-%c' is unknown or needs a value (see 'nnlock help %s')\n", cmd, optopt, cmd);
    else
        fprintf(stderr, "nnlock %s: option '%s' is unknown or needs a value (see 'nnlock help %s')\n", cmd, opt, cmd);
    return 2;
}

int cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "nnlock %s: %s expects an integer from %ld to %ld, got '%s'\n", cmd, opt, lo, hi, s);
        return 2;
    }
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "nnlock %s: %s expects a number from %g to %g, got '%s'\n", cmd, opt, lo, hi, s);
        return 2;
    }
    *out = v;
    return 0;
}

const char *cli_safe(const char *s) {
    static char bufs[4][1 << 16];
    static int next;
    char *out = bufs[next++ & 3];
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    for (; *p && o + 5 < sizeof bufs[0]; p++) {
        /* C0 controls and DEL, and the C1 controls U+0080..U+009F (UTF-8 C2 80..C2 9F),
         * which some terminals also take as the start of an escape sequence. */
        if (*p < 0x20 || *p == 0x7f) { o += (size_t)snprintf(out + o, 5, "\\x%02x", *p); continue; }
        if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) { o += (size_t)snprintf(out + o, 5, "\\x%02x", p[1]); p++; continue; }
        out[o++] = (char)*p;
    }
    if (*p) { memcpy(out + (o < sizeof bufs[0] - 4 ? o : sizeof bufs[0] - 4), "...", 4); return out; }
    out[o] = 0;
    return out;
}

int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t *out) {
    /* strtoull takes "-1" as 2^64 - 1 and saturates past 2^64; a seed is neither. */
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || !(s[0] >= '0' && s[0] <= '9')) {
        fprintf(stderr, "nnlock %s: %s expects an integer from 0 to 18446744073709551615, got '%s'\n", cmd, opt, s);
        return 2;
    }
    *out = v;
    return 0;
}

int cli_mkdir(const char *cmd, const char *dir) {
    int st = nnl_check_writable(dir, NNL_WRITE_DIR);
    if (st) return cli_lib_fail(cmd, st);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return cli_fail(cmd, "cannot create %s: %s", dir, strerror(errno));
    return 0;
}

int cli_check_out(const char *cmd, const char *path, int flags) {
    int st = nnl_check_writable(path, flags);
    return st ? cli_lib_fail(cmd, st) : 0;
}

int cli_load_data(const char *cmd, const char *path, int split, nnl_dataset *ds) {
    int st = nnl_dataset_load(ds, path, split);
    if (st) return cli_lib_fail(cmd, st);
    static int told_resized; /* once per run, not once per split */
    if (!strcmp(ds->source, "gtsrb") && nnl_gtsrb_last_resized() > 0 && !told_resized++)
        fprintf(stderr, "nnlock %s: warning: %lld GTSRB images are not the size their CSV gives (resized after the CSVs "
                "were written?); %s\n", cmd, (long long)nnl_gtsrb_last_resized(),
                nnl_gtsrb_crop_roi() ? "their regions of interest were scaled to the images' sizes"
                                     : "without --crop-roi the CSV sizes are not used");
    if (!strcmp(ds->source, "gtsrb") && nnl_gtsrb_last_roi_clamped() > 0)
        fprintf(stderr, "nnlock %s: warning: %lld GTSRB regions of interest reached outside their image and were clamped\n",
                cmd, (long long)nnl_gtsrb_last_roi_clamped());
    return 0;
}

int cli_match_classes(const char *cmd, const nnl_model *m, nnl_dataset *ds, const char *what) {
    int k = nnl_model_nclass(m);
    const char *names[NNL_MAX_CLASSES];
    int named = nnl_model_class_name(m, 0) != NULL;
    for (int i = 0; i < k; i++) names[i] = nnl_model_class_name(m, i);
    int st = nnl_dataset_match_classes(ds, named ? (char *const *)names : NULL, k, what);
    return st ? cli_lib_fail(cmd, st) : 0;
}

const char *cli_model_data(const char *cmd, const nnl_model *m, const char *given) {
    if (given) return given;
    /* The model's own training data, where it still is; else the default set. */
    const char *own = nnl_model_meta_get(m, "train.data_path");
    if (own && nnl_is_dir(own)) {
        fprintf(stderr, "nnlock %s: note: no --data: using %s, the data set the model was trained on\n", cmd, cli_safe(own));
        return own;
    }
    return NNL_DEFAULT_DATA;
}

void cli_data_for_model(const nnl_model *m) {
    int c, h, w;
    nnl_model_input_shape(m, &c, &h, &w);
    const char *crop = nnl_model_meta_get(m, "train.crop_roi");
    if (h == w) nnl_gtsrb_set_defaults(h, crop && !strcmp(crop, "1"));
}

int cli_threads(const char *cmd, long n) {
    /* More threads than cores only adds contention; -t N is capped at the cores this
     * process may use (its CPU affinity, as for a job on a cluster). */
    int cores = nnl_cores();
    if (n > cores) {
        fprintf(stderr, "nnlock %s: note: -t %ld is more than the %d core%s available; using %d\n", cmd, n, cores,
                cores == 1 ? "" : "s", cores);
        n = cores;
    }
    int st = nnl_set_threads((int)n);
    return st ? cli_lib_fail(cmd, st) : 0;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
