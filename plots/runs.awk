# plots/runs.awk: after config.awk, reads RUNS and prints for the shell what tells the runs
# apart: "label ID TEXT" per run (the keys that differ between the runs, or its schedule),
# "sched ID NAME" (the schedule as papers write it, with v when > 1) and "title TEXT" (what
# they have in common). Tab-separated.
BEGIN { FS = "\t"; cfg_init() }
{ cfg_line(); ids = ids (ids == "" ? "" : " ") ($1 + 0) }
END {
    cfg_series(ids)
    for (s = 1; s <= ser_n; s++) {
        n = split(ser_ids[s], r, " ")
        for (i = 1; i <= n; i++) print "label\t" r[i] "\t" ser_label[s]
    }
    n = split(ids, r, " ")
    for (i = 1; i <= n; i++) {
        v = cfg[r[i], "pipeline.chunks"]
        print "sched\t" r[i] "\t" cfg_show_sched(cfg[r[i], "pipeline.schedule"]) (v > 1 ? " v=" cfg_clean(v) : "")
    }
    print "title\t" cfg_title(ids)
}
