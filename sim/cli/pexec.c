/* sim/cli/pexec.c: the pexec command: the same scenario and the same checked Program as psim,
 * run for real (exec/runtime.h), measured, stored and printed like psim's runs (sim/run.h),
 * so the two can be compared. Started plainly, it runs one thread per device; started by
 * mpirun (a build with MPI), one rank per device, rank 0 storing and printing. Exit statuses
 * as psim's; a run that fails while it runs (a receive that mismatches, a watchdog that fires,
 * a peer that died) is an executor failure, 1, with host and rank in the message, and is
 * stored as failed with the rows measured until then. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef PIPESIM_MPI
#include <mpi.h>
#endif

#ifdef PIPESIM_CUDA
#include "exec/pexec_cuda.h"
#endif
#include "kernels/layer.h"
#include "sim/run/run.h"
#include "exec/runtime.h"
#include "sim/sched/sched_file.h"

#ifdef PIPESIM_MPI
/* mpirun ends every rank with SIGTERM (then SIGKILL 1 s later) as soon as one rank dies,
 * unless started with --enable-recovery; each rank then says so in one line. Silent once the
 * rank reported a failure itself (MPI_Abort ends the job the same way). */
static volatile sig_atomic_t ending;
static char term_msg[512];

static void on_term(int sig) {
    (void)sig;
    if (!ending && write(2, term_msg, strlen(term_msg)) < 0) _exit(1);
    _exit(1);
}

static void on_term_install(int rank) {
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    snprintf(term_msg, sizeof term_msg, "pexec: rank %d on %s: ended by mpirun (SIGTERM) "
             "before this rank finished: another rank died or ended the job, or mpirun was "
             "interrupted; if a rank died, nothing is stored (under mpirun --enable-recovery "
             "the survivors end on the watchdog and rank 0 stores the run as failed)\n",
             rank, host);
    signal(SIGTERM, on_term);
}
#endif

/* After a failed run: says why (with host or rank), stores the run as failed with its rows
 * (rank 0), and on ranks waits until rank 0 has stored it. Returns 1. */
static int failed_run(const RunOptions *o, Run *r, Runtime *rt, int mpi, int rank,
                      const char *why) {
    char error[1024], host[64] = "?";
    gethostname(host, sizeof host - 1);
    if (mpi) snprintf(error, sizeof error, "%s", why); // "rank R on HOST: ..."
    else snprintf(error, sizeof error, "host %s: %s", host, why);
    fprintf(stderr, "pexec: %s: %s\n", r->scn.path, error);
#ifdef PIPESIM_MPI
    ending = 1;
#endif
    if (rank == 0) run_store_failed(o, r, error);
#ifdef PIPESIM_MPI
    if (mpi && runtime_rank_settle(rt) != 0)
        fprintf(stderr, "pexec: rank %d on %s: rank 0 never confirmed storing the run (it died "
                "or stalled), so it is not stored\n", rank, host);
#else
    (void)rt;
#endif
    return 1;
}

/* What a CPU run ran on, beside every run's pairs (runenv_add_base): the backend, OpenBLAS's
 * build, the MPI library of a build with MPI (callable before MPI_Init), and the OPENBLAS_* and
 * OMP_* variables that steer the BLAS threads. Collected before the run, so a failed run
 * carries it too. Returns 0, or 1 out of memory. */
static int cpu_env(RunEnv *env, int mpi) {
    int rc = runenv_add(env, "backend", mpi ? "cpu (MPI ranks)" : "cpu (threads)");
    if (rc == 0) rc = runenv_add(env, "blas_config", layer_blas_config());
#ifdef PIPESIM_MPI
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (rc == 0 && MPI_Get_library_version(lib, &len) == MPI_SUCCESS)
        rc = runenv_add(env, "mpi_library", lib);
#endif
    if (rc == 0) rc = runenv_add_vars(env, "OPENBLAS_") < 0 ? -1 : 0;
    if (rc == 0) rc = runenv_add_vars(env, "OMP_") < 0 ? -1 : 0;
    if (rc != 0) fprintf(stderr, "pexec: out of memory\n");
    return rc != 0;
}

/* Runs r's Program (as MPI rank `rank` when mpi); fills r->tl (on rank 0 under MPI).
 * Returns an exit status. */
static int execute(const RunOptions *o, Run *r, int mpi, int rank) {
    const ScnModel *m = &r->scn.model;
    RuntimeSpec spec = {.pr = &r->prog, .pl = &r->plan, .seed = 1,
                        .shape = {.samples = (int32_t)r->scn.batch.micro_batch_size,
                                  .seq = (int32_t)m->seq_len, .hidden = (int32_t)m->hidden,
                                  .heads = (int32_t)m->heads, .ffn = (int32_t)m->ffn_hidden},
                        .iterations = (int32_t)r->scn.batch.iterations,
                        .watchdog_s = o->watchdog_s, .drop_send_of = o->drop_send,
                        .rendezvous = o->rendezvous, .kill_device = o->kill_device,
                        .kill_after = o->kill_after, .stall = o->stall};
    Runtime *rt;
    layer_set_blas_threads(1);
    if (cpu_env(&r->env, mpi) != 0) return 1;
    if (runtime_create(&spec, &rt) != 0) {
        fprintf(stderr, "pexec: out of memory for the model's %lld layers; try --scale\n",
                (long long)m->layers);
        return 1;
    }
    char why[512];
    double t0 = run_now_ms();
    int rc = 1;
#ifdef PIPESIM_MPI
    if (mpi) rc = runtime_run_rank(rt, &r->tl, why, sizeof why);
#endif
    if (!mpi) rc = runtime_run(rt, &r->tl, why, sizeof why);
    r->wall_ms = run_now_ms() - t0;
    if (mpi && rank == 0 && rc == 0 && !o->quiet)
        fprintf(stderr, "pexec: the ranks' clocks drifted %.1f us apart during the run\n",
                (double)runtime_clock_drift_ns(rt) / 1e3);
#ifdef PIPESIM_MPI
    double lat = 0, bw = 0; // the links, fitted after the run so they do not disturb it
    if (mpi && rc == 0 && runtime_probe_links(rt, &lat, &bw) == 0 && rank == 0) {
        r->extra[r->nextra++] = (StoreMetric){"link_latency_us", lat};
        r->extra[r->nextra++] = (StoreMetric){"link_bandwidth_gbs", bw};
    }
#endif
    if (rc != 0) rc = failed_run(o, r, rt, mpi, rank, why);
    runtime_free(rt);
    return rc;
}

/* --backend: the CPU runtime above, or the CUDA one (exec/pexec_cuda.h) when built. */
static int execute_backend(const RunOptions *o, Run *r, int mpi, int rank) {
    (void)mpi, (void)rank;
    if (o->backend == RUN_BACKEND_CPU) return execute(o, r, mpi, rank);
#ifdef PIPESIM_CUDA
    return pexec_cuda_execute(o, r, mpi);
#else
    fprintf(stderr, "pexec: --backend cuda: this pexec was built without the CUDA backend (nvcc "
                    "was not found at build time); install the CUDA toolkit and rebuild (make "
                    "clean all CUDA_HOME=...), or use --backend cpu\n");
#endif
    return 1;
}

/* Whether mpirun started this process (Open MPI's or a PMI launcher's environment). */
static int under_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL;
}

int main(int argc, char **argv) {
    RunOptions o;
    int rc = run_options_parse(argc, argv, "pexec", &o);
    if (rc != 0) return rc;
    int mpi = under_mpirun(), rank = 0;
#ifdef PIPESIM_MPI
    int size = 1;
    if (mpi) {
        int provided; // a progress thread joins the worker in MPI, one at a time
        MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); // a dead peer is an error
        on_term_install(rank);                                     //   code, not an abort
    }
#else
    if (mpi) {
        fprintf(stderr, "pexec: started by mpirun, but this pexec was built without MPI; "
                        "install libopenmpi-dev and rebuild (make clean all)\n");
        return 1;
    }
#endif
    Run r = {0};
    rc = run_prepare(&o, &r);
    if (rc == 0 && !o.dump && (scenario_has_tail(&r.scn) || scenario_tensor(&r.scn) > 1)) {
        if (rank == 0)
            fprintf(stderr, "pexec: %s: parallel.data = %lld, parallel.tensor = %lld: pexec runs "
                    "one pipeline replica without tensor parallelism or an optimizer step; "
                    "simulate this with psim, or set parallel.data=1 and parallel.tensor=1 and "
                    "leave costs.optimizer_ms unset\n", r.scn.path,
                    (long long)r.scn.parallel.data, (long long)r.scn.parallel.tensor);
        rc = 2;
    }
#ifdef PIPESIM_MPI
    if (rc == 0 && mpi && o.backend == RUN_BACKEND_CPU && size != r.prog.devices) {
        if (rank == 0)
            fprintf(stderr, "pexec: mpirun started %d ranks but the scenario has stages = %d; "
                    "use mpirun -np %d\n", size, r.prog.devices, r.prog.devices);
        rc = 2;
    }
#endif
    if (rc == 0 && o.kill_after > 0 && o.kill_device >= r.prog.devices) {
        if (rank == 0)
            fprintf(stderr, "pexec: --%s %d:%lld: there is no device %d (stages = %d); "
                    "give a device below %d\n", o.stall ? "stall-after" : "kill-after",
                    o.kill_device, (long long)o.kill_after,
                    o.kill_device, r.prog.devices, r.prog.devices);
        rc = 2;
    }
    int exec_rc = 0;
    if (rc == 0 && o.dump) {
        if (rank == 0) sched_file_write(stdout, &r.prog, r.scn.model.name);
    } else if (rc == 0 && (rc = exec_rc = execute_backend(&o, &r, mpi, rank)) == 0 && rank == 0) {
        rc = run_report(&o, &r);
    }
    run_free(&r);
#ifdef PIPESIM_MPI
    // a rank that failed while running may leave a stalled peer behind: end them all
    if (mpi && exec_rc != 0) ending = 1, MPI_Abort(MPI_COMM_WORLD, exec_rc);
    if (mpi) MPI_Finalize();
#else
    (void)exec_rc;
#endif
    return rc;
}
