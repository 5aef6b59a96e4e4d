/* sim/sched/sched_file.c: reading and writing schedule files (format in sched_file.h). Reading is
 * two passes over the text: count and place stages, then push ops device by device. */
#include "sim/sched/sched_file.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t stage, micro_batch;
    int kind; // OpKind, or -1 for an action to skip
} Action;

/* Parses one action token (len bytes at t). Returns 0, or -1 when it is not an action. */
static int action_parse(const char *t, size_t len, Action *a) {
    a->kind = -1;
    if (len == 4 && strncmp(t, "None", 4) == 0) return 0;
    size_t i = 0;
    while (i < len && isdigit((unsigned char)t[i])) i++;
    if (i == 0 || i > 9) return -1;
    a->stage = (int32_t)strtol(t, NULL, 10);
    size_t k = i;
    while (i < len && (isupper((unsigned char)t[i]) || t[i] == '_')) i++;
    size_t klen = i - k, j = i;
    while (i < len && isdigit((unsigned char)t[i])) i++;
    if (i != len || klen == 0 || i - j > 9) return -1;
    a->micro_batch = i > j ? (int32_t)strtol(t + j, NULL, 10) : -1;
    static const struct { const char *name; int kind; } KINDS[] = {
        {"F", OP_F}, {"I", OP_B}, {"W", OP_W}, {"B", OP_BW}, {"BW", OP_BW},
        {"SEND_F", -1}, {"RECV_F", -1}, {"SEND_B", -1}, {"RECV_B", -1},
        {"UNSHARD", -1}, {"RESHARD", -1}, {"REDUCE_GRAD", -1}};
    for (size_t n = 0; n < sizeof KINDS / sizeof KINDS[0]; n++)
        if (strlen(KINDS[n].name) == klen && strncmp(KINDS[n].name, t + k, klen) == 0) {
            a->kind = KINDS[n].kind;
            return a->kind >= 0 && a->micro_batch < 0 ? -1 : 0;
        }
    return -1;
}

typedef struct {
    const char *text, *name;
    const SchedParams *sp;
    char *err;
    size_t errlen;
    int32_t *dev_line; // [p] file line of each device
    int32_t *owner;    // [S] device listing each stage, -1 none
    int32_t pipes, iterations, m; // directives; m = micro-batches the file covers
    int32_t *versions;            // [p] from weight_versions, or NULL
} Reader;

static int bad(Reader *r, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes "NAME:LINE: message" into r->err; returns 2 (bad input). */
static int bad(Reader *r, int line, const char *fmt, ...) {
    int n = snprintf(r->err, r->errlen, "%s:%d: ", r->name, line);
    if (n > 0 && (size_t)n < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return 2;
}

/* One action of a device's line: checks it (push == 0: and places its stage) or appends it.
 * part: 0 alone, 1 or 2 the first or second of a fused pair (the first gets the flag). */
static int action_at(Reader *r, Program *pr, int push, int32_t device, int line, const char *t,
                     size_t len, int part) {
    int32_t S = r->sp->devices * r->sp->chunks;
    Action a;
    if (action_parse(t, len, &a) != 0 || (part && a.kind < 0))
        return bad(r, line, "'%.*s' is not an action; write STAGE KIND MICROBATCH such as 0F3, "
                   "2I3, 2W3 or 1B0 (KIND is F, I, W or B), or two joined by & for a fused pair",
                   (int)(len > 40 ? 40 : len), t);
    if (a.kind < 0) return 0;
    if (a.stage >= S)
        return bad(r, line, "stage %d does not exist: the pipeline has %d stages (stages x "
                   "chunks)", a.stage, S);
    if (a.micro_batch >= r->m)
        return bad(r, line, "micro-batch %d is out of range: micro_batches = %d%s", a.micro_batch,
                   r->sp->micro_batches, r->iterations > 1 ? " per iteration" : "");
    if (!push && r->owner[a.stage] >= 0 && r->owner[a.stage] != device)
        return bad(r, line, "stage %d is already on the device of line %d; each stage belongs to "
                   "one device", a.stage, r->dev_line[r->owner[a.stage]]);
    r->owner[a.stage] = device;
    if (push) {
        program_push(pr, device, (OpKind)a.kind, a.micro_batch, pr->chunk_of[a.stage]);
        if (part == 1) pr->ops[pr->nops - 1].flags = OPF_FUSED_NEXT;
    }
    return 0;
}

/* A directive line ("pipes = 2") starts with a lower-case word and has an '='; action lines
 * start with a digit, or with "None" in PyTorch's files. */
static int directive_at(const char *c, size_t n) {
    size_t i = 0;
    while (i < n && isspace((unsigned char)c[i])) i++;
    return i < n && islower((unsigned char)c[i]) && memchr(c, '=', n) != NULL;
}

/* Reads a positive integer at *t (advancing it); -1 when there is none or it is too big. */
static int32_t read_count(const char **t, const char *end) {
    while (*t < end && isspace((unsigned char)**t)) (*t)++;
    int64_t v = 0;
    const char *start = *t;
    while (*t < end && isdigit((unsigned char)**t) && v < (1 << 30)) v = v * 10 + (*(*t)++ - '0');
    while (*t < end && isspace((unsigned char)**t)) (*t)++;
    return *t == start || v < 1 || v >= (1 << 30) ? -1 : (int32_t)v;
}

/* The directives: pipes = N (model copies, as DualPipe's 2), iterations = K (the file covers
 * K iterations with no flush, micro-batches 0 .. K*m-1, as the asynchronous schedules), and
 * weight_versions = V0,V1,... (weight copies per device). */
static int read_directives(Reader *r) {
    int32_t p = r->sp->devices;
    int line = 1;
    for (const char *c = r->text; *c; line++) {
        const char *eol = strchr(c, '\n');
        size_t n = eol ? (size_t)(eol - c) : strlen(c);
        const char *hash = memchr(c, '#', n), *end = hash ? hash : c + n;
        if (directive_at(c, (size_t)(end - c))) {
            const char *eq = memchr(c, '=', (size_t)(end - c)), *t = eq + 1, *k = c;
            while (isspace((unsigned char)*k)) k++;
            size_t klen = (size_t)(eq - k);
            while (klen && isspace((unsigned char)k[klen - 1])) klen--;
            int32_t v = read_count(&t, end);
            int known = (klen == 5 && !strncmp(k, "pipes", 5)) ||
                        (klen == 10 && !strncmp(k, "iterations", 10)) ||
                        (klen == 15 && !strncmp(k, "weight_versions", 15));
            if (known && (v <= 0 || (t != end && *k != 'w')))
                return bad(r, line, "'%.*s': %.*s must be a whole number of 1 or more%s",
                           (int)(end - c > 60 ? 60 : end - c), c, (int)klen, k,
                           *k == 'w' ? " for each device, e.g. weight_versions = 2,2" : "");
            if (klen == 5 && !strncmp(k, "pipes", 5) && v > 0 && t == end) {
                if (v > 2 || (p * r->sp->chunks) % v || r->sp->micro_batches % v)
                    return bad(r, line, "pipes = %d: use 1, or 2 with an even micro_batches "
                               "and stages x chunks", v);
                r->pipes = v;
            } else if (klen == 10 && !strncmp(k, "iterations", 10) && v > 0 && t == end) {
                if (r->sp->iterations % v)
                    return bad(r, line, "the file covers %d iterations, so iterations must be "
                               "a multiple of %d, not %d", v, v, r->sp->iterations);
                r->iterations = v;
            } else if (klen == 15 && !strncmp(k, "weight_versions", 15) && v > 0) {
                if (!r->versions && !(r->versions = malloc((size_t)p * sizeof *r->versions)))
                    return -1;
                int32_t i = 0;
                for (r->versions[i++] = v; i < p && t < end && *t == ','; i++) {
                    t++;
                    if ((r->versions[i] = read_count(&t, end)) < 0) break;
                }
                if (i != p || t != end)
                    return bad(r, line, "weight_versions needs %d counts of 1 or more, one per "
                               "device, e.g. weight_versions = 2,2", p);
            } else {
                return bad(r, line, "'%.*s' is not a directive; use pipes = N, iterations = K "
                           "or weight_versions = V0,V1,...", (int)(end - c > 60 ? 60 : end - c), c);
            }
        }
        c += n + (eol != NULL);
    }
    r->m = r->sp->micro_batches * r->iterations;
    return 0;
}

/* Walks every action; push == 0: checks and places stages; push == 1: appends the ops. */
static int walk(Reader *r, Program *pr, int push, int64_t *nops) {
    int32_t p = r->sp->devices, device = -1;
    int line = 1;
    *nops = 0;
    for (const char *c = r->text; *c; line++) {
        const char *eol = strchr(c, '\n');
        size_t n = eol ? (size_t)(eol - c) : strlen(c);
        const char *hash = memchr(c, '#', n);
        size_t body = hash ? (size_t)(hash - c) : n;
        int started = 0;
        if (directive_at(c, body)) body = 0; // read by read_directives
        for (size_t i = 0; i < body;) {
            while (i < body && (isspace((unsigned char)c[i]) || c[i] == ',')) i++;
            size_t j = i;
            while (j < body && !isspace((unsigned char)c[j]) && c[j] != ',') j++;
            if (j == i) break;
            if (!started) {
                started = 1;
                if (++device >= p)
                    return bad(r, line, "more device lines than stages = %d; give one line per "
                               "device", p);
                r->dev_line[device] = line;
            }
            const char *amp = memchr(c + i, '&', j - i); // "0F3&7B1": a fused pair
            for (size_t k = i, part = 0; k < j; part++) {
                size_t e = amp && part == 0 ? (size_t)(amp - c) : j;
                int rc = action_at(r, pr, push, device, line, c + k, e - k,
                                   amp ? (int)part + 1 : 0);
                if (rc != 0) return rc;
                (*nops)++;
                k = e + 1;
            }
            i = j;
        }
        c += n + (eol != NULL);
    }
    if (device + 1 != p)
        return bad(r, line > 1 ? line - 1 : 1, "the file lists %d devices but stages = %d; "
                   "give one line per device", device + 1, p);
    return 0;
}


/* Gives each device its stages as chunks in ascending order. With p*v stages all placed and
 * no device over v, every device has exactly v. */
static int place(Reader *r, Program *pr) {
    int32_t p = r->sp->devices, v = r->sp->chunks, S = p * v;
    int32_t *count = calloc((size_t)p, sizeof *count);
    if (!count) return -1;
    int rc = 0;
    for (int32_t st = 0; st < S && rc == 0; st++) {
        int32_t d = r->owner[st];
        if (d < 0)
            rc = bad(r, 1, "no device runs stage %d; every one of the %d stages needs a "
                     "device", st, S);
        else if (count[d] == v)
            rc = bad(r, r->dev_line[d], "this device runs more than chunks = %d stages "
                     "(stage %d is one too many)", v, st);
        else
            program_place(pr, d, count[d]++, st);
    }
    free(count);
    return rc;
}

int sched_file_parse(const char *text, const char *name, const SchedParams *sp, Program *out,
                     char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int32_t p = sp->devices, S = p * sp->chunks;
    Reader r = {.text = text, .name = name, .sp = sp, .err = err, .errlen = errlen,
                .pipes = 1, .iterations = 1};
    r.dev_line = calloc((size_t)p, sizeof *r.dev_line);
    r.owner = malloc((size_t)S * sizeof *r.owner);
    int64_t nops = 0;
    int rc = r.dev_line && r.owner ? 0 : -1;
    for (int32_t st = 0; rc == 0 && st < S; st++) r.owner[st] = -1;
    if (rc == 0) rc = read_directives(&r);
    if (rc == 0) rc = walk(&r, NULL, 0, &nops);
    if (rc == 0) rc = program_init(out, p, sp->chunks, r.m, PLACE_EXPLICIT, nops) ? -1 : 0;
    if (rc == 0) {
        out->pipes = r.pipes, out->iterations = r.iterations;
        out->weight_versions = r.versions, r.versions = NULL; // the Program owns them now
        rc = place(&r, out);
    }
    if (rc == 0) rc = walk(&r, out, 1, &nops);
    if (rc == 0) program_end(out);
    else program_free(out);
    free(r.dev_line);
    free(r.owner);
    free(r.versions);
    return rc;
}

void sched_file_write(FILE *f, const Program *pr, const char *header) {
    static const char *const LETTER[OP_KIND_COUNT] = {"F", "I", "W", "B"};
    fprintf(f, "# %s\n# pipesim schedule: one line per device; STAGE KIND MICROBATCH with "
            "KIND F forward, I input gradient, W weight gradient, B full backward; A&B fused\n",
            header);
    if (pr->pipes > 1) fprintf(f, "pipes = %d\n", pr->pipes);
    if (pr->iterations > 1) fprintf(f, "iterations = %d\n", pr->iterations);
    if (pr->weight_versions) {
        fprintf(f, "weight_versions = ");
        for (int32_t d = 0; d < pr->devices; d++)
            fprintf(f, "%s%d", d ? "," : "", pr->weight_versions[d]);
        fputc('\n', f);
    }
    for (int32_t d = 0; d < pr->devices; d++) {
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            int joined = i > pr->start[d] && (op[-1].flags & OPF_FUSED_NEXT);
            fprintf(f, "%s%d%s%d", i == pr->start[d] ? "" : joined ? "&" : ",",
                    program_stage_of(pr, d, op->chunk), LETTER[op->kind], op->micro_batch);
        }
        fputc('\n', f);
    }
}
