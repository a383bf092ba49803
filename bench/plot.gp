# SPDX-License-Identifier: BSD-2-Clause
# bench/plot.gp - the plots of docs/RESULTS.md, from the data files bench/compare writes.
#
#   gnuplot -e "datadir='WORK/data'; outdir='docs'" bench/plot.gp
#
# results-wal-throughput.png   WAL POST req/s vs connections (64 B and 1280 B), every server
# results-kv-throughput.png    KV SET/GET req/s at 1 and 50 connections (64 B and 1 KiB)
# results-wal-latency-cdf.png  latency CDF of WAL POST 1280 B over 1 connection
# A missing value (a case not run) is NaN and leaves a gap.

if (!exists("datadir")) datadir = "data"
if (!exists("outdir")) outdir = "."

set terminal pngcairo size 1400,560 font "DejaVu Sans,11"
set datafile missing "NaN"
set grid
set key top left box opaque
set style data linespoints
# One invisible point in every plot, so a plot whose cases were all skipped is empty, not an error.
$Dummy << EOD
1 0
EOD

# ---- WAL throughput vs connections --------------------------------------------------------------
set output outdir."/results-wal-throughput.png"
set multiplot layout 1,2 title "paste-wal POST, closed loop, blocking: throughput vs connections"
set logscale x 2
set xtics ("1" 1, "16" 16, "64" 64)
set xrange [0.8:80]
set xlabel "connections"
set ylabel "requests/s (median)"
set yrange [0:*]
do for [s in "64 1280"] {
	set title s." B bodies"
	f = datadir."/wal_tput_".s.".dat"
	plot f u 1:2 t "paste (durable)" lw 2 pt 7, \
	     f u 1:3 t "kernel (durable, recv into pool)" lw 2 pt 5, \
	     f u 1:4 t "paste --no-persist" dt 2 pt 6, \
	     f u 1:5 t "kernel --no-persist" dt 2 pt 4, \
	     f u 1:6 t "kernel + fdatasync log on ext4" lw 2 pt 9, \
	     $Dummy u 1:2 w dots notitle
}
unset multiplot
unset logscale x
unset xrange

# ---- KV throughput ------------------------------------------------------------------------------
set output outdir."/results-kv-throughput.png"
set terminal pngcairo size 1400,1000 font "DejaVu Sans,11"
set multiplot layout 2,2 title "paste-kv vs redis-server, paste-bench closed loop: throughput"
set logscale x
set xtics ("1" 1, "50" 50)
set xrange [0.7:70]
set key top left box opaque font ",9"
do for [m in "resp-set resp-get"] {
	do for [s in "64 1024"] {
		set title m." ".s." B"
		f = datadir."/kv_".m."_".s.".dat"
		plot f u 1:2 t "paste-kv paste (durable)" lw 2 pt 7, \
		     f u 1:3 t "paste-kv kernel (durable)" lw 2 pt 5, \
		     f u 1:4 t "paste-kv paste --no-persist" dt 2 pt 6, \
		     f u 1:5 t "paste-kv kernel --no-persist" dt 2 pt 4, \
		     f u 1:6 t "redis AOF always, ext4" lw 2 pt 9, \
		     f u 1:7 t "redis AOF always, /dev/shm" lw 2 pt 11, \
		     f u 1:8 t "redis appendonly no" lw 2 pt 13, \
		     $Dummy u 1:2 w dots notitle
	}
}
unset multiplot
unset logscale x
unset xrange
set xtics autofreq

# ---- WAL latency CDF ----------------------------------------------------------------------------
set output outdir."/results-wal-latency-cdf.png"
set terminal pngcairo size 1000,620 font "DejaVu Sans,11"
set title "paste-wal POST 1280 B, 1 connection: latency CDF (median repetition)"
set logscale x 10
set xlabel "latency (µs, log scale)"
set ylabel "fraction of requests at or below"
set yrange [0:1]
set xrange [*:*]
set key bottom right box opaque
set style data lines
plot datadir."/cdf_wal1280_paste-busy.dat" u 1:2 t "paste, busy-poll (server and client)" lw 2, \
     datadir."/cdf_wal1280_kernel-busy.dat" u 1:2 t "kernel, busy-poll (server and client)" lw 2, \
     datadir."/cdf_wal1280_paste.dat" u 1:2 t "paste, blocking" lw 2 dt 2, \
     datadir."/cdf_wal1280_kernel.dat" u 1:2 t "kernel, blocking" lw 2 dt 2, \
     datadir."/cdf_wal1280_fdatasync.dat" u 1:2 t "kernel + fdatasync on ext4, blocking" lw 2 dt 3, \
     $Dummy u 1:2 w dots notitle
