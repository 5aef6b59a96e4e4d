# tests/cli_search.sh: pplan as a user runs it; sourced by tests/cli_test.sh (ok, nok, expect,
# near, sql, $tmp and $psim come from there). Bad options and scenarios exit 2 and write no
# database; a search's table is sorted, its counts add up and match the store, and the
# printed psim command reproduces the winner's numbers.
pplan=$(dirname "$psim")/pplan
scn=scenarios/gpt13b.scn
bad="$tmp/search-bad.db"

expect "pplan without --gpus" 2 "give the cluster size, --gpus N" $pplan --db "$bad" --global-batch 64 $scn
expect "pplan --gpus 0" 2 "--gpus 0: give a whole number from 1" $pplan --db "$bad" --gpus 0 --global-batch 64 $scn
expect "pplan --gpus 8x" 2 "--gpus 8x: give a whole number" $pplan --db "$bad" --gpus 8x --global-batch 64 $scn
expect "pplan --top 0" 2 "--top 0: give a whole number" $pplan --db "$bad" --gpus 8 --global-batch 64 --top 0 $scn
expect "pplan unknown option" 2 "--frobnicate: unknown option" $pplan --db "$bad" --frobnicate --gpus 8 --global-batch 64 $scn
expect "pplan without a scenario" 2 "give one scenario file" $pplan --db "$bad" --gpus 8 --global-batch 64
expect "pplan --set of a key it chooses" 2 "the search chooses pipeline.stages" \
    $pplan --db "$bad" --gpus 8 --global-batch 64 --set pipeline.stages=4 $scn
expect "pplan --schedules pipedream" 2 "pipedream is left out of searches: it is asynchronous" \
    $pplan --db "$bad" --gpus 8 --global-batch 64 --schedules 1f1b,pipedream $scn
expect "pplan bad scenario key names file and line" 2 "tiny-1f1b.scn:[0-9]+: unknown key 'stagez'" \
    sh -c "sed 's/^stages = 4/stagez = 4/' scenarios/tiny-1f1b.scn > $tmp/tiny-1f1b.scn && $pplan --db $bad --gpus 4 --global-batch 8 $tmp/tiny-1f1b.scn"
expect "pplan with no configuration at all" 2 "no configuration of 1024 GPUs runs a global batch of 3" \
    $pplan --db "$bad" --gpus 1024 --global-batch 3 $scn
expect "pplan refuses per-stage cost lists" 2 "pplan varies the stages" \
    $pplan --db "$bad" --gpus 8 --global-batch 64 --set costs.stage_forward_ms=1,1,1,1,1,1,1,1 \
    --set costs.stage_backward_ms=2,2,2,2,2,2,2,2 $scn
$psim --no-db --dump-schedule scenarios/tiny-1f1b.scn >"$tmp/p.sched" 2>/dev/null
sed 's/schedule = 1f1b/schedule = custom\nschedule_file = p.sched/' scenarios/tiny-1f1b.scn >"$tmp/custom.scn"
expect "pplan refuses a schedule file" 2 "custom.scn: schedule_file fixes one schedule's order" \
    $pplan --db "$bad" --gpus 4 --global-batch 8 "$tmp/custom.scn"
[ ! -e "$bad" ] && ok "bad pplan input writes no database" || nok "bad pplan input writes no database"

# --- a search: sorted, counted, stored, reproducible ---------------------------------------
db="$tmp/search.db"
$pplan --db "$db" --gpus 16 --global-batch 64 --top 5 $scn >"$tmp/s1" 2>"$tmp/e1"
rc=$?
[ $rc = 0 ] && ok "pplan gpt13b on 16 GPUs exits 0" || nok "pplan gpt13b on 16 GPUs exits 0" "exit $rc" "$(head -c 300 "$tmp/e1")"
rows=$(grep -c '^ *[0-9]' "$tmp/s1")
[ "$rows" = 5 ] && ok "pplan --top 5 prints 5 rows" || nok "pplan --top 5 prints 5 rows" "got $rows"
sorted=$(grep '^ *[0-9]' "$tmp/s1" | awk 'NR > 1 && $2 > prev { bad = 1 } { prev = $2 } END { print bad ? "no" : "yes" }')
[ "$sorted" = yes ] && ok "pplan table sorted by tokens/s" || nok "pplan table sorted by tokens/s"
counts=$(sed -n 's/^# \([0-9]*\) configurations: \([0-9]*\) fit; \([0-9]*\) dropped before.* \([0-9]*\) after .*, \([0-9]*\) invalid$/\1 \2 \3 \4 \5/p' "$tmp/s1")
set -- $counts
[ $# = 5 ] && [ "$1" = $(($2 + $3 + $4 + $5)) ] && ok "pplan counts add up ($1 = $2 fit + $3 + $4 dropped + $5 invalid)" \
    || nok "pplan counts add up" "$counts"
stored=$(sql "$db" "select points || ' ' || fit || ' ' || dropped_static || ' ' || dropped_memory || ' ' || invalid from searches")
[ "$stored" = "$counts" ] && ok "pplan stores the counts it prints" || nok "pplan stores the counts it prints" "$stored vs $counts"
[ "$(sql "$db" "select count(*) from search_points")" = "$1" ] && ok "pplan stores every point" || nok "pplan stores every point"
[ "$(sql "$db" "select count(*) from search_points where status = 'ok' and rank between 1 and $2")" = "$2" ] \
    && ok "pplan ranks every point that fits" || nok "pplan ranks every point that fits"
[ "$(sql "$db" "select count(*) from search_points where status = 'memory' and peak_memory_gib <= 80")" = 0 ] \
    && [ "$(sql "$db" "select count(*) from search_points where status = 'static' and static_gib <= 80")" = 0 ] \
    && [ "$(sql "$db" "select count(*) from search_points where status = 'ok' and peak_memory_gib > 80")" = 0 ] \
    && ok "stored drops exceed 80 GiB, stored fits do not" || nok "stored drops exceed 80 GiB, stored fits do not"
[ "$(sql "$db" "select count(*) from runs")" = 0 ] && ok "a search stores no runs" || nok "a search stores no runs"
best=$(sql "$db" "select printf('%.3f', makespan_ms) from search_points where rank = 1")
table=$(grep '^ *1 ' "$tmp/s1" | awk '{ print $8 }')
[ -n "$best" ] && [ "$best" = "$table" ] && ok "stored winner is the table's first row ($best ms)" || nok "stored winner is the table's first row" "$best vs $table"
cmd=$(grep '^psim ' "$tmp/s1" | sed "s#^psim#$psim --no-db --json#")
eval "$cmd" >"$tmp/w.json" 2>/dev/null
got=$(printf '%.3f' "$(json_num makespan_ms "$tmp/w.json")")
[ "$got" = "$table" ] && ok "the printed psim command gives the winner's iteration ($got ms)" || nok "the printed psim command gives the winner's iteration" "$got vs $table"
d=$(grep '^ *1 ' "$tmp/s1" | awk '{ print $12 }')
tok=$(grep '^ *1 ' "$tmp/s1" | awk '{ print $2 }')
near "winner's tokens/s = d x psim's one-replica tokens/s (psim before data parallelism) or psim's" \
    "$(awk -v t="$(json_num throughput_tokens_per_s "$tmp/w.json")" -v d="$d" -v w="$tok" \
        'BEGIN { x = t * d; if ((t - w) ^ 2 < (x - w) ^ 2) x = t; printf "%.0f", x }')" "$tok" 1
grep -q '^#   #2 differs in ' "$tmp/s1" && grep -q '^# why: ' "$tmp/s1" && ok "pplan explains the winner against the runners-up" \
    || nok "pplan explains the winner against the runners-up"
# the winner's compute by kernel class: its parts add up to the compute, and each is the mean
# over devices of what psim --json says of the winner (gemm_ms, attention_ms, ... per device)
why=$(grep '^#   its iteration:' "$tmp/s1" | sed -n 's/.*= compute \([0-9.]*\) \[\([^]]*\)\].*/\1 \2/p')
sum=$(echo "$why" | awk '{ c = $1; $1 = ""; n = split($0, parts, ","); s = 0
    for (i = 1; i <= n; i++) { split(parts[i], kv, " "); s += kv[2] } printf "%.1f", s - c }')
near "the winner's compute by class adds up to its compute" "$sum" 0 0.3
for cls in gemm attention memory launch; do
    printed=$(echo "$why" | sed -n "s/.*$cls \([0-9.]*\).*/\1/p")
    mean=$(tr ',' '\n' <"$tmp/w.json" | sed -n "s/.*\"${cls}_ms\": \([-0-9.e+]*\).*/\1/p" \
        | awk '{ s += $1; n++ } END { if (n) printf "%.1f", s / n }')
    near "the why's $cls is psim's mean ${cls}_ms of the winner" "${printed:-none}" "${mean:-0}" 0.051
done
grep '^#   #2 differs in ' "$tmp/s1" | grep -Eq 'largest change: (bubble|other|gemm|attention|memory|tp_comm|launch) [-+]' \
    && ok "the runner-up's line names the largest change" || nok "the runner-up's line names the largest change" "$(grep '^#   #2' "$tmp/s1")"

# --- same input, same output; nothing fits --------------------------------------------------
$pplan --no-db --jobs 1 --gpus 16 --global-batch 64 --top 5 $scn >"$tmp/s2" 2>/dev/null
cmp -s "$tmp/s1" "$tmp/s2" && ok "pplan output identical with 1 worker and with every core" \
    || nok "pplan output identical with 1 worker and with every core"
expect "pplan exits 3 when nothing fits" 3 "" $pplan --db "$db" --gpus 16 --global-batch 64 --set hardware.memory_gib=1 $scn
grep -q "^# nothing fits in 1 GiB" "$tmp/out" && ok "pplan says nothing fits" || nok "pplan says nothing fits" "$(head -c 300 "$tmp/out")"
[ "$(sql "$db" "select fit || ' ' || (points = dropped_static + dropped_memory) from searches where id = 2")" = "0 1" ] \
    && ok "a search where nothing fits is stored with every point dropped" || nok "a search where nothing fits is stored"
expect "pplan warns that fixed [costs] times do not scale with p and b" 0 "warning: .*forward_ms and backward_ms price a whole device" \
    $pplan --no-db --gpus 4 --global-batch 8 scenarios/tiny-1f1b.scn

# --- a scenario with [variability]: the points are psim's runs, straggler included ----------
$pplan --no-db --gpus 8 --global-batch 32 --top 1 --schedules 1f1b --set variability.straggler_device=1 \
    --set variability.straggler_slowdown=2 $scn >"$tmp/sv" 2>/dev/null
table=$(grep '^ *1 ' "$tmp/sv" | awk '{ print $8 }')
cmd=$(grep '^psim ' "$tmp/sv" | sed "s#^psim#$psim --no-db --json --set variability.straggler_device=1 --set variability.straggler_slowdown=2#")
eval "$cmd" >"$tmp/sv.json" 2>/dev/null
got=$(printf '%.3f' "$(json_num makespan_ms "$tmp/sv.json")")
[ -n "$table" ] && [ "$got" = "$table" ] && ok "pplan plays the scenario's straggler as psim does ($got ms)" \
    || nok "pplan plays the scenario's straggler as psim does" "$got vs $table"

# --- ZeRO as a searched dimension: 8 layers on 16 one-GPU nodes force d >= 2; in 8 GiB no
# zero = 0 point fits (its weights, gradients and Adam state alone are over), zero >= 1 does
zset="--gpus 16 --global-batch 16 --schedules 1f1b --set model.layers=8 --set hardware.gpus_per_node=1 --set hardware.memory_gib=8"
expect "pplan --zero 0: a memory-bound model does not fit without ZeRO" 3 "" $pplan --no-db --zero 0 $zset $scn
grep -q '^# nothing fits in 8 GiB' "$tmp/out" && ok "pplan --zero 0 says nothing fits in 8 GiB" || nok "pplan --zero 0 says nothing fits in 8 GiB" "$(head -c 300 "$tmp/out")"
zdb="$tmp/zero.db"
$pplan --db "$zdb" --top 3 $zset $scn >"$tmp/z" 2>/dev/null
rc=$?
zero=$(grep '^ *1 ' "$tmp/z" | awk '{ print $18 }')
[ $rc = 0 ] && [ "${zero:-0}" -ge 1 ] && grep -q '^#   the same with zero 0: its weights, gradients and optimizer state alone need' "$tmp/z" \
    && ok "pplan solves it with zero = $zero and says why zero = 0 does not fit" \
    || nok "pplan solves the memory-bound model with zero >= 1" "exit $rc, zero '$zero'" "$(head -c 600 "$tmp/z")"
[ "$(sql "$zdb" "select count(*) from search_points where zero = 0 and status = 'ok'") $(sql "$zdb" "select count(distinct zero) from search_points")" = "0 3" ] \
    && ok "pplan stores each point's zero level (0, 1 and 3; no zero = 0 point fits)" \
    || nok "pplan stores each point's zero level" "$(sql "$zdb" "select zero, status, count(*) from search_points group by 1, 2")"
table=$(grep '^ *1 ' "$tmp/z" | awk '{ print $8 }')
cmd=$(grep '^psim ' "$tmp/z" | sed "s#^psim#$psim --no-db --json#")
echo "$cmd" | grep -q -- "--set parallel.zero=$zero " && eval "$cmd" >"$tmp/zw.json" 2>/dev/null
got=$(printf '%.3f' "$(json_num makespan_ms "$tmp/zw.json")")
[ "$got" = "$table" ] && [ "$(json_num zero "$tmp/zw.json")" = "$zero" ] \
    && ok "the winner's psim command sets parallel.zero=$zero and gives its iteration ($got ms)" \
    || nok "the winner's psim command sets parallel.zero and gives its iteration" "$got vs $table"
expect "pplan --zero 4 is refused" 2 "--zero 4: give distinct levels from 0 to 3" $pplan --no-db --zero 4 $zset $scn
expect "pplan --set parallel.zero is refused (the search chooses it)" 2 "the search chooses parallel.zero" \
    $pplan --no-db --set parallel.zero=1 $zset $scn

# --- pplan --json: the same ranking, machine-readable, its sets reproducing each point ------
pplan_bin="$(dirname "$psim")/pplan"
$pplan_bin --no-db --top 3 --gpus 8 --global-batch 16 scenarios/tiny-cpu.scn >"$tmp/pt.txt" 2>/dev/null
$pplan_bin --no-db --json --top 3 --gpus 8 --global-batch 16 scenarios/tiny-cpu.scn >"$tmp/pj.json" 2>/dev/null
want=$(grep '^ *1 ' "$tmp/pt.txt" | awk '{ print $2 }')
got=$(sed -n 's/^ *"tokens_per_s": \([0-9.e+]*\),*$/\1/p' "$tmp/pj.json" | head -n 1 | awk '{ printf "%.0f", $1 }')
[ -n "$want" ] && [ "$want" = "$got" ] && [ "$(grep -c '"rank":' "$tmp/pj.json")" = 3 ] \
    && ok "pplan --json ranks as the table does (the best's tokens/s $got, 3 points)" \
    || nok "pplan --json ranks as the table does" "table $want, json $got"
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["configurations"] == d["fit"] + d["dropped_static"] + d["dropped_memory"] + d["invalid"]' "$tmp/pj.json" \
        && ok "pplan --json is valid JSON and its counts add up" || nok "pplan --json is valid JSON and its counts add up"
fi
# the winner's sets, given to psim, give its iteration time
set --
for a in $(sed -n '/"sets": \[/,/\]/p' "$tmp/pj.json" | head -n 20 | sed -n 's/^ *"\([a-z_.]*=[^"]*\)",*$/\1/p' | head -n 13); do set -- "$@" --set "$a"; done
it=$($psim --no-db --json "$@" scenarios/tiny-cpu.scn 2>/dev/null | sed -n 's/.*"iteration_ms": \([0-9.e+]*\).*/\1/p')
jt=$(sed -n 's/^ *"iteration_ms": \([0-9.e+]*\),*$/\1/p' "$tmp/pj.json" | head -n 1)
awk -v a="$it" -v b="$jt" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1e-9 * b) }' \
    && ok "psim with the JSON winner's sets gives its iteration_ms ($jt)" || nok "psim with the JSON winner's sets gives its iteration_ms" "$it vs $jt ($*)"
$pplan_bin --no-db --json --gpus 8 --global-batch 16 --set hardware.memory_gib=0.001 scenarios/tiny-cpu.scn >"$tmp/pj0.json" 2>/dev/null
st=$?
[ "$st" = 3 ] && grep -q '"best": \[\]' "$tmp/pj0.json" && ok "pplan --json when nothing fits: an empty best and exit 3" \
    || nok "pplan --json when nothing fits: an empty best and exit 3" "exit $st" "$(head -c 300 "$tmp/pj0.json")"
