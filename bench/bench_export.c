/* Writes a data set as nnlock decodes it, for the PyTorch side of a benchmark, so that both
 * train on the same pixels (the CIFAR-10 copy is JPEG, and decoders differ by a level here
 * and there):
 *   bench_export DATA OUTDIR
 * writes OUTDIR/{train,test}_x.u8 (n x c x h x w bytes), OUTDIR/{train,test}_y.i32 (n
 * little-endian int32 labels) and OUTDIR/meta.txt ("split n c h w nclass" lines). */
#include "nnlock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int write_all(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "bench_export: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_export DATA OUTDIR\n");
        return 2;
    }
    if (mkdir(argv[2], 0755) != 0) {
        struct stat st;
        if (stat(argv[2], &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "bench_export: cannot make the directory %s\n", argv[2]);
            return 1;
        }
    }
    char meta[256] = "";
    static const char *const names[] = {"train", "test"};
    static const int splits[] = {NNL_SPLIT_TRAIN, NNL_SPLIT_TEST};
    for (int s = 0; s < 2; s++) {
        nnl_dataset ds;
        if (nnl_dataset_load(&ds, argv[1], splits[s])) {
            fprintf(stderr, "bench_export: %s\n", nnl_errmsg());
            return 1;
        }
        char name[32];
        size_t in = (size_t)ds.c * ds.h * ds.w;
        snprintf(name, sizeof name, "%s_x.u8", names[s]);
        if (write_all(argv[2], name, ds.pixels, (size_t)ds.n * in)) return 1;
        snprintf(name, sizeof name, "%s_y.i32", names[s]);
        if (write_all(argv[2], name, ds.labels, (size_t)ds.n * sizeof(int32_t))) return 1;
        size_t at = strlen(meta);
        snprintf(meta + at, sizeof meta - at, "%s %lld %d %d %d %d\n", names[s], (long long)ds.n, ds.c, ds.h, ds.w,
                 ds.nclass);
        nnl_dataset_free(&ds);
    }
    return write_all(argv[2], "meta.txt", meta, strlen(meta));
}
