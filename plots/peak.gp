# plots/peak.gp: peak memory of the fullest and the emptiest device per schedule, with the
# device's memory_gib dashed. Set with -e: data (columns: schedule max_gib min_gib), limit,
# out, title.
if (!exists("out")) out = "peak.png"
if (out[strlen(out)-2:] eq "svg") { # 1-based, inclusive: the last 3 characters
    set terminal svg size 900, 520 dynamic font "Helvetica,12"
} else {
    set terminal pngcairo size 900, 520 font "Helvetica,11"
}
set output out
set termoption noenhanced
set title title
set ylabel "peak memory per device (GiB, log scale)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border rgb "#333333"
set grid ytics lc rgb "#dddddd"
set logscale y # GPipe holds every micro-batch: orders of magnitude apart
set yrange [1 : *]
set key outside top center horizontal
plot data using 2:xtic(1) title "fullest device" lc rgb "#e15759", \
     '' using 3 title "emptiest device" lc rgb "#4e79a7", \
     (limit > 0 ? limit : 1/0) with lines dt 2 lc rgb "#cc0000" title (limit > 0 ? "memory_gib" : "")
