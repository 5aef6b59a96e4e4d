/* sim/cli/pexport.c: the pexport command: stored runs out of SQLite for other tools.
 *   --chrome RUN...  Chrome Trace Event JSON (Perfetto, chrome://tracing): one process per run
 *                    (pid 1, 2 ... in the order given: predicted and measured side by side), a
 *                    thread per device, stream and peer whose slices never overlap, a fused
 *                    pair (DualPipe's F&B) once with both names, a flow arrow from every send
 *                    to its receive, and a memory counter per device.
 *   --csv RUN        every op of a run as CSV; --metrics-csv RUN its metrics; --env-csv RUN
 *                    what it ran on (versions, host, environment variables; failed runs too).
 * A failed run (pexec stopped by a fault; its rows end where it stopped) is marked: "FAILED" in
 * its process names and an instant event with the error in the trace, a note on stderr for CSV;
 * it has no metrics.
 * Options by getopt_long: --db PATH, one mode, --help, --version.
 * Exit status 0; 2 for bad arguments or unknown runs; 1 when the database cannot be read. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/run/version.h"
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
                           int64_t pid) {
    int64_t at = 0;
    for (size_t i = 0; i < tl->n; i++)
        if (tl->ops[i].end_ns > at) at = tl->ops[i].end_ns;
    fprintf(f, ",\n{\"ph\":\"i\",\"s\":\"g\",\"name\":\"run %lld FAILED\",\"pid\":%lld,\"tid\":0,"
            "\"ts\":%.3f,\"args\":{\"error\":\"", (long long)id, (long long)pid, us(at));
    json_text(f, row->error);
    fprintf(f, "\"}}");
}

/* Tracks: one thread per (device, stream, peer) and lane. A row goes to the first lane of its
 * track whose last slice has ended, so no two slices of one thread overlap (Perfetto drops a
 * slice that overlaps its neighbour without nesting in it): receives from one peer in flight
 * at once take lanes of their own. */
typedef struct {
    const TimelineOp *op;
    const TimelineOp *fused; // a second compute row over the same interval (DualPipe's F&B)
    int32_t tid;             // 1.. in device, stream, peer, lane order
} Slice;

static int slice_cmp(const void *pa, const void *pb) {
    const TimelineOp *a = ((const Slice *)pa)->op, *b = ((const Slice *)pb)->op;
    if (a->device != b->device) return a->device < b->device ? -1 : 1;
    if (a->stream != b->stream) return a->stream < b->stream ? -1 : 1;
    if (a->peer != b->peer) return a->peer < b->peer ? -1 : 1;
    if (a->start_ns != b->start_ns) return a->start_ns < b->start_ns ? -1 : 1;
    if (a->end_ns != b->end_ns) return a->end_ns < b->end_ns ? -1 : 1;
    return a->kind < b->kind ? -1 : a->kind > b->kind;
}

/* What a thread of stream s is called, after "dN ". */
static const char *track_name(int s) {
    static const char *const NAME[STREAM_COUNT] = {
        "compute", "send", "recv", "all-reduce", "optimizer", "tensor all-reduce",
        "tensor all-gather", "tensor reduce-scatter", "reduce-scatter", "all-gather",
        "expert all-to-all"};
    return s >= 0 && s < STREAM_COUNT ? NAME[s] : "?";
}

/* A slice's name: what it is, in the words of the stream ("F mb 3", "all-reduce chunk 1"). */
static void slice_name(FILE *f, const TimelineOp *r) {
    const char *k = op_kind_name((OpKind)r->kind);
    switch (r->stream) {
    case STREAM_SEND: fprintf(f, "%s mb %d to d%d", k, r->micro_batch, r->peer); break;
    case STREAM_RECV: fprintf(f, "%s mb %d from d%d", k, r->micro_batch, r->peer); break;
    case STREAM_COLLECTIVE: case STREAM_REDUCE_SCATTER: case STREAM_ALL_GATHER:
        fprintf(f, "%s chunk %d", track_name(r->stream), r->chunk); break;
    case STREAM_OPTIMIZER: fprintf(f, "optimizer step chunk %d", r->chunk); break;
    case STREAM_TENSOR: case STREAM_TENSOR_GATHER: case STREAM_TENSOR_SCATTER: case STREAM_EXPERT:
        fprintf(f, "%s %s mb %d", track_name(r->stream), k, r->micro_batch); break;
    default: fprintf(f, "%s mb %d", k, r->micro_batch); break;
    }
}

/* Sorts the rows into slices on tracks, fuses compute pairs and names the threads; *ns slices.
 * Returns NULL when out of memory. */
static Slice *chrome_tracks(FILE *f, const Timeline *tl, int64_t pid, size_t *ns) {
    Slice *sl = malloc((tl->n ? tl->n : 1) * sizeof *sl);
    int64_t *lane_end = malloc((tl->n ? tl->n : 1) * sizeof *lane_end); // per lane of a track
    if (!sl || !lane_end) return free(sl), free(lane_end), NULL;
    for (size_t i = 0; i < tl->n; i++) sl[i] = (Slice){.op = &tl->ops[i], .fused = NULL, .tid = 0};
    qsort(sl, tl->n, sizeof *sl, slice_cmp);
    size_t n = 0, lanes = 0;
    int32_t tid = 0, base = 0; // the track's first lane's tid
    for (size_t i = 0; i < tl->n; i++) {
        const TimelineOp *r = sl[i].op;
        if (n && r->stream == STREAM_COMPUTE && sl[n - 1].op->stream == STREAM_COMPUTE &&
            !sl[n - 1].fused && sl[n - 1].op->device == r->device &&
            sl[n - 1].op->start_ns == r->start_ns && sl[n - 1].op->end_ns == r->end_ns) {
            sl[n - 1].fused = r; // once, with both names
            continue;
        }
        const TimelineOp *q = n ? sl[n - 1].op : NULL;
        if (!q || q->device != r->device || q->stream != r->stream || q->peer != r->peer)
            lanes = 0, base = tid + 1; // a new track
        size_t l = 0;
        while (l < lanes && lane_end[l] > r->start_ns) l++;
        if (l == lanes) { // a new lane: its thread, named and placed after the one before
            lane_end[lanes++] = r->end_ns;
            tid = base + (int32_t)l;
            fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%lld,\"tid\":%d,"
                    "\"args\":{\"name\":\"d%d %s", (long long)pid, tid, r->device,
                    track_name(r->stream));
            if (r->stream == STREAM_SEND || r->stream == STREAM_RECV)
                fprintf(f, " %s d%d", r->stream == STREAM_SEND ? "to" : "from", r->peer);
            if (l) fprintf(f, " (%zu)", l + 1);
            fprintf(f, "\"}},\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":%lld,"
                    "\"tid\":%d,\"args\":{\"sort_index\":%d}}", (long long)pid, tid, tid);
        }
        lane_end[l] = r->end_ns;
        sl[n++] = (Slice){.op = r, .fused = NULL, .tid = base + (int32_t)l};
    }
    free(lane_end);
    *ns = n;
    return sl;
}

static int xfer_slice_cmp(const void *pa, const void *pb) {
    return xfer_cmp(&((const Slice *const *)pa)[0]->op, &((const Slice *const *)pb)[0]->op);
}

/* One run as one process (pid 1, 2 ... in the order given): a thread per device, stream and
 * peer, a slice per row (a fused pair once), a flow arrow from each send to its receive, and
 * a counter of each device's memory. Returns the flows written, or -1 when out of memory. */
static int64_t chrome_run(FILE *f, int64_t id, const StoreRunRow *row, const Timeline *tl,
                          const MemTrace *mem, int64_t pid, int64_t *flow_id, int *first) {
    fprintf(f, "%s\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%lld,\"args\":{\"name\":"
            "\"run %lld ", *first ? "" : ",", (long long)pid, (long long)id);
    json_text(f, row->tool); // stored text: a crafted database must not break the JSON
    fputc(' ', f);
    json_text(f, row->schedule);
    fprintf(f, "%s%s\"}},\n{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":%lld,"
            "\"args\":{\"sort_index\":%lld}}", row->failed ? " FAILED" : "",
            !strcmp(row->tool, "psim") ? " (predicted)" : !strcmp(row->tool, "pexec") ? " (measured)" : "",
            (long long)pid, (long long)pid);
    *first = 0;
    size_t ns = 0;
    Slice *sl = chrome_tracks(f, tl, pid, &ns);
    const Slice **x = malloc((ns ? ns : 1) * sizeof *x);
    if (!sl || !x) return free(sl), free(x), -1;
    size_t nx = 0;
    for (size_t i = 0; i < ns; i++) {
        const TimelineOp *r = sl[i].op, *g = sl[i].fused;
        fprintf(f, ",\n{\"ph\":\"X\",\"name\":\"");
        slice_name(f, r);
        if (g) fputs(" + ", f), slice_name(f, g);
        fprintf(f, "\",\"cat\":\"%s\",\"pid\":%lld,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,"
                "\"args\":{\"device\":%d,\"chunk\":%d,\"micro_batch\":%d,\"kind\":\"%s\"",
                stream_name((Stream)r->stream), (long long)pid, sl[i].tid, us(r->start_ns),
                us(r->end_ns - r->start_ns), r->device, r->chunk, r->micro_batch,
                op_kind_name((OpKind)r->kind));
        if (r->peer >= 0) fprintf(f, ",\"peer\":%d", r->peer);
        if (r->bytes) fprintf(f, ",\"bytes\":%lld", (long long)r->bytes);
        if (g) fprintf(f, ",\"fused_kind\":\"%s\",\"fused_micro_batch\":%d,\"fused_chunk\":%d",
                       op_kind_name((OpKind)g->kind), g->micro_batch, g->chunk);
        fputs("}}", f);
        if (r->stream == STREAM_SEND || r->stream == STREAM_RECV) x[nx++] = &sl[i];
    }
    qsort(x, nx, sizeof *x, xfer_slice_cmp);
    int64_t flows = 0;
    for (size_t i = 0; i + 1 < nx; i++) { // a send and its receive sort next to each other
        const TimelineOp *s = x[i]->op, *r = x[i + 1]->op;
        if (s->stream != STREAM_SEND || r->stream != STREAM_RECV || s->device != r->peer ||
            s->peer != r->device || s->micro_batch != r->micro_batch || s->kind != r->kind ||
            s->chunk != r->chunk)
            continue;
        // both ends inside their slices (the start of each), so each binds to its own
        fprintf(f, ",\n{\"ph\":\"s\",\"name\":\"transfer\",\"cat\":\"flow\",\"id\":%lld,\"pid\":%lld,"
                "\"tid\":%d,\"ts\":%.3f}", (long long)*flow_id, (long long)pid, x[i]->tid,
                us(s->start_ns));
        fprintf(f, ",\n{\"ph\":\"f\",\"bp\":\"e\",\"name\":\"transfer\",\"cat\":\"flow\",\"id\":%lld,"
                "\"pid\":%lld,\"tid\":%d,\"ts\":%.3f}", (long long)(*flow_id)++, (long long)pid,
                x[i + 1]->tid, us(r->start_ns));
        flows++, i++;
    }
    for (size_t i = 0; mem && i < mem->n; i++)
        fprintf(f, ",\n{\"ph\":\"C\",\"name\":\"memory d%d (GiB)\",\"pid\":%lld,\"ts\":%.3f,"
                "\"args\":{\"GiB\":%.6f}}", mem->s[i].device, (long long)pid, us(mem->s[i].t_ns),
                (double)mem->s[i].bytes / 1073741824.0);
    free(x), free(sl);
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

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: pexport [--db PATH] --chrome RUN... | --csv RUN | --metrics-csv RUN |\n"
            "               --env-csv RUN\n"
            "Writes stored runs as Chrome Trace Event JSON (open it in ui.perfetto.dev: a\n"
            "process per run, a thread per device, stream and peer, memory counters) or as CSV,\n"
            "on stdout. --json is --chrome (its JSON). A RUN is an id, latest, latest-predicted\n"
            "or latest-measured. --quiet (pexport has no notes to leave out), --help (-h),\n"
            "--version. Exit status: 0 written; 1 the database cannot be read; 2 bad input.\n");
    return status;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},   {"chrome", no_argument, 0, 'c'},
        {"csv", no_argument, 0, 'o'},        {"metrics-csv", no_argument, 0, 'm'},
        {"env-csv", no_argument, 0, 'e'},    {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'v'},    {"json", no_argument, 0, 'c'},
        {"quiet", no_argument, 0, 'q'},      {0, 0, 0, 0}};
    const char *path = "pipesim.db", *mode = NULL;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': path = optarg; break;
        case 'q': break; // the tools' common flag: pexport prints nothing but its output anyway
        case 'c': case 'o': case 'm': case 'e':
            if (mode) {
                fprintf(stderr, "pexport: give one of --chrome, --csv, --metrics-csv, --env-csv\n");
                return usage(2);
            }
            mode = ch == 'c' ? "--chrome" : ch == 'o' ? "--csv" : ch == 'm' ? "--metrics-csv" : "--env-csv";
            break;
        case 'h': return usage(0);
        case 'v': printf("pexport %s\n", PIPESIM_VERSION); return 0;
        default:
            fprintf(stderr, "pexport: unknown option '%s'\n", argv[optind - 1]);
            return usage(2);
        }
    }
    if (!mode) return usage(2);
    int chrome = strcmp(mode, "--chrome") == 0, a = optind;
    if (a >= argc || (!chrome && a + 1 != argc)) return usage(2);
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
        int64_t id;
        if ((rc = store_run_resolve(db, argv[i], &id, err, sizeof err)) != 0) {
            fprintf(stderr, "pexport: %s\n", err);
            rc = rc < 0 ? 1 : 2;
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
        int64_t pid = (int64_t)(i - a) + 1; // processes from 1, in the order given
        MemTrace mem = {0};
        int hasmem = chrome && store_memory_load(db, id, &mem) == 0; // a failed run has none
        if (chrome && chrome_run(stdout, id, &row, &tl, hasmem ? &mem : NULL, pid, &flow_id,
                                 &first) < 0) {
            fprintf(stderr, "pexport: out of memory\n");
            rc = 1;
        }
        if (hasmem) memtrace_free(&mem);
        if (chrome && row.failed) chrome_failure(stdout, id, &row, &tl, pid);
        if (!chrome) csv_ops(id, &tl);
        timeline_free(&tl);
        store_run_row_free(&row);
    }
    if (chrome) printf("\n]}\n");
    store_close(db);
    return rc;
}
