#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""bench/compare_baseline.py WORK OUT - the issue 15 part of bench/compare's report.

Reads WORK/meta.txt and WORK/runs.jsonl (written by bench/compare) and replaces the block between
<!-- baseline:begin --> and <!-- baseline:end --> in OUT/RESULTS.md (the block is appended when
absent; nothing else in the file changes) with:
  - the baseline: WAL POST 1280 B at 64 connections (blocking) and at 1 connection (both sides
    busy-polling) for ref-epoll, ref-uring, paste-wal --transport kernel and paste-wal on the
    paste transport: medians, the spread of the repetitions, ratios measured in the same run;
  - the slow-media sweep (when run): req/s, p50, p99 and records per fence against the emulated
    media latency per fence, with WORK/data/media.dat for bench/media.gp.
"""
import json
import os
import statistics as st
import sys

SERVERS = ("ref-epoll", "ref-uring", "kernel", "paste")
LABEL = {"ref-epoll": "ref-epoll (epoll + libpmem copy)",
         "ref-uring": "ref-uring (io_uring, buffers in the log)",
         "kernel": "paste-wal --transport kernel",
         "paste": "paste-wal, paste transport"}


def load(work):
    meta = {}
    for line in open(os.path.join(work, "meta.txt")):
        k, _, v = line.rstrip("\n").partition("=")
        meta.setdefault(k, v)
    runs = [json.loads(l) for l in open(os.path.join(work, "runs.jsonl")) if l.strip()]
    by_id = {}
    for r in runs:
        by_id.setdefault(r["id"], []).append(r)
    return meta, runs, by_id


def agg(by_id, rid):
    rs = [r for r in by_id.get(rid, []) if r["result"]]
    if not rs:
        return None

    def vals(f):
        out = []
        for r in rs:
            try:
                v = f(r)
            except (KeyError, TypeError):
                v = None
            if v is not None:
                out.append(v)
        return out

    def m(f):
        v = vals(f)
        return st.median(v) if v else None

    rps = vals(lambda r: r["result"]["rps"])
    srv = vals(lambda r: r["result"]["server_cpu_us_per_req"])
    p50s = vals(lambda r: r["result"]["latency_us"]["p50"])
    batch = vals(lambda r: r["srv_stats"]["appended"] / r["srv_stats"]["fences"]
                 if r.get("srv_stats") and r["srv_stats"]["fences"] else None)
    return {
        "n": len(rs), "rps": m(lambda r: r["result"]["rps"]), "rps_all": rps, "p50_all": p50s, "srv_all": srv,
        "p50": m(lambda r: r["result"]["latency_us"]["p50"]),
        "p99": m(lambda r: r["result"]["latency_us"]["p99"]),
        "srv": m(lambda r: r["result"]["server_cpu_us_per_req"]),
        "host": m(lambda r: r["result"].get("host_cpu_us_per_req")),
        "batch": st.median(batch) if batch else None,
        "errors": sum((r["result"].get("errors") or {}).get("total", 0) for r in rs),
        "load": st.median([r["load1"] for r in rs]),
    }


def fmt(v, d=1):
    if v is None:
        return "–"
    if abs(v) >= 1000 and d <= 1:
        return f"{v:,.0f}"
    return f"{v:.{d}f}"


def spread(xs):
    """(max - min) / median of the repetitions, in %."""
    if not xs or len(xs) < 2:
        return "–"
    return f"{(max(xs) - min(xs)) / st.median(xs) * 100:.0f} %"


def ratio(a, b):
    return a / b if a is not None and b else None


def W(tr, p, b, c):
    return f"wal/{tr}/{p}/{b}/http-post/1280/{c}"


def baseline(w, by_id):
    t = {k: agg(by_id, W(k, "persist", "blocking", 64)) for k in SERVERS}
    b = {k: agg(by_id, W(k, "persist", "busy", 1)) for k in SERVERS}
    if not any(t.values()) and not any(b.values()):
        return
    w("### Baseline: WAL POST 1280 B, durable, against the reference servers")
    w("")
    w("64 connections, closed loop, server blocking in epoll_wait / io_uring_enter / poll; and "
      "1 connection with the server on `--busy-poll` and paste-bench `--busy` (both spinning, "
      "each on its own CPU). Medians of the repetitions; `spread` = (max - min) / median of the "
      "repetitions' values, a measure of the run-to-run noise on this shared VM; `srv` = the "
      "server process's CPU µs per request (/proc; on veth part of the client's kernel work is "
      "charged to the server and part of the server's to the client, see above); `host` = the "
      "whole machine's busy CPU µs per request; `rec/fence` = records made durable per fence "
      "(from the server's /stats before and after the run, warm-up included).")
    w("")
    w("| server | 64 conns req/s | spread | srv µs/req | spread | host µs/req | p50 µs | p99 µs "
      "| rec/fence | 1 conn busy p50 µs | spread | p99 µs | req/s | err |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in SERVERS:
        a, c = t[k] or {}, b[k] or {}
        w(f"| {LABEL[k]} | {fmt(a.get('rps'))} | {spread(a.get('rps_all'))} | "
          f"{fmt(a.get('srv'), 2)} | {spread(a.get('srv_all'))} | {fmt(a.get('host'), 2)} | "
          f"{fmt(a.get('p50'))} | "
          f"{fmt(a.get('p99'))} | {fmt(a.get('batch'))} | {fmt(c.get('p50'))} | "
          f"{spread(c.get('p50_all'))} | {fmt(c.get('p99'))} | {fmt(c.get('rps'))} | "
          f"{a.get('errors', 0) + c.get('errors', 0)} |")
    w("")
    w("Ratios measured in the same run (each server against ref-epoll; paste against the best "
      "of the three kernel-TCP servers in each column):")
    w("")
    w("| server | 64 conns req/s ratio | srv CPU/req ratio | 1 conn busy p50 ratio |")
    w("|---|---|---|---|")
    e_t, e_b = t["ref-epoll"] or {}, b["ref-epoll"] or {}
    for k in SERVERS:
        a, c = t[k] or {}, b[k] or {}
        w(f"| {k} / ref-epoll | {fmt(ratio(a.get('rps'), e_t.get('rps')), 2)} | "
          f"{fmt(ratio(a.get('srv'), e_t.get('srv')), 2)} | "
          f"{fmt(ratio(c.get('p50'), e_b.get('p50')), 2)} |")
    kern = [k for k in ("ref-epoll", "ref-uring", "kernel")]
    best_rps = max((t[k]["rps"] for k in kern if t[k] and t[k]["rps"]), default=None)
    best_srv = min((t[k]["srv"] for k in kern if t[k] and t[k]["srv"]), default=None)
    best_p50 = min((b[k]["p50"] for k in kern if b[k] and b[k]["p50"]), default=None)
    pa, pb = t["paste"] or {}, b["paste"] or {}
    w(f"| paste / best kernel-TCP server | {fmt(ratio(pa.get('rps'), best_rps), 2)} | "
      f"{fmt(ratio(pa.get('srv'), best_srv), 2)} | {fmt(ratio(pb.get('p50'), best_p50), 2)} |")
    w("")
    w("Per repetition, in run order: req/s and server µs/req at 64 connections; p50 µs at 1 "
      "connection busy:")
    w("")
    for k in SERVERS:
        a, c = t[k] or {}, b[k] or {}
        w(f"- {k}: " + " / ".join(fmt(x) for x in a.get("rps_all", [])) + "; "
          + " / ".join(fmt(x, 2) for x in a.get("srv_all", [])) + "; "
          + " / ".join(fmt(x) for x in c.get("p50_all", [])))
    w("")


def media(w, by_id, meta, data):
    ds = [int(x) for x in meta.get("media", "").split(",") if x]
    cs = [int(x) for x in meta.get("media_conns", "1,16,64").split(",") if x]
    if not ds:
        return
    w("### Slow media: emulated latency per fence, WAL POST 1280 B")
    w("")
    w("Every server spins for the given time after each fence (paste-wal `--fence-delay NS`; "
      "the reference servers `PASTE_EMU_FENCE_NS=NS`, a spin after each `pmem_drain()`): a "
      "medium whose write acknowledgement takes that long. 1 connection: both sides "
      "busy-polling; more connections: blocking. `x0` = req/s relative to the same server and "
      "connections with no emulated latency; `srv` = server CPU µs per request (the spin "
      "included: its growth over the 0 µs row is the fence's cost per request, i.e. the delay "
      "divided by the batch); `rec/fence` = records made durable per fence (the group-commit "
      "batch).")
    w("")
    w("| fence µs | conns | " + " | ".join(f"{k} req/s (x0) | p50 / p99 µs | srv | rec/fence"
                                           for k in SERVERS) + " |")
    w("|---|---|" + "---|---|---|---|" * len(SERVERS))
    rows = []
    for d in ds:
        for c in cs:
            busy = "busy" if c == 1 else "blocking"
            cells, line = [], [d / 1000, c]
            for k in SERVERS:
                a = agg(by_id, W(k, f"fence{d}", busy, c))
                z = agg(by_id, W(k, f"fence{ds[0]}", busy, c)) if ds[0] == 0 else None
                if not a:
                    cells.append("– | – | – | –")
                    line += ["NaN", "NaN", "NaN", "NaN"]
                    continue
                x0 = ratio(a["rps"], z["rps"]) if z else None
                cells.append(f"{fmt(a['rps'])} ({fmt(x0, 2)}) | {fmt(a['p50'])} / "
                             f"{fmt(a['p99'])} | {fmt(a['srv'], 2)} | {fmt(a['batch'])}")
                line += [a["rps"], a["p50"], a["p99"], "NaN" if a["srv"] is None else a["srv"]]
            w(f"| {d / 1000:g} | {c} | " + " | ".join(cells) + " |")
            rows.append(line)
    w("")
    with open(os.path.join(data, "media.dat"), "w") as f:
        f.write("# fence_us conns " + " ".join(f"{k}_rps {k}_p50 {k}_p99 {k}_srv" for k in SERVERS)
                + "\n")
        for c in cs:
            f.write(f"# conns {c}\n")
            for line in rows:
                if line[1] == c:
                    f.write(" ".join(str(x) for x in line) + "\n")
            f.write("\n\n")
    w(f"Medians of {meta.get('media_reps') or meta.get('reps')} repetition(s) of the sweep.")
    w("")
    w("![slow media](results-media.png)")
    w("")


def main():
    work, out = sys.argv[1], sys.argv[2]
    meta, runs, by_id = load(work)
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    L = []
    w = L.append
    w("<!-- baseline:begin -->")
    w("<!-- Generated by bench/compare (bench/compare_baseline.py); edit outside the markers. -->")
    w("")
    w(f"### Baseline run of {meta.get('date')}")
    w("")
    w(f"- Command: `{meta.get('command', '').strip()}` - {meta.get('reps')} repetition(s) of "
      f"{meta.get('duration')} s measured + {meta.get('warmup')} s warm-up per case; servers "
      f"started in a rotated order each repetition; {meta.get('elapsed_s')} s in all.")
    w(f"- Machine: {meta.get('cpu')}, {meta.get('mem')}, {meta.get('os')}, kernel "
      f"{meta.get('kernel')}; source {meta.get('git')}.")
    if meta.get("pin"):
        c, _, s = meta["pin"].partition(",")
        w(f"- Pinned: paste-bench on CPU {c}, every server on CPU {s} (taskset).")
    else:
        w("- Not pinned (--pin none).")
    loads = [r["load1"] for r in runs]
    if loads:
        w(f"- 1-minute load average when the runs started: median {st.median(loads):.2f}, range "
          f"{min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} vCPUs (the benchmark itself "
          "accounts for ~1-2; more means other work shared the CPUs).")
    w(f"- Pools: paste-wal {meta.get('pool_gb')} GiB on /dev/shm; the reference servers a "
      "512 MiB libpmem ring log on /dev/shm (pre-faulted). Servers: "
      f"{meta.get('bin_wal')}, {meta.get('bin_ref_epoll') or '(ref-epoll not built)'}, "
      f"{meta.get('bin_ref_uring') or '(ref-uring not built)'}; client {meta.get('bin_bench')}.")
    w("")
    baseline(w, by_id)
    media(w, by_id, meta, data)
    cmds = os.path.join(work, "commands.txt")
    if os.path.exists(cmds):
        w("Server commands (in the server namespace; the first of each configuration; the sweep "
          "passes the delay as `--fence-delay NS` to paste-wal and `PASTE_EMU_FENCE_NS=NS` to the "
          "reference servers):")
        w("")
        w("```")
        seen = set()
        for line in open(cmds):
            k = line.split(": ", 1)[0]
            if k.startswith("wal/") and "/fence" not in k or k.endswith("/fence1000/busy"):
                if k not in seen:
                    seen.add(k)
                    w(line.rstrip("\n"))
        w("```")
        w("")
        w("Client: `ip netns exec CLI paste-bench --mode http-post --connect ADDR --size 1280 "
          f"--conns N --duration {meta.get('duration')} --warmup {meta.get('warmup')} --server-pid "
          "PID --json [--busy]`, pinned to the client CPU.")
        w("")
    w("<!-- baseline:end -->")
    block = "\n".join(L) + "\n"
    path = os.path.join(out, "RESULTS.md")
    old = open(path).read() if os.path.exists(path) else ""
    b, e = old.find("<!-- baseline:begin -->"), old.find("<!-- baseline:end -->")
    if b >= 0 and e > b:
        new = old[:b] + block + old[e + len("<!-- baseline:end -->") + 1:]
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + block
    open(path, "w").write(new)
    print(f"baseline report -> {path}")


if __name__ == "__main__":
    main()
