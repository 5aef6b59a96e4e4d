# tests/cli_hf.sh: sourced by cli_test.sh (its psim, tmp, ok, nok, sql): psim --hf and
# [model] hf_config as a user runs them: the flag and the key give the same run, the stored
# resolved scenario stands without the JSON, and bad configs exit 2 with nothing stored.
hf="$tmp/hf"
mkdir -p "$hf"
pplan=$(dirname "$psim")/pplan
hfdb="$hf/runs.db"
# The shipped scenario without its hf_config line, under the same name (the run's name).
sed '/^hf_config/d' scenarios/llama3-8b.scn >"$hf/llama3-8b.scn"

$psim --no-db --json scenarios/llama3-8b.scn >"$hf/key.json" 2>"$hf/key.err"
$psim --no-db --json --hf scenarios/llama3-8b.json "$hf/llama3-8b.scn" >"$hf/flag.json" 2>"$hf/flag.err"
if [ -s "$hf/key.json" ] && cmp -s "$hf/key.json" "$hf/flag.json"; then ok "psim --hf gives the run of [model] hf_config"
else nok "psim --hf gives the run of [model] hf_config" "$(head -c 300 "$hf/key.err" "$hf/flag.err")"; fi
# Without the config the stripped scenario lacks the model's shape.
$psim --no-db "$hf/llama3-8b.scn" >/dev/null 2>"$hf/err"
[ $? -eq 2 ] && grep -q "missing key 'layers'" "$hf/err" && ok "without --hf the stripped scenario lacks layers" \
    || nok "without --hf the stripped scenario lacks layers" "$(head -c 300 "$hf/err")"

# The stored resolved text has the config's values, names the config in a comment, and
# reads back through psim without the JSON.
$psim --db "$hfdb" --quiet --hf scenarios/llama3-8b.json "$hf/llama3-8b.scn"
sql "$hfdb" 'select resolved from runs' >"$hf/resolved.scn"
if grep -q '^kv_heads = 8$' "$hf/resolved.scn" && grep -q '^ffn_hidden = 14336$' "$hf/resolved.scn" &&
   grep -q '^; hf_config = .*/scenarios/llama3-8b.json (read' "$hf/resolved.scn" &&
   [ "$(sql "$hfdb" 'select overrides from runs')" = "model.hf_config=scenarios/llama3-8b.json" ]
then ok "the stored run has the config's values and the --hf override"
else nok "the stored run has the config's values and the --hf override" "$(head -c 400 "$hf/resolved.scn")"; fi
cp "$hf/resolved.scn" "$hf/llama3-8b.scn"
$psim --no-db --json "$hf/llama3-8b.scn" >"$hf/again.json" 2>&1
cmp -s "$hf/key.json" "$hf/again.json" && ok "the resolved scenario runs the same without the JSON" \
    || nok "the resolved scenario runs the same without the JSON" "$(head -c 300 "$hf/again.json")"

# A scenario key wins over the config's; --set wins over both.
$psim --no-db --json --set model.kv_heads=4 scenarios/llama3-8b.scn >"$hf/kv4.json" 2>&1
cmp -s "$hf/key.json" "$hf/kv4.json" && nok "--set model.kv_heads=4 changes the run" || ok "--set model.kv_heads=4 changes the run"

# Bad configs: exit 2, the file and the field named, the database untouched (one run).
# hf_reject NAME PATTERN CMD...
hf_reject() {
    name=$1 pat=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    runs=$(sql "$hfdb" 'select count(*) from runs')
    if [ "$got" -eq 2 ] && grep -Eq -- "$pat" "$tmp/err" && [ "$runs" = 1 ]; then ok "bad config: $name"
    else nok "bad config: $name" "exit $got (want 2), $runs runs (want 1)" "stderr: $(head -c 400 "$tmp/err")" "pattern: $pat"; fi
}
sed 's/"use_cache": true,/"use_cache": true, "foo": 1,/' scenarios/llama3-8b.json >"$hf/unknown.json"
hf_reject "an unknown field" "unknown.json: unknown field 'foo'; pipesim reads" \
    $psim --db "$hfdb" --hf "$hf/unknown.json" "$hf/llama3-8b.scn"
sed 's/"num_hidden_layers": 32/"num_hidden_layers": "32"/' scenarios/llama3-8b.json >"$hf/type.json"
hf_reject "a field of the wrong type" "type.json: field 'num_hidden_layers' is a string; it must be a whole number" \
    $psim --db "$hfdb" --hf "$hf/type.json" "$hf/llama3-8b.scn"
sed 's/"model_type": "llama",/"model_type": "llama", "num_local_experts": 8,/' scenarios/llama3-8b.json >"$hf/moe.json"
hf_reject "a mixture of experts outside the MoE families" "moe.json: num_local_experts = 8 makes this a mixture of experts, which pipesim reads from mixtral, qwen2_moe and deepseek_v3 configs only" \
    $psim --db "$hfdb" --hf "$hf/moe.json" "$hf/llama3-8b.scn"
sed 's/"hidden_size": 4096,/"hidden_size" 4096,/' scenarios/llama3-8b.json >"$hf/broken.json"
hf_reject "malformed JSON, with line and column" "broken.json:10:[0-9]+: ':' expected" \
    $psim --db "$hfdb" --hf "$hf/broken.json" "$hf/llama3-8b.scn"
hf_reject "a missing config" "--set model.hf_config=$hf/none.json: cannot read '$hf/none.json'" \
    $psim --db "$hfdb" --hf "$hf/none.json" "$hf/llama3-8b.scn"
hf_reject "--hf twice" "--hf is given twice" \
    $psim --db "$hfdb" --hf scenarios/llama3-8b.json --hf scenarios/llama3-70b.json "$hf/llama3-8b.scn"
hf_reject "pplan --hf with a bad config" "type.json: field 'num_hidden_layers'" \
    $pplan --db "$hfdb" --gpus 8 --global-batch 8 --hf "$hf/type.json" "$hf/llama3-8b.scn"
searches=$(sql "$hfdb" 'select count(*) from searches' 2>/dev/null)
[ "${searches:-0}" = 0 ] && ok "pplan stored no search for a bad config" || nok "pplan stored no search for a bad config" "$searches"

# pplan --hf searches the config's model, and its winner's psim command carries the config.
$pplan --no-db --top 1 --gpus 8 --global-batch 8 --hf scenarios/llama3-8b.json "$hf/llama3-8b.scn" >"$hf/plan" 2>"$hf/plan.err"
[ $? -eq 0 ] && grep -q '^psim --set model.hf_config=scenarios/llama3-8b.json ' "$hf/plan" \
    && ok "pplan --hf searches the config's model" || nok "pplan --hf searches the config's model" "$(head -c 300 "$hf/plan.err")"

# pexec --scale divides kv_heads with the heads, so a GQA config's model still loads.
pexec=$(dirname "$psim")/pexec
$pexec --dump-schedule --scale 16 scenarios/llama3-8b.scn >"$hf/sched" 2>"$hf/sched.err"
[ $? -eq 0 ] && [ "$(grep -c '^[0-9]' "$hf/sched")" = 8 ] && ok "pexec --scale 16 loads llama3-8b (kv_heads 8 -> 1)" \
    || nok "pexec --scale 16 loads llama3-8b (kv_heads 8 -> 1)" "$(head -c 300 "$hf/sched.err")"
