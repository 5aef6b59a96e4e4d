/* traces/timeline.c: growth and naming of Timeline rows. No I/O here. */
#include "timeline.h"

#include <stdlib.h>
#include <string.h>

static const char *const KIND_NAMES[OP_KIND_COUNT] = {"F", "B", "W", "BW"};
static const char *const STREAM_NAMES[STREAM_COUNT] = {"compute", "send", "recv"};

int timeline_push(Timeline *t, const TimelineOp *op) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        TimelineOp *ops = realloc(t->ops, cap * sizeof *ops);
        if (!ops) return -1;
        t->ops = ops;
        t->cap = cap;
    }
    t->ops[t->n++] = *op;
    return 0;
}

void timeline_free(Timeline *t) {
    free(t->ops);
    memset(t, 0, sizeof *t);
}

int memtrace_push(MemTrace *m, const MemSample *s) {
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        MemSample *p = realloc(m->s, cap * sizeof *p);
        if (!p) return -1;
        m->s = p;
        m->cap = cap;
    }
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
