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
for f in gpu_validate gpu_bundle gpu_unpack; do
    sh -n traces/$f.sh && ok "traces/$f.sh is valid sh" || nok "traces/$f.sh is valid sh"
done
# The device session's path end to end on the CUDA stand-in: bundle (no build on the device),
# validate into one archive, unpack under traces/gpu/<date>-<gpu>/.
GPU_VALIDATE_DRY=1 sh traces/gpu_bundle.sh "$tmp/gb" 2>"$tmp/gb.err"
got=$?
mib=$(du -sm "$tmp/gb" | cut -f1)
[ "$got" = 0 ] && [ -x "$tmp/gb/bin/pexec" ] && [ -x "$tmp/gb/bin/sqlite3" ] && [ -f "$tmp/gb/lib/libopenblas.so.0" ] && [ "$mib" -le 60 ] \
    && ok "gpu_bundle.sh carries the binaries and their libraries within 60 MiB" \
    || nok "gpu_bundle.sh carries the binaries and their libraries within 60 MiB" "exit $got, $mib MiB" "$(tail -n 2 "$tmp/gb.err")"
t0=$(date +%s)
GPU_BUNDLE="$tmp/gb" GPU_VALIDATE_DRY=1 sh traces/gpu_validate.sh "$tmp/gv" >/dev/null 2>"$tmp/gv.err"
got=$? took=$(( $(date +%s) - t0 ))
files=$(ls "$tmp/gv")
mkdir -p "$tmp/gvx" && tar -xzf "$tmp/gv/gpu_validate.tar.gz" -C "$tmp/gvx" 2>/dev/null
x="$tmp/gvx/gpu_validate"
runs=$(sql "$x/gpu.db" "select group_concat(tool || ':' || schedule || ':' || devices || ':' || status, ' ') from (select * from runs order by id)")
want="pexec:zb-h1:4:complete pexec:1f1b:4:complete pexec:interleaved:4:complete pexec:zb-h1:2:complete pexec:1f1b:2:complete pexec:interleaved:2:complete"
want="$want psim:zb-h1:4:complete psim:1f1b:4:complete psim:interleaved:4:complete psim:zb-h1:2:complete psim:1f1b:2:complete psim:interleaved:2:complete"
[ "$got" = 0 ] && [ "$files" = gpu_validate.tar.gz ] && [ "$runs" = "$want" ] && [ "$took" -lt 480 ] \
    && ok "gpu_validate.sh dry run: six measured runs on 2 and 4 partitions, six calibrated predictions, one archive" \
    || nok "gpu_validate.sh dry run: six measured runs on 2 and 4 partitions, six calibrated predictions, one archive" "exit $got in $took s; files: $files" "$runs" "$(tail -n 3 "$tmp/gv.err")"
n=0
for c in "$x"/compare_*.txt; do grep -q "^makespan" "$c" && n=$((n + 1)); done
[ "$n" = 6 ] && grep -q "^gpu_validate: done: exit 0" "$x/summary.txt" \
    && ok "gpu_validate.sh compares every prediction with its measurement" || nok "gpu_validate.sh compares every prediction with its measurement" "$n of 6"
n=$(grep -c "TFLOP/s per device = .* of its 1/[24] share of the GPU peak" "$x/tflops.txt")
[ "$n" = 14 ] && ! grep -q " x[0-9]" "$x/tflops.txt" \
    && ok "gpu_validate.sh reports TFLOP/s per device against its partition's share (F B W; F BW; x 2)" \
    || nok "gpu_validate.sh reports TFLOP/s per device against its partition's share" "$n lines"
sh traces/gpu_unpack.sh "$tmp/gv/gpu_validate.tar.gz" "$tmp/traces" >"$tmp/gu.out" 2>&1
got=$?
d=$(ls "$tmp/traces" 2>/dev/null)
case "$d" in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-cuda-stand-in-dry-run) dn=1 ;; *) dn=0 ;; esac
[ "$got" = 0 ] && [ "$dn" = 1 ] && [ -s "$tmp/traces/$d/gpu.db" ] && grep -q "^gpu: CUDA stand-in" "$tmp/gu.out" \
    && ok "gpu_unpack.sh files the archive under <date>-<gpu>/ with its versions" \
    || nok "gpu_unpack.sh files the archive under <date>-<gpu>/ with its versions" "exit $got" "$d"
expect "gpu_unpack.sh refuses a file that is not an archive" 2 "not a gzip tar archive" \
    sh traces/gpu_unpack.sh scenarios/tiny-cpu.scn "$tmp/traces"
# an early stop is a failure, and still one archive
GPU_BUNDLE="$tmp/none" GPU_VALIDATE_DRY=1 sh traces/gpu_validate.sh "$tmp/gv2" >/dev/null 2>&1
got=$?
[ "$got" = 2 ] && [ -f "$tmp/gv2/gpu_validate.tar.gz" ] \
    && ok "gpu_validate.sh without a bundle exits 2 with the archive of what it did" || nok "gpu_validate.sh without a bundle exits 2" "exit $got"
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
# What pexec computes in, in its header: fp32 on the CPU, bf16 with fp32 accumulation on CUDA
# (the scenario's dtype is what psim prices). CUDA_DEVICE_MAX_CONNECTIONS: raised to the
# streams of a GPU (4 partitions: 4 compute + 4 copy + 1) unless the user set it, and stored.
$pexec --backend cpu --no-db --set batch.iterations=1 --set batch.micro_batches=2 scenarios/tiny-cpu.scn 2>/dev/null >"$tmp/h.out"
grep -q "^# tiny-cpu: .* 8 layers, fp32 (priced as bf16) on cpu" "$tmp/h.out" \
    && ok "pexec --backend cpu says it computes in fp32" || nok "pexec --backend cpu says it computes in fp32" "$(head -n 1 "$tmp/h.out")"
rm -f "$sdb"
$standin --backend cuda --db "$sdb" --set batch.iterations=1 --set batch.micro_batches=4 \
    --set pipeline.stages=4 --set hardware.devices_per_gpu=4 scenarios/tiny-cpu.scn 2>/dev/null >"$tmp/h.out"
v=$(sql "$sdb" "select value from run_env where name = 'CUDA_DEVICE_MAX_CONNECTIONS'")
grep -q "^# tiny-cpu: .* bf16 with fp32 accumulation (priced as bf16) on " "$tmp/h.out" && [ "$v" = 9 ] \
    && ok "pexec --backend cuda: bf16 with fp32 accumulation; CUDA_DEVICE_MAX_CONNECTIONS 9 for 9 streams" \
    || nok "pexec --backend cuda: bf16 with fp32 accumulation; CUDA_DEVICE_MAX_CONNECTIONS 9 for 9 streams" "$v" "$(head -n 1 "$tmp/h.out")"
rm -f "$sdb"
CUDA_DEVICE_MAX_CONNECTIONS=3 $standin --backend cuda --quiet --db "$sdb" --set batch.iterations=1 \
    --set batch.micro_batches=4 scenarios/tiny-cpu.scn 2>/dev/null
v=$(sql "$sdb" "select value from run_env where name = 'CUDA_DEVICE_MAX_CONNECTIONS'")
[ "$v" = 3 ] && ok "a user's CUDA_DEVICE_MAX_CONNECTIONS stands" || nok "a user's CUDA_DEVICE_MAX_CONNECTIONS stands" "$v"
# --kill-after / --stall-after: the CPU backend's fault injection, refused on CUDA (they were
# silently ignored, the run reported as if the fault had been injected)
rm -f "$sdb"
expect "pexec --backend cuda refuses --kill-after" 2 "^pexec: --kill-after is the CPU backend's fault injection \(not implemented on the CUDA backend\)" \
    $standin --backend cuda --kill-after 1:3 --db "$sdb" scenarios/tiny-cpu.scn
expect "pexec --backend cuda refuses --stall-after" 2 "^pexec: --stall-after is the CPU backend's fault injection" \
    $standin --backend cuda --stall-after 1:3 --db "$sdb" scenarios/tiny-cpu.scn
[ ! -s "$sdb" ] || [ "$(sql "$sdb" "select count(*) from runs")" = 0 ] \
    && ok "a refused --kill-after stores nothing" || nok "a refused --kill-after stores nothing"
