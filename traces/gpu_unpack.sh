#!/bin/sh
# traces/gpu_unpack.sh ARCHIVE [ROOT]: files a device session's archive (gpu_validate.sh's
# OUT/gpu_validate.tar.gz) under ROOT (default traces/gpu) as <UTC date>-<gpu>/, e.g.
# traces/gpu/20261203-nvidia-h200/, taking the date and GPU from its versions.txt, which it
# prints. Later work compares against the stored runs (gpu.db) without a GPU. Exit 2 for a
# missing or malformed archive, 1 when the directory exists already.
set -u
[ $# -ge 1 ] && [ -f "$1" ] || { echo "usage: gpu_unpack.sh ARCHIVE [ROOT]" >&2; exit 2; }
root=${2:-traces/gpu}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$1" -C "$tmp" 2>/dev/null || { echo "gpu_unpack: $1: not a gzip tar archive" >&2; exit 2; }
v="$tmp/gpu_validate/versions.txt"
[ -f "$v" ] || { echo "gpu_unpack: $1: no gpu_validate/versions.txt in it" >&2; exit 2; }
date=$(sed -n 's/^date: \([0-9]\{8\}\).*/\1/p' "$v")
gpu=$(sed -n 's/^gpu: //p' "$v" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-*//; s/-*$//')
[ -n "$date" ] && [ -n "$gpu" ] || { echo "gpu_unpack: $v: no date or gpu line" >&2; exit 2; }
dest="$root/$date-$gpu"
[ -e "$dest" ] && { echo "gpu_unpack: $dest exists; move it away first" >&2; exit 1; }
mkdir -p "$root" && mv "$tmp/gpu_validate" "$dest" || exit 1
cat "$dest/versions.txt"
echo "gpu_unpack: $dest" >&2
