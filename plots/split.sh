# plots/split.sh, sourced by pplot with run ids in "$@": each device's time per iteration by
# kernel class (gemm, attention, memory-bound, tp_comm, launch: the device metrics gemm_ms ..
# launch_ms, psim's prediction or pexec's measurement) as stacked bars, the runs side by side
# for each device. Data: one row per (device, run): "label", the five classes in ms.
default_size 1000 520
base=$(out_base split "$@")
for r in "$@"; do
    [ "$(q "select count(*) from device_metrics where run_id = :r and name = 'gemm_ms'" r="$r")" -gt 0 ] ||
        die "run $r has no split by kernel class (the flat model, measured [costs], or a run from before the split); nothing drawn"
done
runs_meta "$@"
i=0
for r in "$@"; do
    i=$((i + 1))
    q "select :k, device, :r, sum(case name when 'gemm_ms' then value else 0 end),
        sum(case name when 'attention_ms' then value else 0 end),
        sum(case name when 'memory_ms' then value else 0 end),
        sum(case name when 'tp_comm_ms' then value else 0 end),
        sum(case name when 'launch_ms' then value else 0 end)
        from device_metrics where run_id = :r group by device" k="$i" r="$r"
done | sort -t '	' -k2,2n -k1,1n >"$tmpdir/split"
mkdir -p "$outdir" || fail "cannot make the folder '$outdir'"
# labels "d0: run 2 predicted" (with what tells the runs apart)
{ echo "# label gemm_ms attention_ms memory_ms tp_comm_ms launch_ms (per iteration)"
  while IFS='	' read -r _ d r g a m t l; do
      is_uint "$r" || continue
      echo "\"d$d: run $r $(meta_of label "$r")\" $g $a $m $t $l"
  done <"$tmpdir/split"; } >"$base.dat"
cols=$(awk '!/^#/ { sub(/^"[^"]*" /, ""); for (c = 2; c <= 6; c++) if ($(c - 1) + 0 != 0) has[c] = 1 }
    END { for (c = 2; c <= 6; c++) if (has[c]) printf "%d ", c }' "$base.dat")
draw split.gp data:="$base.dat" cols:="$cols" \
    title:="$(fig_title "Time per iteration by kernel class: runs $(echo "$*" | sed 's/ /, /g'), $(meta_of title)")"
