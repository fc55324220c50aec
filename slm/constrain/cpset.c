/*
 * cpset.c: sets of Unicode scalar values (code points without the surrogates) as interval lists:
 * what a regex character class, \d or "." means, and the edge labels of the automata.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

void cpset_init(struct cpset *s) {
  s->r = NULL;
  s->n = s->cap = 0;
}

void cpset_free(struct cpset *s) {
  free(s->r);
  cpset_init(s);
}

bool cpset_empty(const struct cpset *s) { return s->n == 0; }

/* Inserts [lo, hi] (no surrogates inside) and merges neighbours. */
static int add_raw(struct cpset *s, uint32_t lo, uint32_t hi) {
  /* find the first interval whose hi + 1 >= lo */
  size_t i = 0;
  while (i < s->n && s->r[2 * i + 1] + 1 < lo) i++;
  size_t j = i;   /* intervals [i, j) overlap or touch [lo, hi] */
  while (j < s->n && s->r[2 * j] <= hi + 1) {
    if (s->r[2 * j] < lo) lo = s->r[2 * j];
    if (s->r[2 * j + 1] > hi) hi = s->r[2 * j + 1];
    j++;
  }
  if (j == i) {   /* insert */
    if (cn_grow(&s->r, &s->cap, 2 * (s->n + 1), sizeof *s->r)) return -ENOMEM;
    memmove(s->r + 2 * (i + 1), s->r + 2 * i, (s->n - i) * 2 * sizeof *s->r);
    s->n++;
  } else if (j > i + 1) {   /* merge j - i intervals into one */
    memmove(s->r + 2 * (i + 1), s->r + 2 * j, (s->n - j) * 2 * sizeof *s->r);
    s->n -= j - i - 1;
  }
  s->r[2 * i] = lo;
  s->r[2 * i + 1] = hi;
  return 0;
}

int cpset_add(struct cpset *s, uint32_t lo, uint32_t hi) {
  if (hi > CN_CP_MAX) hi = CN_CP_MAX;
  if (lo > hi) return 0;
  if (lo < 0xD800 && hi >= 0xD800) {
    int rc = add_raw(s, lo, 0xD7FF);
    if (rc) return rc;
    lo = 0xE000;
  } else if (lo >= 0xD800 && lo <= 0xDFFF) {
    lo = 0xE000;
  }
  if (lo > hi) return 0;
  return add_raw(s, lo, hi);
}

int cpset_add_set(struct cpset *s, const struct cpset *o) {
  for (size_t i = 0; i < o->n; i++)
    if (add_raw(s, o->r[2 * i], o->r[2 * i + 1])) return -ENOMEM;
  return 0;
}

int cpset_copy(struct cpset *d, const struct cpset *o) {
  d->n = 0;
  if (cn_grow(&d->r, &d->cap, 2 * o->n + 2, sizeof *d->r)) return -ENOMEM;
  if (o->n) memcpy(d->r, o->r, o->n * 2 * sizeof *o->r);
  d->n = o->n;
  return 0;
}

int cpset_negate(struct cpset *s) {
  struct cpset t;
  cpset_init(&t);
  uint32_t next = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (s->r[2 * i] > next && cpset_add(&t, next, s->r[2 * i] - 1)) goto oom;
    next = s->r[2 * i + 1] + 1;
  }
  if (next <= CN_CP_MAX && cpset_add(&t, next, CN_CP_MAX)) goto oom;
  free(s->r);
  *s = t;
  return 0;
oom:
  cpset_free(&t);
  return -ENOMEM;
}

int cpset_intersect(struct cpset *s, const struct cpset *o) {
  struct cpset t;
  cpset_init(&t);
  size_t i = 0, j = 0;
  while (i < s->n && j < o->n) {
    uint32_t lo = s->r[2 * i] > o->r[2 * j] ? s->r[2 * i] : o->r[2 * j];
    uint32_t hi = s->r[2 * i + 1] < o->r[2 * j + 1] ? s->r[2 * i + 1] : o->r[2 * j + 1];
    if (lo <= hi && add_raw(&t, lo, hi)) {
      cpset_free(&t);
      return -ENOMEM;
    }
    if (s->r[2 * i + 1] < o->r[2 * j + 1]) i++;
    else j++;
  }
  free(s->r);
  *s = t;
  return 0;
}

bool cpset_has(const struct cpset *s, uint32_t cp) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cp < s->r[2 * mid]) hi = mid;
    else if (cp > s->r[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}
