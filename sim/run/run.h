/* sim/run/run.h: what psim and pexec share about one run of a scenario: the command line,
 * scenario -> schedule -> checked Program -> plan -> cost, and once a Timeline exists
 * (predicted or measured) its metrics, the store and the printed summary. Exit statuses:
 * 0 done, 1 environment failure (files, database, memory, threads), 2 bad input,
 * 3 a device over memory_gib with --memory-limit. */
#ifndef PIPESIM_RUN_H
#define PIPESIM_RUN_H

#include <sys/types.h>

#include "sim/model/cost.h"
#include "sim/metrics/metrics.h"
#include "sim/plan/plan.h"
#include "sim/program/program.h"
#include "sim/run/runenv.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"
#include "traces/store.h"
#include "sim/program/timeline.h"

#define RUN_MAX_SETS 256
#define RUN_MAX_EXTRA 8 // run metrics a tool adds (pexec: link fit, CUDA versions)

enum { RUN_BACKEND_CPU = 0, RUN_BACKEND_CUDA = 1 };

typedef struct {
    const char *prog;     // "psim" or "pexec": messages, --help, the runs table's tool
    const char *scenario; // the scenario file
    const char *db;       // NULL: do not store
    const char *sets[RUN_MAX_SETS]; // --set arguments, in order
    int nsets;
    int json, quiet, dump, memory_limit;
    int32_t scale;        // pexec: divide hidden, ffn_hidden, seq_len and heads by this
    double watchdog_s;    // pexec: longest wait for one message
    int32_t drop_send;    // pexec, for testing: this device never sends its first message (-1)
    int rendezvous;       // pexec: a send completes only when its receive has taken it
    int32_t kill_device;  // pexec, for testing: this device dies after kill_after ops
    int64_t kill_after;   //   (--kill-after D:N; 0: never)
    int stall;            // pexec, for testing: that device stalls instead (--stall-after D:N)
    int backend;          // pexec: RUN_BACKEND_CPU (threads or MPI ranks) or RUN_BACKEND_CUDA
    const char *sweeps[16]; // psim: --sweep section.key=v1,v2,... (cartesian product)
    int nsweeps;
    int64_t sweep;        // the sweep this run is a point of (stored with it), 0 for none
    char hf_set[SCN_PATH_MAX + 32]; // --hf PATH as the --set it stands for, in sets[]
} RunOptions;

/* Everything one run owns, released by run_free whatever stage it reached. */
typedef struct {
    Scenario scn;
    Plan plan;
    Program prog;
    CostModel cost;
    Timeline tl;
    Metrics mt;
    const Schedule *sched;
    VaryFailure failure;  // psim: the failure the engine played ([variability]); none: zero
    double wall_ms;       // time to produce the timeline, for the closing line on stderr
    StoreMetric extra[RUN_MAX_EXTRA]; // more run metrics (pexec's link fit, CUDA versions)
    int nextra;
    RunEnv env;           // what the tool adds to the stored environment (pexec: BLAS, MPI,
                          //   CUDA, variables); the store adds runenv_add_base's pairs
    double *split;        // owned: [device * COST_SPLIT + i] ms per iteration of each kind of
                          //   work (cost.h's split): psim's prediction, or what pexec measured
                          //   (its kernels by class; launch: op time outside them); or NULL
    double *pass_split;   // owned: the same by pass, [(device * 3 + pass) * COST_SPLIT + i]
                          //   (pass F, B, W; a BW op's B and W apart); NULL with split
} Run;

/* run_options_parse reads argv for prog; --help and --version print and exit 0. Returns 0,
 * or 2 (with a message) for bad options. */
int run_options_parse(int argc, char **argv, const char *prog, RunOptions *o);

/* --hf PATH as the override it stands for, "model.hf_config=PATH", in out (len bytes, at
 * least SCN_PATH_MAX + 32). Returns 0, or 2 with a message when PATH is empty or too long. */
int run_hf_set(const char *prog, const char *path, char *out, size_t len);

/* The Program of scenario s, checked, and with priced also its Plan and CostModel. A searched
 * schedule (schedule.h: zb-1p, zb-2p, zb-auto) orders its ops against the plan's prices, so
 * for one the three are always built: first with its stand-in's order (the handcrafted
 * schedule of the same placement), then ordered against that plan's prices and memory, and the
 * plan and prices redone for the order found, a third time when they changed (a balanced
 * partition that moved layers). Returns 0; 2 with err set (bad input: the schedule's issue,
 * the checker's complaint, the plan's or the prices'); -1 out of memory. On failure all three
 * are freed. */
int run_build(const Scenario *s, int priced, Program *pr, Plan *pl, CostModel *c, char *err,
              size_t errlen);

/* run_prepare loads the scenario, builds and checks the Program, and (unless o->dump) the plan
 * and the cost model. Returns an exit status. */
int run_prepare(const RunOptions *o, Run *r);

/* run_simulate plays r's Program in the engine with the scenario's [variability] (a failure
 * it plays goes into r->failure) into r->tl, and times it in r->wall_ms: what psim runs, so
 * every tool that simulates a point gets psim's numbers. Returns engine_run_varied's 0, -1
 * (out of memory) or -2 (the run stalls; err says why). */
int run_simulate(Run *r, char *err, size_t errlen);

/* Fills r->split (the predicted ms of each device's work per iteration by cost.h's class,
 * over the Program's ops; psim calls it after run_prepare); left NULL when no op has a split
 * (flat model, measured [costs]). Returns 0, or -1 when out of memory. */
/* In a forked worker (psim --sweep, pplan): ask the kernel for SIGTERM when the parent
 * (parent_pid, taken before the fork) ends, and end at once if it already has, so no worker
 * outlives a killed parent and keeps storing runs into its database. */
void run_worker_dies_with_parent(pid_t parent_pid);

int run_split(Run *r);

/* run_report computes the metrics of r->tl, stores the run (with runenv_add_base's pairs and
 * r->env), prints it and checks memory.
 * Returns an exit status. */
int run_report(const RunOptions *o, Run *r);

/* run_store_failed stores r as a failed run (pexec): r->tl's rows, measured until the failure,
 * and error (why it failed, with host and rank), and its environment as run_report's,
 * without metrics, in one transaction; nothing
 * without a database. Returns 0, or 1 when the store failed. */
int run_store_failed(const RunOptions *o, Run *r, const char *error);

void run_free(Run *r);

/* Wall-clock milliseconds (CLOCK_MONOTONIC), for timing what produced the timeline. */
double run_now_ms(void);

#endif
