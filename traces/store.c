/* traces/store.c: the SQLite store behind store.h: schema v1, one transaction per run,
 * WAL so readers never block the writer. Comparison and plotting queries live elsewhere. */
#include "store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct Store {
    sqlite3 *db;
    char path[1024];
};

static const char SCHEMA[] =
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY,"
    " tool TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'complete',"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
    " scenario_path TEXT, scenario_text TEXT, resolved TEXT, overrides TEXT,"
    " schedule TEXT, version TEXT, host TEXT,"
    " devices INTEGER, micro_batches INTEGER, chunks INTEGER, iterations INTEGER);"
    "CREATE TABLE ops ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " device INTEGER NOT NULL,"
    " stream TEXT NOT NULL CHECK (stream IN ('compute', 'send', 'recv')),"
    " kind TEXT NOT NULL CHECK (kind IN ('F', 'B', 'W', 'BW')),"
    " micro_batch INTEGER, chunk INTEGER, peer INTEGER,"
    " start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, bytes INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX ops_by_run ON ops(run_id, device, stream, start_ns);"
    "CREATE TABLE metrics ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, name));"
    "CREATE TABLE device_metrics ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " device INTEGER NOT NULL, name TEXT NOT NULL, value REAL,"
    " PRIMARY KEY (run_id, device, name));";

static void set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* Explains a SQLite failure on this store in one line, with a hint for the common ones. */
static void db_err(const Store *s, int rc, const char *doing, char *err, size_t len) {
    const char *hint = "";
    if (rc == SQLITE_NOTADB) hint = "; it is not a pipesim database, pass another --db";
    else if (rc == SQLITE_CANTOPEN) hint = "; check that the directory exists and is writable";
    else if (rc == SQLITE_READONLY) hint = "; the file or its directory is read-only";
    else if (rc == SQLITE_BUSY) hint = "; another process held the database too long, retry";
    else if (rc == SQLITE_FULL) hint = "; the disk is full";
    set_err(err, len, "database '%s': %s: %s%s", s->path, doing,
            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), hint);
}

static int exec(Store *s, const char *sql, const char *doing, char *err, size_t len) {
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) db_err(s, rc, doing, err, len);
    return rc;
}

/* Runs a query returning one integer (PRAGMA user_version, count(*)). */
static int query_int(Store *s, const char *sql, int64_t *out) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0), rc = SQLITE_OK;
    sqlite3_finalize(st);
    return rc;
}

static int check_version(Store *s, int64_t version, char *err, size_t len) {
    if (version <= STORE_SCHEMA_VERSION) return 0;
    set_err(err, len, "database '%s' has schema version %lld, newer than this pipesim (%d); "
            "use a newer pipesim or another --db", s->path, (long long)version,
            STORE_SCHEMA_VERSION);
    return -1;
}

/* Creates the schema in a fresh file; another process may be doing the same, so the version
 * is read again inside the write transaction. */
static int create_schema(Store *s, char *err, size_t len) {
    if (exec(s, "BEGIN IMMEDIATE", "cannot start the schema transaction", err, len)) return -1;
    int64_t version = 0;
    int rc = query_int(s, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK && version == 0) {
        rc = sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        }
    }
    if (rc != SQLITE_OK) {
        db_err(s, rc, "cannot create the schema", err, len);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (exec(s, "COMMIT", "cannot commit the schema", err, len)) return -1;
    return check_version(s, version, err, len);
}

int store_open(const char *path, Store **out, char *err, size_t errlen) {
    *out = NULL;
    Store *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "database '%s': out of memory", path);
        return -1;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "cannot open database '%s': %s; check that the directory exists "
                "and is writable", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        store_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, 10000);
    int64_t version = 0;
    rc = query_int(s, "PRAGMA user_version", &version); // reads before anything is written
    if (rc != SQLITE_OK) {
        db_err(s, rc, "cannot read it", err, errlen);
        store_close(s);
        return -1;
    }
    if (check_version(s, version, err, errlen) != 0) {
        store_close(s);
        return -1;
    }
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0)
        rc = SQLITE_OK;
    else if (rc == SQLITE_OK)
        rc = sqlite3_errcode(s->db) != SQLITE_OK ? sqlite3_errcode(s->db) : SQLITE_ERROR;
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        db_err(s, rc, "cannot switch to WAL journaling", err, errlen);
        store_close(s);
        return -1;
    }
    if (exec(s, "PRAGMA foreign_keys = ON", "cannot enable foreign keys", err, errlen) ||
        (version == 0 && create_schema(s, err, errlen) != 0)) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_close(Store *s) {
    if (!s) return;
    sqlite3_close(s->db);
    free(s);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

/* Runs a prepared insert once and resets it; returns the SQLite code. */
static int step_reset(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int insert_run(Store *s, const StoreRunInfo *in, int64_t *run_id) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db,
        "INSERT INTO runs (tool, scenario_path, scenario_text, resolved, overrides, schedule,"
        " version, host, devices, micro_batches, chunks, iterations)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    const char *texts[] = {in->tool, in->scenario_path, in->scenario_text, in->resolved,
                           in->overrides, in->schedule, in->version, in->host};
    for (int i = 0; i < 8; i++) bind_text(st, i + 1, texts[i]);
    sqlite3_bind_int(st, 9, in->devices);
    sqlite3_bind_int(st, 10, in->micro_batches);
    sqlite3_bind_int(st, 11, in->chunks);
    sqlite3_bind_int(st, 12, in->iterations);
    rc = step_reset(st);
    sqlite3_finalize(st);
    *run_id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

static int insert_ops(Store *s, int64_t run_id, const Timeline *tl) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db,
        "INSERT INTO ops (run_id, device, stream, kind, micro_batch, chunk, peer, start_ns,"
        " end_ns, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    for (size_t i = 0; i < (tl ? tl->n : 0) && rc == SQLITE_OK; i++) {
        const TimelineOp *op = &tl->ops[i];
        sqlite3_bind_int(st, 2, op->device);
        bind_text(st, 3, stream_name((Stream)op->stream)); // "?" fails the CHECK
        bind_text(st, 4, op_kind_name((OpKind)op->kind));
        sqlite3_bind_int(st, 5, op->micro_batch);
        sqlite3_bind_int(st, 6, op->chunk);
        if (op->peer < 0) sqlite3_bind_null(st, 7);
        else sqlite3_bind_int(st, 7, op->peer);
        sqlite3_bind_int64(st, 8, op->start_ns);
        sqlite3_bind_int64(st, 9, op->end_ns);
        sqlite3_bind_int64(st, 10, op->bytes);
        rc = step_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static int insert_metrics(Store *s, int64_t run_id, const StoreMetric *m, size_t n,
                          const StoreDeviceMetric *dm, size_t ndm) {
    sqlite3_stmt *st, *dst;
    int rc = sqlite3_prepare_v2(s->db, "INSERT INTO metrics VALUES (?, ?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_prepare_v2(s->db, "INSERT INTO device_metrics VALUES (?, ?, ?, ?)", -1, &dst,
                            NULL);
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(dst, 1, run_id);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        bind_text(st, 2, m[i].name);
        sqlite3_bind_double(st, 3, m[i].value);
        rc = step_reset(st);
    }
    for (size_t i = 0; i < ndm && rc == SQLITE_OK; i++) {
        sqlite3_bind_int(dst, 2, dm[i].device);
        bind_text(dst, 3, dm[i].name);
        sqlite3_bind_double(dst, 4, dm[i].value);
        rc = step_reset(dst);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(dst);
    return rc;
}

int store_run_write(Store *s, const StoreRunInfo *info, const Timeline *tl,
                    const StoreMetric *metrics, size_t nmetrics,
                    const StoreDeviceMetric *dmetrics, size_t ndmetrics, int64_t *run_id,
                    char *err, size_t errlen) {
    if (exec(s, "BEGIN IMMEDIATE", "cannot start writing the run", err, errlen)) return -1;
    int64_t id = 0;
    int rc = insert_run(s, info, &id);
    if (rc == SQLITE_OK) rc = insert_ops(s, id, tl);
    if (rc == SQLITE_OK) rc = insert_metrics(s, id, metrics, nmetrics, dmetrics, ndmetrics);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        db_err(s, rc, "cannot write the run (nothing of it was kept)", err, errlen);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    *run_id = id;
    return 0;
}

int64_t store_run_count(Store *s) {
    int64_t n = -1;
    return query_int(s, "SELECT count(*) FROM runs", &n) == SQLITE_OK ? n : -1;
}

int store_ops_load(Store *s, int64_t run_id, Timeline *tl) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db,
        "SELECT device, stream, kind, micro_batch, chunk, coalesce(peer, -1), start_ns, end_ns,"
        " bytes FROM ops WHERE run_id = ? ORDER BY device,"
        " CASE stream WHEN 'compute' THEN 0 WHEN 'send' THEN 1 ELSE 2 END, start_ns, rowid",
        -1, &st, NULL);
    if (rc != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    size_t before = tl->n;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        TimelineOp op = {
            .device = sqlite3_column_int(st, 0),
            .stream = (uint8_t)stream_parse((const char *)sqlite3_column_text(st, 1)),
            .kind = (uint8_t)op_kind_parse((const char *)sqlite3_column_text(st, 2)),
            .micro_batch = sqlite3_column_int(st, 3),
            .chunk = (int16_t)sqlite3_column_int(st, 4),
            .peer = sqlite3_column_int(st, 5),
            .start_ns = sqlite3_column_int64(st, 6),
            .end_ns = sqlite3_column_int64(st, 7),
            .bytes = sqlite3_column_int64(st, 8)};
        if (timeline_push(tl, &op) != 0) break;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE && tl->n > before ? 0 : -1;
}

int store_metric_get(Store *s, int64_t run_id, const char *name, double *value) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM metrics WHERE run_id = ? AND name = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    if (rc == 0) *value = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return rc;
}
