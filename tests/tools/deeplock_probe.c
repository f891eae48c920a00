/*
 * deeplock_probe: how much does a Deep-Lock-locked model file give away on its own?
 *
 *   deeplock_probe probe LOCKED [--out KEYFILE] [--json] [--budget SECONDS]
 *       Known-plaintext key recovery from the locked file alone (no key, no data).
 *       Exit 0 if the master key was recovered and checked, 3 if not.
 *   deeplock_probe sanitize LOCKED OUT
 *       An attacker's first repair before fine-tuning: every stored float that is NaN,
 *       Inf or larger than 1 in magnitude becomes 0 (the lock record is kept, so loading
 *       OUT still needs --allow-locked).
 *
 * The attack (docs/deep-lock.md, "Limits of the scheme"). The S-box is public, so
 * InvSbox(locked byte) = plain byte XOR key byte exactly. Byte 3 of a float (sign and the
 * top 7 exponent bits) pairs with the least significant byte of its key word, and for
 * trained weights it takes only a handful of values (|w| between 2^-9 and 2 covers almost
 * all of them). So each key word's low byte is known up to ~8 guesses. Those low bytes
 * form their own chain through the key schedule (w[i] = w[i-Nk] ^ w[i-1], or through
 * SubWord at i mod 8 = 4), except at i mod Nk = 0 where the byte rotated in comes from the
 * top byte of w[i-1]: one free byte per group of Nk words. A beam search over that chain
 * (scoring every implied plaintext top byte) recovers it; the free bytes it had to choose
 * are, through the inverse S-box, the top bytes of the words before each group boundary,
 * and from there the schedule's own equations (any two of w[i], w[i-Nk], w[i-1] give the
 * third) fill in every byte of every word, backwards to w[0..Nk-1]: the master key. The
 * result is checked against the key check value in the file.
 *
 * Built by scripts/deeplock_eval.sh against libnnlock.a (it uses nnl_model_load, the AES
 * tables and nnl_wl_key_verify), and included by tests/test_weights_model.c, which runs
 * the probe on a small trained model (DEEPLOCK_PROBE_NO_MAIN).
 */
#include "nnlock.h"
#include "lock/weightlock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tunables; -D overrides them for experiments (how few locked words suffice?). */
#ifndef PROBE_GROUPS
#define PROBE_GROUPS 128  /* groups of Nk words decoded per attempt */
#endif
#ifndef PROBE_BEAM0
#define PROBE_BEAM0 1024  /* candidates kept while guessing the first group */
#endif
#ifndef PROBE_BEAM
#define PROBE_BEAM 256    /* chain states kept from group to group */
#endif
#ifndef PROBE_TRIES
#define PROBE_TRIES 8     /* start positions tried before giving up */
#endif
#ifndef PROBE_SKIP
#define PROBE_SKIP 8      /* groups of the decoded span left out of the top-bit search */
#endif
#ifndef PROBE_WINDOW
#define PROBE_WINDOW 48   /* groups the top-bit search may use */
#endif
#define PROBE_NODES 50000L /* top-bit search budget per try */
#define PROBE_SECONDS 60.0 /* and for the whole probe (default of --budget) */

typedef struct probe_result {
    int recovered;           /* 1: key found and it matches the file's key check value */
    int key_bits;
    uint8_t key[32];
    size_t start, words;     /* the locked parameters the recovered chain came from */
    int tries;
    long conflicts;          /* contradictions met while solving the schedule (last node) */
    long nodes;              /* top-bit hypotheses tried, all tries together */
    double low_bytes_right;  /* once the key is known: share of decoded chain bytes that were right */
    double seconds;
} probe_result;

static double probe_logp[256];

/*
 * Log-prior of a float's top byte (sign + top 7 exponent bits) for trained weights: mass
 * on magnitudes 2^-9 .. 2 (top bytes 0x3b..0x3f, either sign), a little on neighbours,
 * almost none elsewhere. Deliberately generic: the same table for every model.
 */
static void probe_init_prior(void) {
    double p[128], sum = 0;
    for (int e = 0; e < 128; e++) p[e] = 1e-5;
    for (int e = 0x30; e <= 0x38; e++) p[e] = 0.005;
    p[0x39] = 0.02; p[0x3a] = 0.05; p[0x3b] = 0.12; p[0x3c] = 0.25; p[0x3d] = 0.30;
    p[0x3e] = 0.15; p[0x3f] = 0.03; p[0x40] = 0.005;
    for (int e = 0; e < 128; e++) sum += 2 * p[e];
    for (int b = 0; b < 256; b++) probe_logp[b] = log(p[b & 0x7f] / sum);
}

typedef struct pstate {
    uint8_t a[8];  /* low bytes of the Nk words of the current group */
    double s;
    int parent;
} pstate;

static int by_score(const void *x, const void *y) {
    double a = ((const pstate *)x)->s, b = ((const pstate *)y)->s;
    return a < b ? 1 : a > b ? -1 : 0;
}

static int same_low7(const uint8_t *a, const uint8_t *b, int nk) {
    for (int j = 0; j < nk; j++)
        if ((a[j] ^ b[j]) & 0x7f) return 0;
    return 1;
}

/*
 * Sorts by score and keeps the best `keep` windows that differ in bits 0..6. Windows that
 * differ only in top bits score alike (the sign is a fair coin) and would crowd the beam
 * with copies of one path; the top bits are settled later, by dfs(). Returns how many.
 */
static int prune(pstate *c, int n, int keep, int nk) {
    /* Most candidates are hopeless: move the best few to the front (quickselect) and
     * sort only those. */
    int top = 8 * keep < n ? 8 * keep : n;
    for (int lo = 0, hi = n - 1; lo < hi;) {
        double pivot = c[lo + (hi - lo) / 2].s;
        int i = lo, j = hi;
        while (i <= j) {
            while (c[i].s > pivot) i++;
            while (c[j].s < pivot) j--;
            if (i <= j) { pstate t = c[i]; c[i] = c[j]; c[j] = t; i++; j--; }
        }
        if (top - 1 <= j) hi = j;
        else if (top - 1 >= i) lo = i;
        else break;
    }
    qsort(c, (size_t)top, sizeof *c, by_score);
    n = top;
    int k = 0;
    for (int i = 0; i < n && k < keep; i++) {
        int dup = 0;
        for (int j = 0; j < k && !dup; j++) dup = same_low7(c[j].a, c[i].a, nk);
        if (!dup) c[k++] = c[i];
    }
    return k;
}

/* f_j of the low-byte chain: byte3(w[i]) = byte3(w[i-Nk]) ^ f_j(byte3(w[i-1])) for j != 0. */
static inline uint8_t chain_f(int nk, int j, uint8_t x) { return (nk == 8 && j == 4) ? nnl_aes_sbox[x] : x; }

/*
 * Decodes the low-byte chain for groups g0 .. g0+ng-1 (g0 >= 1). c3[i] = InvSbox of the
 * top byte of locked word i = plain top byte ^ low key byte. Writes low[i] for the words
 * of those groups. Returns 0, or -1 on allocation failure.
 */
static int decode_chain(const uint8_t *c3, int nk, size_t g0, int ng, uint8_t *low) {
    pstate *cand = malloc(sizeof *cand * (size_t)PROBE_BEAM0 * 256);
    pstate *hist = malloc(sizeof *hist * (size_t)ng * PROBE_BEAM);
    int *nhist = calloc((size_t)ng, sizeof *nhist);
    if (!cand || !hist || !nhist) { free(cand); free(hist); free(nhist); return -1; }

    /* First group: guess its low bytes one word at a time; each guess beyond the first
     * also fixes a low byte of the group before (a[j] ^ f(a[j-1])), which is scored too. */
    size_t base = g0 * (size_t)nk, prev = base - (size_t)nk;
    int n = 0;
    for (int v = 0; v < 256; v++) {
        cand[n].a[0] = (uint8_t)v;
        cand[n].s = probe_logp[c3[base] ^ v];
        cand[n++].parent = -1;
    }
    pstate *beam = malloc(sizeof *beam * PROBE_BEAM0);
    if (!beam) { free(cand); free(hist); free(nhist); return -1; }
    int nb = prune(cand, n, PROBE_BEAM0, 1);
    memcpy(beam, cand, sizeof *beam * (size_t)nb);
    for (int j = 1; j < nk; j++) {
        n = 0;
        for (int b = 0; b < nb; b++)
            for (int v = 0; v < 256; v++) {
                pstate *c = &cand[n++];
                *c = beam[b];
                c->a[j] = (uint8_t)v;
                uint8_t before = (uint8_t)(v ^ chain_f(nk, j, beam[b].a[j - 1]));
                c->s += probe_logp[c3[base + j] ^ v] + probe_logp[c3[prev + j] ^ before];
            }
        nb = prune(cand, n, PROBE_BEAM0, j + 1);
        memcpy(beam, cand, sizeof *beam * (size_t)nb);
    }
    if (nb > PROBE_BEAM) nb = PROBE_BEAM;
    for (int b = 0; b < nb; b++) { hist[b] = beam[b]; hist[b].parent = -1; }
    nhist[0] = nb;

    /* Following groups: the free byte (low byte of word 0) is guessed, the rest follows. */
    for (int g = 1; g < ng; g++) {
        const pstate *from = hist + (size_t)(g - 1) * PROBE_BEAM;
        size_t wb = (g0 + (size_t)g) * (size_t)nk;
        n = 0;
        for (int b = 0; b < nhist[g - 1]; b++)
            for (int v = 0; v < 256; v++) {
                pstate *c = &cand[n++];
                c->a[0] = (uint8_t)v;
                c->s = from[b].s + probe_logp[c3[wb] ^ v];
                for (int j = 1; j < nk; j++) {
                    c->a[j] = (uint8_t)(from[b].a[j] ^ chain_f(nk, j, c->a[j - 1]));
                    c->s += probe_logp[c3[wb + j] ^ c->a[j]];
                }
                c->parent = b;
            }
        int k = prune(cand, n, PROBE_BEAM, nk);
        memcpy(hist + (size_t)g * PROBE_BEAM, cand, sizeof *cand * (size_t)k);
        nhist[g] = k;
    }
    int at = 0;
    for (int g = ng - 1; g >= 0; g--) {
        const pstate *s = hist + (size_t)g * PROBE_BEAM + at;
        memcpy(low + (g0 + (size_t)g) * (size_t)nk, s->a, (size_t)nk);
        at = s->parent;
    }
    free(beam); free(cand); free(hist); free(nhist);
    return 0;
}

static uint8_t probe_rcon(size_t g) { /* Rcon(g), g >= 1; it has period 51 */
    static uint8_t t[52];
    if (!t[1]) {
        t[1] = 1;
        for (int k = 2; k < 52; k++) t[k] = (uint8_t)((t[k - 1] << 1) ^ ((t[k - 1] & 0x80) ? 0x1b : 0));
    }
    return t[(g - 1) % 51 + 1];
}

/*
 * Solves the key schedule's equations over words i0 .. i0+nw-1 (arrays indexed from i0),
 * from whatever bytes are known: for i >= Nk and byte p (0 = most significant), with
 * j = i mod Nk,
 *   w_p[i] ^ w_p[i-Nk] ^ F(z) ^ (j == 0 && p == 0 ? Rcon(i/Nk) : 0) = 0,
 * z = w_{(p+1) mod 4}[i-1] and F = Sbox when j == 0 (RotWord, SubWord); z = w_p[i-1]
 * and F = Sbox when Nk = 8 and j = 4; z = w_p[i-1] and F = identity otherwise.
 * Any two known terms give the third; repeated to a fixed point. Returns the number of
 * equations whose three known terms disagree: a wrong guess shows up here.
 */
static long solve_window(uint8_t (*val)[4], uint8_t (*known)[4], size_t i0, size_t nw, int nk) {
    long conflicts = 0;
    size_t unk = (size_t)nk;
    /* Sweeps alternate direction, so facts flow both ways in a few sweeps. */
    for (int changed = 1, sweep = 0; changed; sweep++) {
        changed = 0;
        conflicts = 0;
        for (size_t step = unk; step < nw; step++) {
            size_t l = sweep % 2 ? nw - 1 - (step - unk) : step, i = i0 + l;
            if (i < unk) continue;
            int j = (int)(i % unk);
            uint8_t r = j == 0 ? probe_rcon(i / unk) : 0;
            int sbox = j == 0 || (nk == 8 && j == 4);
            for (int p = 0; p < 4; p++) {
                int zp = j == 0 ? (p + 1) % 4 : p;
                uint8_t k = p == 0 ? r : 0;
                int kx = known[l][p], ky = known[l - unk][p], kz = known[l - 1][zp];
                if (kx + ky + kz < 2) continue;
                uint8_t fz = kz ? (sbox ? nnl_aes_sbox[val[l - 1][zp]] : val[l - 1][zp]) : 0;
                if (kx && ky && kz) {
                    conflicts += (uint8_t)(val[l][p] ^ val[l - unk][p] ^ fz ^ k) != 0;
                } else if (!kx) {
                    val[l][p] = (uint8_t)(val[l - unk][p] ^ fz ^ k); known[l][p] = 1; changed = 1;
                } else if (!ky) {
                    val[l - unk][p] = (uint8_t)(val[l][p] ^ fz ^ k); known[l - unk][p] = 1; changed = 1;
                } else {
                    uint8_t t = (uint8_t)(val[l][p] ^ val[l - unk][p] ^ k);
                    val[l - 1][zp] = sbox ? nnl_aes_inv_sbox[t] : t;
                    known[l - 1][zp] = 1; changed = 1;
                }
            }
        }
    }
    return conflicts;
}

/* Runs the key schedule backwards from Nk full words at index q down to w[0..Nk-1]. */
static void schedule_back(const uint32_t *wq, size_t q, int nk, uint8_t *key) {
    uint32_t *w = malloc(sizeof *w * (q + (size_t)nk));
    if (!w) return;
    memcpy(w + q, wq, sizeof *w * (size_t)nk);
    for (size_t i = q + (size_t)nk - 1; i >= (size_t)nk; i--) {
        uint32_t t = w[i - 1];
        size_t j = i % (size_t)nk;
        if (j == 0) {
            t = t << 8 | t >> 24;
            t = (uint32_t)nnl_aes_sbox[t >> 24] << 24 | (uint32_t)nnl_aes_sbox[(t >> 16) & 0xff] << 16 |
                (uint32_t)nnl_aes_sbox[(t >> 8) & 0xff] << 8 | nnl_aes_sbox[t & 0xff];
            t ^= (uint32_t)probe_rcon(i / (size_t)nk) << 24;
        } else if (nk == 8 && j == 4) {
            t = (uint32_t)nnl_aes_sbox[t >> 24] << 24 | (uint32_t)nnl_aes_sbox[(t >> 16) & 0xff] << 16 |
                (uint32_t)nnl_aes_sbox[(t >> 8) & 0xff] << 8 | nnl_aes_sbox[t & 0xff];
        }
        w[i - (size_t)nk] = w[i] ^ t;
    }
    for (int i = 0; i < nk; i++)
        for (int p = 0; p < 4; p++) key[4 * i + p] = (uint8_t)(w[i] >> (24 - 8 * p));
    nnl_wl_wipe(w, sizeof *w * (q + (size_t)nk));
    free(w);
}

/*
 * The float's sign is a fair coin, so the top bit of every low key byte is invisible in
 * the top-byte statistics: the beam gets bits 0..6 right and the top bits only up to
 * patterns it cannot see. This search fixes them: the top bits of the first group's Nk
 * low bytes and of each later group's free byte are guessed, the rest of the chain is
 * recomputed and must reproduce bits 0..6 of the decoded bytes (with Nk = 8, the SubWord
 * at j = 4 exposes a wrong top bit at once), and the schedule solver refutes the rest.
 */
typedef struct dfs_ctx {
    const uint8_t *low;   /* decoded low bytes, indexed by absolute word */
    int nk, depth_max;
    size_t g0;            /* first group of the window */
    uint8_t *chain;       /* hypothesised low bytes of the window */
    uint8_t (*val)[4], (*known)[4];
    const char *kcv;
    long nodes, node_cap;
    double deadline;
    uint8_t key[32];
    int found;
    long conflicts;
} dfs_ctx;

static void dfs(dfs_ctx *d, int depth) {
    if (d->found || ++d->nodes > d->node_cap) return;
    if (d->nodes % 256 == 0 && nnl_now() > d->deadline) { d->node_cap = 0; return; }
    size_t nk = (size_t)d->nk, nw = (size_t)depth * nk, i0 = d->g0 * nk;
    /* Before about three groups per key word the equations cannot contradict a guess yet. */
    if (depth >= 3 * d->nk - 2) {
        memset(d->known, 0, sizeof *d->known * nw);
        for (size_t l = 0; l < nw; l++) { d->val[l][3] = d->chain[l]; d->known[l][3] = 1; }
        d->conflicts = solve_window(d->val, d->known, i0, nw, d->nk);
        if (d->conflicts) return;
        for (size_t g = 0; g < (size_t)depth; g++) {
            int full = 1;
            for (size_t l = g * nk; l < (g + 1) * nk; l++)
                for (int p = 0; p < 4; p++) full &= d->known[l][p];
            if (!full) continue;
            uint32_t wq[8];
            for (size_t l = 0; l < nk; l++)
                wq[l] = (uint32_t)d->val[g * nk + l][0] << 24 | (uint32_t)d->val[g * nk + l][1] << 16 |
                        (uint32_t)d->val[g * nk + l][2] << 8 | d->val[g * nk + l][3];
            schedule_back(wq, i0 + g * nk, d->nk, d->key);
            if (nnl_wl_key_verify(d->key, nk * 4, d->kcv) == NNL_OK) d->found = 1;
            return; /* a full group decides: right key, or a refuted guess */
        }
    }
    if (depth == d->depth_max) return;
    size_t base = (size_t)depth * nk;
    const uint8_t *lo = d->low + i0 + base;
    if (depth == 0) {
        for (unsigned s = 0; s < (1u << nk) && !d->found; s++) {
            for (size_t j = 0; j < nk; j++) d->chain[j] = (uint8_t)((lo[j] & 0x7f) | (((s >> j) & 1) << 7));
            dfs(d, 1);
        }
        return;
    }
    for (int s = 0; s < 2 && !d->found; s++) {
        uint8_t *a = d->chain + base;
        const uint8_t *prev = a - nk;
        a[0] = (uint8_t)((lo[0] & 0x7f) | (s << 7));
        int ok = 1;
        for (size_t j = 1; j < nk && ok; j++) {
            a[j] = (uint8_t)(prev[j] ^ chain_f(d->nk, (int)j, a[j - 1]));
            ok = (a[j] & 0x7f) == (lo[j] & 0x7f);
        }
        if (ok) dfs(d, depth + 1);
    }
}

/* Re-fits the top-byte prior to the bytes the last decode implies (sign-symmetric). */
static void fit_prior(const uint8_t *c3, const uint8_t *low, size_t from, size_t to) {
    double h[128] = {0}, n = 0;
    for (size_t i = from; i < to; i++) { h[(c3[i] ^ low[i]) & 0x7f] += 1; n += 1; }
    for (int b = 0; b < 256; b++) probe_logp[b] = log((h[b & 0x7f] + 0.01) / (n + 1.28) / 2);
}

/* The locked words of every tensor, in the model's tensor order (parameter i = word i). */
static uint32_t *probe_words(nnl_model *m, size_t *n, size_t *big_off, size_t *big_n) {
    size_t total = 0, c;
    *big_off = *big_n = 0;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        nnl_model_tensor(m, t, NULL, &c);
        if (c > *big_n) { *big_n = c; *big_off = total; }
        total += c;
    }
    uint32_t *w = malloc(total * 4 + 4);
    if (!w) return NULL;
    size_t off = 0;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        const float *p = nnl_model_tensor(m, t, NULL, &c);
        memcpy(w + off, p, c * 4);
        off += c;
    }
    *n = total;
    return w;
}

/* Attempts the recovery on a loaded (locked) model within about `budget` seconds; never
 * modifies it. */
static int deeplock_probe(nnl_model *m, double budget, probe_result *r) {
    memset(r, 0, sizeof *r);
    double t0 = nnl_now();
    const char *kb = nnl_model_meta_get(m, NNL_WL_META_PREFIX "key_bits");
    const char *kcv = nnl_model_meta_get(m, NNL_WL_META_PREFIX "kcv");
    r->key_bits = kb ? atoi(kb) : 256;
    if (r->key_bits != 128 && r->key_bits != 256) return nnl_fail(NNL_ERR_FORMAT, "key_bits must be 128 or 256");
    if (!kcv) return nnl_fail(NNL_ERR_FORMAT, "no key check value: not a weight-locked nnlock model");
    int nk = r->key_bits / 32;
    size_t n, big_off, big_n;
    uint32_t *w = probe_words(m, &n, &big_off, &big_n);
    if (!w) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    size_t span = (size_t)PROBE_GROUPS * nk, win = (size_t)PROBE_WINDOW * nk;
    uint8_t *c3 = malloc(n + 1), *low = malloc(n + 1), *chain = malloc(win);
    uint8_t (*val)[4] = malloc(sizeof *val * win), (*known)[4] = malloc(sizeof *known * win);
    int st = NNL_OK;
    if (!c3 || !low || !chain || !val || !known) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) c3[i] = nnl_aes_inv_sbox[w[i] >> 24]; /* top byte in memory: byte 3 */
    for (int t = 0; t < PROBE_TRIES && !r->recovered && nnl_now() < t0 + budget; t++) {
        /* Starts spread over the largest tensor, where the weights are most alike. */
        size_t room = big_n > span + 2 * (size_t)nk ? big_n - span - 2 * (size_t)nk : 0;
        size_t g0 = (big_off + (size_t)nk + room * (size_t)t / PROBE_TRIES) / (size_t)nk + 1;
        if ((g0 + PROBE_GROUPS) * (size_t)nk > n) break;
        r->tries = t + 1;
        probe_init_prior();
        for (int pass = 0; pass < 2; pass++) {
            if (decode_chain(c3, nk, g0, PROBE_GROUPS, low)) { st = nnl_fail(NNL_ERR_NOMEM, "out of memory"); goto out; }
            fit_prior(c3, low, g0 * (size_t)nk, (g0 + PROBE_GROUPS) * (size_t)nk);
        }
        /* The window skips the first groups, where the beam had the least context. */
        dfs_ctx d = {low, nk, PROBE_WINDOW, g0 + PROBE_SKIP, chain, val, known, kcv, 0, PROBE_NODES,
                     t0 + budget, {0}, 0, 0};
        dfs(&d, 0);
        r->conflicts = d.conflicts;
        r->nodes += d.nodes;
        if (!d.found) continue;
        memcpy(r->key, d.key, sizeof r->key);
        nnl_wl_wipe(d.key, sizeof d.key);
        r->recovered = 1;
        r->start = g0 * (size_t)nk;
        r->words = span;
        uint32_t *ex = malloc(sizeof *ex * (r->start + span));
        if (ex && !nnl_aes_expand_key(r->key, (size_t)nk * 4, ex, r->start + span)) {
            size_t right = 0;
            for (size_t i = r->start; i < r->start + span; i++) right += (uint8_t)ex[i] == low[i];
            r->low_bytes_right = (double)right / (double)span;
        }
        free(ex);
    }
    r->seconds = nnl_now() - t0;
out:
    free(w); free(c3); free(low); free(chain); free(val); free(known);
    return st;
}

#ifndef DEEPLOCK_PROBE_NO_MAIN
static int usage(void) {
    fprintf(stderr, "usage: deeplock_probe probe LOCKED [--out KEYFILE] [--json] [--budget SECONDS]\n"
                    "       deeplock_probe sanitize LOCKED OUT\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    nnl_model *m;
    int st = nnl_model_load(&m, argv[2]);
    if (st) { fprintf(stderr, "deeplock_probe: %s\n", nnl_errmsg()); return 1; }
    if (!strcmp(argv[1], "sanitize")) {
        if (argc != 4) return usage();
        size_t t, z = nnl_attack_sanitize(m, &t);
        if ((st = nnl_model_save(m, argv[3]))) { fprintf(stderr, "deeplock_probe: %s\n", nnl_errmsg()); return 1; }
        printf("zeroed %zu of %zu stored floats (NaN, Inf or |w| > 1); written to %s\n", z, t, argv[3]);
        nnl_model_free(m);
        return 0;
    }
    if (strcmp(argv[1], "probe")) return usage();
    const char *out = NULL;
    int json = 0;
    double budget = PROBE_SECONDS;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = atof(argv[++i]);
        else return usage();
    }
    probe_result r;
    if ((st = deeplock_probe(m, budget, &r))) { fprintf(stderr, "deeplock_probe: %s\n", nnl_errmsg()); return 1; }
    char hex[65] = "";
    for (int i = 0; r.recovered && i < r.key_bits / 8; i++) sprintf(hex + 2 * i, "%02x", r.key[i]);
    if (json) {
        printf("{\"model\": \"%s\", \"key_bits\": %d, \"recovered\": %s, \"key\": \"%s\", \"start_param\": %zu, "
               "\"params_used\": %zu, \"tries\": %d, \"conflicts\": %ld, \"hypotheses\": %ld, \"low_bytes_right\": %.6f, \"seconds\": %.3f}\n",
               argv[2], r.key_bits, r.recovered ? "true" : "false", hex, r.start, r.words, r.tries, r.conflicts,
               r.nodes, r.low_bytes_right, r.seconds);
    } else if (r.recovered) {
        printf("recovered the %d-bit master key of %s from locked parameters %zu..%zu alone in %.2f s "
               "(try %d; %.2f%% of the decoded low key bytes were right): %s; it matches the key check value\n",
               r.key_bits, argv[2], r.start, r.start + r.words - 1, r.seconds, r.tries, 100.0 * r.low_bytes_right, hex);
    } else {
        printf("no key recovered from %s after %d tries (%.2f s; last try: %ld schedule conflicts)\n", argv[2],
               r.tries, r.seconds, r.conflicts);
    }
    if (r.recovered && out && nnl_wl_key_write(out, r.key, (size_t)r.key_bits / 8)) {
        fprintf(stderr, "deeplock_probe: %s\n", nnl_errmsg());
        return 1;
    }
    nnl_wl_wipe(r.key, sizeof r.key);
    nnl_model_free(m);
    return r.recovered ? 0 : 3;
}
#endif
