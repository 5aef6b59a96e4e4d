# plots/timeline.gp: a Gantt chart from timeline.awk's data (index 0 boxes "row xlo xhi ylo yhi
# kind mb", index 1 sends, index 2 collectives, 3 and 4 the all-to-alls of forwards and
# backwards, "row xlo xhi"), rows from the top, ytl the
# row labels ("ROW DEVICE ...") of rows (0 .. rows - 1), nblock > 1 names blocks of rows (bl1, bm1: label, middle row),
# kinds the kinds drawn ("1 2 5": F B W BW optimizer), nsend / ncoll / na2f / na2b how many bars, agg 1 when
# the boxes are aggregated columns (caption says how), t0 t1 the window (ms).
set xlabel "time (ms)"
set xrange [t0 : t1]
set yrange [rows - 0.4 : -0.6]
set ytics () scale 0
do for [k = 1 : words(ytl) / 2] {
    set ytics add (sprintf("d%s", word(ytl, 2 * k)) word(ytl, 2 * k - 1) + 0)
}
set grid xtics noytics
set key outside top center horizontal samplen 2 width 1
if (strlen(subtitle) > 0) { set title title . "\n" . subtitle }
if (nblock > 1) {
    longest = 0
    do for [k = 1 : nblock] {
        longest = strlen(value(sprintf("bl%d", k))) > longest ? strlen(value(sprintf("bl%d", k))) : longest
        set label (10 + k) value(sprintf("bl%d", k)) at graph 0, first value(sprintf("bm%d", k)) \
            right offset -4, 0
    }
    set lmargin longest + 6
}
if (strlen(caption) > 0) {
    set bmargin 5
    set label 1 caption at graph 0, graph 0 offset 0, -3.2 left font ",9"
}
# F dark solid, B light solid, W hatched, BW medium solid, optimizer cross-hatched: apart in grey too
array KCOL[5] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#555555"]
array KPAT[5] = [3, 3, 5, 3, 2]
array KNAME[5] = ["F", "B", "W", "BW (B+W fused)", "optimizer step"]
array KTXT[5] = ["white", "black", "black", "black", "white"]
# a solid fill where the kind has one (an SVG pattern is defined again for every box), no border
# on aggregated columns
kfill(k) = (KPAT[k] == 3 ? "fs solid 1.0" : sprintf("fs pattern %d", KPAT[k])) . (agg ? " noborder" : " border lc rgb \"#333333\"")
drawn(k) = strstrt(" " . kinds . " ", sprintf(" %d ", k)) > 0 ? 1 : 0
span = t1 - t0
fits(lo, hi, mb) = (hi - lo) > span / 90 && mb >= 0
# the plot command from fixed pieces, one per thing drawn (an empty loop over a data block
# would still make gnuplot warn about it)
cmd = ""
do for [k = 1 : 5] {
    if (drawn(k)) {
        cmd = cmd . sprintf("data index 0 using ($6 == %d ? ($2 + $3) / 2 : NaN):(($4 + $5) / 2):2:3:4:5 with boxxyerror lc rgb KCOL[%d] %s title KNAME[%d], ", k, k, kfill(k), k)
        if (!agg) {
            cmd = cmd . sprintf("data index 0 using (($2 + $3) / 2):(($4 + $5) / 2):($6 == %d && fits($2, $3, $7) ? sprintf(\"%%d\", $7) : \"\") with labels font \",8\" tc rgb KTXT[%d] notitle, ", k, k)
        }
    }
}
if (nsend > 0) {
    cmd = cmd . "data index 1 using (($2 + $3) / 2):($1 + 0.42):2:3:($1 + 0.39):($1 + 0.45) with boxxyerror lc rgb \"#888888\" fs solid 1.0 noborder title \"send\", "
}
if (ncoll > 0) {
    cmd = cmd . "data index 2 using (($2 + $3) / 2):($1 - 0.42):2:3:($1 - 0.45):($1 - 0.39) with boxxyerror lc rgb \"#56B4E9\" fs solid 1.0 noborder title \"gradient collective\", "
}
# the all-to-alls (expert stream) as black bars inside the half of the row whose pass they
# belong to: in a fused pair, one micro-batch's all-to-all beside the other's computation
if (!exists("na2f")) na2f = 0
if (!exists("na2b")) na2b = 0
if (na2f > 0) {
    cmd = cmd . "data index 3 using (($2 + $3) / 2):($1 - 0.27):2:3:($1 - 0.31):($1 - 0.23) with boxxyerror lc rgb \"#000000\" fs solid 1.0 noborder title \"all-to-all (expert stream)\", "
}
if (na2b > 0) {
    cmd = cmd . "data index 4 using (($2 + $3) / 2):($1 + 0.27):2:3:($1 + 0.23):($1 + 0.31) with boxxyerror lc rgb \"#000000\" fs solid 1.0 noborder " . (na2f > 0 ? "notitle" : "title \"all-to-all (expert stream)\"") . ", "
}
eval "plot " . cmd[1 : strlen(cmd) - 2]
