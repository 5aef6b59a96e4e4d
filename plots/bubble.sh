#!/bin/sh
# plots/bubble.sh DB OUTDIR [SWEEP]: bubble rate against micro-batches for every schedule of a
# sweep (default: the latest), PNG and SVG, with the closed forms dashed. The data behind it
# is left in OUTDIR/bubble-SWEEP.dat. Needs sqlite3 and gnuplot.
set -eu
here=$(dirname "$(readlink -f "$0")")
. "$here/safe.sh"
db=${1:-pipesim.db}
outdir=${2:-plots/out}
safe_paths "$db" "$outdir"
sweep=${3:-$(sqlite3 "$db" 'select max(sweep) from runs')}
[ -n "$sweep" ] || { echo "bubble.sh: no sweeps in $db (run psim --sweep)" >&2; exit 2; }
mkdir -p "$outdir"
data="$outdir/bubble-$sweep.dat"
names=$(sqlite3 "$db" "select group_concat(schedule, ' ') from (select distinct schedule from runs
    where sweep = $sweep order by schedule)")
kept=""
for s in $names; do # a name that is not plain text is left out of the query and the figure
    [ "$(safe_text "$s")" = "$s" ] && kept="$kept${kept:+ }$s" || echo "$(basename "$0"): skipping a schedule named '$(safe_text "$s")...' (not plain text)" >&2
done
names=$kept
: >"$data"
for s in $names; do
    sqlite3 -separator ' ' "$db" "select '$s', r.micro_batches, m.value from runs r join metrics m
        on m.run_id = r.id and m.name = 'bubble_rate' where r.sweep = $sweep and r.schedule = '$s'
        order by r.micro_batches" >>"$data"
    printf '\n\n' >>"$data"
done
set -- $(sqlite3 -separator ' ' "$db" "select devices, max(chunks) from runs where sweep = $sweep")
for ext in png svg; do
    gnuplot -e "data='$data'; names='$names'; p=$1; v=$2; out='$outdir/bubble-$sweep.$ext'; title='bubble rate, p = $1 (sweep $sweep, $(basename "$db"))'" \
        "$here/bubble.gp"
done
echo "bubble.sh: wrote $outdir/bubble-$sweep.png and .svg" >&2
