/* sim/run/run.c: the parts of a run psim and pexec share (run.h). */
#include "sim/run/run.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/engine/engine.h"
#include "traces/store.h"
#include "sim/engine/variability.h"
#include "sim/run/version.h"

double run_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int oom(const RunOptions *o) {
    fprintf(stderr, "%s: out of memory\n", o->prog);
    return 1;
}

static int is_pexec(const char *prog) { return strcmp(prog, "pexec") == 0; }

static void usage(const char *prog, FILE *f) {
    fprintf(f, "usage: %s [options] FILE.scn\n", prog);
    if (is_pexec(prog))
        fprintf(f, "Runs a pipeline-parallel training scenario for real, one thread per device\n"
                   "(the synthetic layer on OpenBLAS), prints the measured summary and stores\n"
                   "the measured run beside psim's predictions in SQLite.\n\n");
    else
        fprintf(f, "Simulates a pipeline-parallel training scenario with a discrete-event engine,\n"
                   "prints its summary and stores the run (scenario, every op, metrics) in SQLite.\n\n");
    fprintf(f,
            "options:\n"
            "  --db PATH          database to append the run to (default pipesim.db)\n"
            "  --no-db            do not store the run\n"
            "  --set SEC.KEY=VAL  override a scenario key, e.g. --set batch.micro_batches=64\n"
            "                     (repeatable; applied after the file, last one wins)\n"
            "  --hf CONFIG.json   take the [model] keys the scenario does not give from a\n"
            "                     Hugging Face config.json (Llama, Mistral, Qwen2, Gemma):\n"
            "                     the same as --set model.hf_config=CONFIG.json\n"
            "  --json             print one JSON object instead of the tables\n"
            "  --dump-schedule    print the schedule as a schedule file (for schedule =\n"
            "                     custom) and stop\n"
            "  --memory-limit     exit with status 3 when a device needs more than\n"
            "                     hardware.memory_gib (default: a warning, status 0)\n");
    if (!is_pexec(prog))
        fprintf(f,
            "  --sweep SEC.KEY=V1,V2,...\n"
            "                     run every combination of the swept values (repeatable: the\n"
            "                     cartesian product), on every core, each point stored as a\n"
            "                     run of one sweep; prints one line per point\n");
    if (is_pexec(prog))
        fprintf(f,
            "  --scale N          divide hidden, ffn_hidden, seq_len, heads and kv_heads by N,\n"
            "                     so a large model's shape runs on a CPU (stored in the run's\n"
            "                     scenario)\n"
            "  --watchdog S       fail when a device waits more than S seconds for a message\n"
            "                     (default 60)\n"
            "  --drop-send D      fault injection for tests: device D never sends its first\n"
            "                     message, so its peer waits until the watchdog ends the run\n"
            "  --kill-after D:N   fault injection for tests: device D dies once it has run N\n"
            "                     ops (an MPI rank kills itself with SIGKILL, a thread ends);\n"
            "                     the others end on the watchdog and the run is stored as\n"
            "                     failed\n"
            "  --stall-after D:N  the same, but device D stalls (a rank stops itself with\n"
            "                     SIGSTOP, a thread waits) instead of dying\n"
            "  --rendezvous       a send completes only when its receive takes it, as a\n"
            "                     blocking NCCL send on the compute stream (finds orders that\n"
            "                     need sends and receives posted together)\n"
            "  --backend B        cpu (threads, or MPI ranks under mpirun; default) or cuda\n"
            "                     (NVIDIA GPUs: hardware.devices_per_gpu devices per GPU; exits\n"
            "                     1 when no GPU is visible or pexec was built without nvcc)\n");
    fprintf(f,
            "  --quiet            print nothing on success\n"
            "  --help (-h), --version\n\n"
            "schedules: %s\n"
            "gpu presets: %s\n"
            "exit status: 0 done, 1 files/database/memory failure%s, 2 bad input,\n"
            "             3 over memory_gib with --memory-limit\n",
            sched_names(), gpu_preset_names(), is_pexec(prog) ? " or a failed run" : "");
}

int run_hf_set(const char *prog, const char *path, char *out, size_t len) {
    if (!path[0] || strlen(path) >= SCN_PATH_MAX) {
        fprintf(stderr, "%s: --hf '%.200s': give the path of a config.json, shorter than %d "
                "bytes\n", prog, path, SCN_PATH_MAX);
        return 2;
    }
    snprintf(out, len, "model.hf_config=%s", path);
    return 0;
}

/* A positive number from an option's argument, or 0. */
static double positive(const char *arg) {
    char *end;
    double v = strtod(arg, &end);
    return end != arg && *end == '\0' && v > 0 && v < 1e9 ? v : 0;
}

int run_options_parse(int argc, char **argv, const char *prog, RunOptions *o) {
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},   {"no-db", no_argument, 0, 'n'},
        {"set", required_argument, 0, 's'},  {"json", no_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},      {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},    {"dump-schedule", no_argument, 0, 'S'},
        {"memory-limit", no_argument, 0, 'M'}, {"scale", required_argument, 0, 'x'},
        {"watchdog", required_argument, 0, 'w'}, {"drop-send", required_argument, 0, 'D'},
        {"rendezvous", no_argument, 0, 'R'},     {"sweep", required_argument, 0, 'W'},
        {"kill-after", required_argument, 0, 'K'}, {"stall-after", required_argument, 0, 'T'},
        {"backend", required_argument, 0, 'b'},  {"hf", required_argument, 0, 'H'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->prog = prog;
    o->db = "pipesim.db";
    o->scale = 1;
    o->watchdog_s = 60;
    o->drop_send = -1;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (ch && strchr("xwDRKTb", ch) && !is_pexec(prog)) {
            const char *name = ch == 'x' ? "scale" : ch == 'w' ? "watchdog"
                             : ch == 'D' ? "drop-send" : ch == 'K' ? "kill-after"
                             : ch == 'T' ? "stall-after" : ch == 'b' ? "backend" : "rendezvous";
            fprintf(stderr, "%s: --%s is a pexec option (it runs the scenario for real); see "
                    "%s --help\n", prog, name, prog);
            return 2;
        }
        switch (ch) {
        case 'd': o->db = optarg; break;
        case 'n': o->db = NULL; break;
        case 'j': o->json = 1; break;
        case 'q': o->quiet = 1; break;
        case 'S': o->dump = 1; break;
        case 'M': o->memory_limit = 1; break;
        case 'R': o->rendezvous = 1; break;
        case 'b':
            if (strcmp(optarg, "cpu") != 0 && strcmp(optarg, "cuda") != 0) {
                fprintf(stderr, "%s: --backend %s: give cpu or cuda\n", prog, optarg);
                return 2;
            }
            o->backend = strcmp(optarg, "cuda") == 0 ? RUN_BACKEND_CUDA : RUN_BACKEND_CPU;
            break;
        case 'W':
            if (is_pexec(prog) || o->nsweeps == 16 || !strchr(optarg, '=')) {
                fprintf(stderr, "%s: --sweep %s: %s\n", prog, optarg,
                        is_pexec(prog) ? "sweeps are psim's; run pexec once per point"
                        : o->nsweeps == 16 ? "at most 16 --sweep options"
                                           : "write SECTION.KEY=V1,V2,..., e.g. "
                                             "--sweep batch.micro_batches=8,16,32");
                return 2;
            }
            o->sweeps[o->nsweeps++] = optarg;
            break;
        case 'h': usage(prog, stdout); exit(0);
        case 'V': printf("%s %s\n", prog, PIPESIM_VERSION); exit(0);
        case 'x':
            o->scale = (int32_t)positive(optarg);
            if (o->scale < 1 || o->scale != positive(optarg)) {
                fprintf(stderr, "%s: --scale %s: give a whole number 1 or more, e.g. --scale 16\n",
                        prog, optarg);
                return 2;
            }
            break;
        case 'w':
            if (!(o->watchdog_s = positive(optarg))) {
                fprintf(stderr, "%s: --watchdog %s: give seconds above 0, e.g. --watchdog 30\n",
                        prog, optarg);
                return 2;
            }
            break;
        case 'D': {
            char *end;
            long d = strtol(optarg, &end, 10);
            o->drop_send = end != optarg && !*end && d >= 0 && d < (1 << 20) ? (int32_t)d : -1;
            if (o->drop_send < 0) {
                fprintf(stderr, "%s: --drop-send %s: give a device number\n", prog, optarg);
                return 2;
            }
            break;
        }
        case 'K':
        case 'T': {
            const char *opt = ch == 'K' ? "kill-after" : "stall-after";
            char *colon, *end = optarg;
            long d = strtol(optarg, &colon, 10);
            long long n = *colon == ':' ? strtoll(colon + 1, &end, 10) : 0;
            if (colon == optarg || *colon != ':' || end == colon + 1 || *end || d < 0 ||
                d >= (1 << 20) || n < 1) {
                fprintf(stderr, "%s: --%s %s: give DEVICE:OPS, e.g. --%s 1:3 (device 1 %s "
                        "after its first 3 ops; OPS at least 1)\n", prog, opt, optarg, opt,
                        ch == 'K' ? "dies" : "stalls");
                return 2;
            }
            o->kill_device = (int32_t)d, o->kill_after = n, o->stall = ch == 'T';
            break;
        }
        case 's':
        case 'H':
            if (o->nsets == RUN_MAX_SETS) {
                fprintf(stderr, "%s: at most %d --set and --hf options\n", prog, RUN_MAX_SETS);
                return 2;
            }
            if (ch == 'H' && o->hf_set[0]) {
                fprintf(stderr, "%s: --hf is given twice; give one config.json\n", prog);
                return 2;
            }
            if (ch == 'H' && run_hf_set(prog, optarg, o->hf_set, sizeof o->hf_set) != 0) return 2;
            o->sets[o->nsets++] = ch == 'H' ? o->hf_set : optarg;
            break;
        default:
            fprintf(stderr, "%s: unknown or incomplete option '%s'; see %s --help\n", prog,
                    argv[optind - 1], prog);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: expected one scenario file, got %d; usage: %s [options] FILE.scn\n",
                prog, argc - optind, prog);
        return 2;
    }
    o->scenario = argv[optind];
    return 0;
}

void run_free(Run *r) {
    free(r->split), free(r->pass_split);
    metrics_free(&r->mt);
    timeline_free(&r->tl);
    runenv_free(&r->env);
    cost_free(&r->cost);
    program_free(&r->prog);
    plan_free(&r->plan);
    scenario_free(&r->scn);
}

/* Loads the scenario; with --scale N, loads it again with the model's widths divided by N
 * (heads to the largest divisor of the new hidden size not above heads / N, kv_heads to the
 * largest divisor of those heads not above kv_heads / N, so a GQA model, such as one from
 * an hf_config, stays one), so the stored scenario says what ran. */
static int load(const RunOptions *o, Scenario *s, char err[SCN_ERR_MAX]) {
    int rc = scenario_load(o->scenario, o->sets, o->nsets, s, err);
    if (rc != 0 || o->scale == 1) return rc;
    const ScnModel *m = &s->model;
    int64_t h = m->hidden / o->scale, a = m->heads / o->scale;
    if (h < 1) h = 1;
    if (a < 1) a = 1;
    while (h % a) a--;
    int64_t kv = scenario_kv_heads(m) / o->scale;
    if (kv < 1) kv = 1;
    if (kv > a) kv = a;
    while (a % kv) kv--;
    char extra[5][64];
    snprintf(extra[0], sizeof extra[0], "model.hidden=%lld", (long long)h);
    snprintf(extra[1], sizeof extra[1], "model.heads=%lld", (long long)a);
    snprintf(extra[2], sizeof extra[2], "model.ffn_hidden=%lld",
             (long long)(m->ffn_hidden / o->scale > 0 ? m->ffn_hidden / o->scale : 1));
    snprintf(extra[3], sizeof extra[3], "model.seq_len=%lld",
             (long long)(m->seq_len / o->scale > 0 ? m->seq_len / o->scale : 1));
    snprintf(extra[4], sizeof extra[4], "model.kv_heads=%lld", (long long)kv);
    const char *sets[RUN_MAX_SETS + 5];
    memcpy(sets, o->sets, (size_t)o->nsets * sizeof *sets);
    for (int i = 0; i < 5; i++) sets[o->nsets + i] = extra[i];
    scenario_free(s);
    return scenario_load(o->scenario, sets, o->nsets + 5, s, err);
}

/* What a searched schedule orders against, from a plan and its prices: each stage's op times,
 * the transfer to the next stage (none when both sit on one device), its activations and
 * what its B keeps until W (memory.h), and each device's memory_gib less its static part. */
typedef struct {
    SchedCost sc;
    int64_t *xfer;
    double *act, *wp, *room;
} SearchInputs;

static void search_inputs_free(SearchInputs *in) {
    free(in->xfer), free(in->act), free(in->wp), free(in->room);
}

static int search_inputs(const Scenario *s, const Plan *pl, const Program *pr,
                         const CostModel *c, SearchInputs *in) {
    int32_t S = program_stages(pr);
    in->xfer = calloc((size_t)S, sizeof *in->xfer);
    in->act = calloc((size_t)S, sizeof *in->act), in->wp = calloc((size_t)S, sizeof *in->wp);
    in->room = calloc((size_t)pr->devices, sizeof *in->room);
    if (!in->xfer || !in->act || !in->wp || !in->room) return search_inputs_free(in), -1;
    for (int32_t st = 0; st < S; st++) {
        double params;
        memory_plan_footprint(s, pl, st, &params, &in->act[st], &in->wp[st]);
        int32_t a = pr->device_of[st], b = st + 1 < S ? pr->device_of[st + 1] : a;
        in->xfer[st] = a != b ? cost_xfer_ns(c, a, b) : 0;
    }
    for (int32_t d = 0; d < pr->devices; d++) {
        DeviceMemory dm;
        memory_device_static(s, pl, pr, d, &dm);
        in->room[d] = s->device[d].memory_gib * GIB - memory_static_bytes(&dm);
    }
    in->sc = (SchedCost){.stages = S, .op_ns = c->op_ns, .xfer_ns = in->xfer, .act = in->act,
                         .w_pending = in->wp, .room = in->room};
    return 0;
}

/* Builds schedule sc of scenario s into pr and checks it. Returns 0; 2 with err (the schedule's issue or
 * the checker's complaint); -1 out of memory. */
static int build_checked(const Scenario *s, const Schedule *sc, const SchedParams *sp,
                         Program *pr, char *err, size_t errlen) {
    SchedIssue issue = {0};
    int rc = sc->build(sp, pr, &issue);
    if (rc != 0) {
        if (rc > 0) snprintf(err, errlen, "%s", issue.msg);
        return rc < 0 ? -1 : 2;
    }
    if (program_check(pr, err, errlen) == 0) return 0;
    char why[SCN_ERR_MAX];
    snprintf(why, sizeof why, "%s", err);
    snprintf(err, errlen, "%s: schedule %s gives an invalid program: %s",
             sp->file && sp->file[0] ? sp->file : s->path, sc->name, why);
    program_free(pr);
    return 2;
}

int run_build(const Scenario *s, int priced, Program *pr, Plan *pl, CostModel *c, char *err,
              size_t errlen) {
    const Schedule *sc = sched_find(s->pipeline.schedule);
    SchedParams sp = scenario_sched_params(s);
    err[0] = '\0';
    // a searched schedule's first order is its stand-in's (same placement), for the prices
    int rc = build_checked(s, sc->searched ? sched_find(sc->stand_in) : sc, &sp, pr, err, errlen);
    if (rc != 0 || (!priced && !sc->searched)) return rc;
    CostPartition cp;
    int64_t *seen = NULL; // the prices the last search ordered against
    for (int round = 0;; round++) {
        rc = plan_build_program(s, pr, cost_partition_init(&cp, s), pl, err, errlen);
        if (rc == 0) rc = cost_build(s, pl, c, err, errlen);
        if (rc != 0) break;
        size_t n = (size_t)c->stages * OP_KIND_COUNT;
        if (!sc->searched || round == 2 || (seen && !memcmp(seen, c->op_ns, n * sizeof *seen)))
            break;
        SearchInputs in;
        free(seen);
        seen = malloc(n * sizeof *seen);
        if (!seen || search_inputs(s, pl, pr, c, &in) != 0) {
            rc = -1;
            break;
        }
        memcpy(seen, c->op_ns, n * sizeof *seen);
        sp.cost = &in.sc;
        Program next;
        rc = build_checked(s, sc, &sp, &next, err, errlen);
        search_inputs_free(&in);
        sp.cost = NULL;
        if (rc != 0) break;
        program_free(pr), plan_free(pl), cost_free(c);
        *pr = next;
    }
    free(seen);
    if (rc != 0) program_free(pr), plan_free(pl), cost_free(c);
    if (rc > 0) rc = 2;
    return rc;
}

int run_prepare(const RunOptions *o, Run *sm) {
    char err[SCN_ERR_MAX];
    int rc = load(o, &sm->scn, err);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", o->prog, err);
        return rc;
    }
    const ScnVariability *v = &sm->scn.var;
    if (is_pexec(o->prog) && !o->quiet &&
        (v->jitter != JITTER_NONE || v->straggler_device >= 0 || v->failure_device >= 0))
        fprintf(stderr, "%s: warning: %s: [variability] is simulated by psim only; pexec "
                "measures the real run's jitter and plays no straggler or failure\n", o->prog,
                sm->scn.path);
    sm->sched = sched_find(sm->scn.pipeline.schedule);
    rc = run_build(&sm->scn, !o->dump, &sm->prog, &sm->plan, &sm->cost, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) return oom(o);
        fprintf(stderr, "%s: %s\n", o->prog, err);
        return 2;
    }
    if (o->dump) return 0;
    if (sm->prog.iterations > 1 && scenario_has_tail(&sm->scn)) {
        SchedParams sp = scenario_sched_params(&sm->scn);
        fprintf(stderr, "%s: %s: the schedule covers %d iterations with no flush, and the "
                "data-parallel all-reduce and optimizer step are modelled only between "
                "flushed iterations; use parallel.data = 1 without costs.optimizer_ms, or a "
                "schedule file with one iteration\n", o->prog,
                sp.file && sp.file[0] ? sp.file : sm->scn.path, sm->prog.iterations);
        return 2;
    }
    return 0;
}

/* Run metrics and per-device metrics in the store's name/value form. */
#define RUN_METRICS(X)                                                                         \
    X(makespan_ms) X(iteration_ms) X(bubble_rate) X(bubble_ideal) X(throughput_tokens_per_s)   \
    X(tflops_per_gpu) X(mfu) X(model_flops) X(peak_tflops) X(devices_total) X(global_batch)  \
    X(allreduce_ms) X(allreduce_exposed_ms) X(optimizer_ms) X(iteration_min_ms)               \
    X(iteration_max_ms) X(iteration_std_ms) X(lost_ms) X(hardware_flops)                      \
    X(hardware_tflops_per_gpu) X(zero) X(reduce_scatter_ms) X(all_gather_ms)
#define DEVICE_METRICS(X)                                                                      \
    X(busy_ms) X(idle_ms) X(span_ms) X(peak_activations) X(peak_memory_gib) X(weights_gib)    \
    X(grads_gib) X(optimizer_gib) X(activations_gib) X(layers) X(weight_versions) X(staleness) \
    X(gather_gib)
#define COUNT(name) +1
enum { NRUN_METRICS = 0 RUN_METRICS(COUNT), NDEVICE_METRICS = 0 DEVICE_METRICS(COUNT) };

/* The predicted split of each device's time per iteration (ms by cost.h's split): every op of
 * its Program priced by the cost model, over the iterations the Program covers, in all and
 * by pass (a BW op's B and W priced apart). Leaves r->split NULL when no op has a split
 * (flat model, measured [costs]). Returns 0, or -1 out of memory. */
void run_worker_dies_with_parent(pid_t parent_pid) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent_pid) _exit(1); // it died before the request took hold
}

int run_split(Run *r) {
    const Program *pr = &r->prog;
    int32_t S = program_stages(pr);
    double *sp = calloc((size_t)pr->devices * COST_SPLIT, sizeof *sp), any = 0;
    double *ps = calloc((size_t)pr->devices * 3 * COST_SPLIT, sizeof *ps);
    int64_t *n = calloc((size_t)S * OP_KIND_COUNT, sizeof *n); // ops per (stage, kind)
    if (!sp || !ps || !n) return free(sp), free(ps), free(n), -1;
    for (int32_t d = 0; d < pr->devices; d++)
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++)
            n[(int64_t)program_stage_of(pr, d, pr->ops[i].chunk) * OP_KIND_COUNT + pr->ops[i].kind]++;
    for (int32_t st = 0; st < S; st++) {
        int32_t d = pr->device_of[st];
        for (int kind = 0; kind < OP_KIND_COUNT; kind++) {
            double c = (double)n[(int64_t)st * OP_KIND_COUNT + kind] / 1e6 / pr->iterations;
            if (c == 0) continue;
            const double *x = cost_op_split(&r->cost, st, (OpKind)kind);
            for (int k = 0; k < COST_SPLIT; k++) sp[d * COST_SPLIT + k] += c * x[k], any += x[k];
            for (int pass = 0; pass < 3; pass++) { // the passes this op runs
                if (kind != pass && !(kind == OP_BW && pass != OP_F)) continue;
                const double *y = cost_op_split(&r->cost, st, (OpKind)pass);
                for (int k = 0; k < COST_SPLIT; k++) ps[(d * 3 + pass) * COST_SPLIT + k] += c * y[k];
            }
        }
    }
    free(n);
    if (any > 0) r->split = sp, r->pass_split = ps;
    else free(sp), free(ps);
    return 0;
}

/* The split's names as stored and printed in JSON (cost_split_name + "_ms"). */
static const char *const SPLIT_METRICS[COST_SPLIT] = {"gemm_ms", "attention_ms", "memory_ms",
                                                      "tp_comm_ms", "launch_ms"};
/* ... and by pass: "f_gemm_ms" .. "w_launch_ms" */
static const char *const PASS_SPLIT_METRICS[3][COST_SPLIT] = {
    {"f_gemm_ms", "f_attention_ms", "f_memory_ms", "f_tp_comm_ms", "f_launch_ms"},
    {"b_gemm_ms", "b_attention_ms", "b_memory_ms", "b_tp_comm_ms", "b_launch_ms"},
    {"w_gemm_ms", "w_attention_ms", "w_memory_ms", "w_tp_comm_ms", "w_launch_ms"}};

/* Stores sm: complete with its metrics and memory when error is NULL, else as failed with
 * only the rows measured before the failure. Returns an exit status. */
static int store_in(const RunOptions *o, const Run *sm, const char *error, const char *db,
                    int64_t *run_id) {
    char err[512], host[256] = "";
    Store *st;
    if (store_open(db, &st, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", o->prog, err);
        return 1;
    }
    gethostname(host, sizeof host - 1);
    char *resolved = scenario_format(&sm->scn);
    size_t olen = 1;
    for (int i = 0; i < o->nsets; i++) olen += strlen(o->sets[i]) + 1;
    char *overrides = calloc(olen, 1);
    StoreMetric rm[NRUN_METRICS + RUN_MAX_EXTRA];
    StoreDeviceMetric *dm =
        malloc(((size_t)sm->mt.devices * (NDEVICE_METRICS + 4 * COST_SPLIT) + 1) * sizeof *dm);
    RunEnv env = {0}; // every run's pairs, then the tool's
    int rc = 1, env_rc = runenv_add_base(&env);
    for (size_t i = 0; i < sm->env.n && env_rc == 0; i++)
        env_rc = runenv_add(&env, sm->env.pairs[i].name, sm->env.pairs[i].value);
    if (!resolved || !overrides || !dm || env_rc != 0) {
        fprintf(stderr, "%s: out of memory\n", o->prog);
        goto done;
    }
    for (int i = 0; i < o->nsets; i++) strcat(strcat(overrides, o->sets[i]), "\n");
    size_t k = 0;
#define RUN_ROW(name) rm[k++] = (StoreMetric){#name, (double)sm->mt.name};
    RUN_METRICS(RUN_ROW)
    for (int i = 0; i < sm->nextra; i++) rm[k++] = sm->extra[i];
    size_t nrm = k;
    k = 0;
    for (int32_t d = 0; d < sm->mt.devices; d++) {
#define DEV_ROW(name) dm[k++] = (StoreDeviceMetric){d, #name, (double)sm->mt.dev[d].name};
        DEVICE_METRICS(DEV_ROW)
        for (int i = 0; sm->split && i < COST_SPLIT; i++)
            dm[k++] = (StoreDeviceMetric){d, SPLIT_METRICS[i], sm->split[d * COST_SPLIT + i]};
        for (int p = 0; sm->pass_split && p < 3; p++)
            for (int i = 0; i < COST_SPLIT; i++)
                dm[k++] = (StoreDeviceMetric){d, PASS_SPLIT_METRICS[p][i],
                                              sm->pass_split[(d * 3 + p) * COST_SPLIT + i]};
    }
    StoreRunInfo info = {.tool = o->prog, .scenario_path = o->scenario,
                         .scenario_text = sm->scn.text, .resolved = resolved,
                         .overrides = o->nsets ? overrides : NULL,
                         .schedule = sm->sched->name, .version = PIPESIM_VERSION,
                         .host = host, .devices = sm->plan.devices,
                         .micro_batches = (int32_t)sm->scn.batch.micro_batches,
                         .chunks = sm->plan.chunks,
                         .iterations = (int32_t)sm->scn.batch.iterations,
                         .sweep = o->sweep, .error = error,
                         .env = env.pairs, .nenv = env.n};
    if (error) nrm = k = 0; // a failed run's metrics would describe part of a run
    if (store_run_write(st, &info, &sm->tl, error ? NULL : &sm->mt.mem, rm, nrm, dm, k, run_id,
                        err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", o->prog, err);
        goto done;
    }
    rc = 0;
done:
    free(resolved), free(overrides), free(dm);
    runenv_free(&env);
    store_close(st);
    return rc;
}

/* Stores the run in o->db; when that fails (the database locked past the wait, full, not
 * writable) the run is not lost: it goes to DB.unsaved-PID.db beside it, a database of its
 * own the user is told about. Returns 1 either way when o->db did not get it. */
static int store_run(const RunOptions *o, const Run *sm, const char *error, int64_t *run_id) {
    int rc = store_in(o, sm, error, o->db, run_id);
    char side[4200];
    if (rc == 0 || snprintf(side, sizeof side, "%s.unsaved-%ld.db", o->db, (long)getpid()) >=
                       (int)sizeof side)
        return rc;
    int64_t id = 0;
    if (store_in(o, sm, error, side, &id) == 0)
        fprintf(stderr, "%s: the run is kept in %s instead (run %lld there): read it with "
                "--db %s, or try again when %s is free\n", o->prog, side, (long long)id, side,
                o->db);
    else
        fprintf(stderr, "%s: the run could not be kept in %s either; it is lost\n", o->prog, side);
    return rc;
}

/* "partition": [...] and, for partition = balanced, why: the bottleneck stage and its F+B+W,
 * an even split's slowest stage, the optimum without memory limits, the device whose memory
 * forced the split (-1 none) and whether any split fits memory. */
static void print_json_partition(const Run *sm) {
    const Plan *pl = &sm->plan;
    printf(" \"partition\": [");
    for (int32_t st = 0; st < pl->stages; st++)
        printf("%s%lld", st ? ", " : "", (long long)pl->layers[st]);
    printf("],");
    if (sm->scn.pipeline.partition == PART_BALANCED)
        printf(" \"partition_bottleneck_stage\": %d, \"partition_bottleneck_ms\": %.17g, "
               "\"partition_even_ms\": %.17g, \"partition_unlimited_ms\": %.17g, "
               "\"partition_memory_device\": %d, \"partition_fits_memory\": %s,",
               pl->balance.bottleneck_stage, pl->balance.bottleneck_ns / 1e6, pl->balance.even_ns / 1e6,
               pl->balance.unlimited_ns / 1e6, pl->balance.memory_device, pl->balance.fits_memory ? "true" : "false");
    printf("\n");
}

/* One line for the summary: the split, and for partition = balanced why this one. */
static void print_partition(const Run *sm) {
    const Plan *pl = &sm->plan;
    printf("%-22s ", "partition");
    for (int32_t st = 0; st < pl->stages; st++)
        printf("%s%lld", st ? "," : "", (long long)pl->layers[st]);
    if (sm->scn.pipeline.partition != PART_BALANCED) {
        printf(" layers per stage\n");
        return;
    }
    int32_t b = pl->balance.bottleneck_stage, d = plan_device_of(pl, b);
    printf(" (balanced: stage %d on device %d is the slowest, F+B+W %.3f ms; an even split's "
           "slowest is %.3f ms", b, d, pl->balance.bottleneck_ns / 1e6, pl->balance.even_ns / 1e6);
    double gib = pl->balance.memory_device < 0 ? 0 : sm->scn.device ? sm->scn.device[pl->balance.memory_device].memory_gib
                                                            : sm->scn.hw.memory_gib;
    if (!pl->balance.fits_memory) printf("; no split fits every device's memory, so time alone decided");
    else if (pl->balance.memory_device >= 0 && pl->balance.bottleneck_ns > pl->balance.unlimited_ns)
        printf("; device %d's memory_gib = %g forced it: %.3f ms without memory limits",
               pl->balance.memory_device, gib, pl->balance.unlimited_ns / 1e6);
    else if (pl->balance.memory_device >= 0)
        printf("; device %d's memory_gib = %g limits its layers, at no cost in time",
               pl->balance.memory_device, gib);
    printf(")\n");
}

static void print_json(const Run *sm, int64_t run_id) {
    const Metrics *mt = &sm->mt;
    const Scenario *s = &sm->scn;
    printf("{\"scenario\": \"%s\", \"schedule\": \"%s\", \"devices\": %d, \"chunks\": %d, "
           "\"micro_batches\": %lld, \"iterations\": %lld, \"run_id\": %lld,\n",
           s->model.name, sm->sched->name, mt->devices, sm->plan.chunks,
           (long long)s->batch.micro_batches, (long long)s->batch.iterations,
           (long long)run_id);
#define JSON_RUN(name) printf(" \"" #name "\": %.17g,", (double)mt->name);
    RUN_METRICS(JSON_RUN)
    printf("\n");
    print_json_partition(sm);
    printf(" \"ops\": %lld, \"transfers\": %lld, \"bottleneck_device\": %d, "
           "\"failed_iteration\": %d,\n \"stages\": [",
           (long long)mt->ops, (long long)mt->transfers, mt->bottleneck, mt->failed_iteration);
    for (int32_t d = 0; d < mt->devices; d++) {
        printf("%s\n  {\"device\": %d", d ? "," : "", d);
#define JSON_DEV(name) printf(", \"" #name "\": %.17g", (double)mt->dev[d].name);
        DEVICE_METRICS(JSON_DEV)
        for (int i = 0; sm->split && i < COST_SPLIT; i++)
            printf(", \"%s\": %.17g", SPLIT_METRICS[i], sm->split[d * COST_SPLIT + i]);
        printf(", \"memory_gib\": %.17g}", s->device[d].memory_gib); // the device's limit
    }
    printf("\n]}\n");
}

/* What the devices are: the preset, "custom", or "mixed" when a [device.N] section or
 * devices_per_gpu makes them differ from [hardware]'s GPU (the summary then shows the mean
 * peak per pipeline device). */
static int devices_mixed(const Scenario *s) {
    int mixed = s->hw.devices_per_gpu > 1;
    for (int64_t d = 0; s->device && d < s->pipeline.stages && !mixed; d++)
        mixed = s->device[d].overridden;
    return mixed;
}

static const char *gpu_label(const Scenario *s) {
    return devices_mixed(s) ? "mixed devices" : s->hw.gpu[0] ? s->hw.gpu : "custom";
}

/* The [variability] lines of the summary, only when the scenario asks for any. */
static void print_variability(const Run *sm) {
    const ScnVariability *v = &sm->scn.var;
    const Metrics *mt = &sm->mt;
    if (v->jitter != JITTER_NONE)
        printf("%-22s %14.3f ms  (min; max %.3f, std %.3f ms; %s jitter cv %g, seed %lld)\n",
               "iteration spread", mt->iteration_min_ms, mt->iteration_max_ms,
               mt->iteration_std_ms, jitter_name(v->jitter), v->jitter_cv, (long long)v->seed);
    if (v->straggler_device >= 0)
        printf("%-22s %14lld       (ops x %g, busiest device %d)\n", "straggler device",
               (long long)v->straggler_device, v->straggler_slowdown, mt->bottleneck);
    if (v->failure_device >= 0 && sm->failure.happened)
        printf("%-22s %14.3f ms  (device %d failed at %.3f ms in iteration %d; restart %.3f "
               "ms)\n", "lost to failure", mt->lost_ms, sm->failure.device,
               (double)sm->failure.at_ns / 1e6, mt->failed_iteration,
               (double)sm->failure.restart_ns / 1e6);
    else if (v->failure_device >= 0)
        printf("%-22s %14.3f ms  (failure_at_ms = %g is after the run's end)\n",
               "lost to failure", 0.0, v->failure_at_ms);
}

static void print_summary(const RunOptions *o, const Run *sm) {
    const Metrics *mt = &sm->mt;
    const Scenario *s = &sm->scn;
    char how[96];
    if (s->costs.forward_ms >= 0 || s->costs.stage_forward.n)
        snprintf(how, sizeof how, "%.0f TFLOP/s; op times from [costs]", mt->peak_tflops);
    else if (s->hw.cost_model == COST_FLAT)
        snprintf(how, sizeof how, "%.0f TFLOP/s x %.2f", mt->peak_tflops, s->hw.efficiency);
    else if (devices_mixed(s)) // [device.N] figures: each its own
        snprintf(how, sizeof how, "%.0f TFLOP/s, roofline on each device's figures",
                 mt->peak_tflops);
    else
        snprintf(how, sizeof how, "%.0f TFLOP/s, roofline: GEMMs up to x %.3g, %.0f GB/s x %.2g",
                 mt->peak_tflops, s->hw.gemm_efficiency, s->hw.hbm_bandwidth_gbs,
                 s->hw.memory_efficiency);
    char ctx[32] = "";
    if (scenario_context(s) > 1) snprintf(ctx, sizeof ctx, " c=%lld", (long long)scenario_context(s));
    // what the run computes in: psim prices the scenario's dtype; pexec's CPU backend computes
    // fp32, its CUDA backend stores bf16 and accumulates fp32, whatever the scenario says
    char dtype[64];
    if (strcmp(o->prog, "pexec") != 0)
        snprintf(dtype, sizeof dtype, "%s", dtype_name(s->model.dtype));
    else
        snprintf(dtype, sizeof dtype, "%s (priced as %s)",
                 o->backend == RUN_BACKEND_CUDA ? "bf16 with fp32 accumulation" : "fp32",
                 dtype_name(s->model.dtype));
    printf("# %s: %s, p=%d v=%d d=%lld t=%lld%s m=%lld b=%lld, %lld layers, %s on %s (%s)\n",
           s->model.name, sm->sched->name, mt->devices, sm->plan.chunks,
           (long long)s->parallel.data, (long long)s->parallel.tensor, ctx,
           (long long)s->batch.micro_batches, (long long)s->batch.micro_batch_size,
           (long long)s->model.layers, dtype, gpu_label(s), how);
    // the GPUs that sum a stage's gradients: the replicas, and their context ranks
    char group[96];
    if (scenario_context(s) > 1)
        snprintf(group, sizeof group, "%lld GPUs (%lld replicas x %lld context ranks)",
                 (long long)scenario_dp_group(s), (long long)s->parallel.data,
                 (long long)scenario_context(s));
    else
        snprintf(group, sizeof group, "%lld replicas", (long long)s->parallel.data);
    const ScnModel *md = &s->model;
    printf("# model: %.4g B parameters; attention %lld heads (%lld key/value) x %lld, %s; "
           "mlp %s %lld; %s; %s positions; %s embeddings%s%s\n",
           memory_model_params(md) / 1e9, (long long)md->heads,
           (long long)scenario_kv_heads(md), (long long)scenario_head_dim(md),
           attention_name(md->attention), mlp_name(md->mlp), (long long)md->ffn_hidden,
           norm_name(md->norm), position_name(md->position),
           md->tied_embeddings ? "tied" : "untied", md->bias ? "" : ", no biases",
           s->parallel.sequence && scenario_tensor(s) > 1 ? "; sequence parallel" : "");
    if (md->experts > 0)
        printf("# experts: %lld of %lld layers MoE, %lld routed (top-%lld) + %lld shared of %lld; "
               "%.4g B parameters active per token; expert parallel %lld\n",
               (long long)scenario_moe_layers(md, 0, md->layers), (long long)md->layers,
               (long long)md->experts, (long long)md->experts_per_token,
               (long long)md->shared_experts, (long long)md->expert_ffn_hidden,
               memory_model_active_params(md) / 1e9, (long long)scenario_expert(s));
    printf("%-22s %14.3f ms\n", "makespan", mt->makespan_ms);
    printf("%-22s %14.3f ms  (%lld iteration%s)\n", "iteration time", mt->iteration_ms,
           (long long)s->batch.iterations, s->batch.iterations == 1 ? "" : "s");
    printf("%-22s %14.2f %%   (idle / total)\n", "bubble rate", 100.0 * mt->bubble_rate);
    printf("%-22s %14.2f %%   (idle / ideal)\n", "bubble (ideal)", 100.0 * mt->bubble_ideal);
    printf("%-22s %14.0f tokens/s\n", "throughput", mt->throughput_tokens_per_s);
    printf("%-22s %14.1f TFLOP/s\n", "per GPU", mt->tflops_per_gpu);
    printf("%-22s %14.2f %%\n", "MFU", 100.0 * mt->mfu);
    if (sm->cost.tail && !mt->zero) {
        printf("%-22s %14.3f ms  per iteration, %.3f ms exposed (%s over %s, "
               "%s links)\n", "gradient all-reduce", mt->allreduce_ms, mt->allreduce_exposed_ms,
               allreduce_name(s->parallel.allreduce), group,
               cost_dp_inter(&sm->cost, 0) ? "inter-node" : "intra-node");
        printf("%-22s %14.3f ms  per iteration\n", "optimizer step", mt->optimizer_ms);
    } else if (sm->cost.tail) { // ZeRO: no all-reduce; its two halves, where they run
        const char *links = cost_dp_inter(&sm->cost, 0) ? "inter-node" : "intra-node";
        printf("%-22s %14.3f ms  per iteration (zero = %d: ring over %s, %s links; "
               "%s)\n", "gradient reduce-scatter", mt->reduce_scatter_ms, mt->zero, group, links,
               mt->zero >= 3 ? "after every W/BW, inside the ops" : "after each chunk's last backward");
        printf("%-22s %14.3f ms  per iteration (%s)\n", "parameter all-gather", mt->all_gather_ms,
               mt->zero >= 3 ? "before every F and B/BW, inside the ops, not prefetched"
                             : "after the optimizer step, before the next forward");
        if (mt->zero < 3)
            printf("%-22s %14.3f ms  per iteration of the two\n", "exposed collectives",
                   mt->allreduce_exposed_ms);
        printf("%-22s %14.3f ms  per iteration (a 1/%lld shard)\n", "optimizer step",
               mt->optimizer_ms, (long long)scenario_dp_group(s));
    }
    if (mt->devices_total != mt->devices)
        printf("%-22s %14lld GPUs (p x d x t%s), global batch %lld samples\n", "devices",
               (long long)mt->devices_total, scenario_context(s) > 1 ? " x c" : "",
               (long long)mt->global_batch);
    printf("%-22s %14lld ops, %lld transfers of %.2f MiB\n",
           strcmp(o->prog, "psim") == 0 ? "simulated" : "measured",
           (long long)mt->ops, (long long)mt->transfers,
           (double)sm->cost.xfer_bytes / (1024.0 * 1024.0));
    print_variability(sm);
    const DeviceMetrics *d0 = &mt->dev[0], *dl = &mt->dev[mt->devices - 1];
    if (d0->weight_versions > 1)
        printf("%-22s %8d .. %d per device, gradients applied %d .. %d updates late\n",
               "weight versions", d0->weight_versions, dl->weight_versions, d0->staleness,
               dl->staleness);
    print_partition(sm);
    printf("\n# device layers    busy_ms    idle_ms  peak_act  weights_gib  grads_gib  "
           "optim_gib    act_gib   peak_gib\n");
    for (int32_t d = 0; d < mt->devices; d++) {
        const DeviceMetrics *dm = &mt->dev[d];
        printf("%8d %6d %10.3f %10.3f %9d %12.2f %10.2f %10.2f %10.2f %10.2f%s\n", d,
               dm->layers, dm->busy_ms, dm->idle_ms, dm->peak_activations, dm->weights_gib,
               dm->grads_gib, dm->optimizer_gib, dm->activations_gib, dm->peak_memory_gib,
               d == mt->bottleneck ? "  <- busiest" : "");
    }
    if (mt->zero)
        printf("# zero = %d over %s: weights_gib, grads_gib and optim_gib are one "
               "replica's shards%s; peak_gib adds %.2f GiB of one unit's gathered weights on "
               "device 0\n", mt->zero, group,
               mt->zero == 1 ? " (optimizer state only)" : mt->zero == 2 ? " (not the weights)" : "",
               mt->dev[0].gather_gib);
    if (!sm->split) return;
    if (is_pexec(o->prog))
        printf("\n# device    gemm_ms  attention_ms  memory_ms  tp_comm_ms  launch_ms   "
               "(measured per iteration: the kernels by class; launch: op time outside them)\n");
    else
        printf("\n# device    gemm_ms  attention_ms  memory_ms  tp_comm_ms  launch_ms   "
               "(predicted work per iteration, %s cost model)\n", cost_model_name(s->hw.cost_model));
    for (int32_t d = 0; d < mt->devices; d++) {
        const double *x = &sm->split[d * COST_SPLIT];
        printf("%8d %10.3f %13.3f %10.3f %11.3f %10.3f\n", d, x[0], x[1], x[2], x[3], x[4]);
    }
}

/* Names every device over its memory_gib on stderr (unless quiet); returns how many. */
static int check_memory(const char *prog, const Run *sm, int quiet, int limit) {
    int over = 0;
    for (int32_t d = 0; d < sm->mt.devices; d++) {
        double gib = sm->scn.device ? sm->scn.device[d].memory_gib : sm->scn.hw.memory_gib;
        if (sm->mt.dev[d].peak_memory_gib <= gib) continue;
        over++;
        if (!quiet)
            fprintf(stderr, "%s: %s: device %d needs %.1f GiB, more than memory_gib = %g\n", prog,
                    limit ? "error" : "warning", d, sm->mt.dev[d].peak_memory_gib, gib);
    }
    return over;
}


/* A run whose model FLOPs per GPU come faster than the peak (MFU over 1) says so on stderr
 * (unless quiet): its [costs] or peak_tflops disagree with the model it describes. */
static void check_peak(const char *prog, const Run *sm, int quiet) {
    const Metrics *mt = &sm->mt;
    if (quiet || !(mt->mfu > 1)) return;
    fprintf(stderr, "%s: warning: the run does %.1f TFLOP/s of model FLOPs per GPU, %.0f%% of "
            "the peak of %.0f: its [costs] times or peak_tflops do not fit this model's FLOPs\n",
            prog, mt->tflops_per_gpu, 100 * mt->mfu, mt->peak_tflops);
}

int run_simulate(Run *r, char *err, size_t errlen) {
    double t0 = run_now_ms();
    Variability var;
    variability_init(&var, &r->scn.var);
    int e = engine_run_varied(&r->prog, &r->cost, &var, (int32_t)r->scn.batch.iterations, &r->tl,
                              &r->failure, err, errlen);
    r->wall_ms = run_now_ms() - t0;
    return e;
}

/* psim's tensor-parallel collective rows (STREAM_TENSOR and sequence parallelism's
 * TENSOR_GATHER and TENSOR_SCATTER, as pexec measures them), and the MoE layers' expert
 * all-to-alls (STREAM_EXPERT): inside each compute row, where
 * the roofline places each collective among the op's kernels, stretched with the row when
 * [variability] changed its length. Added after the
 * metrics, which do not count them. Returns 0, or -1 when out of memory. */
static int tensor_rows(Run *r) {
    const Program *pr = &r->prog;
    int32_t S = program_stages(pr);
    enum { MAXSPANS = 4096 };
    CostSpan *spans = malloc(MAXSPANS * sizeof *spans);
    int *n = calloc((size_t)S * OP_KIND_COUNT, sizeof *n); // spans of (stage, kind), -1 - count
    CostSpan **at = calloc((size_t)S * OP_KIND_COUNT, sizeof *at);
    int rc = spans && n && at ? 0 : -1;
    size_t rows = r->tl.n;
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        TimelineOp op = r->tl.ops[i];
        if (op.stream != STREAM_COMPUTE) continue;
        int32_t st = program_stage_of(pr, op.device, op.chunk);
        size_t c = (size_t)st * OP_KIND_COUNT + (size_t)op.kind;
        if (n[c] == 0) { // first op of this stage and kind: price its collectives once
            int got = cost_op_allreduces(&r->scn, &r->plan, st, (OpKind)op.kind, spans, MAXSPANS);
            if (got > MAXSPANS) got = MAXSPANS;
            n[c] = -1 - got;
            if (got && !(at[c] = malloc((size_t)got * sizeof *spans))) rc = -1;
            else if (got) memcpy(at[c], spans, (size_t)got * sizeof *spans);
        }
        int cnt = -1 - n[c];
        double priced = (double)cost_op_ns(&r->cost, st, (OpKind)op.kind);
        double stretch = priced > 0 ? (double)(op.end_ns - op.start_ns) / priced : 1;
        for (int j = 0; rc == 0 && j < cnt; j++) {
            const CostSpan *x = &at[c][j];
            TimelineOp t = op;
            t.stream = x->kernel == LK_ALLGATHER        ? STREAM_TENSOR_GATHER
                       : x->kernel == LK_REDUCE_SCATTER ? STREAM_TENSOR_SCATTER
                       : x->kernel == LK_ALLTOALL       ? STREAM_EXPERT
                                                        : STREAM_TENSOR;
            t.peer = -1, t.bytes = (int64_t)x->bytes;
            t.start_ns = op.start_ns + llround(x->start_ns * stretch);
            // an all-to-all is the links' time: placed where it falls in a longer row (a
            // DualPipe pair, where it runs beside the other op's computation), not stretched
            t.end_ns = t.start_ns + llround(x->ns * (x->kernel == LK_ALLTOALL ? 1 : stretch));
            if (t.end_ns > op.end_ns) t.end_ns = op.end_ns;
            if (t.start_ns > t.end_ns) t.start_ns = t.end_ns;
            rc = timeline_push(&r->tl, &t);
        }
    }
    for (int32_t i = 0; at && i < S * OP_KIND_COUNT; i++) free(at[i]);
    free(at), free(n), free(spans);
    return rc;
}

int run_report(const RunOptions *o, Run *sm) {
    if (metrics_compute_lost(&sm->scn, &sm->plan, &sm->prog, &sm->cost, &sm->tl, &sm->failure,
                             &sm->mt) != 0)
        return oom(o);
    if (!is_pexec(o->prog) && (run_split(sm) != 0 || tensor_rows(sm) != 0))
        return oom(o); // psim's prediction only
    int64_t run_id = 0;
    int rc = o->db ? store_run(o, sm, NULL, &run_id) : 0;
    if (rc != 0) return rc;
    if (o->json) print_json(sm, run_id);
    else if (!o->quiet) print_summary(o, sm);
    if (check_memory(o->prog, sm, o->quiet, o->memory_limit) && o->memory_limit) rc = 3;
    check_peak(o->prog, sm, o->quiet);
    if (!o->quiet && o->db)
        fprintf(stderr, "%s: stored run %lld in %s (%lld ops %s in %.1f ms)\n", o->prog,
                (long long)run_id, o->db, (long long)sm->mt.ops,
                is_pexec(o->prog) ? "run" : "simulated", sm->wall_ms);
    return rc;
}

int run_store_failed(const RunOptions *o, Run *sm, const char *error) {
    if (!o->db) return 0;
    int64_t run_id = 0;
    int rc = store_run(o, sm, error, &run_id);
    if (rc == 0 && !o->quiet)
        fprintf(stderr, "%s: stored run %lld in %s as failed, with the %zu rows measured before "
                "the failure\n", o->prog, (long long)run_id, o->db, sm->tl.n);
    return rc;
}
