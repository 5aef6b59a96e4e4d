# plots/throughput.gp: throughput of a sweep's runs, one line per schedule, against the swept
# x (micro-batches or pipeline stages). Set with -e: data (columns: schedule x tokens_per_s
# tflops_per_gpu; a block per schedule, blocks separated by two blank lines), names, xlabel,
# out, title.
if (!exists("out")) out = "throughput.png"
if (out[strlen(out)-2:] eq "svg") { # 1-based, inclusive: the last 3 characters
    set terminal svg size 900, 560 dynamic font "Helvetica,12"
} else {
    set terminal pngcairo size 900, 560 font "Helvetica,11"
}
set output out
set termoption noenhanced
set title title
set xlabel xlabel
set ylabel "tokens/s"
set y2label "TFLOP/s per GPU"
set ytics nomirror
set y2tics
set logscale x 2
set grid lc rgb "#dddddd"
set key top left
plot for [i = 1:words(names)] data index (i - 1) using 2:3 with linespoints pt 7 \
         title word(names, i), \
     for [i = 1:words(names)] data index (i - 1) using 2:4 axes x1y2 with lines dt 2 \
         lc (i) notitle
