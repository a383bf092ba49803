# SPDX-License-Identifier: BSD-2-Clause
# bench/cores.gp - the plot of bench/cores-sweep: throughput and server CPU per message against
# the number of workers, paste and kernel transport side by side.
#
#   gnuplot -e "dat='cores.dat'; out='docs/results-cores.png'; ttl='TITLE'" bench/cores.gp
#
# cores.dat: one line per point, "transport workers msgs_per_s server_cpu_us_per_msg".

if (!exists("dat")) dat = "cores.dat"
if (!exists("out")) out = "results-cores.png"
if (!exists("ttl")) ttl = "paste-echo, 64 conns x 16 in flight, 64 B (bench/cores-sweep)"

set terminal pngcairo size 1200,480 font "DejaVu Sans,11"
set output out
set grid
set termoption noenhanced
set key top right box opaque
set style data linespoints
set xlabel "workers (--queues)"
set xtics 1
set yrange [0:*]
set multiplot layout 1,2 title ttl

set ylabel "requests/s (millions)"
plot dat using ($2):(strcol(1) eq "paste" ? $3/1e6 : NaN) title "paste" pt 7, \
     dat using ($2):(strcol(1) eq "kernel" ? $3/1e6 : NaN) title "kernel SO_REUSEPORT" pt 5

set ylabel "server CPU per request (us)"
plot dat using ($2):(strcol(1) eq "paste" ? $4 : NaN) title "paste" pt 7, \
     dat using ($2):(strcol(1) eq "kernel" ? $4 : NaN) title "kernel SO_REUSEPORT" pt 5

unset multiplot
