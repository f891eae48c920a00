/* libFuzzer target for the IDX parser: the first 4 bytes pick where the input splits into
 * the images file and the labels file. */
#include "core/core.h"
#include "data/formats.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    uint32_t cut;
    memcpy(&cut, data, 4);
    data += 4;
    size -= 4;
    size_t at = size ? cut % (size + 1) : 0;
    nnl_dataset ds;
    nnl_clear_error();
    if (nnl_idx_parse(&ds, data, at, "images", data + at, size - at, "labels") == NNL_OK) {
        float mean[NNL_MAX_CHANNELS], std[NNL_MAX_CHANNELS];
        nnl_dataset_stats(&ds, mean, std);
        nnl_dataset_truncate(&ds, ds.n / 2);
    } else if (!nnl_errmsg()[0]) {
        __builtin_trap(); /* every failure must explain itself */
    }
    nnl_dataset_free(&ds);
    return 0;
}
