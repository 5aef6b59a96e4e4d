/* sim/sched/table.c: the table of schedules. Adding a schedule is one new file and one line here. */
#include "sim/sched/schedule.h"

#include <stdio.h>
#include <string.h>

extern const Schedule SCHED_GPIPE;
extern const Schedule SCHED_1F1B;
extern const Schedule SCHED_INTERLEAVED;
extern const Schedule SCHED_PIPEDREAM;
extern const Schedule SCHED_PIPEDREAM_2BW;
extern const Schedule SCHED_ZB_H1;
extern const Schedule SCHED_ZB_H2;
extern const Schedule SCHED_ZB_V;
extern const Schedule SCHED_ZB_1P;
extern const Schedule SCHED_ZB_2P;
extern const Schedule SCHED_ZB_AUTO;
extern const Schedule SCHED_ZB_EXACT;
extern const Schedule SCHED_DUALPIPE;
extern const Schedule SCHED_DUALPIPEV;
extern const Schedule SCHED_CUSTOM;

static const Schedule *const SCHEDULES[] = {
    &SCHED_GPIPE,
    &SCHED_1F1B,
    &SCHED_INTERLEAVED,
    &SCHED_PIPEDREAM,
    &SCHED_PIPEDREAM_2BW,
    &SCHED_ZB_H1,
    &SCHED_ZB_H2,
    &SCHED_ZB_V,
    &SCHED_DUALPIPE,
    &SCHED_DUALPIPEV,
    &SCHED_ZB_1P,
    &SCHED_ZB_2P,
    &SCHED_ZB_AUTO,
    &SCHED_ZB_EXACT,
    &SCHED_CUSTOM,
};
#define NSCHEDULES (sizeof SCHEDULES / sizeof SCHEDULES[0])

const Schedule *sched_find(const char *name) {
    for (size_t i = 0; i < NSCHEDULES; i++)
        if (strcmp(SCHEDULES[i]->name, name) == 0) return SCHEDULES[i];
    return NULL;
}

const char *sched_names(void) {
    static char names[64 * NSCHEDULES]; // ", " and a name of at most 62 bytes each
    if (names[0]) return names;
    size_t len = 0;
    for (size_t i = 0; i < NSCHEDULES; i++) {
        int w = snprintf(names + len, sizeof names - len, "%s%.62s", i ? ", " : "",
                         SCHEDULES[i]->name);
        len += w > 0 ? (size_t)w : 0;
    }
    return names;
}

int32_t sched_pipes(const char *name) {
    const Schedule *sc = sched_find(name);
    return sc && sc->pipes > 1 ? sc->pipes : 1;
}

int sched_searched(const char *name) {
    const Schedule *sc = sched_find(name);
    return sc && sc->searched;
}
