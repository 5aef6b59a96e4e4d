# plots/peak.sh, sourced by pplot with the sweep ids in "$@": the peak memory of each run's
# fullest device against micro-batches, one line per configuration, with the device limit
# (memory_gib, when every run has one) dashed inside the frame. Data: a block per configuration
# (m, peak_gib of the fullest device, peak_gib of the emptiest).
default_size 1000 540
base=$(out_base peak "$@")
sweep_data peak batch.micro_batches "m peak_gib_fullest peak_gib_emptiest" \
    "r.micro_batches, (select max(value) from device_metrics where run_id = r.id and name = 'peak_memory_gib'),
     (select min(value) from device_metrics where run_id = r.id and name = 'peak_memory_gib')" "$@"
draw peak.gp data:="$base.dat" xt:="$(x_values "$base.dat")" limit="$(one_key memory_gib)" \
    title:="$(fig_title "Peak memory of the fullest device: $common")"
