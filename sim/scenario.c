/* sim/scenario.c: scenario files read with libinih, --set overrides, defaults, GPU presets and
 * validation with "FILE:LINE: what is wrong; what would be right" messages. One table row per
 * key drives parsing, overrides, formatting and messages. Nothing here knows about time. */
#define _XOPEN_SOURCE 700 // realpath
#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

#define SCN_LINE_MAX 65536             // bytes per line, newline excluded
#define SCN_FILE_MAX (16 * 1024 * 1024) // bytes per scenario file

/* Peak dense TFLOP/s from the vendors' datasheets (bf16/fp16 tensor core; TF32 for fp32;
 * V100 has no TF32, its fp32 peak is given), memory as usable GiB, NVLink/xGMI bandwidth per
 * direction and the per-GPU network port. "cpu" is a placeholder until pexec calibrates. */
static const GpuPreset PRESETS[] = {
    {"v100", 125, 15.7, 32, 150, 12.5},
    {"a100", 312, 156, 80, 300, 25},
    {"a100-40g", 312, 156, 40, 300, 25},
    {"h100", 989, 495, 80, 450, 50},
    {"h100-pcie", 756, 378, 80, 64, 50},
    {"h200", 989, 495, 140, 450, 50},
    {"b200", 2250, 1100, 180, 900, 50},
    {"mi300x", 1307, 654, 192, 64, 50},
    {"cpu", 1, 1, 16, 10, 1.25},
};
#define NPRESETS (sizeof PRESETS / sizeof PRESETS[0])

const GpuPreset *gpu_preset_find(const char *name) {
    for (size_t i = 0; i < NPRESETS; i++)
        if (strcmp(PRESETS[i].name, name) == 0) return &PRESETS[i];
    return NULL;
}

const char *gpu_preset_names(void) {
    static char names[256];
    if (!names[0])
        for (size_t i = 0; i < NPRESETS; i++)
            strcat(strcat(names, i ? ", " : ""), PRESETS[i].name);
    return names;
}

static const char *const DTYPES[] = {"bf16", "fp16", "fp32"};
int dtype_bytes(Dtype d) { return d == DTYPE_FP32 ? 4 : 2; }
const char *dtype_name(Dtype d) { return (unsigned)d < 3 ? DTYPES[d] : "?"; }

/* ---- the key table ------------------------------------------------------------------------ */

typedef enum { T_INT, T_DOUBLE, T_NAME, T_DTYPE, T_PARTITION, T_SCHEDULE, T_GPU, T_PATH } KeyType;
enum { RANGE_CLOSED = 0, RANGE_OPEN_LO = 1 }; // lo < x instead of lo <= x

typedef struct {
    const char *section, *key;
    KeyType type;
    size_t offset;       // field in Scenario
    bool required;
    double lo, hi;       // allowed range of numbers
    int range;
    const char *example; // a good value, for messages
} KeyDef;

#define F(field) offsetof(Scenario, field)
static const KeyDef KEYS[] = {
    {"model", "name", T_NAME, F(model.name), false, 0, 0, 0, "gpt13b"},
    {"model", "layers", T_INT, F(model.layers), true, 1, 1e5, 0, "40"},
    {"model", "hidden", T_INT, F(model.hidden), true, 1, 1 << 20, 0, "5120"},
    {"model", "heads", T_INT, F(model.heads), true, 1, 1 << 16, 0, "40"},
    {"model", "seq_len", T_INT, F(model.seq_len), true, 1, 1 << 24, 0, "2048"},
    {"model", "vocab", T_INT, F(model.vocab), true, 1, 1 << 24, 0, "51200"},
    {"model", "ffn_hidden", T_INT, F(model.ffn_hidden), false, 1, 1 << 24, 0, "20480"},
    {"model", "dtype", T_DTYPE, F(model.dtype), false, 0, 0, 0, "bf16"},
    {"batch", "micro_batch_size", T_INT, F(batch.micro_batch_size), false, 1, 1 << 16, 0, "1"},
    {"batch", "micro_batches", T_INT, F(batch.micro_batches), true, 1, SCN_MAX_MICRO_BATCHES, 0, "32"},
    {"batch", "iterations", T_INT, F(batch.iterations), false, 1, SCN_MAX_ITERATIONS, 0, "1"},
    {"pipeline", "stages", T_INT, F(pipeline.stages), true, 1, SCN_MAX_STAGES, 0, "8"},
    {"pipeline", "schedule", T_SCHEDULE, F(pipeline.schedule), true, 0, 0, 0, "1f1b"},
    {"pipeline", "chunks", T_INT, F(pipeline.chunks), false, 1, SCN_MAX_CHUNKS, 0, "1"},
    {"pipeline", "partition", T_PARTITION, F(pipeline.partition), false, 0, 0, 0, "uniform"},
    {"pipeline", "schedule_file", T_PATH, F(pipeline.schedule_file), false, 0, 0, 0, "my.sched"},
    {"hardware", "gpu", T_GPU, F(hw.gpu), false, 0, 0, 0, "h100"},
    {"hardware", "peak_tflops", T_DOUBLE, F(hw.peak_tflops), false, 0, 1e6, RANGE_OPEN_LO, "989"},
    {"hardware", "efficiency", T_DOUBLE, F(hw.efficiency), false, 0, 1, RANGE_OPEN_LO, "0.5"},
    {"hardware", "memory_gib", T_DOUBLE, F(hw.memory_gib), false, 0, 1e6, RANGE_OPEN_LO, "80"},
    {"hardware", "gpus_per_node", T_INT, F(hw.gpus_per_node), false, 1, 1 << 20, 0, "8"},
    {"network", "intra_bandwidth_gbs", T_DOUBLE, F(net.intra_bandwidth_gbs), false, 0, 1e6, RANGE_OPEN_LO, "450"},
    {"network", "intra_latency_us", T_DOUBLE, F(net.intra_latency_us), false, 0, 1e9, 0, "10"},
    {"network", "inter_bandwidth_gbs", T_DOUBLE, F(net.inter_bandwidth_gbs), false, 0, 1e6, RANGE_OPEN_LO, "50"},
    {"network", "inter_latency_us", T_DOUBLE, F(net.inter_latency_us), false, 0, 1e9, 0, "20"},
    {"costs", "forward_ms", T_DOUBLE, F(costs.forward_ms), false, 0, 1e9, RANGE_OPEN_LO, "12.5"},
    {"costs", "backward_ms", T_DOUBLE, F(costs.backward_ms), false, 0, 1e9, 0, "25"},
    {"costs", "weight_ms", T_DOUBLE, F(costs.weight_ms), false, 0, 1e9, 0, "12"},
    {"costs", "comm_ms", T_DOUBLE, F(costs.comm_ms), false, 0, 1e9, 0, "0.05"},
};
#undef F
#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))
static const char *const SECTIONS[] = {"model", "batch", "pipeline", "hardware", "network", "costs"};
#define NSECTIONS ((int)(sizeof SECTIONS / sizeof SECTIONS[0]))

/* ---- parser state ------------------------------------------------------------------------- */

typedef struct {
    Scenario *s;
    const char *name;                // file name in messages
    const char *text;                // whole file
    size_t pos;                      // reader position in text
    int line;                        // line the reader served last
    int key_line[NKEYS];             // 0 not given, > 0 file line, < 0: -(index+1) of --set
    const char *const *sets;         // the --set arguments
    int section_line[NSECTIONS];
    char *err;                       // SCN_ERR_MAX bytes; first error wins
    bool failed;
    bool in_file;                    // values come from the file (not --set)
} Parser;

static int fail(Parser *P, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error as "WHERE: message". Returns 0 (inih's "stop this line"). */
static int fail(Parser *P, const char *where, const char *fmt, ...) {
    if (P->failed) return 0;
    P->failed = true;
    int n = snprintf(P->err, SCN_ERR_MAX, "%s: ", where);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && n < SCN_ERR_MAX) vsnprintf(P->err + n, (size_t)(SCN_ERR_MAX - n), fmt, ap);
    va_end(ap);
    return 0;
}

/* "FILE:LINE" of a key (its section's line or 1 when it was not given), or "--set ARG". */
static const char *where_key(const Parser *P, int k, char *buf, size_t len) {
    int line = P->key_line[k];
    if (line < 0) {
        snprintf(buf, len, "--set %s", P->sets[-line - 1]);
        return buf;
    }
    if (line == 0) {
        for (int i = 0; i < NSECTIONS; i++)
            if (strcmp(SECTIONS[i], KEYS[k].section) == 0 && P->section_line[i] > 0)
                line = P->section_line[i];
        if (line == 0) line = 1;
    }
    snprintf(buf, len, "%s:%d", P->name, line);
    return buf;
}

static int key_index(const char *section, const char *key) {
    for (int k = 0; k < NKEYS; k++)
        if (strcmp(KEYS[k].section, section) == 0 && strcmp(KEYS[k].key, key) == 0) return k;
    return -1;
}

static int section_index(const char *section) {
    for (int i = 0; i < NSECTIONS; i++)
        if (strcmp(SECTIONS[i], section) == 0) return i;
    return -1;
}

/* Levenshtein distance of two short names, for "did you mean". */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static int unknown_key(Parser *P, const char *where, const char *section, const char *key) {
    const char *best = NULL;
    int bestd = 3;
    char list[512] = "";
    for (int k = 0; k < NKEYS; k++) {
        if (strcmp(KEYS[k].section, section) != 0) continue;
        int d = edit_distance(key, KEYS[k].key);
        if (d < bestd) bestd = d, best = KEYS[k].key;
        strcat(strcat(list, list[0] ? ", " : ""), KEYS[k].key);
    }
    if (best) return fail(P, where, "unknown key '%s' in [%s]; did you mean '%s'?", key, section, best);
    return fail(P, where, "unknown key '%s' in [%s]; the keys of [%s] are %s", key, section, section, list);
}

static bool plain_name(const char *v) {
    if (!*v) return false;
    for (; *v; v++)
        if (!isalnum((unsigned char)*v) && !strchr("._+-", *v)) return false;
    return true;
}

static bool parse_int(const char *v, int64_t *out) {
    if (!*v || isspace((unsigned char)*v)) return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end) return false;
    *out = x;
    return true;
}

static bool parse_double(const char *v, double *out) {
    if (!*v || isspace((unsigned char)*v)) return false;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || !isfinite(x)) return false;
    *out = x;
    return true;
}

static int check_range(Parser *P, const char *where, const KeyDef *kd, double x,
                       const char *v) {
    bool low = kd->range == RANGE_OPEN_LO ? x <= kd->lo : x < kd->lo;
    if (!low && x <= kd->hi) return 1;
    return fail(P, where, "'%s = %s' is out of range; %s must be %s %.15g and at most %.15g, e.g. "
                "'%s = %s'", kd->key, v, kd->key, kd->range == RANGE_OPEN_LO ? "above" : "at least",
                kd->lo, kd->hi, kd->key, kd->example);
}

/* "5,5,6" -> a malloc'd array; false when an entry is not a positive whole number. */
static bool parse_list(const char *v, int64_t **out, int64_t *n) {
    size_t cap = 1;
    for (const char *c = v; *c; c++) cap += *c == ',';
    int64_t *a = malloc(cap * sizeof *a);
    if (!a) return false;
    *n = 0;
    const char *c = v;
    for (;;) {
        while (*c == ' ' || *c == '\t') c++;
        char *end;
        errno = 0;
        long long x = isdigit((unsigned char)*c) ? strtoll(c, &end, 10) : -1;
        if (x < 1 || errno) break;
        a[(*n)++] = x;
        c = end;
        while (*c == ' ' || *c == '\t') c++;
        if (*c == '\0') {
            *out = a;
            return true;
        }
        if (*c++ != ',') break;
    }
    free(a);
    return false;
}

static int set_partition(Parser *P, const char *where, const char *v) {
    ScnPipeline *pl = &P->s->pipeline;
    free(pl->partition_layers);
    pl->partition_layers = NULL;
    pl->npartition = 0;
    if (strcmp(v, "uniform") == 0) pl->partition = PART_UNIFORM;
    else if (strcmp(v, "balanced") == 0) pl->partition = PART_BALANCED;
    else if (parse_list(v, &pl->partition_layers, &pl->npartition)) pl->partition = PART_EXPLICIT;
    else
        return fail(P, where, "'partition = %s' is not valid; write uniform, balanced, or layers "
                    "per stage such as 'partition = 5,5,5,5,5,5,5,5'", v);
    return 1;
}

/* A relative path written in the file is taken from the scenario's directory; one given with
 * --set from the current directory. */
static int set_path(Parser *P, const char *where, char *field, const char *v) {
    const char *slash = strrchr(P->name, '/');
    int dir = P->in_file && v[0] != '/' && slash ? (int)(slash - P->name) + 1 : 0;
    if (!v[0] || (size_t)dir + strlen(v) >= SCN_PATH_MAX)
        return fail(P, where, "'%s' is not a usable path; give a file name shorter than %d bytes",
                    v, SCN_PATH_MAX);
    snprintf(field, SCN_PATH_MAX, "%.*s%s", dir, P->name, v);
    char *abs = realpath(field, NULL); // stored absolute, so a resolved scenario works anywhere
    if (abs && strlen(abs) < SCN_PATH_MAX) strcpy(field, abs);
    free(abs);
    return 1;
}

/* Stores one value; shared by file lines and --set. Returns 1, or 0 after fail(). */
static int set_value(Parser *P, int k, const char *where, const char *v) {
    const KeyDef *kd = &KEYS[k];
    void *field = (char *)P->s + kd->offset;
    int64_t i;
    double d;
    switch (kd->type) {
    case T_INT:
        if (!parse_int(v, &i))
            return fail(P, where, "'%s = %s' is not a whole number; write e.g. '%s = %s'",
                        kd->key, v, kd->key, kd->example);
        if (!check_range(P, where, kd, (double)i, v)) return 0;
        *(int64_t *)field = i;
        return 1;
    case T_DOUBLE:
        if (!parse_double(v, &d))
            return fail(P, where, "'%s = %s' is not a number; write e.g. '%s = %s'", kd->key, v,
                        kd->key, kd->example);
        if (!check_range(P, where, kd, d, v)) return 0;
        *(double *)field = d;
        return 1;
    case T_DTYPE:
        for (int t = 0; t < 3; t++)
            if (strcmp(v, DTYPES[t]) == 0) return *(Dtype *)field = (Dtype)t, 1;
        return fail(P, where, "unknown dtype '%s'; use bf16, fp16 or fp32", v);
    case T_PARTITION:
        return set_partition(P, where, v);
    case T_GPU:
        if (!gpu_preset_find(v))
            return fail(P, where, "unknown gpu '%s'; use one of %s, or leave gpu out and give "
                        "peak_tflops and memory_gib", v, gpu_preset_names());
        break;
    case T_SCHEDULE:
        if (!sched_find(v))
            return fail(P, where, "unknown schedule '%s'; available: %s", v, sched_names());
        break;
    case T_PATH:
        return set_path(P, where, (char *)field, v);
    case T_NAME:
        if (!plain_name(v) || strlen(v) >= SCN_NAME_MAX)
            return fail(P, where, "'%s = %s' is not a plain name; use up to %d letters, digits "
                        "and . _ + -, e.g. '%s = %s'", kd->key, v, SCN_NAME_MAX - 1, kd->key,
                        kd->example);
        break;
    }
    strcpy((char *)field, v); // names were checked above to fit SCN_NAME_MAX
    return 1;
}

/* ---- reading the file with libinih -------------------------------------------------------- */

/* ini_reader: serves one line of P->text, counts lines, and checks section headers. */
static char *read_line(char *str, int num, void *stream) {
    Parser *P = stream;
    if (P->failed || P->text[P->pos] == '\0') return NULL;
    const char *start = P->text + P->pos, *nl = strchr(start, '\n');
    size_t len = nl ? (size_t)(nl - start) + 1 : strlen(start);
    P->line++;
    char where[SCN_PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%d", P->name, P->line);
    if (len > SCN_LINE_MAX + 1 || len + 1 > (size_t)num) {
        fail(P, where, "line is longer than %d bytes; split it or shorten it", SCN_LINE_MAX);
        return NULL;
    }
    memcpy(str, start, len);
    str[len] = '\0';
    P->pos += len;
    const char *c = str;
    while (*c == ' ' || *c == '\t') c++;
    if (*c == '[') {
        char name[64] = "";
        const char *close = strchr(c, ']');
        size_t n = close ? (size_t)(close - c - 1) : 0;
        if (close && n < sizeof name) memcpy(name, c + 1, n), name[n] = '\0';
        int sec = section_index(name);
        if (sec < 0) {
            fail(P, where, "unknown section [%s]; the sections are [model], [batch], "
                 "[pipeline], [hardware], [network] and [costs]", name);
            return NULL;
        }
        if (P->section_line[sec] == 0) P->section_line[sec] = P->line;
    }
    return str;
}

static int on_key(void *user, const char *section, const char *key, const char *value) {
    Parser *P = user;
    char where[SCN_PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%d", P->name, P->line);
    if (P->failed) return 0;
    if (!section[0]) return fail(P, where, "'%s' comes before any [section]; put it under the "
                                 "section it belongs to, e.g. [model]", key);
    int k = key_index(section, key);
    if (k < 0) return unknown_key(P, where, section, key);
    if (P->key_line[k] > 0)
        return fail(P, where, "'%s' is given twice (first at line %d); keep one", key,
                    P->key_line[k]);
    P->key_line[k] = P->line;
    return set_value(P, k, where, value);
}

static int apply_set(Parser *P, int idx) {
    const char *arg = P->sets[idx];
    char where[600], buf[512];
    snprintf(where, sizeof where, "--set %.500s", arg);
    if (strlen(arg) >= sizeof buf)
        return fail(P, where, "override is longer than %zu bytes", sizeof buf - 1);
    strcpy(buf, arg);
    char *eq = strchr(buf, '='), *dot = strchr(buf, '.');
    if (!eq || !dot || dot > eq)
        return fail(P, where, "expected SECTION.KEY=VALUE, e.g. --set batch.micro_batches=64");
    *eq = *dot = '\0';
    char *sec = buf, *key = dot + 1, *val = eq + 1;
    while (*key == ' ') key++;
    for (char *e = eq - 1; e >= key && *e == ' '; e--) *e = '\0';
    while (*val == ' ') val++;
    for (char *e = val + strlen(val) - 1; e >= val && *e == ' '; e--) *e = '\0';
    if (section_index(sec) < 0)
        return fail(P, where, "unknown section '%s'; use model, batch, pipeline, hardware, "
                    "network or costs", sec);
    int k = key_index(sec, key);
    if (k < 0) return unknown_key(P, where, sec, key);
    P->key_line[k] = -(idx + 1);
    return set_value(P, k, where, val);
}

/* ---- defaults and validation -------------------------------------------------------------- */

static void init_defaults(Scenario *s) {
    s->model.dtype = DTYPE_BF16;
    s->batch.micro_batch_size = 1;
    s->batch.iterations = 1;
    s->pipeline.chunks = 1;
    s->pipeline.partition = PART_UNIFORM;
    s->hw.efficiency = 0.5;
    s->hw.gpus_per_node = 8;
    s->net.intra_latency_us = 10;
    s->net.inter_latency_us = 20;
    s->costs.forward_ms = s->costs.backward_ms = s->costs.weight_ms = s->costs.comm_ms = -1;
}

#define GIVEN(P, sec, key) ((P)->key_line[key_index(sec, key)] != 0)

static void fill_derived(Parser *P) {
    Scenario *s = P->s;
    if (!GIVEN(P, "model", "name")) {
        const char *base = strrchr(P->name, '/');
        base = base ? base + 1 : P->name;
        size_t n = strcspn(base, ".");
        char name[SCN_NAME_MAX] = "scenario";
        if (n > 0 && n < SCN_NAME_MAX) memcpy(name, base, n), name[n] = '\0';
        strcpy(s->model.name, plain_name(name) ? name : "scenario");
    }
    if (!GIVEN(P, "model", "ffn_hidden")) s->model.ffn_hidden = 4 * s->model.hidden;
    const GpuPreset *g = s->hw.gpu[0] ? gpu_preset_find(s->hw.gpu) : NULL;
    if (!GIVEN(P, "hardware", "peak_tflops") && g)
        s->hw.peak_tflops = s->model.dtype == DTYPE_FP32 ? g->peak_tflops_32 : g->peak_tflops_16;
    if (!GIVEN(P, "hardware", "memory_gib") && g) s->hw.memory_gib = g->memory_gib;
    if (!GIVEN(P, "network", "intra_bandwidth_gbs"))
        s->net.intra_bandwidth_gbs = g ? g->intra_bandwidth_gbs : 100;
    if (!GIVEN(P, "network", "inter_bandwidth_gbs"))
        s->net.inter_bandwidth_gbs = g ? g->inter_bandwidth_gbs : 25;
    if (s->costs.forward_ms >= 0 && s->costs.weight_ms < 0) s->costs.weight_ms = 0;
}

static int check_required(Parser *P) {
    char w[SCN_PATH_MAX + 64];
    for (int k = 0; k < NKEYS; k++) {
        if (!KEYS[k].required || P->key_line[k] != 0) continue;
        int sec = section_index(KEYS[k].section);
        if (P->section_line[sec] == 0)
            return fail(P, where_key(P, k, w, sizeof w), "missing section [%s]; add it with "
                        "at least '%s = %s'", KEYS[k].section, KEYS[k].key, KEYS[k].example);
        return fail(P, where_key(P, k, w, sizeof w), "missing key '%s' in [%s]; add e.g. "
                    "'%s = %s'", KEYS[k].key, KEYS[k].section, KEYS[k].key, KEYS[k].example);
    }
    if (P->s->hw.gpu[0] == '\0') {
        const char *need = !GIVEN(P, "hardware", "peak_tflops") ? "peak_tflops"
                           : !GIVEN(P, "hardware", "memory_gib") ? "memory_gib" : NULL;
        if (need)
            return fail(P, where_key(P, key_index("hardware", "gpu"), w, sizeof w),
                        "[hardware] needs a gpu preset (%s) or both peak_tflops and memory_gib; "
                        "'%s' is missing", gpu_preset_names(), need);
    }
    return 1;
}

static int check_costs(Parser *P) {
    char w[SCN_PATH_MAX + 64];
    const ScnCosts *c = &P->s->costs;
    bool f = GIVEN(P, "costs", "forward_ms");
    if (!f && (GIVEN(P, "costs", "backward_ms") || GIVEN(P, "costs", "weight_ms"))) {
        int k = key_index("costs", GIVEN(P, "costs", "backward_ms") ? "backward_ms" : "weight_ms");
        return fail(P, where_key(P, k, w, sizeof w), "'%s' needs forward_ms too; give "
                    "forward_ms and backward_ms (per micro-batch for a whole stage), or neither",
                    KEYS[k].key);
    }
    if (f && c->backward_ms < 0)
        return fail(P, where_key(P, key_index("costs", "forward_ms"), w, sizeof w),
                    "forward_ms needs backward_ms too; add e.g. 'backward_ms = %g'",
                    2 * c->forward_ms);
    return 1;
}

static int check_model(Parser *P) {
    char w[SCN_PATH_MAX + 64];
    const Scenario *s = P->s;
    if (s->model.hidden % s->model.heads != 0) {
        int64_t d = s->model.heads;
        while (s->model.hidden % d != 0) d--; // the nearest divisor below
        return fail(P, where_key(P, key_index("model", "heads"), w, sizeof w),
                    "heads = %lld does not divide hidden = %lld; use a divisor such as %lld",
                    (long long)s->model.heads, (long long)s->model.hidden, (long long)d);
    }
    double act = (double)s->batch.micro_batch_size * (double)s->model.seq_len *
                 (double)s->model.hidden * dtype_bytes(s->model.dtype);
    if (act > 0x1p50)
        return fail(P, where_key(P, key_index("batch", "micro_batch_size"), w, sizeof w),
                    "one activation (micro_batch_size x seq_len x hidden) would be %.3g bytes; "
                    "at most 2^50", act);
    return 1;
}

static int check_partition(Parser *P) {
    char w[SCN_PATH_MAX + 64];
    const Scenario *s = P->s;
    int64_t p = s->pipeline.stages, v = s->pipeline.chunks, L = s->model.layers, S = p * v;
    int kpart = key_index("pipeline", "partition");
    if (S > L)
        return fail(P, where_key(P, key_index("pipeline", "stages"), w, sizeof w),
                    "%lld stages x %lld chunks need at least %lld layers, and layers = %lld; "
                    "use fewer stages or chunks", (long long)p, (long long)v, (long long)S,
                    (long long)L);
    if (s->pipeline.partition == PART_UNIFORM && L % S != 0) {
        char list[256] = ""; // a split that works: the first L % S stages take one more layer
        for (int64_t i = 0; i < S && strlen(list) < sizeof list - 32; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%lld", i ? "," : "",
                     (long long)(L / S + (i < L % S)));
        if (strlen(list) >= sizeof list - 32) strcat(list, ",...");
        return fail(P, where_key(P, key_index("model", "layers"), w, sizeof w),
                    "%lld layers do not split evenly into %lld stages x %lld chunks under "
                    "partition = uniform; list the layers per stage (partition = %s) or make "
                    "layers a multiple of %lld",
                    (long long)L, (long long)p, (long long)v, list, (long long)S);
    }
    if (s->pipeline.partition != PART_EXPLICIT) return 1;
    if (s->pipeline.npartition != S)
        return fail(P, where_key(P, kpart, w, sizeof w), "partition lists %lld stages but the "
                    "pipeline has %lld (stages x chunks, chunk-major); give %lld counts",
                    (long long)s->pipeline.npartition, (long long)S, (long long)S);
    int64_t sum = 0;
    for (int64_t i = 0; i < S; i++) sum += s->pipeline.partition_layers[i];
    if (sum != L)
        return fail(P, where_key(P, kpart, w, sizeof w), "partition covers %lld layers but the "
                    "model has layers = %lld; every layer must be in exactly one stage",
                    (long long)sum, (long long)L);
    return 1;
}

static int check_schedule(Parser *P) {
    char w[SCN_PATH_MAX + 64];
    const Scenario *s = P->s;
    const Schedule *sc = sched_find(s->pipeline.schedule);
    SchedParams sp = {.devices = (int32_t)s->pipeline.stages, .chunks = (int32_t)s->pipeline.chunks,
                      .micro_batches = (int32_t)s->batch.micro_batches,
                      .file = s->pipeline.schedule_file};
    if (s->pipeline.schedule_file[0] && strcmp(s->pipeline.schedule, "custom") != 0)
        return fail(P, where_key(P, key_index("pipeline", "schedule_file"), w, sizeof w),
                    "schedule_file is only read with schedule = custom, and schedule = %s; "
                    "remove it or set schedule = custom", s->pipeline.schedule);
    SchedIssue issue = {.key = "pipeline.schedule"};
    if (sc->validate(&sp, &issue) != 0) {
        char sec[32] = "";
        const char *dot = strchr(issue.key, '.');
        size_t n = dot ? (size_t)(dot - issue.key) : 0;
        if (n < sizeof sec) memcpy(sec, issue.key, n);
        int k = key_index(sec, dot ? dot + 1 : issue.key);
        if (k < 0) k = key_index("pipeline", "schedule");
        return fail(P, where_key(P, k, w, sizeof w), "%s", issue.msg);
    }
    double ops = 2.0 * (double)s->pipeline.stages * (double)s->pipeline.chunks *
                 (double)s->batch.micro_batches * (double)s->batch.iterations;
    if (ops > (double)SCN_MAX_OPS)
        return fail(P, where_key(P, key_index("batch", "micro_batches"), w, sizeof w),
                    "this run has %.3g ops (2 x stages x chunks x micro_batches x iterations); "
                    "at most %lld", ops, (long long)SCN_MAX_OPS);
    return 1;
}

static int validate(Parser *P) {
    return check_required(P) && check_costs(P) && check_model(P) && check_partition(P) &&
           check_schedule(P);
}

/* ---- public ------------------------------------------------------------------------------- */

int scenario_parse(const char *text, const char *name, const char *const *sets, int nsets,
                   Scenario *out, char err[SCN_ERR_MAX]) {
    memset(out, 0, sizeof *out);
    err[0] = '\0';
    snprintf(out->path, sizeof out->path, "%s", name);
    Parser P = {.s = out, .name = out->path, .text = text, .sets = sets,
                .err = err};
    init_defaults(out);
    size_t len = strlen(text);
    out->text = malloc(len + 1);
    if (!out->text) return fail(&P, name, "out of memory"), 1;
    memcpy(out->text, text, len + 1);
    ini_allow_multiline = false; // one key per line, so every key has its own line number
    ini_use_stack = false;
    ini_initial_alloc = ini_max_line = SCN_LINE_MAX + 2;
    P.in_file = true;
    int rc = ini_parse_stream(read_line, &P, on_key, &P);
    P.in_file = false;
    if (rc > 0 && !P.failed) {
        char where[SCN_PATH_MAX + 32];
        snprintf(where, sizeof where, "%s:%d", P.name, rc);
        fail(&P, where, "expected 'key = value', '[section]' or a comment (; or #)");
    } else if (rc < 0 && !P.failed) {
        fail(&P, name, "out of memory while parsing");
    }
    for (int i = 0; i < nsets && !P.failed; i++) apply_set(&P, i);
    if (!P.failed) fill_derived(&P);
    if (!P.failed) validate(&P);
    return P.failed ? 2 : 0;
}

int scenario_load(const char *path, const char *const *sets, int nsets, Scenario *out,
                  char err[SCN_ERR_MAX]) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, SCN_ERR_MAX, "cannot read '%s': %s", path, strerror(errno));
        return 1;
    }
    char *text = malloc(SCN_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, SCN_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    int rc = 0;
    if (!text || bad) {
        snprintf(err, SCN_ERR_MAX, "cannot read '%s': %s", path, text ? "read error" : "out of memory");
        rc = 1;
    } else if (n > SCN_FILE_MAX) {
        snprintf(err, SCN_ERR_MAX, "%s: larger than %d MiB; a scenario is a short text file",
                 path, SCN_FILE_MAX >> 20);
        rc = 2;
    } else if (memchr(text, '\0', n)) {
        size_t at = (size_t)((char *)memchr(text, '\0', n) - text);
        int line = 1;
        for (size_t i = 0; i < at; i++) line += text[i] == '\n';
        snprintf(err, SCN_ERR_MAX, "%s:%d: contains a NUL byte; a scenario is a text file "
                 "(INI: [section] and key = value lines)", path, line);
        rc = 2;
    } else {
        text[n] = '\0';
        rc = scenario_parse(text, path, sets, nsets, out, err);
    }
    free(text);
    return rc;
}

void scenario_free(Scenario *s) {
    free(s->text);
    free(s->pipeline.partition_layers);
    memset(s, 0, sizeof *s);
}

/* Appends printf output to a growing string; *buf becomes NULL when out of memory. */
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    if (!*buf) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        char *grown = realloc(*buf, *cap * 2 + (size_t)n);
        if (!grown) {
            free(*buf);
            *buf = NULL;
            return;
        }
        *buf = grown;
        *cap = *cap * 2 + (size_t)n;
    }
}

char *scenario_format(const Scenario *s) {
    size_t len = 0, cap = 1024;
    char *buf = malloc(cap);
    const char *section = "";
    for (int k = 0; k < NKEYS && buf; k++) {
        const KeyDef *kd = &KEYS[k];
        const void *field = (const char *)s + kd->offset;
        if (kd->type == T_DOUBLE && *(const double *)field < 0) continue; // unset [costs]
        if ((kd->type == T_GPU || kd->type == T_PATH) && ((const char *)field)[0] == '\0')
            continue;
        if (strcmp(section, kd->section) != 0)
            append(&buf, &len, &cap, "%s[%s]\n", len ? "\n" : "", section = kd->section);
        append(&buf, &len, &cap, "%s = ", kd->key);
        switch (kd->type) {
        case T_INT: append(&buf, &len, &cap, "%lld\n", (long long)*(const int64_t *)field); break;
        case T_DOUBLE: append(&buf, &len, &cap, "%.17g\n", *(const double *)field); break;
        case T_DTYPE: append(&buf, &len, &cap, "%s\n", dtype_name(s->model.dtype)); break;
        case T_PARTITION:
            if (s->pipeline.partition != PART_EXPLICIT) {
                append(&buf, &len, &cap, "%s\n",
                       s->pipeline.partition == PART_UNIFORM ? "uniform" : "balanced");
                break;
            }
            for (int64_t i = 0; i < s->pipeline.npartition; i++)
                append(&buf, &len, &cap, "%lld%s", (long long)s->pipeline.partition_layers[i],
                       i + 1 < s->pipeline.npartition ? "," : "\n");
            break;
        default: append(&buf, &len, &cap, "%s\n", (const char *)field); break;
        }
    }
    return buf;
}
