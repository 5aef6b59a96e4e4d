#!/bin/sh
# tests/cli_pexec_dp.sh: pexec running data and tensor parallelism for real (sourced by
# tests/cli_test.sh, whose $psim, $tmp, ok, nok, expect and sql it uses): the rows it stores
# and how metrics and pcompare read them, the same gradients and weights on threads and on MPI
# ranks, and the launches it refuses.
pexec="$(dirname "$psim")/pexec"
pcompare="$(dirname "$psim")/pcompare"
small="--set model.layers=4 --set model.hidden=16 --set model.heads=2 --set model.seq_len=8"

# --- 1F1B p = 2, m = 2, d = 2, t = 2, two layers a stage: 8 threads -------------------------
# replica 0's tensor rank 0's rows: 4 compute a device, 4 sends and 4 receives, 2 tensor
# all-reduces per layer in each F and BW (2 x 2 x 4 = 16 a device), one gradient all-reduce
# and one optimizer step a device
db="$tmp/pdp.db"
set -- --set pipeline.stages=2 --set parallel.data=2 --set parallel.tensor=2 --set batch.micro_batches=2 $small
$psim --db "$db" --quiet "$@" scenarios/tiny-1f1b.scn
$pexec --db "$db" --quiet "$@" scenarios/tiny-1f1b.scn 2>"$tmp/err"
got=$(sql "$db" "select group_concat(stream || ':' || n, ' ') from (select stream, count(*) n from ops
                 where run_id = 2 group by stream order by stream)")
[ "$got" = "allreduce:2 compute:8 optimizer:2 recv:4 send:4 tensor:32" ] \
    && ok "pexec d=2 t=2 stores 32 tensor, 2 allreduce and 2 optimizer rows beside 8 compute" \
    || nok "pexec d=2 t=2 stores 32 tensor, 2 allreduce and 2 optimizer rows beside 8 compute" "$got" "$(head -c 300 "$tmp/err")"
got=$(sql "$db" "select count(*) from ops t where run_id = 2 and stream = 'tensor' and exists
                 (select 1 from ops c where c.run_id = 2 and c.stream = 'compute' and c.device = t.device
                  and c.micro_batch = t.micro_batch and c.kind = t.kind and c.start_ns <= t.start_ns
                  and t.end_ns <= c.end_ns)")
[ "$got" = 32 ] && ok "every tensor row lies inside its op's compute row" || nok "every tensor row lies inside its op's compute row" "$got"
got=$(sql "$db" "select abs((select value from metrics where run_id = 2 and name = 'allreduce_ms') -
                 (select max(s) from (select sum(end_ns - start_ns) / 1e6 s from ops where run_id = 2
                  and stream = 'allreduce' group by device))) < 1e-6")
[ "$got" = 1 ] && ok "allreduce_ms is the longest device's allreduce rows, no tensor row in it" \
    || nok "allreduce_ms is the longest device's allreduce rows, no tensor row in it" "$got"
$pcompare --db "$db" 1 2 >"$tmp/cmp" 2>&1
grep -Eq '^allreduce \(mean\) +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ %$' "$tmp/cmp" \
    && grep -Eq '^optimizer \(mean\) +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ %$' "$tmp/cmp" \
    && grep -q '^# tensor: only the measured run has them (32 rows, mean' "$tmp/cmp" \
    && ok "pcompare shows the all-reduce and optimizer errors and names the tensor rows psim lacks" \
    || nok "pcompare shows the all-reduce and optimizer errors and names the tensor rows psim lacks" "$(head -c 600 "$tmp/cmp")"

# --- zero = 1 on threads: p = 2, d = 2, two iterations; each replica reduce-scatters its
# gradients, steps its half and all-gathers the other's: the weights of every worker equal
# zero = 0's (the shard sums are the all-reduce's, summed in the same order)
set -- --set pipeline.stages=2 --set parallel.data=2 --set batch.micro_batches=2 \
    --set batch.iterations=2 --set costs.optimizer_ms=0.1 $small
PEXEC_GRADS_OUT="$tmp/z0" $pexec --no-db --quiet "$@" scenarios/tiny-1f1b.scn
PEXEC_GRADS_OUT="$tmp/z1" $pexec --no-db --quiet --set parallel.zero=1 "$@" scenarios/tiny-1f1b.scn
fine=1
for w in 0 1 2 3; do
    grep '^w' "$tmp/z0.$w" >"$tmp/z0w" && grep '^w' "$tmp/z1.$w" >"$tmp/z1w" || fine=0
    paste -d ' ' "$tmp/z0w" "$tmp/z1w" | awk '{ d = $6 - $12; if (d < 0) d = -d; a = $6 < 0 ? -$6 : $6
        if ($1 $2 $3 $4 $5 != $7 $8 $9 $10 $11 || d > 1e-6 * (1 + a)) bad++; n++ }
        END { exit !(n > 1000 && !bad) }' || fine=0
done
[ $fine = 1 ] && ok "pexec zero=1 d=2: every worker's weights after two steps equal zero=0's (1e-6)" \
    || nok "pexec zero=1 d=2: every worker's weights equal zero=0's" "$(head -n 2 "$tmp/z1.0")"
db="$tmp/pz.db"
set -- --set pipeline.stages=2 --set parallel.data=2 --set batch.micro_batches=2 --set parallel.zero=1 $small
$psim --db "$db" --quiet "$@" scenarios/tiny-1f1b.scn
$pexec --db "$db" --quiet "$@" scenarios/tiny-1f1b.scn 2>"$tmp/err"
got=$(sql "$db" "select group_concat(stream || ':' || kind || ':' || n, ' ') from (select stream, kind, count(*) n
                 from ops where run_id = 2 and stream not in ('compute', 'send', 'recv') group by 1, 2 order by 1, 2)")
[ "$got" = "all_gather:F:2 optimizer:BW:2 reduce_scatter:BW:2" ] \
    && ok "pexec zero=1 stores a reduce_scatter, an optimizer and an all_gather row a device, no allreduce" \
    || nok "pexec zero=1 stores reduce_scatter, optimizer and all_gather rows" "$got" "$(head -c 300 "$tmp/err")"
got=$(sql "$db" "select abs((select value from metrics where run_id = 2 and name = 'reduce_scatter_ms') -
                 (select max(s) from (select sum(end_ns - start_ns) / 1e6 s from ops where run_id = 2
                  and stream = 'reduce_scatter' group by device))) < 1e-6
                 and (select count(*) from ops where run_id = 2 and stream = 'all_gather' and start_ns <
                  (select max(end_ns) from ops o where o.run_id = 2 and o.stream = 'optimizer' and o.device = ops.device)) = 0")
[ "$got" = 1 ] && ok "reduce_scatter_ms is the longest device's rows; every all-gather follows its device's step" \
    || nok "reduce_scatter_ms is the longest device's rows; every all-gather follows its step" "$got"
$pcompare --db "$db" 1 2 >"$tmp/cmp" 2>&1
grep -Eq '^reduce_scatter \(mean\) +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ %$' "$tmp/cmp" \
    && grep -Eq '^all_gather \(mean\) +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ %$' "$tmp/cmp" \
    && ! grep -q '^allreduce' "$tmp/cmp" \
    && ok "pcompare gives the reduce-scatter's and the all-gather's errors" \
    || nok "pcompare gives the reduce-scatter's and the all-gather's errors" "$(head -c 600 "$tmp/cmp")"
# --- zero = 3: each layer's weights gathered before F and BW, each BW's gradients scattered,
# no tail collective (as psim prices it: no reduce_scatter or all_gather rows on either side);
# the weights after two steps equal zero = 0's
set -- --set pipeline.stages=2 --set parallel.data=2 --set batch.micro_batches=2 \
    --set batch.iterations=2 --set costs.optimizer_ms=0.1 $small
PEXEC_GRADS_OUT="$tmp/z3" $pexec --no-db --quiet --set parallel.zero=3 "$@" scenarios/tiny-1f1b.scn
fine=1
for w in 0 1 2 3; do
    grep '^w' "$tmp/z0.$w" >"$tmp/z0w" && grep '^w' "$tmp/z3.$w" >"$tmp/z3w" || fine=0
    paste -d ' ' "$tmp/z0w" "$tmp/z3w" | awk '{ d = $6 - $12; if (d < 0) d = -d; a = $6 < 0 ? -$6 : $6
        if ($1 $2 $3 $4 $5 != $7 $8 $9 $10 $11 || d > 1e-6 * (1 + a)) bad++; n++ }
        END { exit !(n > 1000 && !bad) }' || fine=0
done
[ $fine = 1 ] && ok "pexec zero=3 d=2: every worker's weights after two steps equal zero=0's (1e-6)" \
    || nok "pexec zero=3 d=2: every worker's weights equal zero=0's" "$(head -n 2 "$tmp/z3.0")"
db="$tmp/pz3.db"
set -- --set pipeline.stages=2 --set parallel.data=2 --set batch.micro_batches=2 --set parallel.zero=3 $small
$psim --db "$db" --quiet "$@" scenarios/tiny-1f1b.scn
$pexec --db "$db" --quiet "$@" scenarios/tiny-1f1b.scn 2>"$tmp/err"
got=$(sql "$db" "select group_concat(run_id || ':' || stream || ':' || n, ' ') from (select run_id, stream, count(*) n
                 from ops where stream not in ('compute', 'send', 'recv') group by 1, 2 order by 1, 2)")
[ "$got" = "1:optimizer:2 2:optimizer:2" ] \
    && ok "zero=3: psim and pexec store only the optimizer rows beside the ops (the collectives are inside them)" \
    || nok "zero=3: psim and pexec store only the optimizer rows beside the ops" "$got" "$(head -c 300 "$tmp/err")"

# --- refused: the CUDA backend (exit 2 before looking for a GPU), a tensor width that does not
# divide the heads left by --scale (the scenario's own check, run again after scaling)
expect "pexec --backend cuda refuses tensor parallelism (exit 2)" 2 \
    "parallel.data = 1, parallel.tensor = 2: the CUDA backend runs one pipeline replica without tensor parallelism" \
    $pexec --no-db --backend cuda --set parallel.tensor=2 scenarios/tiny-cpu.scn
expect "pexec --backend cuda refuses data parallelism (exit 2)" 2 \
    "parallel.data = 2, parallel.tensor = 1: the CUDA backend" \
    $pexec --no-db --backend cuda --set parallel.data=2 scenarios/tiny-cpu.scn
expect "pexec: tensor must divide the heads left by --scale" 2 \
    "tensor = 4 does not divide heads = 1 and ffn_hidden = 256" \
    $pexec --no-db --scale 4 --set parallel.tensor=4 scenarios/tiny-cpu.scn

# --- MPI ranks: the same gradients and weights (after two SGD steps) as threads --------------
if command -v mpirun >/dev/null 2>&1; then
    mpi="env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -np"
    # same FILE_A FILE_B: every value within 1e-6 (1 + |v|) of the other's, the same lines
    same() { paste -d ' ' "$1" "$2" | awk '{ d = $6 - $12; if (d < 0) d = -d; a = $6 < 0 ? -$6 : $6
             if ($1 $2 $3 $4 $5 != $7 $8 $9 $10 $11 || d > 1e-6 * (1 + a)) bad++; n++ }
             END { exit !(n > 0 && !bad) }'; }
    for shape in "1 2 2" "2 1 2"; do
        set -- $shape
        p=$1 d=$2 t=$3
        set -- --set pipeline.stages=$p --set parallel.data=$d --set parallel.tensor=$t \
            --set batch.micro_batches=2 --set batch.iterations=2 --set costs.optimizer_ms=0.1 $small
        PEXEC_GRADS_OUT="$tmp/th" $pexec --no-db --quiet "$@" scenarios/tiny-1f1b.scn
        PEXEC_GRADS_OUT="$tmp/mp" $mpi 4 $pexec --no-db --quiet "$@" scenarios/tiny-1f1b.scn >"$tmp/out" 2>&1
        fine=1
        for w in 0 1 2 3; do same "$tmp/th.$w" "$tmp/mp.$w" || fine=0; done
        [ $fine = 1 ] && ok "mpirun -np 4 p=$p d=$d t=$t: every worker's gradients and weights equal the threads' (1e-6)" \
            || nok "mpirun -np 4 p=$p d=$d t=$t: every worker's gradients and weights equal the threads'" "$(head -c 300 "$tmp/out")"
        rm -f "$tmp"/th.* "$tmp"/mp.*
    done
    # zero = 1 on ranks (MPI_Ireduce_scatter, MPI_Iallgatherv): the threads' zero = 1 weights
    set -- --set pipeline.stages=2 --set parallel.data=2 --set batch.micro_batches=2 \
        --set batch.iterations=2 --set costs.optimizer_ms=0.1 --set parallel.zero=1 $small
    PEXEC_GRADS_OUT="$tmp/mp" $mpi 4 $pexec --no-db --quiet "$@" scenarios/tiny-1f1b.scn >"$tmp/out" 2>&1
    fine=1
    for w in 0 1 2 3; do same "$tmp/z1.$w" "$tmp/mp.$w" || fine=0; done
    [ $fine = 1 ] && ok "mpirun -np 4 zero=1 d=2: every worker's gradients and weights equal the threads' (1e-6)" \
        || nok "mpirun -np 4 zero=1 d=2: every worker's gradients and weights equal the threads'" "$(head -c 300 "$tmp/out")"
    set -- --set pipeline.stages=2 --set parallel.data=2 --set batch.micro_batches=2 \
        --set batch.iterations=2 --set costs.optimizer_ms=0.1 --set parallel.zero=3 $small
    PEXEC_GRADS_OUT="$tmp/t3" $pexec --no-db --quiet "$@" scenarios/tiny-1f1b.scn
    PEXEC_GRADS_OUT="$tmp/m3" $mpi 4 $pexec --no-db --quiet "$@" scenarios/tiny-1f1b.scn >"$tmp/out" 2>&1
    fine=1
    for w in 0 1 2 3; do same "$tmp/t3.$w" "$tmp/m3.$w" || fine=0; done
    [ $fine = 1 ] && ok "mpirun -np 4 zero=3 d=2: every worker's gradients and weights equal the threads' (1e-6)" \
        || nok "mpirun -np 4 zero=3 d=2: every worker's gradients and weights equal the threads'" "$(head -c 300 "$tmp/out")"
    rm -f "$tmp"/mp.*
    $mpi 3 $pexec --no-db --set parallel.tensor=2 --set pipeline.stages=2 $small scenarios/tiny-1f1b.scn >"$tmp/out" 2>&1
    [ $? = 2 ] && grep -q "mpirun started 3 ranks but the scenario has stages x data x context x tensor = 2 x 1 x 1 x 2 = 4 workers; use mpirun -np 4" "$tmp/out" \
        && ok "pexec under mpirun names p*d*c*t when -np does not match (exit 2)" \
        || nok "pexec under mpirun names p*d*c*t when -np does not match (exit 2)" "$(head -c 300 "$tmp/out")"
    # ranks started with different --set values: refused at the start (exit 2), naming the
    # rank and the line, instead of running two programs that meet only at the watchdog
    $mpi 1 $pexec --no-db --quiet --set batch.iterations=1 scenarios/tiny-cpu.scn : \
        -np 1 $pexec --no-db --quiet --set batch.iterations=2 scenarios/tiny-cpu.scn >"$tmp/out" 2>&1
    [ $? = 2 ] && grep -q "the ranks were started with different scenarios.*rank 1's resolved scenario differs at line [0-9]*: rank 0 has 'iterations = 1', rank 1 'iterations = 2'" "$tmp/out" \
        && ok "pexec under mpirun refuses ranks given different --set values, naming rank and line (exit 2)" \
        || nok "pexec under mpirun refuses ranks given different --set values, naming rank and line (exit 2)" "$(head -c 400 "$tmp/out")"
else
    echo "# MPI data/tensor tests skipped: no mpirun (install openmpi-bin)"
fi
