/* sim/cli/pexport.c: the pexport command: stored runs out of SQLite for other tools.
 *   --chrome RUN...  Chrome Trace Event JSON (Perfetto, chrome://tracing): one process per
 *                    (run, device), threads for compute, send and recv, a flow arrow from every
 *                    send to its receive; several runs (predicted and measured) side by side.
 *   --csv RUN        every op of a run as CSV; --metrics-csv RUN its metrics; --env-csv RUN
 *                    what it ran on (versions, host, environment variables; failed runs too).
 * A failed run (pexec stopped by a fault; its rows end where it stopped) is marked: "FAILED" in
 * its process names and an instant event with the error in the trace, a note on stderr for CSV;
 * it has no metrics.
 * Exit status 0; 2 for bad arguments or unknown runs; 1 when the database cannot be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traces/store.h"

/* A transfer's identity: sender, receiver, kind, micro-batch and consumer chunk. */
static int xfer_cmp(const void *pa, const void *pb) {
    const TimelineOp *a = *(const TimelineOp *const *)pa, *b = *(const TimelineOp *const *)pb;
    int32_t as = a->stream == STREAM_SEND ? a->device : a->peer;
    int32_t ad = a->stream == STREAM_SEND ? a->peer : a->device;
    int32_t bs = b->stream == STREAM_SEND ? b->device : b->peer;
    int32_t bd = b->stream == STREAM_SEND ? b->peer : b->device;
    if (as != bs) return as < bs ? -1 : 1;
    if (ad != bd) return ad < bd ? -1 : 1;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    if (a->micro_batch != b->micro_batch) return a->micro_batch < b->micro_batch ? -1 : 1;
    if (a->chunk != b->chunk) return a->chunk < b->chunk ? -1 : 1;
    return a->stream < b->stream ? -1 : a->stream > b->stream; // send before recv
}

static double us(int64_t ns) { return (double)ns / 1e3; }

/* Writes t as the inside of a JSON string: quotes, backslashes and control bytes escaped. */
static void json_text(FILE *f, const char *t) {
    for (; *t; t++) {
        unsigned char c = (unsigned char)*t;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
}

/* A failed run's mark: an instant event across the whole trace at its last row's end. */
static void chrome_failure(FILE *f, int64_t id, const StoreRunRow *row, const Timeline *tl,
                           int64_t pid0) {
    int64_t at = 0;
    for (size_t i = 0; i < tl->n; i++)
        if (tl->ops[i].end_ns > at) at = tl->ops[i].end_ns;
    fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"g\",\"name\":\"run %lld FAILED\",\"pid\":%lld,\"tid\":0,"
            "\"ts\":%.3f,\"args\":{\"error\":\"", (long long)id, (long long)pid0, us(at));
    json_text(f, row->error);
    fprintf(f, "\"}}");
}

/* One run's events; pid base keeps runs apart. Returns the flows written, or -1. */
static int64_t chrome_run(FILE *f, int64_t id, const StoreRunRow *row, const Timeline *tl,
                          int64_t pid0, int64_t *flow_id, int *first) {
    static const char *const THREAD[STREAM_COUNT] = {"compute", "send", "recv", "allreduce",
                                                     "optimizer", "tensor", "tensor all-gather",
                                                     "tensor reduce-scatter", "reduce_scatter",
                                                     "all_gather"};
    for (int32_t d = 0; d < row->devices; d++) {
        fprintf(f, "%s\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%lld,\"args\":{\"name\":"
                "\"run %lld ", *first ? "" : ",", (long long)(pid0 + d), (long long)id);
        json_text(f, row->tool); // stored text: a crafted database must not break the JSON
        fputc(' ', f);
        json_text(f, row->schedule);
        fprintf(f, "%s, device %d\"}}", row->failed ? " FAILED" : "", d);
        *first = 0;
        for (int s = 0; s < STREAM_COUNT; s++)
            fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%lld,\"tid\":%d,"
                    "\"args\":{\"name\":\"%s\"}}", (long long)(pid0 + d), s, THREAD[s]);
    }
    const TimelineOp **x = malloc((tl->n ? tl->n : 1) * sizeof *x);
    if (!x) return -1;
    size_t nx = 0;
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        fprintf(f, ",\n{\"ph\":\"X\",\"name\":\"%s mb %d\",\"cat\":\"%s\",\"pid\":%lld,\"tid\":%d,"
                "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"chunk\":%d,\"peer\":%d,\"bytes\":%lld}}",
                op_kind_name((OpKind)r->kind), r->micro_batch, stream_name((Stream)r->stream),
                (long long)(pid0 + r->device), r->stream, us(r->start_ns),
                us(r->end_ns - r->start_ns), r->chunk, r->peer, (long long)r->bytes);
        if (r->stream == STREAM_SEND || r->stream == STREAM_RECV) x[nx++] = r;
    }
    qsort(x, nx, sizeof *x, xfer_cmp);
    int64_t flows = 0;
    for (size_t i = 0; i + 1 < nx; i++) { // a send and its receive sort next to each other
        const TimelineOp *s = x[i], *r = x[i + 1];
        if (s->stream != STREAM_SEND || r->stream != STREAM_RECV || s->device != r->peer ||
            s->peer != r->device || s->micro_batch != r->micro_batch || s->kind != r->kind ||
            s->chunk != r->chunk)
            continue;
        fprintf(f, ",\n{\"ph\":\"s\",\"name\":\"transfer\",\"cat\":\"flow\",\"id\":%lld,\"pid\":%lld,"
                "\"tid\":%d,\"ts\":%.3f}", (long long)*flow_id, (long long)(pid0 + s->device),
                STREAM_SEND, us(s->start_ns));
        fprintf(f, ",\n{\"ph\":\"f\",\"bp\":\"e\",\"name\":\"transfer\",\"cat\":\"flow\",\"id\":%lld,"
                "\"pid\":%lld,\"tid\":%d,\"ts\":%.3f}", (long long)(*flow_id)++,
                (long long)(pid0 + r->device), STREAM_RECV, us(r->end_ns));
        flows++, i++;
    }
    free(x);
    return flows;
}

static int load(Store *db, int64_t id, StoreRunRow *row, Timeline *tl) {
    memset(tl, 0, sizeof *tl);
    if (store_run_get(db, id, row) != 0) {
        fprintf(stderr, "pexport: there is no run %lld in the database\n", (long long)id);
        return 2;
    }
    if (store_ops_load(db, id, tl) != 0 && !row->failed) { // a run may fail before its first op
        fprintf(stderr, "pexport: run %lld has no ops\n", (long long)id);
        store_run_row_free(row);
        return 2;
    }
    if (row->failed)
        fprintf(stderr, "pexport: run %lld is a failed %s run: %s; its %zu rows stop where it "
                "failed\n", (long long)id, row->tool, row->error, tl->n);
    return 0;
}

static void csv_ops(int64_t id, const Timeline *tl) {
    printf("run_id,device,stream,kind,micro_batch,chunk,peer,start_ns,end_ns,bytes\n");
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        printf("%lld,%d,%s,%s,%d,%d,%d,%lld,%lld,%lld\n", (long long)id, r->device,
               stream_name((Stream)r->stream), op_kind_name((OpKind)r->kind), r->micro_batch,
               r->chunk, r->peer, (long long)r->start_ns, (long long)r->end_ns,
               (long long)r->bytes);
    }
}

/* A CSV field: quoted (quotes doubled) when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *t) {
    if (!strpbrk(t, ",\"\r\n")) {
        fputs(t, f);
        return;
    }
    fputc('"', f);
    for (; *t; t++) {
        if (*t == '"') fputc('"', f);
        fputc(*t, f);
    }
    fputc('"', f);
}

/* "name,value" lines of the run's environment in name order (a header first). A run stored
 * before schema 5 has none: just the header, and a note on stderr. */
static int csv_env(Store *db, int64_t id) {
    StoreEnvRow *rows;
    size_t n;
    if (store_run_env(db, id, &rows, &n) != 0) {
        fprintf(stderr, "pexport: there is no run %lld in the database\n", (long long)id);
        return 2;
    }
    if (n == 0) fprintf(stderr, "pexport: run %lld has no stored environment (it was stored by "
                        "an older pipesim)\n", (long long)id);
    printf("name,value\n");
    for (size_t i = 0; i < n; i++) {
        csv_field(stdout, rows[i].name);
        putchar(',');
        csv_field(stdout, rows[i].value);
        putchar('\n');
    }
    store_run_env_free(rows, n);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: pexport [--db PATH] --chrome RUN... | --csv RUN | --metrics-csv RUN |\n"
                    "               --env-csv RUN\n"
                    "Writes stored runs as Chrome Trace Event JSON (open it in ui.perfetto.dev)\n"
                    "or as CSV, on stdout.\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *path = "pipesim.db";
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--db") == 0) path = argv[a + 1], a += 2;
    if (a >= argc) return usage();
    const char *mode = argv[a++];
    int chrome = strcmp(mode, "--chrome") == 0;
    if (!chrome && strcmp(mode, "--csv") && strcmp(mode, "--metrics-csv") &&
        strcmp(mode, "--env-csv"))
        return usage();
    if (a >= argc || (!chrome && a + 1 != argc)) return usage();
    Store *db;
    char err[512];
    if (store_open_reader(path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "pexport: %s\n", err);
        return 1;
    }
    int rc = 0, first = 1;
    int64_t flow_id = 1;
    if (chrome) printf("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[");
    for (int i = a; i < argc && rc == 0; i++) {
        char *end;
        int64_t id = strtoll(argv[i], &end, 10);
        if (end == argv[i] || *end || id < 1) {
            fprintf(stderr, "pexport: '%s' is not a run id\n", argv[i]);
            rc = 2;
            break;
        }
        StoreRunRow row;
        Timeline tl;
        if (!strcmp(mode, "--env-csv")) {
            rc = csv_env(db, id);
            break;
        }
        if (!strcmp(mode, "--metrics-csv")) {
            int failed = 0;
            if (store_run_get(db, id, &row) == 0) failed = row.failed, store_run_row_free(&row);
            if (failed)
                fprintf(stderr, "pexport: run %lld is a failed run; it has no metrics (see "
                        "pexport --csv %lld for its rows and error)\n", (long long)id, (long long)id);
            else if ((rc = store_metrics_csv(db, id, stdout) == 0 ? 0 : 2))
                fprintf(stderr, "pexport: there is no run %lld in the database\n", (long long)id);
            if (failed) rc = 2;
            break;
        }
        if ((rc = load(db, id, &row, &tl)) != 0) break;
        int64_t pid0 = (int64_t)(i - a) * 100000; // runs apart in the process list
        if (chrome && chrome_run(stdout, id, &row, &tl, pid0, &flow_id, &first) < 0) {
            fprintf(stderr, "pexport: out of memory\n");
            rc = 1;
        }
        if (chrome && row.failed) chrome_failure(stdout, id, &row, &tl, pid0);
        if (!chrome) csv_ops(id, &tl);
        timeline_free(&tl);
        store_run_row_free(&row);
    }
    if (chrome) printf("\n]}\n");
    store_close(db);
    return rc;
}
