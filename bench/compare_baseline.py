#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""bench/compare_baseline.py WORK OUT - the issue 15 part of bench/compare's report.

Reads WORK/meta.txt and WORK/runs.jsonl (written by bench/compare) and replaces the block between
<!-- baseline:begin --> and <!-- baseline:end --> in OUT/RESULTS.md (the block is appended when
absent; nothing else in the file changes) with:
  - the baseline: WAL POST 1280 B at 64 connections (blocking) and at 1 connection (both sides
    busy-polling) for ref-epoll, ref-uring, paste-wal --transport kernel and paste-wal on the
    paste transport: medians, the spread of the repetitions, ratios measured in the same run;
  - paste-kv SET and GET 1 KiB at 50 connections and at 1 connection busy-polling on the paste,
    kernel and io_uring transports (when run), with the targets of issue 15;
  - the slow-media sweeps (when run): req/s, p50, p99 and records per fence against the emulated
    media latency per fence (--media) and per flushed line (--media-line), with
    WORK/data/media_fence.dat and media_line.dat for bench/media.gp.
"""
import os
import statistics as st
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import pastebench as pb  # noqa: E402

SERVERS = ("ref-epoll", "ref-uring", "kernel", "uring", "paste")
KERNEL_TCP = ("ref-epoll", "ref-uring", "kernel", "uring")  # the servers paste is held against
LABEL = {"ref-epoll": "ref-epoll (epoll + libpmem copy)",
         "ref-uring": "ref-uring (io_uring, buffers in the log)",
         "kernel": "paste-wal --transport kernel",
         "uring": "paste-wal --transport io_uring",
         "paste": "paste-wal, paste transport"}
KV_TRANSPORTS = ("kernel", "uring", "paste")


def load(work):
    meta = pb.read_meta(os.path.join(work, "meta.txt"))
    runs = pb.read_jsonl(os.path.join(work, "runs.jsonl"))
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


fmt, spread, ratio = pb.fmt, pb.spread_pct, pb.ratio


def target(label, v, goal, cmp):
    if v is None:
        verdict = "not run"
    else:
        verdict = "met" if (v <= goal if cmp == "<=" else v >= goal) else "not met"
    return f"| {label} | {fmt(v, 2)} | {cmp} {goal} | {verdict} |"


def K(tr, b, m, c):
    return f"kv/{tr}/persist/{b}/{m}/1024/{c}"


def kv(w, by_id):
    rows = {(tr, m, c): agg(by_id, K(tr, "busy" if c == 1 else "blocking", m, c))
            for tr in KV_TRANSPORTS for m in ("resp-set", "resp-get") for c in (1, 50)}
    if not any(rows.values()):
        return
    w("### Baseline: paste-kv SET and GET 1 KiB, durable, on the three transports")
    w("")
    w("50 connections closed loop, server blocking; 1 connection with paste-kv `--busy-poll` and "
      "paste-bench `--busy`. There is no reference KV server: the kernel and io_uring "
      "transports of paste-kv are the kernel-TCP baselines (the same KV code over kernel "
      "sockets). Columns as above; `load` = 1-minute load average at the start of the runs.")
    w("")
    w("| transport | op | 50 conns req/s | spread | srv µs/req | host µs/req | p50 µs | p99 µs "
      "| 1 conn busy p50 µs | spread | p99 µs | err | load |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for tr in KV_TRANSPORTS:
        for m in ("resp-set", "resp-get"):
            a, c = rows[(tr, m, 50)] or {}, rows[(tr, m, 1)] or {}
            w(f"| {tr} | {m[5:].upper()} | {fmt(a.get('rps'))} | {spread(a.get('rps_all'))} | "
              f"{fmt(a.get('srv'), 2)} | {fmt(a.get('host'), 2)} | {fmt(a.get('p50'))} | "
              f"{fmt(a.get('p99'))} | {fmt(c.get('p50'))} | {spread(c.get('p50_all'))} | "
              f"{fmt(c.get('p99'))} | {a.get('errors', 0) + c.get('errors', 0)} | "
              f"{fmt(a.get('load'), 1)} / {fmt(c.get('load'), 1)} |")
    w("")
    w("Targets of issue 15 for paste-kv (paste against the better of the kernel and io_uring "
      "transports, in this run):")
    w("")
    w("| target | measured | goal | verdict |")
    w("|---|---|---|---|")
    for m in ("resp-set", "resp-get"):
        kern = [rows[(tr, m, 50)] for tr in ("kernel", "uring") if rows[(tr, m, 50)]]
        kb = [rows[(tr, m, 1)] for tr in ("kernel", "uring") if rows[(tr, m, 1)]]
        pa, pb = rows[("paste", m, 50)] or {}, rows[("paste", m, 1)] or {}
        best_srv = min((r["srv"] for r in kern if r["srv"]), default=None)
        best_rps = max((r["rps"] for r in kern if r["rps"]), default=None)
        best_p50 = min((r["p50"] for r in kb if r["p50"]), default=None)
        op = m[5:].upper()
        w(target(f"KV {op} 1 KiB 50 conns: server CPU/req, paste / best",
                 ratio(pa.get("srv"), best_srv), 0.55, "<="))
        w(target("... or req/s, paste / best", ratio(pa.get("rps"), best_rps), 1.5, ">="))
        w(target(f"KV {op} 1 KiB 1 conn busy-poll: p50, paste / best",
                 ratio(pb.get("p50"), best_p50), 0.75, "<="))
    w("")


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
      "| rec/fence | 1 conn busy p50 µs | spread | p99 µs | req/s | err | load |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in SERVERS:
        a, c = t[k] or {}, b[k] or {}
        w(f"| {LABEL[k]} | {fmt(a.get('rps'))} | {spread(a.get('rps_all'))} | "
          f"{fmt(a.get('srv'), 2)} | {spread(a.get('srv_all'))} | {fmt(a.get('host'), 2)} | "
          f"{fmt(a.get('p50'))} | "
          f"{fmt(a.get('p99'))} | {fmt(a.get('batch'))} | {fmt(c.get('p50'))} | "
          f"{spread(c.get('p50_all'))} | {fmt(c.get('p99'))} | {fmt(c.get('rps'))} | "
          f"{a.get('errors', 0) + c.get('errors', 0)} | {fmt(a.get('load'), 1)} / "
          f"{fmt(c.get('load'), 1)} |")
    w("")
    w("Ratios measured in the same run (each server against ref-epoll; paste against the best "
      "of the four kernel-TCP servers in each column):")
    w("")
    w("| server | 64 conns req/s ratio | srv CPU/req ratio | 1 conn busy p50 ratio |")
    w("|---|---|---|---|")
    e_t, e_b = t["ref-epoll"] or {}, b["ref-epoll"] or {}
    for k in SERVERS:
        a, c = t[k] or {}, b[k] or {}
        w(f"| {k} / ref-epoll | {fmt(ratio(a.get('rps'), e_t.get('rps')), 2)} | "
          f"{fmt(ratio(a.get('srv'), e_t.get('srv')), 2)} | "
          f"{fmt(ratio(c.get('p50'), e_b.get('p50')), 2)} |")
    kern = KERNEL_TCP
    best_rps = max((t[k]["rps"] for k in kern if t[k] and t[k]["rps"]), default=None)
    best_srv = min((t[k]["srv"] for k in kern if t[k] and t[k]["srv"]), default=None)
    best_p50 = min((b[k]["p50"] for k in kern if b[k] and b[k]["p50"]), default=None)
    pa, pb = t["paste"] or {}, b["paste"] or {}
    w(f"| paste / best kernel-TCP server | {fmt(ratio(pa.get('rps'), best_rps), 2)} | "
      f"{fmt(ratio(pa.get('srv'), best_srv), 2)} | {fmt(ratio(pb.get('p50'), best_p50), 2)} |")
    w("")
    w("Targets of issue 15 (paste against the best of ref-epoll, ref-uring and paste-wal on the "
      "kernel and io_uring transports, in this run):")
    w("")
    w("| target | measured | goal | verdict |")
    w("|---|---|---|---|")
    w(target("WAL 1280 B 64 conns: server CPU/req, paste / best", ratio(pa.get("srv"), best_srv),
             0.55, "<="))
    w(target("... or req/s, paste / best", ratio(pa.get("rps"), best_rps), 1.5, ">="))
    w(target("WAL 1280 B 1 conn busy-poll: p50, paste / best", ratio(pb.get("p50"), best_p50),
             0.75, "<="))
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


def media(w, by_id, meta, data, kind):
    ds = [int(x) for x in meta.get("media" if kind == "fence" else "media_line", "").split(",")
          if x]
    cs = [int(x) for x in meta.get("media_conns", "1,16,64").split(",") if x]
    if not ds:
        return
    zero = 0 in [int(x) for x in meta.get("media", "").split(",") if x]
    if kind == "line" and zero and 0 not in ds:
        ds = [0] + ds  # the fence0 runs are the line sweep's 0 row too
    if kind == "fence":
        w("### Slow media: emulated latency per fence, WAL POST 1280 B")
        w("")
        head = ("Every server spins for the given time after each fence (paste-wal `--fence-delay NS`; "
          "the reference servers `PASTE_EMU_FENCE_NS=NS`, a spin after each `pmem_drain()`): a "
          "medium whose write acknowledgement takes that long.")
    else:
        w("### Slow media: emulated latency per flushed cache line, WAL POST 1280 B")
        w("")
        head = ("Every server spins at each fence for the given time multiplied by the number of "
          "64-byte lines it flushed since the previous fence (`PASTE_EMU_LINE_NS=NS` for all: "
          "paste-wal's pool counts the lines of its flushes, the reference servers those of "
          "their `pmem_flush()` and `pmem_memcpy_nodrain()` calls): a medium whose write "
          "bandwidth, not its fence, is slow. A 1280-byte record is ~21 lines of body plus its "
          "record header, so this delay is paid per byte and batching cannot amortise it.")
    w(head + " 1 connection: both sides "
      "busy-polling; more connections: blocking. `x0` = req/s relative to the same server and "
      "connections with no emulated latency; `srv` = server CPU µs per request (the spin "
      "included: its growth over the 0 µs row is the medium's cost per request); "
      "`rec/fence` = records made durable per fence (the group-commit batch); `load` = median "
      "1-minute load average at the start of the row's runs.")
    w("")
    unit = "fence µs" if kind == "fence" else "line µs"
    w(f"| {unit} | conns | " + " | ".join(f"{k} req/s (x0) | p50 / p99 µs | srv | rec/fence"
                                          for k in SERVERS) + " | load |")
    w("|---|---|" + "---|---|---|---|" * len(SERVERS) + "---|")
    rows = []
    for d in ds:
        for c in cs:
            busy = "busy" if c == 1 else "blocking"
            cells, line, loads = [], [d / 1000, c], []
            for k in SERVERS:
                a = agg(by_id, W(k, f"{kind if d else 'fence'}{d}", busy, c))
                z = agg(by_id, W(k, "fence0", busy, c))
                if not a:
                    cells.append("– | – | – | –")
                    line += ["NaN", "NaN", "NaN", "NaN"]
                    continue
                x0 = ratio(a["rps"], z["rps"]) if z else None
                loads.append(a["load"])
                cells.append(f"{fmt(a['rps'])} ({fmt(x0, 2)}) | {fmt(a['p50'])} / "
                             f"{fmt(a['p99'])} | {fmt(a['srv'], 2)} | {fmt(a['batch'])}")
                line += [a["rps"], a["p50"], a["p99"], "NaN" if a["srv"] is None else a["srv"]]
            ld = fmt(st.median(loads), 1) if loads else "–"
            w(f"| {d / 1000:g} | {c} | " + " | ".join(cells) + f" | {ld} |")
            rows.append(line)
    w("")
    with open(os.path.join(data, f"media_{kind}.dat"), "w") as f:
        f.write(f"# {kind}_us conns " + " ".join(f"{k}_rps {k}_p50 {k}_p99 {k}_srv" for k in SERVERS)
                + "\n")
        for c in cs:
            f.write(f"# conns {c}\n")
            for line in rows:
                if line[1] == c:
                    f.write(" ".join(str(x) for x in line) + "\n")
            f.write("\n\n")
    w(f"Medians of {meta.get('media_reps') or meta.get('reps')} repetition(s) of the sweep.")
    w("")
    if kind == "line" or not meta.get("media_line"):
        w("![slow media](results-media.png)")
        w("")


def write_report(work, out):
    """The baseline block of OUT/RESULTS.md from WORK (see the module's text); returns its path."""
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
    w(f"- Pools: paste-wal {meta.get('pool_gb')} GiB; the reference servers a 512 MiB libpmem "
      f"ring log (pre-faulted); pages: {meta.get('pool_pages', '4 KiB (tmpfs /dev/shm)')}. Servers: "
      f"{meta.get('bin_wal')}, {meta.get('bin_ref_epoll') or '(ref-epoll not built)'}, "
      f"{meta.get('bin_ref_uring') or '(ref-uring not built)'}; client {meta.get('bin_bench')}.")
    w("")
    baseline(w, by_id)
    kv(w, by_id)
    media(w, by_id, meta, data, "fence")
    media(w, by_id, meta, data, "line")
    cmds = os.path.join(work, "commands.txt")
    if os.path.exists(cmds):
        w("Server commands (in the server namespace; the first of each configuration; the sweep "
          "passes the delay as `--fence-delay NS` to paste-wal and `PASTE_EMU_FENCE_NS=NS` to the "
          "reference servers, the per-line sweep `PASTE_EMU_LINE_NS=NS` to all; paste-kv runs "
          "`paste-bench --mode resp-set|resp-get --size 1024`):")
        w("")
        w("```")
        seen = set()
        with open(cmds) as f:
            lines = f.readlines()
        for line in lines:
            k = line.split(": ", 1)[0]
            if (k.startswith(("wal/", "kv/")) and "/fence" not in k and "/line" not in k
                    or k.endswith(("/fence1000/busy", "/line1000/busy"))):
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
    path = pb.write_block(os.path.join(out, "RESULTS.md"), "baseline", block)
    print(f"baseline report -> {path}")
    return path


def main():
    return pb.report_cli(__doc__, lambda work, out, _flags: write_report(work, out), sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
