#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""kv_tool.py - the client side of paste-kv's integration tests (a raw RESP2 client, stdlib only).

Subcommands:
  gen-pipe N SEED            RESP for N SETs of deterministic keys/values, for `redis-cli --pipe`
  verify HOST PORT N SEED    read those N keys back (pipelined GETs): byte-identical, or exit 1
  badinput HOST PORT         malformed RESP and abrupt disconnects, each on its own connection,
                             while a second connection keeps doing SET/GET: the server must answer
                             the bad ones as Redis does, and keep serving the good one
  load HOST PORT LOG TAG [CONNS]
                             crash-test load on CONNS connections (default 8): pipelined SETs of
                             values up to 1500 bytes, SETs of large values (keys "big:...", 2 KB to
                             300 KB: many frames each) and HSETs (keys "hash:...#field": HSET hash
                             field); every key contains TAG (a "{tag}" puts all of them on one
                             paste-kv --queues worker); every +OK or :N is appended to LOG ("key
                             seq") the moment it is read; runs until the connections fail (server
                             killed) or SIGTERM
  check HOST PORT LOG...     after a restart: every key (or hash field) in LOG holds its last
                             acknowledged value or a later one, byte-identical to what was sent
Values are binary (they contain CR, LF and NUL) and of varying length, so they arrive split over
segments as often as not.
"""
import hashlib
import os
import signal
import socket
import sys
import threading
import time


def value_for(key: bytes, seq: int) -> bytes:
    """The value written for (key, seq): a readable prefix, then pseudo-random bytes."""
    h = hashlib.sha256(key + b"/%d" % seq).digest()
    n = (h[0] | h[1] << 8) % 1500
    if key.startswith(b"big:"):  # larger than a frame: stored as a list of pieces
        n = 2048 + (h[0] | h[1] << 8 | h[2] << 16) % 300000
    body = (h * (n // 32 + 1))[:n]
    return b"%s:%d:" % (key, seq) + body


def pipe_key(i: int, seed: int) -> bytes:
    return b"pipe:%d:%d" % (seed, i)


def pipe_value(i: int, seed: int) -> bytes:
    if i % 97 == 0:
        return b""  # empty strings are values too
    return value_for(pipe_key(i, seed), 0)[: 1 + i % 400]


def resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """A blocking RESP2 connection with a reply reader."""

    def __init__(self, host, port, timeout=10.0):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def send(self, data: bytes):
        self.s.sendall(data)

    def _fill(self):
        chunk = self.s.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return line  # status and error lines are returned whole ("+OK", "-ERR ...")
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data = bytes(self.buf[:n])
            if self.buf[n : n + 2] != b"\r\n":
                raise ValueError("bulk reply not followed by CRLF")
            del self.buf[: n + 2]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("bad reply line %r" % line)

    def cmd(self, *args):
        self.send(resp(*[a if isinstance(a, bytes) else str(a).encode() for a in args]))
        return self.reply()

    def closed_by_server(self, wait=5.0) -> bool:
        self.s.settimeout(wait)
        try:
            while True:
                if not self.s.recv(4096):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def fail(msg):
    print("kv_tool: FAIL: %s" % msg, file=sys.stderr)
    sys.exit(1)


# ---- gen-pipe / verify --------------------------------------------------------------------------


def gen_pipe(n, seed):
    out = sys.stdout.buffer
    for i in range(n):
        out.write(resp(b"SET", pipe_key(i, seed), pipe_value(i, seed)))
    out.flush()


def verify(host, port, n, seed, batch=500):
    c = Conn(host, port)
    bad = 0
    for start in range(0, n, batch):
        idx = range(start, min(n, start + batch))
        c.send(b"".join(resp(b"GET", pipe_key(i, seed)) for i in idx))
        for i in idx:
            v = c.reply()
            if v != pipe_value(i, seed):
                bad += 1
                if bad <= 5:
                    print("kv_tool: key %r: got %r, want %r" % (pipe_key(i, seed), v and v[:60],
                          pipe_value(i, seed)[:60]), file=sys.stderr)
    c.close()
    if bad:
        fail("%d of %d values differ" % (bad, n))
    print("kv_tool: verify: %d values byte-identical" % n)


# ---- bad input ------------------------------------------------------------------------------------

ERR_MB = b"-ERR Protocol error: invalid multibulk length"
ERR_BULK = b"-ERR Protocol error: invalid bulk length"
ERR_CRLF = b"-ERR Protocol error: bulk data not followed by CRLF"

# (name, bytes, expected reply line or None, server closes?)
BAD_INPUTS = [
    ("bad multibulk length", b"*abc\r\n", ERR_MB, True),
    ("negative bulk length", b"*1\r\n$-5\r\n", ERR_BULK, True),
    ("bulk claim over 512 MiB", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n", ERR_BULK, True),
    ("huge multibulk count", b"*99999999\r\n", ERR_MB, True),
    ("missing CRLF after bulk", b"*2\r\n$3\r\nGET\r\n$1\r\nkXY\r\n", ERR_CRLF, True),
    ("LF only in header", b"*1\n$4\nPING\n", ERR_MB, True),
    ("leading zero length", b"*1\r\n$04\r\nPING\r\n", ERR_BULK, True),
    ("nested array", b"*1\r\n" * 5000 + b"$4\r\nPING\r\n",
     b"-ERR Protocol error: expected '$', got '*'", True),
    ("integer where bulk expected", b"*2\r\n$3\r\nGET\r\n:5\r\n",
     b"-ERR Protocol error: expected '$', got ':'", True),
    ("unbalanced quotes inline", b'SET "k v\r\n',
     b"-ERR Protocol error: unbalanced quotes in request", True),
    ("too big inline", b"x" * 70000, b"-ERR Protocol error: too big inline request", True),
    ("value of 5000 bytes (several frames)", resp(b"SET", b"big", b"v" * 5000), b"+OK", False),
    ("value of 300 KB (kept as it streams in)", resp(b"SET", b"big", b"v" * 300000), b"+OK",
     False),
    ("request of 100 KB (MSET)",
     resp(b"MSET", *[b"k%d" % (i // 2) if i % 2 == 0 else b"v" * 1000 for i in range(200)]),
     b"+OK", False),
    ("unknown command", resp(b"FOO", b"a", b"b"),
     b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' ", False),
    ("wrong arity", resp(b"GET"), b"-ERR wrong number of arguments for 'get' command", False),
    ("select 16", resp(b"SELECT", b"16"), b"-ERR DB index is out of range", False),
]


def check_good(good, n):
    """The good connection still works: a SET and GET round trip."""
    v = value_for(b"good", n)
    if good.cmd(b"SET", b"good", v) != b"+OK" or good.cmd(b"GET", b"good") != v:
        fail("the good connection stopped working after bad input #%d" % n)


def badinput(host, port):
    good = Conn(host, port)
    sentinel = [(b"sentinel:%d" % i, value_for(b"sentinel", i)) for i in range(50)]
    for k, v in sentinel:
        if good.cmd(b"SET", k, v) != b"+OK":
            fail("sentinel SET failed")
    n = 0
    for name, data, want, closes in BAD_INPUTS:
        c = Conn(host, port)
        c.send(data)
        try:
            line = c._line()
        except (ConnectionError, OSError) as e:
            fail("%s: no reply (%s)" % (name, e))
        if not line.startswith(want):
            fail("%s: got %r, want %r" % (name, line[:120], want))
        if closes and not c.closed_by_server():
            fail("%s: the server did not close the connection" % name)
        if not closes and c.cmd(b"PING") != b"+PONG":
            fail("%s: the connection is not usable after the error" % name)
        c.close()
        print("kv_tool: bad input ok: %s -> %s%s" % (name, line[:70].decode(errors="replace"),
              " (closed)" if closes else ""))
        n += 1
        check_good(good, n)
    # abrupt disconnects: mid-header, mid-value, with RST, with pipelined requests unread
    aborts = [
        b"*3\r\n$3\r\nSET\r\n$1",
        resp(b"SET", b"sentinel:0", b"X" * 1800)[:-700],
        b"".join(resp(b"SET", b"abrupt:%d" % i, b"y" * 1000) for i in range(500)),
        b"".join(resp(b"GET", b"sentinel:1") for _ in range(5000)),
    ]
    for i, data in enumerate(aborts):
        for rst in (False, True):
            c = Conn(host, port)
            c.send(data)
            if rst:
                c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
            n += 1
            check_good(good, n)
    print("kv_tool: abrupt disconnects ok (%d)" % (len(aborts) * 2))
    time.sleep(0.5)
    for k, v in sentinel:
        got = good.cmd(b"GET", k)
        if got != v:
            fail("sentinel %r corrupted: %r" % (k, got and got[:40]))
    good.close()
    print("kv_tool: badinput: %d cases, server kept serving, sentinels intact" % n)


# ---- crash load and check -------------------------------------------------------------------------

STOP = threading.Event()


def write_cmd(k, s):
    """SET k v, or HSET hash field v for a key "hash:...#field"."""
    if b"#" in k:
        h, f = k.split(b"#", 1)
        return resp(b"HSET", h, f, value_for(k, s))
    return resp(b"SET", k, value_for(k, s))


def connect_load(host, port, ci, timeout, who="kv_tool", within=30.0):
    """A load connection, trying again for @within seconds (a loaded machine, a server that just
    started); None, said on stderr, if it cannot be made."""
    t0 = time.monotonic()
    while True:
        try:
            return Conn(host, port, timeout=timeout)
        except OSError as e:
            if STOP.is_set() or time.monotonic() - t0 > within:
                print("%s: load: connection %d: cannot connect: %s" % (who, ci, e),
                      file=sys.stderr)
                return None
            time.sleep(0.2)


def load_conn(host, port, tag, ci, log, lock, counts, depth=16, keys=200):
    c = connect_load(host, port, ci, 3.0)
    if not c:
        return
    kind = ci % 3  # 0: small SETs, 1: large SETs, 2: HSETs
    if kind == 1:
        depth, keys = 4, 40
    write_loop(c, ci, log, lock, counts, depth, keys,
               lambda i: (b"big:%s:%d:%d" % (tag, ci, i) if kind == 1 else
                          b"hash:%s:%d#f%d" % (tag, ci, i) if kind == 2 else
                          b"crash:%s:%d:%d" % (tag, ci, i)))


def write_loop(c, ci, log, lock, counts, depth, keys, name, write=write_cmd, who="kv_tool"):
    """On connection @c (closed at the end): batches of @depth pipelined writes (write(key, seq))
    of the keys name(i), i cycling over @keys, until STOP or the connection fails; every
    acknowledgement is logged ("key seq") the moment it is read."""
    seq = 0
    try:
        while not STOP.is_set():
            batch = []
            for _ in range(depth):
                seq += 1
                batch.append((name((seq * 7) % keys), seq))
            c.send(b"".join(write(k, s) for k, s in batch))
            for k, s in batch:
                r = c.reply()
                if r != b"+OK" and not (b"#" in k and r in (0, 1)):
                    raise ValueError("write %r: %r" % (k, r))
                with lock:
                    log.write(b"%s %d\n" % (k, s))
                    log.flush()
                    counts[0] += 1
    except ValueError as e:  # a wrong reply: reported (the check decides what it means)
        print("%s: load: connection %d stopped: %s" % (who, ci, e), file=sys.stderr)
    except (OSError, ConnectionError) as e:  # the server was killed, or stalled
        if not counts[0]:  # before any acknowledgement: say why
            print("%s: load: connection %d ended after %d writes sent: %s" % (who, ci, seq, e),
                  file=sys.stderr)
    finally:
        c.close()


def load(host, port, logpath, tag, conns=8, conn_fn=None, what="writes"):
    """@conns threads of @conn_fn (default load_conn) until they end or SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *a: STOP.set())
    lock = threading.Lock()
    counts = [0]
    with open(logpath, "wb", buffering=0) as log:
        ts = [threading.Thread(target=conn_fn or load_conn,
                               args=(host, port, tag, i, log, lock, counts))
              for i in range(conns)]
        for t in ts:
            t.start()
        for t in ts:
            while t.is_alive():
                t.join(0.2)
    print("kv_tool: load: %d %s acknowledged" % (counts[0], what))


def read_key(c, k):
    """The value of key k, or of hash field f for a key "hash#f"."""
    return c.cmd(b"HGET", *k.split(b"#", 1)) if b"#" in k else c.cmd(b"GET", k)


def check(host, port, logpath, read=read_key, value=value_for, what="keys"):
    """Every logged key (read(c, key)) holds its last acknowledged value or a later one."""
    last = {}
    with open(logpath, "rb") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:  # a torn last line (client killed mid-write) is ignored
                k, s = parts[0], int(parts[1])
                last[k] = max(s, last.get(k, 0))
    c = Conn(host, port)
    later = 0
    for k, s in last.items():
        v = read(c, k)
        if v is None:
            fail("key %r: acknowledged seq %d, but the key is gone" % (k, s))
        try:
            if not v.startswith(k + b":"):
                raise ValueError
            got = int(v[len(k) + 1 :].split(b":", 1)[0])
        except ValueError:
            fail("key %r: value is not one the client wrote: %r" % (k, v[:60]))
        if got < s:
            fail("key %r: acknowledged seq %d, found older seq %d" % (k, s, got))
        if v != value(k, got):
            fail("key %r: value for seq %d is not byte-identical" % (k, got))
        later += got > s
    c.close()
    if not last:
        fail("the load acknowledged nothing: the kill came too early")
    print("kv_tool: check: %d %s hold their last acknowledged value (%d a later one)" %
          (len(last), what, later))


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    op, a = argv[1], argv[2:]
    if op == "gen-pipe":
        gen_pipe(int(a[0]), int(a[1]))
    elif op == "verify":
        verify(a[0], int(a[1]), int(a[2]), int(a[3]))
    elif op == "badinput":
        badinput(a[0], int(a[1]))
    elif op == "load":
        load(a[0], int(a[1]), a[2], a[3].encode(), int(a[4]) if len(a) > 4 else 8)
    elif op == "check":
        for path in a[2:]:
            check(a[0], int(a[1]), path)
    else:
        print("kv_tool: unknown subcommand %r (see --help)" % op, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
