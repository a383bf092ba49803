#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Classify `perf script -F comm,pid,ip,sym,dso` samples for bench/profile.

  profile-classify.py TRANSPORT REP FREQ SECS SERVER_COMM BENCH_JSON < perf-script-output
      prints one JSON line: samples by side (server, client, other) and category, and the
      request rate paste-bench measured.
  profile-classify.py --report RUNS_JSONL APP SIZE CONNS PIN
      prints the table (medians over the runs of each transport).
"""
import json
import statistics as st
import sys

RX = ("net_rx_action", "process_backlog", "__netif_receive_skb", "veth_poll", "netif_receive_skb")
CATS = ["rx-softirq", "xsk-tx", "tcp-tx", "tcp-rx-copy", "wait", "user:lwip", "user:paste",
        "user:app", "user:libc", "user:other", "other-kernel"]


def category(frames):
    """frames: list of (sym, dso), leaf first."""
    syms = [s for s, _ in frames]
    if any(s.startswith(RX) for s in syms):
        return "rx-softirq"
    if any(s.startswith("__xsk_generic_xmit") or s.startswith("xsk_generic_xmit") for s in syms):
        return "xsk-tx"
    if any(s.startswith(("tcp_sendmsg", "tcp_write_xmit", "__tcp_push_pending")) for s in syms):
        return "tcp-tx"
    if any(s.startswith("tcp_recvmsg") for s in syms):
        return "tcp-rx-copy"
    if any(s.startswith(("do_epoll_wait", "do_sys_poll", "__schedule", "schedule",
                         "io_cqring_wait")) for s in syms):
        return "wait"
    sym, dso = frames[0]
    if "[kernel" in dso or dso.startswith("[") and "vdso" not in dso:
        return "other-kernel"
    if "lwip" in dso:
        return "user:lwip"
    if "libpaste-xdp" in dso:
        return "user:paste"
    if "libc" in dso or "ld-linux" in dso or "vdso" in dso:
        return "user:libc"
    if "paste-" in dso or "ref-" in dso:
        return "user:app"
    return "user:other"


def parse(lines):
    """Yield (comm, pid, frames) per sample of perf script output (header line, then stack)."""
    comm, pid, frames = None, None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, pid, frames
            comm, pid, frames = None, None, []
            continue
        if not line.startswith((" ", "\t")):
            if comm is not None:
                yield comm, pid, frames
            parts = line.split()
            comm, frames = (parts[0] if parts else "?"), []
            pid = parts[1] if len(parts) > 1 else None
            continue
        parts = line.split(None, 1)
        rest = parts[1] if len(parts) > 1 else ""
        sym, _, dso = rest.rpartition(" (")
        sym = sym.split("+")[0]
        frames.append((sym, dso.rstrip(")")))
    if comm is not None:
        yield comm, pid, frames


def classify(argv):
    """Samples by side. With the PIDs given, by PID: other processes of the same name (another
    benchmark or test on a shared machine) must not count as the server or the client."""
    tr, rep, freq, secs, srv_comm, bench_json = argv[:6]
    srv_pid, cli_pid = (argv[6], argv[7]) if len(argv) == 8 else (None, None)
    counts = {"server": {}, "client": {}, "other": {}}
    for comm, pid, frames in parse(sys.stdin):
        if not frames:
            continue
        if srv_pid:
            side = "server" if pid == srv_pid else "client" if pid == cli_pid else "other"
        else:
            side = ("server" if srv_comm.startswith(comm) or comm.startswith(srv_comm[:15])
                    else "client" if comm.startswith("paste-bench") else "other")
        if side == "other" and comm.startswith("swapper"):
            continue  # idle
        c = category(frames)
        counts[side][c] = counts[side].get(c, 0) + 1
    b = json.load(open(bench_json))
    print(json.dumps({"transport": tr, "rep": int(rep), "freq": int(freq), "secs": float(secs),
                      "rps": b.get("rps"), "srv_proc_us": b.get("server_cpu_us_per_req"),
                      "counts": counts}))


def report(argv):
    path, app, size, conns, pin = argv
    runs = [json.loads(l) for l in open(path) if l.strip()]
    by = {}
    for r in runs:
        by.setdefault(r["transport"], []).append(r)

    def us(r, n):  # samples -> CPU µs per request
        return n / r["freq"] / r["secs"] / r["rps"] * 1e6

    rows = {}
    for tr, rs in by.items():
        agg = {}
        for r in rs:
            s, c = r["counts"]["server"], r["counts"]["client"]
            tot_s, tot_c = sum(s.values()), sum(c.values())
            v = {"rps": r["rps"], "srv_proc": r["srv_proc_us"], "srv_perf": us(r, tot_s),
                 "cli_perf": us(r, tot_c),
                 "srv_fair": us(r, tot_s - s.get("rx-softirq", 0) + c.get("rx-softirq", 0)),
                 "cli_fair": us(r, tot_c - c.get("rx-softirq", 0) + s.get("rx-softirq", 0))}
            for cat in CATS:
                v["s:" + cat] = us(r, s.get(cat, 0))
                v["c:" + cat] = us(r, c.get(cat, 0))
            for k, x in v.items():
                agg.setdefault(k, []).append(x)
        rows[tr] = {k: st.median([x for x in xs if x is not None]) for k, xs in agg.items()
                    if any(x is not None for x in xs)}
    known = ("paste", "kernel", "uring", "ref-epoll", "ref-uring")
    trs = [t for t in known if t in rows] + sorted(t for t in rows if t not in known)
    print(f"\n{app} {size} B, {conns} connections, pin {pin}; medians of {max((len(by[t]) for t in trs), default=0)}"
          " run(s) per transport; CPU µs per request\n")
    print("| | " + " | ".join(trs) + (f" | {trs[0]} / {trs[1]} |" if len(trs) == 2 else " |"))
    print("|---|" + "---|" * (len(trs) + (1 if len(trs) == 2 else 0)))

    def line(label, key, d=2):
        vals = [rows[t].get(key) for t in trs]
        cells = [f"{v:,.{d}f}" if v is not None else "–" for v in vals]
        if len(trs) == 2:
            cells.append(f"{vals[0] / vals[1]:.2f}" if vals[0] and vals[1] else "–")
        print(f"| {label} | " + " | ".join(cells) + " |")

    line("req/s (paste-bench)", "rps", 0)
    line("server, /proc/PID/stat", "srv_proc")
    line("server, perf samples in its process", "srv_perf")
    for cat in CATS:
        line(f"  server: {cat}", "s:" + cat)
    line("client, perf samples in its process", "cli_perf")
    for cat in CATS:
        if any(rows[t].get("c:" + cat) for t in trs):
            line(f"  client: {cat}", "c:" + cat)
    line("**server re-attributed** (own rx-softirq out, client's rx-softirq in)", "srv_fair")
    line("client re-attributed", "cli_fair")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        report(sys.argv[2:])
    elif len(sys.argv) in (7, 9):
        classify(sys.argv[1:])
    else:
        sys.exit(__doc__)
