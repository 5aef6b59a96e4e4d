/* traces/timeline.c: growth and naming of Timeline rows and memory samples. No I/O here. */
#include "timeline.h"

#include <stdlib.h>
#include <string.h>

static const char *const KIND_NAMES[OP_KIND_COUNT] = {"F", "B", "W", "BW"};
static const char *const STREAM_NAMES[STREAM_COUNT] = {"compute", "send", "recv",
                                                         "allreduce", "optimizer"};

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

int timeline_reserve(Timeline *t, size_t cap) {
    if (cap <= t->cap) return 0;
    TimelineOp *ops = realloc(t->ops, cap * sizeof *ops);
    if (!ops) return -1;
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

const char *op_kind_name(OpKind k) { return (unsigned)k < OP_KIND_COUNT ? KIND_NAMES[k] : "?"; }
const char *stream_name(Stream s) { return (unsigned)s < STREAM_COUNT ? STREAM_NAMES[s] : "?"; }

static int name_index(const char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

int op_kind_parse(const char *name) { return name_index(KIND_NAMES, OP_KIND_COUNT, name); }
int stream_parse(const char *name) { return name_index(STREAM_NAMES, STREAM_COUNT, name); }
