#!/bin/sh
# tests/bench_callgrind.sh [BENCH]: instructions per simulated compute op, counted by valgrind's
# callgrind (repeatable on a loaded machine, unlike wall time), for the cases of `make bench`:
# engine_run (the mean of bench_engine's fresh and warm runs), program_check and the schedule's
# build. BENCH defaults to build/bench_engine (`make build/bench_engine`). Needs valgrind.
bench=${1:-build/bench_engine}
command -v valgrind >/dev/null || { echo "bench_callgrind.sh needs valgrind" >&2; exit 1; }
[ -x "$bench" ] || { echo "bench_callgrind.sh: no $bench; run make build/bench_engine" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out" "$out.txt"' EXIT
printf '# %-22s %8s %10s %10s %10s\n' "schedule p v m" ops engine_Ir check_Ir build_Ir
for c in "1f1b 8 1 64" "gpipe 8 1 64" "interleaved 64 4 1024" "zb-h1 32 1 256" \
         "zb-h2 32 1 256" "zb-v 32 2 256" "interleaved 4 4 32" "interleaved 8 4 128" \
         "interleaved 16 4 256" "interleaved 32 4 512"; do
    # shellcheck disable=SC2086 # the case is four words on purpose
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bench" $c >"$out.txt" 2>/dev/null ||
        { echo "bench_callgrind.sh: $bench $c failed" >&2; exit 1; }
    ops=$(tail -n 1 "$out.txt" | awk '{print $5}')
    callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null |
        awk -v ops="$ops" -v c="$c" '
            / => / { next }  # call sites; the function lines name the binary in brackets
            /sim\/engine\.c:engine_run \[/ { gsub(",", "", $1); e = $1 }
            /sim\/program\.c:program_check \[/ { gsub(",", "", $1); k = $1 }
            /sched_[a-z0-9]*\.c:[a-z0-9_]*_build \[/ { gsub(",", "", $1); if ($1 + 0 > b) b = $1 }
            END { printf "%-24s %8d %10.0f %10.0f %10.0f\n", c, ops, e / 2 / ops, k / ops, b / ops }'
done
