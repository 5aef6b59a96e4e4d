#!/bin/sh
# plots/split.sh DB OUTDIR [RUN...]: each device's time per iteration split by kernel class
# (gemm, attention, memory, tp_comm, launch: the device metrics gemm_ms .. launch_ms, psim's
# prediction or pexec's measurement) as stacked bars, one per (device, run), the runs side by
# side for each device (default: the latest run). PNG and SVG; data in OUTDIR/split-RUNS.dat.
set -eu
here=$(dirname "$(readlink -f "$0")")
. "$here/safe.sh"
db=${1:-pipesim.db}
outdir=${2:-plots/out}
safe_paths "$db" "$outdir"
[ $# -ge 2 ] && shift 2 || shift $#
runs=${*:-$(sqlite3 "$db" "select max(id) from runs where status = 'complete'")}
[ -n "$runs" ] || { echo "split.sh: no complete run in $db" >&2; exit 2; }
for r in $runs; do
    case $r in *[!0-9]*) echo "split.sh: '$r' is not a run id" >&2; exit 2 ;; esac
    n=$(sqlite3 "$db" "select count(*) from device_metrics where run_id = $r and name = 'gemm_ms'")
    [ "$n" -gt 0 ] || { echo "split.sh: run $r has no split by kernel class (the flat model, measured [costs], or a run from before the split); nothing drawn" >&2; exit 2; }
done
mkdir -p "$outdir"
tag=$(echo "$runs" | tr ' ' '-')
data="$outdir/split-$tag.dat"
ids=$(echo "$runs" | tr ' ' ',')
# one row per (device, run in the order given): label, then the five classes in ms
order=$(i=0; for r in $runs; do printf 'when %s then %d ' "$r" "$i"; i=$((i + 1)); done)
sqlite3 -separator ' ' "$db" "select 'd' || m.device || '_' || replace(replace(r.tool, ' ', '_'), char(10), '_') || '_' || r.id,
    sum(case m.name when 'gemm_ms' then m.value else 0 end),
    sum(case m.name when 'attention_ms' then m.value else 0 end),
    sum(case m.name when 'memory_ms' then m.value else 0 end),
    sum(case m.name when 'tp_comm_ms' then m.value else 0 end),
    sum(case m.name when 'launch_ms' then m.value else 0 end)
    from device_metrics m join runs r on r.id = m.run_id
    where m.run_id in ($ids) group by m.device, r.id
    order by m.device, case r.id $order end" >"$data"
title="time per iteration by kernel class: runs $(echo "$runs" | sed 's/ /, /g') ($(basename "$db"))"
for ext in png svg; do
    gnuplot -e "data='$data'; out='$outdir/split-$tag.$ext'; title='$title'" "$here/split.gp"
done
echo "split.sh: wrote $outdir/split-$tag.png and .svg" >&2
