# plots/timeline.sh, sourced by pplot with run ids in "$@": a Gantt chart of the runs on one
# time axis, a row per device, predicted runs above measured ones: F, B, W, BW and optimizer
# steps as boxes (micro-batch numbers where they fit), sends as thin bars under a row and
# data-parallel collectives above it. When a row holds more ops than the frame has pixels for
# (an op narrower than 3 px on average), its time is cut into 2-px bins drawn as stacked
# columns (the caption says so), so a 40,000-op run still shows its stages in a small file.
# --from-ms/--to-ms zoom, --devices picks rows. A failed run is drawn, marked FAILED.
runs=$(for r in "$@"; do # predicted above measured, otherwise in the order given
    printf '%s\t%s\n' "$([ "$(q "select tool from runs where id = :r" r="$r")" = psim ] && echo 0 || echo 1)" "$r"
done | sort -s -t '	' -k1,1n | cut -f2 | tr '\n' ' ')
set -- $runs
base=$(out_base timeline "$@")
runs_meta "$@"
rowmap="" row=0 nblock=0 ytics="" blocks="" sub=""
for r in "$@"; do
    nblock=$((nblock + 1))
    p=$(q "select devices from runs where id = :r" r="$r")
    is_uint "$p" || die "run $r has no device count"
    list=$(device_list "$p") || exit 2
    first=$row
    for d in $list; do
        rowmap="$rowmap $nblock:$d:$row"
        ytics="$ytics $row $d"
        row=$((row + 1))
    done
    set -- $(q "select status, (select printf('%.1f', value) from metrics where run_id = r.id and name = 'makespan_ms'),
        (select printf('%.1f', 100 * value) from metrics where run_id = r.id and name = 'bubble_rate')
        from runs r where id = :r" r="$r")
    lab="run $r $(meta_of label "$r")"
    if [ "$1" = failed ]; then what="$lab: FAILED"; else what="$lab: $(gp_num "$2") ms, bubble $(gp_num "$3")%"; fi
    sub="$sub${sub:+; }$what"
    blocks="$blocks; bl$nblock=$(gp_str "run $r $(meta_of label "$r")"); bm$nblock=$(( (first + row - 1) / 2 )).$(( (first + row - 1) % 2 * 5 ))"
    row=$((row + 1)) # a blank row between runs
done
rows=$((row - 1))
set -- $runs
default_size 1400 $((150 + 34 * rows))
[ -n "$size" ] || [ $((150 + 34 * rows)) -le 2400 ] || height=2400
# the window (ms) and the pixels it is drawn on
end=$(q "select printf('%.6f', max(end_ns) / 1e6) from ops where $(id_in run_id "$@")" $(id_binds "$@"))
end=$(gp_num "$end")
t0=${from_ms:-0} t1=${to_ms:-$end}
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b > a) }' || die "runs $* have no ops to draw (or none in that window)"
px=$((width - 260))
[ "$px" -gt 50 ] || px=50
densest=$(q "select max(n) from (select count(*) n from ops where $(id_in run_id "$@") and stream = 'compute'
    and end_ns >= :a and start_ns <= :b group by run_id, device)" $(id_binds "$@") \
    a="$(awk -v t="$t0" 'BEGIN { printf "%.0f", t * 1e6 }')" b="$(awk -v t="$t1" 'BEGIN { printf "%.0f", t * 1e6 + 1 }')")
bins=0 caption=""
if is_uint "$densest" && [ $((densest * 3)) -gt "$px" ]; then
    bins=$((px / 2))
    caption=$(awk -v n="$densest" -v px="$px" -v b="$bins" -v t0="$t0" -v t1="$t1" 'BEGIN {
        printf "%d ops on the fullest row, %d px wide: aggregated into %d bins of %.3g ms; a column'"'"'s segments are the share of its bin each kind keeps the device busy", n, px, b, (t1 - t0) / b }')
fi
mkdir -p "$outdir" || fail "cannot make the folder '$outdir'"
i=0
for r in "$@"; do
    i=$((i + 1))
    q "select :b, device, stream, kind, micro_batch, start_ns, end_ns from ops where run_id = :r
        and stream in ('compute', 'optimizer', 'send', 'allreduce', 'reduce_scatter', 'all_gather', 'expert')
        order by device, stream, start_ns" b="$i" r="$r"
done | awk -v rows="$rowmap" -v t0="$t0" -v t1="$t1" -v bins="$bins" -v dat="$base.dat" \
    -v minw="$(awk -v a="$t0" -v b="$t1" -v px="$px" 'BEGIN { printf "%.9f", 1.5 * (b - a) / px }')" \
    -f "$here/timeline.awk" >"$tmpdir/tl"
kinds=$(sed -n 's/^kinds //p' "$tmpdir/tl")
nsend=$(sed -n 's/^sends //p' "$tmpdir/tl")
ncoll=$(sed -n 's/^colls //p' "$tmpdir/tl")
na2f=$(sed -n 's/^a2a \([0-9]*\) .*/\1/p' "$tmpdir/tl") na2b=$(sed -n 's/^a2a [0-9]* //p' "$tmpdir/tl")
[ -n "$kinds" ] || { rm -f "$base.dat"; die "runs $* have no ops to draw (or none in that window)"; }
common=$(meta_of title)
if [ $# = 1 ]; then
    t="Timeline: run $1, $(meta_of sched "$1"), $common"
else
    t="Timeline: runs $(echo "$*" | sed 's/ /, /g'), $common"
fi
gpvars="ytl=$(gp_str "$ytics"); nblock=$([ $# -gt 1 ] && echo "$nblock" || echo 0)$blocks"
draw timeline.gp data:="$base.dat" rows="$rows" t0="$t0" t1="$t1" kinds:="$kinds" \
    nsend="${nsend:-0}" ncoll="${ncoll:-0}" na2f="${na2f:-0}" na2b="${na2b:-0}" agg="$([ "$bins" -gt 0 ] && echo 1 || echo 0)" \
    caption:="$caption" subtitle:="$sub" title:="$(fig_title "$t")"
