# plots/peak.gp: peak memory of the fullest device (data column 2, GiB) against micro-batches
# (log2, a tic at each xt value), one line per configuration (titles t1..tn), and the limit
# (GiB, 0 for none) as a dashed line kept inside the frame; a log y axis when the peaks differ
# more than 3-fold (lines, never bars, on it).
set xlabel "micro-batches per iteration, m"
set ylabel "peak memory, fullest device (GiB)"
set logscale x 2
stats data using 1:2 nooutput
set xrange [STATS_min_x / 1.15 : STATS_max_x * 1.15]
set xtics ()
do for [k = 1 : words(xt)] { set xtics add (sprintf("%g", word(xt, k) + 0) word(xt, k) + 0) }
set mxtics 1
top = (limit > STATS_max_y ? limit : STATS_max_y)
if (STATS_max_y > 3 * STATS_min_y) {
    # GPipe holds every micro-batch: a log axis keeps the others and the limit readable
    set logscale y 2
    set ylabel "peak memory, fullest device (GiB, log scale)"
    bottom = (limit > 0 && limit < STATS_min_y ? limit : STATS_min_y) / 1.25
    set yrange [bottom : top * 1.25]
    set ytics (8, 16, 32, 48, 64, 80, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 4096)
} else {
    set yrange [0 : top * 1.08]
}
set key outside right top Left reverse samplen 3.5 width 0
haslimit = limit > 0 ? 1 : 0
plot for [i = 1 : n] data index (i - 1) using 1:2 with linespoints lw 1.8 \
         lc rgb scol(i) dt sdt(i) pt spt(i) ps sps(i) title tl(i), \
     for [k = 1 : haslimit] limit with lines lw 2 lc rgb "#cc0000" dt (10, 5) \
         title sprintf("device limit, memory_gib = %g", limit)
