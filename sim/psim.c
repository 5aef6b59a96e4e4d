/* sim/psim.c: the psim command: scenario -> plan -> schedule -> check -> engine -> metrics ->
 * store and print. Exit status: 0 done, 1 environment failure (files, database, memory),
 * 2 bad input (scenario, options), 3 with --memory-limit when a device needs more than
 * hardware.memory_gib (the run is still stored and printed). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cost.h"
#include "engine.h"
#include "metrics.h"
#include "plan.h"
#include "program.h"
#include "scenario.h"
#include "schedule.h"
#include "sched_file.h"
#include "store.h"
#include "version.h"

#define PROG "psim"
#define MAX_SETS 256

typedef struct {
    const char *scenario;
    const char *db;    // NULL: do not store
    const char *sets[MAX_SETS];
    int nsets;
    int json, quiet, dump, memory_limit;
} Options;

/* Everything one simulation owns, released by sim_free whatever stage it reached. */
typedef struct {
    Scenario scn;
    Plan plan;
    Program prog;
    CostModel cost;
    Timeline tl;
    Metrics mt;
    const Schedule *sched;
    double wall_ms; // simulation wall time (engine only), for diagnostics on stderr
} Sim;

static void usage(FILE *f) {
    fprintf(f,
            "usage: " PROG " [options] FILE.scn\n"
            "Simulates a pipeline-parallel training scenario with a discrete-event engine,\n"
            "prints its summary and stores the run (scenario, every op, metrics) in SQLite.\n\n"
            "options:\n"
            "  --db PATH          database to append the run to (default pipesim.db)\n"
            "  --no-db            do not store the run\n"
            "  --set SEC.KEY=VAL  override a scenario key, e.g. --set batch.micro_batches=64\n"
            "                     (repeatable; applied after the file, last one wins)\n"
            "  --json             print one JSON object instead of the tables\n"
            "  --dump-schedule    print the schedule as a schedule file (for schedule =\n"
            "                     custom) and stop\n"
            "  --memory-limit     exit with status 3 when a device needs more than\n"
            "                     hardware.memory_gib (default: a warning, status 0)\n"
            "  --quiet            print nothing on success\n"
            "  --help, --version\n\n"
            "schedules: %s\n"
            "gpu presets: %s\n"
            "exit status: 0 done, 1 files/database/memory failure, 2 bad input,\n"
            "             3 over memory_gib with --memory-limit\n",
            sched_names(), gpu_preset_names());
}

static int options_parse(int argc, char **argv, Options *o) {
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},   {"no-db", no_argument, 0, 'n'},
        {"set", required_argument, 0, 's'},  {"json", no_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},      {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},    {"dump-schedule", no_argument, 0, 'S'},
        {"memory-limit", no_argument, 0, 'M'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->db = "pipesim.db";
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': o->db = optarg; break;
        case 'n': o->db = NULL; break;
        case 'j': o->json = 1; break;
        case 'q': o->quiet = 1; break;
        case 'S': o->dump = 1; break;
        case 'M': o->memory_limit = 1; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf(PROG " " PIPESIM_VERSION "\n"); exit(0);
        case 's':
            if (o->nsets == MAX_SETS) {
                fprintf(stderr, PROG ": at most %d --set options\n", MAX_SETS);
                return 2;
            }
            o->sets[o->nsets++] = optarg;
            break;
        default:
            fprintf(stderr, PROG ": unknown or incomplete option '%s'; see " PROG " --help\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, PROG ": expected one scenario file, got %d; usage: " PROG
                        " [options] FILE.scn\n", argc - optind);
        return 2;
    }
    o->scenario = argv[optind];
    return 0;
}

static void sim_free(Sim *sm) {
    metrics_free(&sm->mt);
    timeline_free(&sm->tl);
    cost_free(&sm->cost);
    program_free(&sm->prog);
    plan_free(&sm->plan);
    scenario_free(&sm->scn);
}

static int oom(void) {
    fprintf(stderr, PROG ": out of memory\n");
    return 1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs the whole pipeline of one scenario; returns an exit status. */
static int simulate(const Options *o, Sim *sm) {
    char err[SCN_ERR_MAX];
    int rc = scenario_load(o->scenario, o->sets, o->nsets, &sm->scn, err);
    if (rc != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return rc;
    }
    sm->sched = sched_find(sm->scn.pipeline.schedule);
    SchedParams sp = scenario_sched_params(&sm->scn);
    SchedIssue issue = {0};
    rc = sm->sched->build(&sp, &sm->prog, &issue);
    if (rc != 0) {
        if (rc < 0) return oom();
        fprintf(stderr, PROG ": %s\n", issue.msg);
        return 2;
    }
    if (program_check(&sm->prog, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s: schedule %s gives an invalid program: %s\n",
                sp.file && sp.file[0] ? sp.file : sm->scn.path, sm->sched->name, err);
        return 2;
    }
    if (o->dump) return 0;
    rc = plan_build_copies(&sm->scn, sm->prog.pipes, &sm->plan, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) return oom();
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    rc = cost_build(&sm->scn, &sm->plan, &sm->cost, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) return oom();
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    double t0 = now_ms();
    rc = engine_run(&sm->prog, &sm->cost, (int32_t)sm->scn.batch.iterations, &sm->tl, err,
                    sizeof err);
    sm->wall_ms = now_ms() - t0;
    if (rc == -1) return oom();
    if (rc == -2) {
        fprintf(stderr, PROG ": %s: the run stalls: %s\n", sm->scn.path, err);
        return 2;
    }
    if (metrics_compute(&sm->scn, &sm->plan, &sm->prog, &sm->cost, &sm->tl, &sm->mt) != 0)
        return oom();
    return 0;
}

/* Run metrics and per-device metrics in the store's name/value form. */
#define RUN_METRICS(X)                                                                         \
    X(makespan_ms) X(iteration_ms) X(bubble_rate) X(bubble_ideal) X(throughput_tokens_per_s)   \
    X(tflops_per_gpu) X(mfu) X(model_flops) X(peak_tflops)
#define DEVICE_METRICS(X)                                                                      \
    X(busy_ms) X(idle_ms) X(span_ms) X(peak_activations) X(peak_memory_gib) X(weights_gib)    \
    X(grads_gib) X(optimizer_gib) X(activations_gib) X(layers) X(weight_versions) X(staleness)
#define COUNT(name) +1
enum { NRUN_METRICS = 0 RUN_METRICS(COUNT), NDEVICE_METRICS = 0 DEVICE_METRICS(COUNT) };

static int store_sim(const Options *o, const Sim *sm, int64_t *run_id) {
    char err[512], host[256] = "";
    Store *st;
    if (store_open(o->db, &st, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    gethostname(host, sizeof host - 1);
    char *resolved = scenario_format(&sm->scn);
    size_t olen = 1;
    for (int i = 0; i < o->nsets; i++) olen += strlen(o->sets[i]) + 1;
    char *overrides = calloc(olen, 1);
    StoreMetric rm[NRUN_METRICS];
    StoreDeviceMetric *dm = malloc((size_t)sm->mt.devices * NDEVICE_METRICS * sizeof *dm);
    int rc = 1;
    if (!resolved || !overrides || !dm) {
        fprintf(stderr, PROG ": out of memory\n");
        goto done;
    }
    for (int i = 0; i < o->nsets; i++) strcat(strcat(overrides, o->sets[i]), "\n");
    size_t k = 0;
#define RUN_ROW(name) rm[k++] = (StoreMetric){#name, (double)sm->mt.name};
    RUN_METRICS(RUN_ROW)
    k = 0;
    for (int32_t d = 0; d < sm->mt.devices; d++) {
#define DEV_ROW(name) dm[k++] = (StoreDeviceMetric){d, #name, (double)sm->mt.dev[d].name};
        DEVICE_METRICS(DEV_ROW)
    }
    StoreRunInfo info = {.tool = PROG, .scenario_path = o->scenario,
                         .scenario_text = sm->scn.text, .resolved = resolved,
                         .overrides = o->nsets ? overrides : NULL,
                         .schedule = sm->sched->name, .version = PIPESIM_VERSION,
                         .host = host, .devices = sm->plan.devices,
                         .micro_batches = (int32_t)sm->scn.batch.micro_batches,
                         .chunks = sm->plan.chunks,
                         .iterations = (int32_t)sm->scn.batch.iterations};
    if (store_run_write(st, &info, &sm->tl, &sm->mt.mem, rm, NRUN_METRICS, dm, k, run_id, err,
                        sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto done;
    }
    rc = 0;
done:
    free(resolved), free(overrides), free(dm);
    store_close(st);
    return rc;
}

static void print_json(const Sim *sm, int64_t run_id) {
    const Metrics *mt = &sm->mt;
    const Scenario *s = &sm->scn;
    printf("{\"scenario\": \"%s\", \"schedule\": \"%s\", \"devices\": %d, \"chunks\": %d, "
           "\"micro_batches\": %lld, \"iterations\": %lld, \"run_id\": %lld,\n",
           s->model.name, sm->sched->name, mt->devices, sm->plan.chunks,
           (long long)s->batch.micro_batches, (long long)s->batch.iterations,
           (long long)run_id);
#define JSON_RUN(name) printf(" \"" #name "\": %.17g,", (double)mt->name);
    RUN_METRICS(JSON_RUN)
    printf("\n \"ops\": %lld, \"transfers\": %lld, \"bottleneck_device\": %d,\n \"stages\": [",
           (long long)mt->ops, (long long)mt->transfers, mt->bottleneck);
    for (int32_t d = 0; d < mt->devices; d++) {
        printf("%s\n  {\"device\": %d", d ? "," : "", d);
#define JSON_DEV(name) printf(", \"" #name "\": %.17g", (double)mt->dev[d].name);
        DEVICE_METRICS(JSON_DEV)
        printf("}");
    }
    printf("\n]}\n");
}

static void print_summary(const Sim *sm) {
    const Metrics *mt = &sm->mt;
    const Scenario *s = &sm->scn;
    printf("# %s: %s, p=%d v=%d m=%lld b=%lld, %lld layers, %s on %s (%.0f TFLOP/s x %.2f)\n",
           s->model.name, sm->sched->name, mt->devices, sm->plan.chunks,
           (long long)s->batch.micro_batches, (long long)s->batch.micro_batch_size,
           (long long)s->model.layers, dtype_name(s->model.dtype),
           s->hw.gpu[0] ? s->hw.gpu : "custom", s->hw.peak_tflops, s->hw.efficiency);
    printf("%-22s %14.3f ms\n", "makespan", mt->makespan_ms);
    printf("%-22s %14.3f ms  (%lld iteration%s)\n", "iteration time", mt->iteration_ms,
           (long long)s->batch.iterations, s->batch.iterations == 1 ? "" : "s");
    printf("%-22s %14.2f %%   (idle / total)\n", "bubble rate", 100.0 * mt->bubble_rate);
    printf("%-22s %14.2f %%   (idle / ideal)\n", "bubble (ideal)", 100.0 * mt->bubble_ideal);
    printf("%-22s %14.0f tokens/s\n", "throughput", mt->throughput_tokens_per_s);
    printf("%-22s %14.1f TFLOP/s\n", "per GPU", mt->tflops_per_gpu);
    printf("%-22s %14.2f %%\n", "MFU", 100.0 * mt->mfu);
    printf("%-22s %14lld ops, %lld transfers of %.2f MiB\n", "simulated",
           (long long)mt->ops, (long long)mt->transfers,
           (double)sm->cost.xfer_bytes / (1024.0 * 1024.0));
    const DeviceMetrics *d0 = &mt->dev[0], *dl = &mt->dev[mt->devices - 1];
    if (d0->weight_versions > 1)
        printf("%-22s %8d .. %d per device, gradients applied %d .. %d updates late\n",
               "weight versions", d0->weight_versions, dl->weight_versions, d0->staleness,
               dl->staleness);
    printf("\n# device layers    busy_ms    idle_ms  peak_act  weights_gib  grads_gib  "
           "optim_gib    act_gib   peak_gib\n");
    for (int32_t d = 0; d < mt->devices; d++) {
        const DeviceMetrics *dm = &mt->dev[d];
        printf("%8d %6d %10.3f %10.3f %9d %12.2f %10.2f %10.2f %10.2f %10.2f%s\n", d,
               dm->layers, dm->busy_ms, dm->idle_ms, dm->peak_activations, dm->weights_gib,
               dm->grads_gib, dm->optimizer_gib, dm->activations_gib, dm->peak_memory_gib,
               d == mt->bottleneck ? "  <- busiest" : "");
    }
}

/* Names every device over memory_gib on stderr (unless quiet); returns how many there are. */
static int check_memory(const Sim *sm, int quiet, int limit) {
    int over = 0;
    for (int32_t d = 0; d < sm->mt.devices; d++) {
        if (sm->mt.dev[d].peak_memory_gib <= sm->scn.hw.memory_gib) continue;
        over++;
        if (!quiet)
            fprintf(stderr, PROG ": %s: device %d needs %.1f GiB, more than memory_gib = %g\n",
                    limit ? "error" : "warning", d, sm->mt.dev[d].peak_memory_gib,
                    sm->scn.hw.memory_gib);
    }
    return over;
}

int main(int argc, char **argv) {
    Options o;
    int rc = options_parse(argc, argv, &o);
    if (rc != 0) return rc;
    Sim sm;
    memset(&sm, 0, sizeof sm);
    rc = simulate(&o, &sm);
    if (rc == 0 && o.dump) {
        char header[256];
        snprintf(header, sizeof header, "%s: schedule %s, stages %d, chunks %d, micro_batches %lld",
                 sm.scn.model.name, sm.sched->name, sm.prog.devices, sm.prog.chunks,
                 (long long)sm.scn.batch.micro_batches);
        sched_file_write(stdout, &sm.prog, header);
        sim_free(&sm);
        return 0;
    }
    int64_t run_id = 0;
    if (rc == 0 && o.db) rc = store_sim(&o, &sm, &run_id);
    if (rc == 0) {
        if (o.json) print_json(&sm, run_id);
        else if (!o.quiet) print_summary(&sm);
        if (check_memory(&sm, o.quiet, o.memory_limit) && o.memory_limit) rc = 3;
        if (!o.quiet) {
            if (o.db)
                fprintf(stderr, PROG ": stored run %lld in %s (%lld ops simulated in %.1f ms)\n",
                        (long long)run_id, o.db, (long long)sm.mt.ops, sm.wall_ms);
        }
    }
    sim_free(&sm);
    return rc;
}
