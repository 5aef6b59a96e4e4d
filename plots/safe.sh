# plots/safe.sh: sourced by the plot scripts. Text read from a database reaches sqlite3 and
# gnuplot's command line only through these: a shared database is someone else's input.
# safe_text S: S with only letters, digits and . _ + - kept (schedule and tool names are such).
safe_text() { printf '%s' "$1" | tr -cd 'A-Za-z0-9._+-'; }
# safe_number S: S when it is a plain number, else 0.
safe_number() {
    case $1 in '' | *[!0-9.eE+-]*) echo 0 ;; *) echo "$1" ;; esac
}
# safe_paths DB OUTDIR: exits 2 when either holds a quote or a newline (gnuplot -e quotes them).
safe_paths() {
    case "$1$2" in
    *"'"* | *'"'* | *'
'*) echo "$(basename "$0"): a database or folder name with a quote or a newline cannot be drawn; rename it" >&2
        exit 2 ;;
    esac
}
