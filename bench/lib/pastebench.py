# SPDX-License-Identifier: BSD-2-Clause
"""bench/lib/pastebench.py - what the benchmark programs of bench/ share.

Python 3 standard library only. bench/compare and bench/scaling import it; each keeps only its own
matrix and report. What is here:

  pure parts (no system access; tests/bench/test_pastebench.py covers them)
    parse_bench_json   the result object paste-bench --json printed, or None
    parse_count        a decimal count with an optional K/M/G suffix
    median, spread_pct, ratio, fmt
    rotate             the servers of one repetition in an order rotated by one per repetition
    replace_block      put a generated block between <!-- NAME:begin --> and <!-- NAME:end -->
    read_meta          a key=value file (meta.txt) into a dict, repeated keys into lists
  system parts
    Testbed            scripts/testbed with private names: up, down, env, in_cli/in_srv, reap
    Server             start in the server namespace, wait for its ready line, stop by PID
    pin_prefix, parse_pin, taskset_pid, load1, cpu_ticks
    run_bench          one paste-bench run from the client namespace, its JSON parsed
    run_with_cleanup   the body of a program with its cleanup, also on die() and signals
    finish_work, gnuplot, report_cli
    conditions         kernel, CPUs, memory, OS, load, date, source commit, packages
    write_block        replace_block on a file (RESULTS.md), written atomically
    find_bin, ensure_bench, make_work, on_signals_exit, log, die

Run as a program it is the client-side protocol helper the benchmarks start inside the client
namespace (ip netns exec NS python3 pastebench.py ...):
    pastebench.py http METHOD HOST PORT PATH   print the body; exit 1 on a non-2xx status
    pastebench.py resp HOST PORT ARG...        send one RESP command, print the reply line
"""
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "pastebench"


# ---- messages -----------------------------------------------------------------------------------


def log(msg):
    """A progress line on stderr, prefixed with the time of day."""
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
    sys.stderr.flush()


def die(msg):
    """The program's name and MSG on stderr, exit status 1 (cleanup runs: it raises SystemExit)."""
    sys.stderr.write(f"{PROG}: {msg}\n")
    sys.stderr.flush()
    sys.exit(1)


def on_signals_exit():
    """SIGTERM and SIGINT raise SystemExit(143 / 130), so try/finally cleanup runs."""

    def handler(signum, _frame):
        raise SystemExit(143 if signum == signal.SIGTERM else 130)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_with_cleanup(body, cleanup):
    """BODY(), then CLEANUP(rc) whatever happens: rc 0 when BODY returned, the status of a
    SystemExit (die(), or SIGINT/SIGTERM, which on_signals_exit turns into one), 1 after any other
    exception (which then propagates, as does the SystemExit)."""
    on_signals_exit()
    rc = 1
    try:
        body()
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        raise
    finally:
        cleanup(rc)


def finish_work(work, keep, rc):
    """Remove the work directory after a successful run without --keep; otherwise say where it is."""
    if not work:
        return
    if not keep and rc == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"work directory kept: {work}")


def gnuplot(script, variables, log_path):
    """gnuplot -e 'k='v'; ...' SCRIPT, its stderr into LOG_PATH. True when it succeeded; otherwise
    the first lines of its log are logged."""
    expr = "; ".join(f"{k}='{v}'" for k, v in variables.items())
    with open(log_path, "w") as f:
        ok = subprocess.call(["gnuplot", "-e", expr, script], stderr=f) == 0
    if not ok:
        with open(log_path, errors="replace") as f:
            log("gnuplot failed: " + " ".join(f.read().splitlines()[:5]))
    return ok


def report_cli(doc, write, argv, flags=()):
    """The command line of a report module, WORK OUT [FLAG...]: calls WRITE(work, out, flags
    given) and returns 0; --help prints DOC (0); other arguments print DOC on stderr (2)."""
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(doc)
        return 0
    args = [a for a in argv if a not in flags]
    if len(args) != 2:
        sys.stderr.write(doc)
        return 2
    write(args[0], args[1], [a for a in argv if a in flags])
    return 0


# ---- pure parts ---------------------------------------------------------------------------------


def parse_bench_json(text):
    """The result object of `paste-bench --json` in TEXT (its stdout), or None.

    paste-bench prints one JSON object on one line; anything else (an empty output after a crash,
    an error text) gives None. When several object lines are present the last one counts."""
    if not text:
        return None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None
    return None


def parse_count(value):
    """A decimal count with an optional K/M/G suffix (x 1000): '10M' -> 10000000.

    Raises ValueError with a message naming what was expected."""
    m = re.fullmatch(r"([0-9]+)([kKmMgG]?)", str(value))
    if not m:
        raise ValueError(f"expected a count (digits, optional K/M/G), got '{value}'")
    mult = {"": 1, "k": 1000, "m": 1000000, "g": 1000000000}[m.group(2).lower()]
    return int(m.group(1)) * mult


def median(xs):
    """The median of the values that are not None; None when there are none."""
    v = [x for x in xs if x is not None]
    return statistics.median(v) if v else None


def spread_pct(xs):
    """(max - min) / median of the repetitions, as '12 %'; '–' for fewer than two values."""
    if not xs or len(xs) < 2:
        return "–"
    return f"{(max(xs) - min(xs)) / statistics.median(xs) * 100:.0f} %"


def ratio(a, b):
    """a / b, or None when either is missing or b is 0."""
    return a / b if a is not None and b not in (None, 0) else None


def fmt(v, d=1, group=None):
    """A table cell: '–' for None; thousands separated, no decimals, for |v| >= 1000 when GROUP
    (default: when d <= 1); else d decimals."""
    if v is None:
        return "–"
    if group is None:
        group = d <= 1
    if abs(v) >= 1000 and group:
        return f"{v:,.0f}"
    return f"{v:.{d}f}"


def rotate(items, rep):
    """ITEMS rotated left by REP - 1 (REP counts from 1): repetition 1 keeps the order, 2 starts
    with the second item, ...; over len(items) repetitions each item runs first once, so no server
    always runs first after a quiet spell or last."""
    items = list(items)
    if not items:
        return items
    k = (rep - 1) % len(items)
    return items[k:] + items[:k]


def markers(name):
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_block(text, name, block, absent="append", heading=""):
    """TEXT with the block between <!-- NAME:begin --> and <!-- NAME:end --> (markers included,
    and the newline after the end marker) replaced by BLOCK, which must carry both markers.
    Nothing outside the markers changes. When the markers are missing (or out of order), BLOCK is
    appended (ABSENT='append': after a newline if TEXT does not end in one, then HEADING) or put
    before the whole text (ABSENT='prepend': HEADING, BLOCK, TEXT)."""
    begin, end = markers(name)
    if not block.startswith(begin) or end not in block:
        raise ValueError(f"block for '{name}' must start with {begin} and hold {end}")
    b, e = text.find(begin), text.find(end)
    if b >= 0 and e > b:
        e += len(end)
        if text[e:e + 1] == "\n":
            e += 1
        return text[:b] + block + text[e:]
    if absent == "prepend":
        return heading + block + text
    sep = "\n" if text and not text.endswith("\n") else ""
    return text + sep + heading + block


def read_meta(path, multi=()):
    """A key=value file: a dict of the first value of each key; keys in MULTI collect every value
    in a list (an empty list when absent)."""
    meta = {k: [] for k in multi}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k in multi:
                meta[k].append(v)
            else:
                meta.setdefault(k, v)
    return meta


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- files --------------------------------------------------------------------------------------


def write_block(path, name, block, absent="append", heading=""):
    """replace_block on the file PATH (a missing file counts as empty), written to a temporary
    file and renamed over it, so an interrupted write leaves the old file whole."""
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    new = replace_block(old, name, block, absent, heading)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".RESULTS.", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new)
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def make_work(work, prefix):
    """The work directory: WORK (created if missing), else a new /var/tmp/PREFIX.XXXXXX."""
    if work:
        os.makedirs(work, exist_ok=True)
        return os.path.abspath(work)
    return tempfile.mkdtemp(prefix=prefix + ".", dir="/var/tmp")


def find_bin(name, build=None):
    """NAME from --build DIR, else build/, else build-bench/ of the source tree; None if none."""
    for d in ([build] if build else []) + [os.path.join(SRC, "build"), os.path.join(SRC, "build-bench")]:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def compile_bench(work):
    """bench/paste-bench.c and bench/bench_*.c compiled into WORK/paste-bench; dies when gcc fails."""
    out = os.path.join(work, "paste-bench")
    bench = os.path.join(SRC, "bench")
    srcs = [os.path.join(bench, "paste-bench.c")] + sorted(
        os.path.join(bench, f) for f in os.listdir(bench) if f.startswith("bench_") and f.endswith(".c"))
    rc = subprocess.call(["gcc", "-O2", "-Wall", "-Wextra"] + srcs + ["-o", out, "-lm"])
    if rc != 0:
        die("cannot compile bench/paste-bench.c and bench/bench_*.c")
    return out


def bench_has(bench, flag):
    """Whether BENCH's --help mentions FLAG."""
    try:
        out = subprocess.run([bench, "--help"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return False
    return flag in out


# ---- machine ------------------------------------------------------------------------------------


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def loadavg3():
    with open("/proc/loadavg") as f:
        return "/".join(f.read().split()[:3])


def cpu_ticks(pid):
    """utime + stime of PID in clock ticks (/proc/PID/stat), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def git_commit(src=SRC):
    """'abc1234', with ' (with uncommitted changes)' when the tree differs; 'unknown' outside git."""
    head = _sh(["git", "-C", src, "rev-parse", "--short", "HEAD"]) or "unknown"
    clean = subprocess.call(["git", "-C", src, "diff", "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL) == 0
    return head + ("" if clean else " (with uncommitted changes)")


def pkg_version(pkg):
    return _sh(["dpkg-query", "-W", "-f", "${Version}", pkg]) or "none"


def conditions():
    """The conditions a report states: date (UTC), kernel, cpu ('MODEL x N'), mem, os, load
    (1/5/15 min) and the source commit. Values as the bash scripts printed them."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem_kib = int(line.split()[1])
    os_name = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = shlex.split(line.split("=", 1)[1])[0]
    except (OSError, IndexError):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": os.uname().release,
        "cpu": f"{model} x {len(os.sched_getaffinity(0))}",
        "mem": f"{mem_kib / 1048576:.1f} GiB",
        "os": os_name,
        "load": loadavg3(),
        "git": git_commit(),
    }


def write_meta(path, items):
    """ITEMS (a dict or (key, value) pairs; a list value gives one line per element) as key=value
    lines, appended to PATH."""
    pairs = items.items() if isinstance(items, dict) else items
    with open(path, "a") as f:
        for k, v in pairs:
            for x in (v if isinstance(v, list) else [v]):
                f.write(f"{k}={'' if x is None else x}\n")


# ---- CPU pinning --------------------------------------------------------------------------------


def parse_pin(spec, ncpu):
    """--pin CLI,SRV: (cli, srv) CPU numbers, or None for 'none'/''. Raises ValueError."""
    if spec in (None, "", "none"):
        return None
    m = re.fullmatch(r"([0-9]+),([0-9]+)", spec)
    if not m:
        raise ValueError("expected CLI,SRV CPU numbers, e.g. 0,1")
    cli, srv = int(m.group(1)), int(m.group(2))
    if cli == srv:
        raise ValueError("client and server need different CPUs")
    for c in (cli, srv):
        if c >= ncpu:
            raise ValueError(f"CPU {c} does not exist ({ncpu} online)")
    return cli, srv


def pin_prefix(cpu):
    """The command prefix that runs a program on CPU (taskset -c; it execs the program, so a PID
    taken from the prefixed command is the program's); [] for None."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def taskset_pid(pid, cpu=None, mask=None):
    """Move every thread of PID to CPU (taskset -a -p -c) or to the affinity MASK (hex)."""
    arg = ["-c", str(cpu)] if cpu is not None else [mask]
    subprocess.run(["taskset", "-a", "-p"] + arg + [str(pid)], stdout=subprocess.DEVNULL, check=True)


def affinity_mask():
    """The hex affinity mask of this process (what taskset -p prints), to undo a pinning."""
    return format(sum(1 << c for c in os.sched_getaffinity(0)), "x")


# ---- testbed ------------------------------------------------------------------------------------


class Testbed:
    """scripts/testbed with private names: two namespaces joined by a veth pair on NET.0/24.

    Names must be unique on the machine (they carry the PID of the run); veth names at most 15
    characters. up() creates it and reads `testbed env` into self.env (PASTE_SRV_IP,
    PASTE_STACK_IP, ...); down() removes it; reap() ends what still runs in the server namespace."""

    def __init__(self, ns_cli, ns_srv, veth_cli, veth_srv, net, queues=None):
        for v in (veth_cli, veth_srv):
            if len(v) > 15:
                raise ValueError(f"veth name '{v}' is longer than 15 characters")
        self.ns_cli, self.ns_srv = ns_cli, ns_srv
        self.veth_cli, self.veth_srv = veth_cli, veth_srv
        self.net = net
        self.queues = queues  # TX and RX queues of each veth end (PASTE_QUEUES; None: inherited)
        self.script = os.path.join(SRC, "scripts", "testbed")
        self.env = {}
        self.is_up = False

    def _environ(self):
        e = dict(os.environ)
        e.update(PASTE_NS_CLI=self.ns_cli, PASTE_NS_SRV=self.ns_srv, PASTE_VETH_CLI=self.veth_cli,
                 PASTE_VETH_SRV=self.veth_srv, PASTE_NET=self.net)
        if self.queues is not None:
            e["PASTE_QUEUES"] = str(self.queues)
        return e

    def up(self, log_path):
        """Build the testbed; its output goes to LOG_PATH. Dies with that output on failure."""
        self.is_up = True  # a half-made testbed is removed by down() too
        with open(log_path, "w") as f:
            rc = subprocess.call([self.script, "up"], stdout=f, stderr=subprocess.STDOUT, env=self._environ())
        if rc != 0:
            with open(log_path) as f:
                sys.stderr.write(f.read())
            die("testbed up failed")
        out = subprocess.run([self.script, "env"], capture_output=True, text=True, env=self._environ(),
                             check=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition("=")
            if k:
                self.env[k.strip()] = shlex.split(v)[0] if v else ""
        return self

    def down(self):
        if self.is_up:
            subprocess.call([self.script, "down"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=self._environ())
            self.is_up = False

    @property
    def srv_ip(self):
        return self.env["PASTE_SRV_IP"]

    @property
    def stack_ip(self):
        return self.env["PASTE_STACK_IP"]

    def in_cli(self, cmd):
        return ["ip", "netns", "exec", self.ns_cli] + list(cmd)

    def in_srv(self, cmd):
        return ["ip", "netns", "exec", self.ns_srv] + list(cmd)

    def xdp_attached(self):
        out = _sh(self.in_srv(["ip", "link", "show", "dev", self.veth_srv]))
        return "prog/xdp" in out

    def wait_xdp_detached(self, timeout=10.0):
        """One libpaste-xdp instance per interface: wait until the previous one has detached."""
        t_end = time.monotonic() + timeout
        while self.xdp_attached() and time.monotonic() < t_end:
            time.sleep(0.1)

    def reap(self):
        """Anything still running in the server namespace was started by this run (a server that
        forked, say): end it by PID."""
        if not os.path.exists(f"/var/run/netns/{self.ns_srv}"):
            return
        for p in _sh(["ip", "netns", "pids", self.ns_srv]).split():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            log(f"ending leftover pid {p} in {self.ns_srv}: {cmd}")
            try:
                os.kill(int(p), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def client_http(self, method, host, port, path, timeout=60):
        """An HTTP request from the client namespace (this file run as the helper there): the body,
        or raises RuntimeError with the helper's message."""
        r = subprocess.run(self.in_cli([sys.executable, os.path.abspath(__file__), "http", method, host,
                                        str(port), path, str(timeout)]),
                           capture_output=True, text=True, timeout=timeout + 30)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip() or f"http helper exited with status {r.returncode}")
        return r.stdout

    def client_resp(self, host, port, *args, timeout=60):
        """One RESP command from the client namespace: the reply line (':5', '+OK', ...)."""
        r = subprocess.run(self.in_cli([sys.executable, os.path.abspath(__file__), "resp", host, str(port)]
                                       + list(args)), capture_output=True, text=True, timeout=timeout + 30)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip() or f"resp helper exited with status {r.returncode}")
        return r.stdout.strip()


# ---- servers ------------------------------------------------------------------------------------


class Server:
    """One server process in the server namespace, known by its PID.

    start() runs CMD as `ip netns exec NS [taskset -c CPU] CMD` (both exec, so the PID is the
    server's), output to LOG, and polls LOG for the READY regular expression. stop() sends SIGTERM,
    waits, SIGKILLs after a timeout and returns the exit status; kill() is SIGKILL at once."""

    def __init__(self, testbed):
        self.tb = testbed
        self.proc = None
        self.log = None
        self.ready_ms = None
        self.why = None  # why start() failed

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, cmd, ready, log_path, pin=(), timeout=30.0, poll=0.1, env=None):
        """True when READY appeared in the log within TIMEOUT s; False (self.why says why) when the
        server exited first or was not ready in time (then it has been stopped)."""
        self.log = log_path
        self.why = None
        rx = re.compile(ready, re.M)
        t0 = time.monotonic()
        with open(log_path, "w") as f:
            self.proc = subprocess.Popen(self.tb.in_srv(list(pin) + list(cmd)), stdout=f,
                                         stderr=subprocess.STDOUT, env=env)
        t_end = t0 + timeout
        while True:
            with open(log_path, errors="replace") as f:
                text = f.read()
            if rx.search(text):
                self.ready_ms = int((time.monotonic() - t0) * 1000)
                return True
            if self.proc.poll() is not None:
                self.proc = None
                tail = " ".join(text.splitlines()[-2:])
                self.why = f"exited before it was ready: {tail}"
                return False
            if time.monotonic() > t_end:
                self.why = f"not ready after {timeout:g} s"
                self.stop()
                return False
            time.sleep(poll)

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self, timeout=15.0):
        """SIGTERM; SIGKILL after TIMEOUT s. The exit status (None when no server ran; a signal
        number as 128 + N, like the shell)."""
        if not self.proc:
            return None
        p, self.proc = self.proc, None
        try:
            p.send_signal(signal.SIGTERM)
        except OSError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"server pid {p.pid} did not exit within {timeout:g} s of SIGTERM: SIGKILL")
            p.kill()
            p.wait()
        self.tb.reap()
        return p.returncode if p.returncode >= 0 else 128 - p.returncode

    def kill(self):
        """SIGKILL, no shutdown at all."""
        if not self.proc:
            return
        p, self.proc = self.proc, None
        p.kill()
        p.wait()
        self.tb.reap()


# ---- paste-bench --------------------------------------------------------------------------------


def run_bench(testbed, bench, args, pin=(), stderr=None):
    """One paste-bench run in the client namespace (with --json among ARGS): (exit status, the
    parsed result or None, its stdout). STDERR: a path its stderr is appended to, or None."""
    cmd = testbed.in_cli(list(pin) + [bench] + list(args))
    if stderr:
        with open(stderr, "a") as f:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True)
    else:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    return r.returncode, parse_bench_json(r.stdout), r.stdout


def result_line(res):
    """'N req/s, p50 X us, p99 Y us, server Z us/req' for a progress line."""
    if not res:
        return ""
    lat = res.get("latency_us") or {}
    srv = res.get("server_cpu_us_per_req")
    return (f"{res.get('rps')} req/s, p50 {lat.get('p50')} us, p99 {lat.get('p99')} us, "
            f"server {'null' if srv is None else srv} us/req")


# ---- the client-side helper ---------------------------------------------------------------------


def _http(method, host, port, path, timeout=60.0):
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, body


def _resp(host, port, *args, timeout=60.0):
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args))
    data = b""
    while not data.endswith(b"\r\n"):
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.close()
    return data.decode().strip()


def _helper(argv):
    if len(argv) >= 5 and argv[0] == "http":
        status, body = _http(argv[1], argv[2], argv[3], argv[4], float(argv[5]) if len(argv) > 5 else 60)
        if status // 100 != 2:
            sys.exit(f"{argv[1]} {argv[4]}: HTTP {status}: {body[:200]!r}")
        sys.stdout.write(body.decode(errors="replace"))
        return 0
    if len(argv) >= 4 and argv[0] == "resp":
        print(_resp(argv[1], argv[2], *argv[3:]))
        return 0
    sys.stderr.write(__doc__.split("Run as a program", 1)[1])
    return 2


if __name__ == "__main__":
    sys.exit(_helper(sys.argv[1:]))
