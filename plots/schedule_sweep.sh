#!/bin/sh
# plots/schedule_sweep.sh [SCENARIO] [OUT.png] [PSIM]: bubble rate and peak memory of every
# synchronous schedule against the number of micro-batches m (Qi et al.'s Figure-style
# comparison), from psim runs of SCENARIO (default scenarios/gpt13b.scn) at m = p, 2p, ... 8p;
# schedules that need two chunks run them on a V or interleaved. Writes OUT (default
# docs/<model>-schedules-m.png) and the data beside it (OUT with .dat: one block per schedule,
# columns m, bubble rate, peak GiB of the fullest device). Nothing is stored (--no-db).
set -u
scn=${1:-scenarios/gpt13b.scn}
psim=${3:-bin/psim}
here=$(dirname "$0")
. "$here/safe.sh"
json=$(mktemp) || exit 1
trap 'rm -f "$json" "$json.err"' EXIT
"$psim" --no-db --json "$scn" >"$json" 2>"$json.err" || { cat "$json.err" >&2; exit 2; }
num() { sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p" "$json" | head -n 1; }
p=$(safe_number "$(num devices)")
name=$(safe_text "$(sed -n 's/.*"scenario": "\([^"]*\)".*/\1/p' "$json" | head -n 1)")
limit=$(safe_number "$(num memory_gib)")
out=${2:-docs/${name:-model}-schedules-m.png}
dat=${out%.png}.dat
safe_paths "$dat" "$out"
[ "$p" -ge 2 ] 2>/dev/null || { echo "schedule_sweep.sh: $scn: need stages >= 2" >&2; exit 2; }

settings() { # the chunks each schedule runs (two: the layers balanced over 2p stages)
    case $1 in
    interleaved | zb-v | dualpipev) echo "--set pipeline.chunks=2 --set pipeline.partition=balanced" ;;
    *) echo "--set pipeline.chunks=1" ;;
    esac
}
: >"$dat"
for s in 1f1b interleaved zb-h1 zb-h2 zb-1p zb-2p zb-auto zb-v dualpipev; do
    echo "# $s" >>"$dat"
    k=1
    while [ "$k" -le 8 ]; do
        m=$((k * p))
        k=$((k + 1))
        # shellcheck disable=SC2046
        if "$psim" --no-db --json --set pipeline.schedule="$s" $(settings "$s") \
            --set batch.micro_batches="$m" "$scn" >"$json" 2>"$json.err"; then
            peak=$(sed -n 's/.*"peak_memory_gib": \([-0-9.e+]*\).*/\1/p' "$json" |
                awk 'NR == 1 || $1 > hi { hi = $1 } END { print hi }')
            echo "$m $(num bubble_rate) $peak" >>"$dat"
        fi
    done
    printf '\n\n' >>"$dat"
done
gnuplot -e "data='$dat'; out='$out'; limit=${limit:-0}; title='$name, p = $p: bubble rate and peak memory against micro-batches'" \
    "$here/schedule_sweep.gp" || exit 1
echo "$out"
