/* sim/sched/custom.c: "custom": the Program is read from a schedule file (sched_file.h), so
 * any framework's schedule, or a hand-written one, can be timed. It is checked like any. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sched/schedule.h"
#include "sim/sched/sched_file.h"

#define SCHED_FILE_MAX (256 * 1024 * 1024) // bytes

static int custom_validate(const SchedParams *sp, SchedIssue *issue) {
    if (sp->file && sp->file[0]) return 0;
    issue->key = "pipeline.schedule_file";
    snprintf(issue->msg, sizeof issue->msg,
             "schedule = custom needs schedule_file = PATH, a file with one line of actions per "
             "device (see README, schedule files; psim --dump-schedule writes one)");
    return -1;
}

/* Reads the whole file; returns a malloc'd string, or NULL with the reason in issue. */
static char *slurp(const char *path, SchedIssue *issue) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(issue->msg, sizeof issue->msg, "cannot read schedule file '%s': %s", path,
                 strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap + 1);
    while (text) {
        n += fread(text + n, 1, cap - n, f);
        if (n < cap || cap >= SCHED_FILE_MAX) break;
        char *grown = realloc(text, cap * 2 + 1);
        if (!grown) free(text);
        text = grown, cap *= 2;
    }
    int failed = ferror(f) ? errno : 0; // e.g. EISDIR: the path names a folder
    fclose(f);
    if (text && failed) {
        snprintf(issue->msg, sizeof issue->msg, "cannot read schedule file '%s': %s", path,
                 strerror(failed));
        free(text);
        return NULL;
    }
    if (!text) snprintf(issue->msg, sizeof issue->msg, "out of memory reading '%s'", path);
    else if (n == cap) {
        snprintf(issue->msg, sizeof issue->msg, "%s: larger than %d MiB", path, SCHED_FILE_MAX >> 20);
        free(text);
        text = NULL;
    } else if (memchr(text, '\0', n)) {
        snprintf(issue->msg, sizeof issue->msg, "%s: contains a NUL byte; a schedule file is "
                 "text", path);
        free(text);
        text = NULL;
    } else {
        text[n] = '\0';
    }
    return text;
}

static int custom_build(const SchedParams *sp, Program *out, SchedIssue *issue) {
    issue->key = "pipeline.schedule_file";
    char *text = slurp(sp->file, issue);
    if (!text) return 2;
    int rc = sched_file_parse(text, sp->file, sp, out, issue->msg, sizeof issue->msg);
    free(text);
    return rc;
}

const Schedule SCHED_CUSTOM = {
    .name = "custom",
    .summary = "read from schedule_file: one line of actions (0F0, 1I0, 1W0, 0B1) per device",
    .validate = custom_validate,
    .build = custom_build,
};
