/* sim/cli/pcalibrate.c: the pcalibrate command: fits psim to a measured run and prints the
 * run's scenario with the fit, which psim loads as it is.
 *   default (the model): the roofline's factor on each kernel class of each pass ([costs]
 *     scale_forward, scale_backward, scale_weight: measured / predicted time of the class,
 *     from the run's measured kernel split) and the per-op overhead (hardware.op_overhead_us:
 *     the ops' time outside their kernels), so the calibration carries to other schedules,
 *     micro-batch counts, partitions, chunks and a split backward; a class the run did not
 *     measure (tp_comm without tensor parallelism, a pass it never ran) keeps factor 1 and
 *     the output says so;
 *   --stages: the mean measured op times of each pipeline stage (stage_forward_ms,
 *     stage_backward_ms and stage_weight_ms for split backwards): this schedule exactly.
 * Both take the links' latency and bandwidth when pexec fitted them (MPI runs), else comm_ms =
 * the mean transfer. Exit status 0; 2 for an unknown, failed or simulated run, or one
 * without a kernel split (default mode); 1 when the database cannot be read. Options by
 * getopt_long, the tools' common set (--db, --json, --quiet, --help/-h, --version). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/model/cost.h"
#include "sim/plan/plan.h"
#include "sim/run/run.h"
#include "sim/run/version.h"
#include "sim/scenario/scenario.h"
#include "sim/sched/schedule.h"
#include "traces/compare.h"
#include "traces/store.h"

/* Puts the measured times into s's [costs]: per pipeline stage (each (device, chunk) mean
 * goes to the stage the schedule placed there), and the mean transfer as comm_ms. Returns 0,
 * or -1 when out of memory or when the schedule cannot be rebuilt. */
static int fit_stages(Scenario *s, const TimelineStats *st) {
    Program pr = {0};
    Plan pl = {0};
    CostModel cm = {0};
    char err[SCN_ERR_MAX];
    if (run_build(s, 0, &pr, &pl, &cm, err, sizeof err) != 0) return -1;
    plan_free(&pl), cost_free(&cm);
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
    program_free(&pr);
    return rc;
}

/* The transfers: a fitted link as alpha-beta on psim's transfer size, else the mean transfer
 * as comm_ms. */
static void fit_links(Scenario *s, const TimelineStats *st, const double *link) {
    s->costs.comm_ms = st->xfer_ms;
    if (!link) return;
    // pexec moves fp32; psim's transfers are in the model's dtype, so scale the bandwidth to
    // give the same time for psim's bytes
    double bw = link[1] * dtype_bytes(s->model.dtype) / 4.0;
    s->net.intra_latency_us = s->net.inter_latency_us = link[0];
    s->net.intra_bandwidth_gbs = s->net.inter_bandwidth_gbs = bw;
    s->costs.comm_ms = -1;
}

static const char *const PASS_PREFIX[3] = {"f", "b", "w"};

/* Sets list t to the COST_SPLIT factors x. Returns 0, or -1 out of memory. */
static int set_scales(ScnTimeList *t, const double *x) {
    free(t->ms);
    t->ms = malloc(COST_SPLIT * sizeof *t->ms);
    if (!t->ms) return t->n = 0, -1;
    memcpy(t->ms, x, COST_SPLIT * sizeof *x);
    t->n = COST_SPLIT;
    return 0;
}

/* The model fit (see the top): measured per pass and class over every device, against the
 * roofline's prediction of the same run without factors. Writes notes (comment lines) of what
 * the run could not determine. Returns 0, 2 with a message in err (no kernel split), or -1
 * when out of memory or the scenario cannot be priced (err says why). */
static int fit_model(Scenario *s, Store *db, int64_t id, char *notes, size_t nlen, char *err,
                     size_t errlen) {
    s->hw.cost_model = COST_ROOFLINE; // what the factors scale; measured times would replace it
    s->costs.forward_ms = s->costs.backward_ms = s->costs.weight_ms = -1;
    ScnTimeList *lists[6] = {&s->costs.stage_forward, &s->costs.stage_backward,
                             &s->costs.stage_weight, &s->costs.scale_forward,
                             &s->costs.scale_backward, &s->costs.scale_weight};
    for (int i = 0; i < 6; i++) free(lists[i]->ms), *lists[i] = (ScnTimeList){0};
    s->hw.op_overhead_us = 0;
    Run r = {0};
    r.scn = *s; // borrowed: not freed with r
    int rc = run_build(s, 1, &r.prog, &r.plan, &r.cost, err, errlen);
    if (rc == 0) rc = run_split(&r);
    if (rc != 0) {
        if (!err[0]) snprintf(err, errlen, "the run's scenario cannot be priced");
        rc = -1;
    }
    double meas[3][COST_SPLIT] = {{0}}, pred[3][COST_SPLIT] = {{0}}, ops = 0;
    for (int32_t d = 0; rc == 0 && d < r.prog.devices; d++) {
        for (int p = 0; p < 3; p++)
            for (int i = 0; i < COST_SPLIT; i++) {
                char name[32];
                double v;
                snprintf(name, sizeof name, "%s_%s_ms", PASS_PREFIX[p], cost_split_name(i));
                if (store_device_metric_get(db, id, d, name, &v) != 0 || v != v) {
                    snprintf(err, errlen, "run %lld has no measured kernel split (device %d's "
                             "%s): the CUDA backend does not time kernels yet; "
                             "use --stages to replay its per-stage times", (long long)id, d,
                             name);
                    rc = 2;
                    break;
                }
                meas[p][i] += v;
                pred[p][i] += r.pass_split ? r.pass_split[(d * 3 + p) * COST_SPLIT + i] : 0;
            }
        ops += (double)(r.prog.start[d + 1] - r.prog.start[d]) / r.prog.iterations;
    }
    double f[3][COST_SPLIT];
    size_t used = 0;
    notes[0] = '\0';
    for (int p = 0; rc == 0 && p < 3; p++)
        for (int i = 0; i < COST_LAUNCH; i++) {
            int known = meas[p][i] > 0 && pred[p][i] > 0;
            f[p][i] = known ? meas[p][i] / pred[p][i] : 1;
            if (!known && used < nlen)
                used += (size_t)snprintf(notes + used, nlen - used, "; %s's %s: %s, factor 1\n",
                                         p == 0 ? "F" : p == 1 ? "B" : "W", cost_split_name(i),
                                         pred[p][i] > 0 ? "not measured by this run"
                                                        : "the model has none here");
        }
    double outside = 0;
    for (int p = 0; p < 3; p++) outside += meas[p][COST_LAUNCH];
    for (int p = 0; rc == 0 && p < 3; p++) f[p][COST_LAUNCH] = 1; // launches: in the kernels' times
    if (rc == 0 && used < nlen)
        snprintf(notes + used, nlen - used, "; launch: each kernel's launch is in its measured "
                 "time; the ops' time outside their kernels is op_overhead_us\n");
    if (rc == 0 && (set_scales(&s->costs.scale_forward, f[0]) != 0 ||
                    set_scales(&s->costs.scale_backward, f[1]) != 0 ||
                    set_scales(&s->costs.scale_weight, f[2]) != 0))
        rc = -1;
    if (rc == 0 && ops > 0) s->hw.op_overhead_us = outside / ops * 1e3;
    free(r.split), free(r.pass_split);
    cost_free(&r.cost), plan_free(&r.plan), program_free(&r.prog);
    return rc;
}

static int usage(int status) {
    fprintf(status ? stderr : stdout,
            "usage: pcalibrate [--db PATH] [--stages] [--json] [--quiet] RUN > calibrated.scn\n"
            "Prints measured run RUN's scenario fitted to its measured times: the roofline's\n"
            "factor on each kernel class of each pass and the per-op overhead, or with --stages\n"
            "each pipeline stage's measured F, B and W times. RUN is a run id, latest-measured\n"
            "or latest (a pexec run; psim's predictions are refused). --json: the scenario as a\n"
            "JSON object {run, tool, schedule, notes, scenario}; --quiet: without the notes of\n"
            "what the run could not determine. --help (-h), --version.\n"
            "Exit status: 0 printed; 1 the database cannot be read; 2 bad input (no such run, a\n"
            "prediction, a failed run, no kernel split).\n");
    return status;
}

/* Prints the calibrated scenario: as the text psim loads, or with json as one object. */
static int print_fit(int json, int quiet, int stages, const StoreRunRow *row, int64_t id,
                     const char *path, const char *notes, const char *text) {
    if (!json) {
        printf("; calibrated by pcalibrate%s from %s run %lld (%s) in %s\n%s%s",
               stages ? " --stages" : "", row->tool, (long long)id, row->schedule, path,
               quiet ? "" : notes, text);
        return 0;
    }
    json_t *o = json_pack("{sIsssssbssss}", "run", (json_int_t)id, "tool", row->tool,
                          "schedule", row->schedule, "stages", stages, "notes", quiet ? "" : notes,
                          "scenario", text);
    char *out = o ? json_dumps(o, JSON_SORT_KEYS) : NULL;
    if (out) printf("%s\n", out);
    free(out);
    json_decref(o);
    return out ? 0 : -1;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'}, {"stages", no_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},     {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},     {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    const char *path = "pipesim.db";
    int stages = 0, json = 0, quiet = 0, ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': path = optarg; break;
        case 's': stages = 1; break;
        case 'j': json = 1; break;
        case 'q': quiet = 1; break;
        case 'h': return usage(0);
        case 'V': printf("pcalibrate %s\n", PIPESIM_VERSION); return 0;
        default:
            fprintf(stderr, "pcalibrate: unknown option or missing value '%s'\n", argv[optind - 1]);
            return usage(2);
        }
    }
    if (optind != argc - 1) return usage(2);
    Store *db;
    char err[SCN_ERR_MAX];
    if (store_open_reader(path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "pcalibrate: %s\n", err);
        return 1;
    }
    int64_t id;
    int resolved = store_run_resolve(db, argv[optind], &id, err, sizeof err);
    if (resolved != 0) {
        fprintf(stderr, "pcalibrate: %s\n", err);
        store_close(db);
        return resolved < 0 ? 1 : 2;
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
    if (strcmp(row.tool, "psim") == 0 || strcmp(row.tool, "pplan") == 0) {
        fprintf(stderr, "pcalibrate: run %lld is a %s prediction, not a measurement; calibrate "
                "on a run pexec measured\n", (long long)id, row.tool);
        store_run_row_free(&row);
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
        char name[64], notes[1024] = "";
        snprintf(name, sizeof name, "run %lld", (long long)id);
        char *text = NULL;
        int frc = 0;
        err[0] = '\0';
        if (scenario_parse(row.resolved, name, NULL, 0, &s, err) != 0) {
            fprintf(stderr, "pcalibrate: %s\n", err);
        } else if ((frc = stages ? fit_stages(&s, &st)
                                 : fit_model(&s, db, id, notes, sizeof notes, err, sizeof err)) != 0) {
            if (frc == 2) fprintf(stderr, "pcalibrate: %s\n", err);
            else fprintf(stderr, "pcalibrate: %s\n", err[0] ? err : "out of memory"), rc = 1;
            scenario_free(&s);
            goto done;
        } else if (fit_links(&s, &st, has_link ? link : NULL), !(text = scenario_format(&s))) {
            fprintf(stderr, "pcalibrate: out of memory\n"), rc = 1;
        } else if (scenario_parse(text, "the calibrated scenario", NULL, 0, &check, err) != 0) {
            fprintf(stderr, "pcalibrate: %s\n", err); // cannot happen: the fit is consistent
            scenario_free(&check);
        } else {
            rc = print_fit(json, quiet, stages, &row, id, path, notes, text) == 0 ? 0 : 1;
            if (rc) fprintf(stderr, "pcalibrate: out of memory\n");
            scenario_free(&check);
        }
        free(text);
        scenario_free(&s);
    }
done:
    timeline_stats_free(&st);
    timeline_free(&tl);
    store_run_row_free(&row);
    store_close(db);
    return rc;
}
