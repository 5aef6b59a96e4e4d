/* traces/store.h: the SQLite store of runs (predicted by psim or measured by pexec).
 * One file holds many runs; a run is written in one transaction, so a reader sees a run
 * whole or not at all. Comparison, calibration and plotting read from here (not this file). */
#ifndef PIPESIM_STORE_H
#define PIPESIM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim/program/timeline.h"

/* Schema version kept in PRAGMA user_version. A file with a larger version is refused; older
 * ones are upgraded in place when opened (2 added the memory table, 3 sweeps and runs.sweep,
 * 4 the ops streams 'allreduce' and 'optimizer', and failed runs: runs.error, with triggers
 * holding runs.status to 'complete' or 'failed'; 5 the searches and search_points tables of
 * pplan, and run_env: what each run ran on, as text; 6 the ops stream 'tensor', pexec's
 * tensor-parallel all-reduces; 7 'tensor_allgather' and 'tensor_reduce_scatter', sequence
 * parallelism's; 8 'reduce_scatter' and 'all_gather', the data-parallel collectives of
 * [parallel] zero >= 1, and search_points.zero; 9 'expert', the all-to-alls of MoE layers with
 * expert parallelism). */
#define STORE_SCHEMA_VERSION 9

typedef struct Store Store;

/* One line of a run's environment, e.g. {"compiler", "12.2.0"} or {"OMP_NUM_THREADS", "4"}:
 * stored in run_env, text both. Borrowed for the duration of store_run_write. */
typedef struct {
    const char *name;  // unique within a run; ours are lower case, environment variables as set
    const char *value;
} StoreEnv;

/* What identifies a run. All strings are borrowed for the duration of the call; NULL is
 * stored as NULL. */
typedef struct {
    const char *tool;          // "psim" or "pexec"
    const char *scenario_path; // as given on the command line
    const char *scenario_text; // the file's bytes as read
    const char *resolved;      // every key with its final value, as INI text (scenario_format)
    const char *overrides;     // the --set arguments, one per line, or NULL
    const char *schedule;      // schedule name, e.g. "1f1b"
    const char *version;       // pipesim version string
    const char *host;          // host name
    int32_t devices;           // p
    int32_t micro_batches;     // m per iteration
    int32_t chunks;            // v
    int32_t iterations;
    int64_t sweep;             // the sweep (psim --sweep) the run is a point of, 0 for none
    const char *error;         // NULL: the run is complete; else it failed (pexec only) and
                               //   this says why (stored in runs.error, status 'failed')
    const StoreEnv *env;       // what the run ran on (versions, host, environment variables),
    size_t nenv;               //   nenv pairs with distinct names; NULL/0 for none
} StoreRunInfo;

typedef struct {
    const char *name; // e.g. "makespan_ms"
    double value;
} StoreMetric;

/* Per-device metric, e.g. {device 3, "busy_ms", 812.5}. */
typedef struct {
    int32_t device;
    const char *name;
    double value;
} StoreDeviceMetric;

/* store_open opens or creates the database at path: WAL journal, foreign keys on, schema
 * created if absent, busy timeout so concurrent writers wait instead of failing.
 * Returns 0 and sets *out; on failure returns -1 with a one-line reason in err (which names
 * the path and what to do) and *out = NULL. Refuses user_version > STORE_SCHEMA_VERSION. */
int store_open(const char *path, Store **out, char *err, size_t errlen);
/* store_open_reader is the readers' open (pexport, pcompare, pcalibrate): the file must exist
 * (it is never created); a current schema is opened read-only, so a database the user may
 * only read (a shared one, read-only media: then as immutable) serves; an older schema is
 * upgraded as store_open would, which needs write access (the message says so when it is
 * missing). Returns 0 and sets *out, or -1 with err. */
int store_open_reader(const char *path, Store **out, char *err, size_t errlen);
void store_close(Store *s);

/* store_run_write appends one run: its info (with its environment, info->env), every Timeline
 * row, the memory samples (mem may be NULL), the run metrics and per-device metrics, in one
 * transaction, so no reader ever sees
 * a run half written. Never overwrites earlier runs. A run with info->error set is stored as
 * failed: it keeps the rows measured up to the failure (it normally has no metrics or
 * memory, but its environment), and every reader of the store must tell it apart from a complete run (status
 * column; StoreRunRow.failed); psim's runs are always complete. On success
 * returns 0 and sets *run_id; on failure rolls back (nothing of the run stays) and returns -1
 * with a reason in err. */
int store_run_write(Store *s, const StoreRunInfo *info, const Timeline *tl, const MemTrace *mem,
                    const StoreMetric *metrics, size_t nmetrics,
                    const StoreDeviceMetric *dmetrics, size_t ndmetrics,
                    int64_t *run_id, char *err, size_t errlen);

/* Readers (used by tests and later by compare/plot). store_run_count returns the number of
 * runs, complete and failed, or -1 on error. store_ops_load fills tl (which must be zeroed) with the run's rows in
 * (device, stream, start_ns, id) order; store_metric_get reads one run metric. Both return 0,
 * or -1 when absent or on error. */
int64_t store_run_count(Store *s);
int store_ops_load(Store *s, int64_t run_id, Timeline *tl);
int store_metric_get(Store *s, int64_t run_id, const char *name, double *value);
/* store_device_metric_get reads one per-device metric (e.g. device 1's "f_gemm_ms"); 0, or -1
 * when absent or on error. */
int store_device_metric_get(Store *s, int64_t run_id, int32_t device, const char *name,
                            double *value);
/* What store_run_get reads back about a run; the strings are malloc'd (store_run_row_free). */
typedef struct {
    char *tool, *schedule, *resolved;
    char *error;           // why a failed run failed; NULL for a complete run
    int failed;            // 1: status 'failed' (rows only up to the failure, no metrics)
    int32_t devices, micro_batches, chunks, iterations;
} StoreRunRow;

/* Starts a sweep: a new id (1 for the first), unique even when several processes start
 * sweeps at once. -1 on error. */
int64_t store_next_sweep(Store *s);

/* One point of a sweep as stored: its run, the --set arguments it ran with, a few metrics. */
typedef struct {
    int64_t run_id;
    char *overrides;        // malloc'd, one "section.key=value" per line
    double makespan_ms, bubble_rate, tokens_per_s, peak_memory_gib; // peak: fullest device
} StoreSweepRow;

/* store_sweep_rows reads every run of a sweep in run order into *rows (malloc'd, n of them;
 * free with store_sweep_rows_free). Returns 0, or -1 on error. */
int store_sweep_rows(Store *s, int64_t sweep, StoreSweepRow **rows, size_t *n);
void store_sweep_rows_free(StoreSweepRow *rows, size_t n);

/* store_run_resolve turns a run argument as the tools take it into a run id: a whole number
 * (checked to name a run), "latest" (the newest complete run), "latest-measured" (the newest
 * complete pexec run) or "latest-predicted" (the newest complete psim run); the one place
 * these names are defined (plots/lib.sh's resolve_run mirrors it for pplot). Returns 0 and
 * sets *id; 2 with a message in err naming arg and what would be right (bad input: not an id,
 * no such run, no run of that kind); -1 when the database cannot be read. */
int store_run_resolve(Store *s, const char *arg, int64_t *id, char *err, size_t errlen);

/* store_run_get reads run run_id; 0, or -1 when there is no such run or on error. */
int store_run_get(Store *s, int64_t run_id, StoreRunRow *out);
void store_run_row_free(StoreRunRow *r);

/* store_metrics_csv writes "name,value" lines of run run_id's metrics to f (a header first);
 * 0, or -1 when there is no such run or on error. */
int store_metrics_csv(Store *s, int64_t run_id, FILE *f);

/* One line of a run's environment as read back; both strings malloc'd. */
typedef struct {
    char *name, *value;
} StoreEnvRow;

/* store_run_env reads run run_id's environment in name order (bytewise) into *rows (malloc'd,
 * *n of them; free with store_run_env_free). A run without one (stored before schema 5 or
 * with info->nenv 0) gives 0 rows. Returns 0, or -1 when there is no such run or on error
 * (*rows NULL, *n 0). */
int store_run_env(Store *s, int64_t run_id, StoreEnvRow **rows, size_t *n);
void store_run_env_free(StoreEnvRow *rows, size_t n);

/* store_memory_load fills mem (zeroed) with the run's samples in (device, t_ns) order;
 * 0, or -1 when there are none or on error. */
int store_memory_load(Store *s, int64_t run_id, MemTrace *mem);

/* A configuration search (pplan): what was searched and how many points ended each way. Strings
 * are borrowed for the call; NULL is stored as NULL. */
typedef struct {
    const char *scenario_path, *scenario_text;
    const char *overrides;     // the user's --set arguments, one per line, or NULL
    const char *schedules;     // the schedules searched, comma-separated
    const char *version, *host;
    int64_t gpus;              // p x d x t
    int64_t global_batch;      // samples per iteration
    int64_t points, fit, dropped_static, dropped_memory, invalid;
    double wall_ms;            // ms the search took
} StoreSearchInfo;

/* One point of a search: its configuration, what became of it, its metrics (NaN: not
 * simulated, stored as NULL). */
typedef struct {
    const char *schedule;
    int64_t stages, chunks, data, tensor, micro_batch_size, micro_batches; // p v d t b m
    const char *recompute;     // none, selective, full
    const char *status;        // ok, static, memory, invalid
    const char *reason;        // invalid: why; else NULL or ""
    int64_t rank;              // 1 = best of those that fit; 0 (stored NULL) for the others
    double static_gib;         // GiB, weights + grads + optimizer of the fullest device
    double peak_gib;           // GiB, simulated peak of the fullest device
    double makespan_ms, bubble_rate, tokens_per_s, tflops_per_gpu, mfu;
    int64_t zero;              // [parallel] zero, 0..3 (schema 8)
    int64_t context;           // [parallel] context, c >= 1 (schema 8)
} StoreSearchPoint;

/* store_search_write appends a search and its n points (point = index in pts) in one
 * transaction. Returns 0 and sets *search_id, or -1 with a reason in err (nothing kept). */
int store_search_write(Store *s, const StoreSearchInfo *info, const StoreSearchPoint *pts,
                       size_t n, int64_t *search_id, char *err, size_t errlen);
/* Points of a search with that status (NULL: all), or -1 on error. */
int64_t store_search_points(Store *s, int64_t search_id, const char *status);

#endif
