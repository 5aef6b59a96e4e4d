# tests/cli_variability.sh: [variability] through psim (sourced by tests/cli_test.sh, whose
# helpers ok, nok, expect, json_num, near and sql and whose $psim and $tmp it uses).
# tiny-1f1b: p = 4, m = 8, F = 1 ms, B = 2 ms, one iteration (m+p-1)(F+B) = 33 ms.
tiny=scenarios/tiny-1f1b.scn
fail3="--set batch.iterations=3 --set variability.failure_device=2 --set variability.failure_at_ms=40 --set variability.restart_ms=5"

# --- a failure: lost = (40 - 33) + 5 = 12 ms on top of 3 x 33 ms -----------------------------
$psim --no-db --json $fail3 $tiny >"$tmp/vj" 2>&1
near "failure at 40 ms, restart 5: lost_ms = (40 - 33) + 5" "$(json_num lost_ms "$tmp/vj")" 12 0
near "failure: makespan = 3 x 33 + lost = 111 ms" "$(json_num makespan_ms "$tmp/vj")" 111 0
near "failure: iteration_ms leaves the lost time out (33 ms)" "$(json_num iteration_ms "$tmp/vj")" 33 0
near "failure: bubble rate stays (p-1)/(m+p-1)" "$(json_num bubble_rate "$tmp/vj")" "$(awk 'BEGIN{printf "%.17g", 3/11}')" 1e-15
near "failure: the lost iteration is iteration 1" "$(json_num failed_iteration "$tmp/vj")" 1 0
$psim --no-db $fail3 $tiny >"$tmp/vs" 2>&1
grep -Eq '^lost to failure +12\.000 ms  \(device 2 failed at 40\.000 ms in iteration 1; restart 5\.000 ms\)' "$tmp/vs" \
    && ok "the summary names the lost time and the failure" || nok "the summary names the lost time and the failure" "$(cat "$tmp/vs")"

db="$tmp/vary.db"
$psim --db "$db" --quiet $fail3 $tiny
got=$(sql "$db" "select value from metrics where run_id = 1 and name = 'lost_ms'")
[ "$got" = 12.0 ] && ok "the store holds lost_ms" || nok "the store holds lost_ms" "got '$got'"
sql "$db" "select resolved from runs where id = 1" >"$tmp/vresolved.scn"
$psim --no-db --json "$tmp/vresolved.scn" >"$tmp/vj2" 2>&1
near "the stored resolved scenario replays the failure" "$(json_num makespan_ms "$tmp/vj2")" 111 0

# --- a straggler: device 2 twice as slow is the bottleneck -----------------------------------
$psim --no-db --json --set variability.straggler_device=2 --set variability.straggler_slowdown=2 $tiny >"$tmp/vj" 2>&1
near "straggler x2 on device 2 is bottleneck_device" "$(json_num bottleneck_device "$tmp/vj")" 2 0
busy=$(sed -n 's/.*"busy_ms": \([0-9.]*\).*/\1/p' "$tmp/vj" | tr '\n' ' ')
[ "$busy" = "24 24 48 24 " ] && ok "straggler x2 doubles device 2's busy time exactly" || nok "straggler x2 doubles device 2's busy time exactly" "got '$busy'"
$psim --no-db --set variability.straggler_device=2 --set variability.straggler_slowdown=2 $tiny 2>&1 \
    | grep -Eq '^ +2 +2 +48\.000 .*<- busiest$' && ok "the summary marks the straggler busiest" || nok "the summary marks the straggler busiest"

# --- jitter: seeded, repeatable, off at cv = 0 -----------------------------------------------
jit="--set batch.iterations=4 --set variability.jitter=lognormal --set variability.jitter_cv=0.1"
$psim --no-db --json $jit --set variability.seed=7 $tiny >"$tmp/va" 2>&1
$psim --no-db --json $jit --set variability.seed=7 $tiny >"$tmp/vb" 2>&1
$psim --no-db --json $jit --set variability.seed=8 $tiny >"$tmp/vc" 2>&1
cmp -s "$tmp/va" "$tmp/vb" && ok "jitter: the same seed gives the same output" || nok "jitter: the same seed gives the same output"
a=$(json_num makespan_ms "$tmp/va") c=$(json_num makespan_ms "$tmp/vc")
[ -n "$a" ] && [ "$a" != "$c" ] && [ "$a" != 132 ] && ok "jitter: another seed gives another makespan ($a, $c ms)" \
    || nok "jitter: another seed gives another makespan" "$a vs $c"
awk -v lo="$(json_num iteration_min_ms "$tmp/va")" -v m="$(json_num iteration_ms "$tmp/va")" \
    -v hi="$(json_num iteration_max_ms "$tmp/va")" -v s="$(json_num iteration_std_ms "$tmp/va")" \
    'BEGIN { exit !(lo < m && m < hi && s > 0) }' && ok "jitter: iteration min < mean < max, std > 0" \
    || nok "jitter: iteration min < mean < max, std > 0"
$psim --no-db --json --set batch.iterations=4 $tiny >"$tmp/va" 2>&1
$psim --no-db --json --set batch.iterations=4 --set variability.jitter=normal --set variability.jitter_cv=0 $tiny >"$tmp/vb" 2>&1
cmp -s "$tmp/va" "$tmp/vb" && ok "jitter_cv = 0 is no jitter, byte for byte" || nok "jitter_cv = 0 is no jitter, byte for byte"
near "no jitter: iteration_std_ms = 0" "$(json_num iteration_std_ms "$tmp/va")" 0 0

# --- bad keys: FILE:LINE, exit 2, nothing stored ----------------------------------------------
cp $tiny "$tmp/vbad.scn"
printf '\n[variability]\njitter = normal\njitter_cv = 0.5\n' >>"$tmp/vbad.scn"
n=$(wc -l <"$tmp/vbad.scn")
expect "normal jitter wider than 0.3 is rejected with its line" 2 "vbad.scn:$n: jitter_cv = 0.5 is too wide for jitter = normal" \
    $psim --db "$tmp/vbad.db" "$tmp/vbad.scn"
[ ! -s "$tmp/vbad.db" ] || [ "$(sql "$tmp/vbad.db" "select count(*) from runs")" = 0 ] \
    && ok "a rejected [variability] stores nothing" || nok "a rejected [variability] stores nothing"
expect "straggler outside the pipeline is rejected" 2 "straggler_device = 9 but the pipeline has devices 0 \.\. 3" \
    $psim --no-db --set variability.straggler_device=9 $tiny
expect "a failure without its time is rejected" 2 "failure_device needs failure_at_ms" \
    $psim --no-db --set variability.failure_device=1 $tiny
expect "an unknown jitter is rejected" 2 "unknown jitter 'uniform'; use none, normal or lognormal" \
    $psim --no-db --set variability.jitter=uniform $tiny

# --- pexec runs for real: it says it plays no [variability] --------------------------------
expect "pexec warns that [variability] is psim's" 0 "warning: .*\[variability\] is simulated by psim only" \
    "$(dirname "$psim")/pexec" --no-db --set variability.straggler_device=1 $tiny
