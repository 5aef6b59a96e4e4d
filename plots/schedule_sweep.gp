# plots/schedule_sweep.gp, after style.gp: two panels over m, one line per schedule in the
# series styles of style.gp (colour, dash pattern and point type, readable in black and
# white): the bubble rate, and the fullest device's peak memory with memory_gib dashed. Set
# with -e: data (blocks of "m rate gib", one per schedule, each headed "# NAME"), limit, title.
names = "1f1b interleaved(v=2) zb-h1 zb-h2 zb-1p zb-2p zb-auto zb-v dualpipev"
set multiplot layout 1, 2 title title
unset title
set xlabel "micro-batches per iteration (m)"
set key top right font ",10"
set ylabel "bubble rate (%)"
set yrange [0 : *]
set xrange [0 : *]
plot for [i = 1 : 9] data index (i - 1) using 1:($2 * 100) with linespoints lc rgb scol(i) \
    dt sdt(i) pt spt(i) ps sps(i) lw 1.6 title word(names, i)
set ylabel "peak memory of the fullest device (GiB)"
set yrange [0 : *]
plot for [i = 1 : 9] data index (i - 1) using 1:3 with linespoints lc rgb scol(i) \
    dt sdt(i) pt spt(i) ps sps(i) lw 1.6 notitle, \
    (limit > 0 ? limit : 1/0) with lines dt 2 lw 2 lc rgb "#cc0000" title "memory per device"
unset multiplot
