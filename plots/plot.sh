#!/bin/sh
# plots/plot.sh DB OUTDIR [RUN_ID]: draws a run stored in DB (default: the latest) as a Gantt
# timeline, PNG and SVG, into OUTDIR/timeline-RUN.{png,svg}. Needs sqlite3 and gnuplot.
set -eu
db=${1:-pipesim.db}
outdir=${2:-plots/out}
run=${3:-$(sqlite3 "$db" 'select max(id) from runs')}
[ -n "$run" ] || { echo "plot.sh: no runs in $db" >&2; exit 2; }
mkdir -p "$outdir"
data="$outdir/ops-$run.dat"
sqlite3 -separator ' ' "$db" "select device, start_ns / 1e6, end_ns / 1e6,
    case kind when 'F' then 1 when 'B' then 2 when 'W' then 3 else 4 end, micro_batch
    from ops where run_id = $run and stream = 'compute' order by device, start_ns" >"$data"
meta=$(sqlite3 -separator ' ' "$db" "select r.devices, coalesce(r.schedule, '?'),
    r.micro_batches, r.chunks, (select printf('%.1f', value) from metrics
    where run_id = r.id and name = 'makespan_ms'),
    (select printf('%.1f', 100 * value) from metrics where run_id = r.id and name = 'bubble_rate'),
    r.scenario_path from runs r where r.id = $run")
set -- $meta
title="$7: $2, p=$1 v=$4 m=$3, makespan $5 ms, bubble $6% (run $run, $(basename "$db"))"
for ext in png svg; do
    gnuplot -e "data='$data'; out='$outdir/timeline-$run.$ext'; title='$title'; devices=$1" \
        plots/timeline.gp
done
echo "plot.sh: wrote $outdir/timeline-$run.png and .svg" >&2
