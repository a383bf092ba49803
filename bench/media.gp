# SPDX-License-Identifier: BSD-2-Clause
# bench/media.gp - the slow-media plot of docs/RESULTS.md (issue 15), from WORK/data/media.dat
# written by bench/compare_baseline.py:
#
#   gnuplot -e "datadir='WORK/data'; outdir='docs'" bench/media.gp
#
# media.dat has one block per connection count (gnuplot index 0, 1, 2 = 1, 16, 64 connections
# with the default --media-conns); columns: fence µs, conns, then req/s, p50, p99, server CPU µs
# per request for ref-epoll (3-6), ref-uring (7-10), paste-wal kernel transport (11-14) and
# paste-wal paste transport (15-18).

if (!exists("datadir")) datadir = "data"
if (!exists("outdir")) outdir = "."
f = datadir."/media.dat"

set terminal pngcairo size 1500,1000 font "DejaVu Sans,11"
set datafile missing "NaN"
set grid
set style data linespoints
set output outdir."/results-media.png"
set multiplot layout 2,2 title "paste-wal and the reference servers, WAL POST 1280 B: emulated media latency per fence"
set xlabel "emulated latency per fence (µs)"
set xrange [-0.5:10.5]

set title "64 connections (blocking): throughput"
set ylabel "req/s"
set yrange [0:*]
set key bottom left box opaque
plot f index 2 using 1:3 title "ref-epoll" lw 2, \
     f index 2 using 1:7 title "ref-uring" lw 2, \
     f index 2 using 1:11 title "kernel transport" lw 2, \
     f index 2 using 1:15 title "paste transport" lw 2

set title "16 connections (blocking): throughput"
plot f index 1 using 1:3 title "ref-epoll" lw 2, \
     f index 1 using 1:7 title "ref-uring" lw 2, \
     f index 1 using 1:11 title "kernel transport" lw 2, \
     f index 1 using 1:15 title "paste transport" lw 2

set title "server CPU µs per request (spin included): 64 conns solid, 16 dashed"
set ylabel "µs per request"
set key top left box opaque
plot f index 2 using 1:6 title "ref-epoll 64" lw 2 lc 1, \
     f index 2 using 1:10 title "ref-uring 64" lw 2 lc 2, \
     f index 2 using 1:14 title "kernel 64" lw 2 lc 3, \
     f index 2 using 1:18 title "paste 64" lw 2 lc 4, \
     f index 1 using 1:6 notitle lw 2 lc 1 dt 2, \
     f index 1 using 1:10 notitle lw 2 lc 2 dt 2, \
     f index 1 using 1:14 notitle lw 2 lc 3 dt 2, \
     f index 1 using 1:18 notitle lw 2 lc 4 dt 2

set title "1 connection, both busy-polling: p50 latency"
set ylabel "p50 µs"
set key top left box opaque
set yrange [0:*]
plot f index 0 using 1:4 title "ref-epoll" lw 2, \
     f index 0 using 1:8 title "ref-uring" lw 2, \
     f index 0 using 1:12 title "kernel transport" lw 2, \
     f index 0 using 1:16 title "paste transport" lw 2
unset multiplot
