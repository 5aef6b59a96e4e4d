# tests/cli_tools.sh: sourced by tests/cli_test.sh (uses $psim, $tmp, ok, nok, expect, sql).
# The seven tools as one set: the common options in each, one meaning of latest,
# latest-measured and latest-predicted in each tool that takes a run id, and the README's
# calibration loop run as written on a database that already holds install.sh's runs.
bindir=$(cd "$(dirname "$psim")" && pwd)
root=$(pwd)

# --- the common options: --help/-h and --version in all seven, --json and --quiet known ------
for t in psim pplan pexec pcompare pcalibrate pexport pplot; do
    for h in --help -h; do
        "$bindir/$t" $h >"$tmp/out" 2>"$tmp/err"
        got=$?
        if [ "$got" = 0 ] && head -n 1 "$tmp/out" | grep -q "^usage: $t " \
            && grep -q -- "--json" "$tmp/out" && grep -q -- "--quiet" "$tmp/out" \
            && grep -q -- "--db" "$tmp/out" && grep -q -- "--version" "$tmp/out"; then
            ok "$t $h: usage on stdout naming --db, --json, --quiet, --version; exit 0"
        else
            nok "$t $h: usage on stdout naming --db, --json, --quiet, --version; exit 0" "exit $got" "$(head -c 300 "$tmp/out")"
        fi
    done
    got=$("$bindir/$t" --version 2>&1)
    want="$t $(sed -n 's/^#define PIPESIM_VERSION "\(.*\)"/\1/p' sim/run/version.h)"
    [ "$got" = "$want" ] && ok "$t --version says '$want'" || nok "$t --version says '$want'" "got '$got'"
    "$bindir/$t" --no-such-option >/dev/null 2>"$tmp/err"
    got=$?
    [ "$got" = 2 ] && [ -s "$tmp/err" ] && ok "$t: an unknown option is bad input (exit 2, a message)" \
        || nok "$t: an unknown option is bad input (exit 2, a message)" "exit $got"
done
# --json and --quiet are accepted (not refused as unknown) by every tool that takes a scenario
for t in psim pexec; do
    "$bindir/$t" --no-db --json --quiet scenarios/tiny-1f1b.scn >"$tmp/out" 2>"$tmp/err"
    got=$?
    [ "$got" = 0 ] && [ ! -s "$tmp/err" ] && grep -q '"makespan_ms"' "$tmp/out" \
        && ok "$t --json --quiet: JSON on stdout, nothing on stderr" \
        || nok "$t --json --quiet: JSON on stdout, nothing on stderr" "exit $got" "$(head -c 200 "$tmp/err")"
done

# --- latest, latest-measured, latest-predicted: one meaning in every tool ----------------------
db="$tmp/latest.db"
"$bindir/psim" --db "$db" --quiet scenarios/tiny-cpu.scn                  # 1 psim
"$bindir/pexec" --db "$db" --quiet scenarios/tiny-cpu.scn                 # 2 pexec
"$bindir/psim" --db "$db" --quiet --set batch.micro_batches=4 scenarios/tiny-cpu.scn # 3 psim
"$bindir/pexec" --db "$db" --quiet --kill-after 1:3 scenarios/tiny-cpu.scn 2>/dev/null # 4 failed
got=$(sql "$db" "select group_concat(tool || ':' || status, ' ') from runs order by id")
[ "$got" = "psim:complete pexec:complete psim:complete pexec:failed" ] \
    && ok "latest fixture: psim, pexec, psim, a failed pexec" || nok "latest fixture: psim, pexec, psim, a failed pexec" "$got"
# pexport --csv: the run id is the first column of every row
for pair in latest:3 latest-measured:2 latest-predicted:3 1:1; do
    arg=${pair%%:*} want=${pair#*:}
    got=$("$bindir/pexport" --db "$db" --csv "$arg" | sed -n '2p' | cut -d, -f1)
    [ "$got" = "$want" ] && ok "pexport --csv $arg is run $want" || nok "pexport --csv $arg is run $want" "got '$got'"
done
# pcalibrate names the run it fitted on its first line; pcompare the two in its header
"$bindir/pcalibrate" --db "$db" --stages latest-measured >"$tmp/cal" 2>"$tmp/err"
grep -q "^; calibrated by pcalibrate --stages from pexec run 2 " "$tmp/cal" \
    && ok "pcalibrate latest-measured fits run 2 (not the failed run 4)" || nok "pcalibrate latest-measured fits run 2 (not the failed run 4)" "$(head -n 1 "$tmp/cal")" "$(cat "$tmp/err")"
expect "pcalibrate latest is a prediction here: refused" 2 "run 3 is a psim prediction" \
    "$bindir/pcalibrate" --db "$db" latest
"$bindir/psim" --db "$db" --quiet scenarios/tiny-cpu.scn # 5: the shape of run 2
"$bindir/pcompare" --db "$db" latest-predicted latest-measured >"$tmp/cmp" 2>"$tmp/err"
head -n 1 "$tmp/cmp" | grep -q "^# run 5 (psim, 1f1b) predicted vs run 2 (pexec, 1f1b) measured" \
    && ok "pcompare latest-predicted latest-measured compares runs 5 and 2" || nok "pcompare latest-predicted latest-measured compares runs 5 and 2" "$(head -n 1 "$tmp/cmp")" "$(cat "$tmp/err")"
"$bindir/pcompare" --db "$db" --json latest-predicted 2 >"$tmp/cmpj" 2>"$tmp/err"
python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
m = o["makespan"]
ok = o["predicted"]["run"] == 5 and o["measured"]["run"] == 2 and m["measured_ms"] > 0
ok = ok and abs(m["error"] - (m["predicted_ms"] - m["measured_ms"]) / m["measured_ms"]) < 1e-12
sys.exit(0 if ok else 1)' "$tmp/cmpj" && ok "pcompare --json: runs 5 and 2, error = (pred - meas) / meas" \
    || nok "pcompare --json: runs 5 and 2, error = (pred - meas) / meas" "$(head -c 300 "$tmp/cmpj")"
"$bindir/pcompare" --db "$db" --quiet latest-predicted latest-measured >"$tmp/out" 2>&1
got=$?
[ "$got" = 0 ] && [ ! -s "$tmp/out" ] && ok "pcompare --quiet: nothing printed, exit 0" || nok "pcompare --quiet: nothing printed, exit 0" "exit $got" "$(head -c 200 "$tmp/out")"
"$bindir/pplot" timeline --format none --json "$db" "$tmp/fig" latest-measured >"$tmp/out" 2>"$tmp/err"
grep -q '^{"file": ".*-timeline-2\.dat"}$' "$tmp/out" \
    && ok "pplot timeline latest-measured draws run 2, named as a JSON line" || nok "pplot timeline latest-measured draws run 2, named as a JSON line" "$(cat "$tmp/out" "$tmp/err")"
# a kind the database has none of, and a word that is no run: exit 2 in every tool, same words
psimdb="$tmp/onlypsim.db"
"$bindir/psim" --db "$psimdb" --quiet scenarios/tiny-cpu.scn
for cmd in "pcalibrate" "pcompare 1" "pexport --csv" "pplot timeline --format none"; do
    set -- $cmd
    t=$1
    shift
    case $t in pplot) a="$psimdb $tmp/fig" ;; *) a="--db $psimdb" ;; esac
    expect "$t: latest-measured with no pexec run is bad input" 2 "'latest-measured': .* has no complete pexec \(measured\) run" \
        "$bindir/$t" "$@" $a latest-measured
    expect "$t: 'newest' is not a run id; the message names the choices" 2 "'newest' is not a run id; .*latest, latest-measured or latest-predicted" \
        "$bindir/$t" "$@" $a newest
    expect "$t: run 0 is no run id" 2 "'0' is not a run id" "$bindir/$t" "$@" $a 0
done

# --- the README's calibration loop, as written, after install.sh's job (make run) -------------
# The commands are read from the README block marked calibration-loop, so editing the README
# edits the test. They run in a folder of their own, with bin/ and scenarios/ as in the tree.
readme_block() { # the sh block after the marker line
    awk -v m="$1" 'index($0, m) { on = 1; next } on && /^```sh$/ { body = 1; next }
                   body && /^```$/ { exit } body { print }' README.md
}
loop="$tmp/loop-readme"
mkdir -p "$loop"
ln -s "$bindir" "$loop/bin"
ln -s "$root/scenarios" "$loop/scenarios"
readme_block "<!-- calibration-loop:" >"$tmp/loop.sh"
[ "$(grep -c '^bin/' "$tmp/loop.sh")" = 4 ] && ok "README calibration loop: 4 commands read from the README" \
    || nok "README calibration loop: 4 commands read from the README" "$(cat "$tmp/loop.sh")"
(
    cd "$loop" || exit 1
    # install.sh's job without its figures: make run's psim commands (a run and a 20-point sweep)
    bin/psim --quiet scenarios/gpt13b.scn
    bin/psim --quiet --sweep batch.micro_batches=8,16,32,64,128 \
        --sweep pipeline.schedule=gpipe,1f1b,zb-h1,zb-h2 scenarios/gpt13b.scn
    i=0
    while IFS= read -r line; do
        case $line in bin/*) ;; *) continue ;; esac
        i=$((i + 1))
        sh -c "$line" >"out$i" 2>"err$i"
        echo "$?" >"rc$i"
    done <"$tmp/loop.sh"
)
pexec_id=$(sql "$loop/pipesim.db" "select max(id) from runs where tool = 'pexec'")
psim_id=$(sql "$loop/pipesim.db" "select max(id) from runs where tool = 'psim'")
[ "$pexec_id" = 22 ] && [ "$psim_id" = 23 ] \
    && ok "README loop: after install.sh's 21 runs, pexec stores 22 and psim 23" || nok "README loop: after install.sh's 21 runs, pexec stores 22 and psim 23" "pexec $pexec_id, psim $psim_id"
got=$(cat "$loop/rc1" "$loop/rc2" "$loop/rc3" "$loop/rc4" 2>&1 | tr '\n' ' ')
[ "$got" = "0 0 0 0 " ] && ok "README loop: every command exits 0 (pcompare within 10%)" \
    || nok "README loop: every command exits 0 (pcompare within 10%)" "$got" "$(cat "$loop"/err*)"
grep -q "^; calibrated by pcalibrate from pexec run $pexec_id (1f1b)" "$loop/calibrated.scn" \
    && ok "README loop: pcalibrate fitted the run pexec just stored" || nok "README loop: pcalibrate fitted the run pexec just stored" "$(head -n 1 "$loop/calibrated.scn")"
head -n 1 "$loop/out4" | grep -q "^# run $psim_id (psim, 1f1b) predicted vs run $pexec_id (pexec, 1f1b) measured" \
    && ok "README loop: pcompare compared the calibrated prediction with the measurement" \
    || nok "README loop: pcompare compared the calibrated prediction with the measurement" "$(head -n 1 "$loop/out4")"

# --- docs/SCHEMA.md: every example query runs on a fresh database and returns rows ------------
sdb="$tmp/schema.db"
"$bindir/psim" --db "$sdb" --quiet scenarios/tiny-cpu.scn
"$bindir/psim" --db "$sdb" --quiet --sweep batch.micro_batches=4,8 scenarios/tiny-cpu.scn
"$bindir/pexec" --db "$sdb" --quiet scenarios/tiny-cpu.scn
"$bindir/pplan" --db "$sdb" --quiet --jobs 1 --gpus 4 --global-batch 8 scenarios/tiny-1f1b.scn >/dev/null 2>&1
awk '/^```sql$/ { on = 1; n++; next } on && /^```$/ { on = 0; next } on { print > (dir "/q" n ".sql") }' \
    dir="$tmp" docs/SCHEMA.md
nq=$(ls "$tmp"/q*.sql 2>/dev/null | wc -l)
[ "$nq" -ge 8 ] && ok "docs/SCHEMA.md: $nq example queries read" || nok "docs/SCHEMA.md: example queries read" "$nq"
for f in "$tmp"/q*.sql; do
    rows=$(sqlite3 -batch -bail "$sdb" <"$f" 2>"$tmp/err" | wc -l)
    if [ ! -s "$tmp/err" ] && [ "$rows" -ge 1 ]; then ok "docs/SCHEMA.md query $(basename "$f" .sql): $rows rows"
    else nok "docs/SCHEMA.md query $(basename "$f" .sql) returns rows without an error" "$rows rows" "$(cat "$tmp/err")" "$(head -c 200 "$f")"; fi
done
