# SPDX-License-Identifier: BSD-2-Clause
# bench/media.gp - the slow-media plot of docs/RESULTS.md (issue 15), from WORK/data/media_fence.dat
# and WORK/data/media_line.dat written by bench/compare_baseline.py:
#
#   gnuplot -e "datadir='WORK/data'; outdir='docs'" bench/media.gp
#
# Each file has one block per connection count (gnuplot index 0, 1, 2 = 1, 16, 64 connections
# with the default --media-conns); columns: emulated µs (per fence, or per flushed line), conns,
# then req/s, p50, p99, server CPU µs per request for ref-epoll (3-6), ref-uring (7-10), paste-wal
# on the kernel transport (11-14), on the io_uring transport (15-18) and on the paste transport
# (19-22). Top row: latency per fence; bottom row: per flushed line (a missing file leaves its
# row empty). Plotted: server CPU per request at 64 and 16 connections (throughput on the shared
# VM varied more between repetitions than between servers) and p50 at 1 connection busy-polling.

if (!exists("datadir")) datadir = "data"
if (!exists("outdir")) outdir = "."

set terminal pngcairo size 1800,1000 font "DejaVu Sans,11" noenhanced
set datafile missing "NaN"
set grid
set style data linespoints
set output outdir."/results-media.png"
set multiplot layout 2,3 title "WAL POST 1280 B against emulated media latency: paste-wal on three transports and the reference servers"
set xrange [-0.5:10.5]
set yrange [0:*]

do for [kind in "fence line"] {
	f = datadir."/media_".kind.".dat"
	set xlabel "emulated latency per ".kind." (µs)"
	set title "64 connections (blocking): server CPU per request, per ".kind
	set ylabel "server CPU µs per request (spin included)"
	set key top left box opaque
	plot f index 2 using 1:6 title "ref-epoll" lw 2, \
	     f index 2 using 1:10 title "ref-uring" lw 2, \
	     f index 2 using 1:14 title "kernel transport" lw 2, \
	     f index 2 using 1:18 title "io_uring transport" lw 2, \
	     f index 2 using 1:22 title "paste transport" lw 2
	set title "16 connections (blocking): server CPU per request, per ".kind
	plot f index 1 using 1:6 title "ref-epoll" lw 2, \
	     f index 1 using 1:10 title "ref-uring" lw 2, \
	     f index 1 using 1:14 title "kernel transport" lw 2, \
	     f index 1 using 1:18 title "io_uring transport" lw 2, \
	     f index 1 using 1:22 title "paste transport" lw 2
	set title "1 connection, both busy-polling: p50 latency, per ".kind
	set ylabel "p50 µs"
	set key top left box opaque
	plot f index 0 using 1:4 title "ref-epoll" lw 2, \
	     f index 0 using 1:8 title "ref-uring" lw 2, \
	     f index 0 using 1:12 title "kernel transport" lw 2, \
	     f index 0 using 1:16 title "io_uring transport" lw 2, \
	     f index 0 using 1:20 title "paste transport" lw 2
}
unset multiplot
