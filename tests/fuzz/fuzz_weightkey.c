/* libFuzzer target for the weight-lock key file parser, checked against the rule it
 * implements: exactly 32 or 64 hex digits (either case), optionally one "\n", nothing
 * else; the key is the digits decoded. A refusal leaves a message and no key. The input
 * is copied to an exactly sized buffer without a NUL, so a read past len is caught. */
#include "lock/weightlock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hex(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    if (size) memcpy(text, data, size);
    size_t digits = size && data[size - 1] == '\n' ? size - 1 : size;
    int valid = digits == 32 || digits == 64;
    for (size_t i = 0; valid && i < digits; i++) valid = hex(data[i]) >= 0;

    uint8_t key[NNL_WL_KEY_MAX];
    size_t len = 99;
    nnl_clear_error();
    int st = nnl_wl_key_parse("fuzz.key", text, size, key, &len);
    if (st == NNL_OK) {
        if (!valid || len != digits / 2) __builtin_trap();
        for (size_t j = 0; j < len; j++)
            if (key[j] != (uint8_t)(hex(data[2 * j]) << 4 | hex(data[2 * j + 1]))) __builtin_trap();
        /* The check value of a parsed key is always computable. */
        char kcv[NNL_WL_CHECK_HEX];
        if (nnl_wl_key_check(key, len, kcv) != NNL_OK || nnl_wl_key_verify(key, len, kcv) != NNL_OK) __builtin_trap();
    } else if (st != NNL_ERR_KEY || valid || len != 0 || !nnl_errmsg()[0]) {
        __builtin_trap();
    }
    nnl_wl_wipe(key, sizeof key);
    free(text);
    return 0;
}
