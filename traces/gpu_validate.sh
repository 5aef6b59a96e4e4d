#!/bin/sh
# traces/gpu_validate.sh [OUT]: the GPU session's one command (about 8 minutes on one H100 or
# H200). Builds; runs the unit tests with the GPU tests; runs a scaled GPT scenario with four
# pipeline devices on the one GPU (hardware.devices_per_gpu = 4) as ZB-H1 and 1F1B with
# pexec --backend cuda, stored in OUT/gpu.db; calibrates psim on the ZB-H1 run (it has F, B
# and W apart) and compares the calibrated predictions of both schedules with the
# measurements; reports each layer GEMM's achieved TFLOP/s on the whole GPU (bench_cuda) and
# the pipelined ops' against the GPU's peak; writes Chrome
# traces, nvidia-smi, versions, the NCCL environment and each run's stored environment
# (env-RUN.csv) under OUT (default traces/gpu-<UTC time>), within GPU_VALIDATE_BUDGET seconds (default 450; a step that would
# run past it is cut or skipped, said in the summary). Ends with OUT/summary.txt. Exit status 0 when every step ran (the
# comparisons report errors, they do not fail), else the first failing step's.
# GPU_VALIDATE_DRY=1: the same steps on the CPU backend at 1/64 of the widths, no build, no
# GPU (the CLI tests run it so the script's plumbing is checked without a GPU).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
dry=${GPU_VALIDATE_DRY:-0}
out=${1:-traces/gpu-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out" || exit 1
db="$out/gpu.db"
rm -f "$db" "$out/summary.txt"
status=0

say() { echo "gpu_validate: $*" | tee -a "$out/summary.txt" >&2; }

# step NAME SECONDS CMD...: runs CMD with a time limit (cut to what is left of the budget,
# GPU_VALIDATE_BUDGET seconds in all, default 450), its output in OUT/NAME.txt.
budget=${GPU_VALIDATE_BUDGET:-450}
started=$(date +%s)
step() {
    name=$1 limit=$2
    shift 2
    left=$((budget - ($(date +%s) - started)))
    if [ "$left" -lt 5 ]; then
        say "$name: skipped, the ${budget} s budget is spent"
        [ "$status" -eq 0 ] && status=124
        return 124
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    t0=$(date +%s)
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    rc=$?
    say "$name: exit $rc in $(( $(date +%s) - t0 )) s ($*)"
    [ "$rc" -ne 0 ] && [ "$status" -eq 0 ] && status=$rc
    return "$rc"
}

# --- the machine ---------------------------------------------------------------------------
{
    date -u
    uname -a
    command -v nvidia-smi >/dev/null && nvidia-smi || echo "no nvidia-smi"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
    ${CUDA_HOME:-/usr/local/cuda}/bin/nvcc --version 2>&1 | tail -n 2
    grep -h "define NCCL_VERSION_CODE" ${CUDA_HOME:-/usr/local/cuda}/include/nccl.h 2>/dev/null
} >"$out/machine.txt" 2>&1
env | grep '^NCCL_' | sort >"$out/nccl_env.txt"
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
case "$gpu_name" in *H200*) preset=h200 ;; *) preset=h100 ;; esac
peak=989 # dense bf16 TFLOP/s of an H100/H200 SXM (psim's presets)
say "GPU: ${gpu_name:-none}; psim preset $preset, peak $peak TFLOP/s"

# --- build and unit tests ------------------------------------------------------------------
if [ "$dry" = 1 ]; then
    backend=cpu scale="--scale 64" iters=2
    [ -x build/tests/test_cuda ] && step test_cuda 60 build/tests/test_cuda
else
    backend=cuda scale="" iters=3
    step build 240 make -j"$(nproc)" all || { say "build failed"; exit "$status"; }
    step build_tests 120 make -j"$(nproc)" build/tests/test_cuda build/tests/test_issue_order \
        build/bench_cuda
    step test_issue_order 60 build/tests/test_issue_order
    step test_cuda 120 build/tests/test_cuda
    grep -q "SKIPPED" "$out/test_cuda.txt" && say "GPU tests were SKIPPED: $(grep -m1 '# skipped' "$out/test_cuda.txt")"
fi

# --- every op of the layer alone on the whole GPU: TFLOP/s of each GEMM, GB/s of the rest ---
if [ "$dry" != 1 ]; then
    step bench_cuda 90 build/bench_cuda 1 2048 2048 16 8192 "$peak"
    grep "(pass)" "$out/bench_cuda.txt" | sed 's/^/gpu_validate: layer /' | tee -a "$out/summary.txt" >&2
fi

# --- the scenario: a 16-layer 2048-wide GPT, 4 devices x 4 layers on one GPU ----------------
scn="$out/gpt-4dev-1gpu.scn"
cat >"$scn" <<SCN
; written by traces/gpu_validate.sh: GPT-style 16 x 2048 (16 heads, 2048 tokens), four
; pipeline devices sharing one GPU as SM partitions, 16 micro-batches of one sample.
[model]
name = gpt-2048x16
layers = 16
hidden = 2048
heads = 16
seq_len = 2048
vocab = 256          ; pexec runs no LM head: keep psim's small
dtype = bf16
[batch]
micro_batch_size = 1
micro_batches = 16
iterations = $iters
[pipeline]
stages = 4
schedule = zb-h1
[hardware]
gpu = $preset
devices_per_gpu = 4
SCN

# pexec_run NAME ARGS...: a measured run; on a GPU, a failed run is tried once more with
# plain streams instead of green contexts (PEXEC_CUDA_PARTITION=streams), said in the summary.
pexec_run() {
    name=$1
    shift
    step "$name" 150 bin/pexec --backend $backend $scale --db "$db" --watchdog 60 "$@" && return 0
    [ "$dry" = 1 ] && return 1
    say "$name failed: $(tail -n 2 "$out/$name.txt" | tr '\n' ' '); retrying with streams"
    [ "$status" -ne 0 ] && status=0
    PEXEC_CUDA_PARTITION=streams step "$name-streams" 150 bin/pexec --backend $backend \
        --db "$db" --watchdog 60 "$@"
}
pexec_run pexec_zbh1 "$scn"
pexec_run pexec_1f1b --set pipeline.schedule=1f1b "$scn"
runs=$(sqlite3 "$db" "select count(*) from runs where tool = 'pexec'" 2>/dev/null)
if [ "${runs:-0}" -lt 2 ]; then
    say "pexec stored ${runs:-0} of 2 runs; stopping (see $out/pexec_*.txt)"
    exit "$status"
fi
zb=$(sqlite3 "$db" "select min(id) from runs where tool = 'pexec'")
f1=$(sqlite3 "$db" "select max(id) from runs where tool = 'pexec'")

# --- calibrate on ZB-H1, predict both, compare ---------------------------------------------
step calibrate 30 bin/pcalibrate --db "$db" --stages "$zb"
cp "$out/calibrate.txt" "$out/calibrated.scn"
step psim_zbh1 30 bin/psim --db "$db" --quiet "$out/calibrated.scn"
step psim_1f1b 30 bin/psim --db "$db" --quiet --set pipeline.schedule=1f1b "$out/calibrated.scn"
pz=$(sqlite3 "$db" "select max(id) from runs where tool = 'psim' and schedule = 'zb-h1'")
p1=$(sqlite3 "$db" "select max(id) from runs where tool = 'psim' and schedule = '1f1b'")
step compare_zbh1 30 bin/pcompare --db "$db" --tolerance 1 "$pz" "$zb"
step compare_1f1b 30 bin/pcompare --db "$db" --tolerance 1 "$p1" "$f1"
for f in compare_zbh1 compare_1f1b; do
    say "$f: $(grep -m1 -i makespan "$out/$f.txt")"
done

# --- achieved TFLOP/s: model FLOPs of a stage's layers / mean compute-op time ---------------
# per layer, T = b s tokens: F = 8Th^2 + 4Thf + 4Tsh, B = F + 4Tsh, W = 8Th^2 + 4Thf
for run in "$zb" "$f1"; do
    sqlite3 -separator ' ' "$db" "select kind, count(*), avg(end_ns - start_ns) from ops
        where run_id = $run and stream = 'compute' group by kind" |
    awk -v run="$run" -v peak="$peak" -v dry="$dry" '
        BEGIN { h = 2048; s = 2048; f = 4 * h; T = s; L = 4; k = 4
                if (dry == 1) { h = 32; s = 32; f = 4 * h; T = s }
                lin = 8 * T * h * h + 4 * T * h * f; att = 4 * T * s * h
                fl["F"] = L * (lin + att); fl["B"] = L * (lin + 2 * att); fl["W"] = L * lin
                fl["BW"] = fl["B"] + fl["W"] }
        { t = fl[$1] / $3 / 1e3  # TFLOP/s of one device (a 1/k SM partition)
          printf "run %s %-2s %5d ops, mean %9.3f ms, %7.1f TFLOP/s per device, x%d = %7.1f TFLOP/s = %5.1f %% of the GPU peak\n",
                 run, $1, $2, $3 / 1e6, t, k, k * t, 100 * k * t / peak }'
done >"$out/tflops.txt" 2>&1
cat "$out/tflops.txt" | tee -a "$out/summary.txt" >&2

# --- traces and metrics --------------------------------------------------------------------
bin/pexport --db "$db" --chrome "$zb" "$pz" >"$out/zbh1.trace.json" 2>>"$out/summary.txt"
bin/pexport --db "$db" --chrome "$f1" "$p1" >"$out/1f1b.trace.json" 2>>"$out/summary.txt"
for run in "$zb" "$f1"; do
    bin/pexport --db "$db" --metrics-csv "$run" >"$out/metrics-$run.csv"
    bin/pexport --db "$db" --env-csv "$run" >"$out/env-$run.csv" # versions, GPU, NCCL_*, CUDA_*
done
say "versions and partitioning: $(grep -h '^pexec: CUDA' "$out"/pexec_*.txt | head -n 1)"
for run in "$zb" "$f1"; do
    say "run $run: $(sqlite3 "$db" "select group_concat(name || '=' || value, ' ') from metrics where run_id = $run and (name like '%version%' or name in ('gpus', 'devices_per_gpu', 'gpu_partition', 'sms_per_device', 'makespan_ms', 'bubble_rate'))")"
    say "run $run ran on (variables in env-$run.csv): $(sqlite3 "$db" "select group_concat(name || '=' || value, '; ') from run_env where run_id = $run and name glob '[a-z]*'")"
done
say "done: exit $status; everything is in $out"
exit "$status"
