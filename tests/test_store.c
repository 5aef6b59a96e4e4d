/* tests/test_store.c: the SQLite store: round trip of a run in the documented order, appending,
 * WAL and schema version (and upgrades), a run's environment, refusing newer or foreign files untouched, rollback of a failed
 * write, two writers (handles and processes), and a 200k-row run. Each test gets a fresh dir. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "traces/store.h"

static char dir[64], path[128];
static char err[512];

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/psim-store-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    err[0] = '\0';
    return 0;
}

static int teardown(void **state) {
    (void)state;
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (int i = 0; i < 4; i++) snprintf(p, sizeof p, "%s%s", path, suffix[i]), remove(p);
    return rmdir(dir);
}

/* Rows in a deliberately scrambled order: device 1 before device 0, recv before send, later
 * starts first, and two compute rows of device 0 that start together (kept in input order). */
static const TimelineOp ROWS[] = {
    {.start_ns = 15, .end_ns = 25, .device = 1, .micro_batch = 0, .chunk = 1, .peer = -1, .kind = OP_F, .stream = STREAM_COMPUTE},
    {.start_ns = 10, .end_ns = 15, .bytes = 4096, .device = 1, .micro_batch = 0, .peer = 0, .kind = OP_F, .stream = STREAM_RECV},
    {.start_ns = 40, .end_ns = 48, .device = 0, .micro_batch = 1, .peer = -1, .kind = OP_W, .stream = STREAM_COMPUTE},
    {.start_ns = 60, .end_ns = 61, .bytes = 1, .device = 0, .micro_batch = 2, .peer = 1, .kind = OP_B, .stream = STREAM_RECV},
    {.start_ns = 30, .end_ns = 40, .device = 0, .micro_batch = 1, .peer = -1, .kind = OP_B, .stream = STREAM_COMPUTE},
    {.start_ns = 10, .end_ns = 15, .bytes = 4096, .device = 0, .micro_batch = 0, .peer = 1, .kind = OP_F, .stream = STREAM_SEND},
    {.start_ns = 0, .end_ns = 10, .device = 0, .micro_batch = 0, .peer = -1, .kind = OP_F, .stream = STREAM_COMPUTE},
    {.start_ns = 30, .end_ns = 50, .device = 0, .micro_batch = 3, .chunk = 2, .peer = -1, .kind = OP_BW, .stream = STREAM_COMPUTE},
    {.start_ns = 5000000000LL, .end_ns = 5000000001LL, .bytes = 1LL << 40, .device = 1, .micro_batch = 9, .peer = 0, .kind = OP_B, .stream = STREAM_SEND},
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])
/* ROWS in (device, compute < send < recv, start_ns, insertion) order. */
static const int ORDER[NROWS] = {6, 4, 7, 2, 5, 3, 0, 8, 1};

static const StoreMetric METRICS[] = {{"makespan_ms", 5e-5}, {"bubble_rate", 0.25}, {"mfu", 0.4}};
static const StoreDeviceMetric DMETRICS[] = {{0, "busy_ms", 3e-5}, {1, "busy_ms", 1e-5}};

static Timeline hand_timeline(void) {
    Timeline tl = {0};
    for (size_t i = 0; i < NROWS; i++) assert_int_equal(timeline_push(&tl, &ROWS[i]), 0);
    return tl;
}

static int64_t write_metrics(Store *s, const Timeline *tl, const StoreMetric *m, size_t nm) {
    StoreRunInfo info = {.tool = "psim", .scenario_path = "x.scn", .scenario_text = "[model]\n",
                         .schedule = "1f1b", .version = "0", .host = "h", .devices = 2,
                         .micro_batches = 4, .chunks = 3, .iterations = 1};
    int64_t id = -1;
    if (store_run_write(s, &info, tl, NULL, m, nm, DMETRICS, 2, &id, err, sizeof err) != 0) return -1;
    return id;
}

static int64_t write_run(Store *s, const Timeline *tl) { return write_metrics(s, tl, METRICS, 3); }

/* One integer from a query on a connection of its own (not through the store). */
static int64_t sql_int(const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    int64_t v = INT64_MIN;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void assert_op_equal(const TimelineOp *got, const TimelineOp *want) {
    assert_int_equal(got->device, want->device);
    assert_int_equal(got->stream, want->stream);
    assert_int_equal(got->kind, want->kind);
    assert_int_equal(got->micro_batch, want->micro_batch);
    assert_int_equal(got->chunk, want->chunk);
    assert_int_equal(got->peer, want->peer);
    assert_int_equal(got->start_ns, want->start_ns);
    assert_int_equal(got->end_ns, want->end_ns);
    assert_int_equal(got->bytes, want->bytes);
}

static void assert_run_is_hand_timeline(Store *s, int64_t id) {
    Timeline back = {0};
    assert_int_equal(store_ops_load(s, id, &back), 0);
    assert_int_equal(back.n, NROWS);
    for (size_t i = 0; i < NROWS; i++) assert_op_equal(&back.ops[i], &ROWS[ORDER[i]]);
    timeline_free(&back);
}

/* The whole file's bytes, to show a refused file was not touched. */
static char *slurp(const char *p, long *n) {
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)*n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
    return buf;
}

static void assert_open_refused_untouched(const char *want_in_err) {
    long n0, n1;
    char *before = slurp(path, &n0);
    Store *s = (Store *)&s; // not NULL, so the test sees store_open clear it
    assert_int_equal(store_open(path, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, path));
    if (!strstr(err, want_in_err)) fail_msg("error '%s' lacks '%s'", err, want_in_err);
    char *after = slurp(path, &n1);
    assert_int_equal(n1, n0);
    assert_memory_equal(after, before, (size_t)n0);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(access(wal, F_OK), -1);
    free(before);
    free(after);
}

static void test_round_trip(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(store_run_count(s), 0);
    Timeline tl = hand_timeline();
    int64_t id = write_run(s, &tl);
    assert_true(id > 0);
    assert_int_equal(store_run_count(s), 1);
    assert_run_is_hand_timeline(s, id);
    for (size_t i = 0; i < 3; i++) {
        double v = -1;
        assert_int_equal(store_metric_get(s, id, METRICS[i].name, &v), 0);
        assert_true(v == METRICS[i].value); // doubles round-trip exactly
    }
    double v = 7;
    assert_int_equal(store_metric_get(s, id, "nope", &v), -1);
    assert_true(v == 7);
    timeline_free(&tl);
    store_close(s);
    assert_int_equal(sql_int("SELECT count(*) FROM ops WHERE peer IS NULL"), 5);
    assert_int_equal(sql_int("SELECT count(*) FROM device_metrics WHERE run_id = 1"), 2);
    assert_int_equal(sql_int("SELECT round(value * 1e6) FROM device_metrics WHERE device = 0"), 30);
    assert_int_equal(sql_int("SELECT count(*) FROM runs WHERE tool = 'psim' AND status = "
                             "'complete' AND chunks = 3 AND overrides IS NULL AND "
                             "created_at LIKE '20__-__-__T__:__:__.___Z'"), 1);
}

static void test_append(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    Timeline tl = hand_timeline();
    int64_t a = write_run(s, &tl);
    Timeline other = {0};
    TimelineOp op = {.start_ns = 1, .end_ns = 2, .device = 5, .peer = -1, .kind = OP_W};
    assert_int_equal(timeline_push(&other, &op), 0);
    StoreMetric m = {"bubble_rate", 0.5};
    int64_t b = write_metrics(s, &other, &m, 1);
    assert_true(a > 0 && b > 0 && a != b);
    assert_int_equal(store_run_count(s), 2);
    assert_run_is_hand_timeline(s, a); // the first run is as it was
    double v;
    assert_int_equal(store_metric_get(s, a, "bubble_rate", &v), 0);
    assert_true(v == 0.25);
    assert_int_equal(store_metric_get(s, b, "bubble_rate", &v), 0);
    assert_true(v == 0.5);
    assert_int_equal(store_metric_get(s, b, "mfu", &v), -1);
    Timeline back = {0};
    assert_int_equal(store_ops_load(s, b, &back), 0);
    assert_int_equal(back.n, 1);
    assert_op_equal(&back.ops[0], &op);
    timeline_free(&back);
    timeline_free(&other);
    timeline_free(&tl);
    store_close(s);
    assert_int_equal(sql_int("SELECT count(*) FROM ops"), NROWS + 1);
}

static void test_wal_and_version(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(sql_int("PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(sql_int("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name IN ('runs', 'ops',"
                             " 'metrics', 'device_metrics', 'ops_by_run', 'memory')"), 6);
    store_close(s);
    assert_int_equal(store_open(path, &s, err, sizeof err), 0); // reopening keeps the schema
    assert_int_equal(store_run_count(s), 0);
    store_close(s);
    assert_int_equal(sql_int("PRAGMA user_version"), STORE_SCHEMA_VERSION);
    store_close(NULL);
}

/* Makes the file at path an older schema (1: no memory table, 2: no runs.sweep, 3: no
 * runs.error nor status triggers, 4: no searches nor run_env), with its runs kept, reopens it with the
 * store and checks the upgrade: old runs read as complete, and the status rule holds afterwards. */
static void check_upgrade(int from, const char *downgrade) {
    Store *s;
    Timeline tl = hand_timeline();
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(write_run(s, &tl), 1);
    store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, downgrade, 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sql_int("PRAGMA user_version"), from);
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(sql_int("PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name = 'memory'"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name IN ('searches',"
                             " 'search_points')"), 2);
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name = 'run_env'"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'sweep'"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM runs WHERE status = 'complete' AND error IS NULL"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 2);
    assert_int_equal(store_run_count(s), 1);
    assert_int_equal(write_run(s, &tl), 2);
    assert_int_equal(store_next_sweep(s), 1);
    assert_int_equal(store_next_sweep(s), 2);
    store_close(s);
    timeline_free(&tl);
}

/* Version 5 back to 4: no searches, no run_env. */
#define TO_V4 "DROP TABLE run_env; DROP TABLE search_points; DROP TABLE searches;"
/* Version 4 back to 3: no runs.error, no triggers (runs.status was there from version 1). */
#define TO_V3 TO_V4 " DROP TRIGGER runs_status_insert; DROP TRIGGER runs_status_update;" \
              " ALTER TABLE runs DROP COLUMN error;"

static void test_version_1_upgraded(void **state) {
    (void)state; // a version 1 file: the same tables without memory and runs.sweep
    check_upgrade(1, TO_V3 " DROP TABLE memory; ALTER TABLE runs DROP COLUMN sweep; DROP TABLE sweeps;"
                     " PRAGMA user_version = 1");
}

static void test_version_2_upgraded(void **state) {
    (void)state;
    check_upgrade(2, TO_V3 " ALTER TABLE runs DROP COLUMN sweep; DROP TABLE sweeps;"
                     " PRAGMA user_version = 2");
}

static void test_version_4_upgraded(void **state) {
    (void)state;
    check_upgrade(4, TO_V4 " PRAGMA user_version = 4");
}

static const StoreEnv ENV[] = {{"pipesim_version", "0.1.0"}, {"OMP_NUM_THREADS", "4"},
                               {"mpi_library", "Open MPI v4.1.4, package: Debian\n"},
                               {"empty", ""}};
#define NENV (sizeof ENV / sizeof ENV[0])
/* ENV in name order (bytewise: upper case first). */
static const int ENV_ORDER[NENV] = {1, 3, 2, 0};

static int64_t write_env_run(Store *s, const char *error, const StoreEnv *env, size_t n) {
    Timeline tl = hand_timeline();
    StoreRunInfo info = {.tool = "pexec", .schedule = "1f1b", .devices = 2, .micro_batches = 4,
                         .chunks = 3, .iterations = 1, .error = error, .env = env, .nenv = n};
    int64_t id = -1;
    int rc = store_run_write(s, &info, &tl, NULL, error ? NULL : METRICS, error ? 0 : 3, NULL,
                             0, &id, err, sizeof err);
    timeline_free(&tl);
    return rc == 0 ? id : -1;
}

static void assert_env_is(Store *s, int64_t id, const StoreEnv *want, const int *order, size_t n) {
    StoreEnvRow *rows;
    size_t got = 99;
    assert_int_equal(store_run_env(s, id, &rows, &got), 0);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].name, want[order[i]].name);
        assert_string_equal(rows[i].value, want[order[i]].value); // stored as given, bytes kept
    }
    store_run_env_free(rows, got);
}

/* A run's environment round trip: in name order, values byte for byte, for complete and failed
 * runs; a run without one reads as 0 rows, an unknown run as -1; a repeated name or a NULL
 * value fails the whole run (nothing of it stays); deleting a run deletes its pairs. */
static void test_env_round_trip(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(write_env_run(s, NULL, ENV, NENV), 1);
    assert_int_equal(write_env_run(s, "rank 1 on h: died", ENV, 2), 2);
    assert_int_equal(write_env_run(s, NULL, NULL, 0), 3);
    assert_env_is(s, 1, ENV, ENV_ORDER, NENV);
    assert_env_is(s, 2, ENV, (const int[]){1, 0}, 2);
    assert_env_is(s, 3, ENV, ENV_ORDER, 0);
    StoreEnvRow *rows = (StoreEnvRow *)&rows;
    size_t n = 99;
    assert_int_equal(store_run_env(s, 4, &rows, &n), -1);
    assert_null(rows);
    assert_int_equal(n, 0);
    const StoreEnv twice[] = {{"host", "a"}, {"host", "b"}}, null_value[] = {{"host", NULL}};
    assert_int_equal(write_env_run(s, NULL, twice, 2), -1);
    assert_non_null(strstr(err, "cannot write the run (nothing of it was kept)"));
    assert_int_equal(write_env_run(s, NULL, null_value, 1), -1);
    assert_int_equal(store_run_count(s), 3);
    store_close(s);
    assert_int_equal(sql_int("SELECT count(*) FROM ops"), 3 * NROWS); // no rows of the refused
    assert_int_equal(sql_int("SELECT count(*) FROM run_env"), NENV + 2);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1",
                                  0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sql_int("SELECT count(*) FROM run_env"), 2);
}

/* A version 4 file (no run_env) gains the table on open; its runs read back with no
 * environment, and new runs keep theirs. */
static void test_version_4_gains_run_env(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(write_env_run(s, NULL, NULL, 0), 1);
    store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, TO_V4 " PRAGMA user_version = 4", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name = 'run_env'"), 0);
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(sql_int("PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name = 'run_env' AND"
                             " sql LIKE '%WITHOUT ROWID%'"), 1);
    assert_env_is(s, 1, ENV, ENV_ORDER, 0);
    assert_int_equal(write_env_run(s, NULL, ENV, NENV), 2);
    assert_env_is(s, 2, ENV, ENV_ORDER, NENV);
    store_close(s);
}

/* Three points of a search: one that fit (rank 1), one dropped statically (never simulated:
 * NaN metrics stored as NULL), one dropped after simulating. */
static const StoreSearchPoint POINTS[] = {
    {"1f1b", 4, 1, 2, 1, 1, 8, "none", "ok", NULL, 1, 20, 30, 100, 0.25, 5e5, 400, 0.4, 1, 1},
    {"gpipe", 2, 1, 4, 1, 1, 4, "none", "static", NULL, 0, 90, NAN, NAN, NAN, NAN, NAN, NAN, 0, 1},
    {"zb-h2", 4, 1, 2, 1, 2, 4, "full", "memory", "", 0, 20, 85, 90, 0.1, 6e5, 450, 0.45, 3, 16},
};

static StoreSearchInfo search_info(void) {
    return (StoreSearchInfo){.scenario_path = "x.scn", .scenario_text = "[model]\n",
                             .schedules = "1f1b,gpipe,zb-h2", .version = "0", .host = "h",
                             .gpus = 8, .global_batch = 16, .points = 3, .fit = 1,
                             .dropped_static = 1, .dropped_memory = 1, .wall_ms = 1.5};
}

static void test_search_round_trip(void **state) {
    (void)state;
    Store *s;
    StoreSearchInfo info = search_info();
    int64_t id = 0, id2 = 0;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(store_search_write(s, &info, POINTS, 3, &id, err, sizeof err), 0);
    assert_int_equal(store_search_write(s, &info, POINTS, 2, &id2, err, sizeof err), 0);
    assert_int_equal(id, 1);
    assert_int_equal(id2, 2);
    assert_int_equal(store_search_points(s, id, NULL), 3);
    assert_int_equal(store_search_points(s, id, "ok"), 1);
    assert_int_equal(store_search_points(s, id, "static"), 1);
    assert_int_equal(store_search_points(s, id2, "memory"), 0);
    store_close(s);
    assert_int_equal(sql_int("SELECT point FROM search_points WHERE search_id = 1 AND rank = 1"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM search_points WHERE rank IS NULL"), 3);
    assert_int_equal(sql_int("SELECT count(*) FROM search_points WHERE search_id = 1 AND"
                             " makespan_ms IS NULL AND status = 'static'"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM search_points WHERE reason IS NOT NULL"), 0);
    assert_int_equal(sql_int("SELECT micro_batches * micro_batch_size * data FROM search_points"
                             " WHERE search_id = 1 AND point = 2"), 16);
    assert_int_equal(sql_int("SELECT sum(zero * (point + 1)) FROM search_points WHERE"
                             " search_id = 1"), 1 * 1 + 0 * 2 + 3 * 3);
    assert_int_equal(sql_int("SELECT sum(context * (point + 1)) FROM search_points WHERE"
                             " search_id = 1"), 1 * 1 + 1 * 2 + 16 * 3);
    assert_int_equal(sql_int("SELECT dropped_static + dropped_memory + fit FROM searches WHERE"
                             " id = 1"), 3);
    assert_int_equal(sql_int("SELECT count(*) FROM runs"), 0); // a search stores no runs
}

static void test_search_failed_write_keeps_nothing(void **state) {
    (void)state; // a status the CHECK refuses, in the last point: the search row goes too
    Store *s;
    StoreSearchInfo info = search_info();
    StoreSearchPoint bad[3];
    memcpy(bad, POINTS, sizeof bad);
    bad[2].status = "maybe";
    int64_t id = 0;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(store_search_write(s, &info, bad, 3, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot write the search (nothing of it was kept)"));
    assert_int_equal(store_search_write(s, &info, POINTS, 3, &id, err, sizeof err), 0);
    store_close(s);
    assert_int_equal(sql_int("SELECT count(*) FROM searches"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM search_points"), 3);
}

/* A failed run: stored whole with its rows, read back as failed with its error; psim runs and
 * contradictory status/error pairs are refused by the schema, leaving nothing. */
static void test_failed_run(void **state) {
    (void)state;
    Store *s;
    Timeline tl = hand_timeline();
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    StoreRunInfo info = {.tool = "pexec", .schedule = "1f1b", .devices = 2, .micro_batches = 4,
                         .chunks = 3, .iterations = 1, .error = "rank 1 on h: device 1 died"};
    int64_t id = 0;
    assert_int_equal(store_run_write(s, &info, &tl, NULL, NULL, 0, NULL, 0, &id, err,
                                     sizeof err), 0);
    assert_run_is_hand_timeline(s, id);
    StoreRunRow row;
    assert_int_equal(store_run_get(s, id, &row), 0);
    assert_int_equal(row.failed, 1);
    assert_string_equal(row.error, "rank 1 on h: device 1 died");
    store_run_row_free(&row);
    assert_int_equal(write_run(s, &tl), id + 1); // a complete one beside it
    assert_int_equal(store_run_get(s, id + 1, &row), 0);
    assert_int_equal(row.failed, 0);
    assert_null(row.error);
    store_run_row_free(&row);
    info.tool = "psim"; // psim's runs are always complete
    assert_int_equal(store_run_write(s, &info, &tl, NULL, NULL, 0, NULL, 0, &id, err,
                                     sizeof err), -1);
    assert_non_null(strstr(err, "runs.status is complete (error NULL) or failed"));
    assert_int_equal(store_run_count(s), 2);
    store_close(s);
    assert_int_equal(sql_int("SELECT count(*) FROM runs WHERE status = 'failed' AND error IS NOT NULL"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM ops"), 2 * NROWS);
    sqlite3 *db; // the rule holds for other writers too
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE runs SET status = 'failed' WHERE id = 2", 0, 0, 0),
                     SQLITE_CONSTRAINT);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO runs (tool, status, error) VALUES ('pexec',"
                                  " 'complete', 'x')", 0, 0, 0), SQLITE_CONSTRAINT);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO runs (tool, status) VALUES ('pexec',"
                                  " 'done')", 0, 0, 0), SQLITE_CONSTRAINT);
    sqlite3_close(db);
    assert_int_equal(sql_int("SELECT count(*) FROM runs"), 2);
    timeline_free(&tl);
}

/* A version 3 file: ops with the old CHECK (compute, send, recv only), no runs.error. The
 * upgrade keeps its rows and then takes the data-parallel streams and failed runs. */
static void test_version_3_upgraded(void **state) {
    (void)state;
    check_upgrade(3, TO_V3 " CREATE TABLE ops3 AS SELECT * FROM ops; DROP TABLE ops;"
                     " CREATE TABLE ops (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE"
                     " CASCADE, device INTEGER NOT NULL, stream TEXT NOT NULL CHECK (stream ="
                     " 'compute' OR stream = 'send' OR stream = 'recv'), kind TEXT NOT NULL,"
                     " micro_batch INTEGER, chunk INTEGER, peer INTEGER, start_ns INTEGER NOT"
                     " NULL, end_ns INTEGER NOT NULL, bytes INTEGER NOT NULL DEFAULT 0);"
                     " INSERT INTO ops SELECT * FROM ops3; DROP TABLE ops3;"
                     " PRAGMA user_version = 3");
    assert_int_equal(sql_int("SELECT count(*) FROM ops WHERE run_id = 1"),
                     sql_int("SELECT count(*) FROM ops WHERE run_id = 2"));
    Store *s;
    Timeline tl = hand_timeline(), back = {0};
    tl.ops[0].stream = STREAM_COLLECTIVE, tl.ops[1].stream = STREAM_OPTIMIZER;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(write_run(s, &tl), 3);
    assert_int_equal(store_ops_load(s, 3, &back), 0);
    size_t lanes = 0;
    for (size_t i = 0; i < back.n; i++)
        lanes += back.ops[i].stream == STREAM_COLLECTIVE || back.ops[i].stream == STREAM_OPTIMIZER;
    assert_int_equal(lanes, 2);
    store_close(s);
    timeline_free(&tl), timeline_free(&back);
}

/* A version 5 file: ops whose CHECK predates the 'tensor' stream. The upgrade keeps its rows
 * and then stores tensor-parallel all-reduce rows. */
static void test_version_5_upgraded(void **state) {
    (void)state;
    check_upgrade(5, "CREATE TABLE ops5 AS SELECT * FROM ops; DROP TABLE ops;"
                     " CREATE TABLE ops (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE"
                     " CASCADE, device INTEGER NOT NULL, stream TEXT NOT NULL CHECK (stream ="
                     " 'compute' OR stream = 'send' OR stream = 'recv' OR stream = 'allreduce'"
                     " OR stream = 'optimizer'), kind TEXT NOT NULL,"
                     " micro_batch INTEGER, chunk INTEGER, peer INTEGER, start_ns INTEGER NOT"
                     " NULL, end_ns INTEGER NOT NULL, bytes INTEGER NOT NULL DEFAULT 0);"
                     " INSERT INTO ops SELECT * FROM ops5; DROP TABLE ops5;"
                     " PRAGMA user_version = 5");
    assert_int_equal(sql_int("SELECT count(*) FROM ops WHERE run_id = 1"),
                     sql_int("SELECT count(*) FROM ops WHERE run_id = 2"));
    Store *s;
    Timeline tl = hand_timeline(), back = {0};
    tl.ops[0].stream = STREAM_TENSOR;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(write_run(s, &tl), 3);
    assert_int_equal(store_ops_load(s, 3, &back), 0);
    size_t tensor = 0;
    for (size_t i = 0; i < back.n; i++) tensor += back.ops[i].stream == STREAM_TENSOR;
    assert_int_equal(tensor, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM ops WHERE stream = 'tensor'"), 1);
    store_close(s);
    timeline_free(&tl), timeline_free(&back);
}

static void test_memory_round_trip(void **state) {
    (void)state; // samples come back per device in time order, in the run's transaction
    Store *s;
    Timeline tl = hand_timeline();
    MemTrace mem = {0}, back = {0};
    const MemSample in[] = {{0, 100, 0}, {10, 250, 0}, {0, 80, 1}, {50, 100, 0}, {5, 1LL << 40, 1}};
    for (size_t i = 0; i < 5; i++) assert_int_equal(memtrace_push(&mem, &in[i]), 0);
    StoreRunInfo info = {.tool = "psim", .devices = 2, .micro_batches = 4, .chunks = 1,
                         .iterations = 1};
    int64_t id;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    assert_int_equal(store_run_write(s, &info, &tl, &mem, METRICS, 3, DMETRICS, 2, &id, err,
                                     sizeof err), 0);
    assert_int_equal(store_memory_load(s, id, &back), 0);
    static const int order[] = {0, 1, 3, 2, 4};
    assert_int_equal(back.n, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(back.s[i].device, in[order[i]].device);
        assert_int_equal(back.s[i].t_ns, in[order[i]].t_ns);
        assert_int_equal(back.s[i].bytes, in[order[i]].bytes);
    }
    MemTrace none = {0};
    assert_int_equal(store_memory_load(s, id + 1, &none), -1);
    store_close(s);
    memtrace_free(&back);
    memtrace_free(&mem);
    timeline_free(&tl);
}

static void test_newer_schema_refused(void **state) {
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE runs(a); PRAGMA user_version = 99", 0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);
    char want[128];
    snprintf(want, sizeof want, "has schema version 99, newer than this pipesim (%d); use a "
             "newer pipesim or another --db", STORE_SCHEMA_VERSION);
    assert_open_refused_untouched(want);
    assert_int_equal(sql_int("PRAGMA user_version"), 99);
    assert_int_equal(sql_int("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'delete'"), 1);
}

static void test_missing_directory(void **state) {
    (void)state;
    Store *s = (Store *)&s;
    char p[200];
    snprintf(p, sizeof p, "%s/no/such/dir/x.db", dir);
    assert_int_equal(store_open(p, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, p));
    assert_non_null(strstr(err, "check that the directory exists and is writable"));
    assert_int_equal(store_open("", &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "--db"));
}

static void test_not_a_database(void **state) {
    (void)state;
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a database, it is a poem about pipelines\n", f);
    for (int i = 0; i < 100; i++) fputs("and bubbles\n", f);
    fclose(f);
    assert_open_refused_untouched("is not a pipesim database (file is not a database); pass "
                                  "another --db");
    f = fopen(path, "w"); // shorter than an SQLite header
    fputs("notes\n", f);
    fclose(f);
    assert_open_refused_untouched("is not a pipesim database");
}

static void test_foreign_sqlite_refused(void **state) {
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE photos(id, name)", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    assert_open_refused_untouched("is not a pipesim database (it is an SQLite file with 1 tables");
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master"), 1);
}

static void test_failed_write_rolls_back(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    Timeline tl = hand_timeline();
    assert_true(write_run(s, &tl) > 0);
    TimelineOp bad = ROWS[0];
    bad.stream = 99; // not a stream: the CHECK fails after the run and NROWS rows went in
    assert_int_equal(timeline_push(&tl, &bad), 0);
    assert_int_equal(write_run(s, &tl), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "nothing of it was kept"));
    assert_non_null(strstr(err, "timeline row 9 (device 1, stream 99, kind 0)"));
    assert_non_null(strstr(err, "CHECK constraint failed"));
    tl.ops[tl.n - 1].stream = STREAM_SEND;
    tl.ops[tl.n - 1].kind = 9; // not a kind
    assert_int_equal(write_run(s, &tl), -1);
    assert_non_null(strstr(err, "timeline row 9 (device 1, stream 1, kind 9)"));
    assert_int_equal(store_run_count(s), 1);
    StoreMetric dup[] = {{"mfu", 0.1}, {"mfu", 0.2}}; // fails on the metrics, after every row
    tl.n--;
    assert_int_equal(write_metrics(s, &tl, dup, 2), -1);
    assert_non_null(strstr(err, "UNIQUE constraint failed"));
    assert_int_equal(store_run_count(s), 1);
    int64_t id = write_run(s, &tl); // the handle still works after a failure
    assert_true(id > 0);
    assert_run_is_hand_timeline(s, id);
    store_close(s);
    timeline_free(&tl);
    assert_int_equal(sql_int("SELECT count(*) FROM runs"), 2);
    assert_int_equal(sql_int("SELECT count(*) FROM ops"), 2 * NROWS);
    assert_int_equal(sql_int("SELECT count(*) FROM ops WHERE run_id NOT IN (SELECT id FROM runs)"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM metrics"), 2 * 3);
    assert_int_equal(sql_int("SELECT count(*) FROM device_metrics"), 2 * 2);
}

static void test_nan_metric(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    StoreMetric m = {"mfu", NAN}; // SQLite keeps NaN as NULL
    Timeline tl = hand_timeline();
    int64_t id = write_metrics(s, &tl, &m, 1);
    assert_true(id > 0);
    double v = 0;
    assert_int_equal(store_metric_get(s, id, "mfu", &v), 0);
    assert_true(isnan(v));
    Timeline back = {0};
    assert_int_equal(store_ops_load(s, id + 1, &back), -1); // no such run
    assert_int_equal(back.n, 0);
    assert_null(back.ops);
    timeline_free(&tl);
    store_close(s);
}

static void test_two_handles(void **state) {
    (void)state;
    Store *a, *b;
    assert_int_equal(store_open(path, &a, err, sizeof err), 0);
    assert_int_equal(store_open(path, &b, err, sizeof err), 0);
    Timeline tl = hand_timeline();
    int64_t last = 0;
    for (int i = 0; i < 3; i++) {
        int64_t x = write_run(a, &tl), y = write_run(b, &tl);
        assert_true(x > last && y > x);
        last = y;
    }
    assert_int_equal(store_run_count(a), 6);
    assert_int_equal(store_run_count(b), 6);
    assert_run_is_hand_timeline(a, last);
    store_close(a);
    store_close(b);
    timeline_free(&tl);
}

/* Each child opens the (not yet created) file itself and writes runs; the busy timeout must
 * make every write succeed however the two interleave. */
static int child_writes(int runs) {
    Store *s;
    if (store_open(path, &s, err, sizeof err) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    Timeline tl = {0};
    for (int32_t i = 0; i < 5000; i++) {
        TimelineOp op = {.start_ns = i, .end_ns = i + 1, .device = i % 8, .peer = -1};
        if (timeline_push(&tl, &op) != 0) return 1;
    }
    int failed = 0;
    for (int i = 0; i < runs && !failed; i++) failed = write_run(s, &tl) < 0;
    if (failed) fprintf(stderr, "child: %s\n", err);
    timeline_free(&tl);
    store_close(s);
    return failed;
}

static void test_two_processes(void **state) {
    (void)state;
    enum { CHILDREN = 2, RUNS = 20 };
    pid_t pid[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        pid[c] = fork();
        assert_true(pid[c] >= 0);
        if (pid[c] == 0) _exit(child_writes(RUNS));
    }
    for (int c = 0; c < CHILDREN; c++) {
        int status;
        assert_int_equal(waitpid(pid[c], &status, 0), pid[c]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(sql_int("SELECT count(*) FROM runs"), CHILDREN * RUNS);
    assert_int_equal(sql_int("SELECT count(*) FROM ops"), CHILDREN * RUNS * 5000);
    assert_int_equal(sql_int("SELECT count(DISTINCT run_id) FROM ops"), CHILDREN * RUNS);
}

static void test_large_run(void **state) {
    (void)state;
    enum { N = 200000, DEVICES = 64 };
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    Timeline tl = {0};
    for (int32_t i = 0; i < N; i++) { // device-interleaved, as an engine emits them
        TimelineOp op = {.start_ns = (int64_t)i * 1000, .end_ns = (int64_t)i * 1000 + 999,
                         .device = i % DEVICES, .micro_batch = i / DEVICES,
                         .peer = i % 3 ? (i + 1) % DEVICES : -1, .bytes = i % 3 ? 1 << 20 : 0,
                         .kind = (uint8_t)(i % OP_KIND_COUNT), .stream = (uint8_t)(i % 3)};
        assert_int_equal(timeline_push(&tl, &op), 0);
    }
    int64_t id = write_run(s, &tl);
    assert_true(id > 0);
    Timeline back = {0};
    assert_int_equal(store_ops_load(s, id, &back), 0);
    assert_int_equal(back.n, N);
    int64_t sum_in = 0, sum_out = 0;
    for (size_t i = 0; i < N; i++) sum_in += tl.ops[i].start_ns, sum_out += back.ops[i].start_ns;
    assert_int_equal(sum_out, sum_in);
    for (size_t i = 1; i < N; i++) { // (device, stream, start) never goes backwards
        const TimelineOp *p = &back.ops[i - 1], *q = &back.ops[i];
        assert_true(p->device < q->device ||
                    (p->device == q->device && (p->stream < q->stream ||
                                                (p->stream == q->stream && p->start_ns < q->start_ns))));
    }
    assert_int_equal(back.ops[0].device, 0);
    assert_int_equal(back.ops[N - 1].device, DEVICES - 1);
    assert_int_equal(back.ops[N - 1].stream, STREAM_RECV);
    timeline_free(&back);
    timeline_free(&tl);
    store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_1_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_2_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_3_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_5_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_4_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_4_gains_run_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_failed_write_keeps_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_sqlite_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_metric, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
