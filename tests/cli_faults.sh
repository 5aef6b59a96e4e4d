# tests/cli_faults.sh: sourced by cli_test.sh (its psim, tmp, ok, nok, expect, sql): pexec runs
# that fail while they run (a device that dies, a message that never comes) end with exit 1 and
# a message naming the device or rank, and are stored as failed with the rows measured until
# then; every reader tells a failed run from a complete one.
pexec="$(dirname "$psim")/pexec"
pcompare="$(dirname "$psim")/pcompare"
pcalibrate="$(dirname "$psim")/pcalibrate"
pexport="$(dirname "$psim")/pexport"
db="$tmp/failed.db"

# --- threads: a device that dies after 2 ops (1F1B p = 2 m = 4: device 1 runs F0 BW0) ----------
$psim --db "$db" --quiet --set pipeline.stages=2 scenarios/tiny-1f1b.scn # run 1, complete
expect "a killed device ends the run naming it (exit 1, host)" 1 \
    "host [^:]+: device 0 op [0-9]+ \([A-Z]+ mb [0-9]+ chunk 0\) waited 0.3 s for its gradient from device 1 \(watchdog\); device 1 never sent it" \
    $pexec --db "$db" --kill-after 1:2 --watchdog 0.3 --set pipeline.stages=2 --set batch.micro_batches=4 scenarios/tiny-1f1b.scn
got=$(sql "$db" "select status, (select count(*) from ops where run_id = 2 and device = 1 and stream = 'compute'),
    (select count(*) from metrics where run_id = 2), (select count(*) from memory where run_id = 2) from runs where id = 2")
[ "$got" = "failed|2|0|0" ] && ok "the failed run keeps device 1's 2 ops, no metrics or memory" || nok "the failed run keeps device 1's 2 ops, no metrics or memory" "$got"
n=$(sed -n 's/.*stored run 2 in .* as failed, with the \([0-9]*\) rows.*/\1/p' "$tmp/err")
[ -n "$n" ] && [ "$n" = "$(sql "$db" 'select count(*) from ops where run_id = 2')" ] \
    && ok "every row pexec reported is stored ($n)" || nok "every row pexec reported is stored" "'$n'" "$(cat "$tmp/err")"
expect "a stalled device ends the run naming it (exit 1)" 1 "host [^:]+: device 0 op [0-9]+ .* waited 0.3 s for its gradient from device 1 \(watchdog\); device 1 never sent it: it died, stalled" \
    $pexec --db "$tmp/stalled.db" --stall-after 1:2 --watchdog 0.3 --set pipeline.stages=2 --set batch.micro_batches=4 scenarios/tiny-1f1b.scn
got=$(sql "$tmp/stalled.db" "select status, (select count(*) from ops where run_id = 1 and device = 1 and stream = 'compute') from runs")
[ "$got" = "failed|2" ] && ok "the stalled run is stored as failed with device 1's 2 ops" || nok "the stalled run is stored as failed with device 1's 2 ops" "$got"
expect "--kill-after needs DEVICE:OPS" 2 "--kill-after 1: give DEVICE:OPS, e.g. --kill-after 1:3" \
    $pexec --db "$db" --kill-after 1 scenarios/tiny-1f1b.scn
expect "--kill-after names a device that exists" 2 "--kill-after 7:1: there is no device 7 \(stages = 4\)" \
    $pexec --db "$db" --kill-after 7:1 scenarios/tiny-1f1b.scn
expect "psim has no --kill-after" 2 "psim: --kill-after is a pexec option" $psim --db "$db" --kill-after 1:1 scenarios/tiny-1f1b.scn
[ "$(sql "$db" 'select count(*) from runs')" = 2 ] && ok "rejected --kill-after options store nothing" || nok "rejected --kill-after options store nothing"

# --- readers: a failed run is never taken for a complete one ---------------------------------
expect "pcompare refuses a failed run" 2 "run 2 is a failed pexec run \(host .*device 1 never sent it.*\); its rows stop where it failed" \
    $pcompare --db "$db" 1 2
expect "pcalibrate refuses a failed run" 2 "run 2 is a failed pexec run .* calibrate on a complete run" $pcalibrate --db "$db" 2
expect "pexport --metrics-csv: a failed run has no metrics" 2 "run 2 is a failed run; it has no metrics \(see pexport --csv 2" \
    $pexport --db "$db" --metrics-csv 2
$pexport --db "$db" --chrome 1 2 >"$tmp/ftrace.json" 2>"$tmp/err"
ev="json_each(json_extract(readfile('$tmp/ftrace.json'), '\$.traceEvents'))"
got=$(sqlite3 :memory: "select (select count(*) from $ev where json_extract(value, '\$.ph') = 'i'
        and json_extract(value, '\$.name') = 'run 2 FAILED' and json_extract(value, '\$.args.error') like '%device 1 never sent it%'),
    (select count(*) from $ev where json_extract(value, '\$.args.name') like 'run 2 pexec 1f1b FAILED%'),
    (select count(*) from $ev where json_extract(value, '\$.args.name') like '%FAILED%' and json_extract(value, '\$.args.name') like 'run 1 %')" 2>&1)
[ "$got" = "1|1|0" ] && grep -q "run 2 is a failed pexec run" "$tmp/err" \
    && ok "pexport marks the failed run (instant event with the error, FAILED process names)" || nok "pexport marks the failed run" "$got" "$(head -c 300 "$tmp/err")"
if command -v gnuplot >/dev/null 2>&1; then
    rm -rf "$tmp/ffig"
    pplot="$(dirname "$psim")/pplot"
    $pplot timeline "$db" "$tmp/ffig" >"$tmp/out" 2>"$tmp/err"
    grep -q -- '-timeline-1.png$' "$tmp/out" && ! grep -q -- '-timeline-2' "$tmp/out" && ok "the latest-run timeline skips the failed run" \
        || nok "the latest-run timeline skips the failed run" "$(ls "$tmp/ffig" 2>&1)" "$(cat "$tmp/err")"
    $pplot timeline "$db" "$tmp/ffig" 2 --name f2 >/dev/null 2>"$tmp/err"
    got=$(awk '/^$/ { exit } !/^#/' "$tmp/ffig/f2.dat" | wc -l)
    [ "$got" = "$(sql "$db" "select count(*) from ops where run_id = 2 and stream = 'compute'")" ] \
        && grep -q "run 2 [^<]*FAILED" "$tmp/ffig/f2.svg" \
        && ok "a failed run named explicitly is drawn, marked FAILED" || nok "a failed run named explicitly is drawn, marked FAILED" "$got" "$(cat "$tmp/err")"
    expect "memory figure of a failed run says why there is none" 2 "pplot: run 2 failed \(host .*\); it has no memory samples" \
        $pplot memory "$db" "$tmp/ffig" 2
fi

# --- MPI ranks --------------------------------------------------------------------------------
if command -v mpirun >/dev/null 2>&1; then
    mpi="env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 timeout 60 mpirun --oversubscribe"
    two="--set pipeline.stages=2 scenarios/tiny-1f1b.scn"
    db="$tmp/mpifail.db"
    # a lost gradient: both ranks live, rank 0 finds it and tells rank 1, which stops and sends
    # rank 0 its rows
    # shellcheck disable=SC2086
    $mpi -np 2 $pexec --db "$db" --drop-send 1 --watchdog 0.3 $two >"$tmp/out" 2>&1
    got=$(sql "$db" "select status, error like 'rank 0 on %: device 0 op 2 (BW mb 0 chunk 0)%', (select count(distinct device) from ops where run_id = 1) from runs")
    [ "$got" = "failed|1|2" ] && grep -q "pexec: .*: rank 1 on [^:]* stopped: rank 0 on [^:]*: device 0 op 2" "$tmp/out" \
        && ok "MPI: a lost message is stored as a failed run with both ranks' rows; rank 1 says why it stopped" || nok "MPI: a lost message is stored as a failed run" "$got" "$(head -c 600 "$tmp/out")"
    # a rank killed mid-run under plain mpirun: mpirun ends the others at once; they say so
    # shellcheck disable=SC2086
    $mpi -np 2 $pexec --db "$db" --kill-after 1:5 --watchdog 20 $two >"$tmp/out" 2>&1
    st=$?
    [ "$st" != 0 ] && [ "$st" != 124 ] && grep -q "pexec: rank 0 on [^:]*: ended by mpirun (SIGTERM) before this rank finished: another rank died.*if a rank died, nothing is stored" "$tmp/out" \
        && [ "$(sql "$db" 'select count(*) from runs')" = 1 ] \
        && ok "MPI: a killed rank under plain mpirun: rank 0 says it was ended, nothing stored" || nok "MPI: a killed rank under plain mpirun" "exit $st" "$(head -c 600 "$tmp/out")"
    # a stalled rank (stopped, not dead) under plain mpirun: rank 0 ends on its watchdog, stores
    # the run as failed naming rank 1, and ends the job (exit 1)
    # shellcheck disable=SC2086
    $mpi -np 2 $pexec --db "$db" --stall-after 1:5 --watchdog 0.3 $two >"$tmp/out" 2>&1
    st=$?
    got=$(sql "$db" "select status, error like 'rank 0 on %: device 0 op % waited 0.3 s for its % from device 1 (watchdog)%; rank 1 did not report within 1.6 s (it died or stalled%',
        (select count(distinct device) from ops where run_id = r.id) from runs r where id = 2")
    [ "$st" = 1 ] && [ "$got" = "failed|1|1" ] \
        && ok "MPI: a stalled rank under plain mpirun: rank 0 stores the failed run naming rank 1, exit 1" || nok "MPI: a stalled rank under plain mpirun" "exit $st, $got" "$(head -c 600 "$tmp/out")"
    # ... and no rank says the run is not stored (rank 0 stored it); one ended by SIGTERM
    # points to rank 0's line
    ! grep -q "so it is not stored" "$tmp/out" && grep -q "stored run 2 in .* as failed" "$tmp/out" \
        && { ! grep -q "ended by mpirun (SIGTERM)" "$tmp/out" || grep -q "its line says whether it stored the run" "$tmp/out"; } \
        && ok "MPI: beside rank 0's stored failed run no rank claims it was not stored" \
        || nok "MPI: beside rank 0's stored failed run no rank claims it was not stored" "$(head -c 800 "$tmp/out")"
    # with --enable-recovery the survivor ends on its watchdog and stores what it measured
    # shellcheck disable=SC2086
    $mpi --enable-recovery -np 2 $pexec --db "$db" --kill-after 1:5 --watchdog 0.3 $two >"$tmp/out" 2>&1
    st=$?
    got=$(sql "$db" "select status, error like 'rank 0 on %: device 0 op % waited 0.3 s for its % from device 1 (watchdog)%; rank 1 did not report within 1.6 s (it died or stalled%',
        (select count(distinct device) from ops where run_id = 3), (select count(*) from ops where run_id = 3) > 0 from runs where id = 3")
    [ "$st" != 124 ] && [ "$got" = "failed|1|1|1" ] \
        && ok "MPI --enable-recovery: rank 0 outlives a killed rank and stores its rows as failed, naming rank 1" || nok "MPI --enable-recovery: rank 0 stores the failed run" "exit $st, $got" "$(head -c 600 "$tmp/out")"
fi

$pexec --help | grep -q "^exit status: 0 done, 1 files/database/memory failure or a failed run, 2 bad input,$" \
    && $pexec --help | grep -q "^gpu presets: v100, a100" && ok "pexec --help: exit 1 for a failed run" || nok "pexec --help: exit 1 for a failed run" "$($pexec --help | tail -4)"

# --- workers die with their parent: a killed sweep or search leaves no process behind ---------
# (each worker asks for SIGTERM when its parent ends; before, they kept storing runs)
# no_orphans NAME DB DELAY CMD...: CMD (which stores into DB) is killed with -9 after DELAY
# seconds; a second later no process naming DB may be left.
no_orphans() {
    name=$1 odb=$2 delay=$3
    shift 3
    "$@" >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    sleep 1
    left=$(pgrep -f "$odb" | wc -l)
    [ "$left" = 0 ] && ok "$name" || nok "$name" "$left left"
    pkill -f "$odb" 2>/dev/null
}
no_orphans "a killed psim --sweep leaves no worker running" "$tmp/orphan.db" 1 \
    $psim --db "$tmp/orphan.db" --quiet --sweep batch.micro_batches=256,257,258,259,260,261,262,263 \
    --sweep pipeline.schedule=gpipe,1f1b,zb-h1,zb-h2 --sweep model.recompute=none,full scenarios/gpt13b.scn
no_orphans "a killed pplan leaves no worker running" "$tmp/orphan2.db" 0.5 \
    "$(dirname "$psim")/pplan" --db "$tmp/orphan2.db" --gpus 64 --global-batch 1024 scenarios/gpt13b.scn
