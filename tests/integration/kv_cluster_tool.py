#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""kv_cluster_tool.py - checks of paste-kv's cluster mode and of twemproxy in front of paste-kv
(tests/integration/test_kv_cluster.sh, test_kv_twemproxy.sh). Exit 0 when every check holds; the
first failed check is printed and exits 1.

  keyslot A:PORT B:PORT N        CLUSTER KEYSLOT of N keys (random bytes and braces, and the edge
                                 cases of hash tags) agree between the servers at A and B
  load NODE TAG N                write N keys (strings, a hash per 10) through the cluster from NODE,
                                 following -MOVED as a cluster client does
  check TAG N NODE...            every key of 'load' is on the node that serves its slot (asked
                                 directly: GET there is the value, GET at every other node is
                                 -MOVED to it), the nodes' key counts add up to what was written,
                                 COUNTKEYSINSLOT/GETKEYSINSLOT agree with the keys written
  crossslot NODE                 -CROSSSLOT for MSET/DEL/MGET over slots and at EXEC of a MULTI
                                 whose commands span slots; hash tags put keys in one slot
  proxy PROXY TAG N NODE...      through twemproxy at PROXY: N keys written and read back (SET,
                                 GET, MGET, INCR, HSET/HGETALL, DEL); each is on exactly one NODE
                                 and every NODE holds some
  proxycheck PROXY TAG N         the keys of 'proxy' read back through the proxy (after a restart)
"""
import random
import socket
import sys


class Conn:
    def __init__(self, addr, timeout=30):
        host, port = addr.rsplit(":", 1)
        self.addr = addr
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.f = self.s.makefile("rb")

    def send(self, *cmds):
        out = bytearray()
        for c in cmds:
            out += b"*%d\r\n" % len(c)
            for a in c:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return [self.read() for _ in cmds]

    def call(self, *args):
        return self.send(args)[0]

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("%s closed the connection" % self.addr)
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest
        if t == b"-":
            return Err(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("%s: unexpected reply %r" % (self.addr, line))


class Err(str):
    pass


def die(msg):
    print("FAIL: %s" % msg)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        die(msg)


def key_of(tag, i):
    return b"%s:%d" % (tag.encode(), i)


def value_of(tag, i):
    return b"v-%s-%d-" % (tag.encode(), i) + b"x" * (i % 50)


class Cluster:
    """A minimal cluster client: sends a command to a node, follows -MOVED."""

    def __init__(self, seed):
        self.conns = {}
        self.seed = seed
        self.moved = 0

    def conn(self, addr):
        if addr not in self.conns:
            self.conns[addr] = Conn(addr)
        return self.conns[addr]

    def call(self, *args):
        addr = self.seed
        for _ in range(5):
            r = self.conn(addr).call(*args)
            if isinstance(r, Err) and r.startswith("MOVED "):
                self.moved += 1
                addr = r.split()[2]
                continue
            return r
        die("%r: more than 5 redirections" % (args,))


def cmd_keyslot(a, b, n):
    ca, cb = Conn(a), Conn(b)
    rnd = random.Random(17)
    keys = [b"123456789", b"", b"{", b"}", b"{}", b"{}x", b"x{}y", b"{a}", b"a{b}c{d}", b"{{a}}",
            b"}{a}", b"foo{}{bar}", b"foo{{bar}}zap", b"foo{bar}{zap}", b"{user1000}.following"]
    for _ in range(int(n)):
        keys.append(bytes(rnd.choice(b"ab{}xyz\x00\xff\r\n ") for _ in range(rnd.randint(0, 40))))
    ra = ca.send(*[("CLUSTER", "KEYSLOT", k) for k in keys])
    rb = cb.send(*[("CLUSTER", "KEYSLOT", k) for k in keys])
    for k, x, y in zip(keys, ra, rb):
        expect(x == y, "CLUSTER KEYSLOT %r: %s says %r, %s says %r" % (k, a, x, b, y))
    print("keyslot: %d keys, the same slot on both servers" % len(keys))


def cmd_load(node, tag, n):
    c = Cluster(node)
    for i in range(int(n)):
        k = key_of(tag, i)
        if i % 10 == 0:
            r = c.call("HSET", k, "f1", value_of(tag, i), "f2", "two")
            expect(r == 2, "HSET %r: %r" % (k, r))
        else:
            r = c.call("SET", k, value_of(tag, i))
            expect(r == b"OK", "SET %r: %r" % (k, r))
    expect(c.moved > 0, "no -MOVED while writing %s keys from one node" % n)
    print("load: %s keys written, %d redirections followed" % (n, c.moved))


def slot_owners(conn):
    own = {}
    for rng in conn.call("CLUSTER", "SLOTS"):
        addr = "%s:%d" % (rng[2][0].decode(), rng[2][1])
        for s in range(rng[0], rng[1] + 1):
            own[s] = addr
    return own


def cmd_check(tag, n, *nodes):
    n = int(n)
    conns = {a: Conn(a) for a in nodes}
    first = conns[nodes[0]]
    own = slot_owners(first)
    expect(set(own.values()) == set(nodes), "CLUSTER SLOTS names %s, expected %s" %
           (sorted(set(own.values())), sorted(nodes)))
    per_node, per_slot = {a: 0 for a in nodes}, {}
    for i in range(n):
        k = key_of(tag, i)
        slot = first.call("CLUSTER", "KEYSLOT", k)
        owner = own[slot]
        per_node[owner] += 1
        per_slot.setdefault(slot, set()).add(k)
        for a, c in conns.items():
            if i % 10 == 0:
                r = c.call("HGET", k, "f1")
            else:
                r = c.call("GET", k)
            if a == owner:
                expect(r == value_of(tag, i), "%r at its owner %s: %r" % (k, a, r))
            else:
                expect(isinstance(r, Err) and r == "MOVED %d %s" % (slot, owner),
                       "%r at %s (owner %s): %r, expected -MOVED" % (k, a, owner, r))
    for a, c in conns.items():
        size = c.call("DBSIZE")
        expect(size == per_node[a], "%s: DBSIZE %r, %d of the keys written belong to it" %
               (a, size, per_node[a]))
        expect(per_node[a] > 0, "%s holds none of %d keys" % (a, n))
    # keys by slot, asked of the owner, for the slots the keys fell in (some of them)
    for slot in sorted(per_slot)[:20]:
        c = conns[own[slot]]
        cnt = c.call("CLUSTER", "COUNTKEYSINSLOT", slot)
        got = c.call("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        expect(cnt == len(per_slot[slot]) and set(got) == per_slot[slot],
               "slot %d: COUNTKEYSINSLOT %r, GETKEYSINSLOT %r, written %r" %
               (slot, cnt, got, per_slot[slot]))
        got1 = c.call("CLUSTER", "GETKEYSINSLOT", slot, 1)
        expect(len(got1) == 1 and got1[0] in per_slot[slot], "GETKEYSINSLOT %d 1: %r" % (slot, got1))
    print("check: %d keys, each on its slot's owner (%s)" %
          (n, ", ".join("%s %d" % (a, per_node[a]) for a in nodes)))


def cmd_crossslot(node):
    c = Conn(node)
    own = slot_owners(c)
    mine = [k for k in (b"k%d" % i for i in range(2000))
            if own[c.call("CLUSTER", "KEYSLOT", k)] == node]
    a, b = mine[0], next(k for k in mine if c.call("CLUSTER", "KEYSLOT", k) !=
                         c.call("CLUSTER", "KEYSLOT", mine[0]))
    cross = "CROSSSLOT Keys in request don't hash to the same slot"
    for args in (("MSET", a, "1", b, "2"), ("DEL", a, b), ("MGET", a, b), ("EXISTS", a, b)):
        r = c.call(*args)
        expect(r == cross, "%r: %r, expected -%s" % (args, r, cross))
    # MULTI: each command is fine alone, EXEC refuses the transaction as a whole
    r = c.send(("MULTI",), ("SET", a, "m1"), ("SET", b, "m2"), ("EXEC",))
    expect(r[:3] == [b"OK", b"QUEUED", b"QUEUED"] and r[3] == cross,
           "MULTI over two slots: %r" % (r,))
    expect(c.call("EXISTS", a) == 0 and c.call("EXISTS", b) == 0,
           "a refused EXEC changed something")
    r = c.send(("MULTI",), ("SET", a, "m1"), ("EXEC",))
    expect(r == [b"OK", b"QUEUED", [b"OK"]], "MULTI in one slot: %r" % (r,))
    expect(c.call("GET", a) == b"m1" and c.call("DEL", a) == 1, "the EXEC in one slot")
    # hash tags: the part in braces decides the slot
    slot_t = c.call("CLUSTER", "KEYSLOT", "tag")
    for k in (b"{tag}a", b"{tag}:b", b"x{tag}y", b"{tag}{other}"):
        expect(c.call("CLUSTER", "KEYSLOT", k) == slot_t, "KEYSLOT %r is not KEYSLOT tag" % k)
    cl = Cluster(node)
    r = cl.call("MSET", "{tag}a", "1", "{tag}:b", "2", "x{tag}y", "3")
    expect(r == b"OK", "MSET of one hash tag: %r" % r)
    r = cl.call("MGET", "{tag}a", "{tag}:b", "x{tag}y")
    expect(r == [b"1", b"2", b"3"], "MGET of one hash tag: %r" % r)
    owner = Conn(own[slot_t])
    r = owner.send(("MULTI",), ("INCR", "{tag}a"), ("INCR", "{tag}:b"), ("EXEC",))
    expect(r[3] == [2, 3], "MULTI over one hash tag: %r" % (r,))
    expect(cl.call("DEL", "{tag}a", "{tag}:b", "x{tag}y") == 3, "DEL of one hash tag")
    # a key of another node inside MULTI: -MOVED, and EXEC aborts
    other = next(k for k in (b"o%d" % i for i in range(2000))
                 if own[c.call("CLUSTER", "KEYSLOT", k)] != node)
    r = c.send(("MULTI",), ("SET", other, "x"), ("EXEC",))
    expect(isinstance(r[1], Err) and r[1].startswith("MOVED ") and r[2].startswith("EXECABORT"),
           "MULTI with another node's key: %r" % (r,))
    expect(c.call("SELECT", "1") == "ERR SELECT is not allowed in cluster mode", "SELECT 1")
    h = c.call("HELLO", "2")
    expect(h[h.index(b"mode") + 1] == b"cluster", "HELLO mode: %r" % (h,))
    for w in ("ASKING", "READONLY", "READWRITE"):
        expect(c.call(w) == b"OK", "%s not accepted" % w)
    print("crossslot: MSET/DEL/MGET/EXISTS and EXEC over two slots refused; hash tags group keys")


def cmd_proxy(proxy, tag, n, *nodes):
    n = int(n)
    p = Conn(proxy)
    for i in range(n):
        k = key_of(tag, i)
        if i % 10 == 0:
            expect(p.call("HSET", k, "f1", value_of(tag, i)) == 1, "HSET %r via the proxy" % k)
        else:
            expect(p.call("SET", k, value_of(tag, i)) == b"OK", "SET %r via the proxy" % k)
    cmd_proxycheck(proxy, tag, n)
    keys = [key_of(tag, i) for i in range(1, 40) if i % 10]
    r = p.call("MGET", *keys)
    expect(r == [value_of(tag, i) for i in range(1, 40) if i % 10], "MGET via the proxy: %r" % r)
    for i in range(3):
        expect(p.call("INCR", "%s:ctr" % tag) == i + 1, "INCR via the proxy")
    expect(p.call("DEL", "%s:ctr" % tag) == 1, "DEL via the proxy")
    conns = [Conn(a) for a in nodes]
    held = [0] * len(nodes)
    for i in range(n):
        k = key_of(tag, i)
        on = [j for j, c in enumerate(conns) if c.call("EXISTS", k) == 1]
        expect(len(on) == 1, "%r is on %d backends, expected exactly 1" % (k, len(on)))
        held[on[0]] += 1
    for j, a in enumerate(nodes):
        expect(held[j] >= n // (4 * len(nodes)), "%s holds %d of %d keys: not sharded" %
               (a, held[j], n))
        expect(conns[j].call("DBSIZE") == held[j], "%s: DBSIZE is not %d" % (a, held[j]))
    print("proxy: %d keys through twemproxy, each on one backend (%s)" %
          (n, ", ".join("%s %d" % (a, h) for a, h in zip(nodes, held))))


def cmd_proxycheck(proxy, tag, n):
    p = Conn(proxy)
    for i in range(int(n)):
        k = key_of(tag, i)
        if i % 10 == 0:
            r = p.call("HGETALL", k)
            expect(r == [b"f1", value_of(tag, i)], "HGETALL %r via the proxy: %r" % (k, r))
        else:
            r = p.call("GET", k)
            expect(r == value_of(tag, i), "GET %r via the proxy: %r" % (k, r))
    print("proxycheck: %s keys read back through the proxy" % n)


if __name__ == "__main__":
    cmds = {"keyslot": cmd_keyslot, "load": cmd_load, "check": cmd_check,
            "crossslot": cmd_crossslot, "proxy": cmd_proxy, "proxycheck": cmd_proxycheck}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])
