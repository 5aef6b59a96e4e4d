#!/bin/sh
# plots/peak.sh DB OUTDIR [SWEEP]: peak memory of the fullest and emptiest device for each
# schedule of a sweep (default: the latest; the highest peak over the sweep's other keys),
# PNG and SVG; data in OUTDIR/peak-SWEEP.dat.
set -eu
here=$(dirname "$(readlink -f "$0")")
. "$here/safe.sh"
db=${1:-pipesim.db}
outdir=${2:-plots/out}
safe_paths "$db" "$outdir"
sweep=${3:-$(sqlite3 "$db" 'select max(sweep) from runs')}
[ -n "$sweep" ] || { echo "peak.sh: no sweeps in $db (run psim --sweep)" >&2; exit 2; }
mkdir -p "$outdir"
data="$outdir/peak-$sweep.dat"
sqlite3 -separator ' ' "$db" "select r.schedule, max(hi), max(lo) from runs r
    join (select run_id, max(value) hi, min(value) lo from device_metrics
          where name = 'peak_memory_gib' group by run_id) m on m.run_id = r.id
    where r.sweep = $sweep group by r.schedule order by r.schedule" >"$data"
limit=$(safe_number "$(sqlite3 "$db" "select resolved from runs where sweep = $sweep limit 1" | sed -n 's/^memory_gib = //p')")
for ext in png svg; do
    gnuplot -e "data='$data'; limit=${limit:-0}; out='$outdir/peak-$sweep.$ext'; title='peak memory per schedule (sweep $sweep, $(basename "$db"))'" \
        "$here/peak.gp"
done
echo "peak.sh: wrote $outdir/peak-$sweep.png and .svg" >&2
