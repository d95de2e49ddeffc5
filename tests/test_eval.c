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
    assert_true(fabs(trh_pareto_random(cost, acc, 5, 0.5) - 0.4) < 1e-12);  /* below the cheapest */
    assert_true(fabs(trh_pareto_random(cost, acc, 5, 1.0) - 0.4) < 1e-12);
    assert_true(fabs(trh_pareto_random(cost, acc, 5, 2.0) - 0.55) < 1e-12); /* A-C line, above B */
    assert_true(fabs(trh_pareto_random(cost, acc, 5, 3.0) - 0.7) < 1e-12);
    assert_true(fabs(trh_pareto_random(cost, acc, 5, 4.0) - 0.725) < 1e-12);
    assert_true(fabs(trh_pareto_random(cost, acc, 5, 9.0) - 0.75) < 1e-12); /* flat */
    /* One model; equal costs keep the more accurate. */
    const double c1[] = {2}, a1[] = {0.3};
    assert_true(fabs(trh_pareto_random(c1, a1, 1, 5) - 0.3) < 1e-12);
    const double c2[] = {1, 1, 4}, a2[] = {0.2, 0.5, 0.8};
    assert_true(fabs(trh_pareto_random(c2, a2, 3, 1) - 0.5) < 1e-12);
    assert_true(fabs(trh_pareto_random(c2, a2, 3, 2.5) - 0.65) < 1e-12);
    /* The most accurate model is also the cheapest: flat everywhere. */
    const double c3[] = {1, 3}, a3[] = {0.9, 0.5};
    assert_true(fabs(trh_pareto_random(c3, a3, 2, 2) - 0.9) < 1e-12);
}

static void test_hull_and_area(void **state)
{
    /* The hull of A (0, .4), B (.25, .45) under it, C (.5, .7), D (1, .75):
     * A -> C -> D; area .5 * (.4 + .7) / 2 + .5 * (.7 + .75) / 2 = .6375. */
    const double c[] = {0.25, 0, 1, 0.5}, a[] = {0.45, 0.4, 0.75, 0.7};
    double hc[4], ha[4];
    assert_int_equal(trh_hull(c, a, 4, hc, ha), 3);
    assert_true(hc[0] == 0 && hc[1] == 0.5 && hc[2] == 1);
    double q[1001];
    for (int g = 0; g < 1001; g++)
        q[g] = trh_hull_at(hc, ha, 3, g / 1000.0);
    assert_true(fabs(q[250] - 0.55) < 1e-12);
    assert_true(fabs(trh_curve_area(q, 1001) - 0.6375) < 1e-12);
    /* A single point: flat. */
    assert_int_equal(trh_hull(a, a, 1, hc, ha), 1);
    assert_true(trh_hull_at(hc, ha, 1, 0.9) == 0.45);
}

static void test_operating_points(void **state)
{
    /* A curve at costs 0, .25, .5, .75, 1; the cheapest model .4, the best
     * .7. PGR at the points: 0, 1/3, 2/3, 1, 1; trapezoids: APGR =
     * (1/6 + 1/2 + 5/6 + 1) / 4 = .625 = (Area .5875 - .4) / (.7 - .4). */
    const double q[] = {0.4, 0.5, 0.6, 0.7, 0.7};
    assert_int_equal(trh_curve_first_reach(q, 5, 0.1), 0);
    assert_int_equal(trh_curve_first_reach(q, 5, 0.6), 2);
    assert_int_equal(trh_curve_first_reach(q, 5, 0.6 + 1e-13), 2); /* rounding: reached */
    assert_int_equal(trh_curve_first_reach(q, 5, 0.65), 3);
    assert_int_equal(trh_curve_first_reach(q, 5, 0.7), 3);
    assert_int_equal(trh_curve_first_reach(q, 5, 0.71), UINT32_MAX); /* never: CPT null */
    assert_true(fabs(trh_curve_apgr(q, 5, 0.4, 0.7) - 0.625) < 1e-12);
    assert_true(fabs(trh_curve_area(q, 5) - 0.5875) < 1e-12);
    /* Not clipped: a curve under the cheapest model recovers a negative gap,
     * one over the best more than all of it (PGR 0, 2, 2: 1.5). */
    const double low[] = {0.3, 0.3, 0.3}, high[] = {0.4, 1.0, 1.0};
    assert_true(fabs(trh_curve_apgr(low, 3, 0.4, 0.7) + 1.0 / 3) < 1e-12);
    assert_true(fabs(trh_curve_apgr(high, 3, 0.4, 0.7) - 1.5) < 1e-12);
    /* No gap to recover: undefined. */
    assert_true(isnan(trh_curve_apgr(q, 5, 0.7, 0.7)));
    assert_true(isnan(trh_curve_apgr(q, 5, 0.7, 0.4)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pareto_random_hull),
                                       cmocka_unit_test(test_hull_and_area),
                                       cmocka_unit_test(test_operating_points)};
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
