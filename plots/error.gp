# plots/error.gp: (predicted - measured) / measured of the mean op time, in %, per device (rows of
# data: device err_F err_B err_W err_BW, "?" where absent) as clustered bars from zero, one per
# kind in cols (the data columns that hold a value, e.g. "2 5").
set xlabel "device"
set ylabel "(predicted - measured) / measured (%)"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9 relative
set grid ytics
set key outside right top Left reverse samplen 2.5 width 0
set xzeroaxis lt -1 lw 1
stats data using 2 nooutput # a frame that holds zero and every bar, whichever side
lo = 0
hi = 0
do for [c in cols] {
    stats data using (column(c + 0)) nooutput
    lo = STATS_min < lo ? STATS_min : lo
    hi = STATS_max > hi ? STATS_max : hi
}
if (hi - lo < 1) { lo = lo - 1; hi = hi + 1 } # all (near) zero: a frame of +-1%
pad = (hi - lo) * 0.08
set yrange [lo - (lo < 0 ? pad : 0) : hi + (hi > 0 ? pad : 0)]
lift = (hi - lo) * 0.035
names = "- F B W BW"
# each bar's value written at its end (a zero error is a number, not an empty frame): bar k of
# N in a cluster is centred (k - (N - 1) / 2) / (N + gap) from the cluster's middle
nc = words(cols)
at(k) = (k - (nc - 1) / 2.0) / (nc + 1.0)
plot for [c in cols] data using (column(c + 0)):xtic(1) title word(names, c + 0) \
         lc rgb scol(c - 1) fs pattern spat(c - 1) border lc rgb "black", \
     for [k = 1 : nc] data using ($0 + at(k - 1)):(ev = column(word(cols, k) + 0), ev + (ev < 0 ? -lift : lift)):(sprintf("%+.1f%%", column(word(cols, k) + 0))) \
         with labels font ",9" notitle
