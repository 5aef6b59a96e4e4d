# plots/scaling.sh, sourced by pplot with the sweep ids in "$@": throughput and MFU against the
# number of GPUs (p x d x t x c, the runs' devices_total), one line per configuration; the
# widths the sweep varied are the axis, not configurations. Data: a block per configuration
# (gpus, tokens_per_s, mfu in %).
default_size 1200 480
base=$(out_base scaling "$@")
runs_config "$(id_in r.sweep "$@") and r.status = 'complete'" $(id_binds "$@") >"$tmpdir/runs"
skip=""
for k in pipeline.stages parallel.data parallel.tensor parallel.context; do
    [ -n "$(one_key "${k#*.}")" ] || skip="$skip${skip:+,}$k"
done
[ -n "$skip" ] || die "sweep $* ran one number of GPUs; sweep pipeline.stages, parallel.data or parallel.tensor for a scaling figure"
sweep_data scaling "$skip" "gpus tokens_per_s mfu_percent" \
    "m_devices_total.value, m_throughput_tokens_per_s.value, 100 * m_mfu.value" "$@"
set -- $(awk '!/^#/ && NF { print $1, $2; exit }' "$base.dat")
draw throughput.gp data:="$base.dat" xt:="$(x_values "$base.dat")" xlabel:="GPUs (p × d × t × c)" \
    xlog=0 ideal=1 x0="$1" y0="$2" \
    y1label:="throughput (thousand tokens/s)" y1scale=1000 y2label:="MFU (%)" \
    title:="$(fig_title "Scaling: $common")"
