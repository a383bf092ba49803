# SPDX-License-Identifier: BSD-2-Clause
# bench/scaling.gp - the plot of the scaling block of docs/RESULTS.md, from the data files that
# bench/scaling writes.
#
#   gnuplot -e "datadir='WORK/data'; outdir='docs'" bench/scaling.gp
#
# results-scaling.png   1-connection latency (p50, p99; medians of the runs) against the records
#                       in paste-wal's log and the keys in paste-kv's index.
# A part that was not run has no data file and leaves an empty plot.

if (!exists("datadir")) datadir = "data"
if (!exists("outdir")) outdir = "."

set terminal pngcairo size 1400,560 font "DejaVu Sans,11"
set output outdir."/results-scaling.png"
set datafile missing "NaN"
set grid
set key top left box opaque
set style data linespoints
set yrange [0:*]
set ylabel "latency, 1 connection (µs)"
$Dummy << EOD
0 0
EOD
wal = datadir."/wal.dat"
kv = datadir."/kv.dat"

set multiplot layout 1,2 title "Latency as the log and the index grow (paste transport, blocking, 64 B)"
set title "paste-wal POST"
set xlabel "records in the log (millions)"
if (system("test -s ".wal." && echo 1") eq "1") {
	plot wal u 1:2 t "p50" lw 2 pt 7, wal u 1:3 t "p99" lw 2 pt 5, $Dummy u 1:2 w dots notitle
} else {
	plot $Dummy u 1:2 w dots t "not run"
}
set title "paste-kv SET and GET"
set xlabel "keys in the index (millions)"
if (system("test -s ".kv." && echo 1") eq "1") {
	plot kv u 1:2 t "SET p50" lw 2 pt 7, kv u 1:3 t "SET p99" lw 2 pt 5, \
	     kv u 1:4 t "GET p50" lw 2 dt 2 pt 6, kv u 1:5 t "GET p99" lw 2 dt 2 pt 4, \
	     $Dummy u 1:2 w dots notitle
} else {
	plot $Dummy u 1:2 w dots t "not run"
}
unset multiplot
