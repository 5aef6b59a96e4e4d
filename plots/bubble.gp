# plots/bubble.gp: bubble rate against micro-batches (log2 axis at the swept m), one line per
# configuration from data (blocks of "m bubble_rate", titles t1..tn), and the balanced closed
# forms: xt lists the m values; flush = 1 draws (p-1)/(m+p-1), vs = "2 4" one interleaved form per v.
set xlabel "micro-batches per iteration, m"
set ylabel "bubble rate (idle / total, %)"
set logscale x 2
stats data using 1:2 nooutput
set xrange [STATS_min_x / 1.15 : STATS_max_x * 1.15]
set yrange [0 : *]
set xtics () # a tic at each swept m (xt: "8 16 32")
do for [k = 1 : words(xt)] { set xtics add (sprintf("%g", word(xt, k) + 0) word(xt, k) + 0) }
set mxtics 1
set key outside right top Left reverse samplen 3.5 width 0
flushf(m) = 100.0 * (p - 1) / (m + p - 1)
interf(m, v) = 100.0 * ((p - 1.0) / v) / (m + (p - 1.0) / v)
nv = words(vs)
array CFDT[3] = [". ", "-. ", "-.. "]
cfdt(k) = CFDT[(k - 1) % 3 + 1]
# gnuplot evaluates an empty iteration's expressions once too: give them a v to read
k = 1
vv = nv > 0 ? vs : "1"

plot for [i = 1 : n] data index (i - 1) using 1:(100 * $2) with linespoints lw 1.8 \
         lc rgb scol(i) dt sdt(i) pt spt(i) ps sps(i) title tl(i), \
     for [k = 1 : flush] flushf(x) with lines lw 1.4 lc rgb "#444444" dt (14, 8) \
         title sprintf("closed form (p-1)/(m+p-1), p=%d", p), \
     for [k = 1 : nv] interf(x, word(vv, k) + 0) with lines lw 1.4 lc rgb "#777777" \
         dt cfdt(k) title sprintf("closed form, interleaved v=%s", word(vv, k))
