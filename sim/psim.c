/* sim/psim.c: the psim command: scenario -> plan -> schedule -> check -> engine -> metrics ->
 * store and print (the shared steps are in run.h). Exit status: 0 done, 1 environment failure
 * (files, database, memory), 2 bad input (scenario, options), 3 with --memory-limit when a
 * device needs more than hardware.memory_gib (the run is still stored and printed). */
#include <stdio.h>

#include "engine.h"
#include "run.h"
#include "sched_file.h"

/* Prints the Program as a schedule file (--dump-schedule). */
static void dump(const Run *r) {
    char header[256];
    snprintf(header, sizeof header, "%s: schedule %s, stages %d, chunks %d, micro_batches %lld",
             r->scn.model.name, r->sched->name, r->prog.devices, r->prog.chunks,
             (long long)r->scn.batch.micro_batches);
    sched_file_write(stdout, &r->prog, header);
}

int main(int argc, char **argv) {
    RunOptions o;
    int rc = run_options_parse(argc, argv, "psim", &o);
    if (rc != 0) return rc;
    Run r = {0};
    rc = run_prepare(&o, &r);
    if (rc == 0 && o.dump) {
        dump(&r);
    } else if (rc == 0) {
        char err[SCN_ERR_MAX];
        double t0 = run_now_ms();
        int e = engine_run(&r.prog, &r.cost, (int32_t)r.scn.batch.iterations, &r.tl, err,
                           sizeof err);
        r.wall_ms = run_now_ms() - t0;
        if (e == -1) {
            fprintf(stderr, "psim: out of memory\n");
            rc = 1;
        } else if (e == -2) {
            fprintf(stderr, "psim: %s: the run stalls: %s\n", r.scn.path, err);
            rc = 2;
        } else {
            rc = run_report(&o, &r);
        }
    }
    run_free(&r);
    return rc;
}
