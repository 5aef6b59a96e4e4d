# plots/throughput.sh, sourced by pplot with the sweep ids in "$@": tokens/s and TFLOP/s per
# GPU side by side, one line per configuration, against micro-batches (or pipeline stages when
# the sweep varied those and not m). Data: a block per configuration (x, tokens_per_s,
# tflops_per_gpu).
default_size 1200 480
base=$(out_base throughput "$@")
x=micro_batches key=batch.micro_batches xlabel="micro-batches per iteration, m"
if [ "$(q "select count(distinct micro_batches) from runs where $(id_in sweep "$@")" $(id_binds "$@"))" = 1 ] &&
   [ "$(q "select count(distinct devices) from runs where $(id_in sweep "$@")" $(id_binds "$@"))" -gt 1 ]; then
    x=devices key=pipeline.stages xlabel="pipeline stages, p"
fi
sweep_data throughput "$key" "$x tokens_per_s tflops_per_gpu" \
    "r.$x, m_throughput_tokens_per_s.value, m_tflops_per_gpu.value" "$@"
draw throughput.gp data:="$base.dat" xt:="$(x_values "$base.dat")" xlabel:="$xlabel" \
    y1label:="throughput (thousand tokens/s)" y1scale=1000 y2label:="TFLOP/s per GPU" \
    title:="$(fig_title "Throughput: $common")"
