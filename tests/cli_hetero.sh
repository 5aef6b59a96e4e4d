# tests/cli_hetero.sh: heterogeneous devices and links through psim (sourced by cli_test.sh,
# whose psim, tmp, ok, nok, expect, json_num and sql it uses): bad sections exit 2 with
# FILE:LINE and store nothing, a slow device is the named bottleneck, balanced splits around
# it, a link override changes exactly its hop in the stored ops, devices_per_gpu round-trips.

# 16 layers of h = 1024 on 4 H100s with the analytic model; [device.2] at line 16
cat >"$tmp/het.scn" <<'SCN'
[model]
layers = 16
hidden = 1024
heads = 16
seq_len = 1024
vocab = 1024
[batch]
micro_batches = 8
[pipeline]
stages = 4
schedule = 1f1b
[hardware]
gpu = h100
efficiency = 0.5

[device.2]
efficiency = 0.25
SCN

printf '[device.9]\ngpu = a100\n' | cat "$tmp/het.scn" - >"$tmp/bad.scn"
expect "[device.9] on 4 devices: FILE:LINE and the fix, exit 2" 2 \
    "^psim: $tmp/bad.scn:19: \[device.9\] names device 9, but stages = 4 numbers the pipeline's devices 0 .. 3; use a device below 4" \
    $psim --db "$tmp/bad.db" "$tmp/bad.scn"
[ ! -s "$tmp/bad.db" ] || [ "$(sql "$tmp/bad.db" 'select count(*) from runs')" = 0 ] \
    && ok "a rejected [device.N] stores nothing" || nok "a rejected [device.N] stores nothing"
printf '[link.0-1]\nbandwith_gbs = 3\n' | cat "$tmp/het.scn" - >"$tmp/bad.scn"
expect "misspelt link key: did you mean, exit 2" 2 \
    "$tmp/bad.scn:19: unknown key 'bandwith_gbs' in \[link.0-1\]; did you mean 'bandwidth_gbs'\?" \
    $psim --no-db "$tmp/bad.scn"
expect "--set device.x.gpu: malformed section, exit 2" 2 \
    "^psim: --set device.x.gpu=a100: section \[device.x\] is not valid; write \[device.N\]" \
    $psim --no-db --set device.x.gpu=a100 "$tmp/het.scn"

# device 2 at half speed is the bottleneck, in --json and in the summary
$psim --no-db --json "$tmp/het.scn" >"$tmp/j" 2>&1
[ "$(json_num bottleneck_device "$tmp/j")" = 2 ] && ok "a 2x slower device 2 is bottleneck_device" \
    || nok "a 2x slower device 2 is bottleneck_device" "$(head -c 300 "$tmp/j")"
grep -q '"partition": \[4, 4, 4, 4\],' "$tmp/j" && ok "--json lists the partition" \
    || nok "--json lists the partition" "$(grep -o '"partition[^]]*]' "$tmp/j")"
$psim --no-db "$tmp/het.scn" >"$tmp/out" 2>&1
grep -Eq '^ +2 +4 .*<- busiest$' "$tmp/out" && ok "the summary marks device 2 busiest" \
    || nok "the summary marks device 2 busiest" "$(grep busiest "$tmp/out")"

# balanced: device 2 takes fewer layers, and psim says which stage bounds the split
$psim --no-db --json --set pipeline.partition=balanced "$tmp/het.scn" >"$tmp/j" 2>&1
part=$(sed -n 's/.*"partition": \[\([0-9, ]*\)\].*/\1/p' "$tmp/j")
echo "$part" | awk -F', ' '{ exit !(NF == 4 && $3 < $1 && $3 < $2 && $1 + $2 + $3 + $4 == 16) }' \
    && ok "balanced gives the slow device 2 fewer layers ($part)" || nok "balanced gives the slow device 2 fewer layers" "$part"
u=$(json_num makespan_ms "$tmp/j")
$psim --no-db --json "$tmp/het.scn" >"$tmp/j2" 2>&1
awk -v b="$u" -v u="$(json_num makespan_ms "$tmp/j2")" 'BEGIN { exit !(b != "" && b < u) }' \
    && ok "balanced beats uniform around a slow device" || nok "balanced beats uniform around a slow device" "$u"
$psim --no-db --set pipeline.partition=balanced "$tmp/het.scn" >"$tmp/out" 2>&1
grep -Eq "^partition +$(echo "$part" | tr -d ' ') \(balanced: stage [0-9] on device [0-9] is the slowest, F\+B\+W [0-9.]+ ms; an even split's slowest is [0-9.]+ ms\)$" "$tmp/out" \
    && ok "the summary says the split and its bottleneck" || nok "the summary says the split and its bottleneck" "$(grep ^partition "$tmp/out")"
$psim --no-db --set pipeline.partition=balanced --set device.0.memory_gib=1.5 "$tmp/het.scn" >"$tmp/out" 2>&1
grep -q "device 0's memory_gib = 1.5" "$tmp/out" && ok "the summary names the memory limit that shaped the split" \
    || nok "the summary names the memory limit that shaped the split" "$(grep ^partition "$tmp/out")"

# a link override: every send between devices 1 and 2 lasts latency + bytes / bandwidth
# (2 MiB over 4 GB/s plus 100 us = 624288 ns), every other send the intra-node figure
db="$tmp/link.db"
$psim --db "$db" --quiet --set link.2-1.bandwidth_gbs=4 --set link.1-2.latency_us=100 "$tmp/het.scn"
got=$(sql "$db" "select group_concat(distinct (device < 3 and peer < 3 and device > 0 and peer > 0) || ':' || (end_ns - start_ns)) from ops where stream = 'send'")
intra=$(awk 'BEGIN { printf "%d", 10e3 + 2097152 / 450 + 0.5 }')
[ "$got" = "0:$intra,1:624288" ] || [ "$got" = "1:624288,0:$intra" ] \
    && ok "a link override changes exactly that hop's transfers" || nok "a link override changes exactly that hop's transfers" "$got"

# devices_per_gpu = 2: the stored resolved scenario runs again to the same makespan
db="$tmp/dpg.db"
$psim --db "$db" --json --set hardware.devices_per_gpu=2 --set device.3.gpu=a100 "$tmp/het.scn" >"$tmp/j" 2>&1
sql "$db" "select resolved from runs where id = 1" >"$tmp/resolved.scn"
grep -q '^devices_per_gpu = 2$' "$tmp/resolved.scn" && grep -q '^\[device.3\]$' "$tmp/resolved.scn" \
    && ok "the resolved scenario keeps devices_per_gpu and [device.N]" || nok "the resolved scenario keeps devices_per_gpu and [device.N]"
$psim --no-db --json "$tmp/resolved.scn" >"$tmp/j2" 2>&1
a=$(json_num makespan_ms "$tmp/j") b=$(json_num makespan_ms "$tmp/j2")
[ -n "$a" ] && [ "$a" = "$b" ] && ok "the stored resolved scenario reruns to the same makespan ($a ms)" \
    || nok "the stored resolved scenario reruns to the same makespan" "$a vs $b"
