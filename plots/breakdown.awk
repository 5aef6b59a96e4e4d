# plots/breakdown.awk: where each run's device time goes, after config.awk: reads RUNS, then
# EVENTS (tab-separated run, device, t_ns, +1/-1, class C compute / G gradient sync and
# optimizer / R receive; sorted by run, device, t, then ends first). For a run of p devices and
# makespan T, each device's busy time b_d is the union of its compute ops; the device with the
# most, b_max, paces the pipeline. Of the p T device-time:
#   compute     sum b_d / pT;   imbalance  sum (b_max - b_d) / pT (others wait on the slowest);
#   and the slowest device's own idle (T - b_max) / T, split by what it waits during: gradient
#   sync (a collective or optimizer step of its own runs), exposed transfers (a receive is in
#   flight), fill and drain (neither: the schedule's ramp and dependencies).
# They sum to 1, and all but compute to the bubble rate. Writes dat (a block per m, a row per
# configuration: "label" and the five shares in %; a part is named when it reaches 0.3% somewhere), prints "n N", "m M1 M2 ...", "cols ..." and "title TEXT".
BEGIN { FS = "\t"; cfg_init() }
FILENAME == ARGV[1] { cfg_line(); next }
{
    r = $1 + 0; d = $2 + 0; t = $3 / 1e6
    if (r != cr || d != cd) { close_dev(); cr = r; cd = d; last = 0; nC = nG = nR = 0; busy = gs = rx = fl = 0 }
    seg(t)
    if ($5 == "C") nC += $4; else if ($5 == "G") nG += $4; else nR += $4
    seen[r] = 1
}
END {
    close_dev()
    for (i = 1; i <= cfg_n; i++) if (cfg_ids[i] in seen) ids = ids (ids == "" ? "" : " ") cfg_ids[i]
    cfg_series(ids)
    n = split(ids, list, " ")
    nm = 0
    for (i = 1; i <= n; i++) { m = cfg[list[i], "batch.micro_batches"] + 0; if (!(m in mseen)) { mseen[m] = 1; ms[++nm] = m } }
    for (i = 2; i <= nm; i++) for (j = i; j > 1 && ms[j] < ms[j - 1]; j--) { t = ms[j]; ms[j] = ms[j - 1]; ms[j - 1] = t }
    for (k = 1; k <= nm; k++) {
        printf "# m=%d\n# configuration compute imbalance fill_drain exposed_transfers gradient_sync (%% of the devices' time)\n", ms[k] > dat
        for (s = 1; s <= ser_n; s++) {
            c = split(ser_ids[s], rs, " ")
            for (i = 1; i <= c; i++) {
                r = rs[i]
                if (cfg[r, "batch.micro_batches"] + 0 != ms[k]) continue
                lab = "\"" ser_label[s] "\""
                T = cfg_makespan[r]
                if (T <= 0) T = maxend[r]
                share(r, T)
                printf "%s %.6f %.6f %.6f %.6f %.6f\n", lab, v[1], v[2], v[3], v[4], v[5] > dat
                for (q = 1; q <= 5; q++) if (v[q] > 0.3) used[q] = 1
            }
        }
        printf "\n\n" > dat
    }
    print "n\t" nm
    mv = ""
    for (k = 1; k <= nm; k++) mv = mv (k > 1 ? " " : "") ms[k]
    print "m\t" mv
    cols = ""
    for (q = 1; q <= 5; q++) if (used[q]) cols = cols (q + 1) " "
    print "cols\t" cols
    print "title\t" cfg_title(ids)
}
# time from last to t in the current state
function seg(t,   dt) {
    dt = t - last
    if (dt <= 0) { last = t > last ? t : last; return }
    if (nC > 0) busy += dt; else if (nG > 0) gs += dt; else if (nR > 0) rx += dt; else fl += dt
    last = t
}
function close_dev() {
    if (cr == "") return
    p[cr]++
    b[cr, cd] = busy; g[cr, cd] = gs; x[cr, cd] = rx; f[cr, cd] = fl; endt[cr, cd] = last
    if (last > maxend[cr]) maxend[cr] = last
    devs[cr] = devs[cr] " " cd
}
function share(r, T,   nd, dl, i, d, bmax, dmax, sb, idle, tail) {
    nd = split(devs[r], dl, " ")
    bmax = -1
    for (i = 1; i <= nd; i++) { d = dl[i]; sb += b[r, d]; if (b[r, d] > bmax) { bmax = b[r, d]; dmax = d } }
    tail = T - endt[r, dmax] # after the slowest device's last event: drain
    if (tail < 0) tail = 0
    v[1] = 100 * sb / (nd * T)
    v[2] = 100 * (nd * bmax - sb) / (nd * T)
    v[3] = 100 * (f[r, dmax] + tail) / T
    v[4] = 100 * x[r, dmax] / T
    v[5] = 100 * g[r, dmax] / T
}
