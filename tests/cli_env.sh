# tests/cli_env.sh: sourced by cli_test.sh (its psim, tmp, ok, nok, expect, sql): every stored
# run carries what it ran on as text (run_env): psim the pipesim, compiler and SQLite versions
# and the host, with the values those tools report; pexec also its BLAS, MPI and the OMP_* /
# OPENBLAS_* variables it ran under, failed runs too; pexport --env-csv reads it back; a
# schema 4 file gains the table when opened.
pexec="$(dirname "$psim")/pexec"
pexport="$(dirname "$psim")/pexport"
db="$tmp/env.db"
envq() { sql "$db" "select value from run_env where run_id = $1 and name = '$2'"; }

# --- psim: the four keys, each equal to what its source reports -----------------------------
$psim --db "$db" --quiet scenarios/tiny-1f1b.scn
got=$(sql "$db" "select group_concat(name, ' ') from (select name from run_env where run_id = 1 order by name)")
[ "$got" = "compiler host pipesim_version sqlite_version" ] && ok "psim stores four environment keys" \
    || nok "psim stores four environment keys" "$got"
want=$($psim --version | sed -n 's/^psim //p')
[ -n "$want" ] && [ "$(envq 1 pipesim_version)" = "$want" ] && ok "run_env pipesim_version is psim --version's ($want)" \
    || nok "run_env pipesim_version is psim --version's" "$(envq 1 pipesim_version) vs '$want'"
[ "$(envq 1 host)" = "$(uname -n)" ] && [ "$(envq 1 host)" = "$(sql "$db" 'select host from runs where id = 1')" ] \
    && ok "run_env host is uname -n and runs.host" || nok "run_env host is uname -n and runs.host" "$(envq 1 host) vs $(uname -n)"
want=$(echo __VERSION__ | ${CC:-cc} -E -P - 2>/dev/null | tr -d '"')
[ -n "$want" ] && [ "$(envq 1 compiler)" = "$want" ] && ok "run_env compiler is the compiler's __VERSION__ ($want)" \
    || nok "run_env compiler is the compiler's __VERSION__" "$(envq 1 compiler) vs '$want'"
want=$(sqlite3 :memory: 'select sqlite_version()')
[ "$(envq 1 sqlite_version)" = "$want" ] && ok "run_env sqlite_version is the library's ($want)" \
    || nok "run_env sqlite_version is the library's" "$(envq 1 sqlite_version) vs '$want'"

# --- pexec on threads: BLAS and the variables set here ---------------------------------------
OMP_PIPESIM_TEST="4 cores" OPENBLAS_PIPESIM_TEST=a,b NCCL_PIPESIM_TEST=1 \
    $pexec --db "$db" --quiet --set pipeline.stages=2 --set batch.micro_batches=2 scenarios/tiny-1f1b.scn
got="$(envq 2 OMP_PIPESIM_TEST)|$(envq 2 OPENBLAS_PIPESIM_TEST)|$(envq 2 backend)|$(sql "$db" "select count(*) from run_env where run_id = 2 and name glob 'NCCL_*'")"
[ "$got" = "4 cores|a,b|cpu (threads)|0" ] && ok "pexec stores the OMP_/OPENBLAS_ variables it ran under (not NCCL_ on the CPU)" \
    || nok "pexec stores the OMP_/OPENBLAS_ variables it ran under" "$got"
case "$(envq 2 blas_config)" in OpenBLAS\ [0-9]*) ok "pexec stores OpenBLAS's config ($(envq 2 blas_config))" ;;
    *) nok "pexec stores OpenBLAS's config" "'$(envq 2 blas_config)'" ;; esac
[ "$(envq 2 pipesim_version)" = "$(envq 1 pipesim_version)" ] && [ "$(envq 2 compiler)" = "$(envq 1 compiler)" ] \
    && ok "pexec stores psim's keys too" || nok "pexec stores psim's keys too" "$(sql "$db" 'select * from run_env where run_id = 2')"
if ldd "$pexec" 2>/dev/null | grep -q libmpi; then
    case "$(envq 2 mpi_library)" in *MPI*) ok "pexec built with MPI stores its library ($(envq 2 mpi_library | cut -c1-30)...)" ;;
        *) nok "pexec built with MPI stores its library" "'$(envq 2 mpi_library)'" ;; esac
fi

# --- under mpirun: rank 0 stores its environment, the MPI library the one mpirun belongs to ----
if command -v mpirun >/dev/null 2>&1 && ldd "$pexec" 2>/dev/null | grep -q libmpi; then
    OMP_PIPESIM_TEST=mpi env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 \
        timeout 60 mpirun --oversubscribe -np 2 $pexec --db "$tmp/envmpi.db" --quiet --set pipeline.stages=2 \
        --set batch.micro_batches=2 scenarios/tiny-1f1b.scn >"$tmp/out" 2>&1
    v=$(mpirun --version 2>/dev/null | sed -n 's/^mpirun (Open MPI) \([0-9.]*\).*/\1/p')
    e() { sql "$tmp/envmpi.db" "select value from run_env where run_id = 1 and name = '$1'"; }
    got="$(e backend)|$(e OMP_PIPESIM_TEST)"
    [ "$got" = "cpu (MPI ranks)|mpi" ] && case "$(e mpi_library)" in *"Open MPI v$v"*) true ;; *) [ -z "$v" ] ;; esac \
        && ok "mpirun -np 2 pexec stores its environment (Open MPI v$v)" \
        || nok "mpirun -np 2 pexec stores its environment" "$got" "$(e mpi_library)" "mpirun $v" "$(head -c 300 "$tmp/out")"
fi

# --- a failed run keeps its environment -----------------------------------------------------
OMP_PIPESIM_TEST=failed $pexec --db "$db" --quiet --drop-send 0 --watchdog 0.3 --set pipeline.stages=2 \
    --set batch.micro_batches=1 scenarios/tiny-1f1b.scn 2>"$tmp/err"
got="$(sql "$db" 'select status from runs where id = 3')|$(envq 3 OMP_PIPESIM_TEST)|$(envq 3 pipesim_version)"
[ "$got" = "failed|failed|$(envq 1 pipesim_version)" ] && ok "a failed pexec run (--drop-send) stores its environment" \
    || nok "a failed pexec run (--drop-send) stores its environment" "$got" "$(head -c 300 "$tmp/err")"

# --- pexport --env-csv: every pair in name order, CSV-quoted where needed ---------------------
$pexport --db "$db" --env-csv 2 >"$tmp/env.csv" 2>"$tmp/err"
want=$(sql "$db" "select name from run_env where run_id = 2 order by name")
[ "$(head -n 1 "$tmp/env.csv")" = "name,value" ] && [ "$(tail -n +2 "$tmp/env.csv" | cut -d, -f1)" = "$want" ] \
    && grep -qx 'OPENBLAS_PIPESIM_TEST,"a,b"' "$tmp/env.csv" && grep -qx 'OMP_PIPESIM_TEST,4 cores' "$tmp/env.csv" \
    && grep -qx "pipesim_version,$(envq 1 pipesim_version)" "$tmp/env.csv" \
    && ok "pexport --env-csv gives run_env's pairs in name order ($(($(wc -l <"$tmp/env.csv") - 1)))" \
    || nok "pexport --env-csv gives run_env's pairs in name order" "$(head -c 400 "$tmp/env.csv")"
expect "pexport --env-csv: an unknown run" 2 "there is no run 9 in the database" $pexport --db "$db" --env-csv 9

# --- a schema 4 file gains run_env; its old runs have none ------------------------------------
db="$tmp/env4.db"
$psim --db "$db" --quiet scenarios/tiny-1f1b.scn
sql "$db" "drop table run_env; drop table search_points; drop table searches; pragma user_version = 4" >/dev/null
$psim --db "$db" --quiet scenarios/tiny-1f1b.scn
got="$(sql "$db" 'pragma user_version')|$(sql "$db" "select count(*) from sqlite_master where name = 'run_env'")|$(sql "$db" 'select count(*) from run_env where run_id = 1')|$(sql "$db" 'select count(*) from run_env where run_id = 2')"
[ "$got" = "9|1|0|4" ] && ok "a schema 4 file is upgraded to 9 with run_env (old run none, new run 4 keys)" \
    || nok "a schema 4 file is upgraded to 9 with run_env" "$got"
expect "pexport --env-csv: a run from before run_env says so" 0 "run 1 has no stored environment" $pexport --db "$db" --env-csv 1
[ "$(cat "$tmp/out")" = "name,value" ] && ok "pexport --env-csv of an old run prints only the header" \
    || nok "pexport --env-csv of an old run prints only the header" "$(head -c 200 "$tmp/out")"

# --- the CUDA backend on a GPU: the versions as text, the GPU, NCCL_*/CUDA_* ------------------
if ldd "$pexec" 2>/dev/null | grep -q libcudart && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    db="$tmp/envcuda.db"
    NCCL_PIPESIM_TEST=on CUDA_PIPESIM_TEST=on OMP_PIPESIM_TEST=cpu-only $pexec --backend cuda --db "$db" --quiet \
        --set batch.iterations=1 scenarios/tiny-cpu.scn 2>"$tmp/err"
    nccl=$(sql "$db" "select cast(value as integer) from metrics where run_id = 1 and name = 'nccl_version'")
    want=$(awk -v v="$nccl" 'BEGIN { if (v >= 20900) printf "%d.%d.%d", v / 10000, (v % 10000) / 100, v % 100;
                                     else printf "%d.%d.%d", v / 1000, (v % 1000) / 100, v % 100 }')
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 2>/dev/null)
    got="$(envq 1 backend)|$(envq 1 nccl)|$(envq 1 NCCL_PIPESIM_TEST)|$(envq 1 CUDA_PIPESIM_TEST)|$(envq 1 OMP_PIPESIM_TEST)|$(envq 1 gpu0_name)"
    [ "$got" = "cuda|$want|on|on||$gpu" ] && ok "pexec --backend cuda stores its versions, GPU and NCCL_/CUDA_ variables" \
        || nok "pexec --backend cuda stores its versions, GPU and NCCL_/CUDA_ variables" "$got" "want cuda|$want|on|on||$gpu" "$(head -c 300 "$tmp/err")"
    case "$(envq 1 gpu0_compute_capability)" in [0-9]*.[0-9]*) ok "gpu0_compute_capability is major.minor ($(envq 1 gpu0_compute_capability))" ;;
        *) nok "gpu0_compute_capability is major.minor" "'$(envq 1 gpu0_compute_capability)'" ;; esac
else
    ok "pexec --backend cuda stores its environment # skip: no GPU visible (or no CUDA backend)"
fi
