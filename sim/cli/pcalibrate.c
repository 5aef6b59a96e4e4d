/* sim/cli/pcalibrate.c: the pcalibrate command: fits psim's [costs] to a measured run and
 * prints the run's scenario with them, which psim loads as it is: stage_forward_ms,
 * stage_backward_ms (and stage_weight_ms for split backwards) are the mean measured op times
 * of each pipeline stage; the links' latency and bandwidth when pexec fitted them (MPI runs),
 * else comm_ms = the mean transfer. Exit status 0; 2 for an unknown or failed run;
 * 1 when the database cannot be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traces/compare.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"
#include "traces/store.h"

/* Puts the measured times into s's [costs]: per pipeline stage (each (device, chunk) mean
 * goes to the stage the schedule placed there), and the mean transfer as comm_ms. Returns 0,
 * or -1 when out of memory or when the schedule cannot be rebuilt. */
static int fit(Scenario *s, const TimelineStats *st, const double *link) {
    const Schedule *sc = sched_find(s->pipeline.schedule);
    SchedParams sp = scenario_sched_params(s);
    SchedIssue issue = {0};
    Program pr;
    if (!sc || sc->build(&sp, &pr, &issue) != 0) return -1;
    int32_t S = program_stages(&pr);
    int split = st->kind_n[OP_W] > 0; // B and W measured apart, else BW holds both
    ScnTimeList *t[3] = {&s->costs.stage_forward, &s->costs.stage_backward, &s->costs.stage_weight};
    const OpKind kinds[3] = {OP_F, split ? OP_B : OP_BW, OP_W};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        free(t[i]->ms);
        t[i]->n = i < 2 || split ? S : 0;
        t[i]->ms = calloc((size_t)S, sizeof *t[i]->ms);
        if (!t[i]->ms) rc = -1;
        for (int32_t d = 0; rc == 0 && d < pr.devices; d++)
            for (int32_t c = 0; c < pr.chunks; c++) {
                size_t k = ((size_t)d * (size_t)pr.chunks + (size_t)c) * OP_KIND_COUNT + kinds[i];
                t[i]->ms[program_stage_of(&pr, d, c)] = st->op_ms[k];
            }
    }
    s->costs.forward_ms = s->costs.backward_ms = s->costs.weight_ms = -1; // the lists replace them
    s->costs.comm_ms = st->xfer_ms;
    if (link) { // a fitted link: alpha-beta on psim's transfer size instead of one mean time
        // pexec moves fp32; psim's transfers are in the model's dtype, so scale the bandwidth
        // to give the same time for psim's bytes
        double bw = link[1] * dtype_bytes(s->model.dtype) / 4.0;
        s->net.intra_latency_us = s->net.inter_latency_us = link[0];
        s->net.intra_bandwidth_gbs = s->net.inter_bandwidth_gbs = bw;
        s->costs.comm_ms = -1;
    }
    program_free(&pr);
    return rc;
}

int main(int argc, char **argv) {
    const char *path = "pipesim.db";
    int arg = 1;
    if (argc == 4 && strcmp(argv[1], "--db") == 0) path = argv[2], arg = 3;
    char *end = NULL;
    int64_t id = arg == argc - 1 ? strtoll(argv[arg], &end, 10) : 0;
    if (!end || *end || id < 1) {
        fprintf(stderr, "usage: pcalibrate [--db PATH] MEASURED_RUN > calibrated.scn\n"
                        "Prints the run's scenario with [costs] fitted to its measured times.\n");
        return 2;
    }
    Store *db;
    char err[SCN_ERR_MAX];
    if (store_open(path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "pcalibrate: %s\n", err);
        return 1;
    }
    StoreRunRow row;
    Timeline tl = {0};
    TimelineStats st = {0};
    int rc = 2;
    if (store_run_get(db, id, &row) != 0) {
        fprintf(stderr, "pcalibrate: there is no run %lld in the database\n", (long long)id);
        store_close(db);
        return 2;
    }
    if (row.failed) {
        fprintf(stderr, "pcalibrate: run %lld is a failed %s run (%s); its rows stop where it "
                "failed, so calibrate on a complete run\n", (long long)id, row.tool, row.error);
        store_run_row_free(&row);
        store_close(db);
        return 2;
    }
    if (store_ops_load(db, id, &tl) != 0 ||
        timeline_stats(&tl, row.devices, row.chunks, row.micro_batches, row.iterations, &st) != 0) {
        fprintf(stderr, "pcalibrate: run %lld has no ops to fit\n", (long long)id);
    } else {
        double link[2];
        int has_link = store_metric_get(db, id, "link_latency_us", &link[0]) == 0 &&
                       store_metric_get(db, id, "link_bandwidth_gbs", &link[1]) == 0 &&
                       link[1] > 0;
        Scenario s, check;
        char name[64];
        snprintf(name, sizeof name, "run %lld", (long long)id);
        char *text = NULL;
        if (scenario_parse(row.resolved, name, NULL, 0, &s, err) != 0) {
            fprintf(stderr, "pcalibrate: %s\n", err);
        } else if (fit(&s, &st, has_link ? link : NULL) != 0 || !(text = scenario_format(&s))) {
            fprintf(stderr, "pcalibrate: out of memory\n"), rc = 1;
        } else if (scenario_parse(text, "the calibrated scenario", NULL, 0, &check, err) != 0) {
            fprintf(stderr, "pcalibrate: %s\n", err); // cannot happen: the fit is consistent
            scenario_free(&check);
        } else {
            printf("; calibrated by pcalibrate from %s run %lld (%s) in %s\n%s", row.tool,
                   (long long)id, row.schedule, path, text);
            scenario_free(&check);
            rc = 0;
        }
        free(text);
        scenario_free(&s);
    }
    timeline_stats_free(&st);
    timeline_free(&tl);
    store_run_row_free(&row);
    store_close(db);
    return rc;
}
