/* sim/search/search.c: pplan's configuration search (search.h): the enumeration, one point through
 * psim's run path, worker processes sharing the point array in anonymous shared memory, the
 * ranking and the report. It does not parse pplan's options or write the store. */
#define _DEFAULT_SOURCE // MAP_ANONYMOUS
#include "sim/search/search.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sim/engine/engine.h"
#include "sim/model/memory.h"
#include "sim/run/run.h"

/* Schedules of the table a search leaves out, and why. */
static const struct {
    const char *name, *why;
} LEFT_OUT[] = {
    {"custom", "it runs the order in a schedule file, which fixes p, v and m"},
    {"pipedream", "it is asynchronous (no flush: stale gradients, stashed weights), so one "
                  "iteration is not its steady state and it trains differently"},
    {"pipedream-2bw", "it is asynchronous (no flush: gradients one update late), so one "
                      "iteration is not its steady state and it trains differently"},
};
#define NLEFT_OUT (sizeof LEFT_OUT / sizeof LEFT_OUT[0])

static const char *left_out(const char *name) {
    for (size_t i = 0; i < NLEFT_OUT; i++)
        if (strcmp(LEFT_OUT[i].name, name) == 0) return LEFT_OUT[i].why;
    return NULL;
}

/* Searchable schedules a search tries only when --schedules names them: zb-auto searches
 * the same orders under the limit the device's memory sets, which is what a plan needs,
 * zb-1p and zb-2p only fix that limit at p and 2p activations, and zb-exact solves small
 * pipelines only (p m <= 64), slowly. */
static int by_name_only(const char *name) {
    return strcmp(name, "zb-1p") == 0 || strcmp(name, "zb-2p") == 0 ||
           strcmp(name, "zb-exact") == 0;
}

const char *search_schedule_names(void) {
    static char names[4096];
    if (names[0]) return names;
    char *all = strdup(sched_names());
    size_t len = 0;
    for (char *save = NULL, *w = all ? strtok_r(all, ", ", &save) : NULL; w;
         w = strtok_r(NULL, ", ", &save))
        if (!left_out(w) && !by_name_only(w)) {
            int n = snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", w);
            len = n > 0 && len + (size_t)n < sizeof names ? len + (size_t)n : len;
        }
    free(all);
    return names;
}

const char *search_status_name(SearchStatus s) {
    static const char *const NAMES[] = {"pending", "ok", "static", "memory", "invalid"};
    return (unsigned)s < 5 ? NAMES[s] : "?";
}

/* ---- enumeration ------------------------------------------------------------------------- */

#define MAX_SCHEDULES 32

/* The schedules to search, in table order or as listed; 2 with err for a bad list. */
static int schedules_pick(const char *list, const Schedule **out, int *n, char *err,
                          size_t errlen) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list ? list : sched_names());
    *n = 0;
    for (char *save = NULL, *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
        const Schedule *sc = sched_find(w);
        const char *why = sc ? left_out(w) : NULL;
        if (!list && (why || by_name_only(w))) continue;
        if (!sc || why) {
            snprintf(err, errlen, "--schedules: %s %s%s; searchable: %s, and by name zb-1p, zb-2p", w,
                     sc ? "is left out of searches: " : "is not a schedule", sc ? why : "",
                     search_schedule_names());
            return 2;
        }
        for (int i = 0; i < *n; i++)
            if (out[i] == sc) sc = NULL;
        if (sc && *n < MAX_SCHEDULES) out[(*n)++] = sc;
    }
    if (*n == 0) {
        snprintf(err, errlen, "--schedules: name at least one schedule, e.g. --schedules 1f1b,zb-h1");
        return 2;
    }
    return 0;
}

typedef struct {
    SearchPoint *pts;
    size_t n, cap;
} PointList;

static int point_add(PointList *l, const SearchConfig *c) {
    if (l->n == SEARCH_MAX_POINTS) return 2;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        SearchPoint *more = realloc(l->pts, cap * sizeof *more);
        if (!more) return -1;
        l->pts = more, l->cap = cap;
    }
    memset(&l->pts[l->n], 0, sizeof l->pts[l->n]);
    l->pts[l->n++].cfg = *c;
    return 0;
}

#define MAX_ZERO 4
#define MAX_CONTEXT 32

/* The context-parallel widths to try, from a list such as "1,2,16" (each c >= 1 with 2c
 * dividing seq_len), or by default 1 and every power of two leaving a rank 8192 tokens of a
 * sample or more; 2 with err for a bad list. */
static int context_pick(const char *list, const Scenario *s, int32_t *out, int *n, char *err,
                        size_t errlen) {
    int64_t seq = s->model.seq_len;
    *n = 0;
    if (!list) {
        out[(*n)++] = 1;
        for (int64_t c = 2; *n < MAX_CONTEXT && seq % (2 * c) == 0 && seq / c >= 8192; c *= 2)
            out[(*n)++] = (int32_t)c;
        return 0;
    }
    for (const char *p = list; *p;) {
        char *end;
        long c = strtol(p, &end, 10);
        int dup = 0;
        for (int i = 0; i < *n; i++) dup |= out[i] == c;
        if (end == p || c < 1 || c > (1 << 16) || (*end && *end != ',') || dup ||
            (c > 1 && seq % (2 * c) != 0) || *n == MAX_CONTEXT) {
            snprintf(err, errlen, "--context %s: give distinct widths c, comma-separated, each "
                     "1 or with 2c dividing seq_len = %lld (at most %d), e.g. --context 1,2,4",
                     list, (long long)seq, MAX_CONTEXT);
            return 2;
        }
        out[(*n)++] = (int32_t)c;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) {
        snprintf(err, errlen, "--context %s: name at least one width, e.g. --context 1", list);
        return 2;
    }
    return 0;
}

/* The ZeRO levels to try with d > 1, from a list such as "0,1,3"; 2 with err for a bad one. */
static int zero_pick(const char *list, int32_t *out, int *n, char *err, size_t errlen) {
    *n = 0;
    if (!list) return out[(*n)++] = 0, 0;
    for (const char *c = list; *c; c++) {
        if (*c == ',') continue;
        int dup = 0;
        for (int i = 0; i < *n; i++) dup |= out[i] == *c - '0';
        if (*c < '0' || *c > '3' || (c[1] && c[1] != ',') || dup) {
            snprintf(err, errlen, "--zero %s: give distinct levels from 0 to 3, comma-separated, "
                     "e.g. --zero 0,1,3", list);
            return 2;
        }
        out[(*n)++] = *c - '0';
    }
    if (*n == 0) {
        snprintf(err, errlen, "--zero %s: name at least one level, e.g. --zero 0", list);
        return 2;
    }
    return 0;
}

/* Every chunk count, recompute mode and ZeRO level (nz of zero; 0 alone with d c = 1) of one
 * schedule at (c, t, p, d, b, m). */
static int add_schedule(PointList *l, const Scenario *s, const Schedule *sc, SearchConfig c,
                        const int32_t *zero, int nz) {
    int64_t pipes = sc->pipes > 1 ? sc->pipes : 1, L = s->model.layers;
    for (int64_t v = 1; v <= SCN_MAX_CHUNKS && c.stages * v <= L * pipes; v++) {
        SchedParams sp = {.devices = c.stages, .chunks = (int32_t)v,
                          .micro_batches = (int32_t)c.micro_batches, .iterations = 1};
        SchedIssue issue = {0};
        if ((c.stages * v) % pipes || sc->validate(&sp, &issue) != 0) continue;
        if (2.0 * (double)c.stages * (double)v * (double)c.micro_batches > (double)SCN_MAX_OPS)
            continue;
        c.chunks = (int32_t)v;
        for (int r = RECOMPUTE_NONE; r <= RECOMPUTE_FULL; r++) {
            c.recompute = (Recompute)r;
            int shards = c.data * c.context > 1; // ZeRO shards over the d c GPUs
            for (int z = 0; z < (shards ? nz : 1); z++) {
                c.zero = shards ? zero[z] : 0;
                // an MoE model: each power of two e dividing experts and d (0: dense, none)
                int64_t E = s->model.experts;
                for (int64_t e = E > 0 ? 1 : 0; e <= (E > 0 ? c.data : 0); e = e ? 2 * e : 1) {
                    if (E > 0 && (E % e || c.data % e)) continue;
                    c.expert = (int32_t)e;
                    int rc = point_add(l, &c);
                    if (rc) return rc;
                    if (!e) break;
                }
            }
        }
    }
    return 0;
}

int search_enumerate(const Scenario *s, const SearchSpace *sp, SearchPoint **out, size_t *n,
                     char *err, size_t errlen) {
    const Schedule *scheds[MAX_SCHEDULES];
    int32_t zero[MAX_ZERO], ctx[MAX_CONTEXT];
    int nsched, nz = 0, nc = 0, rc = schedules_pick(sp->schedules, scheds, &nsched, err, errlen);
    if (rc == 0) rc = zero_pick(sp->zero, zero, &nz, err, errlen);
    if (rc == 0) rc = context_pick(sp->context, s, ctx, &nc, err, errlen);
    PointList l = {0};
    int64_t B = sp->global_batch;
    for (int i = 0; rc == 0 && i < nc; i++) {
        int64_t cp = ctx[i], G = sp->gpus / cp; // GPUs of one context rank
        if (sp->gpus % cp) continue;
        for (int64_t t = 1; rc == 0 && t <= s->hw.gpus_per_node && t <= G; t *= 2) {
            if (s->model.heads % t || scenario_kv_heads(&s->model) % t ||
                s->model.ffn_hidden % t || s->hw.gpus_per_node % t || G % t ||
                (s->model.experts > 0 && t > 1))
                continue;
            for (int64_t p = 1; rc == 0 && p <= G / t && p <= SCN_MAX_STAGES; p++) {
                int64_t d = G / t / p;
                if ((G / t) % p || B % d || p > s->model.layers) continue;
                for (int64_t b = 1; rc == 0 && b <= B / d && b <= 1 << 16; b++) {
                    if ((B / d) % b || B / d / b > SCN_MAX_MICRO_BATCHES) continue;
                    SearchConfig c = {.stages = (int32_t)p, .data = (int32_t)d,
                                      .tensor = (int32_t)t, .context = (int32_t)cp,
                                      .micro_batch_size = b, .micro_batches = B / d / b};
                    c.sequence = t > 1 && s->model.seq_len % t == 0 &&
                                 (s->parallel.sequence_given ? s->parallel.sequence : 1);
                    for (int k = 0; rc == 0 && k < nsched; k++) {
                        c.schedule = scheds[k]->name;
                        rc = add_schedule(&l, s, scheds[k], c, zero, nz);
                    }
                }
            }
        }
    }
    int64_t G = sp->gpus;
    if (rc == 2 && l.n == SEARCH_MAX_POINTS)
        snprintf(err, errlen, "more than %d configurations; search fewer --schedules or a "
                 "smaller --global-batch", SEARCH_MAX_POINTS);
    else if (rc == 0 && l.n == 0)
        snprintf(err, errlen, "no configuration of %lld GPUs runs a global batch of %lld: "
                 "p x d x t x c = gpus (t a power of two dividing heads = %lld and "
                 "gpus_per_node = %lld, p at most layers = %lld) with d dividing the global "
                 "batch, and each schedule's own rules; try another --gpus or --global-batch",
                 (long long)G, (long long)B, (long long)s->model.heads,
                 (long long)s->hw.gpus_per_node, (long long)s->model.layers), rc = 2;
    if (rc != 0) {
        free(l.pts);
        return rc;
    }
    *out = l.pts, *n = l.n;
    return 0;
}

int search_point_sets(const SearchConfig *c, char sets[SEARCH_NSETS][SEARCH_SET_MAX]) {
    int k = 0;
#define SET(...) snprintf(sets[k++], SEARCH_SET_MAX, __VA_ARGS__)
    SET("pipeline.schedule=%s", c->schedule);
    SET("pipeline.stages=%d", c->stages);
    SET("pipeline.chunks=%d", c->chunks);
    SET("pipeline.partition=balanced");
    SET("parallel.data=%d", c->data);
    SET("parallel.tensor=%d", c->tensor);
    SET("batch.micro_batch_size=%lld", (long long)c->micro_batch_size);
    SET("batch.micro_batches=%lld", (long long)c->micro_batches);
    SET("batch.iterations=1");
    SET("model.recompute=%s", recompute_name(c->recompute));
    SET("parallel.sequence=%s", c->sequence ? "true" : "false");
    SET("parallel.zero=%d", c->zero);
    SET("parallel.context=%d", c->context > 1 ? c->context : 1);
    if (c->expert > 0) SET("parallel.expert=%d", c->expert);
#undef SET
    return k;
}

/* ---- one point ---------------------------------------------------------------------------- */

/* Weights + gradients + optimizer state of every device, from the Program's placement (the
 * memory model with no activation taken yet). Sets *fullest; returns its bytes. */
static double static_bytes(const Run *r, int32_t *fullest) {
    double most = -1;
    for (int32_t d = 0; d < r->prog.devices; d++) {
        DeviceMemory dm;
        memory_device_static(&r->scn, &r->plan, &r->prog, d, &dm);
        double fixed = memory_static_bytes(&dm);
        if (fixed > most) most = fixed, *fullest = d;
    }
    return most;
}

static void fill_metrics(const Run *r, SearchPoint *pt) {
    const Metrics *mt = &r->mt;
    double busy = 0, peak = -1;
    for (int32_t d = 0; d < mt->devices; d++) {
        busy += mt->dev[d].busy_ms;
        if (mt->dev[d].peak_memory_gib > peak) peak = mt->dev[d].peak_memory_gib, pt->fullest = d;
    }
    const Scenario *s = &r->scn;
    pt->peak_gib = peak;
    pt->makespan_ms = mt->makespan_ms;
    pt->busy_ms = busy / mt->devices;
    pt->bubble_rate = mt->bubble_rate;
    pt->tokens_per_s = mt->throughput_tokens_per_s;
    pt->allreduce_ms = mt->allreduce_ms + (mt->zero && mt->zero < 3 ? mt->reduce_scatter_ms +
                                                                         mt->all_gather_ms : 0);
    pt->allreduce_exposed_ms = mt->allreduce_exposed_ms;
    pt->tflops_per_gpu = mt->tflops_per_gpu;
    pt->mfu = mt->mfu;
    pt->status = peak > s->hw.memory_gib ? SEARCH_MEMORY : SEARCH_OK;
}

int search_point_run(const char *path, const char *const *base_sets, int nbase, SearchPoint *pt) {
    char sets[SEARCH_NSETS][SEARCH_SET_MAX], err[SCN_ERR_MAX];
    RunOptions o;
    memset(&o, 0, sizeof o);
    o.prog = "pplan", o.scenario = path, o.quiet = 1, o.scale = 1;
    for (int i = 0; i < nbase && o.nsets < RUN_MAX_SETS; i++) o.sets[o.nsets++] = base_sets[i];
    int k = search_point_sets(&pt->cfg, sets);
    for (int i = 0; i < k && o.nsets < RUN_MAX_SETS; i++) o.sets[o.nsets++] = sets[i];
    Scenario s;
    int rc = scenario_load(path, o.sets, o.nsets, &s, err); // the reason, without stderr noise
    scenario_free(&s);
    if (rc != 0) {
        pt->status = SEARCH_INVALID;
        snprintf(pt->reason, sizeof pt->reason, "%.250s", err);
        return rc == 1 ? 1 : 0;
    }
    Run r = {0};
    rc = run_prepare(&o, &r);
    if (rc == 0) {
        double fixed = static_bytes(&r, &pt->fullest);
        pt->static_gib = fixed / GIB;
        if (pt->static_gib > r.scn.hw.memory_gib) pt->status = SEARCH_STATIC;
    } else if (rc == 2) {
        pt->status = SEARCH_INVALID;
        snprintf(pt->reason, sizeof pt->reason, "psim refuses it (its message is on stderr)");
        rc = 0;
    }
    if (rc == 0 && pt->status == SEARCH_PENDING) {
        int e = run_simulate(&r, err, sizeof err); // as psim: iterations = 1 (the point's)
        if (e == -2) {
            pt->status = SEARCH_INVALID;
            snprintf(pt->reason, sizeof pt->reason, "the run stalls: %.120s", err);
        } else if (e != 0 || metrics_compute_lost(&r.scn, &r.plan, &r.prog, &r.cost, &r.tl,
                                                  &r.failure, &r.mt)) {
            rc = 1;
        } else if (run_split(&r) != 0) {
            rc = 1;
        } else {
            fill_metrics(&r, pt);
            for (int32_t d = 0; r.split && d < r.prog.devices; d++)
                for (int i = 0; i < COST_SPLIT; i++)
                    pt->split_ms[i] += r.split[d * COST_SPLIT + i] / r.prog.devices;
        }
    }
    run_free(&r);
    return rc;
}

/* ---- workers ------------------------------------------------------------------------------ */

typedef struct {
    atomic_size_t next; // next point to take
    atomic_size_t done; // points finished
    SearchPoint pts[];
} Shared;

static int work(const char *path, const char *const *base_sets, int nbase, Shared *sh, size_t n) {
    for (size_t i; (i = atomic_fetch_add(&sh->next, 1)) < n;) {
        if (search_point_run(path, base_sets, nbase, &sh->pts[i]) != 0) return 1;
        atomic_fetch_add(&sh->done, 1);
    }
    return 0;
}

int search_run(const char *path, const char *const *base_sets, int nbase, SearchPoint *pts,
               size_t n, int jobs, FILE *progress) {
    size_t bytes = sizeof(Shared) + n * sizeof *pts;
    Shared *sh = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) return 1;
    atomic_init(&sh->next, 0), atomic_init(&sh->done, 0);
    memcpy(sh->pts, pts, n * sizeof *pts);
    if ((size_t)jobs > n) jobs = n ? (int)n : 1;
    int rc = 0, started = 0;
    pid_t parent = getpid();
    for (int w = 0; w < jobs; w++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) run_worker_dies_with_parent(parent), _exit(work(path, base_sets, nbase, sh, n));
        if (pid < 0) rc = 1;
        else started++;
    }
    if (started == 0) rc = work(path, base_sets, nbase, sh, n); // no fork at all: do it here
    for (int left = started; left > 0;) {
        int status;
        pid_t done = waitpid(-1, &status, progress ? WNOHANG : 0);
        if (done > 0) {
            left--;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
        } else if (done < 0) {
            break;
        } else {
            fprintf(progress, "\rpplan: %zu of %zu points", atomic_load(&sh->done), n);
            fflush(progress);
            nanosleep(&(struct timespec){0, 100000000}, NULL);
        }
    }
    if (progress) fprintf(progress, "\r\033[K");
    memcpy(pts, sh->pts, n * sizeof *pts);
    munmap(sh, bytes);
    return rc;
}

/* ---- ranking ------------------------------------------------------------------------------ */

void search_count(const SearchPoint *pts, size_t n, size_t counts[5]) {
    memset(counts, 0, 5 * sizeof *counts);
    for (size_t i = 0; i < n; i++)
        if ((unsigned)pts[i].status < 5) counts[pts[i].status]++;
}

typedef struct {
    double tokens, peak;
    size_t idx;
} RankKey;

static int rank_cmp(const void *pa, const void *pb) {
    const RankKey *a = pa, *b = pb;
    if (a->tokens != b->tokens) return a->tokens > b->tokens ? -1 : 1;
    if (a->peak != b->peak) return a->peak < b->peak ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

size_t search_rank(const SearchPoint *pts, size_t n, size_t *order) {
    RankKey *k = malloc((n ? n : 1) * sizeof *k);
    size_t m = 0;
    if (!k) return 0;
    for (size_t i = 0; i < n; i++)
        if (pts[i].status == SEARCH_OK)
            k[m++] = (RankKey){pts[i].tokens_per_s, pts[i].peak_gib, i};
    qsort(k, m, sizeof *k, rank_cmp);
    for (size_t i = 0; i < m; i++) order[i] = k[i].idx;
    free(k);
    return m;
}

/* ---- report ------------------------------------------------------------------------------- */

static void config_text(const SearchConfig *c, char *buf, size_t len) {
    int n = snprintf(buf, len, "%s p=%d v=%d d=%d t=%d%s b=%lld m=%lld recompute=%s",
                     c->schedule, c->stages, c->chunks, c->data, c->tensor,
                     c->sequence ? " sp" : "", (long long)c->micro_batch_size,
                     (long long)c->micro_batches, recompute_name(c->recompute));
    if (c->zero && n > 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " zero=%d", c->zero);
    if (c->context > 1 && n > 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " c=%d", c->context);
    if (c->expert > 1 && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " e=%d", c->expert);
}

/* The keys where b differs from a, as "p=8 (winner 4), ...". */
static void config_diff(const SearchConfig *a, const SearchConfig *b, char *buf, size_t len) {
    char x[12][48];
    int k = 0;
    if (strcmp(a->schedule, b->schedule)) snprintf(x[k++], 48, "schedule %s", b->schedule);
#define DIFF(field, name)                                                                      \
    do {                                                                                       \
        if (a->field != b->field)                                                              \
            snprintf(x[k++], 48, name "=%lld (not %lld)", (long long)b->field,                 \
                     (long long)a->field);                                                     \
    } while (0)
    DIFF(stages, "p");
    DIFF(chunks, "v");
    DIFF(data, "d");
    DIFF(tensor, "t");
    DIFF(micro_batch_size, "b");
    DIFF(micro_batches, "m");
    DIFF(zero, "zero");
    DIFF(context, "c");
    DIFF(expert, "e");
#undef DIFF
    if (a->recompute != b->recompute)
        snprintf(x[k++], 48, "recompute %s (not %s)", recompute_name(b->recompute),
                 recompute_name(a->recompute));
    if (a->sequence != b->sequence)
        snprintf(x[k++], 48, "sequence parallel %s", b->sequence ? "on" : "off");
    buf[0] = '\0';
    for (int i = 0; i < k; i++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "", x[i]);
}

/* An iteration split into compute (mean busy), bubble (idle inside the longest device span)
 * and the rest (transfers outside every span, and whatever else lengthens the makespan). */
static void split(const SearchPoint *p, double *compute, double *bubble, double *rest) {
    double cost = p->bubble_rate < 1 ? p->busy_ms / (1 - p->bubble_rate) : p->makespan_ms;
    *compute = p->busy_ms, *bubble = cost - p->busy_ms, *rest = p->makespan_ms - cost;
}

/* A difference in ms as printed to 0.1 ms, without "-0.0". */
static double tidy(double ms) { return fabs(ms) < 0.05 ? 0.0 : ms; }

/* ", gemm 3120.4, attention 1010.2, ..." of p's compute by class (nothing without a split),
 * or with base the differences against it ("gemm +12.0, ..."; classes that moved). */
static void class_text(const SearchPoint *p, const SearchPoint *base, char *out, size_t n) {
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < COST_SPLIT && used < n; i++) {
        double x = base ? tidy(p->split_ms[i] - base->split_ms[i]) : p->split_ms[i];
        if (base ? x == 0 : x <= 0) continue;
        int k = snprintf(out + used, n - used, base ? "%s%s %+.1f" : "%s%s %.1f",
                         used ? ", " : "", cost_split_name(i), x);
        if (k < 0) break;
        used += (size_t)k;
    }
}

/* The part of the iteration (bubble, other, or a class of compute) that changed most against
 * the winner. */
static const char *deciding(const SearchPoint *w, const SearchPoint *r, double *ms) {
    double cw, bw, ow, cr, br, orr;
    split(w, &cw, &bw, &ow);
    split(r, &cr, &br, &orr);
    const char *name = "bubble";
    *ms = br - bw;
    if (fabs(orr - ow) > fabs(*ms))
        name = "other (transfers, exposed gradient collectives, optimizer)", *ms = orr - ow;
    int any = 0;
    for (int i = 0; i < COST_SPLIT; i++) any |= w->split_ms[i] > 0;
    if (!any && fabs(cr - cw) > fabs(*ms)) name = "compute", *ms = cr - cw;
    for (int i = 0; any && i < COST_SPLIT; i++)
        if (fabs(r->split_ms[i] - w->split_ms[i]) > fabs(*ms))
            name = cost_split_name(i), *ms = r->split_ms[i] - w->split_ms[i];
    return name;
}

static void why_one(FILE *f, const Scenario *s, const SearchPoint *w, const SearchPoint *r,
                    int rank) {
    char diff[640]; // up to 12 differences of at most 48 bytes with separators
    double cw, bw, ow, cr, br, orr;
    split(w, &cw, &bw, &ow);
    split(r, &cr, &br, &orr);
    config_diff(&w->cfg, &r->cfg, diff, sizeof diff);
    char cls[200];
    class_text(r, w, cls, sizeof cls);
    double ms;
    const char *what = deciding(w, r, &ms);
    fprintf(f, "#   #%d differs in %s: %.2f %% fewer tokens/s; its iteration is %+.1f ms "
            "(compute %+.1f%s%s%s, bubble %+.1f, other %+.1f ms of which exposed %s "
            "%+.1f; bubble rate %.1f %% vs %.1f %%); peak %.1f GiB vs %.1f of %g; largest change: %s "
            "%+.1f ms\n",
            rank, diff[0] ? diff : "nothing (a tie)",
            100.0 * (1 - r->tokens_per_s / w->tokens_per_s), tidy(r->makespan_ms - w->makespan_ms),
            tidy(cr - cw), cls[0] ? " [" : "", cls, cls[0] ? "]" : "", tidy(br - bw),
            tidy(orr - ow), w->cfg.zero || r->cfg.zero ? "gradient collectives" : "all-reduce",
            tidy(r->allreduce_exposed_ms - w->allreduce_exposed_ms),
            100 * r->bubble_rate, 100 * w->bubble_rate, r->peak_gib, w->peak_gib,
            s->hw.memory_gib, what, tidy(ms));
}

/* Whether a and b are one configuration but for the recompute mode (zero = 0), or but for the
 * ZeRO level (zero = 1). */
static int same_but(const SearchConfig *a, const SearchConfig *b, int zero) {
    return strcmp(a->schedule, b->schedule) == 0 && a->stages == b->stages &&
           a->chunks == b->chunks && a->data == b->data && a->tensor == b->tensor &&
           a->context == b->context && a->expert == b->expert &&
           a->micro_batch_size == b->micro_batch_size &&
           a->micro_batches == b->micro_batches && (zero ? a->recompute == b->recompute && a->zero != b->zero
                 : a->recompute != b->recompute && a->zero == b->zero);
}
static int same_but_recompute(const SearchConfig *a, const SearchConfig *b) {
    return same_but(a, b, 0);
}

/* The winner's configuration under the other recompute modes (zero = 0) or ZeRO levels
 * (zero = 1): what each would cost or need. */
static void why_other(FILE *f, const Scenario *s, const SearchPoint *w, const SearchPoint *pts,
                      size_t n, int zero) {
    for (size_t i = 0; i < n; i++) {
        const SearchPoint *p = &pts[i];
        if (!same_but(&w->cfg, &p->cfg, zero)) continue;
        if (zero) fprintf(f, "#   the same with zero %d: ", p->cfg.zero);
        else fprintf(f, "#   the same with recompute %s: ", recompute_name(p->cfg.recompute));
        if (p->status == SEARCH_OK)
            fprintf(f, "fits (%.1f GiB) but gives %.2f %% fewer tokens/s (compute %+.1f ms)\n",
                    p->peak_gib, 100.0 * (1 - p->tokens_per_s / w->tokens_per_s),
                    tidy(p->busy_ms - w->busy_ms));
        else if (p->status == SEARCH_MEMORY)
            fprintf(f, "%.2f %% %s tokens/s, but needs %.1f GiB, over %g\n",
                    100.0 * fabs(p->tokens_per_s / w->tokens_per_s - 1),
                    p->tokens_per_s > w->tokens_per_s ? "more" : "fewer", p->peak_gib,
                    s->hw.memory_gib);
        else if (p->status == SEARCH_STATIC)
            fprintf(f, "its weights, gradients and optimizer state alone need %.1f GiB\n",
                    p->static_gib);
        else
            fprintf(f, "%s\n", p->reason[0] ? p->reason : "not run");
    }
}

void search_why(FILE *f, const Scenario *s, const SearchPoint *pts, size_t n,
                const size_t *order, size_t nrank) {
    if (nrank == 0) return;
    const SearchPoint *w = &pts[order[0]];
    char cfg[256];
    double c, b, o;
    split(w, &c, &b, &o);
    config_text(&w->cfg, cfg, sizeof cfg);
    char cls[200];
    class_text(w, NULL, cls, sizeof cls);
    fprintf(f, "\n# why: %s\n#   its iteration: %.1f ms = compute %.1f%s%s%s + bubble %.1f + "
            "other %.1f ms (other: what lies outside the longest device span: start-up, "
            "transfers, the %s exposed %.1f of %.1f ms, the optimizer step); "
            "peak %.1f of %g GiB on device %d (%.1f GiB to spare)\n",
            cfg, w->makespan_ms, c, cls[0] ? " [" : "", cls, cls[0] ? "]" : "", b, o,
            w->cfg.zero == 0   ? "gradient all-reduce's"
            : w->cfg.zero < 3 ? "gradient reduce-scatter's and parameter all-gather's"
                              : "tail's (zero 3 gathers and scatters inside the ops)",
            w->allreduce_exposed_ms, w->allreduce_ms, w->peak_gib, s->hw.memory_gib, w->fullest,
            s->hw.memory_gib - w->peak_gib);
    for (size_t k = 1; k < nrank && k <= 3; k++) why_one(f, s, w, &pts[order[k]], (int)k + 1);
    why_other(f, s, w, pts, n, 0);
    why_other(f, s, w, pts, n, 1);
    const SearchPoint *faster = NULL; // the fastest simulated point that did not fit
    for (size_t i = 0; i < n; i++)
        if (pts[i].status == SEARCH_MEMORY && pts[i].tokens_per_s > w->tokens_per_s &&
            (!faster || pts[i].tokens_per_s > faster->tokens_per_s))
            faster = &pts[i];
    if (faster && same_but_recompute(&w->cfg, &faster->cfg)) {
        fprintf(f, "#   memory decides: the fastest configuration simulated is the winner with "
                "recompute %s, above, which does not fit\n", recompute_name(faster->cfg.recompute));
    } else if (faster) {
        config_text(&faster->cfg, cfg, sizeof cfg);
        fprintf(f, "#   memory decides: %s would give %.2f %% more tokens/s but needs %.1f GiB "
                "on device %d, more than %g\n", cfg,
                100.0 * (faster->tokens_per_s / w->tokens_per_s - 1), faster->peak_gib,
                faster->fullest, s->hw.memory_gib);
    } else {
        fprintf(f, "#   memory does not decide: no configuration over %g GiB was faster\n",
                s->hw.memory_gib);
    }
}

/* Prints an argument for a POSIX shell: as is when it is plain, else in single quotes. */
static void shell_arg(FILE *f, const char *a) {
    if (*a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/=,+:@") ==
                  strlen(a)) {
        fputs(a, f);
        return;
    }
    fputc('\'', f);
    for (; *a; a++)
        if (*a == '\'') fputs("'\\''", f);
        else fputc(*a, f);
    fputc('\'', f);
}

void search_report(FILE *f, const char *path, const char *const *base_sets, int nbase,
                   const Scenario *s, const SearchSpace *sp, const SearchPoint *pts, size_t n,
                   const size_t *order, size_t nrank, size_t top) {
    size_t c[5];
    search_count(pts, n, c);
    fprintf(f, "# pplan: %s on %lld x %s (%g GiB each, %lld per node), global batch %lld "
            "samples of %lld tokens\n", s->model.name, (long long)sp->gpus,
            s->hw.gpu[0] ? s->hw.gpu : "custom", s->hw.memory_gib, (long long)s->hw.gpus_per_node,
            (long long)sp->global_batch, (long long)s->model.seq_len);
    fprintf(f, "# %zu configurations: %zu fit; %zu dropped before simulating (weights + "
            "gradients + optimizer state over %g GiB), %zu after (simulated peak over %g GiB), "
            "%zu invalid\n", n, c[SEARCH_OK], c[SEARCH_STATIC], s->hw.memory_gib,
            c[SEARCH_MEMORY], s->hw.memory_gib, c[SEARCH_INVALID]);
    int moe = s->model.experts > 0; // an MoE model's table has e
    fprintf(f, "# rank  tokens_per_s  tflops_per_gpu  mfu_%%  bubble_%%  peak_gib  memory_gib  "
            "iteration_ms  schedule        p   v   d   t  sp     b     m  recompute  zero    c%s\n",
            moe ? "    e" : "");
    for (size_t k = 0; k < nrank && k < top; k++) {
        const SearchPoint *p = &pts[order[k]];
        fprintf(f, "%6zu %13.0f %15.1f %6.2f %9.2f %9.2f %11g %13.3f  %-13s %3d %3d %3d %3d "
                "%3s %5lld %5lld  %-9s %5d %4d", k + 1, p->tokens_per_s, p->tflops_per_gpu, 100 * p->mfu,
                100 * p->bubble_rate, p->peak_gib, s->hw.memory_gib, p->makespan_ms,
                p->cfg.schedule, p->cfg.stages, p->cfg.chunks, p->cfg.data, p->cfg.tensor,
                p->cfg.sequence ? "on" : "-",
                (long long)p->cfg.micro_batch_size, (long long)p->cfg.micro_batches,
                recompute_name(p->cfg.recompute), p->cfg.zero, p->cfg.context);
        if (moe) fprintf(f, " %4d", p->cfg.expert);
        fputc('\n', f);
    }
    if (nrank == 0) {
        fprintf(f, "# nothing fits in %g GiB; use more GPUs or a smaller global batch\n",
                s->hw.memory_gib);
        return;
    }
    char sets[SEARCH_NSETS][SEARCH_SET_MAX];
    int k = search_point_sets(&pts[order[0]].cfg, sets);
    fprintf(f, "\n# the winner, as psim simulates it:\npsim");
    for (int i = 0; i < nbase; i++) fputs(" --set ", f), shell_arg(f, base_sets[i]);
    for (int i = 0; i < k; i++) fprintf(f, " --set %s", sets[i]);
    fputc(' ', f);
    shell_arg(f, path);
    fputc('\n', f);
    search_why(f, s, pts, n, order, nrank);
}

/* One number, or null for NaN (JSON has none). */
static json_t *number(double x) { return isnan(x) ? json_null() : json_real(x); }

int search_report_json(FILE *f, const char *path, const char *const *base_sets, int nbase,
                       const Scenario *s, const SearchSpace *sp, const SearchPoint *pts,
                       size_t n, const size_t *order, size_t nrank, size_t top) {
    size_t c[5];
    search_count(pts, n, c);
    json_t *root = json_object(), *best = json_array(), *base = json_array();
    int rc = root && best && base ? 0 : -1;
    for (int i = 0; rc == 0 && i < nbase; i++) rc = json_array_append_new(base, json_string(base_sets[i]));
    for (size_t k = 0; rc == 0 && k < nrank && k < top; k++) {
        const SearchPoint *p = &pts[order[k]];
        char sets[SEARCH_NSETS][SEARCH_SET_MAX];
        int ns = search_point_sets(&p->cfg, sets);
        json_t *set = json_array();
        for (int i = 0; set && i < ns; i++) json_array_append_new(set, json_string(sets[i]));
        json_t *o = json_pack("{s:I, s:s, s:i, s:i, s:i, s:i, s:b, s:i, s:I, s:I, s:s, s:i,"
                              " s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                              "rank", (json_int_t)(k + 1), "schedule", p->cfg.schedule,
                              "stages", p->cfg.stages, "chunks", p->cfg.chunks, "data",
                              p->cfg.data, "tensor", p->cfg.tensor, "sequence",
                              p->cfg.sequence != 0, "context", p->cfg.context > 1 ? p->cfg.context : 1,
                              "micro_batch_size", (json_int_t)p->cfg.micro_batch_size,
                              "micro_batches", (json_int_t)p->cfg.micro_batches, "recompute",
                              recompute_name(p->cfg.recompute), "zero", p->cfg.zero,
                              "tokens_per_s", number(p->tokens_per_s), "tflops_per_gpu",
                              number(p->tflops_per_gpu), "mfu", number(p->mfu), "bubble_rate",
                              number(p->bubble_rate), "peak_gib", number(p->peak_gib),
                              "static_gib", number(p->static_gib), "iteration_ms",
                              number(p->makespan_ms), "allreduce_exposed_ms",
                              number(p->allreduce_exposed_ms), "sets", set ? set : json_array());
        if (o && p->cfg.expert > 0) json_object_set_new(o, "expert", json_integer(p->cfg.expert));
        rc = o ? json_array_append_new(best, o) : -1;
    }
    if (rc == 0)
        rc = json_object_set_new(root, "scenario", json_string(path)) ||
             json_object_set_new(root, "model", json_string(s->model.name)) ||
             json_object_set_new(root, "gpu", json_string(s->hw.gpu[0] ? s->hw.gpu : "custom")) ||
             json_object_set_new(root, "gpus", json_integer(sp->gpus)) ||
             json_object_set_new(root, "global_batch", json_integer(sp->global_batch)) ||
             json_object_set_new(root, "seq_len", json_integer(s->model.seq_len)) ||
             json_object_set_new(root, "memory_gib", json_real(s->hw.memory_gib)) ||
             json_object_set_new(root, "configurations", json_integer((json_int_t)n)) ||
             json_object_set_new(root, "fit", json_integer((json_int_t)c[SEARCH_OK])) ||
             json_object_set_new(root, "dropped_static", json_integer((json_int_t)c[SEARCH_STATIC])) ||
             json_object_set_new(root, "dropped_memory", json_integer((json_int_t)c[SEARCH_MEMORY])) ||
             json_object_set_new(root, "invalid", json_integer((json_int_t)c[SEARCH_INVALID])) ||
             json_object_set_new(root, "overrides", base) ||
             json_object_set_new(root, "best", best) ? -1 : 0;
    else json_decref(best), json_decref(base);
    if (rc == 0 && (json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) ||
                    fputc('\n', f) == EOF))
        rc = -1;
    json_decref(root);
    return rc;
}
