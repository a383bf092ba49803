#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""wal_client.py - the test client of paste-wal's integration tests (Python 3 standard library only).

Subcommands (each prints one summary line "wal_client: <cmd> key=value ..." and exits 0 on success,
1 on a failed check, 2 on a usage error):

  pipeline   N POSTs and GETs written in one burst on one connection; the replies must come back
             complete and in order (201s with increasing seqs, then each record's bytes).
  load       C connections, each with up to D pipelined POSTs in flight, for S seconds or until
             --stop-file exists (whichever comes first; the POSTs in flight are still awaited). For
             every 201 one line "seq conn idx len" is appended to --ack-file and flushed at once,
             so the file lists exactly what the server acknowledged, whatever happens to it. A
             server that goes away (EOF, reset, or no reply for --stall seconds) ends a connection
             normally: this is the load of the kill -9 test.
  verify     read the whole log back over HTTP (GET ?from=&limit= ranges) and check: every acked
             seq present and byte-identical, every record a valid payload (no record with content
             never sent), sequence numbers dense.
             With --sparse (paste-wal --queues N: each worker's seqs step by N) the seqs must
             increase, not be dense.
  getall     GET /log/<seq> of every acked record, a new connection every --per-conn requests
             (with --queues N each connection may land on another worker); byte-identical.
  verify-dump  the same checks on paste-wal-dump's output (--listing: its record lines, --raw: the
             payloads back to back); with --follow while the dump still writes them (--raw a FIFO),
             so that dump and check run at once (wal_lib.sh dump_stream).
  readloop   while --stop-file is absent (and until --min-gets GETs were answered): GET /log/<seq> of a random acked record (re-reading the
             ack file as it grows; with --mod Q --rem K only seqs with seq % Q == K), one
             connection each. A reply must be 200 with the record's bytes; a connection that fails
             (its worker was killed) is counted, not a failure; a 404 or other bytes are. Run it
             beside a load and a kill.
  badinput   malformed request lines, huge heads, bad Content-Length, chunked bodies, a
             slowloris trickle, a reset mid-body, Expect: 100-continue; each must get its status
             (or close) while the server keeps serving; run it beside a load client.

Payloads are a pure function of (seed, conn, idx, len) and start with a header naming them
("WAL1 seed conn idx len\\n"), so any record found in the log can be regenerated and compared.
"""
import argparse
import json
import os
import queue
import random
import selectors
import socket
import struct
import sys
import threading
import time

MIN_LEN = 64


# ---- payloads -------------------------------------------------------------------------------

def payload(seed, conn, idx, length):
    hdr = b"WAL1 %d %d %d %d\n" % (seed, conn, idx, length)
    rng = random.Random((seed * 1000003 + conn) * 1000003 + idx)
    return hdr + rng.randbytes(length - len(hdr))


def payload_len(rng, max_size):
    r = rng.random()
    if r < 0.80:
        hi = min(2048, max_size)
    elif r < 0.98:
        hi = min(16384, max_size)
    else:
        hi = max_size
    return rng.randint(MIN_LEN, max(MIN_LEN, hi))


def check_payload(data):
    """None if @data is a valid payload, else what is wrong."""
    nl = data.find(b"\n", 0, 100)
    if not data.startswith(b"WAL1 ") or nl < 0:
        return "no payload header"
    try:
        seed, conn, idx, length = (int(x) for x in data[5:nl].split())
    except ValueError:
        return "bad payload header"
    if length != len(data):
        return "length %d, header says %d" % (len(data), length)
    if payload(seed, conn, idx, length) != data:
        return "bytes differ from payload (seed %d conn %d idx %d)" % (seed, conn, idx)
    return None


# ---- HTTP -----------------------------------------------------------------------------------

def post_request(host, path, body, close=False):
    return (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (path.encode(), host.encode(), len(body),
                                              b"Connection: close\r\n" if close else b"")) + body


def get_request(host, target, close=False):
    return b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
        target.encode(), host.encode(), b"Connection: close\r\n" if close else b"")


def take_response(buf, head_only=False):
    """Parse one response from the front of bytearray @buf: (status, headers, body) and remove it,
    or None if it is not complete yet."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError("bad status line %r" % lines[0])
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if 100 <= status < 200:
        del buf[:end + 4]
        return (status, headers, b"")
    clen = 0 if head_only else int(headers.get("content-length", "0"))
    if len(buf) < end + 4 + clen:
        return None
    body = bytes(buf[end + 4:end + 4 + clen])
    del buf[:end + 4 + clen]
    return (status, headers, body)


def connect(host, port, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_responses(sock, n, timeout=20, head_only=False):
    """Read @n responses (interim 1xx skipped); returns the list (shorter if the peer closed)."""
    buf = bytearray()
    out = []
    sock.settimeout(timeout)
    while len(out) < n:
        r = take_response(buf, head_only)
        if r is not None:
            if r[0] >= 200:
                out.append(r)
            continue
        try:
            data = sock.recv(1 << 16)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        buf += data
    return out


def closed_by_peer(sock, timeout=5):
    """True if the server closes (EOF or reset) within @timeout, reading and dropping data."""
    sock.settimeout(timeout)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if not sock.recv(1 << 16):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def fail(msg):
    print("wal_client: FAIL: %s" % msg, file=sys.stderr)
    sys.exit(1)


# ---- pipeline -------------------------------------------------------------------------------

def cmd_pipeline(a):
    rng = random.Random(a.seed)
    bodies = [payload(a.seed, 900000, i, rng.randint(MIN_LEN, 3000)) for i in range(a.n)]
    s = connect(a.host, a.port)
    s.sendall(b"".join(post_request(a.host, a.path, b) for b in bodies))
    posts = read_responses(s, a.n)
    if len(posts) != a.n:
        fail("pipeline: %d of %d POST replies" % (len(posts), a.n))
    seqs = []
    for st, h, body in posts:
        if st != 201:
            fail("pipeline: POST answered %d: %r" % (st, body[:200]))
        seq = json.loads(body)["seq"]
        if h.get("x-seq") != str(seq):
            fail("pipeline: X-Seq %r but body says %d" % (h.get("x-seq"), seq))
        seqs.append(seq)
    if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        fail("pipeline: replies out of order: %s" % seqs[:20])
    # Now every record back, again in one burst, the last request closing the connection.
    s.sendall(b"".join(get_request(a.host, "%s/%d" % (a.path, q), i == a.n - 1)
                       for i, q in enumerate(seqs)))
    gets = read_responses(s, a.n)
    if len(gets) != a.n:
        fail("pipeline: %d of %d GET replies" % (len(gets), a.n))
    for (st, _, body), want in zip(gets, bodies):
        if st != 200 or body != want:
            fail("pipeline: GET answered %d with %d bytes, want 200 with %d" %
                 (st, len(body), len(want)))
    if not closed_by_peer(s):
        fail("pipeline: the server kept the connection after 'Connection: close'")
    print("wal_client: pipeline requests=%d first_seq=%d last_seq=%d ok" %
          (2 * a.n, seqs[0], seqs[-1]))


# ---- load -----------------------------------------------------------------------------------

class LoadConn:
    def __init__(self, a, cid, rng):
        self.a, self.cid, self.rng = a, cid, rng
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.sock.connect_ex((a.host, a.port))
        self.out = bytearray()
        self.inbuf = bytearray()
        self.inflight = []  # (idx, len)
        self.next_idx = 0
        self.dead = None
        self.last_progress = time.monotonic()

    def fill(self, now, deadline):
        while (now < deadline and len(self.inflight) < self.a.depth and len(self.out) < (1 << 20)
               and (not self.a.max_requests or self.next_idx < self.a.max_requests)):
            n = payload_len(self.rng, self.a.max_size)
            body = payload(self.a.seed, self.cid, self.next_idx, n)
            self.out += post_request(self.a.host, self.a.path, body)
            self.inflight.append((self.next_idx, n))
            self.next_idx += 1


def cmd_load(a):
    rng = random.Random(a.seed * 7919 + a.conn_base)
    conns = [LoadConn(a, a.conn_base + i, random.Random(rng.random())) for i in range(a.conns)]
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    ackfd = os.open(a.ack_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    stats = dict(sent=0, acked=0, errors=0, eof=0, reset=0, stall=0)
    t0 = time.monotonic()
    deadline = t0 + a.duration
    next_stop_check = t0
    while True:
        now = time.monotonic()
        if a.stop_file and now >= next_stop_check and now < deadline:
            next_stop_check = now + 0.05
            if os.path.exists(a.stop_file):
                deadline = now  # no new POSTs; the ones in flight are awaited as at the deadline
        live = [c for c in conns if not c.dead]
        if not live or (now >= deadline + a.grace):
            break
        if now >= deadline and not any(c.inflight for c in live):
            break
        if a.max_requests and all(c.next_idx >= a.max_requests and not c.inflight and not c.out
                                  for c in live):
            break
        for c in live:
            before = len(c.inflight)
            c.fill(now, deadline)
            stats["sent"] += len(c.inflight) - before
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
            sel.modify(c.sock, ev, c)
            if c.inflight and now - c.last_progress > a.stall:
                c.dead = "stall"
        for key, ev in sel.select(0.05):
            c = key.data
            if c.dead:
                continue
            try:
                if ev & selectors.EVENT_WRITE and c.out:
                    n = c.sock.send(c.out)
                    del c.out[:n]
                if ev & selectors.EVENT_READ:
                    data = c.sock.recv(1 << 16)
                    if not data:
                        c.dead = "eof"
                        continue
                    c.inbuf += data
                    c.last_progress = time.monotonic()
                    while True:
                        r = take_response(c.inbuf)
                        if r is None:
                            break
                        st, _, body = r
                        if st < 200:
                            continue
                        idx, n = c.inflight.pop(0)
                        if st == 201:
                            seq = json.loads(body)["seq"]
                            os.write(ackfd, b"%d %d %d %d\n" % (seq, c.cid, idx, n))
                            stats["acked"] += 1
                        else:
                            stats["errors"] += 1
                            if stats["errors"] <= 5:
                                    print("wal_client: load: conn %d request %d answered %d: %r" %
                                      (c.cid, idx, st, body[:120]), file=sys.stderr)
            except (ConnectionResetError, BrokenPipeError, ConnectionRefusedError):
                c.dead = "reset"
            except BlockingIOError:
                pass
    for c in conns:
        if c.dead:
            stats[c.dead] += 1
        c.sock.close()
    os.close(ackfd)
    done = sum(1 for c in conns if not c.dead)
    print("wal_client: load conns=%d done=%d sent=%d acked=%d errors=%d eof=%d reset=%d stall=%d "
          "secs=%.1f" % (a.conns, done, stats["sent"], stats["acked"], stats["errors"],
                         stats["eof"], stats["reset"], stats["stall"], time.monotonic() - t0))
    if a.no_errors and stats["errors"]:
        sys.exit(1)


# ---- verify ---------------------------------------------------------------------------------

def read_acks(path):
    acks = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                seq, conn, idx, n = (int(x) for x in line.split())
                if seq in acks:
                    fail("seq %d acknowledged twice" % seq)
                acks[seq] = (conn, idx, n)
    return acks


class Checker:
    def __init__(self, a):
        self.acks = read_acks(a.ack_file)
        self.seed = a.seed
        self.strict = a.strict
        self.sparse = getattr(a, "sparse", False)
        self.seen = set()
        self.prev = None
        self.records = 0
        self.problems = 0

    def problem(self, msg):
        self.problems += 1
        if self.problems <= 20:
            print("wal_client: verify: %s" % msg, file=sys.stderr)

    def record(self, seq, data):
        self.records += 1
        if self.prev is not None and seq != self.prev + 1 and not (self.sparse and seq > self.prev):
            self.problem("seq %d follows %d: not %s" % (seq, self.prev,
                                                        "increasing" if self.sparse else "dense"))
        self.prev = seq
        self.seen.add(seq)
        if seq in self.acks:
            conn, idx, n = self.acks[seq]
            if data != payload(self.seed, conn, idx, n):
                self.problem("acked record %d (conn %d idx %d, %d bytes) differs: %d bytes, %s" %
                             (seq, conn, idx, n, len(data), check_payload(data)))
        elif self.strict:
            why = check_payload(data)
            if why:
                self.problem("record %d (%d bytes) was never sent: %s" % (seq, len(data), why))

    def finish(self, what):
        missing = sorted(set(self.acks) - self.seen)
        if missing:
            self.problem("%d acknowledged records missing, e.g. %s" % (len(missing), missing[:10]))
        print("wal_client: %s records=%d acked=%d missing=%d problems=%d" %
              (what, self.records, len(self.acks), len(missing), self.problems))
        sys.exit(1 if self.problems else 0)


def parse_range(body, chk):
    off = 0
    while off < len(body):
        nl = body.index(b"\n", off)
        seq, n = (int(x) for x in body[off:nl].split())
        data = body[nl + 1:nl + 1 + n]
        if len(data) != n or body[nl + 1 + n:nl + 2 + n] != b"\n":
            raise ValueError("bad range framing at record %d" % seq)
        chk.record(seq, data)
        off = nl + 2 + n


class SeqWindow:
    """The records of a Checker with --from <= seq < --upto (0: no bound); acks outside are not
    looked for either, and the seqs must be dense from --from on and up to --upto - 1, so verify
    over adjacent windows checks what one verify of the whole log does."""

    def __init__(self, chk, lo, hi):
        self.chk, self.lo, self.hi = chk, lo, hi
        chk.acks = {q: v for q, v in chk.acks.items() if q >= lo and (not hi or q < hi)}
        if lo > 0:
            chk.prev = lo - 1  # the window's first record must be seq lo

    def finish(self):
        c = self.chk
        if self.hi and not c.sparse and c.prev is not None and c.prev != self.hi - 1:
            c.problem("the records before %d end at %d" % (self.hi, c.prev))

    def record(self, seq, data):
        if seq >= self.lo and (not self.hi or seq < self.hi):
            self.chk.record(seq, data)


def cmd_verify(a):
    chk = Checker(a)
    win = SeqWindow(chk, a.from_seq, a.upto)
    s = connect(a.host, a.port)
    frm = a.from_seq
    while True:
        s.sendall(get_request(a.host, "%s?from=%d&limit=%d" % (a.path, frm, a.batch)))
        r = read_responses(s, 1, timeout=60)
        if not r or r[0][0] != 200:
            fail("verify: range request from %d failed: %r" % (frm, (r[0][:2] if r else None)))
        st, h, body = r[0]
        parse_range(body, win)
        frm = int(h["x-next-seq"])
        if int(h["x-records"]) == 0 or (a.upto and frm >= a.upto):
            break
    s.close()
    win.finish()
    chk.finish("verify")


def cmd_getall(a):
    acks = read_acks(a.ack_file)
    seqs = sorted(acks)
    problems = 0
    conns = 0
    for i in range(0, len(seqs), a.per_conn):
        part = seqs[i:i + a.per_conn]
        # A connect that times out is tried again (twice): what is checked here is that every
        # acknowledged record reads back; a stalled handshake (seen once after a worker was
        # SIGSTOPped and resumed) is reported on stderr, not counted as a missing record.
        for attempt in range(3):
            try:
                s = connect(a.host, a.port)
                break
            except (TimeoutError, socket.timeout) as e:
                print("wal_client: getall: connect attempt %d timed out: %s" % (attempt + 1, e),
                      file=sys.stderr)
                if attempt == 2:
                    raise
        conns += 1
        s.sendall(b"".join(get_request(a.host, "%s/%d" % (a.path, q)) for q in part))
        r = read_responses(s, len(part), timeout=60)
        s.close()
        for q, resp in zip(part, r + [None] * (len(part) - len(r))):
            conn, idx, n = acks[q]
            if resp is None or resp[0] != 200 or resp[2] != payload(a.seed, conn, idx, n):
                problems += 1
                if problems <= 20:
                    print("wal_client: getall: record %d: %s" % (
                        q, "no reply" if resp is None else "status %d, %d bytes" % (
                            resp[0], len(resp[2]))), file=sys.stderr)
    print("wal_client: getall records=%d conns=%d problems=%d" % (len(seqs), conns, problems))
    sys.exit(1 if problems else 0)


class RawPipe:
    """The payload stream of a paste-wal-dump --raw that is still running (a FIFO): a thread reads
    it in chunks of 1 MiB (a buffered read waits for the whole MiB, or the end), at most 16 ahead
    of the checker, so the dump never waits for the checker while it writes one record (up to
    --max-body, 1 MiB) whose listing line comes after it."""

    def __init__(self, path):
        self.q = queue.Queue(maxsize=16)
        self.buf = bytearray()
        self.off = 0
        self.eof = False
        self.closed = threading.Event()  # the writer closed its end: the dump has exited
        self.f = open(path, "rb")
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            b = self.f.read(1 << 20)
            if not b:
                self.closed.set()
            self.q.put(b)
            if not b:
                return

    def read(self, n):
        while len(self.buf) - self.off < n and not self.eof:
            b = self.q.get()
            if not b:
                self.eof = True
            else:
                if self.off > (1 << 20):
                    del self.buf[:self.off]
                    self.off = 0
                self.buf += b
        out = bytes(self.buf[self.off:self.off + n])
        self.off += len(out)
        return out


def follow_lines(path, done):
    """The lines of a file another process is still appending to, until done() is true (its
    writer has exited) and every line written before that has been read."""
    with open(path, "rb") as f:
        part = b""
        while True:
            finished = done()  # sampled before the read: nothing is written after it is true
            chunk = f.readline()
            if chunk:
                part += chunk
                if part.endswith(b"\n"):
                    yield part.decode(errors="replace")
                    part = b""
                continue
            if finished:
                if part:
                    yield part.decode(errors="replace")
                return
            time.sleep(0.005)


def cmd_verify_dump(a):
    chk = Checker(a)
    if a.follow:  # both still being written by a running paste-wal-dump: --raw is a FIFO
        raw = RawPipe(a.raw)
        listing = follow_lines(a.listing, raw.closed.is_set)
    else:
        raw = open(a.raw, "rb")
        listing = open(a.listing)
    for line in listing:
        f = line.split()
        if len(f) != 4 or not f[0].isdigit():
            continue  # the summary and messages
        data = raw.read(int(f[1]))
        chk.record(int(f[0]), data)
    if raw.read(1):
        chk.problem("raw output longer than the listed records")
    chk.finish("verify-dump")


# ---- bad input ------------------------------------------------------------------------------

class Bad:
    def __init__(self, a):
        self.a = a
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("wal_client: badinput: %s FAILED %s" % (name, detail), file=sys.stderr)

    def expect_status_close(self, name, raw, status, split=False):
        s = connect(self.a.host, self.a.port)
        try:
            if split:
                for i in range(0, len(raw), 7):
                    s.sendall(raw[i:i + 7])
            else:
                s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: read what it said
        r = read_responses(s, 1, timeout=10)
        got = r[0][0] if r else None
        self.check(name, got == status and closed_by_peer(s), "got %r want %d + close" %
                   (got, status))
        s.close()

    def post_ok(self, name, body):
        """A normal POST on a fresh connection: the server still serves."""
        s = connect(self.a.host, self.a.port)
        s.sendall(post_request(self.a.host, self.a.path, body, close=True))
        r = read_responses(s, 1)
        self.check(name, bool(r) and r[0][0] == 201, "got %r" % ((r[0][:2] if r else None),))
        s.close()


def cmd_badinput(a):
    b = Bad(a)
    h, p = a.host, a.path
    good = payload(a.seed, 990000, 0, 100)
    b.expect_status_close("garbage line", b"GARBAGE\r\n\r\n", 400)
    b.expect_status_close("two spaces", b"GET  /log HTTP/1.1\r\nHost: x\r\n\r\n", 400)
    b.expect_status_close("bad version", b"GET /log HTTP/9.9\r\nHost: x\r\n\r\n", 505)
    b.expect_status_close("no host", b"GET /stats HTTP/1.1\r\n\r\n", 400)
    b.expect_status_close("bare LF", b"GET /stats HTTP/1.1\nHost: x\n\n", 400)
    b.expect_status_close("NUL", b"GET /st\0ats HTTP/1.1\r\nHost: x\r\n\r\n", 400)
    b.expect_status_close("huge head", b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Big: " +
                          b"a" * 20000 + b"\r\n\r\n", 431)
    b.expect_status_close("huge head in pieces", b"GET /stats HTTP/1.1\r\nHost: x\r\n" +
                          b"X-Many: 0123456789\r\n" * 600 + b"\r\n", 431, split=True)
    for v in (b"abc", b"-5", b"+5", b"5, 5", b"99999999999999999999999"):
        b.expect_status_close("Content-Length %s" % v.decode(), b"POST %s HTTP/1.1\r\nHost: "
                              b"x\r\nContent-Length: %s\r\n\r\nhello" % (p.encode(), v), 400)
    b.expect_status_close("duplicate Content-Length", b"POST %s HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" % p.encode(), 400)
    b.expect_status_close("chunked", b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                          b"chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" % p.encode(), 411)
    # Content-Length shorter than what follows: the rest is parsed as the next request (400).
    s = connect(h, a.port)
    s.sendall(post_request(h, p, good) + b"this is not a request\r\n\r\n")
    r = read_responses(s, 2)
    b.check("short Content-Length", [x[0] for x in r] == [201, 400] and closed_by_peer(s),
            "got %r" % [x[0] for x in r])
    s.close()
    # Content-Length longer than what is sent, then the client half-closes: no reply, close.
    s = connect(h, a.port)
    s.sendall(post_request(h, p, good)[:-40])
    s.shutdown(socket.SHUT_WR)
    r = read_responses(s, 1, timeout=5)
    b.check("long Content-Length + EOF", not r and closed_by_peer(s), "got %r" % (r,))
    s.close()
    # Unknown method, wrong method, unknown path: answered, connection kept.
    s = connect(h, a.port)
    s.sendall(b"BREW %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() +
              b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" % p.encode() +
              get_request(h, "/nowhere") + get_request(h, p + "/abc") +
              get_request(h, p + "/999999999999", close=True))
    r = read_responses(s, 5)
    b.check("method/path errors", [x[0] for x in r] == [501, 405, 404, 404, 404],
            "got %r" % [x[0] for x in r])
    s.close()
    # Expect: 100-continue: the interim reply comes before the body is sent.
    s = connect(h, a.port)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n"
              b"\r\n" % (p.encode(), len(good)))
    s.settimeout(5)
    interim = s.recv(100)
    s.sendall(good)
    r = read_responses(s, 1)
    b.check("expect 100-continue", interim.startswith(b"HTTP/1.1 100") and r and r[0][0] == 201,
            "got %r then %r" % (interim[:20], (r[0][:2] if r else None)))
    s.close()
    b.expect_status_close("expect + too large", b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length:"
                          b" %d\r\nExpect: 100-continue\r\n\r\n" % (p.encode(), a.max_body + 1),
                          413)
    # Too large without Expect: the body is read and dropped, the connection stays usable.
    s = connect(h, a.port)
    s.sendall(post_request(h, p, b"x" * (a.max_body + 1)) + post_request(h, p, good, close=True))
    r = read_responses(s, 2, timeout=30)
    b.check("too large then ok", [x[0] for x in r] == [413, 201], "got %r" % [x[0] for x in r])
    s.close()
    # A reset in the middle of a large body: its kept pieces must be released, no record.
    s = connect(h, a.port)
    big = payload(a.seed, 990000, 1, a.max_body)
    s.sendall(post_request(h, p, big)[:a.max_body // 2])
    time.sleep(0.3)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST
    b.post_ok("served after a reset mid-body", good)
    # Slowloris: a head trickled one byte at a time is cut off by --header-timeout with 408,
    # while others are served meanwhile.
    s = connect(h, a.port)
    t0 = time.monotonic()
    head = b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 400
    got = None
    try:
        for i in range(len(head)):
            s.sendall(head[i:i + 1])
            if i == 5:
                b.post_ok("served during a slowloris", good)
            time.sleep(0.05)
            if time.monotonic() - t0 > a.header_timeout + 5:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = read_responses(s, 1, timeout=a.header_timeout + 5)
    got = r[0][0] if r else None
    took = time.monotonic() - t0
    b.check("slowloris", got == 408 and took < a.header_timeout + 5,
            "got %r after %.1f s" % (got, took))
    s.close()
    # HTTP/1.0 keep-alive, and HEAD.
    s = connect(h, a.port)
    s.sendall(b"GET /stats HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    r1 = read_responses(s, 1)
    s.sendall(b"HEAD /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    r2 = read_responses(s, 1, head_only=True)
    b.check("1.0 keep-alive + HEAD", r1 and r1[0][0] == 200 and r2 and r2[0][0] == 200 and
            r2[0][2] == b"" and closed_by_peer(s), "got %r %r" % (r1[:1], r2[:1]))
    s.close()
    print("wal_client: badinput passed=%d failed=%d" % (b.passed, b.failed))
    sys.exit(1 if b.failed else 0)


# ---- main -----------------------------------------------------------------------------------

def cmd_readloop(a):
    rng = random.Random(a.seed)
    acks, off = {}, 0
    n = dict(gets=0, ok=0, unreachable=0, notfound=0, wrong=0)
    end = time.time() + a.max_secs
    while (n["ok"] < a.min_gets or not os.path.exists(a.stop_file)) and time.time() < end:
        if os.path.exists(a.ack_file):
            with open(a.ack_file) as f:  # complete lines only: the load appends as it goes
                f.seek(off)
                for line in f.readlines():
                    x = line.split()
                    if not line.endswith("\n") or len(x) != 4:
                        break
                    off += len(line)
                    if int(x[0]) % a.mod == a.rem:
                        acks[int(x[0])] = tuple(int(v) for v in x[1:])
        if not acks:
            time.sleep(0.05)
            continue
        q = rng.choice(list(acks)) if rng.random() < 0.5 else max(acks)
        n["gets"] += 1
        try:
            s = connect(a.host, a.port, timeout=3)
            s.sendall(get_request(a.host, "%s/%d" % (a.path, q)))
            r = read_responses(s, 1, timeout=5)
            s.close()
        except OSError:
            r = []
        conn, idx, ln = acks[q]
        if not r:
            n["unreachable"] += 1
        elif r[0][0] == 404:
            n["notfound"] += 1
            print("wal_client: readloop: record %d answered 404" % q, file=sys.stderr)
        elif r[0][0] != 200 or r[0][2] != payload(a.seed, conn, idx, ln):
            n["wrong"] += 1
            print("wal_client: readloop: record %d: status %d, %d bytes, not its own" % (
                q, r[0][0], len(r[0][2])), file=sys.stderr)
        else:
            n["ok"] += 1
    print("wal_client: readloop " + " ".join("%s=%d" % kv for kv in n.items()))
    sys.exit(1 if n["notfound"] or n["wrong"] else 0)


def cmd_reconnect(a):
    """N connections one after the other, each one request with "Connection: close": the server
    closes first and so holds the TIME-WAIT, while the client may reuse its port at once. Every
    connection must be accepted and answered within --timeout seconds."""
    slow = []
    worst = 0.0
    for i in range(a.n):
        t0 = time.monotonic()
        try:
            s = connect(a.host, a.port, timeout=a.timeout)
            port = s.getsockname()[1]
            s.sendall(get_request(a.host, "/stats", close=True))
            buf = bytearray()
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            r = take_response(buf)
            if not r or r[0] != 200:
                slow.append((i, port, "reply %r" % (r[0] if r else None)))
        except OSError as e:
            slow.append((i, None, repr(e)))
        finally:
            try:
                s.close()
            except Exception:
                pass
        worst = max(worst, time.monotonic() - t0)
    for i, port, why in slow[:5]:
        print(f"connection {i} (client port {port}): {why}", file=sys.stderr)
    print(f"reconnect: {a.n} connections with Connection: close, {len(slow)} failed, "
          f"slowest {worst * 1e3:.1f} ms")
    sys.exit(1 if slow else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1")
    common.add_argument("--port", type=int, default=80)
    common.add_argument("--path", default="/log")
    common.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("pipeline", parents=[common])
    p.add_argument("--n", type=int, default=100)
    p = sub.add_parser("load", parents=[common])
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--duration", type=float, default=4)
    p.add_argument("--grace", type=float, default=3)
    p.add_argument("--stall", type=float, default=2)
    p.add_argument("--max-size", type=int, default=262144)
    p.add_argument("--conn-base", type=int, default=0)
    p.add_argument("--ack-file", required=True)
    p.add_argument("--no-errors", action="store_true", help="exit 1 on any non-201 reply")
    p.add_argument("--stop-file", help="end the load (as at --duration) once this file exists")
    p.add_argument("--max-requests", type=int, default=0,
                   help="at most this many POSTs per connection (0: no limit)")
    for name in ("verify", "verify-dump"):
        p = sub.add_parser(name, parents=[common])
        p.add_argument("--ack-file")
        p.add_argument("--strict", action="store_true",
                       help="every record must be a payload of this client")
        p.add_argument("--batch", type=int, default=2000)
        p.add_argument("--sparse", action="store_true",
                       help="seqs increase but need not be dense (paste-wal --queues)")
        if name == "verify":
            p.add_argument("--from", dest="from_seq", type=int, default=0,
                           help="check the records (and acks) from this seq on (the first must be it)")
            p.add_argument("--upto", type=int, default=0,
                           help="... and before this seq (0: to the end)")
        if name == "verify-dump":
            p.add_argument("--listing", required=True)
            p.add_argument("--raw", required=True)
            p.add_argument("--follow", action="store_true",
                           help="--raw is a FIFO a running paste-wal-dump writes and --listing "
                           "its growing listing: check both as they come, until the dump exits")
    p = sub.add_parser("getall", parents=[common])
    p.add_argument("--ack-file", required=True)
    p.add_argument("--per-conn", type=int, default=20)
    p = sub.add_parser("readloop", parents=[common])
    p.add_argument("--ack-file", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--mod", type=int, default=1)
    p.add_argument("--rem", type=int, default=0)
    p.add_argument("--max-secs", type=float, default=120)
    p.add_argument("--min-gets", type=int, default=0, help="go on past --stop-file until this many GETs were answered with the record")
    p = sub.add_parser("reconnect", parents=[common])
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--timeout", type=float, default=2)
    p = sub.add_parser("badinput", parents=[common])
    p.add_argument("--max-body", type=int, default=1 << 20)
    p.add_argument("--header-timeout", type=float, default=2)
    a = ap.parse_args()
    {"pipeline": cmd_pipeline, "load": cmd_load, "verify": cmd_verify,
     "verify-dump": cmd_verify_dump, "badinput": cmd_badinput, "getall": cmd_getall,
     "reconnect": cmd_reconnect, "readloop": cmd_readloop}[a.cmd](a)


if __name__ == "__main__":
    main()
