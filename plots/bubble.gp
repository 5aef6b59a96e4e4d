# plots/bubble.gp: bubble rate against micro-batches, one line per schedule of a sweep, with
# the closed forms dashed: GPipe and 1F1B (p-1)/(m+p-1), interleaved ((p-1)/v)/(m+(p-1)/v).
# Set with -e: data = "bubble.dat" (columns: schedule_index m bubble_rate; one block per
# schedule, blocks separated by two blank lines), names = "gpipe 1f1b ...", p, v, out, title.
if (!exists("out")) out = "bubble.png"
if (!exists("title")) title = "bubble rate"
if (out[strlen(out)-2:] eq "svg") { # 1-based, inclusive: the last 3 characters
    set terminal svg size 900, 560 dynamic font "Helvetica,12"
} else {
    set terminal pngcairo size 900, 560 font "Helvetica,11"
}
set output out
set termoption noenhanced
set title title
set xlabel "micro-batches per iteration (m)"
set ylabel "bubble rate"
set logscale x 2
set grid lc rgb "#dddddd"
set key top right
set format y "%.0f%%"
flush(m) = 100.0 * (p - 1) / (m + p - 1)
interleaved(m) = 100.0 * ((p - 1.0) / v) / (m + (p - 1.0) / v)
plot for [i = 1:words(names)] data index (i - 1) using 2:(100 * $3) with linespoints pt 7 \
         title word(names, i), \
     flush(x) with lines dt 2 lc rgb "#777777" title "(p-1)/(m+p-1)", \
     (v > 1 ? interleaved(x) : 1/0) with lines dt 3 lc rgb "#999999" \
         title (v > 1 ? sprintf("interleaved closed form, v = %d", v) : "")
