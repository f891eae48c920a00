#!/usr/bin/env python3
"""Known-answer values for the key-transform lock's ffx table, computed from the definition of
pyffx's FFX construction in docs/key-transform.md (written anew here, independently of the C
code and of pyffx): python3 tests/ref/ffx_ref.py prints what tests/test_transform.c checks."""
import hashlib, hmac, math, struct


def digits(key, radix, rnd, s, want):
    msg = struct.pack("<I", rnd) + b"".join(struct.pack("<I", x) for x in s)
    per = int(hashlib.sha1().digest_size * math.log(256) / math.log(radix))
    out, j = [], 0
    while len(out) < want:
        h = hmac.new(key, msg + struct.pack("<I", j), hashlib.sha1).digest()
        d = int.from_bytes(h, "big")
        for _ in range(per):
            d, r = divmod(d, radix)
            out.append(r)
        msg, j = h, j + 1
    return out[:want]


def encrypt(key, radix, v, rounds=10):
    a, b = v[: len(v) // 2], v[len(v) // 2:]
    for i in range(rounds):
        f = digits(key, radix, i, b, len(a))
        a, b = b, [(x + y) % radix for x, y in zip(a, f)]
    return a + b


def table(key):
    t = []
    for v in range(256):
        e = encrypt(key, 10, [v // 100, v // 10 % 10, v % 10])
        t.append(e[0] * 100 + e[1] * 10 + e[2])
    return t


if __name__ == "__main__":
    t = table(b"password")
    print("key b'password': table[0..7] =", t[:8], "table[255] =", t[255], "max =", max(t))
    print("key b'foo', 2 digits, v = 0..9:", [int("".join(map(str, encrypt(b"foo", 10, [v // 10, v % 10])))) for v in range(10)])
    k16 = bytes(range(16))
    t = table(k16)
    print("key 000102..0f: table[0..7] =", t[:8], "max =", max(t))
