#!/bin/sh
# plots/throughput.sh DB OUTDIR [SWEEP]: tokens/s (solid) and TFLOP/s per GPU (dashed) of a
# sweep's runs (default: the latest), one line per schedule, against micro-batches, or
# against pipeline stages when the sweep varied them. PNG and SVG; data in
# OUTDIR/throughput-SWEEP.dat.
set -eu
here=$(dirname "$(readlink -f "$0")")
. "$here/safe.sh"
db=${1:-pipesim.db}
outdir=${2:-plots/out}
safe_paths "$db" "$outdir"
sweep=${3:-$(sqlite3 "$db" 'select max(sweep) from runs')}
[ -n "$sweep" ] || { echo "throughput.sh: no sweeps in $db (run psim --sweep)" >&2; exit 2; }
mkdir -p "$outdir"
data="$outdir/throughput-$sweep.dat"
x=micro_batches xlabel="micro-batches per iteration (m)"
if [ "$(sqlite3 "$db" "select count(distinct devices) from runs where sweep = $sweep")" -gt 1 ]; then
    x=devices xlabel="pipeline stages (p)"
fi
names=$(sqlite3 "$db" "select group_concat(schedule, ' ') from (select distinct schedule from runs
    where sweep = $sweep order by schedule)")
kept=""
for s in $names; do # a name that is not plain text is left out of the query and the figure
    [ "$(safe_text "$s")" = "$s" ] && kept="$kept${kept:+ }$s" || echo "$(basename "$0"): skipping a schedule named '$(safe_text "$s")...' (not plain text)" >&2
done
names=$kept
: >"$data"
for s in $names; do
    sqlite3 -separator ' ' "$db" "select '$s', r.$x, t.value, f.value from runs r
        join metrics t on t.run_id = r.id and t.name = 'throughput_tokens_per_s'
        join metrics f on f.run_id = r.id and f.name = 'tflops_per_gpu'
        where r.sweep = $sweep and r.schedule = '$s' order by r.$x" >>"$data"
    printf '\n\n' >>"$data"
done
for ext in png svg; do
    gnuplot -e "data='$data'; names='$names'; xlabel='$xlabel'; out='$outdir/throughput-$sweep.$ext'; title='throughput (sweep $sweep, $(basename "$db"))'" \
        "$here/throughput.gp"
done
echo "throughput.sh: wrote $outdir/throughput-$sweep.png and .svg" >&2
