# plots/breakdown.gp: stacked bars of each configuration's device time (data: n blocks, one per
# m (mvals: "8 16"), rows "label compute imbalance fill_drain exposed_transfers gradient_sync" in %, labels
# in double quotes), a group per m; the parts in cols only.
set ylabel "share of the devices' time (%)"
set style data histograms
set style histogram rowstacked title offset 0, -1.5
set boxwidth 0.75
set grid ytics
set yrange [0 : 100]
set xtics rotate by -35 nomirror font ",9"
set bmargin 9
set key outside right top Left reverse samplen 2.5 width 0
names = '- compute imbalance "fill and drain" "exposed transfers" "gradient sync"'
# a group per block, its parts in cols, from fixed pieces (an empty block would warn)
cmd = ""
do for [b = 1 : n] {
    cmd = cmd . sprintf("newhistogram \"m = \" . word(mvals, %d), ", b)
    do for [c in cols] {
        cmd = cmd . sprintf("data index %d using %s:xtic(1) title (%d == 1 ? word(names, %s) : \"\") lc rgb scol(%s - 1) fs pattern spat(%s - 1) border lc rgb \"black\", ", b - 1, c, b, c, c, c)
    }
}
eval "plot " . cmd[1 : strlen(cmd) - 2]
