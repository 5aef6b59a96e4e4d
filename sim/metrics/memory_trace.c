/* sim/metrics/memory_trace.c: memory per device over a run: the static part (memory.h), then
 * the activations replayed from the Timeline as take/give-back events in (device, time, gives
 * before takes) order: bucketed by device and sorted per device, linear for the nearly
 * sorted rows the engine emits. */
#include "sim/metrics/memory_trace.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t t_ns;  // ns since the run's epoch
    int32_t take;  // +1 an activation is taken, -1 given back, 0 shrunk to its W part
    double bytes;  // taken (> 0) or given back (< 0)
} MemEvent;

/* Every device's events, in order: device d's are ev[first[d]] .. ev[first[d + 1] - 1]. */
typedef struct {
    MemEvent *ev;  // first[devices] events
    size_t *first; // devices + 1 offsets
} MemEvents;

/* The order events are applied in on one device: time, then gives before takes. */
static int event_before(const MemEvent *a, const MemEvent *b) {
    return a->t_ns != b->t_ns ? a->t_ns < b->t_ns : a->bytes < b->bytes;
}

/* Stable bottom-up merge sort of a[n] with the room tmp[n]: O(n log n), the fallback. */
static void events_merge_sort(MemEvent *a, MemEvent *tmp, size_t n) {
    MemEvent *src = a, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = event_before(&src[j], &src[i]) ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        MemEvent *x = src;
        src = dst, dst = x;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

/* Sorts one device's events stably by event_before. The engine emits a device's compute rows
 * in start order and they do not overlap (a fused pair shares one interval), so its events
 * come nearly sorted: an insertion sort fixes the few pairs out of order in O(n + moves). A
 * producer that breaks that (moves past 4n + 64) gets the merge sort instead, which finishes
 * stably from the partly sorted state. 0, or -1 out of memory. */
static int events_sort(MemEvent *a, size_t n) {
    size_t moves = 0, budget = 4 * n + 64;
    for (size_t i = 1; i < n && moves <= budget; i++) {
        if (!event_before(&a[i], &a[i - 1])) continue;
        MemEvent x = a[i];
        size_t j = i;
        for (; j > 0 && event_before(&x, &a[j - 1]); j--) a[j] = a[j - 1];
        a[j] = x;
        moves += i - j;
    }
    if (moves <= budget) return 0;
    MemEvent *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return -1;
    events_merge_sort(a, tmp, n);
    free(tmp);
    return 0;
}

/* The take/give-back event of compute row r on a stage holding a[0] bytes of activations per
 * micro-batch, a[1] of them from B to W. */
static MemEvent row_event(const TimelineOp *r, const double *a) {
    switch ((OpKind)r->kind) {
    case OP_F: return (MemEvent){.t_ns = r->start_ns, .take = 1, .bytes = a[0]};
    case OP_B: return (MemEvent){.t_ns = r->end_ns, .take = 0, .bytes = a[1] - a[0]};
    case OP_W: return (MemEvent){.t_ns = r->end_ns, .take = -1, .bytes = -a[1]};
    default: return (MemEvent){.t_ns = r->end_ns, .take = -1, .bytes = -a[0]};
    }
}

/* The take/give-back events of the compute rows, bucketed by device in row order (a counting
 * pass, then a placing pass), then sorted per device: O(n) for the engine's timelines,
 * O(n log n) at worst. Rows of devices outside 0..devices-1 are left out. 0, or -1 out of
 * memory. */
static int activation_events(const Scenario *s, const Plan *pl, const Program *pr,
                             const Timeline *tl, MemEvents *out) {
    int32_t p = pr->devices;
    double *act = malloc((size_t)pl->stages * 2 * sizeof *act); // [st][0 whole, 1 W part]
    size_t *first = calloc((size_t)p + 1, sizeof *first);
    size_t *next = malloc(((size_t)p + 1) * sizeof *next);
    int rc = act && first && next ? 0 : -1;
    for (int32_t st = 0; rc == 0 && st < pl->stages; st++) {
        double params;
        memory_plan_footprint(s, pl, st, &params, &act[2 * st], &act[2 * st + 1]);
    }
    for (size_t i = 0; rc == 0 && i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->stream == STREAM_COMPUTE && r->device >= 0 && r->device < p) first[r->device + 1]++;
    }
    for (int32_t d = 0; rc == 0 && d < p; d++) first[d + 1] += first[d];
    MemEvent *ev = rc == 0 ? malloc((first[p] ? first[p] : 1) * sizeof *ev) : NULL;
    if (!ev) rc = -1;
    if (rc == 0) memcpy(next, first, ((size_t)p + 1) * sizeof *next);
    for (size_t i = 0; rc == 0 && i < tl->n; i++) {
        const TimelineOp *r = &tl->ops[i];
        if (r->stream != STREAM_COMPUTE || r->device < 0 || r->device >= p) continue;
        ev[next[r->device]++] = row_event(r, &act[2 * program_stage_of(pr, r->device, r->chunk)]);
    }
    for (int32_t d = 0; rc == 0 && d < p; d++) rc = events_sort(&ev[first[d]], first[d + 1] - first[d]);
    free(act), free(next);
    if (rc != 0) {
        free(first), free(ev);
        return -1;
    }
    *out = (MemEvents){.ev = ev, .first = first};
    return 0;
}

static int sample(MemTrace *trace, int64_t t, int32_t d, double bytes) {
    if (!trace) return 0;
    MemSample x = {.t_ns = t, .device = d, .bytes = (int64_t)(bytes + 0.5)};
    return memtrace_push(trace, &x);
}

int memory_compute(const Scenario *s, const Plan *pl, const Program *pr, const Timeline *tl,
                   DeviceMemory *out, MemTrace *trace) {
    MemEvents me;
    if (activation_events(s, pl, pr, tl, &me) != 0) return -1;
    int rc = 0;
    for (int32_t d = 0; d < pr->devices && rc == 0; d++) {
        DeviceMemory *dm = &out[d];
        memory_device_static(s, pl, pr, d, dm);
        double fixed = memory_static_bytes(dm), bytes = 0;
        int32_t held = 0;
        const MemEvent *ev = me.ev;
        size_t i = me.first[d], n = me.first[d + 1];
        if (i == n || ev[i].t_ns > 0) rc = sample(trace, 0, d, fixed);
        while (i < n && rc == 0) {
            int64_t t = ev[i].t_ns;
            for (; i < n && ev[i].t_ns == t; i++) {
                held += ev[i].take;
                bytes += ev[i].bytes;
                if (held > dm->peak_activations) dm->peak_activations = held;
                if (bytes > dm->activation_bytes) dm->activation_bytes = bytes;
            }
            if (held == 0) bytes = 0; // no rounding residue once everything is given back
            rc = sample(trace, t, d, fixed + bytes);
        }
        dm->peak_bytes = fixed + dm->activation_bytes;
    }
    free(me.ev), free(me.first);
    return rc;
}
