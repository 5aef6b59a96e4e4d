# plots/split.gp: stacked bars of each device's time per iteration by kernel class. Set with
# -e: data (columns: label gemm attention memory tp_comm launch, ms), out, title.
if (!exists("out")) out = "split.png"
if (out[strlen(out)-2:] eq "svg") {
    set terminal svg size 1000, 520 dynamic font "Helvetica,12"
} else {
    set terminal pngcairo size 1000, 520 font "Helvetica,11"
}
set output out
set termoption noenhanced
set title title
set ylabel "ms per iteration"
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.7
set grid ytics lc rgb "#dddddd"
set yrange [0 : *]
set xtics rotate by -30 nomirror
set key outside top center horizontal
plot data using 2:xtic(1) title "gemm" lc rgb "#4e79a7", \
     '' using 3 title "attention" lc rgb "#f28e2b", \
     '' using 4 title "memory-bound" lc rgb "#59a14f", \
     '' using 5 title "tp_comm" lc rgb "#e15759", \
     '' using 6 title "launch / outside kernels" lc rgb "#bab0ac"
