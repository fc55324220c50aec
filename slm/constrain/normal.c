/*
 * normal.c: JSON Schema -> normal forms (see schema.h for the design).
 *
 * Each keyword contributes what it allows when it holds (positive) and what violates it
 * (negative); a schema is the conjunction of its keywords, its negation the disjunction of their
 * negations. allOf / anyOf / oneOf / not / if / $ref combine the normal forms of other locations
 * at the same instance; object members and array items refer to nodes, computed lazily.
 *
 * Where validators disagree the positive side takes what all accept and the negative side what
 * all reject: "format" (an annotation in some, an assertion in others) has an empty negative
 * side; number predicates only take texts without exponent and with at most 15 significant
 * digits in a fraction; patterns are read STRICT positively and LOOSE under negation
 * (enum rx_mode); a patternProperties pattern applies its schema to every key it may match
 * (LOOSE) while additionalProperties applies to every key no pattern surely matches (STRICT), so
 * an uncertain key gets both schemas.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/constrain/schema.h"

#define MAX_ALTS 128          /* object / array alternatives in one normal form */
#define MAX_LEN_STATES 1000   /* maxLength above this is cut to it (a subset: sound) */
#define MAX_PATTERN_RULES 6

/* ---------------------------------------------------------------- context */

int nx_fail(struct nctx *x, int rc, const char *kw, const char *ptr, const char *msg) {
  if (!x->rc) {
    x->rc = rc;
    cn_errf(x->err, kw, ptr, "%s", msg);
  }
  return rc;
}

struct cdfa *nx_dfa(struct nctx *x) {
  struct cdfa *d = cn_alloc(x->a, sizeof *d);
  if (!d || cn_grow(&x->dfas, &x->cap_dfas, x->ndfas + 1, sizeof *x->dfas)) {
    nx_fail(x, -ENOMEM, "", "", "out of memory");
    return NULL;
  }
  x->dfas[x->ndfas++] = d;
  return d;
}

void nx_relax(struct nctx *x, const char *kw) {
  size_t k = strlen(kw), n = strlen(x->relaxed);
  const char *p = x->relaxed;
  while ((p = strstr(p, kw))) {
    if ((p == x->relaxed || p[-1] == ',') && (p[k] == ',' || p[k] == 0)) return;
    p += k;
  }
  if (n + k + 2 >= sizeof x->relaxed) return;
  if (n) x->relaxed[n++] = ',';
  memcpy(x->relaxed + n, kw, k + 1);
}

int nx_init(struct nctx *x, struct sdoc *d, const struct cn_schema_opts *o, struct cn_err *err) {
  memset(x, 0, sizeof *x);
  x->doc = d;
  x->a = d->a;
  x->o = o;
  x->err = err;
  if (cn_km_init(&x->nodemap)) return -ENOMEM;
  uint32_t f = UINT32_MAX;
  bool added;
  if (cn_km_get(&x->nodemap, NULL, 0, &added) != NODE_TRUE ||
      cn_km_get(&x->nodemap, &f, 1, &added) != NODE_FALSE)
    return -ENOMEM;
  if (cn_grow(&x->nodes, &x->cap_nodes, 2, sizeof *x->nodes)) return -ENOMEM;
  memset(x->nodes, 0, 2 * sizeof *x->nodes);
  x->nodes[0].empty = 0;
  x->nodes[1].empty = 1;
  x->nodes[0].machine = x->nodes[1].machine = -1;
  x->nn = 2;
  return 0;
}

void nx_free(struct nctx *x) {
  for (size_t i = 0; i < x->ndfas; i++) cdfa_free(x->dfas[i]);
  free(x->dfas);
  free(x->nodes);
  free(x->locnf);
  free(x->locstate);
  cn_km_free(&x->nodemap);
  memset(x, 0, sizeof *x);
}

/* ---------------------------------------------------------------- nodes */

static uint32_t intern(struct nctx *x, const uint32_t *lits, size_t n) {
  bool added;
  uint32_t id = cn_km_get(&x->nodemap, lits, n, &added);
  if (id == UINT32_MAX) {
    nx_fail(x, -ENOMEM, "", "", "out of memory");
    return NONE32;
  }
  if (added) {
    if (cn_grow(&x->nodes, &x->cap_nodes, x->nn + 1, sizeof *x->nodes)) {
      nx_fail(x, -ENOMEM, "", "", "out of memory");
      return NONE32;
    }
    struct nnode *nd = &x->nodes[x->nn++];
    memset(nd, 0, sizeof *nd);
    nd->empty = -1;
    nd->machine = -1;
  }
  return id;
}

static const uint32_t *node_lits(const struct nctx *x, uint32_t id, uint32_t *n) {
  size_t o = x->nodemap.key_off[id];
  *n = (uint32_t)(x->nodemap.key_off[id + 1] - o);
  return x->nodemap.pool + o;
}

uint32_t nx_lit(struct nctx *x, uint32_t loc, bool neg) {
  const struct cj_val *v = x->doc->locs[loc].v;
  if (v->type == CJ_TRUE) return neg ? NODE_FALSE : NODE_TRUE;
  if (v->type == CJ_FALSE) return neg ? NODE_TRUE : NODE_FALSE;
  uint32_t l = loc << 1 | (neg ? 1u : 0u);
  return intern(x, &l, 1);
}

uint32_t nx_and(struct nctx *x, uint32_t a, uint32_t b) {
  if (a == NONE32 || b == NONE32) return NONE32;
  if (a == NODE_FALSE || b == NODE_FALSE) return NODE_FALSE;
  if (a == NODE_TRUE || a == b) return b;
  if (b == NODE_TRUE) return a;
  uint32_t na, nb;
  const uint32_t *la = node_lits(x, a, &na), *lb = node_lits(x, b, &nb);
  uint32_t buf[64];
  uint32_t *m = na + nb <= 64 ? buf : malloc((na + nb) * sizeof *m);
  if (!m) return NONE32;
  size_t i = 0, j = 0, k = 0;
  while (i < na || j < nb) {
    uint32_t v;
    if (j >= nb || (i < na && la[i] < lb[j])) v = la[i++];
    else if (i >= na || lb[j] < la[i]) v = lb[j++];
    else v = la[i++], j++;
    m[k++] = v;
  }
  uint32_t r = NONE32;
  bool contra = false;   /* A and not A */
  for (size_t q = 0; q + 1 < k; q++)
    if ((m[q] >> 1) == (m[q + 1] >> 1)) contra = true;
  r = contra ? NODE_FALSE : intern(x, m, k);
  if (m != buf) free(m);
  return r;
}

/* ---------------------------------------------------------------- normal form basics */

static struct nf *nf_new(struct nctx *x) {
  struct nf *f = cn_alloc(x->a, sizeof *f);
  if (!f) nx_fail(x, -ENOMEM, "", "", "out of memory");
  return f;
}

static struct nf *nf_all(struct nctx *x) {
  struct nf *f = nf_new(x);
  if (!f) return NULL;
  f->null_ok = 1;
  f->bools = 3;
  f->num.kind = PK_ALL;
  f->str.kind = PK_ALL;
  f->arr_all = f->obj_all = 1;
  return f;
}

static struct nf *nf_none(struct nctx *x) { return nf_new(x); }

/* All types but the one of PART (which the caller sets), or none of them. */
static struct nf *nf_others(struct nctx *x, int ty, bool others) {
  struct nf *f = others ? nf_all(x) : nf_none(x);
  if (!f) return NULL;
  if (ty == TY_NUM) f->num.kind = PK_NONE, f->num.intonly = 0;
  if (ty == TY_STR) f->str.kind = PK_NONE;
  if (ty == TY_ARR) f->arr_all = 0;
  if (ty == TY_OBJ) f->obj_all = 0;
  return f;
}

static void set_unsup_msg(struct nf *f, int ty, const char *kw, const char *ptr, const char *msg) {
  if (f->unsup & (1u << ty)) return;
  f->unsup |= (uint8_t)(1u << ty);
  f->ukw[ty] = kw;
  f->uptr[ty] = ptr;
  f->umsg[ty] = msg;
}
static void set_unsup(struct nf *f, int ty, const char *kw, const char *ptr) {
  set_unsup_msg(f, ty, kw, ptr, NULL);
}

/* A keyword we cannot express for type TY: positive (OTHERS true) / negative side. In relaxed
 * mode the keyword is ignored instead (positive: everything; negative: nothing). */
static struct nf *nf_unsup(struct nctx *x, int ty, bool neg, const char *kw, const char *ptr) {
  if (x->o->relaxed) {
    nx_relax(x, kw);
    return neg ? nf_none(x) : nf_all(x);
  }
  struct nf *f = nf_others(x, ty, !neg);
  if (f) set_unsup(f, ty, kw, ptr);
  return f;
}

static bool arr_none(const struct nf *f) {
  return !f->arr_all && !f->narr && !f->ncarr && !(f->unsup & (1u << TY_ARR));
}
static bool obj_none(const struct nf *f) {
  return !f->obj_all && !f->nobj && !f->ncobj && !(f->unsup & (1u << TY_OBJ));
}

/* ---------------------------------------------------------------- numbers and strings */

static int dfa_op(struct nctx *x, const struct cdfa *a, const struct cdfa *b, enum cdfa_op op,
                  struct cdfa **out) {
  struct cdfa *d = nx_dfa(x);
  if (!d) return -ENOMEM;
  int rc = cdfa_product(a, b, op, x->o->max_states < 100000 ? x->o->max_states : 100000, d);
  if (rc) {
    memset(d, 0, sizeof *d);
    return rc;
  }
  *out = d;
  return 0;
}

/* A SOME part from a product (NONE when it fails: the caller marks the part unsupported). */
static int some_op_num(struct nctx *x, const struct cdfa *a, const struct cdfa *b, enum cdfa_op op,
                       struct cdfa **d, uint8_t *kind) {
  int rc = dfa_op(x, a, b, op, d);
  *kind = rc ? PK_NONE : PK_SOME;
  return rc;
}

static struct cdfa *int_dfa(struct nctx *x) {
  struct cdfa *d = nx_dfa(x);
  if (d && num_int(d)) {
    memset(d, 0, sizeof *d);
    return NULL;
  }
  return d;
}

/* numbers: NONE, ALL (intonly: every integer text), SOME(d) */
static int num_and(struct nctx *x, const struct numpart *a, const struct numpart *b, struct numpart *o) {
  memset(o, 0, sizeof *o);
  if (a->kind == PK_NONE || b->kind == PK_NONE) return 0;
  if (a->kind == PK_ALL && b->kind == PK_ALL) {
    *o = *a;
    o->intonly = a->intonly | b->intonly;
    return 0;
  }
  if (a->kind == PK_ALL || b->kind == PK_ALL) {
    const struct numpart *all = a->kind == PK_ALL ? a : b, *some = a->kind == PK_ALL ? b : a;
    if (!all->intonly) {
      *o = *some;
      return 0;
    }
    struct cdfa *id = int_dfa(x);
    if (!id) return -ENOMEM;
    return some_op_num(x, some->d, id, CDFA_AND, &o->d, &o->kind);
  }
  return some_op_num(x, a->d, b->d, CDFA_AND, &o->d, &o->kind);
}

static int num_or(struct nctx *x, const struct numpart *a, const struct numpart *b, struct numpart *o) {
  memset(o, 0, sizeof *o);
  if (a->kind == PK_NONE) {
    *o = *b;
    return 0;
  }
  if (b->kind == PK_NONE) {
    *o = *a;
    return 0;
  }
  if ((a->kind == PK_ALL && !a->intonly) || (b->kind == PK_ALL && !b->intonly)) {
    o->kind = PK_ALL;
    return 0;
  }
  if (a->kind == PK_ALL && b->kind == PK_ALL) {
    *o = *a;
    return 0;
  }
  const struct cdfa *da = a->d, *db = b->d;
  if (a->kind == PK_ALL && !(da = int_dfa(x))) return -ENOMEM;
  if (b->kind == PK_ALL && !(db = int_dfa(x))) return -ENOMEM;
  return some_op_num(x, da, db, CDFA_OR, &o->d, &o->kind);
}

static int str_and(struct nctx *x, const struct strpart *a, const struct strpart *b, struct strpart *o) {
  memset(o, 0, sizeof *o);
  if (a->kind == PK_NONE || b->kind == PK_NONE) return 0;
  if (a->kind == PK_ALL) {
    *o = *b;
    return 0;
  }
  if (b->kind == PK_ALL) {
    *o = *a;
    return 0;
  }
  return some_op_num(x, a->d, b->d, CDFA_AND, &o->d, &o->kind);
}

static int str_or(struct nctx *x, const struct strpart *a, const struct strpart *b, struct strpart *o) {
  memset(o, 0, sizeof *o);
  if (a->kind == PK_NONE) {
    *o = *b;
    return 0;
  }
  if (b->kind == PK_NONE || a->kind == PK_ALL) {
    *o = *a;
    return 0;
  }
  if (b->kind == PK_ALL) {
    *o = *b;
    return 0;
  }
  return some_op_num(x, a->d, b->d, CDFA_OR, &o->d, &o->kind);
}

/* ---------------------------------------------------------------- array and object specs */

static struct arrspec *arr_new(struct nctx *x) {
  struct arrspec *s = cn_alloc(x->a, sizeof *s);
  if (!s) {
    nx_fail(x, -ENOMEM, "", "", "out of memory");
    return NULL;
  }
  s->rest = NODE_TRUE;
  s->max = NONE32;
  s->cont = NONE32;
  s->cmax = NONE32;
  return s;
}

static uint32_t arr_item(const struct arrspec *s, uint32_t i) { return i < s->np ? s->prefix[i] : s->rest; }

/* A and B, or NULL with *UNSUP when both count "contains" items. */
static struct arrspec *arr_and(struct nctx *x, const struct arrspec *a, const struct arrspec *b,
                               bool *unsup) {
  if (a->cont != NONE32 && b->cont != NONE32 &&
      !(a->cont == b->cont && a->cfrom == b->cfrom && a->cmin == b->cmin && a->cmax == b->cmax)) {
    *unsup = true;
    return NULL;
  }
  struct arrspec *s = arr_new(x);
  if (!s) return NULL;
  s->np = a->np > b->np ? a->np : b->np;
  if (s->np) {
    s->prefix = cn_alloc(x->a, s->np * sizeof *s->prefix);
    if (!s->prefix) return NULL;
    for (uint32_t i = 0; i < s->np; i++) s->prefix[i] = nx_and(x, arr_item(a, i), arr_item(b, i));
  }
  s->rest = nx_and(x, a->rest, b->rest);
  s->min = a->min > b->min ? a->min : b->min;
  s->max = a->max < b->max ? a->max : b->max;
  const struct arrspec *c = a->cont != NONE32 ? a : b;
  s->cont = c->cont;
  s->cfrom = c->cfrom;
  s->cmin = c->cmin;
  s->cmax = c->cmax;
  s->uniq = a->uniq | b->uniq;
  s->uptr = a->uptr ? a->uptr : b->uptr;
  return s;
}

static struct objspec *obj_new(struct nctx *x) {
  struct objspec *s = cn_alloc(x->a, sizeof *s);
  if (!s) {
    nx_fail(x, -ENOMEM, "", "", "out of memory");
    return NULL;
  }
  s->maxp = NONE32;
  s->wnode = NODE_TRUE;
  return s;
}

static struct objspec *obj_and(struct nctx *x, const struct objspec *a, const struct objspec *b,
                               bool *unsup) {
  if (a->wkeys && b->wkeys) {
    *unsup = true;
    return NULL;
  }
  struct objspec *s = obj_new(x);
  if (!s) return NULL;
  s->nr = a->nr + b->nr;
  if (s->nr) {
    s->rules = cn_alloc(x->a, s->nr * sizeof *s->rules);
    if (!s->rules) return NULL;
    if (a->nr) memcpy(s->rules, a->rules, a->nr * sizeof *s->rules);
    if (b->nr) memcpy(s->rules + a->nr, b->rules, b->nr * sizeof *s->rules);
  }
  uint32_t cap = a->nreq + b->nreq;
  if (cap) {
    s->req = cn_alloc(x->a, cap * sizeof *s->req);
    s->reqlen = cn_alloc(x->a, cap * sizeof *s->reqlen);
    if (!s->req || !s->reqlen) return NULL;
    for (int side = 0; side < 2; side++) {
      const struct objspec *o = side ? b : a;
      for (uint32_t i = 0; i < o->nreq; i++) {
        bool dup = false;
        for (uint32_t j = 0; j < s->nreq && !dup; j++)
          dup = s->reqlen[j] == o->reqlen[i] && !memcmp(s->req[j], o->req[i], o->reqlen[i]);
        if (!dup) s->req[s->nreq] = o->req[i], s->reqlen[s->nreq++] = o->reqlen[i];
      }
    }
  }
  if (a->pnames && b->pnames) {
    if (dfa_op(x, a->pnames, b->pnames, CDFA_AND, &s->pnames)) {
      *unsup = true;
      return NULL;
    }
  } else {
    s->pnames = a->pnames ? a->pnames : b->pnames;
  }
  s->minp = a->minp > b->minp ? a->minp : b->minp;
  s->maxp = a->maxp < b->maxp ? a->maxp : b->maxp;
  const struct objspec *w = a->wkeys ? a : b;
  s->wkeys = w->wkeys;
  s->wnode = w->wnode;
  return s;
}

/* ---------------------------------------------------------------- membership */

static enum cn_tri tand(enum cn_tri a, enum cn_tri b) {
  if (a == CN_FALSE || b == CN_FALSE) return CN_FALSE;
  if (a == CN_UNKNOWN || b == CN_UNKNOWN) return CN_UNKNOWN;
  return CN_TRUE;
}
static enum cn_tri tor(enum cn_tri a, enum cn_tri b) {
  if (a == CN_TRUE || b == CN_TRUE) return CN_TRUE;
  if (a == CN_UNKNOWN || b == CN_UNKNOWN) return CN_UNKNOWN;
  return CN_FALSE;
}

static enum cn_tri arrspec_member(struct nctx *x, const struct arrspec *s, const struct cj_val *v) {
  if (v->len < s->min || v->len > s->max) return CN_FALSE;
  enum cn_tri r = CN_TRUE;
  for (uint32_t i = 0; i < v->len && r != CN_FALSE; i++) r = tand(r, nx_member(x, arr_item(s, i), &v->u.items[i]));
  if (r == CN_FALSE) return r;
  if (s->cont != NONE32) {
    uint32_t sure = 0, maybe = 0;
    for (uint32_t i = s->cfrom; i < v->len; i++) {
      enum cn_tri c = nx_member(x, s->cont, &v->u.items[i]);
      if (c == CN_TRUE) sure++;
      else if (c == CN_UNKNOWN) maybe++;
    }
    if (sure + maybe < s->cmin || sure > s->cmax) return CN_FALSE;
    if (!(sure >= s->cmin && sure + maybe <= s->cmax)) r = tand(r, CN_UNKNOWN);
  }
  if (s->uniq) {
    enum cn_tri dup = CN_FALSE;
    for (uint32_t i = 0; i < v->len; i++)
      for (uint32_t j = i + 1; j < v->len; j++) dup = tor(dup, cj_equal(&v->u.items[i], &v->u.items[j]));
    if (s->uniq == 1) r = tand(r, dup == CN_TRUE ? CN_FALSE : dup == CN_UNKNOWN ? CN_UNKNOWN : CN_TRUE);
    if (s->uniq == 2) r = tand(r, dup);
    if (s->uniq == 3) r = CN_FALSE;
  }
  return r;
}

bool nx_rule_matches(const struct orule *r, const char *k, uint32_t kl) {
  if (r->name) return r->nlen == kl && !memcmp(r->name, k, kl);
  return cdfa_match(r->keys, k, kl);
}

static enum cn_tri objspec_member(struct nctx *x, const struct objspec *s, const struct cj_val *v) {
  for (uint32_t i = 0; i < v->len; i++)
    for (uint32_t j = i + 1; j < v->len; j++)
      if (v->u.members[i].klen == v->u.members[j].klen &&
          !memcmp(v->u.members[i].key, v->u.members[j].key, v->u.members[i].klen))
        return CN_UNKNOWN;
  if (v->len < s->minp || v->len > s->maxp) return CN_FALSE;
  enum cn_tri r = CN_TRUE;
  bool witness = s->wkeys == NULL;
  for (uint32_t i = 0; i < v->len && r != CN_FALSE; i++) {
    const struct cj_member *m = &v->u.members[i];
    if (m->kflags & CJ_F_BADSTR) return CN_UNKNOWN;
    if (s->pnames && !cdfa_match(s->pnames, m->key, m->klen)) return CN_FALSE;
    for (uint32_t k = 0; k < s->nr && r != CN_FALSE; k++)
      if (nx_rule_matches(&s->rules[k], m->key, m->klen)) r = tand(r, nx_member(x, s->rules[k].node, &m->val));
    if (!witness && cdfa_match(s->wkeys, m->key, m->klen) && nx_member(x, s->wnode, &m->val) == CN_TRUE)
      witness = true;
  }
  for (uint32_t k = 0; k < s->nreq && r != CN_FALSE; k++) {
    bool found = false;
    for (uint32_t i = 0; i < v->len && !found; i++)
      found = v->u.members[i].klen == s->reqlen[k] && !memcmp(v->u.members[i].key, s->req[k], s->reqlen[k]);
    if (!found) r = CN_FALSE;
  }
  if (!witness) r = tand(r, CN_UNKNOWN);
  return r;
}

static enum cn_tri nf_member(struct nctx *x, const struct nf *f, const struct cj_val *v) {
  switch (v->type) {
    case CJ_NULL: return f->null_ok ? CN_TRUE : CN_FALSE;
    case CJ_FALSE: return f->bools & 1 ? CN_TRUE : CN_FALSE;
    case CJ_TRUE: return f->bools & 2 ? CN_TRUE : CN_FALSE;
    case CJ_NUMBER:
      if (f->unsup & (1u << TY_NUM)) return CN_UNKNOWN;
      if (f->num.kind == PK_NONE) return CN_FALSE;
      if (f->num.kind == PK_ALL) return !f->num.intonly || (v->flags & CJ_F_INT) ? CN_TRUE : CN_FALSE;
      return cdfa_match(f->num.d, v->u.s, v->len) ? CN_TRUE : CN_FALSE;
    case CJ_STRING:
      if (f->unsup & (1u << TY_STR)) return CN_UNKNOWN;
      if (v->flags & CJ_F_BADSTR) return CN_UNKNOWN;
      if (f->str.kind == PK_NONE) return CN_FALSE;
      if (f->str.kind == PK_ALL) return CN_TRUE;
      return cdfa_match(f->str.d, v->u.s, v->len) ? CN_TRUE : CN_FALSE;
    case CJ_ARRAY: {
      if (f->arr_all) return CN_TRUE;
      enum cn_tri r = f->unsup & (1u << TY_ARR) ? CN_UNKNOWN : CN_FALSE;
      for (uint32_t i = 0; i < f->ncarr && r != CN_TRUE; i++) r = tor(r, cj_equal(f->carr[i], v));
      for (uint32_t i = 0; i < f->narr && r != CN_TRUE; i++) r = tor(r, arrspec_member(x, f->arr[i], v));
      return r;
    }
    case CJ_OBJECT: {
      if (f->obj_all) return CN_TRUE;
      enum cn_tri r = f->unsup & (1u << TY_OBJ) ? CN_UNKNOWN : CN_FALSE;
      for (uint32_t i = 0; i < f->ncobj && r != CN_TRUE; i++) r = tor(r, cj_equal(f->cobj[i], v));
      for (uint32_t i = 0; i < f->nobj && r != CN_TRUE; i++) r = tor(r, objspec_member(x, f->obj[i], v));
      return r;
    }
  }
  return CN_FALSE;
}

enum cn_tri nx_member(struct nctx *x, uint32_t node, const struct cj_val *v) {
  if (node == NODE_TRUE) return CN_TRUE;
  if (node == NODE_FALSE) return CN_FALSE;
  if (node == NONE32 || x->nodes[node].state == 1) return CN_UNKNOWN;
  if (++x->depth > 200) {
    x->depth--;
    return CN_UNKNOWN;
  }
  struct nf *f = nx_nf(x, node);
  enum cn_tri r = f ? nf_member(x, f, v) : CN_UNKNOWN;
  x->depth--;
  return r;
}

/* ---------------------------------------------------------------- and / or */

static int too_many(struct nctx *x, struct nf *f, int ty) {
  set_unsup(f, ty, "anyOf", "");
  (void)x;
  return 0;
}

/* Concrete values of C kept where the other side's part (ALL, SPECS, CONCRETE) holds. */
static int filter_conc(struct nctx *x, const struct cj_val **c, uint32_t nc, const struct nf *other,
                       bool arr, const struct cj_val ***out, uint32_t *nout) {
  for (uint32_t i = 0; i < nc; i++) {
    if (nf_member(x, other, c[i]) != CN_TRUE) continue;
    const struct cj_val **nw = cn_alloc(x->a, (*nout + 1) * sizeof *nw);
    if (!nw) return -ENOMEM;
    if (*nout) memcpy(nw, *out, *nout * sizeof *nw);
    nw[(*nout)++] = c[i];
    *out = nw;
  }
  (void)arr;
  return 0;
}

static struct nf *nf_and(struct nctx *x, const struct nf *a, const struct nf *b) {
  if (!a || !b) return NULL;
  struct nf *f = nf_new(x);
  if (!f) return NULL;
  f->null_ok = a->null_ok & b->null_ok;
  f->bools = a->bools & b->bools;
  if (num_and(x, &a->num, &b->num, &f->num))
    set_unsup_msg(f, TY_NUM, "allOf", "", "the intersection of these number constraints is too large");
  if (str_and(x, &a->str, &b->str, &f->str))
    set_unsup_msg(f, TY_STR, "allOf", "", "the intersection of these string constraints is too large");
  /* unsupported parts: kept unless the other side excludes the type */
  static const int tys[2] = {TY_NUM, TY_STR};
  for (int k = 0; k < 2; k++) {
    int ty = tys[k];
    bool an = ty == TY_NUM ? a->num.kind == PK_NONE : a->str.kind == PK_NONE;
    bool bn = ty == TY_NUM ? b->num.kind == PK_NONE : b->str.kind == PK_NONE;
    if ((a->unsup & (1u << ty)) && !(bn && !(b->unsup & (1u << ty))))
      set_unsup_msg(f, ty, a->ukw[ty], a->uptr[ty], a->umsg[ty]);
    if ((b->unsup & (1u << ty)) && !(an && !(a->unsup & (1u << ty))))
      set_unsup_msg(f, ty, b->ukw[ty], b->uptr[ty], b->umsg[ty]);
  }
  /* arrays */
  if (!arr_none(a) && !arr_none(b)) {
    bool au = a->unsup & (1u << TY_ARR), bu = b->unsup & (1u << TY_ARR);
    f->arr_all = a->arr_all & b->arr_all;
    if (!f->arr_all) {
      const struct nf *sa = a, *sb = b;
      if (a->arr_all || b->arr_all) {
        const struct nf *sp = a->arr_all ? b : a;
        f->narr = sp->narr;
        f->arr = sp->arr;
      } else if ((uint64_t)a->narr * b->narr > MAX_ALTS) {
        too_many(x, f, TY_ARR);
      } else if (a->narr && b->narr) {
        f->arr = cn_alloc(x->a, (size_t)a->narr * b->narr * sizeof *f->arr);
        if (!f->arr) return NULL;
        for (uint32_t i = 0; i < a->narr; i++)
          for (uint32_t j = 0; j < b->narr; j++) {
            bool un = false;
            struct arrspec *s = arr_and(x, a->arr[i], b->arr[j], &un);
            if (s) f->arr[f->narr++] = s;
            else if (un) set_unsup(f, TY_ARR, "contains", "");
            else return NULL;
          }
      }
      /* concrete values: A's filtered by B, B's filtered by A's specs */
      struct nf bspec = *b, aspec = *a;
      aspec.ncarr = 0;
      if (filter_conc(x, sa->carr, sa->ncarr, &bspec, true, &f->carr, &f->ncarr) ||
          filter_conc(x, sb->carr, sb->ncarr, &aspec, true, &f->carr, &f->ncarr))
        return NULL;
      if ((au && (b->arr_all || b->narr || bu)) || (bu && (a->arr_all || a->narr || au))) {
        const struct nf *u = au ? a : b;
        set_unsup_msg(f, TY_ARR, u->ukw[TY_ARR], u->uptr[TY_ARR], u->umsg[TY_ARR]);
      }
    }
  }
  /* objects */
  if (!obj_none(a) && !obj_none(b)) {
    bool au = a->unsup & (1u << TY_OBJ), bu = b->unsup & (1u << TY_OBJ);
    f->obj_all = a->obj_all & b->obj_all;
    if (!f->obj_all) {
      if (a->obj_all || b->obj_all) {
        const struct nf *sp = a->obj_all ? b : a;
        f->nobj = sp->nobj;
        f->obj = sp->obj;
      } else if ((uint64_t)a->nobj * b->nobj > MAX_ALTS) {
        too_many(x, f, TY_OBJ);
      } else if (a->nobj && b->nobj) {
        f->obj = cn_alloc(x->a, (size_t)a->nobj * b->nobj * sizeof *f->obj);
        if (!f->obj) return NULL;
        for (uint32_t i = 0; i < a->nobj; i++)
          for (uint32_t j = 0; j < b->nobj; j++) {
            bool un = false;
            struct objspec *s = obj_and(x, a->obj[i], b->obj[j], &un);
            if (s) f->obj[f->nobj++] = s;
            else if (un) set_unsup(f, TY_OBJ, "not", "");
            else return NULL;
          }
      }
      struct nf bspec = *b, aspec = *a;
      aspec.ncobj = 0;
      if (filter_conc(x, a->cobj, a->ncobj, &bspec, false, &f->cobj, &f->ncobj) ||
          filter_conc(x, b->cobj, b->ncobj, &aspec, false, &f->cobj, &f->ncobj))
        return NULL;
      if ((au && (b->obj_all || b->nobj || bu)) || (bu && (a->obj_all || a->nobj || au))) {
        const struct nf *u = au ? a : b;
        set_unsup_msg(f, TY_OBJ, u->ukw[TY_OBJ], u->uptr[TY_OBJ], u->umsg[TY_OBJ]);
      }
    }
  }
  return x->rc ? NULL : f;
}

static struct nf *nf_or(struct nctx *x, const struct nf *a, const struct nf *b) {
  if (!a || !b) return NULL;
  struct nf *f = nf_new(x);
  if (!f) return NULL;
  f->null_ok = a->null_ok | b->null_ok;
  f->bools = a->bools | b->bools;
  if (num_or(x, &a->num, &b->num, &f->num))
    set_unsup_msg(f, TY_NUM, "anyOf", "", "the union of these number constraints is too large");
  if (str_or(x, &a->str, &b->str, &f->str))
    set_unsup_msg(f, TY_STR, "anyOf", "", "the union of these string constraints is too large");
  for (int ty = 0; ty < 4; ty++) {
    if (a->unsup & (1u << ty)) set_unsup_msg(f, ty, a->ukw[ty], a->uptr[ty], a->umsg[ty]);
    if (b->unsup & (1u << ty)) set_unsup_msg(f, ty, b->ukw[ty], b->uptr[ty], b->umsg[ty]);
  }
  f->arr_all = a->arr_all | b->arr_all;
  if (!f->arr_all) {
    if (a->narr + b->narr > MAX_ALTS) {
      too_many(x, f, TY_ARR);
    } else {
      f->narr = a->narr + b->narr;
      f->arr = cn_alloc(x->a, (f->narr ? f->narr : 1) * sizeof *f->arr);
      if (!f->arr) return NULL;
      if (a->narr) memcpy(f->arr, a->arr, a->narr * sizeof *f->arr);
      if (b->narr) memcpy(f->arr + a->narr, b->arr, b->narr * sizeof *f->arr);
    }
    f->ncarr = a->ncarr + b->ncarr;
    f->carr = cn_alloc(x->a, (f->ncarr ? f->ncarr : 1) * sizeof *f->carr);
    if (!f->carr) return NULL;
    if (a->ncarr) memcpy(f->carr, a->carr, a->ncarr * sizeof *f->carr);
    if (b->ncarr) memcpy(f->carr + a->ncarr, b->carr, b->ncarr * sizeof *f->carr);
  }
  f->obj_all = a->obj_all | b->obj_all;
  if (!f->obj_all) {
    if (a->nobj + b->nobj > MAX_ALTS) {
      too_many(x, f, TY_OBJ);
    } else {
      f->nobj = a->nobj + b->nobj;
      f->obj = cn_alloc(x->a, (f->nobj ? f->nobj : 1) * sizeof *f->obj);
      if (!f->obj) return NULL;
      if (a->nobj) memcpy(f->obj, a->obj, a->nobj * sizeof *f->obj);
      if (b->nobj) memcpy(f->obj + a->nobj, b->obj, b->nobj * sizeof *f->obj);
    }
    f->ncobj = a->ncobj + b->ncobj;
    f->cobj = cn_alloc(x->a, (f->ncobj ? f->ncobj : 1) * sizeof *f->cobj);
    if (!f->cobj) return NULL;
    if (a->ncobj) memcpy(f->cobj, a->cobj, a->ncobj * sizeof *f->cobj);
    if (b->ncobj) memcpy(f->cobj + a->ncobj, b->cobj, b->ncobj * sizeof *f->cobj);
  }
  /* everything of a type absorbs what could not be expressed of it */
  if (f->arr_all) f->narr = f->ncarr = 0, f->unsup &= (uint8_t)~(1u << TY_ARR);
  if (f->obj_all) f->nobj = f->ncobj = 0, f->unsup &= (uint8_t)~(1u << TY_OBJ);
  if (f->num.kind == PK_ALL && !f->num.intonly) f->unsup &= (uint8_t)~(1u << TY_NUM);
  if (f->str.kind == PK_ALL) f->unsup &= (uint8_t)~(1u << TY_STR);
  return x->rc ? NULL : f;
}

/* ---------------------------------------------------------------- emptiness */

static bool arrspec_empty(struct nctx *x, const struct arrspec *s) {
  if (s->min > s->max || s->uniq == 3) return true;
  for (uint32_t i = 0; i < s->min && i < s->np + 1; i++)
    if (nx_empty(x, arr_item(s, i))) return true;
  if (s->cont != NONE32) {
    if (s->cmin > s->cmax) return true;
    if (s->cmin > 0 && (nx_empty(x, s->cont) || (s->max != NONE32 && s->max <= s->cfrom))) return true;
  }
  return false;
}

uint32_t nx_key_node(struct nctx *x, const struct objspec *s, const char *k, uint32_t kl) {
  uint32_t n = NODE_TRUE;
  if (s->pnames && !cdfa_match(s->pnames, k, kl)) return NODE_FALSE;
  for (uint32_t i = 0; i < s->nr; i++)
    if (nx_rule_matches(&s->rules[i], k, kl)) n = nx_and(x, n, s->rules[i].node);
  return n;
}

static bool objspec_empty(struct nctx *x, const struct objspec *s) {
  if (s->minp > s->maxp || s->nreq > s->maxp) return true;
  for (uint32_t i = 0; i < s->nreq; i++) {
    uint32_t n = nx_key_node(x, s, s->req[i], s->reqlen[i]);
    if (n == NODE_FALSE || nx_empty(x, n)) return true;
  }
  if (s->wkeys && (cdfa_is_empty(s->wkeys) || nx_empty(x, s->wnode))) return true;
  return false;
}

bool nf_empty(struct nctx *x, const struct nf *f) {
  if (!f) return false;
  if (f->null_ok || f->bools || f->unsup || f->arr_all || f->obj_all || f->ncarr || f->ncobj) return false;
  if (f->num.kind == PK_ALL || (f->num.kind == PK_SOME && !cdfa_is_empty(f->num.d))) return false;
  if (f->str.kind == PK_ALL || (f->str.kind == PK_SOME && !cdfa_is_empty(f->str.d))) return false;
  for (uint32_t i = 0; i < f->narr; i++)
    if (!arrspec_empty(x, f->arr[i])) return false;
  for (uint32_t i = 0; i < f->nobj; i++)
    if (!objspec_empty(x, f->obj[i])) return false;
  return true;
}

bool nx_empty(struct nctx *x, uint32_t node) {
  if (node == NODE_FALSE) return true;
  if (node == NODE_TRUE || node == NONE32) return false;
  struct nnode *nd = &x->nodes[node];
  if (nd->empty == 0 || nd->empty == 1) return nd->empty;
  if (nd->empty == 2 || nd->state == 1) return false;   /* being decided: not known empty */
  if (++x->depth > 200) {
    x->depth--;
    return false;
  }
  nd->empty = 2;
  struct nf *f = nx_nf(x, node);
  bool e = f && nf_empty(x, f);
  x->nodes[node].empty = e ? 1 : 0;
  x->depth--;
  return e;
}

/* ---------------------------------------------------------------- keyword helpers */

static const struct cj_val *kw(const struct nctx *x, uint32_t l, const char *k) {
  return cj_get(x->doc->locs[l].v, k);
}
static const char *lptr(const struct nctx *x, uint32_t l) { return x->doc->locs[l].ptr; }

static struct nf *bad(struct nctx *x, uint32_t l, const char *k, const char *msg) {
  char p[300];
  snprintf(p, sizeof p, "%s/%s", lptr(x, l), k);
  nx_fail(x, -EINVAL, k, p, msg);
  return NULL;
}

/* A non-negative integer keyword value (false if absent); *BAD on a wrong type. */
static bool get_count(const struct cj_val *v, uint64_t *out, bool *badv) {
  if (!v) return false;
  if (v->type != CJ_NUMBER) {
    *badv = true;
    return false;
  }
  struct cn_dec d;
  cn_dec_from_text(v->u.s, v->len, &d);
  if (d.neg || !cn_dec_is_int(&d) || d.too_long || d.nip > 18) {
    if (!d.neg && cn_dec_is_int(&d)) {
      *out = UINT64_MAX / 2;   /* huge */
      return true;
    }
    *badv = true;
    return false;
  }
  uint64_t n = 0;
  for (int i = 0; i < d.nip; i++) n = n * 10 + (uint64_t)(d.ip[i] - '0');
  *out = n;
  return true;
}

static uint32_t clamp32(uint64_t v) { return v >= NONE32 ? NONE32 - 1 : (uint32_t)v; }

static struct nf *nf_from_num(struct nctx *x, struct cdfa *d, bool others) {
  struct nf *f = nf_others(x, TY_NUM, others);
  if (!f) return NULL;
  f->num.kind = PK_SOME;
  f->num.d = d;
  return f;
}

static struct nf *nf_from_str(struct nctx *x, struct cdfa *d, bool others) {
  struct nf *f = nf_others(x, TY_STR, others);
  if (!f) return NULL;
  f->str.kind = PK_SOME;
  f->str.d = d;
  return f;
}

static struct nf *nf_from_arr(struct nctx *x, struct arrspec *s, bool others) {
  struct nf *f = nf_others(x, TY_ARR, others);
  if (!f || !s) return NULL;
  f->arr = cn_alloc(x->a, sizeof *f->arr);
  if (!f->arr) return NULL;
  f->arr[0] = s;
  f->narr = 1;
  return f;
}

static struct nf *nf_from_obj(struct nctx *x, struct objspec *s, bool others) {
  struct nf *f = nf_others(x, TY_OBJ, others);
  if (!f || !s) return NULL;
  f->obj = cn_alloc(x->a, sizeof *f->obj);
  if (!f->obj) return NULL;
  f->obj[0] = s;
  f->nobj = 1;
  return f;
}

/* combine: positive side AND, negative side OR */
static struct nf *comb(struct nctx *x, struct nf *acc, struct nf *g, bool neg) {
  if (!acc || !g) return NULL;
  return neg ? nf_or(x, acc, g) : nf_and(x, acc, g);
}

static struct nf *nf_of_loc(struct nctx *x, uint32_t l, bool neg);

/* ---------------------------------------------------------------- type */

enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_NUM = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64 };

static int type_bit(const char *s) {
  static const struct { const char *n; int b; } t[] = {
      {"null", T_NULL}, {"boolean", T_BOOL}, {"integer", T_INT}, {"number", T_NUM},
      {"string", T_STR}, {"array", T_ARR}, {"object", T_OBJ}, {"any", 127}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(s, t[i].n)) return t[i].b;
  return 0;
}

static struct nf *nf_types(struct nctx *x, int mask) {
  struct nf *f = nf_none(x);
  if (!f) return NULL;
  f->null_ok = !!(mask & T_NULL);
  f->bools = mask & T_BOOL ? 3 : 0;
  if (mask & T_NUM) f->num.kind = PK_ALL;
  else if (mask & T_INT) f->num.kind = PK_ALL, f->num.intonly = 1;
  if (mask & T_STR) f->str.kind = PK_ALL;
  f->arr_all = !!(mask & T_ARR);
  f->obj_all = !!(mask & T_OBJ);
  return f;
}

static struct nf *g_type(struct nctx *x, uint32_t l, bool neg) {
  const struct cj_val *t = kw(x, l, "type");
  int mask = 0;
  if (t->type == CJ_STRING) {
    mask = type_bit(t->u.s);
    if (!mask) return bad(x, l, "type", "unknown type name");
  } else if (t->type == CJ_ARRAY) {
    for (uint32_t i = 0; i < t->len; i++) {
      int b = t->u.items[i].type == CJ_STRING ? type_bit(t->u.items[i].u.s) : 0;
      if (!b) return bad(x, l, "type", "unknown type name");
      mask |= b;
    }
  } else {
    return bad(x, l, "type", "type must be a string or an array of strings");
  }
  if (!neg) return nf_types(x, mask);
  struct nf *f = nf_types(x, 127 & ~mask & ~T_INT & ~T_NUM);
  if (!f) return NULL;
  if (!(mask & (T_INT | T_NUM))) {
    f->num.kind = PK_ALL;
  } else if ((mask & T_INT) && !(mask & T_NUM)) {
    struct cdfa *d = nx_dfa(x);
    if (!d || num_nonint(d)) return NULL;
    f->num.kind = PK_SOME;
    f->num.d = d;
  }
  return f;
}

/* ---------------------------------------------------------------- enum / const */

static struct nf *g_enum(struct nctx *x, uint32_t l, bool neg) {
  const struct cj_val *en = kw(x, l, "enum"), *co = kw(x, l, "const");
  if (en && en->type != CJ_ARRAY) return bad(x, l, "enum", "enum must be an array");
  /* the candidate values: enum's, restricted to const's */
  const struct cj_val *one[1];
  const struct cj_val **vals;
  uint32_t nv = 0;
  if (en) {
    vals = cn_alloc(x->a, (en->len ? en->len : 1) * sizeof *vals);
    if (!vals) return NULL;
    for (uint32_t i = 0; i < en->len; i++)
      if (!co || cj_equal(&en->u.items[i], co) == CN_TRUE) vals[nv++] = &en->u.items[i];
  } else {
    one[0] = co;
    vals = one;
    nv = 1;
  }
  bool has_null = false;
  uint8_t bools = 0;
  uint32_t nnum = 0, nstr = 0, narr = 0, nobj = 0;
  for (uint32_t i = 0; i < nv; i++) switch (vals[i]->type) {
      case CJ_NULL: has_null = true; break;
      case CJ_FALSE: bools |= 1; break;
      case CJ_TRUE: bools |= 2; break;
      case CJ_NUMBER: nnum++; break;
      case CJ_STRING: nstr++; break;
      case CJ_ARRAY: narr++; break;
      default: nobj++;
    }
  struct cn_dec *decs = cn_alloc(x->a, (nnum ? nnum : 1) * sizeof *decs);
  if (!decs) return NULL;
  uint32_t k = 0;
  for (uint32_t i = 0; i < nv; i++)
    if (vals[i]->type == CJ_NUMBER) cn_dec_from_text(vals[i]->u.s, vals[i]->len, &decs[k++]);
  /* strings: a literal trie */
  struct cdfa *sd = NULL;
  if (nstr) {
    struct cnfa na;
    cnfa_init(&na, 0);
    uint32_t st = cnfa_state(&na), acc = cnfa_state(&na);
    int e = 0;
    for (uint32_t i = 0; i < nv && !e; i++) {
      const struct cj_val *v = vals[i];
      if (v->type != CJ_STRING || (v->flags & CJ_F_BADSTR)) continue;
      uint32_t cur = st;
      for (uint32_t j = 0; j < v->len && !e;) {
        uint32_t cp;
        int n = cn_utf8_dec((const uint8_t *)v->u.s + j, v->len - j, &cp);
        if (n <= 0) break;
        j += (uint32_t)n;
        uint32_t t = cnfa_state(&na);
        e |= t == UINT32_MAX || cnfa_range_edge(&na, cur, t, cp, cp);
        cur = t;
      }
      e |= cnfa_edge(&na, cur, acc, CN_EPS);
    }
    na.start = st;
    na.accept = acc;
    sd = nx_dfa(x);
    if (!sd || e || cdfa_from_nfa(&na, x->o->max_states, sd)) {
      cnfa_free(&na);
      if (sd) memset(sd, 0, sizeof *sd);
      return nf_unsup(x, TY_STR, neg, "enum", lptr(x, l));
    }
    cnfa_free(&na);
  }
  struct nf *f = nf_none(x);
  if (!f) return NULL;
  if (!neg) {
    f->null_ok = has_null;
    f->bools = bools;
    if (nnum) {
      struct cdfa *d = nx_dfa(x);
      if (!d || num_values(decs, nnum, false, d)) return NULL;
      f->num.kind = PK_SOME;
      f->num.d = d;
    }
    if (nstr) f->str.kind = PK_SOME, f->str.d = sd;
    if (narr || nobj) {
      f->carr = cn_alloc(x->a, (narr ? narr : 1) * sizeof *f->carr);
      f->cobj = cn_alloc(x->a, (nobj ? nobj : 1) * sizeof *f->cobj);
      if (!f->carr || !f->cobj) return NULL;
      for (uint32_t i = 0; i < nv; i++) {
        if (vals[i]->type == CJ_ARRAY) f->carr[f->ncarr++] = vals[i];
        if (vals[i]->type == CJ_OBJECT) f->cobj[f->ncobj++] = vals[i];
      }
    }
    return f;
  }
  f->null_ok = !has_null;
  f->bools = (uint8_t)(3 & ~bools);
  if (nnum) {
    struct cdfa *d = nx_dfa(x);
    if (!d || num_values(decs, nnum, true, d)) return NULL;
    f->num.kind = PK_SOME;
    f->num.d = d;
  } else {
    f->num.kind = PK_ALL;
  }
  if (nstr) {
    struct cdfa *c = nx_dfa(x);
    if (!c || cdfa_complement(sd, c)) return NULL;
    f->str.kind = PK_SOME;
    f->str.d = c;
  } else {
    f->str.kind = PK_ALL;
  }
  /* "an array (object) unequal to these" has no spec: unsupported unless there are none */
  if (narr) set_unsup(f, TY_ARR, "enum", lptr(x, l));
  else f->arr_all = 1;
  if (nobj) set_unsup(f, TY_OBJ, "enum", lptr(x, l));
  else f->obj_all = 1;
  if (x->o->relaxed && (narr || nobj)) {
    f->unsup &= (uint8_t)~((1u << TY_ARR) | (1u << TY_OBJ));
    nx_relax(x, "enum");
  }
  return f;
}

/* ---------------------------------------------------------------- numbers */

/* Rounds a bound with more than 15 significant digits inward to 14 (UP: towards +infinity). */
static void round_bound(struct cn_dec *d, bool up) {
  if (cn_dec_is_int(d)) return;
  int sig = d->nip + d->nfp;
  int lead = 0;
  if (d->nip == 0)
    while (lead < d->nfp && d->fp[lead] == '0') lead++;
  if (sig - lead <= 15) return;
  /* keep 14 significant digits; away from zero iff (up == positive) */
  int keep = 14 + lead;   /* digits of ip+fp to keep */
  bool away = up != d->neg;
  char all[100];
  int n = d->nip + d->nfp;
  memcpy(all, d->ip, (size_t)d->nip);
  memcpy(all + d->nip, d->fp, (size_t)d->nfp);
  bool more = false;
  for (int i = keep; i < n; i++)
    if (all[i] != '0') more = true;
  if (keep < d->nip) keep = d->nip;   /* never cut integer digits here */
  n = keep;
  if (away && more) {
    int i = n - 1;
    while (i >= 0 && all[i] == '9') all[i--] = '0';
    if (i >= 0) all[i]++;
    else {
      memmove(all + 1, all, (size_t)n);
      all[0] = '1';
      n++;
      d->nip++;
    }
  }
  int nfp = n - d->nip;
  memcpy(d->ip, all, (size_t)d->nip);
  d->ip[d->nip] = 0;
  d->nfp = nfp > 0 ? nfp : 0;
  memcpy(d->fp, all + d->nip, (size_t)d->nfp);
  while (d->nfp > 0 && d->fp[d->nfp - 1] == '0') d->nfp--;
  d->fp[d->nfp] = 0;
}

static struct nf *g_num(struct nctx *x, uint32_t l, bool neg) {
  const struct cj_val *mn = kw(x, l, "minimum"), *mx = kw(x, l, "maximum");
  const struct cj_val *emn = kw(x, l, "exclusiveMinimum"), *emx = kw(x, l, "exclusiveMaximum");
  const struct cj_val *mo = kw(x, l, "multipleOf");
  struct bnd { const struct cj_val *v; enum cn_cmp op; const char *k; } b[4];
  int nb = 0;
  if (mn) b[nb++] = (struct bnd){mn, emn && emn->type == CJ_TRUE ? CMP_GT : CMP_GE, "minimum"};
  if (mx) b[nb++] = (struct bnd){mx, emx && emx->type == CJ_TRUE ? CMP_LT : CMP_LE, "maximum"};
  if (emn && emn->type == CJ_NUMBER) b[nb++] = (struct bnd){emn, CMP_GT, "exclusiveMinimum"};
  if (emx && emx->type == CJ_NUMBER) b[nb++] = (struct bnd){emx, CMP_LT, "exclusiveMaximum"};
  if ((emn && emn->type != CJ_NUMBER && emn->type != CJ_TRUE && emn->type != CJ_FALSE) ||
      (emx && emx->type != CJ_NUMBER && emx->type != CJ_TRUE && emx->type != CJ_FALSE))
    return bad(x, l, emn ? "exclusiveMinimum" : "exclusiveMaximum", "must be a number (or a boolean in draft 4)");
  struct nf *acc = neg ? nf_none(x) : nf_all(x);
  for (int i = 0; i < nb && acc; i++) {
    if (b[i].v->type != CJ_NUMBER) return bad(x, l, b[i].k, "must be a number");
    struct cn_dec d;
    cn_dec_from_text(b[i].v->u.s, b[i].v->len, &d);
    if (d.too_long) {
      acc = comb(x, acc, nf_unsup(x, TY_NUM, neg, b[i].k, lptr(x, l)), neg);
      continue;
    }
    static const enum cn_cmp flip[4] = {CMP_LT, CMP_LE, CMP_GT, CMP_GE};
    enum cn_cmp op = neg ? flip[b[i].op] : b[i].op;
    round_bound(&d, op == CMP_GE || op == CMP_GT);
    struct cdfa *dd = nx_dfa(x);
    if (!dd || num_cmp(&d, op, dd)) return NULL;
    acc = comb(x, acc, nf_from_num(x, dd, !neg), neg);
  }
  if (mo && acc) {
    if (mo->type != CJ_NUMBER) return bad(x, l, "multipleOf", "must be a number");
    struct cn_dec d;
    cn_dec_from_text(mo->u.s, mo->len, &d);
    if (d.neg || cn_dec_is_zero(&d)) return bad(x, l, "multipleOf", "must be greater than 0");
    uint64_t k = 0;
    bool ok = cn_dec_is_int(&d) && d.nip <= 6;
    for (int i = 0; ok && i < d.nip; i++) k = k * 10 + (uint64_t)(d.ip[i] - '0');
    if (!ok || k > 100000) {
      acc = comb(x, acc, nf_unsup(x, TY_NUM, neg, "multipleOf", lptr(x, l)), neg);
    } else {
      struct cdfa *dd = nx_dfa(x);
      if (!dd || num_multiple(k, neg, dd)) return NULL;
      acc = comb(x, acc, nf_from_num(x, dd, !neg), neg);
    }
  }
  return acc;
}

/* ---------------------------------------------------------------- strings */

/* Most states a string length bound may multiply an automaton into: a maxLength is lowered
 * (never raised: fewer strings) until the product stays about this size. */
#define STR_BUDGET 10000

static struct nf *g_str(struct nctx *x, uint32_t l, bool neg) {
  struct nf *acc = neg ? nf_none(x) : nf_all(x);
  uint32_t shape = 1;   /* states of the pattern/format automata seen so far */
  const struct cj_val *pat = kw(x, l, "pattern");
  if (pat) {
    if (pat->type != CJ_STRING) return bad(x, l, "pattern", "must be a string");
    struct cdfa *d = nx_dfa(x), *c = NULL;
    char msg[200];
    if (!d) return NULL;
    int rc = rx_to_cdfa(pat->u.s, pat->len, neg ? RX_LOOSE : RX_STRICT, true, x->o->max_states, d,
                        msg, sizeof msg);
    if (!rc && neg) {
      c = nx_dfa(x);
      if (!c) return NULL;
      rc = cdfa_complement(d, c);
      d = c;
    }
    if (rc) {
      if (rc == -ENOMEM) return NULL;
      char p[300];
      snprintf(p, sizeof p, "%s/pattern", lptr(x, l));
      if (x->o->relaxed) {
        nx_relax(x, "pattern");
        acc = comb(x, acc, neg ? nf_none(x) : nf_all(x), neg);
      } else {
        struct nf *u = nf_others(x, TY_STR, !neg);
        if (!u) return NULL;
        set_unsup_msg(u, TY_STR, "pattern", cn_memdup(x->a, p, strlen(p)), cn_memdup(x->a, msg, strlen(msg)));
        acc = comb(x, acc, u, neg);
      }
    } else {
      if (!neg && d->n > shape) shape = d->n;
      acc = comb(x, acc, nf_from_str(x, d, !neg), neg);
    }
  }
  const struct cj_val *fm = kw(x, l, "format");
  if (fm && acc && fm->type == CJ_STRING && !neg) {
    bool known;
    const char *re = cn_format_regex(fm->u.s, &known);
    if (re) {
      struct cdfa *d = nx_dfa(x);
      char msg[200];
      if (!d || rx_to_cdfa(re, strlen(re), RX_STRICT, false, 0, d, msg, sizeof msg)) return NULL;
      if (d->n > shape) shape = d->n;
      acc = comb(x, acc, nf_from_str(x, d, true), false);
    } else if (known) {
      acc = comb(x, acc, nf_unsup(x, TY_STR, false, "format", lptr(x, l)), false);
    }
  }
  /* the negative side of "format" is empty: validators that treat it as an annotation accept
   * every string, so no string surely violates it */
  const struct cj_val *mn = kw(x, l, "minLength"), *mx = kw(x, l, "maxLength");
  uint64_t lo = 0, hi = 0;
  bool badv = false, hlo = get_count(mn, &lo, &badv), hhi = get_count(mx, &hi, &badv);
  if (badv) return bad(x, l, hlo || !mn ? "maxLength" : "minLength", "must be a non-negative integer");
  if (hlo && lo > 0 && acc) {
    struct cdfa *d = nx_dfa(x);
    if (!d) return NULL;
    if (lo > MAX_LEN_STATES || (!neg && lo * shape > STR_BUDGET && lo > 64)) {
      acc = comb(x, acc, nf_unsup(x, TY_STR, neg, "minLength", lptr(x, l)), neg);
    } else {
      if (neg ? cdfa_length(0, (int64_t)lo - 1, NULL, 0, d) : cdfa_length((uint32_t)lo, -1, NULL, 0, d))
        return NULL;
      acc = comb(x, acc, nf_from_str(x, d, !neg), neg);
    }
  }
  if (hhi && acc) {
    struct cdfa *d = nx_dfa(x);
    if (!d) return NULL;
    if (hi > MAX_LEN_STATES && neg) {
      acc = comb(x, acc, nf_unsup(x, TY_STR, neg, "maxLength", lptr(x, l)), neg);
    } else {
      /* a long maxLength is lowered: fewer strings, never more */
      uint64_t h = hi > MAX_LEN_STATES ? MAX_LEN_STATES : hi;
      if (!neg && shape > 1 && h * shape > STR_BUDGET) {
        uint64_t cut = STR_BUDGET / shape;
        if (cut < 64) cut = 64;
        if (cut < h) h = cut < lo ? lo : cut;
      }
      if (neg ? cdfa_length((uint32_t)h + 1, -1, NULL, 0, d) : cdfa_length(0, (int64_t)h, NULL, 0, d))
        return NULL;
      acc = comb(x, acc, nf_from_str(x, d, !neg), neg);
    }
  }
  return acc;
}

/* ---------------------------------------------------------------- arrays */

static uint32_t *true_prefix(struct nctx *x, uint32_t n) {
  uint32_t *p = cn_alloc(x->a, (n ? n : 1) * sizeof *p);
  if (p)
    for (uint32_t i = 0; i < n; i++) p[i] = NODE_TRUE;
  return p;
}

static struct nf *g_arr(struct nctx *x, uint32_t l, bool neg) {
  const struct cj_val *pi = kw(x, l, "prefixItems"), *it = kw(x, l, "items");
  const struct cj_val *ai = kw(x, l, "additionalItems");
  const char *tkey = NULL;
  uint32_t nt = 0;
  uint32_t rest = NODE_TRUE;
  if (pi) {
    if (pi->type != CJ_ARRAY) return bad(x, l, "prefixItems", "must be an array");
    tkey = "prefixItems";
    nt = pi->len;
    if (it && it->type != CJ_ARRAY) rest = nx_lit(x, sd_child(x->doc, l, "items", -1, NULL), false);
  } else if (it && it->type == CJ_ARRAY) {
    tkey = "items";
    nt = it->len;
    if (ai) rest = nx_lit(x, sd_child(x->doc, l, "additionalItems", -1, NULL), false);
  } else if (it) {
    if (it->type != CJ_OBJECT && it->type != CJ_TRUE && it->type != CJ_FALSE)
      return bad(x, l, "items", "must be a schema or an array of schemas");
    rest = nx_lit(x, sd_child(x->doc, l, "items", -1, NULL), false);
  }
  uint32_t *tup = NULL;
  if (nt) {
    tup = cn_alloc(x->a, nt * sizeof *tup);
    if (!tup) return NULL;
    for (uint32_t i = 0; i < nt; i++) {
      uint32_t c = sd_child(x->doc, l, tkey, (int)i, NULL);
      if (c == UINT32_MAX) return bad(x, l, tkey, "bad tuple item");
      tup[i] = nx_lit(x, c, false);
    }
  }
  if (rest == NONE32) return NULL;
  uint64_t mn = 0, mx = 0, cmn = 1, cmx = 0;
  bool badv = false;
  bool hmn = get_count(kw(x, l, "minItems"), &mn, &badv), hmx = get_count(kw(x, l, "maxItems"), &mx, &badv);
  const struct cj_val *cv = kw(x, l, "contains");
  bool hcmn = cv && get_count(kw(x, l, "minContains"), &cmn, &badv);
  bool hcmx = cv && get_count(kw(x, l, "maxContains"), &cmx, &badv);
  if (badv) return bad(x, l, "minItems", "minItems, maxItems, minContains and maxContains must be non-negative integers");
  (void)hcmn;
  const struct cj_val *uq = kw(x, l, "uniqueItems");
  bool uniq = uq && uq->type == CJ_TRUE;
  const struct cj_val *ue = kw(x, l, "unevaluatedItems");
  bool uneval = ue && ue->type != CJ_TRUE && !(ue->type == CJ_OBJECT && ue->len == 0);
  uint32_t cont = cv ? nx_lit(x, sd_child(x->doc, l, "contains", -1, NULL), false) : NONE32;
  if (!neg) {
    struct arrspec *s = arr_new(x);
    if (!s) return NULL;
    s->np = nt;
    s->prefix = tup;
    s->rest = rest;
    s->min = hmn ? clamp32(mn) : 0;
    s->max = hmx ? clamp32(mx) : NONE32;
    if (cv && !(hcmn && cmn == 0 && !hcmx)) {
      s->cont = cont;
      s->cmin = clamp32(cmn);
      s->cmax = hcmx ? clamp32(cmx) : NONE32;
    }
    s->uniq = uniq;
    if (uniq) {
      char p[300];
      snprintf(p, sizeof p, "%s/uniqueItems", lptr(x, l));
      s->uptr = cn_memdup(x->a, p, strlen(p));
    }
    struct nf *f = nf_from_arr(x, s, true);
    if (uneval) f = nf_and(x, f, nf_unsup(x, TY_ARR, false, "unevaluatedItems", lptr(x, l)));
    return f;
  }
  struct nf *acc = nf_none(x);
  for (uint32_t i = 0; i < nt && acc; i++) {
    struct arrspec *s = arr_new(x);
    if (!s) return NULL;
    s->np = i + 1;
    s->prefix = true_prefix(x, i + 1);
    if (!s->prefix) return NULL;
    s->prefix[i] = nx_lit(x, sd_child(x->doc, l, tkey, (int)i, NULL), true);
    s->min = i + 1;
    acc = nf_or(x, acc, nf_from_arr(x, s, false));
  }
  if (rest != NODE_TRUE && acc) {
    struct arrspec *s = arr_new(x);
    if (!s) return NULL;
    s->np = nt;
    s->prefix = true_prefix(x, nt);
    const char *rk = pi ? "items" : (it && it->type == CJ_ARRAY) ? "additionalItems" : "items";
    s->cont = nx_lit(x, sd_child(x->doc, l, rk, -1, NULL), true);
    s->cfrom = nt;
    s->cmin = 1;
    acc = nf_or(x, acc, nf_from_arr(x, s, false));
  }
  if (hmn && mn > 0 && acc) {
    struct arrspec *s = arr_new(x);
    if (!s) return NULL;
    s->max = clamp32(mn - 1);
    acc = nf_or(x, acc, nf_from_arr(x, s, false));
  }
  if (hmx && acc) {
    struct arrspec *s = arr_new(x);
    if (!s) return NULL;
    s->min = clamp32(mx + 1);
    acc = nf_or(x, acc, nf_from_arr(x, s, false));
  }
  if (cv && acc) {
    uint32_t cneg = nx_lit(x, sd_child(x->doc, l, "contains", -1, NULL), true);
    if (cmn >= 1) {
      struct arrspec *s = arr_new(x);
      if (!s) return NULL;
      if (cmn == 1) {
        s->rest = cneg;   /* no item is in it */
      } else {
        s->cont = cont;
        s->cmin = 0;
        s->cmax = clamp32(cmn - 1);
      }
      acc = nf_or(x, acc, nf_from_arr(x, s, false));
    }
    if (hcmx && acc) {
      struct arrspec *s = arr_new(x);
      if (!s) return NULL;
      s->cont = cont;
      s->cmin = clamp32(cmx + 1);
      acc = nf_or(x, acc, nf_from_arr(x, s, false));
    }
  }
  if (uniq && acc) {
    struct arrspec *s = arr_new(x);
    if (!s) return NULL;
    s->uniq = 2;
    char p[300];
    snprintf(p, sizeof p, "%s/uniqueItems", lptr(x, l));
    s->uptr = cn_memdup(x->a, p, strlen(p));
    acc = nf_or(x, acc, nf_from_arr(x, s, false));
  }
  return acc;
}

/* ---------------------------------------------------------------- objects */

static struct orule rule_name(const char *n, uint32_t len, uint32_t node) {
  struct orule r = {n, len, NULL, node};
  return r;
}

/* Literal-union automaton of the names of map M (NULL map: empty language). */
static struct cdfa *names_dfa(struct nctx *x, const struct cj_val *m) {
  struct cnfa na;
  cnfa_init(&na, 0);
  uint32_t st = cnfa_state(&na), acc = cnfa_state(&na);
  int e = st == UINT32_MAX;
  for (uint32_t i = 0; m && i < m->len && !e; i++) {
    const struct cj_member *mb = &m->u.members[i];
    uint32_t cur = st;
    for (uint32_t j = 0; j < mb->klen && !e;) {
      uint32_t cp;
      int n = cn_utf8_dec((const uint8_t *)mb->key + j, mb->klen - j, &cp);
      if (n <= 0) break;
      j += (uint32_t)n;
      uint32_t t = cnfa_state(&na);
      e |= t == UINT32_MAX || cnfa_range_edge(&na, cur, t, cp, cp);
      cur = t;
    }
    e |= cnfa_edge(&na, cur, acc, CN_EPS);
  }
  na.start = st;
  na.accept = acc;
  struct cdfa *d = nx_dfa(x);
  if (!d || e || cdfa_from_nfa(&na, x->o->max_states, d)) {
    cnfa_free(&na);
    return NULL;
  }
  cnfa_free(&na);
  return d;
}

/* Union of the pattern languages of patternProperties (mode MODE), or the empty language. */
static struct cdfa *patterns_dfa(struct nctx *x, const struct cj_val *pp, enum rx_mode mode, bool *fail) {
  struct cdfa *u = nx_dfa(x);
  if (!u || cdfa_none(u)) return NULL;
  for (uint32_t i = 0; pp && i < pp->len; i++) {
    struct cdfa *d = nx_dfa(x), *o = nx_dfa(x);
    char msg[200];
    if (!d || !o) return NULL;
    int rc = rx_to_cdfa(pp->u.members[i].key, pp->u.members[i].klen, mode, true, x->o->max_states, d, msg, sizeof msg);
    if (rc) {
      *fail = true;
      return NULL;
    }
    if (cdfa_product(u, d, CDFA_OR, 0, o)) return NULL;
    u = o;
  }
  return u;
}

static struct cdfa *dfa_not_or(struct nctx *x, const struct cdfa *a, const struct cdfa *b) {
  struct cdfa *o = nx_dfa(x), *c = nx_dfa(x);
  if (!o || !c || cdfa_product(a, b, CDFA_OR, 0, o) || cdfa_complement(o, c)) return NULL;
  return c;
}

static struct nf *obj_required_names(struct nctx *x, const char *n, uint32_t len, bool forbid, uint32_t node) {
  struct objspec *s = obj_new(x);
  if (!s) return NULL;
  s->rules = cn_alloc(x->a, sizeof *s->rules);
  if (!s->rules) return NULL;
  s->rules[0] = rule_name(n, len, forbid ? NODE_FALSE : node);
  s->nr = 1;
  if (!forbid) {
    s->req = cn_alloc(x->a, sizeof *s->req);
    s->reqlen = cn_alloc(x->a, sizeof *s->reqlen);
    if (!s->req || !s->reqlen) return NULL;
    s->req[0] = n;
    s->reqlen[0] = len;
    s->nreq = 1;
  }
  return nf_from_obj(x, s, false);
}

static struct nf *g_obj(struct nctx *x, uint32_t l, bool neg) {
  const struct cj_val *pr = kw(x, l, "properties"), *pp = kw(x, l, "patternProperties");
  const struct cj_val *ap = kw(x, l, "additionalProperties"), *rq = kw(x, l, "required");
  const struct cj_val *pn = kw(x, l, "propertyNames");
  const struct cj_val *dr = kw(x, l, "dependentRequired"), *ds = kw(x, l, "dependentSchemas"),
                      *dep = kw(x, l, "dependencies");
  const struct cj_val *ue = kw(x, l, "unevaluatedProperties");
  if (pr && pr->type != CJ_OBJECT) return bad(x, l, "properties", "must be an object");
  if (pp && pp->type != CJ_OBJECT) return bad(x, l, "patternProperties", "must be an object");
  if (rq && rq->type != CJ_ARRAY) return bad(x, l, "required", "must be an array of strings");
  for (uint32_t i = 0; rq && i < rq->len; i++)
    if (rq->u.items[i].type != CJ_STRING) return bad(x, l, "required", "must be an array of strings");
  uint64_t mnp = 0, mxp = 0;
  bool badv = false;
  bool hmn = get_count(kw(x, l, "minProperties"), &mnp, &badv), hmx = get_count(kw(x, l, "maxProperties"), &mxp, &badv);
  if (badv) return bad(x, l, "minProperties", "minProperties and maxProperties must be non-negative integers");
  bool ap_free = !ap || ap->type == CJ_TRUE || (ap->type == CJ_OBJECT && ap->len == 0);
  struct cdfa *names = NULL, *strict = NULL, *loose = NULL;
  bool pfail = false;
  if ((pp && pp->len) || !ap_free) {
    names = names_dfa(x, pr);
    strict = patterns_dfa(x, pp, RX_STRICT, &pfail);
    loose = pfail ? NULL : patterns_dfa(x, pp, RX_LOOSE, &pfail);
    if (pfail) return nf_unsup(x, TY_OBJ, neg, "patternProperties", lptr(x, l));
    if (!names || !strict || !loose) return NULL;
  }
  char ptrbuf[300];
  if (!neg) {
    struct objspec *s = obj_new(x);
    if (!s) return NULL;
    uint32_t cap = (pr ? pr->len : 0) + (pp ? pp->len : 0) + 1;
    s->rules = cn_alloc(x->a, cap * sizeof *s->rules);
    if (!s->rules) return NULL;
    for (uint32_t i = 0; pr && i < pr->len; i++) {
      const struct cj_member *m = &pr->u.members[i];
      uint32_t c = sd_child(x->doc, l, "properties", -1, m->key);
      if (c == UINT32_MAX) return NULL;
      s->rules[s->nr++] = rule_name(m->key, m->klen, nx_lit(x, c, false));
    }
    for (uint32_t i = 0; pp && i < pp->len; i++) {
      const struct cj_member *m = &pp->u.members[i];
      struct cdfa *d = nx_dfa(x);
      char msg[200];
      if (!d || rx_to_cdfa(m->key, m->klen, RX_LOOSE, true, x->o->max_states, d, msg, sizeof msg)) return NULL;
      uint32_t c = sd_child(x->doc, l, "patternProperties", -1, m->key);
      s->rules[s->nr++] = (struct orule){NULL, 0, d, nx_lit(x, c, false)};
    }
    if (!ap_free) {
      struct cdfa *k = dfa_not_or(x, names, strict);
      if (!k) return NULL;
      uint32_t c = sd_child(x->doc, l, "additionalProperties", -1, NULL);
      s->rules[s->nr++] = (struct orule){NULL, 0, k, nx_lit(x, c, false)};
    }
    if (rq && rq->len) {
      s->req = cn_alloc(x->a, rq->len * sizeof *s->req);
      s->reqlen = cn_alloc(x->a, rq->len * sizeof *s->reqlen);
      if (!s->req || !s->reqlen) return NULL;
      for (uint32_t i = 0; i < rq->len; i++) {
        bool dup = false;
        for (uint32_t j = 0; j < s->nreq && !dup; j++)
          dup = s->reqlen[j] == rq->u.items[i].len && !memcmp(s->req[j], rq->u.items[i].u.s, s->reqlen[j]);
        if (!dup) s->req[s->nreq] = rq->u.items[i].u.s, s->reqlen[s->nreq++] = rq->u.items[i].len;
      }
    }
    if (pn) {
      uint32_t c = sd_child(x->doc, l, "propertyNames", -1, NULL);
      struct nf *kf = nx_nf(x, nx_lit(x, c, false));
      if (!kf) return NULL;
      if (kf->unsup & (1u << TY_STR)) return nf_unsup(x, TY_OBJ, false, "propertyNames", lptr(x, l));
      if (kf->str.kind == PK_NONE) {
        s->pnames = nx_dfa(x);
        if (!s->pnames || cdfa_none(s->pnames)) return NULL;
      } else if (kf->str.kind == PK_SOME) {
        s->pnames = kf->str.d;
      }
    }
    s->minp = hmn ? clamp32(mnp) : 0;
    s->maxp = hmx ? clamp32(mxp) : NONE32;
    struct nf *f = nf_from_obj(x, s, true);
    /* dependencies: (key absent) or (key present and its requirement) */
    for (int which = 0; which < 3 && f; which++) {
      const struct cj_val *dm = which == 0 ? dr : which == 1 ? ds : dep;
      const char *dk = which == 0 ? "dependentRequired" : which == 1 ? "dependentSchemas" : "dependencies";
      if (!dm) continue;
      if (dm->type != CJ_OBJECT) return bad(x, l, dk, "must be an object");
      for (uint32_t i = 0; i < dm->len && f; i++) {
        const struct cj_member *m = &dm->u.members[i];
        struct nf *absent = obj_required_names(x, m->key, m->klen, true, NODE_TRUE);
        struct nf *present;
        if (m->val.type == CJ_ARRAY) {
          struct objspec *ps = obj_new(x);
          if (!ps) return NULL;
          ps->req = cn_alloc(x->a, (m->val.len + 1) * sizeof *ps->req);
          ps->reqlen = cn_alloc(x->a, (m->val.len + 1) * sizeof *ps->reqlen);
          if (!ps->req || !ps->reqlen) return NULL;
          ps->req[0] = m->key;
          ps->reqlen[0] = m->klen;
          ps->nreq = 1;
          for (uint32_t j = 0; j < m->val.len; j++) {
            if (m->val.u.items[j].type != CJ_STRING) return bad(x, l, dk, "dependencies must list strings");
            ps->req[ps->nreq] = m->val.u.items[j].u.s;
            ps->reqlen[ps->nreq++] = m->val.u.items[j].len;
          }
          present = nf_from_obj(x, ps, false);
        } else if (m->val.type == CJ_OBJECT || m->val.type == CJ_TRUE || m->val.type == CJ_FALSE) {
          uint32_t c = sd_child(x->doc, l, dk, -1, m->key);
          present = nf_and(x, obj_required_names(x, m->key, m->klen, false, NODE_TRUE), nf_of_loc(x, c, false));
        } else {
          return bad(x, l, dk, "each dependency must be an array or a schema");
        }
        struct nf *non_obj = nf_others(x, TY_OBJ, true);
        f = nf_and(x, f, nf_or(x, non_obj, nf_or(x, absent, present)));
      }
    }
    if (f && ue && ue->type != CJ_TRUE && !(ue->type == CJ_OBJECT && ue->len == 0))
      f = nf_and(x, f, nf_unsup(x, TY_OBJ, false, "unevaluatedProperties", lptr(x, l)));
    return f;
  }
  /* negative: some constraint violated (only objects violate these) */
  struct nf *acc = nf_none(x);
  for (uint32_t i = 0; pr && i < pr->len && acc; i++) {
    const struct cj_member *m = &pr->u.members[i];
    uint32_t c = sd_child(x->doc, l, "properties", -1, m->key);
    if (x->doc->locs[c].v->type == CJ_TRUE) continue;
    acc = nf_or(x, acc, obj_required_names(x, m->key, m->klen, false, nx_lit(x, c, true)));
  }
  for (uint32_t i = 0; pp && i < pp->len && acc; i++) {
    const struct cj_member *m = &pp->u.members[i];
    uint32_t c = sd_child(x->doc, l, "patternProperties", -1, m->key);
    if (x->doc->locs[c].v->type == CJ_TRUE) continue;
    struct cdfa *d = nx_dfa(x);
    char msg[200];
    if (!d || rx_to_cdfa(m->key, m->klen, RX_STRICT, true, x->o->max_states, d, msg, sizeof msg)) return NULL;
    struct objspec *s = obj_new(x);
    if (!s) return NULL;
    s->wkeys = d;
    s->wnode = nx_lit(x, c, true);
    acc = nf_or(x, acc, nf_from_obj(x, s, false));
  }
  if (!ap_free && acc) {
    struct cdfa *k = dfa_not_or(x, names, loose);
    if (!k) return NULL;
    struct objspec *s = obj_new(x);
    if (!s) return NULL;
    s->wkeys = k;
    s->wnode = nx_lit(x, sd_child(x->doc, l, "additionalProperties", -1, NULL), true);
    acc = nf_or(x, acc, nf_from_obj(x, s, false));
  }
  for (uint32_t i = 0; rq && i < rq->len && acc; i++)
    acc = nf_or(x, acc, obj_required_names(x, rq->u.items[i].u.s, rq->u.items[i].len, true, NODE_TRUE));
  if (pn && acc) {
    uint32_t c = sd_child(x->doc, l, "propertyNames", -1, NULL);
    struct nf *kf = nx_nf(x, nx_lit(x, c, true));
    if (!kf) return NULL;
    if (kf->unsup & (1u << TY_STR)) {
      acc = nf_or(x, acc, nf_unsup(x, TY_OBJ, true, "propertyNames", lptr(x, l)));
    } else if (kf->str.kind != PK_NONE) {
      struct objspec *s = obj_new(x);
      if (!s) return NULL;
      if (kf->str.kind == PK_ALL) {
        s->wkeys = nx_dfa(x);
        if (!s->wkeys || cdfa_all(s->wkeys)) return NULL;
      } else {
        s->wkeys = kf->str.d;
      }
      acc = nf_or(x, acc, nf_from_obj(x, s, false));
    }
  }
  if (hmn && mnp > 0 && acc) {
    struct objspec *s = obj_new(x);
    if (!s) return NULL;
    s->maxp = clamp32(mnp - 1);
    acc = nf_or(x, acc, nf_from_obj(x, s, false));
  }
  if (hmx && acc) {
    struct objspec *s = obj_new(x);
    if (!s) return NULL;
    s->minp = clamp32(mxp + 1);
    acc = nf_or(x, acc, nf_from_obj(x, s, false));
  }
  for (int which = 0; which < 3 && acc; which++) {
    const struct cj_val *dm = which == 0 ? dr : which == 1 ? ds : dep;
    const char *dk = which == 0 ? "dependentRequired" : which == 1 ? "dependentSchemas" : "dependencies";
    if (!dm) continue;
    if (dm->type != CJ_OBJECT) return bad(x, l, dk, "must be an object");
    for (uint32_t i = 0; i < dm->len && acc; i++) {
      const struct cj_member *m = &dm->u.members[i];
      if (m->val.type == CJ_ARRAY) {
        for (uint32_t j = 0; j < m->val.len && acc; j++) {
          if (m->val.u.items[j].type != CJ_STRING) return bad(x, l, dk, "dependencies must list strings");
          acc = nf_or(x, acc, nf_and(x, obj_required_names(x, m->key, m->klen, false, NODE_TRUE),
                                     obj_required_names(x, m->val.u.items[j].u.s, m->val.u.items[j].len, true, NODE_TRUE)));
        }
      } else if (m->val.type == CJ_OBJECT || m->val.type == CJ_TRUE || m->val.type == CJ_FALSE) {
        uint32_t c = sd_child(x->doc, l, dk, -1, m->key);
        acc = nf_or(x, acc, nf_and(x, obj_required_names(x, m->key, m->klen, false, NODE_TRUE),
                                   nf_of_loc(x, c, true)));
      } else {
        return bad(x, l, dk, "each dependency must be an array or a schema");
      }
    }
  }
  (void)ptrbuf;
  return acc;
}

/* ---------------------------------------------------------------- combinators */

static struct nf *g_list(struct nctx *x, uint32_t l, const char *k, bool neg, bool is_any) {
  const struct cj_val *v = kw(x, l, k);
  if (v->type != CJ_ARRAY || v->len == 0) return bad(x, l, k, "must be a non-empty array of schemas");
  /* allOf: positive AND, negative OR; anyOf the other way round */
  bool use_or = is_any != neg;
  struct nf *acc = use_or ? nf_none(x) : nf_all(x);
  for (uint32_t i = 0; i < v->len && acc; i++) {
    uint32_t c = sd_child(x->doc, l, k, (int)i, NULL);
    if (c == UINT32_MAX) return bad(x, l, k, "must be an array of schemas");
    struct nf *g = nf_of_loc(x, c, neg);
    acc = use_or ? nf_or(x, acc, g) : nf_and(x, acc, g);
  }
  return acc;
}

static struct nf *g_oneof(struct nctx *x, uint32_t l, bool neg) {
  const struct cj_val *v = kw(x, l, "oneOf");
  if (v->type != CJ_ARRAY || v->len == 0) return bad(x, l, "oneOf", "must be a non-empty array of schemas");
  uint32_t n = v->len;
  if (n > 64) return nf_unsup(x, TY_OBJ, neg, "oneOf", lptr(x, l));
  struct nf **pos = cn_alloc(x->a, n * sizeof *pos), **ng = cn_alloc(x->a, n * sizeof *ng);
  uint8_t *ov = cn_alloc(x->a, (size_t)n * n);
  if (!pos || !ng || !ov) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t c = sd_child(x->doc, l, "oneOf", (int)i, NULL);
    if (c == UINT32_MAX) return bad(x, l, "oneOf", "must be an array of schemas");
    pos[i] = nf_of_loc(x, c, false);
    if (!pos[i]) return NULL;
  }
  /* overlapping pairs: only those need the negations */
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t j = i + 1; j < n; j++) {
      struct nf *both = nf_and(x, pos[i], pos[j]);
      if (!both) return NULL;
      ov[i * n + j] = ov[j * n + i] = !nf_empty(x, both);
    }
  if (!neg) {
    struct nf *acc = nf_none(x);
    for (uint32_t i = 0; i < n && acc; i++) {
      struct nf *t = pos[i];
      for (uint32_t j = 0; j < n && t; j++) {
        if (j == i || !ov[i * n + j]) continue;
        if (!ng[j]) ng[j] = nf_of_loc(x, sd_child(x->doc, l, "oneOf", (int)j, NULL), true);
        t = nf_and(x, t, ng[j]);
      }
      acc = nf_or(x, acc, t);
    }
    return acc;
  }
  struct nf *none_of = nf_all(x);
  for (uint32_t i = 0; i < n && none_of; i++) {
    if (!ng[i]) ng[i] = nf_of_loc(x, sd_child(x->doc, l, "oneOf", (int)i, NULL), true);
    none_of = nf_and(x, none_of, ng[i]);
  }
  struct nf *acc = none_of;
  for (uint32_t i = 0; i < n && acc; i++)
    for (uint32_t j = i + 1; j < n && acc; j++)
      if (ov[i * n + j]) acc = nf_or(x, acc, nf_and(x, pos[i], pos[j]));
  return acc;
}

static struct nf *g_if(struct nctx *x, uint32_t l, bool neg) {
  uint32_t ci = sd_child(x->doc, l, "if", -1, NULL);
  if (ci == UINT32_MAX) return bad(x, l, "if", "must be a schema");
  uint32_t ct = kw(x, l, "then") ? sd_child(x->doc, l, "then", -1, NULL) : UINT32_MAX;
  uint32_t ce = kw(x, l, "else") ? sd_child(x->doc, l, "else", -1, NULL) : UINT32_MAX;
  struct nf *ip = nf_of_loc(x, ci, false), *in = nf_of_loc(x, ci, true);
  struct nf *t = ct == UINT32_MAX ? (neg ? nf_none(x) : nf_all(x)) : nf_of_loc(x, ct, neg);
  struct nf *e = ce == UINT32_MAX ? (neg ? nf_none(x) : nf_all(x)) : nf_of_loc(x, ce, neg);
  return nf_or(x, nf_and(x, ip, t), nf_and(x, in, e));
}

static struct nf *g_ref(struct nctx *x, uint32_t l, const char *k, bool neg) {
  const struct cj_val *r = kw(x, l, k);
  if (r->type != CJ_STRING) return bad(x, l, k, "must be a string");
  uint32_t t;
  const char *ref = r->u.s;
  if (!strcmp(k, "$dynamicRef")) {
    if (x->o->relaxed) {
      nx_relax(x, k);
      return neg ? nf_none(x) : nf_all(x);
    }
    char p[300];
    snprintf(p, sizeof p, "%s/%s", lptr(x, l), k);
    nx_fail(x, -EINVAL, k, p, "$dynamicRef is not supported");
    return NULL;
  }
  int rc = sd_ref(x->doc, l, ref, &t);
  if (rc) {
    if (rc == -ENOMEM) {
      nx_fail(x, rc, "", "", "out of memory");
      return NULL;
    }
    if (x->o->relaxed) {
      nx_relax(x, "$ref");
      return neg ? nf_none(x) : nf_all(x);
    }
    if (!x->rc) x->rc = rc;
    return NULL;
  }
  return nf_of_loc(x, t, neg);
}

/* ---------------------------------------------------------------- a location */

static bool has_any(const struct cj_val *o, const char *const *keys) {
  for (size_t i = 0; keys[i]; i++)
    if (cj_get(o, keys[i])) return true;
  return false;
}

static struct nf *loc_nf(struct nctx *x, uint32_t l, bool neg) {
  const struct cj_val *v = x->doc->locs[l].v;
  if (v->type == CJ_TRUE) return neg ? nf_none(x) : nf_all(x);
  if (v->type == CJ_FALSE) return neg ? nf_all(x) : nf_none(x);
  if (v->type != CJ_OBJECT) {
    nx_fail(x, -EINVAL, "", lptr(x, l), "a schema must be an object or a boolean");
    return NULL;
  }
  static const char *const numk[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", NULL};
  static const char *const strk[] = {"minLength", "maxLength", "pattern", "format", NULL};
  static const char *const arrk[] = {"items", "prefixItems", "additionalItems", "minItems", "maxItems",
                                     "uniqueItems", "contains", "unevaluatedItems", NULL};
  static const char *const objk[] = {"properties", "patternProperties", "additionalProperties", "required",
                                     "propertyNames", "minProperties", "maxProperties", "dependencies",
                                     "dependentRequired", "dependentSchemas", "unevaluatedProperties", NULL};
  struct nf *acc = neg ? nf_none(x) : nf_all(x);
  if (cj_get(v, "type")) acc = comb(x, acc, g_type(x, l, neg), neg);
  if (acc && (cj_get(v, "enum") || cj_get(v, "const"))) acc = comb(x, acc, g_enum(x, l, neg), neg);
  if (acc && has_any(v, numk)) acc = comb(x, acc, g_num(x, l, neg), neg);
  if (acc && has_any(v, strk)) acc = comb(x, acc, g_str(x, l, neg), neg);
  if (acc && has_any(v, arrk)) acc = comb(x, acc, g_arr(x, l, neg), neg);
  if (acc && has_any(v, objk)) acc = comb(x, acc, g_obj(x, l, neg), neg);
  if (acc && cj_get(v, "allOf")) acc = comb(x, acc, g_list(x, l, "allOf", neg, false), neg);
  if (acc && cj_get(v, "anyOf")) acc = comb(x, acc, g_list(x, l, "anyOf", neg, true), neg);
  if (acc && cj_get(v, "oneOf")) acc = comb(x, acc, g_oneof(x, l, neg), neg);
  if (acc && cj_get(v, "not")) {
    uint32_t c = sd_child(x->doc, l, "not", -1, NULL);
    if (c == UINT32_MAX) return bad(x, l, "not", "must be a schema");
    acc = comb(x, acc, nf_of_loc(x, c, !neg), neg);
  }
  if (acc && cj_get(v, "if")) acc = comb(x, acc, g_if(x, l, neg), neg);
  if (acc && cj_get(v, "$ref")) acc = comb(x, acc, g_ref(x, l, "$ref", neg), neg);
  if (acc && cj_get(v, "$recursiveRef")) acc = comb(x, acc, g_ref(x, l, "$recursiveRef", neg), neg);
  if (acc && cj_get(v, "$dynamicRef")) acc = comb(x, acc, g_ref(x, l, "$dynamicRef", neg), neg);
  const struct cj_val *nu = cj_get(v, "nullable");
  if (acc && nu && nu->type == CJ_TRUE && x->o->openapi_nullable) {
    struct nf *nl = nf_types(x, neg ? (127 & ~T_NULL & ~T_INT) : T_NULL);
    acc = neg ? nf_and(x, acc, nl) : nf_or(x, acc, nl);
  }
  return acc;
}

static struct nf *nf_of_loc(struct nctx *x, uint32_t l, bool neg) {
  if (x->rc) return NULL;
  size_t need = x->doc->nlocs;
  if (need > x->cap_loc) {
    size_t nc = x->cap_loc ? x->cap_loc : 64;
    while (nc < need) nc *= 2;
    struct nf **nl = realloc(x->locnf, nc * 2 * sizeof *nl);
    uint8_t *ns = nl ? realloc(x->locstate, nc * 2) : NULL;
    if (!nl || !ns) {
      if (nl) x->locnf = nl;
      nx_fail(x, -ENOMEM, "", "", "out of memory");
      return NULL;
    }
    memset(nl + x->cap_loc * 2, 0, (nc - x->cap_loc) * 2 * sizeof *nl);
    memset(ns + x->cap_loc * 2, 0, (nc - x->cap_loc) * 2);
    x->locnf = nl;
    x->locstate = ns;
    x->cap_loc = nc;
  }
  size_t slot = (size_t)l * 2 + (neg ? 1 : 0);
  if (x->locstate[slot] == 2) return x->locnf[slot];
  if (x->locstate[slot] == 1) {
    nx_fail(x, -EINVAL, "$ref", lptr(x, l), "circular reference without a value in between");
    return NULL;
  }
  if (++x->depth > 300) {
    nx_fail(x, -EINVAL, "", lptr(x, l), "schema nested too deeply");
    return NULL;
  }
  x->locstate[slot] = 1;
  struct nf *f = loc_nf(x, l, neg);
  x->depth--;
  if (!f) return NULL;
  x->locnf[slot] = f;
  x->locstate[slot] = 2;
  return f;
}

struct nf *nx_nf(struct nctx *x, uint32_t node) {
  if (node == NONE32 || x->rc) return NULL;
  struct nnode *nd = &x->nodes[node];
  if (nd->state == 2) return nd->nf;
  if (node == NODE_TRUE) {
    nd->nf = nf_all(x);
    nd->state = 2;
    return nd->nf;
  }
  if (node == NODE_FALSE) {
    nd->nf = nf_none(x);
    nd->state = 2;
    return nd->nf;
  }
  if (nd->state == 1) {
    nx_fail(x, -EINVAL, "$ref", "", "circular reference without a value in between");
    return NULL;
  }
  nd->state = 1;
  uint32_t n;
  const uint32_t *lits = node_lits(x, node, &n);
  /* copy: computing may add nodes and move the pool */
  uint32_t buf[64];
  uint32_t *cp = n <= 64 ? buf : malloc(n * sizeof *cp);
  if (!cp) {
    nx_fail(x, -ENOMEM, "", "", "out of memory");
    return NULL;
  }
  memcpy(cp, lits, n * sizeof *cp);
  struct nf *acc = nf_all(x);
  for (uint32_t i = 0; i < n && acc; i++) acc = nf_and(x, acc, nf_of_loc(x, cp[i] >> 1, cp[i] & 1));
  if (cp != buf) free(cp);
  nd = &x->nodes[node];
  nd->nf = acc;
  nd->state = acc ? 2 : 0;
  return acc;
}

uint32_t nx_not(struct nctx *x, uint32_t n) {
  if (n == NODE_TRUE) return NODE_FALSE;
  if (n == NODE_FALSE) return NODE_TRUE;
  uint32_t k;
  const uint32_t *l = node_lits(x, n, &k);
  if (k != 1) return NONE32;
  uint32_t f = l[0] ^ 1u;
  return intern(x, &f, 1);
}
