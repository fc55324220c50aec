/* test_balance.c: router/balance.c, the choice among a model's deployments: exact picks for
 * given random draws, the weighted distribution over many draws, least in flight per unit of
 * weight with ties shared by weight, standby (weight 0) deployments, ineligible ones. */
#include <stdint.h>

#include "router/internal.h"
#include "tests/check.h"

static uint64_t rng = 0x853c49e6748fea9bULL;
static double uniform(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1.0p-53;
}

#define C(w, f, e) {.weight = (w), .in_flight = (f), .eligible = (e)}

static void test_weighted(void) {
  struct rt_pick_cand c[3] = {C(1, 0, true), C(3, 0, true), C(0, 0, true)};
  /* cumulative weights 1, 4 of 4: u*4 in [0,1) -> 0, [1,4) -> 1; the standby is never used */
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, c, 3, 0.0), 0);
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, c, 3, 0.249), 0);
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, c, 3, 0.25), 1);
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, c, 3, 0.999999), 1);
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, c, 3, 7.0), 0);   /* out of range -> 0 */
  /* the distribution: 1:3 over 40000 draws, within 1.5% */
  int n[3] = {0, 0, 0};
  for (int i = 0; i < 40000; i++) n[rt_balance_pick(POL_BALANCE_WEIGHTED, c, 3, uniform())]++;
  CHECK_NEAR(n[0] / 40000.0, 0.25, 0.015);
  CHECK_NEAR(n[1] / 40000.0, 0.75, 0.015);
  CHECK_EQ_INT(n[2], 0);
  /* an ineligible deployment is never chosen, the others keep their ratio */
  struct rt_pick_cand d[4] = {C(5, 0, false), C(1, 0, true), C(2, 0, true), C(1, 0, true)};
  int m[4] = {0, 0, 0, 0};
  for (int i = 0; i < 40000; i++) m[rt_balance_pick(POL_BALANCE_WEIGHTED, d, 4, uniform())]++;
  CHECK_EQ_INT(m[0], 0);
  CHECK_NEAR(m[2] / 40000.0, 0.5, 0.015);
  CHECK_NEAR(m[1] / 40000.0, 0.25, 0.015);
}

static void test_standby_and_none(void) {
  /* only standbys eligible: they share equally */
  struct rt_pick_cand c[3] = {C(4, 0, false), C(0, 0, true), C(0, 0, true)};
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, c, 3, 0.1), 1);
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, c, 3, 0.6), 2);
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_LEAST_IN_FLIGHT, c, 3, 0.1), 1);
  c[1].in_flight = 2;
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_LEAST_IN_FLIGHT, c, 3, 0.1), 2);
  /* nothing eligible */
  struct rt_pick_cand z[2] = {C(1, 0, false), C(0, 0, false)};
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, z, 2, 0.5), -1);
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_LEAST_IN_FLIGHT, z, 2, 0.5), -1);
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_WEIGHTED, z, 0, 0.5), -1);
}

static void test_least_in_flight(void) {
  /* fewest in flight wins whatever u is */
  struct rt_pick_cand c[3] = {C(1, 3, true), C(1, 1, true), C(1, 2, true)};
  for (double u = 0; u < 1; u += 0.1) CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_LEAST_IN_FLIGHT, c, 3, u), 1);
  /* per unit of weight: 4 in flight at weight 4 (1.0) beats 2 at weight 1 (2.0) */
  struct rt_pick_cand d[2] = {C(1, 2, true), C(4, 4, true)};
  CHECK_EQ_INT(rt_balance_pick(POL_BALANCE_LEAST_IN_FLIGHT, d, 2, 0.0), 1);
  /* ties are shared by weight: 1:3 */
  struct rt_pick_cand t[3] = {C(1, 0, true), C(3, 0, true), C(1, 5, true)};
  int n[3] = {0, 0, 0};
  for (int i = 0; i < 40000; i++) n[rt_balance_pick(POL_BALANCE_LEAST_IN_FLIGHT, t, 3, uniform())]++;
  CHECK_EQ_INT(n[2], 0);
  CHECK_NEAR(n[0] / 40000.0, 0.25, 0.015);
  /* requests arriving while none finishes: least in flight keeps the counts within one of each
   * other at every step (weighted random would drift by about sqrt(n)) */
  struct rt_pick_cand s[4] = {C(1, 0, true), C(1, 0, true), C(1, 0, true), C(1, 0, true)};
  for (int i = 0; i < 1000; i++) {
    int k = rt_balance_pick(POL_BALANCE_LEAST_IN_FLIGHT, s, 4, uniform());
    s[k].in_flight++;
    int lo = s[0].in_flight, hi = lo;
    for (int j = 1; j < 4; j++) {
      if (s[j].in_flight < lo) lo = s[j].in_flight;
      if (s[j].in_flight > hi) hi = s[j].in_flight;
    }
    if (hi - lo > 1) {
      CHECK_MSG(0, "in flight spread %d..%d after %d picks", lo, hi, i + 1);
      break;
    }
  }
  CHECK_EQ_INT(s[0].in_flight + s[1].in_flight + s[2].in_flight + s[3].in_flight, 1000);
  CHECK_EQ_INT(s[0].in_flight, 250);
}

int main(void) {
  test_weighted();
  test_standby_and_none();
  test_least_in_flight();
  return check_done();
}
