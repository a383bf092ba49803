#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""kv_repl_tool.py - the client side of test_kv_primary.sh (paste-kv as a replication primary).

Subcommands:
  fill HOST PORT TAG        writes keys of every kind paste-kv has, tagged TAG: binary strings,
                            strings of 2-300 KB (many frames), hashes (one field value of 200 KB),
                            sets, lists, sorted sets, keys with expiries (EX, PX, SETEX, EXPIRE,
                            GETEX), INCRBYFLOAT, SPOP, MULTI/EXEC, a key in database 3, and keys
                            that expire 300 ms later (the replica must lose them too)
  compare H1 P1 H2 P2       databases 0 and 3 of both servers hold the same keys, each of the same
                            type, with byte-identical contents and the same PEXPIRETIME
 churn HOST PORT N SECONDS  makes N keys "c:i" (strings of 20-200 bytes), 20 hashes "ch:i" and
                            N/4 counters "cn:i", then for SECONDS changes them in random order -
                            APPEND, HSET of a new field, INCR: writes that are wrong if applied
                            twice or missed - pipelined, and prints how many it made
  digest HOST PORT          one line: the number of keys of databases 0 and 3 and a SHA-256 of
                            their names, types, contents and expiry times
  load HOST PORT LOG N      pipelined SETs of 50 keys, then WAIT N 2000, over and over; the writes
                            of a batch that WAIT reports on N replicas are appended to LOG
                            ("key seq") then; runs until the connection fails (primary killed)
  check HOST PORT LOG       every key in LOG holds its last WAIT-acknowledged value or a later one
"""
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_tool import Conn, fail, resp  # noqa: E402


def blob(tag: bytes, n: int) -> bytes:
    h = hashlib.sha256(tag).digest()
    return (h + b"\r\n\0" + h[::-1]) * (n // 67 + 1)


def fill(host, port, tag):
    c = Conn(host, int(port))
    t = tag.encode()

    def ok(*a):
        r = c.cmd(*a)
        if isinstance(r, bytes) and r.startswith(b"-"):
            fail("%r -> %r" % (a, r))
        return r

    for i in range(40):
        n = [0, 1, 17, 511, 1460, 2047, 2048, 4095, 9000][i % 9]
        ok(b"SET", b"s:%s:%d" % (t, i), blob(b"%s%d" % (t, i), n)[:n])
    for i in range(6):  # larger than a frame: a list of pieces on the primary
        n = 2048 + i * 60000
        ok(b"SET", b"big:%s:%d" % (t, i), blob(b"big%s%d" % (t, i), n)[:n])
    for h in range(5):
        args = [b"HSET", b"h:%s:%d" % (t, h)]
        for f in range(20):
            args += [b"f%d" % f, blob(b"%s%d%d" % (t, h, f), f * 13)[: f * 13]]
        ok(*args)
    ok(b"HSET", b"h:%s:0" % t, b"bigfield", blob(b"bf" + t, 200000)[:200000])
    ok(b"HINCRBYFLOAT", b"h:%s:1" % t, b"flt", b"2.5")
    ok(b"SADD", b"set:%s" % t, b"a", b"b", b"c", b"d", b"e")
    ok(b"SPOP", b"set:%s" % t)
    ok(b"RPUSH", b"list:%s" % t, b"x", b"y", b"z")
    ok(b"LPUSH", b"list:%s" % t, b"w")
    ok(b"ZADD", b"z:%s" % t, b"1.5", b"a", b"-2", b"b", b"3e3", b"c")
    ok(b"SET", b"ex:%s:1" % t, b"v", b"EX", b"1000")
    ok(b"SET", b"ex:%s:2" % t, b"v", b"PX", b"900000")
    ok(b"SETEX", b"ex:%s:3" % t, b"800", b"v")
    ok(b"SET", b"ex:%s:4" % t, b"v")
    ok(b"EXPIRE", b"ex:%s:4" % t, b"700")
    ok(b"SET", b"ex:%s:5" % t, b"v")
    ok(b"GETEX", b"ex:%s:5" % t, b"PX", b"600000")
    ok(b"SET", b"gone:%s" % t, b"v", b"PX", b"300")
    ok(b"INCRBYFLOAT", b"fl:%s" % t, b"1.25")
    ok(b"INCRBYFLOAT", b"fl:%s" % t, b"0.1")
    ok(b"MULTI")
    ok(b"SET", b"tx:%s:1" % t, b"one")
    ok(b"INCR", b"tx:%s:2" % t)
    ok(b"APPEND", b"tx:%s:1" % t, b"+two")
    if c.cmd(b"EXEC") is None:
        fail("EXEC aborted")
    ok(b"SELECT", b"3")
    ok(b"SET", b"db3:%s" % t, b"three")
    ok(b"SELECT", b"0")
    ok(b"DEL", b"s:%s:0" % t)
    time.sleep(0.5)
    if c.cmd(b"EXISTS", b"gone:%s" % t) != 0:  # expires on the primary: DEL to the replicas
        fail("gone:%s did not expire" % tag)
    c.close()


READ = {b"+string": [b"GET"], b"+hash": [b"HGETALL"], b"+set": [b"SMEMBERS"],
        b"+list": [b"LRANGE", b"0", b"-1"], b"+zset": [b"ZRANGE", b"0", b"-1", b"WITHSCORES"]}


def norm(t, v):
    if t == b"+hash":
        return sorted(zip(v[0::2], v[1::2]))
    if t == b"+set":
        return sorted(v)
    if t == b"+zset":
        return [(m, float(s)) for m, s in zip(v[0::2], v[1::2])]
    return v


def contents_many(c, keys):
    """[(type, contents, pexpiretime)] of each of @keys, pipelined 500 keys at a time."""
    out = []
    for at in range(0, len(keys), 500):
        ks = keys[at:at + 500]
        c.send(b"".join(resp(b"TYPE", k) for k in ks))
        types = [c.reply() for _ in ks]
        cmds = []
        for k, t in zip(ks, types):
            r = READ.get(t, [b"EXISTS"])
            cmds.append(resp(r[0], k, *r[1:]))
            cmds.append(resp(b"PEXPIRETIME", k))
        c.send(b"".join(cmds))
        for t in types:
            v = c.reply()
            out.append((t, norm(t, v), c.reply()))
    return out


def digest(host, port):
    c = Conn(host, int(port))
    h = hashlib.sha256()
    n = 0
    for db in (b"0", b"3"):
        c.cmd(b"SELECT", db)
        ks = sorted(c.cmd(b"KEYS", b"*"))
        for k, x in zip(ks, contents_many(c, ks)):
            h.update(repr((db, k, x)).encode())
        n += len(ks)
    print("keys=%d sha256=%s" % (n, h.hexdigest()))


def churn(host, port, n, seconds):
    import random
    c = Conn(host, int(port), timeout=30)
    n = int(n)
    rnd = random.Random(7)

    def pipe(cmds):
        c.send(b"".join(cmds))
        for _ in cmds:
            r = c.reply()
            if isinstance(r, bytes) and r.startswith(b"-"):
                fail("churn: %r" % r)

    for at in range(0, n, 1000):
        pipe([b"*3\r\n$3\r\nSET\r\n$%d\r\nc:%d\r\n$%d\r\n%s\r\n"
              % (len(b"c:%d" % i), i, 20 + i % 180, b"v" * (20 + i % 180))
              for i in range(at, min(n, at + 1000))])
    pipe([b"*4\r\n$4\r\nHSET\r\n$%d\r\nch:%d\r\n$2\r\nf0\r\n$1\r\n0\r\n"
          % (len(b"ch:%d" % i), i) for i in range(20)])
    print("churn: %d keys made" % (n + 20), flush=True)
    end = time.time() + float(seconds)
    made = 0
    while time.time() < end:
        cmds = []
        for _ in range(200):
            i = rnd.randrange(n)
            k = rnd.randrange(3)
            if k == 0:
                cmds.append(b"*3\r\n$6\r\nAPPEND\r\n$%d\r\nc:%d\r\n$1\r\n+\r\n"
                            % (len(b"c:%d" % i), i))
            elif k == 1:
                j = i % 20
                f = b"f%d" % made
                cmds.append(b"*4\r\n$4\r\nHSET\r\n$%d\r\nch:%d\r\n$%d\r\n%s\r\n$1\r\n1\r\n"
                            % (len(b"ch:%d" % j), j, len(f), f))
            else:
                j = i // 4
                cmds.append(b"*2\r\n$4\r\nINCR\r\n$%d\r\ncn:%d\r\n" % (len(b"cn:%d" % j), j))
            made += 1
        pipe(cmds)
        time.sleep(0.005)  # about 30k changes a second: the test compares them all after
    print("churn: %d changes" % made)


def compare(h1, p1, h2, p2):
    a, b = Conn(h1, int(p1)), Conn(h2, int(p2))
    total = 0
    for db in (b"0", b"3"):
        a.cmd(b"SELECT", db)
        b.cmd(b"SELECT", db)
        ka, kb = sorted(a.cmd(b"KEYS", b"*")), sorted(b.cmd(b"KEYS", b"*"))
        if ka != kb:
            fail("db %s: keys differ: only on the first %r, only on the second %r"
                 % (db, sorted(set(ka) - set(kb))[:10], sorted(set(kb) - set(ka))[:10]))
        for k, x, y in zip(ka, contents_many(a, ka), contents_many(b, kb)):
            if x != y:
                fail("db %s key %r differs: %r ... vs %r ..." % (db, k, repr(x)[:200], repr(y)[:200]))
        total += len(ka)
    print("compare: %d keys identical" % total)


def load(host, port, log, nrep):
    c = Conn(host, int(port), timeout=30)
    out = open(log, "a")
    seq = 0
    try:
        while True:
            batch = []
            data = []
            for _ in range(50):
                seq += 1
                k = b"w:%d" % (seq % 400)
                batch.append((k, seq))
                data.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                            % (len(k), k, len(b"%d" % seq), b"%d" % seq))
            data.append(b"*3\r\n$4\r\nWAIT\r\n$1\r\n%s\r\n$4\r\n2000\r\n" % nrep.encode())
            c.send(b"".join(data))
            for _ in batch:
                if c.reply() != b"+OK":
                    fail("SET not acknowledged")
            if c.reply() >= int(nrep):
                out.write("".join("%s %d\n" % (k.decode(), s) for k, s in batch))
                out.flush()
    except (ConnectionError, OSError):
        pass


def check(host, port, log):
    last = {}
    for line in open(log):
        k, s = line.split()
        last[k] = max(last.get(k, 0), int(s))
    if not last:
        fail("no write was acknowledged by WAIT")
    c = Conn(host, int(port))
    for k, s in last.items():
        v = c.cmd(b"GET", k.encode())
        if v is None or int(v) < s:
            fail("%s holds %r, WAIT acknowledged %d" % (k, v, s))
    print("check: %d keys hold their WAIT-acknowledged write or a later one" % len(last))


def main():
    cmds = {"fill": (fill, 3), "compare": (compare, 4), "digest": (digest, 2), "churn": (churn, 4), "load": (load, 4), "check": (check, 3)}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds or len(sys.argv) != cmds[sys.argv[1]][1] + 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmds[sys.argv[1]][0](*sys.argv[2:])


if __name__ == "__main__":
    main()
