# plots/lib.sh: sourced by pplot and its figure scripts: the one way text reaches sqlite3 and
# gnuplot, the output names, and the drawing loop. Stored text is someone else's input: ids
# reach SQL only as bound parameters (whole numbers, checked), and strings reach gnuplot only
# as quoted data (gp_str), never as code. Nothing here writes to the database.

# die MESSAGE: bad input (exit 2); fail MESSAGE: the environment (exit 1).
die() { echo "pplot: $*" >&2; exit 2; }
fail() { echo "pplot: $*" >&2; exit 1; }

# is_uint S: S is a whole number (no sign).
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }

# q SQL [NAME=INT...]: SQL on $db, read-only (a missing file is never created), each :NAME
# bound to a whole number; rows tab-separated, NULL as '?'.
q() {
    (
        sql=$1
        shift
        n=$#
        for b in "$@"; do
            is_uint "${b#*=}" || { echo "pplot: internal: $b is not a whole number" >&2; exit 70; }
            set -- "$@" -cmd ".parameter set :${b%%=*} ${b#*=}"
        done
        shift "$n"
        exec sqlite3 -readonly -batch -noheader -separator '	' -nullvalue '?' "$@" "$db" "$sql"
    )
}

# gp_str S: S as a gnuplot single-quoted string (quotes doubled, control bytes as spaces): data.
gp_str() {
    printf "'%s'" "$(printf '%s' "$1" | tr '\000-\037' ' ' | sed "s/'/''/g")"
}

# gp_num S: S when it is a plain number, else 0 (a number read from a shared database).
gp_num() {
    case $1 in '' | *[!0-9.eE+-]* | *[eE]*[eE]* | [eE+]*) echo 0 ;; *) echo "$1" ;; esac
}

# safe_text S: S with only letters, digits and . _ + - = , kept (names for files and legends).
safe_text() { printf '%s' "$1" | tr -cd 'A-Za-z0-9._+=,-'; }

# db_tag: the database's stem and a hash of its real path: two databases never share a name,
# even two pipesim.db in different folders.
db_tag() {
    stem=$(safe_text "$(basename "$db" .db)")
    hash=$(readlink -f "$db" | cksum | awk '{ printf "%06x", $1 % 16777216 }')
    echo "${stem:-db}-$hash"
}

# out_base FIGURE ID...: the path of a figure's files without extension, OUTDIR/DBTAG-FIGURE-IDS
# (or OUTDIR/NAME with --name).
out_base() {
    fig=$1
    shift
    if [ -n "$name" ]; then echo "$outdir/$name"; return; fi
    echo "$outdir/$(db_tag)-$fig-$(echo "$*" | tr ' ' '-')"
}

# draw GPFILE VAR=VALUE...: draws GPFILE once per --format into $base.EXT after plots/style.gp,
# every VAR set first: NAME=NUMBER as a number, NAME:=TEXT as a quoted string. What gnuplot
# says on stderr is passed on (a normal run says nothing); each file written is named on stdout.
draw() {
    gpfile=$1
    shift
    vars=""
    for a in "$@"; do
        case $a in
        *:=*) vars="$vars${a%%:=*}=$(gp_str "${a#*:=}"); " ;;
        *=*) vars="$vars${a%%=*}=$(gp_num "${a#*=}"); " ;;
        esac
    done
    vars="$vars${gpvars:-}; "
    for fmt in $(echo "$formats" | tr ',' ' '); do
        [ "$fmt" = none ] && continue
        out="$base.$fmt"
        gnuplot -e "fmt='$fmt'; out=$(gp_str "$out"); width=$width; height=$height; font=$(gp_str "$font"); $vars" \
            "$here/style.gp" "$here/$gpfile" 2>"$tmpdir/gp.err" || {
            cat "$tmpdir/gp.err" >&2
            fail "gnuplot failed on $gpfile ($fmt)"
        }
        [ -s "$tmpdir/gp.err" ] && sed 's/^/pplot: gnuplot: /' "$tmpdir/gp.err" >&2
        name_file "$out"
    done
    [ ! -s "$base.dat" ] || name_file "$base.dat"
}

# name_file PATH: names a file written on stdout: the path (one a line), with --json as a JSON
# line {"file": PATH} (quotes and backslashes escaped), with --quiet not at all.
name_file() {
    [ "$quiet" = 1 ] && return 0
    if [ "${json:-0}" = 1 ]; then
        printf '{"file": "%s"}\n' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g')"
    else
        echo "$1"
    fi
}

# resolve_run ARG: prints the run id ARG names: a whole number as it is (checked to name a
# run), latest (the newest complete run), latest-measured (the newest complete pexec run) or
# latest-predicted (the newest complete psim run), as store_run_resolve in traces/store.c
# defines them for the C tools; bad input (not an id, nothing of that kind) dies with exit 2.
resolve_run() {
    case $1 in
    latest) r=$(q "select max(id) from runs where status = 'complete'") what="no complete run" ;;
    latest-measured) r=$(q "select max(id) from runs where status = 'complete' and tool = 'pexec'") what="no complete pexec (measured) run" ;;
    latest-predicted) r=$(q "select max(id) from runs where status = 'complete' and tool = 'psim'") what="no complete psim (predicted) run" ;;
    *)
        is_uint "$1" && [ "$1" -gt 0 ] 2>/dev/null \
            || die "'$1' is not a run id; give the number psim or pexec printed (\"stored run N\"), latest, latest-measured or latest-predicted"
        [ "$(q "select count(*) from runs where id = :id" id="$1")" -gt 0 ] || die "there is no run $1 in the database '$db'"
        echo "$1"
        return 0
        ;;
    esac
    is_uint "$r" || die "'$1': $db has $what"
    echo "$r"
}

# id_in COLUMN ID...: "COLUMN in (:i1, :i2 ...)" for q, whose binds id_binds ID... gives.
id_in() {
    col=$1
    shift
    i=0 list=""
    for _ in "$@"; do i=$((i + 1)); list="$list${list:+, }:i$i"; done
    echo "$col in ($list)"
}
id_binds() {
    i=0
    for id in "$@"; do i=$((i + 1)); printf 'i%d=%s ' "$i" "$id"; done
}

# fig_title DEFAULT: the figure's title: --title's when given (even empty), else DEFAULT.
fig_title() { if [ "$title_set" = 1 ]; then printf '%s' "$user_title"; else printf '%s' "$1"; fi; }

# series_vars META: gnuplot settings from lines.awk's META: n, t1 ... tN (legend texts).
series_vars() {
    sn=$(awk -F'\t' '$1 == "n" { print $2 }' "$1")
    series="n=${sn:-0}"
    while IFS='	' read -r k s text; do
        [ "$k" = label ] && is_uint "$s" && series="$series; t$s=$(gp_str "$text")"
    done <"$1"
    echo "$series"
}

# runs_config WHERE-SQL [NAME=INT...]: one line per run the clause selects: id, the resolved
# scenario's lines joined by \037, tool, makespan_ms (0 for a failed run). config.awk reads it.
runs_config() {
    where=$1
    shift
    q "select r.id, replace(replace(coalesce(r.resolved, ''), char(9), ' '), char(10), char(31)),
        r.tool, coalesce((select value from metrics where run_id = r.id and name = 'makespan_ms'), 0)
        from runs r where ($where) order by r.id" "$@"
}

# default_size W H: the figure's size unless --size gave one.
default_size() { [ -n "$size" ] || { width=$1 height=$2; }; }

# sweep_values SQL-COLUMNS ID...: VALUES lines for lines.awk: id, then the columns, of the
# complete runs of the sweeps; metrics read as m_NAME (a join per name used in COLUMNS).
sweep_values() {
    cols=$1
    shift
    joins=""
    for m in $(echo "$cols" | tr -c 'a-z_' ' ' | tr ' ' '\n' | sed -n 's/^m_//p' | sort -u); do
        joins="$joins left join metrics m_$m on m_$m.run_id = r.id and m_$m.name = '$m'"
    done
    q "select r.id, $cols from runs r $joins where $(id_in r.sweep "$@") and r.status = 'complete'
        order by r.id" $(id_binds "$@")
}

# x_values DAT: the distinct values of a data file's first column, in order ("8 16 32").
x_values() { awk '!/^#/ && NF { print $1 }' "$1" | sort -g -u | tr '\n' ' '; }

# run_keys KEY: the distinct values of resolved key KEY (e.g. memory_gib, stages) in
# $tmpdir/runs, one per line, numbers only ("" when a run has none).
run_keys() {
    awk -F'\t' -v k="$1" '{ v = ""; n = split($2, l, "\037")
        for (i = 1; i <= n; i++) if (index(l[i], k " = ") == 1) v = substr(l[i], length(k) + 4)
        print v }' "$tmpdir/runs" | sort -u | while read -r v; do gp_num "$v"; done | sort -u
}

# one_key KEY: the value of KEY when every run has the same, else nothing.
one_key() {
    v=$(run_keys "$1")
    [ "$(printf '%s\n' "$v" | wc -l)" = 1 ] && echo "$v"
}

# sweep_data FIGURE SKIP COLS SQL-COLUMNS ID...: the runs and values of a line figure over the
# sweeps, then lines.awk: $base.dat, $tmpdir/meta; dies when no complete run has them.
sweep_data() {
    fig=$1 skip=$2 cols=$3 sqlcols=$4
    shift 4
    runs_config "$(id_in r.sweep "$@") and r.status = 'complete'" $(id_binds "$@") >"$tmpdir/runs"
    sweep_values "$sqlcols" "$@" | awk -F'\t' '{ for (i = 2; i <= NF; i++) if ($i == "?") next; print }' >"$tmpdir/values"
    [ -s "$tmpdir/values" ] || die "sweep $* has no complete runs to draw a $fig figure from"
    mkdir -p "$outdir" || fail "cannot make the folder '$outdir'"
    awk -v skip="$skip" -v dat="$base.dat" -v cols="$cols" \
        -f "$here/config.awk" -f "$here/lines.awk" "$tmpdir/runs" "$tmpdir/values" >"$tmpdir/meta"
    gpvars=$(series_vars "$tmpdir/meta")
    common=$(sed -n 's/^title	//p' "$tmpdir/meta")
}

# runs_meta ID...: runs.awk's lines for the runs into $tmpdir/runmeta; meta_of KIND [ID]: a value.
runs_meta() {
    runs_config "$(id_in r.id "$@")" $(id_binds "$@") >"$tmpdir/runs"
    awk -v known_only=1 -f "$here/config.awk" -f "$here/runs.awk" "$tmpdir/runs" >"$tmpdir/runmeta"
}
meta_of() {
    if [ $# -gt 1 ]; then awk -F'\t' -v k="$1" -v id="$2" '$1 == k && $2 == id { print $3; exit }' "$tmpdir/runmeta"
    else awk -F'\t' -v k="$1" '$1 == k { print $2; exit }' "$tmpdir/runmeta"; fi
}

# device_list P: the devices of --devices (or all P) one per line; dies on one >= P.
device_list() {
    if [ -z "$devices" ]; then awk -v p="$1" 'BEGIN { for (d = 0; d < p; d++) print d }'; return; fi
    echo "$devices" | tr ',' '\n' | awk -v p="$1" -F- '
        { a = $1 + 0; b = (NF > 1 ? $2 : $1) + 0; if (b < a) { t = a; a = b; b = t }
          for (d = a; d <= b; d++) { if (d >= p) { print "bad " d; exit } if (!(d in seen)) { seen[d] = 1; print d } } }' |
        sort -n | { while read -r d; do
            case $d in bad*) die "--devices: there is no device ${d#bad } (the run has $1)" ;; esac
            echo "$d"
        done; }
}
