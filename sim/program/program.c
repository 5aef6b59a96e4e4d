/* sim/program/program.c: building Programs and checking them before anything runs. The checker
 * is a zero-time replay: it proves every op can complete, in O(ops), without timing. */
#include "sim/program/program.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const KIND_NAMES[OP_KIND_COUNT] = {"F", "B", "W", "BW"};

const char *op_kind_name(OpKind k) { return (unsigned)k < OP_KIND_COUNT ? KIND_NAMES[k] : "?"; }

int op_kind_parse(const char *name) {
    for (int k = 0; k < OP_KIND_COUNT; k++)
        if (strcmp(KIND_NAMES[k], name) == 0) return k;
    return -1;
}

int program_init(Program *pr, int32_t devices, int32_t chunks, int32_t micro_batches,
                 Placement placement, int64_t total_ops) {
    memset(pr, 0, sizeof *pr);
    pr->devices = devices;
    pr->chunks = chunks;
    pr->micro_batches = micro_batches;
    pr->placement = placement;
    pr->iterations = 1;
    pr->pipes = 1;
    pr->cap_ = total_ops;
    size_t stages = (size_t)devices * (size_t)chunks;
    pr->ops = malloc((size_t)(total_ops > 0 ? total_ops : 1) * sizeof *pr->ops);
    pr->start = calloc((size_t)devices + 1, sizeof *pr->start);
    pr->stage_of = malloc(stages * sizeof *pr->stage_of);
    pr->device_of = malloc(stages * sizeof *pr->device_of);
    pr->chunk_of = malloc(stages * sizeof *pr->chunk_of);
    if (placement == PLACE_DUAL) pr->pipes = 2;
    if (!pr->ops || !pr->start || !pr->stage_of || !pr->device_of || !pr->chunk_of) {
        program_free(pr);
        return -1;
    }
    for (int32_t d = 0; d < devices; d++)
        for (int32_t c = 0; c < chunks; c++) {
            int32_t st = c * devices + d; // EXPLICIT starts looped until placed
            if ((placement == PLACE_VSHAPE || placement == PLACE_DUAL) && c == 1)
                st = 2 * devices - 1 - d;
            program_place(pr, d, c, st);
        }
    return 0;
}

void program_place(Program *pr, int32_t device, int32_t chunk, int32_t stage) {
    pr->stage_of[device * pr->chunks + chunk] = stage;
    pr->device_of[stage] = device;
    pr->chunk_of[stage] = chunk;
}

/* Devices are filled in order: moving on to a later device first closes the ones between. */
void program_push(Program *pr, int32_t device, OpKind kind, int32_t micro_batch,
                  int32_t chunk) {
    assert(device >= pr->cur_ && device < pr->devices && pr->nops < pr->cap_);
    while (pr->cur_ < device) pr->start[++pr->cur_] = pr->nops;
    pr->ops[pr->nops++] = (ProgramOp){.micro_batch = micro_batch, .chunk = (int16_t)chunk,
                                      .kind = (uint8_t)kind};
}

void program_end(Program *pr) {
    while (pr->cur_ < pr->devices) pr->start[++pr->cur_] = pr->nops;
}

void program_free(Program *pr) {
    free(pr->ops);
    free(pr->start);
    free(pr->stage_of);
    free(pr->device_of);
    free(pr->chunk_of);
    free(pr->weight_versions);
    memset(pr, 0, sizeof *pr);
}

const char *program_op_str(const ProgramOp *op, char *buf, size_t len) {
    snprintf(buf, len, "%s mb %d chunk %d", op_kind_name((OpKind)op->kind), op->micro_batch,
             op->chunk);
    return buf;
}

/* Bits recorded per (stage, micro-batch) while checking. */
enum { HAVE_F = 1, HAVE_B = 2, HAVE_W = 4, HAVE_BW = 8 };
static const uint8_t KIND_BIT[OP_KIND_COUNT] = {HAVE_F, HAVE_B, HAVE_W, HAVE_BW};

static int fail_at(char *why, size_t len, const Program *pr, int32_t d, int64_t i,
                   const char *reason) {
    char op[64];
    snprintf(why, len, "device %d op %lld (%s): %s", d, (long long)(i - pr->start[d]),
             program_op_str(&pr->ops[i], op, sizeof op), reason);
    return -1;
}

/* Why op i of device d is a bad start of a fused pair, or NULL when it is fine (or is not
 * one). A pair is a forward and a backward (B or BW) of two different micro-batches next to
 * each other on one device; they start together, which is safe since neither consumes the
 * other's output. Within one micro-batch it is not: a backward at any stage needs the whole
 * forward, this stage's included, so the pair could never start. */
static const char *fused_pair_error(const Program *pr, int32_t d, int64_t i) {
    const ProgramOp *a = &pr->ops[i];
    if (a->flags & ~OPF_FUSED_NEXT) return "has unknown flags";
    if (!(a->flags & OPF_FUSED_NEXT)) return NULL;
    if (i + 1 >= pr->start[d + 1]) return "is fused with a next op that does not exist";
    const ProgramOp *b = a + 1;
    if (b->flags & OPF_FUSED_NEXT) return "is fused with an op that is fused in turn";
    int fa = a->kind == OP_F, fb = b->kind == OP_F;
    int ba = a->kind == OP_B || a->kind == OP_BW, bb = b->kind == OP_B || b->kind == OP_BW;
    if (!((fa && bb) || (ba && fb)))
        return "is fused with an op that is not its counterpart; a fused pair is one forward "
               "and one backward (B or BW)";
    if (a->micro_batch == b->micro_batch)
        return "is fused with an op of its own micro-batch, whose backward needs all its "
               "forwards: fused ops would wait on each other; fuse two micro-batches' ops";
    return NULL;
}

/* Pass 1: ranges, duplicates and per-device order; have[] gets the kinds seen. */
static int check_ops(const Program *pr, uint8_t *have, char *why, size_t len) {
    int32_t m = pr->micro_batches;
    for (int32_t d = 0; d < pr->devices; d++) {
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            if (op->kind >= OP_KIND_COUNT || op->micro_batch < 0 || op->micro_batch >= m ||
                op->chunk < 0 || op->chunk >= pr->chunks)
                return fail_at(why, len, pr, d, i, "kind, micro-batch or chunk out of range");
            const char *pair = fused_pair_error(pr, d, i);
            if (pair) return fail_at(why, len, pr, d, i, pair);
            int32_t st = program_stage_of(pr, d, op->chunk);
            if (pr->pipes > 1 && // one pipe: always the same; this skips two divisions
                program_stage_pipe(pr, st) != program_mb_pipe(pr, op->micro_batch))
                return fail_at(why, len, pr, d, i, "the micro-batch runs in the other pipe");
            uint8_t *h = &have[(size_t)st * m + op->micro_batch];
            uint8_t bit = KIND_BIT[op->kind];
            if (*h & bit) return fail_at(why, len, pr, d, i, "appears twice");
            if (op->kind != OP_F && !(*h & HAVE_F))
                return fail_at(why, len, pr, d, i, "comes before its forward on this device");
            if (op->kind == OP_W && !(*h & HAVE_B))
                return fail_at(why, len, pr, d, i, "comes before its B on this device");
            if ((op->kind == OP_BW && (*h & (HAVE_B | HAVE_W))) ||
                (op->kind == OP_B && (*h & HAVE_BW)))
                return fail_at(why, len, pr, d, i, "mixes a split (B, W) and a whole (BW) backward");
            *h |= bit;
        }
    }
    return 0;
}

/* Pass 2: every (stage, micro-batch) is complete. */
static int check_complete(const Program *pr, const uint8_t *have, char *why, size_t len) {
    int32_t m = pr->micro_batches;
    for (int32_t s = 0; s < program_stages(pr); s++) {
        for (int32_t mb = 0; mb < m; mb++) {
            if (pr->pipes > 1 && program_mb_pipe(pr, mb) != program_stage_pipe(pr, s)) continue;
            uint8_t h = have[(size_t)s * m + mb];
            int32_t d, c;
            program_device_of(pr, s, &d, &c);
            const char *missing = !(h & HAVE_F)                           ? "F"
                                  : (h & HAVE_BW)                         ? NULL
                                  : !(h & HAVE_B)                         ? "B or BW"
                                  : !(h & HAVE_W)                         ? "W"
                                                                          : NULL;
            if (missing) {
                snprintf(why, len, "device %d has no %s for mb %d chunk %d (stage %d)", d,
                         missing, mb, c, s);
                return -1;
            }
        }
    }
    return 0;
}

/* Where an op of one kind on one (device, chunk) reads and writes, worked out once per check
 * so passes 3 and 4 do table lookups per op. Indexed [(device*chunks + chunk)*OP_KIND_COUNT +
 * kind]; "cells" index have[]/done[] as stage*m + micro-batch. */
typedef struct {
    int32_t own;      // cell of micro-batch 0 at this stage
    int32_t in;       // cell of micro-batch 0 at the input stage, -1 for none
    int32_t out;      // cell of micro-batch 0 at the consuming stage, -1 for none
    int32_t wake;     // the consumer's device when it is another device, else -1
    int32_t send_ch;  // channel the output goes out on (another device), else -1
    int32_t recv_ch;  // channel the input comes in on (another device), else -1
    uint8_t need;     // 1 forward, 2 gradient: the done[] bit of the input and of the output
} Hop;

static const Hop *hop_of(const Hop *hops, const Program *pr, int32_t d, const ProgramOp *op) {
    return &hops[((size_t)d * pr->chunks + op->chunk) * OP_KIND_COUNT + op->kind];
}

/* Whether op's cross-device input is done in the replay (bit 1 forward, 2 gradient). */
static int replay_ready(const Hop *h, const ProgramOp *op, const uint8_t *done) {
    return h->in < 0 || (done[h->in + op->micro_batch] & h->need);
}

/* Pass 3: zero-time replay. done[] marks (stage, mb) outputs produced: bit 1 forward,
 * bit 2 input gradient. A device advances while its next op's cross-device input is done;
 * finishing an op wakes the device that consumes it. Each op is finished once: O(ops). */
static int check_progress(const Program *pr, const Hop *hops, uint8_t *done, char *why,
                          size_t len) {
    int32_t p = pr->devices;
    size_t np = p > 0 ? (size_t)p : 1;
    int64_t *pc = malloc(np * sizeof *pc);
    int32_t *work = malloc(np * 2 * sizeof *work);
    uint8_t *queued = calloc(np, 1);
    if (!pc || !work || !queued) {
        free(pc), free(work), free(queued);
        snprintf(why, len, "out of memory");
        return -1;
    }
    int64_t nwork = 0;
    for (int32_t d = 0; d < p; d++) {
        pc[d] = pr->start[d];
        work[nwork++] = d;
        queued[d] = 1;
    }
    while (nwork > 0) {
        int32_t d = work[--nwork];
        queued[d] = 0;
        int64_t i = pc[d], stop = pr->start[d + 1];
        for (; i < stop; i++) {
            const ProgramOp *op = &pr->ops[i];
            const Hop *h = hop_of(hops, pr, d, op);
            if (!replay_ready(h, op, done) ||
                ((op->flags & OPF_FUSED_NEXT) &&
                 !replay_ready(hop_of(hops, pr, d, op + 1), op + 1, done)))
                break;
            if (op->kind == OP_W) continue;
            done[h->own + op->micro_batch] |= h->need;
            if (h->wake >= 0 && !queued[h->wake]) {
                work[nwork++] = h->wake;
                queued[h->wake] = 1;
            }
        }
        pc[d] = i;
    }
    int rc = 0;
    for (int32_t d = 0; d < p && rc == 0; d++) {
        if (pc[d] == pr->start[d + 1]) continue;
        const ProgramOp *op = &pr->ops[pc[d]];
        if (replay_ready(hop_of(hops, pr, d, op), op, done)) op++, pc[d]++; // a fused pair's second op waits
        int32_t in = program_input_stage(pr, (OpKind)op->kind,
                                         program_stage_of(pr, d, op->chunk));
        int32_t id, ic;
        program_device_of(pr, in, &id, &ic);
        char reason[160];
        snprintf(reason, sizeof reason,
                 "can never start: it waits for %s of mb %d from device %d chunk %d, which "
                 "is ordered behind ops that wait in turn (deadlock)",
                 op->kind == OP_F ? "the forward" : "the gradient", op->micro_batch, id, ic);
        rc = fail_at(why, len, pr, d, pc[d], reason);
    }
    free(pc), free(work), free(queued);
    return rc;
}

/* Channels: a directed device pair and the kind of data (activations or gradients). Executors
 * keep one ordered channel per direction of data (e.g. one NCCL communicator for activations,
 * one for gradients), so only messages of one channel must agree on order. They are numbered
 * through a small open-addressing table while the Hop table is built (pipelines talk to few
 * peers: at most 2 channels per stage boundary). */
typedef struct {
    int64_t *keys; // channel_key(), 0 = empty
    int32_t *ids;
    size_t cap;    // a power of two
    int32_t n;     // channels numbered
} Channels;

static int64_t channel_key(int32_t p, int32_t src, int32_t dst, OpKind kind) {
    return ((int64_t)src * p + dst) * 2 + (kind != OP_F) + 1;
}

static int32_t channel_id(Channels *t, int64_t key) {
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ULL >> 17) & (t->cap - 1);
    while (t->keys[i] != 0 && t->keys[i] != key) i = (i + 1) & (t->cap - 1);
    if (t->keys[i] == 0) t->keys[i] = key, t->ids[i] = t->n++;
    return t->ids[i];
}

static Hop hop_make(const Program *pr, int32_t d, int32_t chunk, OpKind kind, Channels *ch) {
    int32_t p = pr->devices, m = pr->micro_batches, s = program_stage_of(pr, d, chunk);
    int32_t in = program_input_stage(pr, kind, s), out = program_output_stage(pr, kind, s);
    Hop h = {.own = s * m, .in = in >= 0 ? in * m : -1, .out = out >= 0 ? out * m : -1,
             .wake = -1, .send_ch = -1, .recv_ch = -1, .need = kind == OP_F ? 1 : 2};
    if (out >= 0 && pr->device_of[out] != d) {
        h.wake = pr->device_of[out];
        h.send_ch = channel_id(ch, channel_key(p, d, h.wake, kind));
    }
    if (in >= 0 && pr->device_of[in] != d)
        h.recv_ch = channel_id(ch, channel_key(p, pr->device_of[in], d, kind));
    return h;
}

/* The Hop table of a Program whose ranges pass 1 checked; *nch gets the channel count.
 * NULL when out of memory. */
static Hop *hops_build(const Program *pr, int32_t *nch) {
    size_t n = (size_t)pr->devices * (size_t)pr->chunks * OP_KIND_COUNT;
    Channels ch = {.cap = 16};
    while (ch.cap < (size_t)program_stages(pr) * 4) ch.cap *= 2;
    ch.keys = calloc(ch.cap, sizeof *ch.keys);
    ch.ids = malloc(ch.cap * sizeof *ch.ids);
    Hop *hops = ch.keys && ch.ids ? malloc((n ? n : 1) * sizeof *hops) : NULL;
    for (int32_t d = 0; hops && d < pr->devices; d++)
        for (int32_t c = 0; c < pr->chunks; c++)
            for (int k = 0; k < OP_KIND_COUNT; k++)
                hops[((size_t)d * pr->chunks + c) * OP_KIND_COUNT + k] =
                    hop_make(pr, d, c, (OpKind)k, &ch);
    free(ch.keys), free(ch.ids);
    *nch = ch.n;
    return hops;
}

/* Pass 4: NCCL matches the sends and receives between two ranks in posting order, with no
 * tags. Number every cross-device message in its sender's program order and check that the
 * receiver consumes the messages of each peer in that same order. seq[] is indexed like
 * have[] (consumer stage, micro-batch), doubled: [0] activations, [1] gradients. */
static int check_pairing(const Program *pr, const Hop *hops, int32_t nch, int64_t *seq,
                         char *why, size_t len) {
    int32_t p = pr->devices;
    int64_t *sent = calloc((size_t)nch + 1, sizeof *sent);
    int64_t *received = calloc((size_t)nch + 1, sizeof *received);
    if (!sent || !received) {
        free(sent), free(received);
        return snprintf(why, len, "out of memory"), -1;
    }
    for (int32_t d = 0; d < p; d++) // senders
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            const Hop *h = hop_of(hops, pr, d, op);
            if (h->send_ch < 0) continue;
            seq[((size_t)h->out + op->micro_batch) * 2 + (op->kind != OP_F)] = sent[h->send_ch]++;
        }
    int rc = 0;
    for (int32_t e = 0; e < p && rc == 0; e++) // receivers
        for (int64_t i = pr->start[e]; i < pr->start[e + 1] && rc == 0; i++) {
            const ProgramOp *op = &pr->ops[i];
            const Hop *h = hop_of(hops, pr, e, op);
            if (h->recv_ch < 0) continue;
            int64_t k = seq[((size_t)h->own + op->micro_batch) * 2 + (op->kind != OP_F)];
            if (k != received[h->recv_ch]++) {
                int32_t d = pr->device_of[h->in / pr->micro_batches];
                char reason[256];
                snprintf(reason, sizeof reason,
                         "takes %s message %lld of device %d's sends to it as its receive "
                         "%lld; NCCL pairs sends and receives between two ranks in order, so "
                         "this order would hang or swap tensors; reorder so device %d sends "
                         "in the order this device consumes",
                         op->kind == OP_F ? "activation" : "gradient", (long long)k, d,
                         (long long)(received[h->recv_ch] - 1), d);
                rc = fail_at(why, len, pr, e, i, reason);
            }
        }
    free(sent), free(received);
    return rc;
}

int program_check(const Program *pr, char *why, size_t whylen) {
    size_t cells = (size_t)program_stages(pr) * (size_t)pr->micro_batches;
    uint8_t *have = calloc(cells ? cells : 1, 1);
    if (!have) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    int rc = check_ops(pr, have, why, whylen);
    if (rc == 0) rc = check_complete(pr, have, why, whylen);
    int32_t nch = 0;
    Hop *hops = rc == 0 ? hops_build(pr, &nch) : NULL;
    if (rc == 0 && !hops) rc = (snprintf(why, whylen, "out of memory"), -1);
    if (rc == 0) {
        memset(have, 0, cells);
        rc = check_progress(pr, hops, have, why, whylen);
    }
    free(have);
    if (rc == 0) {
        int64_t *seq = malloc(cells * 2 * sizeof *seq + 1);
        rc = seq ? check_pairing(pr, hops, nch, seq, why, whylen)
                 : (snprintf(why, whylen, "out of memory"), -1);
        free(seq);
    }
    free(hops);
    return rc;
}
