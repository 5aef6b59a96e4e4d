#!/bin/sh
# plots/schedules.sh [SCENARIO] [PSIM]: every built-in schedule on one scenario (default
# scenarios/gpt13b.scn), side by side as a Markdown table: iteration time, bubble rate, MFU and
# peak memory of the fullest and the emptiest device. Schedules that need other settings get
# them with --set (shown in the table); a schedule the scenario cannot run is listed with
# psim's reason. Nothing is stored (--no-db).
set -u
scn=${1:-scenarios/gpt13b.scn}
psim=${2:-bin/psim}
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT

# the --set arguments each schedule needs on gpt13b (40 layers, p = 8)
settings() {
    case $1 in
    interleaved) echo "pipeline.chunks=5" ;;
    zb-v | dualpipev)
        # 16 V-shape stages over 40 layers: 3,2,3,2,... puts 5 layers on every device
        echo "pipeline.chunks=2 pipeline.partition=3,2,3,2,3,2,3,2,3,2,3,2,3,2,3,2" ;;
    dualpipe) echo "pipeline.chunks=2" ;;
    pipedream | pipedream-2bw) echo "batch.iterations=4" ;;
    zb-exact) echo "pipeline.stages=4 batch.micro_batches=6" ;; # p = 8, m = 32 is past its reach
    *) echo "" ;;
    esac
}

# num KEY: the first number after "KEY": in the JSON output.
num() { sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p" "$tmp" | head -n 1; }

echo "| schedule | settings | iteration (ms) | bubble rate | MFU | peak memory, max / min device (GiB) |"
echo "|---|---|---:|---:|---:|---:|"
for s in $("$psim" --help | sed -n "s/^ *schedules: *//p" | tr ',' ' '); do
    [ "$s" = custom ] && continue
    sets="--set pipeline.schedule=$s"
    extra=$(settings "$s")
    for x in $extra; do sets="$sets --set $x"; done
    # shellcheck disable=SC2086
    if ! "$psim" --no-db --json $sets "$scn" >"$tmp" 2>"$tmp.err"; then
        echo "| $s | $extra | – | – | – | $(head -n 1 "$tmp.err" | sed 's/|/\\|/g') |"
        continue
    fi
    peaks=$(sed -n 's/.*"peak_memory_gib": \([-0-9.e+]*\).*/\1/p' "$tmp" |
        awk 'NR == 1 || $1 > hi { hi = $1 } NR == 1 || $1 < lo { lo = $1 }
             END { printf "%.1f / %.1f", hi, lo }')
    awk -v s="$s" -v x="$extra" -v it="$(num iteration_ms)" -v b="$(num bubble_rate)" \
        -v mfu="$(num mfu)" -v pk="$peaks" \
        'BEGIN { printf "| %s | %s | %.1f | %.1f %% | %.1f %% | %s |\n", s, x, it, 100 * b, 100 * mfu, pk }'
done
rm -f "$tmp.err"
