/* exec/pexec.c: the pexec command: the same scenario and the same checked Program as psim,
 * run for real (exec/runtime.h), measured, stored and printed like psim's runs (sim/run.h),
 * so the two can be compared. Started plainly, it runs one thread per device; started by
 * mpirun (a build with MPI), one rank per device, rank 0 storing and printing. Exit statuses
 * as psim's; a receive that would mismatch or a watchdog that fires is bad input (2), since
 * the Program caused it. */
#include <stdio.h>
#include <stdlib.h>

#ifdef PIPESIM_MPI
#include <mpi.h>
#endif

#include "run.h"
#include "runtime.h"
#include "sched_file.h"

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
                        .rendezvous = o->rendezvous};
    Runtime *rt;
    layer_set_blas_threads(1);
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
    runtime_free(rt);
    if (rc != 0) fprintf(stderr, "pexec: %s: %s\n", r->scn.path, why);
    return rc;
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
    if (rc == 0 && mpi && size != r.prog.devices) {
        if (rank == 0)
            fprintf(stderr, "pexec: mpirun started %d ranks but the scenario has stages = %d; "
                    "use mpirun -np %d\n", size, r.prog.devices, r.prog.devices);
        rc = 2;
    }
#endif
    int exec_rc = 0;
    if (rc == 0 && o.dump) {
        if (rank == 0) sched_file_write(stdout, &r.prog, r.scn.model.name);
    } else if (rc == 0 && (rc = exec_rc = execute(&o, &r, mpi, rank)) == 0 && rank == 0) {
        rc = run_report(&o, &r);
    }
    run_free(&r);
#ifdef PIPESIM_MPI
    // a rank that failed while running may leave its peers waiting on it: end them all
    if (mpi && exec_rc != 0) MPI_Abort(MPI_COMM_WORLD, exec_rc);
    if (mpi) MPI_Finalize();
#else
    (void)exec_rc;
#endif
    return rc;
}
