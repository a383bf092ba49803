#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""kv_sort_cmp.py HOST PORT REF_PORT [SEED] - SORT and SORT_RO on paste-kv (PORT) against
redis-server (REF_PORT) on the same host: edge cases (missing key, wrong type, values that are not
numbers, STORE of an empty result deleting the destination, LIMIT out of range, BY nosort on a
list with DESC), then 200 random lists and sets of numbers and words sorted with random ASC/DESC,
ALPHA, LIMIT, BY and GET patterns over weight keys, and STORE (the stored list read back). Every
reply must be byte-identical to redis-server's; exit 1 on the first difference."""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_tool import Conn, fail  # noqa: E402


def main(argv):
    if len(argv) < 4 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    host, port, ref = argv[1], int(argv[2]), int(argv[3])
    rnd = random.Random(int(argv[4]) if len(argv) > 4 else 7)
    p, r = Conn(host, port), Conn(host, ref)
    n = 0

    def both(*args):
        return [c.cmd(*[a if isinstance(a, bytes) else str(a).encode() for a in args])
                for c in (p, r)]

    def same(*args):
        nonlocal n
        a, b = both(*args)
        n += 1
        if a != b:
            fail("%r: paste-kv replied %r, redis-server %r" % (args, a, b))

    both("FLUSHALL")
    both("RPUSH", "l", 3, 1, 2, 10, "-1.5", "1e3", 2)
    both("RPUSH", "words", "pear", "apple", "fig", "")
    both("SET", "str", "x")
    both("MSET", "w_1", 30, "w_2", 20, "w_3", 10, "o_1", "one", "o_2", "two")
    for args in (["SORT", "l"], ["SORT", "l", "DESC"], ["SORT", "l", "LIMIT", 2, 3],
                 ["SORT", "l", "LIMIT", 10, 5], ["SORT", "l", "LIMIT", -1, 2],
                 ["SORT", "l", "LIMIT", 1, -1], ["SORT", "words"], ["SORT", "words", "ALPHA"],
                 ["SORT", "words", "ALPHA", "DESC"], ["SORT", "nothere"], ["SORT", "str"],
                 ["SORT", "l", "BY", "nosort"], ["SORT", "l", "BY", "nosort", "DESC"],
                 ["SORT", "l", "BY", "w_*"], ["SORT", "l", "BY", "w_*", "GET", "o_*", "GET", "#"],
                 ["SORT", "l", "BY", "w_*", "ALPHA"], ["SORT", "l", "BOGUS"],
                 ["SORT_RO", "l", "DESC"], ["SORT_RO", "l", "STORE", "x"],
                 ["SORT", "l", "STORE", "dst"], ["LRANGE", "dst", 0, -1],
                 ["SORT", "nothere", "STORE", "dst"], ["EXISTS", "dst"],
                 ["SORT", "words", "STORE", "dst"], ["EXISTS", "dst"],
                 ["SORT", "l", "GET", "o_*", "STORE", "dst"], ["LRANGE", "dst", 0, -1],
                 ["TYPE", "dst"]):
        same(*args)
    for i in range(200):
        kind = rnd.choice(["RPUSH", "SADD"])
        words = rnd.random() < 0.4
        els = [rnd.choice(["a", "b", "zz", "q%d" % rnd.randint(0, 9), ""]) if words
               else str(rnd.choice([rnd.randint(-50, 50), round(rnd.uniform(-5, 5), 3)]))
               for _ in range(rnd.randint(1, 12))]
        both("DEL", "k")
        both(kind, "k", *els)
        for e in set(els):
            if rnd.random() < 0.7:
                both("SET", "w_" + e, rnd.randint(0, 5))
            both("SET", "g_" + e, "G" + e)
        args = ["SORT", "k"]
        if words:
            args.append("ALPHA")
        if rnd.random() < 0.3 and not words:  # ALPHA BY leaves equal weights unordered
            args += ["BY", "w_*"]
        if rnd.random() < 0.3:
            args += ["LIMIT", rnd.randint(-1, 5), rnd.randint(-1, 6)]
        if rnd.random() < 0.5:
            args.append(rnd.choice(["ASC", "DESC"]))
        if rnd.random() < 0.3:
            args += ["GET", "#", "GET", "g_*", "GET", "nokey_*"]
        if rnd.random() < 0.3:
            same(*(args + ["STORE", "dst"]))
            same("LRANGE", "dst", 0, -1)
        else:
            same(*args)
        for e in set(els):
            both("DEL", "w_" + e, "g_" + e)
    p.close()
    r.close()
    print("kv_sort_cmp: %d SORT replies identical to redis-server's" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
