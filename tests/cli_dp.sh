#!/bin/sh
# tests/cli_dp.sh: data and tensor parallelism through psim (sourced by tests/cli_test.sh,
# whose $psim, $tmp, ok, nok, expect, json_num, near and sql it uses).
pexport=$(dirname "$psim")/pexport

# gpt13b with d = 8 on 64 H100s: the replicas of each pipeline rank fill one 8-GPU node, so
# the all-reduce rings are intra-node (NVLink, 450 GB/s, 10 us) and every pipeline hop is
# inter-node. Stage 0 holds 5 layers of 12h^2 + 13h and the embedding (V + s)h, in bf16.
db="$tmp/dp.db"
$psim --db "$db" --json --set parallel.data=8 scenarios/gpt13b.scn >"$tmp/j" 2>"$tmp/e"
want=$(awk 'BEGIN { h = 5120; n = 2 * (5 * (12 * h * h + 13 * h) + (51200 + 2048) * h);
                    printf "%.6f", int(2 * 7 * 10e3 + 2 * 7 / 8 * n / 450 + 0.5) / 1e6 }')
near "d=8 all-reduce is the ring formula on stage 0's gradients ($want ms)" "$(json_num allreduce_ms "$tmp/j")" "$want" 1e-9
near "1f1b exposes its whole last all-reduce" "$(json_num allreduce_exposed_ms "$tmp/j")" "$want" 1e-9
[ "$(json_num devices_total "$tmp/j")" = 64 ] && [ "$(json_num global_batch "$tmp/j")" = 256 ] \
    && ok "d=8 p=8: 64 GPUs, global batch 256" || nok "d=8 p=8: 64 GPUs, global batch 256" "$(head -c 600 "$tmp/j")"
ms=$(json_num makespan_ms "$tmp/j")
near "tokens/s count every replica" "$(json_num throughput_tokens_per_s "$tmp/j")" \
    "$(awk -v ms="$ms" 'BEGIN { printf "%.9f", 256 * 2048 / (ms / 1e3) }')" 1e-3
[ "$(sql "$db" "select count(*) from ops where stream = 'allreduce'") $(sql "$db" "select count(*) from ops where stream = 'optimizer'")" = "8 8" ] \
    && ok "one all-reduce and one optimizer row per device stored" || nok "one all-reduce and one optimizer row per device stored" "$(sql "$db" "select stream, count(*) from ops group by stream")"
near "the stored exposed all-reduce is the printed one" "$(sql "$db" "select value from metrics where name = 'allreduce_exposed_ms'")" "$want" 1e-9
$pexport --db "$db" --chrome 1 >"$tmp/trace.json" 2>"$tmp/e"
grep -q '"name":"d0 all-reduce"' "$tmp/trace.json" && grep -q '"cat":"optimizer"' "$tmp/trace.json" \
    && ok "pexport draws the allreduce and optimizer lanes" || nok "pexport draws the allreduce and optimizer lanes" "$(head -c 300 "$tmp/e")"
$psim --no-db --set parallel.data=8 --set parallel.tensor=2 scenarios/gpt13b.scn >"$tmp/s" 2>&1
grep -q '^# gpt13b: 1f1b, p=8 v=1 d=8 t=2 ' "$tmp/s" && grep -q '^gradient all-reduce .*inter-node' "$tmp/s" \
    && ok "the summary names d and t and the links of the all-reduce" || nok "the summary names d and t and the links of the all-reduce" "$(head -n 4 "$tmp/s")"

# bad combinations: exit 2, the key named, nothing stored
expect "tensor above gpus_per_node is refused" 2 "--set parallel.tensor=16: tensor = 16 is more than gpus_per_node = 8.*use tensor <= 8" \
    $psim --db "$tmp/none.db" --set parallel.tensor=16 scenarios/gpt13b.scn
[ ! -s "$tmp/none.db" ] || [ "$(sql "$tmp/none.db" 'select count(*) from runs')" = 0 ] \
    && ok "a refused tensor writes nothing" || nok "a refused tensor writes nothing"
expect "data parallelism with an asynchronous schedule is refused" 2 "data = 2 with schedule = pipedream-2bw.*asynchronous" \
    $psim --no-db --set pipeline.schedule=pipedream-2bw --set parallel.data=2 scenarios/gpt13b.scn
expect "an unknown all-reduce algorithm is refused" 2 "unknown allreduce 'mesh'; use ring or tree" \
    $psim --no-db --set parallel.allreduce=mesh scenarios/gpt13b.scn
# the timeline figure draws the all-reduces (one bar per device and chunk) and optimizer steps
"$(dirname "$psim")/pplot" timeline "$db" "$tmp/dpfig" 1 --name dp >/dev/null 2>"$tmp/e"
[ -s "$tmp/dpfig/dp.png" ] && [ "$(awk '/^$/ { b++ } b == 4 && NF == 3 && $2 != "NaN"' "$tmp/dpfig/dp.dat" | wc -l)" = 8 ] \
    && [ "$(awk '/^$/ { exit } NF == 7 && $6 == 5' "$tmp/dpfig/dp.dat" | wc -l)" = 8 ] && [ ! -s "$tmp/e" ] \
    && ok "the timeline figure draws 8 all-reduces and 8 optimizer steps" \
    || nok "the timeline figure draws 8 all-reduces and 8 optimizer steps" "$(head -c 300 "$tmp/e")"

# --- ZeRO: the same gpt13b d = 8; zero = 1 splits the all-reduce into a reduce-scatter and an
# all-gather of half its time each (ring over 8 NVLink GPUs: 7 alpha + 7/8 n / beta), divides
# the optimizer step by 8 and stores the two halves under their own streams
zdb="$tmp/zero.db"
$psim --db "$zdb" --json --set parallel.data=8 --set parallel.zero=1 scenarios/gpt13b.scn >"$tmp/z1" 2>"$tmp/e"
rs=$(awk 'BEGIN { h = 5120; n = 2 * (5 * (12 * h * h + 13 * h) + (51200 + 2048) * h);
                  printf "%.6f", int(7 * 10e3 + 7 / 8 * n / 450 + 0.5) / 1e6 }')
near "zero=1: the reduce-scatter is the ring's half ($rs ms)" "$(json_num reduce_scatter_ms "$tmp/z1")" "$rs" 1e-9
$psim --no-db --json --set parallel.data=8 scenarios/gpt13b.scn >"$tmp/z0" 2>"$tmp/e"
near "zero=1: reduce-scatter + all-gather = zero=0's all-reduce" \
    "$(awk -v a="$(json_num reduce_scatter_ms "$tmp/z1")" -v b="$(json_num all_gather_ms "$tmp/z1")" 'BEGIN { printf "%.6f", a + b }')" \
    "$(json_num allreduce_ms "$tmp/z0")" 1e-9
near "zero=1: no all-reduce left" "$(json_num allreduce_ms "$tmp/z1")" 0 0
near "zero=1: the optimizer step is zero=0's / 8" \
    "$(awk -v a="$(json_num optimizer_ms "$tmp/z1")" 'BEGIN { printf "%.6f", 8 * a }')" "$(json_num optimizer_ms "$tmp/z0")" 1e-5
near "zero=1: device 0's optimizer state is zero=0's / 8" \
    "$(awk -v a="$(json_num optimizer_gib "$tmp/z1")" 'BEGIN { printf "%.9f", 8 * a }')" "$(json_num optimizer_gib "$tmp/z0")" 1e-9
[ "$(sql "$zdb" "select group_concat(stream || ':' || n, ' ') from (select stream, count(*) n from ops where stream <> 'compute' and stream <> 'send' and stream <> 'recv' group by stream order by stream)")" = "all_gather:8 optimizer:8 reduce_scatter:8" ] \
    && ok "zero=1 stores a reduce_scatter and an all_gather row per device, no allreduce" \
    || nok "zero=1 stores a reduce_scatter and an all_gather row per device" "$(sql "$zdb" "select stream, count(*) from ops group by stream")"
$psim --no-db --set parallel.data=8 --set parallel.zero=2 scenarios/gpt13b.scn >"$tmp/s" 2>&1
grep -q '^gradient reduce-scatter .*zero = 2: ring over 8 replicas, intra-node links' "$tmp/s" \
    && grep -q '^parameter all-gather ' "$tmp/s" && ! grep -q '^gradient all-reduce' "$tmp/s" \
    && ok "the summary names the reduce-scatter and all-gather, not an all-reduce" \
    || nok "the summary names the reduce-scatter and all-gather" "$(head -n 14 "$tmp/s")"
expect "zero with data = 1 is refused, naming the file and line" 2 \
    "zero.scn:[0-9]+: zero = 2 shards over the data-parallel replicas, but data = 1; use data > 1 or zero = 0" \
    sh -c "sed 's/^\[pipeline\]/[parallel]\nzero = 2\n[pipeline]/' scenarios/gpt13b.scn > $tmp/zero.scn && $psim --no-db $tmp/zero.scn"
expect "zero out of range is refused" 2 "zero" $psim --no-db --set parallel.data=2 --set parallel.zero=4 scenarios/gpt13b.scn
