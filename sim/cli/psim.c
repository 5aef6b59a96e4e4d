/* sim/cli/psim.c: the psim command: scenario -> plan -> schedule -> check -> engine -> metrics ->
 * store and print (the shared steps are in run.h), once, or for every point of a sweep.
 * Exit status: 0 done, 1 environment failure (files, database, memory), 2 bad input
 * (scenario, options; for a sweep: some point was), 3 with --memory-limit when a device needs
 * more than hardware.memory_gib (the run is still stored and printed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim/engine/engine.h"
#include "sim/run/run.h"
#include "sim/sched/sched_file.h"
#include "traces/store.h"

#define SWEEP_MAX_POINTS 100000

/* Prints the Program as a schedule file (--dump-schedule). */
static void dump(const Run *r) {
    char header[256];
    snprintf(header, sizeof header, "%s: schedule %s, stages %d, chunks %d, micro_batches %lld",
             r->scn.model.name, r->sched->name, r->prog.devices, r->prog.chunks,
             (long long)r->scn.batch.micro_batches);
    sched_file_write(stdout, &r->prog, header);
}

/* One simulation of o's scenario: the whole psim pipeline. Returns an exit status. */
static int simulate(const RunOptions *o) {
    Run r = {0};
    int rc = run_prepare(o, &r);
    if (rc == 0 && o->dump) {
        dump(&r);
    } else if (rc == 0) {
        char err[SCN_ERR_MAX];
        int e = run_simulate(&r, err, sizeof err);
        if (e == -1) {
            fprintf(stderr, "psim: out of memory\n");
            rc = 1;
        } else if (e == -2) {
            fprintf(stderr, "psim: %s: the run stalls: %s\n", r.scn.path, err);
            rc = 2;
        } else {
            rc = run_report(o, &r);
        }
    }
    run_free(&r);
    return rc;
}

/* ---- sweeps ---------------------------------------------------------------------------- */

static void value_of(const char *overrides, const char *key, char *out, size_t len);

typedef struct {
    char key[128];      // "batch.micro_batches"
    char *values[1024]; // into spec (owned copy)
    int n;
    char *spec;         // owned: the values, split in place
} SweepDim;

static int dims_parse(const RunOptions *o, SweepDim *dims, int64_t *points) {
    *points = 1;
    for (int i = 0; i < o->nsweeps; i++) {
        const char *eq = strchr(o->sweeps[i], '=');
        SweepDim *d = &dims[i];
        snprintf(d->key, sizeof d->key, "%.*s", (int)(eq - o->sweeps[i]), o->sweeps[i]);
        if (!(d->spec = strdup(eq + 1))) return 1;
        d->n = 0;
        for (char *v = d->spec, *save = NULL; (v = strtok_r(v, ",", &save)); v = NULL) {
            if (d->n == 1024) {
                fprintf(stderr, "psim: --sweep %s: at most 1024 values\n", d->key);
                return 2;
            }
            d->values[d->n++] = v;
        }
        if (d->n == 0) {
            fprintf(stderr, "psim: --sweep %s=: give at least one value, e.g. %s=8,16\n", d->key,
                    d->key);
            return 2;
        }
        *points *= d->n;
        if (*points > SWEEP_MAX_POINTS) {
            fprintf(stderr, "psim: the sweep has more than %d points; sweep fewer values\n",
                    SWEEP_MAX_POINTS);
            return 2;
        }
    }
    return 0;
}

/* Runs point k of the sweep with the user's --set arguments and the point's values; a point
 * that fails is named after psim's message. */
static int run_point(const RunOptions *base, const SweepDim *dims, int64_t k) {
    RunOptions o = *base;
    char sets[16][1200];
    int64_t point = k;
    o.nsweeps = 0, o.quiet = 1, o.json = 0;
    for (int i = base->nsweeps - 1; i >= 0; i--) { // last dimension varies fastest
        const SweepDim *d = &dims[i];
        snprintf(sets[i], sizeof sets[i], "%s=%s", d->key, d->values[k % d->n]);
        k /= d->n;
    }
    for (int i = 0; i < base->nsweeps; i++) {
        if (o.nsets == RUN_MAX_SETS) return 2;
        o.sets[o.nsets++] = sets[i];
    }
    int rc = simulate(&o);
    if (rc != 0 && rc != 3) {
        fprintf(stderr, "psim:   (sweep point %lld:", (long long)point);
        for (int i = 0; i < base->nsweeps; i++) fprintf(stderr, " %s", sets[i]);
        fprintf(stderr, ")\n");
    }
    return rc;
}

/* The point index of a stored row, from its swept values (last dimension fastest). */
static int64_t point_of(const StoreSweepRow *r, const SweepDim *dims, int ndims) {
    int64_t k = 0;
    for (int i = 0; i < ndims; i++) {
        char v[256];
        value_of(r->overrides, dims[i].key, v, sizeof v);
        int j = 0;
        while (j < dims[i].n && strcmp(dims[i].values[j], v) != 0) j++;
        k = k * dims[i].n + j;
    }
    return k;
}

/* A worker process: points w, w + workers, ...; exits with the worst status. */
static int worker(const RunOptions *o, const SweepDim *dims, int64_t points, int w, int workers) {
    int worst = 0;
    for (int64_t k = w; k < points; k += workers) {
        int rc = run_point(o, dims, k);
        if (rc == 1 || (rc == 2 && worst != 1) || (rc == 3 && worst == 0)) worst = rc;
    }
    return worst;
}

/* The value a point's overrides give key ("" when absent): the last "key=value" line. */
static void value_of(const char *overrides, const char *key, char *out, size_t len) {
    size_t klen = strlen(key);
    out[0] = '\0';
    for (const char *l = overrides; *l;) {
        const char *eol = strchr(l, '\n');
        size_t n = eol ? (size_t)(eol - l) : strlen(l);
        if (n > klen && strncmp(l, key, klen) == 0 && l[klen] == '=')
            snprintf(out, len, "%.*s", (int)(n - klen - 1), l + klen + 1);
        l += n + (eol != NULL);
    }
}

static void sweep_table(const RunOptions *o, const SweepDim *dims, int64_t sweep) {
    Store *st;
    char err[512];
    StoreSweepRow *rows;
    size_t n;
    if (store_open(o->db, &st, err, sizeof err) != 0) return;
    if (store_sweep_rows(st, sweep, &rows, &n) == 0) {
        for (size_t a = 1; a < n; a++) // in point order (insertion sort: points finish nearly in order)
            for (size_t b = a; b > 0 && point_of(&rows[b], dims, o->nsweeps) <
                                            point_of(&rows[b - 1], dims, o->nsweeps); b--) {
                StoreSweepRow t = rows[b];
                rows[b] = rows[b - 1], rows[b - 1] = t;
            }
        printf("# sweep %lld: %zu points stored in %s\n#", (long long)sweep, n, o->db);
        for (int i = 0; i < o->nsweeps; i++) printf(" %s", dims[i].key);
        printf(" run makespan_ms bubble_rate tokens_per_s peak_memory_gib\n");
        for (size_t r = 0; r < n; r++) {
            for (int i = 0; i < o->nsweeps; i++) {
                char v[256];
                value_of(rows[r].overrides, dims[i].key, v, sizeof v);
                printf("%s%s", i ? " " : "", v);
            }
            printf(" %lld %.3f %.6f %.0f %.2f\n", (long long)rows[r].run_id, rows[r].makespan_ms,
                   rows[r].bubble_rate, rows[r].tokens_per_s, rows[r].peak_memory_gib);
        }
        store_sweep_rows_free(rows, n);
    }
    store_close(st);
}

static int64_t stored_points(const char *db, int64_t sweep) {
    Store *st;
    char err[512];
    StoreSweepRow *rows;
    size_t n = 0;
    if (store_open(db, &st, err, sizeof err) != 0) return 0;
    if (store_sweep_rows(st, sweep, &rows, &n) == 0) store_sweep_rows_free(rows, n);
    store_close(st);
    return (int64_t)n;
}

/* Every point of the sweep, on every core (one process each), each stored as a run of a new
 * sweep; then the table, in run order. */
static int sweep(RunOptions *o) {
    SweepDim dims[16] = {0};
    int64_t points;
    int rc = dims_parse(o, dims, &points);
    Store *st = NULL;
    char err[512];
    if (rc == 0 && !o->db) {
        fprintf(stderr, "psim: --sweep stores every point; drop --no-db\n");
        rc = 2;
    }
    if (rc == 0 && (store_open(o->db, &st, err, sizeof err) != 0 ||
                    (o->sweep = store_next_sweep(st)) < 1)) {
        fprintf(stderr, "psim: %s\n", st ? "cannot read the database's sweeps" : err);
        rc = 1;
    }
    store_close(st);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = (int)(points < cores ? points : cores > 0 ? cores : 1), started = 0;
    if (workers > 256) workers = 256;
    pid_t parent = getpid();
    for (int w = 0; rc == 0 && w < workers; w++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) run_worker_dies_with_parent(parent), _exit(worker(o, dims, points, w, workers));
        if (pid < 0) rc = 1;
        else started++;
    }
    int tty = !o->quiet && isatty(2);
    for (int left = started; left > 0;) { // wait, with a progress line on a terminal
        int status;
        pid_t done = waitpid(-1, &status, tty ? WNOHANG : 0);
        if (done > 0) {
            left--;
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
            if (code == 1 || (code == 2 && rc != 1) || (code == 3 && rc == 0)) rc = code;
        } else if (tty) {
            fprintf(stderr, "\rpsim: sweep %lld: %lld of %lld points", (long long)o->sweep,
                    (long long)stored_points(o->db, o->sweep), (long long)points);
            nanosleep(&(struct timespec){0, 100000000}, NULL);
        }
    }
    if (tty) fprintf(stderr, "\r\033[K");
    if (started && !o->quiet) sweep_table(o, dims, o->sweep);
    for (int i = 0; i < o->nsweeps; i++) free(dims[i].spec);
    return rc;
}

int main(int argc, char **argv) {
    RunOptions o;
    int rc = run_options_parse(argc, argv, "psim", &o);
    if (rc != 0) return rc;
    return o.nsweeps ? sweep(&o) : simulate(&o);
}
