#!/bin/sh
# plots/error.sh DB PREDICTED MEASURED [OUTDIR]: the error of psim's mean op time against
# pexec's, per device and op kind (the first iteration left out when there are several), as
# PNG and SVG; data in OUTDIR/error-PREDICTED-MEASURED.dat. pcompare prints the same numbers.
# A failed run (named explicitly) is drawn from the rows it has, marked FAILED in the title.
set -eu
here=$(dirname "$(readlink -f "$0")")
. "$here/safe.sh"
db=$1 pred=$2 meas=$3
outdir=${4:-plots/out}
safe_paths "$db" "$outdir"
mkdir -p "$outdir"
data="$outdir/error-$pred-$meas.dat"
# mean compute time per (device, kind) of one run, warm-up iteration left out
means() {
    echo "select o.device d, o.kind k, avg(o.end_ns - o.start_ns) t from ops o join runs r on r.id = o.run_id
          where o.run_id = $1 and o.stream = 'compute'
          and (r.iterations < 2 or o.micro_batch >= r.micro_batches) group by 1, 2"
}
sqlite3 -separator ' ' -nullvalue '?' "$db" "with p as ($(means "$pred")), m as ($(means "$meas")),
    e as (select p.d, p.k, 100.0 * (p.t - m.t) / m.t err from p join m on p.d = m.d and p.k = m.k)
    select d.d, (select printf('%.4f', err) from e where e.d = d.d and k = 'F'),
           (select printf('%.4f', err) from e where e.d = d.d and k = 'B'),
           (select printf('%.4f', err) from e where e.d = d.d and k = 'W'),
           (select printf('%.4f', err) from e where e.d = d.d and k = 'BW')
    from (select distinct d from e) d order by d.d" >"$data"
[ -s "$data" ] || { echo "error.sh: runs $pred and $meas share no ops" >&2; exit 2; }
mark=$(sqlite3 "$db" "select group_concat(' (run ' || id || ' FAILED)', '') from runs
    where id in ($pred, $meas) and status = 'failed'")
cols=$(awk '{ for (c = 2; c <= 5; c++) if ($c != "?") has[c] = 1 }
    END { for (c = 2; c <= 5; c++) if (has[c]) printf "%d ", c }' "$data")
for ext in png svg; do
    gnuplot -e "data='$data'; cols='$cols'; out='$outdir/error-$pred-$meas.$ext'; title='run $pred predicted vs run $meas measured$mark ($(basename "$db"))'" \
        "$here/error.gp"
done
echo "error.sh: wrote $outdir/error-$pred-$meas.png and .svg" >&2
