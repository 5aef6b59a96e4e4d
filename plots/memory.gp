# plots/memory.gp: memory per device over a run as step lines from data (a block per device,
# "t_ms gib", titles t1..tn), x from xmin to xmax (ms; the run's makespan), the device limit
# (GiB, 0 for none) dashed inside the frame, note (a caption under the frame, "" for none).
set xlabel "time (ms)"
set ylabel "memory held (GiB)"
stats data using 2 nooutput
top = (limit > STATS_max ? limit : STATS_max) * 1.08
set yrange [0 : top]
if (xmax > xmin) { set xrange [xmin : xmax] }
set key outside right top Left reverse samplen 3.5 width 0
if (strlen(note) > 0) { set label 1 note at graph 0, graph -0.14 left font ",9" }
haslimit = limit > 0 ? 1 : 0
plot for [i = 1 : n] data index (i - 1) using 1:2 with steps lw 1.8 lc rgb scol(i) dt sdt(i) \
         title tl(i), \
     for [k = 1 : haslimit] limit with lines lw 2 lc rgb "#cc0000" dt (10, 5) \
         title sprintf("device limit, memory_gib = %g", limit)
