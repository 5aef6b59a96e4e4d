/* traces/store.c: the SQLite store behind store.h: schema made (or upgraded) on open, WAL, one
 * IMMEDIATE transaction per run, and the few readers the tests and tools need. It does not
 * compare, calibrate or plot runs; those queries live with the tools that use them. */
#include "traces/store.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ms a writer or opener waits for another process before failing: long, since a run that
// cannot be stored is lost work, and another writer's large run can hold the lock for many
// seconds (eight psim runs of 900k ops at once lost four of them at 10 s)
#define STORE_BUSY_MS 600000 // default; PIPESIM_DB_WAIT_S sets it (0 .. 86400 s)

/* How long a writer waits for the database (ms). */
static int busy_ms(void) {
    const char *v = getenv("PIPESIM_DB_WAIT_S");
    char *end;
    double s = v ? strtod(v, &end) : -1;
    return v && end != v && !*end && s >= 0 && s <= 86400 ? (int)(s * 1000) : STORE_BUSY_MS;
}

struct Store {
    sqlite3 *db;
    char *path; // owned copy, for error messages
};

/* The ops table (schema 4: streams allreduce and optimizer added to the CHECK; 6: tensor; 7:
 * tensor_allgather and tensor_reduce_scatter; 8: reduce_scatter and all_gather; 9: expert). */
#define OPS_TABLE(name)                                                                        \
    "CREATE TABLE " name " ("                                                                  \
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"                          \
    " device INTEGER NOT NULL,"                                                                \
    " stream TEXT NOT NULL CHECK (stream = 'compute' OR stream = 'send' OR stream = 'recv'"    \
    " OR stream = 'allreduce' OR stream = 'optimizer' OR stream = 'tensor'"                    \
    " OR stream = 'tensor_allgather' OR stream = 'tensor_reduce_scatter'"                     \
    " OR stream = 'reduce_scatter' OR stream = 'all_gather' OR stream = 'expert'),"            \
    " kind TEXT NOT NULL CHECK (kind = 'F' OR kind = 'B' OR kind = 'W' OR kind = 'BW'),"       \
    " micro_batch INTEGER, chunk INTEGER,"                                                     \
    " peer INTEGER," /* NULL for compute rows (TimelineOp.peer == -1) */                      \
    " start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL," /* ns since the run's epoch */     \
    " bytes INTEGER NOT NULL DEFAULT 0);"

/* The CHECKs are written with OR rather than IN: SQLite builds a temporary b-tree for an IN
 * list of three or more values on every statement step, which tripled the time to insert
 * 1.5M rows (see insert_ops). The accepted values are the names in timeline.c. */
static const char SCHEMA[] =
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY,"
    " tool TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'complete',"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
    " scenario_path TEXT, scenario_text TEXT, resolved TEXT, overrides TEXT,"
    " schedule TEXT, version TEXT, host TEXT,"
    " devices INTEGER, micro_batches INTEGER, chunks INTEGER, iterations INTEGER);"
    OPS_TABLE("ops")
    "CREATE INDEX ops_by_run ON ops(run_id, device, stream, start_ns);"
    "CREATE TABLE metrics ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, name));"
    "CREATE TABLE device_metrics ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " device INTEGER NOT NULL, name TEXT NOT NULL, value REAL,"
    " PRIMARY KEY (run_id, device, name));";

/* Version 2 adds memory over time: a device holds `bytes` from t_ns until its next row. */
static const char SCHEMA_V2[] =
    "CREATE TABLE memory ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " device INTEGER NOT NULL, t_ns INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " PRIMARY KEY (run_id, device, t_ns)) WITHOUT ROWID;";

/* Version 3: sweeps (ids handed out by an insert, so two sweeps started at once get two) and
 * the sweep a run belongs to (NULL for single runs). */
static const char SCHEMA_V3[] =
    "CREATE TABLE sweeps (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));"
    "ALTER TABLE runs ADD COLUMN sweep INTEGER REFERENCES sweeps(id);";

/* Versions 4, 6 and 7: the ops CHECK accepts new streams (4: the data-parallel 'allreduce' and
 * 'optimizer'; 6: pexec's tensor-parallel all-reduces, 'tensor'; 7: sequence parallelism's
 * 'tensor_allgather' and 'tensor_reduce_scatter'; 8: ZeRO's 'reduce_scatter' and
 * 'all_gather'). SQLite cannot alter a
 * CHECK, so an older table is copied into the current one, once for any older version (fresh
 * files get it from SCHEMA). */
static const char SCHEMA_OPS_COPY[] =
    OPS_TABLE("ops_new")
    "INSERT INTO ops_new SELECT run_id, device, stream, kind, micro_batch, chunk, peer, start_ns,"
    " end_ns, bytes FROM ops;"
    "DROP TABLE ops;"
    "ALTER TABLE ops_new RENAME TO ops;"
    "CREATE INDEX ops_by_run ON ops(run_id, device, stream, start_ns);";
/* Version 4, part 2: failed runs. runs.status (there since version 1, always 'complete' until now) is
 * 'complete' or 'failed', runs.error says why a run failed (NULL when complete), and psim's
 * runs are complete. ALTER TABLE cannot add a CHECK, so triggers hold the rule for inserts and
 * updates, old files and new alike. */
static const char SCHEMA_V4[] =
    "ALTER TABLE runs ADD COLUMN error TEXT;"
    "UPDATE runs SET status = 'complete' WHERE status <> 'complete';"
    "CREATE TRIGGER runs_status_insert BEFORE INSERT ON runs"
    " WHEN NOT ((NEW.status = 'complete' AND NEW.error IS NULL)"
    " OR (NEW.status = 'failed' AND NEW.error IS NOT NULL AND NEW.tool <> 'psim'))"
    " BEGIN SELECT RAISE(ABORT, 'runs.status is complete (error NULL) or failed (with an"
    " error; never for psim)'); END;"
    "CREATE TRIGGER runs_status_update BEFORE UPDATE OF status, error, tool ON runs"
    " WHEN NOT ((NEW.status = 'complete' AND NEW.error IS NULL)"
    " OR (NEW.status = 'failed' AND NEW.error IS NOT NULL AND NEW.tool <> 'psim'))"
    " BEGIN SELECT RAISE(ABORT, 'runs.status is complete (error NULL) or failed (with an"
    " error; never for psim)'); END;";

/* Version 5: configuration searches (pplan) and their points: one row per configuration with
 * what became of it (fit and simulated, dropped by the static memory bound or the simulated
 * peak, or invalid) and its metrics; no ops, so a search of thousands of points stays small.
 * And run_env: what a run ran on (pipesim, compiler, SQLite, BLAS, MPI, CUDA/NCCL versions,
 * host, GPU, environment variables) as name/value text, a few dozen rows a run; older runs
 * have none. */
static const char SCHEMA_V5[] =
    "CREATE TABLE run_env ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (run_id, name)) WITHOUT ROWID;"
    "CREATE TABLE searches (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
    " scenario_path TEXT, scenario_text TEXT, overrides TEXT, schedules TEXT,"
    " version TEXT, host TEXT,"
    " gpus INTEGER NOT NULL, global_batch INTEGER NOT NULL," // samples per iteration
    " points INTEGER NOT NULL, fit INTEGER NOT NULL, dropped_static INTEGER NOT NULL,"
    " dropped_memory INTEGER NOT NULL, invalid INTEGER NOT NULL,"
    " wall_ms REAL);"
    "CREATE TABLE search_points ("
    " search_id INTEGER NOT NULL REFERENCES searches(id) ON DELETE CASCADE,"
    " point INTEGER NOT NULL, schedule TEXT NOT NULL, stages INTEGER NOT NULL,"
    " chunks INTEGER NOT NULL, data INTEGER NOT NULL, tensor INTEGER NOT NULL,"
    " micro_batch_size INTEGER NOT NULL, micro_batches INTEGER NOT NULL,"
    " recompute TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status = 'ok' OR status = 'static' OR status = 'memory'"
    " OR status = 'invalid'),"
    " reason TEXT, rank INTEGER," // rank: 1 = best of those that fit, NULL for the others
    " static_gib REAL, peak_memory_gib REAL, makespan_ms REAL, bubble_rate REAL,"
    " throughput_tokens_per_s REAL, tflops_per_gpu REAL, mfu REAL,"
    " PRIMARY KEY (search_id, point)) WITHOUT ROWID;";

/* Version 8: the ZeRO level and the context-parallel width of each search point (older points
 * searched neither: 0 and 1). The ops streams of versions 7 and 8 come with SCHEMA_OPS_COPY. */
static const char SCHEMA_V8[] =
    "ALTER TABLE search_points ADD COLUMN zero INTEGER NOT NULL DEFAULT 0;";
static const char SCHEMA_V8_CONTEXT[] =
    "ALTER TABLE search_points ADD COLUMN context INTEGER NOT NULL DEFAULT 1;";

static void set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...) {
    if (!err || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static const char *rc_hint(int rc) {
    switch (rc & 0xff) { // primary code of an extended one
    case SQLITE_CANTOPEN: return "; check that the directory exists and is writable";
    case SQLITE_READONLY: return "; the file or its directory is read-only";
    case SQLITE_BUSY:
        return "; another process held the database longer than the wait (PIPESIM_DB_WAIT_S, "
               "default 600 s), retry";
    case SQLITE_FULL: return "; the disk is full";
    case SQLITE_CORRUPT: return "; the file is damaged, pass another --db";
    default: return "";
    }
}

/* Explains the last SQLite failure on this store in one line: path, what we were doing, why,
 * and a hint for the common causes. Call it before anything else touches the connection. */
static void db_err(const Store *s, int rc, const char *doing, char *err, size_t len) {
    set_err(err, len, "database '%s': %s: %s%s", s->path, doing,
            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), rc_hint(rc));
}

static int exec(Store *s, const char *sql, const char *doing, char *err, size_t len) {
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) db_err(s, rc, doing, err, len);
    return rc;
}

/* Undoes the open transaction, if SQLite has not already done so (it does after IOERR, FULL,
 * NOMEM). The error message of the failure that got us here is already in err. */
static void rollback(Store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Runs a query returning one integer (PRAGMA user_version, count(*)); SQLITE_OK or the code. */
static int query_int(Store *s, const char *sql, int64_t *out) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0), rc = SQLITE_OK;
    sqlite3_finalize(st);
    return rc;
}

/* ---- opening ------------------------------------------------------------------------------ */
/* Each step returns SQLITE_OK or the code of its failure, which it has described in err. */

static int db_connect(Store *s, char *err, size_t len) {
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, len, "cannot open database '%s': %s; check that the directory exists "
                "and is writable", s->path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return rc;
    }
    if (sqlite3_db_readonly(s->db, "main") == 1) { // SQLite falls back to read-only silently
        set_err(err, len, "cannot open database '%s' for writing: it is read-only; check its "
                "permissions or pass another --db", s->path);
        return SQLITE_READONLY;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, busy_ms());
    return SQLITE_OK;
}

/* Reads the schema version and the number of schema objects in one statement, hence one
 * snapshot (another process may be creating the schema right now), without writing anything.
 * A file that is not SQLite, or is SQLite with tables but no version, is not ours. */
static int read_version(Store *s, int64_t *version, char *err, size_t len) {
    sqlite3_stmt *st;
    int64_t objects = 0;
    int rc = sqlite3_prepare_v2(s->db, "SELECT (SELECT user_version FROM pragma_user_version),"
                                " (SELECT count(*) FROM sqlite_master)", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int64(st, 0), objects = sqlite3_column_int64(st, 1);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if ((rc & 0xff) == SQLITE_NOTADB)
        set_err(err, len, "'%s' is not a pipesim database (%s); pass another --db", s->path,
                sqlite3_errmsg(s->db));
    else if (rc != SQLITE_OK)
        db_err(s, rc, "cannot read its schema version", err, len);
    else if (*version == 0 && objects > 0)
        set_err(err, len, "'%s' is not a pipesim database (it is an SQLite file with %lld "
                "tables or indexes but no pipesim schema version); pass another --db", s->path,
                (long long)objects), rc = SQLITE_NOTADB;
    else if (*version > STORE_SCHEMA_VERSION)
        set_err(err, len, "database '%s' has schema version %lld, newer than this pipesim (%d); "
                "use a newer pipesim or another --db", s->path, (long long)*version,
                STORE_SCHEMA_VERSION), rc = SQLITE_ERROR;
    return rc;
}

static int set_wal(Store *s, char *err, size_t len) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (rc != SQLITE_ROW) {
        db_err(s, rc, "cannot switch to WAL journaling", err, len);
    } else if (!mode || strcmp(mode, "wal") != 0) {
        set_err(err, len, "database '%s': journal mode is '%s', not 'wal'; put the database on "
                "a local file system", s->path, mode ? mode : "(none)");
        rc = SQLITE_ERROR;
    } else {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Creates the schema in a fresh file, or upgrades an older one step by step (v1 -> v2 -> v3
 * -> v4 -> v5 -> v6 -> v7 -> v8), in one transaction. Another process may be
 * doing the same, so the version is read again inside the write transaction, and the loser
 * finds the current version and does nothing. */
static int create_schema(Store *s, char *err, size_t len) {
    int rc = exec(s, "BEGIN IMMEDIATE", "cannot start creating the schema", err, len);
    if (rc != SQLITE_OK) return rc;
    int64_t version = 0;
    rc = read_version(s, &version, err, len);
    // a file taken back to an older version by hand may keep the columns
    int64_t has_zero = 0, has_context = 0;
    if (rc == SQLITE_OK && version >= 5 && version < 8)
        rc = query_int(s, "SELECT count(*) FROM pragma_table_info('search_points') WHERE name ="
                       " 'zero'", &has_zero);
    if (rc == SQLITE_OK && version >= 5 && version < 8)
        rc = query_int(s, "SELECT count(*) FROM pragma_table_info('search_points') WHERE name ="
                       " 'context'", &has_context);
    if (rc == SQLITE_OK && version < STORE_SCHEMA_VERSION) {
        char sql[sizeof SCHEMA + sizeof SCHEMA_V2 + sizeof SCHEMA_V3 + sizeof SCHEMA_OPS_COPY +
                 sizeof SCHEMA_V4 + sizeof SCHEMA_V5 + sizeof SCHEMA_V8 + sizeof SCHEMA_V8_CONTEXT + 64];
        snprintf(sql, sizeof sql, "%s%s%s%s%s%s%s%sPRAGMA user_version = %d;",
                 version == 0 ? SCHEMA : "", version < 2 ? SCHEMA_V2 : "",
                 version < 3 ? SCHEMA_V3 : "", version > 0 ? SCHEMA_OPS_COPY : "",
                 version < 4 ? SCHEMA_V4 : "", version < 5 ? SCHEMA_V5 : "",
                 version < 8 && !has_zero ? SCHEMA_V8 : "",
                 version < 8 && !has_context ? SCHEMA_V8_CONTEXT : "", STORE_SCHEMA_VERSION);
        rc = exec(s, sql, version == 0 ? "cannot create the schema"
                                       : "cannot upgrade the schema", err, len);
    }
    if (rc == SQLITE_OK) rc = exec(s, "COMMIT", "cannot create the schema", err, len);
    if (rc != SQLITE_OK) rollback(s);
    return rc;
}

/* One attempt. Order matters: the version is checked before WAL is switched on, so a file we
 * refuse is left exactly as it was. */
static int open_once(Store *s, char *err, size_t len) {
    int64_t version = 0;
    int rc = db_connect(s, err, len);
    if (rc == SQLITE_OK) rc = read_version(s, &version, err, len);
    if (rc == SQLITE_OK) rc = set_wal(s, err, len);
    if (rc == SQLITE_OK) rc = exec(s, "PRAGMA foreign_keys = ON", "cannot enable foreign keys",
                                   err, len);
    if (rc == SQLITE_OK && version < STORE_SCHEMA_VERSION) rc = create_schema(s, err, len);
    return rc;
}

/* Processes opening one new file at once race: of two simultaneous switches to WAL SQLite
 * fails one with SQLITE_BUSY at once (waiting could deadlock), without calling the busy
 * handler. So a busy open is closed and tried again every 20 ms, sleeping busy_ms() at
 * most in all (plus any busy-handler wait inside an attempt). */
int store_open(const char *path, Store **out, char *err, size_t errlen) {
    enum { RETRY_MS = 20 };
    *out = NULL;
    if (!path || !*path) {
        set_err(err, errlen, "no database path given; pass --db FILE");
        return -1;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) { // /dev/null, a folder, a pipe
        set_err(err, errlen, "database '%s' is not a regular file (SQLite would create "
                "'%s-journal' beside it); give a file path", path, path);
        return -1;
    }
    // A file-size limit (ulimit -f) would kill the process with SIGXFSZ mid-write; ignored,
    // the write fails with EFBIG and the transaction rolls back with a message instead.
    signal(SIGXFSZ, SIG_IGN);
    Store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        set_err(err, errlen, "database '%s': out of memory", path);
        free(s);
        return -1;
    }
    int rc = open_once(s, err, errlen);
    for (int waited = 0; (rc & 0xff) == SQLITE_BUSY && waited < busy_ms(); waited += RETRY_MS) {
        sqlite3_close(s->db);
        s->db = NULL;
        sqlite3_sleep(RETRY_MS);
        rc = open_once(s, err, errlen);
    }
    if (rc != SQLITE_OK) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* Opens path read-only (as immutable when not even the wal-index can be opened: read-only
 * media or directory) and reads its version. SQLITE_OK or the failure, described in err. */
static int open_reading(Store *s, int immutable, int64_t *version, char *err, size_t len) {
    char *uri = NULL;
    if (immutable) {
        sqlite3_str *u = sqlite3_str_new(NULL);
        sqlite3_str_appendall(u, "file:");
        for (const char *c = s->path; *c; c++) // the URI's reserved characters, escaped
            if (strchr("?#%", *c)) sqlite3_str_appendf(u, "%%%02X", (unsigned char)*c);
            else sqlite3_str_appendchar(u, 1, *c);
        sqlite3_str_appendall(u, "?immutable=1");
        if (!(uri = sqlite3_str_finish(u))) {
            set_err(err, len, "database '%s': out of memory", s->path);
            return SQLITE_NOMEM;
        }
    }
    int rc = sqlite3_open_v2(uri ? uri : s->path, &s->db,
                             SQLITE_OPEN_READONLY | (uri ? SQLITE_OPEN_URI : 0), NULL);
    sqlite3_free(uri);
    if (rc != SQLITE_OK) {
        set_err(err, len, "cannot open database '%s' for reading: %s", s->path,
                s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return rc;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, busy_ms());
    return read_version(s, version, err, len);
}

int store_open_reader(const char *path, Store **out, char *err, size_t errlen) {
    *out = NULL;
    struct stat sb;
    if (!path || !*path || stat(path, &sb) != 0) {
        set_err(err, errlen, "no database '%s'; give the --db that psim or pexec wrote to "
                "(readers never create one)", path ? path : "");
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "database '%s' is not a regular file; give the file psim or pexec "
                "wrote to", path);
        return -1;
    }
    Store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        set_err(err, errlen, "database '%s': out of memory", path);
        free(s);
        return -1;
    }
    int64_t version = 0;
    int rc = open_reading(s, 0, &version, err, errlen);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_NOTADB && (rc & 0xff) != SQLITE_BUSY) {
        sqlite3_close(s->db), s->db = NULL; // no wal-index to be had: read it as it is
        rc = open_reading(s, 1, &version, err, errlen);
    }
    if (rc == SQLITE_OK && version == 0) {
        set_err(err, errlen, "'%s' is an empty database, not one psim or pexec wrote; give "
                "another --db", path);
        rc = SQLITE_NOTADB;
    }
    if (rc == SQLITE_OK && version < STORE_SCHEMA_VERSION) { // an older file: upgrade it once
        store_close(s);
        if (store_open(path, out, err, errlen) == 0) return 0;
        size_t at = strlen(err);
        snprintf(err + at, errlen > at ? errlen - at : 0, " (it has schema version %lld, older "
                 "than this pipesim's %d: reading it needs one upgrade, which needs write "
                 "access)", (long long)version, STORE_SCHEMA_VERSION);
        return -1;
    }
    if (rc != SQLITE_OK) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_close(Store *s) {
    if (!s) return;
    sqlite3_close(s->db); // every statement is finalized where it was prepared
    free(s->path);
    free(s);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

/* Runs a prepared insert once and resets it for the next row; SQLITE_OK or the code. */
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
        " version, host, status, error, devices, micro_batches, chunks, iterations, sweep)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    const char *texts[] = {in->tool, in->scenario_path, in->scenario_text, in->resolved,
                           in->overrides, in->schedule, in->version, in->host,
                           in->error ? "failed" : "complete", in->error};
    const int32_t ints[] = {in->devices, in->micro_batches, in->chunks, in->iterations};
    int col = 1;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) bind_text(st, col++, texts[i]);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) sqlite3_bind_int(st, col++, ints[i]);
    if (in->sweep > 0) sqlite3_bind_int64(st, col, in->sweep);
    else sqlite3_bind_null(st, col);
    rc = step_reset(st);
    if (rc == SQLITE_OK) *run_id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* One prepared statement for every row: about 2 us a row with the index (500k rows in 1.1 s
 * on a 2-core VM; 3.2 s with IN-list CHECKs, 0.5 s without the index). An out-of-range stream
 * or kind is bound as its name "?" and fails the table's CHECK. On failure *bad is the index
 * of the row that failed. */
static int insert_ops(Store *s, int64_t run_id, const Timeline *tl, size_t *bad) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db,
        "INSERT INTO ops (run_id, device, stream, kind, micro_batch, chunk, peer, start_ns,"
        " end_ns, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    size_t n = tl ? tl->n : 0;
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        const TimelineOp *op = &tl->ops[i];
        sqlite3_bind_int(st, 2, op->device);
        sqlite3_bind_text(st, 3, stream_name((Stream)op->stream), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, op_kind_name((OpKind)op->kind), -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, op->micro_batch);
        sqlite3_bind_int(st, 6, op->chunk);
        if (op->peer == -1) sqlite3_bind_null(st, 7);
        else sqlite3_bind_int(st, 7, op->peer);
        sqlite3_bind_int64(st, 8, op->start_ns);
        sqlite3_bind_int64(st, 9, op->end_ns);
        sqlite3_bind_int64(st, 10, op->bytes);
        rc = step_reset(st);
        if (rc != SQLITE_OK) *bad = i;
    }
    sqlite3_finalize(st);
    return rc;
}

static int insert_memory(Store *s, int64_t run_id, const MemTrace *mem) {
    if (!mem || mem->n == 0) return SQLITE_OK;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db, "INSERT OR REPLACE INTO memory (run_id, device, t_ns, bytes) VALUES (?, ?, ?, ?)",
        -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    for (size_t i = 0; i < mem->n && rc == SQLITE_OK; i++) {
        sqlite3_bind_int(st, 2, mem->s[i].device);
        sqlite3_bind_int64(st, 3, mem->s[i].t_ns);
        sqlite3_bind_int64(st, 4, mem->s[i].bytes);
        rc = step_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static int insert_metrics(Store *s, int64_t run_id, const StoreMetric *m, size_t n) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "INSERT INTO metrics (run_id, name, value) VALUES (?, ?, ?)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        bind_text(st, 2, m[i].name);
        sqlite3_bind_double(st, 3, m[i].value); // NaN is stored as NULL
        rc = step_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static int insert_device_metrics(Store *s, int64_t run_id, const StoreDeviceMetric *m, size_t n) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db, "INSERT INTO device_metrics (run_id, device, name, value) VALUES (?, ?, ?, ?)", -1,
        &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        sqlite3_bind_int(st, 2, m[i].device);
        bind_text(st, 3, m[i].name);
        sqlite3_bind_double(st, 4, m[i].value);
        rc = step_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* A repeated name fails the primary key, and with it the run's transaction. */
static int insert_env(Store *s, int64_t run_id, const StoreEnv *env, size_t n) {
    if (!env || n == 0) return SQLITE_OK;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "INSERT INTO run_env (run_id, name, value) VALUES (?, ?, ?)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        bind_text(st, 2, env[i].name);
        bind_text(st, 3, env[i].value); // NULL fails NOT NULL: nothing of the run stays
        rc = step_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static void write_err(const Store *s, int rc, const Timeline *tl, size_t bad, char *err,
                      size_t len) {
    if (bad == SIZE_MAX) {
        db_err(s, rc, "cannot write the run (nothing of it was kept)", err, len);
        return;
    }
    const TimelineOp *op = &tl->ops[bad];
    char doing[160];
    snprintf(doing, sizeof doing, "cannot write the run (nothing of it was kept): timeline row "
             "%zu (device %d, stream %u, kind %u)", bad, (int)op->device, (unsigned)op->stream,
             (unsigned)op->kind);
    db_err(s, rc, doing, err, len);
}

int store_run_write(Store *s, const StoreRunInfo *info, const Timeline *tl, const MemTrace *mem,
                    const StoreMetric *metrics, size_t nmetrics,
                    const StoreDeviceMetric *dmetrics, size_t ndmetrics, int64_t *run_id,
                    char *err, size_t errlen) {
    if (exec(s, "BEGIN IMMEDIATE", "cannot start writing the run", err, errlen)) return -1;
    int64_t id = 0;
    size_t bad = SIZE_MAX; // the timeline row that failed, if one did
    int rc = insert_run(s, info, &id);
    if (rc == SQLITE_OK) rc = insert_env(s, id, info->env, info->nenv);
    if (rc == SQLITE_OK) rc = insert_ops(s, id, tl, &bad);
    if (rc == SQLITE_OK) rc = insert_memory(s, id, mem);
    if (rc == SQLITE_OK) rc = insert_metrics(s, id, metrics, nmetrics);
    if (rc == SQLITE_OK) rc = insert_device_metrics(s, id, dmetrics, ndmetrics);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        write_err(s, rc, tl, bad, err, errlen);
        rollback(s);
        return -1;
    }
    *run_id = id;
    return 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

int64_t store_run_count(Store *s) {
    int64_t n = -1;
    return query_int(s, "SELECT count(*) FROM runs", &n) == SQLITE_OK ? n : -1;
}

static TimelineOp op_from_row(sqlite3_stmt *st) {
    const char *stream = (const char *)sqlite3_column_text(st, 1);
    const char *kind = (const char *)sqlite3_column_text(st, 2);
    return (TimelineOp){
        .device = sqlite3_column_int(st, 0),
        .stream = (uint8_t)stream_parse(stream ? stream : ""), // the CHECKs keep these valid
        .kind = (uint8_t)op_kind_parse(kind ? kind : ""),
        .micro_batch = sqlite3_column_int(st, 3),
        .chunk = (int16_t)sqlite3_column_int(st, 4),
        .peer = sqlite3_column_int(st, 5),
        .start_ns = sqlite3_column_int64(st, 6),
        .end_ns = sqlite3_column_int64(st, 7),
        .bytes = sqlite3_column_int64(st, 8)};
}

/* Order: device, then compute < send < recv < allreduce < the other lanes (optimizer,
 * reduce-scatter, all-gather, tensor; not alphabetical, hence the CASE), then start,
 * then insertion order. The index finds the run's rows; SQLite sorts them, O(n log n). */
int store_ops_load(Store *s, int64_t run_id, Timeline *tl) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db,
        "SELECT device, stream, kind, micro_batch, chunk, coalesce(peer, -1), start_ns, end_ns,"
        " bytes FROM ops WHERE run_id = ? ORDER BY device,"
        " CASE stream WHEN 'compute' THEN 0 WHEN 'send' THEN 1 WHEN 'recv' THEN 2"
        " WHEN 'allreduce' THEN 3 ELSE 4 END, start_ns, rowid",
        -1, &st, NULL);
    if (rc != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        TimelineOp op = op_from_row(st);
        if (timeline_push(tl, &op) != 0) break;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE && tl->n > 0) return 0;
    timeline_free(tl); // leave it zeroed, as it came
    return -1;
}

/* A metric stored as NULL (SQLite stores NaN that way) reads back as NaN. */
int store_metric_get(Store *s, int64_t run_id, const char *name, double *value) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM metrics WHERE run_id = ? AND name = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    bind_text(st, 2, name);
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    if (rc == 0)
        *value = sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int store_device_metric_get(Store *s, int64_t run_id, int32_t device, const char *name,
                            double *value) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM device_metrics WHERE run_id = ? AND "
                           "device = ? AND name = ?", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, device);
    bind_text(st, 3, name);
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    if (rc == 0)
        *value = sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int store_memory_load(Store *s, int64_t run_id, MemTrace *mem) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT device, t_ns, bytes FROM memory WHERE run_id = ?"
                           " ORDER BY device, t_ns", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        MemSample x = {.device = sqlite3_column_int(st, 0), .t_ns = sqlite3_column_int64(st, 1),
                       .bytes = sqlite3_column_int64(st, 2)};
        if (memtrace_push(mem, &x) != 0) break;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE && mem->n > 0) return 0;
    memtrace_free(mem);
    return -1;
}

static char *dup_column(sqlite3_stmt *st, int col) {
    const char *t = (const char *)sqlite3_column_text(st, col);
    return strdup(t ? t : "");
}

int store_run_resolve(Store *s, const char *arg, int64_t *id, char *err, size_t errlen) {
    static const struct {
        const char *name, *sql, *what;
    } NAMED[] = {
        {"latest", "SELECT coalesce(max(id), 0) FROM runs WHERE status = 'complete'",
         "no complete run"},
        {"latest-measured", "SELECT coalesce(max(id), 0) FROM runs WHERE status = 'complete'"
                            " AND tool = 'pexec'", "no complete pexec (measured) run"},
        {"latest-predicted", "SELECT coalesce(max(id), 0) FROM runs WHERE status = 'complete'"
                             " AND tool = 'psim'", "no complete psim (predicted) run"},
    };
    *id = 0;
    for (size_t i = 0; i < sizeof NAMED / sizeof *NAMED; i++) {
        if (strcmp(arg, NAMED[i].name) != 0) continue;
        if (query_int(s, NAMED[i].sql, id) != SQLITE_OK) {
            set_err(err, errlen, "cannot read the runs of '%s'", s->path);
            return -1;
        }
        if (*id > 0) return 0;
        set_err(err, errlen, "'%s': database '%s' has %s", arg, s->path, NAMED[i].what);
        return 2;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (end == arg || *end || errno || v < 1 || arg[0] == '+' || arg[0] == ' ') {
        set_err(err, errlen, "'%s' is not a run id; give the number psim or pexec printed "
                "(\"stored run N\"), latest, latest-measured or latest-predicted", arg);
        return 2;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM runs WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK) {
        set_err(err, errlen, "cannot read the runs of '%s'", s->path);
        return -1;
    }
    sqlite3_bind_int64(st, 1, v);
    int found = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (found < 0) {
        set_err(err, errlen, "cannot read the runs of '%s'", s->path);
        return -1;
    }
    if (found == 0) {
        set_err(err, errlen, "there is no run %lld in the database '%s'", v, s->path);
        return 2;
    }
    *id = v;
    return 0;
}

int store_run_get(Store *s, int64_t run_id, StoreRunRow *out) {
    sqlite3_stmt *st;
    memset(out, 0, sizeof *out);
    if (sqlite3_prepare_v2(s->db, "SELECT tool, coalesce(schedule, ''), coalesce(resolved, ''),"
                           " devices, micro_batches, chunks, iterations, status, error"
                           " FROM runs WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rc = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->tool = dup_column(st, 0), out->schedule = dup_column(st, 1);
        out->resolved = dup_column(st, 2);
        out->devices = sqlite3_column_int(st, 3), out->micro_batches = sqlite3_column_int(st, 4);
        out->chunks = sqlite3_column_int(st, 5), out->iterations = sqlite3_column_int(st, 6);
        const char *status = (const char *)sqlite3_column_text(st, 7);
        out->failed = status && strcmp(status, "failed") == 0;
        out->error = sqlite3_column_type(st, 8) == SQLITE_NULL ? NULL : dup_column(st, 8);
        rc = out->tool && out->schedule && out->resolved && (!out->failed || out->error) ? 0 : -1;
    }
    sqlite3_finalize(st);
    if (rc != 0) store_run_row_free(out);
    return rc;
}

void store_run_row_free(StoreRunRow *r) {
    free(r->tool), free(r->schedule), free(r->resolved), free(r->error);
    memset(r, 0, sizeof *r);
}

int store_metrics_csv(Store *s, int64_t run_id, FILE *f) {
    if (query_int(s, "SELECT 1", &(int64_t){0}) != SQLITE_OK) return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT (SELECT count(*) FROM runs WHERE id = ?1), name, value"
                           " FROM metrics WHERE run_id = ?1 ORDER BY rowid", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rows = 0;
    fprintf(f, "name,value\n");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        fprintf(f, "%s,%.17g\n", name ? name : "", sqlite3_column_double(st, 2));
        rows++;
    }
    sqlite3_finalize(st);
    return rows ? 0 : -1;
}

void store_run_env_free(StoreEnvRow *rows, size_t n) {
    for (size_t i = 0; i < n; i++) free(rows[i].name), free(rows[i].value);
    free(rows);
}

/* The first column counts the run, so an unknown run (-1) differs from one without an
 * environment (0 rows): the LEFT JOIN gives the run one row of NULLs then. */
int store_run_env(Store *s, int64_t run_id, StoreEnvRow **rows, size_t *n) {
    sqlite3_stmt *st;
    *rows = NULL, *n = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT e.name, e.value FROM runs r LEFT JOIN run_env e"
                           " ON e.run_id = r.id WHERE r.id = ? ORDER BY e.name", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    size_t cap = 0;
    int rc = -1, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = 0; // the run exists
        if (sqlite3_column_type(st, 0) == SQLITE_NULL) continue; // it has no environment
        if (*n == cap) {
            StoreEnvRow *more = realloc(*rows, (cap = cap ? 2 * cap : 32) * sizeof *more);
            if (!more) { rc = -1; break; }
            *rows = more;
        }
        StoreEnvRow *r = &(*rows)[(*n)++];
        r->name = dup_column(st, 0), r->value = dup_column(st, 1);
        if (!r->name || !r->value) { rc = -1; break; }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = -1;
    sqlite3_finalize(st);
    if (rc != 0) store_run_env_free(*rows, *n), *rows = NULL, *n = 0;
    return rc;
}

int64_t store_next_sweep(Store *s) {
    char err[256];
    if (exec(s, "INSERT INTO sweeps DEFAULT VALUES", "cannot start a sweep", err, sizeof err))
        return -1;
    return sqlite3_last_insert_rowid(s->db);
}

int store_sweep_rows(Store *s, int64_t sweep, StoreSweepRow **rows, size_t *n) {
    sqlite3_stmt *st;
    *rows = NULL, *n = 0;
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT r.id, coalesce(r.overrides, ''),"
            " (SELECT value FROM metrics WHERE run_id = r.id AND name = 'makespan_ms'),"
            " (SELECT value FROM metrics WHERE run_id = r.id AND name = 'bubble_rate'),"
            " (SELECT value FROM metrics WHERE run_id = r.id AND name = 'throughput_tokens_per_s'),"
            " (SELECT max(value) FROM device_metrics WHERE run_id = r.id AND name = 'peak_memory_gib')"
            " FROM runs r WHERE r.sweep = ? ORDER BY r.id", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, sweep);
    size_t cap = 0;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            StoreSweepRow *more = realloc(*rows, (cap = cap ? 2 * cap : 64) * sizeof *more);
            if (!more) { rc = -1; break; }
            *rows = more;
        }
        StoreSweepRow *r = &(*rows)[(*n)++];
        r->run_id = sqlite3_column_int64(st, 0);
        r->overrides = dup_column(st, 1);
        r->makespan_ms = sqlite3_column_double(st, 2), r->bubble_rate = sqlite3_column_double(st, 3);
        r->tokens_per_s = sqlite3_column_double(st, 4), r->peak_memory_gib = sqlite3_column_double(st, 5);
        if (!r->overrides) rc = -1;
    }
    sqlite3_finalize(st);
    if (rc != 0) store_sweep_rows_free(*rows, *n), *rows = NULL, *n = 0;
    return rc;
}

void store_sweep_rows_free(StoreSweepRow *rows, size_t n) {
    for (size_t i = 0; i < n; i++) free(rows[i].overrides);
    free(rows);
}

/* ---- searches ----------------------------------------------------------------------------- */

static int insert_search(Store *s, const StoreSearchInfo *in, int64_t *id) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db,
        "INSERT INTO searches (scenario_path, scenario_text, overrides, schedules, version, host,"
        " gpus, global_batch, points, fit, dropped_static, dropped_memory, invalid, wall_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    const char *texts[] = {in->scenario_path, in->scenario_text, in->overrides, in->schedules,
                           in->version, in->host};
    const int64_t ints[] = {in->gpus, in->global_batch, in->points, in->fit,
                            in->dropped_static, in->dropped_memory, in->invalid};
    int col = 1;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) bind_text(st, col++, texts[i]);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) sqlite3_bind_int64(st, col++, ints[i]);
    sqlite3_bind_double(st, col, in->wall_ms);
    rc = step_reset(st);
    if (rc == SQLITE_OK) *id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* NaN metrics (not simulated) bind as NULL, as SQLite stores NaN anyway. */
static int insert_search_points(Store *s, int64_t id, const StoreSearchPoint *p, size_t n) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db,
        "INSERT INTO search_points (search_id, point, schedule, stages, chunks, data, tensor,"
        " micro_batch_size, micro_batches, recompute, status, reason, rank, static_gib,"
        " peak_memory_gib, makespan_ms, bubble_rate, throughput_tokens_per_s, tflops_per_gpu,"
        " mfu, zero, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?, ?)", -1,
        &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, id);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        const StoreSearchPoint *q = &p[i];
        const int64_t ints[] = {q->stages, q->chunks, q->data, q->tensor, q->micro_batch_size,
                                q->micro_batches};
        const double reals[] = {q->static_gib, q->peak_gib, q->makespan_ms, q->bubble_rate,
                                q->tokens_per_s, q->tflops_per_gpu, q->mfu};
        sqlite3_bind_int64(st, 2, (int64_t)i);
        bind_text(st, 3, q->schedule);
        for (int k = 0; k < 6; k++) sqlite3_bind_int64(st, 4 + k, ints[k]);
        bind_text(st, 10, q->recompute);
        bind_text(st, 11, q->status);
        bind_text(st, 12, q->reason && q->reason[0] ? q->reason : NULL);
        if (q->rank > 0) sqlite3_bind_int64(st, 13, q->rank);
        else sqlite3_bind_null(st, 13);
        for (int k = 0; k < 7; k++)
            if (isnan(reals[k])) sqlite3_bind_null(st, 14 + k);
            else sqlite3_bind_double(st, 14 + k, reals[k]);
        sqlite3_bind_int64(st, 21, q->zero);
        sqlite3_bind_int64(st, 22, q->context > 1 ? q->context : 1);
        rc = step_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

int store_search_write(Store *s, const StoreSearchInfo *info, const StoreSearchPoint *pts,
                       size_t n, int64_t *search_id, char *err, size_t errlen) {
    if (exec(s, "BEGIN IMMEDIATE", "cannot start writing the search", err, errlen)) return -1;
    int64_t id = 0;
    int rc = insert_search(s, info, &id);
    if (rc == SQLITE_OK) rc = insert_search_points(s, id, pts, n);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        db_err(s, rc, "cannot write the search (nothing of it was kept)", err, errlen);
        rollback(s);
        return -1;
    }
    *search_id = id;
    return 0;
}

int64_t store_search_points(Store *s, int64_t search_id, const char *status) {
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM search_points WHERE search_id = ?1 AND"
                           " (?2 IS NULL OR status = ?2)", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, search_id);
    bind_text(st, 2, status);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}
