# plots/config.awk: the configurations of stored runs, for the figures: which keys tell runs
# apart, one series per distinct configuration, its legend text and the figure's title. Read
# with a figure's own awk program (awk -f config.awk -f PROGRAM.awk RUNS ...); RUNS is
# lib.sh's runs_config output: id, resolved scenario lines joined by \037, tool, makespan_ms.
# -v skip=KEY,KEY...: keys that are the figure's axes, not part of a configuration; -v
# known_only=1: only the keys a legend names by letter (schedule, p, v, d, t, c, m, b, ZeRO,
# recompute, partition, tool) tell runs apart, not calibrated [costs] or efficiencies.
#
# After cfg_read: cfg[id, "section.key"] = value for every run; cfg_ids[1..cfg_n] in id order.
# cfg_series(ids) groups ids (space-separated) into series: ser_n, ser_ids[s], ser_key[s],
# ser_label[s] (unique among the series), in a fixed order: schedules as psim lists them, then
# the other keys that differ, numerically. cfg_title() is what every run has in common.

function cfg_init(   i, n, names, shows) {
    # psim's schedule order (sim/sched/table.c) and the names papers use; others keep theirs
    n = split("gpipe 1f1b interleaved pipedream pipedream-2bw zb-h1 zb-h2 zb-v zb-1p zb-2p zb-auto dualpipe dualpipev custom", names, " ")
    split("GPipe|1F1B|Interleaved 1F1B|PipeDream|PipeDream-2BW|ZB-H1|ZB-H2|ZB-V|ZB-1P|ZB-2P|ZB-auto|DualPipe|DualPipeV|custom", shows, "|")
    for (i = 1; i <= n; i++) { sched_rank[names[i]] = i; sched_show[names[i]] = shows[i] }
    # keys shown in legends as a letter the README uses (p, v, m ...), in this order
    n = split("tool pipeline.schedule pipeline.chunks pipeline.stages parallel.data parallel.tensor parallel.context batch.micro_batches batch.micro_batch_size parallel.zero model.recompute pipeline.partition", key_order, " ")
    key_order_n = n
    split("|||p=|d=|t=|c=|m=|b=|ZeRO-|recompute |partition ", shows, "|")
    for (i = 1; i <= n; i++) { key_short[key_order[i]] = shows[i]; key_rank[key_order[i]] = i }
    key_short["pipeline.chunks"] = "v="
    cfg_n = 0
    nskip = split(skip, skips, ",")
    for (i = 1; i <= nskip; i++) skipped[skips[i]] = 1
}

# Reads one line of RUNS ($0, tab-separated).
function cfg_line(   f, n, i, sec, line, k, v, id, eq) {
    split($0, f, "\t")
    id = f[1] + 0
    cfg_ids[++cfg_n] = id
    cfg_tool[id] = f[3]
    cfg_makespan[id] = f[4] + 0
    n = split(f[2], lines, "\037")
    sec = ""
    for (i = 1; i <= n; i++) {
        line = lines[i]
        if (line ~ /^[ \t]*;/ || line ~ /^[ \t]*$/) continue
        if (line ~ /^\[/) { sec = line; gsub(/[\[\] \t]/, "", sec); continue }
        eq = index(line, "=")
        if (!eq) continue
        k = substr(line, 1, eq - 1); v = substr(line, eq + 1)
        gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
        sub(/[ \t]+;.*$/, "", v)
        cfg[id, sec "." k] = v
        if (!((sec "." k) in key_seen)) { key_seen[sec "." k] = 1; key_list[++key_n] = sec "." k }
    }
    cfg[id, "tool"] = f[3]
    if (!("tool" in key_seen)) { key_seen["tool"] = 1; key_list[++key_n] = "tool" }
}

# Text for legends and titles: letters, digits and . _ + - = , only (stored text is untrusted).
function cfg_clean(s) { gsub(/[^A-Za-z0-9._+=,-]/, "", s); return s }

function cfg_show_sched(s) { return (s in sched_show) ? sched_show[s] : cfg_clean(s) }

# The piece of a legend for key k of run id: "v=2", "ZB-H1", "recompute full".
function cfg_piece(id, k,   v) {
    v = cfg[id, k]
    if (k == "pipeline.schedule") return cfg_show_sched(v)
    if (k == "tool") return cfg_clean(v) == "psim" ? "predicted" : cfg_clean(v) == "pexec" ? "measured" : cfg_clean(v)
    if (k in key_short) return key_short[k] cfg_clean(v)
    sub(/^[^.]*\./, "", k)
    return cfg_clean(k) "=" cfg_clean(v)
}

# The order of two runs' configurations: schedule, then the other differing keys by number.
function cfg_before(a, b,   i, k, va, vb, ra, rb) {
    va = cfg[a, "pipeline.schedule"]; vb = cfg[b, "pipeline.schedule"]
    ra = (va in sched_rank) ? sched_rank[va] : 99; rb = (vb in sched_rank) ? sched_rank[vb] : 99
    if (ra != rb) return ra < rb
    if (va != vb) return va < vb
    for (i = 1; i <= diff_n; i++) {
        k = diff_keys[i]
        va = cfg[a, k]; vb = cfg[b, k]
        if (va == vb) continue
        if (va ~ /^[0-9.]+$/ && vb ~ /^[0-9.]+$/) return va + 0 < vb + 0
        return va < vb
    }
    return a < b
}

# Groups the runs in ids (space-separated) into series; see the header.
function cfg_series(ids,   n, list, i, j, k, key, s, t, lab, varies, first, sorted, tmp) {
    n = split(ids, list, " ")
    # which keys (not skipped) differ between the runs, in the legend's order
    diff_n = 0
    split("", varies)
    split("", diff_keys)
    for (j = 1; j <= key_n; j++) {
        k = key_list[j]
        if ((k in skipped) || (known_only && !(k in key_rank))) continue
        for (i = 2; i <= n; i++) if (cfg[list[i], k] != cfg[list[1], k]) { varies[k] = 1; break }
    }
    for (j = 1; j <= key_order_n; j++) if (key_order[j] in varies) diff_keys[++diff_n] = key_order[j]
    for (j = 1; j <= key_n; j++)
        if ((key_list[j] in varies) && !(key_list[j] in key_rank)) diff_keys[++diff_n] = key_list[j]
    # a series per distinct value of the differing keys
    ser_n = 0
    split("", ser_of)
    for (i = 1; i <= n; i++) {
        key = ""
        for (j = 1; j <= diff_n; j++) key = key "\037" cfg[list[i], diff_keys[j]]
        if (!(key in ser_of)) { ser_of[key] = ++ser_n; ser_ids[ser_n] = ""; ser_first[ser_n] = list[i]; ser_key[ser_n] = key }
        s = ser_of[key]
        ser_ids[s] = ser_ids[s] (ser_ids[s] == "" ? "" : " ") list[i]
    }
    # insertion sort of the series by their first run's configuration
    for (i = 2; i <= ser_n; i++)
        for (j = i; j > 1 && cfg_before(ser_first[j], ser_first[j - 1]); j--) {
            tmp = ser_first[j]; ser_first[j] = ser_first[j - 1]; ser_first[j - 1] = tmp
            tmp = ser_ids[j]; ser_ids[j] = ser_ids[j - 1]; ser_ids[j - 1] = tmp
            tmp = ser_key[j]; ser_key[j] = ser_key[j - 1]; ser_key[j - 1] = tmp
        }
    # the legend: the differing keys; v=1 left out beside schedules that run one chunk
    for (s = 1; s <= ser_n; s++) {
        first = ser_first[s]
        lab = ""
        for (j = 1; j <= diff_n; j++) {
            k = diff_keys[j]
            if (k == "pipeline.chunks" && cfg[first, k] == 1) continue
            t = cfg_piece(first, k)
            lab = lab (lab == "" ? "" : " ") t
        }
        ser_label[s] = lab == "" ? cfg_show_sched(cfg[first, "pipeline.schedule"]) : lab
    }
}

# What the runs have in common: "gpt13b, p=8 b=1 on 8 x h100" (keys that differ left out).
function cfg_title(ids,   n, list, i, k, t, same, keys, shows, nk, g, gpu, lab) {
    n = split(ids, list, " ")
    if (n == 0) return ""
    nk = split("pipeline.stages pipeline.chunks parallel.data parallel.tensor parallel.context batch.micro_batches batch.micro_batch_size", keys, " ")
    split("p= v= d= t= c= m= b=", shows, " ")
    t = ""
    for (k = 1; k <= nk; k++) {
        same = 1
        for (i = 2; i <= n; i++) if (cfg[list[i], keys[k]] != cfg[list[1], keys[k]]) same = 0
        if (!same || (keys[k] in skipped) || cfg[list[1], keys[k]] == "") continue
        if (cfg[list[1], keys[k]] == 1 && keys[k] != "pipeline.stages" && keys[k] != "batch.micro_batch_size") continue
        t = t (t == "" ? "" : " ") shows[k] cfg_clean(cfg[list[1], keys[k]])
    }
    g = 1
    split("pipeline.stages parallel.data parallel.tensor parallel.context", keys, " ")
    for (k = 1; k <= 4; k++) {
        for (i = 2; i <= n; i++) if (cfg[list[i], keys[k]] != cfg[list[1], keys[k]]) g = 0
        if (g) g *= (cfg[list[1], keys[k]] == "" ? 1 : cfg[list[1], keys[k]])
    }
    gpu = cfg_clean(cfg[list[1], "hardware.gpu"])
    for (i = 2; i <= n; i++) if (cfg[list[i], "hardware.gpu"] != cfg[list[1], "hardware.gpu"]) gpu = "mixed GPUs"
    lab = cfg_clean(cfg[list[1], "model.name"])
    for (i = 2; i <= n; i++) if (cfg[list[i], "model.name"] != cfg[list[1], "model.name"]) lab = "several models"
    if (t != "") lab = lab ", " t
    if (gpu != "") lab = lab (g > 0 && gpu != "mixed GPUs" ? " on " g " × " gpu : " on " gpu " GPUs")
    return lab
}
