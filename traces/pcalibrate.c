/* traces/pcalibrate.c: the pcalibrate command: fits psim's [costs] to a measured run and
 * prints the run's scenario with them, which psim loads as it is: forward_ms, backward_ms
 * and weight_ms are the mean measured op times per device stage (a chunk's times times the
 * chunks), comm_ms the mean transfer. Stages are assumed alike, as [costs] prices them all the
 * same. Exit status 0; 2 for an unknown run; 1 when the database cannot be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "scenario.h"
#include "store.h"

/* The --set arguments that put the measured times into [costs]. */
static void costs_sets(const TimelineStats *st, int32_t chunks, char sets[4][64]) {
    double v = (double)chunks;
    int split = st->kind_n[OP_W] > 0; // B and W measured apart, else BW holds both
    snprintf(sets[0], 64, "costs.forward_ms=%.6f", st->kind_ms[OP_F] * v);
    snprintf(sets[1], 64, "costs.backward_ms=%.6f", (split ? st->kind_ms[OP_B] : st->kind_ms[OP_BW]) * v);
    snprintf(sets[2], 64, "costs.weight_ms=%.6f", split ? st->kind_ms[OP_W] * v : 0.0);
    snprintf(sets[3], 64, "costs.comm_ms=%.6f", st->xfer_ms);
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
    if (store_ops_load(db, id, &tl) != 0 ||
        timeline_stats(&tl, row.devices, row.chunks, row.micro_batches, row.iterations, &st) != 0) {
        fprintf(stderr, "pcalibrate: run %lld has no ops to fit\n", (long long)id);
    } else {
        char sets[4][64];
        const char *argsets[4] = {sets[0], sets[1], sets[2], sets[3]};
        costs_sets(&st, row.chunks, sets);
        Scenario s;
        char name[64];
        snprintf(name, sizeof name, "run %lld", (long long)id);
        if (scenario_parse(row.resolved, name, argsets, 4, &s, err) != 0) {
            fprintf(stderr, "pcalibrate: %s\n", err);
        } else {
            char *text = scenario_format(&s);
            if (text) {
                printf("; calibrated by pcalibrate from %s run %lld (%s) in %s\n%s", row.tool,
                       (long long)id, row.schedule, path, text);
                rc = 0;
            } else {
                fprintf(stderr, "pcalibrate: out of memory\n"), rc = 1;
            }
            free(text);
        }
        scenario_free(&s);
    }
    timeline_stats_free(&st);
    timeline_free(&tl);
    store_run_row_free(&row);
    store_close(db);
    return rc;
}
