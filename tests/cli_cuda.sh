# tests/cli_cuda.sh: pexec --backend as a user runs it, sourced by tests/cli_test.sh (its
# helpers ok/nok/expect/sql, $psim, $tmp). Without a GPU: --backend cuda exits 1 with
# cudaGetDeviceCount's reason (or, built without nvcc, says so) and stores nothing; option and
# key errors exit 2; traces/gpu_validate.sh is valid sh and its GPU-free dry run stores,
# calibrates, compares and reports. With a GPU visible the no-GPU checks say they skip.
pexec="$(dirname "$psim")/pexec"
db="$tmp/cuda.db"
if ldd "$pexec" 2>/dev/null | grep -q libcudart; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        ok "pexec --backend cuda without a GPU exits 1 # skip: a GPU is visible"
    else
        expect "pexec --backend cuda without a GPU exits 1 with the reason" 1 \
            "^pexec: --backend cuda: no CUDA device visible \(cudaGetDeviceCount: .*\); run on a machine with an NVIDIA GPU or use --backend cpu$" \
            $pexec --backend cuda --db "$db" scenarios/tiny-cpu.scn
    fi
else
    expect "pexec --backend cuda built without nvcc exits 1 saying so" 1 \
        "built without the CUDA backend .*or use --backend cpu" \
        $pexec --backend cuda --db "$db" scenarios/tiny-cpu.scn
fi
[ ! -s "$db" ] || [ "$(sql "$db" "select count(*) from runs")" = 0 ] \
    && ok "pexec --backend cuda that cannot run stores nothing" \
    || nok "pexec --backend cuda that cannot run stores nothing" "$(sql "$db" "select count(*) from runs")"
if ldd "$pexec" 2>/dev/null | grep -q libcudart; then
    expect "pexec --backend cuda refuses the CPU backend's --rendezvous" 2 \
        "^pexec: --rendezvous is the CPU backend's" $pexec --backend cuda --rendezvous --db "$db" scenarios/tiny-cpu.scn
fi
expect "pexec --backend takes cpu or cuda" 2 "^pexec: --backend gpu: give cpu or cuda$" \
    $pexec --backend gpu --no-db scenarios/tiny-cpu.scn
expect "psim --backend is a pexec option" 2 "--backend is a pexec option" \
    $psim --backend cuda --no-db scenarios/tiny-cpu.scn
expect "hardware.devices_per_gpu below 1 is refused" 2 "devices_per_gpu" \
    $psim --no-db --set hardware.devices_per_gpu=0 scenarios/tiny-cpu.scn
$pexec --backend cpu --no-db --quiet --set batch.iterations=1 scenarios/tiny-cpu.scn \
    && ok "pexec --backend cpu runs as before" || nok "pexec --backend cpu runs as before"
sh -n traces/gpu_validate.sh && ok "traces/gpu_validate.sh is valid sh" || nok "traces/gpu_validate.sh is valid sh"
GPU_VALIDATE_DRY=1 sh traces/gpu_validate.sh "$tmp/gv" >/dev/null 2>"$tmp/gv.err"
got=$?
runs=$(sql "$tmp/gv/gpu.db" "select group_concat(tool || ':' || schedule, ' ') from (select * from runs order by id)")
[ "$got" = 0 ] && [ "$runs" = "pexec:zb-h1 pexec:1f1b psim:zb-h1 psim:1f1b" ] \
    && ok "gpu_validate.sh dry run: two measured, two calibrated predictions" \
    || nok "gpu_validate.sh dry run: two measured, two calibrated predictions" "exit $got" "$runs" "$(tail -n 3 "$tmp/gv.err")"
grep -q "^makespan" "$tmp/gv/compare_zbh1.txt" && grep -q "^makespan" "$tmp/gv/compare_1f1b.txt" \
    && ok "gpu_validate.sh compares both schedules" || nok "gpu_validate.sh compares both schedules"
n=$(grep -c "TFLOP/s per device" "$tmp/gv/tflops.txt")
[ "$n" = 5 ] && ok "gpu_validate.sh reports TFLOP/s per op kind (F B W; F BW)" || nok "gpu_validate.sh reports TFLOP/s per op kind" "$n lines"
[ -s "$tmp/gv/zbh1.trace.json" ] && grep -q "devices_per_gpu = 4" "$tmp/gv/gpt-4dev-1gpu.scn" \
    && ok "gpu_validate.sh writes traces of a devices_per_gpu = 4 scenario" || nok "gpu_validate.sh writes traces of a devices_per_gpu = 4 scenario"
# pexec --backend cuda on the CUDA stand-in (build/tests/pexec_standin: exec/cuda.c with the
# stand-in's CPU runtime, cuBLAS and NCCL; never bin/pexec): a run is stored complete with a
# row per op and transfer; an injected NCCL error (the 9th call: past the warm-up's four) is
# stored as a failed run with the rows measured before it.
standin=${PEXEC_STANDIN:-build/tests/pexec_standin}
sdb="$tmp/standin.db"
rm -f "$sdb"
$standin --backend cuda --quiet --db "$sdb" --set batch.iterations=1 --set batch.micro_batches=4 \
    scenarios/tiny-cpu.scn >/dev/null 2>"$tmp/standin.err"
got=$?
row=$(sql "$sdb" "select status || ' ' || (select count(*) from ops where run_id = runs.id and stream = 'compute') || ' ' || (select count(*) from ops where run_id = runs.id and stream = 'send') from runs")
[ "$got" = 0 ] && [ "$row" = "complete 16 8" ] \
    && ok "pexec --backend cuda on the stand-in stores the run with its ops" \
    || nok "pexec --backend cuda on the stand-in stores the run with its ops" "exit $got" "$row" "$(tail -n 2 "$tmp/standin.err")"
PSIM_STUB_NCCL_FAIL=9 $standin --backend cuda --quiet --db "$sdb" --set batch.iterations=1 \
    --set batch.micro_batches=4 --set hardware.devices_per_gpu=1 scenarios/tiny-cpu.scn \
    >/dev/null 2>"$tmp/standin.err"
got=$?
row=$(sql "$sdb" "select status || ' ' || (select count(*) from ops where run_id = runs.id) from runs where id = 2")
err=$(sql "$sdb" "select error from runs where id = 2")
case "$row:$err" in
"failed 0:"*|"failed :"*) rows=0 ;;
"failed "*"unhandled system error (injected by the CUDA stand-in)"*) rows=1 ;;
*) rows=-1 ;;
esac
[ "$got" = 1 ] && [ "$rows" = 1 ] \
    && ok "an injected NCCL error is stored as a failed run with the ops measured before it" \
    || nok "an injected NCCL error is stored as a failed run with the ops measured before it" "exit $got" "$row" "$err"
