/* sim/run/runenv.c: the name/value list behind runenv.h. Lists are a few dozen pairs, so lookups
 * are linear scans; it reads the process environment but never changes it. */
#include "sim/run/runenv.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/run/version.h"

extern char **environ;

static char *dup_len(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = '\0';
    return d;
}

static char *dup_trimmed(const char *v) {
    size_t n = strlen(v);
    while (n > 0 && strchr(" \t\r\n", v[n - 1])) n--;
    return dup_len(v, n);
}

static StoreEnv *find(const RunEnv *env, const char *name) {
    for (size_t i = 0; i < env->n; i++)
        if (strcmp(env->pairs[i].name, name) == 0) return &env->pairs[i];
    return NULL;
}

int runenv_add(RunEnv *env, const char *name, const char *value) {
    char *v = dup_trimmed(value);
    if (!v) return -1;
    StoreEnv *old = find(env, name);
    if (old) {
        free((char *)old->value);
        old->value = v;
        return 0;
    }
    if (env->n == env->cap) {
        size_t cap = env->cap ? 2 * env->cap : 16;
        StoreEnv *more = realloc(env->pairs, cap * sizeof *more);
        if (!more) return free(v), -1;
        env->pairs = more, env->cap = cap;
    }
    char *k = dup_len(name, strlen(name));
    if (!k) return free(v), -1;
    env->pairs[env->n++] = (StoreEnv){k, v};
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* environ's "NAME=value" entries under prefix, sorted so the stored order is the same
 * whatever order the shell passed them in. */
int runenv_add_vars(RunEnv *env, const char *prefix) {
    size_t n = 0, plen = strlen(prefix);
    for (char **e = environ; *e; e++) n += strncmp(*e, prefix, plen) == 0;
    if (n == 0) return 0;
    const char **vars = malloc(n * sizeof *vars);
    if (!vars) return -1;
    n = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, prefix, plen) == 0) vars[n++] = *e;
    qsort(vars, n, sizeof *vars, cmp_str);
    int added = 0;
    for (size_t i = 0; i < n && added >= 0; i++) {
        const char *eq = strchr(vars[i], '=');
        if (!eq) continue; // not NAME=value: nothing to store
        char *name = dup_len(vars[i], (size_t)(eq - vars[i]));
        added = name && runenv_add(env, name, eq + 1) == 0 ? added + 1 : -1;
        free(name);
    }
    free(vars);
    return added;
}

int runenv_add_base(RunEnv *env) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "?");
#ifdef __VERSION__
    const char *compiler = __VERSION__;
#else
    const char *compiler = "unknown";
#endif
    const char *const pairs[][2] = {{"pipesim_version", PIPESIM_VERSION}, {"host", host},
                                    {"compiler", compiler},
                                    {"sqlite_version", sqlite3_libversion()}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (runenv_add(env, pairs[i][0], pairs[i][1]) != 0) return -1;
    return 0;
}

const char *runenv_get(const RunEnv *env, const char *name) {
    const StoreEnv *p = find(env, name);
    return p ? p->value : NULL;
}

void runenv_free(RunEnv *env) {
    for (size_t i = 0; i < env->n; i++)
        free((char *)env->pairs[i].name), free((char *)env->pairs[i].value);
    free(env->pairs);
    *env = (RunEnv){0};
}
