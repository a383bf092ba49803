#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Unit tests of bench/lib/pastebench.py's pure parts (parsing paste-bench output, counts, medians,
formatting, rotation, RESULTS.md block replacement, meta files, --pin) and of bench/scaling's
checkpoint arithmetic. No root, no network: ctest runs it as unit/pastebench (label unit)."""
import importlib.machinery
import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(SRC, "bench", "lib"))
import pastebench as pb  # noqa: E402

# One line as bench/paste-bench.c's print_json writes it.
BENCH_LINE = (
    '{"mode":"http-post","target":"10.79.37.2:80","conns":64,"pipeline":1,"size":1280,"loop":"closed",'
    '"rate":0.0,"busy":false,"requests":34947,"seconds":0.500521,"rps":69821.3,"mbps":89.371,"missed":0,'
    '"latency_us":{"min":62.13,"p50":295.94,"p90":2400.26,"p99":8306.69,"p99_9":52297.73,"max":52682.13,'
    '"mean":914.99},"client_cpu_us_per_req":4.729,"server_cpu_us_per_req":null,"server_cpu_util":null,'
    '"errors":{"total":3,"reset":1}}')


def load_program(name):
    """bench/NAME (a Python program without .py) as a module."""
    path = os.path.join(SRC, "bench", name)
    loader = importlib.machinery.SourceFileLoader(f"bench_{name}", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class ParseBench(unittest.TestCase):
    def test_result_line(self):
        r = pb.parse_bench_json(BENCH_LINE + "\n")
        self.assertEqual(r["rps"], 69821.3)
        self.assertEqual(r["latency_us"]["p99_9"], 52297.73)
        self.assertIsNone(r["server_cpu_us_per_req"])
        self.assertEqual(r["errors"]["total"], 3)

    def test_other_lines_around(self):
        text = "warming up\n1 s: 1234 req/s\n" + BENCH_LINE + "\n"
        self.assertEqual(pb.parse_bench_json(text)["requests"], 34947)

    def test_last_object_counts(self):
        text = '{"rps": 1.0}\n{"rps": 2.0}\n'
        self.assertEqual(pb.parse_bench_json(text)["rps"], 2.0)

    def test_no_result(self):
        for text in (None, "", "\n", "paste-bench: connect: refused\n", "null\n", "[1, 2]\n"):
            self.assertIsNone(pb.parse_bench_json(text), repr(text))

    def test_truncated_object(self):
        # A client killed mid-print: no result rather than an exception.
        self.assertIsNone(pb.parse_bench_json(BENCH_LINE[:100]))


class Numbers(unittest.TestCase):
    def test_parse_count(self):
        self.assertEqual(pb.parse_count("10M"), 10000000)
        self.assertEqual(pb.parse_count("300k"), 300000)
        self.assertEqual(pb.parse_count("2G"), 2000000000)
        self.assertEqual(pb.parse_count("7"), 7)
        self.assertEqual(pb.parse_count("007"), 7)
        for bad in ("", "M", "1.5M", "-1", "10 M", "10MB", "0x10"):
            with self.assertRaises(ValueError, msg=bad) as cm:
                pb.parse_count(bad)
            self.assertIn("expected a count", str(cm.exception))

    def test_median(self):
        self.assertEqual(pb.median([3, 1, 2]), 2)
        self.assertEqual(pb.median([4, 1, 2, 3]), 2.5)
        self.assertEqual(pb.median([None, 5, None, 1]), 3)
        self.assertIsNone(pb.median([]))
        self.assertIsNone(pb.median([None, None]))

    def test_spread(self):
        self.assertEqual(pb.spread_pct([90, 100, 110]), "20 %")
        self.assertEqual(pb.spread_pct([100]), "–")
        self.assertEqual(pb.spread_pct(None), "–")

    def test_ratio(self):
        self.assertEqual(pb.ratio(3, 2), 1.5)
        self.assertIsNone(pb.ratio(None, 2))
        self.assertIsNone(pb.ratio(3, None))
        self.assertIsNone(pb.ratio(3, 0))
        self.assertEqual(pb.ratio(0, 3), 0)

    def test_fmt(self):
        self.assertEqual(pb.fmt(None), "–")
        self.assertEqual(pb.fmt(12345.6), "12,346")
        self.assertEqual(pb.fmt(295.94), "295.9")
        self.assertEqual(pb.fmt(4.5678, 2), "4.57")
        self.assertEqual(pb.fmt(1234.5678, 2), "1234.57")  # d > 1: no grouping (compare)
        self.assertEqual(pb.fmt(1234.5678, 2, group=True), "1,235")  # scaling groups always
        self.assertEqual(pb.fmt(-2000.0), "-2,000")


class Rotate(unittest.TestCase):
    def test_rotation(self):
        s = ("a", "b", "c", "d", "e")
        self.assertEqual(pb.rotate(s, 1), list(s))
        self.assertEqual(pb.rotate(s, 2), ["b", "c", "d", "e", "a"])
        self.assertEqual(pb.rotate(s, 6), list(s))
        firsts = [pb.rotate(s, rep)[0] for rep in range(1, len(s) + 1)]
        self.assertEqual(sorted(firsts), list(s))  # every server runs first once
        for rep in range(1, 12):
            self.assertEqual(sorted(pb.rotate(s, rep)), list(s))
        self.assertEqual(pb.rotate([], 3), [])


class Blocks(unittest.TestCase):
    BLOCK = "<!-- x:begin -->\nnew\n<!-- x:end -->\n"

    def test_replace_keeps_outside(self):
        old = "# title\n\nintro\n<!-- x:begin -->\nold 1\nold 2\n<!-- x:end -->\nafter\n"
        self.assertEqual(pb.replace_block(old, "x", self.BLOCK),
                         "# title\n\nintro\n<!-- x:begin -->\nnew\n<!-- x:end -->\nafter\n")

    def test_replace_at_end_without_newline(self):
        old = "a\n<!-- x:begin -->\nold\n<!-- x:end -->"
        self.assertEqual(pb.replace_block(old, "x", self.BLOCK), "a\n" + self.BLOCK)

    def test_replace_is_idempotent(self):
        old = "a\n<!-- x:begin -->\nold\n<!-- x:end -->\n\nb\n"
        once = pb.replace_block(old, "x", self.BLOCK)
        self.assertEqual(pb.replace_block(once, "x", self.BLOCK), once)
        self.assertEqual(once, "a\n" + self.BLOCK + "\nb\n")

    def test_other_blocks_untouched(self):
        old = ("<!-- y:begin -->\ny\n<!-- y:end -->\n<!-- x:begin -->\nold\n<!-- x:end -->\n"
               "<!-- z:begin -->\nz\n<!-- z:end -->\n")
        new = pb.replace_block(old, "x", self.BLOCK)
        self.assertEqual(new, old.replace("old", "new"))

    def test_absent_append(self):
        self.assertEqual(pb.replace_block("text", "x", self.BLOCK, heading="\n## X\n\n"),
                         "text\n\n## X\n\n" + self.BLOCK)
        self.assertEqual(pb.replace_block("text\n", "x", self.BLOCK), "text\n" + self.BLOCK)
        self.assertEqual(pb.replace_block("", "x", self.BLOCK), self.BLOCK)

    def test_absent_prepend(self):
        self.assertEqual(pb.replace_block("rest\n", "x", self.BLOCK, absent="prepend", heading="# H\n\n"),
                         "# H\n\n" + self.BLOCK + "rest\n")

    def test_markers_out_of_order(self):
        old = "<!-- x:end -->\nmid\n<!-- x:begin -->\n"
        self.assertEqual(pb.replace_block(old, "x", self.BLOCK), old + self.BLOCK)

    def test_bad_block(self):
        with self.assertRaises(ValueError):
            pb.replace_block("", "x", "no markers\n")
        with self.assertRaises(ValueError):
            pb.replace_block("", "x", "<!-- y:begin -->\n<!-- y:end -->\n")

    def test_write_block_file(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "RESULTS.md")
            pb.write_block(p, "x", self.BLOCK, absent="prepend", heading="# H\n\n")
            with open(p) as f:
                self.assertEqual(f.read(), "# H\n\n" + self.BLOCK)
            os.chmod(p, 0o600)
            with open(p, "a") as f:
                f.write("kept\n")
            pb.write_block(p, "x", self.BLOCK.replace("new", "newer"))
            with open(p) as f:
                self.assertEqual(f.read(), "# H\n\n" + self.BLOCK.replace("new", "newer") + "kept\n")
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600)
            self.assertEqual(os.listdir(d), ["RESULTS.md"])  # no temporary file left


class Meta(unittest.TestCase):
    def test_read_write(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "meta.txt")
            pb.write_meta(p, {"a": 1, "cmd": "x=y z", "skipped": ["s1", "s2"], "none": None})
            pb.write_meta(p, [("a", 2), ("lib", ["l1"])])
            m = pb.read_meta(p, multi=("skipped", "lib", "absent"))
            self.assertEqual(m["a"], "1")  # the first value of a repeated key
            self.assertEqual(m["cmd"], "x=y z")
            self.assertEqual(m["none"], "")
            self.assertEqual(m["skipped"], ["s1", "s2"])
            self.assertEqual(m["lib"], ["l1"])
            self.assertEqual(m["absent"], [])


class ReportCli(unittest.TestCase):
    def test_report_cli(self):
        calls = []

        def write(work, out, flags):
            calls.append((work, out, flags))

        self.assertEqual(pb.report_cli("doc\n", write, ["W", "O"]), 0)
        self.assertEqual(pb.report_cli("doc\n", write, ["--no-plot", "W", "O"], flags=("--no-plot",)), 0)
        self.assertEqual(calls, [("W", "O", []), ("W", "O", ["--no-plot"])])
        with open(os.devnull, "w") as null:
            saved, sys.stderr = sys.stderr, null
            try:
                self.assertEqual(pb.report_cli("doc\n", write, ["W"]), 2)
                self.assertEqual(pb.report_cli("doc\n", write, ["W", "O", "X"]), 2)
            finally:
                sys.stderr = saved
        self.assertEqual(len(calls), 2)


class Pin(unittest.TestCase):
    def test_parse_pin(self):
        self.assertEqual(pb.parse_pin("0,1", 2), (0, 1))
        self.assertIsNone(pb.parse_pin("none", 2))
        self.assertIsNone(pb.parse_pin("", 2))
        for bad, msg in (("1,1", "different"), ("0,2", "does not exist"), ("0", "expected"), ("a,b", "expected")):
            with self.assertRaises(ValueError) as cm:
                pb.parse_pin(bad, 2)
            self.assertIn(msg, str(cm.exception))
        self.assertEqual(pb.pin_prefix(1), ["taskset", "-c", "1"])
        self.assertEqual(pb.pin_prefix(None), [])


class Cleanup(unittest.TestCase):
    def setUp(self):
        self.handlers = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))

    def tearDown(self):
        signal.signal(signal.SIGTERM, self.handlers[0])
        signal.signal(signal.SIGINT, self.handlers[1])

    def status(self, body):
        seen = []
        try:
            pb.run_with_cleanup(body, seen.append)
        except (SystemExit, ValueError):
            pass
        return seen

    def test_statuses(self):
        self.assertEqual(self.status(lambda: None), [0])
        self.assertEqual(self.status(lambda: sys.exit(3)), [3])
        self.assertEqual(self.status(lambda: sys.exit("message")), [1])

        def bad():
            raise ValueError("x")

        self.assertEqual(self.status(bad), [1])

    def test_signal_runs_cleanup(self):
        # SIGTERM in the middle of the body: the cleanup still runs, with the shell's status 143.
        self.assertEqual(self.status(lambda: os.kill(os.getpid(), signal.SIGTERM) or time.sleep(5)), [143])

    def test_finish_work(self):
        with tempfile.TemporaryDirectory() as d:
            w = os.path.join(d, "work")
            os.mkdir(w)
            pb.finish_work(w, keep=True, rc=0)
            self.assertTrue(os.path.isdir(w))
            pb.finish_work(w, keep=False, rc=1)  # a failed run keeps its raw data
            self.assertTrue(os.path.isdir(w))
            pb.finish_work(w, keep=False, rc=0)
            self.assertFalse(os.path.exists(w))


class ScalingArithmetic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sc = load_program("scaling")

    def test_checkpoints(self):
        self.assertEqual(self.sc.checkpoints(3000, 1000), [0, 1000, 2000, 3000])
        self.assertEqual(self.sc.checkpoints(2500, 1000), [0, 1000, 2000, 2500])

    def test_recovery_points(self):
        M = 1000000
        self.assertEqual(self.sc.recovery_points("auto", 10 * M, M), [M, 5 * M, 10 * M])
        self.assertEqual(self.sc.recovery_points("none", 10 * M, M), [])
        self.assertEqual(self.sc.recovery_points("1M,10M", 10 * M, M), [M, 10 * M])

    def test_dry_run_output(self):
        r = subprocess.run([sys.executable, os.path.join(SRC, "bench", "scaling"), "--dry-run", "--records", "300k",
                            "--keys", "300k", "--step", "100k"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("wal: checkpoints 0 100000 200000 300000 \n", r.stdout)
        self.assertIn("kv: checkpoints 1000 100000 200000 300000 \n", r.stdout)
        self.assertIn("wal: recovery at 100000 200000 300000 \n", r.stdout)

    def test_bad_option(self):
        r = subprocess.run([sys.executable, os.path.join(SRC, "bench", "scaling"), "--records", "1X"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--records: expected a count", r.stderr)


class CompareOptions(unittest.TestCase):
    def run_compare(self, *args):
        return subprocess.run([sys.executable, os.path.join(SRC, "bench", "compare")] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_help(self):
        r = self.run_compare("--help")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("Usage: compare [options]\n"))
        self.assertIn("--reps N         repetitions; the report shows medians (default 3)", r.stdout)

    def test_rejects(self):
        self.assertEqual(self.run_compare("--bogus").returncode, 2)
        r = self.run_compare("--pin", "0,0")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--pin: client and server need different CPUs", r.stderr)
        r = self.run_compare("--suite", "x")
        self.assertIn("--suite: full or baseline", r.stderr)


def result(rps, p50, p99, srv, errors=0):
    """A paste-bench result object with the fields the reports read."""
    return {"rps": rps, "mbps": rps * 1280 / 1e6, "requests": int(rps), "seconds": 1.0,
            "latency_us": {"min": 1.0, "p50": p50, "p90": p99 / 2, "p99": p99, "p99_9": p99 * 2, "max": p99 * 3,
                           "mean": p50},
            "server_cpu_us_per_req": srv, "host_cpu_us_per_req": srv * 3, "client_cpu_us_per_req": 1.0,
            "errors": {"total": errors}}


class CompareReports(unittest.TestCase):
    """bench/compare's two report blocks from a synthetic work directory: three repetitions of
    WAL 1280 B at 64 connections on the paste and kernel transports."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.work = os.path.join(self.dir.name, "work")
        self.out = os.path.join(self.dir.name, "out")
        os.makedirs(self.work)
        os.makedirs(self.out)
        pb.write_meta(os.path.join(self.work, "meta.txt"), [
            ("date", "2026-01-01 00:00 UTC"), ("elapsed_s", 42), ("reps", 3), ("duration", 2), ("warmup", 0.5),
            ("kernel", "6.1"), ("cpu", "CPU x 2"), ("mem", "1.0 GiB"), ("os", "Debian"), ("ext4", "ext4 /dev/x"),
            ("command", "bench/compare --reps 3"), ("pkg_gcc", "12"), ("git", "abc1234"), ("pin", "0,1"),
            ("suite", "full"), ("media", ""), ("media_line", ""), ("media_conns", "1,16,64"), ("pool_gb", 2),
            ("pool_pages", "2 MiB (hugetlbfs, --huge)"), ("skipped", ["redis: not installed", "redis: not installed"])])
        runs = []
        for rep, (pr, kr) in enumerate(((300, 100), (100, 300), (200, 200)), 1):
            for tr, rps in (("paste", pr * 1000), ("kernel", kr * 1000)):
                runs.append({"id": f"wal/{tr}/persist/blocking/http-post/1280/64", "rep": rep, "rc": 0,
                             "load1": 1.0 + rep, "result": result(rps, 50.0 * rep, 500.0, 4.0 if tr == "paste" else 8.0),
                             "srv_stats": {"appended": 1000, "fences": 100}})
        with open(os.path.join(self.work, "runs.jsonl"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in runs))
        self.results = os.path.join(self.out, "RESULTS.md")
        with open(self.results, "w") as f:
            f.write("# Results\n\nanalysis above\n<!-- compare:begin -->\nold\n<!-- compare:end -->\n\n"
                    "between\n<!-- baseline:begin -->\nold\n<!-- baseline:end -->\nanalysis below\n")

    def tearDown(self):
        self.dir.cleanup()

    def test_blocks(self):
        sys.path.insert(0, os.path.join(SRC, "bench"))
        import compare_baseline
        import compare_report
        compare_report.write_report(self.work, self.out)
        compare_baseline.write_report(self.work, self.out)
        with open(self.results) as f:
            text = f.read()
        # outside the markers: unchanged
        self.assertTrue(text.startswith("# Results\n\nanalysis above\n<!-- compare:begin -->\n"))
        self.assertIn("<!-- compare:end -->\n\nbetween\n<!-- baseline:begin -->\n", text)
        self.assertTrue(text.endswith("<!-- baseline:end -->\nanalysis below\n"))
        self.assertNotIn("old", text)
        # medians of the three repetitions: 200,000 req/s each, p50 100 µs
        self.assertIn("| 64 conn paste persist | 200,000 | 100.0 | 500.0 | 1,000 | 4.00 | 12.00 | 0 | 3.0 |", text)
        self.assertIn("| 64 conn kernel persist | 200,000 | 100.0 | 500.0 | 1,000 | 8.00 | 24.00 | 0 | 3.0 |", text)
        self.assertIn("| persist 1280 B 64 conn | 1.00 | 1.00 | 1.00 | 0.50 |", text)  # paste / kernel
        self.assertIn("- Not run: redis: not installed.", text)
        # the baseline block: spread (max - min) / median of the repetitions, records per fence
        self.assertIn("| paste-wal, paste transport | 200,000 | 100 % | 4.00 | 0 % | 12.00 | 100.0 | 500.0 | 10.0 |", text)
        self.assertIn("- paste: 300,000 / 100,000 / 200,000; 4.00 / 4.00 / 4.00; ", text)
        self.assertIn("| WAL 1280 B 64 conns: server CPU/req, paste / best | 0.50 | <= 0.55 | met |", text)
        self.assertIn("pages: 2 MiB (hugetlbfs, --huge).", text)  # the page size of the pools (--huge)


class ScalingReport(unittest.TestCase):
    """bench/scaling's block from a synthetic work directory: WAL at 0 and 1 M records."""

    def test_block(self):
        sys.path.insert(0, os.path.join(SRC, "bench"))
        import scaling_report
        with tempfile.TemporaryDirectory() as d:
            work, out = os.path.join(d, "work"), os.path.join(d, "out")
            os.makedirs(work)
            os.makedirs(out)
            pb.write_meta(os.path.join(work, "meta.txt"), [
                ("date", "2026-01-01 00:00 UTC"), ("command", "bench/scaling"), ("load_start", "1/1/1"),
                ("wal_conns", 16), ("lat_runs", 3), ("lat_secs", 3), ("tput_secs", 3), ("warmup", 0.5),
                ("pin_cpu", 1), ("wal_pool_mib", 6272), ("wal_log_bytes", 700 << 20),
                ("wal_lib", ["libpaste-xdp: info: created pool"]), ("wal_term_rc", 0)])
            runs = []
            for ckpt, p99s in ((0, (10.0, 12.0, 11.0)), (1000000, (13.0, 14.0, 30.0))):
                for rep, p99 in enumerate(p99s, 1):
                    runs.append({"kind": "lat1", "index": "wal", "ckpt": ckpt, "count": ckpt, "rep": rep, "rc": 0,
                                 "load1": 1.5, "result": result(40000.0, 7.0, p99, 20.0)})
                runs.append({"kind": "tput", "index": "wal", "ckpt": ckpt, "count": ckpt, "rep": 1, "rc": 0,
                             "load1": 1.5, "result": result(150000.0, 90.0, 400.0, 6.0)})
            with open(os.path.join(work, "runs.jsonl"), "w") as f:
                f.write("".join(json.dumps(r) + "\n" for r in runs))
            with open(os.path.join(work, "recovery.jsonl"), "w") as f:
                f.write(json.dumps({"index": "wal", "count": 1000000, "pool_mib": 6272, "payload_bytes": 64000000,
                                    "term_rc": 0, "clean_ms": 100.0, "clean_kind": "clean", "clean_ready_ms": 2500,
                                    "unclean_ms": 400.0, "unclean_kind": "unclean", "unclean_ready_ms": 2900,
                                    "load1": 1.0}) + "\n")
            with open(os.path.join(out, "RESULTS.md"), "w") as f:
                f.write("# Results\n")
            scaling_report.write_report(work, out, plot=False)
            with open(os.path.join(out, "RESULTS.md")) as f:
                text = f.read()
            self.assertTrue(text.startswith("# Results\n\n## Scaling\n\n<!-- scaling:begin -->\n"))
            self.assertIn("| 0 | 7.0 | 5.5 | 11.0 | 10-12 | 22.0 | 40,000 | 150,000 | 400.0 | 1.50 |", text)
            self.assertIn("| 1 M | 7.0 | 7.0 | 14.0 | 13-30 | 28.0 | 40,000 | 150,000 | 400.0 | 1.50 |", text)
            # p99 11 -> 14 µs: 1.27, above 1.2x, but not evaluated below 10 M records
            self.assertIn("| 11.0 | 14.0 | 1.27 | <= 1.2 | not evaluated: this run stopped at 1 M records", text)
            self.assertIn("| wal | 1 M | 6,272 | 64 | 100.0 | 2,500 | 10.00 | 0.64 | 400.0 | 2,900 | 2.50 | 0.16 |", text)
            self.assertNotIn("results-scaling.png", text)
            self.assertTrue(os.path.exists(os.path.join(work, "data", "wal.dat")))


class CoresSweepOptions(unittest.TestCase):
    def test_help_and_unknown(self):
        prog = os.path.join(SRC, "bench", "cores-sweep")
        r = subprocess.run([sys.executable, prog, "--help"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("Usage: cores-sweep [options]\n"))
        self.assertIn(f"(default: nproc = {os.cpu_count()})", r.stdout)
        r = subprocess.run([sys.executable, prog, "--bogus"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown option '--bogus'", r.stderr)


if __name__ == "__main__":
    unittest.main()
