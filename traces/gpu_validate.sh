#!/bin/sh
# traces/gpu_validate.sh [OUT]: the GPU session's one command, run on the device machine from
# the bundle traces/gpu_bundle.sh prepared here (GPU_BUNDLE, default build/gpu-bundle, carried
# with the call): it builds nothing. Within GPU_VALIDATE_BUDGET seconds (default 450, under
# the 8 minutes a session can spend):
#   1. the GPU unit tests (the CUDA layer against the CPU twin on non-zero data, the
#      pipelines, the watchdog) and bench_cuda: bf16 GEMM and layer TFLOP/s on the whole GPU;
#   2. one 16-layer 2048-wide GPT on 2 and on 4 SM partitions of the GPU
#      (hardware.devices_per_gpu = stages), each as 1F1B, ZB-H1 and interleaved (2 chunks):
#      six pexec --backend cuda runs in OUT's gpu.db;
#   3. psim calibrated on one of them (ZB-H1 on 4 partitions: F, B and W apart) predicts all
#      six, and pcompare compares each prediction with its measurement;
#   4. achieved TFLOP/s per device against its partition's share of the peak, Chrome traces,
#      versions, nvidia-smi, the NCCL environment;
# and packs all of it into OUT/gpu_validate.tar.gz (one file, as the device returns few),
# which traces/gpu_unpack.sh files under traces/gpu/<date>-<gpu>/. A run that fails with
# green contexts is tried once with plain streams; the retry is said in the summary and
# the exit status stays non-zero. Exit status 0 only when every step succeeded the first
# time; an early stop exits with the failing step's status (1 if it had none).
# GPU_VALIDATE_DRY=1: the same steps on the CUDA stand-in (a bundle made with
# GPU_VALIDATE_DRY=1) at 1/64 of the widths, no GPU: the CLI tests run it end to end.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
dry=${GPU_VALIDATE_DRY:-0}
bundle=${GPU_BUNDLE:-build/gpu-bundle}
out=${1:-${OUT:-traces/gpu-$(date -u +%Y%m%dT%H%M%SZ)}}
w="$out/gpu_validate" # packed at the end
rm -rf "$w" "$out/gpu_validate.tar.gz"
mkdir -p "$w" || exit 1
db="$w/gpu.db"
status=0
started=$(date +%s)
budget=${GPU_VALIDATE_BUDGET:-450}

say() { echo "gpu_validate: $*" | tee -a "$w/summary.txt" >&2; }
fail() { [ "$status" -eq 0 ] && status=${1:-1}; }
pack() {
    [ -f "$db" ] && "$B/sqlite3" "$db" "pragma wal_checkpoint(truncate)" >/dev/null 2>&1
    say "done: exit $status in $(( $(date +%s) - started )) s"
    tar -czf "$out/gpu_validate.tar.gz" -C "$out" gpu_validate && rm -rf "$w"
    echo "gpu_validate: $out/gpu_validate.tar.gz ($(du -k "$out/gpu_validate.tar.gz" | cut -f1) KiB)" >&2
    exit "$status"
}

B="$bundle/bin"
[ -x "$bundle/bin/pexec" ] || { say "no bundle at $bundle: run traces/gpu_bundle.sh here first"; status=2; pack; }
cuda=${CUDA_HOME:-/usr/local/cuda}
# the bundle's libraries, then the toolkit's (NCCL and cuBLAS live there, not on the loader's path)
case "$bundle" in /*) lib="$bundle/lib" ;; *) lib="$here/$bundle/lib" ;; esac
LD_LIBRARY_PATH="$lib:$cuda/lib64:$cuda/lib:$cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
# CUDA_DEVICE_MAX_CONNECTIONS: pexec raises it to its streams per GPU unless set here

# step NAME SECONDS CMD...: CMD with a time limit (cut to what is left of the budget), its
# output in NAME.txt; a non-zero exit is the run's status unless one came before.
step() { # (sh has no locals: its variables are s_*)
    s_name=$1 s_limit=$2
    shift 2
    s_left=$((budget - ($(date +%s) - started)))
    if [ "$s_left" -lt 5 ]; then
        say "$s_name: skipped, the ${budget} s budget is spent"
        fail 124
        return 124
    fi
    [ "$s_limit" -gt "$s_left" ] && s_limit=$s_left
    s_t0=$(date +%s)
    timeout "$s_limit" "$@" >"$w/$s_name.txt" 2>&1
    s_rc=$?
    say "$s_name: exit $s_rc in $(( $(date +%s) - s_t0 )) s"
    return "$s_rc"
}

# --- the machine and the versions ------------------------------------------------------------
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
[ "$dry" = 1 ] && gpu_name="CUDA stand-in (dry run)"
{
    echo "date: $(date -u +%Y%m%dT%H%M%SZ)"
    echo "gpu: ${gpu_name:-none}"
    echo "bundle: $(head -n 1 "$bundle/MANIFEST" 2>/dev/null)"
    echo "driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
    echo "nvcc: $("$cuda/bin/nvcc" --version 2>/dev/null | tail -n 1)"
    echo "nccl.h: $(grep -h 'define NCCL_VERSION_CODE' "$cuda/include/nccl.h" 2>/dev/null)"
    echo "uname: $(uname -srm)"
} >"$w/versions.txt"
{ nvidia-smi 2>&1; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1; } >"$w/nvidia-smi.txt"
env | grep -E '^(NCCL|CUDA)_' | sort >"$w/env.txt"
case "$gpu_name" in *H200*) preset=h200 ;; *) preset=h100 ;; esac
peak=989 # dense bf16 TFLOP/s of an H100/H200 SXM (psim's presets)
say "GPU: ${gpu_name:-none}; psim preset $preset, peak $peak TFLOP/s"
if [ "$dry" != 1 ] && [ -z "$gpu_name" ]; then say "no GPU visible (nvidia-smi)"; fail 1; pack; fi

# --- 1. correctness and GEMM throughput ------------------------------------------------------
step test_cuda 120 "$bundle/tests/test_cuda" || fail $?
grep -q "SKIPPED" "$w/test_cuda.txt" && { say "GPU tests SKIPPED: $(grep -m1 '# skip' "$w/test_cuda.txt")"; fail 1; }
if [ "$dry" != 1 ]; then
    step test_issue_order 30 "$bundle/tests/test_issue_order" || fail $?
    step bench_cuda 90 "$B/bench_cuda" 1 2048 2048 16 8192 "$peak" || fail $?
    grep "(pass)" "$w/bench_cuda.txt" | sed 's/^/layer /' | tee -a "$w/summary.txt" >&2
fi

# --- 2. the scenario on 2 and 4 partitions, three schedules ----------------------------------
scale="" iters=3
[ "$dry" = 1 ] && scale="--scale 64" iters=2
scn="$w/gpt-2048x16.scn"
cat >"$scn" <<SCN
; written by traces/gpu_validate.sh: GPT-style 16 x 2048 (16 heads, 2048 tokens), pipeline
; devices sharing one GPU as SM partitions (stages = devices_per_gpu), 16 micro-batches.
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

# measure NAME P SCHED CHUNKS: a pexec run, its id appended to runs.txt as "NAME ID"
measure() {
    name=$1 p=$2 sched=$3 v=$4
    set -- --set pipeline.stages="$p" --set hardware.devices_per_gpu="$p" \
        --set pipeline.schedule="$sched" --set pipeline.chunks="$v"
    if step "pexec_$name" 150 "$B/pexec" --backend cuda $scale --db "$db" --watchdog 60 "$@" "$scn"; then
        id=$(sed -n 's/^pexec: stored run \([0-9]*\) in .*/\1/p' "$w/pexec_$name.txt" | tail -n 1)
    else
        rc=$?
        fail "$rc"
        say "pexec_$name failed: $(grep -v '^#' "$w/pexec_$name.txt" | tail -n 2 | tr '\n' ' ')"
        [ "$dry" = 1 ] && return 1
        say "pexec_$name: retrying with plain streams (PEXEC_CUDA_PARTITION=streams); exit status stays $status"
        PEXEC_CUDA_PARTITION=streams step "pexec_$name-streams" 150 "$B/pexec" --backend cuda \
            --db "$db" --watchdog 60 "$@" "$scn" || return 1
        id=$(sed -n 's/^pexec: stored run \([0-9]*\) in .*/\1/p' "$w/pexec_$name-streams.txt" | tail -n 1)
        name="$name-streams"
    fi
    [ -n "$id" ] && echo "$name $id $p $sched $v" >>"$w/runs.txt"
}
: >"$w/runs.txt"
for p in 4 2; do
    measure "zbh1-p$p" "$p" zb-h1 1
    measure "1f1b-p$p" "$p" 1f1b 1
    measure "interleaved-p$p" "$p" interleaved 2
done
n=$(wc -l <"$w/runs.txt")
say "stored $n of 6 measured runs: $(cut -d' ' -f1,2 "$w/runs.txt" | tr '\n' ' ')"
cal=$(awk '$1 ~ /^zbh1-p4/ { print $2; exit }' "$w/runs.txt")
if [ -z "$cal" ]; then say "no ZB-H1 run on 4 partitions to calibrate on; stopping"; fail 1; pack; fi

# --- 3. calibrate on ZB-H1 x 4, predict every run, compare -----------------------------------
# The CUDA backend times ops, not kernels: pcalibrate --stages gives each of the 4 stages'
# F, B and W times. restage P V writes them for P devices x V chunks: the mean time per layer
# times the layers of a stage (16 / (P V)), times P/4 for a partition of 1/P of the SMs
# instead of 1/4 (the prediction's one assumption: a layer's time scales with its SM share).
step calibrate 30 "$B/pcalibrate" --db "$db" --stages "$cal" || { fail $?; pack; }
cp "$w/calibrate.txt" "$w/calibrated.scn"
restage() {
    awk -v n=$(($1 * $2)) -v p="$1" '
        /^stage_(forward|backward|weight)_ms *=/ {
            split($0, kv, "="); k = kv[1]; gsub(/ /, "", k); m = split(kv[2], t, ",")
            sum = 0; for (i = 1; i <= m; i++) sum += t[i]
            per = sum / 16 * (16 / n) * p / 4 # sum/16: per layer (4 stages x 4 layers)
            line = k " ="; for (i = 1; i <= n; i++) line = line (i > 1 ? "," : " ") per
            print line; next }
        { print }' "$w/calibrated.scn"
}
while read -r name id p sched v; do
    restage "$p" "$v" >"$w/predict-$name.scn"
    step "psim_$name" 30 "$B/psim" --db "$db" --quiet --set pipeline.stages="$p" \
        --set hardware.devices_per_gpu="$p" --set pipeline.schedule="$sched" \
        --set pipeline.chunks="$v" "$w/predict-$name.scn" || { fail $?; continue; }
    pid=$("$B/sqlite3" "$db" "select max(id) from runs where tool = 'psim'")
    step "compare_$name" 30 "$B/pcompare" --db "$db" --tolerance 1 "$pid" "$id"
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ] && fail "$rc" # 3: beyond the tolerance, reported
    echo "$name $id $pid" >>"$w/predicted.txt"
    say "$name (run $id, predicted $pid$([ "$id" = "$cal" ] && echo ', the calibration run')): $(grep -m1 -i makespan "$w/compare_$name.txt")"
done <"$w/runs.txt"

# --- 4. achieved TFLOP/s, traces, metrics ----------------------------------------------------
# per layer, T = b s tokens: F = 8Th^2 + 4Thf + 4Tsh, B = F + 4Tsh, W = 8Th^2 + 4Thf. A device
# is a 1/p partition of the GPU (green contexts; with streams p devices share it), so its
# TFLOP/s is set against peak/p, its share; the p devices do not all run at once (bubbles), so
# no sum over devices is reported as the GPU's.
while read -r name id p sched v; do
    "$B/sqlite3" -separator ' ' "$db" "select kind, count(*), avg(end_ns - start_ns) from ops
        where run_id = $id and stream = 'compute' group by kind" |
    awk -v name="$name" -v run="$id" -v peak="$peak" -v dry="$dry" -v p="$p" -v v="$v" '
        BEGIN { h = 2048; s = 2048; if (dry == 1) { h = 32; s = 32 }
                f = 4 * h; T = s; L = 16 / (p * v)
                lin = 8 * T * h * h + 4 * T * h * f; att = 4 * T * s * h
                fl["F"] = L * (lin + att); fl["B"] = L * (lin + 2 * att); fl["W"] = L * lin
                fl["BW"] = fl["B"] + fl["W"] }
        { t = fl[$1] / $3 / 1e3
          printf "%s run %s %-2s %5d ops, mean %9.3f ms, %8.2f TFLOP/s per device = %5.1f %% of its 1/%d share of the GPU peak\n",
                 name, run, $1, $2, $3 / 1e6, t, 100 * t / (peak / p), p }'
done <"$w/runs.txt" >"$w/tflops.txt" 2>&1
tee -a "$w/summary.txt" <"$w/tflops.txt" >&2
while read -r name id pid; do
    "$B/pexport" --db "$db" --chrome "$id" "$pid" >"$w/$name.trace.json" 2>>"$w/summary.txt"
    "$B/pexport" --db "$db" --metrics-csv "$id" >"$w/metrics-$name.csv" 2>>"$w/summary.txt"
    "$B/pexport" --db "$db" --env-csv "$id" >"$w/env-$name.csv" 2>>"$w/summary.txt"
done <"$w/predicted.txt"
say "partitioning: $(grep -h '^pexec: CUDA' "$w"/pexec_*.txt | sort -u | tr '\n' ' ')"
pack
