/* libFuzzer target for the CIFAR record parser: byte 0 picks the mode, byte 1 how many
 * buffers the rest is split into (at points taken from the following bytes). */
#include "core/core.h"
#include "data/formats.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int mode = data[0] % 4; /* 3 exercises the bad-mode path */
    int nbuf = 1 + data[1] % 3;
    data += 2;
    size -= 2;
    const uint8_t *bufs[3];
    size_t sizes[3];
    const char *names[3] = {"a.bin", "b.bin", "c.bin"};
    for (int i = 0; i < nbuf; i++) {
        size_t take = size;
        if (i < nbuf - 1 && size >= 2) {
            take = ((size_t)data[0] << 8 | data[1]) * 16 % (size - 1);
            data += 2;
            size -= 2;
        }
        if (take > size) take = size;
        bufs[i] = data;
        sizes[i] = take;
        data += take;
        size -= take;
    }
    nnl_dataset ds;
    nnl_clear_error();
    if (nnl_cifar_parse(&ds, bufs, sizes, names, nbuf, mode) == NNL_OK) {
        float mean[NNL_MAX_CHANNELS], std[NNL_MAX_CHANNELS];
        nnl_dataset_stats(&ds, mean, std);
    } else if (!nnl_errmsg()[0]) {
        __builtin_trap();
    }
    nnl_dataset_free(&ds);
    return 0;
}
