#!/bin/sh
# tests/cli_modern.sh: the modern layer (GQA, SwiGLU, RMSNorm, flash attention) with tensor
# and sequence parallelism, run for real by pexec and placed by psim (sourced by
# tests/cli_test.sh, whose $psim, $tmp, ok, nok, expect and sql it uses): the collectives'
# rows on both sides, pcompare's error for each kind, the same weights on threads and MPI
# ranks, and what the CUDA backend refuses.
pexec="$(dirname "$psim")/pexec"
pcompare="$(dirname "$psim")/pcompare"
llama=scenarios/tiny-llama-cpu.scn

# --- p = 2, t = 2 with sequence parallelism, m = 2, one iteration: 2 layers a stage --------
# per layer and micro-batch F all-gathers twice and reduce-scatters twice, B the same, W
# gathers the two norms' outputs again: on a device 2 x 2 x (2 + 4) = 24 all-gathers and
# 2 x 2 x 4 = 16 reduce-scatters, no all-reduce; psim adds the embedding's on device 0
# (a reduce-scatter in F, an all-gather in W, per micro-batch), which pexec does not run
db="$tmp/modern.db"
set -- --set parallel.tensor=2 --set parallel.sequence=true --set batch.micro_batches=2 \
    --set batch.iterations=1
$psim --db "$db" --quiet "$@" $llama
$pexec --db "$db" --quiet "$@" $llama 2>"$tmp/err"
rows() { sql "$db" "select group_concat(stream || ':' || n, ' ') from (select stream, count(*) n
                    from ops where run_id = $1 and device = 0 and stream like 'tensor%'
                    group by stream order by stream)"; }
got="$(rows 2)"
[ "$got" = "tensor_allgather:24 tensor_reduce_scatter:16" ] \
    && ok "pexec t=2 sequence parallel: 24 all-gather and 16 reduce-scatter rows on device 0, no all-reduce" \
    || nok "pexec t=2 sequence parallel: 24 all-gather and 16 reduce-scatter rows on device 0, no all-reduce" "$got" "$(head -c 300 "$tmp/err")"
got="$(rows 1)"
[ "$got" = "tensor_allgather:26 tensor_reduce_scatter:18" ] \
    && ok "psim places the same collectives, and the embedding's" \
    || nok "psim places the same collectives, and the embedding's" "$got"
got=$(sql "$db" "select count(*) from ops t where run_id = 2 and stream like 'tensor%' and not exists
                 (select 1 from ops c where c.run_id = 2 and c.stream = 'compute' and c.device = t.device
                  and c.micro_batch = t.micro_batch and c.kind = t.kind and c.start_ns <= t.start_ns
                  and t.end_ns <= c.end_ns)")
[ "$got" = 0 ] && ok "every collective row lies inside its op's compute row" || nok "every collective row lies inside its op's compute row" "$got"
got=$(sql "$db" "select group_concat(distinct bytes) from ops where run_id = 2 and stream like 'tensor_%'")
[ "$got" = 65536 ] && ok "each collective moves the whole sequence's fp32 buffer: b s h x 4 bytes" \
    || nok "each collective moves the whole sequence's fp32 buffer: b s h x 4 bytes" "$got"
got=$(sql "$db" "select group_concat(distinct bytes) from ops where run_id = 2 and stream = 'send'")
[ "$got" = 32768 ] && ok "a stage boundary sends the rank's s/t tokens (half the activation)" \
    || nok "a stage boundary sends the rank's s/t tokens (half the activation)" "$got"
$pcompare --db "$db" 1 2 >"$tmp/cmp" 2>&1
grep -Eq '^tensor allgather \(mean\) +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ %$' "$tmp/cmp" \
    && grep -Eq '^tensor reduce-scatter \(mean\) +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ %$' "$tmp/cmp" \
    && ok "pcompare gives the all-gathers' and the reduce-scatters' errors" \
    || nok "pcompare gives the all-gathers' and the reduce-scatters' errors" "$(head -c 800 "$tmp/cmp")"

# --- the CUDA backend runs GPT's layer only: refused before any GPU is looked for ----------
expect "pexec --backend cuda refuses the modern layer (exit 2)" 2 \
    "the CUDA backend runs GPT's layer only" $pexec --no-db --backend cuda $llama

# --- MPI ranks: the same weights after two SGD steps as threads ----------------------------
if command -v mpirun >/dev/null 2>&1; then
    mpi="env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -np"
    same() { paste -d ' ' "$1" "$2" | awk '{ d = $6 - $12; if (d < 0) d = -d; a = $6 < 0 ? -$6 : $6
             if ($1 $2 $3 $4 $5 != $7 $8 $9 $10 $11 || d > 1e-6 * (1 + a)) bad++; n++ }
             END { exit !(n > 0 && !bad) }'; }
    set -- --set parallel.tensor=2 --set parallel.sequence=true --set batch.micro_batches=2 \
        --set batch.iterations=2 --set costs.optimizer_ms=0.1 --set model.hidden=32 \
        --set model.ffn_hidden=64 --set model.seq_len=16
    PEXEC_GRADS_OUT="$tmp/th" $pexec --no-db --quiet "$@" $llama
    PEXEC_GRADS_OUT="$tmp/mp" $mpi 4 $pexec --no-db --quiet "$@" $llama >"$tmp/out" 2>&1
    fine=1
    for w in 0 1 2 3; do same "$tmp/th.$w" "$tmp/mp.$w" || fine=0; done
    [ $fine = 1 ] && ok "mpirun -np 4 GQA/SwiGLU/RMSNorm/flash t=2 sequence parallel: weights equal the threads' (1e-6)" \
        || nok "mpirun -np 4 GQA/SwiGLU/RMSNorm/flash t=2 sequence parallel: weights equal the threads'" "$(head -c 300 "$tmp/out")"
    # each tensor rank's norm gradients cover its tokens only; summed before the step, the two
    # ranks' norms stay one: identical gamma on both after two steps
    got=$(for w in 0 1; do awk '$1 == "w" && ($4 == 4 || $4 == 5)' "$tmp/th.$w" | md5sum; done | sort -u | wc -l)
    n=$(awk '$1 == "w" && ($4 == 4 || $4 == 5)' "$tmp/th.0" | wc -l)
    [ "$got" = 1 ] && [ "$n" -gt 0 ] && ok "sequence parallel: both tensor ranks' norms are the same after the steps ($n values)" \
        || nok "sequence parallel: both tensor ranks' norms are the same after the steps" "$got distinct, $n values"
    rm -f "$tmp"/th.* "$tmp"/mp.*
else
    echo "# MPI modern-layer tests skipped: no mpirun (install openmpi-bin)"
fi

# --- context parallelism: priced by psim and pplan, refused where it cannot be -------------
expect "context must split seq_len into 2c even chunks (exit 2)" 2 \
    "parallel.context=3: context = 3 splits each sample into 2 x 3 chunks" \
    $psim --no-db --set parallel.context=3 $llama
expect "context is the roofline's, not the flat model's (exit 2)" 2 \
    "is priced by the roofline's kernels" \
    $psim --no-db --set parallel.context=2 --set hardware.cost_model=flat --set hardware.efficiency=0.5 $llama
expect "pexec refuses context parallelism (exit 2)" 2 \
    "parallel.context = 2: psim prices context parallelism" $pexec --no-db --set parallel.context=2 $llama
expect "pplan --context names a width that does not split seq_len (exit 2)" 2 \
    "--context 5: give distinct widths c" \
    "$(dirname "$psim")/pplan" --no-db --gpus 8 --global-batch 8 --context 5 $llama
$psim --no-db --json --set parallel.context=2 $llama >"$tmp/c2.json" 2>&1
$psim --no-db --json $llama >"$tmp/c1.json" 2>&1
got=$(awk -v a="$(json_num devices_total "$tmp/c2.json")" -v b="$(json_num devices_total "$tmp/c1.json")" \
      'BEGIN { print (a == 2 * b) ? "yes" : "no" }')
[ "$got" = yes ] && ok "context = 2 doubles the GPUs (p d t c)" || nok "context = 2 doubles the GPUs (p d t c)" "$got"
