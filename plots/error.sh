# plots/error.sh, sourced by pplot with PREDICTED and MEASURED run ids in "$1" "$2": the error
# of the predicted mean op time against the measured one, per device and op kind (F, B, W, BW;
# the first iteration left out when there are several), as bars from zero. pcompare prints the
# same numbers. A failed run is drawn from the rows it has, marked FAILED in the title. Data:
# one row per device (device, then the error in % per kind, "?" where a kind is absent).
default_size 900 520
pred=$1 meas=$2
base=$(out_base error "$pred" "$meas")
means="select o.device d, o.kind k, avg(o.end_ns - o.start_ns) t from ops o join runs r on r.id = o.run_id
    where o.run_id = :run and o.stream = 'compute' and (r.iterations < 2 or o.micro_batch >= r.micro_batches)
    group by 1, 2"
q "with p as ($(echo "$means" | sed 's/:run/:p/')), m as ($(echo "$means" | sed 's/:run/:m/')),
    e as (select p.d, p.k, 100.0 * (p.t - m.t) / m.t err from p join m on p.d = m.d and p.k = m.k)
    select d.d, (select printf('%.4f', err) from e where e.d = d.d and k = 'F'),
           (select printf('%.4f', err) from e where e.d = d.d and k = 'B'),
           (select printf('%.4f', err) from e where e.d = d.d and k = 'W'),
           (select printf('%.4f', err) from e where e.d = d.d and k = 'BW')
    from (select distinct d from e) d order by d.d" p="$pred" m="$meas" >"$tmpdir/err"
[ -s "$tmpdir/err" ] || die "runs $pred and $meas share no compute ops of one device and kind"
mkdir -p "$outdir" || fail "cannot make the folder '$outdir'"
{ echo "# device err_F err_B err_W err_BW (%, (predicted - measured) / measured; ? where absent)"
  tr '\t' ' ' <"$tmpdir/err"; } >"$base.dat"
cols=$(awk '!/^#/ { for (c = 2; c <= 5; c++) if ($c != "?") has[c] = 1 }
    END { for (c = 2; c <= 5; c++) if (has[c]) printf "%d ", c }' "$base.dat")
runs_meta "$pred" "$meas"
mark=""
for r in "$pred" "$meas"; do
    [ "$(q "select status from runs where id = :r" r="$r")" = failed ] && mark="$mark, run $r FAILED"
done
draw error.gp data:="$base.dat" cols:="$cols" \
    title:="$(fig_title "Prediction error: run $pred ($(meta_of label "$pred")) vs run $meas ($(meta_of label "$meas"))$mark, $(meta_of title)")"
