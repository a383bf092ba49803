#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""kv_bitops_cmp.py HOST PORT REF_PORT [SEED] - BITPOS and BITCOUNT on paste-kv (PORT) against
redis-server (REF_PORT) on the same host: fixed edge cases (missing key, empty string, wrong type,
bad arguments, all-ones and all-zeros strings, ranges from the end, BIT and BYTE units), then 300
random strings with 10 random BITPOS and one BITCOUNT each. Every reply must be byte-identical to
redis-server's; exit 1 on the first difference."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_tool import Conn, fail  # noqa: E402


def raw(c, *args):
    """The reply as it came (errors and integers alike), for an exact comparison."""
    return c.cmd(*[a if isinstance(a, bytes) else str(a).encode() for a in args])


def main(argv):
    if len(argv) < 4 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    host, port, ref = argv[1], int(argv[2]), int(argv[3])
    rnd = random.Random(int(argv[4]) if len(argv) > 4 else 7)
    p, r = Conn(host, port), Conn(host, ref)
    n = 0

    def same(*args):
        nonlocal n
        a, b = raw(p, *args), raw(r, *args)
        n += 1
        if a != b:
            fail("%r: paste-kv replied %r, redis-server %r" % (args, a, b))

    for c in (p, r):
        raw(c, "DEL", "s", "e", "f", "z", "h", "nokey")
        raw(c, "SET", "s", b"\xff\xf0\x00")
        raw(c, "SET", "e", b"")
        raw(c, "SET", "f", b"\xff\xff\xff")
        raw(c, "SET", "z", b"\x00\x00\x01")
        raw(c, "HSET", "h", "a", "b")
    fixed = [("s", 0), ("s", 1), ("s", 1, 2), ("s", 0, 0, 0), ("s", 1, -1), ("s", 0, 1, -1, "bit"),
             ("s", 1, 3, 5, "BIT"), ("s", 1, 100), ("s", 0, 5, 2), ("nokey", 0), ("nokey", 1),
             ("s", 2), ("s", "x"), ("s", 1, 0, 1, "foo"), ("s", 1, 0, 1, "bit", "extra"),
             ("s", 1, "x"), ("e", 0), ("e", 1), ("f", 0), ("f", 0, 0, -1), ("f", 0, 1),
             ("f", 1, 0, -1, "bit"), ("z", 1), ("z", 1, -2, -1, "bit"), ("z", 0, 0, -1, "bit"),
             ("h", 1)]
    for f in fixed:
        same("BITPOS", *f)
    for f in [("s",), ("s", 0), ("s", 0, -1, "bit"), ("s", 1, 1), ("s", 0, 1, "x"), ("s", -1, -3),
              ("e",), ("nokey",), ("h",)]:
        same("BITCOUNT", *f)
    for _ in range(300):
        ln = rnd.choice([1, 2, 3, 5, 17, 64, 300, 3000])
        fill = rnd.choice([0, 0xff, None])
        if fill is None:
            v = bytes(rnd.choice([0, 0xff]) if rnd.random() < 0.8 else rnd.randrange(256)
                      for _ in range(ln))
        else:
            v = bytes([fill]) * ln
        if rnd.random() < 0.5 and ln > 2:
            v = v[:-1] + bytes([rnd.randrange(256)])
        for c in (p, r):
            raw(c, "SET", "bp", v)
        for _ in range(10):
            args = ["BITPOS", "bp", rnd.randrange(2)]
            k = rnd.randrange(4)
            if k >= 1:
                args.append(rnd.randrange(-ln * 9, ln * 9))
            if k >= 2:
                args.append(rnd.randrange(-ln * 9, ln * 9))
            if k >= 3:
                args.append(rnd.choice(["BIT", "BYTE"]))
            same(*args)
        same("BITCOUNT", "bp", rnd.randrange(-ln * 9, ln * 9), rnd.randrange(-ln * 9, ln * 9),
             rnd.choice(["BIT", "BYTE"]))
    print("kv_bitops_cmp: %d BITPOS/BITCOUNT replies identical to redis-server's" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
