/* sim/program/timeline.c: growth and naming of Timeline rows and memory samples. No I/O here. */
#define _DEFAULT_SOURCE // madvise (Linux, BSD); without it the timeline just uses small pages
#include "sim/program/timeline.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const char *const STREAM_NAMES[STREAM_COUNT] = {
    "compute", "send", "recv", "allreduce", "optimizer", "tensor", "tensor_allgather",
    "tensor_reduce_scatter", "reduce_scatter", "all_gather", "expert"};

/* Room for one more element in array a of *cap elements holding n, doubling from 1024.
 * Returns the array (perhaps moved), or NULL when out of memory (a is left as it was). */
static void *grow(void *a, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return a;
    size_t c = *cap ? *cap * 2 : 1024;
    void *p = realloc(a, c * elem);
    if (p) *cap = c;
    return p;
}

int timeline_grow(Timeline *t) {
    TimelineOp *ops = grow(t->ops, &t->cap, t->n, sizeof *ops);
    if (!ops) return -1;
    t->ops = ops;
    return 0;
}

/* Big reservations (the engine makes one per run) sit on 2 MiB boundaries and ask for huge
 * pages: the kernel then maps and zeroes them 2 MiB at a time on first touch instead of 4 KiB
 * at a time (63 MB of rows: about 10 ms instead of 40 on our test machine). The kernel may
 * first compact memory to find huge pages, or fall back to small ones. */
enum { HUGE_PAGE = 2 << 20 };

static TimelineOp *rows_alloc_huge(size_t cap) {
    size_t bytes = (cap * sizeof(TimelineOp) + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE); // advice only: small pages still work when it fails
#endif
    return p;
}

int timeline_reserve(Timeline *t, size_t cap) {
    if (cap <= t->cap) return 0;
    TimelineOp *ops;
    if (cap * sizeof *ops >= 2 * (size_t)HUGE_PAGE && (ops = rows_alloc_huge(cap)) != NULL) {
        if (t->n) memcpy(ops, t->ops, t->n * sizeof *ops);
        free(t->ops);
    } else if ((ops = realloc(t->ops, cap * sizeof *ops)) == NULL) {
        return -1;
    }
    t->ops = ops, t->cap = cap;
    return 0;
}

void timeline_free(Timeline *t) {
    free(t->ops);
    memset(t, 0, sizeof *t);
}

int memtrace_push(MemTrace *m, const MemSample *s) {
    MemSample *all = grow(m->s, &m->cap, m->n, sizeof *s);
    if (!all) return -1;
    m->s = all;
    m->s[m->n++] = *s;
    return 0;
}

void memtrace_free(MemTrace *m) {
    free(m->s);
    memset(m, 0, sizeof *m);
}

const char *stream_name(Stream s) { return (unsigned)s < STREAM_COUNT ? STREAM_NAMES[s] : "?"; }

int stream_parse(const char *name) {
    for (int i = 0; i < STREAM_COUNT; i++)
        if (strcmp(STREAM_NAMES[i], name) == 0) return i;
    return -1;
}

int64_t timeline_longest_span(const Timeline *t, int32_t devices, int64_t *makespan) {
    int64_t *first = malloc((size_t)devices * 2 * sizeof *first), *last = first + devices;
    int64_t span = 0, lo = INT64_MAX, hi = 0;
    if (!first) return -1;
    for (int32_t d = 0; d < devices; d++) first[d] = INT64_MAX, last[d] = 0;
    for (size_t i = 0; i < t->n; i++) {
        const TimelineOp *r = &t->ops[i];
        if (r->stream != STREAM_COMPUTE || r->device < 0 || r->device >= devices) continue;
        if (r->start_ns < first[r->device]) first[r->device] = r->start_ns;
        if (r->end_ns > last[r->device]) last[r->device] = r->end_ns;
    }
    for (int32_t d = 0; d < devices; d++) {
        if (first[d] == INT64_MAX) continue;
        if (last[d] - first[d] > span) span = last[d] - first[d];
        if (first[d] < lo) lo = first[d];
        if (last[d] > hi) hi = last[d];
    }
    if (makespan) *makespan = lo == INT64_MAX ? 0 : hi - lo;
    free(first);
    return span;
}
