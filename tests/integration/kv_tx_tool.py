#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""kv_tx_tool.py - multi-key writes under kill -9 for paste-kv (stdlib only; see kv_tool.py).

Subcommands:
  load HOST PORT LOG TAG   six connections each repeat one kind of multi-key write on their own
                           group of keys, every write's values encoding the write's number (txid):
                             x: MULTI, 12 SETs (one of 2-300 KB: a big string), HSET of 4
                                fields, EXEC;
                             m: MSET of 24 keys (two big);
                             h: HSET of 16 fields (one big);
                           LOG gets "GROUP 0" for each group before its first write, then
                           "GROUP TXID" the moment each reply is read; runs until the connections
                           fail (server killed) or SIGTERM
  check HOST PORT LOG...   after a restart: in every group all keys and fields hold the values of
                           ONE write (all old or all new: none, or the same txid everywhere), that
                           txid is at least the last acknowledged one, and every value is
                           byte-identical to what was sent
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_tool import STOP, Conn, connect_load, fail, load, resp  # noqa: E402

KINDS = "xmh"


def members(kind, group):
    """[(key, field or None, big)] of a group."""
    if kind == "x":
        return ([(b"%s:k%d" % (group, i), None, i == 6) for i in range(12)] +
                [(group + b":h", b"f%d" % i, False) for i in range(4)])
    if kind == "m":
        return [(b"%s:m%d" % (group, i), None, i in (3, 15)) for i in range(24)]
    return [(group + b":hh", b"f%d" % i, i == 7) for i in range(16)]


def value(key, field, big, txid):
    name = key + b"#" + field if field else key
    h = hashlib.sha256(name + b"/%d" % txid).digest()
    n = 2048 + (h[0] | h[1] << 8 | h[2] << 16) % 300000 if big else (h[0] | h[1] << 8) % 1200
    return b"%s:%d:" % (name, txid) + (h * (n // 32 + 1))[:n]


def write(kind, group, txid):
    """The requests of one multi-key write, and the number of replies to read."""
    ms = members(kind, group)
    if kind == "x":
        out = [resp(b"MULTI")]
        out += [resp(b"SET", k, value(k, f, b, txid)) for k, f, b in ms if not f]
        hf = [a for k, f, b in ms if f for a in (f, value(k, f, b, txid))]
        out += [resp(b"HSET", group + b":h", *hf), resp(b"EXEC")]
        return b"".join(out), len(out)
    if kind == "m":
        return resp(b"MSET", *[a for k, f, b in ms for a in (k, value(k, f, b, txid))]), 1
    return resp(b"HSET", group + b":hh", *[a for k, f, b in ms for a in (f, value(k, f, b, txid))]), 1


def load_conn(host, port, tag, ci, log, lock, counts):
    kind = KINDS[ci % 3]
    group = b"%s:%s:%d" % (kind.encode(), tag, ci)
    with lock:
        log.write(b"%s 0\n" % group)
    c = connect_load(host, port, ci, 10.0, who="kv_tx_tool")  # generous: a loaded machine
    if not c:
        return
    txid = 0
    try:
        while not STOP.is_set():
            txid += 1
            req, n = write(kind, group, txid)
            c.send(req)
            replies = [c.reply() for _ in range(n)]
            last = replies[-1]
            if (kind == "x" and not (isinstance(last, list) and len(last) == 13)) or \
                    (kind == "m" and last != b"+OK") or (kind == "h" and not isinstance(last, int)):
                raise ValueError("%s write %d: %r" % (kind, txid, replies))
            with lock:
                log.write(b"%s %d\n" % (group, txid))
                counts[0] += 1
    except ValueError as e:
        print("kv_tx_tool: load: connection %d stopped: %s" % (ci, e), file=sys.stderr)
    except (OSError, ConnectionError) as e:  # the server was killed, or stalled
        if not counts[0]:  # before any acknowledgement: say why
            print("kv_tx_tool: load: connection %d ended after %d writes sent: %s" %
                  (ci, txid, e), file=sys.stderr)
    finally:
        c.close()


def check(host, port, logpath):
    last = {}
    with open(logpath, "rb") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:  # a torn last line is ignored
                last[parts[0]] = max(int(parts[1]), last.get(parts[0], 0))
    c = Conn(host, port)
    later = acked = 0
    for group, s in last.items():
        kind = group[:1].decode()
        seen = set()
        for k, f, b in members(kind, group):
            v = c.cmd(b"HGET", k, f) if f else c.cmd(b"GET", k)
            name = k + b"#" + f if f else k
            if v is None:
                seen.add(0)
                continue
            try:
                if not v.startswith(name + b":"):
                    raise ValueError
                got = int(v[len(name) + 1:].split(b":", 1)[0])
            except ValueError:
                fail("%r: value is not one the client wrote: %r" % (name, v[:60]))
            want = value(k, f, b, got)
            if v != want:
                at = next((i for i in range(min(len(v), len(want))) if v[i] != want[i]),
                          min(len(v), len(want)))
                fail("%r: value of write %d is not byte-identical: %d bytes, %d expected, first "
                     "difference at %d" % (name, got, len(v), len(want), at))
            seen.add(got)
        if len(seen) != 1:
            fail("group %r: keys hold values of different writes %s: not atomic" %
                 (group, sorted(seen)))
        got = seen.pop()
        if got < s:
            fail("group %r: write %d was acknowledged, found write %d" % (group, s, got))
        later += got > s
        acked += s > 0
    c.close()
    if not acked:
        fail("the load acknowledged nothing: the kill came too early")
    print("kv_tx_tool: check: %d groups hold one write each, the last acknowledged or later "
          "(%d a later one)" % (len(last), later))


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    op, a = argv[1], argv[2:]
    if op == "load":
        load(a[0], int(a[1]), a[2], a[3].encode(), conns=6, conn_fn=load_conn,
             what="multi-key writes")
    elif op == "check":
        for path in a[2:]:
            check(a[0], int(a[1]), path)
    else:
        print("kv_tx_tool: unknown subcommand %r (see --help)" % op, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
