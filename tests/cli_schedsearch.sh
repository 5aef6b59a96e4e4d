# tests/cli_schedsearch.sh: sourced by tests/cli_test.sh (uses psim, tmp, ok, nok, expect,
# json_num, near). The searched zero-bubble schedules as a user runs them: zb-auto keeps to the
# memory, a dumped order replays as custom to the same numbers, bad limits are refused with
# file:line, and pplan searches zb-auto.
pplan=$(dirname "$psim")/pplan

# zb-auto on gpt13b: zb-2p's limit of 2p activations takes device 7 over its 80 GiB at m = 32,
# zb-auto's (what memory_gib leaves) never; and it is no longer than zb-h2, which fits
"$psim" --no-db --json --set pipeline.schedule=zb-2p scenarios/gpt13b.scn >"$tmp/z2.json" 2>"$tmp/z2.err"
"$psim" --no-db --json --set pipeline.schedule=zb-auto scenarios/gpt13b.scn >"$tmp/za.json" 2>"$tmp/za.err"
"$psim" --no-db --json --set pipeline.schedule=zb-h2 scenarios/gpt13b.scn >"$tmp/zh.json" 2>/dev/null
peak_z2=$(sed -n 's/.*"peak_memory_gib": \([-0-9.e+]*\).*/\1/p' "$tmp/z2.json" | sort -g | tail -n 1)
peak_za=$(sed -n 's/.*"peak_memory_gib": \([-0-9.e+]*\).*/\1/p' "$tmp/za.json" | sort -g | tail -n 1)
if grep -q "more than memory_gib" "$tmp/z2.err" && ! grep -q "more than memory_gib" "$tmp/za.err" &&
    awk -v a="$peak_za" -v b="$peak_z2" 'BEGIN { exit !(a <= 80 && b > 80) }'; then
    ok "zb-auto keeps every device within memory_gib where zb-2p does not ($peak_za vs $peak_z2 GiB)"
else nok "zb-auto keeps every device within memory_gib" "zb-auto $peak_za GiB, zb-2p $peak_z2 GiB" "$(cat "$tmp/za.err")"; fi
ra=$(json_num bubble_rate "$tmp/za.json") rh=$(json_num bubble_rate "$tmp/zh.json")
if awk -v a="$ra" -v h="$rh" 'BEGIN { exit !(a != "" && a < h) }'; then
    ok "zb-auto's bubble rate is below zb-h2's on gpt13b ($ra < $rh)"
else nok "zb-auto's bubble rate is below zb-h2's on gpt13b" "zb-auto $ra, zb-h2 $rh"; fi

# --dump-schedule writes the searched order; replayed as custom it gives the same run
"$psim" --dump-schedule --set pipeline.schedule=zb-auto scenarios/gpt13b.scn >"$tmp/za.sched" 2>/dev/null
"$psim" --no-db --json --set pipeline.schedule=custom --set pipeline.schedule_file="$tmp/za.sched" \
    scenarios/gpt13b.scn >"$tmp/zc.json" 2>/dev/null
a=$(json_num iteration_ms "$tmp/za.json") c=$(json_num iteration_ms "$tmp/zc.json")
ba=$(json_num bubble_rate "$tmp/za.json") bc=$(json_num bubble_rate "$tmp/zc.json")
if [ -n "$a" ] && [ "$a" = "$c" ] && [ "$ba" = "$bc" ]; then
    ok "zb-auto's dumped order replays as custom to the same iteration ($a ms) and bubble"
else nok "zb-auto's dumped order replays as custom" "zb-auto $a ms $ba, custom $c ms $bc"; fi

# bad limits: on another schedule, below one micro-batch
printf '[model]\nlayers = 8\nhidden = 512\nheads = 8\nseq_len = 256\nvocab = 1000\n[batch]\nmicro_batches = 8\n[pipeline]\nstages = 4\nschedule = zb-h1\nactivation_limit = 6\n[hardware]\ngpu = h100\n' >"$tmp/al.scn"
expect "activation_limit with zb-h1: exit 2 naming the line" 2 "al.scn:12: .*only read with schedule = zb-auto" \
    "$psim" --no-db "$tmp/al.scn"
expect "activation_limit below one micro-batch: exit 2" 2 "--set pipeline.activation_limit=0.5: .*less than one micro-batch" \
    "$psim" --no-db --set pipeline.schedule=zb-auto --set pipeline.activation_limit=0.5 "$tmp/al.scn"
expect "zb-1p with two chunks: exit 2" 2 "zb-1p runs one model chunk per device, not 2" \
    "$psim" --no-db --set pipeline.schedule=zb-1p --set pipeline.chunks=2 --set pipeline.activation_limit=0 "$tmp/al.scn"
# a limit given: the fullest device holds at most that many micro-batches' activations
"$psim" --no-db --json --set pipeline.schedule=zb-auto --set pipeline.activation_limit=2 "$tmp/al.scn" >"$tmp/al.json" 2>/dev/null
most=$(sed -n 's/.*"peak_activations": \([0-9]*\).*/\1/p' "$tmp/al.json" | sort -n | tail -n 1)
if [ -n "$most" ] && [ "$most" -le 2 ]; then ok "zb-auto with activation_limit = 2 holds at most 2 micro-batches ($most)"
else nok "zb-auto with activation_limit = 2 holds at most 2 micro-batches" "peak_activations $most"; fi

# pplan searches zb-auto (and zb-1p, zb-2p only by name)
"$pplan" --no-db --top 50 --gpus 8 --global-batch 32 --schedules zb-h2,zb-auto scenarios/gpt13b.scn >"$tmp/pp.txt" 2>/dev/null
if grep -q " zb-auto " "$tmp/pp.txt" && ! "$pplan" --help 2>&1 | grep -q "zb-1p, "; then
    ok "pplan ranks zb-auto; zb-1p and zb-2p are not in its default list"
else nok "pplan ranks zb-auto" "$(head -n 5 "$tmp/pp.txt")"; fi

# zb-exact: the optimal order on a small pipeline is never longer than zb-auto's; too many
# micro-batches, or a search the bound cannot close within its node limit, is refused (exit 2)
sed '/activation_limit/d' "$tmp/al.scn" >"$tmp/ex.scn"
small="--set pipeline.stages=3 --set model.layers=6 --set batch.micro_batches=6 --set pipeline.activation_limit=3"
# shellcheck disable=SC2086
"$psim" --no-db --json --set pipeline.schedule=zb-exact $small "$tmp/ex.scn" >"$tmp/ex.json" 2>"$tmp/ex.err"
# shellcheck disable=SC2086
"$psim" --no-db --json --set pipeline.schedule=zb-auto $small "$tmp/ex.scn" >"$tmp/ea.json" 2>/dev/null
e=$(json_num iteration_ms "$tmp/ex.json") a=$(json_num iteration_ms "$tmp/ea.json")
if [ -n "$e" ] && awk -v e="$e" -v a="$a" 'BEGIN { exit !(e <= a) }'; then
    ok "zb-exact at p = 3, m = 6 is no longer than zb-auto ($e <= $a ms)"
else nok "zb-exact at p = 3, m = 6 is no longer than zb-auto" "zb-exact $e, zb-auto $a" "$(cat "$tmp/ex.err")"; fi
expect "zb-exact with 32 micro-batches: exit 2, pointing to zb-auto" 2 \
    "--set batch.micro_batches=32: zb-exact searches p <= 8 stages and m <= 16 .*use zb-auto" \
    "$psim" --no-db --set pipeline.schedule=zb-exact --set batch.micro_batches=32 "$tmp/ex.scn"
expect "zb-exact past its node limit: exit 2, not a claim of optimality" 2 \
    "zb-exact could not prove an order optimal within 20000000 branch-and-bound nodes at p = 4, m = 8" \
    "$psim" --no-db --set pipeline.schedule=zb-exact --set pipeline.activation_limit=4 "$tmp/ex.scn"
