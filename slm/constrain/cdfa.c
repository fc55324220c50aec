/*
 * cdfa.c: finite automata over Unicode code points.
 *
 * String values, object keys and number texts are languages over code points; this file builds
 * them (Thompson NFAs from regex.c, literals, length bounds), determinizes them (subset
 * construction with ^ and $ assertions), and combines them exactly (product automata for
 * intersection, union and difference; complement), so that allOf / not / oneOf over patterns,
 * lengths and enums mean exactly what they say. Edges carry code point intervals, so an
 * alphabet of 1.1M symbols costs no more than its distinct boundaries.
 *
 * DESIGN
 * Subset construction: a DFA state is a sorted set of NFA states plus an "at the start" flag (only
 * the start state has it: ^ edges are followed only there). $ edges are never followed while
 * reading; a DFA state accepts when the closure over epsilon and $ edges (and ^ at the start)
 * reaches the NFA's accept state. Outgoing edges are computed by a sweep over the interval
 * boundaries of all member states' edges.
 * Minimization: trim (drop states that cannot accept), then Moore refinement with signatures
 * (class, [lo, hi, class of target]...) hashed; adjacent intervals into the same class merge.
 * Every builder minimizes its result, so equal languages give isomorphic automata.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/cn.h"

/* ---------------------------------------------------------------- NFA */

void cnfa_init(struct cnfa *a, size_t max_states) {
  memset(a, 0, sizeof *a);
  a->max_states = max_states;
}

void cnfa_free(struct cnfa *a) {
  for (size_t i = 0; i < a->nsets; i++) cpset_free(&a->sets[i]);
  free(a->sets);
  free(a->e);
  memset(a, 0, sizeof *a);
}

uint32_t cnfa_state(struct cnfa *a) {
  if (a->max_states && a->n >= a->max_states) return UINT32_MAX;
  if (a->n == UINT32_MAX - 1) return UINT32_MAX;
  return a->n++;
}

int cnfa_edge(struct cnfa *a, uint32_t from, uint32_t to, int32_t label) {
  if (cn_grow(&a->e, &a->cap_e, a->ne + 1, sizeof *a->e)) return -ENOMEM;
  a->e[a->ne++] = (struct cnfa_edge){from, to, label};
  return 0;
}

int cnfa_set_edge(struct cnfa *a, uint32_t from, uint32_t to, const struct cpset *set) {
  if (cpset_empty(set)) return 0;   /* matches nothing */
  if (cn_grow(&a->sets, &a->cap_sets, a->nsets + 1, sizeof *a->sets)) return -ENOMEM;
  struct cpset *s = &a->sets[a->nsets];
  cpset_init(s);
  if (cpset_copy(s, set)) return -ENOMEM;
  a->nsets++;
  return cnfa_edge(a, from, to, (int32_t)(a->nsets - 1));
}

int cnfa_range_edge(struct cnfa *a, uint32_t from, uint32_t to, uint32_t lo, uint32_t hi) {
  struct cpset s;
  cpset_init(&s);
  int rc = cpset_add(&s, lo, hi);
  if (!rc) rc = cnfa_set_edge(a, from, to, &s);
  cpset_free(&s);
  return rc;
}

/* ---------------------------------------------------------------- DFA helpers */

void cdfa_free(struct cdfa *d) {
  free(d->off);
  free(d->e);
  free(d->acc);
  memset(d, 0, sizeof *d);
}

/* A DFA under construction: edges appended per state in state order. */
struct dbuild {
  uint32_t n;
  uint32_t *off;     /* off[s] = first edge of s; filled as states are finished */
  size_t cap_off;
  struct cdfa_edge *e;
  size_t ne, cap_e;
  uint8_t *acc;
  size_t cap_acc;
};

static int db_add_state(struct dbuild *b, bool acc) {
  if (cn_grow(&b->acc, &b->cap_acc, b->n + 1, 1)) return -ENOMEM;
  if (cn_grow(&b->off, &b->cap_off, b->n + 2, sizeof *b->off)) return -ENOMEM;
  b->acc[b->n] = acc;
  b->n++;
  return 0;
}

/* Appends an edge of the state currently being finished; merges with the previous edge when
 * contiguous and into the same target. */
static int db_edge(struct dbuild *b, size_t first, uint32_t lo, uint32_t hi, uint32_t to) {
  if (b->ne > first) {
    struct cdfa_edge *p = &b->e[b->ne - 1];
    if (p->to == to && (p->hi + 1 == lo || (p->hi == 0xD7FF && lo == 0xE000))) {
      p->hi = hi;
      return 0;
    }
  }
  if (cn_grow(&b->e, &b->cap_e, b->ne + 1, sizeof *b->e)) return -ENOMEM;
  b->e[b->ne++] = (struct cdfa_edge){lo, hi, to};
  return 0;
}

static void db_free(struct dbuild *b) {
  free(b->off);
  free(b->e);
  free(b->acc);
  memset(b, 0, sizeof *b);
}

/* Moves the finished build into OUT (off[] must have n + 1 entries set). */
static int db_finish(struct dbuild *b, struct cdfa *out) {
  memset(out, 0, sizeof *out);
  out->n = b->n;
  out->off = b->off;
  out->e = b->e ? b->e : malloc(sizeof *out->e);
  out->acc = b->acc ? b->acc : malloc(1);
  if (!out->off) out->off = calloc(1, sizeof *out->off);
  memset(b, 0, sizeof *b);
  if (!out->e || !out->acc || !out->off) {
    cdfa_free(out);
    return -ENOMEM;
  }
  return 0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------- subset construction */

struct nfa_csr {
  uint32_t *off;          /* n + 1 */
  struct cnfa_edge *e;    /* sorted by from */
};

static int csr_build(const struct cnfa *a, struct nfa_csr *c) {
  c->off = calloc((size_t)a->n + 1, sizeof *c->off);
  c->e = malloc((a->ne ? a->ne : 1) * sizeof *c->e);
  if (!c->off || !c->e) return -ENOMEM;
  for (size_t i = 0; i < a->ne; i++) c->off[a->e[i].from + 1]++;
  for (uint32_t s = 0; s < a->n; s++) c->off[s + 1] += c->off[s];
  uint32_t *fill = malloc(((size_t)a->n + 1) * sizeof *fill);
  if (!fill) return -ENOMEM;
  memcpy(fill, c->off, ((size_t)a->n + 1) * sizeof *fill);
  for (size_t i = 0; i < a->ne; i++) c->e[fill[a->e[i].from]++] = a->e[i];
  free(fill);
  return 0;
}

struct sweep_item { uint32_t lo, hi, to; };

static int cmp_sweep(const void *pa, const void *pb) {
  const struct sweep_item *a = pa, *b = pb;
  if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
  return a->to < b->to ? -1 : a->to > b->to;
}

struct subset {
  const struct cnfa *a;
  struct nfa_csr csr;
  uint32_t *mark;          /* generation marks per NFA state */
  uint32_t gen;
  uint32_t *stack;
  uint32_t *set;           /* closure result */
  size_t nset;
};

/* Epsilon closure of SEEDS (N of them) into s->set (sorted). BEGIN edges when AT_BEGIN. */
static void closure(struct subset *s, const uint32_t *seeds, size_t n, bool at_begin) {
  s->gen++;
  size_t sp = 0;
  s->nset = 0;
  for (size_t i = 0; i < n; i++)
    if (s->mark[seeds[i]] != s->gen) {
      s->mark[seeds[i]] = s->gen;
      s->stack[sp++] = seeds[i];
    }
  while (sp) {
    uint32_t q = s->stack[--sp];
    s->set[s->nset++] = q;
    for (uint32_t k = s->csr.off[q]; k < s->csr.off[q + 1]; k++) {
      const struct cnfa_edge *e = &s->csr.e[k];
      if (e->label == CN_EPS || (e->label == CN_BEGIN && at_begin)) {
        if (s->mark[e->to] != s->gen) {
          s->mark[e->to] = s->gen;
          s->stack[sp++] = e->to;
        }
      }
    }
  }
  qsort(s->set, s->nset, sizeof *s->set, cmp_u32);
}

/* Does the state set accept (following epsilon and $ edges, and ^ when AT_BEGIN)? */
static bool accepts(struct subset *s, const uint32_t *set, size_t n, bool at_begin) {
  s->gen++;
  size_t sp = 0;
  for (size_t i = 0; i < n; i++)
    if (s->mark[set[i]] != s->gen) {
      s->mark[set[i]] = s->gen;
      s->stack[sp++] = set[i];
    }
  while (sp) {
    uint32_t q = s->stack[--sp];
    if (q == s->a->accept) return true;
    for (uint32_t k = s->csr.off[q]; k < s->csr.off[q + 1]; k++) {
      const struct cnfa_edge *e = &s->csr.e[k];
      if (e->label == CN_EPS || e->label == CN_END || (e->label == CN_BEGIN && at_begin)) {
        if (s->mark[e->to] != s->gen) {
          s->mark[e->to] = s->gen;
          s->stack[sp++] = e->to;
        }
      }
    }
  }
  return false;
}

int cdfa_from_nfa(const struct cnfa *a, size_t max_states, struct cdfa *out) {
  memset(out, 0, sizeof *out);
  int rc = -ENOMEM;
  struct subset s;
  memset(&s, 0, sizeof s);
  s.a = a;
  struct cn_keymap km;
  struct dbuild b;
  memset(&b, 0, sizeof b);
  struct sweep_item *sw = NULL;
  size_t sw_cap = 0;
  uint32_t *targets = NULL, *tset = NULL;
  size_t t_cap = 0;
  struct sweep_item *active = NULL;
  size_t act_cap = 0;
  if (cn_km_init(&km)) goto done;
  if (csr_build(a, &s.csr)) goto done;
  size_t nn = (size_t)a->n + 1;
  s.mark = calloc(nn, sizeof *s.mark);
  s.stack = malloc(nn * sizeof *s.stack);
  s.set = malloc(nn * sizeof *s.set);
  tset = malloc(nn * sizeof *tset);
  if (!s.mark || !s.stack || !s.set || !tset) goto done;

  /* key layout: [at_begin flag, states...] */
  uint32_t *key = malloc((nn + 1) * sizeof *key);
  if (!key) goto done;
  closure(&s, &a->start, 1, true);
  key[0] = 1;
  memcpy(key + 1, s.set, s.nset * sizeof *key);
  bool added;
  if (cn_km_get(&km, key, s.nset + 1, &added) == UINT32_MAX) goto done_key;

  for (uint32_t cur = 0; cur < km.nkeys; cur++) {
    if (max_states && cur >= max_states) {
      rc = -E2BIG;
      goto done_key;
    }
    size_t ko = km.key_off[cur], kl = km.key_off[cur + 1] - ko;
    bool at_begin = km.pool[ko] != 0;
    /* copy the set: the pool may move while we insert */
    size_t n = kl - 1;
    if (cn_grow(&targets, &t_cap, n + 1, sizeof *targets)) goto done_key;
    memcpy(targets, km.pool + ko + 1, n * sizeof *targets);
    if (db_add_state(&b, accepts(&s, targets, n, at_begin))) goto done_key;
    b.off[cur] = (uint32_t)b.ne;
    size_t first = b.ne;
    /* gather the char edges of the members */
    size_t nsw = 0;
    for (size_t i = 0; i < n; i++) {
      uint32_t q = targets[i];
      for (uint32_t k = s.csr.off[q]; k < s.csr.off[q + 1]; k++) {
        const struct cnfa_edge *e = &s.csr.e[k];
        if (e->label < 0) continue;
        const struct cpset *cs = &a->sets[e->label];
        if (cn_grow(&sw, &sw_cap, nsw + cs->n, sizeof *sw)) goto done_key;
        for (size_t r = 0; r < cs->n; r++)
          sw[nsw++] = (struct sweep_item){cs->r[2 * r], cs->r[2 * r + 1], e->to};
      }
    }
    if (nsw == 0) continue;
    qsort(sw, nsw, sizeof *sw, cmp_sweep);
    /* sweep: elementary intervals between consecutive boundaries */
    size_t next = 0, nact = 0;
    uint32_t pos = sw[0].lo;
    while (next < nsw || nact > 0) {
      if (nact == 0) pos = sw[next].lo > pos ? sw[next].lo : pos;
      while (next < nsw && sw[next].lo <= pos) {
        if (cn_grow(&active, &act_cap, nact + 1, sizeof *active)) goto done_key;
        active[nact++] = sw[next++];
      }
      /* end of this elementary interval: the smallest hi among the active, or the next lo - 1 */
      uint32_t end = UINT32_MAX;
      for (size_t i = 0; i < nact; i++)
        if (active[i].hi < end) end = active[i].hi;
      if (next < nsw && sw[next].lo - 1 < end) end = sw[next].lo - 1;
      /* target set */
      size_t nt = 0;
      for (size_t i = 0; i < nact; i++) tset[nt++] = active[i].to;
      qsort(tset, nt, sizeof *tset, cmp_u32);
      size_t u = 0;
      for (size_t i = 0; i < nt; i++)
        if (i == 0 || tset[i] != tset[i - 1]) tset[u++] = tset[i];
      closure(&s, tset, u, false);
      key[0] = 0;
      memcpy(key + 1, s.set, s.nset * sizeof *key);
      uint32_t to = cn_km_get(&km, key, s.nset + 1, &added);
      if (to == UINT32_MAX) goto done_key;
      if (db_edge(&b, first, pos, end, to)) goto done_key;
      /* drop the intervals that end here */
      size_t w = 0;
      for (size_t i = 0; i < nact; i++)
        if (active[i].hi > end) active[w++] = active[i];
      nact = w;
      if (end == UINT32_MAX) break;
      pos = end + 1;
    }
  }
  b.off[b.n] = (uint32_t)b.ne;
  struct cdfa raw;
  rc = db_finish(&b, &raw);
  if (!rc) {
    rc = cdfa_minimize(&raw, out);
    cdfa_free(&raw);
  }
done_key:
  free(key);
done:
  free(s.csr.off);
  free(s.csr.e);
  free(s.mark);
  free(s.stack);
  free(s.set);
  free(tset);
  free(targets);
  free(sw);
  free(active);
  cn_km_free(&km);
  db_free(&b);
  return rc;
}

/* ---------------------------------------------------------------- minimization */

int cdfa_minimize(const struct cdfa *d, struct cdfa *out) {
  memset(out, 0, sizeof *out);
  uint32_t n = d->n;
  size_t ne = n ? d->off[n] : 0;
  int rc = -ENOMEM;
  uint32_t *bd = NULL, *T = NULL, *L = NULL, *H = NULL, *blk = NULL, *rep = NULL;
  struct dbuild b;
  memset(&b, 0, sizeof b);
  if (n == 0) return cdfa_none(out);
  /* elementary intervals: between consecutive edge boundaries */
  bd = malloc((2 * ne + 1) * sizeof *bd);
  if (!bd) goto done;
  size_t nb = 0;
  for (size_t k = 0; k < ne; k++) {
    bd[nb++] = d->e[k].lo;
    bd[nb++] = d->e[k].hi + 1;
  }
  qsort(bd, nb, sizeof *bd, cmp_u32);
  size_t u = 0;
  for (size_t k = 0; k < nb; k++)
    if (k == 0 || bd[k] != bd[k - 1]) bd[u++] = bd[k];
  nb = u;
  /* transitions: one per (edge, elementary interval inside it) */
  size_t m = 0, cap = ne + 16;
  T = malloc(cap * sizeof *T);
  L = malloc(cap * sizeof *L);
  H = malloc(cap * sizeof *H);
  if (!T || !L || !H) goto done;
  for (uint32_t s = 0; s < n; s++)
    for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++) {
      /* first interval starting at lo */
      size_t lo = 0, hi = nb;
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (bd[mid] < d->e[k].lo) lo = mid + 1;
        else hi = mid;
      }
      for (size_t i = lo; i + 1 < nb && bd[i] <= d->e[k].hi; i++) {
        if (m == cap) {
          cap *= 2;
          if (cap > ((size_t)1 << 31)) goto done;
          uint32_t *t2 = realloc(T, cap * sizeof *T);
          if (!t2) goto done;
          T = t2;
          t2 = realloc(L, cap * sizeof *L);
          if (!t2) goto done;
          L = t2;
          t2 = realloc(H, cap * sizeof *H);
          if (!t2) goto done;
          H = t2;
        }
        T[m] = s;
        L[m] = (uint32_t)i;
        H[m] = d->e[k].to;
        m++;
      }
    }
  blk = malloc(n * sizeof *blk);
  if (!blk) goto done;
  uint32_t nblk;
  if (cn_minimize(n, (uint32_t)m, T, L, H, d->acc, 0, blk, &nblk)) goto done;
  if (nblk == 0) {
    rc = cdfa_none(out);
    goto done;
  }
  rep = malloc(nblk * sizeof *rep);
  if (!rep) goto done;
  for (uint32_t i = 0; i < nblk; i++) rep[i] = UINT32_MAX;
  for (uint32_t s = 0; s < n; s++)
    if (blk[s] != UINT32_MAX && rep[blk[s]] == UINT32_MAX) rep[blk[s]] = s;
  for (uint32_t i = 0; i < nblk; i++) {
    uint32_t s = rep[i];
    if (db_add_state(&b, d->acc[s])) goto done;
    b.off[i] = (uint32_t)b.ne;
    size_t first = b.ne;
    for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++) {
      uint32_t t = d->e[k].to;
      if (blk[t] == UINT32_MAX) continue;
      if (db_edge(&b, first, d->e[k].lo, d->e[k].hi, blk[t])) goto done;
    }
  }
  b.off[nblk] = (uint32_t)b.ne;
  rc = db_finish(&b, out);
done:
  free(bd);
  free(T);
  free(L);
  free(H);
  free(blk);
  free(rep);
  db_free(&b);
  return rc;
}

/* ---------------------------------------------------------------- products */

#define SINK UINT32_MAX

int cdfa_product(const struct cdfa *x, const struct cdfa *y, enum cdfa_op op, size_t max_states,
                 struct cdfa *out) {
  memset(out, 0, sizeof *out);
  struct cn_keymap km;
  struct dbuild b;
  memset(&b, 0, sizeof b);
  int rc = -ENOMEM;
  if (cn_km_init(&km)) goto done;
  uint32_t key[2] = {0, 0};
  bool added;
  if (cn_km_get(&km, key, 2, &added) == UINT32_MAX) goto done;
  for (uint32_t cur = 0; cur < km.nkeys; cur++) {
    if (max_states && cur >= max_states) {
      rc = -E2BIG;
      goto done;
    }
    uint32_t p = km.pool[km.key_off[cur]], q = km.pool[km.key_off[cur] + 1];
    bool ap = p != SINK && x->acc[p], aq = q != SINK && y->acc[q];
    bool acc = op == CDFA_AND ? (ap && aq) : op == CDFA_OR ? (ap || aq) : (ap && !aq);
    if (db_add_state(&b, acc)) goto done;
    b.off[cur] = (uint32_t)b.ne;
    size_t first = b.ne;
    uint32_t i = p == SINK ? 0 : x->off[p], ie = p == SINK ? 0 : x->off[p + 1];
    uint32_t j = q == SINK ? 0 : y->off[q], je = q == SINK ? 0 : y->off[q + 1];
    uint32_t pos = 0;
    /* walk the code point line through both edge lists */
    while (pos <= CN_CP_MAX) {
      while (i < ie && x->e[i].hi < pos) i++;
      while (j < je && y->e[j].hi < pos) j++;
      uint32_t tp = SINK, tq = SINK, end = CN_CP_MAX;
      if (i < ie) {
        if (x->e[i].lo <= pos) tp = x->e[i].to, end = x->e[i].hi;
        else end = x->e[i].lo - 1;
      }
      if (j < je) {
        if (y->e[j].lo <= pos) {
          tq = y->e[j].to;
          if (y->e[j].hi < end) end = y->e[j].hi;
        } else if (y->e[j].lo - 1 < end) {
          end = y->e[j].lo - 1;
        }
      }
      bool dead = op == CDFA_AND ? (tp == SINK || tq == SINK)
                  : op == CDFA_OR ? (tp == SINK && tq == SINK)
                                  : tp == SINK;
      if (!dead && !(pos >= 0xD800 && end <= 0xDFFF)) {
        key[0] = tp;
        key[1] = tq;
        uint32_t to = cn_km_get(&km, key, 2, &added);
        if (to == UINT32_MAX) goto done;
        uint32_t lo = pos, hi = end;
        /* never label surrogates */
        if (lo <= 0xDFFF && hi >= 0xD800) {
          if (lo < 0xD800 && db_edge(&b, first, lo, 0xD7FF, to)) goto done;
          if (hi > 0xDFFF && db_edge(&b, first, 0xE000, hi, to)) goto done;
        } else if (db_edge(&b, first, lo, hi, to)) {
          goto done;
        }
      }
      if (end >= CN_CP_MAX) break;
      pos = end + 1;
    }
  }
  b.off[b.n] = (uint32_t)b.ne;
  struct cdfa raw;
  rc = db_finish(&b, &raw);
  if (!rc) {
    rc = cdfa_minimize(&raw, out);
    cdfa_free(&raw);
  }
done:
  cn_km_free(&km);
  db_free(&b);
  return rc;
}

int cdfa_all(struct cdfa *out) {
  struct dbuild b;
  memset(&b, 0, sizeof b);
  if (db_add_state(&b, true)) goto oom;
  b.off[0] = 0;
  if (db_edge(&b, 0, 0, 0xD7FF, 0) || db_edge(&b, 0, 0xE000, CN_CP_MAX, 0)) goto oom;
  b.off[1] = (uint32_t)b.ne;
  return db_finish(&b, out);
oom:
  db_free(&b);
  return -ENOMEM;
}

int cdfa_none(struct cdfa *out) {
  struct dbuild b;
  memset(&b, 0, sizeof b);
  if (db_add_state(&b, false)) {
    db_free(&b);
    return -ENOMEM;
  }
  b.off[0] = b.off[1] = 0;
  return db_finish(&b, out);
}

int cdfa_complement(const struct cdfa *a, struct cdfa *out) {
  struct cdfa all;
  int rc = cdfa_all(&all);
  if (rc) return rc;
  rc = cdfa_product(&all, a, CDFA_DIFF, 0, out);
  cdfa_free(&all);
  return rc;
}

int cdfa_copy(const struct cdfa *a, struct cdfa *out) {
  memset(out, 0, sizeof *out);
  out->n = a->n;
  out->off = malloc(((size_t)a->n + 1) * sizeof *out->off);
  out->e = malloc((a->off[a->n] ? a->off[a->n] : 1) * sizeof *out->e);
  out->acc = malloc(a->n ? a->n : 1);
  if (!out->off || !out->e || !out->acc) {
    cdfa_free(out);
    return -ENOMEM;
  }
  memcpy(out->off, a->off, ((size_t)a->n + 1) * sizeof *out->off);
  memcpy(out->e, a->e, a->off[a->n] * sizeof *out->e);
  memcpy(out->acc, a->acc, a->n);
  return 0;
}

bool cdfa_is_empty(const struct cdfa *d) {
  /* minimized automata of the empty language have one non-accepting state without edges */
  if (d->n == 0) return true;
  for (uint32_t s = 0; s < d->n; s++)
    if (d->acc[s]) return false;
  return true;
}

bool cdfa_is_all(const struct cdfa *d) {
  /* minimized: one accepting state looping on everything (edges may span the surrogate gap) */
  if (d->n != 1 || !d->acc[0]) return false;
  uint32_t next = 0;
  for (uint32_t k = d->off[0]; k < d->off[1]; k++) {
    if (d->e[k].to != 0) return false;
    if (d->e[k].lo > next && !(next == 0xD800 && d->e[k].lo == 0xE000)) return false;
    next = d->e[k].hi + 1;
  }
  return next == CN_CP_MAX + 1;
}

/* ---------------------------------------------------------------- builders */

int cdfa_literal(const char *s, size_t len, struct cdfa *out) {
  struct dbuild b;
  memset(&b, 0, sizeof b);
  size_t i = 0;
  uint32_t st = 0;
  for (;;) {
    bool last = i >= len;
    if (db_add_state(&b, last)) goto oom;
    b.off[st] = (uint32_t)b.ne;
    if (last) break;
    uint32_t cp;
    int k = cn_utf8_dec((const uint8_t *)s + i, len - i, &cp);
    if (!k) {   /* not UTF-8: matches nothing */
      db_free(&b);
      return cdfa_none(out);
    }
    i += (size_t)k;
    if (db_edge(&b, b.ne, cp, cp, st + 1)) goto oom;
    st++;
  }
  b.off[b.n] = (uint32_t)b.ne;
  return db_finish(&b, out);
oom:
  db_free(&b);
  return -ENOMEM;
}

int cdfa_length(uint32_t min, int64_t max, const struct cpset *set, size_t max_states,
                struct cdfa *out) {
  if (max >= 0 && (uint64_t)max < min) return cdfa_none(out);
  uint64_t top = max >= 0 ? (uint64_t)max : min;
  if (max_states && top + 1 > max_states) return -E2BIG;
  struct cpset all;
  cpset_init(&all);
  if (!set) {
    if (cpset_add(&all, 0, CN_CP_MAX)) return -ENOMEM;
    set = &all;
  }
  struct dbuild b;
  memset(&b, 0, sizeof b);
  for (uint64_t s = 0; s <= top; s++) {
    if (db_add_state(&b, s >= min)) goto oom;
    b.off[s] = (uint32_t)b.ne;
    size_t first = b.ne;
    uint32_t to = s < top ? (uint32_t)s + 1 : (max < 0 ? (uint32_t)s : SINK);
    if (to == SINK) continue;
    for (size_t r = 0; r < set->n; r++)
      if (db_edge(&b, first, set->r[2 * r], set->r[2 * r + 1], to)) goto oom;
  }
  b.off[b.n] = (uint32_t)b.ne;
  cpset_free(&all);
  struct cdfa raw;
  int rc = db_finish(&b, &raw);
  if (rc) return rc;
  rc = cdfa_minimize(&raw, out);
  cdfa_free(&raw);
  return rc;
oom:
  cpset_free(&all);
  db_free(&b);
  return -ENOMEM;
}

uint32_t cdfa_step(const struct cdfa *d, uint32_t s, uint32_t cp) {
  uint32_t lo = d->off[s], hi = d->off[s + 1];
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (cp < d->e[mid].lo) hi = mid;
    else if (cp > d->e[mid].hi) lo = mid + 1;
    else return d->e[mid].to;
  }
  return UINT32_MAX;
}

bool cdfa_match(const struct cdfa *d, const char *s, size_t len) {
  if (d->n == 0) return false;
  uint32_t st = 0;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    int k = cn_utf8_dec((const uint8_t *)s + i, len - i, &cp);
    if (!k) return false;
    i += (size_t)k;
    st = cdfa_step(d, st, cp);
    if (st == UINT32_MAX) return false;
  }
  return d->acc[st];
}

int64_t cdfa_min_len(const struct cdfa *d) {
  if (d->n == 0) return -1;
  int64_t *dist = malloc(d->n * sizeof *dist);
  uint32_t *q = malloc(d->n * sizeof *q);
  int64_t r = -1;
  if (!dist || !q) goto done;
  for (uint32_t s = 0; s < d->n; s++) dist[s] = -1;
  size_t h = 0, t = 0;
  dist[0] = 0;
  q[t++] = 0;
  while (h < t) {
    uint32_t s = q[h++];
    if (d->acc[s]) {
      r = dist[s];
      break;
    }
    for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++) {
      uint32_t to = d->e[k].to;
      if (dist[to] < 0) dist[to] = dist[s] + 1, q[t++] = to;
    }
  }
done:
  free(dist);
  free(q);
  return r;
}

int cdfa_shortest(const struct cdfa *d, char *buf, size_t cap) {
  if (d->n == 0) return -1;
  uint32_t *prev = malloc(d->n * sizeof *prev), *pcp = malloc(d->n * sizeof *pcp);
  uint32_t *q = malloc(d->n * sizeof *q);
  int r = -1;
  if (!prev || !pcp || !q) goto done;
  for (uint32_t s = 0; s < d->n; s++) prev[s] = SINK;
  size_t h = 0, t = 0;
  prev[0] = 0;
  q[t++] = 0;
  uint32_t found = SINK;
  while (h < t) {
    uint32_t s = q[h++];
    if (d->acc[s]) {
      found = s;
      break;
    }
    for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++) {
      uint32_t to = d->e[k].to;
      if (prev[to] != SINK) continue;
      prev[to] = s;
      /* prefer a printable ASCII letter or digit when the interval has one */
      uint32_t lo = d->e[k].lo, hi = d->e[k].hi, c = lo;
      if (lo <= 'a' && hi >= 'a') c = 'a';
      else if (lo <= '0' && hi >= '0') c = '0';
      else if (lo < 0x20 && hi >= 0x20) c = 0x20;
      pcp[to] = c;
      q[t++] = to;
    }
  }
  if (found == SINK) goto done;
  /* walk back */
  uint32_t path[4096];
  size_t np = 0;
  for (uint32_t s = found; s != 0 && np < 4096; s = prev[s]) path[np++] = pcp[s];
  size_t o = 0;
  for (size_t i = np; i-- > 0;) {
    uint8_t tmp[4];
    int k = cn_utf8_enc(path[i], tmp);
    if (o + (size_t)k > cap) goto done;
    memcpy(buf + o, tmp, (size_t)k);
    o += (size_t)k;
  }
  r = (int)o;
done:
  free(prev);
  free(pcp);
  free(q);
  return r;
}

bool cdfa_finite(const struct cdfa *d, size_t cap, size_t *count) {
  /* the automaton is trimmed (minimized): finite iff acyclic. DFS with colours. */
  uint32_t n = d->n;
  uint8_t *col = calloc(n ? n : 1, 1);
  uint32_t *st = malloc((n ? n : 1) * sizeof *st), *it = malloc((n ? n : 1) * sizeof *it);
  uint64_t *cnt = calloc(n ? n : 1, sizeof *cnt);
  bool finite = true;
  if (!col || !st || !it || !cnt) {
    finite = false;
    goto done;
  }
  size_t sp = 0;
  st[sp] = 0;
  it[sp] = d->off[0];
  sp++;
  col[0] = 1;
  while (sp && finite) {
    uint32_t s = st[sp - 1];
    if (it[sp - 1] < d->off[s + 1]) {
      uint32_t t = d->e[it[sp - 1]].to;
      it[sp - 1]++;
      if (col[t] == 1) {
        finite = false;
      } else if (col[t] == 0) {
        col[t] = 1;
        st[sp] = t;
        it[sp] = d->off[t];
        sp++;
      }
    } else {
      /* all successors done: count strings from s */
      uint64_t c = d->acc[s] ? 1 : 0;
      for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++) {
        uint64_t w = (uint64_t)(d->e[k].hi - d->e[k].lo + 1);
        uint64_t add = cnt[d->e[k].to] > (uint64_t)cap + 1 ? (uint64_t)cap + 1 : cnt[d->e[k].to];
        c += w > (uint64_t)cap + 1 ? ((uint64_t)cap + 1) : w * add;
        if (c > (uint64_t)cap + 1) c = (uint64_t)cap + 1;
      }
      cnt[s] = c;
      col[s] = 2;
      sp--;
    }
  }
  if (finite && count) *count = (size_t)(cnt[0] > (uint64_t)cap + 1 ? (uint64_t)cap + 1 : cnt[0]);
done:
  free(col);
  free(st);
  free(it);
  free(cnt);
  return finite;
}

/* Depth-first over a finite (acyclic) automaton, each string's UTF-8 appended to BUF. */
static int enum_rec(const struct cdfa *d, uint32_t s, char *buf, size_t len, size_t cap, size_t *left,
                    int (*cb)(const char *, size_t, void *), void *ctx, int depth) {
  if (depth > 256) return -E2BIG;
  if (d->acc[s]) {
    if (*left == 0) return -E2BIG;
    (*left)--;
    int rc = cb(buf, len, ctx);
    if (rc) return rc;
  }
  for (uint32_t k = d->off[s]; k < d->off[s + 1]; k++)
    for (uint32_t cp = d->e[k].lo; cp <= d->e[k].hi; cp++) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      uint8_t u[4];
      int n = cn_utf8_enc(cp, u);
      if (len + (size_t)n > cap) return -E2BIG;
      memcpy(buf + len, u, (size_t)n);
      int rc = enum_rec(d, d->e[k].to, buf, len + (size_t)n, cap, left, cb, ctx, depth + 1);
      if (rc) return rc;
      if (cp == d->e[k].hi) break;
    }
  return 0;
}

int cdfa_enumerate(const struct cdfa *d, size_t max, int (*cb)(const char *s, size_t n, void *ctx),
                   void *ctx) {
  if (d->n == 0 || cdfa_is_empty(d)) return 0;
  char buf[1024];
  size_t left = max;
  return enum_rec(d, 0, buf, 0, sizeof buf, &left, cb, ctx, 0);
}
