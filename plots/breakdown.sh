# plots/breakdown.sh, sourced by pplot with the sweep ids in "$@": where each configuration's
# device time goes (plots/breakdown.awk: compute, imbalance, fill and drain, exposed transfers,
# gradient sync; % of p x makespan), a stacked bar per configuration, grouped by m. Data: a
# block per m, a row per configuration.
default_size 1200 560
base=$(out_base breakdown "$@")
runs_config "$(id_in r.sweep "$@") and r.status = 'complete'" $(id_binds "$@") >"$tmpdir/runs"
[ -s "$tmpdir/runs" ] || die "sweep $* has no complete runs"
ev="select o.run_id, o.device, %s, case when o.stream = 'compute' then 'C' when o.stream = 'recv' then 'R' else 'G' end
    from ops o join runs r on r.id = o.run_id where $(id_in r.sweep "$@") and r.status = 'complete'
    and o.stream in ('compute', 'recv', 'optimizer', 'allreduce', 'reduce_scatter', 'all_gather')"
q "$(printf "$ev" "o.start_ns, 1") union all $(printf "$ev" "o.end_ns, -1") order by 1, 2, 3, 4" \
    $(id_binds "$@") >"$tmpdir/events"
[ -s "$tmpdir/events" ] || die "sweep $* has no ops to break down"
mkdir -p "$outdir" || fail "cannot make the folder '$outdir'"
awk -v skip=batch.micro_batches -v dat="$base.dat" -f "$here/config.awk" -f "$here/breakdown.awk" \
    "$tmpdir/runs" "$tmpdir/events" >"$tmpdir/meta"
draw breakdown.gp data:="$base.dat" n="$(sed -n 's/^n	//p' "$tmpdir/meta")" \
    mvals:="$(sed -n 's/^m	//p' "$tmpdir/meta")" cols:="$(sed -n 's/^cols	//p' "$tmpdir/meta")" \
    title:="$(fig_title "Where the time goes: $(sed -n 's/^title	//p' "$tmpdir/meta")")"
