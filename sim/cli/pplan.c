/* sim/cli/pplan.c: the pplan command: the best way to run a scenario's model on a cluster. Reads
 * the options and the scenario, runs the search (search.h) on every core, prints the ranking
 * and stores the search (store.h). Exit status: 0 done, 1 environment failure (files,
 * database, memory, processes), 2 bad input (options, scenario), 3 nothing fits in memory. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/run/run.h"
#include "sim/search/search.h"
#include "traces/store.h"
#include "sim/run/version.h"

typedef struct {
    const char *scenario, *db, *schedules, *zero, *context;
    const char *sets[RUN_MAX_SETS];
    int nsets;
    int64_t gpus, global_batch, top;
    int jobs, json, quiet; // quiet: no closing line on stderr
    char hf_set[SCN_PATH_MAX + 32]; // --hf PATH as "model.hf_config=PATH", in sets[]
} PlanOptions;

static void usage(FILE *f) {
    fprintf(f,
            "usage: pplan --gpus N --global-batch B [options] FILE.scn\n"
            "Searches every way to run the scenario's model on N GPUs with B samples per\n"
            "iteration: pipeline stages p, chunks v, data-parallel replicas d, tensor-parallel\n"
            "width t, micro-batch size b and count m (p x d x t = N, d x m x b = B), schedule\n"
            "recompute and, with d > 1, the ZeRO level. Drops what does not fit in memory_gib, simulates the rest on every\n"
            "core exactly as psim would, prints the best as a table with the psim command of\n"
            "the winner and why it wins, and stores the search in SQLite.\n\n"
            "options:\n"
            "  --gpus N           devices in the cluster (required)\n"
            "  --global-batch B   samples per iteration over all replicas (required)\n"
            "  --top K            print the best K (default 10)\n"
            "  --schedules LIST   comma-separated schedules to search (default, in this order:\n"
            "                     %s)\n"
            "  --zero LIST        ZeRO levels to try when d > 1 (default 0,1,3: zero 2 only\n"
            "                     saves memory over 1 in pipesim's model, at a cost it does\n"
            "                     not price; --zero 0 searches without ZeRO)\n"
            "  --json             the ranking as one JSON object on stdout instead of the tables\n"
            "  --context LIST     context-parallel widths c to try (default 1 and each power\n"
            "                     of two that leaves a GPU 8192 tokens of a sample or more)\n"
            "  --set SEC.KEY=VAL  override a scenario key before searching (not one the search\n"
            "                     chooses), e.g. --set hardware.memory_gib=40\n"
            "  --hf CONFIG.json   take the [model] keys the scenario does not give from a\n"
            "                     Hugging Face config.json (Llama, Mistral, Qwen2, Gemma):\n"
            "                     the same as --set model.hf_config=CONFIG.json\n"
            "  --jobs J           worker processes (default: the online cores)\n"
            "  --db PATH          database to append the search to (default pipesim.db)\n"
            "  --no-db            do not store the search\n"
            "  --quiet            no closing line (configurations, time, stored id) on stderr\n"
            "  --help (-h), --version\n\n"
            "exit status: 0 done, 1 files/database/memory failure, 2 bad input,\n"
            "             3 no configuration fits in memory\n", search_schedule_names());
}

/* A whole number in [1, max] from an option's argument, or 0. */
static int64_t whole(const char *arg, int64_t max) {
    char *end;
    long long v = strtoll(arg, &end, 10);
    return end != arg && *end == '\0' && v >= 1 && v <= max ? v : 0;
}

/* Keys every point sets itself; a --set of one would be overridden, so it is refused. */
static const char *const CHOSEN[] = {
    "pipeline.schedule", "pipeline.stages", "pipeline.chunks", "pipeline.partition",
    "parallel.data", "parallel.tensor", "batch.micro_batch_size", "batch.micro_batches",
    "batch.iterations", "model.recompute", "parallel.zero"};

static int check_set(const char *arg) {
    const char *eq = strchr(arg, '=');
    for (size_t i = 0; eq && i < sizeof CHOSEN / sizeof CHOSEN[0]; i++)
        if (strlen(CHOSEN[i]) == (size_t)(eq - arg) && strncmp(arg, CHOSEN[i], eq - arg) == 0) {
            fprintf(stderr, "pplan: --set %s: the search chooses %s for every configuration; "
                    "leave it out (use --schedules to limit the schedules, --zero the ZeRO "
                    "levels)\n", arg, CHOSEN[i]);
            return 2;
        }
    if (!eq) {
        fprintf(stderr, "pplan: --set %s: write SECTION.KEY=VALUE, e.g. --set "
                "hardware.memory_gib=40\n", arg);
        return 2;
    }
    return 0;
}

/* An option's number, or a message and 0. */
static int64_t number(const char *name, const char *arg, int64_t max, const char *example) {
    int64_t v = whole(arg, max);
    if (!v)
        fprintf(stderr, "pplan: --%s %s: give a whole number from 1 to %lld, e.g. --%s %s\n",
                name, arg, (long long)max, name, example);
    return v;
}

static int options_parse(int argc, char **argv, PlanOptions *o) {
    static const struct option longopts[] = {
        {"gpus", required_argument, 0, 'g'},   {"global-batch", required_argument, 0, 'B'},
        {"top", required_argument, 0, 't'},    {"schedules", required_argument, 0, 'S'},
        {"set", required_argument, 0, 's'},    {"jobs", required_argument, 0, 'j'},
        {"db", required_argument, 0, 'd'},     {"no-db", no_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},         {"version", no_argument, 0, 'V'},
        {"hf", required_argument, 0, 'H'},     {"zero", required_argument, 0, 'z'},
        {"context", required_argument, 0, 'c'}, {"json", no_argument, 0, 'J'},
        {"quiet", no_argument, 0, 'q'},        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->db = "pipesim.db", o->top = 10, o->zero = "0,1,3";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o->jobs = cores > 0 ? (int)(cores < 256 ? cores : 256) : 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'q': o->quiet = 1; break;
        case 'g': if (!(o->gpus = number("gpus", optarg, 1 << 20, "64"))) return 2; break;
        case 'B': if (!(o->global_batch = number("global-batch", optarg, 1LL << 30, "1024"))) return 2; break;
        case 't': if (!(o->top = number("top", optarg, 1 << 20, "10"))) return 2; break;
        case 'j': if (!(o->jobs = (int)number("jobs", optarg, 256, "2"))) return 2; break;
        case 'S': o->schedules = optarg; break;
        case 'z': o->zero = optarg; break;
        case 'c': o->context = optarg; break;
        case 'J': o->json = 1; break;
        case 'd': o->db = optarg; break;
        case 'n': o->db = NULL; break;
        case 's':
        case 'H':
            if (o->nsets == RUN_MAX_SETS - SEARCH_NSETS) {
                fprintf(stderr, "pplan: at most %d --set and --hf options\n",
                        RUN_MAX_SETS - SEARCH_NSETS);
                return 2;
            }
            if (ch == 'H' && o->hf_set[0]) {
                fprintf(stderr, "pplan: --hf is given twice; give one config.json\n");
                return 2;
            }
            if (ch == 'H' && run_hf_set("pplan", optarg, o->hf_set, sizeof o->hf_set) != 0)
                return 2;
            if (ch == 's' && check_set(optarg)) return 2;
            o->sets[o->nsets++] = ch == 'H' ? o->hf_set : optarg;
            break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("pplan %s\n", PIPESIM_VERSION); exit(0);
        default:
            fprintf(stderr, "pplan: %s: %s; see pplan --help\n", argv[optind - 1],
                    ch == ':' || (optopt && strchr("gBtjSdsHzc", optopt)) ? "needs a value"
                                                                        : "unknown option");
            return 2;
        }
    }
    const char *missing = !o->gpus ? "--gpus N" : !o->global_batch ? "--global-batch B" : NULL;
    if (missing || optind != argc - 1) {
        fprintf(stderr, "pplan: %s; usage: pplan --gpus N --global-batch B [options] FILE.scn\n",
                missing ? (o->gpus ? "give the global batch in samples, --global-batch B"
                                   : "give the cluster size, --gpus N")
                : optind == argc ? "give one scenario file"
                                 : "give one scenario file (options go before it)");
        return 2;
    }
    o->scenario = argv[optind];
    return 0;
}

/* The search and its points in the store's form. Returns an exit status. */
static int store_search(const PlanOptions *o, const Scenario *s, const SearchPoint *pts,
                        size_t n, const size_t *order, size_t nrank, double wall_ms,
                        int64_t *id) {
    StoreSearchPoint *sp = calloc(n ? n : 1, sizeof *sp);
    char *overrides = calloc(1, (size_t)o->nsets * 1024 + 1), host[256] = "", err[512];
    Store *st = NULL;
    int rc = 1;
    if (!sp || !overrides) {
        fprintf(stderr, "pplan: out of memory\n");
        goto done;
    }
    for (int i = 0; i < o->nsets; i++) snprintf(overrides + strlen(overrides), 1024, "%.1000s\n", o->sets[i]);
    for (size_t i = 0; i < n; i++) {
        const SearchPoint *p = &pts[i];
        int run = p->status == SEARCH_OK || p->status == SEARCH_MEMORY;
        double nan = 0.0 / 0.0;
        sp[i] = (StoreSearchPoint){
            .schedule = p->cfg.schedule, .stages = p->cfg.stages, .chunks = p->cfg.chunks,
            .data = p->cfg.data, .tensor = p->cfg.tensor,
            .micro_batch_size = p->cfg.micro_batch_size, .micro_batches = p->cfg.micro_batches,
            .recompute = recompute_name(p->cfg.recompute), .zero = p->cfg.zero,
            .context = p->cfg.context, .status = search_status_name(p->status),
            .reason = p->reason, .static_gib = p->status == SEARCH_INVALID ? nan : p->static_gib,
            .peak_gib = run ? p->peak_gib : nan, .makespan_ms = run ? p->makespan_ms : nan,
            .bubble_rate = run ? p->bubble_rate : nan, .tokens_per_s = run ? p->tokens_per_s : nan,
            .tflops_per_gpu = run ? p->tflops_per_gpu : nan, .mfu = run ? p->mfu : nan};
    }
    for (size_t k = 0; k < nrank; k++) sp[order[k]].rank = (int64_t)k + 1;
    size_t c[5];
    search_count(pts, n, c);
    gethostname(host, sizeof host - 1);
    StoreSearchInfo info = {
        .scenario_path = o->scenario, .scenario_text = s->text,
        .overrides = o->nsets ? overrides : NULL, .schedules = o->schedules,
        .version = PIPESIM_VERSION, .host = host, .gpus = o->gpus,
        .global_batch = o->global_batch, .points = (int64_t)n, .fit = (int64_t)c[SEARCH_OK],
        .dropped_static = (int64_t)c[SEARCH_STATIC], .dropped_memory = (int64_t)c[SEARCH_MEMORY],
        .invalid = (int64_t)c[SEARCH_INVALID], .wall_ms = wall_ms};
    if (store_open(o->db, &st, err, sizeof err) != 0 ||
        store_search_write(st, &info, sp, n, id, err, sizeof err) != 0) {
        fprintf(stderr, "pplan: %s\n", err);
        goto done;
    }
    rc = 0;
done:
    store_close(st);
    free(sp), free(overrides);
    return rc;
}

int main(int argc, char **argv) {
    PlanOptions o;
    int rc = options_parse(argc, argv, &o);
    if (rc != 0) return rc;
    Scenario s;
    char err[SCN_ERR_MAX];
    rc = scenario_load(o.scenario, o.sets, o.nsets, &s, err);
    if (rc == 0 && (s.costs.stage_forward.n || s.costs.stage_backward.n)) {
        snprintf(err, sizeof err, "%s: [costs] stage_forward_ms and stage_backward_ms give one "
                 "time per stage of one layout; pplan varies the stages, so remove them "
                 "(forward_ms and friends, or the analytic model, scale)", o.scenario);
        rc = 2;
    }
    if (rc == 0 && s.pipeline.schedule_file[0]) {
        snprintf(err, sizeof err, "%s: schedule_file fixes one schedule's order; pplan searches "
                 "the built-in schedules, so remove schedule_file and schedule = custom",
                 o.scenario);
        rc = 2;
    }
    if (rc == 0 && s.costs.forward_ms > 0)
        fprintf(stderr, "pplan: warning: %s: [costs] forward_ms and backward_ms price a whole "
                "device's layers at one micro-batch size, whatever p, b and t are; the search "
                "varies them, so its times hold only where they were measured\n", o.scenario);
    SearchSpace space = {.gpus = o.gpus, .global_batch = o.global_batch, .schedules = o.schedules,
                         .zero = o.zero, .context = o.context};
    SearchPoint *pts = NULL;
    size_t n = 0;
    if (rc == 0 && (rc = search_enumerate(&s, &space, &pts, &n, err, sizeof err)) == -1) {
        snprintf(err, sizeof err, "out of memory");
        rc = 1;
    }
    if (rc != 0) {
        fprintf(stderr, "pplan: %s\n", err);
        scenario_free(&s);
        return rc;
    }
    double t0 = run_now_ms();
    rc = search_run(o.scenario, o.sets, o.nsets, pts, n, o.jobs, isatty(2) ? stderr : NULL);
    double wall_ms = run_now_ms() - t0;
    size_t *order = malloc((n ? n : 1) * sizeof *order), nrank = 0;
    if (rc != 0 || !order) {
        fprintf(stderr, "pplan: %s\n", rc ? "a worker process failed (out of memory, or killed)"
                                          : "out of memory");
        rc = 1;
    } else {
        nrank = search_rank(pts, n, order);
        if (!o.json)
            search_report(stdout, o.scenario, o.sets, o.nsets, &s, &space, pts, n, order, nrank,
                          (size_t)o.top);
        else if (search_report_json(stdout, o.scenario, o.sets, o.nsets, &s, &space, pts, n,
                                    order, nrank, (size_t)o.top) != 0)
            fprintf(stderr, "pplan: cannot write the JSON (out of memory, or stdout failed)\n"), rc = 1;
        int64_t id = 0;
        rc = o.db ? store_search(&o, &s, pts, n, order, nrank, wall_ms, &id) : 0;
        if (!o.quiet) {
            fprintf(stderr, "pplan: %zu configurations in %.2f s on %d processes", n,
                    wall_ms / 1e3, o.jobs);
            if (o.db && rc == 0) fprintf(stderr, "; stored search %lld in %s", (long long)id, o.db);
            fprintf(stderr, "\n");
        }
        if (rc == 0 && nrank == 0) rc = 3;
    }
    free(order), free(pts);
    scenario_free(&s);
    return rc;
}
