/* tests/test_runenv.c: the run environment list (sim/run/runenv.h): adding, replacing in place,
 * trimming library banners, the environment variables under a prefix in name order, and the
 * four pairs every run carries with the values their sources give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "sim/run/runenv.h"
#include "sim/run/version.h"

static void test_add_replace_trim(void **state) {
    (void)state;
    RunEnv e = {0};
    assert_int_equal(runenv_add(&e, "b", "one"), 0);
    assert_int_equal(runenv_add(&e, "a", "Open MPI v4.1.4, May 2022 \n\n"), 0);
    assert_int_equal(runenv_add(&e, "b", "two"), 0); // replaced, still first
    assert_int_equal(e.n, 2);
    assert_string_equal(e.pairs[0].name, "b");
    assert_string_equal(e.pairs[0].value, "two");
    assert_string_equal(runenv_get(&e, "a"), "Open MPI v4.1.4, May 2022");
    assert_null(runenv_get(&e, "c"));
    for (int i = 0; i < 100; i++) { // past the first allocation
        char k[16];
        snprintf(k, sizeof k, "k%03d", i);
        assert_int_equal(runenv_add(&e, k, k), 0);
    }
    assert_int_equal(e.n, 102);
    assert_string_equal(runenv_get(&e, "k099"), "k099");
    runenv_free(&e);
    assert_int_equal(e.n, 0);
    assert_null(e.pairs);
}

static void test_vars_under_prefix_in_order(void **state) {
    (void)state;
    setenv("PSIMTEST_ZZ", "last", 1);
    setenv("PSIMTEST_AA", "x=y, z", 1);
    setenv("PSIMTESTX", "no underscore", 1);
    setenv("OTHER_PSIMTEST_A", "not under the prefix", 1);
    RunEnv e = {0};
    assert_int_equal(runenv_add_vars(&e, "PSIMTEST_"), 2);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.pairs[0].name, "PSIMTEST_AA");
    assert_string_equal(e.pairs[0].value, "x=y, z"); // split at the first '='
    assert_string_equal(e.pairs[1].name, "PSIMTEST_ZZ");
    assert_int_equal(runenv_add_vars(&e, "NO_SUCH_PREFIX_"), 0);
    setenv("PSIMTEST_ZZ", "changed", 1);
    assert_int_equal(runenv_add_vars(&e, "PSIMTEST_"), 2); // again: replaced, not repeated
    assert_int_equal(e.n, 2);
    assert_string_equal(runenv_get(&e, "PSIMTEST_ZZ"), "changed");
    runenv_free(&e);
    unsetenv("PSIMTEST_ZZ"), unsetenv("PSIMTEST_AA"), unsetenv("PSIMTESTX");
    unsetenv("OTHER_PSIMTEST_A");
}

static void test_base_pairs(void **state) {
    (void)state;
    RunEnv e = {0};
    assert_int_equal(runenv_add_base(&e), 0);
    assert_int_equal(e.n, 4);
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    assert_string_equal(runenv_get(&e, "pipesim_version"), PIPESIM_VERSION);
    assert_string_equal(runenv_get(&e, "host"), host);
    assert_string_equal(runenv_get(&e, "compiler"), __VERSION__); // this file's compiler too
    assert_string_equal(runenv_get(&e, "sqlite_version"), sqlite3_libversion());
    runenv_free(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_replace_trim),
        cmocka_unit_test(test_vars_under_prefix_in_order),
        cmocka_unit_test(test_base_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
