# plots/error.gp: predicted vs measured error of the mean op time per device and op kind.
# Set with -e: data (columns: device err_F err_B err_W err_BW, in %; "?" where absent), cols
# (the columns that hold any value, e.g. "2 5"), out, title.
if (!exists("out")) out = "error.png"
if (out[strlen(out)-2:] eq "svg") { # 1-based, inclusive: the last 3 characters
    set terminal svg size 900, 520 dynamic font "Helvetica,12"
} else {
    set terminal pngcairo size 900, 520 font "Helvetica,11"
}
set output out
set termoption noenhanced
set title title
set xlabel "device"
set ylabel "(predicted - measured) / measured (%)"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border rgb "#333333"
set grid ytics lc rgb "#dddddd"
set key top right
set xzeroaxis lt -1
set yrange [*<0 : 0<*] # bars grow from 0
names = "- F B W BW"
colors = "0 0x4e79a7 0xf28e2b 0x59a14f 0xe15759"
plot for [c in cols] data using (column(c + 0)):xtic(1) title word(names, c + 0) \
         lc rgb (word(colors, c + 0) + 0)
