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
expect "pexec --backend cuda refuses context parallelism (exit 2, before looking for a GPU)" 2 \
    "parallel.context = 2: the CUDA backend does not run context parallelism" \
    $pexec --no-db --backend cuda --set parallel.context=2 $llama
cp $llama "$tmp/cp3.scn" && printf '\n[parallel]\ncontext = 3\n' >>"$tmp/cp3.scn"
expect "pexec: 2c must divide seq_len, named at its line (exit 2)" 2 \
    "cp3.scn:33: context = 3 splits each sample into 2 x 3 chunks" $pexec --no-db "$tmp/cp3.scn"
expect "pexec: 2c must divide the seq_len --scale leaves (exit 2)" 2 \
    "seq_len = 4 is not a multiple of 8" $pexec --no-db --scale 32 --set parallel.context=4 $llama
expect "pplan --context names a width that does not split seq_len (exit 2)" 2 \
    "--context 5: give distinct widths c" \
    "$(dirname "$psim")/pplan" --no-db --gpus 8 --global-batch 8 --context 5 $llama
$psim --no-db --json --set parallel.context=2 $llama >"$tmp/c2.json" 2>&1
$psim --no-db --json $llama >"$tmp/c1.json" 2>&1
got=$(awk -v a="$(json_num devices_total "$tmp/c2.json")" -v b="$(json_num devices_total "$tmp/c1.json")" \
      'BEGIN { print (a == 2 * b) ? "yes" : "no" }')
[ "$got" = yes ] && ok "context = 2 doubles the GPUs (p d t c)" || nok "context = 2 doubles the GPUs (p d t c)" "$got"

# --- context parallelism run for real: c = 2 ranks each take two zigzag chunks of every
# sample, all-gather K and V in F and reduce-scatter their gradients in B, and sum the weight
# gradients over the d x c workers. The rows are psim's: per device the same compute,
# transfer, all-reduce and optimizer rows (the K/V exchange has none on either side: psim
# prices it inside the op, pexec measures it there), and with t = 2 the tensor rows of c = 1
db="$tmp/cp.db"
small="--set batch.micro_batches=2 --set batch.iterations=2 --set model.hidden=32 --set model.ffn_hidden=64 --set model.seq_len=16"
for set in "--set parallel.context=2" "--set parallel.context=2 --set parallel.tensor=2 --set parallel.sequence=true" \
           "--set parallel.tensor=2 --set parallel.sequence=true" "--set parallel.context=2 --set parallel.zero=1"; do
    $psim --db "$db" --quiet $small $set $llama
    $pexec --db "$db" --quiet $small $set $llama 2>>"$tmp/err"
done
rows() { sql "$db" "select group_concat(device || ':' || stream || ':' || n, ' ') from (select device, stream, count(*) n
                    from ops where run_id = $1 and stream $2 group by 1, 2 order by 1, 2)"; }
got="$(rows 2 "not like 'tensor%'")"
[ -n "$got" ] && [ "$got" = "$(rows 1 "not like 'tensor%'")" ] && [ -z "$(rows 2 "like 'tensor%'")" ] \
    && ok "pexec c=2: per device psim's compute, send, recv, allreduce and optimizer rows, no collective rows of the K/V exchange" \
    || nok "pexec c=2: per device psim's rows" "$got" "$(rows 1 "not like 'tensor%'")" "$(head -c 300 "$tmp/err")"
got="$(rows 4 "like 'tensor%'")"
[ -n "$got" ] && [ "$got" = "$(rows 6 "like 'tensor%'")" ] && [ "$(rows 3 "like 'tensor%'")" = "$(rows 5 "like 'tensor%'")" ] \
    && [ "$(rows 4 "not like 'tensor%'")" = "$(rows 3 "not like 'tensor%'")" ] \
    && ok "pexec and psim c=2 t=2: the tensor rows of c=1 on each side, the other rows psim's" \
    || nok "pexec and psim c=2 t=2: the tensor rows of c=1 on each side" "$got" "$(rows 6 "like 'tensor%'")"
got="$(rows 8 "not like 'tensor%'")"
[ "$got" = "$(rows 7 "not like 'tensor%'")" ] && echo "$got" | grep -q '0:reduce_scatter:2' \
    && ok "pexec c=2 zero=1 (d=1): psim's reduce_scatter and all_gather rows, sharded over the context ranks" \
    || nok "pexec c=2 zero=1 (d=1): psim's reduce_scatter and all_gather rows" "$got" "$(rows 7 "not like 'tensor%'")"
got=$(sql "$db" "select group_concat(distinct bytes) from ops where run_id = 2 and stream = 'send'")
[ "$got" = 1024 ] && ok "a stage boundary sends the context rank's s/c tokens: b s/c h x 4 = 1 x 8 x 32 x 4 bytes" \
    || nok "a stage boundary sends the context rank's s/c tokens" "$got"
$pcompare --db "$db" 1 2 >"$tmp/cmp" 2>&1
grep -Eq '^allreduce \(mean\) +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ %$' "$tmp/cmp" && ! grep -q 'only the' "$tmp/cmp" \
    && ok "pcompare pairs every c=2 row kind, the gradient all-reduce over the context ranks included" \
    || nok "pcompare pairs every c=2 row kind" "$(head -c 800 "$tmp/cmp")"

# the weights after two SGD steps: c = 2 equal c = 1 (1e-6 (1 + |w|); measured 3e-8: fp32 sums
# in another order), flash and standard attention (with its dropouts, masks drawn by
# position), each context rank of a device the same
close() { paste -d ' ' "$1" "$2" | awk '$1 == "w" { d = $6 - $12; if (d < 0) d = -d; a = $6 < 0 ? -$6 : $6
          if ($1 $2 $3 $4 $5 != $7 $8 $9 $10 $11 || d > 1e-6 * (1 + a)) bad++; n++ }
          END { exit !(n > 1000 && !bad) }'; }
set -- $small --set costs.optimizer_ms=0.1
for attn in "flash" "standard --set model.dropout=0.1"; do
    PEXEC_GRADS_OUT="$tmp/c1" $pexec --no-db --quiet "$@" --set model.attention=$attn $llama
    PEXEC_GRADS_OUT="$tmp/c2" $pexec --no-db --quiet "$@" --set model.attention=$attn --set parallel.context=2 $llama
    fine=1
    for w in 0 1 2 3; do close "$tmp/c1.$((w / 2))" "$tmp/c2.$w" || fine=0; done
    [ $fine = 1 ] && ok "pexec c=2 (${attn%% *} attention): every worker's weights after two steps equal c=1's (1e-6)" \
        || nok "pexec c=2 (${attn%% *} attention): every worker's weights equal c=1's" "$(head -n 2 "$tmp/c2.0")"
done
PEXEC_GRADS_OUT="$tmp/c2" $pexec --no-db --quiet "$@" --set parallel.context=2 $llama
PEXEC_GRADS_OUT="$tmp/z1" $pexec --no-db --quiet "$@" --set parallel.context=2 --set parallel.zero=1 $llama
fine=1
for w in 0 1 2 3; do
    [ "$(grep '^w' "$tmp/c2.$w" | md5sum)" = "$(grep '^w' "$tmp/z1.$w" | md5sum)" ] || fine=0
done
[ $fine = 1 ] && ok "pexec c=2 zero=1 (d=1): the weights of zero=0, to the bit (the shards are the all-reduce's sums)" \
    || nok "pexec c=2 zero=1 (d=1): the weights of zero=0" "$(diff "$tmp/c2.0" "$tmp/z1.0" | head -n 2)"
if command -v mpirun >/dev/null 2>&1; then
    PEXEC_GRADS_OUT="$tmp/mp" $mpi 4 $pexec --no-db --quiet "$@" --set parallel.context=2 $llama >"$tmp/out" 2>&1
    fine=1
    for w in 0 1 2 3; do same "$tmp/c2.$w" "$tmp/mp.$w" || fine=0; done
    [ $fine = 1 ] && ok "mpirun -np 4 c=2: every worker's gradients and weights equal the threads' (1e-6)" \
        || nok "mpirun -np 4 c=2: every worker's gradients and weights equal the threads'" "$(head -c 300 "$tmp/out")"
    set -- "$@" --set parallel.context=2 --set parallel.tensor=2 --set parallel.sequence=true
    PEXEC_GRADS_OUT="$tmp/th" $pexec --no-db --quiet "$@" $llama
    PEXEC_GRADS_OUT="$tmp/mp" $mpi 8 $pexec --no-db --quiet "$@" $llama >"$tmp/out" 2>&1
    fine=1
    for w in 0 1 2 3 4 5 6 7; do same "$tmp/th.$w" "$tmp/mp.$w" || fine=0; done
    [ $fine = 1 ] && ok "mpirun -np 8 c=2 t=2 sequence parallel: every worker's gradients and weights equal the threads' (1e-6)" \
        || nok "mpirun -np 8 c=2 t=2 sequence parallel: every worker's gradients and weights equal the threads'" "$(head -c 300 "$tmp/out")"
    $mpi 2 $pexec --no-db --set parallel.context=2 $llama >"$tmp/out" 2>&1
    [ $? = 2 ] && grep -q "stages x data x context x tensor = 2 x 1 x 2 x 1 = 4 workers; use mpirun -np 4" "$tmp/out" \
        && ok "pexec under mpirun counts the context ranks among the workers (exit 2)" \
        || nok "pexec under mpirun counts the context ranks among the workers (exit 2)" "$(head -c 300 "$tmp/out")"
else
    echo "# MPI context-parallel tests skipped: no mpirun (install openmpi-bin)"
fi
rm -f "$tmp"/c1.* "$tmp"/c2.* "$tmp"/z1.* "$tmp"/th.* "$tmp"/mp.*
