/* sim/program/program.h: the Program, the contract between schedule generators, the simulator and
 * the executor: for every device, the ordered list of compute ops it runs. Sends and receives
 * are implied: an op's input comes from the op that produced it on the stage before (forward)
 * or after (backward); when that op sits on another device, the data crosses a link.
 * Also the Program checker. Timing is not here (engine.h). */
#ifndef PIPESIM_PROGRAM_H
#define PIPESIM_PROGRAM_H

#include <stddef.h>
#include <stdint.h>


/* What a compute op does. F = forward, B = input gradient, W = weight gradient,
 * BW = the whole backward as one op (schedules without a B/W split). */
typedef enum { OP_F = 0, OP_B = 1, OP_W = 2, OP_BW = 3, OP_KIND_COUNT } OpKind;

/* Names used in storage, JSON and tables: "F", "B", "W", "BW". op_kind_parse returns the
 * OpKind, or -1 for an unknown name. */
const char *op_kind_name(OpKind k);
int op_kind_parse(const char *name);

/* How (device, chunk) maps to a pipeline stage (0 = holds the first layers).
 * LOOPED: stage = chunk*p + device (GPipe, 1F1B, Megatron interleaved).
 * VSHAPE: chunk 0 is stage device, chunk 1 is stage 2p-1-device (zero-bubble V schedules).
 * EXPLICIT: set stage by stage with program_place (custom schedules).
 * DUAL: two model copies (pipes) of p stages each, run in opposite directions (DualPipe):
 *       chunk 0 of device d is stage d of pipe 0, chunk 1 is stage p-1-d of pipe 1 (global
 *       stage p + p-1-d). */
typedef enum { PLACE_LOOPED = 0, PLACE_VSHAPE = 1, PLACE_EXPLICIT = 2, PLACE_DUAL = 3 } Placement;

/* ProgramOp.flags. FUSED_NEXT: this op and the next op of the device run as one overlapped
 * op (DualPipe's forward-and-backward chunk pair): both start when both inputs are ready, and
 * the pair takes the fused cost (cost.h). */
enum { OPF_FUSED_NEXT = 1 };

typedef struct {
    int32_t micro_batch; // 0..m-1
    int16_t chunk;       // 0..v-1, model chunk on this device
    uint8_t kind;        // OpKind
    uint8_t flags;       // OPF_*
} ProgramOp;

typedef struct {
    int32_t devices;       // p
    int32_t chunks;        // v
    int32_t micro_batches; // m, all iterations this Program covers
    int32_t iterations;    // iterations it covers with no flush between them (async
                           //   schedules: all of them; others 1, the engine repeats it)
    int32_t pipes;         // independent stage chains: 1, or 2 for placement DUAL (m even).
                           //   The stages are split into pipes blocks of stages/pipes;
                           //   micro-batch j runs in block j / (m/pipes) only.
    Placement placement;
    ProgramOp *ops; // owned: every device's ops back to back
    int64_t *start; // owned: devices+1 offsets; device d runs ops[start[d] .. start[d+1])
    int64_t nops;   // ops in all, = start[devices] once built
    int32_t *stage_of;  // owned: [device*chunks + chunk] -> stage
    int32_t *device_of; // owned: [stage] -> device
    int32_t *chunk_of;  // owned: [stage] -> chunk on that device
    int32_t *weight_versions; // owned, NULL = one each: [device] weight copies a device keeps
                              //   at its peak (PipeDream stashing, 2BW double buffering)
    int64_t cap_;   // building: room for this many ops
    int32_t cur_;   // building: the device being filled
} Program;

/* program_init allocates room for at most total_ops ops, all devices empty; ops are then
 * appended with program_push in device order (0, 1, ...; a device may stay empty), and
 * program_end closes the Program. Returns 0, or -1 when out of memory. Each step is O(1)
 * amortised. program_free releases and zeroes. */
int program_init(Program *pr, int32_t devices, int32_t chunks, int32_t micro_batches,
                 Placement placement, int64_t total_ops);

void program_push(Program *pr, int32_t device, OpKind kind, int32_t micro_batch, int32_t chunk);
void program_end(Program *pr);
void program_free(Program *pr);

/* program_place puts stage on (device, chunk), for PLACE_EXPLICIT; every (device, chunk) must
 * get a distinct stage before the Program is used. */
void program_place(Program *pr, int32_t device, int32_t chunk, int32_t stage);

static inline int64_t program_len(const Program *pr, int32_t d) {
    return pr->start[d + 1] - pr->start[d];
}
static inline int32_t program_stages(const Program *pr) { return pr->devices * pr->chunks; }
/* Stages in one pipe, and the pipe a stage or a micro-batch belongs to. */
static inline int32_t program_pipe_stages(const Program *pr) {
    return program_stages(pr) / pr->pipes;
}
static inline int32_t program_stage_pipe(const Program *pr, int32_t stage) {
    return stage / program_pipe_stages(pr);
}
static inline int32_t program_mb_pipe(const Program *pr, int32_t micro_batch) {
    return micro_batch / (pr->micro_batches / pr->pipes);
}

/* Stage of (device, chunk) and the inverse: table lookups, O(1). */
static inline int32_t program_stage_of(const Program *pr, int32_t device, int32_t chunk) {
    return pr->stage_of[device * pr->chunks + chunk];
}
static inline void program_device_of(const Program *pr, int32_t stage, int32_t *device,
                                     int32_t *chunk) {
    *device = pr->device_of[stage];
    *chunk = pr->chunk_of[stage];
}

/* The stage whose output an op of this kind at this stage consumes: the previous stage for F,
 * the next stage for B and BW (the gradient), -1 for none (F of a pipe's first stage, B/BW of
 * its last, W). The producer's op is F for F, and B or BW for B/BW. */
static inline int32_t program_input_stage(const Program *pr, OpKind kind, int32_t stage) {
    int32_t per = pr->pipes == 1 ? program_stages(pr) : program_pipe_stages(pr); // hot path:
    int32_t pos = pr->pipes == 1 ? stage : stage % per;                         // no division
    if (kind == OP_F) return pos > 0 ? stage - 1 : -1;
    if (kind == OP_B || kind == OP_BW) return pos + 1 < per ? stage + 1 : -1;
    return -1;
}

/* The stage that consumes the output of an op of this kind at this stage: the next stage for
 * F, the previous one for B and BW, -1 for none (the ends of a pipe, W). */
static inline int32_t program_output_stage(const Program *pr, OpKind kind, int32_t stage) {
    int32_t per = pr->pipes == 1 ? program_stages(pr) : program_pipe_stages(pr);
    int32_t pos = pr->pipes == 1 ? stage : stage % per;
    if (kind == OP_F) return pos + 1 < per ? stage + 1 : -1;
    if (kind == OP_B || kind == OP_BW) return pos > 0 ? stage - 1 : -1;
    return -1;
}

/* program_check: every (micro-batch, stage) has exactly one F and either one BW or one B and
 * one W, on the device that holds that stage; on each device, F precedes B/BW and B precedes
 * W of the same (micro-batch, chunk); the ops can all complete (the dependency graph
 * across devices, with each device's order, has no cycle); and between every two devices the
 * receiver consumes the activations, and separately the gradients, in the order the sender
 * produces them, as NCCL's untagged send/recv needs on the one channel (communicator) an
 * executor keeps for each (ranks that disagree on the order hang or swap tensors). Returns 0, or -1 with the first
 * offending op and the reason in why ("device 2 op 7 (B mb 3 chunk 0): ..."). O(ops). */
int program_check(const Program *pr, char *why, size_t whylen);

/* Formats "F mb 3 chunk 1" style names of an op into buf; returns buf. */
const char *program_op_str(const ProgramOp *op, char *buf, size_t len);

#endif
