# plots/lines.awk: the data of a line figure (bubble, throughput, peak, scaling): after
# config.awk, reads RUNS, then VALUES (id, x, y1, y2 ... tab-separated, one line per run), and
# writes one block per configuration to the file dat, its points in x order, each block headed
# by "# LABEL" and the column names (-v cols="x y1 ..."), blocks two blank lines apart. On
# stdout, for the shell: "n N", "label S TEXT" per series, "same S T" when series S has series
# T's values in column 3 at every x (both are drawn and the legend says so), "title TEXT".
BEGIN { FS = "\t"; cfg_init() }
FILENAME == ARGV[1] { cfg_line(); next }
{
    id = $1 + 0
    if (!((id) in cfg_tool)) next
    nv[id] = NF
    for (c = 2; c <= NF; c++) val[id, c] = $c
    ids = ids (ids == "" ? "" : " ") id
}
END {
    cfg_series(ids)
    print "n\t" ser_n
    for (s = 1; s <= ser_n; s++) {
        n = split(ser_ids[s], r, " ")
        for (i = 2; i <= n; i++) # points in x order
            for (j = i; j > 1 && val[r[j], 2] + 0 < val[r[j - 1], 2] + 0; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
        printf "# %s\n# %s\n", ser_label[s], cols > dat
        pts[s] = ""
        for (i = 1; i <= n; i++) {
            line = val[r[i], 2]
            for (c = 3; c <= nv[r[i]]; c++) line = line " " val[r[i], c]
            print line > dat
            pts[s] = pts[s] val[r[i], 2] ":" val[r[i], 3] " "
        }
        printf "\n\n" > dat
        ser_pts[s] = n
        lab = ser_label[s]
        for (t = 1; t < s; t++) if (same(pts[t], pts[s])) { print "same\t" s "\t" t; lab = lab " (= " ser_label[t] ")"; break }
        print "label\t" s "\t" lab
    }
    print "title\t" cfg_title(ids)
}
# two series' points "x:y x:y ..." equal to 1e-9 (relative)
function same(a, b,   na, nb, pa, pb, i, xa, xb, d, m) {
    na = split(a, pa, " "); nb = split(b, pb, " ")
    if (na != nb) return 0
    for (i = 1; i <= na; i++) {
        split(pa[i], xa, ":"); split(pb[i], xb, ":")
        if (xa[1] != xb[1]) return 0
        d = xa[2] - xb[2]; m = xa[2] < 0 ? -xa[2] : xa[2]
        if ((d < 0 ? -d : d) > 1e-9 * (m > 1 ? m : 1)) return 0
    }
    return 1
}
