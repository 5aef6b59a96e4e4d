#!/bin/sh
# plots/plot.sh DB OUTDIR [RUN...]: draws runs stored in DB (default: the latest) as one Gantt
# timeline, PNG and SVG, into OUTDIR/timeline-RUN[-RUN...].{png,svg}: a row per device and
# run, several runs (predicted and measured) stacked on one time axis, F/B/W/BW coloured with
# micro-batch numbers where they fit, transfers as thin bars under the rows; with data
# parallelism the optimizer steps as boxes and the gradient all-reduces as thin bars above the
# rows. The data is left in OUTDIR/ops-....dat (compute and optimizer), xfers-....dat and
# allreduce-....dat. The latest run is the latest complete one; a failed run (pexec stopped by
# a fault) is drawn only when named, marked FAILED in the title. Needs sqlite3 and gnuplot.
set -eu
here=$(dirname "$(readlink -f "$0")")
. "$here/safe.sh"
db=${1:-pipesim.db}
outdir=${2:-plots/out}
safe_paths "$db" "$outdir"
shift 2 2>/dev/null || shift $#
[ $# -gt 0 ] || set -- "$(sqlite3 "$db" "select max(id) from runs where status = 'complete'")"
[ -n "$1" ] || { echo "plot.sh: no runs in $db" >&2; exit 2; }
mkdir -p "$outdir"
tag=$(echo "$*" | tr ' ' '-')
data="$outdir/ops-$tag.dat" xfers="$outdir/xfers-$tag.dat" colls="$outdir/allreduce-$tag.dat"
: >"$data"
: >"$xfers"
: >"$colls"
row=0 ytics="" titles=""
for run in "$@"; do
    # status first: a failed run has no metrics, so the fields after it may be missing
    set -- $(sqlite3 -separator ' ' "$db" "select r.status, devices, coalesce(schedule, '?'), tool,
        (select printf('%.1f', value) from metrics where run_id = r.id and name = 'makespan_ms'),
        (select printf('%.1f', 100 * value) from metrics where run_id = r.id and name = 'bubble_rate')
        from runs r where r.id = $run") || true
    [ $# -ge 4 ] || { echo "plot.sh: there is no run $run in $db" >&2; exit 2; }
    status=$1
    shift
    p=$1
    set -- "$1" "$(safe_text "$2")" "$(safe_text "$3")" "$(safe_number "${4:-}")" "$(safe_number "${5:-}")"
    sqlite3 -separator ' ' "$db" "select $row + device, start_ns / 1e6, end_ns / 1e6,
        case when stream = 'optimizer' then 5 when kind = 'F' then 1 when kind = 'B' then 2
        when kind = 'W' then 3 else 4 end, case stream when 'optimizer' then -1 else micro_batch end
        from ops where run_id = $run and stream in ('compute', 'optimizer')
        order by device, start_ns" >>"$data"
    sqlite3 -separator ' ' "$db" "select $row + device, start_ns / 1e6, end_ns / 1e6
        from ops where run_id = $run and stream in ('allreduce', 'reduce_scatter', 'all_gather')" >>"$colls"
    sqlite3 -separator ' ' "$db" "select $row + device, start_ns / 1e6, end_ns / 1e6
        from ops where run_id = $run and stream = 'send'" >>"$xfers"
    d=0
    while [ "$d" -lt "$p" ]; do
        ytics="$ytics${ytics:+, }\"$3 $run d$d\" $((row + d))"
        d=$((d + 1))
    done
    if [ "$status" = failed ]; then
        titles="$titles${titles:+; }run $run $3 $2: FAILED"
    else
        titles="$titles${titles:+; }run $run $3 $2: $4 ms, bubble $5%"
    fi
    row=$((row + p + 1)) # a blank row between runs
done
rows=$((row - 1))
for ext in png svg; do
    gnuplot -e "data='$data'; xfers='$xfers'; colls='$colls'; dp=$([ -s "$colls" ] && echo 1 || echo 0); out='$outdir/timeline-$tag.$ext'; title='$titles ($(basename "$db"))'; rows=$rows; ylabels='($ytics)'" \
        "$here/timeline.gp"
done
echo "plot.sh: wrote $outdir/timeline-$tag.png and .svg ($titles)" >&2
