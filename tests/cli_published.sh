# tests/cli_published.sh (sourced by cli_test.sh): psim against published end-to-end runs with
# the presets' figures and no per-row tuning. Narayanan et al. 2021 Table 1
# (tests/data/megatron2021_table1.csv): each row's achieved TFLOP/s per GPU from psim's
# iteration time with their equation 3, 96 B s l h^2 (1 + s/6h + V/16lh) (full recompute).
# Interleaved with v = 2 where the pipeline's layers per stage allow, 1F1B otherwise.
#
# The rows without pipelining (t = 1..8, p = 1) are within 8% each and 4% mean. The pipelined
# rows (p = 2..64) come out 12-21% faster than published: a cost of theirs that the model does
# not see yet (issue 15 stays open on it); their bound below only keeps the gap from growing.
published_row() { # LINE: prints "params_b p err_percent"
    IFS=, read -r pb heads hidden layers t p gpus gb ach pct <<EOT
$1
EOT
    d=$((gpus / (t * p))) m=$((gb / (gpus / (t * p))))
    sched=1f1b v=1
    if [ "$p" -gt 1 ] && [ $(((layers / p) % 2)) -eq 0 ]; then sched=interleaved v=2; fi
    $psim --no-db --json tests/data/megatron2021.scn --set model.layers="$layers" \
        --set model.hidden="$hidden" --set model.heads="$heads" --set parallel.tensor="$t" \
        --set pipeline.stages="$p" --set parallel.data="$d" --set batch.micro_batches="$m" \
        --set pipeline.schedule=$sched --set pipeline.chunks=$v >"$tmp/pub.json" 2>"$tmp/pub.err"
    ms=$(json_num iteration_ms "$tmp/pub.json")
    awk -v pb="$pb" -v p="$p" -v B="$gb" -v l="$layers" -v h="$hidden" -v n="$gpus" \
        -v ach="$ach" -v ms="$ms" 'BEGIN {
        if (ms == "" || ms <= 0) { print pb, p, "none"; exit }
        s = 2048; V = 51200
        f = 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h))
        printf "%s %d %.2f\n", pb, p, 100 * (f / (ms / 1e3) / n / 1e12 - ach) / ach }'
}
grep -v '^#' tests/data/megatron2021_table1.csv | tail -n +2 | while read -r line; do
    published_row "$line"
done >"$tmp/pub.txt"
awk '$2 == 1 { n++; e = $3 < 0 ? -$3 : $3; sum += e; if ($3 == "none" || e > 8) bad = bad " " $1 "B:" $3 "%" }
     END { if (n != 4 || bad != "") { print "bad" bad; exit } printf "%.2f\n", sum / n }' \
    "$tmp/pub.txt" >"$tmp/pub.flat"
if grep -q bad "$tmp/pub.flat"; then
    nok "Megatron 2021 Table 1, p = 1 rows: each within 8%" "$(cat "$tmp/pub.flat")" "$(cat "$tmp/pub.txt")"
else
    ok "Megatron 2021 Table 1, p = 1 rows: each within 8%"
    near "Megatron 2021 Table 1, p = 1 rows: mean |error| <= 4%" "$(cat "$tmp/pub.flat")" 2 2
fi
awk '$2 > 1 { n++; if ($3 == "none" || $3 < -8 || $3 > 25) bad = bad " " $1 "B:" $3 "%" }
     END { print n == 6 && bad == "" ? "fine" : "bad" bad }' "$tmp/pub.txt" >"$tmp/pub.pipe"
if grep -q fine "$tmp/pub.pipe"; then ok "Megatron 2021 Table 1, pipelined rows: within -8%..+25% (the open gap)"
else nok "Megatron 2021 Table 1, pipelined rows: within -8%..+25% (the open gap)" "$(cat "$tmp/pub.pipe")" "$(cat "$tmp/pub.txt")"; fi

# Held out (not used to set anything): MT-NLG 530B (tests/data/mtnlg2022.csv) on 280, 350 and
# 420 nodes. Its software ran about 30% slower than psim's roofline says (psim 41.8 s against
# 60.1 s on 280 nodes: DeepSpeed's pipeline engine with Megatron's layers, 23% slower than
# Megatron-LM's own 529.6B row of Table 1), but how the iteration shrinks with the data
# parallel width (m = 1920/d micro-batches, so the bubble grows) is the schedule's and the
# all-reduce's, which psim models: each ratio to the 280-node time within 5%.
mtnlg() { # D: psim's iteration time, ms
    $psim --no-db --json tests/data/megatron2021.scn --set model.layers=105 --set model.hidden=20480 \
        --set model.heads=128 --set model.vocab=50272 --set parallel.tensor=8 --set pipeline.stages=35 \
        --set parallel.data="$1" --set batch.micro_batches=$((1920 / $1)) 2>/dev/null >"$tmp/mt.json"
    json_num iteration_ms "$tmp/mt.json"
}
base=$(mtnlg 8)
pub_base=$(grep '^280,' tests/data/mtnlg2022.csv | cut -d, -f3)
for row in $(grep -E '^(350|420),' tests/data/mtnlg2022.csv); do
    d=$(echo "$row" | cut -d, -f2) pub=$(echo "$row" | cut -d, -f3)
    got=$(awk -v a="$(mtnlg "$d")" -v b="$base" -v p="$pub" -v q="$pub_base" \
        'BEGIN { if (a == "" || b == "") print "none"; else printf "%.4f", (a / b) / (p / q) - 1 }')
    near "MT-NLG 530B (held out): the iteration at d = $d over d = 8 as published, within 5%" "$got" 0 0.05
done
