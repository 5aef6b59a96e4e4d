#!/bin/sh
# plots/memory.sh DB OUTDIR [RUN]: memory of every device over a run (default: the latest),
# PNG and SVG, with the device limit dashed; the data is left in OUTDIR/memory-RUN.dat. The
# latest run is the latest complete one (a failed pexec run has no memory samples).
set -eu
here=$(dirname "$(readlink -f "$0")")
. "$here/safe.sh"
db=${1:-pipesim.db}
outdir=${2:-plots/out}
safe_paths "$db" "$outdir"
run=${3:-$(sqlite3 "$db" "select max(id) from runs where status = 'complete'")}
[ -n "$run" ] || { echo "memory.sh: no runs in $db" >&2; exit 2; }
mkdir -p "$outdir"
data="$outdir/memory-$run.dat"
devices=$(sqlite3 "$db" "select devices from runs where id = $run")
[ -n "$devices" ] || { echo "memory.sh: there is no run $run in $db" >&2; exit 2; }
# status is there in every schema version, error from version 4 (so only a failed run has one)
if [ "$(sqlite3 "$db" "select status from runs where id = $run")" = failed ]; then
    echo "memory.sh: run $run failed ($(sqlite3 "$db" "select error from runs where id = $run")); it has no memory samples" >&2
    exit 2
fi
limit=$(sqlite3 "$db" "select resolved from runs where id = $run" | sed -n 's/^memory_gib = //p')
: >"$data"
d=0
while [ "$d" -lt "$devices" ]; do
    sqlite3 -separator ' ' "$db" "select device, t_ns / 1e6, bytes / 1073741824.0 from memory
        where run_id = $run and device = $d order by t_ns" >>"$data"
    printf '\n\n' >>"$data"
    d=$((d + 1))
done
sched=$(safe_text "$(sqlite3 "$db" "select schedule from runs where id = $run")")
limit=$(safe_number "${limit:-0}")
for ext in png svg; do
    gnuplot -e "data='$data'; devices=$devices; limit=${limit:-0}; out='$outdir/memory-$run.$ext'; title='memory per device: run $run ($sched, $(basename "$db"))'" \
        "$here/memory.gp"
done
echo "memory.sh: wrote $outdir/memory-$run.png and .svg" >&2
