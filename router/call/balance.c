/*
 * balance.c: which of a model's deployments takes the next attempt (contract in internal.h).
 *
 * Pure: the caller says which deployments are eligible (breaker ready, key present, reachable
 * from this surface, not ruled out for this request) and supplies the random number, so the
 * choice is unit-tested exactly (tests/router/test_balance.c).
 *
 *   weighted         deployment i with probability weight_i / sum of weights
 *   least_in_flight  the fewest calls running relative to weight (in_flight / weight); ties are
 *                    broken by weight, at random, so equal deployments share the load
 *
 * Weight 0 marks a standby deployment: used only when no deployment with a weight is eligible
 * (a primary/secondary pair is `weight: 1` + `weight: 0`); standbys share the load equally.
 */
#include "router/internal.h"

int rt_balance_pick(enum pol_balance how, const struct rt_pick_cand *c, size_t n, double u) {
  if (!(u >= 0.0) || u >= 1.0) u = 0.0;
  bool any_weighted = false, any = false;
  for (size_t i = 0; i < n; i++) {
    if (!c[i].eligible) continue;
    any = true;
    if (c[i].weight > 0) any_weighted = true;
  }
  if (!any) return -1;
  /* the pool: eligible deployments with a weight, else the eligible standbys (weight 1 each) */
#define IN_POOL(i) (c[i].eligible && (any_weighted ? c[i].weight > 0 : c[i].weight == 0))
#define W(i) (any_weighted ? (double)c[i].weight : 1.0)
  double best = 0;
  bool have_best = false;
  if (how == POL_BALANCE_LEAST_IN_FLIGHT) {
    /* smallest load per unit of weight (the same expression below, so == is exact) */
    for (size_t i = 0; i < n; i++) {
      if (!IN_POOL(i)) continue;
      double load = (double)(c[i].in_flight > 0 ? c[i].in_flight : 0) / W(i);
      if (!have_best || load < best) best = load;
      have_best = true;
    }
  }
  double total = 0;
  for (size_t i = 0; i < n; i++) {
    if (!IN_POOL(i)) continue;
    if (how == POL_BALANCE_LEAST_IN_FLIGHT &&
        (double)(c[i].in_flight > 0 ? c[i].in_flight : 0) / W(i) != best)
      continue;
    total += W(i);
  }
  double x = u * total;
  size_t last = n;
  for (size_t i = 0; i < n; i++) {
    if (!IN_POOL(i)) continue;
    if (how == POL_BALANCE_LEAST_IN_FLIGHT &&
        (double)(c[i].in_flight > 0 ? c[i].in_flight : 0) / W(i) != best)
      continue;
    last = i;
    if (x < W(i)) return (int)i;
    x -= W(i);
  }
#undef IN_POOL
#undef W
  return (int)last;   /* rounding at the top end of u */
}
