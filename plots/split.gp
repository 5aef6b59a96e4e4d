# plots/split.gp: stacked bars of each device's time per iteration by kernel class, from data
# (rows: label gemm attention memory tp_comm launch, ms; labels in double quotes), the
# classes in cols (the data columns with any time, e.g. "2 3 4 6") only.
set ylabel "time per iteration (ms)"
set style data histograms
set style histogram rowstacked
set boxwidth 0.7
set grid ytics
set yrange [0 : *]
set xtics rotate by -30 nomirror
set key outside right top Left reverse samplen 2.5 width 0
names = "- gemm attention memory-bound tp_comm launch"
plot for [c in cols] data using (column(c + 0)):xtic(1) title word(names, c + 0) \
         lc rgb scol(c - 1) fs pattern spat(c - 1) border lc rgb "black"
