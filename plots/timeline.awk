# plots/timeline.awk: the boxes of a timeline from ops (tab-separated: block, device, stream,
# kind, micro_batch, start_ns, end_ns; sorted by block, device, stream, start), into dat:
#   index 0, compute and optimizer: row xlo xhi ylo yhi kind mb (kind 1 F, 2 B, 3 W, 4 BW,
#     5 optimizer step; mb -1 for none), times in ms; a fused pair (two compute ops of one
#     device over the same interval, DualPipe's F&B) is one box split in two halves;
#   index 1, sends: row xlo xhi;  index 2, data-parallel collectives: row xlo xhi;
#   index 3 and 4, the expert-parallel all-to-alls of forwards and of backwards (B, W, BW):
#     row xlo xhi, drawn inside the F half and the backward half of the row.
# -v rows="BLOCK:DEVICE:ROW ..." places devices; t0, t1 (ms) the window, ops clipped to it.
# -v bins=N > 0 aggregates: each row is cut into N bins and every bin drawn as a column whose
# segments' heights are the share of the bin each kind kept the device busy (neighbours
# within 1/8 of each other merged), and sends and collectives closer than a bin
# are merged. Sends and collectives are drawn at least -v minw ms wide (1.5 px). On stdout: "kinds K..." (the kinds drawn), "sends N", "colls N", "a2a NF NB" (forwards', backwards'), "boxes N".
BEGIN {
    FS = "\t"
    n = split(rows, rl, " ")
    for (i = 1; i <= n; i++) { split(rl[i], p, ":"); row_of[p[1] ":" p[2]] = p[3] + 0; row_list[i] = p[3] + 0 }
    nrows = n
    split("F B W BW", kn, " ")
    for (i = 1; i <= 4; i++) kind_of[kn[i]] = i
    H = 0.34 # half a row's height
    w = bins > 0 ? (t1 - t0) / bins : 0
    nbox = 0; nsend = 0; ncoll = 0; na2f = 0; na2b = 0
}
{
    key = $1 ":" $2
    if (!(key in row_of)) next
    r = row_of[key]
    s = $6 / 1e6; e = $7 / 1e6
    if (e < t0 || s > t1) next
    if (s < t0) s = t0
    if (e > t1) e = t1
    if ($3 == "compute" || $3 == "optimizer") {
        k = $3 == "optimizer" ? 5 : kind_of[$4]
        mb = $3 == "optimizer" || $5 == "?" ? -1 : $5 + 0
        if (bins > 0) { spread(r, s, e, k); has[k] = 1; next }
        if (pend[r] && ps[r] == s && pe[r] == e) { # the second op of a fused pair
            box(r, s, e, r - H, r, pk[r], pm[r]); box(r, s, e, r, r + H, k, mb)
            pend[r] = 0
            next
        }
        flush(r)
        pend[r] = 1; ps[r] = s; pe[r] = e; pk[r] = k; pm[r] = mb
    } else if ($3 == "send") {
        seg("s", r, s, e)
    } else if ($3 == "allreduce" || $3 == "reduce_scatter" || $3 == "all_gather") {
        seg("c", r, s, e)
    } else if ($3 == "expert") {
        seg($4 == "F" ? "f" : "b", r, s, e)
    }
}
END {
    for (i = 1; i <= nrows; i++) flush(row_list[i])
    if (bins > 0) columns()
    print "" > dat; print "" > dat
    out_segs("s")
    print "" > dat; print "" > dat
    out_segs("c")
    print "" > dat; print "" > dat
    out_segs("f")
    print "" > dat; print "" > dat
    out_segs("b")
    kinds = ""
    for (k = 1; k <= 5; k++) if (has[k]) kinds = kinds " " k
    print "kinds" kinds
    print "sends " nsend
    print "colls " ncoll
    print "a2a " na2f " " na2b
    print "boxes " nbox
}
function box(r, s, e, lo, hi, k, mb) {
    printf "%d %.6f %.6f %.4f %.4f %d %d\n", r, s, e, lo, hi, k, mb > dat
    has[k] = 1; nbox++
}
function flush(r) { if (pend[r]) box(r, ps[r], pe[r], r - H, r + H, pk[r], pm[r]); pend[r] = 0 }
# busy time of kind k in each bin the op [s, e] covers
function spread(r, s, e, k,   b, lo, hi, a, z) {
    for (b = int((s - t0) / w); b < bins && t0 + b * w < e; b++) {
        lo = t0 + b * w; hi = lo + w
        a = s > lo ? s : lo; z = e < hi ? e : hi
        if (z > a) busy[r, b, k] += z - a
    }
    used[r] = 1
}
# the aggregated columns: neighbouring bins whose shares of every kind stay within 1/8 of the
# first's are one column, drawn at their mean shares (a steady state is one box per kind)
function columns(   i, r, b, k, g0, ok, f) {
    for (i = 1; i <= nrows; i++) {
        r = row_list[i]
        if (!used[r]) continue
        g0 = 0
        for (k = 1; k <= 5; k++) { ref[k] = busy[r, 0, k] / w; sum[k] = 0 }
        for (b = 0; b <= bins; b++) {
            ok = b < bins
            for (k = 1; k <= 5 && ok; k++) { f = busy[r, b, k] / w - ref[k]; if (f > 0.125 || f < -0.125) ok = 0 }
            if (!ok) {
                emit_col(r, g0, b)
                if (b == bins) break
                g0 = b
                for (k = 1; k <= 5; k++) { ref[k] = busy[r, b, k] / w; sum[k] = 0 }
            }
            for (k = 1; k <= 5; k++) sum[k] += busy[r, b, k] / w
        }
    }
}
function emit_col(r, b0, b1,   k, y, h) {
    y = r - H
    for (k = 1; k <= 5; k++) {
        h = 2 * H * sum[k] / (b1 - b0)
        if (h < 0.01) continue
        box(r, t0 + b0 * w, t0 + b1 * w, y, y + h, k, -1)
        y += h
    }
}
# sends (c = "s"), collectives ("c") and all-to-alls ("f", "b"), merged when closer than a bin while aggregating
function seg(c, r, s, e) {
    if (e - s < minw) e = s + minw
    if (bins > 0 && (c, r) in cur_e && s <= cur_e[c, r] + w) { if (e > cur_e[c, r]) cur_e[c, r] = e; return }
    if ((c, r) in cur_e) keep(c, r)
    cur_s[c, r] = s; cur_e[c, r] = e
}
function keep(c, r) {
    segs[c, ++nseg[c]] = r " " sprintf("%.6f %.6f", cur_s[c, r], cur_e[c, r])
    if (c == "s") nsend++; else if (c == "c") ncoll++; else if (c == "f") na2f++; else na2b++
}
# every block starts with a row of no point (NaN), so an empty one still counts as a block and
# the indices after it keep their numbers (gnuplot reads a run of blank lines as one break)
function out_segs(c,   i, r) {
    print "-1 NaN NaN" > dat
    for (i = 1; i <= nrows; i++) { r = row_list[i]; if ((c, r) in cur_e) keep(c, r) }
    for (i = 1; i <= nseg[c]; i++) print segs[c, i] > dat
}
