/*
 * libFuzzer target for the safetensors reader. Anything the reader accepts must be
 * writable, and what is written must read back to the same tensors and metadata and
 * serialise to the same bytes again (abort() otherwise, so libFuzzer reports it).
 */
#include "io/safetensors.h"

#include <stdlib.h>
#include <string.h>

static void check(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nnl_st_file f;
    if (nnl_st_parse(data, size, &f) != NNL_OK) {
        /* A refusal is a clean state with a message. */
        check(f.tensors == NULL && f.blob == NULL && f.keys == NULL && f.values == NULL);
        check(nnl_errmsg()[0] != 0);
        return 0;
    }
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    int st = nnl_st_serialize(f.tensors, f.ntensors, (const char *const *)f.keys,
                              (const char *const *)f.values, f.nmeta, &b1, &n1);
    if (st != NNL_OK) {
        /* Only legitimate failure: a header at the size limit that grows by the padding
         * to a multiple of 8 (re-serialising never lengthens the JSON itself). */
        uint64_t hn = 0;
        for (int i = 0; i < 8; i++) hn |= (uint64_t)data[i] << (8 * i);
        check(st == NNL_ERR_ARG && hn + 8 > NNL_ST_MAX_HEADER);
        nnl_st_free(&f);
        return 0;
    }
    nnl_st_file g;
    check(nnl_st_parse(b1, n1, &g) == NNL_OK);
    check(g.ntensors == f.ntensors && g.nmeta == f.nmeta);
    for (int i = 0; i < f.ntensors; i++) {
        const nnl_st_tensor *a = &f.tensors[i], *b = &g.tensors[i];
        check(strcmp(a->name, b->name) == 0 && a->ndim == b->ndim && a->count == b->count);
        check(memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0);
        check(a->count == 0 || memcmp(a->data, b->data, a->count * sizeof(float)) == 0);
        check(((uintptr_t)b->data & (sizeof(float) - 1)) == 0);
    }
    for (int i = 0; i < f.nmeta; i++)
        check(strcmp(f.keys[i], g.keys[i]) == 0 && strcmp(f.values[i], g.values[i]) == 0);
    check(nnl_st_serialize(g.tensors, g.ntensors, (const char *const *)g.keys, (const char *const *)g.values,
                           g.nmeta, &b2, &n2) == NNL_OK);
    check(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    nnl_st_free(&g);
    nnl_st_free(&f);
    return 0;
}
