#!/bin/sh
# tests/cli_moe.sh: mixture of experts through psim (sourced by tests/cli_test.sh, whose $psim,
# $tmp, ok, nok, expect and sql it uses): bad MoE keys name their file and line and exit 2,
# pexec refuses MoE layers, and the stored run holds the expert all-to-all rows.
pexec="$(dirname "$psim")/pexec"
mix=scenarios/mixtral-8x7b.scn

# a scenario file with one MoE key wrong on a known line (the key replaced, or appended)
moe_bad() { # NAME KEY=VALUE: $tmp/NAME.scn, mixtral with that key (and its config beside it)
    cp scenarios/mixtral-8x7b.json "$tmp/"
    sed "/^$(echo "$2" | cut -d= -f1) *=/d" $mix >"$tmp/$1.scn"
    sed -i "s/^\[model\]\$/[model]\n$(echo "$2" | sed 's/=/ = /')/" "$tmp/$1.scn"
}
moe_bad topk experts_per_token=9
expect "experts_per_token > experts: file:line, exit 2" 2 \
    "topk.scn:10: experts_per_token = 9 with experts = 8; .*1 <= experts_per_token <= 8" \
    $psim --no-db "$tmp/topk.scn"
moe_bad hot expert_hot_share=0.05
expect "a hottest share below 1/E: file:line, exit 2" 2 \
    "hot.scn:10: expert_hot_share = 0.05 is below the balanced share 1/experts = 0.125" \
    $psim --no-db "$tmp/hot.scn"
expect "expert not dividing the data ranks: exit 2" 2 \
    "expert = 3 must divide experts = 8 .* and data = 16 .*use e.g. expert = 2" \
    $psim --no-db --set parallel.expert=3 $mix
expect "experts with tensor parallelism are refused: exit 2" 2 \
    "tensor = 2 with experts = 8: pipesim does not split experts by tensor parallelism" \
    $psim --no-db --set parallel.tensor=2 $mix
expect "an MoE key on a dense model: exit 2" 2 \
    "first_dense_layers is a mixture-of-experts key, but experts = 0" \
    $psim --no-db --set model.first_dense_layers=3 scenarios/gpt13b.scn
expect "no MoE layer left: exit 2" 2 \
    "first_dense_layers = 32 and moe_layer_freq = 1 leave no MoE layer among the 32 layers" \
    $psim --no-db --set model.first_dense_layers=32 $mix
expect "expert parallelism on the flat model: exit 2" 2 "expert = 8 is priced by the roofline" \
    $psim --no-db --set hardware.cost_model=flat $mix
expect "pexec refuses MoE layers: exit 2" 2 "experts = 8: pexec does not run mixture-of-experts layers" \
    $pexec --no-db $mix

# the stored run: 2 all-to-alls (dispatch, combine) per MoE layer in each F and each BW, 8
# layers a stage, each row T k h bf16 bytes, inside its compute row
db="$tmp/moe.db"
$psim --db "$db" --quiet $mix
got="$(sql "$db" "select kind || ':' || count(*) || ':' || min(bytes) || ':' || max(bytes) from ops
                  where stream = 'expert' and device = 1 and micro_batch = 0 group by kind order by kind")"
[ "$got" = "$(printf 'BW:16:67108864:67108864\nF:16:67108864:67108864')" ] \
    && ok "psim stores 16 expert rows of 64 MiB per F and per BW op" \
    || nok "psim stores 16 expert rows of 64 MiB per F and per BW op" "$got"
got="$(sql "$db" "select count(*) from ops e where stream = 'expert' and not exists (select 1
                  from ops c where c.run_id = e.run_id and c.stream = 'compute' and c.device = e.device
                  and c.micro_batch = e.micro_batch and c.kind = e.kind and c.start_ns <= e.start_ns
                  and e.end_ns <= c.end_ns)")"
[ "$got" = 0 ] && ok "every expert row lies inside its compute row" || nok "every expert row lies inside its compute row" "$got outside"
expect "node-limited routing on a dense model: exit 2" 2 \
    "expert_node_limit is a mixture-of-experts key, but experts = 0" \
    $psim --no-db --set parallel.expert_node_limit=4 scenarios/gpt13b.scn

# the timeline draws the all-to-alls: one DualPipe pair of DeepSeek-V3 on device 3 has as many
# forward and backward all-to-all bars as the expert rows stored in that window
mdb="$tmp/moe-tl.db"
rm -f "$mdb"
"$psim" --db "$mdb" --quiet scenarios/deepseek-v3.scn 2>/dev/null
set -- $(sqlite3 -separator ' ' "$mdb" "select a.start_ns, a.end_ns from ops a join ops b on b.run_id = a.run_id
    and b.device = a.device and b.stream = 'compute' and b.start_ns = a.start_ns and b.end_ns = a.end_ns
    and b.kind != 'F' where a.run_id = 1 and a.device = 3 and a.stream = 'compute' and a.kind = 'F'
    order by a.start_ns limit 1 offset 20")
lo=$1 hi=$2
want_f=$(sqlite3 "$mdb" "select count(*) from ops where run_id = 1 and device = 3 and stream = 'expert' and kind = 'F' and start_ns >= $lo and end_ns <= $hi")
want_b=$(sqlite3 "$mdb" "select count(*) from ops where run_id = 1 and device = 3 and stream = 'expert' and kind != 'F' and start_ns >= $lo and end_ns <= $hi")
"$(dirname "$psim")/pplot" timeline --db "$mdb" --devices 3 --from-ms "$(awk -v x="$lo" 'BEGIN { print x / 1e6 }')" \
    --to-ms "$(awk -v x="$hi" 'BEGIN { print x / 1e6 }')" --format png --name pair "$tmp/moefig" 1 >/dev/null 2>"$tmp/moefig.err"
got=$(awk 'BEGIN { b = 0 } /^$/ { if (prev == "") b++; prev = ""; next } { prev = $0; if (b == 3 && $2 != "NaN") f++; if (b == 4 && $2 != "NaN") g++ }
    END { printf "%d %d", f, g }' "$tmp/moefig/pair.dat" 2>/dev/null)
if [ "$want_f" -gt 0 ] && [ "$got" = "$want_f $want_b" ] && [ ! -s "$tmp/moefig.err" ] && [ -s "$tmp/moefig/pair.png" ]; then
    ok "the DualPipe pair's timeline draws its $want_f forward and $want_b backward all-to-alls, gnuplot silent"
else nok "the DualPipe pair's timeline draws its all-to-alls" "bars $got, expert rows $want_f $want_b" "$(head -c 300 "$tmp/moefig.err")"; fi
