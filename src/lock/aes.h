/*
 * AES (FIPS-197): the S-boxes, the key expansion and the block cipher, for AES-128 and
 * AES-256. A leaf: it depends on nothing of the lock code, so that every lock that needs AES
 * (Deep-Lock's key schedule, FF1 of the key-transform lock) uses this one.
 */
#ifndef NNL_AES_H
#define NNL_AES_H

#include <stddef.h>
#include <stdint.h>

extern const uint8_t nnl_aes_sbox[256];
extern const uint8_t nnl_aes_inv_sbox[256];

/*
 * Writes the first nwords words of the AES key expansion of key (key_len 16 = AES-128,
 * 32 = AES-256), continued past the standard 44 / 60 words. Words are FIPS-197 words:
 * key byte 0 is the most significant byte of w[0]. Returns NNL_ERR_KEY for another length.
 */
int nnl_aes_expand_key(const uint8_t *key, size_t key_len, uint32_t *w, size_t nwords);

/* An expanded key for the block cipher. Wipe it (nnl_aes_wipe) when done. */
typedef struct nnl_aes {
    uint32_t rk[60];
    int rounds;        /* 10 (AES-128) or 14 (AES-256) */
} nnl_aes;
int nnl_aes_init(nnl_aes *a, const uint8_t *key, size_t key_len);
/* One 16-byte block, in and out may be the same (FIPS-197 section 5.1). */
void nnl_aes_encrypt(const nnl_aes *a, const uint8_t in[16], uint8_t out[16]);
void nnl_aes_wipe(nnl_aes *a);

static inline uint32_t sub_word(uint32_t x) {
    return (uint32_t)nnl_aes_sbox[x >> 24] << 24 | (uint32_t)nnl_aes_sbox[(x >> 16) & 255] << 16 |
           (uint32_t)nnl_aes_sbox[(x >> 8) & 255] << 8 | (uint32_t)nnl_aes_sbox[x & 255];
}

static inline uint32_t rot_word(uint32_t x) { return x << 8 | x >> 24; }

/* Rcon past the tenth value keeps doubling in GF(2^8): 0x36 -> 0x6c -> 0xd8 -> 0xab ... */
static inline uint8_t xtime(uint8_t x) { return (uint8_t)((x << 1) ^ ((x & 0x80) ? 0x1b : 0)); }

static inline uint32_t load_be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}


#endif
