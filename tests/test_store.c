/* tests/test_store.c: the SQLite store: round trip of a run, appending, WAL and schema
 * version, refusing newer or foreign files, rollback of a failed write, two writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"

static char dir[64], path[128];
static char err[512];

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/psim-store-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/t.db", dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    const char *suffix[] = {"", "-wal", "-shm"};
    char p[160];
    for (int i = 0; i < 3; i++) snprintf(p, sizeof p, "%s%s", path, suffix[i]), remove(p);
    rmdir(dir);
    return 0;
}

static const TimelineOp ROWS[] = {
    {.start_ns = 0, .end_ns = 10, .device = 0, .micro_batch = 0, .peer = -1, .kind = OP_F, .stream = STREAM_COMPUTE},
    {.start_ns = 10, .end_ns = 15, .bytes = 4096, .device = 0, .micro_batch = 0, .peer = 1, .kind = OP_F, .stream = STREAM_SEND},
    {.start_ns = 30, .end_ns = 50, .device = 0, .micro_batch = 0, .peer = -1, .kind = OP_BW, .stream = STREAM_COMPUTE},
    {.start_ns = 10, .end_ns = 15, .bytes = 4096, .device = 1, .micro_batch = 0, .peer = 0, .kind = OP_F, .stream = STREAM_RECV},
    {.start_ns = 15, .end_ns = 25, .device = 1, .micro_batch = 0, .chunk = 1, .peer = -1, .kind = OP_F, .stream = STREAM_COMPUTE},
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])

static int64_t write_run(Store *s, const Timeline *tl) {
    StoreRunInfo info = {.tool = "psim", .scenario_path = "x.scn", .scenario_text = "[model]\n",
                         .schedule = "1f1b", .version = "0", .host = "h", .devices = 2,
                         .micro_batches = 1, .chunks = 1, .iterations = 1};
    StoreMetric m[] = {{"makespan_ms", 5e-5}, {"bubble_rate", 0.25}, {"mfu", 0.4}};
    StoreDeviceMetric dm[] = {{0, "busy_ms", 3e-5}, {1, "busy_ms", 1e-5}};
    int64_t id = -1;
    if (store_run_write(s, &info, tl, m, 3, dm, 2, &id, err, sizeof err) != 0) return -1;
    return id;
}

static Timeline hand_timeline(void) {
    Timeline tl = {0};
    for (size_t i = 0; i < NROWS; i++) assert_int_equal(timeline_push(&tl, &ROWS[i]), 0);
    return tl;
}

static int64_t sql_int(const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_round_trip_and_append(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    Timeline tl = hand_timeline();
    int64_t a = write_run(s, &tl), b = write_run(s, &tl);
    assert_true(a > 0 && b > a);
    assert_int_equal(store_run_count(s), 2);
    Timeline back = {0};
    assert_int_equal(store_ops_load(s, a, &back), 0);
    assert_int_equal(back.n, NROWS);
    // documented order: device, then compute < send < recv, then start
    static const int order[NROWS] = {0, 2, 1, 4, 3};
    for (size_t i = 0; i < NROWS; i++)
        assert_memory_equal(&back.ops[i], &ROWS[order[i]], sizeof ROWS[0]);
    double v;
    assert_int_equal(store_metric_get(s, b, "bubble_rate", &v), 0);
    assert_true(v == 0.25);
    assert_int_equal(store_metric_get(s, b, "nope", &v), -1);
    assert_int_equal(store_ops_load(s, 999, &back), -1);
    timeline_free(&back);
    timeline_free(&tl);
    store_close(s);
    assert_int_equal(sql_int("SELECT count(*) FROM device_metrics WHERE run_id = 1"), 2);
    assert_int_equal(sql_int("SELECT count(*) FROM ops WHERE peer IS NULL"), 2 * 3);
    assert_int_equal(sql_int("PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(sql_int("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
}

static void test_newer_schema_refused(void **state) {
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE x(a); PRAGMA user_version = 99", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "has schema version 99, newer than this pipesim (1)"));
    assert_int_equal(sql_int("SELECT count(*) FROM sqlite_master WHERE name = 'runs'"), 0);
    assert_int_equal(sql_int("PRAGMA user_version"), 99);
}

static void test_bad_paths(void **state) {
    (void)state;
    Store *s;
    char p[200];
    snprintf(p, sizeof p, "%s/no/such/dir/x.db", dir);
    assert_int_equal(store_open(p, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, p));
    assert_non_null(strstr(err, "directory exists"));
    FILE *f = fopen(path, "w");
    fputs("this is not a database, it is a poem about pipelines\n", f);
    for (int i = 0; i < 100; i++) fputs("and bubbles\n", f);
    fclose(f);
    assert_int_equal(store_open(path, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a pipesim database"));
}

static void test_failed_write_rolls_back(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    Timeline tl = hand_timeline();
    assert_true(write_run(s, &tl) > 0);
    TimelineOp bad = ROWS[0];
    bad.stream = 7; // not a stream: the CHECK constraint fails half-way through the run
    assert_int_equal(timeline_push(&tl, &bad), 0);
    assert_int_equal(write_run(s, &tl), -1);
    assert_non_null(strstr(err, "nothing of it was kept"));
    assert_int_equal(store_run_count(s), 1);
    store_close(s);
    assert_int_equal(sql_int("SELECT count(*) FROM ops"), NROWS);
    assert_int_equal(sql_int("SELECT count(*) FROM metrics"), 3);
    timeline_free(&tl);
}

static void test_two_writers(void **state) {
    (void)state;
    Store *a, *b;
    assert_int_equal(store_open(path, &a, err, sizeof err), 0);
    assert_int_equal(store_open(path, &b, err, sizeof err), 0);
    Timeline tl = hand_timeline();
    for (int i = 0; i < 3; i++) {
        assert_true(write_run(a, &tl) > 0);
        assert_true(write_run(b, &tl) > 0);
    }
    assert_int_equal(store_run_count(a), 6);
    assert_int_equal(store_run_count(b), 6);
    store_close(a);
    store_close(b);
    timeline_free(&tl);
}

static void test_large_run(void **state) {
    (void)state;
    Store *s;
    assert_int_equal(store_open(path, &s, err, sizeof err), 0);
    Timeline tl = {0};
    for (int32_t i = 0; i < 200000; i++) {
        TimelineOp op = {.start_ns = i, .end_ns = i + 1, .device = i % 64, .micro_batch = i / 64,
                         .peer = -1, .kind = OP_F, .stream = STREAM_COMPUTE};
        assert_int_equal(timeline_push(&tl, &op), 0);
    }
    int64_t id = write_run(s, &tl);
    assert_true(id > 0);
    Timeline back = {0};
    assert_int_equal(store_ops_load(s, id, &back), 0);
    assert_int_equal(back.n, 200000);
    assert_int_equal(back.ops[0].device, 0);
    assert_int_equal(back.ops[back.n - 1].device, 63);
    timeline_free(&back);
    timeline_free(&tl);
    store_close(s);
    store_close(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
