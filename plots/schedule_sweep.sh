#!/bin/sh
# plots/schedule_sweep.sh [--data-only] [SCENARIO] [OUT.png] [PSIM]: bubble rate and peak
# memory of every synchronous schedule against the number of micro-batches m (Qi et al.'s
# Figure-style comparison), from psim runs of SCENARIO (default scenarios/gpt13b.scn) at
# m = p, 2p, ... 8p; schedules that need two chunks run them on a V or interleaved. Writes OUT
# (default docs/<model>-schedules-m.png) and the data beside it (OUT with .dat: one block per
# schedule, columns m, bubble rate, peak GiB of the fullest device); --data-only writes the
# data and draws nothing (make docs --check hashes it). Nothing is stored (--no-db).
set -u
here=$(dirname "$0")
. "$here/lib.sh"
draw_png=1
[ "${1:-}" = --data-only ] && { draw_png=0; shift; }
scn=${1:-scenarios/gpt13b.scn}
psim=${3:-bin/psim}
json=$(mktemp) || exit 1
trap 'rm -f "$json" "$json.err"' EXIT
"$psim" --no-db --json "$scn" >"$json" 2>"$json.err" || { cat "$json.err" >&2; exit 2; }
num() { gp_num "$(sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p" "$json" | head -n 1)"; }
p=$(num devices)
name=$(safe_text "$(sed -n 's/.*"scenario": "\([^"]*\)".*/\1/p' "$json" | head -n 1)")
limit=$(num memory_gib)
out=${2:-docs/${name:-model}-schedules-m.png}
dat=${out%.png}.dat
is_uint "$p" && [ "$p" -ge 2 ] || die "$scn: schedule_sweep needs stages >= 2"

settings() { # the chunks each schedule runs (two: the layers balanced over 2p stages)
    case $1 in
    interleaved | zb-v | dualpipev) echo "--set pipeline.chunks=2 --set pipeline.partition=balanced" ;;
    *) echo "--set pipeline.chunks=1" ;;
    esac
}
: >"$dat" || fail "cannot write $dat"
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
            echo "$m $(num bubble_rate) $(gp_num "$peak")" >>"$dat"
        fi
    done
    printf '\n\n' >>"$dat"
done
[ "$draw_png" = 1 ] || { echo "$dat"; exit 0; }
title="$name, p = $p: bubble rate and peak memory against micro-batches"
gnuplot -e "fmt='png'; width=1200; height=520; out=$(gp_str "$out"); data=$(gp_str "$dat"); limit=$limit; title=$(gp_str "$title")" \
    "$here/style.gp" "$here/schedule_sweep.gp" || fail "gnuplot failed on schedule_sweep.gp"
echo "$out"
