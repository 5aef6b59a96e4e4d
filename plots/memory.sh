# plots/memory.sh, sourced by pplot with one run id in "$1": memory of each device over the run
# (step lines: a device holds a stored value until its next sample), the device limit
# (memory_gib) dashed inside the frame. --devices picks devices (more than 8, by default the
# first, the last, the fullest and the emptiest; the caption says so), --from-ms/--to-ms a
# window. Data: a block per device (t_ms, gib).
default_size 1000 540
run=$1
base=$(out_base memory "$run")
[ "$(q "select status from runs where id = :r" r="$run")" = failed ] &&
    die "run $run failed ($(q "select error from runs where id = :r" r="$run" | tr -cd '[:print:]')); it has no memory samples"
p=$(q "select devices from runs where id = :r" r="$run")
is_uint "$p" || die "run $run has no device count"
runs_meta "$run"
list=$(device_list "$p") || exit 2
note=""
if [ -z "$devices" ] && [ "$p" -gt 8 ]; then
    peaks=$(q "select device from device_metrics where run_id = :r and name = 'peak_memory_gib'
        order by value desc, device" r="$run")
    list=$(printf '%s\n' 0 $((p - 1)) "$(echo "$peaks" | head -n 1)" "$(echo "$peaks" | tail -n 1)" | grep -x '[0-9][0-9]*' | sort -n -u)
    note="$(echo "$list" | wc -l | tr -d ' ') of $p devices: first, last, fullest, emptiest (--devices to choose)"
fi
q "select device, t_ns, bytes from memory where run_id = :r order by device, t_ns" r="$run" >"$tmpdir/mem"
[ -s "$tmpdir/mem" ] || die "run $run has no memory samples"
mkdir -p "$outdir" || fail "cannot make the folder '$outdir'"
# a block per device drawn; with a window, the value held at its start opens the block
awk -F'\t' -v list="$(echo $list)" -v from="${from_ms:-}" -v to="${to_ms:-}" -v dat="$base.dat" '
    BEGIN { n = split(list, d, " "); for (i = 1; i <= n; i++) want[d[i]] = i }
    ($1 in want) { k = want[$1]; c[k]++; t[k, c[k]] = $2 / 1e6; g[k, c[k]] = $3 / 1073741824 }
    END {
        for (i = 1; i <= n; i++) {
            printf "# device %d\n# t_ms gib\n", d[i] > dat
            last = -1
            for (j = 1; j <= c[i]; j++) {
                if (from != "" && t[i, j] < from + 0) { last = j; continue }
                if (to != "" && t[i, j] > to + 0) break
                if (last > 0) { printf "%.6f %.6f\n", from + 0, g[i, last] > dat; last = 0 }
                printf "%.6f %.6f\n", t[i, j], g[i, j] > dat
                drawn[i] = 1
            }
            if (last > 0) { printf "%.6f %.6f\n", from + 0, g[i, last] > dat; drawn[i] = 1 }
            printf "\n\n" > dat
        }
        for (i = 1; i <= n; i++) if (!drawn[i]) { print "empty " d[i]; exit }
    }' "$tmpdir/mem" >"$tmpdir/memout"
[ -s "$tmpdir/memout" ] && { rm -f "$base.dat"; die "run $run has no memory samples in that window"; }
t=""
i=0
for d in $list; do i=$((i + 1)); t="$t; t$i=$(gp_str "device $d")"; done
gpvars="n=$i$t"
span=$(q "select value from metrics where run_id = :r and name = 'makespan_ms'" r="$run")
draw memory.gp data:="$base.dat" limit="$(one_key memory_gib)" xmax="${to_ms:-$(gp_num "$span")}" \
    xmin="${from_ms:-0}" note:="$note" \
    title:="$(fig_title "Memory per device: run $run, $(meta_of sched "$run"), $(meta_of title)")"
