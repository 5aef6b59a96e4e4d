/* sim/search/search.h: the configuration search behind pplan. For a scenario, a cluster size and a
 * global batch it lists every (schedule, p, v, d, t, b, m, recompute) that can run, drops the
 * ones that do not fit in memory_gib (first a static bound, then the simulated peak), and
 * simulates the rest on several processes, each point through psim's own path (run.h) with
 * --set overrides, so a point is exactly what `psim --set ...` would simulate. Ranking and
 * the printed report live here too; the command line and the store are pplan's. */
#ifndef PIPESIM_SEARCH_H
#define PIPESIM_SEARCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim/model/cost.h"
#include "sim/scenario/scenario.h"

#define SEARCH_NSETS 14   // --set overrides one point adds to the user's (at most)
#define SEARCH_SET_MAX 80 // bytes of one of them
#define SEARCH_MAX_POINTS 200000

/* What became of a point. Ok points fit and were simulated; static ones were dropped before
 * the engine ran (weights + gradients + optimizer state of the fullest device alone exceed
 * memory_gib); memory ones were simulated and their peak exceeds memory_gib; invalid ones
 * were refused by the scenario, the schedule or the planner (a bug in the enumeration if it
 * ever happens: the reason says which). Pending: not run (yet). */
typedef enum {
    SEARCH_PENDING = 0, SEARCH_OK, SEARCH_STATIC, SEARCH_MEMORY, SEARCH_INVALID
} SearchStatus;

typedef struct {
    const char *schedule;      // static name from the schedule table
    int32_t stages;            // p
    int32_t chunks;            // v
    int32_t data;              // d, pipeline replicas
    int32_t tensor;            // t, tensor-parallel devices per stage
    int64_t micro_batch_size;  // b, samples
    int64_t micro_batches;     // m per iteration (d x m x b = global batch)
    Recompute recompute;
    int32_t zero;              // [parallel] zero: 0 with d c = 1, one of SearchSpace.zero else
    int32_t context;           // c, context-parallel GPUs per (stage, tensor rank), >= 1
    int sequence;              // sequence parallelism: the scenario's when it gives one, else
                               //   on whenever t > 1 (and t divides b s)
    int32_t expert;            // e, expert parallelism of an MoE model (>= 1); 0: a dense model
                               //   (no parallel.expert set)
} SearchConfig;

/* One point and what simulating it gave. Metrics are those of one iteration; tokens_per_s
 * counts the whole global batch (every replica): global_batch x seq_len / makespan. */
typedef struct {
    SearchConfig cfg;
    SearchStatus status;
    double static_gib;      // GiB, weights + grads + optimizer of the fullest device
    double peak_gib;        // GiB, simulated peak of the fullest device (0 unless simulated)
    int32_t fullest;        // device with the most memory (simulated peak, else static)
    double makespan_ms;     // ms, one iteration
    double busy_ms;         // ms, mean compute time per pipeline device
    double bubble_rate;     // Metrics.bubble_rate
    double tokens_per_s;    // Metrics.throughput_tokens_per_s: all d replicas together
    double allreduce_ms;    // ms, the data-parallel collectives of an iteration's tail:
                            //   Metrics.allreduce_ms, with zero 1, 2 reduce_scatter_ms +
                            //   all_gather_ms (zero 3 has them inside its ops)
    double allreduce_exposed_ms; // ms, the part of them the cool-down did not hide
    double tflops_per_gpu;  // Metrics.tflops_per_gpu
    double mfu;             // Metrics.mfu
    double split_ms[COST_SPLIT]; // ms per iteration, mean per pipeline device, of each class
                                 //   of predicted work (cost.h; all 0 without a split)
    char reason[256];       // invalid: why ("" otherwise)
} SearchPoint;

/* The space to search. schedules: comma-separated names, or NULL for every synchronous
 * schedule of the table (custom needs a schedule file and the asynchronous pipedream and
 * pipedream-2bw have no flush, so one iteration is not their steady state and their
 * gradients are stale: they are left out, and refused when named). */
typedef struct {
    int64_t gpus;         // p x d x t x c
    int64_t global_batch; // samples per iteration, d x m x b
    const char *schedules;
    const char *zero;     // ZeRO levels tried when d > 1, comma-separated digits 0..3 in the
                          //   order given; NULL: 0 only (pplan's default is "0,1,3")
    const char *context;  // context-parallel widths, comma-separated; NULL: 1 and each power
                          //   of two c that leaves every rank at least 8192 tokens of a sample
                          //   (context parallelism pays only for long sequences)
} SearchSpace;

/* search_enumerate lists every point of the space for the scenario base (already loaded with
 * the user's overrides), in a fixed order: context, tensor, stages, micro_batch_size, schedule,
 * chunks, recompute, zero, expert, each ascending (schedules in table order, zero and context
 * as listed). An MoE model (experts > 0) is searched with t = 1 only (pipesim does not split
 * experts by t) and every power of two e dividing both experts and d. Rules: t a power of two that divides heads and gpus_per_node; c with 2c dividing
 * seq_len; p x d x t x c = gpus; d x m x b = global batch; v as each schedule's
 * own validate accepts (1 .. layers / p tried); at least one layer per stage of a model copy
 * (partition = balanced). Returns 0 with *out (malloc'd, *n points, all pending), or 2 with a
 * message in err (a bad schedule or zero list, no point at all, more than SEARCH_MAX_POINTS), or -1
 * out of memory. */
int search_enumerate(const Scenario *base, const SearchSpace *sp, SearchPoint **out, size_t *n,
                     char *err, size_t errlen);

/* The --set overrides of a point ("pipeline.stages=8", ...); returns how many (SEARCH_NSETS). */
int search_point_sets(const SearchConfig *c, char sets[SEARCH_NSETS][SEARCH_SET_MAX]);

/* search_point_run simulates one point of the scenario at path, the user's nbase overrides
 * first, the point's after them, exactly as psim does, and fills pt's status and metrics.
 * Returns 0 (whatever the status), or 1 on an environment failure (out of memory). */
int search_point_run(const char *path, const char *const *base_sets, int nbase, SearchPoint *pt);

/* search_run runs every point on `jobs` worker processes (each takes the next point not yet
 * taken; results land in shared memory, so points can finish in any order). progress, when
 * not NULL, gets "\r... k of n points" lines. Returns 0, or 1 when a worker failed (every
 * point it left is still pending). */
int search_run(const char *path, const char *const *base_sets, int nbase, SearchPoint *pts,
               size_t n, int jobs, FILE *progress);

/* Counts of each status (indexed by SearchStatus). */
void search_count(const SearchPoint *pts, size_t n, size_t counts[5]);

/* search_rank writes into order the indexes of the ok points, best first: most tokens/s, then
 * the lower peak memory, then the earlier point; returns how many. */
size_t search_rank(const SearchPoint *pts, size_t n, size_t *order);

/* Prints the best `top` of the ranking as a #-headed table, the psim command line of the
 * winner (scenario path and user overrides as given), and the "why" section comparing the
 * winner with the runners-up and with the fastest point that did not fit. */
void search_report(FILE *f, const char *path, const char *const *base_sets, int nbase,
                   const Scenario *base, const SearchSpace *sp, const SearchPoint *pts,
                   size_t n, const size_t *order, size_t nrank, size_t top);

/* The same ranking as one JSON object (jansson): the search's size and counts, the user's
 * overrides, and the best `top` points, each with its configuration, metrics (null where not
 * simulated) and the --set list psim takes for it. 0, or -1 when out of memory or f fails. */
int search_report_json(FILE *f, const char *path, const char *const *base_sets, int nbase,
                       const Scenario *base, const SearchSpace *sp, const SearchPoint *pts,
                       size_t n, const size_t *order, size_t nrank, size_t top);

/* The "why" part alone: the winner order[0] against order[1..k] (k <= 3). */
void search_why(FILE *f, const Scenario *base, const SearchPoint *pts, size_t n,
                const size_t *order, size_t nrank);

const char *search_status_name(SearchStatus s);

/* The schedules a search compares, in table order, comma-separated: every one of the table
 * but those it leaves out (custom, pipedream, pipedream-2bw). */
const char *search_schedule_names(void);

#endif
