/* Evaluation baselines on hand-made points. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pareto.h"

static void test_pareto_random_hull(void **state)
{
    /* Models: A (1, 0.4), B (2, 0.5) under the hull, C (3, 0.7), D (5, 0.75),
     * E (6, 0.6) dominated. Hull: A -> C -> D, then flat. */
    const double cost[] = {1, 2, 3, 5, 6}, acc[] = {0.4, 0.5, 0.7, 0.75, 0.6};
    assert_true(fabs(tr_pareto_random(cost, acc, 5, 0.5) - 0.4) < 1e-12);  /* below the cheapest */
    assert_true(fabs(tr_pareto_random(cost, acc, 5, 1.0) - 0.4) < 1e-12);
    assert_true(fabs(tr_pareto_random(cost, acc, 5, 2.0) - 0.55) < 1e-12); /* A-C line, above B */
    assert_true(fabs(tr_pareto_random(cost, acc, 5, 3.0) - 0.7) < 1e-12);
    assert_true(fabs(tr_pareto_random(cost, acc, 5, 4.0) - 0.725) < 1e-12);
    assert_true(fabs(tr_pareto_random(cost, acc, 5, 9.0) - 0.75) < 1e-12); /* flat */
    /* One model; equal costs keep the more accurate. */
    const double c1[] = {2}, a1[] = {0.3};
    assert_true(fabs(tr_pareto_random(c1, a1, 1, 5) - 0.3) < 1e-12);
    const double c2[] = {1, 1, 4}, a2[] = {0.2, 0.5, 0.8};
    assert_true(fabs(tr_pareto_random(c2, a2, 3, 1) - 0.5) < 1e-12);
    assert_true(fabs(tr_pareto_random(c2, a2, 3, 2.5) - 0.65) < 1e-12);
    /* The most accurate model is also the cheapest: flat everywhere. */
    const double c3[] = {1, 3}, a3[] = {0.9, 0.5};
    assert_true(fabs(tr_pareto_random(c3, a3, 2, 2) - 0.9) < 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pareto_random_hull)};
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
