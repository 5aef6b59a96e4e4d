/* sim/sched_file.c: reading and writing schedule files (format in sched_file.h). Reading is
 * two passes over the text: count and place stages, then push ops device by device. */
#include "sched_file.h"

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

/* Walks every action; push == 0: checks and places stages; push == 1: appends the ops. */
static int walk(Reader *r, Program *pr, int push, int64_t *nops) {
    int32_t p = r->sp->devices, S = p * r->sp->chunks, device = -1;
    int line = 1;
    *nops = 0;
    for (const char *c = r->text; *c; line++) {
        const char *eol = strchr(c, '\n');
        size_t n = eol ? (size_t)(eol - c) : strlen(c);
        const char *hash = memchr(c, '#', n);
        size_t body = hash ? (size_t)(hash - c) : n;
        int started = 0;
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
            Action a;
            if (action_parse(c + i, j - i, &a) != 0)
                return bad(r, line, "'%.*s' is not an action; write STAGE KIND MICROBATCH such "
                           "as 0F3, 2I3, 2W3 or 1B0 (KIND is F, I, W or B)",
                           (int)(j - i > 40 ? 40 : j - i), c + i);
            i = j;
            if (a.kind < 0) continue;
            if (a.stage >= S)
                return bad(r, line, "stage %d does not exist: the pipeline has %d stages "
                           "(stages x chunks)", a.stage, S);
            if (a.micro_batch >= r->sp->micro_batches)
                return bad(r, line, "micro-batch %d is out of range: micro_batches = %d",
                           a.micro_batch, r->sp->micro_batches);
            if (!push && r->owner[a.stage] >= 0 && r->owner[a.stage] != device)
                return bad(r, line, "stage %d is already on the device of line %d; each "
                           "stage belongs to one device", a.stage, r->dev_line[r->owner[a.stage]]);
            r->owner[a.stage] = device;
            if (push) {
                program_push(pr, device, (OpKind)a.kind, a.micro_batch,
                             pr->chunk_of[a.stage]);
            }
            (*nops)++;
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
    Reader r = {.text = text, .name = name, .sp = sp, .err = err, .errlen = errlen};
    r.dev_line = calloc((size_t)p, sizeof *r.dev_line);
    r.owner = malloc((size_t)S * sizeof *r.owner);
    int64_t nops = 0;
    int rc = r.dev_line && r.owner ? 0 : -1;
    for (int32_t st = 0; rc == 0 && st < S; st++) r.owner[st] = -1;
    if (rc == 0) rc = walk(&r, NULL, 0, &nops);
    if (rc == 0)
        rc = program_init(out, p, sp->chunks, sp->micro_batches, PLACE_EXPLICIT, nops) ? -1 : 0;
    if (rc == 0) rc = place(&r, out);
    if (rc == 0) rc = walk(&r, out, 1, &nops);
    if (rc == 0) program_end(out);
    else program_free(out);
    free(r.dev_line);
    free(r.owner);
    return rc;
}

void sched_file_write(FILE *f, const Program *pr, const char *header) {
    static const char *const LETTER[OP_KIND_COUNT] = {"F", "I", "W", "B"};
    fprintf(f, "# %s\n# pipesim schedule: one line per device; STAGE KIND MICROBATCH with "
            "KIND F forward, I input gradient, W weight gradient, B full backward\n", header);
    for (int32_t d = 0; d < pr->devices; d++) {
        for (int64_t i = pr->start[d]; i < pr->start[d + 1]; i++) {
            const ProgramOp *op = &pr->ops[i];
            fprintf(f, "%s%d%s%d", i > pr->start[d] ? "," : "",
                    program_stage_of(pr, d, op->chunk), LETTER[op->kind], op->micro_batch);
        }
        fputc('\n', f);
    }
}
