/* exec/pexec.c: the pexec command: the same scenario and the same checked Program as psim,
 * run for real on one thread per device (exec/runtime.h), measured, stored and printed like
 * psim's runs (sim/run.h), so the two can be compared. Exit statuses as psim's; a receive
 * that would mismatch or a watchdog that fires is bad input (2), since the Program caused it. */
#include <stdio.h>

#include "run.h"
#include "runtime.h"
#include "sched_file.h"

/* Runs r's Program on threads; fills r->tl. Returns an exit status. */
static int execute(const RunOptions *o, Run *r) {
    const ScnModel *m = &r->scn.model;
    RuntimeSpec spec = {.pr = &r->prog, .pl = &r->plan, .seed = 1,
                        .shape = {.samples = (int32_t)r->scn.batch.micro_batch_size,
                                  .seq = (int32_t)m->seq_len, .hidden = (int32_t)m->hidden,
                                  .heads = (int32_t)m->heads, .ffn = (int32_t)m->ffn_hidden},
                        .iterations = (int32_t)r->scn.batch.iterations,
                        .watchdog_s = o->watchdog_s, .drop_send_of = -1};
    Runtime *rt;
    layer_set_blas_threads(1);
    if (runtime_create(&spec, &rt) != 0) {
        fprintf(stderr, "pexec: out of memory for the model's %lld layers; try --scale\n",
                (long long)m->layers);
        return 1;
    }
    char why[512];
    double t0 = run_now_ms();
    int rc = runtime_run(rt, &r->tl, why, sizeof why);
    r->wall_ms = run_now_ms() - t0;
    runtime_free(rt);
    if (rc != 0) fprintf(stderr, "pexec: %s: %s\n", r->scn.path, why);
    return rc;
}

int main(int argc, char **argv) {
    RunOptions o;
    int rc = run_options_parse(argc, argv, "pexec", &o);
    if (rc != 0) return rc;
    Run r = {0};
    rc = run_prepare(&o, &r);
    if (rc == 0 && o.dump) sched_file_write(stdout, &r.prog, r.scn.model.name);
    else if (rc == 0 && (rc = execute(&o, &r)) == 0) rc = run_report(&o, &r);
    run_free(&r);
    return rc;
}
