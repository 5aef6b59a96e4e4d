/* sim/cli/pcompare.c: the pcompare command: a predicted run (psim) against a measured one
 * (pexec) of the same scenario, from the store: makespan, mean op time per kind, per device
 * and chunk, transfers, and the collectives both runs have (gradient all-reduces, optimizer
 * steps, tensor-parallel all-reduces; a kind only one run has is named, without an error),
 * with relative errors. Exit status 0; 3 when the makespan error is beyond --tolerance; 2 for
 * bad input (unknown or failed runs, runs of different shapes); 1 when the database cannot be
 * read. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/run/version.h"
#include "traces/compare.h"
#include "traces/store.h"

typedef struct {
    StoreRunRow row;
    Timeline tl;
    TimelineStats st;
    double bubble_rate; // as the run stored it (NaN when absent)
} LoadedRun;

static int load(Store *db, int64_t id, LoadedRun *r) {
    memset(r, 0, sizeof *r);
    if (store_run_get(db, id, &r->row) != 0) {
        fprintf(stderr, "pcompare: there is no run %lld in the database\n", (long long)id);
        return 2;
    }
    if (r->row.failed) {
        fprintf(stderr, "pcompare: run %lld is a failed %s run (%s); its rows stop where it "
                "failed, so compare complete runs\n", (long long)id, r->row.tool, r->row.error);
        store_run_row_free(&r->row);
        return 2;
    }
    if (store_ops_load(db, id, &r->tl) != 0 ||
        timeline_stats(&r->tl, r->row.devices, r->row.chunks, r->row.micro_batches,
                       r->row.iterations, &r->st) != 0) {
        fprintf(stderr, "pcompare: run %lld has no ops to compare\n", (long long)id);
        return 2;
    }
    if (store_metric_get(db, id, "bubble_rate", &r->bubble_rate) != 0) r->bubble_rate = NAN;
    return 0;
}

static void unload(LoadedRun *r) {
    store_run_row_free(&r->row);
    timeline_free(&r->tl);
    timeline_stats_free(&r->st);
}

static void line(const char *what, double pred, double meas) {
    printf("%-28s %13.3f %13.3f %+9.2f %%\n", what, pred, meas, 100 * compare_error(pred, meas));
}

static void report(int64_t pid, const LoadedRun *p, int64_t mid, const LoadedRun *m) {
    printf("# run %lld (%s, %s) predicted vs run %lld (%s, %s) measured%s\n", (long long)pid,
           p->row.tool, p->row.schedule, (long long)mid, m->row.tool, m->row.schedule,
           m->row.iterations > 1 ? "; first iteration left out as warm-up" : "");
    printf("# %-26s %13s %13s %11s\n", "what", "predicted_ms", "measured_ms", "error");
    line("makespan", p->st.makespan_ms, m->st.makespan_ms);
    if (!isnan(p->bubble_rate) && !isnan(m->bubble_rate))
        printf("%-28s %12.2f%% %12.2f%% %+9.2f pt\n", "bubble rate", 100 * p->bubble_rate,
               100 * m->bubble_rate, 100 * (p->bubble_rate - m->bubble_rate));
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        if (!p->st.kind_n[k] || !m->st.kind_n[k]) continue;
        char what[32];
        snprintf(what, sizeof what, "%s (mean)", op_kind_name((OpKind)k));
        line(what, p->st.kind_ms[k], m->st.kind_ms[k]);
        snprintf(what, sizeof what, "%s (spread, sd)", op_kind_name((OpKind)k));
        printf("%-28s %13.3f %13.3f\n", what, p->st.kind_sd_ms[k], m->st.kind_sd_ms[k]);
    }
    if (p->st.xfers && m->st.xfers) line("transfer (mean)", p->st.xfer_ms, m->st.xfer_ms);
    static const struct { Stream s; const char *what; } lanes[] = {
        {STREAM_COLLECTIVE, "allreduce (mean)"}, {STREAM_OPTIMIZER, "optimizer (mean)"},
        {STREAM_TENSOR, "tensor allreduce (mean)"},
        {STREAM_TENSOR_GATHER, "tensor allgather (mean)"},
        {STREAM_TENSOR_SCATTER, "tensor reduce-scatter (mean)"},
        {STREAM_REDUCE_SCATTER, "reduce_scatter (mean)"}, {STREAM_ALL_GATHER, "all_gather (mean)"},
        {STREAM_EXPERT, "expert all-to-all (mean)"}};
    for (size_t i = 0; i < sizeof lanes / sizeof lanes[0]; i++) {
        Stream s = lanes[i].s;
        if (p->st.lane_n[s] && m->st.lane_n[s])
            line(lanes[i].what, p->st.lane_ms[s], m->st.lane_ms[s]);
        else if (p->st.lane_n[s] || m->st.lane_n[s]) // one side only: say so, without an error
            printf("# %s: only the %s run has them (%lld rows, mean %.3f ms)%s\n",
                   stream_name(s), p->st.lane_n[s] ? "predicted" : "measured",
                   (long long)(p->st.lane_n[s] + m->st.lane_n[s]),
                   p->st.lane_n[s] ? p->st.lane_ms[s] : m->st.lane_ms[s],
                   stream_is_tensor(s) && m->st.lane_n[s]
                       ? "; psim places them only with the roofline (not with measured [costs] "
                         "or the flat model)"
                       : "");
    }
    for (int32_t a = 0; a < p->st.devices; a++)
        for (int32_t b = 0; b < p->st.devices; b++) {
            size_t l = (size_t)a * (size_t)p->st.devices + (size_t)b;
            if (!p->st.link_n[l] || !m->st.link_n[l]) continue;
            char what[40];
            snprintf(what, sizeof what, "link %d -> %d (mean)", a, b);
            line(what, p->st.link_ms[l], m->st.link_ms[l]);
        }
    printf("\n# %-6s %5s %4s %13s %13s %11s\n", "device", "chunk", "kind", "predicted_ms",
           "measured_ms", "error");
    for (int32_t d = 0; d < p->st.devices; d++)
        for (int32_t c = 0; c < p->st.chunks; c++)
            for (int k = 0; k < OP_KIND_COUNT; k++) {
                size_t i = ((size_t)d * (size_t)p->st.chunks + (size_t)c) * OP_KIND_COUNT + (size_t)k;
                if (!p->st.op_n[i] || !m->st.op_n[i]) continue;
                printf("%8d %5d %4s %13.3f %13.3f %+9.2f %%\n", d, c, op_kind_name((OpKind)k),
                       p->st.op_ms[i], m->st.op_ms[i],
                       100 * compare_error(p->st.op_ms[i], m->st.op_ms[i]));
            }
}

/* The headline of the comparison as one JSON object on stdout: each run, the makespan and the
 * mean op time of each kind both runs have, with the relative error. Returns 0, -1 out of memory. */
static int report_json(int64_t pid, const LoadedRun *p, int64_t mid, const LoadedRun *m) {
    json_t *kinds = json_object();
    for (int k = 0; kinds && k < OP_KIND_COUNT; k++) {
        if (!p->st.kind_n[k] || !m->st.kind_n[k]) continue;
        json_object_set_new(kinds, op_kind_name((OpKind)k),
                            json_pack("{sfsfsf}", "predicted_ms", p->st.kind_ms[k], "measured_ms",
                                      m->st.kind_ms[k], "error",
                                      compare_error(p->st.kind_ms[k], m->st.kind_ms[k])));
    }
    json_t *o = json_pack("{s{sIssss}s{sIssss}s{sfsfsf}so}", "predicted", "run", (json_int_t)pid,
                          "tool", p->row.tool, "schedule", p->row.schedule, "measured", "run",
                          (json_int_t)mid, "tool", m->row.tool, "schedule", m->row.schedule,
                          "makespan", "predicted_ms", p->st.makespan_ms, "measured_ms",
                          m->st.makespan_ms, "error",
                          compare_error(p->st.makespan_ms, m->st.makespan_ms), "kinds", kinds);
    char *out = o ? json_dumps(o, JSON_SORT_KEYS) : NULL;
    if (out) printf("%s\n", out);
    free(out);
    json_decref(o);
    return out ? 0 : -1;
}

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: pcompare [--db PATH] [--tolerance FRACTION] [--json] [--quiet]\n"
            "                PREDICTED_RUN MEASURED_RUN\n"
            "Compares two runs of one scenario stored by psim and pexec: makespan, mean op\n"
            "time per kind and per device and chunk, transfers, and the all-reduces (ZeRO:\n"
            "reduce-scatters and all-gathers) and optimizer steps both runs have, with relative errors\n"
            "(predicted - measured) / measured. Exit status 3 when the makespan error is\n"
            "beyond the tolerance (e.g. 0.1 for 10%%). A run is an id, latest, latest-predicted\n"
            "or latest-measured. --json: the makespan and mean op times as one JSON object;\n"
            "--quiet: nothing on stdout (the exit status only). --help (-h), --version.\n"
            "Exit status: 0 within the tolerance; 1 the database cannot be read; 2 bad input;\n"
            "3 beyond the tolerance.\n");
    return status;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                             {"tolerance", required_argument, 0, 't'},
                                             {"json", no_argument, 0, 'j'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
    const char *path = "pipesim.db";
    double tolerance = INFINITY;
    int ch, json = 0, quiet = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        if (ch == 't') tolerance = strtod(optarg, &end);
        if (ch == 'd') {
            path = optarg;
        } else if (ch == 'j' || ch == 'q') {
            *(ch == 'j' ? &json : &quiet) = 1;
        } else if (ch == 'V') {
            printf("pcompare %s\n", PIPESIM_VERSION);
            return 0;
        } else if (ch == 'h') {
            return usage(0);
        } else if (ch != 't' || end == optarg || *end || !(tolerance >= 0)) {
            fprintf(stderr, "pcompare: bad option '%s'\n", argv[optind - 1]);
            return usage(2);
        }
    }
    if (optind != argc - 2) return usage(2);
    Store *db;
    char err[512];
    if (store_open_reader(path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "pcompare: %s\n", err);
        return 1;
    }
    int64_t ids[2];
    for (int i = 0; i < 2; i++) {
        int r = store_run_resolve(db, argv[optind + i], &ids[i], err, sizeof err);
        if (r != 0) {
            fprintf(stderr, "pcompare: %s\n", err);
            store_close(db);
            return r < 0 ? 1 : 2;
        }
    }
    LoadedRun p, m;
    int rc = load(db, ids[0], &p);
    if (rc == 0 && (rc = load(db, ids[1], &m)) != 0) unload(&p);
    store_close(db);
    if (rc != 0) return rc;
    if (p.row.devices != m.row.devices || p.row.chunks != m.row.chunks ||
        p.row.micro_batches != m.row.micro_batches || p.row.iterations != m.row.iterations) {
        fprintf(stderr, "pcompare: runs %lld and %lld differ in shape (devices %d/%d, chunks "
                "%d/%d, micro-batches %d/%d, iterations %d/%d); compare runs of one scenario\n",
                (long long)ids[0], (long long)ids[1], p.row.devices, m.row.devices, p.row.chunks,
                m.row.chunks, p.row.micro_batches, m.row.micro_batches, p.row.iterations,
                m.row.iterations);
        rc = 2;
    } else {
        if (json && report_json(ids[0], &p, ids[1], &m) != 0) {
            fprintf(stderr, "pcompare: out of memory\n");
            rc = 1;
        } else if (!json && !quiet) {
            report(ids[0], &p, ids[1], &m);
        }
        double e = compare_error(p.st.makespan_ms, m.st.makespan_ms);
        if (fabs(e) > tolerance) {
            fprintf(stderr, "pcompare: makespan error %+.1f %% is beyond the tolerance of "
                    "%.1f %%\n", 100 * e, 100 * tolerance);
            rc = 3;
        }
    }
    unload(&p), unload(&m);
    return rc;
}
