# plots/memory.gp: memory per device over a run (step lines), from the store's memory table.
# Set with -e: data = "memory.dat" (columns: device t_ms gib; one block per device, blocks
# separated by two blank lines), devices, limit (memory_gib, 0 for none), out, title.
if (!exists("out")) out = "memory.png"
if (!exists("title")) title = "memory per device"
if (out[strlen(out)-2:] eq "svg") { # 1-based, inclusive: the last 3 characters
    set terminal svg size 1000, 560 dynamic font "Helvetica,12"
} else {
    set terminal pngcairo size 1000, 560 font "Helvetica,11"
}
set output out
set termoption noenhanced
set title title
set xlabel "time (ms)"
set ylabel "GiB"
set grid lc rgb "#dddddd"
set key outside right
# the limit inside the frame, not on its border: autoscale the data, then leave 5% above both
stats data using 3 nooutput
top = (limit > STATS_max ? limit : STATS_max) * 1.05
set yrange [0:top]
plot for [d = 0:devices - 1] data index d using 2:3 with steps lw 1.5 title sprintf("device %d", d), \
     (limit > 0 ? limit : 1/0) with lines dt 2 lc rgb "#cc0000" title (limit > 0 ? "memory_gib" : "")
