# plots/schedule_sweep.gp: two panels over m, one line per schedule (its own dash pattern
# and point type, readable in black and white): the bubble rate, and the fullest device's peak
# memory with memory_gib dashed. Set with -e: data (blocks of "m rate gib", one per schedule,
# each headed "# NAME"), out, limit, title.
set terminal pngcairo size 1200, 520 font "Helvetica,11"
set output out
set termoption noenhanced
set multiplot layout 1, 2 title title
names = "1f1b interleaved(v=2) zb-h1 zb-h2 zb-1p zb-2p zb-auto zb-v dualpipev"
set xlabel "micro-batches per iteration (m)"
set grid lc rgb "#dddddd"
set key top right font ",10"
set ylabel "bubble rate (%)"
set yrange [0 : *]
set xrange [0 : *]
plot for [i = 0 : 8] data index i using 1:($2 * 100) with linespoints dt 1+i%5 \
    pt (i + 1) ps 1.1 lw 1.6 title word(names, i + 1)
set ylabel "peak memory of the fullest device (GiB)"
set yrange [0 : *]
plot for [i = 0 : 8] data index i using 1:3 with linespoints dt 1+i%5 pt (i + 1) ps 1.1 \
    lw 1.6 notitle, \
    (limit > 0 ? limit : 1/0) with lines dt 2 lw 2 lc rgb "#cc0000" title "memory per device"
unset multiplot
