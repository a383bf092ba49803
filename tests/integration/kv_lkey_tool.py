#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""kv_lkey_tool.py - paste-kv's large keys (keys longer than a frame), driven over RESP2.

Subcommands:
  func HOST PORT            SET/GET/EXISTS/STRLEN/APPEND/EXPIRE/TTL/PERSIST/RENAME/RENAMENX/COPY/
                            HSET/HGET/HGETALL/DEL/MULTI-EXEC/WATCH/KEYS/SCAN/RANDOMKEY/SELECT with
                            binary keys of 100 B, 2 KiB, 64 KiB and 1 MiB; leaves a known state
  verify HOST PORT          after a restart: the state func left, byte for byte (KEYS included)
  limit HOST PORT MAX       a key of MAX + 1 bytes is refused with the max-key error
  load HOST PORT LOG TAG    crash load on six connections: SETs with keys of 2-70 KiB, SETs with
                            keys of 100 KiB-1 MiB, HSETs on keys of 2-20 KiB; each acknowledgement
                            is logged ("descriptor seq") the moment it is read
  check HOST PORT LOG...    every logged key (or hash field) holds its last acknowledged value or
                            a later one, byte-identical
A key is derived from a short descriptor (the descriptor, '|', then pseudo-random bytes holding CR,
LF and NUL up to its size), so logs stay small.
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_tool import Conn, check, connect_load, fail, load, resp, write_loop  # noqa: E402

SIZES = [100, 2048, 65536, 1 << 20]


def key_for(desc: bytes, size: int) -> bytes:
    h = hashlib.sha256(desc).digest() + hashlib.sha256(desc + b"/2").digest()
    body = (h * (size // len(h) + 1))
    return (desc + b"|" + body)[:size]


def val_for(desc: bytes, seq: int) -> bytes:
    h = hashlib.sha256(desc + b"#%d" % seq).digest()
    return b"%s:%d:" % (desc, seq) + h * (1 + h[0] % 40)


def expect(what, got, want):
    if got != want:
        fail("%s: got %r, want %r" % (what, got if not isinstance(got, bytes) else got[:80],
                                       want if not isinstance(want, bytes) else want[:80]))


def func(host, port):
    c = Conn(host, port, timeout=30.0)
    expect("FLUSHALL", c.cmd(b"FLUSHALL"), b"+OK")
    stored = set()
    for n in SIZES:
        k, k2, k3 = (key_for(b"f:%d:%s" % (n, t), n) for t in (b"a", b"b", b"c"))
        v = val_for(k[:20], n)
        expect("SET %d" % n, c.cmd(b"SET", k, v), b"+OK")
        expect("GET %d" % n, c.cmd(b"GET", k), v)
        expect("EXISTS %d" % n, c.cmd(b"EXISTS", k, k2), 1)
        expect("STRLEN %d" % n, c.cmd(b"STRLEN", k), len(v))
        expect("APPEND %d" % n, c.cmd(b"APPEND", k, b"+x"), len(v) + 2)
        v += b"+x"
        expect("EXPIRE %d" % n, c.cmd(b"EXPIRE", k, 1000), 1)
        ttl = c.cmd(b"TTL", k)
        if not 990 <= ttl <= 1000:
            fail("TTL %d: %r" % (n, ttl))
        expect("PERSIST %d" % n, c.cmd(b"PERSIST", k), 1)
        expect("TTL %d" % n, c.cmd(b"TTL", k), -1)
        # one byte different is another key
        other = k[:-1] + bytes([k[-1] ^ 1])
        expect("GET other %d" % n, c.cmd(b"GET", other), None)
        expect("RENAME %d" % n, c.cmd(b"RENAME", k, k2), b"+OK")
        expect("GET old name %d" % n, c.cmd(b"GET", k), None)
        expect("GET new name %d" % n, c.cmd(b"GET", k2), v)
        expect("RENAMENX %d" % n, c.cmd(b"RENAMENX", k2, k), 1)
        expect("COPY %d" % n, c.cmd(b"COPY", k, k3), 1)
        expect("GET copy %d" % n, c.cmd(b"GET", k3), v)
        expect("DEL copy %d" % n, c.cmd(b"DEL", k3), 1)
        expect("DEL again %d" % n, c.cmd(b"DEL", k3), 0)
        expect("GET deleted %d" % n, c.cmd(b"GET", k3), None)
        hk = key_for(b"h:%d" % n, n)
        expect("HSET %d" % n, c.cmd(b"HSET", hk, b"f1", b"one", b"f2", v), 2)
        expect("HGET %d" % n, c.cmd(b"HGET", hk, b"f2"), v)
        expect("HGETALL %d" % n, sorted(zip(*[iter(c.cmd(b"HGETALL", hk))] * 2)),
               [(b"f1", b"one"), (b"f2", v)])
        expect("TYPE %d" % n, c.cmd(b"TYPE", hk), b"+hash")
        expect("SET hash key %d" % n, c.cmd(b"SET", hk, b"x"), b"+OK")  # the object is replaced
        expect("HSET again %d" % n, c.cmd(b"HSET", hk, b"f3", b"three"), b"-WRONGTYPE Operation "
               b"against a key holding the wrong kind of value")
        expect("DEL hash key %d" % n, c.cmd(b"DEL", hk), 1)
        expect("HSET new %d" % n, c.cmd(b"HSET", hk, b"f3", b"three"), 1)
        mk = key_for(b"m:%d" % n, n)
        c.send(resp(b"MULTI") + resp(b"SET", mk, b"1") + resp(b"INCR", mk) + resp(b"EXEC"))
        expect("MULTI %d" % n, [c.reply() for _ in range(4)],
               [b"+OK", b"+QUEUED", b"+QUEUED", [b"+OK", 2]])
        expect("WATCH %d" % n, c.cmd(b"WATCH", mk), b"+OK")
        c2 = Conn(host, port, timeout=30.0)
        expect("INCR from another client %d" % n, c2.cmd(b"INCR", mk), 3)
        c2.close()
        c.send(resp(b"MULTI") + resp(b"INCR", mk) + resp(b"EXEC"))
        expect("EXEC after WATCH %d" % n, [c.reply() for _ in range(3)],
               [b"+OK", b"+QUEUED", None])
        expect("SELECT 3", c.cmd(b"SELECT", 3), b"+OK")
        dk = key_for(b"d:%d" % n, n)
        expect("SET db3 %d" % n, c.cmd(b"SET", dk, b"in3"), b"+OK")
        expect("KEYS db3 %d" % n, c.cmd(b"KEYS", b"d:%d*" % n), [dk])
        expect("SELECT 0", c.cmd(b"SELECT", 0), b"+OK")
        expect("GET db3 key in db0 %d" % n, c.cmd(b"GET", dk), None)
        stored |= {k, hk, mk}
    want = sorted(stored)
    expect("KEYS", sorted(c.cmd(b"KEYS", b"*")), want)
    expect("KEYS pattern", sorted(c.cmd(b"KEYS", b"f:65536:a|*")), [key_for(b"f:65536:a", 65536)])
    seen, cur = set(), b"0"
    while True:
        cur, keys = c.cmd(b"SCAN", cur, b"COUNT", 3)
        seen |= set(keys)
        if cur == b"0":
            break
    expect("SCAN", sorted(seen), want)
    if c.cmd(b"RANDOMKEY") not in stored:
        fail("RANDOMKEY returned a key that is not stored")
    expect("DBSIZE", c.cmd(b"DBSIZE"), len(stored))
    c.close()
    print("kv_lkey_tool: func: %d keys of %s bytes: every command right" % (len(stored), SIZES))


def verify(host, port):
    c = Conn(host, port, timeout=30.0)
    stored = set()
    for n in SIZES:
        k = key_for(b"f:%d:a" % n, n)
        hk, mk = key_for(b"h:%d" % n, n), key_for(b"m:%d" % n, n)
        expect("GET %d" % n, c.cmd(b"GET", k), val_for(k[:20], n) + b"+x")
        expect("HGETALL %d" % n, c.cmd(b"HGETALL", hk), [b"f3", b"three"])
        expect("GET %d" % n, c.cmd(b"GET", mk), b"3")
        expect("GET renamed %d" % n, c.cmd(b"GET", key_for(b"f:%d:b" % n, n)), None)
        stored |= {k, hk, mk}
    expect("KEYS", sorted(c.cmd(b"KEYS", b"*")), sorted(stored))
    expect("SELECT 3", c.cmd(b"SELECT", 3), b"+OK")
    expect("DBSIZE 3", c.cmd(b"DBSIZE"), len(SIZES))
    c.close()
    print("kv_lkey_tool: verify: %d keys and db 3's %d byte-identical" % (len(stored), len(SIZES)))


def limit(host, port, mx):
    c = Conn(host, port, timeout=30.0)
    expect("SET over max-key", c.cmd(b"SET", b"k" * (mx + 1), b"v"),
           b"-ERR key exceeds maximum allowed size (max-key %d)" % mx)
    expect("SET at max-key", c.cmd(b"SET", b"k" * mx, b"v"), b"+OK")
    expect("GET at max-key", c.cmd(b"GET", b"k" * mx), b"v")
    c.close()
    print("kv_lkey_tool: limit: a key of %d bytes refused, of %d stored" % (mx + 1, mx))


# ---- crash load and check -------------------------------------------------------------------------


def desc_size(desc: bytes) -> int:
    h = hashlib.sha256(desc).digest()
    r = h[0] | h[1] << 8 | h[2] << 16
    kind = desc.split(b":", 1)[0]
    if kind == b"lb":
        return 100000 + r % ((1 << 20) - 100000 + 1)
    if kind == b"lh":
        return 2048 + r % 18000
    return 2048 + r % 70000


def write_cmd(desc, seq):
    if b"#" in desc:
        h, f = desc.split(b"#", 1)
        return resp(b"HSET", key_for(h, desc_size(h)), f, val_for(desc, seq))
    return resp(b"SET", key_for(desc, desc_size(desc)), val_for(desc, seq))


def load_conn(host, port, tag, ci, log, lock, counts):
    c = connect_load(host, port, ci, 10.0, who="kv_lkey_tool")  # generous: ASan, a loaded machine
    if not c:
        return
    kind = ci % 3  # 0: keys of 2-70 KiB, 1: keys of 100 KiB-1 MiB, 2: HSET on keys of 2-20 KiB
    depth, keys = [(8, 60), (2, 6), (8, 40)][kind]
    write_loop(c, ci, log, lock, counts, depth, keys,
               lambda i: (b"lb:%s:%d:%d" % (tag, ci, i) if kind == 1 else
                          b"lh:%s:%d:%d#f%d" % (tag, ci, i % 4, i) if kind == 2 else
                          b"ls:%s:%d:%d" % (tag, ci, i)),
               write=write_cmd, who="kv_lkey_tool")


def read_desc(c, d):
    """The value logged under descriptor @d: GET of its key, or HGET of "key#field"."""
    if b"#" in d:
        h, f = d.split(b"#", 1)
        return c.cmd(b"HGET", key_for(h, desc_size(h)), f)
    return c.cmd(b"GET", key_for(d, desc_size(d)))


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    op, a = argv[1], argv[2:]
    if op == "func":
        func(a[0], int(a[1]))
    elif op == "verify":
        verify(a[0], int(a[1]))
    elif op == "limit":
        limit(a[0], int(a[1]), int(a[2]))
    elif op == "load":
        load(a[0], int(a[1]), a[2], a[3].encode(), conns=6, conn_fn=load_conn,
             what="large-key writes")
    elif op == "check":
        for path in a[2:]:
            check(a[0], int(a[1]), path, read=read_desc, value=val_for,
                  what="large keys and fields")
    else:
        print("kv_lkey_tool: unknown subcommand %r (see --help)" % op, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
