# tests/cli_figures.sh, sourced by cli_test.sh after its sweeps: pplot's figures. The data
# behind each figure against closed forms, one block per configuration named in the legend,
# every figure type in PNG, SVG and PDF without a word from gnuplot on stderr, the aggregated
# 40,000-op timeline, zoom, file names, and that neither arguments nor stored text run code.
# Uses $tmp/sweep.db (sweep 1: m = 4, 8, 16 x gpipe, 1f1b on tiny-1f1b, p = 4), $tmp/export.db
# (run 1 psim, run 2 pexec of tiny-1f1b), $tmp/loop.db (run 1 pexec, run 2 calibrated psim)
# and $tmp/model.db (run 1 pexec, run 2 psim with the split by kernel class).
pplot="$(cd "$(dirname "$psim")" && pwd)/pplot" # absolute: the injection checks run elsewhere
fig="$tmp/fig"

# block N FILE: the lines of data block N (0-based; blocks are two blank lines apart), comments out.
block() { awk -v want="$1" 'BEGIN { b = 0 } /^$/ { if (blank) b++; blank = !blank; next } { blank = 0 }
    b == want && !/^#/ && $2 != "NaN"' "$2"; } # (NaN: a block's placeholder row)
# blocks FILE: how many data blocks FILE holds; heads FILE: each block's "# LABEL" line.
blocks() { awk '/^$/ { e++; next } END { print e / 2 }' "$1"; }
heads() { sed -n 's/^# //p' "$1"; }
# quiet_err NAME: stderr of the last command was empty.
quiet_err() { [ ! -s "$tmp/err" ] && ok "$1: nothing on stderr" || nok "$1: nothing on stderr" "$(head -c 400 "$tmp/err")"; }

# --- line figures: the data against closed forms --------------------------------------------
db="$tmp/sweep.db"
$pplot bubble "$db" "$fig" 1 --name bubble >"$tmp/out" 2>"$tmp/err"
got=$(awk 'NF == 2 && !/^#/ { want = 3 / ($1 + 3); d = $2 - want; if (d < 0) d = -d; if (d > 1e-9) bad++; n++ } END { print n + 0, bad + 0 }' "$fig/bubble.dat")
[ "$got" = "6 0" ] && ok "bubble figure data: 6 points on (p-1)/(m+p-1)" || nok "bubble figure data: 6 points on (p-1)/(m+p-1)" "$got" "$(cat "$tmp/err")"
[ -s "$fig/bubble.png" ] && [ -s "$fig/bubble.svg" ] && [ ! -e "$fig/bubble.pdf" ] \
    && [ "$(cat "$tmp/out" | tr '\n' ' ')" = "$fig/bubble.png $fig/bubble.svg $fig/bubble.dat " ] \
    && ok "bubble figure drawn (PNG, SVG by default), the files named on stdout" || nok "bubble figure drawn (PNG, SVG), named on stdout" "$(cat "$tmp/out")" "$(cat "$tmp/err")"
quiet_err "bubble figure"
[ "$(heads "$fig/bubble.dat" | tr '\n' '|')" = "GPipe|m bubble_rate|1F1B|m bubble_rate|" ] \
    && grep -q '>GPipe<' "$fig/bubble.svg" && grep -q '>1F1B (= GPipe)<' "$fig/bubble.svg" \
    && grep -q '>closed form (p-1)/(m+p-1), p=4<' "$fig/bubble.svg" \
    && ok "coinciding GPipe and 1F1B: two blocks, both in the legend, the second marked (= GPipe)" \
    || nok "coinciding GPipe and 1F1B: two blocks, both named" "$(heads "$fig/bubble.dat" | tr '\n' '|')"
grep -q '>interleaved' "$fig/bubble.svg" && nok "the legend names only what is drawn (no interleaved form)" || ok "the legend names only what is drawn (no interleaved form)"
grep -q 'sweep.db' "$fig/bubble.svg" && nok "the title carries no database name" "$(grep -o '<title>.*</title>' "$fig/bubble.svg")" \
    || ok "the title carries no database name"
grep -q '>Bubble rate: tiny-1f1b, p=4 b=1 on 4 × ' "$fig/bubble.svg" && ok "the title comes from the scenario and what the runs share" \
    || nok "the title comes from the scenario and what the runs share" "$(grep -o '>Bubble rate[^<]*<' "$fig/bubble.svg")"
$pplot throughput "$db" "$fig" 1 --name tput 2>"$tmp/err" >/dev/null
got=$(awk 'NF == 3 && !/^#/ { want = $1 * 32 * 1000 / (($1 + 3) * 3); d = $2 - want; if (d < 0) d = -d; if (d > 1e-6 * want) bad++; n++ } END { print n + 0, bad + 0 }' "$fig/tput.dat")
[ "$got" = "6 0" ] && [ -s "$fig/tput.png" ] && ok "throughput figure: m*s tokens per (m+p-1)(F+B), drawn" || nok "throughput figure: m*s tokens per (m+p-1)(F+B)" "$got" "$(cat "$tmp/err")"
quiet_err "throughput figure"
$pplot peak "$db" "$fig" 1 --name peak 2>"$tmp/err" >/dev/null
top=$(sql "$db" "select printf('%.6f', max(value)) from device_metrics where name = 'peak_memory_gib' and run_id in (select id from runs where sweep = 1)")
[ "$(blocks "$fig/peak.dat")" = 2 ] && [ "$(awk 'NF == 3 && !/^#/ && $2 > m { m = $2 } END { printf "%.6f", m }' "$fig/peak.dat")" = "$top" ] \
    && grep -q '>device limit, memory_gib = 80<' "$fig/peak.svg" \
    && ok "peak figure: a line per schedule topped by the sweep's peak, the limit named" || nok "peak figure: a line per schedule topped by the sweep's peak" "$(cat "$tmp/err")"
quiet_err "peak figure"

# --- per-run figures --------------------------------------------------------------------------
$pplot memory "$db" "$fig" 1 --name mem 2>"$tmp/err" >/dev/null
got=$(awk 'NF == 2 && !/^#/' "$fig/mem.dat" | wc -l)
want=$(sql "$db" "select count(*) from memory where run_id = 1")
[ "$got" = "$want" ] && [ -s "$fig/mem.png" ] && ok "memory figure: one point per stored sample ($want), drawn" || nok "memory figure: one point per stored sample" "$got vs $want" "$(cat "$tmp/err")"
top=$(awk 'NF == 2 && !/^#/ && $2 > m { m = $2 } END { printf "%.6f", m }' "$fig/mem.dat")
peak=$(sql "$db" "select printf('%.6f', max(value)) from device_metrics where run_id = 1 and name = 'peak_memory_gib'")
[ "$top" = "$peak" ] && ok "memory figure peaks at peak_memory_gib" || nok "memory figure peaks at peak_memory_gib" "$top vs $peak"
quiet_err "memory figure"
$pplot timeline "$db" "$fig" 1 --name tl 2>"$tmp/err" >/dev/null
got=$(block 0 "$fig/tl.dat" | wc -l)
[ "$got" = "$(sql "$db" "select count(*) from ops where run_id = 1 and stream = 'compute'")" ] && [ -s "$fig/tl.png" ] \
    && ok "timeline figure: one box per compute op, drawn" || nok "timeline figure: one box per compute op" "$got"
quiet_err "timeline figure"
db="$tmp/export.db" # run 1 psim, run 2 pexec of tiny-1f1b (p = 4)
$pplot timeline "$db" "$fig" 2 1 --name stack 2>"$tmp/err" >/dev/null
got=$(block 0 "$fig/stack.dat" | awk '{ n++; if ($1 > m) m = $1; if ($1 == 4) gap++ } END { print n + 0, m + 0, gap + 0 }')
first=$(block 0 "$fig/stack.dat" | awk '$1 < 4 { print $7; exit }')
[ "$got" = "128 8 0" ] && [ -s "$fig/stack.png" ] && grep -q '>run 1 predicted<' "$fig/stack.svg" \
    && ok "stacked timeline: both runs' 128 ops, predicted (run 1) on rows 0-3 above measured on 5-8" || nok "stacked timeline: both runs' ops on separate rows" "$got" "$(cat "$tmp/err")"
[ "$(block 1 "$fig/stack.dat" | wc -l)" = 96 ] && ok "stacked timeline: 96 transfers drawn" || nok "stacked timeline: 96 transfers drawn" "$(block 1 "$fig/stack.dat" | wc -l)"
$pplot timeline "$db" "$fig" latest-predicted --name lp >/dev/null 2>&1 && $pplot timeline "$db" "$fig" latest-measured --name lm >/dev/null 2>&1
grep -q '>Timeline: run 1, 1F1B' "$fig/lp.svg" && grep -q '>Timeline: run 2, 1F1B' "$fig/lm.svg" \
    && ok "latest-predicted and latest-measured name runs 1 and 2" || nok "latest-predicted and latest-measured name runs 1 and 2"
$pplot error "$tmp/loop.db" "$fig" 2 1 --name err 2>"$tmp/err" >/dev/null
got=$(awk '!/^#/ { for (c = 2; c <= 5; c++) if ($c != "?") { n++; if ($c > 1e-3 || $c < -1e-3) bad++ } } END { print n + 0, bad + 0 }' "$fig/err.dat")
[ "$got" = "4 0" ] && [ -s "$fig/err.png" ] && ok "error figure: calibrated per-stage errors are 0 (F, BW on 2 devices), drawn" || nok "error figure: calibrated per-stage errors are 0" "$got" "$(cat "$tmp/err")"
quiet_err "error figure"
db="$tmp/model.db"
$pplot split "$db" "$fig" 2 1 --name split 2>"$tmp/err" >/dev/null
got=$(awk '!/^#/ { print $1 }' "$fig/split.dat" | tr '\n' ' ')
want=$(sql "$db" "select value from device_metrics where run_id = 1 and device = 1 and name = 'memory_ms'")
[ "$got" = '"d0: "d0: "d1: "d1: ' ] && [ "$(sed -n 's/^"\([^"]*\)".*/\1/p' "$fig/split.dat" | tr '\n' '|')" = "d0: run 2 predicted|d0: run 1 measured|d1: run 2 predicted|d1: run 1 measured|" ] \
    && awk -v w="$want" '/^"d1: run 1 measured"/ { d = $7 - w; found = 1 } END { exit !(found && w > 0 && d * d < 1e-12 * w * w) }' "$fig/split.dat" \
    && [ -s "$fig/split.png" ] && ok "split figure: a bar per device and run, the stored classes stacked" \
    || nok "split figure: a bar per device and run, the stored classes stacked" "$got" "$(cat "$tmp/err")"
grep -q '>tp_comm<' "$fig/split.svg" && nok "split figure: no tp_comm in the legend of a run without tensor parallelism" \
    || ok "split figure: no tp_comm in the legend of a run without tensor parallelism"
expect "pplot split of a run without a split" 2 "run 1 has no split by kernel class" $pplot split "$tmp/sweep.db" "$fig" 1

# --- breakdown: the closed form of 1F1B's bubble ----------------------------------------------
db="$tmp/sweep.db"
$pplot breakdown "$db" "$fig" 1 --name bd 2>"$tmp/err" >/dev/null
# tiny-1f1b: F = 1, B = 2, no transfer time: all devices busy m(F+B), no imbalance, fill and
# drain (p-1)/(m+p-1) of the time, in every m's block
got=$(awk '!/^#/ && NF == 6' "$fig/bd.dat" | wc -l)
bad=$(for b in 0 1 2; do block "$b" "$fig/bd.dat" | awk -v m="$(echo 4 8 16 | cut -d' ' -f$((b + 1)))" '
    { f = 100 * 3 / (m + 3); d = $4 - f; if (d < 0) d = -d; if (d > 1e-6 || $3 > 1e-6 || $1 !~ /^"(GPipe|1F1B)"$/) print $0 }'; done)
[ "$got" = 6 ] && [ -z "$bad" ] && grep -q '>fill and drain<' "$fig/bd.svg" && ! grep -q '>exposed transfers<' "$fig/bd.svg" \
    && ok "breakdown: 1F1B and GPipe spend (p-1)/(m+p-1) in fill and drain, no imbalance (3 m x 2)" \
    || nok "breakdown: fill and drain is (p-1)/(m+p-1)" "$got" "$bad" "$(cat "$tmp/err")"
quiet_err "breakdown figure"

# --- the done-when of issue 21: gpt13b, 5 schedules with interleaved v = 2 and 4 --------------
gdb="$tmp/g13.db"
$psim --db "$gdb" --quiet --set pipeline.partition=balanced --sweep batch.micro_batches=8,16 \
    --sweep pipeline.schedule=gpipe,1f1b,zb-h1,zb-h2,interleaved --sweep pipeline.chunks=1,2,4 \
    scenarios/gpt13b.scn 2>/dev/null # the points a schedule refuses (1f1b with v = 2) are named and skipped
$psim --db "$gdb" --quiet --sweep parallel.data=1,2 --sweep pipeline.schedule=1f1b,zb-h1 scenarios/gpt13b.scn
labels="GPipe|1F1B|Interleaved 1F1B v=2|Interleaved 1F1B v=4|ZB-H1|ZB-H2" # each maybe "(= ...)"
fine=1 msg=""
for f in bubble throughput peak breakdown; do
    $pplot $f "$gdb" "$fig/g13" 1 --format png,svg,pdf --name "$f" >/dev/null 2>"$tmp/err" || { fine=0; msg="$msg $f failed;"; }
    [ -s "$tmp/err" ] && { fine=0; msg="$msg $f: $(head -c 200 "$tmp/err");"; }
    for ext in png svg pdf; do [ -s "$fig/g13/$f.$ext" ] || { fine=0; msg="$msg no $f.$ext;"; }; done
    [ "$(head -c 4 "$fig/g13/$f.pdf")" = "%PDF" ] || { fine=0; msg="$msg $f.pdf is no PDF;"; }
    [ "$(od -An -c -N4 "$fig/g13/$f.png" | tr -d ' ')" = "211PNG" ] || { fine=0; msg="$msg $f.png is no PNG;"; }
    if [ $f = breakdown ]; then
        n=$(block 0 "$fig/g13/$f.dat" | sed 's/^"\([^"]*\)".*/\1/' | tr '\n' '|')
        [ "$n" = "GPipe|1F1B|Interleaved 1F1B v=2|Interleaved 1F1B v=4|ZB-H1|ZB-H2|" ] || { fine=0; msg="$msg breakdown rows $n;"; }
        continue
    fi
    [ "$(blocks "$fig/g13/$f.dat")" = 6 ] || { fine=0; msg="$msg $f has $(blocks "$fig/g13/$f.dat") blocks;"; }
    echo "$labels" | tr '|' '\n' | while read -r l; do grep -q ">$l\( (= [^<]*)\)\{0,1\}<" "$fig/g13/$f.svg" || echo "$l"; done >"$tmp/missing"
    [ -s "$tmp/missing" ] && { fine=0; msg="$msg $f legend lacks $(tr '\n' ',' <"$tmp/missing");"; }
done
$pplot scaling "$gdb" "$fig/g13" 2 --format png,svg,pdf --name scaling >/dev/null 2>"$tmp/err" || { fine=0; msg="$msg scaling failed;"; }
[ -s "$tmp/err" ] && { fine=0; msg="$msg scaling: $(head -c 200 "$tmp/err");"; }
[ "$(blocks "$fig/g13/scaling.dat")" = 2 ] && [ "$(block 0 "$fig/g13/scaling.dat" | awk '{ print $1 + 0 }' | tr '\n' ' ')" = "8 16 " ] \
    || { fine=0; msg="$msg scaling blocks;"; }
for f in timeline memory; do
    $pplot $f "$gdb" "$fig/g13" latest --format png,svg,pdf --name "$f" >/dev/null 2>"$tmp/err" || { fine=0; msg="$msg $f failed;"; }
    [ -s "$tmp/err" ] && { fine=0; msg="$msg $f: $(head -c 200 "$tmp/err");"; }
    [ "$(head -c 4 "$fig/g13/$f.pdf")" = "%PDF" ] || { fine=0; msg="$msg $f.pdf;"; }
done
[ "$fine" = 1 ] && ok "every figure of a gpt13b sweep with 5 schedules and interleaved v = 2, 4: a block per configuration, each named in the legend, PNG, SVG and PDF, gnuplot silent" \
    || nok "every figure of the gpt13b sweep, distinct, in PNG, SVG and PDF, gnuplot silent" "$msg"

# --- a 40,000-op timeline: aggregated into columns, a small SVG that shows the stages ------------
bdb="$tmp/big.db"
$psim --db "$bdb" --quiet --set batch.micro_batches=2500 scenarios/gpt13b.scn
$pplot timeline "$bdb" "$fig" 1 --name big >/dev/null 2>"$tmp/err"
size=$(wc -c <"$fig/big.svg")
rows=$(block 0 "$fig/big.dat" | awk '{ r[$1] = 1 } END { for (k in r) n++; print n + 0 }')
boxes=$(block 0 "$fig/big.dat" | wc -l)
[ "$(sql "$bdb" "select count(*) from ops where stream = 'compute'")" = 40000 ] && [ "$size" -lt 2000000 ] && [ "$rows" = 8 ] \
    && [ "$boxes" -lt 4000 ] && grep -q 'aggregated into 570 bins of' "$fig/big.svg" && [ ! -s "$tmp/err" ] \
    && ok "40,000 ops: SVG $size bytes (< 2 MB), $boxes columns on all 8 rows, the caption says how" \
    || nok "40,000 ops: a small aggregated SVG" "size $size, rows $rows, boxes $boxes" "$(head -c 300 "$tmp/err")"
$pplot timeline "$bdb" "$fig" 1 --from-ms 0 --to-ms 400 --devices 0-2,7 --name zoom >/dev/null 2>"$tmp/err"
got=$(block 0 "$fig/zoom.dat" | awk '{ r[$1] = 1; if ($3 > 400.000001 || $2 < 0) bad++ } END { for (k in r) n++; print n + 0, bad + 0 }')
n=$(block 0 "$fig/zoom.dat" | awk '$1 == 0' | wc -l)
want=$(sql "$bdb" "select count(*) from ops where device = 0 and stream = 'compute' and start_ns <= 400000000")
[ "$got" = "4 0" ] && [ "$n" = "$want" ] && grep -q '>d7<' "$fig/zoom.svg" && ! grep -q '>d3<' "$fig/zoom.svg" \
    && ok "zoom: --from-ms 0 --to-ms 400 --devices 0-2,7 draws 4 rows, each op of the window ($want on d0), unaggregated" \
    || nok "zoom: --from-ms/--to-ms/--devices" "$got, $n vs $want" "$(cat "$tmp/err")"
expect "--devices beyond the run" 2 "--devices: there is no device 9 \(the run has 8\)" $pplot timeline "$bdb" "$fig" 1 --devices 9
expect "--from-ms after --to-ms" 2 "--from-ms 5 is not before --to-ms 4" $pplot timeline "$bdb" "$fig" 1 --from-ms 5 --to-ms 4

# --- options and names -------------------------------------------------------------------------
db="$tmp/sweep.db"
expect "--format takes png, svg, pdf" 2 "--format jpg: give png, svg or pdf" $pplot bubble "$db" "$fig" --format jpg
expect "--size takes W,H" 2 "--size 10: give W,H in pixels" $pplot bubble "$db" "$fig" --size 10
expect "an unknown option is named" 2 "unknown option '--colour'" $pplot bubble "$db" "$fig" --colour red
$pplot bubble "$db" "$fig/opt" --format svg --size 640,400 --font "Times,9" --title "" --name o >/dev/null 2>"$tmp/err"
grep -q 'viewBox="0 0 640 400"' "$fig/opt/o.svg" && grep -q 'font-family="Times"' "$fig/opt/o.svg" \
    && ! grep -q '>Bubble rate' "$fig/opt/o.svg" && [ ! -e "$fig/opt/o.png" ] \
    && ok "--format svg --size 640,400 --font Times,9 --title '': one SVG of that size and font, untitled" \
    || nok "--format --size --font --title" "$(head -c 600 "$fig/opt/o.svg")"
mkdir -p "$tmp/dba" "$tmp/dbb"
cp "$db" "$tmp/dba/pipesim.db" && cp "$db" "$tmp/dbb/pipesim.db"
$pplot bubble "$tmp/dba/pipesim.db" "$fig/two" 1 >"$tmp/o1" 2>&1 && $pplot bubble "$tmp/dbb/pipesim.db" "$fig/two" 1 >"$tmp/o2" 2>&1
[ "$(ls "$fig/two" | wc -l)" = 6 ] && head -n 1 "$tmp/o1" | grep -q "/pipesim-[0-9a-f]\{6\}-bubble-1.png$" \
    && ok "two databases named pipesim.db draw sweep 1 into one folder without overwriting ($(ls "$fig/two" | head -n 1))" \
    || nok "two databases draw into one folder without overwriting" "$(ls "$fig/two" | tr '\n' ' ')"
expect "pplot names its figures" 2 "timeline \[RUN...\]" $pplot nonsense
expect "pplot on a missing database" 2 "no database '$tmp/none.db'" $pplot memory "$tmp/none.db" "$tmp/fig2"
[ ! -e "$tmp/none.db" ] && [ ! -e "$tmp/fig2" ] && ok "pplot creates no database and no folder for a missing one" || nok "pplot creates no database and no folder for a missing one"
expect "pplot on a missing sweep" 2 "there is no sweep 99 in" $pplot bubble "$db" "$tmp/fig3" 99
[ ! -e "$tmp/fig3" ] && ok "pplot writes nothing for a missing sweep" || nok "pplot writes nothing for a missing sweep" "$(ls "$tmp/fig3")"
expect "pplot takes whole-number ids" 2 "'1 union select 1' is not a run id" $pplot split "$db" "$fig" "1 union select 1"
"$(dirname "$psim")/pplot" --version | grep -q '^pplot [0-9]' && ok "pplot --version" || nok "pplot --version"

# --- nothing from arguments or stored text runs as SQL or gnuplot ------------------------------
(cd "$tmp" && for f in timeline memory bubble throughput peak split breakdown; do
    $pplot $f "$db" "$tmp/inj" "1 union select writefile('pwned1','x')" 2>/dev/null
    $pplot $f "$db" "$tmp/inj" '1;$(touch pwned3)' 2>/dev/null
done; $pplot error "$db" "$tmp/inj" 1 '2`touch pwned4`' 2>/dev/null
$pplot bubble "$db" "$tmp/o';x=system('touch pwned2');y='" 1 --title "t';system('touch pwned8');'" >/dev/null 2>&1)
[ ! -e "$tmp/pwned1" ] && [ ! -e "$tmp/pwned2" ] && [ ! -e "$tmp/pwned3" ] && [ ! -e "$tmp/pwned4" ] && [ ! -e "$tmp/pwned8" ] \
    && [ -s "$tmp/o';x=system('touch pwned2');y='/$(ls "$tmp/o';x=system('touch pwned2');y='" | grep 'png$' | head -n 1)" ] \
    && ok "pplot runs no SQL or gnuplot command from its arguments; a folder with quotes is drawn into" \
    || nok "pplot runs no SQL or gnuplot command from its arguments" "$(ls "$tmp" | grep pwned)"
cp "$db" "$tmp/crafted-sweep.db"
sql "$tmp/crafted-sweep.db" "update runs set schedule = 'gpipe'';system(''touch $tmp/pwned5'');''', tool = 'psim'';system(''touch $tmp/pwned6'');''', resolved = replace(replace(resolved, 'memory_gib = 80', 'memory_gib = 1;system(\"touch $tmp/pwned7\")'), 'name = tiny-1f1b', 'name = x'';system(''touch $tmp/pwned9'');''') where id = 1" >/dev/null
for f in timeline memory bubble throughput peak breakdown; do $pplot $f "$tmp/crafted-sweep.db" "$tmp/inj2" 1 --name "$f" >/dev/null 2>&1; done
[ ! -e "$tmp/pwned5" ] && [ ! -e "$tmp/pwned6" ] && [ ! -e "$tmp/pwned7" ] && [ ! -e "$tmp/pwned9" ] && [ -s "$tmp/inj2/timeline.png" ] && [ -s "$tmp/inj2/bubble.png" ] \
    && ok "pplot runs nothing from stored text and still draws" || nok "pplot runs nothing from stored text and still draws" "$(ls "$tmp" | grep pwned) $(ls "$tmp/inj2" 2>&1 | tr '\n' ' ')"

# --- make docs: the README's figures are the ones it draws, from data the code gives now -------
sh plots/docs.sh --check >"$tmp/out" 2>"$tmp/err" && ok "the README's figures are the ones make docs draws (data hashes, names, files)" \
    || nok "the README's figures are the ones make docs draws (run make docs)" "$(head -c 600 "$tmp/err")"
