/* exec/issue_order.h: one global issue order of a Program's ops for executors whose transfers
 * must be posted in the same order at both ends (NCCL's untagged send/recv): a topological
 * order of the ops (each device's own order kept, every op after the op producing its input)
 * in which each transfer between devices comes right after its producer. Every GPU issues its
 * share in this order, so on every channel the sends and receives pair up in order, and a
 * prefix of the order can always complete: the order cannot deadlock. Plain C, no CUDA. */
#ifndef PIPESIM_ISSUE_ORDER_H
#define PIPESIM_ISSUE_ORDER_H

#include <stdint.h>

#include "sim/program/program.h"

typedef struct {
    uint8_t xfer;          // 0 a compute op, 1 a transfer
    uint8_t grad;          // transfer: 0 an activation, 1 a gradient
    uint8_t kind;          // the op's OpKind (transfer: the producer's)
    int32_t dev;           // compute: the device; transfer: the sender
    int32_t dst;           // transfer: the receiving device (compute: -1)
    int32_t stage, mb;     // compute: the op's stage; transfer: the consumer's stage
    int64_t op;            // compute: index into pr->ops; transfer: -1
} IssueItem;

/* issue_order_build fills *items (malloc'd, *n of them: pr->nops compute items and one
 * transfer per cross-device input) by round-robin over the devices, each placing ops while
 * their inputs are placed. O(ops) per pass, at most ops passes. Returns 0; -1 out of memory;
 * -2 when the Program cannot complete (program_check rules this out). */
int issue_order_build(const Program *pr, IssueItem **items, int64_t *n);

#endif
