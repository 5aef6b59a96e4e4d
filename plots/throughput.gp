# plots/throughput.gp: two panels against the swept x (log2 axis, a tic at each xt value): data
# column 2 (y1label) on the left, column 3 (y2label) on the right, one line per configuration
# (titles t1..tn, named once, right of the panels), column 2 divided by y1scale. Also drawn for
# scaling: xlog = 0 for a linear x axis, ideal = 1 for the linear scaling of the first series'
# smallest-x point on the left (x0, y0 given).
if (!exists("xlog")) xlog = 1
if (!exists("ideal")) ideal = 0
if (!exists("x0")) x0 = 1
if (!exists("y0")) y0 = 0
stats data using 1 nooutput
if (xlog) {
    set logscale x 2
    set xrange [STATS_min / 1.15 : STATS_max * 1.15]
} else {
    pad = (STATS_max - STATS_min) * 0.05
    set xrange [STATS_min - pad : STATS_max + pad]
}
set xtics ()
do for [k = 1 : words(xt)] { set xtics add (sprintf("%g", word(xt, k) + 0) word(xt, k) + 0) }
set mxtics 1
set xlabel xlabel
set yrange [0 : *]
set format y "%g"
set title ""
set multiplot title title
set tmargin at screen 0.88
set bmargin at screen 0.14
set key at screen 0.78, screen 0.88 top left Left reverse samplen 3.5 width 0
set lmargin at screen 0.07
set rmargin at screen 0.37
set ylabel y1label
plot for [i = 1 : n] data index (i - 1) using 1:($2 / y1scale) with linespoints lw 1.8 \
         lc rgb scol(i) dt sdt(i) pt spt(i) ps sps(i) title tl(i), \
     for [k = 1 : ideal] (x >= x0 ? y0 / y1scale * x / x0 : 1/0) with lines lw 1.2 lc rgb "#555555" dt (14, 8) \
         title "linear scaling of ".tl(1)
set nokey
set lmargin at screen 0.45
set rmargin at screen 0.75
set ylabel y2label
plot for [i = 1 : n] data index (i - 1) using 1:3 with linespoints lw 1.8 \
         lc rgb scol(i) dt sdt(i) pt spt(i) ps sps(i)
unset multiplot
