/* sim/run/runenv.h: what a run ran on, as name/value text stored with it (the store's run_env
 * table): the pipesim, compiler and SQLite versions and the host every run has, and what a
 * tool adds (pexec: BLAS, MPI, CUDA/NCCL versions, GPU, OMP_/OPENBLAS_/NCCL_/CUDA_ variables).
 * It collects; it does not store or print (run.c and pexport do). */
#ifndef PIPESIM_RUNENV_H
#define PIPESIM_RUNENV_H

#include <stddef.h>

#include "traces/store.h"

/* Name/value pairs with distinct names, in the order first added; owns every string (the
 * StoreEnv view is only borrowed const). Zero-initialised it is empty. */
typedef struct {
    StoreEnv *pairs; // [n] malloc'd strings
    size_t n, cap;
} RunEnv;

/* runenv_add sets name to value (copies both; a name already there gets the new value, in its
 * old place). Trailing newlines and blanks of value are dropped (library banners end so).
 * Returns 0, or -1 out of memory (env unchanged). */
int runenv_add(RunEnv *env, const char *name, const char *value);

/* runenv_add_vars adds every environment variable whose name starts with prefix (e.g. "OMP_"),
 * under its own name, in name order. Returns the number added, or -1 out of memory. */
int runenv_add_vars(RunEnv *env, const char *prefix);

/* runenv_add_base adds what every stored run carries: pipesim_version (PIPESIM_VERSION), host
 * (gethostname), compiler (__VERSION__ of the compiler that built pipesim) and sqlite_version
 * (sqlite3_libversion(), the library loaded at run time). 0, or -1 out of memory. */
int runenv_add_base(RunEnv *env);

/* The value set for name, or NULL. */
const char *runenv_get(const RunEnv *env, const char *name);

void runenv_free(RunEnv *env);

#endif
