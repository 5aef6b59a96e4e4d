#!/bin/sh
# plots/docs.sh [--check] [OUTDIR]: draws the README's figures (docs/*.png, `make docs`) from
# the shipped scenarios into OUTDIR (default docs), and writes OUTDIR/figures.txt: a line per
# figure, "NAME.png SHA256 predicted|measured", SHA256 the hash of the data it was drawn from.
# --check draws nothing: it recomputes the predicted figures' data (psim is deterministic) and
# exits 1 unless every hash matches docs/figures.txt, every listed PNG exists, and the README
# shows exactly the listed figures; the measured ones (pexec's timings) are only listed.
# Needs bin/ built (make), sqlite3 and gnuplot.
set -u
check=0
[ "${1:-}" = --check ] && { check=1; shift; }
out=${1:-docs}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
db=$tmp/docs.db scn=$root/scenarios/gpt13b.scn
fmt=png
[ "$check" = 1 ] && fmt=none
manifest=$tmp/figures.txt
: >"$manifest"
step() { "$@" >/dev/null 2>"$tmp/err" || { echo "docs.sh: $* failed:" >&2; cat "$tmp/err" >&2; exit 1; }; }
# fig KIND NAME FIGURE IDS...: draws NAME.png into $tmp/draw (then OUTDIR) and lists it
fig() {
    kind=$1 name=$2 figure=$3
    shift 3
    step "$bin/pplot" "$figure" --db "$db" --format "$fmt" --name "$name" "$tmp/draw" "$@"
    echo "$name.png $(sha256sum <"$tmp/draw/$name.dat" | cut -d' ' -f1) $kind" >>"$manifest"
}
psim() { step "$bin/psim" --db "$db" --quiet "$@"; }

# the main job's run: gpt13b on 8 H100s, 1F1B, m = 32 (run 1)
psim "$scn"
fig predicted gpt13b-timeline timeline 1
# schedules against m: four one-chunk schedules (sweep 1) and interleaved v = 2, 4 (sweep 2),
# both under partition = balanced (40 layers do not split into 16 or 32 chunks evenly)
psim --set pipeline.partition=balanced --sweep batch.micro_batches=8,16,32,64,128 \
    --sweep pipeline.schedule=gpipe,1f1b,zb-h1,zb-h2 "$scn"
psim --set pipeline.partition=balanced --set pipeline.schedule=interleaved \
    --sweep batch.micro_batches=8,16,32,64,128 --sweep pipeline.chunks=2,4 "$scn"
fig predicted gpt13b-bubble bubble 1 2
fig predicted gpt13b-throughput throughput 1 2
fig predicted gpt13b-peak peak 1 2
fig predicted gpt13b-breakdown breakdown 1 2
# ZB-H2's memory at m = 32 (uniform partition, as the README's table)
psim --set pipeline.schedule=zb-h2 "$scn"
run=$(sqlite3 -readonly "$db" "select max(id) from runs")
fig predicted gpt13b-memory memory "$run"
# DualPipe's fused F&B pairs
psim --set pipeline.schedule=dualpipe --set pipeline.chunks=2 "$scn"
run=$(sqlite3 -readonly "$db" "select max(id) from runs")
fig predicted gpt13b-dualpipe-timeline timeline "$run"
# scaling: data parallelism 1 to 8 (8 to 64 GPUs), 1F1B and ZB-H1 (sweep 3)
psim --sweep parallel.data=1,2,4,8 --sweep pipeline.schedule=1f1b,zb-h1 "$scn"
fig predicted gpt13b-scaling scaling 3
# one DualPipe F&B pair of DeepSeek-V3 on device 3: each micro-batch's all-to-alls (expert
# stream) beside the other's computation; the window is the 21st fused pair there, 2 ms around
psim "$root/scenarios/deepseek-v3.scn"
run=$(sqlite3 -readonly "$db" "select max(id) from runs")
win=$(sqlite3 -readonly -separator ' ' "$db" "select (a.start_ns - 2000000) / 1e6, (a.end_ns + 2000000) / 1e6
    from ops a join ops b on b.run_id = a.run_id and b.device = a.device and b.stream = 'compute'
    and b.start_ns = a.start_ns and b.end_ns = a.end_ns and b.kind != 'F'
    where a.run_id = $run and a.device = 3 and a.stream = 'compute' and a.kind = 'F'
    order by a.start_ns limit 1 offset 20")
set -- $win
fig predicted deepseek-v3-dualpipe-pair timeline "$run" --devices 3 --from-ms "$1" --to-ms "$2" --size 1000,250
# every synchronous schedule's bubble and peak memory against m (its own script, no store)
if [ "$check" = 1 ]; then
    step sh "$root/plots/schedule_sweep.sh" --data-only "$scn" "$tmp/draw/gpt13b-schedules-m.png" "$bin/psim"
else
    step sh "$root/plots/schedule_sweep.sh" "$scn" "$tmp/draw/gpt13b-schedules-m.png" "$bin/psim"
fi
echo "gpt13b-schedules-m.png $(sha256sum <"$tmp/draw/gpt13b-schedules-m.dat" | cut -d' ' -f1) predicted" >>"$manifest"
# measured: tiny-cpu calibrated on 1F1B, predicted and measured with ZB-H1
if [ "$check" = 0 ]; then
    cpu=$root/scenarios/tiny-cpu.scn
    step "$bin/pexec" --db "$db" --quiet "$cpu"
    one=$(sqlite3 -readonly "$db" "select max(id) from runs")
    "$bin/pcalibrate" --db "$db" "$one" >"$tmp/cal.scn" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
    psim --set pipeline.schedule=zb-h1 "$tmp/cal.scn"
    pred=$(sqlite3 -readonly "$db" "select max(id) from runs")
    step "$bin/pexec" --db "$db" --quiet --set pipeline.schedule=zb-h1 "$cpu"
    fig measured tiny-cpu-split split "$pred" $((pred + 1))
else
    grep ' measured$' "$root/docs/figures.txt" >>"$manifest"
fi

if [ "$check" = 0 ]; then
    mkdir -p "$out" && cp "$tmp"/draw/*.png "$out/" && cp "$manifest" "$out/figures.txt" || exit 1
    echo "docs.sh: drew $(wc -l <"$manifest") figures into $out (figures.txt lists them)" >&2
    exit 0
fi
bad=0
cmp -s "$manifest" "$root/docs/figures.txt" || {
    echo "docs.sh: docs/ is not what make docs draws now (run make docs):" >&2
    diff "$root/docs/figures.txt" "$manifest" >&2
    bad=1
}
for f in $(cut -d' ' -f1 "$manifest"); do
    [ -s "$root/docs/$f" ] || { echo "docs.sh: docs/$f is missing" >&2; bad=1; }
done
sed -n 's/.*](docs\/\([^)]*\.png\)).*/\1/p' "$root/README.md" | sort -u >"$tmp/readme"
cut -d' ' -f1 "$manifest" | sort -u >"$tmp/listed"
cmp -s "$tmp/readme" "$tmp/listed" || {
    echo "docs.sh: the README shows other figures than make docs draws:" >&2
    diff "$tmp/listed" "$tmp/readme" >&2
    bad=1
}
ls "$root/docs" | grep '\.png$' | sort >"$tmp/present"
cmp -s "$tmp/present" "$tmp/listed" || {
    echo "docs.sh: docs/ holds PNGs that make docs does not draw:" >&2
    diff "$tmp/listed" "$tmp/present" >&2
    bad=1
}
[ "$bad" = 0 ] && echo "docs.sh: the README's $(wc -l <"$tmp/listed") figures are the ones make docs draws" >&2
exit "$bad"
