/*
 * The safetensors container (https://github.com/huggingface/safetensors):
 *   8-byte little-endian u64 N, N bytes of UTF-8 JSON header, then raw data.
 *   header = { "__metadata__": {str: str, ...},
 *              "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ... }
 * Offsets are relative to the start of the data section. nnlock's model files hold only F32; a
 * PyTorch state_dict also holds I64 (batch-norm's num_batches_tracked), read and written here.
 *
 * Writing is deterministic (same tensors + metadata in the same order -> same bytes),
 * so save -> load -> save is byte-identical.
 */
#ifndef NNL_SAFETENSORS_H
#define NNL_SAFETENSORS_H

#include "../core/core.h"

#define NNL_ST_MAX_DIMS 8
#define NNL_ST_MAX_NAME 128
#define NNL_ST_MAX_TENSORS 4096
#define NNL_ST_MAX_HEADER (16u << 20)         /* bytes of JSON header */
#define NNL_ST_MAX_FILE ((size_t)4 << 30)     /* whole file */

typedef struct nnl_st_tensor {
    char name[NNL_ST_MAX_NAME];
    int ndim;
    int64_t shape[NNL_ST_MAX_DIMS];
    size_t count;          /* product of shape (1 for ndim 0) */
    int i64;               /* 1: dtype I64 (8-byte integers at data), 0: F32 */
    const float *data;     /* writer: caller's data; reader: points into the file buffer (aligned copy) */
} nnl_st_tensor;

typedef struct nnl_st_file {
    nnl_st_tensor *tensors; /* in data-offset order */
    int ntensors;
    char **keys, **values;  /* __metadata__, in the header's order */
    int nmeta;
    float *blob;            /* owned copy of the data section (aligned) */
} nnl_st_file;

/* Writes atomically. Tensor data are written in the given order; metadata too. */
int nnl_st_write(const char *path, const nnl_st_tensor *t, int nt,
                 const char *const *keys, const char *const *values, int nmeta);
/* Serialises to a malloc'd buffer (what nnl_st_write writes). */
int nnl_st_serialize(const nnl_st_tensor *t, int nt, const char *const *keys,
                     const char *const *values, int nmeta, uint8_t **out, size_t *size);
/* Parses and validates a whole file image. Trusts nothing: every error is a clear message. */
int nnl_st_parse(const uint8_t *data, size_t size, nnl_st_file *f);
int nnl_st_read(const char *path, nnl_st_file *f);
void nnl_st_free(nnl_st_file *f);
/* Lookups (NULL if absent). */
const nnl_st_tensor *nnl_st_find(const nnl_st_file *f, const char *name);
const char *nnl_st_meta(const nnl_st_file *f, const char *key);

#endif
