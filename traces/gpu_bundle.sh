#!/bin/sh
# traces/gpu_bundle.sh [DIR]: prepares, here, everything traces/gpu_validate.sh runs on the
# bare device machine (which builds nothing and has no libinih, SQLite, cmocka, OpenBLAS or
# jansson): the tools, the GPU test binaries, bench_cuda and the sqlite3 shell into DIR
# (default build/gpu-bundle), with every shared library they need that is not the C/C++
# runtime, the driver or the CUDA toolkit (cudart, cuBLAS, NCCL come from the device's
# /usr/local/cuda: cuBLAS alone is over the 64 MiB a call may carry). Fails when the bundle
# is over GPU_BUNDLE_MAX_MIB (default 60; the carry limit is 64) or when pexec has no CUDA
# backend (it makes, in build/gpu/, a pexec without MPI and the GPU tests: needs nvcc). Then, on the device: run with carry ["build/gpu-bundle"] and the command
#   sh traces/gpu_validate.sh "$OUT"
# GPU_VALIDATE_DRY=1: bundles the CUDA stand-in's test binaries instead (pexec_standin as
# pexec, test_cuda_standin), so the whole path dry-runs here without nvcc or a GPU.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
dir=${1:-build/gpu-bundle}
dry=${GPU_VALIDATE_DRY:-0}
max=${GPU_BUNDLE_MAX_MIB:-60}
die() { echo "gpu_bundle: $*" >&2; exit 1; }

rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/tests" "$dir/lib" || die "cannot create $dir"
for t in psim pcalibrate pcompare pexport; do
    [ -x "bin/$t" ] || die "bin/$t is missing: run make first"
    cp "bin/$t" "$dir/bin/"
done
if [ "$dry" = 1 ]; then
    for f in build/tests/pexec_standin build/tests/test_cuda_standin; do
        [ -x "$f" ] || die "$f is missing: run make build/tests/pexec_standin build/tests/test_cuda_standin"
    done
    cp build/tests/pexec_standin "$dir/bin/pexec"
    cp build/tests/test_cuda_standin "$dir/tests/test_cuda"
else
    # Its own build tree (make does not track flags: build/ may hold objects made without
    # nvcc): pexec without MPI (bin/pexec under mpicc needs Open MPI's plugins, absent there),
    # with CUDA, and the GPU tests.
    g=${GPU_BUNDLE_BUILD:-build/gpu}
    make -s -j2 MPICC= BUILD="$g" BIN="$g/bin" "$g/bin/pexec" "$g/tests/test_cuda" \
        "$g/tests/test_issue_order" "$g/bench_cuda" >&2 || die "make failed"
    ldd "$g/bin/pexec" | grep -q libcudart || die "pexec has no CUDA backend (nvcc not found?)"
    cp "$g/bin/pexec" "$g/bench_cuda" "$dir/bin/"
    cp "$g/tests/test_cuda" "$g/tests/test_issue_order" "$dir/tests/"
fi
sq=$(command -v sqlite3) || die "no sqlite3 shell here to carry (apt-get install sqlite3)"
cp "$sq" "$dir/bin/sqlite3"

# The libraries: what ldd resolves, less the base system's and the toolkit's and driver's.
for f in "$dir"/bin/* "$dir"/tests/*; do ldd "$f"; done | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' |
    sort -u | while read -r name path; do
    case "$name" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libgcc_s.so*|libstdc++.so*) continue ;;
    libcuda.so*|libnvidia*|libcudart.so*|libcublas*|libnccl.so*) continue ;;
    esac
    case "$path" in /usr/local/cuda*) continue ;; esac
    cp -L "$path" "$dir/lib/$name" || die "cannot copy $path"
done
mib=$(du -sm "$dir" | cut -f1)
[ "$mib" -le "$max" ] || die "$dir is $mib MiB, over $max MiB (the device's carry limit is 64)"
{
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+dirty')"
    echo "dry $dry; $mib MiB"
    ls -l "$dir/bin" "$dir/tests" "$dir/lib" | awk 'NF > 5 { print $5, $NF }'
} >"$dir/MANIFEST"
echo "gpu_bundle: $dir: $mib MiB ($(ls "$dir/lib" | wc -l) libraries); on the device: carry [\"$dir\"], run: sh traces/gpu_validate.sh \"\$OUT\"" >&2
