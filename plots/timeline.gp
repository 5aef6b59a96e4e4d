# plots/timeline.gp: Gantt chart of compute ops, one row per (run, device) from the top,
# F/B/W/BW coloured, micro-batch numbers on the boxes wide enough for them, transfers as thin
# grey bars under their sender's row, idle time left blank. Set with -e before the script:
#   data (columns: row start_ms end_ms kind(1=F 2=B 3=W 4=BW 5=optimizer step) micro_batch,
#   -1 for no label), xfers (columns: row start_ms end_ms), colls (gradient all-reduces, or
#   ZeRO's reduce-scatters and all-gathers, the same columns, drawn above the row), dp (1:
#   name them and the optimizer steps in the key), out, title, rows (rows in all), ylabels
#   ('("label" row, ...)').
if (!exists("data")) data = "ops.dat"
if (!exists("out")) out = "timeline.png"
if (!exists("title")) title = "pipeline timeline"
if (!exists("rows")) rows = 8
if (out[strlen(out)-2:] eq "svg") { # 1-based, inclusive: the last 3 characters
    set terminal svg size 1400, 140 + 40 * rows dynamic font "Helvetica,12"
} else {
    set terminal pngcairo size 1400, 140 + 40 * rows font "Helvetica,11"
}
set output out
set termoption noenhanced
stats data using 3 nooutput # before the y range, which would filter it
span = STATS_max
set title title
set xlabel "time (ms)"
set yrange [rows - 0.5 : -0.5]
if (exists("ylabels")) { eval "set ytics " . ylabels } else { set ytics 1 }
set grid xtics lc rgb "#dddddd"
set key outside top center horizontal
set style fill solid 0.9 border rgb "#333333"
color(k) = k == 1 ? 0x4e79a7 : k == 2 ? 0xf28e2b : k == 3 ? 0x59a14f : k == 5 ? 0xb07aa1 : 0xe15759
label(s, e, mb) = (e - s) > span / 90 && mb >= 0 ? sprintf("%d", mb) : ""
if (!exists("dp")) dp = 0 # 1: there are all-reduces (colls) and optimizer steps to name
plot data using (($2 + $3) / 2):1:(($3 - $2) / 2):(0.34):(color($4)) \
         with boxxyerror lc rgb variable notitle, \
     data using (($2 + $3) / 2):1:(label($2, $3, $5)) with labels font ",8" tc rgb "white" notitle, \
     (exists("xfers") ? xfers : NaN) using (($2 + $3) / 2):($1 + 0.42):(($3 - $2) / 2 + 0.02):(0.04) \
         with boxxyerror lc rgb "#888888" fs solid 1.0 noborder title "send", \
     (exists("colls") ? colls : NaN) using (($2 + $3) / 2):($1 - 0.42):(($3 - $2) / 2):(0.04) \
         with boxxyerror lc rgb "#76b7b2" fs solid 1.0 noborder title (dp ? "gradient collectives" : ""), \
     NaN with boxes lc rgb "#b07aa1" title (dp ? "optimizer" : ""), \
     NaN with boxes lc rgb "#4e79a7" title "F", \
     NaN with boxes lc rgb "#e15759" title "B+W (BW)", \
     NaN with boxes lc rgb "#f28e2b" title "B", \
     NaN with boxes lc rgb "#59a14f" title "W"
