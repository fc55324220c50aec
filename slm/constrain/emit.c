/*
 * emit.c: normal forms -> grammar, and the JSON Schema compiler's entry point.
 *
 * A value is inlined into the machine that needs it, unless it is recursive (a node already being
 * inlined further up), "any JSON value", or large and used in many places: those get a machine of
 * their own and are called. Objects list the names their rules and required keys mention first,
 * in schema order (required ones must appear, forbidden ones cannot), then any number of other
 * members whose keys fall in the classes the remaining rules (patternProperties,
 * additionalProperties, propertyNames) define; counts (min/maxProperties) and witnesses (a member
 * some negated rule asks for) are tracked in the states. Arrays unroll the positions a tuple,
 * minItems or "contains" needs and loop over the rest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/schema.h"

#define MAX_CLASSES 64
#define INLINE_MAX 2          /* inlining a sizable node more often makes it a machine */

struct em {
  struct nctx *x;
  struct gb *b;
  int any;                    /* the any-value machine, -1 until needed */
  uint32_t *stack;            /* nodes being inlined */
  size_t ns, cap_s;
  uint32_t *queue;            /* nodes whose machines still need their body */
  size_t nq, cap_q;
  struct cdfa all;            /* every string */
};

static uint32_t value(struct em *e, int m, uint32_t from, uint32_t node, bool prefer_call);

static bool ok(struct em *e) { return !e->x->rc && !e->b->err; }

static int any_machine(struct em *e) {
  if (e->any < 0) e->any = gb_any_value(e->b);
  return e->any;
}

static uint32_t call(struct em *e, int m, uint32_t from, int callee) {
  uint32_t t = gb_state(e->b, m);
  gb_call(e->b, m, from, t, callee);
  return t;
}

static uint32_t dead(struct em *e, int m) { return gb_state(e->b, m); }

static uint32_t ws(struct em *e, int m, uint32_t s) { return gb_ws(e->b, m, s); }
static uint32_t lit(struct em *e, int m, uint32_t s, const char *t) { return gb_lit(e->b, m, s, t, strlen(t)); }

static int unsup(struct em *e, const struct nf *f, int ty) {
  if (e->x->o->relaxed) {
    nx_relax(e->x, f->ukw[ty] ? f->ukw[ty] : "?");
    return 0;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%s cannot be expressed as a grammar%s%s", f->ukw[ty] ? f->ukw[ty] : "a keyword",
           f->umsg[ty] ? ": " : "", f->umsg[ty] ? f->umsg[ty] : "");
  return nx_fail(e->x, -EINVAL, f->ukw[ty] ? f->ukw[ty] : "", f->uptr[ty] ? f->uptr[ty] : "", msg);
}

/* A JSON string whose value is in D. */
static uint32_t str_of(struct em *e, int m, uint32_t from, const struct cdfa *d) {
  return gb_cdfa(e->b, m, from, d, false);
}

static uint32_t literal_str(struct em *e, int m, uint32_t from, const char *s, size_t n) {
  struct cdfa d;
  if (cdfa_literal(s, n, &d)) {
    e->b->err = -ENOMEM;
    return UINT32_MAX;
  }
  uint32_t t = str_of(e, m, from, &d);
  cdfa_free(&d);
  return t;
}

/* ---------------------------------------------------------------- concrete values */

static uint32_t concrete(struct em *e, int m, uint32_t from, const struct cj_val *v, int depth) {
  if (depth > 200 || !ok(e)) {
    if (ok(e)) nx_fail(e->x, -EINVAL, "enum", "", "value nested too deeply");
    return dead(e, m);
  }
  switch (v->type) {
    case CJ_NULL: return lit(e, m, from, "null");
    case CJ_TRUE: return lit(e, m, from, "true");
    case CJ_FALSE: return lit(e, m, from, "false");
    case CJ_NUMBER: return gb_lit(e->b, m, from, v->u.s, v->len);
    case CJ_STRING:
      if (v->flags & CJ_F_BADSTR) return dead(e, m);
      return literal_str(e, m, from, v->u.s, v->len);
    case CJ_ARRAY: {
      uint32_t s = ws(e, m, lit(e, m, from, "["));
      for (uint32_t i = 0; i < v->len; i++) {
        if (i) s = ws(e, m, lit(e, m, s, ","));
        s = ws(e, m, concrete(e, m, s, &v->u.items[i], depth + 1));
      }
      return lit(e, m, s, "]");
    }
    default: {
      uint32_t s = ws(e, m, lit(e, m, from, "{"));
      for (uint32_t i = 0; i < v->len; i++) {
        const struct cj_member *mb = &v->u.members[i];
        if (mb->kflags & CJ_F_BADSTR) return dead(e, m);
        if (i) s = ws(e, m, lit(e, m, s, ","));
        s = ws(e, m, literal_str(e, m, s, mb->key, mb->klen));
        s = ws(e, m, lit(e, m, s, ":"));
        s = ws(e, m, concrete(e, m, s, &mb->val, depth + 1));
      }
      return lit(e, m, s, "}");
    }
  }
}

/* ---------------------------------------------------------------- free-form arrays and objects */

static uint32_t any_array(struct em *e, int m, uint32_t from) {
  int a = any_machine(e);
  uint32_t end = gb_state(e->b, m);
  uint32_t a0 = ws(e, m, lit(e, m, from, "["));
  gb_bytes(e->b, m, a0, end, ']', ']');
  uint32_t av = ws(e, m, call(e, m, a0, a));
  gb_bytes(e->b, m, av, end, ']', ']');
  uint32_t ac = ws(e, m, lit(e, m, av, ","));
  /* loop: , value back to av */
  uint32_t t = gb_state(e->b, m);
  gb_call(e->b, m, ac, t, a);
  gb_eps(e->b, m, ws(e, m, t), av);
  return end;
}

static uint32_t any_object(struct em *e, int m, uint32_t from) {
  int a = any_machine(e);
  uint32_t end = gb_state(e->b, m);
  uint32_t o0 = ws(e, m, lit(e, m, from, "{"));
  gb_bytes(e->b, m, o0, end, '}', '}');
  uint32_t k = ws(e, m, str_of(e, m, o0, &e->all));
  uint32_t v = ws(e, m, call(e, m, ws(e, m, lit(e, m, k, ":")), a));
  gb_bytes(e->b, m, v, end, '}', '}');
  uint32_t c = ws(e, m, lit(e, m, v, ","));
  uint32_t k2 = ws(e, m, str_of(e, m, c, &e->all));
  gb_eps(e->b, m, k2, k);
  return end;
}

/* ---------------------------------------------------------------- arrays */

static uint32_t arr_item(const struct arrspec *s, uint32_t i) { return i < s->np ? s->prefix[i] : s->rest; }

static uint32_t em_arr(struct em *e, int m, uint32_t from, const struct arrspec *s) {
  struct nctx *x = e->x;
  if (s->uniq & 2) {   /* "some item repeats" */
    if (!x->o->relaxed) {
      nx_fail(x, -EINVAL, "uniqueItems", s->uptr ? s->uptr : "", "uniqueItems cannot be expressed as a grammar (under not)");
      return dead(e, m);
    }
    nx_relax(x, "uniqueItems");
    return dead(e, m);
  }
  if ((s->uniq & 1) && !(s->max <= 1)) {
    if (!x->o->relaxed) {
      nx_fail(x, -EINVAL, "uniqueItems", s->uptr ? s->uptr : "", "uniqueItems cannot be expressed as a grammar");
      return dead(e, m);
    }
    nx_relax(x, "uniqueItems");
  }
  if (s->min > s->max) return dead(e, m);
  bool counting = s->cont != NONE32 && !(s->cmin == 0 && s->cmax == NONE32);
  uint32_t cnot = NODE_TRUE;
  if (counting && s->cmax != NONE32) {
    cnot = nx_not(x, s->cont);
    if (cnot == NONE32) {
      nx_fail(x, -EINVAL, "maxContains", "", "maxContains cannot be expressed here");
      return dead(e, m);
    }
  }
  uint32_t C = 0;   /* counted values 0..C (saturating at cmin when there is no cmax) */
  if (counting) C = s->cmax != NONE32 ? s->cmax + 1 : s->cmin;
  if (counting && C > 64) {
    nx_fail(x, -E2BIG, "minContains", "", "contains counts above 64 are not supported");
    return dead(e, m);
  }
  uint32_t K = s->np;
  if (s->min > K) K = s->min;
  if (counting && s->cfrom > K) K = s->cfrom;
  bool bounded = s->max != NONE32;
  if (bounded && s->max > K) K = s->max;   /* unroll up to max */
  if (!bounded && K == 0) K = 1;           /* the loop state comes after a first item (a comma) */
  if (K > 2000) {
    nx_fail(x, -E2BIG, bounded ? "maxItems" : "minItems", "", "too many array positions to unroll");
    return dead(e, m);
  }
  bool prefer_call = (uint64_t)(K + 1) * (C + 1) > 8;
  uint32_t end = gb_state(e->b, m);
  uint32_t start = ws(e, m, lit(e, m, from, "["));
  /* states A[i][c] for i in 0..K (K: the loop when unbounded) */
  size_t ncell = (size_t)(K + 1) * (C + 1);
  uint32_t *A = malloc(ncell * sizeof *A);
  if (!A) {
    e->b->err = -ENOMEM;
    return dead(e, m);
  }
  for (size_t i = 0; i < ncell; i++) A[i] = gb_state(e->b, m);
  gb_eps(e->b, m, start, A[0]);
#define CELL(i, c) A[(size_t)(i) * (C + 1) + (c)]
  for (uint32_t i = 0; i <= K && ok(e); i++) {
    bool loop = i == K && !bounded;
    for (uint32_t c = 0; c <= C; c++) {
      uint32_t at = CELL(i, c);
      /* close */
      bool cnt_ok = !counting || (c >= s->cmin && (s->cmax == NONE32 || c <= s->cmax));
      if (i >= s->min && cnt_ok) gb_bytes(e->b, m, at, end, ']', ']');
      if (i == K && bounded) continue;   /* max reached */
      uint32_t item = arr_item(s, i);
      uint32_t in = i == 0 ? at : ws(e, m, lit(e, m, at, ","));
      uint32_t ni = loop ? K : i + 1;
      bool counts_here = counting && i >= s->cfrom;
      if (!counts_here) {
        gb_eps(e->b, m, ws(e, m, value(e, m, in, item, prefer_call)), CELL(ni, c));
        continue;
      }
      /* counted: item and cont (c + 1); not counted: item and not cont (or item alone) */
      uint32_t yes = nx_and(x, item, s->cont), no = s->cmax != NONE32 ? nx_and(x, item, cnot) : item;
      uint32_t c1 = c + 1 > C ? C : c + 1;
      if (!(s->cmax != NONE32 && c + 1 > C))
        gb_eps(e->b, m, ws(e, m, value(e, m, in, yes, prefer_call)), CELL(ni, c1));
      gb_eps(e->b, m, ws(e, m, value(e, m, in, no, prefer_call)), CELL(ni, c));
    }
  }
#undef CELL
  free(A);
  return end;
}

/* ---------------------------------------------------------------- objects */

struct oclass {
  struct cdfa *keys;
  uint32_t node;
  struct cdfa *wkeys;   /* keys of this class that count as the witness (or NULL) */
  uint32_t wnode;
};

static struct cdfa *names_lang(struct em *e, const char **names, const uint32_t *lens, uint32_t n) {
  struct cnfa na;
  cnfa_init(&na, 0);
  uint32_t st = cnfa_state(&na), acc = cnfa_state(&na);
  int err = st == UINT32_MAX;
  for (uint32_t i = 0; i < n && !err; i++) {
    uint32_t cur = st;
    for (uint32_t j = 0; j < lens[i] && !err;) {
      uint32_t cp;
      int k = cn_utf8_dec((const uint8_t *)names[i] + j, lens[i] - j, &cp);
      if (k <= 0) break;
      j += (uint32_t)k;
      uint32_t t = cnfa_state(&na);
      err |= t == UINT32_MAX || cnfa_range_edge(&na, cur, t, cp, cp);
      cur = t;
    }
    err |= cnfa_edge(&na, cur, acc, CN_EPS);
  }
  na.start = st;
  na.accept = acc;
  struct cdfa *d = nx_dfa(e->x);
  if (!d || err || cdfa_from_nfa(&na, 0, d)) {
    cnfa_free(&na);
    if (d) memset(d, 0, sizeof *d);
    e->b->err = e->b->err ? e->b->err : -ENOMEM;
    return NULL;
  }
  cnfa_free(&na);
  return d;
}

static struct cdfa *dop(struct em *e, const struct cdfa *a, const struct cdfa *b, enum cdfa_op op) {
  struct cdfa *d = nx_dfa(e->x);
  if (!d || cdfa_product(a, b, op, e->x->o->max_states, d)) {
    if (d) memset(d, 0, sizeof *d);
    if (!e->b->err) e->b->err = -E2BIG;
    return NULL;
  }
  return d;
}

/* One object grammar: names N (in order) with value nodes, required flags; member classes;
 * witness mode (the witness must be one of the extras).
 *
 * Repeated member names: validators read {"k":1,"k":2} as one member (the last). Names are never
 * repeated here, but two extras may share a key, so extras are counted for maxProperties (more
 * members only make it stricter) and count as at most one for minProperties (there is at least
 * one distinct key among them). A witness member must come last: no later member with its key
 * can then replace its value. */
static void em_obj_variant(struct em *e, int m, uint32_t from, uint32_t end, const struct objspec *s,
                           uint32_t n, const char **names, const uint32_t *lens, const uint32_t *nodes,
                           const uint8_t *req, const struct oclass *cl, uint32_t ncl, bool wmode) {
  bool cmin = s->minp > 0, cmax = s->maxp != NONE32, counting = cmin || cmax;
  uint32_t Cd = counting ? n : 0;   /* names present: 0..Cd */
  if (cmax && Cd > s->maxp) Cd = s->maxp;
  uint32_t E = 0;                   /* extras: 0..E (saturating at E without maxProperties) */
  if (ncl) E = cmax ? s->maxp : cmin ? 1 : 0;
  if (E > 256) E = 256;             /* more extras are refused: fewer objects, never more */
  if (Cd > 256) Cd = 256;
  bool prefer_call = (Cd + 1) * (E + 1) > 4;
  /* P[i][f][c]; X[f][c][x]; XW[c][x] (after the witness: only the end) */
  size_t np = (size_t)(n + 1) * 2 * (Cd + 1), nx = (size_t)2 * (Cd + 1) * (E + 1), nw = (size_t)(Cd + 1) * (E + 1);
  uint32_t *P = malloc(np * sizeof *P), *X = malloc(nx * sizeof *X), *XW = wmode ? malloc(nw * sizeof *XW) : NULL;
  if (!P || !X || (wmode && !XW)) {
    free(P);
    free(X);
    free(XW);
    e->b->err = -ENOMEM;
    return;
  }
  for (size_t i = 0; i < np; i++) P[i] = gb_state(e->b, m);
  for (size_t i = 0; i < nx; i++) X[i] = gb_state(e->b, m);
  for (size_t i = 0; wmode && i < nw; i++) XW[i] = gb_state(e->b, m);
#define PS(i, f, c) P[((size_t)(i) * 2 + (f)) * (Cd + 1) + (c)]
#define XS(f, c, x) X[((size_t)(f) * (Cd + 1) + (c)) * (E + 1) + (x)]
#define WS(c, x) XW[(size_t)(c) * (E + 1) + (x)]
  gb_eps(e->b, m, ws(e, m, lit(e, m, from, "{")), PS(0, 1, 0));
  for (uint32_t i = 0; i < n && ok(e); i++) {
    bool forbid = nodes[i] == NODE_FALSE;
    for (uint32_t c = 0; c <= Cd; c++) {
      for (int f = 0; f < 2; f++)
        if (!req[i] || forbid) gb_eps(e->b, m, PS(i, f, c), PS(i + 1, f, c));
      if (forbid) continue;
      uint32_t c1 = counting ? c + 1 : 0;
      if (counting && c1 > Cd) continue;   /* over maxProperties (or the cap) */
      uint32_t k = gb_state(e->b, m);
      gb_eps(e->b, m, PS(i, 1, c), k);
      gb_eps(e->b, m, ws(e, m, lit(e, m, PS(i, 0, c), ",")), k);
      uint32_t t = ws(e, m, literal_str(e, m, k, names[i], lens[i]));
      t = ws(e, m, lit(e, m, t, ":"));
      t = ws(e, m, value(e, m, t, nodes[i], prefer_call && Cd > 4));
      gb_eps(e->b, m, t, PS(i + 1, 0, c1));
    }
  }
  for (uint32_t c = 0; c <= Cd; c++)
    for (int f = 0; f < 2; f++) gb_eps(e->b, m, PS(n, f, c), XS(f, c, 0));
  for (uint32_t c = 0; c <= Cd && ok(e); c++)
    for (uint32_t x = 0; x <= E && ok(e); x++) {
      bool min_ok = !cmin || c + (x > 0 ? 1 : 0) >= s->minp;
      for (int f = 0; f < 2; f++)
        if (min_ok && !wmode) gb_bytes(e->b, m, XS(f, c, x), end, '}', '}');
      uint32_t x1 = x + 1;
      if (cmax && c + x1 > s->maxp) continue;
      if (x1 > E) {
        if (cmax) continue;   /* the cap */
        x1 = E;
      }
      for (uint32_t j = 0; j < ncl && ok(e); j++) {
        uint32_t k = gb_state(e->b, m);
        gb_eps(e->b, m, XS(1, c, x), k);
        gb_eps(e->b, m, ws(e, m, lit(e, m, XS(0, c, x), ",")), k);
        uint32_t t = ws(e, m, str_of(e, m, k, cl[j].keys));
        t = ws(e, m, lit(e, m, t, ":"));
        t = ws(e, m, value(e, m, t, cl[j].node, prefer_call));
        gb_eps(e->b, m, t, XS(0, c, x1));
        if (wmode && cl[j].wkeys) {
          uint32_t t2 = ws(e, m, str_of(e, m, k, cl[j].wkeys));
          t2 = ws(e, m, lit(e, m, t2, ":"));
          t2 = ws(e, m, value(e, m, t2, cl[j].wnode, prefer_call));
          gb_eps(e->b, m, t2, WS(c, x1));
        }
      }
    }
  for (uint32_t c = 0; wmode && c <= Cd; c++)   /* the witness is one distinct extra key */
    for (uint32_t x = 0; x <= E; x++)
      if (!cmin || c + 1 >= s->minp) gb_bytes(e->b, m, WS(c, x), end, '}', '}');
#undef PS
#undef XS
#undef WS
  free(P);
  free(X);
  free(XW);
}

/* Collects the strings of a finite key class as names. */
struct name_acc {
  struct em *e;
  const char **names;
  uint32_t *lens, *nodes;
  uint8_t *req;
  uint32_t n, cap, node;
};

static int add_name(const char *str, size_t len, void *ctx) {
  struct name_acc *na = ctx;
  if (na->n == na->cap) return -E2BIG;
  char *c = cn_memdup(na->e->x->a, str, len);
  if (!c) return -ENOMEM;
  na->names[na->n] = c;
  na->lens[na->n] = (uint32_t)len;
  na->nodes[na->n] = na->node;
  na->req[na->n] = 0;
  na->n++;
  return 0;
}

#define FINITE_CLASS_MAX 64   /* a key class of at most this many keys becomes names */

static uint32_t em_obj(struct em *e, int m, uint32_t from, const struct objspec *s) {
  struct nctx *x = e->x;
  uint32_t end = gb_state(e->b, m);
  if (s->minp > s->maxp) return end;
  /* names in order: literal rules, then required names */
  uint32_t cap = s->nr + s->nreq + 6 * FINITE_CLASS_MAX;
  const char **names = cn_alloc(x->a, (cap ? cap : 1) * sizeof *names);
  uint32_t *lens = cn_alloc(x->a, (cap ? cap : 1) * sizeof *lens);
  uint32_t *nodes = cn_alloc(x->a, (cap ? cap : 1) * sizeof *nodes);
  uint8_t *req = cn_alloc(x->a, cap ? cap : 1);
  if (!names || !lens || !nodes || !req) {
    e->b->err = -ENOMEM;
    return end;
  }
  uint32_t n = 0;
  for (uint32_t pass = 0; pass < 2; pass++) {
    uint32_t cnt = pass ? s->nreq : s->nr;
    for (uint32_t i = 0; i < cnt; i++) {
      const char *nm = pass ? s->req[i] : s->rules[i].name;
      uint32_t ln = pass ? s->reqlen[i] : s->rules[i].nlen;
      if (!nm) continue;
      bool dup = false;
      for (uint32_t j = 0; j < n && !dup; j++) dup = lens[j] == ln && !memcmp(names[j], nm, ln);
      if (!dup) names[n] = nm, lens[n++] = ln;
    }
  }
  for (uint32_t i = 0; i < n; i++) {
    nodes[i] = nx_key_node(x, s, names[i], lens[i]);
    if (nodes[i] != NODE_FALSE && nx_empty(x, nodes[i])) nodes[i] = NODE_FALSE;
    req[i] = 0;
    for (uint32_t j = 0; j < s->nreq; j++)
      if (s->reqlen[j] == lens[i] && !memcmp(s->req[j], names[i], lens[i])) req[i] = 1;
    if (req[i] && nodes[i] == NODE_FALSE) return end;   /* a required key that cannot be */
  }
  uint32_t nreq = 0;
  for (uint32_t i = 0; i < n; i++) nreq += req[i];
  if (nreq > s->maxp) return end;
  /* member classes of the other keys */
  struct cdfa *nm = names_lang(e, names, lens, n);
  if (!nm) return end;
  struct cdfa *U = nx_dfa(x);
  if (!U || cdfa_complement(nm, U)) {
    e->b->err = -ENOMEM;
    return end;
  }
  if (s->pnames && !(U = dop(e, U, s->pnames, CDFA_AND))) return end;
  const struct orule *pr[8];
  uint32_t npr = 0;
  for (uint32_t i = 0; i < s->nr; i++)
    if (!s->rules[i].name) {
      if (npr == 6) {
        nx_fail(x, -E2BIG, "patternProperties", "", "more than 6 key patterns in one object");
        return end;
      }
      pr[npr++] = &s->rules[i];
    }
  struct oclass cl[MAX_CLASSES];
  uint32_t ncl = 0;
  for (uint32_t mask = 0; mask < (1u << npr) && ok(e); mask++) {
    struct cdfa *K = U;
    uint32_t node = NODE_TRUE;
    for (uint32_t i = 0; i < npr && K; i++) {
      K = dop(e, K, pr[i]->keys, mask & (1u << i) ? CDFA_AND : CDFA_DIFF);
      if (mask & (1u << i)) node = nx_and(x, node, pr[i]->node);
    }
    if (!K || cdfa_is_empty(K)) continue;
    if (node == NODE_FALSE || nx_empty(x, node)) continue;
    cl[ncl++] = (struct oclass){K, node, NULL, NODE_TRUE};
  }
  if (!ok(e)) return end;
  /* small finite classes (patternProperties like ^[a-f]$) become names: never repeated */
  for (uint32_t j = 0; j < ncl && ok(e);) {
    size_t cnt;
    if (!cdfa_finite(cl[j].keys, FINITE_CLASS_MAX, &cnt) || cnt > FINITE_CLASS_MAX ||
        n + cnt > cap) {
      j++;
      continue;
    }
    struct name_acc na = {e, names, lens, nodes, req, n, cap, cl[j].node};
    if (cdfa_enumerate(cl[j].keys, FINITE_CLASS_MAX, add_name, &na)) {
      j++;
      continue;
    }
    n = na.n;
    cl[j] = cl[--ncl];
  }
  if (!ok(e)) return end;
  if (!s->wkeys) {
    em_obj_variant(e, m, from, end, s, n, names, lens, nodes, req, cl, ncl, false);
    return end;
  }
  /* a witness: one of the names, or one of the extras */
  for (uint32_t i = 0; i < n && ok(e); i++) {
    if (nodes[i] == NODE_FALSE || !cdfa_match(s->wkeys, names[i], lens[i])) continue;
    uint32_t wn = nx_and(x, nodes[i], s->wnode);
    if (wn == NODE_FALSE || nx_empty(x, wn)) continue;
    uint32_t keep_node = nodes[i];
    uint8_t keep_req = req[i];
    nodes[i] = wn;
    req[i] = 1;
    em_obj_variant(e, m, from, end, s, n, names, lens, nodes, req, cl, ncl, false);
    nodes[i] = keep_node;
    req[i] = keep_req;
  }
  bool any_w = false;
  for (uint32_t j = 0; j < ncl && ok(e); j++) {
    struct cdfa *wk = dop(e, cl[j].keys, s->wkeys, CDFA_AND);
    if (!wk || cdfa_is_empty(wk)) continue;
    uint32_t wn = nx_and(x, cl[j].node, s->wnode);
    if (wn == NODE_FALSE || nx_empty(x, wn)) continue;
    cl[j].wkeys = wk;
    cl[j].wnode = wn;
    any_w = true;
  }
  if (any_w) em_obj_variant(e, m, from, end, s, n, names, lens, nodes, req, cl, ncl, true);
  return end;
}

/* ---------------------------------------------------------------- normal forms */

static uint32_t em_nf(struct em *e, int m, uint32_t from, const struct nf *f) {
  struct nctx *x = e->x;
  uint32_t end = gb_state(e->b, m);
  if (!f || !ok(e)) return end;
  for (int ty = 0; ty < 4; ty++)
    if ((f->unsup & (1u << ty)) && unsup(e, f, ty)) return end;
  if (f->null_ok) gb_eps(e->b, m, lit(e, m, from, "null"), end);
  if (f->bools & 2) gb_eps(e->b, m, lit(e, m, from, "true"), end);
  if (f->bools & 1) gb_eps(e->b, m, lit(e, m, from, "false"), end);
  if (f->num.kind == PK_ALL) gb_eps(e->b, m, gb_number(e->b, m, from, f->num.intonly), end);
  else if (f->num.kind == PK_SOME && !cdfa_is_empty(f->num.d)) gb_eps(e->b, m, gb_cdfa(e->b, m, from, f->num.d, true), end);
  /* string values: a call to one machine per language (shared by every value with it, and by
   * their mask cache entries); tiny ones inline */
  if (f->str.kind == PK_ALL || (f->str.kind == PK_SOME && !cdfa_is_empty(f->str.d))) {
    const struct cdfa *d = f->str.kind == PK_ALL ? &e->all : f->str.d;
    int sm = d->n > 2 || f->str.kind == PK_ALL ? gb_str_machine(e->b, d) : -1;
    gb_eps(e->b, m, sm >= 0 ? call(e, m, from, sm) : str_of(e, m, from, d), end);
  }
  if (f->arr_all) {
    gb_eps(e->b, m, any_array(e, m, from), end);
  } else {
    for (uint32_t i = 0; i < f->narr && ok(e); i++) gb_eps(e->b, m, em_arr(e, m, from, f->arr[i]), end);
    for (uint32_t i = 0; i < f->ncarr && ok(e); i++) gb_eps(e->b, m, concrete(e, m, from, f->carr[i], 0), end);
  }
  if (f->obj_all) {
    gb_eps(e->b, m, any_object(e, m, from), end);
  } else {
    for (uint32_t i = 0; i < f->nobj && ok(e); i++) gb_eps(e->b, m, em_obj(e, m, from, f->obj[i]), end);
    for (uint32_t i = 0; i < f->ncobj && ok(e); i++) gb_eps(e->b, m, concrete(e, m, from, f->cobj[i], 0), end);
  }
  (void)x;
  return end;
}

static bool on_stack(const struct em *e, uint32_t node) {
  for (size_t i = 0; i < e->ns; i++)
    if (e->stack[i] == node) return true;
  return false;
}

/* A rough size of what inlining F costs (automaton states). */
static uint32_t weight(const struct nf *f) {
  uint64_t w = 0;
  if (f->num.kind == PK_SOME) w += f->num.d->n;
  if (f->str.kind == PK_SOME) w += f->str.d->n;
  w += 16ull * (f->narr + f->nobj + f->ncarr + f->ncobj) + 16ull * (f->arr_all + f->obj_all);
  return w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
}

static uint32_t value(struct em *e, int m, uint32_t from, uint32_t node, bool prefer_call) {
  struct nctx *x = e->x;
  if (!ok(e) || node == NONE32) {
    if (node == NONE32 && ok(e)) nx_fail(x, -ENOMEM, "", "", "out of memory");
    return dead(e, m);
  }
  if (node == NODE_TRUE) return call(e, m, from, any_machine(e));
  if (node == NODE_FALSE) return dead(e, m);
  struct nf *f = nx_nf(x, node);
  if (!f) return dead(e, m);
  if (f->null_ok && f->bools == 3 && f->num.kind == PK_ALL && !f->num.intonly &&
      f->str.kind == PK_ALL && f->arr_all && f->obj_all && !f->unsup)
    return call(e, m, from, any_machine(e));   /* everything: the shared machine */
  if (nx_empty(x, node)) return dead(e, m);
  struct nnode *nd = &x->nodes[node];
  if (nd->machine < 0) {
    bool rec = on_stack(e, node);
    uint32_t w = weight(f);
    bool big = (w >= 16 && nd->inlined >= INLINE_MAX) || (prefer_call && w >= 8 && nd->inlined >= 1);
    if (rec || big || e->ns > 64) {
      int mm = gb_machine(e->b);
      if (mm < 0) return dead(e, m);
      x->nodes[node].machine = mm;
      if (cn_grow(&e->queue, &e->cap_q, e->nq + 1, sizeof *e->queue)) {
        e->b->err = -ENOMEM;
        return dead(e, m);
      }
      e->queue[e->nq++] = node;
    }
  }
  nd = &x->nodes[node];
  if (nd->machine >= 0) return call(e, m, from, nd->machine);
  nd->inlined++;
  if (cn_grow(&e->stack, &e->cap_s, e->ns + 1, sizeof *e->stack)) {
    e->b->err = -ENOMEM;
    return dead(e, m);
  }
  e->stack[e->ns++] = node;
  uint32_t end = em_nf(e, m, from, f);
  e->ns--;
  return end;
}

int em_compile(struct nctx *x, struct gb *b, int root, uint32_t node) {
  struct em e;
  memset(&e, 0, sizeof e);
  e.x = x;
  e.b = b;
  e.any = -1;
  if (cdfa_all(&e.all)) return -ENOMEM;
  uint32_t s = gb_ws(b, root, b->m[root].start);
  s = value(&e, root, s, node, false);
  gb_eps(b, root, gb_ws(b, root, s), b->m[root].accept);
  for (size_t i = 0; i < e.nq && ok(&e); i++) {
    uint32_t nd = e.queue[i];
    int mm = x->nodes[nd].machine;
    e.ns = 0;
    if (cn_grow(&e.stack, &e.cap_s, 1, sizeof *e.stack)) {
      b->err = -ENOMEM;
      break;
    }
    e.stack[e.ns++] = nd;   /* its own recursion calls itself */
    uint32_t t = em_nf(&e, mm, b->m[mm].start, nx_nf(x, nd));
    gb_eps(b, mm, t, b->m[mm].accept);
  }
  cdfa_free(&e.all);
  free(e.stack);
  free(e.queue);
  if (x->rc) return x->rc;
  return b->err;
}

/* ---------------------------------------------------------------- entry point */

int cn_schema_compile(struct gb *b, int root, const char *text, size_t len,
                      const struct cn_schema_opts *o, struct cn_err *err, char **relaxed) {
  *relaxed = NULL;
  struct cn_arena a;
  cn_arena_init(&a, 512u << 20);
  char msg[200];
  int rc;
  struct cj_val *doc = cj_parse(&a, text, len, 256, msg, sizeof msg);
  if (!doc) {
    rc = cn_errf(err, "json", "", "the schema is not JSON: %s", msg);
    cn_arena_free(&a);
    return rc;
  }
  if (doc->type != CJ_OBJECT && doc->type != CJ_TRUE && doc->type != CJ_FALSE) {
    rc = cn_errf(err, "", "", "a schema must be an object or a boolean");
    cn_arena_free(&a);
    return rc;
  }
  struct sdoc d;
  rc = sd_load(&d, &a, doc, err);
  struct nctx x;
  memset(&x, 0, sizeof x);
  if (!rc) rc = nx_init(&x, &d, o, err);
  if (!rc) {
    uint32_t node = nx_lit(&x, d.res[0].loc, false);
    rc = node == NONE32 ? -ENOMEM : em_compile(&x, b, root, node);
    if (!rc && x.relaxed[0]) *relaxed = strdup(x.relaxed);
  }
  if (rc && !err->msg[0]) cn_errf(err, "", "", rc == -ENOMEM ? "out of memory" : rc == -E2BIG ? "schema too large" : "cannot compile");
  nx_free(&x);
  sd_free(&d);
  cn_arena_free(&a);
  return rc;
}
