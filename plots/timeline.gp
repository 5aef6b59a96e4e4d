# plots/timeline.gp: Gantt chart of one run's compute ops, one row per device (0 on top),
# F/B/W/BW coloured, idle time left blank. Set with -e before the script:
#   data = "ops.dat" (columns: device start_ms end_ms kind(1=F 2=B 3=W 4=BW) micro_batch)
#   out = "timeline.png", title = "...", devices = p
if (!exists("data")) data = "ops.dat"
if (!exists("out")) out = "timeline.png"
if (!exists("title")) title = "pipeline timeline"
if (!exists("devices")) devices = 8
if (out[strlen(out)-3:] eq "svg") {
    set terminal svg size 1400, 120 + 40 * devices dynamic font "Helvetica,12"
} else {
    set terminal pngcairo size 1400, 120 + 40 * devices font "Helvetica,11"
}
set output out
set title title
set xlabel "time (ms)"
set ylabel "device"
set yrange [devices - 0.5 : -0.5]
set ytics 1
set grid xtics lc rgb "#dddddd"
set key outside top center horizontal
set style fill solid 0.9 border rgb "#333333"
color(k) = k == 1 ? 0x4e79a7 : k == 2 ? 0xf28e2b : k == 3 ? 0x59a14f : 0xe15759
plot data using (($2 + $3) / 2):1:(($3 - $2) / 2):(0.38):(color($4)) \
         with boxxyerror lc rgb variable notitle, \
     NaN with boxes lc rgb "#4e79a7" title "F", \
     NaN with boxes lc rgb "#e15759" title "B+W (BW)", \
     NaN with boxes lc rgb "#f28e2b" title "B", \
     NaN with boxes lc rgb "#59a14f" title "W"
