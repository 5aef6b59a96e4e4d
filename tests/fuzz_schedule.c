/* tests/fuzz_schedule.c: libFuzzer target for schedule files (make fuzz), read for p = 2,
 * m = 4 with v and iterations of 1 and 2. Any input must be read or rejected cleanly; a
 * Program the checker accepts must run to the end in the engine (the checker's promise), and
 * written back it must read to the same ops. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/engine/engine.h"
#include "sim/sched/sched_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_checked(const Program *pr) {
    int32_t S = program_stages(pr);
    CostModel c = {.stages = S, .xfer_bytes = 1, .xfer_intra_ns = 3, .xfer_inter_ns = 3,
                   .gpus_per_node = 8};
    c.op_ns = calloc((size_t)S * OP_KIND_COUNT, sizeof *c.op_ns);
    c.op_flops = calloc((size_t)S * OP_KIND_COUNT, sizeof *c.op_flops);
    if (!c.op_ns || !c.op_flops) abort();
    for (int32_t i = 0; i < S * OP_KIND_COUNT; i++) c.op_ns[i] = 1 + i % 5;
    Timeline tl = {0};
    char why[512];
    if (engine_run(pr, &c, pr->iterations, &tl, why, sizeof why) != 0) {
        fprintf(stderr, "a checked Program stalls: %s\n", why);
        abort();
    }
    timeline_free(&tl);
    cost_free(&c);
}

static void round_trip(const Program *pr, const SchedParams *sp) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) abort();
    sched_file_write(f, pr, "fuzz");
    fclose(f);
    Program back;
    char err[512];
    if (sched_file_parse(buf, "back", sp, &back, err, sizeof err) != 0 || back.nops != pr->nops ||
        memcmp(back.ops, pr->ops, (size_t)pr->nops * sizeof *pr->ops) != 0) {
        fprintf(stderr, "written schedule does not read back: %s\n%s\n", err, buf);
        abort();
    }
    program_free(&back);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1), err[512];
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (int v = 1; v <= 2; v++)
        for (int k = 1; k <= 2; k++) {
            SchedParams sp = {.devices = 2, .chunks = v, .micro_batches = 4, .iterations = k};
            Program pr;
            if (sched_file_parse(text, "fuzz.sched", &sp, &pr, err, sizeof err) != 0) continue;
            if (program_check(&pr, err, sizeof err) == 0) {
                run_checked(&pr);
                round_trip(&pr, &sp);
            }
            program_free(&pr);
        }
    free(text);
    return 0;
}
