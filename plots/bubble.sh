# plots/bubble.sh, sourced by pplot with the sweep ids in "$@": the bubble rate (idle / total)
# against micro-batches, one line per configuration, beside the balanced closed forms that
# apply to what is drawn: (p-1)/(m+p-1) for GPipe and 1F1B, ((p-1)/v)/(m+(p-1)/v) for each
# interleaved v (when every run has one p). Data: a block per configuration (m, bubble_rate).
default_size 1000 540
base=$(out_base bubble "$@")
sweep_data bubble batch.micro_batches "m bubble_rate" "r.micro_batches, m_bubble_rate.value" "$@"
p=$(one_key stages) flush=0 vs=""
if is_uint "$p"; then
    q "select distinct schedule, chunks from runs r where $(id_in r.sweep "$@") and status = 'complete'" \
        $(id_binds "$@") >"$tmpdir/scheds"
    while IFS='	' read -r s v; do
        case $s in gpipe | 1f1b) flush=1 ;; interleaved) is_uint "$v" && vs="$vs $v" ;; esac
    done <"$tmpdir/scheds"
fi
vs=$(echo $vs | tr ' ' '\n' | sort -n -u | tr '\n' ' ')
draw bubble.gp data:="$base.dat" xt:="$(x_values "$base.dat")" p="${p:-0}" flush="$flush" vs:="$vs" \
    title:="$(fig_title "Bubble rate: $common")"
