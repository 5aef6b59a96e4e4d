# tests/cli_trace.sh, sourced by cli_test.sh: pexport's Chrome trace as Perfetto reads it, for
# every schedule psim lists (and data, tensor and ZeRO runs): valid JSON, processes from 1,
# every slice on a named thread and no two slices of one thread overlapping, each flow's two
# ends inside slices of their threads, a fused pair once, collectives named as such, a memory
# counter sample per stored one.
pexport="$(dirname "$psim")/pexport"
tdb="$tmp/trace.db"
rm -f "$tdb"
# trace_settings SCHEDULE: what a schedule needs on gpt13b (40 layers, p = 8), as plots/schedules.sh
trace_settings() {
    case $1 in
    interleaved) echo "--set pipeline.chunks=5" ;;
    zb-v | dualpipev) echo "--set pipeline.chunks=2 --set pipeline.partition=3,2,3,2,3,2,3,2,3,2,3,2,3,2,3,2" ;;
    dualpipe) echo "--set pipeline.chunks=2" ;;
    pipedream | pipedream-2bw) echo "--set batch.iterations=4" ;;
    zb-exact) echo "--set pipeline.stages=4 --set batch.micro_batches=6" ;; # small enough to prove
    *) echo "" ;;
    esac
}
# check_trace NAME RUN: the checks on run RUN of $tdb
check_trace() {
    $pexport --db "$tdb" --chrome "$2" >"$tmp/t.json" 2>"$tmp/terr" || { nok "trace of $1: pexport failed" "$(head -c 300 "$tmp/terr")"; return; }
    ev="json_each(json_extract(readfile('$tmp/t.json'), '\$.traceEvents'))"
    got=$(sqlite3 :memory: "with e as (select json_extract(value, '\$.ph') ph, json_extract(value, '\$.pid') pid,
            json_extract(value, '\$.tid') tid, cast(round(json_extract(value, '\$.ts') * 1000) as integer) t,
            cast(round(json_extract(value, '\$.dur') * 1000) as integer) d, json_extract(value, '\$.name') name,
            json_extract(value, '\$.id') id, json_extract(value, '\$.cat') cat from $ev),
        x as (select * from e where ph = 'X'),
        o as (select t, lag(t + d) over (partition by pid, tid order by t, d) prev from x),
        fl as (select * from e where ph in ('s', 'f'))
        select json_valid(readfile('$tmp/t.json')),
          (select min(pid) from e),
          (select count(*) from o where prev is not null and t < prev),
          (select count(*) from x where not exists (select 1 from e m where m.ph = 'M' and m.name = 'thread_name' and m.pid = x.pid and m.tid = x.tid)),
          (select count(*) from fl where not exists (select 1 from x where x.pid = fl.pid and x.tid = fl.tid and fl.t >= x.t and fl.t <= x.t + x.d)),
          (select count(*) from (select id from fl group by id having group_concat(ph, '') != 'sf')),
          (select count(*) from x where cat = 'compute'),
          (select count(*) from x where cat in ('allreduce', 'reduce_scatter', 'all_gather') and name not like (replace(cat, '_', '-') || ' chunk %') and name not like 'all-reduce chunk %'),
          (select count(*) from e where ph = 'C')" 2>&1)
    want=$(sqlite3 "$tdb" "select (select count(*) from ops where run_id = $2 and stream = 'compute')
            - (select count(*) from (select 1 from ops where run_id = $2 and stream = 'compute'
               group by device, start_ns, end_ns having count(*) = 2)),
          (select count(*) from memory where run_id = $2)")
    set -- "$1" "$got" "$(echo "$want" | cut -d'|' -f1)" "$(echo "$want" | cut -d'|' -f2)"
    [ "$2" = "1|1|0|0|0|0|$3|0|$4" ] && ok "trace of $1: processes from 1, no overlapping slices on a thread, flows bound, $3 compute slices (fused pairs once), $4 memory samples" \
        || nok "trace of $1: Perfetto's nesting" "got  $2" "want 1|1|0|0|0|0|$3|0|$4 (valid, min pid, overlaps, unnamed threads, unbound flows, unpaired flows, compute slices, misnamed collectives, counters)"
}
run=0
for s in $("$psim" --help | sed -n "s/^ *schedules: *//p" | tr ',' ' '); do
    [ "$s" = custom ] && continue
    # shellcheck disable=SC2046
    if $psim --db "$tdb" --quiet --set pipeline.schedule=$s $(trace_settings "$s") scenarios/gpt13b.scn 2>"$tmp/terr"; then
        run=$((run + 1)); check_trace "$s" "$run"
    elif $psim --db "$tdb" --quiet --set pipeline.schedule=$s --set pipeline.chunks=2 --set pipeline.partition=balanced scenarios/gpt13b.scn 2>/dev/null; then
        run=$((run + 1)); check_trace "$s (v = 2, balanced)" "$run"
    else
        nok "trace of $s: psim ran it with neither the default nor v = 2" "$(head -c 300 "$tmp/terr")"
    fi
done
for sets in "--set parallel.data=2" "--set parallel.data=2 --set parallel.zero=1" "--set parallel.data=2 --set parallel.zero=3" \
            "--set parallel.tensor=2 --set parallel.sequence=true"; do
    # shellcheck disable=SC2086
    $psim --db "$tdb" --quiet $sets scenarios/gpt13b.scn && run=$((run + 1)) && check_trace "1f1b $sets" "$run"
done
# pexec's measured rows: a run and its prediction as two processes of one file
$pexec --db "$tdb" --quiet scenarios/tiny-1f1b.scn && $psim --db "$tdb" --quiet scenarios/tiny-1f1b.scn
run=$((run + 2))
check_trace "pexec's measured 1f1b" $((run - 1))
$pexport --db "$tdb" --chrome "$run" $((run - 1)) >"$tmp/t2.json"
got=$(sqlite3 :memory: "select group_concat(json_extract(value, '\$.args.name'), '|') from json_each(json_extract(readfile('$tmp/t2.json'), '\$.traceEvents'))
    where json_extract(value, '\$.name') = 'process_name'")
[ "$got" = "run $run psim 1f1b (predicted)|run $((run - 1)) pexec 1f1b (measured)" ] \
    && ok "predicted and measured are processes 1 and 2 of one trace, named so" || nok "predicted and measured are two processes of one trace" "$got"
